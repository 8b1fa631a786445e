//! `expect notify`: ready when the job says `READY=1` on `$NOTIFY_SOCKET`.

mod common;

use std::time::{Duration, Instant};

use common::daemon::Daemon;

fn fixture() -> String {
    format!("{}/tests/fixtures/notify.py", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn start_returns_when_the_job_says_it_is_ready_and_dependents_wait_for_it() {
    let f = fixture();
    let d = Daemon::builder()
        .job("db", &format!("expect notify\nexec python3 {f} 0.5\n"))
        .job("app", "start on started db\nexec sleep 1000\n")
        .start();
    let t0 = Instant::now();
    let out = d.ok(&["start", "db", "--no-wait"]);
    assert_eq!(out, "db start/starting\n");
    // Spawned, not ready: no `started` yet, so `app` waits.
    d.wait_status(&["db"], "spawned", |s| s["state"] == "spawned");
    assert_eq!(d.status(&["app"])["state"], "waiting");
    d.wait_status(&["db"], "running", |s| s["state"] == "running");
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "ready came from the job, not a guess"
    );
    d.wait_status(&["app"], "running after db's readiness", |s| {
        s["state"] == "running"
    });
}

#[test]
fn never_ready_fails_the_start_after_the_ready_timeout() {
    let f = fixture();
    let d = Daemon::with_jobs(&[(
        "slow",
        &format!("expect notify\nready timeout 1\nexec python3 {f} -1\n"),
    )]);
    let err = d.fails(&["start", "slow"]);
    assert_eq!(
        err,
        "upkeep: Job failed to start: main process not ready within 1 s\n"
    );
    d.wait_log("slow main process did not send READY=1 within 1 s");
    d.wait_status(&["slow"], "stopped", |s| s["state"] == "waiting");
}

#[test]
fn mainpid_names_the_main_process() {
    let f = fixture();
    let d = Daemon::with_jobs(&[(
        "m",
        &format!("expect notify\nexec python3 {f} 0 --mainpid\n"),
    )]);
    d.ok(&["start", "m"]);
    let main = d.main_pid("m").unwrap();
    let cmd = std::fs::read(format!("/proc/{main}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmd).contains("notify.py"));
    let ppid: i32 = std::fs::read_to_string(format!("/proc/{main}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(
        ppid,
        d.pid() as i32,
        "the main process is the child the job named, not the one it spawned"
    );
    d.ok(&["stop", "m"]);
}
