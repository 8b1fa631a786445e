//! The dashboard in a real headless browser (Debian's `chromium`, driven
//! through `chromedriver`'s WebDriver protocol): the table lists the jobs;
//! a `kill -9` shows the new pid without a reload; an instance named like
//! markup shows as text and runs nothing; with the token the stop button
//! stops the job, and without it there is no button. Writes
//! `target/web-screenshot.png` (`docs/web.png` is a copy).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use common::daemon::Daemon;
use common::runner::{need_program, Missing};
use common::web::Gateway;

/// A WebDriver session of chromedriver with headless chromium.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// One WebDriver call: its `value`, or the error it answered.
fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    // chromedriver keeps the connection open: read the head, then the
    // body by its length (or its chunks).
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let json_text = match length {
        Some(n) => {
            let mut body = vec![0u8; n];
            r.read_exact(&mut body).unwrap();
            String::from_utf8_lossy(&body).into_owned()
        }
        None => {
            let mut out = String::new();
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let mut chunk = vec![0u8; n + 2];
                r.read_exact(&mut chunk).unwrap();
                out.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
            out
        }
    };
    let text = format!("{head}\n{json_text}");
    let v: Value = serde_json::from_str(&json_text)
        .unwrap_or_else(|e| panic!("chromedriver answered ({e}): {text}"));
    let ok = head.starts_with("HTTP/1.1 200");
    if ok {
        Ok(v["value"].clone())
    } else {
        Err(v["value"].clone())
    }
}

impl Browser {
    fn start(chromium: &std::path::Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let out = driver.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("started successfully") => break,
                Some(Ok(_)) => {}
                _ => panic!("chromedriver did not start"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1500,700"]
                }
            }}
        });
        let v = call(port, "POST", "/session", Some(&caps)).expect("a session");
        let session = v["sessionId"].as_str().unwrap().to_string();
        let b = Browser {
            driver,
            port,
            session,
        };
        b.post("timeouts", &json!({ "script": 30_000 })).unwrap();
        b
    }

    fn post(&self, what: &str, body: &Value) -> Result<Value, Value> {
        call(
            self.port,
            "POST",
            &format!("/session/{}/{what}", self.session),
            Some(body),
        )
    }

    fn get(&self, what: &str) -> Result<Value, Value> {
        call(
            self.port,
            "GET",
            &format!("/session/{}/{what}", self.session),
            None,
        )
    }

    fn script(&self, js: &str, args: Value) -> Value {
        self.post("execute/sync", &json!({ "script": js, "args": args }))
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Waits, inside the page, until `cond` (a JS expression over the
    /// document) holds: a MutationObserver re-checks it at each change of
    /// the DOM; the script timeout (30 s) only guards against a hang.
    fn wait_until(&self, cond: &str) {
        let js = format!(
            "const done = arguments[arguments.length - 1];
             const ok = () => {{ try {{ return !!({cond}); }} catch (e) {{ return false; }} }};
             if (ok()) {{ done(true); return; }}
             const o = new MutationObserver(() => {{ if (ok()) {{ o.disconnect(); done(true); }} }});
             o.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});"
        );
        if let Err(e) = self.post("execute/async", &json!({ "script": js, "args": [] })) {
            let rows = self.rows();
            panic!("the page never showed `{cond}`: {e}; rows: {rows:?}");
        }
    }

    /// Each row of the table: job, instance, state, pid.
    fn rows(&self) -> Value {
        self.script(
            "return [...document.querySelectorAll('#jobs tbody tr')].map(r =>
                 [r.dataset.job, r.dataset.instance, r.children[2].textContent, r.children[3].textContent]);",
            json!([]),
        )
    }

    fn find(&self, css: &str) -> String {
        let v = self
            .post("element", &json!({ "using": "css selector", "value": css }))
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    /// Clicks what `css` selects, as a user would. The page redraws a row
    /// at each change of its job, so an element found a moment ago may be
    /// gone when the click lands ("stale element reference"): it is found
    /// again (the deadline only guards against a hang).
    fn click(&self, css: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let el = self.find(css);
            match self.post(&format!("element/{el}/click"), &json!({})) {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => {
                    assert!(std::time::Instant::now() < deadline, "{css} stays stale");
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.get("screenshot").unwrap();
        let mut dec = Command::new("base64")
            .arg("-d")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        dec.stdin
            .take()
            .unwrap()
            .write_all(b64.as_str().unwrap().as_bytes())
            .unwrap();
        let out = dec.wait_with_output().unwrap();
        assert!(out.stdout.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, out.stdout).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn the_dashboard_lives_in_a_real_browser() -> Result<(), Missing> {
    let chromium = need_program("chromium")?;
    need_program("chromedriver")?;
    let d = Daemon::builder()
        .job("web", "exec sleep 100000\n")
        .job("worker", "respawn\nexec sleep 100000\n")
        .job("cache", "instance $NAME\nexec sleep 100000\n")
        .job("migrate", "task\nexec sh -c 'echo migrating; exit 3'\n")
        .job(
            "api",
            "health alive exec true\nhealth alive period 1\nexec sleep 100000\n",
        )
        .start();
    d.ok(&["start", "web"]);
    d.ok(&["start", "worker"]);
    d.ok(&["start", "api"]);
    d.ok(&["start", "cache", &format!("NAME={HOSTILE}")]);
    let _ = d.ctl(&["start", "migrate"]);
    let g = Gateway::builder(&d).token().start();
    let b = Browser::start(&chromium);
    b.post("url", &json!({ "url": format!("http://{}/", g.host()) }))
        .unwrap();

    // The table lists the jobs, live.
    b.wait_until("document.querySelector('#live').textContent === 'live'");
    b.wait_until("document.querySelectorAll('#jobs tbody tr').length === 5");
    let old = d.main_pid("worker").unwrap();
    b.wait_until(&format!(
        "[...document.querySelectorAll('#jobs tbody tr')].some(r => r.dataset.job === 'worker' && r.children[3].textContent === '{old}')"
    ));

    // The instance named like markup is text, and ran nothing.
    let cell = b.script(
        "const r = [...document.querySelectorAll('#jobs tbody tr')].find(r => r.dataset.job === 'cache');
         return [r.querySelector('.instance').textContent, document.querySelectorAll('#jobs img').length];",
        json!([]),
    );
    assert_eq!(cell, json!([HOSTILE, 0]));
    assert!(b.get("alert/text").is_err(), "no alert opened");

    // kill -9: the new pid shows without a reload.
    b.script("window.__same_page = true; return 0;", json!([]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    b.wait_until(&format!(
        "[...document.querySelectorAll('#jobs tbody tr')].some(r => r.dataset.job === 'worker' && r.children[3].textContent !== '' && r.children[3].textContent !== '{old}')"
    ));
    assert_eq!(
        b.script("return window.__same_page === true;", json!([])),
        json!(true)
    );
    let new = d.main_pid("worker").unwrap();
    assert_ne!(new, old);
    b.wait_until(&format!(
        "[...document.querySelectorAll('#jobs tbody tr')].some(r => r.dataset.job === 'worker' && r.children[3].textContent === '{new}')"
    ));

    // Without the token: no buttons, and the API refuses.
    let buttons = b.script(
        "return document.querySelectorAll('td.actions button').length;",
        json!([]),
    );
    assert_eq!(buttons, json!(0));
    assert_eq!(g.post("/api/v1/jobs/web/stop", false).status, 401);

    // With it: buttons; stop stops web.
    let input = b.find("#token");
    b.post(
        &format!("element/{input}/value"),
        &json!({ "text": g.token.clone().unwrap() }),
    )
    .unwrap();
    b.click("#use-token");
    b.wait_until("document.querySelector('#auth-state').textContent === 'token accepted'");
    b.wait_until("document.querySelectorAll('td.actions button.act-stop').length > 0");
    b.click("tr[data-job='web'] button.act-stop");
    d.wait_status(&["web"], "stopped", |s| s["state"] == "waiting");
    b.wait_until(
        "[...document.querySelectorAll('#jobs tbody tr')].some(r => r.dataset.job === 'web' && r.children[2].textContent === 'stop/waiting')",
    );
    d.ok(&["start", "web"]);
    b.wait_until(
        "[...document.querySelectorAll('#jobs tbody tr')].some(r => r.dataset.job === 'web' && r.children[2].textContent === 'start/running')",
    );

    // The log of a job, followed.
    b.click("tr[data-job='migrate'] button.job-link");
    b.wait_until("document.querySelector('#log-text').textContent.includes('migrating')");
    b.wait_until("[...document.querySelectorAll('td')].some(td => td.textContent.startsWith('failed: main process terminated with status 3'))");

    b.wait_until("[...document.querySelectorAll('td')].some(td => td.textContent === 'healthy')");
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshot.png");
    b.screenshot(&shot);
    Ok(())
}

tests![the_dashboard_lives_in_a_real_browser];
