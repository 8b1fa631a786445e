//! What a job's processes use now, read from /proc when someone asks
//! (`status --json`, `list --json --costs`, `top`), never by polling.
//!
//! A job's processes are more than the pids the daemon started: they fork,
//! and some leave the process group (`setsid`) or are re-parented to the
//! daemon (a child subreaper) when their parent dies. [`Scan::members`]
//! finds them all from what the kernel says, which no process can forge:
//! the instance's own pids and every descendant of them (parent links),
//! plus the processes the daemon adopted that are in the instance's
//! groups or carry its `UPSTART_JOB`/`UPSTART_INSTANCE`, and their
//! descendants. A process that cleared its environment, left the group and
//! lost its parent is out of sight here; where the daemon manages cgroups
//! (`crate::cgroup::groups`), the instance's group is read instead, and
//! holds it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::Duration;

use super::tree;

/// What a set of processes uses now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Live (not zombie) processes.
    pub processes: u64,
    /// User + system CPU time, with that of the children each waited for.
    pub cpu: Duration,
    /// Resident memory, summed (bytes).
    pub rss: u64,
    /// Proportional set size, summed (bytes); `None` when a process's
    /// `smaps_rollup` could not be read.
    pub pss: Option<u64>,
    /// Open descriptors; `None` when a process's `fd` dir could not be read.
    pub fds: Option<u64>,
}

/// One process's line of /proc/PID/stat, the fields used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    zombie: bool,
    ppid: i32,
    pgid: i32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. f[0] is field 3 (state).
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(Stat {
        zombie: *f.first()? == "Z",
        ppid: f.get(1)?.parse().ok()?,
        pgid: f.get(2)?.parse().ok()?,
        ticks: num(11)? + num(12)? + num(13)? + num(14)?,
        rss_pages: num(21)?,
    })
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A process the daemon adopted: its group and the job identity it carries.
struct Adopted {
    pid: i32,
    pgid: i32,
    job: Option<(Vec<u8>, Vec<u8>)>,
}

/// One look at the process tree, shared by every instance of a request.
pub struct Scan {
    adopted: Vec<Adopted>,
    /// Where the kernel has no `children` files: every process's children,
    /// from one pass over /proc (made when first needed).
    children: Option<HashMap<i32, Vec<i32>>>,
    has_children_files: bool,
}

impl Scan {
    /// The daemon's children that are not in `known` (the pids its jobs
    /// started): processes it adopted.
    pub fn new(known: &dyn Fn(i32) -> bool) -> Scan {
        let me = std::process::id() as i32;
        let listed = tree::children_of(me);
        let has_children_files = listed.is_some();
        let mut scan = Scan {
            adopted: Vec::new(),
            children: None,
            has_children_files,
        };
        let mine =
            listed.unwrap_or_else(|| scan.children_map().get(&me).cloned().unwrap_or_default());
        for pid in mine.into_iter().filter(|&p| !known(p)) {
            let Some(st) = stat(pid).filter(|s| !s.zombie) else {
                continue;
            };
            let job = fs::read(format!("/proc/{pid}/environ"))
                .ok()
                .and_then(|env| identity(&env));
            scan.adopted.push(Adopted {
                pid,
                pgid: st.pgid,
                job,
            });
        }
        scan
    }

    fn children_map(&mut self) -> &HashMap<i32, Vec<i32>> {
        self.children.get_or_insert_with(|| {
            let mut map: HashMap<i32, Vec<i32>> = HashMap::new();
            for pid in tree::all_pids() {
                if let Some(st) = stat(pid) {
                    map.entry(st.ppid).or_default().push(pid);
                }
            }
            map
        })
    }

    fn children(&mut self, pid: i32) -> Vec<i32> {
        if self.has_children_files {
            if let Some(c) = tree::children_of(pid) {
                return c;
            }
            return Vec::new(); // gone meanwhile
        }
        self.children_map().get(&pid).cloned().unwrap_or_default()
    }

    /// The live processes of an instance: `pids` (those it started), the
    /// adopted processes in one of its `groups` or carrying its identity,
    /// and every descendant of these.
    pub fn members(&mut self, pids: &[i32], groups: &[i32], job: &str, instance: &str) -> Vec<i32> {
        let mut roots: Vec<i32> = pids.to_vec();
        for a in &self.adopted {
            let ours = groups.contains(&a.pgid)
                || a.job
                    .as_ref()
                    .is_some_and(|(j, i)| j == job.as_bytes() && i == instance.as_bytes());
            if ours {
                roots.push(a.pid);
            }
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        while let Some(pid) = roots.pop() {
            if pid <= 1 || !seen.insert(pid) {
                continue;
            }
            out.push(pid);
            roots.extend(self.children(pid));
        }
        out
    }
}

/// `UPSTART_JOB` and `UPSTART_INSTANCE` from an environment block.
fn identity(env: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut job = None;
    let mut inst = None;
    for e in env.split(|&b| b == 0) {
        if let Some(v) = e.strip_prefix(b"UPSTART_JOB=") {
            job = Some(v.to_vec());
        } else if let Some(v) = e.strip_prefix(b"UPSTART_INSTANCE=") {
            inst = Some(v.to_vec());
        }
    }
    Some((job?, inst.unwrap_or_default()))
}

/// What these processes use now (the ones gone meanwhile, and zombies,
/// count for nothing).
pub fn sample(pids: &[i32]) -> Sample {
    let tick = clock_ticks();
    let page = page_size();
    let mut s = Sample {
        pss: Some(0),
        fds: Some(0),
        ..Sample::default()
    };
    let mut ticks = 0u64;
    for &pid in pids {
        let Some(st) = stat(pid).filter(|s| !s.zombie) else {
            continue;
        };
        s.processes += 1;
        ticks += st.ticks;
        s.rss += st.rss_pages * page;
        s.pss = s.pss.zip(pss(pid)).map(|(a, b)| a + b);
        s.fds = s.fds.zip(fd_count(pid)).map(|(a, b)| a + b);
    }
    s.cpu = Duration::from_secs(ticks / tick)
        + Duration::from_secs_f64((ticks % tick) as f64 / tick as f64);
    s
}

/// This process's own figures: descriptors, resident memory, and when it
/// started (seconds since the epoch; an exec keeps it, so a re-exec'd
/// daemon's is its first start).
pub struct Own {
    pub fds: u64,
    pub rss_bytes: u64,
    pub started_at: u64,
}

pub fn own() -> Own {
    let me = std::process::id() as i32;
    let rss_bytes = stat(me).map_or(0, |s| s.rss_pages * page_size());
    let fds = fd_count(me).unwrap_or(0);
    let started_at = (|| {
        let start_ticks = super::tree::start_time(me)?;
        let uptime: f64 = fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let up_secs = start_ticks as f64 / clock_ticks() as f64;
        let ago = (uptime - up_secs).max(0.0);
        let now = super::time::since_epoch().as_secs_f64();
        Some((now - ago).round() as u64)
    })()
    .unwrap_or(0);
    Own {
        fds,
        rss_bytes,
        started_at,
    }
}

/// `Pss:` of /proc/PID/smaps_rollup, in bytes.
fn pss(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("Pss:"))?;
    let kb: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

fn fd_count(pid: i32) -> Option<u64> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 100,
    }
}

fn page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_strange_name_parses() {
        let line = "42 (a) b (c) S 7 40 40 0 -1 4194560 100 0 0 0 30 12 5 3 20 0 1 0 \
                    1234 10000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let st = parse_stat(line).unwrap();
        assert_eq!(st.ppid, 7);
        assert_eq!(st.pgid, 40);
        assert_eq!(st.ticks, 30 + 12 + 5 + 3);
        assert_eq!(st.rss_pages, 250);
        assert!(!st.zombie);
    }

    #[test]
    fn identity_needs_the_job_and_defaults_the_instance() {
        assert_eq!(
            identity(b"A=1\0UPSTART_JOB=web\0UPSTART_INSTANCE=x\0"),
            Some((b"web".to_vec(), b"x".to_vec()))
        );
        assert_eq!(
            identity(b"UPSTART_JOB=web\0"),
            Some((b"web".to_vec(), Vec::new()))
        );
        assert_eq!(identity(b"UPSTART_INSTANCE=x\0"), None);
    }

    #[test]
    fn this_test_process_is_sampled() {
        let me = std::process::id() as i32;
        let s = sample(&[me]);
        assert_eq!(s.processes, 1);
        assert!(s.rss > 0);
        assert!(s.fds.unwrap() >= 3);
    }
}
