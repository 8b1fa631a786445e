//! Health, as pure bookkeeping: what a run of probe results means for an
//! instance (the `health` stanza's roles, `conf::health`), and what an HTTP
//! probe's answer means. No sockets, no processes, no clock: the daemon's
//! probe runner feeds results in and carries out the verdicts.
//!
//! * **ready**: the instance is ready once `success_threshold` tries in a
//!   row succeeded; failures before that only wait (the ready timeout,
//!   counted by the job's machine, bounds the wait). Once ready, the ready
//!   probe is done.
//! * **alive**: `failure_threshold` failures in a row make the instance
//!   unhealthy (said once an episode); `success_threshold` successes in a
//!   row make it healthy again.

use crate::conf::health::{Probe, Role};

/// What an instance's health is, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No verdict yet: waiting for the ready probe, or the alive probe has
    /// not yet succeeded or failed enough.
    Starting,
    Healthy,
    /// With the failures in a row and the last one's reason.
    Unhealthy {
        failures: u32,
        error: String,
    },
}

impl State {
    /// `healthy`, `unhealthy (3 failures: connection refused)`, `starting`.
    pub fn describe(&self) -> String {
        match self {
            State::Starting => "starting".into(),
            State::Healthy => "healthy".into(),
            State::Unhealthy { failures, error } => {
                let s = if *failures == 1 { "" } else { "s" };
                format!("unhealthy ({failures} failure{s}: {error})")
            }
        }
    }
}

/// What a result changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing new.
    Same,
    /// The ready probe succeeded enough: the start may go on.
    Ready,
    /// The alive probe succeeded enough after failing (or for the first
    /// time).
    Healthy,
    /// The alive probe failed `failure_threshold` times in a row.
    Unhealthy { failures: u32, error: String },
}

/// One role's run of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    pub role: Role,
    failure_threshold: u32,
    success_threshold: u32,
    /// Successes and failures in a row (one of them is 0).
    pub successes: u32,
    pub failures: u32,
    pub state: State,
    /// The last failure's reason.
    pub last_error: Option<String>,
}

impl Tracker {
    pub fn new(role: Role, probe: &Probe) -> Tracker {
        Tracker {
            role,
            failure_threshold: probe.failure_threshold,
            success_threshold: probe.success_threshold,
            successes: 0,
            failures: 0,
            state: State::Starting,
            last_error: None,
        }
    }

    /// The ready role has said its verdict: no more tries.
    pub fn done(&self) -> bool {
        self.role == Role::Ready && self.state == State::Healthy
    }

    /// A try's result: `Err` with the reason in words.
    pub fn record(&mut self, result: Result<(), String>) -> Verdict {
        if self.done() {
            return Verdict::Same;
        }
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.successes >= self.success_threshold && self.state != State::Healthy {
                    self.state = State::Healthy;
                    return match self.role {
                        Role::Ready => Verdict::Ready,
                        Role::Alive => Verdict::Healthy,
                    };
                }
                Verdict::Same
            }
            Err(error) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                self.last_error = Some(error.clone());
                if self.role == Role::Ready {
                    return Verdict::Same; // the ready timeout decides
                }
                let was_unhealthy = matches!(self.state, State::Unhealthy { .. });
                if self.failures >= self.failure_threshold {
                    self.state = State::Unhealthy {
                        failures: self.failures,
                        error: error.clone(),
                    };
                    if !was_unhealthy {
                        return Verdict::Unhealthy {
                            failures: self.failures,
                            error,
                        };
                    }
                }
                Verdict::Same
            }
        }
    }
}

/// The most an HTTP probe reads of the response: its head must fit.
pub const MAX_HEAD: usize = 8 * 1024;

/// The request an HTTP probe writes: one line and a `Host` header, by
/// hand (no client library in the daemon).
pub fn http_request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: upkeep-health\r\n\r\n")
        .into_bytes()
}

/// What the bytes read so far of an HTTP response say: `None` while the
/// head is incomplete (and under [`MAX_HEAD`]); otherwise the verdict,
/// from the status code (in `status`, inclusive) as `httparse` reads it.
/// A redirect fails unless the range allows it.
pub fn http_verdict(read: &[u8], status: (u16, u16)) -> Option<Result<(), String>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(read) {
        Ok(httparse::Status::Complete(_)) => {
            let code = resp.code.unwrap_or(0);
            Some(if (status.0..=status.1).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP status {code}"))
            })
        }
        Ok(httparse::Status::Partial) if read.len() < MAX_HEAD => None,
        Ok(httparse::Status::Partial) => {
            Some(Err(format!("response head over {} KiB", MAX_HEAD / 1024)))
        }
        Err(e) => Some(Err(format!("malformed HTTP response: {e}"))),
    }
}

/// What the end of the stream (the server closed) before a whole head
/// means.
pub fn http_cut_short(read: &[u8]) -> String {
    if read.is_empty() {
        "connection closed without a response".into()
    } else {
        "connection closed in the middle of the response head".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::health::{Check, Probe};

    fn probe(failures: u32, successes: u32) -> Probe {
        let mut p = Probe::new(Check::Tcp("127.0.0.1:1".parse().unwrap()));
        p.failure_threshold = failures;
        p.success_threshold = successes;
        p
    }

    #[test]
    fn alive_turns_unhealthy_once_after_the_threshold_and_back() {
        let mut t = Tracker::new(Role::Alive, &probe(3, 2));
        let no = || Err("connection refused".to_string());
        assert_eq!(t.record(no()), Verdict::Same);
        assert_eq!(t.record(no()), Verdict::Same);
        assert_eq!(
            t.record(no()),
            Verdict::Unhealthy {
                failures: 3,
                error: "connection refused".into()
            }
        );
        assert_eq!(t.record(no()), Verdict::Same, "said once an episode");
        assert_eq!(
            t.state.describe(),
            "unhealthy (4 failures: connection refused)"
        );
        assert_eq!(t.record(Ok(())), Verdict::Same);
        assert_eq!(t.record(Ok(())), Verdict::Healthy);
        assert_eq!(t.state.describe(), "healthy");
        // A failure between successes starts the count again.
        assert_eq!(t.record(no()), Verdict::Same);
        assert_eq!(t.record(Ok(())), Verdict::Same);
        assert_eq!(t.failures, 0);
    }

    #[test]
    fn ready_waits_for_successes_and_then_is_done() {
        let mut t = Tracker::new(Role::Ready, &probe(1, 2));
        assert_eq!(t.record(Err("refused".into())), Verdict::Same);
        assert_eq!(
            t.record(Err("refused".into())),
            Verdict::Same,
            "no verdict on failures"
        );
        assert_eq!(t.state, State::Starting);
        assert_eq!(t.record(Ok(())), Verdict::Same);
        assert_eq!(t.record(Ok(())), Verdict::Ready);
        assert!(t.done());
        assert_eq!(t.record(Err("x".into())), Verdict::Same);
    }

    #[test]
    fn http_answers_are_judged_by_their_status() {
        let ok = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
        assert_eq!(http_verdict(ok, (200, 399)), Some(Ok(())));
        let redirect = b"HTTP/1.1 302 Found\r\nLocation: /login\r\n\r\n";
        assert_eq!(
            http_verdict(redirect, (200, 299)),
            Some(Err("HTTP status 302".into())),
            "a redirect fails unless allowed"
        );
        assert_eq!(http_verdict(redirect, (200, 399)), Some(Ok(())));
        assert_eq!(http_verdict(b"HTTP/1.1 200 OK\r\nX: y", (200, 399)), None);
        let mut huge = b"HTTP/1.1 200 OK\r\nX-Padding: ".to_vec();
        huge.resize(MAX_HEAD, b'a');
        assert_eq!(
            http_verdict(&huge, (200, 399)),
            Some(Err("response head over 8 KiB".into()))
        );
        assert!(
            matches!(http_verdict(b"SSH-2.0-OpenSSH\r\n\r\n", (200, 399)), Some(Err(e)) if e.starts_with("malformed"))
        );
        assert_eq!(
            http_request("/healthz", "127.0.0.1:80"),
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:80\r\nConnection: close\r\nUser-Agent: upkeep-health\r\n\r\n"
        );
    }
}
