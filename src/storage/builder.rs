//! Builds v2 record batches (Kafka's `MemoryRecordsBuilder` for magic 2) where the broker
//! writes a batch of its own: message format v0/v1 records up-converted on produce, and
//! batches recompressed to a topic's `compression.type` (Kafka's `LogValidator`).

use super::batch::{patch, put_varint, put_varlong, BATCH_HEADER_SIZE, LOG_OVERHEAD};

/// One record to write. `headers` is the encoded header section (count varint, then the
/// headers) as read from another v2 record, or empty for none.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [u8],
}

/// The batch-level fields.
#[derive(Debug, Clone, Copy)]
pub struct BatchSpec {
    pub base_offset: i64,
    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub codec: u8,
    /// Compression level; the codec's Kafka default when `None`.
    pub level: Option<i32>,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    pub partition_leader_epoch: i32,
}

impl BatchSpec {
    /// A batch without producer (what v0/v1 messages become).
    pub fn plain(codec: u8, level: Option<i32>) -> BatchSpec {
        BatchSpec {
            base_offset: 0,
            codec,
            level,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            partition_leader_epoch: -1,
        }
    }
}

fn put_nullable(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

/// Encodes the records (offset deltas 0, 1, ...) uncompressed.
fn encode_records(records: &[NewRecord<'_>], first_timestamp: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        records
            .iter()
            .map(|r| {
                24 + r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len) + r.headers.len()
            })
            .sum(),
    );
    let mut rec = Vec::new();
    for (i, r) in records.iter().enumerate() {
        rec.clear();
        rec.push(0); // attributes
        put_varlong(&mut rec, r.timestamp.wrapping_sub(first_timestamp));
        put_varint(&mut rec, i as i32);
        put_nullable(&mut rec, r.key);
        put_nullable(&mut rec, r.value);
        if r.headers.is_empty() {
            put_varint(&mut rec, 0);
        } else {
            rec.extend_from_slice(r.headers);
        }
        put_varint(&mut body, rec.len() as i32);
        body.extend_from_slice(&rec);
    }
    body
}

/// Builds one batch holding `records` (at least one), compressed with `spec.codec`. The
/// timestamp type is CreateTime; the log stamps LogAppendTime itself.
pub fn build(spec: &BatchSpec, records: &[NewRecord<'_>]) -> Result<Vec<u8>, String> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let first_timestamp = records[0].timestamp;
    let max_timestamp = records.iter().map(|r| r.timestamp).fold(-1, i64::max);
    let body = encode_records(records, first_timestamp);
    let payload = super::codec::compress(spec.codec, &body, spec.level)?;
    let count = records.len() as i32;
    let mut b = Vec::with_capacity(BATCH_HEADER_SIZE + payload.len());
    b.extend_from_slice(&spec.base_offset.to_be_bytes());
    b.extend_from_slice(&((BATCH_HEADER_SIZE - LOG_OVERHEAD + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]); // crc, below
    let mut attributes = spec.codec as i16;
    if spec.transactional {
        attributes |= 0x10;
    }
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&first_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&payload);
    patch::rewrite_crc(&mut b);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::super::batch::{decode_records, Batch, HeaderFields};
    use super::*;

    #[test]
    fn built_batches_read_back_with_every_codec() {
        let headers = {
            let mut h = Vec::new();
            put_varint(&mut h, 1);
            put_nullable(&mut h, Some(b"h"));
            put_nullable(&mut h, Some(b"v"));
            h
        };
        let recs = [
            NewRecord {
                timestamp: 100,
                key: Some(b"a"),
                value: Some(b"1"),
                headers: &headers,
            },
            NewRecord {
                timestamp: 90,
                key: None,
                value: None,
                headers: &[],
            },
            NewRecord {
                timestamp: 120,
                key: Some(b""),
                value: Some(b"3"),
                headers: &[],
            },
        ];
        for codec in 0..=4 {
            let mut spec = BatchSpec::plain(codec, None);
            spec.base_offset = 40;
            let bytes = build(&spec, &recs).unwrap();
            let b = Batch::parse(&bytes).unwrap();
            b.verify_crc().unwrap();
            assert_eq!(
                (b.size(), b.compression(), b.record_count()),
                (bytes.len(), codec, 3)
            );
            assert_eq!(
                (b.first_timestamp(), b.max_timestamp(), b.last_offset()),
                (100, 120, 42)
            );
            let back = decode_records(&b, 1 << 20).unwrap();
            assert_eq!(
                back.iter()
                    .map(|r| (r.offset, r.timestamp, r.key.as_deref(), r.value.as_deref()))
                    .collect::<Vec<_>>(),
                vec![
                    (40, 100, Some(&b"a"[..]), Some(&b"1"[..])),
                    (41, 90, None, None),
                    (42, 120, Some(&b""[..]), Some(&b"3"[..]))
                ]
            );
            assert_eq!(&back[0].headers[..], &headers[..]);
            assert_eq!(&back[1].headers[..], &[0u8][..]);
        }
    }

    #[test]
    fn records_without_timestamps_keep_minus_one() {
        let recs = [NewRecord {
            timestamp: -1,
            key: None,
            value: Some(b"v"),
            headers: &[],
        }; 2];
        let bytes = build(&BatchSpec::plain(0, None), &recs).unwrap();
        let b = Batch::parse(&bytes).unwrap();
        assert_eq!((b.first_timestamp(), b.max_timestamp()), (-1, -1));
    }
}
