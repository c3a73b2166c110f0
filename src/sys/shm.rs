//! Shared memory between forked processes: an anonymous shared mapping
//! holding a typed header and a byte ring, robust process-shared mutexes,
//! and futex waits on words in the mapping. All the `unsafe` behind the
//! shared-memory queue lives here; the types placed in a mapping are
//! declared by their owners with [`shm_safe!`], which checks them.
//!
//! System calls: `mmap(MAP_SHARED | MAP_ANONYMOUS)` and `munmap` for the
//! region; `pthread_mutex_{init,timedlock,trylock,unlock,consistent}`
//! with `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST` (futex-based in
//! glibc; the kernel walks a dead thread's robust list and marks its mutexes
//! `FUTEX_OWNER_DIED`); `futex(FUTEX_WAIT | FUTEX_WAKE)` without
//! `FUTEX_PRIVATE_FLAG`, because the waiters live in different processes;
//! `sched_getcpu` (no system call with glibc's `rseq`) for a spin hint.
//!
//! Bytes in the ring are plain data shared with other processes, which
//! the Rust memory model does not see: they are copied in and out with raw
//! copies, never referenced, and every value of every byte is valid. Who may
//! copy which bytes when is the caller's protocol (for a queue: its
//! head/tail atomics and locks), which is why the ring copies are crate-private: a
//! caller that let two threads of one process copy the same bytes at once
//! would have a data race.

use std::cell::UnsafeCell;
use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Types that may live in a shared mapping: all-zero bytes are a valid
/// value, there are no pointers (other processes map the region at the same
/// address only by the accident of fork) and no `Drop`, and every field is
/// safe to use from many threads and processes at once (atomics, robust
/// mutexes, or nesting of such types).
///
/// # Safety
/// Implement only for `#[repr(C)]` types without `Drop` whose fields all
/// implement it. Outside this module, implement it only through
/// [`shm_safe!`], which checks all of that at compile time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` may not live in shared memory",
    label = "not shared-memory safe",
    note = "fields of a shared header must be atomics, `RobustMutex`es, arrays of them, or structs declared with `shm_safe!`"
)]
pub unsafe trait ShmSafe: Sync {}

// SAFETY: atomics are valid at zero, have no pointers and no Drop, and are
// designed to be shared; on Linux their operations are plain lock-free CPU
// instructions that work the same across processes sharing the memory.
unsafe impl ShmSafe for AtomicU64 {}
// SAFETY: as for AtomicU64.
unsafe impl ShmSafe for AtomicU32 {}
// SAFETY: a RobustMutex is a pthread_mutex_t, which we initialise in place
// (zero is a valid "not yet initialised" state we never lock), with no
// pointers for the process-shared kind, and is Sync (see below).
unsafe impl ShmSafe for RobustMutex {}
// SAFETY: an array of ShmSafe values is ShmSafe.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// Compiles only if `T` is [`ShmSafe`]: the check [`shm_safe!`] makes on
/// each field.
#[doc(hidden)]
pub const fn assert_shm_safe<T: ShmSafe>() {}

/// Declares a struct that may live in a [`SharedRegion`] and implements
/// [`ShmSafe`] for it, after checking at compile time that it keeps the
/// trait's promise: every field's type is itself `ShmSafe` (so a field
/// added later is checked too), the struct has no `Drop`, and its layout
/// is `#[repr(C)]` (the struct must say `#[repr(C)]` or
/// `#[repr(C, align(N))]`, and no other attribute than doc comments).
/// This is the one place where such types get their `unsafe impl`.
///
/// ```
/// use ipc_harness::sys::shm::{RobustMutex, shm_safe};
/// use std::sync::atomic::AtomicU64;
///
/// shm_safe! {
///     /// Counters shared by forked processes.
///     #[repr(C, align(64))]
///     pub struct Counters {
///         lock: RobustMutex,
///         /// Hits so far.
///         pub hits: AtomicU64,
///         slots: [AtomicU64; 4],
///     }
/// }
/// ```
///
/// A field that is not safe to share between processes is refused
/// (``error[E0277]: `bool` may not live in shared memory``):
///
/// ```compile_fail
/// use ipc_harness::sys::shm::{RobustMutex, shm_safe};
/// use std::sync::atomic::AtomicU64;
///
/// shm_safe! {
///     #[repr(C, align(64))]
///     pub struct Counters {
///         lock: RobustMutex,
///         pub hits: AtomicU64,
///         open: bool, // a plain bool: a data race between processes
///     }
/// }
/// ```
///
/// So is a field with a pointer in it, such as a `Vec`:
///
/// ```compile_fail
/// use ipc_harness::sys::shm::shm_safe;
///
/// shm_safe! {
///     #[repr(C)]
///     struct Names {
///         names: Vec<u8>,
///     }
/// }
/// ```
///
/// And a struct with a `Drop` (nothing would ever run it in the other
/// processes):
///
/// ```compile_fail
/// use ipc_harness::sys::shm::shm_safe;
/// use std::sync::atomic::AtomicU64;
///
/// shm_safe! {
///     #[repr(C)]
///     struct Counter {
///         n: AtomicU64,
///     }
/// }
///
/// impl Drop for Counter {
///     fn drop(&mut self) {}
/// }
/// ```
// The `compile_fail` examples above are the first one with one fault each,
// so none of them can pass by failing for an unrelated reason (a wrong path,
// say) without the first failing too. (Stable rustdoc does not check the
// error codes of `compile_fail`.) The doctests see the macro because the
// crate's tests turn on `test-hooks`, which exports it; without the feature
// it is crate-private and not part of the public API.
#[cfg_attr(feature = "test-hooks", macro_export)]
#[doc(hidden)]
macro_rules! shm_safe {
    (
        $(#[doc = $doc:expr])*
        #[repr(C $(, align($align:literal))?)]
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $field_doc:expr])*
                $field_vis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[repr(C $(, align($align))?)]
        $vis struct $name {
            $(
                $(#[doc = $field_doc])*
                $field_vis $field: $ty,
            )*
        }

        const _: () = {
            $($crate::sys::shm::assert_shm_safe::<$ty>();)*
            assert!(
                !::std::mem::needs_drop::<$name>(),
                concat!("`", stringify!($name), "` may not live in shared memory: it needs a Drop"),
            );
        };

        // SAFETY: the struct is `#[repr(C)]` (the macro accepts no other
        // layout), so it is exactly its fields in order plus padding, which
        // nobody reads. Each field's type is ShmSafe (checked above), so
        // all-zero bytes are a valid value of each field and therefore of
        // the struct, no field holds a pointer, and every field may be used
        // by many threads and processes at once. It has no Drop (checked
        // above). It is Sync because ShmSafe requires it: this impl does
        // not compile otherwise. `allow`: the crate denies `unsafe_code`
        // outside `sys`, and this expansion lands in the module that
        // declares the struct; the argument above is made here, in `sys`,
        // once for every such struct.
        #[allow(unsafe_code)]
        unsafe impl $crate::sys::shm::ShmSafe for $name {}
    };
}
#[cfg(feature = "test-hooks")]
pub use crate::shm_safe;
#[cfg(not(feature = "test-hooks"))]
pub(crate) use shm_safe;

/// Proof that a region is fresh (created in this call, not yet shared with
/// any other thread or process): only [`SharedRegion::new`] makes one, and
/// only fresh mutexes may be initialised.
pub struct Fresh(());

/// An anonymous shared mapping: a header `H` at offset 0, then a byte ring
/// of `ring_len` bytes. Create it before `fork()`: children share the same
/// physical pages. Unmapped (in this process) on drop; the kernel frees the
/// pages once every process has unmapped or exited.
pub struct SharedRegion<H: ShmSafe> {
    base: NonNull<u8>,
    map_len: usize,
    ring_off: usize,
    ring_len: usize,
    _header: PhantomData<H>,
}

// SAFETY: the header is ShmSafe (Sync, designed for sharing) and the ring is
// only touched through raw copies whose coordination is the caller's
// protocol; the mapping itself is owned and unmapped once, on drop.
unsafe impl<H: ShmSafe> Send for SharedRegion<H> {}
// SAFETY: as above.
unsafe impl<H: ShmSafe> Sync for SharedRegion<H> {}

impl<H: ShmSafe> std::fmt::Debug for SharedRegion<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegion")
            .field("map_len", &self.map_len)
            .field("ring_len", &self.ring_len)
            .finish()
    }
}

const PAGE: usize = 4096;

impl<H: ShmSafe> SharedRegion<H> {
    /// Maps a zeroed region for the header and a ring of `ring_len` bytes
    /// (at least 1), then runs `init` on the header while no one else can
    /// see it.
    pub fn new(
        ring_len: usize,
        init: impl FnOnce(&H, &Fresh) -> io::Result<()>,
    ) -> io::Result<Self> {
        assert!(ring_len > 0, "a ring needs at least one byte");
        assert!(std::mem::align_of::<H>() <= PAGE);
        let ring_off = std::mem::size_of::<H>().div_ceil(PAGE) * PAGE;
        let map_len = ring_off
            .checked_add(ring_len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "ring too large"))?;
        // SAFETY: an anonymous mapping at an address of the kernel's choosing
        // touches no existing memory; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = SharedRegion {
            base: NonNull::new(ptr.cast()).expect("mmap never returns null on success"),
            map_len,
            ring_off,
            ring_len,
            _header: PhantomData,
        };
        init(region.header(), &Fresh(()))?;
        region.populate();
        Ok(region)
    }

    /// Maps every page of the region into this process's page tables now,
    /// in one system call (`madvise(MADV_POPULATE_READ)`, Linux 5.14+),
    /// allocating any page nobody has touched yet. Without it, each process
    /// faults the ring in page by page on its first pass over it (a `fork`
    /// does not copy a shared mapping's page tables): for a 1 MiB ring, 256
    /// write faults per producer, measured at about 45% of all CPU time of
    /// a short 8x8 benchmark run. A read populate of shared memory maps the
    /// pages writable (shmem tracks no dirty pages), so later writes fault
    /// no more, and it cost about 60% of what `MADV_POPULATE_WRITE` did in
    /// the same profile (it maps pages with fault-around). Best effort: on an older kernel it does
    /// nothing and the pages fault in as they are touched.
    pub fn populate(&self) {
        // SAFETY: [base, base + map_len) is exactly our mapping; populating
        // only faults pages in (as a write would, without changing any
        // byte), so no value anyone can see changes.
        unsafe {
            libc::madvise(
                self.base.as_ptr().cast(),
                self.map_len,
                libc::MADV_POPULATE_READ,
            );
        }
    }

    /// The header.
    pub fn header(&self) -> &H {
        // SAFETY: the mapping is page-aligned (so aligned for H, checked in
        // `new`), at least size_of::<H>() long, zero-filled by the kernel
        // (a valid H, by ShmSafe) and lives as long as `self`; H is Sync, so
        // shared references from many threads/processes are fine.
        unsafe { &*self.base.as_ptr().cast::<H>() }
    }

    /// Bytes in the ring.
    pub fn ring_len(&self) -> usize {
        self.ring_len
    }

    fn ring_ptr(&self) -> *mut u8 {
        // SAFETY: ring_off < map_len, inside the one mapping.
        unsafe { self.base.as_ptr().add(self.ring_off) }
    }

    /// The two pieces `[off, off+a)` and `[0, b)` of the ring that `len`
    /// bytes starting at stream position `pos` occupy.
    fn pieces(&self, pos: u64, len: usize) -> (usize, usize, usize) {
        assert!(
            len <= self.ring_len,
            "{len} bytes do not fit a ring of {}",
            self.ring_len
        );
        let off = (pos % self.ring_len as u64) as usize;
        let a = len.min(self.ring_len - off);
        (off, a, len - a)
    }

    /// Copies `src` into the ring at stream position `pos` (wrapping).
    pub(crate) fn ring_write(&self, pos: u64, src: &[u8]) {
        let (off, a, b) = self.pieces(pos, src.len());
        let ring = self.ring_ptr();
        // SAFETY: `pieces` keeps [off, off+a) and [0, b) inside the ring;
        // `src` is a separate allocation, so the copies do not overlap.
        // Concurrent readers of these bytes are excluded by the caller's
        // protocol, and any bit pattern is a valid byte if they are not.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), ring.add(off), a);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(a), ring, b);
        }
    }

    /// Copies `dst.len()` bytes out of the ring from stream position `pos`.
    pub(crate) fn ring_read(&self, pos: u64, dst: &mut [u8]) {
        let (off, a, b) = self.pieces(pos, dst.len());
        let ring = self.ring_ptr();
        // SAFETY: as in ring_write, with the roles of the buffers swapped.
        unsafe {
            std::ptr::copy_nonoverlapping(ring.add(off), dst.as_mut_ptr(), a);
            std::ptr::copy_nonoverlapping(ring, dst.as_mut_ptr().add(a), b);
        }
    }

    /// Appends `len` bytes from the ring at `pos` to `out`, without zeroing
    /// the new space first.
    pub(crate) fn ring_read_append(&self, pos: u64, len: usize, out: &mut Vec<u8>) {
        let (off, a, b) = self.pieces(pos, len);
        out.reserve(len);
        let spare: &mut [MaybeUninit<u8>] = &mut out.spare_capacity_mut()[..len];
        let ring = self.ring_ptr();
        // SAFETY: `spare` is valid for writes of `len` bytes; the ring pieces
        // are in bounds (as in ring_read); the copies initialise all `len`
        // spare bytes, so extending the length by `len` is sound.
        unsafe {
            std::ptr::copy_nonoverlapping(ring.add(off), spare.as_mut_ptr().cast(), a);
            std::ptr::copy_nonoverlapping(ring, spare.as_mut_ptr().add(a).cast(), b);
            out.set_len(out.len() + len);
        }
    }
}

impl<H: ShmSafe> Drop for SharedRegion<H> {
    fn drop(&mut self) {
        // SAFETY: base/map_len are exactly what mmap returned; nothing
        // borrows the mapping once the owner is dropped (every reference
        // handed out borrows `self`).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}

/// The longest a [`RobustMutex::lock`] sleeps in the kernel before it
/// looks at the lock again (see there for why).
pub const LOCK_SLICE: Duration = Duration::from_millis(10);

/// What a lock attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The lock is ours and the data it guards is as its last owner left it.
    Acquired,
    /// The lock is ours, but its last owner died holding it
    /// (`EOWNERDEAD`): repair the data, then call
    /// [`RobustMutex::mark_consistent`] before unlocking.
    OwnerDied,
    /// Someone else holds it (try-lock only).
    Busy,
    /// The deadline passed first (timed lock only).
    TimedOut,
}

/// A `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED` and
/// `PTHREAD_MUTEX_ROBUST`, to be placed in a [`SharedRegion`]: if its owner
/// dies holding it, the next locker gets [`Locked::OwnerDied`] instead of
/// waiting forever.
#[repr(transparent)]
pub struct RobustMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: pthread mutexes are designed to be used from many threads; a
// process-shared one from many processes. All access goes through the
// pthread functions.
unsafe impl Sync for RobustMutex {}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

impl RobustMutex {
    /// Initialises the mutex in place: process-shared and robust. Only on a
    /// fresh region (hence the [`Fresh`] proof).
    pub fn init(&self, _fresh: &Fresh) -> io::Result<()> {
        // SAFETY: the attribute object is initialised by pthread_mutexattr_init
        // before use and destroyed after; the mutex is in a fresh region that
        // no other thread or process can reach yet, so initialising it in
        // place races with nothing.
        unsafe {
            let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let attr_ptr = attr.as_mut_ptr();
            let result = check(libc::pthread_mutexattr_setpshared(
                attr_ptr,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|()| {
                check(libc::pthread_mutexattr_setrobust(
                    attr_ptr,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
            .and_then(|()| check(libc::pthread_mutex_init(self.0.get(), attr_ptr)));
            libc::pthread_mutexattr_destroy(attr_ptr);
            result
        }
    }

    fn outcome(ret: libc::c_int) -> io::Result<Locked> {
        match ret {
            0 => Ok(Locked::Acquired),
            libc::EOWNERDEAD => Ok(Locked::OwnerDied),
            libc::EBUSY => Ok(Locked::Busy),
            libc::ETIMEDOUT => Ok(Locked::TimedOut),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Locks, waiting until `deadline` (`None`: forever). Returns
    /// [`Locked::Acquired`], [`Locked::OwnerDied`] or [`Locked::TimedOut`].
    ///
    /// It never sleeps in the kernel for more than [`LOCK_SLICE`] at a time:
    /// when a slice runs out it simply tries again. A robust mutex can lose
    /// a wake-up to a killed process, and a waiter sleeping without a bound
    /// would then sleep forever:
    /// 1. glibc's unlock clears the lock word (and with it `FUTEX_WAITERS`)
    ///    and wakes exactly one waiter, which is to set `FUTEX_WAITERS`
    ///    again when it takes the lock or goes back to sleep;
    /// 2. that waiter is SIGKILLed before it gets back to user space;
    /// 3. another process takes the free lock first, with a plain
    ///    compare-and-swap that does not set `FUTEX_WAITERS` (it never
    ///    waited);
    /// 4. the kernel's exit-time rescue for a killed waiter (wake another if
    ///    the word's owner is 0) finds an owner, and does nothing.
    ///
    /// The new owner's unlock then sees no waiters and wakes nobody, and the
    /// other waiters stay asleep in `futex(FUTEX_WAIT)` although the lock is
    /// free. With slices, each of them finds the lock free at the end of its
    /// current slice: a lost wake-up costs at most one slice.
    pub fn lock(&self, deadline: Option<Instant>) -> io::Result<Locked> {
        loop {
            let slice_end = Instant::now() + LOCK_SLICE;
            let (until, last) = match deadline {
                Some(d) if d <= slice_end => (d, true),
                _ => (slice_end, false),
            };
            let abs = realtime_deadline(until);
            // SAFETY: the mutex was initialised by `init` (the region's
            // creator always does so before sharing it); `abs` is a valid
            // timespec.
            let got = Self::outcome(unsafe { libc::pthread_mutex_timedlock(self.0.get(), &abs) })?;
            if got != Locked::TimedOut || last {
                return Ok(got);
            }
        }
    }

    /// Locks if free: [`Locked::Acquired`], [`Locked::OwnerDied`] or
    /// [`Locked::Busy`].
    pub fn try_lock(&self) -> io::Result<Locked> {
        // SAFETY: the mutex was initialised by `init`.
        Self::outcome(unsafe { libc::pthread_mutex_trylock(self.0.get()) })
    }

    /// After [`Locked::OwnerDied`] and repairs: the lock works normally again.
    pub fn mark_consistent(&self) -> io::Result<()> {
        // SAFETY: called by the owner after EOWNERDEAD, as POSIX requires.
        check(unsafe { libc::pthread_mutex_consistent(self.0.get()) })
    }

    /// Unlocks a mutex this thread holds.
    pub fn unlock(&self) -> io::Result<()> {
        // SAFETY: callers unlock only what they locked (through their guards).
        check(unsafe { libc::pthread_mutex_unlock(self.0.get()) })
    }
}

/// `FUTEX_WAITERS` in a robust mutex's lock word: someone may sleep on it.
const FUTEX_WAITERS: u32 = 0x8000_0000;

impl RobustMutex {
    /// The lock word: glibc's `pthread_mutex_t` on Linux begins with the
    /// futex word (`__data.__lock`, owner TID and flag bits).
    fn word(&self) -> &AtomicU32 {
        // SAFETY: `__lock` is an `int` at offset 0 of the mutex, which is at
        // least 4-aligned (the union holds a `long`); it lives as long as
        // `self`; glibc and the kernel change it only with atomic
        // instructions, and we only read or change it atomically too.
        unsafe { &*self.0.get().cast::<AtomicU32>() }
    }

    /// Tests only: the lock word's address, to recognise a process
    /// sleeping on it in `/proc/PID/syscall`.
    #[doc(hidden)]
    pub fn word_addr(&self) -> usize {
        self.word().as_ptr() as usize
    }

    /// Tests only: the owner TID in the lock word (0: free).
    #[doc(hidden)]
    pub fn owner_tid(&self) -> u32 {
        self.word().load(std::sync::atomic::Ordering::SeqCst) & 0x3fff_ffff
    }

    /// Tests only: clears `FUTEX_WAITERS` and leaves the sleepers asleep,
    /// which is the state a waiter killed right after an unlock woke it
    /// leaves behind (see [`lock`](Self::lock)). True if the flag was set.
    #[doc(hidden)]
    pub fn lose_wake_up(&self) -> bool {
        let before = self
            .word()
            .fetch_and(!FUTEX_WAITERS, std::sync::atomic::Ordering::SeqCst);
        before & FUTEX_WAITERS != 0
    }
}

/// `deadline` on `CLOCK_REALTIME`, as `pthread_mutex_timedlock` wants it.
fn realtime_deadline(deadline: Instant) -> libc::timespec {
    let left = deadline.saturating_duration_since(Instant::now());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let abs = now.saturating_add(left);
    libc::timespec {
        tv_sec: abs.as_secs() as libc::time_t,
        tv_nsec: abs.subsec_nanos() as libc::c_long,
    }
}

const FUTEX_WAIT: libc::c_int = 0;
const FUTEX_WAKE: libc::c_int = 1;

/// Sleeps while `*word == expected`, at most `timeout` (`None`: until
/// woken). Returns at once if the word already differs; may return early
/// (signals, spurious wake-ups): callers re-check their condition.
/// Shared (non-private) futex, so a waker in another process can wake it.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call;
    // FUTEX_WAIT only reads it; `ts_ptr` is null or points at a live timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes up to `n` waiters sleeping on `word` in any process.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The CPU this thread is running on, plus one; 0 if unknown. A hint only:
/// the thread may move the moment it returns. glibc answers from the
/// thread's `rseq` area (no system call, about 2 ns measured here) or the
/// vDSO `getcpu`.
pub fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours;
    // it returns -1 (with errno set) if the CPU cannot be known.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).map_or(0, |c| c.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    shm_safe! {
        #[repr(C)]
        struct TestHeader {
            lock: RobustMutex,
            word: AtomicU32,
        }
    }

    #[test]
    fn ring_wraps_and_lock_works() {
        let r: SharedRegion<TestHeader> =
            SharedRegion::new(10, |h: &TestHeader, fresh| h.lock.init(fresh)).unwrap();
        r.ring_write(7, b"abcdef");
        let mut out = [0u8; 6];
        r.ring_read(7, &mut out);
        assert_eq!(&out, b"abcdef");
        let mut v = b"x".to_vec();
        r.ring_read_append(17, 6, &mut v);
        assert_eq!(v, b"xabcdef");
        let h = r.header();
        assert_eq!(h.lock.lock(None).unwrap(), Locked::Acquired);
        assert_eq!(h.lock.try_lock().unwrap(), Locked::Busy);
        h.lock.unlock().unwrap();
        assert_eq!(h.lock.try_lock().unwrap(), Locked::Acquired);
        h.lock.unlock().unwrap();
        h.word.store(1, Ordering::SeqCst);
        futex_wait(&h.word, 0, None); // differs: returns at once
        let t = Instant::now();
        futex_wait(&h.word, 1, Some(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(15));
        futex_wake(&h.word, 1);
    }

    #[test]
    fn current_cpu_is_one_we_may_run_on() {
        let cpu = current_cpu();
        assert_ne!(cpu, 0, "sched_getcpu failed");
        let allowed = crate::sys::allowed_cpus().unwrap();
        assert!(
            allowed.contains(&(cpu as usize - 1)),
            "{cpu} not in {allowed:?}"
        );
    }
}
