//! The control protocol: newline-delimited JSON over a Unix socket.
//!
//! One request per line, one response line per request. This room owns the
//! message types (with `daemon/reexec.rs`'s handover, the only
//! `Serialize`/`Deserialize` types of upkeep), the client, and the framing
//! rules the server enforces.
//!
//! Version history (`v` in each request):
//! * 1: start, stop, restart, reload, status, list, emit,
//!   reload-configuration, reopen-logs; an optional `instance` on the job
//!   commands (older daemons ignore it); re-exec (a daemon that predates it
//!   answers that the command is unknown); log-open, answered with the log
//!   file's descriptor passed along (SCM_RIGHTS), which replaced log-path
//!   (clients never open a log file by its path). Commands are named,
//!   never numbered. `costs` on status and list (older daemons ignore it
//!   and answer without costs); `monitor`, a subscription; `env` and
//!   `log-priority`.

pub mod client;

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// The version of what `--json` prints and `monitor --json` streams
/// (`v` in each object; `docs/json.md`): a field is only ever added
/// within a version.
pub const JSON_VERSION: u32 = 1;
/// A request line longer than this is refused and the client dropped.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// At most this many `KEY=VALUE` entries in one request.
pub const MAX_ENV_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    Start {
        job: String,
        /// The instance by name, as a job names itself (`stop` with no
        /// arguments inside a job); otherwise it is expanded from `env`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default = "yes")]
        wait: bool,
    },
    Stop {
        job: String,
        /// The instance by name, as a job names itself (`stop` with no
        /// arguments inside a job); otherwise it is expanded from `env`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default = "yes")]
        wait: bool,
    },
    Restart {
        job: String,
        /// The instance by name, as a job names itself (`stop` with no
        /// arguments inside a job); otherwise it is expanded from `env`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default = "yes")]
        wait: bool,
    },
    Reload {
        job: String,
        /// The instance by name, as a job names itself (`stop` with no
        /// arguments inside a job); otherwise it is expanded from `env`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(default)]
        env: Vec<String>,
    },
    Status {
        job: String,
        /// The instance by name, as a job names itself (`stop` with no
        /// arguments inside a job); otherwise it is expanded from `env`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(default)]
        env: Vec<String>,
        /// With what the instance costs (read from /proc now).
        #[serde(default, skip_serializing_if = "is_false")]
        costs: bool,
    },
    List {
        /// With what each instance costs (read from /proc now): a plain
        /// list stays cheap at 10,000 jobs.
        #[serde(default, skip_serializing_if = "is_false")]
        costs: bool,
    },
    Emit {
        event: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default = "yes")]
        wait: bool,
    },
    ReloadConfiguration,
    ReopenLogs,
    /// Replace the daemon's image with its binary as it is on disk now,
    /// keeping every job; answered once the new image serves.
    ReExec,
    /// A job's log file, open for reading: the answer carries the
    /// descriptor (SCM_RIGHTS), for root, the daemon's user and the job's
    /// own user.
    LogOpen {
        job: String,
        /// The instance by name (the gateway's log links); otherwise it is
        /// expanded from `env`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(default)]
        env: Vec<String>,
    },
    /// The daemon's own figures (`upkeep web`'s `/metrics`); anyone may
    /// ask.
    Stats,
    /// The daemon's version and the re-exec handover format it writes
    /// (for `upkeep version --handover-formats`); anyone may ask.
    Version,
    /// A subscription (`upkeep monitor`): answered `ok`, then one JSON
    /// object a line for each thing that happens (`docs/json.md`), about
    /// these jobs only when any are named; anyone may subscribe.
    Monitor {
        #[serde(default)]
        jobs: Vec<String>,
    },
    /// The job-environment commands (Upstart 1.13's): on the global table
    /// (`instance` absent), the base of every job started afterwards, or
    /// on one instance's own (its later processes); for root and the
    /// daemon's user only.
    Env {
        op: EnvOp,
        /// (job, instance): the instance whose table it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<(String, String)>,
    },
    /// The daemon's log priority: read by anyone, set (`priority`) by root
    /// and the daemon's user.
    LogPriority {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<String>,
    },
}

/// What an `env` request does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum EnvOp {
    List,
    Get {
        name: String,
    },
    /// `KEY=VALUE`; with `retain`, a variable already set keeps its value.
    Set {
        var: String,
        retain: bool,
    },
    Unset {
        name: String,
    },
    Reset,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

/// A job file that defines no job because it has errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenFile {
    pub job: String,
    /// The first error, as `PATH:LINE:COL: message`.
    pub error: String,
}

/// One live process of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// `main`, `pre-start`, `post-start`, `pre-stop`, `post-stop`.
    pub process: String,
    pub pid: i32,
}

/// A process's exit, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// `main`, or the hook whose failure stopped the job.
    pub process: String,
    /// The exit status, if it exited.
    pub status: Option<i32>,
    /// The signal that killed it (`KILL`), if one did. Neither is set when
    /// the status went to another parent (`MAINPID`).
    pub signal: Option<String>,
    /// When (seconds since the epoch).
    pub at: u64,
}

impl ExitStatus {
    /// `status 3`, `signal KILL`, `pre-start process status 1`.
    pub fn describe(&self) -> String {
        let how = match (self.status, &self.signal) {
            (Some(c), _) => format!("status {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "unknown status".to_string(),
        };
        if self.process == "main" {
            how
        } else {
            format!("{} process {how}", self.process)
        }
    }
}

/// Why a job stopped, kept while it is at rest (until it next starts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureStatus {
    /// `spawn`, `respawn-limit`, `main`, `hook`, `ready-timeout`,
    /// `kill-timeout` (the last is no failure: the stop's `RESULT` was ok).
    pub kind: String,
    /// In words: `respawning too fast (11 in 5 s)`.
    pub message: String,
    /// When (seconds since the epoch).
    pub at: u64,
}

/// What an instance's `health` probes say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// `starting` (no verdict yet), `healthy` or `unhealthy`.
    pub state: String,
    /// Failures in a row now.
    pub failures: u32,
    /// The last failure's reason (`connection refused`, `HTTP status 500`).
    pub last_error: Option<String>,
    /// Which probe: `alive` once running, `ready` while starting.
    pub probe: String,
    /// How long its last try took to its result (ms).
    #[serde(default)]
    pub latency_ms: Option<f64>,
}

impl HealthStatus {
    /// `healthy`, `unhealthy (3 failures: connection refused)`.
    pub fn describe(&self) -> String {
        match (self.state.as_str(), &self.last_error) {
            ("unhealthy", Some(e)) => format!(
                "unhealthy ({} failure{}: {})",
                self.failures,
                if self.failures == 1 { "" } else { "s" },
                one_line(e)
            ),
            (state, _) => state.to_string(),
        }
    }
}

/// What an instance costs now, from `/proc` (and, for CPU, what its
/// reaped processes used).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// Live processes of the instance.
    pub processes: u64,
    /// User + system CPU seconds of the live processes and of those the
    /// daemon reaped (with what they reaped).
    pub cpu_seconds: f64,
    /// Resident memory summed over the live processes (bytes).
    pub rss_bytes: u64,
    /// Proportional set size summed over the live processes (bytes; a
    /// shared page counts once across them); null where unreadable.
    pub pss_bytes: Option<u64>,
    /// Open descriptors of the live processes; null where unreadable.
    pub fds: Option<u64>,
    /// Seconds since the main process started; null when it is not running.
    pub uptime_seconds: Option<u64>,
    /// What the instance's cgroup holds in memory (bytes); null where no
    /// memory controller counts it.
    pub memory_bytes: Option<u64>,
    /// Bytes written to the job's log since the daemon started.
    pub log_bytes: u64,
    /// Bytes of output the log could not take.
    pub log_dropped: u64,
}

/// The daemon's own figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStats {
    pub version: String,
    pub pid: i32,
    /// Jobs defined.
    pub jobs: u64,
    /// Events emitted since the daemon started (a re-exec keeps the count).
    pub events_emitted: u64,
    /// Control clients connected now (this one included).
    pub clients: u64,
    /// Descriptors open in the daemon.
    pub fds: u64,
    /// The daemon's resident memory (bytes).
    pub rss_bytes: u64,
    /// When the daemon started (seconds since the epoch).
    pub started_at: u64,
}

/// An instance's status, or a job with no instance (`stop/waiting`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub job: String,
    pub instance: String,
    pub goal: String,
    pub state: String,
    /// In Upstart's order: main, pre-start, post-start, pre-stop, post-stop.
    pub processes: Vec<ProcessStatus>,
    /// When the main process last started (seconds since the epoch).
    pub started_at: Option<u64>,
    pub respawns: u64,
    /// The last exit of the main process (or of the hook whose failure
    /// stopped the job), kept until the job next starts.
    pub last_exit: Option<ExitStatus>,
    /// Why the job stopped, while it is at rest.
    #[serde(default)]
    pub failure: Option<FailureStatus>,
    /// What it costs, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub costs: Option<Costs>,
    /// What its `health` probes say, while it has any running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// For a job at rest: what its `start on` still waits for.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// The job file changed since this instance started (the next start
    /// uses the new definition).
    #[serde(default)]
    pub file_changed: bool,
    /// The job file is gone (the job goes once it has stopped).
    #[serde(default)]
    pub file_deleted: bool,
    /// Problems of the job's files now; the last good definition stays.
    #[serde(default)]
    pub file_errors: Vec<String>,
}

/// An instance as `--json` prints it (`docs/json.md`): its status and the
/// format's version `v`, written straight out (no `Value` tree between).
#[derive(Serialize)]
pub struct Versioned<'a> {
    v: u32,
    #[serde(flatten)]
    status: &'a InstanceStatus,
}

impl<'a> Versioned<'a> {
    pub fn new(status: &'a InstanceStatus) -> Versioned<'a> {
        Versioned {
            v: JSON_VERSION,
            status,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Ok {
        instances: Vec<InstanceStatus>,
        /// For `list`: job files with errors that define no job (yet).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        broken: Vec<BrokenFile>,
    },
    /// The answer to `log-open`, with the descriptor attached; `file` is
    /// the log's path, for messages only.
    Log {
        file: String,
    },
    Error {
        message: String,
    },
    /// The answer to `env` (`KEY=VALUE` entries: the table, sorted, for
    /// list-env; the one variable for get-env; none for the changes) and
    /// to `log-priority` (`priority`).
    Env {
        #[serde(default)]
        env: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<String>,
    },
    /// The answer to `stats`.
    Stats(DaemonStats),
    /// The answer to `version`.
    Version {
        version: String,
        /// The handover format its `re-exec` writes.
        handover_format: u32,
    },
}

impl Response {
    /// `ok` with these instances (and no broken files: only `list` names
    /// those).
    pub fn ok(instances: Vec<InstanceStatus>) -> Response {
        Response::Ok {
            instances,
            broken: Vec::new(),
        }
    }
}

impl InstanceStatus {
    /// A job with no instance: `JOB stop/waiting`.
    pub fn waiting(job: &str) -> InstanceStatus {
        InstanceStatus {
            job: job.to_string(),
            instance: String::new(),
            goal: "stop".into(),
            state: "waiting".into(),
            processes: Vec::new(),
            started_at: None,
            respawns: 0,
            last_exit: None,
            failure: None,
            costs: None,
            health: None,
            waiting_for: None,
            file_changed: false,
            file_deleted: false,
            file_errors: Vec::new(),
        }
    }

    /// Upstart's status line(s): `web start/running, process 1234`, then a
    /// tab-indented line for each further live process.
    pub fn upstart_lines(&self) -> String {
        let mut s = one_line(&self.job);
        if !self.instance.is_empty() {
            s.push_str(&format!(" ({})", one_line(&self.instance)));
        }
        s.push_str(&format!(" {}/{}", self.goal, self.state));
        for (i, p) in self.processes.iter().enumerate() {
            let plain = matches!(p.process.as_str(), "main" | "pre-start" | "post-stop");
            if i == 0 {
                if plain {
                    s.push_str(&format!(", process {}", p.pid));
                } else {
                    s.push_str(&format!(", ({}) process {}", p.process, p.pid));
                }
            } else {
                s.push_str(&format!("\n\t{} process {}", p.process, p.pid));
            }
        }
        if let Some(h) = &self.health {
            s.push_str(&format!("\n\thealth: {}", h.describe()));
        }
        if let Some(line) = self.why_line() {
            s.push_str(&format!("\n\t{line}"));
        }
        if let Some(w) = &self.waiting_for {
            s.push_str(&format!("\n\twaiting for {w}"));
        }
        if self.file_changed {
            s.push_str("\n\tjob file changed since it started; the next start uses the new one");
        }
        if self.file_deleted {
            s.push_str("\n\tjob file deleted; the job goes once it has stopped");
        }
        for e in &self.file_errors {
            s.push_str(&format!(
                "\n\tjob file has errors, the last good definition stays in force: {}",
                one_line(e)
            ));
        }
        s.push('\n');
        s
    }
}

impl InstanceStatus {
    /// `failed: respawning too fast (11 in 5 s) at 2026-12-04 12:03:04;
    /// last exit: status 3` (local time), `last exit: status 0 at …`.
    pub fn why_line(&self) -> Option<String> {
        let when = |at: u64| {
            crate::process::time::timestamp(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(at),
            )
        };
        match (&self.failure, &self.last_exit) {
            (Some(f), exit) => {
                let label = if f.kind == "kill-timeout" {
                    "stopped"
                } else {
                    "failed"
                };
                let mut line = format!("{label}: {} at {}", one_line(&f.message), when(f.at));
                if let Some(e) = exit {
                    line.push_str(&format!("; last exit: {}", e.describe()));
                }
                Some(line)
            }
            (None, Some(e)) => Some(format!("last exit: {} at {}", e.describe(), when(e.at))),
            (None, None) => None,
        }
    }
}

/// A name as one line of output: control characters (a newline in an
/// instance name, say, which could forge a line of `list`) are shown
/// escaped (`\n`, `\t`, `\xNN`).
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Decodes a request line; the error is the message for the client.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("Malformed request: {e}"))?;
    // Commands go by name: serde would also take a variant's number.
    if !value.get("cmd").is_some_and(serde_json::Value::is_string) {
        return Err("Malformed request: `cmd` must be a command's name".into());
    }
    let req: Request =
        serde_json::from_value(value).map_err(|e| format!("Malformed request: {e}"))?;
    if req.v != PROTOCOL_VERSION {
        return Err(format!(
            "Unsupported protocol version {} (this daemon speaks {PROTOCOL_VERSION})",
            req.v
        ));
    }
    let env = match &req.command {
        Command::Start { env, .. }
        | Command::Stop { env, .. }
        | Command::Restart { env, .. }
        | Command::Reload { env, .. }
        | Command::Status { env, .. }
        | Command::Emit { env, .. }
        | Command::LogOpen { env, .. } => env.as_slice(),
        Command::List { .. }
        | Command::ReloadConfiguration
        | Command::ReopenLogs
        | Command::ReExec
        | Command::Version
        | Command::Stats
        | Command::Monitor { .. }
        | Command::LogPriority { .. } => &[],
        Command::Env { op, .. } => {
            match op {
                EnvOp::Set { var, .. } if !valid_assignment(var) => {
                    return Err(format!("Env must be KEY=VALUE pairs: {var:?}"))
                }
                EnvOp::Get { name } | EnvOp::Unset { name }
                    if name.is_empty() || name.contains(['=', '\0']) =>
                {
                    return Err(format!("Invalid variable name: {name:?}"))
                }
                _ => {}
            }
            &[]
        }
    };
    if let Command::Emit { event, .. } = &req.command {
        check_event_name(event)?;
    }
    if env.len() > MAX_ENV_ENTRIES {
        return Err("Too many variables".into());
    }
    if let Some(bad) = env.iter().find(|e| !valid_assignment(e)) {
        return Err(format!("Env must be KEY=VALUE pairs: {bad:?}"));
    }
    Ok(req)
}

/// The longest event name `emit` takes.
pub const MAX_EVENT_NAME: usize = 255;

/// An event name: not empty, at most [`MAX_EVENT_NAME`] bytes, and no
/// blank, `=`, NUL or control character.
pub fn check_event_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Name may not be empty string".into());
    }
    if name.len() > MAX_EVENT_NAME {
        return Err(format!(
            "Event name too long (the limit is {MAX_EVENT_NAME} bytes)"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '=')
    {
        return Err(format!("Invalid event name: {name:?}"));
    }
    Ok(())
}

/// `KEY=VALUE` with a non-empty key without `=` and no NUL anywhere.
pub fn valid_assignment(e: &str) -> bool {
    match e.split_once('=') {
        Some((k, _)) => !k.is_empty() && !e.contains('\0'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(procs: &[(&str, i32)]) -> InstanceStatus {
        InstanceStatus {
            goal: "start".into(),
            state: "post-start".into(),
            processes: procs
                .iter()
                .map(|(p, pid)| ProcessStatus {
                    process: p.to_string(),
                    pid: *pid,
                })
                .collect(),
            ..InstanceStatus::waiting("myjob")
        }
    }

    #[test]
    fn status_lines_follow_upstart() {
        assert_eq!(
            st(&[("main", 1234), ("post-start", 1357)]).upstart_lines(),
            "myjob start/post-start, process 1234\n\tpost-start process 1357\n"
        );
        assert_eq!(
            st(&[("post-start", 1357)]).upstart_lines(),
            "myjob start/post-start, (post-start) process 1357\n"
        );
        let mut s = st(&[]);
        s.instance = "tty1".into();
        s.state = "running".into();
        assert_eq!(s.upstart_lines(), "myjob (tty1) start/running\n");
    }

    #[test]
    fn requests_are_validated() {
        assert!(decode_request(br#"{"v":1,"cmd":"list"}"#).is_ok());
        assert!(decode_request(br#"{"v":1,"cmd":"start","job":"x","env":["A=1"]}"#).is_ok());
        assert!(decode_request(br#"{"v":1,"cmd":"start","job":"x","env":["A"]}"#).is_err());
        assert!(decode_request(br#"{"v":2,"cmd":"list"}"#).is_err());
        assert!(decode_request(b"\xff\xfe").is_err());
        // Unknown fields (a forged "uid", say) are ignored: authority comes
        // from the socket's peer credentials only.
        assert!(decode_request(br#"{"v":1,"cmd":"start","job":"x","uid":0}"#).is_ok());
        // A command by number (serde's variant index) is no command.
        assert!(decode_request(br#"{"v":1,"cmd":5}"#).is_err());
        assert!(decode_request(br#"{"v":1,"cmd":5,"job":"x"}"#).is_err());
    }
}
