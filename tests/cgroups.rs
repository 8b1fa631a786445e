//! Confinement (issue 23): every job instance in a cgroup of its own,
//! stops that reach whatever the group holds, limits applied and OOM
//! kills told, accounting from the group, a daemon without cgroups that
//! says why and refuses only the jobs that ask, `check-config`'s notes,
//! and the `apparmor` stanzas. The tests that manage groups need root and
//! a cgroup v2 tree; a limit or AppArmor this machine lacks is checked as
//! a clear refusal, and its "applied" variant is ignored with the kernel
//! feature as the reason (the README lists them).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::{alive, wait_gone, Daemon};
use common::runner::{need_kernel, need_root, Kernel, Missing};
use common::upkeep_bin;

/// Root, and a cgroup v2 tree mounted.
fn need_cgroups() -> Result<(), Missing> {
    need_root()?;
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mounts.lines().any(|l| l.contains(" - cgroup2 ")) {
        return Err(Missing::new("needs a cgroup v2 tree (cgroup2 mounted)"));
    }
    Ok(())
}

/// A root daemon with these jobs, and its subtree of job groups.
fn root_daemon(jobs: &[(&str, &str)]) -> (Daemon, PathBuf) {
    let mut b = Daemon::builder().run_as_root();
    for (name, text) in jobs {
        b = b.job(name, text);
    }
    let d = b.start();
    let line = d.wait_log("job groups in ");
    let root = PathBuf::from(line.split("job groups in ").nth(1).unwrap().trim());
    assert!(root.is_dir(), "{}", root.display());
    (d, root)
}

fn procs(group: &Path) -> Vec<i32> {
    fs::read_to_string(group.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `sleep`s whose command line names this test's marker, wherever they are.
fn marked(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(marker)
        {
            pids.push(pid);
        }
    }
    pids
}

/// A job whose program escapes every way a process can without cgroups:
/// it double-forks, clears its environment and starts a new session. The
/// escaped process's command line carries `marker` (`sleep MARKER`).
fn escaping_job(marker: &str) -> String {
    format!(
        "script\n  (env -i setsid /bin/sh -c 'exec sleep {marker}' &) \n  exec sleep 1000\nend script\n"
    )
}

fn escaped_processes_are_stopped_and_the_group_removed() -> Result<(), Missing> {
    need_cgroups()?;
    let (d, root) = root_daemon(&[("esc", &escaping_job("4242.5"))]);
    d.ok(&["start", "esc"]);
    let group = root.join("esc");
    // The escaped process is in the job's group, with the main one.
    let escaped = common::daemon::wait_for(|| {
        let m = marked("sleep 4242.5");
        (!m.is_empty()).then_some(m)
    });
    let members = procs(&group);
    assert!(members.contains(&d.main_pid("esc").unwrap()), "{members:?}");
    assert!(
        escaped.iter().all(|p| members.contains(p)),
        "{escaped:?} in {members:?}"
    );
    d.ok(&["stop", "esc"]);
    for p in &escaped {
        assert!(!alive(*p), "escaped process {p} survived the stop");
    }
    assert!(!group.exists(), "the stopped job's group is left");
    Ok(())
}

fn expect_daemon_follows_a_member_of_the_group_with_no_identity() -> Result<(), Missing> {
    need_cgroups()?;
    // A classic daemon that also wipes its environment: without groups it
    // could only be guessed at (the one job waiting for a fork); with them
    // it is the job's because it is in the job's group. Two such jobs
    // start on one event and wait for their forks at once, where a guess
    // would not be made.
    let daemonize = |m: &str| {
        format!(
            "start on go\nexpect daemon\nexec /bin/sh -c 'env -i setsid /bin/sh -c \"sleep {m} & exit 0\" & exit 0'\n"
        )
    };
    let (d, root) = root_daemon(&[
        ("one", &daemonize("4242.81")),
        ("two", &daemonize("4242.82")),
    ]);
    d.ok(&["emit", "go"]);
    for (job, m) in [("one", "sleep 4242.81"), ("two", "sleep 4242.82")] {
        let pid = d.main_pid(job).unwrap();
        assert_eq!(marked(m), vec![pid], "{job} follows its own daemon");
        assert_eq!(procs(&root.join(job)), vec![pid]);
    }
    d.ok(&["stop", "one"]);
    assert!(marked("sleep 4242.81").is_empty());
    d.ok(&["stop", "two"]);
    Ok(())
}

fn a_process_is_in_its_group_before_it_execs() -> Result<(), Missing> {
    need_cgroups()?;
    // `cat` reads where it is as the first thing it does after exec.
    let (d, root) = root_daemon(&[("where", "task\nexec cat /proc/self/cgroup\n")]);
    d.ok(&["start", "where"]);
    let log = d.wait_log_file("where.log", "0::");
    let v2 = log.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let expected = root.join("where");
    assert!(
        expected.to_string_lossy().ends_with(v2.trim()),
        "cat ran in {v2}, not in {}",
        expected.display()
    );
    Ok(())
}

fn a_stop_ends_when_the_group_empties() -> Result<(), Missing> {
    need_cgroups()?;
    // The escaped process shrugs off TERM and leaves when the test says
    // (a line on a FIFO). With a kill timeout of ten minutes, the stop
    // ends only because the group emptied.
    // It says `escaped` once its trap is set: the stop comes after that.
    let job = "kill timeout 600\nscript\n  (setsid /bin/sh -c 'trap \"\" TERM; echo escaped; read x < @DIR@/go; exec sleep 0' &)\n  exec sleep 1000\nend script\n";
    let (d, _root) = root_daemon(&[("slow", job)]);
    let fifo = d.dir.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    d.ok(&["start", "slow"]);
    d.wait_log_file("slow.log", "escaped");
    d.ok(&["stop", "--no-wait", "slow"]);
    d.wait_log("slow main process");
    let s = d.status(&["slow"]);
    assert_eq!(s["goal"], "stop", "{s}");
    assert_ne!(
        s["state"], "waiting",
        "the group still holds a process: {s}"
    );
    fs::write(&fifo, "go\n").unwrap();
    d.wait_status(&["slow"], "stopped", |s| s["state"] == "waiting");
    assert!(
        !d.log_lines().iter().any(|l| l.contains("KILL")),
        "{:?}",
        d.log_lines()
    );
    Ok(())
}

fn a_memory_limit_is_applied_and_an_oom_kill_reported_and_respawned() -> Result<(), Missing> {
    need_cgroups()?;
    let eat = "import sys\nprint('eating', flush=True)\nb = []\nwhile True:\n    b.append(bytearray(1 << 20))\n";
    let (d, _root) = root_daemon(&[
        (
            "eat",
            "cgroup memory $UPSTART_CGROUP memory.limit_in_bytes 52428800\nrespawn\nrespawn limit 2 3600\nexec python3 @DIR@/eat.py\n",
        ),
        ("told", "start on oom-killed\ntask\nexec echo \"oom in $JOB\"\n"),
    ]);
    fs::write(d.dir.path().join("eat.py"), eat).unwrap();
    d.ok(&["start", "eat"]);
    d.wait_log(
        "eat main process killed by the kernel's OOM killer (memory max 50 MiB), respawning",
    );
    d.wait_log_file("told.log", "oom in eat");
    let s = d.wait_status(&["eat"], "stopped by the respawn limit", |s| {
        s["state"] == "waiting" && !s["failure"].is_null()
    });
    let msg = s["failure"]["message"].as_str().unwrap();
    assert!(
        msg.ends_with(
            "the last main process killed by the kernel's OOM killer (memory max 50 MiB)"
        ),
        "{s}"
    );
    // Without respawn the job fails as OOM-killed.
    Ok(())
}

fn an_oom_kill_without_respawn_fails_the_job_as_oom() -> Result<(), Missing> {
    need_cgroups()?;
    let eat = "b = []\nwhile True:\n    b.append(bytearray(1 << 20))\n";
    let (d, _root) = root_daemon(&[("eat", "memory max 40M\nexec python3 @DIR@/eat.py\n")]);
    fs::write(d.dir.path().join("eat.py"), eat).unwrap();
    d.ok(&["start", "eat"]);
    let s = d.wait_status(&["eat"], "failed", |s| !s["failure"].is_null());
    assert_eq!(s["failure"]["kind"], "oom", "{s}");
    assert_eq!(
        s["failure"]["message"],
        "killed by the kernel's OOM killer (memory max 40 MiB)"
    );
    let text = d.ok(&["status", "eat"]);
    assert!(
        text.contains("failed: killed by the kernel's OOM killer (memory max 40 MiB)"),
        "{text}"
    );
    Ok(())
}

fn cpu_seconds_are_the_groups() -> Result<(), Missing> {
    need_cgroups()?;
    // A child burns CPU and exits; the main process waits on a FIFO. The
    // dead child's time is in the group's cpu.stat, and in `status`.
    let job = "script\n  timeout 1 sh -c 'while :; do :; done' || true\n  read x < @DIR@/go\nend script\n";
    let (d, root) = root_daemon(&[("burn", job)]);
    let fifo = d.dir.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    d.ok(&["start", "burn"]);
    let group = root.join("burn");
    // Once the burner is gone, only the shell is left.
    let s = d.wait_status(&["burn"], "the burner done", |s| {
        s["costs"]["processes"] == 1 && s["costs"]["cpu_seconds"].as_f64().unwrap() > 0.3
    });
    let stat = fs::read_to_string(group.join("cpu.stat")).unwrap();
    let usec: f64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let reported = s["costs"]["cpu_seconds"].as_f64().unwrap();
    // Read a moment apart: the group's figure only grows, by what the
    // waiting shell uses in between (nothing to speak of).
    assert!(
        reported <= usec / 1e6 && usec / 1e6 - reported < 0.05,
        "status {reported} s, cpu.stat {} s",
        usec / 1e6
    );
    fs::write(&fifo, "go\n").unwrap();
    Ok(())
}

fn names_that_differ_in_slash_and_underscore_get_separate_groups() -> Result<(), Missing> {
    need_cgroups()?;
    let (d, root) = root_daemon(&[
        ("web/api", "exec sleep 1000\n"),
        ("web_api", "exec sleep 1000\n"),
        ("web", "instance $N\nexec sleep 1000\n"),
    ]);
    d.ok(&["start", "web/api"]);
    d.ok(&["start", "web_api"]);
    d.ok(&["start", "web", "N=api"]);
    let slash = root.join("web%2Fapi");
    let under = root.join("web_api");
    let inst = root.join("web@api");
    assert_eq!(procs(&slash), vec![d.main_pid("web/api").unwrap()]);
    assert_eq!(procs(&under), vec![d.main_pid("web_api").unwrap()]);
    let s = d.status(&["web", "N=api"]);
    let pid = s["processes"][0]["pid"].as_i64().unwrap() as i32;
    assert_eq!(procs(&inst), vec![pid]);
    assert!(
        !root.join("web").exists(),
        "no group of its own for web/api's parent"
    );
    Ok(())
}

fn a_per_user_daemon_without_delegation_says_why_and_refuses_only_cgroup_jobs(
) -> Result<(), Missing> {
    // Run as nobody under root (or as the user running the tests).
    let d = Daemon::with_jobs(&[
        ("plain", "exec sleep 1000\n"),
        ("cg", "cgroup memory\nexec sleep 1000\n"),
        ("lim", "memory max 50M\nexec sleep 1000\n"),
    ]);
    if d.uid == 0 {
        return Err(Missing::new("needs an unprivileged daemon"));
    }
    let said = d.wait_log("cgroups not managed: ");
    assert!(
        said.contains("jobs run in the daemon's own group, and a job with a cgroup stanza or limit does not start"),
        "{said}"
    );
    assert_eq!(
        d.ok(&["start", "plain"]),
        format!(
            "plain start/running, process {}\n",
            d.main_pid("plain").unwrap()
        )
    );
    for job in ["cg", "lim"] {
        let err = d.fails(&["start", job]);
        assert!(
            err.contains(&format!(
                "Job cannot be started as cgroup manager not available: {job} ("
            )),
            "{err}"
        );
    }
    Ok(())
}

fn no_cgroups_flag_runs_jobs_in_the_daemons_group() -> Result<(), Missing> {
    need_cgroups()?;
    let d = Daemon::builder()
        .run_as_root()
        .flag("--no-cgroups")
        .job("plain", "exec sleep 1000\n")
        .job("cg", "cgroup memory\nexec sleep 1000\n")
        .start();
    d.wait_log("cgroups not managed: turned off with --no-cgroups");
    d.ok(&["start", "plain"]);
    let mine = fs::read_to_string(format!("/proc/{}/cgroup", d.pid())).unwrap();
    let its = fs::read_to_string(format!("/proc/{}/cgroup", d.main_pid("plain").unwrap())).unwrap();
    assert_eq!(mine, its);
    assert!(d
        .fails(&["start", "cg"])
        .contains("turned off with --no-cgroups"));
    Ok(())
}

fn check_config_notes_each_cgroup_stanza_with_its_exit_status_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("cg.conf");
    fs::write(
        &job,
        "cgroup memory $UPSTART_CGROUP memory.limit_in_bytes 52428800\nscript\n  cpu quota\nend script\ncpu quota 50%\n",
    )
    .unwrap();
    let out = Command::new(upkeep_bin())
        .args(["check-config"])
        .arg(&job)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "a note is no error");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let p = job.display();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with(&format!("{p}:1: note: `cgroup memory`: job cg does not start where the daemon cannot manage cgroups")), "{err}");
    assert!(
        lines[1].starts_with(&format!("{p}:5: note: `cpu quota`")),
        "{err}"
    );
    // With a real error too, the status is the error's.
    fs::write(&job, "cgroup memory\nbogus\n").unwrap();
    let out = Command::new(upkeep_bin())
        .args(["check-config"])
        .arg(&job)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

fn recovery_after_sigkill_stops_what_the_groups_hold() -> Result<(), Missing> {
    need_cgroups()?;
    let (mut d, root) = root_daemon(&[("esc", &escaping_job("4242.6"))]);
    d.ok(&["start", "esc"]);
    let escaped = common::daemon::wait_for(|| {
        let m = marked("sleep 4242.6");
        (!m.is_empty()).then_some(m)
    });
    d.kill9_and_restart();
    d.wait_log("in its job groups: stopping them");
    for p in &escaped {
        wait_gone(*p);
    }
    assert!(!root.join("esc").exists());
    Ok(())
}

fn reexec_keeps_the_groups() -> Result<(), Missing> {
    need_cgroups()?;
    let (d, root) = root_daemon(&[("esc", &escaping_job("4242.7"))]);
    d.ok(&["start", "esc"]);
    let escaped = common::daemon::wait_for(|| {
        let m = marked("sleep 4242.7");
        (!m.is_empty()).then_some(m)
    });
    d.ok(&["re-exec"]);
    d.wait_log("re-executed as upkeep");
    assert!(procs(&root.join("esc")).contains(&escaped[0]));
    d.ok(&["stop", "esc"]);
    for p in &escaped {
        assert!(!alive(*p));
    }
    assert!(!root.join("esc").exists());
    Ok(())
}

/// Whether the daemon's groups would have this interface file (the
/// machine's v2 tree with its controller, or v1's counterpart).
fn v2_has(file: &str) -> bool {
    let h = upkeep::cgroup::hierarchy::Hierarchy::of_this_process();
    let Some(dir) = h.unified.as_ref().and_then(|m| m.own_dir()) else {
        return false;
    };
    let ctrl = file.split('.').next().unwrap();
    fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == ctrl)
}

fn blkio_weight() -> bool {
    let h = upkeep::cgroup::hierarchy::Hierarchy::of_this_process();
    v2_has("io.weight")
        || h.v1("blkio")
            .and_then(|m| m.own_dir())
            .is_some_and(|d| d.join("blkio.weight").exists())
}

fn memory_high_is_refused_where_the_system_lacks_it() -> Result<(), Missing> {
    need_cgroups()?;
    if v2_has("memory.high") {
        return Err(Missing::new(
            "this machine has memory.high: the applied variant runs",
        ));
    }
    let (d, _root) = root_daemon(&[("hi", "memory high 100M\nexec sleep 1000\n")]);
    let err = d.fails(&["start", "hi"]);
    assert!(
        err.contains("memory high 100 MiB: this system's memory controller is cgroup v1, which has no memory.high"),
        "{err}"
    );
    Ok(())
}

fn memory_high_is_applied() -> Result<(), Missing> {
    need_cgroups()?;
    need_kernel(Kernel::MemoryHigh, || v2_has("memory.high"))?;
    let (d, root) = root_daemon(&[("hi", "memory high 100M\nexec sleep 1000\n")]);
    d.ok(&["start", "hi"]);
    let v = fs::read_to_string(root.join("hi/memory.high")).unwrap();
    assert_eq!(v.trim(), (100u64 << 20).to_string());
    Ok(())
}

fn io_weight_is_refused_where_the_system_lacks_it() -> Result<(), Missing> {
    need_cgroups()?;
    if blkio_weight() {
        return Err(Missing::new(
            "this machine has an IO weight: the applied variant runs",
        ));
    }
    let (d, _root) = root_daemon(&[("io", "io weight 50\nexec sleep 1000\n")]);
    let err = d.fails(&["start", "io"]);
    assert!(err.contains("io weight 50: this system has no "), "{err}");
    Ok(())
}

fn io_weight_is_applied() -> Result<(), Missing> {
    need_cgroups()?;
    need_kernel(Kernel::IoWeight, blkio_weight)?;
    let (d, root) = root_daemon(&[("io", "io weight 50\nexec sleep 1000\n")]);
    d.ok(&["start", "io"]);
    let v2 = root.join("io/io.weight");
    if v2.exists() {
        assert!(fs::read_to_string(v2).unwrap().contains("50"));
    }
    Ok(())
}

fn apparmor_enabled() -> bool {
    upkeep::process::apparmor::enabled()
}

fn apparmor_is_refused_where_absent_and_check_config_warns() -> Result<(), Missing> {
    if apparmor_enabled() {
        return Err(Missing::new(
            "AppArmor is enabled here: the confined variant runs",
        ));
    }
    let d = Daemon::with_jobs(&[
        ("sw", "apparmor switch /usr/sbin/x\nexec sleep 1000\n"),
        (
            "ld",
            "apparmor load /etc/apparmor.d/x\npre-start exec true\nexec sleep 1000\n",
        ),
    ]);
    for (job, stanza) in [
        ("sw", "apparmor switch /usr/sbin/x"),
        ("ld", "apparmor load /etc/apparmor.d/x"),
    ] {
        let err = d.fails(&["start", job]);
        assert!(
            err.contains(&format!(
                "{stanza}: AppArmor is not enabled on this machine"
            )),
            "{err}"
        );
        assert!(d
            .ok(&["status", job])
            .starts_with(&format!("{job} stop/waiting")));
    }
    // check-config, on the same files in a dir of the test's own user.
    let conf = tempfile::tempdir().unwrap();
    for job in ["sw", "ld"] {
        fs::copy(
            d.conf.join(format!("{job}.conf")),
            conf.path().join(format!("{job}.conf")),
        )
        .unwrap();
    }
    let out = Command::new(upkeep_bin())
        .args(["check-config", "--conf-dir"])
        .arg(conf.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sw.conf:1: warning: `apparmor switch`: AppArmor is not enabled on this machine, so job sw does not start here"),
        "{err}"
    );
    assert!(err.contains("ld.conf:1: warning: `apparmor load`"), "{err}");
    Ok(())
}

fn apparmor_switch_confines_the_main_process() -> Result<(), Missing> {
    need_root()?;
    need_kernel(Kernel::AppArmor, apparmor_enabled)?;
    // A profile of the test's own, loaded by the job's `apparmor load`.
    let d = Daemon::builder()
        .run_as_root()
        .job(
            "conf",
            "apparmor load @DIR@/profile\napparmor switch upkeep-test-profile\nexec sleep 1000\n",
        )
        .job(
            "missing",
            "apparmor switch upkeep-no-such-profile\nexec sleep 1000\n",
        )
        .before_start(|dir| {
            fs::write(
                dir.join("profile"),
                "profile upkeep-test-profile flags=(complain) {\n  /** rwmix,\n}\n",
            )
            .unwrap();
        })
        .start();
    d.ok(&["start", "conf"]);
    let pid = d.main_pid("conf").unwrap();
    let current = fs::read_to_string(format!("/proc/{pid}/attr/current")).unwrap();
    assert!(current.starts_with("upkeep-test-profile"), "{current}");
    let err = d.fails(&["start", "missing"]);
    assert!(
        err.contains("unable to switch to the AppArmor profile"),
        "{err}"
    );
    Ok(())
}

tests![
    escaped_processes_are_stopped_and_the_group_removed,
    a_process_is_in_its_group_before_it_execs,
    expect_daemon_follows_a_member_of_the_group_with_no_identity,
    a_stop_ends_when_the_group_empties,
    a_memory_limit_is_applied_and_an_oom_kill_reported_and_respawned,
    an_oom_kill_without_respawn_fails_the_job_as_oom,
    cpu_seconds_are_the_groups,
    names_that_differ_in_slash_and_underscore_get_separate_groups,
    a_per_user_daemon_without_delegation_says_why_and_refuses_only_cgroup_jobs,
    no_cgroups_flag_runs_jobs_in_the_daemons_group,
    check_config_notes_each_cgroup_stanza_with_its_exit_status_unchanged,
    recovery_after_sigkill_stops_what_the_groups_hold,
    reexec_keeps_the_groups,
    memory_high_is_refused_where_the_system_lacks_it,
    memory_high_is_applied,
    io_weight_is_refused_where_the_system_lacks_it,
    io_weight_is_applied,
    apparmor_is_refused_where_absent_and_check_config_warns,
    apparmor_switch_confines_the_main_process,
];
