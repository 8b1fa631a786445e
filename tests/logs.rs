//! Logs: every job's output in its own file, rotated without losing a
//! line; full disks, deleted files, hostile names, binary output.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DEADLINE};

/// The log and its rotated files, oldest first, decompressed. (While a
/// compression helper works, a file may go between listing and reading:
/// then try again.)
fn all_output(dir: &Path, name: &str) -> Vec<u8> {
    loop {
        if let Some(out) = try_all_output(dir, name) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn try_all_output(dir: &Path, name: &str) -> Option<Vec<u8>> {
    let mut numbered: Vec<(u32, std::path::PathBuf)> = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = f.strip_prefix(&format!("{name}.")) {
            let n = rest.trim_end_matches(".gz");
            if let Ok(n) = n.parse::<u32>() {
                numbered.push((n, e.path()));
            }
        }
    }
    numbered.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = Vec::new();
    for (_, p) in numbered {
        let raw = fs::read(&p).ok()?;
        if p.extension().is_some_and(|e| e == "gz") {
            let mut d = flate2::read::GzDecoder::new(&raw[..]);
            d.read_to_end(&mut out).ok()?;
        } else {
            out.extend_from_slice(&raw);
        }
    }
    out.extend_from_slice(&fs::read(dir.join(name)).unwrap_or_default());
    Some(out)
}

/// Waits until the log and its plain rotated files hold `n` bytes.
fn wait_for_bytes(dir: &Path, name: &str, n: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let total: u64 = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(name))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        if total >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {total} of {n} bytes arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn expected_lines(n: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.extend_from_slice(format!("line {i:07} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n").as_bytes());
    }
    v
}

/// A writer at full speed: `line 0000001 xxx…` (40 bytes a line).
const WRITER: &str = "task\nexec awk 'BEGIN { for (i = 1; i <= N; i++) printf \"line %07d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n\", i }'\n";

#[test]
fn a_full_speed_writer_through_a_thousand_rotations_loses_no_line() {
    let n = 200_000; // 8 MB: a thousand rotations of 8 KiB
    let job = format!(
        "log size 8K\nlog keep 100000\nlog compress no\n{}",
        WRITER.replace("N;", &format!("{n};"))
    );
    let mut d = Daemon::with_jobs_and_canary(&[("w", &job)]);
    d.ok(&["start", "w"]);
    // The task has ended; its last bytes may still be on their way.
    let want = expected_lines(n);
    wait_for_bytes(&d.logs, "w.log", want.len() as u64);
    let got = all_output(&d.logs, "w.log");
    assert!(
        got == want,
        "lines lost, doubled or out of order ({} bytes vs {})",
        got.len(),
        want.len()
    );
    let rotated = fs::read_dir(&d.logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("w.log."))
        .count();
    assert!(rotated >= 900, "only {rotated} rotations");
    // No file holds a partial line.
    for e in fs::read_dir(&d.logs).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("w.log.") {
            let text = fs::read(e.path()).unwrap();
            assert!(text.ends_with(b"\n"), "{name} ends mid-line");
        }
    }
    d.assert_canary();
}

#[test]
fn compressed_rotations_keep_every_line_too() {
    let n = 100_000;
    let job = format!(
        "log size 64K\nlog keep 100000\n{}",
        WRITER.replace("N;", &format!("{n};"))
    );
    let d = Daemon::with_jobs(&[("z", &job)]);
    d.ok(&["start", "z"]);
    let want = expected_lines(n);
    let deadline = Instant::now() + DEADLINE;
    loop {
        // Compression helpers finish in their own time: wait for no
        // plain file beyond .1.
        let plain_old = fs::read_dir(&d.logs).unwrap().flatten().any(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            f.starts_with("z.log.") && !f.ends_with(".gz") && f != "z.log.1"
        });
        let got = all_output(&d.logs, "z.log");
        if !plain_old && got.len() >= want.len() {
            assert!(got == want, "lines lost or doubled");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} bytes",
            got.len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(d.logs.join("z.log.2.gz").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(d.logs.join("z.log.2.gz"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn an_unflushed_python_print_reaches_the_log_while_the_job_runs() {
    let job = "script\n  exec python3 -c '\nimport sys, time\nprint(\"ready\", \"tty\" if sys.stdout.isatty() else \"pipe\")\ntime.sleep(1000)\n'\nend script\n";
    let d = Daemon::with_jobs(&[("py", job)]);
    d.ok(&["start", "py"]);
    let text = d.wait_log_file("py.log", "ready");
    assert_eq!(text, "ready tty\n", "a terminal, and \\n line ends");
    assert_eq!(d.status(&["py"])["state"], "running");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(d.logs.join("py.log")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn pipe_mode_is_a_pipe() {
    let d = Daemon::with_jobs(&[(
        "p",
        "log pipe\ntask\nexec sh -c 'test -t 1 && echo tty || echo pipe'\n",
    )]);
    d.ok(&["start", "p"]);
    assert_eq!(d.wait_log_file("p.log", "\n"), "pipe\n");
}

#[test]
fn a_full_disk_is_survived_and_the_loss_counted() {
    // Lines until told to stop, then more once the file is replaced.
    let job = "log size unlimited\nscript\n  i=0\n  while [ ! -e @DIR@/go ]; do i=$((i+1)); echo \"before $i\"; [ $i -ge 6000 ] && sleep 0.01; done\n  echo after-one\n  echo after-two\n  sleep 1000\nend script\n";
    let d = Daemon::builder()
        .job("full", job)
        .fsize_limit(32 * 1024)
        .start();
    d.ok(&["start", "full"]);
    let path = d.logs.join("full.log");
    // The file stops at the limit and the daemon goes on.
    d.wait_log("full.log: unable to write: File too large");
    assert!(fs::metadata(&path).unwrap().len() <= 32 * 1024);
    assert_eq!(d.status(&["full"])["state"], "running");
    // Room again (the file is moved away, as logrotate would): the next
    // line says what was lost, and output goes on.
    fs::rename(&path, d.logs.join("full.log.old")).unwrap();
    fs::write(d.dir.path().join("go"), "").unwrap();
    let text = d.wait_log_file("full.log", "after-two");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("[upkeep: ")
            && first.ends_with(" bytes of output were lost: File too large]"),
        "{text}"
    );
    let n: u64 = first["[upkeep: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0);
    assert!(text.ends_with("after-one\nafter-two\n"), "{text}");
}

#[test]
fn a_deleted_log_file_is_recreated_and_reopen_logs_works() {
    let job = "script\n  while true; do echo tick; sleep 0.05; done\nend script\n";
    let mut d = Daemon::with_jobs_and_canary(&[("t", job)]);
    d.ok(&["start", "t"]);
    d.wait_log_file("t.log", "tick");
    fs::remove_file(d.logs.join("t.log")).unwrap();
    d.wait_log_file("t.log", "tick");
    d.ok(&["reopen-logs"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    d.wait_log("SIGUSR1: reopening log files");
    fs::rename(d.logs.join("t.log"), d.logs.join("t.log.moved")).unwrap();
    d.wait_log_file("t.log", "tick");
    d.assert_canary();
}

#[test]
fn hostile_instance_names_stay_inside_the_log_dir() {
    let mut d = Daemon::with_jobs_and_canary(&[("j", "instance $N\ntask\nexec echo hello\n")]);
    d.ok(&["start", "j", "N=../../etc/x"]);
    d.ok(&["start", "j", "N=a/b"]);
    let names: Vec<String> = fs::read_dir(&d.logs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // Escaped, one to one (README: "Deliberate differences").
    assert!(
        names.contains(&"j%%..%2F..%2Fetc%2Fx.log".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"j%%a%2Fb.log".to_string()), "{names:?}");
    assert!(!d.dir.path().join("etc").exists());
    d.assert_canary();
}

#[test]
fn binary_output_and_a_ten_megabyte_line_arrive_intact() {
    let job = "task\nscript\n  head -c 1048576 /dev/urandom > @DIR@/random\n  cat @DIR@/random\n  head -c 10485760 /dev/zero | tr '\\0' x\n  echo\n  echo end\nend script\n";
    let mut d = Daemon::with_jobs_and_canary(&[("bin", job)]);
    d.ok(&["start", "bin"]);
    let deadline = Instant::now() + DEADLINE;
    let text = loop {
        let t = fs::read(d.logs.join("bin.log")).unwrap_or_default();
        if t.ends_with(b"\nend\n") {
            break t;
        }
        assert!(Instant::now() < deadline, "only {} bytes", t.len());
        std::thread::sleep(Duration::from_millis(20));
    };
    let random = fs::read(d.dir.path().join("random")).unwrap();
    assert_eq!(
        &text[..random.len()],
        &random[..],
        "binary bytes changed on the way"
    );
    let rest = &text[random.len()..];
    assert_eq!(rest.len(), 10_485_760 + 5);
    assert!(rest[..10_485_760].iter().all(|&b| b == b'x'));
    d.assert_canary();
}

#[test]
fn logs_shows_the_tail_and_the_daemon_has_its_own_log() {
    let d = Daemon::with_jobs(&[("t", "task\nexec seq 1 100\n")]);
    d.ok(&["start", "t"]);
    d.wait_log_file("t.log", "100\n");
    assert_eq!(d.ok(&["logs", "t", "-n", "3"]), "98\n99\n100\n");
    assert_eq!(d.ok(&["logs", "t"]).lines().count(), 10);
    let own = fs::read_to_string(d.logs.join("upkeep@daemon.log")).unwrap();
    assert!(own.contains("t main process"), "{own}");
}

#[test]
fn log_to_stdout_prefixes_each_line_with_the_job() {
    let d = Daemon::builder()
        .job("say", "task\nexec sh -c 'echo one; echo two'\n")
        .flag("--log-to-stdout")
        .capture_stdout()
        .start();
    d.ok(&["start", "say"]);
    let text = d.wait_stdout(|t| t.contains("say: two\n"));
    assert!(text.contains("say: one\nsay: two\n"));
    // The plain format is the default for the daemon's own messages too.
    assert!(d
        .wait_log("listening on")
        .starts_with("upkeep: listening on"));
}

#[test]
fn logs_follow_goes_on_across_rotations() {
    let job = "log size 2K\nlog compress no\nscript\n  i=0\n  while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.01; done\nend script\n";
    let d = Daemon::with_jobs(&[("f", job)]);
    d.ok(&["start", "f"]);
    d.wait_log_file("f.log", "tick 1\n");
    let mut follower = std::process::Command::new(common::upkeep_bin())
        .args(["logs", "f", "-f", "-n", "1"])
        .env("UPKEEP_SOCKET", &d.socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    // Two kilobytes hold about 250 ticks: tick 600 is in a later file.
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("logs -f went quiet");
        let n: u64 = line.trim_start_matches("tick ").parse().unwrap_or(0);
        seen.push(n);
        if n >= 600 {
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(d.logs.join("f.log.2").exists(), "rotated twice or more");
    // Consecutive, with nothing missed at the rotations.
    for w in seen.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap in what logs -f printed: {w:?}");
    }
}

#[test]
fn daemon_flags_set_the_log_defaults() {
    let job = "task\nexec seq 1 2000\n";
    let d = Daemon::builder()
        .job("s", job)
        .flag("--log-size")
        .flag("1K")
        .flag("--log-compress")
        .flag("no")
        .flag("--log-keep")
        .flag("3")
        .start();
    d.ok(&["start", "s"]);
    d.wait_log_file("s.log", "2000\n");
    assert!(d.logs.join("s.log.3").exists());
    assert!(!d.logs.join("s.log.4").exists(), "keep 3");
    assert!(!d.logs.join("s.log.2.gz").exists(), "compress no");
}

#[test]
fn the_daemons_own_log_rotates_and_compresses_like_a_jobs() {
    // A small cap and a chatty daemon (-v logs every state change).
    let d = Daemon::builder()
        .job("t", "task\nexec true\n")
        .flag("--log-size")
        .flag("1K")
        .start();
    for _ in 0..20 {
        d.ok(&["start", "t"]);
    }
    let deadline = Instant::now() + DEADLINE;
    while !d.logs.join("upkeep@daemon.log.2.gz").exists() {
        assert!(
            Instant::now() < deadline,
            "no compressed rotation of the daemon log"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
