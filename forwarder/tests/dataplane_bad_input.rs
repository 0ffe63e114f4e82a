//! Bad input: every prefix of a valid packet, arbitrary bytes and bit flips of valid
//! packets go through `process` without a panic; a cut packet is a counted drop, and the
//! counters always reconcile (rx = tx + drops + redirects + control).

mod common;

use std::net::SocketAddr;

use forwarder::dataplane::frame::{Frame, RxMeta};
use forwarder::dataplane::verdict::Verdict;
use forwarder::dataplane::worker::Worker;
use proptest::prelude::*;

use common::*;

fn c4() -> SocketAddr {
    sa("198.51.100.7:40000")
}
fn c6() -> SocketAddr {
    sa("[2001:db8:ff::7]:40000")
}

/// Valid packets for every path: (bytes, port).
fn valid_packets() -> Vec<(Vec<u8>, u16)> {
    let l4 = SocketAddr::new(ip(LADDR4), 1025);
    let l6 = SocketAddr::new(ip(LADDR6), 1025);
    let sent = tcp_full(
        MAC1,
        GW1,
        l4,
        sa(RS_FNAT4),
        TCP_SYN,
        100,
        0,
        &[2, 4, 5, 0xb4],
        b"",
        63,
    );
    vec![
        (
            tcp_in(c4(), sa(FNAT4_TCP), TCP_SYN, 100, 0, &[2, 4, 5, 0xb4], b""),
            0,
        ),
        (
            tcp_out(
                sa(RS_FNAT4),
                l4,
                TCP_SYN | TCP_ACK,
                5000,
                101,
                &[2, 4, 5, 0xb4, 1, 1, 4, 2],
                b"",
            ),
            1,
        ),
        (
            tcp_in(
                c4(),
                sa(FNAT4_TCP),
                TCP_ACK,
                101,
                5001,
                &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                b"hello",
            ),
            0,
        ),
        (
            tcp_in(c6(), sa(FNAT6_TCP), TCP_SYN, 100, 0, &[2, 4, 5, 0xa0], b""),
            0,
        ),
        (
            tcp_out(
                sa(RS_FNAT6),
                l6,
                TCP_SYN | TCP_ACK,
                5000,
                101,
                &[2, 4, 5, 0xa0],
                b"",
            ),
            1,
        ),
        (
            tcp_in(
                c6(),
                sa(FNAT6_TCP),
                TCP_ACK | TCP_PSH,
                101,
                5001,
                &[],
                b"data",
            ),
            0,
        ),
        (udp_in(c4(), sa(FNAT4_UDP), b"query"), 0),
        (udp_out(sa(RS_FNAT4_UDP), l4, b"answer"), 1),
        (udp_in(c6(), sa(NAT64_UDP), b"q64"), 0),
        (tcp_in(c4(), sa(NAT4_TCP), TCP_SYN, 1, 0, &[], b""), 0),
        (tcp_in(c4(), sa(DR4_TCP), TCP_SYN, 1, 0, &[], b""), 0),
        (tcp_in(c4(), sa(TUN4_TCP), TCP_SYN, 1, 0, &[], b""), 0),
        (tcp_in(c6(), sa(TUN6_TCP), TCP_SYN, 1, 0, &[], b""), 0),
        (tcp_in(c6(), sa(NAT64_TCP), TCP_SYN, 1, 0, &[], b""), 0),
        (
            echo_request(c4().ip(), sa(FNAT4_TCP).ip(), 1, 2, b"ping"),
            0,
        ),
        (
            echo_request(c6().ip(), sa(FNAT6_TCP).ip(), 1, 2, b"ping"),
            0,
        ),
        (
            icmp_error(
                ip("192.168.1.254"),
                ip(LADDR4),
                3,
                4,
                1400,
                &sent[14..],
                MAC1,
            ),
            1,
        ),
    ]
}

/// A worker with live connections for the packets above (SYNs and first datagrams).
fn primed() -> Worker {
    let mut w = worker();
    for (p, port) in valid_packets() {
        let _ = run(&mut w, 0, &p, port);
    }
    w
}

fn reconciles(w: &Worker) -> bool {
    let c = w.counters();
    c.rx_packets == c.tx_packets + c.total_drops() + c.redirects + c.control
}

#[test]
fn every_prefix_is_a_counted_drop() {
    for (i, (p, port)) in valid_packets().into_iter().enumerate() {
        for fresh in [false, true] {
            let mut w = if fresh { worker() } else { primed() };
            for cut in 0..p.len() {
                let before = w.counters().total_drops();
                let (v, _) = run(&mut w, 1, &p[..cut], port);
                assert!(
                    matches!(v, Verdict::Drop(_)),
                    "packet {i} cut at {cut}: {v:?}"
                );
                assert_eq!(w.counters().total_drops(), before + 1);
            }
            assert!(reconciles(&w));
        }
    }
}

#[test]
fn zero_headroom_and_tailroom_never_panic() {
    for (p, port) in valid_packets() {
        for mut w in [worker(), primed()] {
            let mut buf = p.clone();
            let len = buf.len();
            let mut f = Frame::new(&mut buf, 0, len).expect("frame");
            let _ = w.process(
                5,
                &mut f,
                &RxMeta {
                    port,
                    queue: 0,
                    rss_hash: None,
                },
            );
            assert!(reconciles(&w));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), port in 0u16..3) {
        let mut w = primed();
        let _ = run(&mut w, 7, &bytes, port);
        prop_assert!(reconciles(&w));
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        which in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let packets = valid_packets();
        let (mut p, port) = packets[which.index(packets.len())].clone();
        for (at, x) in flips {
            let i = at.index(p.len());
            p[i] ^= x;
        }
        let keep = p.len() - cut.index(p.len() / 4 + 1);
        p.truncate(keep);
        let mut w = primed();
        let _ = run(&mut w, 9, &p, port);
        prop_assert!(reconciles(&w));
    }
}
