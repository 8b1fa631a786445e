//! Control clients and who waits for what: accepting, reading request
//! lines, writing answers, without ever blocking the loop. Every input from
//! a socket is bounded in size, time and count per user
//! (`docs/security.md`, "Control socket"):
//!
//! * two listeners: the public socket (mode 0666 for a root daemon) and
//!   `SOCKET.priv` (0600, the daemon's user's), which root and the
//!   daemon's user try first, so that no flood of the public one can lock
//!   them out;
//! * at most [`MAX_PER_UID`] connections of one other user at once (more
//!   are answered with an error and closed), and [`MAX_CLIENTS`] in all;
//! * a connection that has sent no whole request for
//!   [`REQUEST_TIMEOUT`] (and waits for no job) is closed;
//! * a public connection is accepted only while [`capture::ACCEPT_RESERVE`]
//!   descriptors stay free, so that a respawn, a state-file write and a
//!   request on the private socket always have theirs;
//! * a client's requests are not read while its answers are unread, one
//!   client's unread answers are capped at [`MAX_OUTPUT`] (beyond a first
//!   one larger than that), and one user's at [`MAX_OUTPUT_PER_UID`]: a
//!   client over either is dropped.
//!
//! The requests themselves are served by the conductor (`commands.rs`),
//! which takes them one at a time with [`Clients::next_request`].

mod monitor;

pub(super) use monitor::News;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use mio::Interest;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde::{Deserialize, Serialize};

use super::output::DaemonLog;
use super::reactor::{Reactor, Timer};
use super::Key;
use crate::conf::ProcessType;
use crate::control::{self, InstanceStatus, Request, Response, MAX_REQUEST_BYTES};
use crate::job::{FailedProcess, Goal, Instance, State};
use crate::process::capture;

/// More clients than this at once are refused.
pub const MAX_CLIENTS: usize = 4096;
/// At most this many connections of one user other than root and the
/// daemon's own.
pub const MAX_PER_UID: usize = 128;
/// A client whose unread answers pile up past this is dropped (one answer
/// alone may be larger: it is bounded by [`MAX_OUTPUT_PER_UID`]).
const MAX_OUTPUT: usize = 4 << 20;
/// All the unread answers of one user's clients together.
pub(super) const MAX_OUTPUT_PER_UID: usize = 16 << 20;
/// How long a connection may take to send a whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Client {
    stream: mio::net::UnixStream,
    /// Who the peer is, from SO_PEERCRED: the only source of authority.
    uid: u32,
    /// A member of the daemon's control group (`--control-group`, from
    /// SO_PEERCRED and SO_PEERGROUPS at connect): it acts as the daemon's
    /// user may.
    control: bool,
    inbuf: Vec<u8>,
    /// Answers; the first `out_at` bytes are written already.
    outbuf: Vec<u8>,
    out_at: usize,
    /// A request of this client is waiting for a job; later lines wait.
    busy: bool,
    read_closed: bool,
    close_after_flush: bool,
    want_write: bool,
    /// Descriptors to pass along with the answers (`log-open`): each goes
    /// with the byte of `outbuf` at its offset.
    fds: VecDeque<(usize, OwnedFd)>,
    /// Since when the client owes a whole request (it waits for nothing).
    idle_since: Instant,
    /// A subscriber (`monitor`): what it watches.
    sub: Option<monitor::Sub>,
}

impl Client {
    /// The answers not yet written to the peer.
    fn unsent(&self) -> &[u8] {
        &self.outbuf[self.out_at..]
    }

    /// Appends an answer.
    fn queue(&mut self, bytes: &[u8]) {
        self.outbuf.extend_from_slice(bytes);
    }

    /// `n` more bytes written. The written part is dropped once it is most
    /// of the buffer, so every byte is moved at most once however many
    /// writes a large answer takes; a buffer emptied of a large answer is
    /// given back.
    fn sent(&mut self, n: usize) {
        self.out_at += n;
        if self.out_at == self.outbuf.len() {
            if self.outbuf.capacity() > 64 << 10 {
                self.outbuf = Vec::new();
            } else {
                self.outbuf.clear();
            }
            self.out_at = 0;
        } else if self.out_at > self.outbuf.len() / 2 {
            self.outbuf.drain(..self.out_at);
            self.out_at = 0;
        }
        for (at, _) in self.fds.iter_mut() {
            *at -= n;
        }
    }
}

/// Someone waiting for an instance to get somewhere.
#[derive(Debug, Clone)]
pub(super) struct Waiter {
    pub client: usize,
    pub key: Key,
    pub kind: WaitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitKind {
    Start,
    Stop,
    /// A restart: done once the instance is running again in a newer
    /// generation than this.
    Restart(u64),
}

/// Rate-limits a message about a condition that may come and go many
/// times a second (accept failing): said at once, then at most once a
/// minute, with how often it happened meanwhile.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    since: u64,
}

impl Throttle {
    /// The message to log now, if any.
    fn say(&mut self, msg: impl FnOnce() -> String) -> Option<String> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < Duration::from_secs(60) => {
                self.since += 1;
                None
            }
            _ => {
                let more = std::mem::take(&mut self.since);
                self.last = Some(now);
                let mut m = msg();
                if more > 0 {
                    m.push_str(&format!(" ({more} more times in the last minute)"));
                }
                Some(m)
            }
        }
    }
}

/// The control clients, who waits for what, and who asked for a re-exec.
pub(super) struct Clients {
    map: HashMap<usize, Client>,
    /// Connections per uid.
    per_uid: HashMap<u32, usize>,
    throttle: Throttle,
    /// Public connections wait in the backlog for want of descriptors: the
    /// listener will not signal them again (epoll is edge-triggered), so
    /// accepting is retried after each wakeup.
    pub accept_stalled: bool,
    /// Clients whose answers were all read, or who were answered: their
    /// next requests are served before the loop waits again.
    pub resume: Vec<usize>,
    pub waiters: Vec<Waiter>,
    /// Clients whose `re-exec` is carried out at the end of the loop turn.
    pub reexec: Vec<usize>,
    /// The daemon's uid (with root, the full authority).
    my_uid: u32,
    /// `--control-group`: its members act as the daemon's user may.
    control_gid: Option<u32>,
    /// How many clients are subscribers.
    subscribers: usize,
    /// Subscribers that fell behind this loop turn (dropped at its end).
    laggards: Vec<usize>,
}

fn too_long() -> Response {
    Response::Error {
        message: format!("Request too long (the limit is {MAX_REQUEST_BYTES} bytes)"),
    }
}

impl Clients {
    /// Clients connected now.
    pub fn count(&self) -> usize {
        self.map.len()
    }

    pub fn new(my_uid: u32, control_gid: Option<u32>) -> Clients {
        Clients {
            control_gid,
            map: HashMap::new(),
            per_uid: HashMap::new(),
            throttle: Throttle::default(),
            accept_stalled: false,
            resume: Vec::new(),
            waiters: Vec::new(),
            reexec: Vec::new(),
            my_uid,
            subscribers: 0,
            laggards: Vec::new(),
        }
    }

    /// Whether `uid` has the daemon's full authority (and its private
    /// socket).
    fn privileged(&self, uid: u32) -> bool {
        uid == 0 || uid == self.my_uid
    }

    /// Whether a client acts as the daemon's user may: root, that user, or
    /// a member of the control group.
    pub fn authority(&self, token: usize) -> bool {
        self.map
            .get(&token)
            .is_some_and(|c| c.control || self.privileged(c.uid))
    }

    /// Whether a peer is a member of the control group (its primary group
    /// or a supplementary one, as they were when it connected).
    fn member(&self, stream: &mio::net::UnixStream) -> bool {
        let Some(gid) = self.control_gid else {
            return false;
        };
        let primary = getsockopt(stream, PeerCredentials).is_ok_and(|c| c.gid() == gid);
        primary || {
            use std::os::fd::AsFd;
            crate::process::peer_groups(stream.as_fd()).contains(&gid)
        }
    }

    /// Accepts on the public socket (`private` false) or the private one.
    /// Accepts again on the public socket if accepting stalled for want
    /// of descriptors (some may have been freed since).
    pub fn retry_accept(&mut self, reactor: &Reactor, dlog: &DaemonLog) {
        if self.accept_stalled {
            self.accept(false, reactor, dlog);
        }
    }

    pub fn accept(&mut self, private: bool, reactor: &Reactor, dlog: &DaemonLog) {
        loop {
            let reserve = if private {
                capture::PRIVATE_ACCEPT_RESERVE
            } else {
                capture::ACCEPT_RESERVE
            };
            if !capture::room_beyond(1, reserve) {
                // Connections wait in the backlog; accepting is tried
                // again after each wakeup (epoll will not say again).
                if !private {
                    self.accept_stalled = true;
                }
                if let Some(m) = self.throttle.say(|| {
                    "descriptors are short: new clients wait in the socket's backlog (root and the daemon's user are served on the private socket)".to_string()
                }) {
                    dlog.log(&m);
                }
                return;
            }
            let listener = match (private, &reactor.priv_listener) {
                (true, Some(l)) => l,
                (true, None) => return,
                (false, _) => &reactor.listener,
            };
            match listener.accept() {
                Ok((mut stream, _)) => {
                    if !private {
                        self.accept_stalled = false;
                    }
                    let Ok(cred) = getsockopt(&stream, PeerCredentials) else {
                        continue;
                    };
                    let uid = cred.uid();
                    if self.map.len() >= MAX_CLIENTS {
                        continue; // dropped: closed at once
                    }
                    let held = self.per_uid.get(&uid).copied().unwrap_or(0);
                    if !self.privileged(uid) && held >= MAX_PER_UID {
                        let msg = format!(
                            "{{\"result\":\"error\",\"message\":\"Too many connections from uid {uid} (the limit is {MAX_PER_UID})\"}}\n"
                        );
                        let _ = stream.write(msg.as_bytes());
                        continue;
                    }
                    let token = reactor.token();
                    if reactor
                        .register(&mut stream, token, Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let control = self.member(&stream);
                    let mut client = new_client(stream, uid);
                    client.control = control;
                    self.insert(token, client);
                    reactor.arm(REQUEST_TIMEOUT, Timer::ClientIdle(token));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: tried again after each wakeup.
                    if !private {
                        self.accept_stalled = true;
                    }
                    if let Some(m) = self
                        .throttle
                        .say(|| format!("accept: {e}; clients wait until descriptors are free"))
                    {
                        dlog.log(&m);
                    }
                    break;
                }
            }
        }
    }

    fn insert(&mut self, token: usize, c: Client) {
        *self.per_uid.entry(c.uid).or_default() += 1;
        self.subscribers += usize::from(c.sub.is_some());
        self.map.insert(token, c);
    }

    /// Whether a client is still connected.
    pub fn is_open(&self, token: usize) -> bool {
        self.map.contains_key(&token)
    }

    /// A client's request timer: a client that still owes a whole request
    /// and waits for nothing is closed; others get a new deadline.
    pub fn check_idle(&mut self, token: usize, reactor: &Reactor) {
        let Some(c) = self.map.get(&token) else {
            return;
        };
        if c.sub.is_some() {
            return; // a subscriber owes no request
        }
        if c.busy || !c.unsent().is_empty() {
            // Waiting for a job, or for the client to read: not idle.
            reactor.arm(REQUEST_TIMEOUT, Timer::ClientIdle(token));
            return;
        }
        let due = c.idle_since + REQUEST_TIMEOUT;
        let now = Instant::now();
        if now >= due {
            self.close(token, reactor);
        } else {
            reactor.arm(due - now, Timer::ClientIdle(token));
        }
    }

    /// Reads what a client sent (not while its answers are unread: the
    /// requests behind them wait in the socket).
    pub fn read(&mut self, token: usize) {
        let Some(c) = self.map.get_mut(&token) else {
            return;
        };
        if !c.unsent().is_empty() {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    c.read_closed = true;
                    break;
                }
                Ok(n) => {
                    c.inbuf.extend_from_slice(&buf[..n]);
                    if c.inbuf.len() > MAX_REQUEST_BYTES * 4 {
                        break; // handle what we have before reading more
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.read_closed = true;
                    break;
                }
            }
        }
        if c.sub.is_some() {
            c.inbuf.clear(); // a subscriber sends no more requests
        }
    }

    /// The client's next whole request, decoded (or why it is refused),
    /// with the peer's uid; `None` while it waits for a job, has answers
    /// unread, or has sent no whole line.
    pub fn next_request(
        &mut self,
        token: usize,
        reactor: &Reactor,
    ) -> Option<(u32, Result<Request, String>)> {
        loop {
            let c = self.map.get_mut(&token)?;
            if c.busy || c.close_after_flush || !c.unsent().is_empty() {
                return None;
            }
            let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
                if c.inbuf.len() > MAX_REQUEST_BYTES {
                    c.inbuf.clear();
                    c.close_after_flush = true;
                    self.send(token, &too_long(), None, reactor);
                }
                return None;
            };
            let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
            c.idle_since = Instant::now();
            let uid = c.uid;
            if nl > MAX_REQUEST_BYTES {
                c.close_after_flush = true;
                self.send(token, &too_long(), None, reactor);
                return None;
            }
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some((uid, control::decode_request(line)));
        }
    }

    /// The client's request waits for a job: its answer comes later.
    pub fn set_busy(&mut self, token: usize) {
        if let Some(c) = self.map.get_mut(&token) {
            c.busy = true;
        }
    }

    /// Answers a request that was waiting; the client's next lines are
    /// served on this loop turn.
    pub fn reply(&mut self, token: usize, resp: &Response, reactor: &Reactor) {
        let Some(c) = self.map.get_mut(&token) else {
            return;
        };
        c.busy = false;
        c.idle_since = Instant::now();
        self.send(token, resp, None, reactor);
        self.resume.push(token);
    }

    /// Queues an answer (with a descriptor to pass along, for `log-open`).
    pub fn send(&mut self, token: usize, resp: &Response, fd: Option<OwnedFd>, reactor: &Reactor) {
        let encoded = match serde_json::to_vec(resp) {
            Ok(mut v) => {
                v.push(b'\n');
                v
            }
            Err(_) => return,
        };
        let Some(c) = self.map.get(&token) else {
            return;
        };
        // The user's unread answers, this one included, within budget
        // (root's too: no one makes the daemon hold without bound). One
        // client's are capped too, but an answer to a client with none
        // unread is always given, whatever its size (a `list` of 10,000
        // jobs with their costs is 4 MiB).
        let uid = c.uid;
        let unread = c.unsent().len();
        let held: usize = self
            .map
            .values()
            .filter(|o| o.uid == uid)
            .map(|o| o.unsent().len())
            .sum();
        if held + encoded.len() > MAX_OUTPUT_PER_UID
            || unread > 0 && unread + encoded.len() > MAX_OUTPUT
        {
            self.close(token, reactor);
            return;
        }
        let Some(c) = self.map.get_mut(&token) else {
            return;
        };
        if let Some(fd) = fd {
            c.fds.push_back((c.unsent().len(), fd));
        }
        if c.outbuf.is_empty() {
            c.outbuf = encoded;
        } else {
            c.queue(&encoded);
        }
        self.flush(token, reactor);
    }

    /// Writes what the client can take now; closes it when it is done.
    pub fn flush(&mut self, token: usize, reactor: &Reactor) {
        let Some(c) = self.map.get_mut(&token) else {
            return;
        };
        let had_output = !c.unsent().is_empty();
        while !c.unsent().is_empty() {
            // Bytes up to the next descriptor's go plainly; that byte goes
            // with its descriptor.
            let out = &c.outbuf[c.out_at..];
            let sent = match c.fds.front() {
                Some((0, fd)) => crate::process::send_with_fd(c.stream.as_fd(), out, fd.as_fd()),
                Some(&(at, _)) => c.stream.write(&out[..at]),
                None => c.stream.write(out),
            };
            match sent {
                Ok(0) => break,
                Ok(n) => {
                    // The descriptor went with the first byte.
                    if c.fds.front().is_some_and(|&(at, _)| at == 0) {
                        c.fds.pop_front();
                    }
                    c.sent(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(token, reactor);
                    return;
                }
            }
        }
        let gone_subscriber = c.sub.is_some() && c.read_closed;
        let done = gone_subscriber
            || c.unsent().is_empty()
                && (c.close_after_flush || (c.read_closed && !c.busy && !c.inbuf.contains(&b'\n')));
        if done {
            self.close(token, reactor);
            return;
        }
        let want_write = !c.unsent().is_empty();
        if want_write != c.want_write {
            c.want_write = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = reactor.reregister(&mut c.stream, token, interest);
        }
        if had_output && !want_write {
            // Everything read: the requests that waited behind the answers
            // are read on this loop turn (never by recursion from here).
            c.idle_since = Instant::now();
            self.resume.push(token);
        }
    }

    pub fn close(&mut self, token: usize, reactor: &Reactor) {
        if let Some(mut c) = self.map.remove(&token) {
            reactor.deregister(&mut c.stream);
            self.subscribers -= usize::from(c.sub.is_some());
            if let Some(n) = self.per_uid.get_mut(&c.uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_uid.remove(&c.uid);
                }
            }
        }
        self.waiters.retain(|w| w.client != token);
    }

    /// Answers for the waiters of an instance that moved (and keeps the
    /// others); `status` gives an instance's status.
    pub fn answers_for(
        &mut self,
        inst: &Instance,
        status: &dyn Fn(&Instance) -> InstanceStatus,
    ) -> Vec<(usize, Response)> {
        let key = std::rc::Rc::new((inst.job.clone(), inst.name.clone()));
        let mut answers = Vec::new();
        self.waiters.retain(|w| {
            if w.key != key {
                return true;
            }
            match wait_outcome(inst, w.kind, status) {
                Some(resp) => {
                    answers.push((w.client, resp));
                    false
                }
                None => true,
            }
        });
        answers
    }

    /// Answers for everyone waiting on an instance that is gone.
    pub fn answers_for_gone(&mut self, inst: &Instance) -> Vec<(usize, Response)> {
        let key = std::rc::Rc::new((inst.job.clone(), inst.name.clone()));
        let mut answers = Vec::new();
        self.waiters.retain(|w| {
            if w.key != key {
                return true;
            }
            answers.push((w.client, destroyed_outcome(&key, w.kind, Some(inst))));
            false
        });
        answers
    }

    /// What a re-exec hands across of this part; `answer`: the clients
    /// whose `re-exec` the new image answers.
    pub fn saved(&self, answer: &[usize], blob: &mut super::reexec::Blob) -> Saved {
        Saved {
            clients: self
                .map
                .iter()
                .map(|(&token, c)| SavedClient {
                    token,
                    fd: c.stream.as_raw_fd(),
                    uid: c.uid,
                    inbuf: Vec::new(),
                    outbuf: Vec::new(),
                    inbuf_at: blob.put(&c.inbuf),
                    outbuf_at: blob.put(c.unsent()),
                    busy: c.busy,
                    read_closed: c.read_closed,
                    close_after_flush: c.close_after_flush,
                    sub: c.sub.clone(),
                })
                .collect(),
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
        }
    }

    /// This part as a previous image left it; returns the clients whose
    /// `re-exec` is to be answered.
    pub fn restore(
        &mut self,
        s: Saved,
        blob: &super::reexec::Blob,
        reactor: &Reactor,
        adopt: &mut dyn FnMut(RawFd) -> Result<OwnedFd, String>,
    ) -> Result<Vec<usize>, String> {
        for c in s.clients {
            let stream = std::os::unix::net::UnixStream::from(adopt(c.fd)?);
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
            reactor
                .register(&mut stream, c.token, interest)
                .map_err(|e| format!("client: {e}"))?;
            let control = self.member(&stream);
            let mut client = new_client(stream, c.uid);
            client.control = control;
            client.inbuf = inbuf;
            client.outbuf = outbuf;
            client.busy = c.busy;
            client.read_closed = c.read_closed;
            client.close_after_flush = c.close_after_flush;
            client.want_write = want_write;
            client.sub = c.sub;
            self.insert(c.token, client);
            reactor.arm(REQUEST_TIMEOUT, Timer::ClientIdle(c.token));
        }
        for (client, key, kind) in s.waiters {
            let kind = match kind {
                SavedWait::Start => WaitKind::Start,
                SavedWait::Stop => WaitKind::Stop,
                SavedWait::Restart(g) => WaitKind::Restart(g),
            };
            self.waiters.push(Waiter { client, key, kind });
        }
        Ok(s.answer)
    }

    /// The descriptors this part hands across a re-exec.
    pub fn descriptors(s: &Saved) -> impl Iterator<Item = RawFd> + '_ {
        s.clients.iter().map(|c| c.fd)
    }
}

fn new_client(stream: mio::net::UnixStream, uid: u32) -> Client {
    Client {
        stream,
        uid,
        control: false,
        inbuf: Vec::new(),
        outbuf: Vec::new(),
        out_at: 0,
        busy: false,
        read_closed: false,
        close_after_flush: false,
        want_write: false,
        fds: VecDeque::new(),
        idle_since: Instant::now(),
        sub: None,
    }
}

/// Upstart's message, then upkeep's reason: `Job failed to start: main
/// process terminated with status 1`.
pub(super) fn with_detail(what: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("{what}: {d}"),
        None => what.to_string(),
    }
}

/// Whether a waiter on a live instance can be answered now.
pub(super) fn wait_outcome(
    inst: &Instance,
    kind: WaitKind,
    status: &dyn Fn(&Instance) -> InstanceStatus,
) -> Option<Response> {
    match kind {
        WaitKind::Start | WaitKind::Restart(_) => {
            if let WaitKind::Restart(g) = kind {
                if inst.generation <= g {
                    return None;
                }
            }
            if inst.failed.is_some() && inst.goal == Goal::Stop {
                let what = if kind == WaitKind::Start {
                    "Job failed to start"
                } else {
                    "Job failed to restart"
                };
                return Some(Response::Error {
                    message: with_detail(what, inst.failure_detail.as_deref()),
                });
            }
            if !inst.class.task && inst.state == State::Running && inst.goal == Goal::Start {
                return Some(Response::ok(vec![status(inst)]));
            }
            None
        }
        WaitKind::Stop => {
            // Started again meanwhile: the stop is over.
            (inst.goal != Goal::Stop).then(|| Response::ok(vec![status(inst)]))
        }
    }
}

/// The answer to a waiter on an instance that is gone (`gone`: as it was
/// last; `None`: it ended with no failure).
pub(super) fn destroyed_outcome(key: &Key, kind: WaitKind, gone: Option<&Instance>) -> Response {
    let failed = gone.and_then(|i| {
        i.failed
            .as_ref()
            .map(|f| (f.process, i.failure_detail.clone()))
    });
    let error = |what: &str, detail: &Option<String>| Response::Error {
        message: with_detail(what, detail.as_deref()),
    };
    match (kind, failed) {
        (WaitKind::Start, Some((_, d))) => error("Job failed to start", &d),
        (WaitKind::Restart(_), Some((_, d))) => error("Job failed to restart", &d),
        (WaitKind::Stop, Some((FailedProcess::Process(ProcessType::PostStop), d))) => {
            error("Job failed while stopping", &d)
        }
        _ => Response::ok(vec![InstanceStatus::waiting(&key.0)]),
    }
}

/// This part in the re-exec format (flattened into the handover).
#[derive(Serialize, Deserialize)]
pub(super) struct Saved {
    clients: Vec<SavedClient>,
    waiters: Vec<(usize, Key, SavedWait)>,
    /// The clients whose `re-exec` the new image answers.
    answer: Vec<usize>,
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
    inbuf_at: Option<super::reexec::Span>,
    #[serde(default)]
    outbuf_at: Option<super::reexec::Span>,
    busy: bool,
    read_closed: bool,
    close_after_flush: bool,
    /// A subscriber's subscription (absent before `monitor` existed).
    #[serde(default)]
    sub: Option<monitor::Sub>,
}

#[derive(Serialize, Deserialize)]
enum SavedWait {
    Start,
    Stop,
    Restart(u64),
}
