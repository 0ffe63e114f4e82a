//! The report rendered from the fixture history and run (`tests/fixtures/`), checked by
//! parsing its HTML and JUnit XML, not by eye.
//!
//! The fixture history has 25 runs of one machine (plus 3 of another machine and one
//! unreadable line): `fullnat/…/pdr_mpps` steps from a ratio of 0.18 down to 0.15 at run
//! 21 (commit c0ffe14); the NAT and smoke metrics are steady (NAT is missing in some
//! runs); the latency metric has no ceiling and drops from 30 to 20 us in the fixture
//! run. The fixture run has three scenario results, one failed.

use std::path::{Path, PathBuf};

use harness::history::{self, load_history, Fingerprint};
use harness::report::{self, Report};
use harness::trend::Class;

const RUN: &str = "2026-02-10-abc1234";
const FULLNAT: &str = "fullnat/64B/1w/new-conn/pdr_mpps";
const LATENCY: &str = "fullnat/64B/1w/new-conn/latency_p99_us";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn build(fail_on_regression: bool) -> Report {
    let run = history::assemble_run(&fixtures().join("runs").join(RUN), || {
        panic!("the fixture run has run.json: no probing")
    })
    .unwrap();
    let history = load_history(&fixtures().join("history.jsonl")).unwrap();
    Report::build(run, &history, fail_on_regression)
}

#[test]
fn the_report_model() {
    let r = build(false);
    assert_eq!(r.run.fingerprint.cores, 2);
    assert_eq!(r.runs_on_machine, 26);
    assert_eq!(r.runs_elsewhere, 3);
    assert_eq!(r.history_warnings.len(), 1);
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.trends.len(), 4);
    let status = |name: &str| {
        r.trends
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.analysis.status)
    };
    assert_eq!(status(FULLNAT), Some(Class::Regression));
    assert_eq!(status(LATENCY), Some(Class::Progression));
    assert_eq!(
        status("nat/64B/1w/established/pdr_mpps"),
        Some(Class::Normal)
    );
    assert_eq!(status(history::SMOKE_METRIC), Some(Class::Normal));
    // Windows: the latency progression is in the last run; the FULLNAT step (run 21 of
    // 26) only in the 7- and 30-run windows.
    let w: Vec<(usize, usize, usize)> = r
        .windows
        .iter()
        .map(|w| (w.runs, w.regressions.len(), w.progressions.len()))
        .collect();
    assert_eq!(w, vec![(1, 0, 1), (7, 1, 1), (30, 1, 1)]);
    assert_eq!(r.windows[1].regressions[0].commit, "c0ffe14");
    assert_eq!(r.verdict().len(), 1, "{:?}", r.verdict());
    assert_eq!(build(true).verdict().len(), 2);
}

#[test]
fn html_order_charts_markers_and_tooltips() {
    let r = build(false);
    let html = report::to_html(&r);
    let doc = xml::parse(&html).unwrap_or_else(|e| panic!("report.html is not well-formed: {e}"));
    // No scripts, no external assets.
    assert!(doc.find_all(&|n| n.name == "script").is_empty());
    assert!(doc
        .find_all(&|n| n.attr("src").is_some() || n.attr("href").is_some())
        .is_empty());

    // Failed checks come first, then the anomaly tables, then the charts.
    let order: Vec<String> = doc
        .find_all(&|n| n.name == "section" || n.name == "svg")
        .iter()
        .map(|n| {
            n.attr("id")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("svg:{}", n.attr("data-metric").unwrap_or("")))
        })
        .collect();
    assert_eq!(order[0], "failures");
    assert_eq!(order[1], "anomalies");
    assert_eq!(order[2], "trends");
    let failures = doc
        .find_all(&|n| n.attr("id") == Some("failures"))
        .pop()
        .unwrap();
    let text = failures.text();
    assert!(text.contains("nat-udp") && text.contains("pcap"), "{text}");
    assert!(
        text.contains("TCP checksum 0x1234 <wrong>"),
        "escaped text survives"
    );

    // One chart per metric, inside the trends section.
    let svgs = doc.find_all(&|n| n.name == "svg");
    assert_eq!(svgs.len(), r.trends.len());
    let mut metrics: Vec<&str> = svgs.iter().filter_map(|s| s.attr("data-metric")).collect();
    metrics.sort_unstable();
    let mut want: Vec<&str> = r.trends.iter().map(|t| t.name.as_str()).collect();
    want.sort_unstable();
    assert_eq!(metrics, want);

    let chart = |name: &str| {
        svgs.iter()
            .find(|s| s.attr("data-metric") == Some(name))
            .copied()
            .unwrap()
    };
    let has_class = |n: &xml::Node, c: &str| {
        n.attr("class")
            .is_some_and(|v| v.split_whitespace().any(|x| x == c))
    };
    // The step down has a red marker at the run where it starts, with its commit.
    let fullnat = chart(FULLNAT);
    let red = fullnat.find_all(&|n| n.name == "circle" && has_class(n, "regression"));
    assert_eq!(red.len(), 1);
    assert_eq!(red[0].attr("fill"), Some("#d62728"));
    assert!(
        red[0].text().contains("c0ffe14 2026-01-21"),
        "{}",
        red[0].text()
    );
    assert!(!fullnat
        .find_all(&|n| n.name == "line" && has_class(n, "group-mean"))
        .is_empty());
    assert_eq!(
        fullnat
            .find_all(&|n| n.name == "line" && has_class(n, "group-mean"))
            .len(),
        2
    );
    // The latency drop is green (lower is better); steady metrics have no marker.
    let lat = chart(LATENCY);
    assert_eq!(
        lat.find_all(&|n| n.name == "circle" && has_class(n, "progression"))
            .len(),
        1
    );
    let smoke = chart(history::SMOKE_METRIC);
    assert!(smoke
        .find_all(&|n| has_class(n, "regression") || has_class(n, "progression"))
        .is_empty());

    // Every point has a tooltip with its commit and date.
    for svg in &svgs {
        let points = svg.find_all(&|n| n.name == "circle" && has_class(n, "point"));
        assert!(!points.is_empty());
        for p in points {
            let title = p
                .children
                .iter()
                .find(|c| c.name == "title")
                .map(|t| t.text())
                .unwrap_or_default();
            let mut words = title.split_whitespace();
            let (commit, date) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            assert!(
                commit.len() == 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                "{title}"
            );
            assert!(date.len() == 10 && date.starts_with("2026-"), "{title}");
        }
    }
    // This run's own point is the last one of each chart it has.
    let last = fullnat
        .find_all(&|n| n.name == "circle")
        .pop()
        .unwrap()
        .text();
    assert!(last.starts_with("abc1234 2026-02-10"), "{last}");

    // Anomaly tables.
    let tables = doc.find_all(&|n| n.name == "table" && has_class(n, "anomalies"));
    let windows: Vec<&str> = tables
        .iter()
        .filter_map(|t| t.attr("data-window"))
        .collect();
    assert_eq!(windows, vec!["1", "7", "30"]);
    assert!(tables[1].text().contains(FULLNAT));
    assert!(!tables[0].text().contains(FULLNAT));
}

#[test]
fn baseline_is_a_dashed_line_and_a_column() {
    let mut warnings = Vec::new();
    let b = history::load_baseline(&fixtures().join("baseline.json"), &mut warnings);
    assert!(warnings.is_empty(), "{warnings:?}");
    let r = build(false).with_baseline(b, warnings);
    let doc = xml::parse(&report::to_html(&r)).unwrap();
    let lines = doc.find_all(&|n| n.name == "line" && n.attr("class") == Some("baseline"));
    assert_eq!(lines.len(), 1, "only FULLNAT has a baseline");
    assert!(lines[0].text().contains("baseline 0.1800"));
    let md = report::to_markdown(&r);
    // The metrics table is last.
    let row = md
        .lines()
        .rfind(|l| l.starts_with(&format!("| {FULLNAT} |")))
        .unwrap();
    assert!(row.contains("| 0.1800 |"), "{row}");
}

#[test]
fn junit_counts() {
    for (flag, failures, metric_failures) in [(false, 1, 0), (true, 2, 1)] {
        let r = build(flag);
        let doc = xml::parse(&report::to_junit(&r)).unwrap();
        let root = doc.find_all(&|n| n.name == "testsuites").pop().unwrap();
        assert_eq!(root.attr("tests"), Some("7"));
        assert_eq!(root.attr("failures"), Some(failures.to_string().as_str()));
        let suites = doc.find_all(&|n| n.name == "testsuite");
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0].attr("name"), Some("correctness"));
        assert_eq!(suites[0].attr("tests"), Some("3"));
        assert_eq!(suites[0].attr("failures"), Some("1"));
        assert_eq!(
            suites[1].attr("failures"),
            Some(metric_failures.to_string().as_str())
        );
        let cases = doc.find_all(&|n| n.name == "testcase");
        assert_eq!(cases.len(), 7);
        let failed = doc.find_all(&|n| n.name == "failure");
        assert_eq!(failed.len(), failures);
        assert!(failed[0].text().contains("destination port 8080"));
        let nat_pcap = cases
            .iter()
            .find(|c| c.attr("classname") == Some("correctness.pcap"))
            .unwrap();
        assert_eq!(nat_pcap.attr("name"), Some("nat-udp"));
    }
}

#[test]
fn markdown_and_json() {
    let r = build(false);
    let md = report::to_markdown(&r);
    let (f, a, m) = (
        md.find("## Failed checks").unwrap(),
        md.find("## Regressions and progressions").unwrap(),
        md.find("## Metrics").unwrap(),
    );
    assert!(f < a && a < m);
    assert!(md.contains("| nat-udp | pcap |"));
    let v: serde_json::Value = serde_json::from_str(&report::to_json(&r)).unwrap();
    assert_eq!(v["run"]["id"], RUN);
    assert_eq!(v["trends"].as_array().map(Vec::len), Some(4));
    assert_eq!(v["failures"][0]["topology"], "pcap");
}

#[test]
fn an_empty_history_and_an_empty_run_render() {
    let run = history::Run {
        id: "2026-03-01-0000000".into(),
        commit: "0000000".into(),
        date: "2026-03-01".into(),
        fingerprint: Fingerprint {
            cpu_model: "x".into(),
            cores: 1,
            dpdk: "unknown".into(),
            kernel: "unknown".into(),
        },
        correctness: vec![],
        metrics: vec![],
        warnings: vec![],
    };
    let r = Report::build(run, &history::History::default(), true);
    assert!(r.verdict().is_empty());
    let doc = xml::parse(&report::to_html(&r)).unwrap();
    assert!(doc.find_all(&|n| n.name == "svg").is_empty());
    xml::parse(&report::to_junit(&r)).unwrap();
}

/// A small XML reader: enough to check well-formedness (matching tags, quoted
/// attributes, known entities) and to walk the tree.
mod xml {
    #[derive(Debug, Default)]
    pub struct Node {
        pub name: String,
        pub attrs: Vec<(String, String)>,
        pub children: Vec<Node>,
        /// Text directly inside (for a text pseudo-node named "#text").
        pub body: String,
    }

    impl Node {
        pub fn attr(&self, k: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
        }

        /// All text below, in document order.
        pub fn text(&self) -> String {
            let mut s = self.body.clone();
            for c in &self.children {
                s.push_str(&c.text());
            }
            s
        }

        /// Elements below (self included) matching `f`, in document order.
        pub fn find_all<'a>(&'a self, f: &dyn Fn(&Node) -> bool) -> Vec<&'a Node> {
            let mut out = Vec::new();
            if self.name != "#text" && f(self) {
                out.push(self);
            }
            for c in &self.children {
                out.extend(c.find_all(f));
            }
            out
        }
    }

    fn unescape(s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let end = rest[i..].find(';').ok_or("unterminated entity")? + i;
            out.push_str(match &rest[i + 1..end] {
                "amp" => "&",
                "lt" => "<",
                "gt" => ">",
                "quot" => "\"",
                "#39" => "'",
                other => return Err(format!("unknown entity &{other};")),
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    pub fn parse(src: &str) -> Result<Node, String> {
        let mut stack = vec![Node {
            name: "#document".into(),
            ..Node::default()
        }];
        let mut rest = src;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("<!--") {
                rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
            } else if rest.starts_with("<?") || rest.starts_with("<!") {
                rest = &rest[rest.find('>').ok_or("unterminated declaration")? + 1..];
            } else if let Some(r) = rest.strip_prefix("</") {
                let end = r.find('>').ok_or("unterminated end tag")?;
                let name = r[..end].trim();
                let node = stack.pop().ok_or("stack underflow")?;
                if node.name != name {
                    return Err(format!("</{name}> closes <{}>", node.name));
                }
                stack
                    .last_mut()
                    .ok_or("end tag at top")?
                    .children
                    .push(node);
                rest = &r[end + 1..];
            } else if let Some(r) = rest.strip_prefix('<') {
                let end = r.find('>').ok_or("unterminated tag")?;
                let mut tag = &r[..end];
                let empty = tag.ends_with('/');
                if empty {
                    tag = &tag[..tag.len() - 1];
                }
                let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
                let mut node = Node {
                    name: tag[..name_end].to_owned(),
                    ..Node::default()
                };
                if node.name.is_empty() || node.name.contains(['<', '"', '=']) {
                    return Err(format!("bad tag <{tag}>"));
                }
                let mut a = tag[name_end..].trim_start();
                while !a.is_empty() {
                    let eq = a
                        .find('=')
                        .ok_or(format!("attribute without value in <{tag}>"))?;
                    let key = a[..eq].trim().to_owned();
                    let v = a[eq + 1..]
                        .strip_prefix('"')
                        .ok_or(format!("unquoted attribute in <{tag}>"))?;
                    let close = v.find('"').ok_or("unterminated attribute")?;
                    if v[..close].contains('<') {
                        return Err(format!("'<' in attribute of <{tag}>"));
                    }
                    if node.attr(&key).is_some() {
                        return Err(format!("duplicate attribute {key} in <{tag}>"));
                    }
                    node.attrs.push((key, unescape(&v[..close])?));
                    a = v[close + 1..].trim_start();
                }
                rest = &r[end + 1..];
                // HTML void elements must be self-closed to be well-formed XML.
                if empty {
                    stack.last_mut().ok_or("no parent")?.children.push(node);
                } else {
                    stack.push(node);
                }
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = &rest[..end];
                if text.contains('>') {
                    return Err(format!("raw '>' in text {text:?}"));
                }
                stack.last_mut().ok_or("no parent")?.children.push(Node {
                    name: "#text".into(),
                    body: unescape(text)?,
                    ..Node::default()
                });
                rest = &rest[end..];
            }
        }
        if stack.len() != 1 {
            return Err(format!(
                "unclosed <{}>",
                stack.last().map(|n| n.name.as_str()).unwrap_or("")
            ));
        }
        let doc = stack.pop().ok_or("empty")?;
        let roots = doc.children.iter().filter(|c| c.name != "#text").count();
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(doc)
    }
}
