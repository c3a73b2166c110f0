//! `Fifo` in chunked mode: many writers without a lock, messages of any
//! size, and a writer killed mid-message loses that message only, proven
//! across forked processes. One test shows the same kill tearing the
//! framed (locked) format, which is why chunked mode exists.
//!
//! Every test holds `fork::serial()` for its whole body. Children never
//! print: they return bytes through `fork::spawn`.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use ipc_harness::fifo::{
    CHUNK_HEADER_LEN, CHUNK_PAYLOAD_MAX, Fifo, FifoMode, FifoOptions, FifoReader, FifoWriter, Wait,
};
use ipc_harness::harness::fork::{self, Child, Outcome};
use ipc_harness::harness::payload::{self, ID_LEN, MsgId, Verdict};
use ipc_harness::{Error, sys};

/// How long any child may run.
const CHILD_DEADLINE: Duration = Duration::from_secs(30);
/// How long the parent waits for any one message before calling it lost.
const RECV_PATIENCE: Duration = Duration::from_secs(10);
/// A generous open timeout for peers that are known to be coming.
const PEER: Wait = Wait::Timeout(Duration::from_secs(10));

fn chunked() -> FifoOptions {
    FifoOptions::new().chunked(true)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// No child of this process is left, running or unreaped.
fn assert_no_children() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let r = waitpid(None, Some(WaitPidFlag::WNOHANG));
    assert_eq!(r, Err(nix::errno::Errno::ECHILD), "a child was left behind");
}

fn fds() -> Vec<i32> {
    sys::open_fds().expect("/proc/self/fd")
}

/// Everything received until the end of the stream (or the first error).
fn drain(r: &mut FifoReader) -> (Vec<Vec<u8>>, Error) {
    let mut got = Vec::new();
    loop {
        match r.recv_bytes_timeout(RECV_PATIENCE) {
            Ok(m) => got.push(m),
            Err(e) => return (got, e),
        }
    }
}

/// What arrived, per producer: the sequence numbers of whole messages in
/// the order they came, and how many id-less (short) messages of each
/// length. Anything else (corrupt, merged, cut) panics.
type Tally = (BTreeMap<u16, Vec<u32>>, BTreeMap<usize, usize>);

fn tally(got: &[Vec<u8>]) -> Tally {
    let mut ids: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
    let mut small: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, m) in got.iter().enumerate() {
        match payload::verify(m) {
            Verdict::Whole(id) => ids.entry(id.producer).or_default().push(id.seq),
            Verdict::Small(len) => *small.entry(len).or_default() += 1,
            other => panic!(
                "receive {i} ({} bytes) is not one whole message: {other:?}",
                m.len()
            ),
        }
    }
    (ids, small)
}

/// The size of the hello message each writer starts with.
const HELLO: usize = 64;

/// Holds a write end of its own until the hello (message 0) of each of
/// `writers` producers came, so that no gap between writers reads as the
/// end of the stream; returns every message received meanwhile.
fn receive_hellos(r: &mut FifoReader, path: &Path, writers: usize) -> Vec<Vec<u8>> {
    let gate = FifoWriter::open(path, Wait::NonBlocking).unwrap();
    let mut got = Vec::new();
    let mut hellos = 0;
    while hellos < writers {
        let m = r.recv_bytes_timeout(RECV_PATIENCE).unwrap();
        if let Verdict::Whole(MsgId { seq: 0, .. }) = payload::verify(&m) {
            hellos += 1;
        }
        got.push(m);
    }
    drop(gate);
    got
}

/// Waits until `pid` is blocked writing to a full pipe.
fn wait_until_blocked_writing(pid: sys::Pid) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("pipe_write") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pid} never blocked in pipe_write: {wchan:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// Many writers, every size
// ---------------------------------------------------------------------------

const SIZES: [usize; 11] = [
    0,
    1,
    CHUNK_PAYLOAD_MAX,
    CHUNK_PAYLOAD_MAX + 1,
    4095,
    4096,
    4097,
    65535,
    65536,
    65537,
    1 << 20,
];

#[test]
fn eight_writers_of_every_size_arrive_whole_and_in_order_per_writer() {
    let _serial = fork::serial();
    let before = fds();
    let dir = tempdir();
    let fifo = chunked().create(dir.path().join("f")).unwrap();
    let mut r = chunked()
        .wait(Wait::NonBlocking)
        .reader(fifo.path())
        .unwrap();
    assert_eq!(r.mode(), FifoMode::Chunked);
    // Every writer sends every size twice, in a different order per
    // writer, so large and small messages of different writers cross.
    let plan = |w: usize| -> Vec<usize> {
        let mut sizes: Vec<usize> = SIZES.iter().chain(SIZES.iter()).copied().collect();
        sizes.rotate_left(w);
        sizes
    };
    let children: Vec<Child> = (0..8)
        .map(|w| {
            let p = fifo.path().to_path_buf();
            let sizes = plan(w);
            fork::spawn(move || {
                let tx = chunked().wait(PEER).writer(&p).unwrap();
                // Message 0 says hello; the plan follows from 1.
                for (seq, &len) in [HELLO].iter().chain(&sizes).enumerate() {
                    let id = MsgId {
                        producer: w as u16,
                        seq: seq as u32,
                    };
                    tx.send_bytes(&payload::make(id, len)).unwrap();
                }
                Vec::new()
            })
            .unwrap()
        })
        .collect();
    let mut got = receive_hellos(&mut r, fifo.path(), 8);
    let (rest, end) = drain(&mut r);
    got.extend(rest);
    assert!(end.is_closed(), "{end:?}");
    for report in fork::wait_all(children, CHILD_DEADLINE).unwrap() {
        report.expect_success();
    }
    assert_eq!(got.len(), 8 * (1 + 2 * SIZES.len()));
    let (ids, small) = tally(&got);
    for w in 0..8u16 {
        let want: Vec<u32> = std::iter::once(0)
            .chain(
                (1..=2 * SIZES.len() as u32)
                    .filter(|&s| plan(w as usize)[s as usize - 1] >= ID_LEN),
            )
            .collect();
        assert_eq!(ids[&w], want, "writer {w}: every message, in order");
    }
    assert_eq!(small, BTreeMap::from([(0, 16), (1, 16)]));
    assert_eq!(r.abandoned_messages(), 0);
    assert_eq!(r.messages_in_progress(), (0, 0));
    drop(r);
    drop(fifo);
    assert_no_children();
    assert_eq!(fds(), before, "no fd leaked");
}

// ---------------------------------------------------------------------------
// A writer killed mid-message
// ---------------------------------------------------------------------------

/// Writer 0 sends a small message, then dies (its own kill point, after 3
/// chunks) inside a 1 MiB message, while writers 1..=7 send messages of
/// 1 B to 200 kB. Exactly one message is missing: the one it died in.
#[test]
fn a_writer_killed_mid_message_loses_that_message_only() {
    let _serial = fork::serial();
    let before = fds();
    let dir = tempdir();
    let fifo = chunked().create(dir.path().join("f")).unwrap();
    let mut r = chunked()
        .wait(Wait::NonBlocking)
        .reader(fifo.path())
        .unwrap();
    let others = [HELLO, 1, 100, 4097, 9000, 200_000, 50];
    let p = fifo.path().to_path_buf();
    let victim = fork::spawn(move || {
        let tx = chunked().wait(PEER).writer(&p).unwrap();
        tx.send_bytes(&payload::make(
            MsgId {
                producer: 0,
                seq: 0,
            },
            100,
        ))
        .unwrap();
        ipc_harness::fifo::set_chunk_kill_point(Some(3));
        let _ = tx.send_bytes(&payload::make(
            MsgId {
                producer: 0,
                seq: 1,
            },
            1 << 20,
        ));
        b"survived".to_vec()
    })
    .unwrap();
    let children: Vec<Child> = (1..8u16)
        .map(|w| {
            let p = fifo.path().to_path_buf();
            fork::spawn(move || {
                let tx = chunked().wait(PEER).writer(&p).unwrap();
                for (seq, &len) in others.iter().enumerate() {
                    let id = MsgId {
                        producer: w,
                        seq: seq as u32,
                    };
                    tx.send_bytes(&payload::make(id, len)).unwrap();
                }
                Vec::new()
            })
            .unwrap()
        })
        .collect();
    let mut got = receive_hellos(&mut r, fifo.path(), 8);
    let (rest, end) = drain(&mut r);
    got.extend(rest);
    assert!(
        end.is_closed(),
        "a dead writer is no stream-wide failure: {end:?}"
    );
    for report in fork::wait_all(children, CHILD_DEADLINE).unwrap() {
        report.expect_success();
    }
    let v = victim.wait(CHILD_DEADLINE).unwrap();
    assert_eq!(v.outcome, Outcome::Signaled(libc::SIGKILL), "{v:?}");
    let (ids, small) = tally(&got);
    assert_eq!(
        ids[&0],
        [0],
        "the victim's first message, not the one it died in"
    );
    for w in 1..8u16 {
        assert_eq!(ids[&w], [0, 2, 3, 4, 5, 6], "writer {w}");
    }
    assert_eq!(small, BTreeMap::from([(1, 7)]));
    assert_eq!(got.len(), 1 + 7 * others.len());
    assert_eq!(r.abandoned_messages(), 1, "the message it died in, counted");
    assert_eq!(r.messages_in_progress(), (0, 0));
    drop(r);
    drop(fifo);
    assert_no_children();
    assert_eq!(fds(), before, "no fd leaked");
}

/// The same death, seen by a reader that keeps listening (so the end of
/// the stream never comes): the reader finds the writer dead once nothing
/// arrives, drops its message and counts it; with the check off, it keeps
/// the message in progress.
#[test]
fn a_reader_that_keeps_listening_learns_of_the_dead_writer_from_its_pid() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = chunked().create(dir.path().join("f")).unwrap();
    for check in [true, false] {
        let mut r = chunked()
            .wait(Wait::NonBlocking)
            .reader(fifo.path())
            .unwrap();
        r.keep_listening().unwrap();
        r.set_writer_liveness_check(check);
        let p = fifo.path().to_path_buf();
        let victim = fork::spawn(move || {
            let tx = chunked().wait(PEER).writer(&p).unwrap();
            ipc_harness::fifo::set_chunk_kill_point(Some(2));
            let _ = tx.send_bytes(&payload::make(
                MsgId {
                    producer: 0,
                    seq: 0,
                },
                100_000,
            ));
            b"survived".to_vec()
        })
        .unwrap();
        let v = victim.wait(CHILD_DEADLINE).unwrap();
        assert_eq!(v.outcome, Outcome::Signaled(libc::SIGKILL));
        // A live writer's message after it.
        let p = fifo.path().to_path_buf();
        fork::run(CHILD_DEADLINE, move || {
            let tx = chunked().wait(PEER).writer(&p).unwrap();
            tx.send_bytes(&payload::make(
                MsgId {
                    producer: 1,
                    seq: 0,
                },
                5000,
            ))
            .unwrap();
            Vec::new()
        })
        .unwrap()
        .expect_success();
        let m = r.recv_bytes_timeout(RECV_PATIENCE).unwrap();
        assert_eq!(
            payload::verify(&m),
            Verdict::Whole(MsgId {
                producer: 1,
                seq: 0
            })
        );
        let e = r
            .recv_bytes_timeout(Duration::from_millis(300))
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        if check {
            assert_eq!(r.abandoned_messages(), 1);
            assert_eq!(r.messages_in_progress(), (0, 0));
        } else {
            assert_eq!(r.abandoned_messages(), 0);
            let (n, held) = r.messages_in_progress();
            assert_eq!(n, 1);
            assert_eq!(held, 2 * CHUNK_PAYLOAD_MAX, "two chunks held");
        }
    }
    assert_no_children();
}

/// Writer 0 sends a 4 MiB message and is SIGKILLed from outside while
/// blocked on the full FIFO, in the middle of it; then writer 1 sends three
/// messages. The framed (locked) format tears: the reader takes writer 1's
/// frames for the rest of the 4 MiB one and ends `Truncated`, and writer
/// 1's messages, sent `Ok`, are gone. The chunked format loses only the
/// message writer 0 died in.
#[test]
fn a_writer_killed_mid_message_tears_the_framed_format_and_not_the_chunked_one() {
    let _serial = fork::serial();
    let before = fds();
    const BIG: usize = 4 << 20;
    for mode in [FifoMode::Framed, FifoMode::Chunked] {
        let opts = FifoOptions::new().mode(mode);
        let dir = tempdir();
        let fifo = opts.create(dir.path().join("f")).unwrap();
        let mut r = opts.wait(Wait::NonBlocking).reader(fifo.path()).unwrap();
        let p = fifo.path().to_path_buf();
        let victim = fork::spawn(move || {
            let tx = opts.wait(PEER).writer(&p).unwrap();
            let _ = tx.send_bytes(&payload::make(
                MsgId {
                    producer: 0,
                    seq: 0,
                },
                BIG,
            ));
            b"survived".to_vec()
        })
        .unwrap();
        wait_until_blocked_writing(victim.pid());
        let capacity = sys::pipe_capacity(std::os::fd::AsFd::as_fd(&r)).unwrap();
        // A write end of our own, so that the end of the stream comes only
        // once writer 1 is done.
        let gate = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap();
        victim.signal(libc::SIGKILL).unwrap();
        let v = victim.wait(CHILD_DEADLINE).unwrap();
        assert_eq!(v.outcome, Outcome::Signaled(libc::SIGKILL), "{mode:?}");
        let p = fifo.path().to_path_buf();
        let writer1 = fork::spawn(move || {
            let tx = opts.wait(PEER).writer(&p).unwrap();
            for seq in 0..3 {
                tx.send_bytes(&payload::make(MsgId { producer: 1, seq }, 100))
                    .unwrap();
            }
            Vec::new()
        })
        .unwrap();
        // The FIFO is full: read while writer 1 writes.
        let reading = std::thread::spawn(move || {
            let (got, end) = drain(&mut r);
            (r, got, end)
        });
        writer1.wait(CHILD_DEADLINE).unwrap().expect_success();
        drop(gate);
        let (r, got, end) = reading.join().unwrap();
        match mode {
            FifoMode::Framed => {
                assert!(got.is_empty(), "{} messages", got.len());
                // The torn frame's header still claims 4 MiB: what the
                // victim wrote (a full FIFO, less the header) and writer
                // 1's three frames are read as its payload.
                let expected_got = (capacity - 4 + 3 * (4 + 100)) as u64;
                assert!(
                    matches!(end, Error::Truncated { expected, got }
                        if expected == BIG as u64 && got == expected_got),
                    "{end:?} (capacity {capacity})"
                );
            }
            _ => {
                assert!(end.is_closed(), "{end:?}");
                let (ids, small) = tally(&got);
                assert_eq!(ids, BTreeMap::from([(1, vec![0, 1, 2])]));
                assert!(small.is_empty());
                assert_eq!(r.abandoned_messages(), 1);
                // The victim filled the FIFO with whole chunks.
                assert_eq!(capacity % (CHUNK_HEADER_LEN + CHUNK_PAYLOAD_MAX), 0);
            }
        }
        drop(r);
        drop(fifo);
    }
    assert_no_children();
    assert_eq!(fds(), before, "no fd leaked");
}

// ---------------------------------------------------------------------------
// Mode mismatches, limits
// ---------------------------------------------------------------------------

/// A reader and a writer of one FIFO, in this process.
fn pair(
    dir: &Path,
    name: &str,
    reader: FifoOptions,
    writer: FifoOptions,
) -> (Fifo, FifoReader, FifoWriter) {
    let fifo = Fifo::create(dir.join(name)).unwrap();
    let r = reader.wait(Wait::NonBlocking).reader(fifo.path()).unwrap();
    let w = writer.wait(Wait::NonBlocking).writer(fifo.path()).unwrap();
    (fifo, r, w)
}

#[test]
fn a_mode_mismatch_is_refused_both_ways_naming_the_other_mode() {
    let _serial = fork::serial();
    let before = fds();
    let dir = tempdir();
    let chunked_writer = "corrupt stream: a writer of this FIFO uses chunked mode, and this \
         reader reads framed messages: open the reader with FifoOptions::chunked(true), or every \
         writer without it";
    let framed_writer = "corrupt stream: a writer of this FIFO uses framed mode (a length \
         header, not a chunk), and this reader reads chunked mode: open every writer with \
         FifoOptions::chunked(true), or the reader without it";
    for (reader, writer, want) in [
        (FifoOptions::new(), chunked(), chunked_writer),
        (
            FifoOptions::new().small_messages(true),
            chunked(),
            chunked_writer,
        ),
        (chunked(), FifoOptions::new(), framed_writer),
        (
            chunked(),
            FifoOptions::new().small_messages(true),
            framed_writer,
        ),
    ] {
        for len in [0usize, 5, SMALL] {
            let (fifo, mut r, w) = pair(dir.path(), "f", reader, writer);
            w.send_bytes(&vec![7u8; len]).unwrap();
            let e = r.recv_bytes_timeout(RECV_PATIENCE).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            assert_eq!(e.to_string(), want, "{reader:?} <- {writer:?}, {len} B");
            // Refused for good: nothing misparsed later either.
            w.send_bytes(b"more").unwrap();
            let e = r.recv_bytes_timeout(RECV_PATIENCE).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            drop((r, w, fifo));
        }
    }
    assert_eq!(fds(), before, "no fd leaked");
}

/// Small enough for small-messages writers too.
const SMALL: usize = 4000;

#[test]
fn the_reader_holds_at_most_its_limit_and_goes_on_after_refusing() {
    let _serial = fork::serial();
    let before = fds();
    let dir = tempdir();
    let (fifo, mut r, big) = pair(dir.path(), "f", chunked(), chunked());
    let small = chunked()
        .wait(Wait::NonBlocking)
        .writer(fifo.path())
        .unwrap();
    r.set_max_message_size(100_000);
    let sender = std::thread::spawn(move || {
        big.send_bytes(&[1u8; 60_000]).unwrap();
        big.send_bytes(&[2u8; 1 << 20]).unwrap();
        small.send_bytes(b"after").unwrap();
        big.send_bytes(&[3u8; 100_000]).unwrap();
    });
    assert_eq!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap(), [1u8; 60_000]);
    // Refused at the chunk that takes it past the limit: 25 chunks.
    let e = r.recv_bytes_timeout(RECV_PATIENCE).unwrap_err();
    let len = (100_000 / CHUNK_PAYLOAD_MAX + 1) * CHUNK_PAYLOAD_MAX;
    assert!(
        matches!(e, Error::TooLarge { len: l, max: 100_000 } if l == len as u64),
        "{e:?}"
    );
    assert_eq!(r.messages_in_progress(), (0, 0), "nothing held for it");
    // The rest of it is skipped; the stream goes on.
    assert_eq!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap(), b"after");
    assert_eq!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap(), [3u8; 100_000]);
    sender.join().unwrap();
    assert!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap_err().is_closed());
    assert_eq!(r.abandoned_messages(), 0);
    drop(r);

    // The writer refuses an over-limit message before writing anything.
    let (fifo2, mut r, mut w) = pair(dir.path(), "g", chunked(), chunked());
    w.set_max_message_size(10);
    let e = w.send_bytes(&[0u8; 11]).unwrap_err();
    assert!(matches!(e, Error::TooLarge { len: 11, max: 10 }), "{e:?}");
    w.send_bytes(b"0123456789").unwrap();
    drop(w);
    assert_eq!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap(), b"0123456789");
    assert!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap_err().is_closed());
    drop((r, fifo2, fifo));
    assert_eq!(fds(), before, "no fd leaked");
}

/// One writer shared by a parent thread and a forked child: the child
/// takes a fresh writer id on its first send, so their multi-chunk
/// messages never mix.
#[test]
fn a_writer_inherited_across_fork_takes_its_own_id() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = chunked().create(dir.path().join("f")).unwrap();
    let mut r = chunked()
        .wait(Wait::NonBlocking)
        .reader(fifo.path())
        .unwrap();
    let w = std::sync::Arc::new(
        chunked()
            .wait(Wait::NonBlocking)
            .writer(fifo.path())
            .unwrap(),
    );
    let parent_id = w.writer_id().unwrap();
    assert_eq!(parent_id.pid, sys::getpid() as u32);
    let read_end = r.as_raw_fd();
    let wc = w.clone();
    let child = fork::spawn(move || {
        let _ = nix::unistd::close(read_end);
        for seq in 0..6 {
            wc.send_bytes(&payload::make(MsgId { producer: 1, seq }, 50_000))
                .unwrap();
        }
        let id = wc.writer_id().unwrap();
        format!("{} {}", id.pid, id.nonce).into_bytes()
    })
    .unwrap();
    let wp = w.clone();
    let sender = std::thread::spawn(move || {
        for seq in 0..6 {
            wp.send_bytes(&payload::make(MsgId { producer: 0, seq }, 50_000))
                .unwrap();
        }
    });
    let mut got = Vec::new();
    while got.len() < 12 {
        got.push(r.recv_bytes_timeout(RECV_PATIENCE).unwrap());
    }
    sender.join().unwrap();
    let out = String::from_utf8(child.wait(CHILD_DEADLINE).unwrap().expect_success()).unwrap();
    let (ids, _) = tally(&got);
    assert_eq!(ids[&0], [0, 1, 2, 3, 4, 5]);
    assert_eq!(ids[&1], [0, 1, 2, 3, 4, 5]);
    assert_ne!(out, format!("{} {}", parent_id.pid, parent_id.nonce));
    assert_eq!(w.writer_id(), Some(parent_id));
    assert_eq!(r.abandoned_messages(), 0);
    assert_no_children();
}

// ---------------------------------------------------------------------------
// Large messages take turns
// ---------------------------------------------------------------------------

/// A message of at least `TURN` bytes waits for the FIFO's `flock` before
/// its first chunk (so large messages take turns instead of waking each
/// other in a herd); a smaller one never waits for it.
const TURN: usize = 64 * 1024;

#[test]
fn a_large_message_waits_for_its_turn_and_a_small_one_does_not() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = chunked().create(dir.path().join("f")).unwrap();
    let mut r = chunked()
        .wait(Wait::NonBlocking)
        .reader(fifo.path())
        .unwrap();
    // Someone else's turn: a description of our own on the FIFO, locked.
    let holder = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap();
    sys::fifo::lock_exclusive(holder.as_fd()).unwrap();
    let p = fifo.path().to_path_buf();
    let read_end = r.as_raw_fd();
    let child = fork::spawn(move || {
        let _ = nix::unistd::close(read_end);
        let tx = chunked().wait(PEER).writer(&p).unwrap();
        for (seq, len) in [(0, TURN - 1), (1, TURN)] {
            tx.send_bytes(&payload::make(MsgId { producer: 0, seq }, len))
                .unwrap();
        }
        Vec::new()
    })
    .unwrap();
    let small = r.recv_bytes_timeout(RECV_PATIENCE).unwrap();
    assert_eq!(
        (small.len(), payload::verify(&small)),
        (
            TURN - 1,
            Verdict::Whole(MsgId {
                producer: 0,
                seq: 0
            })
        )
    );
    // Nothing of the large message is written while the turn is taken.
    assert!(!r.poll(Some(Duration::from_millis(300))).unwrap());
    assert_eq!(r.messages_in_progress(), (0, 0));
    sys::fifo::unlock(holder.as_fd()).unwrap();
    let large = r.recv_bytes_timeout(RECV_PATIENCE).unwrap();
    assert_eq!(
        (large.len(), payload::verify(&large)),
        (
            TURN,
            Verdict::Whole(MsgId {
                producer: 0,
                seq: 1
            })
        )
    );
    child.wait(CHILD_DEADLINE).unwrap().expect_success();
    drop(holder);
    assert_no_children();
}

/// A writer inherited across `fork` takes its turns on a description of
/// its own: killed inside a large message, its turn dies with it, even
/// though its parent still has the writer open. Another writer's large
/// message, and then the parent's, go through; only the cut one is lost.
#[test]
fn a_forked_writer_killed_in_its_turn_releases_it() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = chunked().create(dir.path().join("f")).unwrap();
    let mut r = chunked()
        .wait(Wait::NonBlocking)
        .reader(fifo.path())
        .unwrap();
    let w = std::sync::Arc::new(
        chunked()
            .wait(Wait::NonBlocking)
            .writer(fifo.path())
            .unwrap(),
    );
    let read_end = r.as_raw_fd();
    let wc = w.clone();
    let victim = fork::spawn(move || {
        let _ = nix::unistd::close(read_end);
        ipc_harness::fifo::set_chunk_kill_point(Some(3));
        let _ = wc.send_bytes(&payload::make(
            MsgId {
                producer: 1,
                seq: 0,
            },
            1 << 20,
        ));
        b"survived".to_vec()
    })
    .unwrap();
    let v = victim.wait(CHILD_DEADLINE).unwrap();
    assert_eq!(v.outcome, Outcome::Signaled(libc::SIGKILL), "{v:?}");
    let p = fifo.path().to_path_buf();
    let other = fork::spawn(move || {
        let _ = nix::unistd::close(read_end);
        let tx = chunked().wait(PEER).writer(&p).unwrap();
        tx.send_bytes(&payload::make(
            MsgId {
                producer: 2,
                seq: 0,
            },
            1 << 20,
        ))
        .unwrap();
        Vec::new()
    })
    .unwrap();
    let got = r.recv_bytes_timeout(RECV_PATIENCE).unwrap();
    assert_eq!(
        payload::verify(&got),
        Verdict::Whole(MsgId {
            producer: 2,
            seq: 0
        }),
        "another writer's large message, after the victim's cut one"
    );
    other.wait(CHILD_DEADLINE).unwrap().expect_success();
    // From a thread: the FIFO cannot hold the whole message.
    let sender = std::thread::spawn(move || {
        w.send_bytes(&payload::make(
            MsgId {
                producer: 0,
                seq: 0,
            },
            1 << 20,
        ))
        .unwrap();
        drop(w);
    });
    let got = r.recv_bytes_timeout(RECV_PATIENCE).unwrap();
    assert_eq!(
        payload::verify(&got),
        Verdict::Whole(MsgId {
            producer: 0,
            seq: 0
        })
    );
    sender.join().unwrap();
    assert!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap_err().is_closed());
    assert_eq!(r.abandoned_messages(), 1, "the victim's cut message");
    assert_no_children();
}

// ---------------------------------------------------------------------------
// Under the harness
// ---------------------------------------------------------------------------

/// The harness's view of the same death: the chunked Fifo transport's own
/// kill point kills producer 0 after 2 chunks of its 1 MiB send #1, while
/// producer 1 sends. The oracle finds no broken promise, and its count is
/// exact: send #0 and producer 1's six arrive, the cut send is lost, send
/// #2 never happens.
#[test]
fn the_harness_sees_only_the_dead_writers_message_lost() {
    use ipc_harness::harness::fault::{Fault, FaultKind, Target};
    use ipc_harness::harness::run::{RunOptions, run_with};
    use ipc_harness::harness::scenario::{Pacing, ProducerPlan, Scenario};
    use ipc_harness::harness::transports::FifoChunkedChannel;

    let _serial = fork::serial();
    let scenario = Scenario {
        producers: vec![
            ProducerPlan {
                sizes: vec![100, 1 << 20, 100],
                pacing: Pacing::Burst,
            },
            ProducerPlan {
                sizes: vec![5000; 6],
                pacing: Pacing::Pause {
                    every: 1,
                    micros: 2_000,
                },
            },
        ],
        consumers: 1,
        faults: vec![Fault {
            target: Target::Producer(0),
            op: 1,
            kind: FaultKind::KillInside { point: 1 },
        }],
        tiny_capacity: false,
        signal_storm_us: None,
    };
    let options = RunOptions {
        deadline: Duration::from_secs(10),
        ..RunOptions::default()
    };
    let report = run_with(&FifoChunkedChannel, &scenario, options);
    assert!(report.broken_promises().is_empty(), "{report}");
    let a = report.accounting;
    assert_eq!(
        (a.killed, a.attempted, a.ok, a.indeterminate_lost, a.lost),
        (1, 8, 7, 1, 0),
        "{report}"
    );
}
