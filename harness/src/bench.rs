//! `harness bench`: NDR/PDR of the forwarder over memif, beside the `dpdk-testpmd`
//! `macswap` ceiling on the same topology, measured in the same run.
//!
//! Topology (one-arm, one memif port, two processes): `traffic-gen` is the memif server
//! on one CPU; the device under test (the `forwarder`, or `dpdk-testpmd --forward-mode
//! macswap` for the ceiling) is the memif client with its worker on the other CPU. With
//! the forwarder, traffic-gen closes the loop itself (`--respond-to` the real servers'
//! prefix): client request → forwarder → traffic-gen answering as the real server →
//! forwarder → traffic-gen, where the reply counts as received. The forwarder so handles
//! two packets per request; testpmd one per packet. Ratios are taken on packets the device
//! forwarded per second ([`Point::dut_packets_per_request`]). With `--one-way` traffic-gen
//! does not answer: it counts the forwarded requests (rewritten towards the real servers)
//! as received, so the forwarder handles one packet per request and the generator does
//! the same work as for the ceiling — how DPVS is measured with testpmd `flowgen`.
//!
//! The pure parts — the MLRsearch-style [`Search`] state machine, loss-ratio decisions,
//! the interleaving [`plan`] and the aggregation into [`Point`]s — have unit tests with
//! simulated devices; [`run`] drives the real binaries, one fresh pair of processes per
//! trial (so every trial starts with an empty connection table).
//!
//! Search (after RFC 9971 / FD.io CSIT): the first trial runs at maximum load as a
//! warm-up (unpaced unless `--max-pps`), which also sets the maximum load to what the
//! generator achieved; then each goal (NDR: loss 0, PDR: loss ≤ 0.5%) keeps a lower
//! bound (highest load that met it) and an upper bound (lowest load that did not); the
//! next load starts at the warm-up's forwarding rate, widens downwards while there is no
//! lower bound, and bisects once both exist, until `upper - lower ≤ width × upper` or
//! the sum of trial durations reaches the budget. A loss at minimum load fails that goal
//! at once. A goal met at the maximum load is the generator's limit, a lower bound on
//! the device; the Markdown marks it `(≥, at max load)`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

// ---------------------------------------------------------------------------------------
// Pure: loss decisions and the search.
// ---------------------------------------------------------------------------------------

/// The PDR loss ratio (0.5%).
pub const PDR_LOSS: f64 = 0.005;

/// One trial's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trial {
    /// The load the search asked for, packets/s (for the warm-up: what was achieved).
    pub load_pps: f64,
    /// Packets sent.
    pub tx: u64,
    /// Packets that came back.
    pub rx: u64,
    /// Trial duration, seconds.
    pub secs: f64,
    /// The warm-up trial at maximum load.
    pub warmup: bool,
}

impl Trial {
    /// Lost share of what was sent: (tx − rx) / tx; 1 when nothing was sent.
    pub fn loss_ratio(&self) -> f64 {
        if self.tx == 0 {
            return 1.0;
        }
        self.tx.saturating_sub(self.rx) as f64 / self.tx as f64
    }

    /// What came back per second.
    pub fn forwarding_pps(&self) -> f64 {
        if self.secs <= 0.0 {
            return 0.0;
        }
        self.rx as f64 / self.secs
    }

    /// What was sent per second.
    pub fn offered_pps(&self) -> f64 {
        if self.secs <= 0.0 {
            return 0.0;
        }
        self.tx as f64 / self.secs
    }
}

/// Whether a loss ratio meets a goal (exact zero for NDR; a tiny epsilon absorbs float
/// rounding for PDR only).
pub fn meets(loss_ratio: f64, goal: f64) -> bool {
    if goal <= 0.0 {
        loss_ratio <= 0.0
    } else {
        loss_ratio <= goal + 1e-12
    }
}

/// Search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SearchParams {
    /// Minimum load, packets/s.
    pub min_pps: f64,
    /// Maximum load (None: unpaced warm-up, and what it achieved).
    pub max_pps: Option<f64>,
    /// Trial duration, seconds.
    pub trial_s: f64,
    /// Goal width, relative (0.05 = 5%).
    pub width: f64,
    /// Cap on the sum of trial durations, seconds (warm-up included).
    pub budget_s: f64,
}

impl SearchParams {
    /// The CI profile: 1 s trials, 5% width, 20 s of trials per search.
    pub fn ci() -> SearchParams {
        SearchParams {
            min_pps: 10e3,
            max_pps: None,
            trial_s: 1.0,
            width: 0.05,
            budget_s: 20.0,
        }
    }

    /// The nightly profile: 5 s trials, 1% width, 120 s per search.
    pub fn nightly() -> SearchParams {
        SearchParams {
            min_pps: 10e3,
            max_pps: None,
            trial_s: 5.0,
            width: 0.01,
            budget_s: 120.0,
        }
    }
}

/// The load of a trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Unpaced (`--pps max`).
    Max,
    /// Paced at this rate.
    Pps(f64),
}

/// One goal's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Bounds {
    /// Highest load that met the goal.
    pub lower: Option<f64>,
    /// Lowest load that did not.
    pub upper: Option<f64>,
    /// Trials that missed the goal with no lower bound yet (widening steps).
    widen: u32,
}

impl Bounds {
    /// Takes one trial into account. The newest trial wins a contradiction (a pass
    /// above the upper bound drops it, a miss below the lower bound drops that).
    pub fn update(&mut self, load: f64, loss_ratio: f64, goal: f64) {
        if meets(loss_ratio, goal) {
            if self.upper.is_some_and(|u| load >= u) {
                self.upper = None;
            }
            self.lower = Some(self.lower.map_or(load, |l| l.max(load)));
        } else {
            if self.lower.is_some_and(|l| load <= l) {
                self.lower = None;
            }
            if self.lower.is_none() {
                self.widen += 1;
            }
            self.upper = Some(self.upper.map_or(load, |u| u.min(load)));
        }
    }
}

/// How one goal ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GoalResult {
    /// The loss ratio goal.
    pub loss_goal: f64,
    /// The result: the lower bound, packets/s (0 when none was found).
    pub pps: f64,
    /// The upper bound, when one was measured.
    pub upper_pps: Option<f64>,
    /// Bounds within the width, or lower bound at maximum load.
    pub converged: bool,
    /// Minimum load already missed the goal.
    pub failed_at_min: bool,
}

/// What the search wants next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Run a trial at this load.
    Trial(Load),
    /// Finished.
    Done,
}

/// The search state machine: ask [`Search::next`], run the trial, [`Search::record`] it.
#[derive(Debug, Clone)]
pub struct Search {
    params: SearchParams,
    max_pps: Option<f64>,
    first_guess: Option<f64>,
    ndr: Bounds,
    pdr: Bounds,
    trials: Vec<Trial>,
    spent_s: f64,
}

/// The search's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// Zero loss.
    pub ndr: GoalResult,
    /// 0.5% loss.
    pub pdr: GoalResult,
    /// Maximum load used (packets/s).
    pub max_pps: f64,
    /// Forwarding rate at maximum load (the warm-up's rx rate; MRR-like).
    pub mrr_pps: f64,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
    /// Sum of trial durations, seconds.
    pub trial_seconds: f64,
    /// The budget ran out before both goals converged.
    pub budget_exhausted: bool,
}

impl Search {
    /// A new search.
    pub fn new(params: SearchParams) -> Search {
        Search {
            params,
            max_pps: params.max_pps,
            first_guess: None,
            ndr: Bounds::default(),
            pdr: Bounds::default(),
            trials: Vec::new(),
            spent_s: 0.0,
        }
    }

    fn goal_done(&self, b: &Bounds) -> bool {
        let (min, max) = (self.params.min_pps, self.max_pps.unwrap_or(f64::INFINITY));
        if b.upper.is_some_and(|u| u <= min) {
            return true; // failed at minimum load
        }
        match (b.lower, b.upper) {
            (Some(l), _) if l >= max * (1.0 - 1e-9) => true,
            (Some(l), Some(u)) => u - l <= self.params.width * u,
            _ => false,
        }
    }

    fn budget_left(&self) -> bool {
        self.spent_s + self.params.trial_s <= self.params.budget_s + 1e-9
    }

    fn next_for(&self, b: &Bounds) -> f64 {
        let min = self.params.min_pps;
        let max = self.max_pps.unwrap_or(min);
        let w = self.params.width;
        let load = match (b.lower, b.upper) {
            (Some(l), Some(u)) => (l + u) / 2.0,
            (Some(l), None) => (l * (1.0 + 2.0 * w)).max((l + max) / 2.0),
            (None, Some(u)) => {
                // Widen downwards: first the warm-up's forwarding rate (just under the
                // upper bound), then ever larger steps.
                let step = w * 2f64.powi(b.widen.saturating_sub(1) as i32);
                let guess = u * (1.0 - step);
                match self.first_guess {
                    Some(f) if b.widen <= 1 && f < u => f,
                    _ => guess,
                }
            }
            (None, None) => max,
        };
        load.clamp(min, max)
    }

    /// The next trial, or done.
    pub fn next(&self) -> Next {
        if self.trials.is_empty() {
            return Next::Trial(match self.params.max_pps {
                Some(m) => Load::Pps(m),
                None => Load::Max,
            });
        }
        if !self.budget_left() {
            return Next::Done;
        }
        for b in [&self.pdr, &self.ndr] {
            if !self.goal_done(b) {
                return Next::Trial(Load::Pps(self.next_for(b)));
            }
        }
        Next::Done
    }

    /// Takes a trial's result.
    pub fn record(&mut self, trial: Trial) {
        let mut t = trial;
        if self.trials.is_empty() {
            t.warmup = true;
            if self.max_pps.is_none() {
                // Unpaced: the maximum load is what the generator achieved.
                let achieved = t.offered_pps().max(self.params.min_pps);
                self.max_pps = Some(achieved);
                t.load_pps = achieved;
            }
            let fwd = t.forwarding_pps();
            if fwd > 0.0 {
                self.first_guess = Some(fwd);
            }
        }
        self.spent_s += t.secs.max(0.0);
        let loss = t.loss_ratio();
        self.ndr.update(t.load_pps, loss, 0.0);
        self.pdr.update(t.load_pps, loss, PDR_LOSS);
        self.trials.push(t);
    }

    fn goal_result(&self, b: &Bounds, goal: f64) -> GoalResult {
        let failed = b.lower.is_none() && b.upper.is_some_and(|u| u <= self.params.min_pps);
        GoalResult {
            loss_goal: goal,
            pps: b.lower.unwrap_or(0.0),
            upper_pps: b.upper,
            converged: self.goal_done(b) && !failed,
            failed_at_min: failed,
        }
    }

    /// The result so far.
    pub fn result(&self) -> SearchResult {
        let ndr = self.goal_result(&self.ndr, 0.0);
        let pdr = self.goal_result(&self.pdr, PDR_LOSS);
        SearchResult {
            budget_exhausted: !(self.budget_left()
                || self.goal_done(&self.ndr) && self.goal_done(&self.pdr)),
            ndr,
            pdr,
            max_pps: self.max_pps.unwrap_or(0.0),
            mrr_pps: self.trials.first().map_or(0.0, |t| t.forwarding_pps()),
            trials: self.trials.clone(),
            trial_seconds: self.spent_s,
        }
    }
}

/// Runs a whole search against `measure` (which runs one trial at a load).
pub fn search(
    params: SearchParams,
    mut measure: impl FnMut(Load) -> Result<Trial, String>,
) -> Result<SearchResult, String> {
    let mut s = Search::new(params);
    // A hard stop against a measure that never reports time spent.
    for _ in 0..1000 {
        match s.next() {
            Next::Done => return Ok(s.result()),
            Next::Trial(load) => {
                let t = measure(load)?;
                s.record(t);
            }
        }
    }
    Ok(s.result())
}

// ---------------------------------------------------------------------------------------
// Pure: what to run, in which order, and how figures combine.
// ---------------------------------------------------------------------------------------

/// The forwarder's mode for a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FwdMode {
    /// FULLNAT (source and destination rewritten).
    Fullnat,
    /// NAT (destination rewritten; replies routed back through the forwarder).
    Nat,
}

impl FwdMode {
    fn as_str(self) -> &'static str {
        match self {
            FwdMode::Fullnat => "fullnat",
            FwdMode::Nat => "nat",
        }
    }
}

/// What traffic a point sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Traffic {
    /// Few flows: after the first packets every packet hits an existing connection.
    Established,
    /// Many flows: nearly every packet of a trial opens a connection.
    NewConn,
}

/// One forwarder measurement point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PointSpec {
    /// FULLNAT or NAT.
    pub mode: FwdMode,
    /// Established or new connections.
    pub traffic: Traffic,
    /// Distinct flows (`--flows`).
    pub flows: u64,
    /// One way: traffic-gen sends requests and counts the forwarded ones (towards the real
    /// servers) without answering them — the forwarder handles one packet per request,
    /// as DPVS is measured with testpmd `flowgen`; otherwise the loop is closed.
    pub one_way: bool,
}

impl PointSpec {
    /// `fullnat-udp64-established` and the like; established points with more than one
    /// flow carry the count (`fullnat-udp64-established-1M`).
    pub fn name(&self) -> String {
        let t = match self.traffic {
            Traffic::Established if self.flows > 1 => format!("established-{}", si(self.flows)),
            Traffic::Established => "established".to_owned(),
            Traffic::NewConn => "newconn".to_owned(),
        };
        let way = if self.one_way { "-oneway" } else { "" };
        format!("{}-udp64-{t}{way}", self.mode.as_str())
    }

    /// Packets the forwarder handles per generated request.
    pub fn dut_packets_per_request(&self) -> f64 {
        if self.one_way {
            1.0
        } else {
            2.0
        }
    }
}

/// A count in the units the command line takes (`1M`, `64k`, `3`).
fn si(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A step of the interleaved run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A testpmd macswap search; the number counts ceilings.
    Ceiling(usize),
    /// A forwarder search for the point at this index.
    Point(usize),
}

/// Ceiling, point 0, ceiling, point 1, …, ceiling: every point sits between two
/// ceilings measured just before and just after it.
pub fn plan(points: usize) -> Vec<Step> {
    let mut steps = vec![Step::Ceiling(0)];
    for i in 0..points {
        steps.push(Step::Point(i));
        steps.push(Step::Ceiling(i + 1));
    }
    steps
}

/// A ratio, or None when the denominator is not positive.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0 && num.is_finite()).then(|| num / den)
}

/// Mean of the finite, positive values (None when there are none).
pub fn mean_positive(values: &[f64]) -> Option<f64> {
    let v: Vec<f64> = values
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Latency at a fraction of PDR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyPoint {
    /// Fraction of PDR (0.5, 0.9).
    pub fraction_of_pdr: f64,
    /// Load, packets/s.
    pub load_pps: f64,
    /// Median round trip, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Loss ratio in that trial.
    pub loss_ratio: f64,
    /// Latency histogram of that trial: (upper bound ns, samples).
    pub histogram: Vec<(u64, u64)>,
}

/// One reported point: the forwarder's figures beside the ceiling's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Point name.
    pub name: String,
    /// What it ran.
    pub spec: PointSpec,
    /// Packets the device forwards per generated request (2 for the forwarder in the
    /// closed loop: request and reply).
    pub dut_packets_per_request: f64,
    /// NDR in requests, Mpps.
    pub ndr_mpps: f64,
    /// PDR in requests, Mpps.
    pub pdr_mpps: f64,
    /// NDR in packets the device forwarded, Mpps.
    pub ndr_dut_mpps: f64,
    /// PDR in packets the device forwarded, Mpps.
    pub pdr_dut_mpps: f64,
    /// Ceiling NDR (mean of the ceilings either side), Mpps.
    pub ceiling_ndr_mpps: Option<f64>,
    /// Ceiling PDR, Mpps.
    pub ceiling_pdr_mpps: Option<f64>,
    /// Device NDR / ceiling NDR.
    pub ratio_ndr: Option<f64>,
    /// Device PDR / ceiling PDR.
    pub ratio_pdr: Option<f64>,
    /// Latency at 50% and 90% of PDR.
    pub latency: Vec<LatencyPoint>,
    /// The search.
    pub search: SearchResult,
    /// The exact commands of one trial.
    pub commands: Vec<String>,
}

/// Combines a point's search with the ceilings measured either side of it.
pub fn aggregate(
    spec: PointSpec,
    packets_per_request: f64,
    search: SearchResult,
    ceilings: &[&SearchResult],
    latency: Vec<LatencyPoint>,
    commands: Vec<String>,
) -> Point {
    let c_ndr = mean_positive(&ceilings.iter().map(|c| c.ndr.pps).collect::<Vec<_>>());
    let c_pdr = mean_positive(&ceilings.iter().map(|c| c.pdr.pps).collect::<Vec<_>>());
    let ndr_dut = search.ndr.pps * packets_per_request;
    let pdr_dut = search.pdr.pps * packets_per_request;
    Point {
        name: spec.name(),
        spec,
        dut_packets_per_request: packets_per_request,
        ndr_mpps: search.ndr.pps / 1e6,
        pdr_mpps: search.pdr.pps / 1e6,
        ndr_dut_mpps: ndr_dut / 1e6,
        pdr_dut_mpps: pdr_dut / 1e6,
        ceiling_ndr_mpps: c_ndr.map(|c| c / 1e6),
        ceiling_pdr_mpps: c_pdr.map(|c| c / 1e6),
        ratio_ndr: c_ndr.and_then(|c| ratio(ndr_dut, c)),
        ratio_pdr: c_pdr.and_then(|c| ratio(pdr_dut, c)),
        latency,
        search,
        commands,
    }
}

/// One ceiling measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ceiling {
    /// Order in the run.
    pub index: usize,
    /// NDR, Mpps.
    pub ndr_mpps: f64,
    /// PDR, Mpps.
    pub pdr_mpps: f64,
    /// The search.
    pub search: SearchResult,
    /// The exact commands of one trial.
    pub commands: Vec<String>,
}

/// The whole run, as written to `bench.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Run name (the folder under results/).
    pub run: String,
    /// `ci`, `nightly` or `custom`.
    pub profile: String,
    /// Search parameters.
    pub params: SearchParams,
    /// Where it ran and how.
    pub environment: Vec<String>,
    /// The ceilings, in run order.
    pub ceilings: Vec<Ceiling>,
    /// The forwarder's points.
    pub points: Vec<Point>,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn fmt_us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

/// The Markdown summary.
pub fn markdown(r: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## harness bench `{}` ({})\n", r.run, r.profile);
    let _ = writeln!(
        s,
        "Trials {:.1} s, width {:.1}%, ≤ {:.0} s of trials per search; {} ; wall {:.0} s.\n",
        r.params.trial_s,
        r.params.width * 100.0,
        r.params.budget_s,
        r.environment.join("; "),
        r.wall_seconds
    );
    let _ = writeln!(
        s,
        "| point | NDR Mreq/s | PDR Mreq/s | NDR dev Mpps | PDR dev Mpps | ceiling NDR/PDR Mpps | ratio NDR | ratio PDR | lat p50/p90/p99 µs @50% PDR | @90% PDR |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for p in &r.points {
        let lat = |f: f64| {
            p.latency
                .iter()
                .find(|l| (l.fraction_of_pdr - f).abs() < 1e-6)
                .map_or_else(
                    || "-".into(),
                    |l| {
                        format!(
                            "{}/{}/{}",
                            fmt_us(l.p50_ns),
                            fmt_us(l.p90_ns),
                            fmt_us(l.p99_ns)
                        )
                    },
                )
        };
        let max = p.search.max_pps;
        let flag = |g: &GoalResult| {
            if g.pps > 0.0 && g.pps >= max * 0.999 {
                // Met at the generator's maximum load: a lower bound on the device.
                " (≥, at max load)"
            } else if g.failed_at_min {
                " (fails at min)"
            } else if g.converged {
                ""
            } else {
                " (not converged)"
            }
        };
        let _ = writeln!(
            s,
            "| {} | {:.3}{} | {:.3}{} | {:.3} | {:.3} | {}/{} | {} | {} | {} | {} |",
            p.name,
            p.ndr_mpps,
            flag(&p.search.ndr),
            p.pdr_mpps,
            flag(&p.search.pdr),
            p.ndr_dut_mpps,
            p.pdr_dut_mpps,
            fmt_opt(p.ceiling_ndr_mpps, 3),
            fmt_opt(p.ceiling_pdr_mpps, 3),
            fmt_opt(p.ratio_ndr, 3),
            fmt_opt(p.ratio_pdr, 3),
            lat(0.5),
            lat(0.9)
        );
    }
    let _ = writeln!(
        s,
        "\nCeilings (testpmd macswap, same topology, in run order):"
    );
    for c in &r.ceilings {
        let _ = writeln!(
            s,
            "- #{}: NDR {:.3} Mpps, PDR {:.3} Mpps, MRR {:.3} Mpps ({} trials){}",
            c.index,
            c.ndr_mpps,
            c.pdr_mpps,
            c.search.mrr_pps / 1e6,
            c.search.trials.len(),
            if c.search.pdr.pps > 0.0 && c.search.pdr.pps >= c.search.max_pps * 0.999 {
                " — met at the generator's maximum load: the generator, not testpmd, is the limit"
            } else {
                ""
            }
        );
    }
    s
}

// ---------------------------------------------------------------------------------------
// Small parsers for the command line.
// ---------------------------------------------------------------------------------------

/// `1s`, `500ms`, `2m`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mul) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(format!("bad duration {s:?}: use 1s, 500ms or 2m"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}: use 1s, 500ms or 2m"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("bad duration {s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(v * mul))
}

/// `20k`, `1.5M`, `100000`: packets/s or a count.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad rate {s:?}: use e.g. 20k or 1.5M"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("bad rate {s:?}: must be positive"));
    }
    Ok(v * mul)
}

/// A relative width: `5%` or `0.05`.
pub fn parse_width(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("bad width {s:?}: use 5% or 0.05"))?;
    if !(v > 0.0 && v < 1.0) {
        return Err(format!("bad width {s:?}: between 0 and 100%"));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// The real run.
// ---------------------------------------------------------------------------------------

/// Addresses of the benchmark topology.
pub mod topo {
    /// The service.
    pub const VIP: &str = "10.0.0.1";
    /// Its port.
    pub const VPORT: u16 = 80;
    /// The real servers' prefix (traffic-gen answers for it).
    pub const RS_NET: &str = "192.168.100.0/24";
    /// Real servers.
    pub const RS: [&str; 2] = ["192.168.100.10:8080", "192.168.100.11:8080"];
    /// FULLNAT local addresses: `192.168.200.1` and up, one per [`PORTS_PER_LADDR`]
    /// connections (a local address has at most ~64k ports).
    pub const LADDR_BASE: [u8; 3] = [192, 168, 200];
    /// Connections planned per local address.
    pub const PORTS_PER_LADDR: u64 = 50_000;
    /// Clients.
    pub const CLIENTS: &str = "172.16.0.0/12";
    /// The device's MAC (the forwarder's; testpmd swaps whatever it gets).
    pub const DUT_MAC: &str = "02:00:00:00:00:aa";
    /// The generator's MAC as seen by the forwarder (its next hop).
    pub const GEN_MAC: &str = "02:00:00:00:00:01";
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    /// `ci`, `nightly` or `custom`.
    pub profile: String,
    /// Search parameters.
    pub params: SearchParams,
    /// Forwarder points.
    pub points: Vec<PointSpec>,
    /// Binaries.
    pub traffic_gen: PathBuf,
    /// The forwarder.
    pub forwarder: PathBuf,
    /// dpdk-testpmd.
    pub testpmd: PathBuf,
    /// Results folder (results/<run>/ is written).
    pub out: PathBuf,
    /// Run name.
    pub run: String,
    /// No hugepages (slow, for tests).
    pub no_huge: bool,
    /// CPU of the generator.
    pub gen_cpu: u32,
    /// CPU of the device under test.
    pub dut_cpu: u32,
    /// Stamp every Nth packet in latency trials.
    pub latency_every: u64,
    /// Skip the ceiling.
    pub no_ceiling: bool,
    /// Print progress.
    pub verbose: bool,
}

/// The device under test of a trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dut {
    /// The forwarder with a point's settings.
    Forwarder(PointSpec),
    /// testpmd macswap.
    Testpmd,
}

/// Shell-quotes an argument for the recorded commands.
pub fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

fn command_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// FULLNAT local addresses (quoted) for `flows` connections: enough that the local
/// ports do not run out (at most 250).
pub fn laddrs(flows: u64) -> Vec<String> {
    let n = flows.div_ceil(topo::PORTS_PER_LADDR).clamp(1, 250);
    let [a, b, c] = topo::LADDR_BASE;
    (1..=n).map(|i| format!("\"{a}.{b}.{c}.{i}\"")).collect()
}

/// The forwarder configuration for a point.
pub fn forwarder_config(spec: &PointSpec, eal: &[String], socket: &Path, ctl: &Path) -> String {
    let eal_list = eal
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rs = topo::RS
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    let laddr = match spec.mode {
        FwdMode::Fullnat => format!("\n[laddr]\nm0 = [{}]\n", laddrs(spec.flows).join(", ")),
        FwdMode::Nat => String::new(),
    };
    // Room for one connection per packet of a new-connection trial.
    let capacity = spec.flows.clamp(1 << 16, 1 << 24).next_power_of_two();
    format!(
        r#"# harness bench: {name}
[eal]
args = [{eal_list}]

[[port]]
name = "m0"
device = "net_memif0,role=client,socket={socket},socket-abstract=no,rsize=12,id=0"
mac = "{dut_mac}"
gateway_mac = "{gen_mac}"
checksum_offload = false
{laddr}
[[service]]
vip = "{vip}"
port = {vport}
proto = "udp"
mode = "{mode}"
scheduler = "rr"
rs = [{rs}]

[tables]
conn_capacity = {capacity}

[control]
socket = "{ctl}"
"#,
        name = spec.name(),
        socket = socket.display(),
        dut_mac = topo::DUT_MAC,
        gen_mac = topo::GEN_MAC,
        vip = topo::VIP,
        vport = topo::VPORT,
        mode = spec.mode.as_str(),
        ctl = ctl.display(),
    )
}

/// What traffic-gen reported for one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TgOutcome {
    /// The trial.
    pub trial: Trial,
    /// Latency p50/p90/p99 when stamped.
    pub latency: Option<(u64, u64, u64)>,
    /// The latency histogram: (upper bound ns, samples), when stamped.
    pub histogram: Vec<(u64, u64)>,
}

/// Reads traffic-gen's JSON summary.
pub fn parse_tg_summary(text: &str, load: Load, trial_s: f64) -> Result<TgOutcome, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("traffic-gen JSON: {e}"))?;
    let num = |p: &[&str]| -> Option<f64> {
        let mut x = &v;
        for k in p {
            x = x.get(k)?;
        }
        x.as_f64()
    };
    let tx = num(&["tx_packets"]).ok_or("traffic-gen JSON: no tx_packets")? as u64;
    let rx = num(&["rx_packets"]).ok_or("traffic-gen JSON: no rx_packets")? as u64;
    let secs = num(&["tx_seconds"]).unwrap_or(trial_s);
    // Paced trials are judged over their schedule; unpaced over the time they sent.
    let secs = match load {
        Load::Pps(_) => trial_s,
        Load::Max => {
            if secs > 0.0 {
                secs
            } else {
                trial_s
            }
        }
    };
    let latency = match (
        num(&["latency", "p50_ns"]),
        num(&["latency", "p90_ns"]),
        num(&["latency", "p99_ns"]),
    ) {
        (Some(a), Some(b), Some(c)) => Some((a as u64, b as u64, c as u64)),
        _ => None,
    };
    let histogram = v
        .get("latency")
        .and_then(|l| l.get("histogram"))
        .and_then(serde_json::Value::as_array)
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|b| Some((b.get(0)?.as_u64()?, b.get(1)?.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    // A generator that fell more than 1% short applied less than asked: the trial
    // counts at the load it really offered.
    let offered = if secs > 0.0 { tx as f64 / secs } else { 0.0 };
    Ok(TgOutcome {
        trial: Trial {
            load_pps: match load {
                Load::Pps(p) if offered < 0.99 * p => offered,
                Load::Pps(p) => p,
                Load::Max => 0.0,
            },
            tx,
            rx,
            secs,
            warmup: false,
        },
        latency,
        histogram,
    })
}

struct Runner<'a> {
    opts: &'a BenchOpts,
    work: PathBuf,
    seq: usize,
    tag: String,
    progress: Progress,
}

/// A one-line progress display on stderr: the step of the interleaved series, its
/// trials so far and the time spent, redrawn in place on a terminal (a plain line per
/// step otherwise, so that logs stay readable); with per-trial lines (no `--quiet`)
/// only the step lines.
struct Progress {
    /// Per-trial lines are printed: no bar.
    verbose: bool,
    tty: bool,
    started: std::time::Instant,
    step: usize,
    steps: usize,
    label: String,
    trials: usize,
}

impl Progress {
    fn new(verbose: bool, steps: usize) -> Progress {
        use std::io::IsTerminal;
        Progress {
            verbose,
            tty: std::io::stderr().is_terminal(),
            started: std::time::Instant::now(),
            step: 0,
            steps,
            label: String::new(),
            trials: 0,
        }
    }

    fn step(&mut self, label: String) {
        self.step += 1;
        self.label = label;
        self.trials = 0;
        if self.verbose || !self.tty {
            eprintln!(
                "bench: [{}/{}] {} ({:.0} s so far)",
                self.step,
                self.steps,
                self.label,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn trial(&mut self, load: Load, loss_ratio: f64) {
        self.trials += 1;
        if self.tty && !self.verbose {
            use std::io::Write as _;
            let done = (self.step.saturating_sub(1) * 20) / self.steps.max(1);
            eprint!(
                "\r\x1b[2K[{}{}] {}/{} {} · trial {} at {} · loss {:.3}% · {:.0} s",
                "#".repeat(done),
                "-".repeat(20 - done),
                self.step,
                self.steps,
                self.label,
                self.trials,
                match load {
                    Load::Max => "max".to_owned(),
                    Load::Pps(p) => format!("{:.3} Mpps", p / 1e6),
                },
                loss_ratio * 100.0,
                self.started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    }

    fn finish(&self) {
        if self.tty && !self.verbose && self.step > 0 {
            eprintln!();
        }
    }
}

/// Starts a process with its output in `log`; stdin is a pipe only for testpmd (whose
/// end of input makes it exit), /dev/null otherwise.
fn spawn_logged(program: &Path, args: &[String], log: &Path, pipe: bool) -> Result<Child, String> {
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    Command::new(program)
        .args(args)
        .stdin(if pipe { Stdio::piped() } else { Stdio::null() })
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops a device: SIGTERM (through kill(1)) for the forwarder, end of stdin for
/// testpmd; SIGKILL if it is still there after 10 s.
fn stop(child: &mut Child, dut: Dut) {
    match dut {
        Dut::Forwarder(_) => {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        Dut::Testpmd => drop(child.stdin.take()),
    }
    if wait_timeout(child, Duration::from_secs(10)).is_none() {
        let _ = child.kill();
        // Bounded: a process stuck in the kernel is left behind (and said so) rather
        // than stalling the run.
        if wait_timeout(child, Duration::from_secs(10)).is_none() {
            eprintln!(
                "bench: warning: device process {} did not exit after SIGKILL; left behind",
                child.id()
            );
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

impl Runner<'_> {
    fn eal_base(&self, prefix: &str, cpus: &str) -> Vec<String> {
        let mut v = vec![
            "--no-pci".to_string(),
            format!("--lcores={cpus}"),
            "--file-prefix".into(),
            prefix.into(),
            "--log-level".into(),
            "warning".into(),
        ];
        if self.opts.no_huge {
            v.extend(["--no-huge".into(), "-m".into(), "256".into()]);
        } else {
            v.extend(["-m".into(), "256".into()]);
        }
        v
    }

    /// One trial: returns the outcome and the commands it ran.
    fn trial(
        &mut self,
        dut: Dut,
        load: Load,
        latency: bool,
    ) -> Result<(TgOutcome, Vec<String>), String> {
        self.seq += 1;
        let dir = self.work.join(format!("trial-{:04}", self.seq));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let sock = dir.join("memif.sock");
        let o = self.opts;
        let trial_s = o.params.trial_s;
        let flows = match dut {
            Dut::Forwarder(p) => p.flows,
            Dut::Testpmd => 1,
        };
        let pps = match load {
            Load::Max => "max".to_string(),
            Load::Pps(p) => format!("{:.0}", p.max(1.0)),
        };
        let tg_json = dir.join("tg.json");
        let mut tg_args: Vec<String> = vec![
            "--pps".into(),
            pps,
            "--duration".into(),
            format!("{}ms", (trial_s * 1000.0).round().max(1.0) as u64),
            "--size".into(),
            "64".into(),
            "--proto".into(),
            "udp".into(),
            "--flows".into(),
            flows.to_string(),
            "--dst".into(),
            format!("{}:{}", topo::VIP, topo::VPORT),
            "--src".into(),
            topo::CLIENTS.into(),
            "--dst-mac".into(),
            topo::DUT_MAC.into(),
            "--link-timeout".into(),
            "20s".into(),
            "--start-delay".into(),
            "300ms".into(),
            "--quiet".into(),
            "--json".into(),
            tg_json.display().to_string(),
        ];
        if latency {
            tg_args.extend(["--latency-every".into(), o.latency_every.max(1).to_string()]);
        }
        // The forwarder's closed loop: traffic-gen answers as the real servers.
        if matches!(dut, Dut::Forwarder(p) if !p.one_way) {
            tg_args.extend(["--respond-to".into(), topo::RS_NET.into()]);
        }
        tg_args.push("--".into());
        tg_args.extend(self.eal_base(
            &format!("{}-tg{}", self.tag, self.seq),
            &format!("0@{}", o.gen_cpu),
        ));
        tg_args.extend([
            "--vdev".into(),
            format!(
                "net_memif0,role=server,socket={},socket-abstract=no,rsize=12,id=0",
                sock.display()
            ),
        ]);
        let dut_eal = self.eal_base(
            &format!("{}-dut{}", self.tag, self.seq),
            &format!("0@{c},1@{c}", c = o.dut_cpu),
        );
        let mut config_text = None;
        let (dut_prog, dut_args) = match dut {
            Dut::Forwarder(spec) => {
                let cfg = dir.join("forwarder.toml");
                let text = forwarder_config(&spec, &dut_eal, &sock, &dir.join("ctl.sock"));
                std::fs::write(&cfg, &text).map_err(|e| format!("{}: {e}", cfg.display()))?;
                config_text = Some(text);
                (
                    o.forwarder.clone(),
                    vec![
                        "run".to_string(),
                        cfg.display().to_string(),
                        "--stats-json".into(),
                        dir.join("forwarder-stats.json").display().to_string(),
                        // A backstop: it stops by itself should SIGTERM go unheard.
                        "--duration".into(),
                        format!("{}ms", ((trial_s + 40.0) * 1000.0) as u64),
                    ],
                )
            }
            Dut::Testpmd => {
                let mut a = dut_eal;
                a.extend([
                    "--vdev".into(),
                    format!(
                        "net_memif0,role=client,socket={},socket-abstract=no,rsize=12,id=0",
                        sock.display()
                    ),
                    "--".into(),
                    "--forward-mode=macswap".into(),
                    "--auto-start".into(),
                    "--nb-cores=1".into(),
                    "--rxq=1".into(),
                    "--txq=1".into(),
                    "--burst=32".into(),
                    "--total-num-mbufs=16384".into(),
                ]);
                (o.testpmd.clone(), a)
            }
        };
        // The commands, and the forwarder's configuration file (its trial copy is gone
        // after the run).
        let mut commands = vec![
            command_line(&o.traffic_gen, &tg_args),
            command_line(&dut_prog, &dut_args),
        ];
        commands.extend(config_text);
        let tg_log = dir.join("traffic-gen.log");
        let dut_log = dir.join("dut.log");
        let mut tg = spawn_logged(&o.traffic_gen, &tg_args, &tg_log, false)?;
        // The memif server creates its socket during EAL start; then the client may go.
        let t0 = Instant::now();
        while !sock.exists() && t0.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(s)) = tg.try_wait() {
                return Err(format!(
                    "traffic-gen exited early ({s}):\n{}",
                    tail(&tg_log)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // The file exists from bind(); give the server time to listen before connecting.
        std::thread::sleep(Duration::from_millis(200));
        let mut dev = match spawn_logged(&dut_prog, &dut_args, &dut_log, dut == Dut::Testpmd) {
            Ok(c) => c,
            Err(e) => {
                let _ = tg.kill();
                let _ = tg.wait();
                return Err(e);
            }
        };
        // Wait for the generator; a device that dies first ends the trial at once.
        let limit = Duration::from_secs_f64(trial_s + 60.0);
        let t0 = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = tg.try_wait() {
                break Some(s);
            }
            if let Ok(Some(d)) = dev.try_wait() {
                let _ = tg.kill();
                let _ = tg.wait();
                return Err(format!(
                    "the device exited during the trial ({d}):\n{}",
                    tail(&dut_log)
                ));
            }
            if t0.elapsed() >= limit {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        stop(&mut dev, dut);
        let status = match status {
            Some(s) => s,
            None => {
                let _ = tg.kill();
                let _ = tg.wait();
                return Err(format!("traffic-gen did not finish:\n{}", tail(&tg_log)));
            }
        };
        if !status.success() {
            return Err(format!(
                "traffic-gen failed ({status}):\n{}\n-- device:\n{}",
                tail(&tg_log),
                tail(&dut_log)
            ));
        }
        let text =
            std::fs::read_to_string(&tg_json).map_err(|e| format!("{}: {e}", tg_json.display()))?;
        let out = parse_tg_summary(&text, load, trial_s)?;
        self.progress.trial(load, out.trial.loss_ratio());
        if o.verbose {
            eprintln!(
                "bench: {:<28} load {:>10} tx {:>10} rx {:>10} loss {:.4}%",
                match dut {
                    Dut::Forwarder(p) => p.name(),
                    Dut::Testpmd => "ceiling (testpmd macswap)".into(),
                },
                match load {
                    Load::Max => "max".into(),
                    Load::Pps(p) => format!("{:.3}M", p / 1e6),
                },
                out.trial.tx,
                out.trial.rx,
                out.trial.loss_ratio() * 100.0
            );
        }
        Ok((out, commands))
    }

    fn search(&mut self, dut: Dut) -> Result<(SearchResult, Vec<String>), String> {
        let mut commands = Vec::new();
        let params = self.opts.params;
        let r = search(params, |load| {
            let (o, c) = self.trial(dut, load, false)?;
            if commands.is_empty() {
                commands = c;
            }
            Ok(o.trial)
        })?;
        Ok((r, commands))
    }

    fn latency(&mut self, spec: PointSpec, pdr_pps: f64) -> Result<Vec<LatencyPoint>, String> {
        let mut out = Vec::new();
        if pdr_pps <= 0.0 {
            return Ok(out);
        }
        for f in [0.5, 0.9] {
            let load = (pdr_pps * f).max(self.opts.params.min_pps);
            let (o, _) = self.trial(Dut::Forwarder(spec), Load::Pps(load), true)?;
            let (p50, p90, p99) = o.latency.unwrap_or((0, 0, 0));
            out.push(LatencyPoint {
                fraction_of_pdr: f,
                load_pps: load,
                p50_ns: p50,
                p90_ns: p90,
                p99_ns: p99,
                loss_ratio: o.trial.loss_ratio(),
                histogram: o.histogram,
            });
        }
        Ok(out)
    }
}

/// The run name: `bench-<unix seconds>`.
pub fn default_run_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("bench-{secs}")
}

/// Runs the interleaved series and writes `<out>/<run>/bench.json` and `bench.md`.
pub fn run(opts: &BenchOpts) -> Result<BenchReport, String> {
    let started = Instant::now();
    let dir = opts.out.join(&opts.run);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Sockets, configs and logs of every trial (errors quote the logs' tails).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let work = std::env::temp_dir().join(format!("l4lab-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let result = run_in(opts, &work, &dir, started);
    if std::env::var_os("L4LAB_BENCH_KEEP").is_some() {
        eprintln!("harness bench: trial files kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run_in(
    opts: &BenchOpts,
    work: &Path,
    dir: &Path,
    started: Instant,
) -> Result<BenchReport, String> {
    let tag = format!("lb{}", std::process::id());
    let steps = if opts.no_ceiling {
        (0..opts.points.len()).map(Step::Point).collect()
    } else {
        plan(opts.points.len())
    };
    let mut runner = Runner {
        opts,
        work: work.to_path_buf(),
        seq: 0,
        tag,
        progress: Progress::new(opts.verbose, steps.len()),
    };
    let mut ceilings: Vec<Ceiling> = Vec::new();
    let mut searched: Vec<(SearchResult, Vec<String>, Vec<LatencyPoint>)> = Vec::new();
    for step in steps {
        runner.progress.step(match step {
            Step::Ceiling(i) => format!("ceiling #{i} (testpmd macswap)"),
            Step::Point(i) => opts.points[i].name(),
        });
        match step {
            Step::Ceiling(i) => {
                let (r, commands) = runner.search(Dut::Testpmd)?;
                ceilings.push(Ceiling {
                    index: i,
                    ndr_mpps: r.ndr.pps / 1e6,
                    pdr_mpps: r.pdr.pps / 1e6,
                    search: r,
                    commands,
                });
            }
            Step::Point(i) => {
                let spec = opts.points[i];
                let (r, commands) = runner.search(Dut::Forwarder(spec))?;
                let lat = runner.latency(spec, r.pdr.pps)?;
                searched.push((r, commands, lat));
            }
        }
    }
    runner.progress.finish();
    let points = opts
        .points
        .iter()
        .zip(searched)
        .enumerate()
        .map(|(i, (spec, (r, commands, lat)))| {
            let around: Vec<&SearchResult> = ceilings
                .iter()
                .filter(|c| c.index == i || c.index == i + 1)
                .map(|c| &c.search)
                .collect();
            aggregate(
                *spec,
                spec.dut_packets_per_request(),
                r,
                &around,
                lat,
                commands,
            )
        })
        .collect();
    let environment = vec![
        format!(
            "{} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        format!(
            "generator on CPU {}, device on CPU {} (main and worker lcore)",
            opts.gen_cpu, opts.dut_cpu
        ),
        if opts.no_huge {
            "no hugepages".into()
        } else {
            "hugepages".into()
        },
        "one memif port: traffic-gen server, device client".into(),
    ];
    let report = BenchReport {
        run: opts.run.clone(),
        profile: opts.profile.clone(),
        params: opts.params,
        environment,
        ceilings,
        points,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| format!("JSON: {e}"))?;
    let path = dir.join("bench.json");
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    let md = markdown(&report);
    let path = dir.join("bench.md");
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(md.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(report)
}

/// `harness bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// `ci` (1 s trials, 5% width, 20 s per search) or `nightly` (5 s, 1%, 120 s); the
    /// options below override it.
    #[arg(long, default_value = "ci")]
    pub profile: String,
    /// Trial duration (`1s`, `500ms`).
    #[arg(long, value_parser = parse_duration)]
    pub trial: Option<Duration>,
    /// Goal width (`5%` or `0.05`).
    #[arg(long, value_parser = parse_width)]
    pub width: Option<f64>,
    /// Cap on the sum of trial durations per search (`40s`).
    #[arg(long, value_parser = parse_duration)]
    pub budget: Option<Duration>,
    /// Minimum load (`10k`).
    #[arg(long, value_parser = parse_rate)]
    pub min_pps: Option<f64>,
    /// Maximum load (default: unpaced warm-up, and what it achieved).
    #[arg(long, value_parser = parse_rate)]
    pub max_pps: Option<f64>,
    /// Forwarder modes, comma-separated: fullnat, nat.
    #[arg(long, default_value = "fullnat,nat")]
    pub modes: String,
    /// Flows of the established-traffic points, comma-separated: one point per value
    /// (`1,1M` measures one flow and a million).
    #[arg(long, default_value = "1", value_parser = parse_rate, value_delimiter = ',')]
    pub flows_established: Vec<f64>,
    /// Flows of the new-connection points (0: skip them).
    #[arg(long, default_value = "1M", value_parser = parse_rate_or_zero)]
    pub flows_new: f64,
    /// Results folder; the run writes <out>/<run>/bench.{json,md}.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Run name (default: bench-<unix time>).
    #[arg(long)]
    pub run: Option<String>,
    /// traffic-gen binary (default: beside harness, else PATH).
    #[arg(long)]
    pub traffic_gen: Option<PathBuf>,
    /// forwarder binary (default: beside harness, else PATH).
    #[arg(long)]
    pub forwarder: Option<PathBuf>,
    /// dpdk-testpmd binary.
    #[arg(long, default_value = "dpdk-testpmd")]
    pub testpmd: PathBuf,
    /// Run without hugepages (slow: for tests only).
    #[arg(long)]
    pub no_huge: bool,
    /// CPU of the generator.
    #[arg(long, default_value_t = 0)]
    pub gen_cpu: u32,
    /// CPU of the device under test (its main and worker lcores).
    #[arg(long, default_value_t = 1)]
    pub dut_cpu: u32,
    /// Stamp every Nth packet in the latency trials.
    #[arg(long, default_value_t = 1000)]
    pub latency_every: u64,
    /// Skip the testpmd ceiling.
    #[arg(long)]
    pub no_ceiling: bool,
    /// Measure the forwarder one way: traffic-gen counts the forwarded requests and does
    /// not answer them (one packet per request through the forwarder, as DPVS is measured
    /// with testpmd flowgen; the generator then does the same work as for the ceiling).
    #[arg(long)]
    pub one_way: bool,
    /// No per-trial lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_rate_or_zero(s: &str) -> Result<f64, String> {
    if s.trim() == "0" {
        return Ok(0.0);
    }
    parse_rate(s)
}

impl BenchArgs {
    /// Resolves the profile and the overrides.
    pub fn into_opts(self) -> Result<BenchOpts, String> {
        let mut params = match self.profile.as_str() {
            "ci" => SearchParams::ci(),
            "nightly" => SearchParams::nightly(),
            p => return Err(format!("--profile {p}: use ci or nightly")),
        };
        let custom = self.trial.is_some() || self.width.is_some() || self.budget.is_some();
        if let Some(t) = self.trial {
            params.trial_s = t.as_secs_f64();
        }
        if let Some(w) = self.width {
            params.width = w;
        }
        if let Some(b) = self.budget {
            params.budget_s = b.as_secs_f64();
        }
        if let Some(m) = self.min_pps {
            params.min_pps = m;
        }
        params.max_pps = self.max_pps;
        if params.max_pps.is_some_and(|m| m < params.min_pps) {
            return Err("--max-pps is below --min-pps".into());
        }
        if params.budget_s < params.trial_s {
            return Err("--budget is shorter than one trial".into());
        }
        if self.gen_cpu == self.dut_cpu {
            return Err(format!(
                "--gen-cpu and --dut-cpu are both {}: two busy-polling processes need two CPUs",
                self.gen_cpu
            ));
        }
        let mut points = Vec::new();
        for m in self
            .modes
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            let mode = match m {
                "fullnat" => FwdMode::Fullnat,
                "nat" => FwdMode::Nat,
                _ => return Err(format!("--modes: unknown mode {m:?} (fullnat, nat)")),
            };
            for &flows in &self.flows_established {
                points.push(PointSpec {
                    mode,
                    traffic: Traffic::Established,
                    flows: (flows as u64).max(1),
                    one_way: self.one_way,
                });
            }
            if self.flows_new >= 1.0 {
                points.push(PointSpec {
                    mode,
                    traffic: Traffic::NewConn,
                    flows: self.flows_new as u64,
                    one_way: self.one_way,
                });
            }
        }
        if points.is_empty() {
            return Err("--modes: nothing to run".into());
        }
        Ok(BenchOpts {
            profile: if custom {
                format!("{} (custom)", self.profile)
            } else {
                self.profile
            },
            params,
            points,
            traffic_gen: self
                .traffic_gen
                .unwrap_or_else(|| find_binary("traffic-gen")),
            forwarder: self.forwarder.unwrap_or_else(|| find_binary("forwarder")),
            testpmd: self.testpmd,
            out: self.out,
            run: self.run.unwrap_or_else(default_run_name),
            no_huge: self.no_huge,
            gen_cpu: self.gen_cpu,
            dut_cpu: self.dut_cpu,
            latency_every: self.latency_every,
            no_ceiling: self.no_ceiling,
            verbose: !self.quiet,
        })
    }
}

/// `harness bench`: runs, writes results/<run>/bench.{json,md}, prints the Markdown.
pub fn run_cli(args: &BenchArgs) -> Result<(), String> {
    let opts = args.clone().into_opts()?;
    let report = run(&opts)?;
    println!("{}", markdown(&report));
    println!(
        "harness bench: wrote {}",
        opts.out.join(&opts.run).join("bench.json").display()
    );
    Ok(())
}

/// Finds a binary: beside the running executable (cargo puts the workspace's binaries
/// together), else on PATH by name.
pub fn find_binary(name: &str) -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            for d in [Some(dir), dir.parent()].into_iter().flatten() {
                let p = d.join(name);
                if p.is_file() {
                    return p;
                }
            }
        }
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated device: no loss up to `ndr`, then loss rising linearly to 1% at
    /// `knee`, and beyond `knee` it forwards at most its capacity (`cap`).
    #[derive(Clone, Copy)]
    struct Sim {
        ndr: f64,
        knee: f64,
        cap: f64,
        gen_max: f64,
    }

    impl Sim {
        fn loss(&self, load: f64) -> f64 {
            if load <= self.ndr {
                0.0
            } else if load <= self.knee {
                0.01 * (load - self.ndr) / (self.knee - self.ndr)
            } else {
                let l = 0.01 * self.knee / load;
                (1.0 - (self.cap / load).min(1.0)).max(l)
            }
        }

        /// The exact PDR of this curve (loss = 0.5% in the linear part).
        fn pdr(&self) -> f64 {
            self.ndr + 0.5 * (self.knee - self.ndr)
        }

        fn measure(&self, load: Load, secs: f64) -> Trial {
            let pps = match load {
                Load::Max => self.gen_max,
                Load::Pps(p) => p.min(self.gen_max),
            };
            let tx = (pps * secs).round() as u64;
            let lost = (tx as f64 * self.loss(pps)).ceil() as u64;
            Trial {
                load_pps: match load {
                    Load::Pps(p) => p,
                    Load::Max => 0.0,
                },
                tx,
                rx: tx - lost.min(tx),
                secs,
                warmup: false,
            }
        }
    }

    fn params() -> SearchParams {
        SearchParams {
            min_pps: 10e3,
            max_pps: None,
            trial_s: 1.0,
            width: 0.05,
            budget_s: 40.0,
        }
    }

    #[test]
    fn loss_ratio_and_goals() {
        let t = Trial {
            load_pps: 1e6,
            tx: 1000,
            rx: 995,
            secs: 1.0,
            warmup: false,
        };
        assert!((t.loss_ratio() - 0.005).abs() < 1e-12);
        assert!(meets(t.loss_ratio(), PDR_LOSS), "0.5% meets PDR exactly");
        assert!(!meets(t.loss_ratio(), 0.0));
        assert!(meets(0.0, 0.0));
        let dup = Trial { rx: 1001, ..t };
        assert_eq!(dup.loss_ratio(), 0.0, "more back than sent is no loss");
        let none = Trial { tx: 0, ..t };
        assert_eq!(none.loss_ratio(), 1.0, "nothing sent proves nothing");
    }

    #[test]
    fn converges_to_the_known_ndr_and_pdr() {
        let sim = Sim {
            ndr: 5.0e6,
            knee: 6.0e6,
            cap: 7.0e6,
            gen_max: 12.0e6,
        };
        let p = params();
        let r = search(p, |l| Ok(sim.measure(l, 1.0))).unwrap();
        assert!(r.ndr.converged && r.pdr.converged, "{r:?}");
        assert!(r.trials[0].warmup);
        assert!(
            (r.max_pps - 12e6).abs() < 1.0,
            "max = what the warm-up achieved"
        );
        let (ndr, pdr) = (r.ndr.pps, r.pdr.pps);
        assert!(
            ndr <= sim.ndr && ndr >= sim.ndr * (1.0 - p.width),
            "NDR {ndr} vs {}",
            sim.ndr
        );
        assert!(
            pdr <= sim.pdr() && pdr >= sim.pdr() * (1.0 - p.width),
            "PDR {pdr} vs {}",
            sim.pdr()
        );
        assert!(r.trial_seconds <= p.budget_s);
        // Bounds hold what they claim.
        assert!(sim.loss(ndr) == 0.0 && sim.loss(r.ndr.upper_pps.unwrap()) > 0.0);
        assert!(sim.loss(pdr) <= PDR_LOSS && sim.loss(r.pdr.upper_pps.unwrap()) > PDR_LOSS);
    }

    #[test]
    fn converges_across_many_curves() {
        for (ndr, knee, gen_max) in [
            (0.3e6, 0.31e6, 20e6),
            (1.0e6, 2.0e6, 2.5e6),
            (9.0e6, 9.5e6, 10e6),
            (50e3, 80e3, 30e6),
        ] {
            let sim = Sim {
                ndr,
                knee,
                cap: knee * 1.1,
                gen_max,
            };
            let p = SearchParams {
                width: 0.02,
                budget_s: 60.0,
                ..params()
            };
            let r = search(p, |l| Ok(sim.measure(l, 1.0))).unwrap();
            assert!(r.ndr.converged && r.pdr.converged, "{ndr}: {r:?}");
            assert!(r.ndr.pps <= ndr && r.ndr.pps >= ndr * (1.0 - p.width) - 1.0);
            let pdr = sim.pdr();
            assert!(r.pdr.pps <= pdr + 1.0 && r.pdr.pps >= pdr * (1.0 - p.width) - 1.0);
        }
    }

    #[test]
    fn no_loss_at_max_load_ends_after_the_warm_up() {
        let sim = Sim {
            ndr: 20e6,
            knee: 21e6,
            cap: 30e6,
            gen_max: 8e6,
        };
        let r = search(params(), |l| Ok(sim.measure(l, 1.0))).unwrap();
        assert_eq!(r.trials.len(), 1);
        assert_eq!((r.ndr.pps, r.pdr.pps), (8e6, 8e6));
        assert!(r.ndr.converged);
    }

    #[test]
    fn loss_at_min_load_fails_fast() {
        // Loses 1% of everything, at any load.
        let mut n = 0;
        let r = search(params(), |l| {
            n += 1;
            let pps = match l {
                Load::Max => 5e6,
                Load::Pps(p) => p,
            };
            let tx = pps as u64;
            Ok(Trial {
                load_pps: if let Load::Pps(p) = l { p } else { 0.0 },
                tx,
                rx: tx - tx / 100,
                secs: 1.0,
                warmup: false,
            })
        })
        .unwrap();
        assert!(r.ndr.failed_at_min && r.pdr.failed_at_min, "{r:?}");
        assert_eq!(r.ndr.pps, 0.0);
        assert!(!r.ndr.converged);
        assert!(
            r.trials.iter().any(|t| t.load_pps == params().min_pps),
            "min load was tried"
        );
        assert!(n <= 10, "fails fast: {n} trials");
    }

    #[test]
    fn the_budget_caps_the_search() {
        let sim = Sim {
            ndr: 1e6,
            knee: 1.2e6,
            cap: 2e6,
            gen_max: 20e6,
        };
        let p = SearchParams {
            width: 0.0001,
            budget_s: 5.0,
            ..params()
        };
        let r = search(p, |l| Ok(sim.measure(l, 1.0))).unwrap();
        assert_eq!(r.trials.len(), 5);
        assert!(r.budget_exhausted);
        assert!(r.trial_seconds <= 5.0);
        // Whatever it found is a real lower bound.
        assert!(sim.loss(r.ndr.pps) == 0.0);
    }

    #[test]
    fn bounds_keep_the_newest_trial_in_a_contradiction() {
        let mut b = Bounds::default();
        b.update(5e6, 0.1, 0.0);
        b.update(4e6, 0.0, 0.0);
        assert_eq!((b.lower, b.upper), (Some(4e6), Some(5e6)));
        b.update(6e6, 0.0, 0.0); // noise: passes above the upper bound
        assert_eq!((b.lower, b.upper), (Some(6e6), None));
        b.update(3e6, 0.2, 0.0); // misses below the lower bound
        assert_eq!((b.lower, b.upper), (None, Some(3e6)));
    }

    #[test]
    fn plan_interleaves_ceilings() {
        assert_eq!(
            plan(2),
            vec![
                Step::Ceiling(0),
                Step::Point(0),
                Step::Ceiling(1),
                Step::Point(1),
                Step::Ceiling(2)
            ]
        );
        assert_eq!(plan(0), vec![Step::Ceiling(0)]);
    }

    fn fake_result(ndr: f64, pdr: f64) -> SearchResult {
        let g = |pps, goal| GoalResult {
            loss_goal: goal,
            pps,
            upper_pps: None,
            converged: true,
            failed_at_min: false,
        };
        SearchResult {
            ndr: g(ndr, 0.0),
            pdr: g(pdr, PDR_LOSS),
            max_pps: 100e6,
            mrr_pps: 0.0,
            trials: vec![],
            trial_seconds: 0.0,
            budget_exhausted: false,
        }
    }

    #[test]
    fn aggregation_takes_ratios_on_device_packets() {
        let spec = PointSpec {
            mode: FwdMode::Fullnat,
            traffic: Traffic::Established,
            flows: 1,
            one_way: false,
        };
        let (c1, c2) = (fake_result(10e6, 12e6), fake_result(14e6, 16e6));
        let p = aggregate(
            spec,
            2.0,
            fake_result(3e6, 3.5e6),
            &[&c1, &c2],
            vec![],
            vec!["x".into()],
        );
        assert_eq!(p.name, "fullnat-udp64-established");
        assert!((p.ndr_mpps - 3.0).abs() < 1e-9 && (p.ndr_dut_mpps - 6.0).abs() < 1e-9);
        assert!((p.ceiling_ndr_mpps.unwrap() - 12.0).abs() < 1e-9);
        assert!((p.ratio_ndr.unwrap() - 0.5).abs() < 1e-9);
        assert!((p.ratio_pdr.unwrap() - 0.5).abs() < 1e-9);
        // A failed ceiling is left out of the mean; no ceiling at all gives no ratio.
        let zero = fake_result(0.0, 0.0);
        let p = aggregate(
            spec,
            2.0,
            fake_result(3e6, 3e6),
            &[&zero, &c1],
            vec![],
            vec![],
        );
        assert!((p.ratio_ndr.unwrap() - 0.6).abs() < 1e-9);
        let p = aggregate(spec, 2.0, fake_result(3e6, 3e6), &[], vec![], vec![]);
        assert_eq!(p.ratio_ndr, None);
        let report = BenchReport {
            run: "r".into(),
            profile: "ci".into(),
            params: params(),
            environment: vec![],
            ceilings: vec![],
            points: vec![p],
            wall_seconds: 1.0,
        };
        let md = markdown(&report);
        assert!(md.contains("| fullnat-udp64-established | 3.000 |"), "{md}");
        let mut at_max = report.clone();
        at_max.points[0].search.max_pps = 3e6;
        assert!(markdown(&at_max).contains("3.000 (≥, at max load)"));
    }

    #[test]
    fn parses_traffic_gen_summaries() {
        let text = r#"{"tx_packets": 1000, "rx_packets": 990, "tx_seconds": 0.5,
            "latency": {"p50_ns": 1000, "p90_ns": 2000, "p99_ns": 3000,
                        "histogram": [[1000, 3], [2000, 5], [4000, 1]]}}"#;
        let o = parse_tg_summary(text, Load::Pps(2000.0), 0.5).unwrap();
        assert_eq!((o.trial.tx, o.trial.rx), (1000, 990));
        assert_eq!(o.latency, Some((1000, 2000, 3000)));
        assert_eq!(o.histogram, vec![(1000, 3), (2000, 5), (4000, 1)]);
        assert_eq!(o.trial.load_pps, 2000.0);
        let o = parse_tg_summary(
            r#"{"tx_packets": 10, "rx_packets": 10, "tx_seconds": 0.25, "latency": null}"#,
            Load::Max,
            1.0,
        )
        .unwrap();
        assert_eq!((o.trial.secs, o.latency), (0.25, None));
        let short = r#"{"tx_packets": 500, "rx_packets": 500, "tx_seconds": 0.5}"#;
        let o = parse_tg_summary(short, Load::Pps(2000.0), 0.5).unwrap();
        assert_eq!(
            o.trial.load_pps, 1000.0,
            "counted at the load really offered"
        );
        assert!(parse_tg_summary("{}", Load::Max, 1.0).is_err());
        assert!(parse_tg_summary("not json", Load::Max, 1.0).is_err());
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err() && parse_duration("x").is_err());
        assert_eq!(parse_rate("20k").unwrap(), 20e3);
        assert_eq!(parse_rate("1.5M").unwrap(), 1.5e6);
        assert!(parse_rate("-1").is_err() && parse_rate("fast").is_err());
        assert!((parse_width("5%").unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(parse_width("0.01").unwrap(), 0.01);
        assert!(parse_width("100%").is_err());
        assert_eq!(shell_quote("--lcores=0@1"), "--lcores=0@1");
        assert_eq!(shell_quote("a b"), "'a b'");
    }

    #[test]
    fn forwarder_configs_parse_as_toml() {
        for mode in [FwdMode::Fullnat, FwdMode::Nat] {
            let spec = PointSpec {
                mode,
                traffic: Traffic::NewConn,
                flows: 1_000_000,
                one_way: false,
            };
            let text = forwarder_config(
                &spec,
                &["--no-huge".into(), "--lcores=0@1,1@1".into()],
                Path::new("/tmp/x/memif.sock"),
                Path::new("/tmp/x/ctl.sock"),
            );
            let v: toml::Value = toml::from_str(&text).unwrap();
            assert_eq!(v["service"][0]["mode"].as_str(), Some(mode.as_str()));
            assert_eq!(v["tables"]["conn_capacity"].as_integer(), Some(1 << 20));
            assert_eq!(v.get("laddr").is_some(), mode == FwdMode::Fullnat);
            if mode == FwdMode::Fullnat {
                let l = v["laddr"]["m0"].as_array().unwrap();
                assert_eq!(l.len(), 20, "1M connections need 20 local addresses");
                assert_eq!(l[19].as_str(), Some("192.168.200.20"));
            }
        }
        assert_eq!(laddrs(1), vec!["\"192.168.200.1\"".to_string()]);
        assert_eq!(laddrs(50_001).len(), 2);
        assert_eq!(laddrs(u64::MAX).len(), 250);
    }

    #[test]
    fn one_established_point_per_flow_count() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let cli = Cli::try_parse_from([
            "bench",
            "--modes",
            "fullnat",
            "--flows-established",
            "1,1M",
            "--flows-new",
            "0",
        ])
        .unwrap();
        let opts = cli.bench.into_opts().unwrap();
        let names: Vec<String> = opts.points.iter().map(PointSpec::name).collect();
        assert_eq!(
            names,
            ["fullnat-udp64-established", "fullnat-udp64-established-1M"]
        );
        assert_eq!(opts.points[1].flows, 1_000_000);
        assert!(opts
            .points
            .iter()
            .all(|p| p.dut_packets_per_request() == 2.0));
        let one_way = Cli::try_parse_from([
            "bench",
            "--modes",
            "fullnat",
            "--one-way",
            "--flows-new",
            "1M",
        ])
        .unwrap()
        .bench
        .into_opts()
        .unwrap();
        let names: Vec<String> = one_way.points.iter().map(PointSpec::name).collect();
        assert_eq!(
            names,
            [
                "fullnat-udp64-established-oneway",
                "fullnat-udp64-newconn-oneway"
            ]
        );
        assert!(one_way
            .points
            .iter()
            .all(|p| p.dut_packets_per_request() == 1.0));
        assert!(Cli::try_parse_from(["bench", "--flows-established", "1,x"]).is_err());
    }
}
