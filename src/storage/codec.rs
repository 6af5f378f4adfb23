//! Bounded decompression of record-batch payloads.
//!
//! A batch's compressed size is bounded by `max.message.bytes`, but what it expands to is
//! chosen by whoever wrote it: 128 KB of zstd can claim gigabytes of zeros. Every codec here
//! decodes as a stream into a buffer that may never grow past a caller-given limit (the
//! snappy block claims are checked against it before anything is allocated), so a bomb
//! costs at most `limit` bytes of memory and the CPU to produce them, and fails with
//! [`DecompressError::TooLarge`].
//!
//! Kafka's codecs: gzip (RFC 1952, possibly several members), xerial-framed snappy (with
//! a fallback to raw snappy, as snappy-java's `SnappyInputStream`), LZ4 frames, zstd frames.

use std::io::Read;

/// How many times `max.message.bytes` a batch may expand to when the broker has to look
/// inside it (compacted topics, unset max timestamps, ListOffsets by time, the cleaner,
/// group loading). Highly compressible but real data (JSON, logs) stays far below 32x;
/// bigger expansions are refused as corrupt.
pub const MAX_EXPANSION: usize = 32;

/// The decompression limit for a log whose `max.message.bytes` is `max_message_bytes`,
/// never below 8 MiB (small `max.message.bytes` settings still read ordinary batches)
/// nor above 512 MiB (one decode never takes a large share of the broker's memory).
pub fn limit_for(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(MAX_EXPANSION)
        .clamp(8 << 20, 512 << 20)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("decompressed records exceed {limit} bytes (a decompression bomb or a corrupt batch)")]
    TooLarge { limit: usize },
    #[error("corrupt compressed records: {0}")]
    Corrupt(String),
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
}

/// Decompresses `payload` compressed with Kafka codec `codec` (the batch attributes' low
/// three bits: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) into at most `limit` bytes.
pub fn decompress(codec: u8, payload: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    match codec {
        0 => {
            if payload.len() > limit {
                return Err(DecompressError::TooLarge { limit });
            }
            Ok(payload.to_vec())
        }
        1 => read_bounded(flate2::read::MultiGzDecoder::new(payload), limit),
        2 => snappy(payload, limit),
        3 => {
            let decoder = lz4::Decoder::new(payload).map_err(corrupt)?;
            read_bounded(decoder, limit)
        }
        4 => {
            let decoder = zstd::stream::read::Decoder::with_buffer(payload).map_err(corrupt)?;
            read_bounded(decoder, limit)
        }
        c => Err(DecompressError::UnknownCodec(c)),
    }
}

/// Kafka's default compression levels (`CompressionType.*.defaultLevel()`, KIP-390):
/// gzip `Deflater.DEFAULT_COMPRESSION` (zlib's 6), lz4 9, zstd 3.
pub fn default_level(codec: u8) -> i32 {
    match codec {
        1 => 6,
        3 => 9,
        4 => 3,
        _ => 0,
    }
}

/// Compresses `data` as Kafka's producers and broker do for codec `codec` (1 gzip, 2
/// snappy in snappy-java's xerial framing, 3 an LZ4 frame with 64 KB independent blocks
/// and no checksums as Kafka's `Lz4BlockOutputStream`, 4 zstd) at `level` (the codec's
/// default when `None`). Codec 0 copies.
pub fn compress(codec: u8, data: &[u8], level: Option<i32>) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let level = level.unwrap_or_else(|| default_level(codec));
    let io = |e: std::io::Error| format!("compression failed: {e}");
    match codec {
        0 => Ok(data.to_vec()),
        1 => {
            let level = if (1..=9).contains(&level) {
                level as u32
            } else {
                6
            };
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(data).map_err(io)?;
            e.finish().map_err(io)
        }
        2 => {
            let mut out = Vec::with_capacity(data.len() / 2 + XERIAL_HEADER_LEN);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(32 * 1024) {
                let block = encoder.compress_vec(chunk).map_err(|e| e.to_string())?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        3 => {
            let mut e = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .level(level.clamp(1, 17) as u32)
                .build(Vec::with_capacity(data.len() / 2 + 16))
                .map_err(io)?;
            e.write_all(data).map_err(io)?;
            let (out, r) = e.finish();
            r.map_err(io)?;
            Ok(out)
        }
        4 => zstd::stream::encode_all(data, level).map_err(io),
        c => Err(format!("unknown compression codec {c}")),
    }
}

/// Message format v0 (magic 0) LZ4 frames carry Kafka's historical frame-descriptor
/// checksum, computed over the magic number too (KAFKA-3160); magic 1 and v2 use the
/// LZ4 standard's. These convert a frame's header checksum between the two.
pub mod lz4_legacy {
    const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

    /// The end of the frame descriptor (the header checksum's position), if `frame`
    /// starts with an LZ4 frame header.
    fn descriptor_end(frame: &[u8]) -> Option<usize> {
        if frame.len() < 7 || frame[..4] != MAGIC {
            return None;
        }
        let flg = frame[4];
        let mut end = 6;
        if flg & 0x08 != 0 {
            end += 8; // content size
        }
        if flg & 0x01 != 0 {
            end += 4; // dictionary id
        }
        (frame.len() > end).then_some(end)
    }

    /// Rewrites the header checksum: Kafka's broken one (`broken`) or the standard one.
    pub fn set_header_checksum(frame: &mut [u8], broken: bool) {
        if let Some(end) = descriptor_end(frame) {
            let from = if broken { 0 } else { 4 };
            frame[end] = (super::xxh32(&frame[from..end], 0) >> 8) as u8;
        }
    }
}

/// xxHash32 (the checksum of LZ4 frame headers).
pub fn xxh32(data: &[u8], seed: u32) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let round = |acc: u32, lane: u32| {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let mut rest = data;
    let mut h = if data.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 16 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, word(&rest[i * 4..]));
            }
            rest = &rest[16..];
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u32);
    while rest.len() >= 4 {
        h = h
            .wrapping_add(word(rest).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        rest = &rest[4..];
    }
    for &b in rest {
        h = h
            .wrapping_add((b as u32).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

/// [`decompress`] for the value of a message format v0/v1 wrapper: magic 0 LZ4 frames
/// get their (Kafka-broken) header checksum repaired first.
pub fn decompress_legacy(
    codec: u8,
    magic: u8,
    payload: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    if codec == 3 && magic == 0 {
        let mut frame = payload.to_vec();
        lz4_legacy::set_header_checksum(&mut frame, false);
        return decompress(codec, &frame, limit);
    }
    decompress(codec, payload, limit)
}

fn corrupt(e: impl std::fmt::Display) -> DecompressError {
    DecompressError::Corrupt(e.to_string())
}

/// Reads a decoder to its end, failing as soon as it yields more than `limit` bytes. The
/// buffer grows with what was actually produced, never with what a header claims.
fn read_bounded(decoder: impl Read, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let read = decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if read > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

/// snappy-java's stream header: magic, then version 1 and minimum compatible version 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

fn snappy(payload: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    if payload.len() < XERIAL_HEADER_LEN || &payload[..XERIAL_MAGIC.len()] != XERIAL_MAGIC {
        // No xerial header: one raw snappy block, as SnappyInputStream falls back to.
        let mut out = Vec::new();
        snappy_block(payload, limit, &mut out)?;
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut rest = &payload[XERIAL_HEADER_LEN..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(corrupt("truncated snappy block length"));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if len > rest.len() {
            return Err(corrupt(format!(
                "snappy block of {len} bytes but {} remain",
                rest.len()
            )));
        }
        snappy_block(&rest[..len], limit, &mut out)?;
        rest = &rest[len..];
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking the length the block claims against
/// what `limit` still allows before allocating it.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let claimed = snap::raw::decompress_len(block).map_err(corrupt)?;
    if claimed > limit.saturating_sub(out.len()) {
        return Err(DecompressError::TooLarge { limit });
    }
    let start = out.len();
    out.resize(start + claimed, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(corrupt)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        e.write_all(data).unwrap();
        let (out, res) = e.finish();
        res.unwrap();
        out
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 3).unwrap()
    }

    fn xerial(data: &[u8]) -> Vec<u8> {
        let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for chunk in data.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn every_codec_round_trips_within_the_limit() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let raw_snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        for (codec, compressed) in [
            (0, data.clone()),
            (1, gzip(&data)),
            (2, xerial(&data)),
            (2, raw_snappy),
            (3, lz4(&data)),
            (4, zstd(&data)),
        ] {
            assert_eq!(
                decompress(codec, &compressed, data.len()).unwrap(),
                data,
                "codec {codec}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 64 << 20];
        let limit = 1 << 20;
        for (codec, bomb) in [
            (0, vec![0u8; limit + 1]),
            (1, gzip(&zeros)),
            (2, xerial(&zeros)),
            (3, lz4(&zeros)),
            (4, zstd(&zeros)),
        ] {
            assert!(bomb.len() < zeros.len() / 20, "codec {codec} compresses");
            assert_eq!(
                decompress(codec, &bomb, limit),
                Err(DecompressError::TooLarge { limit }),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn a_snappy_block_claiming_gigabytes_allocates_nothing() {
        // A raw snappy block starts with its uncompressed length as a varint: claim 4 GiB-1
        // and follow it with garbage. The claim is refused before any allocation.
        let mut block = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
        block.extend_from_slice(&[0u8; 16]);
        assert_eq!(
            decompress(2, &block, 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        assert_eq!(
            decompress(2, &framed, 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        // lz4's frame decoder reports a truncated stream as its end: the caller's record
        // count check then refuses the batch.
        for codec in 1..=4 {
            for input in [
                &b"\x00\x01\x02"[..],
                b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff",
            ] {
                match decompress(codec, input, 1 << 20) {
                    Err(_) => {}
                    Ok(out) => assert!(
                        out.is_empty(),
                        "codec {codec} made {} bytes of garbage",
                        out.len()
                    ),
                }
            }
        }
        assert_eq!(
            decompress(7, b"x", 10),
            Err(DecompressError::UnknownCodec(7))
        );
    }

    #[test]
    fn xxh32_matches_the_reference_vectors() {
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xE229_3B2F
        );
    }

    #[test]
    fn compress_round_trips_every_codec_and_level() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for codec in 0..=4u8 {
            for level in [None, Some(1)] {
                let c = compress(codec, &data, level).unwrap();
                assert_eq!(
                    decompress(codec, &c, data.len()).unwrap(),
                    data,
                    "codec {codec}"
                );
            }
        }
        assert!(compress(5, b"x", None).is_err());
    }

    #[test]
    fn magic_0_lz4_frames_carry_kafkas_broken_header_checksum() {
        let data = b"hello hello hello hello legacy lz4".repeat(10);
        let mut frame = compress(3, &data, None).unwrap();
        lz4_legacy::set_header_checksum(&mut frame, true);
        // liblz4 refuses the broken checksum; the legacy path repairs it.
        assert!(decompress(3, &frame, 1 << 20).is_err());
        assert_eq!(decompress_legacy(3, 0, &frame, 1 << 20).unwrap(), data);
        lz4_legacy::set_header_checksum(&mut frame, false);
        assert_eq!(decompress(3, &frame, 1 << 20).unwrap(), data);
    }

    #[test]
    fn the_limit_scales_with_max_message_bytes_within_bounds() {
        assert_eq!(limit_for(1_048_588), 1_048_588 * 32);
        assert_eq!(limit_for(1000), 8 << 20);
        assert_eq!(limit_for(usize::MAX), 512 << 20);
    }
}
