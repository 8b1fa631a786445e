//! Control clients: accepting, reading request lines, writing answers,
//! without ever blocking the loop. A client that sends too much, too long a
//! line, or never reads its answers is dropped; others are not disturbed.

use std::io::{self, Read, Write};

use mio::{Interest, Token};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::Daemon;
use crate::control::{self, Response, MAX_REQUEST_BYTES};

/// More clients than this at once are refused.
pub const MAX_CLIENTS: usize = 4096;
/// A client whose unread answers pile up past this is dropped.
const MAX_OUTPUT: usize = 4 << 20;

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
    pub(super) fds: std::collections::VecDeque<(usize, std::os::fd::OwnedFd)>,
}

fn too_long() -> Response {
    Response::Error {
        message: format!("Request too long (the limit is {MAX_REQUEST_BYTES} bytes)"),
    }
}

impl Daemon {
    pub(super) fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    self.accept_stalled = false;
                    if self.clients.len() >= MAX_CLIENTS {
                        drop(stream);
                        continue;
                    }
                    let Ok(cred) = getsockopt(&stream, PeerCredentials) else {
                        continue;
                    };
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
                    self.clients.insert(
                        token,
                        Client {
                            stream,
                            uid: cred.uid(),
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            busy: false,
                            read_closed: false,
                            close_after_flush: false,
                            want_write: false,
                            fds: Default::default(),
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: said once, and tried again after
                    // each wakeup until it works (see `accept_stalled`).
                    if !self.accept_stalled {
                        self.log(&format!(
                            "accept: {e}; clients wait until descriptors are free"
                        ));
                    }
                    self.accept_stalled = true;
                    break;
                }
            }
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

    fn read_client(&mut self, token: usize) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
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
            if c.busy || c.close_after_flush {
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
        } else {
            return;
        }
        self.send(token, resp);
        self.process_lines(token);
    }

    fn send(&mut self, token: usize, resp: &Response) {
        self.send_with_fd(token, resp, None);
    }

    fn send_with_fd(&mut self, token: usize, resp: &Response, fd: Option<std::os::fd::OwnedFd>) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        if let Some(fd) = fd {
            c.fds.push_back((c.outbuf.len(), fd));
        }
        match serde_json::to_vec(resp) {
            Ok(mut v) => {
                v.push(b'\n');
                c.outbuf.extend_from_slice(&v);
            }
            Err(e) => self.log(&format!("unable to encode an answer: {e}")),
        }
        self.flush(token);
    }

    fn flush(&mut self, token: usize) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
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
    }

    fn close(&mut self, token: usize) {
        if let Some(mut c) = self.clients.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.waiters.retain(|w| w.client != token);
    }
}
