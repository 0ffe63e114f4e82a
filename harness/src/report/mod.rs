//! The report of one run against the history of its machine (issue 7):
//! `report.json`, `report.md`, `report.html` (static, inline SVG) and `report.xml`
//! (JUnit), written by `harness report`.
//!
//! What it says, in this order: the failed checks; the regressions and progressions that
//! started within the last 1, 7 and 30 runs; then one trend per metric. Trends use the
//! ratio to the same-run ceiling where the metric has one (absolute rates swing between
//! runs and machines; the ratio much less), and only the runs of the same machine
//! fingerprint. See [`crate::trend`] for how a regression is decided.

mod detail;
mod html;
mod json;
mod junit;
mod markdown;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::history::{
    self, Fingerprint, History, HistoryError, Metric, MetricPoint, Run, ScenarioResult, Summary,
};
use crate::trend::{self, Analysis, Class, Direction};

/// The windows of the anomaly tables, in runs.
pub const WINDOWS: [usize; 3] = [1, 7, 30];

/// What can go wrong making a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading the run or the history, or writing them.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Writing a report file.
    #[error("{path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `harness report`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The run directory, `results/<UTC date>-<short commit>`.
    #[arg(long)]
    pub run: PathBuf,
    /// The history to append to and trend from (default: `history.jsonl` beside the run
    /// directory).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Where to write run.json and report.{json,md,html,xml} (default: the run directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reference figures shown beside each metric (default: `baseline.json` beside the
    /// history; a missing file is no baseline).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Exit non-zero when a metric's newest group is a regression.
    #[arg(long)]
    pub fail_on_regression: bool,
}

/// Which number of a metric is trended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantity {
    /// `value / ceiling` of the same run.
    Ratio,
    /// The value itself (the metric has no ceiling).
    Value,
}

/// One run's sample of a metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// Position of the run among this machine's runs (0 = oldest).
    pub position: usize,
    /// Run directory name.
    pub run: String,
    /// Commit.
    pub commit: String,
    /// Date.
    pub date: String,
    /// The value.
    pub value: f64,
    /// The ratio, if any.
    pub ratio: Option<f64>,
    /// What is trended: the ratio or the value.
    pub y: f64,
}

/// One metric over this machine's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricTrend {
    /// The metric's name.
    pub name: String,
    /// Its unit, from this run (empty if the run lacks it).
    pub unit: String,
    /// What [`TrendPoint::y`] is.
    pub quantity: Quantity,
    /// Which way is better.
    pub direction: Direction,
    /// The runs that have it, oldest first (runs without it are skipped).
    pub points: Vec<TrendPoint>,
    /// Groups and events; indices are into `points`.
    pub analysis: Analysis,
}

/// A regression or a progression, for the tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// Metric.
    pub metric: String,
    /// Regression or progression.
    pub class: Class,
    /// The run that starts the new group.
    pub run: String,
    /// Its commit.
    pub commit: String,
    /// Its date.
    pub date: String,
    /// Previous group's mean (of the trended quantity).
    pub before: f64,
    /// New group's mean.
    pub after: f64,
    /// Change in percent of `before`.
    pub change_pct: f64,
}

/// The events that started within the last `runs` runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// Window size in runs.
    pub runs: usize,
    /// Regressions, by metric.
    pub regressions: Vec<EventRow>,
    /// Progressions, by metric.
    pub progressions: Vec<EventRow>,
}

/// Everything the four formats show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The run.
    pub run: Run,
    /// Its machine's fingerprint id.
    pub machine: String,
    /// Runs of this machine in the history (this one included).
    pub runs_on_machine: usize,
    /// Runs of other machines in the history, not compared.
    pub runs_elsewhere: usize,
    /// History lines left out.
    pub history_warnings: Vec<String>,
    /// Failed scenario × topology results.
    pub failures: Vec<ScenarioResult>,
    /// Anomaly tables, one per entry of [`WINDOWS`].
    pub windows: Vec<Window>,
    /// One trend per metric, by name.
    pub trends: Vec<MetricTrend>,
    /// Whether a regression fails the run.
    pub fail_on_regression: bool,
    /// Reference figures (`results/baseline.json`), shown beside the trends.
    pub baseline: Vec<Metric>,
    /// What the run directory's own files show (per-worker spread, search traces,
    /// latency histograms); empty unless read with [`Report::with_detail`].
    pub detail: detail::RunDetail,
}

impl Report {
    /// Builds the report of `run` against `history` (which should hold the run's own
    /// line; if it does not, the run is added at the end).
    pub fn build(run: Run, history: &History, fail_on_regression: bool) -> Self {
        let machine = run.fingerprint.id();
        let mut mine: Vec<Summary> = history
            .runs
            .iter()
            .filter(|s| s.fingerprint == machine)
            .cloned()
            .collect();
        let runs_elsewhere = history.runs.len() - mine.len();
        if !mine.iter().any(|s| s.run == run.id) {
            mine.push(run.summary());
        }
        let names: BTreeSet<&str> = mine
            .iter()
            .flat_map(|s| s.metrics.keys().map(String::as_str))
            .collect();
        let trends: Vec<MetricTrend> = names
            .into_iter()
            .map(|name| trend_of(name, &run, &mine))
            .collect();
        let windows = WINDOWS
            .iter()
            .map(|&k| window(k, mine.len(), &trends))
            .collect();
        Self {
            failures: run.failures().cloned().collect(),
            machine,
            runs_on_machine: mine.len(),
            runs_elsewhere,
            history_warnings: history.warnings.clone(),
            windows,
            trends,
            fail_on_regression,
            run,
            baseline: Vec::new(),
            detail: detail::RunDetail::default(),
        }
    }

    /// Adds the details read from the run directory `dir`.
    pub fn with_detail(mut self, dir: &Path) -> Self {
        self.detail = detail::read(dir);
        self
    }

    /// Adds reference figures; `warnings` (from reading them) join the history's.
    pub fn with_baseline(mut self, baseline: Vec<Metric>, warnings: Vec<String>) -> Self {
        self.baseline = baseline;
        self.history_warnings
            .extend(warnings.into_iter().map(|w| format!("baseline: {w}")));
        self
    }

    /// The baseline's figure for a metric, in the trended quantity.
    pub fn baseline_of(&self, t: &MetricTrend) -> Option<f64> {
        let m = self.baseline.iter().find(|m| m.name == t.name)?;
        match t.quantity {
            Quantity::Ratio => m.ratio,
            Quantity::Value => Some(m.value),
        }
    }

    /// Metrics whose newest group is a regression.
    pub fn regressed(&self) -> impl Iterator<Item = &MetricTrend> {
        self.trends
            .iter()
            .filter(|t| t.analysis.status == Class::Regression)
    }

    /// Why the run fails, one line each; empty when it passes.
    pub fn verdict(&self) -> Vec<String> {
        let mut why = Vec::new();
        if !self.failures.is_empty() {
            why.push(format!(
                "{} of {} scenario checks failed",
                self.failures.len(),
                self.run.correctness.len()
            ));
        }
        if self.fail_on_regression {
            let names: Vec<&str> = self.regressed().map(|t| t.name.as_str()).collect();
            if !names.is_empty() {
                why.push(format!("regression in {}", names.join(", ")));
            }
        }
        why
    }
}

/// One metric's series over `runs` (this machine's, oldest first).
fn trend_of(name: &str, run: &Run, runs: &[Summary]) -> MetricTrend {
    let samples: Vec<(usize, &Summary, MetricPoint)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.metrics.get(name).map(|p| (i, s, *p)))
        .collect();
    let quantity = if samples.iter().any(|(_, _, p)| p.ratio.is_some()) {
        Quantity::Ratio
    } else {
        Quantity::Value
    };
    let points: Vec<TrendPoint> = samples
        .into_iter()
        .filter_map(|(position, s, p)| {
            let y = match quantity {
                Quantity::Ratio => p.ratio?,
                Quantity::Value => p.value,
            };
            y.is_finite().then(|| TrendPoint {
                position,
                run: s.run.clone(),
                commit: s.commit.clone(),
                date: s.date.clone(),
                value: p.value,
                ratio: p.ratio,
                y,
            })
        })
        .collect();
    let unit = run
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.unit.clone())
        .unwrap_or_default();
    let direction = Direction::for_metric(name, &unit);
    let ys: Vec<f64> = points.iter().map(|p| p.y).collect();
    MetricTrend {
        name: name.to_owned(),
        unit,
        quantity,
        direction,
        analysis: trend::analyze(&ys, direction),
        points,
    }
}

fn window(k: usize, total: usize, trends: &[MetricTrend]) -> Window {
    let since = total.saturating_sub(k);
    let mut w = Window {
        runs: k,
        regressions: Vec::new(),
        progressions: Vec::new(),
    };
    for t in trends {
        for e in &t.analysis.events {
            let Some(p) = t.points.get(e.index) else {
                continue;
            };
            if p.position < since {
                continue;
            }
            let row = EventRow {
                metric: t.name.clone(),
                class: e.class,
                run: p.run.clone(),
                commit: p.commit.clone(),
                date: p.date.clone(),
                before: e.before,
                after: e.after,
                change_pct: if e.before != 0.0 {
                    (e.after - e.before) / e.before.abs() * 100.0
                } else {
                    0.0
                },
            };
            match e.class {
                Class::Regression => w.regressions.push(row),
                Class::Progression => w.progressions.push(row),
                Class::Normal => {}
            }
        }
    }
    w
}

/// Writes `report.{json,md,html,xml}` into `dir` (created if needed).
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let files = [
        ("report.json", json::render(report)),
        ("report.md", markdown::render(report)),
        ("report.html", html::render(report)),
        ("report.xml", junit::render(report)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        history::write_file(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// Renders the report as JSON.
pub fn to_json(report: &Report) -> String {
    json::render(report)
}

/// Renders the report as Markdown.
pub fn to_markdown(report: &Report) -> String {
    markdown::render(report)
}

/// Renders the report as a static HTML page.
pub fn to_html(report: &Report) -> String {
    html::render(report)
}

/// Renders the report as JUnit XML.
pub fn to_junit(report: &Report) -> String {
    junit::render(report)
}

/// `harness report`: assemble the run, append it to the history, write the report.
///
/// Returns the lines to print. `Err` carries the reason the run fails: a read or write
/// error, a failed check, or (with `--fail-on-regression`) a regression.
pub fn run_cli(args: &ReportArgs) -> Result<Vec<String>, String> {
    let run = history::assemble_run(&args.run, Fingerprint::probe).map_err(|e| e.to_string())?;
    let out = args.out.clone().unwrap_or_else(|| args.run.clone());
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    history::write_run(&run, &out).map_err(|e| e.to_string())?;
    let history_path = args.history.clone().unwrap_or_else(|| {
        args.run
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("history.jsonl")
    });
    history::append_history(&history_path, &run.summary()).map_err(|e| e.to_string())?;
    let history = history::load_history(&history_path).map_err(|e| e.to_string())?;
    let baseline_path = args.baseline.clone().unwrap_or_else(|| {
        history_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("baseline.json")
    });
    let mut baseline_warnings = Vec::new();
    let baseline = history::load_baseline(&baseline_path, &mut baseline_warnings);
    let report = Report::build(run, &history, args.fail_on_regression)
        .with_baseline(baseline, baseline_warnings)
        .with_detail(&args.run);
    let written = write_all(&report, &out).map_err(|e| e.to_string())?;
    let mut lines: Vec<String> = written
        .iter()
        .map(|p| format!("wrote {}", p.display()))
        .collect();
    lines.push(format!(
        "checks {} failed {}; metrics {} regressed {}; runs on this machine {}",
        report.run.correctness.len(),
        report.failures.len(),
        report.trends.len(),
        report.regressed().count(),
        report.runs_on_machine
    ));
    let why = report.verdict();
    if why.is_empty() {
        Ok(lines)
    } else {
        for l in &lines {
            println!("{l}");
        }
        Err(format!(
            "{} (see {})",
            why.join("; "),
            out.join("report.html").display()
        ))
    }
}

/// Escapes text for HTML and XML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A number with about four significant digits.
pub(crate) fn num(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "–".to_owned()
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

/// `Fingerprint` in one line.
pub(crate) fn machine_line(fp: &Fingerprint) -> String {
    format!(
        "{}, {} cores, DPDK {}, kernel {}",
        fp.cpu_model, fp.cores, fp.dpdk, fp.kernel
    )
}

/// "regression" / "progression" / "normal".
pub(crate) fn class_name(c: Class) -> &'static str {
    match c {
        Class::Normal => "normal",
        Class::Regression => "regression",
        Class::Progression => "progression",
    }
}
