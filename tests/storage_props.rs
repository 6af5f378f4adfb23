//! Randomized property tests (seeded, deterministic): arbitrary and mutated bytes never
//! panic the batch validator, the follower path or the recovery scanner, and whatever
//! recovery keeps is valid.

mod storage_common;

use bytes::BytesMut;
use gregor::storage::batch::{decode_records, patch, BatchIter};
use gregor::storage::{Log, LogConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storage_common::*;

fn valid_batches(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut base = 0i64;
    for _ in 0..n {
        let codec = CODECS[rng.gen_range(0..CODECS.len())];
        let count = rng.gen_range(1..6);
        let mut b = batch_with(
            count,
            rng.gen_range(0..50),
            rng.gen_range(0..10_000),
            codec,
            None,
            "p",
        );
        patch::set_base_offset(&mut b, base);
        base += count as i64;
        out.extend_from_slice(&b);
    }
    out
}

/// Flips bits, overwrites header fields (recomputing the CRC half of the time so checks
/// past the CRC are exercised), truncates or extends.
fn mutate(rng: &mut StdRng, data: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    match rng.gen_range(0..5) {
        0 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..data.len());
                data[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => {
            let i = rng.gen_range(0..data.len().min(61));
            data[i] = rng.gen();
        }
        2 => {
            let n = rng.gen_range(0..data.len());
            data.truncate(n);
        }
        3 => {
            for _ in 0..rng.gen_range(1..40) {
                data.push(rng.gen());
            }
        }
        _ => {
            let i = rng.gen_range(0..data.len());
            data[i] = rng.gen();
        }
    }
    if rng.gen_bool(0.5) && data.len() >= 61 {
        // keep the first batch's CRC valid if its declared length fits
        let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        if len >= 49 && (12 + len as usize) <= data.len() {
            patch::rewrite_crc(&mut data[..12 + len as usize]);
        }
    }
}

#[test]
fn validator_never_panics_on_arbitrary_or_mutated_bytes() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        },
    );
    let mut accepted = 0;
    for round in 0..10_000 {
        let mut data: Vec<u8> = if round % 3 == 0 {
            (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect()
        } else {
            let k = rng.gen_range(1..3);
            let mut d = valid_batches(&mut rng, k);
            patch::set_base_offset(&mut d, 0);
            mutate(&mut rng, &mut d);
            d
        };
        // Zero base offsets of all batches (clients send 0) when framing allows.
        let mut pos = 0;
        while pos + 12 <= data.len() {
            let len =
                i32::from_be_bytes([data[pos + 8], data[pos + 9], data[pos + 10], data[pos + 11]]);
            if len < 49 {
                break;
            }
            patch::set_base_offset(&mut data[pos..], 0);
            pos += 12 + len as usize;
        }
        let before = log.log_end_offset();
        let buf = BytesMut::from(&data[..]);
        match log.append_as_leader(&buf, 0, 0) {
            Ok(r) => {
                accepted += 1;
                assert_eq!(r.base_offset, before);
                assert_eq!(log.log_end_offset(), r.last_offset + 1);
            }
            Err(_) => assert_eq!(
                log.log_end_offset(),
                before,
                "a rejected append writes nothing"
            ),
        }
        // the follower path and the record decoder on the same bytes
        let _ = log.append_as_follower(&data, 0);
        for (_, b) in BatchIter::new(&data).flatten() {
            let _ = decode_records(&b, 64 << 20);
        }
    }
    assert!(
        accepted > 100,
        "the generator must also produce valid appends ({accepted})"
    );
    // everything in the log is still readable and valid
    let all = read_all(&log);
    let mut n = 0;
    for item in BatchIter::new(&all) {
        item.unwrap().1.verify_crc().unwrap();
        n += 1;
    }
    assert!(n >= accepted);
}

#[test]
fn recovery_never_panics_and_keeps_only_valid_batches() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    for round in 0..300 {
        let dir = tempfile::tempdir().unwrap();
        let pd = part_dir(dir.path());
        std::fs::create_dir_all(&pd).unwrap();
        let mut data = if round % 4 == 0 {
            (0..rng.gen_range(0..500)).map(|_| rng.gen()).collect()
        } else {
            let k = rng.gen_range(1..8);
            valid_batches(&mut rng, k)
        };
        let pristine_len = data.len();
        if round % 4 != 0 {
            mutate(&mut rng, &mut data);
        }
        std::fs::write(pd.join("00000000000000000000.log"), &data).unwrap();
        if rng.gen_bool(0.3) {
            let junk: Vec<u8> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
            std::fs::write(pd.join("00000000000000000000.index"), junk).unwrap();
        }
        if rng.gen_bool(0.2) {
            let junk: Vec<u8> = (0..rng.gen_range(0..60)).map(|_| rng.gen()).collect();
            std::fs::write(pd.join("00000000000000000000.snapshot"), junk).unwrap();
        }
        let clean = rng.gen_bool(0.3);
        let opened = Log::open(&pd, &tp(), small_config(), 0, 0, clean, 0);
        let Ok(mut log) = opened else { continue };
        let all = log.read(log.log_start_offset(), usize::MAX, i64::MAX, true);
        if let Ok(r) = all {
            for item in BatchIter::new(&r.records) {
                let (_, b) = item.expect("recovered data is well framed");
                if !clean {
                    b.verify_crc().expect("recovered batches have valid CRCs");
                }
            }
            assert!(r.records.len() <= pristine_len.max(data.len()));
        }
        // the log stays usable
        let r = log.append_as_leader(&batch(2, 0), 0, 0);
        assert!(r.is_ok() || clean, "{r:?}");
    }
}
