//! respawn: a dead main process comes back at once; exit 0 of a service
//! counts; `normal exit` excuses; stop never respawns.

mod common;

use common::daemon::{alive, wait_gone, Daemon};

#[test]
fn killed_main_process_is_respawned_with_a_new_pid() {
    let mut d = Daemon::with_jobs_and_canary(&[("svc", "respawn\nexec sleep 1000\n")]);
    d.ok(&["start", "svc"]);
    let first = d.main_pid("svc").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_log("svc main process ended, respawning");
    let s = d.wait_status(&["svc"], "running again with a new pid", |s| {
        s["state"] == "running"
            && s["processes"][0]["pid"].as_i64() != Some(first as i64)
            && s["processes"][0]["pid"].is_i64()
    });
    assert_eq!(s["respawns"], 1);
    assert_eq!(s["last_exit"]["process"], "main");
    assert_eq!(s["last_exit"]["signal"], "KILL");
    wait_gone(first);
    let second = d.main_pid("svc").unwrap();
    assert!(alive(second));
    // stop never respawns.
    assert_eq!(d.ok(&["stop", "svc"]), "svc stop/waiting\n");
    wait_gone(second);
    let st = d.ok(&["status", "svc"]);
    assert!(
        st.starts_with("svc stop/waiting\n\tlast exit: signal TERM at "),
        "{st}"
    );
    d.assert_canary();
}

#[test]
fn exit_zero_of_a_service_respawns_unless_it_is_a_normal_exit() {
    let d = Daemon::with_jobs(&[
        ("zero", "respawn\nrespawn limit 3 60\nscript\n  test -e $MARK && exec sleep 1000\n  touch $MARK\nend script\n"),
        ("normal", "respawn\nnormal exit 0\nexec true\n"),
    ]);
    let mark = d.dir.path().join("mark");
    // `zero` exits 0 once (creating the mark), is respawned, then sleeps.
    let o = d.ctl(&["start", "zero", &format!("MARK={}", mark.display())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d.wait_log("zero main process ended, respawning");
    d.wait_status(&["zero"], "running after one respawn", |s| {
        s["respawns"] == 1 && s["state"] == "running" && s["processes"][0]["pid"].is_i64()
    });
    // `normal` exits 0, which is listed: it just stops, successfully.
    let o = d.ctl(&["start", "normal"]);
    let _ = o;
    d.wait_log("normal main process");
    d.wait_status(&["normal"], "stopped", |s| s["state"] == "waiting");
    assert!(!d
        .log_lines()
        .iter()
        .any(|l| l.contains("normal main process ended, respawning")));
}
