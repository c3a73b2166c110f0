//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use ipc_harness::harness::payload::{self, MsgId};
use ipc_harness::{Connection, Receiver, Result, Sender};

/// How long any one cross-process test may take before its child is killed.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Anything that sends framed messages.
pub trait Tx: Send {
    fn send(&self, msg: &[u8]) -> Result<()>;
}
/// Anything that receives framed messages.
pub trait Rx: Send {
    fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>>;
}
impl Tx for Sender {
    fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_bytes(msg)
    }
}
impl Tx for Connection {
    fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_bytes(msg)
    }
}
impl Rx for Receiver {
    fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_bytes_timeout(timeout)
    }
}
impl Rx for Connection {
    fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_bytes_timeout(timeout)
    }
}

/// The one-way paths a framed message can take: a pipe, and each direction
/// of a duplex connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Pipe,
    /// Send on the first connection, receive on the second.
    DuplexAB,
    /// Send on the second connection, receive on the first.
    DuplexBA,
}

pub const WAYS: [Way; 3] = [Way::Pipe, Way::DuplexAB, Way::DuplexBA];

impl Way {
    pub fn open(self) -> (Box<dyn Tx>, Box<dyn Rx>) {
        match self {
            Way::Pipe => {
                let (tx, rx) = ipc_harness::pipe().unwrap();
                (Box::new(tx), Box::new(rx))
            }
            Way::DuplexAB => {
                let (a, b) = ipc_harness::duplex().unwrap();
                (Box::new(a), Box::new(b))
            }
            Way::DuplexBA => {
                let (a, b) = ipc_harness::duplex().unwrap();
                (Box::new(b), Box::new(a))
            }
        }
    }
}

pub fn id(seq: usize) -> MsgId {
    MsgId {
        producer: 0,
        seq: seq as u32,
    }
}

/// Sends the self-checking messages of `plan` in order.
pub fn send_plan(tx: &dyn Tx, plan: &[usize]) -> Result<()> {
    for (seq, &len) in plan.iter().enumerate() {
        tx.send(&payload::make(id(seq), len))?;
    }
    Ok(())
}

/// Receives what `plan` sent and checks the contract: each receive is
/// exactly the next message, byte-identical (no merge, no split, no loss,
/// no reordering), and then the stream ends with `Closed`. Returns a
/// description of the first breach.
pub fn check_plan<F>(mut recv: F, plan: &[usize]) -> std::result::Result<(), String>
where
    F: FnMut() -> Result<Vec<u8>>,
{
    check_messages(&mut recv, plan)?;
    match recv() {
        Err(e) if e.is_closed() => Ok(()),
        Err(e) => Err(format!("after the last message: expected Closed, got {e}")),
        Ok(extra) => Err(format!(
            "after the last message: an extra receive of {} bytes judged {:?}",
            extra.len(),
            payload::verify(&extra)
        )),
    }
}

/// [`check_plan`] without the end of stream: for a peer that stays open.
pub fn check_messages<F>(mut recv: F, plan: &[usize]) -> std::result::Result<(), String>
where
    F: FnMut() -> Result<Vec<u8>>,
{
    for (seq, &len) in plan.iter().enumerate() {
        let got = recv().map_err(|e| format!("receive #{seq} (of {len} bytes) failed: {e}"))?;
        let want = payload::make(id(seq), len);
        if got != want {
            return Err(format!(
                "receive #{seq}: expected {} ({len} bytes), got {} bytes judged {:?}",
                id(seq),
                got.len(),
                payload::verify(&got)
            ));
        }
    }
    Ok(())
}
