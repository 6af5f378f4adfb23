//! A view over Kafka v2 record batches (`DefaultRecordBatch`) stored as raw bytes: field
//! accessors, CRC32C check, in-place setters, a splitter that walks a buffer batch by batch,
//! and a structural walk of the records of an uncompressed batch.
//!
//! Layout (big endian), offsets from the start of the batch:
//! ```text
//!  0 baseOffset i64 | 8 length i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 firstTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records
//! ```
//! The CRC covers attributes..end, so patching baseOffset or partitionLeaderEpoch needs no
//! CRC update.

use std::fmt;

/// baseOffset + length: the bytes before the length-counted part.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header (Kafka's RECORD_BATCH_OVERHEAD).
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes needed to know a batch's size and last offset.
pub const LAST_OFFSET_PREFIX: usize = 27;

const LENGTH_OFFSET: usize = 8;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const FIRST_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;
const DELETE_HORIZON_MASK: i16 = 0x40;

/// Value of the `producerId` field for non-idempotent batches.
pub const NO_PRODUCER_ID: i64 = -1;
/// Value of the `baseSequence` field for non-idempotent batches.
pub const NO_SEQUENCE: i32 = -1;
/// Value of `partitionLeaderEpoch` before the broker assigns one.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Why a byte range is not a well-formed batch. Callers map these to Kafka errors
/// (CORRUPT_MESSAGE vs INVALID_RECORD) or to a recovery truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length needs.
    Truncated { needed: usize, available: usize },
    /// The length field is smaller than a v2 header or absurd.
    BadLength(i32),
    /// Magic byte other than 2.
    BadMagic(i8),
    /// Stored CRC differs from the computed one.
    CrcMismatch { stored: u32, computed: u32 },
    /// Structural problem inside the batch (counts, varints, offsets).
    Invalid(String),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { needed, available } => write!(
                f,
                "truncated batch: needs {needed} bytes, {available} available"
            ),
            BatchError::BadLength(l) => write!(f, "invalid batch length {l}"),
            BatchError::BadMagic(m) => write!(f, "unsupported record batch magic {m}"),
            BatchError::CrcMismatch { stored, computed } => write!(
                f,
                "record batch is corrupt (stored crc = {stored}, computed crc = {computed})"
            ),
            BatchError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for BatchError {}

#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Reads the total size (`LOG_OVERHEAD + length`) of the batch starting at `buf[0]`,
/// checking only the length field. Needs `buf.len() >= LOG_OVERHEAD`.
pub fn batch_size_from_prefix(buf: &[u8]) -> Result<usize, BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: LOG_OVERHEAD,
            available: buf.len(),
        });
    }
    let length = be_i32(buf, LENGTH_OFFSET);
    if length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(BatchError::BadLength(length));
    }
    Ok(LOG_OVERHEAD + length as usize)
}

/// Last offset of the batch whose first `LAST_OFFSET_PREFIX` bytes are given.
pub fn last_offset_from_prefix(buf: &[u8]) -> Option<i64> {
    if buf.len() < LAST_OFFSET_PREFIX {
        return None;
    }
    Some(be_i64(buf, 0).wrapping_add(be_i32(buf, LAST_OFFSET_DELTA_OFFSET) as i64))
}

/// A read-only view of one complete v2 batch. Construction ([`Batch::parse`]) guarantees
/// the slice is exactly one batch with a full header and magic 2, so accessors never
/// index out of bounds.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    bytes: &'a [u8],
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("size", &self.size())
            .field("epoch", &self.partition_leader_epoch())
            .field("producer_id", &self.producer_id())
            .finish()
    }
}

impl<'a> Batch<'a> {
    /// Parses the batch at the start of `buf` (which may hold more bytes after it).
    /// Checks length, magic and that the whole batch is present; not the CRC.
    pub fn parse(buf: &'a [u8]) -> Result<Batch<'a>, BatchError> {
        let size = batch_size_from_prefix(buf)?;
        if buf.len() <= MAGIC_OFFSET {
            return Err(BatchError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::BadMagic(magic));
        }
        if buf.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        Ok(Batch {
            bytes: &buf[..size],
        })
    }

    /// The batch's bytes, exactly `size()` long.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn stored_crc(&self) -> u32 {
        be_u32(self.bytes, CRC_OFFSET)
    }
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }
    /// CRC32C (Castagnoli) over attributes..end matches the stored CRC.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let (stored, computed) = (self.stored_crc(), self.compute_crc());
        if stored == computed {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { stored, computed })
        }
    }
    /// The bytes after the fixed header (records, possibly compressed).
    pub fn records_payload(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_SIZE.min(self.bytes.len())..]
    }
    /// A copy of the fixed header.
    pub fn header(&self) -> BatchHeader {
        let mut raw = [0u8; BATCH_HEADER_SIZE];
        raw.copy_from_slice(&self.bytes[..BATCH_HEADER_SIZE]);
        BatchHeader(raw)
    }
}

impl HeaderFields for Batch<'_> {
    fn header_bytes(&self) -> &[u8] {
        self.bytes
    }
}

/// A copy of the 61-byte header of a batch (read from a file without the records).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader(pub [u8; BATCH_HEADER_SIZE]);

impl fmt::Debug for BatchHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchHeader")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("size", &self.size())
            .finish()
    }
}

impl BatchHeader {
    /// Parses a header from the first 61 bytes of `buf`: length and magic are checked.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        batch_size_from_prefix(buf)?;
        if buf.len() <= MAGIC_OFFSET {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_SIZE,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::BadMagic(magic));
        }
        if buf.len() < BATCH_HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_SIZE,
                available: buf.len(),
            });
        }
        let mut raw = [0u8; BATCH_HEADER_SIZE];
        raw.copy_from_slice(&buf[..BATCH_HEADER_SIZE]);
        Ok(BatchHeader(raw))
    }
}

impl HeaderFields for BatchHeader {
    fn header_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Accessors of the fixed v2 header, shared by full batches and header copies.
/// Implementors guarantee `header_bytes().len() >= BATCH_HEADER_SIZE`.
pub trait HeaderFields {
    fn header_bytes(&self) -> &[u8];

    /// Total size in bytes (`LOG_OVERHEAD + length`).
    fn size(&self) -> usize {
        LOG_OVERHEAD + be_i32(self.header_bytes(), LENGTH_OFFSET).max(0) as usize
    }
    fn base_offset(&self) -> i64 {
        be_i64(self.header_bytes(), 0)
    }
    fn last_offset_delta(&self) -> i32 {
        be_i32(self.header_bytes(), LAST_OFFSET_DELTA_OFFSET)
    }
    /// `baseOffset + lastOffsetDelta` (wrapping: garbage must not panic).
    fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(self.last_offset_delta() as i64)
    }
    /// `lastOffset + 1`.
    fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
    fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.header_bytes(), PARTITION_LEADER_EPOCH_OFFSET)
    }
    fn magic(&self) -> i8 {
        self.header_bytes()[MAGIC_OFFSET] as i8
    }
    fn attributes(&self) -> i16 {
        be_i16(self.header_bytes(), ATTRIBUTES_OFFSET)
    }
    /// Codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    fn compression(&self) -> u8 {
        (self.attributes() & COMPRESSION_MASK) as u8
    }
    fn is_compressed(&self) -> bool {
        self.compression() != 0
    }
    fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_MASK != 0
    }
    fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_MASK != 0
    }
    fn is_control(&self) -> bool {
        self.attributes() & CONTROL_MASK != 0
    }
    fn has_delete_horizon(&self) -> bool {
        self.attributes() & DELETE_HORIZON_MASK != 0
    }
    fn first_timestamp(&self) -> i64 {
        be_i64(self.header_bytes(), FIRST_TIMESTAMP_OFFSET)
    }
    fn max_timestamp(&self) -> i64 {
        be_i64(self.header_bytes(), MAX_TIMESTAMP_OFFSET)
    }
    fn producer_id(&self) -> i64 {
        be_i64(self.header_bytes(), PRODUCER_ID_OFFSET)
    }
    /// Kafka's `hasProducerId`: producerId > -1.
    fn has_producer_id(&self) -> bool {
        self.producer_id() > NO_PRODUCER_ID
    }
    fn producer_epoch(&self) -> i16 {
        be_i16(self.header_bytes(), PRODUCER_EPOCH_OFFSET)
    }
    fn base_sequence(&self) -> i32 {
        be_i32(self.header_bytes(), BASE_SEQUENCE_OFFSET)
    }
    /// Kafka's `lastSequence`: base + lastOffsetDelta, wrapping at i32::MAX to 0.
    fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(base, self.last_offset_delta())
    }
    fn record_count(&self) -> i32 {
        be_i32(self.header_bytes(), RECORD_COUNT_OFFSET)
    }
    /// Timestamp of a record for ListOffsets: LogAppendTime batches report maxTimestamp.
    fn record_timestamp(&self, first_timestamp_plus_delta: i64) -> i64 {
        if self.is_log_append_time() {
            self.max_timestamp()
        } else {
            first_timestamp_plus_delta
        }
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from i32::MAX to 0.
/// Computed in i64 so garbage deltas cannot overflow.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    (sequence as i64 + increment as i64).rem_euclid(SEQUENCE_SPACE) as i32
}

const SEQUENCE_SPACE: i64 = i32::MAX as i64 + 1;

/// Kafka's `DefaultRecordBatch.decrementSequence`.
pub fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    (sequence as i64 - decrement as i64).rem_euclid(SEQUENCE_SPACE) as i32
}

/// In-place setters on the bytes of one batch (the caller guarantees `b` holds a full
/// header, e.g. because it was parsed by [`Batch::parse`] first).
pub mod patch {
    use super::*;

    /// Sets `baseOffset` (not covered by the CRC).
    pub fn set_base_offset(b: &mut [u8], offset: i64) {
        b[0..8].copy_from_slice(&offset.to_be_bytes());
    }

    /// Sets `partitionLeaderEpoch` (not covered by the CRC).
    pub fn set_partition_leader_epoch(b: &mut [u8], epoch: i32) {
        b[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
            .copy_from_slice(&epoch.to_be_bytes());
    }

    /// Kafka's `setMaxTimestamp(LOG_APPEND_TIME, now)`: sets the timestamp-type attribute
    /// bit and maxTimestamp, then recomputes the CRC. firstTimestamp keeps the create time
    /// (Kafka does not touch it; readers use maxTimestamp for every record of a
    /// LogAppendTime batch).
    pub fn set_log_append_time(b: &mut [u8], now_ms: i64) {
        let attrs = be_i16(b, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_MASK;
        let current_max = be_i64(b, MAX_TIMESTAMP_OFFSET);
        if attrs == be_i16(b, ATTRIBUTES_OFFSET) && current_max == now_ms {
            return;
        }
        b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
        rewrite_crc(b);
    }

    /// Stores a recomputed max timestamp (Kafka's `setMaxTimestamp` for CreateTime) and
    /// the CRC over it.
    pub fn set_max_timestamp(b: &mut [u8], max_timestamp: i64) {
        if be_i64(b, MAX_TIMESTAMP_OFFSET) == max_timestamp {
            return;
        }
        b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
        rewrite_crc(b);
    }

    /// Header-only variants for appends that write a patched copy of the 61-byte header
    /// followed by the untouched body. Each returns whether the CRC must be recomputed.
    pub fn header_set_log_append_time(h: &mut [u8; BATCH_HEADER_SIZE], now_ms: i64) -> bool {
        let attrs = be_i16(h, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_MASK;
        if attrs == be_i16(h, ATTRIBUTES_OFFSET) && be_i64(h, MAX_TIMESTAMP_OFFSET) == now_ms {
            return false;
        }
        h[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        h[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
        true
    }

    pub fn header_set_max_timestamp(h: &mut [u8; BATCH_HEADER_SIZE], max_timestamp: i64) -> bool {
        if be_i64(h, MAX_TIMESTAMP_OFFSET) == max_timestamp {
            return false;
        }
        h[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
        true
    }

    /// The CRC of a batch given its (patched) header and its body (bytes 61..).
    pub fn header_rewrite_crc(h: &mut [u8; BATCH_HEADER_SIZE], body: &[u8]) {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&h[ATTRIBUTES_OFFSET..]), body);
        h[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Recomputes and stores the CRC over attributes..end.
    pub fn rewrite_crc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Splits a buffer into consecutive batches. Yields `(position, batch)`; stops at the end
/// of the buffer or yields one error (then ends) if the bytes at the current position are
/// not a complete batch. CRCs are not checked here.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            pos: 0,
            failed: false,
        }
    }
    /// Position of the next batch (after iteration ends: the number of valid bytes).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(usize, Batch<'a>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        match Batch::parse(&self.buf[self.pos..]) {
            Ok(batch) => {
                let at = self.pos;
                self.pos += batch.size();
                Some(Ok((at, batch)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Zigzag varint reader over a byte slice (Kafka's `ByteUtils.readVarint/readVarlong`).
pub struct VarReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> VarReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        VarReader { buf, pos: 0 }
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn read_raw(&mut self, max_bytes: usize) -> Result<u64, String> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err("varint runs past the end of the data".into());
            };
            self.pos += 1;
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint is too long".into())
    }
    pub fn varint(&mut self) -> Result<i32, String> {
        let raw = self.read_raw(5)?;
        if raw > u32::MAX as u64 {
            return Err("varint overflows 32 bits".into());
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }
    pub fn varlong(&mut self) -> Result<i64, String> {
        let raw = self.read_raw(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
    pub fn i8(&mut self) -> Result<i8, String> {
        let Some(&b) = self.buf.get(self.pos) else {
            return Err("record runs past the end of the data".into());
        };
        self.pos += 1;
        Ok(b as i8)
    }
    /// A varint length followed by that many bytes; -1 means null.
    pub fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(format!("invalid length {len}"));
        }
        let len = len as usize;
        if len > self.remaining() {
            return Err(format!(
                "length {len} exceeds the {} remaining bytes",
                self.remaining()
            ));
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(Some(out))
    }
}

/// Zigzag varint writers (used by the cleaner to re-encode records).
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, v as i64)
}

pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// One record of a batch, borrowed from the (decompressed) records payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The header section as stored: count varint then the headers.
    pub headers: &'a [u8],
}

/// Parses records from an uncompressed records payload. Each item is one record or the
/// first structural error (then the iterator ends).
pub struct RecordIter<'a> {
    reader: VarReader<'a>,
    remaining: i32,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(payload: &'a [u8], count: i32) -> Self {
        RecordIter {
            reader: VarReader::new(payload),
            remaining: count.max(0),
            failed: false,
        }
    }
    /// Bytes of the payload not consumed by the records read so far.
    pub fn trailing_bytes(&self) -> usize {
        self.reader.remaining()
    }

    fn read_one(&mut self) -> Result<RawRecord<'a>, String> {
        let len = self.reader.varint()?;
        if len < 0 || len as usize > self.reader.remaining() {
            return Err(format!("invalid record length {len}"));
        }
        let start = self.reader.position();
        let body = &self.reader.buf[start..start + len as usize];
        self.reader.pos += len as usize;
        let mut r = VarReader::new(body);
        let attributes = r.i8()?;
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.nullable_bytes()?;
        let value = r.nullable_bytes()?;
        let headers_start = r.position();
        let header_count = r.varint()?;
        if header_count < 0 {
            return Err(format!("invalid header count {header_count}"));
        }
        for _ in 0..header_count {
            match r.nullable_bytes()? {
                Some(_) => {}
                None => return Err("null header key".into()),
            }
            r.nullable_bytes()?;
        }
        if r.remaining() != 0 {
            return Err(format!(
                "record declares {len} bytes but its fields use {}",
                r.position()
            ));
        }
        Ok(RawRecord {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers: &body[headers_start..],
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RawRecord<'a>, String>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let r = self.read_one();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Cheap structural walk of an UNCOMPRESSED batch's records: the count matches the header
/// (count > 0, lastOffsetDelta == count - 1), offset deltas are 0..count in order, varints
/// are sane, and the records fill the batch exactly. Returns whether any record has a null
/// key (compacted topics reject those).
pub fn walk_uncompressed(batch: &Batch<'_>) -> Result<UncompressedWalk, String> {
    check_count(batch)?;
    let (null_key, max_delta) = scan_uncompressed(batch.records_payload(), batch.record_count())
        .map_err(|e| e.to_string())?;
    Ok(UncompressedWalk {
        null_key,
        max_timestamp: batch.first_timestamp().saturating_add(max_delta.max(0)),
    })
}

/// Why an uncompressed records payload is not well formed. Small and `Copy` so the hot
/// path never allocates; the message is built only when a batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    Truncated,
    VarintTooLong,
    BadRecordLength(i32),
    BadFieldLength(i32),
    BadHeaderCount(i32),
    NullHeaderKey,
    SizeMismatch { declared: i32, used: usize },
    OffsetDelta { found: i32, expected: i32 },
    Trailing(usize),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Truncated => write!(f, "record runs past the end of the data"),
            ScanError::VarintTooLong => write!(f, "varint is too long"),
            ScanError::BadRecordLength(n) => write!(f, "invalid record length {n}"),
            ScanError::BadFieldLength(n) => write!(f, "invalid length {n}"),
            ScanError::BadHeaderCount(n) => write!(f, "invalid header count {n}"),
            ScanError::NullHeaderKey => write!(f, "null header key"),
            ScanError::SizeMismatch { declared, used } => {
                write!(
                    f,
                    "record declares {declared} bytes but its fields use {used}"
                )
            }
            ScanError::OffsetDelta { found, expected } => {
                write!(
                    f,
                    "record offset delta {found} where {expected} was expected"
                )
            }
            ScanError::Trailing(n) => write!(f, "{n} bytes after the last record"),
        }
    }
}

/// Reads an unsigned LEB128 varint of at most `max` bytes from `buf[*pos..]`.
#[inline(always)]
fn read_uvarint(buf: &[u8], pos: &mut usize, max: usize) -> Result<u64, ScanError> {
    let first = *buf.get(*pos).ok_or(ScanError::Truncated)?;
    *pos += 1;
    if first < 0x80 {
        return Ok(u64::from(first)); // the common case: small lengths and deltas
    }
    let mut value = u64::from(first & 0x7f);
    for i in 1..max {
        let b = *buf.get(*pos).ok_or(ScanError::Truncated)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err(ScanError::VarintTooLong)
}

#[inline(always)]
fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, ScanError> {
    let raw = read_uvarint(buf, pos, 5)?;
    let raw = u32::try_from(raw).map_err(|_| ScanError::VarintTooLong)?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

#[inline(always)]
fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, ScanError> {
    let raw = read_uvarint(buf, pos, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Skips a varint length and that many bytes; returns whether it was null (-1).
#[inline(always)]
fn skip_bytes(buf: &[u8], pos: &mut usize) -> Result<bool, ScanError> {
    let len = read_varint(buf, pos)?;
    if len == -1 {
        return Ok(true);
    }
    if len < 0 || len as usize > buf.len() - *pos {
        return Err(ScanError::BadFieldLength(len));
    }
    *pos += len as usize;
    Ok(false)
}

/// Checks an uncompressed records payload record by record without building anything
/// (the produce hot path): every record's fields fill exactly its declared length, offset
/// deltas are 0, 1, 2, ..., and nothing follows the last record. Returns whether some key
/// is null and the largest timestamp delta.
pub fn scan_uncompressed(payload: &[u8], count: i32) -> Result<(bool, i64), ScanError> {
    let mut pos = 0usize;
    let mut null_key = false;
    let mut max_delta = i64::MIN;
    for expected in 0..count.max(0) {
        let len = read_varint(payload, &mut pos)?;
        if len < 0 || len as usize > payload.len() - pos {
            return Err(ScanError::BadRecordLength(len));
        }
        let start = pos;
        let end = pos + len as usize;
        // Parse within the record only: a field running past its record is an error.
        let rec = &payload[..end];
        let mut p = start;
        if p >= end {
            return Err(ScanError::Truncated);
        }
        p += 1; // attributes
        let ts_delta = read_varlong(rec, &mut p)?;
        let offset_delta = read_varint(rec, &mut p)?;
        if offset_delta != expected {
            return Err(ScanError::OffsetDelta {
                found: offset_delta,
                expected,
            });
        }
        null_key |= skip_bytes(rec, &mut p)?;
        skip_bytes(rec, &mut p)?;
        let headers = read_varint(rec, &mut p)?;
        if headers < 0 {
            return Err(ScanError::BadHeaderCount(headers));
        }
        for _ in 0..headers {
            if skip_bytes(rec, &mut p)? {
                return Err(ScanError::NullHeaderKey);
            }
            skip_bytes(rec, &mut p)?;
        }
        if p != end {
            return Err(ScanError::SizeMismatch {
                declared: len,
                used: p - start,
            });
        }
        max_delta = max_delta.max(ts_delta);
        pos = end;
    }
    if pos != payload.len() {
        return Err(ScanError::Trailing(payload.len() - pos));
    }
    Ok((null_key, max_delta))
}

/// What a structural walk of an uncompressed batch learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UncompressedWalk {
    /// Some record has a null key (refused on compacted topics).
    pub null_key: bool,
    /// The largest record timestamp (firstTimestamp + largest delta).
    pub max_timestamp: i64,
}

/// Header-level count checks shared by compressed and uncompressed batches (Kafka's
/// LogValidator.validateBatch for client batches).
pub fn check_count(batch: &Batch<'_>) -> Result<(), String> {
    let count = batch.record_count();
    if count <= 0 {
        return Err(format!(
            "invalid record count {count} (a batch needs records)"
        ));
    }
    let from_offsets = batch.last_offset_delta() as i64 + 1;
    if from_offsets != count as i64 {
        return Err(format!(
            "inconsistent batch: lastOffsetDelta {} but record count {count}",
            batch.last_offset_delta()
        ));
    }
    Ok(())
}

/// Decompresses the records payload of a batch with the codec named in its attributes
/// into at most `limit` bytes (see [`super::codec`]). Off the produce/fetch hot path.
pub fn decompress_records(batch: &Batch<'_>, limit: usize) -> Result<bytes::Bytes, String> {
    super::codec::decompress(batch.compression(), batch.records_payload(), limit)
        .map(bytes::Bytes::from)
        .map_err(|e| {
            format!(
                "cannot decompress batch at offset {}: {e}",
                batch.base_offset()
            )
        })
}

/// Every record of a batch (decompressing if needed) as owned data:
/// `(offset, timestamp, key, value, headers-section)`.
pub struct OwnedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub attributes: i8,
    pub key: Option<bytes::Bytes>,
    pub value: Option<bytes::Bytes>,
    pub headers: bytes::Bytes,
}

/// Decodes all records of a batch (any codec), decompressing into at most `limit` bytes.
/// Record timestamps honour LogAppendTime.
pub fn decode_records(batch: &Batch<'_>, limit: usize) -> Result<Vec<OwnedRecord>, String> {
    let payload = decompress_records(batch, limit)?;
    let count = batch.record_count();
    if count < 0 {
        return Err(format!("negative record count {count}"));
    }
    let mut out = Vec::new();
    let slice_of = |s: &[u8]| payload.slice_ref(s);
    for rec in RecordIter::new(&payload, count) {
        let rec = rec?;
        let ts = batch.record_timestamp(batch.first_timestamp().wrapping_add(rec.timestamp_delta));
        out.push(OwnedRecord {
            offset: batch.base_offset().wrapping_add(rec.offset_delta as i64),
            timestamp: ts,
            attributes: rec.attributes,
            key: rec.key.map(slice_of),
            value: rec.value.map(slice_of),
            headers: slice_of(rec.headers),
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// (key, value) of a hand-built record.
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// Builds an uncompressed v2 batch by hand.
    pub fn build_batch(
        base_offset: i64,
        first_ts: i64,
        producer: (i64, i16, i32),
        records: &[KeyValue<'_>],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, (k, v)) in records.iter().enumerate() {
            let mut rec = Vec::new();
            rec.push(0u8);
            put_varlong(&mut rec, i as i64); // timestamp delta
            put_varint(&mut rec, i as i32); // offset delta
            match k {
                Some(k) => {
                    put_varint(&mut rec, k.len() as i32);
                    rec.extend_from_slice(k);
                }
                None => put_varint(&mut rec, -1),
            }
            match v {
                Some(v) => {
                    put_varint(&mut rec, v.len() as i32);
                    rec.extend_from_slice(v);
                }
                None => put_varint(&mut rec, -1),
            }
            put_varint(&mut rec, 0);
            put_varint(&mut body, rec.len() as i32);
            body.extend_from_slice(&rec);
        }
        let n = records.len() as i32;
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(
            &((BATCH_HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32).to_be_bytes(),
        );
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&first_ts.to_be_bytes());
        b.extend_from_slice(&(first_ts + (n as i64 - 1).max(0)).to_be_bytes());
        b.extend_from_slice(&producer.0.to_be_bytes());
        b.extend_from_slice(&producer.1.to_be_bytes());
        b.extend_from_slice(&producer.2.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&body);
        patch::rewrite_crc(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::build_batch;
    use super::*;

    fn sample() -> Vec<u8> {
        build_batch(
            0,
            1000,
            (-1, -1, -1),
            &[
                (Some(b"k1"), Some(b"v1")),
                (None, Some(b"v2")),
                (Some(b"k3"), None),
            ],
        )
    }

    #[test]
    fn header_fields() {
        let b = sample();
        let batch = Batch::parse(&b).unwrap();
        assert_eq!(batch.size(), b.len());
        assert_eq!(batch.base_offset(), 0);
        assert_eq!(batch.last_offset(), 2);
        assert_eq!(batch.record_count(), 3);
        assert_eq!(batch.first_timestamp(), 1000);
        assert_eq!(batch.max_timestamp(), 1002);
        assert_eq!(batch.magic(), 2);
        assert!(!batch.has_producer_id());
        batch.verify_crc().unwrap();
        let walk = walk_uncompressed(&batch).unwrap();
        assert!(walk.null_key, "one record has a null key");
        assert_eq!(
            walk.max_timestamp, 1002,
            "recomputed from the record deltas"
        );
    }

    #[test]
    fn crc_detects_flip_and_patches_keep_crc() {
        let mut b = sample();
        patch::set_base_offset(&mut b, 42);
        patch::set_partition_leader_epoch(&mut b, 7);
        let batch = Batch::parse(&b).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.base_offset(), 42);
        assert_eq!(batch.last_offset(), 44);
        assert_eq!(batch.partition_leader_epoch(), 7);
        let last = b.len() - 1;
        b[last] ^= 0x01;
        assert!(matches!(
            Batch::parse(&b).unwrap().verify_crc(),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn log_append_time_patch() {
        let mut b = sample();
        patch::set_log_append_time(&mut b, 5555);
        let batch = Batch::parse(&b).unwrap();
        batch.verify_crc().unwrap();
        assert!(batch.is_log_append_time());
        assert_eq!(batch.max_timestamp(), 5555);
        assert_eq!(batch.first_timestamp(), 1000);
        assert_eq!(batch.record_timestamp(1001), 5555);
        let recs = decode_records(&batch, 1 << 20).unwrap();
        assert!(recs.iter().all(|r| r.timestamp == 5555));
    }

    #[test]
    fn iterator_splits_and_reports_truncation() {
        let mut buf = sample();
        buf.extend_from_slice(&sample());
        let n = buf.len();
        let all: Vec<_> = BatchIter::new(&buf).collect();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|r| r.is_ok()));
        let cut = &buf[..n - 3];
        let mut it = BatchIter::new(cut);
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(it.next(), Some(Err(BatchError::Truncated { .. }))));
        assert!(it.next().is_none());
        // bad magic
        let mut b = sample();
        b[16] = 1;
        assert_eq!(Batch::parse(&b).unwrap_err(), BatchError::BadMagic(1));
        // bad length
        let mut b = sample();
        b[8..12].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(Batch::parse(&b).unwrap_err(), BatchError::BadLength(5));
    }

    #[test]
    fn structural_walk_rejects_count_mismatch() {
        let mut b = sample();
        b[57..61].copy_from_slice(&2i32.to_be_bytes());
        patch::rewrite_crc(&mut b);
        assert!(walk_uncompressed(&Batch::parse(&b).unwrap()).is_err());
        let mut b = sample();
        b[57..61].copy_from_slice(&0i32.to_be_bytes());
        b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(walk_uncompressed(&Batch::parse(&b).unwrap()).is_err());
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(VarReader::new(&out).varlong().unwrap(), v);
            if let Ok(v32) = i32::try_from(v) {
                let mut out = Vec::new();
                put_varint(&mut out, v32);
                assert_eq!(VarReader::new(&out).varint().unwrap(), v32);
            }
        }
        assert!(VarReader::new(&[0xff; 6]).varint().is_err());
        assert!(VarReader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn sequence_wrap() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(decrement_sequence(0, 1), i32::MAX);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(8, 3), 5);
    }

    /// The hot-path scanner accepts exactly what the general record iterator accepts,
    /// on valid payloads and on thousands of random corruptions of them.
    #[test]
    fn fast_scanner_agrees_with_the_record_iterator() {
        use rand::{Rng, SeedableRng};
        let reference = |payload: &[u8], count: i32| -> Result<bool, ()> {
            let mut iter = RecordIter::new(payload, count);
            let mut null_key = false;
            for (expected, rec) in (0i32..).zip(iter.by_ref()) {
                let rec = rec.map_err(|_| ())?;
                if rec.offset_delta != expected {
                    return Err(());
                }
                null_key |= rec.key.is_none();
            }
            if iter.trailing_bytes() != 0 {
                return Err(());
            }
            Ok(null_key)
        };
        let b = sample();
        let batch = Batch::parse(&b).unwrap();
        let payload = batch.records_payload().to_vec();
        let count = batch.record_count();
        assert_eq!(scan_uncompressed(&payload, count).map(|r| r.0), Ok(true));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let mut p = payload.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..p.len());
                p[i] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                p.truncate(rng.gen_range(0..p.len()));
            }
            let fast = scan_uncompressed(&p, count).map(|r| r.0).map_err(|_| ());
            assert_eq!(fast, reference(&p, count), "disagreement on {p:?}");
        }
    }
}
