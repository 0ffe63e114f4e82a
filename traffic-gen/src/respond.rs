//! The responder: plays the real servers, statelessly.
//!
//! - UDP: the mirror — MACs, addresses and ports swapped, payload kept (the checksums
//!   stay valid: swapping words does not change a one's-complement sum).
//! - TCP SYN: a SYN-ACK with a cookie-like ISN (a keyed hash of the 4-tuple), ack =
//!   seq + 1, an MSS option of 1460.
//! - TCP segment with data: an ACK for it (seq = their ack, ack = their seq + len), with
//!   `response_len` bytes of data when asked for.
//! - TCP FIN: a FIN-ACK (ack = seq + len + 1).
//! - TCP RST, pure ACKs and everything else: no answer (counted by reason).
//!
//! Sans-IO: bytes in, bytes out; the DPDK loop copies the answer into the mbuf.

use std::net::{IpAddr, Ipv4Addr};

use l4lab_wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket,
};
use serde::Serialize;

/// Why a received packet got no answer. Doubles as a counter index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReply {
    /// Not Ethernet/IPv4, or a fragment.
    NotIpv4,
    /// Malformed or truncated headers.
    Malformed,
    /// Neither TCP nor UDP.
    OtherProtocol,
    /// A TCP RST (nothing to answer).
    Rst,
    /// A TCP segment that needs no answer (pure ACK, SYN-ACK, ...).
    NoAnswerNeeded,
    /// The answer would not fit the output buffer.
    TooBig,
}

impl NoReply {
    /// Number of reasons.
    pub const COUNT: usize = 6;

    /// The counter index.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the responder did, per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RespondCounters {
    /// UDP datagrams mirrored.
    pub udp_echo: u64,
    /// SYN-ACKs sent.
    pub syn_ack: u64,
    /// ACKs (with or without response data) sent for data.
    pub data_ack: u64,
    /// FIN-ACKs sent.
    pub fin_ack: u64,
    /// RSTs received (not answered).
    pub rst: u64,
    /// Dropped: not IPv4, malformed, other protocol, no answer needed, too big.
    pub dropped: [u64; NoReply::COUNT],
}

/// What kind of answer was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A UDP mirror of `len` bytes.
    UdpEcho(usize),
    /// A SYN-ACK of `len` bytes.
    SynAck(usize),
    /// An ACK (maybe with data) of `len` bytes.
    DataAck(usize),
    /// A FIN-ACK of `len` bytes.
    FinAck(usize),
}

impl Reply {
    /// Bytes of the answer.
    pub fn len(self) -> usize {
        match self {
            Reply::UdpEcho(n) | Reply::SynAck(n) | Reply::DataAck(n) | Reply::FinAck(n) => n,
        }
    }

    /// Never true: an answer has headers.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl RespondCounters {
    /// Counts one outcome.
    #[inline]
    pub fn count(&mut self, outcome: Result<Reply, NoReply>) {
        match outcome {
            Ok(Reply::UdpEcho(_)) => self.udp_echo += 1,
            Ok(Reply::SynAck(_)) => self.syn_ack += 1,
            Ok(Reply::DataAck(_)) => self.data_ack += 1,
            Ok(Reply::FinAck(_)) => self.fin_ack += 1,
            Err(NoReply::Rst) => self.rst += 1,
            Err(r) => self.dropped[r.index()] += 1,
        }
    }

    /// Adds another core's counters.
    pub fn merge(&mut self, o: &RespondCounters) {
        self.udp_echo += o.udp_echo;
        self.syn_ack += o.syn_ack;
        self.data_ack += o.data_ack;
        self.fin_ack += o.fin_ack;
        self.rst += o.rst;
        for (a, b) in self.dropped.iter_mut().zip(o.dropped) {
            *a += b;
        }
    }
}

/// The server's ISN for a connection from `src:sport` to `dst:dport`: a keyed mix of the
/// tuple, the same every time (so no state is needed to recognise it).
pub fn cookie_isn(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    let mut x = (u64::from(u32::from(src)) << 32 | u64::from(u32::from(dst)))
        ^ (u64::from(sport) << 16 | u64::from(dport)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ 0x4c34_4c61_6273_5f31;
    // splitmix64 finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) as u32
}

/// Builds the answer to `input` into `out`; returns its kind and length, or why there is
/// none. `response_len` bytes of data go with ACKs of data segments.
pub fn respond(input: &[u8], out: &mut [u8], response_len: usize) -> Result<Reply, NoReply> {
    let eth = EthernetFrame::new_checked(input).map_err(|_| NoReply::Malformed)?;
    if eth.ethertype() != EtherType::IPV4 {
        return Err(NoReply::NotIpv4);
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| NoReply::Malformed)?;
    if ip.is_fragment() {
        return Err(NoReply::NotIpv4);
    }
    let l3 = eth.header_len();
    let l4 = l3 + ip.header_len();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        IpProtocol::UDP => {
            UdpPacket::new_checked(ip.payload()).map_err(|_| NoReply::Malformed)?;
            // The whole frame, Ethernet padding included: the mirror has the same length.
            let len = input.len();
            let o = out.get_mut(..len).ok_or(NoReply::TooBig)?;
            o.copy_from_slice(input);
            let mut e = EthernetFrame::new_unchecked(&mut o[..]);
            e.swap_addrs();
            let mut i = Ipv4Packet::new_unchecked(&mut o[l3..]);
            i.set_src_addr(dst);
            i.set_dst_addr(src);
            let mut u = UdpPacket::new_unchecked(&mut o[l4..]);
            let (sp, dp) = (u.src_port(), u.dst_port());
            u.set_src_port(dp);
            u.set_dst_port(sp);
            Ok(Reply::UdpEcho(len))
        }
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(ip.payload()).map_err(|_| NoReply::Malformed)?;
            let f = tcp.flags();
            let data_len = tcp.payload().len() as u32;
            let (flags, seq, ack, opts, data) = if f.contains(TcpFlags::RST) {
                return Err(NoReply::Rst);
            } else if f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK) {
                let isn = cookie_isn(src, dst, tcp.src_port(), tcp.dst_port());
                (
                    TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
                    isn,
                    tcp.seq_number().wrapping_add(1),
                    true,
                    0,
                )
            } else if f.contains(TcpFlags::SYN) {
                return Err(NoReply::NoAnswerNeeded);
            } else if f.contains(TcpFlags::FIN) {
                let ack = tcp.seq_number().wrapping_add(data_len).wrapping_add(1);
                (
                    TcpFlags(TcpFlags::FIN.0 | TcpFlags::ACK.0),
                    tcp.ack_number(),
                    ack,
                    false,
                    0,
                )
            } else if data_len > 0 {
                let flags = if response_len > 0 {
                    TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0)
                } else {
                    TcpFlags::ACK
                };
                (
                    flags,
                    tcp.ack_number(),
                    tcp.seq_number().wrapping_add(data_len),
                    false,
                    response_len,
                )
            } else {
                return Err(NoReply::NoAnswerNeeded);
            };
            let hdr = if opts { 24 } else { 20 };
            let ip_len = 20 + hdr + data;
            // Padded to the Ethernet minimum of 60 bytes (64 with FCS).
            let len = (14 + ip_len).max(60);
            if len > out.len() || ip_len > usize::from(u16::MAX) {
                return Err(NoReply::TooBig);
            }
            let o = &mut out[..len];
            o[..14].copy_from_slice(&input[..14]);
            let mut e = EthernetFrame::new_unchecked(&mut o[..]);
            e.swap_addrs();
            e.set_ethertype(EtherType::IPV4);
            o[14..].fill(0);
            let mut i = Ipv4Packet::new_unchecked(&mut o[14..34]);
            i.set_version(4);
            i.set_header_len(20);
            i.set_total_len(ip_len as u16);
            i.set_dont_frag(true);
            i.set_ttl(64);
            i.set_protocol(IpProtocol::TCP);
            i.set_src_addr(dst);
            i.set_dst_addr(src);
            i.fill_checksum();
            let mut t = TcpPacket::new_unchecked(&mut o[34..34 + hdr + data]);
            t.set_src_port(tcp.dst_port());
            t.set_dst_port(tcp.src_port());
            t.set_seq_number(seq);
            t.set_ack_number(ack);
            t.set_header_len(hdr);
            t.set_flags(flags);
            t.set_window_len(65535);
            if opts {
                t.options_mut().copy_from_slice(&[2, 4, 0x05, 0xb4]);
            }
            for (k, b) in t.payload_mut().iter_mut().enumerate() {
                *b = k as u8;
            }
            t.fill_checksum(IpAddr::V4(dst), IpAddr::V4(src));
            Ok(if opts {
                Reply::SynAck(len)
            } else if f.contains(TcpFlags::FIN) {
                Reply::FinAck(len)
            } else {
                Reply::DataAck(len)
            })
        }
        _ => Err(NoReply::OtherProtocol),
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn tcp(flags: &str, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(A, B)
            .ipv4([10, 0, 0, 1], [10, 9, 9, 9], 64)
            .tcp(40000, 80, seq, 1000);
        for c in flags.chars() {
            b = match c {
                'S' => b.syn(),
                'A' => b.ack(ack),
                'F' => b.fin(),
                'R' => b.rst(),
                _ => b,
            };
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// Parses the answer with etherparse, verifies all checksums, returns the TCP header.
    fn check_tcp(frame: &[u8]) -> (etherparse::TcpHeader, usize) {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let l2 = p.link.unwrap().to_header().unwrap();
        let etherparse::LinkHeader::Ethernet2(eth) = l2 else {
            panic!()
        };
        assert_eq!((eth.source, eth.destination), (B, A), "MACs swapped");
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!((h.source, h.destination), ([10, 9, 9, 9], [10, 0, 0, 1]));
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!()
        };
        assert_eq!(
            t.checksum(),
            t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap()
        );
        assert_eq!((t.source_port(), t.destination_port()), (80, 40000));
        (t.to_header(), t.payload().len())
    }

    #[test]
    fn syn_gets_syn_ack() {
        let mut out = [0u8; 2048];
        let r = respond(&tcp("S", 1000, 0, &[]), &mut out, 0).unwrap();
        assert!(matches!(r, Reply::SynAck(_)));
        let (t, _) = check_tcp(&out[..r.len()]);
        assert!(t.syn && t.ack && !t.fin && !t.rst);
        assert_eq!(t.acknowledgment_number, 1001);
        assert_eq!(
            t.sequence_number,
            cookie_isn([10, 0, 0, 1].into(), [10, 9, 9, 9].into(), 40000, 80)
        );
        assert_eq!(r.len(), 60, "padded to the Ethernet minimum");
    }

    #[test]
    fn data_fin_rst() {
        let mut out = [0u8; 2048];
        let r = respond(&tcp("A", 500, 7000, b"hello"), &mut out, 0).unwrap();
        let (t, n) = check_tcp(&out[..r.len()]);
        assert!(t.ack && !t.syn && !t.psh);
        assert_eq!(
            (t.sequence_number, t.acknowledgment_number, n),
            (7000, 505, 0)
        );
        let r = respond(&tcp("A", 500, 7000, b"hello"), &mut out, 100).unwrap();
        let (t, n) = check_tcp(&out[..r.len()]);
        assert!(t.psh && n == 100, "response data");
        let r = respond(&tcp("FA", 505, 7000, &[]), &mut out, 0).unwrap();
        assert!(matches!(r, Reply::FinAck(_)));
        let (t, _) = check_tcp(&out[..r.len()]);
        assert!(t.fin && t.ack);
        assert_eq!((t.sequence_number, t.acknowledgment_number), (7000, 506));
        assert_eq!(
            respond(&tcp("R", 1, 0, &[]), &mut out, 0),
            Err(NoReply::Rst)
        );
        assert_eq!(
            respond(&tcp("A", 1, 2, &[]), &mut out, 0),
            Err(NoReply::NoAnswerNeeded)
        );
        assert_eq!(
            respond(&tcp("SA", 1, 2, &[]), &mut out, 0),
            Err(NoReply::NoAnswerNeeded)
        );
        assert_eq!(respond(&[0u8; 10], &mut out, 0), Err(NoReply::Malformed));
        let mut c = RespondCounters::default();
        c.count(Err(NoReply::Rst));
        c.count(Err(NoReply::Malformed));
        c.count(Ok(Reply::SynAck(60)));
        assert_eq!(
            (c.rst, c.syn_ack, c.dropped[NoReply::Malformed.index()]),
            (1, 1, 1)
        );
    }

    #[test]
    fn udp_is_mirrored() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([10, 0, 0, 1], [10, 9, 9, 9], 64)
            .udp(5000, 53)
            .write(&mut v, b"ping")
            .unwrap();
        v.resize(60, 0);
        let mut out = [0u8; 2048];
        let r = respond(&v, &mut out, 0).unwrap();
        assert_eq!(r, Reply::UdpEcho(60), "same length, padding included");
        let p = SlicedPacket::from_ethernet(&out[..r.len()]).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!((h.source, h.destination), ([10, 9, 9, 9], [10, 0, 0, 1]));
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!()
        };
        assert_eq!((u.source_port(), u.destination_port()), (53, 5000));
        assert_eq!(
            u.checksum(),
            u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap()
        );
        assert_eq!(u.payload(), b"ping");
    }
}
