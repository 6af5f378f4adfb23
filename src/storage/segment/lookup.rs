//! Timestamp lookups of a segment (ListOffsets by time, max timestamp): the only segment
//! reads that decode records.

use super::super::batch::{Batch, HeaderFields};
use super::super::error::StorageError;
use super::{corrupt, HeaderScanner, Segment};

impl Segment {
    /// Kafka's `findOffsetByTimestamp`: first record with timestamp >= `target` and
    /// offset >= `starting_offset` -> (timestamp, offset, batch leader epoch). A batch
    /// that would decompress past `decompress_limit` answers at batch granularity (its
    /// first offset at or after `starting_offset`, its max timestamp): the bytes were
    /// accepted once, and a lookup must not expand a bomb.
    pub fn find_offset_by_timestamp(
        &self,
        target: i64,
        starting_offset: i64,
        decompress_limit: usize,
    ) -> Result<Option<(i64, i64, i32)>, StorageError> {
        let ts_entry = self.time_index.lookup(target);
        let start = self
            .offset_index
            .lookup(ts_entry.offset.max(starting_offset))
            .position as u64;
        let path = self.log_path();
        let mut scan = HeaderScanner::new(&self.file, &path, start, self.size);
        while let Some((pos, hdr)) = scan.next_header()? {
            if hdr.max_timestamp() < target || hdr.last_offset() < starting_offset {
                continue;
            }
            let bytes = self.read_batch(pos, &hdr)?;
            let b = Batch::parse(&bytes).map_err(|e| corrupt(&path, pos, e))?;
            let records = match super::super::batch::decode_records(&b, decompress_limit) {
                Ok(records) => records,
                Err(e) if b.is_compressed() => {
                    tracing::warn!(path = %path.display(), pos, error = %e, "answering a timestamp lookup from the batch header");
                    let offset = b.base_offset().max(starting_offset);
                    return Ok(Some((
                        b.max_timestamp(),
                        offset,
                        b.partition_leader_epoch(),
                    )));
                }
                Err(e) => return Err(corrupt(&path, pos, e)),
            };
            for r in records {
                if r.timestamp >= target && r.offset >= starting_offset {
                    return Ok(Some((r.timestamp, r.offset, b.partition_leader_epoch())));
                }
            }
        }
        Ok(None)
    }

    /// The record carrying this segment's max timestamp (first such offset):
    /// (timestamp, offset, batch leader epoch). Decompresses into at most
    /// `decompress_limit` bytes.
    pub fn max_timestamp_record(
        &self,
        decompress_limit: usize,
    ) -> Result<Option<(i64, i64, i32)>, StorageError> {
        if self.size == 0 {
            return Ok(None);
        }
        let Some((pos, hdr)) = self.translate_offset(self.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        let epoch = hdr.partition_leader_epoch();
        let bytes = self.read_batch(pos, &hdr)?;
        let path = self.log_path();
        let b = Batch::parse(&bytes).map_err(|e| corrupt(&path, pos, e))?;
        let records = super::super::batch::decode_records(&b, decompress_limit)
            .map_err(|e| corrupt(&path, pos, e))?;
        let found = records
            .iter()
            .find(|r| r.timestamp == self.max_timestamp)
            .map(|r| (r.timestamp, r.offset, epoch));
        Ok(found.or(Some((
            self.max_timestamp,
            self.offset_of_max_timestamp,
            epoch,
        ))))
    }
}
