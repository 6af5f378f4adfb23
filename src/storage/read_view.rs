//! The log as fetches see it, without the log's lock. Kafka's reads take no lock either:
//! `LocalLog.read` works on the segment map and a snapshot of the log end offset while
//! appends go on.
//!
//! A [`Log`](super::log::Log) publishes a new [`ReadView`] into its [`LogReader`] after
//! every change a reader could see: an append, a roll, a truncation, retention, a cleaner
//! swap, the log start moving, a close. A view is immutable. The segment files it names
//! stay readable through their open handles even after the log renames or deletes them,
//! and it never reads past the sizes it recorded, so bytes being appended (or rolled back
//! after a failed append) are invisible to it. The one change a view cannot survive is a
//! file shrinking under it, so truncations hold [`LogReader`]'s truncation lock
//! exclusively while reads hold it shared: appends never wait for reads and reads never
//! wait for appends.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::batch::{
    batch_size_from_prefix, last_offset_from_prefix, BatchHeader, HeaderFields, LAST_OFFSET_PREFIX,
};
use super::dir_failure::{DirFailureHook, DiskFailure};
use super::error::{ReadError, StorageError};
use super::fileio::{read_exact_at_uninit_mode, ReadMode};
use super::index_file::{read_entries, SharedEntries};
use super::log::ReadResult;
use super::offset_index::OffsetEntry;
use super::producer_txn::TxnView;
use super::scan::{corrupt, HeaderScanner};
use super::segment::SegmentRead;
use super::txn_index::{collect_aborted, AbortedTxn};

/// One segment as a view sees it.
#[derive(Debug, Clone)]
pub struct SegmentView {
    base_offset: i64,
    file: Arc<File>,
    path: Arc<Path>,
    /// Bytes of whole batches when the view was taken.
    size: u64,
    /// The segment's offset index (entries beyond `size` may appear later; a floor
    /// lookup for an offset this view holds never lands on them).
    index: SharedEntries<OffsetEntry>,
    /// The segment's aborted transactions (`.txnindex`).
    aborted: SharedEntries<AbortedTxn>,
}

impl SegmentView {
    pub(super) fn new(
        base_offset: i64,
        file: Arc<File>,
        path: Arc<Path>,
        size: u64,
        index: SharedEntries<OffsetEntry>,
        aborted: SharedEntries<AbortedTxn>,
    ) -> SegmentView {
        SegmentView {
            base_offset,
            file,
            path,
            size,
            index,
            aborted,
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether this view shows a segment with these files in this state.
    pub(super) fn shows(&self, base_offset: i64, size: u64, file: &Arc<File>) -> bool {
        self.base_offset == base_offset && self.size == size && Arc::ptr_eq(&self.file, file)
    }

    /// Position of the batch holding the largest indexed offset <= `target`, or 0
    /// (Kafka's `OffsetIndex.lookup`).
    fn floor_position(&self, target: i64) -> u64 {
        let entries = read_entries(&self.index);
        let idx =
            entries.partition_point(|e| self.base_offset + (e.relative_offset as i64) <= target);
        match idx {
            0 => 0,
            i => entries[i - 1].position as u64,
        }
    }

    fn read_bytes(&self, pos: u64, len: usize, mode: ReadMode) -> Result<Vec<u8>, StorageError> {
        read_exact_at_uninit_mode(&self.file, pos, len, mode)
            .map_err(|e| StorageError::io(&*self.path, e))
    }

    /// Kafka's `translateOffset`: the first batch whose last offset >= `target`, searched
    /// from the index's floor entry. `None` if no such batch is in this segment.
    pub fn translate_offset(
        &self,
        target: i64,
        mode: ReadMode,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let start = self.floor_position(target);
        let mut scan = HeaderScanner::with_mode(&self.file, &self.path, start, self.size, mode);
        while let Some((pos, hdr)) = scan.next_header()? {
            if hdr.last_offset() >= target {
                return Ok(Some((pos, hdr)));
            }
        }
        Ok(None)
    }

    /// Reads whole batches from `start_pos`: stops before a batch whose last offset is >=
    /// `max_offset` or that would exceed `max_bytes` (unless it is the first and
    /// `min_one` is set, KIP-74).
    pub fn read(
        &self,
        start_pos: u64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
        mode: ReadMode,
    ) -> Result<SegmentRead, StorageError> {
        let path = &*self.path;
        if start_pos >= self.size {
            return Ok(SegmentRead {
                data: Vec::new(),
                hit_limit: false,
            });
        }
        let avail = self.size - start_pos;
        let want = (max_bytes as u64).min(avail) as usize;
        let mut data = self.read_bytes(start_pos, want, mode)?;
        let mut pos = 0usize;
        let hit_limit;
        loop {
            if pos == data.len() {
                hit_limit = (pos as u64) < avail;
                break;
            }
            let abs = start_pos + pos as u64;
            let first = pos == 0 && min_one;
            // The header prefix of the batch at `pos` (may need a separate read).
            let prefix: Vec<u8> = if data.len() - pos >= LAST_OFFSET_PREFIX {
                data[pos..pos + LAST_OFFSET_PREFIX].to_vec()
            } else if first && avail >= LAST_OFFSET_PREFIX as u64 {
                self.read_bytes(abs, LAST_OFFSET_PREFIX, mode)?
            } else if avail - (pos as u64) < LAST_OFFSET_PREFIX as u64 {
                return Err(corrupt(path, abs, "truncated batch header"));
            } else {
                hit_limit = true;
                break;
            };
            let size = batch_size_from_prefix(&prefix).map_err(|e| corrupt(path, abs, e))?;
            let last = last_offset_from_prefix(&prefix).unwrap_or(i64::MAX);
            if abs + size as u64 > self.size {
                return Err(corrupt(path, abs, "batch runs past the end of the segment"));
            }
            if last >= max_offset {
                hit_limit = true;
                break;
            }
            if pos + size > data.len() {
                if first {
                    data = self.read_bytes(start_pos, size, mode)?;
                    pos = size;
                }
                hit_limit = true;
                break;
            }
            pos += size;
        }
        data.truncate(pos);
        Ok(SegmentRead { data, hit_limit })
    }
}

/// Whether the log can be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewState {
    Open,
    /// Closed or deleted (the name is the partition's, for the error).
    Closed(String),
}

/// An immutable snapshot of the readable log.
#[derive(Debug, Clone)]
pub struct ReadView {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub(super) state: ViewState,
    /// Every segment but the active one (rebuilt only when they change).
    pub(super) sealed: Arc<[SegmentView]>,
    pub(super) active: Option<SegmentView>,
    pub(super) failure: Option<DirFailureHook>,
    pub(super) partition: Arc<str>,
    /// Open and unreplicated transactions, for the last stable offset.
    pub(super) txns: Arc<TxnView>,
}

impl ReadView {
    /// The view of a log not published yet.
    pub(super) fn unpublished(partition: &str) -> ReadView {
        ReadView {
            log_start_offset: 0,
            log_end_offset: 0,
            state: ViewState::Closed(partition.to_string()),
            sealed: Arc::from(Vec::new()),
            active: None,
            failure: None,
            partition: Arc::from(partition),
            txns: Arc::new(TxnView::default()),
        }
    }

    /// The last stable offset for `high_watermark` (Kafka's `lastStableOffset`).
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.txns.last_stable_offset(high_watermark)
    }

    /// Kafka's `collectAbortedTransactions`: the aborted transactions overlapping
    /// `[fetch_offset, upper_bound)`, from the segment holding `fetch_offset` on, until
    /// an entry's last stable offset shows that later segments cannot add any.
    pub fn aborted_transactions(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        let start = self
            .segments()
            .take_while(|s| s.base_offset <= fetch_offset)
            .count()
            .saturating_sub(1);
        for seg in self.segments().skip(start) {
            let entries = read_entries(&seg.aborted);
            if collect_aborted(&entries, fetch_offset, upper_bound, &mut out) {
                break;
            }
        }
        out
    }

    pub(super) fn segments(&self) -> impl Iterator<Item = &SegmentView> {
        self.sealed.iter().chain(self.active.as_ref())
    }

    fn check_open(&self) -> Result<(), StorageError> {
        if let ViewState::Closed(tp) = &self.state {
            return Err(StorageError::Closed(tp.clone()));
        }
        if self.failure.as_ref().is_some_and(|h| h.is_offline()) {
            return Err(StorageError::LogDirOffline(self.partition.to_string()));
        }
        Ok(())
    }

    /// Kafka's read: starts at the batch containing `fetch_offset`, returns whole batches
    /// whose last offset is below `max_offset` (exclusive), at most `max_bytes` unless the
    /// first batch alone is larger and `min_one_batch` is set; may span segments.
    fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
        mode: ReadMode,
    ) -> Result<ReadResult, ReadError> {
        let oor = || ReadError::OffsetOutOfRange {
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        };
        self.check_open()?;
        if fetch_offset < self.log_start_offset || fetch_offset > self.log_end_offset {
            return Err(oor());
        }
        let result = |records: Bytes| ReadResult {
            records,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
            aborted_transactions: None,
        };
        let max_offset = max_offset.min(self.log_end_offset);
        if fetch_offset == self.log_end_offset || fetch_offset >= max_offset {
            return Ok(result(Bytes::new()));
        }
        let start = self
            .segments()
            .take_while(|s| s.base_offset <= fetch_offset)
            .count();
        if start == 0 {
            return Err(oor());
        }
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut remaining = max_bytes;
        let mut first_segment = true;
        for seg in self.segments().skip(start - 1) {
            let pos = if first_segment {
                first_segment = false;
                match seg.translate_offset(fetch_offset, mode)? {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            } else {
                0
            };
            let nothing_yet = parts.iter().all(|p| p.is_empty());
            let r = seg.read(
                pos,
                remaining,
                max_offset,
                min_one_batch && nothing_yet,
                mode,
            )?;
            remaining = remaining.saturating_sub(r.data.len());
            let hit_limit = r.hit_limit;
            if !r.data.is_empty() {
                parts.push(r.data);
            }
            if hit_limit {
                break;
            }
        }
        // One segment (the common case) hands its buffer over without another copy.
        let records = if parts.len() == 1 {
            Bytes::from(parts.pop().unwrap_or_default())
        } else {
            Bytes::from(parts.concat())
        };
        Ok(result(records))
    }
}

/// Where a log's views are published and read from; shared by the log and its readers.
#[derive(Debug)]
pub struct LogReader {
    view: RwLock<Arc<ReadView>>,
    /// Shared by reads, exclusive for truncations (see the module comment).
    truncation: RwLock<()>,
}

impl LogReader {
    pub(super) fn new(view: ReadView) -> LogReader {
        LogReader {
            view: RwLock::new(Arc::new(view)),
            truncation: RwLock::new(()),
        }
    }

    /// The current view.
    pub fn view(&self) -> Arc<ReadView> {
        crate::sync::read(&self.view).clone()
    }

    pub(super) fn publish(&self, view: ReadView) {
        *crate::sync::write(&self.view) = Arc::new(view);
    }

    /// Holds off reads while a file shrinks; the caller publishes before dropping it.
    pub(super) fn lock_for_truncation(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        crate::sync::write(&self.truncation)
    }

    /// Reads from the current view up to `max_offset` (`None`: the log end). An I/O error
    /// takes the log directory offline, as every other storage failure does; a `NoWait`
    /// read that would block is [`ReadError::WouldBlock`] and changes nothing.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_batch: bool,
        mode: ReadMode,
    ) -> Result<ReadResult, ReadError> {
        self.read_isolated(
            fetch_offset,
            max_bytes,
            max_offset,
            min_one_batch,
            mode,
            false,
        )
    }

    /// [`Self::read`], and with `read_committed` the aborted transactions overlapping the
    /// records returned (Kafka's `FetchIsolation.TXN_COMMITTED` reads; the caller passes
    /// the last stable offset as `max_offset`).
    pub fn read_isolated(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_batch: bool,
        mode: ReadMode,
        read_committed: bool,
    ) -> Result<ReadResult, ReadError> {
        let _no_truncation = crate::sync::read(&self.truncation);
        let view = self.view();
        let max_offset = max_offset.unwrap_or(view.log_end_offset);
        let read = view
            .read(fetch_offset, max_bytes, max_offset, min_one_batch, mode)
            .map(|mut r| {
                if read_committed {
                    let upper = last_offset_of(&r.records).map_or(fetch_offset, |last| last + 1);
                    r.aborted_transactions = Some(if upper > fetch_offset {
                        view.aborted_transactions(fetch_offset, upper)
                    } else {
                        Vec::new()
                    });
                }
                r
            });
        match read {
            Err(ReadError::Storage(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(ReadError::WouldBlock)
            }
            Err(e) => {
                if let (Some(why), Some(hook)) = (e.disk_failure(), &view.failure) {
                    hook.fail(&format!("partition {}: {why}", view.partition));
                }
                Err(e)
            }
            ok => ok,
        }
    }
}

/// The last offset of the last whole batch in `records`.
fn last_offset_of(records: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut last = None;
    while records.len() - pos >= LAST_OFFSET_PREFIX {
        let prefix = &records[pos..pos + LAST_OFFSET_PREFIX];
        let Ok(size) = batch_size_from_prefix(prefix) else {
            break;
        };
        if size == 0 || pos + size > records.len() {
            break;
        }
        last = last_offset_from_prefix(prefix).or(last);
        pos += size;
    }
    last
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::storage::batch::test_util::build_batch;
    use crate::storage::config::LogConfig;
    use crate::storage::log::Log;
    use crate::storage::TopicPartition;

    fn config() -> LogConfig {
        LogConfig {
            index_interval_bytes: 1,
            segment_bytes: 4096,
            ..LogConfig::default()
        }
    }

    fn batch(tag: usize) -> Vec<u8> {
        let value = format!("value-{tag}-{}", "x".repeat(200)).into_bytes();
        build_batch(0, 1_000, (-1, -1, -1), &[(Some(b"k"), Some(&value[..]))])
    }

    fn log_with(batches: usize) -> (tempfile::TempDir, Log) {
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("views", 0);
        let mut log = Log::create(&dir.path().join("views-0"), &tp, config(), None, 0).unwrap();
        for i in 0..batches {
            log.append_as_leader(&batch(i), 0, 1_000).unwrap();
        }
        (dir, log)
    }

    fn offsets(records: &[u8]) -> Vec<i64> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < records.len() {
            let b = crate::storage::batch::Batch::parse(&records[pos..]).unwrap();
            out.push(b.base_offset());
            pos += b.size();
        }
        out
    }

    #[test]
    fn a_read_needs_no_lock_of_the_log() {
        let (_dir, log) = log_with(40); // several segments of ~4 KiB
        assert!(log.segment_count() > 2);
        let reader = log.reader();
        let log = Mutex::new(log);
        // An append stuck under the log's lock (a stalled disk) does not stop a fetch.
        let _stuck_append = log.lock().unwrap();
        let r = reader
            .read(0, usize::MAX, None, true, ReadMode::Blocking)
            .unwrap();
        assert_eq!(offsets(&r.records), (0..40).collect::<Vec<_>>());
        assert_eq!(r.log_end_offset, 40);
        // Across a segment boundary, from the middle.
        let r = reader
            .read(17, 600, None, true, ReadMode::Blocking)
            .unwrap();
        assert_eq!(offsets(&r.records)[0], 17);
    }

    #[test]
    fn a_view_taken_before_an_append_never_shows_it_and_the_next_one_does() {
        let (_dir, mut log) = log_with(3);
        let reader = log.reader();
        let before = reader.view();
        log.append_as_leader(&batch(3), 0, 1_000).unwrap();
        assert_eq!(before.log_end_offset, 3);
        let r = before
            .read(0, usize::MAX, i64::MAX, true, ReadMode::Blocking)
            .unwrap();
        assert_eq!(offsets(&r.records), vec![0, 1, 2]);
        let r = reader
            .read(0, usize::MAX, None, true, ReadMode::Blocking)
            .unwrap();
        assert_eq!(offsets(&r.records), vec![0, 1, 2, 3]);
        // The consumer limit (the high watermark) is honoured.
        let r = reader
            .read(0, usize::MAX, Some(2), true, ReadMode::Blocking)
            .unwrap();
        assert_eq!(offsets(&r.records), vec![0, 1]);
    }

    #[test]
    fn truncation_and_close_are_published() {
        let (_dir, mut log) = log_with(30);
        let reader = log.reader();
        log.truncate_to(5).unwrap();
        let r = reader
            .read(0, usize::MAX, None, true, ReadMode::Blocking)
            .unwrap();
        assert_eq!(offsets(&r.records), vec![0, 1, 2, 3, 4]);
        assert!(matches!(
            reader.read(6, 100, None, true, ReadMode::Blocking),
            Err(ReadError::OffsetOutOfRange {
                log_end_offset: 5,
                ..
            })
        ));
        log.close_in_place(2_000).unwrap();
        assert!(matches!(
            reader.read(0, 100, None, true, ReadMode::Blocking),
            Err(ReadError::Storage(_))
        ));
    }

    #[test]
    fn a_no_wait_read_gives_the_same_bytes_or_would_block() {
        let (_dir, log) = log_with(20);
        let reader = log.reader();
        let blocking = reader
            .read(0, usize::MAX, None, true, ReadMode::Blocking)
            .unwrap();
        // Just written, so in the page cache; a file system without RWF_NOWAIT says
        // WouldBlock, which must not count as a disk failure.
        match reader.read(0, usize::MAX, None, true, ReadMode::NoWait) {
            Ok(r) => assert_eq!(r.records, blocking.records),
            Err(ReadError::WouldBlock) => {}
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(!log.is_dir_offline());
        assert!(reader.read(0, 100, None, true, ReadMode::Blocking).is_ok());
    }
}
