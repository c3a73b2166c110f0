//! Faults as a dimension of the harness, first slice: a signal storm in
//! every producer and consumer process (a `SIGALRM` handler without
//! `SA_RESTART`, a timer every 200 us), so every blocking call they make
//! keeps failing with `EINTR`. Every primitive must keep every promise
//! under it, and a reader that takes `EINTR` for end of stream — correct
//! without the storm — must be caught by it.

use std::time::Duration;

use ipc_harness::harness::campaign::{CampaignConfig, campaign, fresh_seed};
use ipc_harness::harness::fork::serial;
use ipc_harness::harness::registry;
use ipc_harness::pitfalls::{Pitfall, PitfallChannel};

const STORM: Duration = Duration::from_micros(200);

fn config(cases: u32, storm: Option<Duration>) -> CampaignConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    let mut c = CampaignConfig::new(cases, fresh_seed());
    c.run.signal_storm = storm;
    c
}

#[test]
fn every_primitive_keeps_its_promises_under_a_signal_storm() {
    let _serial = serial();
    for entry in registry::primitives() {
        let cfg = config(8, Some(STORM));
        let result = entry.campaign(&cfg);
        assert!(
            result.promises_held(),
            "{} broke a promise under a signal storm (seed {}):\n{result}",
            entry.name,
            cfg.seed
        );
    }
}

#[test]
fn a_reader_that_takes_eintr_for_eof_is_caught_by_the_storm_and_only_by_it() {
    let _serial = serial();
    let naive = PitfallChannel(Pitfall::EintrAsEof);
    // Without signals it is a correct framed reader...
    let calm = campaign(&naive, &config(8, None));
    assert!(
        calm.promises_held(),
        "without a storm it should pass:\n{calm}"
    );
    // ...and the storm breaks it.
    let stormy = campaign(&naive, &config(16, Some(STORM)));
    let (scenario, report) = stormy.failure.as_ref().expect("the storm must catch it");
    let seen: Vec<&str> = stormy
        .tally
        .values()
        .flat_map(|t| t.kinds.keys().copied())
        .collect();
    assert!(
        Pitfall::EintrAsEof
            .shows_as()
            .iter()
            .any(|k| seen.contains(k)),
        "saw {seen:?}\n{scenario}\n{report}"
    );
}
