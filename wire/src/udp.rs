//! UDP headers (RFC 768).

use std::net::IpAddr;

use crate::checksum::{self, ChecksumCaps};
use crate::ethernet::{read_u16, write_u16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// The length of a UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram. The length field, not the buffer, bounds the payload and
/// the checksum.
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

    /// Checks that the header fits and that the length field covers the header and
    /// fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < field_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header plus payload, in bytes.
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// True when the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field; zero means "no checksum" over IPv4.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = usize::from(self.len()).min(data.len());
        &data[..end.max(HEADER_LEN.min(data.len()))]
    }

    /// The payload, from the header to the length field.
    pub fn payload(&self) -> &[u8] {
        let datagram = self.datagram();
        &datagram[HEADER_LEN.min(datagram.len())..]
    }

    /// True when the checksum is correct. A zero checksum is accepted over IPv4
    /// (sender computed none) and rejected over IPv6, where it is mandatory.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let datagram = self.datagram();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::UDP, datagram.len() as u32);
        checksum::combine(&[pseudo, checksum::data(datagram)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port, leaving the checksum alone.
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    /// Sets the destination port, leaving the checksum alone.
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Computes the checksum over the pseudo-header and the datagram (as far as the
    /// length field says) and writes it; a computed zero is sent as 0xffff.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let datagram = self.datagram();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::UDP, datagram.len() as u32);
        let cks = !checksum::combine(&[pseudo, checksum::data(datagram)]);
        self.set_checksum(if cks == 0 { 0xffff } else { cks });
    }

    /// Where the port computes UDP checksums, writes only the pseudo-header sum for
    /// the NIC to finish; else computes the checksum in full.
    pub fn fill_checksum_offload(&mut self, caps: ChecksumCaps, src: IpAddr, dst: IpAddr) {
        if caps.udp {
            let len = self.datagram().len() as u32;
            self.set_checksum(checksum::pseudo_header(src, dst, IpProtocol::UDP, len));
        } else {
            self.fill_checksum(src, dst);
        }
    }

    fn update_checksum(&mut self, update: impl FnOnce(u16) -> u16) {
        let old = self.checksum();
        // Zero means no checksum (IPv4): there is nothing to keep up to date.
        if old != 0 {
            let new = update(old);
            self.set_checksum(if new == 0 { 0xffff } else { new });
        }
    }

    /// Replaces the source port and updates the checksum incrementally (RFC 1624);
    /// a zero checksum stays zero.
    pub fn rewrite_src_port(&mut self, port: u16) {
        let old = self.src_port();
        self.update_checksum(|c| checksum::update_u16(c, old, port));
        self.set_src_port(port);
    }

    /// Replaces the destination port and updates the checksum incrementally.
    pub fn rewrite_dst_port(&mut self, port: u16) {
        let old = self.dst_port();
        self.update_checksum(|c| checksum::update_u16(c, old, port));
        self.set_dst_port(port);
    }

    /// Updates the checksum for an address of the pseudo-header that the IP layer
    /// rewrote from `old` to `new`; a zero checksum stays zero.
    pub fn update_pseudo_header_addr(&mut self, old: IpAddr, new: IpAddr) {
        self.update_checksum(|c| checksum::update_ip_addr(c, old, new));
    }

    /// The payload, mutable; bounded as [`payload`](Self::payload).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.len()).min(len).max(HEADER_LEN.min(len));
        &mut self.buffer.as_mut()[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    /// A datagram from 10.0.0.1:53000 to 10.0.0.53:53 with an odd-length payload,
    /// followed by bytes past the length field.
    #[rustfmt::skip]
    pub(crate) static DATAGRAM: [u8; 16] = [
        // source port 53000, destination port 53
        0xcf, 0x08, 0x00, 0x35,
        // length 13, checksum
        0x00, 0x0d, 0xd8, 0x8e,
        // payload "hello"
        0x68, 0x65, 0x6c, 0x6c, 0x6f,
        // trailing bytes, not part of the datagram
        0x00, 0x00, 0x00,
    ];

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);

    #[test]
    fn parse() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 13);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0xd88e);
        assert_eq!(p.payload(), b"hello");
        assert!(p.verify_checksum(SRC.into(), DST.into()));
        assert!(!p.verify_checksum(DST.into(), DST.into()));
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(53000);
        p.set_dst_port(53);
        p.set_len(13);
        p.payload_mut().copy_from_slice(b"hello");
        p.fill_checksum(SRC.into(), DST.into());
        assert_eq!(buf, DATAGRAM);
    }

    #[test]
    fn zero_checksum() {
        let mut buf = DATAGRAM;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_checksum(0);
        assert!(p.verify_checksum(SRC.into(), DST.into()));
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        assert!(!p.verify_checksum(v6, v6));
        p.rewrite_src_port(1);
        p.update_pseudo_header_addr(SRC.into(), DST.into());
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_all_ones() {
        // Find a source port that makes the checksum come out as zero.
        let mut buf = DATAGRAM;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        let port = (0..=u16::MAX)
            .find(|&port| {
                p.set_src_port(port);
                p.fill_checksum(SRC.into(), DST.into());
                p.checksum() == 0xffff
            })
            .unwrap();
        assert!(p.verify_checksum(SRC.into(), DST.into()));
        // Incremental updates keep it at 0xffff as well.
        p.rewrite_src_port(port.wrapping_add(1));
        p.rewrite_src_port(port);
        assert_eq!(p.checksum(), 0xffff);
    }

    #[test]
    fn offload_and_incremental() {
        let mut buf = DATAGRAM;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum_offload(ChecksumCaps::ALL, SRC.into(), DST.into());
        assert_eq!(
            p.checksum(),
            checksum::pseudo_header_v4(SRC, DST, IpProtocol::UDP, 13)
        );
        p.fill_checksum_offload(ChecksumCaps::NONE, SRC.into(), DST.into());
        assert_eq!(p.checksum(), 0xd88e);
        let new_src = Ipv4Addr::new(192, 0, 2, 1);
        p.rewrite_src_port(4000);
        p.rewrite_dst_port(5353);
        p.update_pseudo_header_addr(SRC.into(), new_src.into());
        assert!(p.verify_checksum(new_src.into(), DST.into()));
    }

    #[test]
    fn rejects_bad_length() {
        let mut buf = DATAGRAM;
        buf[5] = 7;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
        buf[5] = 17;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn every_prefix() {
        for n in 0..DATAGRAM.len() {
            match Packet::new_checked(&DATAGRAM[..n]) {
                Ok(p) => {
                    assert!(n >= 13);
                    exercise(&p);
                }
                Err(e) => {
                    assert!(n < 13);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
    }

    pub(crate) fn exercise(p: &Packet<&[u8]>) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.is_empty(),
            p.checksum(),
        );
        let _ = p.payload();
        let _ = p.verify_checksum(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::BROADCAST.into());
        let _ = p.verify_checksum(Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into());
    }

    pub(crate) fn exercise_mut(bytes: &mut [u8]) {
        let mut p = Packet::new_unchecked(bytes);
        p.rewrite_src_port(1);
        p.rewrite_dst_port(2);
        p.update_pseudo_header_addr(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::UNSPECIFIED.into());
        let _ = p.payload_mut().len();
        p.fill_checksum(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::BROADCAST.into());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                exercise(&p);
                exercise_mut(&mut bytes);
            }
        }
    }
}
