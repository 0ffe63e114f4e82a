//! A preconfigured worker for the fuzz targets: FULLNAT (IPv4/IPv6, TCP/UDP, TOA), NAT,
//! NAT64, with a few live connections so that fuzzed replies and ICMP errors reach the
//! rewrite code, not only the lookup miss.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};

use etherparse::PacketBuilder;
use forwarder::dataplane::config::{
    DataplaneConfig, Mode, PortConfig, RealServerConfig, ServiceConfig, ServiceKey,
};
use forwarder::dataplane::frame::{Frame, RxMeta};
use forwarder::dataplane::sched::SchedKind;
use forwarder::dataplane::types::Proto;
use forwarder::dataplane::worker::Worker;
use l4lab_wire::ChecksumCaps;

/// Port 0's MAC (client side).
pub const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
/// Port 1's MAC (server side).
pub const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0x11];

fn sa(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn service(vip: &str, proto: Proto, mode: Mode, rs: &str, toa: bool) -> ServiceConfig {
    let v = sa(vip);
    ServiceConfig {
        key: ServiceKey {
            vip: v.ip(),
            vport: v.port(),
            proto,
        },
        mode,
        sched: SchedKind::Rr,
        real_servers: vec![RealServerConfig {
            addr: sa(rs),
            weight: 1,
            mac: None,
            port: 1,
        }],
        toa,
        persistence: None,
    }
}

fn tcp(mac: [u8; 6], src: &str, dst: &str, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let (s, d) = (sa(src), sa(dst));
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x30], mac);
    let step = match (s.ip(), d.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b)) => eth.ipv6(a.octets(), b.octets(), 64),
        _ => return Vec::new(),
    };
    let mut b = step.tcp(s.port(), d.port(), seq, 1000);
    if flags & 2 != 0 {
        b = b.syn();
    }
    if flags & 0x10 != 0 {
        b = b.ack(ack);
    }
    let mut out = Vec::new();
    let _ = b.write(&mut out, &[]);
    out
}

/// The fuzzing worker, primed with connections.
pub fn primed() -> Worker {
    let mut cfg = DataplaneConfig::new(0, 2);
    let port = |mac| PortConfig {
        mac,
        gateway_mac: [2, 0, 0, 0, 0, 0x20],
        csum: ChecksumCaps::NONE,
    };
    cfg.ports = vec![port(MAC0), port(MAC1)];
    cfg.laddrs = vec![sa("192.168.1.1:0").ip(), sa("[2001:db8:1::1]:0").ip()];
    cfg.conn_capacity = 4096;
    cfg.services = vec![
        service(
            "10.0.0.100:80",
            Proto::Tcp,
            Mode::FullNat,
            "192.168.1.10:8080",
            true,
        ),
        service(
            "10.0.0.100:53",
            Proto::Udp,
            Mode::FullNat,
            "192.168.1.10:5353",
            false,
        ),
        service(
            "[2001:db8::100]:80",
            Proto::Tcp,
            Mode::FullNat,
            "[2001:db8:1::10]:8080",
            true,
        ),
        service(
            "[2001:db8::164]:80",
            Proto::Tcp,
            Mode::FullNat,
            "192.168.1.50:8080",
            false,
        ),
        service(
            "10.0.0.101:80",
            Proto::Tcp,
            Mode::Nat,
            "192.168.1.20:8080",
            false,
        ),
    ];
    let Ok(mut w) = Worker::new(cfg) else {
        panic!("fuzz worker configuration is invalid");
    };
    let prime: [(Vec<u8>, u16); 6] = [
        (
            tcp(MAC0, "198.51.100.7:40000", "10.0.0.100:80", 2, 100, 0),
            0,
        ),
        (
            tcp(
                MAC1,
                "192.168.1.10:8080",
                "192.168.1.1:1026",
                0x12,
                5000,
                101,
            ),
            1,
        ),
        (
            tcp(
                MAC0,
                "[2001:db8:ff::7]:40000",
                "[2001:db8::100]:80",
                2,
                100,
                0,
            ),
            0,
        ),
        (
            tcp(
                MAC1,
                "[2001:db8:1::10]:8080",
                "[2001:db8:1::1]:1026",
                0x12,
                5000,
                101,
            ),
            1,
        ),
        (
            tcp(
                MAC0,
                "[2001:db8:ff::7]:40000",
                "[2001:db8::164]:80",
                2,
                100,
                0,
            ),
            0,
        ),
        (
            tcp(MAC0, "198.51.100.7:40000", "10.0.0.101:80", 2, 100, 0),
            0,
        ),
    ];
    for (p, port) in prime {
        run(&mut w, &p, port);
    }
    w
}

/// Runs one frame through `w` with 128 bytes of headroom and 64 of tailroom.
pub fn run(w: &mut Worker, bytes: &[u8], port: u16) {
    let mut buf = vec![0u8; 128 + bytes.len() + 64];
    buf[128..128 + bytes.len()].copy_from_slice(bytes);
    if let Some(mut f) = Frame::new(&mut buf, 128, bytes.len()) {
        let _ = w.process(
            1,
            &mut f,
            &RxMeta {
                port,
                queue: 0,
                rss_hash: None,
            },
        );
        let c = w.counters();
        assert_eq!(
            c.rx_packets,
            c.tx_packets + c.total_drops() + c.redirects + c.control
        );
    }
}

/// Runs `bytes` on `port` through the shared primed worker.
pub fn fuzz_one(bytes: &[u8], port: u16) {
    static W: OnceLock<Mutex<Worker>> = OnceLock::new();
    let w = W.get_or_init(|| Mutex::new(primed()));
    if let Ok(mut w) = w.lock() {
        run(&mut w, bytes, port);
    }
}
