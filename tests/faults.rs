//! The fault catalogue of `docs/reliability.md` that no other test file
//! covers: each test runs beside the canary job and ends with the canary
//! invariant (`Daemon::assert_canary`): the daemon alive with the same pid
//! and no panic, the canary running undisturbed, `status` answering.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{alive, nobody, wait_gone, Daemon, DEADLINE};
use common::runner::{need_root, Missing};

/// The daemon's open descriptors.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The daemon's CPU time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Raises this test process's descriptor limit to its hard limit.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

// ------------------------------------------------------- A. child death

/// T01: a job that dies by one signal after another is respawned after
/// each, and each death is logged with the signal's name.
fn t01_death_by_every_signal_is_logged_and_respawned() {
    let signals = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "XCPU", "XFSZ", "SYS",
    ];
    let job = format!(
        "respawn\nrespawn limit 100 10\nlimit core 0 0\nscript\n  n=$(cat @DIR@/n 2>/dev/null || echo 0)\n  echo $((n+1)) > @DIR@/n\n  set -- {}\n  if [ \"$n\" -ge $# ]; then exec sleep 100000; fi\n  shift $n\n  kill -$1 $$\n  sleep 100000\nend script\n",
        signals.join(" ")
    );
    let mut d = Daemon::builder().canary().job("sig", &job).start();
    d.ok(&["start", "sig"]);
    for s in signals {
        d.wait_log(&format!("killed by {s} signal"));
    }
    d.wait_status(&["sig"], "running sleep after every signal", |s| {
        s["state"] == "running"
            && std::fs::read_to_string(d.dir.path().join("n"))
                .is_ok_and(|n| n.trim() == (signals.len() + 1).to_string())
    });
    d.assert_canary();
}

/// T05: a storm of concurrent restarts of a job that crashes every 50 ms:
/// every request answered, one instance at the end, at most one main
/// process at any time.
fn t05_a_restart_storm_on_a_crash_loop() {
    let job = "respawn\nrespawn limit unlimited\nexec sh -c 'sleep 0.05; exit 1'\n";
    let mut d = Daemon::builder().canary().job("crashy", job).start();
    d.ok(&["start", "crashy"]);
    let sock = d.socket.clone();
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let verb = if i % 3 == 0 { "stop" } else { "restart" };
            Command::new(common::upkeep_bin())
                .args([verb, "crashy", "--no-wait"])
                .env("UPKEEP_SOCKET", &sock)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in clients {
        // Answered, with success or a refusal: never a hang or a lost
        // connection.
        let code = c.wait().unwrap().code();
        assert!(matches!(code, Some(0 | 1)), "{code:?}");
    }
    let _ = d.ctl(&["start", "crashy"]);
    let st = d.status(&["crashy"]);
    let mains = st["processes"]
        .as_array()
        .map_or(0, |p| p.iter().filter(|p| p["process"] == "main").count());
    assert!(mains <= 1, "{st}");
    let _ = d.ctl(&["stop", "crashy"]);
    d.assert_canary();
}

// --------------------------------------------------- F. scale, exhaustion

/// T25: 1,000 jobs start, answer `list`, and stop, with nothing left.
fn t25_a_thousand_jobs() {
    raise_nofile();
    let mut b = Daemon::builder().canary();
    for i in 0..1000 {
        b = b.job(
            &format!("j{i:04}"),
            "start on startup\nstop on bye\nexec sleep 100000\n",
        );
    }
    let mut d = b.start();
    let list = d.wait_list("1,000 jobs running", |t| {
        t.matches("start/running, process ").count() == 1001
    });
    let pids: Vec<i32> = list
        .lines()
        .filter(|l| l.starts_with('j'))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 1000);
    d.ok(&["emit", "bye"]);
    d.wait_list("1,000 jobs stopped", |t| {
        t.matches("start/running, process ").count() == 1
    });
    for p in pids {
        wait_gone(p);
    }
    d.assert_canary();
}

/// T26: 1,000 clients connect at once: 800 ask for status, 100 send half a
/// request and stall, 100 connect and leave. Every whole request is
/// answered, and the daemon's descriptors return to where they were.
fn t26_a_thousand_concurrent_clients() {
    raise_nofile();
    let mut d = Daemon::builder().canary().start();
    let before = fd_count(d.pid());
    let mut asking = Vec::new();
    let mut stalled = Vec::new();
    for i in 0..1000 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        match i % 10 {
            0 => {
                s.write_all(b"{\"v\":1,\"cmd\":\"sta").unwrap();
                stalled.push(s);
            }
            1 => drop(s),
            _ => {
                s.write_all(b"{\"v\":1,\"cmd\":\"status\",\"job\":\"canary\"}\n")
                    .unwrap();
                asking.push(s);
            }
        }
    }
    assert_eq!(asking.len(), 800);
    for mut s in asking {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut answer = String::new();
        let mut buf = [0u8; 4096];
        while !answer.ends_with('\n') {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed without an answer");
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(answer.contains("\"running\""), "{answer}");
    }
    // The stalled ones do not hold up others.
    assert!(d
        .ok(&["status", "canary"])
        .starts_with("canary start/running"));
    drop(stalled);
    let deadline = Instant::now() + DEADLINE;
    while fd_count(d.pid()) > before {
        assert!(Instant::now() < deadline, "descriptors leaked");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.assert_canary();
}

/// T27: with 64 descriptors, jobs past the limit fail to start with the
/// reason, clients past it wait without the loop spinning, and all is well
/// once descriptors are free again.
fn t27_descriptor_exhaustion() {
    let mut b = Daemon::builder().canary().limit("--nofile=64:64");
    for i in 0..80 {
        b = b.job(&format!("j{i}"), "exec sleep 100000\n");
    }
    let mut d = b.start();
    let mut failed = 0;
    for i in 0..80 {
        let o = d.ctl(&["start", &format!("j{i}")]);
        if !o.status.success() {
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(err.contains("Too many open files"), "{err}");
            failed += 1;
        }
    }
    assert!(
        failed > 0,
        "64 descriptors should not be enough for 80 jobs"
    );
    // Clients beyond the limit: the daemon cannot accept them, and must not
    // spin on the listening socket meanwhile.
    let clients: Vec<UnixStream> = (0..100)
        .filter_map(|_| UnixStream::connect(&d.socket).ok())
        .collect();
    let t0 = cpu_ticks(d.pid());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(d.pid()) - t0;
    assert!(spent < 50, "the loop spun: {spent} ticks in 1 s");
    drop(clients);
    for i in 0..80 {
        let _ = d.ctl(&["stop", &format!("j{i}")]);
    }
    // Descriptors free again: a start works.
    assert!(d.ok(&["start", "j0"]).starts_with("j0 start/running"));
    d.assert_canary();
}

/// T28: the daemon's user at its process limit: a start fails with the
/// reason, the daemon keeps serving, and starts work once the limit rises.
fn t28_fork_failure_at_the_process_limit() -> Result<(), Missing> {
    need_root()?;
    // A uid of its own, so that no other test's processes count; the
    // canary is one process that never forks: the daemon and the canary are
    // all this user runs.
    let (uid, gid) = (64_128, 64_128);
    let mut d = Daemon::builder()
        .canary()
        .run_as_user(uid, gid)
        .job("more", "exec sleep 100000\n")
        .start();
    // The soft limit, set as the daemon's user (changing another user's
    // limits takes CAP_SYS_RESOURCE, which a container's root may lack).
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_string();
    let limit = |n: &str| {
        let ok = Command::new("prlimit")
            .arg(format!("--pid={}", d.pid()))
            .arg(format!("--nproc={n}:{hard}"))
            .uid(uid)
            .gid(gid)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    limit("2");
    let err = d.fails(&["start", "more"]);
    assert!(err.contains("unable to fork"), "{err}");
    let st = d.ok(&["status", "more"]);
    assert!(
        st.starts_with("more stop/waiting\n\tfailed: main process failed to spawn: unable to fork"),
        "{st}"
    );
    limit("100");
    assert!(d.ok(&["start", "more"]).starts_with("more start/running"));
    d.assert_canary();
    Ok(())
}

/// T29: `setuid` to a user that does not exist, `setgid` to a missing
/// group: the start fails with the reason, and nothing runs as root.
fn t29_setuid_to_a_missing_user_never_runs_as_root() -> Result<(), Missing> {
    need_root()?;
    let mut d = Daemon::builder()
        .canary()
        .run_as_root()
        .job(
            "nouser",
            "setuid no-such-user-upkeep\nexec touch @DIR@/ran-nouser\n",
        )
        .job(
            "nogroup",
            "setgid no-such-group-upkeep\nexec touch @DIR@/ran-nogroup\n",
        )
        .start();
    for (job, what) in [("nouser", "user"), ("nogroup", "group")] {
        let err = d.fails(&["start", job]);
        assert!(err.contains("Job failed to start"), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(!d.dir.path().join(format!("ran-{job}")).exists());
    }
    d.assert_canary();
    Ok(())
}

/// T29, the other side: a daemon that is not root cannot run a job as
/// root, and says so.
fn t29_an_unprivileged_daemon_cannot_setuid_root() {
    let mut d = Daemon::builder()
        .canary()
        .job("asroot", "setuid root\nexec touch @DIR@/ran-asroot\n")
        .start();
    assert_ne!(d.uid, 0, "the harness runs the daemon unprivileged");
    let err = d.fails(&["start", "asroot"]);
    // setgid (to root's group) comes first, and fails first.
    assert!(
        err.contains("unable to setgid") || err.contains("unable to setuid"),
        "{err}"
    );
    assert!(!d.dir.path().join("ran-asroot").exists());
    d.assert_canary();
}

// ------------------------------------------------------ G. job files

/// T31: malformed, huge, binary and deeply nested job files dropped into a
/// running daemon's conf dir: each reported, none defines a job, the rest
/// unaffected.
fn t31_hostile_job_files_at_runtime() {
    let mut d = Daemon::builder().canary().start();
    let deep = format!(
        "start on {}a{}\nexec true\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let wide = format!(
        "start on {}\nexec true\n",
        (0..100_000)
            .map(|i| format!("e{i}"))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", b"exec".to_vec()),
        ("unknown", b"frobnicate yes\n".to_vec()),
        ("noend", b"script\n  echo hi\n".to_vec()),
        ("quotes", b"exec echo \"unbalanced\n".to_vec()),
        (
            "binary",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("nul", b"exec true\0\n".to_vec()),
        ("latin1", b"description \"caf\xe9\"\nexec true\n".to_vec()),
        ("huge", vec![b'#'; 2 << 20]),
        ("deep", deep.into_bytes()),
        ("wide", wide.into_bytes()),
    ];
    for (name, bytes) in &files {
        std::fs::write(d.conf.join(format!("{name}.conf")), bytes).unwrap();
    }
    d.ok(&["reload-configuration"]);
    for (name, _) in &files {
        let o = d.ctl(&["status", name]);
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(!text.contains("start/running"), "{name}: {text}");
    }
    d.assert_canary();
}

// ---------------------------------------------------- H. control, security

/// T34: control messages that are not requests: each gets an error (or a
/// closed connection), and the daemon serves on.
fn t34_malformed_control_messages() {
    let mut d = Daemon::builder().canary().start();
    let huge = vec![b'x'; 1 << 20];
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let frames: Vec<Vec<u8>> = vec![
        b"\n".to_vec(),
        b"not json\n".to_vec(),
        b"{\"v\":1,\"cmd\":\"frobnicate\"}\n".to_vec(),
        b"{\"v\":1,\"cmd\":\"status\",\"job\":\"a\\u0000b\"}\n".to_vec(),
        b"{\"v\":1,\"cmd\":\"status\",\"job\":\"\xff\xfe\"}\n".to_vec(),
        b"{\"v\":99,\"cmd\":\"list\"}\n".to_vec(),
        deep.into_bytes(),
        huge,
    ];
    for frame in frames {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        // The daemon may close the connection before all of a huge frame
        // is written: a broken pipe here is one of the right answers.
        let _ = s.write_all(&frame);
        let _ = s.write_all(b"\n");
        // Nothing more comes: the daemon answers, or closes at the end.
        let _ = s.shutdown(std::net::Shutdown::Write);
        // One answer line, or the connection closed.
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.ends_with(b"\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.contains("\"error\""),
            "{answer}"
        );
    }
    // One byte at a time is a request like any other.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    for b in b"{\"v\":1,\"cmd\":\"status\",\"job\":\"canary\"}\n" {
        s.write_all(&[*b]).unwrap();
    }
    let mut answer = [0u8; 4096];
    let n = s.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).contains("running"));
    d.assert_canary();
}

/// T35: an unprivileged client of root's daemon may read but not change;
/// a uid written into the request changes nothing.
fn t35_a_forged_uid_in_the_request_is_ignored() -> Result<(), Missing> {
    need_root()?;
    let mut d = Daemon::builder()
        .canary()
        .run_as_root()
        .job("web", "exec sleep 100000\n")
        .start();
    std::fs::set_permissions(
        d.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    d.ok(&["start", "web"]);
    let pid = d.main_pid("web").unwrap();
    let (u, g) = nobody();
    let send = |request: &str| {
        let o = Command::new("python3")
            .args([
                "-c",
                "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(sys.argv[2].encode() + b'\\n')\nprint(s.recv(65536).decode())",
            ])
            .arg(&d.socket)
            .arg(request)
            .uid(u)
            .gid(g)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for forged in [
        r#"{"v":1,"cmd":"stop","job":"web","uid":0}"#,
        r#"{"v":1,"cmd":"stop","job":"web","peer_uid":0,"root":true}"#,
        r#"{"v":1,"cmd":"emit","event":"bye","uid":0}"#,
        r#"{"v":1,"cmd":"reload-configuration","uid":0}"#,
        r#"{"v":1,"cmd":"re-exec","uid":0}"#,
    ] {
        let answer = send(forged);
        assert!(answer.contains("permission"), "{forged}: {answer}");
    }
    assert!(!d.log_lines().iter().any(|l| l.contains("re-executing")));
    assert!(send(r#"{"v":1,"cmd":"status","job":"web"}"#).contains("running"));
    assert!(alive(pid));
    assert_eq!(d.main_pid("web"), Some(pid));
    d.assert_canary();
    Ok(())
}

// ----------------------------------------------------------- E. logs

/// T19: the log dir unwritable while a job writes, then writable again:
/// what was written meanwhile arrives in order (up to the per-job buffer),
/// or is counted as lost; nothing blocks the job.
fn t19_an_unwritable_log_dir_then_a_writable_one() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = Daemon::builder()
        .canary()
        .job(
            "w",
            "script\n  for i in 1 2 3 4 5; do echo \"line $i\"; done\n  while [ ! -e @DIR@/go ]; do sleep 0.05; done\n  echo \"line 6\"\n  exec sleep 100000\nend script\n",
        )
        .start();
    // Root writes anywhere: the daemon runs as nobody under a root run.
    assert_ne!(d.uid, 0);
    // The canary's file is open already; only new files fail.
    std::fs::set_permissions(&d.logs, std::fs::Permissions::from_mode(0o555)).unwrap();
    d.ok(&["start", "w"]);
    d.wait_log("w.log");
    std::fs::set_permissions(&d.logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(d.dir.path().join("go"), "").unwrap();
    let text = d.wait_log_file("w.log", "line 6\n");
    let lines: Vec<&str> = text.lines().collect();
    let kept: Vec<&&str> = lines.iter().filter(|l| l.starts_with("line ")).collect();
    if kept.len() < 6 {
        assert!(
            text.contains("bytes of output were lost"),
            "lines went missing without a word:\n{text}"
        );
    } else {
        assert_eq!(
            kept,
            ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"]
                .iter()
                .collect::<Vec<_>>()
        );
    }
    d.assert_canary();
}

/// T37: variables given to `emit` reach the jobs it starts as data; the
/// job's identity cannot be overridden; a malformed pair is refused.
fn t37_emit_cannot_override_a_jobs_identity() {
    let mut d = Daemon::builder()
        .canary()
        .job("e", "start on foo\ntask\nexec sh -c 'env > @DIR@/env'\n")
        .start();
    let err = d.fails(&["emit", "foo", "BAD"]);
    assert!(err.contains("KEY=VALUE"), "{err}");
    d.ok(&[
        "emit",
        "foo",
        "UPSTART_JOB=evil",
        "UPSTART_INSTANCE=evil",
        "X=$(touch @DIR@/pwned); `touch @DIR@/pwned`",
    ]);
    let env = common::daemon::wait_file(&d.dir.path().join("env"), |t| t.contains("UPSTART_JOB"));
    assert!(env.lines().any(|l| l == "UPSTART_JOB=e"), "{env}");
    assert!(env.lines().any(|l| l == "UPSTART_INSTANCE="), "{env}");
    assert!(env.contains("X=$(touch"), "{env}");
    assert!(!d.dir.path().join("pwned").exists());
    d.assert_canary();
}

/// T38: a symlink or a regular file where the socket should be: the
/// daemon refuses to start and touches neither.
fn t38_the_socket_path_is_never_followed_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let file = dir.path().join("file.sock");
    std::fs::write(&file, "keep me too").unwrap();
    for path in [&link, &file] {
        let o = Command::new(common::upkeep_bin())
            .args(["daemon", "--conf-dir"])
            .arg(dir.path().join("conf"))
            .arg("--log-dir")
            .arg(dir.path().join("log"))
            .arg("--socket")
            .arg(path)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("is not a socket; refusing to replace it"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me too");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
}

/// T24: symlinks planted at a job's log path and at the state file's
/// temporary path are never followed: their targets stay as they were,
/// the refusal is logged, and logging resumes in a real file once the
/// link is gone, saying what was lost.
fn t24_symlinks_at_log_and_state_paths_are_never_followed() {
    let mut d = Daemon::builder()
        .canary()
        .job(
            "web",
            "exec sh -c 'while :; do echo tick; sleep 0.05; done'\n",
        )
        .before_start(|dir| {
            let victim = dir.join("victim");
            std::fs::write(&victim, "precious\n").unwrap();
            std::fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .unwrap();
            std::os::unix::fs::symlink(&victim, dir.join("log/web.log")).unwrap();
        })
        .start();
    let victim = d.dir.path().join("victim");
    let state_tmp = d.dir.path().join("run/upkeep.sock.state.tmp");
    std::os::unix::fs::symlink(&victim, &state_tmp).unwrap();
    d.ok(&["start", "web"]);
    let pid = d.main_pid("web").unwrap();
    d.wait_log("web.log: unable to write");
    let state = common::daemon::wait_file(&d.dir.path().join("run/upkeep.sock.state"), |t| {
        t.contains(&format!("{pid} "))
    });
    assert!(state.contains(" web\n"), "{state}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let link = d.logs.join("web.log");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_file(&link).unwrap();
    let text = d.wait_log_file("web.log", "tick\n");
    assert!(text.contains("bytes of output were lost"), "{text}");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    d.assert_canary();
}

// ----------------------------------------------------------- H. clocks

/// libfaketime, which moves the wall clock of the process it is preloaded
/// into (Debian's `faketime` package).
fn need_libfaketime() -> Result<std::path::PathBuf, Missing> {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
        .ok_or_else(|| {
            Missing::new("needs libfaketime, which is not installed (Debian's faketime; .ci/run installs it)")
        })
}

/// T36: the wall clock jumps an hour back, then a day forward, while a
/// job is in its kill timeout and another crash-loops towards its respawn
/// limit. Every timer is on the monotonic clock: the kill comes no sooner
/// than the timeout says, and the respawn limit counts as before (a window
/// on the wall clock would have reset and let the loop go on).
fn t36_wall_clock_jumps_move_no_timer() -> Result<(), Missing> {
    let lib = need_libfaketime()?;
    // Only the daemon's clock moves; its jobs keep the real one.
    const REAL: &str = "env LD_PRELOAD=\n";
    let mut d = Daemon::builder()
        .env("LD_PRELOAD", lib.to_str().unwrap())
        .env("FAKETIME_TIMESTAMP_FILE", "@DIR@/faketime")
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .before_start(|dir| std::fs::write(dir.join("faketime"), "+0\n").unwrap())
        .canary_with(REAL)
        .job(
            "stubborn",
            &format!("{REAL}kill timeout 3\nscript\n  trap '' TERM\n  while true; do sleep 0.1; done\nend script\n"),
        )
        .job(
            "crashy",
            &format!("{REAL}respawn\nrespawn limit 3 600\nexec sh -c 'echo x >> @DIR@/spawns; sleep 0.3; exit 1'\n"),
        )
        .start();
    let clock = d.dir.path().join("faketime");
    d.ok(&["start", "stubborn"]);
    d.ok(&["start", "crashy"]);
    d.ok(&["stop", "--no-wait", "stubborn"]);
    let term = Instant::now();
    d.wait_log("Sending TERM signal to stubborn");
    std::fs::write(&clock, "-1h\n").unwrap();
    d.wait_log("crashy main process (");
    std::fs::write(&clock, "+1d\n").unwrap();
    d.wait_status(&["stubborn"], "stopped", |s| s["state"] == "waiting");
    assert!(
        term.elapsed() >= Duration::from_secs(3),
        "killed {:?} after TERM, before its kill timeout",
        term.elapsed()
    );
    d.wait_log("crashy respawning too fast, stopped");
    let spawns = std::fs::read_to_string(d.dir.path().join("spawns")).unwrap();
    assert_eq!(spawns.lines().count(), 4, "one spawn and three respawns");
    // The daemon did see the jump.
    let daemon_log = d.log_file("upkeep@daemon.log");
    let tomorrow = std::process::Command::new("date")
        .args(["-d", "tomorrow", "+%Y-%m-%d"])
        .output()
        .unwrap();
    let tomorrow = String::from_utf8_lossy(&tomorrow.stdout).trim().to_string();
    assert!(
        daemon_log.lines().any(|l| l.starts_with(&tomorrow)),
        "{daemon_log}"
    );
    d.assert_canary();
    Ok(())
}

tests![
    t01_death_by_every_signal_is_logged_and_respawned,
    t05_a_restart_storm_on_a_crash_loop,
    t25_a_thousand_jobs,
    t26_a_thousand_concurrent_clients,
    t27_descriptor_exhaustion,
    t28_fork_failure_at_the_process_limit,
    t29_setuid_to_a_missing_user_never_runs_as_root,
    t29_an_unprivileged_daemon_cannot_setuid_root,
    t31_hostile_job_files_at_runtime,
    t34_malformed_control_messages,
    t35_a_forged_uid_in_the_request_is_ignored,
    t19_an_unwritable_log_dir_then_a_writable_one,
    t37_emit_cannot_override_a_jobs_identity,
    t38_the_socket_path_is_never_followed_or_replaced,
    t24_symlinks_at_log_and_state_paths_are_never_followed,
    t36_wall_clock_jumps_move_no_timer,
];
