//! Default locations, per mode (design: "Modes and default paths").
//!
//! | | root | ordinary user |
//! |---|---|---|
//! | conf dirs | `/etc/init` | `$XDG_CONFIG_HOME/upkeep/init` (`~/.config/upkeep/init`) |
//! | log dir | `/var/log/upkeep` | `$XDG_STATE_HOME/upkeep/log` (`~/.local/state/upkeep/log`) |
//! | socket | `/run/upkeep/upkeep.sock` | `$XDG_RUNTIME_DIR/upkeep.sock`, else `/tmp/upkeep-UID/upkeep.sock` |

use std::env;
use std::path::PathBuf;

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

pub fn default_socket() -> PathBuf {
    if let Some(p) = env::var_os("UPKEEP_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() {
        return PathBuf::from("/run/upkeep/upkeep.sock");
    }
    match env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d.join("upkeep.sock"),
        _ => PathBuf::from(format!("/tmp/upkeep-{}/upkeep.sock", crate::process::uid())),
    }
}
