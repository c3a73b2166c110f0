//! Pipe writes without the kernel's copy: the bytes are copied into a ring
//! of pages this process owns and handed to the pipe with `vmsplice(2)`,
//! which makes the pipe point at those pages instead of copying them.
//!
//! A page handed over that way stays the pipe's until a reader has taken its
//! bytes: writing to it earlier would change a message already sent. So a
//! range of the ring is reused only once `FIONREAD` (the bytes still in the
//! pipe) proves that every byte written through it has left the pipe: the
//! pipe is first in, first out, so if fewer bytes are in it than this ring's
//! owner wrote after a range, that range was read. Bytes other processes
//! wrote into the same pipe only make `FIONREAD` larger, which makes the
//! test stricter, never looser. When the next range is not free yet, the
//! bytes go out with a plain `write` instead: the ring never waits, and a
//! send blocks only where a `write` would (a full pipe).
//!
//! "Left the pipe" is "read" only for readers that copy (`read`, `recv`,
//! Python's `os.read`): a reader that moves the pages on with `splice(2)` or
//! duplicates them with `tee(2)` keeps them referenced after they left the
//! pipe. Callers must only use a ring on pipes whose read end is read by
//! copying.
//!
//! The ring is `mmap`ed, never handed to the allocator: unmapping it (on
//! drop, or at exit) leaves the pages to the pipe that still refers to them,
//! unchanged, and nothing can ever map or write them again. After `fork`,
//! parent and child each have their own copy-on-write view; either one's
//! test is still sound, as it counts only bytes that it wrote itself.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use super::signal::without_sigpipe;
use super::{cvt, cvt_size, retry};

const PAGE: usize = 4096;

/// A ring of pages that pipe writes go through with `vmsplice` (see the
/// module docs for when a range is reused).
#[derive(Debug)]
pub struct SpliceRing {
    base: NonNull<u8>,
    len: usize,
    /// Where the next frame starts: always at a page boundary.
    cursor: usize,
    /// Bytes the owner wrote to the pipe through [`SpliceRing::write_all`]
    /// (through the ring or not): its own stream position.
    written: u64,
    /// Per page of the ring: `written` right after the last piece that used
    /// it went into the pipe; 0 if never used.
    page_end: Box<[u64]>,
    /// The most bytes one `vmsplice` piece takes.
    piece: usize,
    /// False once `vmsplice` refused the fd (not a pipe): plain writes only.
    usable: bool,
    spliced: u64,
    copied: u64,
}

// SAFETY: the ring owns its mapping outright (nothing else holds `base`);
// moving it to another thread moves that ownership, like a Vec<u8>.
unsafe impl Send for SpliceRing {}

impl SpliceRing {
    /// Maps a ring of `len` bytes (a multiple of the page size) written in
    /// pieces of at most `piece` bytes (a multiple of the page size, at most
    /// `len`).
    pub fn new(len: usize, piece: usize) -> io::Result<SpliceRing> {
        assert!(len > 0 && len % PAGE == 0, "ring length {len}");
        assert!(
            piece > 0 && piece % PAGE == 0 && piece <= len,
            "piece {piece}"
        );
        // SAFETY: a fresh private anonymous mapping: no fd, no address hint,
        // so it cannot overlap any memory Rust already uses.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SpliceRing {
            base: NonNull::new(ptr.cast()).expect("mmap never returns null on success"),
            len,
            cursor: 0,
            written: 0,
            page_end: vec![0; len / PAGE].into_boxed_slice(),
            piece,
            usable: true,
            spliced: 0,
            copied: 0,
        })
    }

    /// `(pieces that went through the ring, pieces written plainly)`.
    pub fn counts(&self) -> (u64, u64) {
        (self.spliced, self.copied)
    }

    /// Writes `head` then `body` to the pipe `fd`, all of it, in order:
    /// through the ring where its next range is free, else with `write`.
    /// Retries `EINTR` and short writes; `EPIPE` is returned, never raised
    /// as `SIGPIPE`. Blocking fds only (see `write_all_vectored`).
    pub fn write_all(&mut self, fd: BorrowedFd<'_>, head: &[u8], body: &[u8]) -> io::Result<()> {
        let result = without_sigpipe(|| {
            let total = head.len() + body.len();
            let mut done = 0;
            while done < total {
                let n = self.piece.min(self.len - self.cursor).min(total - done);
                if self.usable && self.is_free(fd, n) {
                    self.splice_piece(fd, head, body, done, n)?;
                } else {
                    write_range(fd, head, body, done, n)?;
                    self.written += n as u64;
                    self.copied += 1;
                }
                done += n;
            }
            Ok(())
        });
        // The next frame starts on a fresh page: a page shared by two frames
        // would take two pipe slots.
        self.cursor = self.cursor.next_multiple_of(PAGE) % self.len;
        result
    }

    /// True if the `n` bytes at the cursor may be overwritten: never used,
    /// or every byte written through them has left the pipe.
    fn is_free(&self, fd: BorrowedFd<'_>, n: usize) -> bool {
        // The last page of the range was used last (the ring is written in
        // order), so it alone decides.
        let end = self.page_end[(self.cursor + n - 1) / PAGE];
        if end == 0 {
            return true;
        }
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which points
        // at a live local.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut queued) };
        r == 0 && queued >= 0 && queued as u64 <= self.written - end
    }

    /// Copies bytes `done..done + n` of `head ++ body` to the cursor and
    /// vmsplices them. The caller checked the range is free.
    fn splice_piece(
        &mut self,
        fd: BorrowedFd<'_>,
        head: &[u8],
        body: &[u8],
        done: usize,
        n: usize,
    ) -> io::Result<()> {
        // SAFETY: `cursor + n <= len` (n was capped by `len - cursor`), so
        // `dst` is inside the mapping; no Rust reference points into the
        // mapping, and the range is free (no pipe still refers to its bytes),
        // so writing it changes nothing anyone can read. The sources are
        // caller slices, never inside the mapping.
        let dst = unsafe { self.base.as_ptr().add(self.cursor) };
        let mut at = 0;
        for part in [head, body] {
            let start = done.saturating_sub(at).min(part.len());
            let end = (done + n).saturating_sub(at).min(part.len());
            if start < end {
                // SAFETY: see above; `dst + (at + start - done)` up to
                // `dst + n` stays in the range being filled.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        part[start..].as_ptr(),
                        dst.add(at + start - done),
                        end - start,
                    )
                };
            }
            at += part.len();
        }
        let mut sent = 0;
        let result = self.splice_from(fd, dst, n, &mut sent);
        // Past every byte that went into the pipe, even after an error: the
        // pages ahead of the cursor must be those used longest ago.
        self.cursor = (self.cursor + sent) % self.len;
        match result {
            Ok(()) => {
                self.spliced += 1;
                Ok(())
            }
            // Not a pipe (or vmsplice unavailable): plain writes from now
            // on, starting with this piece.
            Err(e)
                if sent == 0
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EBADF | libc::EINVAL | libc::ENOSYS)
                    ) =>
            {
                self.usable = false;
                write_range(fd, head, body, done, n)?;
                self.written += n as u64;
                self.copied += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// vmsplices the `n` bytes at `dst` (the cursor), counting in `sent`
    /// and marking each page as it goes into the pipe.
    fn splice_from(
        &mut self,
        fd: BorrowedFd<'_>,
        dst: *mut u8,
        n: usize,
        sent: &mut usize,
    ) -> io::Result<()> {
        while *sent < n {
            let iov = libc::iovec {
                // SAFETY: `sent < n`, inside the range the caller filled.
                iov_base: unsafe { dst.add(*sent) }.cast(),
                iov_len: n - *sent,
            };
            let k = retry(|| {
                // SAFETY: the iovec describes initialized bytes of our
                // mapping, which stays mapped for the call. Without
                // SPLICE_F_GIFT the kernel only takes references to the
                // pages.
                cvt_size(unsafe { libc::vmsplice(fd.as_raw_fd(), &iov, 1, 0) })
            })?;
            if k == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "vmsplice returned 0",
                ));
            }
            *sent += k;
            self.written += k as u64;
            // The pages now in the pipe must not be reused until read.
            let first = (self.cursor + *sent - k) / PAGE;
            let last = (self.cursor + *sent - 1) / PAGE;
            for end in &mut self.page_end[first..=last] {
                *end = self.written;
            }
        }
        Ok(())
    }
}

/// Writes bytes `done..done + n` of `head ++ body` with plain `write`s.
fn write_range(
    fd: BorrowedFd<'_>,
    head: &[u8],
    body: &[u8],
    done: usize,
    n: usize,
) -> io::Result<()> {
    let mut at = 0;
    for part in [head, body] {
        let start = done.saturating_sub(at).min(part.len());
        let end = (done + n).saturating_sub(at).min(part.len());
        let mut rest = &part[start..end];
        while !rest.is_empty() {
            let k = retry(|| Ok(nix::unistd::write(fd, rest)?))?;
            if k == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
            }
            rest = &rest[k..];
        }
        at += part.len();
    }
    Ok(())
}

impl Drop for SpliceRing {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned and nothing refers
        // into the mapping from Rust. Pages a pipe still refers to stay
        // alive, unchanged, with the pipe's references.
        let _ = cvt(unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{SocketKind, pipe, read, socketpair};
    use std::os::fd::{AsFd, OwnedFd};

    fn read_exactly(fd: &OwnedFd, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let mut got = 0;
        while got < n {
            let k = read(fd.as_fd(), &mut out[got..]).unwrap();
            assert!(k > 0, "end of stream after {got} of {n} bytes");
            got += k;
        }
        out
    }

    fn fill(byte: u8, n: usize) -> Vec<u8> {
        vec![byte; n]
    }

    #[test]
    fn a_range_still_in_the_pipe_is_never_overwritten() {
        // A 4-page ring and a reader that does not read: the first four
        // pages go through the ring, the next eight (whose ring pages are
        // still in the 64 KiB pipe) are written plainly.
        let (r, w) = pipe(false).unwrap();
        let mut ring = SpliceRing::new(4 * PAGE, PAGE).unwrap();
        for i in 0..12u8 {
            ring.write_all(w.as_fd(), &[], &fill(i + 1, PAGE)).unwrap();
        }
        assert_eq!(ring.counts(), (4, 8));
        for i in 0..12u8 {
            assert_eq!(read_exactly(&r, PAGE), fill(i + 1, PAGE), "chunk {i}");
        }
        // All read: the ring is free again.
        ring.write_all(w.as_fd(), &[], &fill(13, PAGE)).unwrap();
        assert_eq!(ring.counts(), (5, 8));
        assert_eq!(read_exactly(&r, PAGE), fill(13, PAGE));
    }

    #[test]
    fn a_range_is_reused_once_the_bytes_after_it_are_all_that_is_left() {
        let (r, w) = pipe(false).unwrap();
        let mut ring = SpliceRing::new(2 * PAGE, PAGE).unwrap();
        for i in 0..2u8 {
            ring.write_all(w.as_fd(), &[], &fill(i + 1, PAGE)).unwrap();
        }
        // Page 0's bytes are read, page 1's are still in the pipe: the
        // third chunk may reuse page 0, the fourth may not reuse page 1.
        assert_eq!(read_exactly(&r, PAGE), fill(1, PAGE));
        ring.write_all(w.as_fd(), &[], &fill(3, PAGE)).unwrap();
        ring.write_all(w.as_fd(), &[], &fill(4, PAGE)).unwrap();
        assert_eq!(ring.counts(), (3, 1));
        for i in 2..=4u8 {
            assert_eq!(read_exactly(&r, PAGE), fill(i, PAGE), "chunk {i}");
        }
    }

    #[test]
    fn a_frame_larger_than_a_piece_goes_in_pieces_and_the_next_starts_on_a_page() {
        let (r, w) = pipe(false).unwrap();
        let mut ring = SpliceRing::new(8 * PAGE, PAGE).unwrap();
        let body: Vec<u8> = (0..10_000).map(|i| (i % 251) as u8).collect();
        ring.write_all(w.as_fd(), b"HEAD", &body).unwrap();
        // 10 004 bytes: pieces of 4096, 4096 and 1812.
        assert_eq!(ring.counts(), (3, 0));
        assert_eq!(ring.cursor, 3 * PAGE);
        ring.write_all(w.as_fd(), b"hd", b"tail").unwrap();
        assert_eq!(ring.counts(), (4, 0));
        assert_eq!(ring.cursor, 4 * PAGE);
        let mut want = b"HEAD".to_vec();
        want.extend_from_slice(&body);
        want.extend_from_slice(b"hdtail");
        assert_eq!(read_exactly(&r, want.len()), want);
    }

    #[test]
    fn a_piece_that_reaches_the_end_of_the_ring_wraps() {
        let (r, w) = pipe(false).unwrap();
        let mut ring = SpliceRing::new(4 * PAGE, 4 * PAGE).unwrap();
        ring.write_all(w.as_fd(), &[], &fill(1, 3 * PAGE)).unwrap();
        assert_eq!(read_exactly(&r, 3 * PAGE), fill(1, 3 * PAGE));
        // One page left before the end: the next frame is cut there.
        ring.write_all(w.as_fd(), &[], &fill(2, 2 * PAGE)).unwrap();
        assert_eq!(ring.counts(), (3, 0));
        assert_eq!(ring.cursor, PAGE);
        assert_eq!(read_exactly(&r, 2 * PAGE), fill(2, 2 * PAGE));
    }

    #[test]
    fn bytes_in_flight_survive_the_ring_being_unmapped_and_the_memory_reused() {
        let (r, w) = pipe(false).unwrap();
        let mut ring = SpliceRing::new(4 * PAGE, PAGE).unwrap();
        for i in 0..4u8 {
            ring.write_all(w.as_fd(), &[], &fill(i + 1, PAGE)).unwrap();
        }
        drop(ring);
        // New mappings, written all over: the pipe's pages are not theirs.
        let mut other = SpliceRing::new(4 * PAGE, PAGE).unwrap();
        let (_r2, w2) = pipe(false).unwrap();
        for _ in 0..4 {
            other.write_all(w2.as_fd(), &[], &fill(0xEE, PAGE)).unwrap();
        }
        for i in 0..4u8 {
            assert_eq!(read_exactly(&r, PAGE), fill(i + 1, PAGE), "chunk {i}");
        }
    }

    #[test]
    fn an_fd_that_is_not_a_pipe_is_written_plainly() {
        let (a, b) = socketpair(SocketKind::Stream).unwrap();
        let mut ring = SpliceRing::new(4 * PAGE, PAGE).unwrap();
        ring.write_all(a.as_fd(), b"HD", &fill(7, 2 * PAGE))
            .unwrap();
        ring.write_all(a.as_fd(), b"HD", &fill(8, 10)).unwrap();
        // The first piece found out; every later one was plain.
        assert_eq!(ring.counts(), (0, 4));
        let mut want = b"HD".to_vec();
        want.extend(fill(7, 2 * PAGE));
        want.extend_from_slice(b"HD");
        want.extend(fill(8, 10));
        assert_eq!(read_exactly(&b, want.len()), want);
    }

    #[test]
    fn a_pipe_without_a_reader_is_epipe() {
        let (r, w) = pipe(false).unwrap();
        drop(r);
        let mut ring = SpliceRing::new(4 * PAGE, PAGE).unwrap();
        let e = ring
            .write_all(w.as_fd(), b"HD", &fill(1, PAGE))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
        assert_eq!(ring.counts(), (0, 0));
    }
}
