//! Pitfall 2, `split-reads`: a fixed-size `read(fd, 32)` cuts long messages
//! into pieces; the fix, `pipe()`, never cuts one, even into a buffer too
//! small for it (`BufferTooSmall`).

use std::io::Write;
use std::os::fd::AsFd;

use ipc_harness::error::{Error, Result};
use ipc_harness::pipe::pipe;
use ipc_harness::sys;

use super::kit::{WAIT, new_pipe, provenance, quote, say, spawn, story, success};

pub(super) fn split_reads(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = vec![
        b"Spam 000: lovely spam, wonderful spam!".to_vec(),
        b"Spam 001: egg, bacon, sausage and spam".to_vec(),
        b"Spam 002".to_vec(),
    ];
    story(
        out,
        &[
            "The naive code: the son writes each message with one write(2); the father reads",
            "with a fixed buffer, os.read(fd, 32), and takes each read as one message. The son",
            "writes everything first, then the father reads.",
            "",
        ],
    )?;

    let (data_r, data_w) = new_pipe()?;
    let msgs = messages.clone();
    let son = spawn(move || {
        for m in &msgs {
            sys::write(data_w.as_fd(), m).map_err(|e| Error::io("write", e))?;
        }
        Ok(Vec::new())
    })?;
    success(son.wait(WAIT)?, "the son")?;
    let mut reads = Vec::new();
    loop {
        let mut buf = [0u8; 32];
        let n = sys::read(data_r.as_fd(), &mut buf).map_err(|e| Error::io("read", e))?;
        if n == 0 {
            break;
        }
        reads.push(buf[..n].to_vec());
    }
    say(out, &format!("The son made {} writes:", messages.len()))?;
    for (i, m) in messages.iter().enumerate() {
        say(
            out,
            &format!("  write {} ({} bytes): {}", i + 1, m.len(), quote(m)),
        )?;
    }
    say(
        out,
        &format!(
            "The father made {} reads of at most 32 bytes, and took each as a message:",
            reads.len()
        ),
    )?;
    let lens: Vec<usize> = messages.iter().map(Vec::len).collect();
    let mut pos = 0;
    for (i, r) in reads.iter().enumerate() {
        let (_, from) = provenance(&lens, pos, pos + r.len());
        pos += r.len();
        say(out, &format!("  read {}: {}", i + 1, quote(r)))?;
        say(out, &format!("          which is {from}"))?;
    }
    let naive_failed = reads != messages;
    story(
        out,
        &[
            "",
            "Why: a read returns at most the buffer's size, and a pipe keeps no boundaries,",
            "so a long message comes back in pieces and the pieces run into the next message.",
            "",
        ],
    )?;

    story(
        out,
        &[
            "The fix: ipc_harness::pipe(). Even into the same 32-byte buffer, a receive never",
            "cuts a message: recv_bytes_into says BufferTooSmall and hands back the whole of it.",
        ],
    )?;
    let (tx, mut rx) = pipe()?;
    let msgs = messages.clone();
    let son = spawn(move || {
        for m in &msgs {
            tx.send_bytes(m)?;
        }
        Ok(Vec::new())
    })?;
    success(son.wait(WAIT)?, "the son")?;
    let mut received = Vec::new();
    loop {
        let mut buf = [0u8; 32];
        match rx.recv_bytes_into(&mut buf) {
            Ok(n) => {
                say(
                    out,
                    &format!("  receive {}: {}", received.len() + 1, quote(&buf[..n])),
                )?;
                received.push(buf[..n].to_vec());
            }
            Err(Error::BufferTooSmall { message }) => {
                say(
                    out,
                    &format!(
                        "  receive {}: BufferTooSmall, holding all {} bytes: {}",
                        received.len() + 1,
                        message.len(),
                        quote(&message)
                    ),
                )?;
                received.push(message);
            }
            Err(Error::Closed) => break,
            Err(e) => return Err(e),
        }
    }
    let fixed_ok = received == messages;
    say(
        out,
        &format!(
            "{} messages sent, {} received, none cut.",
            messages.len(),
            received.len()
        ),
    )?;
    Ok((naive_failed, fixed_ok))
}
