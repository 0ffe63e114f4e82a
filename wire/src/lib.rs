//! Typed, zero-copy views over the packet headers that a layer-4 load balancer reads and
//! rewrites, plus the one checksum module everything else uses.
//!
//! Every header is a `Packet<T: AsRef<[u8]>>` (smoltcp style) that holds only the buffer.
//! Untrusted bytes go through `new_checked`; once it (or `check_len`) succeeds, no
//! getter panics. Setters need `T: AsMut<[u8]>` as well. Nothing here allocates.
//!
//! A view covers exactly one header and what follows it: hand a TCP view the IP
//! payload (`Ipv4Packet::payload`), not the rest of the frame, because the TCP and UDP
//! checksums cover the whole buffer the view was made from.
#![forbid(unsafe_code)]

use std::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use arp::{Operation as ArpOperation, Packet as ArpPacket};
pub use checksum::ChecksumCaps;
pub use ethernet::{Address as EthernetAddress, EtherType, Frame as EthernetFrame};
pub use icmpv4::{Message as Icmpv4Message, Packet as Icmpv4Packet};
pub use icmpv6::{Message as Icmpv6Message, Packet as Icmpv6Packet};
pub use ip::IpProtocol;
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::{FragmentInfo as Ipv6FragmentInfo, Packet as Ipv6Packet, UpperLayer};
pub use tcp::{Flags as TcpFlags, OptionIter as TcpOptionIter, Packet as TcpPacket, TcpOption};
pub use udp::Packet as UdpPacket;

/// Why a buffer could not be viewed as a header. Small and `Copy` so that the fast path
/// can count it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header, or than a length field says.
    Truncated,
    /// A field holds a value the format does not allow, such as a header length below
    /// the fixed header or a TCP option whose length is 0 or 1.
    Malformed,
    /// The IP version field is not the version this view expects.
    BadVersion,
    /// Well formed, but outside what this crate handles: ARP for anything but
    /// Ethernet/IPv4, or an IPv6 extension-header chain longer than the walker's bound.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Truncated => "packet truncated: the buffer is shorter than its headers say",
            Error::Malformed => "malformed packet: a header field holds an impossible value",
            Error::BadVersion => "wrong IP version for this header",
            Error::Unsupported => "unsupported packet: valid, but not handled by l4lab-wire",
        };
        f.write_str(text)
    }
}

impl std::error::Error for Error {}

/// The result of parsing: `Ok` or one of the [`Error`] kinds.
pub type Result<T> = core::result::Result<T, Error>;
