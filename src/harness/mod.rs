//! The correctness harness, public so that you can point it at your own IPC
//! code: run closures in forked processes with deadlines ([`fork`]),
//! generate message sizes biased toward the boundaries where IPC breaks
//! ([`sizes`]), and make messages that prove their own identity and
//! integrity ([`payload`]).

pub mod campaign;
pub mod channel;
pub mod check;
pub mod fault;
pub mod fork;
pub mod journal;
pub mod payload;
pub mod pitfalls;
pub mod scenario;
pub mod sizes;
pub mod trace;
pub mod transports;

use proptest::test_runner::{Config, FileFailurePersistence};

/// A proptest configuration for a suite whose counterexamples are kept in
/// `regressions` (a path such as `"proptest-regressions/pipe.txt"`, relative
/// to the package root, where `cargo test` runs), replayed first on every
/// run. Runs `default_cases` cases unless `PROPTEST_CASES` says otherwise.
pub fn proptest_config(regressions: &'static str, default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    }
}
