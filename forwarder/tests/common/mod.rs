//! Shared helpers of the dataplane tests: a reference configuration, packet builders
//! (etherparse `PacketBuilder`) and an independent checker (etherparse parsing and full
//! checksum recomputation). Nothing here calls the forwarder's own parsers.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::{
    Icmpv4Type, Icmpv6Type, NetHeaders, PacketBuilder, PacketBuilderStep, PacketHeaders, TcpHeader,
    TransportHeader,
};
use forwarder::dataplane::config::{
    DataplaneConfig, Mode, PortConfig, RealServerConfig, ServiceConfig, ServiceKey, TunnelConfig,
};
use forwarder::dataplane::frame::{Frame, RxMeta};
use forwarder::dataplane::sched::SchedKind;
use forwarder::dataplane::types::{Nanos, Proto};
use forwarder::dataplane::verdict::Verdict;
use forwarder::dataplane::worker::Worker;
use l4lab_wire::ChecksumCaps;

/// Client-side port 0 and server-side port 1 MACs, their gateways, the client's MAC.
pub const MAC0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
pub const MAC1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
pub const GW0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x20];
pub const GW1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x21];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x30];
pub const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x40];

pub const HEADROOM: usize = 128;
pub const TAILROOM: usize = 64;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

pub fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

// Services of the reference configuration.
pub const FNAT4_TCP: &str = "10.0.0.100:80";
pub const FNAT4_UDP: &str = "10.0.0.100:53";
pub const FNAT6_TCP: &str = "[2001:db8::100]:80";
pub const FNAT6_UDP: &str = "[2001:db8::100]:53";
pub const NAT4_TCP: &str = "10.0.0.101:80";
pub const NAT6_UDP: &str = "[2001:db8::101]:53";
pub const DR4_TCP: &str = "10.0.0.102:80";
pub const TUN4_TCP: &str = "10.0.0.103:80";
pub const TUN6_TCP: &str = "[2001:db8::103]:80";
pub const NAT64_TCP: &str = "[2001:db8::164]:80";
pub const NAT64_UDP: &str = "[2001:db8::164]:53";
pub const NOTOA4_TCP: &str = "10.0.0.104:80";
pub const NOTOA6_TCP: &str = "[2001:db8::104]:80";

pub const LADDR4: &str = "192.168.1.1";
pub const LADDR6: &str = "2001:db8:1::1";
pub const HOST4: &str = "10.0.0.1";

pub const RS_FNAT4: &str = "192.168.1.10:8080";
pub const RS_FNAT6: &str = "[2001:db8:1::10]:8080";
pub const RS_FNAT4_UDP: &str = "192.168.1.10:5353";
pub const RS_FNAT6_UDP: &str = "[2001:db8:1::10]:5353";
pub const RS_NAT4: &str = "192.168.1.20:8080";
pub const RS_NAT6: &str = "[2001:db8:1::20]:5353";
pub const RS_DR4: &str = "192.168.1.30:80";
pub const RS_TUN4: &str = "192.168.1.40:80";
pub const RS_TUN6: &str = "[2001:db8:1::40]:80";
pub const RS_NAT64: &str = "192.168.1.50:8080";
pub const RS_NAT64_UDP: &str = "192.168.1.50:5353";
pub const TUN_SRC4: &str = "192.168.2.0";
pub const TUN_SRC6: &str = "2001:db8:2::";

pub fn rs(addr: &str) -> RealServerConfig {
    RealServerConfig {
        addr: sa(addr),
        weight: 1,
        mac: None,
        port: 1,
    }
}

pub fn service(vip: &str, proto: Proto, mode: Mode, rss: &[&str], toa: bool) -> ServiceConfig {
    let v = sa(vip);
    ServiceConfig {
        key: ServiceKey {
            vip: v.ip(),
            vport: v.port(),
            proto,
        },
        mode,
        sched: SchedKind::Rr,
        real_servers: rss.iter().map(|r| rs(r)).collect(),
        toa,
        persistence: None,
    }
}

/// The reference configuration: one service per mode and family, one RS each.
pub fn config(worker: u16, workers: u16) -> DataplaneConfig {
    let mut cfg = DataplaneConfig::new(worker, workers);
    cfg.ports = vec![
        PortConfig {
            mac: MAC0,
            gateway_mac: GW0,
            csum: ChecksumCaps::NONE,
        },
        PortConfig {
            mac: MAC1,
            gateway_mac: GW1,
            csum: ChecksumCaps::NONE,
        },
    ];
    cfg.laddrs = vec![ip(LADDR4), ip(LADDR6)];
    cfg.host_addrs = vec![ip(HOST4)];
    cfg.tunnel = TunnelConfig {
        src_v4: Some(TUN_SRC4.parse().expect("addr")),
        src_v6: Some(TUN_SRC6.parse().expect("addr")),
        host_bits: 8,
    };
    cfg.conn_capacity = 4096;
    let mut dr = service(DR4_TCP, Proto::Tcp, Mode::Dr, &[RS_DR4], false);
    dr.real_servers[0].mac = Some(RS_MAC);
    cfg.services = vec![
        service(FNAT4_TCP, Proto::Tcp, Mode::FullNat, &[RS_FNAT4], true),
        service(FNAT4_UDP, Proto::Udp, Mode::FullNat, &[RS_FNAT4_UDP], false),
        service(FNAT6_TCP, Proto::Tcp, Mode::FullNat, &[RS_FNAT6], true),
        service(FNAT6_UDP, Proto::Udp, Mode::FullNat, &[RS_FNAT6_UDP], false),
        service(NAT4_TCP, Proto::Tcp, Mode::Nat, &[RS_NAT4], false),
        service(NAT6_UDP, Proto::Udp, Mode::Nat, &[RS_NAT6], false),
        dr,
        service(TUN4_TCP, Proto::Tcp, Mode::Tunnel, &[RS_TUN4], false),
        service(TUN6_TCP, Proto::Tcp, Mode::Tunnel, &[RS_TUN6], false),
        service(NAT64_TCP, Proto::Tcp, Mode::FullNat, &[RS_NAT64], false),
        service(NAT64_UDP, Proto::Udp, Mode::FullNat, &[RS_NAT64_UDP], false),
        service(NOTOA4_TCP, Proto::Tcp, Mode::FullNat, &[RS_FNAT4], false),
        service(NOTOA6_TCP, Proto::Tcp, Mode::FullNat, &[RS_FNAT6], false),
    ];
    cfg
}

pub fn worker() -> Worker {
    Worker::new(config(0, 1)).expect("reference config")
}

fn ip_step(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
) -> PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), ttl),
        _ => panic!("mixed families in a test packet"),
    }
}

/// A TCP segment from `src` to `dst` with `flags`, sequence numbers, raw options and
/// payload, TTL 64, Ethernet `src_mac` → `dst_mac`.
#[allow(clippy::too_many_arguments)]
pub fn tcp_full(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let mut b =
        ip_step(src_mac, dst_mac, src.ip(), dst.ip(), ttl).tcp(src.port(), dst.port(), seq, 65000);
    if flags & TCP_SYN != 0 {
        b = b.syn();
    }
    if flags & TCP_FIN != 0 {
        b = b.fin();
    }
    if flags & TCP_RST != 0 {
        b = b.rst();
    }
    if flags & TCP_PSH != 0 {
        b = b.psh();
    }
    if flags & TCP_ACK != 0 {
        b = b.ack(ack);
    }
    if !opts.is_empty() {
        b = b.options_raw(opts).expect("options fit");
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("write");
    out
}

/// Client → balancer TCP segment on port 0.
pub fn tcp_in(
    src: SocketAddr,
    dst: SocketAddr,
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    tcp_full(
        CLIENT_MAC, MAC0, src, dst, flags, seq, ack, opts, payload, 64,
    )
}

/// Real server → balancer TCP segment on port 1.
pub fn tcp_out(
    src: SocketAddr,
    dst: SocketAddr,
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    tcp_full(RS_MAC, MAC1, src, dst, flags, seq, ack, opts, payload, 64)
}

pub fn udp_full(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Vec<u8> {
    udp_ttl(src_mac, dst_mac, src, dst, payload, 64)
}

pub fn udp_ttl(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let b = ip_step(src_mac, dst_mac, src.ip(), dst.ip(), ttl).udp(src.port(), dst.port());
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("write");
    out
}

pub fn udp_in(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    udp_full(CLIENT_MAC, MAC0, src, dst, payload)
}

pub fn udp_out(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    udp_full(RS_MAC, MAC1, src, dst, payload)
}

/// ICMP echo request from `src` to `dst`.
pub fn echo_request(src: IpAddr, dst: IpAddr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let step = ip_step(CLIENT_MAC, MAC0, src, dst, 64);
    let mut out = Vec::new();
    if src.is_ipv4() {
        step.icmpv4_echo_request(id, seq)
            .write(&mut out, payload)
            .expect("write");
    } else {
        step.icmpv6_echo_request(id, seq)
            .write(&mut out, payload)
            .expect("write");
    }
    out
}

/// An ICMP error (v4: type/code; v6: type/code) from `src` to `dst` quoting `quoted`
/// (an IP packet without Ethernet), arriving on `port`'s MAC.
pub fn icmp_error(
    src: IpAddr,
    dst: IpAddr,
    ty: u8,
    code: u8,
    rest: u32,
    quoted: &[u8],
    to_mac: [u8; 6],
) -> Vec<u8> {
    let step = ip_step(GW0, to_mac, src, dst, 64);
    let mut out = Vec::new();
    let b = rest.to_be_bytes();
    if src.is_ipv4() {
        step.icmpv4_raw(ty, code, b)
            .write(&mut out, quoted)
            .expect("write");
    } else {
        step.icmpv6_raw(ty, code, b)
            .write(&mut out, quoted)
            .expect("write");
    }
    out
}

/// Runs one packet through `w` on `port` and returns the verdict and the frame's bytes.
pub fn run(w: &mut Worker, now: Nanos, pkt: &[u8], port: u16) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + pkt.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
    let mut f = Frame::new(&mut buf, HEADROOM, pkt.len()).expect("frame");
    let v = w.process(
        now,
        &mut f,
        &RxMeta {
            port,
            queue: 0,
            rss_hash: None,
        },
    );
    (v, f.data().to_vec())
}

/// What the independent checker saw in an output frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub proto: u8,
    pub ttl: u8,
    pub tcp: Option<TcpHeader>,
    pub payload: Vec<u8>,
    /// ICMP: type, code, the rest-of-header bytes.
    pub icmp: Option<(u8, u8)>,
}

/// Parses `bytes` with etherparse and checks every checksum by full recomputation
/// (IPv4 header, TCP/UDP with pseudo-header, ICMPv4/ICMPv6). Panics on any mismatch.
pub fn inspect(bytes: &[u8]) -> Seen {
    let h = PacketHeaders::from_ethernet_slice(bytes).expect("etherparse parses the output");
    let eth = match h.link {
        Some(etherparse::LinkHeader::Ethernet2(e)) => e,
        _ => panic!("no ethernet"),
    };
    let payload = h.payload.slice().to_vec();
    let (src_ip, dst_ip, ttl, proto) = match &h.net {
        Some(NetHeaders::Ipv4(v4, _)) => {
            assert_eq!(
                v4.header_checksum,
                v4.calc_header_checksum(),
                "IPv4 header checksum"
            );
            (
                IpAddr::V4(Ipv4Addr::from(v4.source)),
                IpAddr::V4(Ipv4Addr::from(v4.destination)),
                v4.time_to_live,
                v4.protocol.0,
            )
        }
        Some(NetHeaders::Ipv6(v6, _)) => (
            IpAddr::V6(Ipv6Addr::from(v6.source)),
            IpAddr::V6(Ipv6Addr::from(v6.destination)),
            v6.hop_limit,
            v6.next_header.0,
        ),
        None => panic!("no IP header"),
    };
    let mut seen = Seen {
        src_mac: eth.source,
        dst_mac: eth.destination,
        src: SocketAddr::new(src_ip, 0),
        dst: SocketAddr::new(dst_ip, 0),
        proto,
        ttl,
        tcp: None,
        payload: payload.clone(),
        icmp: None,
    };
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(v4, _)), Some(TransportHeader::Tcp(t))) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv4(v4, &payload).expect("len"),
                "TCP checksum"
            );
        }
        (Some(NetHeaders::Ipv6(v6, _)), Some(TransportHeader::Tcp(t))) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv6(v6, &payload).expect("len"),
                "TCP checksum"
            );
        }
        (Some(NetHeaders::Ipv4(v4, _)), Some(TransportHeader::Udp(u))) if u.checksum != 0 => {
            assert_eq!(
                u.checksum,
                u.calc_checksum_ipv4(v4, &payload).expect("len"),
                "UDP checksum"
            );
        }
        (Some(NetHeaders::Ipv6(v6, _)), Some(TransportHeader::Udp(u))) => {
            assert_eq!(
                u.checksum,
                u.calc_checksum_ipv6(v6, &payload).expect("len"),
                "UDP checksum"
            );
        }
        (Some(NetHeaders::Ipv4(_, _)), Some(TransportHeader::Icmpv4(i))) => {
            assert_eq!(
                i.checksum,
                i.icmp_type.calc_checksum(&payload),
                "ICMPv4 checksum"
            );
            let b = i.to_bytes();
            seen.icmp = Some((b[0], b[1]));
        }
        (Some(NetHeaders::Ipv6(v6, _)), Some(TransportHeader::Icmpv6(i))) => {
            let c = i
                .icmp_type
                .calc_checksum(v6.source, v6.destination, &payload)
                .expect("len");
            assert_eq!(i.checksum, c, "ICMPv6 checksum");
            let b = i.to_bytes();
            seen.icmp = Some((b[0], b[1]));
        }
        _ => {}
    }
    match &h.transport {
        Some(TransportHeader::Tcp(t)) => {
            seen.src.set_port(t.source_port);
            seen.dst.set_port(t.destination_port);
            seen.tcp = Some(t.clone());
        }
        Some(TransportHeader::Udp(u)) => {
            seen.src.set_port(u.source_port);
            seen.dst.set_port(u.destination_port);
        }
        _ => {}
    }
    seen
}

/// Whether ICMP types are errors we quote (for builders that need `Icmpv4Type` names).
pub fn _types_used(_: Icmpv4Type, _: Icmpv6Type) {}

/// The TOA option (kind 254) in a TCP header, if any: (offset in options, port, address).
pub fn find_toa(t: &TcpHeader) -> Option<(usize, u16, IpAddr)> {
    let o = t.options.as_slice();
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => return None,
            1 => i += 1,
            254 => {
                let len = usize::from(*o.get(i + 1)?);
                let port = u16::from_be_bytes([o[i + 2], o[i + 3]]);
                let addr = if len == 8 {
                    IpAddr::V4(Ipv4Addr::new(o[i + 4], o[i + 5], o[i + 6], o[i + 7]))
                } else {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&o[i + 4..i + 20]);
                    IpAddr::V6(Ipv6Addr::from(a))
                };
                return Some((i, port, addr));
            }
            _ => {
                let len = usize::from(*o.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                i += len;
            }
        }
    }
    None
}

/// The MSS option value in a TCP header, if any.
pub fn find_mss(t: &TcpHeader) -> Option<u16> {
    let o = t.options.as_slice();
    let mut i = 0;
    while i + 1 < o.len() {
        match o[i] {
            0 => return None,
            1 => i += 1,
            2 => return Some(u16::from_be_bytes([o[i + 2], o[i + 3]])),
            _ => i += usize::from(o[i + 1]).max(2),
        }
    }
    None
}
