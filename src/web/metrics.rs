//! `/metrics`: the Prometheus text format 0.0.4, written from one table of
//! metric definitions (name, type, help) and the daemon's answers. Names
//! carry the `upkeep_` prefix; a job's samples are labelled `job_name` and
//! `instance_name` (Prometheus itself puts `job` and `instance` on every
//! sample it scrapes, and `up` on every target).

use std::fmt::Write;

use crate::control::InstanceStatus;

/// What the text format's `Content-Type` says.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// One metric: its name, type and help.
struct Def {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const fn gauge(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const fn counter(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        kind: Kind::Counter,
        help,
    }
}

/// Every metric the gateway writes, in the order it writes them.
const DEFS: &[Def] = &[
    gauge(
        "upkeep_job_up",
        "1 when the instance's main process is running, else 0.",
    ),
    gauge(
        "upkeep_job_state",
        "The instance's state (the one labelled is 1).",
    ),
    gauge(
        "upkeep_job_goal_start",
        "1 when the instance's goal is start, else 0.",
    ),
    counter(
        "upkeep_job_respawns_total",
        "Respawns of the instance since it was started.",
    ),
    gauge(
        "upkeep_job_last_exit_code",
        "Exit status of the instance's last exit, if it exited with one.",
    ),
    gauge(
        "upkeep_job_start_time_seconds",
        "When the main process last started, seconds since the epoch.",
    ),
    gauge(
        "upkeep_job_healthy",
        "1 when the instance's health probe says healthy, 0 when not (only jobs with a probe).",
    ),
    gauge(
        "upkeep_job_failed",
        "1 when the job is at rest after a failure, else 0.",
    ),
    counter(
        "upkeep_job_cpu_seconds_total",
        "User and system CPU seconds of the instance's processes, live and reaped.",
    ),
    gauge(
        "upkeep_job_memory_rss_bytes",
        "Resident memory of the instance's live processes.",
    ),
    gauge(
        "upkeep_job_memory_pss_bytes",
        "Proportional set size of the instance's live processes.",
    ),
    gauge("upkeep_job_processes", "Live processes of the instance."),
    counter(
        "upkeep_job_log_written_bytes_total",
        "Bytes written to the job's log since the daemon started.",
    ),
    counter(
        "upkeep_job_log_dropped_bytes_total",
        "Bytes of output the job's log could not take.",
    ),
    gauge("upkeep_jobs", "Jobs the daemon knows."),
    gauge(
        "upkeep_instances",
        "Instances that exist now (not at rest).",
    ),
    counter(
        "upkeep_events_emitted_total",
        "Events the daemon has emitted since it started.",
    ),
    gauge("upkeep_clients", "Control-socket clients connected now."),
    gauge(
        "upkeep_daemon_open_fds",
        "Descriptors the daemon holds open.",
    ),
    gauge(
        "upkeep_daemon_resident_memory_bytes",
        "The daemon's resident memory.",
    ),
    gauge(
        "upkeep_daemon_start_time_seconds",
        "When the daemon started, seconds since the epoch.",
    ),
    gauge(
        "upkeep_build_info",
        "Always 1; the daemon's version is a label.",
    ),
    gauge(
        "upkeep_web_scrape_errors",
        "1 when the gateway could not ask the daemon everything for this scrape.",
    ),
];

/// The daemon's own figures (the `stats` answer).
#[derive(Debug, Clone, Default)]
pub struct DaemonFigures {
    pub jobs: u64,
    pub events_emitted: u64,
    pub clients: u64,
    pub fds: u64,
    pub rss_bytes: u64,
    pub started_at: u64,
    pub version: String,
}

/// A label value escaped as the format says: `\`, `"` and newline.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The samples of one scrape, by metric name.
#[derive(Default)]
struct Samples(Vec<(&'static str, String, f64)>);

impl Samples {
    fn add(&mut self, name: &'static str, labels: String, v: f64) {
        debug_assert!(DEFS.iter().any(|d| d.name == name), "{name}");
        self.0.push((name, labels, v));
    }
}

fn job_labels(i: &InstanceStatus) -> String {
    format!(
        "job_name=\"{}\",instance_name=\"{}\"",
        escape(&i.job),
        escape(&i.instance)
    )
}

/// The whole exposition: each metric's HELP and TYPE, then its samples.
pub fn render(
    instances: &[InstanceStatus],
    daemon: Option<&DaemonFigures>,
    errors: bool,
) -> String {
    let mut s = Samples::default();
    for i in instances {
        let l = job_labels(i);
        let running = i.state == "running" && i.processes.iter().any(|p| p.process == "main");
        s.add("upkeep_job_up", l.clone(), f64::from(u8::from(running)));
        s.add(
            "upkeep_job_state",
            format!("{l},state=\"{}\"", escape(&i.state)),
            1.0,
        );
        s.add(
            "upkeep_job_goal_start",
            l.clone(),
            f64::from(u8::from(i.goal == "start")),
        );
        s.add("upkeep_job_respawns_total", l.clone(), i.respawns as f64);
        if let Some(code) = i.last_exit.as_ref().and_then(|e| e.status) {
            s.add("upkeep_job_last_exit_code", l.clone(), f64::from(code));
        }
        if let Some(t) = i.started_at {
            s.add("upkeep_job_start_time_seconds", l.clone(), t as f64);
        }
        if let Some(h) = &i.health {
            if h.state != "starting" {
                let ok = u8::from(h.state == "healthy");
                s.add("upkeep_job_healthy", l.clone(), f64::from(ok));
            }
        }
        let failed = i.failure.as_ref().is_some_and(|f| f.kind != "kill-timeout");
        s.add("upkeep_job_failed", l.clone(), f64::from(u8::from(failed)));
        if let Some(c) = &i.costs {
            s.add("upkeep_job_cpu_seconds_total", l.clone(), c.cpu_seconds);
            s.add("upkeep_job_memory_rss_bytes", l.clone(), c.rss_bytes as f64);
            if let Some(p) = c.pss_bytes {
                s.add("upkeep_job_memory_pss_bytes", l.clone(), p as f64);
            }
            s.add("upkeep_job_processes", l.clone(), c.processes as f64);
            s.add(
                "upkeep_job_log_written_bytes_total",
                l.clone(),
                c.log_bytes as f64,
            );
            s.add(
                "upkeep_job_log_dropped_bytes_total",
                l,
                c.log_dropped as f64,
            );
        }
    }
    let live = instances
        .iter()
        .filter(|i| i.state != "waiting" || i.goal != "stop")
        .count();
    s.add("upkeep_instances", String::new(), live as f64);
    if let Some(d) = daemon {
        s.add("upkeep_jobs", String::new(), d.jobs as f64);
        s.add(
            "upkeep_events_emitted_total",
            String::new(),
            d.events_emitted as f64,
        );
        s.add("upkeep_clients", String::new(), d.clients as f64);
        s.add("upkeep_daemon_open_fds", String::new(), d.fds as f64);
        s.add(
            "upkeep_daemon_resident_memory_bytes",
            String::new(),
            d.rss_bytes as f64,
        );
        s.add(
            "upkeep_daemon_start_time_seconds",
            String::new(),
            d.started_at as f64,
        );
        s.add(
            "upkeep_build_info",
            format!("version=\"{}\"", escape(&d.version)),
            1.0,
        );
    }
    s.add(
        "upkeep_web_scrape_errors",
        String::new(),
        f64::from(u8::from(errors)),
    );
    let mut out = String::new();
    for d in DEFS {
        let mut mine = s.0.iter().filter(|(n, _, _)| *n == d.name).peekable();
        if mine.peek().is_none() {
            continue;
        }
        let kind = match d.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
        let _ = writeln!(out, "# TYPE {} {kind}", d.name);
        for (name, labels, v) in mine {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {}", number(*v));
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {}", number(*v));
            }
        }
    }
    out
}

/// A sample value: integers without a fraction, others as Rust prints
/// them (both are valid Go `ParseFloat` input).
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(job: &str, instance: &str) -> InstanceStatus {
        let mut i = InstanceStatus::waiting(job);
        i.instance = instance.to_string();
        i
    }

    #[test]
    fn hostile_instance_names_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let out = render(&[inst("web", "x\"} 1\nupkeep_jobs 99 #\\")], None, false);
        assert!(
            out.contains(
                "upkeep_job_up{job_name=\"web\",instance_name=\"x\\\"} 1\\nupkeep_jobs 99 #\\\\\"} 0\n"
            ),
            "{out}"
        );
        // No sample line of the injected name.
        assert!(!out.lines().any(|l| l.starts_with("upkeep_jobs ")), "{out}");
    }

    #[test]
    fn each_metric_has_its_help_and_type_once_before_its_samples() {
        let out = render(
            &[inst("a", ""), inst("b", "")],
            Some(&DaemonFigures::default()),
            false,
        );
        for d in DEFS {
            let helps = out.matches(&format!("# HELP {} ", d.name)).count();
            assert!(helps <= 1, "{}", d.name);
        }
        let up = out.find("# TYPE upkeep_job_up gauge\n").unwrap();
        assert!(out[up..].starts_with(
            "# TYPE upkeep_job_up gauge\nupkeep_job_up{job_name=\"a\",instance_name=\"\"} 0\n"
        ));
        assert!(out.contains("# TYPE upkeep_job_respawns_total counter\n"));
        assert!(out.contains("upkeep_build_info{version=\"\"} 1\n"));
    }

    #[test]
    fn numbers_are_integers_where_they_can_be() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1_700_000_000.0), "1700000000");
    }
}
