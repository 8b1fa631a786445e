//! setuid, setgid and limit need a root daemon: these tests run when the
//! suite runs as root (CI does) and show as ignored, with the reason, otherwise.

mod common;

use common::daemon::{nobody, Daemon};
use common::runner::{need_root, Missing};

fn proc_status(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap()
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or("")
        .trim()
}

fn setuid_and_setgid_drop_privileges_with_supplementary_groups() -> Result<(), Missing> {
    need_root()?;
    let mut d = Daemon::builder()
        .canary()
        .job("u", "setuid nobody\nexec sleep 1000\n")
        .job("g", "setuid nobody\nsetgid daemon\nexec sleep 1000\n")
        .run_as_root()
        .start();
    d.ok(&["start", "u"]);
    d.ok(&["start", "g"]);
    let (uid, gid) = nobody();
    let s = proc_status(d.main_pid("u").unwrap());
    assert_eq!(
        field(&s, "Uid:").split_whitespace().collect::<Vec<_>>(),
        vec![uid.to_string(); 4]
    );
    assert_eq!(
        field(&s, "Gid:").split_whitespace().next().unwrap(),
        gid.to_string()
    );
    let groups = field(&s, "Groups:");
    assert!(
        !groups.split_whitespace().any(|g| g == "0"),
        "root's groups leaked: {groups}"
    );
    let daemon_gid = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    let s = proc_status(d.main_pid("g").unwrap());
    assert_eq!(
        field(&s, "Gid:").split_whitespace().next().unwrap(),
        daemon_gid.to_string()
    );
    d.assert_canary();
    Ok(())
}

fn unknown_user_fails_the_spawn_and_the_daemon_goes_on() -> Result<(), Missing> {
    need_root()?;
    let d = Daemon::builder()
        .job("ghost", "setuid no-such-user-here\nexec sleep 1000\n")
        .job("canary", "exec sleep 1000\n")
        .run_as_root()
        .start();
    assert_eq!(
        d.fails(&["start", "ghost"]),
        "upkeep: Job failed to start: main process failed to spawn: unable to find setuid user\n"
    );
    d.wait_log("Failed to spawn ghost main process: unable to find setuid user");
    assert!(d
        .ok(&["start", "canary"])
        .starts_with("canary start/running"));
    Ok(())
}

fn limits_are_applied_and_nofile_is_given_back() -> Result<(), Missing> {
    need_root()?;
    let d = Daemon::builder()
        .job(
            "lim",
            "limit nofile 123 456\nlimit core unlimited unlimited\nexec sleep 1000\n",
        )
        .job("plain", "exec sleep 1000\n")
        .run_as_root()
        .start();
    d.ok(&["start", "lim"]);
    d.ok(&["start", "plain"]);
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", d.main_pid("lim").unwrap())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>()[3..5],
        ["123", "456"],
        "{line}"
    );
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(core.contains("unlimited"), "{core}");
    // The daemon raised its own soft limit; jobs get the original back.
    let ours = std::fs::read_to_string("/proc/self/limits").unwrap();
    let ours = ours
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let plain =
        std::fs::read_to_string(format!("/proc/{}/limits", d.main_pid("plain").unwrap())).unwrap();
    let plain = plain
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    assert_eq!(plain, ours);
    let daemon = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let daemon = daemon
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()[3..5]
        .to_vec();
    assert_eq!(
        daemon[0], daemon[1],
        "daemon's soft limit raised to its hard limit"
    );
    Ok(())
}

/// Whether this process may lower OOM scores (CAP_SYS_RESOURCE, bit 24).
fn may_lower_oom_scores() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = u64::from_str_radix(field(&status, "CapEff:"), 16).unwrap();
    caps & (1 << 24) != 0
}

fn oom_score_is_set_where_allowed_and_never_stops_the_job() -> Result<(), Missing> {
    need_root()?;
    let d = Daemon::builder()
        .job("low", "oom score never\nexec sleep 1000\n")
        .job("high", "oom score 500\nexec sleep 1000\n")
        .run_as_root()
        .start();
    for (job, want) in [("low", "-1000"), ("high", "500")] {
        let out = d.ok(&["start", job]);
        assert!(out.starts_with(&format!("{job} start/running")), "{out}");
        let pid = d.main_pid(job).unwrap();
        let score = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        // Raising needs no privilege; lowering needs CAP_SYS_RESOURCE,
        // which a container's root may lack (CI's does): then the job runs
        // with the score it inherited from the daemon.
        if want == "500" || may_lower_oom_scores() {
            assert_eq!(score.trim(), want, "{job}");
        } else {
            let inherited =
                std::fs::read_to_string(format!("/proc/{}/oom_score_adj", d.pid())).unwrap();
            assert_eq!(score.trim(), inherited.trim(), "{job}: inherited");
        }
    }
    Ok(())
}

tests![
    setuid_and_setgid_drop_privileges_with_supplementary_groups,
    unknown_user_fails_the_spawn_and_the_daemon_goes_on,
    limits_are_applied_and_nofile_is_given_back,
    oom_score_is_set_where_allowed_and_never_stops_the_job,
];
