//! A real `upkeep daemon` in a temp dir, and helpers that wait on what it
//! does (its log lines, job status) with a deadline, never a fixed sleep.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::upkeep_bin;

/// How long a wait may last before a test gives up. It only catches a
/// hang: a correct run is far quicker, even on a loaded 2-core machine, so
/// it never decides the outcome of a slow but correct run.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub fn is_root() -> bool {
    upkeep::process::euid() == 0
}

/// `nobody`'s uid and gid, for running unprivileged under a root test run.
pub fn nobody() -> (u32, u32) {
    let u = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody");
    (u.uid.as_raw(), u.gid.as_raw())
}

#[derive(Default)]
struct LogBuf {
    lines: Vec<String>,
    closed: bool,
    /// Which daemon's stderr is read now (a restart makes a new one; the
    /// old reader's end of file must not mark the new one closed).
    generation: u32,
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub logs: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    log: Arc<(Mutex<LogBuf>, Condvar)>,
    /// The uid the daemon runs as.
    pub uid: u32,
    stdout: Arc<(Mutex<Vec<u8>>, Condvar)>,
    /// The canary job's main pid and the daemon's pid, when it has one.
    canary: Option<(i32, u32)>,
    /// The binary the daemon was started from.
    pub bin: PathBuf,
}

/// The canary job (reliability.md, "canary invariant"): it counts aloud
/// every 50 ms for as long as it runs, as one process that never forks (so
/// that a test may limit the processes of the daemon's user); a gap in its
/// log, a new pid, or a daemon that stopped answering means a fault
/// disturbed what it should not have.
pub const CANARY: &str = "start on startup\nrespawn\nscript\nexec python3 -u -c 'import itertools, time\nfor i in itertools.count(1):\n    print(f\"canary {i}\")\n    time.sleep(0.05)'\nend script\n";

type Prepare = Box<dyn FnOnce(&Path)>;

pub struct Builder {
    jobs: Vec<(String, String)>,
    as_root: bool,
    /// Resource limits for the daemon, as prlimit(1) options.
    limits: Vec<String>,
    /// Run the daemon as this (uid, gid) instead of nobody.
    user: Option<(u32, u32)>,
    extra: Vec<String>,
    stdout: bool,
    /// Runs on the temp dir before the daemon starts.
    prepare: Option<Prepare>,
    /// Start the daemon with fd 42 open without close-on-exec, as a
    /// careless parent would.
    leak_fd: bool,
    canary: bool,
    /// Run the daemon from a copy of the binary in the temp dir.
    own_binary: bool,
    /// More variables in the daemon's environment.
    env: Vec<(String, String)>,
}

impl Builder {
    pub fn job(mut self, name: &str, text: &str) -> Self {
        self.jobs.push((name.to_string(), text.to_string()));
        self
    }

    /// Limits the size of files the daemon writes (a full disk, cheaply).
    pub fn fsize_limit(mut self, bytes: u64) -> Self {
        self.limits.push(format!("--fsize={bytes}:{bytes}"));
        self
    }

    /// A resource limit for the daemon, as a prlimit(1) option
    /// (`--nofile=64:64`).
    pub fn limit(mut self, option: &str) -> Self {
        self.limits.push(option.to_string());
        self
    }

    /// Under a root test run, the daemon runs as this uid and gid (one no
    /// other test uses) instead of nobody.
    pub fn run_as_user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// More daemon flags (`@DIR@` stands for the test's temp dir).
    pub fn flag(mut self, f: &str) -> Self {
        self.extra.push(f.to_string());
        self
    }

    /// Keep the daemon's stdout (see [`Daemon::stdout_lines`]).
    pub fn capture_stdout(mut self) -> Self {
        self.stdout = true;
        self
    }

    /// Prepares the temp dir (files the jobs need) before the daemon starts.
    pub fn before_start(mut self, f: impl FnOnce(&Path) + 'static) -> Self {
        self.prepare = Some(Box::new(f));
        self
    }

    /// Adds the canary job; check it with [`Daemon::assert_canary`].
    pub fn canary(self) -> Self {
        self.canary_with("")
    }

    /// The canary job with more stanzas before its own.
    pub fn canary_with(mut self, stanzas: &str) -> Self {
        self.canary = true;
        self.jobs
            .push(("canary".to_string(), format!("{stanzas}{CANARY}")));
        self
    }

    /// A variable in the daemon's environment (`@DIR@` is the temp dir).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The daemon inherits fd 42 (on /dev/null) from its parent.
    pub fn leak_fd(mut self) -> Self {
        self.leak_fd = true;
        self
    }

    /// Runs the daemon from its own copy of the binary (`DIR/bin/upkeep`),
    /// which a test may replace or remove.
    pub fn own_binary(mut self) -> Self {
        self.own_binary = true;
        self
    }

    /// Run the daemon as root (only when the tests run as root).
    pub fn run_as_root(mut self) -> Self {
        self.as_root = true;
        self
    }

    pub fn start(self) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("conf");
        let logs = dir.path().join("log");
        fs::create_dir(&conf).unwrap();
        fs::create_dir(&logs).unwrap();
        let socket = dir.path().join("run/upkeep.sock");
        for (name, text) in &self.jobs {
            // `@DIR@` in a job stands for the test's temp dir.
            let text = text.replace("@DIR@", dir.path().to_str().unwrap());
            let p = conf.join(format!("{name}.conf"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        if let Some(prepare) = self.prepare {
            prepare(dir.path());
        }
        let bin = if self.own_binary {
            let b = dir.path().join("bin/upkeep");
            fs::create_dir_all(b.parent().unwrap()).unwrap();
            copy_executable(&upkeep_bin(), &b);
            b
        } else {
            upkeep_bin()
        };
        let mut cmd = if self.limits.is_empty() {
            Command::new(&bin)
        } else {
            let mut c = Command::new("prlimit");
            c.args(&self.limits).arg(&bin);
            c
        };
        cmd.args(["daemon", "--verbose", "--conf-dir"])
            .arg(&conf)
            .arg("--log-dir")
            .arg(&logs)
            .arg("--socket")
            .arg(&socket)
            .args(
                self.extra
                    .iter()
                    .map(|a| a.replace("@DIR@", dir.path().to_str().unwrap())),
            )
            .envs(
                self.env
                    .iter()
                    .map(|(k, v)| (k, v.replace("@DIR@", dir.path().to_str().unwrap()))),
            )
            .env_remove("UPKEEP_SOCKET")
            .stdin(Stdio::null())
            .stdout(if self.stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        let mut uid = upkeep::process::euid();
        if is_root() && !self.as_root {
            // Unprivileged, as an ordinary user would run it.
            let (u, g) = self.user.unwrap_or_else(nobody);
            for p in [dir.path(), &conf, &logs] {
                nix::unistd::chown(
                    p,
                    Some(nix::unistd::Uid::from_raw(u)),
                    Some(nix::unistd::Gid::from_raw(g)),
                )
                .unwrap();
            }
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
            cmd.uid(u).gid(g).env("HOME", "/nonexistent");
            uid = u;
        }
        if self.leak_fd {
            // SAFETY: between fork and exec; open(2) and dup2(2) only.
            unsafe {
                cmd.pre_exec(|| {
                    let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                    if fd < 0 || libc::dup2(fd, 42) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn daemon");
        let stdout_buf = Arc::new((Mutex::new(Vec::<u8>::new()), Condvar::new()));
        if let Some(mut out) = child.stdout.take() {
            let sink = stdout_buf.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
                    sink.1.notify_all();
                }
            });
        }
        let log = Arc::new((Mutex::new(LogBuf::default()), Condvar::new()));
        read_daemon_log(child.stderr.take().unwrap(), log.clone(), 0);
        let mut d = Daemon {
            dir,
            conf,
            logs,
            socket,
            child: Some(child),
            log,
            uid,
            stdout: stdout_buf,
            canary: None,
            bin,
        };
        d.wait_log("listening on");
        if self.canary {
            d.wait_log_file("canary.log", "canary 3\n");
            let pid = d.main_pid("canary").expect("the canary runs");
            d.canary = Some((pid, d.pid()));
        }
        d
    }
}

impl Daemon {
    pub fn builder() -> Builder {
        Builder {
            jobs: Vec::new(),
            as_root: false,
            limits: Vec::new(),
            user: None,
            extra: Vec::new(),
            stdout: false,
            prepare: None,
            leak_fd: false,
            canary: false,
            own_binary: false,
            env: Vec::new(),
        }
    }

    pub fn with_jobs(jobs: &[(&str, &str)]) -> Daemon {
        let mut b = Daemon::builder();
        for (n, t) in jobs {
            b = b.job(n, t);
        }
        b.start()
    }

    /// [`Daemon::with_jobs`] with the canary job beside them.
    pub fn with_jobs_and_canary(jobs: &[(&str, &str)]) -> Daemon {
        let mut b = Daemon::builder().canary();
        for (n, t) in jobs {
            b = b.job(n, t);
        }
        b.start()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Every line the daemon has printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.0.lock().unwrap().lines.clone()
    }

    /// Waits for a daemon log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_count(needle, 1)
    }

    /// Waits until `n` daemon log lines contain `needle`.
    pub fn wait_log_count(&self, needle: &str, n: usize) -> String {
        let (m, cv) = &*self.log;
        let deadline = Instant::now() + DEADLINE;
        let mut buf = m.lock().unwrap();
        loop {
            let hits: Vec<&String> = buf.lines.iter().filter(|l| l.contains(needle)).collect();
            if hits.len() >= n {
                return hits[n - 1].clone();
            }
            let now = Instant::now();
            if now >= deadline || buf.closed {
                panic!(
                    "no {n} daemon line(s) with {needle:?}; the daemon said:\n{}",
                    buf.lines.join("\n")
                );
            }
            buf = cv.wait_timeout(buf, deadline - now).unwrap().0;
        }
    }

    /// Runs `upkeep ARGS` against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(upkeep_bin())
            .args(args)
            .env("UPKEEP_SOCKET", &self.socket)
            .output()
            .expect("run upkeep")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "upkeep {args:?} failed ({:?}): {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "upkeep {args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    /// `status JOB --json`.
    pub fn status(&self, job: &[&str]) -> serde_json::Value {
        let mut args = vec!["status", "--json"];
        args.extend_from_slice(job);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// The main pid of a job, if it has one.
    pub fn main_pid(&self, job: &str) -> Option<i32> {
        let s = self.status(&[job]);
        s["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["process"] == "main")
            .map(|p| p["pid"].as_i64().unwrap() as i32)
    }

    /// Waits until `check` holds on the job's status.
    pub fn wait_status(
        &self,
        job: &[&str],
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let s = self.status(job);
            if check(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{job:?} never got to: {what}; last status {s}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn write_file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        if is_root() {
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o777));
        }
        p
    }

    pub fn log_file(&self, name: &str) -> String {
        fs::read_to_string(self.logs.join(name)).unwrap_or_default()
    }

    /// Waits until a job's log file contains `needle`.
    pub fn wait_log_file(&self, name: &str, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self.log_file(name);
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never showed {needle:?}; it has:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The canary invariant: the daemon is alive with the same pid and
    /// printed no panic; the canary still runs with the same pid, its count
    /// has no gap, and `status` answers.
    pub fn assert_canary(&mut self) {
        let (pid, daemon) = self.canary.expect("a daemon built with .canary()");
        assert_eq!(self.pid(), daemon);
        let child = self.child.as_mut().expect("the daemon");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon died:\n{}",
            self.log_lines().join("\n")
        );
        let lines = self.log_lines();
        assert!(
            !lines.iter().any(|l| l.contains("panicked")),
            "the daemon panicked:\n{}",
            lines.join("\n")
        );
        let status = self.ok(&["status", "canary"]);
        assert_eq!(
            status,
            format!("canary start/running, process {pid}\n"),
            "the canary was disturbed"
        );
        // Counting on: a new line after this check began, and none missing.
        let text = self.log_file("canary.log");
        let last = text.lines().count();
        self.wait_log_file("canary.log", &format!("canary {}\n", last + 1));
        let text = self.log_file("canary.log");
        let whole = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        for (i, line) in whole.enumerate() {
            assert_eq!(
                line,
                format!("canary {}\n", i + 1),
                "a gap in the canary's log"
            );
        }
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let status = child.wait().unwrap();
        status.code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + DEADLINE;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        // A daemon that would not stop (a failed test, say)
                        // takes its jobs with it: none may go on burning
                        // the machine's cores after the test.
                        let pid = child.id() as i32;
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGSTOP,
                        );
                        for p in descendants(pid) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(p),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

/// Every process below `root` (by parent pid, from /proc).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|&&(_, pp)| pp == p)
                .map(|&(c, _)| c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// Waits until a process is gone.
pub fn wait_gone(pid: i32) {
    let deadline = Instant::now() + DEADLINE;
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `check` gives a value.
pub fn wait_for<T>(check: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "never came");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the file at `path` exists and `check` holds on its text.
pub fn wait_file(path: &Path, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if check(&text) {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: not as expected in time",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Whether a network interface besides lo is up (the daemon announces each
/// with `net-device-up`).
pub fn other_interface_up() -> bool {
    let Ok(dir) = fs::read_dir("/sys/class/net") else {
        return false;
    };
    dir.flatten().any(|e| {
        e.file_name() != "lo"
            && fs::read_to_string(e.path().join("operstate"))
                .unwrap_or_default()
                .trim()
                == "up"
    })
}

impl Daemon {
    /// Waits until `list` satisfies `check`; returns the list.
    pub fn wait_list(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let list = self.ok(&["list"]);
            if check(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "list never showed {what}; last:\n{list}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `status JOB` (text) satisfies `check`.
    pub fn wait_status_text(&self, job: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let o = self.ctl(&["status", job]);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "status {job} never showed {what}; last:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The command line of a job's main process, words joined by spaces.
    pub fn cmdline(&self, job: &str) -> String {
        let pid = self.main_pid(job).expect("a main process");
        let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        raw.split(|&b| b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Daemon {
    /// What the daemon wrote to its stdout so far.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.0.lock().unwrap()).into_owned()
    }

    /// Waits until what the daemon wrote to its stdout passes `check`
    /// (woken at each read; [`DEADLINE`] only guards against a hang); the
    /// text.
    pub fn wait_stdout(&self, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let (lock, cv) = &*self.stdout;
        let mut buf = lock.lock().unwrap();
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if check(&text) {
                return text;
            }
            let now = Instant::now();
            assert!(now < deadline, "stdout never passed the check: {text:?}");
            buf = cv.wait_timeout(buf, deadline - now).unwrap().0;
        }
    }
}

impl Daemon {
    /// Kills the daemon with SIGKILL (its jobs go on, unsupervised), then
    /// starts a new one on the same conf dir, logs and socket. The new
    /// daemon's log lines are added to the same log.
    pub fn kill9_and_restart(&mut self) {
        let started = self
            .log_lines()
            .iter()
            .filter(|l| l.contains("listening on"))
            .count();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut cmd = Command::new(upkeep_bin());
        cmd.args(["daemon", "--verbose", "--conf-dir"])
            .arg(&self.conf)
            .arg("--log-dir")
            .arg(&self.logs)
            .arg("--socket")
            .arg(&self.socket)
            .env_remove("UPKEEP_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if self.uid != upkeep::process::euid() {
            let (u, g) = nobody();
            cmd.uid(u).gid(g).env("HOME", "/nonexistent");
        }
        let mut child = cmd.spawn().expect("spawn daemon");
        {
            let mut b = self.log.0.lock().unwrap();
            b.closed = false;
            b.generation += 1;
            b.lines.push("--- restarted ---".into());
        }
        let generation = self.log.0.lock().unwrap().generation;
        read_daemon_log(child.stderr.take().unwrap(), self.log.clone(), generation);
        self.child = Some(child);
        self.wait_log_count("listening on", started + 1);
    }
}

/// Collects the daemon's stderr lines into `sink`, waking waiters on each.
fn read_daemon_log(
    stderr: std::process::ChildStderr,
    sink: Arc<(Mutex<LogBuf>, Condvar)>,
    generation: u32,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("UPKEEP_TEST_VERBOSE").is_some() {
                eprintln!("daemon: {line}");
            }
            let (m, cv) = &*sink;
            m.lock().unwrap().lines.push(line);
            cv.notify_all();
        }
        let (m, cv) = &*sink;
        let mut b = m.lock().unwrap();
        if b.generation == generation {
            b.closed = true;
        }
        drop(b);
        cv.notify_all();
    });
}

/// Copies an executable by another process: a descriptor open for writing
/// in this one (a test binary runs tests on many threads) would be
/// inherited by another test's fork until it execs, and the exec of the
/// copy would fail with ETXTBSY meanwhile.
pub fn copy_executable(from: &Path, to: &Path) {
    let ok = Command::new("cp").arg(from).arg(to).status().expect("cp");
    assert!(ok.success(), "cp {} {}", from.display(), to.display());
}
