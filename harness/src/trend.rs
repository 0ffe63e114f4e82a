//! Anomaly detection over a metric's history (issue 7).
//!
//! The idea is FD.io CSIT's "jumpavg": a series of measurements is a sequence of groups,
//! each a run of consecutive samples from one normal distribution, and the best split is
//! the one that describes the series in the fewest bits (minimum description length).
//! A new group whose mean is worse than the group before it is a regression; better, a
//! progression. No fixed percentage is involved: a step is believed when describing the
//! series as two groups is cheaper than as one, which depends on the size of the step,
//! the spread of the samples and how many samples there are.
//!
//! # The code length
//!
//! Values are encoded to a resolution `u` = 10⁻⁴ × the largest |value| in the series
//! (0.01 %, finer than any measurement here can be trusted). A group of `n` values with
//! mean `μ` and standard deviation `σ` (floored at `u`) costs
//!
//! - its boundary: `log2(N)` bits (where, among the `N` samples, it starts);
//! - its parameters: `μ` and `σ`, each `log2(R / u)` bits, `R` being the series' range
//!   (max − min, at least `u`): a uniform code over the values the series takes;
//! - its values: `Σ −log2(u · φ((x − μ) / σ) / σ)`, the Gaussian code length of each
//!   value at resolution `u`.
//!
//! Dynamic programming over the end of the last group gives the cheapest split exactly
//! in O(N²) (prefix sums make each group's cost O(1)).
//!
//! # Outliers
//!
//! A group of one sample that is not the last group is an *outlier*: one odd run between
//! two others is not a step. Outliers are set aside and the remaining samples grouped
//! again (repeated until no inner singleton is left), so a lone spike neither splits the
//! group it sits in nor appears as a regression followed by a progression. A single
//! sample at the end that forms its own group *is* classified (it cannot yet be told from
//! a step): a far-off newest run is reported as a regression or progression, and stops
//! being one when the next run comes back to the old level (it then becomes an outlier).
//! Small outliers never split anything: widening the group's σ is cheaper.

use serde::Serialize;

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Rates, ratios to a ceiling.
    HigherIsBetter,
    /// Latency, loss, time per packet.
    LowerIsBetter,
}

/// How a group compares with the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Same group, or no group before it.
    Normal,
    /// Worse mean than the group before.
    Regression,
    /// Better mean than the group before.
    Progression,
}

/// Consecutive samples from one distribution. Indices are into the series given to
/// [`analyze`], and a group may span outliers, which it does not count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Group {
    /// First sample.
    pub first: usize,
    /// Last sample (inclusive).
    pub last: usize,
    /// Samples in the group (outliers inside its span not counted).
    pub len: usize,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation (population).
    pub stdev: f64,
}

/// A group that starts a regression or a progression.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Event {
    /// The sample that starts the new group.
    pub index: usize,
    /// Regression or progression.
    pub class: Class,
    /// The previous group's mean.
    pub before: f64,
    /// The new group's mean.
    pub after: f64,
}

/// The grouping of one series and what it means.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Groups, oldest first.
    pub groups: Vec<Group>,
    /// Samples set aside as outliers.
    pub outliers: Vec<usize>,
    /// One event per group after the first whose mean differs.
    pub events: Vec<Event>,
    /// The last group against the one before it: the metric's state now.
    pub status: Class,
}

impl Direction {
    /// Lower is better for latency, loss and time-per-packet figures; higher otherwise.
    pub fn for_metric(name: &str, unit: &str) -> Self {
        let n = name.to_ascii_lowercase();
        let u = unit.to_ascii_lowercase();
        let lower = ["latency", "loss", "_ns", "_us", "_ms", "ns_per", "drop"]
            .iter()
            .any(|k| n.contains(k))
            || ["ns", "us", "µs", "ms", "s", "ns/pkt"].contains(&u.as_str());
        if lower {
            Self::LowerIsBetter
        } else {
            Self::HigherIsBetter
        }
    }

    /// How `after` compares with `before`.
    pub fn classify(self, before: f64, after: f64) -> Class {
        let better = match self {
            Self::HigherIsBetter => after > before,
            Self::LowerIsBetter => after < before,
        };
        if before == after {
            Class::Normal
        } else if better {
            Class::Progression
        } else {
            Class::Regression
        }
    }
}

/// The minimum-description-length split of `values` into groups, as half-open ranges of
/// indices. Non-finite values must have been left out by the caller.
pub fn group(values: &[f64]) -> Vec<std::ops::Range<usize>> {
    let n = values.len();
    if n <= 1 {
        return (n == 1).then_some(0..1).into_iter().collect();
    }
    let scale = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let unit = if scale > 0.0 { scale * 1e-4 } else { 1e-12 };
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = (max - min).max(unit);
    let param_bits = 2.0 * (range / unit).log2();
    let boundary_bits = (n as f64).log2();
    // Prefix sums of values shifted by the first one, for numerical stability.
    let origin = values[0];
    let mut s1 = vec![0.0; n + 1];
    let mut s2 = vec![0.0; n + 1];
    for (i, &v) in values.iter().enumerate() {
        let d = v - origin;
        s1[i + 1] = s1[i] + d;
        s2[i + 1] = s2[i] + d * d;
    }
    let half_log2_2pi = 0.5 * (2.0 * std::f64::consts::PI).log2();
    let cost = |a: usize, b: usize| -> f64 {
        let k = (b - a) as f64;
        let sum = s1[b] - s1[a];
        let mean = sum / k;
        let ss = ((s2[b] - s2[a]) - sum * mean).max(0.0); // Σ (x − μ)²
        let sd = (ss / k).sqrt().max(unit);
        let values_bits = k * ((sd / unit).log2() + half_log2_2pi)
            + ss / (2.0 * sd * sd * std::f64::consts::LN_2);
        boundary_bits + param_bits + values_bits
    };
    // best[j]: cheapest code for values[..j]; from[j]: where its last group starts.
    let mut best = vec![f64::INFINITY; n + 1];
    let mut from = vec![0usize; n + 1];
    best[0] = 0.0;
    for j in 1..=n {
        for i in 0..j {
            let c = best[i] + cost(i, j);
            if c < best[j] {
                best[j] = c;
                from[j] = i;
            }
        }
    }
    let mut out = Vec::new();
    let mut j = n;
    while j > 0 {
        let i = from[j];
        out.push(i..j);
        j = i;
    }
    out.reverse();
    out
}

/// Groups `values` (outliers set aside, see the module docs) and classifies each new
/// group against the one before it.
pub fn analyze(values: &[f64], direction: Direction) -> Analysis {
    let mut kept: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_finite())
        .collect();
    let mut outliers = Vec::new();
    let ranges = loop {
        let series: Vec<f64> = kept.iter().map(|&i| values[i]).collect();
        let ranges = group(&series);
        let last = ranges.len().saturating_sub(1);
        let lone: Vec<usize> = ranges
            .iter()
            .enumerate()
            .filter(|(g, r)| *g != last && r.len() == 1)
            .map(|(_, r)| r.start)
            .collect();
        if lone.is_empty() {
            break ranges;
        }
        // Remove from the back so that earlier positions stay valid.
        for &pos in lone.iter().rev() {
            outliers.push(kept.remove(pos));
        }
    };
    outliers.sort_unstable();
    let groups: Vec<Group> = ranges
        .iter()
        .map(|r| {
            let xs: Vec<f64> = kept[r.clone()].iter().map(|&i| values[i]).collect();
            let k = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / k;
            let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / k;
            Group {
                first: kept[r.start],
                last: kept[r.end - 1],
                len: xs.len(),
                mean,
                stdev: var.sqrt(),
            }
        })
        .collect();
    let mut events = Vec::new();
    let mut status = Class::Normal;
    for pair in groups.windows(2) {
        let class = direction.classify(pair[0].mean, pair[1].mean);
        status = class;
        if class != Class::Normal {
            events.push(Event {
                index: pair[1].first,
                class,
                before: pair[0].mean,
                after: pair[1].mean,
            });
        }
    }
    Analysis {
        groups,
        outliers,
        events,
        status,
    }
}

#[cfg(test)]
// Expected groupings are lists of ranges, some of one group.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn trivial_series() {
        assert!(group(&[]).is_empty());
        assert_eq!(group(&[1.0]), vec![0..1]);
        assert_eq!(group(&[1.0, 1.0, 1.0]), vec![0..3]);
        assert_eq!(group(&[0.0, 0.0]), vec![0..2]);
        let a = analyze(&[], Direction::HigherIsBetter);
        assert!(a.groups.is_empty() && a.status == Class::Normal);
    }

    #[test]
    fn clean_step_splits_where_it_happens() {
        let mut v = vec![1.0; 10];
        v.extend([0.8; 10]);
        assert_eq!(group(&v), vec![0..10, 10..20]);
        let a = analyze(&v, Direction::HigherIsBetter);
        assert_eq!(a.status, Class::Regression);
        assert_eq!(a.events[0].index, 10);
        assert_eq!(
            analyze(&v, Direction::LowerIsBetter).status,
            Class::Progression
        );
    }

    #[test]
    fn directions() {
        assert_eq!(
            Direction::for_metric("fullnat/64B/1w/new-conn/pdr_mpps", "Mpps"),
            Direction::HigherIsBetter
        );
        assert_eq!(
            Direction::for_metric("fullnat/64B/1w/new-conn/latency_p99", "us"),
            Direction::LowerIsBetter
        );
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let v = [1.0, f64::NAN, 1.0, f64::INFINITY, 1.0];
        let a = analyze(&v, Direction::HigherIsBetter);
        assert_eq!(a.groups.len(), 1);
        assert_eq!(a.groups[0].len, 3);
    }
}
