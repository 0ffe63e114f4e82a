//! The master lcore: control plane only. It answers ARP for the forwarder's addresses,
//! serves the control socket and metrics, passes configuration changes to the workers
//! (waiting until each has applied them) and aggregates their counters. It never touches
//! the fast path.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::ring::{Consumer, Producer};
use dpdk::{Burst, Mbuf};
use l4lab_wire::{ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame};

use crate::dataplane::config::ConfigChange;
use crate::dataplane::counters::Counters;
use crate::dataplane::verdict::DropReason;
use crate::dataplane::worker::ConnInfo;
use crate::runtime::ports::{OpenPort, Steering};
use crate::runtime::worker::{Command, Reply, WorkerLink};
use crate::runtime::{owned_addrs, RuntimeError, RuntimePlan};

/// How long the master waits for every worker to apply a change.
pub const APPLY_TIMEOUT: Duration = Duration::from_millis(500);

/// Counters of one worker as the master last read them.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// Worker index.
    pub worker: u16,
    /// The dataplane's counters.
    pub dp: Counters,
    /// Live connections.
    pub live_conns: u64,
    /// Runtime counters: tx queue full, redirect ring full, redirects received, control
    /// ring full, chained mbufs, loop iterations.
    pub tx_full: u64,
    /// See `tx_full`.
    pub redirect_full: u64,
    /// See `tx_full`.
    pub redirect_in: u64,
    /// See `tx_full`.
    pub control_full: u64,
    /// See `tx_full`.
    pub chained: u64,
    /// See `tx_full`.
    pub loops: u64,
}

/// The master's state.
#[derive(Debug)]
pub struct Master {
    ports: Vec<MasterPort>,
    control_rx: Consumer<Mbuf>,
    /// Packets to send, through worker 0.
    out: Producer<Mbuf>,
    links: Vec<Arc<WorkerLink>>,
    steering: Steering,
    quit: Arc<AtomicBool>,
    owned: Vec<IpAddr>,
    seq: u64,
    arp_replies: u64,
    control_dropped: u64,
}

#[derive(Debug)]
struct MasterPort {
    id: u16,
    name: String,
    mac: [u8; 6],
}

impl Master {
    /// Builds the master over the opened ports and the workers' links.
    pub fn new(
        plan: &RuntimePlan,
        open: &[OpenPort],
        out: Producer<Mbuf>,
        control_rx: Consumer<Mbuf>,
        links: Vec<Arc<WorkerLink>>,
        steering: Steering,
        quit: Arc<AtomicBool>,
    ) -> Result<Master, RuntimeError> {
        let ports = open
            .iter()
            .map(|p| MasterPort {
                id: p.id.0,
                name: p.plan.name.clone(),
                mac: p.mac,
            })
            .collect();
        Ok(Master {
            ports,
            control_rx,
            out,
            links,
            steering,
            quit,
            owned: owned_addrs(&plan.dataplane),
            seq: 0,
            arp_replies: 0,
            control_dropped: 0,
        })
    }

    /// Runs the control loop until `quit` is set or `duration` has passed.
    pub fn run(&mut self, duration: Option<Duration>) -> Result<(), RuntimeError> {
        let start = Instant::now();
        while !self.quit.load(Ordering::Relaxed) {
            if duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            self.poll_control_packets();
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// How replies are steered.
    pub fn steering(&self) -> &Steering {
        &self.steering
    }

    /// Asks the loop to stop.
    pub fn request_quit(&self) {
        self.quit.store(true, Ordering::Relaxed);
    }

    fn poll_control_packets(&mut self) {
        let mut burst = Burst::new();
        while self.control_rx.dequeue_burst(&mut burst) > 0 {
            for m in burst.drain() {
                self.control_packet(m);
            }
        }
    }

    /// Answers ARP requests for owned addresses; everything else is counted and freed.
    fn control_packet(&mut self, mut m: Mbuf) {
        let port = m.port();
        let Some(idx) = self.ports.iter().position(|p| p.id == port) else {
            self.control_dropped += 1;
            return;
        };
        let our_mac = EthernetAddress(self.ports[idx].mac);
        let answered = {
            let data = m.data_mut();
            match EthernetFrame::new_checked(&mut data[..]) {
                Ok(eth) if eth.effective_ethertype() == EtherType::ARP => {
                    let l3 = eth.l3_offset();
                    let asker = eth.src_addr();
                    let reply = {
                        let buf = eth.into_inner();
                        match ArpPacket::new_checked(&mut buf[l3..]) {
                            Ok(mut arp)
                                if arp.operation() == ArpOperation::REQUEST
                                    && self
                                        .owned
                                        .contains(&IpAddr::V4(arp.target_protocol_addr())) =>
                            {
                                arp.make_reply(our_mac);
                                true
                            }
                            _ => false,
                        }
                    };
                    if reply {
                        if let Ok(mut eth) = EthernetFrame::new_checked(&mut data[..]) {
                            eth.set_dst_addr(asker);
                            eth.set_src_addr(our_mac);
                        }
                    }
                    reply
                }
                _ => false,
            }
        };
        if !answered {
            self.control_dropped += 1;
            return;
        }
        m.set_port(port);
        if self.out.enqueue(m).is_ok() {
            self.arp_replies += 1;
        } else {
            self.control_dropped += 1;
        }
    }

    /// Applies a change on every worker: first on worker 0; only if it accepts, on the
    /// others. A refused change therefore changes nothing anywhere (every worker holds
    /// the same configuration and applies changes all-or-nothing).
    pub fn change(&mut self, change: ConfigChange) -> Result<(), String> {
        let first = self.send(0, |seq| Command::Change {
            seq,
            change: change.clone(),
        })?;
        match first {
            Reply::Applied { result: Err(e), .. } => return Err(e),
            Reply::Applied { result: Ok(()), .. } => {}
            Reply::Conns { .. } => return Err("worker 0 answered out of turn".into()),
        }
        for w in 1..self.links.len() {
            match self.send(w, |seq| Command::Change {
                seq,
                change: change.clone(),
            })? {
                Reply::Applied { result: Ok(()), .. } => {}
                Reply::Applied { result: Err(e), .. } => {
                    return Err(format!(
                        "worker {w} refused a change worker 0 accepted: {e}"
                    ))
                }
                Reply::Conns { .. } => return Err(format!("worker {w} answered out of turn")),
            }
        }
        Ok(())
    }

    /// Up to `max` live connections from every worker.
    pub fn list_conns(&mut self, max: usize) -> Result<Vec<ConnInfo>, String> {
        let mut all = Vec::new();
        for w in 0..self.links.len() {
            let left = max.saturating_sub(all.len());
            if left == 0 {
                break;
            }
            match self.send(w, |seq| Command::ListConns { seq, max: left })? {
                Reply::Conns { conns, .. } => all.extend(conns),
                Reply::Applied { .. } => return Err(format!("worker {w} answered out of turn")),
            }
        }
        Ok(all)
    }

    fn send(&mut self, worker: usize, cmd: impl FnOnce(u64) -> Command) -> Result<Reply, String> {
        let link = self
            .links
            .get(worker)
            .ok_or_else(|| format!("no worker {worker}"))?
            .clone();
        // Stale replies (from a command that timed out earlier) are discarded.
        while link.outbox.pop().is_some() {}
        self.seq += 1;
        let seq = self.seq;
        link.inbox
            .push(cmd(seq))
            .map_err(|_| format!("worker {worker}'s command queue is full"))?;
        let start = Instant::now();
        loop {
            if let Some(reply) = link.outbox.pop() {
                let got = match &reply {
                    Reply::Applied { seq, .. } | Reply::Conns { seq, .. } => *seq,
                };
                if got == seq {
                    return Ok(reply);
                }
                continue;
            }
            if start.elapsed() > APPLY_TIMEOUT {
                return Err(format!(
                    "worker {worker} did not answer within {} ms",
                    APPLY_TIMEOUT.as_millis()
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Every worker's last published counters.
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        self.links
            .iter()
            .enumerate()
            .map(|(w, link)| {
                let (dp, live_conns) = link.counters.snapshot();
                let rt = &link.counters.runtime;
                let r = Ordering::Relaxed;
                WorkerStats {
                    worker: w as u16,
                    dp,
                    live_conns,
                    tx_full: rt.tx_full.load(r),
                    redirect_full: rt.redirect_full.load(r),
                    redirect_in: rt.redirect_in.load(r),
                    control_full: rt.control_full.load(r),
                    chained: rt.chained.load(r),
                    loops: rt.loops.load(r),
                }
            })
            .collect()
    }

    /// The final counters as JSON (per worker, with drops by reason).
    pub fn stats_json(&self) -> serde_json::Value {
        let workers: Vec<serde_json::Value> = self
            .worker_stats()
            .iter()
            .map(|w| {
                let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
                    .iter()
                    .map(|r| (r.name().to_owned(), w.dp.drops[*r as usize].into()))
                    .collect();
                serde_json::json!({
                    "worker": w.worker,
                    "rx_packets": w.dp.rx_packets,
                    "rx_bytes": w.dp.rx_bytes,
                    "tx_packets": w.dp.tx_packets,
                    "tx_bytes": w.dp.tx_bytes,
                    "redirects": w.dp.redirects,
                    "control": w.dp.control,
                    "conns_created": w.dp.conns_created,
                    "conns_expired": w.dp.conns_expired,
                    "live_conns": w.live_conns,
                    "toa_inserted": w.dp.toa_inserted,
                    "toa_skipped": w.dp.toa_skipped,
                    "drops": drops,
                    "tx_full": w.tx_full,
                    "redirect_full": w.redirect_full,
                    "redirect_in": w.redirect_in,
                    "control_full": w.control_full,
                    "chained": w.chained,
                })
            })
            .collect();
        serde_json::json!({
            "steering": self.steering.name(),
            "steering_detail": self.steering.to_string(),
            "ports": self.ports.iter().map(|p| serde_json::json!({"name": p.name, "id": p.id})).collect::<Vec<_>>(),
            "arp_replies": self.arp_replies,
            "control_dropped": self.control_dropped,
            "workers": workers,
        })
    }

    /// Prints a summary and writes the JSON counters where asked.
    pub fn finish(&self, stats_json: Option<&Path>) {
        for w in self.worker_stats() {
            eprintln!(
                "forwarder: worker {}: rx {} tx {} drops {} redirects {} control {} conns {} (live {})",
                w.worker,
                w.dp.rx_packets,
                w.dp.tx_packets,
                w.dp.total_drops(),
                w.dp.redirects,
                w.dp.control,
                w.dp.conns_created,
                w.live_conns
            );
        }
        if let Some(path) = stats_json {
            let text = self.stats_json().to_string();
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("forwarder: cannot write {}: {e}", path.display());
            }
        }
    }
}
