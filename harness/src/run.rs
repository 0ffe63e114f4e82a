//! `harness run`: scenarios through topologies, a summary line per scenario and topology,
//! every failure, the mismatching packets as a capture and a JSON result per run:
//!
//! ```text
//! OUT/scenarios/<scenario>-<topology>.json   scenario, topology, passed, counts, failures
//! OUT/mismatches/<scenario>-<topology>.pcap  the packets that failed a check
//! OUT/summary.json                           every result, and passed
//! OUT/work/<scenario>/                       a failed pcap run's files: q*.pcap, o*.pcap,
//!                                            forwarder.toml, forwarder.log, stats.json
//! ```
//!
//! A topology whose prerequisite is missing (the `forwarder` binary not built) is skipped
//! with a message; that is not a failure.
//!
//! `--fault KIND[:EVERY]` runs the forwarder with that fault injected on purpose (its
//! `[fault]` switch) and turns the run into a test of the harness: it succeeds when every
//! run in which the fault struck failed a check, and fails when one of them passed (the
//! harness missed a broken forwarder) or when the fault never struck at all.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::capture::{self, Frame};
use crate::scenario::Scenario;
use crate::topology::{inproc, pcap, FaultConfig, ForwarderOptions, Kind, TopologyResult};

/// Errors that stop a run before any result (bad arguments, unreadable scenario list).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario directory cannot be listed.
    #[error("{path}: {source} (give a directory of scenario .toml files)")]
    List {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No scenario found.
    #[error("{0}: no scenario .toml files there")]
    Empty(PathBuf),
    /// The output directory cannot be written.
    #[error("{path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The topologies to run each scenario on.
    pub topologies: Vec<Kind>,
    /// Where results go.
    pub out: PathBuf,
    /// The forwarder binary for the pcap topology (`None`: look for it).
    pub forwarder: Option<PathBuf>,
    /// Print progress and failures to stdout.
    pub verbose: bool,
    /// A fault for the forwarder to inject (`None`: it forwards correctly).
    pub fault: Option<FaultConfig>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// No failure in any result.
    pub passed: bool,
    /// One per scenario and topology.
    pub results: Vec<TopologyResult>,
    /// Wall time.
    pub millis: u64,
}

/// The scenario files of a directory (`*.toml`), sorted.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, RunError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RunError::List {
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(RunError::Empty(dir.to_owned()));
    }
    Ok(files)
}

/// Runs one scenario file on one topology; a scenario that cannot load or a topology
/// that cannot start is a failed result, not an error.
pub fn run_one(file: &Path, kind: Kind, opts: &RunOptions) -> TopologyResult {
    let stem = file.file_stem().map_or_else(
        || "scenario".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(e) => return errored(&stem, kind, e.to_string()),
    };
    let fwd = ForwarderOptions { fault: opts.fault };
    let outcome = match kind {
        Kind::Inproc => inproc::run_with(file, &scenario, &fwd),
        Kind::Pcap => match pcap::find_forwarder(opts.forwarder.as_deref()) {
            Err(why) => Ok(TopologyResult::skipped(&scenario.name, kind, why)),
            Ok(bin) => {
                // The forwarder's files stay for a failed run only.
                let work = opts.out.join("work").join(&stem);
                let r = pcap::run_with(file, &scenario, &bin, &work, &fwd);
                if r.as_ref().is_ok_and(|r| r.passed) {
                    let _ = std::fs::remove_dir_all(&work);
                    let _ = std::fs::remove_dir(opts.out.join("work"));
                }
                r
            }
        },
    };
    outcome.unwrap_or_else(|e| errored(&scenario.name, kind, e))
}

fn errored(scenario: &str, kind: Kind, message: String) -> TopologyResult {
    let mut r = TopologyResult::skipped(scenario, kind, String::new());
    r.skipped = None;
    r.passed = false;
    r.failures.push(crate::topology::Finding::new(
        "run",
        "scenario",
        "error",
        "the topology runs",
        message,
    ));
    r
}

/// Runs scenario files on the chosen topologies, writes the results under `opts.out` and
/// prints them.
pub fn run_files(files: &[PathBuf], opts: &RunOptions) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let scen_dir = opts.out.join("scenarios");
    let mism_dir = opts.out.join("mismatches");
    for d in [&scen_dir, &mism_dir] {
        std::fs::create_dir_all(d).map_err(|e| RunError::Write {
            path: d.clone(),
            message: e.to_string(),
        })?;
    }
    let mut results = Vec::new();
    for file in files {
        let stem = file.file_stem().map_or_else(
            || "scenario".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        for &kind in &opts.topologies {
            let mut r = run_one(file, kind, opts);
            if !r.mismatch_frames.is_empty() {
                let path = mism_dir.join(format!("{stem}-{kind}.pcap"));
                let frames: Vec<Frame> = r
                    .mismatch_frames
                    .iter()
                    .enumerate()
                    .map(|(i, d)| Frame::new(std::time::Duration::from_secs(i as u64), d.clone()))
                    .collect();
                capture::write(&path, &frames).map_err(|e| RunError::Write {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                r.mismatches = Some(path.display().to_string());
            }
            let json_path = scen_dir.join(format!("{stem}-{kind}.json"));
            write_json(&json_path, &r)?;
            if opts.verbose {
                print!("{}", render(&r));
            }
            results.push(r);
        }
    }
    let summary = RunSummary {
        passed: results.iter().all(|r| r.passed),
        results,
        millis: started.elapsed().as_millis() as u64,
    };
    write_json(&opts.out.join("summary.json"), &summary)?;
    if opts.verbose {
        let ran = summary
            .results
            .iter()
            .filter(|r| r.skipped.is_none())
            .count();
        let failed = summary.results.iter().filter(|r| !r.passed).count();
        let skipped = summary.results.len() - ran;
        let known: usize = summary
            .results
            .iter()
            .map(|r| r.known_differences.len())
            .sum();
        println!(
            "harness run: {ran} runs, {failed} failed, {skipped} skipped, {known} known differences, {} ms; results in {}",
            summary.millis,
            opts.out.display()
        );
    }
    Ok(summary)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| RunError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|e| RunError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The summary line of a result, then one line per failure and per known difference.
pub fn render(r: &TopologyResult) -> String {
    let mut s = String::new();
    if let Some(why) = &r.skipped {
        s.push_str(&format!(
            "SKIP {:<12} {:<7} {why}\n",
            r.scenario, r.topology
        ));
        return s;
    }
    let c = &r.counts;
    let drops: Vec<String> = c
        .expected_drops
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    s.push_str(&format!(
        "{} {:<12} {:<7} capture {} in {} out {} replies {} conns {}; expected forward {} drop [{}]; {} failures, {} known; {} ms\n",
        match (r.passed, r.known_differences.is_empty()) {
            (false, _) => "FAIL",
            (true, true) => "PASS",
            (true, false) => "KNOWN",
        },
        r.scenario,
        r.topology,
        c.capture,
        c.inputs,
        c.outputs,
        c.replies,
        c.connections,
        c.expected_forward,
        drops.join(", "),
        r.failures.len(),
        r.known_differences.len(),
        r.millis
    ));
    if let Some(fault) = &c.fault {
        let verdict = match (c.faults_injected, r.passed) {
            (0, _) => "it never struck (nothing in this scenario is eligible)",
            (_, false) => "caught",
            (_, true) => "NOT CAUGHT: the harness passed a broken forwarder",
        };
        s.push_str(&format!(
            "    FAULT {fault} injected into {} packets: {verdict}\n",
            c.faults_injected
        ));
    }
    for f in &r.failures {
        s.push_str(&format!("    {f}\n"));
    }
    let mut whys: Vec<&str> = Vec::new();
    for k in &r.known_differences {
        s.push_str(&format!("    KNOWN DIFFERENCE: {}\n", k.finding));
        if !whys.contains(&k.why.as_str()) {
            whys.push(&k.why);
        }
    }
    for why in whys {
        s.push_str(&format!("    KNOWN DIFFERENCE, why: {why}\n"));
    }
    if let Some(m) = &r.mismatches {
        s.push_str(&format!("    mismatching packets → {m}\n"));
    }
    s
}

/// The arguments of `harness run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// One scenario file.
    #[arg(long, conflicts_with = "all")]
    pub scenario: Option<PathBuf>,
    /// Every `*.toml` scenario of a directory.
    #[arg(long)]
    pub all: Option<PathBuf>,
    /// inproc (dataplane library), pcap (forwarder binary on net_pcap), or all.
    #[arg(long, value_enum, default_value = "inproc")]
    pub topology: TopologyArg,
    /// Output directory (default results/run-<unix seconds>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The forwarder binary (default: $L4LAB_FORWARDER, else next to this executable).
    #[arg(long)]
    pub forwarder: Option<PathBuf>,
    /// Inject a fault into the forwarder, KIND[:EVERY] (wrong_local_port, bad_checksum,
    /// wrong_worker, drop_packet, wrong_rs, reused_local_port; every EVERY-th eligible
    /// packet of each worker, default 1). The run then succeeds only if the checks catch it.
    #[arg(long, value_name = "KIND[:EVERY]")]
    pub fault: Option<FaultConfig>,
}

/// `--topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopologyArg {
    /// The dataplane library in process.
    Inproc,
    /// The forwarder binary on net_pcap.
    Pcap,
    /// Both.
    All,
}

/// `harness run`: Ok when every check passed.
pub fn run_cli(args: &RunArgs) -> Result<(), String> {
    let files = match (&args.scenario, &args.all) {
        (Some(file), _) => vec![file.clone()],
        (None, Some(dir)) => scenario_files(dir).map_err(|e| e.to_string())?,
        (None, None) => {
            return Err("give --scenario FILE or --all DIR (e.g. --all pcaps)".to_owned())
        }
    };
    let topologies = match args.topology {
        TopologyArg::Inproc => vec![Kind::Inproc],
        TopologyArg::Pcap => vec![Kind::Pcap],
        TopologyArg::All => vec![Kind::Inproc, Kind::Pcap],
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("results/run-{secs}"))
    });
    let opts = RunOptions {
        topologies,
        out,
        forwarder: args.forwarder.clone(),
        verbose: true,
        fault: args.fault,
    };
    let summary = run_files(&files, &opts).map_err(|e| e.to_string())?;
    match args.fault {
        None if summary.passed => Ok(()),
        None => Err("some checks failed (see above)".to_owned()),
        Some(fault) => fault_verdict(fault, &summary),
    }
}

/// A run with a fault: Ok when every result the fault struck failed a check.
pub fn fault_verdict(fault: FaultConfig, summary: &RunSummary) -> Result<(), String> {
    let struck: Vec<&TopologyResult> = summary
        .results
        .iter()
        .filter(|r| r.skipped.is_none() && r.counts.faults_injected > 0)
        .collect();
    let missed: Vec<String> = struck
        .iter()
        .filter(|r| r.passed)
        .map(|r| format!("{} ({})", r.scenario, r.topology))
        .collect();
    if struck.is_empty() {
        Err(format!(
            "fault {fault} never struck: choose a scenario with packets it applies to"
        ))
    } else if !missed.is_empty() {
        Err(format!(
            "fault {fault} was injected but the checks passed: {} (the harness misses it)",
            missed.join(", ")
        ))
    } else {
        println!(
            "harness run: fault {fault} caught in all {} runs where it struck",
            struck.len()
        );
        Ok(())
    }
}
