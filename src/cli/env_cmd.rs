//! Upstart's job-environment commands: `list-env`, `get-env NAME`,
//! `set-env [--retain] KEY=VALUE`, `unset-env NAME`, `reset-env`, each with
//! `-g`/`--global`; and `log-priority [PRIORITY]`.
//!
//! Outside a job, or with `--global`, they act on the global table: the
//! base of every job started afterwards (above upkeep's `PATH`/`TERM`,
//! below the job's `env` stanzas and start variables). Inside a job's
//! process (`UPSTART_JOB` and `UPSTART_INSTANCE` set) without `--global`,
//! on that instance's own table: its later processes get it. Only root and
//! the daemon's user may read or change either.

use super::{out, Call};
use crate::control::{client, Command, EnvOp, Response};

pub(super) fn run(call: &Call) -> i32 {
    let (prog, args, name) = (call.prog, &call.args, call.name);
    let words: Vec<String> = args
        .positional
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let command = if name == "log-priority" {
        if words.len() > 1 {
            return prog.usage_error("log-priority takes at most one priority");
        }
        Command::LogPriority {
            priority: words.first().cloned(),
        }
    } else {
        let one = |what: &str| match words.as_slice() {
            [w] => Ok(w.clone()),
            [] => Err(format!("missing {what}")),
            _ => Err(format!("{name} takes one {what}")),
        };
        let op = match name {
            "list-env" | "reset-env" if !words.is_empty() => {
                return prog.usage_error(format!("{name} takes no arguments"))
            }
            "list-env" => EnvOp::List,
            "reset-env" => EnvOp::Reset,
            "get-env" | "unset-env" => match one("variable name") {
                Ok(n) if name == "get-env" => EnvOp::Get { name: n },
                Ok(n) => EnvOp::Unset { name: n },
                Err(e) => return prog.usage_error(e),
            },
            _ => {
                let var = match one("KEY=VALUE") {
                    Ok(v) => v,
                    Err(e) => return prog.usage_error(e),
                };
                // `set-env KEY`: the value this command has for KEY.
                let var = if var.contains('=') {
                    var
                } else {
                    match std::env::var(&var) {
                        Ok(v) => format!("{var}={v}"),
                        Err(_) => {
                            prog.error(format!("{var} has no value here: give KEY=VALUE"));
                            return 1;
                        }
                    }
                };
                EnvOp::Set {
                    var,
                    retain: args.flag("retain"),
                }
            }
        };
        let instance = if args.flag("global") {
            None
        } else {
            super::job_cmds::calling_instance()
        };
        Command::Env { op, instance }
    };
    match client::call(&args.socket(), command) {
        Ok(Response::Env { env, priority }) => {
            let mut text = String::new();
            if let Some(p) = priority {
                if words.is_empty() {
                    text = format!("{p}\n");
                }
            } else if name == "get-env" {
                for e in &env {
                    let value = e.split_once('=').map_or("", |(_, v)| v);
                    text.push_str(&format!("{value}\n"));
                }
            } else {
                for e in &env {
                    text.push_str(&format!("{e}\n"));
                }
            }
            out(&text);
            0
        }
        Ok(Response::Error { message }) => {
            prog.error(message);
            1
        }
        Ok(_) => {
            prog.error("unexpected answer from the daemon");
            1
        }
        Err(e) => {
            prog.error(e);
            1
        }
    }
}
