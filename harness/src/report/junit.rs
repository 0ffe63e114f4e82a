//! `report.xml`: JUnit XML, for CI systems that show test results.
//!
//! Suite `correctness`: one test case per scenario × topology, a `<failure>` for each
//! failed one, `<skipped>` for one that did not run. Suite `metrics`: one test case per metric of this run; a metric whose
//! newest group is a regression is a `<failure type="regression">` only with
//! `--fail-on-regression` (the same rule as the exit code), and otherwise says so in
//! `<system-out>`.

use std::fmt::Write as _;

use super::{class_name, escape as e, num, Report};
use crate::trend::Class;

/// The JUnit document.
pub(super) fn render(r: &Report) -> String {
    let checks = r.run.correctness.len();
    let check_failures = r.failures.len();
    let metrics = r.run.metrics.len();
    let metric_failures = if r.fail_on_regression {
        r.run
            .metrics
            .iter()
            .filter(|m| status(r, &m.name) == Class::Regression)
            .count()
    } else {
        0
    };
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<testsuites name="l4lab {}" tests="{}" failures="{}">"#,
        e(&r.run.id),
        checks + metrics,
        check_failures + metric_failures
    );
    let _ = writeln!(
        s,
        r#"  <testsuite name="correctness" tests="{checks}" failures="{check_failures}" skipped="{}">"#,
        r.run
            .correctness
            .iter()
            .filter(|c| c.passed && c.skipped.is_some())
            .count()
    );
    for c in &r.run.correctness {
        let _ = write!(
            s,
            r#"    <testcase classname="correctness.{}" name="{}""#,
            e(&c.topology),
            e(&c.scenario)
        );
        if let (true, Some(why)) = (c.passed, &c.skipped) {
            let _ = writeln!(
                s,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                e(why)
            );
            continue;
        }
        if c.passed {
            let _ = writeln!(s, "/>");
            continue;
        }
        let first = c.failures.first().map(String::as_str).unwrap_or("failed");
        let _ = writeln!(
            s,
            ">\n      <failure type=\"check\" message=\"{}\">{}</failure>\n    </testcase>",
            e(first),
            e(&c.failures.join("\n"))
        );
    }
    let _ = writeln!(s, "  </testsuite>");
    let _ = writeln!(
        s,
        r#"  <testsuite name="metrics" tests="{metrics}" failures="{metric_failures}">"#
    );
    for m in &r.run.metrics {
        let st = status(r, &m.name);
        let mut out = format!("{} {}", num(m.value), m.unit);
        if let Some(c) = m.ceiling {
            let _ = write!(out, ", ceiling {}", num(c));
        }
        if let Some(x) = m.ratio {
            let _ = write!(out, ", ratio {}", num(x));
        }
        let _ = write!(out, "; trend: {}", class_name(st));
        let _ = writeln!(
            s,
            r#"    <testcase classname="metrics" name="{}">"#,
            e(&m.name)
        );
        if r.fail_on_regression && st == Class::Regression {
            let _ = writeln!(
                s,
                r#"      <failure type="regression" message="{}">{}</failure>"#,
                e(&format!("{} regressed", m.name)),
                e(&out)
            );
        }
        let _ = writeln!(s, "      <system-out>{}</system-out>", e(&out));
        let _ = writeln!(s, "    </testcase>");
    }
    let _ = writeln!(s, "  </testsuite>");
    let _ = writeln!(s, "</testsuites>");
    s
}

fn status(r: &Report, name: &str) -> Class {
    r.trends
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.analysis.status)
        .unwrap_or(Class::Normal)
}
