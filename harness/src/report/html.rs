//! `report.html`: one static page, no script, no external file; charts are inline SVG.
//!
//! Order: failed checks, the anomaly tables (last 1, 7, 30 runs), then one chart per
//! metric. The page is well-formed XML as well as HTML, so tests (and tools) can parse
//! it with an XML parser.

use std::fmt::Write as _;

use super::{class_name, escape as e, machine_line, num, MetricTrend, Quantity, Report};
use crate::trend::Class;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
td.n{text-align:right}.fail{color:#b00}.ok{color:#070}.regression{color:#c00}.progression{color:#080}\
svg.trend{border:1px solid #ddd;background:#fff}.meta{color:#555}";

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 28.0;

/// The page.
pub(super) fn render(r: &Report) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <title>l4lab report {id}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>l4lab report — {id}</h1>\n",
        id = e(&r.run.id)
    );
    let _ = writeln!(
        s,
        "<p class=\"meta\">Commit <code>{}</code>, {}, machine <code>{}</code> ({}). \
         {} runs of this machine in the history{}.</p>",
        e(&r.run.commit),
        e(&r.run.date),
        e(&r.machine),
        e(&machine_line(&r.run.fingerprint)),
        r.runs_on_machine,
        if r.runs_elsewhere > 0 {
            format!("; {} of other machines not compared", r.runs_elsewhere)
        } else {
            String::new()
        }
    );
    failures(&mut s, r);
    super::detail::render(&mut s, &r.detail);
    windows(&mut s, r);
    trends(&mut s, r);
    let _ = writeln!(s, "</body>\n</html>");
    s
}

fn failures(s: &mut String, r: &Report) {
    let _ = writeln!(s, "<section id=\"failures\">\n<h2>Failed checks</h2>");
    if r.failures.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"ok\">None: {n} of {n} scenario checks passed.</p>",
            n = r.run.correctness.len()
        );
    } else {
        let _ = writeln!(
            s,
            "<table class=\"failures\">\n<tr><th>scenario</th><th>topology</th><th>failures</th></tr>"
        );
        for f in &r.failures {
            let _ = write!(
                s,
                "<tr class=\"fail\"><td>{}</td><td>{}</td><td>",
                e(&f.scenario),
                e(&f.topology)
            );
            for (i, line) in f.failures.iter().enumerate() {
                let _ = write!(s, "{}{}", if i > 0 { "<br/>" } else { "" }, e(line));
            }
            let _ = writeln!(s, "</td></tr>");
        }
        let _ = writeln!(s, "</table>");
    }
    let warnings: Vec<String> = r
        .run
        .warnings
        .iter()
        .cloned()
        .chain(r.history_warnings.iter().map(|w| format!("history {w}")))
        .collect();
    if !warnings.is_empty() {
        let _ = writeln!(s, "<h3>Input left out</h3>\n<ul>");
        for w in warnings {
            let _ = writeln!(s, "<li>{}</li>", e(&w));
        }
        let _ = writeln!(s, "</ul>");
    }
    let _ = writeln!(s, "</section>");
}

fn windows(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "<section id=\"anomalies\">\n<h2>Regressions and progressions</h2>"
    );
    for w in &r.windows {
        let _ = writeln!(
            s,
            "<h3>Last {} run{}</h3>",
            w.runs,
            if w.runs == 1 { "" } else { "s" }
        );
        if w.regressions.is_empty() && w.progressions.is_empty() {
            let _ = writeln!(s, "<p>None.</p>");
            continue;
        }
        let _ = writeln!(
            s,
            "<table class=\"anomalies\" data-window=\"{}\">\n<tr><th>metric</th><th>class</th>\
             <th>run</th><th>commit</th><th>date</th><th>before</th><th>after</th><th>change</th></tr>",
            w.runs
        );
        for ev in w.regressions.iter().chain(&w.progressions) {
            let c = class_name(ev.class);
            let _ = writeln!(
                s,
                "<tr class=\"{c}\"><td>{}</td><td>{c}</td><td>{}</td><td><code>{}</code></td>\
                 <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:+.1}%</td></tr>",
                e(&ev.metric),
                e(&ev.run),
                e(&ev.commit),
                e(&ev.date),
                num(ev.before),
                num(ev.after),
                ev.change_pct
            );
        }
        let _ = writeln!(s, "</table>");
    }
    let _ = writeln!(s, "</section>");
}

fn trends(s: &mut String, r: &Report) {
    let _ = writeln!(s, "<section id=\"trends\">\n<h2>Trends</h2>");
    if r.trends.is_empty() {
        let _ = writeln!(s, "<p>No metrics in this run or its history.</p>");
    }
    for t in &r.trends {
        let st = class_name(t.analysis.status);
        let _ = writeln!(
            s,
            "<div class=\"metric\">\n<h3>{}</h3>\n<p>Trended: {}; status <span class=\"{st}\">{st}</span>; \
             {} runs, {} groups, {} outliers{}.</p>",
            e(&t.name),
            match t.quantity {
                Quantity::Ratio => "ratio to the same-run ceiling",
                Quantity::Value => "value",
            },
            t.points.len(),
            t.analysis.groups.len(),
            t.analysis.outliers.len(),
            r.baseline_of(t)
                .map(|b| format!("; baseline {} (dashed)", num(b)))
                .unwrap_or_default()
        );
        chart(s, t, r.runs_on_machine, r.baseline_of(t));
        let _ = writeln!(s, "</div>");
    }
    let _ = writeln!(s, "</section>");
}

/// One trend chart: points per run, group means as lines, red/green markers. The x axis
/// is the machine's runs (`runs` of them), so a run without the metric leaves a gap.
/// `baseline`, if any, is a dashed line.
fn chart(s: &mut String, t: &MetricTrend, runs: usize, baseline: Option<f64>) {
    let slots = runs.max(t.points.last().map_or(0, |p| p.position + 1));
    let (lo, hi) = t
        .points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.y), hi.max(p.y))
        });
    let (lo, hi) = match baseline.filter(|b| b.is_finite()) {
        Some(b) => (lo.min(b), hi.max(b)),
        None => (lo, hi),
    };
    let (lo, hi) = if !lo.is_finite() || !hi.is_finite() {
        (0.0, 1.0)
    } else if hi - lo <= hi.abs() * 1e-9 {
        let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.05 };
        (lo - pad, hi + pad)
    } else {
        let pad = (hi - lo) * 0.08;
        (lo - pad, hi + pad)
    };
    // x of the i-th point, by its run's position.
    let x = |i: usize| {
        let pos = t.points.get(i).map_or(0, |p| p.position);
        if slots <= 1 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * pos as f64 / (slots - 1) as f64
        }
    };
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (hi - v) / (hi - lo);
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"trend\" data-metric=\"{name}\" \
         width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">\n<title>{name}</title>",
        name = e(&t.name)
    );
    // Axes and the y range.
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"{tx}\" y=\"{ty1}\" font-size=\"11\" text-anchor=\"end\">{hi}</text>\
         <text x=\"{tx}\" y=\"{ty2}\" font-size=\"11\" text-anchor=\"end\">{lo}</text>\
         <text x=\"{LEFT}\" y=\"{ty3}\" font-size=\"11\">{first}</text>\
         <text x=\"{r}\" y=\"{ty3}\" font-size=\"11\" text-anchor=\"end\">{last}</text>\
         <text x=\"{LEFT}\" y=\"{ty0}\" font-size=\"11\" dx=\"4\">{label}</text>",
        ty0 = TOP - 4.0,
        label = match t.quantity {
            Quantity::Ratio => "ratio to ceiling".to_owned(),
            Quantity::Value => e(&t.unit),
        },
        b = H - BOTTOM,
        r = W - RIGHT,
        tx = LEFT - 4.0,
        ty1 = TOP + 10.0,
        ty2 = H - BOTTOM,
        ty3 = H - 8.0,
        hi = num(hi),
        lo = num(lo),
        first = t.points.first().map(|p| e(&p.date)).unwrap_or_default(),
        last = t.points.last().map(|p| e(&p.date)).unwrap_or_default(),
    );
    if let Some(b) = baseline.filter(|b| b.is_finite()) {
        let _ = writeln!(
            s,
            "<line class=\"baseline\" x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{r}\" y2=\"{yy:.1}\" \
             stroke=\"#999\" stroke-dasharray=\"5 4\"><title>baseline {b}</title></line>",
            yy = y(b),
            r = W - RIGHT,
            b = num(b)
        );
    }
    // Group means.
    for g in &t.analysis.groups {
        let (x1, x2) = (x(g.first), x(g.last));
        let (x1, x2) = if g.first == g.last {
            (x1 - 6.0, x2 + 6.0)
        } else {
            (x1, x2)
        };
        let _ = writeln!(
            s,
            "<line class=\"group-mean\" x1=\"{x1:.1}\" y1=\"{yy:.1}\" x2=\"{x2:.1}\" y2=\"{yy:.1}\" \
             stroke=\"#444\" stroke-width=\"2\"><title>group mean {m} (σ {sd}, {len} runs)</title></line>",
            yy = y(g.mean),
            m = num(g.mean),
            sd = num(g.stdev),
            len = g.len
        );
    }
    // Points, with markers where a group starts a regression or progression.
    for (i, p) in t.points.iter().enumerate() {
        let event = t.analysis.events.iter().find(|ev| ev.index == i);
        let outlier = t.analysis.outliers.contains(&i);
        let (class, fill, radius) = match event.map(|ev| ev.class) {
            Some(Class::Regression) => ("point regression", "#d62728", 6.0),
            Some(Class::Progression) => ("point progression", "#2ca02c", 6.0),
            _ if outlier => ("point outlier", "#fff", 3.5),
            _ => ("point", "#1f77b4", 3.5),
        };
        let mut tip = format!(
            "{} {} {}: {} {}",
            p.commit,
            p.date,
            p.run,
            num(p.value),
            t.unit
        );
        if let Some(r) = p.ratio {
            let _ = write!(tip, ", ratio {}", num(r));
        }
        if let Some(ev) = event {
            let _ = write!(
                tip,
                "; {} {} → {}",
                class_name(ev.class),
                num(ev.before),
                num(ev.after)
            );
        }
        if outlier {
            tip.push_str("; outlier");
        }
        let _ = writeln!(
            s,
            "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius}\" fill=\"{fill}\" \
             stroke=\"#1f77b4\"><title>{}</title></circle>",
            x(i),
            y(p.y),
            e(&tip)
        );
    }
    let _ = writeln!(s, "</svg>");
}
