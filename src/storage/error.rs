//! Error types of the storage layer. Every variant that concerns a file names it.

use std::io;
use std::path::{Path, PathBuf};

/// Failures of log-level operations (open, truncate, flush, retention, ...).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O operation on the named file failed.
    #[error("I/O error on {path}: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, #[source] io::Error),
    /// On-disk bytes that cannot be interpreted (and cannot be recovered by truncation).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A caller-supplied argument violates the log's invariants.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An offset outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// The log was closed or deleted; no further operations are accepted.
    #[error("log {0} is closed")]
    Closed(String),
    /// The log directory failed earlier (an I/O error or a failed fsync) and is offline
    /// until the broker restarts: KAFKA_STORAGE_ERROR.
    #[error("log directory of {0} is offline after an I/O failure")]
    LogDirOffline(String),
    /// Another process holds the log directory's lock file.
    #[error("log directory {} is locked by another process", .0.display())]
    DirLocked(PathBuf),
}

impl StorageError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<Path>, err: io::Error) -> Self {
        StorageError::Io(path.as_ref().to_path_buf(), err)
    }
}

/// Helper to attach a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, path: &Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, path: &Path) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(path, e))
    }
}

/// Converts a storage error into an `io::Error` carrying the full message (used for the
/// `Storage` variants of [`AppendError`] and [`ReadError`], which map to KAFKA_STORAGE_ERROR).
impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> io::Error {
        match e {
            StorageError::Io(path, err) => {
                io::Error::new(err.kind(), format!("{}: {err}", path.display()))
            }
            other => io::Error::other(other.to_string()),
        }
    }
}

/// Why a produce (leader or follower append) was refused. Each variant maps to one Kafka
/// error code (named in the comment).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// CORRUPT_MESSAGE: CRC mismatch, truncated/short batch, bad batch length.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// INVALID_RECORD: structural garbage, count mismatch, magic != 2, no records,
    /// transactional/control batches from a client, missing key on a compacted topic.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// MESSAGE_TOO_LARGE: one batch is larger than max.message.bytes.
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// RECORD_LIST_TOO_LARGE: the whole append is larger than segment.bytes.
    #[error("append of {size} bytes exceeds segment.bytes {max}")]
    RecordListTooLarge { size: usize, max: u64 },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("out of order sequence for producer {producer_id}: got {found}, last {last_seq} (epoch {epoch})")]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        found: i32,
        last_seq: i32,
    },
    /// INVALID_PRODUCER_EPOCH: the batch's producer epoch is older than the current one.
    #[error("producer {producer_id} epoch {epoch} is older than current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// INVALID_TXN_STATE: a transactional batch outside a verified or open transaction,
    /// or a non-transactional batch from a producer with an open transaction.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// TRANSACTION_COORDINATOR_FENCED: a marker from an older coordinator epoch.
    #[error(
        "marker for producer {producer_id} has coordinator epoch {epoch}, older than {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        epoch: i32,
        current: i32,
    },
    /// INVALID_TIMESTAMP for the whole append.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// Some records of a batch were refused (Kafka's `RecordValidationException`, KIP-467):
    /// INVALID_TIMESTAMP if any of them had a bad timestamp, else INVALID_RECORD; the
    /// response names each refused record by its index in its batch.
    #[error("{message}")]
    RecordsRejected {
        timestamp: bool,
        message: String,
        records: Vec<RecordError>,
    },
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT: idempotent or transactional data in a message
    /// format older than v2.
    #[error("{0}")]
    UnsupportedForMessageFormat(String),
    /// UNSUPPORTED_COMPRESSION_TYPE.
    #[error("{0}")]
    UnsupportedCompressionType(String),
    /// FENCED_LEADER_EPOCH: leader append with an epoch older than the log's latest epoch.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    FencedLeaderEpoch { epoch: i32, latest: i32 },
    /// Follower append whose first offset is not the log end offset (Kafka's
    /// UnexpectedAppendOffsetException), or whose offsets go backwards.
    #[error("unexpected append offset: expected {expected}, got {found}")]
    UnexpectedAppendOffset { expected: i64, found: i64 },
    /// KAFKA_STORAGE_ERROR.
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
}

/// One refused record: its index in its batch and why (Kafka's `RecordError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

impl AppendError {
    /// Kafka's `LogValidator.processRecordErrors`: the exception for a batch's refused
    /// records (`errors` is not empty).
    pub fn rejected(records: Vec<RecordError>, timestamp: bool) -> AppendError {
        let message = if timestamp {
            "One or more records have been rejected due to invalid timestamp".to_string()
        } else {
            let shown: Vec<String> = records
                .iter()
                .take(3)
                .map(|r| {
                    format!(
                        "RecordError(batchIndex={}, message='{}')",
                        r.batch_index, r.message
                    )
                })
                .collect();
            format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                records.len(),
                shown.join(", ")
            )
        };
        AppendError::RecordsRejected {
            timestamp,
            message,
            records,
        }
    }
}

impl From<StorageError> for AppendError {
    fn from(e: StorageError) -> Self {
        AppendError::Storage(e.into())
    }
}

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// OFFSET_OUT_OF_RANGE.
    #[error("fetch offset out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// KAFKA_STORAGE_ERROR.
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
    /// A `ReadMode::NoWait` read needs the disk: retry it on an I/O thread. Never sent
    /// to a client.
    #[error("the read would wait for the disk")]
    WouldBlock,
}

impl From<StorageError> for ReadError {
    fn from(e: StorageError) -> Self {
        ReadError::Storage(e.into())
    }
}
