//! The transaction log: append-only files of CRC-checked records, fsynced in groups.
//!
//! Layout: `log.<first zxid, 16 hex digits>`; an 8-byte header (`GZKL`, version 1), then
//! records `[u32 length][u32 crc32c(payload)][payload]`, the payload being a
//! [`txn::encode_record`]. A new file starts after every snapshot (taken every
//! `snapshot_interval_txns` txns or once the file passes `snap_size_limit_kb`), named by
//! the first zxid it may hold, so a log file never has to be read from the middle.
//!
//! Recovery streams the records (one record buffered at a time, at most [`MAX_RECORD`])
//! into the state as it reads them. It tells two kinds of damage apart:
//! - a *torn tail*: a record that is incomplete, fails its checksum or does not decode,
//!   with no valid record after it. Zxids in a file are consecutive from the one in its
//!   name, so "after it" is checked by searching the rest of the file (streamed) for a
//!   record carrying one of the next zxids with a good checksum. That is a crash
//!   mid-write: nothing there was acknowledged, since replies wait for the fsync. In the
//!   *last* file it is cut off with a warning.
//! - *corruption*: damage followed by a valid later record, a complete record larger
//!   than [`MAX_RECORD`], a bad file header over data, or any damage in an earlier file.
//!   Acknowledged records would be lost, so the server refuses to start (as ZooKeeper
//!   does on a CRC error) instead of truncating.
//!
//! The writer never produces a record recovery would refuse: [`TxnLog::append`] rejects
//! one above [`MAX_RECORD`], and requests are held far below it when prepared
//! (`Config::max_txn_bytes`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tracing::warn;

use super::txn::{self, Txn, TxnHeader};

const MAGIC: &[u8; 4] = b"GZKL";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 8;
/// The largest record recovery reads (and the writer writes). Far above any txn a
/// request can produce (`Config::max_txn_bytes`, at most 64 MiB + 1 KiB).
pub const MAX_RECORD: usize = 128 * 1024 * 1024;

pub fn log_name(start_zxid: i64) -> String {
    format!("log.{start_zxid:016x}")
}

/// Parses `prefix.<hex>` file names.
pub fn parse_name(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

/// Files `prefix.<hex>` in `dir`, sorted by their zxid.
pub fn list(dir: &Path, prefix: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(z) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_name(n, prefix))
        {
            out.push((z, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Frames one record. Fails (writing nothing) if the payload is above [`MAX_RECORD`].
pub fn frame_record(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    if payload.len() > MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "txn record of {} bytes is above the log's limit of {MAX_RECORD}",
                payload.len()
            ),
        ));
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Damage found while reading a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// A crash mid-write: only unacknowledged bytes at the end are affected.
    TornTail(String),
    /// Anything else: cutting here could lose acknowledged records.
    Corrupt(String),
}

/// What reading one log file found.
#[derive(Debug)]
pub struct Scan {
    /// Whole, valid records handed to the consumer.
    pub records: u64,
    /// Bytes of the file that hold the header and whole, valid records.
    pub valid_len: u64,
    pub file_len: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub damage: Option<Damage>,
}

/// How many zxids past the damaged one the search for a later valid record covers
/// (a candidate is an 8-byte value in that range at a record's zxid offset, then its
/// length and checksum are verified).
const RESYNC_ZXIDS: i64 = 1 << 20;

/// Smallest possible record payload: the 28-byte header and a txn type.
const MIN_PAYLOAD: u64 = 32;

/// Whether a whole, checksum-valid, decodable record whose zxid lies in `lo..=hi`
/// starts anywhere at or after `from`. Streams the file in bounded chunks; a candidate
/// (an 8-byte big-endian zxid in range) is verified by reading its record.
fn valid_record_after<R: Read + Seek>(
    r: &mut R,
    from: u64,
    file_len: u64,
    lo: i64,
    hi: i64,
) -> io::Result<Option<u64>> {
    const CHUNK: usize = 64 * 1024;
    // The zxid sits 8 bytes into a record.
    let mut base = from + 8;
    if base + 8 > file_len {
        return Ok(None);
    }
    let mut win: Vec<u8> = Vec::with_capacity(CHUNK + 8);
    r.seek(SeekFrom::Start(base))?;
    let mut eof = false;
    loop {
        // Refill: keep the last 7 bytes (a zxid may straddle chunks).
        let mut chunk = vec![0u8; CHUNK];
        let n = if eof { 0 } else { r.read(&mut chunk)? };
        if n == 0 {
            eof = true;
        }
        win.extend_from_slice(&chunk[..n]);
        if win.len() < 8 {
            return Ok(None);
        }
        let last = win.len() - 8;
        for i in 0..=last {
            let z = i64::from_be_bytes(win[i..i + 8].try_into().expect("8 bytes"));
            if z < lo || z > hi {
                continue;
            }
            let start = base + i as u64 - 8;
            let resume = base + win.len() as u64;
            let ok = record_ok_at(r, start, file_len)?;
            r.seek(SeekFrom::Start(resume))?;
            if ok {
                return Ok(Some(start));
            }
        }
        if eof {
            return Ok(None);
        }
        let keep = win.split_off(last + 1);
        base += (last + 1) as u64;
        win = keep;
    }
}

/// Whether a valid record starts at `start`.
fn record_ok_at<R: Read + Seek>(r: &mut R, start: u64, file_len: u64) -> io::Result<bool> {
    if start + 8 + MIN_PAYLOAD > file_len {
        return Ok(false);
    }
    r.seek(SeekFrom::Start(start))?;
    let mut rh = [0u8; 8];
    r.read_exact(&mut rh)?;
    let len = u32::from_be_bytes([rh[0], rh[1], rh[2], rh[3]]) as u64;
    let crc = u32::from_be_bytes([rh[4], rh[5], rh[6], rh[7]]);
    if len < MIN_PAYLOAD || len as usize > MAX_RECORD || start + 8 + len > file_len {
        return Ok(false);
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(crc32c::crc32c(&payload) == crc && txn::decode_record(&payload).is_ok())
}

/// Streams the records of a log file, in order, to `each`; stops at the first damage.
/// `first_zxid` is the zxid the file's first record carries (from its name). Memory: a
/// read buffer plus one record.
pub fn scan<R: Read + Seek>(
    mut r: R,
    file_len: u64,
    first_zxid: i64,
    each: &mut dyn FnMut(TxnHeader, Txn) -> anyhow::Result<()>,
) -> anyhow::Result<Scan> {
    let mut scan = Scan {
        records: 0,
        valid_len: 0,
        file_len,
        damage: None,
    };
    if file_len == 0 {
        return Ok(scan);
    }
    if file_len < HEADER_LEN {
        scan.damage = Some(Damage::TornTail("torn file header".into()));
        return Ok(scan);
    }
    let mut header = [0u8; HEADER_LEN as usize];
    r.read_exact(&mut header)?;
    if &header[..4] != MAGIC {
        let lo = first_zxid;
        scan.damage = Some(
            match valid_record_after(&mut r, 0, file_len, lo, lo.saturating_add(RESYNC_ZXIDS))? {
                None => Damage::TornTail("bad file header and no valid record after it".into()),
                Some(at) => {
                    Damage::Corrupt(format!("bad file header, with a valid record at byte {at}"))
                }
            },
        );
        return Ok(scan);
    }
    let mut pos = HEADER_LEN;
    scan.valid_len = pos;
    let mut payload = Vec::new();
    let mut last_zxid = first_zxid.saturating_sub(1);
    while pos < file_len {
        let remaining = file_len - pos;
        let problem = 'record: {
            if remaining < 8 {
                break 'record Some(format!("torn record header at byte {pos}"));
            }
            let mut rh = [0u8; 8];
            r.read_exact(&mut rh)?;
            let len = u32::from_be_bytes([rh[0], rh[1], rh[2], rh[3]]) as u64;
            let crc = u32::from_be_bytes([rh[4], rh[5], rh[6], rh[7]]);
            let end = pos + 8 + len;
            if end > file_len {
                break 'record Some(format!(
                    "record at byte {pos} of length {len} runs past the end ({} bytes present)",
                    remaining - 8
                ));
            }
            if len as usize > MAX_RECORD {
                // A complete record recovery will not read: never a torn write.
                scan.damage = Some(Damage::Corrupt(format!(
                    "record at byte {pos} is {len} bytes, above the limit of {MAX_RECORD}"
                )));
                return Ok(scan);
            }
            payload.resize(len as usize, 0);
            r.read_exact(&mut payload)?;
            if crc32c::crc32c(&payload) != crc {
                break 'record Some(format!("checksum mismatch at byte {pos}"));
            }
            match txn::decode_record(&payload) {
                Ok((hdr, t)) => {
                    last_zxid = hdr.zxid;
                    each(hdr, t)?;
                    scan.records += 1;
                    pos = end;
                    scan.valid_len = pos;
                    None
                }
                Err(e) => Some(format!("undecodable record at byte {pos} ({e})")),
            }
        };
        if let Some(why) = problem {
            // Torn only if nothing valid follows: the damaged record would carry
            // last_zxid + 1, so look for any of the zxids after that.
            let lo = last_zxid.saturating_add(2);
            let hi = last_zxid.saturating_add(1 + RESYNC_ZXIDS);
            scan.damage = Some(
                match valid_record_after(&mut r, pos + 1, file_len, lo, hi)? {
                    None => Damage::TornTail(why),
                    Some(at) => {
                        Damage::Corrupt(format!("{why}, with a valid record at byte {at} after it"))
                    }
                },
            );
            break;
        }
    }
    Ok(scan)
}

/// Streams every valid record of a log file to `each` (see [`scan`]).
pub fn scan_file(
    path: &Path,
    first_zxid: i64,
    each: &mut dyn FnMut(TxnHeader, Txn) -> anyhow::Result<()>,
) -> anyhow::Result<Scan> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    scan(
        BufReader::with_capacity(256 * 1024, f),
        len,
        first_zxid,
        each,
    )
}

/// What [`recover`] replayed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub count: u64,
    pub last_zxid: Option<i64>,
}

/// Streams the records with zxid above `after` from all log files in `dir`, in order, to
/// `apply`. Repairs a torn tail of the last file; fails on any other damage.
pub fn recover(
    dir: &Path,
    after: i64,
    mut apply: impl FnMut(TxnHeader, Txn),
) -> anyhow::Result<Replayed> {
    let files = list(dir, "log").context("listing log files")?;
    let mut done = Replayed::default();
    let last_index = files.len().saturating_sub(1);
    for (i, (first_zxid, path)) in files.iter().enumerate() {
        let mut each = |hdr: TxnHeader, t: Txn| -> anyhow::Result<()> {
            if hdr.zxid <= after {
                return Ok(());
            }
            if let Some(prev) = done.last_zxid {
                if hdr.zxid <= prev {
                    bail!(
                        "transaction log {} goes back from zxid {prev:#x} to {:#x}",
                        path.display(),
                        hdr.zxid
                    );
                }
            }
            done.last_zxid = Some(hdr.zxid);
            done.count += 1;
            apply(hdr, t);
            Ok(())
        };
        let scan = scan_file(path, *first_zxid, &mut each)
            .with_context(|| format!("reading {}", path.display()))?;
        match &scan.damage {
            None => {}
            Some(Damage::Corrupt(why)) => bail!(
                "transaction log {} is corrupt ({why}): acknowledged txns could be lost, refusing to start",
                path.display()
            ),
            Some(Damage::TornTail(why)) if i != last_index => bail!(
                "transaction log {} is damaged ({why}) and is not the last log: refusing to start",
                path.display()
            ),
            Some(Damage::TornTail(why)) => {
                warn!(
                    file = %path.display(),
                    "truncating transaction log tail: {why}; {} bytes dropped",
                    scan.file_len - scan.valid_len.max(HEADER_LEN.min(scan.file_len))
                );
                if scan.valid_len < HEADER_LEN {
                    // Not even a header: the file was being created. Rewrite it empty.
                    let mut f = File::create(path)?;
                    f.write_all(&file_header())?;
                    f.sync_all()?;
                } else {
                    let f = OpenOptions::new().write(true).open(path)?;
                    f.set_len(scan.valid_len)?;
                    f.sync_all()?;
                }
            }
        }
    }
    Ok(done)
}

fn file_header() -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(MAGIC);
    h[4..].copy_from_slice(&VERSION.to_be_bytes());
    h
}

/// The log being appended to.
pub struct TxnLog {
    dir: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Txns appended to the current file.
    pub count: u64,
    /// Size of the current file, buffered bytes included.
    pub bytes: u64,
}

impl TxnLog {
    /// Opens (creating if needed) the log file for txns from `start_zxid` on.
    pub fn open(dir: &Path, start_zxid: i64) -> anyhow::Result<TxnLog> {
        let path = dir.join(log_name(start_zxid));
        let exists = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !exists || file.metadata()?.len() == 0 {
            file.write_all(&file_header())?;
            file.sync_all()?;
            fsync_dir(dir)?;
        }
        let bytes = file.metadata()?.len();
        Ok(TxnLog {
            dir: dir.to_path_buf(),
            file,
            buf: Vec::new(),
            count: 0,
            bytes,
        })
    }

    /// Buffers a txn; nothing is durable until [`TxnLog::commit`]. Refuses a record
    /// recovery would not read back (above [`MAX_RECORD`]).
    pub fn append(&mut self, hdr: &TxnHeader, t: &Txn) -> io::Result<()> {
        let before = self.buf.len();
        frame_record(&txn::encode_record(hdr, t), &mut self.buf)?;
        self.bytes += (self.buf.len() - before) as u64;
        self.count += 1;
        Ok(())
    }

    /// Writes everything buffered and fsyncs: one fsync for the whole group.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.buf.clear();
        Ok(())
    }

    /// Starts a new file for txns from `start_zxid` on (after a snapshot).
    pub fn roll(&mut self, start_zxid: i64) -> anyhow::Result<()> {
        self.commit()?;
        *self = TxnLog::open(&self.dir, start_zxid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zookeeper::proto::{perms, Acl};

    fn rec(z: i64) -> (TxnHeader, Txn) {
        (
            TxnHeader {
                session_id: 1,
                cxid: z as i32,
                zxid: z,
                time: 0,
            },
            Txn::Create {
                path: format!("/n{z}"),
                data: Some(vec![z as u8; 10]),
                acl: vec![Acl::world(perms::ALL)],
                ephemeral_owner: 0,
                parent_cversion: z as i32,
            },
        )
    }

    fn write_log(dir: &Path, start: i64, zxids: std::ops::RangeInclusive<i64>) -> PathBuf {
        let mut log = TxnLog::open(dir, start).unwrap();
        for z in zxids {
            let (h, t) = rec(z);
            log.append(&h, &t).unwrap();
        }
        log.commit().unwrap();
        dir.join(log_name(start))
    }

    fn recover_all(dir: &Path, after: i64) -> anyhow::Result<Vec<(TxnHeader, Txn)>> {
        let mut out = Vec::new();
        let done = recover(dir, after, |h, t| out.push((h, t)))?;
        assert_eq!(done.count as usize, out.len());
        Ok(out)
    }

    /// Byte offset where record `k` (0-based) of a `write_log` file starts.
    fn record_offset(path: &Path, k: usize) -> usize {
        let bytes = fs::read(path).unwrap();
        let mut pos = HEADER_LEN as usize;
        for _ in 0..k {
            let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 8 + len;
        }
        pos
    }

    #[test]
    fn round_trip_and_skip_below_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 1..=5);
        write_log(dir.path(), 6, 6..=9);
        let all = recover_all(dir.path(), 0).unwrap();
        assert_eq!(all.len(), 9);
        assert_eq!(all[8], rec(9));
        let after = recover_all(dir.path(), 7).unwrap();
        assert_eq!(
            after.iter().map(|r| r.0.zxid).collect::<Vec<_>>(),
            vec![8, 9]
        );
    }

    #[test]
    fn torn_tail_is_truncated_and_appendable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=3);
        let full = fs::metadata(&path).unwrap().len();
        // Cut the last record in half.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 5).unwrap();
        drop(f);
        let got = recover_all(dir.path(), 0).unwrap();
        assert_eq!(got.len(), 2);
        let len_after = fs::metadata(&path).unwrap().len();
        assert!(len_after < full - 5);
        // The repaired file takes new records after the good ones.
        let mut log = TxnLog::open(dir.path(), 1).unwrap();
        let (h, t) = rec(3);
        log.append(&h, &t).unwrap();
        log.commit().unwrap();
        assert_eq!(recover_all(dir.path(), 0).unwrap().len(), 3);
    }

    #[test]
    fn corrupt_byte_in_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=4);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let got = recover_all(dir.path(), 0).unwrap();
        assert_eq!(
            got.iter().map(|r| r.0.zxid).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let again = scan_file(&path, 1, &mut |_, _| Ok(())).unwrap();
        assert!(again.damage.is_none());
        assert_eq!(again.records, 3);
    }

    #[test]
    fn corrupt_record_in_the_middle_refuses_to_start_and_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=6);
        let original = fs::read(&path).unwrap();
        // A flipped payload byte in record 3 (zxid 3), a flipped length byte in record
        // 2: either way valid records follow, so this is not a torn tail.
        for (k, off) in [(2usize, 20usize), (1, 1)] {
            let mut bytes = original.clone();
            bytes[record_offset(&path, k) + off] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            let e = recover_all(dir.path(), 0).unwrap_err().to_string();
            assert!(e.contains("corrupt"), "{e}");
            // Nothing was cut.
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
    }

    #[test]
    fn well_formed_record_above_the_limit_is_corruption_not_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=2);
        let mut bytes = fs::read(&path).unwrap();
        let big = MAX_RECORD as u32 + 1;
        bytes.extend_from_slice(&big.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        // A sparse, complete payload: the file really holds all `big` bytes.
        fs::write(&path, &bytes).unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(bytes.len() as u64 + big as u64).unwrap();
        drop(f);
        let e = recover_all(dir.path(), 0).unwrap_err().to_string();
        assert!(e.contains("above the limit"), "{e}");
        // The same header with the payload missing is an incomplete last record: torn.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(bytes.len() as u64 + 100).unwrap();
        drop(f);
        assert_eq!(recover_all(dir.path(), 0).unwrap().len(), 2);
    }

    #[test]
    fn several_destroyed_records_before_valid_ones_are_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=20);
        let mut bytes = fs::read(&path).unwrap();
        // A lost run of sectors: records 5 to 8 zeroed, 9..=20 intact after them.
        let (from, to) = (record_offset(&path, 4), record_offset(&path, 8));
        bytes[from..to].fill(0);
        fs::write(&path, &bytes).unwrap();
        let e = recover_all(dir.path(), 0).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was cut");
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=3);
        let mut bytes = fs::read(&path).unwrap();
        let good = bytes.len() as u64;
        // A half-written group commit: a plausible header, then noise.
        bytes.extend_from_slice(&200u32.to_be_bytes());
        bytes.extend_from_slice(&7u32.to_be_bytes());
        bytes.extend((0..150u32).map(|i| (i * 37 % 251) as u8));
        fs::write(&path, &bytes).unwrap();
        assert_eq!(recover_all(dir.path(), 0).unwrap().len(), 3);
        assert_eq!(fs::metadata(&path).unwrap().len(), good);
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=3);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 4096]);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(recover_all(dir.path(), 0).unwrap().len(), 3);
    }

    #[test]
    fn damage_before_the_last_file_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_log(dir.path(), 1, 1..=4);
        write_log(dir.path(), 5, 5..=6);
        let mut bytes = fs::read(&first).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        assert!(recover_all(dir.path(), 0).is_err());
    }

    #[test]
    fn scan_streams_with_a_bounded_buffer() {
        // Many records through a reader that hands out at most 7 bytes per read.
        struct Trickle(std::io::Cursor<Vec<u8>>);
        impl Read for Trickle {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = b.len().min(7);
                self.0.read(&mut b[..n])
            }
        }
        impl Seek for Trickle {
            fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
                self.0.seek(p)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=500);
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 2);
        let len = bytes.len() as u64;
        let mut seen = 0;
        let s = scan(Trickle(std::io::Cursor::new(bytes)), len, 1, &mut |h, _| {
            seen += 1;
            assert_eq!(h.zxid, seen);
            Ok(())
        })
        .unwrap();
        assert_eq!((s.records, seen), (499, 499));
        assert!(matches!(s.damage, Some(Damage::TornTail(_))), "{s:?}");
    }

    #[test]
    fn append_refuses_records_recovery_would_not_read() {
        let mut out = Vec::new();
        assert!(frame_record(&vec![0u8; MAX_RECORD + 1], &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn empty_or_headerless_last_file() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 1..=2);
        fs::write(dir.path().join(log_name(3)), b"GZ").unwrap();
        assert_eq!(recover_all(dir.path(), 0).unwrap().len(), 2);
        // Repaired to a bare header.
        assert_eq!(
            fs::read(dir.path().join(log_name(3))).unwrap(),
            file_header()
        );
        assert_eq!(parse_name("log.0000000000000010", "log"), Some(16));
        assert_eq!(parse_name("log.10", "log"), None);
    }
}
