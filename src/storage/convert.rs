//! What Kafka's `LogValidator` rewrites before a producer's records are appended: message
//! format v0/v1 sets become a v2 batch (see [`super::legacy::up`]), and a topic whose
//! `compression.type` names a codec stores every batch with that codec, recompressing
//! those the producer sent otherwise (Kafka's `buildRecordsAndAssignOffsets`: producer
//! id, epoch, sequence and transactional flag kept, records re-encoded with their
//! timestamps, keys, values and headers). The common case, v2 batches under `producer`,
//! is returned as is without reading it.

use std::borrow::Cow;

use super::batch::{decode_records, BatchIter, HeaderFields};
use super::builder::{self, BatchSpec, NewRecord};
use super::config::{Compression, LogConfig};
use super::error::AppendError;
use super::legacy::message::MAGIC_OFFSET;
use super::validate::validate_client_batches;

/// The records to append in place of `buf`, a produce request's records for one
/// partition.
pub fn prepare_client_records<'a>(
    buf: &'a [u8],
    config: &LogConfig,
    now_ms: i64,
) -> Result<Cow<'a, [u8]>, AppendError> {
    if buf.len() > MAGIC_OFFSET && buf[MAGIC_OFFSET] < 2 {
        return super::legacy::up::up_convert(buf, config, now_ms).map(Cow::Owned);
    }
    match config.compression {
        Compression::Codec { codec, level } => recompress(buf, codec, level, config, now_ms),
        Compression::Producer => Ok(Cow::Borrowed(buf)),
    }
}

/// Rewrites every batch not already compressed with `codec` (control batches excepted),
/// after the batches passed validation as sent (so a corrupt batch never gets a fresh
/// CRC).
fn recompress<'a>(
    buf: &'a [u8],
    codec: u8,
    level: Option<i32>,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Cow<'a, [u8]>, AppendError> {
    let needs = BatchIter::new(buf)
        .any(|b| b.is_ok_and(|(_, b)| b.compression() != codec && !b.is_control()));
    if !needs {
        return Ok(Cow::Borrowed(buf));
    }
    validate_client_batches(buf, config, now_ms)?;
    let limit = super::codec::limit_for(config.max_message_bytes);
    let mut out = Vec::with_capacity(buf.len());
    for item in BatchIter::new(buf) {
        let (_, b) = item.map_err(|e| AppendError::CorruptMessage(e.to_string()))?;
        if b.compression() == codec || b.is_control() {
            out.extend_from_slice(b.bytes());
            continue;
        }
        let records = decode_records(&b, limit).map_err(AppendError::CorruptMessage)?;
        let new: Vec<NewRecord<'_>> = records
            .iter()
            .map(|r| NewRecord {
                timestamp: r.timestamp,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &r.headers,
            })
            .collect();
        let spec = BatchSpec {
            base_offset: b.base_offset(),
            codec,
            level,
            producer_id: b.producer_id(),
            producer_epoch: b.producer_epoch(),
            base_sequence: b.base_sequence(),
            transactional: b.is_transactional(),
            partition_leader_epoch: b.partition_leader_epoch(),
        };
        out.extend_from_slice(&builder::build(&spec, &new).map_err(AppendError::CorruptMessage)?);
    }
    Ok(Cow::Owned(out))
}
