//! Many matchers, found by the event names their leaves mention. An event
//! is offered only to the matchers that mention its name, so the cost of
//! an event grows with the jobs that wait for it, not with every job: with
//! 10,000 jobs each emitting `starting` and `started`, a scan of every
//! matcher per event made a mass start quadratic. Pure.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::matcher::Matcher;

/// Matchers by key (a job's name, an instance's key), in key order, with
/// an index from event name to the keys whose matcher mentions it.
#[derive(Debug)]
pub struct Matchers<K: Ord + Clone> {
    by_key: BTreeMap<K, Matcher>,
    by_name: HashMap<String, BTreeSet<K>>,
}

impl<K: Ord + Clone> Default for Matchers<K> {
    fn default() -> Self {
        Matchers {
            by_key: BTreeMap::new(),
            by_name: HashMap::new(),
        }
    }
}

impl<K: Ord + Clone> Matchers<K> {
    /// Puts `m` under `key`, replacing (and returning) what was there.
    pub fn insert(&mut self, key: K, m: Matcher) -> Option<Matcher> {
        let old = self.remove(&key);
        for name in m.names() {
            self.by_name
                .entry(name.to_string())
                .or_default()
                .insert(key.clone());
        }
        self.by_key.insert(key, m);
        old
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<Matcher>
    where
        K: Borrow<Q>,
    {
        let m = self.by_key.remove(key)?;
        for name in m.names() {
            if let Some(keys) = self.by_name.get_mut(name) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_name.remove(name);
                }
            }
        }
        Some(m)
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&Matcher>
    where
        K: Borrow<Q>,
    {
        self.by_key.get(key)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut Matcher>
    where
        K: Borrow<Q>,
    {
        self.by_key.get_mut(key)
    }

    /// Every matcher, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Matcher)> {
        self.by_key.iter()
    }

    /// The keys, in key order, of the matchers with a leaf that holds
    /// nothing yet and waits for an event of this name.
    pub fn wanting(&self, name: &str) -> Vec<K> {
        let Some(keys) = self.by_name.get(name) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| self.by_key.get(*k).is_some_and(|m| m.wants(name)))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventExpr;

    fn expr(text: &str) -> EventExpr {
        crate::conf::parse_job("t", format!("start on {text}\n").as_bytes())
            .expect("job")
            .start_on
            .expect("start on")
    }

    #[test]
    fn only_matchers_that_mention_the_name_are_found_in_key_order() {
        let mut ms: Matchers<String> = Matchers::default();
        ms.insert("b".into(), Matcher::new(&expr("started x or foo")));
        ms.insert("a".into(), Matcher::new(&expr("started y and bar")));
        ms.insert("c".into(), Matcher::new(&expr("foo")));
        assert_eq!(ms.wanting("started"), vec!["a", "b"]);
        assert_eq!(ms.wanting("foo"), vec!["b", "c"]);
        assert!(ms.wanting("stopped").is_empty());
    }

    #[test]
    fn a_replaced_or_removed_matcher_leaves_the_index() {
        let mut ms: Matchers<String> = Matchers::default();
        ms.insert("a".into(), Matcher::new(&expr("foo")));
        assert!(ms.insert("a".into(), Matcher::new(&expr("bar"))).is_some());
        assert!(ms.wanting("foo").is_empty());
        assert_eq!(ms.wanting("bar"), vec!["a"]);
        assert!(ms.remove("a").is_some());
        assert!(ms.wanting("bar").is_empty());
        assert!(ms.by_name.is_empty());
    }

    #[test]
    fn a_leaf_that_holds_its_event_no_longer_wants_the_name() {
        use crate::event::matcher::EventRef;
        let mut ms: Matchers<String> = Matchers::default();
        ms.insert("a".into(), Matcher::new(&expr("foo and bar")));
        let ev = EventRef {
            id: 1,
            name: "foo",
            env: &[],
        };
        ms.get_mut("a").expect("a").offer(&ev, &[]);
        assert!(ms.wanting("foo").is_empty());
        assert_eq!(ms.wanting("bar"), vec!["a"]);
    }
}
