//! The per-lcore worker loop: receive a burst, run each packet through the worker's own
//! dataplane, queue the results per transmit port, and between bursts apply the master's
//! commands, expire connections and publish counters. Nothing here locks or allocates per
//! packet; the only shared state is the worker's [`WorkerLink`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use dpdk::ring::{Consumer, Producer};
use dpdk::{Burst, Mbuf, RxQueue, TxQueue};

use crate::dataplane::config::{ConfigChange, ServiceKey};
use crate::dataplane::frame::{Frame, RxMeta};
use crate::dataplane::sched::maglev::Maglev;
use crate::dataplane::types::{Nanos, WorkerId};
use crate::dataplane::verdict::Verdict;
use crate::dataplane::worker::ConnInfo;
use crate::dataplane::Worker as Dataplane;
use crate::runtime::clock::Clock;
use crate::runtime::stats::SharedCounters;
use crate::runtime::trace::{Direction, Tracer};

/// How often transmit bursts that are not full are sent anyway.
pub const TX_DRAIN: Nanos = 100_000;
/// How often connections are expired, and how many at most per round.
pub const EXPIRE_EVERY: Nanos = 1_000_000;
/// Connections examined per expiry round.
pub const EXPIRE_BUDGET: u32 = 256;
/// How often counters are published for the master.
pub const PUBLISH_EVERY: Nanos = 10_000_000;
/// Times a transmit burst is retried before what is left is dropped.
const TX_RETRIES: usize = 4;

/// A command from the master, applied between bursts.
#[derive(Debug)]
pub enum Command {
    /// Apply a configuration change; reply with [`Reply::Applied`].
    Change {
        /// Sequence number echoed in the reply.
        seq: u64,
        /// The change.
        change: ConfigChange,
        /// Maglev snapshots worker 0 built for this change, to adopt instead of building
        /// copies (empty for worker 0 itself).
        offered: Vec<Maglev>,
    },
    /// List up to `max` live connections; reply with [`Reply::Conns`].
    ListConns {
        /// Sequence number echoed in the reply.
        seq: u64,
        /// Most connections to return.
        max: usize,
    },
    /// Report which counter slot each service uses; reply with [`Reply::Slots`].
    ServiceSlots {
        /// Sequence number echoed in the reply.
        seq: u64,
    },
}

/// A worker's answer to a [`Command`].
#[derive(Debug)]
pub enum Reply {
    /// The result of a change.
    Applied {
        /// The command's sequence number.
        seq: u64,
        /// `Err` carries the dataplane's reason; the worker's state is unchanged then.
        result: Result<(), String>,
        /// The worker's Maglev snapshots after the change, when it was offered none
        /// (worker 0): what the master offers the others.
        tables: Vec<Maglev>,
        /// Snapshots the worker stopped using: the master frees them once every worker
        /// has applied the change.
        retired: Vec<Maglev>,
    },
    /// Live connections.
    Conns {
        /// The command's sequence number.
        seq: u64,
        /// The connections.
        conns: Vec<ConnInfo>,
    },
    /// Service counter slots.
    Slots {
        /// The command's sequence number.
        seq: u64,
        /// (service, slot in `Counters::services`).
        slots: Vec<(ServiceKey, usize)>,
    },
}

/// What the master and one worker share.
#[derive(Debug)]
pub struct WorkerLink {
    /// Set by the master to stop the worker.
    pub quit: AtomicBool,
    /// Master → worker commands (single producer: the master).
    pub inbox: ArrayQueue<Command>,
    /// Worker → master replies (single producer: the worker).
    pub outbox: ArrayQueue<Reply>,
    /// Published counters.
    pub counters: SharedCounters,
}

impl WorkerLink {
    /// A link with room for `depth` commands and replies, and `services` counter slots.
    pub fn new(depth: usize, services: usize) -> WorkerLink {
        WorkerLink {
            quit: AtomicBool::new(false),
            inbox: ArrayQueue::new(depth),
            outbox: ArrayQueue::new(depth),
            counters: SharedCounters::new(services),
        }
    }
}

/// A transmit queue of one port with the burst being filled for it.
#[derive(Debug)]
pub struct TxPort {
    queue: TxQueue,
    burst: Burst,
}

impl TxPort {
    /// Wraps a transmit queue.
    pub fn new(queue: TxQueue) -> TxPort {
        TxPort {
            queue,
            burst: Burst::new(),
        }
    }
}

/// Everything one worker owns. Built by the master, moved onto the worker's lcore.
#[derive(Debug)]
pub struct WorkerCtx {
    /// Worker index.
    pub id: WorkerId,
    /// The dataplane state (connections, port pool, schedulers, counters).
    pub dp: Dataplane,
    /// Receive queues this worker polls.
    pub rx: Vec<RxQueue>,
    /// Transmit queue per port id (`None` for ports it does not send on).
    pub tx: Vec<Option<TxPort>>,
    /// Rings to the other workers, by worker index (`None` for itself).
    pub redirect_out: Vec<Option<Producer<Mbuf>>>,
    /// Rings from the other workers.
    pub redirect_in: Vec<Consumer<Mbuf>>,
    /// Ring to the master for control-plane packets (ARP, NDP, …).
    pub to_master: Producer<Mbuf>,
    /// Packets the master wants sent (worker 0 only), each marked with its port.
    pub from_master: Option<Consumer<Mbuf>>,
    /// Shared with the master.
    pub link: Arc<WorkerLink>,
    /// Packet trace, when configured.
    pub trace: Option<Tracer>,
    /// Time source.
    pub clock: Clock,
}

impl WorkerCtx {
    /// Runs until the master sets `quit`. Returns the worker index.
    pub fn run(mut self) -> WorkerId {
        let mut burst = Burst::new();
        let (mut last_drain, mut last_expire, mut last_publish) = (0, 0, 0);
        let mut loops = 0u64;
        while !self.link.quit.load(Ordering::Relaxed) {
            let now = self.clock.now();
            self.handle_commands();
            for i in 0..self.rx.len() {
                if self.rx[i].rx_burst(&mut burst) > 0 {
                    let (port, queue) = (self.rx[i].port().0, self.rx[i].queue());
                    self.process_burst(now, &mut burst, Some((port, queue)));
                }
            }
            for i in 0..self.redirect_in.len() {
                let got = self.redirect_in[i].dequeue_burst(&mut burst);
                if got > 0 {
                    self.link
                        .counters
                        .runtime
                        .redirect_in
                        .fetch_add(got as u64, Ordering::Relaxed);
                    self.process_burst(now, &mut burst, None);
                }
            }
            if let Some(ring) = self.from_master.as_mut() {
                if ring.dequeue_burst(&mut burst) > 0 {
                    for m in burst.drain() {
                        let port = m.port();
                        self.send(port, m);
                    }
                }
            }
            if now.wrapping_sub(last_drain) >= TX_DRAIN {
                self.flush_all();
                last_drain = now;
            }
            if now.wrapping_sub(last_expire) >= EXPIRE_EVERY {
                self.dp.expire(now, EXPIRE_BUDGET);
                last_expire = now;
            }
            loops += 1;
            if now.wrapping_sub(last_publish) >= PUBLISH_EVERY {
                self.publish(loops);
                last_publish = now;
            }
        }
        self.flush_all();
        self.publish(loops);
        self.id
    }

    fn publish(&self, loops: u64) {
        self.link
            .counters
            .publish(self.dp.counters(), self.dp.conn_count() as usize);
        self.link
            .counters
            .runtime
            .loops
            .store(loops, Ordering::Relaxed);
    }

    /// Runs every packet of `burst` through the dataplane and routes it by verdict.
    /// `origin` is the (port, queue) it was received on; `None` for redirected packets,
    /// whose port travels in the mbuf.
    fn process_burst(&mut self, now: Nanos, burst: &mut Burst, origin: Option<(u16, u16)>) {
        for mut m in burst.drain() {
            let (port, queue) = origin.unwrap_or((m.port(), u16::MAX));
            if let Some(t) = self.trace.as_mut() {
                t.record(now, Direction::Rx, port, queue, m.data());
            }
            let meta = RxMeta {
                port,
                queue,
                rss_hash: m.rss_hash(),
            };
            let Some((buf, head, len)) = m.buffer_mut() else {
                self.link
                    .counters
                    .runtime
                    .chained
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Some(mut frame) = Frame::new(buf, head, len) else {
                self.link
                    .counters
                    .runtime
                    .chained
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let verdict = self.dp.process(now, &mut frame, &meta);
            let (head, len) = (frame.head(), frame.len());
            match verdict {
                Verdict::Tx { port: out } => {
                    if m.set_data_range(head, len).is_ok() {
                        if let Some(t) = self.trace.as_mut() {
                            t.record(now, Direction::Tx, out, self.id, m.data());
                        }
                        self.send(out, m);
                    } else {
                        self.link
                            .counters
                            .runtime
                            .chained
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                Verdict::Drop(_) => drop(m),
                Verdict::Redirect(owner) => {
                    m.set_port(port);
                    // The frame is untouched, except when a `wrong_worker` fault hands a
                    // rewritten one over (which may have grown).
                    if m.set_data_range(head, len).is_err() {
                        self.link
                            .counters
                            .runtime
                            .chained
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let ring = self
                        .redirect_out
                        .get_mut(usize::from(owner))
                        .and_then(Option::as_mut);
                    let full = match ring {
                        Some(ring) => ring.enqueue(m).is_err(),
                        None => true,
                    };
                    if full {
                        self.link
                            .counters
                            .runtime
                            .redirect_full
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                Verdict::Control => {
                    m.set_port(port);
                    if self.to_master.enqueue(m).is_err() {
                        self.link
                            .counters
                            .runtime
                            .control_full
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn send(&mut self, port: u16, m: Mbuf) {
        let Some(Some(tx)) = self.tx.get_mut(usize::from(port)) else {
            self.link
                .counters
                .runtime
                .tx_full
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Err(m) = tx.burst.push(m) {
            Self::flush(tx, &self.link);
            if tx.burst.push(m).is_err() {
                self.link
                    .counters
                    .runtime
                    .tx_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if tx.burst.is_full() {
            Self::flush(tx, &self.link);
        }
    }

    fn flush(tx: &mut TxPort, link: &WorkerLink) {
        for _ in 0..TX_RETRIES {
            if tx.burst.is_empty() {
                return;
            }
            tx.queue.tx_burst(&mut tx.burst);
        }
        let left = tx.burst.len() as u64;
        if left > 0 {
            link.counters
                .runtime
                .tx_full
                .fetch_add(left, Ordering::Relaxed);
            tx.burst.clear();
        }
    }

    fn flush_all(&mut self) {
        for tx in self.tx.iter_mut().flatten() {
            Self::flush(tx, &self.link);
        }
    }

    fn handle_commands(&mut self) {
        while let Some(cmd) = self.link.inbox.pop() {
            let reply = match cmd {
                Command::Change {
                    seq,
                    change,
                    offered,
                } => {
                    let first = offered.is_empty();
                    let result = self
                        .dp
                        .apply_shared(change, &offered)
                        .map_err(|e| e.to_string());
                    Reply::Applied {
                        seq,
                        result,
                        tables: if first {
                            self.dp.maglev_tables()
                        } else {
                            Vec::new()
                        },
                        retired: self.dp.take_retired(),
                    }
                }
                Command::ListConns { seq, max } => Reply::Conns {
                    seq,
                    conns: self.dp.conns().take(max).collect(),
                },
                Command::ServiceSlots { seq } => Reply::Slots {
                    seq,
                    slots: self.dp.service_slots().collect(),
                },
            };
            // The master drains replies before it sends more commands than the queue
            // holds, so this only fails if the master is gone.
            let _ = self.link.outbox.push(reply);
        }
    }
}
