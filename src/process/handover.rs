//! The descriptor side of `re-exec`: what the daemon needs to replace its
//! own image without closing anything a job depends on.
//!
//! Every descriptor the daemon opens is close-on-exec. For a re-exec the
//! ones to hand across (the lock, the listening socket, control clients,
//! job ptys and pipes, notify sockets) lose that flag just before
//! `execve`, and the state goes in a memfd whose number is in the
//! environment. The new image adopts exactly the descriptors the state
//! names, then marks every descriptor close-on-exec again. If `execve`
//! fails, the old image does the same and goes on as before.

use std::ffi::{CString, OsString};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::memfd::{memfd_create, MFdFlags};

/// Clears close-on-exec on a descriptor the next image must receive.
pub fn keep_across_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD only changes the flags of this process's descriptor
    // `fd` (a bad number gives EBADF, which is returned).
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A memfd holding `data`, rewound, kept across exec.
pub fn state_memfd(data: &[u8]) -> io::Result<std::fs::File> {
    let fd = memfd_create(c"upkeep-reexec", MFdFlags::empty()).map_err(io::Error::from)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data)?;
    f.rewind()?;
    Ok(f)
}

/// Takes ownership of a descriptor the previous image handed across, after
/// checking that it is open. Each number must be adopted once: the caller
/// keeps the set of numbers already taken.
pub fn adopt(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("descriptor {fd} is not one the daemon hands across"),
        ));
    }
    // SAFETY: F_GETFD only reads the flags of descriptor `fd`.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "descriptor {fd} was not handed across: {}",
                io::Error::last_os_error()
            ),
        ));
    }
    // SAFETY: the descriptor is open (F_GETFD succeeded), it was opened by
    // the previous image of this very process and named in its state, and
    // nothing else in this process owns it: the daemon adopts each number
    // of the state once, before it opens anything of its own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The descriptor of a state handed over by a previous image, if this
/// process is a re-exec (`var` is set); the variable is removed so that
/// nothing started from here sees it.
pub fn handed_over(var: &str) -> Option<Result<RawFd, String>> {
    let v = std::env::var_os(var)?;
    std::env::remove_var(var);
    Some(
        v.to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
            .ok_or_else(|| format!("{var}={}: not a descriptor", v.to_string_lossy())),
    )
}

/// Reads the whole state from the handed-across memfd, and closes it.
pub fn read_state(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut f = std::fs::File::from(adopt(fd)?);
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    Ok(data)
}

/// Replaces the process image with `exe`, keeping `argv` (so `ps` shows the
/// daemon as it was started) and the environment, plus `extra` variables.
/// Returns only on failure.
pub fn exec(exe: &Path, argv: &[OsString], extra: &[(&str, String)]) -> io::Error {
    let c = |b: &[u8]| CString::new(b).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let path = match c(exe.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut args = Vec::new();
    for a in argv {
        match c(a.as_bytes()) {
            Ok(a) => args.push(a),
            Err(e) => return e,
        }
    }
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        if extra.iter().any(|(x, _)| k.as_bytes() == x.as_bytes()) {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        match c(&kv) {
            Ok(kv) => env.push(kv),
            Err(e) => return e,
        }
    }
    for (k, v) in extra {
        match c(format!("{k}={v}").as_bytes()) {
            Ok(kv) => env.push(kv),
            Err(e) => return e,
        }
    }
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    match nix::unistd::execve(&path, &args, &env) {
        Ok(never) => match never {},
        Err(e) => io::Error::from(e),
    }
}

/// Nanoseconds on the monotonic clock, which the previous and the next
/// image share (it is the machine's, not the process's).
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64) * 1_000_000_000 + t.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// Closes every descriptor but stdin, stdout and stderr: what a new image
/// that could not read its state was handed goes (the lock with it, so
/// that it can be taken afresh).
pub fn close_inherited() {
    // SAFETY: close_range(2) only closes this process's descriptors; it
    // runs at start-up, before the daemon owns any descriptor above 2
    // (everything the failed resume adopted has been dropped).
    let done = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0;
    if !done {
        // Kernels before 5.11.
        for fd in 3..(1 << 16) {
            let _ = nix::unistd::close(fd);
        }
    }
}
