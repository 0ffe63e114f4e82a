//! The responder through net_pcap: a SYN in gives a correct SYN-ACK out, a UDP datagram
//! its mirror, data an ACK, a FIN a FIN-ACK, and a RST nothing.

mod common;

use std::time::Duration;

use etherparse::PacketBuilder;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x5];

fn tcp(flags: &str, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4([10, 0, 0, 7], [192, 168, 1, 10], 64)
        .tcp(40001, 8080, seq, 1000);
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
    b.write(&mut v, payload).expect("build");
    v.resize(v.len().max(60), 0);
    v
}

#[test]
fn syn_ack_udp_mirror_ack_fin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, output) = (dir.path().join("in.pcap"), dir.path().join("out.pcap"));
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4([10, 0, 0, 8], [192, 168, 1, 11], 64)
        .udp(5555, 53)
        .write(&mut udp, b"a question")
        .expect("build");
    udp.resize(60, 0);
    let frames = vec![
        tcp("S", 1000, 0, &[]),
        udp.clone(),
        tcp("A", 1001, 77, b"GET /"),
        tcp("FA", 1006, 77, &[]),
        tcp("R", 1007, 0, &[]),
    ];
    common::write_pcap(&input, &frames, Duration::from_micros(10));
    let eal = common::eal(
        "respond",
        1,
        &format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            input.display(),
            output.display()
        ),
    );
    let s = common::run_ok(
        &["--respond", "--count", "5"],
        &eal,
        &dir.path().join("s.json"),
    );
    assert_eq!(s["rx_packets"], 5, "{s}");
    assert_eq!(s["tx_packets"], 4, "{s}");
    assert_eq!(s["responder"]["rst"], 1);

    let out = common::read_pcap(&output);
    assert_eq!(out.len(), 4);
    // SYN -> SYN-ACK: ports and addresses swapped, ack = seq + 1, SYN|ACK.
    let p = common::parse_verified(&out[0]);
    assert!(p.tcp && p.syn && p.ack_flag && !p.fin);
    assert_eq!((p.src_mac, p.dst_mac), (SERVER_MAC, CLIENT_MAC));
    assert_eq!(
        (p.src.octets(), p.dst.octets()),
        ([192, 168, 1, 10], [10, 0, 0, 7])
    );
    assert_eq!((p.sport, p.dport), (8080, 40001));
    assert_eq!(p.ack, 1001);
    // UDP -> its mirror, byte for byte but for the swapped fields.
    let m = common::parse_verified(&out[1]);
    assert_eq!(
        (m.src.octets(), m.dst.octets(), m.sport, m.dport),
        ([192, 168, 1, 11], [10, 0, 0, 8], 53, 5555)
    );
    assert_eq!((m.src_mac, m.dst_mac), (SERVER_MAC, CLIENT_MAC));
    assert_eq!(out[1].len(), udp.len());
    assert_eq!(&out[1][42..52], b"a question");
    // Data -> ACK of it; FIN -> FIN-ACK.
    let a = common::parse_verified(&out[2]);
    assert!(a.ack_flag && !a.syn && !a.fin);
    assert_eq!((a.seq, a.ack), (77, 1006));
    let f = common::parse_verified(&out[3]);
    assert!(f.fin && f.ack_flag);
    assert_eq!((f.seq, f.ack), (77, 1007));
}
