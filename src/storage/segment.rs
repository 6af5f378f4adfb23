//! One log segment (Kafka's `LogSegment`): `NNNNNNNNNNNNNNNNNNNN.log` holding record batches
//! exactly as on the wire, plus its sparse `.index` and `.timeindex`. Reads use positioned
//! reads (`pread`), appends positioned writes at the tracked end.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{Batch, BatchHeader, BatchIter, HeaderFields, BATCH_HEADER_SIZE};
use super::config::LogConfig;
use super::error::{IoContext, StorageError};
use super::fileio::ReadMode;
use super::index_file::remove_if_exists;
use super::offset_index::OffsetIndex;
use super::read_view::SegmentView;
use super::scan::corrupt;
pub use super::scan::{walk_batches, HeaderScanner, WalkEnd};
use super::time_index::TimeIndex;
use super::txn_index::{TxnIndex, TXN_INDEX_EXT};

mod lookup;

pub const LOG_EXT: &str = ".log";
pub const INDEX_EXT: &str = ".index";
pub const TIME_INDEX_EXT: &str = ".timeindex";
pub const DELETED_SUFFIX: &str = ".deleted";
pub const CLEANED_SUFFIX: &str = ".cleaned";
pub const SWAP_SUFFIX: &str = ".swap";

/// `<dir>/<20-digit base><ext><suffix>`.
pub fn segment_file(dir: &Path, base_offset: i64, ext: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{ext}{suffix}"))
}

/// Parses `NNNNNNNNNNNNNNNNNNNN.<ext><suffix>` into the base offset.
pub fn parse_segment_file(name: &str, ext: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix(ext)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().filter(|&o: &i64| o >= 0)
}

/// Bytes read from one segment by a fetch.
#[derive(Debug)]
pub struct SegmentRead {
    pub data: Vec<u8>,
    /// True when the read stopped because of `max_bytes` or `max_offset` (the caller must
    /// not continue with the next segment); false when the segment was exhausted.
    pub hit_limit: bool,
}

/// Outcome of rebuilding a segment from its bytes.
#[derive(Debug, Clone, Copy)]
pub struct RecoverOutcome {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
}

#[derive(Debug)]
/// A segment's bytes as they were when the reader was taken: inactive segments never
/// change in place, and a file deleted meanwhile stays readable through the handle.
pub struct SegmentReader {
    pub base_offset: i64,
    file: File,
    pub path: PathBuf,
    pub size: u64,
    pub largest_timestamp: i64,
    /// The segment's aborted transactions (a cleaned copy keeps them).
    pub aborted: Vec<super::txn_index::AbortedTxn>,
}

impl SegmentReader {
    pub fn walk(
        &self,
        f: impl FnMut(u64, &Batch<'_>) -> Result<bool, StorageError>,
    ) -> Result<WalkEnd, StorageError> {
        walk_batches(&self.file, &self.path, 0, self.size, f)
    }
}

#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    dir: PathBuf,
    suffix: String,
    /// Shared with read views, which read through it without the log's lock.
    file: Arc<File>,
    /// `log_path()`, kept for read views.
    path: Arc<Path>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Aborted transactions whose ABORT marker is in this segment.
    txn_index: TxnIndex,
    /// The `.txnindex` file was unreadable and is gone: the log rebuilds it.
    txn_index_lost: bool,
    /// Offset after the last batch in this segment (base offset when empty).
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_last_index_entry: u64,
    /// Max timestamp of the first batch (Kafka's `rollingBasedTimestamp`).
    rolling_based_timestamp: Option<i64>,
    created_ms: i64,
    last_modified_ms: i64,
    index_interval_bytes: u64,
    dirty: bool,
}

impl Segment {
    fn log_path_for(dir: &Path, base: i64, suffix: &str) -> PathBuf {
        segment_file(dir, base, LOG_EXT, suffix)
    }

    /// Creates a new empty segment (existing files at that base are truncated).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        suffix: &str,
        now_ms: i64,
    ) -> Result<Segment, StorageError> {
        let log_path = Self::log_path_for(dir, base_offset, suffix);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .ctx(&log_path)?;
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            let p = segment_file(dir, base_offset, ext, suffix);
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
                .ctx(&p)?;
        }
        remove_if_exists(&segment_file(dir, base_offset, TXN_INDEX_EXT, suffix))?;
        Self::assemble(dir, base_offset, config, suffix, file, 0, now_ms)
    }

    /// Opens an existing segment's files (indexes created empty if missing). Returns the
    /// segment and whether its index files were missing or unreadable (then the caller
    /// must `recover` it). In-memory tail state is NOT loaded: call `load_tail_state` or
    /// `recover`.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        suffix: &str,
        now_ms: i64,
    ) -> Result<(Segment, bool), StorageError> {
        let log_path = Self::log_path_for(dir, base_offset, suffix);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .ctx(&log_path)?;
        let meta = file.metadata().ctx(&log_path)?;
        let size = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now_ms, |d| d.as_millis() as i64);
        let mut needs_rebuild = false;
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            let p = segment_file(dir, base_offset, ext, suffix);
            if !p.exists() {
                needs_rebuild = true;
            }
        }
        let seg = match Self::assemble(dir, base_offset, config, suffix, file, size, now_ms) {
            Ok(s) => s,
            Err(StorageError::Corrupt(why)) => {
                tracing::warn!(%why, "unreadable index; rebuilding");
                for ext in [INDEX_EXT, TIME_INDEX_EXT] {
                    remove_if_exists(&segment_file(dir, base_offset, ext, suffix))?;
                }
                needs_rebuild = true;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&log_path)
                    .ctx(&log_path)?;
                Self::assemble(dir, base_offset, config, suffix, file, size, now_ms)?
            }
            Err(e) => return Err(e),
        };
        let mut seg = seg;
        seg.last_modified_ms = mtime;
        Ok((seg, needs_rebuild))
    }

    fn assemble(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        suffix: &str,
        file: File,
        size: u64,
        now_ms: i64,
    ) -> Result<Segment, StorageError> {
        let offset_index = OffsetIndex::open(
            &segment_file(dir, base_offset, INDEX_EXT, suffix),
            base_offset,
            config.max_offset_index_entries(),
        )?;
        let time_index = TimeIndex::open(
            &segment_file(dir, base_offset, TIME_INDEX_EXT, suffix),
            base_offset,
            config.max_time_index_entries(),
        )?;
        let txn_path = segment_file(dir, base_offset, TXN_INDEX_EXT, suffix);
        let (txn_index, txn_index_lost) = match TxnIndex::open(&txn_path, base_offset) {
            Ok(t) => (t, false),
            Err(StorageError::Corrupt(why)) => {
                tracing::warn!(%why, "unreadable transaction index; rebuilding it");
                remove_if_exists(&txn_path)?;
                (TxnIndex::empty(&txn_path, base_offset), true)
            }
            Err(e) => return Err(e),
        };
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            suffix: suffix.to_string(),
            file: Arc::new(file),
            path: Arc::from(Self::log_path_for(dir, base_offset, suffix)),
            size,
            offset_index,
            time_index,
            txn_index,
            txn_index_lost,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: size,
            rolling_based_timestamp: None,
            created_ms: now_ms,
            last_modified_ms: now_ms,
            index_interval_bytes: config.index_interval_bytes,
            dirty: false,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    /// Whether `view` shows this segment as it is now.
    pub fn is_shown_by(&self, view: &SegmentView) -> bool {
        view.shows(self.base_offset, self.size, &self.file)
    }

    /// This segment as a fetch reads it now: its file, its current size and its index.
    pub fn view(&self) -> SegmentView {
        SegmentView::new(
            self.base_offset,
            self.file.clone(),
            self.path.clone(),
            self.size,
            self.offset_index.file().shared_entries(),
            self.txn_index.shared_entries(),
        )
    }
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }
    pub fn txn_index_mut(&mut self) -> &mut TxnIndex {
        &mut self.txn_index
    }
    /// Whether the `.txnindex` was unreadable at open (and must be rebuilt).
    pub fn txn_index_lost(&self) -> bool {
        self.txn_index_lost
    }
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The first batch's max timestamp (Kafka's `rollingBasedTimestamp`), if known.
    pub fn first_batch_timestamp(&self) -> Option<i64> {
        self.rolling_based_timestamp.filter(|ts| *ts >= 0)
    }

    pub fn last_modified_ms(&self) -> i64 {
        self.last_modified_ms
    }

    /// Kafka's `largestTimestamp`: max record timestamp, or the last-modified time when
    /// the segment has no timestamps.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.last_modified_ms
        }
    }

    /// A read-only view of this segment with a handle of its own on the file, for work
    /// done outside the log's lock (the cleaner).
    pub fn reader(&self) -> Result<SegmentReader, StorageError> {
        Ok(SegmentReader {
            base_offset: self.base_offset,
            file: self.file.try_clone().ctx(&self.log_path())?,
            path: self.log_path(),
            size: self.size,
            largest_timestamp: self.largest_timestamp(),
            aborted: self.txn_index.entries(),
        })
    }

    /// Applies a new config (index interval and capacity).
    pub fn set_config(&mut self, config: &LogConfig) {
        self.index_interval_bytes = config.index_interval_bytes;
        self.offset_index
            .file_mut()
            .set_max_entries(config.max_offset_index_entries());
        self.time_index
            .file_mut()
            .set_max_entries(config.max_time_index_entries());
    }

    /// Kafka's `shouldRoll`: size, age (by the first batch's max timestamp, else creation
    /// time), full indexes, or offsets that no longer fit a 32-bit relative offset.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        append_size: u64,
        max_timestamp_in_append: i64,
        last_offset_in_append: i64,
        now_ms: i64,
    ) -> Option<&'static str> {
        let max_bytes = config.segment_bytes.min(i32::MAX as u64);
        if self.size > 0 && self.size + append_size > max_bytes {
            return Some("segment.bytes reached");
        }
        if self.size > 0 {
            let waited = match self.rolling_based_timestamp {
                Some(ts) if ts >= 0 => max_timestamp_in_append.saturating_sub(ts),
                _ => now_ms.saturating_sub(self.created_ms),
            };
            if waited > config.max_segment_ms() {
                return Some("segment.ms elapsed");
            }
        }
        if self.offset_index.is_full() || self.time_index.is_full() {
            return Some("index full");
        }
        let rel = last_offset_in_append - self.base_offset;
        if !(0..=i32::MAX as i64).contains(&rel) {
            return Some("relative offset overflow");
        }
        None
    }

    /// Appends already-validated batches with final offsets, adding index entries every
    /// `index.interval.bytes` (Kafka: entry = (batch last offset, batch position)).
    pub fn append(&mut self, bytes: &[u8], now_ms: i64) -> Result<(), StorageError> {
        let mut parts = Vec::new();
        for item in BatchIter::new(bytes) {
            let (pos, b) = item.map_err(|e| {
                StorageError::InvalidArgument(format!("append of malformed batch: {e}"))
            })?;
            parts.push((b.header(), &bytes[pos + BATCH_HEADER_SIZE..pos + b.size()]));
        }
        self.append_parts(&parts, now_ms)
    }

    /// Appends batches given as (header, body after the header) pairs, written with one
    /// vectored positioned write: the leader patches only header copies, never the
    /// request's record bytes.
    pub fn append_parts(
        &mut self,
        parts: &[(BatchHeader, &[u8])],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let mut offset_entries = Vec::new();
        let mut time_entries = Vec::new();
        let mut physical = self.size;
        let mut max_ts = self.max_timestamp;
        let mut off_max = self.offset_of_max_timestamp;
        let mut since = self.bytes_since_last_index_entry;
        let mut rolling = self.rolling_based_timestamp;
        let mut next = self.next_offset;
        for (b, body) in parts {
            debug_assert_eq!(
                b.size(),
                BATCH_HEADER_SIZE + body.len(),
                "header length matches the body"
            );
            if b.max_timestamp() > max_ts {
                max_ts = b.max_timestamp();
                off_max = b.last_offset();
            }
            if since > self.index_interval_bytes {
                offset_entries.push((b.last_offset(), physical as u32));
                time_entries.push((max_ts, off_max));
                since = 0;
            }
            since += b.size() as u64;
            physical += b.size() as u64;
            rolling.get_or_insert(b.max_timestamp());
            debug_assert!(
                b.base_offset() >= next,
                "offsets must increase within a segment"
            );
            next = b.next_offset();
        }
        let mut slices = Vec::with_capacity(parts.len() * 2);
        for (h, body) in parts {
            slices.push(std::io::IoSlice::new(&h.0));
            slices.push(std::io::IoSlice::new(body));
        }
        // Any failure from here on (ENOSPC on the data or on an index entry, EIO) rolls
        // the segment back to the last good position: the file and both indexes are cut
        // back and no in-memory state moves, so offsets are never handed out twice and a
        // half-written batch never stays (Kafka takes the directory offline on any
        // IOException here; the caller does that too, this keeps the files clean for the
        // next start).
        let (old_size, old_offset_entries, old_time_entries) =
            (self.size, self.offset_index.len(), self.time_index.len());
        let written = super::fileio::write_all_vectored_at(&self.file, &mut slices, self.size)
            .map_err(|e| StorageError::io(self.log_path(), e))
            .and_then(|()| {
                for &(o, p) in &offset_entries {
                    self.offset_index.append(o, p)?;
                }
                for &(t, o) in &time_entries {
                    self.time_index.maybe_append(t, o, false)?;
                }
                Ok(())
            });
        if let Err(e) = written {
            if let Err(rollback) =
                self.rollback_append(old_size, old_offset_entries, old_time_entries)
            {
                tracing::error!(segment = %self.log_path().display(), error = %rollback, "cannot roll back a failed append");
            }
            return Err(e);
        }
        self.size = physical;
        self.dirty = true;
        self.last_modified_ms = now_ms;
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = off_max;
        self.bytes_since_last_index_entry = since;
        self.rolling_based_timestamp = rolling;
        self.next_offset = next;
        Ok(())
    }

    /// Cuts the log file and both indexes back to the state before a failed append.
    fn rollback_append(
        &mut self,
        size: u64,
        offset_entries: usize,
        time_entries: usize,
    ) -> Result<(), StorageError> {
        self.dirty = true;
        let path = self.log_path();
        self.file.set_len(size).ctx(&path)?;
        self.offset_index.file_mut().rollback_to(offset_entries)?;
        self.time_index.file_mut().rollback_to(time_entries)?;
        tracing::warn!(segment = %path.display(), size, "rolled back a failed append");
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn break_files_for_test(&mut self, log: bool, index: bool) {
        let path = self.log_path();
        self.file = Arc::new(if log {
            OpenOptions::new().read(true).open(&path).unwrap()
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap()
        });
        if index {
            self.offset_index.file_mut().reopen_read_only_for_test();
        } else {
            self.offset_index.file_mut().reopen_for_test();
        }
    }

    /// Walks every complete batch of the segment (see [`walk_batches`]).
    pub fn walk(
        &self,
        f: impl FnMut(u64, &Batch<'_>) -> Result<bool, StorageError>,
    ) -> Result<WalkEnd, StorageError> {
        walk_batches(&self.file, &self.log_path(), 0, self.size, f)
    }

    /// Reads `len` bytes at `pos` (the fetch path: no zero-fill of a buffer `pread`
    /// overwrites anyway).
    pub fn read_bytes(&self, pos: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        super::fileio::read_exact_at_uninit(&self.file, pos, len)
            .map_err(|e| StorageError::io(self.log_path(), e))
    }

    /// Header scanner from `pos` to the end of the segment.
    pub fn headers_from(&self, pos: u64) -> HeaderScannerOwned<'_> {
        HeaderScannerOwned {
            path: self.log_path(),
            seg: self,
            pos,
        }
    }

    /// Kafka's `translateOffset` (see [`SegmentView::translate_offset`]).
    pub fn translate_offset(
        &self,
        target: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        self.view().translate_offset(target, ReadMode::Blocking)
    }

    /// Reads whole batches from `start_pos` (see [`SegmentView::read`]).
    pub fn read(
        &self,
        start_pos: u64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> Result<SegmentRead, StorageError> {
        self.view().read(
            start_pos,
            max_bytes,
            max_offset,
            min_one,
            ReadMode::Blocking,
        )
    }

    /// Reads and parses the complete batch at `pos` (header already known).
    pub fn read_batch(&self, pos: u64, hdr: &BatchHeader) -> Result<Vec<u8>, StorageError> {
        let bytes = self.read_bytes(pos, hdr.size())?;
        let b = Batch::parse(&bytes).map_err(|e| corrupt(&self.log_path(), pos, e))?;
        b.verify_crc()
            .map_err(|e| corrupt(&self.log_path(), pos, e))?;
        Ok(bytes)
    }

    /// Loads max timestamp, next offset and index bookkeeping for a segment whose indexes
    /// are trusted, by scanning from the last offset-index entry to the end. Fails with
    /// `Corrupt` if the indexes and the log disagree (the caller then recovers it).
    pub fn load_tail_state(&mut self) -> Result<(), StorageError> {
        let path = self.log_path();
        self.offset_index.sanity_check(self.size).map_err(|why| {
            StorageError::Corrupt(format!(
                "{}: {why}",
                self.offset_index.file().path().display()
            ))
        })?;
        let last_entry = self.offset_index.last_entry();
        let start = last_entry.map_or(0, |e| e.position as u64);
        let (mut max_ts, mut off_max) = self
            .time_index
            .last_entry()
            .map_or((-1, self.base_offset), |e| (e.timestamp, e.offset));
        let mut next = self.base_offset;
        let mut scan = HeaderScanner::new(&self.file, &path, start, self.size);
        let mut first = true;
        while let Some((_, hdr)) = scan.next_header()? {
            if first {
                if let Some(e) = last_entry {
                    if hdr.last_offset() != e.offset {
                        return Err(StorageError::Corrupt(format!(
                            "{}: last index entry says offset {} but the batch there ends at {}",
                            self.offset_index.file().path().display(),
                            e.offset,
                            hdr.last_offset()
                        )));
                    }
                }
                first = false;
            }
            if hdr.max_timestamp() > max_ts {
                max_ts = hdr.max_timestamp();
                off_max = hdr.last_offset();
            }
            next = hdr.next_offset();
        }
        if self.size > 0 && next == self.base_offset {
            // Only possible if the last index entry points at the end: inconsistent.
            return Err(StorageError::Corrupt(format!(
                "{}: no batch after the last index entry",
                path.display()
            )));
        }
        self.time_index.sanity_check(next).map_err(|why| {
            StorageError::Corrupt(format!(
                "{}: {why}",
                self.time_index.file().path().display()
            ))
        })?;
        self.next_offset = next;
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = off_max;
        self.bytes_since_last_index_entry = self.size - start;
        self.rolling_based_timestamp = if self.size > 0 {
            let mut s = HeaderScanner::new(&self.file, &path, 0, self.size);
            s.next_header()?.map(|(_, h)| h.max_timestamp())
        } else {
            None
        };
        Ok(())
    }

    /// Kafka's `LogSegment.recover`: re-reads every batch, verifying CRCs and offsets,
    /// rebuilds both indexes and truncates the file at the first invalid batch. `visit`
    /// sees every valid batch (producer state, epoch cache). `min_next_offset` is the
    /// smallest acceptable base offset of the first batch (end of the previous segment).
    pub fn recover(
        &mut self,
        min_next_offset: i64,
        visit: &mut dyn FnMut(&Batch<'_>),
    ) -> Result<RecoverOutcome, StorageError> {
        let path = self.log_path();
        let mut offset_entries = Vec::new();
        let mut max_ts = -1i64;
        let mut off_max = self.base_offset;
        let mut last_indexed_pos = 0u64;
        let mut next = self.base_offset.max(min_next_offset);
        let mut first_ts = None;
        let mut time_entries: Vec<(i64, i64)> = Vec::new();
        let base = self.base_offset;
        let interval = self.index_interval_bytes;
        let mut problem: Option<String> = None;
        let end = walk_batches(&self.file, &path, 0, self.size, |pos, b| {
            if let Err(e) = b.verify_crc() {
                problem = Some(e.to_string());
                return Ok(false);
            }
            if pos + b.size() as u64 > i32::MAX as u64 {
                problem = Some("segment data beyond 2 GiB".into());
                return Ok(false);
            }
            let rel_last = b.last_offset().wrapping_sub(base);
            if b.base_offset() < next
                || b.last_offset_delta() < 0
                || !(0..=i32::MAX as i64).contains(&rel_last)
            {
                problem = Some(format!(
                    "batch offsets {}..={} out of order or out of range (expected >= {next})",
                    b.base_offset(),
                    b.last_offset()
                ));
                return Ok(false);
            }
            if b.max_timestamp() > max_ts {
                max_ts = b.max_timestamp();
                off_max = b.last_offset();
            }
            if pos - last_indexed_pos > interval {
                offset_entries.push((b.last_offset(), pos as u32));
                time_entries.push((max_ts, off_max));
                last_indexed_pos = pos;
            }
            first_ts.get_or_insert(b.max_timestamp());
            next = b.next_offset();
            visit(b);
            Ok(true)
        })?;
        let valid = match end {
            WalkEnd::Complete => self.size,
            WalkEnd::Stopped(pos) => pos,
            WalkEnd::Bad { pos, error } => {
                problem = Some(error.to_string());
                pos
            }
        };
        let truncated = self.size - valid;
        if truncated > 0 {
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = valid,
                truncated_bytes = truncated,
                reason = problem.as_deref().unwrap_or("invalid batch"),
                "found invalid bytes in segment; truncating"
            );
            self.file.set_len(valid).ctx(&path)?;
            self.size = valid;
        }
        // Rebuild indexes from scratch.
        self.offset_index.file_mut().replace_all(Vec::new())?;
        self.time_index.file_mut().replace_all(Vec::new())?;
        for (o, p) in offset_entries {
            self.offset_index.append(o, p)?;
        }
        for (t, o) in time_entries {
            self.time_index.maybe_append(t, o, false)?;
        }
        if max_ts >= 0 {
            self.time_index.maybe_append(max_ts, off_max, true)?;
        }
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = off_max;
        self.next_offset = if self.size == 0 {
            self.base_offset
        } else {
            next
        };
        self.bytes_since_last_index_entry = self.size - last_indexed_pos;
        self.rolling_based_timestamp = first_ts;
        self.dirty = true;
        Ok(RecoverOutcome {
            valid_bytes: valid,
            truncated_bytes: truncated,
        })
    }

    /// Kafka's `LogSegment.truncateTo`: drops the batch containing `offset` and everything
    /// after. Returns the number of bytes removed.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<u64, StorageError> {
        let Some((pos, _)) = self.translate_offset(offset)? else {
            return Ok(0);
        };
        let path = self.log_path();
        self.offset_index.truncate_to(offset)?;
        self.time_index.truncate_to(offset)?;
        self.txn_index.truncate_to(offset)?;
        self.file.set_len(pos).ctx(&path)?;
        let removed = self.size - pos;
        self.size = pos;
        self.dirty = true;
        if self.size == 0 {
            self.created_ms = now_ms;
        }
        self.load_tail_state()?;
        Ok(removed)
    }

    /// Kafka's `onBecomeInactiveSegment`: record the final max timestamp in the time index.
    pub fn on_become_inactive(&mut self) -> Result<(), StorageError> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true)?;
        }
        Ok(())
    }

    /// fsyncs the log and both indexes.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            let path = self.log_path();
            super::fileio::sync(&self.file, &path, true).ctx(&path)?;
            self.dirty = false;
        }
        self.offset_index.file_mut().flush()?;
        self.time_index.file_mut().flush()?;
        self.txn_index.flush()
    }

    /// Renames the three files from the current suffix to `new_suffix`.
    pub fn change_suffix(&mut self, new_suffix: &str) -> Result<(), StorageError> {
        let old_log = self.log_path();
        #[cfg(test)]
        if RENAME_FAULT.with(|f| f.replace(f.get().map(|n| n.wrapping_sub(1))) == Some(0)) {
            RENAME_FAULT.with(|f| f.set(None));
            return Err(StorageError::io(
                &old_log,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        let new_log = Self::log_path_for(&self.dir, self.base_offset, new_suffix);
        fs::rename(&old_log, &new_log).ctx(&old_log)?;
        self.offset_index.file_mut().rename_to(&segment_file(
            &self.dir,
            self.base_offset,
            INDEX_EXT,
            new_suffix,
        ))?;
        self.time_index.file_mut().rename_to(&segment_file(
            &self.dir,
            self.base_offset,
            TIME_INDEX_EXT,
            new_suffix,
        ))?;
        self.txn_index.rename_to(&segment_file(
            &self.dir,
            self.base_offset,
            TXN_INDEX_EXT,
            new_suffix,
        ))?;
        self.suffix = new_suffix.to_string();
        self.path = Arc::from(new_log);
        Ok(())
    }

    /// Paths of the segment's files (the `.txnindex` whether it exists or not).
    pub fn file_paths(&self) -> [PathBuf; 4] {
        [
            self.log_path(),
            self.offset_index.file().path().to_path_buf(),
            self.time_index.file().path().to_path_buf(),
            self.txn_index.path().to_path_buf(),
        ]
    }

    /// Renames the files with the `.deleted` suffix and returns their new paths (Kafka's
    /// asynchronous delete: the caller removes them after file.delete.delay.ms).
    pub fn mark_deleted(mut self) -> Result<Vec<PathBuf>, StorageError> {
        self.change_suffix(DELETED_SUFFIX)?;
        Ok(self.file_paths().to_vec())
    }

    /// Removes the files now.
    pub fn delete_files(self) -> Result<(), StorageError> {
        for p in self.file_paths() {
            remove_if_exists(&p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
thread_local! {
    /// Renames still allowed before `change_suffix` fails once with EIO.
    static RENAME_FAULT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Test hook: after `allowed` successful renames on this thread, the next
/// `change_suffix` fails with EIO.
#[cfg(test)]
pub(crate) fn fail_next_rename_for_test(allowed: usize) {
    RENAME_FAULT.with(|f| f.set(Some(allowed)));
}

/// A header scanner borrowing a segment (see [`Segment::headers_from`]).
pub struct HeaderScannerOwned<'a> {
    seg: &'a Segment,
    path: PathBuf,
    pos: u64,
}

impl HeaderScannerOwned<'_> {
    /// Collects all headers from the start position: `(position, header)`.
    pub fn collect_all(self) -> Result<Vec<(u64, BatchHeader)>, StorageError> {
        let mut scan = HeaderScanner::new(&self.seg.file, &self.path, self.pos, self.seg.size);
        let mut out = Vec::new();
        while let Some(h) = scan.next_header()? {
            out.push(h);
        }
        Ok(out)
    }

    /// Calls `f` for every header from the start position.
    pub fn for_each(self, mut f: impl FnMut(u64, &BatchHeader)) -> Result<(), StorageError> {
        let mut scan = HeaderScanner::new(&self.seg.file, &self.path, self.pos, self.seg.size);
        while let Some((pos, h)) = scan.next_header()? {
            f(pos, &h);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::patch;
    use super::super::batch::test_util::build_batch;
    use super::*;

    fn batch_at(offset: i64, ts: i64, n: usize) -> Vec<u8> {
        let recs: Vec<super::super::batch::test_util::KeyValue<'_>> = (0..n)
            .map(|_| (Some(&b"key"[..]), Some(&b"some value bytes"[..])))
            .collect();
        build_batch(offset, ts, (-1, -1, -1), &recs)
    }

    fn cfg() -> LogConfig {
        LogConfig {
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    #[test]
    fn append_translate_read_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 100, &cfg(), "", 0).unwrap();
        let mut all = Vec::new();
        for i in 0..20 {
            let b = batch_at(100 + i * 3, 1000 + i, 3);
            seg.append(&b, 5).unwrap();
            all.extend_from_slice(&b);
        }
        assert_eq!(seg.next_offset(), 160);
        assert_eq!(seg.size(), all.len() as u64);
        assert!(seg.offset_index().len() > 3);
        // mid-batch offset resolves to its batch
        let (pos, hdr) = seg.translate_offset(131).unwrap().unwrap();
        assert_eq!(hdr.base_offset(), 130);
        let r = seg.read(pos, usize::MAX, i64::MAX, false).unwrap();
        assert!(!r.hit_limit);
        assert_eq!(&r.data[..], &all[pos as usize..]);
        // max_offset bound: only batches fully below 136
        let r = seg.read(pos, usize::MAX, 136, false).unwrap();
        assert!(r.hit_limit);
        assert_eq!(r.data.len(), 2 * hdr.size());
        // max_bytes smaller than a batch: nothing unless min_one
        let r = seg.read(pos, 10, i64::MAX, false).unwrap();
        assert!(r.data.is_empty() && r.hit_limit);
        let r = seg.read(pos, 10, i64::MAX, true).unwrap();
        assert_eq!(r.data.len(), hdr.size());
        // timestamps
        assert_eq!(
            seg.find_offset_by_timestamp(1010, 0, 1 << 20).unwrap(),
            Some((1010, 126, -1))
        );
        assert_eq!(
            seg.max_timestamp_record(1 << 20).unwrap().map(|t| t.1),
            Some(159)
        );
        // recover rebuilds the same indexes
        let before: Vec<_> = seg.offset_index().file().entries().to_vec();
        let mut n = 0;
        let out = seg.recover(0, &mut |_| n += 1).unwrap();
        assert_eq!(n, 20);
        assert_eq!(out.truncated_bytes, 0);
        assert_eq!(&seg.offset_index().file().entries()[..], &before[..]);
        // corrupt the last batch: recovery truncates it
        let mut last = batch_at(160, 2000, 3);
        patch::set_base_offset(&mut last, 160);
        let n_before = seg.size();
        seg.append(&last, 6).unwrap();
        let mut raw = std::fs::read(seg.log_path()).unwrap();
        let l = raw.len();
        raw[l - 2] ^= 0xff;
        std::fs::write(seg.log_path(), &raw).unwrap();
        let out = seg.recover(0, &mut |_| {}).unwrap();
        assert_eq!(out.valid_bytes, n_before);
        assert_eq!(seg.next_offset(), 160);
        // truncate_to mid batch drops that whole batch
        let removed = seg.truncate_to(151, 7).unwrap();
        assert!(removed > 0);
        assert_eq!(seg.next_offset(), 151);
        assert_eq!(seg.max_timestamp(), 1018);
    }

    #[test]
    fn reopen_loads_tail_state() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg();
        {
            let mut seg = Segment::create(dir.path(), 0, &c, "", 0).unwrap();
            for i in 0..10 {
                seg.append(&batch_at(i * 2, 50 + i, 2), 0).unwrap();
            }
            seg.on_become_inactive().unwrap();
            seg.flush().unwrap();
        }
        let (mut seg, rebuild) = Segment::open(dir.path(), 0, &c, "", 0).unwrap();
        assert!(!rebuild);
        seg.load_tail_state().unwrap();
        assert_eq!(seg.next_offset(), 20);
        assert_eq!(seg.max_timestamp(), 60);
        // a lying index is detected
        std::fs::write(
            segment_file(dir.path(), 0, INDEX_EXT, ""),
            [0, 0, 0, 9, 0, 0, 0, 50],
        )
        .unwrap();
        let (mut seg, _) = Segment::open(dir.path(), 0, &c, "", 0).unwrap();
        assert!(seg.load_tail_state().is_err());
        std::fs::remove_file(segment_file(dir.path(), 0, TIME_INDEX_EXT, "")).unwrap();
        let (_, rebuild) = Segment::open(dir.path(), 0, &c, "", 0).unwrap();
        assert!(rebuild);
    }

    #[test]
    fn file_names() {
        assert_eq!(
            segment_file(Path::new("/d"), 42, LOG_EXT, ""),
            PathBuf::from("/d/00000000000000000042.log")
        );
        assert_eq!(
            parse_segment_file("00000000000000000042.log", LOG_EXT, ""),
            Some(42)
        );
        assert_eq!(
            parse_segment_file("00000000000000000042.log.swap", LOG_EXT, SWAP_SUFFIX),
            Some(42)
        );
        assert_eq!(parse_segment_file("42.log", LOG_EXT, ""), None);
        assert_eq!(
            parse_segment_file("0000000000000000004x.log", LOG_EXT, ""),
            None
        );
    }
}
