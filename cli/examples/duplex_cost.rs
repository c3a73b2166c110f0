//! The user-space cost of a 64-byte message on each two-way connection, in
//! one process (no scheduling): batches of 100 messages sent on one end and
//! received on the other, so that `valgrind --tool=callgrind` or `strace -c`
//! can count instructions and system calls per message against the same
//! loop on the raw fds.
//!
//! ```text
//! cargo build --release -p ipc-harness-cli --example duplex_cost
//! valgrind --tool=callgrind target/release/examples/duplex_cost duplex 100000
//! strace -c target/release/examples/duplex_cost duplex 100000
//! ```
//!
//! Modes: `duplex`, `duplex-pipes`, `raw-socket` (68-byte write and read on
//! a socketpair, the same bytes as a frame), `raw-pipes`. Subtract a run of
//! N messages from one of 2N to leave out the start-up.

use std::os::fd::AsFd;

use ipc_harness::sys::{self, SocketKind};
use ipc_harness::{duplex, duplex_pipes};

const SIZE: usize = 64;
const BATCH: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("duplex");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let batches = n.div_ceil(BATCH);
    let msg = [0x5au8; SIZE];
    let mut buf = [0u8; SIZE + 4];
    match mode {
        "duplex" => {
            let (a, mut b) = duplex().unwrap();
            for _ in 0..batches {
                for _ in 0..BATCH {
                    a.send_bytes(&msg).unwrap();
                }
                for _ in 0..BATCH {
                    b.recv_bytes_into(&mut buf).unwrap();
                }
            }
        }
        "duplex-pipes" => {
            let (a, mut b) = duplex_pipes().unwrap();
            for _ in 0..batches {
                for _ in 0..BATCH {
                    a.send_bytes(&msg).unwrap();
                }
                for _ in 0..BATCH {
                    b.recv_bytes_into(&mut buf).unwrap();
                }
            }
        }
        "raw-socket" | "raw-pipes" => {
            let (r, w) = if mode == "raw-socket" {
                sys::socketpair(SocketKind::Stream).unwrap()
            } else {
                sys::pipe(false).unwrap()
            };
            let mut frame = [0u8; SIZE + 4];
            frame[3] = SIZE as u8;
            frame[4..].copy_from_slice(&msg);
            for _ in 0..batches {
                for _ in 0..BATCH {
                    assert_eq!(sys::write(w.as_fd(), &frame).unwrap(), frame.len());
                }
                for _ in 0..BATCH {
                    assert_eq!(sys::read(r.as_fd(), &mut buf).unwrap(), buf.len());
                }
            }
        }
        other => {
            eprintln!("unknown mode {other:?}: duplex, duplex-pipes, raw-socket, raw-pipes");
            std::process::exit(2);
        }
    }
    std::hint::black_box(&buf);
}
