//! `check-config` and `show-config` through the real binary, on real files
//! in temp dirs: diagnostics, conf-dir rules, hostile input, and the
//! multi-call names.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn upkeep(args: &[&str]) -> Output {
    Command::new(common::upkeep_bin())
        .args(args)
        .env_remove("UPKEEP_SOCKET")
        .output()
        .expect("run upkeep")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn check(dir: &Path) -> Output {
    upkeep(&["check-config", "--conf-dir", dir.to_str().unwrap()])
}

#[test]
fn clean_dir_is_silent_and_exits_zero() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "db.conf",
        "start on startup\nemits db-ready\nexec sleep 1\n",
    );
    write(
        d.path(),
        "web.conf",
        "start on started db and db-ready\nstop on runlevel [016]\nrespawn\nexec sleep 1\n",
    );
    let o = check(d.path());
    assert_eq!(stdout(&o), "");
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
}

#[test]
fn every_error_is_printed_with_path_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "bad.conf",
        "description \"x\"\nexce /bin/true\nnice 40\nstart on a or\n",
    );
    write(d.path(), "good.conf", "exec /bin/true\n");
    let o = check(d.path());
    let p = d.path().join("bad.conf");
    let p = p.display();
    assert_eq!(
        stdout(&o),
        format!(
            "{p}:2:1: Unknown stanza\n{p}:3:6: Illegal nice value, expected -20 to 19\n{p}:4:12: Expected event\n"
        )
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn unknown_events_and_jobs_are_reported_as_upstart_did() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "foo.conf",
        "start on started grape or custom-thing\nstop on peach\n",
    );
    write(d.path(), "emitter.conf", "emits custom-*\n");
    let dir = d.path().to_str().unwrap();
    // `custom-thing` satisfies the `or`, so its other branch is no
    // problem, as in Upstart 1.13; `peach` alone cannot be satisfied.
    let o = check(d.path());
    assert_eq!(stdout(&o), "foo\n  stop on: unknown event peach\n");
    assert_eq!(o.status.code(), Some(1));
    // --warn reports every unknown name.
    let o = upkeep(&["check-config", "--conf-dir", dir, "--warn"]);
    assert_eq!(
        stdout(&o),
        "foo\n  start on: unknown job grape\n  stop on: unknown event peach\n"
    );
    assert_eq!(o.status.code(), Some(1));
    // -i names events that come from elsewhere.
    let o = upkeep(&["check-config", "--conf-dir", dir, "-w", "-i", "peach,grape"]);
    assert_eq!(stdout(&o), "foo\n  start on: unknown job grape\n");
    let o = upkeep(&["check-config", "--conf-dir", dir, "-i", "peach"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(0)));
}

#[test]
fn an_or_that_one_branch_satisfies_is_clean_without_warn() {
    let d = tempfile::tempdir().unwrap();
    // As Ubuntu's stock jobs say it; no job here is rc-sysinit.
    write(
        d.path(),
        "net.conf",
        "start on runlevel [2345] and (starting a or started nowhere)\nstop on static-network-up or starting rc-sysinit\n",
    );
    write(d.path(), "a.conf", "exec sleep 1\n");
    let dir = d.path().to_str().unwrap();
    let o = check(d.path());
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(0)));
    let o = upkeep(&["check-config", "--conf-dir", dir, "--warn"]);
    assert_eq!(
        stdout(&o),
        "net\n  start on: unknown job nowhere\n  stop on: unknown job rc-sysinit\n"
    );
    assert_eq!(o.status.code(), Some(1));
    // An `and` needs both sides.
    write(
        d.path(),
        "b.conf",
        "start on started a and started nowhere\n",
    );
    let o = check(d.path());
    assert_eq!(stdout(&o), "b\n  start on: unknown job nowhere\n");
}

#[test]
fn a_job_can_be_named_by_name_or_path() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.conf", "start on nothing-emits-this\n");
    write(d.path(), "b.conf", "exec /bin/true\n");
    let dir = d.path().to_str().unwrap();
    let o = upkeep(&["check-config", "--conf-dir", dir, "b"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(0)));
    let o = upkeep(&["check-config", "--conf-dir", dir, "a"]);
    assert_eq!(
        stdout(&o),
        "a\n  start on: unknown event nothing-emits-this\n"
    );
    let o = upkeep(&["check-config", "--conf-dir", dir, "nope"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("Invalid job class: nope\n", Some(1))
    );
    let file = d.path().join("b.conf");
    let o = upkeep(&["check-config", "--conf-dir", dir, file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn nested_dirs_name_jobs_by_path_and_first_dir_wins() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    write(d1.path(), "web/api.conf", "exec /bin/one\n");
    write(d2.path(), "web/api.conf", "exec /bin/two\n");
    write(d2.path(), "other.conf", "exec /bin/other\n");
    write(d1.path(), ".git/x.conf", "this is not a job\n");
    let o = upkeep(&[
        "show-config",
        "--conf-dir",
        d1.path().to_str().unwrap(),
        "--conf-dir",
        d2.path().to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.contains("# web/api: "), "{out}");
    assert!(out.contains("exec /bin/one"), "{out}");
    assert!(!out.contains("exec /bin/two"), "{out}");
    assert!(out.contains("# other: "), "{out}");
}

#[test]
fn overrides_merge_all_or_nothing() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "svc.conf",
        "start on startup\nenv A=1\nexec /bin/svc\n",
    );
    write(d.path(), "svc.override", "manual\nenv A=2\n");
    write(d.path(), "bad.conf", "exec /bin/bad\n");
    write(d.path(), "bad.override", "nice 5\nbogus\n");
    write(d.path(), "orphan.override", "manual\n");
    let dir = d.path().to_str().unwrap();
    let o = upkeep(&["show-config", "--conf-dir", dir, "--json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bad", "svc"], "an override with no .conf is no job");
    let svc = &jobs[1];
    assert_eq!(svc["start_on"], serde_json::Value::Null);
    assert_eq!(svc["env"], serde_json::json!(["A=1", "A=2"]));
    let bad = &jobs[0];
    assert_eq!(
        bad["nice"],
        serde_json::Value::Null,
        "nothing of a broken override applies"
    );
    assert!(
        stderr(&o).contains("bad.override:2:1: Unknown stanza"),
        "{}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn show_config_output_is_a_valid_job_file() {
    let d = tempfile::tempdir().unwrap();
    let text = "description \"a 'quoted' \\\"thing\\\"\"\nstart on (a and b X=\"1 2\") or c\ninstance $N\nnormal exit 0 TERM\nlimit nofile 10 unlimited\nenv A=\"x y\"\npre-start script\n  echo \"pre\" # c\nend script\nexec /bin/x \"a b\"\n";
    write(d.path(), "j.conf", text);
    let o = upkeep(&["show-config", d.path().join("j.conf").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed = stdout(&o);
    let want = upkeep::conf::parse_job("j", text.as_bytes()).unwrap();
    let got = upkeep::conf::parse_job("j", printed.as_bytes()).unwrap();
    assert_eq!(got, want, "{printed}");
}

#[test]
fn hostile_files_get_clear_errors_in_bounded_time() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // Binary garbage.
    fs::write(
        p.join("garbage.conf"),
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    // Not UTF-8, but no NUL.
    fs::write(p.join("latin1.conf"), b"description \"caf\xe9\"\n").unwrap();
    // 100 MB, sparse: refused unread.
    fs::File::create(p.join("huge.conf"))
        .unwrap()
        .set_len(100_000_000)
        .unwrap();
    // One line of 1 MB.
    write(
        p,
        "longline.conf",
        &format!("description {}\n", "x".repeat(1_000_000)),
    );
    // Deep parentheses.
    write(
        p,
        "deep.conf",
        &format!("start on {}a{}\n", "(".repeat(100_000), ")".repeat(100_000)),
    );
    // An expression of a million operands.
    write(
        p,
        "wide.conf",
        &format!("start on a{}\n", " or a".repeat(150_000)),
    );
    // Links and odd files.
    symlink("loop2.conf", p.join("loop1.conf")).unwrap();
    symlink("loop1.conf", p.join("loop2.conf")).unwrap();
    symlink("nowhere.conf", p.join("dangling.conf")).unwrap();
    fs::create_dir(p.join("dir.conf")).unwrap();
    write(p, "dir.conf/inner.conf", "exec /bin/true\n");
    nix_mkfifo(&p.join("fifo.conf"));
    symlink(p, p.join("self")).unwrap();

    // Bounded: a FIFO opened for reading, or a million operands handled
    // badly, would never end. The deadline only catches such a hang; how
    // fast it goes is the benchmark's business.
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = p.to_path_buf();
    std::thread::spawn(move || tx.send(check(&dir)));
    let o = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("check-config hung on the hostile dir");
    let out = stdout(&o);
    let has = |needle: String| assert!(out.contains(&needle), "missing {needle:?} in:\n{out}");
    let at = |name: &str| p.join(name).display().to_string();
    has(format!("{}:1:", at("garbage.conf")));
    has(format!("{}:1:17: Invalid UTF-8", at("latin1.conf")));
    has(format!(
        "{}: file too large (100000000 bytes",
        at("huge.conf")
    ));
    has(format!(
        "{}:1:74: Parentheses nested too deeply (the limit is 64)",
        at("deep.conf")
    ));
    has(format!("{}:1:", at("wide.conf")));
    has("Expression too long (the limit is 1024 events)".to_string());
    has(format!("{}: symlink loop; skipped", at("loop1.conf")));
    has(format!(
        "{}: dangling symlink; skipped",
        at("dangling.conf")
    ));
    has(format!("{}: not a regular file; skipped", at("fifo.conf")));
    has(format!(
        "{}: directory already walked (a symlink loop?); skipped",
        at("self")
    ));
    assert!(
        !out.contains("longline.conf"),
        "a long line is fine:\n{out}"
    );
    assert!(
        !out.contains("inner.conf"),
        "a dir named x.conf is walked:\n{out}"
    );
    assert_eq!(o.status.code(), Some(1));
}

fn nix_mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

#[test]
fn multi_call_names_and_unbuilt_commands() {
    let d = tempfile::tempdir().unwrap();
    let initctl = d.path().join("initctl");
    symlink(common::upkeep_bin(), &initctl).unwrap();
    let o = Command::new(&initctl).arg("version").output().unwrap();
    assert_eq!(
        stdout(&o),
        format!("init (upkeep {})\n", env!("CARGO_PKG_VERSION"))
    );
    write(d.path(), "conf/x.conf", "exce\n");
    let o = Command::new(&initctl)
        .args([
            "check-config",
            "--conf-dir",
            d.path().join("conf").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).ends_with("x.conf:1:1: Unknown stanza\n"),
        "{}",
        stdout(&o)
    );

    // Under the name `start`, the binary is the start command.
    let start = d.path().join("start");
    symlink(common::upkeep_bin(), &start).unwrap();
    let sock = d.path().join("no-daemon.sock");
    let o = Command::new(&start)
        .args(["web", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("start: unable to connect to the upkeep daemon at"),
        "{err}"
    );

    let o = upkeep(&["logs", "web", "--socket", sock.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "no daemon: an error, not silence");

    // A runlevel change is not built: it says so.
    let telinit = d.path().join("telinit");
    symlink(common::upkeep_bin(), &telinit).unwrap();
    let o = Command::new(&telinit).arg("2").output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unbuilt command must not pretend to work"
    );
    assert!(stderr(&o).contains("not built yet"), "{}", stderr(&o));
    // re-exec is built: with no daemon it fails to connect.
    let o = upkeep(&["re-exec", "--socket", sock.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unable to connect"), "{}", stderr(&o));

    let o = upkeep(&["--version"]);
    assert_eq!(
        stdout(&o),
        format!("upkeep {}\n", env!("CARGO_PKG_VERSION"))
    );
    let o = upkeep(&["--help"]);
    assert!(stdout(&o).contains("check-config"));
    let o = upkeep(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}
