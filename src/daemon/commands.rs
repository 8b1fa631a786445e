//! What each control command does, with Upstart's error texts (reference
//! section 9): the conductor's side of serving a client.

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::clients::{destroyed_outcome, wait_outcome, WaitKind, Waiter};
use super::events::Finished;
use super::jobs::JobTable;
use super::{Daemon, Gone, Key};
use crate::conf::ProcessType;
use crate::control::{
    Command, EnvOp, ExitStatus, FailureStatus, InstanceStatus, ProcessStatus, Request, Response,
};
use crate::job::{Exit, Exited, Input, Instance, Refusal, Why};
use crate::process;

fn err(message: impl Into<String>) -> Option<Response> {
    Some(Response::Error {
        message: message.into(),
    })
}

fn ok() -> Option<Response> {
    Some(Response::ok(Vec::new()))
}

/// `web` / `web (inst)`, as Upstart's messages name an instance.
fn label(job: &str, instance: &str) -> String {
    if instance.is_empty() {
        job.to_string()
    } else {
        format!("{job} ({instance})")
    }
}

/// Who may give a command: `None` for anyone; otherwise the refusal a
/// peer without the daemon's authority (root or its own user) gets.
fn refusal(cmd: &Command) -> Option<String> {
    let job = |j: &str| format!("You do not have permission to modify job: {j}");
    match cmd {
        Command::List { .. }
        | Command::Status { .. }
        | Command::LogOpen { .. }
        | Command::Version
        | Command::Stats
        | Command::Monitor { .. }
        | Command::LogPriority { priority: None } => None,
        Command::LogPriority { .. } => {
            Some("You do not have permission to set the log priority".into())
        }
        Command::Env {
            op: EnvOp::List | EnvOp::Get { .. },
            ..
        } => Some("You do not have permission to read the job environment".into()),
        Command::Env { .. } => {
            Some("You do not have permission to modify the job environment".into())
        }
        Command::Start { job: j, .. }
        | Command::Stop { job: j, .. }
        | Command::Restart { job: j, .. }
        | Command::Reload { job: j, .. } => Some(job(j)),
        Command::Emit { .. } => Some("You do not have permission to emit events".into()),
        Command::ReopenLogs => Some("You do not have permission to reopen log files".into()),
        Command::ReExec => Some("You do not have permission to re-exec the daemon".into()),
        Command::ReloadConfiguration => {
            Some("You do not have permission to reload configuration".into())
        }
    }
}

impl Daemon {
    /// Serves a client's whole requests, one at a time, until one waits
    /// for a job or none is left.
    pub(super) fn serve(&mut self, token: usize) {
        self.clients.read(token);
        while let Some((uid, req)) = self.clients.next_request(token, &self.reactor) {
            match req {
                Err(message) => {
                    let resp = Response::Error { message };
                    self.clients.send(token, &resp, None, &self.reactor);
                }
                Ok(Request {
                    command: Command::LogOpen { job, instance, env },
                    ..
                }) => {
                    let authority = self.clients.authority(token);
                    let (resp, fd) = self.open_log(uid, authority, &job, instance.as_deref(), &env);
                    self.clients.send(token, &resp, fd, &self.reactor);
                }
                Ok(Request {
                    command: Command::Monitor { jobs },
                    ..
                }) => {
                    self.clients.subscribe(token, jobs, &self.reactor);
                    self.jobs.watched = true;
                }
                Ok(req) => match self.handle(token, req.command) {
                    Some(resp) => self.clients.send(token, &resp, None, &self.reactor),
                    None => self.clients.set_busy(token),
                },
            }
        }
        // Answered and gone: closed now.
        self.clients.flush(token, &self.reactor);
    }

    /// Answers who waited for events that finished.
    pub(super) fn finish(&mut self, finished: Vec<Finished>) {
        for f in finished {
            if let (Some(id), true) = (f.emitted, self.dlog.verbose) {
                self.dlog.log(&format!("event {}", self.bus.describe(id)));
            }
            let answer = if f.failed {
                crate::control::Response::Error {
                    message: "Event failed".into(),
                }
            } else {
                Response::ok(Vec::new())
            };
            for client in f.emitters {
                self.clients.reply(client, &answer, &self.reactor);
            }
        }
    }

    pub(super) fn answer(&mut self, answers: Vec<(usize, crate::control::Response)>) {
        for (client, resp) in answers {
            self.clients.reply(client, &resp, &self.reactor);
        }
    }

    /// Handles one request. `None` means the answer comes later (the client
    /// waits for a job).
    pub(super) fn handle(&mut self, client: usize, cmd: Command) -> Option<Response> {
        if !self.clients.authority(client) {
            if let Some(refused) = refusal(&cmd) {
                return err(refused);
            }
        }
        let closing = matches!(
            cmd,
            Command::Start { .. } | Command::Restart { .. } | Command::ReExec
        );
        if closing && self.shutdown.active {
            return err("The daemon is shutting down");
        }
        match cmd {
            Command::List { costs } => {
                let mut instances = self.list();
                if self.probes.any() {
                    for st in &mut instances {
                        st.health = self.health_of(&crate::job::key(&st.job, &st.instance));
                    }
                }
                if costs {
                    self.add_costs(&mut instances);
                }
                Some(Response::Ok {
                    instances,
                    broken: self.jobs.broken_files(),
                })
            }
            Command::Status {
                job,
                env,
                instance,
                costs,
            } => {
                let (class, name) = match self.jobs.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let key = std::rc::Rc::new((job.clone(), name.clone()));
                let mut st = match self.jobs.instances.get(&key) {
                    Some(inst) => self.jobs.status_of(inst, self.reactor.now()),
                    None if class.instance.is_empty() || name.is_empty() => self.at_rest(&job),
                    // A named instance at rest that is remembered.
                    None if self.jobs.at_rest.contains_key(&key) => {
                        self.jobs.rest_status(&key, self.reactor.now())
                    }
                    None => return err(format!("Unknown instance: {name}")),
                };
                if costs {
                    self.add_costs(std::slice::from_mut(&mut st));
                }
                st.health = self.health_of(&key);
                Some(Response::ok(vec![st]))
            }
            Command::Start {
                job,
                env,
                instance,
                wait,
            } => {
                let (class, name) = match self.jobs.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let key = std::rc::Rc::new((job.clone(), name.clone()));
                self.add_instance(&key, &class);
                match self.drive(&key, Input::Start(env)) {
                    Err(_) => err(format!("Job is already running: {}", label(&job, &name))),
                    Ok(d) => self.answer_or_wait(client, key, WaitKind::Start, wait, d),
                }
            }
            Command::Stop {
                job,
                env,
                instance,
                wait,
            } => {
                let (_, name) = match self.jobs.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let key = std::rc::Rc::new((job.clone(), name.clone()));
                if !self.jobs.instances.contains_key(&key) {
                    return err(format!("Unknown instance: {name}"));
                }
                match self.drive(&key, Input::Stop(env)) {
                    Err(Refusal::AlreadyStopped) => err(format!(
                        "Job has already been stopped: {}",
                        label(&job, &name)
                    )),
                    Err(Refusal::AlreadyRunning) => err("unexpected refusal"),
                    Ok(d) => self.answer_or_wait(client, key, WaitKind::Stop, wait, d),
                }
            }
            Command::Restart {
                job,
                env,
                instance,
                wait,
            } => {
                let (_, name) = match self.jobs.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let key = std::rc::Rc::new((job.clone(), name.clone()));
                let Some(inst) = self.jobs.instances.get(&key) else {
                    return err(format!("Unknown instance: {name}"));
                };
                let generation = inst.generation;
                // Restart applies the job file as it is now.
                let (logs, changed) = self.jobs.reload_job(&job);
                for line in logs {
                    self.dlog.log(&line);
                }
                if let Some((old, new)) = changed {
                    let fin = self.bus.set_start_matcher(old.as_deref(), &new);
                    self.finish(fin);
                }
                match self.drive(&key, Input::Restart) {
                    Err(_) => err(format!(
                        "Job has already been stopped: {}",
                        label(&job, &name)
                    )),
                    Ok(d) => {
                        self.answer_or_wait(client, key, WaitKind::Restart(generation), wait, d)
                    }
                }
            }
            Command::Emit { event, env, wait } => {
                // Answered when the event finishes, unless `--no-wait`.
                self.emit(&event, env, None, wait.then_some(client));
                if wait {
                    None
                } else {
                    ok()
                }
            }
            Command::ReopenLogs => {
                self.output.reopen_logs(&self.dlog);
                ok()
            }
            Command::Version => Some(Response::Version {
                version: crate::VERSION.to_string(),
                handover_format: super::reexec::FORMAT,
            }),
            Command::Stats => Some(Response::Stats(self.stats())),
            // Answered with its descriptor, and made a subscriber, by
            // `serve`.
            Command::LogOpen { .. } | Command::Monitor { .. } => err("unexpected request"),
            Command::ReExec => {
                // Carried out at the end of this loop turn, once everything
                // is settled; the answer comes from the new image.
                self.clients.reexec.push(client);
                None
            }
            Command::ReloadConfiguration => {
                self.reload_configuration();
                ok()
            }
            Command::Env { op, instance } => {
                match self.jobs.env_command(op, instance.map(std::rc::Rc::new)) {
                    Ok(env) => Some(Response::Env {
                        env,
                        priority: None,
                    }),
                    Err(e) => err(e),
                }
            }
            Command::LogPriority { priority } => {
                if let Some(p) = priority {
                    let verbose = match p.as_str() {
                        "debug" | "info" => true,
                        "message" => false,
                        "warn" | "error" | "fatal" => return err(format!(
                            "The log priority {p} is not supported: upkeep's log has two levels, info (every goal and state change and every event, as -v) and message (the default)"
                        )),
                        _ => return err("The log priority given was not recognised"),
                    };
                    self.dlog.verbose = verbose;
                    self.jobs.verbose = verbose;
                }
                let now = if self.dlog.verbose { "info" } else { "message" };
                Some(Response::Env {
                    env: Vec::new(),
                    priority: Some(now.into()),
                })
            }
            Command::Reload { job, env, instance } => {
                let (_, name) = match self.jobs.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let Some(inst) = self.jobs.instances.get(&(job.clone(), name.clone())) else {
                    return err(format!("Unknown instance: {name}"));
                };
                let Some(pid) = inst.pid(ProcessType::Main) else {
                    return err(format!("Job is not running: {}", label(&job, &name)));
                };
                match process::kill_pid(pid, inst.class.reload_signal) {
                    Ok(()) => ok(),
                    Err(e) => err(format!(
                        "Unable to signal {}: {}",
                        label(&job, &name),
                        process::errno_text(e as i32)
                    )),
                }
            }
        }
    }

    /// Every job and instance, sorted by job name.
    fn list(&self) -> Vec<InstanceStatus> {
        let now = self.reactor.now();
        let jobs = &self.jobs;
        let mut all = Vec::with_capacity(jobs.classes.len());
        // Jobs whose file went away but still have instances, listed last.
        let mut gone = Vec::new();
        // The job files, the instances and the remembered rests are all
        // sorted by job name: walked side by side, with no lookup (and no
        // key made) for each job, so a list costs the same per job at
        // 10,000 jobs as at 100.
        let mut insts = jobs.instances.iter().peekable();
        let mut rests = jobs.at_rest.iter().peekable();
        for (name, class) in &jobs.classes {
            while let Some((_, inst)) = insts.next_if(|(k, _)| k.0 < *name) {
                gone.push(jobs.status_with(inst, None, now));
            }
            let mut any = false;
            while let Some((_, inst)) = insts.next_if(|(k, _)| k.0 == *name) {
                all.push(jobs.status_with(inst, Some(class), now));
                any = true;
            }
            if !any {
                all.push(self.at_rest(name));
            }
            // Named instances at rest that failed, as remembered.
            while rests.next_if(|(k, _)| k.0 < *name).is_some() {}
            while let Some((key, _)) = rests.next_if(|(k, _)| k.0 == *name) {
                if key.1.is_empty() {
                    continue;
                }
                let st = jobs.rest_status(key, now);
                if st.failure.is_some() && !jobs.instances.contains_key(key) {
                    all.push(st);
                }
            }
        }
        gone.extend(insts.map(|(_, inst)| jobs.status_with(inst, None, now)));
        all.append(&mut gone);
        all
    }

    /// What an instance's probes say, if it has any running.
    fn health_of(&self, key: &Key) -> Option<crate::control::HealthStatus> {
        let (t, latency) = self.probes.status(key)?;
        Some(crate::control::HealthStatus {
            state: match t.state {
                crate::health::State::Starting => "starting",
                crate::health::State::Healthy => "healthy",
                crate::health::State::Unhealthy { .. } => "unhealthy",
            }
            .into(),
            failures: t.failures,
            last_error: t.last_error.clone(),
            probe: t.role.name().into(),
            latency_ms: latency.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
        })
    }

    /// A job with no instance: `JOB stop/waiting`, what its `start on`
    /// waits for, and its files' problems.
    fn at_rest(&self, job: &str) -> InstanceStatus {
        let key = std::rc::Rc::new((job.to_string(), String::new()));
        let mut st = self.jobs.rest_status(&key, self.reactor.now());
        st.waiting_for = self.bus.waiting_for(job);
        st
    }

    /// `log-open`: a job's log, open for reading, for root, the daemon's
    /// user and the job's own user. The file is opened through the log
    /// dir's descriptor, never following a link, and must be the daemon's.
    fn open_log(
        &mut self,
        uid: u32,
        authority: bool,
        job: &str,
        instance: Option<&str>,
        env: &[String],
    ) -> (Response, Option<std::os::fd::OwnedFd>) {
        let error = |message: String| (Response::Error { message }, None);
        let (class, name) = match self.jobs.find(job, env, instance) {
            Ok(x) => x,
            Err(e) => return error(e),
        };
        let job_uid = class
            .setuid
            .as_deref()
            .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
            .map_or(self.host.uid, |u| u.uid.as_raw());
        if !authority && uid != job_uid {
            return error(format!(
                "You do not have permission to read the log of job: {job}"
            ));
        }
        let file = crate::log::file_name(job, &name);
        let path = self.host.cfg.log_dir.join(&file).display().to_string();
        match self.output.open_for_reading(&file) {
            Ok(f) => (Response::Log { file: path }, Some(f.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                error(format!("{path}: the job has written nothing yet"))
            }
            Err(e) => error(format!("{path}: {}", process::io_text(&e))),
        }
    }

    /// The daemon's own figures, read now.
    fn stats(&self) -> crate::control::DaemonStats {
        let me = process::usage::own();
        crate::control::DaemonStats {
            version: crate::VERSION.to_string(),
            pid: std::process::id() as i32,
            jobs: self.jobs.classes.len() as u64,
            events_emitted: self.bus.emitted(),
            clients: self.clients.count() as u64,
            fds: me.fds,
            rss_bytes: me.rss_bytes,
            started_at: me.started_at,
        }
    }

    /// The answer now (`--no-wait`, or the job is already there), or a
    /// waiter and `None`. `gone`: what the request's drive destroyed (the
    /// instance may be gone already, a task that finished at once).
    fn answer_or_wait(
        &mut self,
        client: usize,
        key: Key,
        kind: WaitKind,
        wait: bool,
        gone: Gone,
    ) -> Option<Response> {
        let now = self.reactor.now();
        let status = |jobs: &JobTable, i: &Instance| jobs.status_of(i, now);
        if !wait {
            let st = match self.jobs.instances.get(&key) {
                Some(i) => status(&self.jobs, i),
                None => InstanceStatus::waiting(&key.0),
            };
            return Some(Response::ok(vec![st]));
        }
        match self.jobs.instances.get(&key) {
            Some(inst) => {
                if let Some(resp) = wait_outcome(inst, kind, &|i| status(&self.jobs, i)) {
                    return Some(resp);
                }
            }
            None => {
                let gone = gone
                    .iter()
                    .rev()
                    .find(|i| i.job == key.0 && i.name == key.1);
                return Some(destroyed_outcome(&key, kind, gone));
            }
        }
        self.clients.waiters.push(Waiter { client, key, kind });
        None
    }
}

/// Monotonic `at` (the reactor's clock) as seconds since the epoch.
pub(super) fn wall_secs(at: Duration, now: Duration) -> u64 {
    let ago = now.saturating_sub(at);
    SystemTime::now()
        .checked_sub(ago)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn exit_status(e: &Exited, now: Duration) -> ExitStatus {
    let (status, signal) = match e.exit {
        Exit::Code(c) => (Some(c), None),
        Exit::Signal(n) => (None, Some(crate::conf::signal::display(n))),
        Exit::Unknown => (None, None),
    };
    ExitStatus {
        process: e.process.name().to_string(),
        status,
        signal,
        at: wall_secs(e.at, now),
    }
}

fn failure_status(w: &Why, now: Duration) -> FailureStatus {
    FailureStatus {
        kind: w.reason.name().to_string(),
        message: w.message.clone(),
        at: wall_secs(w.at, now),
    }
}

impl JobTable {
    /// What `status` shows of an instance at rest: `stop/waiting`, why it
    /// stopped and its last exit (if kept), its files' problems.
    pub(super) fn rest_status(&self, key: &Key, now: Duration) -> InstanceStatus {
        let mut st = InstanceStatus::waiting(&key.0);
        st.instance = key.1.clone();
        if let Some(r) = self.at_rest.get(key) {
            st.last_exit = r.exited.map(|e| exit_status(&e, now));
            st.failure = r.why.as_ref().map(|w| failure_status(w, now));
            st.respawns = r.respawns;
        }
        st.file_errors = self.conf_errors.get(&key.0).cloned().unwrap_or_default();
        st
    }

    /// An instance's status, as `status` and `list` show it.
    pub(super) fn status_of(&self, inst: &Instance, now: Duration) -> InstanceStatus {
        self.status_with(inst, self.classes.get(&inst.job), now)
    }

    /// [`Self::status_of`] with the instance's job file as it is now
    /// already found (`None`: the file went away).
    fn status_with(
        &self,
        inst: &Instance,
        class: Option<&Rc<crate::conf::JobClass>>,
        now: Duration,
    ) -> InstanceStatus {
        let order = [
            ProcessType::Main,
            ProcessType::PreStart,
            ProcessType::PostStart,
            ProcessType::PreStop,
            ProcessType::PostStop,
        ];
        let processes = order
            .iter()
            .filter_map(|&p| {
                inst.pid(p).map(|pid| ProcessStatus {
                    process: p.name().to_string(),
                    pid,
                })
            })
            .collect();
        let started_at = inst.main_started.map(|t| wall_secs(t, now));
        InstanceStatus {
            job: inst.job.clone(),
            instance: inst.name.clone(),
            goal: inst.goal.name().to_string(),
            state: inst.state.name().to_string(),
            processes,
            started_at,
            respawns: inst.respawns,
            last_exit: inst.exited.map(|e| exit_status(&e, now)),
            failure: inst.why.as_ref().map(|w| failure_status(w, now)),
            costs: None,
            health: None,
            waiting_for: None,
            file_changed: class.is_some_and(|c| !Rc::ptr_eq(c, &inst.class) && **c != *inst.class),
            file_deleted: class.is_none(),
            file_errors: self.conf_errors.get(&inst.job).cloned().unwrap_or_default(),
        }
    }
}
