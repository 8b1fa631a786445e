//! `/metrics` against the Prometheus project's own tools: `promtool check
//! metrics` accepts it, and a real Prometheus server scrapes the gateway
//! and answers a query for `upkeep_job_up`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::runner::{need_program, Missing};
use common::web::Gateway;

fn jobs() -> Daemon {
    let d = Daemon::builder()
        .job("web", "exec sleep 100000\n")
        .job("cache", "instance $NAME\nexec sleep 100000\n")
        .job("once", "task\nexec sh -c 'exit 3'\n")
        .start();
    d.ok(&["start", "web"]);
    d.ok(&[
        "start",
        "cache",
        "NAME=a \"quoted\" \\ name\nwith a newline",
    ]);
    let _ = d.ctl(&["start", "once"]);
    d
}

fn promtool_accepts_the_metrics() -> Result<(), Missing> {
    let promtool = need_program("promtool")?;
    let d = jobs();
    let g = Gateway::builder(&d).start();
    let m = g.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("upkeep_job_last_exit_code{job_name=\"once\",instance_name=\"\"} 3\n"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("instance_name=\"a \\\"quoted\\\" \\\\ name\\nwith a newline\""),
        "{}",
        m.body
    );
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(m.body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {out:?}\n{}",
        m.body
    );
    Ok(())
}

/// `GET path` of a local server: the body, if it answered 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    // (It answers an HTTP/1.0 request as HTTP/1.0.)
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_string())
}

fn a_prometheus_server_scrapes_the_gateway() -> Result<(), Missing> {
    let prometheus = need_program("prometheus")?;
    let d = jobs();
    let g = Gateway::builder(&d).start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = d.dir.path().join("prometheus");
    std::fs::create_dir(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: upkeep\n    static_configs:\n      - targets: ['{}']\n",
            g.host()
        ),
    )
    .unwrap();
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Waits for the scrape (Prometheus tells nobody; its query API is
    // asked until it knows, the deadline a guard against hangs).
    let query = "/api/v1/query?query=upkeep_job_up%7Bjob_name%3D%22web%22%7D";
    let deadline = Instant::now() + Duration::from_secs(90);
    let answer = loop {
        if let Some(body) = get(port, query) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had upkeep_job_up"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = server.kill();
    let _ = server.wait();
    let r = &answer["data"]["result"][0];
    assert_eq!(r["metric"]["job_name"], "web");
    // An empty label is no label to Prometheus.
    assert_eq!(r["metric"]["instance_name"], serde_json::Value::Null);
    assert_eq!(
        r["metric"]["job"], "upkeep",
        "Prometheus' own job label stays its own"
    );
    assert_eq!(r["value"][1], "1");
    Ok(())
}

tests![
    promtool_accepts_the_metrics,
    a_prometheus_server_scrapes_the_gateway
];
