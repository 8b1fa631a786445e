//! `expect notify`: the sd_notify protocol. Each such job instance gets a
//! datagram socket of its own, `SOCKET.notify/N` beside the control
//! socket: the directory is the daemon's (mode 0711), the socket belongs to
//! the job's user (mode 0600), so no other user can send to it (an
//! abstract socket, which anyone in the network namespace may reach and
//! `/proc/net/unix` lists, is never used). `READY=1` makes the job ready,
//! `MAINPID=N` names its main process.
//!
//! A message counts only when its sender (from the kernel's
//! SCM_CREDENTIALS, never from the message) is a process the kernel says is
//! the job's (`JobTable::belongs_to`); a process's environment is never
//! evidence. `MAINPID` must name such a process too; if it is not the
//! daemon's child, it is watched through a pidfd (an [`Alien`]), so that
//! its end is seen although no SIGCHLD will tell.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use mio::Interest;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};
use serde::{Deserialize, Serialize};

use super::jobs::{JobTable, Launch};
use super::output::DaemonLog;
use super::reactor::Reactor;
use super::setup::Host;
use super::Key;
use crate::job::Input;
use crate::process::tree;

/// The longest path a Unix socket address holds (`sun_path` less its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

struct Notifier {
    key: Key,
    sock: UnixDatagram,
    /// The value of `NOTIFY_SOCKET`: the socket's path.
    address: String,
}

/// A main process named by `MAINPID` that is not the daemon's child: its
/// end comes as its pidfd turning readable.
struct Alien {
    key: Key,
    pid: i32,
    fd: OwnedFd,
}

/// `SOCKET.notify`: the directory of the notify sockets.
pub fn notify_dir(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".notify");
    PathBuf::from(s)
}

/// The notify sockets and the main processes watched by pidfd.
#[derive(Default)]
pub(super) struct Notify {
    sockets: HashMap<usize, Notifier>,
    by_key: HashMap<Key, usize>,
    aliens: HashMap<usize, Alien>,
}

/// What a notification asks of the job table: an input for an instance
/// (`READY=1`; `MAINPID=pid`, a process of the job, which becomes its
/// main process).
pub(super) type Notice = (Key, Input);

impl Notify {
    pub fn is_socket(&self, token: usize) -> bool {
        self.sockets.contains_key(&token)
    }

    pub fn is_alien(&self, token: usize) -> bool {
        self.aliens.contains_key(&token)
    }

    /// A process of an `expect notify` job gets `NOTIFY_SOCKET`, its
    /// instance's socket; other jobs' processes get nothing.
    pub fn prepare(
        &mut self,
        key: &Key,
        launch: &mut Launch,
        host: &Host,
        reactor: &Reactor,
    ) -> Result<(), String> {
        if launch.class.expect == crate::conf::Expect::Notify {
            let owner = super::jobs::job_owner(&launch.class, host.system);
            let addr = self.socket_for(key, owner, &host.cfg.socket, reactor)?;
            launch.set_env("NOTIFY_SOCKET", addr);
        }
        Ok(())
    }

    /// The notify socket of a job instance, made on first use. An error
    /// fails the spawn: a job that says `expect notify` never runs without
    /// the socket it would wait on.
    pub fn socket_for(
        &mut self,
        key: &Key,
        owner: Option<(u32, u32)>,
        control_socket: &Path,
        reactor: &Reactor,
    ) -> Result<String, String> {
        if let Some(n) = self.by_key.get(key).and_then(|t| self.sockets.get(t)) {
            return Ok(n.address.clone());
        }
        let token = reactor.token();
        let path = notify_dir(control_socket).join(token.to_string());
        let address = path
            .to_str()
            .ok_or_else(|| format!("{}: not UTF-8", path.display()))?
            .to_string();
        if address.len() > MAX_SOCKET_PATH {
            return Err(format!(
                "unable to make a notify socket: {address} is {} bytes, more than the {MAX_SOCKET_PATH} a socket address holds (choose a shorter --socket)",
                address.len()
            ));
        }
        let sock = crate::process::bind_private_datagram(&path, owner)
            .map_err(|e| format!("unable to make a notify socket {address}: {e}"))?;
        let _ = setsockopt(&sock, sockopt::PassCred, &true);
        reactor
            .register_fd(sock.as_raw_fd(), token, Interest::READABLE)
            .map_err(|e| format!("unable to watch the notify socket: {e}"))?;
        self.sockets.insert(
            token,
            Notifier {
                key: key.clone(),
                sock,
                address: address.clone(),
            },
        );
        self.by_key.insert(key.clone(), token);
        Ok(address)
    }

    /// The instance is gone: so are its socket and any watch on its main.
    pub fn drop_key(&mut self, key: &Key, reactor: &Reactor) {
        if let Some(t) = self.by_key.remove(key) {
            if let Some(n) = self.sockets.remove(&t) {
                reactor.deregister_fd(n.sock.as_raw_fd());
                let _ = std::fs::remove_file(&n.address);
            }
        }
        let gone: Vec<usize> = self
            .aliens
            .iter()
            .filter(|(_, a)| &a.key == key)
            .map(|(&t, _)| t)
            .collect();
        for t in gone {
            self.unwatch_alien(t, reactor);
        }
    }

    /// Reads every waiting message of a notify socket and says what they
    /// ask of the job table; a sender that is not the job's is ignored.
    pub fn receive(
        &mut self,
        token: usize,
        jobs: &JobTable,
        dlog: &DaemonLog,
        reactor: &Reactor,
    ) -> Vec<Notice> {
        let mut notices = Vec::new();
        loop {
            let Some(n) = self.sockets.get(&token) else {
                return notices;
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
                    Err(_) => return notices,
                }
            };
            let Some(sender) = sender else { continue };
            if !jobs.belongs_to(&key, sender) {
                if dlog.verbose {
                    dlog.log(&format!(
                        "{}: a notification from pid {sender}, not one of the job's processes, ignored",
                        key.0
                    ));
                }
                continue;
            }
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            for line in text.lines() {
                if line == "READY=1" {
                    notices.push((key.clone(), Input::Ready));
                } else if let Some(pid) = line
                    .strip_prefix("MAINPID=")
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    if let Some(n) = self.main_pid(&key, pid, jobs, dlog, reactor) {
                        notices.push(n);
                    }
                }
            }
        }
    }

    /// `MAINPID=pid` from one of the job's processes: honoured when `pid`
    /// is the job's too; one that is not the daemon's child gets a pidfd.
    fn main_pid(
        &mut self,
        key: &Key,
        pid: i32,
        jobs: &JobTable,
        dlog: &DaemonLog,
        reactor: &Reactor,
    ) -> Option<Notice> {
        if !jobs.belongs_to(key, pid) {
            dlog.log(&format!(
                "{}: MAINPID={pid} refused: not one of the job's processes",
                key.0
            ));
            return None;
        }
        let pgid = tree::pgid_of(pid)?;
        // Not our child: no SIGCHLD will say when it ends.
        if tree::ppid_of(pid) != Some(std::process::id() as i32) {
            if let Err(e) = self.watch_alien(key, pid, reactor) {
                dlog.log(&format!(
                    "{}: MAINPID={pid} refused: unable to watch a process that is not the daemon's child: {e}",
                    key.0
                ));
                return None;
            }
        }
        Some((key.clone(), Input::MainPid { pid, pgid }))
    }

    /// After a re-exec: main processes that are not the daemon's children
    /// are watched again (pidfds are not handed across).
    pub fn rewatch_aliens(&mut self, jobs: &JobTable, reactor: &Reactor) {
        let me = std::process::id() as i32;
        for (key, inst) in &jobs.instances {
            let Some(pid) = inst.pid(crate::conf::ProcessType::Main) else {
                continue;
            };
            if tree::ppid_of(pid).is_some_and(|pp| pp != me) {
                let _ = self.watch_alien(key, pid, reactor);
            }
        }
    }

    /// Watches a main process that is not the daemon's child.
    pub fn watch_alien(&mut self, key: &Key, pid: i32, reactor: &Reactor) -> Result<(), String> {
        let fd = crate::process::pidfd_open(pid).map_err(|e| e.to_string())?;
        let token = reactor.token();
        reactor
            .register_fd(fd.as_raw_fd(), token, Interest::READABLE)
            .map_err(|e| e.to_string())?;
        self.aliens.insert(
            token,
            Alien {
                key: key.clone(),
                pid,
                fd,
            },
        );
        Ok(())
    }

    fn unwatch_alien(&mut self, token: usize, reactor: &Reactor) {
        if let Some(a) = self.aliens.remove(&token) {
            reactor.deregister_fd(a.fd.as_raw_fd());
        }
    }

    /// A watched main process ended: whose it was.
    pub fn alien_ended(&mut self, token: usize, reactor: &Reactor) -> Option<(Key, i32)> {
        let a = self.aliens.get(&token)?;
        let found = (a.key.clone(), a.pid);
        self.unwatch_alien(token, reactor);
        Some(found)
    }

    /// What a re-exec hands across of this part (pidfds are not: the new
    /// image opens them again).
    pub fn saved(&self) -> Saved {
        Saved {
            notifiers: self
                .sockets
                .iter()
                .map(|(&token, n)| SavedNotifier {
                    token,
                    fd: n.sock.as_raw_fd(),
                    job: n.key.0.clone(),
                    instance: n.key.1.clone(),
                    address: n.address.clone(),
                })
                .collect(),
        }
    }

    /// This part as a previous image left it.
    pub fn restore(
        &mut self,
        s: Saved,
        reactor: &Reactor,
        adopt: &mut dyn FnMut(RawFd) -> Result<OwnedFd, String>,
    ) -> Result<(), String> {
        for n in s.notifiers {
            let sock = UnixDatagram::from(adopt(n.fd)?);
            reactor
                .register_fd(sock.as_raw_fd(), n.token, Interest::READABLE)
                .map_err(|e| format!("notify socket: {e}"))?;
            let key = std::rc::Rc::new((n.job, n.instance));
            self.by_key.insert(key.clone(), n.token);
            self.sockets.insert(
                n.token,
                Notifier {
                    key,
                    sock,
                    address: n.address,
                },
            );
        }
        Ok(())
    }

    /// The descriptors this part hands across a re-exec.
    pub fn descriptors(s: &Saved) -> impl Iterator<Item = RawFd> + '_ {
        s.notifiers.iter().map(|n| n.fd)
    }
}

/// This part in the re-exec format (flattened into the handover).
#[derive(Serialize, Deserialize)]
pub(super) struct Saved {
    notifiers: Vec<SavedNotifier>,
}

#[derive(Serialize, Deserialize)]
struct SavedNotifier {
    token: usize,
    fd: RawFd,
    job: String,
    instance: String,
    address: String,
}
