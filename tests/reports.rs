//! Reports that tell the truth: what a hung process received is never
//! reported lost, and a scenario in which every process is blocked is
//! reported as a hang before the deadline.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ipc_harness::harness::channel::{Channel, Consumer, Ends, Producer, Promises};
use ipc_harness::harness::run::{RunOptions, run_with};
use ipc_harness::harness::scenario::Scenario;
use ipc_harness::{Receiver, Result, Sender};

/// A correct pipe whose consumer, after `then_hang` messages, blocks for
/// ever in a read that ignores its deadline (on a socket whose other end
/// it holds itself).
struct HangsAfter {
    then_hang: usize,
}

struct Tx(Sender);
struct Rx {
    rx: Receiver,
    left: usize,
    trap: (UnixStream, UnixStream),
}

impl Producer for Tx {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.0.send_bytes(msg)
    }
}

impl Consumer for Rx {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        if self.left == 0 {
            let mut byte = [0u8; 1];
            let _ = self.trap.0.read(&mut byte);
        }
        self.left = self.left.saturating_sub(1);
        self.rx
            .recv_bytes_timeout(deadline.saturating_duration_since(Instant::now()))
    }
}

impl Channel for HangsAfter {
    type Producer = Tx;
    type Consumer = Rx;

    fn name(&self) -> String {
        format!("a pipe whose consumer hangs after {}", self.then_hang)
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<Tx, Rx>> {
        let (tx, rx) = ipc_harness::pipe()?;
        let trap = UnixStream::pair().map_err(|e| ipc_harness::Error::io("socketpair", e))?;
        Ok(Ends {
            producers: vec![Tx(tx)],
            consumers: vec![Rx {
                rx,
                left: self.then_hang,
                trap,
            }],
        })
    }
}

fn short() -> RunOptions {
    RunOptions {
        deadline: Duration::from_secs(2),
        ..RunOptions::default()
    }
}

#[test]
fn a_consumer_that_received_everything_then_hung_lost_nothing() {
    let scenario = Scenario::simple(&[0, 1, 4096, 5, 70_000, 3]);
    let report = run_with(&HangsAfter { then_hang: 6 }, &scenario, short());
    assert!(report.has("Hang"), "{report}");
    assert!(!report.has("Lost"), "{report}");
    assert_eq!(report.violations.len(), 1, "{report}");
    assert_eq!(report.accounting.ok, 6, "{report}");
}

#[test]
fn what_a_hung_consumer_never_received_is_lost_because_of_the_hang() {
    let scenario = Scenario::simple(&[10, 20, 30, 40]);
    let report = run_with(&HangsAfter { then_hang: 2 }, &scenario, short());
    assert!(report.has("Hang"), "{report}");
    let lost = report
        .violations
        .iter()
        .filter(|v| v.kind() == "Lost")
        .count();
    assert_eq!(lost, 2, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("follows from the hang of consumer 0"),
        "{text}"
    );
}

#[test]
fn a_scenario_in_which_every_process_is_blocked_is_reported_before_the_deadline() {
    let scenario = Scenario::simple(&[1, 2, 3]);
    let start = Instant::now();
    // The default deadline is 20 s; the stall watch sees the hang first.
    let report = run_with(
        &HangsAfter { then_hang: 3 },
        &scenario,
        RunOptions::default(),
    );
    eprintln!("all-blocked hang reported after {:?}", start.elapsed());
    let hang = report
        .violations
        .iter()
        .find(|v| v.kind() == "Hang")
        .unwrap_or_else(|| panic!("no hang: {report}"));
    assert!(
        hang.to_string()
            .contains("once every process of the scenario had been blocked with no progress"),
        "{report}"
    );
    assert!(!report.has("Lost"), "{report}");
}

#[test]
fn a_consumer_waiting_while_its_producer_pauses_is_not_a_hang() {
    use ipc_harness::harness::scenario::{Pacing, ProducerPlan};
    use ipc_harness::harness::transports::PipeChannel;
    // Pauses three times the stall window: the consumer is blocked all
    // along, but the producer sleeps on a timer, so it will go on.
    let scenario = Scenario {
        producers: vec![ProducerPlan {
            sizes: vec![5, 6, 7],
            pacing: Pacing::Pause {
                every: 1,
                micros: 600_000,
            },
        }],
        consumers: 1,
        ..Scenario::default()
    };
    let options = RunOptions {
        stall: Some(Duration::from_millis(200)),
        ..RunOptions::default()
    };
    let report = run_with(&PipeChannel, &scenario, options);
    assert!(report.violations.is_empty(), "{report}");
}

/// A queue transport written as a newcomer might: its consumer never calls
/// `close_producer()`, so it still counts as a producer and never sees
/// `Closed`. With `declares` it does, as a queue consumer must.
struct QueueConsumerForgets {
    declares: bool,
}

struct QTx(ipc_harness::Queue);
struct QRx {
    queue: ipc_harness::Queue,
    declares: bool,
}

impl Producer for QTx {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.0.put_bytes(msg)
    }
}

impl Consumer for QRx {
    fn recv(&mut self, _deadline: Instant) -> Result<Vec<u8>> {
        if self.declares {
            self.queue.close_producer();
        }
        // Blocks until a message or `Closed`, as a newcomer's loop would.
        self.queue.get_bytes()
    }
}

impl Channel for QueueConsumerForgets {
    type Producer = QTx;
    type Consumer = QRx;

    fn name(&self) -> String {
        format!("a queue whose consumer declares itself: {}", self.declares)
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<QTx, QRx>> {
        let queue = ipc_harness::Queue::new()?;
        Ok(Ends {
            producers: vec![QTx(queue.clone())],
            consumers: vec![QRx {
                queue,
                declares: self.declares,
            }],
        })
    }
}

#[test]
fn a_queue_consumer_that_never_closed_its_producer_side_is_named_in_the_hang() {
    let scenario = Scenario::simple(&[1, 2, 3]);
    let report = run_with(
        &QueueConsumerForgets { declares: false },
        &scenario,
        short(),
    );
    let hang = report
        .violations
        .iter()
        .find(|v| v.kind() == "Hang")
        .unwrap_or_else(|| panic!("no hang: {report}"));
    assert!(
        hang.to_string()
            .contains("it holds a Queue's producer token: it counts as a producer until it calls close_producer()"),
        "{report}"
    );
    assert_eq!(report.accounting.ok, 3, "{report}");
    assert!(!report.has("Lost"), "{report}");
    // Declared, the same consumer sees Closed and nothing hangs.
    let report = run_with(&QueueConsumerForgets { declares: true }, &scenario, short());
    assert!(report.violations.is_empty(), "{report}");
}
