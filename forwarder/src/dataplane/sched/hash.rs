//! A small stable 64-bit hash for schedulers: the same value on every build, platform and
//! run (unlike `std`'s SipHash with random keys), so Maglev tables and source-hash choices
//! are reproducible across workers, restarts and machines.
//!
//! Word-at-a-time: each 64-bit word is XORed into the state and folded with a 64×64→128
//! multiply (the wyhash/folded-multiply step); the result goes through the MurmurHash3
//! `fmix64` finaliser. Not a cryptographic hash: a client who knows it can aim flows at one
//! real server, exactly as with LVS's own `sh`.

use std::net::IpAddr;

use crate::dataplane::types::Tuple;

/// Seed of the Maglev offset hash `h1`.
pub const SEED_OFFSET: u64 = 0x243f_6a88_85a3_08d3;
/// Seed of the Maglev skip hash `h2`.
pub const SEED_SKIP: u64 = 0x1319_8a2e_0370_7344;
/// Seed of the per-packet (flow) hash.
pub const SEED_FLOW: u64 = 0xa409_3822_299f_31d0;

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// A stable incremental hasher over 64-bit words.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher {
    state: u64,
}

impl StableHasher {
    /// A hasher with `seed`; different seeds give independent-looking hash functions.
    #[inline]
    pub fn new(seed: u64) -> StableHasher {
        StableHasher {
            state: fmix64(seed ^ K),
        }
    }

    /// Mix in one word.
    #[inline]
    pub fn word(&mut self, w: u64) {
        self.state = fold_mul(self.state ^ w, K);
    }

    /// Mix in a byte string (8 bytes at a time, zero-padded, then the length).
    pub fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
        self.word(b.len() as u64);
    }

    /// Mix in an address (family-tagged, so 10.0.0.1 and ::a00:1 differ).
    #[inline]
    pub fn addr(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(v4) => self.word(u64::from(u32::from(v4)) | (4 << 32)),
            IpAddr::V6(v6) => {
                let x = u128::from(v6);
                self.word(x as u64);
                self.word((x >> 64) as u64 ^ 6);
            }
        }
    }

    /// The hash value.
    #[inline]
    pub fn finish(&self) -> u64 {
        fmix64(self.state)
    }
}

/// Hash a byte string with a seed.
pub fn hash_bytes(seed: u64, b: &[u8]) -> u64 {
    let mut h = StableHasher::new(seed);
    h.bytes(b);
    h.finish()
}

/// Hash a client address only (source hashing).
#[inline]
pub fn hash_addr(seed: u64, a: IpAddr) -> u64 {
    let mut h = StableHasher::new(seed);
    h.addr(a);
    h.finish()
}

/// Hash a whole 5-tuple (Maglev flow hash).
#[inline]
pub fn hash_tuple(seed: u64, t: &Tuple) -> u64 {
    let mut h = StableHasher::new(seed);
    h.addr(t.src);
    h.addr(t.dst);
    h.word(u64::from(t.sport) | u64::from(t.dport) << 16 | u64::from(t.proto.number()) << 32);
    h.finish()
}

/// Map a hash uniformly onto `0..n` without a division (Lemire's multiply-shift on the
/// high 32 bits).
#[inline]
pub fn reduce(hash: u64, n: usize) -> usize {
    (((hash >> 32) * n as u64) >> 32) as usize
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// MurmurHash3's 64-bit finaliser.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned so that a change of the function (which reshuffles every Maglev table)
        // is a deliberate one.
        let a = hash_bytes(SEED_OFFSET, b"10.0.0.1:80");
        assert_eq!(a, 0x42ff_7576_3067_3c2d);
        assert_eq!(
            hash_addr(SEED_FLOW, "10.0.0.1".parse().unwrap()),
            0x1860_b3a3_33dd_587c
        );
        assert_eq!(a, hash_bytes(SEED_OFFSET, b"10.0.0.1:80"));
        assert_ne!(a, hash_bytes(SEED_SKIP, b"10.0.0.1:80"));
        assert_ne!(hash_bytes(0, b"a"), hash_bytes(0, b"a\0"));
        assert_ne!(
            hash_addr(0, "10.0.0.1".parse().unwrap()),
            hash_addr(0, "::a00:1".parse().unwrap())
        );
    }

    #[test]
    fn reduce_in_range() {
        for n in [1usize, 2, 3, 65537, 1 << 20] {
            for h in [0u64, 1, u64::MAX, 0x8000_0000_0000_0000] {
                assert!(reduce(h, n) < n);
            }
        }
        assert_eq!(reduce(u64::MAX, 10), 9);
    }
}
