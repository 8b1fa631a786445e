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
    // Notes and warnings about where a job will not start: on stderr, and
    // never in the exit status.
    let mut notes = String::new();
    let apparmor = crate::process::apparmor::enabled();
    for name in &sel.selected {
        let loaded = &sel.universe[name];
        if let Some(job) = &loaded.job {
            notes.push_str(&confinement_notes(job, &loaded.files, apparmor));
        }
    }
    eprint!("{notes}");
    out(&report);
    i32::from(!report.is_empty())
}

/// `PATH:LINE: note: …` for each stanza that asks for cgroups (the job
/// does not start where the daemon cannot manage them), and `PATH:LINE:
/// warning: …` for each `apparmor` stanza where AppArmor is not enabled.
fn confinement_notes(job: &JobClass, files: &crate::confdir::JobFiles, apparmor: bool) -> String {
    const CGROUP_WORDS: [&str; 5] = ["cgroup", "memory", "cpu", "tasks", "io"];
    let mut notes = String::new();
    let asks_apparmor = job.apparmor_load.is_some() || job.apparmor_switch.is_some();
    if !crate::cgroup::limits::asks(job) && (apparmor || !asks_apparmor) {
        return notes;
    }
    for path in std::iter::once(&files.conf).chain(files.override_file.as_ref()) {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let mut in_script = false;
        for (n, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(&first) = words.first() else {
                continue;
            };
            if in_script {
                in_script = !(first == "end" && words.get(1) == Some(&"script"));
                continue;
            }
            if words.last() == Some(&"script") && !first.starts_with('#') {
                in_script = true;
                continue;
            }
            let stanza = words.iter().take(2).copied().collect::<Vec<_>>().join(" ");
            let at = format!("{}:{}", path.display(), n + 1);
            if CGROUP_WORDS.contains(&first) && words.len() > 1 {
                notes.push_str(&format!(
                    "{at}: note: `{stanza}`: job {} does not start where the daemon cannot manage cgroups (a per-user daemon without a delegated subtree, a read-only cgroup tree, --no-cgroups; see docs/cgroups.md)\n",
                    job.name
                ));
            } else if first == "apparmor" && !apparmor {
                notes.push_str(&format!(
                    "{at}: warning: `{stanza}`: AppArmor is not enabled on this machine, so job {} does not start here\n",
                    job.name
                ));
            }
        }
    }
    notes
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
