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

/// T15 a hundred times: each job holds a lock that a second copy of it
/// could not take, and says so if it tries. After every SIGKILL and
/// restart, the old processes are gone, every job runs once more, and no
/// copy ever found its lock taken.
#[test]
fn a_hundred_kills_and_restarts_never_run_a_job_twice() {
    let job = |n: u32| {
        format!(
            "start on startup\nscript\n  exec 9>@DIR@/lock-{n}\n  if ! flock -n 9; then echo {n} >> @DIR@/conflicts; exit 1; fi\n  exec sleep 1000\nend script\n"
        )
    };
    let mut b = Daemon::builder();
    for n in 0..5 {
        b = b.job(&format!("j{n}"), &job(n));
    }
    let mut d = b.start();
    let running = |d: &Daemon| -> Vec<i32> {
        (0..5)
            .map(|n| {
                let s = d.wait_status(&[&format!("j{n}")], "running", |s| s["state"] == "running");
                s["processes"][0]["pid"].as_i64().unwrap() as i32
            })
            .collect()
    };
    let mut pids = running(&d);
    for cycle in 0..100 {
        d.kill9_and_restart();
        for pid in &pids {
            assert!(
                !alive(*pid),
                "cycle {cycle}: {pid} of the old daemon lives on"
            );
        }
        let now = running(&d);
        assert!(now.iter().all(|p| !pids.contains(p)), "cycle {cycle}");
        pids = now;
    }
    assert!(
        !d.dir.path().join("conflicts").exists(),
        "a job ran twice: {}",
        std::fs::read_to_string(d.dir.path().join("conflicts")).unwrap_or_default()
    );
}

/// A daemon killed before anything ever woke it (no client, no child
/// exit, no output) has already put what its boot events started on
/// record: the next daemon stops it.
#[test]
fn a_daemon_killed_before_its_first_wakeup_leaves_nothing_unknown() {
    let mut d = Daemon::builder()
        .job(
            "quiet",
            "start on startup\nscript\n  echo $$ > @DIR@/pid\n  exec sleep 1000\nend script\n",
        )
        .start();
    let pid: i32 = common::daemon::wait_file(&d.dir.path().join("pid"), |t| t.ends_with('\n'))
        .trim()
        .parse()
        .unwrap();
    // On record without any wakeup (before the fix, never).
    let state = d.dir.path().join("run/upkeep.sock.state");
    common::daemon::wait_file(&state, |t| {
        t.lines().any(|l| l.starts_with(&format!("{pid} ")))
    });
    d.kill9_and_restart();
    d.wait_log("a previous daemon on this socket died and left 1 job process running");
    assert!(!alive(pid), "the old daemon's job lives on");
}
