//! `JobClass`: everything a job file says, typed, with Upstart's defaults
//! (`job_class_new` in Upstart's `init/job_class.c`).

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::event::EventExpr;

/// The five processes a job may define, in Upstart's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessType {
    Main,
    PreStart,
    PostStart,
    PreStop,
    PostStop,
}

impl ProcessType {
    pub const ALL: [ProcessType; 5] = [
        ProcessType::Main,
        ProcessType::PreStart,
        ProcessType::PostStart,
        ProcessType::PreStop,
        ProcessType::PostStop,
    ];

    /// The name Upstart uses in messages and job events (`PROCESS=main`).
    pub fn name(self) -> &'static str {
        match self {
            ProcessType::Main => "main",
            ProcessType::PreStart => "pre-start",
            ProcessType::PostStart => "post-start",
            ProcessType::PreStop => "pre-stop",
            ProcessType::PostStop => "post-stop",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a process is given: one command line, or a shell script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `exec CMD`: the command line exactly as written (quotes kept).
    Exec(String),
    /// `script … end script`: the body, indentation removed, each line
    /// ending in a newline.
    Script(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    None,
    Fork,
    Daemon,
    Stop,
    /// upkeep's extension: ready when the job sends `READY=1` to
    /// `$NOTIFY_SOCKET` (the sd_notify protocol).
    Notify,
}

impl Expect {
    pub fn name(self) -> &'static str {
        match self {
            Expect::None => "none",
            Expect::Fork => "fork",
            Expect::Daemon => "daemon",
            Expect::Stop => "stop",
            Expect::Notify => "notify",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    None,
    Log,
    Output,
    Owner,
}

impl Console {
    pub fn name(self) -> &'static str {
        match self {
            Console::None => "none",
            Console::Log => "log",
            Console::Output => "output",
            Console::Owner => "owner",
        }
    }
}

/// One value of `normal exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormalExit {
    Status(u32),
    Signal(i32),
}

/// `respawn limit COUNT INTERVAL`; 0 in either means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespawnLimit {
    pub count: u32,
    pub interval_secs: u32,
}

impl RespawnLimit {
    pub fn is_unlimited(self) -> bool {
        self.count == 0 || self.interval_secs == 0
    }
}

/// The resources of `limit`, named as in the job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Sigpending,
    Stack,
}

impl Resource {
    pub const ALL: [Resource; 14] = [
        Resource::As,
        Resource::Core,
        Resource::Cpu,
        Resource::Data,
        Resource::Fsize,
        Resource::Memlock,
        Resource::Msgqueue,
        Resource::Nice,
        Resource::Nofile,
        Resource::Nproc,
        Resource::Rss,
        Resource::Rtprio,
        Resource::Sigpending,
        Resource::Stack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::As => "as",
            Resource::Core => "core",
            Resource::Cpu => "cpu",
            Resource::Data => "data",
            Resource::Fsize => "fsize",
            Resource::Memlock => "memlock",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
            Resource::Rss => "rss",
            Resource::Rtprio => "rtprio",
            Resource::Sigpending => "sigpending",
            Resource::Stack => "stack",
        }
    }

    pub fn from_name(s: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// A soft and hard limit; `None` is `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// One `cgroup` controller/name pair and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub controller: String,
    /// `$UPSTART_CGROUP` unless given.
    pub name: String,
    pub settings: Vec<(String, String)>,
}

/// upkeep's direct limits (`memory max 50M`, `cpu quota 50%`, …), applied
/// through the job's cgroup (`cgroup::limits`). Unset: no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// `memory max SIZE`: bytes; past it the kernel's OOM killer acts.
    pub memory_max: Option<u64>,
    /// `memory high SIZE`: bytes; past it the job is throttled and reclaimed.
    pub memory_high: Option<u64>,
    /// `cpu quota P%`: percent of one CPU (200% is two).
    pub cpu_quota_percent: Option<u32>,
    /// `cpu weight N`: 1–10000, cgroup v2's scale (100 is the default).
    pub cpu_weight: Option<u32>,
    /// `tasks max N`: processes and threads.
    pub tasks_max: Option<u64>,
    /// `io weight N`: 1–10000 (100 is the default).
    pub io_weight: Option<u32>,
}

impl CgroupLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        *self != CgroupLimits::default()
    }
}

/// The default cgroup name, expanded when the job starts.
pub const DEFAULT_CGROUP_NAME: &str = "$UPSTART_CGROUP";

/// An `env-file` stanza: a file of `KEY=VALUE` lines read at every start
/// and respawn (`job::env_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// An absolute path.
    pub path: String,
    /// `env-file -PATH`: a missing file is no error.
    pub optional: bool,
}

impl EnvFile {
    /// As the stanza writes it.
    pub fn text(&self) -> String {
        format!("{}{}", if self.optional { "-" } else { "" }, self.path)
    }
}

/// A parsed job definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobClass {
    /// The job's name (`web`, `net/apache`); set by whoever loaded the file.
    pub name: String,
    pub start_on: Option<EventExpr>,
    pub stop_on: Option<EventExpr>,

    /// The main process (`exec` or `script`); the hooks are in [`Rare`].
    /// Read with [`JobClass::process`], set with [`JobClass::set_process`].
    main: Option<Command>,

    pub task: bool,
    pub respawn: bool,
    pub respawn_limit: RespawnLimit,
    pub expect: Expect,

    /// `KEY=VALUE`, or `KEY` (taken from the daemon's environment), in order.
    pub env: Vec<String>,
    pub console: Console,
    pub debug: bool,
    /// The stanzas most jobs leave unset, shared by every job that sets
    /// none of them (one allocation for all: 10,000 job definitions each
    /// carrying them inline cost 6 MiB). Read and written as if they were
    /// fields of the job (`class.setuid`), through `Deref`; the first
    /// write gives the job its own copy.
    pub rare: Rc<Rare>,
}

/// The rarely set part of a [`JobClass`] (its default: Upstart's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rare {
    /// The instance-name template; empty for a single-instance job.
    pub instance: String,
    pub umask: u32,
    /// `oom_score_adj` to set; 0 leaves it alone.
    pub oom_score: i32,

    pub kill_signal: i32,
    pub kill_timeout_secs: u32,
    pub reload_signal: i32,
    pub nice: Option<i32>,

    /// upkeep's `log` extension stanzas (unset: the daemon's defaults).
    pub log: LogSettings,
    /// upkeep's `ready timeout SECS`: how long `expect notify` waits for
    /// `READY=1` before the start fails (unset: [`DEFAULT_READY_TIMEOUT_SECS`]).
    pub ready_timeout_secs: Option<u32>,
    /// upkeep's `health` probes (none: the process's life is its health).
    pub health: super::health::Health,
    /// `pre-start`, `post-start`, `pre-stop`, `post-stop`, by
    /// [`ProcessType::index`] less one.
    pub hooks: [Option<Command>; 4],
    pub description: Option<String>,
    pub author: Option<String>,
    pub version: Option<String>,
    pub usage: Option<String>,
    pub emits: Vec<String>,
    pub normal_exit: Vec<NormalExit>,
    /// `env-file` stanzas, in order (above `env`, below event variables).
    pub env_files: Vec<EnvFile>,
    pub export: Vec<String>,

    pub setuid: Option<String>,
    pub setgid: Option<String>,
    pub chroot: Option<String>,
    pub chdir: Option<String>,
    pub limits: BTreeMap<Resource, Limit>,

    pub apparmor_load: Option<String>,
    pub apparmor_switch: Option<String>,
    pub cgroups: Vec<Cgroup>,
    /// upkeep's direct limits, applied through the job's cgroup.
    pub cgroup_limits: CgroupLimits,
}

impl Default for Rare {
    fn default() -> Rare {
        Rare {
            instance: String::new(),
            umask: DEFAULT_UMASK,
            oom_score: 0,
            kill_signal: libc_signal::SIGTERM,
            kill_timeout_secs: DEFAULT_KILL_TIMEOUT_SECS,
            reload_signal: libc_signal::SIGHUP,
            nice: Default::default(),
            log: Default::default(),
            ready_timeout_secs: Default::default(),
            health: Default::default(),
            hooks: Default::default(),
            description: Default::default(),
            author: Default::default(),
            version: Default::default(),
            usage: Default::default(),
            emits: Default::default(),
            normal_exit: Default::default(),
            env_files: Default::default(),
            export: Default::default(),
            setuid: Default::default(),
            setgid: Default::default(),
            chroot: Default::default(),
            chdir: Default::default(),
            limits: Default::default(),
            apparmor_load: Default::default(),
            apparmor_switch: Default::default(),
            cgroups: Default::default(),
            cgroup_limits: Default::default(),
        }
    }
}

/// How long `expect notify` waits for `READY=1` unless the job says.
pub const DEFAULT_READY_TIMEOUT_SECS: u32 = 90;

/// How a job's output is captured: a terminal (as Upstart) or a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCapture {
    Pty,
    Pipe,
}

/// When a log file is rotated by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPeriod {
    Daily,
    Never,
}

/// The `log` extension: `log pty|pipe`, `log size SIZE`, `log keep N`,
/// `log rotate daily|never`, `log compress yes|no`. Each unset field takes
/// the daemon's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSettings {
    pub capture: Option<LogCapture>,
    /// Rotate when the file reaches this many bytes; 0: no size cap.
    pub size: Option<u64>,
    /// Rotated files kept.
    pub keep: Option<u32>,
    pub rotate: Option<LogPeriod>,
    pub compress: Option<bool>,
    /// `log timestamps yes`: each line in the file starts with the time it
    /// was read.
    pub timestamps: Option<bool>,
}

pub const DEFAULT_RESPAWN_LIMIT: RespawnLimit = RespawnLimit {
    count: 10,
    interval_secs: 5,
};
pub const DEFAULT_KILL_TIMEOUT_SECS: u32 = 5;
pub const DEFAULT_UMASK: u32 = 0o022;

impl JobClass {
    /// A job with nothing set: Upstart's defaults.
    pub fn new(name: &str) -> JobClass {
        JobClass {
            name: name.to_string(),
            start_on: None,
            stop_on: None,
            main: None,
            task: false,
            respawn: false,
            respawn_limit: DEFAULT_RESPAWN_LIMIT,
            expect: Expect::None,
            env: Vec::new(),
            console: Console::Log,
            debug: false,
            rare: RARE.with(Rc::clone),
        }
    }

    pub fn process(&self, t: ProcessType) -> Option<&Command> {
        match t {
            ProcessType::Main => self.main.as_ref(),
            hook => self.rare.hooks[hook.index() - 1].as_ref(),
        }
    }

    pub fn set_process(&mut self, t: ProcessType, cmd: Option<Command>) {
        match t {
            ProcessType::Main => self.main = cmd,
            hook => self.hooks[hook.index() - 1] = cmd,
        }
    }
}

thread_local! {
    /// The unset rare stanzas every job shares until it sets one.
    static RARE: Rc<Rare> = Rc::new(Rare::default());
}

impl std::ops::Deref for JobClass {
    type Target = Rare;
    fn deref(&self) -> &Rare {
        &self.rare
    }
}

impl std::ops::DerefMut for JobClass {
    fn deref_mut(&mut self) -> &mut Rare {
        Rc::make_mut(&mut self.rare)
    }
}

/// The two default signal numbers, without pulling in a syscall crate here.
mod libc_signal {
    pub const SIGHUP: i32 = 1;
    pub const SIGTERM: i32 = 15;
}
