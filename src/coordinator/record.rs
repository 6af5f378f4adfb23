//! Records a coordinator appends to its internal topic, and their batches.

use bytes::{BufMut, Bytes, BytesMut};

/// A record to append: key and value bytes (value `None` = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// The producer of a transactional offset commit's batch (Kafka writes
/// TxnOffsetCommit records as a transactional batch of the committing producer, base
/// sequence 0, origin COORDINATOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Encodes `records` as one uncompressed v2 record batch (offsets from 0, no producer id),
/// ready for `Partition::append_as_leader`, which assigns the real offsets.
pub fn build_batch(records: &[Record], timestamp: i64) -> BytesMut {
    build_batch_for(records, timestamp, None)
}

/// [`build_batch`], as a transactional batch of `producer` when given.
pub fn build_batch_for(
    records: &[Record],
    timestamp: i64,
    producer: Option<BatchProducer>,
) -> BytesMut {
    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let mut body = Vec::new();
    let mut rec = Vec::new();
    for (i, r) in records.iter().enumerate() {
        rec.clear();
        rec.push(0u8); // attributes
        put_varint(&mut rec, 0); // timestamp delta
        put_varint(&mut rec, i as i64); // offset delta
        put_varint(&mut rec, r.key.len() as i64);
        rec.extend_from_slice(&r.key);
        match &r.value {
            Some(v) => {
                put_varint(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, 0); // headers
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let count = records.len() as i32;
    let mut b = BytesMut::with_capacity(61 + body.len());
    b.put_i64(0); // base offset
    b.put_i32((61 - 12 + body.len()) as i32); // length
    b.put_i32(-1); // partition leader epoch (the leader stamps it)
    b.put_i8(2); // magic
    b.put_u32(0); // crc, below
                  // Attributes: no compression, create time; transactional for a producer's batch.
    b.put_i16(if producer.is_some() { 0x10 } else { 0 });
    b.put_i32((count - 1).max(0)); // last offset delta
    b.put_i64(timestamp); // first timestamp
    b.put_i64(timestamp); // max timestamp
    match producer {
        Some(p) => {
            b.put_i64(p.producer_id);
            b.put_i16(p.producer_epoch);
            b.put_i32(0); // base sequence (not checked for the coordinator's appends)
        }
        None => {
            b.put_i64(-1); // producer id
            b.put_i16(-1); // producer epoch
            b.put_i32(-1); // base sequence
        }
    }
    b.put_i32(count);
    b.put_slice(&body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
