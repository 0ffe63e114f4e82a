//! A summary of a frame: the fields the oracle and the tools use.
//!
//! Nothing here comes from the forwarder: strict parsing is `etherparse::SlicedPacket`,
//! with the common case (untagged IPv4 or IPv6, TCP or UDP) read at fixed offsets first
//! and checked against etherparse by a test, and the NIC-like view used for RSS is
//! `etherparse::LaxSlicedPacket`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Ipv4HeaderSlice, Ipv6HeaderSlice, LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket,
    TransportSlice,
};

use crate::rss::{RssFlow, L4};

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv4.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// Why a frame could not be read as a well-formed packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed packet: {0}")]
pub struct ParseError(pub String);

/// The parts of a frame the harness looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketInfo<'a> {
    /// The outer VLAN id, if the frame is tagged.
    pub vlan: Option<u16>,
    /// The ethertype after any VLAN tags.
    pub ethertype: u16,
    /// The IP layer; `None` for non-IP frames (ARP, unknown ethertypes).
    pub net: Option<NetInfo<'a>>,
}

/// The IP layer of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetInfo<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// The payload's protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Whether the payload is a fragment (IPv4 MF/offset, IPv6 fragment header).
    pub fragment: bool,
    /// Where the IP header starts in the frame (after Ethernet and VLAN tags).
    pub ip_offset: usize,
    /// The IP header's length: IHL × 4 for IPv4, 40 for IPv6 (extension headers are part
    /// of the payload here).
    pub ip_header_len: usize,
    /// Where the transport header starts in the frame (after IPv6 extension headers).
    pub l4_offset: usize,
    /// Bytes from `l4_offset` to the end of the IP payload.
    pub l4_len: usize,
    /// The transport layer as far as it was read.
    pub l4: L4Info<'a>,
}

/// The transport layer of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4Info<'a> {
    /// TCP.
    Tcp(TcpInfo<'a>),
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// UDP payload.
        payload: &'a [u8],
    },
    /// ICMPv4 or ICMPv6.
    Icmp(IcmpInfo),
    /// Another protocol, or a fragment's payload (not read).
    Other,
}

/// The TCP fields the harness uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpInfo<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack_no: u32,
    /// The flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, …).
    pub flags: u8,
    /// The option bytes (between the 20-byte fixed header and the data offset).
    pub options: &'a [u8],
    /// TCP payload (after the options).
    pub payload: &'a [u8],
}

impl TcpInfo<'_> {
    /// SYN set.
    pub fn syn(&self) -> bool {
        self.flags & 0x02 != 0
    }

    /// ACK set.
    pub fn ack(&self) -> bool {
        self.flags & 0x10 != 0
    }

    /// FIN set.
    pub fn fin(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// RST set.
    pub fn rst(&self) -> bool {
        self.flags & 0x04 != 0
    }
}

/// The ICMP fields the harness uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpInfo {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    /// Type.
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// For error messages, the quoted packet's addresses and ports.
    pub quoted: Option<Quoted>,
}

impl IcmpInfo {
    /// Whether the type is an error that quotes a packet (unreachable, time exceeded,
    /// parameter problem; for ICMPv6 also packet too big).
    pub fn is_error(&self) -> bool {
        if self.v6 {
            matches!(self.icmp_type, 1..=4)
        } else {
            matches!(self.icmp_type, 3 | 11 | 12)
        }
    }
}

/// The header fields of the packet quoted in an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quoted {
    /// Quoted source address.
    pub src: IpAddr,
    /// Quoted destination address.
    pub dst: IpAddr,
    /// Quoted protocol.
    pub proto: u8,
    /// Quoted source port (0 unless TCP/UDP).
    pub sport: u16,
    /// Quoted destination port (0 unless TCP/UDP).
    pub dport: u16,
}

impl<'a> PacketInfo<'a> {
    /// Reads an Ethernet frame strictly: any length, IHL or data-offset inconsistency is
    /// an error.
    pub fn parse(frame: &'a [u8]) -> Result<Self, ParseError> {
        match Self::parse_common(frame) {
            Some(info) => Ok(info),
            None => Self::parse_sliced(frame),
        }
    }

    /// The common case read at fixed offsets: an untagged IPv4 frame (not a fragment) or
    /// IPv6 frame (no extension header, payload length set) carrying TCP, or UDP whose
    /// length field matches the IP payload. `None` for every other frame, malformed ones
    /// included, which [`PacketInfo::parse_sliced`] reads: where this returns a value it
    /// is the one etherparse gives (`tests::common_case_reads_as_etherparse` compares
    /// them over mutated frames).
    fn parse_common(frame: &'a [u8]) -> Option<Self> {
        let (src, dst, ttl, proto, ip_header_len, l4_len) = match be16(frame, 12)? {
            ETHERTYPE_IPV4 => {
                let ip = frame.get(ETH_LEN..ETH_LEN + 20)?;
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(be16(ip, 2)?);
                // MF or a fragment offset: a fragment.
                let fragment = be16(ip, 6)? & 0x3fff != 0;
                if ip[0] >> 4 != 4
                    || ihl < 20
                    || total < ihl
                    || frame.len() < ETH_LEN + total
                    || fragment
                {
                    return None;
                }
                (
                    IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
                    IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
                    ip[8],
                    ip[9],
                    ihl,
                    total - ihl,
                )
            }
            ETHERTYPE_IPV6 => {
                let ip = frame.get(ETH_LEN..ETH_LEN + 40)?;
                let payload = usize::from(be16(ip, 4)?);
                if ip[0] >> 4 != 6 || payload == 0 || frame.len() < ETH_LEN + 40 + payload {
                    return None;
                }
                let addr = |at: usize| -> Option<IpAddr> {
                    let bytes: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
                    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
                };
                (addr(8)?, addr(24)?, ip[7], ip[6], 40, payload)
            }
            _ => return None,
        };
        let l4_offset = ETH_LEN + ip_header_len;
        let segment = frame.get(l4_offset..l4_offset + l4_len)?;
        let l4 = match proto {
            PROTO_TCP => {
                let header = segment.get(..20)?;
                let data_offset = usize::from(header[12] >> 4) * 4;
                if data_offset < 20 {
                    return None;
                }
                L4Info::Tcp(TcpInfo {
                    sport: be16(header, 0)?,
                    dport: be16(header, 2)?,
                    seq: be32(header, 4)?,
                    ack_no: be32(header, 8)?,
                    flags: header[13],
                    options: segment.get(20..data_offset)?,
                    payload: segment.get(data_offset..)?,
                })
            }
            PROTO_UDP => {
                let header = segment.get(..8)?;
                if usize::from(be16(header, 4)?) != segment.len() {
                    return None;
                }
                L4Info::Udp {
                    sport: be16(header, 0)?,
                    dport: be16(header, 2)?,
                    payload: segment.get(8..)?,
                }
            }
            _ => return None,
        };
        Some(Self {
            vlan: None,
            ethertype: be16(frame, 12)?,
            net: Some(NetInfo {
                src,
                dst,
                ttl,
                proto,
                fragment: false,
                ip_offset: ETH_LEN,
                ip_header_len,
                l4_offset,
                l4_len,
                l4,
            }),
        })
    }

    /// Any frame, read with etherparse's `SlicedPacket`.
    fn parse_sliced(frame: &'a [u8]) -> Result<Self, ParseError> {
        let sliced = SlicedPacket::from_ethernet(frame).map_err(|e| ParseError(e.to_string()))?;
        let vlan = match &sliced.vlan {
            Some(etherparse::VlanSlice::SingleVlan(v)) => Some(v.vlan_identifier().value()),
            Some(etherparse::VlanSlice::DoubleVlan(v)) => Some(v.outer().vlan_identifier().value()),
            None => None,
        };
        let ethertype =
            inner_ethertype(frame).ok_or_else(|| ParseError("no ethertype".to_owned()))?;
        let net = match &sliced.net {
            None => None,
            Some(net) => Some(net_info(frame, net, sliced.transport.as_ref())?),
        };
        Ok(Self {
            vlan,
            ethertype,
            net,
        })
    }

    /// The L4 payload bytes (empty for ICMP and unread protocols).
    pub fn l4_payload(&self) -> &'a [u8] {
        match self.net.as_ref().map(|n| &n.l4) {
            Some(L4Info::Tcp(t)) => t.payload,
            Some(L4Info::Udp { payload, .. }) => payload,
            _ => &[],
        }
    }
}

/// The Ethernet II header's length (no tag).
const ETH_LEN: usize = 14;
/// Ethertype of IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The big-endian 16-bit field at `at`, if `bytes` holds it.
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// The big-endian 32-bit field at `at`, if `bytes` holds it.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The ethertype after any 802.1Q / 802.1ad tags.
pub fn inner_ethertype(frame: &[u8]) -> Option<u16> {
    let mut offset = 12;
    loop {
        let t = u16::from_be_bytes([*frame.get(offset)?, *frame.get(offset + 1)?]);
        if t == 0x8100 || t == 0x88a8 {
            offset += 4;
        } else {
            return Some(t);
        }
    }
}

/// Where `part` (a sub-slice of `frame`) starts in `frame`.
fn offset_in(frame: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(frame.as_ptr() as usize)
}

fn net_info<'a>(
    frame: &'a [u8],
    net: &NetSlice<'a>,
    transport: Option<&TransportSlice<'a>>,
) -> Result<NetInfo<'a>, ParseError> {
    let (src, dst, ttl, proto, fragment, header, payload) = match net {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                ip.payload_ip_number().0,
                ip.is_payload_fragmented(),
                h.slice(),
                ip.payload().payload,
            )
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                ip.payload().ip_number.0,
                ip.is_payload_fragmented(),
                h.slice(),
                ip.payload().payload,
            )
        }
    };
    let l4 = match transport {
        _ if fragment => L4Info::Other,
        Some(TransportSlice::Tcp(t)) => L4Info::Tcp(TcpInfo {
            sport: t.source_port(),
            dport: t.destination_port(),
            seq: t.sequence_number(),
            ack_no: t.acknowledgment_number(),
            flags: t.header_slice().get(13).copied().unwrap_or(0),
            options: t.header_slice().get(20..).unwrap_or_default(),
            payload: t.payload(),
        }),
        Some(TransportSlice::Udp(u)) => L4Info::Udp {
            sport: u.source_port(),
            dport: u.destination_port(),
            payload: u.payload(),
        },
        Some(TransportSlice::Icmpv4(i)) => {
            let mut info = IcmpInfo {
                v6: false,
                icmp_type: i.type_u8(),
                code: i.code_u8(),
                quoted: None,
            };
            if info.is_error() {
                info.quoted = quoted(i.payload());
            }
            L4Info::Icmp(info)
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let mut info = IcmpInfo {
                v6: true,
                icmp_type: i.type_u8(),
                code: i.code_u8(),
                quoted: None,
            };
            if info.is_error() {
                info.quoted = quoted(i.payload());
            }
            L4Info::Icmp(info)
        }
        None if proto == PROTO_TCP || proto == PROTO_UDP => {
            return Err(ParseError(format!(
                "protocol {proto} without a readable header"
            )))
        }
        None => L4Info::Other,
    };
    Ok(NetInfo {
        src,
        dst,
        ttl,
        proto,
        fragment,
        ip_offset: offset_in(frame, header),
        ip_header_len: header.len(),
        l4_offset: offset_in(frame, payload),
        l4_len: payload.len(),
        l4,
    })
}

/// Reads the addresses and ports of a (truncated) packet quoted in an ICMP error.
pub fn quoted(bytes: &[u8]) -> Option<Quoted> {
    let (src, dst, proto, rest) = match bytes.first()? >> 4 {
        4 => {
            let h = Ipv4HeaderSlice::from_slice(bytes).ok()?;
            let rest = bytes.get(h.slice().len()..)?;
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.protocol().0,
                rest,
            )
        }
        6 => {
            let h = Ipv6HeaderSlice::from_slice(bytes).ok()?;
            let rest = bytes.get(40..)?;
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.next_header().0,
                rest,
            )
        }
        _ => return None,
    };
    let (sport, dport) = match (proto, rest) {
        (PROTO_TCP | PROTO_UDP, [a, b, c, d, ..]) => {
            (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
        }
        _ => (0, 0),
    };
    Some(Quoted {
        src,
        dst,
        proto,
        sport,
        dport,
    })
}

/// The flow a NIC would hash for this frame: read laxly (a truncated packet still has
/// addresses), ports only for unfragmented TCP/UDP. `None` for non-IP frames.
pub fn rss_flow(frame: &[u8]) -> Option<RssFlow> {
    let sliced = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, payload) = match sliced.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.payload(),
        ),
        LaxNetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.payload(),
        ),
    };
    let l4 = match payload.ip_number.0 {
        _ if payload.fragmented => L4::Other,
        PROTO_TCP => L4::Tcp,
        PROTO_UDP => L4::Udp,
        _ => L4::Other,
    };
    let (sport, dport) = match (l4, payload.payload) {
        (L4::Tcp | L4::Udp, [a, b, c, d, ..]) => {
            (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
        }
        (L4::Tcp | L4::Udp, _) => {
            return Some(RssFlow {
                src,
                dst,
                l4: L4::Other,
                sport: 0,
                dport: 0,
            })
        }
        _ => (0, 0),
    };
    Some(RssFlow {
        src,
        dst,
        l4,
        sport,
        dport,
    })
}

/// An address and port, printed `a:p` or `[a]:p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Address.
    pub addr: IpAddr,
    /// Port (0 for ICMP and unread protocols).
    pub port: u16,
}

impl Endpoint {
    /// A new endpoint.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self { addr, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        std::net::SocketAddr::new(self.addr, self.port).fmt(f)
    }
}

/// The unspecified IPv4 address, a placeholder where no address applies.
pub const NO_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The unspecified IPv6 address.
pub const NO_ADDR6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 100, 1000)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn reads_tcp() {
        let frame = tcp_frame(b"hi");
        let p = PacketInfo::parse(&frame).unwrap();
        let net = p.net.unwrap();
        assert_eq!(net.ttl, 64);
        match net.l4 {
            L4Info::Tcp(t) => {
                assert!(t.syn() && !t.ack());
                assert_eq!((t.sport, t.dport, t.seq), (1234, 80, 100));
                assert_eq!(t.payload, b"hi");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Frames of every shape the common-case reader takes, and some it leaves.
    fn shapes() -> Vec<Vec<u8>> {
        let eth = || PacketBuilder::ethernet2([1; 6], [2; 6]);
        let (a4, b4, a6, b6) = ([10, 0, 0, 1], [10, 0, 0, 2], [0x20; 16], [0x21; 16]);
        let mut out = Vec::new();
        macro_rules! w {
            ($b:expr, $payload:expr) => {{
                let mut v = Vec::new();
                $b.write(&mut v, $payload).unwrap();
                out.push(v);
            }};
        }
        let opts = [2, 4, 5, 0xb4, 1, 3, 3, 7];
        w!(eth().ipv4(a4, b4, 64).tcp(1, 2, 3, 4).syn(), b"");
        w!(
            eth()
                .ipv4(a4, b4, 1)
                .tcp(1, 2, 3, 4)
                .ack(9)
                .options_raw(&opts)
                .unwrap(),
            b"data!"
        );
        w!(eth().ipv4(a4, b4, 64).udp(53, 5353), b"hello");
        w!(eth().ipv4(a4, b4, 64).udp(53, 5353), b"");
        w!(eth().ipv4(a4, b4, 64).icmpv4_echo_request(1, 2), b"ping");
        w!(
            eth()
                .ipv6(a6, b6, 64)
                .tcp(1, 2, 3, 4)
                .options_raw(&opts)
                .unwrap(),
            b"v6"
        );
        w!(eth().ipv6(a6, b6, 64).udp(1, 2), b"v6 udp");
        w!(eth().ipv6(a6, b6, 64).icmpv6_echo_request(1, 2), b"ping");
        w!(
            eth()
                .single_vlan(7.try_into().unwrap())
                .ipv4(a4, b4, 64)
                .udp(1, 2),
            b"tagged"
        );
        out
    }

    /// Where the fixed-offset reader returns a packet, etherparse reads the same one —
    /// over every byte of the headers set to values that matter (lengths, versions,
    /// flags), truncations and Ethernet padding.
    #[test]
    fn common_case_reads_as_etherparse() {
        let same = |f: &[u8]| {
            if let Some(fast) = PacketInfo::parse_common(f) {
                assert_eq!(Ok(fast), PacketInfo::parse_sliced(f), "{f:02x?}");
            }
        };
        let mut taken = 0;
        for frame in shapes() {
            taken += usize::from(PacketInfo::parse_common(&frame).is_some());
            same(&frame);
            for cut in 0..frame.len() {
                same(&frame[..cut]);
            }
            let mut padded = frame.clone();
            padded.extend_from_slice(&[0; 6]);
            same(&padded);
            for at in 0..frame.len().min(ETH_LEN + 40 + 20) {
                for v in [0u8, 1, 2, 4, 5, 6, 7, 8, 0x0f, 0x10, 0x11, 0x20, 0x3f, 0x40]
                    .into_iter()
                    .chain([0x45, 0x46, 0x4f, 0x50, 0x60, 0x80, 0x86, 0xdd, 0xf0, 0xff])
                {
                    let mut f = frame.clone();
                    f[at] = v;
                    same(&f);
                    f.extend_from_slice(&[0; 6]);
                    same(&f);
                }
            }
        }
        // IPv4 TCP, UDP (2), IPv6 TCP and UDP.
        assert_eq!(taken, 6);
    }

    #[test]
    fn truncated_is_an_error_strictly_but_hashable_laxly() {
        let frame = tcp_frame(b"hello");
        let cut = &frame[..frame.len() - 3];
        assert!(PacketInfo::parse(cut).is_err());
        let flow = rss_flow(cut).unwrap();
        assert_eq!((flow.sport, flow.dport, flow.l4), (1234, 80, L4::Tcp));
    }
}
