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
}

/// The system itself.
#[derive(Debug, Default)]
pub struct Real;

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
        tree::orphans_of_job(std::process::id() as i32, job, instance, known)
    }

    fn anonymous_orphans(&mut self, known: &dyn Fn(i32) -> bool) -> Vec<Orphan> {
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
}
