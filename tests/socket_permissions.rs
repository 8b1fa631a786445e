//! Authority comes from the peer's uid (SO_PEERCRED), never the message.

mod common;

use common::runner::{need_root, Missing};

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::daemon::{nobody, Daemon};

fn as_nobody(d: &Daemon, args: &[&str]) -> std::process::Output {
    let (u, g) = nobody();
    Command::new(common::upkeep_bin())
        .args(args)
        .env("UPKEEP_SOCKET", &d.socket)
        .uid(u)
        .gid(g)
        .output()
        .unwrap()
}

fn root_daemon_lets_anyone_read_and_only_root_change() -> Result<(), Missing> {
    need_root()?;
    let mut d = Daemon::builder()
        .canary()
        .job("web", "exec sleep 1000\n")
        .run_as_root()
        .start();
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o666);
    let dir = std::fs::metadata(d.socket.parent().unwrap()).unwrap();
    assert_eq!(
        (dir.uid(), dir.mode() & 0o022),
        (0, 0),
        "socket dir writable by others"
    );
    d.ok(&["start", "web"]);
    let o = as_nobody(&d, &["status", "web"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("web start/running"),
        "{o:?}"
    );
    let o = as_nobody(&d, &["stop", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "upkeep: You do not have permission to modify job: web\n"
    );
    assert!(d.ok(&["status", "web"]).starts_with("web start/running"));
    d.assert_canary();
    Ok(())
}

fn user_daemon_socket_is_reachable_by_its_user_alone() {
    let d = Daemon::with_jobs(&[("j", "exec sleep 1000\n")]);
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), d.uid);
    let dir = std::fs::metadata(d.socket.parent().unwrap()).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700);
}

fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let mut d = Daemon::with_jobs_and_canary(&[]);
    // As the first one's user (another user may not use its directory).
    let mut second = Command::new(common::upkeep_bin());
    second
        .args(["daemon", "--conf-dir"])
        .arg(&d.conf)
        .arg("--socket")
        .arg(&d.socket)
        .arg("--log-dir")
        .arg(&d.logs);
    if d.uid != upkeep::process::euid() {
        second.uid(d.uid).gid(nobody().1);
    }
    let o = second.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "another upkeep daemon (pid {}) is already running in",
            d.pid()
        )),
        "{err}"
    );
    // The first one still answers (the canary is its only job).
    assert!(d.ok(&["list"]).starts_with("canary start/running"));
    d.assert_canary();
}

tests![
    root_daemon_lets_anyone_read_and_only_root_change,
    user_daemon_socket_is_reachable_by_its_user_alone,
    a_second_daemon_on_the_same_socket_refuses_to_start,
];
