//! `re-exec` (Upstart's `telinit u`): the daemon replaces its own image
//! with its binary as it is on disk now, keeping every job running with
//! its pid, its state and its output.
//!
//! The old image writes its whole state (this file's `Handover`, JSON) to
//! a memfd, clears close-on-exec on the descriptors the new image needs
//! (the lock, the listening socket, each control client, each job's pty or
//! pipe, each notify socket) and calls `execve` with its original argv and
//! `UPKEEP_REEXEC=FD`. Its pid does not change, so every job stays its
//! child, the subreaper setting stays, and signals that arrive meanwhile
//! stay pending (they are blocked across exec) until the new image's
//! signalfd reads them: no child exit is missed. Output a job writes
//! meanwhile waits in its pty or pipe.
//!
//! The new image parses the same argv, finds `UPKEEP_REEXEC`, adopts the
//! descriptors the state names (and nothing else), rebuilds every
//! instance, matcher, event, timer and client as it was, marks every
//! descriptor close-on-exec again, rescans the conf dirs (as inotify
//! would have told the old one), and answers whoever asked for the
//! re-exec. If it cannot read the state, it closes everything it was
//! handed and starts the way a daemon does after a crash: the state file
//! beside the socket names the old jobs' processes, which it stops before
//! starting afresh, so nothing runs unsupervised. If `execve` itself fails
//! (the binary is gone), the old image goes on and the command fails.
//!
//! These types are a wire format between two images, possibly of two
//! releases: every field that a later release adds must have a default,
//! and `FORMAT` changes only when an old image's state can no longer be
//! read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use serde::{Deserialize, Serialize};

use super::clients::Client;
use super::events::{Event, Hold};
use super::notify::Notifier;
use super::output::Reader;
use super::{setup, Config, Daemon, Key, Timer, WaitKind, Waiter};
use crate::conf::{JobClass, ProcessType};
use crate::control::Response;
use crate::event::matcher::Matcher;
use crate::job::{Exit, FailedProcess, Failure, Goal, Instance, Internals, State, Waiting};
use crate::log::{LogFile, Policy};
use crate::process::handover;

impl Handover {
    /// Every descriptor the state names: what must stay open across the
    /// exec.
    fn descriptors(&self) -> Vec<RawFd> {
        let mut fds = vec![self.lock_fd, self.listener_fd];
        fds.extend(self.priv_listener_fd);
        fds.extend(self.clients.iter().map(|c| c.fd));
        fds.extend(self.readers.iter().map(|r| r.fd));
        fds.extend(self.notifiers.iter().map(|n| n.fd));
        fds
    }
}

/// The variable that carries the state's descriptor into the new image.
pub const ENV: &str = "UPKEEP_REEXEC";

/// The handover format this release writes.
///
/// * 1: the first release with re-exec; client buffers and partial output
///   lines as JSON arrays of numbers.
/// * 2: the lock is the socket directory's descriptor; the private socket
///   (`priv_listener_fd`); byte buffers go raw after the JSON document (a
///   newline, then the bytes each `[offset, length]` names).
const FORMAT: u32 = 2;
/// The formats this release reads.
pub const READS: &[u32] = &[1, 2];

#[derive(Serialize, Deserialize)]
struct Handover {
    format: u32,
    /// The release that wrote it, for messages.
    writer: String,
    lock_fd: RawFd,
    listener_fd: RawFd,
    /// `SOCKET.priv` (format 2; an image of format 1 had none).
    #[serde(default)]
    priv_listener_fd: Option<RawFd>,
    original_nofile: Option<(u64, u64)>,
    /// The monotonic clock when this was written, and how long the daemon
    /// had run by then: the new image's epoch is the old one's.
    written_mono_ns: u64,
    age: Duration,
    next_token: usize,
    /// Job definitions as job-file text (`show-config`'s, which parses back
    /// to the same definition), each once, with the job's name.
    classes: Vec<(String, String)>,
    /// The definition in force for each job (an index into `classes`).
    in_force: Vec<(String, usize)>,
    start_matchers: Vec<(String, Vec<Option<u64>>)>,
    instances: Vec<SavedInstance>,
    pids: Vec<SavedPid>,
    pending_exit: Vec<(Key, i32, SavedExit, Option<u64>)>,
    running_order: Vec<(Key, u64)>,
    running_seq: u64,
    /// Instance timers: key, generation, due (since the epoch).
    timers: Vec<(Key, u64, Duration)>,
    rescan_armed: bool,
    compressors: Vec<(i32, String)>,
    events: Vec<SavedEvent>,
    next_event: u64,
    event_queue: Vec<u64>,
    event_done: Vec<Key>,
    blocking: Vec<(Key, Vec<(u64, bool)>)>,
    clients: Vec<SavedClient>,
    waiters: Vec<(usize, Key, SavedWait)>,
    /// The clients whose `re-exec` the new image answers.
    answer: Vec<usize>,
    readers: Vec<SavedReader>,
    logs: Vec<SavedLog>,
    notifiers: Vec<SavedNotifier>,
}

/// A live job process: whose, and its (start time, group) once known.
#[derive(Serialize, Deserialize)]
struct SavedPid {
    pid: i32,
    key: Key,
    identity: Option<(u64, i32)>,
}

#[derive(Serialize, Deserialize)]
struct SavedInstance {
    job: String,
    name: String,
    class: usize,
    goal: String,
    state: String,
    waiting: SavedWaiting,
    pids: [Option<i32>; 5],
    group: Option<i32>,
    failed: Option<(String, Option<SavedExit>)>,
    failure_detail: Option<String>,
    env: Vec<String>,
    stop_env: Vec<String>,
    main_started: Option<Duration>,
    last_exit: Option<SavedExit>,
    respawns: u64,
    generation: u64,
    respawn_window: Option<(u64, u32)>,
    backoff: Duration,
    respawn_delay: Duration,
    timer_gen: u64,
    restart_pending: bool,
    from_pre_stop: bool,
    stop_matcher: Option<Vec<Option<u64>>>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
enum SavedExit {
    Code(i32),
    Signal(i32),
    Unknown,
}

#[derive(Serialize, Deserialize)]
enum SavedWaiting {
    Nothing,
    Spawn(String),
    Exit(String),
    Event,
    Kill,
    Delay,
    Fork(u8),
    Stop,
    Ready,
}

#[derive(Serialize, Deserialize)]
enum SavedWait {
    Start,
    Stop,
    Restart(u64),
}

#[derive(Serialize, Deserialize)]
struct SavedEvent {
    id: u64,
    name: String,
    env: Vec<String>,
    holds: u32,
    handled: bool,
    failed: bool,
    emitters: Vec<usize>,
    origin: Option<Key>,
}

#[derive(Serialize, Deserialize)]
struct SavedClient {
    token: usize,
    fd: RawFd,
    uid: u32,
    /// Format 1 only: the buffers as numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inbuf: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outbuf: Vec<u8>,
    /// Format 2: the buffers, in the bytes after the document.
    #[serde(default)]
    inbuf_at: Option<Span>,
    #[serde(default)]
    outbuf_at: Option<Span>,
    busy: bool,
    read_closed: bool,
    close_after_flush: bool,
}

#[derive(Serialize, Deserialize)]
struct SavedReader {
    token: usize,
    fd: RawFd,
    log: String,
    label: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    partial: Vec<u8>,
    #[serde(default)]
    partial_at: Option<Span>,
}

/// `[offset, length]` in the bytes after the document.
type Span = (usize, usize);

/// The raw bytes that follow the document (format 2).
#[derive(Default)]
struct Blob(Vec<u8>);

impl Blob {
    fn put(&mut self, data: &[u8]) -> Option<Span> {
        if data.is_empty() {
            return None;
        }
        let at = self.0.len();
        self.0.extend_from_slice(data);
        Some((at, data.len()))
    }

    fn get(&self, span: Option<Span>, old: Vec<u8>) -> Result<Vec<u8>, String> {
        match span {
            None => Ok(old),
            Some((at, len)) => self
                .0
                .get(at..at.saturating_add(len))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("bytes {at}+{len} are not in the state")),
        }
    }
}

/// Splits what a previous image wrote: the JSON document, then (format 2)
/// a newline and the raw bytes. Pure, for the fixtures' test.
fn parse_state(data: &[u8]) -> Result<(Handover, Blob), String> {
    let mut docs = serde_json::Deserializer::from_slice(data).into_iter::<Handover>();
    let h = match docs.next() {
        Some(h) => h.map_err(|e| format!("state: {e}"))?,
        None => return Err("state: empty".into()),
    };
    let end = docs.byte_offset();
    let blob = match data[end..].iter().position(|&b| b == b'\n') {
        Some(nl) => data[end + nl + 1..].to_vec(),
        None => Vec::new(),
    };
    if !READS.contains(&h.format) {
        return Err(format!(
            "state format {} (written by upkeep {}) is not one this release reads ({READS:?})",
            h.format, h.writer
        ));
    }
    Ok((h, Blob(blob)))
}

#[derive(Serialize, Deserialize)]
struct SavedLog {
    name: String,
    path: PathBuf,
    size: u64,
    keep: u32,
    daily: bool,
    compress: bool,
    dropped: u64,
    why_dropped: Option<String>,
    compressing: bool,
    rotate_due: bool,
}

#[derive(Serialize, Deserialize)]
struct SavedNotifier {
    token: usize,
    fd: RawFd,
    job: String,
    instance: String,
    address: String,
}

fn process_type(name: &str) -> Result<ProcessType, String> {
    ProcessType::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| format!("unknown process {name:?}"))
}

fn goal_name(g: Goal) -> &'static str {
    match g {
        Goal::Stop => "stop",
        Goal::Start => "start",
        Goal::Respawn => "respawn",
    }
}

fn goal(name: &str) -> Result<Goal, String> {
    match name {
        "stop" => Ok(Goal::Stop),
        "start" => Ok(Goal::Start),
        "respawn" => Ok(Goal::Respawn),
        _ => Err(format!("unknown goal {name:?}")),
    }
}

fn state(name: &str) -> Result<State, String> {
    State::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("unknown state {name:?}"))
}

impl From<Exit> for SavedExit {
    fn from(e: Exit) -> SavedExit {
        match e {
            Exit::Code(c) => SavedExit::Code(c),
            Exit::Signal(s) => SavedExit::Signal(s),
            Exit::Unknown => SavedExit::Unknown,
        }
    }
}

impl From<SavedExit> for Exit {
    fn from(e: SavedExit) -> Exit {
        match e {
            SavedExit::Code(c) => Exit::Code(c),
            SavedExit::Signal(s) => Exit::Signal(s),
            SavedExit::Unknown => Exit::Unknown,
        }
    }
}

impl From<Waiting> for SavedWaiting {
    fn from(w: Waiting) -> SavedWaiting {
        match w {
            Waiting::Nothing => SavedWaiting::Nothing,
            Waiting::Spawn(p) => SavedWaiting::Spawn(p.name().into()),
            Waiting::Exit(p) => SavedWaiting::Exit(p.name().into()),
            Waiting::Event => SavedWaiting::Event,
            Waiting::Kill => SavedWaiting::Kill,
            Waiting::Delay => SavedWaiting::Delay,
            Waiting::Fork(n) => SavedWaiting::Fork(n),
            Waiting::Stop => SavedWaiting::Stop,
            Waiting::Ready => SavedWaiting::Ready,
        }
    }
}

impl SavedWaiting {
    fn restore(&self) -> Result<Waiting, String> {
        Ok(match self {
            SavedWaiting::Nothing => Waiting::Nothing,
            SavedWaiting::Spawn(p) => Waiting::Spawn(process_type(p)?),
            SavedWaiting::Exit(p) => Waiting::Exit(process_type(p)?),
            SavedWaiting::Event => Waiting::Event,
            SavedWaiting::Kill => Waiting::Kill,
            SavedWaiting::Delay => Waiting::Delay,
            SavedWaiting::Fork(n) => Waiting::Fork(*n),
            SavedWaiting::Stop => Waiting::Stop,
            SavedWaiting::Ready => Waiting::Ready,
        })
    }
}

/// The descriptor of a state handed over by a previous image, if this
/// process is a re-exec; the variable is removed so that nothing started
/// from here sees it.
pub(super) fn handed_over() -> Option<Result<RawFd, String>> {
    let v = std::env::var_os(ENV)?;
    std::env::remove_var(ENV);
    Some(
        v.to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
            .ok_or_else(|| format!("{ENV}={}: not a descriptor", v.to_string_lossy())),
    )
}

/// Descriptors adopted from the state, each number once.
struct Adopter(std::collections::HashSet<RawFd>);

impl Adopter {
    fn take(&mut self, fd: RawFd) -> Result<OwnedFd, String> {
        if !self.0.insert(fd) {
            return Err(format!("descriptor {fd} is named twice"));
        }
        handover::adopt(fd).map_err(|e| e.to_string())
    }
}

/// The jobs of a state, rebuilt without any descriptor: definitions,
/// instances and their matchers. Pure, so that a state of every format
/// this release reads can be checked in a test.
#[derive(Debug)]
struct Jobs {
    classes: BTreeMap<String, Rc<JobClass>>,
    start_matchers: BTreeMap<String, Matcher>,
    instances: BTreeMap<Key, Instance>,
    stop_matchers: BTreeMap<Key, Matcher>,
}

fn rebuild_jobs(h: &Handover) -> Result<Jobs, String> {
    let mut jobs = Jobs {
        classes: BTreeMap::new(),
        start_matchers: BTreeMap::new(),
        instances: BTreeMap::new(),
        stop_matchers: BTreeMap::new(),
    };
    let mut classes = Vec::with_capacity(h.classes.len());
    for (name, text) in &h.classes {
        let c = crate::conf::parse_job(name, text.as_bytes()).map_err(|errs| {
            let first = errs.first().map(|e| e.kind.to_string()).unwrap_or_default();
            format!("job {name}: its definition does not parse back: {first}")
        })?;
        classes.push(Rc::new(c));
    }
    let class = |i: usize| {
        classes
            .get(i)
            .cloned()
            .ok_or_else(|| format!("no definition {i}"))
    };
    for (name, i) in &h.in_force {
        jobs.classes.insert(name.clone(), class(*i)?);
    }
    // Every expression gets its matcher; what it held comes from the state.
    let held: HashMap<&str, &Vec<Option<u64>>> = h
        .start_matchers
        .iter()
        .map(|(n, held)| (n.as_str(), held))
        .collect();
    for (name, class) in &jobs.classes {
        let Some(expr) = &class.start_on else {
            continue;
        };
        let mut m = Matcher::new(expr);
        if let Some(held) = held.get(name.as_str()) {
            if !m.restore_held(held) {
                return Err(format!("job {name}: its start on state does not fit"));
            }
        }
        jobs.start_matchers.insert(name.clone(), m);
    }
    for s in &h.instances {
        let key = (s.job.clone(), s.name.clone());
        let mut i = Instance::new(&s.job, &s.name, class(s.class)?, s.env.clone());
        i.goal = goal(&s.goal)?;
        i.state = state(&s.state)?;
        i.waiting = s.waiting.restore()?;
        i.pids = s.pids;
        i.group = s.group;
        i.failed = match &s.failed {
            None => None,
            Some((p, exit)) => Some(Failure {
                process: if p == "respawn" {
                    FailedProcess::Respawn
                } else {
                    FailedProcess::Process(process_type(p)?)
                },
                exit: exit.map(Exit::from),
            }),
        };
        i.failure_detail = s.failure_detail.clone();
        i.stop_env = s.stop_env.clone();
        i.main_started = s.main_started;
        i.last_exit = s.last_exit.map(Exit::from);
        i.respawns = s.respawns;
        i.generation = s.generation;
        i.set_internals(Internals {
            respawn_window: s.respawn_window,
            backoff: s.backoff,
            respawn_delay: s.respawn_delay,
            timer_gen: s.timer_gen,
            restart_pending: s.restart_pending,
            from_pre_stop: s.from_pre_stop,
        });
        if let Some(expr) = &i.class.stop_on {
            let mut m = Matcher::new(expr);
            if let Some(held) = &s.stop_matcher {
                if !m.restore_held(held) {
                    return Err(format!("{}: its stop on state does not fit", i.label()));
                }
            }
            jobs.stop_matchers.insert(key.clone(), m);
        }
        jobs.instances.insert(key, i);
    }
    Ok(jobs)
}

impl Daemon {
    /// Carries out the `re-exec` requests of this loop turn. Returns only
    /// if the exec failed; then the requests are answered with the error.
    pub(super) fn reexec(&mut self) {
        let requests = std::mem::take(&mut self.reexec_requests);
        if requests.is_empty() {
            return;
        }
        let failed = |d: &mut Daemon, msg: String| {
            d.log(&msg);
            for &c in &requests {
                d.reply(
                    c,
                    &Response::Error {
                        message: msg.clone(),
                    },
                );
            }
        };
        if self.shutting_down {
            return failed(self, "The daemon is shutting down".into());
        }
        let Some(exe) = self.exe.clone() else {
            return failed(
                self,
                "unable to re-exec: the daemon's own binary was not known at start".into(),
            );
        };
        let mut blob = Blob::default();
        let state = self.handover(&requests, &mut blob);
        let mut data = match serde_json::to_vec(&state) {
            Ok(d) => d,
            Err(e) => return failed(self, format!("unable to re-exec: state: {e}")),
        };
        data.push(b'\n');
        data.extend_from_slice(&blob.0);
        let memfd = match handover::state_memfd(&data) {
            Ok(f) => f,
            Err(e) => return failed(self, format!("unable to re-exec: memfd: {e}")),
        };
        let mut kept = state.descriptors();
        kept.push(memfd.as_raw_fd());
        if let Some(e) = kept
            .iter()
            .find_map(|&fd| handover::keep_across_exec(fd).err())
        {
            crate::process::spawn::close_inherited_fds();
            return failed(self, format!("unable to re-exec: {e}"));
        }
        self.log(&format!(
            "re-executing {} ({} job instance{}, {} process{} kept)",
            exe.display(),
            state.instances.len(),
            if state.instances.len() == 1 { "" } else { "s" },
            state.pids.len(),
            if state.pids.len() == 1 { "" } else { "es" },
        ));
        let err = handover::exec(&exe, &self.argv, &[(ENV, memfd.as_raw_fd().to_string())]);
        // Still here: nothing was replaced. Every descriptor is ours again.
        crate::process::spawn::close_inherited_fds();
        drop(memfd);
        failed(self, format!("unable to re-exec {}: {err}", exe.display()));
    }

    /// Everything the new image needs.
    fn handover(&self, answer: &[usize], blob: &mut Blob) -> Handover {
        // Each definition once, by identity.
        let mut classes: Vec<(String, String)> = Vec::new();
        let mut index: HashMap<*const JobClass, usize> = HashMap::new();
        let mut class_index = |c: &Rc<JobClass>| -> usize {
            *index.entry(Rc::as_ptr(c)).or_insert_with(|| {
                classes.push((c.name.clone(), crate::conf::print::to_job_file(c)));
                classes.len() - 1
            })
        };
        let in_force = self
            .classes
            .iter()
            .map(|(n, c)| (n.clone(), class_index(c)))
            .collect();
        let instances = self
            .instances
            .iter()
            .map(|(key, i)| {
                let int = i.internals();
                SavedInstance {
                    job: i.job.clone(),
                    name: i.name.clone(),
                    class: class_index(&i.class),
                    goal: goal_name(i.goal).into(),
                    state: i.state.name().into(),
                    waiting: i.waiting.into(),
                    pids: i.pids,
                    group: i.group,
                    failed: i
                        .failed
                        .as_ref()
                        .map(|f| (f.process.name().to_string(), f.exit.map(SavedExit::from))),
                    failure_detail: i.failure_detail.clone(),
                    env: i.env.clone(),
                    stop_env: i.stop_env.clone(),
                    main_started: i.main_started,
                    last_exit: i.last_exit.map(SavedExit::from),
                    respawns: i.respawns,
                    generation: i.generation,
                    respawn_window: int.respawn_window,
                    backoff: int.backoff,
                    respawn_delay: int.respawn_delay,
                    timer_gen: int.timer_gen,
                    restart_pending: int.restart_pending,
                    from_pre_stop: int.from_pre_stop,
                    stop_matcher: self.stop_matchers.get(key).map(Matcher::held),
                }
            })
            .collect();
        let timers = self
            .timers
            .iter()
            .filter_map(|std::cmp::Reverse((at, _, t))| match t {
                Timer::Instance(key, gen) => {
                    Some((key.clone(), *gen, at.saturating_duration_since(self.epoch)))
                }
                _ => None,
            })
            .collect();
        let clients = self
            .clients
            .iter()
            .map(|(&token, c)| SavedClient {
                token,
                fd: c.stream.as_raw_fd(),
                uid: c.uid,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                inbuf_at: blob.put(&c.inbuf),
                outbuf_at: blob.put(&c.outbuf),
                busy: c.busy,
                read_closed: c.read_closed,
                close_after_flush: c.close_after_flush,
            })
            .collect();
        let readers = self
            .readers
            .iter()
            .map(|(&token, r)| SavedReader {
                token,
                fd: r.file.as_raw_fd(),
                log: r.log.clone(),
                label: r.label.clone(),
                partial: Vec::new(),
                partial_at: blob.put(&r.partial),
            })
            .collect();
        let notifiers = self
            .notifiers
            .iter()
            .map(|(&token, n)| SavedNotifier {
                token,
                fd: n.sock.as_raw_fd(),
                job: n.key.0.clone(),
                instance: n.key.1.clone(),
                address: n.address.clone(),
            })
            .collect();
        let logs = self
            .logs
            .iter()
            .map(|(name, l)| SavedLog {
                name: name.clone(),
                path: l.path.clone(),
                size: l.policy.size,
                keep: l.policy.keep,
                daily: l.policy.daily,
                compress: l.policy.compress,
                dropped: l.dropped(),
                why_dropped: l.why_dropped().map(str::to_string),
                compressing: l.compressing,
                rotate_due: l.rotate_due(),
            })
            .collect();
        let state = Handover {
            format: FORMAT,
            writer: crate::VERSION.into(),
            lock_fd: self._lock.fd(),
            listener_fd: self.listener.as_raw_fd(),
            priv_listener_fd: self.priv_listener.as_ref().map(|l| l.as_raw_fd()),
            original_nofile: self.original_nofile,
            written_mono_ns: handover::monotonic_ns(),
            age: self.now(),
            next_token: self.next_token,
            in_force,
            start_matchers: self
                .start_matchers
                .iter()
                .map(|(n, m)| (n.clone(), m.held()))
                .collect(),
            instances,
            classes,
            pids: self
                .pids
                .iter()
                .map(|(&pid, key)| SavedPid {
                    pid,
                    key: key.clone(),
                    identity: self.proc_identity.get(&pid).copied(),
                })
                .collect(),
            pending_exit: self
                .pending_exit
                .iter()
                .map(|(k, &(pid, exit, start))| (k.clone(), pid, exit.into(), start))
                .collect(),
            running_order: self
                .running_order
                .iter()
                .map(|(k, &s)| (k.clone(), s))
                .collect(),
            running_seq: self.running_seq,
            timers,
            rescan_armed: self.rescan_armed,
            compressors: self
                .compressors
                .iter()
                .map(|(&p, l)| (p, l.clone()))
                .collect(),
            events: self
                .events
                .iter()
                .map(|(&id, e)| SavedEvent {
                    id,
                    name: e.name.clone(),
                    env: e.env.clone(),
                    holds: e.holds,
                    handled: e.handled,
                    failed: e.failed,
                    emitters: e.emitters.clone(),
                    origin: e.origin.clone(),
                })
                .collect(),
            next_event: self.next_event,
            event_queue: self.event_queue.iter().copied().collect(),
            event_done: self.event_done.iter().cloned().collect(),
            blocking: self
                .blocking
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().map(|&(id, h)| (id, h == Hold::Started)).collect(),
                    )
                })
                .collect(),
            clients,
            waiters: self
                .waiters
                .iter()
                .map(|w| {
                    let kind = match w.kind {
                        WaitKind::Start => SavedWait::Start,
                        WaitKind::Stop => SavedWait::Stop,
                        WaitKind::Restart(g) => SavedWait::Restart(g),
                    };
                    (w.client, w.key.clone(), kind)
                })
                .collect(),
            answer: answer.to_vec(),
            readers,
            logs,
            notifiers,
        };
        state
    }

    /// The new image: the daemon as the previous one left it.
    pub(super) fn resume(cfg: Config, state_fd: RawFd) -> Result<Daemon, String> {
        let data = handover::read_state(state_fd).map_err(|e| format!("state: {e}"))?;
        let (h, blob) = parse_state(&data)?;
        let mut fds = Adopter(Default::default());
        let lock = setup::Lock::adopt(fds.take(h.lock_fd)?, &cfg.socket)?;
        let listener = std::os::unix::net::UnixListener::from(fds.take(h.listener_fd)?);
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listener: {e}"))?;
        let listener = mio::net::UnixListener::from_std(listener);
        let private = match h.priv_listener_fd {
            Some(fd) => {
                let l = std::os::unix::net::UnixListener::from(fds.take(fd)?);
                l.set_nonblocking(true)
                    .map_err(|e| format!("private listener: {e}"))?;
                Ok(mio::net::UnixListener::from_std(l))
            }
            // An image of format 1 had none: the socket is made now.
            None => setup::bind_private(&cfg.socket),
        };
        let mut d = Daemon::bare(cfg, lock, listener, h.original_nofile)?;
        d.listen_private(private)?;
        let gap = handover::monotonic_ns().saturating_sub(h.written_mono_ns);
        let age = h.age + Duration::from_nanos(gap);
        d.epoch = Instant::now().checked_sub(age).unwrap_or(d.epoch);
        d.next_token = h.next_token;

        let jobs = rebuild_jobs(&h)?;
        d.classes = jobs.classes;
        d.start_matchers = jobs.start_matchers;
        d.instances = jobs.instances;
        d.stop_matchers = jobs.stop_matchers;
        for p in h.pids {
            d.pids.insert(p.pid, p.key);
            if let Some(ident) = p.identity {
                d.proc_identity.insert(p.pid, ident);
            }
        }
        for (key, pid, exit, start) in h.pending_exit {
            d.pending_exit.insert(key, (pid, exit.into(), start));
        }
        d.running_order = h.running_order.into_iter().collect();
        d.running_seq = h.running_seq;
        let now = d.now();
        for (key, gen, due) in h.timers {
            d.arm(due.saturating_sub(now), Timer::Instance(key, gen));
        }
        d.compressors = h.compressors.into_iter().collect();
        for e in h.events {
            d.events.insert(
                e.id,
                Event {
                    name: e.name,
                    env: e.env,
                    holds: e.holds,
                    handled: e.handled,
                    failed: e.failed,
                    emitters: e.emitters,
                    origin: e.origin,
                },
            );
        }
        d.next_event = h.next_event;
        d.event_queue = VecDeque::from(h.event_queue);
        d.event_done = VecDeque::from(h.event_done);
        for (key, held) in h.blocking {
            let held = held
                .into_iter()
                .map(|(id, started)| {
                    (
                        id,
                        if started {
                            Hold::Started
                        } else {
                            Hold::Stopped
                        },
                    )
                })
                .collect();
            d.blocking.insert(key, held);
        }
        for l in h.logs {
            let policy = Policy {
                size: l.size,
                keep: l.keep,
                daily: l.daily,
                compress: l.compress,
            };
            d.logs.insert(
                l.name.clone(),
                LogFile::carried(
                    d.log_dir.clone(),
                    l.name,
                    policy,
                    l.dropped,
                    l.why_dropped,
                    l.compressing,
                    l.rotate_due,
                ),
            );
        }
        for c in h.clients {
            let stream = std::os::unix::net::UnixStream::from(fds.take(c.fd)?);
            stream
                .set_nonblocking(true)
                .map_err(|e| format!("client: {e}"))?;
            let mut stream = mio::net::UnixStream::from_std(stream);
            let inbuf = blob.get(c.inbuf_at, c.inbuf)?;
            let outbuf = blob.get(c.outbuf_at, c.outbuf)?;
            let want_write = !outbuf.is_empty();
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            d.poll
                .registry()
                .register(&mut stream, Token(c.token), interest)
                .map_err(|e| format!("client: {e}"))?;
            d.clients.insert(
                c.token,
                Client {
                    stream,
                    uid: c.uid,
                    inbuf,
                    outbuf,
                    busy: c.busy,
                    read_closed: c.read_closed,
                    close_after_flush: c.close_after_flush,
                    want_write,
                    fds: Default::default(),
                    idle_since: Instant::now(),
                },
            );
        }
        let resumed: Vec<(usize, u32)> = d.clients.iter().map(|(&t, c)| (t, c.uid)).collect();
        for (token, uid) in resumed {
            d.count_client(uid);
            d.arm(super::clients::REQUEST_TIMEOUT, Timer::ClientIdle(token));
        }
        for (client, key, kind) in h.waiters {
            let kind = match kind {
                SavedWait::Start => WaitKind::Start,
                SavedWait::Stop => WaitKind::Stop,
                SavedWait::Restart(g) => WaitKind::Restart(g),
            };
            d.waiters.push(Waiter { client, key, kind });
        }
        for r in h.readers {
            let file = std::fs::File::from(fds.take(r.fd)?);
            let raw = file.as_raw_fd();
            d.poll
                .registry()
                .register(&mut SourceFd(&raw), Token(r.token), Interest::READABLE)
                .map_err(|e| format!("{}: output: {e}", r.label))?;
            // Whatever waits in it is read on the first turn.
            d.more_output.push(r.token);
            d.readers.insert(
                r.token,
                Reader {
                    file,
                    log: r.log,
                    label: r.label,
                    partial: blob.get(r.partial_at, r.partial)?,
                },
            );
        }
        for n in h.notifiers {
            let sock = std::os::unix::net::UnixDatagram::from(fds.take(n.fd)?);
            let raw = sock.as_raw_fd();
            d.poll
                .registry()
                .register(&mut SourceFd(&raw), Token(n.token), Interest::READABLE)
                .map_err(|e| format!("notify socket: {e}"))?;
            let key = (n.job, n.instance);
            d.notify_by_key.insert(key.clone(), n.token);
            d.notifiers.insert(
                n.token,
                Notifier {
                    key,
                    sock,
                    address: n.address,
                },
            );
        }
        // Everything handed across is adopted: from here on, no descriptor
        // of the daemon reaches a job or a later image unasked.
        crate::process::spawn::close_inherited_fds();
        // Main processes that are not our children are watched again.
        let me = std::process::id() as i32;
        let aliens: Vec<(Key, i32)> = d
            .instances
            .iter()
            .filter_map(|(k, i)| i.pid(ProcessType::Main).map(|p| (k.clone(), p)))
            .filter(|&(_, p)| crate::process::tree::ppid_of(p).is_some_and(|pp| pp != me))
            .collect();
        for (key, pid) in aliens {
            if let Ok(fd) = crate::process::pidfd_open(pid) {
                d.watch_alien(&key, pid, fd);
            }
        }
        d.start_watching();
        crate::process::time::ignore_sigxfsz();
        // The conf dirs as they are now: changed jobs take effect at their
        // next start, as they would have in the old image.
        d.reload_configuration();
        d.arm_daily();
        if h.rescan_armed {
            d.rescan_armed = true;
            d.arm(super::RESCAN_DELAY, Timer::Rescan);
        }
        // Anything that ended during the exec is reaped on the first turn
        // (its SIGCHLD stayed pending); the state file is rewritten.
        d.accept_stalled = true;
        d.state_dirty = true;
        d.log(&format!(
            "re-executed as upkeep {} (state of upkeep {}): {} job instance{} and {} process{} kept",
            crate::VERSION,
            h.writer,
            d.instances.len(),
            if d.instances.len() == 1 { "" } else { "s" },
            d.pids.len(),
            if d.pids.len() == 1 { "" } else { "es" },
        ));
        for c in h.answer {
            d.reply(
                c,
                &Response::Ok {
                    instances: Vec::new(),
                },
            );
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state the first release with re-exec wrote (a daemon with a job
    /// running, one crash-looping in its back-off, one in its kill
    /// timeout, one waiting for readiness, one in pre-start with a client
    /// waiting for it, and `c` half-way through `started a and started
    /// b`): every later release must still read it.
    const FORMAT_1: &str = include_str!("../../tests/fixtures/handover-1.json");

    /// The same daemon as written by the release that brought format 2:
    /// the lock is the socket dir, a private listener, and byte buffers
    /// after the document (a half-sent request and an unread answer of a
    /// client, a half line of a job's output).
    const FORMAT_2: &[u8] = include_bytes!("../../tests/fixtures/handover-2.json");

    #[test]
    fn both_formats_are_read_whole() {
        for (format, data) in [(1, FORMAT_1.as_bytes()), (2, FORMAT_2)] {
            let (h, blob) = parse_state(data).unwrap();
            assert_eq!(h.format, format);
            check_format_1_daemon(&h);
            if format == 2 {
                assert_eq!(h.priv_listener_fd, Some(104));
                let c = h.clients.iter().find(|c| c.token == 13).unwrap();
                assert_eq!(
                    blob.get(c.inbuf_at, Vec::new()).unwrap(),
                    br#"{"v":1,"cmd":"status","jo"#
                );
                assert_eq!(
                    blob.get(c.outbuf_at, Vec::new()).unwrap(),
                    b"{\"result\":\"ok\",\"instances\":[]}\n"
                );
                assert_eq!(
                    blob.get(h.readers[0].partial_at, Vec::new()).unwrap(),
                    b"half a line without its end"
                );
                assert!(blob.get(Some((80, 10)), Vec::new()).is_err());
            }
        }
        // A format this release does not read is refused, by number.
        let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
        v["format"] = 3.into();
        let e = parse_state(v.to_string().as_bytes()).err().unwrap();
        assert!(e.contains("state format 3"), "{e}");
    }

    fn check_format_1_daemon(h: &Handover) {
        let jobs = rebuild_jobs(h).unwrap();
        assert_eq!(jobs.classes.len(), 7);
        let c = &jobs.start_matchers["c"];
        assert!(c.is_partial());
        assert_eq!(c.pending().as_deref(), Some("started b"));
        let get = |j: &str| &jobs.instances[&(j.to_string(), String::new())];
        assert_eq!(
            (get("stubborn").state, get("stubborn").waiting),
            (State::Killed, Waiting::Kill)
        );
        assert_eq!(
            (get("crashy").state, get("crashy").waiting),
            (State::PostStop, Waiting::Delay)
        );
        assert_eq!(get("crashy").goal, Goal::Start);
        assert_eq!(get("ready").waiting, Waiting::Ready);
        assert_eq!(get("slow").waiting, Waiting::Exit(ProcessType::PreStart));
        assert_eq!(get("stubborn").class.kill_timeout_secs, 20);
        assert_eq!(h.waiters.len(), 1);
        assert_eq!(h.answer.len(), 1);
    }

    #[test]
    fn an_unknown_state_or_a_misfit_matcher_is_refused_and_a_missing_one_made() {
        let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
        v["instances"][0]["state"] = "levitating".into();
        let h: Handover = serde_json::from_value(v).unwrap();
        assert!(rebuild_jobs(&h).unwrap_err().contains("levitating"));
        let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
        v["start_matchers"][0][1] = serde_json::json!([null]);
        let h: Handover = serde_json::from_value(v).unwrap();
        assert!(rebuild_jobs(&h).unwrap_err().contains("start on"));
        // A state that names no matcher for a job still gives it a fresh one.
        let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
        v["start_matchers"] = serde_json::json!([]);
        let h: Handover = serde_json::from_value(v).unwrap();
        let jobs = rebuild_jobs(&h).unwrap();
        assert!(!jobs.start_matchers["c"].is_partial());
    }
}
