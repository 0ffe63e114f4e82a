//! Schedulers: choose a real server for a new connection.
//!
//! One [`Scheduler`] per service per worker (services are replicated per worker, so picks
//! need no lock). Algorithms ([`SchedKind`]):
//!
//! - `rr`: round robin over servers with non-zero weight.
//! - `wrr`: LVS's interleaved weighted round robin (gcd-stepped current weight).
//! - `wlc`: weighted least connections, LVS's overhead `active · 256 + inactive` divided by
//!   weight; the caller reports connection state changes ([`Scheduler::conn_opened`] …).
//! - `sh`: source hashing, a table of [`SH_TABLE_SIZE`] buckets filled in wrr order and
//!   indexed by a stable hash of the client address.
//! - `mh`: Maglev consistent hashing of the 5-tuple ([`maglev`]).
//!
//! Real servers live in stable slots: an index returned by [`Scheduler::pick`] keeps naming
//! the same server until it is removed, and a removed server's slot is reused only once its
//! connection counts are back to zero. A weight of 0 quiesces a server (never picked, still
//! present). Every configuration change rebuilds the tables; `pick` allocates nothing.
//! Persistence per client is the connection table's job, not the scheduler's.

pub mod hash;
pub mod maglev;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use thiserror::Error;

use self::hash::{hash_addr, hash_tuple, reduce, SEED_FLOW};
use self::maglev::{Maglev, MaglevBackend, MaglevError};
use super::types::Tuple;

/// Buckets of the source-hashing table (LVS uses 256; more buckets follow weights more
/// closely when there are many servers).
pub const SH_TABLE_SIZE: usize = 4096;

/// Scheduling algorithm of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin (LVS interleaved).
    Wrr,
    /// Weighted least connections.
    Wlc,
    /// Source hashing on the client address.
    Sh,
    /// Maglev hashing with a prime table size.
    Maglev {
        /// Table size M (prime; [`maglev::DEFAULT_TABLE_SIZE`] = 65537).
        table_size: u32,
    },
}

impl FromStr for SchedKind {
    type Err = SchedError;

    /// `rr`, `wrr`, `wlc`, `sh`, `mh` or `maglev` (table size 65537).
    fn from_str(s: &str) -> Result<SchedKind, SchedError> {
        match s {
            "rr" => Ok(SchedKind::Rr),
            "wrr" => Ok(SchedKind::Wrr),
            "wlc" => Ok(SchedKind::Wlc),
            "sh" => Ok(SchedKind::Sh),
            "mh" | "maglev" => Ok(SchedKind::Maglev {
                table_size: maglev::DEFAULT_TABLE_SIZE,
            }),
            _ => Err(SchedError::UnknownKind),
        }
    }
}

/// A scheduler configuration error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SchedError {
    /// Unknown algorithm name.
    #[error("unknown scheduler; use one of rr, wrr, wlc, sh, mh")]
    UnknownKind,
    /// The Maglev table could not be built.
    #[error(transparent)]
    Maglev(#[from] MaglevError),
    /// No real server at this index.
    #[error("no real server at index {0}")]
    NoSuchServer(usize),
    /// The real server is already configured.
    #[error("real server {0} is configured twice; remove the duplicate")]
    Duplicate(SocketAddr),
    /// More real servers than a table index can hold.
    #[error("too many real servers for one service")]
    TooMany,
}

/// A real server as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Address and port; also the server's identity for Maglev.
    pub addr: SocketAddr,
    /// Weight; 0 = quiesced (never picked).
    pub weight: u32,
}

/// Connection counts of one real server, maintained by the caller through
/// [`Scheduler::conn_opened`] and friends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    /// Connections in an active state (TCP ESTABLISHED, LVS's `activeconns`).
    pub active: u32,
    /// Other connections (handshake, closing, UDP; LVS's `inactconns`).
    pub inactive: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    backend: Backend,
    removed: bool,
}

/// State of the LVS interleaved wrr walk.
#[derive(Debug, Clone, Copy)]
struct WrrState {
    /// Last position (starts at len − 1 so the first step wraps to 0).
    i: usize,
    /// Current weight.
    cw: i64,
    gcd: u32,
    max: u32,
}

impl WrrState {
    fn new(weights: &[u32]) -> WrrState {
        let max = weights.iter().copied().max().unwrap_or(0);
        let gcd = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
        WrrState {
            i: weights.len().saturating_sub(1),
            cw: 0,
            gcd,
            max,
        }
    }

    /// LVS `ip_vs_wrr_schedule`: step through the servers; each time the walk wraps, lower
    /// the current weight by the gcd (back to the maximum below 1); pick the first server
    /// whose weight reaches it. At most `len × max/gcd` steps; usually a few.
    #[inline]
    fn next(&mut self, weights: &[u32]) -> Option<usize> {
        if self.max == 0 || weights.is_empty() {
            return None;
        }
        loop {
            self.i = if self.i + 1 >= weights.len() {
                0
            } else {
                self.i + 1
            };
            if self.i == 0 {
                self.cw -= i64::from(self.gcd);
                if self.cw <= 0 {
                    self.cw = i64::from(self.max);
                }
            }
            if i64::from(weights[self.i]) >= self.cw {
                return Some(self.i);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Algo {
    Rr { last: usize },
    Wrr(WrrState),
    Wlc,
    Sh { table: Box<[u32]>, any: bool },
    Maglev(Maglev),
}

/// A scheduler over one service's real servers.
#[derive(Debug, Clone)]
pub struct Scheduler {
    kind: SchedKind,
    slots: Vec<Slot>,
    /// Effective weight per slot (0 for removed slots); what the algorithms read.
    weights: Vec<u32>,
    counts: Vec<ConnCounts>,
    algo: Algo,
    /// Maglev snapshots the master offers for the next rebuild (configuration time).
    offered: Vec<Maglev>,
    /// Maglev snapshots this scheduler stopped using, for the master to free.
    retired: Vec<Maglev>,
}

impl Scheduler {
    /// A scheduler of `kind` over `backends` (indices follow the slice order).
    pub fn new(kind: SchedKind, backends: &[Backend]) -> Result<Scheduler, SchedError> {
        Self::new_sharing(kind, backends, &[])
    }

    /// [`Scheduler::new`], adopting an `offered` Maglev snapshot built from the same
    /// inputs instead of building a copy.
    pub fn new_sharing(
        kind: SchedKind,
        backends: &[Backend],
        offered: &[Maglev],
    ) -> Result<Scheduler, SchedError> {
        let mut s = Scheduler {
            kind,
            slots: Vec::with_capacity(backends.len()),
            weights: Vec::with_capacity(backends.len()),
            counts: Vec::with_capacity(backends.len()),
            algo: Algo::Wlc,
            offered: offered.to_vec(),
            retired: Vec::new(),
        };
        for b in backends {
            if s.find(b.addr).is_some() {
                return Err(SchedError::Duplicate(b.addr));
            }
            s.slots.push(Slot {
                backend: *b,
                removed: false,
            });
        }
        s.counts.resize(s.slots.len(), ConnCounts::default());
        s.rebuild()?;
        s.offered.clear();
        Ok(s)
    }

    /// Offers Maglev snapshots for the rebuilds of the next changes (replacing earlier
    /// offers); an empty slice withdraws them.
    pub fn set_offers(&mut self, offered: &[Maglev]) {
        self.offered.clear();
        self.offered.extend_from_slice(offered);
    }

    /// The Maglev snapshot in use, if this is a Maglev scheduler.
    pub fn maglev(&self) -> Option<&Maglev> {
        match &self.algo {
            Algo::Maglev(m) => Some(m),
            _ => None,
        }
    }

    /// Moves the snapshots this scheduler stopped using into `out`.
    pub fn take_retired(&mut self, out: &mut Vec<Maglev>) {
        out.append(&mut self.retired);
    }

    /// The algorithm.
    pub fn kind(&self) -> SchedKind {
        self.kind
    }

    /// Number of slots (removed ones included): every index `pick` returns is below this.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The real server in slot `i`, `None` if out of range or removed.
    pub fn backend(&self, i: usize) -> Option<&Backend> {
        self.slots.get(i).filter(|s| !s.removed).map(|s| &s.backend)
    }

    /// The slot of a configured real server.
    pub fn find(&self, addr: SocketAddr) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| !s.removed && s.backend.addr == addr)
    }

    /// Connection counts of slot `i` (zero if out of range).
    pub fn counts(&self, i: usize) -> ConnCounts {
        self.counts.get(i).copied().unwrap_or_default()
    }

    /// Add a real server; returns its slot. Reuses a removed server's slot once that slot
    /// has no connections left.
    pub fn add(&mut self, backend: Backend) -> Result<usize, SchedError> {
        if self.find(backend.addr).is_some() {
            return Err(SchedError::Duplicate(backend.addr));
        }
        let reusable = (0..self.slots.len())
            .find(|&i| self.slots[i].removed && self.counts[i] == ConnCounts::default());
        let i = match reusable {
            Some(i) => {
                self.slots[i] = Slot {
                    backend,
                    removed: false,
                };
                i
            }
            None => {
                if self.slots.len() >= u32::MAX as usize - 1 {
                    return Err(SchedError::TooMany);
                }
                self.slots.push(Slot {
                    backend,
                    removed: false,
                });
                self.counts.push(ConnCounts::default());
                self.slots.len() - 1
            }
        };
        self.rebuild()?;
        Ok(i)
    }

    /// Remove the real server in slot `i`. Its connection counts stay until its
    /// connections close.
    pub fn remove(&mut self, i: usize) -> Result<(), SchedError> {
        match self.slots.get_mut(i) {
            Some(s) if !s.removed => s.removed = true,
            _ => return Err(SchedError::NoSuchServer(i)),
        }
        self.rebuild()
    }

    /// Change the weight of slot `i` (0 quiesces it).
    pub fn set_weight(&mut self, i: usize, weight: u32) -> Result<(), SchedError> {
        match self.slots.get_mut(i) {
            Some(s) if !s.removed => s.backend.weight = weight,
            _ => return Err(SchedError::NoSuchServer(i)),
        }
        self.rebuild()
    }

    /// Recompute weights and the algorithm's tables (configuration time).
    fn rebuild(&mut self) -> Result<(), SchedError> {
        let weights: Vec<u32> = self
            .slots
            .iter()
            .map(|s| if s.removed { 0 } else { s.backend.weight })
            .collect();
        // Built before anything changes, so that an error leaves the scheduler as it was.
        let algo = match self.kind {
            SchedKind::Rr => Algo::Rr {
                last: self.slots.len().saturating_sub(1),
            },
            SchedKind::Wrr => Algo::Wrr(WrrState::new(&weights)),
            SchedKind::Wlc => Algo::Wlc,
            SchedKind::Sh => {
                let mut wrr = WrrState::new(&weights);
                let mut table = vec![0u32; SH_TABLE_SIZE];
                let mut any = false;
                for t in table.iter_mut() {
                    match wrr.next(&weights) {
                        Some(i) => {
                            *t = i as u32;
                            any = true;
                        }
                        None => break,
                    }
                }
                Algo::Sh {
                    table: table.into_boxed_slice(),
                    any,
                }
            }
            SchedKind::Maglev { table_size } => {
                let names: Vec<[u8; 19]> =
                    self.slots.iter().map(|s| name_of(s.backend.addr)).collect();
                let backends: Vec<MaglevBackend<'_>> = names
                    .iter()
                    .zip(&weights)
                    .enumerate()
                    .map(|(i, (n, &w))| MaglevBackend {
                        name: n,
                        weight: w,
                        index: i as u32,
                    })
                    .collect();
                Algo::Maglev(Maglev::new_or_adopt(table_size, &backends, &self.offered)?)
            }
        };
        self.weights = weights;
        if let Algo::Maglev(old) = std::mem::replace(&mut self.algo, algo) {
            self.retired.push(old);
        }
        Ok(())
    }

    /// Choose a real server for a new connection from `client` (the client → VIP tuple).
    /// `None` when no server has weight.
    #[inline]
    pub fn pick(&mut self, client: &Tuple) -> Option<usize> {
        match &mut self.algo {
            Algo::Rr { last } => {
                let n = self.weights.len();
                for step in 1..=n {
                    let i = (*last + step) % n;
                    if self.weights[i] > 0 {
                        *last = i;
                        return Some(i);
                    }
                }
                None
            }
            Algo::Wrr(st) => st.next(&self.weights),
            Algo::Wlc => self.least_connections(),
            Algo::Sh { table, any } => {
                if !*any {
                    return None;
                }
                let h = hash_addr(SEED_FLOW, client.src);
                Some(table[reduce(h, table.len())] as usize)
            }
            Algo::Maglev(m) => m.lookup(hash_tuple(SEED_FLOW, client)),
        }
    }

    /// LVS `ip_vs_wlc_schedule`: minimise `(active · 256 + inactive) / weight`, compared
    /// by cross-multiplication; ties go to the lowest slot.
    fn least_connections(&self) -> Option<usize> {
        let mut best: Option<(usize, u64, u64)> = None;
        for (i, (&w, c)) in self.weights.iter().zip(&self.counts).enumerate() {
            if w == 0 {
                continue;
            }
            let oh = u64::from(c.active) * 256 + u64::from(c.inactive);
            let w = u64::from(w);
            match best {
                Some((_, boh, bw))
                    if u128::from(boh) * u128::from(w) <= u128::from(oh) * u128::from(bw) => {}
                _ => best = Some((i, oh, w)),
            }
        }
        best.map(|(i, _, _)| i)
    }

    /// A new connection to slot `i`, in an active (`true`) or inactive state.
    pub fn conn_opened(&mut self, i: usize, active: bool) {
        if let Some(c) = self.counts.get_mut(i) {
            if active {
                c.active = c.active.saturating_add(1);
            } else {
                c.inactive = c.inactive.saturating_add(1);
            }
        }
    }

    /// A connection to slot `i` ended in an active (`true`) or inactive state.
    pub fn conn_closed(&mut self, i: usize, active: bool) {
        if let Some(c) = self.counts.get_mut(i) {
            if active {
                c.active = c.active.saturating_sub(1);
            } else {
                c.inactive = c.inactive.saturating_sub(1);
            }
        }
    }

    /// A connection to slot `i` became active (e.g. TCP reached ESTABLISHED).
    pub fn conn_activated(&mut self, i: usize) {
        if let Some(c) = self.counts.get_mut(i) {
            c.inactive = c.inactive.saturating_sub(1);
            c.active = c.active.saturating_add(1);
        }
    }

    /// A connection to slot `i` stopped being active (e.g. TCP left ESTABLISHED).
    pub fn conn_deactivated(&mut self, i: usize) {
        if let Some(c) = self.counts.get_mut(i) {
            c.active = c.active.saturating_sub(1);
            c.inactive = c.inactive.saturating_add(1);
        }
    }
}

/// Maglev name of a real server: family tag, address (16 bytes, IPv4 mapped), port.
fn name_of(addr: SocketAddr) -> [u8; 19] {
    let mut n = [0u8; 19];
    let v6 = match addr.ip() {
        IpAddr::V4(a) => {
            n[0] = 4;
            a.to_ipv6_mapped()
        }
        IpAddr::V6(a) => {
            n[0] = 6;
            a
        }
    };
    n[1..17].copy_from_slice(&v6.octets());
    n[17..].copy_from_slice(&addr.port().to_be_bytes());
    n
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::dataplane::types::Proto;

    fn be(i: usize, weight: u32) -> Backend {
        Backend {
            addr: SocketAddr::new(IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]), 80),
            weight,
        }
    }

    fn backends(weights: &[u32]) -> Vec<Backend> {
        weights.iter().enumerate().map(|(i, &w)| be(i, w)).collect()
    }

    fn client(i: u32) -> Tuple {
        Tuple {
            proto: Proto::Tcp,
            src: IpAddr::from((0xc0a8_0000u32 + i).to_be_bytes()),
            sport: 10_000 + (i % 50_000) as u16,
            dst: "10.0.0.100".parse().unwrap(),
            dport: 80,
        }
    }

    fn picks(s: &mut Scheduler, n: usize) -> Vec<usize> {
        (0..n).map(|i| s.pick(&client(i as u32)).unwrap()).collect()
    }

    #[test]
    fn parse_kind() {
        assert_eq!("wrr".parse::<SchedKind>(), Ok(SchedKind::Wrr));
        assert_eq!(
            "mh".parse::<SchedKind>(),
            Ok(SchedKind::Maglev { table_size: 65537 })
        );
        assert_eq!("lc".parse::<SchedKind>(), Err(SchedError::UnknownKind));
    }

    #[test]
    fn rr_exact_cycle() {
        let mut s = Scheduler::new(SchedKind::Rr, &backends(&[1, 5, 0, 2])).unwrap();
        assert_eq!(picks(&mut s, 7), [0, 1, 3, 0, 1, 3, 0]);
        s.remove(1).unwrap();
        assert_eq!(picks(&mut s, 4), [0, 3, 0, 3]);
        s.set_weight(2, 1).unwrap();
        assert_eq!(picks(&mut s, 3), [0, 2, 3]);
    }

    #[rstest]
    #[case(&[4, 3, 2], &[0, 0, 1, 0, 1, 2, 0, 1, 2])]
    #[case(&[1, 1, 1], &[0, 1, 2])]
    #[case(&[2, 4, 6], &[2, 1, 2, 0, 1, 2])]
    #[case(&[5, 0, 1], &[0, 0, 0, 0, 0, 2])]
    fn wrr_lvs_sequence(#[case] weights: &[u32], #[case] period: &[usize]) {
        let mut s = Scheduler::new(SchedKind::Wrr, &backends(weights)).unwrap();
        let got = picks(&mut s, period.len() * 3);
        for chunk in got.chunks(period.len()) {
            assert_eq!(chunk, period);
        }
    }

    #[test]
    fn wrr_period_proportional() {
        let weights = [7u32, 21, 14, 0, 35, 7];
        let g = 7;
        let period: u32 = weights.iter().sum::<u32>() / g;
        let mut s = Scheduler::new(SchedKind::Wrr, &backends(&weights)).unwrap();
        for _ in 0..3 {
            let mut c = [0u32; 6];
            for p in picks(&mut s, period as usize) {
                c[p] += 1;
            }
            let want: Vec<u32> = weights.iter().map(|w| w / g).collect();
            assert_eq!(c.to_vec(), want);
        }
    }

    #[test]
    fn no_weight_no_pick() {
        for kind in [
            SchedKind::Rr,
            SchedKind::Wrr,
            SchedKind::Wlc,
            SchedKind::Sh,
            SchedKind::Maglev { table_size: 13 },
        ] {
            let mut s = Scheduler::new(kind, &backends(&[0, 0])).unwrap();
            assert_eq!(s.pick(&client(1)), None, "{kind:?}");
            let mut e = Scheduler::new(kind, &[]).unwrap();
            assert_eq!(e.pick(&client(1)), None, "{kind:?}");
            s.set_weight(1, 3).unwrap();
            assert_eq!(s.pick(&client(1)), Some(1), "{kind:?}");
            s.remove(1).unwrap();
            assert_eq!(s.pick(&client(1)), None, "{kind:?}");
        }
    }

    #[test]
    fn wlc_least_loaded_by_weight() {
        let mut s = Scheduler::new(SchedKind::Wlc, &backends(&[1, 2, 4])).unwrap();
        // All empty: tie, lowest slot.
        assert_eq!(s.pick(&client(0)), Some(0));
        s.conn_opened(0, true);
        // 0 has 256/1; 1 and 2 have 0.
        assert_eq!(s.pick(&client(0)), Some(1));
        s.conn_opened(1, true);
        assert_eq!(s.pick(&client(0)), Some(2));
        s.conn_opened(2, true);
        // Overheads per weight: 256, 128, 64.
        assert_eq!(s.pick(&client(0)), Some(2));
        for _ in 0..4 {
            s.conn_opened(2, true);
        }
        // 256, 128, 320.
        assert_eq!(s.pick(&client(0)), Some(1));
        // Inactive connections weigh 1/256 of an active one.
        s.conn_deactivated(2);
        s.conn_deactivated(2);
        s.conn_deactivated(2);
        // 2: (2·256 + 3)/4 = 128.75 > 128.
        assert_eq!(s.pick(&client(0)), Some(1));
        s.conn_closed(2, false);
        s.conn_closed(2, false);
        s.conn_closed(2, false);
        // 2: 512/4 = 128 == 1's 128: tie, lowest slot.
        assert_eq!(s.pick(&client(0)), Some(1));
        assert_eq!(
            s.counts(2),
            ConnCounts {
                active: 2,
                inactive: 0
            }
        );
        s.conn_activated(0);
        assert_eq!(
            s.counts(0),
            ConnCounts {
                active: 2,
                inactive: 0
            }
        );
        // A drive of many picks spreads load by weight.
        let mut s = Scheduler::new(SchedKind::Wlc, &backends(&[1, 2, 4])).unwrap();
        for i in 0..700 {
            let p = s.pick(&client(i)).unwrap();
            s.conn_opened(p, true);
        }
        let c: Vec<u32> = (0..3).map(|i| s.counts(i).active).collect();
        assert_eq!(c, [100, 200, 400]);
    }

    #[test]
    fn sh_stable_per_client() {
        let mut s = Scheduler::new(SchedKind::Sh, &backends(&[1, 1, 2, 1])).unwrap();
        let mut count = [0usize; 4];
        for i in 0..5000 {
            let c = client(i);
            let a = s.pick(&c).unwrap();
            // Same client address, other port and destination: same server.
            let other = Tuple {
                sport: c.sport.wrapping_add(1),
                dport: 443,
                ..c
            };
            assert_eq!(s.pick(&other), Some(a));
            assert_eq!(s.pick(&c), Some(a));
            count[a] += 1;
        }
        // Weighted spread, roughly: the weight-2 server gets about 2/5.
        assert!(count[2] > 1700 && count[2] < 2300, "{count:?}");
        // Deterministic across instances.
        let mut t = Scheduler::new(SchedKind::Sh, &backends(&[1, 1, 2, 1])).unwrap();
        assert_eq!(picks(&mut s, 100), picks(&mut t, 100));
    }

    #[test]
    fn maglev_consistent_and_updatable() {
        let kind = SchedKind::Maglev { table_size: 65537 };
        let mut s = Scheduler::new(kind, &backends(&[1; 10])).unwrap();
        let before = picks(&mut s, 2000);
        assert_eq!(picks(&mut s, 2000), before);
        s.remove(3).unwrap();
        let after = picks(&mut s, 2000);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a && **b != 3)
            .count();
        assert!(after.iter().all(|&p| p != 3));
        assert!(moved < 40, "{moved} flows not on the removed server moved");
        // Re-adding the same server reuses its slot and restores the table exactly.
        assert_eq!(s.add(be(3, 1)), Ok(3));
        assert_eq!(picks(&mut s, 2000), before);
        assert_eq!(
            Scheduler::new(SchedKind::Maglev { table_size: 65536 }, &[]).unwrap_err(),
            SchedError::Maglev(MaglevError::NotPrime(65536))
        );
    }

    #[test]
    fn config_errors_and_slots() {
        let mut s = Scheduler::new(SchedKind::Rr, &backends(&[1, 1])).unwrap();
        assert_eq!(s.add(be(0, 1)), Err(SchedError::Duplicate(be(0, 1).addr)));
        assert_eq!(s.remove(5), Err(SchedError::NoSuchServer(5)));
        s.conn_opened(1, true);
        s.remove(1).unwrap();
        assert_eq!(s.remove(1), Err(SchedError::NoSuchServer(1)));
        assert_eq!(s.set_weight(1, 2), Err(SchedError::NoSuchServer(1)));
        assert!(s.backend(1).is_none());
        // Slot 1 still has a connection: a new server gets a fresh slot.
        assert_eq!(s.add(be(7, 1)), Ok(2));
        s.conn_closed(1, true);
        assert_eq!(s.add(be(8, 1)), Ok(1));
        assert_eq!(s.find(be(8, 1).addr), Some(1));
        assert_eq!(s.len(), 3);
        let dup = [be(0, 1), be(0, 2)];
        assert!(Scheduler::new(SchedKind::Wrr, &dup).is_err());
    }
}
