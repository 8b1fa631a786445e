//! Events and event expressions (`start on` / `stop on`).
//!
//! This room owns the expression tree and its printing ([`EventExpr`]),
//! matching an emitted event against an expression with Upstart's operator
//! state and holds ([`matcher`]), many matchers found by the event names they
//! mention ([`index`]), `$VAR` expansion in expressions
//! ([`expand`]) and the glob patterns event values match with ([`glob`]).
//! It is pure: no I/O, no clock, no processes. The job-file syntax of an
//! expression is read by `conf::on` (it needs the job-file lexer); the
//! queue of emitted events and what they start and stop is the daemon's
//! event bus (`daemon/events`).

pub mod expand;
pub mod glob;
pub mod index;
pub mod matcher;

use std::fmt;

/// The events upkeep itself emits, or which Upstart's own init emitted;
/// `check-config` does not ask for a job that `emits` them.
pub const BUILTIN_EVENTS: &[&str] = &[
    "startup",
    "starting",
    "started",
    "stopping",
    "stopped",
    "runlevel",
    "filesystem",
    "local-filesystems",
    "remote-filesystems",
    "virtual-filesystems",
    "net-device-up",
    "static-network-up",
];

/// The four events every job emits about itself.
pub const JOB_EVENTS: &[&str] = &["starting", "started", "stopping", "stopped"];

/// A tree of event matches joined by `and` / `or`.
///
/// `and` and `or` have equal precedence and associate left to right, as in
/// Upstart: `a or b and c` is `(a or b) and c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventExpr {
    Match(EventMatch),
    And(Box<EventExpr>, Box<EventExpr>),
    Or(Box<EventExpr>, Box<EventExpr>),
}

/// One operand: an event name and its argument patterns.
///
/// Arguments are kept as written (de-quoted): positional `PATTERN`s first,
/// then `KEY=PATTERN` or `KEY!=PATTERN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMatch {
    pub name: String,
    pub args: Vec<String>,
}

impl EventMatch {
    /// For the job events (`started web`, `starting JOB=web`): the job
    /// named, if any.
    pub fn job_name(&self) -> Option<&str> {
        if !JOB_EVENTS.contains(&self.name.as_str()) {
            return None;
        }
        if let Some(first) = self.args.first() {
            if !first.contains('=') {
                return Some(first);
            }
        }
        self.args.iter().find_map(|a| a.strip_prefix("JOB="))
    }
}

impl EventExpr {
    /// Every operand, left to right.
    pub fn matches(&self) -> Vec<&EventMatch> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                EventExpr::Match(m) => out.push(m),
                EventExpr::And(l, r) | EventExpr::Or(l, r) => {
                    stack.push(r);
                    stack.push(l);
                }
            }
        }
        out
    }

    /// Upstart's `show-config` form: fully bracketed, e.g.
    /// `(starting a and (b or c x=2))`.
    pub fn bracketed(&self) -> String {
        match self {
            EventExpr::Match(m) => m.to_string(),
            EventExpr::And(l, r) => format!("({} and {})", l.bracketed(), r.bracketed()),
            EventExpr::Or(l, r) => format!("({} or {})", l.bracketed(), r.bracketed()),
        }
    }
}

/// Job-file syntax with as few parentheses as parse back to the same tree:
/// a left operand never needs them (left associativity), a compound right
/// operand always does.
impl fmt::Display for EventExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventExpr::Match(m) => write!(f, "{m}"),
            EventExpr::And(l, r) | EventExpr::Or(l, r) => {
                let op = if matches!(self, EventExpr::And(..)) {
                    "and"
                } else {
                    "or"
                };
                write!(f, "{l} {op} ")?;
                match **r {
                    EventExpr::Match(_) => write!(f, "{r}"),
                    _ => write!(f, "({r})"),
                }
            }
        }
    }
}

impl fmt::Display for EventMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote_event_word(&self.name))?;
        for a in &self.args {
            write!(f, " {}", quote_event_word(a))?;
        }
        Ok(())
    }
}

/// Quotes a word of an event expression so the job-file lexer reads it
/// back unchanged (and never as an operator or a parenthesis).
pub fn quote_event_word(w: &str) -> String {
    if w == "and" || w == "or" || w.contains(['(', ')']) {
        return force_quote(w);
    }
    quote_arg(w)
}

/// Quotes an argument for the job-file lexer's argument mode, only when
/// needed.
pub fn quote_arg(w: &str) -> String {
    let plain = !w.is_empty()
        && !w.bytes().any(|b| {
            matches!(
                b,
                b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'\\' | b'#'
            )
        });
    if plain {
        w.to_string()
    } else {
        force_quote(w)
    }
}

/// Quotes a word. Inside quotes the lexer keeps everything but the closing
/// quote and reads `\\` as one backslash. Double quotes are used unless
/// the word holds a `"` and no `'`; a quote of the other kind is written
/// by closing the quotes, adding it in the other quotes, and reopening.
fn force_quote(w: &str) -> String {
    let q = if w.contains('"') && !w.contains('\'') {
        '\''
    } else {
        '"'
    };
    let other = if q == '"' { '\'' } else { '"' };
    let mut s = String::with_capacity(w.len() + 2);
    s.push(q);
    for c in w.chars() {
        if c == q {
            s.extend([q, other, q, other, q]);
        } else if c == '\\' {
            s.push_str("\\\\");
        } else {
            s.push(c);
        }
    }
    s.push(q);
    s
}
