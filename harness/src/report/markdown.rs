//! `report.md`: the same content as the HTML page, without charts.

use std::fmt::Write as _;

use super::{class_name, machine_line, num, Quantity, Report};

/// The Markdown summary.
pub(super) fn render(r: &Report) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "# l4lab report — {}\n", cell(&r.run.id));
    let _ = writeln!(
        s,
        "Commit `{}`, {}, machine `{}` ({}). {} runs of this machine in the history{}.\n",
        r.run.commit,
        r.run.date,
        r.machine,
        cell(&machine_line(&r.run.fingerprint)),
        r.runs_on_machine,
        if r.runs_elsewhere > 0 {
            format!(" ({} of other machines not compared)", r.runs_elsewhere)
        } else {
            String::new()
        }
    );

    let _ = writeln!(s, "## Failed checks\n");
    if r.failures.is_empty() {
        let _ = writeln!(
            s,
            "None: {} of {} passed.\n",
            r.run.correctness.len(),
            r.run.correctness.len()
        );
    } else {
        let _ = writeln!(s, "| scenario | topology | failures |\n| --- | --- | --- |");
        for f in &r.failures {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                cell(&f.scenario),
                cell(&f.topology),
                cell(&f.failures.join("; "))
            );
        }
        s.push('\n');
    }
    if !r.run.warnings.is_empty() || !r.history_warnings.is_empty() {
        let _ = writeln!(s, "## Input left out\n");
        for w in &r.run.warnings {
            let _ = writeln!(s, "- {}", cell(w));
        }
        for w in &r.history_warnings {
            let _ = writeln!(s, "- history {}", cell(w));
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Regressions and progressions\n");
    for w in &r.windows {
        let _ = writeln!(
            s,
            "### Last {} run{}\n",
            w.runs,
            if w.runs == 1 { "" } else { "s" }
        );
        if w.regressions.is_empty() && w.progressions.is_empty() {
            let _ = writeln!(s, "None.\n");
            continue;
        }
        let _ = writeln!(
            s,
            "| metric | class | run | commit | date | before | after | change |\n| --- | --- | --- | --- | --- | ---: | ---: | ---: |"
        );
        for e in w.regressions.iter().chain(&w.progressions) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | `{}` | {} | {} | {} | {:+.1}% |",
                cell(&e.metric),
                class_name(e.class),
                cell(&e.run),
                e.commit,
                e.date,
                num(e.before),
                num(e.after),
                e.change_pct
            );
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Metrics\n");
    if r.trends.is_empty() {
        let _ = writeln!(s, "No metrics in this run or its history.");
        return s;
    }
    let _ = writeln!(
        s,
        "| metric | this run | ceiling | ratio | trended | baseline | status | groups | runs |\n| --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |"
    );
    for t in &r.trends {
        let this = r.run.metrics.iter().find(|m| m.name == t.name);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&t.name),
            this.map(|m| format!("{} {}", num(m.value), m.unit))
                .unwrap_or_else(|| "missing".into()),
            this.and_then(|m| m.ceiling).map(num).unwrap_or_default(),
            this.and_then(|m| m.ratio).map(num).unwrap_or_default(),
            match t.quantity {
                Quantity::Ratio => "ratio",
                Quantity::Value => "value",
            },
            r.baseline_of(t).map(num).unwrap_or_default(),
            class_name(t.analysis.status),
            t.analysis.groups.len(),
            t.points.len()
        );
    }
    s
}

/// Text safe inside a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', " ")
}
