//! Writes the seed corpus of the dataplane fuzz targets (`forwarder/fuzz/corpus/<target>/`)
//! from real packets: `cargo test -p forwarder --test dataplane_fuzz_seeds -- --ignored`.
//! The non-ignored test runs the checked-in seeds through a worker.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::*;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let c4 = sa("198.51.100.7:40000");
    let c6 = sa("[2001:db8:ff::7]:40000");
    let l4 = SocketAddr::new(ip("192.168.1.1"), 1026);
    let l6 = SocketAddr::new(ip("2001:db8:1::1"), 1026);
    let mss = [2, 4, 5, 0xb4];
    let sent = tcp_full(MAC1, GW1, l4, sa(RS_FNAT4), TCP_SYN, 100, 0, &mss, b"", 63);
    let with_port = |port: u8, p: Vec<u8>| {
        let mut v = vec![port];
        v.extend_from_slice(&p);
        v
    };
    vec![
        (
            "fullnat_in",
            "v4_syn",
            tcp_in(c4, sa(FNAT4_TCP), TCP_SYN, 100, 0, &mss, b""),
        ),
        (
            "fullnat_in",
            "v4_ack_toa",
            tcp_in(
                c4,
                sa(FNAT4_TCP),
                TCP_ACK,
                101,
                5001,
                &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                b"",
            ),
        ),
        (
            "fullnat_in",
            "v6_data",
            tcp_in(
                c6,
                sa(FNAT6_TCP),
                TCP_ACK | TCP_PSH,
                101,
                5001,
                &[],
                b"GET /",
            ),
        ),
        ("fullnat_in", "v4_udp", udp_in(c4, sa(FNAT4_UDP), b"query")),
        (
            "fullnat_in",
            "nat64_syn",
            tcp_in(c6, sa(NAT64_TCP), TCP_SYN, 100, 0, &mss, b""),
        ),
        (
            "fullnat_out",
            "v4_synack",
            tcp_out(sa(RS_FNAT4), l4, TCP_SYN | TCP_ACK, 5000, 101, &mss, b""),
        ),
        (
            "fullnat_out",
            "v6_synack",
            tcp_out(
                sa(RS_FNAT6),
                l6,
                TCP_SYN | TCP_ACK,
                5000,
                101,
                &[2, 4, 5, 0xa0],
                b"",
            ),
        ),
        (
            "fullnat_out",
            "v4_data",
            tcp_out(
                sa(RS_FNAT4),
                l4,
                TCP_ACK | TCP_PSH,
                5001,
                101,
                &[],
                b"HTTP/1.0 200",
            ),
        ),
        (
            "nat",
            "in_syn",
            with_port(0, tcp_in(c4, sa(NAT4_TCP), TCP_SYN, 100, 0, &mss, b"")),
        ),
        (
            "nat",
            "out_synack",
            with_port(
                1,
                tcp_out(sa(RS_NAT4), c4, TCP_SYN | TCP_ACK, 5000, 101, &mss, b""),
            ),
        ),
        (
            "icmp",
            "frag_needed",
            with_port(
                1,
                icmp_error(ip("192.168.1.254"), l4.ip(), 3, 4, 1400, &sent[14..], MAC1),
            ),
        ),
        (
            "icmp",
            "echo_vip",
            with_port(0, echo_request(c4.ip(), sa(FNAT4_TCP).ip(), 1, 1, b"ping")),
        ),
        (
            "icmp",
            "echo_vip_v6",
            with_port(0, echo_request(c6.ip(), sa(FNAT6_TCP).ip(), 1, 1, b"ping")),
        ),
    ]
}

#[test]
#[ignore = "writes files into forwarder/fuzz/corpus"]
fn write_fuzz_seed_corpus() {
    for (target, name, bytes) in seeds() {
        let dir = corpus().join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("seed");
    }
}

#[test]
fn checked_in_seeds_match_and_run() {
    let mut w = worker();
    for (target, name, bytes) in seeds() {
        let path = corpus().join(target).join(name);
        let Ok(stored) = std::fs::read(&path) else {
            panic!("missing seed {path:?}: run the ignored write_fuzz_seed_corpus test");
        };
        assert_eq!(stored, bytes, "seed {path:?} is stale");
        let (port, frame) = if matches!(target, "nat" | "icmp") {
            (u16::from(stored[0] & 1), &stored[1..])
        } else {
            (u16::from(target == "fullnat_out"), &stored[..])
        };
        let _ = run(&mut w, 0, frame, port);
    }
}
