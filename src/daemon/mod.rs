//! The daemon: one single-threaded event loop over epoll (through mio).
//!
//! It owns the job table and turns what happens in the world (signals,
//! child exits, control requests, timers) into inputs of each instance's
//! state machine (`job`), then carries out the actions the machine returns
//! (spawn, signal, arm a timer, log). It never sleeps and never polls: with
//! nothing to do it waits in `epoll_wait` with no timeout (or until the
//! nearest timer).

mod clients;
mod commands;
mod events;
mod notify;
mod output;
mod reexec;
pub mod setup;
mod state;
mod watch;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signalfd::SignalFd;

use crate::conf::{JobClass, ProcessType};
use crate::confdir;
use crate::job::{self, Action, Input, Instance, JobEvent, Refusal};
use crate::process::{self, spawn};

use clients::Client;

const SIGNALS: Token = Token(0);
const LISTENER: Token = Token(1);
const INOTIFY: Token = Token(2);
const FIRST_CLIENT: usize = 3;
/// The private listener (`SOCKET.priv`); far from the client tokens, which
/// an image of the first handover format numbered from 3.
const PRIV_LISTENER: Token = Token(usize::MAX - 1);

/// How long a burst of conf-dir changes may go on before one rescan.
const RESCAN_DELAY: Duration = Duration::from_millis(100);

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// An instance's timer, valid while its generation is `gen`.
    Instance(Key, u64),
    /// Rescan the conf dirs after a burst of changes.
    Rescan,
    /// Rotate the logs that rotate daily (local midnight).
    Daily,
    /// During a shutdown: see whether an instance on its way down is held
    /// up by one of its hooks.
    ShutdownHook(Key),
    /// Whether a control client has sent a whole request in time.
    ClientIdle(usize),
    /// Try again to write the state file.
    StateRetry,
}

/// Where the daemon finds its jobs and puts its socket and logs.
#[derive(Debug, Clone)]
pub struct Config {
    pub conf_dirs: Vec<PathBuf>,
    pub log_dir: PathBuf,
    pub socket: PathBuf,
    /// The runlevel the boot sequence announces (`runlevel RUNLEVEL=2`).
    pub runlevel: String,
    /// Log every goal and state change, and every event.
    pub verbose: bool,
    /// How job logs are rotated unless a job says otherwise.
    pub log_policy: crate::log::Policy,
    /// Copy every job's output to the daemon's stdout, prefixed with its name.
    pub log_to_stdout: bool,
    /// When this job fails (or hits its respawn limit), stop everything and
    /// exit with its exit status (a container's main job).
    pub exit_with: Option<String>,
}

/// The daemon's own log file in LOGDIR. Job log names never contain `@`,
/// so no job's log can take this name.
pub const DAEMON_LOG: &str = "upkeep@daemon.log";

/// An instance's key: job name and instance name.
pub type Key = (String, String);

/// Someone waiting for an instance to get somewhere.
#[derive(Debug, Clone)]
struct Waiter {
    client: usize,
    key: Key,
    kind: WaitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitKind {
    Start,
    Stop,
    /// A restart: done once the instance is running again in a newer
    /// generation than this.
    Restart(u64),
}

pub struct Daemon {
    cfg: Config,
    poll: Poll,
    signals: SignalFd,
    listener: mio::net::UnixListener,
    /// `SOCKET.priv`: root and the daemon's user, never locked out.
    priv_listener: Option<mio::net::UnixListener>,
    per_uid: clients::PerUid,
    accept_throttle: clients::Throttle,
    /// Clients whose answers were all read: their next requests are read
    /// before the loop waits again.
    resume_read: Vec<usize>,
    _lock: setup::Lock,
    my_uid: u32,
    system: bool,
    original_nofile: Option<(u64, u64)>,
    epoch: Instant,

    classes: BTreeMap<String, Rc<JobClass>>,
    /// Where each job's definition came from.
    files: BTreeMap<String, confdir::JobFiles>,
    instances: BTreeMap<Key, Instance>,
    pids: HashMap<i32, Key>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    watcher: Option<watch::Watcher>,
    rescan_armed: bool,
    /// accept() failed for want of descriptors: connections wait in the
    /// backlog, and the listener will not signal them again (epoll is
    /// edge-triggered), so accepting is retried after each wakeup.
    accept_stalled: bool,
    /// The pid map changed since the state file was last written.
    state_dirty: bool,
    /// (start time, process group) of the pids in the map, for the state
    /// file.
    proc_identity: HashMap<i32, (u64, i32)>,
    /// The effective uid of the pids in the map, for the state file.
    proc_uid: HashMap<i32, u32>,
    /// A failed state write waits for this retry.
    state_retry: state::Retry,
    notifiers: HashMap<usize, notify::Notifier>,
    notify_by_key: HashMap<Key, usize>,
    /// Main processes named by `MAINPID` that are not our children.
    aliens: HashMap<usize, notify::Alien>,
    /// Main processes of `expect fork/daemon` jobs that exited with no
    /// child to follow yet: (pid, status, start time), decided on later.
    pending_exit: HashMap<Key, (i32, crate::job::Exit, Option<u64>)>,
    /// The current problems of each job's files (shown by `status`).
    conf_errors: BTreeMap<String, Vec<String>>,
    timer_seq: u64,
    running_order: HashMap<Key, u64>,
    running_seq: u64,

    clients: HashMap<usize, Client>,
    /// Tokens for clients and output readers, never reused.
    next_token: usize,
    logs: HashMap<String, crate::log::LogFile>,
    /// The log dir, held open: every log file is reached through it.
    log_dir: crate::log::SharedDir,
    readers: output::Readers,
    /// Compression helpers running, by pid: which log they work for.
    compressors: HashMap<i32, String>,
    log_policy: crate::log::Policy,
    log_to_stdout: bool,
    /// Readers that used up their budget with more to read.
    more_output: Vec<usize>,
    daemon_log: std::cell::RefCell<crate::log::LogFile>,
    /// A rotation of the daemon's own log, made inside `log()` (which
    /// cannot start a helper), to compress at the end of the loop turn.
    daemon_log_rotated: std::cell::RefCell<Option<crate::log::Compress>>,
    waiters: Vec<Waiter>,
    /// How instances destroyed during the current request ended (for
    /// answering a request whose job finished before it could wait).
    last_destroyed: HashMap<Key, Option<(crate::job::FailedProcess, Option<String>)>>,

    /// Clients whose `re-exec` is carried out at the end of the loop turn.
    reexec_requests: Vec<usize>,
    /// The daemon's binary (its path when it started: after an upgrade
    /// that path holds the new one) and argv, for `re-exec`.
    exe: Option<PathBuf>,
    argv: Vec<OsString>,

    shutting_down: bool,
    /// What the daemon exits with (0, or the `--exit-with` job's status).
    exit_code: i32,
    /// The `runlevel 0` event of a shutdown, while it is being handled.
    shutdown_event: Option<u64>,
    /// Instances watched during a shutdown, with the hook process that was
    /// last sent the kill signal (SIGKILL comes next).
    shutdown_hooks: HashMap<Key, Option<i32>>,
    verbose: bool,
    /// What every job's environment starts from (reference 6.3).
    env_base: job::env::Base,

    events: BTreeMap<u64, events::Event>,
    next_event: u64,
    event_queue: VecDeque<u64>,
    /// Instances whose blocking job event finished (EventDone to deliver).
    event_done: VecDeque<Key>,
    start_matchers: BTreeMap<String, crate::event::matcher::Matcher>,
    stop_matchers: BTreeMap<Key, crate::event::matcher::Matcher>,
    /// Events an instance holds until it gets where they sent it.
    blocking: HashMap<Key, Vec<(u64, events::Hold)>>,
}

/// Runs the daemon in the foreground until SIGTERM or SIGINT; returns the
/// exit code.
pub fn run(cfg: Config) -> i32 {
    match reexec::handed_over() {
        None => {}
        Some(fd) => {
            match fd.and_then(|fd| Daemon::resume(cfg.clone(), fd)) {
                Ok(mut d) => return d.run(),
                Err(msg) => {
                    // Whatever was handed across goes, the lock with it;
                    // the state file then names the old image's job
                    // processes, which `new` stops before starting afresh.
                    eprintln!(
                        "upkeep: unable to resume after re-exec: {msg}; stopping what the previous image ran and starting afresh"
                    );
                    process::handover::close_inherited();
                }
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
        mut listener: mio::net::UnixListener,
        original_nofile: Option<(u64, u64)>,
    ) -> Result<Daemon, String> {
        let my_uid = process::euid();
        let system = my_uid == 0;
        let cfg_socket = cfg.socket.clone();
        let signals = setup::signals()?;
        setup::subreaper()?;
        let poll = Poll::new().map_err(|e| format!("unable to create epoll: {e}"))?;
        poll.registry()
            .register(
                &mut SourceFd(&setup::raw(&signals)),
                SIGNALS,
                Interest::READABLE,
            )
            .map_err(|e| format!("unable to watch signals: {e}"))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("unable to watch the socket: {e}"))?;
        let log_dir = crate::log::LogDir::open(&cfg.log_dir, my_uid)?;
        let log_dir = std::rc::Rc::new(std::cell::RefCell::new(log_dir));
        let daemon_log =
            crate::log::LogFile::new(log_dir.clone(), DAEMON_LOG.to_string(), cfg.log_policy);
        let (log_policy, log_to_stdout) = (cfg.log_policy, cfg.log_to_stdout);
        let mut d = Daemon {
            cfg,
            poll,
            signals,
            listener,
            priv_listener: None,
            per_uid: Default::default(),
            accept_throttle: Default::default(),
            resume_read: Vec::new(),
            _lock: lock,
            my_uid,
            system,
            original_nofile,
            epoch: Instant::now(),
            classes: BTreeMap::new(),
            files: BTreeMap::new(),
            instances: BTreeMap::new(),
            pids: HashMap::new(),
            timers: BinaryHeap::new(),
            watcher: None,
            rescan_armed: false,
            accept_stalled: false,
            conf_errors: BTreeMap::new(),
            pending_exit: HashMap::new(),
            state_dirty: false,
            proc_identity: HashMap::new(),
            proc_uid: HashMap::new(),
            state_retry: Default::default(),
            notifiers: HashMap::new(),
            notify_by_key: HashMap::new(),
            aliens: HashMap::new(),
            timer_seq: 0,
            running_order: HashMap::new(),
            running_seq: 0,
            clients: HashMap::new(),
            next_token: FIRST_CLIENT,
            logs: HashMap::new(),
            log_dir,
            readers: HashMap::new(),
            compressors: HashMap::new(),
            log_policy,
            log_to_stdout,
            more_output: Vec::new(),
            daemon_log: std::cell::RefCell::new(daemon_log),
            daemon_log_rotated: std::cell::RefCell::new(None),
            waiters: Vec::new(),
            last_destroyed: HashMap::new(),
            shutting_down: false,
            exit_code: 0,
            shutdown_event: None,
            shutdown_hooks: HashMap::new(),
            verbose: false,
            env_base: job::env::Base::of_this_process(system, &cfg_socket),
            events: BTreeMap::new(),
            next_event: 0,
            event_queue: VecDeque::new(),
            event_done: VecDeque::new(),
            start_matchers: BTreeMap::new(),
            stop_matchers: BTreeMap::new(),
            blocking: HashMap::new(),
            reexec_requests: Vec::new(),
            exe: own_binary(),
            argv: std::env::args_os().collect(),
        };
        d.verbose = d.cfg.verbose;
        Ok(d)
    }

    /// Serves the private socket (when there is one: see
    /// `setup::bind_private`).
    fn listen_private(&mut self, l: Result<mio::net::UnixListener, String>) -> Result<(), String> {
        let mut l = match l {
            Ok(l) => l,
            Err(why) => {
                self.log(&format!(
                    "{why}; root and the daemon's user share the public socket"
                ));
                return Ok(());
            }
        };
        self.poll
            .registry()
            .register(&mut l, PRIV_LISTENER, Interest::READABLE)
            .map_err(|e| format!("unable to watch the private socket: {e}"))?;
        self.priv_listener = Some(l);
        Ok(())
    }

    /// Watches the conf dirs (what to watch comes with each scan).
    fn start_watching(&mut self) {
        match watch::Watcher::new() {
            Ok(w) => {
                let fd = w.fd();
                match self
                    .poll
                    .registry()
                    .register(&mut SourceFd(&fd), INOTIFY, Interest::READABLE)
                {
                    Ok(()) => self.watcher = Some(w),
                    Err(e) => self.log(&format!("unable to watch configuration directories: {e}")),
                }
            }
            Err(msg) => self.log(&msg),
        }
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
        let mut d = Daemon::bare(cfg, lock, listener, original_nofile)?;
        d.listen_private(private)?;
        d.start_watching();
        crate::process::time::ignore_sigxfsz();
        d.load_jobs();
        d.arm_daily();
        let runlevel = d.cfg.runlevel.clone();
        for (name, env) in events::boot_events(&runlevel) {
            d.emit(&name, env, None, None);
        }
        Ok(d)
    }

    /// The daemon's own messages: to its stderr, and to its log file in
    /// LOGDIR with a time stamp.
    fn log(&self, msg: &str) {
        eprintln!("upkeep: {msg}");
        let line = format!(
            "{} {msg}\n",
            crate::process::time::timestamp(std::time::SystemTime::now())
        );
        // A rotation this write makes is compressed like a job log's, once
        // the loop turn ends (see `start_deferred_compression`).
        if let Ok(mut l) = self.daemon_log.try_borrow_mut() {
            if let Some(c) = l.write(line.as_bytes()) {
                *self.daemon_log_rotated.borrow_mut() = Some(c);
            }
        }
    }

    /// Monotonic time since the daemon started.
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Loads every job of the conf dirs; a bad file is reported and skipped.
    fn load_jobs(&mut self) {
        self.reload_configuration();
        self.log(&format!(
            "loaded {} job{} from {}",
            self.classes.len(),
            if self.classes.len() == 1 { "" } else { "s" },
            self.cfg
                .conf_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    /// Rescans every conf dir (SIGHUP, `reload-configuration`): new jobs
    /// are defined, changed ones take effect at their next start, removed
    /// ones go once they have stopped; a file with errors keeps the last
    /// good definition. Starts and stops nothing.
    pub(super) fn reload_configuration(&mut self) {
        let scan = confdir::scan(&self.cfg.conf_dirs);
        for p in &scan.problems {
            self.log(&p.to_string());
        }
        if let Some(w) = &mut self.watcher {
            for msg in w.update(&scan.watch) {
                eprintln!("upkeep: {msg}");
            }
        }
        self.conf_errors.clear();
        let mut trust = confdir::Trust::for_this_user();
        for (name, files) in &scan.jobs {
            let loaded = confdir::load_with(files, &mut trust);
            for d in &loaded.diagnostics {
                self.log(&d.to_string());
            }
            if !loaded.diagnostics.is_empty() {
                let errors = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
                self.conf_errors.insert(name.clone(), errors);
            }
            match loaded.job {
                Some(job) if self.classes.get(name).is_none_or(|c| **c != job) => {
                    self.set_start_matcher(&job);
                    self.classes.insert(name.clone(), Rc::new(job));
                }
                Some(_) => {}
                None if self.classes.contains_key(name) => {
                    self.log(&format!("{name}: keeping the last good definition"));
                }
                None => {}
            }
            self.files.insert(name.clone(), files.clone());
        }
        let gone: Vec<String> = self
            .classes
            .keys()
            .filter(|n| !scan.jobs.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.classes.remove(&name);
            self.files.remove(&name);
            if let Some(mut m) = self.start_matchers.remove(&name) {
                for id in m.reset() {
                    self.release(id, false);
                }
            }
        }
        self.process_events();
    }

    /// Reads one job's files again (for `restart`). A file that now has
    /// errors keeps the last good definition in force.
    fn reload_job(&mut self, name: &str) {
        let Some(files) = self.files.get(name) else {
            return;
        };
        let loaded = confdir::load(files);
        for d in &loaded.diagnostics {
            self.log(&d.to_string());
        }
        if loaded.diagnostics.is_empty() {
            self.conf_errors.remove(name);
        } else {
            let errors = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
            self.conf_errors.insert(name.to_string(), errors);
        }
        match loaded.job {
            Some(job) => {
                self.set_start_matcher(&job);
                self.classes.insert(name.to_string(), Rc::new(job));
            }
            None => self.log(&format!("{name}: keeping the last good definition")),
        }
    }

    fn run(&mut self) -> i32 {
        self.log(&format!("listening on {}", self.cfg.socket.display()));
        let mut events = Events::with_capacity(256);
        self.process_events();
        // What the boot events started is on record before the first wait:
        // a daemon killed before anything woke it leaves nothing unknown.
        self.save_state();
        loop {
            let timeout = if self.more_output.is_empty() {
                self.timers
                    .peek()
                    .map(|Reverse((at, ..))| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO) // output is waiting to be read
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.log(&format!("epoll: {e}"));
                }
                continue;
            }
            for t in std::mem::take(&mut self.more_output) {
                self.on_output(t);
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => self.on_signals(),
                    LISTENER => self.accept(false),
                    PRIV_LISTENER => self.accept(true),
                    INOTIFY => self.on_conf_change(),
                    Token(t) if self.readers.contains_key(&t) => self.on_output(t),
                    Token(t) if self.notifiers.contains_key(&t) => self.on_notify(t),
                    Token(t) if self.aliens.contains_key(&t) => self.on_alien(t),
                    Token(t) => self.on_client(t, ev.is_readable(), ev.is_writable()),
                }
            }
            self.fire_timers();
            while let Some(t) = self.resume_read.pop() {
                self.read_client(t);
            }
            // Descriptors may have been freed by what happened above.
            if self.accept_stalled {
                self.accept(false);
            }
            // Settle before waiting again: events queued by what happened
            // above, and (when shutting down) the next job to stop, whose
            // own stopping event must be handled too.
            loop {
                self.process_events();
                if self.shutting_down {
                    self.stop_next_for_shutdown();
                }
                if self.event_queue.is_empty() && self.event_done.is_empty() {
                    break;
                }
            }
            if let Some(c) = self.daemon_log_rotated.take() {
                self.start_compression(DAEMON_LOG, c);
            }
            self.save_state();
            if !self.reexec_requests.is_empty() {
                self.reexec(); // returns only if the exec failed
            }
            if self.shutting_down && self.instances.is_empty() {
                break;
            }
        }
        self.log("all jobs stopped; exiting");
        let _ = std::fs::remove_file(&self.cfg.socket);
        let _ = std::fs::remove_file(setup::priv_path(&self.cfg.socket));
        let _ = std::fs::remove_file(state::state_path(&self.cfg.socket));
        let _ = std::fs::remove_dir_all(notify::notify_dir(&self.cfg.socket));
        self.exit_code
    }

    fn on_signals(&mut self) {
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => {
                    let sig = info.ssi_signo as i32;
                    match sig {
                        libc::SIGCHLD => self.reap(),
                        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => self.begin_shutdown(sig),
                        libc::SIGUSR1 => {
                            self.log("SIGUSR1: reopening log files");
                            self.reopen_logs();
                        }
                        libc::SIGHUP => {
                            self.log("SIGHUP: reloading configuration");
                            self.reload_configuration();
                        }
                        _ => {}
                    }
                }
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
            if let Some(key) = self.pids.get(&pid).cloned() {
                let _ = self.drive(&key, Input::StoppedItself { pid });
            }
        }
        for (pid, status) in exits {
            if self.compression_finished(pid) {
                continue;
            }
            self.state_dirty |= self.pids.contains_key(&pid);
            let exited_start = self.proc_identity.get(&pid).map(|&(start, _)| start);
            let Some(key) = self.pids.remove(&pid) else {
                continue; // an orphan we adopted as subreaper
            };
            let is_main = self
                .instances
                .get(&key)
                .is_some_and(|i| i.pid(ProcessType::Main) == Some(pid));
            // A daemonizing program: follow its re-parented child.
            if is_main
                && self
                    .instances
                    .get(&key)
                    .is_some_and(|i| matches!(i.waiting, job::Waiting::Fork(_)))
            {
                if !self.follow_fork(&key, pid, exited_start) {
                    // Nothing to follow yet: the child may be half-way
                    // through its own exit. Decide on the next reap, or
                    // when the fork timer runs out.
                    self.pending_exit
                        .insert(key.clone(), (pid, status, exited_start));
                }
                continue;
            }
            let pgid = self
                .instances
                .get(&key)
                .and_then(|i| i.group)
                .unwrap_or(pid);
            let group_empty = !is_main || self.job_processes_gone(&key, pgid);
            let _ = self.drive(
                &key,
                Input::Exited {
                    pid,
                    status,
                    group_empty,
                },
            );
        }
        // Daemonizing programs whose child was not there yet.
        let pending: Vec<(Key, i32, Option<u64>)> = self
            .pending_exit
            .iter()
            .map(|(k, (p, _, start))| (k.clone(), *p, *start))
            .collect();
        for (key, pid, start) in pending {
            if self.follow_fork(&key, pid, start) {
                self.pending_exit.remove(&key);
            }
        }
        // Groups that outlived their main process.
        let lingering: Vec<(Key, i32)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.pid(ProcessType::Main).is_none())
            .filter_map(|(k, i)| i.group.map(|g| (k.clone(), g)))
            .collect();
        for (key, pgid) in lingering {
            if self.job_processes_gone(&key, pgid) {
                let _ = self.drive(&key, Input::GroupEmpty);
            } else if self
                .instances
                .get(&key)
                .is_some_and(|i| i.state == job::State::Killed)
            {
                // Processes that left the group (a new session) and were
                // re-parented to us when their parent died go the same way.
                let sig = self
                    .instances
                    .get(&key)
                    .map_or(libc::SIGTERM, |i| i.class.kill_signal);
                self.signal_escaped(&key, sig);
            }
        }
    }

    /// Whether nothing of a job's main process is left: its process group
    /// is empty, and no process that escaped the group (re-parented to us,
    /// carrying the job's identity) lives.
    fn job_processes_gone(&self, key: &Key, pgid: i32) -> bool {
        if !process::group_is_empty(pgid) {
            return false;
        }
        let me = std::process::id() as i32;
        let known = |p: i32| self.pids.contains_key(&p);
        crate::process::tree::orphans_of_job(me, &key.0, &key.1, &known).is_empty()
    }

    /// Sends a signal to the processes of a job that escaped its group.
    fn signal_escaped(&self, key: &Key, signal: i32) {
        let me = std::process::id() as i32;
        let known = |p: i32| self.pids.contains_key(&p);
        for o in crate::process::tree::orphans_of_job(me, &key.0, &key.1, &known) {
            let _ = process::kill_pid(o.pid, signal);
        }
    }

    fn arm_daily(&mut self) {
        let now = std::time::SystemTime::now();
        let next = crate::process::time::next_local_midnight(now);
        let after = next
            .duration_since(now)
            .unwrap_or(Duration::from_secs(86_400));
        self.arm(after, Timer::Daily);
    }

    fn arm(&mut self, after: Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers
            .push(Reverse((Instant::now() + after, self.timer_seq, timer)));
    }

    /// Something changed in a conf dir: rescan once the burst is over.
    fn on_conf_change(&mut self) {
        let changed = self.watcher.as_mut().is_some_and(|w| w.drain());
        if changed && !self.rescan_armed {
            self.rescan_armed = true;
            self.arm(RESCAN_DELAY, Timer::Rescan);
        }
    }

    /// Looks for the child a daemonizing main process (`exited`) left, and
    /// hands the job over to it. False if there is none.
    ///
    /// A child that carries the job's identity is the job's. One that
    /// carries none (its environment wiped) is taken only when this is the
    /// one instance waiting for a fork and the child is no older than the
    /// process that exited (`exited_start`, when known): then it can be no
    /// one else's.
    fn follow_fork(&mut self, key: &Key, exited: i32, exited_start: Option<u64>) -> bool {
        let me = std::process::id() as i32;
        // The daemon's own helpers (compressors) are children with no job
        // identity too: never taken for a job's process.
        let known = |p: i32| self.pids.contains_key(&p) || self.compressors.contains_key(&p);
        let mut found = crate::process::tree::orphans_of_job(me, &key.0, &key.1, &known)
            .first()
            .copied();
        let forking = self
            .instances
            .values()
            .filter(|i| matches!(i.waiting, job::Waiting::Fork(_)))
            .count();
        if found.is_none() && forking == 1 {
            found = crate::process::tree::anonymous_orphans(me, &known)
                .into_iter()
                .find(|o| exited_start.is_none_or(|s| o.start >= s));
        }
        let Some(o) = found else {
            return false;
        };
        self.pids.insert(o.pid, key.clone());
        self.state_dirty = true;
        let hops = o.hops_from(exited);
        let _ = self.drive(
            key,
            Input::Forked {
                pid: o.pid,
                pgid: o.pgid,
                hops,
            },
        );
        true
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Instance(key, gen) => {
                    // A daemonizing program that exited and left nothing
                    // to follow: it was a real exit after all.
                    if let Some((pid, status, _)) = self.pending_exit.remove(&key) {
                        let _ = self.drive(
                            &key,
                            Input::Exited {
                                pid,
                                status,
                                group_empty: true,
                            },
                        );
                    }
                    if self.instances.contains_key(&key) {
                        let _ = self.drive(&key, Input::Timer { gen });
                    }
                }
                Timer::Daily => {
                    self.rotate_daily();
                    self.arm_daily();
                }
                Timer::ShutdownHook(key) => self.check_shutdown_hook(key),
                Timer::ClientIdle(token) => self.check_client_idle(token),
                Timer::StateRetry => self.retry_state(),
                Timer::Rescan => {
                    self.rescan_armed = false;
                    if self.verbose {
                        self.log("conf dirs changed: rescanning");
                    }
                    self.reload_configuration();
                }
            }
        }
    }

    /// Feeds `input` to an instance and carries out what it asks, until it
    /// waits for the world again.
    fn drive(&mut self, key: &Key, input: Input) -> Result<(), Refusal> {
        let mut queue = VecDeque::from([input]);
        let mut first = true;
        while let Some(input) = queue.pop_front() {
            let now = self.now();
            let Some(inst) = self.instances.get_mut(key) else {
                break;
            };
            let latest = self
                .classes
                .get(&inst.job)
                .cloned()
                .unwrap_or_else(|| inst.class.clone());
            let before = (inst.goal, inst.state);
            let actions = match inst.step(&latest, now, input) {
                Ok(a) => a,
                Err(r) if first => return Err(r),
                Err(_) => continue,
            };
            first = false;
            // Changes are logged after what the step itself logs (the
            // process exit that caused them, say).
            let mut changes = Vec::new();
            if self.verbose {
                if let Some(inst) = self.instances.get(key) {
                    let label = inst.label();
                    if before.0.name() != inst.goal.name() {
                        changes.push(format!(
                            "{label} goal changed from {} to {}",
                            before.0.name(),
                            inst.goal.name()
                        ));
                    }
                    if before.1 != inst.state {
                        changes.push(format!(
                            "{label} state changed from {} to {}",
                            before.1.name(),
                            inst.state.name()
                        ));
                    }
                }
            }
            let (logs, rest): (Vec<Action>, Vec<Action>) = actions
                .into_iter()
                .partition(|a| matches!(a, Action::Log(_)));
            for action in logs {
                self.execute(key, action, &mut queue);
            }
            for line in changes {
                self.log(&line);
            }
            let actions = rest;
            for action in actions {
                self.execute(key, action, &mut queue);
            }
        }
        self.check_blocked(key);
        self.check_waiters(key);
        Ok(())
    }

    fn execute(&mut self, key: &Key, action: Action, queue: &mut VecDeque<Input>) {
        match action {
            Action::Spawn(process) => match self.spawn(key, process) {
                Ok(pid) => {
                    self.pids.insert(pid, key.clone());
                    self.state_dirty = true;
                    queue.push_back(Input::Spawned { process, pid });
                }
                Err(error) => queue.push_back(Input::SpawnFailed { process, error }),
            },
            Action::Continue { pid } => {
                let _ = process::kill_pid(pid, libc::SIGCONT);
            }
            Action::KillGroup { pgid, signal } => {
                if process::kill_group(pgid, signal).is_err() {
                    let _ = process::kill_pid(pgid, signal);
                }
                // A followed daemon may have called setsid after it was
                // followed: its group is its own now, and gets the signal
                // too.
                let main = self
                    .instances
                    .get(key)
                    .and_then(|i| i.pid(ProcessType::Main));
                if let Some(main) = main {
                    if let Some(g) = crate::process::tree::pgid_of(main).filter(|&g| g != pgid) {
                        if process::kill_group(g, signal).is_err() {
                            let _ = process::kill_pid(main, signal);
                        }
                        queue.push_back(Input::Regrouped { pgid: g });
                    }
                }
                self.signal_escaped(key, signal);
            }
            Action::ArmTimer { gen, after } => self.arm(after, Timer::Instance(key.clone(), gen)),
            Action::Emit {
                event,
                blocking,
                failure,
            } => {
                if event == JobEvent::Started {
                    self.running_seq += 1;
                    self.running_order.insert(key.clone(), self.running_seq);
                }
                // A blocking event (starting, stopping) is answered with
                // EventDone once it has finished: see events.rs.
                self.emit_job_event(key, event, blocking, failure);
            }
            Action::Log(msg) => self.log(&msg),
            Action::Destroy => {
                let inst = self.instances.remove(key);
                self.running_order.remove(key);
                self.pending_exit.remove(key);
                self.drop_notify_socket(key);
                if let Some(inst) = inst {
                    self.check_exit_with(&inst);
                    self.instance_gone(&inst);
                    self.resolve_destroyed(&inst);
                }
            }
        }
    }

    /// `--exit-with JOB`: the job failed, so the whole run ends, with its
    /// exit status (128+N for death by signal N).
    fn check_exit_with(&mut self, inst: &Instance) {
        if self.cfg.exit_with.as_deref() != Some(inst.job.as_str()) || inst.failed.is_none() {
            return;
        }
        self.exit_code = match inst.last_exit {
            Some(crate::job::Exit::Code(c)) if c != 0 => c,
            Some(crate::job::Exit::Signal(n)) => 128 + n,
            _ => 1,
        };
        let why = inst
            .failure_detail
            .clone()
            .unwrap_or_else(|| "failed".into());
        self.shutdown(&format!(
            "{} failed ({why}): stopping everything (--exit-with), exit status {}",
            inst.label(),
            self.exit_code
        ));
    }

    /// The environment of a job's processes (reference 6.3).
    fn job_env(&self, inst: &Instance) -> Vec<(String, String)> {
        job::env::for_process(inst, None, &self.env_base)
    }

    fn spawn(&mut self, key: &Key, process: ProcessType) -> Result<i32, String> {
        let wants_notify = self
            .instances
            .get(key)
            .is_some_and(|i| i.class.expect == crate::conf::Expect::Notify);
        let notify = if wants_notify {
            Some(self.notify_socket(key)?)
        } else {
            None
        };
        let inst = self.instances.get(key).ok_or("no such instance")?;
        let class = inst.class.clone();
        let command = class.process(process).ok_or("no such process")?;
        let mut env = job::env::for_process(inst, Some(process), &self.env_base);
        if let Some(addr) = notify {
            env.retain(|(k, _)| k != "NOTIFY_SOCKET");
            env.push(("NOTIFY_SOCKET".into(), addr));
        }
        let log_name = crate::log::file_name(&inst.job, &inst.name);
        let label = inst.label();
        let capture = self.capture_for(&class, log_name, label)?;
        let pid = spawn::spawn(spawn::SpawnSpec {
            class: &class,
            command,
            env: &env,
            output: capture.output,
            default_dir: if self.system { Some("/") } else { None },
            original_nofile: self.original_nofile,
        })?;
        if let Some((fd, log, label)) = capture.reader {
            self.add_reader(fd, log, label);
        }
        Ok(pid)
    }

    fn begin_shutdown(&mut self, sig: i32) {
        let name = crate::conf::signal::display(sig);
        self.shutdown(&format!("SIG{name}: stopping every job"));
    }

    /// An orderly shutdown: the runlevel 0 event, then every job stopped in
    /// the reverse of the order in which they reached running.
    fn shutdown(&mut self, why: &str) {
        if self.shutting_down {
            return;
        }
        self.log(why);
        self.shutting_down = true;
        // First the runlevel change, so that `stop on runlevel [016]` and
        // the orderings written with `stop on stopping x` are honoured.
        let prev = self.cfg.runlevel.clone();
        let id = self.emit(
            "runlevel",
            vec!["RUNLEVEL=0".into(), format!("PREVLEVEL={prev}")],
            None,
            None,
        );
        self.shutdown_event = Some(id);
        let down: Vec<Key> = self
            .instances
            .iter()
            .filter(|(_, i)| i.goal == job::Goal::Stop)
            .map(|(k, _)| k.clone())
            .collect();
        for key in down {
            self.watch_shutdown_hook(&key);
        }
        self.process_events();
        self.stop_next_for_shutdown();
    }

    /// A shutdown is bounded: a job on its way down that waits for one of
    /// its hooks (pre-start, post-start, pre-stop, post-stop; Upstart waits
    /// for them without end) gives it `kill timeout` seconds, then the
    /// hook's group gets the kill signal, and SIGKILL one `kill timeout`
    /// later. So a hung hook neither holds the daemon up for ever nor is
    /// left running when it exits.
    fn watch_shutdown_hook(&mut self, key: &Key) {
        if self.shutdown_hooks.contains_key(key) {
            return;
        }
        self.shutdown_hooks.insert(key.clone(), None);
        self.arm_shutdown_hook(key);
    }

    fn arm_shutdown_hook(&mut self, key: &Key) {
        let Some(inst) = self.instances.get(key) else {
            self.shutdown_hooks.remove(key);
            return;
        };
        let after = Duration::from_secs(u64::from(inst.class.kill_timeout_secs.max(1)));
        self.arm(after, Timer::ShutdownHook(key.clone()));
    }

    fn check_shutdown_hook(&mut self, key: Key) {
        let Some(inst) = self.instances.get(&key) else {
            self.shutdown_hooks.remove(&key);
            return;
        };
        let hook = match inst.waiting {
            job::Waiting::Exit(p) if p != ProcessType::Main && inst.goal == job::Goal::Stop => {
                inst.pid(p).map(|pid| (p, pid))
            }
            _ => None,
        };
        if let Some((process, pid)) = hook {
            let again = self.shutdown_hooks.get(&key) == Some(&Some(pid));
            let signal = if again {
                libc::SIGKILL
            } else {
                inst.class.kill_signal
            };
            self.log(&format!(
                "{} {} process ({pid}) still running at shutdown after {} s: sending {} signal",
                inst.label(),
                process.name(),
                inst.class.kill_timeout_secs.max(1),
                crate::conf::signal::display(signal)
            ));
            if process::kill_group(pid, signal).is_err() {
                let _ = process::kill_pid(pid, signal);
            }
            self.shutdown_hooks.insert(key.clone(), Some(pid));
        }
        self.arm_shutdown_hook(&key);
    }

    /// Stops jobs one at a time: first those that never reached running,
    /// then the others in the reverse of the order they reached it.
    fn stop_next_for_shutdown(&mut self) {
        if let Some(id) = self.shutdown_event {
            if self.event_pending(id) {
                return;
            }
            self.shutdown_event = None;
        }
        loop {
            // Someone already on the way down: wait for it.
            if self.instances.values().any(|i| i.goal == job::Goal::Stop) {
                return;
            }
            let next = self
                .instances
                .keys()
                .max_by_key(|k| self.running_order.get(*k).map_or(u64::MAX, |&s| s))
                .cloned();
            let Some(key) = next else { return };
            self.watch_shutdown_hook(&key);
            if self.drive(&key, Input::Stop(Vec::new())).is_err() {
                // Cannot happen (its goal was start); avoid looping forever.
                return;
            }
        }
    }
}

/// The binary `re-exec` runs: argv[0] when it names a file by a path (a
/// symlink stays a symlink, so pointing it at a new release upgrades), else
/// the file this process runs (`/proc/self/exe`). Read at start, so that a
/// binary replaced since is found by its path.
fn own_binary() -> Option<PathBuf> {
    let arg0 = PathBuf::from(std::env::args_os().next()?);
    if arg0.components().count() > 1 {
        let path = if arg0.is_absolute() {
            arg0
        } else {
            std::env::current_dir().ok()?.join(arg0)
        };
        if path.is_file() {
            return Some(path);
        }
    }
    std::env::current_exe().ok()
}
