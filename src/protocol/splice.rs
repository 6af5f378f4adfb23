//! Response encoding without copying large record sets.
//!
//! A Fetch response is mostly record bytes already held in `Bytes` read from segments.
//! `SplicingBuf` is a `ByteBufMut` for `kafka-protocol`'s encoders that appends every
//! field to a small contiguous head, except the registered large record sets: for those it
//! remembers where they go and keeps a reference. The frame is then written as a list of
//! chunks, so record bytes go from the read buffer to the socket with no extra copy.
//!
//! Gaps (`put_gap`/`seek`/`range`) are only used by record-batch and compression encoders,
//! never by message encoders, so positions in the head never need to account for spliced
//! chunks; `range` still refuses to reach across a splice.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Record sets at least this large are spliced; smaller ones are cheaper to copy.
pub const SPLICE_MIN: usize = 16 * 1024;

pub struct SplicingBuf {
    head: BytesMut,
    /// (position in `head` the chunk follows, the chunk)
    splices: Vec<(usize, Bytes)>,
    candidates: Vec<Bytes>,
}

impl SplicingBuf {
    pub fn new(candidates: Vec<Bytes>) -> Self {
        SplicingBuf {
            head: BytesMut::with_capacity(1024),
            splices: Vec::new(),
            candidates,
        }
    }

    fn take_candidate(&mut self, src: &[u8]) -> Option<Bytes> {
        if src.len() < SPLICE_MIN {
            return None;
        }
        let i = self
            .candidates
            .iter()
            .position(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())?;
        Some(self.candidates.swap_remove(i))
    }

    /// Total encoded length (head plus spliced chunks).
    pub fn len(&self) -> usize {
        self.head.len() + self.splices.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded bytes, in order, as chunks.
    pub fn into_chunks(self) -> Vec<Bytes> {
        let mut head = self.head.freeze();
        let mut out = Vec::with_capacity(self.splices.len() * 2 + 1);
        let mut consumed = 0;
        for (at, chunk) in self.splices {
            out.push(head.split_to(at - consumed));
            consumed = at;
            out.push(chunk);
        }
        out.push(head);
        out.retain(|b| !b.is_empty());
        out
    }

    /// Overwrites bytes already in the head (e.g. a size prefix).
    pub fn head_mut(&mut self) -> &mut BytesMut {
        &mut self.head
    }
}

// SAFETY: every method delegates to the `BytesMut` head, whose own `BufMut` implementation
// upholds the trait's contract; `put_slice` either delegates or appends nothing.
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded unchanged; the caller's guarantee is about the head's chunk.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.take_candidate(src) {
            Some(chunk) => self.splices.push((self.head.len(), chunk)),
            None => self.head.put_slice(src),
        }
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        self.head.resize(offset, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        // Message encoders never use gaps; if one ever did across a spliced chunk the
        // positions would be wrong, so refuse rather than corrupt a frame.
        let last_splice = self.splices.last().map_or(0, |(at, _)| *at);
        assert!(r.start >= last_splice, "gap across a spliced chunk");
        &mut self.head[r]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn spliced_encoding_equals_plain_encoding() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let small = Bytes::from(vec![9u8; 100]);
        let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![
                PartitionData::default()
                    .with_partition_index(0)
                    .with_records(Some(big.clone())),
                PartitionData::default()
                    .with_partition_index(1)
                    .with_records(Some(small.clone())),
                PartitionData::default()
                    .with_partition_index(2)
                    .with_records(Some(big.slice(10..60_000))),
            ])]);
        for version in [4, 11, 12, 16] {
            let mut plain = BytesMut::new();
            resp.encode(&mut plain, version).unwrap();
            let mut spliced =
                SplicingBuf::new(vec![big.clone(), small.clone(), big.slice(10..60_000)]);
            resp.encode(&mut spliced, version).unwrap();
            assert_eq!(spliced.len(), plain.len());
            let chunks = spliced.into_chunks();
            assert!(chunks.len() >= 3, "the large record sets were spliced");
            assert_eq!(chunks.concat(), plain.to_vec(), "v{version}");
        }
    }
}
