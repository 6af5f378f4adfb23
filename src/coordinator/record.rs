//! Records a coordinator appends to its internal topic, and their batches.

use bytes::{BufMut, Bytes, BytesMut};

// ---------------------------------------------------------------- schema writers

pub(crate) fn put_string(out: &mut BytesMut, s: &str) {
    // Kafka strings are at most i16::MAX bytes; callers bound their inputs (group ids,
    // topic names and metadata are all limited well below that by the request decoder).
    let len = s.len().min(i16::MAX as usize);
    out.put_i16(len as i16);
    out.put_slice(&s.as_bytes()[..len]);
}

pub(crate) fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => out.put_i16(-1),
        Some(s) => put_string(out, s),
    }
}

pub(crate) fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(b.len() as i32);
    out.put_slice(b);
}

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

// ---------------------------------------------------------------- readers

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: String,
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    pub(crate) what: &'static str,
    pub(crate) flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            what,
            flexible: false,
        }
    }

    pub(crate) fn err(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            what: self.what,
            reason: reason.into(),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "needs {n} more bytes at {}, has {}",
                self.pos,
                self.buf.len() - self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(self.take(1)?[0] as i8)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub(crate) fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            value |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err("unsigned varint longer than 5 bytes"))
    }

    /// A length prefix: i16 (strings) / i32 (bytes, arrays) or, in flexible versions, an
    /// unsigned varint holding length + 1. `None` = null.
    pub(crate) fn length(&mut self, wide: bool) -> Result<Option<usize>, DecodeError> {
        let len: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else if wide {
            self.i32()? as i64
        } else {
            self.i16()? as i64
        };
        if len < -1 {
            return Err(self.err(format!("negative length {len}")));
        }
        Ok((len >= 0).then_some(len as usize))
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.length(false)? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n)?;
                String::from_utf8(b.to_vec())
                    .map(Some)
                    .map_err(|_| self.err("string is not UTF-8"))
            }
        }
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        self.nullable_string()?
            .ok_or_else(|| self.err("null in a non-nullable string"))
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        match self.length(true)? {
            None => Err(self.err("null in a non-nullable bytes field")),
            Some(n) => Ok(Bytes::copy_from_slice(self.take(n)?)),
        }
    }

    /// An array length; `None` for a null array.
    pub(crate) fn nullable_array_len(&mut self) -> Result<Option<usize>, DecodeError> {
        let Some(n) = self.length(true)? else {
            return Ok(None);
        };
        // Every element takes at least one byte: a bound that keeps garbage from allocating.
        if n > self.buf.len() - self.pos {
            return Err(self.err(format!("array length {n} exceeds the record")));
        }
        Ok(Some(n))
    }

    pub(crate) fn array_len(&mut self) -> Result<usize, DecodeError> {
        let n = self.length(true)?.ok_or_else(|| self.err("null array"))?;
        // Every element takes at least one byte: a bound that keeps garbage from allocating.
        if n > self.buf.len() - self.pos {
            return Err(self.err(format!("array length {n} exceeds the record")));
        }
        Ok(n)
    }

    /// Skips the tagged-field section of a flexible struct.
    pub(crate) fn tagged_fields(&mut self) -> Result<(), DecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}
