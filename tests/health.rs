//! `health` probes with real programs: a service started only once its port
//! answers, a hung HTTP server restarted after its failures, a ready
//! timeout, redirects and oversize heads as failures, probes across
//! `re-exec`, and none left after `stop`.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::daemon::Daemon;
use common::runner::{need_program, Missing};

fn server() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/health_server.py"
    )
    .to_string()
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// `GET /` with a deadline: the status line, or why not.
fn get(port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out.lines().next().unwrap_or("").to_string())
}

fn a_dependent_starts_only_once_the_port_answers() -> Result<(), Missing> {
    need_program("python3")?;
    let port = free_port();
    let mut d = Daemon::builder()
        .job(
            "db",
            &format!(
                "health ready tcp 127.0.0.1:{port}\nhealth ready period 0.1\nexec python3 {} {port} ok 1.5\n",
                server()
            ),
        )
        .job(
            "web",
            &format!(
                "start on started db\nexec python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port})); print(\"db answered\", flush=True); import time; time.sleep(1000)'\n"
            ),
        )
        .canary()
        .start();
    d.ok(&["start", "db"]);
    // `start` returned once the probe passed: the port answers now.
    assert!(answers(port), "db is ready, so its port answers");
    d.wait_log_file("web.log", "db answered");
    let s = d.status(&["db"]);
    assert_eq!(s["state"], "running");
    d.ok(&["stop", "db"]);
    d.assert_canary();
    Ok(())
}

fn a_hung_server_is_restarted_after_its_failures() -> Result<(), Missing> {
    need_program("python3")?;
    let port = free_port();
    let mut d = Daemon::builder()
        .job(
            "web",
            &format!(
                "respawn\nhealth ready http://127.0.0.1:{port}/health\nhealth ready period 0.1\n\
                 health alive http://127.0.0.1:{port}/health\n\
                 health alive period 0.2 timeout 0.3 failure-threshold 2\n\
                 exec python3 {} {port} ok\n",
                server()
            ),
        )
        .job(
            "alert",
            "start on unhealthy JOB=web\ntask\nexec sh -c 'echo \"$JOB is unhealthy: $ERROR\"'\n",
        )
        .canary()
        .start();
    d.ok(&["start", "web"]);
    assert_eq!(get(port), Ok("HTTP/1.1 200 OK".into()));
    let s = d.wait_status(&["web"], "healthy", |s| s["health"]["state"] == "healthy");
    assert!(d.ok(&["status", "web"]).contains("\n\thealth: healthy"));
    assert!(s["health"]["latency_ms"].as_f64().unwrap() < 300.0, "{s}");
    let mut monitor = std::process::Command::new(common::upkeep_bin())
        .args(["monitor", "--json", "web"])
        .env("UPKEEP_SOCKET", &d.socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = s["processes"][0]["pid"].as_i64().unwrap() as i32;
    // Hung: alive, accepting, never answering.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let s = d.wait_status(&["web"], "respawned and healthy", |s| {
        s["respawns"] == 1 && s["state"] == "running" && s["health"]["state"] == "healthy"
    });
    assert_ne!(s["processes"][0]["pid"].as_i64().unwrap() as i32, first);
    common::daemon::wait_gone(first);
    assert_eq!(
        get(port),
        Ok("HTTP/1.1 200 OK".into()),
        "the next request succeeds"
    );
    // The monitor saw the verdicts (it may have subscribed after the
    // first `healthy`, never after the `unhealthy`: the hang came later).
    monitor.kill().unwrap();
    let out = monitor.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains(r#""error":"2 failures: no answer within 0.3 s","instance":"","job":"web","probe":"alive","state":"unhealthy","type":"health""#),
        "{seen}"
    );
    let alert = d.wait_log_file("alert.log", "unhealthy");
    assert!(
        alert.contains("web is unhealthy: 2 failures: no answer within 0.3 s"),
        "{alert}"
    );
    d.wait_log("web main process");
    d.ok(&["stop", "web"]);
    d.assert_canary();
    Ok(())
}

fn a_ready_probe_that_never_passes_fails_the_start() -> Result<(), Missing> {
    let port = free_port();
    let mut d = Daemon::builder()
        .job(
            "db",
            &format!("health ready tcp 127.0.0.1:{port}\nhealth ready period 0.1\nready timeout 1\nexec sleep 1000\n"),
        )
        .canary()
        .start();
    let e = d.fails(&["start", "db"]);
    assert_eq!(
        e,
        "upkeep: Job failed to start: main process not ready within 1 s (health ready probe)\n"
    );
    let text = d.ok(&["status", "db"]);
    assert!(
        text.contains("\tfailed: main process not ready within 1 s (health ready probe) at "),
        "{text}"
    );
    d.assert_canary();
    Ok(())
}

fn redirects_and_oversize_heads_are_failures() -> Result<(), Missing> {
    need_program("python3")?;
    for (mode, error) in [
        ("redirect", "HTTP status 302"),
        ("huge", "response head over 8 KiB"),
    ] {
        let port = free_port();
        let mut d = Daemon::builder()
            .job(
                "web",
                &format!(
                    "health alive http://127.0.0.1:{port}/ status 200-299\n\
                     health alive period 0.1 failure-threshold 2 initial-delay 0.3\n\
                     exec python3 {} {port} {mode}\n",
                    server()
                ),
            )
            .canary()
            .start();
        d.ok(&["start", "web"]);
        // No respawn: the job stops, failed, unhealthy.
        let s = d.wait_status(&["web"], "stopped as unhealthy", |s| {
            s["failure"]["kind"] == "unhealthy"
        });
        assert_eq!(
            s["failure"]["message"],
            format!("unhealthy: 2 failures: {error}"),
            "{s}"
        );
        d.assert_canary();
    }
    Ok(())
}

fn probes_survive_re_exec_and_none_is_left_after_stop() -> Result<(), Missing> {
    need_program("python3")?;
    let port = free_port();
    // No canary: its output would wake the daemon.
    let d = Daemon::builder()
        .job(
            "web",
            &format!(
                "health alive tcp 127.0.0.1:{port}\nhealth alive period 0.1\nenv COUNT_FILE=@DIR@/count\nexec python3 {} {port} ok\n",
                server()
            ),
        )
        .start();
    // Writable by the job's user.
    let count = d.write_file("count", "0");
    d.ok(&["start", "web"]);
    d.wait_status(&["web"], "healthy", |s| s["health"]["state"] == "healthy");
    d.ok(&["re-exec"]);
    // Its verdict kept: healthy at once, not starting again.
    assert_eq!(d.status(&["web"])["health"]["state"], "healthy");
    let tries = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or(0)
    };
    let before = tries();
    common::daemon::wait_file(&count, |t| t.parse::<u64>().unwrap_or(0) > before + 2);
    d.ok(&["stop", "web"]);
    let s = d.status(&["web"]);
    assert!(s.get("health").is_none(), "{s}");
    // Nothing probes a stopped job (the port is closed: a try would be a
    // refused connect, which the server cannot count, so count the
    // daemon's wake-ups instead).
    let switches = || {
        let st = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
        st.lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let w0 = switches();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(switches() - w0, 0, "no probe after stop");
    Ok(())
}

fn a_command_probe_runs_as_the_job_and_a_hung_one_is_cut_at_its_timeout() -> Result<(), Missing> {
    need_program("redis-server")?;
    need_program("redis-cli")?;
    let port = free_port();
    let mut d = Daemon::builder()
        .job(
            "redis",
            &format!(
                "health ready exec redis-cli -p {port} ping\nhealth ready period 0.1\n\
                 exec redis-server --port {port} --save '' --appendonly no --bind 127.0.0.1\n"
            ),
        )
        .job(
            "stuck",
            "health alive exec sleep 100\nhealth alive period 0.2 timeout 0.3 failure-threshold 1\nexec sleep 1000\n",
        )
        .canary()
        .start();
    d.ok(&["start", "redis"]);
    // Ready means redis-cli ping answered: it answers now.
    let o = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "ping"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "PONG");
    d.ok(&["stop", "redis"]);
    // The probe that hangs is cut at 0.3 s: one failure, unhealthy, and
    // with no respawn the job stops, failed; no probe process is left.
    d.ok(&["start", "stuck"]);
    let s = d.wait_status(&["stuck"], "stopped as unhealthy", |s| {
        s["failure"]["kind"] == "unhealthy"
    });
    assert_eq!(
        s["failure"]["message"],
        "unhealthy: 1 failure: no answer within 0.3 s"
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 100$"])
        .output()
        .unwrap();
    // Killed at once; reaped by the daemon.
    let deadline = std::time::Instant::now() + common::daemon::DEADLINE;
    let mut left = left;
    while !left.stdout.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "a probe process was left"
        );
        std::thread::sleep(Duration::from_millis(20));
        left = std::process::Command::new("pgrep")
            .args(["-f", "^sleep 100$"])
            .output()
            .unwrap();
    }
    d.assert_canary();
    Ok(())
}

fn a_ready_probe_after_expect_fork() -> Result<(), Missing> {
    need_program("python3")?;
    let port = free_port();
    let mut d = Daemon::builder()
        .job(
            "forker",
            &format!(
                "expect fork\nhealth ready tcp 127.0.0.1:{port}\nhealth ready period 0.1\n\
                 exec sh -c 'python3 {} {port} ok 1 & exit 0'\n",
                server()
            ),
        )
        .canary()
        .start();
    d.ok(&["start", "forker"]);
    assert!(answers(port), "ready only once the forked server answers");
    let s = d.status(&["forker"]);
    let main = s["processes"][0]["pid"].as_i64().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{main}/cmdline")).unwrap();
    assert!(
        cmdline.contains("health_server.py"),
        "followed to the server: {cmdline:?}"
    );
    d.ok(&["stop", "forker"]);
    d.assert_canary();
    Ok(())
}

/// The README's crash-alert recipe covers hangs: a hung `web` killed by its
/// alive probe is mailed like a crash.
fn the_crash_alert_recipe_mails_a_hang() -> Result<(), Missing> {
    need_program("python3")?;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- recipe: crash-alert -->")
        .expect("the recipe");
    let block = &readme[start..];
    let body = &block[block.find("```\n").unwrap() + 4..];
    let recipe = &body[..body.find("```").unwrap()];
    let port = free_port();
    let d = Daemon::builder()
        .job(
            "web",
            &format!(
                "respawn\nhealth alive http://127.0.0.1:{port}/\n\
                 health alive period 0.2 timeout 0.3 failure-threshold 2 initial-delay 0.5\n\
                 exec python3 {} {port} ok\n",
                server()
            ),
        )
        .job(
            "web-alert",
            &format!("env PATH=@DIR@/bin:/usr/bin:/bin\n{recipe}"),
        )
        .start();
    d.write_file(
        "bin/mail",
        "#!/bin/sh\n{ echo \"$*\"; cat; } >> \"$(dirname \"$0\")/../mailed\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        d.dir.path().join("bin/mail"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    d.ok(&["start", "web"]);
    let s = d.wait_status(&["web"], "healthy", |s| s["health"]["state"] == "healthy");
    let pid = s["processes"][0]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let mailed =
        common::daemon::wait_file(&d.dir.path().join("mailed"), |t| t.lines().count() >= 2);
    assert!(
        mailed.contains("web: RESULT=ok PROCESS=main EXIT_STATUS= EXIT_SIGNAL=TERM"),
        "{mailed}"
    );
    d.ok(&["stop", "web"]);
    Ok(())
}

tests![
    the_crash_alert_recipe_mails_a_hang,
    a_command_probe_runs_as_the_job_and_a_hung_one_is_cut_at_its_timeout,
    a_ready_probe_after_expect_fork,
    a_dependent_starts_only_once_the_port_answers,
    a_hung_server_is_restarted_after_its_failures,
    a_ready_probe_that_never_passes_fails_the_start,
    redirects_and_oversize_heads_are_failures,
    probes_survive_re_exec_and_none_is_left_after_stop,
];
