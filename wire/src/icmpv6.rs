//! ICMP for IPv6 (RFC 4443): echo, and errors that quote the packet that caused them.

use std::net::Ipv6Addr;

use crate::checksum;
use crate::ethernet::{read_u16, write_u16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

/// An ICMPv6 message type. Types below 128 are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message(pub u8);

impl Message {
    /// Destination unreachable (error; codes in [`unreachable`](mod@unreachable)).
    pub const DST_UNREACHABLE: Message = Message(1);
    /// Packet too big (error; the MTU is in the header).
    pub const PKT_TOO_BIG: Message = Message(2);
    /// Time exceeded (error; code 0 hop limit, 1 reassembly).
    pub const TIME_EXCEEDED: Message = Message(3);
    /// Parameter problem (error; the pointer is in the header).
    pub const PARAM_PROBLEM: Message = Message(4);
    /// Echo request.
    pub const ECHO_REQUEST: Message = Message(128);
    /// Echo reply.
    pub const ECHO_REPLY: Message = Message(129);
    /// Router solicitation (NDP).
    pub const ROUTER_SOLICIT: Message = Message(133);
    /// Router advertisement (NDP).
    pub const ROUTER_ADVERT: Message = Message(134);
    /// Neighbor solicitation (NDP).
    pub const NEIGHBOR_SOLICIT: Message = Message(135);
    /// Neighbor advertisement (NDP).
    pub const NEIGHBOR_ADVERT: Message = Message(136);
    /// Redirect (NDP).
    pub const REDIRECT: Message = Message(137);

    /// True for error messages (types 0 to 127), whose data quotes the offending packet.
    pub fn is_error(self) -> bool {
        self.0 < 128
    }
}

/// Codes of [`Message::DST_UNREACHABLE`].
pub mod unreachable {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Address unreachable.
    pub const ADDRESS: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The four bytes whose meaning depends on the type: MTU, pointer, echo fields.
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
}

/// The length of the ICMPv6 header: type, code, checksum and four type-specific bytes.
pub const HEADER_LEN: usize = field::REST.end;

/// A view of an ICMPv6 message. The buffer must be exactly the message (the IPv6
/// upper-layer data): the checksum covers all of it.
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

    /// Checks that the eight-byte header fits.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message type.
    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    /// The message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The four type-specific bytes after the checksum.
    pub fn rest_of_header(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::REST];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The MTU of a packet-too-big message.
    pub fn mtu(&self) -> u32 {
        self.rest_of_header()
    }

    /// The pointer of a parameter-problem message.
    pub fn pointer(&self) -> u32 {
        self.rest_of_header()
    }

    /// The echo identifier (echo request and reply).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// The echo sequence number (echo request and reply).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// True for error messages.
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// True for packet too big.
    pub fn is_pkt_too_big(&self) -> bool {
        self.msg_type() == Message::PKT_TOO_BIG
    }

    /// Everything after the eight-byte header: the echo payload, or the quoted packet.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// For an error message, the quoted packet: as much of it as fits in the minimum
    /// MTU. View it with `Ipv6Packet::new_checked_quoted`.
    pub fn inner_packet(&self) -> Option<&[u8]> {
        self.is_error().then(|| self.data())
    }

    /// True when the checksum over the pseudo-header and the message is correct.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6, data.len() as u32);
        checksum::combine(&[pseudo, checksum::data(data)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, msg: Message) {
        self.buffer.as_mut()[field::TYPE] = msg.0;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the four type-specific bytes.
    pub fn set_rest_of_header(&mut self, value: u32) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the MTU of a packet-too-big message.
    pub fn set_mtu(&mut self, mtu: u32) {
        self.set_rest_of_header(mtu);
    }

    /// Sets the pointer of a parameter-problem message.
    pub fn set_pointer(&mut self, pointer: u32) {
        self.set_rest_of_header(pointer);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, ident);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, seq: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, seq);
    }

    /// Computes the checksum over the pseudo-header and the message and writes it.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6, data.len() as u32);
        let sum = checksum::combine(&[pseudo, checksum::data(data)]);
        self.set_checksum(!sum);
    }

    /// Updates the checksum for an address of the pseudo-header rewritten from `old`
    /// to `new` (RFC 1624).
    pub fn update_pseudo_header_addr(&mut self, old: Ipv6Addr, new: Ipv6Addr) {
        let cks = checksum::update_ipv6_addr(self.checksum(), old, new);
        self.set_checksum(cks);
    }

    /// The data after the header, mutable (echo payload or quoted packet).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ipv6::Packet as Ipv6Packet;

    fn addr(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    /// Echo request from 2001:db8::1 to 2001:db8::2.
    #[rustfmt::skip]
    pub(crate) static ECHO_REQUEST: [u8; 12] = [
        // type echo request, code 0, checksum
        0x80, 0x00, 0x4d, 0x48,
        // identifier 0x1234, sequence 1
        0x12, 0x34, 0x00, 0x01,
        // payload "abcd"
        0x61, 0x62, 0x63, 0x64,
    ];

    /// Packet too big (MTU 1280) from router 2001:db8::fe to 2001:db8::2, quoting the
    /// IPv6 header and first eight TCP bytes of a 1500-byte packet to 2001:db8::1.
    #[rustfmt::skip]
    pub(crate) static PKT_TOO_BIG: [u8; 56] = [
        // type packet too big, code 0, checksum
        0x02, 0x00, 0x0f, 0x7d,
        // MTU 1280
        0x00, 0x00, 0x05, 0x00,
        // quoted IPv6: version 6, traffic class 0, flow label 0
        0x60, 0x00, 0x00, 0x00,
        // payload length 1500, next header TCP, hop limit 64
        0x05, 0xdc, 0x06, 0x40,
        // source 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        // destination 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        // quoted TCP: ports 443 -> 50000, sequence number 1
        0x01, 0xbb, 0xc3, 0x50, 0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn parse_echo() {
        let p = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), Message::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x4d48);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert!(!p.is_error() && !p.is_pkt_too_big());
        assert_eq!(p.data(), b"abcd");
        assert_eq!(p.inner_packet(), None);
        assert!(p.verify_checksum(addr("2001:db8::1"), addr("2001:db8::2")));
        assert!(!p.verify_checksum(addr("2001:db8::2"), addr("2001:db8::3")));
    }

    #[test]
    fn parse_pkt_too_big_and_inner() {
        let p = Packet::new_checked(&PKT_TOO_BIG[..]).unwrap();
        assert_eq!(p.msg_type(), Message::PKT_TOO_BIG);
        assert!(p.is_error() && p.is_pkt_too_big());
        assert_eq!(p.mtu(), 1280);
        assert_eq!(p.pointer(), 1280);
        assert!(p.verify_checksum(addr("2001:db8::fe"), addr("2001:db8::2")));
        let inner = Ipv6Packet::new_checked_quoted(p.inner_packet().unwrap()).unwrap();
        assert_eq!(inner.src_addr(), addr("2001:db8::2"));
        assert_eq!(inner.dst_addr(), addr("2001:db8::1"));
        assert_eq!(inner.payload_len(), 1500);
        let (upper, tcp) = inner.upper_layer_data().unwrap();
        assert_eq!(upper.protocol, IpProtocol::TCP);
        assert_eq!(tcp, &[0x01, 0xbb, 0xc3, 0x50, 0, 0, 0, 1]);
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::ECHO_REQUEST);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"abcd");
        p.fill_checksum(addr("2001:db8::1"), addr("2001:db8::2"));
        assert_eq!(buf, ECHO_REQUEST);

        let mut buf = [0u8; 56];
        buf[8..].copy_from_slice(&PKT_TOO_BIG[8..]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::PKT_TOO_BIG);
        p.set_msg_code(0);
        p.set_pointer(7);
        p.set_mtu(1280);
        p.fill_checksum(addr("2001:db8::fe"), addr("2001:db8::2"));
        assert_eq!(buf, PKT_TOO_BIG);
    }

    #[test]
    fn incremental_address_update() {
        let mut buf = ECHO_REQUEST;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.update_pseudo_header_addr(addr("2001:db8::1"), addr("fd00::7"));
        assert!(p.verify_checksum(addr("fd00::7"), addr("2001:db8::2")));
    }

    #[test]
    fn every_prefix() {
        for fixture in [&ECHO_REQUEST[..], &PKT_TOO_BIG[..]] {
            for n in 0..fixture.len() {
                match Packet::new_checked(&fixture[..n]) {
                    Ok(p) => {
                        assert!(n >= HEADER_LEN);
                        exercise(&p);
                    }
                    Err(e) => assert_eq!((n < HEADER_LEN, e), (true, Error::Truncated)),
                }
            }
        }
    }

    pub(crate) fn exercise(p: &Packet<&[u8]>) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.checksum(),
            p.rest_of_header(),
            p.mtu(),
        );
        let _ = (p.pointer(), p.echo_ident(), p.echo_seq_no(), p.is_error());
        let _ = (p.is_pkt_too_big(), p.data());
        let _ = p.verify_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
        if let Some(inner) = p.inner_packet() {
            if let Ok(ip) = Ipv6Packet::new_checked_quoted(inner) {
                crate::ipv6::tests::exercise(&ip);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                exercise(&p);
                let mut p = Packet::new_unchecked(&mut bytes[..]);
                p.fill_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
                prop_assert!(p.verify_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED));
            }
        }
    }
}
