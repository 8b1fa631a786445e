//! Start-up of the daemon: its lock beside the socket, the socket itself
//! (with its permissions), signals through a signalfd, child subreaping,
//! and the open-files limit.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Where the daemon finds its jobs and puts its socket and logs.
#[derive(Debug, Clone)]
pub struct Config {
    pub conf_dirs: Vec<PathBuf>,
    pub log_dir: PathBuf,
    pub socket: PathBuf,
    /// The runlevel the boot sequence announces (`runlevel RUNLEVEL=2`).
    pub runlevel: String,
    /// Log every goal and state change, and every event.
    pub verbose: bool,
    /// How job logs are rotated unless a job says otherwise.
    pub log_policy: crate::log::Policy,
    /// Copy every job's output to the daemon's stdout, prefixed with its name.
    pub log_to_stdout: bool,
    /// When this job fails (or hits its respawn limit), stop everything and
    /// exit with its exit status (a container's main job).
    pub exit_with: Option<String>,
    /// `--control-group`: its members change jobs and read logs as the
    /// daemon's user may.
    pub control_gid: Option<u32>,
    /// Jobs get the daemon's own environment (less what is meant for
    /// upkeep alone): in init mode unless `--clean-env`, and for a per-user
    /// daemon (`job::env`).
    pub pass_all_env: bool,
    /// `--pass-env`: the daemon's variables jobs get besides (`NAME` or
    /// `PREFIX*`).
    pub pass_env: Vec<String>,
    /// `--log-format`: job lines on stdout and the daemon's messages on
    /// stderr, plain or JSON.
    pub log_format: crate::log::format::Format,
    /// `--forward-hup`: SIGHUP goes to the jobs (`forward.rs`) instead of
    /// reloading the configuration.
    pub forward_hup: bool,
    /// `--no-cgroups`: jobs run in the daemon's own group.
    pub no_cgroups: bool,
}

/// What the daemon is and what it was started with: its configuration,
/// the lock that makes it the one daemon of its socket dir, its user, the
/// open-files limit it found (given back to jobs), and its binary and argv
/// (for `re-exec`). Set at start, or carried across a re-exec; read after.
pub struct Host {
    pub cfg: Config,
    pub lock: Lock,
    pub uid: u32,
    /// Running as root: jobs run as their `setuid` user, from `/`.
    pub system: bool,
    pub original_nofile: Option<(u64, u64)>,
    pub exe: Option<PathBuf>,
    pub argv: Vec<std::ffi::OsString>,
    /// Why instances at rest stopped, from a dead predecessor's state file
    /// (times since the epoch).
    pub(in crate::daemon) recovered: Vec<super::jobs::saved::SavedRest>,
}

/// The listening sockets: the public one, and `SOCKET.priv` (or why
/// there is none).
pub type Listeners = (
    mio::net::UnixListener,
    Result<mio::net::UnixListener, String>,
);

impl Host {
    /// A fresh start: the open-files limit raised, the socket dir checked,
    /// the lock taken, the notify dir made, what a crashed predecessor
    /// left running stopped, the sockets bound.
    pub fn open(cfg: Config) -> Result<(Host, Listeners), String> {
        let system = crate::process::euid() == 0;
        let original_nofile = raise_nofile();
        socket_dir(&cfg.socket, !system)?;
        let lock = take_lock(&cfg.socket)?;
        notify_dir(&cfg.socket)?;
        // We hold the lock, so whoever wrote the state file is dead.
        let recovered = super::state::recover(&cfg.socket, &crate::log::format::say);
        let listener = bind(&cfg.socket, if system { 0o666 } else { 0o600 })?;
        let private = bind_private(&cfg.socket);
        let host = Host {
            recovered,
            ..Host::new(cfg, lock, original_nofile)
        };
        Ok((host, (listener, private)))
    }

    /// The host of a daemon holding `lock`.
    pub fn new(cfg: Config, lock: Lock, original_nofile: Option<(u64, u64)>) -> Host {
        let uid = crate::process::euid();
        Host {
            cfg,
            lock,
            uid,
            system: uid == 0,
            original_nofile,
            exe: own_binary(),
            argv: std::env::args_os().collect(),
            recovered: Vec::new(),
        }
    }
}

/// The binary `re-exec` runs: `argv[0]` when it names a file by a path (a
/// symlink stays a symlink, so pointing it at a new release upgrades), else
/// the file this process runs (`/proc/self/exe`). Read at start, so that a
/// binary replaced since is found by its path.
fn own_binary() -> Option<PathBuf> {
    let arg0 = PathBuf::from(std::env::args_os().next()?);
    if arg0.components().count() > 1 {
        let path = if arg0.is_absolute() {
            arg0
        } else {
            std::env::current_dir().ok()?.join(arg0)
        };
        if path.is_file() {
            return Some(path);
        }
    }
    std::env::current_exe().ok()
}

/// What a daemon leaves beside its socket, removed when it exits.
pub fn clean_up(socket: &Path) {
    let _ = fs::remove_file(socket);
    let _ = fs::remove_file(priv_path(socket));
    let _ = fs::remove_file(super::state::state_path(socket));
    let _ = fs::remove_dir_all(super::notify::notify_dir(socket));
}

/// The signals the loop reads from its signalfd.
pub const HANDLED: &[Signal] = &[
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGQUIT,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The lock held for the daemon's life: an exclusive `flock` on the
/// socket's directory, held through its descriptor. Deleting a file (the
/// socket, `SOCKET.lock`, the state file; by hand or by a tmp cleaner)
/// cannot release it, so a second daemon on the same directory never
/// starts while the first lives: one daemon per socket directory.
/// `SOCKET.lock` only names the holder's pid, for the refusal message.
pub struct Lock {
    dir: Flock<fs::File>,
    pub path: PathBuf,
}

impl Lock {
    /// The descriptor that holds the lock (handed across a re-exec).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.dir.as_raw_fd()
    }

    /// The lock as the previous image held it. An image of the first
    /// handover format held a lock file; this one then takes the
    /// directory's lock as well, which no one else can hold meanwhile.
    pub fn adopt(fd: std::os::fd::OwnedFd, socket: &Path) -> Result<Lock, String> {
        let path = lock_path(socket);
        let file = fs::File::from(fd);
        let is_dir = file.metadata().is_ok_and(|m| m.is_dir());
        let held = if is_dir {
            file
        } else {
            // Kept open (its flock with it) for the rest of the daemon's
            // life, as the earlier image meant it to be.
            std::mem::forget(Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(
                |(_, e)| format!("{}: the lock was not handed across: {e}", path.display()),
            )?);
            open_socket_dir(socket)?
        };
        let dir = Flock::lock(held, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| format!("{}: the lock was not handed across: {e}", path.display()))?;
        Ok(Lock { dir, path })
    }
}

/// `SOCKET.priv`: the socket only root and the daemon's user can reach.
pub fn priv_path(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".priv");
    PathBuf::from(s)
}

/// Binds `SOCKET.priv` (0600). A socket path too long for a socket
/// address once `.priv` is added gives no private socket (said), rather
/// than no daemon.
pub fn bind_private(socket: &Path) -> Result<mio::net::UnixListener, String> {
    let path = priv_path(socket);
    let len = path.as_os_str().len();
    if len > super::notify::MAX_SOCKET_PATH {
        return Err(format!(
            "{}: {len} bytes, more than the {} a socket address holds: no private socket",
            path.display(),
            super::notify::MAX_SOCKET_PATH
        ));
    }
    bind(&path, 0o600)
}

pub fn lock_path(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// The directory of the socket.
fn socket_parent(socket: &Path) -> &Path {
    socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The per-user fallback socket dir (`/tmp/upkeep-UID`), which clients
/// find by its name: it must be exactly what the daemon would make.
pub fn is_fallback_dir(dir: &Path, uid: u32) -> bool {
    dir == Path::new(&format!("/tmp/upkeep-{uid}"))
}

/// Makes the socket's directory if missing (0700 for a user daemon, 0755
/// for root's) and checks it: it must be owned by the daemon's user and
/// writable by no one else, so that the socket, the lock, the state file
/// and the notify sockets there are the daemon's alone. A shared
/// directory such as `/tmp` itself is refused.
pub fn socket_dir(socket: &Path, private: bool) -> Result<(), String> {
    let dir = socket_parent(socket);
    let me = crate::process::euid();
    if is_fallback_dir(dir, me) {
        return fallback_dir(dir, me);
    }
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(if private { 0o700 } else { 0o755 })
            .create(dir)
            .map_err(|e| format!("{}: unable to create directory: {e}", dir.display()))?;
    }
    let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    check_own_dir(dir, &meta, me)
}

fn check_own_dir(dir: &Path, meta: &fs::Metadata, me: u32) -> Result<(), String> {
    if meta.uid() != me {
        return Err(format!(
            "{}: owned by uid {}, not by the daemon's user ({me}); refusing to put the socket there (--socket chooses another place)",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{}: mode {:04o}, writable by other users; refusing to put the socket there (chmod go-w it, or --socket chooses another place)",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// `/tmp/upkeep-UID`: made with mode 0700; one that exists must be a
/// directory (not a link) of UID with mode 0700, or someone else may have
/// made it to squat the name.
fn fallback_dir(dir: &Path, me: u32) -> Result<(), String> {
    match fs::symlink_metadata(dir) {
        Err(_) => fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: unable to create directory: {e}", dir.display()))?,
        Ok(m) if m.is_dir() && m.uid() == me && m.mode() & 0o7777 == 0o700 => {}
        Ok(m) => {
            return Err(format!(
                "{}: a {} owned by uid {} with mode {:04o}, not a directory of uid {me} with mode 0700: someone else may have made it; refusing to use it (set XDG_RUNTIME_DIR, or --socket chooses another place)",
                dir.display(),
                if m.file_type().is_symlink() { "symbolic link" } else if m.is_dir() { "directory" } else { "file" },
                m.uid(),
                m.mode() & 0o7777
            ))
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    check_own_dir(dir, &meta, me)
}

fn open_socket_dir(socket: &Path) -> Result<fs::File, String> {
    let dir = socket_parent(socket);
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Takes the lock (the socket dir's flock), or says which daemon holds it;
/// then writes our pid into `SOCKET.lock` (a regular file of ours, never
/// a link followed).
pub fn take_lock(socket: &Path) -> Result<Lock, String> {
    let path = lock_path(socket);
    let dir = open_socket_dir(socket)?;
    let me = crate::process::euid();
    let meta = dir
        .metadata()
        .map_err(|e| format!("{}: {e}", socket_parent(socket).display()))?;
    check_own_dir(socket_parent(socket), &meta, me)?;
    let dir = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err(_) => {
            let pid = fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            return Err(format!(
                "another upkeep daemon{} is already running in {} (one daemon per socket directory; this one's socket would be {})",
                if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
                socket_parent(socket).display(),
                socket.display()
            ));
        }
    };
    let _ = fs::remove_file(&path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("{}: unable to write the lock file: {e}", path.display()))?;
    let _ = writeln!(file, "{}", std::process::id());
    Ok(Lock { dir, path })
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

/// The events Ubuntu's boot emitted, in order, so that real job files start
/// unchanged.
pub fn boot_events(runlevel: &str) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = vec![
        ("startup".into(), vec![]),
        ("filesystem".into(), vec![]),
        ("local-filesystems".into(), vec![]),
        ("remote-filesystems".into(), vec![]),
        ("virtual-filesystems".into(), vec![]),
    ];
    let mut ifaces = vec!["lo".to_string()];
    ifaces.extend(up_interfaces().into_iter().filter(|i| i != "lo"));
    for iface in ifaces {
        let method = if iface == "lo" { "loopback" } else { "manual" };
        v.push((
            "net-device-up".into(),
            vec![
                format!("IFACE={iface}"),
                format!("LOGICAL={iface}"),
                "ADDRFAM=inet".into(),
                format!("METHOD={method}"),
            ],
        ));
    }
    v.push(("static-network-up".into(), vec![]));
    v.push((
        "runlevel".into(),
        vec![format!("RUNLEVEL={runlevel}"), "PREVLEVEL=N".into()],
    ));
    v
}

/// Network interfaces whose link is up, from /sys.
fn up_interfaces() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let state = std::fs::read_to_string(e.path().join("operstate")).unwrap_or_default();
        let flags = std::fs::read_to_string(e.path().join("flags")).unwrap_or_default();
        let up_flag = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
            .map(|f| f & 1 == 1)
            .unwrap_or(false);
        if state.trim() == "up" || (name != "lo" && up_flag && state.trim() == "unknown") {
            out.push(name);
        }
    }
    out.sort();
    out
}
