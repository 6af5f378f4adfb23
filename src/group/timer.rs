//! A keyed timer driven by an explicit clock: scheduling a key replaces its previous
//! deadline (Kafka's coordinator timer semantics), `expired(now)` pops every task due at
//! `now` in deadline order. No threads and no real time, so the group state machine can
//! be driven deterministically in tests.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub struct Timer<K, T> {
    /// (deadline, sequence) → key; the sequence keeps equal deadlines in schedule order.
    queue: BTreeMap<(i64, u64), K>,
    entries: HashMap<K, ((i64, u64), T)>,
    next_seq: u64,
}

impl<K: Clone + Eq + Hash, T> Default for Timer<K, T> {
    fn default() -> Self {
        Timer {
            queue: BTreeMap::new(),
            entries: HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<K: Clone + Eq + Hash, T> Timer<K, T> {
    /// Schedules `task` under `key` at `deadline` (ms), replacing any earlier schedule.
    pub fn schedule(&mut self, key: K, deadline: i64, task: T) {
        self.cancel(&key);
        let at = (deadline, self.next_seq);
        self.next_seq += 1;
        self.queue.insert(at, key.clone());
        self.entries.insert(key, (at, task));
    }

    pub fn cancel(&mut self, key: &K) {
        if let Some((at, _)) = self.entries.remove(key) {
            self.queue.remove(&at);
        }
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// The deadline of `key`, if scheduled.
    pub fn deadline(&self, key: &K) -> Option<i64> {
        self.entries.get(key).map(|((d, _), _)| *d)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<i64> {
        self.queue.keys().next().map(|(d, _)| *d)
    }

    /// Removes and returns the earliest task due at `now`, if any. Tasks are taken one at
    /// a time because running one may schedule or cancel others.
    pub fn pop_expired(&mut self, now: i64) -> Option<(K, T)> {
        let (&at, _) = self.queue.iter().next()?;
        if at.0 > now {
            return None;
        }
        let key = self.queue.remove(&at)?;
        let (_, task) = self.entries.remove(&key)?;
        Some((key, task))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.queue.clear();
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reschedule_replaces_and_order_is_by_deadline() {
        let mut t: Timer<&str, u32> = Timer::default();
        t.schedule("a", 100, 1);
        t.schedule("b", 50, 2);
        t.schedule("a", 200, 3);
        assert_eq!(t.next_deadline(), Some(50));
        assert_eq!(t.pop_expired(49), None);
        assert_eq!(t.pop_expired(150), Some(("b", 2)));
        assert_eq!(t.pop_expired(150), None);
        assert_eq!(t.deadline(&"a"), Some(200));
        t.cancel(&"a");
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }
}
