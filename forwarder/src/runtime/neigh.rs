//! Neighbours, on the master: ARP replies and IPv6 neighbour advertisements for the
//! addresses the forwarder owns (VIPs, local addresses), the gratuitous ARP / unsolicited
//! advertisements it sends at start, and next-hop resolution ([`Resolver`]): ARP requests
//! and neighbour solicitations for the configured gateways (and, where asked, the real
//! servers), learning their MACs from what comes back. Pure functions and state over bytes
//! and a caller's clock, so all of it is tested without the EAL. A VLAN tag in a request
//! is kept in the answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use l4lab_wire::{
    ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame, Icmpv6Message,
    Icmpv6Packet, Ipv6Packet,
};

const ICMPV6: u8 = 58;
/// NDP option: source link-layer address.
const OPT_SOURCE_LLA: u8 = 1;
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

/// A broadcast ARP request for `target`, from `sender` at `mac`.
pub fn arp_request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut out = gratuitous_arp(mac, sender);
    let mut arp = ArpPacket::new_unchecked(&mut out[14..42]);
    arp.set_target_protocol_addr(target);
    out
}

/// A neighbour solicitation for `target` from `src` at `mac`, sent to the target's
/// solicited-node multicast group with our link-layer address as an option.
pub fn neighbor_solicit(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    const ICMP_LEN: usize = 8 + 16 + 8;
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut out = vec![0u8; 14 + 40 + ICMP_LEN];
    out[0..6].copy_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    let ip = &mut out[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(ICMP_LEN as u16).to_be_bytes());
    ip[6] = ICMPV6;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&group.octets());
    let icmp = &mut out[54..];
    icmp[0] = Icmpv6Message::NEIGHBOR_SOLICIT.0;
    icmp[8..24].copy_from_slice(&t);
    icmp[24] = OPT_SOURCE_LLA;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    if let Ok(mut p) = Icmpv6Packet::new_checked(&mut out[54..]) {
        p.fill_checksum(src, group);
    }
    out
}

/// The (address, MAC) a neighbour frame vouches for: the sender of an ARP request or
/// reply, the target of a neighbour advertisement with a target link-layer address, the
/// source of a solicitation with a source link-layer address. ICMPv6 must have hop limit
/// 255 and a valid checksum; anything else is `None`.
pub fn learn(frame: &[u8]) -> Option<(IpAddr, [u8; 6])> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = eth.l3_offset();
    match eth.effective_ethertype() {
        EtherType::ARP => {
            let arp = ArpPacket::new_checked(&frame[l3..]).ok()?;
            let ip = arp.source_protocol_addr();
            let mac = arp.source_hardware_addr().0;
            let usable = (arp.operation() == ArpOperation::REQUEST
                || arp.operation() == ArpOperation::REPLY)
                && !ip.is_unspecified()
                && mac != [0; 6]
                && mac[0] & 1 == 0;
            usable.then_some((IpAddr::V4(ip), mac))
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(&frame[l3..]).ok()?;
            if ip.next_header() != l4lab_wire::IpProtocol(ICMPV6) || ip.hop_limit() != 255 {
                return None;
            }
            let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
            if icmp.msg_code() != 0 || !icmp.verify_checksum(ip.src_addr(), ip.dst_addr()) {
                return None;
            }
            let (addr, want) = match icmp.msg_type() {
                Icmpv6Message::NEIGHBOR_ADVERT => {
                    let t = <[u8; 16]>::try_from(icmp.data().get(..16)?).ok()?;
                    (Ipv6Addr::from(t), OPT_TARGET_LLA)
                }
                Icmpv6Message::NEIGHBOR_SOLICIT if !ip.src_addr().is_unspecified() => {
                    (ip.src_addr(), OPT_SOURCE_LLA)
                }
                _ => return None,
            };
            // Options after the 16-byte target: type, length in units of 8 bytes.
            let mut opts = icmp.data().get(16..)?;
            while opts.len() >= 8 {
                let len = usize::from(opts[1]) * 8;
                if len == 0 || len > opts.len() {
                    return None;
                }
                if opts[0] == want && len == 8 {
                    let mac = <[u8; 6]>::try_from(&opts[2..8]).ok()?;
                    return (mac[0] & 1 == 0).then_some((IpAddr::V6(addr), mac));
                }
                opts = &opts[len..];
            }
            None
        }
        _ => None,
    }
}

/// Why an address is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The next hop of a port (plan port index) for everything not sent to a real
    /// server's own MAC.
    Gateway(usize),
    /// A real server reached directly.
    RealServer,
}

/// A resolved MAC that the workers must learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// A port's gateway MAC.
    Gateway {
        /// Plan port index.
        port: usize,
        /// The MAC.
        mac: [u8; 6],
    },
    /// Every real server at this address.
    RealServer {
        /// The address.
        addr: IpAddr,
        /// The MAC.
        mac: [u8; 6],
    },
}

/// One address being resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The address.
    pub addr: IpAddr,
    /// The port (plan index) requests for it leave by.
    pub port: usize,
    /// Why.
    pub roles: Vec<Role>,
    /// The MAC, once learned.
    pub mac: Option<[u8; 6]>,
    /// Requests sent.
    pub requests: u64,
    /// When the next request is due (caller's clock).
    next: Duration,
}

/// Next-hop resolution state: which addresses to resolve, what was learned, when to ask
/// again. Unresolved addresses are asked every [`Resolver::RETRY`]; resolved ones are
/// refreshed every [`Resolver::REFRESH`]; a changed MAC is an update again.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    entries: Vec<Entry>,
}

impl Resolver {
    /// Interval between requests for an unresolved address.
    pub const RETRY: Duration = Duration::from_secs(1);
    /// Interval between refreshes of a resolved one.
    pub const REFRESH: Duration = Duration::from_secs(30);

    /// Sets what to resolve: (address, port, role) triples; an address keeps what was
    /// learned about it; addresses no longer listed are forgotten.
    pub fn set_targets(&mut self, targets: &[(IpAddr, usize, Role)]) {
        let mut next: Vec<Entry> = Vec::new();
        for &(addr, port, role) in targets {
            if let Some(e) = next.iter_mut().find(|e| e.addr == addr) {
                if !e.roles.contains(&role) {
                    e.roles.push(role);
                }
                continue;
            }
            let mut e = self
                .entries
                .iter()
                .find(|e| e.addr == addr)
                .cloned()
                .unwrap_or(Entry {
                    addr,
                    port,
                    roles: Vec::new(),
                    mac: None,
                    requests: 0,
                    next: Duration::ZERO,
                });
            e.port = port;
            e.roles = vec![role];
            next.push(e);
        }
        self.entries = next;
    }

    /// The addresses whose request is due at `now`, with the port to ask on; each is
    /// rescheduled.
    pub fn due(&mut self, now: Duration) -> Vec<(usize, IpAddr)> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            if now >= e.next {
                out.push((e.port, e.addr));
                e.requests += 1;
                e.next = now
                    + if e.mac.is_some() {
                        Self::REFRESH
                    } else {
                        Self::RETRY
                    };
            }
        }
        out
    }

    /// Takes in what a frame vouched for: the updates the workers need when `addr` is a
    /// target whose MAC is new or changed.
    pub fn learn(&mut self, addr: IpAddr, mac: [u8; 6]) -> Vec<Update> {
        let Some(e) = self.entries.iter_mut().find(|e| e.addr == addr) else {
            return Vec::new();
        };
        if e.mac == Some(mac) {
            return Vec::new();
        }
        e.mac = Some(mac);
        e.roles
            .iter()
            .map(|r| match *r {
                Role::Gateway(port) => Update::Gateway { port, mac },
                Role::RealServer => Update::RealServer { addr, mac },
            })
            .collect()
    }

    /// The MAC learned for `addr`, if any.
    pub fn mac_of(&self, addr: IpAddr) -> Option<[u8; 6]> {
        self.entries
            .iter()
            .find(|e| e.addr == addr)
            .and_then(|e| e.mac)
    }

    /// Every address being resolved.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
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

    #[test]
    fn arp_request_asks_for_the_target_and_its_reply_is_learned() {
        let req = super::arp_request(OURS, Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 1));
        let p = SlicedPacket::from_ethernet(&req).expect("parses");
        assert_eq!(p.link.as_ref().map(|l| l.to_header().is_some()), Some(true));
        let arp = ArpPacket::new_checked(&req[14..]).expect("arp");
        assert_eq!(arp.operation(), ArpOperation::REQUEST);
        assert_eq!(arp.source_protocol_addr(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(arp.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(&req[0..6], &[0xff; 6], "broadcast");
        // The gateway's answer: learned as the gateway's MAC.
        let mut reply = req.clone();
        {
            let mut a = ArpPacket::new_checked(&mut reply[14..]).expect("arp");
            a.set_operation(ArpOperation::REPLY);
            a.set_source_hardware_addr(EthernetAddress(ASKER));
            a.set_source_protocol_addr(Ipv4Addr::new(10, 0, 0, 1));
        }
        assert_eq!(
            learn(&reply),
            Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), ASKER))
        );
        // A request vouches for its sender too; garbage for nothing.
        assert_eq!(
            learn(&arp_request(Ipv4Addr::new(10, 0, 0, 99))),
            Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 99)), ASKER))
        );
        assert_eq!(learn(&reply[..30]), None);
        assert_eq!(learn(&[0u8; 60]), None);
    }

    #[test]
    fn solicitation_is_valid_and_advertisements_are_learned() {
        let src: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::1:2:3".parse().unwrap();
        let ns = super::neighbor_solicit(OURS, src, target);
        let p = SlicedPacket::from_ethernet(&ns).expect("parses");
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!("IPv6")
        };
        assert_eq!(
            ip.header().destination_addr(),
            "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap(),
            "solicited-node group"
        );
        assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 0x02, 0x00, 0x03]);
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!("ICMPv6")
        };
        let h = icmp.header();
        assert_eq!(
            h.checksum,
            h.icmp_type
                .calc_checksum(
                    src.octets(),
                    ip.header().destination_addr().octets(),
                    icmp.payload()
                )
                .unwrap()
        );
        // Our own solicitation vouches for us (source link-layer option).
        assert_eq!(learn(&ns), Some((IpAddr::V6(src), OURS)));
        // The target's advertisement, built by the same code the answers use.
        let na = neighbor_advert(
            &ns[..14],
            ASKER,
            EthernetAddress(OURS),
            target,
            src,
            NA_SOLICITED,
        );
        assert_eq!(learn(&na), Some((IpAddr::V6(target), ASKER)));
        // A corrupted checksum is not believed.
        let mut bad = na.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(learn(&bad), None);
    }

    #[test]
    fn resolver_retries_refreshes_and_reports_changes() {
        let gw = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let rs = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 20));
        let mut r = Resolver::default();
        r.set_targets(&[
            (gw, 0, Role::Gateway(0)),
            (rs, 0, Role::RealServer),
            (gw, 0, Role::RealServer),
        ]);
        let t = Duration::from_millis;
        assert_eq!(r.due(t(0)), vec![(0, gw), (0, rs)]);
        assert!(r.due(t(500)).is_empty(), "not before the retry interval");
        assert_eq!(r.due(t(1000)).len(), 2, "unresolved: asked again");
        // An answer from something we do not resolve changes nothing.
        assert!(r
            .learn(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), ASKER)
            .is_empty());
        assert_eq!(
            r.learn(gw, ASKER),
            vec![
                Update::Gateway {
                    port: 0,
                    mac: ASKER
                },
                Update::RealServer {
                    addr: gw,
                    mac: ASKER
                }
            ]
        );
        assert!(
            r.learn(gw, ASKER).is_empty(),
            "the same MAC again is no news"
        );
        assert_eq!(r.mac_of(gw), Some(ASKER));
        // The request already scheduled goes out; after it, a resolved address waits the
        // refresh interval while an unresolved one keeps retrying.
        assert_eq!(r.due(t(2000)), vec![(0, gw), (0, rs)]);
        assert_eq!(r.due(t(3000)), vec![(0, rs)]);
        assert_eq!(r.due(t(2000) + Resolver::REFRESH).first(), Some(&(0, gw)));
        assert_eq!(r.learn(gw, OURS).len(), 2, "a moved MAC is news");
        // New targets keep what was learned.
        r.set_targets(&[(gw, 1, Role::Gateway(1))]);
        assert_eq!(r.entries().len(), 1);
        assert_eq!(r.mac_of(gw), Some(OURS));
        assert_eq!(r.entries()[0].port, 1);
    }
}
