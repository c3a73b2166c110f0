//! Pitfall 3, `interleaved-writes`: two writers of messages over `PIPE_BUF`
//! into one pipe without a lock, one stopped half-way: the other's message
//! lands inside; the fix, a `FifoWriter`, locks the FIFO for each frame.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::{Fifo, FifoReader, FifoWriter, Wait};
use ipc_harness::frame::{self};
use ipc_harness::pipe::Sender;
use ipc_harness::sys::{self, Readiness};

use super::kit::{
    HANG, Scratch, WAIT, decode_all, dup, new_pipe, other, pause, quote, read_n, resume, say,
    set_capacity, spawn, story, success, wait_full,
};

pub(super) fn interleaved_writes(out: &mut dyn Write) -> Result<(bool, bool)> {
    let (data_r, data_w) = new_pipe()?;
    let cap = set_capacity(data_w.as_fd(), 4096)?;
    let len = cap + cap / 2;
    let a = vec![b'A'; len];
    let b = vec![b'B'; len];
    let frame_len = frame::HEADER_LEN + len;
    say(
        out,
        &format!(
            "The naive code: two writers, A and B, each send one framed message of {len} bytes"
        ),
    )?;
    say(
        out,
        "(a 4-byte length header, then the payload, in one writev) into the same pipe,",
    )?;
    say(
        out,
        &format!(
            "with no lock between them. PIPE_BUF is {}; the pipe holds {cap} bytes (F_SETPIPE_SZ).",
            sys::PIPE_BUF
        ),
    )?;
    say(out, "")?;

    let wa = Sender::from_fd(dup(&data_w)?);
    let wb = Sender::from_fd(dup(&data_w)?);
    let msg_a = a.clone();
    let writer_a = spawn(move || {
        wa.send_bytes(&msg_a)?;
        Ok(Vec::new())
    })?;
    // A's write stops once the pipe is full; pause A right there.
    wait_full(data_w.as_fd())?;
    pause(&writer_a)?;
    let mut stream = read_n(data_r.as_fd(), cap)?;
    say(
        out,
        &format!(
            "1. A's write filled the pipe with the first {cap} bytes of its {frame_len}-byte frame;"
        ),
    )?;
    say(
        out,
        "   the kernel put A to sleep mid-write (here we also pause it, to keep the order)",
    )?;
    say(out, &format!("   and the reader took those {cap} bytes."))?;
    let msg_b = b.clone();
    let writer_b = spawn(move || {
        wb.send_bytes(&msg_b)?;
        Ok(Vec::new())
    })?;
    wait_full(data_w.as_fd())?;
    pause(&writer_b)?;
    stream.extend(read_n(data_r.as_fd(), cap)?);
    say(
        out,
        &format!("2. B's write found room and put the first {cap} bytes of its frame in."),
    )?;
    resume(&writer_a)?;
    stream.extend(read_n(data_r.as_fd(), frame_len - cap)?);
    success(writer_a.wait(WAIT)?, "writer A")?;
    say(
        out,
        &format!(
            "3. A woke up and wrote the rest of its frame ({} bytes).",
            frame_len - cap
        ),
    )?;
    resume(&writer_b)?;
    stream.extend(read_n(data_r.as_fd(), frame_len - cap)?);
    success(writer_b.wait(WAIT)?, "writer B")?;
    say(out, "4. Then B wrote the rest of its frame.")?;
    drop(data_w);
    drop(data_r);

    let (msgs, end) = decode_all(&stream);
    story(out, &["", "The reader decoded that stream frame by frame:"])?;
    for (i, m) in msgs.iter().enumerate() {
        say(
            out,
            &format!("  message {} ({} bytes): {}", i + 1, m.len(), quote(m)),
        )?;
    }
    say(out, &format!("  then: {}", ipc_harness::error::chain(&end)))?;
    let naive_failed = msgs != [a.clone(), b.clone()];
    story(
        out,
        &[
            "Message 1 is A's header with A's payload cut short, B's header and the start of B's",
            "payload: two messages mixed into one. What follows is B's payload read as a length.",
            "",
        ],
    )?;
    say(
        out,
        &format!(
            "Why: POSIX makes a pipe write atomic only up to PIPE_BUF ({}) bytes. A larger",
            sys::PIPE_BUF
        ),
    )?;
    story(
        out,
        &[
            "write goes in as room appears, and any other writer may get in between the pieces.",
            "",
        ],
    )?;

    // Fixed: a FIFO whose writers take a flock around each frame.
    story(
        out,
        &[
            "The fix: writers that share a lock for a whole frame. FifoWriter takes an exclusive",
            "flock on the FIFO around each frame (a Queue would do too). Same sizes, same pause:",
        ],
    )?;
    let scratch = Scratch::new()?;
    let path = scratch.path("interleaved");
    let fifo = Fifo::create(&path)?;
    let mut reader = FifoReader::open(&path, Wait::NonBlocking)?;
    let probe = FifoWriter::open(&path, Wait::NonBlocking)?.into_fd();
    set_capacity(probe.as_fd(), 4096)?;
    let p = path.clone();
    let msg_a = a.clone();
    let writer_a = spawn(move || {
        FifoWriter::open(&p, Wait::Timeout(WAIT))?.send_bytes(&msg_a)?;
        Ok(Vec::new())
    })?;
    wait_full(probe.as_fd())?;
    pause(&writer_a)?;
    // The reader takes what is there (part of A's frame) and keeps it.
    match reader.recv_bytes_timeout(Duration::from_millis(50)) {
        Err(Error::Timeout) => {}
        Ok(_) => return Err(other("a whole frame arrived from a paused writer".into())),
        Err(e) => return Err(e),
    }
    let p = path.clone();
    let msg_b = b.clone();
    let writer_b = spawn(move || {
        FifoWriter::open(&p, Wait::Timeout(WAIT))?.send_bytes(&msg_b)?;
        Ok(Vec::new())
    })?;
    let b_waited = sys::wait_readable(reader.as_fd(), Some(Instant::now() + HANG))
        .map_err(|e| Error::io("poll", e))?
        == Readiness::TimedOut;
    say(
        out,
        &format!(
            "  A was paused mid-frame holding the lock; B then waited {} ms and wrote {}.",
            HANG.as_millis(),
            if b_waited {
                "nothing: it waits for A's lock"
            } else {
                "something (unexpected)"
            }
        ),
    )?;
    resume(&writer_a)?;
    let first = reader.recv_bytes_timeout(WAIT)?;
    success(writer_a.wait(WAIT)?, "writer A")?;
    let second = reader.recv_bytes_timeout(WAIT)?;
    success(writer_b.wait(WAIT)?, "writer B")?;
    drop(probe);
    let closed = reader.recv_bytes_timeout(WAIT);
    say(
        out,
        &format!("  message 1 ({} bytes): {}", first.len(), quote(&first)),
    )?;
    say(
        out,
        &format!("  message 2 ({} bytes): {}", second.len(), quote(&second)),
    )?;
    drop(fifo);
    let fixed_ok = b_waited && first == a && second == b && matches!(closed, Err(Error::Closed));
    say(
        out,
        "Each message whole; then the end of the stream, cleanly.",
    )?;
    Ok((naive_failed, fixed_ok))
}
