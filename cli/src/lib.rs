//! The `ipc-harness` command-line tool, as a library so that its tests can
//! drive each part in-process: the registry of what `check` runs, the
//! pitfall demos, `fifo listen|send`, and the benchmark.
//!
//! Nothing here is needed to use the primitives or the harness: depend on
//! the `ipc-harness` crate for those.

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod bench;
pub mod demo;
mod fdio;
pub mod fifo_cli;
pub mod histories;
pub mod registry;
pub mod regressions;
pub mod report;
