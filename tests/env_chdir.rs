//! `env`, `chdir`, `umask`, and the environment and descriptors jobs get.

mod common;

use common::daemon::Daemon;

#[test]
fn env_stanzas_start_variables_chdir_and_umask_reach_the_process() {
    let job = "env A=from-file\nenv B=\"two words\"\nenv C=overridden\numask 027\nchdir @DIR@/work\ntask\nscript\n  pwd > $OUT\n  echo \"$A|$B|$C|$UPSTART_JOB|$UPSTART_INSTANCE|\" >> $OUT\n  umask >> $OUT\nend script\n";
    let d = Daemon::builder().job("e", job).start();
    let work = d.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = d.dir.path().join("out");
    let out_s = format!("OUT={}", out.display());
    d.ok(&["start", "e", "C=from-start", &out_s]);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], work.to_str().unwrap());
    assert_eq!(lines[1], "from-file|two words|from-start|e||");
    assert_eq!(lines[2], "0027");
}

#[test]
fn a_missing_chdir_fails_the_spawn_with_upstarts_message() {
    let d = Daemon::builder()
        .job("c", "chdir /nonexistent/dir\nexec sleep 1000\n")
        .start();
    assert_eq!(d.fails(&["start", "c"]), "upkeep: Job failed to start: main process failed to spawn: unable to change working directory: No such file or directory\n");
    d.wait_log("Failed to spawn c main process: unable to change working directory: No such file or directory");
}

#[test]
fn jobs_get_only_their_stdio_not_what_the_daemon_inherited() {
    // Python lists its own fds; the listing itself holds fd 3.
    let job = "task\nexec python3 -c \"import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))\"\n";
    let mut d = Daemon::builder().canary().leak_fd().job("fds", job).start();
    assert!(
        std::fs::read_link(format!("/proc/{}/fd/42", d.pid())).is_ok(),
        "the daemon should have inherited fd 42"
    );
    d.ok(&["start", "fds"]);
    assert_eq!(d.wait_log_file("fds.log", "]"), "[0, 1, 2, 3]\n");
    d.assert_canary();
}

#[test]
fn jobs_start_with_no_blocked_and_no_ignored_signals() {
    // The daemon blocks the signals it reads from its signalfd, and Rust
    // programs ignore SIGPIPE: none of that may reach a job.
    let job = "task\nexec grep -E '^Sig(Blk|Ign):' /proc/self/status\n";
    let slow = "task\nnice 1\nexec grep -E '^Sig(Blk|Ign):' /proc/self/status\n";
    let d = Daemon::builder().job("fast", job).job("slow", slow).start();
    for j in ["fast", "slow"] {
        d.ok(&["start", j]);
        let text = d.wait_log_file(&format!("{j}.log"), "SigIgn");
        assert_eq!(
            text, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{j}"
        );
    }
}
