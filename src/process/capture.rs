//! Where a job's output goes: a pseudo-terminal (the job sees a terminal,
//! as under Upstart, so line-buffered programs write each line at once) or
//! a plain pipe (faster, but programs then buffer their output).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::termios::{self, OutputFlags, SetArg};

fn nonblocking_cloexec(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// A pty pair: (master, for the daemon to read, non-blocking; slave, for
/// the job's stdout and stderr). Output processing is off, so a job's
/// `\n` reaches the log as `\n`, not `\r\n`.
pub fn pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let pair = nix::pty::openpty(None, None)?;
    let mut t = termios::tcgetattr(&pair.slave)?;
    t.output_flags.remove(OutputFlags::OPOST);
    termios::tcsetattr(&pair.slave, SetArg::TCSANOW, &t)?;
    nonblocking_cloexec(&pair.master)?;
    fcntl(pair.slave.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok((pair.master, pair.slave))
}

/// A pipe: (read end for the daemon, non-blocking; write end for the job).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    nonblocking_cloexec(&r)?;
    Ok((r, w))
}

/// Descriptors a spawn always leaves free: for the state file, a request
/// on the private socket (its connection and a log's descriptor), a
/// compression helper, so that a daemon short of descriptors still writes
/// its state and answers root's `stop`.
pub const RESERVED_FDS: u64 = 8;
/// Descriptors a connection on the public socket always leaves free: a
/// flood of clients never takes what a respawn needs.
pub const ACCEPT_RESERVE: u64 = 24;
/// Descriptors a connection on the private socket leaves free.
pub const PRIVATE_ACCEPT_RESERVE: u64 = 2;

/// Whether `need` more descriptors leave the spawn reserve free.
pub fn room_for(need: u64) -> bool {
    room_beyond(need, RESERVED_FDS)
}

/// Whether `need` more descriptors leave `reserve` free. The kernel gives
/// out the lowest free number, so the number a probe gets tells how full
/// the table is: at most `limit - probe` are free.
pub fn room_beyond(need: u64, reserve: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) into a valid struct; open(2) of a literal,
    // NUL-terminated path; the descriptor is closed at once.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return true;
        }
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        libc::close(fd);
        (fd as u64) + need + reserve <= lim.rlim_cur
    }
}
