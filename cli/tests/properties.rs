//! The generic property battery: the same properties, across forked
//! processes, for every real primitive. Adding a primitive is one line in
//! the list at the bottom.
//!
//! Each test generates scenarios (producers x consumers x boundary-biased
//! sizes x pacing) within what the channel promises, runs them, and fails
//! on any violation of a promised property, shrinking to a minimal
//! scenario. `PROPTEST_CASES` scales every test up.

use ipc_harness::harness::channel::Channel;
use ipc_harness::harness::fork::serial;
use ipc_harness::harness::proptest_config;
use ipc_harness::harness::run::run;
use ipc_harness::harness::scenario::{Limits, scenarios};
use ipc_harness::harness::transports::{
    DuplexChannel, DuplexPipesChannel, FifoChannel, FifoChunkedChannel, JoinableChannel,
    PipeChannel, QueueChannel, RawChannel, RawKind,
};
use ipc_harness_cli::registry;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

const CASES: u32 = 32;

/// Runs the battery on `channel`: no promised property may break.
fn battery<C: Channel>(channel: C) {
    let _serial = serial();
    // The registry knows which kernel features each transport needs.
    let skip = registry::all(false)
        .into_iter()
        .find(|e| e.name == channel.name())
        .and_then(|e| e.skip_reason());
    if let Some(reason) = skip {
        eprintln!("skipped {}: {reason}", channel.name());
        return;
    }
    let limits = Limits::for_promises(&channel.promises());
    // This crate lives in `cli/`; its counterexamples are kept with the
    // others in the top-level `proptest-regressions/`.
    let mut runner = TestRunner::new(proptest_config(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proptest-regressions/properties.txt"
        ),
        CASES,
    ));
    let result = runner.run(&scenarios(limits), |scenario| {
        let report = run(&channel, &scenario);
        prop_assert!(report.broken_promises().is_empty(), "{}", report);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{} broke a promise: {e}", channel.name());
    }
}

macro_rules! battery {
    ($($name:ident => $channel:expr;)*) => {$(
        #[test]
        fn $name() {
            battery($channel);
        }
    )*};
}

battery! {
    pipe_keeps_every_promise => PipeChannel;
    duplex_a_to_b_keeps_every_promise => DuplexChannel { reversed: false };
    duplex_b_to_a_keeps_every_promise => DuplexChannel { reversed: true };
    duplex_pipes_a_to_b_keeps_every_promise => DuplexPipesChannel { reversed: false };
    duplex_pipes_b_to_a_keeps_every_promise => DuplexPipesChannel { reversed: true };
    fifo_keeps_every_promise => FifoChannel;
    chunked_fifo_keeps_every_promise => FifoChunkedChannel;
    queue_keeps_every_promise => QueueChannel::DEFAULT;
    bounded_queue_with_a_small_ring_keeps_every_promise => QueueChannel {
        bounded: Some(4),
        ring_bytes: Some(4096),
        racing_readers: false,
    };
    joinable_queue_keeps_every_promise => JoinableChannel::DEFAULT;
    // The raw transports keep what they promise, which is less.
    raw_pipe_keeps_its_byte_stream_promises => RawChannel(RawKind::Pipe);
    packet_pipe_keeps_its_promises => RawChannel(RawKind::PacketPipe);
    seqpacket_keeps_its_promises => RawChannel(RawKind::SeqPacket);
}
