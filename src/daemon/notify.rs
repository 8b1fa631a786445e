//! `expect notify`: the sd_notify protocol. Each such job gets its own
//! datagram socket (abstract, named in `NOTIFY_SOCKET`); `READY=1` makes it
//! ready, `MAINPID=N` names its main process. Only messages whose sender
//! (from the kernel's SCM_CREDENTIALS, never from the message) is one of
//! the job's own processes count.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};

use super::{Daemon, Key};
use crate::job::Input;
use crate::process::tree;

pub(super) struct Notifier {
    pub key: Key,
    pub(super) sock: UnixDatagram,
    /// The value of `NOTIFY_SOCKET` (`@` for the abstract namespace).
    pub address: String,
}

impl Daemon {
    /// The notify socket of a job instance, made on first use.
    pub(super) fn notify_socket(&mut self, key: &Key) -> Option<String> {
        if let Some(t) = self.notify_by_key.get(key) {
            return self.notifiers.get(t).map(|n| n.address.clone());
        }
        let token = self.next_token;
        self.next_token += 1;
        let name = format!("upkeep-notify-{}-{token}", std::process::id());
        let made = SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| UnixDatagram::bind_addr(&addr))
            .and_then(|s| s.set_nonblocking(true).map(|_| s));
        let sock = match made {
            Ok(s) => s,
            Err(e) => {
                self.log(&format!("{}: unable to make a notify socket: {e}", key.0));
                return None;
            }
        };
        let _ = setsockopt(&sock, sockopt::PassCred, &true);
        let raw = sock.as_raw_fd();
        if self
            .poll
            .registry()
            .register(&mut SourceFd(&raw), Token(token), Interest::READABLE)
            .is_err()
        {
            return None;
        }
        let address = format!("@{name}");
        self.notifiers.insert(
            token,
            Notifier {
                key: key.clone(),
                sock,
                address: address.clone(),
            },
        );
        self.notify_by_key.insert(key.clone(), token);
        Some(address)
    }

    /// The instance is gone: so is its socket.
    pub(super) fn drop_notify_socket(&mut self, key: &Key) {
        if let Some(t) = self.notify_by_key.remove(key) {
            if let Some(n) = self.notifiers.remove(&t) {
                let raw = n.sock.as_raw_fd();
                let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            }
        }
    }

    /// Reads every waiting message of a notify socket.
    pub(super) fn on_notify(&mut self, token: usize) {
        loop {
            let Some(n) = self.notifiers.get(&token) else {
                return;
            };
            let key = n.key.clone();
            let mut buf = [0u8; 4096];
            let mut cmsg = nix::cmsg_space!(UnixCredentials);
            let (len, sender) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                match recvmsg::<()>(
                    n.sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(msg) => {
                        let sender = msg.cmsgs().ok().and_then(|mut c| {
                            c.find_map(|m| match m {
                                ControlMessageOwned::ScmCredentials(cr) => Some(cr.pid()),
                                _ => None,
                            })
                        });
                        (msg.bytes, sender)
                    }
                    Err(_) => return,
                }
            };
            let Some(sender) = sender else { continue };
            if !self.belongs_to(&key, sender) {
                continue;
            }
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            for line in text.lines() {
                if line == "READY=1" {
                    let _ = self.drive(&key, Input::Ready);
                } else if let Some(pid) = line
                    .strip_prefix("MAINPID=")
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    if self.belongs_to(&key, pid) {
                        if let Some(pgid) = tree::pgid_of(pid) {
                            self.pids.insert(pid, key.clone());
                            self.state_dirty = true;
                            let _ = self.drive(&key, Input::MainPid { pid, pgid });
                        }
                    }
                }
            }
        }
    }

    /// Whether `pid` is one of the job's own processes.
    fn belongs_to(&self, key: &Key, pid: i32) -> bool {
        self.pids.get(&pid) == Some(key) || tree::is_job_process(pid, &key.0, &key.1)
    }
}
