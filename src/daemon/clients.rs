//! Control clients: accepting, reading request lines, writing answers,
//! without ever blocking the loop. Every input from a socket is bounded in
//! size, time and count per user (`docs/security.md`, "Control socket"):
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
//!   client's unread answers are capped at [`MAX_OUTPUT`], and one user's
//!   at [`MAX_OUTPUT_PER_UID`]: a client over either is dropped.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::{Daemon, Timer};
use crate::control::{self, Response, MAX_REQUEST_BYTES};
use crate::process::capture;

/// More clients than this at once are refused.
pub const MAX_CLIENTS: usize = 4096;
/// At most this many connections of one user other than root and the
/// daemon's own.
pub const MAX_PER_UID: usize = 128;
/// A client whose unread answers pile up past this is dropped.
const MAX_OUTPUT: usize = 4 << 20;
/// All the unread answers of one user's clients together.
const MAX_OUTPUT_PER_UID: usize = 16 << 20;
/// How long a connection may take to send a whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Client {
    pub(super) stream: mio::net::UnixStream,
    /// Who the peer is, from SO_PEERCRED: the only source of authority.
    pub uid: u32,
    pub(super) inbuf: Vec<u8>,
    pub(super) outbuf: Vec<u8>,
    /// A request of this client is waiting for a job; later lines wait.
    pub busy: bool,
    pub(super) read_closed: bool,
    pub(super) close_after_flush: bool,
    pub(super) want_write: bool,
    /// Descriptors to pass along with the answers (`log-open`): each goes
    /// with the byte of `outbuf` at its offset.
    pub(super) fds: std::collections::VecDeque<(usize, OwnedFd)>,
    /// Since when the client owes a whole request (it waits for nothing).
    pub(super) idle_since: Instant,
}

/// Who holds how much, per uid.
#[derive(Default)]
pub(super) struct PerUid {
    connections: HashMap<u32, usize>,
}

/// Rate-limits a message about a condition that may come and go many
/// times a second (accept failing): said at once, then at most once a
/// minute, with how often it happened meanwhile.
#[derive(Default)]
pub(super) struct Throttle {
    last: Option<Instant>,
    since: u64,
}

impl Throttle {
    /// The message to log now, if any.
    pub fn say(&mut self, msg: impl FnOnce() -> String) -> Option<String> {
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

fn too_long() -> Response {
    Response::Error {
        message: format!("Request too long (the limit is {MAX_REQUEST_BYTES} bytes)"),
    }
}

impl Daemon {
    /// Whether `uid` has the daemon's full authority (and its private
    /// socket).
    fn privileged(&self, uid: u32) -> bool {
        uid == 0 || uid == self.my_uid
    }

    /// Accepts on the public socket (`private` false) or the private one.
    pub(super) fn accept(&mut self, private: bool) {
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
                if let Some(m) = self.accept_throttle.say(|| {
                    "descriptors are short: new clients wait in the socket's backlog (root and the daemon's user are served on the private socket)".to_string()
                }) {
                    self.log(&m);
                }
                return;
            }
            let listener = if private {
                match &self.priv_listener {
                    Some(l) => l,
                    None => return,
                }
            } else {
                &self.listener
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
                    if self.clients.len() >= MAX_CLIENTS {
                        continue; // dropped: closed at once
                    }
                    let held = self.per_uid.connections.get(&uid).copied().unwrap_or(0);
                    if !self.privileged(uid) && held >= MAX_PER_UID {
                        let msg = format!(
                            "{{\"result\":\"error\",\"message\":\"Too many connections from uid {uid} (the limit is {MAX_PER_UID})\"}}\n"
                        );
                        let _ = stream.write(msg.as_bytes());
                        continue;
                    }
                    let token = self.next_token;
                    self.next_token += 1;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(token), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    *self.per_uid.connections.entry(uid).or_default() += 1;
                    self.clients.insert(
                        token,
                        Client {
                            stream,
                            uid,
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            busy: false,
                            read_closed: false,
                            close_after_flush: false,
                            want_write: false,
                            fds: Default::default(),
                            idle_since: Instant::now(),
                        },
                    );
                    self.arm(REQUEST_TIMEOUT, Timer::ClientIdle(token));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: tried again after each wakeup.
                    if !private {
                        self.accept_stalled = true;
                    }
                    if let Some(m) = self
                        .accept_throttle
                        .say(|| format!("accept: {e}; clients wait until descriptors are free"))
                    {
                        self.log(&m);
                    }
                    break;
                }
            }
        }
    }

    /// A client's request timer: a client that still owes a whole request
    /// and waits for nothing is closed; others get a new deadline.
    pub(super) fn check_client_idle(&mut self, token: usize) {
        let Some(c) = self.clients.get(&token) else {
            return;
        };
        if c.busy || !c.outbuf.is_empty() {
            // Waiting for a job, or for the client to read: not idle.
            self.arm(REQUEST_TIMEOUT, Timer::ClientIdle(token));
            return;
        }
        let due = c.idle_since + REQUEST_TIMEOUT;
        let now = Instant::now();
        if now >= due {
            self.close(token);
        } else {
            self.arm(due - now, Timer::ClientIdle(token));
        }
    }

    pub(super) fn on_client(&mut self, token: usize, readable: bool, writable: bool) {
        if readable {
            self.read_client(token);
        }
        if writable {
            self.flush(token);
        }
    }

    pub(super) fn read_client(&mut self, token: usize) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        // Answers unread: the requests behind them wait in the socket.
        if !c.outbuf.is_empty() {
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
        self.process_lines(token);
    }

    /// Handles the complete request lines of a client, one at a time.
    fn process_lines(&mut self, token: usize) {
        loop {
            let Some(c) = self.clients.get_mut(&token) else {
                return;
            };
            if c.busy || c.close_after_flush || !c.outbuf.is_empty() {
                break;
            }
            let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
                if c.inbuf.len() > MAX_REQUEST_BYTES {
                    c.inbuf.clear();
                    c.close_after_flush = true;
                    self.send(token, &too_long());
                }
                break;
            };
            let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
            let uid = c.uid;
            c.idle_since = Instant::now();
            if nl > MAX_REQUEST_BYTES {
                c.close_after_flush = true;
                self.send(token, &too_long());
                break;
            }
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match control::decode_request(line) {
                Err(message) => self.send(token, &Response::Error { message }),
                Ok(control::Request {
                    command: control::Command::LogOpen { job, env },
                    ..
                }) => {
                    let (resp, fd) = self.open_log(uid, &job, &env);
                    self.send_with_fd(token, &resp, fd);
                }
                Ok(req) => {
                    if let Some(resp) = self.handle(token, uid, req.command) {
                        self.send(token, &resp);
                    } else if let Some(c) = self.clients.get_mut(&token) {
                        c.busy = true;
                    }
                }
            }
        }
        self.flush(token);
    }

    /// Answers a request that was waiting, then goes on with the client's
    /// next lines.
    pub(super) fn reply(&mut self, token: usize, resp: &Response) {
        if let Some(c) = self.clients.get_mut(&token) {
            c.busy = false;
            c.idle_since = Instant::now();
        } else {
            return;
        }
        self.send(token, resp);
        self.process_lines(token);
    }

    fn send(&mut self, token: usize, resp: &Response) {
        self.send_with_fd(token, resp, None);
    }

    fn send_with_fd(&mut self, token: usize, resp: &Response, fd: Option<OwnedFd>) {
        let encoded = match serde_json::to_vec(resp) {
            Ok(mut v) => {
                v.push(b'\n');
                v
            }
            Err(e) => {
                self.log(&format!("unable to encode an answer: {e}"));
                return;
            }
        };
        let Some(c) = self.clients.get(&token) else {
            return;
        };
        // The user's unread answers, this one included, within budget
        // (root's too: no one makes the daemon hold without bound).
        let uid = c.uid;
        let held: usize = self
            .clients
            .values()
            .filter(|o| o.uid == uid)
            .map(|o| o.outbuf.len())
            .sum();
        if held + encoded.len() > MAX_OUTPUT_PER_UID {
            self.close(token);
            return;
        }
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        if let Some(fd) = fd {
            c.fds.push_back((c.outbuf.len(), fd));
        }
        c.outbuf.extend_from_slice(&encoded);
        self.flush(token);
    }

    fn flush(&mut self, token: usize) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        let had_output = !c.outbuf.is_empty();
        while !c.outbuf.is_empty() {
            // Bytes up to the next descriptor's go plainly; that byte goes
            // with its descriptor.
            let sent = match c.fds.front() {
                Some((0, fd)) => {
                    use std::os::fd::AsFd;
                    crate::process::send_with_fd(c.stream.as_fd(), &c.outbuf, fd.as_fd())
                }
                Some(&(at, _)) => c.stream.write(&c.outbuf[..at]),
                None => c.stream.write(&c.outbuf),
            };
            match sent {
                Ok(0) => break,
                Ok(n) => {
                    c.outbuf.drain(..n);
                    if c.fds.front().is_some_and(|&(at, _)| at == 0) {
                        c.fds.pop_front();
                    }
                    for (at, _) in c.fds.iter_mut() {
                        *at -= n;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(token);
                    return;
                }
            }
        }
        let done = c.outbuf.is_empty()
            && (c.close_after_flush || (c.read_closed && !c.busy && !c.inbuf.contains(&b'\n')));
        if done || c.outbuf.len() > MAX_OUTPUT {
            self.close(token);
            return;
        }
        let want_write = !c.outbuf.is_empty();
        if want_write != c.want_write {
            c.want_write = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self
                .poll
                .registry()
                .reregister(&mut c.stream, Token(token), interest);
        }
        if had_output && !want_write {
            // Everything read: the requests that waited behind the answers
            // are read on this loop turn (never by recursion from here).
            c.idle_since = Instant::now();
            self.resume_read.push(token);
        }
    }

    pub(super) fn close(&mut self, token: usize) {
        if let Some(mut c) = self.clients.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            if let Some(n) = self.per_uid.connections.get_mut(&c.uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_uid.connections.remove(&c.uid);
                }
            }
        }
        self.waiters.retain(|w| w.client != token);
    }

    /// Counts a client handed across a re-exec.
    pub(super) fn count_client(&mut self, uid: u32) {
        *self.per_uid.connections.entry(uid).or_default() += 1;
    }
}
