//! An in-memory log with Kafka's epoch rules, for driving the partition state machine
//! without files: each record is (leader epoch, value); the epoch cache is derived from
//! the records plus entries assigned at the log end (a leader that has appended nothing
//! yet in its epoch), and truncation drops entries at or past the new end, as
//! `UnifiedLog.truncateTo` does. Used by the state machine's tests and the simulated
//! cluster; the real log is `storage::Log`.

use super::state::LogView;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelLog {
    /// Records from offset 0: (leader epoch, value).
    pub records: Vec<(i32, u64)>,
    /// (epoch, start offset), ascending in both.
    pub epochs: Vec<(i32, i64)>,
}

impl ModelLog {
    pub fn leo(&self) -> i64 {
        self.records.len() as i64
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.last().map(|(e, _)| *e)
    }

    /// Records `epoch` as starting at the log end (a new leader term).
    pub fn assign_epoch(&mut self, epoch: i32) {
        let leo = self.leo();
        match self.epochs.last() {
            Some((e, _)) if *e >= epoch => {}
            _ => self.epochs.push((epoch, leo)),
        }
    }

    /// A leader's append of `values` in `epoch`.
    pub fn append(&mut self, epoch: i32, values: &[u64]) {
        self.assign_epoch(epoch);
        self.records.extend(values.iter().map(|&v| (epoch, v)));
    }

    /// A follower's append of records copied from its leader, starting at its LEO.
    pub fn append_copied(&mut self, records: &[(i32, u64)]) {
        for &(epoch, v) in records {
            self.assign_epoch(epoch);
            self.records.push((epoch, v));
        }
    }

    /// Drops everything at or past `offset`, and epoch entries starting there (also when
    /// nothing is cut: an empty epoch at the log end goes).
    pub fn truncate_to(&mut self, offset: i64) {
        let offset = offset.clamp(0, self.leo());
        self.records.truncate(offset as usize);
        self.epochs.retain(|(_, start)| *start < offset);
    }

    /// The records from `offset`, at most `max`.
    pub fn read(&self, offset: i64, max: usize) -> &[(i32, u64)] {
        let from = (offset.max(0) as usize).min(self.records.len());
        let to = from.saturating_add(max).min(self.records.len());
        &self.records[from..to]
    }
}

impl LogView for ModelLog {
    fn log_end_offset(&self) -> i64 {
        self.leo()
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        crate::storage::leader_epoch::end_offset_for(&self.epochs, |e| *e, epoch, self.leo())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_follow_appends_and_truncation() {
        let mut log = ModelLog::default();
        log.append(1, &[1, 2, 3]);
        log.assign_epoch(3); // leader of epoch 3 that appended nothing
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 3)));
        assert_eq!(log.end_offset_for_epoch(2), Some((1, 3)));
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 3)));
        // Older than every epoch: it ends where the first one starts (Kafka's rule).
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
        assert_eq!(
            log.end_offset_for_epoch(5),
            None,
            "newer than every epoch: unknown"
        );
        log.truncate_to(3);
        assert_eq!(log.latest_epoch(), Some(1), "an empty trailing epoch goes");
        log.append(4, &[4]);
        assert_eq!(log.epochs, vec![(1, 0), (4, 3)]);
    }
}
