//! `upkeep monitor [--json] [JOB]...`: what happens, as it happens (as
//! Upstart's `upstart-monitor`): events, state changes, exits, respawns,
//! failures, conf reloads and file errors, one line each with a time
//! stamp; `--json` prints the daemon's objects as they come
//! (`docs/json.md`). A reader too slow for the daemon is dropped, told how
//! much it missed, and ends with status 1.

use std::io::BufRead;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::{out, Call};
use crate::control::{client, one_line, Command};

pub(super) fn run(call: &Call) -> i32 {
    let (prog, args) = (call.prog, &call.args);
    let json = args.flag("json");
    let jobs: Vec<String> = args
        .positional
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let mut reader = match client::subscribe(&args.socket(), Command::Monitor { jobs }) {
        Ok(r) => r,
        Err(e) => {
            prog.error(e);
            return 1;
        }
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => {
                prog.error("the daemon closed the connection");
                return 1;
            }
            Ok(_) => {}
            Err(e) => {
                prog.error(format!("unable to read from the daemon: {e}"));
                return 1;
            }
        }
        let Ok(entry) = serde_json::from_slice::<Value>(&line) else {
            prog.error("unreadable entry from the daemon");
            return 1;
        };
        if json {
            out(&String::from_utf8_lossy(&line));
        } else {
            out(&format!("{}\n", text(&entry)));
        }
        if entry["type"] == "missed" {
            prog.error(format!(
                "reading too slowly: dropped by the daemon after missing {} entries",
                entry["count"]
            ));
            return 1;
        }
    }
}

/// One entry as a line: `2026-12-05 08:01:02.123 web: starting -> running
/// (goal start, pid 123)`.
fn text(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().map(one_line).unwrap_or_default();
    let at = e["at"].as_f64().unwrap_or(0.0).max(0.0);
    let when = UNIX_EPOCH + Duration::from_secs_f64(at);
    let stamp = format!(
        "{}.{:03}",
        crate::process::time::timestamp(when),
        (at.fract() * 1000.0) as u32
    );
    let who = if s("instance").is_empty() {
        s("job")
    } else {
        format!("{} ({})", s("job"), s("instance"))
    };
    let what = match e["type"].as_str().unwrap_or("") {
        "event" => {
            let mut l = format!("event {}", s("event"));
            for v in e["env"].as_array().into_iter().flatten() {
                l.push(' ');
                l.push_str(&one_line(v.as_str().unwrap_or("")));
            }
            l
        }
        "state" => {
            let pid = e["pid"]
                .as_i64()
                .map_or(String::new(), |p| format!(", pid {p}"));
            format!(
                "{who}: {} -> {} (goal {}{pid})",
                s("from"),
                s("to"),
                s("goal")
            )
        }
        "exit" => {
            let how = match (e["status"].as_i64(), e["signal"].as_str()) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                (None, None) => "ended".to_string(),
            };
            format!("{who}: {} process ({}) {how}", s("process"), e["pid"])
        }
        "respawn" => format!("{who}: respawning (respawn {})", e["respawns"]),
        "failure" => format!("{who}: failed: {} ({})", s("message"), s("kind")),
        "health" => match e["error"].as_str() {
            Some(err) => format!(
                "{who}: {} probe: {} ({})",
                s("probe"),
                s("state"),
                one_line(err)
            ),
            None => format!("{who}: {} probe: {}", s("probe"), s("state")),
        },
        "reload" => format!(
            "configuration reloaded: {} jobs, {} with file errors",
            e["jobs"], e["broken"]
        ),
        "file-error" => format!("{}: job file has errors: {}", s("job"), s("error")),
        "missed" => format!("missed {} entries: reading too slowly", e["count"]),
        other => format!("{} {}", one_line(other), e),
    };
    format!("{stamp} {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_as_lines() {
        let e = serde_json::json!({"v":1,"at":0.25,"type":"state","job":"web","instance":"",
            "goal":"start","from":"starting","to":"running","pid":12});
        assert!(
            text(&e).ends_with(".250 web: starting -> running (goal start, pid 12)"),
            "{}",
            text(&e)
        );
        let e = serde_json::json!({"v":1,"at":0.0,"type":"exit","job":"web","instance":"a\nb",
            "process":"main","pid":12,"status":null,"signal":"KILL"});
        assert!(
            text(&e).ends_with(" web (a\\nb): main process (12) was killed by signal KILL"),
            "{}",
            text(&e)
        );
    }
}
