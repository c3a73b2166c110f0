//! Hostile input to the frame decoder, with a counting global allocator
//! that keeps, per thread, the bytes live now and the peak *demanded* (a
//! request counts toward the peak even if the system refuses it, and
//! before any page of it is touched: a lazy 4 GiB `with_capacity` shows).
//!
//! What is proven:
//! - A header claiming 2 GiB or 4 GiB, then a few bytes, then end of stream,
//!   over a real pipe, is `Truncated` with the right `expected`/`got`, and
//!   the receive's peak allocation stays under 2 MiB: never more than what
//!   arrived plus one [`CHUNK`].
//! - For any byte stream, in any read chunking (with `EINTR` thrown in),
//!   and any receive limit: the decoder never panics; it returns whole
//!   messages, each of which re-encodes to the next bytes of the input (it
//!   never returns bytes that were not sent as one message), then exactly
//!   one of `Closed`, `Truncated`, `Corrupt`, `TooLarge`, and nothing but
//!   errors after it; the messages and the end agree exactly with an
//!   independent reading of the wire format; and the peak allocation stays
//!   within (bytes of input) + 2 x CHUNK + [`SLACK`].
//! - Each of those checks fails on a decoder with the matching flaw
//!   (trusting the header with memory, returning a cut frame, reading the
//!   length unsigned, one read per payload), so they have teeth.
//!
//! Its own test binary, because the counting allocator is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read};
use std::ops::Range;
use std::os::fd::AsFd;
use std::time::Duration;

use ipc_harness::frame::{self, CHUNK, Decoder, HEADER_LEN, READ_AHEAD, ReadSource, UNLIMITED};
use ipc_harness::harness::fork::{self, serial};
use ipc_harness::harness::payload::{self, MsgId};
use ipc_harness::harness::{proptest_config, sizes};
use ipc_harness::sys::{self, WriteKind};
use ipc_harness::{Error, pipe};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------
// The counting allocator.
// ---------------------------------------------------------------------------

thread_local! {
    /// Bytes allocated by this thread and not freed yet (negative if it
    /// frees what other threads allocated).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The most `LIVE` has been, or would have been had every request been
    /// granted, since the last [`peak_during`] began.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn demand(extra: usize) {
    let _ = LIVE.try_with(|live| {
        let want = live.get().saturating_add(extra as isize);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(want)));
    });
}

fn granted(delta: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, so the
// memory handed out is exactly what `System` hands out, under the contract
// of the caller. The bookkeeping touches only const-initialised thread-locals
// holding `Cell<isize>` (no destructor, no lazy registration), so it neither
// allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        demand(layout.size());
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            granted(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        demand(layout.size());
        // SAFETY: our caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            granted(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with
        // `layout`, as our caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        granted(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        demand(new_size.saturating_sub(layout.size()));
        // SAFETY: our caller upholds `GlobalAlloc::realloc`'s contract, and
        // `ptr` came from `System` with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            granted(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak bytes this thread had
/// allocated (or asked for) during it, above what it held when `f` began.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

/// The "small constant" of the bound: the read-ahead buffer, twice, for
/// error texts and bookkeeping.
const SLACK: usize = 2 * READ_AHEAD;

/// The most a decode of `input_len` bytes may allocate at once.
fn bound(input_len: usize) -> usize {
    input_len + 2 * CHUNK + SLACK
}

#[test]
fn the_counting_allocator_counts() {
    let ((), peak) = peak_during(|| drop(vec![1u8; 3 * MIB]));
    assert!((3 * MIB..3 * MIB + 4096).contains(&peak), "{peak}");
    let ((), peak) = peak_during(|| ());
    assert_eq!(peak, 0);
    // A lazy 4 GiB request counts whether or not the system grants it.
    let ((), peak) = peak_during(|| {
        let mut v: Vec<u8> = Vec::new();
        let _ = v.try_reserve_exact(4 << 30);
    });
    assert!(peak >= 4 << 30, "{peak}");
    // Growth counts the new size, and what is freed is not counted again.
    let ((), peak) = peak_during(|| {
        let mut v = vec![0u8; MIB];
        v.reserve_exact(MIB);
        drop(v);
        drop(vec![0u8; MIB]);
    });
    assert!((2 * MIB..2 * MIB + 4096).contains(&peak), "{peak}");
}

// ---------------------------------------------------------------------------
// A lying header over a real pipe.
// ---------------------------------------------------------------------------

fn long_header(len: u64) -> Vec<u8> {
    let mut h = (-1i32).to_be_bytes().to_vec();
    h.extend(len.to_be_bytes());
    h
}

/// Writes `bytes` into a new pipe, closes the write end, and receives once.
fn receive_once_over_a_pipe(bytes: &[u8]) -> (ipc_harness::Result<Vec<u8>>, usize) {
    let (tx, mut rx) = pipe().unwrap();
    let fd = tx.into_fd();
    // Fits in the pipe: no reader needed yet.
    sys::write_all_vectored(fd.as_fd(), WriteKind::Pipe, &[bytes]).unwrap();
    drop(fd);
    peak_during(|| rx.recv_bytes())
}

#[test]
fn a_header_claiming_gibibytes_then_eof_is_truncated_and_allocates_little() {
    let _serial = serial();
    let mut short = 0x7fff_ffffi32.to_be_bytes().to_vec();
    short.extend(b"abcde");
    let (got, peak) = receive_once_over_a_pipe(&short);
    assert!(
        matches!(
            got,
            Err(Error::Truncated {
                expected: 0x7fff_ffff,
                got: 5
            })
        ),
        "{got:?}"
    );
    assert!(
        peak < 2 * MIB,
        "a 2 GiB claim made the receive allocate {peak}"
    );

    let mut long = long_header(4 << 30);
    long.extend(b"abc");
    let (got, peak) = receive_once_over_a_pipe(&long);
    assert!(
        matches!(got, Err(Error::Truncated { expected, got: 3 }) if expected == 4 << 30),
        "{got:?}"
    );
    assert!(
        peak < 2 * MIB,
        "a 4 GiB claim made the receive allocate {peak}"
    );
}

/// A forked writer claims 4 GiB, sends 3 MiB of it and exits: the receiver
/// allocates no more than what arrived plus one chunk (and its read-ahead).
#[test]
fn a_writer_lying_about_4_gib_costs_what_it_sent_plus_a_chunk() {
    let _serial = serial();
    let fds = sys::open_fds().unwrap();
    let sent = 3 * MIB;
    let (tx, mut rx) = pipe().unwrap();
    let child = fork::spawn(move || {
        let fd = tx.into_fd();
        let body = vec![7u8; sent];
        let header = long_header(4 << 30);
        sys::write_all_vectored(fd.as_fd(), WriteKind::Pipe, &[&header, &body]).unwrap();
        Vec::new()
    })
    .unwrap();
    let (got, peak) = peak_during(|| rx.recv_bytes());
    child
        .wait(Duration::from_secs(30))
        .unwrap()
        .expect_success();
    assert!(
        matches!(got, Err(Error::Truncated { expected, got }) if expected == 4 << 30 && got == sent as u64),
        "{got:?}"
    );
    assert!(
        peak <= sent + CHUNK + SLACK,
        "{peak} bytes for {sent} that arrived"
    );
    drop(rx);
    assert_eq!(sys::open_fds().unwrap(), fds, "fds leaked");
    assert_eq!(fork::unreaped_children(), Vec::<i32>::new());
}

// ---------------------------------------------------------------------------
// The wire format, read independently of the decoder (the oracle).
// ---------------------------------------------------------------------------

/// How a stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Closed,
    Truncated { expected: u64, got: u64 },
    Corrupt,
    TooLarge { len: u64, max: u64 },
}

impl End {
    fn of(e: &Error) -> Option<End> {
        Some(match *e {
            Error::Closed => End::Closed,
            Error::Truncated { expected, got } => End::Truncated { expected, got },
            Error::Corrupt { .. } => End::Corrupt,
            Error::TooLarge { len, max } => End::TooLarge { len, max },
            _ => return None,
        })
    }
}

/// Reads `input` by the letter of the format: the payload ranges of the
/// whole frames, and how the stream ends.
fn spec(input: &[u8], max: u64) -> (Vec<Range<usize>>, End) {
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &input[pos..];
        if rest.is_empty() {
            return (frames, End::Closed);
        }
        if rest.len() < 4 {
            let got = rest.len() as u64;
            return (frames, End::Truncated { expected: 4, got });
        }
        let short = i32::from_be_bytes(rest[..4].try_into().unwrap());
        let (hlen, len) = match short {
            0.. => (4, short as u64),
            -1 if rest.len() < 12 => {
                let got = rest.len() as u64;
                return (frames, End::Truncated { expected: 12, got });
            }
            -1 => (12, u64::from_be_bytes(rest[4..12].try_into().unwrap())),
            _ => return (frames, End::Corrupt),
        };
        if len > max {
            return (frames, End::TooLarge { len, max });
        }
        let have = (rest.len() - hlen) as u64;
        if have < len {
            return (
                frames,
                End::Truncated {
                    expected: len,
                    got: have,
                },
            );
        }
        let start = pos + hlen;
        frames.push(start..start + len as usize);
        pos = start + len as usize;
    }
}

// ---------------------------------------------------------------------------
// Sources and decoders.
// ---------------------------------------------------------------------------

/// An in-memory stream that hands out its bytes in the chunk sizes of
/// `plan`, in turn; a 0 in the plan is one `Interrupted` error instead.
struct Chunked<'a> {
    data: &'a [u8],
    plan: &'a [usize],
    turn: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        let size = self.plan[self.turn % self.plan.len()];
        self.turn += 1;
        if size == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Src<'a> = ReadSource<Chunked<'a>>;

/// Anything that takes messages off a stream: ours, or a flawed one.
trait StreamDecoder {
    fn recv(&mut self, src: &mut Src<'_>) -> ipc_harness::Result<Vec<u8>>;
}

struct Ours(Decoder);

impl StreamDecoder for Ours {
    fn recv(&mut self, src: &mut Src<'_>) -> ipc_harness::Result<Vec<u8>> {
        self.0.recv(src, None).map(frame::Frame::into_vec)
    }
}

fn ours(max: u64) -> Box<dyn StreamDecoder> {
    Box::new(Ours(Decoder::new(max)))
}

/// The one thing a [`Naive`] decoder gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// None: the skeleton itself, to show the checks pass it.
    None,
    /// `Vec::with_capacity(len)` from the header: a lie costs memory.
    TrustsHeader,
    /// A stream that ends inside a payload yields what arrived as a message.
    CutFrameIsAMessage,
    /// The length is read as `u32`: negative lengths and the long form are
    /// taken as lengths near 4 GiB.
    UnsignedLength,
    /// The payload is one `read` call (`os.read(fd, n)`): a short read
    /// returns a prefix and leaves the rest to be misread as a header.
    OneReadPerPayload,
}

/// A plain blocking decoder, correct but for its one [`Flaw`].
struct Naive {
    flaw: Flaw,
    max: u64,
    poisoned: bool,
}

fn naive(flaw: Flaw) -> impl Fn(u64) -> Box<dyn StreamDecoder> {
    move |max| {
        Box::new(Naive {
            flaw,
            max,
            poisoned: false,
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{e}"),
        }
    }
    n
}

impl StreamDecoder for Naive {
    fn recv(&mut self, src: &mut Src<'_>) -> ipc_harness::Result<Vec<u8>> {
        if self.poisoned {
            return Err(Error::corrupt("poisoned"));
        }
        let r = self.recv_inner(&mut src.0);
        if matches!(&r, Err(e) if !e.is_closed()) {
            self.poisoned = true;
        }
        r
    }
}

impl Naive {
    fn recv_inner(&mut self, r: &mut Chunked<'_>) -> ipc_harness::Result<Vec<u8>> {
        let mut h = [0u8; 12];
        match read_full(r, &mut h[..4]) {
            0 => return Err(Error::Closed),
            n if n < 4 => {
                return Err(Error::Truncated {
                    expected: 4,
                    got: n as u64,
                });
            }
            _ => {}
        }
        let short = i32::from_be_bytes(h[..4].try_into().unwrap());
        let len = if self.flaw == Flaw::UnsignedLength {
            short as u32 as u64
        } else {
            match short {
                0.. => short as u64,
                -1 => {
                    let n = read_full(r, &mut h[4..]);
                    if n < 8 {
                        return Err(Error::Truncated {
                            expected: 12,
                            got: 4 + n as u64,
                        });
                    }
                    u64::from_be_bytes(h[4..].try_into().unwrap())
                }
                _ => return Err(Error::corrupt("negative length")),
            }
        };
        if len > self.max {
            return Err(Error::TooLarge { len, max: self.max });
        }
        let mut msg: Vec<u8> = Vec::new();
        if self.flaw == Flaw::TrustsHeader {
            // The flaw: memory on the header's word alone (lazily mapped on
            // Linux, but demanded all the same).
            // A refusal (a length past isize::MAX) is ignored, so that the
            // memory check alone is what catches this decoder.
            let _ = msg.try_reserve_exact(len as usize);
        }
        let mut tmp = vec![0u8; 64 * 1024];
        while (msg.len() as u64) < len {
            let want = ((len - msg.len() as u64) as usize).min(tmp.len());
            let n = loop {
                match r.read(&mut tmp[..want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other.unwrap(),
                }
            };
            if n == 0 {
                if self.flaw == Flaw::CutFrameIsAMessage {
                    return Ok(msg);
                }
                return Err(Error::Truncated {
                    expected: len,
                    got: msg.len() as u64,
                });
            }
            if msg.capacity() - msg.len() < n {
                msg.reserve_exact(n.max(64 * 1024).min((len as usize) - msg.len()));
            }
            msg.extend_from_slice(&tmp[..n]);
            if self.flaw == Flaw::OneReadPerPayload {
                break;
            }
        }
        Ok(msg)
    }
}

// ---------------------------------------------------------------------------
// The property.
// ---------------------------------------------------------------------------

/// What a decode came to: how many messages, and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    messages: usize,
    end: End,
}

/// Decodes `input` read in `plan`'s chunks with the decoder `make(max)`
/// gives, and checks every property in the module docs. Returns what it
/// decoded, or the first breach in words.
fn check_decode(
    input: &[u8],
    plan: &[usize],
    max: u64,
    make: &dyn Fn(u64) -> Box<dyn StreamDecoder>,
) -> Result<Decoded, String> {
    let (frames, want_end) = spec(input, max);
    let mut src = ReadSource(Chunked {
        data: input,
        plan,
        turn: 0,
    });
    let mut dec = make(max);
    // Every message takes at least a header's bytes of input: room for
    // them all is made before the measurement.
    let room = input.len() / HEADER_LEN + 1;
    let mut got: Vec<Vec<u8>> = Vec::with_capacity(room);
    let (first_err, peak) = peak_during(|| {
        loop {
            match dec.recv(&mut src) {
                Ok(m) if got.len() < room => got.push(m),
                Ok(_) => return None,
                Err(e) => return Some(e),
            }
        }
    });
    let err =
        first_err.ok_or_else(|| format!("more than {room} messages from {} bytes", input.len()))?;

    if peak > bound(input.len()) {
        return Err(format!(
            "peak allocation {peak} bytes decoding {} bytes of input: over the bound {}",
            input.len(),
            bound(input.len())
        ));
    }

    // Each message re-encodes to the next bytes of the input (in the short
    // form `frame::encode` writes, or the long form a peer may use).
    let mut pos = 0;
    for (i, m) in got.iter().enumerate() {
        let rest = &input[pos..];
        let short = frame::encode(m);
        let mut long = long_header(m.len() as u64);
        long.extend_from_slice(m);
        if rest.starts_with(&short) {
            pos += short.len();
        } else if rest.starts_with(&long) {
            pos += long.len();
        } else {
            return Err(format!(
                "receive #{i} ({} bytes) is not the message sent at offset {pos} of the input",
                m.len()
            ));
        }
    }

    let end = End::of(&err).ok_or_else(|| {
        format!("the stream ended in {err:?}, not Closed, Truncated, Corrupt or TooLarge")
    })?;
    if got.len() != frames.len() || end != want_end {
        return Err(format!(
            "decoded {} messages then {end:?}; the format says {} messages then {want_end:?}",
            got.len(),
            frames.len()
        ));
    }
    for (i, (m, r)) in got.iter().zip(&frames).enumerate() {
        if m[..] != input[r.clone()] {
            return Err(format!("receive #{i} differs from the payload at {r:?}"));
        }
    }

    // Nothing but errors after the end: Closed stays Closed; any framing
    // error leaves the decoder refusing (Corrupt).
    match (dec.recv(&mut src), &end) {
        (Ok(m), _) => {
            return Err(format!("a message of {} bytes after {end:?}", m.len()));
        }
        (Err(Error::Closed), End::Closed) => {}
        (Err(Error::Corrupt { .. }), e) if *e != End::Closed => {}
        (Err(e), _) => return Err(format!("after {end:?}, a receive gave {e:?}")),
    }
    Ok(Decoded {
        messages: got.len(),
        end,
    })
}

// ---------------------------------------------------------------------------
// Streams: valid ones, damaged ones, and arbitrary bytes.
// ---------------------------------------------------------------------------

/// A valid frame: its payload length, and whether it uses the long header.
type FrameSpec = (usize, bool);

#[derive(Debug, Clone)]
enum Damage {
    /// Cut the stream here.
    Truncate(Index),
    /// Flip one bit of one frame's header.
    FlipHeaderBit(Index, u8),
    /// Replace one frame's first 4 header bytes with a negative length.
    Negative(Index, i32),
    /// Replace one frame's header with `-1` and this length.
    HugeLong(Index, u64),
    /// Set one byte anywhere.
    Overwrite(Index, u8),
    /// Append bytes.
    Append(Vec<u8>),
}

#[derive(Debug, Clone)]
enum StreamSpec {
    Framed(Vec<FrameSpec>, Vec<Damage>),
    Raw(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Case {
    stream: StreamSpec,
    /// Read chunk sizes (0: one `Interrupted`).
    plan: Vec<usize>,
    max: u64,
}

/// Builds a valid stream and the (start, length) of each frame's header.
fn build(frames: &[FrameSpec]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut out = Vec::new();
    let mut headers = Vec::new();
    for (seq, &(len, long)) in frames.iter().enumerate() {
        let start = out.len();
        if long {
            out.extend(long_header(len as u64));
        } else {
            out.extend((len as i32).to_be_bytes());
        }
        headers.push((start, out.len() - start));
        out.extend(payload::make(
            MsgId {
                producer: 3,
                seq: seq as u32,
            },
            len,
        ));
    }
    (out, headers)
}

impl Case {
    fn input(&self) -> Vec<u8> {
        match &self.stream {
            StreamSpec::Raw(bytes) => bytes.clone(),
            StreamSpec::Framed(frames, damages) => {
                let (mut s, mut headers) = build(frames);
                for d in damages {
                    apply(&mut s, &mut headers, d);
                }
                s
            }
        }
    }

    /// The chunk plan, coarsened for big inputs so a case stays fast.
    fn plan_for(&self, input_len: usize) -> Vec<usize> {
        let floor = input_len / 200;
        let mut plan: Vec<usize> = self
            .plan
            .iter()
            .map(|&c| if c == 0 { 0 } else { c.max(floor) })
            .collect();
        if plan.iter().all(|&c| c == 0) {
            plan.push(floor.max(1));
        }
        plan
    }
}

fn apply(s: &mut Vec<u8>, headers: &mut Vec<(usize, usize)>, d: &Damage) {
    let frame = |i: &Index, headers: &[(usize, usize)]| {
        (!headers.is_empty()).then(|| headers[i.index(headers.len())])
    };
    match d {
        Damage::Truncate(i) => {
            let at = i.index(s.len() + 1);
            s.truncate(at);
            headers.retain(|&(start, len)| start + len <= at);
        }
        Damage::FlipHeaderBit(i, bit) => {
            if let Some((start, len)) = frame(i, headers) {
                let bit = *bit as usize % (8 * len);
                s[start + bit / 8] ^= 0x80 >> (bit % 8);
            }
        }
        Damage::Negative(i, n) => {
            if let Some((start, _)) = frame(i, headers) {
                s[start..start + 4].copy_from_slice(&n.to_be_bytes());
            }
        }
        Damage::HugeLong(i, len) => {
            if let Some((start, hlen)) = frame(i, headers) {
                s.splice(start..start + hlen, long_header(*len));
                // Headers after this one moved; only this one is known now.
                headers.retain(|&(st, _)| st < start);
                headers.push((start, 12));
            }
        }
        Damage::Overwrite(i, b) => {
            if !s.is_empty() {
                let at = i.index(s.len());
                s[at] = *b;
            }
        }
        Damage::Append(bytes) => s.extend_from_slice(bytes),
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => any::<Index>().prop_map(Damage::Truncate),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::FlipHeaderBit(i, b)),
        1 => (any::<Index>(), prop_oneof![Just(-2i32), Just(i32::MIN), i32::MIN..=-2])
            .prop_map(|(i, n)| Damage::Negative(i, n)),
        1 => (
            any::<Index>(),
            prop_oneof![Just(4u64 << 30), Just(u64::MAX), Just(1u64 << 63), (1u64 << 31)..]
        )
            .prop_map(|(i, n)| Damage::HugeLong(i, n)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Overwrite(i, b)),
        1 => proptest::collection::vec(any::<u8>(), 1..16).prop_map(Damage::Append),
    ]
}

fn frame_spec(max: usize) -> impl Strategy<Value = FrameSpec> {
    (sizes::size(max), proptest::bool::weighted(0.15))
}

fn frames() -> impl Strategy<Value = Vec<FrameSpec>> {
    prop_oneof![
        6 => proptest::collection::vec(frame_spec(150_000), 0..10),
        1 => (
            proptest::collection::vec(frame_spec(5000), 0..4),
            ((CHUNK - 3)..(2 * CHUNK + 5000), proptest::bool::ANY),
            proptest::collection::vec(frame_spec(5000), 0..4),
        )
            .prop_map(|(mut a, big, b)| {
                a.push(big);
                a.extend(b);
                a
            }),
    ]
}

/// Bytes biased toward the ones that make short, zero and negative lengths.
fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => Just(0u8),
        1 => Just(0xffu8),
        1 => Just(0x7fu8),
        1 => Just(0x80u8),
        2 => 1u8..8,
        3 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..200)
}

fn case() -> impl Strategy<Value = Case> {
    let stream = prop_oneof![
        3 => (frames(), proptest::collection::vec(damage(), 0..=2))
            .prop_map(|(f, d)| StreamSpec::Framed(f, d)),
        1 => raw_bytes().prop_map(StreamSpec::Raw),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(StreamSpec::Raw),
    ];
    let chunk = prop_oneof![
        1 => Just(0usize),
        3 => 1usize..8,
        3 => 1usize..5000,
        2 => 1usize..(2 * MIB),
    ];
    let max = prop_oneof![
        4 => Just(UNLIMITED),
        1 => 0u64..200_000,
    ];
    (stream, proptest::collection::vec(chunk, 1..6), max).prop_map(|(stream, plan, max)| Case {
        stream,
        plan,
        max,
    })
}

fn run_case(case: &Case, make: &dyn Fn(u64) -> Box<dyn StreamDecoder>) -> Result<Decoded, String> {
    let input = case.input();
    check_decode(&input, &case.plan_for(input.len()), case.max, make)
}

proptest! {
    #![proptest_config(proptest_config("proptest-regressions/decoder.txt", 256))]

    /// Any stream, valid, damaged or arbitrary, in any chunking, with any
    /// limit: whole messages that were sent, then one end, exactly as the
    /// format says, within the memory bound. Never a panic.
    #[test]
    fn any_stream_decodes_to_sent_messages_then_one_end(case in case()) {
        if let Err(why) = run_case(&case, &ours) {
            prop_assert!(false, "{}", why);
        }
    }
}

// ---------------------------------------------------------------------------
// Each check has teeth: the same property, run on a flawed decoder, fails.
// ---------------------------------------------------------------------------

/// Runs the property on `Naive` with `flaw`; returns the breach the runner
/// found (nothing is persisted: these failures are expected).
fn breach_found_in(flaw: Flaw) -> Option<String> {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let make = naive(flaw);
    match runner.run(&case(), |case| {
        run_case(&case, &make)
            .map(drop)
            .map_err(proptest::test_runner::TestCaseError::fail)
    }) {
        Ok(()) => None,
        Err(TestError::Fail(why, case)) => Some(format!("{why} (case {case:?})")),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_naive_skeleton_without_a_flaw_passes() {
    assert_eq!(breach_found_in(Flaw::None), None);
}

#[test]
fn a_decoder_that_trusts_the_header_with_memory_is_caught() {
    let why = breach_found_in(Flaw::TrustsHeader).expect("must be caught");
    assert!(why.contains("peak allocation"), "{why}");
}

#[test]
fn a_decoder_that_returns_a_cut_frame_is_caught() {
    let why = breach_found_in(Flaw::CutFrameIsAMessage).expect("must be caught");
    assert!(why.contains("is not the message sent"), "{why}");
}

#[test]
fn a_decoder_that_reads_the_length_unsigned_is_caught() {
    let why = breach_found_in(Flaw::UnsignedLength).expect("must be caught");
    assert!(why.contains("the format says"), "{why}");
}

#[test]
fn a_decoder_that_reads_a_payload_in_one_call_is_caught() {
    let why = breach_found_in(Flaw::OneReadPerPayload).expect("must be caught");
    assert!(why.contains("is not the message sent"), "{why}");
}

/// The memory check, head to head on a 4 GiB claim: the naive decoder's
/// `with_capacity` demands 4 GiB (lazily, so it costs nothing here but is
/// counted), ours stays under 2 MiB.
#[test]
fn on_a_4_gib_claim_the_naive_decoder_demands_4_gib_and_ours_does_not() {
    let mut input = long_header(4 << 30);
    input.extend(b"abc");
    let plan = [4096];
    let why = check_decode(&input, &plan, UNLIMITED, &naive(Flaw::TrustsHeader))
        .expect_err("the naive decoder must break the bound");
    assert!(why.contains("peak allocation"), "{why}");
    let peak: usize = why
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap();
    assert!(peak >= 4 << 30, "{why}");
    let ours_did = check_decode(&input, &plan, UNLIMITED, &ours).unwrap();
    assert_eq!(
        ours_did.end,
        End::Truncated {
            expected: 4 << 30,
            got: 3
        }
    );
}

// ---------------------------------------------------------------------------
// Structured corruption, exhaustively where it is small.
// ---------------------------------------------------------------------------

/// Read chunkings for the small streams: byte by byte, odd sizes with an
/// `EINTR`, and more than the read-ahead at once.
const PLANS: [&[usize]; 3] = [&[1], &[3, 0, 4096], &[READ_AHEAD + 7, 0, 1000]];
/// For multi-MiB streams: `ReadSource` zero-fills the room it offers (up to
/// a CHUNK) on every read, so tiny reads of a large frame are slow.
const LARGE_PLANS: [&[usize]; 2] = [&[65_521, 0, 200_000], &[READ_AHEAD + 7]];

/// The ends of every frame (and 0): where a cut is a clean end of stream.
fn boundaries(frames: &[FrameSpec]) -> Vec<usize> {
    let mut at = vec![0];
    for &(len, long) in frames {
        at.push(at.last().unwrap() + if long { 12 } else { 4 } + len);
    }
    at
}

fn check_cut(stream: &[u8], frames: &[FrameSpec], cut: usize, plans: &[&[usize]]) {
    let bounds = boundaries(frames);
    let whole = bounds.iter().filter(|&&b| b <= cut).count() - 1;
    for &plan in plans {
        let d = check_decode(&stream[..cut], plan, UNLIMITED, &ours)
            .unwrap_or_else(|why| panic!("cut at {cut}, plan {plan:?}: {why}"));
        assert_eq!(d.messages, whole, "cut at {cut}");
        if bounds.contains(&cut) {
            assert_eq!(d.end, End::Closed, "cut at boundary {cut}");
        } else {
            assert!(
                matches!(d.end, End::Truncated { .. }),
                "cut at {cut} inside a frame: {:?}",
                d.end
            );
        }
    }
}

#[test]
fn truncation_at_every_offset_is_truncated_inside_and_closed_at_boundaries() {
    let frames: Vec<FrameSpec> = vec![
        (0, false),
        (1, false),
        (3, false),
        (4, false),
        (5, false),
        (100, false),
        (7, true),
        (0, true),
        (300, false),
    ];
    let (stream, _) = build(&frames);
    for cut in 0..=stream.len() {
        check_cut(&stream, &frames, cut, &PLANS);
    }
}

#[test]
fn truncation_of_large_frames_is_truncated_inside_and_closed_at_boundaries() {
    let frames: Vec<FrameSpec> = vec![
        (READ_AHEAD + 1, false),
        (5, false),
        (CHUNK + CHUNK / 2 + 3, true),
        (0, false),
    ];
    let (stream, _) = build(&frames);
    let mut cuts: Vec<usize> = (0..stream.len()).step_by(99_991).collect();
    for b in boundaries(&frames) {
        cuts.extend((b.saturating_sub(2)..=b + 13).filter(|&c| c <= stream.len()));
    }
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        check_cut(&stream, &frames, cut, &LARGE_PLANS);
    }
}

#[test]
fn every_flipped_header_bit_keeps_the_properties() {
    let frames: Vec<FrameSpec> = vec![(5, false), (70, false), (2, true), (9, false)];
    let (stream, headers) = build(&frames);
    for &(start, len) in &headers {
        for bit in 0..8 * len {
            let mut s = stream.clone();
            s[start + bit / 8] ^= 0x80 >> (bit % 8);
            for plan in PLANS {
                check_decode(&s, plan, UNLIMITED, &ours)
                    .unwrap_or_else(|why| panic!("bit {bit} of the header at {start}: {why}"));
            }
        }
    }
}

#[test]
fn negative_lengths_other_than_minus_one_are_corrupt() {
    for n in [-2i32, -3, -1000, i32::MIN] {
        let (mut s, _) = build(&[(10, false)]);
        s.extend(n.to_be_bytes());
        s.extend(build(&[(10, false)]).0);
        for plan in PLANS {
            let d = check_decode(&s, plan, UNLIMITED, &ours).unwrap();
            assert_eq!(
                d,
                Decoded {
                    messages: 1,
                    end: End::Corrupt
                },
                "{n}"
            );
        }
    }
}

#[test]
fn minus_one_with_a_huge_length_is_truncated_or_too_large_and_cheap() {
    for huge in [1u64 << 31, 4 << 30, 1 << 62, u64::MAX] {
        let mut s = long_header(huge);
        s.extend(b"12345");
        for plan in PLANS {
            let d = check_decode(&s, plan, UNLIMITED, &ours).unwrap();
            assert_eq!(
                d.end,
                End::Truncated {
                    expected: huge,
                    got: 5
                }
            );
            let d = check_decode(&s, plan, MIB as u64, &ours).unwrap();
            assert_eq!(
                d.end,
                End::TooLarge {
                    len: huge,
                    max: MIB as u64
                }
            );
        }
    }
}
