//! Python's father/son `os.pipe` example, in Rust: first
//! the naive way, on a [`RawPipe`], where the son's writes come back glued
//! together; then framed, with `ipc_harness::pipe()`, where each receive is
//! one message.
//!
//! ```text
//! r, w = os.pipe()
//! if os.fork():                       # the father
//!     os.close(w)
//!     while data := os.read(r, 1024):
//!         print(f'Father ({os.getpid()}) received: {data}')
//! else:                               # the son
//!     os.close(r)
//!     for counter in range(6):
//!         os.write(w, f'Spam {counter % 5:03}'.encode())
//! ```
//!
//! The son writes everything before the father reads (the father waits for
//! him), so the glued reads are shown every time, not by luck.
//!
//! Run it with `cargo run --example father_son_pipe`.

use std::io::Write;
use std::time::Duration;

use ipc_harness::harness::fork;
use ipc_harness::pipe;
use ipc_harness::raw::RawPipe;

/// What the son sends: the Python program's counter runs 0 to 4 and starts
/// again.
pub fn messages() -> Vec<Vec<u8>> {
    (0..6)
        .map(|i| format!("Spam {:03}", i % 5).into_bytes())
        .collect()
}

/// The naive father and son; returns what each of the father's reads got.
pub fn naive(out: &mut dyn Write) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut raw = RawPipe::new()?;
    // The son runs in a copy of this process: it closes its copy of the
    // read end, writes, and exits (which closes its write end).
    let son = fork::spawn(|| {
        raw.close_read();
        for m in messages() {
            raw.write(&m).unwrap();
        }
        Vec::new()
    })?;
    let son_pid = son.pid();
    // Wait for the son first: everything he wrote is in the pipe (it fits).
    son.wait(Duration::from_secs(10))?.expect_success();
    raw.close_write(); // or the father never sees the end of the stream
    writeln!(
        out,
        "Son ({son_pid}) wrote {} messages, one write each.",
        messages().len()
    )?;
    let mut reads = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = raw.read(&mut buf)?;
        if n == 0 {
            break;
        }
        writeln!(
            out,
            "Father ({}) received: {:?}",
            std::process::id(),
            String::from_utf8_lossy(&buf[..n])
        )?;
        reads.push(buf[..n].to_vec());
    }
    writeln!(
        out,
        "{} writes, {} read(s): a pipe is a byte stream and keeps no boundaries.",
        messages().len(),
        reads.len()
    )?;
    Ok(reads)
}

/// The same with framing; returns what the father received.
pub fn framed(out: &mut dyn Write) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let (tx, mut rx) = pipe()?;
    // `tx` moves into the son; the father's copy closes when spawn returns.
    let son = fork::spawn(move || {
        for m in messages() {
            tx.send_bytes(&m).unwrap();
        }
        Vec::new()
    })?;
    son.wait(Duration::from_secs(10))?.expect_success();
    let mut received = Vec::new();
    loop {
        match rx.recv_bytes() {
            Ok(m) => {
                writeln!(
                    out,
                    "Father ({}) received: {:?}",
                    std::process::id(),
                    String::from_utf8_lossy(&m)
                )?;
                received.push(m);
            }
            Err(e) if e.is_closed() => break,
            Err(e) => return Err(e.into()),
        }
    }
    writeln!(
        out,
        "{} sends, {} receives: each receive is exactly one message.",
        messages().len(),
        received.len()
    )?;
    Ok(received)
}

/// Both, one after the other.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    writeln!(
        out,
        "-- the naive way: os.pipe(), os.write, os.read(fd, 1024) --"
    )?;
    naive(out)?;
    writeln!(out, "-- framed: ipc_harness::pipe() --")?;
    framed(out)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&mut std::io::stdout().lock())
}
