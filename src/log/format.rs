//! How the daemon writes lines to its own stdout and stderr
//! (`--log-format`): the plain format (`JOB: line`, `upkeep: message`),
//! or one JSON object a line, which cluster log collectors parse into
//! fields (`docs/json.md`, "Log lines").
//!
//! A job line: `{"time":"2026-12-05T17:10:00.123Z","job":"web",
//! "instance":"","line":"…"}`, with `"lossy":true` when the line was not
//! UTF-8 (each bad byte became U+FFFD). A daemon message:
//! `{"time":"…","source":"upkeep","message":"…"}`. Times are UTC, in
//! RFC 3339 with milliseconds. No `stream` field: a job's stdout and
//! stderr share one pty or pipe, so which one a line came from is not
//! known.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

/// The format of the daemon's stdout and stderr lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Plain,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "plain" => Some(Format::Plain),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The daemon's messages are JSON (set once, at start).
static DAEMON_JSON: AtomicBool = AtomicBool::new(false);

/// Sets the format of the daemon's own messages on stderr.
pub fn set_daemon_format(f: Format) {
    DAEMON_JSON.store(f == Format::Json, Ordering::Relaxed);
}

/// A daemon message as stderr shows it (without the newline).
pub fn daemon_line(msg: &str, now: SystemTime) -> String {
    if DAEMON_JSON.load(Ordering::Relaxed) {
        json!({ "time": rfc3339(now), "source": "upkeep", "message": msg }).to_string()
    } else {
        format!("upkeep: {msg}")
    }
}

/// Says a daemon message on stderr.
pub fn say(msg: &str) {
    eprintln!("{}", daemon_line(msg, SystemTime::now()));
}

/// One whole line of a job's output (its `\n` included, if any) as the
/// daemon's stdout shows it, newline-terminated. `label` is the plain
/// format's prefix.
pub fn job_line(
    format: Format,
    now: SystemTime,
    (label, job, instance): (&str, &str, &str),
    line: &[u8],
    out: &mut Vec<u8>,
) {
    match format {
        Format::Plain => {
            out.extend_from_slice(label.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(line);
        }
        Format::Json => {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            let text = String::from_utf8_lossy(body);
            let mut v = json!({
                "time": rfc3339(now),
                "job": job,
                "instance": instance,
                "line": text,
            });
            if matches!(text, std::borrow::Cow::Owned(_)) {
                v["lossy"] = json!(true);
            }
            out.extend_from_slice(v.to_string().as_bytes());
            out.push(b'\n');
        }
    }
}

/// `2026-12-05T17:10:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_796_476_443, 123)), "2026-12-05T13:14:03.123Z");
        assert_eq!(rfc3339(at(4_102_444_799, 999)), "2099-12-31T23:59:59.999Z");
    }

    fn json_of(line: &[u8]) -> serde_json::Value {
        let mut out = Vec::new();
        job_line(
            Format::Json,
            at(0, 0),
            ("web (a)", "web", "a"),
            line,
            &mut out,
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_job_line_is_one_json_object_with_its_fields() {
        let v = json_of(b"say \"hi\"\t\x1b[31m \\ done\r\n");
        assert_eq!(v["job"], "web");
        assert_eq!(v["instance"], "a");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["line"], "say \"hi\"\t\x1b[31m \\ done");
        assert!(v.get("lossy").is_none());
        assert!(v.get("stream").is_none());
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        let v = json_of(b"caf\xe9 \xff\n");
        assert_eq!(v["line"], "caf\u{fffd} \u{fffd}");
        assert_eq!(v["lossy"], true);
    }

    #[test]
    fn the_plain_format_is_the_label_and_the_line() {
        let mut out = Vec::new();
        job_line(
            Format::Plain,
            at(0, 0),
            ("web (a)", "web", "a"),
            b"x\n",
            &mut out,
        );
        assert_eq!(out, b"web (a): x\n");
    }
}
