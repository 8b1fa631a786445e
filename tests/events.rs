//! Events: `start on` / `stop on`, job events, `emit`, and the boot
//! sequence, through the real daemon.

mod common;

use common::daemon::{alive, Daemon};

/// A service that appends `NAME up` / `NAME down` to @DIR@/order.
fn svc(name: &str, start_on: &str, stop_on: &str) -> String {
    let mut s = String::new();
    if !start_on.is_empty() {
        s.push_str(&format!("start on {start_on}\n"));
    }
    if !stop_on.is_empty() {
        s.push_str(&format!("stop on {stop_on}\n"));
    }
    s.push_str(&format!(
        "post-start exec sh -c 'echo {name} up >> @DIR@/order'\npost-stop exec sh -c 'echo {name} down >> @DIR@/order'\nexec sleep 1000\n"
    ));
    s
}

fn order(d: &Daemon) -> Vec<String> {
    std::fs::read_to_string(d.dir.path().join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn state(d: &Daemon, job: &str) -> String {
    d.status(&[job])["state"].as_str().unwrap().to_string()
}

#[test]
fn and_starts_only_after_both_and_or_after_either() {
    let d = Daemon::builder()
        .job("a", "exec sleep 1000\n")
        .job("b", "exec sleep 1000\n")
        .job(
            "both",
            "start on started a and started b\nexec sleep 1000\n",
        )
        .job(
            "either",
            "start on started a or started b\nexec sleep 1000\n",
        )
        .start();
    assert_eq!(
        d.ok(&["status", "both"]),
        "both stop/waiting\n\twaiting for started a and started b\n"
    );
    d.ok(&["start", "a"]);
    assert_eq!(state(&d, "either"), "running", "or: one is enough");
    assert_eq!(
        d.ok(&["status", "both"]),
        "both stop/waiting\n\twaiting for started b\n"
    );
    d.ok(&["start", "b"]);
    assert_eq!(state(&d, "both"), "running");
    let s = d.status(&["both"]);
    let pid = s["processes"][0]["pid"].as_i64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ
            .split(|&b| b == 0)
            .any(|v| v == b"UPSTART_EVENTS=started started"),
        "UPSTART_EVENTS names the events"
    );
}

#[test]
fn stop_on_stopping_db_stops_first_and_db_waits() {
    let d = Daemon::builder()
        .job("db", &svc("db", "", ""))
        .job("app", &svc("app", "started db", "stopping db"))
        .start();
    d.ok(&["start", "db"]);
    // `start db` returns once db runs; app is started by `started db`.
    d.wait_status(&["app"], "running", |s| s["state"] == "running");
    d.ok(&["stop", "db"]);
    let st = d.ok(&["status", "app"]);
    assert!(
        st.starts_with("app stop/waiting\n\tlast exit: signal TERM at ")
            && st.ends_with("\n\twaiting for started db\n"),
        "{st}"
    );
    let o = order(&d);
    let pos = |x: &str| {
        o.iter()
            .position(|l| l == x)
            .unwrap_or_else(|| panic!("no {x} in {o:?}"))
    };
    assert!(
        pos("app down") < pos("db down"),
        "app must be down before db: {o:?}"
    );
}

#[test]
fn start_on_starting_runs_before_the_job() {
    let d = Daemon::builder()
        .job("web", &svc("web", "", ""))
        .job(
            "prep",
            "start on starting web\ntask\nexec sh -c 'sleep 0.3; echo prep done >> @DIR@/order'\n",
        )
        .start();
    d.ok(&["start", "web"]);
    assert_eq!(order(&d), ["prep done", "web up"]);
}

#[test]
fn a_chain_of_five_comes_up_in_order_and_goes_down_in_reverse() {
    let mut b = Daemon::builder().job("j1", &svc("j1", "startup", ""));
    for i in 2..=5 {
        b = b.job(
            &format!("j{i}"),
            &svc(&format!("j{i}"), &format!("started j{}", i - 1), ""),
        );
    }
    let mut d = b.start();
    d.wait_status(&["j5"], "running", |s| s["state"] == "running");
    let pids: Vec<i32> = (1..=5)
        .map(|i| d.main_pid(&format!("j{i}")).unwrap())
        .collect();
    let ups: Vec<String> = order(&d)
        .into_iter()
        .filter(|l| l.ends_with("up"))
        .collect();
    assert_eq!(ups, ["j1 up", "j2 up", "j3 up", "j4 up", "j5 up"]);
    assert_eq!(d.terminate(), Some(0));
    let o = order(&d);
    let downs: Vec<&str> = o
        .iter()
        .filter(|l| l.ends_with("down"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        downs,
        ["j5 down", "j4 down", "j3 down", "j2 down", "j1 down"]
    );
    for p in pids {
        assert!(!alive(p));
    }
}

#[test]
fn chain_start_order_at_boot() {
    // Each job records its own start; the chain must come up in order.
    let mut b = Daemon::builder().job(
        "k1",
        "start on startup\ntask\nexec sh -c 'echo k1 >> @DIR@/boot'\n",
    );
    for i in 2..=5 {
        b = b.job(
            &format!("k{i}"),
            &format!(
                "start on stopped k{} RESULT=ok\ntask\nexec sh -c 'echo k{i} >> @DIR@/boot'\n",
                i - 1
            ),
        );
    }
    let d = b.start();
    d.wait_log("k5 main process");
    let text = std::fs::read_to_string(d.dir.path().join("boot")).unwrap();
    assert_eq!(text, "k1\nk2\nk3\nk4\nk5\n");
    let lines = d.log_lines();
    let pos = |k: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("{k} main process")))
            .unwrap()
    };
    assert!(
        pos("k1") < pos("k2")
            && pos("k2") < pos("k3")
            && pos("k3") < pos("k4")
            && pos("k4") < pos("k5")
    );
}

#[test]
fn emit_variables_are_matched_and_reach_the_job() {
    let d = Daemon::builder()
        .job("deploy", "start on deploy-requested ENV=prod*\ntask\nexec sh -c 'echo \"$ENV $VERSION $UPSTART_EVENTS\" > @DIR@/deploy.out'\n")
        .start();
    // Not matched: nothing runs, the emit returns at once.
    d.ok(&["emit", "deploy-requested", "ENV=staging", "VERSION=1"]);
    assert!(!d.dir.path().join("deploy.out").exists());
    // Matched: emit waits until the task has finished.
    d.ok(&["emit", "deploy-requested", "ENV=production", "VERSION=2"]);
    assert_eq!(
        std::fs::read_to_string(d.dir.path().join("deploy.out")).unwrap(),
        "production 2 deploy-requested\n"
    );
}

#[test]
fn emit_fails_when_a_job_it_started_fails_and_validates_its_input() {
    let d = Daemon::builder()
        .job("bad", "start on go\ntask\nexec false\n")
        .start();
    assert_eq!(d.fails(&["emit", "go"]), "upkeep: Event failed\n");
    d.wait_log("event go/failed");
    assert_eq!(
        d.fails(&["emit", "go", "NOEQUALS"]),
        "upkeep: Env must be KEY=VALUE pairs\n"
    );
    assert!(d
        .fails(&["emit", "bad name"])
        .contains("Invalid event name"));
    assert!(d
        .fails(&["emit", &"x".repeat(300)])
        .contains("Event name too long"));
    let o = d.ctl(&["emit", "go", "--no-wait"]);
    assert!(o.status.success());
}

#[test]
fn instances_are_started_by_event_variables() {
    let d = Daemon::builder()
        .job(
            "tty",
            "start on tty-added\ninstance $TTY\nexec sleep 1000\n",
        )
        .start();
    d.ok(&["emit", "tty-added", "TTY=tty1"]);
    d.ok(&["emit", "tty-added", "TTY=tty2"]);
    let list = d.ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("tty (tty1) start/running"), "{list}");
    assert!(lines[1].starts_with("tty (tty2) start/running"), "{list}");
}

#[test]
fn runlevel_patterns_and_the_shutdown_runlevel() {
    // `stop on runlevel [!2345]` goes first at SIGTERM (runlevel 0), and
    // is told why.
    let job = "start on runlevel [2345]\nstop on runlevel [!2345]\npre-stop exec sh -c 'echo \"$RUNLEVEL $UPSTART_STOP_EVENTS\" > @DIR@/why'\nexec sleep 1000\n";
    let mut d = Daemon::builder()
        .job("svc", job)
        .job("single", "start on runlevel [!2345]\nexec sleep 1000\n")
        .start();
    d.wait_status(&["svc"], "running at runlevel 2", |s| {
        s["state"] == "running"
    });
    assert_eq!(state(&d, "single"), "waiting");
    assert_eq!(d.terminate(), Some(0));
    assert_eq!(
        std::fs::read_to_string(d.dir.path().join("why")).unwrap(),
        "0 runlevel\n"
    );
}

#[test]
fn the_boot_sequence_starts_real_job_shapes() {
    let d = Daemon::builder()
        .job(
            "net",
            "start on (local-filesystems and net-device-up IFACE!=lo)\nexec sleep 1000\n",
        )
        .job(
            "lo",
            "start on (filesystem and net-device-up IFACE=lo)\nexec sleep 1000\n",
        )
        .job("rl", "start on runlevel [2345]\nexec sleep 1000\n")
        .job(
            "static",
            "start on static-network-up and runlevel [2345]\nexec sleep 1000\n",
        )
        .start();
    for j in ["lo", "rl", "static"] {
        d.wait_status(&[j], "running", |s| s["state"] == "running");
    }
    if common::daemon::other_interface_up() {
        d.wait_status(&["net"], "running", |s| s["state"] == "running");
    }
}

#[test]
fn sighup_and_reload_configuration_rescan_the_conf_dir() {
    let d = Daemon::builder().job("old", "exec sleep 1000\n").start();
    std::fs::write(
        d.conf.join("new.conf"),
        "start on go-new\nexec sleep 1000\n",
    )
    .unwrap();
    d.ok(&["reload-configuration"]);
    d.ok(&["emit", "go-new"]);
    assert_eq!(state(&d, "new"), "running");
    std::fs::write(d.conf.join("hup.conf"), "exec sleep 1000\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    d.wait_log("SIGHUP: reloading configuration");
    d.wait_status(&["hup"], "known", |s| s["state"] == "waiting");
}

#[test]
fn exported_variables_ride_on_job_events() {
    let d = Daemon::builder()
        .job("a", "env COLOR=blue\nexport COLOR\nexec sleep 1000\n")
        .job("b", "start on started a COLOR=blue\nexec sleep 1000\n")
        .start();
    d.ok(&["start", "a"]);
    let s = d.wait_status(&["b"], "running", |s| s["state"] == "running");
    let pid = s["processes"][0]["pid"].as_i64().unwrap();
    // Read once the process has exec'd (before that, /proc shows the
    // environment of the daemon it was forked from).
    let environ =
        common::daemon::wait_file(std::path::Path::new(&format!("/proc/{pid}/environ")), |t| {
            t.contains("UPSTART_JOB=b\0")
        });
    let vars: Vec<&[u8]> = environ.as_bytes().split(|&b| b == 0).collect();
    assert!(vars.contains(&&b"COLOR=blue"[..]));
    assert!(vars.contains(&&b"JOB=a"[..]));
}

#[test]
fn stop_on_expands_the_instance_variables() {
    let d = Daemon::builder()
        .job(
            "w",
            "instance $N\nstart on work-start\nstop on work-done N=$N\nexec sleep 1000\n",
        )
        .start();
    d.ok(&["emit", "work-start", "N=1"]);
    d.ok(&["emit", "work-start", "N=2"]);
    d.ok(&["emit", "work-done", "N=1"]);
    let list = d.ok(&["list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("w (2) start/running"), "{list}");
}
