//! `__transaction_state` records in Kafka's schemas (`TransactionLogKey` v0,
//! `TransactionLogValue` v0 written, v0-v1 read), so Kafka's own tools can read the topic.
//!
//! Key: `{version: i16 = 0, transactional_id: string}`. Value v0: `{version: i16,
//! producer_id: i64, producer_epoch: i16, transaction_timeout_ms: i32, status: i8,
//! partitions: nullable [{topic: string, partition_ids: [i32]}], last_update_ms: i64,
//! start_ms: i64}`; v1 is the same, flexible (compact lengths, tagged fields). A
//! tombstone (null value) removes an expired transactional id.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::metadata::{TxnState, TxnTransit};
use crate::coordinator::record::{put_string, DecodeError, Reader};

pub const KEY_VERSION: i16 = 0;
pub const VALUE_VERSION: i16 = 0;

/// The transactional id of a key; `Ok(None)` for a key version gregor does not know
/// (Kafka skips those with a warning).
pub fn decode_key(key: &[u8]) -> Result<Option<String>, DecodeError> {
    let mut r = Reader::new(key, "TransactionLogKey");
    match r.i16()? {
        KEY_VERSION => Ok(Some(r.string()?)),
        _ => Ok(None),
    }
}

pub fn key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    put_string(&mut out, transactional_id);
    out.freeze()
}

/// What a value record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

/// Kafka's `valueToBytes` (version 0; the partitions are null for Empty).
pub fn value(t: &TxnTransit) -> Bytes {
    assert!(
        t.state != TxnState::Empty || t.partitions.is_empty(),
        "an Empty transaction has no partitions"
    );
    let mut out = BytesMut::with_capacity(64);
    out.put_i16(VALUE_VERSION);
    out.put_i64(t.producer_id);
    out.put_i16(t.producer_epoch);
    out.put_i32(t.txn_timeout_ms);
    out.put_i8(t.state.id());
    if t.state == TxnState::Empty {
        out.put_i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, p) in &t.partitions {
            match topics.last_mut() {
                Some((last, ps)) if *last == topic.as_str() => ps.push(*p),
                _ => topics.push((topic.as_str(), vec![*p])),
            }
        }
        out.put_i32(topics.len() as i32);
        for (topic, ps) in topics {
            put_string(&mut out, topic);
            out.put_i32(ps.len() as i32);
            for p in ps {
                out.put_i32(p);
            }
        }
    }
    out.put_i64(t.txn_last_update_timestamp);
    out.put_i64(t.txn_start_timestamp);
    out.freeze()
}

/// Kafka's `readTxnRecordValue` (versions 0 and 1).
pub fn decode_value(value: &[u8]) -> Result<TxnValue, DecodeError> {
    let mut r = Reader::new(value, "TransactionLogValue");
    let version = r.i16()?;
    match version {
        0 => {}
        1 => r.flexible = true,
        v => return Err(r.err(format!("unknown value version {v}"))),
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let txn_timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state = TxnState::from_id(status)
        .ok_or_else(|| r.err(format!("unknown transaction state {status}")))?;
    let mut partitions = BTreeSet::new();
    if let Some(n) = r.nullable_array_len()? {
        for _ in 0..n {
            let topic = r.string()?;
            let m = r.array_len()?;
            for _ in 0..m {
                partitions.insert((topic.clone(), r.i32()?));
            }
            r.tagged_fields()?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    r.tagged_fields()?;
    if state == TxnState::Empty {
        partitions.clear(); // Kafka ignores them for Empty
    }
    Ok(TxnValue {
        producer_id,
        producer_epoch,
        txn_timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transit(state: TxnState, partitions: &[(&str, i32)]) -> TxnTransit {
        TxnTransit {
            producer_id: 1000,
            last_producer_id: -1,
            producer_epoch: 3,
            last_producer_epoch: -1,
            txn_timeout_ms: 60_000,
            state,
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
            txn_start_timestamp: 1_700_000_000_000,
            txn_last_update_timestamp: 1_700_000_000_500,
        }
    }

    #[test]
    fn keys_and_values_round_trip_in_kafkas_layout() {
        let k = key("my-txn");
        assert_eq!(&k[..], &[0, 0, 0, 6, b'm', b'y', b'-', b't', b'x', b'n']);
        assert_eq!(decode_key(&k).unwrap().as_deref(), Some("my-txn"));
        assert_eq!(decode_key(&[0, 9, 0, 0]).unwrap(), None);
        let t = transit(TxnState::Ongoing, &[("a", 1), ("a", 0), ("b", 7)]);
        let v = value(&t);
        // version, pid, epoch, timeout, status, then 2 topics.
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(v[16], 1);
        assert_eq!(&v[17..21], &2i32.to_be_bytes());
        let back = decode_value(&v).unwrap();
        assert_eq!(back.state, TxnState::Ongoing);
        assert_eq!(back.partitions, t.partitions);
        assert_eq!(
            (back.producer_id, back.producer_epoch, back.txn_timeout_ms),
            (1000, 3, 60_000)
        );
        assert_eq!(
            (back.last_update_ms, back.start_ms),
            (t.txn_last_update_timestamp, t.txn_start_timestamp)
        );
        let empty = value(&transit(TxnState::Empty, &[]));
        assert_eq!(&empty[17..21], &(-1i32).to_be_bytes(), "null partitions");
        assert!(decode_value(&empty).unwrap().partitions.is_empty());
    }

    #[test]
    fn flexible_values_and_garbage() {
        // Version 1: compact arrays/strings and tagged fields.
        let mut v = vec![0, 1];
        v.extend_from_slice(&5i64.to_be_bytes());
        v.extend_from_slice(&2i16.to_be_bytes());
        v.extend_from_slice(&100i32.to_be_bytes());
        v.push(2); // PrepareCommit
        v.push(2); // one topic (n + 1)
        v.push(2); // "t" (len + 1)
        v.push(b't');
        v.push(3); // two partitions
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&4i32.to_be_bytes());
        v.push(0); // topic tagged fields
        v.extend_from_slice(&9i64.to_be_bytes());
        v.extend_from_slice(&8i64.to_be_bytes());
        v.push(0);
        let d = decode_value(&v).unwrap();
        assert_eq!(d.state, TxnState::PrepareCommit);
        assert_eq!(d.partitions.len(), 2);
        assert!(decode_value(&v[..20]).is_err());
        assert!(decode_value(&[0, 7]).is_err());
        let mut bad_state = value(&transit(TxnState::Ongoing, &[("a", 1)])).to_vec();
        bad_state[16] = 42;
        assert!(decode_value(&bad_state).is_err());
    }
}
