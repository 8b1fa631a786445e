//! Upstart's job-environment commands: the global table as the base of
//! jobs started afterwards (above PATH/TERM, below `env` stanzas and start
//! variables), an instance's own table from inside a job, refusal for
//! users other than root and the daemon's, survival across `re-exec`; and
//! `log-priority`.

mod common;

use std::os::unix::process::CommandExt;

use common::daemon::{nobody, Daemon};
use common::runner::{need_root, Missing};

fn bin() -> String {
    common::upkeep_bin().to_str().unwrap().to_string()
}

/// A task that writes FOO, BAR and TERM to its log as `FOO=… BAR=… TERM=…`.
const SHOW: &str =
    "task\nexec sh -c 'echo \"FOO=$FOO BAR=$BAR TERM=${TERM:-} PATH=${PATH:+set}\"'\n";

fn the_global_table_is_the_base_of_later_jobs_and_survives_re_exec() {
    let mut d = Daemon::builder()
        .job("show", SHOW)
        .job("stanza", &format!("env FOO=stanza\n{SHOW}"))
        .canary()
        .start();
    assert_eq!(d.ok(&["list-env"]), "");
    d.ok(&["set-env", "FOO=table"]);
    d.ok(&["set-env", "--global", "BAR=one"]);
    d.ok(&["set-env", "-r", "BAR=two"]); // retained: stays one
    assert_eq!(d.ok(&["list-env"]), "BAR=one\nFOO=table\n");
    assert_eq!(d.ok(&["get-env", "FOO"]), "table\n");
    // KEY alone: this command's own value.
    let o = std::process::Command::new(bin())
        .args(["set-env", "TERM"])
        .env("UPKEEP_SOCKET", &d.socket)
        .env("TERM", "vt220")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    d.ok(&["start", "show"]);
    d.wait_log_file("show.log", "FOO=table BAR=one TERM=vt220 PATH=set");
    // Below the job's env stanzas and its start variables.
    d.ok(&["start", "stanza", "BAR=start"]);
    d.wait_log_file("stanza.log", "FOO=stanza BAR=start TERM=vt220");
    // Across re-exec.
    d.ok(&["re-exec"]);
    assert_eq!(d.ok(&["list-env"]), "BAR=one\nFOO=table\nTERM=vt220\n");
    d.ok(&["unset-env", "FOO"]);
    let e = d.fails(&["unset-env", "FOO"]);
    assert!(e.contains("No such variable: FOO"), "{e}");
    let e = d.fails(&["get-env", "FOO"]);
    assert!(e.contains("No such variable: FOO"), "{e}");
    d.ok(&["reset-env"]);
    assert_eq!(d.ok(&["list-env"]), "");
    d.ok(&["start", "show"]);
    d.wait_log_file("show.log", "FOO= BAR= TERM=");
    assert_eq!(d.ctl(&["set-env"]).status.code(), Some(2));
    assert_eq!(d.ctl(&["get-env", "A", "B"]).status.code(), Some(2));
    d.assert_canary();
}

fn inside_a_job_the_instance_table_reaches_its_later_processes() {
    let b = bin();
    let mut d = Daemon::builder()
        .job(
            "app",
            &format!(
                "env GREETING=stanza\n\
                 pre-start exec {b} set-env GREETING=from-pre-start\n\
                 exec sh -c 'echo \"main: $GREETING global: ${{G:-}}\"; {b} get-env GREETING; {b} reset-env; {b} get-env GREETING; exec sleep 1000'\n"
            ),
        )
        .canary()
        .start();
    d.ok(&["set-env", "G=global"]);
    d.ok(&["start", "app"]);
    let log = d.wait_log_file("app.log", "stanza");
    assert!(log.contains("main: from-pre-start global: global"), "{log}");
    // get-env inside the job reads the instance's table; reset-env takes
    // it back to what it was started with.
    assert!(log.contains("\nfrom-pre-start\n"), "{log}");
    // The global table was not touched by the job.
    assert_eq!(d.ok(&["list-env"]), "G=global\n");
    d.ok(&["stop", "app"]);
    d.assert_canary();
}

fn log_priority_is_read_and_set() {
    // The test daemons run with --verbose (info).
    let mut d = Daemon::builder()
        .job("web", "exec sleep 1000\n")
        .canary()
        .start();
    assert_eq!(d.ok(&["log-priority"]), "info\n");
    d.ok(&["log-priority", "message"]);
    assert_eq!(d.ok(&["log-priority"]), "message\n");
    d.ok(&["start", "web"]);
    d.ok(&["stop", "web"]);
    d.ok(&["log-priority", "info"]);
    assert_eq!(d.ok(&["log-priority"]), "info\n");
    d.ok(&["start", "web"]);
    d.wait_log("web state changed from spawned to running");
    d.ok(&["log-priority", "message"]);
    let e = d.fails(&["log-priority", "loud"]);
    assert!(
        e.contains("The log priority given was not recognised"),
        "{e}"
    );
    let e = d.fails(&["log-priority", "error"]);
    assert!(e.contains("not supported"), "{e}");
    d.ok(&["stop", "web"]);
    // While at message, the changes of the first run and of the last
    // stop were not logged: one start and no stop of the two.
    d.wait_log_count("killed by TERM signal", 2);
    let lines = d.log_lines();
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(
        count("web state changed from spawned to running"),
        1,
        "{lines:?}"
    );
    assert_eq!(
        count("web state changed from killed to waiting"),
        0,
        "{lines:?}"
    );
    d.assert_canary();
}

fn only_root_and_the_daemons_user_read_or_change_it() -> Result<(), Missing> {
    need_root()?;
    let mut d = Daemon::builder().run_as_root().canary().start();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d.ok(&["set-env", "SECRET=42"]);
    let (u, g) = nobody();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .env("UPKEEP_SOCKET", &d.socket)
            .uid(u)
            .gid(g)
            .output()
            .unwrap()
    };
    for (args, what) in [
        (&["set-env", "X=1"][..], "modify the job environment"),
        (&["unset-env", "SECRET"][..], "modify the job environment"),
        (&["reset-env"][..], "modify the job environment"),
        (&["list-env"][..], "read the job environment"),
        (&["get-env", "SECRET"][..], "read the job environment"),
        (&["log-priority", "info"][..], "set the log priority"),
    ] {
        let o = as_nobody(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains(&format!("You do not have permission to {what}")),
            "{args:?}: {e}"
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&as_nobody(&["log-priority"]).stdout),
        "info\n"
    );
    assert_eq!(d.ok(&["list-env"]), "SECRET=42\n");
    d.assert_canary();
    Ok(())
}

tests![
    the_global_table_is_the_base_of_later_jobs_and_survives_re_exec,
    inside_a_job_the_instance_table_reaches_its_later_processes,
    log_priority_is_read_and_set,
    only_root_and_the_daemons_user_read_or_change_it,
];
