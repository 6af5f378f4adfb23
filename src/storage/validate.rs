//! Produce-path validation of client batches (the part of Kafka's `LogValidator` and
//! `UnifiedLog.analyzeAndValidateRecords` that needs no record decoding): batch framing,
//! size, CRC, header sanity and, for uncompressed batches, a structural walk of the
//! records. Compressed batches are only decompressed on compacted topics (key check).

use super::batch::{
    check_count, decode_records, walk_uncompressed, BatchError, BatchIter, HeaderFields,
};
use super::config::LogConfig;
use super::error::AppendError;

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

/// Validates every batch of a produce request's records for a partition.
pub fn validate_client_batches(
    buf: &[u8],
    config: &LogConfig,
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
        let header_max = b.max_timestamp();
        let must_decode = b.is_compressed() && (compacted || header_max < b.first_timestamp());
        let (null_key, max_timestamp) = if must_decode {
            let limit = super::codec::limit_for(config.max_message_bytes);
            let recs = decode_records(&b, limit).map_err(AppendError::CorruptMessage)?;
            if recs.len() != b.record_count() as usize {
                return Err(AppendError::InvalidRecord(
                    "record count does not match the header".into(),
                ));
            }
            let max = recs.iter().map(|r| r.timestamp).max().unwrap_or(header_max);
            (recs.iter().any(|r| r.key.is_none()), max.max(header_max))
        } else if b.is_compressed() {
            (false, header_max)
        } else {
            let walk = walk_uncompressed(&b).map_err(AppendError::InvalidRecord)?;
            (walk.null_key, walk.max_timestamp)
        };
        if compacted && null_key {
            return Err(AppendError::InvalidRecord(
                "compacted topic cannot accept message without key".into(),
            ));
        }
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
        let v = validate_client_batches(&two, &LogConfig::default()).unwrap();
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
            validate_client_batches(&b, &cfg),
            Err(AppendError::CorruptMessage(_))
        ));
        let mut b = ok_batch();
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // producer id but no sequence
        patch::rewrite_crc(&mut b);
        assert!(matches!(
            validate_client_batches(&b, &cfg),
            Err(AppendError::InvalidRecord(_))
        ));
        let mut b = ok_batch();
        b[22] |= 0x20; // control
        patch::rewrite_crc(&mut b);
        assert!(matches!(
            validate_client_batches(&b, &cfg),
            Err(AppendError::InvalidRecord(_))
        ));
        let mut b = ok_batch();
        b[22] |= 0x07; // codec 7
        patch::rewrite_crc(&mut b);
        assert!(matches!(
            validate_client_batches(&b, &cfg),
            Err(AppendError::InvalidRecord(_))
        ));
        let compacted = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..LogConfig::default()
        };
        let nokey = build_batch(0, 10, (-1, -1, -1), &[(None, Some(b"v"))]);
        assert!(validate_client_batches(&nokey, &cfg).is_ok());
        assert!(matches!(
            validate_client_batches(&nokey, &compacted),
            Err(AppendError::InvalidRecord(_))
        ));
    }

    #[test]
    fn an_unset_max_timestamp_is_recomputed_from_the_records() {
        let mut b = ok_batch();
        // Clients like sarama send -1 as the batch max timestamp.
        b[35..43].copy_from_slice(&(-1i64).to_be_bytes());
        patch::rewrite_crc(&mut b);
        let v = validate_client_batches(&b, &LogConfig::default()).unwrap();
        assert!(v[0].fix_max_timestamp);
        assert_eq!(
            v[0].max_timestamp,
            Batch::parse(&ok_batch()).unwrap().max_timestamp()
        );
        let v = validate_client_batches(&ok_batch(), &LogConfig::default()).unwrap();
        assert!(!v[0].fix_max_timestamp, "a correct header is kept as sent");
    }
}
