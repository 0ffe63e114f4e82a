//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), with weights.
//!
//! Table size M is prime. Backend i has `offset = h1(name) mod M` and
//! `skip = h2(name) mod (M − 1) + 1`; its j-th preferred slot is `(offset + j·skip) mod M`,
//! a permutation of the table because M is prime. Backends take turns claiming their next
//! preferred empty slot until all M slots are full. Weighted: in round r backend i may own
//! up to `⌊r · wᵢ / w_max⌋` slots, so turns come in proportion to weight (a backend of
//! maximum weight claims one slot per round, as in the unweighted algorithm).
//!
//! The table depends only on the set of (name, weight) pairs, not on the order the caller
//! lists them: backends take turns in the order of their names' bytes.
//!
//! A populated table is an immutable snapshot behind an [`Arc`]: the runtime builds it once
//! (on worker 0) and hands the same snapshot to every other worker, which adopts it when
//! its own inputs are identical ([`Maglev::new_or_adopt`]) instead of building and holding
//! a copy. A worker that replaces or drops a snapshot gives it back to the master
//! ([`Maglev`] values in the change reply), so the memory is freed by the master only
//! after every worker has moved past it.

use std::sync::Arc;

use thiserror::Error;

use super::hash::{hash_bytes, reduce, SEED_OFFSET, SEED_SKIP};

/// The table size the paper recommends and the default here.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;

/// Marks an empty slot while populating, and the whole table when no backend has weight.
const EMPTY: u32 = u32::MAX;

/// A Maglev configuration error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MaglevError {
    /// The table size is not prime.
    #[error("Maglev table size {0} is not prime; use a prime such as 65537 or 655373")]
    NotPrime(u32),
    /// Fewer slots than weighted backends: some could never be chosen.
    #[error("Maglev table size {size} is smaller than the {backends} weighted backends; use a larger prime")]
    TooSmall {
        /// The table size.
        size: u32,
        /// The number of backends with non-zero weight.
        backends: usize,
    },
}

/// One backend as Maglev sees it: a stable name and a weight (0 = not in the table).
#[derive(Debug, Clone, Copy)]
pub struct MaglevBackend<'a> {
    /// Stable identity bytes (the real server's canonical address and port).
    pub name: &'a [u8],
    /// Weight; 0 leaves the backend out.
    pub weight: u32,
    /// The caller's index, stored in the table.
    pub index: u32,
}

/// A populated Maglev lookup table: a shared, immutable snapshot (cloning shares it).
#[derive(Clone, PartialEq, Eq)]
pub struct Maglev {
    snapshot: Arc<Snapshot>,
}

/// A weighted backend as a table remembers it: (name, weight, index).
type Input = (Box<[u8]>, u32, u32);

#[derive(PartialEq, Eq)]
struct Snapshot {
    /// What the table was built from: (name, weight, index) of the weighted backends in
    /// turn order. Two tables with equal inputs and size are equal.
    inputs: Box<[Input]>,
    /// Caller's backend index per slot, or all [`EMPTY`] when no backend has weight.
    table: Box<[u32]>,
    has_backends: bool,
}

/// The weighted backends in turn order (by name, then index for equal names).
fn live_inputs<'a, 'b>(
    size: u32,
    backends: &'b [MaglevBackend<'a>],
) -> Result<Vec<&'b MaglevBackend<'a>>, MaglevError> {
    if !is_prime(size) {
        return Err(MaglevError::NotPrime(size));
    }
    let mut live: Vec<&MaglevBackend<'_>> = backends.iter().filter(|b| b.weight > 0).collect();
    if live.len() > size as usize {
        return Err(MaglevError::TooSmall {
            size,
            backends: live.len(),
        });
    }
    live.sort_by(|a, b| a.name.cmp(b.name).then(a.index.cmp(&b.index)));
    Ok(live)
}

impl Maglev {
    /// Build the table of `size` slots (`size` prime) for `backends`.
    pub fn new(size: u32, backends: &[MaglevBackend<'_>]) -> Result<Maglev, MaglevError> {
        let live = live_inputs(size, backends)?;
        Ok(Self::build(size, &live))
    }

    /// The table for `backends`: a clone of the first `offered` snapshot built from the
    /// same size and inputs (no work, no memory), else a new one.
    pub fn new_or_adopt(
        size: u32,
        backends: &[MaglevBackend<'_>],
        offered: &[Maglev],
    ) -> Result<Maglev, MaglevError> {
        let live = live_inputs(size, backends)?;
        let same = |m: &&Maglev| {
            let s = &m.snapshot;
            s.table.len() == size as usize
                && s.inputs.len() == live.len()
                && s.inputs
                    .iter()
                    .zip(&live)
                    .all(|((n, w, i), b)| **n == *b.name && *w == b.weight && *i == b.index)
        };
        match offered.iter().find(same) {
            Some(m) => Ok(m.clone()),
            None => Ok(Self::build(size, &live)),
        }
    }

    /// Whether two tables are the same snapshot in memory (not merely equal).
    pub fn shares_with(&self, other: &Maglev) -> bool {
        Arc::ptr_eq(&self.snapshot, &other.snapshot)
    }

    /// How many holders the snapshot has (workers, the master while it hands it out).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.snapshot)
    }

    fn build(size: u32, live: &[&MaglevBackend<'_>]) -> Maglev {
        let m = u64::from(size);
        let inputs = live
            .iter()
            .map(|b| (Box::<[u8]>::from(b.name), b.weight, b.index))
            .collect();
        let mut table = vec![EMPTY; size as usize].into_boxed_slice();
        if live.is_empty() {
            return Maglev {
                snapshot: Arc::new(Snapshot {
                    inputs,
                    table,
                    has_backends: false,
                }),
            };
        }
        // Per backend: next preferred slot, skip, slots owned.
        let mut pos: Vec<u64> = Vec::with_capacity(live.len());
        let mut skip: Vec<u64> = Vec::with_capacity(live.len());
        for b in live {
            pos.push(hash_bytes(SEED_OFFSET, b.name) % m);
            skip.push(hash_bytes(SEED_SKIP, b.name) % (m - 1) + 1);
        }
        let mut owned = vec![0u64; live.len()];
        let w_max = live.iter().map(|b| u64::from(b.weight)).max().unwrap_or(1);
        let mut filled = 0u64;
        let mut round = 0u64;
        'fill: loop {
            round += 1;
            for (i, b) in live.iter().enumerate() {
                let quota = round * u64::from(b.weight) / w_max;
                while owned[i] < quota {
                    // Claim the next preferred empty slot. The preference list is a
                    // permutation of 0..M and the table has an empty slot, so this ends.
                    loop {
                        let c = pos[i] as usize;
                        pos[i] = (pos[i] + skip[i]) % m;
                        if table[c] == EMPTY {
                            table[c] = b.index;
                            break;
                        }
                    }
                    owned[i] += 1;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Maglev {
            snapshot: Arc::new(Snapshot {
                inputs,
                table,
                has_backends: true,
            }),
        }
    }

    /// The table size M.
    pub fn size(&self) -> usize {
        self.snapshot.table.len()
    }

    /// The backend index for a flow hash, `None` when no backend has weight.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let s = &*self.snapshot;
        if !s.has_backends {
            return None;
        }
        // `reduce` returns a value below the table length.
        Some(s.table[reduce(hash, s.table.len())] as usize)
    }

    /// The owner of every slot (empty when no backend has weight).
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        let s = &*self.snapshot;
        s.table
            .iter()
            .filter(|_| s.has_backends)
            .map(|&i| i as usize)
    }
}

impl std::fmt::Debug for Maglev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maglev")
            .field("size", &self.snapshot.table.len())
            .field("has_backends", &self.snapshot.has_backends)
            .field("holders", &Arc::strong_count(&self.snapshot))
            .finish_non_exhaustive()
    }
}

/// Deterministic primality by trial division (configuration time only).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n & 1 == 0 {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:80", i / 256, i % 256).into_bytes())
            .collect()
    }

    fn backends<'a>(names: &'a [Vec<u8>], weights: &[u32]) -> Vec<MaglevBackend<'a>> {
        names
            .iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (n, &w))| MaglevBackend {
                name: n,
                weight: w,
                index: i as u32,
            })
            .collect()
    }

    fn counts(m: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for s in m.slots() {
            c[s] += 1;
        }
        c
    }

    #[test]
    fn primes() {
        assert!(is_prime(2) && is_prime(3) && is_prime(65537) && is_prime(655_373));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65536) && !is_prime(65535));
        assert_eq!(
            Maglev::new(65536, &[]).unwrap_err(),
            MaglevError::NotPrime(65536)
        );
        let n = names(10);
        let b = backends(&n, &[1; 10]);
        assert_eq!(
            Maglev::new(7, &b).unwrap_err(),
            MaglevError::TooSmall {
                size: 7,
                backends: 10
            }
        );
    }

    #[test]
    fn unweighted_shares_are_floor_or_ceil() {
        for (m, n) in [
            (65537u32, 1usize),
            (65537, 3),
            (65537, 100),
            (251, 7),
            (11, 11),
        ] {
            let nm = names(n);
            let t = Maglev::new(m, &backends(&nm, &vec![1; n])).unwrap();
            let lo = m as usize / n;
            let hi = (m as usize).div_ceil(n);
            for (i, c) in counts(&t, n).into_iter().enumerate() {
                assert!(c == lo || c == hi, "M={m} N={n}: backend {i} has {c} slots");
            }
        }
    }

    #[test]
    fn weighted_shares_follow_weights() {
        // Tolerance: each share within 0.1% of M of its exact weighted share.
        let weights = [1u32, 2, 3, 4, 10, 7, 5, 100];
        let nm = names(weights.len());
        let t = Maglev::new(DEFAULT_TABLE_SIZE, &backends(&nm, &weights)).unwrap();
        let total: u32 = weights.iter().sum();
        let m = f64::from(DEFAULT_TABLE_SIZE);
        for (i, c) in counts(&t, weights.len()).into_iter().enumerate() {
            let want = m * f64::from(weights[i]) / f64::from(total);
            assert!(
                (c as f64 - want).abs() <= m * 0.001,
                "backend {i}: {c} slots, want {want:.0}"
            );
        }
    }

    #[test]
    fn zero_weight_left_out() {
        let nm = names(3);
        let t = Maglev::new(101, &backends(&nm, &[1, 0, 1])).unwrap();
        assert_eq!(counts(&t, 3)[1], 0);
        let none = Maglev::new(101, &backends(&nm, &[0, 0, 0])).unwrap();
        assert_eq!(none.lookup(12345), None);
        assert_eq!(none.slots().count(), 0);
    }

    #[test]
    fn deterministic_and_order_independent() {
        let nm = names(20);
        let w: Vec<u32> = (1..=20).collect();
        let a = Maglev::new(65537, &backends(&nm, &w)).unwrap();
        let b = Maglev::new(65537, &backends(&nm, &w)).unwrap();
        assert!(a == b);
        let mut rev = backends(&nm, &w);
        rev.reverse();
        let c = Maglev::new(65537, &rev).unwrap();
        assert!(a == c);
    }

    #[test]
    fn removal_moves_few_survivor_slots() {
        let n = 100;
        let nm = names(n);
        let all = backends(&nm, &vec![1; n]);
        let before = Maglev::new(DEFAULT_TABLE_SIZE, &all).unwrap();
        for removed in [0usize, 37, 99] {
            let rest: Vec<MaglevBackend<'_>> = all
                .iter()
                .copied()
                .filter(|b| b.index as usize != removed)
                .collect();
            let after = Maglev::new(DEFAULT_TABLE_SIZE, &rest).unwrap();
            let mut survivors = 0usize;
            let mut changed = 0usize;
            for (b, a) in before.slots().zip(after.slots()) {
                if b != removed {
                    survivors += 1;
                    if a != b {
                        changed += 1;
                    }
                }
            }
            let frac = changed as f64 / survivors as f64;
            assert!(
                frac < 0.01,
                "removing {removed}: {changed}/{survivors} = {frac:.4} survivor slots moved"
            );
        }
    }

    #[test]
    fn equal_inputs_adopt_the_offered_snapshot() {
        let n = names(5);
        let built = Maglev::new(65537, &backends(&n, &[1, 2, 3, 1, 1])).expect("build");
        assert_eq!(built.holders(), 1);
        // Same set in another order: the same table, so the snapshot is adopted.
        let mut again = backends(&n, &[1, 2, 3, 1, 1]);
        again.reverse();
        let adopted =
            Maglev::new_or_adopt(65537, &again, std::slice::from_ref(&built)).expect("adopt");
        assert!(adopted.shares_with(&built), "no second copy");
        assert_eq!(built.holders(), 2);
        // A different weight, size or index builds its own, equal to a fresh build.
        for (size, weights) in [(65537, [1, 2, 3, 1, 2]), (251, [1, 2, 3, 1, 1])] {
            let other = backends(&n, &weights);
            let own =
                Maglev::new_or_adopt(size, &other, std::slice::from_ref(&built)).expect("build");
            assert!(!own.shares_with(&built));
            assert!(own == Maglev::new(size, &other).expect("fresh"));
        }
        drop(adopted);
        assert_eq!(built.holders(), 1, "a dropped holder releases its share");
    }
}
