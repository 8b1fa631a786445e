//! A [`JobClass`] as normalised job-file text: every setting, defaults
//! included, one stanza per line, in a fixed order. Parsing the text back
//! gives the same `JobClass` (a property test holds us to it).

use std::fmt::Write;

use super::job_class::{
    Command, JobClass, LogCapture, LogPeriod, NormalExit, ProcessType, DEFAULT_CGROUP_NAME,
};
use super::signal;
use crate::event::quote_arg;

/// The job as job-file text.
pub fn to_job_file(job: &JobClass) -> String {
    let mut out = String::new();
    let o = &mut out;
    let text = |o: &mut String, stanza: &str, v: &Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(o, "{stanza} {}", quote_arg(v));
        }
    };
    text(o, "description", &job.description);
    text(o, "author", &job.author);
    text(o, "version", &job.version);
    text(o, "usage", &job.usage);
    if !job.instance.is_empty() {
        let _ = writeln!(o, "instance {}", quote_arg(&job.instance));
    }
    if let Some(e) = &job.start_on {
        let _ = writeln!(o, "start on {e}");
    }
    if let Some(e) = &job.stop_on {
        let _ = writeln!(o, "stop on {e}");
    }
    if !job.emits.is_empty() {
        let _ = writeln!(o, "emits {}", words(&job.emits));
    }
    if job.task {
        o.push_str("task\n");
    }
    if job.respawn {
        o.push_str("respawn\n");
    }
    let l = job.respawn_limit;
    if l.count == 0 && l.interval_secs == 0 {
        o.push_str("respawn limit unlimited\n");
    } else {
        let _ = writeln!(o, "respawn limit {} {}", l.count, l.interval_secs);
    }
    if !job.normal_exit.is_empty() {
        let vals: Vec<String> = job
            .normal_exit
            .iter()
            .map(|v| match *v {
                NormalExit::Status(n) => n.to_string(),
                NormalExit::Signal(s) => signal::display(s),
            })
            .collect();
        let _ = writeln!(o, "normal exit {}", vals.join(" "));
    }
    let _ = writeln!(o, "expect {}", job.expect.name());
    let _ = writeln!(o, "kill signal {}", signal::display(job.kill_signal));
    let _ = writeln!(o, "kill timeout {}", job.kill_timeout_secs);
    let _ = writeln!(o, "reload signal {}", signal::display(job.reload_signal));
    let _ = writeln!(o, "console {}", job.console.name());
    let _ = writeln!(o, "umask {:03o}", job.umask);
    if let Some(n) = job.nice {
        let _ = writeln!(o, "nice {n}");
    }
    if job.oom_score != 0 {
        let _ = writeln!(o, "oom score {}", job.oom_score);
    }
    for (res, lim) in &job.limits {
        let v = |x: Option<u64>| x.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        let _ = writeln!(o, "limit {} {} {}", res.name(), v(lim.soft), v(lim.hard));
    }
    for e in &job.env {
        let _ = writeln!(o, "env {}", quote_arg(e));
    }
    for e in &job.env_files {
        let _ = writeln!(o, "env-file {}", quote_arg(&e.text()));
    }
    if !job.export.is_empty() {
        let _ = writeln!(o, "export {}", words(&job.export));
    }
    text(o, "setuid", &job.setuid);
    text(o, "setgid", &job.setgid);
    text(o, "chroot", &job.chroot);
    text(o, "chdir", &job.chdir);
    text(o, "apparmor load", &job.apparmor_load);
    text(o, "apparmor switch", &job.apparmor_switch);
    for c in &job.cgroups {
        // `cgroup C [NAME]` alone, or one `cgroup C [NAME] KEY VALUE` per
        // setting; the default name is left out.
        let mut head = format!("cgroup {}", quote_arg(&c.controller));
        if c.name != DEFAULT_CGROUP_NAME {
            let _ = write!(head, " {}", quote_arg(&c.name));
        }
        if c.settings.is_empty() {
            let _ = writeln!(o, "{head}");
        }
        for (k, v) in &c.settings {
            let _ = writeln!(o, "{head} {} {}", quote_arg(k), quote_arg(v));
        }
    }
    let c = &job.cgroup_limits;
    let limits = [
        ("memory max", c.memory_max.map(|b| b.to_string())),
        ("memory high", c.memory_high.map(|b| b.to_string())),
        ("cpu quota", c.cpu_quota_percent.map(|p| format!("{p}%"))),
        ("cpu weight", c.cpu_weight.map(|w| w.to_string())),
        ("tasks max", c.tasks_max.map(|n| n.to_string())),
        ("io weight", c.io_weight.map(|w| w.to_string())),
    ];
    for (stanza, value) in limits {
        if let Some(v) = value {
            let _ = writeln!(o, "{stanza} {v}");
        }
    }
    if job.debug {
        o.push_str("debug\n");
    }
    for (role, probe) in [("ready", &job.health.ready), ("alive", &job.health.alive)] {
        if let Some(p) = probe {
            let _ = writeln!(o, "health {role} {}", super::health::check_text(&p.check));
            let _ = writeln!(o, "health {role} {}", super::health::settings_text(p));
        }
    }
    if let Some(t) = job.ready_timeout_secs {
        let _ = writeln!(o, "ready timeout {t}");
    }
    let l = &job.log;
    if let Some(c) = l.capture {
        o.push_str(match c {
            LogCapture::Pty => "log pty\n",
            LogCapture::Pipe => "log pipe\n",
        });
    }
    if let Some(size) = l.size {
        let _ = writeln!(o, "log size {size}");
    }
    if let Some(keep) = l.keep {
        let _ = writeln!(o, "log keep {keep}");
    }
    if let Some(r) = l.rotate {
        o.push_str(match r {
            LogPeriod::Daily => "log rotate daily\n",
            LogPeriod::Never => "log rotate never\n",
        });
    }
    if let Some(c) = l.compress {
        let _ = writeln!(o, "log compress {}", if c { "yes" } else { "no" });
    }
    if let Some(t) = l.timestamps {
        let _ = writeln!(o, "log timestamps {}", if t { "yes" } else { "no" });
    }
    for t in [
        ProcessType::PreStart,
        ProcessType::Main,
        ProcessType::PostStart,
        ProcessType::PreStop,
        ProcessType::PostStop,
    ] {
        let prefix = match t {
            ProcessType::Main => String::new(),
            _ => format!("{} ", t.name()),
        };
        match job.process(t) {
            Some(Command::Exec(cmd)) => {
                let _ = writeln!(o, "{prefix}exec {cmd}");
            }
            Some(Command::Script(body)) => {
                let _ = write!(o, "{prefix}script\n{body}end script\n");
            }
            None => {}
        }
    }
    out
}

fn words(ws: &[String]) -> String {
    ws.iter()
        .map(|w| quote_arg(w))
        .collect::<Vec<_>>()
        .join(" ")
}
