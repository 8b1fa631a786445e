//! pre-start, post-start, pre-stop and post-stop, in order, with their
//! failure rules.

mod common;

use common::daemon::Daemon;

fn hooks(extra: &str) -> String {
    format!(
        "{extra}pre-start exec sh -c 'echo pre-start >> $LOG'\npost-start exec sh -c 'echo post-start >> $LOG'\npre-stop exec sh -c 'echo pre-stop >> $LOG'\npost-stop exec sh -c 'echo post-stop >> $LOG'\nexec sh -c 'echo main >> $LOG; exec sleep 1000'\n"
    )
}

#[test]
fn hooks_run_in_order() {
    let d = Daemon::with_jobs(&[("h", &hooks(""))]);
    let log = d.write_file("order.log", "");
    let env = format!("LOG={}", log.display());
    let out = d.ok(&["start", "h", &env]);
    assert!(out.starts_with("h start/running, process "), "{out}");
    d.ok(&["stop", "h"]);
    let text = std::fs::read_to_string(&log).unwrap();
    // post-start runs beside main, so their lines may come in either order.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pre-start");
    assert_eq!(lines[3..], ["pre-stop", "post-stop"]);
    let mut mid = lines[1..3].to_vec();
    mid.sort();
    assert_eq!(mid, ["main", "post-start"]);
}

#[test]
fn failing_pre_start_fails_the_start_and_post_stop_still_runs() {
    let job = "pre-start exec sh -c 'exit 3'\npost-stop exec sh -c 'echo post-stop >> $LOG'\nexec sleep 1000\n";
    let d = Daemon::with_jobs(&[("p", job)]);
    let log = d.write_file("p.log", "");
    let err = d.fails(&["start", "p", &format!("LOG={}", log.display())]);
    assert_eq!(
        err,
        "upkeep: Job failed to start: pre-start process terminated with status 3\n"
    );
    d.wait_log("p pre-start process");
    assert!(d
        .log_lines()
        .iter()
        .any(|l| l.contains("terminated with status 3")));
    // The failure is answered at once; post-stop runs after.
    d.wait_log("p post-stop process");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "post-stop\n");
    let st = d.ok(&["status", "p"]);
    assert!(
        st.starts_with("p stop/waiting\n\tfailed: pre-start process terminated with status 3 at ")
            && st.ends_with("; last exit: pre-start process status 3\n"),
        "{st}"
    );
}

#[test]
fn failing_post_stop_fails_the_stop() {
    let d = Daemon::with_jobs(&[("q", "post-stop exec false\nexec sleep 1000\n")]);
    d.ok(&["start", "q"]);
    assert_eq!(
        d.fails(&["stop", "q"]),
        "upkeep: Job failed while stopping: post-stop process terminated with status 1\n"
    );
}

#[test]
fn status_shows_a_running_hook() {
    let d = Daemon::with_jobs(&[("slow", "post-start exec sleep 1000\nexec sleep 1000\n")]);
    // --no-wait answers at once, before the starting event is handled.
    assert_eq!(
        d.ok(&["start", "slow", "--no-wait"]),
        "slow start/starting\n"
    );
    d.wait_status(&["slow"], "in post-start", |s| s["state"] == "post-start");
    let text = d.ok(&["status", "slow"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with("\tpost-start process "), "{text}");
    let post = lines[1].rsplit(' ').next().unwrap().parse::<i32>().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(post),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_status(&["slow"], "running", |s| s["state"] == "running");
}
