//! Signals the daemon passes on to its jobs, as a container's init must:
//! SIGUSR2 and SIGWINCH (and SIGHUP with `--forward-hup`) go to the main
//! process of the `--exit-with` job when one is given, else to every
//! job's main process, once each. SIGHUP and SIGUSR1 otherwise keep their
//! daemon meanings (reload the configuration, reopen the logs), and
//! SIGTERM, SIGINT and SIGQUIT stop every job in order.

use std::collections::BTreeMap;

use super::{Daemon, Key};
use crate::conf::ProcessType;
use crate::job::Instance;

/// Whose main process a forwarded signal reaches: (label, pid), in the
/// table's order.
pub(super) fn targets(
    instances: &BTreeMap<Key, Box<Instance>>,
    exit_with: Option<&str>,
) -> Vec<(String, i32)> {
    instances
        .values()
        .filter(|i| exit_with.is_none_or(|j| i.job == j))
        .filter_map(|i| Some((i.label(), i.pid(ProcessType::Main)?)))
        .collect()
}

impl Daemon {
    /// Passes `sig` on to the jobs' main processes.
    pub(super) fn forward(&mut self, sig: i32) {
        let name = crate::conf::signal::display(sig);
        let to = targets(&self.jobs.instances, self.host.cfg.exit_with.as_deref());
        if to.is_empty() {
            self.dlog.log(&format!(
                "SIG{name}: no job's main process to pass it on to"
            ));
            return;
        }
        let mut told = Vec::new();
        for (label, pid) in to {
            match crate::process::kill_pid(pid, sig) {
                Ok(()) => told.push(format!("{label} ({pid})")),
                Err(e) => self.dlog.log(&format!(
                    "SIG{name}: unable to pass it on to {label} ({pid}): {}",
                    crate::process::errno_text(e as i32)
                )),
            }
        }
        if !told.is_empty() {
            self.dlog
                .log(&format!("SIG{name}: passed on to {}", told.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn table() -> BTreeMap<Key, Box<Instance>> {
        let mut t = BTreeMap::new();
        for (job, name, pid) in [
            ("db", "", Some(10)),
            ("web", "a", Some(20)),
            ("web", "b", Some(21)),
            ("idle", "", None),
        ] {
            let class = Rc::new(crate::conf::parse_job(job, b"exec /x\n").unwrap());
            let mut i = Instance::new(job, name, class, Vec::new());
            i.pids[ProcessType::Main.index()] = pid;
            t.insert(crate::job::key(job, name), Box::new(i));
        }
        t
    }

    #[test]
    fn the_exit_with_job_alone_or_every_main_process() {
        let t = table();
        assert_eq!(
            targets(&t, None),
            [
                ("db".to_string(), 10),
                ("web (a)".to_string(), 20),
                ("web (b)".to_string(), 21)
            ]
        );
        assert_eq!(
            targets(&t, Some("web")),
            [("web (a)".to_string(), 20), ("web (b)".to_string(), 21)]
        );
        assert!(targets(&t, Some("idle")).is_empty());
    }
}
