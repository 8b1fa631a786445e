//! `expect fork` and `expect daemon` without ptrace: the daemon, as child
//! subreaper, follows a daemonizing program to its real main process.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{alive, Daemon, DEADLINE};

fn fixture() -> String {
    format!("{}/tests/fixtures/daemonize.py", env!("CARGO_MANIFEST_DIR"))
}

fn read_pid(path: &std::path::Path) -> i32 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(p) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Live processes of this daemon's job `job`, by the identity in their
/// environment.
fn processes_of_job(d: &Daemon, job: &str) -> Vec<i32> {
    let want_job = format!("UPSTART_JOB={job}");
    let want_socket = format!("UPKEEP_SOCKET={}", d.socket.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        if vars.contains(&want_job.as_bytes())
            && vars.contains(&want_socket.as_bytes())
            && alive(pid)
        {
            out.push(pid);
        }
    }
    out
}

#[test]
fn expect_fork_and_daemon_follow_the_program_to_its_real_main_process() {
    let f = fixture();
    let mut d = Daemon::builder()
        .canary()
        .job(
            "one",
            &format!("expect fork\nexec python3 {f} 1 @DIR@/one.pid\n"),
        )
        .job(
            "two",
            &format!("expect daemon\nexec python3 {f} 2 @DIR@/two.pid\n"),
        )
        .start();
    for job in ["one", "two"] {
        let out = d.ok(&["start", job]);
        let real = read_pid(&d.dir.path().join(format!("{job}.pid")));
        assert_eq!(
            out,
            format!("{job} start/running, process {real}\n"),
            "status names the daemonized process"
        );
        d.wait_log(&format!("forked; following it to {real}"));
        assert_eq!(d.ok(&["stop", job]), format!("{job} stop/waiting\n"));
        let deadline = Instant::now() + DEADLINE;
        while alive(real) {
            assert!(Instant::now() < deadline, "{job}'s daemon survived stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    d.assert_canary();
}

#[test]
fn a_daemonized_process_with_no_trace_of_its_job_is_still_followed() {
    // Its environment is empty: only "the one job waiting for a fork, and
    // younger than the process that forked" tells whose it is.
    let f = fixture();
    let d = Daemon::with_jobs(&[(
        "wiped",
        &format!("expect daemon\nexec python3 {f} 2 @DIR@/wiped.pid --wipe-env\n"),
    )]);
    let out = d.ok(&["start", "wiped"]);
    let real = read_pid(&d.dir.path().join("wiped.pid"));
    assert_eq!(out, format!("wiped start/running, process {real}\n"));
    assert_eq!(d.ok(&["stop", "wiped"]), "wiped stop/waiting\n");
    common::daemon::wait_gone(real);
}

#[test]
fn a_daemon_that_calls_setsid_after_it_was_followed_still_stops() {
    // Followed while still in its parent's group; its own group comes
    // later. The stop signal must find it there.
    let f = fixture();
    let mut d = Daemon::with_jobs_and_canary(&[(
        "late",
        &format!("expect fork\nexec python3 {f} 1 @DIR@/late.pid --late-setsid\n"),
    )]);
    d.ok(&["start", "late"]);
    let real = read_pid(&d.dir.path().join("late.pid"));
    assert_eq!(d.ok(&["stop", "late"]), "late stop/waiting\n");
    common::daemon::wait_gone(real);
    d.assert_canary();
}

#[test]
fn a_daemonized_main_process_is_respawned_when_it_dies() {
    let f = fixture();
    let mut d = Daemon::builder()
        .canary()
        .job(
            "r",
            &format!("expect fork\nrespawn\nexec python3 {f} 1 @DIR@/r.pid\n"),
        )
        .start();
    d.ok(&["start", "r"]);
    let first = read_pid(&d.dir.path().join("r.pid"));
    std::fs::remove_file(d.dir.path().join("r.pid")).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_log("r main process ended, respawning");
    let second = read_pid(&d.dir.path().join("r.pid"));
    assert_ne!(first, second);
    d.wait_status(&["r"], "running with the new process", |s| {
        s["processes"][0]["pid"].as_i64() == Some(second as i64)
    });
    d.assert_canary();
}

#[test]
fn a_wrong_fork_count_never_leaves_the_job_stuck() {
    let f = fixture();
    // Declares a fork but never forks: taken as it is, after the timeout.
    let mut d = Daemon::builder()
        .canary()
        .job("fg", "expect fork\nkill timeout 1\nexec sleep 1000\n")
        .job(
            "more",
            &format!("expect fork\nkill timeout 1\nexec python3 {f} 2 @DIR@/more.pid\n"),
        )
        .start();
    let t0 = Instant::now();
    assert!(d
        .ok(&["start", "fg"])
        .starts_with("fg start/running, process "));
    assert!(t0.elapsed() >= Duration::from_millis(900));
    d.wait_log("did not fork as `expect fork` says within 1 s; taking it as the main process");
    // Forks twice where once was declared. Which process the daemon
    // follows depends on timing: the grandchild, if the first child has
    // already gone by the time the daemon looks (the job then runs on), or
    // the first child, which then exits (the job then ends, and what it
    // left is stopped). Either way the job is never stuck, and nothing of
    // it is left after `stop`.
    d.ok(&["start", "more"]);
    let _ = d.ctl(&["stop", "more"]);
    d.wait_status_text("more", "stop/waiting", |t| {
        t.starts_with("more stop/waiting")
    });
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = processes_of_job(&d, "more");
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    d.ok(&["stop", "fg"]);
    d.assert_canary();
}

#[test]
fn expect_stop_waits_for_the_job_to_stop_itself_then_continues_it() {
    let job = "expect stop\npost-start exec sh -c 'echo post-start >> @DIR@/order'\nscript\n  sleep 0.3\n  echo ready >> @DIR@/order\n  kill -STOP $$\n  echo continued >> @DIR@/order\n  exec sleep 1000\nend script\n";
    let d = Daemon::builder()
        .job("s", job)
        .job("never", "expect stop\nkill timeout 1\nexec sleep 1000\n")
        .start();
    let t0 = Instant::now();
    let out = d.ok(&["start", "s"]);
    assert!(out.starts_with("s start/running, process "), "{out}");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "start returned before the job was ready"
    );
    let deadline = Instant::now() + DEADLINE;
    let order = loop {
        let text = std::fs::read_to_string(d.dir.path().join("order")).unwrap_or_default();
        if text.lines().count() >= 3 {
            break text;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        order.lines().next(),
        Some("ready"),
        "post-start ran only once the job was ready: {order}"
    );
    assert!(
        order.contains("continued"),
        "the job was continued: {order}"
    );
    // A job that never stops itself is taken as ready after its kill timeout.
    assert!(d.ok(&["start", "never"]).starts_with("never start/running"));
    d.wait_log("did not stop itself as `expect stop` says within 1 s; taking it as ready");
}

#[test]
fn stop_reaches_processes_that_left_the_group_and_the_session() {
    let f = fixture();
    let job = format!("kill timeout 2\nexec python3 {f} 0 @DIR@/main.pid --grandchild\n");
    let mut d = Daemon::builder().canary().job("tree", &job).start();
    d.ok(&["start", "tree"]);
    let main = read_pid(&d.dir.path().join("main.pid"));
    let escaped = read_pid(&d.dir.path().join("main.pid.escaped"));
    let sid = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .unwrap()
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    assert_ne!(
        sid(escaped),
        sid(main),
        "the grandchild is in another session"
    );
    assert_eq!(d.ok(&["stop", "tree"]), "tree stop/waiting\n");
    assert!(!alive(main));
    assert!(!alive(escaped), "a process of the job survived its stop");
    d.assert_canary();
}
