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
    fn the_limit_scales_with_max_message_bytes_within_bounds() {
        assert_eq!(limit_for(1_048_588), 1_048_588 * 32);
        assert_eq!(limit_for(1000), 8 << 20);
        assert_eq!(limit_for(usize::MAX), 512 << 20);
    }
}
