//! Validation of a received frame down to the layer-4 header, into the offsets and fields
//! every rewrite reads. Offsets count from the start of the frame's data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use l4lab_wire::{Error as WireError, IpProtocol, Ipv4Packet, Ipv6Packet};

use crate::dataplane::verdict::DropReason;

/// Ethernet header length without a VLAN tag.
pub const ETH_LEN: usize = 14;
/// Ethertypes.
pub const ETH_IPV4: u16 = 0x0800;
/// IPv6 ethertype.
pub const ETH_IPV6: u16 = 0x86dd;
/// ARP ethertype.
pub const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;

/// Reads a big-endian u16 at `at`; 0 past the end (callers check lengths first).
#[inline]
pub fn rd16(d: &[u8], at: usize) -> u16 {
    match d.get(at..at + 2) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => 0,
    }
}

/// Reads a big-endian u32 at `at`; 0 past the end.
#[inline]
pub fn rd32(d: &[u8], at: usize) -> u32 {
    match d.get(at..at + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// Writes a big-endian u16 at `at`; nothing past the end.
#[inline]
pub fn wr16(d: &mut [u8], at: usize, v: u16) {
    if let Some(b) = d.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes bytes at `at`; nothing past the end.
#[inline]
pub fn wr(d: &mut [u8], at: usize, v: &[u8]) {
    if let Some(b) = d.get_mut(at..at + v.len()) {
        b.copy_from_slice(v);
    }
}

/// Reads an address of the family given by `v6` at `at`.
#[inline]
pub fn rd_addr(d: &[u8], at: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut a = [0u8; 16];
        if let Some(b) = d.get(at..at + 16) {
            a.copy_from_slice(b);
        }
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        let mut a = [0u8; 4];
        if let Some(b) = d.get(at..at + 4) {
            a.copy_from_slice(b);
        }
        IpAddr::V4(Ipv4Addr::from(a))
    }
}

/// Writes an address at `at`.
#[inline]
pub fn wr_addr(d: &mut [u8], at: usize, a: IpAddr) {
    match a {
        IpAddr::V4(a) => wr(d, at, &a.octets()),
        IpAddr::V6(a) => wr(d, at, &a.octets()),
    }
}

/// What the link layer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    /// Length of the Ethernet header (14, or 18 with a VLAN tag).
    pub len: usize,
    /// The (inner) ethertype.
    pub ethertype: u16,
    /// Destination MAC is multicast or broadcast.
    pub multicast: bool,
}

/// Parses the Ethernet header (one optional 802.1Q tag).
pub fn parse_l2(d: &[u8]) -> Result<L2, DropReason> {
    if d.len() < ETH_LEN {
        return Err(DropReason::Truncated);
    }
    let multicast = d[0] & 1 == 1;
    let outer = rd16(d, 12);
    let (len, ethertype) = match outer {
        ETH_VLAN => {
            if d.len() < ETH_LEN + 4 {
                return Err(DropReason::Truncated);
            }
            (ETH_LEN + 4, rd16(d, 16))
        }
        ETH_QINQ => return Err(DropReason::UnknownEthertype),
        t => (ETH_LEN, t),
    };
    if ethertype == ETH_VLAN || ethertype == ETH_QINQ {
        return Err(DropReason::UnknownEthertype);
    }
    Ok(L2 {
        len,
        ethertype,
        multicast,
    })
}

/// A validated IP packet and the offsets of its layer-4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L3 {
    /// Offset of the IP header.
    pub l3: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Offset of the layer-4 header.
    pub l4: usize,
    /// End of the IP packet (frame padding beyond it is ignored).
    pub end: usize,
    /// Upper-layer protocol.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The packet is a fragment (non-atomic).
    pub fragment: bool,
}

fn wire_err(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        _ => DropReason::BadIpHeader,
    }
}

/// Parses and validates an IPv4 header at `l3`, checksum included.
pub fn parse_ipv4(d: &[u8], l3: usize) -> Result<L3, DropReason> {
    let bytes = d.get(l3..).ok_or(DropReason::Truncated)?;
    let ip = Ipv4Packet::new_checked(bytes).map_err(wire_err)?;
    // `verify_checksum` with a fixed-step fold; `check_len` proved the header is in
    // `bytes`, and its length (IHL × 4) is a multiple of four.
    let header = bytes.get(..ip.header_len()).ok_or(DropReason::Truncated)?;
    let sum = match <&[u8; 20]>::try_from(header) {
        // No options (the common case): five fixed words, no loop.
        Ok(h) => (0..5)
            .map(|i| {
                u64::from(u32::from_be_bytes([
                    h[4 * i],
                    h[4 * i + 1],
                    h[4 * i + 2],
                    h[4 * i + 3],
                ]))
            })
            .sum(),
        Err(_) => crate::dataplane::rewrite::sum32(header),
    };
    if crate::dataplane::rewrite::fold(sum) != 0xffff {
        return Err(DropReason::BadIpChecksum);
    }
    Ok(L3 {
        l3,
        v6: false,
        l4: l3 + ip.header_len(),
        end: l3 + usize::from(ip.total_len()),
        proto: ip.protocol().0,
        src: IpAddr::V4(ip.src_addr()),
        dst: IpAddr::V4(ip.dst_addr()),
        ttl: ip.ttl(),
        fragment: ip.is_fragment(),
    })
}

/// Parses and validates an IPv6 header at `l3` and walks its extension headers.
pub fn parse_ipv6(d: &[u8], l3: usize) -> Result<L3, DropReason> {
    let bytes = d.get(l3..).ok_or(DropReason::Truncated)?;
    let ip = Ipv6Packet::new_checked(bytes).map_err(wire_err)?;
    let upper = ip.upper_layer().map_err(wire_err)?;
    let fragment = upper.fragment.is_some_and(|f| f.is_fragment());
    Ok(L3 {
        l3,
        v6: true,
        l4: l3 + upper.offset,
        end: l3 + 40 + usize::from(ip.payload_len()),
        proto: upper.protocol.0,
        src: IpAddr::V6(ip.src_addr()),
        dst: IpAddr::V6(ip.dst_addr()),
        ttl: ip.hop_limit(),
        fragment,
    })
}

/// The common frame in one pass over fixed offsets: untagged Ethernet, IPv4 without
/// options, not a fragment, header checksum right, TCP or UDP with a valid header.
/// Returns exactly what [`parse_l2`], [`parse_ipv4`] and [`parse_l4`] return for such a
/// frame; `None` for anything else, which those then parse (and drop, if need be).
#[inline]
pub fn parse_v4_fast(d: &[u8]) -> Option<(L3, L4)> {
    const IP: usize = ETH_LEN;
    const L4_AT: usize = IP + 20;
    let h: &[u8; L4_AT] = d.get(..L4_AT)?.try_into().ok()?;
    if h[12] != 0x08 || h[13] != 0x00 || h[IP] != 0x45 {
        return None;
    }
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let sum = w(IP) + w(IP + 4) + w(IP + 8) + w(IP + 12) + w(IP + 16);
    let total = usize::from(u16::from_be_bytes([h[IP + 2], h[IP + 3]]));
    // Not a fragment: MF clear and offset zero (DF may be set).
    let frag = u16::from_be_bytes([h[IP + 6], h[IP + 7]]) & 0x3fff;
    if crate::dataplane::rewrite::fold(sum) != 0xffff || total < 20 || frag != 0 {
        return None;
    }
    let end = IP + total;
    let seg = d.get(L4_AT..end)?;
    let proto = h[IP + 9];
    let l4 = match seg {
        [s0, s1, d0, d1, _, _, _, _, _, _, _, _, off, flags, ..]
            if proto == IpProtocol::TCP.0 && seg.len() >= 20 =>
        {
            let hdr_len = usize::from(off >> 4) * 4;
            if hdr_len < 20 || hdr_len > seg.len() {
                return None;
            }
            L4 {
                sport: u16::from_be_bytes([*s0, *s1]),
                dport: u16::from_be_bytes([*d0, *d1]),
                flags: *flags,
                hdr_len,
            }
        }
        [s0, s1, d0, d1, l0, l1, _, _, ..] if proto == IpProtocol::UDP.0 => {
            if usize::from(u16::from_be_bytes([*l0, *l1])) != seg.len() {
                return None;
            }
            L4 {
                sport: u16::from_be_bytes([*s0, *s1]),
                dport: u16::from_be_bytes([*d0, *d1]),
                flags: 0,
                hdr_len: 8,
            }
        }
        _ => return None,
    };
    let l3 = L3 {
        l3: IP,
        v6: false,
        l4: L4_AT,
        end,
        proto,
        src: IpAddr::V4(Ipv4Addr::new(h[26], h[27], h[28], h[29])),
        dst: IpAddr::V4(Ipv4Addr::new(h[30], h[31], h[32], h[33])),
        ttl: h[IP + 8],
        fragment: false,
    };
    Some((l3, l4))
}

/// The layer-4 fields the balancer keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4 {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP flags byte (0 for UDP).
    pub flags: u8,
    /// TCP header length (8 for UDP).
    pub hdr_len: usize,
}

/// Validates a TCP or UDP header in `d[l3.l4..l3.end]`.
pub fn parse_l4(d: &[u8], l3: &L3) -> Result<L4, DropReason> {
    let seg = d.get(l3.l4..l3.end).ok_or(DropReason::Truncated)?;
    if l3.proto == IpProtocol::TCP.0 {
        if seg.len() < 20 {
            return Err(DropReason::Truncated);
        }
        let hdr_len = usize::from(seg[12] >> 4) * 4;
        if hdr_len < 20 || hdr_len > seg.len() {
            return Err(DropReason::BadL4Header);
        }
        Ok(L4 {
            sport: rd16(seg, 0),
            dport: rd16(seg, 2),
            flags: seg[13],
            hdr_len,
        })
    } else {
        if seg.len() < 8 {
            return Err(DropReason::Truncated);
        }
        let len = usize::from(rd16(seg, 4));
        if len != seg.len() {
            return Err(DropReason::BadL4Header);
        }
        Ok(L4 {
            sport: rd16(seg, 0),
            dport: rd16(seg, 2),
            flags: 0,
            hdr_len: 8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An untagged IPv4 frame: TCP (20-byte header) or UDP, `payload` bytes after it,
    /// checksums of the IP header right (the L4 checksum is not read by the parsers).
    fn frame(tcp: bool, payload: usize) -> Vec<u8> {
        let l4 = if tcp { 20 } else { 8 };
        let total = 20 + l4 + payload;
        let mut d = vec![0u8; 14 + total];
        d[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        d[12..14].copy_from_slice(&ETH_IPV4.to_be_bytes());
        let ip = &mut d[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = if tcp { 6 } else { 17 };
        ip[12..20].copy_from_slice(&[198, 51, 100, 7, 10, 0, 0, 100]);
        let sum = l4lab_wire::checksum::data(&d[14..34]);
        d[24..26].copy_from_slice(&(!sum).to_be_bytes());
        let seg = &mut d[34..];
        seg[..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        if tcp {
            seg[12] = 5 << 4;
            seg[13] = 0x10;
        } else {
            seg[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        }
        d
    }

    /// What the general parsers make of a frame, for the frames the fast path claims.
    fn general(d: &[u8]) -> Option<(L3, L4)> {
        let l2 = parse_l2(d).ok()?;
        if l2.ethertype != ETH_IPV4 || l2.len != ETH_LEN {
            return None;
        }
        let l3 = parse_ipv4(d, l2.len).ok()?;
        let ok = !l3.fragment
            && l3.l4 == l3.l3 + 20
            && (l3.proto == IpProtocol::TCP.0 || l3.proto == IpProtocol::UDP.0);
        if !ok {
            return None;
        }
        Some((l3, parse_l4(d, &l3).ok()?))
    }

    #[test]
    fn fast_path_takes_the_common_frames() {
        for (tcp, payload) in [(true, 0), (true, 18), (false, 0), (false, 5)] {
            let d = frame(tcp, payload);
            assert!(parse_v4_fast(&d).is_some());
            assert_eq!(parse_v4_fast(&d), general(&d));
        }
    }

    proptest::proptest! {
        /// Wherever the one-pass parser answers, it answers what the general parsers do;
        /// and it answers for every untagged, unfragmented, option-free IPv4 TCP/UDP
        /// frame they accept.
        #[test]
        fn fast_path_agrees_with_the_general_parsers(
            tcp in proptest::prelude::any::<bool>(),
            payload in 0usize..40,
            edits in proptest::collection::vec((0usize..80, proptest::prelude::any::<u8>()), 0..4),
            fix_ip_checksum in proptest::prelude::any::<bool>(),
            cut in 0usize..8,
        ) {
            let mut d = frame(tcp, payload);
            for (at, v) in edits {
                if let Some(b) = d.get_mut(at) {
                    *b = v;
                }
            }
            if fix_ip_checksum {
                d[24..26].copy_from_slice(&[0, 0]);
                let sum = l4lab_wire::checksum::data(&d[14..34]);
                d[24..26].copy_from_slice(&(!sum).to_be_bytes());
            }
            d.truncate(d.len().saturating_sub(cut));
            proptest::prop_assert_eq!(parse_v4_fast(&d), general(&d));
        }
    }
}
