//! Shutdown: SIGTERM (or `--exit-with`'s job failing) stops every job, in
//! the reverse of the order in which they reached running, after the
//! `runlevel 0` event; it is bounded: a job on its way down that waits for
//! one of its hooks gives it `kill timeout`, then the hook gets the kill
//! signal and, one `kill timeout` later, SIGKILL.

use std::collections::HashMap;
use std::time::Duration;

use super::jobs::JobTable;
use super::output::DaemonLog;
use super::reactor::{Reactor, Timer};
use super::Key;
use crate::conf::ProcessType;
use crate::job::{self, Exit, Instance};
use crate::process::sys::Sys;

#[derive(Default)]
pub(super) struct Shutdown {
    /// A shutdown is under way.
    pub active: bool,
    /// What the daemon exits with (0, or the `--exit-with` job's status).
    pub exit_code: i32,
    /// The `runlevel 0` event of a shutdown, while it is being handled.
    pub event: Option<u64>,
    /// Instances watched during a shutdown, with the hook process that was
    /// last sent the kill signal (SIGKILL comes next).
    hooks: HashMap<Key, Option<i32>>,
    /// `--exit-with JOB`.
    pub exit_with: Option<String>,
}

impl Shutdown {
    pub fn new(exit_with: Option<String>) -> Shutdown {
        Shutdown {
            exit_with,
            ..Shutdown::default()
        }
    }

    /// `--exit-with JOB`: the job failed, so the whole run ends with its
    /// exit status (128+N for death by signal N). Returns why, to log and
    /// begin the shutdown with.
    pub fn exit_with_failed(&mut self, inst: &Instance) -> Option<String> {
        if self.exit_with.as_deref() != Some(inst.job.as_str()) || inst.failed.is_none() {
            return None;
        }
        self.exit_code = match inst.last_exit {
            Some(Exit::Code(c)) if c != 0 => c,
            Some(Exit::Signal(n)) => 128 + n,
            _ => 1,
        };
        let why = inst
            .failure_detail
            .clone()
            .unwrap_or_else(|| "failed".into());
        Some(format!(
            "{} failed ({why}): stopping everything (--exit-with), exit status {}",
            inst.label(),
            self.exit_code
        ))
    }

    /// A shutdown begins: every instance already on its way down is
    /// watched for a hung hook. Returns the variables of its `runlevel 0`
    /// event, from the runlevel the daemon was in.
    pub fn begin(&mut self, jobs: &JobTable, reactor: &Reactor, runlevel: &str) -> Vec<String> {
        self.active = true;
        let down: Vec<Key> = jobs
            .instances
            .iter()
            .filter(|(_, i)| i.goal == job::Goal::Stop)
            .map(|(k, _)| k.clone())
            .collect();
        for key in down {
            self.watch_hook(&key, jobs, reactor);
        }
        vec!["RUNLEVEL=0".into(), format!("PREVLEVEL={runlevel}")]
    }

    /// Starts watching an instance on its way down for a hung hook.
    pub fn watch_hook(&mut self, key: &Key, jobs: &JobTable, reactor: &Reactor) {
        if self.hooks.contains_key(key) {
            return;
        }
        self.hooks.insert(key.clone(), None);
        self.arm_hook(key, jobs, reactor);
    }

    fn arm_hook(&mut self, key: &Key, jobs: &JobTable, reactor: &Reactor) {
        let Some(inst) = jobs.instances.get(key) else {
            self.hooks.remove(key);
            return;
        };
        let after = Duration::from_secs(u64::from(inst.class.kill_timeout_secs.max(1)));
        reactor.arm(after, Timer::ShutdownHook(key.clone()));
    }

    /// The watch timer fired: a hook still running gets the kill signal,
    /// and the next time SIGKILL.
    pub fn check_hook(
        &mut self,
        key: Key,
        jobs: &JobTable,
        sys: &mut dyn Sys,
        dlog: &DaemonLog,
        reactor: &Reactor,
    ) {
        let Some(inst) = jobs.instances.get(&key) else {
            self.hooks.remove(&key);
            return;
        };
        let hook = match inst.waiting {
            job::Waiting::Exit(p) if p != ProcessType::Main && inst.goal == job::Goal::Stop => {
                inst.pid(p).map(|pid| (p, pid))
            }
            _ => None,
        };
        if let Some((process, pid)) = hook {
            let again = self.hooks.get(&key) == Some(&Some(pid));
            let signal = if again {
                libc::SIGKILL
            } else {
                inst.class.kill_signal
            };
            dlog.log(&format!(
                "{} {} process ({pid}) still running at shutdown after {} s: sending {} signal",
                inst.label(),
                process.name(),
                inst.class.kill_timeout_secs.max(1),
                crate::conf::signal::display(signal)
            ));
            if sys.kill_group(pid, signal).is_err() {
                let _ = sys.kill_pid(pid, signal);
            }
            self.hooks.insert(key.clone(), Some(pid));
        }
        self.arm_hook(&key, jobs, reactor);
    }

    /// The next instance to stop: none while the `runlevel 0` event is
    /// being handled (`event_pending`) or someone is on the way down;
    /// then those that never reached running, then the others in the
    /// reverse of the order they reached it. It is watched for a hung
    /// hook from here on.
    pub fn next_to_stop(
        &mut self,
        jobs: &JobTable,
        event_pending: bool,
        reactor: &Reactor,
    ) -> Option<Key> {
        if self.event.is_some() {
            if event_pending {
                return None;
            }
            self.event = None;
        }
        if jobs.instances.values().any(|i| i.goal == job::Goal::Stop) {
            return None;
        }
        let key = jobs
            .instances
            .keys()
            .max_by_key(|k| jobs.running_order.get(*k).map_or(u64::MAX, |&s| s))
            .cloned()?;
        self.watch_hook(&key, jobs, reactor);
        Some(key)
    }
}
