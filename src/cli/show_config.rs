//! `show-config [--conf-dir DIR]... [--json] [PATH|JOB]...`: each job in
//! full, as normalised job-file text that parses back to the same job.

use super::select::{conf_args, select};
use super::{json, out, Call};
use crate::conf::print::to_job_file;

pub(super) fn run(call: &Call) -> i32 {
    let prog = call.prog;
    let (as_json, enumerate) = (call.args.flag("json"), call.args.flag("enumerate"));
    let (conf_dirs, targets) = conf_args(&call.args);
    let sel = select(&conf_dirs, &targets);
    let mut failed = false;
    for d in &sel.problems {
        prog.error(d);
        failed = true;
    }
    for name in &sel.unknown {
        prog.error(format!("Unknown job: {name}"));
        failed = true;
    }
    let mut text = String::new();
    let mut jobs = Vec::new();
    for name in &sel.selected {
        let loaded = &sel.universe[name];
        for d in &loaded.diagnostics {
            prog.error(d);
            failed = true;
        }
        let Some(job) = &loaded.job else { continue };
        if as_json {
            jobs.push(json::job(job, &loaded.files));
        } else if enumerate {
            text.push_str(&enumerated(job));
        } else {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("# {}: {}", job.name, loaded.files.conf.display()));
            if let Some(o) = &loaded.files.override_file {
                text.push_str(&format!(" + {}", o.display()));
            }
            text.push('\n');
            text.push_str(&to_job_file(job));
        }
    }
    if as_json {
        let mut s = serde_json::to_string_pretty(&serde_json::Value::Array(jobs))
            .unwrap_or_else(|_| "[]".to_string());
        s.push('\n');
        out(&s);
    } else {
        out(&text);
    }
    i32::from(failed)
}

/// Upstart's `show-config -e`: the job's name, then one line per event it
/// emits, and one per event its `start on` and `stop on` need:
///
/// ```text
/// web
///   emits web-ready
///   start on started (job: db, env:)
///   stop on runlevel (job:, env: [016])
/// ```
fn enumerated(job: &crate::conf::JobClass) -> String {
    let mut s = format!("{}\n", job.name);
    for e in &job.emits {
        s.push_str(&format!("  emits {e}\n"));
    }
    for (label, expr) in [("start on", &job.start_on), ("stop on", &job.stop_on)] {
        let Some(expr) = expr else { continue };
        for m in expr.matches() {
            let job_name = m.job_name();
            let mut named = false;
            let env: Vec<&str> = m
                .args
                .iter()
                .map(String::as_str)
                .filter(|a| {
                    // The argument that names the job is shown as `job:`.
                    let names_job = !named
                        && job_name.is_some()
                        && (Some(*a) == job_name || a.strip_prefix("JOB=") == job_name);
                    named |= names_job;
                    !names_job
                })
                .collect();
            let job = job_name.map(|j| format!(" {j}")).unwrap_or_default();
            let env = if env.is_empty() {
                String::new()
            } else {
                format!(" {}", env.join(" "))
            };
            s.push_str(&format!("  {label} {} (job:{job}, env:{env})\n", m.name));
        }
    }
    s
}
