//! Opening a FIFO by path safely: never through a symlink, only a FIFO,
//! only a private one unless shared FIFOs are allowed, waiting for the other
//! side as [`Wait`] says.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{FifoOptions, Wait};
use crate::error::{Error, Result};
use crate::sys::fifo::{self as sysfifo, Access, Kind, Probe};
use crate::sys::{self, PollFlags};

// Every open here is O_NONBLOCK | O_NOFOLLOW, so it cannot block before the
// checks and never follows a symlink as the last component; the checks are
// fstat on the opened fd (not a stat of the path beforehand, which could
// change between the check and the open), and O_NONBLOCK is cleared once
// they pass. tests/fifo.rs races entry swaps against it.

// The kernel has no "open with a timeout", so a waiting open polls the
// kernel's own answer with a back-off from MIN_BACKOFF to MAX_BACKOFF.
const MIN_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_millis(10);

/// The error for a path that is not a FIFO, from what `lstat` says it is.
fn not_a_fifo(path: &Path, kind: Kind) -> Error {
    match kind {
        Kind::Symlink => Error::Symlink { path: path.into() },
        _ => Error::NotAFifo { path: path.into() },
    }
}

/// Maps a failed open of `path`.
fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(p) if std::fs::metadata(p).is_err() => {
                    Error::NoSuchDirectory { path: path.into() }
                }
                _ => Error::NotFound { path: path.into() },
            }
        }
        // O_NOFOLLOW: the last component is a symlink (dangling or not).
        // lstat resolves the same directories: if it succeeds, the ELOOP
        // came from the last component, a symlink at the time of the open
        // (even if someone has swapped it for something else since).
        Some(libc::ELOOP) => match sysfifo::lstat(path) {
            Ok(_) => Error::Symlink { path: path.into() },
            Err(_) => Error::path_io("open", path, e),
        },
        Some(libc::EISDIR) => Error::NotAFifo { path: path.into() },
        // A socket, or a device without a driver.
        Some(libc::ENXIO) => match sysfifo::lstat(path) {
            Ok(st) if st.kind != Kind::Fifo => not_a_fifo(path, st.kind),
            _ => Error::path_io("open", path, e),
        },
        _ => Error::path_io("open", path, e),
    }
}

/// Refuses anything but a FIFO, and (unless `allow_shared`) a FIFO another
/// user could reach, judging the opened fd.
fn check_fifo(fd: BorrowedFd<'_>, path: &Path, opts: &FifoOptions) -> Result<(u64, u64)> {
    // Decided by fstat on the opened fd, not by an access check, which root
    // would pass for any file.
    let st = sysfifo::fstat(fd).map_err(|e| Error::path_io("stat", path, e))?;
    if st.kind != Kind::Fifo {
        return Err(not_a_fifo(path, st.kind));
    }
    if !opts.allow_shared {
        let reason = if st.uid != sysfifo::geteuid() {
            Some("owned by another user")
        } else if st.mode & SHARED_BITS != 0 {
            Some("open to other users (group or others may read or write it)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::SharedFifo {
                path: path.into(),
                owner: st.uid,
                mode: st.mode,
                reason,
            });
        }
    }
    Ok(st.id)
}

/// Read and write permission for group and others.
const SHARED_BITS: u32 = 0o066;
/// Write permission for others.
const OTHERS_WRITE: u32 = 0o002;
/// The sticky bit: in a directory, only an entry's owner (or the
/// directory's) may remove or rename it.
const STICKY: u32 = 0o1000;

/// Refuses (unless `allow_shared`) a path whose directory every user may
/// write to without the sticky bit: anyone could swap the entry.
pub(super) fn check_dir(path: &Path, opts: &FifoOptions) -> Result<()> {
    if opts.allow_shared {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // A directory we cannot stat is left to the open to report.
    if let Ok(st) = sysfifo::stat(dir) {
        if st.kind == Kind::Directory && st.mode & OTHERS_WRITE != 0 && st.mode & STICKY == 0 {
            return Err(Error::InsecureDirectory {
                path: path.into(),
                dir: dir.into(),
                owner: st.uid,
                mode: st.mode,
            });
        }
    }
    Ok(())
}

pub(super) fn clear_nonblocking(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    sys::set_nonblocking(fd, false).map_err(|e| Error::path_io("configure", path, e))
}

// A writer retries its O_NONBLOCK open while it fails with ENXIO (no
// reader); a failed open creates no fd, so a timeout leaves nothing open.
pub(super) fn open_write_end(path: &Path, opts: &FifoOptions) -> Result<(OwnedFd, (u64, u64))> {
    check_dir(path, opts)?;
    let wait = opts.wait;
    let deadline = wait.deadline();
    let mut backoff = MIN_BACKOFF;
    loop {
        match sysfifo::open_nonblocking(path, Access::Write) {
            Ok(fd) => {
                let id = check_fifo(fd.as_fd(), path, opts)?;
                clear_nonblocking(fd.as_fd(), path)?;
                return Ok((fd, id));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                // A FIFO without a reader, or a socket or a device without a
                // driver: tell them apart before calling it NoReader.
                match sysfifo::lstat(path) {
                    Ok(st) if st.kind == Kind::Fifo => {}
                    Ok(st) => return Err(not_a_fifo(path, st.kind)),
                    Err(e) => return Err(open_error(path, e)),
                }
                let now = Instant::now();
                match (wait, deadline) {
                    (Wait::NonBlocking, _) => return Err(Error::NoReader { path: path.into() }),
                    (_, Some(d)) if now >= d => return Err(Error::Timeout),
                    (_, Some(d)) => std::thread::sleep(backoff.min(d - now)),
                    (_, None) => std::thread::sleep(backoff),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(open_error(path, e)),
        }
    }
}

pub(super) fn open_read_end(path: &Path, opts: &FifoOptions) -> Result<(OwnedFd, (u64, u64))> {
    check_dir(path, opts)?;
    let wait = opts.wait;
    let fd = sysfifo::open_nonblocking(path, Access::Read).map_err(|e| open_error(path, e))?;
    let id = check_fifo(fd.as_fd(), path, opts)?;
    if wait != Wait::NonBlocking {
        // On a timeout `fd` is dropped here: nothing stays open.
        wait_for_writer(fd.as_fd(), wait.deadline())?;
    }
    clear_nonblocking(fd.as_fd(), path)?;
    // Every read of a FIFO updates its inode's access time (a FIFO lives in
    // a real file system; an anonymous pipe's inode does not count), about
    // 4% of a 64-byte message's cost. The owner may switch that off; anyone
    // else keeps it, harmlessly.
    let _ = sys::set_noatime(fd.as_fd());
    Ok((fd, id))
}

/// Waits until a writer has the FIFO behind the read end `fd` open (or has
/// written, or has come and gone since we opened), or `deadline` passes.
//
// A reader's O_NONBLOCK open never blocks; then it waits here. poll wakes it
// when a writer writes, or writes nothing and leaves (POLLHUP), and between
// polls a tee(SPLICE_F_NONBLOCK) of one byte into a scratch pipe, which
// copies rather than consumes, tells a silent writer (EAGAIN) from no writer
// at all (0). POLLHUP alone could not: Linux reports it only once a writer
// has come *and gone*.
fn wait_for_writer(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    let (_scratch_r, scratch_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let mut backoff = MIN_BACKOFF;
    loop {
        match sysfifo::probe_writer(fd, scratch_w.as_fd()).map_err(|e| Error::io("tee", e))? {
            Probe::Data | Probe::Writer => return Ok(()),
            Probe::Nobody => {}
        }
        let now = Instant::now();
        let slice = now + backoff;
        let until = match deadline {
            Some(d) if now >= d => return Err(Error::Timeout),
            Some(d) => d.min(slice),
            None => slice,
        };
        let revents =
            sys::poll_one(fd, PollFlags::POLLIN, Some(until)).map_err(|e| Error::io("poll", e))?;
        if revents.is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP)) {
            return Ok(());
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_named_as_one_and_other_kinds_are_not_fifos() {
        let path = Path::new("/tmp/x");
        assert!(matches!(
            not_a_fifo(path, Kind::Symlink),
            Error::Symlink { path: p } if p == path
        ));
        assert!(matches!(
            not_a_fifo(path, Kind::Directory),
            Error::NotAFifo { path: p } if p == path
        ));
    }

    /// A bare file name's directory is the working directory: a
    /// world-writable one without the sticky bit is refused, named ".".
    /// (In a child, which may change its working directory freely.)
    #[test]
    fn a_bare_name_is_judged_by_the_working_directory() {
        use std::os::unix::fs::PermissionsExt;
        let _serial = crate::harness::fork::serial();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let work = dir.path().to_path_buf();
        let child = crate::harness::fork::spawn(move || {
            std::env::set_current_dir(&work).unwrap();
            match check_dir(Path::new("f"), &FifoOptions::new()) {
                Err(Error::InsecureDirectory { dir, mode, .. })
                    if dir == Path::new(".") && mode & 0o7777 == 0o777 =>
                {
                    b"refused".to_vec()
                }
                other => format!("{other:?}").into_bytes(),
            }
        })
        .unwrap();
        let report = child.wait(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(String::from_utf8_lossy(&report.expect_success()), "refused");
    }

    #[test]
    fn enxio_on_a_fifo_stays_the_open_error_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        sysfifo::mkfifo(&path, 0o600).unwrap();
        let e = open_error(&path, io::Error::from_raw_os_error(libc::ENXIO));
        assert!(
            matches!(&e, Error::PathIo { context: "open", path: p, .. } if *p == path),
            "{e:?}"
        );
    }
}
