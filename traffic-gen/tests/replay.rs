//! pcap replay through net_pcap: byte-identical packets in order (looped), original
//! timing kept, and retargeting rewrites destination and sources with valid checksums.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::PacketBuilder;

fn frames() -> Vec<Vec<u8>> {
    (0..40u32)
        .map(|i| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(
                [10, 0, 0, (i % 4) as u8],
                [172, 16, 0, 1],
                64,
            );
            let payload: Vec<u8> = (0..(i * 13 % 200)).map(|b| b as u8).collect();
            let mut v = Vec::new();
            if i % 3 == 0 {
                b.tcp(3000 + i as u16, 80, i, 100)
                    .syn()
                    .write(&mut v, &payload)
                    .expect("build");
            } else {
                b.udp(4000 + i as u16, 53)
                    .write(&mut v, &payload)
                    .expect("build");
            }
            v.resize(v.len().max(60), 0);
            v
        })
        .collect()
}

#[test]
fn replay_is_byte_identical_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, output) = (dir.path().join("in.pcap"), dir.path().join("out.pcap"));
    let frames = frames();
    common::write_pcap(&input, &frames, Duration::from_micros(100));
    let eal = common::eal(
        "replay",
        1,
        &format!("net_pcap0,tx_pcap={}", output.display()),
    );
    let i = input.to_str().expect("utf-8");
    let s = common::run_ok(
        &[
            "--pcap",
            i,
            "--replay-mode",
            "pps",
            "--pps",
            "100k",
            "--loop",
            "3",
        ],
        &eal,
        &dir.path().join("s.json"),
    );
    assert_eq!(s["tx_packets"], 120, "{s}");
    let out = common::read_pcap(&output);
    assert_eq!(out.len(), 120);
    for (k, f) in out.iter().enumerate() {
        assert_eq!(f, &frames[k % 40], "packet {k}");
    }
}

#[test]
fn original_timing_is_kept() {
    // 20 packets 5 ms apart: the replay must take about 95 ms, not go out in one burst.
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, output) = (dir.path().join("in.pcap"), dir.path().join("out.pcap"));
    let frames: Vec<Vec<u8>> = frames().into_iter().take(20).collect();
    common::write_pcap(&input, &frames, Duration::from_millis(5));
    let eal = common::eal(
        "replaytime",
        1,
        &format!("net_pcap0,tx_pcap={}", output.display()),
    );
    let i = input.to_str().expect("utf-8");
    common::run_ok(
        &["--pcap", i, "--replay-mode", "original"],
        &eal,
        &dir.path().join("s.json"),
    );
    let out = common::read_pcap_timed(&output);
    assert_eq!(out.len(), 20);
    let span = out[19].0.saturating_sub(out[0].0);
    // Lower bound is strict (the schedule never sends early); the upper one is loose
    // because the machine is shared.
    assert!(span >= Duration::from_millis(94), "span {span:?}");
    assert!(span < Duration::from_millis(400), "span {span:?}");
    for (k, (_, f)) in out.iter().enumerate() {
        assert_eq!(f, &frames[k]);
    }
}

#[test]
fn retarget_rewrites_destination_and_spreads_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, output) = (dir.path().join("in.pcap"), dir.path().join("out.pcap"));
    let frames = frames();
    common::write_pcap(&input, &frames, Duration::from_micros(10));
    let eal = common::eal(
        "retarget",
        1,
        &format!("net_pcap0,tx_pcap={}", output.display()),
    );
    let i = input.to_str().expect("utf-8");
    common::run_ok(
        &[
            "--pcap",
            i,
            "--replay-mode",
            "speedup=100",
            "--loop",
            "2",
            "--retarget",
            "192.0.2.10:8443",
            "--src",
            "100.64.0.0/10",
        ],
        &eal,
        &dir.path().join("s.json"),
    );
    let out = common::read_pcap(&output);
    assert_eq!(out.len(), 80);
    let mut sources = HashSet::new();
    for (k, f) in out.iter().enumerate() {
        let p = common::parse_verified(f);
        let orig = common::parse_verified(&frames[k % 40]);
        assert_eq!(
            (p.dst, p.dport),
            (Ipv4Addr::new(192, 0, 2, 10), 8443),
            "packet {k}"
        );
        assert_eq!(
            (p.sport, p.tcp, p.payload_len),
            (orig.sport, orig.tcp, orig.payload_len)
        );
        let round = (k / 40) as u32;
        let want = Ipv4Addr::from(0x6440_0000 | ((u32::from(orig.src) + round) & 0x003f_ffff));
        assert_eq!(p.src, want, "packet {k}");
        sources.insert((p.src, p.sport));
    }
    assert_eq!(sources.len(), 80, "each loop makes new flows");
}
