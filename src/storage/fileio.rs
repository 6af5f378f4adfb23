//! Positioned file I/O the log needs beyond `std`: reading into uninitialised memory (the
//! fetch path reads megabytes that would otherwise be zero-filled first) and vectored
//! positioned writes (a leader append writes patched header copies between the request's
//! untouched record bytes). The only `unsafe` in storage, kept here and small.

/// Whether a read may wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// An ordinary `pread`: for I/O threads, which may block.
    Blocking,
    /// `preadv2(RWF_NOWAIT)`: only what the page cache holds, else `WouldBlock` at once.
    /// A fetch first reads this way on its async worker (almost always a hit: consumers
    /// and followers read what was just written) and goes to an I/O thread only on a miss.
    NoWait,
}

/// `pread` of exactly `len` bytes at `pos` into a fresh buffer, without initialising it
/// first. Short reads are retried; end of file before `len` bytes is `UnexpectedEof`.
pub fn read_exact_at_uninit(
    file: &std::fs::File,
    pos: u64,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    read_exact_at_uninit_mode(file, pos, len, ReadMode::Blocking)
}

/// [`read_exact_at_uninit`] in the given mode. In `NoWait` mode any byte missing from the
/// page cache (or a file system without `RWF_NOWAIT`) is `ErrorKind::WouldBlock`.
pub fn read_exact_at_uninit_mode(
    file: &std::fs::File,
    pos: u64,
    len: usize,
    mode: ReadMode,
) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        let offset = libc::off_t::try_from(pos + done as u64).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "file offset overflows off_t",
            )
        })?;
        // SAFETY: the destination is the vector's spare capacity from `done` to `len`
        // (allocated above, not aliased), and pread writes at most `len - done` bytes there.
        let n = unsafe {
            let dest = buf.as_mut_ptr().add(done).cast::<libc::c_void>();
            match mode {
                ReadMode::Blocking => libc::pread(file.as_raw_fd(), dest, len - done, offset),
                ReadMode::NoWait => {
                    let iov = libc::iovec {
                        iov_base: dest,
                        iov_len: len - done,
                    };
                    libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT)
                }
            }
        };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                if mode == ReadMode::NoWait
                    && matches!(
                        err.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                    )
                {
                    // No RWF_NOWAIT here (old kernel, some file systems): let an I/O
                    // thread do it.
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                return Err(err);
            }
            n => done += n as usize,
        }
    }
    // SAFETY: pread initialised exactly the first `len` bytes (the loop ends at `done == len`).
    unsafe { buf.set_len(len) };
    Ok(buf)
}

/// `pwritev` of every slice at `pos`, retrying short writes.
pub fn write_all_vectored_at(
    file: &std::fs::File,
    mut slices: &mut [std::io::IoSlice<'_>],
    mut pos: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // Linux accepts at most IOV_MAX (1024) iovecs per call.
    const IOV_MAX: usize = 1024;
    std::io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n_iov = slices.len().min(IOV_MAX);
        let offset = libc::off_t::try_from(pos).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "file offset overflows off_t",
            )
        })?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (documented by std);
        // the slices borrow live buffers for the duration of the call.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast::<libc::iovec>(),
                n_iov as libc::c_int,
                offset,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        pos += n as u64;
        std::io::IoSlice::advance_slices(&mut slices, n as usize);
    }
    Ok(())
}

/// Name of the marker file of the fsync fault hook (see [`sync`]).
pub const FAIL_FSYNC_MARKER: &str = "gregor-fail-fsync";
/// Environment variable enabling the storage fault hooks (tests only).
pub const FAULTS_ENV: &str = "GREGOR_TEST_STORAGE_FAULTS";

fn faults_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(FAULTS_ENV).is_some_and(|v| v == "1"))
}

/// Test-only fault hook, compiled into every build so `cargo test --release` exercises
/// the real binary: when the process runs with `GREGOR_TEST_STORAGE_FAULTS=1` and a file
/// named [`FAIL_FSYNC_MARKER`] exists in the directory of `path` or in one of its two
/// parents (the partition directory or the log directory), the fsync fails with EIO, as
/// a failing disk's would. Without the variable this costs one cached bool check.
fn injected_fsync_failure(path: &std::path::Path) -> Option<std::io::Error> {
    if !faults_enabled() {
        return None;
    }
    let mut dir = path.parent();
    for _ in 0..3 {
        let d = dir?;
        if d.join(FAIL_FSYNC_MARKER).exists() {
            return Some(std::io::Error::from_raw_os_error(libc::EIO));
        }
        dir = d.parent();
    }
    None
}

/// `fsync` (`data_only`: `fdatasync`) of `file`, which lives at `path`; every fsync of the
/// storage layer goes through here (so the fault hook sees them all).
pub fn sync(file: &std::fs::File, path: &std::path::Path, data_only: bool) -> std::io::Result<()> {
    if let Some(e) = injected_fsync_failure(path) {
        return Err(e);
    }
    if data_only {
        file.sync_data()
    } else {
        file.sync_all()
    }
}

/// Fills `buf` from `pos` in the given mode (see [`ReadMode`]); end of file first is
/// `UnexpectedEof`.
pub fn read_exact_at_mode(
    file: &std::fs::File,
    buf: &mut [u8],
    pos: u64,
    mode: ReadMode,
) -> std::io::Result<()> {
    match mode {
        ReadMode::Blocking => std::os::unix::fs::FileExt::read_exact_at(file, buf, pos),
        ReadMode::NoWait => {
            let bytes = read_exact_at_uninit_mode(file, pos, buf.len(), mode)?;
            buf.copy_from_slice(&bytes);
            Ok(())
        }
    }
}
