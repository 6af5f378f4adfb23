//! A lock-free latency histogram: fixed millisecond buckets of relaxed atomics, so
//! recording is one bucket search and three adds (prometheus-client's own histogram takes
//! a lock per observation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in milliseconds (Prometheus `le`), Kafka-latency shaped.
pub const BUCKETS_MS: [f64; 16] = [
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0, 30000.0,
];

#[derive(Debug)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot is +Inf.
    counts: [AtomicU64; BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS_MS.len() + 1],
            sum_us: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let ms = us as f64 / 1000.0;
        let i = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// (sum in ms, count, per-bucket counts) as prometheus-client's encoder takes them
    /// (it accumulates them into `le` buckets; `f64::MAX` is printed as `+Inf`).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            total += n;
            let le = BUCKETS_MS.get(i).copied().unwrap_or(f64::MAX);
            buckets.push((le, n));
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0;
        (sum, total, buckets)
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_each_observation_once_and_sum_is_in_ms() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(100)); // 0.1 ms -> le 0.25
        h.observe(Duration::from_millis(3)); // le 5
        h.observe(Duration::from_secs(60)); // +Inf
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 60003.1).abs() < 0.01, "{sum}");
        assert_eq!(buckets[0], (0.25, 1));
        let le5 = buckets.iter().find(|(le, _)| *le == 5.0).unwrap();
        assert_eq!(le5.1, 1);
        assert_eq!(buckets.last().unwrap().1, 1);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert_eq!(buckets.last().unwrap().0, f64::MAX);
    }
}
