//! Fixture tables: per mode and direction, the packets that set a connection up, an
//! input packet, the expected verdict and the expected output. Expected outputs are built
//! independently with etherparse's `PacketBuilder`; outputs are re-parsed with etherparse,
//! every checksum is recomputed by etherparse, and then compared field by field with the
//! expected packet (MACs, addresses, ports, TTL, the whole TCP header including options and
//! checksum, payload) and by length.

mod common;

use std::net::{IpAddr, SocketAddr};

use forwarder::dataplane::config::{ConfigChange, ServiceKey};
use forwarder::dataplane::types::{Proto, SECOND};
use forwarder::dataplane::verdict::{DropReason, Verdict};
use forwarder::dataplane::worker::Worker;
use rstest::rstest;

use common::*;

const MSS: [u8; 4] = [2, 4, 0x05, 0xb4];
const REQ: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.0 200 OK\r\n";

fn c4() -> SocketAddr {
    sa("198.51.100.7:40000")
}
fn c6() -> SocketAddr {
    sa("[2001:db8:ff::7]:40000")
}
fn l4() -> SocketAddr {
    SocketAddr::new(ip(LADDR4), 1025)
}
fn l6() -> SocketAddr {
    SocketAddr::new(ip(LADDR6), 1025)
}

/// A FULLNAT TCP conversation of one family through one service.
struct Conv {
    c: SocketAddr,
    v: SocketAddr,
    l: SocketAddr,
    r: SocketAddr,
}

impl Conv {
    fn new(v6: bool, vip: &str, rs: &str) -> Conv {
        Conv {
            c: if v6 { c6() } else { c4() },
            v: sa(vip),
            l: if v6 || sa(rs).is_ipv6() { l6() } else { l4() },
            r: sa(rs),
        }
    }
    fn fnat(v6: bool) -> Conv {
        if v6 {
            Conv::new(true, NOTOA6_TCP, RS_FNAT6)
        } else {
            Conv::new(false, NOTOA4_TCP, RS_FNAT4)
        }
    }
    fn toa(v6: bool) -> Conv {
        if v6 {
            Conv::new(true, FNAT6_TCP, RS_FNAT6)
        } else {
            Conv::new(false, FNAT4_TCP, RS_FNAT4)
        }
    }
    /// Client → VIP as received.
    fn cin(&self, flags: u8, seq: u32, ack: u32, opts: &[u8], data: &[u8]) -> (Vec<u8>, u16) {
        (tcp_in(self.c, self.v, flags, seq, ack, opts, data), 0)
    }
    /// The same segment as the RS must receive it.
    fn cin_out(&self, flags: u8, seq: u32, ack: u32, opts: &[u8], data: &[u8]) -> Vec<u8> {
        tcp_full(MAC1, GW1, self.l, self.r, flags, seq, ack, opts, data, 63)
    }
    /// RS → local address as received.
    fn rin(&self, flags: u8, seq: u32, ack: u32, opts: &[u8], data: &[u8]) -> (Vec<u8>, u16) {
        (tcp_out(self.r, self.l, flags, seq, ack, opts, data), 1)
    }
    /// The same segment as the client must receive it.
    fn rin_out(&self, flags: u8, seq: u32, ack: u32, opts: &[u8], data: &[u8]) -> Vec<u8> {
        tcp_full(MAC0, GW0, self.v, self.c, flags, seq, ack, opts, data, 63)
    }
    fn syn(&self) -> (Vec<u8>, u16) {
        self.cin(TCP_SYN, 100, 0, &MSS, b"")
    }
    fn synack(&self) -> (Vec<u8>, u16) {
        self.rin(TCP_SYN | TCP_ACK, 5000, 101, &MSS, b"")
    }
    fn ack(&self) -> (Vec<u8>, u16) {
        self.cin(TCP_ACK, 101, 5001, &[], b"")
    }
    fn data(&self) -> (Vec<u8>, u16) {
        self.cin(TCP_ACK | TCP_PSH, 101, 5001, &[], REQ)
    }
    fn rdata(&self) -> (Vec<u8>, u16) {
        self.rin(TCP_ACK | TCP_PSH, 5001, 119, &[], RESP)
    }
}

type Pkt = (Vec<u8>, u16);

/// Runs the setup packets (each must be transmitted), then the input; checks the verdict,
/// the output against `expected` and that the counters reconcile.
fn check_row(
    desc: &str,
    setup: Vec<Pkt>,
    input: Pkt,
    verdict: Verdict,
    expected: Option<Vec<u8>>,
) -> Worker {
    let mut w = worker();
    check_row_on(&mut w, desc, setup, input, verdict, expected);
    w
}

fn check_row_on(
    w: &mut Worker,
    desc: &str,
    setup: Vec<Pkt>,
    input: Pkt,
    verdict: Verdict,
    expected: Option<Vec<u8>>,
) {
    for (i, (p, port)) in setup.iter().enumerate() {
        let (v, out) = run(w, i as u64 * 1000, p, *port);
        assert!(
            matches!(v, Verdict::Tx { .. }),
            "{desc}: setup packet {i} gave {v:?}"
        );
        inspect(&out);
    }
    let (v, out) = run(w, 1_000_000, &input.0, input.1);
    assert_eq!(v, verdict, "{desc}: verdict");
    if let Some(exp) = expected {
        let got = inspect(&out);
        let want = inspect(&exp);
        assert_eq!(got, want, "{desc}: output fields");
        assert_eq!(out.len(), exp.len(), "{desc}: output length");
    }
    if let Verdict::Drop(r) = v {
        assert_eq!(w.counters().drop_count(r), 1, "{desc}: drop counted");
    }
    let c = w.counters();
    assert_eq!(
        c.rx_packets,
        c.tx_packets + c.total_drops() + c.redirects + c.control,
        "{desc}: counters reconcile"
    );
}

#[rstest]
#[case::syn_in(false)]
#[case::syn_in_v6(true)]
fn fullnat_tcp_syn_in(#[case] v6: bool) {
    let k = Conv::fnat(v6);
    check_row(
        "FULLNAT SYN in",
        vec![],
        k.syn(),
        Verdict::Tx { port: 1 },
        Some(k.cin_out(TCP_SYN, 100, 0, &MSS, b"")),
    );
}

#[rstest]
fn fullnat_tcp_handshake_data_fin(#[values(false, true)] v6: bool) {
    let k = Conv::fnat(v6);
    let rows: Vec<(&str, Pkt, Verdict, Vec<u8>)> = vec![
        (
            "SYN in",
            k.syn(),
            Verdict::Tx { port: 1 },
            k.cin_out(TCP_SYN, 100, 0, &MSS, b""),
        ),
        (
            "SYN-ACK out",
            k.synack(),
            Verdict::Tx { port: 0 },
            k.rin_out(TCP_SYN | TCP_ACK, 5000, 101, &MSS, b""),
        ),
        (
            "ACK in",
            k.ack(),
            Verdict::Tx { port: 1 },
            k.cin_out(TCP_ACK, 101, 5001, &[], b""),
        ),
        (
            "data in",
            k.data(),
            Verdict::Tx { port: 1 },
            k.cin_out(TCP_ACK | TCP_PSH, 101, 5001, &[], REQ),
        ),
        (
            "data out",
            k.rdata(),
            Verdict::Tx { port: 0 },
            k.rin_out(TCP_ACK | TCP_PSH, 5001, 119, &[], RESP),
        ),
        (
            "FIN in",
            k.cin(TCP_FIN | TCP_ACK, 119, 5018, &[], b""),
            Verdict::Tx { port: 1 },
            k.cin_out(TCP_FIN | TCP_ACK, 119, 5018, &[], b""),
        ),
        (
            "FIN out",
            k.rin(TCP_FIN | TCP_ACK, 5018, 120, &[], b""),
            Verdict::Tx { port: 0 },
            k.rin_out(TCP_FIN | TCP_ACK, 5018, 120, &[], b""),
        ),
        (
            "last ACK in",
            k.cin(TCP_ACK, 120, 5019, &[], b""),
            Verdict::Tx { port: 1 },
            k.cin_out(TCP_ACK, 120, 5019, &[], b""),
        ),
    ];
    let mut w = worker();
    let mut setup = Vec::new();
    for (desc, input, verdict, expected) in rows {
        let mut fresh = worker();
        check_row_on(
            &mut fresh,
            desc,
            setup.clone(),
            input.clone(),
            verdict,
            Some(expected),
        );
        setup.push(input.clone());
        let _ = run(&mut w, 0, &input.0, input.1);
    }
    assert_eq!(w.conn_count(), 1);
    // FIN/ACK exchange leaves the connection closing: it expires within TIME_WAIT/CLOSE.
    assert_eq!(w.expire(200 * SECOND, 1000), 1);
    assert_eq!(w.conn_count(), 0);
    assert_eq!(w.laddr_pool().stats().releases, 1);
}

#[rstest]
#[case::udp4_in("UDP v4 in", udp_in(c4(), sa(FNAT4_UDP), b"q"), 0, Verdict::Tx { port: 1 },
    Some(udp_ttl(MAC1, GW1, l4(), sa(RS_FNAT4_UDP), b"q", 63)), vec![])]
#[case::udp4_out("UDP v4 out", udp_out(sa(RS_FNAT4_UDP), l4(), b"answer"), 1, Verdict::Tx { port: 0 },
    Some(udp_ttl(MAC0, GW0, sa(FNAT4_UDP), c4(), b"answer", 63)), vec![(udp_in(c4(), sa(FNAT4_UDP), b"q"), 0)])]
#[case::udp6_in("UDP v6 in", udp_in(c6(), sa(FNAT6_UDP), b"q"), 0, Verdict::Tx { port: 1 },
    Some(udp_ttl(MAC1, GW1, l6(), sa(RS_FNAT6_UDP), b"q", 63)), vec![])]
#[case::udp6_out("UDP v6 out", udp_out(sa(RS_FNAT6_UDP), l6(), b"answer"), 1, Verdict::Tx { port: 0 },
    Some(udp_ttl(MAC0, GW0, sa(FNAT6_UDP), c6(), b"answer", 63)), vec![(udp_in(c6(), sa(FNAT6_UDP), b"q"), 0)])]
#[case::nat4_in("NAT v4 SYN in: dst V:vp -> D:dp", tcp_in(c4(), sa(NAT4_TCP), TCP_SYN, 7, 0, &MSS, b""), 0, Verdict::Tx { port: 1 },
    Some(tcp_full(MAC1, GW1, c4(), sa(RS_NAT4), TCP_SYN, 7, 0, &MSS, b"", 63)), vec![])]
#[case::nat4_out("NAT v4 SYN-ACK out: src D:dp -> V:vp", tcp_out(sa(RS_NAT4), c4(), TCP_SYN | TCP_ACK, 9, 8, &MSS, b""), 1, Verdict::Tx { port: 0 },
    Some(tcp_full(MAC0, GW0, sa(NAT4_TCP), c4(), TCP_SYN | TCP_ACK, 9, 8, &MSS, b"", 63)),
    vec![(tcp_in(c4(), sa(NAT4_TCP), TCP_SYN, 7, 0, &MSS, b""), 0)])]
#[case::nat6_udp_in("NAT v6 UDP in", udp_in(c6(), sa(NAT6_UDP), b"x"), 0, Verdict::Tx { port: 1 },
    Some(udp_ttl(MAC1, GW1, c6(), sa(RS_NAT6), b"x", 63)), vec![])]
#[case::nat6_udp_out("NAT v6 UDP out", udp_out(sa(RS_NAT6), c6(), b"y"), 1, Verdict::Tx { port: 0 },
    Some(udp_ttl(MAC0, GW0, sa(NAT6_UDP), c6(), b"y", 63)), vec![(udp_in(c6(), sa(NAT6_UDP), b"x"), 0)])]
#[case::dr_in("DR SYN in: MACs only", tcp_in(c4(), sa(DR4_TCP), TCP_SYN, 7, 0, &MSS, b""), 0, Verdict::Tx { port: 1 },
    Some(tcp_full(MAC1, RS_MAC, c4(), sa(DR4_TCP), TCP_SYN, 7, 0, &MSS, b"", 64)), vec![])]
#[case::dr_data("DR data in", tcp_in(c4(), sa(DR4_TCP), TCP_ACK, 8, 1, &[], REQ), 0, Verdict::Tx { port: 1 },
    Some(tcp_full(MAC1, RS_MAC, c4(), sa(DR4_TCP), TCP_ACK, 8, 1, &[], REQ, 64)),
    vec![(tcp_in(c4(), sa(DR4_TCP), TCP_SYN, 7, 0, &MSS, b""), 0)])]
#[case::nat64_syn("NAT64 SYN in: IPv6 client -> IPv4 RS", tcp_in(c6(), sa(NAT64_TCP), TCP_SYN, 100, 0, &MSS, b""), 0, Verdict::Tx { port: 1 },
    Some(tcp_full(MAC1, GW1, l4(), sa(RS_NAT64), TCP_SYN, 100, 0, &MSS, b"", 63)), vec![])]
#[case::nat64_synack("NAT64 SYN-ACK out: IPv4 RS -> IPv6 client", tcp_out(sa(RS_NAT64), l4(), TCP_SYN | TCP_ACK, 5000, 101, &MSS, b""), 1, Verdict::Tx { port: 0 },
    Some(tcp_full(MAC0, GW0, sa(NAT64_TCP), c6(), TCP_SYN | TCP_ACK, 5000, 101, &MSS, b"", 63)),
    vec![(tcp_in(c6(), sa(NAT64_TCP), TCP_SYN, 100, 0, &MSS, b""), 0)])]
#[case::nat64_data_out("NAT64 data out", tcp_out(sa(RS_NAT64), l4(), TCP_ACK | TCP_PSH, 5001, 119, &[], RESP), 1, Verdict::Tx { port: 0 },
    Some(tcp_full(MAC0, GW0, sa(NAT64_TCP), c6(), TCP_ACK | TCP_PSH, 5001, 119, &[], RESP, 63)),
    vec![(tcp_in(c6(), sa(NAT64_TCP), TCP_SYN, 100, 0, &MSS, b""), 0)])]
#[case::nat64_udp_in("NAT64 UDP in", udp_in(c6(), sa(NAT64_UDP), b"q"), 0, Verdict::Tx { port: 1 },
    Some(udp_ttl(MAC1, GW1, l4(), sa(RS_NAT64_UDP), b"q", 63)), vec![])]
#[case::nat64_udp_out("NAT64 UDP out", udp_out(sa(RS_NAT64_UDP), l4(), b"answer!"), 1, Verdict::Tx { port: 0 },
    Some(udp_ttl(MAC0, GW0, sa(NAT64_UDP), c6(), b"answer!", 63)), vec![(udp_in(c6(), sa(NAT64_UDP), b"q"), 0)])]
fn modes(
    #[case] desc: &str,
    #[case] input: Vec<u8>,
    #[case] port: u16,
    #[case] verdict: Verdict,
    #[case] expected: Option<Vec<u8>>,
    #[case] setup: Vec<Pkt>,
) {
    check_row(desc, setup, (input, port), verdict, expected);
}

#[rstest]
#[case::no_service("TCP to a VIP port without service", tcp_in(c4(), sa("10.0.0.100:81"), TCP_SYN, 1, 0, &[], b""), 0, Verdict::Drop(DropReason::NoService))]
#[case::not_for_us_ip(
    "UDP to an address not ours",
    udp_in(c4(), sa("10.9.9.9:53"), b"x"),
    0,
    Verdict::Drop(DropReason::NotForUs)
)]
#[case::not_for_us_mac("frame to another MAC", tcp_full(CLIENT_MAC, GW1, c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b"", 64), 0, Verdict::Drop(DropReason::NotForUs))]
#[case::no_conn("ACK without connection", tcp_in(c4(), sa(FNAT4_TCP), TCP_ACK, 1, 1, &[], b""), 0, Verdict::Drop(DropReason::NoConnection))]
#[case::no_conn_reply("reply to a local port without connection", tcp_out(sa(RS_FNAT4), l4(), TCP_ACK, 1, 1, &[], b""), 1, Verdict::Drop(DropReason::NoConnection))]
#[case::ttl1_syn("SYN with TTL 1", tcp_full(CLIENT_MAC, MAC0, c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b"", 1), 0, Verdict::Drop(DropReason::TtlExceeded))]
#[case::ttl1_nat("NAT SYN with TTL 1", tcp_full(CLIENT_MAC, MAC0, c4(), sa(NAT4_TCP), TCP_SYN, 1, 0, &[], b"", 1), 0, Verdict::Drop(DropReason::TtlExceeded))]
#[case::fragment_v4("IPv4 fragment", fragment_v4(tcp_in(c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b"")), 0, Verdict::Drop(DropReason::Fragment))]
#[case::fragment_v6("IPv6 fragment", fragment_v6(), 0, Verdict::Drop(DropReason::Fragment))]
#[case::bad_ip_cks("IPv4 header checksum wrong", corrupt(tcp_in(c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b""), 24), 0, Verdict::Drop(DropReason::BadIpChecksum))]
#[case::ethertype("unknown ethertype", ethertype(tcp_in(c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b""), 0x88cc), 0, Verdict::Drop(DropReason::UnknownEthertype))]
#[case::arp("ARP goes to the control plane", ethertype(tcp_in(c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b""), 0x0806), 0, Verdict::Control)]
#[case::host("TCP to the box's own address", tcp_in(c4(), sa("10.0.0.1:22"), TCP_SYN, 1, 0, &[], b""), 0, Verdict::Control)]
#[case::echo_host("echo to the box's own address", echo_request(c4().ip(), ip(HOST4), 1, 1, b"ping"), 0, Verdict::Control)]
#[case::icmp_no_conn("ICMP error about no connection", icmp_error(ip("192.168.1.254"), ip(LADDR4), 3, 4, 1400, &strip(&tcp_full(MAC1, GW1, l4(), sa(RS_FNAT4), TCP_SYN, 1, 0, &[], b"", 63)), MAC1), 1, Verdict::Drop(DropReason::NoConnection))]
#[case::bad_doff("TCP data offset beyond the segment", tcp_doff(tcp_in(c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b""), 15), 0, Verdict::Drop(DropReason::BadL4Header))]
#[case::icmp_other("ICMP timestamp to a VIP", icmp_error(c4().ip(), ip("10.0.0.100"), 13, 0, 0, &[0; 12], MAC0), 0, Verdict::Control)]
fn drops_and_passes(
    #[case] desc: &str,
    #[case] input: Vec<u8>,
    #[case] port: u16,
    #[case] verdict: Verdict,
) {
    check_row(desc, vec![], (input, port), verdict, None);
}

fn strip(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

fn ethertype(mut p: Vec<u8>, t: u16) -> Vec<u8> {
    p[12..14].copy_from_slice(&t.to_be_bytes());
    p
}

fn corrupt(mut p: Vec<u8>, at: usize) -> Vec<u8> {
    p[at] ^= 0x55;
    p
}

fn tcp_doff(mut p: Vec<u8>, doff: u8) -> Vec<u8> {
    p[14 + 20 + 12] = doff << 4;
    p
}

fn fragment_v4(mut p: Vec<u8>) -> Vec<u8> {
    let (mut h, _) = etherparse::Ipv4Header::from_slice(&p[14..]).expect("ipv4");
    h.more_fragments = true;
    h.header_checksum = h.calc_header_checksum();
    p[14..34].copy_from_slice(&h.to_bytes());
    p
}

fn fragment_v6() -> Vec<u8> {
    let p = tcp_in(c6(), sa(FNAT6_TCP), TCP_SYN, 1, 0, &[], b"");
    let mut out = p[..54].to_vec();
    out[14 + 6] = 44; // next header: fragment
    let plen = u16::from_be_bytes([out[18], out[19]]) + 8;
    out[18..20].copy_from_slice(&plen.to_be_bytes());
    out.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 9]); // TCP, offset 0, M = 1
    out.extend_from_slice(&p[54..]);
    out
}

#[test]
fn redirect_reply_to_the_owner_of_its_local_port() {
    let mut w = Worker::new(config(0, 2)).expect("config");
    let reply = tcp_out(
        sa(RS_FNAT4),
        SocketAddr::new(ip(LADDR4), 1027),
        TCP_ACK,
        1,
        1,
        &[],
        b"",
    );
    let (v, out) = run(&mut w, 0, &reply, 1);
    assert_eq!(v, Verdict::Redirect(1));
    assert_eq!(out, reply, "a redirected packet is untouched");
    let reply = tcp_out(
        sa(RS_FNAT4),
        SocketAddr::new(ip(LADDR4), 1026),
        TCP_ACK,
        1,
        1,
        &[],
        b"",
    );
    assert_eq!(
        run(&mut w, 0, &reply, 1).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    // Worker 0 of 2 hands out even ports only.
    let (v, out) = run(
        &mut w,
        0,
        &tcp_in(c4(), sa(FNAT4_TCP), TCP_SYN, 1, 0, &[], b""),
        0,
    );
    assert_eq!(v, Verdict::Tx { port: 1 });
    assert_eq!(inspect(&out).src.port() & 1, 0);
}

#[test]
fn ttl_one_on_an_established_flow_and_control_policy() {
    let k = Conv::fnat(false);
    let mut w = worker();
    run(&mut w, 0, &k.syn().0, 0);
    let p = tcp_full(CLIENT_MAC, MAC0, k.c, k.v, TCP_ACK, 101, 5001, &[], b"", 1);
    assert_eq!(
        run(&mut w, 0, &p, 0).0,
        Verdict::Drop(DropReason::TtlExceeded)
    );
    let mut cfg = config(0, 1);
    cfg.policies.ttl = forwarder::dataplane::config::TtlPolicy::Control;
    let mut w = Worker::new(cfg).expect("config");
    let p = tcp_full(CLIENT_MAC, MAC0, k.c, k.v, TCP_SYN, 1, 0, &[], b"", 1);
    let (v, out) = run(&mut w, 0, &p, 0);
    assert_eq!(v, Verdict::Control);
    assert_eq!(out, p);
    assert_eq!(w.conn_count(), 0);
}

// ---- TOA ----

fn toa_v4(c: SocketAddr) -> Vec<u8> {
    let mut o = vec![254, 8];
    o.extend_from_slice(&c.port().to_be_bytes());
    if let IpAddr::V4(a) = c.ip() {
        o.extend_from_slice(&a.octets());
    }
    o
}

fn toa_v6(c: SocketAddr) -> Vec<u8> {
    let mut o = vec![254, 20];
    o.extend_from_slice(&c.port().to_be_bytes());
    if let IpAddr::V6(a) = c.ip() {
        o.extend_from_slice(&a.octets());
    }
    o
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    v.extend_from_slice(b);
    v
}

#[rstest]
fn toa_rows(#[values(false, true)] v6: bool) {
    let k = Conv::toa(v6);
    let toa = if v6 { toa_v6(k.c) } else { toa_v4(k.c) };
    let clamped: [u8; 4] = if v6 {
        [2, 4, 0x05, 0xa0]
    } else {
        [2, 4, 0x05, 0xac]
    };
    // SACK-permitted + timestamps + window scale: 20 bytes, TOA still fits.
    let opts20 = [4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7, 1, 1, 1, 0];
    // 36 bytes without NOPs: three SACK blocks and timestamps; plus 4 NOPs = 40.
    let mut full = vec![1, 1, 5, 26];
    full.extend_from_slice(&[0u8; 24]);
    full.extend_from_slice(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1]);
    // 36 bytes of which 20 are NOPs (and an end-of-list): compacted to 15 + TOA.
    let mut nops = vec![1u8; 20];
    nops.extend_from_slice(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 4, 2, 3, 3, 7, 0]);
    let compacted_tail: Vec<u8> = {
        let mut t = vec![8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 4, 2, 3, 3, 7];
        let len = toa.len() + t.len();
        t.resize(t.len() + (len.div_ceil(4) * 4 - len), 1);
        t
    };
    let hs = vec![k.syn(), k.synack()];
    type Row = (&'static str, Vec<Pkt>, Pkt, Vec<u8>, bool);
    let rows: Vec<Row> = vec![
        (
            "SYN in: no TOA",
            vec![],
            k.syn(),
            k.cin_out(TCP_SYN, 100, 0, &MSS, b""),
            false,
        ),
        (
            "SYN-ACK out: MSS lowered by the TOA length",
            vec![k.syn()],
            k.synack(),
            k.rin_out(TCP_SYN | TCP_ACK, 5000, 101, &clamped, b""),
            false,
        ),
        (
            "handshake ACK: TOA first",
            hs.clone(),
            k.ack(),
            k.cin_out(TCP_ACK, 101, 5001, &toa, b""),
            true,
        ),
        (
            "ACK with 20 option bytes: TOA before them",
            hs.clone(),
            k.cin(TCP_ACK, 101, 5001, &opts20, b""),
            k.cin_out(TCP_ACK, 101, 5001, &cat(&toa, &opts20), b""),
            true,
        ),
        (
            "data before RS data: TOA",
            hs.clone(),
            k.data(),
            k.cin_out(TCP_ACK | TCP_PSH, 101, 5001, &toa, REQ),
            true,
        ),
        (
            "NOPs dropped to make room",
            hs.clone(),
            k.cin(TCP_ACK, 101, 5001, &nops, b""),
            k.cin_out(TCP_ACK, 101, 5001, &cat(&toa, &compacted_tail), b""),
            true,
        ),
        (
            "40 bytes without room: skipped",
            hs.clone(),
            k.cin(TCP_ACK, 101, 5001, &full, b""),
            k.cin_out(TCP_ACK, 101, 5001, &full, b""),
            false,
        ),
        (
            "RST: no TOA",
            hs.clone(),
            k.cin(TCP_RST | TCP_ACK, 101, 5001, &[], b""),
            k.cin_out(TCP_RST | TCP_ACK, 101, 5001, &[], b""),
            false,
        ),
        (
            "ACK of something else: no TOA",
            hs.clone(),
            k.cin(TCP_ACK, 101, 4000, &[], b""),
            k.cin_out(TCP_ACK, 101, 4000, &[], b""),
            false,
        ),
        (
            "after RS data: no TOA",
            vec![k.syn(), k.synack(), k.ack(), k.rdata()],
            k.cin(TCP_ACK, 101, 5018, &[], b""),
            k.cin_out(TCP_ACK, 101, 5018, &[], b""),
            false,
        ),
        (
            "after RS data, old ACK: no TOA",
            vec![k.syn(), k.synack(), k.ack(), k.rdata()],
            k.data(),
            k.cin_out(TCP_ACK | TCP_PSH, 101, 5001, &[], REQ),
            false,
        ),
    ];
    for (desc, setup, input, expected, inserted) in rows {
        let setup_len = setup.len();
        let port = 1 - input.1;
        let w = check_row(desc, setup, input, Verdict::Tx { port }, Some(expected));
        if setup_len < 3 {
            assert_eq!(
                w.counters().toa_inserted > 0,
                inserted,
                "{desc}: toa counter"
            );
        }
        if desc.contains("skipped") {
            assert_eq!(w.counters().toa_skipped, 1);
        }
    }
}

// ---- ICMP ----

#[rstest]
#[case::v4(false)]
#[case::v6(true)]
fn echo_to_vip_is_answered(#[case] v6: bool) {
    let (c, v) = if v6 {
        (c6().ip(), sa(FNAT6_TCP).ip())
    } else {
        (c4().ip(), sa(FNAT4_TCP).ip())
    };
    let req = echo_request(c, v, 77, 3, b"abcdefgh");
    let step = etherparse::PacketBuilder::ethernet2(MAC0, CLIENT_MAC);
    let mut want = Vec::new();
    match (v, c) {
        (IpAddr::V4(s), IpAddr::V4(d)) => step
            .ipv4(s.octets(), d.octets(), 64)
            .icmpv4_echo_reply(77, 3)
            .write(&mut want, b"abcdefgh"),
        (IpAddr::V6(s), IpAddr::V6(d)) => step
            .ipv6(s.octets(), d.octets(), 64)
            .icmpv6_echo_reply(77, 3)
            .write(&mut want, b"abcdefgh"),
        _ => unreachable!(),
    }
    .expect("write");
    let w = check_row(
        "echo to VIP",
        vec![],
        (req.clone(), 0),
        Verdict::Tx { port: 0 },
        Some(want),
    );
    assert_eq!(w.counters().icmp_echo_replied, 1);
    let mut cfg = config(0, 1);
    cfg.policies.answer_echo = false;
    let mut w = Worker::new(cfg).expect("config");
    check_row_on(
        &mut w,
        "echo to VIP, answering off",
        vec![],
        (req, 0),
        Verdict::Drop(DropReason::IcmpUnsupported),
        None,
    );
}

#[test]
fn icmp_frag_needed_from_the_server_side_reaches_the_client() {
    let k = Conv::fnat(false);
    let sent = strip(&k.cin_out(TCP_SYN, 100, 0, &MSS, b""));
    let err = icmp_error(ip("192.168.1.254"), k.l.ip(), 3, 4, 1400, &sent, MAC1);
    // What the client must see: from the VIP, quoting its own SYN as the RS side saw it
    // (TTL 63), with every checksum valid.
    let quoted = strip(&tcp_full(
        CLIENT_MAC, MAC0, k.c, k.v, TCP_SYN, 100, 0, &MSS, b"", 63,
    ));
    let want = {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2(MAC0, GW0)
            .ipv4(
                k.v.ip()
                    .to_string()
                    .parse::<std::net::Ipv4Addr>()
                    .expect("v4")
                    .octets(),
                [198, 51, 100, 7],
                63,
            )
            .icmpv4_raw(3, 4, 1400u32.to_be_bytes())
            .write(&mut out, &quoted)
            .expect("write");
        out
    };
    let w = check_row(
        "frag needed, RS side",
        vec![k.syn()],
        (err, 1),
        Verdict::Tx { port: 0 },
        Some(want.clone()),
    );
    assert_eq!(w.counters().icmp_translated, 1);
    let got_payload = inspect(&want).payload;
    assert_eq!(got_payload, quoted);
}

#[test]
fn icmpv6_packet_too_big_from_the_client_side_reaches_the_server() {
    let k = Conv::fnat(true);
    let sent = strip(&k.rin_out(TCP_SYN | TCP_ACK, 5000, 101, &MSS, b""));
    let router = ip("2001:db8:ff::1");
    let err = icmp_error(router, k.v.ip(), 2, 0, 1280, &sent, MAC0);
    let quoted = strip(&tcp_full(
        RS_MAC,
        MAC1,
        k.r,
        k.l,
        TCP_SYN | TCP_ACK,
        5000,
        101,
        &MSS,
        b"",
        63,
    ));
    let (IpAddr::V6(l), IpAddr::V6(r)) = (k.l.ip(), k.r.ip()) else {
        unreachable!()
    };
    let mut want = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC1, GW1)
        .ipv6(l.octets(), r.octets(), 63)
        .icmpv6_raw(2, 0, 1280u32.to_be_bytes())
        .write(&mut want, &quoted)
        .expect("write");
    check_row(
        "packet too big, client side",
        vec![k.syn(), k.synack()],
        (err, 0),
        Verdict::Tx { port: 1 },
        Some(want),
    );
}

#[test]
fn nat_icmp_port_unreachable_from_rs_to_client() {
    let c = c4();
    let syn = tcp_in(c, sa(NAT4_TCP), TCP_SYN, 7, 0, &[], b"");
    let sent = strip(&tcp_full(
        MAC1,
        GW1,
        c,
        sa(RS_NAT4),
        TCP_SYN,
        7,
        0,
        &[],
        b"",
        63,
    ));
    let err = icmp_error(sa(RS_NAT4).ip(), c.ip(), 3, 3, 0, &sent, MAC1);
    let quoted = strip(&tcp_full(
        CLIENT_MAC,
        MAC0,
        c,
        sa(NAT4_TCP),
        TCP_SYN,
        7,
        0,
        &[],
        b"",
        63,
    ));
    let mut want = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC0, GW0)
        .ipv4([10, 0, 0, 101], [198, 51, 100, 7], 63)
        .icmpv4_raw(3, 3, [0; 4])
        .write(&mut want, &quoted)
        .expect("write");
    check_row(
        "NAT port unreachable",
        vec![(syn, 0)],
        (err, 1),
        Verdict::Tx { port: 0 },
        Some(want),
    );
}

// ---- TUNNEL ----

#[rstest]
#[case::ipip(false)]
#[case::ip6ip6(true)]
fn tunnel_encapsulates_the_untouched_packet(#[case] v6: bool) {
    let (c, v, r) = if v6 {
        (c6(), sa(TUN6_TCP), sa(RS_TUN6))
    } else {
        (c4(), sa(TUN4_TCP), sa(RS_TUN4))
    };
    let mut w = worker();
    let mut srcs = std::collections::HashSet::new();
    for i in 0..32u16 {
        let c = SocketAddr::new(c.ip(), 40000 + i);
        let p = tcp_in(c, v, TCP_SYN, 1, 0, &MSS, b"");
        let (verdict, out) = run(&mut w, 0, &p, 0);
        assert_eq!(verdict, Verdict::Tx { port: 1 });
        assert_eq!(&out[0..6], &GW1);
        assert_eq!(&out[6..12], &MAC1);
        // Outer header by etherparse; the inner packet must be the client's bytes as sent.
        let h = etherparse::PacketHeaders::from_ethernet_slice(&out).expect("outer");
        let inner_at = match h.net {
            Some(etherparse::NetHeaders::Ipv4(o, _)) => {
                assert!(!v6);
                assert_eq!(o.header_checksum, o.calc_header_checksum());
                assert_eq!(o.protocol.0, 4);
                assert_eq!(o.time_to_live, 64);
                assert!(o.dont_fragment, "DF copied from the inner header");
                assert_eq!(IpAddr::from(o.destination), r.ip());
                assert_eq!(&o.source[..3], &[192, 168, 2]);
                srcs.insert(IpAddr::from(o.source));
                34
            }
            Some(etherparse::NetHeaders::Ipv6(o, _)) => {
                assert!(v6);
                assert_eq!(o.next_header.0, 41);
                assert_eq!(o.hop_limit, 64);
                assert_eq!(IpAddr::from(o.destination), r.ip());
                assert_eq!(
                    &o.source[..14],
                    &"2001:db8:2::"
                        .parse::<std::net::Ipv6Addr>()
                        .expect("v6")
                        .octets()[..14]
                );
                srcs.insert(IpAddr::from(o.source));
                54
            }
            None => panic!("no outer header"),
        };
        assert_eq!(&out[inner_at..], &p[14..]);
    }
    assert!(srcs.len() > 4, "outer sources spread flows: {}", srcs.len());
}

// ---- configuration changes ----

#[test]
fn removed_real_server_keeps_its_connections_and_gets_no_new_ones() {
    let mut w = worker();
    let key = ServiceKey {
        vip: sa(NOTOA4_TCP).ip(),
        vport: 80,
        proto: Proto::Tcp,
    };
    w.apply(ConfigChange::AddRealServer {
        service: key,
        rs: rs("192.168.1.11:8080"),
    })
    .expect("add");
    let a = tcp_in(
        sa("198.51.100.1:1000"),
        sa(NOTOA4_TCP),
        TCP_SYN,
        1,
        0,
        &[],
        b"",
    );
    let b = tcp_in(
        sa("198.51.100.2:1000"),
        sa(NOTOA4_TCP),
        TCP_SYN,
        1,
        0,
        &[],
        b"",
    );
    let ra = inspect(&run(&mut w, 0, &a, 0).1).dst;
    let rb = inspect(&run(&mut w, 0, &b, 0).1).dst;
    assert_ne!(ra, rb, "rr alternates");
    w.apply(ConfigChange::RemoveRealServer {
        service: key,
        addr: ra,
    })
    .expect("remove");
    let a2 = tcp_in(
        sa("198.51.100.1:1000"),
        sa(NOTOA4_TCP),
        TCP_ACK,
        2,
        1,
        &[],
        b"x",
    );
    assert_eq!(
        inspect(&run(&mut w, 0, &a2, 0).1).dst,
        ra,
        "existing flow keeps its RS"
    );
    for i in 0..4 {
        let n = tcp_in(
            SocketAddr::new(ip("198.51.100.9"), 2000 + i),
            sa(NOTOA4_TCP),
            TCP_SYN,
            1,
            0,
            &[],
            b"",
        );
        assert_eq!(
            inspect(&run(&mut w, 0, &n, 0).1).dst,
            rb,
            "new flows avoid the removed RS"
        );
    }
    w.apply(ConfigChange::RemoveService(key))
        .expect("remove service");
    assert_eq!(w.conn_count(), 0, "its connections went with it");
    assert_eq!(
        run(&mut w, 0, &a2, 0).0,
        Verdict::Drop(DropReason::NotForUs)
    );
    assert!(w.apply(ConfigChange::RemoveService(key)).is_err());
}

#[test]
fn full_table_drops_new_flows_and_keeps_established_ones() {
    let mut cfg = config(0, 1);
    cfg.conn_capacity = 2;
    let mut w = Worker::new(cfg).expect("config");
    let k = Conv::fnat(false);
    run(&mut w, 0, &k.syn().0, 0);
    run(&mut w, 0, &udp_in(c4(), sa(FNAT4_UDP), b"q"), 0);
    let third = tcp_in(
        sa("198.51.100.3:1"),
        sa(NOTOA4_TCP),
        TCP_SYN,
        1,
        0,
        &[],
        b"",
    );
    assert_eq!(
        run(&mut w, 0, &third, 0).0,
        Verdict::Drop(DropReason::ConnTableFull)
    );
    assert_eq!(run(&mut w, 0, &k.synack().0, 1).0, Verdict::Tx { port: 0 });
    assert_eq!(
        w.laddr_pool().stats().releases,
        1,
        "the port taken for the dropped flow went back"
    );
}

// ---- link layer, offload, odd headers ----

/// RFC 1071 sum of 16-bit words (the test's own, independent of the forwarder).
fn sum16(bytes: &[u8]) -> u32 {
    let mut s: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

#[test]
fn offloading_port_gets_pseudo_header_sums_and_zero_ip_checksum() {
    let mut cfg = config(0, 1);
    cfg.ports[1].csum = l4lab_wire::ChecksumCaps::ALL;
    let mut w = Worker::new(cfg).expect("config");
    let k = Conv::fnat(false);
    let (v, out) = run(&mut w, 0, &k.cin(TCP_ACK | TCP_SYN, 100, 0, &[], b"").0, 0);
    assert_eq!(
        v,
        Verdict::Drop(DropReason::NoConnection),
        "SYN+ACK opens nothing"
    );
    let (v, out2) = run(&mut w, 0, &k.cin(TCP_SYN, 100, 0, &MSS, REQ).0, 0);
    assert_eq!(v, Verdict::Tx { port: 1 });
    let _ = out;
    let ip = &out2[14..34];
    assert_eq!(&ip[10..12], &[0, 0], "IPv4 checksum left to the NIC");
    let seg_len = out2.len() - 34;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(seg_len as u16).to_be_bytes());
    let want = sum16(&pseudo) as u16;
    assert_eq!(
        u16::from_be_bytes([out2[34 + 16], out2[34 + 17]]),
        want,
        "TCP field holds the pseudo-header sum"
    );
}

#[test]
fn vlan_tag_is_kept() {
    let k = Conv::fnat(false);
    let (IpAddr::V4(c), IpAddr::V4(v)) = (k.c.ip(), k.v.ip()) else {
        unreachable!()
    };
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, MAC0)
        .single_vlan(etherparse::VlanId::try_new(100).expect("vlan"))
        .ipv4(c.octets(), v.octets(), 64)
        .tcp(k.c.port(), k.v.port(), 100, 65000)
        .syn()
        .write(&mut pkt, b"")
        .expect("write");
    let mut w = worker();
    let (verdict, out) = run(&mut w, 0, &pkt, 0);
    assert_eq!(verdict, Verdict::Tx { port: 1 });
    let h = etherparse::PacketHeaders::from_ethernet_slice(&out).expect("parse");
    assert!(matches!(h.vlan, Some(etherparse::VlanHeader::Single(t)) if t.vlan_id.value() == 100));
    let Some(etherparse::NetHeaders::Ipv4(ip4, _)) = h.net else {
        panic!("ipv4")
    };
    assert_eq!(ip4.header_checksum, ip4.calc_header_checksum());
    assert_eq!(IpAddr::from(ip4.destination), k.r.ip());
    let Some(etherparse::TransportHeader::Tcp(t)) = h.transport else {
        panic!("tcp")
    };
    assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip4, &[]).expect("len"));
    assert_eq!(t.destination_port, k.r.port());
}

#[test]
fn udp_without_checksum_stays_without() {
    let mut p = udp_in(c4(), sa(FNAT4_UDP), b"q");
    p[14 + 20 + 6] = 0;
    p[14 + 20 + 7] = 0;
    let mut w = worker();
    let (v, out) = run(&mut w, 0, &p, 0);
    assert_eq!(v, Verdict::Tx { port: 1 });
    assert_eq!(&out[40..42], &[0, 0]);
    let s = inspect(&out);
    assert_eq!((s.src, s.dst), (l4(), sa(RS_FNAT4_UDP)));
}

#[test]
fn ipv4_options_are_carried() {
    let k = Conv::fnat(false);
    let (IpAddr::V4(c), IpAddr::V4(v)) = (k.c.ip(), k.v.ip()) else {
        unreachable!()
    };
    let mut iph =
        etherparse::Ipv4Header::new(0, 64, etherparse::IpNumber::TCP, c.octets(), v.octets())
            .expect("hdr");
    iph.options = [1u8, 1, 1, 0][..].try_into().expect("options");
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, MAC0)
        .ip(etherparse::IpHeaders::Ipv4(iph, Default::default()))
        .tcp(k.c.port(), k.v.port(), 100, 65000)
        .syn()
        .write(&mut pkt, b"")
        .expect("write");
    let mut w = worker();
    let (verdict, out) = run(&mut w, 0, &pkt, 0);
    assert_eq!(verdict, Verdict::Tx { port: 1 });
    let s = inspect(&out);
    assert_eq!((s.src, s.dst, s.ttl), (k.l, k.r, 63));
}
