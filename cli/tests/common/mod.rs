//! What the tool's tests share: checking that a pitfall variant was caught,
//! as its own violations, and that a demo showed its lesson.

#![allow(dead_code)] // each test file uses some of these

use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult, fresh_seed};
use ipc_harness::harness::fork::serial;
use ipc_harness::harness::pitfalls::Variant;
use ipc_harness_cli::registry::{self, Entry, Kind};

/// The violation kinds that `result` saw, over every property.
pub fn kinds_seen(result: &CampaignResult) -> Vec<&'static str> {
    result
        .tally
        .values()
        .flat_map(|t| t.kinds.keys().copied())
        .collect()
}

/// `result` broke a promise, with one of the violations that show `variant`.
pub fn assert_caught(variant: Variant, result: &CampaignResult) {
    let (scenario, report) = result.failure.as_ref().unwrap_or_else(|| {
        panic!(
            "MISSED {} in {} runs (seed {}):\n{result}",
            variant.name(),
            result.runs,
            result.seed
        )
    });
    let seen = kinds_seen(result);
    assert!(
        variant.shows_as().iter().any(|k| seen.contains(k)),
        "{}: expected one of {:?}, saw {seen:?} (seed {})\n{scenario}\n{report}",
        variant.name(),
        variant.shows_as(),
        result.seed
    );
}

/// The registry's pitfall entry called `name`, e.g. `pitfall: coalescing`.
pub fn pitfall_entry(name: &str) -> Entry {
    registry::pitfalls()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no pitfall entry named {name:?}"))
}

/// Runs `entry`'s campaign (with its tuning) for `cases` scenarios from a
/// fresh seed and checks that the harness caught its pitfall.
pub fn catches(entry: &Entry, cases: u32) {
    let _serial = serial();
    let Kind::Pitfall(variant) = entry.kind else {
        panic!("{} is not a pitfall", entry.name);
    };
    let result = entry.campaign(&CampaignConfig::new(cases, fresh_seed()));
    assert_caught(variant, &result);
    eprintln!(
        "{}: caught after {} run(s) with {:?} (seed {})",
        entry.name,
        result.runs_to_failure.unwrap_or(result.runs),
        kinds_seen(&result),
        result.seed
    );
}

/// Runs the demo `name` and checks that the naive code failed and the fix
/// held.
pub fn demo_shows(name: &str) {
    let mut out = Vec::new();
    let outcome = ipc_harness_cli::demo::run(name, &mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        outcome.naive_failed,
        "{name}: the naive code did not fail:\n{text}"
    );
    assert!(outcome.fixed_ok, "{name}: the fix did not hold:\n{text}");
}
