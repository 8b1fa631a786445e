//! `upkeep monitor`: a live stream of what happens, in order; a slow
//! reader dropped with the count of what it missed, never slowing the
//! daemon; event environments only for root and the daemon's user.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Instant;

use common::daemon::{nobody, Daemon, DEADLINE};
use common::runner::{need_root, Missing};
use serde_json::Value;

/// `upkeep monitor ARGS` running, its lines read as they come.
struct Monitor {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Monitor {
    fn start(d: &Daemon, args: &[&str], user: Option<(u32, u32)>) -> Monitor {
        let mut cmd = Command::new(common::upkeep_bin());
        cmd.arg("monitor")
            .args(args)
            .env("UPKEEP_SOCKET", &d.socket)
            .stdout(Stdio::piped());
        if let Some((u, g)) = user {
            cmd.uid(u).gid(g);
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut m = Monitor {
            child,
            lines,
            seen: Vec::new(),
        };
        // Subscribed once the daemon says something to it: the monitor's
        // own `list` would not do, so it waits on an event it sees.
        m.subscribed(d);
        m
    }

    /// Emits probe events until the monitor shows one (then it is
    /// certainly subscribed). A probe names job `web` (`JOB=web`), so a
    /// monitor of web sees it too.
    fn subscribed(&mut self, d: &Daemon) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            d.ok(&["emit", "--no-wait", "monitor-probe", "JOB=web"]);
            if let Ok(l) = self
                .lines
                .recv_timeout(std::time::Duration::from_millis(200))
            {
                if l.contains("monitor-probe") {
                    self.seen.clear();
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the monitor never started");
        }
    }

    /// Lines up to and including the first for which `done` holds.
    fn until(&mut self, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let from = self.seen.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("never saw {what}; saw:\n{}", self.seen.join("\n")));
            if l.contains("monitor-probe") {
                continue; // another monitor's (see `subscribed`)
            }
            let hit = done(&l);
            self.seen.push(l);
            if hit {
                return self.seen[from..].to_vec();
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Where the first entry matching `m` is, after `from`.
fn find(entries: &[Value], from: usize, m: impl Fn(&Value) -> bool) -> usize {
    from + entries[from..]
        .iter()
        .position(m)
        .unwrap_or_else(|| panic!("not found after {from}: {entries:#?}"))
}

fn a_start_a_crash_a_respawn_and_a_stop_show_in_order() {
    let mut d = Daemon::builder()
        .job("web", "respawn\nexec sleep 1000\n")
        .job("other", "exec sleep 1000\n")
        .canary()
        .start();
    let mut m = Monitor::start(&d, &["--json", "web"], None);
    let mut text = Monitor::start(&d, &[], None);
    d.ok(&["start", "other"]); // not web: not shown to the first
    d.ok(&["start", "web"]);
    let first = d.main_pid("web").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let s = d.wait_status(&["web"], "respawned", |s| {
        s["respawns"] == 1 && s["state"] == "running"
    });
    let second = s["processes"][0]["pid"].as_i64().unwrap();
    d.ok(&["stop", "web"]);
    let lines = m.until("web stopped", |l| l.contains(r#""event":"stopped""#));
    let e = json(&lines);
    for entry in &e {
        assert_eq!(entry["v"], 1, "{entry}");
        assert!(entry["at"].as_f64().unwrap() > 1.7e9, "{entry}");
        assert!(
            entry["job"] == "web" || entry["env"][0] == "JOB=web",
            "only web: {entry}"
        );
        assert_ne!(entry["event"], "monitor-probe", "{entry}");
    }
    let state = |to: &'static str| move |v: &Value| v["type"] == "state" && v["to"] == to;
    let started = find(&e, 0, |v| v["type"] == "event" && v["event"] == "started");
    let running = find(&e, 0, state("running"));
    assert_eq!(e[running]["pid"], first);
    let exit = find(&e, running, |v| v["type"] == "exit");
    assert_eq!(e[exit]["pid"], first);
    assert_eq!(e[exit]["process"], "main");
    assert_eq!(e[exit]["signal"], "KILL");
    let respawn = find(&e, exit, |v| v["type"] == "respawn");
    assert_eq!(e[respawn]["respawns"], 1);
    let stopping = find(&e, exit, |v| {
        v["type"] == "event" && v["event"] == "stopping"
    });
    assert_eq!(e[stopping]["env"][4], "EXIT_SIGNAL=KILL", "{}", e[stopping]);
    let again = find(&e, respawn, state("running"));
    assert_eq!(e[again]["pid"], second);
    let stop = find(&e, again, |v| v["type"] == "state" && v["goal"] == "stop");
    let waiting = find(&e, stop, state("waiting"));
    let stopped = find(&e, waiting, |v| {
        v["type"] == "event" && v["event"] == "stopped"
    });
    assert!(running < started && started < exit && exit < respawn && respawn < again);
    assert!(
        again < stop && stop < waiting && waiting < stopped,
        "{e:#?}"
    );
    // The same, in words.
    let words = text.until("web stopped", |l| l.contains("event stopped JOB=web"));
    let words = words.join("\n");
    assert!(
        words.contains(&format!(
            "web: main process ({first}) was killed by signal KILL"
        )),
        "{words}"
    );
    assert!(words.contains("web: respawning (respawn 1)"), "{words}");
    assert!(
        words.contains("event started JOB=other INSTANCE="),
        "{words}"
    );
    d.assert_canary();
}

fn reloads_and_file_errors_show_and_a_subscription_survives_re_exec() {
    let mut d = Daemon::builder()
        .job("web", "exec sleep 1000\n")
        .canary()
        .start();
    let mut m = Monitor::start(&d, &["--json"], None);
    let tmp = d.dir.path().join("oops.tmp");
    std::fs::write(&tmp, "exec sleep 1\nbogus stanza\n").unwrap();
    std::fs::rename(&tmp, d.conf.join("oops.conf")).unwrap();
    d.ok(&["reload-configuration"]);
    let lines = m.until("the file error", |l| l.contains("file-error"));
    let e = json(&lines);
    let reload = find(&e, 0, |v| v["type"] == "reload");
    assert!(e[reload]["jobs"].as_u64().unwrap() >= 2, "{}", e[reload]);
    assert_eq!(e[reload]["broken"], 1);
    let error = e.last().unwrap();
    assert_eq!(error["job"], "oops");
    assert!(
        error["error"].as_str().unwrap().contains("oops.conf:2:"),
        "{error}"
    );
    // The daemon replaces its image: the subscriber stays.
    d.ok(&["re-exec"]);
    d.ok(&["start", "web"]);
    m.until("web running after re-exec", |l| {
        l.contains(r#""to":"running""#)
    });
    d.assert_canary();
}

fn a_slow_reader_is_dropped_with_the_count_while_status_is_answered() {
    let mut d = Daemon::builder()
        .job("web", "exec sleep 1000\n")
        .canary()
        .start();
    // A subscriber that reads its answer and then nothing.
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    slow.write_all(b"{\"v\":1,\"cmd\":\"monitor\"}\n").unwrap();
    let mut answer = [0u8; 1];
    let mut got = Vec::new();
    while answer[0] != b'\n' {
        slow.read_exact(&mut answer).unwrap();
        got.push(answer[0]);
    }
    assert!(String::from_utf8_lossy(&got).contains("\"ok\""), "{got:?}");
    // Far more than its buffer and the socket's hold: events of 60 KB.
    let big = format!("BIG={}", "x".repeat(60_000));
    for i in 0..24 {
        d.ok(&["emit", "--no-wait", &format!("burst{i}"), &big]);
        // Answered during the stall.
        assert!(d
            .ok(&["status", "canary"])
            .starts_with("canary start/running"));
    }
    d.ok(&["start", "web"]);
    // Now read it all: what fitted, then the count of what did not, then
    // the end.
    let mut rest = String::new();
    slow.read_to_string(&mut rest).unwrap();
    let lines: Vec<&str> = rest.lines().collect();
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["type"], "missed", "{last}");
    let missed = last["count"].as_u64().unwrap();
    let delivered = lines.len() - 1;
    assert!(missed > 0, "{last}");
    assert!(delivered > 0, "some fitted");
    assert!(rest.len() < 1 << 20, "bounded: {} bytes", rest.len());
    // Dropped at the end of the loop turn that overflowed it: what came
    // after (the later bursts, web's start) is neither delivered nor
    // counted.
    let bursts = lines.iter().filter(|l| l.contains("\"burst")).count() as u64;
    assert!(bursts + missed < 24, "{bursts} + {missed}");
    assert!(!rest.contains("\"job\":\"web\""), "nothing after the drop");
    d.assert_canary();
}

fn event_environments_only_for_root_and_the_daemons_user() -> Result<(), Missing> {
    need_root()?;
    let mut d = Daemon::builder().run_as_root().canary().start();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut theirs = Monitor::start(&d, &["--json"], Some(nobody()));
    let mut root = Monitor::start(&d, &["--json"], None);
    d.ok(&["emit", "hello", "SECRET=42"]);
    let seen = |m: &mut Monitor| {
        let lines = m.until("hello", |l| l.contains("\"hello\""));
        let e: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        e
    };
    let e = seen(&mut theirs);
    assert!(e.get("env").is_none(), "no environment for nobody: {e}");
    assert!(!theirs.seen.join("\n").contains("SECRET"));
    let e = seen(&mut root);
    assert_eq!(e["env"][0], "SECRET=42", "{e}");
    // And nobody may subscribe at all (read authority as for status).
    d.assert_canary();
    Ok(())
}

tests![
    a_start_a_crash_a_respawn_and_a_stop_show_in_order,
    reloads_and_file_errors_show_and_a_subscription_survives_re_exec,
    a_slow_reader_is_dropped_with_the_count_while_status_is_answered,
    event_environments_only_for_root_and_the_daemons_user,
];
