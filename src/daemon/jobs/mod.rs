//! The job table: every job's definition in force and where it came from,
//! every instance with its state machine, the pid map, and what is known of
//! each job process. It feeds inputs to the machines and carries out what
//! they ask of the system (through the [`Sys`] seam); what concerns other
//! parts (a timer, a job event, an instance gone, a process to spawn) it
//! returns to the conductor as [`Effect`]s, never doing it itself.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod env_table;
pub(in crate::daemon) mod saved;

use super::clients::News;
use super::Key;
use crate::conf::{JobClass, ProcessType};
use crate::confdir::{self, JobFiles};
use crate::event::expand;
use crate::job::{self, Action, Exit, Failure, Input, Instance, JobEvent, Refusal};
use crate::process::sys::Sys;
use crate::process::Ended;

/// What a step asks of the other parts, in order.
#[derive(Debug)]
pub(super) enum Effect {
    /// A line for the daemon's log.
    Log(String),
    /// Arm the instance's timer of this generation.
    Timer { gen: u64, after: Duration },
    /// Emit a job event (`blocking`: the instance waits for it to finish).
    Emit {
        name: &'static str,
        env: Vec<String>,
        blocking: bool,
    },
    /// The instance reached rest and is gone (its last state, for those
    /// who wait on it).
    Destroyed(Box<Instance>),
    /// Something for the subscribers (made only while someone watches).
    News(News),
    /// Start the instance's probe of this role (`health`).
    Probe(crate::conf::health::Role),
    /// Stop every probe of the instance.
    StopProbes,
}

/// What one input did.
#[derive(Debug, Default)]
pub(super) struct Stepped {
    pub effects: Vec<Effect>,
    /// A process to spawn: its answer (`Spawned`, `SpawnFailed`) is the
    /// next input.
    pub spawn: Option<ProcessType>,
}

/// A job's `.conf` and `.override` as a scan saw them.
type Stamps = (Option<confdir::Stamp>, Option<Option<confdir::Stamp>>);

/// Where a job's definition came from, and the stamps of its files when
/// they were last read and parsed without a problem (a rescan that finds
/// the same, settled, reads and parses them no more).
/// (The job's name is the map's key, not kept twice.)
pub(super) struct Source {
    conf: std::path::PathBuf,
    override_file: Option<std::path::PathBuf>,
    stamps: Option<Stamps>,
}

impl Source {
    fn is(&self, files: &JobFiles) -> bool {
        self.conf == files.conf && self.override_file == files.override_file
    }

    fn files(&self, name: &str) -> JobFiles {
        JobFiles {
            name: name.to_string(),
            conf: self.conf.clone(),
            override_file: self.override_file.clone(),
        }
    }
}

/// The jobs and their instances.
#[derive(Default)]
pub(super) struct JobTable {
    pub classes: BTreeMap<String, Rc<JobClass>>,
    /// Where each job's definition came from (boxed: one table slot a
    /// job, 10,000 of them).
    pub files: HashMap<String, Box<Source>>,
    pub instances: BTreeMap<Key, Box<Instance>>,
    pub pids: HashMap<i32, Key>,
    /// (start time, process group) of the pids in the map, for the state
    /// file.
    pub identity: HashMap<i32, (u64, i32)>,
    /// The effective uid of the pids in the map, for the state file.
    pub uid: HashMap<i32, u32>,
    /// Main processes of `expect fork/daemon` jobs that exited with no
    /// child to follow yet: (pid, status, start time), decided on later.
    pub pending_exit: HashMap<Key, (i32, Exit, Option<u64>)>,
    /// Why each instance at rest stopped, and its last exit, until it next
    /// starts (at most [`MAX_REST_NAMED`] named instances a job).
    pub at_rest: BTreeMap<Key, Rest>,
    /// The current problems of each job's files (shown by `status`).
    pub conf_errors: BTreeMap<String, Vec<String>>,
    /// Missing conf dirs already said (each is said again only when
    /// where it is awaited changes).
    missing_said: Vec<confdir::Missing>,
    /// CPU time of each instance's processes the daemon reaped (with what
    /// they reaped), for its costs; gone with the instance.
    pub cpu_reaped: HashMap<Key, Duration>,
    /// In which order instances reached running (a shutdown goes back).
    pub running_order: HashMap<Key, u64>,
    running_seq: u64,
    /// The pid map changed since the state file was last written.
    pub dirty: bool,
    /// What every job's environment starts from (with the global table).
    pub env_base: job::env::Base,
    /// What each instance whose own table was changed (`set-env` inside a
    /// job) was started with, for its `reset-env`.
    pub env_started: HashMap<Key, Vec<String>>,
    /// `-v`: log every goal and state change.
    pub verbose: bool,
    /// Someone subscribes: make [`Effect::News`] of every change.
    pub watched: bool,
    /// The OOM kills of each instance's cgroup already told.
    oom_told: HashMap<Key, u64>,
}

/// What the table keeps of an instance at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rest {
    pub why: Option<job::Why>,
    pub exited: Option<job::Exited>,
    pub respawns: u64,
}

/// The most at-rest records a job keeps for named instances (instance
/// names come from events and commands: without a bound, a stream of new
/// names would grow the table without end). The oldest go first.
pub(super) const MAX_REST_NAMED: usize = 32;

/// What spawning one process of an instance takes from the table: its
/// definition, its environment (reference 6.3), its label and log name.
pub(super) struct Launch {
    pub class: Rc<JobClass>,
    pub process: ProcessType,
    pub env: Vec<(String, String)>,
    /// `web` / `web (inst)`, for messages and `--log-to-stdout`.
    pub label: String,
    /// The instance's name (the job's is the class's), for JSON log lines.
    pub instance: String,
    /// Its log file's name in LOGDIR.
    pub log_name: String,
    /// What to run instead of the job file's command for `process` (a
    /// health probe's command).
    pub command: Option<crate::conf::Command>,
    /// The instance's cgroups, for the process to join before it execs.
    pub join: Option<crate::cgroup::groups::Join>,
}

impl Launch {
    /// Sets a variable, replacing the job's own.
    pub fn set_env(&mut self, name: &str, value: String) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value));
    }
}

/// What a step changed, for the subscribers: the goal or state, the
/// respawn count, why it failed.
fn news(
    key: &Key,
    inst: &Instance,
    (goal, state): (job::Goal, job::State),
    respawns: u64,
    why: Option<&job::Why>,
    effects: &mut Vec<Effect>,
) {
    if (goal, state) != (inst.goal, inst.state) {
        effects.push(Effect::News(News::State {
            key: key.clone(),
            goal: inst.goal.name(),
            from: state.name(),
            to: inst.state.name(),
            pid: inst.pid(ProcessType::Main),
        }));
    }
    if inst.respawns > respawns {
        effects.push(Effect::News(News::Respawn {
            key: key.clone(),
            respawns: inst.respawns,
        }));
    }
    if let Some(w) = inst.why.as_ref().filter(|&w| Some(w) != why) {
        effects.push(Effect::News(News::Failure {
            key: key.clone(),
            kind: w.reason.name(),
            message: w.message.clone(),
        }));
    }
}

/// The (uid, gid) a job's processes run as, when the daemon is root and
/// the job names a user; `None`: the daemon's own.
pub(super) fn job_owner(class: &JobClass, system: bool) -> Option<(u32, u32)> {
    if !system {
        return None;
    }
    let user = nix::unistd::User::from_name(class.setuid.as_deref()?)
        .ok()
        .flatten()?;
    let gid = match &class.setgid {
        Some(g) => nix::unistd::Group::from_name(g).ok().flatten()?.gid,
        None => user.gid,
    };
    Some((user.uid.as_raw(), gid.as_raw()))
}

impl JobTable {
    /// What spawning `process` of an instance takes.
    fn launch(&self, key: &Key, process: ProcessType) -> Result<Launch, String> {
        let inst = self.instances.get(key).ok_or("no such instance")?;
        Ok(Launch {
            class: inst.class.clone(),
            process,
            env: job::env::for_process(inst, Some(process), &self.env_base),
            label: inst.label(),
            instance: inst.name.clone(),
            log_name: crate::log::file_name(&key.0, &key.1),
            command: None,
            join: None,
        })
    }

    /// `launch` with the instance's cgroups made for the process to join
    /// (or why they cannot be: the spawn fails).
    fn joined(&self, key: &Key, mut launch: Launch, sys: &mut dyn Sys) -> Result<Launch, String> {
        let env: Vec<String> = launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        launch.join = sys.join_group(key, &launch.class, &env)?;
        Ok(launch)
    }

    /// Reads the instance's `env-file`s once a start, before `process`
    /// when it is the start's first (pre-start, or main without one). A
    /// failure fails the spawn when no values were ever read; a respawn
    /// (or a restart) keeps the last good ones and says why.
    fn read_env_files(
        &mut self,
        key: &Key,
        process: ProcessType,
        sys: &mut dyn Sys,
        effects: &mut Vec<Effect>,
    ) -> Result<(), String> {
        let system = self.env_base.system;
        let Some(inst) = self.instances.get_mut(key) else {
            return Ok(());
        };
        let first = if inst.class.process(ProcessType::PreStart).is_some() {
            ProcessType::PreStart
        } else {
            ProcessType::Main
        };
        if inst.class.env_files.is_empty() || process != first {
            return Ok(());
        }
        let owner = job_owner(&inst.class, system).map(|(uid, _)| uid);
        match job::env_file::read_all(&inst.class.env_files, owner, sys) {
            Ok(vars) => {
                inst.env_file = Some(vars);
                Ok(())
            }
            Err(e) if inst.env_file.is_some() => {
                effects.push(Effect::Log(format!(
                    "{}: {e}; the values last read are kept",
                    inst.label()
                )));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// What spawning a health probe's command takes: the main process's
    /// environment and set-up, its log, and the command.
    pub fn probe_launch(
        &self,
        key: &Key,
        command: &str,
        sys: &mut dyn Sys,
    ) -> Result<Launch, String> {
        let mut l = self.launch(key, ProcessType::Main)?;
        l.label = format!("{} (health probe)", l.label);
        l.command = Some(crate::conf::Command::Exec(command.to_string()));
        self.joined(key, l, sys)
    }

    /// `loaded N jobs from DIRS`, as the daemon says at start.
    pub fn loaded(&self, dirs: &[std::path::PathBuf]) -> String {
        let n = self.classes.len();
        let dirs: Vec<String> = dirs.iter().map(|p| p.display().to_string()).collect();
        let s = if n == 1 { "" } else { "s" };
        format!("loaded {n} job{s} from {}", dirs.join(", "))
    }

    pub fn new(env_base: job::env::Base, verbose: bool) -> JobTable {
        JobTable {
            env_base,
            verbose,
            ..JobTable::default()
        }
    }

    /// With the at-rest records a dead predecessor left (`host.recovered`,
    /// times since the epoch; `now`: the reactor's clock).
    pub fn with_rest(mut self, host: &super::setup::Host, now: Duration) -> JobTable {
        let since_epoch = crate::process::time::since_epoch();
        let rest = saved::shift_rest(&host.recovered, &|t| {
            now.saturating_sub(since_epoch.saturating_sub(t))
        });
        self.at_rest = saved::rebuild_rest(&rest).unwrap_or_default();
        self
    }

    /// The at-rest records for the state file, times since the epoch.
    pub fn rest_since_epoch(&self, now: Duration) -> Vec<saved::SavedRest> {
        let since_epoch = crate::process::time::since_epoch();
        saved::shift_rest(&saved::save_rest(self), &|t| {
            since_epoch.saturating_sub(now.saturating_sub(t))
        })
    }

    /// The definition in force for an instance's job (a running instance
    /// keeps its own; its next start takes this one).
    fn latest(&self, inst: &Instance) -> Rc<JobClass> {
        self.classes
            .get(&inst.job)
            .cloned()
            .unwrap_or_else(|| inst.class.clone())
    }

    /// Feeds `input` to an instance, and what follows from it, until it
    /// waits for the world: every process it asks for is spawned through
    /// `spawn` (the conductor's, which captures its output; a test's, which
    /// hands out a pid). Returns what the steps ask of the other parts, in
    /// order; refused only if `input` itself is.
    pub fn drive(
        &mut self,
        key: &Key,
        input: Input,
        now: &dyn Fn() -> Duration,
        sys: &mut dyn Sys,
        spawn: &mut dyn FnMut(Launch) -> Result<i32, String>,
    ) -> Result<Vec<Effect>, Refusal> {
        if let Input::MainPid { pid, .. } = input {
            self.spawned(key, pid); // `MAINPID=`: in the pid map from now
        }
        let mut effects = Vec::new();
        let mut next = Some(input);
        let mut first = true;
        while let Some(input) = next.take() {
            let stepped = match self.step(key, input, now(), sys) {
                Ok(s) => s,
                Err(r) if first => return Err(r),
                Err(_) => break,
            };
            first = false;
            effects.extend(stepped.effects);
            next = stepped.spawn.map(|process| {
                let launched = self
                    .read_env_files(key, process, sys, &mut effects)
                    .and_then(|()| self.launch(key, process))
                    .and_then(|l| self.joined(key, l, sys))
                    .and_then(&mut *spawn);
                match launched {
                    Ok(pid) => {
                        self.spawned(key, pid);
                        Input::Spawned { process, pid }
                    }
                    Err(error) => Input::SpawnFailed { process, error },
                }
            });
        }
        Ok(effects)
    }

    /// Feeds one input to an instance and carries out what it asks of the
    /// system, until it waits for the world or a process must be spawned.
    fn step(
        &mut self,
        key: &Key,
        input: Input,
        now: Duration,
        sys: &mut dyn Sys,
    ) -> Result<Stepped, Refusal> {
        let mut out = Stepped::default();
        let mut queue = VecDeque::from([input]);
        let mut first = true;
        while let Some(input) = queue.pop_front() {
            let Some(inst) = self.instances.get(key) else {
                break;
            };
            let latest = self.latest(inst);
            let Some(inst) = self.instances.get_mut(key) else {
                break;
            };
            let before = (inst.goal, inst.state);
            let before_news = self.watched.then(|| (inst.respawns, inst.why.clone()));
            if self.watched {
                if let Input::Exited { pid, status, .. } = &input {
                    let process = ProcessType::ALL
                        .into_iter()
                        .find(|&p| inst.pid(p) == Some(*pid));
                    out.effects.push(Effect::News(News::Exit {
                        key: key.clone(),
                        process: process.map_or("main", ProcessType::name),
                        pid: *pid,
                        exit: *status,
                    }));
                }
            }
            let actions = match inst.step(&latest, now, input) {
                Ok(a) => a,
                Err(r) if first => return Err(r),
                Err(_) => continue,
            };
            first = false;
            // Changes are logged after what the step itself logs (the
            // process exit that caused them, say).
            let (logs, rest): (Vec<Action>, Vec<Action>) = actions
                .into_iter()
                .partition(|a| matches!(a, Action::Log(_)));
            out.effects.extend(logs.into_iter().filter_map(|a| match a {
                Action::Log(m) => Some(Effect::Log(m)),
                _ => None,
            }));
            if self.verbose {
                let label = inst.label();
                if before.0.name() != inst.goal.name() {
                    out.effects.push(Effect::Log(format!(
                        "{label} goal changed from {} to {}",
                        before.0.name(),
                        inst.goal.name()
                    )));
                }
                if before.1 != inst.state {
                    out.effects.push(Effect::Log(format!(
                        "{label} state changed from {} to {}",
                        before.1.name(),
                        inst.state.name()
                    )));
                }
            }
            if let Some((respawns, why)) = before_news {
                news(key, inst, before, respawns, why.as_ref(), &mut out.effects);
            }
            for action in rest {
                self.execute(key, action, &mut queue, &mut out, sys);
            }
        }
        Ok(out)
    }

    fn execute(
        &mut self,
        key: &Key,
        action: Action,
        queue: &mut VecDeque<Input>,
        out: &mut Stepped,
        sys: &mut dyn Sys,
    ) {
        match action {
            Action::Spawn(process) => out.spawn = Some(process),
            Action::Continue { pid } => {
                let _ = sys.kill_pid(pid, libc::SIGCONT);
            }
            Action::KillGroup { pgid, signal } => {
                if sys.kill_group(pgid, signal).is_err() {
                    let _ = sys.kill_pid(pgid, signal);
                }
                // A followed daemon may have called setsid after it was
                // followed: its group is its own now, and gets the signal
                // too.
                let main = self
                    .instances
                    .get(key)
                    .and_then(|i| i.pid(ProcessType::Main));
                if let Some(main) = main {
                    if let Some(g) = sys.pgid_of(main).filter(|&g| g != pgid) {
                        if sys.kill_group(g, signal).is_err() {
                            let _ = sys.kill_pid(main, signal);
                        }
                        queue.push_back(Input::Regrouped { pgid: g });
                    }
                }
                // The job's cgroup holds every process of it, whatever its
                // session or environment; without one, those that left
                // the group are found by their identity.
                if !sys.kill_members(key, signal) {
                    self.signal_escaped(key, signal, sys);
                }
            }
            Action::Announce { event } => out.effects.push(Effect::Emit {
                name: event,
                env: vec![format!("JOB={}", key.0), format!("INSTANCE={}", key.1)],
                blocking: false,
            }),
            Action::ArmTimer { gen, after } => out.effects.push(Effect::Timer { gen, after }),
            Action::Emit {
                event,
                blocking,
                failure,
                respawn_exit,
            } => {
                if event == JobEvent::Started {
                    self.running_seq += 1;
                    self.running_order.insert(key.clone(), self.running_seq);
                }
                if let Some(inst) = self.instances.get(key) {
                    let job_env = job::env::for_process(inst, None, &self.env_base);
                    let why = (failure.as_ref(), respawn_exit);
                    let env = job_event_env(inst, event, why, &job_env);
                    out.effects.push(Effect::Emit {
                        name: event.name(),
                        env,
                        blocking,
                    });
                }
            }
            Action::Log(msg) => out.effects.push(Effect::Log(msg)),
            Action::Probe(role) => out.effects.push(Effect::Probe(role)),
            Action::StopProbes => out.effects.push(Effect::StopProbes),
            Action::Destroy => {
                self.running_order.remove(key);
                self.pending_exit.remove(key);
                self.cpu_reaped.remove(key);
                self.env_started.remove(key);
                self.oom_told.remove(key);
                // An empty group goes now, one with processes left when it
                // has emptied (they are killed).
                sys.release_group(key);
                if let Some(inst) = self.instances.remove(key) {
                    self.keep_rest(key, &inst);
                    self.dirty = true;
                    out.effects.push(Effect::Destroyed(inst));
                }
            }
        }
    }

    /// A process spawned for an instance joins the pid map.
    pub fn spawned(&mut self, key: &Key, pid: i32) {
        self.pids.insert(pid, key.clone());
        self.dirty = true;
    }

    /// Registers a new instance: what was kept of the last one goes.
    pub fn add_instance(&mut self, key: Key, inst: Instance) {
        self.dirty |= self.at_rest.remove(&key).is_some();
        self.instances.insert(key, Box::new(inst));
    }

    /// The at-rest records of a job's named instances, by a range of the
    /// sorted map (never a walk over every job's).
    pub fn named_rest<'a>(&'a self, job: &'a str) -> impl Iterator<Item = (&'a Key, &'a Rest)> {
        self.at_rest
            .range((job.to_string(), String::new())..)
            .take_while(move |(k, _)| k.0 == job)
            .filter(|(k, _)| !k.1.is_empty())
    }

    /// Keeps why an instance that reached rest stopped, and its last exit.
    fn keep_rest(&mut self, key: &Key, inst: &Instance) {
        if inst.why.is_none() && inst.exited.is_none() {
            return;
        }
        let rest = Rest {
            why: inst.why.clone(),
            exited: inst.exited,
            respawns: inst.respawns,
        };
        self.at_rest.insert(key.clone(), rest);
        if key.1.is_empty() {
            return;
        }
        let named: Vec<(std::time::Duration, Key)> = self
            .named_rest(&key.0)
            .map(|(k, r)| (r.latest(), k.clone()))
            .collect();
        if named.len() > MAX_REST_NAMED {
            if let Some((_, oldest)) = named.iter().min() {
                self.at_rest.remove(oldest);
            }
        }
    }

    /// Whether nothing of a job's main process is left: its process group
    /// is empty, and no process that escaped the group (re-parented to us,
    /// carrying the job's identity) lives.
    pub fn processes_gone(&self, key: &Key, pgid: i32, sys: &mut dyn Sys) -> bool {
        // The job's cgroup, where there is one, holds every process of it.
        if let Some(populated) = sys.group_populated(key) {
            return !populated;
        }
        if !sys.group_is_empty(pgid) {
            return false;
        }
        let known = |p: i32| self.pids.contains_key(&p);
        sys.orphans_of_job(&key.0, &key.1, &known).is_empty()
    }

    /// Sends a signal to the processes of a job that escaped its group.
    fn signal_escaped(&self, key: &Key, signal: i32, sys: &mut dyn Sys) {
        let known = |p: i32| self.pids.contains_key(&p);
        for o in sys.orphans_of_job(&key.0, &key.1, &known) {
            let _ = sys.kill_pid(o.pid, signal);
        }
    }

    /// A child that ended: the inputs it means (none for an orphan we only
    /// reaped); the CPU time it used counts to its instance. `helper` tells the daemon's own helpers (never a job's).
    pub fn reaped(
        &mut self,
        ended: Ended,
        sys: &mut dyn Sys,
        helper: &dyn Fn(i32) -> bool,
    ) -> Vec<(Key, Input)> {
        let Ended {
            pid,
            exit: status,
            cpu,
        } = ended;
        self.dirty |= self.pids.contains_key(&pid);
        let exited_start = self.identity.get(&pid).map(|&(start, _)| start);
        let Some(key) = self.pids.remove(&pid) else {
            return Vec::new(); // an orphan we adopted as subreaper
        };
        // What it used counts to its instance's costs.
        *self.cpu_reaped.entry(key.clone()).or_default() += cpu;
        let inst = self.instances.get(&key);
        let is_main = inst.is_some_and(|i| i.pid(ProcessType::Main) == Some(pid));
        // A daemonizing program: follow its re-parented child.
        if is_main && inst.is_some_and(|i| matches!(i.waiting, job::Waiting::Fork(_))) {
            return match self.follow_fork(&key, pid, exited_start, sys, helper) {
                Some(input) => vec![(key, input)],
                None => {
                    // Nothing to follow yet: the child may be half-way
                    // through its own exit. Decide on the next reap, or
                    // when the fork timer runs out.
                    self.pending_exit.insert(key, (pid, status, exited_start));
                    Vec::new()
                }
            };
        }
        let pgid = inst.and_then(|i| i.group).unwrap_or(pid);
        let group_empty = !is_main || self.processes_gone(&key, pgid, sys);
        let mut inputs = Vec::new();
        if is_main && status == Exit::Signal(libc::SIGKILL) {
            inputs.extend(self.oom_killed(&key, sys));
        }
        inputs.push((
            key,
            Input::Exited {
                pid,
                status,
                group_empty,
            },
        ));
        inputs
    }

    /// Whether the kernel's OOM killer acted in an instance's cgroup since
    /// last told: the input that says so.
    fn oom_killed(&mut self, key: &Key, sys: &mut dyn Sys) -> Option<(Key, Input)> {
        let kills = sys.oom_kills(key);
        let told = self.oom_told.entry(key.clone()).or_default();
        if kills <= *told {
            return None;
        }
        *told = kills;
        let class = &self.instances.get(key)?.class;
        let limit = crate::cgroup::limits::memory_max(class)
            .map(|b| format!(" (memory max {})", crate::cgroup::limits::size_text(b)))
            .unwrap_or_default();
        let message = format!("killed by the kernel's OOM killer{limit}");
        Some((key.clone(), Input::OomKilled { message }))
    }

    /// After a reap: daemonizing programs whose child was not there yet,
    /// then groups that outlived their main process.
    pub fn after_reap(
        &mut self,
        sys: &mut dyn Sys,
        helper: &dyn Fn(i32) -> bool,
    ) -> Vec<(Key, Input)> {
        let mut inputs = Vec::new();
        let pending: Vec<(Key, i32, Option<u64>)> = self
            .pending_exit
            .iter()
            .map(|(k, (p, _, start))| (k.clone(), *p, *start))
            .collect();
        for (key, pid, start) in pending {
            if let Some(input) = self.follow_fork(&key, pid, start, sys, helper) {
                self.pending_exit.remove(&key);
                inputs.push((key, input));
            }
        }
        let lingering: Vec<(Key, i32)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.pid(ProcessType::Main).is_none())
            .filter_map(|(k, i)| i.group.map(|g| (k.clone(), g)))
            .collect();
        for (key, pgid) in lingering {
            if self.processes_gone(&key, pgid, sys) {
                inputs.push((key, Input::GroupEmpty));
            } else if let Some(inst) = self.instances.get(&key) {
                if inst.state == job::State::Killed {
                    // Processes that left the group (a new session) and
                    // were re-parented to us when their parent died go the
                    // same way.
                    // (With a cgroup, the kill signal reached every member
                    // already; nothing to look for.)
                    let sig = inst.class.kill_signal;
                    if sys.group_populated(&key).is_none() {
                        self.signal_escaped(&key, sig, sys);
                    }
                }
            }
        }
        inputs
    }

    /// The fork timer of an instance ran out: a daemonizing program that
    /// exited and left nothing to follow exited for real.
    pub fn fork_timer(&mut self, key: &Key) -> Option<Input> {
        let (pid, status, _) = self.pending_exit.remove(key)?;
        Some(Input::Exited {
            pid,
            status,
            group_empty: true,
        })
    }

    /// Looks for the child a daemonizing main process (`exited`) left; the
    /// input that hands the job over to it, if there is one.
    ///
    /// A child that carries the job's identity is the job's. One that
    /// carries none (its environment wiped) is taken only when this is the
    /// one instance waiting for a fork and the child is no older than the
    /// process that exited (`exited_start`, when known): then it can be no
    /// one else's. The daemon's own helpers are never taken.
    fn follow_fork(
        &mut self,
        key: &Key,
        exited: i32,
        exited_start: Option<u64>,
        sys: &mut dyn Sys,
        helper: &dyn Fn(i32) -> bool,
    ) -> Option<Input> {
        let known = |p: i32| self.pids.contains_key(&p) || helper(p);
        let mut found = sys.orphans_of_job(&key.0, &key.1, &known).first().copied();
        let forking = self
            .instances
            .values()
            .filter(|i| matches!(i.waiting, job::Waiting::Fork(_)))
            .count();
        if found.is_none() && forking == 1 {
            found = sys
                .anonymous_orphans(&known)
                .into_iter()
                .find(|o| exited_start.is_none_or(|s| o.start >= s));
        }
        let o = found?;
        self.pids.insert(o.pid, key.clone());
        self.dirty = true;
        Some(Input::Forked {
            pid: o.pid,
            pgid: o.pgid,
            hops: o.hops_from(exited),
        })
    }

    /// The instance a `start on` that became true starts: its key, unless
    /// it is wanted already (`Ok(None)`) or its name cannot be made.
    pub fn instance_for(&self, class: &JobClass, env: &[String]) -> Result<Option<Key>, String> {
        let name = if class.instance.is_empty() {
            String::new()
        } else {
            let mut scope = class_vars(class);
            scope.extend(env.iter().cloned());
            expand::expand(&class.instance, &scope)
                .map_err(|e| format!("Failed to obtain {} instance: {e}", class.name))?
        };
        let key = std::rc::Rc::new((class.name.clone(), name));
        match self.instances.get(&key) {
            Some(inst) if inst.goal != job::Goal::Stop => Ok(None),
            _ => Ok(Some(key)),
        }
    }

    /// A main process that is not the daemon's child ended (its pidfd
    /// said): unless the reaper already had it, its parent took its status,
    /// and the job learns that it ended, status unknown.
    pub fn alien_ended(&mut self, key: &Key, pid: i32, sys: &mut dyn Sys) -> Option<Input> {
        if self.pids.get(&pid) != Some(key) {
            return None; // reaped as our child after all
        }
        self.pids.remove(&pid);
        self.dirty = true;
        let group = self.instances.get(key).and_then(|i| i.group).unwrap_or(pid);
        Some(Input::Exited {
            pid,
            status: Exit::Unknown,
            group_empty: self.processes_gone(key, group, sys),
        })
    }

    /// Whether `pid` is one of the job's processes, by what the kernel
    /// says of it (never by its environment): a process the daemon
    /// spawned or followed for the job, a descendant of one, or a process
    /// in the session one of them leads.
    pub fn belongs_to(&self, key: &Key, pid: i32) -> bool {
        let ours = |p: i32| self.pids.get(&p) == Some(key);
        if ours(pid) {
            return true;
        }
        let me = std::process::id() as i32;
        if crate::process::tree::descends_from(pid, me, &ours) {
            return true;
        }
        // Every job process starts a session of its own, which no other
        // process can join: a re-parented descendant is still in it.
        crate::process::tree::session_of(pid).is_some_and(|sid| sid > 1 && ours(sid))
    }

    /// Rescans every conf dir's files (`reload-configuration`, a change
    /// seen): new and changed definitions are taken, removed jobs go
    /// (their running instances keep theirs). Returns the lines to log, the
    /// definitions that changed (for their `start on`), and the jobs gone.
    pub fn reload(&mut self, conf_dirs: &[std::path::PathBuf]) -> Reloaded {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.reload_at(conf_dirs, now)
    }

    /// [`JobTable::reload`] at `now` (seconds since the epoch), which
    /// decides which files have settled.
    pub fn reload_at(&mut self, conf_dirs: &[std::path::PathBuf], now: i64) -> Reloaded {
        let scan = confdir::scan(conf_dirs);
        let mut r = Reloaded {
            logs: scan
                .problems
                .iter()
                .filter_map(|p| match scan.missing.iter().find(|m| m.dir == p.path) {
                    Some(m) if self.missing_said.contains(m) => None,
                    Some(m) => Some(format!(
                        "{p}; its jobs are loaded when it is created (watching {})",
                        m.ancestor.display()
                    )),
                    None => Some(p.to_string()),
                })
                .collect(),
            watch: scan.watch,
            missing: scan.missing.clone(),
            ..Reloaded::default()
        };
        self.missing_said = scan.missing;
        self.conf_errors.clear();
        let mut trust = confdir::Trust::for_this_user();
        for (name, files) in &scan.jobs {
            let stamps: Stamps = (
                scan.stamps.get(&files.conf).copied(),
                files
                    .override_file
                    .as_ref()
                    .map(|o| scan.stamps.get(o).copied()),
            );
            let unchanged = self
                .files
                .get(name)
                .is_some_and(|s| s.stamps == Some(stamps) && s.is(files))
                && self.classes.contains_key(name)
                // The dirs above are checked on every scan.
                && trust.check_dirs_of(&files.conf, stamps.0.map(|s| s.link)).is_ok()
                && files.override_file.as_ref().is_none_or(|o| {
                    let link = stamps.1.flatten().map(|s| s.link);
                    trust.check_dirs_of(o, link).is_ok()
                });
            if unchanged {
                continue;
            }
            let loaded = confdir::load_with(files, &mut trust);
            let settled = |s: &Option<confdir::Stamp>| s.is_some_and(|s| s.settled(now));
            let clean = loaded.diagnostics.is_empty()
                && loaded.job.is_some()
                && settled(&stamps.0)
                && stamps.1.as_ref().is_none_or(settled);
            r.logs
                .extend(loaded.diagnostics.iter().map(|d| d.to_string()));
            if !loaded.diagnostics.is_empty() {
                let errors = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
                self.conf_errors.insert(name.clone(), errors);
            }
            match loaded.job {
                Some(job) if self.classes.get(name).is_none_or(|c| **c != job) => {
                    let job = Rc::new(job);
                    r.changed
                        .push((self.classes.get(name).cloned(), job.clone()));
                    self.classes.insert(name.clone(), job);
                }
                Some(_) => {}
                None if self.classes.contains_key(name) => {
                    r.logs
                        .push(format!("{name}: keeping the last good definition"));
                }
                None => {}
            }
            let source = Source {
                conf: files.conf.clone(),
                override_file: files.override_file.clone(),
                stamps: clean.then_some(stamps),
            };
            self.files.insert(name.clone(), Box::new(source));
        }
        r.gone = self
            .classes
            .keys()
            .filter(|n| !scan.jobs.contains_key(*n))
            .cloned()
            .collect();
        for name in &r.gone {
            self.classes.remove(name);
            self.files.remove(name);
        }
        let classes = &self.classes;
        self.at_rest.retain(|k, _| classes.contains_key(&k.0));
        r
    }

    /// Job files whose errors keep them from defining a job (a job with a
    /// last good definition is listed as that job instead).
    /// What a reload of the conf dirs tells the subscribers: how many jobs
    /// are defined and how many files have errors, then each error.
    pub fn reload_news(&self) -> Vec<News> {
        let mut news = vec![News::Reload {
            jobs: self.classes.len(),
            broken: self.conf_errors.len(),
        }];
        for (job, errors) in &self.conf_errors {
            news.extend(errors.iter().map(|e| News::FileError {
                job: job.clone(),
                error: e.clone(),
            }));
        }
        news
    }

    pub fn broken_files(&self) -> Vec<crate::control::BrokenFile> {
        self.conf_errors
            .iter()
            .filter(|(name, _)| !self.classes.contains_key(*name))
            .filter_map(|(name, errors)| {
                Some(crate::control::BrokenFile {
                    job: name.clone(),
                    error: errors.first()?.clone(),
                })
            })
            .collect()
    }

    /// Reads one job's files again (for `restart`). A file that now has
    /// errors keeps the last good definition in force. Returns the lines to
    /// log and the change of definition, if any.
    pub fn reload_job(&mut self, name: &str) -> (Vec<String>, Option<Change>) {
        let Some(source) = self.files.get(name) else {
            return (Vec::new(), None);
        };
        let loaded = confdir::load(&source.files(name));
        let mut logs: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        if loaded.diagnostics.is_empty() {
            self.conf_errors.remove(name);
        } else {
            let errors = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
            self.conf_errors.insert(name.to_string(), errors);
        }
        match loaded.job {
            Some(job) => {
                let job = Rc::new(job);
                let old = self.classes.insert(name.to_string(), job.clone());
                (logs, Some((old, job)))
            }
            None => {
                logs.push(format!("{name}: keeping the last good definition"));
                (logs, None)
            }
        }
    }

    /// The class of `job` and the name of the instance a request means:
    /// `instance` when the request names it, else the class's `instance`
    /// template expanded with `env`.
    pub fn find(
        &self,
        job: &str,
        env: &[String],
        instance: Option<&str>,
    ) -> Result<(Rc<JobClass>, String), String> {
        let class = self.classes.get(job).cloned().or_else(|| {
            // A job whose file was removed is still known while it runs.
            self.instances
                .values()
                .find(|i| i.job == job)
                .map(|i| i.class.clone())
        });
        let Some(class) = class else {
            return Err(match self.conf_errors.get(job).and_then(|e| e.first()) {
                // A file that is there but may not (or cannot) define it.
                Some(first) => format!("Unknown job: {job} (its job file has errors: {first})"),
                None => format!("Unknown job: {job}"),
            });
        };
        if class.instance.is_empty() {
            return Ok((class, String::new()));
        }
        if let Some(name) = instance {
            return Ok((class, name.to_string()));
        }
        let mut scope: Vec<String> = class_vars(&class);
        scope.extend(env.iter().cloned());
        match expand::expand(&class.instance, &scope) {
            Ok(name) => Ok((class, name)),
            Err(e) => {
                let mut msg = e.to_string();
                if let Some(usage) = &class.usage {
                    msg.push_str(&format!("\nUsage: {usage}"));
                }
                Err(msg)
            }
        }
    }

    /// What the re-exec hands across of this part; `held` gives each
    /// instance's `stop on` state (the event bus's).
    pub fn saved(&self, held: &dyn Fn(&Key) -> Option<Vec<Option<u64>>>) -> Saved {
        saved::save(self, held)
    }
}

impl Rest {
    /// When it last changed (its exit or its failure).
    pub fn latest(&self) -> std::time::Duration {
        let why = self.why.as_ref().map(|w| w.at);
        let exit = self.exited.map(|e| e.at);
        why.max(exit).unwrap_or_default()
    }
}

/// A definition replaced: (the one that was in force, the new one).
pub(super) type Change = (Option<Rc<JobClass>>, Rc<JobClass>);

/// What a rescan found.
#[derive(Debug, Default)]
pub(super) struct Reloaded {
    pub logs: Vec<String>,
    pub watch: std::collections::BTreeSet<std::path::PathBuf>,
    /// Conf dirs that do not exist yet, and the ancestors to watch for them.
    pub missing: Vec<confdir::Missing>,
    /// (the definition that was in force, the new one).
    pub changed: Vec<Change>,
    pub gone: Vec<String>,
}

/// `KEY=VALUE` entries a job's `start on` patterns and instance name may
/// expand (its `env` stanzas: an improvement over Upstart 1.13, which
/// expanded none).
pub(super) fn class_vars(class: &JobClass) -> Vec<String> {
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
    (failure, respawn_exit): (Option<&Failure>, Option<Exit>),
    job_env: &[(String, String)],
) -> Vec<String> {
    let mut env = vec![
        format!("JOB={}", inst.job),
        format!("INSTANCE={}", inst.name),
    ];
    if matches!(event, JobEvent::Stopping | JobEvent::Stopped) {
        match failure {
            // A respawn: `RESULT=ok` as in Upstart, and how the main
            // process ended (an extension), so a job can tell a crash.
            None if respawn_exit.is_some() => {
                env.push("RESULT=ok".into());
                env.push("PROCESS=main".into());
                env.extend(respawn_exit.and_then(Exit::event_var));
            }
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

/// This part in the re-exec format (flattened into the handover).
#[derive(Serialize, Deserialize)]
pub(super) struct Saved {
    /// Job definitions as job-file text (`show-config`'s, which parses back
    /// to the same definition), each once, with the job's name.
    pub classes: Vec<(String, String)>,
    /// The definition in force for each job (an index into `classes`).
    pub in_force: Vec<(String, usize)>,
    pub instances: Vec<saved::SavedInstance>,
    pub pids: Vec<SavedPid>,
    pub pending_exit: Vec<(Key, i32, saved::SavedExit, Option<u64>)>,
    pub running_order: Vec<(Key, u64)>,
    pub running_seq: u64,
    /// Why instances at rest stopped (absent before this record existed).
    #[serde(default)]
    pub at_rest: Vec<saved::SavedRest>,
    /// The CPU time of each instance's reaped processes (absent before
    /// costs existed).
    #[serde(default)]
    pub cpu_reaped: Vec<(Key, Duration)>,
    /// The global job-environment table, and what instances whose own
    /// table changed were started with (absent before `set-env`).
    #[serde(default)]
    pub env_table: Vec<(String, String)>,
    #[serde(default)]
    pub env_started: Vec<(Key, Vec<String>)>,
}

/// A live job process: whose, and its (start time, group) once known.
#[derive(Serialize, Deserialize)]
pub(super) struct SavedPid {
    pub pid: i32,
    pub key: Key,
    pub identity: Option<(u64, i32)>,
}

impl JobTable {
    /// Every live job process with what the state file records of it.
    /// Each one's start time, group and uid are read once, when it first
    /// appears, not at every rewrite.
    pub fn records(&mut self) -> Vec<super::state::Record> {
        let pids = &self.pids;
        self.identity.retain(|p, _| pids.contains_key(p));
        self.uid.retain(|p, _| pids.contains_key(p));
        let mut out = Vec::new();
        for (pid, key) in &self.pids {
            let ident = match self.identity.get(pid) {
                Some(&i) => Some(i),
                None => crate::process::tree::identity(*pid),
            };
            let Some((start, pgid)) = ident else {
                continue;
            };
            self.identity.insert(*pid, (start, pgid));
            let uid = match self.uid.get(pid) {
                Some(&u) => u,
                None => match crate::process::tree::euid_of(*pid) {
                    Some(u) => u,
                    None => continue,
                },
            };
            self.uid.insert(*pid, uid);
            let label = if key.1.is_empty() {
                key.0.clone()
            } else {
                format!("{} ({})", key.0, key.1)
            };
            out.push(super::state::Record {
                pid: *pid,
                start,
                pgid,
                uid,
                label,
            });
        }
        out
    }

    /// The running order's counter (for the handover).
    pub fn running_seq(&self) -> u64 {
        self.running_seq
    }

    pub fn set_running_seq(&mut self, s: u64) {
        self.running_seq = s;
    }
}
