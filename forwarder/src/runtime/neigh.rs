//! Neighbour answers of the master: ARP replies and IPv6 neighbour advertisements for the
//! addresses the forwarder owns (VIPs, local addresses), and the gratuitous ARP / unsolicited
//! advertisements it sends at start. Pure functions over bytes, so they are tested without
//! the EAL. A VLAN tag in a request is kept in the answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use l4lab_wire::{
    ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame, Icmpv6Message,
    Icmpv6Packet, Ipv6Packet,
};

const ICMPV6: u8 = 58;
/// NDP option: target link-layer address.
const OPT_TARGET_LLA: u8 = 2;
/// Neighbour advertisement flags: solicited, override.
const NA_SOLICITED: u32 = 0x4000_0000;
const NA_OVERRIDE: u32 = 0x2000_0000;

/// The answer to a neighbour request for an owned address, or `None`.
pub fn answer(frame: &[u8], our_mac: [u8; 6], owned: &[IpAddr]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    match eth.effective_ethertype() {
        EtherType::ARP => arp_reply(frame, eth.l3_offset(), our_mac, owned),
        EtherType::IPV6 => na_reply(frame, eth.l3_offset(), our_mac, owned),
        _ => None,
    }
}

fn arp_reply(frame: &[u8], l3: usize, our_mac: [u8; 6], owned: &[IpAddr]) -> Option<Vec<u8>> {
    let mut out = frame.to_vec();
    let asker = EthernetFrame::new_checked(frame).ok()?.src_addr();
    {
        let mut arp = ArpPacket::new_checked(&mut out[l3..]).ok()?;
        if arp.operation() != ArpOperation::REQUEST
            || !owned.contains(&IpAddr::V4(arp.target_protocol_addr()))
        {
            return None;
        }
        arp.make_reply(EthernetAddress(our_mac));
    }
    let mut eth = EthernetFrame::new_checked(&mut out[..]).ok()?;
    eth.set_dst_addr(asker);
    eth.set_src_addr(EthernetAddress(our_mac));
    Some(out)
}

fn na_reply(frame: &[u8], l3: usize, our_mac: [u8; 6], owned: &[IpAddr]) -> Option<Vec<u8>> {
    let ip = Ipv6Packet::new_checked(&frame[l3..]).ok()?;
    if ip.next_header() != l4lab_wire::IpProtocol(ICMPV6) || ip.hop_limit() != 255 {
        return None;
    }
    let src = ip.src_addr();
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    if icmp.msg_type() != Icmpv6Message::NEIGHBOR_SOLICIT || icmp.msg_code() != 0 {
        return None;
    }
    if !icmp.verify_checksum(src, ip.dst_addr()) {
        return None;
    }
    let body = icmp.data();
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(body.get(..16)?).ok()?);
    if !owned.contains(&IpAddr::V6(target)) {
        return None;
    }
    let asker = EthernetFrame::new_checked(frame).ok()?.src_addr();
    // Duplicate address detection asks from ::; the answer then goes to all nodes.
    let (dst_ip, dst_mac, solicited) = if src.is_unspecified() {
        (
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
            0,
        )
    } else {
        (src, asker, NA_SOLICITED)
    };
    Some(neighbor_advert(
        &frame[..l3],
        our_mac,
        dst_mac,
        target,
        dst_ip,
        solicited | NA_OVERRIDE,
    ))
}

/// An advertisement of `target` at `our_mac`, over the L2 header `l2` (addresses replaced).
fn neighbor_advert(
    l2: &[u8],
    our_mac: [u8; 6],
    dst_mac: EthernetAddress,
    target: Ipv6Addr,
    dst: Ipv6Addr,
    flags: u32,
) -> Vec<u8> {
    const ICMP_LEN: usize = 8 + 16 + 8;
    let mut out = Vec::with_capacity(l2.len() + 40 + ICMP_LEN);
    out.extend_from_slice(l2);
    let l3 = out.len();
    out.resize(l3 + 40 + ICMP_LEN, 0);
    if let Ok(mut eth) = EthernetFrame::new_checked(&mut out[..]) {
        eth.set_dst_addr(dst_mac);
        eth.set_src_addr(EthernetAddress(our_mac));
    }
    let ip = &mut out[l3..l3 + 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(ICMP_LEN as u16).to_be_bytes());
    ip[6] = ICMPV6;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&target.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let icmp = &mut out[l3 + 40..];
    icmp[0] = Icmpv6Message::NEIGHBOR_ADVERT.0;
    icmp[4..8].copy_from_slice(&flags.to_be_bytes());
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = OPT_TARGET_LLA;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&our_mac);
    if let Ok(mut p) = Icmpv6Packet::new_checked(&mut out[l3 + 40..]) {
        p.fill_checksum(target, dst);
    }
    out
}

/// A gratuitous ARP (a request for our own address, from it) announcing `addr` at `mac`.
pub fn gratuitous_arp(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    let mut out = vec![0u8; 42];
    out[0..6].copy_from_slice(&[0xff; 6]);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&EtherType::ARP.0.to_be_bytes());
    // The 28 bytes after the Ethernet header hold the whole ARP packet.
    let mut arp = ArpPacket::new_unchecked(&mut out[14..]);
    arp.set_ethernet_ipv4();
    arp.set_operation(ArpOperation::REQUEST);
    arp.set_source_hardware_addr(EthernetAddress(mac));
    arp.set_source_protocol_addr(addr);
    arp.set_target_hardware_addr(EthernetAddress([0; 6]));
    arp.set_target_protocol_addr(addr);
    out.resize(60, 0);
    out
}

/// An unsolicited neighbour advertisement of `addr` at `mac` to all nodes.
pub fn unsolicited_na(mac: [u8; 6], addr: Ipv6Addr) -> Vec<u8> {
    let mut l2 = [0u8; 14];
    l2[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    neighbor_advert(
        &l2,
        mac,
        EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
        addr,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        NA_OVERRIDE,
    )
}

/// The announcements to send at start for `owned` addresses on a port with `mac`.
pub fn announcements(mac: [u8; 6], owned: &[IpAddr]) -> Vec<Vec<u8>> {
    owned
        .iter()
        .map(|a| match a {
            IpAddr::V4(v4) => gratuitous_arp(mac, *v4),
            IpAddr::V6(v6) => unsolicited_na(mac, *v6),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
    const ASKER: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0xff; 6];
        p.extend_from_slice(&ASKER);
        p.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        p.extend_from_slice(&ASKER);
        p.extend_from_slice(&[10, 0, 0, 99]);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&target.octets());
        p
    }

    fn neighbor_solicit(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let mut l2 = [0u8; 14];
        l2[0..6].copy_from_slice(&[0x33, 0x33, 0xff, 0, 0, 1]);
        l2[6..12].copy_from_slice(&ASKER);
        l2[12..14].copy_from_slice(&[0x86, 0xdd]);
        let mut out = l2.to_vec();
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&32u16.to_be_bytes());
        ip[6] = 58;
        ip[7] = 255;
        ip[8..24].copy_from_slice(&src.octets());
        let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
        ip[24..40].copy_from_slice(&dst.octets());
        out.extend_from_slice(&ip);
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&ASKER);
        let at = out.len();
        out.extend_from_slice(&icmp);
        let mut p = Icmpv6Packet::new_checked(&mut out[at..]).expect("icmp");
        p.fill_checksum(src, dst);
        out
    }

    #[test]
    fn arp_for_an_owned_address_is_answered() {
        let owned = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];
        let reply = answer(&arp_request(Ipv4Addr::new(10, 0, 0, 1)), OURS, &owned).expect("reply");
        assert_eq!(&reply[0..6], &ASKER);
        assert_eq!(&reply[6..12], &OURS);
        assert_eq!(&reply[20..22], &[0, 2], "opcode reply");
        assert_eq!(&reply[22..28], &OURS, "sender hardware = ours");
        assert_eq!(&reply[28..32], &[10, 0, 0, 1]);
        assert_eq!(&reply[32..38], &ASKER);
        assert_eq!(&reply[38..42], &[10, 0, 0, 99]);
        assert!(answer(&arp_request(Ipv4Addr::new(10, 0, 0, 2)), OURS, &owned).is_none());
        // A reply is not answered.
        let mut not_req = arp_request(Ipv4Addr::new(10, 0, 0, 1));
        not_req[21] = 2;
        assert!(answer(&not_req, OURS, &owned).is_none());
        // Truncated requests are ignored, never a panic.
        let full = arp_request(Ipv4Addr::new(10, 0, 0, 1));
        for n in 0..full.len() {
            let _ = answer(&full[..n], OURS, &owned);
        }
    }

    #[test]
    fn neighbor_solicitation_gets_a_valid_advertisement() {
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let asker = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9);
        let owned = [IpAddr::V6(vip)];
        let reply = answer(&neighbor_solicit(asker, vip), OURS, &owned).expect("advert");
        let p = SlicedPacket::from_ethernet(&reply).expect("valid");
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!("ipv6")
        };
        assert_eq!(ip.header().source_addr(), vip);
        assert_eq!(ip.header().destination_addr(), asker);
        assert_eq!(ip.header().hop_limit(), 255);
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!("icmpv6")
        };
        assert_eq!(reply[14 + 40], 136, "a neighbour advertisement");
        assert_eq!(
            reply[14 + 40 + 4] & 0x60,
            0x60,
            "solicited and override flags"
        );
        let expect = icmp
            .icmp_type()
            .calc_checksum(vip.octets(), asker.octets(), icmp.payload())
            .expect("checksum");
        assert_eq!(icmp.checksum(), expect, "ICMPv6 checksum");
        assert_eq!(&reply[0..6], &ASKER);
        assert_eq!(
            &reply[reply.len() - 6..],
            &OURS,
            "target link-layer address option"
        );
        let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        assert!(answer(&neighbor_solicit(asker, other), OURS, &owned).is_none());
        let mut bad = neighbor_solicit(asker, vip);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(answer(&bad, OURS, &owned).is_none(), "bad checksum ignored");
    }

    #[test]
    fn announcements_cover_every_owned_address() {
        let owned = [
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ];
        let a = announcements(OURS, &owned);
        assert_eq!(a.len(), 2);
        assert_eq!(&a[0][28..32], &[10, 0, 0, 1], "gratuitous: sender = target");
        assert_eq!(&a[0][38..42], &[10, 0, 0, 1]);
        assert_eq!(&a[0][20..22], &[0, 1], "a request");
        assert_eq!(&a[0][14..16], &[0, 1], "ethernet hardware type");
        let p = SlicedPacket::from_ethernet(&a[1]).expect("valid NA");
        assert!(matches!(p.net, Some(NetSlice::Ipv6(_))));
    }
}
