//! `check-config [--conf-dir DIR]... [-i EVENT,...] [PATH|JOB]...`: checks
//! job files without a daemon. Prints every parse problem as
//! `PATH:LINE:COL: message`, then, in Upstart's format, every `start on` /
//! `stop on` that waits for an event nothing emits:
//!
//! ```text
//! foo
//!   start on: unknown job grape
//!   stop on: unknown event peach
//! ```
//!
//! As Upstart 1.13's: an expression that some event can still satisfy is
//! clean (`stop on static-network-up or starting rc-sysinit` is, though no
//! job emits `static-network-up`), and its unknown names are reported only
//! with `--warn`, which reports every unknown name.
//!
//! Exit 0 when nothing is reported, 1 otherwise.

use std::collections::BTreeSet;

use super::select::{conf_args, select};
use super::{out, Call};
use crate::conf::JobClass;
use crate::event::{glob, EventExpr, EventMatch, BUILTIN_EVENTS, JOB_EVENTS};

pub(super) fn run(call: &Call) -> i32 {
    let ignored: Vec<String> = call
        .args
        .values("ignore-events")
        .flat_map(|v| {
            let v = v.to_string_lossy().into_owned();
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let warn = call.args.flag("warn");
    let (conf_dirs, targets) = conf_args(&call.args);
    let sel = select(&conf_dirs, &targets);
    let mut report = String::new();
    for d in &sel.problems {
        report.push_str(&format!("{d}\n"));
    }
    for name in &sel.unknown {
        report.push_str(&format!("Invalid job class: {name}\n"));
    }
    for name in &sel.selected {
        for d in &sel.universe[name].diagnostics {
            report.push_str(&format!("{d}\n"));
        }
    }

    let jobs: Vec<&JobClass> = sel
        .universe
        .values()
        .filter_map(|l| l.job.as_ref())
        .collect();
    let known = Known {
        jobs: jobs.iter().map(|j| j.name.as_str()).collect(),
        emits: jobs
            .iter()
            .flat_map(|j| j.emits.iter().map(String::as_str))
            .collect(),
        ignored: ignored.iter().map(String::as_str).collect(),
    };
    for name in &sel.selected {
        let Some(job) = &sel.universe[name].job else {
            continue;
        };
        let mut lines = Vec::new();
        for (label, expr) in [("start on", &job.start_on), ("stop on", &job.stop_on)] {
            if let Some(expr) = expr {
                if !warn && satisfiable(expr, &known) {
                    continue;
                }
                for problem in unknown_events(expr, &known) {
                    lines.push(format!("  {label}: {problem}\n"));
                }
            }
        }
        if !lines.is_empty() {
            report.push_str(&format!("{}\n", job.name));
            report.extend(lines);
        }
    }
    out(&report);
    i32::from(!report.is_empty())
}

struct Known<'a> {
    jobs: BTreeSet<&'a str>,
    /// `emits` values, which may be globs.
    emits: Vec<&'a str>,
    ignored: Vec<&'a str>,
}

/// What a variable or glob stands for is only known when the job runs.
fn is_pattern(s: &str) -> bool {
    s.contains(['$', '*', '?', '['])
}

/// Whether some events could make `expr` true: an `or` needs one side, an
/// `and` both.
fn satisfiable(expr: &EventExpr, known: &Known) -> bool {
    match expr {
        EventExpr::Match(m) => problem(m, known).is_none(),
        EventExpr::And(l, r) => satisfiable(l, known) && satisfiable(r, known),
        EventExpr::Or(l, r) => satisfiable(l, known) || satisfiable(r, known),
    }
}

/// `unknown job X` / `unknown event X` for each operand nothing satisfies.
fn unknown_events(expr: &EventExpr, known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    for m in expr.matches() {
        if let Some(p) = problem(m, known) {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    problems
}

/// What is wrong with one operand, if nothing can satisfy it.
fn problem(m: &EventMatch, known: &Known) -> Option<String> {
    if JOB_EVENTS.contains(&m.name.as_str()) {
        match m.job_name() {
            Some(job) if !is_pattern(job) && !known.jobs.contains(job) => {
                Some(format!("unknown job {job}"))
            }
            _ => None,
        }
    } else if is_pattern(&m.name)
        || BUILTIN_EVENTS.contains(&m.name.as_str())
        || known.ignored.contains(&m.name.as_str())
        || known.emits.iter().any(|e| glob::matches(e, &m.name))
    {
        None
    } else {
        Some(format!("unknown event {}", m.name))
    }
}
