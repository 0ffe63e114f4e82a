//! Topologies: the ways a scenario's capture reaches a balancer and its outputs come back
//! to the [`Checker`](crate::oracle::Checker).
//!
//! - [`inproc`]: the forwarder's dataplane library, no EAL; both directions (the
//!   [`responder`] plays the real servers), reply steering, per-packet drop reasons.
//! - [`pcap`]: the real `forwarder` binary on `net_pcap` with one rx/tx file per queue;
//!   client → server direction only (see the module documentation for why).
//!
//! This module and its children are the only part of the harness that depends on the
//! forwarder crate (to drive it); the oracle still shares no code with it. Everything a
//! topology finds is a [`Finding`] in a [`TopologyResult`], which `harness run` prints and
//! writes as JSON.
//!
//! [`ForwarderOptions`] set the balancer up beyond what the scenario says: a deliberate
//! fault ([`FaultConfig`], the forwarder's `[fault]` switch), so that a test can require
//! the checks to fail, and name the check that caught it.

pub mod inproc;
pub mod kernel;
pub mod pcap;
pub mod responder;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

pub use forwarder::dataplane::fault::{FaultConfig, FaultKind};

use crate::oracle::{DropReason, Failure, Report, Verdict};
use crate::scenario::Expect;

/// The balancer's MAC address in the standard captures (`harness pcaps gen`).
pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// The clients' MAC address in the standard captures: the forwarder's next hop.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The MAC address the responder (the real servers) sends from.
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x40];

/// How the balancer under test is set up beyond the scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwarderOptions {
    /// A fault the forwarder injects on purpose (`None`: it forwards correctly). A run
    /// with a fault that strikes must fail.
    pub fault: Option<FaultConfig>,
}

impl ForwarderOptions {
    /// Options with `fault` on.
    pub fn with_fault(fault: FaultConfig) -> Self {
        Self { fault: Some(fault) }
    }
}

/// Which topology ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The dataplane library in this process.
    Inproc,
    /// The `forwarder` binary on net_pcap files.
    Pcap,
}

impl Kind {
    /// The topology's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Inproc => "inproc",
            Kind::Pcap => "pcap",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failed check, as printed and written to JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check: the oracle's (`verdict`, `rewrite`, `checksum`, `ttl`, `stickiness`,
    /// `unique_local`, `rss_affinity`) or the topology's (`expect`, `drop_reason`,
    /// `counters`, `worker_affinity`, `redirects`).
    pub check: String,
    /// The packet (`input #N (capture #M)`, `output #N`, `worker N`, …).
    pub packet: String,
    /// The field.
    pub field: String,
    /// What was expected.
    pub expected: String,
    /// What was seen.
    pub got: String,
}

impl Finding {
    /// A finding of a topology check.
    pub fn new(
        check: &str,
        packet: impl Into<String>,
        field: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Self {
            check: check.to_owned(),
            packet: packet.into(),
            field: field.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    /// An oracle failure, with the packet described by `describe`.
    pub fn from_failure(
        f: &Failure,
        describe: impl Fn(&crate::oracle::PacketRef) -> String,
    ) -> Self {
        Self {
            check: f.check.name().to_owned(),
            packet: describe(&f.packet),
            field: f.field.clone(),
            expected: f.expected.clone(),
            got: f.got.clone(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}: expected {}, got {}",
            self.check, self.packet, self.field, self.expected, self.got
        )
    }
}

/// A finding the project knows about and accepts for now (printed loudly, never silent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownDifference {
    /// The finding.
    pub finding: Finding,
    /// Why it is accepted, and where it is tracked.
    pub why: String,
}

/// Counters of one worker as the balancer reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerCounts {
    /// Worker id.
    pub worker: u16,
    /// Packets received (including redirected-in ones).
    pub rx: u64,
    /// Packets transmitted.
    pub tx: u64,
    /// Drops by reason (the forwarder's names), zero reasons left out.
    pub drops: BTreeMap<String, u64>,
    /// Packets passed to another worker.
    pub redirects: u64,
    /// Packets passed to the control plane.
    pub control: u64,
}

impl WorkerCounts {
    /// Total drops.
    pub fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }

    /// `rx = tx + drops + redirects + control`, or a finding.
    pub fn reconcile(&self) -> Option<Finding> {
        let out = self.tx + self.dropped() + self.redirects + self.control;
        (self.rx != out).then(|| {
            Finding::new(
                "counters",
                format!("worker {}", self.worker),
                "rx_packets",
                format!(
                    "tx {} + drops {} + redirects {} + control {} = {out}",
                    self.tx,
                    self.dropped(),
                    self.redirects,
                    self.control
                ),
                self.rx.to_string(),
            )
        })
    }
}

/// Packet counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Packets in the scenario's capture.
    pub capture: usize,
    /// Packets the checker saw entering the balancer (capture + responder replies).
    pub inputs: usize,
    /// Packets the checker saw leaving it.
    pub outputs: usize,
    /// Replies the responder sent.
    pub replies: usize,
    /// Capture packets the oracle expected forwarded.
    pub expected_forward: usize,
    /// Capture packets the oracle expected dropped, by reason.
    pub expected_drops: BTreeMap<String, usize>,
    /// Connections the oracle tracked.
    pub connections: usize,
    /// The balancer's counters per worker.
    pub workers: Vec<WorkerCounts>,
    /// The fault the balancer injected on purpose (`KIND:EVERY`), if any.
    pub fault: Option<String>,
    /// Packets the fault changed, moved or dropped (0 without a fault).
    pub faults_injected: u64,
}

/// The result of one scenario on one topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologyResult {
    /// The scenario's name.
    pub scenario: String,
    /// The topology.
    pub topology: Kind,
    /// No failures (known differences do not count).
    pub passed: bool,
    /// Set when the topology could not run (a prerequisite is missing); not a failure.
    pub skipped: Option<String>,
    /// What was counted.
    pub counts: Counts,
    /// Every failed check.
    pub failures: Vec<Finding>,
    /// Findings accepted on purpose, each with its reason.
    pub known_differences: Vec<KnownDifference>,
    /// Wall time of the run.
    pub millis: u64,
    /// The mismatching packets, once written.
    pub mismatches: Option<String>,
    /// Packets for the mismatch capture (not serialised).
    #[serde(skip)]
    pub mismatch_frames: Vec<Vec<u8>>,
}

impl TopologyResult {
    /// A result for a topology that did not run.
    pub fn skipped(scenario: &str, topology: Kind, why: String) -> Self {
        Self {
            scenario: scenario.to_owned(),
            topology,
            passed: true,
            skipped: Some(why),
            counts: Counts::default(),
            failures: Vec::new(),
            known_differences: Vec::new(),
            millis: 0,
            mismatches: None,
            mismatch_frames: Vec::new(),
        }
    }

    /// Moves the findings listed in [`KNOWN`] for this scenario and topology into
    /// `known_differences` and sets `passed`.
    pub fn settle(&mut self) {
        let mut kept = Vec::new();
        for f in std::mem::take(&mut self.failures) {
            match KNOWN
                .iter()
                .find(|k| k.matches(&self.scenario, self.topology, &f))
            {
                Some(k) => self.known_differences.push(KnownDifference {
                    finding: f,
                    why: k.why.to_owned(),
                }),
                None => kept.push(f),
            }
        }
        self.failures = kept;
        self.passed = self.failures.is_empty();
    }
}

/// A finding accepted on purpose: every field must match exactly (`None` = any).
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// Scenario name.
    pub scenario: &'static str,
    /// Topology.
    pub topology: Kind,
    /// Check name.
    pub check: &'static str,
    /// Field.
    pub field: &'static str,
    /// The finding's packet must contain this (`""` = any packet).
    pub packet_contains: &'static str,
    /// The finding's `got` must contain this (or equal it, with `got_exact`).
    pub got_contains: &'static str,
    /// `got` must equal `got_contains` (for bare numbers).
    pub got_exact: bool,
    /// Why.
    pub why: &'static str,
}

impl Known {
    fn matches(&self, scenario: &str, topology: Kind, f: &Finding) -> bool {
        self.scenario == scenario
            && self.topology == topology
            && self.check == f.check
            && self.field == f.field
            && f.packet.contains(self.packet_contains)
            && if self.got_exact {
                f.got == self.got_contains
            } else {
                f.got.contains(self.got_contains)
            }
    }
}

/// The known differences between the forwarder and the oracle, each one precise (scenario,
/// topology, check, field, what was seen). Empty means none are accepted.
pub const KNOWN: &[Known] = &[];

/// Reads `NAME.expect` next to a scenario file: `(index, "forward" | "drop REASON")`.
pub fn read_expect_file(path: &Path) -> Result<Vec<(usize, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (regenerate with `harness pcaps gen`)",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (index, verdict) = line
            .split_once(' ')
            .ok_or_else(|| format!("{}:{}: expected `INDEX VERDICT`", path.display(), n + 1))?;
        let index: usize = index.parse().map_err(|_| {
            format!(
                "{}:{}: {index:?} is not a packet index",
                path.display(),
                n + 1
            )
        })?;
        out.push((index, verdict.trim().to_owned()));
    }
    Ok(out)
}

/// Compares the oracle's verdicts on the capture's packets with the scenario's `.expect`
/// lines and `[expect]` counts; `verdicts[i]` is capture packet i's verdict.
pub fn check_expectations(
    verdicts: &[Verdict],
    expect_lines: Option<&[(usize, String)]>,
    expect: Option<&Expect>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(lines) = expect_lines {
        if lines.len() != verdicts.len() {
            out.push(Finding::new(
                "expect",
                "capture",
                "lines",
                format!("{} lines (one per packet)", verdicts.len()),
                lines.len().to_string(),
            ));
        }
        for (index, want) in lines {
            let got = verdicts
                .get(*index)
                .map_or_else(|| "no such packet".to_owned(), Verdict::describe);
            if *want != got {
                out.push(Finding::new(
                    "expect",
                    format!("capture #{index}"),
                    "verdict",
                    format!("{want} (.expect)"),
                    format!("{got} (oracle)"),
                ));
            }
        }
    }
    if let Some(expect) = expect {
        let mut report = Report::default();
        for v in verdicts {
            match v {
                Verdict::Forward { .. } => report.expected_forward += 1,
                Verdict::Drop(r) => *report.expected_drops.entry(*r).or_insert(0) += 1,
            }
        }
        for f in report.against_expect(expect) {
            out.push(Finding::new(
                "expect", "capture", f.field, f.expected, f.got,
            ));
        }
    }
    out
}

/// Capture-only verdict counts for [`Counts`].
pub fn verdict_counts(verdicts: &[Verdict]) -> (usize, BTreeMap<String, usize>) {
    let mut forward = 0;
    let mut drops = BTreeMap::new();
    for v in verdicts {
        match v {
            Verdict::Forward { .. } => forward += 1,
            Verdict::Drop(r) => *drops.entry(r.name().to_owned()).or_insert(0) += 1,
        }
    }
    (forward, drops)
}

/// The oracle's drop reasons a forwarder drop reason (by name) may stand for. The two
/// vocabularies differ in grain: the forwarder says why in more detail.
pub fn compatible(oracle: DropReason, forwarder: &str) -> bool {
    let accepted: &[&str] = match oracle {
        DropReason::Malformed => &[
            "truncated",
            "bad_ip_header",
            "bad_l4_header",
            "bad_tcp_options",
        ],
        DropReason::BadChecksum => &["bad_ip_checksum", "bad_l4_checksum"],
        DropReason::NotIp => &["unknown_ethertype", "control"],
        DropReason::Fragment => &["fragment"],
        DropReason::NoService => &["no_service", "not_for_us", "unsupported"],
        DropReason::TtlExpired => &["ttl_exceeded"],
        DropReason::NoConnection => &["no_connection"],
        DropReason::IcmpUnrelated => &["icmp_unsupported", "no_connection"],
    };
    accepted.contains(&forwarder)
}
