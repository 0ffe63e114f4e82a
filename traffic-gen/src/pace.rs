//! Pacing against an absolute TSC schedule.
//!
//! Packet `n` is due at `start + n * hz / rate`. A core asks [`Pacer::want`] how many
//! packets it may send now: everything due and not yet sent, so a late burst is made up
//! at once rather than forgotten, and the long-run rate is exact whatever the jitter.
//! While on time it sends in bursts of [`burst_for_rate`] packets (about 5 µs of traffic),
//! so that low rates are not sent as bursts of 32 with long gaps.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The most packets one burst may hold.
pub const MAX_BURST: usize = 32;

/// The burst size for a per-core rate: about 5 µs of packets, 1..=32.
pub fn burst_for_rate(pps: f64) -> usize {
    ((pps * 5e-6).round() as usize).clamp(1, MAX_BURST)
}

/// The schedule of one core.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: u64,
    /// Packets per TSC cycle.
    per_cycle: f64,
    burst: usize,
    limit: u64,
}

impl Pacer {
    /// A schedule of `pps` packets per second from TSC `start` on a `hz` clock, capped at
    /// `limit` packets in all.
    pub fn new(pps: f64, hz: u64, start: u64, limit: u64) -> Pacer {
        Pacer {
            start,
            per_cycle: pps / hz.max(1) as f64,
            burst: burst_for_rate(pps),
            limit,
        }
    }

    /// The burst size.
    pub fn burst(&self) -> usize {
        self.burst
    }

    /// Packets due by TSC `now` (capped at the limit).
    #[inline]
    pub fn due(&self, now: u64) -> u64 {
        let elapsed = now.saturating_sub(self.start) as f64;
        ((elapsed * self.per_cycle) as u64).min(self.limit)
    }

    /// How many packets to send now, having sent `sent`: 0 while fewer than a burst are
    /// due (unless those are the last ones), else up to [`MAX_BURST`].
    #[inline]
    pub fn want(&self, now: u64, sent: u64) -> usize {
        let backlog = self.due(now).saturating_sub(sent);
        if backlog == 0 {
            return 0;
        }
        let last = sent + backlog >= self.limit;
        if backlog < self.burst as u64 && !last {
            return 0;
        }
        backlog.min(MAX_BURST as u64) as usize
    }

    /// The TSC at which packet `n` is due.
    pub fn due_at(&self, n: u64) -> u64 {
        self.start + (n as f64 / self.per_cycle).ceil() as u64
    }
}

/// Inter-burst gap statistics, recorded in TSC cycles without allocating.
#[derive(Debug, Clone)]
pub struct GapStats {
    hist: Histogram<u64>,
    last: Option<u64>,
    /// Largest backlog (packets due but not yet sent) seen.
    pub max_backlog: u64,
}

impl Default for GapStats {
    fn default() -> Self {
        GapStats::new()
    }
}

impl GapStats {
    /// Empty statistics.
    pub fn new() -> GapStats {
        GapStats {
            // Constant, valid bounds (1 cycle to 2^40 cycles, 3 digits): cannot fail.
            hist: Histogram::new_with_bounds(1, 1 << 40, 3).expect("valid constant bounds"),
            last: None,
            max_backlog: 0,
        }
    }

    /// Records a burst sent at TSC `now` with `backlog` packets due before it.
    #[inline]
    pub fn burst(&mut self, now: u64, backlog: u64) {
        if let Some(last) = self.last {
            self.hist.saturating_record(now.saturating_sub(last).max(1));
        }
        self.last = Some(now);
        self.max_backlog = self.max_backlog.max(backlog);
    }

    /// Adds another core's gaps.
    pub fn merge(&mut self, other: &GapStats) {
        let _ = self.hist.add(&other.hist);
        self.max_backlog = self.max_backlog.max(other.max_backlog);
    }

    /// The report, with cycles converted to ns on a `hz` clock.
    pub fn report(&self, hz: u64) -> GapReport {
        let ns = |c: f64| c * 1e9 / hz.max(1) as f64;
        let q = |x: f64| {
            if self.hist.is_empty() {
                0.0
            } else {
                ns(self.hist.value_at_quantile(x) as f64)
            }
        };
        GapReport {
            bursts: self.hist.len() + u64::from(self.last.is_some()),
            mean_ns: ns(self.hist.mean()),
            stddev_ns: ns(self.hist.stdev()),
            p50_ns: q(0.5),
            p99_ns: q(0.99),
            max_ns: if self.hist.is_empty() {
                0.0
            } else {
                ns(self.hist.max() as f64)
            },
            max_backlog: self.max_backlog,
        }
    }
}

/// Inter-burst gaps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapReport {
    /// Bursts sent.
    pub bursts: u64,
    /// Mean gap, ns.
    pub mean_ns: f64,
    /// Standard deviation of the gap (the jitter), ns.
    pub stddev_ns: f64,
    /// Median gap, ns.
    pub p50_ns: f64,
    /// 99th percentile gap, ns.
    pub p99_ns: f64,
    /// Largest gap, ns.
    pub max_ns: f64,
    /// Largest backlog seen, packets.
    pub max_backlog: u64,
}

/// Achieved vs asked, with the verdict on whether the rate was sustained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateReport {
    /// Asked, pps (0 when unpaced).
    pub asked_pps: f64,
    /// Achieved over the run, pps.
    pub achieved_pps: f64,
    /// `(achieved - asked) / asked`, percent (0 when unpaced).
    pub error_pct: f64,
    /// False when the run ended more than 0.1% short of the asked rate.
    pub sustained: bool,
    /// True when the backlog ever exceeded 10 ms of traffic (the core was descheduled
    /// or too slow for a while; the schedule made it up if `sustained`).
    pub stalled: bool,
}

impl RateReport {
    /// Judges a run that sent `sent` packets in `secs` seconds at `asked` pps (None:
    /// unpaced), with a largest backlog of `max_backlog` packets.
    pub fn judge(asked: Option<f64>, sent: u64, secs: f64, max_backlog: u64) -> RateReport {
        let achieved = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
        match asked {
            None => RateReport {
                asked_pps: 0.0,
                achieved_pps: achieved,
                error_pct: 0.0,
                sustained: true,
                stalled: false,
            },
            Some(a) => {
                let error_pct = (achieved - a) / a * 100.0;
                RateReport {
                    asked_pps: a,
                    achieved_pps: achieved,
                    error_pct,
                    sustained: error_pct > -0.1,
                    stalled: (max_backlog as f64) > (a * 0.010).max(64.0),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 2_000_000_000;

    #[test]
    fn burst_sizes() {
        assert_eq!(burst_for_rate(10.0), 1);
        assert_eq!(burst_for_rate(1e6), 5);
        assert_eq!(burst_for_rate(1e8), 32);
    }

    #[test]
    fn schedule_is_absolute_and_makes_up_late_bursts() {
        // 1 Mpps on a 2 GHz clock: one packet every 2000 cycles, bursts of 5.
        let p = Pacer::new(1e6, HZ, 1000, u64::MAX);
        assert_eq!(p.due(1000), 0);
        assert_eq!(p.due(1000 + 2000 * 7), 7);
        assert_eq!(p.want(1000 + 2000 * 4, 0), 0, "less than a burst due");
        assert_eq!(p.want(1000 + 2000 * 5, 0), 5);
        // A stall of 1 ms: 1000 packets due, sent in bursts of 32 until caught up.
        let now = 1000 + HZ / 1000;
        let mut sent = 0;
        let mut bursts = 0;
        while let w @ 1.. = p.want(now, sent) {
            assert!(w <= MAX_BURST);
            sent += w as u64;
            bursts += 1;
        }
        assert_eq!(sent, 1000, "nothing forgotten");
        assert_eq!(bursts, 32);
        assert_eq!(p.due_at(1000), now);
    }

    #[test]
    fn limit_and_last_partial_burst() {
        let p = Pacer::new(1e6, HZ, 0, 12);
        assert_eq!(p.due(u64::MAX / 2), 12);
        assert_eq!(p.want(2000 * 12, 10), 2, "the final short burst goes out");
        assert_eq!(p.want(2000 * 100, 12), 0);
    }

    #[test]
    fn long_run_rate_is_exact() {
        // Simulate a core polling at irregular intervals for 10 s of schedule.
        let rate = 1e6;
        let p = Pacer::new(rate, HZ, 0, u64::MAX);
        let (mut now, mut sent, mut step) = (0u64, 0u64, 1u64);
        while now < 10 * HZ {
            sent += p.want(now, sent) as u64;
            step = (step * 7919 + 13) % 30_000; // 0..15 µs between polls
            now += step;
        }
        let expect = rate * (now as f64 / HZ as f64);
        assert!((sent as f64 - expect).abs() <= 32.0, "{sent} vs {expect}");
    }

    #[test]
    fn gaps_and_judgement() {
        let mut g = GapStats::new();
        for i in 0..100 {
            g.burst(i * 10_000, 3);
        }
        let r = g.report(HZ);
        assert_eq!(r.bursts, 100);
        assert!((r.mean_ns - 5000.0).abs() < 10.0, "{}", r.mean_ns);
        assert!(r.stddev_ns < 10.0);
        let ok = RateReport::judge(Some(1e6), 10_000_000, 10.0, 32);
        assert!(ok.sustained && ok.error_pct.abs() < 1e-9);
        let short = RateReport::judge(Some(1e6), 9_900_000, 10.0, 32);
        assert!(!short.sustained);
        let laggy = RateReport::judge(Some(1e6), 10_000_000, 10.0, 50_000);
        assert!(laggy.sustained && laggy.stalled, "made up, but stalled");
        assert!(RateReport::judge(None, 5, 1.0, 0).sustained);
    }
}
