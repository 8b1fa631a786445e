//! The probe runner: each instance's `health` probes, run inside the loop
//! without ever blocking it. A try of a TCP or HTTP probe is a
//! non-blocking connect (to a numeric address: nothing is looked up), then
//! for HTTP a request written by hand and a response head read and judged
//! by `health::http_verdict`; its deadline and the next try are timers of
//! the reactor's heap. A try of a command probe is a process, spawned by
//! the conductor like a hook (the job's user, environment, directory and
//! log): success is exit status 0; at its deadline its process group is
//! killed, and no new try starts before it is reaped (never two at once). What a run of results means is `health::Tracker`'s
//! to say; the conductor carries out the verdicts. A job with no `health`
//! stanza has no run here, and so no timer and no wake-up.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::Interest;
use serde::{Deserialize, Serialize};

use super::reactor::{Reactor, Timer};
use super::Key;
use crate::conf::health::{secs_text, Check, Probe, Role};
use crate::health::{self, State, Tracker, Verdict};

/// A try in flight.
struct Try {
    stream: mio::net::TcpStream,
    token: usize,
    /// The HTTP request, and how much of it went.
    request: Vec<u8>,
    sent: usize,
    read: Vec<u8>,
}

/// One role's probing of one instance.
struct Run {
    probe: Probe,
    tracker: Tracker,
    /// The generation of the run's one live timer.
    gen: u64,
    /// When the try in flight (or the last one) started.
    started: Instant,
    inflight: Option<Try>,
    /// A command probe's process, until it is reaped (`abandoned`: it ran
    /// out of time and was killed; its result no longer counts).
    exec: Option<(i32, bool)>,
    /// How long the last try took to its result.
    latency: Option<Duration>,
}

/// A verdict for the conductor to carry out.
pub(super) type Told = (Key, Role, Verdict);

/// What a probe timer asks of the conductor.
pub(super) enum Next {
    Told(Told),
    /// Spawn this command for the probe (then `exec_started` or
    /// `exec_failed`).
    Exec(Key, Role, String),
}

#[derive(Default)]
pub(super) struct Probes {
    runs: HashMap<(Key, Role), Run>,
    /// The sockets of tries in flight.
    tokens: HashMap<usize, (Key, Role)>,
    /// The processes of command probes, until reaped.
    pids: HashMap<i32, (Key, Role)>,
}

impl Probes {
    /// Starts probing: the first try after the initial delay.
    pub fn start(&mut self, key: &Key, role: Role, probe: &Probe, reactor: &Reactor) {
        let id = (key.clone(), role);
        self.forget(&id);
        let mut run = Run {
            probe: probe.clone(),
            tracker: Tracker::new(role, probe),
            gen: 0,
            started: Instant::now(),
            inflight: None,
            exec: None,
            latency: None,
        };
        arm(
            &id,
            &mut run,
            Duration::from_millis(probe.initial_delay_ms),
            reactor,
        );
        self.runs.insert(id, run);
    }

    /// Stops every probe of an instance (a try in flight is dropped).
    pub fn stop(&mut self, key: &Key) {
        for role in [Role::Ready, Role::Alive] {
            self.forget(&(key.clone(), role));
        }
    }

    fn forget(&mut self, id: &(Key, Role)) {
        if let Some(mut run) = self.runs.remove(id) {
            self.drop_try(&mut run);
        }
    }

    fn drop_try(&mut self, run: &mut Run) {
        if let Some(t) = run.inflight.take() {
            // Closing the socket (dropping it) takes it out of the epoll
            // set: no deregistering call is needed (one system call less
            // a try).
            self.tokens.remove(&t.token);
        }
        if let Some((pid, _)) = run.exec.take() {
            // Killed; reaped later, and forgotten then.
            let _ = crate::process::kill_group(pid, libc::SIGKILL);
        }
    }

    pub fn is_probe_pid(&self, pid: i32) -> bool {
        self.pids.contains_key(&pid)
    }

    /// A command probe's process was spawned.
    pub fn exec_started(&mut self, key: Key, role: Role, pid: i32) {
        let id = (key, role);
        if let Some(run) = self.runs.get_mut(&id) {
            run.exec = Some((pid, false));
        }
        self.pids.insert(pid, id);
    }

    /// A command probe could not be spawned: a failed try.
    pub fn exec_failed(
        &mut self,
        key: Key,
        role: Role,
        error: String,
        reactor: &Reactor,
    ) -> Option<Told> {
        self.finish((key, role), Err(error), reactor)
    }

    /// A command probe's process ended: its try's result, unless it had run
    /// out of time (or its run is gone).
    pub fn reaped(&mut self, pid: i32, exit: crate::job::Exit, reactor: &Reactor) -> Option<Told> {
        let id = self.pids.remove(&pid)?;
        let run = self.runs.get_mut(&id)?;
        let (p, abandoned) = run.exec?;
        if p != pid {
            return None;
        }
        run.exec = None;
        if abandoned {
            return None;
        }
        let result = match exit {
            crate::job::Exit::Code(0) => Ok(()),
            crate::job::Exit::Code(c) => Err(format!("exited with status {c}")),
            crate::job::Exit::Signal(s) => Err(format!(
                "killed by signal {}",
                crate::conf::signal::display(s)
            )),
            crate::job::Exit::Unknown => Err("ended".into()),
        };
        self.finish(id, result, reactor)
    }

    pub fn is_socket(&self, token: usize) -> bool {
        self.tokens.contains_key(&token)
    }

    /// Whether a probe timer still matters (for the reactor's stale-timer
    /// sweep).
    pub fn is_live(&self, key: &Key, role: Role, gen: u64) -> bool {
        self.runs
            .get(&(key.clone(), role))
            .is_some_and(|r| r.gen == gen)
    }

    /// A probe timer: the next try starts, or the one in flight ran out of
    /// time.
    pub fn on_timer(&mut self, key: Key, role: Role, gen: u64, reactor: &Reactor) -> Option<Next> {
        let id = (key, role);
        let run = self.runs.get_mut(&id).filter(|r| r.gen == gen)?;
        let secs = secs_text(run.probe.timeout_ms);
        let timed_out = Err(format!("no answer within {secs} s"));
        if run.inflight.is_some() {
            return self.finish(id, timed_out, reactor).map(Next::Told);
        }
        if let Some((pid, abandoned)) = run.exec {
            if !abandoned {
                // Out of time: killed, and its result will not count.
                let _ = crate::process::kill_group(pid, libc::SIGKILL);
                run.exec = Some((pid, true));
                return self.finish_keeping(id, timed_out, reactor).map(Next::Told);
            }
            // The last one is not reaped yet: never two at once.
            let period = Duration::from_millis(run.probe.period_ms);
            arm(&id, run, period, reactor);
            return None;
        }
        run.started = Instant::now();
        match run.probe.check.clone() {
            Check::Tcp(addr) => self.connect(&id, addr, Vec::new(), reactor).map(Next::Told),
            Check::Http {
                addr, path, host, ..
            } => {
                let host = host.unwrap_or_else(|| addr.to_string());
                self.connect(&id, addr, health::http_request(&path, &host), reactor)
                    .map(Next::Told)
            }
            Check::Exec(cmd) => {
                let timeout = Duration::from_millis(run.probe.timeout_ms);
                arm(&id, run, timeout, reactor);
                Some(Next::Exec(id.0, id.1, cmd))
            }
        }
    }

    fn connect(
        &mut self,
        id: &(Key, Role),
        addr: SocketAddr,
        request: Vec<u8>,
        reactor: &Reactor,
    ) -> Option<Told> {
        let token = reactor.token();
        let stream = mio::net::TcpStream::connect(addr).and_then(|mut s| {
            reactor.register(&mut s, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(s)
        });
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return self.finish(id.clone(), Err(crate::process::io_text(&e)), reactor),
        };
        let Some(run) = self.runs.get_mut(id) else {
            reactor.deregister(&mut stream);
            return None;
        };
        run.inflight = Some(Try {
            stream,
            token,
            request,
            sent: 0,
            read: Vec::new(),
        });
        self.tokens.insert(token, id.clone());
        // The deadline of this try.
        let timeout = Duration::from_millis(run.probe.timeout_ms);
        arm(id, run, timeout, reactor);
        None
    }

    /// A try's socket is ready: connect, write, read as far as it goes.
    pub fn on_socket(&mut self, token: usize, reactor: &Reactor) -> Option<Told> {
        let id = self.tokens.get(&token)?.clone();
        let run = self.runs.get_mut(&id)?;
        let status = match &run.probe.check {
            Check::Http { status, .. } => Some(*status),
            _ => None,
        };
        let t = run.inflight.as_mut()?;
        let result = progress(t, status);
        result.and_then(|r| self.finish(id, r, reactor))
    }

    /// A try's result: the tracker's verdict, and the next try armed (a
    /// ready probe that passed is done).
    fn finish(
        &mut self,
        id: (Key, Role),
        result: Result<(), String>,
        reactor: &Reactor,
    ) -> Option<Told> {
        let mut run = self.runs.remove(&id)?;
        self.drop_try(&mut run);
        self.record(id, run, result, reactor)
    }

    /// Like `finish`, for a command probe killed at its deadline: its
    /// process stays known until reaped.
    fn finish_keeping(
        &mut self,
        id: (Key, Role),
        result: Result<(), String>,
        reactor: &Reactor,
    ) -> Option<Told> {
        let run = self.runs.remove(&id)?;
        self.record(id, run, result, reactor)
    }

    fn record(
        &mut self,
        id: (Key, Role),
        mut run: Run,
        result: Result<(), String>,
        reactor: &Reactor,
    ) -> Option<Told> {
        run.latency = Some(run.started.elapsed());
        let verdict = run.tracker.record(result);
        if !run.tracker.done() {
            let period = Duration::from_millis(run.probe.period_ms);
            let next = (run.started + period).saturating_duration_since(Instant::now());
            arm(&id, &mut run, next, reactor);
            self.runs.insert(id.clone(), run);
        }
        (verdict != Verdict::Same).then_some((id.0, id.1, verdict))
    }

    /// Whether any instance has a probe running.
    pub fn any(&self) -> bool {
        !self.runs.is_empty()
    }

    /// What `status` shows: the alive probe's state, else the ready one's,
    /// with how long its last try took.
    pub fn status(&self, key: &Key) -> Option<(&Tracker, Option<Duration>)> {
        let get = |role| {
            self.runs
                .get(&(key.clone(), role))
                .map(|r| (&r.tracker, r.latency))
        };
        get(Role::Alive).or_else(|| get(Role::Ready))
    }

    /// What a re-exec hands across: each run's counters (a try in flight is
    /// abandoned; the new image tries again at once).
    pub fn saved(&self) -> Vec<SavedRun> {
        self.runs
            .iter()
            .map(|((key, role), r)| SavedRun {
                key: key.clone(),
                role: role.name().to_string(),
                successes: r.tracker.successes,
                failures: r.tracker.failures,
                state: match &r.tracker.state {
                    State::Starting => "starting".into(),
                    State::Healthy => "healthy".into(),
                    State::Unhealthy { .. } => "unhealthy".into(),
                },
                last_error: r.tracker.last_error.clone(),
            })
            .collect()
    }

    /// The runs a previous image left, each with the probe its instance's
    /// definition has now; each tries again at once.
    pub fn restore(
        &mut self,
        saved: Vec<SavedRun>,
        probe_of: &dyn Fn(&Key, Role) -> Option<Probe>,
        reactor: &Reactor,
    ) {
        for s in saved {
            let Some(role) = Role::from_name(&s.role) else {
                continue;
            };
            let Some(probe) = probe_of(&s.key, role) else {
                continue;
            };
            let mut tracker = Tracker::new(role, &probe);
            tracker.successes = s.successes;
            tracker.failures = s.failures;
            tracker.last_error = s.last_error;
            tracker.state = match s.state.as_str() {
                "healthy" => State::Healthy,
                "unhealthy" => State::Unhealthy {
                    failures: s.failures,
                    error: tracker.last_error.clone().unwrap_or_default(),
                },
                _ => State::Starting,
            };
            let id = (s.key, role);
            let mut run = Run {
                probe,
                tracker,
                gen: 0,
                started: Instant::now(),
                inflight: None,
                exec: None,
                latency: None,
            };
            arm(&id, &mut run, Duration::ZERO, reactor);
            self.runs.insert(id, run);
        }
    }
}

/// Arms the run's one live timer (an older one goes stale).
fn arm(id: &(Key, Role), run: &mut Run, after: Duration, reactor: &Reactor) {
    run.gen += 1;
    reactor.arm(after, Timer::Probe(id.0.clone(), id.1, run.gen));
}

/// Moves a try on; `Some` once it has a result.
fn progress(t: &mut Try, status: Option<(u16, u16)>) -> Option<Result<(), String>> {
    if t.sent < t.request.len() || t.request.is_empty() {
        // Still connecting, as far as this try knows.
        match t.stream.take_error() {
            Ok(Some(e)) | Err(e) => return Some(Err(crate::process::io_text(&e))),
            Ok(None) => {}
        }
    }
    let Some(status) = status else {
        // TCP: connected is enough, which only the peer's address tells
        // for sure (an event may come before the handshake ends).
        return match t.stream.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) => Some(Err(crate::process::io_text(&e))),
        };
    };
    if t.sent < t.request.len() {
        // HTTP: the write itself tells whether the handshake is done
        // (EAGAIN while it is not), with no call to ask first; the answer
        // comes as an event of its own, so no read is tried before it.
        while t.sent < t.request.len() {
            match t.stream.write(&t.request[t.sent..]) {
                Ok(n) => t.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(crate::process::io_text(&e))),
            }
        }
        return None;
    }
    let mut buf = [0u8; 4096];
    loop {
        let room = health::MAX_HEAD.saturating_sub(t.read.len()).min(buf.len());
        if room == 0 {
            return health::http_verdict(&t.read, status);
        }
        match t.stream.read(&mut buf[..room]) {
            Ok(0) => {
                return Some(
                    health::http_verdict(&t.read, status)
                        .unwrap_or_else(|| Err(health::http_cut_short(&t.read))),
                )
            }
            Ok(n) => {
                t.read.extend_from_slice(&buf[..n]);
                if let Some(v) = health::http_verdict(&t.read, status) {
                    return Some(v);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(Err(crate::process::io_text(&e))),
        }
    }
}

/// A run as a re-exec hands it across.
#[derive(Serialize, Deserialize)]
pub(super) struct SavedRun {
    key: Key,
    role: String,
    successes: u32,
    failures: u32,
    state: String,
    last_error: Option<String>,
}
