//! The commands that talk to the daemon: `start`, `stop`, `restart`,
//! `reload`, `status`, `list`. Output is Upstart's (`web start/running,
//! process 1234`); `--json` prints the daemon's answer as JSON instead.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{out, Prog};
use crate::control::{client, valid_assignment, Command, InstanceStatus, Response};
use crate::paths;

struct Args {
    job: Option<String>,
    env: Vec<String>,
    wait: bool,
    json: bool,
    socket: PathBuf,
}

fn parse(prog: &Prog, args: Vec<OsString>) -> Result<Args, i32> {
    let mut a = Args {
        job: None,
        env: Vec::new(),
        wait: true,
        json: false,
        socket: paths::default_socket(),
    };
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        use lexopt::prelude::*;
        match parser.next() {
            Ok(None) => break,
            Ok(Some(Short('n') | Long("no-wait"))) => a.wait = false,
            Ok(Some(Long("json"))) => a.json = true,
            Ok(Some(Short('q') | Long("quiet"))) => {}
            Ok(Some(Long("socket"))) => match parser.value() {
                Ok(v) => a.socket = v.into(),
                Err(e) => return Err(prog.usage_error(e)),
            },
            Ok(Some(Value(v))) => {
                let v = v.to_string_lossy().into_owned();
                if a.job.is_none() {
                    a.job = Some(v);
                } else if valid_assignment(&v) {
                    a.env.push(v);
                } else {
                    prog.error("Env must be KEY=VALUE pairs");
                    return Err(1);
                }
            }
            Ok(Some(other)) => return Err(prog.usage_error(other.unexpected())),
            Err(e) => return Err(prog.usage_error(e)),
        }
    }
    Ok(a)
}

pub(crate) fn run(prog: &Prog, command: &str, args: Vec<OsString>) -> i32 {
    let a = match parse(prog, args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let job = || a.job.clone();
    let cmd = match command {
        "list" | "reload-configuration" | "reopen-logs" | "re-exec" => {
            if a.job.is_some() {
                return prog.usage_error(format!("{command} takes no arguments"));
            }
            match command {
                "list" => Command::List,
                "reopen-logs" => Command::ReopenLogs,
                "re-exec" => Command::ReExec,
                _ => Command::ReloadConfiguration,
            }
        }
        "emit" => {
            let Some(event) = job() else {
                return prog.usage_error("missing event name");
            };
            if let Err(e) = crate::control::check_event_name(&event) {
                prog.error(e);
                return 1;
            }
            Command::Emit {
                event,
                env: a.env.clone(),
                wait: a.wait,
            }
        }
        _ => {
            // Inside a job, no name means the calling instance (reference
            // 9.2), and never waiting: the caller is one of the processes
            // the wait would be for.
            let (job, instance, wait) = match (job(), calling_instance()) {
                (Some(job), _) => (job, None, a.wait),
                (None, Some((job, instance))) => (job, Some(instance), false),
                (None, None) => return prog.usage_error("missing job name"),
            };
            let env = a.env.clone();
            match command {
                "start" => Command::Start {
                    job,
                    env,
                    instance,
                    wait,
                },
                "stop" => Command::Stop {
                    job,
                    env,
                    instance,
                    wait,
                },
                "restart" => Command::Restart {
                    job,
                    env,
                    instance,
                    wait,
                },
                "reload" => Command::Reload { job, env, instance },
                _ => Command::Status { job, env, instance },
            }
        }
    };
    match client::call(&a.socket, cmd) {
        Err(e) => {
            prog.error(e);
            1
        }
        Ok(Response::Log { .. }) => {
            prog.error("unexpected answer from the daemon");
            1
        }
        Ok(Response::Error { message }) => {
            prog.error(message);
            1
        }
        Ok(Response::Ok { instances }) => {
            if a.json {
                let v: Vec<serde_json::Value> = instances.iter().map(status_json).collect();
                let doc = if command == "list" {
                    serde_json::Value::Array(v)
                } else {
                    v.into_iter().next().unwrap_or(serde_json::Value::Null)
                };
                out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                ));
            } else if !matches!(
                command,
                "reload" | "emit" | "reload-configuration" | "reopen-logs" | "re-exec"
            ) {
                let text: String = instances
                    .iter()
                    .map(InstanceStatus::upstart_lines)
                    .collect();
                out(&text);
            }
            0
        }
    }
}

/// The job and instance a job's own process belongs to, from the
/// environment the daemon gives every job process.
fn calling_instance() -> Option<(String, String)> {
    let job = std::env::var("UPSTART_JOB")
        .ok()
        .filter(|j| !j.is_empty())?;
    let instance = std::env::var("UPSTART_INSTANCE").unwrap_or_default();
    Some((job, instance))
}

fn status_json(s: &InstanceStatus) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or(serde_json::Value::Null)
}
