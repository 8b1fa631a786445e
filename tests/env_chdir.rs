//! `env`, `chdir`, `umask` and the environment jobs get.

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
