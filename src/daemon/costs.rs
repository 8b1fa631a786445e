//! What each instance costs, computed when asked (`status --json`,
//! `list --json --costs`, `top`), never by polling: one look at the process
//! tree for the whole request ([`crate::process::usage`]), the CPU time of
//! the processes the daemon reaped (counted at each reap), and the log's
//! totals from the output part.

use super::Daemon;
use crate::control::{Costs, InstanceStatus};
use crate::process::usage::{self, Scan};

impl Daemon {
    /// Fills in `costs` of each status (an instance at rest costs nothing
    /// but what its log took).
    pub(super) fn add_costs(&self, statuses: &mut [InstanceStatus]) {
        let now = self.reactor.now();
        let known = |p: i32| self.jobs.pids.contains_key(&p) || self.output.is_compressor(p);
        let mut scan = Scan::new(&known);
        for st in statuses {
            let key = std::rc::Rc::new((st.job.clone(), st.instance.clone()));
            let log = crate::log::file_name(&key.0, &key.1);
            let (log_bytes, log_dropped) = self.output.totals(&log);
            let mut costs = Costs {
                log_bytes,
                log_dropped,
                ..Costs::default()
            };
            if let Some(inst) = self.jobs.instances.get(&key) {
                let pids: Vec<i32> = inst.pids.iter().flatten().copied().collect();
                let mut groups: Vec<i32> = inst.group.into_iter().collect();
                groups.extend(
                    pids.iter()
                        .filter_map(|p| self.jobs.identity.get(p).map(|i| i.1)),
                );
                // The instance's cgroup, where it has one, holds every
                // process of it and counts what the dead ones used.
                let cgroup = (self.sys.groups.as_ref()).filter(|g| g.is_populated(&key).is_some());
                let members = match cgroup {
                    Some(g) => g.members(&key),
                    None => scan.members(&pids, &groups, &key.0, &key.1),
                };
                let used = usage::sample(&members);
                let reaped = self.jobs.cpu_reaped.get(&key).copied().unwrap_or_default();
                costs.processes = used.processes;
                costs.cpu_seconds = match cgroup.and_then(|g| g.cpu_usec(&key)) {
                    Some(usec) => usec as f64 / 1e6,
                    None => (used.cpu + reaped).as_secs_f64(),
                };
                costs.memory_bytes = cgroup.and_then(|g| g.memory_bytes(&key));
                costs.rss_bytes = used.rss;
                costs.pss_bytes = used.pss;
                costs.fds = used.fds;
                costs.uptime_seconds = inst
                    .pid(crate::conf::ProcessType::Main)
                    .and(inst.main_started)
                    .map(|t| now.saturating_sub(t).as_secs());
            } else {
                costs.pss_bytes = Some(0);
                costs.fds = Some(0);
            }
            st.costs = Some(costs);
        }
    }
}
