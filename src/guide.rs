//! # The pitfalls guide
//!
//! Ten ways inter-process messages go wrong on Linux, numbered as
//! everywhere in this crate and its tool. For each: the naive code, what goes wrong and
//! the POSIX or Linux rule behind it, the command that shows it happening,
//! the tests that catch it, and the fix.
//!
//! Every pitfall has a demo that runs the naive code for real across forked
//! processes, then the fix on the same workload, and prints what happened:
//!
//! ```text
//! ipc-harness demo --list
//! ipc-harness demo coalescing
//! ```
//!
//! The command-line tool (the `ipc-harness-cli` package, `cli/` in the
//! repository) runs them; its `tests/demo.rs` runs every one and checks
//! that the failure and the fix both show. Its `tests/pitfalls.rs`
//! has one test per pitfall, `catches_<name>` (e.g. `catches_coalescing`),
//! proving the naive variant is caught every time; `ipc-harness check
//! --include-pitfalls` runs the transport pitfalls (1 to 6,
//! [`crate::harness::pitfalls`]) through the whole property campaign. The probe,
//! `ipc-harness probe` ([`crate::probe`]), says what this kernel provides.
//!
//! The Python snippets are the programs each pitfall comes from (`text` blocks: not Rust). The
//! Rust blocks run as doctests, except where marked `no_run` (they would
//! race or block on purpose; the demo runs them deterministically) or
//! `ignore` (the reason is given).
//!
//! ## 1. Coalesced reads: two writes read as one
//!
//! **Naive code.** One `write` per message, one `read` per message:
//!
//! ```text
//! os.write(w, b'Spam 004'); os.write(w, b'Spam 000')   # the son
//! data = os.read(r, 1024)                              # the father: b'Spam 004Spam 000'
//! ```
//!
//! ```
//! use ipc_harness::raw::RawPipe;
//!
//! let pipe = RawPipe::new()?;
//! pipe.write(b"Spam 004")?;
//! pipe.write(b"Spam 000")?;
//! let mut buf = [0u8; 1024];
//! let n = pipe.read(&mut buf)?;
//! assert_eq!(&buf[..n], b"Spam 004Spam 000"); // two messages, one read
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! **Why.** A pipe is a byte stream. POSIX promises the bytes in order, and
//! nothing about boundaries: `read(2)` returns whatever is there, up to the
//! buffer's size. Whenever the writer gets ahead of the reader (the reader
//! was busy, or descheduled), writes pile up and come back together.
//!
//! **See it:** `ipc-harness demo coalescing`. **Caught by:**
//! `tests/pitfalls.rs` `catches_coalescing`, `tests/pipe.rs`
//! `the_same_check_catches_an_unframed_pipe`, `tests/demo.rs` `coalescing`.
//!
//! **Fix.** Frame each message: [`crate::pipe()`] writes a length header
//! before the payload (CPython's own format), and each receive returns one
//! message.
//!
//! ```
//! let (tx, mut rx) = ipc_harness::pipe()?;
//! tx.send_bytes(b"Spam 004")?;
//! tx.send_bytes(b"Spam 000")?;
//! assert_eq!(rx.recv_bytes()?, b"Spam 004");
//! assert_eq!(rx.recv_bytes()?, b"Spam 000");
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! ## 2. Split reads: a fixed-size read cuts a long message
//!
//! **Naive code.** `os.read(fd, 32)` taken as one message:
//!
//! ```
//! use ipc_harness::raw::RawPipe;
//!
//! let pipe = RawPipe::new()?;
//! pipe.write(b"Spam 000: lovely spam, wonderful spam!")?; // 38 bytes
//! let mut buf = [0u8; 32];
//! let n = pipe.read(&mut buf)?;
//! assert_eq!(&buf[..n], b"Spam 000: lovely spam, wonderful"); // cut
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! **Why.** `read(2)` never returns more than the buffer holds, and the rest
//! of the message stays in the pipe, to be glued onto the front of the next
//! "message". There are no boundaries to stop at.
//!
//! **See it:** `ipc-harness demo split-reads`. **Caught by:**
//! `tests/pitfalls.rs` `catches_split_reads`, `tests/demo.rs` `split_reads`.
//!
//! **Fix.** A framed receive never cuts: into a buffer that is too small, it
//! fails with [`Error::BufferTooSmall`](crate::Error::BufferTooSmall) holding
//! the whole message (Python's `BufferTooShort`).
//!
//! ```
//! use ipc_harness::Error;
//!
//! let (tx, mut rx) = ipc_harness::pipe()?;
//! tx.send_bytes(b"Spam 000: lovely spam, wonderful spam!")?;
//! let mut buf = [0u8; 32];
//! match rx.recv_bytes_into(&mut buf) {
//!     Err(Error::BufferTooSmall { message }) => assert_eq!(message.len(), 38),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! ## 3. Interleaved writes: two writers over `PIPE_BUF`, no lock
//!
//! **Naive code.** Several processes send framed messages into one pipe:
//!
//! ```no_run
//! # use ipc_harness::Sender;
//! # fn naive(shared_write_end: &Sender) -> ipc_harness::Result<()> {
//! // In writer A (writer B does the same with b'B'), on one shared pipe:
//! shared_write_end.send_bytes(&[b'A'; 6000])?; // no lock: frames can tear
//! # Ok(()) }
//! ```
//!
//! **Why.** POSIX makes a pipe `write` atomic only up to `PIPE_BUF` bytes
//! (4096 on Linux). A larger write goes in as room appears: when the pipe is
//! full the kernel copies what fits and puts the writer to sleep, and any
//! other writer may put its bytes in before the first one wakes. The
//! reader then gets a header followed by two writers' bytes, and later
//! reads payload bytes as a length header.
//!
//! **See it:** `ipc-harness demo interleaved-writes` (a one-page pipe, and
//! writer A paused mid-write at the moment the kernel lets B in). **Caught
//! by:** `tests/pitfalls.rs` `catches_interleaved_writes`, `tests/fifo.rs`
//! `unlocked_writers_over_pipe_buf_interleave_and_are_caught`,
//! `tests/demo.rs` `interleaved_writes`.
//!
//! **Fix.** Writers that hold a shared lock for a whole frame:
//! [`FifoWriter`](crate::fifo::FifoWriter) takes an exclusive `flock` on the
//! FIFO around every frame (released by the kernel if its holder dies), and
//! [`Queue`](crate::Queue) has a producer lock. Frames of at most `PIPE_BUF`
//! bytes in total need no lock on a plain pipe.
//!
//! ```
//! use ipc_harness::fifo::{Fifo, FifoReader, FifoWriter, Wait};
//!
//! let dir = tempfile::tempdir()?;
//! let fifo = Fifo::create(dir.path().join("spam"))?;
//! let mut reader = FifoReader::open(fifo.path(), Wait::NonBlocking)?;
//! let a = FifoWriter::open(fifo.path(), Wait::NonBlocking)?; // each writer
//! let b = FifoWriter::open(fifo.path(), Wait::NonBlocking)?; // opens by path
//! a.send_bytes(&[b'A'; 6000])?; // under the FIFO's flock
//! b.send_bytes(&[b'B'; 6000])?;
//! assert_eq!(reader.recv_bytes()?, [b'A'; 6000]);
//! assert_eq!(reader.recv_bytes()?, [b'B'; 6000]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## 4. Racing readers: two readers, no lock, split one frame
//!
//! **Naive code.** Two processes receive from the read end of one pipe, each
//! reading a 4-byte header and then the payload (as CPython's
//! `Connection.recv_bytes` does):
//!
//! ```no_run
//! # use std::os::fd::AsFd;
//! # fn naive(shared_read_end: &std::os::fd::OwnedFd) -> std::io::Result<()> {
//! let fd = shared_read_end.as_fd();
//! let mut header = [0u8; 4];
//! ipc_harness::sys::read(fd, &mut header)?; // the other reader may read here
//! let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
//! ipc_harness::sys::read(fd, &mut payload)?; // ... and take these bytes
//! # Ok(()) }
//! ```
//!
//! **Why.** Every `read(2)` takes bytes off the front of the pipe, whoever
//! calls it; a message read in two calls can lose its middle to the other
//! reader, which then takes payload bytes for a length header. Reading
//! ahead (as [`crate::Receiver`] does) makes it worse: one reader takes
//! another's whole messages.
//!
//! **See it:** `ipc-harness demo racing-readers`. **Caught by:**
//! `tests/pitfalls.rs` `catches_racing_readers`, `tests/queue.rs`
//! `racing_readers_are_caught` (the queue without its consumer lock),
//! `tests/demo.rs` `racing_readers`.
//!
//! **Fix.** [`Queue`](crate::Queue): a consumer holds the consumer lock for
//! a whole message, and each message goes whole to exactly one consumer.
//!
//! ```
//! use ipc_harness::{Queue, harness::fork};
//! use std::time::Duration;
//!
//! # let _serial = fork::serial(); // doctests run on threads: see harness::fork
//! let q = Queue::new()?;
//! q.put_bytes(b"Spam 000")?;
//! q.put_bytes(b"Spam 001")?;
//! let readers: Vec<_> = (0..2)
//!     .map(|_| {
//!         let q = q.clone();
//!         fork::spawn(move || {
//!             q.close_producer();
//!             q.get_bytes().unwrap()
//!         })
//!     })
//!     .collect::<Result<_, _>>()?;
//! let mut got: Vec<Vec<u8>> = fork::wait_all(readers, Duration::from_secs(10))?
//!     .into_iter()
//!     .map(|r| r.expect_success())
//!     .collect();
//! got.sort();
//! assert_eq!(got, [b"Spam 000".to_vec(), b"Spam 001".to_vec()]);
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! ## 5. Ignored short write
//!
//! **Naive code.** A non-blocking writer that drops `write`'s count:
//!
//! ```
//! use ipc_harness::{frame, raw::RawPipe};
//!
//! let pipe = RawPipe::new()?;
//! pipe.set_capacity(4096)?;
//! pipe.set_nonblocking_write(true)?;
//! let whole = frame::encode(&[b'a'; 6000]);
//! let n = pipe.write(&whole)?; // the naive code ignores n
//! assert!(n < whole.len(), "only {n} of {} bytes went in", whole.len());
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! **Why.** A non-blocking `write(2)` to a pipe writes what fits and
//! returns the count; over `PIPE_BUF` bytes it may write part of the
//! buffer (up to `PIPE_BUF` it writes all or nothing, `EAGAIN`). The rest
//! is the caller's to write again once there is room (`poll` for
//! `POLLOUT`). Ignored, the header promises bytes that never come: the
//! reader swallows the next messages as the rest of this one.
//!
//! **See it:** `ipc-harness demo ignored-short-write`. **Caught by:**
//! `tests/pitfalls.rs` `catches_ignored_short_write`, `tests/demo.rs`
//! `ignored_short_write`.
//!
//! **Fix.** Write until every byte is in. [`Sender::send_bytes`](crate::Sender::send_bytes)
//! loops on the count (and blocks for room), so a frame larger than the
//! pipe goes through while the reader drains it:
//!
//! ```
//! use ipc_harness::harness::fork;
//! use std::time::Duration;
//!
//! # let _serial = fork::serial();
//! let (tx, mut rx) = ipc_harness::pipe()?;
//! let child = fork::spawn(move || {
//!     tx.send_bytes(&[b'a'; 100_000]).unwrap(); // larger than the pipe
//!     Vec::new()
//! })?;
//! // Cannot deadlock: the parent reads while the child writes.
//! assert_eq!(rx.recv_bytes()?.len(), 100_000);
//! child.wait(Duration::from_secs(10))?.expect_success();
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! ## 6. EOF that never comes
//!
//! **Naive code.** The reader kept its own copy of the write end (the father
//! forgot `os.close(w)` after `fork`):
//!
//! ```
//! use ipc_harness::Error;
//! use std::time::Duration;
//!
//! let (tx, mut rx) = ipc_harness::pipe()?;
//! tx.send_bytes(b"Spam 000")?;
//! assert_eq!(rx.recv_bytes()?, b"Spam 000");
//! // `tx` is still open in this process: no end of stream, ever.
//! // (A plain recv_bytes() would wait forever; the timeout shows it.)
//! assert!(matches!(rx.recv_bytes_timeout(Duration::from_millis(50)), Err(Error::Timeout)));
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! **Why.** `read(2)` on a pipe returns 0, end of stream, only when every
//! copy of the write end in every process is closed. `fork` copies every
//! fd, so each process must close the ends it does not use, or it waits
//! for itself.
//!
//! **See it:** `ipc-harness demo eof-never-comes` (the reader is killed by
//! the fork runner's deadline, and the report says it was blocked in
//! `read`). **Caught by:** `tests/pitfalls.rs` `catches_eof_never_comes`,
//! `tests/fifo.rs`
//! `reader_sees_closed_only_after_the_last_of_several_writers_closes`,
//! `tests/demo.rs` `eof_never_comes`.
//!
//! **Fix.** Give each process only its ends: values moved into a
//! [`fork::spawn`](crate::harness::fork::spawn) closure are closed in the
//! parent when it returns; in one process, drop the sender.
//!
//! ```
//! # // Hold the fork lock: a child forked meanwhile by another doctest
//! # // thread would inherit `tx` and delay the end of stream.
//! # let _serial = ipc_harness::harness::fork::serial();
//! let (tx, mut rx) = ipc_harness::pipe()?;
//! tx.send_bytes(b"Spam 000")?;
//! drop(tx); // the last write end
//! assert_eq!(rx.recv_bytes()?, b"Spam 000");
//! assert!(rx.recv_bytes().unwrap_err().is_closed());
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! ## 7. A FIFO's open blocks; a non-blocking writer gets `ENXIO`
//!
//! **Naive code.** The son opens the FIFO before the father:
//!
//! ```text
//! fifo = open('/tmp/father-son.fifo', 'w')   # blocks until a reader opens it
//! ```
//!
//! ```
//! use ipc_harness::fifo::Fifo;
//! use std::os::unix::fs::OpenOptionsExt;
//!
//! let dir = tempfile::tempdir()?;
//! let fifo = Fifo::create(dir.path().join("father-son.fifo"))?;
//! // Without O_NONBLOCK this open would block until a reader came.
//! let e = std::fs::OpenOptions::new()
//!     .write(true)
//!     .custom_flags(libc::O_NONBLOCK)
//!     .open(fifo.path())
//!     .unwrap_err();
//! assert_eq!(e.raw_os_error(), Some(libc::ENXIO)); // "No such device or address"
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Why.** POSIX `open(2)` of a FIFO blocks until the other side opens it:
//! a writer waits for a reader and a reader for a writer. With `O_NONBLOCK`
//! a reader opens at once, and a writer with no reader fails with `ENXIO`.
//! A program that opens in the wrong order, or whose peer died, hangs in
//! `open`, where no read timeout can help.
//!
//! **See it:** `ipc-harness demo fifo-open-blocks`. **Caught by:**
//! `tests/pitfalls.rs` `catches_fifo_open_blocks`, `tests/fifo.rs`
//! `blocking_writer_open_waits_for_a_reader_that_opens_later`,
//! `timed_opens_give_up_on_time_and_leave_nothing_open`,
//! `nonblocking_writer_without_reader_is_no_reader`, `tests/demo.rs`
//! `fifo_open_blocks`.
//!
//! **Fix.** Say how long to wait ([`Wait`](crate::fifo::Wait)), and get a
//! clear error: [`Error::Timeout`](crate::Error::Timeout) with nothing left
//! open, or [`Error::NoReader`](crate::Error::NoReader).
//!
//! ```
//! use ipc_harness::Error;
//! use ipc_harness::fifo::{Fifo, FifoWriter, Wait};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let fifo = Fifo::create(dir.path().join("father-son.fifo"))?;
//! let e = FifoWriter::open(fifo.path(), Wait::Timeout(Duration::from_millis(20))).unwrap_err();
//! assert!(matches!(e, Error::Timeout));
//! let e = FifoWriter::open(fifo.path(), Wait::NonBlocking).unwrap_err();
//! assert!(matches!(e, Error::NoReader { .. }), "{e}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## 8. A FIFO in a missing directory
//!
//! **Naive code.** The father of Python's father/son FIFO example:
//!
//! ```text
//! os.mkfifo('/tmp/father-son/fifo')   # FileNotFoundError: [Errno 2] No such file or directory
//! ```
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("missing").join("father-son.fifo");
//! let e = ipc_harness::sys::fifo::mkfifo(&path, 0o600).unwrap_err();
//! assert_eq!(e.raw_os_error(), Some(libc::ENOENT)); // which part is missing?
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Why.** `mkfifo(3)` makes one directory entry and never creates
//! directories; like `open(2)` with `O_CREAT`, it fails with `ENOENT` when a
//! directory on the way is missing. The message names no directory, and
//! reads as if the FIFO itself were expected to exist.
//!
//! **See it:** `ipc-harness demo fifo-missing-directory`. **Caught by:**
//! `tests/pitfalls.rs` `catches_fifo_missing_directory`, `tests/fifo.rs`
//! `missing_directory_is_a_clear_error_naming_it`, `tests/demo.rs`
//! `fifo_missing_directory`.
//!
//! **Fix.** [`Fifo::create`](crate::Fifo::create) names the missing
//! directory ([`Error::NoSuchDirectory`](crate::Error::NoSuchDirectory));
//! [`Fifo::create_all`](crate::Fifo::create_all) (the CLI's `--parents`)
//! creates it, mode `0700`.
//!
//! ```
//! use ipc_harness::{Error, Fifo};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("missing").join("father-son.fifo");
//! let e = Fifo::create(&path).unwrap_err();
//! assert!(matches!(e, Error::NoSuchDirectory { .. }));
//! assert!(e.to_string().contains("missing does not exist"), "{e}");
//! let fifo = Fifo::create_all(&path)?;
//! assert!(fifo.path().exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## 9. A producer killed holding the queue's lock
//!
//! **Naive code.** Python's `multiprocessing.Queue`, with a producer killed
//! at the wrong moment:
//!
//! ```text
//! q = multiprocessing.Queue()
//! p = Process(target=producer, args=(q,)); p.start()
//! os.kill(p.pid, signal.SIGKILL)   # while its feeder thread holds the queue's lock
//! q.put('more')                    # another producer's feeder now waits forever
//! ```
//!
//! **Why.** Python's queue lock is a `multiprocessing.Lock`, a POSIX
//! semaphore. A semaphore is a count in shared memory: when the process
//! that took it dies, nothing gives it back, and every other process that
//! needs the lock waits forever (CPython gh-87971; the docs warn that
//! killing a process that uses a queue may break it for the others).
//!
//! **See it:** `ipc-harness demo queue-killed-holding-lock` (the naive
//! queue guards a pipe with a one-byte token, a lock with the same flaw,
//! and the surviving producer hangs; then our `Queue` on the same story).
//! **Caught by:** `tests/pitfalls.rs` `catches_queue_killed_holding_lock`,
//! `tests/queue.rs` `a_killed_producer_breaks_nobody`,
//! `a_killed_sole_producer_leaves_consumers_closed_not_hung`,
//! `tests/demo.rs` `queue_killed_holding_lock`, and by the harness's kill
//! faults: the pitfall `non-robust-lock` (a queue with that token lock for
//! its writers and one for its readers) passes fault-free campaigns and is
//! caught as a `Hang` under `check --faults` (`tests/faults.rs`).
//!
//! Robust mutexes have a trap of their own: an unlock wakes one waiter,
//! and if that waiter is the process being killed while another takes the
//! free lock first, nobody wakes the rest. The fault soak found it; the
//! queue's lock waits now sleep at most 10 ms at a time.
//!
//! **Fix.** [`Queue`](crate::Queue)'s locks are robust process-shared
//! mutexes: when the holder dies, the kernel hands the next locker
//! `EOWNERDEAD`, and it repairs the queue's state before going on. Here a
//! producer dies holding the producer lock (killed there by a hook of the
//! crate's own tests, behind its `test-hooks` feature), and the next put
//! and the gets go on:
//!
//! ```
//! use ipc_harness::{Queue, harness::fork::{self, Outcome}};
//! # use ipc_harness::queue::{KillPoint, set_kill_point};
//! use std::time::Duration;
//!
//! # let _serial = fork::serial();
//! let q = Queue::new()?;
//! let victim = {
//!     let q = q.clone();
//!     fork::spawn(move || {
//!         # set_kill_point(Some(KillPoint::ProducerLocked), 1);
//!         // SIGKILLed inside this put, holding the producer lock:
//!         q.put_bytes(b"never").unwrap();
//!         Vec::new()
//!     })?
//! };
//! let report = victim.wait(Duration::from_secs(10))?;
//! assert_eq!(report.outcome, Outcome::Signaled(libc::SIGKILL));
//! q.put_bytes(b"Spam 000")?; // takes the dead producer's lock and repairs
//! assert_eq!(q.get_bytes_timeout(Duration::from_secs(10))?, b"Spam 000");
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! ## 10. `task_done()` called more times than items were put
//!
//! **Naive code.**
//!
//! ```text
//! q = multiprocessing.JoinableQueue()
//! q.put(job)
//! item = q.get(); work(item); q.task_done()
//! q.task_done()   # ValueError: task_done() called too many times
//! ```
//!
//! **Why.** A joinable queue counts unfinished tasks: `put` adds one,
//! `task_done` takes one away, `join` waits for zero. An extra `task_done`
//! is a consumer bug; an unchecked counter would go wrong, and `join` could
//! return while another item is still being worked on (or never return).
//! Python checks, and raises `ValueError`.
//!
//! **See it:** `ipc-harness demo task-done-too-many-times`.
//! **Caught by:** `tests/pitfalls.rs` `catches_task_done_too_many_times`,
//! `tests/demo.rs` `task_done_too_many_times`, `tests/joinable.rs`.
//!
//! **Fix.** `JoinableQueue::task_done` refuses the extra call with
//! [`Error::TaskDoneTooManyTimes`](crate::Error::TaskDoneTooManyTimes) and
//! leaves the count as it was.
//!
//! ```
//! let q = ipc_harness::JoinableQueue::new()?;
//! q.put_bytes(b"job")?;
//! q.get_bytes()?;
//! q.task_done()?;
//! assert!(matches!(q.task_done(), Err(ipc_harness::Error::TaskDoneTooManyTimes)));
//! # Ok::<(), ipc_harness::Error>(())
//! ```
