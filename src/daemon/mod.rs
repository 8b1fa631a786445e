//! The daemon: one single-threaded event loop over epoll, and this file its
//! conductor. It owns the parts (each with its own state, none holding or
//! changing another) and, turn by turn, hands each what the world said and
//! carries out what the parts return:
//!
//! * `reactor`: epoll, the signalfd, the listeners, tokens, the timers;
//! * `jobs`: definitions, instances and their machines, the pid map;
//! * `events`: the event queue, `start on`/`stop on` matchers, holds;
//! * `clients`: control clients and who waits for what;
//! * `output`: job output, log files, the compressors, the daemon's log;
//! * `notify`: `expect notify` sockets and main processes by pidfd;
//! * `shutdown`: the orderly stop; `state`: the state file; `watch`: inotify.
//!
//! Commands are in `commands.rs` (costs in `costs.rs`), `re-exec` in
//! `reexec.rs`. It never sleeps and never polls: with nothing to do it
//! waits in `epoll_wait` with no timeout (or until the nearest timer).

mod cgroups;
mod clients;
mod commands;
mod costs;
mod dispatch;
mod events;
mod forward;
mod jobs;
mod notify;
mod output;
mod probes;
mod reactor;
mod reexec;
pub mod setup;
mod shutdown;
mod state;
#[cfg(test)]
mod tests;
mod watch;

use mio::Events;

use crate::job::{Input, Instance, Refusal};
use crate::process;
use jobs::Effect;
use reactor::{Reactor, Timer};

pub use output::DAEMON_LOG;
pub use reexec::{FORMAT as HANDOVER_WRITES, READS as HANDOVER_READS};
pub use setup::Config;

pub use crate::job::Key;

pub struct Daemon {
    host: setup::Host,
    reactor: Reactor,
    jobs: jobs::JobTable,
    bus: events::EventBus,
    clients: clients::Clients,
    output: output::Output,
    dlog: output::DaemonLog,
    notify: notify::Notify,
    shutdown: shutdown::Shutdown,
    state: state::StateFile,
    watcher: watch::Watcher,
    probes: probes::Probes,
    sys: process::sys::Real,
}

/// The instances a drive destroyed (as they were last), for its caller.
type Gone = Vec<Instance>;

/// Runs the daemon in the foreground until SIGTERM or SIGINT; returns the
/// exit code.
pub fn run(cfg: Config) -> i32 {
    crate::log::format::set_daemon_format(cfg.log_format);
    process::hold_large_blocks_apart();
    if let Some(mut d) = Daemon::resumed(&cfg) {
        return d.run();
    }
    // Nothing the daemon inherited reaches a job.
    process::spawn::close_inherited_fds();
    match setup::Host::open(cfg).and_then(|(host, l)| Daemon::new(host, l)) {
        Ok(mut d) => d.run(),
        Err(msg) => {
            crate::log::format::say(&msg);
            1
        }
    }
}

impl Daemon {
    /// The daemon with its signals, epoll and logs set up, and nothing
    /// loaded yet.
    fn bare(host: setup::Host, (public, private): setup::Listeners) -> Result<Daemon, String> {
        setup::subreaper()?;
        let mut reactor = Reactor::new(setup::signals()?, public)?;
        let (dir, dlog) = output::open(&host.cfg, host.uid)?;
        reactor.listen_private(private, &dlog)?;
        let pass = (host.cfg.pass_all_env, host.cfg.pass_env.clone());
        let base = crate::job::env::Base::of_this_process(host.system, pass, &host.cfg.socket);
        process::time::ignore_sigxfsz();
        Ok(Daemon {
            output: output::Output::new(
                dir,
                host.cfg.log_policy,
                host.cfg.log_to_stdout.then_some(host.cfg.log_format),
            ),
            jobs: jobs::JobTable::new(base, host.cfg.verbose).with_rest(&host, reactor.now()),
            bus: Default::default(),
            clients: clients::Clients::new(host.uid, host.cfg.control_gid),
            notify: Default::default(),
            shutdown: shutdown::Shutdown::new(host.cfg.exit_with.clone()),
            state: Default::default(),
            watcher: watch::Watcher::start(&reactor, &dlog),
            probes: Default::default(),
            sys: cgroups::open(&host.cfg, &reactor),
            dlog,
            reactor,
            host,
        })
    }

    /// A fresh start: the jobs loaded and the boot events emitted.
    fn new(host: setup::Host, listeners: setup::Listeners) -> Result<Daemon, String> {
        let mut d = Daemon::bare(host, listeners)?;
        d.groups_at_start();
        d.reload_configuration();
        d.dlog.log(&d.jobs.loaded(&d.host.cfg.conf_dirs));
        d.reactor.arm_daily();
        for (name, env) in setup::boot_events(&d.host.cfg.runlevel) {
            d.emit(&name, env, None, None);
        }
        Ok(d)
    }

    fn run(&mut self) -> i32 {
        self.dlog
            .log(&format!("listening on {}", self.host.cfg.socket.display()));
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
            self.output.compress_daemon_log(&self.dlog);
            self.clients.drop_laggards(&self.reactor);
            self.save_state();
            if !self.clients.reexec.is_empty() {
                self.reexec(); // returns only if the exec failed
            }
            if self.shutdown.active && self.jobs.instances.is_empty() {
                break;
            }
            let (jobs, clients, probes) = (&self.jobs.instances, &self.clients, &self.probes);
            self.reactor.drop_stale(|t| match t {
                Timer::Instance(k, _) => !jobs.contains_key(k),
                Timer::ClientIdle(c) => !clients.is_open(*c),
                Timer::Probe(k, role, gen) => !probes.is_live(k, *role, *gen),
                _ => false,
            });
            let busy = self.output.is_busy();
            if !self.reactor.wait(&mut events, busy, &self.dlog) {
                continue;
            }
            self.output.read_more(&self.reactor, &self.dlog);
            for ev in events.iter() {
                match ev.token() {
                    reactor::SIGNALS => self.on_signals(),
                    reactor::LISTENER => self.clients.accept(false, &self.reactor, &self.dlog),
                    reactor::PRIV_LISTENER => self.clients.accept(true, &self.reactor, &self.dlog),
                    reactor::INOTIFY => self.watcher.on_change(&self.reactor),
                    reactor::CGROUPS => self.on_groups(),
                    mio::Token(t) if self.output.is_reader(t) => {
                        self.output.on_output(t, &self.reactor, &self.dlog)
                    }
                    mio::Token(t) if self.notify.is_socket(t) => self.on_notify(t),
                    mio::Token(t) if self.probes.is_socket(t) => {
                        let told = self.probes.on_socket(t, &self.reactor);
                        self.told(told);
                    }
                    mio::Token(t) if self.notify.is_alien(t) => self.on_alien(t),
                    mio::Token(t) => {
                        if ev.is_readable() {
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
                self.serve(t);
            }
            // Descriptors may have been freed by what happened above.
            self.clients.retry_accept(&self.reactor, &self.dlog);
        }
        self.dlog.log("all jobs stopped; exiting");
        if let Some(g) = &mut self.sys.groups {
            g.close();
        }
        setup::clean_up(&self.host.cfg.socket);
        self.shutdown.exit_code
    }

    fn on_signals(&mut self) {
        for sig in self.reactor.signals(&self.dlog) {
            match sig {
                libc::SIGCHLD => self.reap(),
                libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                    let name = crate::conf::signal::display(sig);
                    self.begin_shutdown(&format!("SIG{name}: stopping every job"));
                }
                libc::SIGUSR1 => {
                    self.dlog.log("SIGUSR1: reopening log files");
                    self.output.reopen_logs(&self.dlog);
                }
                libc::SIGUSR2 | libc::SIGWINCH => self.forward(sig),
                libc::SIGHUP if self.host.cfg.forward_hup => self.forward(sig),
                libc::SIGHUP => {
                    self.dlog.log("SIGHUP: reloading configuration");
                    self.reload_configuration();
                }
                _ => {}
            }
        }
    }

    /// Collects every ended child and tells the instances.
    fn reap(&mut self) {
        let (exits, stopped) = process::reap_and_stops();
        // `expect stop`: a main process that stopped itself is ready.
        let pids = &self.jobs.pids;
        let ready = stopped.into_iter().filter_map(|pid| {
            let key = pids.get(&pid)?.clone();
            Some((key, Input::StoppedItself { pid }))
        });
        self.feed(ready.collect::<Vec<_>>());
        for e in exits {
            if self.probes.is_probe_pid(e.pid) {
                let told = self.probes.reaped(e.pid, e.exit, &self.reactor);
                self.told(told);
            } else if !self.output.compression_finished(e.pid, &self.dlog) {
                let helper = |p: i32| self.output.is_compressor(p);
                let inputs = self.jobs.reaped(e, &mut self.sys, &helper);
                self.feed(inputs);
            }
        }
        let helper = |p: i32| self.output.is_compressor(p);
        let inputs = self.jobs.after_reap(&mut self.sys, &helper);
        self.feed(inputs);
    }

    /// Drives each instance with its input, in order (a refusal is no news).
    fn feed(&mut self, inputs: impl IntoIterator<Item = (Key, Input)>) {
        for (key, input) in inputs {
            let _ = self.drive(&key, input);
        }
    }

    fn fire_timers(&mut self) {
        while let Some(timer) = self.reactor.due() {
            match timer {
                Timer::Instance(key, gen) => {
                    let fork = self.jobs.fork_timer(&key);
                    self.feed(fork.map(|input| (key.clone(), input)));
                    self.feed([(key, Input::Timer { gen })]);
                }
                Timer::Daily => {
                    self.output.rotate_daily(&self.dlog);
                    self.reactor.arm_daily();
                }
                Timer::ShutdownHook(key) => {
                    let (jobs, reactor) = (&self.jobs, &self.reactor);
                    self.shutdown
                        .check_hook(key, jobs, &mut self.sys, &self.dlog, reactor)
                }
                Timer::ClientIdle(t) => self.clients.check_idle(t, &self.reactor),
                Timer::Probe(key, role, gen) => {
                    let next = self.probes.on_timer(key, role, gen, &self.reactor);
                    self.probe_next(next);
                }
                Timer::StateRetry => {
                    self.state.retry_due();
                    self.save_state();
                }
                Timer::Rescan => {
                    self.watcher.rescan_due(&self.dlog);
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
        let r = self.jobs.reload(&self.host.cfg.conf_dirs);
        for msg in self.watcher.update(&r.watch, &r.missing, &self.reactor) {
            crate::log::format::say(&msg);
        }
        for line in &r.logs {
            self.dlog.log(line);
        }
        for news in self.jobs.reload_news() {
            self.clients.publish(&news, &self.reactor);
        }
        let fin = self.bus.reload(&r.changed, &r.gone);
        self.finish(fin);
        self.process_events();
    }

    /// Writes the state file if the set of job processes changed.
    fn save_state(&mut self) {
        if self.jobs.dirty && self.state.may_write() {
            let (socket, records) = (&self.host.cfg.socket, self.jobs.records());
            let rest = self.jobs.rest_since_epoch(self.reactor.now());
            let (dlog, reactor) = (&self.dlog, &self.reactor);
            self.jobs.dirty = !self.state.write(socket, (&records, &rest), dlog, reactor);
        }
    }

    /// Feeds `input` to an instance and carries out what it asks, until it
    /// waits for the world again.
    fn drive(&mut self, key: &Key, input: Input) -> Result<Gone, Refusal> {
        let (host, notify, output) = (&self.host, &mut self.notify, &mut self.output);
        let (reactor, dlog) = (&self.reactor, &self.dlog);
        // Spawning: the notify socket (`expect notify`), the output captured.
        let mut spawn = |mut launch: jobs::Launch| {
            notify.prepare(key, &mut launch, host, reactor)?;
            output.spawn(launch, host, reactor, dlog)
        };
        let now = || reactor.now();
        self.jobs.watched = self.clients.watching();
        let effects = self
            .jobs
            .drive(key, input, &now, &mut self.sys, &mut spawn)?;
        let mut gone = Gone::new();
        for effect in effects {
            self.apply(key, effect, &mut gone);
        }
        let fin = self
            .bus
            .check_blocked(key, self.jobs.instances.get(key).map(|i| &**i));
        self.finish(fin);
        if let Some(inst) = self.jobs.instances.get(key) {
            let (jobs, now) = (&self.jobs, self.reactor.now());
            let answers = self.clients.answers_for(inst, &|i| jobs.status_of(i, now));
            self.answer(answers);
        }
        Ok(gone)
    }

    /// Carries out one effect of a step.
    fn apply(&mut self, key: &Key, effect: Effect, gone: &mut Gone) {
        match effect {
            Effect::Log(msg) => self.dlog.log(&msg),
            Effect::News(news) => self.clients.publish(&news, &self.reactor),
            Effect::Probe(role) => {
                let class = self.jobs.instances.get(key).map(|i| i.class.clone());
                if let Some(probe) = class.as_ref().and_then(|c| c.health.probe(role)) {
                    self.probes.start(key, role, probe, &self.reactor);
                }
            }
            Effect::StopProbes => self.probes.stop(key),
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
                self.probes.stop(key);
                if let Some(why) = self.shutdown.exit_with_failed(&inst) {
                    self.begin_shutdown(&why);
                }
                let fin = self.bus.instance_gone(key, inst.failed.is_some());
                self.finish(fin);
                let answers = self.clients.answers_for_gone(&inst);
                self.answer(answers);
                gone.push(*inst);
            }
        }
    }

    /// What a notify socket received.
    fn on_notify(&mut self, token: usize) {
        let (jobs, dlog, reactor) = (&self.jobs, &self.dlog, &self.reactor);
        let notices = self.notify.receive(token, jobs, dlog, reactor);
        self.feed(notices);
    }

    /// A main process that is not our child ended (its pidfd says so).
    fn on_alien(&mut self, token: usize) {
        self.reap(); // re-parented to us meanwhile: the reaper has it
        let Some((key, pid)) = self.notify.alien_ended(token, &self.reactor) else {
            return;
        };
        let input = self.jobs.alien_ended(&key, pid, &mut self.sys);
        self.feed(input.map(|input| (key, input)));
    }

    /// An orderly shutdown: the runlevel 0 event, so that `stop on
    /// runlevel [016]` and the orderings written with `stop on stopping x`
    /// are honoured; then every job stopped in the reverse of the order in
    /// which they reached running (the loop's settling does it).
    fn begin_shutdown(&mut self, why: &str) {
        if !self.shutdown.active {
            self.dlog.log(why);
            let runlevel = &self.host.cfg.runlevel;
            let env = self.shutdown.begin(&self.jobs, &self.reactor, runlevel);
            self.shutdown.event = Some(self.emit("runlevel", env, None, None));
        }
    }

    /// Stops jobs one at a time (see `Shutdown::next_to_stop`).
    fn stop_next_for_shutdown(&mut self) {
        loop {
            let pending = self.shutdown.event.is_some_and(|id| self.bus.pending(id));
            let next = self
                .shutdown
                .next_to_stop(&self.jobs, pending, &self.reactor);
            let Some(key) = next else { return };
            if self.drive(&key, Input::Stop(Vec::new())).is_err() {
                return; // cannot happen (its goal was start): no endless loop
            }
        }
    }
}
