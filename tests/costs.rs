//! What a job costs, from /proc on request: processes, CPU (of the live
//! processes and of those the daemon reaped), memory, descriptors, uptime
//! and log bytes; counted over the job's whole tree, including processes
//! that left its process group and ones re-parented to the daemon.

mod common;

use common::daemon::{descendants, Daemon};

/// (pid, ppid, pgid, CPU seconds with reaped children, RSS bytes) of a
/// live process.
fn stat(pid: i32) -> (i32, i32, i32, f64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let n = |i: usize| f[i].parse::<u64>().unwrap();
    let tick = 100.0; // USER_HZ, as every Linux reports it in /proc
    let cpu = (n(11) + n(12) + n(13) + n(14)) as f64 / tick;
    (pid, n(1) as i32, n(2) as i32, cpu, n(21) * 4096)
}

/// The processes whose environment names this job.
fn processes_of(job: &str) -> Vec<i32> {
    let wanted = format!("UPSTART_JOB={job}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
        })
        .collect()
}

const MIB: u64 = 1 << 20;

#[test]
fn costs_grow_with_memory_and_cpu_over_the_whole_tree() {
    // The main process (sleep) has a child that left the group and burns
    // CPU with 48 MiB, and an orphan that left the group and lost its
    // parent (so the daemon adopted it) holding 16 MiB.
    let mut d = Daemon::builder()
        .job(
            "hog",
            r#"script
  setsid perl -e '$x = "a" x (48 << 20); $| = 1; print "child\n"; 1 while 1' &
  sh -c 'setsid perl -e "\$y = q(b) x (16 << 20); \$| = 1; print qq(orphan\\n); sleep 1000" &'
  exec sleep 1000
end script
"#,
        )
        .canary()
        .start();
    d.ok(&["start", "hog"]);
    d.wait_log_file("hog.log", "orphan");
    d.wait_log_file("hog.log", "child");
    let main = d.main_pid("hog").unwrap();
    let child = *descendants(main).first().expect("the busy child");
    let orphan = processes_of("hog")
        .into_iter()
        .find(|&p| p != main && p != child)
        .expect("the orphan");
    let (_, _, main_group, _, _) = stat(main);
    let (_, _, child_group, _, _) = stat(child);
    let (_, orphan_parent, orphan_group, _, _) = stat(orphan);
    assert_ne!(child_group, main_group, "the child left the group");
    assert_ne!(orphan_group, main_group, "the orphan left the group");
    assert_eq!(
        orphan_parent as u32,
        d.pid(),
        "the daemon adopted the orphan"
    );

    let s = d.wait_status(&["hog"], "half a CPU second and 64 MiB", |s| {
        s["costs"]["cpu_seconds"].as_f64().unwrap() >= 0.5
            && s["costs"]["rss_bytes"].as_u64().unwrap() >= 64 * MIB
    });
    assert_eq!(s["costs"]["processes"], 3, "{s}");
    // Within a tolerance: the daemon's figures lie between what /proc says
    // of the same processes just before and just after the request.
    let sum = |pids: &[i32]| {
        pids.iter()
            .map(|&p| stat(p))
            .fold((0.0, 0), |(c, r), (_, _, _, cpu, rss)| (c + cpu, r + rss))
    };
    let all = [main, child, orphan];
    let (cpu_before, rss_before) = sum(&all);
    let s = d.status(&["hog"]);
    let (cpu_after, rss_after) = sum(&all);
    let costs = &s["costs"];
    let cpu = costs["cpu_seconds"].as_f64().unwrap();
    assert!(
        cpu >= cpu_before - 0.011 && cpu <= cpu_after + 0.011,
        "CPU {cpu} outside [{cpu_before}, {cpu_after}]"
    );
    let rss = costs["rss_bytes"].as_u64().unwrap();
    let (lo, hi) = (rss_before.min(rss_after), rss_before.max(rss_after));
    assert!(
        rss >= lo - lo / 20 && rss <= hi + hi / 20,
        "RSS {rss} outside [{lo}, {hi}]"
    );
    let pss = costs["pss_bytes"].as_u64().expect("PSS readable");
    assert!(pss >= 60 * MIB && pss <= rss, "PSS {pss}, RSS {rss}");
    // Three processes, each with at least stdin, stdout and stderr.
    assert!(costs["fds"].as_u64().unwrap() >= 9, "{costs}");
    assert!(costs["uptime_seconds"].as_u64().is_some(), "{costs}");
    let log = d.log_file("hog.log");
    assert_eq!(
        costs["log_bytes"].as_u64().unwrap(),
        log.len() as u64,
        "{log:?}"
    );
    assert_eq!(costs["log_dropped"], 0);
    d.ok(&["stop", "hog"]);
    common::daemon::wait_gone(orphan);
    d.assert_canary();
}

#[test]
fn the_cpu_of_reaped_processes_counts() {
    // Each run uses 0.2 s of CPU and exits: what the daemon reaped counts,
    // so the total is at least 0.2 s a respawn, although no process alive
    // ever used that much.
    let mut d = Daemon::builder()
        .job(
            "burst",
            "respawn\nrespawn limit unlimited\nexec perl -e '1 while (times)[0] < 0.2; exit 3'\n",
        )
        .canary()
        .start();
    d.ok(&["start", "burst"]);
    let s = d.wait_status(&["burst"], "two respawns", |s| {
        s["respawns"].as_u64().unwrap() >= 2
    });
    let respawns = s["respawns"].as_u64().unwrap() as f64;
    let cpu = s["costs"]["cpu_seconds"].as_f64().unwrap();
    assert!(
        cpu >= 0.2 * respawns - 0.02,
        "CPU {cpu} after {respawns} respawns"
    );
    // Kept across re-exec.
    d.ok(&["re-exec"]);
    let after = d.status(&["burst"])["costs"]["cpu_seconds"]
        .as_f64()
        .unwrap();
    assert!(
        after >= cpu - 0.02,
        "CPU {after} after re-exec, {cpu} before"
    );
    d.ok(&["stop", "burst"]);
    d.assert_canary();
}

#[test]
fn list_carries_costs_only_when_asked() {
    let mut d = Daemon::builder()
        .job("talker", "exec sh -c 'echo hello; exec sleep 1000'\n")
        .job("idle", "exec sleep 1000\n")
        .canary()
        .start();
    d.ok(&["start", "talker"]);
    d.wait_log_file("talker.log", "hello");
    let plain: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
    for j in plain.as_array().unwrap() {
        assert!(j.get("costs").is_none(), "no costs without --costs: {j}");
    }
    let full: serde_json::Value =
        serde_json::from_str(&d.ok(&["list", "--json", "--costs"])).unwrap();
    let all = full.as_array().unwrap();
    assert!(all.len() >= 3, "{full}");
    for j in all {
        assert!(j["costs"].is_object(), "costs with --costs: {j}");
    }
    let talker = all.iter().find(|j| j["job"] == "talker").unwrap();
    assert_eq!(talker["costs"]["processes"], 1);
    assert_eq!(
        talker["costs"]["log_bytes"].as_u64().unwrap(),
        d.log_file("talker.log").len() as u64
    );
    // A job at rest costs nothing (but what its log took).
    let idle = all.iter().find(|j| j["job"] == "idle").unwrap();
    assert_eq!(idle["costs"]["processes"], 0);
    assert_eq!(idle["costs"]["uptime_seconds"], serde_json::Value::Null);
    // status --json always carries them.
    let s = d.status(&["idle"]);
    assert!(s["costs"].is_object(), "{s}");
    d.assert_canary();
}

/// A busy job and a fat one.
fn busy_and_fat() -> Daemon {
    let d = Daemon::builder()
        .job("busy", "exec perl -e '1 while 1'\n")
        .job(
            "fat",
            "exec perl -e '$x = \"a\" x (64 << 20); $| = 1; print \"ready\\n\"; sleep 1000'\n",
        )
        .job("resting", "exec sleep 1000\n")
        .canary()
        .start();
    d.ok(&["start", "busy"]);
    d.ok(&["start", "fat"]);
    d.wait_log_file("fat.log", "ready");
    d.wait_status(&["busy"], "a tenth of a CPU second", |s| {
        s["costs"]["cpu_seconds"].as_f64().unwrap() >= 0.1
    });
    d
}

/// The job names of `top`'s table, in order.
fn top_jobs(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn top_prints_a_plain_table_heaviest_first_when_not_on_a_terminal() {
    let mut d = busy_and_fat();
    let by_cpu = d.ok(&["top"]);
    assert!(by_cpu.starts_with("upkeep top: "), "{by_cpu}");
    assert!(!by_cpu.contains('\x1b'), "a plain table: {by_cpu:?}");
    let header = by_cpu.lines().nth(1).unwrap();
    assert!(
        header.starts_with("JOB") && header.contains("CPU%") && header.contains("PSS"),
        "{header}"
    );
    // Resting jobs get no line; the canary runs.
    let jobs = top_jobs(&by_cpu);
    assert_eq!(jobs[0], "busy", "{by_cpu}");
    assert!(!jobs.contains(&"resting".to_string()), "{by_cpu}");
    assert_eq!(jobs.len(), 3, "{by_cpu}");
    let by_memory = d.ok(&["top", "--sort", "memory"]);
    assert_eq!(top_jobs(&by_memory)[0], "fat", "{by_memory}");
    // --json: one object a job, the same order.
    let json = d.ok(&["top", "--json", "--sort", "memory"]);
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{json}");
    assert_eq!(objects[0]["v"], 1);
    assert_eq!(objects[0]["job"], "fat");
    assert!(objects[0]["costs"]["rss_bytes"].as_u64().unwrap() >= 64 << 20);
    assert!(objects[0]["main_pid"].as_i64().is_some());
    assert!(objects[0]["cpu_percent"].as_f64().is_some());
    let e = d.ctl(&["top", "--sort", "size"]);
    assert_eq!(e.status.code(), Some(2));
    d.ok(&["stop", "busy"]);
    d.assert_canary();
}

#[test]
fn top_on_a_terminal_draws_again_until_interrupted() {
    use std::io::Read;
    let mut d = busy_and_fat();
    // `script` gives top a terminal; top is interrupted once it has drawn
    // the table twice.
    let cmd = format!("{} top --interval 0.2", common::upkeep_bin().display());
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("UPKEEP_SOCKET", &d.socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen)
        .matches("upkeep top: ")
        .count()
        < 2
    {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "top ended: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("\x1b[H"), "drawn in place: {text:?}");
    assert!(text.contains("Ctrl-C to quit"), "{text:?}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    // A Ctrl-C on the terminal reaches top through script; killing script
    // ends the session either way.
    let _ = child.kill();
    let _ = child.wait();
    d.ok(&["stop", "busy"]);
    d.assert_canary();
}

/// `list --json --costs` of 10,000 jobs is about 4 MiB, the cap on one
/// client's unread answers: an answer larger than the cap is still given
/// whole to a client that has none unread (an earlier build dropped the
/// client once its first write left more than the cap unread). Jobs at
/// rest with long names (a deep directory) make a 6 MB answer cheaply.
#[test]
fn a_list_larger_than_a_clients_cap_on_unread_answers_is_given_whole() {
    use std::io::{BufRead, Write};
    let deep: Vec<String> = (0..15)
        .map(|i| format!("{i:02}{}", "d".repeat(240)))
        .collect();
    let deep = deep.join("/");
    let mut b = Daemon::builder();
    for i in 0..1600 {
        b = b.job(&format!("{deep}/j{i:04}"), "exec sleep 1000\n");
    }
    let d = b.start();
    // A client that reads nothing until the daemon has written what the
    // socket takes and gone back to its loop, with the rest unread.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"{\"v\":1,\"cmd\":\"list\"}\n").unwrap();
    // (Blocks until the first bytes are there, reading none.)
    let peek = nix::sys::socket::MsgFlags::MSG_PEEK;
    nix::sys::socket::recv(std::os::fd::AsRawFd::as_raw_fd(&s), &mut [0u8], peek).unwrap();
    // Only to show that nothing happens: the daemon does not drop it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut answer = String::new();
    std::io::BufReader::new(s).read_line(&mut answer).unwrap();
    assert!(
        answer.ends_with('\n'),
        "cut short after {} bytes",
        answer.len()
    );
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let all = v["instances"].as_array().unwrap();
    assert_eq!(all.len(), 1600);
    assert!(answer.len() > 5 << 20, "{} bytes", answer.len());
    assert!(all[1599]["job"].as_str().unwrap().ends_with("/j1599"));
    // And the command prints it all.
    let out: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
    assert_eq!(out.as_array().unwrap().len(), 1600);
}
