//! Small value types shared by every part of the dataplane.

use std::net::IpAddr;

/// Time as the dataplane sees it: nanoseconds since an arbitrary origin chosen by the
/// caller (the TSC converted by the runtime, an injected clock in tests).
pub type Nanos = u64;

/// One second in [`Nanos`].
pub const SECOND: Nanos = 1_000_000_000;

/// Index of a worker lcore, dense from 0.
pub type WorkerId = u16;

/// Layer-4 protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo (v4) or ICMPv6 echo, keyed by identifier in the port fields.
    Icmp,
}

impl Proto {
    /// The IP protocol number (for ICMP, the v4 number; ICMPv6 is 58).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
        }
    }
}

/// A directed 5-tuple as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: Proto,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}

impl Tuple {
    /// The same flow seen from the other side.
    pub fn reversed(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}
