//! Toeplitz receive-side scaling as a NIC computes it: key, hash types, redirection table.
//!
//! The forwarder needs this model for RSS-aware local port choice (see
//! [`super::laddr`]): a FULLNAT worker picks a local port whose *reply* tuple hashes to one
//! of its own RX queues. Toeplitz is linear over XOR, so the hash of an input is the XOR of
//! the contributions of its bytes. [`Toeplitz`] precomputes, for each input byte offset and
//! byte value, that 32-bit contribution; hashing is then one table lookup and one XOR per
//! input byte, and a caller that fixes every field but one pays only for that field
//! (two lookups for a port).
//!
//! Input layout (the Microsoft/DPDK order): source address, destination address, then for
//! the L4 hash types source port and destination port, all in network byte order.
//!
//! [`toeplitz_reference`] is the bit-by-bit definition, kept for tests and cross-checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use super::types::{Proto, Tuple};

/// The standard 40-byte Microsoft RSS key (also the default of most DPDK drivers).
#[rustfmt::skip]
pub const MICROSOFT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
    0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
    0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The symmetric key: `6d 5a` repeated. Its 16-bit period makes the hash invariant under
/// swapping source and destination (addresses and ports), so both directions of a flow
/// land on the same queue.
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Longest hash input: IPv6 source and destination addresses plus two ports.
pub const MAX_INPUT_LEN: usize = 36;

/// Byte offset of the source port in an IPv4 L4 hash input.
const V4_SPORT_OFF: usize = 8;
/// Byte offset of the source port in an IPv6 L4 hash input.
const V6_SPORT_OFF: usize = 32;

/// A configuration error of the RSS model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RssError {
    /// The key is neither 40 nor 52 bytes long.
    #[error("RSS key is {0} bytes long; give a 40- or 52-byte key")]
    BadKeyLength(usize),
    /// The redirection table has no entries.
    #[error("RSS redirection table is empty; give at least one queue id")]
    EmptyReta,
}

/// An RSS hash key of 40 or 52 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssKey {
    bytes: [u8; 52],
    len: u8,
}

impl RssKey {
    /// A key from its bytes; 40 bytes (most NICs) or 52 bytes (e.g. Intel i40e/ice).
    pub fn new(key: &[u8]) -> Result<RssKey, RssError> {
        if key.len() != 40 && key.len() != 52 {
            return Err(RssError::BadKeyLength(key.len()));
        }
        let mut bytes = [0u8; 52];
        bytes[..key.len()].copy_from_slice(key);
        Ok(RssKey {
            bytes,
            len: key.len() as u8,
        })
    }

    /// The standard Microsoft key, [`MICROSOFT_KEY`].
    pub fn microsoft() -> RssKey {
        let mut bytes = [0u8; 52];
        bytes[..40].copy_from_slice(&MICROSOFT_KEY);
        RssKey { bytes, len: 40 }
    }

    /// The symmetric key, [`SYMMETRIC_KEY`].
    pub fn symmetric() -> RssKey {
        let mut bytes = [0u8; 52];
        bytes[..40].copy_from_slice(&SYMMETRIC_KEY);
        RssKey { bytes, len: 40 }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for RssKey {
    fn default() -> RssKey {
        RssKey::microsoft()
    }
}

/// Address family of a hash input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 4-byte addresses, 12-byte L4 input.
    V4,
    /// IPv6: 16-byte addresses, 36-byte L4 input.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Byte offset of the source port in the hash input.
    pub fn sport_offset(self) -> usize {
        match self {
            Family::V4 => V4_SPORT_OFF,
            Family::V6 => V6_SPORT_OFF,
        }
    }

    /// Byte offset of the destination port in the hash input.
    pub fn dport_offset(self) -> usize {
        self.sport_offset() + 2
    }
}

/// What a NIC feeds into the hash for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashType {
    /// IPv4 source and destination addresses (8 bytes).
    Ipv4,
    /// IPv4 addresses, then TCP source and destination ports (12 bytes).
    Ipv4Tcp,
    /// IPv4 addresses, then UDP source and destination ports (12 bytes).
    Ipv4Udp,
    /// IPv6 source and destination addresses (32 bytes).
    Ipv6,
    /// IPv6 addresses, then TCP ports (36 bytes).
    Ipv6Tcp,
    /// IPv6 addresses, then UDP ports (36 bytes).
    Ipv6Udp,
}

impl HashType {
    /// The address family this hash type applies to.
    pub fn family(self) -> Family {
        match self {
            HashType::Ipv4 | HashType::Ipv4Tcp | HashType::Ipv4Udp => Family::V4,
            HashType::Ipv6 | HashType::Ipv6Tcp | HashType::Ipv6Udp => Family::V6,
        }
    }

    /// Whether the ports are part of the input.
    pub fn has_ports(self) -> bool {
        !matches!(self, HashType::Ipv4 | HashType::Ipv6)
    }

    /// Length of the hash input in bytes.
    pub fn input_len(self) -> usize {
        match (self.family(), self.has_ports()) {
            (Family::V4, false) => 8,
            (Family::V4, true) => 12,
            (Family::V6, false) => 32,
            (Family::V6, true) => 36,
        }
    }
}

/// The set of hash types a port has enabled (DPDK's `rss_hf`).
///
/// A packet whose L4 type is enabled hashes with ports; otherwise, if its plain IP type is
/// enabled, it hashes on addresses only; otherwise the NIC computes no hash and the packet
/// goes to queue 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashTypes {
    /// IPv4 addresses ([`HashType::Ipv4`]).
    pub ipv4: bool,
    /// IPv4 + TCP ports.
    pub ipv4_tcp: bool,
    /// IPv4 + UDP ports.
    pub ipv4_udp: bool,
    /// IPv6 addresses.
    pub ipv6: bool,
    /// IPv6 + TCP ports.
    pub ipv6_tcp: bool,
    /// IPv6 + UDP ports.
    pub ipv6_udp: bool,
}

impl HashTypes {
    /// Every type enabled: what the forwarder configures (`RTE_ETH_RSS_IP | TCP | UDP`).
    pub fn all() -> HashTypes {
        HashTypes {
            ipv4: true,
            ipv4_tcp: true,
            ipv4_udp: true,
            ipv6: true,
            ipv6_tcp: true,
            ipv6_udp: true,
        }
    }

    /// Addresses only, for both families.
    pub fn ip_only() -> HashTypes {
        HashTypes {
            ipv4: true,
            ipv4_tcp: false,
            ipv4_udp: false,
            ipv6: true,
            ipv6_tcp: false,
            ipv6_udp: false,
        }
    }

    /// The hash type a packet of this protocol and family gets, or `None` when the NIC
    /// would not hash it at all. ICMP hashes on addresses only.
    pub fn select(&self, proto: Proto, family: Family) -> Option<HashType> {
        let (l4, l4_type, ip, ip_type) = match (family, proto) {
            (Family::V4, Proto::Tcp) => {
                (self.ipv4_tcp, HashType::Ipv4Tcp, self.ipv4, HashType::Ipv4)
            }
            (Family::V4, Proto::Udp) => {
                (self.ipv4_udp, HashType::Ipv4Udp, self.ipv4, HashType::Ipv4)
            }
            (Family::V4, Proto::Icmp) => (false, HashType::Ipv4, self.ipv4, HashType::Ipv4),
            (Family::V6, Proto::Tcp) => {
                (self.ipv6_tcp, HashType::Ipv6Tcp, self.ipv6, HashType::Ipv6)
            }
            (Family::V6, Proto::Udp) => {
                (self.ipv6_udp, HashType::Ipv6Udp, self.ipv6, HashType::Ipv6)
            }
            (Family::V6, Proto::Icmp) => (false, HashType::Ipv6, self.ipv6, HashType::Ipv6),
        };
        if l4 {
            Some(l4_type)
        } else if ip {
            Some(ip_type)
        } else {
            None
        }
    }
}

impl Default for HashTypes {
    fn default() -> HashTypes {
        HashTypes::all()
    }
}

/// The bit-by-bit Toeplitz hash: for every set bit `i` of `input` (most significant bit of
/// byte 0 first), XOR in the 32 key bits starting at bit `i`.
///
/// Key bits past the end of `key` count as zero; callers pass a key at least 4 bytes longer
/// than the input. This is the definition, slow on purpose; use [`Toeplitz`] on any path
/// that matters.
pub fn toeplitz_reference(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |i: usize| -> u32 {
        key.get(i / 8)
            .map_or(0, |b| u32::from((b >> (7 - i % 8)) & 1))
    };
    let mut window: u32 = 0;
    for i in 0..32 {
        window = (window << 1) | key_bit(i);
    }
    let mut hash = 0u32;
    for (n, byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | key_bit(n * 8 + bit + 32);
        }
    }
    hash
}

/// Build the hash input of a hash type into `buf`; returns the used prefix.
///
/// Addresses of the other family than `ty` are not hashed the NIC's way; the caller picks
/// `ty` from the tuple's family.
pub fn hash_input(
    ty: HashType,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    buf: &mut [u8; MAX_INPUT_LEN],
) -> &[u8] {
    let alen = match ty.family() {
        Family::V4 => 4,
        Family::V6 => 16,
    };
    put_addr(src, &mut buf[..alen]);
    put_addr(dst, &mut buf[alen..2 * alen]);
    if ty.has_ports() {
        buf[2 * alen..2 * alen + 2].copy_from_slice(&sport.to_be_bytes());
        buf[2 * alen + 2..2 * alen + 4].copy_from_slice(&dport.to_be_bytes());
    }
    &buf[..ty.input_len()]
}

/// Write an address into a 4- or 16-byte slot (IPv4 in IPv6 slots as mapped addresses,
/// IPv6 in IPv4 slots truncated to the low 4 bytes; neither happens on a NIC).
fn put_addr(addr: IpAddr, out: &mut [u8]) {
    match (addr, out.len()) {
        (IpAddr::V4(a), 4) => out.copy_from_slice(&a.octets()),
        (IpAddr::V6(a), 16) => out.copy_from_slice(&a.octets()),
        (IpAddr::V4(a), _) => out.copy_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), _) => out.copy_from_slice(&a.octets()[12..]),
    }
}

/// A precomputed Toeplitz hasher for one key.
///
/// `table[off][b]` is the hash of an input that is all zero except byte `off == b`, so the
/// hash of any input is the XOR of `table[off][input[off]]`. 36 × 256 × 4 bytes = 36 KiB,
/// built once at configuration time.
#[derive(Clone)]
pub struct Toeplitz {
    key: RssKey,
    table: Box<[[u32; 256]; MAX_INPUT_LEN]>,
}

impl Toeplitz {
    /// Precompute the tables for `key`.
    pub fn new(key: RssKey) -> Toeplitz {
        let k = key.as_bytes();
        let mut table = Box::new([[0u32; 256]; MAX_INPUT_LEN]);
        for (off, row) in table.iter_mut().enumerate() {
            // The 32-bit key window at each of the 8 bit positions of this byte.
            let mut windows = [0u32; 8];
            for (bit, w) in windows.iter_mut().enumerate() {
                let start = off * 8 + bit;
                let mut v = 0u32;
                for i in 0..32 {
                    let kb = start + i;
                    let b = k
                        .get(kb / 8)
                        .map_or(0, |x| u32::from((x >> (7 - kb % 8)) & 1));
                    v = (v << 1) | b;
                }
                *w = v;
            }
            for (value, slot) in row.iter_mut().enumerate() {
                let mut h = 0u32;
                for (bit, w) in windows.iter().enumerate() {
                    if value & (0x80 >> bit) != 0 {
                        h ^= w;
                    }
                }
                *slot = h;
            }
        }
        Toeplitz { key, table }
    }

    /// The key these tables were built from.
    pub fn key(&self) -> &RssKey {
        &self.key
    }

    /// The hash of an input of at most [`MAX_INPUT_LEN`] bytes (longer inputs are hashed on
    /// their first [`MAX_INPUT_LEN`] bytes).
    pub fn hash(&self, input: &[u8]) -> u32 {
        self.partial(0, input)
    }

    /// The contribution of `bytes` placed at byte offset `offset` of the input, every other
    /// byte zero. XOR partial hashes of disjoint fields to get the hash of the whole input.
    /// Bytes past [`MAX_INPUT_LEN`] are ignored.
    #[inline]
    pub fn partial(&self, offset: usize, bytes: &[u8]) -> u32 {
        let mut h = 0u32;
        for (row, &b) in self.table.iter().skip(offset).zip(bytes) {
            h ^= row[usize::from(b)];
        }
        h
    }

    /// The contribution of a 16-bit field (a port, network order) at byte offset `offset`:
    /// two lookups and an XOR.
    #[inline]
    pub fn partial_u16(&self, offset: usize, value: u16) -> u32 {
        let [hi, lo] = value.to_be_bytes();
        match (self.table.get(offset), self.table.get(offset + 1)) {
            (Some(a), Some(b)) => a[usize::from(hi)] ^ b[usize::from(lo)],
            (Some(a), None) => a[usize::from(hi)],
            _ => 0,
        }
    }

    /// The contribution of the source and destination addresses. Both must be of the same
    /// family (a NIC never sees anything else); a mixed pair is hashed as the family of
    /// `src`.
    pub fn partial_addrs(&self, src: IpAddr, dst: IpAddr) -> u32 {
        match src {
            IpAddr::V4(s) => self.partial(0, &s.octets()) ^ self.partial(4, &v4_of(dst).octets()),
            IpAddr::V6(s) => self.partial(0, &s.octets()) ^ self.partial(16, &v6_of(dst).octets()),
        }
    }

    /// The contribution of the source port for an L4 hash type of this family.
    #[inline]
    pub fn partial_sport(&self, family: Family, sport: u16) -> u32 {
        self.partial_u16(family.sport_offset(), sport)
    }

    /// The contribution of the destination port for an L4 hash type of this family.
    #[inline]
    pub fn partial_dport(&self, family: Family, dport: u16) -> u32 {
        self.partial_u16(family.dport_offset(), dport)
    }

    /// The hash of a packet's fields under hash type `ty` (ports ignored for the IP-only
    /// types).
    pub fn hash_fields(
        &self,
        ty: HashType,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
    ) -> u32 {
        let mut h = self.partial_addrs(src, dst);
        if ty.has_ports() {
            let f = ty.family();
            h ^= self.partial_sport(f, sport) ^ self.partial_dport(f, dport);
        }
        h
    }
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toeplitz")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn v4_of(addr: IpAddr) -> Ipv4Addr {
    match addr {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => {
            let o = a.octets();
            Ipv4Addr::new(o[12], o[13], o[14], o[15])
        }
    }
}

fn v6_of(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// A redirection table: `queue = entries[hash % len]`.
///
/// DPDK indexes with the low bits (`hash & (len - 1)`), which is the same thing for the
/// power-of-two sizes NICs use; this type also accepts other sizes and uses `%` for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reta {
    entries: Box<[u16]>,
    /// `len - 1` when `len` is a power of two.
    mask: Option<u32>,
}

impl Reta {
    /// A table from its entries (queue ids).
    pub fn new(entries: Vec<u16>) -> Result<Reta, RssError> {
        if entries.is_empty() {
            return Err(RssError::EmptyReta);
        }
        let len = entries.len();
        let mask = if len.is_power_of_two() {
            u32::try_from(len - 1).ok()
        } else {
            None
        };
        Ok(Reta {
            entries: entries.into_boxed_slice(),
            mask,
        })
    }

    /// The table a driver (or DPVS) writes by default: `size` entries cycling over the
    /// queues `0..queues`.
    pub fn round_robin(size: usize, queues: u16) -> Result<Reta, RssError> {
        if size == 0 || queues == 0 {
            return Err(RssError::EmptyReta);
        }
        Reta::new(
            (0..size)
                .map(|i| (i % usize::from(queues)) as u16)
                .collect(),
        )
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: construction refuses empty tables.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }

    /// The entry index a hash selects.
    #[inline]
    pub fn index(&self, hash: u32) -> usize {
        match self.mask {
            Some(m) => (hash & m) as usize,
            None => hash as usize % self.entries.len(),
        }
    }

    /// The queue a hash selects.
    #[inline]
    pub fn queue(&self, hash: u32) -> u16 {
        // `index` is always < len: masked by len-1 or reduced modulo len.
        self.entries[self.index(hash)]
    }
}

/// Everything a port's RSS needs: precomputed key tables, enabled hash types, RETA.
#[derive(Debug, Clone)]
pub struct RssModel {
    /// The precomputed hasher for the port's key.
    pub toeplitz: Toeplitz,
    /// The enabled hash types.
    pub types: HashTypes,
    /// The redirection table.
    pub reta: Reta,
}

impl RssModel {
    /// A model from its parts.
    pub fn new(key: RssKey, types: HashTypes, reta: Reta) -> RssModel {
        RssModel {
            toeplitz: Toeplitz::new(key),
            types,
            reta,
        }
    }

    /// The hash the NIC computes for a tuple, `None` if its type is not enabled.
    pub fn hash(&self, t: &Tuple) -> Option<u32> {
        let ty = self.types.select(t.proto, Family::of(t.src))?;
        Some(
            self.toeplitz
                .hash_fields(ty, t.src, t.dst, t.sport, t.dport),
        )
    }

    /// The RX queue the NIC delivers a tuple to (queue 0 when it computes no hash).
    pub fn queue(&self, t: &Tuple) -> u16 {
        match self.hash(t) {
            Some(h) => self.reta.queue(h),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Microsoft "Verifying the RSS Hash Calculation" vectors, standard key.
    /// (destination, source, hash with ports, hash without ports)
    #[rstest]
    #[case("161.142.100.80:1766", "66.9.149.187:2794", 0x51cc_c178, 0x323e_8fc2)]
    #[case("65.69.140.83:4739", "199.92.111.2:14230", 0xc626_b0ea, 0xd718_262a)]
    #[case("12.22.207.184:38024", "24.19.198.95:12898", 0x5c2b_394a, 0xd2d0_a5de)]
    #[case("209.142.163.6:2217", "38.27.205.30:48228", 0xafc7_327f, 0x8298_9176)]
    #[case("202.188.127.2:1303", "153.39.163.191:44251", 0x10e8_28a2, 0x5d18_09c5)]
    #[case(
        "[3ffe:2501:200:3::1]:1766",
        "[3ffe:2501:200:1fff::7]:2794",
        0x4020_7d3d,
        0x2cc1_8cd5
    )]
    #[case(
        "[ff02::1]:4739",
        "[3ffe:501:8::260:97ff:fe40:efab]:14230",
        0xdde5_1bbf,
        0x0f0c_461c
    )]
    #[case(
        "[fe80::200:f8ff:fe21:67cf]:38024",
        "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251",
        0x02d1_feef,
        0x4b61_e985
    )]
    fn microsoft_vectors(
        #[case] dst: &str,
        #[case] src: &str,
        #[case] with_ports: u32,
        #[case] without_ports: u32,
    ) {
        let (dst, src) = (sa(dst), sa(src));
        let t = Toeplitz::new(RssKey::microsoft());
        let (l4, l3) = match Family::of(src.ip()) {
            Family::V4 => (HashType::Ipv4Tcp, HashType::Ipv4),
            Family::V6 => (HashType::Ipv6Tcp, HashType::Ipv6),
        };
        for (ty, want) in [(l4, with_ports), (l3, without_ports)] {
            let mut buf = [0u8; MAX_INPUT_LEN];
            let input = hash_input(ty, src.ip(), dst.ip(), src.port(), dst.port(), &mut buf);
            assert_eq!(
                toeplitz_reference(&MICROSOFT_KEY, input),
                want,
                "reference {ty:?}"
            );
            assert_eq!(t.hash(input), want, "table {ty:?}");
            assert_eq!(
                t.hash_fields(ty, src.ip(), dst.ip(), src.port(), dst.port()),
                want,
                "fields {ty:?}"
            );
        }
    }

    #[test]
    fn key_lengths() {
        assert_eq!(RssKey::new(&[0; 39]), Err(RssError::BadKeyLength(39)));
        assert!(RssKey::new(&[0; 40]).is_ok());
        assert!(RssKey::new(&[1; 52]).is_ok());
        assert_eq!(RssKey::new(&[0; 41]), Err(RssError::BadKeyLength(41)));
        assert_eq!(&SYMMETRIC_KEY[..4], &[0x6d, 0x5a, 0x6d, 0x5a]);
    }

    #[test]
    fn reta_indexing() {
        let r = Reta::round_robin(128, 4).unwrap();
        assert_eq!(r.len(), 128);
        for h in [0u32, 1, 5, 127, 128, 0xffff_ffff, 0x51cc_c178] {
            assert_eq!(r.queue(h), r.entries()[h as usize % 128]);
            assert_eq!(r.queue(h), (h % 128 % 4) as u16);
        }
        let odd = Reta::new(vec![3, 1, 2]).unwrap();
        assert_eq!(odd.queue(7), 1);
        assert_eq!(Reta::new(vec![]), Err(RssError::EmptyReta));
        assert_eq!(Reta::round_robin(8, 0), Err(RssError::EmptyReta));
    }

    #[test]
    fn hash_types_select() {
        let all = HashTypes::all();
        assert_eq!(all.select(Proto::Tcp, Family::V4), Some(HashType::Ipv4Tcp));
        assert_eq!(all.select(Proto::Udp, Family::V6), Some(HashType::Ipv6Udp));
        assert_eq!(all.select(Proto::Icmp, Family::V6), Some(HashType::Ipv6));
        let ip = HashTypes::ip_only();
        assert_eq!(ip.select(Proto::Udp, Family::V4), Some(HashType::Ipv4));
        let none = HashTypes {
            ipv4: false,
            ..HashTypes::ip_only()
        };
        assert_eq!(none.select(Proto::Tcp, Family::V4), None);
    }

    #[test]
    fn model_queue() {
        let m = RssModel::new(
            RssKey::microsoft(),
            HashTypes::all(),
            Reta::round_robin(128, 4).unwrap(),
        );
        let t = Tuple {
            proto: Proto::Tcp,
            src: "66.9.149.187".parse().unwrap(),
            sport: 2794,
            dst: "161.142.100.80".parse().unwrap(),
            dport: 1766,
        };
        assert_eq!(m.hash(&t), Some(0x51cc_c178));
        assert_eq!(m.queue(&t), ((0x51cc_c178u32 & 127) % 4) as u16);
    }

    fn arb_ip() -> impl Strategy<Value = (IpAddr, IpAddr)> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>())
                .prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
            (any::<[u8; 16]>(), any::<[u8; 16]>())
                .prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
        ]
    }

    fn arb_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(MICROSOFT_KEY.to_vec()),
            Just(SYMMETRIC_KEY.to_vec()),
            proptest::collection::vec(any::<u8>(), 40),
            proptest::collection::vec(any::<u8>(), 52),
        ]
    }

    proptest! {
        #[test]
        fn symmetric_key_is_symmetric((a, b) in arb_ip(), pa: u16, pb: u16) {
            let t = Toeplitz::new(RssKey::symmetric());
            let l4 = if a.is_ipv4() { HashType::Ipv4Udp } else { HashType::Ipv6Udp };
            let l3 = if a.is_ipv4() { HashType::Ipv4 } else { HashType::Ipv6 };
            for ty in [l4, l3] {
                prop_assert_eq!(t.hash_fields(ty, a, b, pa, pb), t.hash_fields(ty, b, a, pb, pa));
            }
        }

        #[test]
        fn tables_match_reference(key in arb_key(), input in proptest::collection::vec(any::<u8>(), 0..=MAX_INPUT_LEN)) {
            let t = Toeplitz::new(RssKey::new(&key).unwrap());
            prop_assert_eq!(t.hash(&input), toeplitz_reference(&key, &input));
        }

        #[test]
        fn partials_match_reference(key in arb_key(), (a, b) in arb_ip(), pa: u16, pb: u16) {
            let t = Toeplitz::new(RssKey::new(&key).unwrap());
            let f = Family::of(a);
            let (l4, l3) = match f {
                Family::V4 => (HashType::Ipv4Tcp, HashType::Ipv4),
                Family::V6 => (HashType::Ipv6Tcp, HashType::Ipv6),
            };
            for ty in [l4, l3] {
                let mut buf = [0u8; MAX_INPUT_LEN];
                let want = toeplitz_reference(&key, hash_input(ty, a, b, pa, pb, &mut buf));
                prop_assert_eq!(t.hash_fields(ty, a, b, pa, pb), want);
            }
            // Fix everything but the destination port; vary only it.
            let base = t.partial_addrs(a, b) ^ t.partial_sport(f, pa);
            let mut buf = [0u8; MAX_INPUT_LEN];
            let want = toeplitz_reference(&key, hash_input(l4, a, b, pa, pb, &mut buf));
            prop_assert_eq!(base ^ t.partial_dport(f, pb), want);
        }
    }
}
