//! Running out of file descriptors: creating a primitive fails with a clear
//! error that names what failed and leaks nothing; and thousands of
//! create/drop cycles leave the fd count and the child count where they
//! started.

use std::time::Duration;

use ipc_harness::harness::fork::{self, serial, unreaped_children};
use ipc_harness::raw::RawPipe;
use ipc_harness::sys::open_fds;
use ipc_harness::{Error, Fifo, Queue, duplex, pipe};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// In a child (so the limit dies with it): lowers RLIMIT_NOFILE to just
/// above what is open, creates `make` until it fails, then checks the
/// error and that every fd of the failed and the dropped attempts is back.
fn exhaust<T>(make: impl Fn() -> ipc_harness::Result<T>) -> String {
    let report = fork::run(Duration::from_secs(30), || {
        let base = open_fds().unwrap();
        let limit = (*base.last().unwrap_or(&2) + 8) as u64;
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, limit, hard).unwrap();
        let mut held = Vec::new();
        let error = loop {
            match make() {
                Ok(x) => held.push(x),
                Err(e) => break e,
            }
            assert!(held.len() < 1000, "the limit never bit");
        };
        let described = match &error {
            Error::Io { source, .. } | Error::PathIo { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::EMFILE), "{error:?}");
                error.to_string()
            }
            other => panic!("expected an I/O error naming the call, got {other:?}"),
        };
        drop(held);
        assert_eq!(open_fds().unwrap(), base, "fds leaked after {described}");
        format!(
            "{described}: {}",
            std::error::Error::source(&error).unwrap()
        )
        .into_bytes()
    })
    .unwrap();
    String::from_utf8(report.expect_success()).unwrap()
}

#[test]
fn running_out_of_fds_is_a_clear_error_and_leaks_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    // Writers of one FIFO whose reader is open: the open that fails is the
    // writer's own (not taken for a FIFO without a reader).
    let shared = Fifo::create(dir.path().join("writers")).unwrap();
    let _reader = shared.reader(ipc_harness::fifo::Wait::NonBlocking).unwrap();
    for message in [
        exhaust(|| {
            ipc_harness::fifo::FifoWriter::open(shared.path(), ipc_harness::fifo::Wait::NonBlocking)
        }),
        exhaust(pipe),
        exhaust(duplex),
        exhaust(RawPipe::new),
        exhaust(Queue::new),
        exhaust(|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let f = Fifo::create(dir.path().join(format!("f{i}")))?;
            let r = f.reader(ipc_harness::fifo::Wait::NonBlocking)?;
            Ok((f, r))
        }),
    ] {
        assert!(message.contains("Too many open files"), "{message}");
    }
}

#[test]
fn thousands_of_create_drop_cycles_leave_nothing_behind() {
    let _serial = serial();
    let fds = open_fds().unwrap();
    for _ in 0..2000 {
        let (tx, mut rx) = pipe().unwrap();
        tx.send_bytes(b"x").unwrap();
        assert_eq!(rx.recv_bytes().unwrap(), b"x");
        let (a, b) = duplex().unwrap();
        let q = Queue::new().unwrap();
        q.put_bytes(b"y").unwrap();
        drop((tx, rx, a, b, q));
    }
    for _ in 0..200 {
        let q = Queue::new().unwrap();
        let (tx, _rx) = pipe().unwrap();
        let child = fork::spawn(move || {
            drop(tx);
            q.put_bytes(b"z").unwrap();
            Vec::new()
        })
        .unwrap();
        child
            .wait(Duration::from_secs(10))
            .unwrap()
            .expect_success();
    }
    assert_eq!(open_fds().unwrap(), fds, "fds leaked");
    assert_eq!(
        unreaped_children(),
        Vec::<i32>::new(),
        "children left unreaped"
    );
}
