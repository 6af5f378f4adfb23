//! Kafka framing: every request and response is a 4-byte big-endian size followed by that
//! many bytes. The size is bounded (`socket.request.max.bytes`) before anything is
//! allocated, so a hostile length cannot exhaust memory.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::timeout;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("connection closed mid-frame")]
    Truncated,
    #[error("nothing received for {0:?} (connections.max.idle.ms)")]
    Idle(Duration),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The first allocation for a frame's body. A frame header may claim up to
/// `socket.request.max.bytes`; memory follows the bytes that actually arrive, doubling,
/// so a peer that announces 100 MB and trickles a byte a second costs what it sent.
const INITIAL_FRAME_CAPACITY: usize = 64 * 1024;

/// Reads one frame. `Ok(None)` is a clean end of stream between frames. Every read must
/// make progress within `idle` (Kafka's `connections.max.idle.ms`: a connection with
/// nothing to read or write for that long is closed) or it fails with [`FrameError::Idle`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
    idle: Duration,
) -> Result<Option<Bytes>, FrameError> {
    match read_frame_size(reader, max_size, idle).await? {
        None => Ok(None),
        Some(size) => read_frame_body(reader, size, idle).await.map(Some),
    }
}

/// Reads a frame's 4-byte size, bounded by `max_size`. `Ok(None)` is a clean end of
/// stream. Split from [`read_frame_body`] so the caller can reserve memory for the body
/// (`queued.max.request.bytes`) before reading it.
pub async fn read_frame_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
    idle: Duration,
) -> Result<Option<usize>, FrameError> {
    let mut size_buf = [0u8; 4];
    match timeout(idle, reader.read_exact(&mut size_buf)).await {
        Err(_) => return Err(FrameError::Idle(idle)),
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e.into()),
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
    Ok(Some(size as usize))
}

/// Reads a frame body of `size` bytes (see [`INITIAL_FRAME_CAPACITY`] for how memory
/// grows), each read making progress within `idle`.
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
    idle: Duration,
) -> Result<Bytes, FrameError> {
    // Read straight into uninitialised capacity (no zero-fill of a buffer about to be
    // overwritten: that memset showed up in produce profiles).
    let mut body = BytesMut::with_capacity(size.min(INITIAL_FRAME_CAPACITY));
    while body.len() < size {
        if body.len() == body.capacity() {
            body.reserve((size - body.len()).min(body.len()));
        }
        let want = (size - body.len()).min(body.capacity() - body.len());
        let mut window = (&mut body).limit(want);
        let n = match timeout(idle, reader.read_buf(&mut window)).await {
            Err(_) => return Err(FrameError::Idle(idle)),
            Ok(n) => n?,
        };
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn memory_follows_the_bytes_that_arrive_not_the_claim() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        use tokio::io::AsyncWriteExt;
        // Claim 100 MB, send 10 bytes, then stall: the reader holds 64 KiB at most and
        // gives up after the idle period.
        client
            .write_all(&100_000_000i32.to_be_bytes())
            .await
            .unwrap();
        client.write_all(&[7; 10]).await.unwrap();
        let started = tokio::time::Instant::now();
        let r = read_frame(&mut server, 100 << 20, Duration::from_millis(200)).await;
        assert!(matches!(r, Err(FrameError::Idle(_))), "{r:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));

        // A large frame that does arrive is read whole, across many growth steps.
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let sent = payload.clone();
        tokio::spawn(async move {
            client
                .write_all(&(sent.len() as i32).to_be_bytes())
                .await
                .unwrap();
            client.write_all(&sent).await.unwrap();
        });
        let f = read_frame(&mut server, 100 << 20, IDLE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&f[..], &payload[..]);
    }

    #[tokio::test]
    async fn reads_frames_and_bounds_their_size() {
        let mut input: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 1];
        let f = read_frame(&mut input, 10, IDLE).await.unwrap().unwrap();
        assert_eq!(&f[..], &[7, 8]);
        assert!(matches!(
            read_frame(&mut input, 10, IDLE).await,
            Err(FrameError::Truncated)
        ));

        let mut big: &[u8] = &[0x7f, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut big, 1024, IDLE).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut neg: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut neg, 1024, IDLE).await,
            Err(FrameError::Negative(-1))
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 10, IDLE).await.unwrap().is_none());
    }
}
