//! Latency stamps and their receive side.
//!
//! A stamp is 18 bytes at the start of a sampled UDP packet's payload (it fits the
//! smallest, 64-byte frame exactly): signature `L4LT` (4), stream id (2), sequence (4),
//! TSC at transmit (8), all big-endian. Streams are per tx core. The receive side (same
//! host, same TSC) records `now - tsc` into an HDR histogram and tracks, per stream, the
//! unique, duplicate and reordered sequence numbers within a sliding window; loss is
//! what was stamped minus the unique ones that came back.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Bytes of a stamp.
pub const STAMP_LEN: usize = 18;
/// The signature that marks a stamped packet.
pub const SIGNATURE: [u8; 4] = *b"L4LT";
/// Streams the receiver tracks (stream ids at or above are counted as foreign).
pub const MAX_STREAMS: usize = 64;
/// Sequence numbers remembered per stream for duplicate detection.
pub const WINDOW: u32 = 4096;
/// Highest latency recorded (larger values are clamped): 10 s in ns.
pub const MAX_LATENCY_NS: u64 = 10_000_000_000;

/// A decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Stream (tx core).
    pub stream: u16,
    /// Sequence number within the stream.
    pub seq: u32,
    /// TSC at transmit.
    pub tsc: u64,
}

impl Stamp {
    /// The 18 bytes.
    #[inline]
    pub fn encode(&self) -> [u8; STAMP_LEN] {
        let mut b = [0u8; STAMP_LEN];
        b[..4].copy_from_slice(&SIGNATURE);
        b[4..6].copy_from_slice(&self.stream.to_be_bytes());
        b[6..10].copy_from_slice(&self.seq.to_be_bytes());
        b[10..18].copy_from_slice(&self.tsc.to_be_bytes());
        b
    }

    /// Reads a stamp from the start of `payload`, if it carries one.
    #[inline]
    pub fn decode(payload: &[u8]) -> Option<Stamp> {
        let b = payload.get(..STAMP_LEN)?;
        if b[..4] != SIGNATURE {
            return None;
        }
        Some(Stamp {
            stream: u16::from_be_bytes([b[4], b[5]]),
            seq: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
            tsc: u64::from_be_bytes([b[10], b[11], b[12], b[13], b[14], b[15], b[16], b[17]]),
        })
    }
}

/// Per-stream receive state.
#[derive(Debug, Clone)]
struct StreamRx {
    /// Highest sequence seen plus one (0: nothing yet).
    next: u32,
    /// Bit `s % WINDOW` set when `s` (within the window below `next`) was seen.
    seen: Vec<u64>,
    unique: u64,
    duplicates: u64,
    reordered: u64,
    /// Arrived too far behind the window to tell (counted, not as unique).
    too_old: u64,
}

impl StreamRx {
    fn new() -> StreamRx {
        StreamRx {
            next: 0,
            seen: vec![0; (WINDOW / 64) as usize],
            unique: 0,
            duplicates: 0,
            reordered: 0,
            too_old: 0,
        }
    }

    fn bit(&mut self, seq: u32) -> (&mut u64, u64) {
        let i = seq % WINDOW;
        (&mut self.seen[(i / 64) as usize], 1u64 << (i % 64))
    }

    fn record(&mut self, seq: u32) {
        if seq >= self.next {
            // Clear the bits of the sequence numbers skipped over (they may still come).
            let from = self.next.max(seq.saturating_sub(WINDOW - 1));
            for s in from..seq {
                let (w, m) = self.bit(s);
                *w &= !m;
            }
            let (w, m) = self.bit(seq);
            *w |= m;
            self.next = seq + 1;
            self.unique += 1;
        } else if self.next - seq > WINDOW {
            self.too_old += 1;
        } else {
            let (w, m) = self.bit(seq);
            if *w & m != 0 {
                self.duplicates += 1;
            } else {
                *w |= m;
                self.unique += 1;
                self.reordered += 1;
            }
        }
    }
}

/// The receive side: histogram plus per-stream counters. Allocates only in `new`.
#[derive(Debug, Clone)]
pub struct LatencyRx {
    hz: u64,
    hist: Histogram<u64>,
    streams: Vec<StreamRx>,
    foreign: u64,
}

impl LatencyRx {
    /// A receiver for a TSC running at `hz`.
    pub fn new(hz: u64) -> LatencyRx {
        LatencyRx {
            hz: hz.max(1),
            // 3 significant digits from 1 ns to 10 s: fixed bounds, so recording never
            // allocates. Constant, valid bounds (low >= 1, high >= 2 * low, sigfig <= 5):
            // this cannot fail.
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid constant bounds"),
            streams: (0..MAX_STREAMS).map(|_| StreamRx::new()).collect(),
            foreign: 0,
        }
    }

    /// Records a received stamp at TSC `now`.
    #[inline]
    pub fn record(&mut self, stamp: &Stamp, now: u64) {
        let Some(stream) = self.streams.get_mut(usize::from(stamp.stream)) else {
            self.foreign += 1;
            return;
        };
        stream.record(stamp.seq);
        let cycles = now.saturating_sub(stamp.tsc);
        let ns = (u128::from(cycles) * 1_000_000_000 / u128::from(self.hz)) as u64;
        self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Adds another receiver's data (per-core receivers summed by the main lcore).
    pub fn merge(&mut self, other: &LatencyRx) {
        let _ = self.hist.add(&other.hist);
        for (a, b) in self.streams.iter_mut().zip(&other.streams) {
            // Streams are per tx core and each core receives its own on its queue in
            // the common case; summing counters is exact when a stream lands on one
            // receiver, and an upper bound of uniqueness otherwise.
            a.unique += b.unique;
            a.duplicates += b.duplicates;
            a.reordered += b.reordered;
            a.too_old += b.too_old;
        }
        self.foreign += other.foreign;
    }

    /// A quantile of the latency in ns (0 when nothing was recorded).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// The report, given how many stamps each stream sent.
    pub fn report(&self, sent_per_stream: &[u64]) -> LatencyReport {
        let mut streams = Vec::new();
        for (id, sent) in sent_per_stream.iter().enumerate() {
            let s = self.streams.get(id).cloned().unwrap_or_else(StreamRx::new);
            streams.push(StreamReport {
                stream: id as u16,
                sent: *sent,
                received: s.unique,
                lost: sent.saturating_sub(s.unique),
                duplicates: s.duplicates,
                reordered: s.reordered,
                too_old: s.too_old,
            });
        }
        let sum = |f: fn(&StreamReport) -> u64| streams.iter().map(f).sum::<u64>();
        LatencyReport {
            samples: self.hist.len(),
            min_ns: if self.hist.is_empty() {
                0
            } else {
                self.hist.min()
            },
            p50_ns: self.quantile_ns(0.5),
            p90_ns: self.quantile_ns(0.90),
            p99_ns: self.quantile_ns(0.99),
            p999_ns: self.quantile_ns(0.999),
            max_ns: if self.hist.is_empty() {
                0
            } else {
                self.hist.max()
            },
            mean_ns: if self.hist.is_empty() {
                0.0
            } else {
                self.hist.mean()
            },
            sent: sum(|s| s.sent),
            lost: sum(|s| s.lost),
            duplicates: sum(|s| s.duplicates),
            reordered: sum(|s| s.reordered),
            foreign: self.foreign,
            histogram: self.buckets(),
            streams,
        }
    }

    /// The histogram in buckets that double from 1 µs: (upper bound ns, count); the last
    /// bucket ends at the maximum. Empty without samples.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        self.hist
            .iter_log(1_000, 2.0)
            .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
            .collect()
    }
}

/// One stream's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    /// Stream id (tx core).
    pub stream: u16,
    /// Stamps sent.
    pub sent: u64,
    /// Distinct stamps received.
    pub received: u64,
    /// `sent - received`.
    pub lost: u64,
    /// Stamps received more than once (beyond the first).
    pub duplicates: u64,
    /// Stamps that arrived after a higher sequence number.
    pub reordered: u64,
    /// Stamps too far behind the window to classify.
    pub too_old: u64,
}

/// The latency summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyReport {
    /// Latencies recorded (duplicates included).
    pub samples: u64,
    /// Minimum, ns.
    pub min_ns: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
    /// Mean, ns.
    pub mean_ns: f64,
    /// Stamps sent, all streams.
    pub sent: u64,
    /// Stamps lost, all streams.
    pub lost: u64,
    /// Duplicates, all streams.
    pub duplicates: u64,
    /// Reordered, all streams.
    pub reordered: u64,
    /// Stamps with a stream id this receiver does not track.
    pub foreign: u64,
    /// Latency histogram: (upper bound ns, samples) in buckets doubling from 1 µs.
    pub histogram: Vec<(u64, u64)>,
    /// Per stream.
    pub streams: Vec<StreamReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_roundtrip() {
        let s = Stamp {
            stream: 3,
            seq: 0x0102_0304,
            tsc: u64::MAX - 5,
        };
        let b = s.encode();
        assert_eq!(Stamp::decode(&b), Some(s));
        assert_eq!(Stamp::decode(&b[..17]), None);
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Stamp::decode(&bad), None);
    }

    #[test]
    fn loss_duplicates_reordering() {
        let mut rx = LatencyRx::new(1_000_000_000);
        // Stream 0: 0..10 with 5 missing, 3 duplicated, 8 before 7.
        for seq in [0, 1, 2, 3, 3, 4, 6, 8, 7, 9] {
            rx.record(
                &Stamp {
                    stream: 0,
                    seq,
                    tsc: 100,
                },
                100 + 1000,
            );
        }
        // Stream 1: in order, one too old to classify after a jump.
        for seq in [0, 1, 10_000, 2] {
            rx.record(
                &Stamp {
                    stream: 1,
                    seq,
                    tsc: 0,
                },
                2000,
            );
        }
        rx.record(
            &Stamp {
                stream: 999,
                seq: 0,
                tsc: 0,
            },
            1,
        );
        let r = rx.report(&[10, 10_001]);
        let s0 = &r.streams[0];
        assert_eq!(
            (s0.received, s0.lost, s0.duplicates, s0.reordered),
            (9, 1, 1, 1)
        );
        let s1 = &r.streams[1];
        assert_eq!((s1.received, s1.too_old, s1.lost), (3, 1, 9998));
        assert_eq!(r.foreign, 1);
        assert_eq!(r.samples, 14);
        assert!((995..=1005).contains(&r.p50_ns), "{}", r.p50_ns);
        assert!((1995..=2005).contains(&r.max_ns), "{}", r.max_ns);
    }

    #[test]
    fn window_wraps_cleanly() {
        let mut rx = LatencyRx::new(1000);
        for seq in 0..(3 * WINDOW) {
            rx.record(
                &Stamp {
                    stream: 0,
                    seq,
                    tsc: 0,
                },
                1,
            );
        }
        // An old sequence still inside the window is a duplicate, not new.
        rx.record(
            &Stamp {
                stream: 0,
                seq: 3 * WINDOW - 10,
                tsc: 0,
            },
            1,
        );
        let r = rx.report(&[u64::from(3 * WINDOW)]);
        assert_eq!((r.lost, r.duplicates, r.reordered), (0, 1, 0));
        let mut merged = LatencyRx::new(1000);
        merged.merge(&rx);
        assert_eq!(merged.report(&[u64::from(3 * WINDOW)]).samples, r.samples);
    }

    #[test]
    fn histogram_buckets_double_from_a_microsecond_and_hold_every_sample() {
        // 1 GHz: one tick is one nanosecond.
        let mut rx = LatencyRx::new(1_000_000_000);
        assert!(rx.buckets().is_empty());
        for (seq, lat) in [500u64, 1_500, 1_600, 3_000, 40_000]
            .into_iter()
            .enumerate()
        {
            let s = Stamp {
                stream: 0,
                seq: seq as u32,
                tsc: 1_000_000,
            };
            rx.record(&s, 1_000_000 + lat);
        }
        let b = rx.buckets();
        assert_eq!(
            b.iter().map(|(_, n)| n).sum::<u64>(),
            5,
            "every sample in a bucket"
        );
        let upper: Vec<u64> = b.iter().map(|(u, _)| *u).collect();
        assert!(
            upper.windows(2).all(|w| w[1] > w[0]),
            "ascending: {upper:?}"
        );
        let count_upto = |ns: u64| -> u64 {
            b.iter()
                .filter(|(u, _)| *u <= ns + ns / 100)
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(count_upto(1_000), 1, "500 ns in the first bucket");
        assert_eq!(count_upto(2_000), 3, "1.5 and 1.6 µs in (1, 2] µs");
        assert_eq!(count_upto(4_000), 4);
        assert_eq!(rx.report(&[5]).histogram, b);
    }
}
