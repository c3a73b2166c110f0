//! Named pipes (FIFOs) by path, between processes that share nothing but a
//! file name, safe against hostile paths.
//!
//! A [`Fifo`] is the creator's handle: [`Fifo::create`] makes the FIFO and
//! removes it again on drop unless [`kept`](Fifo::keep). Any process opens
//! it by path: [`FifoWriter::open`] for writing, [`FifoReader::open`] for
//! framed messages, [`LineReader::open`] for lines.
//!
//! # Contract
//! **Creating.**
//! - The FIFO's mode is exactly `0600` whatever the umask, and never looser
//!   at any moment: `mkfifo(path, 0600)` (the umask can only take bits
//!   away), then the entry is opened with `O_PATH | O_NOFOLLOW`, `fstat`
//!   confirms it is a FIFO owned by us, and `chmod` on `/proc/self/fd/N`
//!   sets `0600` on *that inode*. `fchmod` would refuse an `O_PATH` fd, and a
//!   plain `chmod(path)` could follow a symlink swapped in meanwhile; opening
//!   the FIFO for reading to `fchmod` it would need the read permission a
//!   umask such as `0477` takes away.
//! - Something already at the path is [`Error::AlreadyExists`] and is left
//!   alone; a missing directory is [`Error::NoSuchDirectory`], naming it,
//!   unless [`Fifo::create_all`] was asked to create missing parents (mode
//!   `0700`).
//! - On drop the handle removes the FIFO, but only if the path still names
//!   the very FIFO it created (same device and inode).
//!
//! **Opening** (every fd `O_CLOEXEC`):
//! - Never through a symlink: `O_NOFOLLOW` on the last component, and a
//!   symlink there is [`Error::Symlink`] (dangling or not), left as it was.
//!   Directories on the way are resolved as usual, so a path through a
//!   symlinked directory such as `/var/run` still works; the hostile case,
//!   someone else planting a link where the FIFO should be, is refused.
//! - Anything but a FIFO is [`Error::NotAFifo`], decided by `fstat` on the
//!   opened fd (not on the path before opening, which could change between
//!   the check and the open). The open itself is `O_NONBLOCK`, so it cannot
//!   block before the check; `O_NONBLOCK` is cleared afterwards. So even
//!   with someone swapping the entry between a FIFO, a symlink and a regular
//!   file as fast as they can, every open either gets the FIFO that was at
//!   the path at the moment of the open, or fails with [`Error::Symlink`]
//!   or [`Error::NotAFifo`] (`tests/fifo.rs` races it).
//!
//! **Other users** (both when creating and when opening). A FIFO is a
//! private channel by default: anyone who can write to it can forge
//! messages, anyone who can read it can take them, and its owner can change
//! its mode at any time. So these are **refused**, not merely warned about
//! (a library has no one to warn, and a warning nobody reads protects
//! nobody):
//! - a FIFO owned by another user than our effective uid, or with read or
//!   write permission for group or others: [`Error::SharedFifo`], naming the
//!   path, the owner's uid and the mode. Decided by `fstat` on the opened fd,
//!   not by an access check, which root would pass for any file;
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
//! - [`Wait`] says how long to wait for the other side:
//!   - [`Wait::Blocking`] waits as long as it takes, as the kernel's own
//!     blocking open does;
//!   - [`Wait::Timeout`] waits at most that long, then returns
//!     [`Error::Timeout`] with the fd already closed: no fd and no
//!     half-open state is left behind;
//!   - [`Wait::NonBlocking`] does not wait: a writer with no reader gets
//!     [`Error::NoReader`] (the kernel's `ENXIO`); a reader opens at once
//!     (and until a writer comes, receives [`Error::Closed`], as the kernel's
//!     reads return end of stream while no writer has the FIFO open).
//! - How the waiting works: the kernel has no "open with a timeout", so
//!   both sides poll the kernel's own answer with a back-off from 1 ms to
//!   10 ms. A writer retries its `O_NONBLOCK` open while it fails with
//!   `ENXIO` (no reader); a failed open creates no fd. A reader opens with
//!   `O_NONBLOCK` at once (that never blocks) and then waits for a writer:
//!   `poll` wakes it when a writer writes, or writes nothing and leaves
//!   (`POLLHUP`), and between polls a `tee(SPLICE_F_NONBLOCK)` of one byte
//!   into a scratch pipe, which copies rather than consumes, tells a silent
//!   writer (`EAGAIN`) from no writer at all (`0`). `POLLHUP` alone could
//!   not: Linux reports it only once a writer has come *and gone*. As with
//!   the kernel's own open interrupted by a signal, a writer that opens in
//!   the very moment a reader's timeout expires may find the reader gone
//!   (its first send is then [`Error::Closed`]).
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
//!   Every write of a frame or line happens under an exclusive `flock` on
//!   the FIFO's own inode. Why `flock` on the FIFO rather than a lock file
//!   beside it: there is no second file to create, name, secure or clean up;
//!   anyone who may open the FIFO may lock it; and the kernel releases the
//!   lock when its holder dies, so a killed writer never wedges the others.
//!   Even frames of at most `PIPE_BUF` bytes take the lock: the kernel keeps
//!   them atomic, but one could still land between the pieces of a larger
//!   frame whose writer holds the lock.
//! - **Small messages** ([`FifoOptions::small_messages`]), for speed: a
//!   writer that promises never to send more than [`SMALL_MESSAGE_MAX`]
//!   bytes (enforced: larger sends are [`Error::TooLarge`], nothing
//!   written) skips the per-message lock. Each of its frames is one write
//!   of at most `PIPE_BUF` bytes, which the kernel never interleaves with
//!   another write. The lock costs two system calls per message: at 64 B
//!   a locked writer runs at about 0.25-0.35x of [`pipe()`](crate::pipe()),
//!   a small-messages writer at 0.8-1.0x (medians over interleaved rounds,
//!   two busy cores). **All writers of a FIFO must use the same
//!   mode**: a lock-free small write could otherwise land between the
//!   pieces of a large locked frame. As a safety net, a small-messages
//!   writer holds a shared `flock` from open to close, so a locked writer
//!   waits for its exclusive lock until every small-messages writer has
//!   closed: mixing the modes stalls the locked writers, and never tears a
//!   frame.
//! - `flock` locks belong to an open file description, which `fork` shares.
//!   A [`FifoWriter`] used in a process other than the one that opened it
//!   therefore first reopens the FIFO (same inode, via `/proc/self/fd/N`),
//!   so a writer inherited across `fork` still excludes its parent. Within
//!   one process, a mutex serializes threads.
//! - The reader sees [`Error::Closed`] once the last writer has closed.
//!   [`FifoReader::keep_listening`] (and [`LineReader::keep_listening`])
//!   instead keeps waiting for new writers: the reader opens a write end of
//!   its own, so the count of writers never drops to zero.
//!
//! - [`LineReader::set_max_line_length`] bounds what a writer that never
//!   sends a newline can make the reader hold; [`FifoReader::set_max_message_size`]
//!   does the same for frames.
//!
//! **Limits.** One reader per FIFO: a reader reads ahead, so two readers
//! would split frames between them. A writer killed in the middle of a
//! frame leaves a truncated frame in the FIFO; with other writers still
//! open, the reader then sees a corrupt stream ([`Error::Corrupt`] or
//! [`Error::TooLarge`]), as it would over any shared byte stream.
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

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame;
use crate::pipe::Receiver;
use crate::sys::fifo::{self as sysfifo, Access, Kind, Probe};
use crate::sys::{self, Pid, Readiness, WriteKind};

/// The mode every FIFO is created with.
pub const MODE: u32 = 0o600;
/// The mode of parent directories [`Fifo::create_all`] creates.
pub const PARENT_MODE: u32 = 0o700;

const MIN_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_millis(10);
const READ_CHUNK: usize = 64 * 1024;

/// How long an open waits for the other side of the FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait as long as it takes (the kernel's blocking open).
    Blocking,
    /// Wait at most this long, then [`Error::Timeout`], leaving nothing open.
    Timeout(Duration),
    /// Do not wait: a writer with no reader gets [`Error::NoReader`]; a
    /// reader opens at once.
    NonBlocking,
}

impl Wait {
    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Timeout(d) => Some(sys::deadline_after(d)),
            Wait::Blocking | Wait::NonBlocking => None,
        }
    }
}

/// The most a message may hold in [`FifoOptions::small_messages`] mode:
/// header and payload together are at most `PIPE_BUF` bytes, so each frame
/// is one atomic write.
pub const SMALL_MESSAGE_MAX: usize = sys::PIPE_BUF - frame::HEADER_LEN;

/// How to create or open a FIFO: how long an open waits, whether a FIFO
/// that other users can reach is acceptable, and whether writers promise to
/// send small messages only. `FifoOptions::new()` is what [`Fifo::create`],
/// [`FifoReader::open`], [`LineReader::open`] and [`FifoWriter::open`] use
/// (with their `wait`).
///
/// ```
/// use ipc_harness::fifo::{FifoOptions, Wait};
///
/// let dir = tempfile::tempdir()?;
/// let opts = FifoOptions::new().wait(Wait::NonBlocking).small_messages(true);
/// let fifo = opts.create(dir.path().join("f"))?;
/// let mut r = opts.reader(fifo.path())?;
/// let w = opts.writer(fifo.path())?;
/// w.send_bytes(b"Spam 000")?; // one write, no lock
/// assert!(w.send_bytes(&[0; 4093]).unwrap_err().to_string().contains("over the limit"));
/// assert_eq!(r.recv_bytes()?, b"Spam 000");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FifoOptions {
    wait: Wait,
    allow_shared: bool,
    small_messages: bool,
}

impl Default for FifoOptions {
    fn default() -> Self {
        FifoOptions {
            wait: Wait::Blocking,
            allow_shared: false,
            small_messages: false,
        }
    }
}

impl FifoOptions {
    /// The defaults: [`Wait::Blocking`], private FIFOs only, messages of any
    /// size.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long an open waits for the other side.
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Accepts a FIFO that other users can reach: one owned by another
    /// user, one with read or write permission for group or others, or one
    /// in a world-writable directory without the sticky bit. Refused by
    /// default ([`Error::SharedFifo`], [`Error::InsecureDirectory`]); see the
    /// [module docs](self) for why.
    pub fn allow_shared(mut self, yes: bool) -> Self {
        self.allow_shared = yes;
        self
    }

    /// Small-messages mode: a writer refuses any message over
    /// [`SMALL_MESSAGE_MAX`] bytes (a line over `PIPE_BUF` bytes with its
    /// newline) with [`Error::TooLarge`], and sends every frame as one
    /// atomic write without taking the writers' lock per message; a reader
    /// refuses larger frames. Every writer of the FIFO must use this mode;
    /// see the [module docs](self) for what happens if one does not.
    pub fn small_messages(mut self, yes: bool) -> Self {
        self.small_messages = yes;
        self
    }

    /// Creates a FIFO at `path`. See [`Fifo::create`]; the FIFO's
    /// [`reader`](Fifo::reader) and [`writer`](Fifo::writer) use these
    /// options.
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        Fifo::create_inner(path.as_ref(), false, *self)
    }

    /// Like [`create`](Self::create), creating missing parent directories
    /// (mode `0700`) first.
    pub fn create_all(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        Fifo::create_inner(path.as_ref(), true, *self)
    }

    /// Opens the FIFO at `path` for framed reading. See [`FifoReader::open`].
    pub fn reader(&self, path: impl AsRef<Path>) -> Result<FifoReader> {
        FifoReader::open_with(path.as_ref(), self)
    }

    /// Opens the FIFO at `path` for reading lines. See [`LineReader::open`].
    pub fn line_reader(&self, path: impl AsRef<Path>) -> Result<LineReader> {
        LineReader::open_with(path.as_ref(), self)
    }

    /// Opens the FIFO at `path` for writing. See [`FifoWriter::open`].
    pub fn writer(&self, path: impl AsRef<Path>) -> Result<FifoWriter> {
        FifoWriter::open_with(path.as_ref(), self)
    }
}

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
        check_dir(path, &opts)?;
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

/// The error for a path that is not a FIFO, from what `lstat` says it is.
fn not_a_fifo(path: &Path, kind: Kind) -> Error {
    match kind {
        Kind::Symlink => Error::Symlink { path: path.into() },
        _ => Error::NotAFifo { path: path.into() },
    }
}

/// Maps a failed open of `path`.
fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(p) if std::fs::metadata(p).is_err() => {
                    Error::NoSuchDirectory { path: path.into() }
                }
                _ => Error::NotFound { path: path.into() },
            }
        }
        // O_NOFOLLOW: the last component is a symlink (dangling or not).
        // lstat resolves the same directories: if it succeeds, the ELOOP
        // came from the last component, a symlink at the time of the open
        // (even if someone has swapped it for something else since).
        Some(libc::ELOOP) => match sysfifo::lstat(path) {
            Ok(_) => Error::Symlink { path: path.into() },
            Err(_) => Error::path_io("open", path, e),
        },
        Some(libc::EISDIR) => Error::NotAFifo { path: path.into() },
        // A socket, or a device without a driver.
        Some(libc::ENXIO) => match sysfifo::lstat(path) {
            Ok(st) if st.kind != Kind::Fifo => not_a_fifo(path, st.kind),
            _ => Error::path_io("open", path, e),
        },
        _ => Error::path_io("open", path, e),
    }
}

/// Refuses anything but a FIFO, and (unless `allow_shared`) a FIFO another
/// user could reach, judging the opened fd.
fn check_fifo(fd: BorrowedFd<'_>, path: &Path, opts: &FifoOptions) -> Result<(u64, u64)> {
    let st = sysfifo::fstat(fd).map_err(|e| Error::path_io("stat", path, e))?;
    if st.kind != Kind::Fifo {
        return Err(not_a_fifo(path, st.kind));
    }
    if !opts.allow_shared {
        let reason = if st.uid != sysfifo::geteuid() {
            Some("owned by another user")
        } else if st.mode & SHARED_BITS != 0 {
            Some("open to other users (group or others may read or write it)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::SharedFifo {
                path: path.into(),
                owner: st.uid,
                mode: st.mode,
                reason,
            });
        }
    }
    Ok(st.id)
}

/// Read and write permission for group and others.
const SHARED_BITS: u32 = 0o066;
/// Write permission for others.
const OTHERS_WRITE: u32 = 0o002;
/// The sticky bit: in a directory, only an entry's owner (or the
/// directory's) may remove or rename it.
const STICKY: u32 = 0o1000;

/// Refuses (unless `allow_shared`) a path whose directory every user may
/// write to without the sticky bit: anyone could swap the entry.
fn check_dir(path: &Path, opts: &FifoOptions) -> Result<()> {
    if opts.allow_shared {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // A directory we cannot stat is left to the open to report.
    if let Ok(st) = sysfifo::stat(dir) {
        if st.kind == Kind::Directory && st.mode & OTHERS_WRITE != 0 && st.mode & STICKY == 0 {
            return Err(Error::InsecureDirectory {
                path: path.into(),
                dir: dir.into(),
                owner: st.uid,
                mode: st.mode,
            });
        }
    }
    Ok(())
}

fn clear_nonblocking(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    sys::set_nonblocking(fd, false).map_err(|e| Error::path_io("configure", path, e))
}

fn open_write_end(path: &Path, opts: &FifoOptions) -> Result<(OwnedFd, (u64, u64))> {
    check_dir(path, opts)?;
    let wait = opts.wait;
    let deadline = wait.deadline();
    let mut backoff = MIN_BACKOFF;
    loop {
        match sysfifo::open_nonblocking(path, Access::Write) {
            Ok(fd) => {
                let id = check_fifo(fd.as_fd(), path, opts)?;
                clear_nonblocking(fd.as_fd(), path)?;
                return Ok((fd, id));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                // A FIFO without a reader, or a socket or a device without a
                // driver: tell them apart before calling it NoReader.
                match sysfifo::lstat(path) {
                    Ok(st) if st.kind == Kind::Fifo => {}
                    Ok(st) => return Err(not_a_fifo(path, st.kind)),
                    Err(e) => return Err(open_error(path, e)),
                }
                let now = Instant::now();
                match (wait, deadline) {
                    (Wait::NonBlocking, _) => return Err(Error::NoReader { path: path.into() }),
                    (_, Some(d)) if now >= d => return Err(Error::Timeout),
                    (_, Some(d)) => std::thread::sleep(backoff.min(d - now)),
                    (_, None) => std::thread::sleep(backoff),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(open_error(path, e)),
        }
    }
}

fn open_read_end(path: &Path, opts: &FifoOptions) -> Result<(OwnedFd, (u64, u64))> {
    check_dir(path, opts)?;
    let wait = opts.wait;
    let fd = sysfifo::open_nonblocking(path, Access::Read).map_err(|e| open_error(path, e))?;
    let id = check_fifo(fd.as_fd(), path, opts)?;
    if wait != Wait::NonBlocking {
        // On a timeout `fd` is dropped here: nothing stays open.
        wait_for_writer(fd.as_fd(), wait.deadline())?;
    }
    clear_nonblocking(fd.as_fd(), path)?;
    Ok((fd, id))
}

/// Waits until a writer has the FIFO behind the read end `fd` open (or has
/// written, or has come and gone since we opened), or `deadline` passes.
fn wait_for_writer(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    let (_scratch_r, scratch_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let mut backoff = MIN_BACKOFF;
    loop {
        match sysfifo::probe_writer(fd, scratch_w.as_fd()).map_err(|e| Error::io("tee", e))? {
            Probe::Data | Probe::Writer => return Ok(()),
            Probe::Nobody => {}
        }
        let now = Instant::now();
        let slice = now + backoff;
        let until = match deadline {
            Some(d) if now >= d => return Err(Error::Timeout),
            Some(d) => d.min(slice),
            None => slice,
        };
        let mut pfd = [libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ready = sys::poll_fds(&mut pfd, Some(until)).map_err(|e| Error::io("poll", e))?;
        if ready > 0 && pfd[0].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            return Ok(());
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What both readers share: the path, and the write end a reader that keeps
/// listening holds open itself.
#[derive(Debug)]
struct ReadEnd {
    path: PathBuf,
    keep_alive: Option<OwnedFd>,
}

impl ReadEnd {
    fn keep_listening(&mut self, fd: BorrowedFd<'_>) -> Result<()> {
        if self.keep_alive.is_none() {
            // Reopen the inode we have open (not the path, which may name
            // something else by now). We are a reader, so no ENXIO.
            let w = sysfifo::reopen_nonblocking(fd, Access::Write)
                .map_err(|e| Error::path_io("open a write end of", &self.path, e))?;
            self.keep_alive = Some(w);
        }
        Ok(())
    }
}

/// The read end of a FIFO carrying framed messages, like
/// [`crate::Receiver`] (which it uses).
#[derive(Debug)]
pub struct FifoReader {
    rx: Receiver,
    end: ReadEnd,
}

impl FifoReader {
    /// Opens the FIFO at `path` for reading framed messages, waiting for a
    /// writer as `wait` says. See the [module docs](self) for the checks
    /// and errors.
    pub fn open(path: impl AsRef<Path>, wait: Wait) -> Result<FifoReader> {
        FifoOptions::new().wait(wait).reader(path)
    }

    fn open_with(path: &Path, opts: &FifoOptions) -> Result<FifoReader> {
        let (fd, _) = open_read_end(path, opts)?;
        let mut rx = Receiver::from_fd(fd);
        if opts.small_messages {
            rx.set_max_message_size(SMALL_MESSAGE_MAX as u64);
        }
        Ok(FifoReader {
            rx,
            end: ReadEnd {
                path: path.into(),
                keep_alive: None,
            },
        })
    }

    /// The path this reader was opened by.
    pub fn path(&self) -> &Path {
        &self.end.path
    }

    /// Keeps listening for new writers after the last one closes, instead of
    /// returning [`Error::Closed`]: the reader holds a write end of its own.
    /// A receive then waits until some writer sends (use the `_timeout`
    /// receives to bound it).
    pub fn keep_listening(&mut self) -> Result<()> {
        self.end.keep_listening(self.rx.as_fd())
    }

    /// Refuses headers announcing more than `max` bytes with
    /// [`Error::TooLarge`]. The default is no limit.
    pub fn set_max_message_size(&mut self, max: u64) {
        self.rx.set_max_message_size(max);
    }

    /// Receives one whole message, waiting as long as it takes.
    /// [`Error::Closed`] once every writer is gone and every message taken.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.rx.recv_bytes()
    }

    /// Like [`recv_bytes`](Self::recv_bytes), but gives up with
    /// [`Error::Timeout`] after `timeout`; a message half read is finished by
    /// the next receive.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.rx.recv_bytes_timeout(timeout)
    }

    /// Receives one message into `buf`, returning its length;
    /// [`Error::BufferTooSmall`] holds a whole message that did not fit.
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rx.recv_bytes_into(buf)
    }

    /// True if there is something to receive within `timeout` (`None`:
    /// forever). End of stream counts.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.rx.poll(timeout)
    }

    /// Receives a value sent with [`FifoWriter::send`].
    #[cfg(feature = "serde")]
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        self.rx.recv()
    }
}

/// The read end of a FIFO carrying lines (`\n`-terminated), like Python's
/// `readline` on a FIFO opened in text mode, but never returning part of a
/// line as if it were whole.
#[derive(Debug)]
pub struct LineReader {
    fd: OwnedFd,
    end: ReadEnd,
    buf: Vec<u8>,
    /// `buf[pos..]` is not consumed yet.
    pos: usize,
    /// `buf[pos..scanned]` holds no newline.
    scanned: usize,
    max: u64,
    /// Discarding the rest of a line refused as too long.
    skipping: bool,
}

impl LineReader {
    /// Opens the FIFO at `path` for reading lines, waiting for a writer as
    /// `wait` says. See the [module docs](self) for the checks and errors.
    pub fn open(path: impl AsRef<Path>, wait: Wait) -> Result<LineReader> {
        FifoOptions::new().wait(wait).line_reader(path)
    }

    fn open_with(path: &Path, opts: &FifoOptions) -> Result<LineReader> {
        let (fd, _) = open_read_end(path, opts)?;
        Ok(LineReader {
            fd,
            end: ReadEnd {
                path: path.into(),
                keep_alive: None,
            },
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            max: if opts.small_messages {
                (sys::PIPE_BUF - 1) as u64
            } else {
                frame::UNLIMITED
            },
            skipping: false,
        })
    }

    /// The path this reader was opened by.
    pub fn path(&self) -> &Path {
        &self.end.path
    }

    /// Keeps listening for new writers after the last one closes. See
    /// [`FifoReader::keep_listening`].
    pub fn keep_listening(&mut self) -> Result<()> {
        self.end.keep_listening(self.fd.as_fd())
    }

    /// Refuses lines longer than `max` bytes (without the `\n`) with
    /// [`Error::TooLarge`], so a writer that never sends a newline cannot
    /// make the reader buffer without end: at most `max` plus 64 KiB is
    /// held. The refused line is skipped, up to and including its newline;
    /// the next receive returns the line after it. `len` in the error is
    /// the line's length if it was seen whole, else the bytes seen so far.
    /// The default is no limit, as in Python.
    pub fn set_max_line_length(&mut self, max: u64) {
        self.max = max;
    }

    /// Receives one whole line, without its `\n`, waiting as long as it
    /// takes. At the end of the stream: [`Error::Closed`] after a whole line,
    /// [`Error::PartialLine`] holding the bytes of an unfinished one.
    pub fn recv_line(&mut self) -> Result<Vec<u8>> {
        self.recv_line_until(None)
    }

    /// Like [`recv_line`](Self::recv_line), but gives up with
    /// [`Error::Timeout`] after `timeout`. Nothing is lost: bytes of a line
    /// already read are kept for the next receive.
    pub fn recv_line_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_line_until(Some(sys::deadline_after(timeout)))
    }

    fn recv_line_until(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + i;
                let start = self.pos;
                self.pos = end + 1;
                self.scanned = self.pos;
                if std::mem::take(&mut self.skipping) {
                    continue; // the end of a line refused earlier
                }
                let len = end - start;
                if len as u64 > self.max {
                    return Err(Error::TooLarge {
                        len: len as u64,
                        max: self.max,
                    });
                }
                return Ok(self.buf[start..end].to_vec());
            }
            self.scanned = self.buf.len();
            if self.skipping {
                self.buf.clear();
                self.scanned = 0;
                self.pos = 0;
            } else if (self.buf.len() - self.pos) as u64 > self.max {
                // Over the limit with no end in sight: refuse the line, and
                // skip the rest of it as it arrives.
                let len = (self.buf.len() - self.pos) as u64;
                self.buf.clear();
                self.scanned = 0;
                self.pos = 0;
                self.skipping = true;
                return Err(Error::TooLarge { len, max: self.max });
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.scanned -= self.pos;
                self.pos = 0;
            }
            if let Some(d) = deadline {
                let ready = sys::wait_readable(self.fd.as_fd(), Some(d))
                    .map_err(|e| Error::io("poll", e))?;
                if ready == Readiness::TimedOut {
                    return Err(Error::Timeout);
                }
            }
            let n = sys::read_append(self.fd.as_fd(), &mut self.buf, READ_CHUNK)
                .map_err(|e| Error::io("read", e))?;
            if n == 0 {
                if self.buf.is_empty() || std::mem::take(&mut self.skipping) {
                    self.buf.clear();
                    self.scanned = 0;
                    return Err(Error::Closed);
                }
                self.scanned = 0;
                return Err(Error::PartialLine {
                    bytes: std::mem::take(&mut self.buf),
                });
            }
        }
    }
}

/// The write end of a FIFO: framed messages and lines, safe to use from
/// many writers at once (see the [module docs](self)).
#[derive(Debug)]
pub struct FifoWriter {
    end: WriterEnd,
    path: PathBuf,
    max: u64,
}

#[derive(Debug)]
enum WriterEnd {
    /// Every frame or line under an exclusive `flock`, taken per send.
    Locked(Mutex<WriteEnd>),
    /// [`FifoOptions::small_messages`]: every frame or line is one write of
    /// at most `PIPE_BUF` bytes, which the kernel keeps whole; the fd holds
    /// a shared `flock` for its whole life, which keeps out writers of the
    /// locked kind.
    Small(OwnedFd),
}

#[derive(Debug)]
struct WriteEnd {
    fd: OwnedFd,
    /// The process whose open file description `fd` is.
    owner: Pid,
}

impl FifoWriter {
    /// Opens the FIFO at `path` for writing, waiting for a reader as `wait`
    /// says. See the [module docs](self) for the checks and errors, and
    /// [`FifoOptions`] for more choices.
    pub fn open(path: impl AsRef<Path>, wait: Wait) -> Result<FifoWriter> {
        FifoOptions::new().wait(wait).writer(path)
    }

    fn open_with(path: &Path, opts: &FifoOptions) -> Result<FifoWriter> {
        let (fd, _) = open_write_end(path, opts)?;
        if opts.small_messages {
            // Waits only while a locked writer is inside a frame.
            sysfifo::lock_shared(fd.as_fd()).map_err(|e| Error::path_io("lock", path, e))?;
            return Ok(FifoWriter {
                end: WriterEnd::Small(fd),
                path: path.into(),
                max: SMALL_MESSAGE_MAX as u64,
            });
        }
        Ok(FifoWriter {
            end: WriterEnd::Locked(Mutex::new(WriteEnd {
                fd,
                owner: sys::cached_pid(),
            })),
            path: path.into(),
            max: frame::UNLIMITED,
        })
    }

    /// The path this writer was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses, with [`Error::TooLarge`] and before writing anything, any
    /// message longer than `max` bytes. The default is no limit; in
    /// [`small_messages`](FifoOptions::small_messages) mode the limit is
    /// never above [`SMALL_MESSAGE_MAX`].
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max = match self.end {
            WriterEnd::Small(_) => max.min(SMALL_MESSAGE_MAX as u64),
            WriterEnd::Locked(_) => max,
        };
    }

    /// The maximum message size.
    pub fn max_message_size(&self) -> u64 {
        self.max
    }

    /// Gives the fd back (no longer protected by the writers' lock; in
    /// small-messages mode its shared lock goes with it).
    pub fn into_fd(self) -> OwnedFd {
        match self.end {
            WriterEnd::Small(fd) => fd,
            WriterEnd::Locked(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()).fd,
        }
    }

    /// Runs `write` on the fd, holding the writers' lock unless in
    /// small-messages mode (where `write` is one atomic write).
    fn locked<T>(&self, write: impl FnOnce(BorrowedFd<'_>) -> Result<T>) -> Result<T> {
        let m = match &self.end {
            WriterEnd::Small(fd) => return write(fd.as_fd()),
            WriterEnd::Locked(m) => m,
        };
        let mut end = m.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let me = sys::cached_pid();
        if end.owner != me {
            // Inherited across fork: the open file description (and with it
            // any flock) is shared with the parent. Get one of our own.
            let fd = match sysfifo::reopen_nonblocking(end.fd.as_fd(), Access::Write) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(Error::Closed),
                Err(e) => return Err(Error::path_io("reopen", &self.path, e)),
            };
            clear_nonblocking(fd.as_fd(), &self.path)?;
            end.fd = fd;
            end.owner = me;
        }
        let fd = end.fd.as_fd();
        sysfifo::lock_exclusive(fd).map_err(|e| Error::path_io("lock", &self.path, e))?;
        let result = write(fd);
        let unlocked = sysfifo::unlock(fd).map_err(|e| Error::path_io("unlock", &self.path, e));
        let value = result?;
        unlocked?;
        Ok(value)
    }

    /// Sends one framed message, whole, never interleaved with another
    /// writer's. Blocks while the FIFO is full or another writer holds the
    /// lock. [`Error::Closed`] if the reader is gone; [`Error::TooLarge`]
    /// (nothing written) if over the limit.
    pub fn send_bytes(&self, msg: &[u8]) -> Result<()> {
        frame::check_len(msg.len() as u64, self.max)?;
        self.locked(|fd| frame::write_frame(fd, WriteKind::Pipe, msg, self.max))
    }

    /// Sends a value encoded with the crate's serde codec (postcard).
    #[cfg(feature = "serde")]
    pub fn send<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_bytes(&crate::codec::encode_value(value)?)
    }

    /// Sends `line` and a `\n` (unless `line` already ends with one) in one
    /// locked write, never interleaved with another writer's. A `line` with
    /// newlines inside arrives as several lines, together. In small-messages
    /// mode a line over `PIPE_BUF` bytes with its newline is
    /// [`Error::TooLarge`] (`len` without the newline), nothing written.
    pub fn send_line(&self, line: impl AsRef<[u8]>) -> Result<()> {
        let line = line.as_ref();
        let newline: &[u8] = if line.ends_with(b"\n") { b"" } else { b"\n" };
        if matches!(self.end, WriterEnd::Small(_)) && line.len() + newline.len() > sys::PIPE_BUF {
            return Err(Error::TooLarge {
                len: (line.len() + newline.len() - 1) as u64,
                max: (sys::PIPE_BUF - 1) as u64,
            });
        }
        self.locked(|fd| {
            sys::write_all_vectored(fd, WriteKind::Pipe, &[line, newline])
                .map_err(frame::write_error)
        })
    }
}

sys::impl_fd_traits!(FifoReader => rx, LineReader => fd);
