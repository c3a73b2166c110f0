//! Every campaign failure replayable: the seed and a line to paste, the
//! minimal scenario printed once, failing seeds kept and replayed first,
//! and a minimal scenario that passes alone called timing-dependent.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_harness::harness::campaign::{CampaignConfig, SEED_ENV, campaign, read_regressions};
use ipc_harness::harness::channel::{Channel, Consumer, Ends, Producer, Promises};
use ipc_harness::harness::fork;
use ipc_harness::{Receiver, Result, Sender};

/// A pipe that sends every message twice while `broken` says so, for the
/// open it is given (counted from 0).
struct Doubling<F: Fn(u32) -> bool> {
    broken: F,
    opens: AtomicU32,
}

struct Tx(Sender, bool);
struct Rx(Receiver);

impl Producer for Tx {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.0.send_bytes(msg)?;
        if self.1 {
            self.0.send_bytes(msg)?;
        }
        Ok(())
    }
}

impl Consumer for Rx {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        self.0
            .recv_bytes_timeout(deadline.saturating_duration_since(Instant::now()))
    }
}

impl<F: Fn(u32) -> bool> Channel for Doubling<F> {
    type Producer = Tx;
    type Consumer = Rx;

    fn name(&self) -> String {
        "a doubling pipe".into()
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<Tx, Rx>> {
        let broken = (self.broken)(self.opens.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = ipc_harness::pipe()?;
        Ok(Ends {
            producers: vec![Tx(tx, broken)],
            consumers: vec![Rx(rx)],
        })
    }
}

fn doubling<F: Fn(u32) -> bool>(broken: F) -> Doubling<F> {
    Doubling {
        broken,
        opens: AtomicU32::new(0),
    }
}

fn config(seed: u64) -> CampaignConfig {
    let mut config = CampaignConfig::new(6, seed);
    config.max_size = Some(5000);
    config.regressions = None;
    config.run.deadline = Duration::from_secs(5);
    config
}

#[test]
fn a_failing_campaign_prints_its_seed_the_line_that_replays_it_and_the_scenario_once() {
    let result = campaign(&doubling(|_| true), &config(4242));
    assert!(!result.promises_held(), "{result}");
    let text = result.to_string();
    assert!(text.contains("seed 4242"), "{text}");
    let replay = format!("{SEED_ENV}=4242 cargo test a_failing_campaign_prints");
    assert!(text.contains(&replay), "{text}");
    let (scenario, _) = result.failure.as_ref().unwrap();
    let first_line = scenario.to_string();
    let first_line = first_line.lines().next().unwrap();
    assert_eq!(text.matches(first_line).count(), 1, "{text}");
    // It fails whenever it runs: not a matter of timing.
    let replays = result.replays.unwrap();
    assert_eq!((replays.failed, replays.of), (3, 3));
    assert!(!text.contains("TIMING-DEPENDENT"), "{text}");
}

#[test]
fn a_minimal_scenario_that_passes_alone_is_reported_as_timing_dependent() {
    // Broken on its first open only, as a race lost once would be.
    let result = campaign(&doubling(|open| open == 0), &config(1));
    assert!(!result.promises_held(), "{result}");
    let replays = result.replays.unwrap();
    assert!(replays.timing_dependent());
    assert_eq!((replays.failed, replays.of), (0, 3));
    let text = result.to_string();
    assert!(
        text.contains("TIMING-DEPENDENT: run again alone it failed 0 of 3 times"),
        "{text}"
    );
}

#[test]
fn failing_seeds_are_kept_and_replayed_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proptest-regressions/campaigns.txt");
    let mut first = config(77);
    first.regressions = Some(path.clone());
    // Broken only for open #0: the failing seed is kept...
    let result = campaign(&doubling(|open| open == 0), &first);
    assert!(!result.promises_held());
    assert_eq!(
        read_regressions(&path),
        vec![("a doubling pipe".to_string(), 77, 6)]
    );
    // ...and replayed first by a campaign with another seed.
    let mut later = config(78);
    later.regressions = Some(path.clone());
    let result = campaign(&doubling(|_| true), &later);
    assert!(result.replayed_regression, "{result}");
    assert_eq!(result.seed, 77);
    assert!(result.to_string().contains("a kept regression"));
    // Kept once, however often it fails.
    assert_eq!(read_regressions(&path).len(), 1);
}

#[test]
fn the_seed_variable_overrides_the_configured_seed() {
    // In a forked child: the variable is set for it alone, and the
    // child is single-threaded, so setting it is sound.
    let report = fork::run(Duration::from_secs(60), || {
        // SAFETY: this forked child has one thread.
        unsafe { std::env::set_var(SEED_ENV, "99") };
        let result = campaign(&doubling(|_| false), &config(5));
        result.seed.to_le_bytes().to_vec()
    })
    .unwrap();
    assert_eq!(report.expect_success(), 99u64.to_le_bytes());
}
