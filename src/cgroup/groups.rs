//! The group manager: the imperative half of cgroups. Each daemon works in
//! a subtree of its own, `OWN/upkeep:ESC(SOCKET)` (OWN is the group it
//! started in), in the v2 tree and, on a hybrid system, in each v1
//! controller's hierarchy it uses; every job instance has a group there
//! (`…/ESC(JOB)[@ESC(INSTANCE)]`, [`super::group_name`]). Nothing is
//! written outside OWN.
//!
//! A process joins before `exec`: [`Groups::join`] makes the groups,
//! writes the limits and opens each `cgroup.procs` for the child to write
//! `0` to between fork and exec. [`Groups::changed`] reads the inotify
//! watches on each group's `cgroup.events` (the daemon polls the
//! descriptor in its loop): a group that becomes empty says so, never
//! polled. Stale groups (a daemon that died) are stopped at start by
//! [`Groups::sweep`]; after a re-exec the daemon [`Groups::adopt`]s its own.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::hierarchy::Hierarchy;
use super::limits::{Plan, Tree};

pub use crate::job::Key;

/// The controllers upkeep's limits use.
const CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "io"];
/// The v1 hierarchies a limit may need.
const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "pids", "blkio", "cpuset"];

/// The daemon's groups.
pub struct Groups {
    /// The daemon's subtree in the v2 tree.
    v2: PathBuf,
    /// Each v1 controller's subtree (made when a job first needs it).
    v1: Vec<(String, PathBuf)>,
    tree: Tree,
    inotify: Inotify,
    watches: HashMap<WatchDescriptor, Key>,
    by_key: HashMap<Key, WatchDescriptor>,
    /// The v1 groups each instance has (to read and remove them).
    v1_of: HashMap<Key, Vec<PathBuf>>,
    /// Groups of instances that are gone, killed, to remove once empty.
    dying: Vec<Key>,
}

/// What a process needs to join its groups.
pub struct Join {
    /// The v2 group's directory, to clone the process straight into
    /// (`CLONE_INTO_CGROUP`: no migration after the fact).
    pub dir: Option<OwnedFd>,
    /// One `cgroup.procs` a group, written by the child itself first thing
    /// after fork; when `dir` is set, the first is the v2 group's, written
    /// only where the process could not be cloned into it.
    pub procs: Vec<OwnedFd>,
}

fn io<E: std::fmt::Display>(what: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(value.as_bytes())
}

/// A `KEY N` line of a flat-keyed file (`cgroup.events`, `memory.events`,
/// `cpu.stat`, `memory.oom_control`).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

impl Groups {
    /// The daemon's subtree, made (or found after a re-exec), or why
    /// cgroups cannot be managed here.
    pub fn open(socket: &Path) -> Result<Groups, String> {
        let h = Hierarchy::of_this_process();
        let unified = h.unified.as_ref().ok_or("no cgroup v2 tree is mounted")?;
        let mut own = unified
            .own_dir()
            .ok_or("this process's cgroup v2 group is not below the mounted tree")?;
        let sub = format!(
            "upkeep:{}",
            super::group_name(&socket.to_string_lossy(), "")
        );
        // After a re-exec the daemon is already in OWN/daemon.
        if own.ends_with("daemon") && own.parent().is_some_and(|p| p.join(&sub).is_dir()) {
            own.pop();
        }
        let available: Vec<String> = fs::read_to_string(own.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|c| CONTROLLERS.contains(c))
            .map(str::to_string)
            .collect();
        let tree = if available.is_empty() {
            let v1 = V1_CONTROLLERS
                .iter()
                .filter(|c| h.v1(c).and_then(|m| m.own_dir()).is_some())
                .map(|c| c.to_string())
                .collect();
            Tree::Hybrid { v1 }
        } else {
            Tree::Unified {
                controllers: enable_controllers(&own, &available),
            }
        };
        let v2 = own.join(&sub);
        match fs::create_dir(&v2) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("unable to make {}: {e}", v2.display())),
        }
        if let Tree::Unified { controllers } = &tree {
            let plus: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
            if !plus.is_empty() {
                write_file(&v2.join("cgroup.subtree_control"), &plus.join(" "))
                    .map_err(io(&v2.join("cgroup.subtree_control")))?;
            }
        }
        let v1 = match &tree {
            Tree::Hybrid { v1 } => v1
                .iter()
                .filter_map(|c| Some((c.clone(), h.v1(c)?.own_dir()?.join(&sub))))
                .collect(),
            Tree::Unified { .. } => Vec::new(),
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| format!("inotify: {e}"))?;
        Ok(Groups {
            v2,
            v1,
            tree,
            inotify,
            watches: HashMap::new(),
            by_key: HashMap::new(),
            v1_of: HashMap::new(),
            dying: Vec::new(),
        })
    }

    /// The shape of the tree the jobs' groups are in.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The daemon's subtree in the v2 tree.
    pub fn root(&self) -> &Path {
        &self.v2
    }

    /// The descriptor to poll: readable when a watched group changed.
    pub fn fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }

    /// An instance's v2 group.
    pub fn dir(&self, key: &Key) -> PathBuf {
        self.v2.join(super::group_name(&key.0, &key.1))
    }

    /// Makes an instance's groups as `plan` says, writes its limits, and
    /// opens what a process writes to join them. A file the system lacks
    /// refuses the start, naming the stanza.
    pub fn join(&mut self, key: &Key, plan: &Plan) -> Result<Join, String> {
        let name = super::group_name(&key.0, &key.1);
        self.dying.retain(|k| k != key);
        let mut procs = Vec::new();
        let mut dir = None;
        for g in &plan.groups {
            let base = match &g.controller {
                None => self.v2.join(&name),
                Some(c) => {
                    let (_, sub) =
                        self.v1.iter().find(|(have, _)| have == c).ok_or_else(|| {
                            format!("cgroup {c}: this system has no {c} controller")
                        })?;
                    let dir = sub.join(&name);
                    let list = self.v1_of.entry(key.clone()).or_default();
                    if !list.contains(&dir) {
                        list.push(dir.clone());
                    }
                    fs::create_dir_all(sub).map_err(io(sub))?;
                    dir
                }
            };
            let leaf = if g.path.is_empty() {
                base.clone()
            } else {
                base.join(&g.path)
            };
            fs::create_dir_all(&leaf).map_err(io(&leaf))?;
            if g.controller.is_none() && leaf != base {
                // cgroup v2: a group with processes below it passes its
                // controllers down.
                let ctrls: Vec<String> = g
                    .writes
                    .iter()
                    .filter_map(|w| w.file.split('.').next().map(|c| format!("+{c}")))
                    .collect();
                let mut dir = base.clone();
                for part in g.path.split('/') {
                    if !ctrls.is_empty() {
                        write_file(&dir.join("cgroup.subtree_control"), &ctrls.join(" "))
                            .map_err(io(&dir))?;
                    }
                    dir.push(part);
                }
            }
            for w in &g.writes {
                let file = leaf.join(&w.file);
                if let Err(e) = write_file(&file, &w.value) {
                    return Err(if e.kind() == std::io::ErrorKind::NotFound {
                        format!("{}: this system has no {} file", w.from, w.file)
                    } else {
                        format!("{}: writing {} to {}: {e}", w.from, w.value, file.display())
                    });
                }
            }
            let procs_file = leaf.join("cgroup.procs");
            let fd = fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&procs_file)
                .map_err(io(&procs_file))?;
            if g.controller.is_none() && dir.is_none() {
                let d = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_DIRECTORY)
                    .open(&leaf)
                    .map_err(io(&leaf))?;
                dir = Some(OwnedFd::from(d));
                procs.insert(0, OwnedFd::from(fd));
            } else {
                procs.push(OwnedFd::from(fd));
            }
        }
        self.watch(key);
        Ok(Join { dir, procs })
    }

    /// Watches an instance's `cgroup.events`.
    fn watch(&mut self, key: &Key) {
        if self.by_key.contains_key(key) {
            return;
        }
        let events = self.dir(key).join("cgroup.events");
        if let Ok(wd) = self.inotify.add_watch(&events, AddWatchFlags::IN_MODIFY) {
            self.watches.insert(wd, key.clone());
            self.by_key.insert(key.clone(), wd);
        }
    }

    /// Takes over the groups a re-exec left: each is watched again; the
    /// keys of those that hold processes.
    pub fn adopt(&mut self, keys: &[Key]) {
        for key in keys {
            if self.dir(key).is_dir() {
                self.watch(key);
                for (_, sub) in &self.v1 {
                    let dir = sub.join(super::group_name(&key.0, &key.1));
                    if dir.is_dir() {
                        self.v1_of.entry(key.clone()).or_default().push(dir);
                    }
                }
            }
        }
    }

    /// The instances whose groups changed since the last call (the groups
    /// of gone instances that emptied are removed).
    pub fn changed(&mut self) -> Vec<Key> {
        let mut keys = Vec::new();
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if let Some(k) = self.watches.get(&e.wd) {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
        }
        let emptied: Vec<Key> = self
            .dying
            .iter()
            .filter(|k| keys.contains(k) && self.is_populated(k) != Some(true))
            .cloned()
            .collect();
        for k in emptied {
            self.dying.retain(|d| *d != k);
            self.release(&k);
        }
        keys
    }

    /// Whether any process is left in an instance's group (or below it);
    /// `None` when it has no group (one started before groups were).
    pub fn is_populated(&self, key: &Key) -> Option<bool> {
        keyed(&self.dir(key).join("cgroup.events"), "populated").map(|n| n != 0)
    }

    /// Every process in an instance's group and below it.
    pub fn members(&self, key: &Key) -> Vec<i32> {
        let mut pids = Vec::new();
        collect_procs(&self.dir(key), &mut pids, 0);
        pids
    }

    /// Signals every process of an instance's group: SIGKILL through
    /// `cgroup.kill` (which no fork can outrun), others one by one.
    pub fn kill(&self, key: &Key, signal: i32) {
        let dir = self.dir(key);
        if signal == libc::SIGKILL && write_file(&dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for pid in self.members(key) {
            let _ = crate::process::kill_pid(pid, signal);
        }
    }

    /// Removes an instance's groups; false when processes are left in
    /// them (they are killed; the next call, when the group has emptied,
    /// removes it).
    pub fn release(&mut self, key: &Key) -> bool {
        let dir = self.dir(key);
        if self.is_populated(key) == Some(true) {
            self.kill(key, libc::SIGKILL);
            if !self.dying.contains(key) {
                self.dying.push(key.clone());
            }
            return false;
        }
        if let Some(wd) = self.by_key.remove(key) {
            self.watches.remove(&wd);
            let _ = self.inotify.rm_watch(wd);
        }
        remove_tree(&dir);
        for d in self.v1_of.remove(key).unwrap_or_default() {
            remove_tree(&d);
        }
        true
    }

    /// How many times the kernel's OOM killer acted in an instance's group.
    pub fn oom_kills(&self, key: &Key) -> u64 {
        let v2 = keyed(&self.dir(key).join("memory.events"), "oom_kill");
        let v1 = self
            .v1_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|d| keyed(&d.join("memory.oom_control"), "oom_kill"))
            .max();
        v2.unwrap_or(0).max(v1.unwrap_or(0))
    }

    /// The CPU time an instance's group used, in microseconds (the v2
    /// tree's `cpu.stat`, there with or without controllers).
    pub fn cpu_usec(&self, key: &Key) -> Option<u64> {
        keyed(&self.dir(key).join("cpu.stat"), "usage_usec")
    }

    /// The memory an instance's group holds, in bytes, where a memory
    /// controller counts it.
    pub fn memory_bytes(&self, key: &Key) -> Option<u64> {
        let read = |p: PathBuf| fs::read_to_string(p).ok()?.trim().parse().ok();
        read(self.dir(key).join("memory.current")).or_else(|| {
            self.v1_of
                .get(key)?
                .iter()
                .find_map(|d| read(d.join("memory.usage_in_bytes")))
        })
    }

    /// At the daemon's exit, every job stopped: the subtree goes (what is
    /// not empty stays).
    pub fn close(&mut self) {
        remove_tree(&self.v2);
        for (_, d) in &self.v1 {
            remove_tree(d);
        }
    }

    /// Stops what groups in the subtree hold that no instance of this
    /// daemon owns (a predecessor that died), then removes them: SIGTERM,
    /// up to 5 s, then SIGKILL, up to 2 s, waiting on pidfds. Returns one
    /// line for the daemon's log a group that held processes.
    pub fn sweep(&mut self, owned: &dyn Fn(&Key) -> bool) -> Vec<String> {
        let mut said = Vec::new();
        let mut stale: Vec<PathBuf> = Vec::new();
        let known: Vec<String> = self
            .by_key
            .keys()
            .filter(|k| owned(k))
            .map(|k| super::group_name(&k.0, &k.1))
            .collect();
        let mut dirs = vec![self.v2.clone()];
        dirs.extend(self.v1.iter().map(|(_, d)| d.clone()));
        for sub in dirs {
            let Ok(entries) = fs::read_dir(&sub) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() && !known.contains(&name) {
                    stale.push(e.path());
                }
            }
        }
        let members = |dirs: &[PathBuf]| {
            let mut pids = Vec::new();
            for d in dirs {
                collect_procs(d, &mut pids, 0);
            }
            pids
        };
        let left = members(&stale);
        if !left.is_empty() {
            said.push(format!(
                "a previous daemon on this socket left {} process{} in its job groups: stopping them",
                left.len(),
                if left.len() == 1 { "" } else { "es" }
            ));
            for (sig, limit) in [(libc::SIGTERM, 5), (libc::SIGKILL, 2)] {
                let pids = members(&stale);
                if pids.is_empty() {
                    break;
                }
                let fds: Vec<OwnedFd> = pids
                    .iter()
                    .filter_map(|&p| crate::process::pidfd_open(p).ok())
                    .collect();
                for &p in &pids {
                    let _ = crate::process::kill_pid(p, sig);
                }
                crate::process::wait_all_ended(fds, Instant::now() + Duration::from_secs(limit));
            }
        }
        for d in &stale {
            remove_tree(d);
        }
        said
    }
}

/// Enables upkeep's controllers for the daemon's subtree: the daemon moves
/// to `OWN/daemon` first (a v2 group whose controllers are enabled for its
/// children holds no process), and back when that cannot be done (other
/// processes share OWN). The controllers enabled.
fn enable_controllers(own: &Path, available: &[String]) -> Vec<String> {
    let read = || -> Vec<String> {
        fs::read_to_string(own.join("cgroup.subtree_control"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|c| CONTROLLERS.contains(c))
            .map(str::to_string)
            .collect()
    };
    let already = read();
    if available.iter().all(|c| already.contains(c)) {
        return already;
    }
    let me = std::process::id().to_string();
    let daemon = own.join("daemon");
    let is_root = !own.join("cgroup.kill").exists() && own.join("cgroup.stat").exists();
    let moved = is_root
        || (fs::create_dir_all(&daemon).is_ok()
            && write_file(&daemon.join("cgroup.procs"), &me).is_ok());
    if !moved {
        return already;
    }
    for c in available {
        let _ = write_file(&own.join("cgroup.subtree_control"), &format!("+{c}"));
    }
    let now = read();
    if now.is_empty() && !is_root {
        let _ = write_file(&own.join("cgroup.procs"), &me);
        let _ = fs::remove_dir(&daemon);
    }
    now
}

/// Every pid in `dir`'s `cgroup.procs` and its children's.
fn collect_procs(dir: &Path, pids: &mut Vec<i32>, depth: usize) {
    if depth > 16 {
        return;
    }
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), pids, depth + 1);
            }
        }
    }
}

/// Removes a group and the groups below it (children first; only empty
/// groups can go).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
