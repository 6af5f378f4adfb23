//! The embedded consumer protocol (protocol type `consumer`): the subscription a member
//! sends in JoinGroup and the assignment the leader sends in SyncGroup. The coordinator
//! only reads them (subscribed topics for offset expiration and OffsetDelete, assigned
//! partitions for `gregor groups describe`); like Kafka it decodes with version 0 of the
//! schema, which every later version extends. Hand-written and bounded: these bytes come
//! straight from clients.

use bytes::Bytes;

pub const PROTOCOL_TYPE: &str = "consumer";

/// A bounded big-endian reader: lengths are checked against the bytes present before
/// anything is allocated, so a hostile blob cannot exhaust memory.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    /// An array length no larger than the remaining bytes allow (`min_size` each).
    fn array_len(&mut self, min_size: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.checked_mul(min_size)? <= self.buf.len() - self.pos).then_some(n)
    }

    /// Reads the version header; the body is read with version 0 of the schema.
    fn versioned(buf: &'a [u8]) -> Option<Reader<'a>> {
        let mut r = Reader { buf, pos: 0 };
        (r.i16()? >= 0).then_some(r)
    }
}

/// The topics of a consumer subscription, or `None` if the bytes do not follow the schema.
pub fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut r = Reader::versioned(metadata)?;
    let n = r.array_len(2)?;
    (0..n).map(|_| r.string()).collect()
}

/// The partitions of a consumer assignment as (topic, partitions); an empty blob is the
/// empty assignment. `None` if the bytes do not follow the schema.
pub fn assigned_partitions(assignment: &Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader::versioned(assignment)?;
    let n = r.array_len(6)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = r.string()?;
        let count = r.array_len(4)?;
        let partitions = (0..count).map(|_| r.i32()).collect::<Option<Vec<i32>>>()?;
        out.push((topic, partitions));
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::{
        ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    pub fn subscription(version: i16, topics: &[&str]) -> Bytes {
        let sub = ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.to_string()))
                .collect(),
        );
        let mut out = BytesMut::new();
        out.put_i16(version);
        sub.encode(&mut out, version).unwrap();
        out.freeze()
    }

    pub fn assignment(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            parts
                .iter()
                .map(|(t, p)| {
                    TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(p.to_vec())
                })
                .collect(),
        );
        let mut out = BytesMut::new();
        out.put_i16(version);
        a.encode(&mut out, version).unwrap();
        out.freeze()
    }

    #[test]
    fn decodes_every_version_through_the_v0_prefix() {
        for v in 0..=3 {
            assert_eq!(
                subscribed_topics(&subscription(v, &["a", "b"])),
                Some(vec!["a".to_string(), "b".to_string()])
            );
            assert_eq!(
                assigned_partitions(&assignment(v, &[("a", &[0, 2])])),
                Some(vec![("a".to_string(), vec![0, 2])])
            );
        }
        assert_eq!(assigned_partitions(&Bytes::new()), Some(vec![]));
        assert_eq!(subscribed_topics(&Bytes::from_static(b"\x00")), None);
        assert_eq!(
            subscribed_topics(&Bytes::from_static(b"\x00\x00\x7f\xff\xff\xff")),
            None
        );
        assert_eq!(
            assigned_partitions(&Bytes::from_static(
                b"\x00\x00\x00\x00\x00\x01\x00\x01a\x7f\xff\xff\xff"
            )),
            None
        );
        assert_eq!(subscribed_topics(&Bytes::from_static(b"\xff\xff")), None);
    }
}
