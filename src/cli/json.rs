//! `--json` forms of what the commands print. Built by hand from the typed
//! values, so that the JSON shape is a decision made here, in one place,
//! and not a side effect of how the types are laid out.

use serde_json::{json, Map, Value};

use crate::conf::{signal, Command, JobClass, LogCapture, LogPeriod, NormalExit, ProcessType};
use crate::confdir::JobFiles;
use crate::event::EventExpr;

pub fn expr(e: &EventExpr) -> Value {
    match e {
        EventExpr::Match(m) => json!({ "event": m.name, "args": m.args }),
        EventExpr::And(l, r) => json!({ "and": [expr(l), expr(r)] }),
        EventExpr::Or(l, r) => json!({ "or": [expr(l), expr(r)] }),
    }
}

fn command(c: &Command) -> Value {
    match c {
        Command::Exec(cmd) => json!({ "exec": cmd }),
        Command::Script(body) => json!({ "script": body }),
    }
}

pub fn job(job: &JobClass, files: &JobFiles) -> Value {
    let mut processes = Map::new();
    for t in ProcessType::ALL {
        if let Some(c) = job.process(t) {
            processes.insert(t.name().to_string(), command(c));
        }
    }
    let mut limits = Map::new();
    for (res, lim) in &job.limits {
        let v = |x: Option<u64>| x.map_or_else(|| json!("unlimited"), |n| json!(n));
        limits.insert(
            res.name().to_string(),
            json!({ "soft": v(lim.soft), "hard": v(lim.hard) }),
        );
    }
    let normal_exit: Vec<Value> = job
        .normal_exit
        .iter()
        .map(|v| match *v {
            NormalExit::Status(n) => json!({ "status": n }),
            NormalExit::Signal(s) => json!({ "signal": signal::display(s) }),
        })
        .collect();
    let cgroups: Vec<Value> = job
        .cgroups
        .iter()
        .map(|c| {
            let settings: Map<String, Value> = c
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({ "controller": c.controller, "name": c.name, "settings": settings })
        })
        .collect();
    let env_files: Vec<Value> = job
        .env_files
        .iter()
        .map(|e| json!({ "path": e.path, "optional": e.optional }))
        .collect();
    let mut v = json!({
        "name": job.name,
        "files": {
            "conf": files.conf.display().to_string(),
            "override": files.override_file.as_ref().map(|p| p.display().to_string()),
        },
        "description": job.description,
        "author": job.author,
        "version": job.version,
        "usage": job.usage,
        "instance": job.instance,
        "start_on": job.start_on.as_ref().map(|e| e.to_string()),
        "start_on_tree": job.start_on.as_ref().map(expr),
        "stop_on": job.stop_on.as_ref().map(|e| e.to_string()),
        "stop_on_tree": job.stop_on.as_ref().map(expr),
        "emits": job.emits,
        "processes": processes,
        "task": job.task,
        "respawn": job.respawn,
        "respawn_limit": {
            "count": job.respawn_limit.count,
            "interval": job.respawn_limit.interval_secs,
            "unlimited": job.respawn_limit.is_unlimited(),
        },
        "normal_exit": normal_exit,
        "expect": job.expect.name(),
        "kill_signal": signal::display(job.kill_signal),
        "kill_timeout": job.kill_timeout_secs,
        "reload_signal": signal::display(job.reload_signal),
        "console": job.console.name(),
        "umask": format!("{:03o}", job.umask),
        "nice": job.nice,
        "oom_score": job.oom_score,
        "limits": limits,
        "env": job.env,
        "export": job.export,
        "setuid": job.setuid,
        "setgid": job.setgid,
        "chroot": job.chroot,
        "chdir": job.chdir,
        "apparmor": { "load": job.apparmor_load, "switch": job.apparmor_switch },
        "cgroups": cgroups,
        "debug": job.debug,
        "log": {
            "capture": job.log.capture.map(|c| match c {
                LogCapture::Pty => "pty",
                LogCapture::Pipe => "pipe",
            }),
            "size": job.log.size,
            "keep": job.log.keep,
            "rotate": job.log.rotate.map(|r| match r {
                LogPeriod::Daily => "daily",
                LogPeriod::Never => "never",
            }),
            "compress": job.log.compress,
        },
    });
    // (Added apart: one json! with every field exceeds the macro's
    // recursion limit.)
    v["ready_timeout"] = json!(job.ready_timeout_secs);
    let l = &job.cgroup_limits;
    v["cgroup_limits"] = json!({
        "memory_max": l.memory_max,
        "memory_high": l.memory_high,
        "cpu_quota_percent": l.cpu_quota_percent,
        "cpu_weight": l.cpu_weight,
        "tasks_max": l.tasks_max,
        "io_weight": l.io_weight,
    });
    v["env_files"] = json!(env_files);
    v["log"]["timestamps"] = json!(job.log.timestamps);
    let probe = |p: &Option<Box<crate::conf::health::Probe>>| {
        p.as_ref().map(|p| {
            let secs = |ms: u64| ms as f64 / 1000.0;
            let mut o = json!({
                "probe": p.check.kind(),
                "initial_delay": secs(p.initial_delay_ms),
                "period": secs(p.period_ms),
                "timeout": secs(p.timeout_ms),
                "failure_threshold": p.failure_threshold,
                "success_threshold": p.success_threshold,
            });
            match &p.check {
                crate::conf::health::Check::Exec(cmd) => o["command"] = json!(cmd),
                crate::conf::health::Check::Tcp(a) => o["address"] = json!(a.to_string()),
                crate::conf::health::Check::Http {
                    addr,
                    path,
                    host,
                    status,
                } => {
                    o["address"] = json!(addr.to_string());
                    o["path"] = json!(path);
                    o["host"] = json!(host);
                    o["status"] = json!([status.0, status.1]);
                }
            }
            o
        })
    };
    v["health"] = json!({ "ready": probe(&job.health.ready), "alive": probe(&job.health.alive) });
    v
}
