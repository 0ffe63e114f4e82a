//! Per-worker counters: plain `u64` increments, read and summed by the runtime.
//!
//! Every packet given to `Worker::process` is counted in `rx_*` and in exactly one of
//! `tx_*`, `drops`, `redirects` or `control`, so that
//! `rx_packets == tx_packets + Σ drops + redirects + control`.

use crate::dataplane::verdict::DropReason;

/// Counters of one service slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// Packets forwarded in either direction for this service.
    pub packets: u64,
    /// Bytes (as received) of those packets.
    pub bytes: u64,
    /// Connections created.
    pub conns: u64,
    /// Connections alive now.
    pub live: u64,
}

/// Counters of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Packets given to `process`.
    pub rx_packets: u64,
    /// Bytes of those packets, as received.
    pub rx_bytes: u64,
    /// Packets returned with `Verdict::Tx`.
    pub tx_packets: u64,
    /// Bytes of those packets, as transmitted.
    pub tx_bytes: u64,
    /// Drops, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
    /// Packets returned with `Verdict::Redirect`.
    pub redirects: u64,
    /// Packets returned with `Verdict::Control`.
    pub control: u64,
    /// Connections created.
    pub conns_created: u64,
    /// Connections expired (or removed by configuration).
    pub conns_expired: u64,
    /// TOA options inserted.
    pub toa_inserted: u64,
    /// TOA insertions skipped because the options would pass 40 bytes.
    pub toa_skipped: u64,
    /// ICMP errors translated for a connection.
    pub icmp_translated: u64,
    /// ICMP echo requests to a VIP answered.
    pub icmp_echo_replied: u64,
    /// New connections sent to their client's remembered real server (persistence).
    pub persist_hits: u64,
    /// New connections whose client's remembered real server was removed or quiesced,
    /// scheduled afresh.
    pub persist_rescheduled: u64,
    /// New connections of a persistent service whose client could not be remembered
    /// (its bucket of the persistence table held only other live clients): the
    /// client's next connection is scheduled afresh.
    pub persist_full: u64,
    /// Packets the configured fault changed, moved to another worker or dropped
    /// ([`crate::dataplane::fault`]); always 0 without one. Not a disposition: such a
    /// packet is still counted once in `tx_*`, `drops` or `redirects`.
    pub faults_injected: u64,
    /// Per service slot.
    pub services: Box<[ServiceCounters]>,
}

impl Counters {
    /// Zeroed counters with room for `services` service slots.
    pub fn new(services: usize) -> Counters {
        Counters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            drops: [0; DropReason::COUNT],
            redirects: 0,
            control: 0,
            conns_created: 0,
            conns_expired: 0,
            toa_inserted: 0,
            toa_skipped: 0,
            icmp_translated: 0,
            icmp_echo_replied: 0,
            persist_hits: 0,
            persist_rescheduled: 0,
            persist_full: 0,
            faults_injected: 0,
            services: vec![ServiceCounters::default(); services].into_boxed_slice(),
        }
    }

    /// Drops for one reason.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Sum of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}
