//! ARP for IPv4 over Ethernet (RFC 826), the only kind a layer-4 balancer answers.

use std::net::Ipv4Addr;

use crate::ethernet::{read_u16, write_u16, Address, EtherType};
use crate::{Error, Result};

/// An ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u16);

impl Operation {
    /// Who has the target protocol address?
    pub const REQUEST: Operation = Operation(1);
    /// The sender has the sender protocol address.
    pub const REPLY: Operation = Operation(2);
}

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// The length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;

/// The hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// A view of an Ethernet/IPv4 ARP packet.
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

    /// Checks that the fixed part fits, that it is Ethernet/IPv4 (else
    /// [`Error::Unsupported`]), and that the 28-byte packet fits.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::OPER.end {
            return Err(Error::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != EtherType::IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// The protocol type (IPv4).
    pub fn protocol_type(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::PTYPE.start))
    }

    /// The hardware address length (6).
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The protocol address length (4).
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        Operation(read_u16(self.buffer.as_ref(), field::OPER.start))
    }

    /// The sender's MAC address.
    pub fn source_hardware_addr(&self) -> Address {
        mac(&self.buffer.as_ref()[field::SHA])
    }

    /// The sender's IPv4 address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::SPA])
    }

    /// The target's MAC address (zero in a request).
    pub fn target_hardware_addr(&self) -> Address {
        mac(&self.buffer.as_ref()[field::THA])
    }

    /// The target's IPv4 address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::TPA])
    }

    /// True for a gratuitous ARP: sender and target protocol addresses equal.
    pub fn is_gratuitous(&self) -> bool {
        self.source_protocol_addr() == self.target_protocol_addr()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE.start, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE.start, value.0);
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Writes the four fields that make this an Ethernet/IPv4 ARP packet.
    pub fn set_ethernet_ipv4(&mut self) {
        self.set_hardware_type(HTYPE_ETHERNET);
        self.set_protocol_type(EtherType::IPV4);
        self.set_hardware_len(6);
        self.set_protocol_len(4);
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER.start, op.0);
    }

    /// Sets the sender's MAC address.
    pub fn set_source_hardware_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender's IPv4 address.
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target's MAC address.
    pub fn set_target_hardware_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target's IPv4 address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }

    /// Turns a request into the reply that `our_mac` owns the target address.
    pub fn make_reply(&mut self, our_mac: Address) {
        let (asker_mac, asker_ip) = (self.source_hardware_addr(), self.source_protocol_addr());
        let wanted_ip = self.target_protocol_addr();
        self.set_operation(Operation::REPLY);
        self.set_source_hardware_addr(our_mac);
        self.set_source_protocol_addr(wanted_ip);
        self.set_target_hardware_addr(asker_mac);
        self.set_target_protocol_addr(asker_ip);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

fn mac(bytes: &[u8]) -> Address {
    let mut out = [0u8; 6];
    out.copy_from_slice(bytes);
    Address(out)
}

fn ip(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Who has 10.0.0.80? Tell 10.0.0.1.
    #[rustfmt::skip]
    pub(crate) static REQUEST: [u8; 28] = [
        // hardware Ethernet, protocol IPv4
        0x00, 0x01, 0x08, 0x00,
        // hardware length 6, protocol length 4, operation request
        0x06, 0x04, 0x00, 0x01,
        // sender MAC 52:54:00:ab:cd:ef
        0x52, 0x54, 0x00, 0xab, 0xcd, 0xef,
        // sender IPv4 10.0.0.1
        0x0a, 0x00, 0x00, 0x01,
        // target MAC unknown
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // target IPv4 10.0.0.80
        0x0a, 0x00, 0x00, 0x50,
    ];

    /// 10.0.0.80 is at 52:54:00:12:34:56.
    #[rustfmt::skip]
    static REPLY: [u8; 28] = [
        // hardware Ethernet, protocol IPv4
        0x00, 0x01, 0x08, 0x00,
        // hardware length 6, protocol length 4, operation reply
        0x06, 0x04, 0x00, 0x02,
        // sender MAC 52:54:00:12:34:56
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        // sender IPv4 10.0.0.80
        0x0a, 0x00, 0x00, 0x50,
        // target MAC 52:54:00:ab:cd:ef
        0x52, 0x54, 0x00, 0xab, 0xcd, 0xef,
        // target IPv4 10.0.0.1
        0x0a, 0x00, 0x00, 0x01,
    ];

    const OUR_MAC: Address = Address([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::IPV4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), Operation::REQUEST);
        assert_eq!(
            p.source_hardware_addr(),
            Address([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef])
        );
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_hardware_addr(), Address::default());
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 80));
        assert!(!p.is_gratuitous());
    }

    #[test]
    fn reply_to_request() {
        let mut buf = REQUEST;
        Packet::new_unchecked(&mut buf[..]).make_reply(OUR_MAC);
        assert_eq!(buf, REPLY);
    }

    #[test]
    fn emit_request() {
        let mut buf = [0xffu8; 28];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_ethernet_ipv4();
        p.set_operation(Operation::REQUEST);
        p.set_source_hardware_addr(Address([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]));
        p.set_source_protocol_addr(Ipv4Addr::new(10, 0, 0, 1));
        p.set_target_hardware_addr(Address::default());
        p.set_target_protocol_addr(Ipv4Addr::new(10, 0, 0, 80));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn rejects_other_kinds() {
        let mut buf = REQUEST;
        buf[1] = 6; // IEEE 802 hardware
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::Unsupported
        );
        let mut buf = REQUEST;
        buf[5] = 16; // IPv6-sized protocol addresses
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::Unsupported
        );
    }

    #[test]
    fn every_prefix() {
        for n in 0..REQUEST.len() {
            assert_eq!(
                Packet::new_checked(&REQUEST[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        exercise(&Packet::new_checked(&REPLY[..]).unwrap());
    }

    pub(crate) fn exercise(p: &Packet<&[u8]>) {
        let _ = (
            p.hardware_type(),
            p.protocol_type(),
            p.hardware_len(),
            p.protocol_len(),
        );
        let _ = (
            p.operation(),
            p.source_hardware_addr(),
            p.source_protocol_addr(),
        );
        let _ = (
            p.target_hardware_addr(),
            p.target_protocol_addr(),
            p.is_gratuitous(),
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if bytes.len() >= 6 {
                // Mostly valid type fields, so that the accessors run.
                bytes[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                exercise(&p);
                Packet::new_unchecked(&mut bytes[..]).make_reply(OUR_MAC);
            }
        }
    }
}
