//! Software RSS placement on two cores (`--cores 2 --rss`) into a two-queue net_pcap port:
//! each tx queue carries exactly the declared flows whose Toeplitz hash (computed here by
//! DPDK's own `rte_softrss`, not by the generator's code) selects it under the default
//! key and a 128-entry round-robin RETA (net_pcap reports none, so the generator assumes
//! DPDK's usual 128), and no flow reaches the wrong queue.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

type Tuple = (Ipv4Addr, u16, Ipv4Addr, u16);

/// The queue of two that a 128-entry RETA filled round-robin gives the tuple's hash.
fn queue_of((src, sport, dst, dport): Tuple) -> usize {
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    input[8..10].copy_from_slice(&sport.to_be_bytes());
    input[10..].copy_from_slice(&dport.to_be_bytes());
    let hash = dpdk::thash::softrss(&input, &dpdk::port::DEFAULT_RSS_KEY).expect("12-byte input");
    (hash % 128 % 2) as usize
}

#[test]
fn each_tx_queue_carries_exactly_the_flows_its_hash_selects() {
    let _serial = common::one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pcap");
    common::write_pcap(&empty, &[], std::time::Duration::ZERO);
    let q = [dir.path().join("q0.pcap"), dir.path().join("q1.pcap")];
    let vdev = format!(
        "net_pcap0,rx_pcap={e},rx_pcap={e},tx_pcap={},tx_pcap={}",
        q[0].display(),
        q[1].display(),
        e = empty.display()
    );
    let eal = common::eal("rss2", 3, &vdev);
    let s = common::run_ok(
        &[
            "--count",
            "3000",
            "--flows",
            "1000",
            "--cores",
            "2",
            "--rss",
            "--src",
            "10.1.0.0/24",
            "--sport",
            "2000-2999",
            "--dst",
            "192.168.0.1:80,192.168.0.2:81",
        ],
        &eal,
        &dir.path().join("s.json"),
    );

    // The declared flows (flows.rs: destination first, then source, then source port),
    // split by the hash.
    let dsts = [
        (Ipv4Addr::new(192, 168, 0, 1), 80),
        (Ipv4Addr::new(192, 168, 0, 2), 81),
    ];
    let mut want: [HashSet<Tuple>; 2] = Default::default();
    for i in 0..1000u32 {
        let (dst, dport) = dsts[(i % 2) as usize];
        let k = i / 2;
        let t = (
            Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + k % 256),
            2000 + (k / 256) as u16,
            dst,
            dport,
        );
        want[queue_of(t)].insert(t);
    }
    assert!(
        want.iter().all(|w| w.len() > 300),
        "the hash spreads the flows: {} / {}",
        want[0].len(),
        want[1].len()
    );

    let mut frames = 0;
    for (queue, path) in q.iter().enumerate() {
        let mut got = HashSet::new();
        for f in common::read_pcap(path) {
            let p = common::parse_verified(&f);
            let t = (p.src, p.sport, p.dst, p.dport);
            assert_eq!(queue_of(t), queue, "{t:?} went out of tx queue {queue}");
            got.insert(t);
            frames += 1;
        }
        assert_eq!(
            got, want[queue],
            "tx queue {queue} carries exactly the flows whose hash selects it"
        );
    }
    assert_eq!(Some(frames), s["tx_packets"].as_u64(), "{s}");
}
