//! The conductor's side of cgroups: the group manager opened at start (or
//! why not, said once), stale groups stopped, a re-exec's groups adopted,
//! and `cgroup.events` changes turned into `GroupEmpty` for instances
//! whose main process is gone. The manager itself is
//! `crate::cgroup::groups`, reached through the system seam.

use mio::Interest;

use super::reactor::{self, Reactor};
use super::{setup::Config, Daemon, Key};
use crate::cgroup::groups::Groups;
use crate::conf::ProcessType;
use crate::job::Input;
use crate::process::sys::Real;

/// The system seam with the daemon's groups, their changes polled by the
/// loop; without them where they cannot be (the reason kept).
pub(super) fn open(cfg: &Config, reactor: &Reactor) -> Real {
    let groups = if cfg.no_cgroups {
        Err("turned off with --no-cgroups".to_string())
    } else {
        Groups::open(&cfg.socket)
    };
    if let Ok(g) = &groups {
        if let Err(e) = reactor.register_fd(g.fd(), reactor::CGROUPS.0, Interest::READABLE) {
            return Real::with_groups(Err(format!("unable to watch the groups: {e}")));
        }
    }
    Real::with_groups(groups)
}

impl Daemon {
    /// A fresh start: says where the job groups are (or why there are
    /// none), and stops what a dead predecessor's groups hold.
    pub(super) fn groups_at_start(&mut self) {
        match &mut self.sys.groups {
            Some(g) => {
                self.dlog
                    .log(&format!("job groups in {}", g.root().display()));
                for line in g.sweep(&|_: &Key| false) {
                    self.dlog.log(&line);
                }
            }
            None => self.dlog.log(&format!(
                "cgroups not managed: {}; jobs run in the daemon's own group, and a job with a cgroup stanza or limit does not start",
                self.sys.no_groups
            )),
        }
    }

    /// After a re-exec: the instances' groups taken over, any other group
    /// in the subtree stopped.
    pub(super) fn groups_after_reexec(&mut self) {
        let Some(g) = &mut self.sys.groups else {
            return;
        };
        let keys: Vec<Key> = self.jobs.instances.keys().cloned().collect();
        g.adopt(&keys);
        let insts = &self.jobs.instances;
        for line in g.sweep(&|k: &Key| insts.contains_key(k)) {
            self.dlog.log(&line);
        }
    }

    /// Some groups changed: those that emptied end their instance's wait
    /// for its processes.
    pub(super) fn on_groups(&mut self) {
        let Some(g) = &mut self.sys.groups else {
            return;
        };
        let changed = g.changed();
        let mut inputs = Vec::new();
        for key in changed {
            let Some(inst) = self.jobs.instances.get(&key) else {
                continue;
            };
            let Some(pgid) = inst.group else {
                continue;
            };
            if inst.pid(ProcessType::Main).is_none()
                && self.jobs.processes_gone(&key, pgid, &mut self.sys)
            {
                inputs.push((key, Input::GroupEmpty));
            }
        }
        self.feed(inputs);
    }
}
