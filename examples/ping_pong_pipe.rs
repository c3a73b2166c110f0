//! Python's `multiprocessing` ping/pong over a two-way pipe, in Rust.
//!
//! ```text
//! from multiprocessing import Pipe, Process
//!
//! def ping(conn):
//!     conn.send('Geek University.')
//!
//! def pong(conn):
//!     print(f'{conn.recv()} received')
//!
//! conn1, conn2 = Pipe(duplex=True)
//! Process(target=ping, args=(conn1,)).start()
//! Process(target=pong, args=(conn2,)).start()
//! ```
//!
//! Here `ping` also waits for `pong`'s answer, to show the pipe is two-way.
//! Children never print (see `ipc_harness::harness::fork`): each returns
//! what it has to say, and the parent prints it.
//!
//! Run it with `cargo run --example ping_pong_pipe`.

use std::io::Write;
use std::time::Duration;

use ipc_harness::duplex;
use ipc_harness::harness::fork;

/// Runs ping and pong in two forked processes; prints what each saw.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    // One two-way connection: each end both sends and receives.
    let (mut ping_end, mut pong_end) = duplex()?;
    // Each end moves into its child; the parent's copy closes when spawn
    // returns. Cannot deadlock: each message is far smaller than the
    // socket's buffer, so every send completes without a reader.
    let ping = fork::spawn(move || {
        ping_end.send_bytes(b"Geek University.").unwrap();
        ping_end.recv_bytes().unwrap()
    })?;
    let pong = fork::spawn(move || {
        let msg = pong_end.recv_bytes().unwrap();
        let mut answer = msg.clone();
        answer.extend_from_slice(b" received");
        pong_end.send_bytes(&answer).unwrap();
        msg
    })?;
    let (ping_pid, pong_pid) = (ping.pid(), pong.pid());
    let mut reports = fork::wait_all(vec![ping, pong], Duration::from_secs(10))?.into_iter();
    let answer = reports.next().expect("ping's report").expect_success();
    let received = reports.next().expect("pong's report").expect_success();
    writeln!(
        out,
        "pong ({pong_pid}) received: {}",
        String::from_utf8_lossy(&received)
    )?;
    writeln!(
        out,
        "ping ({ping_pid}) got the answer: {}",
        String::from_utf8_lossy(&answer)
    )?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&mut std::io::stdout().lock())
}
