//! Kafka framing: every request and response is a 4-byte big-endian size followed by that
//! many bytes. The size is bounded (`socket.request.max.bytes`) before anything is
//! allocated, so a hostile length cannot exhaust memory.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("connection closed mid-frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut size_buf = [0u8; 4];
    match reader.read_exact(&mut size_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    if size as usize > max_size {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max: max_size,
        });
    }
    // Read straight into uninitialised capacity (no zero-fill of a buffer about to be
    // overwritten: that memset showed up in produce profiles).
    let size = size as usize;
    let mut body = BytesMut::with_capacity(size);
    while body.len() < size {
        let want = size - body.len();
        let n = reader.read_buf(&mut (&mut body).limit(want)).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_bounds_their_size() {
        let mut input: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 1];
        let f = read_frame(&mut input, 10).await.unwrap().unwrap();
        assert_eq!(&f[..], &[7, 8]);
        assert!(matches!(
            read_frame(&mut input, 10).await,
            Err(FrameError::Truncated)
        ));

        let mut big: &[u8] = &[0x7f, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut big, 1024).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut neg: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut neg, 1024).await,
            Err(FrameError::Negative(-1))
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 10).await.unwrap().is_none());
    }
}
