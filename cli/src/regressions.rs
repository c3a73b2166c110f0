//! The regressions file of `ipc-harness check`: the random seeds with which a
//! transport broke a promise, one `transport<TAB>seed<TAB>cases` line each,
//! replayed first by later runs. The same file format as the harness's own
//! campaigns keep ([`campaign::keep_regression`]).

use ipc_harness::harness::campaign::{self, CampaignResult};

/// The `(transport, seed, cases)` lines of the regressions file at `path`;
/// a missing file is an empty list.
pub fn read(path: &std::path::Path) -> Vec<(String, u64, u32)> {
    campaign::read_regressions(path)
}

/// Appends `result`'s seed for the transport `name` to the file at `path`
/// (creating it, and its directory, with a header), unless it is there.
pub fn append(
    path: &std::path::Path,
    name: &str,
    result: &CampaignResult,
    cases: u32,
) -> std::io::Result<()> {
    campaign::keep_regression(path, name, result.seed, cases)
}
