//! Conf dirs that notice changes: create, edit in place, save by rename,
//! delete, symlinked jobs, overrides, broken edits, and
//! `reload-configuration` for what inotify cannot see.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use common::daemon::Daemon;
use common::runner::{need_kernel, need_root, Kernel, Missing};

fn save_by_rename(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp-new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn a_new_file_defines_a_job_that_later_events_start() {
    let d = Daemon::with_jobs(&[]);
    fs::write(d.conf.join("fresh.conf"), "start on go\nexec sleep 1000\n").unwrap();
    d.wait_list("the new job", |l| l.contains("fresh stop/waiting"));
    // Events that happened before it was loaded (startup) do not start it.
    assert!(!d.ok(&["list"]).contains("fresh start/"));
    d.ok(&["emit", "go"]);
    assert!(d
        .ok(&["status", "fresh"])
        .starts_with("fresh start/running"));
    // A job in a subdirectory is named by its path.
    fs::create_dir(d.conf.join("web")).unwrap();
    fs::write(d.conf.join("web/api.conf"), "exec sleep 1000\n").unwrap();
    d.wait_list("web/api", |l| l.contains("web/api stop/waiting"));
}

fn an_edit_applies_to_the_next_start_and_status_says_so() {
    let d = Daemon::with_jobs(&[("svc", "exec sleep 1000\n")]);
    d.ok(&["start", "svc"]);
    fs::write(d.conf.join("svc.conf"), "exec sleep 2000\n").unwrap();
    let text = d.wait_status_text("svc", "the change", |t| t.contains("job file changed"));
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("svc start/running, process "),
        "first line keeps Upstart's format: {text}"
    );
    assert_eq!(
        text.lines().nth(1).unwrap(),
        "\tjob file changed since it started; the next start uses the new one"
    );
    assert_eq!(d.status(&["svc"])["file_changed"], true);
    assert_eq!(
        d.cmdline("svc"),
        "sleep 1000",
        "a running job keeps its definition"
    );
    d.ok(&["stop", "svc"]);
    d.ok(&["start", "svc"]);
    assert_eq!(d.cmdline("svc"), "sleep 2000");
    assert_eq!(d.status(&["svc"])["file_changed"], false);
}

fn save_by_rename_is_noticed() {
    let d = Daemon::with_jobs(&[("r", "exec sleep 1000\n")]);
    save_by_rename(&d.conf.join("r.conf"), "exec sleep 3000\n");
    d.ok(&["start", "r"]);
    // The rescan may not have happened yet when `start` came: wait for it,
    // then restart.
    d.wait_log("conf dirs changed: rescanning");
    d.ok(&["restart", "r"]);
    assert_eq!(d.cmdline("r"), "sleep 3000");
}

fn a_deleted_file_removes_the_job_once_it_has_stopped() {
    let d = Daemon::with_jobs(&[("gone", "exec sleep 1000\n"), ("idle", "exec sleep 1000\n")]);
    d.ok(&["start", "gone"]);
    fs::remove_file(d.conf.join("gone.conf")).unwrap();
    fs::remove_file(d.conf.join("idle.conf")).unwrap();
    d.wait_list("idle gone", |l| !l.contains("idle"));
    let text = d.ok(&["status", "gone"]);
    assert!(
        text.contains("\tjob file deleted; the job goes once it has stopped"),
        "{text}"
    );
    assert!(d.ok(&["list"]).starts_with("gone start/running"));
    d.ok(&["stop", "gone"]);
    assert_eq!(d.ok(&["list"]), "");
    assert_eq!(d.fails(&["status", "gone"]), "upkeep: Unknown job: gone\n");
}

fn editing_the_target_of_a_symlinked_job_is_noticed() {
    let d = Daemon::with_jobs(&[]);
    let elsewhere = d.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let target = elsewhere.join("real.conf");
    fs::write(&target, "exec sleep 1000\n").unwrap();
    symlink(&target, d.conf.join("linked.conf")).unwrap();
    d.wait_list("the linked job", |l| l.contains("linked stop/waiting"));
    d.ok(&["start", "linked"]);
    // Edit in place.
    fs::write(&target, "exec sleep 1001\n").unwrap();
    d.wait_status_text("linked", "the change", |t| t.contains("job file changed"));
    d.ok(&["stop", "linked"]);
    d.ok(&["start", "linked"]);
    assert_eq!(d.cmdline("linked"), "sleep 1001");
    // Save by rename, on the target's side.
    save_by_rename(&target, "exec sleep 1002\n");
    d.wait_status_text("linked", "the change", |t| t.contains("job file changed"));
    d.ok(&["restart", "linked"]);
    assert_eq!(d.cmdline("linked"), "sleep 1002");
}

fn overrides_are_part_of_the_job() {
    let d = Daemon::with_jobs(&[("o", "start on go\nexec sleep 1000\n")]);
    fs::write(d.conf.join("o.override"), "manual\n").unwrap();
    d.wait_status_text("o", "manual applied", |t| !t.contains("waiting for"));
    d.ok(&["emit", "go"]);
    assert_eq!(
        d.ok(&["status", "o"]),
        "o stop/waiting\n",
        "manual: events do not start it"
    );
    fs::remove_file(d.conf.join("o.override")).unwrap();
    d.wait_status_text("o", "override removed", |t| t.contains("waiting for go"));
    d.ok(&["emit", "go"]);
    assert!(d.ok(&["status", "o"]).starts_with("o start/running"));
}

fn a_broken_edit_keeps_the_last_good_definition() {
    let mut d = Daemon::with_jobs_and_canary(&[("b", "exec sleep 1000\n")]);
    d.ok(&["start", "b"]);
    let pid = d.main_pid("b");
    fs::write(d.conf.join("b.conf"), "exec sleep 1000\nbogus stanza\n").unwrap();
    let text = d.wait_status_text("b", "the errors", |t| t.contains("job file has errors"));
    assert!(text.contains("b.conf:2:1: Unknown stanza"), "{text}");
    d.wait_log("b.conf:2:1: Unknown stanza");
    assert_eq!(d.main_pid("b"), pid, "the running job is left alone");
    d.ok(&["restart", "b"]);
    assert_eq!(d.cmdline("b"), "sleep 1000");
    let s = d.status(&["b"]);
    assert_eq!(s["file_errors"].as_array().unwrap().len(), 1);
    // Fixed again: the errors go.
    fs::write(d.conf.join("b.conf"), "exec sleep 1500\n").unwrap();
    d.wait_status_text("b", "the fix", |t| {
        t.contains("job file changed") && !t.contains("errors")
    });
    d.assert_canary();
}

fn reload_configuration_sees_what_inotify_cannot() -> Result<(), Missing> {
    need_root()?;
    let d = Daemon::with_jobs(&[("m", "exec sleep 1000\n")]);
    let other = d.dir.path().join("other.conf");
    fs::write(&other, "exec sleep 4000\n").unwrap();
    let job = d.conf.join("m.conf");
    let mounted = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&other)
        .arg(&job)
        .status()
        .is_ok_and(|s| s.success());
    need_kernel(Kernel::BindMount, || mounted)?;
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(job.clone());
    d.ok(&["start", "m"]);
    assert_eq!(
        d.cmdline("m"),
        "sleep 1000",
        "inotify saw nothing; the old definition is in force"
    );
    // reload-configuration answers only once the rescan is done.
    d.ok(&["reload-configuration"]);
    assert!(d.ok(&["status", "m"]).contains("job file changed"));
    d.ok(&["stop", "m"]);
    d.ok(&["start", "m"]);
    assert_eq!(d.cmdline("m"), "sleep 4000");
    Ok(())
}

fn hostile_conf_dirs_are_reported_and_the_daemon_keeps_serving() {
    let mut d = Daemon::with_jobs_and_canary(&[]);
    let c = &d.conf.clone();
    symlink("loop-b.conf", c.join("loop-a.conf")).unwrap();
    symlink("loop-a.conf", c.join("loop-b.conf")).unwrap();
    symlink("/nonexistent/x.conf", c.join("dangling.conf")).unwrap();
    fs::create_dir(c.join("dir.conf")).unwrap();
    fs::write(c.join("secret.conf"), "exec sleep 1\n").unwrap();
    fs::set_permissions(
        c.join("secret.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    d.wait_log("loop-a.conf: symlink loop; skipped");
    d.wait_log("dangling.conf: dangling symlink; skipped");
    if d.uid != 0 {
        d.wait_log("secret.conf: Permission denied");
    }
    // 10,000 files, made beside the conf dir and moved in at once: one
    // change for the watcher, and `reload-configuration` answers once a
    // rescan that sees them all is done, however slow the machine.
    let many = d.dir.path().join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..10_000 {
        fs::write(many.join(format!("j{i}.conf")), "exec sleep 1000\n").unwrap();
    }
    fs::rename(&many, c.join("many")).unwrap();
    d.ok(&["reload-configuration"]);
    let list = d.ok(&["list"]);
    let jobs = list
        .lines()
        .filter(|l| !l.contains("(job file has errors: "));
    assert_eq!(jobs.count(), 10_001, "the canary and 10,000 jobs");
    assert!(list.contains("many/j9999 stop/waiting"));
    assert!(d
        .ok(&["status", "canary"])
        .starts_with("canary start/running"));
    d.assert_canary();
}

/// The usual first-time order for a per-user daemon: the daemon first,
/// then `mkdir -p ~/.config/upkeep/init` and a job file in it.
fn a_conf_dir_created_after_start_is_picked_up() {
    let d = Daemon::builder()
        .flag("--conf-dir")
        .flag("@DIR@/home/.config/upkeep/init")
        .start();
    let want = d.dir.path().join("home/.config/upkeep/init");
    let said = format!(
        "{}: No such file or directory; its jobs are loaded when it is created (watching {})",
        want.display(),
        d.dir.path().display()
    );
    d.wait_log(&said);
    // Watching the ancestor anew brings one more rescan (for what appeared
    // meanwhile); it does not say the same again.
    let rescan = "conf dirs changed: rescanning";
    d.wait_log(rescan);
    let count = |needle: &str| d.log_lines().iter().filter(|l| l.contains(needle)).count();
    // Files coming and going beside the awaited name wake nothing (a fixed
    // wait, past the rescan's delay, to show that nothing happens).
    fs::write(d.dir.path().join("unrelated"), "x").unwrap();
    fs::remove_file(d.dir.path().join("unrelated")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!((count(rescan), count(&said)), (1, 1));
    fs::create_dir_all(&want).unwrap();
    fs::write(want.join("late.conf"), "exec sleep 1000\n").unwrap();
    d.wait_list("the late job", |l| l.contains("late stop/waiting"));
    assert!(d.ok(&["start", "late"]).starts_with("late start/running"));

    // A dir that appears writable by others defines nothing (someone else
    // may have made it), and says why.
    let d = Daemon::builder()
        .flag("--conf-dir")
        .flag("@DIR@/shared/init")
        .start();
    let shared = d.dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    fs::create_dir(shared.join("init")).unwrap();
    fs::write(shared.join("init/evil.conf"), "exec sleep 1000\n").unwrap();
    d.wait_log(&format!(
        "{} is writable by other users (mode 0777)",
        shared.display()
    ));
    let list = d.ok(&["list"]);
    assert!(!list.contains("evil stop/"), "{list}");
    assert!(list.contains("evil (job file has errors: "), "{list}");
}

/// A new file that does not parse is not taken for a missing one: status,
/// start and restart name its first error, and list shows it on a line of
/// its own.
fn a_new_file_with_errors_is_named_by_status_start_and_list() {
    let d = Daemon::with_jobs(&[("a", "exec sleep 1000\n"), ("z", "exec sleep 1000\n")]);
    let path = d.conf.join("oops.conf");
    fs::write(&path, "exec sleep 1000\nbogus stanza\n").unwrap();
    let error = format!("{}:2:1: Unknown stanza", path.display());
    d.wait_list("the broken file", |l| {
        l.contains("oops (job file has errors")
    });
    assert_eq!(
        d.ok(&["list"]),
        format!("a stop/waiting\noops (job file has errors: {error})\nz stop/waiting\n")
    );
    for cmd in ["status", "start", "restart"] {
        assert_eq!(
            d.fails(&[cmd, "oops"]),
            format!("upkeep: Unknown job: oops (its job file has errors: {error})\n"),
            "{cmd}"
        );
    }
    // `list --json` keeps its shape: jobs only.
    let json: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2, "{json}");
    // Fixed, it is a job.
    fs::write(&path, "exec sleep 1000\n").unwrap();
    d.wait_list("the fixed job", |l| l.contains("oops stop/waiting"));
}

tests![
    a_new_file_with_errors_is_named_by_status_start_and_list,
    a_conf_dir_created_after_start_is_picked_up,
    a_new_file_defines_a_job_that_later_events_start,
    an_edit_applies_to_the_next_start_and_status_says_so,
    save_by_rename_is_noticed,
    a_deleted_file_removes_the_job_once_it_has_stopped,
    editing_the_target_of_a_symlinked_job_is_noticed,
    overrides_are_part_of_the_job,
    a_broken_edit_keeps_the_last_good_definition,
    reload_configuration_sees_what_inotify_cannot,
    hostile_conf_dirs_are_reported_and_the_daemon_keeps_serving,
];
