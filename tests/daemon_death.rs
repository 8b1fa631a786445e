//! The daemon killed with SIGKILL and started again: nothing the old one
//! started is left running unsupervised, and no job runs twice.

mod common;

use common::daemon::{alive, Daemon};

#[test]
fn a_new_daemon_stops_what_a_killed_one_left_and_starts_afresh() {
    let mut d = Daemon::builder()
        .job("boot", "start on startup\nexec sleep 1000\n")
        .job("manual", "exec sleep 1000\n")
        .job("stubborn", "start on startup\nscript\n  trap '' TERM\n  while true; do sleep 1; done\nend script\n")
        .start();
    d.wait_status(&["boot"], "running", |s| s["state"] == "running");
    d.wait_status(&["stubborn"], "running", |s| s["state"] == "running");
    d.ok(&["start", "manual"]);
    let old: Vec<i32> = ["boot", "manual", "stubborn"]
        .iter()
        .map(|j| d.main_pid(j).unwrap())
        .collect();
    d.kill9_and_restart();
    d.wait_log("a previous daemon on this socket died and left");
    for pid in &old {
        assert!(
            !alive(*pid),
            "process {pid} of the old daemon is still running"
        );
    }
    // Started afresh as their events say: `boot` once, `manual` not at all.
    let s = d.wait_status(&["boot"], "running again", |s| s["state"] == "running");
    assert!(!old.contains(&(s["processes"][0]["pid"].as_i64().unwrap() as i32)));
    assert_eq!(d.ok(&["status", "manual"]), "manual stop/waiting\n");
    let sleeps_of_boot = d
        .ok(&["list"])
        .lines()
        .filter(|l| l.starts_with("boot "))
        .count();
    assert_eq!(sleeps_of_boot, 1, "no job runs twice");
}
