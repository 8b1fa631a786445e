//! `expect notify`: the sd_notify protocol. Each such job instance gets a
//! datagram socket of its own, `SOCKET.notify/N` beside the control
//! socket: the directory is the daemon's (mode 0711), the socket belongs to
//! the job's user (mode 0600), so no other user can send to it (an
//! abstract socket, which anyone in the network namespace may reach and
//! `/proc/net/unix` lists, is never used). `READY=1` makes the job ready,
//! `MAINPID=N` names its main process.
//!
//! A message counts only when its sender (from the kernel's
//! SCM_CREDENTIALS, never from the message) is a process the daemon knows
//! to be the job's: one it spawned or followed for the job, a descendant of
//! one (by the kernel's parent links), or a process of the session a job
//! process leads. A process's environment is never evidence: anyone can
//! set `UPSTART_JOB` for itself. `MAINPID` must name such a process too; if
//! it is not the daemon's child, the daemon watches it through a pidfd, so
//! that its end is seen although no SIGCHLD will tell (see `Alien`).

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};

use super::{Daemon, Key};
use crate::job::{Exit, Input};
use crate::process::tree;

/// The longest path a Unix socket address holds (`sun_path` less its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

pub(super) struct Notifier {
    pub key: Key,
    pub(super) sock: UnixDatagram,
    /// The value of `NOTIFY_SOCKET`: the socket's path.
    pub address: String,
}

/// A main process named by `MAINPID` that is not the daemon's child: its
/// end comes as its pidfd turning readable.
pub(super) struct Alien {
    pub key: Key,
    pub pid: i32,
    pub fd: OwnedFd,
}

/// `SOCKET.notify`: the directory of the notify sockets.
pub fn notify_dir(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".notify");
    PathBuf::from(s)
}

impl Daemon {
    /// The notify socket of a job instance, made on first use. An error
    /// fails the spawn: a job that says `expect notify` never runs without
    /// the socket it would wait on.
    pub(super) fn notify_socket(&mut self, key: &Key) -> Result<String, String> {
        if let Some(t) = self.notify_by_key.get(key) {
            if let Some(n) = self.notifiers.get(t) {
                return Ok(n.address.clone());
            }
        }
        let token = self.next_token;
        self.next_token += 1;
        let path = notify_dir(&self.cfg.socket).join(token.to_string());
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
        let owner = self.job_owner(key);
        let sock = crate::process::bind_private_datagram(&path, owner)
            .map_err(|e| format!("unable to make a notify socket {address}: {e}"))?;
        let _ = setsockopt(&sock, sockopt::PassCred, &true);
        let raw = sock.as_raw_fd();
        self.poll
            .registry()
            .register(&mut SourceFd(&raw), Token(token), Interest::READABLE)
            .map_err(|e| format!("unable to watch the notify socket: {e}"))?;
        self.notifiers.insert(
            token,
            Notifier {
                key: key.clone(),
                sock,
                address: address.clone(),
            },
        );
        self.notify_by_key.insert(key.clone(), token);
        Ok(address)
    }

    /// The (uid, gid) a job's processes run as, when the daemon is root and
    /// the job names a user; `None`: the daemon's own.
    fn job_owner(&self, key: &Key) -> Option<(u32, u32)> {
        if !self.system {
            return None;
        }
        let class = &self.instances.get(key)?.class;
        let user = nix::unistd::User::from_name(class.setuid.as_deref()?)
            .ok()
            .flatten()?;
        let gid = match &class.setgid {
            Some(g) => nix::unistd::Group::from_name(g).ok().flatten()?.gid,
            None => user.gid,
        };
        Some((user.uid.as_raw(), gid.as_raw()))
    }

    /// The instance is gone: so are its socket and any watch on its main.
    pub(super) fn drop_notify_socket(&mut self, key: &Key) {
        if let Some(t) = self.notify_by_key.remove(key) {
            if let Some(n) = self.notifiers.remove(&t) {
                let raw = n.sock.as_raw_fd();
                let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
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
            self.unwatch_alien(t);
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
                if self.verbose {
                    self.log(&format!(
                        "{}: a notification from pid {sender}, not one of the job's processes, ignored",
                        key.0
                    ));
                }
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
                    self.take_main_pid(&key, pid);
                }
            }
        }
    }

    /// `MAINPID=pid` from one of the job's processes: honoured when `pid`
    /// is the job's too.
    fn take_main_pid(&mut self, key: &Key, pid: i32) {
        if !self.belongs_to(key, pid) {
            self.log(&format!(
                "{}: MAINPID={pid} refused: not one of the job's processes",
                key.0
            ));
            return;
        }
        let Some(pgid) = tree::pgid_of(pid) else {
            return;
        };
        let me = std::process::id() as i32;
        if tree::ppid_of(pid) != Some(me) {
            // Not our child: no SIGCHLD will say when it ends.
            match crate::process::pidfd_open(pid) {
                Ok(fd) => self.watch_alien(key, pid, fd),
                Err(e) => {
                    self.log(&format!(
                        "{}: MAINPID={pid} refused: unable to watch a process that is not the daemon's child: {e}",
                        key.0
                    ));
                    return;
                }
            }
        }
        self.pids.insert(pid, key.clone());
        self.state_dirty = true;
        let _ = self.drive(key, Input::MainPid { pid, pgid });
    }

    pub(super) fn watch_alien(&mut self, key: &Key, pid: i32, fd: OwnedFd) {
        let token = self.next_token;
        self.next_token += 1;
        let raw = fd.as_raw_fd();
        if self
            .poll
            .registry()
            .register(&mut SourceFd(&raw), Token(token), Interest::READABLE)
            .is_ok()
        {
            self.aliens.insert(
                token,
                Alien {
                    key: key.clone(),
                    pid,
                    fd,
                },
            );
        }
    }

    fn unwatch_alien(&mut self, token: usize) {
        if let Some(a) = self.aliens.remove(&token) {
            let raw = a.fd.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
        }
    }

    /// A main process that is not our child ended. If it was re-parented
    /// to us meanwhile, the reaper has its status; otherwise its parent
    /// took it, and the job learns that it ended, status unknown.
    pub(super) fn on_alien(&mut self, token: usize) {
        self.reap();
        let Some(a) = self.aliens.get(&token) else {
            return;
        };
        let (key, pid) = (a.key.clone(), a.pid);
        self.unwatch_alien(token);
        if self.pids.get(&pid) != Some(&key) {
            return; // reaped as our child after all
        }
        self.pids.remove(&pid);
        self.state_dirty = true;
        let group = self
            .instances
            .get(&key)
            .and_then(|i| i.group)
            .unwrap_or(pid);
        let group_empty = self.job_processes_gone(&key, group);
        let _ = self.drive(
            &key,
            Input::Exited {
                pid,
                status: Exit::Unknown,
                group_empty,
            },
        );
    }

    /// Whether `pid` is one of the job's processes, by what the kernel
    /// says of it (never by its environment): a process the daemon
    /// spawned or followed for the job, a descendant of one, or a process
    /// in the session one of them leads.
    pub(super) fn belongs_to(&self, key: &Key, pid: i32) -> bool {
        let ours = |p: i32| self.pids.get(&p) == Some(key);
        if ours(pid) {
            return true;
        }
        let me = std::process::id() as i32;
        if tree::descends_from(pid, me, &ours) {
            return true;
        }
        // Every job process starts a session of its own, which no other
        // process can join: a re-parented descendant is still in it.
        tree::session_of(pid).is_some_and(|sid| sid > 1 && ours(sid))
    }
}
