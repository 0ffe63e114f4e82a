//! The net_pcap topology (placeholder until the real binary is wired in).

use std::path::Path;

use super::{Kind, TopologyResult};
use crate::scenario::Scenario;

/// Runs a scenario through the `forwarder` binary.
pub fn run(
    _scenario_file: &Path,
    scenario: &Scenario,
    _bin: &Path,
    _work: &Path,
) -> Result<TopologyResult, String> {
    Ok(TopologyResult::skipped(
        &scenario.name,
        Kind::Pcap,
        "not wired yet".to_owned(),
    ))
}

/// The forwarder binary: `explicit`, `$L4LAB_FORWARDER`, or `forwarder` next to the
/// running executable (or one directory up, for test executables in `deps/`).
pub fn find_forwarder(explicit: Option<&Path>) -> Result<std::path::PathBuf, String> {
    let _ = explicit;
    Err("not wired".to_owned())
}
