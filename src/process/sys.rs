//! The seam between the daemon's parts and the system: what the daemon
//! asks of the kernel about a job's processes, as narrow as what it calls
//! (in the spirit of dinit's `bp_sys`). [`Real`] makes the system calls;
//! tests of the job table and the event bus put a fake in its place, so
//! that they run without a process.
//!
//! Spawning is not here: it needs the daemon's output and notify parts.
//! The job table's `drive` spawns through a closure the conductor lends it
//! (`daemon/mod.rs`: notify prepares the socket, output opens the pipes and
//! calls [`crate::process::spawn`]); the parts' tests lend a fake one.

use std::path::Path;

use nix::errno::Errno;

use super::tree::{self, Orphan};
use crate::cgroup::groups::{Groups, Join, Key};
use crate::cgroup::limits;
use crate::conf::JobClass;

/// What the daemon asks of the system about processes.
pub trait Sys {
    /// Sends a signal to a process group.
    fn kill_group(&mut self, pgid: i32, signal: i32) -> Result<(), Errno>;
    /// Sends a signal to one process.
    fn kill_pid(&mut self, pid: i32, signal: i32) -> Result<(), Errno>;
    /// Whether a process group has no member left (zombies count).
    fn group_is_empty(&mut self, pgid: i32) -> bool;
    /// The daemon's children that carry the job's identity and are not in
    /// `known`, oldest first (a daemonizing job's re-parented processes).
    fn orphans_of_job(
        &mut self,
        job: &str,
        instance: &str,
        known: &dyn Fn(i32) -> bool,
    ) -> Vec<Orphan>;
    /// The daemon's children that carry no job's identity at all and are
    /// not in `known`, oldest first.
    fn anonymous_orphans(&mut self, known: &dyn Fn(i32) -> bool) -> Vec<Orphan>;
    /// A live process's group.
    fn pgid_of(&mut self, pid: i32) -> Option<i32>;
    /// A live process's start time (to tell it from a later one that reuses
    /// its pid).
    fn start_time(&mut self, pid: i32) -> Option<u64>;
    /// An `env-file`'s bytes, checked for a job run as `job_uid` (`None`
    /// when there is no such file).
    fn read_env_file(
        &mut self,
        path: &Path,
        job_uid: Option<u32>,
    ) -> Result<Option<Vec<u8>>, String>;
    /// Makes an instance's cgroups as its job asks and opens what its
    /// process writes to join them; `None` where cgroups are not managed
    /// (and the job asks none of them); why not, naming the stanza.
    fn join_group(
        &mut self,
        key: &Key,
        class: &JobClass,
        env: &[String],
    ) -> Result<Option<Join>, String>;
    /// Whether an instance's cgroup holds processes (`None`: no groups).
    fn group_populated(&mut self, key: &Key) -> Option<bool>;
    /// Signals every process in an instance's cgroup (SIGKILL through
    /// `cgroup.kill`); false where there are no groups (the caller then
    /// looks for escaped processes by their identity).
    fn kill_members(&mut self, key: &Key, signal: i32) -> bool;
    /// Removes an instance's cgroups; false when processes were left (and
    /// killed): the group goes when it has emptied.
    fn release_group(&mut self, key: &Key) -> bool;
    /// How many times the OOM killer acted in an instance's cgroup.
    fn oom_kills(&mut self, key: &Key) -> u64;
}

/// The system itself, with the daemon's cgroups where it manages them.
#[derive(Default)]
pub struct Real {
    pub groups: Option<Groups>,
    /// Why there are no groups (for refusals).
    pub no_groups: String,
}

impl Real {
    /// With the daemon's groups, or why there are none.
    pub fn with_groups(groups: Result<Groups, String>) -> Real {
        match groups {
            Ok(g) => Real {
                groups: Some(g),
                no_groups: String::new(),
            },
            Err(why) => Real {
                groups: None,
                no_groups: why,
            },
        }
    }
}

impl Sys for Real {
    fn kill_group(&mut self, pgid: i32, signal: i32) -> Result<(), Errno> {
        super::kill_group(pgid, signal)
    }

    fn kill_pid(&mut self, pid: i32, signal: i32) -> Result<(), Errno> {
        super::kill_pid(pid, signal)
    }

    fn group_is_empty(&mut self, pgid: i32) -> bool {
        super::group_is_empty(pgid)
    }

    fn orphans_of_job(
        &mut self,
        job: &str,
        instance: &str,
        known: &dyn Fn(i32) -> bool,
    ) -> Vec<Orphan> {
        let me = std::process::id() as i32;
        let Some(groups) = &self.groups else {
            return tree::orphans_of_job(me, job, instance, known);
        };
        // The group says whose a process is, whatever its environment.
        let key = std::rc::Rc::new((job.to_string(), instance.to_string()));
        let mut found: Vec<Orphan> = groups
            .members(&key)
            .into_iter()
            .filter(|&p| !known(p))
            .filter_map(|p| tree::orphan(p, me))
            .collect();
        found.sort_by_key(|o| (o.start, o.pid));
        found
    }

    fn anonymous_orphans(&mut self, known: &dyn Fn(i32) -> bool) -> Vec<Orphan> {
        if self.groups.is_some() {
            return Vec::new(); // every job process is in its job's group
        }
        tree::anonymous_orphans(std::process::id() as i32, known)
    }

    fn pgid_of(&mut self, pid: i32) -> Option<i32> {
        tree::pgid_of(pid)
    }

    fn start_time(&mut self, pid: i32) -> Option<u64> {
        tree::start_time(pid)
    }

    fn read_env_file(
        &mut self,
        path: &Path,
        job_uid: Option<u32>,
    ) -> Result<Option<Vec<u8>>, String> {
        let mut trust = crate::confdir::Trust::for_env_file(super::euid(), job_uid);
        crate::confdir::read_env_file(path, &mut trust)
    }

    fn join_group(
        &mut self,
        key: &Key,
        class: &JobClass,
        env: &[String],
    ) -> Result<Option<Join>, String> {
        match &mut self.groups {
            Some(groups) => {
                let plan = limits::plan(class, env, groups.tree())?;
                groups.join(key, &plan).map(Some)
            }
            None if limits::asks(class) => Err(format!(
                "Job cannot be started as cgroup manager not available: {} ({})",
                class.name, self.no_groups
            )),
            None => Ok(None),
        }
    }

    fn group_populated(&mut self, key: &Key) -> Option<bool> {
        self.groups.as_ref()?.is_populated(key)
    }

    fn kill_members(&mut self, key: &Key, signal: i32) -> bool {
        match &self.groups {
            Some(g) => {
                g.kill(key, signal);
                true
            }
            None => false,
        }
    }

    fn release_group(&mut self, key: &Key) -> bool {
        self.groups.as_mut().is_none_or(|g| g.release(key))
    }

    fn oom_kills(&mut self, key: &Key) -> u64 {
        self.groups.as_ref().map_or(0, |g| g.oom_kills(key))
    }
}
