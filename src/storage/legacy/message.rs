//! Kafka's message formats v0 and v1 (magic 0 and 1): a message set is a sequence of
//! entries `offset:i64 size:i32 crc:u32 magic:i8 attributes:i8 [timestamp:i64 (v1)]
//! key:bytes value:bytes`, the CRC (CRC-32, IEEE) covering magic..end. A compressed
//! message is a wrapper whose value is a compressed message set of inner messages (KIP-31:
//! magic 1 inner offsets are relative, the wrapper carries the absolute last offset).
//!
//! Parsing follows Kafka's `ByteBufferLogInputStream`: an entry cut off at the end of the
//! buffer ends the set (the bytes are ignored), a size below the v0 record overhead or an
//! unknown magic is a corrupt record.

/// `offset` + `size`.
pub const LOG_OVERHEAD: usize = 12;
/// crc 4 + magic 1 + attributes 1 + key length 4 + value length 4.
pub const RECORD_OVERHEAD_V0: usize = 14;
/// v0 plus the timestamp.
pub const RECORD_OVERHEAD_V1: usize = 22;
pub const CODEC_MASK: u8 = 0x07;
/// Magic 1: the timestamp is the broker's append time.
pub const TIMESTAMP_TYPE_MASK: u8 = 0x08;
pub const NO_TIMESTAMP: i64 = -1;
/// Position of the magic byte in an entry (the same in v2 batches).
pub const MAGIC_OFFSET: usize = 16;

/// Why a message set cannot be read: CORRUPT_MESSAGE or INVALID_RECORD in Kafka's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

/// One message of a v0/v1 set, borrowed from its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub offset: i64,
    pub crc: u32,
    pub magic: u8,
    pub attributes: u8,
    /// The message's own timestamp (magic 1), or -1.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The bytes the CRC covers (magic..end of the message).
    covered: &'a [u8],
    /// Size of the whole entry (`LOG_OVERHEAD + size`).
    pub entry_size: usize,
}

impl Message<'_> {
    pub fn codec(&self) -> u8 {
        self.attributes & CODEC_MASK
    }
    pub fn is_compressed(&self) -> bool {
        self.codec() != 0
    }
    /// Magic 1 with the LogAppendTime attribute.
    pub fn is_log_append_time(&self) -> bool {
        self.magic >= 1 && self.attributes & TIMESTAMP_TYPE_MASK != 0
    }
    pub fn computed_crc(&self) -> u32 {
        crc32fast::hash(self.covered)
    }
    pub fn crc_ok(&self) -> bool {
        self.crc == self.computed_crc()
    }
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Reads a length-prefixed (i32, -1 = null) field at `*pos` of `rec`.
fn sized<'a>(rec: &'a [u8], pos: &mut usize, what: &str) -> Result<Option<&'a [u8]>, MessageError> {
    if rec.len() < *pos + 4 {
        return Err(MessageError::Corrupt(format!(
            "message too short for its {what} length"
        )));
    }
    let len = be_i32(rec, *pos);
    *pos += 4;
    if len == -1 {
        return Ok(None);
    }
    if len < 0 || len as usize > rec.len() - *pos {
        return Err(MessageError::Corrupt(format!(
            "invalid {what} length {len} in a message of {} bytes",
            rec.len()
        )));
    }
    let out = &rec[*pos..*pos + len as usize];
    *pos += len as usize;
    Ok(Some(out))
}

/// The entry at the start of `buf`: `Ok(None)` when `buf` holds no complete entry (the
/// end of a set), `Ok(Some((magic, size)))` for an entry of `size` bytes whose magic is
/// `magic` (2 for a v2 batch, which the caller handles).
pub fn entry_size(buf: &[u8]) -> Result<Option<(u8, usize)>, MessageError> {
    if buf.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let size = be_i32(buf, 8);
    if size < RECORD_OVERHEAD_V0 as i32 {
        return Err(MessageError::Corrupt(format!(
            "Record size {size} is less than the minimum record overhead ({RECORD_OVERHEAD_V0})"
        )));
    }
    if buf.len() <= MAGIC_OFFSET {
        return Ok(None);
    }
    let magic = buf[MAGIC_OFFSET];
    if magic > 2 {
        return Err(MessageError::Corrupt(format!(
            "Invalid magic found in record: {}",
            magic as i8
        )));
    }
    let total = LOG_OVERHEAD + size as usize;
    Ok((buf.len() >= total).then_some((magic, total)))
}

/// Parses one complete magic 0/1 entry of exactly `bytes.len()` bytes.
pub fn parse(bytes: &[u8]) -> Result<Message<'_>, MessageError> {
    assert!(
        bytes.len() >= LOG_OVERHEAD + RECORD_OVERHEAD_V0,
        "entry_size checked the size"
    );
    let offset = be_i64(bytes, 0);
    let rec = &bytes[LOG_OVERHEAD..];
    let crc = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
    let magic = rec[4];
    let attributes = rec[5];
    let mut pos = 6;
    let timestamp = match magic {
        0 => NO_TIMESTAMP,
        1 => {
            if rec.len() < RECORD_OVERHEAD_V1 {
                return Err(MessageError::Corrupt(format!(
                    "Record size {} is less than the magic 1 record overhead ({RECORD_OVERHEAD_V1})",
                    rec.len()
                )));
            }
            pos += 8;
            be_i64(rec, 6)
        }
        m => {
            return Err(MessageError::Corrupt(format!(
                "Invalid magic found in record: {m}"
            )))
        }
    };
    let key = sized(rec, &mut pos, "key")?;
    let value = sized(rec, &mut pos, "value")?;
    Ok(Message {
        offset,
        crc,
        magic,
        attributes,
        timestamp,
        key,
        value,
        covered: &rec[4..],
        entry_size: bytes.len(),
    })
}

/// The entries of a v0/v1 message set. Yields each complete message, stops silently at a
/// cut-off entry, and yields one error (then ends) for a corrupt one or a v2 batch.
pub struct MessageIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> MessageIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        MessageIter {
            buf,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for MessageIter<'a> {
    type Item = Result<Message<'a>, MessageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let item = match entry_size(rest) {
            Ok(None) => None,
            Ok(Some((2, _))) => Some(Err(MessageError::Invalid(
                "a magic 2 record batch inside a magic 0/1 message set".into(),
            ))),
            Ok(Some((_, size))) => {
                self.pos += size;
                Some(parse(&rest[..size]))
            }
            Err(e) => Some(Err(e)),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Appends one message entry: `attributes` as given (codec and timestamp-type bits),
/// the timestamp only for magic 1.
pub fn write(
    out: &mut Vec<u8>,
    offset: i64,
    magic: u8,
    attributes: u8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    assert!(magic <= 1, "message formats v0 and v1 only");
    let overhead = if magic == 0 {
        RECORD_OVERHEAD_V0
    } else {
        RECORD_OVERHEAD_V1
    };
    let size = overhead + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
    out.reserve(LOG_OVERHEAD + size);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(size as i32).to_be_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(magic);
    out.push(attributes);
    if magic == 1 {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let crc = crc32fast::hash(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_both_magics() {
        let mut set = Vec::new();
        write(&mut set, 7, 0, 0, 123, Some(b"k"), Some(b"v0"));
        write(
            &mut set,
            8,
            1,
            TIMESTAMP_TYPE_MASK,
            1_700_000_000_000,
            None,
            Some(b""),
        );
        let msgs: Vec<_> = MessageIter::new(&set).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (
                msgs[0].offset,
                msgs[0].magic,
                msgs[0].timestamp,
                msgs[0].key,
                msgs[0].value
            ),
            (7, 0, NO_TIMESTAMP, Some(&b"k"[..]), Some(&b"v0"[..]))
        );
        assert_eq!(
            (
                msgs[1].offset,
                msgs[1].timestamp,
                msgs[1].key,
                msgs[1].value
            ),
            (8, 1_700_000_000_000, None, Some(&b""[..]))
        );
        assert!(msgs[1].is_log_append_time() && msgs.iter().all(Message::crc_ok));
        assert_eq!(msgs[0].entry_size, LOG_OVERHEAD + RECORD_OVERHEAD_V0 + 3);
    }

    #[test]
    fn a_cut_off_tail_ends_the_set_and_garbage_is_corrupt() {
        let mut set = Vec::new();
        write(&mut set, 0, 1, 0, 5, Some(b"key"), Some(b"value"));
        let whole = set.len();
        write(&mut set, 1, 1, 0, 6, Some(b"key"), Some(b"value"));
        set.truncate(whole + 20);
        assert_eq!(MessageIter::new(&set).count(), 1);
        let mut bad = set[..whole].to_vec();
        bad[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert!(matches!(
            MessageIter::new(&bad).next(),
            Some(Err(MessageError::Corrupt(_)))
        ));
        let mut bad = set[..whole].to_vec();
        bad[MAGIC_OFFSET] = 7;
        assert!(matches!(
            MessageIter::new(&bad).next(),
            Some(Err(MessageError::Corrupt(_)))
        ));
        let mut bad = set[..whole].to_vec();
        bad[LOG_OVERHEAD + RECORD_OVERHEAD_V1 - 8..LOG_OVERHEAD + RECORD_OVERHEAD_V1 - 4]
            .copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(
            MessageIter::new(&bad).next(),
            Some(Err(MessageError::Corrupt(_)))
        ));
        let mut flipped = set[..whole].to_vec();
        flipped[whole - 1] ^= 1;
        assert!(!MessageIter::new(&flipped).next().unwrap().unwrap().crc_ok());
    }
}
