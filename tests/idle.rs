//! A daemon with nothing to do does nothing: no wake-up while no job, probe
//! or subscriber has anything scheduled, also once jobs have stopped (their
//! kill timers go with them) and a monitor has left.

mod common;

use common::daemon::Daemon;

/// The daemon's voluntary context switches: one a wake-up from epoll.
fn switches(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn no_wake_up_after_jobs_stopped_and_a_monitor_left() {
    let jobs: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("svc{i}"),
                "kill timeout 1\nexec sleep 1000\n".to_string(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = jobs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let d = Daemon::with_jobs(&refs);
    let mut monitor = std::process::Command::new(common::upkeep_bin())
        .args(["monitor", "--json"])
        .env("UPKEEP_SOCKET", &d.socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for (name, _) in &jobs {
        d.ok(&["start", name]);
    }
    for (name, _) in &jobs {
        d.ok(&["stop", name]);
    }
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    d.ok(&["list"]); // the daemon has seen the monitor go
                     // The kill timers (1 s) of the stops, and the request timers (10 s) of
                     // every client, gone now, would have fired in this time: nothing.
    let before = switches(d.pid());
    std::thread::sleep(std::time::Duration::from_millis(10_500));
    let after = switches(d.pid());
    assert_eq!(after - before, 0, "wake-ups of an idle daemon");
}
