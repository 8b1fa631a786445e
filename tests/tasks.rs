//! Tasks: `start` waits until the task has finished.

mod common;

use common::daemon::Daemon;

#[test]
fn start_waits_for_a_task_to_finish() {
    let d = Daemon::with_jobs(&[
        (
            "t",
            "task\nscript\n  sleep 0.3\n  echo done > $OUT\nend script\n",
        ),
        ("bad", "task\nexec sh -c 'exit 4'\n"),
    ]);
    let out = d.dir.path().join("out");
    let o = d.ok(&["start", "t", &format!("OUT={}", out.display())]);
    assert_eq!(o, "t stop/waiting\n");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "done\n",
        "start returned before the task ended"
    );
    assert_eq!(
        d.fails(&["start", "bad"]),
        "upkeep: Job failed to start: main process terminated with status 4\n"
    );
    d.wait_log("bad main process");
    assert!(d
        .log_lines()
        .iter()
        .any(|l| l.contains("bad main process (") && l.contains("terminated with status 4")));
}

#[test]
fn no_wait_returns_at_once() {
    let d = Daemon::with_jobs(&[("t", "task\nexec sleep 1000\n")]);
    // Answered before the starting event is even handled.
    assert_eq!(d.ok(&["start", "t", "--no-wait"]), "t start/starting\n");
    d.wait_status(&["t"], "running", |s| s["state"] == "running");
    d.ok(&["stop", "t"]);
}
