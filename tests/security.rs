//! The security promises (`docs/security.md`), each tested with a real
//! unprivileged attacker: a process of another uid, started by the root
//! test run with `setuid` (so it holds no capability), doing what a hostile
//! local user would do. Each test names the defect it closes
//! (`docs/reliability.md`, "Security").

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use common::daemon::{alive, nobody, Daemon};
use common::runner::{need_root, Missing};

/// A uid and gid no one else on the machine uses: the hostile local user.
const MALLORY: (u32, u32) = (61_001, 61_001);

fn notify_fixture() -> String {
    format!("{}/tests/fixtures/notify.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a Python program as `(uid, gid)`, with only `env` in its
/// environment; returns what it printed.
fn python_as(user: (u32, u32), program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .uid(user.0)
        .gid(user.1)
        .current_dir("/")
        .output()
        .expect("run python3")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A variable of a live process's environment.
fn environ_var(pid: i32, key: &str) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|&b| b == 0).find_map(|e| {
        let e = String::from_utf8_lossy(e);
        e.strip_prefix(&format!("{key}=")).map(str::to_string)
    })
}

/// Lets other users traverse the test's temp dir (as `/run` would be).
fn open_dir(d: &Daemon) {
    fs::set_permissions(d.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Sends one datagram to a notify socket, as sd_notify does; prints `sent`
/// or the error's name.
const SEND_NOTIFY: &str = r#"
import errno, os, socket, sys
addr = sys.argv[1]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
msg = sys.argv[2].replace("SELF", str(os.getpid()))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(msg.encode(), addr)
    print("sent")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
"#;

// ------------------------------------------------------ 1. expect notify

/// S01: another local user cannot reach a job's notify socket at all: it
/// is a path (never an abstract name, which anyone may send to), owned by
/// the job's user, mode 0600, in a directory of the daemon's.
fn s01_another_user_cannot_reach_a_notify_socket() -> Result<(), Missing> {
    need_root()?;
    let f = notify_fixture();
    let d = Daemon::builder()
        .run_as_root()
        .job(
            "db",
            &format!("expect notify\nready timeout 60\nexec python3 {f} -1\n"),
        )
        .start();
    open_dir(&d);
    d.ok(&["start", "--no-wait", "db"]);
    let s = d.wait_status(&["db"], "spawned", |s| s["state"] == "spawned");
    let pid = s["processes"][0]["pid"].as_i64().unwrap() as i32;
    let addr = environ_var(pid, "NOTIFY_SOCKET").expect("NOTIFY_SOCKET");
    assert!(
        addr.starts_with('/'),
        "a path, not an abstract name: {addr}"
    );
    assert!(addr.len() <= 107);
    let meta = fs::symlink_metadata(&addr).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{addr}");
    let dir = fs::metadata(Path::new(&addr).parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o711);
    let o = python_as(
        MALLORY,
        SEND_NOTIFY,
        &[&addr, "READY=1\nMAINPID=SELF"],
        &[("UPSTART_JOB", "db"), ("UPSTART_INSTANCE", "")],
    );
    assert_eq!(text(&o).trim(), "EACCES", "{}", text(&o));
    assert_eq!(d.status(&["db"])["state"], "spawned");
    assert_eq!(d.main_pid("db"), Some(pid));
    d.ok(&["stop", "db"]);
    Ok(())
}

/// S02 (with S03, the process-group clause): a process of the job's own
/// user that is not one of the job's processes, with the job's identity
/// forged in its environment and standing in the daemon's process group,
/// sends `READY=1` and `MAINPID=` itself. Both are ignored: the start still
/// waits, `stop` stops the real process, and neither the daemon nor its
/// process group (this test) is signalled.
fn s02_a_forged_notification_is_ignored_and_the_daemon_group_never_signalled() -> Result<(), Missing>
{
    need_root()?;
    let f = notify_fixture();
    let d = Daemon::builder()
        .run_as_root()
        .job(
            "db",
            &format!("expect notify\nsetuid nobody\nready timeout 60\nexec python3 {f} -1\n"),
        )
        .start();
    open_dir(&d);
    d.ok(&["start", "--no-wait", "db"]);
    let s = d.wait_status(&["db"], "spawned", |s| s["state"] == "spawned");
    let pid = s["processes"][0]["pid"].as_i64().unwrap() as i32;
    let addr = environ_var(pid, "NOTIFY_SOCKET").expect("NOTIFY_SOCKET");
    // The attacker runs in this test's process group, which is the
    // daemon's (the harness does not give the daemon a session of its own).
    let o = python_as(
        nobody(),
        SEND_NOTIFY,
        &[&addr, "MAINPID=SELF\nREADY=1"],
        &[("UPSTART_JOB", "db"), ("UPSTART_INSTANCE", "")],
    );
    assert_eq!(text(&o).trim(), "sent", "the job's user may send");
    d.wait_log("a notification from pid");
    assert_eq!(d.status(&["db"])["state"], "spawned", "READY=1 ignored");
    assert_eq!(d.main_pid("db"), Some(pid), "MAINPID ignored");
    d.ok(&["stop", "db"]);
    assert!(!alive(pid));
    assert!(alive(d.pid() as i32), "the daemon lives");
    Ok(())
}

/// S04: `MAINPID` names a process of the job that is not the daemon's
/// child, whose parent collects it when it ends (no SIGCHLD reaches the
/// daemon): `stop` still ends, because the daemon watches such a main
/// process through a pidfd.
fn s04_stop_ends_whatever_mainpid_said() -> Result<(), Missing> {
    need_root()?;
    // The main process forks a child that names itself MAINPID and says
    // READY=1, then waits for it (and so reaps it).
    // The parent ignores SIGTERM, so it is still there to collect its child
    // when the stop's SIGTERM ends it; SIGKILL takes it after the timeout.
    let job = r#"expect notify
kill timeout 2
script
  exec python3 -c '
import os, signal, socket, time
child = os.fork()
if child == 0:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(f"MAINPID={os.getpid()}\nREADY=1".encode(), os.environ["NOTIFY_SOCKET"])
    time.sleep(100000)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.waitpid(child, 0)
time.sleep(100000)
'
end script
"#;
    let d = Daemon::builder().run_as_root().job("w", job).start();
    d.ok(&["start", "w"]);
    let main = d.main_pid("w").unwrap();
    assert_ne!(
        fs::read_to_string(format!("/proc/{main}/stat"))
            .unwrap()
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap(),
        d.pid().to_string(),
        "the main process is not the daemon's child"
    );
    d.ok(&["stop", "--no-wait", "w"]);
    d.wait_status(&["w"], "stopped", |s| s["state"] == "waiting");
    d.wait_log("its status went to its parent");
    Ok(())
}

tests![
    s01_another_user_cannot_reach_a_notify_socket,
    s02_a_forged_notification_is_ignored_and_the_daemon_group_never_signalled,
    s04_stop_ends_whatever_mainpid_said,
];
