//! Flow enumeration: flow `i` of `N` is one exact 5-tuple, computed on demand (nothing
//! per flow is stored), and an order in which a core visits its flows.
//!
//! Flow `i` with `D` destinations, `S` source addresses and `P` source ports:
//! destination `i mod D`; then, with `k = i div D`, source address `k mod S` and source
//! port `(k div S) mod P`. So consecutive flows change destination first, then source
//! address, then source port, and `N <= D * S * P` flows are all distinct.

use std::net::{Ipv4Addr, SocketAddrV4};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::rss;
use crate::units::{Cidr, PortRange};

/// The flow space is smaller than the number of flows asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--flows {asked} is more than the {available} distinct flows that the sources, source ports and destinations allow: widen --src or --sport, or add --dst entries")]
pub struct TooManyFlows {
    /// Flows asked for.
    pub asked: u64,
    /// Distinct 5-tuples available.
    pub available: u64,
}

/// One flow's varying fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Index into the destination list.
    pub dst: usize,
}

impl Default for FlowTuple {
    /// A placeholder: 0.0.0.0, port 0, the first destination.
    fn default() -> Self {
        FlowTuple {
            src: Ipv4Addr::UNSPECIFIED,
            sport: 0,
            dst: 0,
        }
    }
}

/// The declared set of flows.
#[derive(Debug, Clone)]
pub struct FlowSpace {
    src: Cidr,
    sports: PortRange,
    dsts: Vec<SocketAddrV4>,
    flows: u64,
}

impl FlowSpace {
    /// `flows` flows over the given sources, ports and destinations.
    pub fn new(
        src: Cidr,
        sports: PortRange,
        dsts: Vec<SocketAddrV4>,
        flows: u64,
    ) -> Result<FlowSpace, TooManyFlows> {
        let available = src
            .size()
            .saturating_mul(sports.size())
            .saturating_mul(dsts.len() as u64);
        if flows == 0 || flows > available || flows > u64::from(u32::MAX) {
            return Err(TooManyFlows {
                asked: flows,
                available: available.min(u64::from(u32::MAX)),
            });
        }
        Ok(FlowSpace {
            src,
            sports,
            dsts,
            flows,
        })
    }

    /// Number of flows.
    pub fn len(&self) -> u64 {
        self.flows
    }

    /// Always false: a flow space holds at least one flow.
    pub fn is_empty(&self) -> bool {
        self.flows == 0
    }

    /// The destinations.
    pub fn dsts(&self) -> &[SocketAddrV4] {
        &self.dsts
    }

    /// The source prefix.
    pub fn src(&self) -> Cidr {
        self.src
    }

    /// The source port range.
    pub fn sports(&self) -> PortRange {
        self.sports
    }

    /// Flow `i` (taken modulo the number of flows).
    ///
    /// The source count is a power of two (a prefix), so only the destination digit needs
    /// a division, and none with one destination; and with `i` below the flow count the
    /// port digit is in range without a modulo (`N <= D * S * P`).
    #[inline]
    pub fn tuple(&self, i: u64) -> FlowTuple {
        let i = if i < self.flows { i } else { i % self.flows };
        self.tuple_of(self.digits(i))
    }

    /// Flow index `i` (any value, the top digit is not reduced) written in the flow
    /// space's mixed radix.
    #[inline]
    fn digits(&self, i: u64) -> Digits {
        let d = self.dsts.len() as u64;
        let (k, dst) = if d == 1 { (i, 0) } else { (i / d, i % d) };
        let bits = 32 - u32::from(self.src.len);
        Digits {
            dst,
            src: k & (self.src.size() - 1),
            port: k >> bits,
        }
    }

    /// The flow whose index has these digits (`port` digit below the port count).
    #[inline]
    fn tuple_of(&self, d: Digits) -> FlowTuple {
        FlowTuple {
            src: Ipv4Addr::from(u32::from(self.src.base).wrapping_add(d.src as u32)),
            sport: self.sports.lo.wrapping_add(d.port as u16),
            dst: d.dst as usize,
        }
    }

    /// The radices of the two low digits.
    fn radix(&self) -> Radix {
        Radix {
            dst: self.dsts.len() as u64,
            src: self.src.size(),
        }
    }

    /// The flows core `core` of `cores` sends: every `cores`-th flow from `core`.
    pub fn split(&self, core: u16, cores: u16) -> FlowSet {
        let cores = u64::from(cores.max(1));
        let core = u64::from(core) % cores;
        let count = self.flows / cores + u64::from(core < self.flows % cores);
        FlowSet::Stride {
            first: core,
            step: cores,
            count,
        }
    }

    /// The flows whose Toeplitz hash (default key, RETA of `reta_size` entries) lands on
    /// each of `queues` queues: software RSS placement.
    pub fn split_by_rss(&self, queues: u16, reta_size: u32) -> Vec<FlowSet> {
        let mut lists = vec![Vec::new(); usize::from(queues.max(1))];
        for i in 0..self.flows {
            let t = self.tuple(i);
            let dst = self.dsts[t.dst];
            let h = rss::hash_v4_tuple(
                &rss::DEFAULT_KEY,
                t.src.octets(),
                dst.ip().octets(),
                t.sport,
                dst.port(),
            );
            // The flow count is at most u32::MAX (checked in `new`).
            lists[usize::from(rss::queue_for(h, reta_size, queues))].push(i as u32);
        }
        lists.into_iter().map(FlowSet::List).collect()
    }
}

/// The flows one core sends, by global flow index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowSet {
    /// `first, first + step, ...` (`count` of them).
    Stride {
        /// First flow.
        first: u64,
        /// Distance between flows.
        step: u64,
        /// How many.
        count: u64,
    },
    /// An explicit list (software RSS placement).
    List(Vec<u32>),
}

impl FlowSet {
    /// Flows in the set.
    pub fn len(&self) -> u64 {
        match self {
            FlowSet::Stride { count, .. } => *count,
            FlowSet::List(l) => l.len() as u64,
        }
    }

    /// True when the core has no flows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The global index of the `j`-th flow of the set (`j < len`).
    #[inline]
    pub fn global(&self, j: u64) -> u64 {
        match self {
            FlowSet::Stride { first, step, .. } => first + j * step,
            FlowSet::List(l) => l.get(j as usize).map_or(0, |&v| u64::from(v)),
        }
    }
}

/// In which order a core visits its flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowOrder {
    /// 0, 1, 2, ... and around again.
    Sequential,
    /// A seeded pseudo-random permutation (`j -> (a*j + b) mod n`, `a` coprime to `n`),
    /// so every flow is still visited once per cycle.
    Random {
        /// The seed.
        seed: u64,
    },
}

/// Walks a set of `n` flows in a [`FlowOrder`], cycle after cycle. No allocation.
///
/// Position `k` is `(a*k + b) mod n`, kept as a running value that moves by `a` and
/// wraps with one subtraction (`a < n`), so no division per step.
#[derive(Debug, Clone)]
pub struct FlowCursor {
    n: u64,
    pos: u64,
    a: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl FlowCursor {
    /// A cursor over `n` flows (`n` >= 1 is assumed; 0 behaves as 1).
    pub fn new(n: u64, order: FlowOrder) -> FlowCursor {
        let n = n.max(1);
        let (a, b) = match order {
            FlowOrder::Sequential => (1, 0),
            FlowOrder::Random { seed } => {
                let mut rng = SmallRng::seed_from_u64(seed);
                let b = rng.gen_range(0..n);
                let mut a = if n > 2 { rng.gen_range(2..n) } else { 1 };
                while gcd(a, n) != 1 {
                    a += 1;
                    if a >= n {
                        a = 1;
                    }
                }
                (a, b)
            }
        };
        FlowCursor { n, pos: b, a }
    }

    /// The next flow's index within the set.
    #[inline]
    pub fn next_index(&mut self) -> u64 {
        let j = self.pos;
        self.advance();
        j
    }

    /// Moves on by one; true when the position wrapped past the end of the set.
    #[inline]
    fn advance(&mut self) -> bool {
        // a <= n and pos < n, so one subtraction brings the sum back below n (no overflow:
        // both are at most u32::MAX flows).
        self.pos += self.a;
        let wrapped = self.pos >= self.n;
        if wrapped {
            self.pos -= self.n;
        }
        wrapped
    }
}

/// The radices of a flow index's two low digits: destinations, then source addresses.
/// The source-port digit on top is not bounded here (it stays in range on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Radix {
    dst: u64,
    src: u64,
}

/// A flow index in the flow space's mixed radix (see the module documentation). Adding
/// or subtracting another such number costs a compare and a subtraction per digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digits {
    dst: u64,
    src: u64,
    port: u64,
}

impl Digits {
    /// `self += x`. Both low digits of each side are below their radix.
    #[inline]
    fn add(&mut self, x: Digits, r: Radix) {
        self.dst += x.dst;
        let carry = u64::from(self.dst >= r.dst);
        self.dst -= carry * r.dst;
        self.src += x.src + carry;
        let carry = u64::from(self.src >= r.src);
        self.src -= carry * r.src;
        self.port += x.port + carry;
    }

    /// `self -= x`, for `x <= self`.
    #[inline]
    fn sub(&mut self, x: Digits, r: Radix) {
        let borrow = u64::from(self.dst < x.dst);
        self.dst = self.dst + borrow * r.dst - x.dst;
        let take = x.src + borrow;
        let borrow = u64::from(self.src < take);
        self.src = self.src + borrow * r.src - take;
        self.port -= x.port + borrow;
    }
}

/// The tuples of one core's [`FlowSet`] in a [`FlowOrder`], one per call, cycle after
/// cycle: what the generating loop asks for per flow visit. No allocation and, for the
/// strided sets of the default split, no division per flow: the position in the set moves
/// by a constant, so the flow index does too (modulo the set), and that constant is added
/// digit by digit in the flow space's mixed radix. Explicit lists (software RSS placement)
/// look each index up and take [`FlowSpace::tuple`].
#[derive(Debug, Clone)]
pub struct FlowWalker {
    space: FlowSpace,
    /// Flows in the set.
    flows: u64,
    cursor: FlowCursor,
    radix: Radix,
    walk: Walk,
}

#[derive(Debug, Clone)]
enum Walk {
    /// `FlowSet::Stride`: `cur` is the flow index at the cursor's position; each step
    /// adds `step * a` and, when the cursor wraps, takes away `step * n`.
    Stride {
        cur: Digits,
        delta: Digits,
        wrap: Digits,
    },
    /// `FlowSet::List`.
    List(Vec<u32>),
}

impl FlowWalker {
    /// A walker over `set` (flows of `space`) in `order`.
    pub fn new(space: &FlowSpace, set: FlowSet, order: FlowOrder) -> FlowWalker {
        let flows = set.len();
        let cursor = FlowCursor::new(flows, order);
        let walk = match set {
            FlowSet::Stride { first, step, .. } => Walk::Stride {
                cur: space.digits(first + step * cursor.pos),
                delta: space.digits(step * cursor.a),
                wrap: space.digits(step * cursor.n),
            },
            FlowSet::List(list) => Walk::List(list),
        };
        FlowWalker {
            space: space.clone(),
            flows,
            cursor,
            radix: space.radix(),
            walk,
        }
    }

    /// Flows in the set walked.
    pub fn len(&self) -> u64 {
        self.flows
    }

    /// True when the set is empty (the walk then yields a placeholder flow).
    pub fn is_empty(&self) -> bool {
        self.flows == 0
    }

    /// The next flow's tuple.
    #[inline(always)]
    pub fn next_tuple(&mut self) -> FlowTuple {
        // The strided walk is a handful of instructions: always inline it into the
        // caller's loop; the list walk stays a call.
        match &mut self.walk {
            Walk::Stride { cur, delta, wrap } => {
                let t = self.space.tuple_of(*cur);
                cur.add(*delta, self.radix);
                if self.cursor.advance() {
                    cur.sub(*wrap, self.radix);
                }
                t
            }
            Walk::List(_) => self.next_listed(),
        }
    }

    #[inline(never)]
    fn next_listed(&mut self) -> FlowTuple {
        let j = self.cursor.next_index();
        let i = match &self.walk {
            Walk::List(list) => list.get(j as usize).map_or(0, |&v| u64::from(v)),
            Walk::Stride { .. } => 0,
        };
        self.space.tuple(i)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn space(flows: u64) -> FlowSpace {
        FlowSpace::new(
            "10.0.0.0/30".parse().unwrap(),
            "1000-1009".parse().unwrap(),
            vec![
                "192.168.0.1:80".parse().unwrap(),
                "192.168.0.2:80".parse().unwrap(),
            ],
            flows,
        )
        .unwrap()
    }

    #[test]
    fn tuples_are_distinct_and_as_declared() {
        let s = space(80);
        let all: HashSet<FlowTuple> = (0..80).map(|i| s.tuple(i)).collect();
        assert_eq!(all.len(), 80);
        assert_eq!(
            s.tuple(0),
            FlowTuple {
                src: Ipv4Addr::new(10, 0, 0, 0),
                sport: 1000,
                dst: 0
            }
        );
        assert_eq!(s.tuple(1).dst, 1);
        assert_eq!(s.tuple(2).src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(s.tuple(8).sport, 1001);
        assert_eq!(s.tuple(80), s.tuple(0));
        let err = FlowSpace::new(
            "10.0.0.0/30".parse().unwrap(),
            "1-2".parse().unwrap(),
            s.dsts().to_vec(),
            17,
        )
        .unwrap_err();
        assert_eq!(err.available, 16);
        assert!(err.to_string().contains("--flows 17"));
    }

    #[test]
    fn split_covers_every_flow_once() {
        let s = space(79);
        let mut seen = HashSet::new();
        for core in 0..3 {
            let set = s.split(core, 3);
            for j in 0..set.len() {
                assert!(seen.insert(set.global(j)));
            }
        }
        assert_eq!(seen.len(), 79);
        assert!(seen.iter().all(|&i| i < 79));
        let rss = s.split_by_rss(4, 128);
        assert_eq!(rss.iter().map(FlowSet::len).sum::<u64>(), 79);
        assert!(
            rss.iter().filter(|l| !l.is_empty()).count() > 1,
            "RSS spreads flows"
        );
    }

    #[test]
    fn cursors_visit_every_flow_once_per_cycle() {
        for order in [FlowOrder::Sequential, FlowOrder::Random { seed: 7 }] {
            for n in [1u64, 2, 3, 10, 1000, 1024] {
                let mut c = FlowCursor::new(n, order);
                let cycle: Vec<u64> = (0..n).map(|_| c.next_index()).collect();
                let set: HashSet<u64> = cycle.iter().copied().collect();
                assert_eq!(set.len() as u64, n, "{order:?} n={n}");
                assert!(cycle.iter().all(|&j| j < n));
                let again: Vec<u64> = (0..n).map(|_| c.next_index()).collect();
                assert_eq!(cycle, again, "the order repeats each cycle");
            }
        }
        let mut r = FlowCursor::new(1000, FlowOrder::Random { seed: 7 });
        let first: Vec<u64> = (0..5).map(|_| r.next_index()).collect();
        assert_ne!(first, vec![0, 1, 2, 3, 4], "random order is not sequential");
        let mut r2 = FlowCursor::new(1000, FlowOrder::Random { seed: 7 });
        assert_eq!(
            first,
            (0..5).map(|_| r2.next_index()).collect::<Vec<_>>(),
            "seeded"
        );
    }

    #[test]
    fn walkers_match_the_indexed_definition() {
        // Odd radices (3 destinations, /29 sources, 5 ports), a flow count that is not a
        // multiple of anything, several core splits, both orders, and a list set.
        let dsts: Vec<SocketAddrV4> = (1..=3)
            .map(|d| SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, d), 80))
            .collect();
        for flows in [1u64, 2, 7, 97, 120] {
            let space = FlowSpace::new(
                "10.0.0.0/29".parse().unwrap(),
                "1000-1004".parse().unwrap(),
                dsts.clone(),
                flows,
            )
            .unwrap();
            for order in [FlowOrder::Sequential, FlowOrder::Random { seed: 11 }] {
                let mut sets: Vec<FlowSet> = Vec::new();
                for cores in [1u16, 2, 3, 4] {
                    sets.extend((0..cores).map(|c| space.split(c, cores)));
                }
                sets.extend(space.split_by_rss(3, 128));
                for set in sets.into_iter().filter(|s| !s.is_empty()) {
                    let mut cursor = FlowCursor::new(set.len(), order);
                    let mut walker = FlowWalker::new(&space, set.clone(), order);
                    for n in 0..3 * set.len().max(1) {
                        let i = set.global(cursor.next_index());
                        let want = space.tuple(i);
                        // The definition in the module documentation, with divisions.
                        let (d, k) = (i % 3, i / 3);
                        let spelled = FlowTuple {
                            src: Ipv4Addr::new(10, 0, 0, (k % 8) as u8),
                            sport: 1000 + (k / 8 % 5) as u16,
                            dst: d as usize,
                        };
                        assert_eq!(want, spelled);
                        assert_eq!(walker.next_tuple(), want, "{flows} {order:?} {set:?} {n}");
                    }
                }
            }
        }
    }
}
