//! The in-place header rewrites of every mode: address/port translation with RFC 1624
//! incremental checksums (FULLNAT, NAT), IPv6 ↔ IPv4 translation (NAT64, RFC 7915
//! basics) and IP-in-IP encapsulation (TUNNEL).

use std::net::IpAddr;

use l4lab_wire::{checksum, ChecksumCaps, IpProtocol};

use crate::dataplane::frame::Frame;
use crate::dataplane::parse::{rd16, wr, wr16, wr_addr, ETH_IPV4, ETH_IPV6, L3};
use crate::dataplane::verdict::DropReason;

/// An RFC 1624 accumulator: the sum of `~old` and `new` words of every changed field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delta(u64);

impl Delta {
    /// Records that `old` (at an even offset of the summed data) becomes `new`.
    #[inline]
    pub fn change(&mut self, old: &[u8], new: &[u8]) {
        self.0 += u64::from(!checksum::data(old)) + u64::from(checksum::data(new));
    }

    /// Records an address change: `Σ ~old_word + Σ new_word` on integers (each
    /// complemented word is `0xffff − word`), no byte loop and no fold.
    #[inline]
    pub fn addr(&mut self, old: IpAddr, new: IpAddr) {
        let (n_old, s_old) = addr_words(old);
        let (_, s_new) = addr_words(new);
        self.0 += n_old * 0xffff - s_old + s_new;
    }

    /// Records a 16-bit word change.
    #[inline]
    pub fn word(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    /// The checksum field after the recorded changes.
    #[inline]
    pub fn apply(self, cks: u16) -> u16 {
        !fold(u64::from(!cks) + self.0)
    }
}

/// The unfolded one's-complement sum of a header whose length is a multiple of four
/// (big-endian 32-bit words: 2^16 ≡ 1 mod 0xffff). `fold` of it equals
/// `checksum::data`.
#[inline]
pub(crate) fn sum32(b: &[u8]) -> u64 {
    b.chunks_exact(4)
        .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
        .sum()
}

/// The sum of the two 16-bit halves of `x`.
#[inline]
fn halves(x: u32) -> u64 {
    u64::from(x >> 16) + u64::from(x & 0xffff)
}

/// The number of 16-bit words of an address and their (unfolded) sum.
#[inline]
fn addr_words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(a) => (2, halves(u32::from(a))),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            let s = halves(x as u32)
                + halves((x >> 32) as u32)
                + halves((x >> 64) as u32)
                + halves((x >> 96) as u32);
            (8, s)
        }
    }
}

/// One's-complement fold of a sum to 16 bits in a fixed number of steps; equal to
/// `checksum::fold` (the representative of the sum modulo 0xffff in `1..=0xffff`, or 0
/// for 0).
#[inline]
pub(crate) fn fold(s: u64) -> u16 {
    let s = (s & 0xffff_ffff) + (s >> 32); // < 2^33
    let s = (s & 0xffff) + (s >> 16); // < 2^18
    let s = (s & 0xffff) + (s >> 16); // < 2^16 + 4
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// Offset of the L4 checksum field inside the L4 header (TCP 16, UDP 6).
#[inline]
pub fn l4_csum_off(proto: u8) -> usize {
    if proto == IpProtocol::TCP.0 {
        16
    } else {
        6
    }
}

/// New addresses and ports for one packet.
#[derive(Debug, Clone, Copy)]
pub struct Nat {
    /// New source address.
    pub src: IpAddr,
    /// New source port.
    pub sport: u16,
    /// New destination address.
    pub dst: IpAddr,
    /// New destination port.
    pub dport: u16,
}

/// Rewrites addresses and ports of a same-family TCP/UDP packet, decrements the TTL by
/// `ttl_dec`, and updates the IPv4 and L4 checksums incrementally (or writes the
/// pseudo-header sum / zero where `caps` offloads them). `full_l4` recomputes the L4
/// checksum from scratch instead (after TOA insertion).
#[allow(clippy::too_many_arguments)]
pub fn rewrite_same_family(
    d: &mut [u8],
    l3: &L3,
    sport: u16,
    dport: u16,
    n: &Nat,
    ttl_dec: u8,
    caps: ChecksumCaps,
    full_l4: bool,
) {
    if !rewrite_v4(d, l3, sport, dport, n, ttl_dec, caps, full_l4) {
        rewrite_general(d, l3, sport, dport, n, ttl_dec, caps, full_l4);
    }
}

/// [`rewrite_same_family`] for every case.
#[allow(clippy::too_many_arguments)]
fn rewrite_general(
    d: &mut [u8],
    l3: &L3,
    sport: u16,
    dport: u16,
    n: &Nat,
    ttl_dec: u8,
    caps: ChecksumCaps,
    full_l4: bool,
) {
    let proto = l3.proto;
    let mut addrs = Delta::default();
    if l3.src != n.src {
        addrs.addr(l3.src, n.src);
    }
    if l3.dst != n.dst {
        addrs.addr(l3.dst, n.dst);
    }
    let (src_at, dst_at) = if l3.v6 { (8, 24) } else { (12, 16) };
    wr_addr(d, l3.l3 + src_at, n.src);
    wr_addr(d, l3.l3 + dst_at, n.dst);
    // IP header: addresses and TTL.
    if l3.v6 {
        if let Some(h) = d.get_mut(l3.l3 + 7) {
            *h = h.saturating_sub(ttl_dec);
        }
    } else {
        let mut ip = addrs;
        let ttl_at = l3.l3 + 8;
        let old = rd16(d, ttl_at);
        let new_ttl = l3.ttl.saturating_sub(ttl_dec);
        let new = u16::from_be_bytes([new_ttl, proto]);
        ip.word(old, new);
        wr16(d, ttl_at, new);
        let c = l3.l3 + 10;
        if caps.ipv4 {
            wr16(d, c, 0);
        } else if !l3.header_len_ok() {
            fill_ipv4_checksum(d, l3);
        } else {
            let v = ip.apply(rd16(d, c));
            wr16(d, c, v);
        }
    }
    // L4: ports and pseudo-header.
    let l4 = l3.l4;
    let tcp = proto == IpProtocol::TCP.0;
    let offload = if tcp { caps.tcp } else { caps.udp };
    let c = l4 + l4_csum_off(proto);
    let old_cks = rd16(d, c);
    wr16(d, l4, n.sport);
    wr16(d, l4 + 2, n.dport);
    if offload {
        let len = (l3.end - l4) as u32;
        wr16(
            d,
            c,
            checksum::pseudo_header(n.src, n.dst, IpProtocol(proto), len),
        );
    } else if full_l4 || (!tcp && old_cks == 0 && l3.v6) {
        fill_l4_checksum(d, l4, l3.end, proto, n.src, n.dst);
    } else if !tcp && old_cks == 0 {
        // IPv4 UDP without checksum: nothing to keep up to date.
    } else {
        let mut l4d = addrs;
        l4d.word(sport, n.sport);
        l4d.word(dport, n.dport);
        let mut v = l4d.apply(old_cks);
        if !tcp && v == 0 {
            v = 0xffff;
        }
        wr16(d, c, v);
    }
}

/// The common case of [`rewrite_same_family`] on fixed offsets: IPv4 to IPv4, checksums
/// in software, TCP or UDP with a checksum, no full recompute. Returns `false` (having
/// changed nothing) for anything else, which the general path then handles; the result
/// is bit for bit the general path's.
#[allow(clippy::too_many_arguments)]
#[inline]
fn rewrite_v4(
    d: &mut [u8],
    l3: &L3,
    sport: u16,
    dport: u16,
    n: &Nat,
    ttl_dec: u8,
    caps: ChecksumCaps,
    full_l4: bool,
) -> bool {
    let (IpAddr::V4(os), IpAddr::V4(od), IpAddr::V4(ns), IpAddr::V4(nd)) =
        (l3.src, l3.dst, n.src, n.dst)
    else {
        return false;
    };
    let offload = if l3.proto == IpProtocol::TCP.0 {
        caps.tcp
    } else {
        caps.udp
    };
    if caps.ipv4 || offload || full_l4 {
        return false;
    }
    let old = V4Ends {
        src: u32::from(os),
        sport,
        dst: u32::from(od),
        dport,
    };
    let new = V4Ends {
        src: u32::from(ns),
        sport: n.sport,
        dst: u32::from(nd),
        dport: n.dport,
    };
    rewrite_v4_sw(d, l3, &old, &new, ttl_dec)
}

/// The addresses and ports of an IPv4 TCP/UDP packet, as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Ends {
    /// Source address.
    pub src: u32,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: u32,
    /// Destination port.
    pub dport: u16,
}

/// [`rewrite_same_family`] from `old` to `new` for an IPv4 packet without options,
/// checksums in software, TCP or UDP with a checksum, no full recompute, over one
/// fixed window (the IP header and the first 18 or 8 bytes after it). Returns `false`,
/// having changed nothing, for any other packet; otherwise the result is bit for bit
/// the general path's.
#[inline(always)]
pub fn rewrite_v4_sw(d: &mut [u8], l3: &L3, old: &V4Ends, new: &V4Ends, ttl_dec: u8) -> bool {
    let tcp = l3.proto == IpProtocol::TCP.0;
    if l3.v6 || l3.l4 != l3.l3 + 20 {
        return false;
    }
    let (len, c) = if tcp { (38, 36) } else { (28, 26) };
    let Some(w) = d.get_mut(l3.l3..l3.l3 + len) else {
        return false;
    };
    let old_cks = u16::from_be_bytes([w[c], w[c + 1]]);
    if !tcp && old_cks == 0 {
        return false;
    }
    // Whole 32-bit words (2^16 ≡ 1 mod 0xffff): `!old + new` is congruent to the
    // per-half sum `2 × 0xffff − halves(old) + halves(new)` of `Delta::addr`, and zero
    // exactly when that is (old all ones, new zero), so the folded result is the same.
    let mut addrs = Delta::default();
    if old.src != new.src {
        addrs.0 += u64::from(!old.src) + u64::from(new.src);
    }
    if old.dst != new.dst {
        addrs.0 += u64::from(!old.dst) + u64::from(new.dst);
    }
    let old_ttl = u16::from_be_bytes([w[8], w[9]]);
    let new_ttl = u16::from_be_bytes([l3.ttl.saturating_sub(ttl_dec), l3.proto]);
    let mut ipd = addrs;
    ipd.word(old_ttl, new_ttl);
    let ip_cks = ipd.apply(u16::from_be_bytes([w[10], w[11]]));
    let mut l4d = addrs;
    l4d.word(old.sport, new.sport);
    l4d.word(old.dport, new.dport);
    let mut v = l4d.apply(old_cks);
    if !tcp && v == 0 {
        v = 0xffff;
    }
    w[8..10].copy_from_slice(&new_ttl.to_be_bytes());
    w[10..12].copy_from_slice(&ip_cks.to_be_bytes());
    w[12..16].copy_from_slice(&new.src.to_be_bytes());
    w[16..20].copy_from_slice(&new.dst.to_be_bytes());
    w[20..22].copy_from_slice(&new.sport.to_be_bytes());
    w[22..24].copy_from_slice(&new.dport.to_be_bytes());
    w[c..c + 2].copy_from_slice(&v.to_be_bytes());
    true
}

impl L3 {
    /// Always true for parsed headers; kept so that a header whose length field cannot be
    /// trusted falls back to a full recompute.
    #[inline]
    fn header_len_ok(&self) -> bool {
        self.l4 >= self.l3 + 20
    }
}

/// Computes the IPv4 header checksum of the header at `l3.l3` from scratch.
pub fn fill_ipv4_checksum(d: &mut [u8], l3: &L3) {
    let (a, b) = (l3.l3, l3.l4);
    wr16(d, a + 10, 0);
    if let Some(h) = d.get(a..b) {
        let v = !checksum::data(h);
        wr16(d, a + 10, v);
    }
}

/// Computes a TCP/UDP checksum of `d[l4..end]` from scratch.
pub fn fill_l4_checksum(d: &mut [u8], l4: usize, end: usize, proto: u8, src: IpAddr, dst: IpAddr) {
    let c = l4 + l4_csum_off(proto);
    wr16(d, c, 0);
    let Some(seg) = d.get(l4..end) else {
        return;
    };
    let pseudo = checksum::pseudo_header(src, dst, IpProtocol(proto), seg.len() as u32);
    let mut v = checksum::finish(&[pseudo, checksum::data(seg)]);
    if proto == IpProtocol::UDP.0 && v == 0 {
        v = 0xffff;
    }
    wr16(d, c, v);
}

/// Writes the source and destination MACs.
#[inline]
pub fn set_macs(d: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    wr(d, 0, &dst);
    wr(d, 6, &src);
}

/// NAT64 inbound: the IPv6 packet (no extension headers) becomes an IPv4 packet
/// `n.src:n.sport → n.dst:n.dport` with TTL = hop limit − 1. `l2` is the Ethernet length.
pub fn nat64_6to4(
    f: &mut Frame<'_>,
    l2: usize,
    l3: &L3,
    sport: u16,
    dport: u16,
    n: &Nat,
    caps: ChecksumCaps,
) -> Result<(), DropReason> {
    if l3.l4 != l3.l3 + 40 {
        return Err(DropReason::Unsupported);
    }
    let payload = l3.end - l3.l4;
    let total = u16::try_from(payload + 20).map_err(|_| DropReason::Unsupported)?;
    let d = f.data();
    let tc = ((rd16(d, l3.l3) >> 4) & 0xff) as u8;
    let proto = l3.proto;
    let tcp = proto == IpProtocol::TCP.0;
    let c_off = l3.l4 + l4_csum_off(proto);
    let old_cks = rd16(d, c_off);
    let mut delta = Delta::default();
    delta.addr(l3.src, n.src);
    delta.addr(l3.dst, n.dst);
    delta.word(sport, n.sport);
    delta.word(dport, n.dport);
    f.remove_gap(l3.l3, 20).map_err(|_| DropReason::Truncated)?;
    let d = f.data_mut();
    let h = l3.l3;
    let l4 = h + 20;
    let end = l3.end - 20;
    wr(d, h, &[0x45, tc]);
    wr16(d, h + 2, total);
    wr16(d, h + 4, 0);
    wr16(d, h + 6, 0x4000);
    wr(d, h + 8, &[l3.ttl.saturating_sub(1), proto]);
    wr16(d, h + 10, 0);
    wr_addr(d, h + 12, n.src);
    wr_addr(d, h + 16, n.dst);
    if !caps.ipv4 {
        if let Some(hdr) = d.get(h..h + 20) {
            let v = !checksum::data(hdr);
            wr16(d, h + 10, v);
        }
    }
    wr16(d, l2 - 2, ETH_IPV4);
    wr16(d, l4, n.sport);
    wr16(d, l4 + 2, n.dport);
    let offload = if tcp { caps.tcp } else { caps.udp };
    let c = l4 + l4_csum_off(proto);
    if offload {
        let len = (end - l4) as u32;
        wr16(
            d,
            c,
            checksum::pseudo_header(n.src, n.dst, IpProtocol(proto), len),
        );
    } else {
        let mut v = delta.apply(old_cks);
        if !tcp && v == 0 {
            v = 0xffff;
        }
        wr16(d, c, v);
    }
    Ok(())
}

/// NAT64 outbound: the IPv4 packet becomes an IPv6 packet `n.src:n.sport → n.dst:n.dport`
/// with hop limit = TTL − 1 (IPv4 options are dropped).
pub fn nat64_4to6(
    f: &mut Frame<'_>,
    l2: usize,
    l3: &L3,
    sport: u16,
    dport: u16,
    n: &Nat,
    caps: ChecksumCaps,
) -> Result<(), DropReason> {
    let ihl = l3.l4 - l3.l3;
    let payload = l3.end - l3.l4;
    let payload16 = u16::try_from(payload).map_err(|_| DropReason::Unsupported)?;
    let d = f.data();
    let tos = d.get(l3.l3 + 1).copied().unwrap_or(0);
    let proto = l3.proto;
    let tcp = proto == IpProtocol::TCP.0;
    let old_cks = rd16(d, l3.l4 + l4_csum_off(proto));
    let mut delta = Delta::default();
    delta.addr(l3.src, n.src);
    delta.addr(l3.dst, n.dst);
    delta.word(sport, n.sport);
    delta.word(dport, n.dport);
    if ihl < 40 {
        f.insert_gap(l3.l3, 40 - ihl)
            .map_err(|_| DropReason::TxNoRoom)?;
    } else if ihl > 40 {
        f.remove_gap(l3.l3, ihl - 40)
            .map_err(|_| DropReason::Truncated)?;
    }
    let d = f.data_mut();
    let h = l3.l3;
    let l4 = h + 40;
    let end = l4 + payload;
    wr(d, h, &[0x60 | (tos >> 4), tos << 4, 0, 0]);
    wr16(d, h + 4, payload16);
    wr(d, h + 6, &[proto, l3.ttl.saturating_sub(1)]);
    wr_addr(d, h + 8, n.src);
    wr_addr(d, h + 24, n.dst);
    wr16(d, l2 - 2, ETH_IPV6);
    wr16(d, l4, n.sport);
    wr16(d, l4 + 2, n.dport);
    let offload = if tcp { caps.tcp } else { caps.udp };
    let c = l4 + l4_csum_off(proto);
    if offload {
        let len = payload as u32;
        wr16(
            d,
            c,
            checksum::pseudo_header(n.src, n.dst, IpProtocol(proto), len),
        );
    } else if !tcp && old_cks == 0 {
        // IPv4 UDP may omit the checksum; IPv6 may not.
        fill_l4_checksum(d, l4, end, proto, n.src, n.dst);
    } else {
        let mut v = delta.apply(old_cks);
        if !tcp && v == 0 {
            v = 0xffff;
        }
        wr16(d, c, v);
    }
    Ok(())
}

/// TUNNEL: prepends an outer IPv4 (IPIP) or IPv6 header after the Ethernet header, from
/// `src` to `dst` (same family), TTL 64, DF copied from an IPv4 inner header.
pub fn encapsulate(
    f: &mut Frame<'_>,
    l2: usize,
    l3: &L3,
    src: IpAddr,
    dst: IpAddr,
    flow_hash: u32,
    caps: ChecksumCaps,
) -> Result<(), DropReason> {
    let inner_len = l3.end - l3.l3;
    let inner_proto = if l3.v6 {
        IpProtocol::IPV6.0
    } else {
        IpProtocol::IPV4.0
    };
    let d = f.data();
    let (tos, df) = if l3.v6 {
        (((rd16(d, l3.l3) >> 4) & 0xff) as u8, true)
    } else {
        (
            d.get(l3.l3 + 1).copied().unwrap_or(0),
            rd16(d, l3.l3 + 6) & 0x4000 != 0,
        )
    };
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let total = u16::try_from(inner_len + 20).map_err(|_| DropReason::Unsupported)?;
            f.insert_gap(l2, 20).map_err(|_| DropReason::TxNoRoom)?;
            let d = f.data_mut();
            let h = l2;
            wr(d, h, &[0x45, tos]);
            wr16(d, h + 2, total);
            wr16(d, h + 4, flow_hash as u16);
            wr16(d, h + 6, if df { 0x4000 } else { 0 });
            wr(d, h + 8, &[64, inner_proto]);
            wr16(d, h + 10, 0);
            wr_addr(d, h + 12, src);
            wr_addr(d, h + 16, dst);
            if !caps.ipv4 {
                if let Some(hdr) = d.get(h..h + 20) {
                    let v = !checksum::data(hdr);
                    wr16(d, h + 10, v);
                }
            }
            wr16(d, l2 - 2, ETH_IPV4);
        }
        (IpAddr::V6(_), IpAddr::V6(_)) => {
            let plen = u16::try_from(inner_len).map_err(|_| DropReason::Unsupported)?;
            f.insert_gap(l2, 40).map_err(|_| DropReason::TxNoRoom)?;
            let d = f.data_mut();
            let h = l2;
            let word = (6u32 << 28) | (u32::from(tos) << 20) | (flow_hash & 0xf_ffff);
            wr(d, h, &word.to_be_bytes());
            wr16(d, h + 4, plen);
            wr(d, h + 6, &[inner_proto, 64]);
            wr_addr(d, h + 8, src);
            wr_addr(d, h + 24, dst);
            wr16(d, l2 - 2, ETH_IPV6);
        }
        _ => return Err(DropReason::Unsupported),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_matches_full_recompute() {
        let mut data = [0x12u8, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];
        let cks = !checksum::data(&data);
        let mut delta = Delta::default();
        delta.change(&data[2..6], &[1, 2, 3, 4]);
        data[2..6].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(delta.apply(cks), !checksum::data(&data));
    }

    proptest::proptest! {
        #[test]
        fn fold_matches_the_wire_fold(s in proptest::prelude::any::<u64>()) {
            proptest::prop_assert_eq!(fold(s), checksum::fold(s));
            let small = s >> 20;
            proptest::prop_assert_eq!(fold(small), checksum::fold(small));
        }

        #[test]
        fn v4_fast_path_matches_the_general_path(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 48),
            addrs in proptest::prelude::any::<[u32; 4]>(),
            ports in proptest::prelude::any::<[u16; 2]>(),
            same in proptest::prelude::any::<[bool; 2]>(),
            tcp in proptest::prelude::any::<bool>(),
            ttl in proptest::prelude::any::<u8>(),
        ) {
            use std::net::Ipv4Addr;
            let v4 = |x: u32| IpAddr::V4(Ipv4Addr::from(x));
            let proto = if tcp { IpProtocol::TCP.0 } else { IpProtocol::UDP.0 };
            let l3 = L3 {
                l3: 0,
                v6: false,
                l4: 20,
                end: 48,
                proto,
                src: v4(addrs[0]),
                dst: v4(addrs[1]),
                ttl,
                fragment: false,
            };
            let n = Nat {
                src: if same[0] { l3.src } else { v4(addrs[2]) },
                sport: ports[0],
                dst: if same[1] { l3.dst } else { v4(addrs[3]) },
                dport: ports[1],
            };
            let (sp, dp) = (rd16(&bytes, 20), rd16(&bytes, 22));
            let mut fast = bytes.clone();
            let mut general = bytes.clone();
            let took = rewrite_v4(&mut fast, &l3, sp, dp, &n, 1, ChecksumCaps::NONE, false);
            rewrite_general(&mut general, &l3, sp, dp, &n, 1, ChecksumCaps::NONE, false);
            let udp_no_cks = !tcp && rd16(&bytes, 26) == 0;
            proptest::prop_assert_eq!(took, !udp_no_cks);
            if took {
                proptest::prop_assert_eq!(fast, general);
            }
        }

        #[test]
        fn sum32_folds_to_the_wire_sum(words in proptest::collection::vec(proptest::prelude::any::<[u8; 4]>(), 0..16)) {
            let bytes: Vec<u8> = words.concat();
            proptest::prop_assert_eq!(fold(sum32(&bytes)), checksum::data(&bytes));
        }

        #[test]
        fn addr_delta_matches_the_byte_delta(
            o4 in proptest::prelude::any::<u32>(),
            n4 in proptest::prelude::any::<u32>(),
            o6 in proptest::prelude::any::<u128>(),
            n6 in proptest::prelude::any::<u128>(),
            cks in proptest::prelude::any::<u16>(),
        ) {
            use std::net::{Ipv4Addr, Ipv6Addr};
            let v4 = |x: u32| IpAddr::V4(Ipv4Addr::from(x));
            let v6 = |x: u128| IpAddr::V6(Ipv6Addr::from(x));
            for (o, n) in [(v4(o4), v4(n4)), (v6(o6), v6(n6)), (v4(o4), v6(n6)), (v6(o6), v4(n4))] {
                let (mut fast, mut bytes) = (Delta::default(), Delta::default());
                fast.addr(o, n);
                let ob = match o { IpAddr::V4(a) => a.octets().to_vec(), IpAddr::V6(a) => a.octets().to_vec() };
                let nb = match n { IpAddr::V4(a) => a.octets().to_vec(), IpAddr::V6(a) => a.octets().to_vec() };
                bytes.change(&ob, &nb);
                proptest::prop_assert_eq!(fast.apply(cks), bytes.apply(cks));
            }
        }
    }
}
