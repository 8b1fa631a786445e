//! Start-up of the daemon: its lock beside the socket, the socket itself
//! (with its permissions), signals through a signalfd, child subreaping,
//! and the open-files limit.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals the loop reads from its signalfd.
pub const HANDLED: &[Signal] = &[
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGQUIT,
];

/// The lock held for the daemon's life (`SOCKET.lock`).
pub struct Lock {
    _flock: Flock<fs::File>,
    pub path: PathBuf,
}

impl Lock {
    /// The descriptor that holds the lock (handed across a re-exec).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self._flock.as_raw_fd()
    }

    /// The lock as the previous image held it: the same open file, so
    /// taking it again cannot fail unless the descriptor is not the lock.
    pub fn adopt(fd: std::os::fd::OwnedFd, socket: &Path) -> Result<Lock, String> {
        let path = lock_path(socket);
        let flock = Flock::lock(fs::File::from(fd), FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| format!("{}: the lock was not handed across: {e}", path.display()))?;
        Ok(Lock {
            _flock: flock,
            path,
        })
    }
}

pub fn lock_path(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Makes the socket's directory: private (0700) for a user daemon, 0755
/// for root's. An existing dir must be ours and not writable by others.
pub fn socket_dir(socket: &Path, private: bool) -> Result<(), String> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(if private { 0o700 } else { 0o755 })
            .create(dir)
            .map_err(|e| format!("{}: unable to create directory: {e}", dir.display()))?;
    }
    let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = crate::process::euid();
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.uid() != me && !(meta.uid() == 0 && sticky) {
        // A shared dir such as /tmp itself is fine only when sticky.
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{}: owned by uid {} and writable by others; refusing to put the socket there",
                dir.display(),
                meta.uid()
            ));
        }
    }
    Ok(())
}

/// Makes `SOCKET.notify`, the directory of the notify sockets (mode 0711:
/// anyone may reach a socket whose name they know, and each socket's own
/// mode says who may send), emptied of what an earlier daemon left. Called
/// with the lock held, in the socket's directory, which only the daemon's
/// user can write.
pub fn notify_dir(socket: &Path) -> Result<(), String> {
    let dir = super::notify::notify_dir(socket);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(&dir);
        }
        Ok(_) => {
            let _ = fs::remove_file(&dir);
        }
        Err(_) => {}
    }
    fs::DirBuilder::new()
        .mode(0o711)
        .create(&dir)
        .and_then(|_| fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)))
        .map_err(|e| format!("{}: unable to create directory: {e}", dir.display()))
}

/// Takes `SOCKET.lock`, or says which daemon holds it.
pub fn take_lock(socket: &Path) -> Result<Lock, String> {
    let path = lock_path(socket);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("{}: unable to open lock file: {e}", path.display()))?;
    let mut flock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(format!(
                "another upkeep daemon{} is already running on {} (it holds {})",
                if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
                socket.display(),
                path.display()
            ));
        }
    };
    let _ = flock.set_len(0);
    let _ = flock.rewind();
    let _ = writeln!(flock, "{}", std::process::id());
    Ok(Lock {
        _flock: flock,
        path,
    })
}

/// Binds the control socket (a stale one is removed: we hold the lock).
pub fn bind(socket: &Path, mode: u32) -> Result<mio::net::UnixListener, String> {
    match fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = fs::remove_file(socket);
        }
        Ok(_) => {
            return Err(format!(
                "{}: exists and is not a socket; refusing to replace it",
                socket.display()
            ))
        }
        Err(_) => {}
    }
    let listener = mio::net::UnixListener::bind(socket)
        .map_err(|e| format!("{}: unable to listen: {e}", socket.display()))?;
    fs::set_permissions(socket, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: unable to set permissions: {e}", socket.display()))?;
    Ok(listener)
}

use std::os::unix::fs::FileTypeExt;

/// Blocks the handled signals and returns a non-blocking signalfd for them.
pub fn signals() -> Result<SignalFd, String> {
    let mut set = SigSet::empty();
    for &s in HANDLED {
        set.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| format!("unable to block signals: {e}"))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("unable to create signalfd: {e}"))
}

/// Becomes the reaper of orphaned descendants (unless already PID 1).
pub fn subreaper() -> Result<(), String> {
    if std::process::id() == 1 {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("unable to become child subreaper: {e}"))
}

/// Raises the open-files soft limit to the hard limit; returns the
/// original (soft, hard) to give back to jobs.
pub fn raise_nofile() -> Option<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    Some((soft, hard))
}

/// Keeps the signalfd's raw fd for registration.
pub fn raw(fd: &SignalFd) -> i32 {
    fd.as_raw_fd()
}
