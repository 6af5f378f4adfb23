//! The session table: which sessions exist, their timeout and password, the connection
//! each is attached to, and when each expires.
//!
//! Expiry works like ZooKeeper's `ExpiryQueue`: a session's deadline is rounded up to the
//! next multiple of the bucket interval, and a check at each interval expires a whole
//! bucket at once. Time is passed in (milliseconds on a monotonic clock), never read here.

use std::collections::{BTreeMap, HashMap, HashSet};

/// An opaque id for one client connection.
pub type ConnId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    /// Negotiated timeout, milliseconds.
    pub timeout: i32,
    pub password: Vec<u8>,
    /// Monotonic milliseconds at which the session expires (bucket-rounded).
    pub expires_at: u64,
    /// The connection currently attached, if any.
    pub conn: Option<ConnId>,
}

#[derive(Debug)]
pub struct SessionTable {
    sessions: HashMap<i64, Session>,
    buckets: BTreeMap<u64, HashSet<i64>>,
    interval: u64,
    /// The latest time the owner told us about (used when a session is (re)created by
    /// applying a txn, which carries no monotonic time).
    now: u64,
    next_id: i64,
}

impl SessionTable {
    /// `interval`: the expiry bucket width in milliseconds (at least 1).
    pub fn new(interval: u64) -> SessionTable {
        SessionTable {
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
            interval: interval.max(1),
            now: 0,
            next_id: 1,
        }
    }

    /// Seeds session id generation from the wall clock the way ZooKeeper does
    /// (`(millis << 24) >>> 8`, server id 1 in the top byte), so ids do not repeat
    /// across restarts; never goes below an id already in use.
    pub fn seed_ids(&mut self, wall_ms: i64) {
        let base = (((wall_ms as u64) << 24) >> 8) as i64 | (1i64 << 56);
        let max_used = self.sessions.keys().copied().max().unwrap_or(0);
        self.next_id = base.max(max_used.saturating_add(1)).max(self.next_id);
    }

    /// Tells the table the current monotonic time.
    pub fn set_now(&mut self, now: u64) {
        self.now = now;
    }

    /// The next fresh session id.
    pub fn allocate_id(&mut self) -> i64 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn round_up(&self, t: u64) -> u64 {
        (t / self.interval + 1) * self.interval
    }

    fn schedule(&mut self, id: i64, expires_at: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            let old = s.expires_at;
            s.expires_at = expires_at;
            if old != expires_at {
                if let Some(b) = self.buckets.get_mut(&old) {
                    b.remove(&id);
                    if b.is_empty() {
                        self.buckets.remove(&old);
                    }
                }
                self.buckets.entry(expires_at).or_default().insert(id);
            }
        }
    }

    /// Adds (or replaces) a session, due to expire one timeout from "now".
    pub fn restore(&mut self, id: i64, timeout: i32, password: Vec<u8>) {
        self.remove(id);
        self.sessions.insert(
            id,
            Session {
                id,
                timeout,
                password,
                expires_at: 0,
                conn: None,
            },
        );
        let at = self.round_up(self.now + timeout.max(0) as u64);
        self.schedule(id, at);
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        if let Some(b) = self.buckets.get_mut(&s.expires_at) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&s.expires_at);
            }
        }
        Some(s)
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn get_mut(&mut self, id: i64) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Pushes a session's deadline to `now + timeout` (its own timeout unless one is
    /// given). Returns false if the session does not exist.
    pub fn touch(&mut self, id: i64, now: u64, timeout: Option<i32>) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        let t = timeout.unwrap_or(s.timeout).max(0) as u64;
        let at = self.round_up(now + t);
        self.schedule(id, at);
        true
    }

    /// Gives every session a full timeout from `now` (after recovery).
    pub fn touch_all(&mut self, now: u64) {
        let ids: Vec<i64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.touch(id, now, None);
        }
    }

    /// Sessions whose deadline has passed. They stay in the table until their close txn
    /// is applied; a later touch can no longer save them.
    pub fn take_expired(&mut self, now: u64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some((&at, _)) = self.buckets.first_key_value() {
            if at > now {
                break;
            }
            if let Some(ids) = self.buckets.remove(&at) {
                let mut ids: Vec<i64> = ids.into_iter().collect();
                ids.sort_unstable();
                for id in &ids {
                    if let Some(s) = self.sessions.get_mut(id) {
                        // Parked far in the future: only the close txn removes it.
                        s.expires_at = u64::MAX;
                    }
                }
                out.extend(ids);
            }
        }
        out
    }

    /// When the next bucket is due, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.buckets.keys().next().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_bucketed_and_touch_postpones() {
        let mut t = SessionTable::new(100);
        t.set_now(1000);
        t.restore(1, 500, vec![0; 16]);
        t.restore(2, 500, vec![0; 16]);
        // Deadline 1500 rounds up to the next bucket, 1600.
        assert_eq!(t.get(1).unwrap().expires_at, 1600);
        assert!(t.take_expired(1599).is_empty());
        assert!(t.touch(2, 1400, None));
        assert_eq!(t.take_expired(1600), vec![1]);
        // Expired sessions are not expired twice, nor revived by a touch.
        assert!(t.take_expired(1700).is_empty());
        assert_eq!(t.take_expired(2000), vec![2]);
        assert!(!t.touch(3, 0, None));
        t.remove(1);
        assert!(t.get(1).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ids_are_unique_and_seeded_above_existing() {
        let mut t = SessionTable::new(100);
        t.restore(i64::MAX - 1, 1000, vec![]);
        t.seed_ids(1_700_000_000_000);
        let a = t.allocate_id();
        let b = t.allocate_id();
        assert_ne!(a, b);
        assert!(a != 0 && b != 0);
        assert!(t.get(a).is_none());
    }

    #[test]
    fn next_deadline_tracks_buckets() {
        let mut t = SessionTable::new(50);
        assert_eq!(t.next_deadline(), None);
        t.set_now(10);
        t.restore(5, 100, vec![]);
        assert_eq!(t.next_deadline(), Some(150));
    }
}
