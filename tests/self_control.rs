//! A job's own scripts call `stop`, `status` and `initctl` with no socket
//! named and reach the daemon that runs them; with no job named, they act on
//! the calling instance and never wait (reference 9.2, 9.3).

mod common;

use std::os::unix::fs::symlink;

use common::daemon::Daemon;
use common::upkeep_bin;

/// `@DIR@/bin` with the binary under Upstart's command names.
fn commands(d: &Daemon) {
    let bin = d.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["initctl", "start", "stop", "status"] {
        symlink(upkeep_bin(), bin.join(name)).unwrap();
    }
}

const PATH: &str = "env PATH=@DIR@/bin:/usr/bin:/bin\n";

#[test]
fn stop_with_no_arguments_in_pre_start_cancels_the_start() {
    // What 010-ssh.conf and 017-pdnsd.conf do when they should not run.
    let job = format!("{PATH}pre-start script\n  stop; exit 0\nend script\nexec sleep 1000\n");
    let d = Daemon::with_jobs(&[("cancelled", &job)]);
    commands(&d);
    // Not a failure: the job asked to stop, and `start` reports where it
    // ended, as Upstart's does.
    assert_eq!(d.ok(&["start", "cancelled"]), "cancelled stop/waiting\n");
    assert!(!d
        .log_lines()
        .iter()
        .any(|l| l.contains("cancelled main process")));
}

#[test]
fn instances_name_themselves() {
    let job = format!(
        "{PATH}instance $N\nscript\n  status > @DIR@/self-$N\n  exec sleep 1000\nend script\npost-start exec sh -c 'initctl status self N=$N >> @DIR@/initctl-$N'\n"
    );
    let d = Daemon::with_jobs(&[("self", &job)]);
    commands(&d);
    d.ok(&["start", "self", "N=a"]);
    d.ok(&["start", "self", "N=b"]);
    let path = d.dir.path().join("self-b");
    let text = common::daemon::wait_file(&path, |t| t.ends_with('\n'));
    assert!(text.starts_with("self (b) start/"), "{text}");
    let path = d.dir.path().join("initctl-a");
    let text = common::daemon::wait_file(&path, |t| t.ends_with('\n'));
    assert!(text.starts_with("self (a) start/"), "{text}");
}
