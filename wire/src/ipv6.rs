//! IPv6 headers (RFC 8200) and a bounded walker over the extension-header chain.

use std::net::Ipv6Addr;

use crate::ethernet::{read_u16, write_u16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// The length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The most extension headers [`walk_ext_headers`] follows before it gives up with
/// [`Error::Unsupported`]. Real traffic carries two or three at most.
pub const MAX_EXT_HEADERS: usize = 8;

/// What a Fragment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// The fragment offset in bytes.
    pub offset: u16,
    /// The More Fragments flag.
    pub more: bool,
    /// The identification.
    pub ident: u32,
}

impl FragmentInfo {
    /// False for an atomic fragment (offset 0, no more fragments, RFC 6946), which
    /// holds a whole datagram.
    pub fn is_fragment(&self) -> bool {
        self.more || self.offset != 0
    }
}

/// Where the extension-header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The protocol after the last extension header (TCP, UDP, ICMPv6, ESP, No Next
    /// Header...). After a non-first fragment this is the Fragment header's next
    /// header, and the bytes at `offset` are the middle of that protocol's data.
    pub protocol: IpProtocol,
    /// Where the upper-layer header starts, counted from the start of the bytes walked
    /// ([`Packet::upper_layer`] counts from the start of the IPv6 header).
    pub offset: usize,
    /// The bytes from `offset` to the end of the payload.
    pub len: usize,
    /// The Fragment header, if one was seen.
    pub fragment: Option<FragmentInfo>,
    /// How many extension headers were skipped.
    pub ext_headers: u8,
}

impl UpperLayer {
    /// True when a Fragment header was seen (atomic fragments included).
    pub fn fragment_seen(&self) -> bool {
        self.fragment.is_some()
    }

    /// True when the upper-layer header is in this packet: not a non-first fragment.
    pub fn has_header(&self) -> bool {
        !matches!(self.fragment, Some(f) if f.offset != 0)
    }
}

/// Walks the extension headers in `data` (an IPv6 payload), starting with the header
/// type `first` (the IPv6 next header). Follows Hop-by-Hop (first only), Routing,
/// Fragment, Destination Options and AH; stops at anything else, and after a Fragment
/// header with a non-zero offset. Errors when a header runs past `data`
/// ([`Error::Truncated`]), on a misplaced Hop-by-Hop or a second Fragment header
/// ([`Error::Malformed`]), and after [`MAX_EXT_HEADERS`] ([`Error::Unsupported`]).
pub fn walk_ext_headers(first: IpProtocol, data: &[u8]) -> Result<UpperLayer> {
    let mut next = first;
    let mut pos = 0usize;
    let mut count = 0usize;
    let mut fragment: Option<FragmentInfo> = None;
    loop {
        let len = match next {
            IpProtocol::HOP_BY_HOP if count != 0 => return Err(Error::Malformed),
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_OPTS => {
                let ext_len = *data.get(pos + 1).ok_or(Error::Truncated)?;
                (usize::from(ext_len) + 1) * 8
            }
            IpProtocol::AH => {
                let ext_len = *data.get(pos + 1).ok_or(Error::Truncated)?;
                (usize::from(ext_len) + 2) * 4
            }
            IpProtocol::IPV6_FRAG => 8,
            protocol => {
                return Ok(UpperLayer {
                    protocol,
                    offset: pos,
                    len: data.len().saturating_sub(pos),
                    fragment,
                    ext_headers: count as u8,
                })
            }
        };
        if count == MAX_EXT_HEADERS {
            return Err(Error::Unsupported);
        }
        let header = data.get(pos..pos + len).ok_or(Error::Truncated)?;
        let kind = next;
        next = IpProtocol(header[0]);
        pos += len;
        count += 1;
        if kind == IpProtocol::IPV6_FRAG {
            if fragment.is_some() {
                return Err(Error::Malformed);
            }
            let off_flags = read_u16(header, 2);
            let info = FragmentInfo {
                offset: off_flags & 0xfff8,
                more: off_flags & 1 != 0,
                ident: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
            };
            fragment = Some(info);
            if info.offset != 0 {
                // What follows is the middle of the datagram, not more headers.
                return Ok(UpperLayer {
                    protocol: next,
                    offset: pos,
                    len: data.len() - pos,
                    fragment,
                    ext_headers: count as u8,
                });
            }
        }
    }
}

/// A view of an IPv6 packet. The payload length field, not the buffer, bounds the
/// payload (a longer buffer is Ethernet padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Wraps the IPv6 header quoted inside an ICMPv6 error, after
    /// [`check_quoted_len`](Self::check_quoted_len).
    pub fn new_checked_quoted(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_quoted_len()?;
        Ok(packet)
    }

    /// Checks the version, and that the fixed header and the payload length fit.
    pub fn check_len(&self) -> Result<()> {
        self.check_quoted_len()?;
        if self.buffer.as_ref().len() < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// As [`check_len`](Self::check_len), but lets the payload length run past the
    /// buffer; [`payload`](Self::payload) is then what the buffer holds.
    pub fn check_quoted_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn first_word(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The version field (6 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// The payload length field: what follows the fixed header, extension headers
    /// included.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The next header field of the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        read_addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    fn payload_end(&self) -> usize {
        (HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.as_ref().len())
    }

    /// The payload: extension headers and upper layer, bounded by the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.payload_end()]
    }

    /// Walks the extension headers (see [`walk_ext_headers`]); the returned offset
    /// counts from the start of the IPv6 header.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let mut upper = walk_ext_headers(self.next_header(), self.payload())?;
        upper.offset += HEADER_LEN;
        Ok(upper)
    }

    /// Walks the extension headers and returns the upper-layer bytes with them: hand
    /// these to a TCP, UDP or ICMPv6 view.
    pub fn upper_layer_data(&self) -> Result<(UpperLayer, &[u8])> {
        let upper = self.upper_layer()?;
        let data = &self.buffer.as_ref()[upper.offset..upper.offset + upper.len];
        Ok((upper, data))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_first_word(&mut self, word: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let word = (self.first_word() & 0x0fff_ffff) | (u32::from(version & 0x0f) << 28);
        self.set_first_word(word);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let word = (self.first_word() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_first_word(word);
    }

    /// Sets the flow label (low 20 bits of `label`).
    pub fn set_flow_label(&mut self, label: u32) {
        let word = (self.first_word() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_first_word(word);
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the next header field.
    pub fn set_next_header(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = protocol.0;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Decrements the hop limit (not below zero) and returns the new value. IPv6 has
    /// no header checksum to update.
    pub fn decrement_hop_limit(&mut self) -> u8 {
        let new = self.hop_limit().saturating_sub(1);
        self.set_hop_limit(new);
        new
    }

    /// Sets the source address. The upper-layer checksum needs its own update.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address. The upper-layer checksum needs its own update.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, mutable; bounded as [`payload`](Self::payload).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.payload_end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

fn read_addr(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// TCP over IPv6 behind Hop-by-Hop, Routing (SRH), Fragment (first, more) and
    /// Destination Options headers.
    #[rustfmt::skip]
    pub(crate) static EXT_CHAIN: [u8; 108] = [
        // version 6, traffic class 0xb8, flow label 0x12345
        0x6b, 0x81, 0x23, 0x45,
        // payload length 68, next header Hop-by-Hop, hop limit 64
        0x00, 0x44, 0x00, 0x40,
        // source 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        // destination 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        // Hop-by-Hop: next Routing, length 0, PadN 4
        0x2b, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
        // Routing: next Fragment, length 2, type 4 (SRH), segments left 0,
        // last entry 0, flags 0, tag 0
        0x2c, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
        // segment list[0] 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        // Fragment: next Destination Options, offset 0, M=1, identification
        0x3c, 0x00, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78,
        // Destination Options: next TCP, length 0, PadN 4
        0x06, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
        // TCP: source port 443, destination port 50000
        0x01, 0xbb, 0xc3, 0x50,
        // sequence number
        0x00, 0x00, 0x00, 0x01,
        // acknowledgment number
        0x00, 0x00, 0x00, 0x02,
        // data offset 5, flags ACK, window 1024
        0x50, 0x10, 0x04, 0x00,
        // checksum (not filled), urgent pointer
        0x00, 0x00, 0x00, 0x00,
    ];

    /// UDP over IPv6 behind an Authentication Header with a 12-byte ICV.
    #[rustfmt::skip]
    pub(crate) static AH_UDP: [u8; 72] = [
        // version 6, traffic class 0, flow label 0
        0x60, 0x00, 0x00, 0x00,
        // payload length 32, next header AH, hop limit 255
        0x00, 0x20, 0x33, 0xff,
        // source fe80::1
        0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        // destination ff02::1
        0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        // AH: next UDP, payload length 4 (24 bytes), reserved
        0x11, 0x04, 0x00, 0x00,
        // SPI, sequence number
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05,
        // ICV (12 bytes)
        0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb,
        0xcc, 0xcc, 0xcc, 0xcc,
        // UDP: ports 546 -> 547, length 8, checksum (not filled)
        0x02, 0x22, 0x02, 0x23, 0x00, 0x08, 0x00, 0x00,
    ];

    #[test]
    fn parse_fixed_header() {
        let p = Packet::new_checked(&EXT_CHAIN[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 68);
        assert_eq!(p.next_header(), IpProtocol::HOP_BY_HOP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &EXT_CHAIN[40..]);
    }

    #[test]
    fn walk_full_chain() {
        let p = Packet::new_checked(&EXT_CHAIN[..]).unwrap();
        let upper = p.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::TCP);
        assert_eq!(upper.offset, 88);
        assert_eq!(upper.len, 20);
        assert_eq!(upper.ext_headers, 4);
        assert!(upper.fragment_seen());
        assert!(upper.has_header());
        let frag = upper.fragment.unwrap();
        assert_eq!(
            frag,
            FragmentInfo {
                offset: 0,
                more: true,
                ident: 0x1234_5678
            }
        );
        assert!(frag.is_fragment());
        let (_, tcp) = p.upper_layer_data().unwrap();
        assert_eq!(tcp, &EXT_CHAIN[88..]);
        assert_eq!(&tcp[..4], &[0x01, 0xbb, 0xc3, 0x50]);
    }

    #[test]
    fn walk_ah() {
        let p = Packet::new_checked(&AH_UDP[..]).unwrap();
        let upper = p.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::UDP);
        assert_eq!(upper.offset, 64);
        assert_eq!(upper.len, 8);
        assert_eq!(upper.ext_headers, 1);
        assert!(!upper.fragment_seen());
    }

    #[test]
    fn walk_stops_after_non_first_fragment() {
        // Fragment with offset 1480 whose "next header" is HBH: the data after it is
        // not walked.
        #[rustfmt::skip]
        let data = [
            // Fragment: next Hop-by-Hop, offset 185 (1480 bytes), M=0, identification
            0x00, 0x00, 0x05, 0xc8, 0x00, 0x00, 0x00, 0x09,
            // data
            0xff, 0xff,
        ];
        let upper = walk_ext_headers(IpProtocol::IPV6_FRAG, &data).unwrap();
        assert_eq!(upper.protocol, IpProtocol::HOP_BY_HOP);
        assert_eq!(upper.offset, 8);
        assert_eq!(upper.len, 2);
        let frag = upper.fragment.unwrap();
        assert_eq!((frag.offset, frag.more, frag.ident), (1480, false, 9));
        assert!(!upper.has_header());
    }

    #[test]
    fn no_ext_headers() {
        let upper = walk_ext_headers(IpProtocol::UDP, &[1, 2, 3]).unwrap();
        assert_eq!(upper.protocol, IpProtocol::UDP);
        assert_eq!((upper.offset, upper.len, upper.ext_headers), (0, 3, 0));
        let upper = walk_ext_headers(IpProtocol::IPV6_NO_NXT, &[]).unwrap();
        assert_eq!(upper.protocol, IpProtocol::IPV6_NO_NXT);
    }

    #[test]
    fn overrunning_chains_error() {
        let payload = &EXT_CHAIN[40..];
        // Cut anywhere inside the extension headers.
        for n in 0..48 {
            assert_eq!(
                walk_ext_headers(IpProtocol::HOP_BY_HOP, &payload[..n]),
                Err(Error::Truncated),
                "cut at {n}"
            );
        }
        // A Routing header whose length runs past the payload.
        let mut buf = EXT_CHAIN;
        buf[49] = 30;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
        // AH length past the end.
        let mut buf = AH_UDP;
        buf[41] = 7;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(Error::Truncated));
    }

    #[test]
    fn misplaced_or_repeated_headers() {
        // Hop-by-Hop after Destination Options.
        let data = [0u8, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(IpProtocol::IPV6_OPTS, &data),
            Err(Error::Malformed)
        );
        // Two Fragment headers.
        let data = [44u8, 0, 0, 1, 0, 0, 0, 1, 6, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            walk_ext_headers(IpProtocol::IPV6_FRAG, &data),
            Err(Error::Malformed)
        );
        // An endless chain of Destination Options.
        let data = [60u8, 0, 1, 4, 0, 0, 0, 0].repeat(MAX_EXT_HEADERS + 1);
        assert_eq!(
            walk_ext_headers(IpProtocol::IPV6_OPTS, &data),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn emit_fixed_header() {
        let mut buf = [0u8; 108];
        buf[40..].copy_from_slice(&EXT_CHAIN[40..]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0x12345);
        p.set_payload_len(68);
        p.set_next_header(IpProtocol::HOP_BY_HOP);
        p.set_hop_limit(65);
        assert_eq!(p.decrement_hop_limit(), 64);
        p.set_src_addr("2001:db8::1".parse().unwrap());
        p.set_dst_addr("2001:db8::2".parse().unwrap());
        assert_eq!(p.payload_mut().len(), 68);
        assert_eq!(buf, EXT_CHAIN);
    }

    #[test]
    fn bad_version_and_length() {
        let mut buf = AH_UDP;
        buf[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadVersion
        );
        assert_eq!(
            Packet::new_checked(&AH_UDP[..71]).unwrap_err(),
            Error::Truncated
        );
        let quoted = Packet::new_checked_quoted(&AH_UDP[..48]).unwrap();
        assert_eq!(quoted.payload().len(), 8);
    }

    #[test]
    fn every_prefix() {
        for fixture in [&EXT_CHAIN[..], &AH_UDP[..]] {
            for n in 0..fixture.len() {
                match Packet::new_checked(&fixture[..n]) {
                    Ok(p) => exercise(&p),
                    Err(e) => assert_eq!(e, Error::Truncated),
                }
                if let Ok(p) = Packet::new_checked_quoted(&fixture[..n]) {
                    exercise(&p);
                }
            }
        }
    }

    pub(crate) fn exercise(p: &Packet<&[u8]>) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
        );
        let _ = (
            p.next_header(),
            p.hop_limit(),
            p.src_addr(),
            p.dst_addr(),
            p.payload(),
        );
        if let Ok((upper, data)) = p.upper_layer_data() {
            assert_eq!(data.len(), upper.len);
            let _ = (upper.fragment_seen(), upper.has_header());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(b) = bytes.first_mut() {
                *b = 0x60 | (*b & 0x0f);
            }
            if let Ok(p) = Packet::new_checked_quoted(&bytes[..]) {
                exercise(&p);
                let mut p = Packet::new_unchecked(&mut bytes[..]);
                p.decrement_hop_limit();
                let _ = p.payload_mut().len();
            }
        }

        #[test]
        fn arbitrary_chains_never_panic(
            first in prop::sample::select(vec![0u8, 43, 44, 51, 60, 6, 17]),
            mut bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            // Steer next-header bytes towards extension headers so that chains are long.
            for chunk in bytes.chunks_mut(8) {
                chunk[0] = [0u8, 43, 44, 51, 60, 6][usize::from(chunk[0]) % 6];
            }
            if let Ok(upper) = walk_ext_headers(IpProtocol(first), &bytes) {
                prop_assert!(upper.offset + upper.len == bytes.len());
                prop_assert!(usize::from(upper.ext_headers) <= MAX_EXT_HEADERS);
            }
        }
    }
}
