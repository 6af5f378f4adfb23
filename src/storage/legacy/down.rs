//! Down-conversion on fetch: v2 batches as stored, served to a client that reads message
//! format v0 (Fetch v0-v1) or v1 (Fetch v2-v3), as Kafka's `RecordsUtil.downConvert`:
//!
//! - control batches are dropped (v0/v1 have no transaction markers), headers too;
//! - an uncompressed batch becomes one message per record, skipping records before the
//!   fetch offset; a compressed batch becomes one wrapper message compressed with the
//!   same codec, holding every record of the batch (old consumers skip those before
//!   their position), magic 1 inner offsets relative to the first, the wrapper at the
//!   absolute last offset;
//! - LogAppendTime batches keep that time: the timestamp-type attribute and the batch's
//!   append time on every magic 1 message;
//! - zstd has no v0/v1 form: UNSUPPORTED_COMPRESSION_TYPE if it is the first batch,
//!   otherwise the answer stops before it (Kafka's overflow batch), so the consumer asks
//!   again from there and then gets the error.
//!
//! Unlike Kafka's lazy conversion, which pads to the size it announced with an overflow
//! message, the result is cut at message boundaries: at most `limit` bytes, except that
//! the first message is returned whole with `min_one` (Fetch v3, KIP-74) and cut at
//! `limit` bytes without it (Fetch v0-v2 have a hard limit: a client reads a partial
//! first message as "the message is larger than the fetch size").

use super::super::batch::{decode_records, BatchIter, HeaderFields, OwnedRecord};
use super::super::codec::{self, lz4_legacy};
use super::message::{self, TIMESTAMP_TYPE_MASK};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownConvertError {
    /// The first batch is zstd-compressed (UNSUPPORTED_COMPRESSION_TYPE).
    #[error("zstd-compressed batches cannot be converted to message format v{0}")]
    UnsupportedCompression(u8),
    /// The stored data cannot be read back.
    #[error("cannot down-convert stored batches: {0}")]
    Corrupt(String),
}

/// What a conversion produced.
#[derive(Debug, Default)]
pub struct DownConverted {
    pub records: Vec<u8>,
    /// Records converted (for the conversion metrics and benchmarks).
    pub record_count: usize,
}

/// Converts the v2 batches in `data` (as read from the log, the first holding
/// `fetch_offset`) into a magic `to_magic` (0 or 1) message set.
pub fn down_convert(
    data: &[u8],
    to_magic: u8,
    fetch_offset: i64,
    limit: usize,
    min_one: bool,
    decompress_limit: usize,
) -> Result<DownConverted, DownConvertError> {
    assert!(
        to_magic <= 1,
        "down-conversion targets message formats v0 and v1"
    );
    let mut out = DownConverted::default();
    let mut unit = Vec::new();
    for item in BatchIter::new(data) {
        let b = match item {
            Ok((_, b)) => b,
            Err(e) if out.records.is_empty() => {
                return Err(DownConvertError::Corrupt(e.to_string()))
            }
            Err(_) => break,
        };
        if b.is_control() {
            continue;
        }
        if b.compression() == 4 {
            if out.records.is_empty() {
                return Err(DownConvertError::UnsupportedCompression(to_magic));
            }
            break;
        }
        let records = match decode_records(&b, decompress_limit) {
            Ok(r) => r,
            Err(e) if out.records.is_empty() => return Err(DownConvertError::Corrupt(e)),
            Err(_) => break,
        };
        let lat = b.is_log_append_time().then(|| b.max_timestamp());
        let ts_attr = if to_magic == 1 && lat.is_some() {
            TIMESTAMP_TYPE_MASK
        } else {
            0
        };
        if b.is_compressed() {
            if records.is_empty() {
                continue;
            }
            unit.clear();
            wrapper(&mut unit, &records, to_magic, b.compression(), ts_attr, lat)?;
            if !push(&mut out.records, &unit, limit, min_one) {
                return Ok(out);
            }
            out.record_count += records.len();
        } else {
            for r in records.iter().filter(|r| r.offset >= fetch_offset) {
                unit.clear();
                message::write(
                    &mut unit,
                    r.offset,
                    to_magic,
                    ts_attr,
                    r.timestamp,
                    r.key.as_deref(),
                    r.value.as_deref(),
                );
                if !push(&mut out.records, &unit, limit, min_one) {
                    return Ok(out);
                }
                out.record_count += 1;
            }
        }
    }
    Ok(out)
}

/// Appends one converted message (or wrapper) if it fits; the first one always goes in,
/// whole with `min_one`, else cut at `limit`. Returns false when the answer is full.
fn push(out: &mut Vec<u8>, unit: &[u8], limit: usize, min_one: bool) -> bool {
    if out.len() + unit.len() <= limit {
        out.extend_from_slice(unit);
        return true;
    }
    if out.is_empty() {
        let take = if min_one {
            unit.len()
        } else {
            limit.min(unit.len())
        };
        out.extend_from_slice(&unit[..take]);
    }
    false
}

/// One compressed wrapper message holding `records` (MemoryRecordsBuilder for magic 0/1).
fn wrapper(
    out: &mut Vec<u8>,
    records: &[OwnedRecord],
    magic: u8,
    codec_id: u8,
    ts_attr: u8,
    lat: Option<i64>,
) -> Result<(), DownConvertError> {
    let base = records[0].offset;
    let mut inner = Vec::new();
    let mut max_timestamp = -1i64;
    for r in records {
        // KIP-31: magic 1 inner offsets are relative to the first record, magic 0 absolute.
        let offset = if magic == 1 {
            r.offset - base
        } else {
            r.offset
        };
        max_timestamp = max_timestamp.max(r.timestamp);
        message::write(
            &mut inner,
            offset,
            magic,
            ts_attr,
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
        );
    }
    // The fastest level: down-converted data is transient (lz4 at Kafka's default 9 tripled
    // the conversion's CPU).
    let mut value =
        codec::compress(codec_id, &inner, Some(1)).map_err(DownConvertError::Corrupt)?;
    if codec_id == 3 && magic == 0 {
        lz4_legacy::set_header_checksum(&mut value, true);
    }
    let last = records[records.len() - 1].offset;
    let timestamp = lat.unwrap_or(max_timestamp);
    message::write(
        out,
        last,
        magic,
        codec_id | ts_attr,
        timestamp,
        None,
        Some(&value),
    );
    Ok(())
}
