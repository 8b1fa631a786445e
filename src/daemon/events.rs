//! Events in the daemon: the queue, `start on` / `stop on` matching, job
//! events, holding an event until what it started or stopped got there, and
//! the boot sequence (reference section 5).
//!
//! An event is *handled* once every instance's `stop on` and then every
//! job's `start on` has seen it. It *finishes* once it is handled and
//! nothing holds it: no half-matched expression, no job it started that is
//! not yet running (a task: not yet finished), no job it stopped that is
//! not yet stopped. Then `emit` gets its answer, a job blocked on its own
//! `starting`/`stopping` event moves on, and if anything it affected
//! failed, `NAME/failed` is emitted.

use super::{Daemon, Key};
use crate::conf::JobClass;
use crate::control::Response;
use crate::event::expand::expand;
use crate::event::matcher::{EventRef, Matcher};
use crate::job::{Exit, Failure, Goal, Input, Instance, JobEvent, State};

pub(super) struct Event {
    pub name: String,
    pub env: Vec<String>,
    pub(super) holds: u32,
    pub(super) handled: bool,
    pub(super) failed: bool,
    /// Clients waiting for it to finish (`emit` without `--no-wait`).
    pub(super) emitters: Vec<usize>,
    /// A blocking job event: the instance waiting for it.
    pub(super) origin: Option<Key>,
}

/// Why an instance holds an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// The event started it: released when it runs (a task: finishes).
    Started,
    /// The event stopped it: released when it has stopped.
    Stopped,
}

/// The events Ubuntu's boot emitted, in order, so that real job files start
/// unchanged.
pub(super) fn boot_events(runlevel: &str) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = vec![
        ("startup".into(), vec![]),
        ("filesystem".into(), vec![]),
        ("local-filesystems".into(), vec![]),
        ("remote-filesystems".into(), vec![]),
        ("virtual-filesystems".into(), vec![]),
    ];
    let mut ifaces = vec!["lo".to_string()];
    ifaces.extend(up_interfaces().into_iter().filter(|i| i != "lo"));
    for iface in ifaces {
        let method = if iface == "lo" { "loopback" } else { "manual" };
        v.push((
            "net-device-up".into(),
            vec![
                format!("IFACE={iface}"),
                format!("LOGICAL={iface}"),
                "ADDRFAM=inet".into(),
                format!("METHOD={method}"),
            ],
        ));
    }
    v.push(("static-network-up".into(), vec![]));
    v.push((
        "runlevel".into(),
        vec![format!("RUNLEVEL={runlevel}"), "PREVLEVEL=N".into()],
    ));
    v
}

/// Network interfaces whose link is up, from /sys.
fn up_interfaces() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let state = std::fs::read_to_string(e.path().join("operstate")).unwrap_or_default();
        let flags = std::fs::read_to_string(e.path().join("flags")).unwrap_or_default();
        let up_flag = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
            .map(|f| f & 1 == 1)
            .unwrap_or(false);
        if state.trim() == "up" || (name != "lo" && up_flag && state.trim() == "unknown") {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// `KEY=VALUE` entries a job's `start on` patterns may expand (its `env`
/// stanzas: an improvement over Upstart 1.13, which expanded none).
fn class_vars(class: &JobClass) -> Vec<String> {
    class
        .env
        .iter()
        .filter(|e| e.contains('='))
        .cloned()
        .collect()
}

/// The variables of a job event (reference 5.6).
pub(super) fn job_event_env(
    inst: &Instance,
    event: JobEvent,
    failure: Option<&Failure>,
    job_env: &[(String, String)],
) -> Vec<String> {
    let mut env = vec![
        format!("JOB={}", inst.job),
        format!("INSTANCE={}", inst.name),
    ];
    if matches!(event, JobEvent::Stopping | JobEvent::Stopped) {
        match failure {
            None => env.push("RESULT=ok".into()),
            Some(f) => {
                env.push("RESULT=failed".into());
                env.push(format!("PROCESS={}", f.process.name()));
                if let Some(var) = f
                    .exit
                    .filter(|&e| e != Exit::Code(0))
                    .and_then(Exit::event_var)
                {
                    env.push(var);
                }
            }
        }
    }
    for name in &inst.class.export {
        if env
            .iter()
            .any(|e| e.split_once('=').map(|(k, _)| k) == Some(name.as_str()))
        {
            continue; // JOB, INSTANCE, RESULT… cannot be overridden
        }
        if let Some((_, v)) = job_env.iter().rev().find(|(k, _)| k == name) {
            env.push(format!("{name}={v}"));
        }
    }
    env
}

impl Daemon {
    /// Queues an event; returns its id.
    pub(super) fn emit(
        &mut self,
        name: &str,
        env: Vec<String>,
        origin: Option<Key>,
        emitter: Option<usize>,
    ) -> u64 {
        self.next_event += 1;
        let id = self.next_event;
        if self.verbose {
            let vars = if env.is_empty() {
                String::new()
            } else {
                format!(" {}", env.join(" "))
            };
            self.log(&format!("event {name}{vars}"));
        }
        self.events.insert(
            id,
            Event {
                name: name.to_string(),
                env,
                holds: 0,
                handled: false,
                failed: false,
                emitters: emitter.into_iter().collect(),
                origin,
            },
        );
        self.event_queue.push_back(id);
        id
    }

    /// A job event from an instance's `Emit` action.
    pub(super) fn emit_job_event(
        &mut self,
        key: &Key,
        event: JobEvent,
        blocking: bool,
        failure: Option<Failure>,
    ) {
        let Some(inst) = self.instances.get(key) else {
            return;
        };
        let env = job_event_env(inst, event, failure.as_ref(), &self.job_env(inst));
        self.emit(event.name(), env, blocking.then(|| key.clone()), None);
    }

    /// Handles queued events and delivers what finished events owe, until
    /// nothing is left to do.
    pub(super) fn process_events(&mut self) {
        loop {
            if let Some(key) = self.event_done.pop_front() {
                if self.instances.contains_key(&key) {
                    let _ = self.drive(&key, Input::EventDone);
                }
                continue;
            }
            let Some(id) = self.event_queue.pop_front() else {
                break;
            };
            self.handle_event(id);
        }
    }

    fn hold(&mut self, id: u64, n: u32) {
        if let Some(e) = self.events.get_mut(&id) {
            e.holds += n;
        }
    }

    pub(super) fn release(&mut self, id: u64, failed: bool) {
        if let Some(e) = self.events.get_mut(&id) {
            e.holds = e.holds.saturating_sub(1);
            e.failed |= failed;
        }
        self.maybe_finish(id);
    }

    fn maybe_finish(&mut self, id: u64) {
        let done = self
            .events
            .get(&id)
            .is_some_and(|e| e.handled && e.holds == 0);
        if !done {
            return;
        }
        let Some(e) = self.events.remove(&id) else {
            return;
        };
        if e.failed && !e.name.ends_with("/failed") {
            self.emit(&format!("{}/failed", e.name), e.env.clone(), None, None);
        }
        let answer = if e.failed {
            Response::Error {
                message: "Event failed".into(),
            }
        } else {
            Response::Ok {
                instances: Vec::new(),
            }
        };
        for client in e.emitters {
            self.reply(client, &answer);
        }
        if let Some(key) = e.origin {
            self.event_done.push_back(key);
        }
    }

    /// Whether an event is still around (queued, being handled or held).
    pub(super) fn event_pending(&self, id: u64) -> bool {
        self.events.contains_key(&id)
    }

    fn handle_event(&mut self, id: u64) {
        let Some(e) = self.events.get(&id) else {
            return;
        };
        let (name, env) = (e.name.clone(), e.env.clone());
        let ev = EventRef {
            id,
            name: &name,
            env: &env,
        };

        // Every instance's `stop on` first, then every job's `start on`:
        // a job with `start on foo` and `stop on foo` is restarted by foo.
        // Only expressions waiting for an event of this name are offered it
        // (and only then are their variables gathered).
        let keys: Vec<Key> = self
            .stop_matchers
            .iter()
            .filter(|(_, m)| m.wants(&name))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(inst) = self.instances.get(&key) else {
                continue;
            };
            let mut vars: Vec<String> = class_vars(&inst.class);
            vars.extend(inst.env.iter().cloned());
            let Some(m) = self.stop_matchers.get_mut(&key) else {
                continue;
            };
            let (holds, fired) = m.offer_and_fire(&ev, &vars);
            self.hold(id, holds);
            let Some((contributing, released)) = fired else {
                continue;
            };
            let goal = self.instances.get(&key).map(|i| i.goal);
            if goal.is_some_and(|g| g != Goal::Stop) {
                let stop_env = self.event_env(&contributing, "UPSTART_STOP_EVENTS");
                for &c in &contributing {
                    self.hold(c, 1);
                    self.blocking
                        .entry(key.clone())
                        .or_default()
                        .push((c, Hold::Stopped));
                }
                let _ = self.drive(&key, Input::Stop(stop_env));
            }
            for r in released {
                self.release(r, false);
            }
        }

        let jobs: Vec<String> = self
            .start_matchers
            .iter()
            .filter(|(_, m)| m.wants(&name))
            .map(|(k, _)| k.clone())
            .collect();
        for job in jobs {
            let Some(class) = self.classes.get(&job).cloned() else {
                continue;
            };
            let vars = class_vars(&class);
            let Some(m) = self.start_matchers.get_mut(&job) else {
                continue;
            };
            let (holds, fired) = m.offer_and_fire(&ev, &vars);
            self.hold(id, holds);
            let Some((contributing, released)) = fired else {
                continue;
            };
            self.start_by_events(&class, &contributing);
            for r in released {
                self.release(r, false);
            }
        }

        if let Some(e) = self.events.get_mut(&id) {
            e.handled = true;
        }
        self.maybe_finish(id);
    }

    /// The variables of the given events, in order, and `LIST_NAME` naming
    /// them (`UPSTART_EVENTS=a b`).
    fn event_env(&self, ids: &[u64], list_name: &str) -> Vec<String> {
        let mut env = Vec::new();
        let mut names = Vec::new();
        for id in ids {
            if let Some(e) = self.events.get(id) {
                env.extend(e.env.iter().cloned());
                names.push(e.name.clone());
            }
        }
        env.push(format!("{list_name}={}", names.join(" ")));
        env
    }

    /// `start on` became true: start (or find) the instance the events name.
    fn start_by_events(&mut self, class: &std::rc::Rc<JobClass>, contributing: &[u64]) {
        if self.shutting_down && self.shutdown_event.is_none() {
            return;
        }
        let start_env = self.event_env(contributing, "UPSTART_EVENTS");
        let name = if class.instance.is_empty() {
            String::new()
        } else {
            let mut scope = class_vars(class);
            scope.extend(start_env.iter().cloned());
            match expand(&class.instance, &scope) {
                Ok(n) => n,
                Err(e) => {
                    self.log(&format!("Failed to obtain {} instance: {e}", class.name));
                    return;
                }
            }
        };
        let key = (class.name.clone(), name.clone());
        match self.instances.get(&key) {
            Some(inst) if inst.goal != Goal::Stop => return, // already wanted
            Some(_) => {}
            None => {
                let inst = Instance::new(&class.name, &name, class.clone(), Vec::new());
                self.add_instance(key.clone(), inst);
            }
        }
        for &c in contributing {
            self.hold(c, 1);
            self.blocking
                .entry(key.clone())
                .or_default()
                .push((c, Hold::Started));
        }
        let _ = self.drive(&key, Input::Start(start_env));
    }

    /// Registers a new instance, with its own `stop on` state.
    pub(super) fn add_instance(&mut self, key: Key, inst: Instance) {
        if let Some(expr) = &inst.class.stop_on {
            self.stop_matchers.insert(key.clone(), Matcher::new(expr));
        }
        self.instances.insert(key, inst);
    }

    /// After an instance moved: release the events it held that are done.
    pub(super) fn check_blocked(&mut self, key: &Key) {
        let Some(list) = self.blocking.get(key) else {
            return;
        };
        if list.is_empty() {
            return;
        }
        let Some(inst) = self.instances.get(key) else {
            return;
        };
        let failed = inst.failed.is_some() && inst.goal == Goal::Stop;
        let running = !inst.class.task && inst.state == State::Running && inst.goal == Goal::Start;
        let restarted = inst.goal != Goal::Stop;
        let mut release = Vec::new();
        let mut keep = Vec::new();
        for &(id, hold) in list {
            match hold {
                Hold::Started if failed => release.push((id, true)),
                Hold::Started if running => release.push((id, false)),
                Hold::Stopped if restarted => release.push((id, false)),
                _ => keep.push((id, hold)),
            }
        }
        if release.is_empty() {
            return;
        }
        self.blocking.insert(key.clone(), keep);
        for (id, failed) in release {
            self.release(id, failed);
        }
    }

    /// An instance is gone: release everything it held.
    pub(super) fn instance_gone(&mut self, inst: &Instance) {
        let key = (inst.job.clone(), inst.name.clone());
        if let Some(mut m) = self.stop_matchers.remove(&key) {
            for id in m.reset() {
                self.release(id, false);
            }
        }
        let failed = inst.failed.is_some();
        for (id, _) in self.blocking.remove(&key).unwrap_or_default() {
            self.release(id, failed);
        }
    }

    /// (Re)builds a job's `start on` state, releasing what the old one held.
    pub(super) fn set_start_matcher(&mut self, class: &JobClass) {
        let old = self.start_matchers.remove(&class.name);
        let same = old.is_some()
            && self
                .classes
                .get(&class.name)
                .map(|c| c.start_on == class.start_on)
                .unwrap_or(false);
        if same {
            if let Some(m) = old {
                self.start_matchers.insert(class.name.clone(), m);
            }
            return;
        }
        if let Some(mut m) = old {
            for id in m.reset() {
                self.release(id, false);
            }
        }
        if let Some(expr) = &class.start_on {
            self.start_matchers
                .insert(class.name.clone(), Matcher::new(expr));
        }
    }

    /// What a job with no running instance waits for, if anything.
    pub(super) fn waiting_for(&self, job: &str) -> Option<String> {
        self.start_matchers.get(job).and_then(Matcher::pending)
    }
}
