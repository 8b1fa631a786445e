//! `--log-format json`: job lines on the daemon's stdout and its own
//! messages on stderr, one JSON object a line that a log collector parses.

mod common;

use common::daemon::Daemon;
use serde_json::Value;

/// The daemon's stdout as JSON objects, once `n` lines came.
fn stdout_objects(d: &Daemon, n: usize) -> Vec<Value> {
    d.wait_stdout(|t| t.lines().count() >= n)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

#[test]
fn job_lines_and_daemon_messages_are_json_objects() {
    let d = Daemon::builder()
        .job(
            "greeter",
            "instance $WHO\ntask\nexec printf 'hello \"%s\"\\n\\377 caf\\351\\nno newline' \"$WHO\"\n",
        )
        .flag("--log-to-stdout")
        .flag("--log-format")
        .flag("json")
        .capture_stdout()
        .start();
    d.ok(&["start", "greeter", "WHO=a b"]);
    let lines = stdout_objects(&d, 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for v in &lines {
        assert_eq!(v["job"], "greeter");
        assert_eq!(v["instance"], "a b");
        let t = v["time"].as_str().unwrap();
        assert!(
            t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
    assert_eq!(lines[0]["line"], "hello \"a b\"");
    assert!(lines[0].get("lossy").is_none());
    assert_eq!(lines[1]["line"], "\u{fffd} caf\u{fffd}");
    assert_eq!(lines[1]["lossy"], true);
    assert_eq!(
        lines[2]["line"], "no newline",
        "an unfinished last line is still a line"
    );
    // The daemon's own messages on stderr.
    let listening = d.wait_log("listening on");
    let v: Value =
        serde_json::from_str(&listening).unwrap_or_else(|e| panic!("not JSON ({e}): {listening}"));
    assert_eq!(v["source"], "upkeep");
    assert!(v["message"].as_str().unwrap().starts_with("listening on "));
    for l in d.log_lines() {
        serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
}

/// Whether `line` is `TIME TEXT`, TIME in RFC 3339 UTC with milliseconds.
fn stamped(line: &str, text: &str) -> bool {
    let Some((t, rest)) = line.split_once(' ') else {
        return false;
    };
    rest == text && t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T'
}

#[test]
fn log_timestamps_start_each_line_of_the_file_with_its_time() {
    let d = Daemon::builder()
        .job(
            "stamped",
            "log timestamps yes\ntask\nexec printf 'one\\ntw'\n",
        )
        .job("flagged", "task\nexec printf 'a\\nb\\n'\n")
        .job("plain", "log timestamps no\ntask\nexec printf 'x\\n'\n")
        .flag("--log-timestamps")
        .flag("yes")
        .start();
    d.ok(&["start", "stamped"]);
    d.ok(&["start", "flagged"]);
    d.ok(&["start", "plain"]);
    let text = d.wait_log_file("stamped.log", "tw\n");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        stamped(lines[0], "one") && stamped(lines[1], "tw"),
        "{text:?}"
    );
    let text = d.wait_log_file("flagged.log", "b\n");
    assert!(
        text.lines().zip(["a", "b"]).all(|(l, t)| stamped(l, t)),
        "{text:?}"
    );
    assert_eq!(d.wait_log_file("plain.log", "x\n"), "x\n");
}
