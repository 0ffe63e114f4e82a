//! `harness replay --retarget VIP:PORT`: any user capture as a scenario input.
//!
//! Every TCP/UDP flow of the capture is pointed at the service: the packets its
//! initiator sent get destination VIP:PORT; the other side's packets are left out (the
//! topology's responder plays the servers). The initiator is the sender of the first
//! packet seen, or the receiver of a first SYN-ACK. Flows stay distinct: when two flows
//! of one client endpoint went to different servers, the later one gets a new client
//! port. IPv4 header and TCP/UDP checksums are recomputed with etherparse.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use crate::capture::{self, CaptureError, Frame};
use crate::packet::Endpoint;

/// What a retargeting did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Frames read.
    pub read: usize,
    /// Frames written (rewritten towards the service).
    pub written: usize,
    /// Distinct flows written.
    pub flows: usize,
    /// Frames from the responder side, left out.
    pub replies_left_out: usize,
    /// Frames that are not unfragmented TCP/UDP of the service's protocol, left out.
    pub other_left_out: usize,
    /// Frames of flows whose address family differs from the VIP's, left out.
    pub family_left_out: usize,
    /// Flows that got a new client port to stay distinct.
    pub ports_remapped: usize,
}

/// The service to retarget to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// VIP and port.
    pub vip: SocketAddr,
    /// Keep only this protocol (6 or 17); `None` keeps TCP and UDP.
    pub proto: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    /// The initiator as it appears in the input.
    client: Endpoint,
    /// The client port written in the output.
    out_port: u16,
}

/// Offsets and fields of a TCP/UDP frame, read with etherparse.
struct Parsed {
    ip_offset: usize,
    l4_offset: usize,
    v4: bool,
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
    syn_ack: bool,
}

fn parse(frame: &[u8]) -> Option<Parsed> {
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let base = frame.as_ptr() as usize;
    let (ip_offset, v4, src, dst) = match sliced.net.as_ref()? {
        NetSlice::Ipv4(ip) if !ip.is_payload_fragmented() => (
            ip.header().slice().as_ptr() as usize - base,
            true,
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        NetSlice::Ipv6(ip) if !ip.is_payload_fragmented() => (
            ip.header().slice().as_ptr() as usize - base,
            false,
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
        _ => return None,
    };
    let (l4, proto, sport, dport, syn_ack) = match sliced.transport.as_ref()? {
        TransportSlice::Tcp(t) => (
            t.slice(),
            6,
            t.source_port(),
            t.destination_port(),
            t.syn() && t.ack(),
        ),
        TransportSlice::Udp(u) => (u.slice(), 17, u.source_port(), u.destination_port(), false),
        _ => return None,
    };
    Some(Parsed {
        ip_offset,
        l4_offset: l4.as_ptr() as usize - base,
        v4,
        proto,
        src: Endpoint::new(src, sport),
        dst: Endpoint::new(dst, dport),
        syn_ack,
    })
}

/// Rewrites frames towards `target`; see the module documentation.
pub fn retarget(frames: &[Frame], target: Target) -> (Vec<Frame>, ReplayStats) {
    let mut stats = ReplayStats {
        read: frames.len(),
        ..ReplayStats::default()
    };
    // (proto, unordered endpoints) → flow.
    let mut flows: HashMap<(u8, Endpoint, Endpoint), Flow> = HashMap::new();
    // (proto, client addr, output port) in use.
    let mut used: HashSet<(u8, IpAddr, u16)> = HashSet::new();
    let mut next_port: u16 = 20000;
    let mut out = Vec::new();
    for frame in frames {
        let Some(p) = parse(&frame.data) else {
            stats.other_left_out += 1;
            continue;
        };
        if target.proto.is_some_and(|want| want != p.proto) {
            stats.other_left_out += 1;
            continue;
        }
        if p.v4 != target.vip.is_ipv4() {
            stats.family_left_out += 1;
            continue;
        }
        let key = (p.proto, p.src.min(p.dst), p.src.max(p.dst));
        let flow = *flows.entry(key).or_insert_with(|| {
            let client = if p.syn_ack { p.dst } else { p.src };
            let mut port = client.port;
            if !used.insert((p.proto, client.addr, port)) {
                stats.ports_remapped += 1;
                while !used.insert((p.proto, client.addr, next_port)) {
                    next_port = next_port.checked_add(1).unwrap_or(1024);
                }
                port = next_port;
            }
            stats.flows += 1;
            Flow {
                client,
                out_port: port,
            }
        });
        if p.src != flow.client {
            stats.replies_left_out += 1;
            continue;
        }
        let mut data = frame.data.clone();
        rewrite(&mut data, &p, flow.out_port, target.vip);
        out.push(Frame::new(frame.timestamp, data));
        stats.written += 1;
    }
    (out, stats)
}

/// Writes the new client port and destination, then the checksums (etherparse's).
fn rewrite(data: &mut [u8], p: &Parsed, sport: u16, vip: SocketAddr) {
    let (dst_at, addr): (usize, Vec<u8>) = match vip.ip() {
        IpAddr::V4(a) => (p.ip_offset + 16, a.octets().to_vec()),
        IpAddr::V6(a) => (p.ip_offset + 24, a.octets().to_vec()),
    };
    data[dst_at..dst_at + addr.len()].copy_from_slice(&addr);
    data[p.l4_offset..p.l4_offset + 2].copy_from_slice(&sport.to_be_bytes());
    data[p.l4_offset + 2..p.l4_offset + 4].copy_from_slice(&vip.port().to_be_bytes());
    recompute_checksums(data, p);
}

/// Recomputes the IPv4 header checksum and the TCP/UDP checksum with etherparse.
fn recompute_checksums(data: &mut [u8], p: &Parsed) {
    let (ip_sum, l4_sum) = {
        let Ok(sliced) = SlicedPacket::from_ethernet(data) else {
            return;
        };
        let (ip_sum, src, dst) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                (
                    Some(h.to_header().calc_header_checksum()),
                    h.source_addr().to_ipv6_mapped().octets(),
                    h.destination_addr().to_ipv6_mapped().octets(),
                )
            }
            Some(NetSlice::Ipv6(ip)) => (
                None,
                ip.header().source_addr().octets(),
                ip.header().destination_addr().octets(),
            ),
            None => return,
        };
        let v4 = |a: [u8; 16]| [a[12], a[13], a[14], a[15]];
        let l4_sum = match &sliced.transport {
            Some(TransportSlice::Tcp(t)) if p.v4 => t.calc_checksum_ipv4(v4(src), v4(dst)).ok(),
            Some(TransportSlice::Tcp(t)) => t.calc_checksum_ipv6(src, dst).ok(),
            Some(TransportSlice::Udp(u)) if p.v4 => u
                .to_header()
                .calc_checksum_ipv4_raw(v4(src), v4(dst), u.payload())
                .ok(),
            Some(TransportSlice::Udp(u)) => u
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, u.payload())
                .ok(),
            _ => None,
        };
        (ip_sum, l4_sum)
    };
    if let Some(sum) = ip_sum {
        data[p.ip_offset + 10..p.ip_offset + 12].copy_from_slice(&sum.to_be_bytes());
    }
    if let Some(sum) = l4_sum {
        let at = p.l4_offset + if p.proto == 6 { 16 } else { 6 };
        data[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Reads `input`, retargets it and writes `output`.
pub fn retarget_file(
    input: &Path,
    output: &Path,
    target: Target,
) -> Result<ReplayStats, CaptureError> {
    let frames = capture::read(input)?;
    let (out, stats) = retarget(&frames, target);
    capture::write(output, &out)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etherparse::PacketBuilder;

    use super::*;
    use crate::checks::checksums_valid;
    use crate::packet::{L4Info, PacketInfo};

    fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: &str, payload: &[u8]) -> Frame {
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, 5, 100);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(9);
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        Frame::new(Duration::from_millis(v.len() as u64), v)
    }

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Frame {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src.0, dst.0, 64)
            .udp(src.1, dst.1)
            .write(&mut v, b"dns?")
            .unwrap();
        Frame::new(Duration::from_secs(1), v)
    }

    const C: [u8; 4] = [192, 0, 2, 1];
    const S1: [u8; 4] = [198, 51, 100, 1];
    const S2: [u8; 4] = [198, 51, 100, 2];

    #[test]
    fn retargets_flows_and_keeps_them_distinct() {
        let frames = vec![
            tcp((C, 5000), (S1, 443), "S", b""),
            tcp((S1, 443), (C, 5000), "SA", b""),
            tcp((C, 5000), (S1, 443), "A", b"hello"),
            // Same client endpoint, another server: must become another flow.
            tcp((C, 5000), (S2, 443), "S", b""),
            udp((C, 6000), (S1, 53)),
            Frame::new(Duration::ZERO, vec![0; 60]),
        ];
        let target = Target {
            vip: "10.0.0.100:80".parse().unwrap(),
            proto: None,
        };
        let (out, stats) = retarget(&frames, target);
        assert_eq!(
            stats,
            ReplayStats {
                read: 6,
                written: 4,
                flows: 3,
                replies_left_out: 1,
                other_left_out: 1,
                family_left_out: 0,
                ports_remapped: 1,
            }
        );
        let mut sources = HashSet::new();
        for f in &out {
            checksums_valid(&f.data).unwrap();
            let info = PacketInfo::parse(&f.data).unwrap();
            let net = info.net.unwrap();
            assert_eq!(net.dst, IpAddr::from([10, 0, 0, 100]));
            let (sport, dport) = match net.l4 {
                L4Info::Tcp(t) => (t.sport, t.dport),
                L4Info::Udp { sport, dport, .. } => (sport, dport),
                other => panic!("{other:?}"),
            };
            assert_eq!(dport, 80);
            sources.insert((net.proto, sport));
        }
        // The two TCP flows of client port 5000 now differ.
        assert_eq!(sources.len(), 3);
        // Timestamps are kept.
        assert_eq!(out[0].timestamp, frames[0].timestamp);
    }

    #[test]
    fn other_family_and_protocol_are_left_out() {
        let frames = vec![tcp((C, 1), (S1, 2), "S", b""), udp((C, 3), (S1, 4))];
        let v6 = Target {
            vip: "[2001:db8::1]:80".parse().unwrap(),
            proto: None,
        };
        assert_eq!(retarget(&frames, v6).1.family_left_out, 2);
        let tcp_only = Target {
            vip: "10.0.0.1:80".parse().unwrap(),
            proto: Some(6),
        };
        let (out, stats) = retarget(&frames, tcp_only);
        assert_eq!((out.len(), stats.other_left_out), (1, 1));
    }
}
