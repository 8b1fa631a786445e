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
