//! podman as it runs on CI's machine (a hybrid cgroup tree, no
//! CAP_SYS_RESOURCE): Debian's runc, cgroupfs, no network, limits that may
//! be set; and a detached container whose output is followed as it comes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};

use super::daemon::DEADLINE;

pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(args)
        .output()
        .expect("podman")
}

/// A podman command that must succeed; its stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let o = podman(args);
    assert!(o.status.success(), "podman {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `podman run` with CI's settings; the rest of the arguments follow.
pub const RUN: &[&str] = &[
    "run",
    "--network=none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// A detached container; removed when dropped.
pub struct Container {
    pub id: String,
    /// `podman logs -f`: its stdout and stderr lines, as they come.
    follower: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Container {
    /// `podman run -d OPTS IMAGE ARGS`, its output followed.
    pub fn run(opts: &[&str], image: &str, args: &[&str]) -> Container {
        let mut a = RUN.to_vec();
        a.push("-d");
        a.extend_from_slice(opts);
        a.push(image);
        a.extend_from_slice(args);
        let id = podman_ok(&a).trim().to_string();
        let mut follower = Command::new("podman")
            .args(["logs", "-f", &id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("podman logs -f");
        let (tx, lines) = channel();
        for out in [
            Box::new(follower.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(follower.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Container {
            id,
            follower,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits, line by line as the container writes them, until what it
    /// wrote passes `check` ([`DEADLINE`] only guards against a hang);
    /// everything it wrote so far, a line each.
    pub fn wait_logs(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let text = self.seen.join("\n") + "\n";
            if check(&text) {
                return text;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("never {what} ({e}): {text}"),
            }
        }
    }

    /// Everything it wrote, stdout and stderr, once it has ended.
    pub fn logs(&self) -> String {
        let o = podman(&["logs", &self.id]);
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    /// Stops it as `docker stop` does; its exit status.
    pub fn stop(&self) -> i32 {
        podman_ok(&["stop", "-t", "20", &self.id]);
        self.wait()
    }

    /// Waits until it ends; its exit status.
    pub fn wait(&self) -> i32 {
        podman_ok(&["wait", &self.id]).trim().parse().unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", &self.id]);
        let _ = self.follower.kill();
        let _ = self.follower.wait();
    }
}
