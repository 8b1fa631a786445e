//! The state file beside the socket (`SOCKET.state`): every live job
//! process, with its start time, process group and uid. A daemon killed
//! with SIGKILL leaves its jobs running without supervision; the next
//! daemon on the same socket reads this file and stops those processes,
//! then starts jobs afresh as their events say. No job ever runs twice.
//!
//! The file is trusted only as far as its place is: the socket directory
//! belongs to the daemon's user and no one else can write it (`setup.rs`),
//! and the file itself must be a regular file of that user, not writable by
//! others. Even then a process is signalled only if its pid, start time,
//! process group *and* uid are still what the daemon recorded, so a reused
//! pid, a process that moved to another group or a line written by hand
//! never makes the daemon kill a stranger.
//!
//! A write that fails (a full disk, say) is retried on a back-off timer,
//! 1 s doubling to 60 s, and said once per streak of failures and once
//! when it works again: the record of what runs is never silently stale.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::jobs::saved::SavedRest;
use super::output::DaemonLog;
use super::reactor::{Reactor, Timer};
use crate::process::{self, tree};

/// The first line of the file since uids are recorded.
const HEADER: &str = "upkeep-state 2";
/// The first delay before a failed write is tried again, and the longest.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

pub(super) fn state_path(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".state");
    PathBuf::from(s)
}

/// One recorded process.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    pid: i32,
    start: u64,
    pgid: i32,
    /// Absent in files of releases before uids were recorded.
    uid: Option<u32>,
    label: String,
}

fn parse(text: &str) -> Vec<Entry> {
    let mut lines = text.lines().peekable();
    let with_uid = lines.peek() == Some(&HEADER);
    if with_uid {
        lines.next();
    }
    lines
        .filter_map(|l| {
            let mut f = l.splitn(if with_uid { 5 } else { 4 }, ' ');
            Some(Entry {
                pid: f.next()?.parse().ok()?,
                start: f.next()?.parse().ok()?,
                pgid: f.next()?.parse().ok()?,
                uid: if with_uid {
                    Some(f.next()?.parse().ok()?)
                } else {
                    None
                },
                label: f.next().unwrap_or("").to_string(),
            })
        })
        .filter(|e| e.pid > 1 && e.pgid > 1)
        .collect()
}

/// Whether the recorded process is still the one recorded.
fn still_there(e: &Entry) -> bool {
    tree::identity(e.pid) == Some((e.start, e.pgid))
        && e.uid.is_none_or(|u| tree::euid_of(e.pid) == Some(u))
}

/// The state file's text, if it is one the daemon may trust.
fn read_trusted(path: &Path, log: &dyn Fn(&str)) -> Option<String> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    let me = process::euid();
    if !m.is_file() || m.uid() != me || m.mode() & 0o022 != 0 {
        log(&format!(
            "{}: not a file of the daemon's user (uid {}, mode {:04o}); ignored and removed",
            path.display(),
            m.uid(),
            m.mode() & 0o7777
        ));
        let _ = fs::remove_file(path);
        return None;
    }
    let mut text = String::new();
    f.take(16 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Lines of the file that keep why instances at rest stopped
/// (`rest {JSON}`, times as seconds since the epoch); older releases skip
/// them as lines that name no process.
const REST: &str = "rest ";

/// The at-rest records of the file's text (a line that does not parse is
/// skipped: the records only explain, they never act).
fn parse_rest(text: &str) -> Vec<SavedRest> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l.strip_prefix(REST)?).ok())
        .collect()
}

/// Stops what a previous daemon on this socket left running. Runs once, at
/// start-up, before the loop: it waits for them on their pidfds (each
/// becomes readable when its process ends), never on a clock, at most
/// 5 s after SIGTERM and 2 s after SIGKILL.
/// Returns why the instances at rest stopped, as it kept them (times since
/// the epoch).
pub(super) fn recover(socket: &Path, log: &dyn Fn(&str)) -> Vec<SavedRest> {
    let path = state_path(socket);
    let Some(text) = read_trusted(&path, log) else {
        return Vec::new();
    };
    let rest = parse_rest(&text);
    let left: Vec<Entry> = parse(&text).into_iter().filter(still_there).collect();
    if !left.is_empty() {
        log(&format!(
            "a previous daemon on this socket died and left {} job process{} running: stopping {} before starting afresh",
            left.len(),
            if left.len() == 1 { "" } else { "es" },
            if left.len() == 1 { "it" } else { "them" }
        ));
    }
    let signal_all = |sig: i32| {
        for e in left.iter().filter(|e| still_there(e)) {
            log(&format!(
                "stopping {} (pid {}) with signal {sig}",
                e.label, e.pid
            ));
            let _ = process::kill_group(e.pgid, sig);
            let _ = process::kill_pid(e.pid, sig);
        }
    };
    let wait_gone = |limit: Duration| {
        let fds: Vec<_> = left
            .iter()
            .filter(|e| still_there(e))
            .filter_map(|e| process::pidfd_open(e.pid).ok())
            .collect();
        process::wait_all_ended(fds, Instant::now() + limit);
    };
    signal_all(libc::SIGTERM);
    wait_gone(Duration::from_secs(5));
    if left.iter().any(still_there) {
        signal_all(libc::SIGKILL);
        wait_gone(Duration::from_secs(2));
    }
    let _ = fs::remove_file(&path);
    rest
}

/// The state file's writer: what failed and when to try again.
#[derive(Debug, Default)]
pub(super) struct StateFile {
    /// The delay before the next try; zero while writes work.
    delay: Duration,
    /// A retry timer is armed: writes wait for it.
    armed: bool,
}

/// One live job process, as the state file records it.
pub(super) struct Record {
    pub pid: i32,
    pub start: u64,
    pub pgid: i32,
    pub uid: u32,
    pub label: String,
}

impl StateFile {
    /// Whether a write may be tried now (no failed one waits for its
    /// retry timer).
    pub fn may_write(&self) -> bool {
        !self.armed
    }

    /// The retry timer fired.
    pub fn retry_due(&mut self) {
        self.armed = false;
    }

    /// Writes the file beside `socket`; true when it is written. A failure
    /// is said once per streak and arms a retry (1 s doubling to 60 s); the
    /// first success after one says so.
    pub fn write(
        &mut self,
        socket: &Path,
        (records, rest): (&[Record], &[SavedRest]),
        dlog: &DaemonLog,
        reactor: &Reactor,
    ) -> bool {
        let mut text = format!("{HEADER}\n");
        for r in records {
            text.push_str(&format!(
                "{} {} {} {} {}\n",
                r.pid, r.start, r.pgid, r.uid, r.label
            ));
        }
        for r in rest {
            if let Ok(json) = serde_json::to_string(r) {
                text.push_str(&format!("{REST}{json}\n"));
            }
        }
        let path = state_path(socket);
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
        match written {
            Ok(()) => {
                if !self.delay.is_zero() {
                    self.delay = Duration::ZERO;
                    dlog.log(&format!("{}: state saved again", path.display()));
                }
                true
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                if self.delay.is_zero() {
                    dlog.log(&format!(
                        "{}: unable to save state: {}; trying again in 1 s, then less and less often (up to every 60 s), until it works",
                        path.display(),
                        process::io_text(&e)
                    ));
                    self.delay = RETRY_FIRST;
                } else {
                    self.delay = (self.delay * 2).min(RETRY_MAX);
                }
                self.armed = true;
                reactor.arm(self.delay, Timer::StateRetry);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_the_file_are_read() {
        let old = "10 500 10 web\n11 501 11 inst (a b)\n";
        assert_eq!(
            parse(old)[1],
            Entry {
                pid: 11,
                start: 501,
                pgid: 11,
                uid: None,
                label: "inst (a b)".into()
            }
        );
        let new = format!("{HEADER}\n10 500 10 33 web\nbad line\n1 2 3 4 init\n");
        let e = parse(&new);
        assert_eq!(e.len(), 1, "init and garbage never");
        assert_eq!(e[0].uid, Some(33));
    }

    #[test]
    fn the_wait_ends_when_the_processes_do_or_at_the_deadline() {
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let mut slow = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let fd = |c: &std::process::Child| process::pidfd_open(c.id() as i32).unwrap();
        // Both watched, a short deadline: back with the slow one running.
        process::wait_all_ended(
            vec![fd(&quick), fd(&slow)],
            Instant::now() + Duration::from_millis(50),
        );
        assert!(slow.try_wait().unwrap().is_none());
        // The quick one alone, a deadline far away: back once it ended.
        let quick_fd = fd(&quick);
        process::wait_all_ended(vec![quick_fd], Instant::now() + Duration::from_secs(600));
        assert!(quick.try_wait().unwrap().is_some());
        slow.kill().unwrap();
        slow.wait().unwrap();
    }
}
