//! `upkeep top [--sort cpu|memory] [--interval SECS] [--json]`: what each
//! job costs, one line a job, heaviest first. On a terminal the table is
//! drawn again every interval until Ctrl-C, with CPU % over the last
//! interval; otherwise (a pipe, a file) it is printed once, as a plain
//! table with CPU % averaged since the job's main process started. The
//! daemon computes the costs when asked (`list` with costs), never by
//! polling; this client is what asks, and only while it runs.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::{out, Call};
use crate::control::{client, Command, Costs, InstanceStatus, Response};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    Cpu,
    Memory,
}

/// One line: an instance that runs or has processes, with its CPU %.
struct Row<'a> {
    st: &'a InstanceStatus,
    costs: &'a Costs,
    cpu_percent: f64,
}

pub(super) fn run(call: &Call) -> i32 {
    let (prog, args) = (call.prog, &call.args);
    if !args.positional.is_empty() {
        return prog.usage_error("top takes no arguments");
    }
    let sort = match args.value("sort").map(|v| v.to_string_lossy().into_owned()) {
        None => Sort::Cpu,
        Some(s) if s == "cpu" => Sort::Cpu,
        Some(s) if s == "memory" || s == "mem" => Sort::Memory,
        Some(s) => return prog.usage_error(format!("--sort takes cpu or memory, not {s:?}")),
    };
    let interval = match args
        .value("interval")
        .map(|v| v.to_string_lossy().parse::<f64>())
    {
        None => Duration::from_secs(2),
        Some(Ok(s)) if (0.1..=3600.0).contains(&s) => Duration::from_secs_f64(s),
        Some(_) => return prog.usage_error("--interval takes seconds, from 0.1 to 3600"),
    };
    let json = args.flag("json");
    let live = !json && std::io::stdout().is_terminal();
    let socket = args.socket();
    let mut before: HashMap<(String, String), (f64, Instant)> = HashMap::new();
    loop {
        let instances = match client::call(&socket, Command::List { costs: true }) {
            Ok(Response::Ok { instances, .. }) => instances,
            Ok(Response::Error { message }) => {
                prog.error(message);
                return 1;
            }
            Ok(_) => {
                prog.error("unexpected answer from the daemon");
                return 1;
            }
            Err(e) => {
                prog.error(e);
                return 1;
            }
        };
        let now = Instant::now();
        let rows = rows(&instances, &before, now, sort);
        if json {
            let mut text = String::new();
            for r in &rows {
                text.push_str(&row_json(r).to_string());
                text.push('\n');
            }
            out(&text);
            return 0;
        }
        let table = table(&instances, &rows, sort, live.then_some(interval));
        if !live {
            out(&table);
            return 0;
        }
        // Home, the table, then clear what an earlier, longer one left.
        out(&format!("\x1b[H{}\x1b[J", table.replace('\n', "\x1b[K\n")));
        before = rows_cpu(&instances, now);
        std::thread::sleep(interval);
    }
}

fn rows_cpu(all: &[InstanceStatus], now: Instant) -> HashMap<(String, String), (f64, Instant)> {
    all.iter()
        .filter_map(|s| {
            let c = s.costs.as_ref()?;
            Some(((s.job.clone(), s.instance.clone()), (c.cpu_seconds, now)))
        })
        .collect()
}

/// The instances worth a line (running, or with processes), sorted.
fn rows<'a>(
    all: &'a [InstanceStatus],
    before: &HashMap<(String, String), (f64, Instant)>,
    now: Instant,
    sort: Sort,
) -> Vec<Row<'a>> {
    let mut rows: Vec<Row> = all
        .iter()
        .filter_map(|st| {
            let costs = st.costs.as_ref()?;
            if costs.processes == 0 && st.goal != "start" {
                return None;
            }
            let key = (st.job.clone(), st.instance.clone());
            let cpu_percent = match (before.get(&key), costs.uptime_seconds) {
                (Some(&(cpu, at)), _) if now > at => {
                    let secs = now.duration_since(at).as_secs_f64();
                    ((costs.cpu_seconds - cpu).max(0.0) / secs) * 100.0
                }
                (_, Some(up)) if up > 0 => costs.cpu_seconds / up as f64 * 100.0,
                _ => 0.0,
            };
            Some(Row {
                st,
                costs,
                cpu_percent,
            })
        })
        .collect();
    let memory = |r: &Row| r.costs.pss_bytes.unwrap_or(r.costs.rss_bytes);
    rows.sort_by(|a, b| {
        let heavier = match sort {
            Sort::Cpu => b
                .cpu_percent
                .total_cmp(&a.cpu_percent)
                .then(b.costs.cpu_seconds.total_cmp(&a.costs.cpu_seconds)),
            Sort::Memory => memory(b).cmp(&memory(a)),
        };
        heavier
            .then_with(|| a.st.job.cmp(&b.st.job))
            .then_with(|| a.st.instance.cmp(&b.st.instance))
    });
    rows
}

fn row_json(r: &Row) -> serde_json::Value {
    let main = r.st.processes.iter().find(|p| p.process == "main");
    serde_json::json!({
        "v": crate::control::JSON_VERSION,
        "job": r.st.job,
        "instance": r.st.instance,
        "goal": r.st.goal,
        "state": r.st.state,
        "main_pid": main.map(|p| p.pid),
        "cpu_percent": (r.cpu_percent * 10.0).round() / 10.0,
        "costs": r.costs,
    })
}

fn table(all: &[InstanceStatus], rows: &[Row], sort: Sort, every: Option<Duration>) -> String {
    let failed = all.iter().filter(|s| s.failure.is_some()).count();
    let mut s = format!(
        "upkeep top: {} jobs, {} running, {} failed; by {}{}\n",
        all.len(),
        rows.len(),
        failed,
        if sort == Sort::Cpu { "CPU" } else { "memory" },
        match every {
            Some(d) => format!(", every {} s (Ctrl-C to quit)", d.as_secs_f64()),
            None => String::new(),
        }
    );
    let header = [
        "JOB", "STATE", "PID", "PROCS", "CPU%", "CPU", "RSS", "PSS", "FDS", "UP", "LOG",
    ];
    let mut cells: Vec<[String; 11]> = vec![header.map(str::to_string)];
    for r in rows {
        let c = r.costs;
        let name = if r.st.instance.is_empty() {
            crate::control::one_line(&r.st.job)
        } else {
            format!(
                "{} ({})",
                crate::control::one_line(&r.st.job),
                crate::control::one_line(&r.st.instance)
            )
        };
        let pid = r.st.processes.iter().find(|p| p.process == "main");
        cells.push([
            name,
            format!("{}/{}", r.st.goal, r.st.state),
            pid.map_or("-".into(), |p| p.pid.to_string()),
            c.processes.to_string(),
            format!("{:.1}", r.cpu_percent),
            duration(c.cpu_seconds),
            bytes(Some(c.rss_bytes)),
            bytes(c.pss_bytes),
            c.fds.map_or("-".into(), |n| n.to_string()),
            c.uptime_seconds.map_or("-".into(), |u| duration(u as f64)),
            bytes(Some(c.log_bytes)),
        ]);
    }
    let mut width = [0usize; 11];
    for row in &cells {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &cells {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(width).enumerate() {
            // Names and states to the left, figures to the right.
            if i < 2 {
                line.push_str(&format!("{cell:<w$}  "));
            } else {
                line.push_str(&format!("{cell:>w$}  "));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// `512B`, `12.3K`, `40.1M`, `1.2G`; `-` when unknown.
fn bytes(n: Option<u64>) -> String {
    let Some(n) = n else { return "-".into() };
    let units = ["K", "M", "G", "T"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    for u in units {
        if v < 1024.0 {
            return format!("{v:.1}{u}");
        }
        v /= 1024.0;
    }
    format!("{v:.1}P")
}

/// `0.42s`, `12s`, `3m05s`, `2h03m`, `4d02h`.
fn duration(secs: f64) -> String {
    if secs < 10.0 {
        return format!("{secs:.2}s");
    }
    let s = secs as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_short() {
        assert_eq!(bytes(Some(100)), "100B");
        assert_eq!(bytes(Some(64 << 20)), "64.0M");
        assert_eq!(bytes(None), "-");
        assert_eq!(duration(0.5), "0.50s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(7380.0), "2h03m");
    }
}
