//! `re-exec` (`telinit u`): the daemon replaces its own image and keeps
//! every job: its pid, its state (goals, timers, half-matched `start on`,
//! held events, respawn counts), its output with no line lost or doubled,
//! and its control clients, including ones waiting for a job or an event.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use common::daemon::{alive, path_str, Daemon};

/// Writes numbered lines as fast as it can.
const WRITER: &str = "exec sh -c 'i=0; while :; do i=$((i+1)); echo \"line $i\"; done'\n";

/// Every line of a numbered log is the next number: nothing lost, nothing
/// doubled, nothing split. Returns how many there were.
///
/// The last line may be cut short: a writer killed while blocked in a write
/// to a full pty has written part of its line, and the daemon ends a line
/// its process left unfinished.
fn assert_numbered(text: &str) -> usize {
    let mut n = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if !line.ends_with('\n') {
            break; // the line being written when it was read
        }
        n += 1;
        let whole = format!("line {n}\n");
        let last = lines.peek().is_none();
        if last && line != whole && whole.starts_with(line.trim_end_matches('\n')) {
            break;
        }
        assert_eq!(line, whole, "line {n} of the writer's log");
    }
    n
}

/// Runs `upkeep ARGS` against the daemon in a thread (a client that waits).
fn in_background(d: &Daemon, args: &[&str]) -> std::thread::JoinHandle<std::process::Output> {
    let socket = d.socket.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    std::thread::spawn(move || {
        Command::new(common::upkeep_bin())
            .args(&args)
            .env("UPKEEP_SOCKET", &socket)
            .output()
            .unwrap()
    })
}

fn exe_of(pid: u32) -> std::fs::Metadata {
    std::fs::metadata(format!("/proc/{pid}/exe")).unwrap()
}

#[test]
fn re_exec_keeps_every_job_its_pid_its_state_and_its_output() {
    let mut d = Daemon::builder()
        .canary()
        .job("writer", WRITER)
        .job("a", "exec sleep 1000\n")
        .job("many", "instance $N\nexec sleep 1000\n")
        .job("b", "exec sleep 1000\n")
        .job("c", "start on started a and started b\nexec sleep 1000\n")
        // In its kill timeout when the image is replaced: the new image's
        // timer must still SIGKILL it.
        .job(
            "stubborn",
            "kill timeout 2\nscript\n  trap '' TERM\n  while true; do sleep 0.1; done\nend script\n",
        )
        // Crashing over and over, respawned with a back-off.
        .job(
            "crashy",
            "respawn\nrespawn limit unlimited\nexec sh -c 'sleep 0.2; exit 3'\n",
        )
        // Waits in pre-start for a file; a `start` client waits for it.
        .job(
            "slow",
            "pre-start exec sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.05; done'\nexec sleep 1000\n",
        )
        // Started by an event whose `emit` waits for it.
        .job(
            "kicked",
            "start on kick\npre-start exec sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.05; done'\nexec sleep 1000\n",
        )
        .start();
    d.ok(&["start", "writer"]);
    d.ok(&["start", "a"]);
    d.ok(&["start", "stubborn"]);
    d.ok(&["start", "crashy"]);
    d.wait_status(&["crashy"], "respawned twice", |s| {
        s["respawns"].as_u64() >= Some(2)
    });
    d.wait_log_file("writer.log", "line 100000\n");
    let stubborn = d.main_pid("stubborn").unwrap();
    d.ok(&["stop", "--no-wait", "stubborn"]);
    d.wait_status(&["stubborn"], "killed", |s| s["state"] == "killed");
    let waiting_start = in_background(&d, &["start", "slow"]);
    d.wait_status(&["slow"], "in pre-start", |s| s["state"] == "pre-start");
    let waiting_emit = in_background(&d, &["emit", "kick"]);
    d.wait_status(&["kicked"], "in pre-start", |s| s["state"] == "pre-start");
    let pids: Vec<(&str, i32)> = ["writer", "a"]
        .iter()
        .map(|&j| (j, d.main_pid(j).unwrap()))
        .collect();
    let respawns = d.status(&["crashy"])["respawns"].as_u64().unwrap();
    // A hundred instances more.
    for n in 1..=100 {
        d.ok(&["start", "--no-wait", "many", &format!("N={n}")]);
    }
    let many = || -> Vec<(String, i64)> {
        let list: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["job"] == "many")
            .map(|s| {
                let pid = s["processes"][0]["pid"].as_i64().unwrap_or(0);
                (s["instance"].as_str().unwrap().to_string(), pid)
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + common::daemon::DEADLINE;
    while many().iter().filter(|(_, p)| *p > 0).count() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the instances never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let many_before = many();

    // Several in a row, with the writer going at full speed.
    for n in 1..=5 {
        assert_eq!(d.ok(&["re-exec"]), "");
        d.wait_log_count("re-executed as upkeep", n);
    }

    assert_eq!(many(), many_before, "every instance kept its process");
    for (job, pid) in &pids {
        assert_eq!(d.main_pid(job), Some(*pid), "{job} kept its process");
    }
    // The crash loop goes on from where it was.
    d.wait_status(&["crashy"], "respawned again", |s| {
        s["respawns"].as_u64() > Some(respawns + 1)
    });
    // The kill timer of the old image fires in the new one.
    d.wait_status(&["stubborn"], "stopped", |s| s["state"] == "waiting");
    assert!(!alive(stubborn));
    d.wait_log("stubborn main process (");
    // The half-matched `start on started a and started b` still holds a.
    assert_eq!(
        d.ok(&["status", "c"]),
        "c stop/waiting\n\twaiting for started b\n"
    );
    d.ok(&["start", "b"]);
    d.wait_status(&["c"], "started by b", |s| s["state"] == "running");
    // The client that waited for `slow` across five images gets its answer.
    d.write_file("go", "");
    let out = waiting_start.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("slow start/running, process "));
    // So does the `emit` whose event the new image held until `kicked` ran.
    let out = waiting_emit.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.status(&["kicked"])["state"], "running");
    // Not a line lost or doubled.
    d.ok(&["stop", "writer"]);
    let lines = assert_numbered(&d.log_file("writer.log"));
    assert!(lines > 100_000);
    d.assert_canary();
}

#[test]
fn clients_connected_across_a_re_exec_are_answered() {
    let mut d = Daemon::with_jobs_and_canary(&[("web", "exec sleep 1000\n")]);
    d.ok(&["start", "web"]);
    // Fifty idle clients, one with half a request written, one with a
    // whole request it has not read the answer of yet.
    let mut idle: Vec<UnixStream> = (0..50)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    let mut half = UnixStream::connect(&d.socket).unwrap();
    half.write_all(br#"{"v":1,"cmd":"status","#).unwrap();
    let mut unread = UnixStream::connect(&d.socket).unwrap();
    unread.write_all(b"{\"v\":1,\"cmd\":\"list\"}\n").unwrap();
    // Once the daemon has seen all of them (its answer to unread waits in
    // the socket), the image is replaced.
    let mut r = BufReader::new(unread.try_clone().unwrap());
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.contains("\"web\""), "{first}");
    unread.write_all(b"{\"v\":1,\"cmd\":\"list\"}\n").unwrap();
    d.ok(&["re-exec"]);
    d.wait_log("re-executed as upkeep");
    let mut second = String::new();
    r.read_line(&mut second).unwrap();
    assert!(second.contains("\"web\""), "{second}");
    half.write_all(b"\"job\":\"web\"}\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&half).read_line(&mut answer).unwrap();
    assert!(answer.contains("\"running\""), "{answer}");
    for c in &mut idle {
        c.write_all(b"{\"v\":1,\"cmd\":\"status\",\"job\":\"web\"}\n")
            .unwrap();
    }
    for c in &idle {
        let mut line = String::new();
        BufReader::new(c).read_line(&mut line).unwrap();
        assert!(line.contains("\"running\""), "{line}");
    }
    d.assert_canary();
}

#[test]
fn re_exec_runs_the_binary_as_it_is_on_disk_now_and_survives_its_absence() {
    let mut d = Daemon::builder()
        .own_binary()
        .canary()
        .job("web", "exec sleep 1000\n")
        .start();
    d.ok(&["start", "web"]);
    let web = d.main_pid("web").unwrap();
    let before = exe_of(d.pid());
    // An upgrade as package managers do it: the new file renamed over.
    let bin = d.bin.clone();
    let staged = bin.with_file_name("upkeep.new");
    common::daemon::copy_executable(&common::upkeep_bin(), &staged);
    std::fs::rename(&staged, &bin).unwrap();
    let installed = std::fs::metadata(&bin).unwrap();
    assert_ne!(before.ino(), installed.ino());
    d.ok(&["re-exec"]);
    d.wait_log("re-executed as upkeep");
    let now = exe_of(d.pid());
    assert_eq!(
        (now.dev(), now.ino()),
        (installed.dev(), installed.ino()),
        "the daemon runs the new binary"
    );
    assert_eq!(d.main_pid("web"), Some(web));

    // The binary gone: the command fails, saying why; nothing else changes.
    std::fs::remove_file(&bin).unwrap();
    let err = d.fails(&["re-exec"]);
    assert!(
        err.contains(&format!("unable to re-exec {}", path_str(&bin))),
        "{err}"
    );
    assert_eq!(d.main_pid("web"), Some(web));
    d.ok(&["stop", "web"]);
    d.ok(&["start", "web"]);
    d.assert_canary();
}

#[test]
fn telinit_u_and_initctl_re_exec_are_the_same_command() {
    let d = Daemon::with_jobs(&[("web", "exec sleep 1000\n")]);
    d.ok(&["start", "web"]);
    let web = d.main_pid("web").unwrap();
    for name in ["telinit", "initctl"] {
        let link = d.dir.path().join(name);
        std::os::unix::fs::symlink(common::upkeep_bin(), &link).unwrap();
    }
    let run = |name: &str, args: &[&str]| {
        Command::new(d.dir.path().join(name))
            .args(args)
            .env("UPKEEP_SOCKET", &d.socket)
            .output()
            .unwrap()
    };
    let o = run("telinit", &["u"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d.wait_log_count("re-executed as upkeep", 1);
    let o = run("initctl", &["re-exec"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d.wait_log_count("re-executed as upkeep", 2);
    assert_eq!(d.main_pid("web"), Some(web));
    // A runlevel change is not built, and says so.
    let o = run("telinit", &["2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not built yet"));
}

#[test]
fn a_daemon_handed_a_state_it_cannot_read_starts_afresh() {
    // As if a previous image had handed over something unreadable: the
    // daemon says so and starts the ordinary way (a real failed hand-over
    // then finds the old jobs in the state file, as after a crash).
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("env.conf"), "start on startup\ntask\nexec env\n").unwrap();
    let socket = dir.path().join("sock");
    let logs = dir.path().join("log");
    let mut child = Command::new(common::upkeep_bin())
        .args(["daemon", "--conf-dir", path_str(&conf), "--log-dir"])
        .arg(&logs)
        .arg("--socket")
        .arg(&socket)
        .env("UPKEEP_REEXEC", "77")
        .env_remove("UPKEEP_SOCKET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "{said}");
        said.push_str(&line);
        if line.contains("listening on") {
            break;
        }
    }
    assert!(
        said.contains("unable to resume after re-exec: state: descriptor 77 was not handed across"),
        "{said}"
    );
    let log = logs.join("env.log");
    let text = common::daemon::wait_file(&log, |t| t.contains("UPSTART_JOB=env"));
    assert!(!text.contains("UPKEEP_REEXEC"), "{text}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(child.wait().unwrap().success());
    assert!(!Path::new(&socket).exists());
}
