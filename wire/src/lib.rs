//! Typed, zero-copy views over the packet headers that a layer-4 load balancer reads and
//! rewrites, plus the one checksum module everything else uses.
//!
//! Every header is a `Packet<T: AsRef<[u8]>>` (smoltcp style) that holds only the buffer.
//! Untrusted bytes go through `new_checked`; once it (or `check_len`) succeeds, no
//! getter panics. Setters need `T: AsMut<[u8]>` as well. Nothing here allocates.
//!
//! A view covers exactly one header and what follows it: hand a TCP view the IP
//! payload (`Ipv4Packet::payload`), not the rest of the frame, because the TCP and UDP
//! checksums cover the whole buffer the view was made from.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//!
//! use l4lab_wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpPacket};
//!
//! # fn main() -> Result<(), l4lab_wire::Error> {
//! # let mut frame = vec![0u8; 54];
//! # frame[12] = 0x08;
//! # let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
//! # ip.set_version(4); ip.set_header_len(20); ip.set_total_len(40); ip.set_ttl(64);
//! # ip.set_protocol(IpProtocol::TCP); ip.fill_checksum();
//! # let mut tcp = TcpPacket::new_unchecked(ip.payload_mut()); tcp.set_header_len(20);
//! # tcp.fill_checksum(Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::UNSPECIFIED.into());
//! // Parse untrusted bytes down to TCP, then rewrite as FULLNAT does, updating every
//! // checksum incrementally (RFC 1624).
//! let mut eth = EthernetFrame::new_checked(&mut frame[..])?;
//! if eth.effective_ethertype() != EtherType::IPV4 {
//!     return Ok(());
//! }
//! let mut ip = Ipv4Packet::new_checked(eth.payload_mut())?;
//! if ip.protocol() != IpProtocol::TCP || ip.is_fragment() || ip.decrement_ttl() == 0 {
//!     return Ok(());
//! }
//! let (old_src, old_dst) = (ip.src_addr(), ip.dst_addr());
//! let (local, server) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 1, 7));
//! ip.rewrite_src_addr(local);
//! ip.rewrite_dst_addr(server);
//! let mut tcp = TcpPacket::new_checked(ip.payload_mut())?;
//! tcp.update_pseudo_header_addr(old_src.into(), local.into());
//! tcp.update_pseudo_header_addr(old_dst.into(), server.into());
//! tcp.rewrite_src_port(40_001);
//! tcp.rewrite_dst_port(8080);
//! tcp.clamp_mss(1400)?;
//! assert!(tcp.verify_checksum(IpAddr::V4(local), IpAddr::V4(server)));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

use std::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use arp::{Operation as ArpOperation, Packet as ArpPacket};
pub use checksum::ChecksumCaps;
pub use ethernet::{Address as EthernetAddress, EtherType, Frame as EthernetFrame};
pub use icmpv4::{Message as Icmpv4Message, Packet as Icmpv4Packet};
pub use icmpv6::{Message as Icmpv6Message, Packet as Icmpv6Packet};
pub use ip::IpProtocol;
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::{FragmentInfo as Ipv6FragmentInfo, Packet as Ipv6Packet, UpperLayer};
pub use tcp::{Flags as TcpFlags, OptionIter as TcpOptionIter, Packet as TcpPacket, TcpOption};
pub use udp::Packet as UdpPacket;

/// Why a buffer could not be viewed as a header. Small and `Copy` so that the fast path
/// can count it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header, or than a length field says.
    Truncated,
    /// A field holds a value the format does not allow, such as a header length below
    /// the fixed header or a TCP option whose length is 0 or 1.
    Malformed,
    /// The IP version field is not the version this view expects.
    BadVersion,
    /// Well formed, but outside what this crate handles: ARP for anything but
    /// Ethernet/IPv4, or an IPv6 extension-header chain longer than the walker's bound.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Truncated => "packet truncated: the buffer is shorter than its headers say",
            Error::Malformed => "malformed packet: a header field holds an impossible value",
            Error::BadVersion => "wrong IP version for this header",
            Error::Unsupported => "unsupported packet: valid, but not handled by l4lab-wire",
        };
        f.write_str(text)
    }
}

impl std::error::Error for Error {}

/// The result of parsing: `Ok` or one of the [`Error`] kinds.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The same arbitrary bytes through every constructor and, where one accepts
        /// them, every accessor, the option iterator and the extension-header walker.
        #[test]
        fn every_view_on_arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let b = &bytes[..];
            if let Ok(v) = EthernetFrame::new_checked(b) { ethernet::tests::exercise(&v); }
            if let Ok(v) = ArpPacket::new_checked(b) { arp::tests::exercise(&v); }
            if let Ok(v) = Ipv4Packet::new_checked(b) { ipv4::tests::exercise(&v); }
            if let Ok(v) = Ipv4Packet::new_checked_quoted(b) { ipv4::tests::exercise(&v); }
            if let Ok(v) = Ipv6Packet::new_checked(b) { ipv6::tests::exercise(&v); }
            if let Ok(v) = Ipv6Packet::new_checked_quoted(b) { ipv6::tests::exercise(&v); }
            if let Ok(v) = TcpPacket::new_checked(b) { tcp::tests::exercise(&v); }
            if let Ok(v) = UdpPacket::new_checked(b) { udp::tests::exercise(&v); }
            if let Ok(v) = Icmpv4Packet::new_checked(b) { icmpv4::tests::exercise(&v); }
            if let Ok(v) = Icmpv6Packet::new_checked(b) { icmpv6::tests::exercise(&v); }
            TcpOptionIter::new(b).for_each(drop);
            if let Some((&first, chain)) = b.split_first() {
                let _ = ipv6::walk_ext_headers(IpProtocol(first), chain);
            }
            if Ipv4Packet::new_checked_quoted(b).is_ok() { ipv4::tests::exercise_mut(&mut bytes); }
            if TcpPacket::new_checked(&bytes[..]).is_ok() { tcp::tests::exercise_mut(&mut bytes); }
            if UdpPacket::new_checked(&bytes[..]).is_ok() { udp::tests::exercise_mut(&mut bytes); }
        }
    }

    /// Ethernet header, 52:54:00:ab:cd:ef -> 52:54:00:12:34:56, with `ethertype`.
    fn ethernet(ethertype: u16, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef,
        ];
        if let Some(tci) = vlan {
            frame.extend_from_slice(&EtherType::VLAN.0.to_be_bytes());
            frame.extend_from_slice(&tci.to_be_bytes());
        }
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    fn ipv4_icmp(icmp: &[u8]) -> Vec<u8> {
        let mut packet = vec![0u8; 20];
        let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len((20 + icmp.len()) as u16);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::ICMP);
        ip.set_src_addr([10, 0, 0, 254].into());
        ip.set_dst_addr([192, 168, 1, 10].into());
        ip.fill_checksum();
        packet.extend_from_slice(icmp);
        packet
    }

    #[test]
    fn whole_frame_down_to_tcp_options() {
        let frame = ethernet(0x0800, None, &ipv4::tests::SYN_PACKET);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.effective_ethertype(), EtherType::IPV4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let (src, dst) = (IpAddr::from(ip.src_addr()), IpAddr::from(ip.dst_addr()));
        assert!(tcp.verify_checksum(src, dst));
        assert_eq!(tcp.mss(), Ok(Some(1460)));
    }

    #[test]
    fn whole_frame_vlan_ipv6_ext_headers() {
        let frame = ethernet(0x86dd, Some(0x0064), &ipv6::tests::EXT_CHAIN);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.vlan_id(), Some(100));
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        let (upper, data) = ip.upper_layer_data().unwrap();
        assert_eq!(upper.protocol, IpProtocol::TCP);
        let tcp = TcpPacket::new_checked(data).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (443, 50000));
    }

    #[test]
    fn error_display() {
        assert!(Error::Truncated.to_string().contains("truncated"));
        assert_eq!(IpProtocol::TCP.to_string(), "TCP");
        assert_eq!(IpProtocol(253).to_string(), "protocol 253");
        assert_eq!(ip::version(&[0x45]), Some(4));
        assert_eq!(ip::version(&[]), None);
    }

    /// Writes the fuzz seed corpus from the fixtures above. Run it by hand after changing
    /// a fixture: `cargo test -p l4lab-wire -- --ignored write_fuzz_seed_corpus`.
    #[test]
    #[ignore = "writes files into wire/fuzz/corpus"]
    fn write_fuzz_seed_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let seeds: [(&str, &str, Vec<u8>); 16] = [
            (
                "ethernet_ipv4_tcp_udp",
                "ipv4_tcp_syn",
                ethernet(0x0800, None, &ipv4::tests::SYN_PACKET),
            ),
            (
                "ethernet_ipv4_tcp_udp",
                "ipv4_udp_padded",
                ethernet(0x0800, None, &ipv4::tests::UDP_PACKET),
            ),
            (
                "ethernet_ipv4_tcp_udp",
                "vlan_ipv6_ext_tcp",
                ethernet(0x86dd, Some(0x0064), &ipv6::tests::EXT_CHAIN),
            ),
            (
                "ethernet_ipv4_tcp_udp",
                "ipv6_ah_udp",
                ethernet(0x86dd, None, &ipv6::tests::AH_UDP),
            ),
            (
                "ethernet_ipv4_tcp_udp",
                "arp_request",
                ethernet(0x0806, None, &arp::tests::REQUEST),
            ),
            (
                "ethernet_ipv4_tcp_udp",
                "ipv4_icmp_frag_needed",
                ethernet(0x0800, None, &ipv4_icmp(&icmpv4::tests::FRAG_NEEDED)),
            ),
            (
                "ipv6_exthdr",
                "hbh_route_frag_dstopts_tcp",
                ipv6::tests::EXT_CHAIN.to_vec(),
            ),
            ("ipv6_exthdr", "ah_udp", ipv6::tests::AH_UDP.to_vec()),
            (
                "ipv6_exthdr",
                "quoted_in_pkt_too_big",
                icmpv6::tests::PKT_TOO_BIG[8..].to_vec(),
            ),
            (
                "tcp_options",
                "syn_mss_sack_ts_ws",
                tcp::tests::SYN_SEGMENT.to_vec(),
            ),
            (
                "tcp_options",
                "odd_mss_sack_unknown",
                tcp::tests::ODD_OPTIONS.to_vec(),
            ),
            (
                "tcp_options",
                "options_only",
                tcp::tests::SYN_SEGMENT[20..].to_vec(),
            ),
            (
                "icmp_inner",
                "v4_frag_needed",
                icmpv4::tests::FRAG_NEEDED.to_vec(),
            ),
            (
                "icmp_inner",
                "v4_echo",
                icmpv4::tests::ECHO_REQUEST.to_vec(),
            ),
            (
                "icmp_inner",
                "v6_pkt_too_big",
                icmpv6::tests::PKT_TOO_BIG.to_vec(),
            ),
            (
                "icmp_inner",
                "v6_echo",
                icmpv6::tests::ECHO_REQUEST.to_vec(),
            ),
        ];
        for (target, name, bytes) in seeds {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
