//! What reaches a job's environment from outside the job file: the
//! daemon's own environment (in init mode, for a per-user daemon, or by
//! `--pass-env`), never what is meant for upkeep alone, and `env-file`s,
//! read safely at every start and respawn.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::daemon::{nobody, Daemon};
use common::runner::{need_root, Missing};

/// A task that writes its environment to `DIR/NAME.env`.
fn dump(name: &str) -> String {
    format!("task\nexec sh -c 'env > @DIR@/{name}.env'\n")
}

/// Runs the dump task `name` and reads what it wrote.
fn env_of(d: &Daemon, name: &str) -> BTreeMap<String, String> {
    d.ok(&["start", name]);
    let text = fs::read_to_string(d.dir.path().join(format!("{name}.env"))).unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a daemon's manager (systemd, a container engine, a re-exec) puts
/// in its environment for it alone.
const FOR_UPKEEP: &[(&str, &str)] = &[
    ("NOTIFY_SOCKET", "/nonexistent/notify"),
    ("LISTEN_FDNAMES", "web"),
    ("INVOCATION_ID", "0123456789abcdef"),
    ("JOURNAL_STREAM", "8:12345"),
    ("UPSTART_SESSION", "forged"),
    ("UPKEEP_PRIVATE", "forged"),
];

fn daemon_with(flags: &[&str], root: bool) -> Daemon {
    let mut b = Daemon::builder()
        .job("show", &dump("show"))
        .env("FOO", "bar")
        .env("APP_MODE", "prod")
        .env("PATH", "/opt/app/bin:/usr/bin:/bin");
    for (k, v) in FOR_UPKEEP {
        b = b.env(k, v);
    }
    for f in flags {
        b = b.flag(f);
    }
    if root {
        b = b.run_as_root();
    }
    b.start()
}

fn none_for_upkeep(env: &BTreeMap<String, String>, how: &str) {
    for (k, _) in FOR_UPKEEP {
        assert!(!env.contains_key(*k), "{how}: {k} reached a job: {env:?}");
    }
}

fn init_mode_passes_the_daemons_environment_and_clean_env_turns_it_off() -> Result<(), Missing> {
    need_root()?;
    let d = daemon_with(&["--init"], true);
    let env = env_of(&d, "show");
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
    assert_eq!(
        env.get("PATH").map(String::as_str),
        Some("/opt/app/bin:/usr/bin:/bin"),
        "the container's PATH replaces upkeep's"
    );
    none_for_upkeep(&env, "--init");
    assert_eq!(env.get("UPSTART_JOB").map(String::as_str), Some("show"));

    let d = daemon_with(&["--init", "--clean-env"], true);
    let env = env_of(&d, "show");
    assert!(!env.contains_key("FOO"), "{env:?}");
    assert_eq!(
        env.get("PATH").map(String::as_str),
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    );

    let d = daemon_with(&["--init", "--clean-env", "--pass-env", "FOO"], true);
    let env = env_of(&d, "show");
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
    assert!(!env.contains_key("APP_MODE"), "{env:?}");
    Ok(())
}

fn a_root_daemon_outside_init_mode_passes_only_what_pass_env_names() -> Result<(), Missing> {
    need_root()?;
    let d = daemon_with(&[], true);
    let env = env_of(&d, "show");
    assert!(!env.contains_key("FOO"), "{env:?}");
    assert!(!env.contains_key("APP_MODE"), "{env:?}");

    let d = daemon_with(
        &[
            "--pass-env",
            "APP_*",
            "--pass-env",
            "NOTIFY_SOCKET",
            "--pass-env",
            "LISTEN_*",
        ],
        true,
    );
    let env = env_of(&d, "show");
    assert_eq!(env.get("APP_MODE").map(String::as_str), Some("prod"));
    assert!(!env.contains_key("FOO"), "{env:?}");
    none_for_upkeep(&env, "--pass-env names them");
    Ok(())
}

fn a_per_user_daemon_passes_its_environment_but_never_what_is_upkeeps() {
    let d = daemon_with(&[], false);
    let env = env_of(&d, "show");
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
    none_for_upkeep(&env, "a per-user daemon");
}

const APP_ENV: &str = "# the app's settings\n\
export GREETING='hello \"world\"'\n\
PRICE=$5\n\
QUOTED=\"a \\\"b\\\" \\\\ $HOME\"\n\
MODE=first\n\
MODE=last\n";

/// A job with env files, writing what it got to `DIR/app.env` and its
/// `MODE` to `DIR/seen` at each (re)spawn.
const APP: &str = "respawn\n\
env-file @DIR@/files/app.env\n\
env-file -@DIR@/files/missing.env\n\
env MODE=stanza\n\
exec sh -c 'env > @DIR@/app.env; echo \"$MODE\" >> @DIR@/seen; exec sleep 1000'\n";

fn env_files_daemon(root: bool) -> Daemon {
    let mut b = Daemon::builder()
        .job("app", APP)
        .job("fifo", "env-file @DIR@/files/fifo.env\nexec sleep 1000\n")
        .job("big", "env-file @DIR@/files/big.env\nexec sleep 1000\n")
        .job("bad", "env-file @DIR@/files/bad.env\nexec sleep 1000\n")
        .job("none", "env-file @DIR@/files/none.env\nexec sleep 1000\n")
        .before_start(|dir| {
            let files = dir.join("files");
            fs::create_dir(&files).unwrap();
            fs::write(files.join("app.env"), APP_ENV).unwrap();
            fs::write(files.join("big.env"), "A=1\n".repeat(20_000)).unwrap();
            fs::write(files.join("bad.env"), "A=1\n\nexport B C\n").unwrap();
            nix::unistd::mkfifo(
                &files.join("fifo.env"),
                nix::sys::stat::Mode::from_bits_truncate(0o644),
            )
            .unwrap();
            if common::daemon::is_root() {
                let (u, g) = nobody();
                for e in fs::read_dir(&files).unwrap() {
                    let p = e.unwrap().path();
                    nix::unistd::chown(&p, Some(u.into()), Some(g.into())).unwrap();
                }
                nix::unistd::chown(&files, Some(u.into()), Some(g.into())).unwrap();
            }
        });
    if root {
        b = b.run_as_root();
    }
    let d = b.start();
    if root {
        // A root daemon's env files are root's.
        for e in fs::read_dir(d.dir.path().join("files")).unwrap() {
            nix::unistd::chown(&e.unwrap().path(), Some(0.into()), Some(0.into())).unwrap();
        }
        nix::unistd::chown(&d.dir.path().join("files"), Some(0.into()), Some(0.into())).unwrap();
    }
    d
}

fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let text = common::daemon::wait_file(path, |t| t.lines().count() >= n);
    text.lines().map(str::to_string).collect()
}

fn env_files_are_applied_and_bad_ones_refused_with_file_and_line() {
    let d = env_files_daemon(false);
    d.ok(&["start", "app"]);
    let env: BTreeMap<String, String> =
        common::daemon::wait_file(&d.dir.path().join("app.env"), |t| {
            t.contains("UPSTART_INSTANCE=")
        })
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env["GREETING"], "hello \"world\"");
    assert_eq!(env["PRICE"], "$5", "no expansion");
    assert_eq!(env["QUOTED"], "a \"b\" \\ $HOME");
    assert_eq!(
        env["MODE"], "last",
        "the file is above the env stanza, its last value wins"
    );

    let msg = d.fails(&["start", "bad"]);
    assert!(msg.contains("/files/bad.env:3: "), "{msg}");
    let msg = d.fails(&["start", "none"]);
    assert!(msg.contains("/files/none.env: no such file"), "{msg}");
    // A FIFO and an oversize file: refused at once, the daemon unblocked.
    let msg = d.fails(&["start", "fifo"]);
    assert!(msg.contains("not a regular file"), "{msg}");
    let msg = d.fails(&["start", "big"]);
    assert!(msg.contains("more than an env file may have"), "{msg}");
    assert!(d.ok(&["status", "app"]).contains("start/running"));
    // Why it failed stays told.
    let st = d.ok(&["status", "bad"]);
    assert!(st.contains("bad.env:3:"), "{st}");
}

fn a_respawn_rereads_the_file_and_keeps_the_last_good_values() {
    let d = env_files_daemon(false);
    let files = d.dir.path().join("files");
    let seen = d.dir.path().join("seen");
    d.ok(&["start", "app"]);
    assert_eq!(wait_lines(&seen, 1), ["last"]);
    // Changed: the respawn takes the new value.
    fs::write(files.join("app.env"), "MODE=second\n").unwrap();
    let pid = d.main_pid("app").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(wait_lines(&seen, 2), ["last", "second"]);
    // Broken: the respawn keeps the last good values, and says why.
    fs::write(files.join("app.env"), "MODE second\n").unwrap();
    d.wait_status(&["app"], "respawned", |s| s["processes"][0]["pid"] != pid);
    let pid = d.main_pid("app").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(wait_lines(&seen, 3), ["last", "second", "second"]);
    let line = d.wait_log("the values last read are kept");
    assert!(line.contains("app.env:1: expected KEY=VALUE"), "{line}");
}

fn a_root_daemon_refuses_env_files_others_can_change() -> Result<(), Missing> {
    need_root()?;
    let d = env_files_daemon(true);
    let files = d.dir.path().join("files");
    let (nobody_uid, nobody_gid) = nobody();
    // The file owned by another user.
    nix::unistd::chown(&files.join("app.env"), Some(nobody_uid.into()), None).unwrap();
    let msg = d.fails(&["start", "app"]);
    assert!(
        msg.contains(&format!("is owned by uid {nobody_uid}")),
        "{msg}"
    );
    nix::unistd::chown(&files.join("app.env"), Some(0.into()), None).unwrap();
    // Writable by a group that is not root's.
    nix::unistd::chown(&files.join("app.env"), None, Some(nobody_gid.into())).unwrap();
    fs::set_permissions(files.join("app.env"), fs::Permissions::from_mode(0o664)).unwrap();
    let msg = d.fails(&["start", "app"]);
    assert!(
        msg.contains("is writable by other users (mode 0664)"),
        "{msg}"
    );
    // Root's group may write it.
    nix::unistd::chown(&files.join("app.env"), None, Some(0.into())).unwrap();
    d.ok(&["start", "app"]);
    d.ok(&["stop", "app"]);
    // A parent directory anyone can write.
    fs::set_permissions(&files, fs::Permissions::from_mode(0o777)).unwrap();
    let msg = d.fails(&["start", "app"]);
    assert!(
        msg.contains("directory") && msg.contains("(mode 0777)"),
        "{msg}"
    );
    fs::set_permissions(&files, fs::Permissions::from_mode(0o755)).unwrap();
    // The job's own user may own its file.
    let out = d.dir.path().join("out");
    fs::create_dir(&out).unwrap();
    nix::unistd::chown(&out, Some(nobody_uid.into()), Some(nobody_gid.into())).unwrap();
    fs::write(
        d.conf.join("mine.conf"),
        format!(
            "setuid nobody\nenv-file {}/mine.env\nexec sh -c 'echo \"$SECRET\" > {}/mine.out; exec sleep 1000'\n",
            files.display(),
            out.display()
        ),
    )
    .unwrap();
    fs::write(files.join("mine.env"), "SECRET=s3cret-value\n").unwrap();
    fs::set_permissions(files.join("mine.env"), fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::chown(
        &files.join("mine.env"),
        Some(nobody_uid.into()),
        Some(nobody_gid.into()),
    )
    .unwrap();
    d.ok(&["reload-configuration"]);
    d.ok(&["start", "mine"]);
    common::daemon::wait_file(&out.join("mine.out"), |t| t == "s3cret-value\n");
    // An ordinary user is shown no value: not in status, show-config or
    // the job's environment.
    for args in [
        &["status", "--json", "mine"][..],
        &["show-config", "mine"][..],
        &["list", "--json", "--costs"][..],
    ] {
        let out = std::process::Command::new(common::upkeep_bin())
            .args(["--socket", d.socket.to_str().unwrap()])
            .args(args)
            .uid(nobody_uid)
            .gid(nobody_gid)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("s3cret-value"), "{args:?}: {text}");
    }
    Ok(())
}

tests![
    a_per_user_daemon_passes_its_environment_but_never_what_is_upkeeps,
    env_files_are_applied_and_bad_ones_refused_with_file_and_line,
    a_respawn_rereads_the_file_and_keeps_the_last_good_values,
    init_mode_passes_the_daemons_environment_and_clean_env_turns_it_off,
    a_root_daemon_outside_init_mode_passes_only_what_pass_env_names,
    a_root_daemon_refuses_env_files_others_can_change,
];
