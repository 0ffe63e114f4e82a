//! Cross-checks against an independent implementation: packets built by etherparse's
//! `PacketBuilder` must parse and verify here, checksums filled here must equal
//! etherparse's, and RFC 1624 incremental rewrites must equal a full recomputation by
//! both implementations.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TcpOptionElement, TransportHeader};
use proptest::prelude::*;

use l4lab_wire::{
    checksum, EtherType, EthernetAddress, EthernetFrame, Icmpv4Message, Icmpv4Packet,
    Icmpv6Message, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet, TcpFlags, TcpOption,
    TcpPacket, UdpPacket,
};

const MAC_A: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const MAC_B: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];

#[derive(Debug, Clone, Copy)]
enum L4 {
    Tcp,
    Udp,
}

#[derive(Debug, Clone)]
struct Flow {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    l4: L4,
    payload: Vec<u8>,
}

fn build(flow: &Flow) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_B, MAC_A);
    let mut out = Vec::new();
    match (flow.src, flow.dst, flow.l4) {
        (IpAddr::V4(s), IpAddr::V4(d), L4::Tcp) => eth
            .ipv4(s.octets(), d.octets(), 64)
            .tcp(flow.sport, flow.dport, flow.seq, 64240)
            .syn()
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap()
            .write(&mut out, &flow.payload)
            .unwrap(),
        (IpAddr::V4(s), IpAddr::V4(d), L4::Udp) => eth
            .ipv4(s.octets(), d.octets(), 64)
            .udp(flow.sport, flow.dport)
            .write(&mut out, &flow.payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d), L4::Tcp) => eth
            .ipv6(s.octets(), d.octets(), 64)
            .tcp(flow.sport, flow.dport, flow.seq, 1024)
            .ack(7)
            .psh()
            .write(&mut out, &flow.payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d), L4::Udp) => eth
            .ipv6(s.octets(), d.octets(), 64)
            .udp(flow.sport, flow.dport)
            .write(&mut out, &flow.payload)
            .unwrap(),
        _ => unreachable!("flows are generated with one address family"),
    }
    out
}

/// The L4 checksum field and etherparse's own computation of it, for a frame.
fn etherparse_l4_checksums(frame: &[u8]) -> (u16, u16) {
    let headers = PacketHeaders::from_ethernet_slice(frame).unwrap();
    let payload = headers.payload.slice();
    match (headers.net.unwrap(), headers.transport.unwrap()) {
        (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => (
            t.checksum,
            t.calc_checksum_ipv4_raw(ip.source, ip.destination, payload)
                .unwrap(),
        ),
        (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => (
            u.checksum,
            u.calc_checksum_ipv4_raw(ip.source, ip.destination, payload)
                .unwrap(),
        ),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => (
            t.checksum,
            t.calc_checksum_ipv6_raw(ip.source, ip.destination, payload)
                .unwrap(),
        ),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => (
            u.checksum,
            u.calc_checksum_ipv6_raw(ip.source, ip.destination, payload)
                .unwrap(),
        ),
        other => panic!("unexpected headers {other:?}"),
    }
}

/// etherparse's IPv4 header checksum field and its computation.
fn etherparse_ipv4_checksums(frame: &[u8]) -> (u16, u16) {
    let headers = PacketHeaders::from_ethernet_slice(frame).unwrap();
    match headers.net.unwrap() {
        NetHeaders::Ipv4(ip, _) => (ip.header_checksum, ip.calc_header_checksum()),
        NetHeaders::Ipv6(..) => panic!("not IPv4"),
    }
}

/// Parses with this crate: L3 addresses and the L4 bytes' range in the frame.
fn l4_range(frame: &[u8]) -> (IpAddr, IpAddr, usize, usize) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let l3 = eth.l3_offset();
    match eth.effective_ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            let start = l3 + ip.header_len();
            let end = l3 + usize::from(ip.total_len());
            (ip.src_addr().into(), ip.dst_addr().into(), start, end)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
            let upper = ip.upper_layer().unwrap();
            let start = l3 + upper.offset;
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                start,
                start + upper.len,
            )
        }
        other => panic!("unexpected ethertype {other}"),
    }
}

fn l4_verifies(frame: &[u8], l4: L4) -> bool {
    let (src, dst, start, end) = l4_range(frame);
    match l4 {
        L4::Tcp => TcpPacket::new_checked(&frame[start..end])
            .unwrap()
            .verify_checksum(src, dst),
        L4::Udp => UdpPacket::new_checked(&frame[start..end])
            .unwrap()
            .verify_checksum(src, dst),
    }
}

/// What a FULLNAT forwarder does: rewrite both addresses and both ports, updating every
/// checksum incrementally, and decrement the TTL / hop limit.
fn rewrite(frame: &mut [u8], l4: L4, new_src: IpAddr, new_dst: IpAddr, sport: u16, dport: u16) {
    let (old_src, old_dst, start, end) = l4_range(frame);
    let mut eth = EthernetFrame::new_checked(&mut *frame).unwrap();
    match (new_src, new_dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = Ipv4Packet::new_checked(eth.payload_mut()).unwrap();
            ip.rewrite_src_addr(s);
            ip.rewrite_dst_addr(d);
            ip.decrement_ttl();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = Ipv6Packet::new_checked(eth.payload_mut()).unwrap();
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.decrement_hop_limit();
        }
        _ => unreachable!(),
    }
    let seg = &mut frame[start..end];
    match l4 {
        L4::Tcp => {
            let mut tcp = TcpPacket::new_checked(seg).unwrap();
            tcp.update_pseudo_header_addr(old_src, new_src);
            tcp.update_pseudo_header_addr(old_dst, new_dst);
            tcp.rewrite_src_port(sport);
            tcp.rewrite_dst_port(dport);
        }
        L4::Udp => {
            let mut udp = UdpPacket::new_checked(seg).unwrap();
            udp.update_pseudo_header_addr(old_src, new_src);
            udp.update_pseudo_header_addr(old_dst, new_dst);
            udp.rewrite_src_port(sport);
            udp.rewrite_dst_port(dport);
        }
    }
}

fn ipv4() -> impl Strategy<Value = IpAddr> + Clone {
    any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)))
}

fn ipv6() -> impl Strategy<Value = IpAddr> + Clone {
    any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o)))
}

fn flow_with(addr: impl Strategy<Value = IpAddr> + Clone) -> impl Strategy<Value = Flow> {
    (
        addr.clone(),
        addr,
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        prop_oneof![Just(L4::Tcp), Just(L4::Udp)],
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(src, dst, sport, dport, seq, l4, payload)| Flow {
            src,
            dst,
            sport,
            dport,
            seq,
            l4,
            payload,
        })
}

fn flow() -> impl Strategy<Value = Flow> {
    prop_oneof![flow_with(ipv4()), flow_with(ipv6())]
}

/// A flow and a rewrite of it: new addresses of the same family and new ports.
fn flow_and_rewrite() -> impl Strategy<Value = (Flow, IpAddr, IpAddr, u16, u16)> {
    flow().prop_flat_map(|f| {
        let addr = if f.src.is_ipv4() {
            ipv4().boxed()
        } else {
            ipv6().boxed()
        };
        (Just(f), addr.clone(), addr, any::<u16>(), any::<u16>())
    })
}

proptest! {
    #[test]
    fn etherparse_packets_verify_and_refill_identically(f in flow()) {
        let frame = build(&f);
        prop_assert!(l4_verifies(&frame, f.l4));
        let (src, dst, start, end) = l4_range(&frame);
        prop_assert_eq!((src, dst), (f.src, f.dst));
        let mut refilled = frame.clone();
        match f.l4 {
            L4::Tcp => {
                let mut tcp = TcpPacket::new_checked(&mut refilled[start..end]).unwrap();
                prop_assert_eq!((tcp.src_port(), tcp.dst_port()), (f.sport, f.dport));
                prop_assert_eq!(tcp.seq_number(), f.seq);
                prop_assert_eq!(tcp.payload(), &f.payload[..]);
                tcp.set_checksum(0);
                tcp.fill_checksum(src, dst);
            }
            L4::Udp => {
                let mut udp = UdpPacket::new_checked(&mut refilled[start..end]).unwrap();
                prop_assert_eq!((udp.src_port(), udp.dst_port()), (f.sport, f.dport));
                prop_assert_eq!(udp.payload(), &f.payload[..]);
                udp.set_checksum(0);
                udp.fill_checksum(src, dst);
            }
        }
        if f.src.is_ipv4() {
            let mut eth = EthernetFrame::new_checked(&mut refilled[..]).unwrap();
            let mut ip = Ipv4Packet::new_checked(eth.payload_mut()).unwrap();
            prop_assert!(ip.verify_checksum());
            ip.set_checksum(0);
            ip.fill_checksum();
        }
        prop_assert_eq!(refilled, frame);
    }

    #[test]
    fn incremental_rewrite_equals_full_recomputation(
        (f, new_src, new_dst, sport, dport) in flow_and_rewrite()
    ) {
        let mut frame = build(&f);
        rewrite(&mut frame, f.l4, new_src, new_dst, sport, dport);

        // etherparse, from scratch, agrees with the incrementally updated fields.
        let (field, computed) = etherparse_l4_checksums(&frame);
        prop_assert_eq!(field, computed);
        if f.src.is_ipv4() {
            let (field, computed) = etherparse_ipv4_checksums(&frame);
            prop_assert_eq!(field, computed);
        }
        // So does this crate's full computation.
        prop_assert!(l4_verifies(&frame, f.l4));
        let (src, dst, start, end) = l4_range(&frame);
        prop_assert_eq!((src, dst), (new_src, new_dst));
        let mut full = frame.clone();
        match f.l4 {
            L4::Tcp => TcpPacket::new_checked(&mut full[start..end]).unwrap().fill_checksum(src, dst),
            L4::Udp => UdpPacket::new_checked(&mut full[start..end]).unwrap().fill_checksum(src, dst),
        }
        prop_assert_eq!(full, frame);
    }

    #[test]
    fn emitted_packets_parse_in_etherparse(f in flow(), ident in any::<u16>(), vlan in any::<bool>()) {
        // Writes a frame with this crate's setters, as the traffic generator does.
        let l4_len = match f.l4 {
            L4::Tcp => 24 + f.payload.len(),
            L4::Udp => 8 + f.payload.len(),
        };
        let l2_len = if vlan { 18 } else { 14 };
        let l3_len = if f.src.is_ipv4() { 20 } else { 40 };
        let mut frame = vec![0u8; l2_len + l3_len + l4_len];
        let protocol = match f.l4 { L4::Tcp => IpProtocol::TCP, L4::Udp => IpProtocol::UDP };
        {
            let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
            eth.set_dst_addr(EthernetAddress(MAC_A));
            eth.set_src_addr(EthernetAddress(MAC_B));
            if vlan {
                eth.set_ethertype(EtherType::VLAN);
                eth.set_vlan_tci(0x2064);
            }
            eth.set_effective_ethertype(if f.src.is_ipv4() { EtherType::IPV4 } else { EtherType::IPV6 });
        }
        let l3 = &mut frame[l2_len..];
        match (f.src, f.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut *l3);
                ip.set_version(4);
                ip.set_header_len(20);
                ip.set_total_len((20 + l4_len) as u16);
                ip.set_ident(ident);
                ip.set_dont_frag(true);
                ip.set_ttl(64);
                ip.set_protocol(protocol);
                ip.set_src_addr(s);
                ip.set_dst_addr(d);
                ip.fill_checksum();
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ip = Ipv6Packet::new_unchecked(&mut *l3);
                ip.set_version(6);
                ip.set_payload_len(l4_len as u16);
                ip.set_next_header(protocol);
                ip.set_hop_limit(64);
                ip.set_src_addr(s);
                ip.set_dst_addr(d);
            }
            _ => unreachable!(),
        }
        let seg = &mut l3[l3_len..];
        match f.l4 {
            L4::Tcp => {
                let mut tcp = TcpPacket::new_unchecked(seg);
                tcp.set_src_port(f.sport);
                tcp.set_dst_port(f.dport);
                tcp.set_seq_number(f.seq);
                tcp.set_header_len(24);
                tcp.set_flags(TcpFlags::SYN);
                tcp.set_window_len(65535);
                TcpOption::MaxSegmentSize(1460).emit(tcp.options_mut()).unwrap();
                tcp.payload_mut().copy_from_slice(&f.payload);
                tcp.fill_checksum(f.src, f.dst);
            }
            L4::Udp => {
                let mut udp = UdpPacket::new_unchecked(seg);
                udp.set_src_port(f.sport);
                udp.set_dst_port(f.dport);
                udp.set_len(l4_len as u16);
                udp.payload_mut().copy_from_slice(&f.payload);
                udp.fill_checksum(f.src, f.dst);
            }
        }

        let headers = PacketHeaders::from_ethernet_slice(&frame).unwrap();
        prop_assert_eq!(headers.vlan.is_some(), vlan);
        prop_assert_eq!(headers.payload.slice(), &f.payload[..]);
        match (headers.net.unwrap(), f.src, f.dst) {
            (NetHeaders::Ipv4(ip, _), IpAddr::V4(s), IpAddr::V4(d)) => {
                prop_assert_eq!((ip.source, ip.destination), (s.octets(), d.octets()));
                prop_assert_eq!(ip.identification, ident);
                prop_assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            }
            (NetHeaders::Ipv6(ip, _), IpAddr::V6(s), IpAddr::V6(d)) => {
                prop_assert_eq!((ip.source, ip.destination), (s.octets(), d.octets()));
            }
            _ => prop_assert!(false, "wrong family"),
        }
        match (headers.transport.unwrap(), f.l4) {
            (TransportHeader::Tcp(t), L4::Tcp) => {
                prop_assert_eq!((t.source_port, t.destination_port), (f.sport, f.dport));
                prop_assert!(t.syn && !t.ack);
                let mss: Vec<_> = t.options_iterator().collect();
                prop_assert_eq!(mss, vec![Ok(TcpOptionElement::MaximumSegmentSize(1460))]);
            }
            (TransportHeader::Udp(u), L4::Udp) => {
                prop_assert_eq!((u.source_port, u.destination_port), (f.sport, f.dport));
                prop_assert_eq!(u.length as usize, l4_len);
            }
            _ => prop_assert!(false, "wrong transport"),
        }
        let (field, computed) = etherparse_l4_checksums(&frame);
        prop_assert_eq!(field, computed);
    }

    #[test]
    fn icmp_echo_checksums_match_etherparse(
        id in any::<u16>(),
        seq in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
        s6 in any::<[u8; 16]>(),
        d6 in any::<[u8; 16]>(),
    ) {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(id, seq)
            .write(&mut frame, &payload)
            .unwrap();
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        prop_assert_eq!(ip.protocol(), IpProtocol::ICMP);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        prop_assert_eq!(icmp.msg_type(), Icmpv4Message::ECHO_REQUEST);
        prop_assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (id, seq));
        prop_assert_eq!(icmp.data(), &payload[..]);
        prop_assert!(icmp.verify_checksum());
        let mut copy = ip.payload().to_vec();
        let mut mine = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
        mine.fill_checksum();
        prop_assert_eq!(mine.checksum(), icmp.checksum());

        let mut frame = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(s6, d6, 64)
            .icmpv6_echo_request(id, seq)
            .write(&mut frame, &payload)
            .unwrap();
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        let (upper, data) = ip.upper_layer_data().unwrap();
        prop_assert_eq!(upper.protocol, IpProtocol::ICMPV6);
        let icmp = Icmpv6Packet::new_checked(data).unwrap();
        prop_assert_eq!(icmp.msg_type(), Icmpv6Message::ECHO_REQUEST);
        prop_assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (id, seq));
        prop_assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        let mut copy = data.to_vec();
        let mut mine = Icmpv6Packet::new_checked(&mut copy[..]).unwrap();
        mine.fill_checksum(ip.src_addr(), ip.dst_addr());
        prop_assert_eq!(mine.checksum(), icmp.checksum());
    }
}

#[test]
fn vlan_tagged_frame_from_etherparse() {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(etherparse::VlanId::try_new(100).unwrap())
        .ipv4([192, 0, 2, 1], [198, 51, 100, 2], 17)
        .udp(4000, 53)
        .write(&mut frame, b"query")
        .unwrap();
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    assert!(eth.has_vlan());
    assert_eq!(eth.vlan_id(), Some(100));
    assert_eq!(eth.effective_ethertype(), EtherType::IPV4);
    assert_eq!(eth.l3_offset(), 18);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.ttl(), 17);
    assert!(ip.verify_checksum());
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(udp.payload(), b"query");
    assert!(udp.verify_checksum(ip.src_addr().into(), ip.dst_addr().into()));
}

#[test]
fn pseudo_header_sum_matches_offload_convention() {
    // With TX checksum offload the field holds the pseudo-header sum (DPDK's
    // rte_ipv4_phdr_cksum); finishing it over the segment gives the real checksum.
    let f = Flow {
        src: Ipv4Addr::new(10, 0, 0, 1).into(),
        dst: Ipv4Addr::new(10, 0, 0, 2).into(),
        sport: 1234,
        dport: 80,
        seq: 1,
        l4: L4::Tcp,
        payload: b"odd".to_vec(),
    };
    let frame = build(&f);
    let (src, dst, start, end) = l4_range(&frame);
    let mut seg = frame[start..end].to_vec();
    let mut tcp = TcpPacket::new_checked(&mut seg[..]).unwrap();
    tcp.fill_checksum_offload(l4_lab_caps(), src, dst);
    // What the NIC does: sum the segment with the pseudo-header sum in place.
    let nic = !checksum::data(&seg);
    assert_eq!(
        nic,
        TcpPacket::new_checked(&frame[start..end])
            .unwrap()
            .checksum()
    );
}

fn l4_lab_caps() -> l4lab_wire::ChecksumCaps {
    l4lab_wire::ChecksumCaps {
        ipv4: true,
        tcp: true,
        udp: true,
    }
}
