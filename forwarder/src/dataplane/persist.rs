//! Persistence per client address (LVS `ipvsadm -p TIMEOUT`): a client that opened a
//! connection to a persistent service gets the same real server for its next
//! connections, as long as they start within the timeout of the previous one.
//!
//! One [`PersistTable`] per worker, fixed capacity, set-associative: a key (service slot,
//! client address) hashes to one bucket of [`WAYS`] entries. An entry whose deadline has
//! passed counts as free, so expiry costs nothing beyond the bucket scan that every lookup
//! and every record already does: no sweep, no timer, bounded work per packet. A bucket
//! whose every entry is live refuses the record ([`PersistTable::record`] returns
//! `false`): the worker counts it and the client's next connection is scheduled afresh;
//! no live entry is ever evicted for another client.
//!
//! Differences from LVS:
//! - LVS keeps a template alive while connections it controls are alive; here the
//!   deadline is the last new connection's time plus the timeout, whatever the
//!   connections do afterwards (a long download does not keep the entry).
//! - Persistence is per service (VIP, port, protocol); LVS's port-0 "all ports of the
//!   VIP" persistence and netmask grouping are not implemented.
//! - **Per worker**: each worker has its own table. With several workers, RSS on the
//!   5-tuple spreads one client's connections over workers, and each worker may pick a
//!   different real server for it. Persistence across the box needs the NIC to hash
//!   client → VIP traffic on addresses only (RSS `L3_SRC_ONLY` / `IP` hash types, or a
//!   flow rule), so that all of a client's connections reach one worker. DPVS has the
//!   same limitation.

use std::net::IpAddr;

use crate::dataplane::types::Nanos;

/// Entries per bucket (two cache lines).
pub const WAYS: usize = 4;

/// Default capacity (entries) of a worker's table: 2 MiB.
pub const DEFAULT_CAPACITY: u32 = 1 << 16;

/// Largest capacity accepted (larger values are clamped).
pub const MAX_CAPACITY: u32 = 1 << 26;

/// One entry: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Client address (IPv4 in the low 32 bits).
    addr: u128,
    /// Service slot + 1, with bit 31 set for IPv6; 0 marks an entry never used.
    key: u32,
    /// Real server index in the service's scheduler.
    rs: u32,
    /// The entry is live while `now < expires`.
    expires: Nanos,
}

impl Entry {
    const EMPTY: Entry = Entry {
        addr: 0,
        key: 0,
        rs: 0,
        expires: 0,
    };
}

#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Bucket([Entry; WAYS]);

/// The packed key of (service slot, client address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    addr: u128,
    key: u32,
}

impl Key {
    #[inline]
    fn new(slot: u32, client: IpAddr) -> Key {
        let (addr, v6) = match client {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 0),
            IpAddr::V6(a) => (u128::from(a), 1u32 << 31),
        };
        Key {
            addr,
            key: (slot.wrapping_add(1) & !(1 << 31)) | v6,
        }
    }
}

/// The per-worker persistence table. See the [module documentation](self).
#[derive(Debug)]
pub struct PersistTable {
    /// Empty until [`PersistTable::reserve`] (a worker without persistent services
    /// allocates nothing).
    buckets: Vec<Bucket>,
    mask: usize,
    capacity: u32,
    seed: u64,
}

impl PersistTable {
    /// A table for `capacity` entries (rounded up to a power of two, at least one bucket,
    /// at most [`MAX_CAPACITY`]); nothing is allocated until [`PersistTable::reserve`].
    pub fn new(capacity: u32, seed: u64) -> PersistTable {
        PersistTable {
            buckets: Vec::new(),
            mask: 0,
            capacity: capacity
                .clamp(WAYS as u32, MAX_CAPACITY)
                .next_power_of_two(),
            seed,
        }
    }

    /// Allocates the entries (configuration time; does nothing the second time).
    pub fn reserve(&mut self) {
        if self.buckets.is_empty() {
            let n = self.capacity as usize / WAYS;
            self.buckets = vec![Bucket([Entry::EMPTY; WAYS]); n];
            self.mask = n - 1;
        }
    }

    /// Number of entries once reserved.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Live entries at `now` (a control-path scan of the whole table).
    pub fn live(&self, now: Nanos) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.0.iter())
            .filter(|e| e.key != 0 && now < e.expires)
            .count()
    }

    #[inline]
    fn bucket_of(&self, k: &Key) -> usize {
        let lo = k.addr as u64;
        let hi = (k.addr >> 64) as u64;
        let h = fold_mul(lo ^ self.seed ^ K0, hi ^ u64::from(k.key) ^ K1);
        h as usize & self.mask
    }

    /// The real server remembered for `client` of service `slot`, if the entry is live.
    #[inline]
    pub fn lookup(&self, slot: u32, client: IpAddr, now: Nanos) -> Option<u32> {
        let k = Key::new(slot, client);
        let b = self.buckets.get(self.bucket_of(&k))?;
        b.0.iter()
            .find(|e| e.key == k.key && e.addr == k.addr && now < e.expires)
            .map(|e| e.rs)
    }

    /// Remembers `rs` for `client` of service `slot` until `now + timeout` (replacing the
    /// client's entry, or taking a free or expired one). Returns `false` when the
    /// client's bucket holds only other live clients (nothing changes then).
    #[inline]
    pub fn record(
        &mut self,
        slot: u32,
        client: IpAddr,
        rs: u32,
        now: Nanos,
        timeout: Nanos,
    ) -> bool {
        let k = Key::new(slot, client);
        let i = self.bucket_of(&k);
        let Some(b) = self.buckets.get_mut(i) else {
            return false;
        };
        // The client's own entry first (live or not), so a client never holds two.
        let pos =
            b.0.iter()
                .position(|e| e.key == k.key && e.addr == k.addr)
                .or_else(|| b.0.iter().position(|e| e.key == 0 || now >= e.expires));
        let Some(e) = pos.and_then(|p| b.0.get_mut(p)) else {
            return false;
        };
        *e = Entry {
            addr: k.addr,
            key: k.key,
            rs,
            expires: now.saturating_add(timeout),
        };
        true
    }

    /// Forgets every entry of service `slot` (the service was removed or its slot reused).
    pub fn forget_service(&mut self, slot: u32) {
        let key = slot.wrapping_add(1) & !(1 << 31);
        self.forget(|e| e.key & !(1 << 31) == key);
    }

    /// Forgets every entry that points at real server `rs` of service `slot` (the server
    /// was removed; its scheduler slot may be given to another server).
    pub fn forget_rs(&mut self, slot: u32, rs: u32) {
        let key = slot.wrapping_add(1) & !(1 << 31);
        self.forget(|e| e.key & !(1 << 31) == key && e.rs == rs);
    }

    fn forget(&mut self, pred: impl Fn(&Entry) -> bool) {
        for e in self.buckets.iter_mut().flat_map(|b| b.0.iter_mut()) {
            if e.key != 0 && pred(e) {
                *e = Entry::EMPTY;
            }
        }
    }
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;

/// 64×64→128 multiply folded to 64 bits.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::dataplane::types::SECOND;

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    fn table(cap: u32) -> PersistTable {
        let mut t = PersistTable::new(cap, 7);
        t.reserve();
        t
    }

    #[test]
    fn remembers_until_the_timeout() {
        let mut t = table(64);
        assert!(t.record(0, v4(1), 3, SECOND, 10 * SECOND));
        assert_eq!(t.lookup(0, v4(1), SECOND), Some(3));
        assert_eq!(t.lookup(0, v4(1), 11 * SECOND - 1), Some(3));
        assert_eq!(t.lookup(0, v4(1), 11 * SECOND), None);
        // Another service or another client does not see it.
        assert_eq!(t.lookup(1, v4(1), SECOND), None);
        assert_eq!(t.lookup(0, v4(2), SECOND), None);
        assert_eq!(t.live(SECOND), 1);
        assert_eq!(t.live(11 * SECOND), 0);
    }

    #[test]
    fn v4_and_v6_keys_differ() {
        let mut t = table(64);
        let a6 = IpAddr::V6(Ipv6Addr::from(0x0a00_0001u128));
        assert!(t.record(0, v4(1), 1, 0, SECOND));
        assert!(t.record(0, a6, 2, 0, SECOND));
        assert_eq!(t.lookup(0, v4(1), 0), Some(1));
        assert_eq!(t.lookup(0, a6, 0), Some(2));
    }

    #[test]
    fn record_refreshes_the_same_entry() {
        let mut t = table(4);
        for i in 0..10 {
            assert!(t.record(0, v4(1), 1, i * SECOND, 2 * SECOND));
        }
        assert_eq!(t.live(9 * SECOND), 1);
        assert_eq!(t.lookup(0, v4(1), 10 * SECOND), Some(1));
    }

    #[test]
    fn full_bucket_refuses_then_reuses_expired_entries() {
        // One bucket: four live clients fill it.
        let mut t = table(4);
        for i in 0..4 {
            assert!(t.record(0, v4(i), i, 0, SECOND));
        }
        assert!(!t.record(0, v4(9), 9, 0, SECOND));
        assert_eq!(t.lookup(0, v4(9), 0), None);
        // After the timeout the entries are free again.
        assert!(t.record(0, v4(9), 9, SECOND, SECOND));
        assert_eq!(t.lookup(0, v4(9), SECOND), Some(9));
    }

    #[test]
    fn forget_by_service_and_server() {
        let mut t = table(64);
        assert!(t.record(0, v4(1), 1, 0, SECOND));
        assert!(t.record(0, v4(2), 2, 0, SECOND));
        assert!(t.record(1, v4(1), 1, 0, SECOND));
        t.forget_rs(0, 1);
        assert_eq!(t.lookup(0, v4(1), 0), None);
        assert_eq!(t.lookup(0, v4(2), 0), Some(2));
        assert_eq!(t.lookup(1, v4(1), 0), Some(1));
        t.forget_service(1);
        assert_eq!(t.lookup(1, v4(1), 0), None);
        assert_eq!(t.lookup(0, v4(2), 0), Some(2));
    }

    #[test]
    fn unreserved_table_remembers_nothing() {
        let mut t = PersistTable::new(0, 1);
        assert_eq!(t.capacity(), WAYS as u32);
        assert!(!t.record(0, v4(1), 1, 0, SECOND));
        assert_eq!(t.lookup(0, v4(1), 0), None);
    }
}
