//! Chunked mode ([`FifoMode::Chunked`](super::FifoMode::Chunked)): the
//! wire format, the writer's side (cutting a message into chunks) and the
//! reader's (putting each writer's messages back together).
//!
//! Every chunk is one `write(2)` of at most `PIPE_BUF` bytes, which the
//! kernel never interleaves with another write and never leaves half done,
//! even for a writer killed in the middle of it:
//!
//! ```text
//! byte  0      magic 0xC5 (never the first byte of a framed header, whose
//!              length starts 0x00-0x7F, or 0xFF for a long one)
//! byte  1      version (high 4 bits, 1) | LAST (bit 1) | FIRST (bit 0)
//! bytes 2-3    payload length in this chunk, u16 big-endian, <= 4080
//! bytes 4-7    writer's pid, u32 big-endian
//! bytes 8-11   writer's nonce, u32 big-endian (random per open)
//! bytes 12-15  message sequence number of that writer, u32 big-endian
//! bytes 16..   payload
//! ```
//!
//! A message is one `FIRST` chunk, any number of middle chunks, and a
//! `LAST` one (a message of at most 4080 bytes is a single chunk with both
//! flags, an empty message a chunk with no payload). A writer's chunks
//! arrive in the order it wrote them; other writers' chunks may come in
//! between.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame;
use crate::sys::{self, Readiness, WriteKind};

/// The first byte of every chunk.
pub const MAGIC: u8 = 0xC5;
/// The version of the chunk format this crate writes and reads.
pub const VERSION: u8 = 1;
/// Bytes in a chunk's header.
pub const CHUNK_HEADER_LEN: usize = 16;
/// The most payload bytes one chunk carries: header and payload together
/// are `PIPE_BUF` bytes, one atomic write.
pub const CHUNK_PAYLOAD_MAX: usize = sys::PIPE_BUF - CHUNK_HEADER_LEN;

const FIRST: u8 = 1;
const LAST: u8 = 2;

/// The error a framed reader gives for a chunk header, and a chunked
/// reader for a framed one.
pub(super) const CHUNKED_WRITER: &str = "a writer of this FIFO uses chunked mode, and this reader \
     reads framed messages: open the reader with FifoOptions::chunked(true), or every writer \
     without it";
pub(super) const FRAMED_WRITER: &str = "a writer of this FIFO uses framed mode (a length \
     header, not a chunk), and this reader reads chunked mode: open every writer with \
     FifoOptions::chunked(true), or the reader without it";

/// Who wrote a chunk: the writer's process id and a random number drawn
/// when it opened the FIFO (or first sent in a new process after `fork`),
/// so two writers never share an id, even in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriterId {
    /// The writing process, as it sees its own pid.
    pub pid: u32,
    /// Drawn at random per writer.
    pub nonce: u32,
}

impl WriterId {
    /// A fresh id for a writer in this process.
    pub(super) fn fresh() -> WriterId {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // RandomState's keys are random per process (and step per call);
        // the counter and the clock make two calls in one process differ
        // even so.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let pid = sys::cached_pid();
        h.write_i32(pid);
        WriterId {
            pid: pid as u32,
            nonce: h.finish() as u32,
        }
    }
}

impl std::fmt::Display for WriterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writer {}#{:08x}", self.pid, self.nonce)
    }
}

/// One chunk's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) first: bool,
    pub(super) last: bool,
    pub(super) len: usize,
    pub(super) writer: WriterId,
    pub(super) seq: u32,
}

impl Header {
    pub(super) fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut out = [0u8; CHUNK_HEADER_LEN];
        out[0] = MAGIC;
        out[1] =
            (VERSION << 4) | if self.first { FIRST } else { 0 } | if self.last { LAST } else { 0 };
        out[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
        out[4..8].copy_from_slice(&self.writer.pid.to_be_bytes());
        out[8..12].copy_from_slice(&self.writer.nonce.to_be_bytes());
        out[12..16].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Parses a header at the start of `bytes`: `Ok(None)` if more bytes
    /// are needed; [`Error::Corrupt`] if they are no chunk header (naming
    /// framed mode if they look like a framed header).
    pub(super) fn parse(bytes: &[u8]) -> Result<Option<Header>> {
        let Some(&magic) = bytes.first() else {
            return Ok(None);
        };
        if magic != MAGIC {
            return Err(if magic <= 0x7f || magic == 0xff {
                Error::corrupt(FRAMED_WRITER)
            } else {
                Error::corrupt(format!(
                    "byte {magic:#04x} where a chunk header should start (a chunk starts {MAGIC:#04x})"
                ))
            });
        }
        if bytes.len() < CHUNK_HEADER_LEN {
            return Ok(None);
        }
        let version = bytes[1] >> 4;
        if version != VERSION || bytes[1] & 0x0c != 0 {
            return Err(Error::corrupt(format!(
                "chunk format version {version} (flags {:#04x}); this reader reads version {VERSION}",
                bytes[1] & 0x0f
            )));
        }
        let len = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
        if len > CHUNK_PAYLOAD_MAX {
            return Err(Error::corrupt(format!(
                "a chunk of {len} payload bytes (at most {CHUNK_PAYLOAD_MAX})"
            )));
        }
        let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        Ok(Some(Header {
            first: bytes[1] & FIRST != 0,
            last: bytes[1] & LAST != 0,
            len,
            writer: WriterId {
                pid: word(4),
                nonce: word(8),
            },
            seq: word(12),
        }))
    }
}

/// Whether a framed decoder's `Corrupt` error came from a chunk header
/// (the decoder reads a chunk's first four bytes as a negative length).
pub(super) fn is_chunk_header_error(e: &Error) -> bool {
    let Error::Corrupt { reason } = e else {
        return false;
    };
    let Some(n) = reason
        .strip_prefix("negative message length ")
        .and_then(|r| r.strip_suffix(" in header"))
        .and_then(|n| n.parse::<i32>().ok())
    else {
        return false;
    };
    let b = n.to_be_bytes();
    b[0] == MAGIC && b[1] >> 4 == VERSION
}

// ---------------------------------------------------------------- writer

/// A writer's id and the sequence number of its next message.
#[derive(Debug)]
pub(super) struct WriterState {
    pub(super) id: WriterId,
    pub(super) next_seq: u32,
    /// The process whose open file description the writer's fd is (the
    /// `flock` a large message takes belongs to it).
    pub(super) description_owner: sys::Pid,
}

/// A message of at least this many bytes (16 chunks and more) is written
/// holding an exclusive `flock` on the FIFO, so that large messages take
/// turns. Correctness never depends on it (chunks are atomic, and a
/// writer that dies releases the lock with its fd): it spares the writers
/// a herd. Without it, every read that makes room in a full FIFO wakes
/// every writer blocked in it, for one 4 KiB chunk each, and eight writers
/// of 1 MiB messages moved about half of what one does.
pub(super) const TURN_AT: usize = 64 * 1024;

/// Chunk payloads of at most this many bytes are copied beside their
/// header and written with one plain `write` (cheaper than a two-slice
/// `writev`, as for framed messages).
const COALESCE: usize = 512;

/// The kill point of chunked writers (test hooks only): a multi-chunk
/// message's writer SIGKILLs itself after this many of its chunks (0: off).
#[cfg(feature = "test-hooks")]
static KILL_AFTER_CHUNKS: AtomicU32 = AtomicU32::new(0);

/// Arms (`Some(n)`, `n >= 1`) or disarms (`None`) this process's chunked
/// writers' kill point: the next message of more than `n` chunks sent in
/// this process SIGKILLs its process right after its `n`-th chunk, so the
/// reader holds part of it (only with the `test-hooks` feature).
#[cfg(feature = "test-hooks")]
pub fn set_chunk_kill_point(after_chunks: Option<u32>) {
    KILL_AFTER_CHUNKS.store(after_chunks.unwrap_or(0), Ordering::SeqCst);
}

#[cfg(feature = "test-hooks")]
fn kill_point(written: u32, more: bool) {
    let armed = KILL_AFTER_CHUNKS.load(Ordering::Relaxed);
    if armed != 0 && more && written == armed {
        let _ = sys::kill(sys::getpid(), libc::SIGKILL);
        unreachable!("survived SIGKILL");
    }
}

/// Writes `msg` as the chunks of message `seq` of writer `id`. The caller
/// checked the length and holds the writer's state.
pub(super) fn write_message(fd: BorrowedFd<'_>, id: WriterId, seq: u32, msg: &[u8]) -> Result<()> {
    if msg.len() >= frame::GROW_AT {
        grow_pipe(fd);
    }
    let mut rest = msg;
    let mut first = true;
    #[cfg(feature = "test-hooks")]
    let mut written = 0u32;
    loop {
        let n = rest.len().min(CHUNK_PAYLOAD_MAX);
        let (payload, tail) = rest.split_at(n);
        let header = Header {
            first,
            last: tail.is_empty(),
            len: n,
            writer: id,
            seq,
        }
        .encode();
        // One write of at most PIPE_BUF bytes: the kernel takes it whole or
        // not at all, so no other write lands inside it and no kill cuts it.
        let result = if n <= COALESCE {
            let mut buf = [0u8; CHUNK_HEADER_LEN + COALESCE];
            buf[..CHUNK_HEADER_LEN].copy_from_slice(&header);
            buf[CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + n].copy_from_slice(payload);
            sys::write_all_vectored(fd, WriteKind::Pipe, &[&buf[..CHUNK_HEADER_LEN + n]])
        } else {
            sys::write_all_vectored(fd, WriteKind::Pipe, &[&header, payload])
        };
        result.map_err(frame::write_error)?;
        #[cfg(feature = "test-hooks")]
        {
            written += 1;
            kill_point(written, !tail.is_empty());
        }
        if tail.is_empty() {
            return Ok(());
        }
        rest = tail;
        first = false;
    }
}

/// As framed writers do (see `frame::GROW_AT`): a large message first
/// raises the FIFO's capacity, if the kernel allows.
#[cold]
fn grow_pipe(fd: BorrowedFd<'_>) {
    if let Ok(cap) = sys::pipe_capacity(fd) {
        if cap < frame::LARGE_CAPACITY {
            let _ = sys::set_pipe_capacity(fd, frame::LARGE_CAPACITY);
        }
    }
}

// ---------------------------------------------------------------- reader

/// The read-ahead buffer's size while whole small messages come.
const READ_AHEAD: usize = 64 * 1024;
/// The read-ahead while writers have messages in progress: a multi-chunk
/// message costs the writer one system call per chunk, and every read that
/// makes room wakes every writer waiting for it, so the reader takes as
/// much per read as a FIFO raised to 1 MiB holds in a quarter.
const LARGE_READ_AHEAD: usize = 256 * 1024;
/// Chunks of at most this many bytes are read one per `read` when nothing
/// is buffered, as the framed decoder does (a reader that empties the
/// FIFO every time makes every small write wake it).
const EXACT_READ_MAX: usize = 1024;
/// How long a receive waits with nothing arriving, while writers have a
/// message in progress, before it checks whether they are still alive.
pub(super) const LIVENESS_IDLE: Duration = Duration::from_millis(50);

/// What the reader holds of one writer's message in progress.
#[derive(Debug)]
enum Partial {
    /// The chunks so far.
    Receiving { seq: u32, data: Vec<u8> },
    /// The rest of a message refused as too large, or whose start never
    /// came: its chunks are dropped until its last one.
    Skipping { seq: u32 },
}

/// What one whole chunk came to.
enum Step {
    /// A whole message, in `buf[start..end]` (a single-chunk message).
    InBuffer(usize, usize),
    /// A whole message put together from several chunks.
    Assembled(Vec<u8>),
    /// Nothing to hand out yet.
    Nothing,
}

/// The chunked decoder: reads ahead, and keeps each writer's message in
/// progress until its last chunk comes or its writer is known to be gone.
#[derive(Debug)]
pub(super) struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    partials: HashMap<WriterId, Partial>,
    max: u64,
    poisoned: bool,
    abandoned: u64,
    pub(super) check_liveness: bool,
    guess: usize,
}

impl Decoder {
    pub(super) fn new() -> Decoder {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            partials: HashMap::new(),
            max: frame::UNLIMITED,
            poisoned: false,
            abandoned: 0,
            check_liveness: true,
            guess: READ_AHEAD,
        }
    }

    pub(super) fn set_max_message_size(&mut self, max: u64) {
        self.max = max;
    }

    pub(super) fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// Messages in progress: writers whose first chunk came and whose last
    /// did not yet.
    pub(super) fn in_progress(&self) -> usize {
        self.partials
            .values()
            .filter(|p| matches!(p, Partial::Receiving { .. }))
            .count()
    }

    /// Bytes the reader holds for messages in progress.
    pub(super) fn held_bytes(&self) -> usize {
        self.partials
            .values()
            .map(|p| match p {
                Partial::Receiving { data, .. } => data.capacity(),
                Partial::Skipping { .. } => 0,
            })
            .sum()
    }

    pub(super) fn has_buffered(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Drops `writer`'s message in progress, if any, counting it.
    fn abandon(&mut self, writer: &WriterId) {
        // Most messages are single chunks with nothing in progress: no
        // hashing then.
        if self.partials.is_empty() {
            return;
        }
        if let Some(Partial::Receiving { .. }) = self.partials.remove(writer) {
            self.abandoned += 1;
        }
    }

    /// Receives one whole message, handing it to `deliver` (as a slice
    /// borrowed from the buffer or an assembled one), waiting at most until
    /// `deadline`.
    pub(super) fn recv<T>(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        deliver: impl FnOnce(Delivered<'_>) -> T,
    ) -> Result<T> {
        if self.poisoned {
            return Err(Error::corrupt(
                "an earlier error in a chunk header left the stream out of step",
            ));
        }
        loop {
            match self.next_step() {
                Ok(Some(Step::InBuffer(start, end))) => {
                    return Ok(deliver(Delivered::Slice(&self.buf[start..end])));
                }
                Ok(Some(Step::Assembled(v))) => return Ok(deliver(Delivered::Owned(v))),
                Ok(Some(Step::Nothing)) => continue,
                Ok(None) => {}
                Err(e) => {
                    if matches!(e, Error::Corrupt { .. }) {
                        self.poisoned = true;
                    }
                    return Err(e);
                }
            }
            if let Err(e) = self.read_more(fd, deadline) {
                if matches!(e, Error::Truncated { .. }) {
                    self.poisoned = true;
                }
                return Err(e);
            }
        }
    }

    /// Handles the chunk at `buf[pos..]`: `Ok(None)` if it is not whole yet.
    fn next_step(&mut self) -> Result<Option<Step>> {
        let Some(h) = Header::parse(&self.buf[self.pos..])? else {
            return Ok(None);
        };
        let start = self.pos + CHUNK_HEADER_LEN;
        let end = start + h.len;
        if self.buf.len() < end {
            return Ok(None);
        }
        self.pos = end;
        // One read per small message only while whole small messages come:
        // the chunks of long messages are read ahead.
        self.guess = if h.first && h.last && CHUNK_HEADER_LEN + h.len <= EXACT_READ_MAX {
            CHUNK_HEADER_LEN + h.len
        } else {
            READ_AHEAD
        };
        if h.first {
            // A writer starts a message only once it finished the one
            // before, so a message still in progress under its id was
            // abandoned (its writer died and its pid and nonce came again).
            self.abandon(&h.writer);
            if h.len as u64 > self.max {
                if !h.last {
                    self.partials
                        .insert(h.writer, Partial::Skipping { seq: h.seq });
                }
                return Err(self.too_large(h.len as u64));
            }
            if h.last {
                return Ok(Some(Step::InBuffer(start, end)));
            }
            let mut data = Vec::with_capacity((2 * CHUNK_PAYLOAD_MAX).min(self.max as usize));
            data.extend_from_slice(&self.buf[start..end]);
            self.partials
                .insert(h.writer, Partial::Receiving { seq: h.seq, data });
            return Ok(Some(Step::Nothing));
        }
        let max = self.max;
        match self.partials.entry(h.writer) {
            Entry::Occupied(mut o) => match o.get_mut() {
                Partial::Receiving { seq, data } if *seq == h.seq => {
                    let len = (data.len() + h.len) as u64;
                    if len > max {
                        if h.last {
                            o.remove();
                        } else {
                            o.insert(Partial::Skipping { seq: h.seq });
                        }
                        return Err(Error::TooLarge { len, max });
                    }
                    let need = data.len() + h.len;
                    if need > data.capacity() {
                        // Doubling, but never past the limit: the reader
                        // holds at most `max` bytes per message.
                        let cap = (2 * data.capacity()).max(need).min(max as usize);
                        data.reserve_exact(cap - data.len());
                    }
                    data.extend_from_slice(&self.buf[start..end]);
                    if h.last {
                        let Partial::Receiving { data, .. } = o.remove() else {
                            unreachable!("matched above")
                        };
                        return Ok(Some(Step::Assembled(data)));
                    }
                }
                Partial::Skipping { seq } if *seq == h.seq => {
                    if h.last {
                        o.remove();
                    }
                }
                other => {
                    // Chunks of another message than the one in progress:
                    // both are incomplete.
                    let was_receiving = matches!(other, Partial::Receiving { .. });
                    self.abandoned += 1 + u64::from(was_receiving);
                    if h.last {
                        o.remove();
                    } else {
                        o.insert(Partial::Skipping { seq: h.seq });
                    }
                }
            },
            Entry::Vacant(v) => {
                // The rest of a message whose start never came.
                self.abandoned += 1;
                if !h.last {
                    v.insert(Partial::Skipping { seq: h.seq });
                }
            }
        }
        Ok(Some(Step::Nothing))
    }

    fn too_large(&self, len: u64) -> Error {
        Error::TooLarge { len, max: self.max }
    }

    /// Reads more bytes; at the end of the stream abandons every message in
    /// progress and returns [`Error::Closed`] (or [`Error::Truncated`] for
    /// an unfinished chunk, which only a writer of another format leaves).
    fn read_more(&mut self, fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.wait(fd, deadline)?;
        let have = self.buf.len();
        let ahead = if self.partials.is_empty() {
            READ_AHEAD
        } else {
            LARGE_READ_AHEAD
        };
        let want = match Header::parse(&self.buf) {
            Ok(Some(h)) if h.first && h.last && CHUNK_HEADER_LEN + h.len <= EXACT_READ_MAX => {
                CHUNK_HEADER_LEN + h.len - have
            }
            Ok(Some(_)) => ahead,
            _ if !self.partials.is_empty() => ahead,
            _ => self.guess.saturating_sub(have),
        };
        let room = want.min(ahead.saturating_sub(have)).max(1);
        let n = sys::read_append(fd, &mut self.buf, room).map_err(|e| Error::io("read", e))?;
        if n > 0 {
            return Ok(());
        }
        // End of stream: every writer is gone, so is every message in
        // progress.
        let writers: Vec<WriterId> = self.partials.keys().copied().collect();
        for w in &writers {
            self.abandon(w);
        }
        self.partials.clear();
        if self.buf.is_empty() {
            return Err(Error::Closed);
        }
        let expected = match Header::parse(&self.buf) {
            Ok(Some(h)) => (CHUNK_HEADER_LEN + h.len) as u64,
            _ => CHUNK_HEADER_LEN as u64,
        };
        Err(Error::Truncated {
            expected,
            got: self.buf.len() as u64,
        })
    }

    /// Waits until the FIFO is readable or `deadline` passes. While writers
    /// have a message in progress and nothing arrives for
    /// [`LIVENESS_IDLE`], checks whether they are alive, and abandons the
    /// messages of those that are not.
    fn wait(&mut self, fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
        loop {
            let watching = self.check_liveness && self.in_progress() > 0;
            let until = if watching {
                let idle = sys::deadline_after(LIVENESS_IDLE);
                Some(deadline.map_or(idle, |d| d.min(idle)))
            } else if deadline.is_some() {
                deadline
            } else {
                return Ok(()); // a blocking read waits
            };
            let ready = sys::wait_readable(fd, until).map_err(|e| Error::io("poll", e))?;
            if ready == Readiness::Ready {
                return Ok(());
            }
            if watching {
                self.reap_dead_writers(fd)?;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
        }
    }

    /// Abandons the messages in progress of writers that are gone. First
    /// the writers are found dead, then the FIFO is found empty: all a dead
    /// writer wrote is in the FIFO before it dies, so nothing of its message
    /// can still come.
    fn reap_dead_writers(&mut self, fd: BorrowedFd<'_>) -> Result<()> {
        // Without /proc (some sandboxes) every pid would look dead: then
        // nobody is taken for dead, and the end of the stream decides.
        static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if !*PROC.get_or_init(|| sys::process_alive(sys::getpid())) {
            return Ok(());
        }
        let dead: Vec<WriterId> = self
            .partials
            .iter()
            .filter(|(w, p)| {
                matches!(p, Partial::Receiving { .. }) && !sys::process_alive(w.pid as sys::Pid)
            })
            .map(|(w, _)| *w)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        let now = sys::wait_readable(fd, Some(Instant::now())).map_err(|e| Error::io("poll", e))?;
        if now == Readiness::Ready || self.has_buffered() {
            return Ok(()); // read what came first
        }
        for w in &dead {
            self.abandon(w);
        }
        Ok(())
    }
}

/// A message handed out by [`Decoder::recv`].
pub(super) enum Delivered<'a> {
    Slice(&'a [u8]),
    Owned(Vec<u8>),
}

impl Delivered<'_> {
    pub(super) fn into_vec(self) -> Vec<u8> {
        match self {
            Delivered::Slice(s) => s.to_vec(),
            Delivered::Owned(v) => v,
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            Delivered::Slice(s) => s,
            Delivered::Owned(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pid: u32) -> WriterId {
        WriterId { pid, nonce: 7 }
    }

    fn chunk(w: WriterId, seq: u32, first: bool, last: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = Header {
            first,
            last,
            len: payload.len(),
            writer: w,
            seq,
        }
        .encode()
        .to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn headers_round_trip_and_fit_pipe_buf() {
        let h = Header {
            first: true,
            last: false,
            len: CHUNK_PAYLOAD_MAX,
            writer: WriterId {
                pid: 0xdead_beef,
                nonce: 0x0102_0304,
            },
            seq: u32::MAX,
        };
        let bytes = h.encode();
        assert_eq!(bytes[0], MAGIC);
        assert_eq!(bytes[1], 0x11);
        assert_eq!(Header::parse(&bytes).unwrap(), Some(h));
        assert_eq!(Header::parse(&bytes[..15]).unwrap(), None);
        assert_eq!(CHUNK_HEADER_LEN + CHUNK_PAYLOAD_MAX, 4096);
    }

    #[test]
    fn a_framed_header_is_named_as_framed_mode() {
        for first in [0x00u8, 0x7f, 0xff] {
            let e = Header::parse(&[first, 0, 0, 5]).unwrap_err();
            assert_eq!(e.to_string(), format!("corrupt stream: {FRAMED_WRITER}"));
        }
        let e = Header::parse(&[0x80]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt stream: byte 0x80 where a chunk header should start (a chunk starts 0xc5)"
        );
        let mut v2 = chunk(id(1), 0, true, true, b"x");
        v2[1] = 0x23;
        let e = Header::parse(&v2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt stream: chunk format version 2 (flags 0x03); this reader reads version 1"
        );
    }

    #[test]
    fn a_framed_decoder_error_on_a_chunk_is_recognised() {
        let c = chunk(id(1), 0, true, true, b"hello");
        let e = frame::parse_header(&c).unwrap_err();
        assert!(is_chunk_header_error(&e), "{e}");
        let other = frame::parse_header(&(-2i32).to_be_bytes()).unwrap_err();
        assert!(!is_chunk_header_error(&other));
    }

    /// Runs the decoder's chunk steps over `stream` (no fd): the messages
    /// and errors in order.
    fn decode(dec: &mut Decoder, stream: &[u8]) -> Vec<std::result::Result<Vec<u8>, String>> {
        dec.buf.extend_from_slice(stream);
        let mut out = Vec::new();
        loop {
            match dec.next_step() {
                Ok(Some(Step::InBuffer(s, e))) => out.push(Ok(dec.buf[s..e].to_vec())),
                Ok(Some(Step::Assembled(v))) => out.push(Ok(v)),
                Ok(Some(Step::Nothing)) => {}
                Ok(None) => return out,
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }

    #[test]
    fn interleaved_writers_are_put_back_together() {
        let (a, b) = (id(1), id(2));
        let mut s = chunk(a, 0, true, false, b"aa");
        s.extend(chunk(b, 0, true, true, b"b0"));
        s.extend(chunk(a, 0, false, false, b"AA"));
        s.extend(chunk(b, 1, true, false, b"b1"));
        s.extend(chunk(a, 0, false, true, b"!"));
        s.extend(chunk(b, 1, false, true, b"B1"));
        let mut dec = Decoder::new();
        let got = decode(&mut dec, &s);
        let want: Vec<std::result::Result<Vec<u8>, String>> = vec![
            Ok(b"b0".to_vec()),
            Ok(b"aaAA!".to_vec()),
            Ok(b"b1B1".to_vec()),
        ];
        assert_eq!(got, want);
        assert_eq!((dec.abandoned(), dec.in_progress()), (0, 0));
    }

    #[test]
    fn a_message_started_again_or_continued_without_start_is_abandoned() {
        let a = id(1);
        let mut s = chunk(a, 0, true, false, b"dead");
        s.extend(chunk(a, 0, true, true, b"new"));
        s.extend(chunk(a, 5, false, false, b"orphan"));
        s.extend(chunk(a, 5, false, true, b"orphan end"));
        let mut dec = Decoder::new();
        assert_eq!(decode(&mut dec, &s), vec![Ok(b"new".to_vec())]);
        assert_eq!((dec.abandoned(), dec.in_progress()), (2, 0));
    }

    #[test]
    fn a_partial_message_over_the_limit_is_an_error_and_the_rest_is_skipped() {
        let (a, b) = (id(1), id(2));
        let mut s = chunk(a, 0, true, false, &[1; 60]);
        s.extend(chunk(b, 0, true, true, b"ok"));
        s.extend(chunk(a, 0, false, false, &[1; 60]));
        s.extend(chunk(a, 0, false, true, &[1; 60]));
        s.extend(chunk(a, 1, true, true, b"next"));
        let mut dec = Decoder::new();
        dec.set_max_message_size(100);
        let got = decode(&mut dec, &s);
        let want: Vec<std::result::Result<Vec<u8>, String>> = vec![
            Ok(b"ok".to_vec()),
            Err("message of 120 bytes is over the limit of 100 bytes".into()),
            Ok(b"next".to_vec()),
        ];
        assert_eq!(got, want);
        assert_eq!(
            (dec.abandoned(), dec.in_progress(), dec.held_bytes()),
            (0, 0, 0)
        );
    }
}
