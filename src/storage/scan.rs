//! Sequential scans of a segment file: whole batches with large reads (recovery, the
//! cleaner, epoch rebuilding) and batch headers only (offset translation, tail loads).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::batch::{
    batch_size_from_prefix, Batch, BatchError, BatchHeader, HeaderFields, BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
};
use super::error::{IoContext, StorageError};
use super::fileio::{read_exact_at_mode, ReadMode};

/// Sequential reads during recovery and scans use chunks of this size.
const SCAN_CHUNK: usize = 1 << 20;
/// Header scans (translate offset, tail loads) read this much at a time.
const HEADER_CHUNK: usize = 16 * 1024;

/// A `Corrupt` error naming the file and position.
pub(super) fn corrupt(path: &Path, pos: u64, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{} at position {pos}: {e}", path.display()))
}

/// How a walk over a segment's batches ended.
#[derive(Debug)]
pub enum WalkEnd {
    /// Every byte up to the end was a complete batch.
    Complete,
    /// The callback asked to stop at this batch position.
    Stopped(u64),
    /// The bytes at `pos` are not a complete batch.
    Bad { pos: u64, error: BatchError },
}

/// Walks complete batches of `file` from `start` to `end` with large sequential reads,
/// calling `f(position, batch)`; `f` returns `Ok(false)` to stop. CRCs are not checked here.
pub fn walk_batches(
    file: &File,
    path: &Path,
    start: u64,
    end: u64,
    mut f: impl FnMut(u64, &Batch<'_>) -> Result<bool, StorageError>,
) -> Result<WalkEnd, StorageError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = start;
    let mut pos = start;
    while pos < end {
        let avail = end - pos;
        // Make sure the buffer holds at least the size prefix of the batch at `pos`.
        let in_buf = |buf: &Vec<u8>, buf_start: u64, pos: u64| {
            (buf_start + buf.len() as u64).saturating_sub(pos)
        };
        if in_buf(&buf, buf_start, pos) < LOG_OVERHEAD as u64 {
            let n = (SCAN_CHUNK as u64).min(avail) as usize;
            buf.resize(n, 0);
            file.read_exact_at(&mut buf, pos).ctx(path)?;
            buf_start = pos;
        }
        let off = (pos - buf_start) as usize;
        let size = match batch_size_from_prefix(&buf[off..]) {
            Ok(s) => s as u64,
            Err(error) => return Ok(WalkEnd::Bad { pos, error }),
        };
        if size > avail {
            return Ok(WalkEnd::Bad {
                pos,
                error: BatchError::Truncated {
                    needed: size as usize,
                    available: avail as usize,
                },
            });
        }
        if in_buf(&buf, buf_start, pos) < size {
            let n = size.max(SCAN_CHUNK as u64).min(avail) as usize;
            buf.resize(n, 0);
            file.read_exact_at(&mut buf, pos).ctx(path)?;
            buf_start = pos;
        }
        let off = (pos - buf_start) as usize;
        let batch = match Batch::parse(&buf[off..off + size as usize]) {
            Ok(b) => b,
            Err(error) => return Ok(WalkEnd::Bad { pos, error }),
        };
        if !f(pos, &batch)? {
            return Ok(WalkEnd::Stopped(pos));
        }
        pos += size;
    }
    Ok(WalkEnd::Complete)
}

/// Reads batch headers one after another (no CRC check), in small chunks.
pub struct HeaderScanner<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
    mode: ReadMode,
}

impl<'a> HeaderScanner<'a> {
    pub(super) fn new(file: &'a File, path: &'a Path, start: u64, end: u64) -> Self {
        Self::with_mode(file, path, start, end, ReadMode::Blocking)
    }

    pub(super) fn with_mode(
        file: &'a File,
        path: &'a Path,
        start: u64,
        end: u64,
        mode: ReadMode,
    ) -> Self {
        HeaderScanner {
            file,
            path,
            end,
            pos: start,
            buf: Vec::new(),
            buf_start: start,
            mode,
        }
    }

    /// The next `(position, header)`, or `None` at the end. Malformed bytes are `Corrupt`.
    pub fn next_header(&mut self) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let avail = self.end - self.pos;
        let need = (BATCH_HEADER_SIZE as u64).min(avail);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos + need > buf_end {
            let n = (HEADER_CHUNK as u64).min(avail) as usize;
            self.buf.resize(n, 0);
            read_exact_at_mode(self.file, &mut self.buf, self.pos, self.mode).ctx(self.path)?;
            self.buf_start = self.pos;
        }
        let off = (self.pos - self.buf_start) as usize;
        let hdr =
            BatchHeader::parse(&self.buf[off..]).map_err(|e| corrupt(self.path, self.pos, e))?;
        let size = hdr.size() as u64;
        if size > avail {
            return Err(corrupt(
                self.path,
                self.pos,
                BatchError::Truncated {
                    needed: size as usize,
                    available: avail as usize,
                },
            ));
        }
        let at = self.pos;
        self.pos += size;
        Ok(Some((at, hdr)))
    }
}
