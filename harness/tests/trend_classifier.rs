//! The MDL classifier (`harness::trend`) on synthetic series with seeded noise.

use harness::history::{Fingerprint, History, Metric, Run, Summary};
use harness::report::Report;
use harness::trend::{analyze, Class, Direction};

/// splitmix64 → Box–Muller: reproducible Gaussian noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn gauss(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` samples around `mean` with relative spread `rel`.
    fn series(&mut self, n: usize, mean: f64, rel: f64) -> Vec<f64> {
        (0..n).map(|_| mean * (1.0 + rel * self.gauss())).collect()
    }
}

#[test]
fn noise_within_the_spread_is_not_flagged() {
    for seed in 0..200 {
        let v = Noise(seed).series(40, 0.55, 0.02);
        let a = analyze(&v, Direction::HigherIsBetter);
        assert!(
            a.events.is_empty(),
            "seed {seed}: pure noise flagged: {:?}",
            a.events
        );
        assert_eq!(a.status, Class::Normal, "seed {seed}");
    }
}

#[test]
fn step_down_is_a_regression_at_the_right_run() {
    for seed in 0..100 {
        let mut rng = Noise(1000 + seed);
        let mut v = rng.series(25, 0.60, 0.01);
        v.extend(rng.series(15, 0.54, 0.01)); // −10 %, 10 σ
        let a = analyze(&v, Direction::HigherIsBetter);
        assert_eq!(a.groups.len(), 2, "seed {seed}: {:?}", a.groups);
        assert_eq!(a.events.len(), 1, "seed {seed}");
        assert_eq!(
            a.events[0].index, 25,
            "seed {seed}: flagged at the wrong run"
        );
        assert_eq!(a.events[0].class, Class::Regression);
        assert_eq!(a.status, Class::Regression);
    }
}

#[test]
fn smaller_step_with_enough_runs_is_found() {
    // −4 % in 1 % noise (4 σ), 20 runs each side.
    let mut hits = 0;
    for seed in 0..50 {
        let mut rng = Noise(5000 + seed);
        let mut v = rng.series(20, 1.0, 0.01);
        v.extend(rng.series(20, 0.96, 0.01));
        let a = analyze(&v, Direction::HigherIsBetter);
        if a.status == Class::Regression && a.events.iter().any(|e| e.index == 20) {
            hits += 1;
        }
    }
    assert!(hits >= 48, "found {hits} of 50");
}

#[test]
fn recovery_is_a_progression() {
    let mut rng = Noise(7);
    let mut v = rng.series(15, 0.60, 0.01);
    v.extend(rng.series(10, 0.50, 0.01));
    v.extend(rng.series(10, 0.60, 0.01));
    let a = analyze(&v, Direction::HigherIsBetter);
    assert_eq!(a.groups.len(), 3);
    let classes: Vec<(usize, Class)> = a.events.iter().map(|e| (e.index, e.class)).collect();
    assert_eq!(
        classes,
        vec![(15, Class::Regression), (25, Class::Progression)]
    );
    assert_eq!(a.status, Class::Progression);
}

#[test]
fn latency_is_inverted() {
    let mut rng = Noise(8);
    let mut v = rng.series(15, 10.0, 0.02);
    v.extend(rng.series(10, 14.0, 0.02)); // latency up: worse
    let a = analyze(&v, Direction::LowerIsBetter);
    assert_eq!(a.status, Class::Regression);
    assert_eq!(a.events[0].index, 15);
}

/// A single outlier inside a series is set aside: no regression, no progression, and
/// the series stays one group.
#[test]
fn single_outlier_in_the_middle_is_not_a_regression() {
    for (seed, depth) in [(11, 0.9), (12, 0.7), (13, 0.5), (14, 1.3)] {
        let mut v = Noise(seed).series(30, 0.6, 0.01);
        v[17] *= depth;
        let a = analyze(&v, Direction::HigherIsBetter);
        assert!(a.events.is_empty(), "depth {depth}: {:?}", a.events);
        assert_eq!(a.groups.len(), 1, "depth {depth}");
        assert_eq!(a.status, Class::Normal);
        if !(0.8..=1.2).contains(&depth) {
            assert_eq!(a.outliers, vec![17], "depth {depth}");
        }
    }
}

/// A far-off newest run is classified (it cannot yet be told from a step). When the
/// next run is back at the old level, the two newest runs still form one wide group
/// (cheaper than widening the long group's σ), so the regression stays for that run;
/// with two runs back, the odd run becomes an outlier and nothing is flagged.
#[test]
fn far_off_newest_run_is_flagged_until_runs_return() {
    let mut v = Noise(21).series(30, 0.6, 0.01);
    v.push(0.3);
    let a = analyze(&v, Direction::HigherIsBetter);
    assert_eq!(a.status, Class::Regression);
    assert_eq!(a.events[0].index, 30);
    v.push(0.6);
    let a = analyze(&v, Direction::HigherIsBetter);
    assert_eq!(a.status, Class::Regression);
    assert_eq!(a.groups[1].first, 30);
    v.push(0.6);
    let a = analyze(&v, Direction::HigherIsBetter);
    assert_eq!(a.status, Class::Normal, "{a:?}");
    assert!(a.events.is_empty());
    assert_eq!(a.outliers, vec![30]);
}

fn fingerprint(cpu: &str) -> Fingerprint {
    Fingerprint {
        cpu_model: cpu.into(),
        cores: 2,
        dpdk: "22.11.4".into(),
        kernel: "6.1.0-amd64".into(),
    }
}

fn run(i: usize, fp: &Fingerprint, ratio: Option<f64>) -> Run {
    Run {
        id: format!("2026-01-{:02}-c{i:06}", i % 28 + 1),
        commit: format!("c{i:06}"),
        date: format!("2026-01-{:02}", i % 28 + 1),
        fingerprint: fp.clone(),
        correctness: vec![],
        metrics: ratio
            .map(|r| Metric {
                name: "fullnat/64B/1w/new-conn/pdr_mpps".into(),
                value: r * 40.0,
                unit: "Mpps".into(),
                ceiling: Some(40.0),
                ratio: Some(r),
                samples: vec![],
            })
            .into_iter()
            .collect(),
        warnings: vec![],
    }
}

/// Runs without the metric are skipped; the step is still found at its run.
#[test]
fn missing_runs_do_not_crash() {
    let fp = fingerprint("A");
    let mut rng = Noise(31);
    let mut lines: Vec<Summary> = Vec::new();
    for i in 0..40 {
        let mean = if i < 24 { 0.6 } else { 0.5 };
        let r = (i % 5 != 3).then(|| mean * (1.0 + 0.01 * rng.gauss()));
        lines.push(run(i, &fp, r).summary());
    }
    let last = run(40, &fp, None);
    let history = History {
        runs: lines,
        warnings: vec![],
    };
    let report = Report::build(last, &history, false);
    assert_eq!(report.trends.len(), 1);
    let t = &report.trends[0];
    assert_eq!(t.points.len(), 32);
    assert_eq!(t.analysis.status, Class::Regression);
    let e = t.analysis.events[0];
    assert_eq!(t.points[e.index].commit, "c000024");
}

/// Two machines: one steady at 0.6, one steady at 0.3. Mixed they would look like a
/// regression; kept apart, neither is.
#[test]
fn fingerprints_are_kept_apart() {
    let (a, b) = (fingerprint("A"), fingerprint("B"));
    let mut rng = Noise(41);
    let mut lines = Vec::new();
    for i in 0..30 {
        let (fp, mean) = if i < 20 { (&a, 0.6) } else { (&b, 0.3) };
        lines.push(run(i, fp, Some(mean * (1.0 + 0.01 * rng.gauss()))).summary());
    }
    let history = History {
        runs: lines.clone(),
        warnings: vec![],
    };
    let this = run(30, &b, Some(0.3));
    let report = Report::build(this, &history, true);
    assert_eq!(report.runs_on_machine, 11);
    assert_eq!(report.runs_elsewhere, 20);
    assert_eq!(report.trends[0].analysis.status, Class::Normal);
    assert!(report.verdict().is_empty());
    let this = run(31, &a, Some(0.6));
    let report = Report::build(this, &history, true);
    assert_eq!(report.runs_on_machine, 21);
    assert_eq!(report.trends[0].analysis.status, Class::Normal);
}
