//! Why a job stopped, kept: each failure kind shown by `status`, `list` and
//! `--json` while the job is at rest, cleared by its next start, kept
//! across `re-exec` and across the daemon's own death (the state file);
//! and the exit status on the `stopping` event of a respawn.

mod common;

use common::daemon::{wait_file, Daemon};

/// `status JOB`'s text once it has the why line.
fn why_line(d: &Daemon, job: &str) -> String {
    let text = d.wait_status_text(job, "a why line", |t| t.contains("\n\t"));
    text.lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no second line: {text}"))
        .to_string()
}

#[test]
fn a_spawn_failure_is_shown_until_the_next_start() {
    let mut d = Daemon::builder()
        .job("web", "exec @DIR@/web\n")
        .canary()
        .start();
    let exe = d.write_file("web", "#!/bin/sh\nexec sleep 1000\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = d.fails(&["start", "web"]);
    assert!(e.contains("Job failed to start"), "{e}");
    let line = why_line(&d, "web");
    assert!(
        line.starts_with(
            "\tfailed: main process failed to spawn: unable to execute: Permission denied at 2"
        ),
        "{line}"
    );
    assert!(!line.contains("last exit"), "nothing exited: {line}");
    let s = d.status(&["web"]);
    assert_eq!(s["v"], 1);
    assert_eq!(s["state"], "waiting");
    assert_eq!(s["failure"]["kind"], "spawn");
    assert!(s["failure"]["at"].as_u64().unwrap() > 1_700_000_000, "{s}");
    assert_eq!(s["last_exit"], serde_json::Value::Null);
    let list = d.ok(&["list"]);
    assert!(
        list.contains("web stop/waiting\n\tfailed: main process failed to spawn: unable to execute: Permission denied at "),
        "{list}"
    );
    let all: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
    let web = all
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "web")
        .unwrap();
    assert_eq!(web["failure"]["kind"], "spawn");
    // Fixed and started: the failure is gone.
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    d.ok(&["start", "web"]);
    let s = d.status(&["web"]);
    assert_eq!(s["state"], "running");
    assert_eq!(s["failure"], serde_json::Value::Null);
    let text = d.ok(&["status", "web"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    d.assert_canary();
}

#[test]
fn the_respawn_limit_is_shown_with_its_count_and_the_last_exit() {
    let mut d = Daemon::builder()
        .job(
            "crashy",
            "respawn\nrespawn limit 2 600\nexec sh -c 'exit 3'\n",
        )
        .canary()
        .start();
    let _ = d.ctl(&["start", "crashy"]);
    d.wait_log("crashy respawning too fast, stopped");
    let line = why_line(&d, "crashy");
    assert!(
        line.starts_with("\tfailed: respawning too fast (3 in 600 s) at "),
        "{line}"
    );
    assert!(line.ends_with("; last exit: status 3"), "{line}");
    let s = d.status(&["crashy"]);
    assert_eq!(s["respawns"], 2);
    assert_eq!(s["failure"]["kind"], "respawn-limit");
    assert_eq!(s["last_exit"]["process"], "main");
    assert_eq!(s["last_exit"]["status"], 3);
    // Kept across re-exec.
    d.ok(&["re-exec"]);
    assert_eq!(why_line(&d, "crashy"), line);
    assert_eq!(d.status(&["crashy"])["respawns"], 2);
    d.assert_canary();
    // And across the daemon's own death, through the state file: the new
    // daemon starts in a later second than the failure, whose time must
    // not become the new daemon's start.
    let at = s["failure"]["at"].as_u64().expect("failure.at");
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        <= at + 1
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.kill9_and_restart();
    assert_eq!(why_line(&d, "crashy"), line);
    assert_eq!(d.status(&["crashy"])["failure"]["at"], at);
}

#[test]
fn a_task_that_exits_zero_shows_its_exit() {
    let d = Daemon::with_jobs(&[("once", "task\nexec true\n")]);
    d.ok(&["start", "once"]);
    let line = why_line(&d, "once");
    assert!(line.starts_with("\tlast exit: status 0 at "), "{line}");
    let s = d.status(&["once"]);
    assert_eq!(s["last_exit"]["status"], 0);
    assert_eq!(s["last_exit"]["signal"], serde_json::Value::Null);
    assert_eq!(s["failure"], serde_json::Value::Null);
}

#[test]
fn a_failed_hook_and_a_failed_main_process_are_told_apart() {
    let d = Daemon::with_jobs(&[
        ("hooked", "pre-start exec sh -c 'exit 4'\nexec sleep 1000\n"),
        ("main", "exec sh -c 'exit 5'\n"),
    ]);
    let _ = d.ctl(&["start", "hooked"]);
    let line = why_line(&d, "hooked");
    assert!(
        line.starts_with("\tfailed: pre-start process terminated with status 4 at "),
        "{line}"
    );
    assert!(
        line.ends_with("; last exit: pre-start process status 4"),
        "{line}"
    );
    let s = d.status(&["hooked"]);
    assert_eq!(s["failure"]["kind"], "hook");
    assert_eq!(s["last_exit"]["process"], "pre-start");
    let _ = d.ctl(&["start", "main"]);
    let line = why_line(&d, "main");
    assert!(
        line.starts_with("\tfailed: main process terminated with status 5 at "),
        "{line}"
    );
    assert_eq!(d.status(&["main"])["failure"]["kind"], "main");
}

#[test]
fn a_ready_timeout_and_a_kill_after_the_kill_timeout_are_shown() {
    let d = Daemon::with_jobs(&[
        ("mute", "expect notify\nready timeout 1\nexec sleep 1000\n"),
        (
            "stubborn",
            "kill timeout 1\nscript\n  trap '' TERM\n  while true; do sleep 0.1; done\nend script\n",
        ),
    ]);
    let _ = d.ctl(&["start", "mute"]);
    let line = why_line(&d, "mute");
    assert!(
        line.starts_with("\tfailed: main process not ready within 1 s at "),
        "{line}"
    );
    assert_eq!(d.status(&["mute"])["failure"]["kind"], "ready-timeout");
    d.ok(&["start", "stubborn"]);
    d.ok(&["stop", "stubborn"]);
    let line = why_line(&d, "stubborn");
    assert!(
        line.starts_with("\tstopped: did not stop within the kill timeout (1 s): killed at "),
        "{line}"
    );
    assert!(line.ends_with("; last exit: signal KILL"), "{line}");
    assert_eq!(d.status(&["stubborn"])["failure"]["kind"], "kill-timeout");
}

#[test]
fn the_stopping_event_of_a_respawn_carries_the_exit_status() {
    let d = Daemon::with_jobs(&[
        (
            "web",
            "respawn\nrespawn limit 2 600\nexec sh -c 'exit 7'\n",
        ),
        (
            "seen",
            "start on stopping web\ntask\nexec sh -c 'echo \"$RESULT $PROCESS ${EXIT_STATUS:-none}\" >> @DIR@/seen'\n",
        ),
    ]);
    let _ = d.ctl(&["start", "web"]);
    let seen = d.dir.path().join("seen");
    let text = wait_file(&seen, |t| t.lines().count() >= 3);
    let lines: Vec<&str> = text.lines().collect();
    // Two respawns (each a crash with its status), then the limit.
    assert_eq!(lines, ["ok main 7", "ok main 7", "failed respawn none"]);
}

/// The README's crash-alert recipe, as printed there, with a `mail` that
/// writes what it is sent to a file.
#[test]
fn the_readmes_crash_alert_recipe_mails_every_crash_and_the_limit() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- recipe: crash-alert -->")
        .expect("the recipe's marker");
    let block = &readme[start..];
    let body = &block[block.find("```\n").unwrap() + 4..];
    let recipe = &body[..body.find("```").unwrap()];
    let d = Daemon::builder()
        .job(
            "web",
            "respawn\nrespawn limit 2 600\nexec sh -c 'test -e @DIR@/fixed && exec sleep 1000; exit 3'\n",
        )
        .job("web-alert", &format!("env PATH=@DIR@/bin:/usr/bin:/bin\n{recipe}"))
        .start();
    d.write_file(
        "bin/mail",
        "#!/bin/sh\n{ echo \"$*\"; cat; } >> \"$(dirname \"$0\")/../mailed\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    let mail = d.dir.path().join("bin/mail");
    std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = d.ctl(&["start", "web"]);
    let mailed = wait_file(&d.dir.path().join("mailed"), |t| t.lines().count() >= 6);
    let lines: Vec<&str> = mailed.lines().collect();
    assert!(lines[0].starts_with("-s web stopped on "), "{mailed}");
    assert_eq!(
        lines[1..].iter().step_by(2).copied().collect::<Vec<_>>(),
        [
            "web: RESULT=ok PROCESS=main EXIT_STATUS=3 EXIT_SIGNAL=",
            "web: RESULT=ok PROCESS=main EXIT_STATUS=3 EXIT_SIGNAL=",
            "web: RESULT=failed PROCESS=respawn EXIT_STATUS= EXIT_SIGNAL=",
        ],
        "{mailed}"
    );
    // Fixed, started and stopped: the alert job runs, and sends nothing.
    d.write_file("fixed", "");
    d.ok(&["start", "web"]);
    d.ok(&["stop", "web"]);
    d.wait_log_count("web-alert main process", 4);
    let after = std::fs::read_to_string(d.dir.path().join("mailed")).unwrap();
    assert_eq!(after.lines().count(), 6, "{after}");
}

#[test]
fn named_instances_keep_why_they_failed_up_to_a_bound() {
    let d = Daemon::with_jobs(&[("inst", "instance $N\nexec sh -c 'exit 2'\n")]);
    for n in 0..34 {
        let _ = d.ctl(&["start", "inst", &format!("N={n}")]);
    }
    let failed = |t: &str| {
        t.matches("\tfailed: main process terminated with status 2")
            .count()
    };
    let list = d.wait_list("32 failed instances", |t| {
        failed(t) == 32 && t.contains("inst (33) ")
    });
    let line = d.ok(&["status", "inst", "N=33"]);
    assert!(
        line.starts_with(
            "inst (33) stop/waiting\n\tfailed: main process terminated with status 2 at "
        ),
        "{line}"
    );
    assert!(!list.contains("inst (0) "), "{list}");
    assert!(d
        .fails(&["status", "inst", "N=0"])
        .contains("Unknown instance: 0"));
}
