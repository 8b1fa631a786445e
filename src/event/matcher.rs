//! Matching emitted events against a `start on` / `stop on` expression,
//! with Upstart's operator state (reference 5.2 and 5.3). Pure.
//!
//! Each leaf remembers the event that matched it and holds it (the event
//! cannot finish) until the whole expression is reset. `and` / `or` nodes
//! are recomputed from their children after each event.

use super::expand::{expand, lookup};
use super::{glob, EventExpr, EventMatch};

/// An emitted event, as matching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub id: u64,
    pub name: &'a str,
    /// `KEY=VALUE`, in the order the event carries them.
    pub env: &'a [String],
}

#[derive(Debug, Clone)]
enum Kind {
    Match(EventMatch),
    And(usize, usize),
    Or(usize, usize),
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    value: bool,
    /// For a leaf: the event it holds.
    held: Option<u64>,
}

/// The run-time state of one expression.
#[derive(Debug, Clone)]
pub struct Matcher {
    nodes: Vec<Node>,
    root: usize,
}

impl Matcher {
    pub fn new(expr: &EventExpr) -> Matcher {
        // Sized exactly: 10,000 jobs hold 20,000 matchers, most of one node.
        let mut nodes = Vec::with_capacity(count(expr));
        let root = build(expr, &mut nodes);
        Matcher { nodes, root }
    }

    pub fn is_true(&self) -> bool {
        self.nodes[self.root].value
    }

    /// The event names its leaves match, each once.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Match(m) => Some(m.name.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether a leaf that holds nothing yet waits for an event of this
    /// name: a cheap test before [`Matcher::offer`], which is then the
    /// only one that looks at variables.
    pub fn wants(&self, name: &str) -> bool {
        self.nodes
            .iter()
            .any(|n| n.held.is_none() && matches!(&n.kind, Kind::Match(m) if m.name == name))
    }

    /// Offers an event; returns how many holds it took and, when that made
    /// the expression true, its contributing events and the holds that the
    /// reset released (the expression is reset then).
    pub fn offer_and_fire(&mut self, ev: &EventRef, vars: &[String]) -> (u32, Option<Fired>) {
        let holds = self.offer(ev, vars) as u32;
        if !self.is_true() {
            return (holds, None);
        }
        let contributing = self.contributing();
        (holds, Some((contributing, self.reset())))
    }
}

/// What a true expression hands over: the events that made it true, and
/// the holds its reset released.
pub type Fired = (Vec<u64>, Vec<u64>);

impl Matcher {
    /// Offers an event. Leaves it matches (and that hold nothing yet) take
    /// hold of it; returns how many did, each being one hold on the event.
    /// `vars` expands `$VAR` in the patterns; a pattern that cannot be
    /// expanded never matches.
    pub fn offer(&mut self, ev: &EventRef, vars: &[String]) -> usize {
        let mut holds = 0;
        for node in &mut self.nodes {
            if let Kind::Match(m) = &node.kind {
                if node.held.is_none() && leaf_matches(m, ev, vars) {
                    node.held = Some(ev.id);
                    node.value = true;
                    holds += 1;
                }
            }
        }
        if holds > 0 {
            self.recompute(self.root);
        }
        holds
    }

    fn recompute(&mut self, i: usize) -> bool {
        let v = match self.nodes[i].kind {
            Kind::Match(_) => self.nodes[i].value,
            Kind::And(l, r) => {
                let (a, b) = (self.recompute(l), self.recompute(r));
                a && b
            }
            Kind::Or(l, r) => {
                let (a, b) = (self.recompute(l), self.recompute(r));
                a || b
            }
        };
        self.nodes[i].value = v;
        v
    }

    /// The events that made the expression true, left to right: both sides
    /// of an `and`, the true sides of an `or`.
    pub fn contributing(&self) -> Vec<u64> {
        let mut out = Vec::new();
        self.collect(self.root, &mut out);
        out
    }

    fn collect(&self, i: usize, out: &mut Vec<u64>) {
        let n = &self.nodes[i];
        if !n.value {
            return;
        }
        match n.kind {
            Kind::Match(_) => out.extend(n.held),
            Kind::And(l, r) | Kind::Or(l, r) => {
                self.collect(l, out);
                self.collect(r, out);
            }
        }
    }

    /// Forgets every match; returns the events that were held (one entry
    /// per hold, to release).
    pub fn reset(&mut self) -> Vec<u64> {
        let mut released = Vec::new();
        for n in &mut self.nodes {
            if let Some(id) = n.held.take() {
                released.push(id);
            }
            n.value = false;
        }
        released
    }

    /// The event each leaf holds, leaves in tree order: the whole
    /// run-time state, for the daemon's `re-exec` handover.
    pub fn held(&self) -> Vec<Option<u64>> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, Kind::Match(_)))
            .map(|n| n.held)
            .collect()
    }

    /// Puts back what [`Matcher::held`] took out of a matcher of the same
    /// expression. False (and nothing changed) if the leaves do not line
    /// up.
    pub fn restore_held(&mut self, held: &[Option<u64>]) -> bool {
        let leaves = self
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, Kind::Match(_)))
            .count();
        if leaves != held.len() {
            return false;
        }
        let mut it = held.iter();
        for n in &mut self.nodes {
            if matches!(n.kind, Kind::Match(_)) {
                n.held = it.next().copied().flatten();
                n.value = n.held.is_some();
            }
        }
        self.recompute(self.root);
        true
    }

    /// What the expression still needs to become true, in expression
    /// syntax: the whole expression while nothing has matched, only the
    /// unmatched side once part of an `and` holds (`a and b` with `a` held
    /// → `b`), and `None` once the whole is true. Whether anything is held
    /// at all is [`Matcher::is_partial`].
    pub fn pending(&self) -> Option<String> {
        self.pending_at(self.root).map(|(s, _)| s)
    }

    /// Whether some leaf holds an event while the whole is not yet true.
    pub fn is_partial(&self) -> bool {
        !self.is_true() && self.nodes.iter().any(|n| n.held.is_some())
    }

    /// (text, compound?) of what node `i` still needs.
    fn pending_at(&self, i: usize) -> Option<(String, bool)> {
        let n = &self.nodes[i];
        if n.value {
            return None;
        }
        match &n.kind {
            Kind::Match(m) => Some((m.to_string(), false)),
            Kind::And(l, r) | Kind::Or(l, r) => {
                let op = if matches!(n.kind, Kind::And(..)) {
                    "and"
                } else {
                    "or"
                };
                let wrap =
                    |(s, compound): (String, bool)| if compound { format!("({s})") } else { s };
                match (self.pending_at(*l), self.pending_at(*r)) {
                    (Some(a), Some(b)) => Some((format!("{} {op} {}", wrap(a), wrap(b)), true)),
                    (Some(a), None) | (None, Some(a)) => Some(a),
                    (None, None) => None,
                }
            }
        }
    }
}

fn count(expr: &EventExpr) -> usize {
    match expr {
        EventExpr::Match(_) => 1,
        EventExpr::And(l, r) | EventExpr::Or(l, r) => 1 + count(l) + count(r),
    }
}

fn build(expr: &EventExpr, nodes: &mut Vec<Node>) -> usize {
    let kind = match expr {
        EventExpr::Match(m) => Kind::Match(m.clone()),
        EventExpr::And(l, r) | EventExpr::Or(l, r) => {
            let (li, ri) = (build(l, nodes), build(r, nodes));
            if matches!(expr, EventExpr::And(..)) {
                Kind::And(li, ri)
            } else {
                Kind::Or(li, ri)
            }
        }
    };
    nodes.push(Node {
        kind,
        value: false,
        held: None,
    });
    nodes.len() - 1
}

/// Does one operand match an event? (reference 5.2)
pub fn leaf_matches(m: &EventMatch, ev: &EventRef, vars: &[String]) -> bool {
    if m.name != ev.name {
        return false;
    }
    let mut position = 0;
    for arg in &m.args {
        let (key, negate, pattern) = match arg.split_once('=') {
            None => (None, false, arg.as_str()),
            Some((k, v)) => match k.strip_suffix('!') {
                Some(k) => (Some(k), true, v),
                None => (Some(k), false, v),
            },
        };
        let Ok(pattern) = expand(pattern, vars) else {
            return false;
        };
        let value = match key {
            None => {
                let v = ev
                    .env
                    .get(position)
                    .and_then(|e| e.split_once('='))
                    .map(|(_, v)| v);
                position += 1;
                v
            }
            Some(k) => lookup(ev.env, k),
        };
        let Some(value) = value else { return false };
        if glob::matches(&pattern, value) == negate {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::parse_job;

    fn expr(s: &str) -> EventExpr {
        parse_job("t", format!("start on {s}\n").as_bytes())
            .unwrap()
            .start_on
            .unwrap()
    }

    fn env(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn leaf(e: &str, name: &str, ev: &[&str], vars: &[&str]) -> bool {
        let EventExpr::Match(m) = expr(e) else {
            panic!()
        };
        let evenv = env(ev);
        leaf_matches(
            &m,
            &EventRef {
                id: 1,
                name,
                env: &evenv,
            },
            &env(vars),
        )
    }

    /// (expression, event name, event variables, job variables, matches?)
    type Case = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        bool,
    );

    #[test]
    fn matching_one_event() {
        let table: &[Case] = &[
            ("startup", "startup", &[], &[], true),
            ("startup", "starting", &[], &[], false),
            (
                "runlevel [2345]",
                "runlevel",
                &["RUNLEVEL=2", "PREVLEVEL=N"],
                &[],
                true,
            ),
            (
                "runlevel [2345]",
                "runlevel",
                &["RUNLEVEL=0", "PREVLEVEL=2"],
                &[],
                false,
            ),
            (
                "runlevel [!2345]",
                "runlevel",
                &["RUNLEVEL=0", "PREVLEVEL=2"],
                &[],
                true,
            ),
            ("runlevel [!2345]", "runlevel", &["RUNLEVEL=3"], &[], false),
            ("runlevel [016]", "runlevel", &["RUNLEVEL=6"], &[], true),
            ("runlevel", "runlevel", &["RUNLEVEL=6"], &[], true),
            ("runlevel 2 N", "runlevel", &["RUNLEVEL=2"], &[], false),
            (
                "net-device-up IFACE=lo",
                "net-device-up",
                &["IFACE=lo"],
                &[],
                true,
            ),
            (
                "net-device-up IFACE!=lo",
                "net-device-up",
                &["IFACE=lo"],
                &[],
                false,
            ),
            (
                "net-device-up IFACE!=lo",
                "net-device-up",
                &["IFACE=eth0"],
                &[],
                true,
            ),
            ("net-device-up IFACE!=lo", "net-device-up", &[], &[], false),
            (
                "started web",
                "started",
                &["JOB=web", "INSTANCE="],
                &[],
                true,
            ),
            (
                "started JOB=web",
                "started",
                &["JOB=web", "INSTANCE="],
                &[],
                true,
            ),
            (
                "started web",
                "started",
                &["JOB=webby", "INSTANCE="],
                &[],
                false,
            ),
            (
                "stopped mountall EXIT_SIGNAL=?*",
                "stopped",
                &["JOB=mountall", "EXIT_SIGNAL=TERM"],
                &[],
                true,
            ),
            (
                "stopped mountall EXIT_SIGNAL=?*",
                "stopped",
                &["JOB=mountall", "EXIT_STATUS=1"],
                &[],
                false,
            ),
            (
                "runlevel [!$RUNLEVEL]",
                "runlevel",
                &["RUNLEVEL=3"],
                &["RUNLEVEL=2"],
                true,
            ),
            (
                "runlevel [!$RUNLEVEL]",
                "runlevel",
                &["RUNLEVEL=2"],
                &["RUNLEVEL=2"],
                false,
            ),
            (
                "runlevel [!$RUNLEVEL]",
                "runlevel",
                &["RUNLEVEL=2"],
                &[],
                false,
            ),
            ("custom MSG=\"a b\"", "custom", &["MSG=a b"], &[], true),
        ];
        for &(e, name, ev, vars, want) in table {
            assert_eq!(
                leaf(e, name, ev, vars),
                want,
                "{e} vs {name} {ev:?} (vars {vars:?})"
            );
        }
    }

    fn offer(m: &mut Matcher, id: u64, name: &str, ev: &[&str]) -> usize {
        let e = env(ev);
        m.offer(&EventRef { id, name, env: &e }, &[])
    }

    #[test]
    fn and_remembers_and_holds_until_reset() {
        let mut m = Matcher::new(&expr("started a and started b"));
        assert_eq!(offer(&mut m, 1, "started", &["JOB=a"]), 1);
        assert!(!m.is_true());
        assert!(m.is_partial());
        assert_eq!(m.pending().as_deref(), Some("started b"));
        // A second `started a` does not re-match the held leaf.
        assert_eq!(offer(&mut m, 2, "started", &["JOB=a"]), 0);
        assert_eq!(offer(&mut m, 3, "started", &["JOB=b"]), 1);
        assert!(m.is_true());
        assert_eq!(m.contributing(), vec![1, 3]);
        assert_eq!(m.reset(), vec![1, 3]);
        assert!(!m.is_true());
    }

    #[test]
    fn or_contributes_only_its_true_side_and_left_associates() {
        let mut m = Matcher::new(&expr("a or b and c"));
        offer(&mut m, 1, "b", &[]);
        assert!(!m.is_true(), "(a or b) and c needs c");
        assert_eq!(m.pending().as_deref(), Some("c"));
        offer(&mut m, 2, "c", &[]);
        assert!(m.is_true());
        assert_eq!(m.contributing(), vec![1, 2]);
        let mut m = Matcher::new(&expr("started a or started b"));
        assert_eq!(m.pending().as_deref(), Some("started a or started b"));
        offer(&mut m, 7, "started", &["JOB=b"]);
        assert!(m.is_true());
        assert_eq!(m.contributing(), vec![7]);
        let m = Matcher::new(&expr("x and (y or z)"));
        assert_eq!(m.pending().as_deref(), Some("x and (y or z)"));
    }

    #[test]
    fn held_events_are_carried_into_a_new_matcher() {
        let e = expr("(started a and started b) or stopping c");
        let mut m = Matcher::new(&e);
        let a = env(&["JOB=a"]);
        m.offer(
            &EventRef {
                id: 7,
                name: "started",
                env: &a,
            },
            &[],
        );
        assert!(!m.is_true());
        let held = m.held();
        assert_eq!(held, vec![Some(7), None, None]);
        let mut n = Matcher::new(&e);
        assert!(n.restore_held(&held));
        assert_eq!(n.pending(), m.pending());
        assert!(n.is_partial());
        // The same as the original from here on.
        assert!(!n.restore_held(&[None]));
        assert_eq!(n.held(), held);
        assert!(Matcher::new(&e).restore_held(&[None, None, Some(9)]));
    }
}
