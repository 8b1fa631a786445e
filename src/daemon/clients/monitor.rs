//! Subscribers (`upkeep monitor`): clients that asked to be told what
//! happens, one JSON object a line (`docs/json.md`): events emitted, job
//! state changes, exits, respawns, failures, conf reloads and file errors.
//!
//! Each subscriber has a bounded buffer ([`SUB_BUFFER`]). A reader that
//! falls behind is never waited for: what does not fit is counted, and at
//! the end of the loop turn the reader gets a final `missed` line (room for
//! it is kept in the buffer, [`RESERVE`]) and is closed once that is
//! written. Read authority is `status`'s: anyone may subscribe, and an
//! event's environment goes only to root and the daemon's user. With no
//! subscriber nothing is built: the job table makes news only while
//! someone watches.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Clients, MAX_OUTPUT_PER_UID};
use crate::control::{Response, JSON_VERSION};
use crate::daemon::reactor::Reactor;
use crate::daemon::Key;
use crate::job::Exit;

/// A subscriber's buffer: what it has not read yet may not exceed this.
pub const SUB_BUFFER: usize = 256 * 1024;
/// Room kept in the buffer for the final `missed` line.
pub const RESERVE: usize = 128;
/// At most this many jobs named in one subscription.
pub const MAX_JOBS: usize = 256;

/// Something that happened, for the subscribers.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::daemon) enum News {
    Event {
        name: String,
        env: Vec<String>,
    },
    State {
        key: Key,
        goal: &'static str,
        from: &'static str,
        to: &'static str,
        pid: Option<i32>,
    },
    Exit {
        key: Key,
        process: &'static str,
        pid: i32,
        exit: Exit,
    },
    Respawn {
        key: Key,
        respawns: u64,
    },
    Failure {
        key: Key,
        kind: &'static str,
        message: String,
    },
    Reload {
        jobs: usize,
        broken: usize,
    },
    FileError {
        job: String,
        error: String,
    },
    /// A probe's verdict: `ready`, `healthy` or `unhealthy` (with why).
    Health {
        key: Key,
        probe: &'static str,
        state: &'static str,
        error: Option<String>,
    },
}

impl News {
    /// The job it concerns (an event's `JOB`), for filters.
    fn job(&self) -> Option<&str> {
        match self {
            News::Event { env, .. } => env.iter().find_map(|e| e.strip_prefix("JOB=")),
            News::State { key, .. }
            | News::Exit { key, .. }
            | News::Respawn { key, .. }
            | News::Failure { key, .. }
            | News::Health { key, .. } => Some(&key.0),
            News::FileError { job, .. } => Some(job),
            News::Reload { .. } => None,
        }
    }

    /// The JSON line; an event's environment only when `env` is true.
    fn json(&self, at: f64, env: bool) -> Value {
        let instance = |key: &Key, mut v: Value| {
            v["job"] = json!(key.0);
            v["instance"] = json!(key.1);
            v
        };
        let mut v = match self {
            News::Event { name, env: vars } => {
                let mut v = json!({ "type": "event", "event": name });
                if env {
                    v["env"] = json!(vars);
                }
                v
            }
            News::State {
                key,
                goal,
                from,
                to,
                pid,
            } => instance(
                key,
                json!({ "type": "state", "goal": goal, "from": from, "to": to, "pid": pid }),
            ),
            News::Exit {
                key,
                process,
                pid,
                exit,
            } => {
                let (status, signal) = match exit {
                    Exit::Code(c) => (Some(*c), None),
                    Exit::Signal(s) => (None, Some(crate::conf::signal::display(*s))),
                    Exit::Unknown => (None, None),
                };
                instance(
                    key,
                    json!({ "type": "exit", "process": process, "pid": pid, "status": status, "signal": signal }),
                )
            }
            News::Respawn { key, respawns } => {
                instance(key, json!({ "type": "respawn", "respawns": respawns }))
            }
            News::Failure { key, kind, message } => instance(
                key,
                json!({ "type": "failure", "kind": kind, "message": message }),
            ),
            News::Health {
                key,
                probe,
                state,
                error,
            } => instance(
                key,
                json!({ "type": "health", "probe": probe, "state": state, "error": error }),
            ),
            News::Reload { jobs, broken } => {
                json!({ "type": "reload", "jobs": jobs, "broken": broken })
            }
            News::FileError { job, error } => {
                json!({ "type": "file-error", "job": job, "error": error })
            }
        };
        v["v"] = json!(JSON_VERSION);
        v["at"] = json!(at);
        v
    }
}

/// What a subscriber asked for and how it keeps up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Sub {
    /// Root or the daemon's user: sees event environments.
    privileged: bool,
    /// Only these jobs (and their events); empty: everything.
    jobs: Vec<String>,
    /// Entries that did not fit; the reader is dropped at the end of the
    /// loop turn.
    missed: u64,
}

fn line(v: &Value) -> Vec<u8> {
    let mut l = v.to_string().into_bytes();
    l.push(b'\n');
    l
}

fn now() -> f64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_millis() as f64) / 1000.0
}

impl Clients {
    /// Whether anyone subscribes (the job table makes news only then).
    pub fn watching(&self) -> bool {
        self.subscribers > 0
    }

    /// Makes a client a subscriber: answered `ok` now, then told what
    /// happens until it goes (or falls behind).
    pub fn subscribe(&mut self, token: usize, jobs: Vec<String>, reactor: &Reactor) {
        if jobs.len() > MAX_JOBS {
            let message = format!("Too many jobs (the limit is {MAX_JOBS})");
            self.send(token, &Response::Error { message }, None, reactor);
            return;
        }
        let privileged = self.map.get(&token).is_some_and(|c| self.privileged(c.uid));
        let Some(c) = self.map.get_mut(&token) else {
            return;
        };
        c.busy = true; // no more requests: what it sends is read and dropped
        c.inbuf.clear();
        c.sub = Some(Sub {
            privileged,
            jobs,
            missed: 0,
        });
        self.subscribers += 1;
        self.send(token, &Response::ok(Vec::new()), None, reactor);
    }

    /// Tells every subscriber that wants it.
    pub fn publish(&mut self, news: &News, reactor: &Reactor) {
        if !self.watching() {
            return;
        }
        let at = now();
        let (mut full, mut plain) = (None, None);
        let job = news.job();
        let tokens: Vec<usize> = self
            .map
            .iter()
            .filter(|(_, c)| {
                c.sub.as_ref().is_some_and(|s| {
                    s.jobs.is_empty() || job.is_some_and(|j| s.jobs.iter().any(|w| w == j))
                })
            })
            .map(|(&t, _)| t)
            .collect();
        for token in tokens {
            let Some(c) = self.map.get(&token) else {
                continue;
            };
            let Some(sub) = &c.sub else { continue };
            let bytes = if sub.privileged {
                full.get_or_insert_with(|| line(&news.json(at, true)))
            } else {
                plain.get_or_insert_with(|| line(&news.json(at, false)))
            };
            let uid = c.uid;
            let held: usize = self
                .map
                .values()
                .filter(|o| o.uid == uid)
                .map(|o| o.unsent().len())
                .sum();
            let Some(c) = self.map.get_mut(&token) else {
                continue;
            };
            let fits = c.unsent().len() + bytes.len() + RESERVE <= SUB_BUFFER
                && held + bytes.len() + RESERVE <= MAX_OUTPUT_PER_UID;
            let Some(sub) = c.sub.as_mut() else { continue };
            if sub.missed > 0 || !fits {
                if sub.missed == 0 {
                    self.laggards.push(token);
                }
                sub.missed += 1;
                continue;
            }
            c.queue(bytes);
            self.flush(token, reactor);
        }
    }

    /// End of a loop turn: each subscriber that fell behind gets its
    /// `missed` line (in the room kept for it) and is closed once it has
    /// read it.
    pub fn drop_laggards(&mut self, reactor: &Reactor) {
        for token in std::mem::take(&mut self.laggards) {
            let Some(c) = self.map.get_mut(&token) else {
                continue; // gone meanwhile
            };
            let missed = c.sub.as_ref().map_or(0, |s| s.missed);
            let v = json!({ "v": JSON_VERSION, "at": now(), "type": "missed", "count": missed });
            let l = line(&v);
            debug_assert!(l.len() <= RESERVE);
            c.queue(&l);
            c.close_after_flush = true;
            self.flush(token, reactor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_shows_its_environment_only_to_the_privileged() {
        let n = News::Event {
            name: "started".into(),
            env: vec!["JOB=web".into(), "INSTANCE=".into()],
        };
        assert_eq!(n.job(), Some("web"));
        let full = n.json(1.5, true);
        assert_eq!(full["env"][0], "JOB=web");
        assert_eq!(full["v"], 1);
        assert_eq!(full["at"], 1.5);
        assert!(n.json(1.5, false).get("env").is_none());
    }

    #[test]
    fn the_missed_line_fits_its_reserve() {
        let v = json!({ "v": JSON_VERSION, "at": 1.0e10, "type": "missed", "count": u64::MAX });
        assert!(line(&v).len() <= RESERVE);
    }
}
