//! upkeep as a container's PID 1, in a new PID namespace (`unshare --pid
//! --fork --mount-proc`, root only): orphans reaped, SIGTERM an orderly
//! shutdown, `--exit-with` ending the run with the job's status.

mod common;

use common::daemon::DEADLINE;
use common::runner::{need_kernel, need_program, need_root, Kernel, Missing};

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Root, and a kernel that gives it a new PID namespace.
fn need_pid_namespace() -> Result<(), Missing> {
    need_root()?;
    need_program("unshare")?;
    need_kernel(Kernel::PidNamespace, || {
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .status()
            .is_ok_and(|s| s.success())
    })
}

struct Pid1 {
    child: Child,
    dir: Option<tempfile::TempDir>,
}

impl Pid1 {
    fn start(jobs: &[(&str, &str)], extra: &[&str]) -> Pid1 {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        fs::create_dir(&conf).unwrap();
        for (n, t) in jobs {
            fs::write(
                conf.join(format!("{n}.conf")),
                t.replace("@DIR@", dir.path().to_str().unwrap()),
            )
            .unwrap();
        }
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(common::upkeep_bin())
            .args(["daemon", "--init", "--verbose", "--conf-dir"])
            .arg(&conf)
            .arg("--log-dir")
            .arg(dir.path().join("log"))
            .arg("--socket")
            .arg(dir.path().join("upkeep.sock"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = Pid1 {
            child,
            dir: Some(dir),
        };
        // Up (its socket is there), or already gone (an --exit-with job
        // that failed at once).
        let sock = p.path().join("upkeep.sock");
        let deadline = Instant::now() + DEADLINE;
        while !sock.exists() && p.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "PID 1 never came up");
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    fn wait_for(&self, f: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !f() {
            assert!(Instant::now() < deadline, "never saw {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// upkeep's pid as the host sees it (unshare's only child).
    fn host_pid(&self) -> i32 {
        let me = self.child.id();
        let children =
            fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .expect("upkeep runs")
            .parse()
            .unwrap()
    }

    fn ctl(&self, args: &[&str]) -> String {
        let o = Command::new(common::upkeep_bin())
            .args(args)
            .env("UPKEEP_SOCKET", self.path().join("upkeep.sock"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait(mut self) -> (Option<i32>, tempfile::TempDir) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code(), self.dir.take().unwrap());
            }
            assert!(Instant::now() < deadline, "PID 1 never exited");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        // unshare's death does not end its child: PID 1 of the namespace
        // goes first, and the kernel takes everything in it along.
        if self.child.try_wait().ok().flatten().is_none() {
            let me = self.child.id();
            let kids =
                fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
            for pid in kids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (children, zombies) of a process, from /proc.
fn children_of(pid: i32) -> (usize, usize) {
    let mut kids = 0;
    let mut zombies = 0;
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit(')').next() else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[1].parse::<i32>() == Ok(pid) {
            kids += 1;
            if f[0] == "Z" {
                zombies += 1;
            }
        }
    }
    (kids, zombies)
}

fn a_thousand_orphans_are_all_reaped() -> Result<(), Missing> {
    need_pid_namespace()?;
    // Each orphan leaves the job's session, so only PID 1 can reap it.
    let job = "start on startup\ntask\nscript\n  i=0\n  while [ $i -lt 1000 ]; do (setsid sleep 0.5 &); i=$((i+1)); done\n  touch @DIR@/spawned\nend script\n";
    let p = Pid1::start(&[("orphans", job)], &[]);
    p.wait_for(|| p.path().join("spawned").exists(), "the orphans spawned");
    let pid1 = p.host_pid();
    // Every orphan, and every zombie it becomes, goes: only the daemon's
    // own children (none, the task has ended) may remain.
    p.wait_for(
        || {
            let (kids, zombies) = children_of(pid1);
            kids == 0 && zombies == 0
        },
        "the orphans reaped",
    );
    assert!(p.ctl(&["list"]).starts_with("orphans stop/waiting"));
    Ok(())
}

fn sigterm_to_pid1_stops_jobs_in_order_and_exits_zero() -> Result<(), Missing> {
    need_pid_namespace()?;
    let job = |n: &str, on: &str| {
        format!("start on {on}\npost-stop exec sh -c 'echo {n} >> @DIR@/down'\nexec sleep 1000\n")
    };
    let p = Pid1::start(
        &[
            ("a", &job("a", "startup")),
            ("b", &job("b", "started a")),
            ("c", &job("c", "started b")),
        ],
        &[],
    );
    p.wait_for(
        || p.ctl(&["status", "c"]).starts_with("c start/running"),
        "c running",
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.host_pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, dir) = p.wait();
    assert_eq!(code, Some(0));
    assert_eq!(
        fs::read_to_string(dir.path().join("down")).unwrap(),
        "c\nb\na\n"
    );
    Ok(())
}

fn exit_with_ends_the_run_with_the_jobs_status() -> Result<(), Missing> {
    need_pid_namespace()?;
    let jobs = [
        ("main", "start on startup\nexec sh -c 'sleep 0.3; exit 7'\n"),
        (
            "side",
            "start on startup\npost-stop exec touch @DIR@/side-stopped\nexec sleep 1000\n",
        ),
    ];
    let p = Pid1::start(&jobs, &["--exit-with", "main"]);
    let (code, dir) = p.wait();
    assert_eq!(code, Some(7));
    assert!(
        Path::new(&dir.path().join("side-stopped")).exists(),
        "everything else was stopped in order"
    );
    // Death by a signal: 128 + N.
    let p = Pid1::start(
        &[("main", "start on startup\nexec sh -c 'kill -9 $$'\n")],
        &["--exit-with", "main"],
    );
    let (code, _) = p.wait();
    assert_eq!(code, Some(137));
    Ok(())
}

fn pid1_re_execs_in_place_and_still_ends_the_run() -> Result<(), Missing> {
    need_pid_namespace()?;
    let jobs = [
        (
            "main",
            "start on startup\nexec sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.05; done; exit 7'\n",
        ),
        (
            "side",
            "start on startup\npost-stop exec touch @DIR@/side-stopped\nexec sleep 1000\n",
        ),
    ];
    let p = Pid1::start(&jobs, &["--exit-with", "main"]);
    p.wait_for(
        || p.ctl(&["status", "side"]).starts_with("side start/running"),
        "side running",
    );
    let pid1 = p.host_pid();
    let side = p.ctl(&["status", "side"]);
    let o = Command::new(common::upkeep_bin())
        .args(["re-exec"])
        .env("UPKEEP_SOCKET", p.path().join("upkeep.sock"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(p.host_pid(), pid1, "still the same PID 1");
    assert_eq!(p.ctl(&["status", "side"]), side);
    // `--exit-with` holds in the new image.
    fs::write(p.path().join("go"), "").unwrap();
    let (code, dir) = p.wait();
    assert_eq!(code, Some(7));
    assert!(dir.path().join("side-stopped").exists());
    Ok(())
}

tests![
    a_thousand_orphans_are_all_reaped,
    sigterm_to_pid1_stops_jobs_in_order_and_exits_zero,
    exit_with_ends_the_run_with_the_jobs_status,
    pid1_re_execs_in_place_and_still_ends_the_run,
];
