//! The process layer: the only room that makes raw system calls, and the
//! only one with `unsafe` (each block says why it is sound).
//!
//! * [`spawn`]: a job's process, set up as the job file says (with the
//!   vfork fast path in `fast_spawn`);
//! * [`reap_and_stops`]: collecting every child that ended or stopped
//!   (`wait4(-1)`, with the CPU time it used);
//! * [`sys`]: the seam, the trait the daemon's parts make system calls
//!   through (a fake stands in for it in their tests);
//! * [`handover`]: the descriptors and the exec of `re-exec`;
//! * [`capture`]: where job output goes (a pseudo-terminal or a pipe);
//! * [`tree`]: finding a job's re-parented processes in /proc, for
//!   `expect fork` and `expect daemon`;
//! * [`usage`]: what a job's processes use now (CPU, memory, descriptors),
//!   from /proc, on request;
//! * [`time`]: local time, for daily rotation and the log's time stamps;
//! * signalling process groups ([`kill_group`]), checking whether one is
//!   empty ([`group_is_empty`]), pidfds, descriptor passing and the gzip
//!   helper ([`spawn_gzip`]);
//! * [`errno_text`]: an errno in glibc's words, for every message.

pub mod apparmor;
pub mod capture;
mod clone3;
mod fast_spawn;
pub mod handover;
pub mod spawn;
pub mod sys;
pub mod time;
pub mod tree;
pub mod usage;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::job::Exit;

/// Where a spawned process's standard output and error go.
pub enum Output {
    Null,
    Inherit,
    File(std::os::fd::OwnedFd),
}

/// Large blocks (a `list` answer for 10,000 jobs, a map's table while it
/// grows) are mapped on their own and given back when freed, rather than
/// taken from the heap once glibc's adaptive threshold has risen past them:
/// the daemon lives for months, and each such burst would otherwise leave
/// the heap at its high-water mark, in pieces too small to give back.
pub fn hold_large_blocks_apart() {
    // SAFETY: mallopt(3) changes only the allocator's tuning, called
    // before the loop starts (the daemon has one thread).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// The effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The real user id.
pub fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// A child that ended: its pid, how, and the CPU time it used (user +
/// system, with that of the children it waited for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub pid: i32,
    pub exit: Exit,
    pub cpu: std::time::Duration,
}

/// Every child that has ended, and (for `expect stop`) every child that
/// stopped itself with a signal since the last call, without blocking.
pub fn reap_and_stops() -> (Vec<Ended>, Vec<i32>) {
    let mut out = Vec::new();
    let mut stopped = Vec::new();
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: rusage is a C struct of plain integers, for which all
        // zero bytes is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4(2) writes only to the two out-pointers, which point
        // to live locals of the right types for the whole call.
        let pid = unsafe { libc::wait4(-1, &mut raw, libc::WNOHANG | libc::WUNTRACED, &mut usage) };
        if pid == 0 {
            break; // children, none ended
        }
        if pid < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                _ => break, // ECHILD: no child at all
            }
        }
        let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
        match WaitStatus::from_raw(Pid::from_raw(pid), raw) {
            Ok(WaitStatus::Stopped(pid, _)) => stopped.push(pid.as_raw()),
            Ok(WaitStatus::Exited(pid, code)) => out.push(Ended {
                pid: pid.as_raw(),
                exit: Exit::Code(code),
                cpu,
            }),
            Ok(WaitStatus::Signaled(pid, sig, _)) => out.push(Ended {
                pid: pid.as_raw(),
                exit: Exit::Signal(sig as i32),
                cpu,
            }),
            _ => continue, // continued: not an end
        }
    }
    (out, stopped)
}

fn timeval(t: libc::timeval) -> std::time::Duration {
    std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
        + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// An errno in the words Upstart used for it: glibc's `strerror` text
/// ("No such file or directory"), with nothing added. The one place every
/// message of upkeep gets its words for a system error from.
pub fn errno_text(errno: i32) -> String {
    // std's Display is glibc's strerror_r, followed by " (os error N)".
    let full = std::io::Error::from_raw_os_error(errno).to_string();
    match full.strip_suffix(&format!(" (os error {errno})")) {
        Some(text) => text.to_string(),
        None => full,
    }
}

/// An I/O error's text: [`errno_text`] for a system error, else the error's
/// own words.
pub fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_text(n),
        None => e.to_string(),
    }
}

/// Sends a signal (by number) to a whole process group.
pub fn kill_group(pgid: i32, signal: i32) -> Result<(), Errno> {
    send(-pgid, signal)
}

/// Sends a signal (by number) to one process.
pub fn kill_pid(pid: i32, signal: i32) -> Result<(), Errno> {
    send(pid, signal)
}

fn send(target: i32, signal: i32) -> Result<(), Errno> {
    if target == 0 || target == -1 || target == 1 || target == i32::MIN {
        return Err(Errno::EINVAL); // never the daemon's own group or everyone
    }
    // Never the daemon itself or its own process group, whatever a job's
    // records say (a forged notification once named a process in it).
    let me = std::process::id() as i32;
    let my_group = nix::unistd::getpgrp().as_raw();
    if target == me || target == -me || target == -my_group {
        return Err(Errno::EPERM);
    }
    // SAFETY: kill(2) takes plain integers and has no memory effects; any
    // signal number (real-time ones included) is passed through as written
    // in the job file, and the kernel rejects invalid ones with EINVAL.
    let r = unsafe { libc::kill(target, signal) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// A datagram socket at `path` (in a directory only the daemon writes),
/// mode 0600 and owned by `owner` when given: only that user (and root)
/// may send to it. It is made with a umask that leaves no moment in which
/// others could connect.
pub fn bind_private_datagram(
    path: &std::path::Path,
    owner: Option<(u32, u32)>,
) -> std::io::Result<std::os::unix::net::UnixDatagram> {
    use nix::sys::stat::{umask, Mode};
    let _ = std::fs::remove_file(path);
    let old = umask(Mode::from_bits_truncate(0o177));
    let sock = std::os::unix::net::UnixDatagram::bind(path);
    umask(old);
    let sock = sock?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Sends `data` on a stream socket with `fd` attached (SCM_RIGHTS);
/// returns how many bytes went (the descriptor goes with the first).
pub fn send_with_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(data)];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(std::io::Error::from)
}

/// Receives from a stream socket into `buf`, with any descriptors sent
/// along (close-on-exec, owned by the caller from here on).
pub fn recv_with_fds(
    sock: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> std::io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel has just installed this descriptor in
                // our table for this message; nothing else owns it.
                fds.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}

/// Starts the compression helper (`upkeep __gzip NAME`) on a file of the
/// log dir, which it gets open as its standard input; returns its pid.
pub fn spawn_gzip(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> std::io::Result<i32> {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let dir = dir.try_clone_to_owned()?;
    let child = std::process::Command::new(exe)
        .arg("__gzip")
        .arg(name)
        .stdin(std::process::Stdio::from(dir))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    Ok(child.id() as i32)
}

/// A descriptor for a process that is not the daemon's child (a main
/// process named by `MAINPID`): it becomes readable when the process ends,
/// which no SIGCHLD would tell.
pub fn pidfd_open(pid: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
    // descriptor (or -1); it touches no memory of ours. The descriptor is
    // owned by the OwnedFd from here on, and is close-on-exec by the
    // kernel's rule for pidfds.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor the kernel has just given us, open and
    // owned by no one else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// The supplementary groups of a Unix socket's peer, as they were when it
/// connected (SO_PEERGROUPS, Linux 4.13); none where the kernel cannot
/// say.
pub fn peer_groups(sock: std::os::fd::BorrowedFd<'_>) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    let mut groups = vec![0 as libc::gid_t; 1024];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: getsockopt(2) writes at most `len` bytes into `groups`, which
    // has that many, and sets `len` to what it wrote; both outlive the
    // call.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    groups
}

/// Whether a process group has no member left (zombies count as members
/// until reaped).
pub fn group_is_empty(pgid: i32) -> bool {
    pgid > 1 && kill(Pid::from_raw(-pgid), None) == Err(Errno::ESRCH)
}

/// Waits until every pidfd is readable (its process ended), or `deadline`.
pub fn wait_all_ended(mut fds: Vec<std::os::fd::OwnedFd>, deadline: std::time::Instant) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    while !fds.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut polled: Vec<PollFd> = fds
            .iter()
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut polled, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {
                let ended: Vec<bool> = polled
                    .iter()
                    .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                    .collect();
                drop(polled);
                let mut i = 0;
                fds.retain(|_| {
                    i += 1;
                    !ended[i - 1]
                });
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}
