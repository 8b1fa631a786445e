//! Instances: `instance $VAR`, `start JOB VAR=x`, one status line each.

mod common;

use common::daemon::Daemon;

#[test]
fn instances_are_named_by_their_variables() {
    let d = Daemon::with_jobs(&[(
        "worker",
        "instance $N\nusage \"worker N=ID\"\nexec sleep 1000\n",
    )]);
    let a = d.ok(&["start", "worker", "N=1"]);
    assert!(a.starts_with("worker (1) start/running, process "), "{a}");
    d.ok(&["start", "worker", "N=2"]);
    assert_eq!(
        d.fails(&["start", "worker", "N=1"]),
        "upkeep: Job is already running: worker (1)\n"
    );
    assert_eq!(
        d.fails(&["start", "worker"]),
        "upkeep: Unknown parameter: N\nUsage: worker N=ID\n"
    );
    let list = d.ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("worker (1) start/running"));
    assert!(lines[1].starts_with("worker (2) start/running"));
    assert_eq!(
        d.fails(&["status", "worker", "N=3"]),
        "upkeep: Unknown instance: 3\n"
    );
    assert_eq!(d.ok(&["stop", "worker", "N=1"]), "worker stop/waiting\n");
    assert_eq!(
        d.fails(&["stop", "worker", "N=1"]),
        "upkeep: Unknown instance: 1\n"
    );
    let list = d.ok(&["list"]);
    assert_eq!(list.lines().count(), 1);
    // Instance names reach the job's environment.
    let s = d.status(&["worker", "N=2"]);
    let pid = s["processes"][0]["pid"].as_i64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    assert!(vars.contains(&&b"UPSTART_JOB=worker"[..]));
    assert!(vars.contains(&&b"UPSTART_INSTANCE=2"[..]));
    assert!(vars.contains(&&b"N=2"[..]));
}
