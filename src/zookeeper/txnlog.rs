//! The transaction log: append-only files of CRC-checked records, fsynced in groups.
//!
//! Layout: `log.<first zxid, 16 hex digits>`; an 8-byte header (`GZKL`, version 1), then
//! records `[u32 length][u32 crc32c(payload)][payload]`, the payload being a
//! [`txn::encode_record`]. A new file starts after every snapshot, named by the first zxid
//! it may hold, so a log file never has to be read from the middle.
//!
//! Recovery reads every record it can. A torn or corrupt tail of the *last* file (a crash
//! mid-write) is cut off with a warning: nothing there was acknowledged, since replies
//! wait for the fsync. Corruption in an earlier file is an error: acknowledged data would
//! be lost, so the server refuses to start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tracing::warn;

use super::txn::{self, Txn, TxnHeader};

const MAGIC: &[u8; 4] = b"GZKL";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 8;
/// No record is larger than a request frame plus its header; anything bigger is garbage.
const MAX_RECORD: u32 = 64 * 1024 * 1024;

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

pub fn frame_record(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// What reading one log file found.
#[derive(Debug)]
pub struct LogContents {
    pub records: Vec<(TxnHeader, Txn)>,
    /// Bytes of the file that hold whole, valid records (header included).
    pub valid_len: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub damage: Option<String>,
}

/// Reads every valid record of a log file.
pub fn read_file(path: &Path) -> io::Result<LogContents> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(parse(&bytes))
}

/// Parses log file bytes (see [`read_file`]).
pub fn parse(bytes: &[u8]) -> LogContents {
    let mut records = Vec::new();
    if bytes.len() < HEADER_LEN as usize || &bytes[..4] != MAGIC {
        return LogContents {
            records,
            valid_len: 0,
            damage: (!bytes.is_empty()).then(|| "bad or torn file header".to_string()),
        };
    }
    let mut pos = HEADER_LEN as usize;
    let mut damage = None;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 8 {
            damage = Some(format!("torn record header at byte {pos}"));
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD || rest.len() - 8 < len as usize {
            damage = Some(format!("torn record at byte {pos} (length {len})"));
            break;
        }
        let payload = &rest[8..8 + len as usize];
        if crc32c::crc32c(payload) != crc {
            damage = Some(format!("checksum mismatch at byte {pos}"));
            break;
        }
        match txn::decode_record(payload) {
            Ok(r) => records.push(r),
            Err(e) => {
                damage = Some(format!("undecodable record at byte {pos}: {e}"));
                break;
            }
        }
        pos += 8 + len as usize;
    }
    LogContents {
        records,
        valid_len: pos as u64,
        damage,
    }
}

/// Reads all log files in `dir` in order, returning the records with zxid above
/// `after`. Repairs a damaged tail of the last file; fails on damage anywhere else.
pub fn recover(dir: &Path, after: i64) -> anyhow::Result<Vec<(TxnHeader, Txn)>> {
    let files = list(dir, "log").context("listing log files")?;
    let mut out: Vec<(TxnHeader, Txn)> = Vec::new();
    let last_index = files.len().saturating_sub(1);
    for (i, (_, path)) in files.iter().enumerate() {
        let contents = read_file(path).with_context(|| format!("reading {}", path.display()))?;
        if let Some(why) = &contents.damage {
            if i != last_index {
                bail!(
                    "transaction log {} is damaged ({why}) and is not the last log: refusing to start",
                    path.display()
                );
            }
            let len = fs::metadata(path)?.len();
            warn!(
                file = %path.display(),
                "truncating transaction log tail: {why}; {} bytes dropped",
                len - contents.valid_len.max(HEADER_LEN.min(len))
            );
            if contents.valid_len < HEADER_LEN {
                // Not even a header: the file was being created. Rewrite it empty.
                let mut f = File::create(path)?;
                f.write_all(&file_header())?;
                f.sync_all()?;
            } else {
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(contents.valid_len)?;
                f.sync_all()?;
            }
        }
        for (hdr, t) in contents.records {
            if hdr.zxid <= after {
                continue;
            }
            if let Some((prev, _)) = out.last() {
                if hdr.zxid <= prev.zxid {
                    bail!(
                        "transaction log {} goes back from zxid {:#x} to {:#x}",
                        path.display(),
                        prev.zxid,
                        hdr.zxid
                    );
                }
            }
            out.push((hdr, t));
        }
    }
    Ok(out)
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
        Ok(TxnLog {
            dir: dir.to_path_buf(),
            file,
            buf: Vec::new(),
            count: 0,
        })
    }

    /// Buffers a txn; nothing is durable until [`TxnLog::commit`].
    pub fn append(&mut self, hdr: &TxnHeader, t: &Txn) {
        frame_record(&txn::encode_record(hdr, t), &mut self.buf);
        self.count += 1;
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
            log.append(&h, &t);
        }
        log.commit().unwrap();
        dir.join(log_name(start))
    }

    #[test]
    fn round_trip_and_skip_below_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 1..=5);
        write_log(dir.path(), 6, 6..=9);
        let all = recover(dir.path(), 0).unwrap();
        assert_eq!(all.len(), 9);
        assert_eq!(all[8], rec(9));
        let after = recover(dir.path(), 7).unwrap();
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
        let got = recover(dir.path(), 0).unwrap();
        assert_eq!(got.len(), 2);
        let len_after = fs::metadata(&path).unwrap().len();
        assert!(len_after < full - 5);
        // The repaired file takes new records after the good ones.
        let mut log = TxnLog::open(dir.path(), 1).unwrap();
        let (h, t) = rec(3);
        log.append(&h, &t);
        log.commit().unwrap();
        assert_eq!(recover(dir.path(), 0).unwrap().len(), 3);
    }

    #[test]
    fn corrupt_byte_in_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1, 1..=4);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let got = recover(dir.path(), 0).unwrap();
        assert_eq!(
            got.iter().map(|r| r.0.zxid).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(parse(&fs::read(&path).unwrap()).damage.is_none());
    }

    #[test]
    fn damage_before_the_last_file_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_log(dir.path(), 1, 1..=4);
        write_log(dir.path(), 5, 5..=6);
        let mut bytes = fs::read(&first).unwrap();
        bytes[12] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        assert!(recover(dir.path(), 0).is_err());
    }

    #[test]
    fn empty_or_headerless_last_file() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 1..=2);
        fs::write(dir.path().join(log_name(3)), b"GZ").unwrap();
        assert_eq!(recover(dir.path(), 0).unwrap().len(), 2);
        // Repaired to a bare header.
        assert_eq!(
            fs::read(dir.path().join(log_name(3))).unwrap(),
            file_header()
        );
        assert_eq!(parse_name("log.0000000000000010", "log"), Some(16));
        assert_eq!(parse_name("log.10", "log"), None);
    }
}
