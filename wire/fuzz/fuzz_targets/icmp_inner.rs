//! ICMPv4 and ICMPv6 messages and the packets quoted in their errors, read as the
//! forwarder does to find the connection an error belongs to.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;

use l4lab_wire::{Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(icmp) = Icmpv4Packet::new_checked(data) {
        let _ = (
            icmp.msg_type(),
            icmp.msg_code(),
            icmp.echo_ident(),
            icmp.echo_seq_no(),
        );
        let _ = (
            icmp.next_hop_mtu(),
            icmp.is_frag_needed(),
            icmp.data(),
            icmp.verify_checksum(),
        );
        if let Some(inner) = icmp.inner_packet() {
            if let Ok(ip) = Ipv4Packet::new_checked_quoted(inner) {
                let _ = (ip.src_addr(), ip.dst_addr(), ip.protocol(), ip.total_len());
                assert!(ip.payload().len() <= inner.len() - ip.header_len());
                if let Some(ports) = ip.payload().get(..4) {
                    let _ = u16::from_be_bytes([ports[0], ports[1]]);
                }
            }
        }
        let mut copy = data.to_vec();
        let mut icmp = Icmpv4Packet::new_unchecked(&mut copy[..]);
        icmp.fill_checksum();
        assert!(icmp.verify_checksum());
    }

    if let Ok(icmp) = Icmpv6Packet::new_checked(data) {
        let _ = (icmp.msg_type(), icmp.msg_code(), icmp.mtu(), icmp.pointer());
        let _ = (
            icmp.echo_ident(),
            icmp.echo_seq_no(),
            icmp.is_pkt_too_big(),
            icmp.data(),
        );
        if let Some(inner) = icmp.inner_packet() {
            if let Ok(ip) = Ipv6Packet::new_checked_quoted(inner) {
                let _ = (ip.src_addr(), ip.dst_addr(), ip.next_header(), ip.payload());
                if let Ok((upper, l4)) = ip.upper_layer_data() {
                    assert_eq!(l4.len(), upper.len);
                }
            }
        }
        let (src, dst) = (
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        );
        let mut copy = data.to_vec();
        let mut icmp = Icmpv6Packet::new_unchecked(&mut copy[..]);
        icmp.fill_checksum(src, dst);
        assert!(icmp.verify_checksum(src, dst));
        icmp.update_pseudo_header_addr(src, Ipv6Addr::UNSPECIFIED);
        assert!(icmp.verify_checksum(Ipv6Addr::UNSPECIFIED, dst));
    }
});
