//! The README's tutorial, followed literally: every command of its shell
//! blocks, in order, in one root bash (so `&` and `kill %1` mean what they
//! say), from the checkout's root, as a newcomer would paste them. Two
//! liberties, both a newcomer's too: a command whose comment shows an
//! outcome that takes a moment (the stack coming up, a respawn, the
//! worker's log) is run again until it shows it; and the release binary
//! `.ci/run` built once (`UPKEEP_BIN`) stands in for the line's own
//! `cargo build --release`. Needs root, CI (or `UPKEEP_SYSTEM_TESTS=1`: it
//! installs into /usr/local/bin and /srv), and Debian's mirror and PyPI.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::runner::{need_artifact, need_system_tests, Missing};

/// How long one command may take (apt and pip reach the network).
const COMMAND_DEADLINE: Duration = Duration::from_secs(600);
/// How long an outcome may take to show.
const OUTCOME_DEADLINE: Duration = Duration::from_secs(60);

/// The commands of the tutorial's shell blocks, comments kept apart.
fn tutorial_commands() -> Vec<(String, String)> {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("\n## Tutorial").expect("the tutorial section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        // `COMMAND   # comment`: a comment starts at whitespace and `# `.
        let (cmd, comment) = match line.find("  # ").or_else(|| line.find(" # ")) {
            Some(i) => (line[..i].trim_end(), line[i..].trim_start()[2..].trim()),
            None => (line, ""),
        };
        commands.push((cmd.to_string(), comment.to_string()));
    }
    commands
}

/// A root bash fed one command at a time.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path, stderr: &Path) -> Shell {
        let mut child = Command::new("/bin/bash")
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .env("DEBIAN_FRONTEND", "noninteractive")
            // The PATH of whoever runs the tests, as a newcomer's shell has
            // it (with pyenv's python3 first, say).
            .env_remove("UPKEEP_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Shell {
            child,
            stdin,
            lines,
        }
    }

    /// Runs one command line; its stdout and exit status.
    fn run(&mut self, cmd: &str) -> (String, i32) {
        let marker = "__TUTORIAL_DONE__";
        writeln!(self.stdin, "{cmd}\necho; echo {marker} $?").unwrap();
        self.stdin.flush().unwrap();
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let mut out = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("{cmd}: no end within {COMMAND_DEADLINE:?}; said: {out}")
            });
            if let Some(code) = line.strip_prefix(marker) {
                return (out, code.trim().parse().unwrap());
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // Whatever a failure left: the background daemon stops its jobs.
        let _ = writeln!(self.stdin, "kill %1 2>/dev/null; wait; exit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// What must hold after the command, for the lines whose comment shows an
/// outcome that may take a moment; `None`: exit 0 once is enough.
/// A check of a command's output.
type Check = Box<dyn Fn(&str) -> bool>;

fn outcome(cmd: &str, comment: &str, state: &State) -> Option<Check> {
    if cmd == "upkeep list" {
        return Some(Box::new(|out: &str| {
            ["nginx", "redis", "web", "worker"]
                .iter()
                .all(|j| out.contains(&format!("{j} start/running, process ")))
        }));
    }
    if cmd.starts_with("curl ") && comment.starts_with("hello from upkeep") {
        return Some(Box::new(|out: &str| {
            out.contains("hello from upkeep; visits=")
        }));
    }
    if cmd == "upkeep status web" {
        let old = state.web_pid;
        return Some(Box::new(move |out: &str| {
            out.starts_with("web start/running, process ")
                && old.is_none_or(|p| !out.contains(&format!("process {p}\n")))
        }));
    }
    if cmd.starts_with("tail ") && comment.starts_with("worker did job") {
        return Some(Box::new(|out: &str| out.contains("worker did job")));
    }
    None
}

#[derive(Default)]
struct State {
    /// web's pid before the `kill -9`.
    web_pid: Option<i32>,
}

/// Puts the machine back: /srv/stack, /usr/local/bin/upkeep as it was, and
/// the default socket dir the tutorial's daemon made (its lock file stays
/// after the daemon).
struct Restore {
    saved_bin: Option<PathBuf>,
    made_run_dir: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.made_run_dir {
            let _ = fs::remove_dir_all("/run/upkeep");
        }
        let _ = fs::remove_dir_all("/srv/stack");
        let _ = fs::remove_file("/usr/local/bin/upkeep");
        if let Some(saved) = &self.saved_bin {
            let _ = fs::rename(saved, "/usr/local/bin/upkeep");
        }
    }
}

fn the_readme_tutorial_works_as_written() -> Result<(), Missing> {
    need_system_tests()?;
    let bin = need_artifact("UPKEEP_BIN", "the release binary (cargo build --release)")?;
    let commands = tutorial_commands();
    assert!(commands.len() >= 12, "{commands:?}");

    let tmp = tempfile::tempdir().unwrap();
    let saved_bin = Path::new("/usr/local/bin/upkeep").exists().then(|| {
        let to = tmp.path().join("upkeep.before");
        fs::copy("/usr/local/bin/upkeep", &to).unwrap();
        to
    });
    let _restore = Restore {
        saved_bin,
        made_run_dir: !Path::new("/run/upkeep").exists(),
    };
    let _ = fs::remove_dir_all("/srv/stack");

    let stderr = tmp.path().join("stderr");
    let mut shell = Shell::start(Path::new(env!("CARGO_MANIFEST_DIR")), &stderr);
    let mut state = State::default();
    let said = || fs::read_to_string(&stderr).unwrap_or_default();
    for (cmd, comment) in &commands {
        let line = match cmd.strip_prefix("cargo build --release && ") {
            // The binary CI built once, installed by the line's own command.
            Some(install) => install.replace("target/release/upkeep", bin.to_str().unwrap()),
            None => cmd.clone(),
        };
        if line.starts_with("kill -9 ") {
            let (out, _) = shell.run("upkeep status web");
            state.web_pid = out
                .split("process ")
                .nth(1)
                .and_then(|p| p.split_whitespace().next()?.parse().ok());
            assert!(state.web_pid.is_some(), "web's pid before the kill: {out}");
        }
        eprintln!("tutorial$ {line}");
        let check = outcome(cmd, comment, &state);
        let deadline = Instant::now() + OUTCOME_DEADLINE;
        loop {
            let (out, code) = shell.run(&line);
            let good = code == 0 && check.as_ref().is_none_or(|c| c(&out));
            if good {
                break;
            }
            assert!(
                check.is_some() && Instant::now() < deadline,
                "{line}\n  exit {code}, said:\n{out}\n  stderr:\n{}",
                said()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if line == "kill %1" {
            // SIGTERM: everything stops, in reverse order, and it exits 0.
            let (_, code) = shell.run("wait %1");
            assert_eq!(code, 0, "the daemon's exit status; stderr:\n{}", said());
        }
    }
    let log = said();
    assert!(log.contains("all jobs stopped; exiting"), "{log}");
    // The worker did the job without crashing.
    let worker = fs::read_to_string("/srv/stack/log/worker.log").unwrap();
    assert!(worker.contains("worker did job"), "{worker}");
    let crashes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("worker main process") && l.contains("terminated with status"))
        .collect();
    assert!(crashes.is_empty(), "{crashes:?}");
    Ok(())
}

tests![the_readme_tutorial_works_as_written];
