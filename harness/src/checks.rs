//! Checks that need no connection state: checksums recomputed from scratch, and RSS
//! affinity of connections.
//!
//! The checksum code is the harness's own RFC 1071 one's-complement sum over headers
//! that etherparse has sliced; it shares nothing with the forwarder's incremental
//! (RFC 1624) updates, so the two can disagree when one is wrong.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket};

use crate::packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::rss::{RssFlow, RssModel};

/// The RFC 1071 sum of `data` (odd trailing byte padded with zero), folded to 16 bits
/// but not complemented, starting from `initial`.
pub fn ones_complement_sum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Folded above: fits in 16 bits.
    u16::try_from(sum).unwrap_or(0xffff)
}

/// The Internet checksum of `data` with `data`'s own checksum field treated as zero:
/// pass the bytes with that field zeroed. A whole header with a correct checksum in
/// place sums to 0xffff in [`ones_complement_sum`].
pub fn internet_checksum(initial: u32, data: &[u8]) -> u16 {
    !ones_complement_sum(initial, data)
}

/// The pseudo-header sum (RFC 768 / 793 for IPv4, RFC 8200 §8.1 for IPv6).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, l4_len: usize) -> u32 {
    let mut bytes = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            bytes.extend_from_slice(&s.octets());
            bytes.extend_from_slice(&d.octets());
            bytes.extend_from_slice(&[0, proto]);
            // An IPv4 payload is < 64 KiB.
            bytes.extend_from_slice(&u16::try_from(l4_len).unwrap_or(u16::MAX).to_be_bytes());
        }
        (s, d) => {
            bytes.extend_from_slice(&v6(s));
            bytes.extend_from_slice(&v6(d));
            bytes.extend_from_slice(&u32::try_from(l4_len).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, proto]);
        }
    }
    u32::from(ones_complement_sum(0, &bytes))
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Which checksum of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumKind {
    /// IPv4 header checksum.
    Ipv4Header,
    /// TCP checksum.
    Tcp,
    /// UDP checksum.
    Udp,
    /// ICMPv4 checksum.
    Icmpv4,
    /// ICMPv6 checksum.
    Icmpv6,
}

impl fmt::Display for ChecksumKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChecksumKind::Ipv4Header => "ipv4.checksum",
            ChecksumKind::Tcp => "tcp.checksum",
            ChecksumKind::Udp => "udp.checksum",
            ChecksumKind::Icmpv4 => "icmpv4.checksum",
            ChecksumKind::Icmpv6 => "icmpv6.checksum",
        })
    }
}

/// A checksum that does not match the one recomputed from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} is 0x{got:04x}, recomputed 0x{expected:04x}")]
pub struct ChecksumMismatch {
    /// Which checksum.
    pub kind: ChecksumKind,
    /// The value recomputed from the bytes.
    pub expected: u16,
    /// The value in the packet.
    pub got: u16,
}

/// Why [`checksums_valid`] could not judge a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// The frame does not parse.
    #[error("cannot check checksums of a malformed packet: {0}")]
    Malformed(String),
    /// A checksum is wrong.
    #[error(transparent)]
    Mismatch(#[from] ChecksumMismatch),
}

/// Recomputes the IPv4 header checksum and the TCP/UDP/ICMP checksum of an Ethernet
/// frame from scratch and compares them with the packet's. Non-IP frames and
/// fragments' L4 checksums (which need reassembly) pass; a UDP checksum of zero over
/// IPv4 means "none" and passes.
pub fn checksums_valid(frame: &[u8]) -> Result<(), ChecksumError> {
    let sliced =
        SlicedPacket::from_ethernet(frame).map_err(|e| ChecksumError::Malformed(e.to_string()))?;
    let Some(net) = &sliced.net else {
        return Ok(());
    };
    let (src, dst, payload) = match net {
        NetSlice::Ipv4(ip) => {
            let header = ip.header().slice();
            let got = ip.header().header_checksum();
            let mut zeroed = header.to_vec();
            zeroed[10] = 0;
            zeroed[11] = 0;
            let expected = internet_checksum(0, &zeroed);
            if got != expected {
                return Err(ChecksumMismatch {
                    kind: ChecksumKind::Ipv4Header,
                    expected,
                    got,
                }
                .into());
            }
            (
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
                ip.payload(),
            )
        }
        NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.payload(),
        ),
    };
    if payload.fragmented {
        return Ok(());
    }
    let proto = payload.ip_number.0;
    let l4 = payload.payload;
    let (kind, offset, pseudo) = match proto {
        PROTO_TCP => (ChecksumKind::Tcp, 16, true),
        PROTO_UDP => (ChecksumKind::Udp, 6, true),
        PROTO_ICMP if src.is_ipv4() => (ChecksumKind::Icmpv4, 2, false),
        PROTO_ICMPV6 if src.is_ipv6() => (ChecksumKind::Icmpv6, 2, true),
        _ => return Ok(()),
    };
    let Some(field) = l4.get(offset..offset + 2) else {
        return Err(ChecksumError::Malformed(format!(
            "{kind} field past the end of a {}-byte segment",
            l4.len()
        )));
    };
    let got = u16::from_be_bytes([field[0], field[1]]);
    if kind == ChecksumKind::Udp && got == 0 && src.is_ipv4() {
        return Ok(());
    }
    let mut zeroed = l4.to_vec();
    zeroed[offset] = 0;
    zeroed[offset + 1] = 0;
    let initial = if pseudo {
        pseudo_header_sum(src, dst, proto, l4.len())
    } else {
        0
    };
    let mut expected = internet_checksum(initial, &zeroed);
    if kind == ChecksumKind::Udp && expected == 0 {
        // RFC 768: a computed zero is sent as all ones.
        expected = 0xffff;
    }
    if got != expected {
        return Err(ChecksumMismatch {
            kind,
            expected,
            got,
        }
        .into());
    }
    Ok(())
}

/// Rewrites every checksum of an Ethernet frame (IPv4 header, TCP/UDP/ICMP) to its
/// correct value, in place. Frames that do not parse are left alone; returns whether
/// the frame was IP.
pub fn fix_checksums(frame: &mut [u8]) -> bool {
    let (ip_offset, l4_offset, l4_len, proto, src, dst, v4) = {
        let Ok(sliced) = SlicedPacket::from_ethernet(frame) else {
            return false;
        };
        let base = frame.as_ptr() as usize;
        let Some(net) = &sliced.net else {
            return false;
        };
        let (header, src, dst, payload, v4) = match net {
            NetSlice::Ipv4(ip) => (
                ip.header().slice(),
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
                ip.payload(),
                true,
            ),
            NetSlice::Ipv6(ip) => (
                ip.header().slice(),
                IpAddr::V6(ip.header().source_addr()),
                IpAddr::V6(ip.header().destination_addr()),
                ip.payload(),
                false,
            ),
        };
        let ip_offset = header.as_ptr() as usize - base;
        let l4_offset = if payload.fragmented {
            usize::MAX
        } else {
            payload.payload.as_ptr() as usize - base
        };
        (
            ip_offset,
            l4_offset,
            payload.payload.len(),
            payload.ip_number.0,
            src,
            dst,
            v4,
        )
    };
    if v4 {
        let ihl = usize::from(frame[ip_offset] & 0x0f) * 4;
        frame[ip_offset + 10] = 0;
        frame[ip_offset + 11] = 0;
        let sum = internet_checksum(0, &frame[ip_offset..ip_offset + ihl]);
        frame[ip_offset + 10..ip_offset + 12].copy_from_slice(&sum.to_be_bytes());
    }
    if l4_offset == usize::MAX {
        return true;
    }
    let (offset, pseudo) = match proto {
        PROTO_TCP => (16, true),
        PROTO_UDP => (6, true),
        PROTO_ICMP if v4 => (2, false),
        PROTO_ICMPV6 if !v4 => (2, true),
        _ => return true,
    };
    let segment = &mut frame[l4_offset..l4_offset + l4_len];
    if segment.len() < offset + 2 {
        return true;
    }
    segment[offset] = 0;
    segment[offset + 1] = 0;
    let initial = if pseudo {
        pseudo_header_sum(src, dst, proto, l4_len)
    } else {
        0
    };
    let mut sum = internet_checksum(initial, segment);
    if proto == PROTO_UDP && sum == 0 {
        sum = 0xffff;
    }
    segment[offset..offset + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// One packet of a connection, for [`rss_affinity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnPacket {
    /// The packet's index in the output stream.
    pub output: usize,
    /// Client → server (`true`) or the reply direction.
    pub from_client: bool,
    /// The queue it left by.
    pub queue: u16,
}

/// A connection's packets as the checker saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRecord {
    /// A name for messages, like `tcp 172.16.0.1:40000 → 10.0.0.100:80`.
    pub name: String,
    /// Its packets, in output order.
    pub packets: Vec<ConnPacket>,
}

/// A connection whose directions were handled by more than one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityViolation {
    /// The connection.
    pub conn: String,
    /// The first output packet handled by a worker other than the connection's first.
    pub output: usize,
    /// The worker that handled the connection's first packet.
    pub expected_worker: u16,
    /// The worker that handled this one.
    pub got_worker: u16,
}

/// For every connection, both directions were handled by one worker: the worker of a
/// packet is `queue_worker[queue it left by]` (a queue outside the map is its own
/// worker).
pub fn rss_affinity(conns: &[ConnRecord], queue_worker: &[u16]) -> Vec<AffinityViolation> {
    let worker = |q: u16| queue_worker.get(usize::from(q)).copied().unwrap_or(q);
    let mut out = Vec::new();
    for conn in conns {
        let Some(first) = conn.packets.first() else {
            continue;
        };
        let expected = worker(first.queue);
        let workers: BTreeSet<u16> = conn.packets.iter().map(|p| worker(p.queue)).collect();
        if workers.len() > 1 {
            if let Some(p) = conn.packets.iter().find(|p| worker(p.queue) != expected) {
                out.push(AffinityViolation {
                    conn: conn.name.clone(),
                    output: p.output,
                    expected_worker: expected,
                    got_worker: worker(p.queue),
                });
            }
        }
    }
    out
}

/// Both directions of a connection, as tuples, for [`rss_steering`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTuples {
    /// A name for messages.
    pub name: String,
    /// The first output packet of the connection (where the failure is reported).
    pub output: usize,
    /// Client → VIP, as the NIC sees the client's packets.
    pub request: RssFlow,
    /// RS → local address (FULLNAT) or RS → client (NAT), as the NIC sees replies.
    pub reply: RssFlow,
}

/// A connection whose replies a NIC's RSS delivers to another worker than its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteeringViolation {
    /// The connection.
    pub conn: String,
    /// Its first output packet.
    pub output: usize,
    /// Queue and worker of the requests.
    pub request: (u16, u16),
    /// Queue and worker of the replies.
    pub reply: (u16, u16),
}

/// With `model` (the NIC's key, hash types and RETA), do both directions of every
/// connection land on one worker? This is what RSS-aware local port choice promises when
/// no flow rules steer replies; with flow rules, replies need not pass it.
pub fn rss_steering(
    model: &RssModel,
    conns: &[ConnTuples],
    queue_worker: &[u16],
) -> Vec<SteeringViolation> {
    let worker = |q: u16| queue_worker.get(usize::from(q)).copied().unwrap_or(q);
    conns
        .iter()
        .filter_map(|c| {
            let (_, q_req) = model.queue(&c.request);
            let (_, q_rep) = model.queue(&c.reply);
            (worker(q_req) != worker(q_rep)).then(|| SteeringViolation {
                conn: c.name.clone(),
                output: c.output,
                request: (q_req, worker(q_req)),
                reply: (q_rep, worker(q_rep)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;
    use rstest::rstest;

    use super::*;

    fn frames() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut w = |b: Vec<u8>| out.push(b);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 7, 1000)
            .syn()
            .write(&mut v, b"abc")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(53, 5353)
            .write(&mut v, b"hello")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x21; 16], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v, b"v6 data")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x21; 16], 64)
            .icmpv6_echo_request(1, 2)
            .write(&mut v, b"ping")
            .unwrap();
        w(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut v, b"ping!")
            .unwrap();
        w(v);
        out
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            ones_complement_sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn builder_packets_are_valid() {
        for f in frames() {
            checksums_valid(&f).unwrap();
        }
    }

    /// Offsets from the start of the frame: IPv4 checksum at 14+10, TCP checksum at
    /// 14+20+16, UDP at 14+20+6, IPv6 TCP at 14+40+16, ICMPv6 at 14+40+2, ICMPv4 at 14+20+2.
    #[rstest]
    #[case(0, 24, ChecksumKind::Ipv4Header)]
    #[case(0, 50, ChecksumKind::Tcp)]
    #[case(0, 55, ChecksumKind::Tcp)] // a payload byte
    #[case(1, 40, ChecksumKind::Udp)]
    #[case(2, 70, ChecksumKind::Tcp)]
    #[case(2, 30, ChecksumKind::Tcp)] // a source address byte: pseudo-header
    #[case(3, 56, ChecksumKind::Icmpv6)]
    #[case(4, 36, ChecksumKind::Icmpv4)]
    fn a_flipped_bit_is_caught(
        #[case] frame: usize,
        #[case] byte: usize,
        #[case] kind: ChecksumKind,
    ) {
        let mut f = frames()[frame].clone();
        f[byte] ^= 0x40;
        match checksums_valid(&f) {
            Err(ChecksumError::Mismatch(m)) => assert_eq!(m.kind, kind),
            other => panic!("{other:?}"),
        }
        fix_checksums(&mut f);
        checksums_valid(&f).unwrap();
    }

    #[test]
    fn affinity() {
        let conn = |queues: &[u16]| ConnRecord {
            name: "c".into(),
            packets: queues
                .iter()
                .enumerate()
                .map(|(i, &q)| ConnPacket {
                    output: i,
                    from_client: i % 2 == 0,
                    queue: q,
                })
                .collect(),
        };
        assert!(rss_affinity(&[conn(&[1, 1, 1])], &[0, 1, 2, 3]).is_empty());
        // Queues 2 and 3 belong to worker 1.
        assert!(rss_affinity(&[conn(&[2, 3, 2])], &[0, 0, 1, 1]).is_empty());
        let v = rss_affinity(&[conn(&[1, 1, 2])], &[0, 1, 2, 3]);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].output, v[0].expected_worker, v[0].got_worker),
            (2, 1, 2)
        );
    }

    #[test]
    fn steering() {
        use crate::rss::{HashTypes, RssKey, L4};

        let model = RssModel::new(RssKey::microsoft(), HashTypes::ALL, 128, 4).unwrap();
        let flow = |s: &str, d: &str| {
            let s: std::net::SocketAddr = s.parse().unwrap();
            let d: std::net::SocketAddr = d.parse().unwrap();
            RssFlow {
                src: s.ip(),
                dst: d.ip(),
                l4: L4::Tcp,
                sport: s.port(),
                dport: d.port(),
            }
        };
        let request = flow("172.16.0.1:40000", "10.0.0.100:80");
        let (_, want) = model.queue(&request);
        // Local ports whose reply lands on the request's queue, and one that does not.
        let reply = |port: u16| flow("192.168.1.10:8080", &format!("192.168.100.1:{port}"));
        let good = (1025..)
            .find(|&p| model.queue(&reply(p)).1 == want)
            .unwrap();
        let bad = (1025..)
            .find(|&p| model.queue(&reply(p)).1 != want)
            .unwrap();
        let conn = |port| ConnTuples {
            name: "c".into(),
            output: 0,
            request,
            reply: reply(port),
        };
        let map = [0, 1, 2, 3];
        assert!(rss_steering(&model, &[conn(good)], &map).is_empty());
        assert_eq!(rss_steering(&model, &[conn(bad)], &map).len(), 1);
        // One worker owning every queue makes any port fine.
        assert!(rss_steering(&model, &[conn(bad)], &[0, 0, 0, 0]).is_empty());
    }
}
