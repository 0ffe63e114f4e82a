//! Counters that each worker publishes for the master: every field is written by exactly
//! one worker (relaxed stores of its own plain counters) and read by the master.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::dataplane::counters::{Counters, ServiceCounters};
use crate::dataplane::verdict::DropReason;

/// What the runtime itself counts around the dataplane.
#[derive(Debug, Default)]
pub struct RuntimeCounters {
    /// Packets the dataplane sent whose transmit queue stayed full (freed).
    pub tx_full: AtomicU64,
    /// Packets to redirect whose ring to the owner was full (freed).
    pub redirect_full: AtomicU64,
    /// Redirected packets received from other workers.
    pub redirect_in: AtomicU64,
    /// Control-plane packets whose ring to the master was full (freed).
    pub control_full: AtomicU64,
    /// Mbufs that were chained (multi-segment) and so could not be processed (freed).
    pub chained: AtomicU64,
    /// Loop iterations (a liveness signal for `stats`).
    pub loops: AtomicU64,
}

/// One worker's published counters.
#[derive(Debug)]
pub struct SharedCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    redirects: AtomicU64,
    control: AtomicU64,
    conns_created: AtomicU64,
    conns_expired: AtomicU64,
    toa_inserted: AtomicU64,
    toa_skipped: AtomicU64,
    icmp_translated: AtomicU64,
    icmp_echo_replied: AtomicU64,
    faults_injected: AtomicU64,
    live_conns: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    services: Box<[[AtomicU64; 4]]>,
    /// Counted by the runtime, not the dataplane.
    pub runtime: RuntimeCounters,
}

impl SharedCounters {
    /// Zeroed, with room for `services` service slots.
    pub fn new(services: usize) -> SharedCounters {
        SharedCounters {
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            redirects: AtomicU64::new(0),
            control: AtomicU64::new(0),
            conns_created: AtomicU64::new(0),
            conns_expired: AtomicU64::new(0),
            toa_inserted: AtomicU64::new(0),
            toa_skipped: AtomicU64::new(0),
            icmp_translated: AtomicU64::new(0),
            icmp_echo_replied: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            live_conns: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            services: (0..services)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            runtime: RuntimeCounters::default(),
        }
    }

    /// Copies the worker's counters out (worker side).
    pub fn publish(&self, c: &Counters, live_conns: usize) {
        let r = Ordering::Relaxed;
        self.rx_packets.store(c.rx_packets, r);
        self.rx_bytes.store(c.rx_bytes, r);
        self.tx_packets.store(c.tx_packets, r);
        self.tx_bytes.store(c.tx_bytes, r);
        self.redirects.store(c.redirects, r);
        self.control.store(c.control, r);
        self.conns_created.store(c.conns_created, r);
        self.conns_expired.store(c.conns_expired, r);
        self.toa_inserted.store(c.toa_inserted, r);
        self.toa_skipped.store(c.toa_skipped, r);
        self.icmp_translated.store(c.icmp_translated, r);
        self.icmp_echo_replied.store(c.icmp_echo_replied, r);
        self.faults_injected.store(c.faults_injected, r);
        self.live_conns.store(live_conns as u64, r);
        for (slot, value) in self.drops.iter().zip(c.drops.iter()) {
            slot.store(*value, r);
        }
        for (slot, svc) in self.services.iter().zip(c.services.iter()) {
            slot[0].store(svc.packets, r);
            slot[1].store(svc.bytes, r);
            slot[2].store(svc.conns, r);
            slot[3].store(svc.live, r);
        }
    }

    /// The last published counters (master side), and the live connection count.
    pub fn snapshot(&self) -> (Counters, u64) {
        let r = Ordering::Relaxed;
        let mut c = Counters::new(self.services.len());
        c.rx_packets = self.rx_packets.load(r);
        c.rx_bytes = self.rx_bytes.load(r);
        c.tx_packets = self.tx_packets.load(r);
        c.tx_bytes = self.tx_bytes.load(r);
        c.redirects = self.redirects.load(r);
        c.control = self.control.load(r);
        c.conns_created = self.conns_created.load(r);
        c.conns_expired = self.conns_expired.load(r);
        c.toa_inserted = self.toa_inserted.load(r);
        c.toa_skipped = self.toa_skipped.load(r);
        c.icmp_translated = self.icmp_translated.load(r);
        c.icmp_echo_replied = self.icmp_echo_replied.load(r);
        c.faults_injected = self.faults_injected.load(r);
        for (value, slot) in c.drops.iter_mut().zip(self.drops.iter()) {
            *value = slot.load(r);
        }
        for (svc, slot) in c.services.iter_mut().zip(self.services.iter()) {
            *svc = ServiceCounters {
                packets: slot[0].load(r),
                bytes: slot[1].load(r),
                conns: slot[2].load(r),
                live: slot[3].load(r),
            };
        }
        (c, self.live_conns.load(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_snapshot_round_trips() {
        let shared = SharedCounters::new(3);
        let mut c = Counters::new(3);
        c.rx_packets = 10;
        c.tx_packets = 7;
        c.drops[DropReason::NoService as usize] = 2;
        c.redirects = 1;
        c.faults_injected = 6;
        c.services[2].conns = 5;
        c.services[2].live = 3;
        shared.publish(&c, 4);
        let (got, live) = shared.snapshot();
        assert_eq!(got, c);
        assert_eq!(live, 4);
    }
}
