//! Pitfall 9, `queue-killed-holding-lock`: a producer killed holding a naive
//! queue's lock wedges the queue (Python's way); the fix, `Queue`, has robust
//! locks and goes on.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use ipc_harness::error::{Error, Result};
use ipc_harness::harness::fork::Outcome;
use ipc_harness::pipe::{Receiver, Sender};
use ipc_harness::queue::{KillPoint, Queue, set_kill_point};
use ipc_harness::sys;

use super::kit::{HANG, WAIT, describe_outcome, new_pipe, quote, say, spawn, story};

/// A naive queue: a framed pipe guarded by a lock that is one byte in a
/// second pipe (take the byte to lock, put it back to unlock). Like a POSIX
/// semaphore (what Python's `multiprocessing.Lock` is), nobody gives the
/// lock back when its holder dies.
struct NaiveQueue {
    data: Sender,
    lock_r: OwnedFd,
    lock_w: OwnedFd,
}

impl NaiveQueue {
    /// Takes the token, waiting as long as it takes (like `sem_wait`).
    fn lock(&self) -> Result<()> {
        let mut token = [0u8; 1];
        match sys::read(self.lock_r.as_fd(), &mut token) {
            Ok(1) => Ok(()),
            Ok(_) => Err(Error::Closed),
            Err(e) => Err(Error::io("read", e)),
        }
    }

    fn unlock(&self) -> Result<()> {
        sys::write(self.lock_w.as_fd(), b"L")
            .map(drop)
            .map_err(|e| Error::io("write", e))
    }

    fn put(&self, msg: &[u8]) -> Result<()> {
        self.lock()?;
        self.data.send_bytes(msg)?;
        self.unlock()
    }
}

pub(super) fn queue_killed_holding_lock(out: &mut dyn Write) -> Result<(bool, bool)> {
    story(
        out,
        &[
            "The naive code: a queue whose writers share one lock that the kernel does not",
            "release when its holder dies, as Python's multiprocessing.Queue does (its lock is a",
            "POSIX semaphore; CPython gh-87971). Here the lock is a one-byte token in a pipe,",
            "which behaves the same. Producer A puts \"A 000\", takes the lock for its next",
            "put, and is SIGKILLed holding it. Producer B then puts three messages.",
            "",
        ],
    )?;
    let (lock_r, lock_w) = new_pipe()?;
    sys::write(lock_w.as_fd(), b"L").map_err(|e| Error::io("write", e))?;
    let (data_r, data_w) = new_pipe()?;
    let q = NaiveQueue {
        data: Sender::from_fd(data_w),
        lock_r,
        lock_w,
    };
    let victim = spawn(|| {
        q.put(b"A 000")?;
        q.lock()?;
        sys::kill(sys::getpid(), libc::SIGKILL).map_err(|e| Error::io("kill", e))?;
        Ok(Vec::new())
    })?;
    let victim = victim.wait(WAIT)?;
    say(
        out,
        &format!("  Producer A (pid {}) {}.", victim.pid, victim.outcome),
    )?;
    let survivor = spawn(|| {
        for i in 0..3 {
            q.put(format!("B {i:03}").as_bytes())?;
        }
        Ok(Vec::new())
    })?;
    let survivor = survivor.wait(HANG)?;
    say(
        out,
        &format!(
            "  Producer B (pid {}) {}.",
            survivor.pid,
            describe_outcome(&survivor)
        ),
    )?;
    drop(q);
    let mut rx = Receiver::from_fd(data_r);
    let mut got = Vec::new();
    while let Ok(m) = rx.recv_bytes_timeout(Duration::from_millis(50)) {
        got.push(quote(&m));
    }
    say(
        out,
        &format!(
            "  The consumer got: {} and then nothing, ever.",
            got.join(", ")
        ),
    )?;
    let naive_failed = victim.outcome == Outcome::Signaled(libc::SIGKILL)
        && matches!(survivor.outcome, Outcome::TimedOut { .. });
    story(
        out,
        &[
            "",
            "Why: a semaphore (or any lock kept in user space) is just a count; when the",
            "process that took it dies, nothing gives it back, and everyone else waits forever.",
            "",
        ],
    )?;

    story(
        out,
        &[
            "The fix: ipc_harness::Queue's locks are robust process-shared mutexes. When the",
            "holder dies, the kernel hands the next locker EOWNERDEAD and it repairs the queue.",
            "Same story: A dies holding the producer lock (a test hook, KillPoint::ProducerLocked).",
        ],
    )?;
    let q = Queue::new()?;
    let victim = {
        let q = q.clone();
        spawn(move || {
            q.put_bytes(b"A 000")?;
            set_kill_point(Some(KillPoint::ProducerLocked), 1);
            q.put_bytes(b"A 001")?;
            Ok(Vec::new())
        })?
    };
    let victim = victim.wait(WAIT)?;
    say(
        out,
        &format!("  Producer A (pid {}) {}.", victim.pid, victim.outcome),
    )?;
    let survivor = {
        let q = q.clone();
        spawn(move || {
            for i in 0..3 {
                q.put_bytes(format!("B {i:03}").as_bytes())?;
            }
            Ok(Vec::new())
        })?
    };
    let survivor = survivor.wait(WAIT)?;
    say(
        out,
        &format!("  Producer B (pid {}) {}.", survivor.pid, survivor.outcome),
    )?;
    q.close_producer();
    let mut got = Vec::new();
    let end = loop {
        match q.get_bytes_timeout(WAIT) {
            Ok(m) => got.push(m),
            Err(e) => break e,
        }
    };
    let shown: Vec<String> = got.iter().map(|m| quote(m)).collect();
    say(
        out,
        &format!(
            "  The consumer got: {}, then {} (every producer is gone).",
            shown.join(", "),
            ipc_harness::error::chain(&end)
        ),
    )?;
    say(
        out,
        &format!(
            "  Messages lost with the dead producer: {} (it died before writing \"A 001\").",
            q.lost_to_dead_members()
        ),
    )?;
    let expected: Vec<Vec<u8>> = [&b"A 000"[..], b"B 000", b"B 001", b"B 002"]
        .iter()
        .map(|m| m.to_vec())
        .collect();
    let fixed_ok = victim.outcome == Outcome::Signaled(libc::SIGKILL)
        && survivor.is_success()
        && got == expected
        && matches!(end, Error::Closed);
    Ok((naive_failed, fixed_ok))
}
