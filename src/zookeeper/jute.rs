//! Jute, ZooKeeper's binary record encoding: big-endian fixed-width integers, booleans as
//! one byte, strings and buffers as an `i32` length followed by the bytes (`-1` means
//! null), vectors as an `i32` count followed by the elements (`-1` means null).
//!
//! [`Reader`] never panics on hostile input: every read checks the remaining length and a
//! declared length larger than what is left (or negative other than `-1`) is an error.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JuteError {
    #[error("record truncated: needed {needed} bytes, {left} left")]
    Truncated { needed: usize, left: usize },
    #[error("invalid length {0}")]
    BadLength(i32),
    #[error("invalid boolean byte {0}")]
    BadBool(u8),
}

/// Reads jute primitives from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], JuteError> {
        if self.buf.len() < n {
            return Err(JuteError::Truncated {
                needed: n,
                left: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], JuteError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn read_i32(&mut self) -> Result<i32, JuteError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn read_i64(&mut self) -> Result<i64, JuteError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn read_u8(&mut self) -> Result<u8, JuteError> {
        Ok(self.array::<1>()?[0])
    }

    /// Java's `readBool` accepts any non-zero byte as true; so do we.
    pub fn read_bool(&mut self) -> Result<bool, JuteError> {
        Ok(self.read_u8()? != 0)
    }

    /// A length-prefixed byte buffer; `None` for the null buffer (length -1).
    pub fn read_buffer(&mut self) -> Result<Option<Vec<u8>>, JuteError> {
        Ok(self.read_buffer_ref()?.map(<[u8]>::to_vec))
    }

    pub fn read_buffer_ref(&mut self) -> Result<Option<&'a [u8]>, JuteError> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > self.buf.len() {
            return Err(JuteError::BadLength(len));
        }
        Ok(Some(self.take(len as usize)?))
    }

    /// A length-prefixed UTF-8 string; invalid UTF-8 is replaced (as Java's decoder does).
    pub fn read_string(&mut self) -> Result<Option<String>, JuteError> {
        Ok(self
            .read_buffer_ref()?
            .map(|b| String::from_utf8_lossy(b).into_owned()))
    }

    /// A vector count; `None` for the null vector. The count is checked against the bytes
    /// left assuming each element takes at least `min_elem` bytes, so a hostile count
    /// cannot make the caller allocate.
    pub fn read_vec_len(&mut self, min_elem: usize) -> Result<Option<usize>, JuteError> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || (len as usize).saturating_mul(min_elem.max(1)) > self.buf.len() {
            return Err(JuteError::BadLength(len));
        }
        Ok(Some(len as usize))
    }

    /// A vector of strings; null reads as empty.
    pub fn read_string_vec(&mut self) -> Result<Vec<String>, JuteError> {
        let n = self.read_vec_len(4)?.unwrap_or(0);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.read_string()?.unwrap_or_default());
        }
        Ok(out)
    }
}

/// Writes jute primitives into a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    /// A writer whose first four bytes are a placeholder for a frame length, filled in by
    /// [`Writer::finish_frame`].
    pub fn framed() -> Self {
        Writer {
            buf: vec![0, 0, 0, 0],
        }
    }

    /// Callers bound what they frame (server replies by `max_reply_bytes`, far below
    /// 2 GiB), so the length never wraps; a debug build checks it.
    pub fn finish_frame(mut self) -> Vec<u8> {
        debug_assert!(self.buf.len() - 4 <= i32::MAX as usize, "frame over 2 GiB");
        let len = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn write_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    pub fn write_buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.write_i32(-1),
            Some(b) => {
                self.write_i32(b.len() as i32);
                self.buf.extend_from_slice(b);
            }
        }
    }

    pub fn write_string(&mut self, s: &str) {
        self.write_buffer(Some(s.as_bytes()));
    }

    pub fn write_string_vec<S: AsRef<str>>(&mut self, v: &[S]) {
        self.write_i32(v.len() as i32);
        for s in v {
            self.write_string(s.as_ref());
        }
    }

    pub fn write_raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut w = Writer::new();
        w.write_i32(-5);
        w.write_i64(0x0102_0304_0506_0708);
        w.write_bool(true);
        w.write_bool(false);
        w.write_buffer(None);
        w.write_buffer(Some(b""));
        w.write_buffer(Some(b"abc"));
        w.write_string("/zk/é");
        w.write_string_vec(&["a", "bc"]);
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_i32().unwrap(), -5);
        assert_eq!(r.read_i64().unwrap(), 0x0102_0304_0506_0708);
        assert!(r.read_bool().unwrap());
        assert!(!r.read_bool().unwrap());
        assert_eq!(r.read_buffer().unwrap(), None);
        assert_eq!(r.read_buffer().unwrap(), Some(vec![]));
        assert_eq!(r.read_buffer().unwrap(), Some(b"abc".to_vec()));
        assert_eq!(r.read_string().unwrap().as_deref(), Some("/zk/é"));
        assert_eq!(r.read_string_vec().unwrap(), vec!["a", "bc"]);
        assert!(r.is_empty());
    }

    #[test]
    fn big_endian_layout() {
        let mut w = Writer::new();
        w.write_i32(1);
        w.write_string("ab");
        assert_eq!(w.into_inner(), vec![0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn hostile_lengths_are_errors_not_panics() {
        // Declared length larger than the data.
        let bytes = [0, 0, 0, 9, 1, 2];
        assert_eq!(
            Reader::new(&bytes).read_buffer(),
            Err(JuteError::BadLength(9))
        );
        // Negative length other than -1.
        let bytes = (-2i32).to_be_bytes();
        assert_eq!(
            Reader::new(&bytes).read_string(),
            Err(JuteError::BadLength(-2))
        );
        // Huge vector count.
        let bytes = i32::MAX.to_be_bytes();
        assert!(Reader::new(&bytes).read_string_vec().is_err());
        // Truncated integers.
        assert!(Reader::new(&[1, 2]).read_i32().is_err());
        assert!(Reader::new(&[]).read_bool().is_err());
    }

    #[test]
    fn invalid_utf8_is_replaced_like_java() {
        let mut w = Writer::new();
        w.write_buffer(Some(&[b'/', 0xff]));
        let bytes = w.into_inner();
        assert_eq!(
            Reader::new(&bytes).read_string().unwrap().unwrap(),
            "/\u{fffd}"
        );
    }

    #[test]
    fn framed_writer_prefixes_length() {
        let mut w = Writer::framed();
        w.write_i32(7);
        assert_eq!(w.finish_frame(), vec![0, 0, 0, 4, 0, 0, 0, 7]);
    }
}
