//! Default locations, per mode (design: "Modes and default paths").
//!
//! | | root | ordinary user | container init (PID 1 or `--init`) |
//! |---|---|---|---|
//! | conf dirs | `/etc/init` | `$XDG_CONFIG_HOME/upkeep/init` (`~/.config/upkeep/init`) | `/etc/init`, whatever the uid |
//! | log dir | `/var/log/upkeep` | `$XDG_STATE_HOME/upkeep/log` (`~/.local/state/upkeep/log`) | `RUN/log` with `--run-dir RUN`; else `/var/log/upkeep`, or for a non-root init that cannot write it, `/tmp/upkeep-UID/log` |
//! | socket | `/run/upkeep/upkeep.sock` | `$XDG_RUNTIME_DIR/upkeep.sock`, else `/tmp/upkeep-UID/upkeep.sock` | `RUN/upkeep.sock` with `--run-dir RUN` (or `UPKEEP_RUN_DIR`); else `/run/upkeep/upkeep.sock`, or for a non-root init that cannot write it, `/tmp/upkeep-UID/upkeep.sock` |
//!
//! `--run-dir` (or `UPKEEP_RUN_DIR`) works in every mode, and clients find
//! the socket through it too; `--socket` and `--log-dir` win over it.

use std::env;
use std::path::{Path, PathBuf};

/// Whether we run as root (system mode).
pub fn is_root() -> bool {
    crate::process::euid() == 0
}

fn home() -> PathBuf {
    env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home().join(fallback))
}

/// `UPKEEP_RUN_DIR`, when set to an absolute path.
pub fn run_dir_from_env() -> Option<PathBuf> {
    env::var_os("UPKEEP_RUN_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// `/tmp/upkeep-UID`: a user's run dir when there is no other.
fn tmp_run_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/upkeep-{}", crate::process::uid()))
}

/// Whether this process may write `dir`, or create it in its parent.
fn may_write(dir: &Path) -> bool {
    use nix::unistd::{access, AccessFlags};
    let w = AccessFlags::W_OK | AccessFlags::X_OK;
    if dir.exists() {
        return access(dir, w).is_ok();
    }
    dir.parent().is_some_and(|p| access(p, w).is_ok())
}

/// The daemon's conf dirs: a container init reads `/etc/init` whatever
/// its uid.
pub fn daemon_conf_dirs(init: bool) -> Vec<PathBuf> {
    if init {
        vec![PathBuf::from("/etc/init")]
    } else {
        default_conf_dirs()
    }
}

/// The daemon's log dir, with `run_dir` (`--run-dir` or `UPKEEP_RUN_DIR`).
pub fn daemon_log_dir(init: bool, run_dir: Option<&Path>) -> PathBuf {
    if let Some(r) = run_dir {
        return r.join("log");
    }
    let system = PathBuf::from("/var/log/upkeep");
    match (is_root(), init) {
        (true, _) => system,
        (false, true) if may_write(&system) => system,
        (false, true) => tmp_run_dir().join("log"),
        (false, false) => default_log_dir(),
    }
}

/// The daemon's socket, with `run_dir` (`--run-dir` or `UPKEEP_RUN_DIR`).
pub fn daemon_socket(init: bool, run_dir: Option<&Path>) -> PathBuf {
    if let Some(r) = run_dir {
        return r.join("upkeep.sock");
    }
    if init && !is_root() && env::var_os("UPKEEP_SOCKET").is_none_or(|s| s.is_empty()) {
        let system = Path::new("/run/upkeep");
        return if may_write(system) {
            system.join("upkeep.sock")
        } else {
            tmp_run_dir().join("upkeep.sock")
        };
    }
    default_socket()
}

pub fn default_conf_dirs() -> Vec<PathBuf> {
    if is_root() {
        vec![PathBuf::from("/etc/init")]
    } else {
        vec![xdg("XDG_CONFIG_HOME", ".config").join("upkeep/init")]
    }
}

pub fn default_log_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/log/upkeep")
    } else {
        xdg("XDG_STATE_HOME", ".local/state").join("upkeep/log")
    }
}

/// Where a client finds the daemon: `UPKEEP_SOCKET`, else
/// `UPKEEP_RUN_DIR/upkeep.sock`, else the mode's default (for an ordinary
/// user without `XDG_RUNTIME_DIR`, the socket of a non-root container
/// init in `/run/upkeep` when that is there and `/tmp/upkeep-UID` has
/// none).
pub fn default_socket() -> PathBuf {
    if let Some(p) = env::var_os("UPKEEP_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(r) = run_dir_from_env() {
        return r.join("upkeep.sock");
    }
    let system = PathBuf::from("/run/upkeep/upkeep.sock");
    if is_root() {
        return system;
    }
    match env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d.join("upkeep.sock"),
        _ => {
            let tmp = tmp_run_dir().join("upkeep.sock");
            if !tmp.exists() && system.exists() {
                return system;
            }
            tmp
        }
    }
}
