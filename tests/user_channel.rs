//! A transport defined outside the crate — a length-prefixed `UnixStream`
//! of our own — checked by the same battery as the crate's primitives, and
//! a broken version of it (no length prefix) caught by it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use ipc_harness::harness::channel::{Channel, Consumer, Ends, Producer, Promises};
use ipc_harness::harness::fork::serial;
use ipc_harness::harness::proptest_config;
use ipc_harness::harness::run::run;
use ipc_harness::harness::scenario::{Limits, scenarios};
use ipc_harness::{Error, Result};
use proptest::test_runner::TestRunner;

/// Our own framing: a u32 little-endian length, then the bytes. With
/// `framed == false` it "forgets" the prefix, as a first draft might.
struct MyStream {
    framed: bool,
}

struct MyTx(UnixStream, bool);
struct MyRx(UnixStream, bool);

fn io(e: std::io::Error) -> Error {
    Error::io("my stream", e)
}

impl Producer for MyTx {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if self.1 {
            self.0
                .write_all(&(msg.len() as u32).to_le_bytes())
                .map_err(io)?;
        }
        self.0.write_all(msg).map_err(io)
    }
}

impl Consumer for MyRx {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        self.0.set_read_timeout(Some(left)).map_err(io)?;
        let timeout = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Timeout,
            _ => io(e),
        };
        if !self.1 {
            let mut buf = vec![0u8; 65536];
            let n = self.0.read(&mut buf).map_err(timeout)?;
            if n == 0 {
                return Err(Error::Closed);
            }
            buf.truncate(n);
            return Ok(buf);
        }
        let mut len = [0u8; 4];
        match self.0.read_exact(&mut len) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Error::Closed),
            r => r.map_err(timeout)?,
        }
        let mut msg = vec![0u8; u32::from_le_bytes(len) as usize];
        self.0.read_exact(&mut msg).map_err(timeout)?;
        Ok(msg)
    }
}

impl Channel for MyStream {
    type Producer = MyTx;
    type Consumer = MyRx;

    fn name(&self) -> String {
        format!("my UnixStream (framed: {})", self.framed)
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<MyTx, MyRx>> {
        let (a, b) = UnixStream::pair().map_err(io)?;
        Ok(Ends {
            producers: vec![MyTx(a, self.framed)],
            consumers: vec![MyRx(b, self.framed)],
        })
    }
}

fn battery(channel: &MyStream) -> std::result::Result<(), String> {
    let limits = Limits::for_promises(&channel.promises());
    let mut config = proptest_config("proptest-regressions/user_channel.txt", 24);
    if !channel.framed {
        // Its failure is expected: not a regression to keep.
        config.failure_persistence = None;
    }
    let mut runner = TestRunner::new(config);
    runner
        .run(&scenarios(limits), |scenario| {
            let report = run(channel, &scenario);
            proptest::prop_assert!(report.broken_promises().is_empty(), "{}", report);
            Ok(())
        })
        .map_err(|e| e.to_string())
}

#[test]
fn a_users_framed_stream_passes_the_battery() {
    let _serial = serial();
    battery(&MyStream { framed: true }).unwrap();
}

#[test]
fn a_users_unframed_stream_is_caught() {
    let _serial = serial();
    let why = battery(&MyStream { framed: false }).expect_err("an unframed stream must fail");
    // Shrunk, it is usually the simplest loss: a 0-byte message cannot
    // exist on an unframed stream; bigger scenarios show Merged and Split.
    assert!(
        ["Merged", "Split", "Lost"].iter().any(|k| why.contains(k)),
        "{why}"
    );
}
