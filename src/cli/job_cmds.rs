//! The commands that talk to the daemon: `start`, `stop`, `restart`,
//! `reload`, `status`, `list`. Output is Upstart's (`web start/running,
//! process 1234`); `--json` prints the daemon's answer as JSON instead.

use super::{out, Call};
use crate::control::{client, valid_assignment, Command, Response, Versioned};

pub(super) fn run(call: &Call) -> i32 {
    let (prog, command, args) = (call.prog, call.name, &call.args);
    let flag = |long| args.options_include(long) && args.flag(long);
    let (wait, json, quiet) = (!flag("no-wait"), flag("json"), flag("quiet"));
    let mut positional = args
        .positional
        .iter()
        .map(|v| v.to_string_lossy().into_owned());
    let first = positional.next();
    let mut env = Vec::new();
    for v in positional {
        if !valid_assignment(&v) {
            prog.error("Env must be KEY=VALUE pairs");
            return 1;
        }
        env.push(v);
    }
    let job = || first.clone();
    let cmd = match command {
        "list" | "reload-configuration" | "reopen-logs" | "re-exec" => {
            if first.is_some() || !env.is_empty() {
                return prog.usage_error(format!("{command} takes no arguments"));
            }
            match command {
                "list" => Command::List {
                    costs: flag("costs"),
                },
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
            Command::Emit { event, env, wait }
        }
        _ => {
            // Inside a job, no name means the calling instance (reference
            // 9.2), and never waiting: the caller is one of the processes
            // the wait would be for.
            let (job, instance, wait) = match (job(), calling_instance()) {
                (Some(job), _) => (job, None, wait),
                (None, Some((job, instance))) => (job, Some(instance), false),
                (None, None) => return prog.usage_error("missing job name"),
            };
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
                _ => Command::Status {
                    job,
                    env,
                    instance,
                    costs: json,
                },
            }
        }
    };
    match client::call(&args.socket(), cmd) {
        Err(e) => {
            prog.error(e);
            1
        }
        Ok(
            Response::Log { .. }
            | Response::Version { .. }
            | Response::Env { .. }
            | Response::Stats(_),
        ) => {
            prog.error("unexpected answer from the daemon");
            1
        }
        Ok(Response::Error { message }) => {
            prog.error(message);
            1
        }
        Ok(Response::Ok { instances, broken }) => {
            if json {
                let mut all = instances.iter().map(Versioned::new);
                let mut text = if command == "list" {
                    serde_json::to_string_pretty(&all.collect::<Vec<_>>())
                } else {
                    serde_json::to_string_pretty(&all.next())
                }
                .unwrap_or_default();
                text.push('\n');
                out(&text);
            } else if !quiet
                && !matches!(
                    command,
                    "reload" | "emit" | "reload-configuration" | "reopen-logs" | "re-exec"
                )
            {
                // A job file with errors that defines no job gets a line of
                // its own, in name order among the jobs.
                let mut lines: Vec<(&str, String)> = instances
                    .iter()
                    .map(|i| (i.job.as_str(), i.upstart_lines()))
                    .chain(broken.iter().map(|b| {
                        let line = format!("{} (job file has errors: {})\n", b.job, b.error);
                        (b.job.as_str(), line)
                    }))
                    .collect();
                lines.sort_by(|a, b| a.0.cmp(b.0));
                let text: String = lines.into_iter().map(|(_, l)| l).collect();
                out(&text);
            }
            0
        }
    }
}

/// The job and instance a job's own process belongs to, from the
/// environment the daemon gives every job process. Both must be set, as
/// with Upstart's `initctl` (the instance is empty for a single-instance
/// job); `UPSTART_JOB` alone is not a job's process.
pub(super) fn calling_instance() -> Option<(String, String)> {
    let job = std::env::var("UPSTART_JOB")
        .ok()
        .filter(|j| !j.is_empty())?;
    let instance = std::env::var("UPSTART_INSTANCE").ok()?;
    Some((job, instance))
}
