//! Per-worker local address/port pool for FULLNAT.
//!
//! A FULLNAT connection C:cp → V:vp is forwarded as L:lp → D:dp, so the real server D
//! replies to the local address and port L:lp. Each worker owns a [`LaddrPool`]: the local
//! addresses (IPv4 and IPv6, shared by every worker) and the slice of local ports it may
//! hand out, chosen so that the reply D:dp → L:lp comes back to the same worker.
//!
//! Two port-choice policies ([`PortPolicy`]):
//!
//! - **Partition** (DPVS `sa_pool`): with N workers, `mask = 2^ceil(log2 N) − 1` and
//!   worker k owns the ports with `port & mask == k`. The runtime installs one rte_flow
//!   rule per (local address, worker, L4 protocol): `dst ip == L && dst port & mask == k`
//!   → a queue of worker k. Ports are handed out FIFO from a preallocated ring, O(1).
//! - **RSS-aware**, for NICs and virtual devices without flow rules: a port is usable by
//!   worker k for a given real server if the Toeplitz hash of the *reply* tuple
//!   (D, L, dp, lp) under the reply port's key, hash types and RETA selects a queue worker k
//!   owns. Per allocation the pool computes `base = partial(D, L) ^ partial(dp)` once, then
//!   scans candidate ports from a rotating cursor at two table lookups, two XORs and one
//!   RETA-ownership lookup each, skipping ports in use; the scan is bounded
//!   ([`DEFAULT_MAX_SCAN`]) and a failure is an error value, never a reuse.
//!
//! # In-use tracking
//!
//! Every (local address, protocol) has a preallocated 65536-bit bitmap of ports in use,
//! under both policies: a port is unique per local address regardless of the real server
//! (DPVS's rule). For the RSS-aware policy this is stricter than needed (uniqueness per
//! (L, D, dp, proto) would do) but it needs no per-connection table, costs 8 KiB per
//! address and protocol, and keeps `release` a single bit clear. The cost is capacity: a
//! worker gets about `64511 × owned queues / RETA queues` concurrent connections per local
//! address and protocol, as with the partition policy.
//!
//! # Uniqueness across workers
//!
//! Invariant: a (L, lp) is never held by two live connections to the same (D, dp, proto)
//! anywhere in the box.
//!
//! - Partition: worker k only hands out ports with `port & mask == k`; for k ≠ j these sets
//!   are disjoint, and within one worker the bitmap forbids a second holder.
//! - RSS-aware: worker k accepts (L, lp) for (D, dp, proto) only if
//!   `RETA[toeplitz(D, L, dp, lp) mod |RETA|] ∈ Q(k)`, where Q(k) is the set of queues k
//!   owns. The hash, hence the queue q, is a function of (D, L, dp, lp, proto) alone (same
//!   key, hash types and RETA on every worker: it is one NIC port). The queue sets of
//!   distinct workers are disjoint (each RX queue is polled by one worker), so q lies in at
//!   most one Q(k): at most one worker can ever accept (L, lp) for that (D, dp, proto), and
//!   inside that worker the bitmap forbids a second holder. ∎ (Tested by
//!   `rss_no_collisions_across_workers`.) The argument needs the queue sets to be disjoint;
//!   [`LaddrPool::new`] cannot see the other workers, so the runtime must build the sets
//!   from one queue → worker map.
//!
//! Allocation happens at connection setup, never per packet, and allocates no memory.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use super::rss::{Family, RssModel};
use super::types::{Proto, WorkerId};

/// Lowest local port handed out.
pub const MIN_PORT: u16 = 1025;
/// Highest local port handed out.
pub const MAX_PORT: u16 = 65535;
/// Number of ports in `MIN_PORT..=MAX_PORT`.
pub const PORT_COUNT: u32 = MAX_PORT as u32 - MIN_PORT as u32 + 1;
/// Default bound on candidate ports examined per local address by one RSS-aware
/// allocation. With a worker owning 1/8 of the RETA, the chance that 4096 free candidates
/// all miss is (7/8)^4096 ≈ 0.
pub const DEFAULT_MAX_SCAN: u32 = 4096;

/// Why a local address/port could not be allocated or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum LaddrError {
    /// No local address of the real server's address family is configured.
    #[error("no local address of the real server's family; configure one (e.g. `laddr add`)")]
    NoLocalAddr,
    /// Every port this worker may use for this real server is in use on every local
    /// address of its family.
    #[error("local ports exhausted; add local addresses or spread load over more workers")]
    Exhausted,
    /// The RSS-aware scan examined its maximum number of candidates without finding a
    /// free port whose reply lands on this worker.
    #[error(
        "no suitable local port within the scan limit; add local addresses or raise the scan limit"
    )]
    ScanLimit,
    /// The reply hash does not depend on the local port (the NIC hashes this protocol on
    /// addresses only, or not at all) and it lands on another worker for every local
    /// address: replies from this real server can never reach this worker.
    #[error("replies from this real server never reach this worker; enable L4 RSS hash types or flow rules")]
    NotSteerable,
    /// `release` of a port that is not allocated.
    #[error("local port not allocated")]
    NotAllocated,
    /// `release` (or `remove_laddr`) of an address that is not configured.
    #[error("unknown local address")]
    UnknownLaddr,
    /// `add_laddr` of an address that is already configured.
    #[error("local address configured twice; remove the duplicate")]
    DuplicateLaddr,
    /// `remove_laddr` of an address that still has ports in use.
    #[error("local address still has connections; wait for them to close")]
    LaddrInUse,
    /// Partition policy: the worker id is not below the worker count, or the count is 0.
    #[error("worker {worker} is not one of {workers} workers")]
    BadWorker {
        /// The worker id given.
        worker: WorkerId,
        /// The worker count given.
        workers: u16,
    },
    /// RSS-aware policy: the worker owns no queue that appears in the RETA.
    #[error("worker owns no RX queue of the RETA; give it at least one queue")]
    NoQueues,
}

/// How a worker chooses its local ports.
#[derive(Debug, Clone)]
pub enum PortPolicy {
    /// DPVS sa_pool: worker k of `workers` owns ports with `port & mask == k`,
    /// `mask = 2^ceil(log2 workers) − 1` (see [`partition_mask`]).
    Partition {
        /// Total number of workers sharing the local addresses.
        workers: u16,
    },
    /// RSS-aware choice: a port is usable if the reply tuple's hash selects a queue in
    /// `owned_queues`.
    RssAware {
        /// The RSS model (key, hash types, RETA) of the port the replies arrive on.
        model: RssModel,
        /// The RX queues of that port this worker polls. Must be disjoint from every other
        /// worker's set.
        owned_queues: Vec<u16>,
        /// Bound on candidates examined per local address per allocation
        /// ([`DEFAULT_MAX_SCAN`]; at most [`PORT_COUNT`] is meaningful).
        max_scan: u32,
    },
}

/// The partition mask for `workers` workers: `2^ceil(log2 workers) − 1` (0 for 0 or 1).
pub fn partition_mask(workers: u16) -> u16 {
    let pow = u32::from(workers.max(1)).next_power_of_two();
    // pow ≤ 65536, so pow - 1 fits in u16.
    (pow - 1) as u16
}

/// Counters of one pool. Plain increments; the master sums them over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaddrStats {
    /// Successful allocations.
    pub allocs: u64,
    /// Allocations that failed with [`LaddrError::Exhausted`].
    pub exhausted: u64,
    /// Allocations that failed with [`LaddrError::ScanLimit`].
    pub scan_limit: u64,
    /// Allocations that failed with [`LaddrError::NotSteerable`] or
    /// [`LaddrError::NoLocalAddr`].
    pub unroutable: u64,
    /// Successful releases.
    pub releases: u64,
    /// Releases refused ([`LaddrError::NotAllocated`] or [`LaddrError::UnknownLaddr`]): a
    /// bug in the caller's bookkeeping.
    pub bad_releases: u64,
    /// Candidate ports examined by RSS-aware scans (in use or not owned included).
    pub scanned: u64,
}

/// A 65536-bit set of ports.
#[derive(Clone)]
struct PortBitmap {
    words: Box<[u64; 1024]>,
}

impl PortBitmap {
    fn new() -> PortBitmap {
        PortBitmap {
            words: Box::new([0; 1024]),
        }
    }

    #[inline]
    fn get(&self, port: u16) -> bool {
        self.words[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }

    #[inline]
    fn set(&mut self, port: u16) {
        self.words[usize::from(port >> 6)] |= 1 << (port & 63);
    }

    #[inline]
    fn clear(&mut self, port: u16) {
        self.words[usize::from(port >> 6)] &= !(1 << (port & 63));
    }
}

/// A fixed-capacity FIFO of free ports (partition policy).
#[derive(Clone)]
struct FreeRing {
    slots: Box<[u16]>,
    head: usize,
    len: usize,
}

impl FreeRing {
    fn full(ports: &[u16]) -> FreeRing {
        FreeRing {
            slots: ports.into(),
            head: 0,
            len: ports.len(),
        }
    }

    fn pop(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let p = self.slots[self.head];
        // `head < slots.len()`: a compare instead of a division.
        self.head = if self.head + 1 == self.slots.len() {
            0
        } else {
            self.head + 1
        };
        self.len -= 1;
        Some(p)
    }

    /// Push back a port; the caller guarantees it came from `pop` (checked by the bitmap),
    /// so the ring never overflows.
    fn push(&mut self, port: u16) {
        let cap = self.slots.len();
        if self.len < cap {
            // `head < cap` and `len < cap`: one subtraction wraps the sum.
            let at = self.head + self.len;
            self.slots[if at >= cap { at - cap } else { at }] = port;
            self.len += 1;
        }
    }
}

/// Port state of one (local address, protocol).
#[derive(Clone)]
struct ProtoPorts {
    used: PortBitmap,
    in_use: u32,
    /// Partition policy: the free ports in FIFO order. Empty for RSS-aware.
    free: FreeRing,
    /// RSS-aware policy: the next candidate port.
    cursor: u16,
}

/// One local address and its per-protocol port state.
#[derive(Clone)]
struct LocalAddr {
    addr: IpAddr,
    ports: [ProtoPorts; 3],
}

/// The RSS-aware chooser's precomputed state.
#[derive(Debug, Clone)]
struct RssChooser {
    model: RssModel,
    /// `owned[i]`: RETA entry i is a queue this worker owns.
    owned: Box<[bool]>,
    /// Contribution of the destination port's high and low bytes, per family (V4, V6).
    dport_hi: [[u32; 256]; 2],
    dport_lo: [[u32; 256]; 2],
    max_scan: u32,
}

impl RssChooser {
    #[inline]
    fn owns(&self, hash: u32) -> bool {
        // `Reta::index` is always below the RETA length, which `owned` matches.
        self.owned[self.model.reta.index(hash)]
    }

    /// Whether this worker owns RX queue `queue`.
    fn owns_queue(&self, queue: u16) -> bool {
        self.model
            .reta
            .entries()
            .iter()
            .zip(self.owned.iter())
            .any(|(&q, &o)| o && q == queue)
    }
}

#[derive(Debug, Clone)]
enum Chooser {
    Partition {
        mask: u16,
        worker: u16,
        ports: Box<[u16]>,
    },
    Rss(Box<RssChooser>),
}

/// The local address/port pool of one worker. Build one per worker at configuration time
/// and move it into the worker.
#[derive(Clone)]
pub struct LaddrPool {
    worker: WorkerId,
    chooser: Chooser,
    laddrs: Vec<LocalAddr>,
    /// Round-robin position per family (V4, V6) into `laddrs`.
    next: [usize; 2],
    stats: LaddrStats,
}

impl LaddrPool {
    /// A pool for `worker` with the given local addresses and policy.
    pub fn new(
        worker: WorkerId,
        laddrs: &[IpAddr],
        policy: PortPolicy,
    ) -> Result<LaddrPool, LaddrError> {
        let chooser = match policy {
            PortPolicy::Partition { workers } => {
                if workers == 0 || worker >= workers {
                    return Err(LaddrError::BadWorker { worker, workers });
                }
                let mask = partition_mask(workers);
                let ports = (MIN_PORT..=MAX_PORT)
                    .filter(|p| p & mask == worker)
                    .collect();
                Chooser::Partition {
                    mask,
                    worker,
                    ports,
                }
            }
            PortPolicy::RssAware {
                model,
                owned_queues,
                max_scan,
            } => {
                let owned: Box<[bool]> = model
                    .reta
                    .entries()
                    .iter()
                    .map(|q| owned_queues.contains(q))
                    .collect();
                if !owned.iter().any(|&o| o) {
                    return Err(LaddrError::NoQueues);
                }
                let mut dport_hi = [[0u32; 256]; 2];
                let mut dport_lo = [[0u32; 256]; 2];
                for (fi, f) in [Family::V4, Family::V6].into_iter().enumerate() {
                    let off = f.dport_offset();
                    for b in 0..=255u8 {
                        dport_hi[fi][usize::from(b)] = model.toeplitz.partial(off, &[b]);
                        dport_lo[fi][usize::from(b)] = model.toeplitz.partial(off + 1, &[b]);
                    }
                }
                Chooser::Rss(Box::new(RssChooser {
                    model,
                    owned,
                    dport_hi,
                    dport_lo,
                    max_scan: max_scan.clamp(1, PORT_COUNT),
                }))
            }
        };
        let mut pool = LaddrPool {
            worker,
            chooser,
            laddrs: Vec::with_capacity(laddrs.len()),
            next: [0; 2],
            stats: LaddrStats::default(),
        };
        for &a in laddrs {
            pool.add_laddr(a)?;
        }
        Ok(pool)
    }

    /// Add a local address (configuration time; allocates its bitmaps).
    pub fn add_laddr(&mut self, addr: IpAddr) -> Result<(), LaddrError> {
        if self.laddrs.iter().any(|l| l.addr == addr) {
            return Err(LaddrError::DuplicateLaddr);
        }
        let owned_ports: &[u16] = match &self.chooser {
            Chooser::Partition { ports, .. } => ports,
            Chooser::Rss(_) => &[],
        };
        // Start RSS cursors at a worker-dependent place so that workers do not all probe
        // the same low ports first (cosmetic: correctness does not depend on it).
        let cursor = MIN_PORT + (u32::from(self.worker).wrapping_mul(7919) % PORT_COUNT) as u16;
        let proto_ports = ProtoPorts {
            used: PortBitmap::new(),
            in_use: 0,
            free: FreeRing::full(owned_ports),
            cursor,
        };
        self.laddrs.push(LocalAddr {
            addr,
            ports: [proto_ports.clone(), proto_ports.clone(), proto_ports],
        });
        Ok(())
    }

    /// Remove a local address that has no port in use (configuration time).
    pub fn remove_laddr(&mut self, addr: IpAddr) -> Result<(), LaddrError> {
        let i = self
            .laddrs
            .iter()
            .position(|l| l.addr == addr)
            .ok_or(LaddrError::UnknownLaddr)?;
        if self.laddrs[i].ports.iter().any(|p| p.in_use != 0) {
            return Err(LaddrError::LaddrInUse);
        }
        self.laddrs.remove(i);
        self.next = [0; 2];
        Ok(())
    }

    /// The worker this pool belongs to.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// The configured local addresses, in round-robin order.
    pub fn laddrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.laddrs.iter().map(|l| l.addr)
    }

    /// The partition mask and this worker's value under the partition policy (what the
    /// runtime's rte_flow rule matches: `dst port & mask == value`); `None` for RSS-aware.
    pub fn partition(&self) -> Option<(u16, u16)> {
        match &self.chooser {
            Chooser::Partition { mask, worker, .. } => Some((*mask, *worker)),
            Chooser::Rss(_) => None,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &LaddrStats {
        &self.stats
    }

    /// Ports in use on `laddr` for `proto` (0 for an unknown address).
    pub fn in_use(&self, proto: Proto, laddr: IpAddr) -> u32 {
        self.laddrs
            .iter()
            .find(|l| l.addr == laddr)
            .map_or(0, |l| l.ports[proto_index(proto)].in_use)
    }

    /// Whether `lport` on `laddr` is allocated for `proto`.
    pub fn is_allocated(&self, proto: Proto, laddr: IpAddr, lport: u16) -> bool {
        self.laddrs
            .iter()
            .find(|l| l.addr == laddr)
            .is_some_and(|l| l.ports[proto_index(proto)].used.get(lport))
    }

    /// Whether this worker's policy would accept `lport` on `laddr` for a connection to `rs`
    /// (ignoring whether it is in use). For the RSS-aware policy: whether the reply
    /// rs → laddr:lport lands on one of this worker's queues.
    pub fn accepts(&self, proto: Proto, rs: SocketAddr, laddr: IpAddr, lport: u16) -> bool {
        if !(MIN_PORT..=MAX_PORT).contains(&lport) {
            return false;
        }
        match &self.chooser {
            Chooser::Partition { mask, worker, .. } => lport & mask == *worker,
            Chooser::Rss(c) => {
                let reply = super::types::Tuple {
                    proto,
                    src: rs.ip(),
                    sport: rs.port(),
                    dst: laddr,
                    dport: lport,
                };
                match c.model.hash(&reply) {
                    Some(h) => c.owns(h),
                    // No hash: the NIC delivers to queue 0.
                    None => c.owns_queue(0),
                }
            }
        }
    }

    /// Allocate a local address and port for a new connection to real server `rs`.
    ///
    /// The local address has the family of `rs`; addresses are tried round-robin. On error
    /// nothing is allocated; the caller drops the connection and counts the reason.
    pub fn alloc(&mut self, proto: Proto, rs: SocketAddr) -> Result<(IpAddr, u16), LaddrError> {
        let family = Family::of(rs.ip());
        let fi = family_index(family);
        let n = self.laddrs.len();
        // `next` is below `n` unless an address was removed since: divide only then.
        let start = match self.next[fi] {
            s if s < n => s,
            s => s.checked_rem(n).unwrap_or(0),
        };
        let mut worst: Option<LaddrError> = None;
        for i in 0..n {
            // `start + i < 2n`: one subtraction instead of a division.
            let idx = if start + i >= n {
                start + i - n
            } else {
                start + i
            };
            if Family::of(self.laddrs[idx].addr) != family {
                continue;
            }
            match self.alloc_on(idx, proto, rs) {
                Ok(port) => {
                    self.next[fi] = if idx + 1 == n { 0 } else { idx + 1 };
                    self.stats.allocs += 1;
                    return Ok((self.laddrs[idx].addr, port));
                }
                Err(e) => worst = Some(merge_errors(worst, e)),
            }
        }
        let err = worst.unwrap_or(LaddrError::NoLocalAddr);
        match err {
            LaddrError::Exhausted => self.stats.exhausted += 1,
            LaddrError::ScanLimit => self.stats.scan_limit += 1,
            _ => self.stats.unroutable += 1,
        }
        Err(err)
    }

    /// Try to allocate a port on local address `idx`.
    fn alloc_on(&mut self, idx: usize, proto: Proto, rs: SocketAddr) -> Result<u16, LaddrError> {
        let la = &mut self.laddrs[idx];
        let pp = &mut la.ports[proto_index(proto)];
        match &self.chooser {
            Chooser::Partition { .. } => {
                let port = pp.free.pop().ok_or(LaddrError::Exhausted)?;
                pp.used.set(port);
                pp.in_use += 1;
                Ok(port)
            }
            Chooser::Rss(c) => {
                if pp.in_use >= PORT_COUNT {
                    return Err(LaddrError::Exhausted);
                }
                let family = Family::of(rs.ip());
                let t = &c.model.toeplitz;
                let ty = c.model.types.select(proto, family);
                let base = t.partial_addrs(rs.ip(), la.addr);
                let Some(ty) = ty.filter(|ty| ty.has_ports()) else {
                    // The reply's queue does not depend on the port: one check decides.
                    let owned = match ty {
                        Some(_) => c.owns(base),
                        // No hash: the NIC delivers to queue 0.
                        None => c.owns_queue(0),
                    };
                    if !owned {
                        return Err(LaddrError::NotSteerable);
                    }
                    return scan(pp, c.max_scan, &mut self.stats.scanned, |_| true);
                };
                let base = base ^ t.partial_sport(family, rs.port());
                let hi = &c.dport_hi[family_index(ty.family())];
                let lo = &c.dport_lo[family_index(ty.family())];
                scan(pp, c.max_scan, &mut self.stats.scanned, |p| {
                    let h = base ^ hi[usize::from(p >> 8)] ^ lo[usize::from(p & 0xff)];
                    c.owns(h)
                })
            }
        }
    }

    /// Return a port allocated by [`alloc`](Self::alloc). `rs` is the real server it was
    /// allocated for (unused by the per-address bitmap, kept so that a per-server tracker can
    /// replace it without changing callers).
    pub fn release(
        &mut self,
        proto: Proto,
        laddr: IpAddr,
        lport: u16,
        rs: SocketAddr,
    ) -> Result<(), LaddrError> {
        let _ = rs;
        let partition = matches!(self.chooser, Chooser::Partition { .. });
        let Some(la) = self.laddrs.iter_mut().find(|l| l.addr == laddr) else {
            self.stats.bad_releases += 1;
            return Err(LaddrError::UnknownLaddr);
        };
        let pp = &mut la.ports[proto_index(proto)];
        if !pp.used.get(lport) {
            self.stats.bad_releases += 1;
            return Err(LaddrError::NotAllocated);
        }
        pp.used.clear(lport);
        pp.in_use -= 1;
        if partition {
            pp.free.push(lport);
        }
        self.stats.releases += 1;
        Ok(())
    }
}

impl std::fmt::Debug for LaddrPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<IpAddr> = self.laddrs().collect();
        f.debug_struct("LaddrPool")
            .field("worker", &self.worker)
            .field("laddrs", &addrs)
            .field("partition", &self.partition())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Scan candidate ports from the cursor, at most `max_scan` of them, for one that is free
/// and `ok`; mark it used and move the cursor past it.
#[inline]
fn scan(
    pp: &mut ProtoPorts,
    max_scan: u32,
    scanned: &mut u64,
    ok: impl Fn(u16) -> bool,
) -> Result<u16, LaddrError> {
    let mut p = pp.cursor;
    for n in 0..max_scan {
        let cand = p;
        p = if p == MAX_PORT { MIN_PORT } else { p + 1 };
        if !pp.used.get(cand) && ok(cand) {
            *scanned += u64::from(n) + 1;
            pp.used.set(cand);
            pp.in_use += 1;
            pp.cursor = p;
            return Ok(cand);
        }
    }
    *scanned += u64::from(max_scan);
    pp.cursor = p;
    if max_scan >= PORT_COUNT {
        Err(LaddrError::Exhausted)
    } else {
        Err(LaddrError::ScanLimit)
    }
}

/// The error to report when several local addresses failed: the most actionable one.
fn merge_errors(prev: Option<LaddrError>, e: LaddrError) -> LaddrError {
    let rank = |e: LaddrError| match e {
        LaddrError::ScanLimit => 3,
        LaddrError::Exhausted => 2,
        LaddrError::NotSteerable => 1,
        _ => 0,
    };
    match prev {
        Some(p) if rank(p) >= rank(e) => p,
        _ => e,
    }
}

fn proto_index(proto: Proto) -> usize {
    match proto {
        Proto::Tcp => 0,
        Proto::Udp => 1,
        Proto::Icmp => 2,
    }
}

fn family_index(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::dataplane::rss::{
        hash_input, toeplitz_reference, HashTypes, Reta, RssKey, MAX_INPUT_LEN,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn laddrs() -> Vec<IpAddr> {
        vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("fd00::1")]
    }

    fn model(queues: u16) -> RssModel {
        RssModel::new(
            RssKey::microsoft(),
            HashTypes::all(),
            Reta::round_robin(128, queues).unwrap(),
        )
    }

    /// Worker k owns queues q with q % workers == k.
    fn rss_pool(worker: u16, workers: u16, queues: u16, max_scan: u32) -> LaddrPool {
        let owned_queues = (0..queues).filter(|q| q % workers == worker).collect();
        LaddrPool::new(
            worker,
            &laddrs(),
            PortPolicy::RssAware {
                model: model(queues),
                owned_queues,
                max_scan,
            },
        )
        .unwrap()
    }

    /// The reply queue by the bitwise reference Toeplitz.
    fn reference_queue(
        m: &RssModel,
        proto: Proto,
        rs: SocketAddr,
        laddr: IpAddr,
        lport: u16,
    ) -> u16 {
        let ty = m.types.select(proto, Family::of(laddr)).unwrap();
        let mut buf = [0u8; MAX_INPUT_LEN];
        let input = hash_input(ty, rs.ip(), laddr, rs.port(), lport, &mut buf);
        let h = toeplitz_reference(m.toeplitz.key().as_bytes(), input);
        m.reta.entries()[h as usize % m.reta.len()]
    }

    #[test]
    fn mask_values() {
        assert_eq!(partition_mask(0), 0);
        assert_eq!(partition_mask(1), 0);
        assert_eq!(partition_mask(2), 1);
        assert_eq!(partition_mask(3), 3);
        assert_eq!(partition_mask(4), 3);
        assert_eq!(partition_mask(5), 7);
        assert_eq!(partition_mask(8), 7);
        assert_eq!(partition_mask(9), 15);
    }

    #[test]
    fn bad_config() {
        let e = LaddrPool::new(3, &laddrs(), PortPolicy::Partition { workers: 3 }).unwrap_err();
        assert_eq!(
            e,
            LaddrError::BadWorker {
                worker: 3,
                workers: 3
            }
        );
        let e = LaddrPool::new(
            0,
            &laddrs(),
            PortPolicy::RssAware {
                model: model(4),
                owned_queues: vec![9],
                max_scan: 10,
            },
        )
        .unwrap_err();
        assert_eq!(e, LaddrError::NoQueues);
        let dup = [ip("10.0.0.1"), ip("10.0.0.1")];
        let e = LaddrPool::new(0, &dup, PortPolicy::Partition { workers: 1 }).unwrap_err();
        assert_eq!(e, LaddrError::DuplicateLaddr);
    }

    #[test]
    fn partition_ports_satisfy_mask() {
        for workers in 1..=9u16 {
            let mask = partition_mask(workers);
            for k in 0..workers {
                let mut p =
                    LaddrPool::new(k, &laddrs(), PortPolicy::Partition { workers }).unwrap();
                assert_eq!(p.partition(), Some((mask, k)));
                for i in 0..300u16 {
                    let rs = SocketAddr::new(ip("192.168.1.1"), 80 + i);
                    let (la, lp) = p.alloc(Proto::Tcp, rs).unwrap();
                    assert!(la.is_ipv4());
                    assert_eq!(lp & mask, k);
                    assert!(lp >= MIN_PORT);
                    assert!(p.accepts(Proto::Tcp, rs, la, lp));
                }
                let rs6 = SocketAddr::new(ip("fd00::99"), 80);
                let (la, lp) = p.alloc(Proto::Udp, rs6).unwrap();
                assert_eq!(la, ip("fd00::1"));
                assert_eq!(lp & mask, k);
            }
        }
    }

    #[test]
    fn partition_exhaustion_and_release() {
        let one = [ip("10.0.0.1")];
        let mut p = LaddrPool::new(5, &one, PortPolicy::Partition { workers: 8 }).unwrap();
        let rs = SocketAddr::new(ip("192.168.1.1"), 80);
        let owned = (MIN_PORT..=MAX_PORT).filter(|x| x & 7 == 5).count();
        let mut seen = HashSet::new();
        for _ in 0..owned {
            let (_, lp) = p.alloc(Proto::Tcp, rs).unwrap();
            assert!(seen.insert(lp), "port {lp} handed out twice");
        }
        assert_eq!(p.alloc(Proto::Tcp, rs), Err(LaddrError::Exhausted));
        assert_eq!(p.alloc(Proto::Tcp, rs), Err(LaddrError::Exhausted));
        assert_eq!(p.stats().exhausted, 2);
        // Another protocol has its own ports.
        assert!(p.alloc(Proto::Udp, rs).is_ok());
        // No IPv6 local address.
        let rs6 = SocketAddr::new(ip("fd00::99"), 80);
        assert_eq!(p.alloc(Proto::Tcp, rs6), Err(LaddrError::NoLocalAddr));
        // Release makes exactly that port reusable.
        p.release(Proto::Tcp, one[0], 1029, rs).unwrap();
        assert_eq!(
            p.release(Proto::Tcp, one[0], 1029, rs),
            Err(LaddrError::NotAllocated)
        );
        assert_eq!(p.alloc(Proto::Tcp, rs), Ok((one[0], 1029)));
        assert_eq!(p.alloc(Proto::Tcp, rs), Err(LaddrError::Exhausted));
        assert_eq!(
            p.release(Proto::Tcp, ip("10.9.9.9"), 1029, rs),
            Err(LaddrError::UnknownLaddr)
        );
        assert_eq!(p.remove_laddr(one[0]), Err(LaddrError::LaddrInUse));
    }

    #[test]
    fn laddrs_round_robin() {
        let mut p = LaddrPool::new(0, &laddrs(), PortPolicy::Partition { workers: 1 }).unwrap();
        let rs = SocketAddr::new(ip("192.168.1.1"), 80);
        let a: Vec<IpAddr> = (0..4).map(|_| p.alloc(Proto::Tcp, rs).unwrap().0).collect();
        assert_eq!(
            a,
            [
                ip("10.0.0.1"),
                ip("10.0.0.2"),
                ip("10.0.0.1"),
                ip("10.0.0.2")
            ]
        );
    }

    #[test]
    fn rss_exhaustion_and_release() {
        let one = [ip("10.0.0.1")];
        let mut p = LaddrPool::new(
            1,
            &one,
            PortPolicy::RssAware {
                model: model(4),
                owned_queues: vec![1],
                max_scan: PORT_COUNT,
            },
        )
        .unwrap();
        let m = model(4);
        let rs = SocketAddr::new(ip("192.168.7.7"), 8080);
        let owned = (MIN_PORT..=MAX_PORT)
            .filter(|&lp| reference_queue(&m, Proto::Udp, rs, one[0], lp) == 1)
            .count();
        let mut seen = HashSet::new();
        for _ in 0..owned {
            let (_, lp) = p.alloc(Proto::Udp, rs).unwrap();
            assert!(seen.insert(lp));
        }
        assert_eq!(p.alloc(Proto::Udp, rs), Err(LaddrError::Exhausted));
        let back = *seen.iter().next().unwrap();
        p.release(Proto::Udp, one[0], back, rs).unwrap();
        assert_eq!(p.alloc(Proto::Udp, rs), Ok((one[0], back)));
        // A bounded scan reports the limit, not exhaustion.
        let mut q = LaddrPool::new(
            1,
            &one,
            PortPolicy::RssAware {
                model: model(4),
                owned_queues: vec![1],
                max_scan: 1,
            },
        )
        .unwrap();
        let mut saw_limit = false;
        for _ in 0..50 {
            match q.alloc(Proto::Udp, rs) {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e, LaddrError::ScanLimit);
                    saw_limit = true;
                }
            }
        }
        assert!(saw_limit);
        assert!(q.stats().scan_limit > 0);
    }

    #[test]
    fn rss_ip_only_hash() {
        // With IP-only hashing the reply queue does not depend on the port: exactly one of
        // the workers can serve a given (RS, laddr), the others report NotSteerable.
        let m = RssModel::new(
            RssKey::microsoft(),
            HashTypes::ip_only(),
            Reta::round_robin(128, 2).unwrap(),
        );
        let one = [ip("10.0.0.1")];
        let rs = SocketAddr::new(ip("192.168.7.7"), 8080);
        let mut ok = 0;
        for w in 0..2u16 {
            let mut p = LaddrPool::new(
                w,
                &one,
                PortPolicy::RssAware {
                    model: m.clone(),
                    owned_queues: vec![w],
                    max_scan: 64,
                },
            )
            .unwrap();
            match p.alloc(Proto::Tcp, rs) {
                Ok((la, lp)) => {
                    ok += 1;
                    assert_eq!(reference_queue(&m, Proto::Tcp, rs, la, lp), w);
                }
                Err(e) => assert_eq!(e, LaddrError::NotSteerable),
            }
        }
        assert_eq!(ok, 1);
    }

    fn arb_rs() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), 1..=u16::MAX).prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
            (any::<[u8; 16]>(), 1..=u16::MAX)
                .prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
        ]
    }

    fn arb_proto() -> impl Strategy<Value = Proto> {
        prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Every port an RSS-aware worker allocates sends the reply to one of its queues,
        /// by the bitwise reference Toeplitz.
        #[test]
        fn rss_reply_lands_on_owner(
            workers in 2..=8u16,
            rss in proptest::collection::vec((arb_rs(), arb_proto()), 1..20),
        ) {
            let queues = workers * 2;
            let m = model(queues);
            for k in 0..workers {
                let mut p = rss_pool(k, workers, queues, DEFAULT_MAX_SCAN);
                for &(rs, proto) in &rss {
                    for _ in 0..3 {
                        let (la, lp) = p.alloc(proto, rs).unwrap();
                        prop_assert_eq!(Family::of(la), Family::of(rs.ip()));
                        prop_assert!((MIN_PORT..=MAX_PORT).contains(&lp));
                        let q = reference_queue(&m, proto, rs, la, lp);
                        prop_assert_eq!(q % workers, k, "reply to {}:{} on queue {}", la, lp, q);
                        prop_assert!(p.accepts(proto, rs, la, lp));
                    }
                }
            }
        }

        /// Workers sharing one RETA never hand out the same (laddr, lport) for the same
        /// (RS, proto), though each may reuse a port for different real servers.
        #[test]
        fn rss_no_collisions_across_workers(
            workers in 2..=8u16,
            rss in proptest::collection::vec((arb_rs(), arb_proto()), 1..6),
            order in proptest::collection::vec(0..8u16, 50..200),
        ) {
            let queues = workers;
            let mut pools: Vec<LaddrPool> =
                (0..workers).map(|k| rss_pool(k, workers, queues, DEFAULT_MAX_SCAN)).collect();
            let mut live: HashSet<(IpAddr, u16, SocketAddr, Proto)> = HashSet::new();
            for (i, w) in order.iter().enumerate() {
                let w = usize::from(w % workers);
                let (rs, proto) = rss[i % rss.len()];
                let (la, lp) = pools[w].alloc(proto, rs).unwrap();
                prop_assert!(live.insert((la, lp, rs, proto)), "{}:{} shared for {}", la, lp, rs);
            }
        }

        /// Partition workers never collide either, and release makes ports reusable.
        #[test]
        fn partition_no_collisions(workers in 2..=8u16, n in 1..200usize, rs in arb_rs()) {
            let mut pools: Vec<LaddrPool> = (0..workers)
                .map(|k| LaddrPool::new(k, &laddrs(), PortPolicy::Partition { workers }).unwrap())
                .collect();
            let mut live = HashSet::new();
            for i in 0..n {
                let w = i % usize::from(workers);
                let (la, lp) = pools[w].alloc(Proto::Tcp, rs).unwrap();
                prop_assert!(live.insert((la, lp)));
            }
            for &(la, lp) in &live {
                let w = usize::from(lp & partition_mask(workers));
                pools[w].release(Proto::Tcp, la, lp, rs).unwrap();
                prop_assert!(!pools[w].is_allocated(Proto::Tcp, la, lp));
            }
            for p in &pools {
                for la in p.laddrs() {
                    prop_assert_eq!(p.in_use(Proto::Tcp, la), 0);
                }
            }
        }
    }
}
