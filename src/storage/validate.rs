//! Produce-path validation of client batches (the part of Kafka's `LogValidator` and
//! `UnifiedLog.analyzeAndValidateRecords` that needs no record decoding): batch framing,
//! size, CRC, header sanity and, for uncompressed batches, a structural walk of the
//! records. Compressed batches are only decompressed on compacted topics (key check).

use super::batch::{
    check_count, decode_records, walk_uncompressed, Batch, BatchError, BatchIter, HeaderFields,
    RecordIter,
};
use super::config::{LogConfig, TimestampType};
use super::error::{AppendError, RecordError};

/// What the log needs to know about one validated client batch.
#[derive(Debug, Clone, Copy)]
pub struct ValidatedBatch {
    /// Position of the batch in the append buffer.
    pub pos: usize,
    pub size: usize,
    pub record_count: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub last_sequence: i32,
    pub last_offset_delta: i32,
    pub transactional: bool,
    /// The header's max timestamp was wrong (Kafka recomputes it from the records: some
    /// clients, e.g. sarama, send -1): the log stores `max_timestamp` instead.
    pub fix_max_timestamp: bool,
}

fn framing_error(e: BatchError) -> AppendError {
    match e {
        BatchError::BadMagic(m) => AppendError::InvalidRecord(format!(
            "unsupported record batch magic {m} (only v2 is accepted)"
        )),
        BatchError::Invalid(s) => AppendError::InvalidRecord(s),
        other => AppendError::CorruptMessage(other.to_string()),
    }
}

/// Kafka's `LogValidator.validateKey` and `validateTimestamp` for one record:
/// `Some((timestamp_error, message))` when the record is refused.
pub(crate) fn check_record(
    null_key: bool,
    timestamp: i64,
    offset: i64,
    batch_log_append_time: bool,
    config: &LogConfig,
    now_ms: i64,
) -> Option<(bool, String)> {
    if null_key && config.cleanup_policy.compacts() {
        return Some((
            false,
            "Compacted topic cannot accept message without key".to_string(),
        ));
    }
    if config.timestamp_type == TimestampType::CreateTime && timestamp != -1 {
        let (before, after) = (
            config.timestamp_before_max_ms,
            config.timestamp_after_max_ms,
        );
        let diff = now_ms as i128 - timestamp as i128;
        if diff > before as i128 || -diff > after as i128 {
            return Some((
                true,
                format!(
                    "Timestamp {timestamp} of message with offset {offset} is out of range. The timestamp should be within [{}, {}]",
                    now_ms.saturating_sub(before),
                    now_ms.saturating_add(after)
                ),
            ));
        }
    } else if batch_log_append_time {
        return Some((
            true,
            format!("Invalid timestamp type in message with offset {offset}. Producer should not set timestamp type to LogAppendTime."),
        ));
    }
    None
}

/// Checks every record of a v2 batch (keys on compacted topics, timestamps) and refuses
/// the batch with record errors (KIP-467) if some fail. `records` yields
/// (null key, timestamp, offset delta).
fn check_records(
    b: &Batch<'_>,
    records: impl Iterator<Item = (bool, i64, i64)>,
    config: &LogConfig,
    now_ms: i64,
) -> Result<(), AppendError> {
    let lat = b.is_log_append_time();
    let mut errors = Vec::new();
    let mut timestamp_error = false;
    for (index, (null_key, ts, delta)) in records.enumerate() {
        if let Some((is_ts, message)) = check_record(null_key, ts, delta, lat, config, now_ms) {
            timestamp_error |= is_ts;
            errors.push(RecordError {
                batch_index: index as i32,
                message,
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppendError::rejected(errors, timestamp_error))
    }
}

/// (null key, timestamp, offset delta) of each record of an uncompressed batch (already
/// walked, so well formed).
fn uncompressed_records<'a>(b: &'a Batch<'a>) -> impl Iterator<Item = (bool, i64, i64)> + 'a {
    RecordIter::new(b.records_payload(), b.record_count())
        .map_while(Result::ok)
        .map(move |r| {
            let ts = b.record_timestamp(b.first_timestamp().wrapping_add(r.timestamp_delta));
            (r.key.is_none(), ts, r.offset_delta as i64)
        })
}

/// Validates every batch of a produce request's records for a partition.
pub fn validate_client_batches(
    buf: &[u8],
    config: &LogConfig,
    now_ms: i64,
) -> Result<Vec<ValidatedBatch>, AppendError> {
    if buf.is_empty() {
        return Err(AppendError::InvalidRecord(
            "produce request contains no record batches".into(),
        ));
    }
    let compacted = config.cleanup_policy.compacts();
    let mut out = Vec::new();
    for item in BatchIter::new(buf) {
        let (pos, b) = item.map_err(framing_error)?;
        if b.size() > config.max_message_bytes {
            return Err(AppendError::MessageTooLarge {
                size: b.size(),
                max: config.max_message_bytes,
            });
        }
        b.verify_crc()
            .map_err(|e| AppendError::CorruptMessage(e.to_string()))?;
        if b.base_offset() != 0 {
            return Err(AppendError::InvalidRecord(format!(
                "the baseOffset of a produced record batch should be 0, but it is {}",
                b.base_offset()
            )));
        }
        check_count(&b).map_err(AppendError::InvalidRecord)?;
        if b.is_control() {
            return Err(AppendError::InvalidRecord(
                "clients are not allowed to write control records".into(),
            ));
        }
        if b.is_transactional() && !b.has_producer_id() {
            return Err(AppendError::InvalidRecord(
                "a transactional record batch needs a producer id".into(),
            ));
        }
        if b.has_producer_id() && b.base_sequence() < 0 {
            return Err(AppendError::InvalidRecord(format!(
                "invalid sequence number {} for producer {}",
                b.base_sequence(),
                b.producer_id()
            )));
        }
        if b.compression() > 4 {
            return Err(AppendError::InvalidRecord(format!(
                "unknown compression codec {}",
                b.compression()
            )));
        }
        // Kafka recomputes the max timestamp from the records. Uncompressed batches are
        // walked anyway; a compressed one is decompressed only when its header value is
        // clearly unset (below its first timestamp), so well-behaved clients cost nothing.
        // Records are looked at one by one only when something can refuse them: keys on
        // compacted topics, bounded timestamps, a producer-set LogAppendTime.
        let per_record = compacted || config.bounds_timestamps() || b.is_log_append_time();
        let header_max = b.max_timestamp();
        let must_decode = b.is_compressed() && (per_record || header_max < b.first_timestamp());
        let max_timestamp = if must_decode {
            let limit = super::codec::limit_for(config.max_message_bytes);
            let recs = decode_records(&b, limit).map_err(AppendError::CorruptMessage)?;
            if recs.len() != b.record_count() as usize {
                return Err(AppendError::InvalidRecord(
                    "record count does not match the header".into(),
                ));
            }
            if per_record {
                let base = b.base_offset();
                let each = recs
                    .iter()
                    .map(|r| (r.key.is_none(), r.timestamp, r.offset.wrapping_sub(base)));
                check_records(&b, each, config, now_ms)?;
            }
            let max = recs.iter().map(|r| r.timestamp).max().unwrap_or(header_max);
            max.max(header_max)
        } else if b.is_compressed() {
            header_max
        } else {
            let walk = walk_uncompressed(&b).map_err(AppendError::InvalidRecord)?;
            let other_checks = config.bounds_timestamps() || b.is_log_append_time();
            if (compacted && walk.null_key) || other_checks {
                check_records(&b, uncompressed_records(&b), config, now_ms)?;
            }
            walk.max_timestamp
        };
        out.push(ValidatedBatch {
            pos,
            size: b.size(),
            record_count: b.record_count(),
            max_timestamp,
            fix_max_timestamp: max_timestamp != header_max,
            producer_id: b.producer_id(),
            producer_epoch: b.producer_epoch(),
            base_sequence: b.base_sequence(),
            last_sequence: b.last_sequence(),
            last_offset_delta: b.last_offset_delta(),
            transactional: b.is_transactional(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::batch::patch;
    use super::super::batch::test_util::build_batch;
    use super::super::batch::Batch;
    use super::super::config::CleanupPolicy;
    use super::*;

    fn ok_batch() -> Vec<u8> {
        build_batch(
            0,
            10,
            (3, 0, 0),
            &[(Some(b"k"), Some(b"v")), (Some(b"k2"), None)],
        )
    }

    #[test]
    fn accepts_valid_and_reports_producer_fields() {
        let mut two = ok_batch();
        two.extend_from_slice(&ok_batch());
        let v = validate_client_batches(&two, &LogConfig::default(), 0).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (
                v[1].pos,
                v[1].record_count,
                v[1].producer_id,
                v[1].last_sequence
            ),
            (v[0].size, 2, 3, 1)
        );
    }

    #[test]
    fn error_kinds() {
        let cfg = LogConfig::default();
        let mut b = ok_batch();
        b.truncate(b.len() - 1);
        assert!(matches!(
            validate_client_batches(&b, &cfg, 0),
            Err(AppendError::CorruptMessage(_))
        ));
        let mut b = ok_batch();
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // producer id but no sequence
        patch::rewrite_crc(&mut b);
        assert!(matches!(
            validate_client_batches(&b, &cfg, 0),
            Err(AppendError::InvalidRecord(_))
        ));
        let mut b = ok_batch();
        b[22] |= 0x20; // control
        patch::rewrite_crc(&mut b);
        assert!(matches!(
            validate_client_batches(&b, &cfg, 0),
            Err(AppendError::InvalidRecord(_))
        ));
        let mut b = ok_batch();
        b[22] |= 0x07; // codec 7
        patch::rewrite_crc(&mut b);
        assert!(matches!(
            validate_client_batches(&b, &cfg, 0),
            Err(AppendError::InvalidRecord(_))
        ));
        let compacted = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..LogConfig::default()
        };
        let nokey = build_batch(0, 10, (-1, -1, -1), &[(None, Some(b"v"))]);
        assert!(validate_client_batches(&nokey, &cfg, 0).is_ok());
        match validate_client_batches(&nokey, &compacted, 0) {
            Err(AppendError::RecordsRejected {
                timestamp: false,
                records,
                ..
            }) => assert_eq!(records[0].batch_index, 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unset_max_timestamp_is_recomputed_from_the_records() {
        let mut b = ok_batch();
        // Clients like sarama send -1 as the batch max timestamp.
        b[35..43].copy_from_slice(&(-1i64).to_be_bytes());
        patch::rewrite_crc(&mut b);
        let v = validate_client_batches(&b, &LogConfig::default(), 0).unwrap();
        assert!(v[0].fix_max_timestamp);
        assert_eq!(
            v[0].max_timestamp,
            Batch::parse(&ok_batch()).unwrap().max_timestamp()
        );
        let v = validate_client_batches(&ok_batch(), &LogConfig::default(), 0).unwrap();
        assert!(!v[0].fix_max_timestamp, "a correct header is kept as sent");
    }
}
