//! Pitfall 4, `racing-readers`: two readers of one pipe without a lock each take
//! part of the same message; the fix, a `Queue`, holds its consumer lock for
//! a whole message.

use std::io::Write;
use std::os::fd::AsFd;

use ipc_harness::error::Result;
use ipc_harness::frame::{self};
use ipc_harness::harness::fork::{self};
use ipc_harness::pipe::{Sender, pipe};
use ipc_harness::queue::Queue;

use super::kit::{WAIT, dup, go, new_pipe, quote, read_n, say, spawn, story, success, wait_go};

/// What a naive reader tells the parent after each step.
fn report_step(tx: &Sender, what: &[u8]) -> Result<()> {
    tx.send_bytes(what)
}

pub(super) fn racing_readers(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = vec![
        b"Spam 000: Geek University.".to_vec(),
        b"Spam 001: Geek University.".to_vec(),
    ];
    story(
        out,
        &[
            "The naive code: two readers share the read end of one framed pipe, with no lock.",
            "Each reads a message as CPython's Connection.recv_bytes does: read the 4-byte",
            "length header, then read that many bytes. The writer sends two messages first.",
            "",
        ],
    )?;

    let (data_r, data_w) = new_pipe()?;
    let writer = {
        let tx = Sender::from_fd(data_w);
        let msgs = messages.clone();
        spawn(move || {
            for m in &msgs {
                tx.send_bytes(m)?;
            }
            Ok(Vec::new())
        })?
    };
    success(writer.wait(WAIT)?, "the writer")?;

    // Each reader: on "go", read a header and report it; on "go", read the
    // payload it announced (if it is believable) and report it.
    let mut readers = Vec::new();
    let mut gos = Vec::new();
    let mut reports = Vec::new();
    for _ in 0..2 {
        let fd = dup(&data_r)?;
        let (go_tx, mut go_rx) = pipe()?;
        let (rep_tx, rep_rx) = pipe()?;
        readers.push(spawn(move || {
            wait_go(&mut go_rx)?;
            let header = read_n(fd.as_fd(), frame::HEADER_LEN)?;
            report_step(&rep_tx, &header)?;
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            wait_go(&mut go_rx)?;
            if len > 1 << 20 {
                // Python would try to read (and allocate) all of it.
                report_step(&rep_tx, b"")?;
            } else {
                report_step(&rep_tx, &read_n(fd.as_fd(), len)?)?;
            }
            Ok(Vec::new())
        })?);
        gos.push(go_tx);
        reports.push(rep_rx);
    }
    drop(data_r);
    let header_len = |h: &[u8]| u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    go(&gos[0])?;
    let h1 = reports[0].recv_bytes_timeout(WAIT)?;
    go(&gos[1])?;
    let h2 = reports[1].recv_bytes_timeout(WAIT)?;
    go(&gos[0])?;
    let p1 = reports[0].recv_bytes_timeout(WAIT)?;
    go(&gos[1])?;
    let p2 = reports[1].recv_bytes_timeout(WAIT)?;
    for r in fork::wait_all(readers, WAIT)? {
        success(r, "a reader")?;
    }
    say(
        out,
        &format!(
            "1. Reader 1 read a header: {} -> {} bytes follow.",
            quote(&h1),
            header_len(&h1)
        ),
    )?;
    say(
        out,
        &format!(
            "2. Reader 2 read a header: {} -> {} bytes follow. Nonsense: those are",
            quote(&h2),
            header_len(&h2)
        ),
    )?;
    say(
        out,
        "   the first 4 bytes of message 1's payload. (Python would now try to read them.)",
    )?;
    say(
        out,
        &format!(
            "3. Reader 1 read {} bytes as message 1: {}",
            p1.len(),
            quote(&p1)
        ),
    )?;
    say(
        out,
        &format!(
            "   Sent was {}: it lost its first 4 bytes to reader 2 and took",
            quote(&messages[0])
        ),
    )?;
    say(out, "   message 2's header instead.")?;
    let _ = p2;
    let naive_failed = p1 != messages[0];
    story(
        out,
        &[
            "",
            "Why: each read(2) takes some bytes off the front of the pipe, whoever calls it.",
            "A message is a header and a payload read in separate calls; with two readers,",
            "the other one can take bytes in between. Nothing in a pipe belongs to a reader.",
            "",
        ],
    )?;

    story(
        out,
        &[
            "The fix: ipc_harness::Queue. A consumer holds the queue's consumer lock for a",
            "whole message. Same two messages, same two readers, same turns:",
        ],
    )?;
    let q = Queue::new()?;
    let writer = {
        let q = q.clone();
        let msgs = messages.clone();
        spawn(move || {
            for m in &msgs {
                q.put_bytes(m)?;
            }
            Ok(Vec::new())
        })?
    };
    success(writer.wait(WAIT)?, "the writer")?;
    let mut readers = Vec::new();
    let mut gos = Vec::new();
    for _ in 0..2 {
        let (go_tx, mut go_rx) = pipe()?;
        let q = q.clone();
        readers.push(spawn(move || {
            q.close_producer();
            wait_go(&mut go_rx)?;
            q.get_bytes_timeout(WAIT)
        })?);
        gos.push(go_tx);
    }
    q.close_producer();
    let mut received = Vec::new();
    for (i, (reader, go_tx)) in readers.into_iter().zip(&gos).enumerate() {
        go(go_tx)?;
        let got = success(reader.wait(WAIT)?, "a reader")?;
        say(out, &format!("  reader {} got: {}", i + 1, quote(&got)))?;
        received.push(got);
    }
    let fixed_ok = received == messages;
    say(out, "Each message went whole to exactly one reader.")?;
    Ok((naive_failed, fixed_ok))
}
