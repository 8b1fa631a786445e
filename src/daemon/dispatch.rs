//! The conductor's side of events: emitting one (and telling the
//! subscribers), carrying out what the event bus decides, and starting the
//! instance a `start on` names.

use std::rc::Rc;

use super::clients::News;
use super::events::{self, Next};
use super::{Daemon, Key};
use crate::conf::JobClass;
use crate::job::{Input, Instance};

impl Daemon {
    /// Queues an event (said with `-v`, told to the subscribers); returns
    /// its id.
    pub(super) fn emit(
        &mut self,
        name: &str,
        env: Vec<String>,
        origin: Option<Key>,
        emitter: Option<usize>,
    ) -> u64 {
        if self.clients.watching() {
            let news = News::Event {
                name: name.to_string(),
                env: env.clone(),
            };
            self.clients.publish(&news, &self.reactor);
        }
        let id = self.bus.emit(name, env, origin, emitter);
        if self.dlog.verbose {
            self.dlog.log(&format!("event {}", self.bus.describe(id)));
        }
        id
    }

    /// Carries out what the event bus decides, until it has nothing left.
    pub(super) fn process_events(&mut self) {
        while let Some(next) = self.bus.next(&self.jobs) {
            match next {
                Next::Done(key) => self.feed([(key, Input::EventDone)]),
                Next::Stop(key, env) => self.feed([(key, Input::Stop(env))]),
                Next::Start(s) => self.start_by_events(&s.class, &s.contributing, s.env),
                Next::Finished(fin) => self.finish(fin),
            }
        }
    }

    /// `start on` became true: start (or find) the instance the events name.
    fn start_by_events(&mut self, class: &Rc<JobClass>, contributing: &[u64], env: Vec<String>) {
        if self.shutdown.active && self.shutdown.event.is_none() {
            return;
        }
        let key = match self.jobs.instance_for(class, &env) {
            Ok(Some(key)) => key,
            Ok(None) => return, // already wanted
            Err(msg) => return self.dlog.log(&msg),
        };
        self.add_instance(&key, class);
        self.bus.hold_for(&key, contributing, events::Hold::Started);
        let _ = self.drive(&key, Input::Start(env));
    }

    /// Makes the instance `key` of `class` (with its own `stop on` state)
    /// unless it exists.
    pub(super) fn add_instance(&mut self, key: &Key, class: &Rc<JobClass>) {
        if !self.jobs.instances.contains_key(key) {
            let inst = Instance::new(&key.0, &key.1, class.clone(), Vec::new());
            self.bus.add_instance(key, class);
            self.jobs.add_instance(key.clone(), inst);
        }
    }

    /// Carries out what a probe timer asks: a verdict, or a command
    /// probe's process to spawn (as the job's main process would be, with
    /// its output in the job's log).
    pub(super) fn probe_next(&mut self, next: Option<super::probes::Next>) {
        use super::probes::Next;
        match next {
            None => {}
            Some(Next::Told(t)) => self.told(Some(t)),
            Some(Next::Exec(key, role, cmd)) => {
                let (host, reactor, dlog) = (&self.host, &self.reactor, &self.dlog);
                let spawned = self
                    .jobs
                    .probe_launch(&key, &cmd, &mut self.sys)
                    .and_then(|l| self.output.spawn(l, host, reactor, dlog));
                match spawned {
                    Ok(pid) => self.probes.exec_started(key, role, pid),
                    Err(e) => {
                        let error = format!("unable to run: {e}");
                        let t = self.probes.exec_failed(key, role, error, &self.reactor);
                        self.told(t);
                    }
                }
            }
        }
    }

    /// Carries out a probe's verdict: the instance is ready, or unhealthy
    /// (stopped and respawned by its machine), and `healthy`/`unhealthy`
    /// are emitted as events a job can `start on`.
    pub(super) fn told(&mut self, told: Option<super::probes::Told>) {
        use crate::health::Verdict;
        let Some((key, role, verdict)) = told else {
            return;
        };
        let env = vec![format!("JOB={}", key.0), format!("INSTANCE={}", key.1)];
        if self.clients.watching() {
            let (state, error) = match &verdict {
                Verdict::Same => ("same", None),
                Verdict::Ready => ("ready", None),
                Verdict::Healthy => ("healthy", None),
                Verdict::Unhealthy { failures, error } => {
                    let s = if *failures == 1 { "" } else { "s" };
                    ("unhealthy", Some(format!("{failures} failure{s}: {error}")))
                }
            };
            let news = News::Health {
                key: key.clone(),
                probe: role.name(),
                state,
                error,
            };
            self.clients.publish(&news, &self.reactor);
        }
        match verdict {
            Verdict::Same => {}
            Verdict::Ready => self.feed([(key, Input::ProbeReady)]),
            Verdict::Healthy => {
                self.dlog
                    .log(&format!("{}: healthy ({} probe)", label(&key), role.name()));
                self.emit("healthy", env, None, None);
            }
            Verdict::Unhealthy { failures, error } => {
                let s = if failures == 1 { "" } else { "s" };
                let error = format!("{failures} failure{s}: {error}");
                self.dlog
                    .log(&format!("{}: unhealthy ({error})", label(&key)));
                let mut env = env;
                env.push(format!("ERROR={error}"));
                self.emit("unhealthy", env, None, None);
                self.feed([(key, Input::Unhealthy { error })]);
            }
        }
    }
}

/// `web` / `web (inst)`.
fn label(key: &Key) -> String {
    if key.1.is_empty() {
        key.0.clone()
    } else {
        format!("{} ({})", key.0, key.1)
    }
}
