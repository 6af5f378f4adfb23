//! ListOffsets v0 (`max_num_offsets`): Kafka's `UnifiedLog.legacyFetchOffsetsBefore`. The
//! candidates are each segment's base offset (at least the log start offset) with the
//! segment file's last-modified time, plus the log end offset at `now` when the last
//! segment holds data; the answer is up to `max_num_offsets` of them, newest first,
//! starting from the last one modified at or before `timestamp` (-1: the end, -2: the
//! first).

/// One segment: (base offset, last modified ms, size in bytes).
pub type SegmentTime = (i64, i64, u64);

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

pub fn offsets_before(
    segments: &[SegmentTime],
    log_start_offset: i64,
    log_end_offset: i64,
    now_ms: i64,
    timestamp: i64,
    max_num_offsets: i32,
) -> Vec<i64> {
    let mut candidates: Vec<(i64, i64)> = segments
        .iter()
        .map(|(base, modified, _)| ((*base).max(log_start_offset), *modified))
        .collect();
    if segments.last().is_some_and(|(_, _, size)| *size > 0) {
        candidates.push((log_end_offset, now_ms));
    }
    let start = match timestamp {
        LATEST => candidates.len().checked_sub(1),
        EARLIEST => (!candidates.is_empty()).then_some(0),
        ts => candidates.iter().rposition(|(_, modified)| *modified <= ts),
    };
    let Some(start) = start else {
        return Vec::new();
    };
    let n = (max_num_offsets.max(0) as usize).min(start + 1);
    let mut out: Vec<i64> = candidates[start + 1 - n..=start]
        .iter()
        .map(|(o, _)| *o)
        .collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

/// Kafka's `Partition.legacyFetchOffsetsForTimestamp` for consumers: offsets past the
/// high watermark are replaced by the high watermark.
pub fn cap_at_high_watermark(offsets: Vec<i64>, high_watermark: i64) -> Vec<i64> {
    if !offsets.iter().any(|o| *o > high_watermark) {
        return offsets;
    }
    std::iter::once(high_watermark)
        .chain(offsets.into_iter().skip_while(|o| *o > high_watermark))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGS: &[SegmentTime] = &[(0, 1000, 50), (10, 2000, 50), (20, 3000, 50)];

    #[test]
    fn latest_earliest_and_by_time() {
        assert_eq!(offsets_before(SEGS, 0, 25, 9999, LATEST, 1), vec![25]);
        assert_eq!(
            offsets_before(SEGS, 0, 25, 9999, LATEST, 10),
            vec![25, 20, 10, 0]
        );
        assert_eq!(offsets_before(SEGS, 0, 25, 9999, EARLIEST, 1), vec![0]);
        assert_eq!(offsets_before(SEGS, 5, 25, 9999, EARLIEST, 3), vec![5]);
        assert_eq!(offsets_before(SEGS, 0, 25, 9999, 2500, 5), vec![10, 0]);
        assert_eq!(offsets_before(SEGS, 0, 25, 9999, 500, 5), Vec::<i64>::new());
        assert_eq!(offsets_before(SEGS, 0, 25, 9999, 0, 0), Vec::<i64>::new());
    }

    #[test]
    fn an_empty_last_segment_adds_no_end_offset() {
        let segs = [(0, 1000, 50), (25, 2000, 0)];
        assert_eq!(offsets_before(&segs, 0, 25, 9999, LATEST, 5), vec![25, 0]);
        assert_eq!(offsets_before(&[(0, 10, 0)], 0, 0, 99, LATEST, 1), vec![0]);
    }

    #[test]
    fn consumers_never_see_past_the_high_watermark() {
        assert_eq!(
            cap_at_high_watermark(vec![25, 20, 10], 22),
            vec![22, 20, 10]
        );
        assert_eq!(cap_at_high_watermark(vec![25], 25), vec![25]);
    }
}
