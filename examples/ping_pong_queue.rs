//! Python's `multiprocessing` ping/pong over a queue, in Rust.
//!
//! ```text
//! from multiprocessing import Queue, Process
//!
//! def ping(queue):
//!     queue.put('Geek University.')
//!
//! def pong(queue):
//!     print(f'{queue.get()} received')
//!
//! queue = Queue()
//! Process(target=ping, args=(queue,)).start()
//! Process(target=pong, args=(queue,)).start()
//! ```
//!
//! `ipc_harness::Queue` adds one rule (see its docs): a process that only
//! consumes calls `close_producer()`, and so does the parent once it has
//! forked its producers. Then, once `ping` has exited, `pong`'s next get
//! returns `Closed` instead of waiting forever.
//!
//! Run it with `cargo run --example ping_pong_queue`.

use std::io::Write;
use std::time::Duration;

use ipc_harness::Queue;
use ipc_harness::harness::fork;

/// Runs ping and pong in two forked processes; prints what pong saw.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let queue = Queue::new()?;
    let ping = {
        let queue = queue.clone(); // moved into the child
        fork::spawn(move || {
            queue.put_bytes(b"Geek University.").unwrap();
            Vec::new()
        })?
    };
    let pong = {
        let queue = queue.clone();
        fork::spawn(move || {
            queue.close_producer(); // pong only consumes
            let mut said = queue.get_bytes().unwrap();
            said.extend_from_slice(b" received\n");
            // Every producer is gone once ping exits: Closed, not a hang.
            match queue.get_bytes() {
                Err(e) if e.is_closed() => said.extend_from_slice(b"then: the queue is closed"),
                other => panic!("expected Closed, got {other:?}"),
            }
            said
        })?
    };
    queue.close_producer(); // the parent only forks
    let (ping_pid, pong_pid) = (ping.pid(), pong.pid());
    let mut reports = fork::wait_all(vec![ping, pong], Duration::from_secs(10))?.into_iter();
    reports.next().expect("ping's report").expect_success();
    let said = reports.next().expect("pong's report").expect_success();
    writeln!(out, "ping ({ping_pid}) put: Geek University.")?;
    for line in String::from_utf8_lossy(&said).lines() {
        writeln!(out, "pong ({pong_pid}) {line}")?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&mut std::io::stdout().lock())
}
