//! The job state machine of one instance, as pure code: inputs in, actions
//! out (Upstart's `init/job.c` and `job_process_terminated`, reference
//! sections 4 and 7).
//!
//! ```text
//!             goal start                                   goal stop
//!  waiting ─► starting ─► pre-start ─► spawned ─► post-start ─► running
//!     ▲          (event)    (hook)      (main)      (hook)         │
//!     │                                                            ▼
//!  post-stop ◄─ killed ◄─ stopping ◄──────────────────────── pre-stop
//!   (hook)    (signal,    (event)                              (hook)
//!              timer)
//! ```
//!
//! The machine never blocks and never calls the system. When it needs
//! something done it returns an [`Action`] and, where it must wait for the
//! outcome (a spawn, a process exit, an event, a timer), it says so in
//! [`Instance::waiting`] and stays put until the matching [`Input`]
//! arrives. Time is an input (`now`, a monotonic duration since any fixed
//! point).
//!
//! A goal change moves the machine at once only from the two rest states
//! (`waiting` with goal start, `running` with goal stop); in every other
//! state the current step finishes first and the table then follows the new
//! goal, as in Upstart.

pub mod env;
pub mod env_file;

use std::rc::Rc;
use std::time::Duration;

use crate::conf::health::Role;
use crate::conf::{signal, Expect, JobClass, NormalExit, ProcessType};

pub type Pid = i32;

/// An instance's key: job name and instance name. Shared, not copied: the
/// daemon's parts each keep a map by instance (the pid map, the event
/// bus's matchers and holds, the cgroup watches, timers), and with 10,000
/// instances a copy of both names in each was a third of the memory.
pub type Key = std::rc::Rc<(String, String)>;

/// The key of `instance` of `job`.
pub fn key(job: &str, instance: &str) -> Key {
    std::rc::Rc::new((job.to_string(), instance.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Stop,
    Start,
    /// The main process died and is to be respawned once the current hook
    /// has finished; becomes `Start` again on the way to `stopping`.
    Respawn,
}

impl Goal {
    pub fn name(self) -> &'static str {
        match self {
            Goal::Stop => "stop",
            Goal::Start | Goal::Respawn => "start",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Waiting,
    Starting,
    PreStart,
    Spawned,
    PostStart,
    Running,
    PreStop,
    Stopping,
    Killed,
    PostStop,
}

impl State {
    /// Every state, in the order of a start and a stop.
    pub const ALL: [State; 10] = [
        State::Waiting,
        State::Starting,
        State::PreStart,
        State::Spawned,
        State::PostStart,
        State::Running,
        State::PreStop,
        State::Stopping,
        State::Killed,
        State::PostStop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::PreStart => "pre-start",
            State::Spawned => "spawned",
            State::PostStart => "post-start",
            State::Running => "running",
            State::PreStop => "pre-stop",
            State::Stopping => "stopping",
            State::Killed => "killed",
            State::PostStop => "post-stop",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// A main process that was not the daemon's child (named by
    /// `MAINPID`) ended, and its parent collected its status: the daemon
    /// knows only that it ended. Counts as abnormal.
    Unknown,
}

impl Exit {
    fn is_listed(self, normal: &[NormalExit]) -> bool {
        normal.iter().any(|n| match (*n, self) {
            (NormalExit::Status(s), Exit::Code(c)) => i64::from(s) == i64::from(c),
            (NormalExit::Signal(a), Exit::Signal(b)) => a == b,
            _ => false,
        })
    }

    /// `EXIT_STATUS=1` or `EXIT_SIGNAL=TERM`, as job events carry it
    /// (nothing when the status is unknown).
    pub fn event_var(self) -> Option<String> {
        match self {
            Exit::Code(c) => Some(format!("EXIT_STATUS={c}")),
            Exit::Signal(s) => Some(format!("EXIT_SIGNAL={}", signal::display(s))),
            Exit::Unknown => None,
        }
    }
}

/// Which part of a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedProcess {
    Process(ProcessType),
    /// The respawn limit was hit.
    Respawn,
}

impl FailedProcess {
    pub fn name(self) -> &'static str {
        match self {
            FailedProcess::Process(p) => p.name(),
            FailedProcess::Respawn => "respawn",
        }
    }
}

/// What stopped an instance, kept with it (and by the job table while the
/// job is at rest) until it next starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A process could not be spawned (`failure_detail` has the error).
    Spawn,
    /// The respawn limit was reached.
    RespawnLimit,
    /// The main process ended abnormally.
    Main,
    /// A pre-start or post-stop hook failed.
    Hook,
    /// `expect notify` or a `health ready` probe: not ready within the
    /// ready timeout.
    ReadyTimeout,
    /// The `health alive` probe failed its threshold, and the main process
    /// was stopped for it.
    Unhealthy,
    /// The kernel's OOM killer killed the main process (its cgroup's
    /// memory limit).
    Oom,
    /// The main process outlived the kill timeout and was sent KILL (not
    /// a failure: the stop's `RESULT` stays `ok`, as in Upstart).
    KillTimeout { secs: u32 },
}

impl Reason {
    /// The kind's name in `--json` and `monitor`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Spawn => "spawn",
            Reason::RespawnLimit => "respawn-limit",
            Reason::Main => "main",
            Reason::Hook => "hook",
            Reason::ReadyTimeout => "ready-timeout",
            Reason::Unhealthy => "unhealthy",
            Reason::Oom => "oom",
            Reason::KillTimeout { .. } => "kill-timeout",
        }
    }
}

/// Why an instance stopped, and when (monotonic time, as `now`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    pub reason: Reason,
    /// In words: `main process terminated with status 1`.
    pub message: String,
    pub at: Duration,
}

/// A process exit as `status` shows it: which process, how, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    pub process: ProcessType,
    pub exit: Exit,
    pub at: Duration,
}

/// The first failure of a start → stop cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub process: FailedProcess,
    /// `None` when the process failed to spawn, or for the respawn limit.
    pub exit: Option<Exit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    Starting,
    Started,
    Stopping,
    Stopped,
}

impl JobEvent {
    pub fn name(self) -> &'static str {
        match self {
            JobEvent::Starting => "starting",
            JobEvent::Started => "started",
            JobEvent::Stopping => "stopping",
            JobEvent::Stopped => "stopped",
        }
    }
}

/// What the machine asks of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn this process of the job; answer with `Spawned` or `SpawnFailed`.
    Spawn(ProcessType),
    /// Send `signal` to the process group `pgid` (the main process's).
    KillGroup { pgid: Pid, signal: i32 },
    /// Let a stopped process go on (SIGCONT).
    Continue { pid: Pid },
    /// Answer with `Timer { gen }` after `after`, unless the instance has
    /// moved on (a newer `gen` makes this one stale).
    ArmTimer { gen: u64, after: Duration },
    /// Emit a job event. A blocking one must be answered with `EventDone`
    /// once everything it affects has got there.
    Emit {
        event: JobEvent,
        blocking: bool,
        failure: Option<Failure>,
        /// The stop of a respawn: how the main process ended (the event
        /// carries it with `RESULT=ok`, an extension).
        respawn_exit: Option<Exit>,
    },
    /// A message for the daemon's log.
    Log(String),
    /// The instance is back at rest: forget it.
    Destroy,
    /// Start probing with the job's probe of this role (`health`).
    Probe(Role),
    /// Stop every probe of the instance.
    StopProbes,
    /// Emit an event about the instance (`JOB`, `INSTANCE`) that nothing
    /// waits for: `oom-killed`.
    Announce { event: &'static str },
}

/// What happens to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start, with the variables the instance is started with (an event's,
    /// `start KEY=VALUE`); they are its environment from here on.
    Start(Vec<String>),
    /// Stop, with the variables of what stops it (the events of its `stop
    /// on`, `stop KEY=VALUE`), which pre-stop and post-stop see.
    Stop(Vec<String>),
    /// Stop, then start again with the job file as it is now.
    Restart,
    Spawned {
        process: ProcessType,
        pid: Pid,
    },
    SpawnFailed {
        process: ProcessType,
        error: String,
    },
    /// A process of the job ended. For the main process, `group_empty`
    /// says whether anything is left in its process group.
    Exited {
        pid: Pid,
        status: Exit,
        group_empty: bool,
    },
    /// The main process's group, which outlived it, is now empty.
    GroupEmpty,
    /// A blocking event emitted by this instance has finished.
    EventDone,
    /// A process of the job stopped itself (SIGSTOP).
    StoppedItself {
        pid: Pid,
    },
    /// `READY=1` arrived from one of the job's processes.
    Ready,
    /// The `health ready` probe succeeded (enough).
    ProbeReady,
    /// The `health alive` probe failed its threshold (the reason in words).
    Unhealthy {
        error: String,
    },
    /// The kernel's OOM killer acted in the instance's cgroup, and the main
    /// process died by SIGKILL (fed before its `Exited`); in words,
    /// `killed by the kernel's OOM killer (memory max 50 MiB)`.
    OomKilled {
        message: String,
    },
    /// `MAINPID=` arrived from one of the job's processes: this process
    /// (in group `pgid`) is the main one now.
    MainPid {
        pid: Pid,
        pgid: Pid,
    },
    /// The main process now leads a process group of its own (a daemon
    /// that called setsid after it was followed): its signals go there.
    Regrouped {
        pgid: Pid,
    },
    /// `expect fork` / `expect daemon`: the tracked main process exited
    /// and left this re-parented child (in process group `pgid`) to carry
    /// on as the main process.
    Forked {
        pid: Pid,
        pgid: Pid,
        /// How many forks the hand-over stands for (a double fork seen at
        /// once is two).
        hops: u8,
    },
    Timer {
        gen: u64,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AlreadyRunning,
    AlreadyStopped,
}

/// What the instance is waiting for before it can move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    Nothing,
    Spawn(ProcessType),
    Exit(ProcessType),
    Event,
    /// The main process (and its group) to die after the kill signal.
    Kill,
    /// The respawn back-off delay.
    Delay,
    /// `expect fork` / `expect daemon`: the main process to hand over to
    /// the child that will be the real one (this many hand-overs left).
    Fork(u8),
    /// `expect stop`: the main process to stop itself with SIGSTOP (its way
    /// of saying it is ready).
    Stop,
    /// `expect notify`: `READY=1` on the job's notify socket.
    Ready,
    /// `health ready`: the probe's first success (after any `expect`).
    Probe,
    /// `health alive` failed: the main process was sent the kill signal,
    /// SIGKILL follows at the kill timeout; its exit is respawned (or, with
    /// no `respawn`, stops the job, failed).
    Unhealthy,
}

/// The back-off under `respawn limit unlimited`: a main process that lived
/// less than [`QUICK_EXIT`] is respawned after a delay that doubles from
/// [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
pub const QUICK_EXIT: Duration = Duration::from_secs(1);
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One instance of a job.
#[derive(Debug, Clone)]
pub struct Instance {
    pub job: String,
    /// The instance name (empty for a single-instance job).
    pub name: String,
    /// The definition this instance runs with; replaced by the latest good
    /// one each time it (re)enters `starting`.
    pub class: Rc<JobClass>,
    pub goal: Goal,
    pub state: State,
    pub waiting: Waiting,
    /// Live processes, indexed by [`ProcessType::index`].
    pub pids: [Option<Pid>; 5],
    /// The main process's group while anything in it may be alive.
    pub group: Option<Pid>,
    pub failed: Option<Failure>,
    /// Why, in words (`main process terminated with status 1`).
    pub failure_detail: Option<String>,
    /// Why it stopped (a failure, or a kill after the kill timeout), until
    /// it next starts.
    pub why: Option<Why>,
    /// The last exit of its main process, or of a hook whose failure
    /// stopped it; kept until it next starts.
    pub exited: Option<Exited>,
    /// The environment of the start (`KEY=VALUE`), for the processes.
    pub env: Vec<String>,
    /// The environment of the stop (the events that matched `stop on`, or
    /// the `stop` command's variables), for pre-stop and post-stop only.
    pub stop_env: Vec<String>,
    /// The values of the job's `env-file`s as last read well (`None`:
    /// never); they are read once a start, before its first process.
    pub env_file: Option<Vec<(String, String)>>,
    /// When the main process was last spawned.
    pub main_started: Option<Duration>,
    pub last_exit: Option<Exit>,
    /// Respawns since the instance was created.
    pub respawns: u64,
    /// How many times the instance has entered `starting`.
    pub generation: u64,
    respawn_window: Option<(u64, u32)>,
    backoff: Duration,
    respawn_delay: Duration,
    pub(crate) timer_gen: u64,
    restart_pending: bool,
    from_pre_stop: bool,
    /// The `health ready` probe succeeded for this main process.
    probe_passed: bool,
    /// Why the main process is being stopped as unhealthy (the alive
    /// probe's last error), until its exit is handled.
    unhealthy: Option<String>,
    /// The OOM killer's words for the main process's exit, fed just before
    /// it (never across a re-exec: both come from one reap).
    oom: Option<String>,
}

/// The parts of an instance that only the machine reads, taken out and put
/// back whole by the daemon's `re-exec` handover (nothing else may touch
/// them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Internals {
    /// (whole seconds since the daemon's epoch when the window opened,
    /// respawns in it).
    pub respawn_window: Option<(u64, u32)>,
    pub backoff: Duration,
    pub respawn_delay: Duration,
    pub timer_gen: u64,
    pub restart_pending: bool,
    pub from_pre_stop: bool,
    pub probe_passed: bool,
    pub unhealthy: Option<String>,
}

impl Instance {
    pub fn internals(&self) -> Internals {
        Internals {
            respawn_window: self.respawn_window,
            backoff: self.backoff,
            respawn_delay: self.respawn_delay,
            timer_gen: self.timer_gen,
            restart_pending: self.restart_pending,
            from_pre_stop: self.from_pre_stop,
            probe_passed: self.probe_passed,
            unhealthy: self.unhealthy.clone(),
        }
    }

    pub fn set_internals(&mut self, i: Internals) {
        self.respawn_window = i.respawn_window;
        self.backoff = i.backoff;
        self.respawn_delay = i.respawn_delay;
        self.timer_gen = i.timer_gen;
        self.restart_pending = i.restart_pending;
        self.from_pre_stop = i.from_pre_stop;
        self.probe_passed = i.probe_passed;
        self.unhealthy = i.unhealthy;
    }
}

impl Instance {
    pub fn new(job: &str, name: &str, class: Rc<JobClass>, env: Vec<String>) -> Instance {
        Instance {
            job: job.to_string(),
            name: name.to_string(),
            class,
            goal: Goal::Stop,
            state: State::Waiting,
            waiting: Waiting::Nothing,
            pids: [None; 5],
            group: None,
            failed: None,
            failure_detail: None,
            why: None,
            exited: None,
            env,
            stop_env: Vec::new(),
            env_file: None,
            main_started: None,
            last_exit: None,
            respawns: 0,
            generation: 0,
            respawn_window: None,
            backoff: Duration::ZERO,
            respawn_delay: Duration::ZERO,
            timer_gen: 0,
            restart_pending: false,
            from_pre_stop: false,
            probe_passed: false,
            unhealthy: None,
            oom: None,
        }
    }

    /// `web` or `web (instance)`, as messages name a job.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.job.clone()
        } else {
            format!("{} ({})", self.job, self.name)
        }
    }

    pub fn pid(&self, p: ProcessType) -> Option<Pid> {
        self.pids[p.index()]
    }

    fn main_alive(&self) -> bool {
        self.pid(ProcessType::Main).is_some()
    }

    fn ready_timeout(&self) -> u32 {
        self.class
            .ready_timeout_secs
            .unwrap_or(crate::conf::DEFAULT_READY_TIMEOUT_SECS)
            .max(1)
    }

    /// The job has a main process, but it is not running.
    fn main_lost(&self) -> bool {
        self.class.process(ProcessType::Main).is_some() && !self.main_alive()
    }

    /// Feeds one input. `latest` is the job's current good definition;
    /// `now` is monotonic time.
    pub fn step(
        &mut self,
        latest: &Rc<JobClass>,
        now: Duration,
        input: Input,
    ) -> Result<Vec<Action>, Refusal> {
        let mut out = Vec::new();
        match input {
            Input::Start(env) => {
                if self.goal != Goal::Stop {
                    return Err(Refusal::AlreadyRunning);
                }
                self.env = env;
                self.goal = Goal::Start;
                self.restart_pending = false;
                if self.state == State::Waiting {
                    self.enter(State::Starting, latest, now, &mut out);
                }
            }
            Input::Stop(_) | Input::Restart => {
                let restart = input == Input::Restart;
                if self.goal == Goal::Stop && !(restart && self.restart_pending) {
                    return Err(Refusal::AlreadyStopped);
                }
                if let Input::Stop(env) = input {
                    if self.goal != Goal::Stop {
                        self.stop_env = env;
                    }
                }
                self.goal = Goal::Stop;
                self.restart_pending = restart;
                match (self.state, self.waiting) {
                    (State::Running, w) => {
                        if w == Waiting::Unhealthy {
                            // The stop takes over the unhealthy one's kill.
                            self.timer_gen += 1;
                            self.waiting = Waiting::Nothing;
                        }
                        self.advance(latest, now, &mut out)
                    }
                    // Not ready yet: the stop does not wait for a
                    // readiness that may never come (the ready timeout).
                    (State::Spawned, Waiting::Ready | Waiting::Probe) => {
                        self.timer_gen += 1;
                        self.waiting = Waiting::Nothing;
                        self.advance(latest, now, &mut out);
                    }
                    (State::PostStop, Waiting::Delay) => {
                        self.timer_gen += 1;
                        self.waiting = Waiting::Nothing;
                        self.advance(latest, now, &mut out);
                    }
                    _ => {}
                }
            }
            Input::Spawned { process, pid } => {
                if self.waiting != Waiting::Spawn(process) {
                    return Ok(out);
                }
                self.pids[process.index()] = Some(pid);
                if process == ProcessType::Main {
                    self.group = Some(pid);
                    self.main_started = Some(now);
                    self.probe_passed = false;
                    let forks = match self.class.expect {
                        Expect::Fork => 1,
                        Expect::Daemon => 2,
                        Expect::None | Expect::Stop | Expect::Notify => 0,
                    };
                    if self.class.expect == Expect::Notify {
                        self.waiting = Waiting::Ready;
                        self.timer_gen += 1;
                        out.push(Action::ArmTimer {
                            gen: self.timer_gen,
                            after: Duration::from_secs(u64::from(self.ready_timeout())),
                        });
                    } else if self.class.expect == Expect::Stop {
                        self.waiting = Waiting::Stop;
                        self.timer_gen += 1;
                        out.push(Action::ArmTimer {
                            gen: self.timer_gen,
                            after: Duration::from_secs(u64::from(
                                self.class.kill_timeout_secs.max(1),
                            )),
                        });
                    } else if forks > 0 {
                        // Wait for the program to daemonize, but never
                        // longer than the kill timeout.
                        self.waiting = Waiting::Fork(forks);
                        self.timer_gen += 1;
                        out.push(Action::ArmTimer {
                            gen: self.timer_gen,
                            after: Duration::from_secs(u64::from(
                                self.class.kill_timeout_secs.max(1),
                            )),
                        });
                    } else {
                        // `expect none`: the spawned process is the main
                        // one and the job moves on at once.
                        self.waiting = Waiting::Nothing;
                        self.advance(latest, now, &mut out);
                    }
                } else {
                    self.waiting = Waiting::Exit(process);
                }
            }
            Input::SpawnFailed { process, error } => {
                if self.waiting != Waiting::Spawn(process) {
                    return Ok(out);
                }
                self.waiting = Waiting::Nothing;
                out.push(Action::Log(format!(
                    "Failed to spawn {} {} process: {error}",
                    self.label(),
                    process.name()
                )));
                match process {
                    ProcessType::PreStart | ProcessType::Main | ProcessType::PostStop => {
                        self.fail_because(FailedProcess::Process(process), None, Some(&error), now);
                        self.goal = Goal::Stop;
                        self.restart_pending = false;
                    }
                    ProcessType::PostStart | ProcessType::PreStop => {}
                }
                self.advance(latest, now, &mut out);
            }
            Input::Exited {
                pid,
                status,
                group_empty,
            } => {
                let Some(process) = ProcessType::ALL
                    .into_iter()
                    .find(|&p| self.pid(p) == Some(pid))
                else {
                    return Ok(out);
                };
                self.pids[process.index()] = None;
                out.push(Action::Log(exit_message(
                    &self.label(),
                    process,
                    pid,
                    status,
                )));
                if process == ProcessType::Main {
                    if group_empty {
                        self.group = None;
                    }
                    self.main_exited(status, latest, now, &mut out);
                } else {
                    self.hook_exited(process, status, latest, now, &mut out);
                }
            }
            Input::Forked { pid, pgid, hops } => {
                let Waiting::Fork(left) = self.waiting else {
                    return Ok(out);
                };
                let old = self.pid(ProcessType::Main).unwrap_or(0);
                out.push(Action::Log(format!(
                    "{} main process ({old}) forked; following it to {pid}",
                    self.label()
                )));
                self.pids[ProcessType::Main.index()] = Some(pid);
                self.group = Some(pgid);
                if left > hops {
                    self.waiting = Waiting::Fork(left - hops);
                } else {
                    self.timer_gen += 1;
                    self.waiting = Waiting::Nothing;
                    self.advance(latest, now, &mut out);
                }
            }
            Input::Ready => {
                if self.waiting == Waiting::Ready {
                    self.timer_gen += 1;
                    self.waiting = Waiting::Nothing;
                    self.advance(latest, now, &mut out);
                }
            }
            Input::ProbeReady => {
                if self.waiting == Waiting::Probe {
                    self.timer_gen += 1;
                    self.waiting = Waiting::Nothing;
                    self.probe_passed = true;
                    self.advance(latest, now, &mut out);
                }
            }
            Input::OomKilled { message } => {
                if self.pid(ProcessType::Main).is_some() {
                    self.oom = Some(message);
                    out.push(Action::Announce {
                        event: "oom-killed",
                    });
                }
            }
            Input::Unhealthy { error } => {
                let main = self.pid(ProcessType::Main);
                if let (State::Running, Goal::Start, Waiting::Nothing, Some(pid)) =
                    (self.state, self.goal, self.waiting, main)
                {
                    let signal = self.class.kill_signal;
                    out.push(Action::Log(format!(
                        "{} main process ({pid}) is unhealthy ({error}): sending it {}",
                        self.label(),
                        signal::display(signal)
                    )));
                    out.push(Action::StopProbes);
                    out.push(Action::KillGroup {
                        pgid: self.group.unwrap_or(pid),
                        signal,
                    });
                    self.unhealthy = Some(error);
                    self.waiting = Waiting::Unhealthy;
                    self.timer_gen += 1;
                    out.push(Action::ArmTimer {
                        gen: self.timer_gen,
                        after: Duration::from_secs(u64::from(self.class.kill_timeout_secs.max(1))),
                    });
                }
            }
            Input::MainPid { pid, pgid } => {
                if self.pid(ProcessType::Main).is_some_and(|m| m != pid) {
                    self.pids[ProcessType::Main.index()] = Some(pid);
                    self.group = Some(pgid);
                }
            }
            Input::Regrouped { pgid } => {
                if self.pid(ProcessType::Main).is_some() {
                    self.group = Some(pgid);
                }
            }
            Input::StoppedItself { pid } => {
                if self.waiting == Waiting::Stop && self.pid(ProcessType::Main) == Some(pid) {
                    self.timer_gen += 1;
                    out.push(Action::Continue { pid });
                    self.waiting = Waiting::Nothing;
                    self.advance(latest, now, &mut out);
                }
            }
            Input::GroupEmpty => {
                self.group = None;
                if self.state == State::Killed
                    && self.waiting == Waiting::Kill
                    && !self.main_alive()
                {
                    self.timer_gen += 1;
                    self.waiting = Waiting::Nothing;
                    self.advance(latest, now, &mut out);
                }
            }
            Input::EventDone => {
                if self.waiting == Waiting::Event {
                    self.waiting = Waiting::Nothing;
                    self.advance(latest, now, &mut out);
                }
            }
            Input::Timer { gen } => {
                if gen != self.timer_gen {
                    return Ok(out);
                }
                match (self.state, self.waiting) {
                    (State::Killed, Waiting::Kill) => {
                        if let Some(pgid) = self.group {
                            let main = self.pid(ProcessType::Main).unwrap_or(pgid);
                            out.push(Action::Log(format!(
                                "Sending KILL signal to {} main process ({main})",
                                self.label()
                            )));
                            out.push(Action::KillGroup { pgid, signal: 9 });
                            if self.why.is_none() {
                                let secs = self.class.kill_timeout_secs;
                                self.why = Some(Why {
                                    reason: Reason::KillTimeout { secs },
                                    message: format!(
                                        "did not stop within the kill timeout ({secs} s): killed"
                                    ),
                                    at: now,
                                });
                            }
                        }
                    }
                    (State::Spawned, Waiting::Probe) => {
                        let t = self.ready_timeout();
                        out.push(Action::Log(format!(
                            "{} health ready probe did not succeed within {t} s",
                            self.label()
                        )));
                        self.fail_because(
                            FailedProcess::Process(ProcessType::Main),
                            None,
                            None,
                            now,
                        );
                        let message =
                            format!("main process not ready within {t} s (health ready probe)");
                        self.failure_detail = Some(message.clone());
                        self.why = Some(Why {
                            reason: Reason::ReadyTimeout,
                            message,
                            at: now,
                        });
                        self.goal = Goal::Stop;
                        self.waiting = Waiting::Nothing;
                        self.advance(latest, now, &mut out);
                    }
                    (State::Running, Waiting::Unhealthy) => {
                        if let Some(pid) = self.pid(ProcessType::Main) {
                            out.push(Action::Log(format!(
                                "Sending KILL signal to {} main process ({pid})",
                                self.label()
                            )));
                            out.push(Action::KillGroup {
                                pgid: self.group.unwrap_or(pid),
                                signal: 9,
                            });
                        }
                    }
                    (State::Spawned, Waiting::Ready) => {
                        // Not ready in time: the start fails, and the
                        // process is stopped like any other.
                        let t = self.ready_timeout();
                        out.push(Action::Log(format!(
                            "{} main process did not send READY=1 within {t} s",
                            self.label()
                        )));
                        self.fail_because(
                            FailedProcess::Process(ProcessType::Main),
                            None,
                            None,
                            now,
                        );
                        let message = format!("main process not ready within {t} s");
                        self.failure_detail = Some(message.clone());
                        self.why = Some(Why {
                            reason: Reason::ReadyTimeout,
                            message,
                            at: now,
                        });
                        self.goal = Goal::Stop;
                        self.waiting = Waiting::Nothing;
                        self.advance(latest, now, &mut out);
                    }
                    (State::Spawned, Waiting::Stop) => {
                        if let Some(pid) = self.pid(ProcessType::Main) {
                            out.push(Action::Log(format!(
                                "{} main process ({pid}) did not stop itself as `expect stop` says within {} s; taking it as ready",
                                self.label(),
                                self.class.kill_timeout_secs.max(1)
                            )));
                        }
                        self.waiting = Waiting::Nothing;
                        self.advance(latest, now, &mut out);
                    }
                    (State::Spawned, Waiting::Fork(_)) => {
                        // The program did not fork as many times as its job
                        // file says: take what runs as the main process.
                        if let Some(pid) = self.pid(ProcessType::Main) {
                            out.push(Action::Log(format!(
                                "{} main process ({pid}) did not fork as `expect {}` says within {} s; taking it as the main process",
                                self.label(),
                                self.class.expect.name(),
                                self.class.kill_timeout_secs.max(1)
                            )));
                        }
                        self.waiting = Waiting::Nothing;
                        self.advance(latest, now, &mut out);
                    }
                    (State::PostStop, Waiting::Delay) => {
                        self.waiting = Waiting::Nothing;
                        self.enter(State::Starting, latest, now, &mut out);
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    fn fail(&mut self, process: FailedProcess, exit: Option<Exit>, now: Duration) {
        self.fail_because(process, exit, None, now);
    }

    fn fail_because(
        &mut self,
        process: FailedProcess,
        exit: Option<Exit>,
        spawn_error: Option<&str>,
        now: Duration,
    ) {
        if self.failed.is_some() {
            return;
        }
        self.failed = Some(Failure { process, exit });
        let p = process.name();
        let (reason, message) = match (process, exit, spawn_error) {
            (FailedProcess::Respawn, ..) => {
                let count = self.respawn_window.map_or(0, |(_, c)| c);
                let secs = self.class.respawn_limit.interval_secs;
                (
                    Reason::RespawnLimit,
                    format!("respawning too fast ({count} in {secs} s)"),
                )
            }
            (_, _, Some(e)) => (Reason::Spawn, format!("{p} process failed to spawn: {e}")),
            (FailedProcess::Process(t), exit, None) => {
                let reason = if t == ProcessType::Main {
                    Reason::Main
                } else {
                    Reason::Hook
                };
                let message = match exit {
                    Some(Exit::Code(c)) => format!("{p} process terminated with status {c}"),
                    Some(Exit::Signal(s)) => {
                        format!("{p} process killed by {} signal", signal::display(s))
                    }
                    Some(Exit::Unknown) => format!("{p} process ended with an unknown status"),
                    None => format!("{p} process failed"),
                };
                (reason, message)
            }
        };
        self.failure_detail = Some(message.clone());
        self.why = Some(Why {
            reason,
            message,
            at: now,
        });
    }

    /// Section 7: what the death of the main process means.
    fn main_exited(
        &mut self,
        status: Exit,
        latest: &Rc<JobClass>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        self.last_exit = Some(status);
        self.exited = Some(Exited {
            process: ProcessType::Main,
            exit: status,
            at: now,
        });
        match self.state {
            State::Killed => {
                // We killed it: not a failure. Move on once the group is gone.
                if self.group.is_none() && self.waiting == Waiting::Kill {
                    self.timer_gen += 1;
                    self.waiting = Waiting::Nothing;
                    self.advance(latest, now, out);
                }
                return;
            }
            State::Stopping => return,
            _ => {}
        }
        let unhealthy = self
            .unhealthy
            .take()
            .filter(|_| self.waiting == Waiting::Unhealthy);
        let oom = self.oom.take().filter(|_| status == Exit::Signal(9));
        if matches!(
            self.waiting,
            Waiting::Fork(_) | Waiting::Stop | Waiting::Ready | Waiting::Probe | Waiting::Unhealthy
        ) {
            // Exited without leaving a child to follow, or before it
            // stopped itself.
            self.timer_gen += 1;
            self.waiting = Waiting::Nothing;
        }
        let class = &self.class;
        let abnormal =
            self.goal == Goal::Start && (status != Exit::Code(0) || (class.respawn && !class.task));
        // Stopped for being unhealthy: a failure whatever its status.
        let failure = unhealthy.is_some() || (abnormal && !status.is_listed(&class.normal_exit));
        if failure && class.respawn {
            if self.runaway(now) {
                out.push(Action::Log(format!(
                    "{} respawning too fast, stopped",
                    self.label()
                )));
                self.fail(FailedProcess::Respawn, None, now);
                if let (Some(oom), Some(why)) = (&oom, &mut self.why) {
                    why.message = format!("{}; the last main process {oom}", why.message);
                    self.failure_detail = Some(why.message.clone());
                }
                self.goal = Goal::Stop;
            } else {
                let how = oom.as_deref().unwrap_or("ended");
                out.push(Action::Log(format!(
                    "{} main process {how}, respawning",
                    self.label()
                )));
                self.goal = Goal::Respawn;
                self.respawns += 1;
                self.respawn_delay = self.backoff_delay(now);
            }
        } else if failure {
            self.fail(FailedProcess::Process(ProcessType::Main), Some(status), now);
            if let Some(error) = unhealthy {
                let message = format!("unhealthy: {error}");
                self.failure_detail = Some(message.clone());
                self.why = Some(Why {
                    reason: Reason::Unhealthy,
                    message,
                    at: now,
                });
            } else if let Some(message) = oom {
                self.failure_detail = Some(message.clone());
                self.why = Some(Why {
                    reason: Reason::Oom,
                    message,
                    at: now,
                });
            }
            self.goal = Goal::Stop;
        } else {
            self.goal = Goal::Stop;
        }
        self.restart_pending = false;
        // A running post-start or pre-stop hook is waited for first.
        let hook_running = (self.state == State::PostStart
            && self.pid(ProcessType::PostStart).is_some())
            || (self.state == State::PreStop && self.pid(ProcessType::PreStop).is_some());
        if !hook_running && self.waiting == Waiting::Nothing {
            self.advance(latest, now, out);
        }
    }

    fn hook_exited(
        &mut self,
        process: ProcessType,
        status: Exit,
        latest: &Rc<JobClass>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let failed = status != Exit::Code(0);
        match process {
            ProcessType::PreStart | ProcessType::PostStop if failed => {
                self.exited = Some(Exited {
                    process,
                    exit: status,
                    at: now,
                });
                self.fail(FailedProcess::Process(process), Some(status), now);
                self.goal = Goal::Stop;
                self.restart_pending = false;
            }
            _ => {}
        }
        if self.waiting == Waiting::Exit(process) {
            self.waiting = Waiting::Nothing;
            self.advance(latest, now, out);
        }
    }

    /// Upstart's runaway check: a fixed window from the first respawn.
    fn runaway(&mut self, now: Duration) -> bool {
        let limit = self.class.respawn_limit;
        if limit.is_unlimited() {
            return false;
        }
        let secs = now.as_secs();
        match self.respawn_window {
            Some((start, count)) if secs.saturating_sub(start) < u64::from(limit.interval_secs) => {
                let count = count + 1;
                self.respawn_window = Some((start, count));
                count > limit.count
            }
            _ => {
                self.respawn_window = Some((secs, 1));
                false
            }
        }
    }

    /// The delay before a respawn: none, except under `respawn limit
    /// unlimited` for a main process that lived under a second.
    fn backoff_delay(&mut self, now: Duration) -> Duration {
        if !self.class.respawn_limit.is_unlimited() {
            return Duration::ZERO;
        }
        let lived = self
            .main_started
            .map_or(Duration::ZERO, |t| now.saturating_sub(t));
        if lived >= QUICK_EXIT {
            self.backoff = Duration::ZERO;
        } else if self.backoff.is_zero() {
            self.backoff = BACKOFF_MIN;
        } else {
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        self.backoff
    }

    /// Upstart's `job_next_state`.
    fn next_state(&mut self) -> State {
        use State::*;
        if self.goal == Goal::Respawn
            && matches!(
                self.state,
                Starting | PreStart | Spawned | PostStart | Running | PreStop
            )
        {
            self.goal = Goal::Start;
            return Stopping;
        }
        match self.state {
            Waiting => Starting,
            Starting | PreStart | Spawned if self.goal == Goal::Stop => Stopping,
            Starting => PreStart,
            PreStart => Spawned,
            Spawned => PostStart,
            // A main process that died meanwhile (say, during post-start,
            // with a `start` after it) cannot be "running": cycle through
            // stopping, which then starts it again.
            PostStart => {
                if self.goal == Goal::Stop || self.main_lost() {
                    Stopping
                } else {
                    Running
                }
            }
            Running => {
                if self.goal == Goal::Stop && self.main_alive() {
                    PreStop
                } else {
                    Stopping
                }
            }
            PreStop => {
                if self.goal == Goal::Stop || self.main_lost() {
                    Stopping
                } else {
                    self.from_pre_stop = true;
                    Running
                }
            }
            Stopping => Killed,
            Killed => PostStop,
            PostStop => {
                if self.goal == Goal::Respawn {
                    self.goal = Goal::Start;
                }
                if self.goal == Goal::Stop && self.restart_pending {
                    self.restart_pending = false;
                    self.goal = Goal::Start;
                }
                if self.goal == Goal::Start {
                    Starting
                } else {
                    Waiting
                }
            }
        }
    }

    fn advance(&mut self, latest: &Rc<JobClass>, now: Duration, out: &mut Vec<Action>) {
        // Before a respawn, the back-off delay (if any).
        if self.state == State::PostStop && self.goal != Goal::Stop && !self.respawn_delay.is_zero()
        {
            let after = std::mem::take(&mut self.respawn_delay);
            self.timer_gen += 1;
            out.push(Action::ArmTimer {
                gen: self.timer_gen,
                after,
            });
            self.waiting = Waiting::Delay;
            return;
        }
        // The expect condition holds: a ready probe must succeed too,
        // within what is left of the ready timeout (counted from spawn).
        if self.state == State::Spawned
            && self.waiting == Waiting::Nothing
            && self.goal == Goal::Start
            && !self.probe_passed
            && self.class.health.ready.is_some()
            && self.main_alive()
        {
            let limit = Duration::from_secs(u64::from(self.ready_timeout()));
            let spent = self
                .main_started
                .map_or(Duration::ZERO, |t| now.saturating_sub(t));
            self.waiting = Waiting::Probe;
            self.timer_gen += 1;
            out.push(Action::ArmTimer {
                gen: self.timer_gen,
                after: limit.saturating_sub(spent),
            });
            out.push(Action::Probe(Role::Ready));
            return;
        }
        let next = self.next_state();
        self.enter(next, latest, now, out);
    }

    /// Enters `state` and keeps going until something must be waited for.
    fn enter(
        &mut self,
        mut state: State,
        latest: &Rc<JobClass>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        loop {
            self.state = state;
            if !self.on_entry(latest, now, out) {
                return;
            }
            if self.state == State::Waiting {
                return;
            }
            if self.state == State::PostStop
                && self.goal != Goal::Stop
                && !self.respawn_delay.is_zero()
            {
                self.advance(latest, now, out);
                return;
            }
            state = self.next_state();
        }
    }

    /// The work on entering the current state. Returns true to go straight
    /// on to the next state, false to wait.
    fn on_entry(&mut self, latest: &Rc<JobClass>, _now: Duration, out: &mut Vec<Action>) -> bool {
        let has = |c: &JobClass, p: ProcessType| c.process(p).is_some();
        match self.state {
            State::Waiting => {
                out.push(Action::Emit {
                    event: JobEvent::Stopped,
                    blocking: false,
                    failure: self.failed.clone(),
                    respawn_exit: None,
                });
                out.push(Action::Destroy);
                false
            }
            State::Starting => {
                self.class = latest.clone();
                self.generation += 1;
                self.failed = None;
                self.failure_detail = None;
                self.why = None;
                self.stop_env.clear();
                self.from_pre_stop = false;
                out.push(Action::Emit {
                    event: JobEvent::Starting,
                    blocking: true,
                    failure: None,
                    respawn_exit: None,
                });
                self.waiting = Waiting::Event;
                false
            }
            State::PreStart | State::Spawned | State::PostStart => {
                let p = match self.state {
                    State::PreStart => ProcessType::PreStart,
                    State::Spawned => ProcessType::Main,
                    _ => ProcessType::PostStart,
                };
                if has(&self.class, p) && self.goal != Goal::Stop {
                    out.push(Action::Spawn(p));
                    self.waiting = Waiting::Spawn(p);
                    false
                } else {
                    true
                }
            }
            State::Running => {
                if self.goal != Goal::Start {
                    return true;
                }
                if !std::mem::take(&mut self.from_pre_stop) {
                    out.push(Action::Emit {
                        event: JobEvent::Started,
                        blocking: false,
                        failure: None,
                        respawn_exit: None,
                    });
                }
                // A task with no main process has nothing left to do.
                if self.class.task && !has(&self.class, ProcessType::Main) {
                    self.goal = Goal::Stop;
                    return true;
                }
                if self.class.health.alive.is_some() && self.main_alive() {
                    out.push(Action::Probe(Role::Alive));
                }
                false
            }
            State::PreStop => {
                if !self.class.health.is_empty() {
                    out.push(Action::StopProbes);
                }
                if has(&self.class, ProcessType::PreStop) && self.main_alive() {
                    out.push(Action::Spawn(ProcessType::PreStop));
                    self.waiting = Waiting::Spawn(ProcessType::PreStop);
                    false
                } else {
                    true
                }
            }
            State::Stopping => {
                if !self.class.health.is_empty() {
                    out.push(Action::StopProbes);
                }
                // With goal start, the main process died and is respawned.
                let respawn = self.goal == Goal::Start && self.failed.is_none();
                out.push(Action::Emit {
                    event: JobEvent::Stopping,
                    blocking: true,
                    failure: self.failed.clone(),
                    respawn_exit: if respawn { self.last_exit } else { None },
                });
                self.waiting = Waiting::Event;
                false
            }
            State::Killed => {
                let Some(pgid) = self.group.or(self.pid(ProcessType::Main)) else {
                    return true;
                };
                let sig = self.class.kill_signal;
                let main = self.pid(ProcessType::Main).unwrap_or(pgid);
                out.push(Action::Log(format!(
                    "Sending {} signal to {} main process ({main})",
                    signal::display(sig),
                    self.label()
                )));
                out.push(Action::KillGroup { pgid, signal: sig });
                self.timer_gen += 1;
                out.push(Action::ArmTimer {
                    gen: self.timer_gen,
                    after: Duration::from_secs(u64::from(self.class.kill_timeout_secs)),
                });
                self.waiting = Waiting::Kill;
                false
            }
            State::PostStop => {
                if has(&self.class, ProcessType::PostStop) {
                    out.push(Action::Spawn(ProcessType::PostStop));
                    self.waiting = Waiting::Spawn(ProcessType::PostStop);
                    false
                } else {
                    true
                }
            }
        }
    }
}

/// Upstart's messages for a process that ended.
fn exit_message(label: &str, process: ProcessType, pid: Pid, status: Exit) -> String {
    let p = process.name();
    match status {
        Exit::Code(0) => format!("{label} {p} process ({pid}) exited normally"),
        Exit::Code(c) => format!("{label} {p} process ({pid}) terminated with status {c}"),
        Exit::Signal(s) => format!(
            "{label} {p} process ({pid}) killed by {} signal",
            signal::display(s)
        ),
        Exit::Unknown => format!(
            "{label} {p} process ({pid}) ended; its status went to its parent, not to the daemon"
        ),
    }
}

#[cfg(test)]
mod tests;
