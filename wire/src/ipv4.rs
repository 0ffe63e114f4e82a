//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use crate::checksum::{self, ChecksumCaps};
use crate::ethernet::{read_u16, write_u16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// The length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// The longest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
///
/// [`check_len`](Self::check_len) accepts a buffer longer than the total length (Ethernet
/// padding); [`payload`](Self::payload) stops at the total length.
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

    /// Wraps the IPv4 header quoted inside an ICMP error, after
    /// [`check_quoted_len`](Self::check_quoted_len): the total length may exceed the
    /// buffer, and [`payload`](Self::payload) is then the part that was quoted.
    pub fn new_checked_quoted(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_quoted_len()?;
        Ok(packet)
    }

    /// Checks the version, that the IHL is at least 5 and the header fits in the buffer,
    /// and that the total length covers the header and fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        self.check_quoted_len()?;
        if self.buffer.as_ref().len() < usize::from(self.total_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// As [`check_len`](Self::check_len), but lets the total length run past the buffer.
    pub fn check_quoted_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        if usize::from(self.total_len()) < header_len {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The IHL field, in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// The header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// True when the header carries options (IHL above 5).
    pub fn has_options(&self) -> bool {
        self.header_len() > HEADER_LEN
    }

    /// The length of the options in bytes.
    pub fn options_len(&self) -> usize {
        self.header_len().saturating_sub(HEADER_LEN)
    }

    /// The raw option bytes (empty without options).
    pub fn options(&self) -> &[u8] {
        let end = self.header_len().max(HEADER_LEN);
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// The DSCP (upper six bits of the former TOS byte).
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// The ECN bits.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length field: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field times 8).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// True for any fragment: More Fragments set or a non-zero offset. Only the first
    /// fragment (offset 0) carries the layer-4 header.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        read_addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..self.header_len()];
        checksum::data(header) == 0xffff
    }

    /// The payload length according to the header: total length minus header length.
    pub fn payload_len(&self) -> usize {
        usize::from(self.total_len()).saturating_sub(self.header_len())
    }

    /// The payload, from the end of the header to the total length (or to the end of
    /// the buffer, for a quoted packet whose total length runs past it).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let (start, end) = payload_range(self.header_len(), self.total_len(), data.len());
        &data[start..end]
    }
}

fn payload_range(header_len: usize, total_len: u16, buffer_len: usize) -> (usize, usize) {
    let end = usize::from(total_len).min(buffer_len);
    (header_len.min(end), end)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP.
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (dscp << 2);
    }

    /// Sets the ECN bits.
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (ecn & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, ident);
    }

    fn set_flags_offset(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, value);
    }

    /// Clears both flags and the reserved bit, keeping the fragment offset.
    pub fn clear_flags(&mut self) {
        let v = self.flags_offset() & OFFSET_MASK;
        self.set_flags_offset(v);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, value: bool) {
        let v = self.flags_offset() & !FLAG_DF;
        self.set_flags_offset(if value { v | FLAG_DF } else { v });
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, value: bool) {
        let v = self.flags_offset() & !FLAG_MF;
        self.set_flags_offset(if value { v | FLAG_MF } else { v });
    }

    /// Sets the fragment offset in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let v = (self.flags_offset() & !OFFSET_MASK) | (offset >> 3);
        self.set_flags_offset(v);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol of the payload.
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.0;
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the source address, leaving the checksum alone.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address, leaving the checksum alone.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(!sum);
    }

    /// Writes zero where the port computes the IPv4 checksum, else the checksum.
    pub fn fill_checksum_offload(&mut self, caps: ChecksumCaps) {
        if caps.ipv4 {
            self.set_checksum(0);
        } else {
            self.fill_checksum();
        }
    }

    /// Replaces the source address and updates the header checksum incrementally
    /// (RFC 1624). The TCP/UDP pseudo-header needs its own update.
    pub fn rewrite_src_addr(&mut self, addr: Ipv4Addr) {
        let cks = checksum::update_ipv4_addr(self.checksum(), self.src_addr(), addr);
        self.set_src_addr(addr);
        self.set_checksum(cks);
    }

    /// Replaces the destination address and updates the header checksum incrementally.
    pub fn rewrite_dst_addr(&mut self, addr: Ipv4Addr) {
        let cks = checksum::update_ipv4_addr(self.checksum(), self.dst_addr(), addr);
        self.set_dst_addr(addr);
        self.set_checksum(cks);
    }

    /// Decrements the TTL (not below zero), updates the checksum incrementally, and
    /// returns the new TTL. A forwarder drops the packet when it returns 0.
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        let new = ttl.saturating_sub(1);
        let proto = self.buffer.as_ref()[field::PROTOCOL];
        let old_word = u16::from_be_bytes([ttl, proto]);
        let new_word = u16::from_be_bytes([new, proto]);
        let cks = checksum::update_u16(self.checksum(), old_word, new_word);
        self.set_ttl(new);
        self.set_checksum(cks);
        new
    }

    /// The raw option bytes, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len().max(HEADER_LEN);
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload, mutable; bounded as [`payload`](Self::payload).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = payload_range(
            self.header_len(),
            self.total_len(),
            self.buffer.as_ref().len(),
        );
        &mut self.buffer.as_mut()[start..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

fn read_addr(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A Linux TCP SYN from 192.168.1.10:50082 to 10.0.0.80:80 (IPv4 + TCP).
    #[rustfmt::skip]
    pub(crate) static SYN_PACKET: [u8; 60] = [
        // version 4, IHL 5, DSCP 0, total length 60
        0x45, 0x00, 0x00, 0x3c,
        // identification 0x1c46, DF, fragment offset 0
        0x1c, 0x46, 0x40, 0x00,
        // TTL 64, protocol TCP, header checksum
        0x40, 0x06, 0x52, 0x74,
        // source 192.168.1.10
        0xc0, 0xa8, 0x01, 0x0a,
        // destination 10.0.0.80
        0x0a, 0x00, 0x00, 0x50,
        // TCP: source port 50082, destination port 80
        0xc3, 0xa2, 0x00, 0x50,
        // sequence number
        0x3b, 0x9a, 0xca, 0x00,
        // acknowledgment number
        0x00, 0x00, 0x00, 0x00,
        // data offset 10, flags SYN, window 64240
        0xa0, 0x02, 0xfa, 0xf0,
        // checksum, urgent pointer
        0xc5, 0xb9, 0x00, 0x00,
        // MSS 1460
        0x02, 0x04, 0x05, 0xb4,
        // SACK permitted, timestamps: kind, length
        0x04, 0x02, 0x08, 0x0a,
        // TSval
        0x00, 0x23, 0xf1, 0xa2,
        // TSecr
        0x00, 0x00, 0x00, 0x00,
        // NOP, window scale 7
        0x01, 0x03, 0x03, 0x07,
    ];

    /// A UDP datagram with an odd-length payload, from 10.0.0.1:53000 to 10.0.0.53:53,
    /// followed by Ethernet padding that the total length excludes.
    #[rustfmt::skip]
    pub(crate) static UDP_PACKET: [u8; 36] = [
        // version 4, IHL 5, DSCP 0, total length 33
        0x45, 0x00, 0x00, 0x21,
        // identification 0xabcd, no flags, fragment offset 0
        0xab, 0xcd, 0x00, 0x00,
        // TTL 64, protocol UDP, header checksum
        0x40, 0x11, 0xba, 0xc9,
        // source 10.0.0.1
        0x0a, 0x00, 0x00, 0x01,
        // destination 10.0.0.53
        0x0a, 0x00, 0x00, 0x35,
        // UDP: source port 53000, destination port 53
        0xcf, 0x08, 0x00, 0x35,
        // length 13, checksum
        0x00, 0x0d, 0xd8, 0x8e,
        // payload "hello"
        0x68, 0x65, 0x6c, 0x6c, 0x6f,
        // Ethernet padding
        0x00, 0x00, 0x00,
    ];

    /// The second fragment of a datagram, with a 4-byte option (NOP x3, EOL).
    #[rustfmt::skip]
    static FRAGMENT_WITH_OPTIONS: [u8; 32] = [
        // version 4, IHL 6, DSCP 46 / ECN 1, total length 32
        0x46, 0xb9, 0x00, 0x20,
        // identification 0x0102, MF, fragment offset 185 (1480 bytes)
        0x01, 0x02, 0x20, 0xb9,
        // TTL 1, protocol UDP, header checksum (not checked by this test)
        0x01, 0x11, 0x00, 0x00,
        // source 198.51.100.7
        0xc6, 0x33, 0x64, 0x07,
        // destination 203.0.113.9
        0xcb, 0x00, 0x71, 0x09,
        // options
        0x01, 0x01, 0x01, 0x00,
        // payload
        0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04,
    ];

    #[test]
    fn parse_syn() {
        let p = Packet::new_checked(&SYN_PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 5);
        assert_eq!(p.header_len(), 20);
        assert!(!p.has_options());
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.dscp(), 0);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::TCP);
        assert_eq!(p.checksum(), 0x5274);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 80));
        assert_eq!(p.payload_len(), 40);
        assert_eq!(p.payload(), &SYN_PACKET[20..]);
    }

    #[test]
    fn payload_stops_at_total_length() {
        let p = Packet::new_checked(&UDP_PACKET[..]).unwrap();
        assert_eq!(p.total_len(), 33);
        assert_eq!(p.payload().len(), 13);
        assert!(p.verify_checksum());
        assert!(!p.dont_frag());
    }

    #[test]
    fn parse_fragment_with_options() {
        let p = Packet::new_checked(&FRAGMENT_WITH_OPTIONS[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.has_options());
        assert_eq!(p.options_len(), 4);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 1);
        assert_eq!(p.ident(), 0x0102);
        assert!(p.more_frags());
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn emit_syn_header() {
        let mut buf = [0u8; 60];
        buf[20..].copy_from_slice(&SYN_PACKET[20..]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp(0);
        p.set_ecn(0);
        p.set_total_len(60);
        p.set_ident(0x1c46);
        p.clear_flags();
        p.set_dont_frag(true);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::TCP);
        p.set_src_addr(Ipv4Addr::new(192, 168, 1, 10));
        p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 80));
        p.fill_checksum();
        assert_eq!(buf, SYN_PACKET);
    }

    #[test]
    fn emit_fragment_fields() {
        let mut buf = FRAGMENT_WITH_OPTIONS;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_dscp(10);
        p.set_ecn(2);
        p.set_more_frags(false);
        p.set_dont_frag(true);
        p.set_frag_offset(8);
        p.options_mut()[3] = 1;
        p.payload_mut()[0] = 0;
        assert_eq!(p.dscp(), 10);
        assert_eq!(p.ecn(), 2);
        assert!(!p.more_frags() && p.dont_frag());
        assert_eq!(p.frag_offset(), 8);
        assert_eq!(&buf[1..2], &[0x2a]);
        assert_eq!(&buf[6..8], &[0x40, 0x01]);
        assert_eq!(buf[23], 1);
        assert_eq!(buf[24], 0);
    }

    #[test]
    fn offload_writes_zero() {
        let mut buf = SYN_PACKET;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum_offload(ChecksumCaps::ALL);
        assert_eq!(p.checksum(), 0);
        p.fill_checksum_offload(ChecksumCaps::NONE);
        assert_eq!(p.checksum(), 0x5274);
    }

    #[test]
    fn incremental_rewrites_match_full() {
        let mut buf = SYN_PACKET;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.rewrite_src_addr(Ipv4Addr::new(172, 16, 5, 1));
        p.rewrite_dst_addr(Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(p.decrement_ttl(), 63);
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(incremental, p.checksum());
    }

    #[test]
    fn decrement_ttl_stops_at_zero() {
        let mut buf = FRAGMENT_WITH_OPTIONS;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        assert_eq!(p.decrement_ttl(), 0);
        assert_eq!(p.decrement_ttl(), 0);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut buf = SYN_PACKET;
        buf[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadVersion
        );
        buf[0] = 0x44;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
        buf[0] = 0x4f;
        buf[3] = 40;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
        let mut buf = SYN_PACKET;
        buf[3] = 0x3d;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Truncated);
        buf[2] = 0;
        buf[3] = 19;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn quoted_packet_may_be_cut_short() {
        let quoted = &SYN_PACKET[..28];
        assert_eq!(Packet::new_checked(quoted).unwrap_err(), Error::Truncated);
        let p = Packet::new_checked_quoted(quoted).unwrap();
        assert_eq!(p.payload(), &SYN_PACKET[20..28]);
        assert_eq!(p.payload_len(), 40);
    }

    #[test]
    fn every_prefix() {
        for fixture in [&SYN_PACKET[..], &UDP_PACKET[..], &FRAGMENT_WITH_OPTIONS[..]] {
            let total = usize::from(u16::from_be_bytes([fixture[2], fixture[3]]));
            for n in 0..fixture.len() {
                match Packet::new_checked(&fixture[..n]) {
                    Ok(p) => {
                        assert!(n >= total);
                        exercise(&p);
                    }
                    Err(e) => {
                        assert!(n < total);
                        assert_eq!(e, Error::Truncated);
                    }
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
            p.ihl(),
            p.header_len(),
            p.has_options(),
            p.options_len(),
        );
        let _ = (
            p.options(),
            p.dscp(),
            p.ecn(),
            p.total_len(),
            p.ident(),
            p.dont_frag(),
        );
        let _ = (
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
            p.ttl(),
            p.protocol(),
        );
        let _ = (
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
            p.verify_checksum(),
        );
        let _ = (p.payload_len(), p.payload());
    }

    pub(crate) fn exercise_mut(bytes: &mut [u8]) {
        let mut p = Packet::new_unchecked(bytes);
        let _ = p.options_mut().len();
        let _ = p.payload_mut().len();
        p.decrement_ttl();
        p.rewrite_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.rewrite_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        p.fill_checksum();
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                exercise(&p);
                exercise_mut(&mut bytes);
            } else if let Ok(p) = Packet::new_checked_quoted(&bytes[..]) {
                exercise(&p);
                exercise_mut(&mut bytes);
            }
        }

        #[test]
        fn headers_with_version_4_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 20..80)) {
            bytes[0] = 0x40 | (bytes[0] & 0x0f);
            if let Ok(p) = Packet::new_checked_quoted(&bytes[..]) {
                exercise(&p);
                exercise_mut(&mut bytes);
            }
        }
    }
}
