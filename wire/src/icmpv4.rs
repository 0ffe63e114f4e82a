//! ICMP for IPv4 (RFC 792, RFC 1191): echo, and errors that quote the packet that
//! caused them.

use crate::checksum;
use crate::ethernet::{read_u16, write_u16};
use crate::{Error, Result};

/// An ICMPv4 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message(pub u8);

impl Message {
    /// Echo reply.
    pub const ECHO_REPLY: Message = Message(0);
    /// Destination unreachable (error; codes in [`unreachable`](mod@unreachable)).
    pub const DST_UNREACHABLE: Message = Message(3);
    /// Source quench (error, deprecated).
    pub const SOURCE_QUENCH: Message = Message(4);
    /// Redirect (error).
    pub const REDIRECT: Message = Message(5);
    /// Echo request.
    pub const ECHO_REQUEST: Message = Message(8);
    /// Router advertisement.
    pub const ROUTER_ADVERT: Message = Message(9);
    /// Router solicitation.
    pub const ROUTER_SOLICIT: Message = Message(10);
    /// Time exceeded (error; code 0 TTL, 1 reassembly).
    pub const TIME_EXCEEDED: Message = Message(11);
    /// Parameter problem (error).
    pub const PARAM_PROBLEM: Message = Message(12);
    /// Timestamp request.
    pub const TIMESTAMP: Message = Message(13);
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: Message = Message(14);

    /// True for the error messages, whose data quotes the offending packet.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Message::DST_UNREACHABLE
                | Message::SOURCE_QUENCH
                | Message::REDIRECT
                | Message::TIME_EXCEEDED
                | Message::PARAM_PROBLEM
        )
    }
}

/// Codes of [`Message::DST_UNREACHABLE`].
pub mod unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; the next-hop MTU is in the header (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Source route failed.
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of [`Message::TIME_EXCEEDED`].
pub mod time_exceeded {
    /// TTL exceeded in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY: u8 = 1;
}

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The four bytes whose meaning depends on the type.
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
}

/// The length of the ICMPv4 header: type, code, checksum and four type-specific bytes.
pub const HEADER_LEN: usize = field::REST.end;

/// A view of an ICMPv4 message. The buffer must be exactly the message (the IPv4
/// payload): the checksum covers all of it.
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

    /// The echo identifier (echo request and reply).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// The echo sequence number (echo request and reply).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// The next-hop MTU of a "fragmentation needed" message (0 from old routers).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }

    /// True for error messages.
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// True for destination unreachable / fragmentation needed.
    pub fn is_frag_needed(&self) -> bool {
        self.msg_type() == Message::DST_UNREACHABLE && self.msg_code() == unreachable::FRAG_NEEDED
    }

    /// Everything after the eight-byte header: the echo payload, or the quoted packet.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// For an error message, the quoted packet: its IPv4 header and at least the first
    /// eight bytes of its payload. View it with `Ipv4Packet::new_checked_quoted`.
    pub fn inner_packet(&self) -> Option<&[u8]> {
        self.is_error().then(|| self.data())
    }

    /// True when the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
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

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, ident);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, seq: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, seq);
    }

    /// Sets the next-hop MTU.
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU.start, mtu);
    }

    /// Computes the checksum over the whole message and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
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
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::ipv4::Packet as Ipv4Packet;
    use crate::IpProtocol;

    #[rustfmt::skip]
    pub(crate) static ECHO_REQUEST: [u8; 16] = [
        // type echo request, code 0, checksum
        0x08, 0x00, 0x54, 0x35,
        // identifier 0x1234, sequence 1
        0x12, 0x34, 0x00, 0x01,
        // payload "abcdefgh"
        0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    /// Fragmentation needed (MTU 1400), quoting the IPv4 header and the first eight
    /// TCP bytes of a SYN from 192.168.1.10:50082 to 10.0.0.80:80.
    #[rustfmt::skip]
    pub(crate) static FRAG_NEEDED: [u8; 36] = [
        // type destination unreachable, code fragmentation needed, checksum
        0x03, 0x04, 0x2d, 0xf6,
        // unused, next-hop MTU 1400
        0x00, 0x00, 0x05, 0x78,
        // quoted IPv4: version 4, IHL 5, total length 60
        0x45, 0x00, 0x00, 0x3c,
        // identification, DF
        0x1c, 0x46, 0x40, 0x00,
        // TTL 64, TCP, header checksum
        0x40, 0x06, 0x52, 0x74,
        // source 192.168.1.10
        0xc0, 0xa8, 0x01, 0x0a,
        // destination 10.0.0.80
        0x0a, 0x00, 0x00, 0x50,
        // quoted TCP: ports 50082 -> 80
        0xc3, 0xa2, 0x00, 0x50,
        // sequence number
        0x3b, 0x9a, 0xca, 0x00,
    ];

    #[test]
    fn parse_echo() {
        let p = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), Message::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x5435);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.rest_of_header(), 0x1234_0001);
        assert!(!p.is_error());
        assert!(!p.is_frag_needed());
        assert_eq!(p.data(), b"abcdefgh");
        assert_eq!(p.inner_packet(), None);
        assert!(p.verify_checksum());
    }

    #[test]
    fn parse_frag_needed_and_inner() {
        let p = Packet::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert_eq!(p.msg_type(), Message::DST_UNREACHABLE);
        assert_eq!(p.msg_code(), unreachable::FRAG_NEEDED);
        assert!(p.is_error() && p.is_frag_needed());
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(p.verify_checksum());
        let inner = Ipv4Packet::new_checked_quoted(p.inner_packet().unwrap()).unwrap();
        assert_eq!(inner.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(10, 0, 0, 80));
        assert_eq!(inner.protocol(), IpProtocol::TCP);
        assert_eq!(
            inner.payload(),
            &[0xc3, 0xa2, 0x00, 0x50, 0x3b, 0x9a, 0xca, 0x00]
        );
    }

    #[test]
    fn emit_echo_and_reply() {
        let mut buf = [0u8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::ECHO_REQUEST);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"abcdefgh");
        p.fill_checksum();
        assert_eq!(buf, ECHO_REQUEST);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::ECHO_REPLY);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), 0x5c35);
    }

    #[test]
    fn emit_frag_needed() {
        let mut buf = [0u8; 36];
        buf[8..].copy_from_slice(&FRAG_NEEDED[8..]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::DST_UNREACHABLE);
        p.set_msg_code(unreachable::FRAG_NEEDED);
        p.set_rest_of_header(0);
        p.set_next_hop_mtu(1400);
        p.fill_checksum();
        assert_eq!(buf, FRAG_NEEDED);
    }

    #[test]
    fn every_prefix() {
        for fixture in [&ECHO_REQUEST[..], &FRAG_NEEDED[..]] {
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
        let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.rest_of_header());
        let _ = (
            p.echo_ident(),
            p.echo_seq_no(),
            p.next_hop_mtu(),
            p.is_error(),
        );
        let _ = (p.is_frag_needed(), p.data(), p.verify_checksum());
        if let Some(inner) = p.inner_packet() {
            if let Ok(ip) = Ipv4Packet::new_checked_quoted(inner) {
                crate::ipv4::tests::exercise(&ip);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                exercise(&p);
                let mut p = Packet::new_unchecked(&mut bytes[..]);
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
            }
        }
    }
}
