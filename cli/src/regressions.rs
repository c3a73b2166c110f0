//! The regressions file of `ipc-harness check`: the random seeds with which a
//! transport broke a promise, one `transport<TAB>seed<TAB>cases` line each,
//! replayed first by later runs.

use std::io::Write;

use ipc_harness::harness::campaign::CampaignResult;

/// The `(transport, seed, cases)` lines of the regressions file at `path`;
/// a missing file is an empty list.
pub fn read(path: &std::path::Path) -> Vec<(String, u64, u32)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let name = f.next()?.to_string();
            let seed = f.next()?.trim().parse().ok()?;
            let cases = f.next()?.trim().parse().ok()?;
            Some((name, seed, cases))
        })
        .collect()
}

/// Appends `result`'s seed for the transport `name` to the file at `path`
/// (creating it, and its directory, with a header), unless it is there.
pub fn append(
    path: &std::path::Path,
    name: &str,
    result: &CampaignResult,
    cases: u32,
) -> std::io::Result<()> {
    if read(path).iter().any(|r| r.0 == name && r.1 == result.seed) {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(
            f,
            "# Seeds with which `ipc-harness check` found a broken promise: transport, seed, cases.\n# Later runs replay them first. Commit this file."
        )?;
    }
    writeln!(f, "{name}\t{}\t{cases}", result.seed)
}
