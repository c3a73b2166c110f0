//! # ipc-harness
//!
//! Inter-process message primitives for Linux whose delivery and boundary
//! semantics are proven by property tests across forked processes, and the
//! harness that does the proving.
//!
//! ## The message-boundary model
//! A pipe (or a `SOCK_STREAM` socket) is a **byte stream**. The kernel
//! promises that bytes arrive in order and that one write of at most
//! `PIPE_BUF` (4096) bytes is not interleaved with other writers. It does
//! **not** promise that one `read` returns one `write`: two writes can come
//! back glued together (`b"Spam 004Spam 000"`), one write can come back in
//! pieces, and a large write from one writer can be interleaved with
//! another's. [`raw::RawPipe`] shows all of this on purpose.
//!
//! The primitives here close that gap with framing: every message travels
//! as a length header and a payload ([`frame`], byte-compatible with
//! CPython's `multiprocessing.connection`), so each receive returns exactly
//! one message, whole, or a clear [`Error`].
//!
//! | primitive | kernel object | boundaries | order | many writers | many readers |
//! |---|---|---|---|---|---|
//! | [`pipe()`] | `pipe2` | kept | kept | no: one writer[^pipe-writers] | no |
//! | [`duplex()`] | `socketpair(SOCK_STREAM)` | kept | kept, per direction | no | no |
//! | [`duplex_pipes()`] | two `pipe2`s, one per direction (two fds per end; the faster two-way connection for small messages) | kept | kept, per direction | no | no |
//! | [`Fifo`] | `mkfifo` | kept | kept, per writer | yes: `flock`, or no lock in [chunked mode](fifo::FifoOptions::chunked), where a dead writer loses only its own message | no |
//! | [`Queue`] | shared-memory ring + robust locks | kept | per producer | yes | yes |
//! | [`JoinableQueue`] | a `Queue` + shared task counters | kept | per producer | yes | yes |
//! | [`raw::RawPipe`] | `pipe2` | **none** | bytes only | writes ≤ `PIPE_BUF` | no |
//!
//! [^pipe-writers]: What [`pipe()`] promises, and the harness checks, is one
//!     process sending and one receiving. Two writers sharing a [`Sender`]
//!     across `fork` keep boundaries only while every frame is at most
//!     `PIPE_BUF` bytes (the kernel's atomic write), which nothing enforces:
//!     for many writers use a [`Fifo`] or a [`Queue`].
//!
//! ## Hello, pipe
//! ```
//! use ipc_harness::{pipe, harness::fork};
//! use std::time::Duration;
//!
//! let (tx, mut rx) = pipe()?;
//! // `tx` moves into the child; the parent's copy closes when spawn returns.
//! let child = fork::spawn(move || {
//!     for i in 0..3u32 {
//!         tx.send(&format!("Spam {i:03}")).unwrap();
//!     }
//!     Vec::new()
//! })?;
//! for i in 0..3u32 {
//!     assert_eq!(rx.recv::<String>()?, format!("Spam {i:03}"));
//! }
//! // The child exited, so the last write end is closed: end of stream.
//! assert!(rx.recv_bytes().unwrap_err().is_closed());
//! child.wait(Duration::from_secs(10))?.expect_success();
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! ## Disconnection
//! A receive after every sender is gone returns [`Error::Closed`] at a
//! message boundary, and [`Error::Truncated`] if a sender died inside a
//! message. A send after the receiver is gone returns [`Error::Closed`]; it
//! never kills your process with `SIGPIPE`.
//!
//! ## Checking your own transport
//! The harness that proves all this is public. Implement
//! [`harness::channel::Channel`] for your transport — how to open it before
//! fork, what a producer's end does to send, what a consumer's end does to
//! receive, and what it promises — then run
//! [`harness::run::run`] on one scenario or
//! [`harness::campaign::campaign`] on many generated ones. Each producer and
//! consumer runs in its own forked process; the oracle
//! ([`harness::check`]) judges what they report and names every message
//! lost, duplicated, reordered, merged, split or corrupted, and every
//! process that hung or crashed. [`harness::channel`] has a complete
//! example; `tests/user_channel.rs` checks a length-prefixed `UnixStream`
//! written outside the crate, and catches the same stream without its
//! length prefix.
//!
//! ## Cargo features
//! - `serde` (default): typed `send`/`recv` through serde, encoded with
//!   postcard ([`codec`]).
//! - `harness` (default): [`harness`], the fork runner, scenarios, oracle,
//!   campaigns and pitfall variants; it brings in proptest. Without it (and
//!   without `serde`), the primitives need only libc, nix and thiserror:
//!   `ipc-harness = { version = "...", default-features = false }`.
//! - `test-hooks` (off): switches that break the primitives on purpose
//!   (the queue's kill points, a queue without its consumer lock, access to
//!   its locks), for this crate's own tests and tools. Never turn it on in
//!   a production build.
//!
//! ## Forking safely
//! Read [`harness::fork`] before forking from a multi-threaded program (such
//! as `cargo test`): the child may only do simple things, and should report
//! back through a pipe. Every fd this crate creates is `O_CLOEXEC`.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
// Every `unsafe` block lives in `sys`, each with its `// SAFETY:` argument.
#![deny(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ipc-harness supports Linux only: it relies on pipe2, F_SETPIPE_SZ, O_DIRECT pipes, pidfd_open and /proc."
);

#[cfg(feature = "serde")]
pub mod codec;
pub mod duplex_pipes;
pub mod error;
pub mod fifo;
pub mod frame;
pub mod guide;
#[cfg(feature = "harness")]
pub mod harness;
pub mod joinable;
pub mod pipe;
pub mod probe;
pub mod queue;
pub mod raw;

// The system-call layer: every `unsafe` block of the crate lives here.
// Not public API; the `test-hooks` feature opens it to the crate's own
// tests and tools.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod sys;
#[cfg(not(feature = "test-hooks"))]
#[allow(dead_code, unsafe_code)]
mod sys;

pub use duplex_pipes::{PipeConnection, duplex_pipes};
pub use error::{Error, Result};
pub use fifo::Fifo;
pub use joinable::JoinableQueue;
pub use pipe::{Connection, Receiver, Sender, duplex, pipe};
pub use queue::Queue;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
