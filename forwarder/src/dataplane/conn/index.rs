//! A fixed-size hash index from tuples to slab references.
//!
//! Open addressing over cache-line buckets of eight slots. Each slot holds a 16-bit tag
//! (high bits of the hash) and a 32-bit reference (`slab index << 1 | direction`); the
//! tuple itself lives in the slab, so a tag match is confirmed by comparing the stored tuple.
//! A key that finds its home bucket full moves on to the next bucket (linear probing);
//! every bucket it passes counts one more *overflow*, so a lookup stops at the first
//! bucket whose overflow count is zero and removal needs no tombstones (the F14 scheme).
//!
//! The bucket count is a power of two fixed at construction with room for four slots per
//! connection (two keys each, so at most half the slots are used): nothing grows, nothing
//! allocates after `new`.
//!
//! The hash is a seeded multiply–fold over the packed tuple. It is **not** the NIC's RSS
//! (Toeplitz) hash and must not be used to choose a queue; it only spreads this table.

use std::net::IpAddr;

use crate::dataplane::types::Tuple;

/// Slots per bucket.
const SLOTS: usize = 8;
/// Reference value of an empty slot.
pub(super) const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Bucket {
    tags: [u16; SLOTS],
    refs: [u32; SLOTS],
    /// How many keys whose probe sequence passed through this bucket live further on.
    overflow: u32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        tags: [0; SLOTS],
        refs: [EMPTY; SLOTS],
        overflow: 0,
    };
}

/// The hash of a tuple and the two values taken from it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hashed {
    /// Home bucket (the bucket count is at most 2^29: see [`super::MAX_CAPACITY`]).
    bucket: u32,
    tag: u16,
}

/// The index proper. References are opaque `u32`s other than [`EMPTY`].
#[derive(Debug)]
pub(super) struct Index {
    buckets: Vec<Bucket>,
    mask: usize,
    seed: u64,
}

impl Index {
    /// An index able to hold `2 * capacity` keys at a load of at most one half.
    pub(super) fn new(capacity: u32, seed: u64) -> Index {
        let slots_wanted = (capacity as usize).saturating_mul(4).max(SLOTS);
        let buckets = (slots_wanted / SLOTS).next_power_of_two();
        Index {
            buckets: vec![Bucket::EMPTY; buckets],
            mask: buckets - 1,
            seed,
        }
    }

    /// Number of buckets (a power of two).
    pub(super) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Hashes a tuple for this index.
    #[inline]
    pub(super) fn hash(&self, t: &Tuple) -> Hashed {
        let h = hash_tuple(t, self.seed);
        Hashed {
            bucket: (h as usize & self.mask) as u32,
            tag: (h >> 48) as u16,
        }
    }

    /// Finds the reference whose key is the one hashed into `h`; `is_key(r)` must say
    /// whether the tuple that `r` was inserted under is that key (compared in place, no
    /// copy).
    #[inline]
    pub(super) fn find(&self, h: Hashed, is_key: impl Fn(u32) -> bool) -> Option<u32> {
        let mut b = h.bucket as usize;
        for _ in 0..self.buckets.len() {
            let bucket = self.buckets.get(b)?;
            // A constant trip count over the two arrays: unrolled, no bounds checks.
            for i in 0..SLOTS {
                if bucket.tags[i] == h.tag {
                    let r = bucket.refs[i];
                    if r != EMPTY && is_key(r) {
                        return Some(r);
                    }
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
        None
    }

    /// Adds `r` under hash `h`. Returns `false` only if every slot is taken, which the
    /// sizing in [`Index::new`] rules out while the slab is within its capacity.
    pub(super) fn insert(&mut self, h: Hashed, r: u32) -> bool {
        let mut b = h.bucket as usize;
        for probes in 0..self.buckets.len() {
            let bucket = &mut self.buckets[b];
            if let Some(i) = bucket.refs.iter().position(|&x| x == EMPTY) {
                bucket.refs[i] = r;
                bucket.tags[i] = h.tag;
                // Count the overflow on every full bucket passed on the way here.
                let mut p = h.bucket as usize;
                for _ in 0..probes {
                    self.buckets[p].overflow += 1;
                    p = (p + 1) & self.mask;
                }
                return true;
            }
            b = (b + 1) & self.mask;
        }
        false
    }

    /// Adds `r` under hash `h` unless a key for which `is_key` holds is already there, in
    /// one walk: the slots that [`find`](Self::find) would compare are compared, and the
    /// first empty slot met on the way is taken. Returns `Err(true)` if the key is
    /// present, `Err(false)` if every slot is taken; on error nothing changes.
    #[inline]
    pub(super) fn insert_unique(
        &mut self,
        h: Hashed,
        r: u32,
        is_key: impl Fn(u32) -> bool,
    ) -> Result<(), bool> {
        let mut b = h.bucket as usize;
        // The first empty slot met: (buckets passed before it, bucket, slot).
        let mut vacancy = None;
        let mut probes = 0;
        while probes < self.buckets.len() {
            let Some(bucket) = self.buckets.get(b) else {
                return Err(false);
            };
            // As in `find`: a constant trip count, unrolled.
            for i in 0..SLOTS {
                if bucket.tags[i] == h.tag {
                    let x = bucket.refs[i];
                    if x != EMPTY && is_key(x) {
                        return Err(true);
                    }
                }
            }
            if vacancy.is_none() {
                if let Some(i) = bucket.refs.iter().position(|&x| x == EMPTY) {
                    vacancy = Some((probes, b, i));
                }
            }
            if bucket.overflow == 0 {
                break;
            }
            b = (b + 1) & self.mask;
            probes += 1;
        }
        let Some((probes, b, i)) = vacancy else {
            // Every bucket of the chain is full (rare): the key is absent, probe on.
            return if self.insert(h, r) {
                Ok(())
            } else {
                Err(false)
            };
        };
        let bucket = &mut self.buckets[b];
        bucket.refs[i] = r;
        bucket.tags[i] = h.tag;
        let mut p = h.bucket as usize;
        for _ in 0..probes {
            self.buckets[p].overflow += 1;
            p = (p + 1) & self.mask;
        }
        Ok(())
    }

    /// Removes reference `r`, inserted under hash `h`. Returns whether it was present.
    pub(super) fn remove(&mut self, h: Hashed, r: u32) -> bool {
        let mut b = h.bucket as usize;
        for probes in 0..self.buckets.len() {
            let bucket = &mut self.buckets[b];
            if let Some(i) = bucket.refs.iter().position(|&x| x == r) {
                bucket.refs[i] = EMPTY;
                bucket.tags[i] = 0;
                let mut p = h.bucket as usize;
                for _ in 0..probes {
                    let o = &mut self.buckets[p].overflow;
                    *o = o.saturating_sub(1);
                    p = (p + 1) & self.mask;
                }
                return true;
            }
            if bucket.overflow == 0 {
                return false;
            }
            b = (b + 1) & self.mask;
        }
        false
    }
}

/// 64×64→128 multiply folded to 64 bits: a fast, well-mixing step (as in wyhash/foldhash).
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;

/// Seeded hash of a tuple: the table hash, not the RSS hash.
#[inline]
pub(super) fn hash_tuple(t: &Tuple, seed: u64) -> u64 {
    let ports = (t.sport as u64) << 16 | t.dport as u64 | (t.proto.number() as u64) << 32;
    // Matched by reference: the addresses are read in place, not copied out first.
    match (&t.src, &t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let addrs = (u32::from(*s) as u64) << 32 | u32::from(*d) as u64;
            fold_mul(fold_mul(addrs ^ seed ^ K0, ports ^ K1), K2)
        }
        (s, d) => {
            let s = ip_bits(*s);
            let d = ip_bits(*d);
            let h = fold_mul((s as u64) ^ seed ^ K0, ((s >> 64) as u64) ^ K1);
            let h = fold_mul(h ^ d as u64, ((d >> 64) as u64) ^ K2);
            fold_mul(h ^ ports ^ (1 << 40), K0)
        }
    }
}

fn ip_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::dataplane::types::Proto;

    fn t(src: IpAddr, sport: u16) -> Tuple {
        Tuple {
            proto: Proto::Tcp,
            src,
            sport,
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dport: 80,
        }
    }

    #[test]
    fn hash_depends_on_seed_family_and_every_field() {
        let a = t(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1000);
        let h = hash_tuple(&a, 1);
        assert_ne!(h, hash_tuple(&a, 2));
        assert_ne!(h, hash_tuple(&a.reversed(), 1));
        assert_ne!(h, hash_tuple(&t(a.src, 1001), 1));
        let mut udp = a;
        udp.proto = Proto::Udp;
        assert_ne!(h, hash_tuple(&udp, 1));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_ne!(h, hash_tuple(&t(mapped, 1000), 1));
        let v6 = t(IpAddr::V6(Ipv6Addr::LOCALHOST), 1000);
        assert_ne!(
            hash_tuple(&v6, 1),
            hash_tuple(&t(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 1000), 1)
        );
    }

    #[test]
    fn insert_unique_refuses_present_keys_and_fills_holes_in_chains() {
        let mut idx = Index::new(8, 0);
        let h = Hashed { bucket: 3, tag: 9 };
        // Keys are their references: present when equal.
        for r in 0..20 {
            assert_eq!(idx.insert_unique(h, r, |x| x == r), Ok(()));
            assert_eq!(idx.insert_unique(h, r + 100, |x| x == r), Err(true));
        }
        // A hole in the home bucket is reused; a key further down the chain is still seen.
        assert!(idx.remove(h, 2));
        assert_eq!(idx.insert_unique(h, 50, |x| x == 17), Err(true));
        assert_eq!(idx.insert_unique(h, 50, |x| x == 50), Ok(()));
        assert_eq!(idx.buckets[3].refs[2], 50);
        for r in (0..20).filter(|&r| r != 2).chain([50]) {
            assert_eq!(idx.find(h, |x| x == r), Some(r));
            assert!(idx.remove(h, r));
        }
        assert!(idx
            .buckets
            .iter()
            .all(|b| b.overflow == 0 && b.refs == [EMPTY; SLOTS]));
        // A full index refuses.
        let mut one = Index::new(1, 0);
        let h = Hashed { bucket: 0, tag: 9 };
        for r in 0..SLOTS as u32 {
            assert_eq!(one.insert_unique(h, r, |_| false), Ok(()));
        }
        assert_eq!(one.insert_unique(h, 99, |_| false), Err(false));
    }

    #[test]
    fn sized_for_half_load() {
        assert_eq!(Index::new(1, 0).bucket_count(), 1);
        assert_eq!(Index::new(1000, 0).bucket_count(), 512);
        assert_eq!(Index::new(1 << 21, 0).bucket_count(), 1 << 20);
    }

    #[test]
    fn overflow_chains_survive_removal() {
        // One bucket's worth of keys forced into the same home bucket of a 4-bucket index.
        let mut idx = Index::new(8, 0);
        let h = Hashed { bucket: 1, tag: 7 };
        for r in 0..20 {
            assert!(idx.insert(h, r));
        }
        let all = |idx: &Index, r: u32| idx.find(h, |x| x == r);
        for r in 0..20 {
            assert_eq!(all(&idx, r), Some(r));
        }
        for r in (0..20).step_by(2) {
            assert!(idx.remove(h, r));
            assert!(!idx.remove(h, r));
        }
        for r in 0..20 {
            assert_eq!(all(&idx, r), (r % 2 == 1).then_some(r));
        }
        for r in (1..20).step_by(2) {
            assert!(idx.remove(h, r));
        }
        assert!(idx
            .buckets
            .iter()
            .all(|b| b.overflow == 0 && b.refs == [EMPTY; SLOTS]));
    }
}
