//! The job table in the re-exec format: definitions as job-file text,
//! instances with their machine's internals, the pid map. A wire format
//! between two images, possibly of two releases: a field a later release
//! adds has a default.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{JobTable, Rest, Saved, SavedPid};
use crate::conf::{JobClass, ProcessType};
use crate::daemon::Key;
use crate::job::{
    Exit, Exited, FailedProcess, Failure, Goal, Instance, Internals, Reason, State, Waiting, Why,
};

#[derive(Serialize, Deserialize)]
pub(in crate::daemon) struct SavedInstance {
    job: String,
    name: String,
    class: usize,
    goal: String,
    state: String,
    waiting: SavedWaiting,
    pids: [Option<i32>; 5],
    group: Option<i32>,
    failed: Option<(String, Option<SavedExit>)>,
    failure_detail: Option<String>,
    env: Vec<String>,
    stop_env: Vec<String>,
    main_started: Option<Duration>,
    last_exit: Option<SavedExit>,
    respawns: u64,
    generation: u64,
    respawn_window: Option<(u64, u32)>,
    backoff: Duration,
    respawn_delay: Duration,
    timer_gen: u64,
    restart_pending: bool,
    from_pre_stop: bool,
    /// What the instance's `stop on` holds (the event bus's state).
    pub stop_matcher: Option<Vec<Option<u64>>>,
    #[serde(default)]
    why: Option<SavedWhy>,
    #[serde(default)]
    exited: Option<SavedExited>,
    /// The `health ready` probe passed, and why the main process is being
    /// stopped as unhealthy (absent before `health` existed).
    #[serde(default)]
    probe_passed: bool,
    #[serde(default)]
    unhealthy: Option<String>,
    /// The env files' values as last read (absent before `env-file`
    /// existed).
    #[serde(default)]
    env_file: Option<Vec<(String, String)>>,
}

/// Why an instance stopped ([`job::Why`](crate::job::Why)).
#[derive(Serialize, Deserialize, Clone)]
pub(in crate::daemon) struct SavedWhy {
    reason: String,
    /// The kill timeout, for `kill-timeout`.
    #[serde(default)]
    secs: u32,
    message: String,
    at: Duration,
}

/// A process exit ([`job::Exited`](crate::job::Exited)).
#[derive(Serialize, Deserialize, Clone)]
pub(in crate::daemon) struct SavedExited {
    process: String,
    exit: SavedExit,
    at: Duration,
}

/// What the table keeps of an instance at rest.
#[derive(Serialize, Deserialize)]
pub(in crate::daemon) struct SavedRest {
    key: Key,
    why: Option<SavedWhy>,
    exited: Option<SavedExited>,
    respawns: u64,
}

impl From<&Why> for SavedWhy {
    fn from(w: &Why) -> SavedWhy {
        let secs = match w.reason {
            Reason::KillTimeout { secs } => secs,
            _ => 0,
        };
        SavedWhy {
            reason: w.reason.name().to_string(),
            secs,
            message: w.message.clone(),
            at: w.at,
        }
    }
}

impl SavedWhy {
    fn restore(&self) -> Result<Why, String> {
        let reason = match self.reason.as_str() {
            "spawn" => Reason::Spawn,
            "respawn-limit" => Reason::RespawnLimit,
            "main" => Reason::Main,
            "hook" => Reason::Hook,
            "ready-timeout" => Reason::ReadyTimeout,
            "kill-timeout" => Reason::KillTimeout { secs: self.secs },
            other => return Err(format!("unknown reason {other:?}")),
        };
        Ok(Why {
            reason,
            message: self.message.clone(),
            at: self.at,
        })
    }
}

impl From<Exited> for SavedExited {
    fn from(e: Exited) -> SavedExited {
        SavedExited {
            process: e.process.name().to_string(),
            exit: e.exit.into(),
            at: e.at,
        }
    }
}

impl SavedExited {
    fn restore(&self) -> Result<Exited, String> {
        Ok(Exited {
            process: process_type(&self.process)?,
            exit: self.exit.into(),
            at: self.at,
        })
    }
}

/// The at-rest records in the re-exec format.
pub(in crate::daemon) fn save_rest(t: &JobTable) -> Vec<SavedRest> {
    t.at_rest
        .iter()
        .map(|(key, r)| SavedRest {
            key: key.clone(),
            why: r.why.as_ref().map(SavedWhy::from),
            exited: r.exited.map(SavedExited::from),
            respawns: r.respawns,
        })
        .collect()
}

/// The records with every time mapped through `f` (between the reactor's
/// clock and time since the epoch, for the state file).
pub(in crate::daemon) fn shift_rest(
    rest: &[SavedRest],
    f: &dyn Fn(Duration) -> Duration,
) -> Vec<SavedRest> {
    rest.iter()
        .map(|r| SavedRest {
            key: r.key.clone(),
            why: r.why.clone().map(|w| SavedWhy { at: f(w.at), ..w }),
            exited: r.exited.clone().map(|e| SavedExited { at: f(e.at), ..e }),
            respawns: r.respawns,
        })
        .collect()
}

/// The at-rest records of a saved table.
pub(in crate::daemon) fn rebuild_rest(saved: &[SavedRest]) -> Result<BTreeMap<Key, Rest>, String> {
    let mut out = BTreeMap::new();
    for r in saved {
        let rest = Rest {
            why: r.why.as_ref().map(SavedWhy::restore).transpose()?,
            exited: r.exited.as_ref().map(SavedExited::restore).transpose()?,
            respawns: r.respawns,
        };
        out.insert(r.key.clone(), rest);
    }
    Ok(out)
}

#[derive(Serialize, Deserialize, Clone, Copy)]
pub(in crate::daemon) enum SavedExit {
    Code(i32),
    Signal(i32),
    Unknown,
}

#[derive(Serialize, Deserialize)]
enum SavedWaiting {
    Nothing,
    Spawn(String),
    Exit(String),
    Event,
    Kill,
    Delay,
    Fork(u8),
    Stop,
    Ready,
    Probe,
    Unhealthy,
}

impl SavedInstance {
    /// The instance's key.
    pub fn key(&self) -> Key {
        crate::job::key(&self.job, &self.name)
    }
}

impl Saved {
    /// What each instance's `stop on` held (the event bus's state, saved
    /// beside the instance).
    pub fn stop_held(&self) -> HashMap<Key, Vec<Option<u64>>> {
        self.instances
            .iter()
            .filter_map(|s| Some((s.key(), s.stop_matcher.clone()?)))
            .collect()
    }
}

fn process_type(name: &str) -> Result<ProcessType, String> {
    ProcessType::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| format!("unknown process {name:?}"))
}

fn goal_name(g: Goal) -> &'static str {
    match g {
        Goal::Stop => "stop",
        Goal::Start => "start",
        Goal::Respawn => "respawn",
    }
}

fn goal(name: &str) -> Result<Goal, String> {
    match name {
        "stop" => Ok(Goal::Stop),
        "start" => Ok(Goal::Start),
        "respawn" => Ok(Goal::Respawn),
        _ => Err(format!("unknown goal {name:?}")),
    }
}

fn state(name: &str) -> Result<State, String> {
    State::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("unknown state {name:?}"))
}

impl From<Exit> for SavedExit {
    fn from(e: Exit) -> SavedExit {
        match e {
            Exit::Code(c) => SavedExit::Code(c),
            Exit::Signal(s) => SavedExit::Signal(s),
            Exit::Unknown => SavedExit::Unknown,
        }
    }
}

impl From<SavedExit> for Exit {
    fn from(e: SavedExit) -> Exit {
        match e {
            SavedExit::Code(c) => Exit::Code(c),
            SavedExit::Signal(s) => Exit::Signal(s),
            SavedExit::Unknown => Exit::Unknown,
        }
    }
}

impl From<Waiting> for SavedWaiting {
    fn from(w: Waiting) -> SavedWaiting {
        match w {
            Waiting::Nothing => SavedWaiting::Nothing,
            Waiting::Spawn(p) => SavedWaiting::Spawn(p.name().into()),
            Waiting::Exit(p) => SavedWaiting::Exit(p.name().into()),
            Waiting::Event => SavedWaiting::Event,
            Waiting::Kill => SavedWaiting::Kill,
            Waiting::Delay => SavedWaiting::Delay,
            Waiting::Fork(n) => SavedWaiting::Fork(n),
            Waiting::Stop => SavedWaiting::Stop,
            Waiting::Ready => SavedWaiting::Ready,
            Waiting::Probe => SavedWaiting::Probe,
            Waiting::Unhealthy => SavedWaiting::Unhealthy,
        }
    }
}

impl SavedWaiting {
    fn restore(&self) -> Result<Waiting, String> {
        Ok(match self {
            SavedWaiting::Nothing => Waiting::Nothing,
            SavedWaiting::Spawn(p) => Waiting::Spawn(process_type(p)?),
            SavedWaiting::Exit(p) => Waiting::Exit(process_type(p)?),
            SavedWaiting::Event => Waiting::Event,
            SavedWaiting::Kill => Waiting::Kill,
            SavedWaiting::Delay => Waiting::Delay,
            SavedWaiting::Fork(n) => Waiting::Fork(*n),
            SavedWaiting::Stop => Waiting::Stop,
            SavedWaiting::Ready => Waiting::Ready,
            SavedWaiting::Probe => Waiting::Probe,
            SavedWaiting::Unhealthy => Waiting::Unhealthy,
        })
    }
}

/// The job table as the re-exec hands it across; `held` gives each
/// instance's `stop on` state.
pub(in crate::daemon) fn save(
    t: &JobTable,
    held: &dyn Fn(&Key) -> Option<Vec<Option<u64>>>,
) -> Saved {
    // Each definition once, by identity.
    let mut classes: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<*const JobClass, usize> = HashMap::new();
    let mut class_index = |c: &Rc<JobClass>| -> usize {
        *index.entry(Rc::as_ptr(c)).or_insert_with(|| {
            classes.push((c.name.clone(), crate::conf::print::to_job_file(c)));
            classes.len() - 1
        })
    };
    let in_force = t
        .classes
        .iter()
        .map(|(n, c)| (n.clone(), class_index(c)))
        .collect();
    let instances = t
        .instances
        .iter()
        .map(|(key, i)| {
            let int = i.internals();
            SavedInstance {
                job: i.job.clone(),
                name: i.name.clone(),
                class: class_index(&i.class),
                goal: goal_name(i.goal).into(),
                state: i.state.name().into(),
                waiting: i.waiting.into(),
                pids: i.pids,
                group: i.group,
                failed: i
                    .failed
                    .as_ref()
                    .map(|f| (f.process.name().to_string(), f.exit.map(SavedExit::from))),
                failure_detail: i.failure_detail.clone(),
                env: i.env.clone(),
                stop_env: i.stop_env.clone(),
                env_file: i.env_file.clone(),
                main_started: i.main_started,
                last_exit: i.last_exit.map(SavedExit::from),
                respawns: i.respawns,
                generation: i.generation,
                respawn_window: int.respawn_window,
                backoff: int.backoff,
                respawn_delay: int.respawn_delay,
                timer_gen: int.timer_gen,
                restart_pending: int.restart_pending,
                from_pre_stop: int.from_pre_stop,
                probe_passed: int.probe_passed,
                unhealthy: int.unhealthy.clone(),
                stop_matcher: held(key),
                why: i.why.as_ref().map(SavedWhy::from),
                exited: i.exited.map(SavedExited::from),
            }
        })
        .collect();
    Saved {
        classes,
        in_force,
        instances,
        pids: t
            .pids
            .iter()
            .map(|(&pid, key)| SavedPid {
                pid,
                key: key.clone(),
                identity: t.identity.get(&pid).copied(),
            })
            .collect(),
        pending_exit: t
            .pending_exit
            .iter()
            .map(|(k, &(pid, exit, start))| (k.clone(), pid, exit.into(), start))
            .collect(),
        running_order: t
            .running_order
            .iter()
            .map(|(k, &s)| (k.clone(), s))
            .collect(),
        running_seq: t.running_seq(),
        at_rest: save_rest(t),
        cpu_reaped: t.cpu_reaped.iter().map(|(k, &c)| (k.clone(), c)).collect(),
        env_table: t.env_base.table.clone(),
        env_started: t
            .env_started
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect(),
    }
}

/// Definitions in force by job name, and instances by key.
type Rebuilt = (BTreeMap<String, Rc<JobClass>>, BTreeMap<Key, Box<Instance>>);

/// The definitions and instances of a saved table, rebuilt (pure, so that
/// every format this release reads is checked in a test).
pub(in crate::daemon) fn rebuild(s: &Saved) -> Result<Rebuilt, String> {
    let mut classes = Vec::with_capacity(s.classes.len());
    for (name, text) in &s.classes {
        let c = crate::conf::parse_job(name, text.as_bytes()).map_err(|errs| {
            let first = errs.first().map(|e| e.kind.to_string()).unwrap_or_default();
            format!("job {name}: its definition does not parse back: {first}")
        })?;
        classes.push(Rc::new(c));
    }
    let class = |i: usize| {
        classes
            .get(i)
            .cloned()
            .ok_or_else(|| format!("no definition {i}"))
    };
    let mut in_force = BTreeMap::new();
    for (name, i) in &s.in_force {
        in_force.insert(name.clone(), class(*i)?);
    }
    let mut instances = BTreeMap::new();
    for s in &s.instances {
        let key = std::rc::Rc::new((s.job.clone(), s.name.clone()));
        let mut i = Instance::new(&s.job, &s.name, class(s.class)?, s.env.clone());
        i.goal = goal(&s.goal)?;
        i.state = state(&s.state)?;
        i.waiting = s.waiting.restore()?;
        i.pids = s.pids;
        i.group = s.group;
        i.failed = match &s.failed {
            None => None,
            Some((p, exit)) => Some(Failure {
                process: if p == "respawn" {
                    FailedProcess::Respawn
                } else {
                    FailedProcess::Process(process_type(p)?)
                },
                exit: exit.map(Exit::from),
            }),
        };
        i.failure_detail = s.failure_detail.clone();
        i.why = s.why.as_ref().map(SavedWhy::restore).transpose()?;
        i.exited = s.exited.as_ref().map(SavedExited::restore).transpose()?;
        i.stop_env = s.stop_env.clone();
        i.env_file = s.env_file.clone();
        i.main_started = s.main_started;
        i.last_exit = s.last_exit.map(Exit::from);
        i.respawns = s.respawns;
        i.generation = s.generation;
        i.set_internals(Internals {
            respawn_window: s.respawn_window,
            backoff: s.backoff,
            respawn_delay: s.respawn_delay,
            timer_gen: s.timer_gen,
            restart_pending: s.restart_pending,
            from_pre_stop: s.from_pre_stop,
            probe_passed: s.probe_passed,
            unhealthy: s.unhealthy.clone(),
        });
        instances.insert(key, Box::new(i));
    }
    Ok((in_force, instances))
}

impl JobTable {
    /// The table as a previous image left it.
    pub fn restore(&mut self, s: Saved) -> Result<(), String> {
        let (classes, instances) = rebuild(&s)?;
        self.classes = classes;
        self.instances = instances;
        for p in s.pids {
            self.pids.insert(p.pid, p.key);
            if let Some(ident) = p.identity {
                self.identity.insert(p.pid, ident);
            }
        }
        for (key, pid, exit, start) in s.pending_exit {
            self.pending_exit.insert(key, (pid, exit.into(), start));
        }
        self.at_rest = rebuild_rest(&s.at_rest)?;
        self.cpu_reaped = s.cpu_reaped.into_iter().collect();
        self.env_base.table = s.env_table;
        self.env_started = s.env_started.into_iter().collect();
        self.running_order = s.running_order.into_iter().collect();
        self.set_running_seq(s.running_seq);
        Ok(())
    }
}
