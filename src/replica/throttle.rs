//! Replication quotas (KIP-73): caps on the bytes a broker sends as leader and fetches
//! as follower for *throttled* replicas, so a reassignment's catch-up traffic does not
//! starve producers and consumers.
//!
//! - Which replicas are throttled is per topic: `leader.replication.throttled.replicas`
//!   and `follower.replication.throttled.replicas`, each `*` or `partition:broker,...`;
//!   a broker throttles a partition's leader side when the leader list names it for that
//!   partition, its follower side when the follower list does.
//! - How fast is per broker: the dynamic configs `leader.replication.throttled.rate` and
//!   `follower.replication.throttled.rate` (bytes/s, unlimited by default).
//! - As in Kafka (`ReplicationQuotaManager`, `ReplicaManager.shouldLeaderThrottle`,
//!   `ReplicaFetcherThread.shouldFollowerThrottle`): the rate is measured over a window
//!   of 11 one-second samples; while it is above the bound, a leader answers a throttled,
//!   out-of-sync follower with no records, and a follower leaves its throttled,
//!   not-caught-up partitions out of its fetch. In-sync replicas are never held back (a
//!   throttle must not stall the high watermark), but their bytes count toward the rate.
//!
//! Pure state: time is passed in.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::keys::split_list;
use crate::sync::lock;

/// Kafka's `replication.quota.window.size.seconds` (1) and `replication.quota.window.num` (11).
const SAMPLE_MS: i64 = 1_000;
const SAMPLES: usize = 11;

/// The replicas a `*.replication.throttled.replicas` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottledReplicas {
    None,
    All,
    Listed(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Parses a value the topic config validator accepted (entries that do not parse are
    /// skipped rather than trusted).
    pub fn parse(value: &str) -> ThrottledReplicas {
        let value = value.trim();
        if value == "*" {
            return ThrottledReplicas::All;
        }
        let listed: Vec<(i32, i32)> = split_list(value)
            .filter_map(|entry| {
                let (p, b) = entry.trim().split_once(':')?;
                Some((p.trim().parse().ok()?, b.trim().parse().ok()?))
            })
            .collect();
        if listed.is_empty() {
            ThrottledReplicas::None
        } else {
            ThrottledReplicas::Listed(listed)
        }
    }

    /// Whether `broker`'s replica of `partition` is throttled.
    pub fn covers(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(l) => l.contains(&(partition, broker)),
        }
    }
}

/// Bytes per one-second sample over the last `SAMPLES` seconds.
#[derive(Debug, Default)]
struct RateWindow {
    /// (sample start ms, bytes), oldest first.
    samples: VecDeque<(i64, u64)>,
}

impl RateWindow {
    fn purge(&mut self, now_ms: i64) {
        let horizon = now_ms - SAMPLE_MS * SAMPLES as i64;
        while self
            .samples
            .front()
            .is_some_and(|(start, _)| *start <= horizon)
        {
            self.samples.pop_front();
        }
    }

    fn record(&mut self, bytes: u64, now_ms: i64) {
        self.purge(now_ms);
        match self.samples.back_mut() {
            Some((start, total)) if now_ms < *start + SAMPLE_MS => *total += bytes,
            _ => self.samples.push_back((now_ms, bytes)),
        }
        debug_assert!(self.samples.len() <= SAMPLES + 1);
    }

    /// Bytes/s: the window's bytes over the time it spans, at least one sample long
    /// (Kafka's `SimpleRate`), so one burst is averaged over a second, not an instant.
    fn rate(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        let Some((oldest, _)) = self.samples.front() else {
            return 0.0;
        };
        let total: u64 = self.samples.iter().map(|(_, b)| b).sum();
        let elapsed_ms = (now_ms - oldest).max(SAMPLE_MS);
        total as f64 * 1000.0 / elapsed_ms as f64
    }
}

/// One direction's quota on a broker (leader or follower side).
#[derive(Debug)]
pub struct ReplicationQuota {
    /// Bytes/s; `u64::MAX` = unlimited.
    bound: AtomicU64,
    window: Mutex<RateWindow>,
}

impl Default for ReplicationQuota {
    fn default() -> Self {
        ReplicationQuota {
            bound: AtomicU64::new(u64::MAX),
            window: Mutex::new(RateWindow::default()),
        }
    }
}

impl ReplicationQuota {
    /// `None` (or Kafka's default, Long.MAX_VALUE) lifts the cap.
    pub fn set_bound(&self, bytes_per_sec: Option<u64>) {
        let bound = match bytes_per_sec {
            Some(b) if b < i64::MAX as u64 => b,
            _ => u64::MAX,
        };
        self.bound.store(bound, Ordering::Relaxed);
    }

    pub fn bound(&self) -> Option<u64> {
        Some(self.bound.load(Ordering::Relaxed)).filter(|b| *b != u64::MAX)
    }

    /// Counts `bytes` of throttled replication traffic.
    pub fn record(&self, bytes: u64, now_ms: i64) {
        if bytes > 0 {
            lock(&self.window).record(bytes, now_ms);
        }
    }

    /// The throttled traffic's rate now, in bytes/s.
    pub fn rate(&self, now_ms: i64) -> f64 {
        lock(&self.window).rate(now_ms)
    }

    /// True while the rate is above the bound (Kafka's `isQuotaExceeded`).
    pub fn is_exceeded(&self, now_ms: i64) -> bool {
        match self.bound() {
            None => false,
            Some(bound) => self.rate(now_ms) > bound as f64,
        }
    }
}

/// A broker's two replication quotas.
#[derive(Debug, Default)]
pub struct ReplicationQuotas {
    pub leader: ReplicationQuota,
    pub follower: ReplicationQuota,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replica_lists_name_partition_broker_pairs_or_everything() {
        let listed = ThrottledReplicas::parse("0:1, 0:2,1:3");
        assert!(listed.covers(0, 1) && listed.covers(0, 2) && listed.covers(1, 3));
        assert!(!listed.covers(1, 1) && !listed.covers(0, 3));
        assert!(ThrottledReplicas::parse("*").covers(7, 9));
        assert_eq!(ThrottledReplicas::parse(""), ThrottledReplicas::None);
        assert!(!ThrottledReplicas::parse("").covers(0, 1));
    }

    #[test]
    fn an_unbounded_quota_is_never_exceeded() {
        let q = ReplicationQuota::default();
        q.record(u64::MAX / 4, 0);
        assert!(!q.is_exceeded(0));
        q.set_bound(Some(i64::MAX as u64)); // Kafka's default value: unlimited
        assert!(!q.is_exceeded(0));
    }

    #[test]
    fn the_rate_is_averaged_over_the_window_and_at_least_a_second() {
        let q = ReplicationQuota::default();
        q.set_bound(Some(1_000));
        q.record(900, 0);
        // 900 bytes in the first instant: 900 B/s over the minimum one-second span.
        assert!(!q.is_exceeded(10));
        q.record(300, 20);
        assert!(q.is_exceeded(30), "1200 B within a second is over 1000 B/s");
        // Later, the same bytes average over a longer span: under the bound again.
        assert!(!q.is_exceeded(1_500));
        assert!((q.rate(2_000) - 600.0).abs() < 1e-9);
        // Eleven seconds on, the samples have left the window.
        assert_eq!(q.rate(11_001), 0.0);
    }

    #[test]
    fn a_quota_throttles_a_stream_to_about_its_bound() {
        // A sender that sends 10 KB whenever the quota allows, polled every 10 ms for
        // 30 s, against a 100 KB/s bound: what it sent averages near the bound.
        let q = ReplicationQuota::default();
        q.set_bound(Some(100_000));
        let mut sent = 0u64;
        let mut now = 0;
        while now < 30_000 {
            if !q.is_exceeded(now) {
                q.record(10_000, now);
                sent += 10_000;
            }
            now += 10;
        }
        let rate = sent as f64 / 30.0;
        assert!(
            (90_000.0..=115_000.0).contains(&rate),
            "sent {rate} B/s against a 100000 B/s bound"
        );
    }
}
