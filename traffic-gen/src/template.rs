//! Packet templates: each (frame size, destination, TCP phase) is built once with
//! etherparse's `PacketBuilder`; per packet the template is copied into the mbuf and only
//! the varying fields are patched — source address and port from the flow, the TCP
//! sequence number, and the latency stamp — with RFC 1624 incremental checksum updates
//! through `l4lab-wire`. Nothing here allocates after the templates are built.

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::PacketBuilder;
use l4lab_wire::{checksum, Ipv4Packet, TcpPacket, UdpPacket};

use crate::flows::FlowTuple;
use crate::latency::STAMP_LEN;
use crate::units::FCS_LEN;

/// Ethernet + IPv4 header bytes before the L4 header (no VLAN, no IP options).
pub const L4_OFFSET: usize = 14 + 20;
/// Where the UDP payload (and so the latency stamp) starts.
pub const UDP_PAYLOAD_OFFSET: usize = L4_OFFSET + 8;
/// Smallest frame the mbuf carries (60 bytes: 64 with FCS).
pub const MIN_MBUF_LEN: usize = 60;

/// What the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP datagrams (latency stamps go into their payload).
    Udp,
    /// TCP SYNs (new connections), sequence number varying per packet.
    TcpSyn,
    /// Open-loop TCP sessions: SYN, then ACK|PSH with data, then FIN|ACK, per flow.
    TcpSession,
}

impl Proto {
    /// Packets per flow visit: 3 for sessions, 1 otherwise.
    pub fn phases(self) -> u64 {
        match self {
            Proto::TcpSession => 3,
            _ => 1,
        }
    }
}

/// Why templates could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// etherparse refused the headers (should not happen with parsed values).
    #[error("could not build the packet template: {0}")]
    Build(String),
    /// The headers do not fit in the asked frame size.
    #[error("a {proto} frame needs at least {need} bytes with FCS; raise --size")]
    TooSmall {
        /// Protocol name.
        proto: &'static str,
        /// Minimum size.
        need: usize,
    },
}

/// One prebuilt frame, and the constant parts of its checksum updates.
///
/// RFC 1624 eqn. 3 updates a checksum field HC, for fields changing from `m` to `m'`, as
/// `HC' = ~(~HC + ~m + m')`. Here `HC` and `m` (the template's own checksums and varying
/// fields) never change, so `~HC + ~m` is summed once when the template is built and each
/// packet only adds its new field values and folds: no read of the frame it just wrote,
/// no sum over the payload.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    tcp: bool,
    /// TCP with the ACK flag (session data and FIN): the ACK number varies too.
    ack: bool,
    /// `~HC + ~m` for the IPv4 header checksum, `m` the source address.
    ip_sum: u64,
    /// `~HC + ~m` for the L4 checksum, `m` the source address (pseudo-header), the source
    /// port, and for TCP the sequence number (and the ACK number with the ACK flag).
    l4_sum: u64,
    /// `~m` for a latency stamp over the first payload bytes; `None` when the payload is
    /// shorter than a stamp (no stamp is written then).
    stamp_sum: Option<u64>,
}

/// Everything needed to build the templates.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// Source address the templates carry (patched per flow).
    pub base_src: Ipv4Addr,
    /// Source port the templates carry (patched per flow).
    pub base_sport: u16,
    /// IP TTL.
    pub ttl: u8,
    /// Protocol.
    pub proto: Proto,
}

impl Template {
    /// Builds one template of `frame_len` bytes with FCS (`frame_len - 4` in the mbuf)
    /// to `dst`, in TCP session phase `phase` (0 SYN, 1 data, 2 FIN; ignored for UDP and
    /// SYN-only traffic).
    pub fn build(
        spec: &TemplateSpec,
        dst: SocketAddrV4,
        frame_len: u16,
        phase: u8,
    ) -> Result<Template, TemplateError> {
        let len = usize::from(frame_len - FCS_LEN.min(frame_len)).max(MIN_MBUF_LEN);
        let base = PacketBuilder::ethernet2(spec.src_mac, spec.dst_mac).ipv4(
            spec.base_src.octets(),
            dst.ip().octets(),
            spec.ttl,
        );
        let (src, sport, dport) = (spec.base_src, spec.base_sport, dst.port());
        let mut bytes = Vec::with_capacity(len);
        let build_err =
            |e: etherparse::err::packet::BuildWriteError| TemplateError::Build(e.to_string());
        let (tcp, seq, ack) = match spec.proto {
            Proto::Udp => {
                let payload_len =
                    len.checked_sub(UDP_PAYLOAD_OFFSET)
                        .ok_or(TemplateError::TooSmall {
                            proto: "UDP",
                            need: UDP_PAYLOAD_OFFSET + usize::from(FCS_LEN),
                        })?;
                let payload = payload_pattern(payload_len);
                base.udp(sport, dport)
                    .write(&mut bytes, &payload)
                    .map_err(build_err)?;
                (false, 0, 0)
            }
            Proto::TcpSyn | Proto::TcpSession => {
                let seq = 0;
                let ack = cookie_ack_base(src, sport, dst);
                let hdr_end = L4_OFFSET + 20;
                let payload_len = len.checked_sub(hdr_end).ok_or(TemplateError::TooSmall {
                    proto: "TCP",
                    need: hdr_end + usize::from(FCS_LEN),
                })?;
                let b = base.tcp(sport, dport, seq, 65535);
                let (b, payload_len) = match (spec.proto, phase) {
                    (Proto::TcpSession, 1) => (b.ack(ack).psh(), payload_len),
                    (Proto::TcpSession, 2) => (b.ack(ack).fin(), 0),
                    _ => (b.syn(), 0),
                };
                let payload = payload_pattern(payload_len);
                b.write(&mut bytes, &payload).map_err(build_err)?;
                (true, seq, ack)
            }
        };
        // Ethernet padding up to the frame size; IP total length excludes it.
        bytes.resize(len, 0);
        let not = |sum: u16| u64::from(!sum);
        // PacketBuilder wrote a 20-byte IPv4 header at 14 and the L4 header at 34.
        let ip = Ipv4Packet::new_unchecked(&bytes[14..L4_OFFSET]);
        let ip_sum = not(ip.checksum()) + not(checksum::data(&src.octets()));
        let mut l4_sum = not(checksum::data(&src.octets())) + not(sport);
        let (l4_check, stamp_sum) = if tcp {
            let t = TcpPacket::new_unchecked(&bytes[L4_OFFSET..]);
            l4_sum += not(checksum::data(&seq.to_be_bytes()));
            if t.ack() {
                l4_sum += not(checksum::data(&ack.to_be_bytes()));
            }
            (t.checksum(), None)
        } else {
            let u = UdpPacket::new_unchecked(&bytes[L4_OFFSET..]);
            // Within the frame's first MIN_MBUF_LEN bytes and within the datagram.
            let stamp = (UDP_PAYLOAD_OFFSET + STAMP_LEN <= MIN_MBUF_LEN
                && usize::from(u.len()) >= 8 + STAMP_LEN)
                .then(|| &bytes[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + STAMP_LEN]);
            // The payload starts 8 bytes into the UDP header: an even offset.
            (u.checksum(), stamp.map(|old| not(checksum::data(old))))
        };
        l4_sum += not(l4_check);
        let has_ack = tcp && TcpPacket::new_unchecked(&bytes[L4_OFFSET..]).ack();
        Ok(Template {
            bytes,
            tcp,
            ack: has_ack,
            ip_sum,
            l4_sum,
            stamp_sum,
        })
    }

    /// Bytes in the mbuf (frame length without FCS).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a template holds at least the headers.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The template's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Copies the template into `out` (exactly [`len`](Self::len) bytes) and patches the
    /// varying fields: the flow's source address and port, the TCP sequence number
    /// (`seq`, TCP only; `ack` too for data and FIN segments), and a latency stamp in the
    /// UDP payload. Every checksum stays correct (RFC 1624, see [`Template`]); nothing in
    /// `out` is read back.
    #[inline]
    pub fn write_into(
        &self,
        out: &mut [u8],
        flow: &FlowTuple,
        seq: u32,
        ack: u32,
        stamp: Option<&[u8; STAMP_LEN]>,
    ) {
        if out.len() != self.bytes.len() {
            return;
        }
        copy_frame(out, &self.bytes);
        // Every template is at least MIN_MBUF_LEN bytes (see `build`): the headers are in
        // this fixed-size prefix, so the views below index it without run-time checks.
        let Some(frame) = out.first_chunk_mut::<MIN_MBUF_LEN>() else {
            return;
        };
        let (head, l4) = frame.split_at_mut(L4_OFFSET);
        let src = u64::from(u32::from(flow.src));
        let mut ip = Ipv4Packet::new_unchecked(&mut head[14..]);
        ip.set_src_addr(flow.src);
        ip.set_checksum(!checksum::fold(self.ip_sum + src));
        let mut l4_sum = self.l4_sum + src + u64::from(flow.sport);
        if self.tcp {
            let mut tcp = TcpPacket::new_unchecked(l4);
            tcp.set_src_port(flow.sport);
            tcp.set_seq_number(seq);
            l4_sum += u64::from(seq);
            if self.ack {
                tcp.set_ack_number(ack);
                l4_sum += u64::from(ack);
            }
            tcp.set_checksum(!checksum::fold(l4_sum));
        } else {
            if let (Some(stamp), Some(old)) = (stamp, self.stamp_sum) {
                // The first payload bytes (stamp_sum is only set where they exist).
                let at = UDP_PAYLOAD_OFFSET - L4_OFFSET;
                l4[at..at + STAMP_LEN].copy_from_slice(stamp);
                l4_sum += old + u64::from(checksum::data(stamp));
            }
            let mut udp = UdpPacket::new_unchecked(l4);
            udp.set_src_port(flow.sport);
            // A computed 0 goes out as 0xffff (0 means "no checksum" in UDP over IPv4).
            let c = !checksum::fold(l4_sum);
            udp.set_checksum(if c == 0 { 0xffff } else { c });
        }
    }
}

/// Copies `frame` into `out` (the same length). 64-byte frames, the common case, get a
/// copy of constant length: a few vector moves inlined instead of a call to memcpy.
#[inline]
pub fn copy_frame(out: &mut [u8], frame: &[u8]) {
    match (
        <&mut [u8; MIN_MBUF_LEN]>::try_from(&mut *out),
        <&[u8; MIN_MBUF_LEN]>::try_from(frame),
    ) {
        (Ok(o), Ok(t)) => *o = *t,
        _ => out.copy_from_slice(frame),
    }
}

/// The ACK number that a session's data and FIN segments carry: the responder's SYN
/// cookie for this tuple plus one, so that generator → responder sessions are coherent
/// when nothing rewrites the tuple in between. Templates hold it for the base tuple.
pub fn cookie_ack_base(src: Ipv4Addr, sport: u16, dst: SocketAddrV4) -> u32 {
    crate::respond::cookie_isn(src, *dst.ip(), sport, dst.port()).wrapping_add(1)
}

/// A recognisable payload: bytes 0, 1, 2, ... (mod 256).
fn payload_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    fn spec(proto: Proto) -> TemplateSpec {
        TemplateSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            base_src: Ipv4Addr::new(10, 0, 0, 0),
            base_sport: 1024,
            ttl: 64,
            proto,
        }
    }

    /// Parses with etherparse and checks every checksum from scratch.
    fn verify(frame: &[u8]) -> (Ipv4Addr, u16, u32) {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let src = Ipv4Addr::from(h.source);
        match p.transport {
            Some(TransportSlice::Udp(u)) => {
                let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                assert_eq!(u.checksum(), want);
                (src, u.source_port(), 0)
            }
            Some(TransportSlice::Tcp(t)) => {
                let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                assert_eq!(t.checksum(), want);
                (src, t.source_port(), t.sequence_number())
            }
            _ => panic!("no transport"),
        }
    }

    #[test]
    fn patched_udp_frames_verify() {
        let dst: SocketAddrV4 = "192.168.1.1:80".parse().unwrap();
        for size in [64u16, 570, 1518] {
            let t = Template::build(&spec(Proto::Udp), dst, size, 0).unwrap();
            assert_eq!(t.len(), usize::from(size) - 4);
            let mut out = vec![0u8; t.len()];
            for (i, src) in [[10, 0, 0, 0], [10, 0, 3, 7], [10, 0, 255, 255]]
                .into_iter()
                .enumerate()
            {
                let flow = FlowTuple {
                    src: src.into(),
                    sport: 1024 + i as u16 * 977,
                    dst: 0,
                };
                let stamp = [i as u8 + 0xa5; STAMP_LEN];
                t.write_into(&mut out, &flow, 0, 0, (i % 2 == 1).then_some(&stamp));
                assert_eq!(verify(&out), (flow.src, flow.sport, 0));
                if i % 2 == 1 {
                    assert_eq!(
                        &out[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + STAMP_LEN],
                        &stamp
                    );
                }
            }
        }
    }

    #[test]
    fn patched_tcp_frames_verify() {
        let dst: SocketAddrV4 = "192.168.1.1:443".parse().unwrap();
        for (proto, phase) in [
            (Proto::TcpSyn, 0),
            (Proto::TcpSession, 0),
            (Proto::TcpSession, 1),
            (Proto::TcpSession, 2),
        ] {
            let t = Template::build(&spec(proto), dst, 128, phase).unwrap();
            let mut out = vec![0u8; t.len()];
            let flow = FlowTuple {
                src: Ipv4Addr::new(10, 0, 9, 9),
                sport: 40000,
                dst: 0,
            };
            t.write_into(&mut out, &flow, 0xdead_beef, 12345, None);
            assert_eq!(
                verify(&out),
                (flow.src, 40000, 0xdead_beef),
                "{proto:?} {phase}"
            );
        }
    }

    #[test]
    fn random_patches_verify() {
        // Many flows, sequence and ACK numbers and stamps (a fixed LCG), on every kind of
        // template: each frame's checksums recomputed from scratch must agree.
        let dst: SocketAddrV4 = "192.168.1.1:443".parse().unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 32) as u32
        };
        for (proto, phase, size) in [
            (Proto::Udp, 0, 64),
            (Proto::Udp, 0, 1518),
            (Proto::TcpSyn, 0, 64),
            (Proto::TcpSession, 1, 200),
            (Proto::TcpSession, 2, 64),
        ] {
            let t = Template::build(&spec(proto), dst, size, phase).unwrap();
            let mut out = vec![0u8; t.len()];
            for _ in 0..2000 {
                let flow = FlowTuple {
                    src: Ipv4Addr::from(next()),
                    sport: next() as u16,
                    dst: 0,
                };
                let (seq, ack) = (next(), next());
                let stamp: [u8; STAMP_LEN] = std::array::from_fn(|_| next() as u8);
                let with_stamp = next() % 2 == 0;
                t.write_into(&mut out, &flow, seq, ack, with_stamp.then_some(&stamp));
                let (src, sport, got_seq) = verify(&out);
                assert_eq!((src, sport), (flow.src, flow.sport));
                if proto != Proto::Udp {
                    assert_eq!(got_seq, seq);
                }
            }
        }
    }

    #[test]
    fn too_small_and_padding() {
        let dst: SocketAddrV4 = "192.168.1.1:80".parse().unwrap();
        let t = Template::build(&spec(Proto::TcpSyn), dst, 64, 0).unwrap();
        assert_eq!(t.len(), 60, "54 bytes of headers padded to 60");
        assert_eq!(verify(t.bytes()).1, 1024);
        let mut wrong = vec![0u8; 10];
        t.write_into(
            &mut wrong,
            &FlowTuple {
                src: Ipv4Addr::new(1, 2, 3, 4),
                sport: 1,
                dst: 0,
            },
            0,
            0,
            None,
        );
        assert_eq!(wrong, vec![0u8; 10], "a wrong-length buffer is left alone");
    }
}
