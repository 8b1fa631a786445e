//! Finding a job's re-parented processes in /proc: as child subreaper (or
//! PID 1) the daemon inherits what a job's forking program leaves behind,
//! and tells whose it is by the `UPSTART_JOB` / `UPSTART_INSTANCE` every
//! job process carries in its environment. This is how `expect fork` and
//! `expect daemon` work without ptrace. A process whose environment was
//! wiped is "anonymous"; the daemon gives it to a job only when that job is
//! the one waiting for a fork (see `Daemon::follow_fork`).

use std::fs;

/// A process of ours that a job's program left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orphan {
    pub pid: i32,
    pub pgid: i32,
    /// Session id.
    pub sid: i32,
    /// Start time (clock ticks since boot), to take the oldest first.
    pub start: u64,
}

/// (ppid, pgid, sid, start time) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(i32, i32, i32, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is the state (field 3); ppid is field 4, pgrp 5, starttime 22.
    if f.first() == Some(&"Z") {
        return None;
    }
    Some((
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

/// The children of `parent` that are not in `known`: the processes it
/// adopted. Read from `/proc/PARENT/task/*/children` (a few reads, whatever
/// runs on the machine); where the kernel lacks that file, every process
/// in /proc is a candidate, and the callers check the parent.
fn unknown_children(parent: i32, known: &dyn Fn(i32) -> bool) -> Vec<i32> {
    let mut pids: Vec<i32> = children_of(parent).unwrap_or_else(all_pids);
    pids.retain(|&p| !known(p));
    pids
}

/// The children of `pid`, from `/proc/PID/task/*/children` (a few reads,
/// whatever runs on the machine); `None` where the kernel lacks that file
/// (or the process is gone).
pub fn children_of(pid: i32) -> Option<Vec<i32>> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut pids = Vec::new();
    for t in tasks.flatten() {
        let text = fs::read_to_string(t.path().join("children")).ok()?;
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    Some(pids)
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn environ_has(pid: i32, wanted: &[String]) -> bool {
    let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    has_all(&env, wanted)
}

pub(super) fn has_all(env: &[u8], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| env.split(|&b| b == 0).any(|e| e == w.as_bytes()))
}

/// Live children of `parent`, except the pids in `known`, whose
/// environment satisfies `keep`; oldest first.
fn adopted(parent: i32, known: &dyn Fn(i32) -> bool, keep: impl Fn(&[u8]) -> bool) -> Vec<Orphan> {
    let mut out = Vec::new();
    for pid in unknown_children(parent, known) {
        let Some((ppid, pgid, sid, start)) = stat(pid) else {
            continue;
        };
        if ppid != parent {
            continue;
        }
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if keep(&env) {
            out.push(Orphan {
                pid,
                pgid,
                sid,
                start,
            });
        }
    }
    out.sort_by_key(|o| (o.start, o.pid));
    out
}

/// `pid`, when it is a live child of `parent` (the daemon).
pub fn orphan(pid: i32, parent: i32) -> Option<Orphan> {
    let (ppid, pgid, sid, start) = stat(pid)?;
    (ppid == parent).then_some(Orphan {
        pid,
        pgid,
        sid,
        start,
    })
}

/// Live children of `parent` (the daemon) that carry the job's identity,
/// except the pids in `known`; oldest first.
pub fn orphans_of_job(
    parent: i32,
    job: &str,
    instance: &str,
    known: &dyn Fn(i32) -> bool,
) -> Vec<Orphan> {
    let wanted = [
        format!("UPSTART_JOB={job}"),
        format!("UPSTART_INSTANCE={instance}"),
    ];
    adopted(parent, known, |env| has_all(env, &wanted))
}

/// Live children of `parent` (the daemon), except the pids in `known`,
/// that carry no job's identity at all: a program cleared its environment,
/// or wrote over it (nginx puts its process title there). Oldest first.
pub fn anonymous_orphans(parent: i32, known: &dyn Fn(i32) -> bool) -> Vec<Orphan> {
    adopted(parent, known, |env| {
        !env.split(|&b| b == 0)
            .any(|e| e.starts_with(b"UPSTART_JOB="))
    })
}

impl Orphan {
    /// How many forks away from `exited` (the process it outlived) this
    /// one is: in `exited`'s session or leading its own, one; in a session
    /// led by someone else (the classic double fork's grandchild), two.
    pub fn hops_from(&self, exited: i32) -> u8 {
        if self.sid == exited || self.sid == self.pid {
            1
        } else {
            2
        }
    }
}

/// Whether `pid` carries the job's identity in its environment (a process
/// the job started, or one of its descendants).
pub fn is_job_process(pid: i32, job: &str, instance: &str) -> bool {
    environ_has(
        pid,
        &[
            format!("UPSTART_JOB={job}"),
            format!("UPSTART_INSTANCE={instance}"),
        ],
    )
}

/// A live process's parent.
pub fn ppid_of(pid: i32) -> Option<i32> {
    stat(pid).map(|(ppid, _, _, _)| ppid)
}

/// A live process's effective uid.
pub fn euid_of(pid: i32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A live process's session.
pub fn session_of(pid: i32) -> Option<i32> {
    stat(pid).map(|(_, _, sid, _)| sid)
}

/// Whether `pid` descends from one of the processes `is_root` accepts: the
/// chain of parents (the kernel's, which no process can forge) is walked
/// up to `stop_at` (the daemon), init, or 64 steps.
pub fn descends_from(pid: i32, stop_at: i32, is_root: &dyn Fn(i32) -> bool) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        let Some(parent) = ppid_of(p) else {
            return false;
        };
        if parent <= 1 || parent == stop_at {
            return false;
        }
        if is_root(parent) {
            return true;
        }
        p = parent;
    }
    false
}

/// A process's group, if it lives.
pub fn pgid_of(pid: i32) -> Option<i32> {
    stat(pid).map(|(_, pgid, _, _)| pgid)
}

/// A live process's start time (clock ticks since boot), to tell it from a
/// later process that reuses its pid.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, _, _, start)| start)
}

/// A live process's (start time, process group), from one read of its stat.
pub fn identity(pid: i32) -> Option<(u64, i32)> {
    stat(pid).map(|(_, pgid, _, start)| (start, pgid))
}
