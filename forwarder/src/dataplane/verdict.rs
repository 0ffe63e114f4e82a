//! What `Worker::process` decides for a packet, and why packets are dropped.

use crate::dataplane::types::WorkerId;

/// The outcome of processing one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place (L2 header included: source MAC = the port's MAC,
    /// destination MAC = next hop); transmit it on `port`.
    Tx {
        /// Output port.
        port: u16,
    },
    /// Drop the packet; the reason has been counted.
    Drop(DropReason),
    /// Pass the untouched packet to worker `0`, which owns its connection.
    Redirect(WorkerId),
    /// Pass the untouched packet to the control plane (ARP, NDP, ICMP echo to local
    /// addresses, other traffic for the box itself).
    Control,
}

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $name:ident => $text:literal, )*) => {
        /// Why a packet was dropped. Small and `Copy`; `reason as usize` indexes
        /// [`Counters::drops`](crate::dataplane::counters::Counters::drops).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons (length of the counter array).
            pub const COUNT: usize = DropReason::ALL.len();

            /// A short snake_case name for metrics and logs.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$name => $text,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// The frame is shorter than its Ethernet, IP or L4 header, or than the IP length.
    Truncated => "truncated",
    /// IP header invalid: bad version, IHL below 5, total length below the header, or an
    /// IPv6 extension-header chain that cannot be walked.
    BadIpHeader => "bad_ip_header",
    /// IPv4 header checksum wrong.
    BadIpChecksum => "bad_ip_checksum",
    /// TCP data offset out of range, or UDP length disagreeing with the IP length.
    BadL4Header => "bad_l4_header",
    /// TCP/UDP checksum wrong (only checked when `verify_checksums` is on).
    BadL4Checksum => "bad_l4_checksum",
    /// TCP option list overruns the header (seen where options are walked: TOA, MSS).
    BadTcpOptions => "bad_tcp_options",
    /// Ethertype other than IPv4, IPv6 and ARP, or a second VLAN tag.
    UnknownEthertype => "unknown_ethertype",
    /// Destination MAC or IP address is not ours.
    NotForUs => "not_for_us",
    /// Addressed to a VIP, but no service matches the port and protocol.
    NoService => "no_service",
    /// The service has no real server with weight.
    NoRealServer => "no_real_server",
    /// A non-SYN TCP segment (or an ICMP error) without a connection.
    NoConnection => "no_connection",
    /// An IP fragment (fragments are dropped in the balancer path).
    Fragment => "fragment",
    /// TTL or hop limit would reach zero.
    TtlExceeded => "ttl_exceeded",
    /// The connection table is full.
    ConnTableFull => "conn_table_full",
    /// No local port left (FULLNAT), or no local address of the real server's family.
    LaddrExhausted => "laddr_exhausted",
    /// RSS-aware policy: no local port makes the reply land on this worker.
    NotSteerable => "not_steerable",
    /// Not enough headroom or tailroom to grow the packet (TOA, tunnel, NAT64).
    TxNoRoom => "tx_no_room",
    /// ICMP message that the balancer does not translate (or echo to a VIP when
    /// answering is off).
    IcmpUnsupported => "icmp_unsupported",
    /// Valid, but not handled: IPv6 extension headers in NAT64, an IP protocol other than
    /// TCP, UDP and ICMP towards a VIP, an unknown output port.
    Unsupported => "unsupported",
    /// Dropped on purpose by the `drop_packet` fault (`[fault]`: testing the harness).
    FaultInjected => "fault_injected",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_counters() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(!r.name().is_empty());
        }
        assert_eq!(DropReason::COUNT, DropReason::ALL.len());
        assert_eq!(DropReason::Truncated.name(), "truncated");
    }
}
