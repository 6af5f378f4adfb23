//! Log compaction (Kafka's `LogCleaner`, simplified and synchronous): for a log with
//! cleanup.policy=compact whose dirty ratio (bytes written since the last cleaning over
//! all inactive bytes) exceeds min.cleanable.dirty.ratio, build a key → latest offset map
//! over the dirty inactive segments, then rewrite every inactive segment below the
//! cleanable bound keeping only the latest record per key. Tombstones (null values) are
//! dropped once their segment is older than delete.retention.ms.
//!
//! Batches keep their base offset, last offset delta, producer id/epoch/base sequence,
//! leader epoch, timestamp type and codec (Kafka's `filterTo`), so offsets and producer
//! state survive; a batch emptied by cleaning is kept as an empty batch only if it is its
//! producer's last batch. Retained records are re-encoded with the batch's original codec
//! (`kafka_protocol`'s compressors); untouched batches are copied byte for byte.
//!
//! Transactions (Kafka's `CleanedTransactionMetadata`, simplified): nothing at or above
//! the first unstable offset is cleaned, records of aborted transactions never enter the
//! key map and are removed, markers are kept, and a cleaned segment keeps its source's
//! aborted-transaction index.
//!
//! Each segment is written as `<base>.log.cleaned`, fsynced, renamed `.swap`, then the old
//! segment is deleted and the swap renamed into place. Recovery deletes `.cleaned` files
//! and completes `.swap` renames, so a crash at any point leaves a consistent log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{patch, put_varint, put_varlong, Batch, HeaderFields, RecordIter};
use super::config::LogConfig;
use super::error::StorageError;
use super::log::Log;
use super::segment::{Segment, SegmentReader, WalkEnd, CLEANED_SUFFIX, SWAP_SUFFIX};

/// One record kept by the cleaner.
struct Kept {
    offset: i64,
    /// Raw create timestamp (firstTimestamp + delta).
    timestamp: i64,
    attributes: i8,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Bytes,
}

/// Kafka's default `log.cleaner.dedupe.buffer.size`: the memory one cleaning pass may
/// use for its key -> offset map.
pub const DEDUPE_BUFFER_BYTES: usize = 128 * 1024 * 1024;

/// The cleaner's key -> latest offset map (Kafka's `SkimpyOffsetMap`): keys are kept as
/// 128-bit hashes, never as the records' bytes, so a pass holds neither payloads nor
/// keys, and the map stops taking new keys at its capacity.
pub struct OffsetMap {
    offsets: HashMap<u128, i64>,
    capacity: usize,
}

impl OffsetMap {
    /// Bytes per entry of a `HashMap<u128, i64>` with its control bytes and load factor.
    const ENTRY_BYTES: usize = 40;

    pub fn with_capacity_bytes(bytes: usize) -> Self {
        OffsetMap {
            offsets: HashMap::new(),
            capacity: (bytes / Self::ENTRY_BYTES).max(1),
        }
    }

    /// Records `offset` as the latest for `key`. False if the map is full and does not
    /// hold the key yet (it is then not recorded).
    pub fn insert(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = key_hash(key);
        if let Some(o) = self.offsets.get_mut(&hash) {
            *o = (*o).max(offset);
            return true;
        }
        if self.offsets.len() >= self.capacity {
            return false;
        }
        self.offsets.insert(hash, offset);
        true
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(&key_hash(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

/// Two independent SipHash-1-3 runs (Rust's default hasher, fixed keys): 128 bits, as
/// Kafka's MD5, so a collision between distinct keys is out of reach.
fn key_hash(key: &[u8]) -> u128 {
    use std::hash::Hasher;
    let mut hi = std::collections::hash_map::DefaultHasher::new();
    hi.write_u8(0);
    hi.write(key);
    let mut lo = std::collections::hash_map::DefaultHasher::new();
    lo.write_u8(1);
    lo.write(key);
    (u128::from(hi.finish()) << 64) | u128::from(lo.finish())
}

fn cleaner_err(path: &Path, pos: u64, why: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{} at position {pos}: {why}", path.display()))
}

/// Records of a batch with raw timestamps; `None` for a batch that would expand past
/// `limit` (it is kept whole and its keys stay out of the map: the cleaner never expands
/// a bomb, and never drops records it could not read).
fn batch_records(b: &Batch<'_>, limit: usize) -> Result<Option<Vec<Kept>>, String> {
    let payload = match super::codec::decompress(b.compression(), b.records_payload(), limit) {
        Ok(payload) => Bytes::from(payload),
        Err(super::codec::DecompressError::TooLarge { .. }) => {
            tracing::warn!(
                offset = b.base_offset(),
                limit,
                "compaction keeps a batch too large to decompress"
            );
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    for r in RecordIter::new(&payload, b.record_count()) {
        let r = r?;
        out.push(Kept {
            offset: b.base_offset().wrapping_add(r.offset_delta as i64),
            timestamp: b.first_timestamp().wrapping_add(r.timestamp_delta),
            attributes: r.attributes,
            key: r.key.map(|k| payload.slice_ref(k)),
            value: r.value.map(|v| payload.slice_ref(v)),
            headers: payload.slice_ref(r.headers),
        });
    }
    Ok(Some(out))
}

/// Re-encodes a batch with only `kept` records, preserving the header fields Kafka
/// preserves.
fn rebuild_batch(orig: &Batch<'_>, kept: &[Kept]) -> Result<Vec<u8>, String> {
    let first_ts = kept.first().map_or(-1, |r| r.timestamp);
    let mut body = Vec::new();
    for r in kept {
        let mut rec = Vec::new();
        rec.push(r.attributes as u8);
        put_varlong(&mut rec, r.timestamp.wrapping_sub(first_ts));
        put_varint(&mut rec, (r.offset - orig.base_offset()) as i32);
        match &r.key {
            Some(k) => {
                put_varint(&mut rec, k.len() as i32);
                rec.extend_from_slice(k);
            }
            None => put_varint(&mut rec, -1),
        }
        match &r.value {
            Some(v) => {
                put_varint(&mut rec, v.len() as i32);
                rec.extend_from_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        rec.extend_from_slice(&r.headers);
        put_varint(&mut body, rec.len() as i32);
        body.extend_from_slice(&rec);
    }
    let payload = compress(orig.compression(), &body)?;
    let max_ts = if orig.is_log_append_time() || kept.is_empty() {
        orig.max_timestamp()
    } else {
        kept.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    };
    let mut out = Vec::with_capacity(61 + payload.len());
    out.extend_from_slice(&orig.bytes()[..61]);
    let length = (61 - 12 + payload.len()) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[27..35].copy_from_slice(&first_ts.to_be_bytes());
    out[35..43].copy_from_slice(&max_ts.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    out.extend_from_slice(&payload);
    patch::rewrite_crc(&mut out);
    Ok(out)
}

/// Compresses raw records with the codec of the original batch.
fn compress(codec: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
    if body.is_empty() || codec == 0 {
        return Ok(body.to_vec());
    }
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.put_slice(body);
        Ok(())
    };
    let r = match codec {
        1 => Gzip::compress(&mut out, fill),
        2 => Snappy::compress(&mut out, fill),
        3 => Lz4::compress(&mut out, fill),
        4 => Zstd::compress(&mut out, fill),
        c => return Err(format!("unknown codec {c}")),
    };
    r.map_err(|e| format!("compression failed: {e:#}"))?;
    Ok(out.to_vec())
}

impl Log {
    /// Fraction of inactive bytes written since the last cleaning.
    pub fn dirty_ratio(&self) -> f64 {
        let Ok(active) = self.active().map(|s| s.base_offset()) else {
            return 0.0;
        };
        let (mut clean, mut dirty) = (0u64, 0u64);
        for (&base, seg) in self.segments.range(..active) {
            if base < self.first_dirty_offset {
                clean += seg.size();
            } else {
                dirty += seg.size();
            }
        }
        if clean + dirty == 0 {
            0.0
        } else {
            dirty as f64 / (clean + dirty) as f64
        }
    }

    /// Compacts the log if it is compacted and its dirty ratio reaches
    /// min.cleanable.dirty.ratio, cleaning only segments wholly below both the active
    /// segment and `max_cleanable_offset` (pass the high watermark: unreplicated data must
    /// not be cleaned). Returns whether anything was rewritten. All three phases under the
    /// caller's `&mut`; the `LogManager` runs them with the lock released in between
    /// (see [`Log::plan_clean`]).
    pub fn clean(&mut self, now_ms: i64, max_cleanable_offset: i64) -> Result<bool, StorageError> {
        let Some(plan) = self.plan_clean(now_ms, max_cleanable_offset)? else {
            return Ok(false);
        };
        let rewritten = plan.rewrite(now_ms);
        self.finish_clean(rewritten)
    }

    /// Phase 1 of a cleaning pass, under the log's lock and cheap: chooses the segments
    /// and takes what the rewrite needs (its own file handles, the config, producers'
    /// last offsets). `None` when there is nothing to clean. Phase 2,
    /// [`CleanPlan::rewrite`], reads and writes without the lock, so appends, fetches and
    /// the broker's other work go on; phase 3, [`Log::finish_clean`], swaps the result in
    /// under the lock if the log did not change under it (Kafka's cleaner works on
    /// inactive segments the same way and swaps with `replaceSegments`).
    pub fn plan_clean(
        &mut self,
        now_ms: i64,
        max_cleanable_offset: i64,
    ) -> Result<Option<CleanPlan>, StorageError> {
        let r = self.plan_clean_unguarded(now_ms, max_cleanable_offset);
        self.publish();
        self.guarded(r)
    }

    fn plan_clean_unguarded(
        &mut self,
        now_ms: i64,
        max_cleanable_offset: i64,
    ) -> Result<Option<CleanPlan>, StorageError> {
        if self.is_dir_offline() {
            return Err(StorageError::LogDirOffline(self.tp.to_string()));
        }
        if self.closed || !self.config.cleanup_policy.compacts() {
            return Ok(None);
        }
        // Segments eligible: inactive and ending at or below the bound, which open or
        // unreplicated transactions lower (their outcome decides which records win).
        let max_cleanable_offset =
            max_cleanable_offset.min(self.first_unstable_offset().unwrap_or(i64::MAX));
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut eligible = Vec::new();
        let min_lag = self.config.min_compaction_lag_ms;
        for w in bases.windows(2) {
            // min.compaction.lag.ms: a segment holding records younger than the lag, and
            // everything after it, stays uncleanable (LogCleanerManager.cleanableOffsets).
            let too_young = min_lag > 0
                && self.segments[&w[0]].largest_timestamp() > now_ms.saturating_sub(min_lag);
            if w[1] > max_cleanable_offset || too_young {
                break;
            }
            eligible.push(w[0]);
        }
        let Some(&last) = eligible.last() else {
            return Ok(None);
        };
        let end_offset = bases[bases.iter().position(|&b| b == last).map_or(0, |i| i + 1)];
        let dirty: u64 = eligible
            .iter()
            .filter(|&&b| b >= self.first_dirty_offset)
            .map(|b| self.segments[b].size())
            .sum();
        let total: u64 = eligible.iter().map(|b| self.segments[b].size()).sum();
        // max.compaction.lag.ms (KIP-354): dirty records older than the lag force a
        // cleaning whatever the dirty ratio.
        let forced = eligible
            .iter()
            .filter(|&&b| b >= self.first_dirty_offset)
            .filter_map(|b| self.segments[b].first_batch_timestamp())
            .min()
            .is_some_and(|first| first.saturating_add(self.config.max_compaction_lag_ms) < now_ms);
        let below_ratio = (dirty as f64) < self.config.min_cleanable_dirty_ratio * total as f64;
        if dirty == 0 || (below_ratio && !forced) {
            return Ok(None);
        }
        tracing::info!(partition = %self.tp, segments = eligible.len(), dirty_bytes = dirty, "cleaning log");
        let segments = eligible
            .iter()
            .map(|b| self.segments[b].reader())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(CleanPlan {
            tp: self.tp.to_string(),
            dir: self.dir.clone(),
            config: self.config.clone(),
            decompress_limit: self.decompress_limit(),
            first_dirty_offset: self.first_dirty_offset,
            end_offset,
            truncations: self.truncations,
            producer_last_offsets: self.producers.last_offsets(),
            aborted: aborted_ranges(&self.aborted_transactions(), end_offset),
            segments,
            dedupe_buffer_bytes: DEDUPE_BUFFER_BYTES,
        }))
    }

    /// Phase 3: swaps the rewritten segments in, if every planned segment is still there
    /// unchanged (same base, same size, no truncation since the plan); otherwise the work
    /// is thrown away and the next pass starts over. Errors of phase 2 are reported here,
    /// where it is known whether the log still exists.
    pub fn finish_clean(
        &mut self,
        rewritten: Result<Rewritten, StorageError>,
    ) -> Result<bool, StorageError> {
        let r = self.finish_clean_unguarded(rewritten);
        self.publish();
        self.guarded(r)
    }

    fn finish_clean_unguarded(
        &mut self,
        rewritten: Result<Rewritten, StorageError>,
    ) -> Result<bool, StorageError> {
        if self.closed {
            // Deleted or closed meanwhile: whatever phase 2 made is discarded with it
            // (recovery deletes `.cleaned` files, should any survive).
            if let Ok(r) = rewritten {
                r.discard();
            }
            return Ok(false);
        }
        let rewritten = rewritten?;
        let unchanged = rewritten.truncations == self.truncations
            && rewritten
                .planned
                .iter()
                .all(|&(base, size)| self.segments.get(&base).is_some_and(|s| s.size() == size));
        if !unchanged {
            tracing::info!(partition = %self.tp, "log changed during cleaning; discarding the pass");
            rewritten.discard();
            return Ok(false);
        }
        let cleaned = !rewritten.segments.is_empty();
        for out in rewritten.segments {
            self.replace_segment(out)?;
        }
        self.first_dirty_offset = rewritten.end_offset;
        self.dir_dirty = true;
        Ok(cleaned)
    }

    /// Kafka's `replaceSegments` for one cleaned segment (written as `.cleaned`): renamed
    /// `.swap`, put in the map in place of the old one, the old files deleted, the swap
    /// renamed into place. An I/O error (or a crash) at any step leaves the `.swap` file
    /// that recovery completes, and the log always keeps its segments.
    fn replace_segment(&mut self, mut out: Segment) -> Result<(), StorageError> {
        let base = out.base_offset();
        out.change_suffix(SWAP_SUFFIX)?;
        super::checkpoint::fsync_dir(&self.dir)?;
        let new_size = out.size();
        let old = self.segments.insert(base, out);
        let old_size = old.as_ref().map_or(0, |s| s.size());
        if let Some(old) = old {
            old.delete_files()?;
        }
        if let Some(seg) = self.segments.get_mut(&base) {
            seg.change_suffix("")?;
        }
        super::checkpoint::fsync_dir(&self.dir)?;
        tracing::info!(partition = %self.tp, base_offset = base, old_size, new_size, "cleaned segment");
        Ok(())
    }
}

/// A cleaning pass planned under the log's lock (see [`Log::plan_clean`]).
pub struct CleanPlan {
    tp: String,
    dir: PathBuf,
    config: LogConfig,
    decompress_limit: usize,
    first_dirty_offset: i64,
    end_offset: i64,
    truncations: u64,
    producer_last_offsets: HashMap<i64, i64>,
    /// Producer id -> (first offset, marker offset) of its aborted transactions.
    aborted: HashMap<i64, Vec<(i64, i64)>>,
    segments: Vec<SegmentReader>,
    /// Memory for the key -> offset map (`log.cleaner.dedupe.buffer.size`).
    dedupe_buffer_bytes: usize,
}

/// What phase 2 produced: cleaned segments (suffix `.cleaned`, flushed) waiting for
/// [`Log::finish_clean`].
pub struct Rewritten {
    planned: Vec<(i64, u64)>,
    truncations: u64,
    end_offset: i64,
    segments: Vec<Segment>,
}

impl Rewritten {
    /// Deletes the cleaned files of a pass that will not be swapped in (best effort: a
    /// leftover `.cleaned` file is deleted by recovery).
    fn discard(self) {
        for seg in self.segments {
            let _ = seg.delete_files();
        }
    }
}

/// Aborted transactions that started below `end_offset`, by producer.
fn aborted_ranges(
    all: &[super::txn_index::AbortedTxn],
    end_offset: i64,
) -> HashMap<i64, Vec<(i64, i64)>> {
    let mut out: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for t in all.iter().filter(|t| t.first_offset < end_offset) {
        out.entry(t.producer_id)
            .or_default()
            .push((t.first_offset, t.last_offset));
    }
    out
}

impl CleanPlan {
    /// Whether `b` holds records of an aborted transaction.
    fn is_aborted(&self, b: &Batch<'_>) -> bool {
        b.is_transactional()
            && !b.is_control()
            && self.aborted.get(&b.producer_id()).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(first, last)| first <= b.base_offset() && b.base_offset() <= last)
            })
    }

    /// Bounds the pass's key -> offset map to `bytes` (`log.cleaner.dedupe.buffer.size`).
    pub fn with_dedupe_buffer(mut self, bytes: usize) -> CleanPlan {
        self.dedupe_buffer_bytes = bytes;
        self
    }

    /// Phase 2, without the log's lock: builds the key -> offset map over the planned
    /// segments and writes each segment that loses records as a `.cleaned` segment.
    pub fn rewrite(self, now_ms: i64) -> Result<Rewritten, StorageError> {
        let (latest, filled_in) = self.offset_map()?;
        // A full map still tracks the keys it holds to the end, so what it drops is
        // superseded; keys it could not hold stay, and their segments stay dirty.
        let end_offset = match filled_in {
            Some(base) => {
                tracing::info!(partition = %self.tp, base_offset = base, "cleaner offset map full; later segments stay dirty");
                base.max(self.first_dirty_offset)
            }
            None => self.end_offset,
        };
        let mut done = Rewritten {
            planned: self
                .segments
                .iter()
                .map(|s| (s.base_offset, s.size))
                .collect(),
            truncations: self.truncations,
            end_offset,
            segments: Vec::new(),
        };
        for seg in &self.segments {
            match self.clean_segment(seg, &latest, now_ms) {
                Ok(Some(out)) => done.segments.push(out),
                Ok(None) => {}
                Err(e) => {
                    done.discard();
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Key -> latest offset over every planned segment, in a map of bounded size; also
    /// the base of the segment where the map filled, if it did.
    fn offset_map(&self) -> Result<(OffsetMap, Option<i64>), StorageError> {
        let limit = self.decompress_limit;
        let mut latest = OffsetMap::with_capacity_bytes(self.dedupe_buffer_bytes);
        let mut filled_in: Option<i64> = None;
        for seg in &self.segments {
            let mut err = None;
            let end = seg.walk(|pos, b| {
                if b.is_control() || self.is_aborted(b) {
                    return Ok(true);
                }
                match batch_records(b, limit) {
                    Ok(None) => Ok(true),
                    Ok(Some(recs)) => {
                        for r in recs {
                            if let Some(k) = r.key {
                                if !latest.insert(&k, r.offset) && filled_in.is_none() {
                                    filled_in = Some(seg.base_offset);
                                }
                            }
                        }
                        Ok(true)
                    }
                    Err(e) => {
                        err = Some(cleaner_err(&seg.path, pos, e));
                        Ok(false)
                    }
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
            if let WalkEnd::Bad { pos, error } = end {
                return Err(cleaner_err(&seg.path, pos, error));
            }
        }
        Ok((latest, filled_in))
    }

    /// Rewrites one segment as `.cleaned`; `None` if it would lose nothing.
    fn clean_segment(
        &self,
        seg: &SegmentReader,
        latest: &OffsetMap,
        now_ms: i64,
    ) -> Result<Option<Segment>, StorageError> {
        let drop_tombstones =
            now_ms.saturating_sub(seg.largest_timestamp) > self.config.delete_retention_ms;
        let mut out = Segment::create(
            &self.dir,
            seg.base_offset,
            &self.config,
            CLEANED_SUFFIX,
            now_ms,
        )?;
        let limit = self.decompress_limit;
        let mut failure: Option<StorageError> = None;
        let mut changed = false;
        let end = seg.walk(|pos, b| {
            if b.is_control() {
                out.append(b.bytes(), now_ms)?;
                return Ok(true);
            }
            if self.is_aborted(b) {
                changed = true;
                let keep_empty =
                    self.producer_last_offsets.get(&b.producer_id()) == Some(&b.last_offset());
                if keep_empty {
                    match rebuild_batch(b, &[]) {
                        Ok(bytes) => out.append(&bytes, now_ms)?,
                        Err(e) => {
                            failure = Some(cleaner_err(&seg.path, pos, e));
                            return Ok(false);
                        }
                    }
                }
                return Ok(true);
            }
            let recs = match batch_records(b, limit) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    out.append(b.bytes(), now_ms)?;
                    return Ok(true);
                }
                Err(e) => {
                    failure = Some(cleaner_err(&seg.path, pos, e));
                    return Ok(false);
                }
            };
            let n = recs.len();
            let kept: Vec<Kept> = recs
                .into_iter()
                .filter(|r| match &r.key {
                    Some(k) => {
                        latest.get(k).is_none_or(|o| o <= r.offset)
                            && !(drop_tombstones && r.value.is_none())
                    }
                    None => true,
                })
                .collect();
            if kept.len() == n {
                out.append(b.bytes(), now_ms)?;
                return Ok(true);
            }
            changed = true;
            let keep_empty = b.has_producer_id()
                && self.producer_last_offsets.get(&b.producer_id()) == Some(&b.last_offset());
            if kept.is_empty() && !keep_empty {
                return Ok(true);
            }
            match rebuild_batch(b, &kept) {
                Ok(bytes) => out.append(&bytes, now_ms)?,
                Err(e) => {
                    failure = Some(cleaner_err(&seg.path, pos, e));
                    return Ok(false);
                }
            }
            Ok(true)
        });
        let end = match end {
            Ok(end) => end,
            Err(e) => {
                let _ = out.delete_files();
                return Err(e);
            }
        };
        let bad = match end {
            WalkEnd::Bad { pos, error } => Some(cleaner_err(&seg.path, pos, error)),
            _ => None,
        };
        if let Some(e) = failure.or(bad) {
            out.delete_files()?;
            return Err(e);
        }
        if !changed {
            out.delete_files()?;
            return Ok(None);
        }
        if let Err(e) = out.txn_index_mut().replace_all(seg.aborted.clone()) {
            let _ = out.delete_files();
            return Err(e);
        }
        out.on_become_inactive()?;
        out.flush()?;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::OffsetMap;

    #[test]
    fn a_full_offset_map_keeps_tracking_the_keys_it_holds() {
        let mut map = OffsetMap::with_capacity_bytes(2 * OffsetMap::ENTRY_BYTES);
        assert!(map.insert(b"a", 0));
        assert!(map.insert(b"b", 1));
        assert!(!map.insert(b"c", 2), "full: a new key is refused");
        assert!(map.insert(b"a", 3), "a held key still moves forward");
        assert!(map.insert(b"a", 2), "and never backwards");
        assert_eq!(
            (map.get(b"a"), map.get(b"b"), map.get(b"c")),
            (Some(3), Some(1), None)
        );
        assert_eq!(map.len(), 2);
        // What the cleaner keeps: a record unless the map holds a newer offset for its key.
        let keeps = |key: &[u8], offset: i64| map.get(key).is_none_or(|o| o <= offset);
        assert!(!keeps(b"a", 0), "superseded");
        assert!(keeps(b"a", 3), "latest");
        assert!(keeps(b"c", 2), "unmapped keys are never dropped");
    }

    #[test]
    fn the_map_holds_hashes_not_keys() {
        let mut map = OffsetMap::with_capacity_bytes(1 << 20);
        let big = vec![7u8; 1 << 20];
        assert!(map.insert(&big, 9));
        assert_eq!(map.get(&big), Some(9));
        assert_eq!(map.get(&big[1..]), None);
        assert!(std::mem::size_of::<(u128, i64)>() <= OffsetMap::ENTRY_BYTES);
    }
}
