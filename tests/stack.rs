//! The `examples/stack` tutorial, for real: redis, a gunicorn web app as
//! `www-data`, a worker that talks to redis, and nginx in front, under a
//! root daemon. Needs root, Debian's `redis-server` and `nginx`, and a
//! virtual environment with gunicorn and redis-py (`.ci/run` installs them
//! all; `UPKEEP_E2E_VENV` names the venv, `/opt/upkeep-e2e/venv` by default).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{alive, Daemon, DEADLINE};
use common::runner::{need_e2e_venv, need_program, need_root, Missing};

const NGINX: u16 = 18080;
const GUNICORN: u16 = 18000;
const REDIS: u16 = 16390;
const JOBS: [&str; 4] = ["redis", "web", "worker", "nginx"];

/// The venv, once everything the stack needs is here.
fn prerequisites() -> Result<PathBuf, Missing> {
    need_root()?;
    need_program("/usr/bin/redis-server")?;
    need_program("/usr/sbin/nginx")?;
    need_e2e_venv()
}

/// Copies `from` to `to`, with `/srv/stack` in every file meaning `root`.
fn copy_tree(from: &Path, to: &Path, root: &str) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest, root);
        } else {
            let text = fs::read_to_string(e.path()).unwrap();
            fs::write(&dest, text.replace("/srv/stack", root)).unwrap();
        }
    }
}

fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(DEADLINE))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Asks through nginx until an answer is a 200 (the app may still be
/// binding its port when its job is reported running).
fn wait_page(check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match http_get(NGINX) {
            Ok(text) if text.starts_with("HTTP/1.1 200") && check(&text) => return text,
            Ok(text) => text,
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "no good answer from nginx: {last}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The index of the first daemon log line that has every needle, waiting
/// for it (the daemon's stderr reaches the test a moment after its answers).
fn line_of(d: &Daemon, needles: &[&str]) -> usize {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let lines = d.log_lines();
        if let Some(i) = lines
            .iter()
            .position(|l| needles.iter().all(|n| l.contains(n)))
        {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no daemon log line with {needles:?}:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every process in the process groups of the jobs' main processes.
fn job_processes(d: &Daemon) -> Vec<i32> {
    let groups: Vec<i32> = JOBS.iter().filter_map(|j| d.main_pid(j)).collect();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let pgid = unsafe { libc::getpgid(pid) };
        if groups.contains(&pgid) {
            pids.push(pid);
        }
    }
    pids
}

fn the_stack_runs_recovers_and_stops_in_order() -> Result<(), Missing> {
    let venv = prerequisites()?;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stack");
    let mut b = Daemon::builder().run_as_root().flag("--runlevel").flag("2");
    for job in JOBS {
        let text = fs::read_to_string(example.join(format!("init/{job}.conf"))).unwrap();
        b = b.job(job, &text.replace("/srv/stack", "@DIR@/stack"));
    }
    let mut d = b
        .before_start(move |dir| {
            // www-data reads the app and runs the venv from here.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
            let root = dir.join("stack");
            copy_tree(&example, &root, root.to_str().unwrap());
            fs::remove_dir_all(root.join("init")).unwrap();
            std::os::unix::fs::symlink(&venv, root.join("venv")).unwrap();
        })
        .start();

    // Up in dependency order at daemon start.
    d.wait_list("the whole stack running", |t| {
        JOBS.iter()
            .all(|j| t.contains(&format!("{j} start/running, process ")))
    });
    let running = |j: &str| line_of(&d, &[&format!("{j} state changed"), "to running"]);
    assert!(running("redis") < running("web"));
    assert!(running("web") < running("nginx"));
    assert!(running("web") < running("worker"));

    // A request through nginx reaches gunicorn and redis, and the worker
    // does the job the request queued.
    let page = wait_page(|t| t.contains("hello from upkeep; visits="));
    assert!(page.contains("Server: nginx"), "{page}");
    d.wait_log_file("worker.log", "worker did job");

    // An idle queue is no error: with nothing queued for longer than the
    // worker's blocking pop and redis-py's default socket timeout (5 s
    // each), the worker is still the same process, never respawned. (A
    // fixed wait, to show that nothing happens; it asserts a count.)
    let worker = d.main_pid("worker").unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let s = d.status(&["worker"]);
    assert_eq!(s["respawns"], 0, "the worker crashed while idle: {s}");
    assert_eq!(d.main_pid("worker"), Some(worker));

    // kill -9 of gunicorn's master: respawned, and the next request works.
    let master = d.main_pid("web").unwrap();
    unsafe { libc::kill(master, libc::SIGKILL) };
    d.wait_status(&["web"], "web respawned", |s| {
        s["state"] == "running"
            && s["processes"][0]["pid"]
                .as_i64()
                .is_some_and(|p| p as i32 != master)
    });
    wait_page(|t| t.contains("hello from upkeep"));

    // An edit of web.conf, then `restart web`: the new definition runs.
    let conf = d.conf.join("web.conf");
    let text = fs::read_to_string(&conf).unwrap();
    fs::write(&conf, text.replace("hello from upkeep", "hello again")).unwrap();
    d.ok(&["restart", "web"]);
    wait_page(|t| t.contains("hello again; visits="));

    // `stop redis` stops the worker (and the web app, and nginx before
    // it) first.
    d.ok(&["stop", "redis"]);
    let stopped = |j: &str| line_of(&d, &[&format!("{j} state changed"), "to waiting"]);
    assert!(stopped("worker") < stopped("redis"));
    assert!(stopped("web") < stopped("redis"));
    assert!(stopped("nginx") < stopped("web"));
    assert!(!listening(REDIS) && !listening(GUNICORN) && !listening(NGINX));

    // And back: everything follows redis up again.
    d.ok(&["start", "redis"]);
    d.wait_list("the stack back", |t| {
        JOBS.iter()
            .all(|j| t.contains(&format!("{j} start/running, process ")))
    });
    wait_page(|t| t.contains("hello again"));

    // Every job's output is in its log file.
    d.wait_log_file("redis.log", "Ready to accept connections");
    d.wait_log_file("web.log", "Listening at: http://127.0.0.1:18000");
    d.wait_log_file("worker.log", "worker ready");
    d.wait_log_file("nginx.log", "\"GET / HTTP/1.0\" 200");

    // SIGTERM to the daemon: down in reverse order, nothing left.
    let pids = job_processes(&d);
    assert!(
        pids.len() >= 7,
        "redis, 2+1 gunicorn, worker, 2+1 nginx: {pids:?}"
    );
    let first = d.log_lines().len();
    assert_eq!(d.terminate(), Some(0));
    // Every line the daemon wrote before it exited.
    d.wait_log("all jobs stopped; exiting");
    let lines = d.log_lines()[first..].to_vec();
    let after = |j: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("{j} state changed")) && l.contains("to waiting"))
            .unwrap_or_else(|| panic!("{j} never stopped:\n{}", lines.join("\n")))
    };
    assert!(after("nginx") < after("web"));
    assert!(after("web") < after("redis"));
    assert!(after("worker") < after("redis"));
    let left: Vec<i32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(!listening(REDIS) && !listening(GUNICORN) && !listening(NGINX));
    Ok(())
}

tests![the_stack_runs_recovers_and_stops_in_order];
