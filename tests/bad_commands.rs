//! Bad commands and bad requests: clear errors, and the daemon goes on.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use common::daemon::Daemon;

#[test]
fn a_missing_binary_fails_the_job_not_the_daemon() {
    let mut d = Daemon::with_jobs_and_canary(&[("nobin", "exec /nonexistent/program --flag\n")]);
    let canary = d.main_pid("canary");
    assert_eq!(
        d.fails(&["start", "nobin"]),
        "upkeep: Job failed to start: main process failed to spawn: unable to execute: No such file or directory\n"
    );
    d.wait_log("Failed to spawn nobin main process: unable to execute: No such file or directory");
    assert_eq!(d.main_pid("canary"), canary, "the canary was disturbed");
    d.assert_canary();
}

#[test]
fn upstart_error_texts() {
    let d = Daemon::with_jobs(&[
        ("j", "exec sleep 1000\n"),
        ("nomain", "pre-start exec true\n"),
    ]);
    assert_eq!(d.fails(&["start", "nope"]), "upkeep: Unknown job: nope\n");
    assert_eq!(d.fails(&["stop", "j"]), "upkeep: Unknown instance: \n");
    assert_eq!(d.fails(&["restart", "j"]), "upkeep: Unknown instance: \n");
    assert_eq!(d.fails(&["reload", "j"]), "upkeep: Unknown instance: \n");
    d.ok(&["start", "j"]);
    assert_eq!(
        d.fails(&["start", "j"]),
        "upkeep: Job is already running: j\n"
    );
    assert_eq!(d.ok(&["start", "nomain"]), "nomain start/running\n");
    assert_eq!(
        d.fails(&["reload", "nomain"]),
        "upkeep: Job is not running: nomain\n"
    );
    assert_eq!(
        d.fails(&["start", "j", "NOTANASSIGNMENT"]),
        "upkeep: Env must be KEY=VALUE pairs\n"
    );
    d.ok(&["reload", "j"]);
}

fn raw(d: &Daemon, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(bytes).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn malformed_oversized_and_binary_requests_get_errors() {
    let mut d = Daemon::with_jobs_and_canary(&[]);
    assert!(raw(&d, b"this is not json\n").contains("\"result\":\"error\""));
    assert!(raw(&d, b"\x00\xff\xfe\n").contains("Malformed request"));
    assert!(raw(&d, b"{\"v\":9,\"cmd\":\"list\"}\n").contains("Unsupported protocol version"));
    let mut huge = vec![b'x'; 200 * 1024];
    huge.push(b'\n');
    assert!(raw(&d, &huge).contains("Request too long"));
    // An endless line with no newline is cut off, not buffered forever.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let chunk = vec![b'y'; 64 * 1024];
    let mut answer = String::new();
    for _ in 0..64 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = BufReader::new(&s).read_line(&mut answer);
    assert!(answer.contains("Request too long"), "{answer}");
    // Several requests on one connection are answered in order.
    let two = raw(
        &d,
        b"{\"v\":1,\"cmd\":\"status\",\"job\":\"canary\"}\n{\"v\":1,\"cmd\":\"list\"}\n",
    );
    assert!(two.contains("canary"));
    assert!(d
        .ok(&["status", "canary"])
        .starts_with("canary start/running"));
    d.assert_canary();
}
