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
