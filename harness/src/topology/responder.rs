//! The real servers, played by the harness: a reply for every packet the balancer sends
//! to a real server.
//!
//! - TCP SYN → SYN-ACK with ISN [`SERVER_ISN`] (the generator's clients acknowledge it) and
//!   an MSS option; a segment with data → ACK; FIN → FIN-ACK; a pure ACK or an RST → no
//!   reply.
//! - UDP → the same payload back (echo).
//! - ICMP → no reply.
//!
//! Replies keep the request's VLAN tag, go from [`SERVER_MAC`] to the request's source
//! MAC, TTL / hop limit 64, checksums computed by etherparse.

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};

use super::SERVER_MAC;

/// The servers' initial sequence number (the generator's clients acknowledge ISN + 1).
pub const SERVER_ISN: u32 = 0x1000_0000;

type Key = (IpAddr, u16, IpAddr, u16);

/// The servers' state: the next sequence number per connection (server side first).
#[derive(Debug, Default)]
pub struct Responder {
    next_seq: HashMap<Key, u32>,
    replies: usize,
}

impl Responder {
    /// Servers with no connection yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replies sent so far.
    pub fn replies(&self) -> usize {
        self.replies
    }

    /// The reply to a frame a real server received, if it answers.
    pub fn answer(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let sliced = SlicedPacket::from_ethernet(frame).ok()?;
        let vlan_tci = match &sliced.vlan {
            Some(etherparse::VlanSlice::SingleVlan(_)) => Some([frame.get(14)?, frame.get(15)?]),
            _ => None,
        };
        let to_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
        let (src, dst) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => (
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                IpAddr::V6(ip.header().source_addr()),
                IpAddr::V6(ip.header().destination_addr()),
            ),
            _ => return None,
        };
        let step = |src: IpAddr, dst: IpAddr| {
            let eth = PacketBuilder::ethernet2(SERVER_MAC, to_mac);
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => Some(eth.ipv4(s.octets(), d.octets(), 64)),
                (IpAddr::V6(s), IpAddr::V6(d)) => Some(eth.ipv6(s.octets(), d.octets(), 64)),
                _ => None,
            }
        };
        let mut out = Vec::new();
        match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) => {
                if tcp.rst() {
                    return None;
                }
                let key = (dst, tcp.destination_port(), src, tcp.source_port());
                let len = tcp.payload().len() as u32;
                let client_next = tcp.sequence_number().wrapping_add(len);
                let next = self
                    .next_seq
                    .get(&key)
                    .copied()
                    .unwrap_or(SERVER_ISN.wrapping_add(1));
                let (seq, ack, syn, fin) = if tcp.syn() {
                    self.next_seq.insert(key, SERVER_ISN.wrapping_add(1));
                    (SERVER_ISN, client_next.wrapping_add(1), true, false)
                } else if tcp.fin() {
                    self.next_seq.insert(key, next.wrapping_add(1));
                    (next, client_next.wrapping_add(1), false, true)
                } else if len > 0 {
                    (next, client_next, false, false)
                } else {
                    return None;
                };
                let mut b = step(dst, src)?
                    .tcp(tcp.destination_port(), tcp.source_port(), seq, 65535)
                    .ack(ack);
                if syn {
                    b = b
                        .syn()
                        .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
                        .ok()?;
                }
                if fin {
                    b = b.fin();
                }
                b.write(&mut out, &[]).ok()?;
            }
            Some(TransportSlice::Udp(udp)) => {
                step(dst, src)?
                    .udp(udp.destination_port(), udp.source_port())
                    .write(&mut out, udp.payload())
                    .ok()?;
            }
            _ => return None,
        }
        if let Some(tci) = vlan_tci {
            out.splice(12..12, [0x81, 0x00, *tci[0], *tci[1]]);
        }
        self.replies += 1;
        Some(out)
    }
}
