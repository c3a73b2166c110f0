//! `Fifo`: named pipes by path (issue 6), proven across forked processes.
//!
//! Every test that forks or counts fds holds `fork::serial()` for its whole
//! body. Children never print: they return bytes through `fork::spawn`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipc_harness::fifo::{
    Fifo, FifoOptions, FifoReader, FifoWriter, LineReader, SMALL_MESSAGE_MAX, Wait,
};
use ipc_harness::harness::fork::{self, Child};
use ipc_harness::harness::payload::{self, MsgId, Verdict};
use ipc_harness::harness::sizes;
use ipc_harness::{Error, Sender, sys};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// How long any child may run.
const CHILD_DEADLINE: Duration = Duration::from_secs(20);
/// How long the parent waits for any one message before calling it lost.
const RECV_PATIENCE: Duration = Duration::from_secs(5);
/// A generous open timeout for peers that are known to be coming.
const PEER: Wait = Wait::Timeout(Duration::from_secs(10));

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/fifo.txt",
        ))),
        ..Config::default()
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn is_fifo(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

/// No child of this process is left, running or unreaped (call holding
/// `fork::serial()`, so no other test has children).
fn assert_no_children() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let r = waitpid(None, Some(WaitPidFlag::WNOHANG));
    assert_eq!(r, Err(nix::errno::Errno::ECHILD), "a child was left behind");
}

fn fds() -> Vec<i32> {
    sys::open_fds().expect("/proc/self/fd")
}

// ---------------------------------------------------------------------------
// Creating, dropping, removing
// ---------------------------------------------------------------------------

#[test]
fn create_then_drop_removes_the_fifo_and_keep_leaves_it() {
    let _serial = fork::serial();
    let before = fds();
    let dir = tempdir();
    let path = dir.path().join("f");

    let fifo = Fifo::create(&path).unwrap();
    assert!(is_fifo(&path));
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(fifo.path(), path);
    drop(fifo);
    assert!(!path.exists(), "drop removes the FIFO");

    let kept = Fifo::create(&path).unwrap().keep();
    assert_eq!(kept, path);
    assert!(is_fifo(&path), "a kept FIFO stays");
    fs::remove_file(&path).unwrap();

    let fifo = Fifo::create(&path).unwrap();
    fifo.remove().unwrap();
    assert!(!path.exists(), "remove removes the FIFO");

    // A handle never removes what it did not create.
    let fifo = Fifo::create(&path).unwrap();
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"someone else's file").unwrap();
    drop(fifo);
    assert_eq!(fs::read(&path).unwrap(), b"someone else's file");
    assert_eq!(fds(), before, "no fd leaks");
}

#[test]
fn mode_is_0600_whatever_the_umask() {
    let _serial = fork::serial();
    let dir = tempdir();
    // umask is per process: set it in a child, where no other test sees it.
    for (i, umask) in [0o000, 0o077, 0o022, 0o277, 0o477, 0o777]
        .into_iter()
        .enumerate()
    {
        let path = dir.path().join(format!("f{i}"));
        let p = path.clone();
        let report = fork::run(CHILD_DEADLINE, move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
            match Fifo::create(&p) {
                Ok(f) => {
                    f.keep();
                    mode_of(&p).to_le_bytes().to_vec()
                }
                Err(e) => e.to_string().into_bytes(),
            }
        })
        .unwrap();
        let out = report.expect_success();
        let mode = u32::from_le_bytes(
            out.as_slice()
                .try_into()
                .unwrap_or_else(|_| panic!("umask {umask:o}: {}", String::from_utf8_lossy(&out))),
        );
        assert_eq!(mode, 0o600, "umask {umask:o}");
        assert_eq!(mode_of(&path), 0o600, "umask {umask:o}, seen by the parent");
    }
}

#[test]
fn missing_directory_is_a_clear_error_naming_it() {
    let dir = tempdir();
    let missing = dir.path().join("no").join("such");
    let path = missing.join("fifo");

    let e = Fifo::create(&path).unwrap_err();
    assert!(
        matches!(&e, Error::NoSuchDirectory { path: p } if p == &path),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(!dir.path().join("no").exists(), "nothing was created");

    for e in [
        FifoWriter::open(&path, Wait::NonBlocking).unwrap_err(),
        FifoReader::open(&path, Wait::NonBlocking).unwrap_err(),
    ] {
        assert!(matches!(&e, Error::NoSuchDirectory { .. }), "{e:?}");
    }

    // Asked to, create_all makes the parents (0700) and the FIFO (0600).
    let fifo = Fifo::create_all(&path).unwrap();
    assert!(is_fifo(&path));
    assert_eq!(mode_of(&missing), 0o700);
    assert_eq!(mode_of(&path), 0o600);
    drop(fifo);

    // A FIFO that does not exist, in a directory that does.
    let e = FifoWriter::open(dir.path().join("absent"), Wait::NonBlocking).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
}

/// What is at a path, precisely enough to tell it was not touched.
#[derive(Debug, PartialEq)]
struct Snapshot {
    kind: String,
    ino: u64,
    mode: u32,
    content: Option<Vec<u8>>,
    target: Option<PathBuf>,
}

fn snapshot(path: &Path) -> Snapshot {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap();
    Snapshot {
        kind: format!("{:?}", m.file_type()),
        ino: m.ino(),
        mode: m.mode(),
        content: m.is_file().then(|| fs::read(path).unwrap()),
        target: fs::read_link(path).ok(),
    }
}

#[test]
fn existing_non_fifos_and_symlinks_are_refused_and_left_as_they_were() {
    let _serial = fork::serial();
    let dir = tempdir();
    let d = dir.path();
    let real = d.join("real-fifo");
    let _real = Fifo::create(&real).unwrap();
    fs::write(d.join("file"), b"precious").unwrap();
    fs::create_dir(d.join("dir")).unwrap();
    std::os::unix::fs::symlink(&real, d.join("link-to-fifo")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(d.join("socket")).unwrap();

    type Check = fn(&Error) -> bool;
    let not_a_fifo: Check = |e| matches!(e, Error::NotAFifo { .. });
    let symlink: Check = |e| matches!(e, Error::Symlink { .. });
    let cases: [(&str, Check); 5] = [
        ("file", not_a_fifo),
        ("dir", not_a_fifo),
        ("socket", not_a_fifo),
        ("link-to-fifo", symlink),
        ("dangling", symlink),
    ];
    let before = fds();
    for (name, expected) in cases {
        let path = d.join(name);
        let snap = snapshot(&path);

        let e = Fifo::create(&path).unwrap_err();
        assert!(
            matches!(&e, Error::AlreadyExists { path: p } if p == &path),
            "{name}: {e:?}"
        );
        assert!(e.to_string().contains(&path.display().to_string()));

        for wait in [Wait::NonBlocking, Wait::Timeout(Duration::from_millis(50))] {
            let errors = [
                ("writer", FifoWriter::open(&path, wait).unwrap_err()),
                ("reader", FifoReader::open(&path, wait).unwrap_err()),
                ("line reader", LineReader::open(&path, wait).unwrap_err()),
            ];
            for (who, e) in errors {
                assert!(expected(&e), "{name}, {who}, {wait:?}: {e:?}");
                assert!(
                    e.to_string().contains(&path.display().to_string()),
                    "{name}: the error names the path: {e}"
                );
            }
        }
        assert_eq!(snapshot(&path), snap, "{name} is left as it was");
    }
    assert_eq!(fds(), before, "refused opens leave no fd behind");
    assert_eq!(fs::read(d.join("file")).unwrap(), b"precious");
}

// ---------------------------------------------------------------------------
// Open semantics
// ---------------------------------------------------------------------------

#[test]
fn blocking_reader_open_waits_for_a_writer_that_opens_later() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let path = fifo.path().to_path_buf();
    let p = path.clone();
    let start = Instant::now();
    // The writer opens 300 ms from now, then stays silent for another
    // second: the reader's open must return when the writer opens, not
    // when it first writes.
    let child = fork::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let w = FifoWriter::open(&p, PEER).unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        w.send_bytes(b"late").unwrap();
        Vec::new()
    })
    .unwrap();
    let mut r = FifoReader::open(&path, Wait::Blocking).unwrap();
    let opened = start.elapsed();
    assert!(
        opened >= Duration::from_millis(250),
        "opened after {opened:?}"
    );
    assert!(
        opened < Duration::from_millis(1000),
        "the open noticed the silent writer, after {opened:?}"
    );
    assert_eq!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap(), b"late");
    assert!(r.recv_bytes().unwrap_err().is_closed());
    child.wait(CHILD_DEADLINE).unwrap().expect_success();
}

#[test]
fn blocking_writer_open_waits_for_a_reader_that_opens_later() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let path = fifo.path().to_path_buf();
    let p = path.clone();
    let start = Instant::now();
    let child = fork::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut r = LineReader::open(&p, PEER).unwrap();
        r.recv_line().unwrap()
    })
    .unwrap();
    let w = FifoWriter::open(&path, Wait::Blocking).unwrap();
    let opened = start.elapsed();
    assert!(
        opened >= Duration::from_millis(250),
        "opened after {opened:?}"
    );
    w.send_line("Spam 000").unwrap();
    assert_eq!(
        child.wait(CHILD_DEADLINE).unwrap().expect_success(),
        b"Spam 000"
    );
}

#[test]
fn timed_opens_give_up_on_time_and_leave_nothing_open() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let before = fds();
    let timeout = Duration::from_millis(200);

    let start = Instant::now();
    let e = FifoWriter::open(fifo.path(), Wait::Timeout(timeout)).unwrap_err();
    let took = start.elapsed();
    assert!(e.is_timeout(), "{e:?}");
    assert!(
        took >= timeout && took < timeout * 5,
        "writer gave up after {took:?}"
    );

    let start = Instant::now();
    let e = FifoReader::open(fifo.path(), Wait::Timeout(timeout)).unwrap_err();
    let took = start.elapsed();
    assert!(e.is_timeout(), "{e:?}");
    assert!(
        took >= timeout && took < timeout * 5,
        "reader gave up after {took:?}"
    );

    let e = LineReader::open(fifo.path(), Wait::Timeout(timeout)).unwrap_err();
    assert!(e.is_timeout(), "{e:?}");

    assert_eq!(fds(), before, "a timed-out open leaves no fd behind");
    // And no half-open reader: a writer still finds nobody there.
    let e = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap_err();
    assert!(matches!(e, Error::NoReader { .. }), "{e:?}");
}

#[test]
fn nonblocking_writer_without_reader_is_no_reader() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let before = fds();
    let e = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap_err();
    assert!(
        matches!(&e, Error::NoReader { path } if path == fifo.path()),
        "{e:?}"
    );
    assert!(e.to_string().contains("has no reader"), "{e}");
    assert_eq!(fds(), before);

    // With a reader there, the same open succeeds at once.
    let _r = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    let w = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap();
    drop(w);
}

#[test]
fn reader_sees_closed_only_after_the_last_of_several_writers_closes() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let mut r = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    // Writer i says hello, stays open (i + 1) * 150 ms, says bye, closes.
    // If the reader saw end of stream when an earlier writer closed, it
    // would see Closed before the last bye.
    let children: Vec<Child> = (0..3u8)
        .map(|i| {
            let p = fifo.path().to_path_buf();
            fork::spawn(move || {
                let w = FifoWriter::open(&p, PEER).unwrap();
                w.send_bytes(&[b'h', i]).unwrap();
                std::thread::sleep(Duration::from_millis(150 * (u64::from(i) + 1)));
                w.send_bytes(&[b'b', i]).unwrap();
                Vec::new()
            })
            .unwrap()
        })
        .collect();
    // Hold a write end until every child has opened (their hellos are
    // in), so that no gap between writers is an end of stream.
    let gate = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap();
    let mut got = Vec::new();
    while got.iter().filter(|m: &&Vec<u8>| m[0] == b'h').count() < 3 {
        got.push(r.recv_bytes_timeout(RECV_PATIENCE).unwrap());
    }
    drop(gate);
    loop {
        match r.recv_bytes_timeout(RECV_PATIENCE) {
            Ok(m) => got.push(m),
            Err(Error::Closed) => break,
            Err(e) => panic!("{e:?} after {got:?}"),
        }
    }
    let byes: Vec<u8> = got.iter().filter(|m| m[0] == b'b').map(|m| m[1]).collect();
    assert_eq!(byes, [0, 1, 2], "every bye before Closed, last writer last");
    for report in fork::wait_all(children, CHILD_DEADLINE).unwrap() {
        report.expect_success();
    }

    // Keep listening: the same reader, now holding a write end of its own,
    // waits for new writers instead of seeing Closed.
    let mut r = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    r.keep_listening().unwrap();
    let e = r
        .recv_bytes_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(
        e.is_timeout(),
        "no writer, but no end of stream either: {e:?}"
    );
    for round in 0..2u8 {
        let p = fifo.path().to_path_buf();
        let report = fork::run(CHILD_DEADLINE, move || {
            let w = FifoWriter::open(&p, Wait::NonBlocking).unwrap();
            w.send_bytes(&[round]).unwrap();
            Vec::new()
        })
        .unwrap();
        report.expect_success();
        assert_eq!(r.recv_bytes_timeout(RECV_PATIENCE).unwrap(), [round]);
        let e = r.recv_bytes_timeout(Duration::from_millis(50)).unwrap_err();
        assert!(e.is_timeout(), "round {round}: {e:?}");
    }
}

// ---------------------------------------------------------------------------
// Many writers by path: the oracle
// ---------------------------------------------------------------------------

/// Everything wrong with what arrived, given what each writer sent.
/// `end` is how the reading ended, if not by getting everything.
fn violations(plan: &[Vec<usize>], received: &[Vec<u8>], end: Option<&Error>) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(e) = end {
        v.push(format!("the reader stopped early: {e}"));
    }
    let mut last_seq: Vec<Option<u32>> = vec![None; plan.len()];
    let mut seen = HashSet::new();
    let mut small: BTreeMap<usize, i64> = BTreeMap::new();
    for &len in plan.iter().flatten() {
        if len < payload::ID_LEN {
            *small.entry(len).or_default() += 1;
        }
    }
    for (i, msg) in received.iter().enumerate() {
        match payload::verify(msg) {
            Verdict::Whole(id) => {
                let w = usize::from(id.producer);
                let Some(sizes) = plan.get(w) else {
                    v.push(format!("message {i}: {id} from no writer"));
                    continue;
                };
                if !seen.insert(id) {
                    v.push(format!("message {i}: {id} arrived twice"));
                }
                let sent_len = sizes.get(id.seq as usize).copied();
                if sent_len != Some(msg.len()) {
                    v.push(format!(
                        "message {i}: {id} has {} bytes, sent {sent_len:?}",
                        msg.len()
                    ));
                }
                // Per writer, in order (short messages carry no id).
                if last_seq[w].is_some_and(|last| id.seq <= last) {
                    v.push(format!("message {i}: {id} out of order"));
                }
                last_seq[w] = Some(id.seq);
            }
            Verdict::Small(len) => *small.entry(len).or_default() -= 1,
            other => v.push(format!("message {i} ({} bytes): {other:?}", msg.len())),
        }
    }
    for (w, sizes) in plan.iter().enumerate() {
        for (seq, &len) in sizes.iter().enumerate() {
            let id = MsgId {
                producer: w as u16,
                seq: seq as u32,
            };
            if len >= payload::ID_LEN && !seen.contains(&id) {
                v.push(format!("{id} ({len} bytes) never arrived"));
            }
        }
    }
    for (len, n) in small {
        if n != 0 {
            v.push(format!(
                "short messages of {len} bytes: {n} more sent than received"
            ));
        }
    }
    v
}

/// One writer's way of sending a message.
type SendFn = Box<dyn Fn(&[u8]) -> ipc_harness::Result<()>>;

/// How the writers of [`run_writers`] send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `FifoWriter::send_bytes`: every frame under the writers' lock.
    Locked,
    /// Raw frames on the writer's fd, no lock (the naive code).
    Raw,
    /// `FifoOptions::small_messages`: one atomic write per frame, no lock.
    Small,
}

/// Forks one child per writer in `plan`; each opens the FIFO by path and
/// sends its messages as `mode` says. Returns the violations found.
fn run_writers(plan: &[Vec<usize>], mode: Mode) -> Vec<String> {
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let expected: usize = plan.iter().map(Vec::len).sum();

    // The writers are forked before the reader exists, so that they do not
    // inherit a read end: when the reader gives up, they get EPIPE.
    let children: Vec<Child> = plan
        .iter()
        .enumerate()
        .map(|(w, sizes)| {
            let sizes = sizes.clone();
            let path = fifo.path().to_path_buf();
            fork::spawn(move || {
                let opts = FifoOptions::new()
                    .wait(PEER)
                    .small_messages(mode == Mode::Small);
                let writer = opts.writer(&path).unwrap();
                let send: SendFn = if mode == Mode::Raw {
                    let raw = Sender::from_fd(writer.into_fd());
                    Box::new(move |m| raw.send_bytes(m))
                } else {
                    Box::new(move |m| writer.send_bytes(m))
                };
                for (seq, &len) in sizes.iter().enumerate() {
                    let id = MsgId {
                        producer: w as u16,
                        seq: seq as u32,
                    };
                    if send(&payload::make(id, len)).is_err() {
                        break; // the reader gave up; nothing to report
                    }
                }
                Vec::new()
            })
            .unwrap()
        })
        .collect();

    let mut r = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    // Keep listening: writers come and go at their own pace, and a moment
    // with none of them open is not the end. We stop at the expected count.
    r.keep_listening().unwrap();
    let max = plan.iter().flatten().copied().max().unwrap_or(0);
    r.set_max_message_size(max as u64);

    let mut received = Vec::with_capacity(expected);
    let mut end = None;
    while received.len() < expected {
        match r.recv_bytes_timeout(RECV_PATIENCE) {
            Ok(m) => received.push(m),
            Err(e) => {
                end = Some(e);
                break;
            }
        }
    }
    // A reader that gave up closes now, so stuck writers get EPIPE.
    let reader = if end.is_some() {
        drop(r);
        None
    } else {
        Some(r)
    };
    let reports = fork::wait_all(children, CHILD_DEADLINE).unwrap();
    assert_no_children();
    let mut v = violations(plan, &received, end.as_ref());
    if let Some(mut r) = reader {
        // Every writer has exited: anything still to come is extra.
        match r.recv_bytes_timeout(Duration::from_millis(20)) {
            Err(e) if e.is_timeout() => {}
            other => v.push(format!("more than was sent arrived: {other:?}")),
        }
        for rep in reports {
            if !rep.is_success() {
                v.push(format!("writer {} {}", rep.pid, rep.outcome));
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(config())]

    /// Several writers, each opening the FIFO by path, sizes biased toward
    /// PIPE_BUF and the pipe capacity and past both: every message arrives
    /// exactly once, whole, and in order per writer.
    #[test]
    fn many_writers_by_path_never_interleave(
        plan in proptest::collection::vec(
            sizes::size_plan(200_000, 6, 500_000),
            2..=4,
        )
    ) {
        let _serial = fork::serial();
        let v = run_writers(&plan, Mode::Locked);
        prop_assert!(v.is_empty(), "violations: {v:#?}");
    }
}

/// The oracle is not toothless: the same writers WITHOUT the lock, sending
/// frames larger than the pipe, interleave, and the check catches it.
#[test]
fn unlocked_writers_over_pipe_buf_interleave_and_are_caught() {
    let _serial = fork::serial();
    let plan = vec![vec![200_000; 8]; 3];
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let v = run_writers(&plan, Mode::Raw);
        if !v.is_empty() {
            // Caught, with a violation that is about boundaries.
            // A timeout alone would not be evidence; a torn frame is.
            assert!(
                v.iter().any(|s| s.contains("corrupt stream")
                    || s.contains("over the limit")
                    || s.contains("Merged")
                    || s.contains("Split")
                    || s.contains("Corrupt")),
                "{v:#?}"
            );
            return;
        }
        attempts.push(v);
    }
    panic!("three runs of unlocked writers were never caught: {attempts:?}");
}

// ---------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------

/// A line's bytes: no newline, content derived from (seed, length).
fn line_bytes(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((seed * 7 + i) % 26) as u8)
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Lines of random lengths written in random pieces that ignore line
    /// boundaries come back whole; a last line with no newline comes back
    /// as PartialLine holding its bytes.
    #[test]
    fn lines_come_back_whole_across_split_writes(
        lens in proptest::collection::vec(sizes::size(70_000), 0..8),
        tail in prop_oneof![Just(0usize), 1usize..10_000],
        cuts in proptest::collection::vec(1usize..20_000, 1..16),
    ) {
        let _serial = fork::serial();
        let lines: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &n)| line_bytes(i, n)).collect();
        let tail_bytes = line_bytes(99, tail);
        let mut stream: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        stream.extend(&tail_bytes);

        let dir = tempdir();
        let fifo = Fifo::create(dir.path().join("f")).unwrap();
        let path = fifo.path().to_path_buf();
        let child = fork::spawn(move || {
            use std::os::fd::AsFd;
            let fd = FifoWriter::open(&path, PEER).unwrap().into_fd();
            let mut rest = &stream[..];
            for &cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let mut piece = &rest[..cut.min(rest.len())];
                rest = &rest[piece.len()..];
                while !piece.is_empty() {
                    let n = sys::write(fd.as_fd(), piece).unwrap();
                    piece = &piece[n..];
                }
            }
            Vec::new()
        }).unwrap();
        let mut r = LineReader::open(fifo.path(), PEER).unwrap();
        for (i, line) in lines.iter().enumerate() {
            let got = r.recv_line_timeout(RECV_PATIENCE).unwrap();
            prop_assert!(&got == line, "line {}: {} bytes, expected {}", i, got.len(), line.len());
        }
        match r.recv_line_timeout(RECV_PATIENCE) {
            Err(Error::Closed) => prop_assert_eq!(tail, 0),
            Err(Error::PartialLine { bytes }) => prop_assert!(bytes == tail_bytes, "partial line of {} bytes", bytes.len()),
            other => prop_assert!(false, "after the lines: {:?}", other.map(|l| l.len())),
        }
        child.wait(CHILD_DEADLINE).unwrap().expect_success();
    }
}

#[test]
fn an_over_long_line_is_refused_and_skipped_and_the_stream_goes_on() {
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let mut r = LineReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    r.set_max_line_length(10);
    let w = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap();
    // All of it fits in the pipe, so one process can write, then read.
    w.send_line("ok").unwrap();
    w.send_line("x".repeat(30)).unwrap(); // seen whole: refused, skipped
    w.send_line("fine").unwrap();
    assert_eq!(r.recv_line().unwrap(), b"ok");
    let e = r.recv_line().unwrap_err();
    assert!(matches!(e, Error::TooLarge { len: 30, max: 10 }), "{e:?}");
    assert_eq!(r.recv_line().unwrap(), b"fine");

    // A line over the limit whose end has not come yet: refused at once,
    // and its end is skipped when it comes.
    let raw = FifoWriter::open(fifo.path(), Wait::NonBlocking)
        .unwrap()
        .into_fd();
    use std::os::fd::AsFd;
    sys::write(raw.as_fd(), &[b'z'; 40]).unwrap();
    let e = r.recv_line().unwrap_err();
    assert!(matches!(e, Error::TooLarge { len: 40, max: 10 }), "{e:?}");
    let e = r.recv_line_timeout(Duration::from_millis(20)).unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    sys::write(raw.as_fd(), &[b'z'; 40]).unwrap();
    sys::write(raw.as_fd(), b"zz\nlast\n").unwrap();
    assert_eq!(r.recv_line().unwrap(), b"last");
    drop((w, raw));
    assert!(r.recv_line().unwrap_err().is_closed());
}

#[test]
fn many_line_writers_never_interleave_even_past_pipe_buf() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let mut r = LineReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    r.keep_listening().unwrap();
    let writers = 3usize;
    let per_writer = 6usize;
    let len_of = |w: usize, s: usize| [10, 5000, 70_000][(w + s) % 3];
    let children: Vec<Child> = (0..writers)
        .map(|w| {
            let path = fifo.path().to_path_buf();
            fork::spawn(move || {
                let writer = FifoWriter::open(&path, PEER).unwrap();
                for s in 0..per_writer {
                    let mut line = format!("{w}:{s}:").into_bytes();
                    line.extend(line_bytes(w * 100 + s, len_of(w, s)));
                    writer.send_line(&line).unwrap();
                }
                Vec::new()
            })
            .unwrap()
        })
        .collect();
    let mut next = vec![0usize; writers];
    for _ in 0..writers * per_writer {
        let line = r.recv_line_timeout(RECV_PATIENCE).unwrap();
        let text = String::from_utf8(line).unwrap();
        let mut parts = text.splitn(3, ':');
        let w: usize = parts.next().unwrap().parse().unwrap();
        let s: usize = parts.next().unwrap().parse().unwrap();
        let body = parts.next().unwrap().as_bytes();
        assert_eq!(s, next[w], "writer {w} in order");
        assert!(
            body == line_bytes(w * 100 + s, len_of(w, s)),
            "line {w}:{s} whole"
        );
        next[w] += 1;
    }
    for report in fork::wait_all(children, CHILD_DEADLINE).unwrap() {
        report.expect_success();
    }
}

#[test]
fn a_writer_inherited_across_fork_still_excludes_its_parent() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let mut r = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    r.keep_listening().unwrap();
    r.set_max_message_size(300_000);
    // One writer, opened once, then shared by the parent and a child.
    let w = std::sync::Arc::new(FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap());
    let per = 6u32;
    let wc = w.clone();
    let inherited_read_end = r.as_raw_fd();
    let child = fork::spawn(move || {
        // The child closes its inherited copy of the parent's read end, so
        // that a reader giving up means EPIPE here too. (Its copy of the
        // `FifoReader` is never dropped: the child `_exit`s.)
        let _ = nix::unistd::close(inherited_read_end);
        for seq in 0..per {
            let msg = payload::make(MsgId { producer: 1, seq }, 200_000);
            if wc.send_bytes(&msg).is_err() {
                break;
            }
        }
        Vec::new()
    })
    .unwrap();
    // The parent sends from a thread while it reads here.
    let wp = w.clone();
    let sender = std::thread::spawn(move || {
        for seq in 0..per {
            wp.send_bytes(&payload::make(MsgId { producer: 0, seq }, 200_000))?;
        }
        Ok::<(), Error>(())
    });
    let mut received = Vec::new();
    let mut end = None;
    for _ in 0..2 * per {
        match r.recv_bytes_timeout(RECV_PATIENCE) {
            Ok(m) => received.push(m),
            Err(e) => {
                end = Some(e);
                break;
            }
        }
    }
    if end.is_some() {
        drop(r);
    }
    let sent = sender.join().unwrap();
    child.wait(CHILD_DEADLINE).unwrap().expect_success();
    if end.is_none() {
        sent.unwrap();
    }
    let plan = vec![vec![200_000; per as usize]; 2];
    let v = violations(&plan, &received, end.as_ref());
    assert!(v.is_empty(), "{v:#?}");
}

// ---------------------------------------------------------------------------
// Hostile paths (issue 9)
// ---------------------------------------------------------------------------

/// Device and inode of an open fd.
fn fd_id(fd: std::os::fd::BorrowedFd<'_>) -> (u64, u64) {
    let st = nix::sys::stat::fstat(fd).unwrap();
    (st.st_dev, st.st_ino)
}

fn path_id(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap();
    (m.dev(), m.ino())
}

/// Issue 9: someone swaps the FIFO's entry, as fast as they can, between
/// the genuine FIFO, a symlink to a decoy FIFO, a symlink to a regular file
/// and a regular file, while readers and writers keep opening it. Every
/// open either yields the genuine FIFO or fails with `Symlink` or
/// `NotAFifo`: it never follows a symlink (the decoy is never opened) and
/// never opens a non-FIFO.
///
/// The test can fail, and was seen to (each run, within 300 ms): with
/// `O_NOFOLLOW` removed from `sys::fifo::open_nonblocking`, opens through
/// the link reach the decoy FIFO ("opened the decoy through a symlink");
/// with the file-type check on the `fstat` of the opened fd removed from
/// `check_fifo`, opens of the regular file succeed ("opened a non-FIFO").
/// The decoy is a FIFO of our own, mode 0600, so only the symlink rule can
/// keep it out.
#[test]
fn a_symlink_swapped_in_while_opening_is_never_followed() {
    let _serial = fork::serial();
    let before = fds();
    let dir = tempdir();
    let d = dir.path();
    let genuine = Fifo::create(d.join("genuine")).unwrap();
    let decoy = Fifo::create(d.join("decoy")).unwrap();
    fs::write(d.join("plain"), b"not a FIFO").unwrap();
    fs::set_permissions(d.join("plain"), fs::Permissions::from_mode(0o600)).unwrap();
    // Readers on both FIFOs, so a writer's open would succeed on either.
    let _genuine_reader = genuine.reader(Wait::NonBlocking).unwrap();
    let _decoy_reader = decoy.reader(Wait::NonBlocking).unwrap();
    let genuine_id = path_id(genuine.path());
    let decoy_id = path_id(decoy.path());
    let path = d.join("f");
    fs::hard_link(genuine.path(), &path).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, d) = (stop.clone(), d.to_path_buf());
        std::thread::spawn(move || {
            let tmp = d.join("tmp");
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for k in 0..4 {
                    let _ = fs::remove_file(&tmp);
                    match k {
                        0 => fs::hard_link(d.join("genuine"), &tmp).unwrap(),
                        1 => std::os::unix::fs::symlink(d.join("decoy"), &tmp).unwrap(),
                        2 => std::os::unix::fs::symlink(d.join("plain"), &tmp).unwrap(),
                        _ => fs::hard_link(d.join("plain"), &tmp).unwrap(),
                    }
                    fs::rename(&tmp, d.join("f")).unwrap(); // atomic swap
                    swaps += 1;
                }
            }
            swaps
        })
    };

    let (mut opened, mut symlink, mut not_fifo) = (0u32, 0u32, 0u32);
    let mut wrong = Vec::new();
    // At least 300 ms, and on until every kind of entry has been met: on a
    // loaded machine the swapper can sit out long stretches in one state.
    let start = Instant::now();
    let met_all = |o: u32, s: u32, n: u32| o > 0 && s > 0 && n > 0;
    let mut i = 0u32;
    while start.elapsed() < Duration::from_millis(300)
        || (!met_all(opened, symlink, not_fifo) && start.elapsed() < Duration::from_secs(10))
    {
        i += 1;
        let got = match i % 3 {
            0 => FifoReader::open(&path, Wait::NonBlocking)
                .map(|r| fd_id(std::os::fd::AsFd::as_fd(&r))),
            1 => LineReader::open(&path, Wait::NonBlocking)
                .map(|r| fd_id(std::os::fd::AsFd::as_fd(&r))),
            _ => FifoWriter::open(&path, Wait::NonBlocking).map(|w| {
                let fd = w.into_fd();
                fd_id(std::os::fd::AsFd::as_fd(&fd))
            }),
        };
        match got {
            Ok(id) if id == genuine_id => opened += 1,
            Ok(id) if id == decoy_id => wrong.push("opened the decoy through a symlink".into()),
            Ok(id) => wrong.push(format!("opened a non-FIFO {id:?}")),
            Err(Error::Symlink { path: p }) if p == path => symlink += 1,
            Err(Error::NotAFifo { path: p }) if p == path => not_fifo += 1,
            Err(e) => wrong.push(format!("unclear error: {e:?}")),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    wrong.dedup();
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The race was really run: every kind of entry was met.
    assert!(
        swaps > 100 && opened > 0 && symlink > 0 && not_fifo > 0,
        "swaps {swaps}, opened {opened}, symlink {symlink}, not a FIFO {not_fifo}"
    );
    drop((_genuine_reader, _decoy_reader, genuine, decoy));
    drop(dir);
    assert_eq!(fds(), before, "an fd leaked");
}

/// The `SharedFifo` error of an open, or a panic naming what came instead.
fn shared_error<T: std::fmt::Debug>(r: ipc_harness::Result<T>) -> (PathBuf, u32, u32, String) {
    match r {
        Err(e @ Error::SharedFifo { .. }) => {
            let text = e.to_string();
            let Error::SharedFifo {
                path, owner, mode, ..
            } = e
            else {
                unreachable!()
            };
            (path, owner, mode, text)
        }
        other => panic!("expected SharedFifo, got {other:?}"),
    }
}

/// Issue 9: a FIFO owned by another user, or open to group or others, is
/// refused (by `fstat` on the opened fd: these tests run as root, which
/// passes every permission check) with an error naming path, owner and
/// mode; `allow_shared` opts in, for the library and the CLI.
#[test]
fn fifos_other_users_can_reach_are_refused_unless_shared() {
    let _serial = fork::serial();
    let before = fds();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let path = fifo.path().to_path_buf();
    let shared = FifoOptions::new()
        .wait(Wait::NonBlocking)
        .allow_shared(true);
    let me = sys::fifo::geteuid();

    // Owned by nobody (65534), mode 0600.
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let (p, owner, mode, text) = shared_error(FifoReader::open(&path, Wait::NonBlocking));
    assert_eq!((p.as_path(), owner, mode), (path.as_path(), 65534, 0o600));
    assert!(
        text.contains(&path.display().to_string())
            && text.contains("owned by another user")
            && text.contains("uid 65534")
            && text.contains("0600")
            && text.contains("allow_shared"),
        "{text}"
    );
    shared_error(LineReader::open(&path, Wait::NonBlocking));
    let mut reader = shared.reader(&path).unwrap();
    shared_error(FifoWriter::open(&path, Wait::NonBlocking));
    let w = shared.writer(&path).unwrap();
    w.send_bytes(b"to nobody's FIFO").unwrap();
    assert_eq!(reader.recv_bytes().unwrap(), b"to nobody's FIFO");
    drop(w);

    // Ours again, but open to group or others: each bit is enough.
    std::os::unix::fs::chown(&path, Some(me), None).unwrap();
    for bad in [0o666, 0o640, 0o620, 0o604, 0o602] {
        fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
        let (_, owner, mode, text) = shared_error(FifoWriter::open(&path, Wait::NonBlocking));
        assert_eq!((owner, mode), (me, bad));
        assert!(text.contains("open to other users"), "{text}");
        shared_error(FifoReader::open(&path, Wait::NonBlocking));
        shared.writer(&path).unwrap();
    }

    // Private again: the defaults open it.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    FifoWriter::open(&path, Wait::NonBlocking).unwrap();
    drop(reader);
    drop(fifo);
    assert!(!path.exists());
    drop(dir);
    assert_eq!(fds(), before, "an fd leaked");
}

/// Issue 9: in a directory every user may write to, without the sticky
/// bit, anyone may swap the entry: creating and opening are refused with
/// `InsecureDirectory` naming the directory, unless `allow_shared`. A
/// sticky one (`/tmp`-style) is fine for a FIFO of ours, and a FIFO planted
/// there by another user is still refused.
#[test]
fn world_writable_directories_need_the_sticky_bit() {
    let _serial = fork::serial();
    let dir = tempdir();
    let open_dir = dir.path().join("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let path = open_dir.join("f");
    match Fifo::create(&path) {
        Err(ref e @ Error::InsecureDirectory { ref dir, mode, .. }) => {
            assert_eq!((dir.as_path(), mode), (open_dir.as_path(), 0o777));
            let text = e.to_string();
            assert!(
                text.contains(&open_dir.display().to_string())
                    && text.contains("0777")
                    && text.contains("sticky"),
                "{text}"
            );
        }
        other => panic!("expected InsecureDirectory, got {other:?}"),
    }
    assert!(!path.exists(), "nothing was created");
    let shared = FifoOptions::new()
        .wait(Wait::NonBlocking)
        .allow_shared(true);
    let fifo = shared.create(&path).unwrap();
    assert!(matches!(
        FifoReader::open(&path, Wait::NonBlocking),
        Err(Error::InsecureDirectory { .. })
    ));
    let mut r = fifo.reader(Wait::NonBlocking).unwrap(); // the creator's options
    assert!(matches!(
        FifoWriter::open(&path, Wait::NonBlocking),
        Err(Error::InsecureDirectory { .. })
    ));
    shared.writer(&path).unwrap().send_bytes(b"shared").unwrap();
    assert_eq!(r.recv_bytes().unwrap(), b"shared");
    drop((r, fifo));

    // Sticky and world-writable, like /tmp.
    let sticky = dir.path().join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let fifo = Fifo::create(sticky.join("f")).unwrap();
    let mut r = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    FifoWriter::open(fifo.path(), Wait::NonBlocking)
        .unwrap()
        .send_bytes(b"sticky")
        .unwrap();
    assert_eq!(r.recv_bytes().unwrap(), b"sticky");
    // Someone else's FIFO planted there is still someone else's.
    let planted = sticky.join("planted");
    sys::fifo::mkfifo(&planted, 0o600).unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), None).unwrap();
    shared_error(FifoReader::open(&planted, Wait::NonBlocking));
}

/// Small-messages mode: sizes up to `SMALL_MESSAGE_MAX` from several
/// writers, no lock, and nothing interleaves; one byte more is refused
/// before anything is written, as is a line over `PIPE_BUF`.
#[test]
fn small_messages_mode_refuses_larger_and_never_interleaves() {
    let _serial = fork::serial();
    let m = SMALL_MESSAGE_MAX;
    assert_eq!(m + 4, sys::PIPE_BUF);
    let sizes = [0, 1, 3, 4, 5, 64, 1000, m - 1, m];
    let plan: Vec<Vec<usize>> = (0..3)
        .map(|w| (0..60).map(|i| sizes[(i + w) % sizes.len()]).collect())
        .collect();
    let v = run_writers(&plan, Mode::Small);
    assert!(v.is_empty(), "{v:#?}");

    let dir = tempdir();
    let opts = FifoOptions::new()
        .wait(Wait::NonBlocking)
        .small_messages(true);
    let fifo = opts.create(dir.path().join("f")).unwrap();
    let mut r = opts.reader(fifo.path()).unwrap();
    let mut w = opts.writer(fifo.path()).unwrap();
    assert_eq!(w.max_message_size(), m as u64);
    w.set_max_message_size(u64::MAX);
    assert_eq!(
        w.max_message_size(),
        m as u64,
        "never above the mode's limit"
    );
    match w.send_bytes(&vec![7; m + 1]) {
        Err(Error::TooLarge { len, max }) => assert_eq!((len, max), (m as u64 + 1, m as u64)),
        other => panic!("{other:?}"),
    }
    w.send_bytes(b"after").unwrap();
    // Nothing of the refused message was written: the next frame is whole.
    assert_eq!(r.recv_bytes().unwrap(), b"after");
    drop((r, w));

    let mut lines = opts.line_reader(fifo.path()).unwrap();
    let w = opts.writer(fifo.path()).unwrap();
    match w.send_line(vec![b'x'; sys::PIPE_BUF]) {
        Err(Error::TooLarge { len, max }) => {
            assert_eq!((len, max), (sys::PIPE_BUF as u64, sys::PIPE_BUF as u64 - 1))
        }
        other => panic!("{other:?}"),
    }
    w.send_line(vec![b'y'; sys::PIPE_BUF - 1]).unwrap();
    assert_eq!(lines.recv_line().unwrap(), vec![b'y'; sys::PIPE_BUF - 1]);
    match lines.recv_line_timeout(Duration::from_millis(20)) {
        Err(e) if e.is_timeout() => {}
        other => panic!("the refused line left something behind: {other:?}"),
    }
}

/// Mixing the modes is a stall, never a torn frame: while a small-messages
/// writer is open, a locked writer's large frame waits; once it closes, the
/// frame arrives whole. (Without the small writer's shared lock, the large
/// frame would go at once, and the first check here would fail.)
#[test]
fn mixing_modes_stalls_the_locked_writer_and_never_tears_a_frame() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let path = fifo.path().to_path_buf();
    let (go_r, go_w) = sys::pipe(false).unwrap();
    let (ready_r, ready_w) = sys::pipe(false).unwrap();
    // Forked first, so it inherits neither the reader nor the small
    // writer (an inherited copy would keep the shared lock alive).
    let child = fork::spawn(move || {
        let mut b = [0u8; 1];
        nix::unistd::read(&go_r, &mut b).unwrap();
        let w = FifoWriter::open(&path, PEER).unwrap();
        nix::unistd::write(&ready_w, b"r").unwrap();
        w.send_bytes(&payload::make(
            MsgId {
                producer: 0,
                seq: 0,
            },
            200_000,
        ))
        .unwrap();
        Vec::new()
    })
    .unwrap();
    let mut r = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    r.keep_listening().unwrap();
    let small = FifoOptions::new()
        .wait(Wait::NonBlocking)
        .small_messages(true)
        .writer(fifo.path())
        .unwrap();
    nix::unistd::write(&go_w, b"g").unwrap();
    let mut b = [0u8; 1];
    nix::unistd::read(&ready_r, &mut b).unwrap();
    small.send_bytes(b"small, first").unwrap();
    assert_eq!(
        r.recv_bytes_timeout(RECV_PATIENCE).unwrap(),
        b"small, first"
    );
    match r.recv_bytes_timeout(Duration::from_millis(200)) {
        Err(e) if e.is_timeout() => {}
        other => panic!(
            "the locked writer did not wait for the small one: {:?}",
            other.map(|m| m.len())
        ),
    }
    drop(small);
    let big = r.recv_bytes_timeout(RECV_PATIENCE).unwrap();
    assert!(matches!(payload::verify(&big), Verdict::Whole(_)), "torn");
    assert_eq!(big.len(), 200_000);
    child.wait(CHILD_DEADLINE).unwrap().expect_success();
    assert_no_children();
}

/// A reader that owns the FIFO reads it without touching its access time
/// (`O_NOATIME`): a FIFO's inode lives in a real file system, and updating
/// its atime on every read costs a few percent of a small message.
#[test]
fn reads_leave_the_access_time_of_an_owned_fifo_alone() {
    use std::fs::{File, FileTimes};
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::SystemTime;

    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    // Long ago: with `relatime`, an access time a day older than now is
    // always updated by a read, unless the reader opted out.
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let times = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo.path())
        .unwrap();
    times
        .set_times(FileTimes::new().set_accessed(long_ago))
        .unwrap();
    drop(times);
    assert_eq!(
        fs::metadata(fifo.path()).unwrap().accessed().unwrap(),
        long_ago
    );

    let mut rx = FifoReader::open(fifo.path(), Wait::NonBlocking).unwrap();
    let tx = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap();
    for msg in [&b"one"[..], b"two", b""] {
        tx.send_bytes(msg).unwrap();
        assert_eq!(rx.recv_bytes().unwrap(), msg);
    }
    assert_eq!(
        fs::metadata(fifo.path()).unwrap().accessed().unwrap(),
        long_ago,
        "a read updated the FIFO's access time"
    );
}
