//! An independent model of receive-side scaling: Toeplitz hash, hash types and RETA.
//!
//! This is the harness's reference, written for clarity (one bit at a time), and shares no
//! code with the forwarder's precomputed implementation. It is checked against the
//! Microsoft RSS verification-suite vectors in the tests at the bottom of this file.
//!
//! The hash input is, in order: source address, destination address, then (for the L4
//! hash types) source port and destination port, all in network byte order.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The standard 40-byte Microsoft RSS key (also DPDK's and most NICs' default).
pub const MICROSOFT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The default RETA size (entries), as on many 10G/25G NICs and in DPDK's examples.
pub const DEFAULT_RETA_SIZE: usize = 128;

/// Errors from building an RSS model out of user input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RssError {
    /// The key string was neither `default`, `symmetric` nor valid hex.
    #[error("RSS key {0:?} is not `default`, `symmetric` or a hex string (e.g. 6d5a56da…)")]
    KeyNotHex(String),
    /// The key had a length other than 40 or 52 bytes.
    #[error("RSS key is {0} bytes long; give 40 or 52 bytes (80 or 104 hex digits)")]
    KeyLength(usize),
    /// A RETA needs at least one entry and one queue.
    #[error("RETA of {size} entries over {queues} queues is empty; give --reta-size ≥ 1 and --queues ≥ 1")]
    EmptyReta {
        /// Entries asked for.
        size: usize,
        /// Queues asked for.
        queues: usize,
    },
    /// A hash type name was not recognised.
    #[error("unknown RSS hash type {0:?}; use ipv4, ipv4-tcp, ipv4-udp, ipv6, ipv6-tcp, ipv6-udp, ip, tcp, udp or all")]
    UnknownHashType(String),
}

/// A Toeplitz key of 40 or 52 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RssKey {
    bytes: Vec<u8>,
}

impl RssKey {
    /// The standard Microsoft key ([`MICROSOFT_KEY`]).
    pub fn microsoft() -> Self {
        Self {
            bytes: MICROSOFT_KEY.to_vec(),
        }
    }

    /// The symmetric key: `6d 5a` repeated to 40 bytes, so that hash(a→b) = hash(b→a).
    pub fn symmetric() -> Self {
        Self {
            bytes: [0x6d, 0x5a].repeat(20),
        }
    }

    /// A key from raw bytes; 40 or 52 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RssError> {
        if bytes.len() != 40 && bytes.len() != 52 {
            return Err(RssError::KeyLength(bytes.len()));
        }
        Ok(Self {
            bytes: bytes.to_vec(),
        })
    }

    /// A key from hex digits; spaces, colons and a leading `0x` are ignored.
    pub fn from_hex(hex: &str) -> Result<Self, RssError> {
        let digits: String = hex
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect();
        if digits.len() & 1 == 1 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RssError::KeyNotHex(hex.to_owned()));
        }
        let bytes = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| RssError::KeyNotHex(hex.to_owned()))?;
        Self::from_bytes(&bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key bit at `index` (0 = most significant bit of the first byte); bits past
    /// the end read as zero.
    fn bit(&self, index: usize) -> u32 {
        match self.bytes.get(index / 8) {
            Some(byte) => u32::from((byte >> (7 - index % 8)) & 1),
            None => 0,
        }
    }
}

impl Default for RssKey {
    fn default() -> Self {
        Self::microsoft()
    }
}

impl FromStr for RssKey {
    type Err = RssError;

    /// `default`, `microsoft`, `symmetric`, or a hex string of 40 or 52 bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" | "microsoft" => Ok(Self::microsoft()),
            "symmetric" => Ok(Self::symmetric()),
            hex => Self::from_hex(hex),
        }
    }
}

impl fmt::Debug for RssKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RssKey(")?;
        for b in &self.bytes {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The Toeplitz hash of `input` under `key`, one input bit at a time.
///
/// For every set bit i of the input (most significant bit first), the 32-bit window of
/// the key starting at bit i is XORed into the result.
pub fn toeplitz(key: &RssKey, input: &[u8]) -> u32 {
    let mut hash = 0u32;
    for (byte_index, byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                let start = byte_index * 8 + bit;
                let window = (0..32).fold(0u32, |acc, k| (acc << 1) | key.bit(start + k));
                hash ^= window;
            }
        }
    }
    hash
}

/// The bytes hashed for a flow: src addr, dst addr, then src port and dst port if given.
///
/// Mixed address families hash the IPv4 address as its IPv4-mapped IPv6 form so that
/// the function is total; a NIC never sees such a flow.
pub fn hash_input(src: IpAddr, dst: IpAddr, ports: Option<(u16, u16)>) -> Vec<u8> {
    let mut input = Vec::with_capacity(36);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            input.extend_from_slice(&s.octets());
            input.extend_from_slice(&d.octets());
        }
        (s, d) => {
            input.extend_from_slice(&to_v6(s).octets());
            input.extend_from_slice(&to_v6(d).octets());
        }
    }
    if let Some((sport, dport)) = ports {
        input.extend_from_slice(&sport.to_be_bytes());
        input.extend_from_slice(&dport.to_be_bytes());
    }
    input
}

fn to_v6(addr: IpAddr) -> std::net::Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The layer-4 protocol of a flow, as far as RSS cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// TCP with its ports.
    Tcp,
    /// UDP with its ports.
    Udp,
    /// Anything else (or a fragment): hashed on addresses only.
    Other,
}

/// Which packet kinds include the L4 ports in their hash (DPDK's `ETH_RSS_*` bits).
///
/// A packet whose type is disabled falls back to the IP-only hash if that is enabled,
/// and otherwise is not hashed at all (it goes to queue 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashTypes {
    /// IPv4 addresses (`ETH_RSS_IPV4`).
    pub ipv4: bool,
    /// IPv4 + TCP ports (`ETH_RSS_NONFRAG_IPV4_TCP`).
    pub ipv4_tcp: bool,
    /// IPv4 + UDP ports (`ETH_RSS_NONFRAG_IPV4_UDP`).
    pub ipv4_udp: bool,
    /// IPv6 addresses (`ETH_RSS_IPV6`).
    pub ipv6: bool,
    /// IPv6 + TCP ports.
    pub ipv6_tcp: bool,
    /// IPv6 + UDP ports.
    pub ipv6_udp: bool,
}

impl HashTypes {
    /// Every type enabled (the usual `ip | tcp | udp` configuration).
    pub const ALL: Self = Self {
        ipv4: true,
        ipv4_tcp: true,
        ipv4_udp: true,
        ipv6: true,
        ipv6_tcp: true,
        ipv6_udp: true,
    };

    /// Addresses only, for both families.
    pub const IP_ONLY: Self = Self {
        ipv4: true,
        ipv4_tcp: false,
        ipv4_udp: false,
        ipv6: true,
        ipv6_tcp: false,
        ipv6_udp: false,
    };

    /// Nothing enabled.
    pub const NONE: Self = Self {
        ipv4: false,
        ipv4_tcp: false,
        ipv4_udp: false,
        ipv6: false,
        ipv6_tcp: false,
        ipv6_udp: false,
    };

    /// Parses a comma-separated list: `ipv4`, `ipv4-tcp`, `ipv4-udp`, `ipv6`, `ipv6-tcp`,
    /// `ipv6-udp`, or the groups `ip`, `tcp`, `udp`, `all`.
    pub fn parse_list(list: &str) -> Result<Self, RssError> {
        let mut types = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "ipv4" => types.ipv4 = true,
                "ipv4-tcp" => types.ipv4_tcp = true,
                "ipv4-udp" => types.ipv4_udp = true,
                "ipv6" => types.ipv6 = true,
                "ipv6-tcp" => types.ipv6_tcp = true,
                "ipv6-udp" => types.ipv6_udp = true,
                "ip" => (types.ipv4, types.ipv6) = (true, true),
                "tcp" => (types.ipv4_tcp, types.ipv6_tcp) = (true, true),
                "udp" => (types.ipv4_udp, types.ipv6_udp) = (true, true),
                "all" => types = Self::ALL,
                other => return Err(RssError::UnknownHashType(other.to_owned())),
            }
        }
        Ok(types)
    }

    /// Whether the ports of this flow are hashed, and whether it is hashed at all.
    fn select(&self, v6: bool, l4: L4) -> Option<bool> {
        let (ip, tcp, udp) = if v6 {
            (self.ipv6, self.ipv6_tcp, self.ipv6_udp)
        } else {
            (self.ipv4, self.ipv4_tcp, self.ipv4_udp)
        };
        match l4 {
            L4::Tcp if tcp => Some(true),
            L4::Udp if udp => Some(true),
            _ if ip => Some(false),
            _ => None,
        }
    }
}

impl Default for HashTypes {
    fn default() -> Self {
        Self::ALL
    }
}

impl FromStr for HashTypes {
    type Err = RssError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_list(s)
    }
}

/// A redirection table: `queue = table[hash % table.len()]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reta {
    table: Vec<u16>,
}

impl Reta {
    /// `size` entries filled round-robin over `queues` queues (entry i → queue i % queues).
    pub fn round_robin(size: usize, queues: u16) -> Result<Self, RssError> {
        if size == 0 || queues == 0 {
            return Err(RssError::EmptyReta {
                size,
                queues: usize::from(queues),
            });
        }
        let table = (0..size)
            .map(|i| {
                // In range: i % queues < queues, and queues is a u16.
                u16::try_from(i % usize::from(queues)).unwrap_or(0)
            })
            .collect();
        Ok(Self { table })
    }

    /// A table given entry by entry.
    pub fn from_entries(table: Vec<u16>) -> Result<Self, RssError> {
        if table.is_empty() {
            return Err(RssError::EmptyReta { size: 0, queues: 0 });
        }
        Ok(Self { table })
    }

    /// The queue a hash selects.
    pub fn queue(&self, hash: u32) -> u16 {
        // `table` is never empty (constructors check), and the index is < len.
        let index = usize::try_from(hash).unwrap_or(0) % self.table.len();
        self.table[index]
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Always false: a RETA has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The entries.
    pub fn entries(&self) -> &[u16] {
        &self.table
    }
}

/// A flow as RSS sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RssFlow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// L4 protocol (decides whether ports are hashed).
    pub l4: L4,
    /// Source port (ignored unless TCP/UDP).
    pub sport: u16,
    /// Destination port (ignored unless TCP/UDP).
    pub dport: u16,
}

/// A NIC's RSS configuration: key, enabled hash types and RETA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssModel {
    /// The Toeplitz key.
    pub key: RssKey,
    /// Which packet types are hashed, and on what.
    pub types: HashTypes,
    /// The redirection table.
    pub reta: Reta,
}

impl RssModel {
    /// Default key and types, a round-robin RETA of `reta_size` entries over `queues`.
    pub fn new(
        key: RssKey,
        types: HashTypes,
        reta_size: usize,
        queues: u16,
    ) -> Result<Self, RssError> {
        Ok(Self {
            key,
            types,
            reta: Reta::round_robin(reta_size, queues)?,
        })
    }

    /// The hash of a flow, or `None` when its type is not enabled.
    pub fn hash(&self, flow: &RssFlow) -> Option<u32> {
        let v6 = flow.src.is_ipv6() || flow.dst.is_ipv6();
        let with_ports = self.types.select(v6, flow.l4)?;
        let ports = with_ports.then_some((flow.sport, flow.dport));
        Some(toeplitz(&self.key, &hash_input(flow.src, flow.dst, ports)))
    }

    /// The queue of a flow (queue 0 when the flow is not hashed), and its hash.
    pub fn queue(&self, flow: &RssFlow) -> (Option<u32>, u16) {
        match self.hash(flow) {
            Some(hash) => (Some(hash), self.reta.queue(hash)),
            None => (None, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rstest::rstest;

    use super::*;

    fn flow(src: &str, dst: &str, l4: L4) -> RssFlow {
        let s: SocketAddr = src.parse().unwrap();
        let d: SocketAddr = dst.parse().unwrap();
        RssFlow {
            src: s.ip(),
            dst: d.ip(),
            l4,
            sport: s.port(),
            dport: d.port(),
        }
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" suite: source, destination,
    /// IP-only hash, hash with TCP ports.
    #[rstest]
    #[case("66.9.149.187:2794", "161.142.100.80:1766", 0x323e8fc2, 0x51ccc178)]
    #[case("199.92.111.2:14230", "65.69.140.83:4739", 0xd718262a, 0xc626b0ea)]
    #[case("24.19.198.95:12898", "12.22.207.184:38024", 0xd2d0a5de, 0x5c2b394a)]
    #[case("38.27.205.30:48228", "209.142.163.6:2217", 0x82989176, 0xafc7327f)]
    #[case("153.39.163.191:44251", "202.188.127.2:1303", 0x5d1809c5, 0x10e828a2)]
    #[case(
        "[3ffe:2501:200:1fff::7]:2794",
        "[3ffe:2501:200:3::1]:1766",
        0x2cc18cd5,
        0x40207d3d
    )]
    #[case(
        "[3ffe:501:8::260:97ff:fe40:efab]:14230",
        "[ff02::1]:4739",
        0x0f0c461c,
        0xdde51bbf
    )]
    #[case(
        "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251",
        "[fe80::200:f8ff:fe21:67cf]:38024",
        0x4b61e985,
        0x02d1feef
    )]
    fn microsoft_vectors(
        #[case] src: &str,
        #[case] dst: &str,
        #[case] ip_only: u32,
        #[case] with_tcp: u32,
    ) {
        let model = RssModel::new(RssKey::microsoft(), HashTypes::ALL, 128, 4).unwrap();
        assert_eq!(model.hash(&flow(src, dst, L4::Other)), Some(ip_only));
        assert_eq!(model.hash(&flow(src, dst, L4::Tcp)), Some(with_tcp));
        // UDP hashes the same bytes as TCP.
        assert_eq!(model.hash(&flow(src, dst, L4::Udp)), Some(with_tcp));
        // With the L4 types disabled, TCP falls back to the IP-only hash.
        let ip_model = RssModel::new(RssKey::microsoft(), HashTypes::IP_ONLY, 128, 4).unwrap();
        assert_eq!(ip_model.hash(&flow(src, dst, L4::Tcp)), Some(ip_only));
    }

    #[rstest]
    #[case("10.0.0.1:1234", "10.0.0.2:80")]
    #[case("192.168.7.9:65535", "172.16.0.1:1")]
    #[case("[2001:db8::1]:40000", "[2001:db8::ff]:443")]
    fn symmetric_key_hashes_both_directions_alike(#[case] a: &str, #[case] b: &str) {
        let model = RssModel::new(RssKey::symmetric(), HashTypes::ALL, 128, 8).unwrap();
        for l4 in [L4::Tcp, L4::Udp, L4::Other] {
            assert_eq!(model.hash(&flow(a, b, l4)), model.hash(&flow(b, a, l4)));
        }
        // The default key is not symmetric for this input.
        let default = RssModel::new(RssKey::microsoft(), HashTypes::ALL, 128, 8).unwrap();
        assert_ne!(
            default.hash(&flow(a, b, L4::Tcp)),
            default.hash(&flow(b, a, L4::Tcp))
        );
    }

    #[rstest]
    #[case(128, 4, 0x51ccc178, 0)] // 0x78 = 120; 120 % 4 = 0
    #[case(128, 3, 0x51ccc178, 0)] // 120 % 3 = 0
    #[case(128, 7, 0x51ccc178, 1)] // 120 % 7 = 1
    #[case(64, 5, 0x51ccc178, 1)] // 0x51ccc178 % 64 = 56; 56 % 5 = 1
    #[case(512, 16, 0x323e8fc2, 2)] // 0x1c2 = 450; 450 % 16 = 2
    fn reta_round_robin(
        #[case] size: usize,
        #[case] queues: u16,
        #[case] hash: u32,
        #[case] queue: u16,
    ) {
        let reta = Reta::round_robin(size, queues).unwrap();
        assert_eq!(reta.len(), size);
        assert_eq!(reta.queue(hash), queue);
    }

    #[test]
    fn reta_covers_all_queues_evenly() {
        let reta = Reta::round_robin(128, 4).unwrap();
        for q in 0..4 {
            assert_eq!(reta.entries().iter().filter(|&&e| e == q).count(), 32);
        }
    }

    #[rstest]
    #[case("default", true)]
    #[case("symmetric", true)]
    #[case(&"ab".repeat(40), true)]
    #[case(&"ab".repeat(52), true)]
    #[case(&"ab".repeat(41), false)]
    #[case("zz", false)]
    #[case("abc", false)]
    fn key_parsing(#[case] text: &str, #[case] ok: bool) {
        assert_eq!(text.parse::<RssKey>().is_ok(), ok, "{text}");
    }

    #[test]
    fn hex_key_equals_default() {
        let hex =
            "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";
        assert_eq!(hex.parse::<RssKey>().unwrap(), RssKey::microsoft());
    }

    #[test]
    fn empty_reta_is_an_error() {
        assert!(Reta::round_robin(0, 4).is_err());
        assert!(Reta::round_robin(128, 0).is_err());
    }

    #[test]
    fn disabled_type_goes_to_queue_zero() {
        let model = RssModel::new(RssKey::microsoft(), HashTypes::NONE, 128, 4).unwrap();
        let f = flow("66.9.149.187:2794", "161.142.100.80:1766", L4::Tcp);
        assert_eq!(model.queue(&f), (None, 0));
    }

    #[test]
    fn hash_types_parse() {
        assert_eq!(HashTypes::parse_list("all").unwrap(), HashTypes::ALL);
        assert_eq!(HashTypes::parse_list("ip").unwrap(), HashTypes::IP_ONLY);
        let t = HashTypes::parse_list("ipv4,ipv4-tcp").unwrap();
        assert!(t.ipv4 && t.ipv4_tcp && !t.ipv4_udp && !t.ipv6);
        assert!(HashTypes::parse_list("sctp").is_err());
    }

    proptest::proptest! {
        /// Toeplitz is linear over XOR: hash(a ⊕ b) = hash(a) ⊕ hash(b).
        #[test]
        fn toeplitz_is_linear(a in proptest::collection::vec(proptest::num::u8::ANY, 12), b in proptest::collection::vec(proptest::num::u8::ANY, 12)) {
            let key = RssKey::microsoft();
            let x: Vec<u8> = a.iter().zip(&b).map(|(p, q)| p ^ q).collect();
            proptest::prop_assert_eq!(toeplitz(&key, &x), toeplitz(&key, &a) ^ toeplitz(&key, &b));
        }

        /// The symmetric key hashes every IPv4/TCP flow and its reverse alike.
        #[test]
        fn symmetric_for_any_v4_flow(s: [u8; 4], d: [u8; 4], sp: u16, dp: u16) {
            let model = RssModel::new(RssKey::symmetric(), HashTypes::ALL, 128, 4).unwrap();
            let f = RssFlow { src: IpAddr::from(s), dst: IpAddr::from(d), l4: L4::Tcp, sport: sp, dport: dp };
            let r = RssFlow { src: f.dst, dst: f.src, l4: L4::Tcp, sport: dp, dport: sp };
            proptest::prop_assert_eq!(model.hash(&f), model.hash(&r));
        }
    }
}
