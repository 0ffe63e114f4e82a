//! The results of one run and the history of runs (issue 7).
//!
//! A run directory `results/<UTC date>-<short commit>/` is filled by other tools; this
//! module reads what is there and assembles it into one [`Run`] (`run.json`):
//!
//! - `scenarios/*.json`: correctness results, each file one object or an array of
//!   objects `{"scenario", "topology", "passed", "failures": ["…"]}`.
//! - `bench.json`: throughput figures, `{"metrics": [M, …]}` or a bare `[M, …]` where
//!   `M = {"name", "value", "unit", "ceiling"?, "ratio"?, "samples"?}`. Names read
//!   `<mode>/<frame>/<workers>/<traffic>/<figure>`, e.g. `fullnat/64B/1w/new-conn/pdr_mpps`;
//!   `ceiling` is the same figure for dpdk-testpmd in the same run.
//! - `smoke.json`: the `loopback_bench` smoke result of `ci/suite` (Rust vs C on one
//!   `net_ring` port); it becomes the metric [`SMOKE_METRIC`] with C as the ceiling.
//!
//! Readers are tolerant: a missing file is no data; an unreadable or malformed one is
//! noted in [`Run::warnings`] (and an unreadable scenario file counts as a failed check,
//! since a result that cannot be read cannot be trusted to have passed). Nothing here
//! panics on file input.
//!
//! `results/history.jsonl` holds one [`Summary`] line per run, oldest first.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The metric made from `smoke.json`: Rust's rate, with the C loop as its ceiling.
pub const SMOKE_METRIC: &str = "smoke/ring-loopback/64B/1w/rust_mpps";

/// What can go wrong reading or writing results.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `run.json` exists but is not a run.
    #[error("{path}: not a run file ({message}); delete it to assemble the run again")]
    BadRun {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The run directory does not exist.
    #[error("{path}: no such run directory (ci/suite writes results/<UTC date>-<commit>/)")]
    NoRunDir {
        /// The directory.
        path: PathBuf,
    },
    /// Serialising failed (should not happen for these types).
    #[error("cannot serialise {what}: {message}")]
    Serialise {
        /// What was being written.
        what: &'static str,
        /// The serialiser's message.
        message: String,
    },
}

/// The machine a run was measured on. Runs are compared only within one fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs this process may use.
    pub cores: u32,
    /// `pkg-config --modversion libdpdk`.
    pub dpdk: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
}

/// One scenario on one topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: String,
    /// Topology name (in-process, pcap, memif, …).
    #[serde(default)]
    pub topology: String,
    /// Whether every check passed (a skipped result passes).
    pub passed: bool,
    /// Why it did not run, if it did not (a prerequisite missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What failed, one line each.
    #[serde(default)]
    pub failures: Vec<String>,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// `<mode>/<frame>/<workers>/<traffic>/<figure>`.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`Mpps`, `us`, …).
    #[serde(default)]
    pub unit: String,
    /// The same figure for the ceiling (testpmd) in the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<f64>,
    /// `value / ceiling`: what trending classifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The trials behind `value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

/// One run: `results/<run>/run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The run directory's name, `<UTC date>-<short commit>`.
    pub id: String,
    /// Short commit hash.
    pub commit: String,
    /// UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// The machine.
    pub fingerprint: Fingerprint,
    /// Correctness results.
    #[serde(default)]
    pub correctness: Vec<ScenarioResult>,
    /// Throughput and latency figures.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Input files that were present but could not be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One metric in a history line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The figure.
    pub value: f64,
    /// Its ratio to the same-run ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The run directory's name.
    pub run: String,
    /// Short commit hash.
    pub commit: String,
    /// UTC date.
    pub date: String,
    /// [`Fingerprint::id`] of the machine.
    pub fingerprint: String,
    /// Scenario × topology results that passed.
    #[serde(default)]
    pub passed: usize,
    /// … and that failed.
    #[serde(default)]
    pub failed: usize,
    /// Each metric's value and ratio, by name.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricPoint>,
}

/// A history file's lines, and the lines that could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Oldest first.
    pub runs: Vec<Summary>,
    /// `line N: why` for each line left out.
    pub warnings: Vec<String>,
}

impl Fingerprint {
    /// This machine, now. Whatever cannot be found reads `unknown`.
    pub fn probe() -> Self {
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim() == "model name")
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cores = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let dpdk = Command::new("pkg-config")
            .args(["--modversion", "libdpdk"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            cpu_model,
            cores,
            dpdk,
            kernel,
        }
    }

    /// A short stable id: 64-bit FNV-1a of the four fields, 12 hex digits.
    pub fn id(&self) -> String {
        let text = format!(
            "{}\n{}\n{}\n{}",
            self.cpu_model, self.cores, self.dpdk, self.kernel
        );
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{:012x}", h >> 16)
    }
}

impl Run {
    /// Scenario × topology results that failed.
    pub fn failures(&self) -> impl Iterator<Item = &ScenarioResult> {
        self.correctness.iter().filter(|s| !s.passed)
    }

    /// This run's history line.
    pub fn summary(&self) -> Summary {
        let failed = self.failures().count();
        Summary {
            run: self.id.clone(),
            commit: self.commit.clone(),
            date: self.date.clone(),
            fingerprint: self.fingerprint.id(),
            passed: self.correctness.len() - failed,
            failed,
            metrics: self
                .metrics
                .iter()
                .filter(|m| m.value.is_finite())
                .map(|m| {
                    (
                        m.name.clone(),
                        MetricPoint {
                            value: m.value,
                            ratio: m.ratio.filter(|r| r.is_finite()),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Assembles the run in `dir` from the files other tools wrote.
///
/// Identity (commit, date, fingerprint) comes from an existing `run.json` if there is
/// one, else from the directory's name and `probe` (called only then). Results come from
/// `scenarios/`, `bench.json` and `smoke.json`; if none of those exist, an existing
/// `run.json`'s results are kept.
pub fn assemble_run(dir: &Path, probe: impl FnOnce() -> Fingerprint) -> Result<Run, HistoryError> {
    if !dir.is_dir() {
        return Err(HistoryError::NoRunDir {
            path: dir.to_owned(),
        });
    }
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_owned());
    let existing = read_run(&dir.join("run.json"))?;
    let mut warnings = Vec::new();
    let scenarios = read_scenarios(&dir.join("scenarios"), &mut warnings);
    let mut metrics = read_bench(&dir.join("bench.json"), &mut warnings);
    metrics.extend(read_smoke(&dir.join("smoke.json"), &mut warnings));
    let have_parts = scenarios.is_some() || !metrics.is_empty() || !warnings.is_empty();
    if let Some(mut run) = existing {
        run.id = id;
        if have_parts {
            run.correctness = scenarios.unwrap_or_default();
            run.metrics = metrics;
            run.warnings = warnings;
        }
        return Ok(run);
    }
    let (date, commit) = split_run_name(&id).unwrap_or_else(|| (utc_date_now(), "unknown".into()));
    Ok(Run {
        id,
        commit,
        date,
        fingerprint: probe(),
        correctness: scenarios.unwrap_or_default(),
        metrics,
        warnings,
    })
}

/// Reads `run.json`; a missing file is `None`.
pub fn read_run(path: &Path) -> Result<Option<Run>, HistoryError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HistoryError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| HistoryError::BadRun {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Writes `run.json` into `dir`.
pub fn write_run(run: &Run, dir: &Path) -> Result<PathBuf, HistoryError> {
    let path = dir.join("run.json");
    let mut text = serde_json::to_string_pretty(run).map_err(|e| HistoryError::Serialise {
        what: "run.json",
        message: e.to_string(),
    })?;
    text.push('\n');
    write_file(&path, &text)?;
    Ok(path)
}

/// `YYYY-MM-DD-<commit>` → (date, commit).
fn split_run_name(name: &str) -> Option<(String, String)> {
    let date = name.get(..10)?;
    let commit = name.get(11..)?;
    let ok = date.bytes().enumerate().all(|(i, b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    }) && name.as_bytes().get(10) == Some(&b'-')
        && !commit.is_empty();
    ok.then(|| (date.to_owned(), commit.to_owned()))
}

/// Today's UTC date, `YYYY-MM-DD`.
pub fn utc_date_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `scenarios/*.json`, by file name. `None` when the directory does not exist.
fn read_scenarios(dir: &Path, warnings: &mut Vec<String>) -> Option<Vec<ScenarioResult>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!("{}: {e}", dir.display()));
            return None;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let parsed = fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            .and_then(|v| match v {
                Value::Array(items) => items.iter().map(scenario_result).collect(),
                other => scenario_result(&other).map(|r| vec![r]),
            });
        match parsed {
            Ok(rs) => out.extend(rs),
            Err(message) => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                warnings.push(format!("{}: {message}", path.display()));
                out.push(ScenarioResult {
                    scenario: stem,
                    topology: "unknown".to_owned(),
                    passed: false,
                    skipped: None,
                    failures: vec![format!(
                        "result file {} is unreadable: {message}",
                        path.display()
                    )],
                });
            }
        }
    }
    Some(out)
}

/// One result object: `scenario` and `passed` are required; `topology` may be any JSON
/// value; each failure may be a string or an object (`harness run` writes findings
/// `{check, packet, field, expected, got}`), which becomes one line.
fn scenario_result(v: &Value) -> Result<ScenarioResult, String> {
    let scenario = v
        .get("scenario")
        .and_then(Value::as_str)
        .ok_or("a result without a \"scenario\" string")?;
    let passed = v
        .get("passed")
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("result {scenario:?} without a \"passed\" boolean"))?;
    let topology = match v.get("topology") {
        Some(Value::String(t)) => t.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    let skipped = v.get("skipped").and_then(|s| match s {
        Value::Null | Value::Bool(false) => None,
        Value::String(why) => Some(why.clone()),
        other => Some(other.to_string()),
    });
    let failures = v
        .get("failures")
        .and_then(Value::as_array)
        .map(|fs| fs.iter().map(failure_line).collect())
        .unwrap_or_default();
    Ok(ScenarioResult {
        scenario: scenario.to_owned(),
        topology,
        passed,
        skipped,
        failures,
    })
}

fn failure_line(f: &Value) -> String {
    if let Some(s) = f.as_str() {
        return s.to_owned();
    }
    let field = |k: &str| f.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    match (field("check"), field("expected"), field("got")) {
        (Some(check), Some(expected), Some(got)) => {
            let place: Vec<&str> = [field("packet"), field("field")]
                .into_iter()
                .flatten()
                .collect();
            format!(
                "{check} {}: expected {expected}, got {got}",
                place.join(" ")
            )
        }
        _ => f.to_string(),
    }
}

/// Reads a JSON file; missing → `None`, unreadable → a warning and `None`.
fn read_json(path: &Path, warnings: &mut Vec<String>) -> Option<Value> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!("{}: {e}", path.display()));
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            warnings.push(format!("{}: not JSON ({e})", path.display()));
            None
        }
    }
}

/// `bench.json`: `{"metrics": [...]}` or `[...]`; entries without a name and a finite
/// value are left out with a warning. A missing ratio is computed from the ceiling.
fn read_bench(path: &Path, warnings: &mut Vec<String>) -> Vec<Metric> {
    let Some(v) = read_json(path, warnings) else {
        return Vec::new();
    };
    let list = match &v {
        Value::Array(a) => a.as_slice(),
        Value::Object(o) => match (o.get("metrics"), o.get("points")) {
            (Some(Value::Array(a)), _) => a.as_slice(),
            (None, Some(Value::Array(points))) => return bench_points(points, path, warnings),
            _ => {
                warnings.push(format!(
                    "{}: no \"metrics\" or \"points\" array",
                    path.display()
                ));
                return Vec::new();
            }
        },
        _ => {
            warnings.push(format!("{}: not an object or array", path.display()));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let name = entry.get("name").and_then(Value::as_str);
        let value = entry.get("value").and_then(Value::as_f64);
        let (Some(name), Some(value)) = (name, value.filter(|v| v.is_finite())) else {
            warnings.push(format!(
                "{}: metric {i} has no \"name\" or no finite \"value\"; left out",
                path.display()
            ));
            continue;
        };
        let num = |k: &str| {
            entry
                .get(k)
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite())
        };
        let ceiling = num("ceiling");
        let ratio = num("ratio").or_else(|| ceiling.filter(|c| *c > 0.0).map(|c| value / c));
        let samples = entry
            .get("samples")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        out.push(Metric {
            name: name.to_owned(),
            value,
            unit: entry
                .get("unit")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            ceiling,
            ratio,
            samples,
        });
    }
    out
}

/// `harness bench`'s `points`: per point, NDR and PDR in packets the device forwarded
/// with the same run's testpmd ceiling and ratio, and the p99 latency at each fraction of
/// PDR (lower is better, no ceiling). Names: `<mode>/<frame>B/<workers>w/<traffic>/…`;
/// frame 64 and 1 worker unless the point's `spec` says otherwise.
fn bench_points(points: &[Value], path: &Path, warnings: &mut Vec<String>) -> Vec<Metric> {
    let mut out = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let spec = p.get("spec");
        let text = |k: &str| spec.and_then(|s| s.get(k)).and_then(Value::as_str);
        let count = |k: &str, default: u64| {
            spec.and_then(|s| s.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(default)
        };
        let (Some(mode), Some(traffic)) = (text("mode"), text("traffic")) else {
            warnings.push(format!(
                "{}: point {i} has no spec.mode or spec.traffic; left out",
                path.display()
            ));
            continue;
        };
        let traffic = match traffic {
            "newconn" | "new-conn" | "new_conn" => "new-conn",
            other => other,
        };
        let prefix = format!(
            "{mode}/{}B/{}w/{traffic}",
            count("frame", 64),
            count("workers", 1)
        );
        let num = |k: &str| p.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
        for goal in ["ndr", "pdr"] {
            let Some(value) =
                num(&format!("{goal}_dut_mpps")).or_else(|| num(&format!("{goal}_mpps")))
            else {
                continue;
            };
            let ceiling = num(&format!("ceiling_{goal}_mpps"));
            out.push(Metric {
                name: format!("{prefix}/{goal}_mpps"),
                value,
                unit: "Mpps".to_owned(),
                ceiling,
                ratio: num(&format!("ratio_{goal}"))
                    .or_else(|| ceiling.filter(|c| *c > 0.0).map(|c| value / c)),
                samples: Vec::new(),
            });
        }
        for lat in p
            .get("latency")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let fraction = lat.get("fraction_of_pdr").and_then(Value::as_f64);
            let p99 = lat.get("p99_ns").and_then(Value::as_f64);
            if let (Some(f), Some(ns)) = (fraction, p99) {
                out.push(Metric {
                    name: format!("{prefix}/latency_p99_us_at_{:.0}pct_pdr", f * 100.0),
                    value: ns / 1e3,
                    unit: "us".to_owned(),
                    ceiling: None,
                    ratio: None,
                    samples: Vec::new(),
                });
            }
        }
    }
    out
}

/// Reads a baseline (`results/baseline.json`: the shape of `bench.json`, plus any
/// comment fields). A missing file is no baseline; unusable entries are noted in
/// `warnings`.
pub fn load_baseline(path: &Path, warnings: &mut Vec<String>) -> Vec<Metric> {
    read_bench(path, warnings)
}

/// `smoke.json` from `loopback_bench --json`: Rust's Mpps with C's as the ceiling.
fn read_smoke(path: &Path, warnings: &mut Vec<String>) -> Option<Metric> {
    let v = read_json(path, warnings)?;
    let num = |k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite() && *x > 0.0)
    };
    let rust = num("rust_mpps").or_else(|| num("rust_ns_per_pkt").map(|ns| 1e3 / ns));
    let c = num("c_mpps").or_else(|| num("c_ns_per_pkt").map(|ns| 1e3 / ns));
    let Some(rust) = rust else {
        warnings.push(format!(
            "{}: no \"rust_mpps\" or \"rust_ns_per_pkt\"",
            path.display()
        ));
        return None;
    };
    Some(Metric {
        name: SMOKE_METRIC.to_owned(),
        value: rust,
        unit: "Mpps".to_owned(),
        ceiling: c,
        ratio: c.map(|c| rust / c),
        samples: Vec::new(),
    })
}

/// Reads `history.jsonl`. A missing file is an empty history; a line that is not a
/// summary is left out with a warning.
pub fn load_history(path: &Path) -> Result<History, HistoryError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(History::default()),
        Err(source) => {
            return Err(HistoryError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut history = History::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Summary>(line) {
            Ok(s) => history.runs.push(s),
            Err(e) => history.warnings.push(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(history)
}

/// Adds `summary` to the history file: replaces the line of the same run on the same
/// machine (a report made twice), else appends. Unreadable lines are kept as they were.
pub fn append_history(path: &Path, summary: &Summary) -> Result<(), HistoryError> {
    let line = serde_json::to_string(summary).map_err(|e| HistoryError::Serialise {
        what: "history line",
        message: e.to_string(),
    })?;
    let old = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(HistoryError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut out = String::with_capacity(old.len() + line.len() + 1);
    let mut replaced = false;
    for l in old.lines().filter(|l| !l.trim().is_empty()) {
        let same = serde_json::from_str::<Summary>(l)
            .is_ok_and(|s| s.run == summary.run && s.fingerprint == summary.fingerprint);
        if same && !replaced {
            out.push_str(&line);
            replaced = true;
        } else if !same {
            out.push_str(l);
        } else {
            continue;
        }
        out.push('\n');
    }
    if !replaced {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| HistoryError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    write_file(path, &out)
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), HistoryError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|source| HistoryError::Io {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprint {
        Fingerprint {
            cpu_model: "Test CPU".into(),
            cores: 2,
            dpdk: "22.11.4".into(),
            kernel: "6.1.0".into(),
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_419), (2025, 11, 27));
        assert_eq!(utc_date_now().len(), 10);
    }

    #[test]
    fn run_names() {
        assert_eq!(
            split_run_name("2026-11-27-68520a5"),
            Some(("2026-11-27".into(), "68520a5".into()))
        );
        assert_eq!(split_run_name("latest"), None);
        assert_eq!(split_run_name("2026-11-27-"), None);
    }

    #[test]
    fn fingerprint_id_is_stable_and_distinguishes() {
        let a = fp();
        let mut b = fp();
        b.cores = 4;
        assert_eq!(a.id(), fp().id());
        assert_eq!(a.id().len(), 12);
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn empty_dir_assembles_to_an_empty_run() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("2026-01-02-abc1234");
        fs::create_dir(&run_dir).unwrap();
        let run = assemble_run(&run_dir, fp).unwrap();
        assert_eq!(run.commit, "abc1234");
        assert_eq!(run.date, "2026-01-02");
        assert!(run.correctness.is_empty() && run.metrics.is_empty());
        assert!(run.warnings.is_empty());
    }

    #[test]
    fn tolerant_readers() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("r");
        fs::create_dir_all(run_dir.join("scenarios")).unwrap();
        fs::write(
            run_dir.join("scenarios/a.json"),
            r#"{"scenario":"a","topology":"inproc","passed":true}"#,
        )
        .unwrap();
        fs::write(run_dir.join("scenarios/b.json"), "{not json").unwrap();
        fs::write(
            run_dir.join("scenarios/c-pcap.json"),
            r#"{"scenario":"c","topology":"pcap","passed":false,"skipped":null,"counts":{},
               "failures":[{"check":"rewrite","packet":"output #3","field":"dst port",
                            "expected":"80","got":"8080"}]}"#,
        )
        .unwrap();
        fs::write(
            run_dir.join("scenarios/d-memif.json"),
            r#"{"scenario":"d","topology":"memif","passed":true,"skipped":"no forwarder"}"#,
        )
        .unwrap();
        fs::write(
            run_dir.join("bench.json"),
            r#"{"metrics":[{"name":"x","value":2.0,"ceiling":4.0},{"value":1}]}"#,
        )
        .unwrap();
        fs::write(
            run_dir.join("smoke.json"),
            r#"{"rust_ns_per_pkt":20.0,"c_ns_per_pkt":16.0}"#,
        )
        .unwrap();
        let run = assemble_run(&run_dir, fp).unwrap();
        assert_eq!(run.correctness.len(), 4);
        assert!(
            !run.correctness[1].passed,
            "an unreadable result is a failure"
        );
        assert_eq!(
            run.correctness[2].failures,
            vec!["rewrite output #3 dst port: expected 80, got 8080".to_owned()]
        );
        assert_eq!(run.correctness[3].skipped.as_deref(), Some("no forwarder"));
        assert_eq!(run.metrics.len(), 2);
        assert_eq!(run.metrics[0].ratio, Some(0.5));
        let smoke = &run.metrics[1];
        assert_eq!(smoke.name, SMOKE_METRIC);
        assert!((smoke.ratio.unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(run.warnings.len(), 2);
        assert_eq!(run.date.len(), 10);
    }

    #[test]
    fn harness_bench_points() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.json");
        fs::write(
            &path,
            r#"{"run":"r","points":[
                {"name":"fullnat-udp64-newconn","spec":{"mode":"fullnat","traffic":"newconn","flows":65536},
                 "ndr_mpps":1.0,"pdr_mpps":1.5,"ndr_dut_mpps":2.0,"pdr_dut_mpps":3.0,
                 "ceiling_ndr_mpps":10.0,"ceiling_pdr_mpps":12.0,"ratio_ndr":0.2,"ratio_pdr":0.25,
                 "latency":[{"fraction_of_pdr":0.9,"load_pps":1.0,"p50_ns":1000,"p90_ns":2000,"p99_ns":4500,"loss_ratio":0.0}]},
                {"name":"broken"}]}"#,
        )
        .unwrap();
        let mut warnings = Vec::new();
        let m = read_bench(&path, &mut warnings);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fullnat/64B/1w/new-conn/ndr_mpps",
                "fullnat/64B/1w/new-conn/pdr_mpps",
                "fullnat/64B/1w/new-conn/latency_p99_us_at_90pct_pdr"
            ]
        );
        assert_eq!(
            (m[1].value, m[1].ceiling, m[1].ratio),
            (3.0, Some(12.0), Some(0.25))
        );
        assert_eq!((m[2].value, m[2].ratio), (4.5, None));
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn the_committed_baseline_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/baseline.json");
        let mut warnings = Vec::new();
        let b = load_baseline(&path, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(b
            .iter()
            .any(|m| m.name == SMOKE_METRIC && m.ratio.is_some()));
        assert!(load_baseline(Path::new("/nonexistent/b.json"), &mut warnings).is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn history_appends_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        assert!(load_history(&path).unwrap().runs.is_empty());
        let mut run = Run {
            id: "2026-01-01-a".into(),
            commit: "a".into(),
            date: "2026-01-01".into(),
            fingerprint: fp(),
            correctness: vec![],
            metrics: vec![],
            warnings: vec![],
        };
        append_history(&path, &run.summary()).unwrap();
        fs::write(
            &path,
            format!("{}garbage\n", fs::read_to_string(&path).unwrap()),
        )
        .unwrap();
        run.id = "2026-01-02-b".into();
        append_history(&path, &run.summary()).unwrap();
        append_history(&path, &run.summary()).unwrap();
        let h = load_history(&path).unwrap();
        assert_eq!(h.runs.len(), 2);
        assert_eq!(h.warnings.len(), 1);
        assert_eq!(h.runs[1].run, "2026-01-02-b");
    }
}
