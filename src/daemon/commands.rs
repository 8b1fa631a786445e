//! What each control command does, with Upstart's error texts (reference
//! section 9), and answering those who wait for a job.

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Daemon, Key, WaitKind, Waiter};
use crate::conf::{JobClass, ProcessType};
use crate::control::{Command, InstanceStatus, ProcessStatus, Response};
use crate::event::expand;
use crate::job::{FailedProcess, Goal, Input, Instance, Refusal, State};
use crate::process;

/// Upstart's message, then upkeep's reason: `Job failed to start: main
/// process terminated with status 1`.
fn with_detail(what: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("{what}: {d}"),
        None => what.to_string(),
    }
}

fn err(message: impl Into<String>) -> Option<Response> {
    Some(Response::Error {
        message: message.into(),
    })
}

/// `web` / `web (inst)`, as Upstart's messages name an instance.
fn label(job: &str, instance: &str) -> String {
    if instance.is_empty() {
        job.to_string()
    } else {
        format!("{job} ({instance})")
    }
}

/// The status of a job that has no instance.
fn waiting_status(job: &str) -> InstanceStatus {
    InstanceStatus::waiting(job)
}

impl Daemon {
    /// Handles one request. `None` means the answer comes later (the client
    /// waits for a job).
    pub(super) fn handle(&mut self, client: usize, uid: u32, cmd: Command) -> Option<Response> {
        let may_modify = uid == 0 || uid == self.my_uid;
        self.last_destroyed.clear();
        match cmd {
            Command::List => {
                let mut all = Vec::new();
                for name in self.classes.keys() {
                    let mut any = false;
                    for inst in self.instances.values().filter(|i| &i.job == name) {
                        all.push(self.status_of(inst));
                        any = true;
                    }
                    if !any {
                        let mut st = waiting_status(name);
                        st.waiting_for = self.waiting_for(name);
                        st.file_errors = self.conf_errors.get(name).cloned().unwrap_or_default();
                        all.push(st);
                    }
                }
                // Jobs whose file went away but still have instances.
                for inst in self
                    .instances
                    .values()
                    .filter(|i| !self.classes.contains_key(&i.job))
                {
                    all.push(self.status_of(inst));
                }
                Some(Response::Ok { instances: all })
            }
            Command::Status { job, env, instance } => {
                let (class, name) = match self.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                match self.instances.get(&(job.clone(), name.clone())) {
                    Some(inst) => Some(Response::Ok {
                        instances: vec![self.status_of(inst)],
                    }),
                    None if class.instance.is_empty() || name.is_empty() => {
                        let mut st = waiting_status(&job);
                        st.waiting_for = self.waiting_for(&job);
                        st.file_errors = self.conf_errors.get(&job).cloned().unwrap_or_default();
                        Some(Response::Ok {
                            instances: vec![st],
                        })
                    }
                    None => err(format!("Unknown instance: {name}")),
                }
            }
            Command::Start {
                job,
                env,
                instance,
                wait,
            } => {
                if !may_modify {
                    return err(format!("You do not have permission to modify job: {job}"));
                }
                if self.shutting_down {
                    return err("The daemon is shutting down");
                }
                let (class, name) = match self.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let key = (job.clone(), name.clone());
                if !self.instances.contains_key(&key) {
                    let inst = Instance::new(&job, &name, class, Vec::new());
                    self.add_instance(key.clone(), inst);
                }
                if self.drive(&key, Input::Start(env)).is_err() {
                    return err(format!("Job is already running: {}", label(&job, &name)));
                }
                self.answer_or_wait(client, key, WaitKind::Start, wait)
            }
            Command::Stop {
                job,
                env,
                instance,
                wait,
            } => {
                if !may_modify {
                    return err(format!("You do not have permission to modify job: {job}"));
                }
                let (_, name) = match self.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let key = (job.clone(), name.clone());
                if !self.instances.contains_key(&key) {
                    return err(format!("Unknown instance: {name}"));
                }
                match self.drive(&key, Input::Stop(env)) {
                    Err(Refusal::AlreadyStopped) => err(format!(
                        "Job has already been stopped: {}",
                        label(&job, &name)
                    )),
                    Err(Refusal::AlreadyRunning) => err("unexpected refusal"),
                    Ok(()) => self.answer_or_wait(client, key, WaitKind::Stop, wait),
                }
            }
            Command::Restart {
                job,
                env,
                instance,
                wait,
            } => {
                if !may_modify {
                    return err(format!("You do not have permission to modify job: {job}"));
                }
                if self.shutting_down {
                    return err("The daemon is shutting down");
                }
                let (_, name) = match self.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let key = (job.clone(), name.clone());
                let Some(inst) = self.instances.get(&key) else {
                    return err(format!("Unknown instance: {name}"));
                };
                let generation = inst.generation;
                // Restart applies the job file as it is now.
                self.reload_job(&job);
                match self.drive(&key, Input::Restart) {
                    Err(_) => err(format!(
                        "Job has already been stopped: {}",
                        label(&job, &name)
                    )),
                    Ok(()) => self.answer_or_wait(client, key, WaitKind::Restart(generation), wait),
                }
            }
            Command::Emit { event, env, wait } => {
                if !may_modify {
                    return err("You do not have permission to emit events");
                }
                let id = self.emit(&event, env, None, wait.then_some(client));
                if wait {
                    // Answered when the event finishes (see events.rs).
                    let _ = id;
                    None
                } else {
                    Some(Response::Ok {
                        instances: Vec::new(),
                    })
                }
            }
            Command::ReopenLogs => {
                if !may_modify {
                    return err("You do not have permission to reopen log files");
                }
                self.reopen_logs();
                Some(Response::Ok {
                    instances: Vec::new(),
                })
            }
            // Answered with its descriptor, in `clients.rs`.
            Command::LogOpen { .. } => err("unexpected log-open"),
            Command::ReExec => {
                if !may_modify {
                    return err("You do not have permission to re-exec the daemon");
                }
                if self.shutting_down {
                    return err("The daemon is shutting down");
                }
                // Carried out at the end of this loop turn, once everything
                // is settled; the answer comes from the new image.
                self.reexec_requests.push(client);
                None
            }
            Command::ReloadConfiguration => {
                if !may_modify {
                    return err("You do not have permission to reload configuration");
                }
                self.reload_configuration();
                Some(Response::Ok {
                    instances: Vec::new(),
                })
            }
            Command::Reload { job, env, instance } => {
                if !may_modify {
                    return err(format!("You do not have permission to modify job: {job}"));
                }
                let (_, name) = match self.find(&job, &env, instance.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return err(e),
                };
                let Some(inst) = self.instances.get(&(job.clone(), name.clone())) else {
                    return err(format!("Unknown instance: {name}"));
                };
                match inst.pid(ProcessType::Main) {
                    Some(pid) => {
                        let sig = inst.class.reload_signal;
                        match process::kill_pid(pid, sig) {
                            Ok(()) => Some(Response::Ok {
                                instances: Vec::new(),
                            }),
                            Err(e) => err(format!(
                                "Unable to signal {}: {}",
                                label(&job, &name),
                                process::errno_text(e as i32)
                            )),
                        }
                    }
                    None => err(format!("Job is not running: {}", label(&job, &name))),
                }
            }
        }
    }

    /// `log-open`: a job's log, open for reading, for root, the daemon's
    /// user and the job's own user. The file is opened through the log
    /// dir's descriptor, never following a link, and must be the daemon's.
    pub(super) fn open_log(
        &mut self,
        uid: u32,
        job: &str,
        env: &[String],
    ) -> (Response, Option<std::os::fd::OwnedFd>) {
        let error = |message: String| (Response::Error { message }, None);
        let (class, name) = match self.find(job, env, None) {
            Ok(x) => x,
            Err(e) => return error(e),
        };
        let job_uid = class
            .setuid
            .as_deref()
            .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
            .map_or(self.my_uid, |u| u.uid.as_raw());
        if uid != 0 && uid != self.my_uid && uid != job_uid {
            return error(format!(
                "You do not have permission to read the log of job: {job}"
            ));
        }
        let file = crate::log::file_name(job, &name);
        let path = self.cfg.log_dir.join(&file).display().to_string();
        let opened = self.log_dir.borrow_mut().open_read(&file);
        match opened {
            Ok(f) => (Response::Log { file: path }, Some(f.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                error(format!("{path}: the job has written nothing yet"))
            }
            Err(e) => error(format!("{path}: {}", process::io_text(&e))),
        }
    }

    /// The job's class and the instance name the variables give.
    /// The class of `job` and the name of the instance the request means:
    /// `instance` when the request names it, else the class's `instance`
    /// template expanded with `env`.
    fn find(
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
        let mut scope: Vec<String> = class
            .env
            .iter()
            .filter(|e| e.contains('='))
            .cloned()
            .collect();
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

    fn answer_or_wait(
        &mut self,
        client: usize,
        key: Key,
        kind: WaitKind,
        wait: bool,
    ) -> Option<Response> {
        if !wait {
            let status = self
                .instances
                .get(&key)
                .map(|i| self.status_of(i))
                .unwrap_or_else(|| waiting_status(&key.0));
            return Some(Response::Ok {
                instances: vec![status],
            });
        }
        // The job may already be there (nothing to spawn, or it finished).
        if let Some(inst) = self.instances.get(&key) {
            if let Some(resp) = self.wait_outcome(inst, kind) {
                return Some(resp);
            }
        } else {
            let failed = self.last_destroyed.get(&key).cloned().flatten();
            return Some(self.destroyed_outcome(&key, kind, failed.as_ref()));
        }
        self.waiters.push(Waiter { client, key, kind });
        None
    }

    /// Whether a waiter on a live instance can be answered now.
    fn wait_outcome(&self, inst: &Instance, kind: WaitKind) -> Option<Response> {
        match kind {
            WaitKind::Start | WaitKind::Restart(_) => {
                if let WaitKind::Restart(g) = kind {
                    if inst.generation <= g {
                        return None;
                    }
                }
                if inst.failed.is_some() && inst.goal == Goal::Stop {
                    let what = if kind == WaitKind::Start {
                        "Job failed to start"
                    } else {
                        "Job failed to restart"
                    };
                    return err(with_detail(what, inst.failure_detail.as_deref()));
                }
                if !inst.class.task && inst.state == State::Running && inst.goal == Goal::Start {
                    return Some(Response::Ok {
                        instances: vec![self.status_of(inst)],
                    });
                }
                None
            }
            WaitKind::Stop => {
                if inst.goal != Goal::Stop {
                    // Started again meanwhile: the stop is over.
                    return Some(Response::Ok {
                        instances: vec![self.status_of(inst)],
                    });
                }
                None
            }
        }
    }

    fn destroyed_outcome(
        &self,
        key: &Key,
        kind: WaitKind,
        failed: Option<&(FailedProcess, Option<String>)>,
    ) -> Response {
        let error = |what: &str, detail: &Option<String>| Response::Error {
            message: with_detail(what, detail.as_deref()),
        };
        match (kind, failed) {
            (WaitKind::Start, Some((_, d))) => error("Job failed to start", d),
            (WaitKind::Restart(_), Some((_, d))) => error("Job failed to restart", d),
            (WaitKind::Stop, Some((FailedProcess::Process(ProcessType::PostStop), d))) => {
                error("Job failed while stopping", d)
            }
            _ => Response::Ok {
                instances: vec![waiting_status(&key.0)],
            },
        }
    }

    /// After an instance moved: answer whoever it satisfied.
    pub(super) fn check_waiters(&mut self, key: &Key) {
        let Some(inst) = self.instances.get(key) else {
            return;
        };
        let mut answers = Vec::new();
        let mut keep = Vec::new();
        for w in std::mem::take(&mut self.waiters) {
            if &w.key == key {
                if let Some(resp) = self.wait_outcome(inst, w.kind) {
                    answers.push((w.client, resp));
                    continue;
                }
            }
            keep.push(w);
        }
        self.waiters = keep;
        for (client, resp) in answers {
            self.reply(client, &resp);
        }
    }

    /// An instance reached waiting and is gone: answer everyone waiting on it.
    pub(super) fn resolve_destroyed(&mut self, inst: &Instance) {
        let key = (inst.job.clone(), inst.name.clone());
        let failed = inst
            .failed
            .as_ref()
            .map(|f| (f.process, inst.failure_detail.clone()));
        self.last_destroyed.insert(key.clone(), failed.clone());
        let mut answers = Vec::new();
        let mut keep = Vec::new();
        for w in std::mem::take(&mut self.waiters) {
            if w.key == key {
                answers.push((
                    w.client,
                    self.destroyed_outcome(&key, w.kind, failed.as_ref()),
                ));
            } else {
                keep.push(w);
            }
        }
        self.waiters = keep;
        for (client, resp) in answers {
            self.reply(client, &resp);
        }
    }

    pub(super) fn status_of(&self, inst: &Instance) -> InstanceStatus {
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
        let started_at = inst.main_started.and_then(|t| {
            let ago = self.now().checked_sub(t)?;
            let wall = SystemTime::now().checked_sub(ago)?;
            Some(
                wall.duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_secs(),
            )
        });
        InstanceStatus {
            job: inst.job.clone(),
            instance: inst.name.clone(),
            goal: inst.goal.name().to_string(),
            state: inst.state.name().to_string(),
            processes,
            started_at,
            respawns: inst.respawns,
            last_exit: inst
                .last_exit
                .map(|e| e.event_var().unwrap_or_else(|| "unknown".into())),
            waiting_for: None,
            file_changed: self
                .classes
                .get(&inst.job)
                .is_some_and(|c| !Rc::ptr_eq(c, &inst.class) && **c != *inst.class),
            file_deleted: !self.classes.contains_key(&inst.job),
            file_errors: self.conf_errors.get(&inst.job).cloned().unwrap_or_default(),
        }
    }
}
