//! net_pcap captures of generated traffic: every checksum verifies (etherparse), the
//! varying fields vary exactly as declared, and the number of distinct flows on the
//! wire equals `--flows`.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use common::Parsed;

/// Runs the generator into a tx capture and returns the parsed frames.
fn capture(name: &str, args: &[&str]) -> Vec<(usize, Parsed)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("tx.pcap");
    let eal = common::eal(name, 1, &format!("net_pcap0,tx_pcap={}", out.display()));
    let s = common::run_ok(args, &eal, &dir.path().join("s.json"));
    let frames = common::read_pcap(&out);
    assert_eq!(
        Some(frames.len() as u64),
        s["tx_packets"].as_u64(),
        "capture holds what was sent"
    );
    frames
        .iter()
        .map(|f| (f.len(), common::parse_verified(f)))
        .collect()
}

/// Flow `i` as the generator declares it (see `flows.rs`): destination `i mod D`, then
/// source address, then source port.
fn declared(
    i: u64,
    src: Ipv4Addr,
    src_count: u64,
    sport_lo: u16,
    dsts: &[(Ipv4Addr, u16)],
) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let d = dsts.len() as u64;
    let k = i / d;
    let (dst, dport) = dsts[(i % d) as usize];
    (
        Ipv4Addr::from(u32::from(src) + (k % src_count) as u32),
        sport_lo + (k / src_count) as u16,
        dst,
        dport,
    )
}

#[test]
fn sequential_udp_flows_vary_as_declared() {
    let frames = capture(
        "seq",
        &[
            "--count",
            "3000",
            "--flows",
            "1000",
            "--src",
            "10.1.0.0/24",
            "--sport",
            "2000-2999",
            "--dst",
            "192.168.0.1:80,192.168.0.2:81",
        ],
    );
    let dsts = [
        (Ipv4Addr::new(192, 168, 0, 1), 80),
        (Ipv4Addr::new(192, 168, 0, 2), 81),
    ];
    let mut flows = HashSet::new();
    for (i, (len, p)) in frames.iter().enumerate() {
        assert_eq!(*len, 60);
        assert!(!p.tcp);
        let want = declared(
            i as u64 % 1000,
            Ipv4Addr::new(10, 1, 0, 0),
            256,
            2000,
            &dsts,
        );
        assert_eq!((p.src, p.sport, p.dst, p.dport), want, "packet {i}");
        assert_eq!(p.dst_mac, [2, 0, 0, 0, 0, 2]);
        flows.insert((p.src, p.sport, p.dst, p.dport));
    }
    assert_eq!(frames.len(), 3000);
    assert_eq!(flows.len(), 1000, "distinct flows on the wire == --flows");
}

#[test]
fn random_order_still_sends_every_flow() {
    let frames = capture(
        "rand",
        &[
            "--count",
            "5000",
            "--flows",
            "5000",
            "--random-flows",
            "--seed",
            "42",
            "--size",
            "imix",
        ],
    );
    let flows: HashSet<_> = frames
        .iter()
        .map(|(_, p)| (p.src, p.sport, p.dst, p.dport))
        .collect();
    assert_eq!(flows.len(), 5000, "a permutation: all 5000 flows once");
    let in_order = frames
        .windows(2)
        .filter(|w| w[1].1.src > w[0].1.src)
        .count();
    assert!(
        in_order < 4000,
        "not sequential ({in_order} increasing steps)"
    );
    // IMIX 7:4:1 of 64/570/1518 B frames (60/566/1514 bytes without FCS).
    let count = |l| frames.iter().filter(|(len, _)| *len == l).count();
    assert_eq!(count(60) + count(566) + count(1514), 5000);
    let cycles = 5000 / 12;
    assert!(count(60) >= 7 * cycles && count(566) >= 4 * cycles && count(1514) >= cycles);
}

#[test]
fn tcp_syn_and_sessions() {
    let frames = capture(
        "syn",
        &[
            "--count", "200", "--flows", "50", "--proto", "tcp-syn", "--size", "128",
        ],
    );
    let seqs: HashSet<u32> = frames.iter().map(|(_, p)| p.seq).collect();
    assert_eq!(seqs.len(), 200, "sequence numbers vary per packet");
    assert!(frames
        .iter()
        .all(|(len, p)| p.syn && !p.ack_flag && *len == 124));
    let frames = capture(
        "session",
        &[
            "--count",
            "30",
            "--flows",
            "10",
            "--proto",
            "tcp-session",
            "--size",
            "100",
        ],
    );
    for (k, chunk) in frames.chunks(3).enumerate() {
        let [(_, syn), (_, data), (_, fin)] = chunk else {
            panic!("whole sessions")
        };
        assert!(syn.syn && !syn.ack_flag, "session {k}");
        assert!(data.ack_flag && data.payload_len == 100 - 4 - 54);
        assert!(fin.fin && fin.ack_flag);
        assert_eq!((syn.src, syn.sport), (data.src, data.sport));
        assert_eq!((syn.src, syn.sport), (fin.src, fin.sport));
        assert_eq!(data.seq, syn.seq.wrapping_add(1));
        assert_eq!(fin.seq, data.seq.wrapping_add(data.payload_len as u32));
    }
    let flows: HashSet<_> = frames.iter().map(|(_, p)| (p.src, p.sport)).collect();
    assert_eq!(flows.len(), 10);
}

#[test]
fn single_flow_and_large_frames_verify() {
    // One flow: the frame is finished once and copied per packet; it must still be the
    // declared flow with valid checksums. Then a larger fixed size (the lean loop's
    // variable-length copy).
    let frames = capture(
        "one",
        &["--count", "100", "--flows", "1", "--src", "10.9.0.7/32"],
    );
    assert_eq!(frames.len(), 100);
    let flows: HashSet<_> = frames
        .iter()
        .map(|(len, p)| {
            assert_eq!(*len, 60);
            (p.src, p.sport, p.dst, p.dport)
        })
        .collect();
    assert_eq!(flows.len(), 1);
    assert_eq!(
        frames[0].1.src,
        Ipv4Addr::new(10, 9, 0, 7),
        "the declared source"
    );
    let frames = capture(
        "big",
        &["--count", "600", "--flows", "300", "--size", "1518"],
    );
    let flows: HashSet<_> = frames
        .iter()
        .map(|(len, p)| {
            assert_eq!(*len, 1514);
            (p.src, p.sport, p.dst, p.dport)
        })
        .collect();
    assert_eq!(flows.len(), 300);
}
