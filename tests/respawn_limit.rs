//! respawn limit: the fixed window, "respawning too fast, stopped", and the
//! back-off under `respawn limit unlimited`.

mod common;

use common::daemon::Daemon;

#[test]
fn a_crash_loop_hits_the_limit_and_stays_stopped() {
    let mut d =
        Daemon::with_jobs_and_canary(&[("crash", "respawn\nrespawn limit 3 60\nexec false\n")]);
    // Reaches running once, then dies over and over.
    let _ = d.ctl(&["start", "crash"]);
    d.wait_log("crash respawning too fast, stopped");
    let s = d.wait_status(&["crash"], "stopped", |s| s["state"] == "waiting");
    assert_eq!(s["goal"], "stop");
    let respawns = d
        .log_lines()
        .iter()
        .filter(|l| l.contains("crash main process ended, respawning"))
        .count();
    assert_eq!(
        respawns, 3,
        "three respawns, then the fourth exceeds 3 in 60 s"
    );
    // A manual start begins with a clean slate.
    let _ = d.ctl(&["start", "crash"]);
    d.wait_log_count("crash respawning too fast, stopped", 2);
    d.assert_canary();
}

#[test]
fn unlimited_backs_off_instead_of_spinning() {
    let mut d =
        Daemon::with_jobs_and_canary(&[("spin", "respawn\nrespawn limit unlimited\nexec false\n")]);
    let _ = d.ctl(&["start", "spin"]);
    // Delays of 100, 200, 400, 800 ms: five runs take at least 1.5 s.
    let t0 = std::time::Instant::now();
    d.wait_log_count("spin main process ended, respawning", 5);
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(1400),
        "no back-off: {:?}",
        t0.elapsed()
    );
    assert!(!d.log_lines().iter().any(|l| l.contains("too fast")));
    let s = d.status(&["spin"]);
    assert_eq!(s["goal"], "start");
    d.ok(&["stop", "spin"]);
    d.assert_canary();
}
