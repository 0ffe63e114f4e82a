//! Ethernet -> IPv4/IPv6/ARP -> TCP/UDP/ICMP, as the forwarder's fast path parses a
//! frame: no accessor may panic, and incremental rewrites of a packet whose checksums
//! were valid must leave them valid.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;

use l4lab_wire::{
    ArpPacket, EtherType, EthernetAddress, EthernetFrame, Icmpv4Packet, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket,
};

fuzz_target!(|data: &[u8]| {
    let Ok(eth) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = (
        eth.dst_addr(),
        eth.src_addr(),
        eth.ethertype(),
        eth.vlan_id(),
        eth.vlan_pcp(),
    );
    let l3 = eth.l3_offset();
    match eth.effective_ethertype() {
        EtherType::IPV4 => ipv4(&data[l3..]),
        EtherType::IPV6 => ipv6(&data[l3..]),
        EtherType::ARP => arp(&data[l3..]),
        _ => {}
    }
    let mut copy = data.to_vec();
    let mut eth = EthernetFrame::new_unchecked(&mut copy[..]);
    eth.swap_addrs();
    eth.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
    let _ = eth.payload_mut().len();
});

fn ipv4(data: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        ip.version(),
        ip.header_len(),
        ip.options(),
        ip.dscp(),
        ip.ecn(),
        ip.ident(),
    );
    let _ = (
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
        ip.is_fragment(),
        ip.ttl(),
    );
    let _ = (ip.checksum(), ip.verify_checksum(), ip.payload_len());
    let (src, dst) = (IpAddr::from(ip.src_addr()), IpAddr::from(ip.dst_addr()));
    let protocol = ip.protocol();
    let (start, end) = (ip.header_len(), usize::from(ip.total_len()));
    transport(protocol, ip.payload(), src, dst);

    // Rewrite as FULLNAT does and check every checksum stays valid.
    let mut copy = data.to_vec();
    let mut ip = Ipv4Packet::new_unchecked(&mut copy[..]);
    ip.fill_checksum();
    let (new_src, new_dst) = (Ipv4Addr::new(10, 9, 8, 7), Ipv4Addr::new(172, 16, 0, 1));
    ip.rewrite_src_addr(new_src);
    ip.rewrite_dst_addr(new_dst);
    ip.decrement_ttl();
    assert!(ip.verify_checksum());
    if !ip.is_fragment() {
        rewrite_l4(
            protocol,
            &mut copy[start..end],
            src,
            dst,
            new_src.into(),
            new_dst.into(),
        );
    }
}

fn ipv6(data: &[u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let _ = (
        ip.traffic_class(),
        ip.flow_label(),
        ip.payload_len(),
        ip.next_header(),
    );
    let _ = (ip.hop_limit(), ip.payload());
    let (src, dst) = (IpAddr::from(ip.src_addr()), IpAddr::from(ip.dst_addr()));
    let Ok((upper, l4)) = ip.upper_layer_data() else {
        return;
    };
    assert_eq!(l4.len(), upper.len);
    transport(upper.protocol, l4, src, dst);
    if upper.has_header() {
        let mut copy = data.to_vec();
        let range = upper.offset..upper.offset + upper.len;
        let new_src = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7));
        let new_dst = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        rewrite_l4(upper.protocol, &mut copy[range], src, dst, new_src, new_dst);
    }
}

fn transport(protocol: IpProtocol, data: &[u8], src: IpAddr, dst: IpAddr) {
    match protocol {
        IpProtocol::TCP => {
            if let Ok(tcp) = TcpPacket::new_checked(data) {
                let _ = (
                    tcp.src_port(),
                    tcp.dst_port(),
                    tcp.seq_number(),
                    tcp.ack_number(),
                );
                let _ = (
                    tcp.flags(),
                    tcp.window_len(),
                    tcp.urgent_at(),
                    tcp.payload(),
                );
                let _ = (tcp.mss(), tcp.verify_checksum(src, dst));
                tcp.options_iter().for_each(drop);
            }
        }
        IpProtocol::UDP => {
            if let Ok(udp) = UdpPacket::new_checked(data) {
                let _ = (udp.src_port(), udp.dst_port(), udp.len(), udp.payload());
                let _ = udp.verify_checksum(src, dst);
            }
        }
        IpProtocol::ICMP => {
            if let Ok(icmp) = Icmpv4Packet::new_checked(data) {
                let _ = (icmp.msg_type(), icmp.msg_code(), icmp.verify_checksum());
                if let Some(inner) = icmp.inner_packet() {
                    if let Ok(quoted) = Ipv4Packet::new_checked_quoted(inner) {
                        let _ = (quoted.src_addr(), quoted.dst_addr(), quoted.payload());
                    }
                }
            }
        }
        _ => {}
    }
}

fn rewrite_l4(
    protocol: IpProtocol,
    seg: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    new_src: IpAddr,
    new_dst: IpAddr,
) {
    match protocol {
        IpProtocol::TCP => {
            let Ok(mut tcp) = TcpPacket::new_checked(seg) else {
                return;
            };
            tcp.fill_checksum(src, dst);
            tcp.update_pseudo_header_addr(src, new_src);
            tcp.update_pseudo_header_addr(dst, new_dst);
            tcp.rewrite_src_port(40000);
            tcp.rewrite_dst_port(8080);
            let _ = tcp.clamp_mss(1360);
            assert!(tcp.verify_checksum(new_src, new_dst));
        }
        IpProtocol::UDP => {
            let Ok(mut udp) = UdpPacket::new_checked(seg) else {
                return;
            };
            udp.fill_checksum(src, dst);
            udp.update_pseudo_header_addr(src, new_src);
            udp.update_pseudo_header_addr(dst, new_dst);
            udp.rewrite_src_port(40000);
            udp.rewrite_dst_port(53);
            assert!(udp.verify_checksum(new_src, new_dst));
        }
        _ => {}
    }
}

fn arp(data: &[u8]) {
    let Ok(arp) = ArpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        arp.operation(),
        arp.source_hardware_addr(),
        arp.source_protocol_addr(),
    );
    let _ = (
        arp.target_hardware_addr(),
        arp.target_protocol_addr(),
        arp.is_gratuitous(),
    );
    let mut copy = data.to_vec();
    ArpPacket::new_unchecked(&mut copy[..]).make_reply(EthernetAddress([2, 0, 0, 0, 0, 1]));
}
