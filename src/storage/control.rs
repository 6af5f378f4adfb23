//! Transaction markers: Kafka's control batches (`EndTransactionMarker`). A marker is a
//! v2 batch with the control and transactional attribute bits, the producer id and epoch
//! of the transaction it ends, no sequence, and one record whose key is
//! `{version: i16 = 0, type: i16}` (0 = ABORT, 1 = COMMIT) and whose value is
//! `{version: i16 = 0, coordinator_epoch: i32}`.

use super::batch::{patch, put_varint, put_varlong, Batch, HeaderFields, RecordIter};
use super::batch::{BATCH_HEADER_SIZE, LOG_OVERHEAD};

/// Kafka's `ControlRecordType` values of transaction markers.
pub const CONTROL_TYPE_ABORT: i16 = 0;
pub const CONTROL_TYPE_COMMIT: i16 = 1;

const TRANSACTIONAL_ATTR: i16 = 0x10;
const CONTROL_ATTR: i16 = 0x20;

/// What one transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

/// Builds the control batch of `marker`, base offset 0 (the leader assigns the offset).
pub fn build_marker_batch(marker: &Marker, timestamp: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    let kind = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut rec = vec![0u8]; // attributes
    put_varlong(&mut rec, 0); // timestamp delta
    put_varint(&mut rec, 0); // offset delta
    put_varint(&mut rec, key.len() as i32);
    rec.extend_from_slice(&key);
    put_varint(&mut rec, value.len() as i32);
    rec.extend_from_slice(&value);
    put_varint(&mut rec, 0); // headers
    let mut body = Vec::with_capacity(rec.len() + 1);
    put_varint(&mut body, rec.len() as i32);
    body.extend_from_slice(&rec);
    let mut b = Vec::with_capacity(BATCH_HEADER_SIZE + body.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((BATCH_HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&(TRANSACTIONAL_ATTR | CONTROL_ATTR).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&marker.producer_id.to_be_bytes());
    b.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // record count
    b.extend_from_slice(&body);
    patch::rewrite_crc(&mut b);
    b
}

/// Reads the marker of a control batch. `Ok(None)` for an empty control batch (the
/// cleaner removed its record) and for control records that are not transaction markers
/// (Kafka skips those too).
pub fn parse_marker(batch: &Batch<'_>) -> Result<Option<Marker>, String> {
    if !batch.is_control() {
        return Err("not a control batch".into());
    }
    if batch.is_compressed() {
        return Err("compressed control batch".into());
    }
    let count = batch.record_count();
    let Some(first) = RecordIter::new(batch.records_payload(), count).next() else {
        return Ok(None);
    };
    let rec = first?;
    let key = rec.key.ok_or("control record without a key")?;
    if key.len() < 4 {
        return Err(format!("control record key of {} bytes", key.len()));
    }
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let commit = match kind {
        CONTROL_TYPE_COMMIT => true,
        CONTROL_TYPE_ABORT => false,
        _ => return Ok(None),
    };
    let value = rec.value.ok_or("transaction marker without a value")?;
    if value.len() < 6 {
        return Err(format!("transaction marker value of {} bytes", value.len()));
    }
    let version = i16::from_be_bytes([value[0], value[1]]);
    if version < 0 {
        return Err(format!("transaction marker value version {version}"));
    }
    Ok(Some(Marker {
        producer_id: batch.producer_id(),
        producer_epoch: batch.producer_epoch(),
        coordinator_epoch: i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
        commit,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_in_kafkas_layout() {
        for commit in [true, false] {
            let m = Marker {
                producer_id: 4000,
                producer_epoch: 7,
                coordinator_epoch: 12,
                commit,
            };
            let bytes = build_marker_batch(&m, 1_700_000_000_000);
            let b = Batch::parse(&bytes).unwrap();
            b.verify_crc().unwrap();
            assert!(b.is_control() && b.is_transactional());
            assert_eq!((b.record_count(), b.base_sequence()), (1, -1));
            assert_eq!(parse_marker(&b).unwrap(), Some(m));
        }
        let data = super::super::batch::test_util::build_batch(0, 1, (1, 0, 0), &[(None, None)]);
        assert!(parse_marker(&Batch::parse(&data).unwrap()).is_err());
    }
}
