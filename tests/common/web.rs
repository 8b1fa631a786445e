//! `upkeep web` in tests: a gateway started beside a test daemon, on a port
//! the kernel picks, as the daemon's uid (or another), and a small HTTP
//! client that keeps every response's status, headers and body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::upkeep_bin;

pub struct Gateway {
    child: Child,
    pub port: u16,
    pub token: Option<String>,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
}

pub struct GatewayBuilder<'a> {
    d: &'a Daemon,
    token: bool,
    args: Vec<String>,
    uid: Option<(u32, u32)>,
}

/// A token file of `len` random-looking bytes, owned by `uid`, mode 0600.
pub fn token_file(dir: &Path, uid: u32, gid: u32, len: usize) -> (PathBuf, String) {
    let mut bytes = vec![0u8; len];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    f.read_exact(&mut bytes).unwrap();
    let token: String = bytes
        .iter()
        .map(|b| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    [(*b % 64) as usize],
            )
        })
        .collect();
    let path = dir.join(format!("token-{uid}-{len}"));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if upkeep::process::euid() == 0 {
        nix::unistd::chown(
            &path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .unwrap();
    }
    (path, token)
}

impl<'a> GatewayBuilder<'a> {
    /// With a token file (actions and logs need its token).
    pub fn token(mut self) -> Self {
        self.token = true;
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    /// Run as this uid and gid instead of the daemon's.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = Some((uid, gid));
        self
    }

    fn command(&self, token: Option<&Path>) -> Command {
        let mut cmd = Command::new(upkeep_bin());
        cmd.args(["web", "--socket"])
            .arg(&self.d.socket)
            .args(&self.args)
            .env_remove("UPKEEP_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !self.args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if let Some(t) = token {
            cmd.arg("--token-file").arg(t);
        }
        if let Some((u, g)) = self.ids() {
            cmd.uid(u).gid(g);
        }
        cmd
    }

    /// The uid and gid to run as, when it is not the test's own.
    fn ids(&self) -> Option<(u32, u32)> {
        match self.uid {
            Some(ids) => Some(ids),
            None if upkeep::process::euid() == 0 && self.d.uid != 0 => {
                Some((self.d.uid, self.d.uid))
            }
            None => None,
        }
    }

    /// Starts it and waits until it serves.
    pub fn start(self) -> Gateway {
        let (uid, gid) = self
            .ids()
            .unwrap_or((upkeep::process::euid(), nix::unistd::getegid().as_raw()));
        let token = self
            .token
            .then(|| token_file(self.d.dir.path(), uid, gid, 32));
        let mut child = self
            .command(token.as_ref().map(|(p, _)| p.as_path()))
            .spawn()
            .expect("spawn upkeep web");
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let (lock, cv) = &*sink;
                lock.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        let mut g = Gateway {
            child,
            port: 0,
            token: token.map(|(_, t)| t),
            log,
        };
        let line = g.wait_log("serving ");
        let port = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok());
        g.port = port.unwrap_or_else(|| panic!("no port in: {line}"));
        g
    }

    /// Runs it expecting it to refuse to start: its exit status and what it
    /// said.
    pub fn refused(self, token: Option<&Path>) -> (i32, String) {
        let out = self
            .command(token)
            .stderr(Stdio::piped())
            .output()
            .expect("run upkeep web");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Gateway {
    pub fn builder(d: &Daemon) -> GatewayBuilder<'_> {
        GatewayBuilder {
            d,
            token: false,
            args: Vec::new(),
            uid: None,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for a line of its log that holds `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let (lock, cv) = &*self.log;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no '{needle}' in the gateway's log: {lines:?}"
            );
            lines = cv.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Sends raw bytes; the whole response.
    pub fn raw(&self, bytes: &[u8]) -> Reply {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        parse(&out)
    }

    /// A request with the right Host, the token if `with_token`, and a
    /// body.
    pub fn request(&self, method: &str, path: &str, with_token: bool, body: &str) -> Reply {
        let auth = match (&self.token, with_token) {
            (Some(t), true) => format!("Authorization: Bearer {t}\r\n"),
            _ => String::new(),
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            self.host(),
            body.len()
        );
        self.raw(req.as_bytes())
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, false, "")
    }

    pub fn get_with_token(&self, path: &str) -> Reply {
        self.request("GET", path, true, "")
    }

    pub fn post(&self, path: &str, with_token: bool) -> Reply {
        self.request("POST", path, with_token, "")
    }

    /// Opens a stream (events, a followed log): the reader after the head.
    pub fn stream(&self, path: &str, with_token: bool) -> Stream {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let auth = match (&self.token, with_token) {
            (Some(t), true) => format!("Authorization: Bearer {t}\r\n"),
            _ => String::new(),
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", self.host());
        s.write_all(req.as_bytes()).unwrap();
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
        Stream {
            r,
            head,
            seen: String::new(),
            log: self.log.clone(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An open streamed response.
pub struct Stream {
    r: BufReader<TcpStream>,
    pub head: String,
    /// Everything read so far.
    pub seen: String,
    /// The gateway's log, for the failure messages.
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Stream {
    /// Reads until what was read holds `needle` (at most 30 s: a guard
    /// against hangs); everything read so far.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_count(needle, 1)
    }

    /// Reads until `needle` was seen `n` times.
    pub fn wait_count(&mut self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "not {n} '{needle}' in: {}\nthe gateway's log: {:?}",
                self.seen,
                self.gateway_log()
            );
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) => panic!(
                    "stream ended before {n} '{needle}': {}\nthe gateway's log: {:?}",
                    self.seen,
                    self.gateway_log()
                ),
                Ok(_) => self.seen.push_str(&line),
                Err(e) => panic!(
                    "stream: {e}; before {n} '{needle}': {}\nthe gateway's log: {:?}",
                    self.seen,
                    self.gateway_log()
                ),
            }
        }
        self.seen.clone()
    }

    /// How many times `needle` was seen so far.
    pub fn count(&self, needle: &str) -> usize {
        self.seen.matches(needle).count()
    }

    fn gateway_log(&self) -> Vec<String> {
        self.log.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn parse(out: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}
