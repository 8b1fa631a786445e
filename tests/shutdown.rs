//! SIGTERM to the daemon: every job stopped, in the reverse of the order in
//! which they reached running, then exit 0 with nothing left running.

mod common;

use common::daemon::{alive, Daemon};

#[test]
fn sigterm_stops_jobs_in_reverse_order_and_exits_zero() {
    let job =
        |n: &str| format!("post-stop exec sh -c 'echo {n} >> @DIR@/order'\nexec sleep 1000\n");
    let mut d = Daemon::builder()
        .job("a", &job("a"))
        .job("b", &job("b"))
        .job("c", &job("c"))
        .start();
    for j in ["b", "a", "c"] {
        d.ok(&["start", j]);
    }
    let pids: Vec<i32> = ["a", "b", "c"]
        .iter()
        .map(|j| d.main_pid(j).unwrap())
        .collect();
    assert_eq!(d.terminate(), Some(0));
    let order = std::fs::read_to_string(d.dir.path().join("order")).unwrap();
    assert_eq!(order, "c\na\nb\n");
    for pid in pids {
        assert!(!alive(pid), "{pid} left running");
    }
    assert!(!d.socket.exists(), "socket removed on exit");
}

#[test]
fn restart_applies_the_job_file_as_it_is_now() {
    let d = Daemon::with_jobs(&[("r", "exec sleep 1000\n")]);
    d.ok(&["start", "r"]);
    let old = d.main_pid("r").unwrap();
    // Edit the file; restart must pick the edit up (unlike Upstart).
    std::fs::write(d.conf.join("r.conf"), "exec sleep 2000\n").unwrap();
    let out = d.ok(&["restart", "r"]);
    assert!(out.starts_with("r start/running, process "), "{out}");
    let new = d.main_pid("r").unwrap();
    assert_ne!(old, new);
    assert!(!alive(old));
    let cmdline = std::fs::read(format!("/proc/{new}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x002000\x00");
    // An edit with errors keeps the last good definition.
    std::fs::write(d.conf.join("r.conf"), "exce sleep 3000\n").unwrap();
    d.ok(&["restart", "r"]);
    d.wait_log("r.conf:1:1: Unknown stanza");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.main_pid("r").unwrap())).unwrap();
    assert_eq!(cmdline, b"sleep\x002000\x00");
}

/// A hook that never ends (here a pre-start that ignores SIGTERM) cannot
/// hold a shutdown up for ever, nor outlive the daemon: after `kill
/// timeout` it gets the kill signal, then SIGKILL, and everything else is
/// stopped as usual.
#[test]
fn a_hung_hook_gets_its_kill_timeout_at_shutdown_then_is_killed() {
    let mut d = Daemon::builder()
        .job(
            "hung",
            "kill timeout 1\npre-start script\n  trap '' TERM\n  while :; do sleep 0.1; done\nend script\nexec sleep 1000\n",
        )
        .job("web", "exec sleep 1000\n")
        .start();
    d.ok(&["start", "web"]);
    d.ok(&["start", "--no-wait", "hung"]);
    let s = d.wait_status(&["hung"], "in pre-start", |s| s["state"] == "pre-start");
    let hook = s["processes"][0]["pid"].as_i64().unwrap() as i32;
    let web = d.main_pid("web").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Within the deadline, not for ever.
    d.wait_log("all jobs stopped; exiting");
    assert_eq!(d.terminate(), Some(0));
    let lines = d.log_lines().join("\n");
    assert!(
        lines.contains(&format!(
            "hung pre-start process ({hook}) still running at shutdown after 1 s: sending TERM signal"
        )),
        "{lines}"
    );
    assert!(lines.contains("sending KILL signal"), "{lines}");
    assert!(!alive(hook), "the hook outlived the daemon");
    assert!(!alive(web));
}
