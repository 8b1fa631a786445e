//! `upkeep web`'s HTTP API against a real daemon and a real gateway: every
//! endpoint, who may do what (token, read-only, Host), the security
//! headers on every response, the event stream across a daemon restart,
//! and hostile requests cut off while others are served.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::daemon::Daemon;
use common::runner::{need_program, need_root, Missing};
use common::web::{token_file, Gateway, Reply};

fn secure(r: &Reply) {
    assert_eq!(
        r.header("Content-Security-Policy").as_deref(),
        Some("default-src 'self'; frame-ancestors 'none'"),
        "{}",
        r.head
    );
    assert_eq!(
        r.header("X-Content-Type-Options").as_deref(),
        Some("nosniff")
    );
    assert!(r.header("Access-Control-Allow-Origin").is_none());
    assert!(r.header("Set-Cookie").is_none());
}

fn jobs() -> Daemon {
    Daemon::builder()
        .job(
            "web",
            "exec sh -c 'echo hello from web; trap \"\" HUP; exec sleep 1000'\n",
        )
        .job("multi", "instance $N\nexec sleep 1000\n")
        .job("once", "task\nexec sh -c 'exit 3'\n")
        .start()
}

fn every_endpoint_answers_with_the_security_headers() {
    let d = jobs();
    d.ok(&["start", "web"]);
    d.ok(&["start", "multi", "N=a/b <i>"]);
    let g = Gateway::builder(&d).token().start();
    for page in ["/", "/index.html", "/app.js", "/style.css"] {
        let r = g.get(page);
        assert_eq!(r.status, 200, "{page}");
        secure(&r);
    }
    assert!(g.get("/").body.contains("<script src=\"/app.js\""));
    // Every job, with costs on asking.
    let r = g.get("/api/v1/jobs");
    secure(&r);
    let all = r.json();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"web") && names.contains(&"multi") && names.contains(&"once"),
        "{names:?}"
    );
    assert!(all[0].get("costs").is_none());
    assert!(g.get("/api/v1/jobs?costs=1").json()[0]["costs"]["processes"].is_number());
    // One job; one instance by its name (percent-encoded, with a slash).
    let web = g.get("/api/v1/jobs/web").json();
    assert_eq!(web[0]["state"], "running");
    assert_eq!(web[0]["v"], 1);
    let inst = g.get("/api/v1/jobs/multi/a%2Fb%20%3Ci%3E");
    assert_eq!(inst.status, 200, "{}", inst.body);
    assert_eq!(inst.json()["instance"], "a/b <i>");
    let missing = g.get("/api/v1/jobs/nosuch");
    assert_eq!(missing.status, 404);
    secure(&missing);
    // Actions, with the token.
    let r = g.post("/api/v1/jobs/web/stop", true);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()[0]["state"], "waiting");
    g.wait_log("stop web: ok");
    assert!(
        g.wait_log("stop web").contains("127.0.0.1:"),
        "the action is logged with its address"
    );
    assert_eq!(
        g.post("/api/v1/jobs/web/start", true).json()[0]["state"],
        "running"
    );
    let before = d.main_pid("web").unwrap();
    assert_eq!(g.post("/api/v1/jobs/web/restart", true).status, 200);
    assert_ne!(d.main_pid("web").unwrap(), before);
    assert_eq!(g.post("/api/v1/jobs/web/reload", true).status, 200);
    let r = g.post("/api/v1/jobs/multi/a%2Fb%20%3Ci%3E/stop", true);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = g.request(
        "POST",
        "/api/v1/jobs/multi/start",
        true,
        r#"{"env":["N=two"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()[0]["instance"], "two");
    let r = g.post("/api/v1/jobs/once/start", true);
    assert_eq!(r.status, 409, "a failed task: {}", r.body);
    assert_eq!(g.post("/api/v1/jobs/web/explode", true).status, 404);
    // The log: its tail, and followed.
    let log = g.get_with_token("/api/v1/jobs/web/log?lines=1");
    assert_eq!(log.status, 200, "{}", log.body);
    assert_eq!(log.body, "hello from web\n");
    secure(&log);
    let mut follow = g.stream("/api/v1/jobs/web/log?lines=0&follow=1", true);
    d.ok(&["restart", "web"]);
    follow.wait_for("hello from web");
    // Health and readiness, and the gateway itself.
    let h = g.get("/healthz");
    assert_eq!(h.status, 200);
    secure(&h);
    let r = g.get("/readyz?job=web&job=multi");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = g.get("/readyz");
    assert_eq!(r.status, 503, "the failed task: {}", r.body);
    assert!(
        r.json()["not_ready"][0]
            .as_str()
            .unwrap()
            .starts_with("once: failed:"),
        "{}",
        r.body
    );
    assert_eq!(g.get("/readyz?job=nosuch").status, 404);
    let gw = g.get("/api/v1/gateway").json();
    assert_eq!(gw["acting"], true);
    assert_eq!(gw["token"], false);
    assert_eq!(g.get_with_token("/api/v1/gateway").json()["token"], true);
    // Metrics.
    let m = g.get("/metrics");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("Content-Type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    secure(&m);
    assert!(
        m.body
            .contains("upkeep_job_up{job_name=\"web\",instance_name=\"\"} 1\n"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("upkeep_build_info{version=\""),
        "{}",
        m.body
    );
    // Anything else.
    let r = g.get("/nosuch");
    assert_eq!(r.status, 404);
    secure(&r);
    assert_eq!(
        g.request("DELETE", "/api/v1/jobs/web", true, "").status,
        405
    );
}

fn reads_without_the_token_show_no_logs_and_no_environments() {
    let d = jobs();
    d.ok(&["start", "web"]);
    let g = Gateway::builder(&d).token().start();
    let r = g.get("/api/v1/jobs/web/log");
    assert_eq!(r.status, 401);
    secure(&r);
    assert!(!r.body.contains("hello"));
    assert_eq!(g.get("/api/v1/jobs/web/log?follow=1").status, 401);
    let mut anyone = g.stream("/api/v1/events", false);
    let mut holder = g.stream("/api/v1/events", true);
    assert!(anyone.head.contains("text/event-stream"), "{}", anyone.head);
    anyone.wait_for("event: snapshot");
    holder.wait_for("event: snapshot");
    d.ok(&["emit", "ping", "SECRET=42"]);
    let theirs = anyone.wait_for("\"event\":\"ping\"");
    let mine = holder.wait_for("\"event\":\"ping\"");
    assert!(!theirs.contains("SECRET"), "{theirs}");
    assert!(mine.contains("SECRET=42"), "{mine}");
    // A wrong token is refused, and so is guessing on.
    for _ in 0..10 {
        let r = g.raw(
            format!(
                "GET /api/v1/jobs HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
                g.host(),
                "x".repeat(40)
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 401);
    }
    let r = g.get_with_token("/api/v1/jobs");
    assert_eq!(
        r.status, 429,
        "the good token, after ten wrong ones from this address"
    );
    assert!(r.header("Retry-After").is_some());
}

fn a_read_only_gateway_refuses_actions() {
    let d = jobs();
    d.ok(&["start", "web"]);
    // Without a token file: read-only.
    let g = Gateway::builder(&d).start();
    let r = g.post("/api/v1/jobs/web/stop", false);
    assert_eq!(r.status, 403, "{}", r.body);
    secure(&r);
    assert_eq!(g.get("/api/v1/gateway").json()["acting"], false);
    // With one, and --read-only.
    let g = Gateway::builder(&d).token().arg("--read-only").start();
    assert_eq!(g.post("/api/v1/jobs/web/stop", true).status, 403);
    assert_eq!(g.get_with_token("/api/v1/jobs/web/log").status, 200);
    // Acting, but no token sent.
    let g = Gateway::builder(&d).token().start();
    let r = g.post("/api/v1/jobs/web/stop", false);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate").as_deref(), Some("Bearer"));
    assert_eq!(d.status(&["web"])["state"], "running");
}

fn a_wrong_host_is_forbidden() {
    let d = jobs();
    let g = Gateway::builder(&d)
        .arg("--allow-host")
        .arg("upkeep.example")
        .start();
    for host in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1",
        "localhost:1",
    ] {
        let r = g.raw(format!("GET /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(r.status, 403, "{host}");
        secure(&r);
    }
    assert_eq!(
        g.raw(b"GET /api/v1/jobs HTTP/1.0\r\n\r\n").status,
        403,
        "no Host"
    );
    for host in [
        g.host(),
        format!("localhost:{}", g.port),
        "upkeep.example".into(),
        format!("upkeep.example:{}", g.port),
    ] {
        let r = g.raw(format!("GET /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200, "{host}");
    }
}

fn unsafe_settings_are_refused_at_start() {
    let d = jobs();
    // A non-loopback address needs a token or --read-only.
    let (code, said) = Gateway::builder(&d)
        .arg("--listen")
        .arg("0.0.0.0:0")
        .refused(None);
    assert_eq!(code, 1);
    assert!(said.contains("is not a loopback address"), "{said}");
    let g = Gateway::builder(&d)
        .arg("--listen")
        .arg("0.0.0.0:0")
        .arg("--read-only")
        .start();
    g.wait_log("plain HTTP on a non-loopback address");
    // A token file others can read, or too short.
    let (uid, gid) = if upkeep::process::euid() == 0 {
        (d.uid, d.uid)
    } else {
        (d.uid, nix::unistd::getegid().as_raw())
    };
    let (loose, _) = token_file(d.dir.path(), uid, gid, 32);
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (code, said) = Gateway::builder(&d).refused(Some(&loose));
    assert_eq!(code, 1);
    assert!(said.contains("mode 0644"), "{said}");
    let (short, _) = token_file(d.dir.path(), uid, gid, 16);
    let (code, said) = Gateway::builder(&d).refused(Some(&short));
    assert_eq!(code, 1);
    assert!(said.contains("at least 32"), "{said}");
}

fn the_gateway_subscribes_again_when_the_daemon_drops_it() {
    let mut d = jobs();
    d.ok(&["start", "web"]);
    let g = Gateway::builder(&d).start();
    let mut s = g.stream("/api/v1/events", false);
    s.wait_for("event: snapshot");
    d.kill9_and_restart();
    // A new snapshot, then entries of the new daemon.
    s.wait_count("event: snapshot\ndata: [", 2);
    d.ok(&["emit", "after-restart"]);
    s.wait_for("\"event\":\"after-restart\"");
}

fn oversize_and_slow_requests_are_cut_off_while_others_are_served() -> Result<(), Missing> {
    let d = jobs();
    let g = Gateway::builder(&d).start();
    // A client that sends half a head and waits.
    let mut slow = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    slow.write_all(b"GET /api/v1/jobs HTTP/1.1\r\nHost: ")
        .unwrap();
    // Meanwhile others are served.
    assert_eq!(g.get("/api/v1/jobs").status, 200);
    let big = format!(
        "GET /{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        "a".repeat(20_000),
        g.host()
    );
    let r = g.raw(big.as_bytes());
    assert_eq!(r.status, 431);
    secure(&r);
    let body = format!(
        "POST /api/v1/jobs/web/start HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\n",
        g.host()
    );
    assert_eq!(g.raw(body.as_bytes()).status, 413);
    let mut many = format!("GET / HTTP/1.1\r\nHost: {}\r\n", g.host());
    for i in 0..100 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(g.raw(many.as_bytes()).status, 431);
    assert_eq!(g.get("/healthz").status, 200);
    // The slow one is cut off (10 s for the whole head) without an answer.
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut slow, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a word: {:?}", &buf[..n]);
    Ok(())
}

/// `upkeep ARGS` as nobody, with `groups` as its supplementary groups.
fn as_nobody(d: &Daemon, groups: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        cmd.arg(format!("--groups={groups}"));
    }
    cmd.arg(common::upkeep_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .env_remove("UPKEEP_SOCKET")
        .output()
        .unwrap()
}

fn the_daemon_lets_its_control_group_act_and_no_one_else() -> Result<(), Missing> {
    need_root()?;
    need_program("setpriv")?;
    let d = Daemon::builder()
        .run_as_root()
        .flag("--control-group")
        .flag("4242")
        .job("web", "exec sh -c 'echo hello; exec sleep 1000'\n")
        .start();
    std::fs::set_permissions(
        d.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    d.ok(&["start", "web"]);
    // Outside the group: refused, as any user is.
    let out = as_nobody(&d, "", &["stop", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("You do not have permission"),
        "{out:?}"
    );
    assert!(as_nobody(&d, "", &["logs", "web"]).status.code() == Some(1));
    // A member (a supplementary group): changes jobs and reads logs.
    let out = as_nobody(&d, "4242", &["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n", "{out:?}");
    let out = as_nobody(&d, "4242", &["stop", "web"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.status(&["web"])["state"], "waiting");
    // An acting gateway as a member (its primary group), and one not.
    let member = Gateway::builder(&d).token().user(65534, 4242).start();
    assert_eq!(member.post("/api/v1/jobs/web/start", true).status, 200);
    assert_eq!(
        member.get_with_token("/api/v1/jobs/web/log?lines=1").body,
        "hello\n"
    );
    let outsider = Gateway::builder(&d).token().user(65534, 65534).start();
    let r = outsider.post("/api/v1/jobs/web/stop", true);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("You do not have permission"), "{}", r.body);
    assert_eq!(outsider.get_with_token("/api/v1/jobs/web/log").status, 403);
    assert_eq!(d.status(&["web"])["state"], "running");
    Ok(())
}

fn a_unix_socket_listener_is_the_gateways_alone() {
    let d = jobs();
    let path = d.dir.path().join("web.sock");
    let mut cmd = std::process::Command::new(common::upkeep_bin());
    cmd.args(["web", "--socket"])
        .arg(&d.socket)
        .arg("--listen")
        .arg(format!("unix:{}", path.display()))
        .stderr(std::process::Stdio::piped());
    if upkeep::process::euid() == 0 {
        std::os::unix::process::CommandExt::uid(&mut cmd, d.uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, d.uid);
        nix::unistd::chown(d.dir.path(), Some(nix::unistd::Uid::from_raw(d.uid)), None).unwrap();
    }
    let mut child = cmd.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("serving unix:"), "{line}");
    let m = std::fs::symlink_metadata(&path).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(m.file_type().is_socket());
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(m.uid(), d.uid);
    let ask = |host: &str| {
        let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        s.write_all(format!("GET /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        out
    };
    assert!(ask("localhost").starts_with("HTTP/1.1 200"));
    assert!(ask("evil.example").starts_with("HTTP/1.1 403"));
    let _ = child.kill();
    let _ = child.wait();
}

tests![
    a_unix_socket_listener_is_the_gateways_alone,
    the_daemon_lets_its_control_group_act_and_no_one_else,
    every_endpoint_answers_with_the_security_headers,
    reads_without_the_token_show_no_logs_and_no_environments,
    a_read_only_gateway_refuses_actions,
    a_wrong_host_is_forbidden,
    unsafe_settings_are_refused_at_start,
    the_gateway_subscribes_again_when_the_daemon_drops_it,
    oversize_and_slow_requests_are_cut_off_while_others_are_served,
];
