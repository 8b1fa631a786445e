//! The state file beside the socket (`SOCKET.state`): every live job
//! process, with its start time. A daemon killed with SIGKILL leaves its
//! jobs running without supervision; the next daemon on the same socket
//! reads this file, stops those processes (each verified by its start time,
//! so a reused pid is never hit), and starts jobs afresh as their events
//! say. No job ever runs twice.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Daemon;
use crate::process::{self, tree};

pub(super) fn state_path(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".state");
    PathBuf::from(s)
}

/// One recorded process.
struct Entry {
    pid: i32,
    start: u64,
    pgid: i32,
    label: String,
}

fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            Some(Entry {
                pid: f.next()?.parse().ok()?,
                start: f.next()?.parse().ok()?,
                pgid: f.next()?.parse().ok()?,
                label: f.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Stops what a previous daemon on this socket left running. Runs once, at
/// start-up, before the loop (it waits for them, at most a few seconds).
pub(super) fn recover(socket: &Path, log: &dyn Fn(&str)) {
    let path = state_path(socket);
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    let left: Vec<Entry> = parse(&text)
        .into_iter()
        .filter(|e| tree::start_time(e.pid) == Some(e.start))
        .collect();
    if !left.is_empty() {
        log(&format!(
            "a previous daemon on this socket died and left {} job process{} running: stopping {} before starting afresh",
            left.len(),
            if left.len() == 1 { "" } else { "es" },
            if left.len() == 1 { "it" } else { "them" }
        ));
    }
    let alive = |e: &Entry| tree::start_time(e.pid) == Some(e.start);
    let signal_all = |sig: i32| {
        for e in left.iter().filter(|e| alive(e)) {
            log(&format!(
                "stopping {} (pid {}) with signal {sig}",
                e.label, e.pid
            ));
            let _ = process::kill_group(e.pgid, sig);
            let _ = process::kill_pid(e.pid, sig);
        }
    };
    let wait_gone = |limit: Duration| {
        let deadline = Instant::now() + limit;
        while left.iter().any(alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    signal_all(libc::SIGTERM);
    wait_gone(Duration::from_secs(5));
    if left.iter().any(alive) {
        signal_all(libc::SIGKILL);
        wait_gone(Duration::from_secs(2));
    }
    let _ = fs::remove_file(&path);
}

impl Daemon {
    /// Rewrites the state file if the set of job processes changed.
    pub(super) fn save_state(&mut self) {
        if !self.state_dirty {
            return;
        }
        self.state_dirty = false;
        // Each process's start time and group are read once, when it first
        // appears here, not at every rewrite.
        let pids = &self.pids;
        self.proc_identity.retain(|p, _| pids.contains_key(p));
        let mut text = String::new();
        for (pid, key) in &self.pids {
            let ident = match self.proc_identity.get(pid) {
                Some(&i) => Some(i),
                None => tree::identity(*pid),
            };
            let Some((start, pgid)) = ident else {
                continue;
            };
            self.proc_identity.insert(*pid, (start, pgid));
            let label = if key.1.is_empty() {
                key.0.clone()
            } else {
                format!("{} ({})", key.0, key.1)
            };
            text.push_str(&format!("{pid} {start} {pgid} {label}\n"));
        }
        let path = state_path(&self.cfg.socket);
        let tmp = path.with_extension("state.tmp");
        // A fresh file, never one planted there (create_new follows no
        // symlink).
        let _ = fs::remove_file(&tmp);
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|_| fs::rename(&tmp, &path));
        if let Err(e) = written {
            self.log(&format!("{}: unable to save state: {e}", path.display()));
        }
    }
}
