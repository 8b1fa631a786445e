//! Stopping: the kill signal to the whole process group, SIGKILL after
//! `kill timeout`, children included; what a dead main leaves is killed
//! before a respawn.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{alive, Daemon, DEADLINE};

/// A job whose shell ignores TERM and starts children that ignore it too,
/// writing their pids to a file.
const STUBBORN: &str = "kill timeout 1\nscript\n  trap '' TERM\n  sh -c \"trap '' TERM; sleep 1000\" &\n  echo $! > $PIDS\n  sh -c \"trap '' TERM; sleep 1000\" &\n  echo $! >> $PIDS\n  while true; do sleep 1; done\nend script\n";

fn pids(path: &std::path::Path) -> Vec<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let v: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if v.len() == 2 {
            return v;
        }
        assert!(Instant::now() < deadline, "children never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn term_ignoring_job_and_children_are_killed_after_the_timeout() {
    let mut d = Daemon::with_jobs_and_canary(&[("stubborn", STUBBORN)]);
    let pidfile = d.dir.path().join("pids");
    d.ok(&["start", "stubborn", &format!("PIDS={}", pidfile.display())]);
    let main = d.main_pid("stubborn").unwrap();
    let children = pids(&pidfile);
    let t0 = Instant::now();
    assert_eq!(d.ok(&["stop", "stubborn"]), "stubborn stop/waiting\n");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "SIGKILL came before the kill timeout"
    );
    d.wait_log("Sending TERM signal to stubborn main process");
    d.wait_log("Sending KILL signal to stubborn main process");
    for pid in std::iter::once(main).chain(children) {
        assert!(!alive(pid), "process {pid} survived the stop");
    }
    d.assert_canary();
}

#[test]
fn leftovers_of_a_dead_main_are_killed_before_the_respawn() {
    // The main process starts a child in its group, then dies.
    let job = "respawn\nkill timeout 1\nscript\n  sleep 1000 &\n  echo $! >> $PIDS\n  sleep 1000\nend script\n";
    let mut d = Daemon::with_jobs_and_canary(&[("leaky", job)]);
    let pidfile = d.dir.path().join("pids");
    d.ok(&["start", "leaky", &format!("PIDS={}", pidfile.display())]);
    let first_child = {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .unwrap_or_default()
                .lines()
                .next()
                .and_then(|l| l.parse::<i32>().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let main = d.main_pid("leaky").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(main),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_log("leaky main process ended, respawning");
    d.wait_status(&["leaky"], "respawned", |s| {
        s["respawns"] == 1 && s["state"] == "running" && s["processes"][0]["pid"].is_i64()
    });
    assert!(!alive(first_child), "the old main's child was left running");
    d.ok(&["stop", "leaky"]);
    d.assert_canary();
}
