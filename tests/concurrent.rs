//! The harness under `cargo test`'s threads, with nothing to remember: many
//! campaigns at once on correct transports (the crate's and one defined
//! here), none holding `fork::serial()`, and not one false alarm. Each
//! scenario's open and forks are serialized inside the harness, so no
//! channel's fds reach another scenario's children.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult, campaign};
use ipc_harness::harness::channel::{Channel, Consumer, Ends, Producer, Promises};
use ipc_harness::harness::transports::{PipeChannel, QueueChannel};
use ipc_harness::{Error, Result};

/// A length-prefixed `UnixStream`: a u32 little-endian length, then the bytes.
struct Framed;
struct Tx(UnixStream);
struct Rx(UnixStream);

fn io(e: std::io::Error) -> Error {
    Error::io("framed stream", e)
}

impl Producer for Tx {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.0
            .write_all(&(msg.len() as u32).to_le_bytes())
            .map_err(io)?;
        self.0.write_all(msg).map_err(io)
    }
}

impl Consumer for Rx {
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

impl Channel for Framed {
    type Producer = Tx;
    type Consumer = Rx;

    fn name(&self) -> String {
        "framed UnixStream".into()
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<Tx, Rx>> {
        let (a, b) = UnixStream::pair().map_err(io)?;
        Ok(Ends {
            producers: vec![Tx(a)],
            consumers: vec![Rx(b)],
        })
    }
}

const THREADS: u64 = 8;
const ROUNDS: u64 = 3;

fn config(seed: u64) -> CampaignConfig {
    let mut config = CampaignConfig::new(4, seed);
    config.max_size = Some(70_000);
    config.max_processes = Some(2);
    config.shrink = false;
    // A false alarm shows as a hang; a short deadline keeps it cheap.
    config.run.deadline = Duration::from_secs(5);
    config
}

fn one(thread: u64, round: u64) -> CampaignResult {
    let seed = 1000 * thread + round;
    match (thread + round) % 3 {
        0 => campaign(&Framed, &config(seed)),
        1 => campaign(&PipeChannel, &config(seed)),
        _ => campaign(&QueueChannel::DEFAULT, &config(seed)),
    }
}

#[test]
fn many_campaigns_on_many_threads_raise_no_false_alarm() {
    let results: Vec<CampaignResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || (0..ROUNDS).map(|r| one(t, r)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a campaign thread panicked"))
            .collect()
    });
    let failed: Vec<&CampaignResult> = results.iter().filter(|r| !r.promises_held()).collect();
    let runs: u32 = results.iter().map(|r| r.runs).sum();
    assert_eq!(runs, (THREADS * ROUNDS * 4) as u32, "every scenario ran");
    assert!(
        failed.is_empty(),
        "{} of {} campaigns ({runs} runs) raised a false alarm; the first:\n{}",
        failed.len(),
        results.len(),
        failed[0]
    );
}
