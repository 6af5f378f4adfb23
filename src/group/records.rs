//! The records the group coordinator keeps in `__consumer_offsets`, in Apache Kafka's own
//! key/value schemas, so a log written by gregor reads like one written by Kafka:
//!
//! | key version | key                 | value                                   |
//! |-------------|---------------------|-----------------------------------------|
//! | 0, 1        | `OffsetCommitKey`   | `OffsetCommitValue` v0-v4 (null = tombstone) |
//! | 2           | `GroupMetadataKey`  | `GroupMetadataValue` v0-v4 (null = tombstone) |
//! | 3+          | consumer-protocol (KIP-848) records: never written, skipped on load |
//!
//! Each key and value starts with its version as a big-endian i16. gregor writes
//! `OffsetCommitKey` v1, `OffsetCommitValue` v3 (v1 when the commit carries an explicit
//! retention, exactly as Kafka does), `GroupMetadataKey` v2 and `GroupMetadataValue` v3.
//! Versions 4 (flexible: compact strings, tagged fields) are read.
//!
//! Also builds the uncompressed v2 record batch that carries a set of records.

use bytes::{BufMut, Bytes, BytesMut};

/// Key of a committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed offset (`OffsetCommitValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 = unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only from commits that asked for an explicit retention (OffsetCommit v2-v4).
    pub expire_timestamp: Option<i64>,
}

/// One member in a `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's membership (`GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 = unknown (records older than v2).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadataRecord>,
}

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset(OffsetCommitKey),
    Group(String),
    /// A record type gregor does not use (KIP-848 consumer groups, share groups, ...).
    Other(i16),
}

pub use crate::coordinator::record::{build_batch, Record};

pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
pub const OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

// ---------------------------------------------------------------- writers

pub fn offset_commit_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + group.len() + topic.len());
    out.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut out, group);
    put_string(&mut out, topic);
    out.put_i32(partition);
    out.freeze()
}

pub fn group_metadata_key(group: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + group.len());
    out.put_i16(GROUP_METADATA_KEY_VERSION);
    put_string(&mut out, group);
    out.freeze()
}

pub fn offset_commit_value(v: &OffsetCommitValue) -> Bytes {
    let mut out = BytesMut::with_capacity(32 + v.metadata.len());
    match v.expire_timestamp {
        Some(expire) => {
            out.put_i16(OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY);
            out.put_i64(v.offset);
            put_string(&mut out, &v.metadata);
            out.put_i64(v.commit_timestamp);
            out.put_i64(expire);
        }
        None => {
            out.put_i16(OFFSET_COMMIT_VALUE_VERSION);
            out.put_i64(v.offset);
            out.put_i32(v.leader_epoch);
            put_string(&mut out, &v.metadata);
            out.put_i64(v.commit_timestamp);
        }
    }
    out.freeze()
}

pub fn group_metadata_value(v: &GroupMetadataValue) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(&mut out, &v.protocol_type);
    out.put_i32(v.generation);
    put_nullable_string(&mut out, v.protocol.as_deref());
    put_nullable_string(&mut out, v.leader.as_deref());
    out.put_i64(v.current_state_timestamp);
    out.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_string(&mut out, &m.member_id);
        put_nullable_string(&mut out, m.group_instance_id.as_deref());
        put_string(&mut out, &m.client_id);
        put_string(&mut out, &m.client_host);
        out.put_i32(m.rebalance_timeout);
        out.put_i32(m.session_timeout);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out.freeze()
}

pub use crate::coordinator::record::DecodeError;
use crate::coordinator::record::{put_bytes, put_nullable_string, put_string, Reader};

/// Decodes a record key.
pub fn decode_key(key: &[u8]) -> Result<RecordKey, DecodeError> {
    let mut r = Reader::new(key, "record key");
    let version = r.i16()?;
    match version {
        0 | 1 => {
            r.what = "OffsetCommitKey";
            let group = r.string()?;
            let topic = r.string()?;
            let partition = r.i32()?;
            Ok(RecordKey::Offset(OffsetCommitKey {
                group,
                topic,
                partition,
            }))
        }
        2 => {
            r.what = "GroupMetadataKey";
            Ok(RecordKey::Group(r.string()?))
        }
        v if v >= 3 => Ok(RecordKey::Other(v)),
        v => Err(r.err(format!("unknown key version {v}"))),
    }
}

pub fn decode_offset_commit_value(value: &[u8]) -> Result<OffsetCommitValue, DecodeError> {
    let mut r = Reader::new(value, "OffsetCommitValue");
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(r.err(format!("unknown version {version}")));
    }
    r.flexible = version >= 4;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 {
        Some(r.i64()?).filter(|t| *t >= 0)
    } else {
        None
    };
    r.tagged_fields()?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

pub fn decode_group_metadata_value(value: &[u8]) -> Result<GroupMetadataValue, DecodeError> {
    let mut r = Reader::new(value, "GroupMetadataValue");
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(r.err(format!("unknown version {version}")));
    }
    r.flexible = version >= 4;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let n = r.array_len()?;
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberMetadataRecord {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // Records older than v1 have no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout: if rebalance_timeout < 0 {
                session_timeout
            } else {
                rebalance_timeout
            },
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{decode_records, Batch, HeaderFields};

    #[test]
    fn offset_commit_round_trip() {
        let key = offset_commit_key("g", "t", 3);
        assert_eq!(&key[..2], &[0, 1]);
        assert_eq!(
            decode_key(&key).unwrap(),
            RecordKey::Offset(OffsetCommitKey {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            })
        );
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let bytes = offset_commit_value(&v);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_offset_commit_value(&bytes).unwrap(), v);
        let with_expiry = OffsetCommitValue {
            expire_timestamp: Some(5000),
            leader_epoch: -1,
            ..v
        };
        let bytes = offset_commit_value(&with_expiry);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(decode_offset_commit_value(&bytes).unwrap(), with_expiry);
    }

    #[test]
    fn group_metadata_round_trip() {
        let v = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 123,
            members: vec![MemberMetadataRecord {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300000,
                session_timeout: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b""),
            }],
        };
        let bytes = group_metadata_value(&v);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_group_metadata_value(&bytes).unwrap(), v);
        assert_eq!(
            decode_key(&group_metadata_key("grp")).unwrap(),
            RecordKey::Group("grp".into())
        );
        let empty = GroupMetadataValue {
            protocol: None,
            leader: None,
            members: vec![],
            ..v
        };
        assert_eq!(
            decode_group_metadata_value(&group_metadata_value(&empty)).unwrap(),
            empty
        );
    }

    #[test]
    fn reads_kafkas_older_and_flexible_versions() {
        // OffsetCommitValue v0: offset, metadata, commit timestamp.
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        v0.put_i64(9);
        put_string(&mut v0, "x");
        v0.put_i64(77);
        let d = decode_offset_commit_value(&v0).unwrap();
        assert_eq!((d.offset, d.leader_epoch, d.commit_timestamp), (9, -1, 77));
        // OffsetCommitValue v4 (flexible): compact string, empty tagged fields.
        let mut v4 = BytesMut::new();
        v4.put_i16(4);
        v4.put_i64(10);
        v4.put_i32(2);
        v4.put_u8(3); // "ab": length + 1
        v4.put_slice(b"ab");
        v4.put_i64(88);
        v4.put_u8(1); // one tagged field
        v4.put_u8(0);
        v4.put_u8(1);
        v4.put_u8(0xff);
        let d = decode_offset_commit_value(&v4).unwrap();
        assert_eq!(
            (
                d.offset,
                d.leader_epoch,
                d.metadata.as_str(),
                d.commit_timestamp
            ),
            (10, 2, "ab", 88)
        );
        // GroupMetadataValue v0: no timestamps, no instance ids, no rebalance timeout.
        let mut g0 = BytesMut::new();
        g0.put_i16(0);
        put_string(&mut g0, "consumer");
        g0.put_i32(1);
        put_string(&mut g0, "range");
        put_string(&mut g0, "m");
        g0.put_i32(1);
        put_string(&mut g0, "m");
        put_string(&mut g0, "cid");
        put_string(&mut g0, "/h");
        g0.put_i32(10000);
        put_bytes(&mut g0, b"s");
        put_bytes(&mut g0, b"a");
        let d = decode_group_metadata_value(&g0).unwrap();
        assert_eq!(d.current_state_timestamp, -1);
        assert_eq!(d.members[0].rebalance_timeout, 10000);
        assert_eq!(d.members[0].group_instance_id, None);
        assert_eq!(decode_key(&[0, 5, 1]).unwrap(), RecordKey::Other(5));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &[][..],
            &[0, 1, 0],
            &[0, 2, 0x7f, 0xff],
            &[0xff, 0xff],
            &[0, 3, 0xff, 0xff, 0xff, 0xff],
        ] {
            let _ = decode_key(junk);
            let _ = decode_offset_commit_value(junk);
            let _ = decode_group_metadata_value(junk);
        }
        assert!(decode_offset_commit_value(&[0, 9]).is_err());
        let mut huge = BytesMut::new();
        huge.put_i16(3);
        put_string(&mut huge, "c");
        huge.put_i32(1);
        huge.put_i16(-1);
        huge.put_i16(-1);
        huge.put_i64(0);
        huge.put_i32(i32::MAX);
        assert!(decode_group_metadata_value(&huge).is_err());
    }

    #[test]
    fn batches_decode_with_the_storage_reader() {
        let records = vec![
            Record {
                key: offset_commit_key("g", "t", 0),
                value: Some(Bytes::from_static(b"v")),
            },
            Record {
                key: group_metadata_key("g"),
                value: None,
            },
        ];
        let b = build_batch(&records, 1234);
        let batch = Batch::parse(&b).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.record_count(), 2);
        let decoded = decode_records(&batch, 1 << 20).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1].offset, 1);
        assert_eq!(decoded[0].key.as_deref(), Some(&records[0].key[..]));
        assert_eq!(decoded[1].value, None);
        assert_eq!(decoded[0].timestamp, 1234);
    }
}
