//! The embedded consumer protocol (protocol type `consumer`): the subscription a member
//! sends in JoinGroup and the assignment the leader sends in SyncGroup. The coordinator
//! only reads them (subscribed topics for offset expiration and OffsetDelete, assigned
//! partitions for `gregor groups describe`); like Kafka it decodes with version 0 of the
//! schema, which every later version extends.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

pub const PROTOCOL_TYPE: &str = "consumer";

fn strip_version(mut data: Bytes) -> Option<Bytes> {
    if data.len() < 2 {
        return None;
    }
    let version = data.get_i16();
    (version >= 0).then_some(data)
}

/// The topics of a consumer subscription, or `None` if the bytes do not follow the schema.
pub fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut body = strip_version(metadata.clone())?;
    let sub = ConsumerProtocolSubscription::decode(&mut body, 0).ok()?;
    Some(sub.topics.iter().map(|t| t.to_string()).collect())
}

/// The partitions of a consumer assignment as (topic, partitions); an empty blob is the
/// empty assignment. `None` if the bytes do not follow the schema.
pub fn assigned_partitions(assignment: &Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut body = strip_version(assignment.clone())?;
    let a = ConsumerProtocolAssignment::decode(&mut body, 0).ok()?;
    Some(
        a.assigned_partitions
            .iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions.clone()))
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
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
    }
}
