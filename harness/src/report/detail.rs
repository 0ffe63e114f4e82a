//! What one run's own files show beyond its metrics, for the HTML report: how each
//! scenario's packets spread over the workers, the NDR/PDR search trace of every bench
//! point and ceiling, and the latency histograms of the latency trials. Read from the
//! run directory (`scenarios/*.json`, `bench.json`); a missing or unreadable file leaves
//! its part empty (the report's other sections already say what was missing).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{escape as e, num};

/// The run's details.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunDetail {
    /// Per scenario × topology: packets per worker.
    pub workers: Vec<ScenarioWorkers>,
    /// Per bench point and ceiling: the trials of its search.
    pub searches: Vec<SearchTrace>,
    /// Per latency trial: its histogram.
    pub latency: Vec<LatencyHist>,
}

/// One scenario × topology's spread over the workers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioWorkers {
    /// Scenario name.
    pub scenario: String,
    /// Topology name.
    pub topology: String,
    /// One entry per worker.
    pub workers: Vec<WorkerBar>,
}

/// One worker's packets in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkerBar {
    /// Worker index.
    pub worker: u64,
    /// Packets received (redirected ones included).
    pub rx: u64,
    /// Packets sent.
    pub tx: u64,
    /// Packets handed to another worker.
    pub redirects: u64,
    /// Packets dropped, all reasons.
    pub drops: u64,
}

/// One MLRsearch, trial by trial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchTrace {
    /// `fullnat-udp64-established`, `ceiling #0`, …
    pub name: String,
    /// The NDR found, Mpps of offered load (0 when not converged).
    pub ndr_mpps: f64,
    /// The PDR found, Mpps of offered load.
    pub pdr_mpps: f64,
    /// The trials in the order they ran.
    pub trials: Vec<TrialDot>,
}

/// One trial of a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrialDot {
    /// Offered load, Mpps.
    pub load_mpps: f64,
    /// Lost share of what was sent.
    pub loss_ratio: f64,
    /// The unpaced warm-up trial.
    pub warmup: bool,
}

/// The latency histogram of one latency trial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyHist {
    /// The bench point.
    pub name: String,
    /// Load as a fraction of the point's PDR.
    pub fraction_of_pdr: f64,
    /// Load, Mpps.
    pub load_mpps: f64,
    /// Percentiles, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// (upper bound ns, samples) per bucket.
    pub buckets: Vec<(u64, u64)>,
}

fn json(path: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Reads what there is of `dir/scenarios/*.json` and `dir/bench.json`.
pub fn read(dir: &Path) -> RunDetail {
    let mut d = RunDetail::default();
    let mut files: Vec<_> = fs::read_dir(dir.join("scenarios"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for path in files {
        let Some(v) = json(&path) else { continue };
        let Some(workers) = v
            .get("counts")
            .and_then(|c| c.get("workers"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        d.workers.push(ScenarioWorkers {
            scenario: s(&v, "scenario"),
            topology: s(&v, "topology"),
            workers: workers
                .iter()
                .map(|w| WorkerBar {
                    worker: u(w, "worker"),
                    rx: u(w, "rx"),
                    tx: u(w, "tx"),
                    redirects: u(w, "redirects"),
                    drops: w
                        .get("drops")
                        .and_then(Value::as_object)
                        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum()),
                })
                .collect(),
        });
    }
    if let Some(bench) = json(&dir.join("bench.json")) {
        let trace = |name: String, search: &Value| SearchTrace {
            name,
            ndr_mpps: search.get("ndr").map_or(0.0, |x| f(x, "pps")) / 1e6,
            pdr_mpps: search.get("pdr").map_or(0.0, |x| f(x, "pps")) / 1e6,
            trials: search
                .get("trials")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            let (tx, rx) = (u(t, "tx"), u(t, "rx"));
                            TrialDot {
                                load_mpps: f(t, "load_pps") / 1e6,
                                loss_ratio: if tx == 0 {
                                    1.0
                                } else {
                                    tx.saturating_sub(rx) as f64 / tx as f64
                                },
                                warmup: t.get("warmup").and_then(Value::as_bool).unwrap_or(false),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        for p in bench
            .get("points")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = s(p, "name");
            if let Some(search) = p.get("search") {
                d.searches.push(trace(name.clone(), search));
            }
            for l in p
                .get("latency")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                d.latency.push(LatencyHist {
                    name: name.clone(),
                    fraction_of_pdr: f(l, "fraction_of_pdr"),
                    load_mpps: f(l, "load_pps") / 1e6,
                    p50_ns: u(l, "p50_ns"),
                    p90_ns: u(l, "p90_ns"),
                    p99_ns: u(l, "p99_ns"),
                    buckets: l
                        .get("histogram")
                        .and_then(Value::as_array)
                        .map(|bs| {
                            bs.iter()
                                .filter_map(|b| Some((b.get(0)?.as_u64()?, b.get(1)?.as_u64()?)))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        for (i, c) in bench
            .get("ceilings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(search) = c.get("search") {
                d.searches
                    .push(trace(format!("ceiling #{i} (testpmd macswap)"), search));
            }
        }
    }
    d
}

const CW: f64 = 360.0;
const CH: f64 = 160.0;
const L: f64 = 48.0;
const R: f64 = 8.0;
const T: f64 = 18.0;
const B: f64 = 24.0;

/// Opens a small chart with its title, frame and y-axis label.
fn open(s: &mut String, class: &str, title: &str, y_max: &str) {
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"{class}\" width=\"{CW}\" \
         height=\"{CH}\" viewBox=\"0 0 {CW} {CH}\" role=\"img\"><title>{t}</title>\
         <text x=\"{L}\" y=\"12\" font-size=\"11\">{t}</text>\
         <line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{L}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"{lx}\" y=\"{ty}\" font-size=\"10\" text-anchor=\"end\">{y_max}</text>\
         <text x=\"{lx}\" y=\"{b}\" font-size=\"10\" text-anchor=\"end\">0</text>",
        t = e(title),
        b = CH - B,
        r = CW - R,
        lx = L - 3.0,
        ty = T + 8.0,
    );
}

/// Per-worker bars of one scenario: received (blue) and sent (green) side by side, with
/// redirects and drops in the tooltip.
fn workers_chart(s: &mut String, w: &ScenarioWorkers) {
    let max = w
        .workers
        .iter()
        .map(|b| b.rx.max(b.tx))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    open(
        s,
        "workers",
        &format!("{} ({}): packets per worker", w.scenario, w.topology),
        &max.to_string(),
    );
    let n = w.workers.len().max(1) as f64;
    let slot = (CW - L - R) / n;
    let bar = (slot * 0.35).min(40.0);
    let h = |v: u64| (CH - T - B) * v as f64 / max;
    for (i, b) in w.workers.iter().enumerate() {
        let x0 = L + slot * i as f64 + slot / 2.0 - bar;
        for (k, (v, fill, what)) in [(b.rx, "#1f77b4", "rx"), (b.tx, "#2ca02c", "tx")]
            .into_iter()
            .enumerate()
        {
            let _ = writeln!(
                s,
                "<rect class=\"{what}\" data-worker=\"{w}\" x=\"{x:.1}\" y=\"{y:.1}\" \
                 width=\"{bar:.1}\" height=\"{hh:.1}\" fill=\"{fill}\"><title>worker {w} \
                 {what} {v} (redirects {rd}, drops {dr})</title></rect>",
                w = b.worker,
                x = x0 + bar * k as f64,
                y = CH - B - h(v),
                hh = h(v),
                rd = b.redirects,
                dr = b.drops,
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{y}\" font-size=\"10\" text-anchor=\"middle\">w{w}</text>",
            x = x0 + bar,
            y = CH - 8.0,
            w = b.worker
        );
    }
    let _ = writeln!(s, "</svg>");
}

/// A search trial by trial: offered load (y) in run order (x); green dots lost nothing,
/// orange ones stayed within the PDR's 0.5%, red ones lost more; the warm-up is hollow.
/// Dashed lines mark the NDR and PDR found.
fn search_chart(s: &mut String, t: &SearchTrace) {
    let max = t
        .trials
        .iter()
        .map(|d| d.load_mpps)
        .fold(t.pdr_mpps.max(t.ndr_mpps), f64::max)
        .max(1e-6);
    open(
        s,
        "search",
        &format!("{}: search trace (Mpps offered per trial)", t.name),
        &num(max),
    );
    let n = t.trials.len().max(1) as f64;
    let x = |i: usize| L + (CW - L - R) * (i as f64 + 0.5) / n;
    let y = |v: f64| CH - B - (CH - T - B) * v / max;
    for (label, v, color) in [
        ("NDR", t.ndr_mpps, "#2ca02c"),
        ("PDR", t.pdr_mpps, "#ff7f0e"),
    ] {
        if v > 0.0 {
            let _ = writeln!(
                s,
                "<line class=\"{c}\" x1=\"{L}\" y1=\"{yy:.1}\" x2=\"{r}\" y2=\"{yy:.1}\" \
                 stroke=\"{color}\" stroke-dasharray=\"4 3\"><title>{label} {v}</title></line>",
                c = label.to_lowercase(),
                yy = y(v),
                r = CW - R,
                v = num(v)
            );
        }
    }
    for (i, d) in t.trials.iter().enumerate() {
        let color = if d.loss_ratio <= 0.0 {
            "#2ca02c"
        } else if d.loss_ratio <= 0.005 {
            "#ff7f0e"
        } else {
            "#d62728"
        };
        let fill = if d.warmup { "#fff" } else { color };
        let _ = writeln!(
            s,
            "<circle class=\"trial\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{fill}\" \
             stroke=\"{color}\"><title>trial {n}{w}: {load} Mpps, loss {loss:.3}%</title></circle>",
            cx = x(i),
            cy = y(d.load_mpps),
            n = i + 1,
            w = if d.warmup { " (warm-up)" } else { "" },
            load = num(d.load_mpps),
            loss = d.loss_ratio * 100.0
        );
    }
    let _ = writeln!(s, "</svg>");
}

fn us(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{}ms", num(ns as f64 / 1e6))
    } else {
        format!("{}µs", num(ns as f64 / 1e3))
    }
}

/// A latency histogram: share of samples per bucket (buckets double from 1 µs).
fn latency_chart(s: &mut String, h: &LatencyHist) {
    let total: u64 = h.buckets.iter().map(|b| b.1).sum();
    let max_share = h
        .buckets
        .iter()
        .map(|b| b.1 as f64 / total.max(1) as f64)
        .fold(0.0, f64::max)
        .max(1e-9);
    open(
        s,
        "latency",
        &format!(
            "{} at {:.0}% of PDR ({} Mpps): p50 {} p90 {} p99 {}",
            h.name,
            h.fraction_of_pdr * 100.0,
            num(h.load_mpps),
            us(h.p50_ns),
            us(h.p90_ns),
            us(h.p99_ns)
        ),
        &format!("{:.0}%", max_share * 100.0),
    );
    let n = h.buckets.len().max(1) as f64;
    let slot = (CW - L - R) / n;
    for (i, &(upper, count)) in h.buckets.iter().enumerate() {
        let share = count as f64 / total.max(1) as f64;
        let hh = (CH - T - B) * share / max_share;
        let _ = writeln!(
            s,
            "<rect class=\"bucket\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" \
             height=\"{hh:.1}\" fill=\"#9467bd\"><title>≤ {up}: {count} ({pct:.2}%)</title></rect>",
            x = L + slot * i as f64 + 1.0,
            y = CH - B - hh,
            w = (slot - 2.0).max(1.0),
            up = us(upper),
            pct = share * 100.0
        );
    }
    if let (Some(first), Some(last)) = (h.buckets.first(), h.buckets.last()) {
        let _ = writeln!(
            s,
            "<text x=\"{L}\" y=\"{y}\" font-size=\"10\">≤{a}</text>\
             <text x=\"{r}\" y=\"{y}\" font-size=\"10\" text-anchor=\"end\">≤{b}</text>",
            y = CH - 8.0,
            r = CW - R,
            a = us(first.0),
            b = us(last.0)
        );
    }
    let _ = writeln!(s, "</svg>");
}

/// The "This run" section: charts for whatever the run directory held.
pub(super) fn render(s: &mut String, d: &RunDetail) {
    if d.workers.is_empty() && d.searches.is_empty() && d.latency.is_empty() {
        return;
    }
    let _ = writeln!(s, "<section id=\"this-run\">\n<h2>This run</h2>");
    if !d.workers.is_empty() {
        let _ = writeln!(
            s,
            "<h3>Packets per worker</h3>\n<p class=\"meta\">Per scenario and topology: \
             received (blue) and sent (green) by each worker; redirects and drops in the \
             tooltips.</p>\n<div>"
        );
        for w in &d.workers {
            workers_chart(s, w);
        }
        let _ = writeln!(s, "</div>");
    }
    if !d.searches.is_empty() {
        let _ = writeln!(
            s,
            "<h3>Search traces</h3>\n<p class=\"meta\">Each NDR/PDR search trial by trial: \
             offered load; green lost nothing, orange at most 0.5%, red more; hollow is the \
             warm-up; dashed lines are the NDR and PDR found.</p>\n<div>"
        );
        for t in &d.searches {
            search_chart(s, t);
        }
        let _ = writeln!(s, "</div>");
    }
    if d.latency.iter().any(|h| !h.buckets.is_empty()) {
        let _ = writeln!(
            s,
            "<h3>Latency</h3>\n<p class=\"meta\">Round-trip latency of the stamped packets \
             at 50% and 90% of each point's PDR: share of samples per bucket.</p>\n<div>"
        );
        for h in d.latency.iter().filter(|h| !h.buckets.is_empty()) {
            latency_chart(s, h);
        }
        let _ = writeln!(s, "</div>");
    }
    let _ = writeln!(s, "</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("scenarios")).unwrap();
        fs::write(
            dir.path().join("scenarios/fullnat_tcp-inproc.json"),
            r#"{"scenario": "fullnat-tcp", "topology": "inproc", "passed": true,
                "counts": {"workers": [
                    {"worker": 0, "rx": 120, "tx": 100, "drops": {"ttl_exceeded": 2}, "redirects": 0},
                    {"worker": 1, "rx": 80, "tx": 80, "drops": {}, "redirects": 5}]}}"#,
        )
        .unwrap();
        fs::write(dir.path().join("scenarios/notes.txt"), "not json").unwrap();
        fs::write(
            dir.path().join("bench.json"),
            r#"{"points": [{"name": "fullnat-udp64-established",
                  "search": {"ndr": {"pps": 2000000.0}, "pdr": {"pps": 3000000.0},
                             "trials": [{"load_pps": 5000000.0, "tx": 100, "rx": 50, "warmup": true},
                                        {"load_pps": 3000000.0, "tx": 1000, "rx": 996},
                                        {"load_pps": 2000000.0, "tx": 1000, "rx": 1000}]},
                  "latency": [{"fraction_of_pdr": 0.5, "load_pps": 1500000.0, "p50_ns": 1500,
                               "p90_ns": 3000, "p99_ns": 9000,
                               "histogram": [[1000, 10], [2000, 60], [4000, 25], [16000, 5]]}]}],
                "ceilings": [{"search": {"ndr": {"pps": 9000000.0}, "pdr": {"pps": 9500000.0},
                              "trials": [{"load_pps": 9500000.0, "tx": 10, "rx": 10}]}}]}"#,
        )
        .unwrap();
        dir
    }

    #[test]
    fn reads_workers_searches_and_histograms() {
        let dir = run_dir();
        let d = read(dir.path());
        assert_eq!(d.workers.len(), 1);
        assert_eq!(d.workers[0].scenario, "fullnat-tcp");
        assert_eq!(
            d.workers[0].workers[0],
            WorkerBar {
                worker: 0,
                rx: 120,
                tx: 100,
                redirects: 0,
                drops: 2
            }
        );
        assert_eq!(d.searches.len(), 2, "the point and the ceiling");
        let t = &d.searches[0];
        assert_eq!((t.ndr_mpps, t.pdr_mpps), (2.0, 3.0));
        assert_eq!(t.trials.len(), 3);
        assert!(t.trials[0].warmup);
        assert!((t.trials[1].loss_ratio - 0.004).abs() < 1e-12);
        assert_eq!(t.trials[2].loss_ratio, 0.0);
        assert!(d.searches[1].name.starts_with("ceiling #0"));
        assert_eq!(d.latency[0].buckets.len(), 4);
        assert_eq!(read(&dir.path().join("nothing-here")), RunDetail::default());
    }

    #[test]
    fn renders_one_chart_each_as_well_formed_svg() {
        let d = read(run_dir().path());
        let mut s = String::new();
        render(&mut s, &d);
        assert_eq!(
            s.matches("<svg ").count(),
            4,
            "workers, 2 searches, 1 histogram"
        );
        assert_eq!(s.matches("<rect class=\"rx\"").count(), 2);
        assert_eq!(s.matches("<circle class=\"trial\"").count(), 4);
        assert_eq!(s.matches("<rect class=\"bucket\"").count(), 4);
        // Colours follow the loss: red (warm-up, 50% lost, hollow), orange (0.4%), green.
        assert!(s.contains("fill=\"#fff\" stroke=\"#d62728\""));
        assert!(s.contains("fill=\"#ff7f0e\""));
        assert_eq!(s.matches("<svg").count(), s.matches("</svg>").count());
        let mut empty = String::new();
        render(&mut empty, &RunDetail::default());
        assert!(empty.is_empty(), "nothing to show, no section");
    }
}
