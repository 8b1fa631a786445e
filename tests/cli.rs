//! The command line explains itself: one table of commands gives each its
//! `--help` (every option it takes, with what it does), and a command
//! refuses an option it does not take, pointing at its own help.

mod common;

use std::process::{Command, Output};

use common::daemon::Daemon;
use common::upkeep_bin;

fn upkeep(args: &[&str]) -> Output {
    Command::new(upkeep_bin())
        .args(args)
        .env("UPKEEP_SOCKET", "/nonexistent/upkeep.sock")
        .output()
        .expect("run upkeep")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The commands `upkeep --help` lists.
fn commands() -> Vec<String> {
    let o = upkeep(&["--help"]);
    assert!(o.status.success());
    let help = text(&o.stdout);
    let list = help
        .split("Commands:\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("a list of commands");
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_has_a_help_that_names_its_usage_and_options() {
    let all = commands();
    assert!(all.len() >= 15, "{all:?}");
    for cmd in &all {
        let o = upkeep(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help: {o:?}");
        let help = text(&o.stdout);
        assert!(
            help.starts_with(&format!("Usage: upkeep {cmd}")),
            "{cmd}: {help}"
        );
        // Every option shown is one the command accepts: given (with a
        // value where it takes one) before an option no command takes, it
        // is the latter that is refused.
        for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| w.starts_with("--")).unwrap();
            let takes_value = words.get(at + 1).is_some_and(|w| {
                w.contains('|')
                    || w.chars()
                        .all(|c| c.is_ascii_uppercase() || c == ',' || c == '.')
            });
            let mut args = vec![cmd.as_str(), words[at]];
            if takes_value {
                args.push("x");
            }
            args.push("--zzz");
            let o = upkeep(&args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
            assert!(
                text(&o.stderr).starts_with("upkeep: invalid option '--zzz'"),
                "{args:?}: {}",
                text(&o.stderr)
            );
        }
    }
    let start = text(&upkeep(&["start", "--help"]).stdout);
    for opt in ["-n, --no-wait", "--json", "-q, --quiet", "--socket PATH"] {
        assert!(start.contains(opt), "{start}");
    }
    let daemon = text(&upkeep(&["daemon", "--help"]).stdout);
    for opt in [
        "--conf-dir DIR",
        "--exit-with JOB",
        "--log-size SIZE",
        "-v, --verbose",
    ] {
        assert!(daemon.contains(opt), "{daemon}");
    }
}

#[test]
fn an_option_a_command_does_not_take_is_refused_with_a_pointer_to_its_help() {
    let o = upkeep(&["list", "--no-wait"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "upkeep: invalid option '--no-wait'\nTry 'upkeep list --help' for more information.\n"
    );
    let o = upkeep(&["show-config", "--follow"]);
    assert_eq!(o.status.code(), Some(2));
    let o = upkeep(&["daemon", "--conf-dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("missing argument"), "{o:?}");
    let o = upkeep(&["version", "extra"]);
    assert_eq!(o.status.code(), Some(2));
    // A daemon option's bad value names the option and the value.
    for (args, says) in [
        (
            &["daemon", "--pass-env", "A-B"][..],
            "--pass-env: not a variable name or PREFIX*: A-B",
        ),
        (
            &["daemon", "--log-format", "xml"][..],
            "--log-format: plain or json, not xml",
        ),
    ] {
        let o = upkeep(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o.stderr).contains(says), "{o:?}");
    }
}

#[test]
fn quiet_prints_nothing_but_errors() {
    let d = Daemon::with_jobs(&[("j", "exec sleep 1000\n")]);
    assert_eq!(d.ok(&["start", "-q", "j"]), "");
    assert_eq!(d.ok(&["status", "--quiet", "j"]), "");
    assert_eq!(d.ok(&["status", "j"]).lines().count(), 1);
    assert_eq!(
        d.fails(&["start", "-q", "j"]),
        "upkeep: Job is already running: j\n"
    );
    assert_eq!(d.ok(&["stop", "-q", "j"]), "");
}

#[test]
fn socket_goes_before_or_after_the_command() {
    let d = Daemon::with_jobs(&[("j", "exec sleep 1000\n")]);
    let sock = d.socket.to_str().unwrap();
    let run = |args: &[&str]| {
        Command::new(upkeep_bin())
            .args(args)
            .env_remove("UPKEEP_SOCKET")
            .output()
            .expect("run upkeep")
    };
    let want = "j stop/waiting\n";
    for args in [
        vec!["--socket", sock, "status", "j"],
        vec!["status", "j", "--socket", sock],
        vec![&format!("--socket={sock}"), "status", "j"],
    ] {
        let o = run(&args);
        assert_eq!(
            (text(&o.stdout).as_str(), o.status.code()),
            (want, Some(0)),
            "{args:?}: {o:?}"
        );
    }
    // A command that does not talk to the daemon refuses it, wherever it is.
    let o = run(&["--socket", sock, "show-config"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = run(&["--socket"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn under_an_upstart_link_name_usage_names_the_command_once() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["start", "status"] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(upkeep_bin(), &link).unwrap();
        let o = Command::new(&link).arg("--help").output().unwrap();
        let help = text(&o.stdout);
        assert!(
            help.starts_with(&format!("Usage: {name} JOB [KEY=VALUE]... [OPTIONS]\n")),
            "{help}"
        );
    }
    let link = dir.path().join("initctl");
    std::os::unix::fs::symlink(upkeep_bin(), &link).unwrap();
    let o = Command::new(&link)
        .args(["start", "--help"])
        .output()
        .unwrap();
    assert!(
        text(&o.stdout).starts_with("Usage: initctl start JOB"),
        "{o:?}"
    );
}

#[test]
fn help_gives_every_default_the_environment_and_the_exit_codes() {
    let top = text(&upkeep(&["--help"]).stdout);
    for want in [
        "--socket PATH",
        "UPKEEP_SOCKET",
        "Exit status:",
        "  2  a usage error",
    ] {
        assert!(top.contains(want), "{want}: {top}");
    }
    for cmd in commands() {
        let help = text(&upkeep(&[&cmd, "--help"]).stdout);
        assert!(
            help.contains("\nExit status:\n  0  success\n"),
            "{cmd}: {help}"
        );
        // Every option that takes a value says what it is when not given.
        for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
            let takes_value = line
                .split_whitespace()
                .skip_while(|w| !w.starts_with("--"))
                .nth(1)
                .is_some_and(|w| w.chars().any(|c| c.is_ascii_uppercase() || c == '|'));
            let optional = !["ignore-events", "exit-with"]
                .iter()
                .any(|o| line.contains(o));
            if takes_value && optional {
                assert!(line.contains("default"), "{cmd}: {line}");
            }
        }
        let talks = !["daemon", "check-config", "show-config"].contains(&cmd.as_str());
        assert_eq!(help.contains("UPKEEP_SOCKET"), talks, "{cmd}: {help}");
    }
    let logs = text(&upkeep(&["logs", "--help"]).stdout);
    assert!(
        logs.starts_with("Usage: upkeep logs JOB [KEY=VALUE]..."),
        "{logs}"
    );
    let show = text(&upkeep(&["show-config", "--help"]).stdout);
    assert!(show.contains("-e, --enumerate"), "{show}");
}

#[test]
fn inside_a_job_no_name_needs_both_upstart_job_and_upstart_instance() {
    let d = Daemon::with_jobs(&[("j", "exec sleep 1000\n")]);
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(upkeep_bin());
        c.arg("status")
            .env("UPKEEP_SOCKET", &d.socket)
            .env_remove("UPSTART_JOB")
            .env_remove("UPSTART_INSTANCE");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // UPSTART_JOB alone is not a job's process (initctl says the same).
    let o = run(&[("UPSTART_JOB", "j")]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(text(&o.stderr).contains("missing job name"), "{o:?}");
    // Both, the instance empty for a single-instance job: that job.
    let o = run(&[("UPSTART_JOB", "j"), ("UPSTART_INSTANCE", "")]);
    assert_eq!(text(&o.stdout), "j stop/waiting\n", "{o:?}");
}

#[test]
fn version_says_which_handover_formats_it_reads_and_the_daemon_writes() {
    let o = upkeep(&["version", "--handover-formats"]);
    assert_eq!(text(&o.stdout), "reads 1 2\nwrites 2\n", "{o:?}");
    assert_eq!(o.status.code(), Some(0));
    let d = Daemon::with_jobs(&[]);
    assert_eq!(
        d.ok(&["version", "--handover-formats"]),
        "reads 1 2\nwrites 2\ndaemon 2\n"
    );
}
