//! Helpers shared by the integration tests: each test spawns the real `traffic-gen`
//! binary (its own process, so its own EAL) with no hugepages, no PCI scan and a unique
//! file prefix, and checks captures with etherparse (an implementation independent of
//! the generator's own `l4lab-wire` patching).
#![allow(dead_code)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

/// The first CPU this process may run on, so lcore maps work under any affinity mask.
pub fn first_cpu() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|list| {
                    list.trim()
                        .split([',', '-'])
                        .next()
                        .and_then(|n| n.parse().ok())
                })
        })
        .unwrap_or(0)
}

/// EAL arguments: `lcores` lcores on one CPU, one virtual device.
pub fn eal(name: &str, lcores: u32, vdev: &str) -> Vec<String> {
    let cpu = first_cpu();
    let map = (0..lcores)
        .map(|l| format!("{l}@{cpu}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "--no-huge".into(),
        "--no-pci".into(),
        "--no-shconf".into(),
        "-m".into(),
        "256".into(),
        "--log-level=warning".into(),
        format!("--file-prefix=tgen-{name}-{}", std::process::id()),
        format!("--lcores={map}"),
        format!("--vdev={vdev}"),
    ]
}

/// Runs the binary with `args`, then `--` and the EAL arguments.
pub fn traffic_gen(args: &[&str], eal: &[String]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_traffic-gen"));
    cmd.args(args).arg("--quiet");
    if !eal.is_empty() {
        cmd.arg("--").args(eal);
    }
    cmd.output().expect("spawn traffic-gen")
}

/// Runs and insists on success; returns the JSON summary.
/// Serialises the tests of one file that start busy-polling DPDK processes: on a small
/// machine they would otherwise share one CPU and starve each other's pacing.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn run_ok(args: &[&str], eal: &[String], json: &Path) -> serde_json::Value {
    let mut all: Vec<&str> = args.to_vec();
    let json_s = json.to_str().expect("utf-8 temp path");
    all.extend(["--json", json_s]);
    let out = traffic_gen(&all, eal);
    assert!(
        out.status.success(),
        "traffic-gen {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(json).expect("summary written");
    serde_json::from_str(&text).expect("summary is JSON")
}

/// Every frame of a capture, in order.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).expect("capture exists")).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("pcap record").data.into_owned());
    }
    out
}

/// Every frame of a capture with its timestamp.
pub fn read_pcap_timed(path: &Path) -> Vec<(Duration, Vec<u8>)> {
    let mut r = PcapReader::new(File::open(path).expect("capture exists")).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("pcap record");
        out.push((p.timestamp, p.data.into_owned()));
    }
    out
}

/// Writes frames to a pcap, `gap` apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>], gap: Duration) {
    let mut w = PcapWriter::with_header(File::create(path).expect("create"), PcapHeader::default())
        .expect("writer");
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_secs(1_000) + gap * i as u32;
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .expect("write");
    }
}

/// What a frame carries, after every checksum was verified from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Parsed {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub tcp: bool,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub payload_len: usize,
}

/// Parses an Ethernet/IPv4/TCP-or-UDP frame with etherparse and panics unless the IPv4
/// header checksum and the TCP/UDP checksum are right.
pub fn parse_verified(frame: &[u8]) -> Parsed {
    let p = SlicedPacket::from_ethernet(frame).expect("parses");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("not Ethernet II")
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let base = |sport, dport, tcp| Parsed {
        src_mac: eth.source(),
        dst_mac: eth.destination(),
        src: Ipv4Addr::from(h.source),
        dst: Ipv4Addr::from(h.destination),
        sport,
        dport,
        tcp,
        seq: 0,
        ack: 0,
        syn: false,
        ack_flag: false,
        fin: false,
        payload_len: 0,
    };
    match p.transport {
        Some(TransportSlice::Udp(u)) => {
            let want = u
                .to_header()
                .calc_checksum_ipv4(&h, u.payload())
                .expect("checksum");
            assert_eq!(u.checksum(), want, "UDP checksum");
            Parsed {
                payload_len: u.payload().len(),
                ..base(u.source_port(), u.destination_port(), false)
            }
        }
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv4(&h, t.payload())
                .expect("checksum");
            assert_eq!(t.checksum(), want, "TCP checksum");
            Parsed {
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                syn: t.syn(),
                ack_flag: t.ack(),
                fin: t.fin(),
                payload_len: t.payload().len(),
                ..base(t.source_port(), t.destination_port(), true)
            }
        }
        _ => panic!("neither TCP nor UDP"),
    }
}
