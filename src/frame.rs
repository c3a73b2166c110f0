//! The wire format: a length header, then the payload. Byte-compatible with
//! CPython's `multiprocessing.connection.Connection.send_bytes`/`recv_bytes`,
//! so a Rust process and a Python process can talk over one pipe or socket.
//!
//! ```text
//! len <= 2^31-1:  [ len: i32 big-endian ][ payload: len bytes ]
//! len >  2^31-1:  [ -1:  i32 big-endian ][ len: u64 big-endian ][ payload ]
//! ```
//!
//! Guarantees of this module:
//! - **Sender**: a message over the maximum is refused with
//!   [`Error::TooLarge`] before a byte is written. Header and payload go out
//!   in one `writev` where the kernel takes them whole, so a frame of at most
//!   `PIPE_BUF` bytes in total is one atomic pipe write.
//! - **Receiver**: a header over the maximum is [`Error::TooLarge`]; a
//!   negative length other than -1 is [`Error::Corrupt`]; a stream that ends
//!   inside a frame is [`Error::Truncated`], one that ends exactly at a
//!   boundary is [`Error::Closed`]. The payload buffer grows as bytes arrive,
//!   never more than one [`CHUNK`] ahead of them, so a lying header cannot
//!   make the receiver allocate what was never sent.
//! - After a framing error the stream cannot be resynchronised: the decoder
//!   is *poisoned* and every later receive returns [`Error::Corrupt`].
//! - A receive that times out keeps what it has read; the next receive goes on
//!   from there, so timeouts never lose or split a message.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::sys::{self, Readiness, WriteKind};

/// Bytes in the short header.
pub const HEADER_LEN: usize = 4;
/// Bytes in the long header (`-1` then a `u64` length).
pub const LONG_HEADER_LEN: usize = 12;
/// Longest payload the short header can describe: `2^31 - 1`.
pub const SHORT_MAX: u64 = i32::MAX as u64;
/// How far ahead of the bytes that arrived the receiver may allocate.
pub const CHUNK: usize = 1 << 20;
/// The read-ahead buffer: one `read` can bring in many small frames.
pub const READ_AHEAD: usize = 64 * 1024;
/// No limit: the default maximum message size, as in Python.
pub const UNLIMITED: u64 = u64::MAX;

/// Encodes the header for a payload of `len` bytes into `out`; returns how
/// many bytes of `out` it used (4 or 12).
pub fn encode_header(len: u64, out: &mut [u8; LONG_HEADER_LEN]) -> usize {
    if len <= SHORT_MAX {
        out[..4].copy_from_slice(&(len as i32).to_be_bytes());
        HEADER_LEN
    } else {
        out[..4].copy_from_slice(&(-1i32).to_be_bytes());
        out[4..].copy_from_slice(&len.to_be_bytes());
        LONG_HEADER_LEN
    }
}

/// Encodes one whole frame into a new vector (for tests and for peers that
/// want bytes rather than a write).
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; LONG_HEADER_LEN];
    let n = encode_header(payload.len() as u64, &mut header);
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&header[..n]);
    out.extend_from_slice(payload);
    out
}

/// Checks `len` against `max` (the sender's side of the limit).
pub fn check_len(len: u64, max: u64) -> Result<()> {
    if len > max {
        Err(Error::TooLarge { len, max })
    } else {
        Ok(())
    }
}

/// Writes one frame to `fd`, whole, after checking it against `max`. A
/// frame of at least [`GROW_AT`] bytes on a pipe first raises the pipe's
/// capacity (see [`crate::pipe`](mod@crate::pipe)'s docs).
pub fn write_frame(fd: BorrowedFd<'_>, kind: WriteKind, payload: &[u8], max: u64) -> Result<()> {
    check_len(payload.len() as u64, max)?;
    let mut header = [0u8; LONG_HEADER_LEN];
    let n = encode_header(payload.len() as u64, &mut header);
    if kind == WriteKind::Pipe && payload.len() >= GROW_AT {
        grow_pipe(fd);
    }
    if payload.len() <= COALESCE {
        // A small frame is copied into one stack buffer and written with a
        // plain one-slice write: cheaper for the kernel than a two-slice
        // writev (measured: 30 ns less per message, which with the cached
        // SIGPIPE disposition, see sys::without_sigpipe, took 64-byte
        // `pipe()` throughput from 0.39x to 0.55-0.75x the raw pipe and the
        // same-core round trip from 1.27x to 1.06x), same bytes, same
        // atomicity (one write of at most PIPE_BUF bytes). The buffer is
        // not zeroed first (see sys::write_joined).
        return sys::write_joined(fd, kind, &header[..n], payload).map_err(write_error);
    }
    sys::write_all_vectored(fd, kind, &[&header[..n], payload]).map_err(write_error)
}

// Large payloads: where the time goes and what was tried. A plain write
// copies the payload into freshly allocated pipe pages and the reader copies
// it out again; at 1 MiB that ran at 4.6-4.9 GB/s with a 1 MiB pipe against
// 7.6-8.6 GB/s for a socketpair. Measured with a standalone sender and
// reader (1 MiB messages, 1 MiB pipe, two runs each, same lock session):
// - writing in 64-256 KiB pieces, reading in 64 KiB-1 MiB, a 256 KiB or
//   1 MiB pipe: 3.9-5.0 GB/s, no better than one write;
// - vmsplice straight from the caller's buffer: 19-22 GB/s, but the pipe
//   refers to the caller's pages until they are read, and `send_bytes`
//   gives the buffer back at once: a caller that reuses it would change a
//   message already sent (tests/pipe.rs shows it: both large-message tests
//   fail that way). Not possible behind `&[u8]`;
// - the same, then waiting until FIONREAD is 0: 7-15 GB/s, but a send would
//   then block until the reader took the message, which a program that
//   sends before it receives would deadlock on; not kept;
// - fresh pages per message (mmap, vmsplice, munmap: SPLICE_F_GIFT's "never
//   touch it again"): 2.0-2.6 GB/s, 0.4-0.7x the plain write (zeroing and
//   faulting in every page);
// - a ring owned by the sender, reused once FIONREAD proves a range read
//   (sys::SpliceRing): 2 x 1 MiB slots 13-15 GB/s; 8 x 256 KiB: 2.9-3.4x the
//   plain write at 1 MiB, 1.6-2.1x at 64 KiB, 2.3-3.4x at 16 MiB. Kept, as
//   one 2 MiB ring cut in pieces of at most 256 KiB.
// The ring is safe for readers that copy; a reader that splice()s or tee()s
// the pages on would still hold them after FIONREAD lets the ring reuse
// them, hence `Sender::set_zero_copy` (on only for `pipe()`'s sender, whose
// reader is ours or a program reading the fd) and its docs.
/// Writes one frame like [`write_frame`] (to a pipe), with the payload
/// going through `ring` (made on first use; see [`sys::SpliceRing`]) rather
/// than being copied by the kernel. Falls back to [`write_frame`] if the ring
/// cannot be mapped.
pub(crate) fn write_frame_spliced(
    fd: BorrowedFd<'_>,
    ring: &mut Option<sys::SpliceRing>,
    payload: &[u8],
    max: u64,
) -> Result<()> {
    if ring.is_none() {
        match sys::SpliceRing::new(RING_LEN, RING_PIECE) {
            Ok(r) => *ring = Some(r),
            Err(_) => return write_frame(fd, WriteKind::Pipe, payload, max),
        }
    }
    check_len(payload.len() as u64, max)?;
    let mut header = [0u8; LONG_HEADER_LEN];
    let n = encode_header(payload.len() as u64, &mut header);
    if payload.len() >= GROW_AT {
        grow_pipe(fd);
    }
    let ring = ring.as_mut().expect("made above");
    ring.write_all(fd, &header[..n], payload)
        .map_err(write_error)
}

/// Frames of at least this many payload bytes sent by a [`pipe()`](crate::pipe())
/// sender go through its splice ring.
pub const SPLICE_AT: usize = 64 * 1024;
/// The splice ring's size: twice [`LARGE_CAPACITY`], so that a pipe of that
/// capacity can never hold all of it and the ring's next range is free
/// whenever the reader keeps up.
const RING_LEN: usize = 2 * LARGE_CAPACITY;
/// The most bytes one `vmsplice` takes: the reader can start on a piece
/// while the sender copies the next.
const RING_PIECE: usize = 256 * 1024;

// The capacity is raised on the first large frame rather than at creation
// because a 1 MiB pipe is charged to the user's pipe budget at once. It
// measured 2.5-3.5x the default pipe from 64 KiB up (Fifo from 0.42x to
// 0.95-1.06x `pipe()` there); checking the capacity first (F_GETPIPE_SZ)
// costs ~1 % of such a send. Raising it from 4 KiB frames on instead
// measured 0.89x at 4 KiB and 0.95x at 16 KiB, although a raw 1 MiB pipe
// runs 1.3x a raw 64 KiB one at 4 KiB.
/// Frames of at least this many payload bytes, sent on a pipe or FIFO,
/// raise its capacity to [`LARGE_CAPACITY`] (see [`crate::pipe`](mod@crate::pipe)'s docs).
pub const GROW_AT: usize = 64 * 1024;
/// The capacity a pipe carrying large frames is raised to: the most an
/// unprivileged process may set by default (`/proc/sys/fs/pipe-max-size`).
pub const LARGE_CAPACITY: usize = 1 << 20;

/// Raises the capacity of the pipe behind `fd` to [`LARGE_CAPACITY`] if it
/// is smaller; keeps what it has if the kernel refuses (over
/// `pipe-max-size`, over the user's pipe budget, or not a pipe at all).
#[cold]
fn grow_pipe(fd: BorrowedFd<'_>) {
    if let Ok(cap) = sys::pipe_capacity(fd) {
        if cap < LARGE_CAPACITY {
            let _ = sys::set_pipe_capacity(fd, LARGE_CAPACITY);
        }
    }
}

/// Frames with at most this many payload bytes are sent from one stack
/// buffer rather than as header and payload slices.
const COALESCE: usize = sys::JOINED_MAX - HEADER_LEN;

/// Maps a write error: a reader that is gone is [`Error::Closed`].
pub(crate) fn write_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EPIPE) | Some(libc::ECONNRESET) => Error::Closed,
        _ => Error::io("write", e),
    }
}

/// Where a [`Decoder`] gets its bytes.
pub trait Source {
    /// Appends at most `max` (> 0) bytes to `buf`; `Ok(0)` is end of stream.
    fn read_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize>;

    /// Reads at most `buf.len()` (> 0) bytes into `buf`; `Ok(0)` is end of
    /// stream. Used to read a large message straight into a caller's
    /// buffer; the default goes through [`read_append`](Self::read_append).
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tmp = Vec::new();
        let n = self.read_append(&mut tmp, buf.len())?;
        buf[..n].copy_from_slice(&tmp);
        Ok(n)
    }

    /// True if [`read_split`](Self::read_split) reads into both buffers in
    /// one call; the decoder only uses it then.
    const READS_SPLIT: bool = false;

    /// Reads at most `head.len() + rest.len()` (> 0) bytes, filling `head`
    /// first, then `rest`; returns how many; `Ok(0)` is end of stream. The
    /// default reads into `head` only.
    fn read_split(&mut self, head: &mut [u8], rest: &mut [u8]) -> io::Result<usize> {
        let _ = rest;
        self.read_into(head)
    }

    /// Waits until a read would not block, or `deadline` passes
    /// (`Ok(false)`). Sources that cannot block return `Ok(true)`.
    fn wait_readable(&mut self, deadline: Instant) -> io::Result<bool> {
        let _ = deadline;
        Ok(true)
    }
}

/// A blocking fd as a [`Source`].
#[derive(Debug, Clone, Copy)]
pub struct FdSource<'a>(pub BorrowedFd<'a>);

impl Source for FdSource<'_> {
    fn read_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        match sys::read_append(self.0, buf, max) {
            // A socket whose peer died with unread data resets; that is
            // end of stream to us.
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => Ok(0),
            other => other,
        }
    }

    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match sys::read(self.0, buf) {
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => Ok(0),
            other => other,
        }
    }

    const READS_SPLIT: bool = true;

    fn read_split(&mut self, head: &mut [u8], rest: &mut [u8]) -> io::Result<usize> {
        match sys::read_split(self.0, head, rest) {
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => Ok(0),
            other => other,
        }
    }

    fn wait_readable(&mut self, deadline: Instant) -> io::Result<bool> {
        Ok(sys::wait_readable(self.0, Some(deadline))? == Readiness::Ready)
    }
}

/// Any [`io::Read`] as a [`Source`] (for decoding bytes in memory).
#[derive(Debug)]
pub struct ReadSource<R>(pub R);

impl<R: io::Read> Source for ReadSource<R> {
    fn read_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let start = buf.len();
        buf.resize(start + max, 0);
        let r = loop {
            match self.0.read(&mut buf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        buf.truncate(start + *r.as_ref().unwrap_or(&0));
        r
    }

    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// One decoded message: borrowed from the read-ahead buffer when it fit
/// there, owned when it was read straight into its own allocation.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A message inside the read-ahead buffer.
    Buffered(&'a [u8]),
    /// A large message in its own buffer.
    Owned(Vec<u8>),
}

impl Frame<'_> {
    /// The message's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Frame::Buffered(s) => s,
            Frame::Owned(v) => v,
        }
    }

    /// The message as an owned vector (copies a buffered one).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Frame::Buffered(s) => s.to_vec(),
            Frame::Owned(v) => v,
        }
    }
}

/// A large message being read straight into its own buffer.
#[derive(Debug)]
struct Partial {
    len: usize,
    data: Vec<u8>,
}

/// A streaming frame decoder: keeps its place across timeouts, reads ahead
/// for small frames, and never trusts a length header with memory.
#[derive(Debug)]
pub struct Decoder {
    /// Read-ahead bytes; `buf[pos..]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    partial: Option<Partial>,
    max: u64,
    poisoned: bool,
    /// The size (header included) of the last frame received, `usize::MAX`
    /// before the first and after one too large for the read-ahead buffer:
    /// what the next read asks for when nothing is buffered (see
    /// [`Decoder::read_more`] and the fast paths of
    /// [`Decoder::recv_into`]).
    guess: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(UNLIMITED)
    }
}

impl Decoder {
    /// A decoder that refuses messages longer than `max` bytes.
    pub fn new(max: u64) -> Self {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            partial: None,
            max,
            poisoned: false,
            guess: usize::MAX,
        }
    }

    /// The maximum message size this decoder accepts.
    pub fn max_message_size(&self) -> u64 {
        self.max
    }

    /// Changes the maximum message size.
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max = max;
    }

    /// True if bytes of a next message are already buffered (a receive may
    /// still need more from the source to finish it).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.buf.len() || self.partial.is_some()
    }

    /// True if a whole message is buffered: the next receive will not read.
    pub fn has_whole_frame(&self) -> bool {
        if self.partial.is_some() {
            return false;
        }
        match parse_header(&self.buf[self.pos..]) {
            Ok(Some((hlen, len))) => (self.buf.len() - self.pos - hlen) as u64 >= len,
            _ => false,
        }
    }

    /// Receives one whole message from `src`, waiting at most until
    /// `deadline` (`None`: as long as it takes).
    pub fn recv<'a>(
        &'a mut self,
        src: &mut impl Source,
        deadline: Option<Instant>,
    ) -> Result<Frame<'a>> {
        if self.poisoned {
            return Err(Error::corrupt(
                "an earlier framing error left the stream out of step",
            ));
        }
        let result = self.recv_inner(src, deadline);
        if let Err(e) = &result {
            if matches!(
                e,
                Error::TooLarge { .. } | Error::Corrupt { .. } | Error::Truncated { .. }
            ) {
                self.poisoned = true;
            }
        }
        // Re-borrow: the frame, if any, points into self.buf.
        match result {
            Ok(Some(v)) => {
                self.guess = usize::MAX;
                Ok(Frame::Owned(v))
            }
            Ok(None) => {
                let (hlen, len) = parse_header(&self.buf[self.pos..])
                    .ok()
                    .flatten()
                    .expect("recv_inner checked a whole frame is buffered");
                let start = self.pos + hlen;
                let end = start + len as usize;
                self.pos = end;
                self.guess = end - start + hlen;
                Ok(Frame::Buffered(&self.buf[start..end]))
            }
            Err(e) => Err(e),
        }
    }

    /// Returns `Ok(None)` when a whole frame sits at `buf[pos..]` (the
    /// caller slices it out), `Ok(Some(v))` for a large frame read into `v`.
    fn recv_inner(
        &mut self,
        src: &mut impl Source,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(p) = &mut self.partial {
                while p.data.len() < p.len {
                    let remaining = p.len - p.data.len();
                    if p.data.capacity() == p.data.len() {
                        p.data.reserve_exact(remaining.min(CHUNK));
                    }
                    let room = (p.data.capacity() - p.data.len()).min(remaining);
                    let got = p.data.len() as u64;
                    let expected = p.len as u64;
                    let n = read_some(src, &mut p.data, room, deadline)?;
                    if n == 0 {
                        return Err(Error::Truncated { expected, got });
                    }
                }
                let p = self.partial.take().expect("checked above");
                return Ok(Some(p.data));
            }

            let avail = &self.buf[self.pos..];
            match parse_header(avail)? {
                None => {}
                Some((hlen, len)) => {
                    if len > self.max {
                        return Err(Error::TooLarge { len, max: self.max });
                    }
                    let len = usize::try_from(len).map_err(|_| Error::TooLarge {
                        len,
                        max: usize::MAX as u64,
                    })?;
                    let have = avail.len() - hlen;
                    if have >= len {
                        return Ok(None);
                    }
                    // Not `hlen + len`: a long header can make that overflow.
                    if len > READ_AHEAD - hlen {
                        // Too big for the read-ahead buffer: move what we
                        // have into the message's own buffer, read the rest
                        // straight into it.
                        let mut data = Vec::with_capacity(len.min(have + CHUNK));
                        data.extend_from_slice(&avail[hlen..]);
                        self.buf.clear();
                        self.pos = 0;
                        self.partial = Some(Partial { len, data });
                        continue;
                    }
                }
            }

            self.read_more(src, deadline)?;
        }
    }

    /// Reads more bytes into the read-ahead buffer (compacting it first).
    /// End of stream is [`Error::Closed`] at a boundary, else
    /// [`Error::Truncated`].
    fn read_more(&mut self, src: &mut impl Source, deadline: Option<Instant>) -> Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() < READ_AHEAD {
            self.buf.reserve_exact(READ_AHEAD - self.buf.len());
        }
        // For small frames, ask for one frame, not for all there is. A
        // reader that takes everything empties the pipe, sleeps, and makes
        // the writer pay a wake-up for every small message; one that takes
        // a frame per read leaves the writer's next frames queued and is not
        // asleep when they come. Measured at 64 B (bench, medians of 5):
        // 0.55x -> 0.70x the raw pipe with the processes on two CPUs, 0.73x
        // -> 0.86x on one. From 4 KiB up it costs more than it saves on one
        // CPU (0.94x -> 0.63x), so larger frames keep the full read-ahead.
        // So: the rest of a small frame whose header is here, else as much
        // as the last frame took if it was small. A wrong guess costs one
        // more read (too small) or brings part of the next frame (too big):
        // never a wrong message.
        let have = self.buf.len();
        let want = match parse_header(&self.buf) {
            Ok(Some((hlen, len))) if hlen as u64 + len <= EXACT_READ_MAX as u64 => {
                hlen + len as usize - have
            }
            Ok(Some(_)) => READ_AHEAD,
            _ => next_guess(self.guess).saturating_sub(have),
        };
        let room = want.min(READ_AHEAD - have).max(1);
        let n = read_some(src, &mut self.buf, room, deadline)?;
        if n > 0 {
            return Ok(());
        }
        let avail = self.buf.len() as u64;
        Err(match parse_header(&self.buf)? {
            _ if avail == 0 => Error::Closed,
            None => {
                let expected = if self.buf.len() >= HEADER_LEN {
                    LONG_HEADER_LEN
                } else {
                    HEADER_LEN
                };
                Error::Truncated {
                    expected: expected as u64,
                    got: avail,
                }
            }
            Some((hlen, len)) => Error::Truncated {
                expected: len,
                got: avail - hlen as u64,
            },
        })
    }

    /// Receives one whole message into `out` and returns its length, waiting
    /// as long as it takes. A message longer than `out` is
    /// [`Error::BufferTooSmall`] holding the whole message (nothing lost).
    ///
    /// Allocates nothing for a message that fits: a small one is copied out
    /// of the read-ahead buffer, a large one (too big for it) is read
    /// straight into `out`, so a reused buffer makes receiving
    /// allocation-free. An error in the middle of a message read straight
    /// into `out` poisons the decoder, as every framing error does.
    pub fn recv_into(&mut self, src: &mut impl Source, out: &mut [u8]) -> Result<usize> {
        if self.pos == self.buf.len() {
            let fast = if self.guess <= EXACT_READ_MAX {
                self.recv_small_into(src, out)?
            } else if self.guess != usize::MAX && self.guess - HEADER_LEN <= out.len() {
                self.recv_direct_into(src, out)?
            } else {
                None
            };
            if let Some(n) = fast {
                return Ok(n);
            }
        }
        loop {
            if self.poisoned || self.partial.is_some() {
                return self.recv_copy(src, out);
            }
            let parsed = match parse_header(&self.buf[self.pos..]) {
                Ok(p) => p,
                Err(_) => return self.recv_copy(src, out),
            };
            let Some((hlen, len)) = parsed else {
                // Not even a whole header yet: read ahead, like recv does.
                if let Err(e) = self.read_more(src, None) {
                    // The same rule as recv: framing errors poison.
                    self.poisoned |= matches!(
                        e,
                        Error::TooLarge { .. } | Error::Corrupt { .. } | Error::Truncated { .. }
                    );
                    return Err(e);
                }
                continue;
            };
            let len = match usize::try_from(len) {
                Ok(l) if len <= self.max => l,
                _ => return self.recv_copy(src, out),
            };
            let have = self.buf.len() - self.pos - hlen;
            let start = self.pos + hlen;
            if have >= len && len <= out.len() {
                // The common case for small messages: the whole frame is in
                // the read-ahead buffer. Copy it out, parsed once.
                out[..len].copy_from_slice(&self.buf[start..start + len]);
                self.pos = start + len;
                self.guess = hlen + len;
                return Ok(len);
            }
            if have >= len || hlen + len <= READ_AHEAD || len > out.len() {
                return self.recv_copy(src, out);
            }
            // A large message that fits `out`: what is buffered, then the
            // rest straight from the source.
            out[..have].copy_from_slice(&self.buf[start..]);
            self.buf.clear();
            self.pos = 0;
            let mut got = have;
            while got < len {
                match src.read_into(&mut out[got..len]) {
                    Ok(0) => {
                        self.poisoned = true;
                        return Err(Error::Truncated {
                            expected: len as u64,
                            got: got as u64,
                        });
                    }
                    Ok(n) => got += n,
                    Err(e) => {
                        self.poisoned = true;
                        return Err(Error::io("read", e));
                    }
                }
            }
            self.guess = if hlen == HEADER_LEN {
                HEADER_LEN + len
            } else {
                usize::MAX
            };
            return Ok(len);
        }
    }

    /// The small-message fast path of [`recv_into`](Self::recv_into), taken
    /// when nothing is buffered and the last frame was small: one read of
    /// the guessed frame size into the empty read-ahead buffer, and when it
    /// brought exactly one whole frame that fits `out`, one copy out.
    /// `Ok(None)` when it did not (the bytes read stay buffered, for the
    /// general path to go on from, exactly as if `read_more` had read them).
    ///
    /// The general path parses the header three times and walks the
    /// compaction, capacity and read-size logic of `read_more` on every
    /// message: at 64 B that was ~225 user-space instructions per receive,
    /// against ~27 for a raw `read` loop.
    #[inline]
    fn recv_small_into(&mut self, src: &mut impl Source, out: &mut [u8]) -> Result<Option<usize>> {
        if self.poisoned || self.partial.is_some() {
            return Ok(None);
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() < READ_AHEAD {
            self.buf.reserve_exact(READ_AHEAD);
        }
        let n = read_some(src, &mut self.buf, self.guess.max(1), None)?;
        if n == 0 {
            return Err(Error::Closed);
        }
        if let Ok(Some((HEADER_LEN, len))) = parse_header(&self.buf) {
            let len = len as usize;
            if HEADER_LEN + len == n && len <= out.len() && len as u64 <= self.max {
                out[..len].copy_from_slice(&self.buf[HEADER_LEN..n]);
                self.pos = n;
                self.guess = n;
                return Ok(Some(len));
            }
        }
        Ok(None)
    }

    /// The fast path of [`recv_into`](Self::recv_into) for frames of more
    /// than `EXACT_READ_MAX` bytes, taken when nothing is buffered: one
    /// `readv` of a header into a local and of the payload the last frame
    /// had (at most `READ_AHEAD` of it) straight into `out`, and when the
    /// header announces that size, the rest straight into `out` too: the
    /// payload is copied once (by the kernel), not twice. When the frame is
    /// not that size, the bytes read (at most `READ_AHEAD`) are moved into
    /// the read-ahead buffer (`Ok(None)`), for the general path to go on
    /// from: never a wrong message. An error inside a message read into
    /// `out` poisons the decoder, as in `recv_into`'s large path.
    ///
    /// At 4 KiB the second copy, with the read-ahead buffer's compaction,
    /// was about 440 of the 613 user-space instructions of a receive.
    fn recv_direct_into<S: Source>(
        &mut self,
        src: &mut S,
        out: &mut [u8],
    ) -> Result<Option<usize>> {
        if !S::READS_SPLIT || self.poisoned || self.partial.is_some() {
            return Ok(None);
        }
        let want = self.guess - HEADER_LEN;
        // The first read is capped at the read-ahead size: what a wrong
        // guess moves into the read-ahead buffer stays within it.
        let first = want.min(READ_AHEAD - HEADER_LEN);
        let mut head = [0u8; HEADER_LEN];
        let n = src
            .read_split(&mut head, &mut out[..first])
            .map_err(|e| Error::io("read", e))?;
        if n == 0 {
            return Err(Error::Closed);
        }
        if n >= HEADER_LEN {
            if let Ok(Some((HEADER_LEN, len))) = parse_header(&head) {
                if len as usize == want && len <= self.max {
                    // The guessed size: the rest straight into `out` too.
                    let mut got = n - HEADER_LEN;
                    while got < want {
                        match src.read_into(&mut out[got..want]) {
                            Ok(0) => {
                                self.poisoned = true;
                                return Err(Error::Truncated {
                                    expected: len,
                                    got: got as u64,
                                });
                            }
                            Ok(k) => got += k,
                            Err(e) => {
                                self.poisoned = true;
                                return Err(Error::io("read", e));
                            }
                        }
                    }
                    return Ok(Some(want));
                }
            }
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() < READ_AHEAD {
            self.buf.reserve_exact(READ_AHEAD);
        }
        let in_head = n.min(HEADER_LEN);
        self.buf.extend_from_slice(&head[..in_head]);
        self.buf.extend_from_slice(&out[..n - in_head]);
        Ok(None)
    }

    /// [`recv`](Self::recv), then a copy into `out`.
    fn recv_copy(&mut self, src: &mut impl Source, out: &mut [u8]) -> Result<usize> {
        let frame = self.recv(src, None)?;
        let msg = frame.as_slice();
        if msg.len() > out.len() {
            return Err(Error::BufferTooSmall {
                message: frame.into_vec(),
            });
        }
        let n = msg.len();
        out[..n].copy_from_slice(msg);
        Ok(n)
    }
}

// Read size. A raw pipe baseline reads exactly one message per read. A
// reader that reads ahead 64 KiB empties the pipe every time and sleeps, so
// every small write must wake it, across CPUs if need be: in C on 2-vCPU VMs
// that alone costs 0.57x (two CPUs) and 0.86x (one CPU) at 64 B; reading the
// header and the payload in two calls costs 0.5x. So the decoder asks for
// one frame, sized by the frame before it, while frames are small (at most
// EXACT_READ_MAX), and reads ahead READ_AHEAD for larger ones (where
// one-frame reads measured worse on one CPU, 0.94x -> 0.63x at 4 KiB). At
// 64 B that took `pipe()` from 0.55x to 0.70x the raw pipe across CPUs and
// from 0.73x to 0.86x on one.
//
// Measured and not kept (in-round against `pipe()`, 9 rounds, medians;
// differences under ~1.3x are noise): reading 2 or 4 small frames per read
// instead of one: 0.95x and 0.89x at 64 B; one-frame reads for 4 KiB frames
// instead of the 64 KiB read-ahead: 0.94-1.14x at 4 KiB (noise, and worse on
// one CPU before); a 16 KiB read-ahead for 4 KiB frames: 0.89-1.00x.
/// Frames of at most this many bytes (header included) are read one per
/// `read` when the reader has nothing buffered (see `Decoder::read_more`).
const EXACT_READ_MAX: usize = 1024;

/// What the next refill asks for after a frame of `total` bytes.
fn next_guess(total: usize) -> usize {
    if total <= EXACT_READ_MAX {
        total
    } else {
        READ_AHEAD
    }
}

/// Reads once, after waiting for readiness if there is a deadline.
fn read_some(
    src: &mut impl Source,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: Option<Instant>,
) -> Result<usize> {
    if let Some(d) = deadline {
        if !src.wait_readable(d).map_err(|e| Error::io("poll", e))? {
            return Err(Error::Timeout);
        }
    }
    src.read_append(buf, max).map_err(|e| Error::io("read", e))
}

/// Parses a header at the start of `bytes`: `Ok(None)` if more bytes are
/// needed, else `(header length, payload length)`.
pub fn parse_header(bytes: &[u8]) -> Result<Option<(usize, u64)>> {
    if bytes.len() < HEADER_LEN {
        return Ok(None);
    }
    let short = i32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    match short {
        0.. => Ok(Some((HEADER_LEN, short as u64))),
        -1 => {
            if bytes.len() < LONG_HEADER_LEN {
                return Ok(None);
            }
            let long = u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes"));
            Ok(Some((LONG_HEADER_LEN, long)))
        }
        n => Err(Error::corrupt(format!(
            "negative message length {n} in header"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes in memory, handed out at most `.1` at a time.
    struct Chunked<'a>(&'a [u8], usize);
    impl io::Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn recv_into_gives_every_message_in_any_chunking_and_stays_bounded() {
        let msgs: Vec<Vec<u8>> = [0usize, 5, 4096, 70_000, 200_000, 3]
            .iter()
            .map(|&n| pattern(n))
            .collect();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode(m)).collect();
        for chunk in [1, 7, 4096, 1 << 20] {
            let mut src = ReadSource(Chunked(&stream, chunk));
            let mut dec = Decoder::default();
            let mut out = vec![0u8; 300_000];
            for m in &msgs {
                let n = dec.recv_into(&mut src, &mut out).unwrap();
                assert_eq!(&out[..n], &m[..], "chunk {chunk}, len {}", m.len());
            }
            let end = dec.recv_into(&mut src, &mut out).unwrap_err();
            assert!(end.is_closed(), "chunk {chunk}: {end:?}");
            assert!(dec.buf.capacity() <= READ_AHEAD, "chunk {chunk}");
        }
    }

    #[test]
    fn recv_into_a_small_buffer_returns_the_whole_message_and_keeps_step() {
        let big = pattern(200_000);
        let mut stream = encode(&big);
        stream.extend(encode(b"after"));
        let mut src = ReadSource(Chunked(&stream, 4096));
        let mut dec = Decoder::default();
        let mut out = [0u8; 100];
        match dec.recv_into(&mut src, &mut out) {
            Err(Error::BufferTooSmall { message }) => assert_eq!(message, big),
            other => panic!("{other:?}"),
        }
        let n = dec.recv_into(&mut src, &mut out).unwrap();
        assert_eq!(&out[..n], b"after");
    }

    #[test]
    fn recv_into_a_large_message_cut_short_is_truncated_and_poisons() {
        let stream = encode(&pattern(200_000));
        let mut src = ReadSource(Chunked(&stream[..150_000], 4096));
        let mut dec = Decoder::default();
        let mut out = vec![0u8; 200_000];
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(
            matches!(e, Error::Truncated { expected: 200_000, got } if got == 150_000 - 4),
            "{e:?}"
        );
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "poisoned: {e:?}");
    }

    fn decode_all(bytes: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Error) {
        let mut src = ReadSource(Chunked(bytes, chunk));
        let mut dec = Decoder::default();
        let mut out = Vec::new();
        loop {
            match dec.recv(&mut src, None) {
                Ok(f) => out.push(f.into_vec()),
                Err(e) => return (out, e),
            }
        }
    }

    #[test]
    fn header_matches_cpython_struct_pack() {
        // struct.pack("!i", 5) and struct.pack("!i", -1) + struct.pack("!Q", 2**31)
        let mut h = [0u8; LONG_HEADER_LEN];
        assert_eq!(encode_header(5, &mut h), 4);
        assert_eq!(&h[..4], &[0, 0, 0, 5]);
        assert_eq!(encode_header(SHORT_MAX, &mut h), 4);
        assert_eq!(&h[..4], &[0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(encode_header(SHORT_MAX + 1, &mut h), 12);
        assert_eq!(h, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]);
    }

    #[test]
    fn round_trip_in_any_chunking() {
        let msgs: Vec<Vec<u8>> = [0usize, 1, 3, 4, 5, 4096, 70_000, 200_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode(m)).collect();
        for chunk in [1, 3, 7, 4096, 1 << 20] {
            let (got, end) = decode_all(&stream, chunk);
            assert_eq!(got, msgs, "chunk {chunk}");
            assert!(end.is_closed(), "chunk {chunk}: {end:?}");
        }
    }

    #[test]
    fn end_inside_a_frame_is_truncated_and_at_a_boundary_is_closed() {
        let stream = encode(b"hello");
        for cut in 1..stream.len() {
            let (got, end) = decode_all(&stream[..cut], 2);
            assert!(got.is_empty());
            assert!(matches!(end, Error::Truncated { .. }), "cut {cut}: {end:?}");
        }
        let (_, end) = decode_all(&stream[..3], 100);
        assert!(
            matches!(
                end,
                Error::Truncated {
                    expected: 4,
                    got: 3
                }
            ),
            "{end:?}"
        );
        let (_, end) = decode_all(&stream[..6], 100);
        assert!(
            matches!(
                end,
                Error::Truncated {
                    expected: 5,
                    got: 2
                }
            ),
            "{end:?}"
        );
        assert!(decode_all(&[], 1).1.is_closed());
    }

    #[test]
    fn negative_length_is_corrupt_and_poisons() {
        let mut stream = (-2i32).to_be_bytes().to_vec();
        stream.extend(encode(b"after"));
        let (got, end) = decode_all(&stream, 64);
        assert!(got.is_empty());
        assert!(matches!(end, Error::Corrupt { .. }), "{end:?}");
    }

    #[test]
    fn receiver_refuses_headers_over_its_limit() {
        let stream = encode(&[7u8; 100]);
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::new(99);
        let e = dec.recv(&mut src, None).unwrap_err();
        assert!(matches!(e, Error::TooLarge { len: 100, max: 99 }), "{e:?}");
        let e = dec.recv(&mut src, None).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "poisoned: {e:?}");
    }

    /// Found by tests/decoder.rs: `hlen + len` overflowed for a long header
    /// of (nearly) `u64::MAX`, a panic with overflow checks and, without
    /// them, a read-ahead buffer left with no room, whose 0-byte read was
    /// taken for end of stream while the writer was still sending.
    #[test]
    fn a_long_header_near_u64_max_does_not_overflow() {
        for len in [u64::MAX, u64::MAX - 11] {
            let mut stream = (-1i32).to_be_bytes().to_vec();
            stream.extend(len.to_be_bytes());
            stream.extend(vec![9u8; 100_000]);
            let (got, end) = decode_all(&stream, 4096);
            assert!(got.is_empty());
            assert!(
                matches!(end, Error::Truncated { expected, got: 100_000 } if expected == len),
                "{end:?}"
            );
        }
    }

    #[test]
    fn a_long_header_alone_is_a_message_with_none_of_its_bytes() {
        let mut stream = (-1i32).to_be_bytes().to_vec();
        stream.extend((1u64 << 32).to_be_bytes());
        for chunk in [1, 12, 4096] {
            let (got, end) = decode_all(&stream, chunk);
            assert!(got.is_empty());
            assert!(
                matches!(end, Error::Truncated { expected, got: 0 } if expected == 1 << 32),
                "chunk {chunk}: {end:?}"
            );
        }
    }

    #[test]
    fn the_largest_frame_the_read_ahead_holds_is_buffered() {
        for (len, owned) in [
            (READ_AHEAD - HEADER_LEN, false),
            (READ_AHEAD - HEADER_LEN + 1, true),
        ] {
            let stream = encode(&pattern(len));
            let mut src = ReadSource(Chunked(&stream, 1000));
            let mut dec = Decoder::default();
            let frame = dec.recv(&mut src, None).unwrap();
            assert_eq!(matches!(frame, Frame::Owned(_)), owned, "{len} bytes");
            assert_eq!(frame.into_vec(), pattern(len));
            assert!(dec.recv(&mut src, None).unwrap_err().is_closed());
        }
    }

    #[test]
    fn a_lying_long_header_allocates_at_most_one_chunk() {
        let mut stream = (-1i32).to_be_bytes().to_vec();
        stream.extend((4u64 << 30).to_be_bytes());
        stream.extend([1, 2, 3]);
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::default();
        let e = dec.recv(&mut src, None).unwrap_err();
        assert!(
            matches!(e, Error::Truncated { expected, got: 3 } if expected == 4 << 30),
            "{e:?}"
        );
        let p_cap = dec.buf.capacity();
        assert!(p_cap <= READ_AHEAD, "read-ahead stays bounded: {p_cap}");
    }

    /// Bytes in memory, at most `limit` per read, recording how many bytes
    /// each read asked for (the read-size policy).
    struct Asked<'a> {
        data: &'a [u8],
        limit: usize,
        asked: Vec<usize>,
    }
    impl Source for Asked<'_> {
        fn read_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
            self.asked.push(max);
            let n = max.min(self.limit).min(self.data.len());
            buf.extend_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn asked(stream: &[u8], limit: usize) -> Asked<'_> {
        Asked {
            data: stream,
            limit,
            asked: Vec::new(),
        }
    }

    #[test]
    fn a_small_frame_is_read_one_frame_at_a_time() {
        let stream: Vec<u8> = (0..3).flat_map(|_| encode(&pattern(10))).collect();
        let mut src = asked(&stream, 6);
        let mut dec = Decoder::default();
        for _ in 0..3 {
            assert_eq!(dec.recv(&mut src, None).unwrap().as_slice(), pattern(10));
        }
        assert!(dec.recv(&mut src, None).unwrap_err().is_closed());
        // The read-ahead first, then the rest of the frame whose header is
        // here, then one frame's worth (the size of the last one).
        assert_eq!(
            src.asked,
            [READ_AHEAD, 8, 2, 14, 8, 2, 14, 8, 2, 14],
            "asked for"
        );
    }

    #[test]
    fn frames_over_the_exact_read_limit_read_ahead() {
        // 1024 bytes in all: still one frame at a time.
        let exact = encode(&pattern(EXACT_READ_MAX - HEADER_LEN));
        let mut src = asked(&exact, 600);
        let mut dec = Decoder::default();
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice().len(), 1020);
        assert!(dec.recv(&mut src, None).unwrap_err().is_closed());
        assert_eq!(src.asked, [READ_AHEAD, 424, 1024]);
        // One byte more: the whole read-ahead.
        let over = encode(&pattern(EXACT_READ_MAX - HEADER_LEN + 1));
        let mut src = asked(&over, 600);
        let mut dec = Decoder::default();
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice().len(), 1021);
        assert!(dec.recv(&mut src, None).unwrap_err().is_closed());
        assert_eq!(src.asked, [READ_AHEAD, READ_AHEAD - 600, READ_AHEAD]);
        let big = encode(&pattern(5000));
        let mut src = asked(&big, 1000);
        let mut dec = Decoder::default();
        assert_eq!(dec.recv(&mut src, None).unwrap().into_vec(), pattern(5000));
        assert!(dec.recv(&mut src, None).unwrap_err().is_closed());
        let r = READ_AHEAD;
        assert_eq!(
            src.asked,
            [r, r - 1000, r - 2000, r - 3000, r - 4000, r - 5000, r]
        );
    }

    #[test]
    fn a_large_frame_after_a_small_one_reads_ahead_once_its_header_is_in() {
        let mut stream = encode(&pattern(10));
        stream.extend(encode(&pattern(2000)));
        let mut src = asked(&stream, 14);
        let mut dec = Decoder::default();
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice(), pattern(10));
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice(), pattern(2000));
        // The read-ahead, then one small frame's worth (the size of the
        // last one), which brings the large frame's header: from then on
        // the read-ahead less what is buffered.
        let r = READ_AHEAD;
        assert_eq!(src.asked[..4], [r, 14, r - 14, r - 28]);
        // 1990 bytes of it still to come, 14 a read: 143 reads more.
        assert_eq!(src.asked.len(), 145);
    }

    #[test]
    fn the_read_ahead_buffer_is_allocated_once_at_its_full_size() {
        // Two reads that together fill the read-ahead: a buffer that grew
        // by doubling would pass READ_AHEAD.
        let stream = encode(&pattern(READ_AHEAD - HEADER_LEN));
        let mut src = asked(&stream, 40_000);
        let mut dec = Decoder::default();
        assert_eq!(
            dec.recv(&mut src, None).unwrap().into_vec().len(),
            READ_AHEAD - HEADER_LEN
        );
        assert_eq!(src.asked, [READ_AHEAD, READ_AHEAD - 40_000]);
        assert!(dec.buf.capacity() <= READ_AHEAD, "{}", dec.buf.capacity());
    }

    #[test]
    fn a_message_too_big_for_the_read_ahead_is_read_into_its_own_buffer() {
        let stream = encode(&pattern(100_000));
        let mut src = asked(&stream, 30_000);
        let mut dec = Decoder::default();
        let frame = dec.recv(&mut src, None).unwrap();
        assert!(matches!(frame, Frame::Owned(_)));
        assert_eq!(frame.into_vec(), pattern(100_000));
        assert!(!dec.has_buffered());
        assert_eq!(src.asked, [READ_AHEAD, 70_004, 40_004, 10_004]);
        // Past CHUNK, its buffer grows a chunk at a time.
        let len = 3_000_000;
        let stream = encode(&pattern(len));
        let mut src = asked(&stream, usize::MAX);
        let mut dec = Decoder::default();
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice().len(), len);
        assert_eq!(
            src.asked,
            [
                READ_AHEAD,
                CHUNK,
                CHUNK,
                len + HEADER_LEN - READ_AHEAD - 2 * CHUNK
            ]
        );
        // The same through recv_into, straight into the caller's buffer.
        let stream = encode(&pattern(100_000));
        let mut src = asked(&stream, 30_000);
        let mut dec = Decoder::default();
        let mut out = vec![0u8; 100_001];
        assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), 100_000);
        assert_eq!(out[..100_000], pattern(100_000)[..]);
        assert_eq!(src.asked, [READ_AHEAD, 70_004, 40_004, 10_004]);
    }

    #[test]
    fn what_is_buffered_and_whether_a_whole_frame_is() {
        let mut dec = Decoder::new(77);
        assert_eq!(dec.max_message_size(), 77);
        dec.set_max_message_size(5);
        assert_eq!(dec.max_message_size(), 5);
        assert_eq!(Decoder::default().max_message_size(), UNLIMITED);
        assert!(!dec.has_buffered() && !dec.has_whole_frame());
        // Two frames in one read: the second stays buffered, whole.
        let mut stream = encode(b"hello");
        stream.extend(encode(b"world"));
        let mut src = ReadSource(&stream[..]);
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice(), b"hello");
        assert!(dec.has_buffered() && dec.has_whole_frame());
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice(), b"world");
        assert!(!dec.has_buffered() && !dec.has_whole_frame());
        // The second one byte short of whole.
        let mut src = ReadSource(&stream[..17]);
        let mut dec = Decoder::default();
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice(), b"hello");
        assert!(dec.has_buffered() && !dec.has_whole_frame());
        // Only part of a header.
        let mut stream = encode(b"hello");
        stream.extend([0, 0]);
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::default();
        assert_eq!(dec.recv(&mut src, None).unwrap().as_slice(), b"hello");
        assert!(dec.has_buffered() && !dec.has_whole_frame());
        // A message read into its own buffer is no whole frame yet.
        let stream = encode(&pattern(100_000));
        let mut src = ReadSource(Chunked(&stream[..50_000], 50_000));
        let mut dec = Decoder::default();
        assert!(dec.recv(&mut src, None).is_err());
        assert!(dec.has_buffered() && !dec.has_whole_frame());
    }

    #[test]
    fn recv_into_every_path_and_its_errors() {
        // Whole and buffered, but bigger than `out`: the message comes back.
        let mut stream = encode(b"0123456789");
        stream.extend(encode(b"ab"));
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::default();
        let mut out = [0u8; 4];
        match dec.recv_into(&mut src, &mut out) {
            Err(Error::BufferTooSmall { message }) => assert_eq!(message, b"0123456789"),
            other => panic!("{other:?}"),
        }
        assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), 2);
        assert_eq!(&out[..2], b"ab");
        // Over the limit: refused, and the stream is poisoned.
        let stream = encode(&[1u8; 10]);
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::new(9);
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::TooLarge { len: 10, max: 9 }), "{e:?}");
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        // A negative length poisons, even with good frames behind it.
        let mut stream = (-2i32).to_be_bytes().to_vec();
        stream.extend(encode(b"ok"));
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::default();
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "still poisoned: {e:?}");
        // A stream cut inside a header: truncated, poisoned.
        let mut src = ReadSource(&[0u8, 0][..]);
        let mut dec = Decoder::default();
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Truncated {
                    expected: 4,
                    got: 2
                }
            ),
            "{e:?}"
        );
        let mut src = ReadSource(&encode(b"ok")[..]);
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "still poisoned: {e:?}");
        // A small frame whose rest comes in later reads.
        let stream = encode(b"abc");
        let mut src = ReadSource(Chunked(&stream, 5));
        let mut dec = Decoder::default();
        assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), 3);
        assert_eq!(&out[..3], b"abc");
    }

    #[test]
    fn recv_into_a_buffer_of_exactly_the_message_length() {
        let stream = encode(b"abcd");
        for chunk in [1, 5, 100] {
            let mut src = ReadSource(Chunked(&stream, chunk));
            let mut dec = Decoder::default();
            let mut out = [0u8; 4];
            assert_eq!(
                dec.recv_into(&mut src, &mut out).unwrap(),
                4,
                "chunk {chunk}"
            );
            assert_eq!(&out, b"abcd", "chunk {chunk}");
            assert!(dec.recv_into(&mut src, &mut out).unwrap_err().is_closed());
        }
    }

    #[test]
    fn recv_into_refuses_a_message_over_the_limit_even_when_it_fits() {
        let mut stream = encode(&[1u8; 10]);
        stream.extend(encode(b"ok"));
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::new(9);
        let mut out = [0u8; 16];
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::TooLarge { len: 10, max: 9 }), "{e:?}");
    }

    #[test]
    fn recv_into_reads_as_recv_does() {
        // Two whole small frames in the first read, the third alone: the
        // read for it asks for one frame of the size of the last.
        let stream: Vec<u8> = (0..3).flat_map(|_| encode(&pattern(10))).collect();
        let mut src = asked(&stream, 28);
        let mut dec = Decoder::default();
        let mut out = [0u8; 64];
        for _ in 0..3 {
            assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), 10);
            assert_eq!(out[..10], pattern(10)[..]);
        }
        assert!(dec.recv_into(&mut src, &mut out).unwrap_err().is_closed());
        assert_eq!(src.asked, [READ_AHEAD, 14, 14]);
        // Frames that fit the read-ahead but not one read: through the
        // read-ahead, not straight into `out`.
        let r = READ_AHEAD;
        for (len, limit, want) in [
            (
                5000,
                1000,
                vec![r, r - 1000, r - 2000, r - 3000, r - 4000, r - 5000, r],
            ),
            (20_000, 8000, vec![r, r - 8000, r - 16_000, r]),
        ] {
            let stream = encode(&pattern(len));
            let mut src = asked(&stream, limit);
            let mut dec = Decoder::default();
            let mut out = vec![0u8; len];
            assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), len);
            assert_eq!(out, pattern(len));
            assert!(dec.recv_into(&mut src, &mut out).unwrap_err().is_closed());
            assert_eq!(src.asked, want, "{len} bytes");
        }
        // A large message behind a small one in the same read: what is
        // buffered of it, then the rest straight into `out`.
        let mut stream = encode(b"ab");
        stream.extend(encode(&pattern(100_000)));
        let mut src = asked(&stream, 30_000);
        let mut dec = Decoder::default();
        let mut out = vec![0u8; 100_000];
        assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), 2);
        assert_eq!(&out[..2], b"ab");
        assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), 100_000);
        assert_eq!(out, pattern(100_000));
        assert_eq!(src.asked, [READ_AHEAD, 70_010, 40_010, 10_010]);
    }

    /// A source that fails once, after `ok` bytes.
    struct FailsOnce<'a> {
        data: &'a [u8],
        ok: usize,
        failed: bool,
    }
    impl Source for FailsOnce<'_> {
        fn read_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
            if self.ok == 0 && !self.failed {
                self.failed = true;
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let n = max
                .min(self.data.len())
                .min(if self.failed { usize::MAX } else { self.ok });
            buf.extend_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n.min(self.ok);
            Ok(n)
        }
    }

    #[test]
    fn an_error_inside_a_large_message_read_straight_into_out_poisons() {
        let stream = encode(&pattern(100_000));
        let mut src = FailsOnce {
            data: &stream,
            ok: 70_000,
            failed: false,
        };
        let mut dec = Decoder::default();
        let mut out = vec![0u8; 100_000];
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io {
                    context: "read",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "poisoned: {e:?}");
        // Through recv, the message goes on where it stopped.
        let mut src = FailsOnce {
            data: &stream,
            ok: 70_000,
            failed: false,
        };
        let mut dec = Decoder::default();
        let e = dec.recv(&mut src, None).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io {
                    context: "read",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            dec.recv(&mut src, None).unwrap().into_vec(),
            pattern(100_000)
        );
    }

    #[test]
    fn sockets_reset_by_a_dead_peer_read_as_end_of_stream() {
        use std::io::Write;
        use std::os::fd::AsFd;
        use std::os::unix::net::UnixStream;
        let reset = || {
            let (mut ours, theirs) = UnixStream::pair().unwrap();
            // The peer dies with unread data: our next read is ECONNRESET.
            ours.write_all(b"unread").unwrap();
            drop(theirs);
            ours
        };
        let raw = reset();
        assert_eq!(
            sys::read(raw.as_fd(), &mut [0u8; 8])
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ECONNRESET)
        );
        let s = reset();
        let mut buf = Vec::new();
        assert_eq!(FdSource(s.as_fd()).read_append(&mut buf, 8).unwrap(), 0);
        let s = reset();
        assert_eq!(FdSource(s.as_fd()).read_into(&mut [0u8; 8]).unwrap(), 0);
        let s = reset();
        let e = Decoder::default()
            .recv(&mut FdSource(s.as_fd()), None)
            .unwrap_err();
        assert!(e.is_closed(), "{e:?}");
        // Other errors stay errors.
        let (r, w) = sys::pipe(false).unwrap();
        drop(r);
        assert!(FdSource(w.as_fd()).read_append(&mut buf, 8).is_err());
        assert!(FdSource(w.as_fd()).read_into(&mut [0u8; 8]).is_err());
    }

    #[test]
    fn a_deadline_with_nothing_to_read_times_out() {
        use std::os::fd::AsFd;
        let (r, w) = sys::pipe(false).unwrap();
        let mut dec = Decoder::default();
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        let e = dec.recv(&mut FdSource(r.as_fd()), Some(soon)).unwrap_err();
        assert!(matches!(e, Error::Timeout), "{e:?}");
        write_frame(w.as_fd(), WriteKind::Pipe, b"late", UNLIMITED).unwrap();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        let frame = dec.recv(&mut FdSource(r.as_fd()), Some(later)).unwrap();
        assert_eq!(frame.as_slice(), b"late");
    }

    /// Frames sent over a real pipe, received with `recv_into` (whose fast
    /// paths only an fd source takes): every size change, several frames
    /// per write, a buffer too small, and a stream cut inside a frame.
    #[test]
    fn recv_into_from_a_pipe_takes_the_fast_paths_and_leaves_them_for_anything_else() {
        use std::os::fd::AsFd;
        let (r, w) = sys::pipe(false).unwrap();
        let sizes = [
            4096, 4096, 100, 100, 4096, 3000, 4096, 10, 4096, 2000, 2000, 2000, 70_000, 4096, 0, 1,
            1024, 1000, 10, 500, 3, 64, 64, 1500,
        ];
        let msgs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| ((i * 31 + j) % 251) as u8).collect())
            .collect();
        // The writer runs ahead, so a read of the last frame's size often
        // brings a shorter frame and part of the next; it closes its end
        // when done, so a lost byte shows as an error, not a hang.
        let writer = {
            let msgs = msgs.clone();
            std::thread::spawn(move || {
                for m in &msgs {
                    write_frame(w.as_fd(), WriteKind::Pipe, m, UNLIMITED).unwrap();
                }
            })
        };
        let mut src = FdSource(r.as_fd());
        let mut dec = Decoder::default();
        let mut out = vec![0u8; 100_000];
        for m in &msgs {
            let n = dec.recv_into(&mut src, &mut out).unwrap();
            assert_eq!(n, m.len());
            assert!(out[..n] == m[..], "a {}-byte message", m.len());
        }
        writer.join().unwrap();
        assert!(dec.recv_into(&mut src, &mut out).unwrap_err().is_closed());
        // The same decoder on a new pipe, the frames written before the
        // receive: a read of the last frame's size brings a shorter frame
        // and the start of the next ones, on both fast paths.
        let (r, w) = sys::pipe(false).unwrap();
        let mut src = FdSource(r.as_fd());
        assert!(!dec.has_buffered());
        for (first, then) in [
            (500, &[3, 64, 64, 500][..]),
            (4096, &[10, 4096, 4096, 1500]),
        ] {
            write_frame(w.as_fd(), WriteKind::Pipe, &pattern(first), UNLIMITED).unwrap();
            assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), first);
            for &n in then {
                write_frame(w.as_fd(), WriteKind::Pipe, &pattern(n), UNLIMITED).unwrap();
            }
            for &n in then {
                assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), n);
                assert!(out[..n] == pattern(n)[..], "a {n}-byte message");
            }
        }
        // A buffer too small for the frame the last one's size announces.
        write_frame(w.as_fd(), WriteKind::Pipe, &pattern(1500), UNLIMITED).unwrap();
        let mut small = [0u8; 1000];
        match dec.recv_into(&mut src, &mut small) {
            Err(Error::BufferTooSmall { message }) => assert_eq!(message, pattern(1500)),
            other => panic!("{other:?}"),
        }
        // A stream that ends inside a frame the size of the last one.
        write_frame(w.as_fd(), WriteKind::Pipe, &pattern(1500), UNLIMITED).unwrap();
        assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), 1500);
        let whole = encode(&pattern(1500));
        sys::write_all_vectored(w.as_fd(), WriteKind::Pipe, &[&whole[..700]]).unwrap();
        drop(w);
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Truncated {
                    expected: 1500,
                    got: 696
                }
            ),
            "{e:?}"
        );
    }

    /// Frames larger than the read-ahead buffer, received with `recv_into`
    /// from a pipe: the guessed size read straight into `out` over many
    /// reads, a different size after one, and a stream cut inside one.
    #[test]
    fn recv_into_from_a_pipe_reads_large_frames_of_the_guessed_size_into_out() {
        use std::os::fd::AsFd;
        let (r, w) = sys::pipe(false).unwrap();
        let sizes = [300_000, 300_000, 10, 300_000, 300_000, 70_000, 300_000];
        let writer = std::thread::spawn(move || {
            for (i, &n) in sizes.iter().enumerate() {
                let m: Vec<u8> = (0..n).map(|j| ((i * 31 + j) % 251) as u8).collect();
                write_frame(w.as_fd(), WriteKind::Pipe, &m, UNLIMITED).unwrap();
            }
        });
        let mut src = FdSource(r.as_fd());
        let mut dec = Decoder::default();
        let mut out = vec![0u8; 400_000];
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), n, "#{i}");
            assert!(
                (0..n).all(|j| out[j] == ((i * 31 + j) % 251) as u8),
                "#{i}: a {n}-byte message"
            );
            assert!(dec.buf.capacity() <= READ_AHEAD, "#{i}");
        }
        writer.join().unwrap();
        assert!(dec.recv_into(&mut src, &mut out).unwrap_err().is_closed());
        // Cut inside a frame of the guessed size: Truncated, then poisoned.
        let (r, w) = sys::pipe(false).unwrap();
        let whole = encode(&pattern(300_000));
        sys::write_all_vectored(w.as_fd(), WriteKind::Pipe, &[&whole[..1004]]).unwrap();
        drop(w);
        let mut src = FdSource(r.as_fd());
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Truncated {
                    expected: 300_000,
                    got: 1000
                }
            ),
            "{e:?}"
        );
        let e = dec.recv_into(&mut src, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "poisoned: {e:?}");
    }

    /// At a boundary, the end of the stream is `Closed` on either fast path.
    #[test]
    fn recv_into_from_a_pipe_sees_the_end_at_a_boundary_as_closed() {
        use std::os::fd::AsFd;
        for size in [64, 4096] {
            let (r, w) = sys::pipe(false).unwrap();
            write_frame(w.as_fd(), WriteKind::Pipe, &pattern(size), UNLIMITED).unwrap();
            write_frame(w.as_fd(), WriteKind::Pipe, &pattern(size), UNLIMITED).unwrap();
            drop(w);
            let mut src = FdSource(r.as_fd());
            let mut dec = Decoder::default();
            let mut out = vec![0u8; 8192];
            for _ in 0..2 {
                assert_eq!(dec.recv_into(&mut src, &mut out).unwrap(), size);
                assert_eq!(&out[..size], &pattern(size)[..]);
            }
            let e = dec.recv_into(&mut src, &mut out).unwrap_err();
            assert!(e.is_closed(), "{size}: {e:?}");
        }
    }

    #[test]
    fn write_frame_bytes_limits_and_errors() {
        use std::os::fd::AsFd;
        assert!(check_len(10, 10).is_ok());
        assert!(matches!(
            check_len(11, 10),
            Err(Error::TooLarge { len: 11, max: 10 })
        ));
        let (r, w) = sys::pipe(false).unwrap();
        let e = write_frame(w.as_fd(), WriteKind::Pipe, &[0u8; 11], 10).unwrap_err();
        assert!(matches!(e, Error::TooLarge { len: 11, max: 10 }), "{e:?}");
        // Small (one buffer) and larger (two slices): the same bytes.
        for len in [0, 1, COALESCE, COALESCE + 1, 4000] {
            write_frame(w.as_fd(), WriteKind::Pipe, &pattern(len), UNLIMITED).unwrap();
            let mut got = vec![0u8; HEADER_LEN + len];
            let mut at = 0;
            while at < got.len() {
                at += sys::read(r.as_fd(), &mut got[at..]).unwrap();
            }
            assert_eq!(got, encode(&pattern(len)), "{len} bytes");
        }
        assert_eq!(encode(b"ab"), [0, 0, 0, 2, b'a', b'b']);
        // The pipe grows from GROW_AT on, and not before.
        let (r, w) = sys::pipe(false).unwrap();
        let before = sys::pipe_capacity(w.as_fd()).unwrap();
        assert!(before < LARGE_CAPACITY, "{before}");
        let reader = std::thread::spawn(move || {
            let mut dec = Decoder::default();
            let a = dec
                .recv(&mut FdSource(r.as_fd()), None)
                .unwrap()
                .into_vec()
                .len();
            let b = dec
                .recv(&mut FdSource(r.as_fd()), None)
                .unwrap()
                .into_vec()
                .len();
            (a, b)
        });
        write_frame(w.as_fd(), WriteKind::Pipe, &pattern(GROW_AT - 1), UNLIMITED).unwrap();
        assert_eq!(sys::pipe_capacity(w.as_fd()).unwrap(), before);
        write_frame(w.as_fd(), WriteKind::Pipe, &pattern(GROW_AT), UNLIMITED).unwrap();
        assert_eq!(sys::pipe_capacity(w.as_fd()).unwrap(), LARGE_CAPACITY);
        assert_eq!(reader.join().unwrap(), (GROW_AT - 1, GROW_AT));
        // A reader gone: Closed; other errors keep their context.
        let (r, w) = sys::pipe(false).unwrap();
        drop(r);
        let e = write_frame(w.as_fd(), WriteKind::Pipe, b"x", UNLIMITED).unwrap_err();
        assert!(e.is_closed(), "{e:?}");
        let reset = write_error(io::Error::from_raw_os_error(libc::ECONNRESET));
        assert!(reset.is_closed(), "{reset:?}");
        let other = write_error(io::Error::from_raw_os_error(libc::EIO));
        assert!(
            matches!(
                other,
                Error::Io {
                    context: "write",
                    ..
                }
            ),
            "{other:?}"
        );
        assert_eq!(parse_header(&(-1i32).to_be_bytes()).unwrap(), None);
    }

    #[test]
    fn a_source_that_cannot_wait_is_always_ready() {
        let stream = encode(b"now");
        let mut src = ReadSource(&stream[..]);
        let mut dec = Decoder::default();
        let frame = dec.recv(&mut src, Some(Instant::now())).unwrap();
        assert_eq!(frame.as_slice(), b"now");
    }

    #[test]
    fn read_source_passes_other_errors_on_and_keeps_the_buffer() {
        /// Fails with EIO on every other read, else hands out its bytes.
        struct Flaky(bool, &'static [u8]);
        impl io::Read for Flaky {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 = !self.0;
                if self.0 {
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
                let n = buf.len().min(self.1.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1 = &self.1[n..];
                Ok(n)
            }
        }
        let mut src = ReadSource(Flaky(false, b"abcdef"));
        let mut buf = b"xy".to_vec();
        let e = src.read_append(&mut buf, 4).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert_eq!(buf, b"xy");
        assert_eq!(src.read_append(&mut buf, 4).unwrap(), 4);
        assert_eq!(buf, b"xyabcd");
        let mut two = [0u8; 2];
        let e = src.read_into(&mut two).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert_eq!(src.read_into(&mut two).unwrap(), 2);
        assert_eq!(&two, b"ef");
    }

    #[test]
    fn read_source_retries_interrupted_reads() {
        struct Interrupting(bool, &'static [u8]);
        impl io::Read for Interrupting {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 = !self.0;
                if self.0 {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                let n = buf.len().min(self.1.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1 = &self.1[n..];
                Ok(n)
            }
        }
        let mut src = ReadSource(Interrupting(false, b"abcdef"));
        let mut buf = b"x".to_vec();
        assert_eq!(src.read_append(&mut buf, 4).unwrap(), 4);
        assert_eq!(buf, b"xabcd");
        let mut two = [0u8; 2];
        assert_eq!(src.read_into(&mut two).unwrap(), 2);
        assert_eq!(&two, b"ef");
        assert_eq!(src.read_append(&mut buf, 4).unwrap(), 0);
        assert_eq!(buf, b"xabcd");
    }
}
