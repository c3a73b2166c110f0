//! Named pipes (FIFOs) by path, between processes that share nothing but a
//! file name, safe against hostile paths.
//!
//! A [`Fifo`] is the creator's handle: [`Fifo::create`] makes the FIFO and
//! removes it again on drop unless [`kept`](Fifo::keep). Any process opens
//! it by path: [`FifoWriter::open`] for writing, [`FifoReader::open`] for
//! framed messages, [`LineReader::open`] for lines. [`FifoOptions`] holds
//! the choices: how long an open waits ([`Wait`]), whether a FIFO other
//! users can reach is acceptable, and the [mode](#modes) of framed
//! messages ([`FifoMode`]: framed, small messages, chunked).
//!
//! # Example
//! ```
//! use ipc_harness::fifo::{Fifo, FifoReader, FifoWriter, Wait};
//! use ipc_harness::harness::fork;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let fifo = Fifo::create(dir.path().join("spam"))?;
//! let path = fifo.path().to_path_buf();
//! // The son: an independent open by path. It cannot deadlock: its open
//! // waits for the father, who opens below; every message fits the pipe.
//! let son = fork::spawn(move || {
//!     let w = FifoWriter::open(&path, Wait::Timeout(Duration::from_secs(10))).unwrap();
//!     for i in 0..3 {
//!         w.send_bytes(format!("Spam {i:03}").as_bytes()).unwrap();
//!     }
//!     Vec::new()
//! })?;
//! let mut father = FifoReader::open(fifo.path(), Wait::Blocking)?;
//! for i in 0..3 {
//!     assert_eq!(father.recv_bytes()?, format!("Spam {i:03}").as_bytes());
//! }
//! // The son has exited, so the last writer is gone: end of stream.
//! assert!(father.recv_bytes().unwrap_err().is_closed());
//! son.wait(Duration::from_secs(10))?.expect_success();
//! drop(fifo); // removes the FIFO
//! assert!(!dir.path().join("spam").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contract
//! **Creating.**
//! - The FIFO's mode is exactly `0600` whatever the umask, and never looser
//!   at any moment; the mode is set on the very FIFO created, never through
//!   a symlink someone swapped in meanwhile.
//! - Something already at the path is [`Error::AlreadyExists`] and is left
//!   alone; a missing directory is [`Error::NoSuchDirectory`], naming it,
//!   unless [`Fifo::create_all`] was asked to create missing parents (mode
//!   `0700`).
//! - On drop the handle removes the FIFO, but only if the path still names
//!   the very FIFO it created (same device and inode).
//!
//! **Opening** (every fd `O_CLOEXEC`):
//! - Never through a symlink: a symlink as the last component is
//!   [`Error::Symlink`] (dangling or not), left as it was. Directories on the
//!   way are resolved as usual, so a path through a symlinked directory such
//!   as `/var/run` still works; the hostile case, someone else planting a
//!   link where the FIFO should be, is refused.
//! - Anything but a FIFO is [`Error::NotAFifo`], judged on the file actually
//!   opened, not on the path beforehand, and an open never blocks on
//!   something that is not a FIFO. So even with someone swapping the entry
//!   between a FIFO, a symlink and a regular file as fast as they can, every
//!   open either gets the FIFO that was at the path at the moment of the
//!   open, or fails with [`Error::Symlink`] or [`Error::NotAFifo`].
//! - A reader of a FIFO it owns sets `O_NOATIME`: its reads leave the
//!   FIFO's access time as it was (updating it costs a few percent of a
//!   small message). A reader that does not own the FIFO reads as usual.
//!
//! **Other users** (both when creating and when opening). A FIFO is a
//! private channel by default: anyone who can write to it can forge
//! messages, anyone who can read it can take them, and its owner can change
//! its mode at any time. So these are **refused**, not merely warned about
//! (a library has no one to warn, and a warning nobody reads protects
//! nobody):
//! - a FIFO owned by another user than our effective uid, or with read or
//!   write permission for group or others: [`Error::SharedFifo`], naming the
//!   path, the owner's uid and the mode. This is judged by owner and mode,
//!   so it holds for root too;
//! - a FIFO whose directory every user may write to and which lacks the
//!   sticky bit, where anyone may rename or replace the entry:
//!   [`Error::InsecureDirectory`], naming the directory, its owner and mode.
//!   A sticky world-writable directory such as `/tmp` is fine: there only the
//!   entry's owner may remove or rename it, and the FIFO must be ours. Only
//!   the directory holding the FIFO is checked, not its ancestors.
//!
//! Users who really want a shared FIFO opt in with
//! [`FifoOptions::allow_shared`] (`--allow-shared` on the command line),
//! which lifts all three checks; the FIFO then is only as trustworthy as
//! every user who can reach it.
//!
//! **Waiting** for the other side, as [`Wait`] says:
//! - [`Wait::Blocking`] waits as long as it takes, as the kernel's own
//!   blocking open does;
//! - [`Wait::Timeout`] waits at most that long, then returns
//!   [`Error::Timeout`] with the fd already closed: no fd and no half-open
//!   state is left behind;
//! - [`Wait::NonBlocking`] does not wait: a writer with no reader gets
//!   [`Error::NoReader`] (the kernel's `ENXIO`); a reader opens at once (and
//!   until a writer comes, receives [`Error::Closed`], as the kernel's reads
//!   return end of stream while no writer has the FIFO open).
//!
//! A waiting open notices the other side within about 10 ms (the kernel has
//! no open with a timeout, so it polls). A reader never consumes data while
//! it waits. As with the kernel's own open interrupted by a signal, a writer
//! that opens in the very moment a reader's timeout expires may find the
//! reader gone (its first send is then [`Error::Closed`]).
//!
//! **Talking.**
//! - Framed messages ([`FifoWriter::send_bytes`], [`FifoReader::recv_bytes`])
//!   use [`pipe()`](crate::pipe())'s wire format and receiver, so each receive
//!   returns exactly one whole message, or [`Error::Closed`] at a boundary,
//!   [`Error::Truncated`] inside one.
//! - Lines ([`FifoWriter::send_line`], [`LineReader::recv_line`]) come back
//!   whole, without their `\n`; a last line with no newline before the end
//!   of the stream is [`Error::PartialLine`] holding its bytes.
//! - **Many writers**, each opening the path on its own: no frame or line
//!   is ever interleaved with another, at any size, `PIPE_BUF` or larger.
//!   In the default (framed) mode every write of a frame or line happens
//!   under an exclusive `flock` on the FIFO itself (a program of your own
//!   that writes to the FIFO must take it too). The kernel releases the
//!   lock when its holder dies, so a killed writer never wedges the others
//!   (but see **Limits**, and [chunked mode](#modes), which needs no lock
//!   to keep messages whole).
//! - A [`FifoWriter`] may be shared by threads and inherited across `fork`:
//!   its sends still never interleave with each other's.
//! - **Small messages** ([`FifoOptions::small_messages`]), for speed: a
//!   writer that promises never to send more than [`SMALL_MESSAGE_MAX`]
//!   bytes (enforced: larger sends are [`Error::TooLarge`], nothing
//!   written) skips the per-message lock. Each of its frames is one write
//!   of at most `PIPE_BUF` bytes, which the kernel never interleaves with
//!   another write. The lock costs two system calls per message: at 64 B
//!   a locked writer runs at about 0.25-0.35x of [`pipe()`](crate::pipe()),
//!   a small-messages writer at 0.8-1.0x (medians over interleaved rounds,
//!   two busy cores). **All writers of a FIFO must use the same
//!   mode**; mixing them never tears a frame, but stalls the locked writers
//!   until every small-messages writer has closed.
//! - The reader sees [`Error::Closed`] once the last writer has closed.
//!   [`FifoReader::keep_listening`] (and [`LineReader::keep_listening`])
//!   instead keeps waiting for new writers.
//! - [`LineReader::set_max_line_length`] bounds what a writer that never
//!   sends a newline can make the reader hold;
//!   [`FifoReader::set_max_message_size`] does the same for frames.
//!
//! **Limits.** One reader per FIFO: a reader reads ahead, so two readers
//! would split frames between them. In the framed modes, a writer killed in
//! the middle of a frame leaves a truncated frame in the FIFO; with other
//! writers still open, the reader then sees a corrupt stream
//! ([`Error::Corrupt`] or [`Error::TooLarge`]), as it would over any shared
//! byte stream, and other writers' messages are lost in it. Chunked mode
//! exists for that: see below.
//!
//! # Modes
//! The framed messages of a FIFO travel in one of three modes
//! ([`FifoMode`]), chosen by the [`FifoOptions`] each end opens with.
//! Nothing on disk records a FIFO's mode: every writer and the reader must
//! be opened with the same one.
//!
//! | mode | wire format | many writers | a writer killed mid-message |
//! |---|---|---|---|
//! | [`Framed`](FifoMode::Framed) (default) | CPython's `Connection` | an exclusive `flock` per message | tears the stream for the others |
//! | [`SmallMessages`](FifoMode::SmallMessages) | CPython's, at most [`SMALL_MESSAGE_MAX`] bytes | one atomic write per message, no lock | cannot happen: one write |
//! | [`Chunked`](FifoMode::Chunked) | the crate's chunks | chunks interleave; no lock keeps them whole (messages of 64 KiB and more take turns) | loses that message only, counted |
//!
//! **Chunked mode** ([`FifoOptions::chunked`]). A writer cuts every
//! message into chunks of at most [`CHUNK_PAYLOAD_MAX`] (4080) bytes, each
//! sent as one `write(2)` of a [`CHUNK_HEADER_LEN`]-byte header (a magic
//! byte, the format version, first/last flags, the chunk's length, the
//! writer's [`WriterId`]: its pid and a random nonce, and the message's
//! sequence number) and the payload: at most `PIPE_BUF` bytes, which the
//! kernel writes whole or not at all, even when the writer is killed in
//! it. Messages of any size from many writers interleave at chunk
//! boundaries; the reader keeps one message in progress per writer and
//! returns each when its last chunk comes, so every writer's messages
//! arrive whole and in the order it sent them.
//! - **A writer that dies mid-message** loses that message and nothing
//!   else. Its send never returned `Ok`; no receive returns any of it, and
//!   no receive fails because of it: the reader drops it and counts it in
//!   [`FifoReader::abandoned_messages`]. The reader learns the writer is
//!   gone at the end of the stream (every writer gone: the stream then
//!   ends with [`Error::Closed`], as usual); or, while other writers go on
//!   or a [`keep_listening`](FifoReader::keep_listening) reader waits, once
//!   nothing has arrived for about 50 ms and the writer's pid names no
//!   live process (checked before the FIFO is found empty, so nothing it
//!   wrote can still be on its way;
//!   [`set_writer_liveness_check`](FifoReader::set_writer_liveness_check)
//!   turns this off, for writers in another pid namespace); or when a new
//!   message starts under its id. [`FifoReader::messages_in_progress`] says
//!   what the reader holds meanwhile.
//! - **Large messages take turns.** A message of at least 64 KiB is
//!   written holding an exclusive `flock` on the FIFO (small ones never
//!   wait for it). Nothing depends on it for correctness: it only spares
//!   the writers a herd, where every read that makes room in a full FIFO
//!   would wake every blocked writer for one 4 KiB chunk each (eight
//!   writers of 1 MiB messages moved about half of what one does; taking
//!   turns, the same as one). A writer that dies releases its turn with
//!   its fd (a writer inherited across `fork` takes its turns on an open
//!   file description of its own, so its turn dies with it). A writer
//!   *stopped* (`SIGSTOP`) inside a large message holds up the other
//!   writers' large messages until it continues or dies; their small
//!   messages go on.
//! - **Memory.** [`FifoReader::set_max_message_size`] bounds every message
//!   in progress: one whose chunks add up to more is refused with
//!   [`Error::TooLarge`] at the chunk that crosses the limit (nothing more
//!   is kept of it, the rest of it is skipped as it comes, and the stream
//!   goes on), so the reader holds at most that many bytes per writer with
//!   a message in progress, plus a read-ahead of at most 256 KiB. A writer refuses a
//!   message over its own limit ([`FifoWriter::set_max_message_size`])
//!   before writing anything.
//! - **Threads and `fork`**: a writer's threads take turns per message (a
//!   mutex, held for the whole message); a writer inherited across `fork`
//!   takes a fresh id on its first send in the child, so parent and child
//!   never mix their chunks. Do not fork while another thread is inside a
//!   send of that writer: the child would inherit the mutex locked.
//! - Lines ([`FifoWriter::send_line`]) are not chunked: in chunked mode a
//!   line is one atomic write of at most `PIPE_BUF` bytes with its newline,
//!   as in small-messages mode.
//!
//! **A mismatch is refused, never misparsed.** A chunk starts with the byte
//! `0xC5`, which never starts a framed header (whose 4-byte length starts
//! `0x00`-`0x7F`, or `0xFF` for a long one). A framed reader that meets a
//! chunk, and a chunked reader that meets a framed header, return
//! [`Error::Corrupt`] saying the writer uses the other mode (and every
//! later receive is `Corrupt` too: such a stream cannot be put right).
//!
//! **Which mode.** Framed stays the default: it is the format Python's
//! `multiprocessing.connection` speaks, and a single writer needs nothing
//! more. Choose chunked when several writers share a FIFO and one of them
//! may die (or be killed) in the middle of a message, or when many writers
//! send large messages and must not wait for each other's lock. What it
//! costs: it is this crate's format, not CPython's; 16 bytes per 4080 of
//! payload; one system call per chunk, where a framed writer sends a large
//! message in one `writev`; the reader copies a multi-chunk message into
//! its own buffer, and holds messages in progress. Measured (the
//! `ipc-harness bench` cases `Fifo chunked`, `Fifo chunked 8 writers` and
//! `raw FIFO`, medians of per-round ratios over interleaved rounds on two
//! cores, where differences under ~1.3x are noise): one chunked writer runs
//! at about 0.6-0.9x of [`pipe()`](crate::pipe()) at 64 B (a locked framed
//! writer: 0.2-0.3x). Much of that gap is the kernel's: plain 64-byte
//! writes and reads on a FIFO run at 0.75-0.9x of the same on an anonymous
//! pipe (a FIFO's reads and writes also update its inode's times), and a
//! chunked writer runs at 0.7-1.0x of those plain FIFO writes. At 4 KiB a
//! message is two chunks (0.35-0.6x of `pipe()`); from 64 KiB up 0.35-0.6x
//! of `pipe()`, whose sender skips a copy there, and 2-5x of plain FIFO
//! writes. Eight chunked writers together run at 0.7-1.2x of one at every
//! size (three runs: 0.74-1.16 at 64 B, 0.73-0.82 at 4 KiB, 0.74-1.04 at
//! 64 KiB, 0.47-0.80 at 1 MiB, 0.88-1.00 at 16 MiB; 0.35-0.5x at 1 MiB
//! before large messages took turns).

mod chunked;
mod lines;
mod open;
mod options;
mod reader;
mod writer;

#[cfg(feature = "test-hooks")]
pub use chunked::set_chunk_kill_point;
pub use chunked::{CHUNK_HEADER_LEN, CHUNK_PAYLOAD_MAX, WriterId};
pub use lines::LineReader;
pub use options::{FifoMode, FifoOptions, SMALL_MESSAGE_MAX, Wait};
pub use reader::FifoReader;
pub use writer::FifoWriter;

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys::fifo::{self as sysfifo, Kind};

/// The mode every FIFO is created with.
pub const MODE: u32 = 0o600;
/// The mode of parent directories [`Fifo::create_all`] creates.
pub const PARENT_MODE: u32 = 0o700;

/// The creator's handle on a FIFO: made by [`Fifo::create`], removed on drop
/// unless [`keep`](Fifo::keep) was called.
#[derive(Debug)]
pub struct Fifo {
    path: PathBuf,
    id: (u64, u64),
    remove_on_drop: bool,
    opts: FifoOptions,
}

impl Fifo {
    /// Creates a FIFO at `path` with mode `0600` (whatever the umask).
    ///
    /// Errors: [`Error::AlreadyExists`] if anything is at `path` (it is left
    /// alone), [`Error::NoSuchDirectory`] if its directory is missing.
    /// [`Error::InsecureDirectory`] if the directory is world-writable
    /// without the sticky bit (see [`FifoOptions::allow_shared`]).
    pub fn create(path: impl AsRef<Path>) -> Result<Fifo> {
        Self::create_inner(path.as_ref(), false, FifoOptions::new())
    }

    /// Like [`create`](Self::create), but first creates missing parent
    /// directories (mode `0700`, like `mkdir -p -m 700`).
    pub fn create_all(path: impl AsRef<Path>) -> Result<Fifo> {
        Self::create_inner(path.as_ref(), true, FifoOptions::new())
    }

    fn create_inner(path: &Path, parents: bool, opts: FifoOptions) -> Result<Fifo> {
        if parents {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(PARENT_MODE)
                    .create(parent)
                    .map_err(|e| Error::path_io("create the directory", parent, e))?;
            }
        }
        open::check_dir(path, &opts)?;
        // Exactly 0600, never looser at any moment: mkfifo(path, 0600) (the
        // umask can only take bits away), then open the entry with
        // O_PATH | O_NOFOLLOW, confirm with fstat that it is a FIFO of ours,
        // and chmod /proc/self/fd/N, which acts on *that inode*. fchmod would
        // refuse an O_PATH fd; chmod(path) could follow a symlink swapped in
        // meanwhile; opening the FIFO for reading to fchmod it would need the
        // read permission a umask such as 0477 takes away.
        if let Err(e) = sysfifo::mkfifo(path, MODE) {
            return Err(match e.raw_os_error() {
                Some(libc::EEXIST) => Error::AlreadyExists { path: path.into() },
                Some(libc::ENOENT) => Error::NoSuchDirectory { path: path.into() },
                _ => Error::path_io("create the FIFO", path, e),
            });
        }
        // mkfifo gave 0600 minus the umask: never looser than 0600. Now set
        // exactly 0600 on the inode we made, without following any symlink.
        let fd = sysfifo::open_path(path).map_err(|e| Error::path_io("open", path, e))?;
        let st = sysfifo::fstat(fd.as_fd()).map_err(|e| Error::path_io("stat", path, e))?;
        if st.kind != Kind::Fifo || st.uid != sysfifo::geteuid() {
            // Someone replaced our FIFO between mkfifo and open; leave theirs.
            return Err(Error::path_io(
                "set the mode of",
                path,
                io::Error::other(
                    "the path was replaced by another file while the FIFO was created",
                ),
            ));
        }
        if let Err(e) = sysfifo::chmod_fd(fd.as_fd(), MODE) {
            remove_if_same(path, st.id);
            return Err(Error::path_io("set the mode of", path, e));
        }
        Ok(Fifo {
            path: path.into(),
            id: st.id,
            remove_on_drop: true,
            opts,
        })
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the FIFO on disk after this handle is gone; returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.remove_on_drop = false;
        std::mem::take(&mut self.path)
    }

    /// Removes the FIFO now, if the path still names the FIFO this handle
    /// created (a FIFO someone already removed is no error).
    pub fn remove(mut self) -> Result<()> {
        self.remove_on_drop = false;
        match sysfifo::lstat(&self.path) {
            Ok(st) if st.kind == Kind::Fifo && st.id == self.id => std::fs::remove_file(&self.path)
                .map_err(|e| Error::path_io("remove", &self.path, e)),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::path_io("stat", &self.path, e)),
        }
    }

    /// Opens this FIFO for framed reading. See [`FifoReader::open`].
    pub fn reader(&self, wait: Wait) -> Result<FifoReader> {
        self.opts.wait(wait).reader(&self.path)
    }

    /// Opens this FIFO for reading lines. See [`LineReader::open`].
    pub fn line_reader(&self, wait: Wait) -> Result<LineReader> {
        self.opts.wait(wait).line_reader(&self.path)
    }

    /// Opens this FIFO for writing. See [`FifoWriter::open`].
    pub fn writer(&self, wait: Wait) -> Result<FifoWriter> {
        self.opts.wait(wait).writer(&self.path)
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        if self.remove_on_drop {
            remove_if_same(&self.path, self.id);
        }
    }
}

fn remove_if_same(path: &Path, id: (u64, u64)) {
    if let Ok(st) = sysfifo::lstat(path) {
        if st.kind == Kind::Fifo && st.id == id {
            let _ = std::fs::remove_file(path);
        }
    }
}
