//! Checks that need no connection state: checksums recomputed from scratch, RSS
//! affinity of connections, TCP option lists, and the schedulers' expected distributions
//! (round-robin balance, weighted shares, an independent Maglev table).
//!
//! The checksum code is the harness's own RFC 1071 one's-complement sum over the headers
//! and payload of a parsed packet (the payload's words summed and hashed for the oracle
//! in one pass); it shares nothing with the forwarder's incremental (RFC 1624) updates,
//! so the two can disagree when one is wrong.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket};

use crate::packet::{L4Info, NetInfo, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::rss::{RssFlow, RssModel};

/// The RFC 1071 sum of `data` (odd trailing byte padded with zero), folded to 16 bits
/// but not complemented, starting from `initial`.
pub fn ones_complement_sum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Folded above: fits in 16 bits.
    u16::try_from(sum).unwrap_or(0xffff)
}

/// The Internet checksum of `data` with `data`'s own checksum field treated as zero:
/// pass the bytes with that field zeroed. A whole header with a correct checksum in
/// place sums to 0xffff in [`ones_complement_sum`].
pub fn internet_checksum(initial: u32, data: &[u8]) -> u16 {
    !ones_complement_sum(initial, data)
}

/// The pseudo-header sum (RFC 768 / 793 for IPv4, RFC 8200 §8.1 for IPv6).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, l4_len: usize) -> u32 {
    let mut bytes = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            bytes.extend_from_slice(&s.octets());
            bytes.extend_from_slice(&d.octets());
            bytes.extend_from_slice(&[0, proto]);
            // An IPv4 payload is < 64 KiB.
            bytes.extend_from_slice(&u16::try_from(l4_len).unwrap_or(u16::MAX).to_be_bytes());
        }
        (s, d) => {
            bytes.extend_from_slice(&v6(s));
            bytes.extend_from_slice(&v6(d));
            bytes.extend_from_slice(&u32::try_from(l4_len).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, proto]);
        }
    }
    u32::from(ones_complement_sum(0, &bytes))
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Which checksum of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumKind {
    /// IPv4 header checksum.
    Ipv4Header,
    /// TCP checksum.
    Tcp,
    /// UDP checksum.
    Udp,
    /// ICMPv4 checksum.
    Icmpv4,
    /// ICMPv6 checksum.
    Icmpv6,
}

impl fmt::Display for ChecksumKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChecksumKind::Ipv4Header => "ipv4.checksum",
            ChecksumKind::Tcp => "tcp.checksum",
            ChecksumKind::Udp => "udp.checksum",
            ChecksumKind::Icmpv4 => "icmpv4.checksum",
            ChecksumKind::Icmpv6 => "icmpv6.checksum",
        })
    }
}

/// A checksum that does not match the one recomputed from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} is 0x{got:04x}, recomputed 0x{expected:04x}")]
pub struct ChecksumMismatch {
    /// Which checksum.
    pub kind: ChecksumKind,
    /// The value recomputed from the bytes.
    pub expected: u16,
    /// The value in the packet.
    pub got: u16,
}

/// Why [`checksums_valid`] could not judge a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// The frame does not parse.
    #[error("cannot check checksums of a malformed packet: {0}")]
    Malformed(String),
    /// A checksum is wrong.
    #[error(transparent)]
    Mismatch(#[from] ChecksumMismatch),
}

/// Recomputes the IPv4 header checksum and the TCP/UDP/ICMP checksum of an Ethernet
/// frame from scratch and compares them with the packet's. Non-IP frames and
/// fragments' L4 checksums (which need reassembly) pass; a UDP checksum of zero over
/// IPv4 means "none" and passes.
pub fn checksums_valid(frame: &[u8]) -> Result<(), ChecksumError> {
    let sliced =
        SlicedPacket::from_ethernet(frame).map_err(|e| ChecksumError::Malformed(e.to_string()))?;
    let Some(net) = &sliced.net else {
        return Ok(());
    };
    let (src, dst, payload) = match net {
        NetSlice::Ipv4(ip) => {
            let header = ip.header().slice();
            let got = ip.header().header_checksum();
            let mut zeroed = header.to_vec();
            zeroed[10] = 0;
            zeroed[11] = 0;
            let expected = internet_checksum(0, &zeroed);
            if got != expected {
                return Err(ChecksumMismatch {
                    kind: ChecksumKind::Ipv4Header,
                    expected,
                    got,
                }
                .into());
            }
            (
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
                ip.payload(),
            )
        }
        NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.payload(),
        ),
    };
    if payload.fragmented {
        return Ok(());
    }
    let proto = payload.ip_number.0;
    let l4 = payload.payload;
    let (kind, offset, pseudo) = match proto {
        PROTO_TCP => (ChecksumKind::Tcp, 16, true),
        PROTO_UDP => (ChecksumKind::Udp, 6, true),
        PROTO_ICMP if src.is_ipv4() => (ChecksumKind::Icmpv4, 2, false),
        PROTO_ICMPV6 if src.is_ipv6() => (ChecksumKind::Icmpv6, 2, true),
        _ => return Ok(()),
    };
    let Some(field) = l4.get(offset..offset + 2) else {
        return Err(ChecksumError::Malformed(format!(
            "{kind} field past the end of a {}-byte segment",
            l4.len()
        )));
    };
    let got = u16::from_be_bytes([field[0], field[1]]);
    if kind == ChecksumKind::Udp && got == 0 && src.is_ipv4() {
        return Ok(());
    }
    let mut zeroed = l4.to_vec();
    zeroed[offset] = 0;
    zeroed[offset + 1] = 0;
    let initial = if pseudo {
        pseudo_header_sum(src, dst, proto, l4.len())
    } else {
        0
    };
    let mut expected = internet_checksum(initial, &zeroed);
    if kind == ChecksumKind::Udp && expected == 0 {
        // RFC 768: a computed zero is sent as all ones.
        expected = 0xffff;
    }
    if got != expected {
        return Err(ChecksumMismatch {
            kind,
            expected,
            got,
        }
        .into());
    }
    Ok(())
}

/// A one's-complement sum in progress (RFC 1071): little-endian 64-bit words added with
/// end-around carry, which is addition modulo 2⁶⁴ − 1, a multiple of 0xffff, so folding
/// gives the 16-bit sum; and a non-zero word never leaves the sum zero, as in RFC 1071.
/// Read little-endian, a word holds its 16-bit words byte-swapped, and the
/// one's-complement sum of swapped words is the swapped sum (RFC 1071 §2(B)):
/// [`Sum::fold`] swaps back. Whatever is added starts at an even offset of the summed
/// region (2¹⁶ ≡ 1 modulo 0xffff, so where a 16-bit word sits in a 64-bit one does not
/// matter).
#[derive(Debug, Clone, Copy, Default)]
struct Sum(u64);

impl Sum {
    /// Adds one little-endian word.
    #[inline]
    fn word(self, w: u64) -> Self {
        let (s, carry) = self.0.overflowing_add(w);
        Sum(s + u64::from(carry))
    }

    /// Adds `data` (an odd last byte is the high half of its 16-bit word, zero-padded).
    #[inline]
    fn bytes(mut self, data: &[u8]) -> Self {
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            self = self.word(le64(c));
        }
        self.word(le_tail(chunks.remainder()))
    }

    /// Adds `data` but for the 16-bit field at (even) `field`.
    fn bytes_without(self, data: &[u8], field: usize) -> Self {
        let (before, after) = data.split_at(field.min(data.len()));
        self.bytes(before).bytes(after.get(2..).unwrap_or_default())
    }

    /// Adds a header but for its checksum at `field`: word by word for the usual
    /// layouts (IPv4 and TCP checksums at 10 and 16 of 20 or more bytes, UDP's at 6 of
    /// 8), [`Sum::bytes_without`] otherwise.
    #[inline]
    fn header_without(self, header: &[u8], field: usize) -> Self {
        let sum = match (field, header.get(..20)) {
            (10, Some(h)) => self
                .word(le64(h))
                .word(le_at::<2>(h, 8))
                .word(le_at::<8>(h, 12)),
            (16, Some(h)) => self
                .word(le64(h))
                .word(le_at::<8>(h, 8))
                .word(le_at::<2>(h, 18)),
            (6, _) if header.len() == 8 => {
                return self.word(le_at::<4>(header, 0)).word(le_at::<2>(header, 4))
            }
            _ => return self.bytes_without(header, field),
        };
        match header.get(20..) {
            Some(options) if !options.is_empty() => sum.bytes(options),
            _ => sum,
        }
    }

    /// The pseudo-header (RFC 768 / 793 for IPv4, RFC 8200 §8.1 for IPv6), with its
    /// 16-bit words swapped like the rest.
    fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, l4_len: usize) -> Self {
        let proto = u64::from(proto) << 8;
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                // An IPv4 payload is < 64 KiB.
                let len = u16::try_from(l4_len).unwrap_or(u16::MAX).swap_bytes();
                Sum(u64::from(u32::from_le_bytes(s.octets())))
                    .word(u64::from(u32::from_le_bytes(d.octets())))
                    .word(proto | u64::from(len) << 16)
            }
            (s, d) => {
                let len = u32::try_from(l4_len).unwrap_or(u32::MAX).swap_bytes();
                Sum::default()
                    .bytes(&v6(s))
                    .bytes(&v6(d))
                    .word(proto | u64::from(len) << 32)
            }
        }
    }

    /// The sum folded to 16 bits, back in network byte order (not complemented).
    fn fold(self) -> u16 {
        // At most 2³³ − 2, then 0x2fffe, 0x10001, 0xffff: four steps, no loop.
        let s = (self.0 & 0xffff_ffff) + (self.0 >> 32);
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        // Folded above: fits in 16 bits.
        u16::try_from(s).unwrap_or(0xffff).swap_bytes()
    }
}

/// The little-endian word of the first 8 bytes of `c` (zero if shorter).
#[inline]
fn le64(c: &[u8]) -> u64 {
    match c.get(..8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
        None => 0,
    }
}

/// The little-endian value of the `N` (at most 8) bytes at `at` (zero if past the end).
#[inline]
fn le_at<const N: usize>(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let (Some(dst), Some(src)) = (w.get_mut(..N), bytes.get(at..at + N)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(w)
}

/// The little-endian word of up to 8 bytes, zero-padded at the end; read in pieces of
/// 4, 2 and 1 bytes rather than copied.
#[inline]
fn le_tail(rest: &[u8]) -> u64 {
    if rest.len() >= 8 {
        return le64(rest);
    }
    let mut w = 0u64;
    let mut at = 0;
    if rest.len() & 4 != 0 {
        if let Some(p) = rest.get(..4) {
            w = u64::from(u32::from_le_bytes([p[0], p[1], p[2], p[3]]));
        }
        at = 4;
    }
    if rest.len() & 2 != 0 {
        if let Some(p) = rest.get(at..at + 2) {
            w |= u64::from(u16::from_le_bytes([p[0], p[1]])) << (8 * at);
        }
        at += 2;
    }
    if let (1, Some(&b)) = (rest.len() & 1, rest.get(at)) {
        w |= u64::from(b) << (8 * at);
    }
    w
}

/// The payload hash's seed and multipliers (digits of π, as in `FoldHasher`'s seed).
const PAYLOAD_SEED: u64 = 0x243f_6a88_85a3_08d3;
const PAYLOAD_K: u64 = 0x9e37_79b9_7f4a_7c15;
const PAYLOAD_FINAL: u64 = 0xa409_3822_299f_31d0;

/// The 128-bit product of `a` and `b`, its halves XORed.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Adds `data` to `sum` and hashes it, in one pass: each 16 bytes are two words added to
/// the sum and folded into the hash state with one multiply (the state enters the
/// product, so the order of blocks matters); the length seeds the state, so the
/// zero-padded last block is unambiguous.
#[inline]
fn sum_and_hash(mut sum: Sum, data: &[u8]) -> (Sum, u64) {
    let mut h = PAYLOAD_SEED ^ data.len() as u64;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        let (a, b) = (le64(c), le64(c.get(8..).unwrap_or_default()));
        sum = sum.word(a).word(b);
        h = fold_mul(a ^ h, b ^ PAYLOAD_K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let (x, y) = rest.split_at(rest.len().min(8));
        let (a, b) = (le_tail(x), le_tail(y));
        sum = sum.word(a).word(b);
        h = fold_mul(a ^ h, b ^ PAYLOAD_K);
    }
    (sum, fold_mul(h, PAYLOAD_FINAL))
}

/// A 64-bit hash of an L4 payload: what [`scan`] reports as `payload_hash`.
pub fn payload_hash(payload: &[u8]) -> u64 {
    sum_and_hash(Sum::default(), payload).1
}

/// What one pass over a parsed packet finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The verdict of [`checksums_valid_parsed`].
    pub checksums: Result<(), ChecksumError>,
    /// [`payload_hash`] of the packet's TCP or UDP payload (of no bytes for other
    /// packets).
    pub payload_hash: u64,
}

/// [`checksums_valid`] for a frame already read by [`crate::packet::PacketInfo::parse`]:
/// the same verdicts, without parsing again or copying the packet.
pub fn checksums_valid_parsed(frame: &[u8], net: &NetInfo<'_>) -> Result<(), ChecksumError> {
    scan(frame, net).checksums
}

/// [`checksums_valid_parsed`] and [`payload_hash`] together: the L4 checksum's sum and
/// the hash read the payload's words once.
pub fn scan(frame: &[u8], net: &NetInfo<'_>) -> Scan {
    let payload = match &net.l4 {
        L4Info::Tcp(t) => t.payload,
        L4Info::Udp { payload, .. } => payload,
        _ => &[],
    };
    let (checksums, hashed) = check_sums(frame, net, payload);
    Scan {
        checksums,
        payload_hash: hashed.unwrap_or_else(|| payload_hash(payload)),
    }
}

/// The checksums of a parsed packet, and `payload`'s hash where the L4 sum went over it.
fn check_sums(
    frame: &[u8],
    net: &NetInfo<'_>,
    payload: &[u8],
) -> (Result<(), ChecksumError>, Option<u64>) {
    let malformed = || ChecksumError::Malformed("the IP layer lies outside the frame".to_owned());
    let v4 = net.src.is_ipv4();
    if v4 {
        let Some(header) = frame.get(net.ip_offset..net.ip_offset + net.ip_header_len) else {
            return (Err(malformed()), None);
        };
        let got = u16::from_be_bytes([header[10], header[11]]);
        let expected = !Sum::default().header_without(header, 10).fold();
        if got != expected {
            let mismatch = ChecksumMismatch {
                kind: ChecksumKind::Ipv4Header,
                expected,
                got,
            };
            return (Err(mismatch.into()), None);
        }
    }
    if net.fragment {
        return (Ok(()), None);
    }
    let (kind, offset, pseudo) = match net.proto {
        PROTO_TCP => (ChecksumKind::Tcp, 16, true),
        PROTO_UDP => (ChecksumKind::Udp, 6, true),
        PROTO_ICMP if v4 => (ChecksumKind::Icmpv4, 2, false),
        PROTO_ICMPV6 if !v4 => (ChecksumKind::Icmpv6, 2, true),
        _ => return (Ok(()), None),
    };
    let Some(l4) = frame.get(net.l4_offset..net.l4_offset + net.l4_len) else {
        return (Err(malformed()), None);
    };
    let Some(field) = l4.get(offset..offset + 2) else {
        let e = ChecksumError::Malformed(format!(
            "{kind} field past the end of a {}-byte segment",
            l4.len()
        ));
        return (Err(e), None);
    };
    let got = u16::from_be_bytes([field[0], field[1]]);
    if kind == ChecksumKind::Udp && got == 0 && v4 {
        return (Ok(()), None);
    }
    let initial = if pseudo {
        Sum::pseudo(net.src, net.dst, net.proto, l4.len())
    } else {
        Sum::default()
    };
    let (sum, hashed) = match split_at_payload(l4, payload, offset) {
        Some((head, body, rest)) => {
            let (sum, hash) = sum_and_hash(initial.header_without(head, offset), body);
            let sum = if rest.is_empty() {
                sum
            } else {
                sum.bytes(rest)
            };
            (sum, Some(hash))
        }
        None => (initial.bytes_without(l4, offset), None),
    };
    let mut expected = !sum.fold();
    if kind == ChecksumKind::Udp && expected == 0 {
        // RFC 768: a computed zero is sent as all ones.
        expected = 0xffff;
    }
    if got != expected {
        let mismatch = ChecksumMismatch {
            kind,
            expected,
            got,
        };
        return (Err(mismatch.into()), hashed);
    }
    (Ok(()), hashed)
}

/// `segment` cut around `payload` (one of its sub-slices, at an even offset past the
/// checksum field at `field`): the bytes before, the payload, the bytes after.
fn split_at_payload<'a>(
    segment: &'a [u8],
    payload: &[u8],
    field: usize,
) -> Option<(&'a [u8], &'a [u8], &'a [u8])> {
    let at = (payload.as_ptr() as usize).checked_sub(segment.as_ptr() as usize)?;
    if at % 2 != 0 || at < field + 2 {
        return None;
    }
    let (head, rest) = segment.split_at_checked(at)?;
    let (body, rest) = rest.split_at_checked(payload.len())?;
    std::ptr::eq(body.as_ptr(), payload.as_ptr()).then_some((head, body, rest))
}

/// Rewrites every checksum of an Ethernet frame (IPv4 header, TCP/UDP/ICMP) to its
/// correct value, in place. Frames that do not parse are left alone; returns whether
/// the frame was IP.
pub fn fix_checksums(frame: &mut [u8]) -> bool {
    let (ip_offset, l4_offset, l4_len, proto, src, dst, v4) = {
        let Ok(sliced) = SlicedPacket::from_ethernet(frame) else {
            return false;
        };
        let base = frame.as_ptr() as usize;
        let Some(net) = &sliced.net else {
            return false;
        };
        let (header, src, dst, payload, v4) = match net {
            NetSlice::Ipv4(ip) => (
                ip.header().slice(),
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
                ip.payload(),
                true,
            ),
            NetSlice::Ipv6(ip) => (
                ip.header().slice(),
                IpAddr::V6(ip.header().source_addr()),
                IpAddr::V6(ip.header().destination_addr()),
                ip.payload(),
                false,
            ),
        };
        let ip_offset = header.as_ptr() as usize - base;
        let l4_offset = if payload.fragmented {
            usize::MAX
        } else {
            payload.payload.as_ptr() as usize - base
        };
        (
            ip_offset,
            l4_offset,
            payload.payload.len(),
            payload.ip_number.0,
            src,
            dst,
            v4,
        )
    };
    if v4 {
        let ihl = usize::from(frame[ip_offset] & 0x0f) * 4;
        frame[ip_offset + 10] = 0;
        frame[ip_offset + 11] = 0;
        let sum = internet_checksum(0, &frame[ip_offset..ip_offset + ihl]);
        frame[ip_offset + 10..ip_offset + 12].copy_from_slice(&sum.to_be_bytes());
    }
    if l4_offset == usize::MAX {
        return true;
    }
    let (offset, pseudo) = match proto {
        PROTO_TCP => (16, true),
        PROTO_UDP => (6, true),
        PROTO_ICMP if v4 => (2, false),
        PROTO_ICMPV6 if !v4 => (2, true),
        _ => return true,
    };
    let segment = &mut frame[l4_offset..l4_offset + l4_len];
    if segment.len() < offset + 2 {
        return true;
    }
    segment[offset] = 0;
    segment[offset + 1] = 0;
    let initial = if pseudo {
        pseudo_header_sum(src, dst, proto, l4_len)
    } else {
        0
    };
    let mut sum = internet_checksum(initial, segment);
    if proto == PROTO_UDP && sum == 0 {
        sum = 0xffff;
    }
    segment[offset..offset + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// TCP option kind of TOA ("TCP option address": the client's address and port carried
/// to a FULLNAT real server).
pub const TOA_KIND: u8 = 254;
/// TOA length for an IPv4 client: kind, length, port, 4-byte address.
pub const TOA_LEN_V4: usize = 8;
/// TOA length for an IPv6 client: kind, length, port, 16-byte address.
pub const TOA_LEN_V6: usize = 20;
/// The most option bytes a TCP header holds (data offset 15).
pub const MAX_TCP_OPTIONS: usize = 40;
/// TCP option kind of the maximum segment size.
pub const MSS_KIND: u8 = 2;

/// One TCP option as [`tcp_options`] walks the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOption<'a> {
    /// Offset of the kind byte in the option list.
    pub offset: usize,
    /// The kind (1 = NOP, 2 = MSS, 254 = TOA, …).
    pub kind: u8,
    /// The whole option: kind, length and value (just the kind for a NOP).
    pub bytes: &'a [u8],
}

/// Iterator over a TCP option list; see [`tcp_options`].
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    opts: &'a [u8],
    at: usize,
}

impl<'a> Iterator for TcpOptions<'a> {
    /// An option, or `Err(offset)` where the list overruns (a length below 2 or past the
    /// end); nothing follows an error.
    type Item = Result<TcpOption<'a>, usize>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at;
        let kind = *self.opts.get(at)?;
        let len = match kind {
            0 => {
                self.at = self.opts.len();
                return None;
            }
            1 => 1,
            _ => match self.opts.get(at + 1).map(|&l| usize::from(l)) {
                Some(l) if l >= 2 && at + l <= self.opts.len() => l,
                _ => {
                    self.at = self.opts.len();
                    return Some(Err(at));
                }
            },
        };
        self.at = at + len;
        Some(Ok(TcpOption {
            offset: at,
            kind,
            bytes: &self.opts[at..at + len],
        }))
    }
}

/// Walks the option bytes of a TCP header: NOPs are one-byte options, End of Option List
/// ends the walk.
pub fn tcp_options(opts: &[u8]) -> TcpOptions<'_> {
    TcpOptions { opts, at: 0 }
}

/// Up to 40 bytes of TCP options, held inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OptionBytes {
    len: u8,
    bytes: [u8; MAX_TCP_OPTIONS],
}

impl Default for OptionBytes {
    fn default() -> Self {
        Self {
            len: 0,
            bytes: [0; MAX_TCP_OPTIONS],
        }
    }
}

impl OptionBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Appends `b`; `false` (and nothing appended) when it would pass 40 bytes.
    pub fn push(&mut self, b: &[u8]) -> bool {
        let at = usize::from(self.len);
        match self.bytes.get_mut(at..at + b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                // At most 40.
                self.len = u8::try_from(at + b.len()).unwrap_or(u8::MAX);
                true
            }
            None => false,
        }
    }

    /// The options of `opts` other than NOPs and TOA, in order (what a balancer must
    /// keep when it inserts TOA); `None` if the list overruns.
    pub fn significant(opts: &[u8]) -> Option<OptionBytes> {
        let mut out = OptionBytes::default();
        for o in tcp_options(opts) {
            let o = o.ok()?;
            if o.kind != 1 && o.kind != TOA_KIND {
                out.push(o.bytes);
            }
        }
        Some(out)
    }

    /// The MSS value, if an MSS option (kind 2, length 4) is present.
    pub fn mss(&self) -> Option<u16> {
        tcp_options(self.as_slice())
            .filter_map(Result::ok)
            .find(|o| o.kind == MSS_KIND && o.bytes.len() == 4)
            .map(|o| u16::from_be_bytes([o.bytes[2], o.bytes[3]]))
    }

    /// The same options with the MSS value replaced by `mss`.
    pub fn with_mss(mut self, mss: u16) -> OptionBytes {
        let at = tcp_options(self.as_slice())
            .filter_map(Result::ok)
            .find(|o| o.kind == MSS_KIND && o.bytes.len() == 4)
            .map(|o| o.offset);
        if let Some(at) = at {
            self.bytes[at + 2..at + 4].copy_from_slice(&mss.to_be_bytes());
        }
        self
    }
}

impl fmt::Debug for OptionBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for OptionBytes {
    /// Hex, one group per option (`020405b4 0402`), or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("none");
        }
        let mut first = true;
        for o in tcp_options(self.as_slice()) {
            let bytes = match o {
                Ok(o) => o.bytes,
                Err(at) => &self.as_slice()[at..],
            };
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            for b in bytes {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// The TOA option a balancer inserts for `client:port`: kind 254, length 8 (IPv4) or 20
/// (IPv6), the port, then the address.
pub fn toa_option(client: IpAddr, port: u16) -> OptionBytes {
    let mut o = OptionBytes::default();
    let len = match client {
        IpAddr::V4(_) => TOA_LEN_V4,
        IpAddr::V6(_) => TOA_LEN_V6,
    };
    // 8 or 20.
    o.push(&[TOA_KIND, u8::try_from(len).unwrap_or(0)]);
    o.push(&port.to_be_bytes());
    match client {
        IpAddr::V4(a) => o.push(&a.octets()),
        IpAddr::V6(a) => o.push(&a.octets()),
    };
    o
}

/// Seeds and constant of the schedulers' stable hash (DPVS-style balancers need a hash
/// that is the same on every worker, run and machine). The formula — words XORed into the
/// state and folded with a 64×64→128 multiply, MurmurHash3's `fmix64` to finish — is the
/// forwarder's documented one, written again here so that the tables are comparable.
const SEED_OFFSET: u64 = 0x243f_6a88_85a3_08d3;
const SEED_SKIP: u64 = 0x1319_8a2e_0370_7344;
const SEED_FLOW: u64 = 0xa409_3822_299f_31d0;
const HASH_K: u64 = 0x9e37_79b9_7f4a_7c15;

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The stable word hash of the schedulers.
#[derive(Debug, Clone, Copy)]
struct StableHash(u64);

impl StableHash {
    fn new(seed: u64) -> Self {
        Self(fmix64(seed ^ HASH_K))
    }

    fn word(&mut self, w: u64) {
        let m = u128::from(self.0 ^ w) * u128::from(HASH_K);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        for c in b.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        self.word(b.len() as u64);
    }

    fn addr(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(v4) => self.word(u64::from(u32::from(v4)) | (4 << 32)),
            IpAddr::V6(v6) => {
                let x = u128::from(v6);
                self.word(x as u64);
                self.word((x >> 64) as u64 ^ 6);
            }
        }
    }

    fn finish(self) -> u64 {
        fmix64(self.0)
    }
}

/// The Maglev flow hash of a client → VIP 5-tuple.
pub fn maglev_flow_hash(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> u64 {
    let mut h = StableHash::new(SEED_FLOW);
    h.addr(src);
    h.addr(dst);
    h.word(u64::from(sport) | u64::from(dport) << 16 | u64::from(proto) << 32);
    h.finish()
}

/// A real server's Maglev name: family tag (4 or 6), the address as 16 bytes (IPv4
/// mapped), the port.
pub fn maglev_name(addr: std::net::SocketAddr) -> [u8; 19] {
    let mut n = [0u8; 19];
    let v6 = match addr.ip() {
        IpAddr::V4(a) => {
            n[0] = 4;
            a.to_ipv6_mapped()
        }
        IpAddr::V6(a) => {
            n[0] = 6;
            a
        }
    };
    n[1..17].copy_from_slice(&v6.octets());
    n[17..].copy_from_slice(&addr.port().to_be_bytes());
    n
}

/// The default Maglev table size (prime), as in the paper.
pub const MAGLEV_TABLE_SIZE: u32 = 65537;

/// A Maglev lookup table (Eisenbud et al., NSDI 2016), populated with weights: M slots
/// (M prime); backend i prefers slots `(offset_i + j·skip_i) mod M` with
/// `offset = h1(name) mod M`, `skip = h2(name) mod (M−1) + 1`; backends take turns (in
/// the order of their names' bytes) claiming their next preferred free slot, a backend
/// of weight w claiming up to `⌊round·w / w_max⌋` slots by round r, until every slot is
/// taken.
#[derive(Clone, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<u32>,
}

impl MaglevTable {
    /// The table for `backends` (address, weight), indexed by their position; `None` when
    /// no backend has weight or the size is below the number of weighted backends.
    pub fn new(size: u32, backends: &[(std::net::SocketAddr, u32)]) -> Option<Self> {
        let m = u64::from(size);
        let mut live: Vec<(usize, [u8; 19], u64)> = backends
            .iter()
            .enumerate()
            .filter(|(_, (_, w))| *w > 0)
            .map(|(i, (a, w))| (i, maglev_name(*a), u64::from(*w)))
            .collect();
        if live.is_empty() || live.len() as u64 > m {
            return None;
        }
        live.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let hash = |seed: u64, name: &[u8]| {
            let mut h = StableHash::new(seed);
            h.bytes(name);
            h.finish()
        };
        let mut next: Vec<u64> = live.iter().map(|b| hash(SEED_OFFSET, &b.1) % m).collect();
        let skip: Vec<u64> = live
            .iter()
            .map(|b| hash(SEED_SKIP, &b.1) % (m - 1) + 1)
            .collect();
        let w_max = live.iter().map(|b| b.2).max().unwrap_or(1);
        let mut owned = vec![0u64; live.len()];
        let mut slots = vec![u32::MAX; size as usize];
        let mut filled = 0u64;
        let mut round = 0u64;
        while filled < m {
            round += 1;
            for (i, b) in live.iter().enumerate() {
                while owned[i] < round * b.2 / w_max && filled < m {
                    // The preferences are a permutation of 0..M and a slot is free, so
                    // this finds one.
                    loop {
                        let c = next[i] as usize;
                        next[i] = (next[i] + skip[i]) % m;
                        if slots[c] == u32::MAX {
                            // Backend positions are < 2^32 (a table holds fewer).
                            slots[c] = u32::try_from(b.0).unwrap_or(u32::MAX);
                            break;
                        }
                    }
                    owned[i] += 1;
                    filled += 1;
                }
            }
        }
        Some(Self { slots })
    }

    /// The backend (position in the `new` list) for a flow hash: slot
    /// `⌊(hash >> 32) · M / 2³²⌋`.
    pub fn pick(&self, hash: u64) -> usize {
        let slot = ((hash >> 32) * self.slots.len() as u64) >> 32;
        self.slots.get(slot as usize).map_or(0, |&b| b as usize)
    }

    /// The slot index a hash falls in.
    pub fn slot(&self, hash: u64) -> usize {
        (((hash >> 32) * self.slots.len() as u64) >> 32) as usize
    }

    /// Slots owned by each of `n` backends.
    pub fn shares(&self, n: usize) -> Vec<usize> {
        let mut out = vec![0; n];
        for &s in &self.slots {
            if let Some(c) = out.get_mut(s as usize) {
                *c += 1;
            }
        }
        out
    }

    /// The table size M.
    pub fn size(&self) -> usize {
        self.slots.len()
    }
}

impl fmt::Debug for MaglevTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaglevTable")
            .field("size", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// Round robin on one worker: the real servers' counts differ by at most one.
pub fn rr_balanced(counts: &[usize]) -> bool {
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().min().unwrap_or(0);
    max - min <= 1
}

/// A real server whose weighted round-robin count is outside its tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrrOutlier {
    /// Position of the real server among the weighted ones.
    pub index: usize,
    /// Connections it got.
    pub count: usize,
    /// `n · w / Σw`.
    pub expected: f64,
    /// `w / gcd(weights)`.
    pub tolerance: f64,
}

/// Weighted round robin on one worker that scheduled `Σ counts` connections: each real
/// server's count is within `w / gcd` of `n · w / Σw`. A wrr schedule repeats every
/// `Σw / gcd` picks with exactly `w / gcd` picks of each server per period (LVS's
/// interleaved wrr and nginx's smooth wrr both do), so whole periods are exact and the
/// last, partial one is off by less than `w / gcd`. Weights of 0 are left out.
pub fn wrr_outliers(weights: &[u32], counts: &[usize]) -> Vec<WrrOutlier> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    if total == 0 || g == 0 {
        return Vec::new();
    }
    let n: usize = counts.iter().sum();
    weights
        .iter()
        .zip(counts)
        .enumerate()
        .filter(|(_, (&w, _))| w > 0)
        .filter_map(|(index, (&w, &count))| {
            let expected = n as f64 * f64::from(w) / total as f64;
            let tolerance = f64::from(w / g);
            ((count as f64 - expected).abs() > tolerance + 1e-9).then_some(WrrOutlier {
                index,
                count,
                expected,
                tolerance,
            })
        })
        .collect()
}

/// The length of a wrr period: `Σw / gcd(weights)` picks.
pub fn wrr_period(weights: &[u32]) -> u64 {
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    if g == 0 {
        return 0;
    }
    weights.iter().map(|&w| u64::from(w / g)).sum()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One packet of a connection, for [`rss_affinity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnPacket {
    /// The packet's index in the output stream.
    pub output: usize,
    /// Client → server (`true`) or the reply direction.
    pub from_client: bool,
    /// The queue it left by.
    pub queue: u16,
}

/// A connection's packets as the checker saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRecord {
    /// A name for messages, like `tcp 172.16.0.1:40000 → 10.0.0.100:80`.
    pub name: String,
    /// Its packets, in output order.
    pub packets: Vec<ConnPacket>,
}

/// A connection whose directions were handled by more than one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityViolation {
    /// The connection.
    pub conn: String,
    /// The first output packet handled by a worker other than the connection's first.
    pub output: usize,
    /// The worker that handled the connection's first packet.
    pub expected_worker: u16,
    /// The worker that handled this one.
    pub got_worker: u16,
}

/// For every connection, both directions were handled by one worker: the worker of a
/// packet is `queue_worker[queue it left by]` (a queue outside the map is its own
/// worker).
pub fn rss_affinity(conns: &[ConnRecord], queue_worker: &[u16]) -> Vec<AffinityViolation> {
    let worker = |q: u16| queue_worker.get(usize::from(q)).copied().unwrap_or(q);
    let mut out = Vec::new();
    for conn in conns {
        let Some(first) = conn.packets.first() else {
            continue;
        };
        let expected = worker(first.queue);
        let workers: BTreeSet<u16> = conn.packets.iter().map(|p| worker(p.queue)).collect();
        if workers.len() > 1 {
            if let Some(p) = conn.packets.iter().find(|p| worker(p.queue) != expected) {
                out.push(AffinityViolation {
                    conn: conn.name.clone(),
                    output: p.output,
                    expected_worker: expected,
                    got_worker: worker(p.queue),
                });
            }
        }
    }
    out
}

/// Both directions of a connection, as tuples, for [`rss_steering`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTuples {
    /// A name for messages.
    pub name: String,
    /// The first output packet of the connection (where the failure is reported).
    pub output: usize,
    /// Client → VIP, as the NIC sees the client's packets.
    pub request: RssFlow,
    /// RS → local address (FULLNAT) or RS → client (NAT), as the NIC sees replies.
    pub reply: RssFlow,
}

/// A connection whose replies a NIC's RSS delivers to another worker than its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteeringViolation {
    /// The connection.
    pub conn: String,
    /// Its first output packet.
    pub output: usize,
    /// Queue and worker of the requests.
    pub request: (u16, u16),
    /// Queue and worker of the replies.
    pub reply: (u16, u16),
}

/// With `model` (the NIC's key, hash types and RETA), do both directions of every
/// connection land on one worker? This is what RSS-aware local port choice promises when
/// no flow rules steer replies; with flow rules, replies need not pass it.
pub fn rss_steering(
    model: &RssModel,
    conns: &[ConnTuples],
    queue_worker: &[u16],
) -> Vec<SteeringViolation> {
    let worker = |q: u16| queue_worker.get(usize::from(q)).copied().unwrap_or(q);
    conns
        .iter()
        .filter_map(|c| {
            let (_, q_req) = model.queue(&c.request);
            let (_, q_rep) = model.queue(&c.reply);
            (worker(q_req) != worker(q_rep)).then(|| SteeringViolation {
                conn: c.name.clone(),
                output: c.output,
                request: (q_req, worker(q_req)),
                reply: (q_rep, worker(q_rep)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;
    use rstest::rstest;

    use super::*;

    fn frames() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut w = |b: Vec<u8>| out.push(b);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 7, 1000)
            .syn()
            .write(&mut v, b"abc")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(53, 5353)
            .write(&mut v, b"hello")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x21; 16], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v, b"v6 data")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x21; 16], 64)
            .icmpv6_echo_request(1, 2)
            .write(&mut v, b"ping")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut v, b"ping!")
            .unwrap();
        w(v);
        // Options and a payload of several 16-byte blocks and a tail.
        let payload: Vec<u8> = (0..101u8).map(|i| i.wrapping_mul(151)).collect();
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 7, 1000)
            .options_raw(&[254, 8, 0, 80, 10, 0, 0, 1])
            .unwrap()
            .write(&mut v, &payload)
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x21; 16], 64)
            .udp(1, 2)
            .write(&mut v, &payload[..64])
            .unwrap();
        w(v);
        out
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            ones_complement_sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn builder_packets_are_valid() {
        for f in frames() {
            checksums_valid(&f).unwrap();
        }
    }

    /// Offsets from the start of the frame: IPv4 checksum at 14+10, TCP checksum at
    /// 14+20+16, UDP at 14+20+6, IPv6 TCP at 14+40+16, ICMPv6 at 14+40+2, ICMPv4 at 14+20+2.
    #[rstest]
    #[case(0, 24, ChecksumKind::Ipv4Header)]
    #[case(0, 50, ChecksumKind::Tcp)]
    #[case(0, 55, ChecksumKind::Tcp)] // a payload byte
    #[case(1, 40, ChecksumKind::Udp)]
    #[case(2, 70, ChecksumKind::Tcp)]
    #[case(2, 30, ChecksumKind::Tcp)] // a source address byte: pseudo-header
    #[case(3, 56, ChecksumKind::Icmpv6)]
    #[case(4, 36, ChecksumKind::Icmpv4)]
    fn a_flipped_bit_is_caught(
        #[case] frame: usize,
        #[case] byte: usize,
        #[case] kind: ChecksumKind,
    ) {
        let mut f = frames()[frame].clone();
        f[byte] ^= 0x40;
        match checksums_valid(&f) {
            Err(ChecksumError::Mismatch(m)) => assert_eq!(m.kind, kind),
            other => panic!("{other:?}"),
        }
        // The in-place sum over a parsed packet says the same, with the same values.
        let info = crate::packet::PacketInfo::parse(&f).unwrap();
        assert_eq!(
            checksums_valid_parsed(&f, info.net.as_ref().unwrap()),
            checksums_valid(&f)
        );
        fix_checksums(&mut f);
        checksums_valid(&f).unwrap();
    }

    #[test]
    fn in_place_sums_match_the_copying_ones() {
        for f in frames() {
            let info = crate::packet::PacketInfo::parse(&f).unwrap();
            checksums_valid_parsed(&f, info.net.as_ref().unwrap()).unwrap();
        }
        let be_sum = |data: &[u8]| Sum::default().bytes(data).fold();
        for len in (0..40).chain(1495..1505) {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(be_sum(&data), ones_complement_sum(0, &data), "{len}");
            let at = 2.min(len & !1);
            let mut z = data.clone();
            for b in z.iter_mut().skip(at).take(2) {
                *b = 0;
            }
            assert_eq!(
                !Sum::default().bytes_without(&data, at).fold(),
                internet_checksum(0, &z),
                "{len}"
            );
            // Summed in one pass with the hash, or split at any even offset: the same.
            let (sum, hash) = sum_and_hash(Sum::default(), &data);
            assert_eq!((sum.fold(), hash), (be_sum(&data), payload_hash(&data)));
            for cut in (0..=len).step_by(2) {
                let (a, b) = data.split_at(cut);
                assert_eq!(Sum::default().bytes(a).bytes(b).fold(), be_sum(&data));
            }
        }
        // Headers summed word by word: as byte by byte.
        let header: Vec<u8> = (0..60u8).map(|i| i.wrapping_mul(93) ^ 0xa5).collect();
        for len in [8, 12, 19, 20, 24, 40, 60] {
            for field in [2, 6, 10, 16] {
                assert_eq!(
                    Sum::default().header_without(&header[..len], field).fold(),
                    Sum::default().bytes_without(&header[..len], field).fold(),
                    "{len} {field}"
                );
            }
        }
        assert_eq!(be_sum(&[0; 8]), 0);
        assert_eq!(be_sum(&[0xff; 8]), 0xffff);
        assert_eq!(be_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        // End-around carry: 2 × 0xffff…ff is 0xffff…ff again, never zero.
        assert_eq!(Sum(u64::MAX).word(u64::MAX).0, u64::MAX);
        assert_eq!(Sum(1).word(u64::MAX).0, 1);
        // Folding: the largest sums and the carries of each step, against the byte sum.
        for x in [
            u64::MAX,
            0xffff_fffe_ffff_ffff,
            0xfffe_ffff_fffe_ffff,
            0x0000_ffff_ffff_ffff,
            0x0001_0000_0000_0000,
            0x8000_8000_8000_8000,
            0xffff_0001_ffff_0001,
            1,
            0,
        ] {
            let want = ones_complement_sum(0, &x.to_le_bytes());
            assert_eq!(Sum(x).fold(), want, "{x:#x}");
        }
    }

    /// The pseudo-header sum in swapped words folds to [`pseudo_header_sum`].
    #[test]
    fn pseudo_header_sums_agree() {
        let pairs: [(&str, &str); 3] = [
            ("10.0.0.1", "192.168.255.254"),
            ("255.255.255.255", "255.255.255.255"),
            ("2001:db8::1", "fe80::ffff:1"),
        ];
        for (s, d) in pairs {
            let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
            for (proto, len) in [(6, 20), (17, 1480), (58, 65535), (6, 0)] {
                assert_eq!(
                    u32::from(Sum::pseudo(s, d, proto, len).fold()),
                    pseudo_header_sum(s, d, proto, len),
                    "{s} {d} {proto} {len}"
                );
            }
        }
    }

    /// The payload hash tells apart payloads that differ by one bit, by order, or by
    /// trailing zeros.
    #[test]
    fn payload_hash_separates_near_payloads() {
        let base: Vec<u8> = (0..300).map(|i| (i * 7 + 3) as u8).collect();
        let mut seen = std::collections::HashSet::new();
        for len in [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 300] {
            assert!(seen.insert(payload_hash(&base[..len])), "{len}");
        }
        let mut zeros = vec![0u8; 16];
        for _ in 0..4 {
            assert!(seen.insert(payload_hash(&zeros)));
            zeros.push(0);
        }
        for bit in 0..64 * 8 {
            let mut p = base[..64].to_vec();
            p[bit / 8] ^= 1 << (bit % 8);
            assert!(seen.insert(payload_hash(&p)), "bit {bit}");
        }
        let mut swapped = base[..64].to_vec();
        swapped[..32].rotate_left(16);
        assert!(seen.insert(payload_hash(&swapped)));
    }

    /// Every checksum verdict and payload hash of [`scan`] against the copying
    /// [`checksums_valid`] and [`payload_hash`], over frames with each header byte
    /// flipped.
    #[test]
    fn scan_agrees_with_the_copying_check() {
        for frame in frames() {
            // TCP and UDP payloads are hashed on the checksum's pass.
            let info = crate::packet::PacketInfo::parse(&frame).unwrap();
            let net = info.net.as_ref().unwrap();
            let fused = check_sums(&frame, net, info.l4_payload()).1.is_some();
            assert_eq!(fused, matches!(net.proto, PROTO_TCP | PROTO_UDP));
            for at in 0..frame.len() {
                let mut f = frame.clone();
                f[at] ^= 0x5a;
                let Ok(info) = crate::packet::PacketInfo::parse(&f) else {
                    continue;
                };
                let Some(net) = info.net.as_ref() else {
                    continue;
                };
                let s = scan(&f, net);
                assert_eq!(s.checksums, checksums_valid(&f), "byte {at}");
                assert_eq!(s.payload_hash, payload_hash(info.l4_payload()), "byte {at}");
            }
        }
    }

    #[test]
    fn option_walk_and_significant_options() {
        let opts = [
            1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 254, 8, 0, 80, 10, 0, 0, 1, 2, 4, 5, 0xb4,
        ];
        let kinds: Vec<u8> = tcp_options(&opts).map(|o| o.unwrap().kind).collect();
        assert_eq!(kinds, [1, 1, 8, 254, 2]);
        let sig = OptionBytes::significant(&opts).unwrap();
        assert_eq!(
            sig.as_slice(),
            &[8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 2, 4, 5, 0xb4]
        );
        assert_eq!(sig.mss(), Some(1460));
        assert_eq!(sig.with_mss(1452).mss(), Some(1452));
        assert_eq!(sig.to_string(), "080a0000000100000002 020405b4");
        // End of option list stops the walk; a length past the end is an error.
        assert_eq!(tcp_options(&[0, 2, 4, 5, 0xb4]).count(), 0);
        assert_eq!(tcp_options(&[2, 9, 0]).next(), Some(Err(0)));
        assert!(OptionBytes::significant(&[1, 3, 1]).is_none());
        assert_eq!(
            toa_option("172.16.0.1".parse().unwrap(), 40000).as_slice(),
            &[254, 8, 0x9c, 0x40, 172, 16, 0, 1]
        );
        assert_eq!(
            toa_option("2001:db8::1".parse().unwrap(), 1)
                .as_slice()
                .len(),
            20
        );
    }

    #[test]
    fn round_robin_balance() {
        assert!(rr_balanced(&[3, 3, 2]));
        assert!(rr_balanced(&[]));
        assert!(!rr_balanced(&[4, 2, 3]));
    }

    #[test]
    fn weighted_round_robin_tolerance() {
        // LVS interleaved wrr 3:2:1 picks 0,0,1,0,1,2 per period: every prefix passes.
        let period = [0usize, 0, 1, 0, 1, 2];
        let mut counts = [0usize; 3];
        for k in 0..30 {
            counts[period[k % 6]] += 1;
            assert!(wrr_outliers(&[3, 2, 1], &counts).is_empty(), "{counts:?}");
        }
        assert_eq!(wrr_period(&[3, 2, 1]), 6);
        assert_eq!(wrr_period(&[4, 2, 2]), 4);
        // Plain round robin on a 3:2:1 service: server 2 gets twice its share.
        let out = wrr_outliers(&[3, 2, 1], &[10, 10, 10]);
        assert_eq!(out.iter().map(|o| o.index).collect::<Vec<_>>(), [0, 2]);
        assert_eq!((out[1].expected, out[1].tolerance), (5.0, 1.0));
        // A weight of zero takes no connection and is not judged.
        assert!(wrr_outliers(&[2, 0, 2], &[5, 0, 5]).is_empty());
    }

    #[test]
    fn maglev_table_shares() {
        let addrs: Vec<std::net::SocketAddr> = (0..7)
            .map(|i| format!("10.1.0.{i}:80").parse().unwrap())
            .collect();
        let equal: Vec<_> = addrs.iter().map(|&a| (a, 1)).collect();
        let t = MaglevTable::new(251, &equal).unwrap();
        for c in t.shares(7) {
            assert!(c == 251 / 7 || c == 251 / 7 + 1, "{c}");
        }
        let weighted: Vec<_> = addrs.iter().zip(1..).map(|(&a, w)| (a, w)).collect();
        let t = MaglevTable::new(MAGLEV_TABLE_SIZE, &weighted).unwrap();
        let m = f64::from(MAGLEV_TABLE_SIZE);
        for (i, c) in t.shares(7).into_iter().enumerate() {
            let want = m * (i + 1) as f64 / 28.0;
            assert!((c as f64 - want).abs() <= m * 0.001, "{i}: {c} vs {want}");
        }
        // Order of the list does not matter, only names and weights.
        let mut rev = weighted.clone();
        rev.reverse();
        let r = MaglevTable::new(MAGLEV_TABLE_SIZE, &rev).unwrap();
        for h in [0u64, 1 << 40, u64::MAX, 0x1234_5678_9abc_def0] {
            assert_eq!(t.pick(h), 6 - r.pick(h));
        }
        assert!(MaglevTable::new(251, &[(addrs[0], 0)]).is_none());
    }

    #[test]
    fn affinity() {
        let conn = |queues: &[u16]| ConnRecord {
            name: "c".into(),
            packets: queues
                .iter()
                .enumerate()
                .map(|(i, &q)| ConnPacket {
                    output: i,
                    from_client: i % 2 == 0,
                    queue: q,
                })
                .collect(),
        };
        assert!(rss_affinity(&[conn(&[1, 1, 1])], &[0, 1, 2, 3]).is_empty());
        // Queues 2 and 3 belong to worker 1.
        assert!(rss_affinity(&[conn(&[2, 3, 2])], &[0, 0, 1, 1]).is_empty());
        let v = rss_affinity(&[conn(&[1, 1, 2])], &[0, 1, 2, 3]);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].output, v[0].expected_worker, v[0].got_worker),
            (2, 1, 2)
        );
    }

    #[test]
    fn steering() {
        use crate::rss::{HashTypes, RssKey, L4};

        let model = RssModel::new(RssKey::microsoft(), HashTypes::ALL, 128, 4).unwrap();
        let flow = |s: &str, d: &str| {
            let s: std::net::SocketAddr = s.parse().unwrap();
            let d: std::net::SocketAddr = d.parse().unwrap();
            RssFlow {
                src: s.ip(),
                dst: d.ip(),
                l4: L4::Tcp,
                sport: s.port(),
                dport: d.port(),
            }
        };
        let request = flow("172.16.0.1:40000", "10.0.0.100:80");
        let (_, want) = model.queue(&request);
        // Local ports whose reply lands on the request's queue, and one that does not.
        let reply = |port: u16| flow("192.168.1.10:8080", &format!("192.168.100.1:{port}"));
        let good = (1025..)
            .find(|&p| model.queue(&reply(p)).1 == want)
            .unwrap();
        let bad = (1025..)
            .find(|&p| model.queue(&reply(p)).1 != want)
            .unwrap();
        let conn = |port| ConnTuples {
            name: "c".into(),
            output: 0,
            request,
            reply: reply(port),
        };
        let map = [0, 1, 2, 3];
        assert!(rss_steering(&model, &[conn(good)], &map).is_empty());
        assert_eq!(rss_steering(&model, &[conn(bad)], &map).len(), 1);
        // One worker owning every queue makes any port fine.
        assert!(rss_steering(&model, &[conn(bad)], &[0, 0, 0, 0]).is_empty());
    }
}
