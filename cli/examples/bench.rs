//! The cross-process benchmark: every primitive against the raw kernel
//! transports (and Python's `multiprocessing` with `--python`), in
//! interleaved rounds, medians and per-round ratios. See
//! [`ipc_harness::bench`] for the method.
//!
//! ```text
//! cargo run --release --example bench -- [--python] [--rounds N] [--quick] [--format json]
//! ```

use std::process::ExitCode;

use clap::Parser;
use ipc_harness_cli::bench::BenchArgs;

#[derive(Parser)]
#[command(about = "Cross-process throughput and round-trip benchmark")]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.args.run(&mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
