//! pcap replay: a capture loaded once, then sent N times in its own order with the
//! original timing, a fixed rate or a speedup; optionally retargeted to a VIP with the
//! sources spread over `--src` so that one capture becomes many flows.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::Path;

use l4lab_wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use pcap_file::pcap::PcapReader;

use crate::units::{Cidr, ReplayMode};

/// Why a capture cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be opened.
    #[error("cannot open capture {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a pcap file, or a damaged record.
    #[error("cannot read capture {path}: {reason} (only classic pcap is supported, not pcapng)")]
    Read {
        /// The path.
        path: String,
        /// What pcap-file said.
        reason: String,
    },
    /// No packets.
    #[error("capture {0} holds no packets")]
    Empty(String),
    /// A packet does not fit in one mbuf.
    #[error("packet {index} of {path} is {len} bytes; at most {max} fit in one mbuf")]
    TooLong {
        /// The path.
        path: String,
        /// Packet index (0-based).
        index: usize,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// One captured packet.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Time since the first packet, ns.
    pub offset_ns: u64,
    /// The frame.
    pub data: Vec<u8>,
}

/// A capture in memory.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The packets, in file order.
    pub packets: Vec<Captured>,
    /// Time between loops (the capture's span plus its mean gap), ns.
    pub period_ns: u64,
}

impl Capture {
    /// Loads `path`; packets longer than `max_len` are refused.
    pub fn load(path: &Path, max_len: usize) -> Result<Capture, ReplayError> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|source| ReplayError::Open {
            path: p.clone(),
            source,
        })?;
        let mut reader = PcapReader::new(file).map_err(|e| ReplayError::Read {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        let mut packets = Vec::new();
        let mut first = None;
        while let Some(pkt) = reader.next_packet() {
            let pkt = pkt.map_err(|e| ReplayError::Read {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            let ts = pkt.timestamp.as_nanos() as u64;
            let first = *first.get_or_insert(ts);
            if pkt.data.len() > max_len {
                return Err(ReplayError::TooLong {
                    path: p,
                    index: packets.len(),
                    len: pkt.data.len(),
                    max: max_len,
                });
            }
            packets.push(Captured {
                offset_ns: ts.saturating_sub(first),
                data: pkt.data.into_owned(),
            });
        }
        Capture::from_packets(packets).ok_or(ReplayError::Empty(p))
    }

    /// A capture from packets already in memory (`None` when empty).
    pub fn from_packets(packets: Vec<Captured>) -> Option<Capture> {
        let n = packets.len() as u64;
        let span = packets.last()?.offset_ns;
        let gap = if n > 1 { span / (n - 1) } else { 0 };
        Some(Capture {
            packets,
            period_ns: span + gap.max(1),
        })
    }
}

/// When each packet of a replay is due, in ns from the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Capture offsets divided by a factor (1 = original timing).
    Scaled(f64),
    /// Fixed rate, pps.
    Rate(f64),
}

impl Schedule {
    /// The schedule for a mode (`pps` is `--pps`, needed for [`ReplayMode::Pps`]).
    pub fn new(mode: ReplayMode, pps: Option<f64>) -> Option<Schedule> {
        match mode {
            ReplayMode::Original => Some(Schedule::Scaled(1.0)),
            ReplayMode::Speedup(x) => Some(Schedule::Scaled(x)),
            ReplayMode::Pps => pps.map(Schedule::Rate),
        }
    }

    /// When the `index`-th packet of loop `round` (overall the `n`-th sent) is due.
    pub fn due_ns(self, cap: &Capture, round: u64, index: usize, n: u64) -> u64 {
        match self {
            Schedule::Rate(pps) => (n as f64 * 1e9 / pps) as u64,
            Schedule::Scaled(x) => {
                let off = cap.packets.get(index).map_or(0, |p| p.offset_ns);
                ((round as f64 * cap.period_ns as f64 + off as f64) / x) as u64
            }
        }
    }
}

/// Rewrites destination and source of an IPv4 TCP/UDP frame in place, with incremental
/// checksums.
#[derive(Debug, Clone, Copy)]
pub struct Retarget {
    /// The new destination.
    pub dst: SocketAddrV4,
    /// Sources are spread over this prefix.
    pub src: Cidr,
}

impl Retarget {
    /// Rewrites `frame` as sent in loop `round`: destination → the VIP, source address →
    /// the `(original source + round)`-th address of the prefix, so every loop makes new
    /// flows and distinct sources stay distinct. Returns false (frame unchanged) for
    /// anything but IPv4 TCP/UDP without fragments.
    pub fn apply(&self, frame: &mut [u8], round: u64) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(&frame[..]) else {
            return false;
        };
        if eth.effective_ethertype() != EtherType::IPV4 {
            return false;
        }
        let l3 = eth.header_len();
        let Ok(ip) = Ipv4Packet::new_checked(&frame[l3..]) else {
            return false;
        };
        if ip.is_fragment() {
            return false;
        }
        let (proto, hl, total) = (ip.protocol(), ip.header_len(), usize::from(ip.total_len()));
        let (old_src, old_dst) = (ip.src_addr(), ip.dst_addr());
        let new_src = self
            .src
            .nth(u64::from(u32::from(old_src)).wrapping_add(round));
        let new_dst = *self.dst.ip();
        let Some(l4) = frame.get_mut(l3 + hl..l3 + total) else {
            return false;
        };
        let (o_s, o_d, n_s, n_d) = (
            IpAddr::V4(old_src),
            IpAddr::V4(old_dst),
            IpAddr::V4(new_src),
            IpAddr::V4(new_dst),
        );
        match proto {
            IpProtocol::TCP => {
                let Ok(mut t) = TcpPacket::new_checked(l4) else {
                    return false;
                };
                t.update_pseudo_header_addr(o_s, n_s);
                t.update_pseudo_header_addr(o_d, n_d);
                t.rewrite_dst_port(self.dst.port());
            }
            IpProtocol::UDP => {
                let Ok(mut u) = UdpPacket::new_checked(l4) else {
                    return false;
                };
                u.update_pseudo_header_addr(o_s, n_s);
                u.update_pseudo_header_addr(o_d, n_d);
                u.rewrite_dst_port(self.dst.port());
            }
            _ => return false,
        }
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3..]);
        ip.rewrite_src_addr(new_src);
        ip.rewrite_dst_addr(new_dst);
        true
    }
}

/// The source address a retargeted frame gets in `round` (for checks).
pub fn spread_source(src: Cidr, original: Ipv4Addr, round: u64) -> Ipv4Addr {
    src.nth(u64::from(u32::from(original)).wrapping_add(round))
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    use super::*;

    fn cap(offsets: &[u64]) -> Capture {
        Capture::from_packets(
            offsets
                .iter()
                .map(|&o| Captured {
                    offset_ns: o,
                    data: vec![0; 60],
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn schedules() {
        let c = cap(&[0, 1000, 3000]);
        assert_eq!(c.period_ns, 4500);
        let orig = Schedule::new(ReplayMode::Original, None).unwrap();
        assert_eq!(orig.due_ns(&c, 0, 2, 2), 3000);
        assert_eq!(orig.due_ns(&c, 1, 0, 3), 4500);
        let fast = Schedule::new(ReplayMode::Speedup(2.0), None).unwrap();
        assert_eq!(fast.due_ns(&c, 0, 2, 2), 1500);
        let rate = Schedule::new(ReplayMode::Pps, Some(1e6)).unwrap();
        assert_eq!(rate.due_ns(&c, 5, 1, 10), 10_000);
        assert_eq!(Schedule::new(ReplayMode::Pps, None), None);
        assert!(Capture::from_packets(Vec::new()).is_none());
    }

    #[test]
    fn retarget_rewrites_and_keeps_checksums_valid() {
        let r = Retarget {
            dst: "192.168.100.1:8080".parse().unwrap(),
            src: "172.16.0.0/12".parse().unwrap(),
        };
        for tcp in [false, true] {
            let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([10, 1, 1, 1], [10, 2, 2, 2], 64);
            let mut v = Vec::new();
            if tcp {
                b.tcp(1234, 80, 7, 100).syn().write(&mut v, b"abc").unwrap();
            } else {
                b.udp(1234, 53).write(&mut v, b"abcde").unwrap();
            }
            assert!(r.apply(&mut v, 3));
            let p = SlicedPacket::from_ethernet(&v).unwrap();
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!()
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            assert_eq!(
                Ipv4Addr::from(h.destination),
                Ipv4Addr::new(192, 168, 100, 1)
            );
            assert_eq!(
                Ipv4Addr::from(h.source),
                spread_source(r.src, Ipv4Addr::new(10, 1, 1, 1), 3)
            );
            match p.transport {
                Some(TransportSlice::Tcp(t)) => {
                    assert_eq!(t.destination_port(), 8080);
                    assert_eq!(
                        t.checksum(),
                        t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap()
                    );
                }
                Some(TransportSlice::Udp(u)) => {
                    assert_eq!(u.destination_port(), 8080);
                    assert_eq!(
                        u.checksum(),
                        u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap()
                    );
                }
                _ => panic!(),
            }
        }
        let mut arp = vec![0u8; 60];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(!r.apply(&mut arp, 0));
    }
}
