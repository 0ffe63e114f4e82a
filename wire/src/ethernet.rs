//! Ethernet II frames with at most one 802.1Q VLAN tag.

use std::fmt;

use crate::{Error, Result};

/// An EtherType. Compare with the associated constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// An 802.1Q VLAN tag follows.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// An 802.1ad (QinQ) service tag follows. Not unwrapped by [`Frame`].
    pub const QINQ: EtherType = EtherType(0x88a8);
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// The address in the first six bytes of `bytes`, or `None` if there are fewer.
    pub fn from_bytes(bytes: &[u8]) -> Option<Address> {
        bytes.get(..6)?.try_into().ok().map(Address)
    }

    /// The six octets.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the group bit is set (broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True when the group bit is clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// True when the locally-administered bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// Present only when `ETHERTYPE` is 0x8100.
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const VLAN_ETHERTYPE: Range<usize> = 16..18;
}

/// The length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::ETHERTYPE.end;
/// The length of a header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = field::VLAN_ETHERTYPE.end;

/// A view of an Ethernet II frame, with or without one 802.1Q tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it. Getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the whole header, VLAN tag included when the outer
    /// EtherType announces one.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination MAC address.
    pub fn dst_addr(&self) -> Address {
        Address(read6(&self.buffer.as_ref()[field::DESTINATION]))
    }

    /// The source MAC address.
    pub fn src_addr(&self) -> Address {
        Address(read6(&self.buffer.as_ref()[field::SOURCE]))
    }

    /// The outer EtherType: [`EtherType::VLAN`] on a tagged frame.
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// True when an 802.1Q tag follows the source address.
    pub fn has_vlan(&self) -> bool {
        self.ethertype() == EtherType::VLAN
    }

    /// The tag control information (PCP, DEI, VLAN id) of a tagged frame.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.has_vlan()
            .then(|| read_u16(self.buffer.as_ref(), field::VLAN_TCI.start))
    }

    /// The 12-bit VLAN id of a tagged frame.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// The 3-bit priority code point of a tagged frame.
    pub fn vlan_pcp(&self) -> Option<u8> {
        self.vlan_tci().map(|tci| (tci >> 13) as u8)
    }

    /// The EtherType of the payload: the inner one on a tagged frame.
    pub fn effective_ethertype(&self) -> EtherType {
        if self.has_vlan() {
            EtherType(read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE.start))
        } else {
            self.ethertype()
        }
    }

    /// The header length: 14, or 18 on a tagged frame. Equal to [`l3_offset`](Self::l3_offset).
    pub fn header_len(&self) -> usize {
        if self.has_vlan() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Where the layer-3 header starts in the frame.
    pub fn l3_offset(&self) -> usize {
        self.header_len()
    }

    /// The layer-3 payload.
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len();
        &self.buffer.as_ref()[start..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the outer EtherType. Setting [`EtherType::VLAN`] makes the frame tagged;
    /// the buffer must then hold [`VLAN_HEADER_LEN`] bytes.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, ethertype.0);
    }

    /// Sets the tag control information; the frame must already be tagged.
    pub fn set_vlan_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), field::VLAN_TCI.start, tci);
    }

    /// Sets the payload EtherType: the inner one on a tagged frame, else the outer one.
    pub fn set_effective_ethertype(&mut self, ethertype: EtherType) {
        if self.has_vlan() {
            write_u16(
                self.buffer.as_mut(),
                field::VLAN_ETHERTYPE.start,
                ethertype.0,
            );
        } else {
            self.set_ethertype(ethertype);
        }
    }

    /// Swaps source and destination addresses (for replies and macswap).
    pub fn swap_addrs(&mut self) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
    }

    /// The layer-3 payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

fn read6(bytes: &[u8]) -> [u8; 6] {
    let mut out = [0; 6];
    out.copy_from_slice(bytes);
    out
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

pub(crate) fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    #[rustfmt::skip]
    static UNTAGGED: [u8; 18] = [
        // destination 52:54:00:12:34:56
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        // source 52:54:00:ab:cd:ef
        0x52, 0x54, 0x00, 0xab, 0xcd, 0xef,
        // EtherType IPv4
        0x08, 0x00,
        // payload
        0x45, 0x00, 0x00, 0x14,
    ];

    #[rustfmt::skip]
    static TAGGED: [u8; 22] = [
        // destination ff:ff:ff:ff:ff:ff
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        // source 00:1b:21:3a:4f:10
        0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x10,
        // EtherType 802.1Q
        0x81, 0x00,
        // TCI: PCP 5, DEI 0, VLAN 100
        0xa0, 0x64,
        // inner EtherType IPv6
        0x86, 0xdd,
        // payload
        0x60, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parse_untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), Address([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.src_addr(), Address([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.effective_ethertype(), EtherType::IPV4);
        assert!(!f.has_vlan());
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.l3_offset(), 14);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x14]);
        assert!(f.dst_addr().is_unicast());
        assert_eq!(f.src_addr().to_string(), "52:54:00:ab:cd:ef");
    }

    #[test]
    fn parse_tagged() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert!(f.dst_addr().is_broadcast() && f.dst_addr().is_multicast());
        assert_eq!(f.ethertype(), EtherType::VLAN);
        assert_eq!(f.effective_ethertype(), EtherType::IPV6);
        assert_eq!(f.vlan_tci(), Some(0xa064));
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.vlan_pcp(), Some(5));
        assert_eq!(f.l3_offset(), 18);
        assert_eq!(f.payload(), &[0x60, 0, 0, 0]);
    }

    #[test]
    fn emit_untagged_and_tagged() {
        let mut buf = [0u8; 18];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(Address([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        f.set_src_addr(Address([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]));
        f.set_ethertype(EtherType::IPV4);
        f.payload_mut().copy_from_slice(&[0x45, 0x00, 0x00, 0x14]);
        assert_eq!(buf, UNTAGGED);

        let mut buf = [0u8; 22];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(Address::BROADCAST);
        f.set_src_addr(Address([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x10]));
        f.set_ethertype(EtherType::VLAN);
        f.set_vlan_tci(0xa064);
        f.set_effective_ethertype(EtherType::IPV6);
        f.payload_mut().copy_from_slice(&[0x60, 0, 0, 0]);
        assert_eq!(buf, TAGGED);
    }

    #[test]
    fn swap_addrs() {
        let mut buf = UNTAGGED;
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.swap_addrs();
        assert_eq!(f.src_addr(), Address([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.dst_addr(), Address([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]));
    }

    #[test]
    fn address_helpers() {
        assert_eq!(Address::from_bytes(&[1, 2, 3, 4, 5]), None);
        assert_eq!(
            Address::from_bytes(&[2, 2, 3, 4, 5, 6, 7]),
            Some(Address([2, 2, 3, 4, 5, 6]))
        );
        assert!(Address([2, 0, 0, 0, 0, 1]).is_local());
    }

    #[test]
    fn every_prefix() {
        for fixture in [&UNTAGGED[..], &TAGGED[..]] {
            for n in 0..fixture.len() {
                if let Ok(f) = Frame::new_checked(&fixture[..n]) {
                    assert!(n >= f.header_len());
                    exercise(&f);
                } else {
                    assert!(n < 18);
                }
            }
        }
    }

    pub(crate) fn exercise(f: &Frame<&[u8]>) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.ethertype(),
            f.effective_ethertype(),
        );
        let _ = (
            f.vlan_tci(),
            f.vlan_id(),
            f.vlan_pcp(),
            f.l3_offset(),
            f.payload(),
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(f) = Frame::new_checked(&bytes[..]) {
                exercise(&f);
            }
        }
    }
}
