//! The event bus: the queue of events, every job's `start on` and every
//! instance's `stop on` matcher, and the events instances hold (reference
//! section 5). It does no I/O and drives no job: it returns decisions (an
//! instance to stop, a job to start, an event that finished) for the
//! conductor to carry out.
//!
//! An event is *handled* once every instance's `stop on` and then every
//! job's `start on` has seen it. It *finishes* once it is handled and
//! nothing holds it: no half-matched expression, no job it started that is
//! not yet running (a task: not yet finished), no job it stopped that is
//! not yet stopped. Then `emit` gets its answer, a job blocked on its own
//! `starting`/`stopping` event moves on, and if anything it affected
//! failed, `NAME/failed` is emitted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::jobs::{class_vars, Change, JobTable};
use super::Key;
use crate::conf::JobClass;
use crate::event::index::Matchers;
use crate::event::matcher::{EventRef, Matcher};
use crate::job::{Goal, Instance, State};

struct Event {
    name: String,
    env: Vec<String>,
    holds: u32,
    handled: bool,
    failed: bool,
    /// Clients waiting for it to finish (`emit` without `--no-wait`).
    emitters: Vec<usize>,
    /// A blocking job event: the instance waiting for it.
    origin: Option<Key>,
}

/// Why an instance holds an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// The event started it: released when it runs (a task: finishes).
    Started,
    /// The event stopped it: released when it has stopped.
    Stopped,
}

/// An event that finished: who waited for it, and the `NAME/failed` event
/// it emitted, if it failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Finished {
    pub emitters: Vec<usize>,
    pub failed: bool,
    pub emitted: Option<u64>,
}

/// What the bus has to be done next, one decision at a time.
pub(super) enum Next {
    /// The instance's blocking job event finished: it moves on.
    Done(Key),
    /// The event being handled stops this instance, with these variables.
    Stop(Key, Vec<String>),
    /// The event being handled makes this job's `start on` true.
    Start(Start),
    /// These events finished: their emitters are answered.
    Finished(Vec<Finished>),
}

/// Where the bus is in handling one event: every instance's `stop on`
/// first (each stop carried out before the next), then every job's `start
/// on`, as they are once the stops are done.
enum Handling {
    Stops {
        id: u64,
        stops: VecDeque<(Key, Vec<String>)>,
        finished: Vec<Finished>,
    },
    Starts {
        id: u64,
        starts: VecDeque<Start>,
        /// What the last start's matcher held, released once the job
        /// holds what it is to hold (after the conductor started it).
        release: Vec<u64>,
    },
}

/// A `start on` that became true: the job, the events that made it and
/// their variables, and what its matcher held, to release once the job
/// holds what it is to hold.
pub(super) struct Start {
    pub class: Rc<JobClass>,
    pub contributing: Vec<u64>,
    pub env: Vec<String>,
    released: Vec<u64>,
}

#[derive(Default)]
pub(super) struct EventBus {
    events: BTreeMap<u64, Event>,
    next_event: u64,
    queue: VecDeque<u64>,
    /// Instances whose blocking job event finished (EventDone to deliver).
    done: VecDeque<Key>,
    /// By job name (shared by the index: one copy of each name).
    start_matchers: Matchers<Rc<str>>,
    stop_matchers: Matchers<Key>,
    /// Events an instance holds until it gets where they sent it.
    blocking: HashMap<Key, Vec<(u64, Hold)>>,
    /// The event being handled, if any.
    handling: Option<Handling>,
}

impl EventBus {
    /// Events emitted since the daemon started (a re-exec keeps the count).
    pub fn emitted(&self) -> u64 {
        self.next_event
    }

    /// Queues an event; returns its id.
    pub fn emit(
        &mut self,
        name: &str,
        env: Vec<String>,
        origin: Option<Key>,
        emitter: Option<usize>,
    ) -> u64 {
        self.next_event += 1;
        let id = self.next_event;
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
        self.queue.push_back(id);
        id
    }

    /// `NAME VAR=VALUE…` of a live event, as `-v` logs it.
    pub fn describe(&self, id: u64) -> String {
        match self.events.get(&id) {
            Some(e) if e.env.is_empty() => e.name.clone(),
            Some(e) => format!("{} {}", e.name, e.env.join(" ")),
            None => String::new(),
        }
    }

    /// What to do next: the rest of the event being handled; else the
    /// instances whose job event finished; else the next queued event.
    /// Every decision is carried out before the next is asked for: what
    /// the bus decides next sees the jobs as the last one left them.
    pub fn next(&mut self, jobs: &JobTable) -> Option<Next> {
        loop {
            match self.handling.take() {
                Some(Handling::Stops {
                    id,
                    mut stops,
                    finished,
                }) => {
                    if let Some((key, env)) = stops.pop_front() {
                        self.handling = Some(Handling::Stops {
                            id,
                            stops,
                            finished,
                        });
                        return Some(Next::Stop(key, env));
                    }
                    let starts = self.offer_start(id, jobs).into();
                    self.handling = Some(Handling::Starts {
                        id,
                        starts,
                        release: Vec::new(),
                    });
                    if !finished.is_empty() {
                        return Some(Next::Finished(finished));
                    }
                }
                Some(Handling::Starts {
                    id,
                    starts,
                    release,
                }) if !release.is_empty() => {
                    let mut finished = Vec::new();
                    self.release_all(release, &mut finished);
                    self.handling = Some(Handling::Starts {
                        id,
                        starts,
                        release: Vec::new(),
                    });
                    if !finished.is_empty() {
                        return Some(Next::Finished(finished));
                    }
                }
                Some(Handling::Starts { id, mut starts, .. }) => {
                    let Some(mut start) = starts.pop_front() else {
                        let finished = self.handled(id);
                        if finished.is_empty() {
                            continue;
                        }
                        return Some(Next::Finished(finished));
                    };
                    let release = std::mem::take(&mut start.released);
                    self.handling = Some(Handling::Starts {
                        id,
                        starts,
                        release,
                    });
                    return Some(Next::Start(start));
                }
                None => {
                    if let Some(key) = self.done.pop_front() {
                        return Some(Next::Done(key));
                    }
                    let id = self.queue.pop_front()?;
                    let (stops, finished) = self.offer_stop(id, jobs);
                    self.handling = Some(Handling::Stops {
                        id,
                        stops: stops.into(),
                        finished,
                    });
                }
            }
        }
    }

    /// Whether nothing waits in the queue.
    pub fn is_settled(&self) -> bool {
        self.handling.is_none() && self.queue.is_empty() && self.done.is_empty()
    }

    /// Whether an event is still around (queued, being handled or held).
    pub fn pending(&self, id: u64) -> bool {
        self.events.contains_key(&id)
    }

    fn hold(&mut self, id: u64, n: u32) {
        if let Some(e) = self.events.get_mut(&id) {
            e.holds += n;
        }
    }

    /// `id` no longer holds: it may finish.
    pub fn release(&mut self, id: u64, failed: bool) -> Vec<Finished> {
        if let Some(e) = self.events.get_mut(&id) {
            e.holds = e.holds.saturating_sub(1);
            e.failed |= failed;
        }
        let mut out = Vec::new();
        self.maybe_finish(id, &mut out);
        out
    }

    /// Releases each of `ids` once.
    fn release_all(&mut self, ids: Vec<u64>, out: &mut Vec<Finished>) {
        for id in ids {
            out.extend(self.release(id, false));
        }
    }

    fn maybe_finish(&mut self, id: u64, out: &mut Vec<Finished>) {
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
        let emitted = (e.failed && !e.name.ends_with("/failed"))
            .then(|| self.emit(&format!("{}/failed", e.name), e.env.clone(), None, None));
        if let Some(key) = e.origin {
            self.done.push_back(key);
        }
        out.push(Finished {
            emitters: e.emitters,
            failed: e.failed,
            emitted,
        });
    }

    /// Offers an event to every instance's `stop on` (only to those that
    /// wait for an event of its name). Returns the instances to stop, with
    /// the variables of the events that stop them, and what finished.
    fn offer_stop(&mut self, id: u64, jobs: &JobTable) -> (Vec<(Key, Vec<String>)>, Vec<Finished>) {
        let mut stops = Vec::new();
        let mut finished = Vec::new();
        let Some(e) = self.events.get(&id) else {
            return (stops, finished);
        };
        let (name, env) = (e.name.clone(), e.env.clone());
        let ev = EventRef {
            id,
            name: &name,
            env: &env,
        };
        let keys = self.stop_matchers.wanting(&name);
        for key in keys {
            let Some(inst) = jobs.instances.get(&key) else {
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
            if inst.goal != Goal::Stop {
                let stop_env = self.event_env(&contributing, "UPSTART_STOP_EVENTS");
                self.hold_for(&key, &contributing, Hold::Stopped);
                stops.push((key, stop_env));
            }
            self.release_all(released, &mut finished);
        }
        (stops, finished)
    }

    /// Offers an event to every job's `start on` (only to those that wait
    /// for an event of its name). Returns the jobs it starts; what each
    /// one's matcher held is released by `release_all` once the job holds
    /// its events.
    fn offer_start(&mut self, id: u64, jobs: &JobTable) -> Vec<Start> {
        let mut starts = Vec::new();
        let Some(e) = self.events.get(&id) else {
            return starts;
        };
        let (name, env) = (e.name.clone(), e.env.clone());
        let ev = EventRef {
            id,
            name: &name,
            env: &env,
        };
        let names = self.start_matchers.wanting(&name);
        for job in names {
            let Some(class) = jobs.classes.get(&*job).cloned() else {
                continue;
            };
            let vars = class_vars(&class);
            let Some(m) = self.start_matchers.get_mut(&*job) else {
                continue;
            };
            let (holds, fired) = m.offer_and_fire(&ev, &vars);
            self.hold(id, holds);
            let Some((contributing, released)) = fired else {
                continue;
            };
            let env = self.event_env(&contributing, "UPSTART_EVENTS");
            starts.push(Start {
                class,
                contributing,
                env,
                released,
            });
        }
        starts
    }

    /// The event has been offered to every matcher.
    fn handled(&mut self, id: u64) -> Vec<Finished> {
        if let Some(e) = self.events.get_mut(&id) {
            e.handled = true;
        }
        let mut out = Vec::new();
        self.maybe_finish(id, &mut out);
        out
    }

    /// An instance holds these events until it gets where they sent it.
    pub fn hold_for(&mut self, key: &Key, ids: &[u64], why: Hold) {
        for &id in ids {
            self.hold(id, 1);
            self.blocking
                .entry(key.clone())
                .or_default()
                .push((id, why));
        }
    }

    /// The variables of the given events, in order, and `LIST_NAME` naming
    /// them (`UPSTART_EVENTS=a b`).
    pub fn event_env(&self, ids: &[u64], list_name: &str) -> Vec<String> {
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

    /// After an instance moved: release the events it held that are done.
    pub fn check_blocked(&mut self, key: &Key, inst: Option<&Instance>) -> Vec<Finished> {
        let mut out = Vec::new();
        let (Some(list), Some(inst)) = (self.blocking.get(key), inst) else {
            return out;
        };
        if list.is_empty() {
            return out;
        }
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
            return out;
        }
        if keep.is_empty() {
            self.blocking.remove(key);
        } else {
            self.blocking.insert(key.clone(), keep);
        }
        for (id, failed) in release {
            out.extend(self.release(id, failed));
        }
        out
    }

    /// A new instance gets its own `stop on` state.
    pub fn add_instance(&mut self, key: &Key, class: &JobClass) {
        if let Some(expr) = &class.stop_on {
            self.stop_matchers.insert(key.clone(), Matcher::new(expr));
        }
    }

    /// An instance is gone: release everything it held.
    pub fn instance_gone(&mut self, key: &Key, failed: bool) -> Vec<Finished> {
        let mut out = Vec::new();
        if let Some(mut m) = self.stop_matchers.remove(key) {
            self.release_all(m.reset(), &mut out);
        }
        for (id, _) in self.blocking.remove(key).unwrap_or_default() {
            out.extend(self.release(id, failed));
        }
        out
    }

    /// A job's definition changed (`old` was in force): its `start on`
    /// state is made anew when its expression changed, releasing what the
    /// old one held.
    pub fn set_start_matcher(&mut self, old: Option<&JobClass>, class: &JobClass) -> Vec<Finished> {
        let mut out = Vec::new();
        let prev = self.start_matchers.remove(class.name.as_str());
        let same = prev.is_some() && old.is_some_and(|c| c.start_on == class.start_on);
        if same {
            if let Some(m) = prev {
                self.start_matchers.insert(class.name.as_str().into(), m);
            }
            return out;
        }
        if let Some(mut m) = prev {
            self.release_all(m.reset(), &mut out);
        }
        if let Some(expr) = &class.start_on {
            self.start_matchers
                .insert(class.name.as_str().into(), Matcher::new(expr));
        }
        out
    }

    /// What a rescan changed: the `start on` state of each changed job
    /// made anew (where its expression changed), of each gone job dropped.
    pub fn reload(&mut self, changed: &[Change], gone: &[String]) -> Vec<Finished> {
        let mut out = Vec::new();
        for (old, new) in changed {
            out.extend(self.set_start_matcher(old.as_deref(), new));
        }
        for job in gone {
            out.extend(self.drop_start_matcher(job));
        }
        out
    }

    /// A job is gone: so is its `start on` state.
    pub fn drop_start_matcher(&mut self, job: &str) -> Vec<Finished> {
        let mut out = Vec::new();
        if let Some(mut m) = self.start_matchers.remove(job) {
            self.release_all(m.reset(), &mut out);
        }
        out
    }

    /// What a job with no running instance waits for, if anything.
    pub fn waiting_for(&self, job: &str) -> Option<String> {
        self.start_matchers.get(job).and_then(Matcher::pending)
    }

    /// What an instance's `stop on` holds (for the handover).
    pub fn stop_held(&self, key: &Key) -> Option<Vec<Option<u64>>> {
        self.stop_matchers.get(key).map(Matcher::held)
    }

    /// What a re-exec hands across of this part.
    pub fn saved(&self) -> Saved {
        Saved {
            start_matchers: self
                .start_matchers
                .iter()
                .map(|(n, m)| (n.to_string(), m.held()))
                .collect(),
            events: self
                .events
                .iter()
                .map(|(&id, e)| SavedEvent {
                    id,
                    name: e.name.clone(),
                    env: e.env.clone(),
                    holds: e.holds,
                    handled: e.handled,
                    failed: e.failed,
                    emitters: e.emitters.clone(),
                    origin: e.origin.clone(),
                })
                .collect(),
            next_event: self.next_event,
            event_queue: self.queue.iter().copied().collect(),
            event_done: self.done.iter().cloned().collect(),
            blocking: self
                .blocking
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().map(|&(id, h)| (id, h == Hold::Started)).collect(),
                    )
                })
                .collect(),
        }
    }

    /// This part as a previous image left it: every expression of the
    /// jobs (`classes`) and instances gets its matcher, holding what the
    /// state says it held (`stop_held`, by instance).
    pub fn restore(
        &mut self,
        s: Saved,
        classes: &BTreeMap<String, Rc<JobClass>>,
        instances: &BTreeMap<Key, Box<Instance>>,
        stop_held: &dyn Fn(&Key) -> Option<Vec<Option<u64>>>,
    ) -> Result<(), String> {
        let held: HashMap<&str, &Vec<Option<u64>>> = s
            .start_matchers
            .iter()
            .map(|(n, held)| (n.as_str(), held))
            .collect();
        for (name, class) in classes {
            let Some(expr) = &class.start_on else {
                continue;
            };
            let mut m = Matcher::new(expr);
            if let Some(held) = held.get(name.as_str()) {
                if !m.restore_held(held) {
                    return Err(format!("job {name}: its start on state does not fit"));
                }
            }
            self.start_matchers.insert(name.as_str().into(), m);
        }
        for (key, i) in instances {
            let Some(expr) = &i.class.stop_on else {
                continue;
            };
            let mut m = Matcher::new(expr);
            if let Some(held) = stop_held(key) {
                if !m.restore_held(&held) {
                    return Err(format!("{}: its stop on state does not fit", i.label()));
                }
            }
            self.stop_matchers.insert(key.clone(), m);
        }
        for e in s.events {
            self.events.insert(
                e.id,
                Event {
                    name: e.name,
                    env: e.env,
                    holds: e.holds,
                    handled: e.handled,
                    failed: e.failed,
                    emitters: e.emitters,
                    origin: e.origin,
                },
            );
        }
        self.next_event = s.next_event;
        self.queue = VecDeque::from(s.event_queue);
        self.done = VecDeque::from(s.event_done);
        for (key, held) in s.blocking {
            let held = held
                .into_iter()
                .map(|(id, started)| {
                    (
                        id,
                        if started {
                            Hold::Started
                        } else {
                            Hold::Stopped
                        },
                    )
                })
                .collect();
            self.blocking.insert(key, held);
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn start_matcher(&self, job: &str) -> Option<&Matcher> {
        self.start_matchers.get(job)
    }
}

/// This part in the re-exec format (flattened into the handover).
#[derive(Serialize, Deserialize)]
pub(super) struct Saved {
    start_matchers: Vec<(String, Vec<Option<u64>>)>,
    events: Vec<SavedEvent>,
    next_event: u64,
    event_queue: Vec<u64>,
    event_done: Vec<Key>,
    blocking: Vec<(Key, Vec<(u64, bool)>)>,
}

#[derive(Serialize, Deserialize)]
struct SavedEvent {
    id: u64,
    name: String,
    env: Vec<String>,
    holds: u32,
    handled: bool,
    failed: bool,
    emitters: Vec<usize>,
    origin: Option<Key>,
}
