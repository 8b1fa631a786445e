//! The daemon: one single-threaded event loop over epoll, and this file its
//! conductor. It owns the parts (each with its own state, none holding or
//! changing another) and, turn by turn, hands each what the world said and
//! carries out what the parts return:
//!
//! * [`reactor`]: epoll, the signalfd, the listeners, tokens, the timers;
//! * [`jobs`]: definitions, instances and their machines, the pid map;
//! * [`events`]: the event queue, `start on`/`stop on` matchers, holds;
//! * [`clients`]: control clients and who waits for what;
//! * [`output`]: job output, log files, the compressors, the daemon's log;
//! * [`notify`]: `expect notify` sockets and main processes by pidfd;
//! * [`shutdown`]: the orderly stop; [`state`]: the state file;
//!   [`watch`]: inotify on the conf dirs.
//!
//! What each command does is in `commands.rs`; `re-exec` in `reexec.rs`.
//! It never sleeps and never polls: with nothing to do it waits in
//! `epoll_wait` with no timeout (or until the nearest timer).

mod clients;
mod commands;
mod events;
mod jobs;
mod notify;
mod output;
mod reactor;
mod reexec;
pub mod setup;
mod shutdown;
mod state;
#[cfg(test)]
mod tests;
mod watch;

use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use mio::Events;

use crate::conf::{Expect, JobClass, ProcessType};
use crate::job::{self, Input, Instance, Refusal};
use crate::process::{self, sys::Real};
use events::Next;
use jobs::Effect;
use reactor::{Reactor, Timer};

pub use output::DAEMON_LOG;

/// How long a burst of conf-dir changes may go on before one rescan.
const RESCAN_DELAY: Duration = Duration::from_millis(100);

pub use setup::Config;

/// An instance's key: job name and instance name.
pub type Key = (String, String);

pub struct Daemon {
    cfg: Config,
    reactor: Reactor,
    jobs: jobs::JobTable,
    bus: events::EventBus,
    clients: clients::Clients,
    output: output::Output,
    dlog: output::DaemonLog,
    notify: notify::Notify,
    shutdown: shutdown::Shutdown,
    state: state::StateFile,
    watcher: Option<watch::Watcher>,
    rescan_armed: bool,
    sys: Real,
    _lock: setup::Lock,
    my_uid: u32,
    system: bool,
    original_nofile: Option<(u64, u64)>,
    /// The daemon's binary (its path when it started: after an upgrade
    /// that path holds the new one) and argv, for `re-exec`.
    exe: Option<PathBuf>,
    argv: Vec<OsString>,
}

/// What driving an instance did that its caller may need: the instances
/// that reached rest and went (as they were last).
#[derive(Default)]
struct Driven {
    gone: Vec<Instance>,
}

/// Runs the daemon in the foreground until SIGTERM or SIGINT; returns the
/// exit code.
pub fn run(cfg: Config) -> i32 {
    if let Some(fd) = reexec::handed_over() {
        match fd.and_then(|fd| Daemon::resume(cfg.clone(), fd)) {
            Ok(mut d) => return d.run(),
            Err(msg) => {
                // Whatever was handed across goes, the lock with it; the
                // state file then names the old image's job processes,
                // which `new` stops before starting afresh.
                eprintln!(
                    "upkeep: unable to resume after re-exec: {msg}; stopping what the previous image ran and starting afresh"
                );
                process::handover::close_inherited();
            }
        }
    }
    // Nothing the daemon inherited reaches a job.
    process::spawn::close_inherited_fds();
    match Daemon::new(cfg) {
        Ok(mut d) => d.run(),
        Err(msg) => {
            eprintln!("upkeep: {msg}");
            1
        }
    }
}

impl Daemon {
    /// The daemon with its lock and socket, signals and epoll set up, and
    /// nothing loaded yet.
    fn bare(
        cfg: Config,
        lock: setup::Lock,
        listener: mio::net::UnixListener,
        private: Result<mio::net::UnixListener, String>,
        original_nofile: Option<(u64, u64)>,
    ) -> Result<Daemon, String> {
        let my_uid = process::euid();
        let system = my_uid == 0;
        setup::subreaper()?;
        let mut reactor = Reactor::new(setup::signals()?, listener)?;
        let (dir, dlog) = output::open(&cfg, my_uid)?;
        reactor.listen_private(private, &dlog)?;
        let base = job::env::Base::of_this_process(system, &cfg.socket);
        let jobs = jobs::JobTable::new(base, cfg.verbose);
        let shutdown = shutdown::Shutdown::new(cfg.exit_with.clone());
        let mut d = Daemon {
            output: output::Output::new(dir, cfg.log_policy, cfg.log_to_stdout),
            cfg,
            reactor,
            jobs,
            bus: Default::default(),
            clients: clients::Clients::new(my_uid),
            dlog,
            notify: Default::default(),
            shutdown,
            state: Default::default(),
            watcher: None,
            rescan_armed: false,
            sys: Real,
            _lock: lock,
            my_uid,
            system,
            original_nofile,
            exe: setup::own_binary(),
            argv: std::env::args_os().collect(),
        };
        d.watcher = watch::Watcher::start(&d.reactor, &d.dlog);
        process::time::ignore_sigxfsz();
        Ok(d)
    }

    fn new(cfg: Config) -> Result<Daemon, String> {
        let system = process::euid() == 0;
        let original_nofile = setup::raise_nofile();
        setup::socket_dir(&cfg.socket, !system)?;
        let lock = setup::take_lock(&cfg.socket)?;
        setup::notify_dir(&cfg.socket)?;
        // We hold the lock, so whoever wrote the state file is dead.
        state::recover(&cfg.socket, &|m| eprintln!("upkeep: {m}"));
        let listener = setup::bind(&cfg.socket, if system { 0o666 } else { 0o600 })?;
        let private = setup::bind_private(&cfg.socket);
        let mut d = Daemon::bare(cfg, lock, listener, private, original_nofile)?;
        d.reload_configuration();
        d.log(&format!(
            "loaded {} job{} from {}",
            d.jobs.classes.len(),
            if d.jobs.classes.len() == 1 { "" } else { "s" },
            d.cfg
                .conf_dirs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        d.arm_daily();
        for (name, env) in setup::boot_events(&d.cfg.runlevel) {
            d.emit(&name, env, None, None);
        }
        Ok(d)
    }

    fn log(&self, msg: &str) {
        self.dlog.log(msg);
    }

    fn run(&mut self) -> i32 {
        self.log(&format!("listening on {}", self.cfg.socket.display()));
        let mut events = Events::with_capacity(256);
        loop {
            // Settle before waiting: events queued by what happened, and
            // (when shutting down) the next job to stop, whose own stopping
            // event must be handled too. What the boot events started is
            // on record before the first wait.
            loop {
                self.process_events();
                if self.shutdown.active {
                    self.stop_next_for_shutdown();
                }
                if self.bus.is_settled() {
                    break;
                }
            }
            if let Some(c) = self.dlog.take_rotated() {
                self.output.start_compression(DAEMON_LOG, c, &self.dlog);
            }
            self.save_state();
            if !self.clients.reexec.is_empty() {
                self.reexec(); // returns only if the exec failed
            }
            if self.shutdown.active && self.jobs.instances.is_empty() {
                break;
            }
            if let Err(e) = self.reactor.wait(&mut events, !self.output.more.is_empty()) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.log(&format!("epoll: {e}"));
                }
                continue;
            }
            for t in std::mem::take(&mut self.output.more) {
                self.output.on_output(t, &self.reactor, &self.dlog);
            }
            for ev in events.iter() {
                match ev.token() {
                    reactor::SIGNALS => self.on_signals(),
                    reactor::LISTENER => self.clients.accept(false, &self.reactor, &self.dlog),
                    reactor::PRIV_LISTENER => self.clients.accept(true, &self.reactor, &self.dlog),
                    reactor::INOTIFY => self.on_conf_change(),
                    mio::Token(t) if self.output.is_reader(t) => {
                        self.output.on_output(t, &self.reactor, &self.dlog)
                    }
                    mio::Token(t) if self.notify.is_socket(t) => self.on_notify(t),
                    mio::Token(t) if self.notify.is_alien(t) => self.on_alien(t),
                    mio::Token(t) => {
                        if ev.is_readable() {
                            self.clients.read(t);
                            self.serve(t);
                        }
                        if ev.is_writable() {
                            self.clients.flush(t, &self.reactor);
                        }
                    }
                }
            }
            self.fire_timers();
            while let Some(t) = self.clients.resume.pop() {
                self.clients.read(t);
                self.serve(t);
            }
            // Descriptors may have been freed by what happened above.
            if self.clients.accept_stalled {
                self.clients.accept(false, &self.reactor, &self.dlog);
            }
        }
        self.log("all jobs stopped; exiting");
        setup::clean_up(&self.cfg.socket);
        self.shutdown.exit_code
    }

    fn on_signals(&mut self) {
        loop {
            match self.reactor.signals.read_signal() {
                Ok(Some(info)) => match info.ssi_signo as i32 {
                    libc::SIGCHLD => self.reap(),
                    sig @ (libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) => {
                        let name = crate::conf::signal::display(sig);
                        self.begin_shutdown(&format!("SIG{name}: stopping every job"));
                    }
                    libc::SIGUSR1 => {
                        self.log("SIGUSR1: reopening log files");
                        self.output.reopen_logs(&self.dlog);
                    }
                    libc::SIGHUP => {
                        self.log("SIGHUP: reloading configuration");
                        self.reload_configuration();
                    }
                    _ => {}
                },
                Ok(None) => break,
                Err(e) => {
                    self.log(&format!("signalfd: {e}"));
                    break;
                }
            }
        }
    }

    /// Collects every ended child and tells the instances.
    fn reap(&mut self) {
        let (exits, stopped) = process::reap_and_stops();
        // `expect stop`: a main process that stopped itself is ready.
        for pid in stopped {
            if let Some(key) = self.jobs.pids.get(&pid).cloned() {
                let _ = self.drive(&key, Input::StoppedItself { pid });
            }
        }
        for (pid, status) in exits {
            if self.output.compression_finished(pid, &self.dlog) {
                continue;
            }
            let output = &self.output;
            let helper = |p: i32| output.is_compressor(p);
            for (key, input) in self.jobs.reaped(pid, status, &mut self.sys, &helper) {
                let _ = self.drive(&key, input);
            }
        }
        let output = &self.output;
        let helper = |p: i32| output.is_compressor(p);
        for (key, input) in self.jobs.after_reap(&mut self.sys, &helper) {
            let _ = self.drive(&key, input);
        }
    }

    fn arm_daily(&mut self) {
        let now = std::time::SystemTime::now();
        let next = process::time::next_local_midnight(now);
        let after = next
            .duration_since(now)
            .unwrap_or(Duration::from_secs(86_400));
        self.reactor.arm(after, Timer::Daily);
    }

    /// Something changed in a conf dir: rescan once the burst is over.
    fn on_conf_change(&mut self) {
        let changed = self.watcher.as_mut().is_some_and(|w| w.drain());
        if changed && !self.rescan_armed {
            self.rescan_armed = true;
            self.reactor.arm(RESCAN_DELAY, Timer::Rescan);
        }
    }

    fn fire_timers(&mut self) {
        while let Some(timer) = self.reactor.due() {
            match timer {
                Timer::Instance(key, gen) => {
                    if let Some(input) = self.jobs.fork_timer(&key) {
                        let _ = self.drive(&key, input);
                    }
                    if self.jobs.instances.contains_key(&key) {
                        let _ = self.drive(&key, Input::Timer { gen });
                    }
                }
                Timer::Daily => {
                    self.output.rotate_daily(&self.dlog);
                    self.arm_daily();
                }
                Timer::ShutdownHook(key) => {
                    let (jobs, reactor) = (&self.jobs, &self.reactor);
                    self.shutdown
                        .check_hook(key, jobs, &mut self.sys, &self.dlog, reactor)
                }
                Timer::ClientIdle(t) => self.clients.check_idle(t, &self.reactor),
                Timer::StateRetry => {
                    self.state.retry_due();
                    self.save_state();
                }
                Timer::Rescan => {
                    self.rescan_armed = false;
                    if self.dlog.verbose {
                        self.log("conf dirs changed: rescanning");
                    }
                    self.reload_configuration();
                }
            }
        }
    }

    /// Rescans every conf dir (SIGHUP, `reload-configuration`): new jobs
    /// are defined, changed ones take effect at their next start, removed
    /// ones go once they have stopped; a file with errors keeps the last
    /// good definition. Starts and stops nothing.
    fn reload_configuration(&mut self) {
        let r = self.jobs.reload(&self.cfg.conf_dirs);
        if let Some(w) = &mut self.watcher {
            for msg in w.update(&r.watch) {
                eprintln!("upkeep: {msg}");
            }
        }
        for line in &r.logs {
            self.log(line);
        }
        for (old, new) in &r.changed {
            let fin = self.bus.set_start_matcher(old.as_deref(), new);
            self.finish(fin);
        }
        for job in &r.gone {
            let fin = self.bus.drop_start_matcher(job);
            self.finish(fin);
        }
        self.process_events();
    }

    /// Writes the state file if the set of job processes changed.
    fn save_state(&mut self) {
        if self.jobs.dirty && self.state.may_write() {
            let records = self.jobs.records();
            let written = self
                .state
                .write(&self.cfg.socket, &records, &self.dlog, &self.reactor);
            self.jobs.dirty &= !written;
        }
    }

    /// Feeds `input` to an instance and carries out what it asks, until it
    /// waits for the world again.
    fn drive(&mut self, key: &Key, input: Input) -> Result<Driven, Refusal> {
        let mut driven = Driven::default();
        let mut next = Some(input);
        let mut first = true;
        while let Some(input) = next.take() {
            let now = self.reactor.now();
            let stepped = match self.jobs.step(key, input, now, &mut self.sys) {
                Ok(s) => s,
                Err(r) if first => return Err(r),
                Err(_) => break,
            };
            first = false;
            for effect in stepped.effects {
                self.apply(key, effect, &mut driven);
            }
            next = stepped.spawn.map(|process| match self.spawn(key, process) {
                Ok(pid) => {
                    self.jobs.spawned(key, pid);
                    Input::Spawned { process, pid }
                }
                Err(error) => Input::SpawnFailed { process, error },
            });
        }
        let fin = self.bus.check_blocked(key, self.jobs.instances.get(key));
        self.finish(fin);
        if let Some(inst) = self.jobs.instances.get(key) {
            let (jobs, now) = (&self.jobs, self.reactor.now());
            let answers = self.clients.answers_for(inst, &|i| jobs.status_of(i, now));
            self.answer(answers);
        }
        Ok(driven)
    }

    /// Carries out one effect of a step.
    fn apply(&mut self, key: &Key, effect: Effect, driven: &mut Driven) {
        match effect {
            Effect::Log(msg) => self.log(&msg),
            Effect::Timer { gen, after } => {
                self.reactor.arm(after, Timer::Instance(key.clone(), gen))
            }
            // A blocking event (starting, stopping) is answered with
            // EventDone once it has finished.
            Effect::Emit {
                name,
                env,
                blocking,
            } => {
                self.emit(name, env, blocking.then(|| key.clone()), None);
            }
            Effect::Destroyed(inst) => {
                self.notify.drop_key(key, &self.reactor);
                if let Some(why) = self.shutdown.exit_with_failed(&inst) {
                    self.begin_shutdown(&why);
                }
                let fin = self.bus.instance_gone(key, inst.failed.is_some());
                self.finish(fin);
                let answers = self.clients.answers_for_gone(&inst);
                self.answer(answers);
                driven.gone.push(*inst);
            }
        }
    }

    /// Spawns a process of an instance: its environment, its notify
    /// socket (`expect notify`), its output captured.
    fn spawn(&mut self, key: &Key, process: ProcessType) -> Result<i32, String> {
        let inst = self.jobs.instances.get(key).ok_or("no such instance")?;
        let class: Rc<JobClass> = inst.class.clone();
        let mut env = job::env::for_process(inst, Some(process), &self.jobs.env_base);
        let label = inst.label();
        if class.expect == Expect::Notify {
            let owner = jobs::job_owner(&class, self.system);
            let addr = self
                .notify
                .socket_for(key, owner, &self.cfg.socket, &self.reactor)?;
            env.retain(|(k, _)| k != "NOTIFY_SOCKET");
            env.push(("NOTIFY_SOCKET".into(), addr));
        }
        let job = output::Job {
            class: &class,
            process,
            env: &env,
            label,
            log_name: crate::log::file_name(&key.0, &key.1),
            default_dir: self.system.then_some("/"),
            original_nofile: self.original_nofile,
        };
        self.output.spawn(job, &self.reactor, &self.dlog)
    }

    /// Queues an event (said with `-v`); returns its id.
    fn emit(
        &mut self,
        name: &str,
        env: Vec<String>,
        origin: Option<Key>,
        emitter: Option<usize>,
    ) -> u64 {
        let id = self.bus.emit(name, env, origin, emitter);
        if self.dlog.verbose {
            self.log(&format!("event {}", self.bus.describe(id)));
        }
        id
    }

    /// Handles queued events and delivers what finished events owe, until
    /// nothing is left to do.
    fn process_events(&mut self) {
        while let Some(next) = self.bus.next() {
            match next {
                Next::Done(key) if self.jobs.instances.contains_key(&key) => {
                    let _ = self.drive(&key, Input::EventDone);
                }
                Next::Done(_) => {}
                Next::Event(id) => {
                    // Every instance's `stop on` first, then every job's
                    // `start on`: a job with `start on foo` and `stop on
                    // foo` is restarted by foo.
                    let (stops, fin) = self.bus.offer_stop(id, &self.jobs);
                    for (key, env) in stops {
                        let _ = self.drive(&key, Input::Stop(env));
                    }
                    self.finish(fin);
                    for s in self.bus.offer_start(id, &self.jobs) {
                        self.start_by_events(&s.class, &s.contributing, s.env);
                        let mut fin = Vec::new();
                        self.bus.release_all(s.released, &mut fin);
                        self.finish(fin);
                    }
                    let fin = self.bus.handled(id);
                    self.finish(fin);
                }
            }
        }
    }

    /// `start on` became true: start (or find) the instance the events name.
    fn start_by_events(&mut self, class: &Rc<JobClass>, contributing: &[u64], env: Vec<String>) {
        if self.shutdown.active && self.shutdown.event.is_none() {
            return;
        }
        let key = match self.jobs.instance_for(class, &env) {
            Ok(Some(key)) => key,
            Ok(None) => return, // already wanted
            Err(msg) => return self.log(&msg),
        };
        if !self.jobs.instances.contains_key(&key) {
            self.add_instance(
                key.clone(),
                Instance::new(&key.0, &key.1, class.clone(), Vec::new()),
            );
        }
        self.bus.hold_for(&key, contributing, events::Hold::Started);
        let _ = self.drive(&key, Input::Start(env));
    }

    /// Registers a new instance, with its own `stop on` state.
    fn add_instance(&mut self, key: Key, inst: Instance) {
        self.bus.add_instance(&key, &inst.class);
        self.jobs.add_instance(key, inst);
    }

    /// What a notify socket received.
    fn on_notify(&mut self, token: usize) {
        for notice in self
            .notify
            .receive(token, &self.jobs, &self.dlog, &self.reactor)
        {
            match notice {
                notify::Notice::Drive(key, input) => {
                    let _ = self.drive(&key, input);
                }
                notify::Notice::MainPid { key, pid, pgid } => {
                    self.jobs.spawned(&key, pid);
                    let _ = self.drive(&key, Input::MainPid { pid, pgid });
                }
            }
        }
    }

    /// A main process that is not our child ended (its pidfd says so).
    fn on_alien(&mut self, token: usize) {
        self.reap(); // re-parented to us meanwhile: the reaper has it
        let Some((key, pid)) = self.notify.alien_ended(token, &self.reactor) else {
            return;
        };
        if let Some(input) = self.jobs.alien_ended(&key, pid, &mut self.sys) {
            let _ = self.drive(&key, input);
        }
    }

    /// An orderly shutdown: the runlevel 0 event, so that `stop on
    /// runlevel [016]` and the orderings written with `stop on stopping x`
    /// are honoured; then every job stopped in the reverse of the order in
    /// which they reached running (the loop's settling does it).
    fn begin_shutdown(&mut self, why: &str) {
        if !self.shutdown.active {
            self.log(why);
            self.shutdown.begin(&self.jobs, &self.reactor);
            let env = vec![
                "RUNLEVEL=0".into(),
                format!("PREVLEVEL={}", self.cfg.runlevel),
            ];
            self.shutdown.event = Some(self.emit("runlevel", env, None, None));
        }
    }

    /// Stops jobs one at a time (see `Shutdown::next_to_stop`).
    fn stop_next_for_shutdown(&mut self) {
        loop {
            let pending = self.shutdown.event.is_some_and(|id| self.bus.pending(id));
            let Some(key) = self.shutdown.next_to_stop(&self.jobs, pending) else {
                return;
            };
            self.shutdown.watch_hook(&key, &self.jobs, &self.reactor);
            if self.drive(&key, Input::Stop(Vec::new())).is_err() {
                return; // cannot happen (its goal was start): no endless loop
            }
        }
    }
}
