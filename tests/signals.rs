//! Signals to the daemon as a container's init gets them (T12): SIGUSR2
//! and SIGWINCH are passed on to the jobs' main processes (only the
//! `--exit-with` job's when one is given), SIGHUP and SIGUSR1 keep their
//! daemon meanings unless `--forward-hup`.

mod common;

use common::daemon::Daemon;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A job that writes `got NAME` to its log for every signal it catches
/// (one write each, so that a handler never splits another's line).
const CATCHER: &str = "script\nexec python3 -u -c 'import os, signal, time\n\
def h(s, f):\n    os.write(1, (\"got %s\\n\" % signal.Signals(s).name).encode())\n\
for s in (signal.SIGUSR2, signal.SIGWINCH, signal.SIGHUP, signal.SIGUSR1):\n    signal.signal(s, h)\n\
print(\"ready\")\n\
while True:\n    time.sleep(1000)'\nend script\n";

fn daemon(flags: &[&str]) -> Daemon {
    let mut b = Daemon::builder()
        .job("a", CATCHER)
        .job("b", CATCHER)
        .flag("--init");
    for f in flags {
        b = b.flag(f);
    }
    let d = b.start();
    for j in ["a", "b"] {
        d.ok(&["start", j]);
        d.wait_log_file(&format!("{j}.log"), "ready\n");
    }
    d
}

fn signal(d: &Daemon, sig: Signal) {
    kill(Pid::from_raw(d.pid() as i32), sig).unwrap();
}

fn count(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

#[test]
fn usr2_and_winch_reach_every_main_process_once_and_hup_usr1_stay_the_daemons() {
    let d = daemon(&[]);
    signal(&d, Signal::SIGUSR2);
    signal(&d, Signal::SIGWINCH);
    for j in ["a", "b"] {
        let log = d.wait_log_file(&format!("{j}.log"), "got SIGWINCH\n");
        assert_eq!(count(&log, "got SIGUSR2"), 1, "{j}: {log}");
        assert_eq!(count(&log, "got SIGWINCH"), 1, "{j}: {log}");
    }
    // SIGHUP reloads, SIGUSR1 reopens the logs; neither reaches a job. A
    // forwarded SIGUSR2 after them would come after them too (and a
    // pending SIGHUP or SIGUSR1 is delivered before a SIGUSR2).
    signal(&d, Signal::SIGHUP);
    d.wait_log("SIGHUP: reloading configuration");
    signal(&d, Signal::SIGUSR1);
    d.wait_log("SIGUSR1: reopening log files");
    signal(&d, Signal::SIGUSR2);
    for j in ["a", "b"] {
        let log = d.wait_log_file(&format!("{j}.log"), "got SIGWINCH\ngot SIGUSR2\n");
        assert_eq!(count(&log, "got SIGHUP"), 0, "{j}: {log}");
        assert_eq!(count(&log, "got SIGUSR1"), 0, "{j}: {log}");
    }
}

#[test]
fn with_exit_with_only_that_jobs_main_process_is_signalled() {
    let d = daemon(&["--exit-with", "a"]);
    signal(&d, Signal::SIGWINCH);
    d.wait_log_file("a.log", "got SIGWINCH\n");
    let said = d.wait_log("SIGWINCH: passed on to");
    let pid = d.main_pid("a").unwrap();
    assert!(
        said.ends_with(&format!("SIGWINCH: passed on to a ({pid})")),
        "{said}"
    );
}

#[test]
fn forward_hup_passes_sighup_on_instead_of_reloading() {
    let d = daemon(&["--forward-hup"]);
    signal(&d, Signal::SIGHUP);
    for j in ["a", "b"] {
        d.wait_log_file(&format!("{j}.log"), "got SIGHUP\n");
    }
    d.wait_log("SIGHUP: passed on to");
    assert!(
        !d.log_lines()
            .iter()
            .any(|l| l.contains("reloading configuration")),
        "{:?}",
        d.log_lines()
    );
}
