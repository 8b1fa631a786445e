//! Where a daemon keeps its socket, state and logs without `--socket` and
//! `--log-dir`: `--run-dir DIR` (or `UPKEEP_RUN_DIR`), and for a non-root
//! container init that cannot write `/run/upkeep` and `/var/log/upkeep`,
//! `/tmp/upkeep-UID` (so a container runs with `--read-only --user`).

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::daemon::{is_root, nobody, wait_file};
use common::runner::{need_root, Missing};
use common::upkeep_bin;

/// A daemon started by hand (no --socket, no --log-dir), and the line
/// it said it listens on.
struct Bare {
    child: Child,
    listening: String,
}

impl Bare {
    fn start(args: &[&str], env: &[(&str, &str)], as_nobody: bool) -> Bare {
        let mut cmd = Command::new(upkeep_bin());
        cmd.arg("daemon")
            .args(args)
            .env_remove("UPKEEP_SOCKET")
            .env_remove("UPKEEP_RUN_DIR")
            .env_remove("XDG_RUNTIME_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if as_nobody {
            let (u, g) = nobody();
            cmd.uid(u).gid(g).env("HOME", "/nonexistent");
        }
        let mut child = cmd.spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let listening = loop {
            let mut line = String::new();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "the daemon ended before it listened"
            );
            if let Some(at) = line.trim_end().strip_prefix("upkeep: listening on ") {
                break at.to_string();
            }
        };
        // Whatever else it says is read, so that it never blocks on stderr.
        std::thread::spawn(move || for _ in err.lines() {});
        Bare { child, listening }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// `upkeep ARGS` with `env`; its stdout.
fn client(args: &[&str], env: &[(&str, &str)], as_nobody: bool) -> String {
    let mut cmd = Command::new(upkeep_bin());
    cmd.args(args)
        .env_remove("UPKEEP_SOCKET")
        .env_remove("UPKEEP_RUN_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .envs(env.iter().copied());
    if as_nobody {
        let (u, g) = nobody();
        cmd.uid(u).gid(g).env("HOME", "/nonexistent");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A temp dir with a conf dir holding one job, readable by nobody.
fn conf() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.path().join("conf");
    fs::create_dir(&conf).unwrap();
    fs::write(
        conf.join("hello.conf"),
        "task\nexec echo hello from the run dir\n",
    )
    .unwrap();
    dir
}

fn run_dir_holds_the_socket_the_state_and_the_logs() {
    let dir = conf();
    let run = dir.path().join("run");
    if is_root() {
        // The daemon runs as nobody: its run dir is made by it, inside a
        // dir it may write.
        let (u, g) = nobody();
        nix::unistd::chown(dir.path(), Some(u.into()), Some(g.into())).unwrap();
    }
    let (conf, run) = (dir.path().join("conf"), run.to_str().unwrap().to_string());
    let d = Bare::start(
        &[
            "--init",
            "--conf-dir",
            conf.to_str().unwrap(),
            "--run-dir",
            &run,
        ],
        &[],
        is_root(),
    );
    assert_eq!(d.listening, format!("{run}/upkeep.sock"));
    // A client finds it through UPKEEP_RUN_DIR.
    let env = [("UPKEEP_RUN_DIR", run.as_str())];
    assert_eq!(
        client(&["start", "hello"], &env, is_root()),
        "hello stop/waiting\n"
    );
    wait_file(&Path::new(&run).join("log/hello.log"), |t| {
        t == "hello from the run dir\n"
    });
    // And the daemon takes it from there too.
    drop(d);
    let d = Bare::start(
        &["--init", "--conf-dir", conf.to_str().unwrap()],
        &env,
        is_root(),
    );
    assert_eq!(d.listening, format!("{run}/upkeep.sock"));
}

fn a_non_root_init_falls_back_to_tmp_when_run_and_var_log_are_not_its() -> Result<(), Missing> {
    // nobody can write neither /run nor /var/log on a machine where the
    // tests run as root.
    need_root()?;
    let (u, _) = nobody();
    let tmp = format!("/tmp/upkeep-{u}");
    let dir = conf();
    let conf = dir.path().join("conf");
    let d = Bare::start(&["--init", "--conf-dir", conf.to_str().unwrap()], &[], true);
    assert_eq!(d.listening, format!("{tmp}/upkeep.sock"));
    // nobody's client finds it by default.
    assert_eq!(
        client(&["start", "hello"], &[], true),
        "hello stop/waiting\n"
    );
    wait_file(&Path::new(&tmp).join("log/hello.log"), |t| {
        t.ends_with("from the run dir\n")
    });
    let m = fs::metadata(&tmp).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o700);
    drop(d);
    let _ = fs::remove_dir_all(&tmp);
    Ok(())
}

tests![
    run_dir_holds_the_socket_the_state_and_the_logs,
    a_non_root_init_falls_back_to_tmp_when_run_and_var_log_are_not_its,
];
