//! The command line of `ipc-harness bench`.

use std::io;

use ipc_harness::error::{Error, Result};

use super::report::Report;
use super::runner::run;
use super::{Options, SIZES};

/// Output format of [`BenchArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text tables.
    Text,
    /// One JSON object.
    Json,
}

/// The arguments of `ipc-harness bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Interleaved rounds; medians and ratios are taken over them.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// CI-sized run: a 2 MiB budget per measurement and few round trips.
    #[arg(long)]
    pub quick: bool,
    /// Add Python's multiprocessing Pipe(), Queue and JoinableQueue (needs python3).
    #[arg(long)]
    pub python: bool,
    /// Message sizes in bytes (repeatable); default 64, 4096, 65536, 1 MiB, 16 MiB.
    #[arg(long = "size", value_name = "BYTES")]
    pub sizes: Vec<usize>,
    /// Bytes each throughput measurement sends (default 64 MiB, 2 MiB with --quick).
    #[arg(long, value_name = "BYTES")]
    pub budget: Option<usize>,
    /// Skip the round-trip measurements.
    #[arg(long)]
    pub no_latency: bool,
    /// Add the peers ipc-channel, interprocess and iceoryx2 in the same rounds (needs
    /// a build with `--features peers`; without it, a note says so).
    #[arg(long)]
    pub peers: bool,
    /// Skip the scaling cases (Queue and JoinableQueue 8 producers x 8
    /// consumers, Fifo 8 writers), which run by default at every size.
    #[arg(long)]
    pub no_scaling: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl BenchArgs {
    /// The [`Options`] these arguments ask for.
    pub fn options(&self) -> Options {
        Options {
            rounds: self.rounds.max(1),
            quick: self.quick,
            python: self.python,
            sizes: if self.sizes.is_empty() {
                SIZES.to_vec()
            } else {
                self.sizes.clone()
            },
            budget: self.budget,
            latency: !self.no_latency,
            scaling: !self.no_scaling,
            peers: self.peers,
        }
    }

    /// Runs the benchmark, shows progress on stderr, writes the report to
    /// `out`. Forks: call from a single-threaded program.
    pub fn run(&self, out: &mut impl io::Write) -> Result<Report> {
        let report = run(&self.options(), |what| eprintln!("bench: {what}"))?;
        let text = match self.format {
            Format::Text => report.table(),
            Format::Json => report.to_json() + "\n",
        };
        out.write_all(text.as_bytes())
            .map_err(|e| Error::io("write report", e))?;
        Ok(report)
    }
}
