//! The real `forwarder` binary on net_pcap ports: FULLNAT rewrites of a client's packets
//! read from a capture, the counters it reports when it stops, and ARP answered by the
//! master. Each run is a process of its own (EAL once per process), with --no-huge.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const FWD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const GATEWAY: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

fn write_pcap(path: &Path, packets: &[Vec<u8>]) {
    let mut w = PcapWriter::with_header(File::create(path).expect("create"), PcapHeader::default())
        .expect("pcap writer");
    for (i, p) in packets.iter().enumerate() {
        let ts = Duration::from_micros(1 + i as u64);
        w.write_packet(&PcapPacket::new(ts, p.len() as u32, p))
            .expect("write");
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).expect("output capture")).expect("pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("record").data.into_owned());
    }
    out
}

fn syn(client: Ipv4Addr, sport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, FWD_MAC)
        .ipv4(client.octets(), [10, 0, 0, 1], 64)
        .tcp(sport, 80, 1000, 65535)
        .syn();
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[]).expect("build");
    out
}

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0xff; 6]);
    p.extend_from_slice(&CLIENT_MAC);
    p.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    p.extend_from_slice(&CLIENT_MAC);
    p.extend_from_slice(&[10, 0, 0, 99]);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target.octets());
    p.resize(60, 0);
    p
}

fn config(dir: &Path, input: &Path, output: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"
[eal]
args = ["--no-huge", "--no-pci", "--no-shconf", "-m", "256", "--log-level", "warning"]

[[port]]
name = "p0"
device = "net_pcap0,rx_pcap={input},tx_pcap={output}"
rx_queues = 1
mac = "02:00:00:00:00:aa"
gateway_mac = "02:00:00:00:00:fe"
checksum_offload = false

[laddr]
p0 = ["192.168.100.200"]

[[service]]
vip = "10.0.0.1"
port = 80
proto = "tcp"
mode = "fullnat"
scheduler = "rr"
rs = [{{ addr = "192.168.100.10:8080" }}, {{ addr = "192.168.100.11:8080" }}]

[control]
socket = "{sock}"

[trace]
path = "{trace}"
max_packets = 1000
"#,
        input = input.display(),
        output = output.display(),
        sock = dir.join("ctl.sock").display(),
        trace = dir.join("trace.pcapng").display(),
    );
    let path = dir.join("forwarder.toml");
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn fullnat_syns_through_the_real_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    let stats = dir.path().join("stats.json");
    let mut packets: Vec<Vec<u8>> = (0..20u16)
        .map(|i| syn(Ipv4Addr::new(172, 16, 0, 1 + i as u8), 40000 + i))
        .collect();
    packets.push(arp_request(Ipv4Addr::new(10, 0, 0, 1)));
    packets.push(arp_request(Ipv4Addr::new(10, 0, 0, 77))); // not ours: no answer
                                                            // A SYN to a port with no service.
    let b = PacketBuilder::ethernet2(CLIENT_MAC, FWD_MAC)
        .ipv4([172, 16, 9, 9], [10, 0, 0, 1], 64)
        .tcp(5555, 81, 1, 100)
        .syn();
    let mut stray = Vec::new();
    b.write(&mut stray, &[]).expect("build");
    packets.push(stray);
    write_pcap(&input, &packets);
    let cfg = config(dir.path(), &input, &output);

    let status = Command::new(env!("CARGO_BIN_EXE_forwarder"))
        .args(["run"])
        .arg(&cfg)
        .args(["--duration", "1500ms", "--stats-json"])
        .arg(&stats)
        .status()
        .expect("forwarder runs");
    assert!(status.success(), "forwarder exited with {status}");

    let out = read_pcap(&output);
    let mut forwarded = 0;
    let mut arp_replies = 0;
    let mut gratuitous = std::collections::BTreeSet::new();
    let mut rs_seen = std::collections::BTreeMap::new();
    let mut lports = std::collections::BTreeSet::new();
    for frame in &out {
        let sliced = SlicedPacket::from_ethernet(frame).expect("valid frame");
        let eth = etherparse::Ethernet2HeaderSlice::from_slice(frame).expect("eth");
        assert_eq!(eth.source(), FWD_MAC, "sent from our MAC");
        match (&sliced.net, &sliced.transport) {
            (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) => {
                forwarded += 1;
                let h = ip.header();
                assert_eq!(
                    h.source_addr(),
                    Ipv4Addr::new(192, 168, 100, 200),
                    "source = local address"
                );
                let dst = h.destination_addr();
                assert!(
                    dst == Ipv4Addr::new(192, 168, 100, 10)
                        || dst == Ipv4Addr::new(192, 168, 100, 11)
                );
                assert_eq!(tcp.destination_port(), 8080);
                assert_eq!(h.ttl(), 63, "TTL decremented");
                assert!(tcp.syn());
                assert_eq!(eth.destination(), GATEWAY, "towards the static next hop");
                let header = h.to_header();
                assert_eq!(
                    header.header_checksum,
                    header.calc_header_checksum(),
                    "IPv4 checksum"
                );
                let expect = tcp
                    .to_header()
                    .calc_checksum_ipv4(&header, tcp.payload())
                    .expect("checksum");
                assert_eq!(tcp.checksum(), expect, "TCP checksum");
                *rs_seen.entry(dst).or_insert(0) += 1;
                assert!(lports.insert(tcp.source_port()), "local port used twice");
            }
            _ if frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 1] => {
                // Gratuitous ARP at start: sender and target are the same owned address.
                assert_eq!(&frame[0..6], &[0xff; 6]);
                assert_eq!(&frame[28..32], &frame[38..42]);
                gratuitous.insert(frame[28..32].to_vec());
            }
            _ => {
                // ARP reply for the VIP.
                assert_eq!(&frame[12..14], &[0x08, 0x06]);
                assert_eq!(&frame[20..22], &[0, 2], "an ARP reply");
                assert_eq!(&frame[22..28], &FWD_MAC, "we own the VIP");
                assert_eq!(&frame[28..32], &[10, 0, 0, 1]);
                assert_eq!(&frame[0..6], &CLIENT_MAC, "sent back to the asker");
                arp_replies += 1;
            }
        }
    }
    assert_eq!(
        gratuitous,
        [vec![10, 0, 0, 1], vec![192, 168, 100, 200]]
            .into_iter()
            .collect(),
        "the VIP and the local address are announced"
    );
    assert_eq!(forwarded, 20, "every SYN to the service was forwarded");
    assert_eq!(arp_replies, 1, "only the VIP's ARP request is answered");
    assert_eq!(
        rs_seen.values().copied().collect::<Vec<_>>(),
        vec![10, 10],
        "rr splits evenly"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats written"))
            .expect("json");
    let w = &json["workers"][0];
    assert_eq!(w["rx_packets"], 23);
    assert_eq!(w["tx_packets"], 20);
    assert_eq!(w["control"], 2, "two ARP requests went to the master");
    assert_eq!(w["drops"]["no_service"], 1);
    assert_eq!(w["conns_created"], 20);
    assert_eq!(json["arp_replies"], 1);
    assert_eq!(json["announcements"], 2);
    assert_eq!(
        json["ports"][0]["rx_packets"], 23,
        "port counters in the final JSON"
    );
    let svc = &json["services"][0];
    assert_eq!(svc["vip"], "10.0.0.1:80");
    assert_eq!(svc["packets"], 20, "per-service packets");
    assert_eq!(svc["conns_created"], 20);
    assert_eq!(svc["conns"], 20, "all 20 connections still live");

    // The trace holds what the worker received and sent, marked with worker and direction.
    let trace = std::fs::read(dir.path().join("trace.pcapng")).expect("trace written");
    let mut reader = pcap_file::pcapng::PcapNgReader::new(&trace[..]).expect("pcapng");
    let (mut rx, mut tx, mut names) = (0, 0, Vec::new());
    while let Some(block) = reader.next_block() {
        match block.expect("valid block") {
            pcap_file::pcapng::Block::InterfaceDescription(idb) => {
                for opt in idb.options {
                    if let pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption::IfName(n) = opt {
                        names.push(n.into_owned());
                    }
                }
            }
            pcap_file::pcapng::Block::EnhancedPacket(epb) => {
                let comment = epb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    })
                    .expect("each packet has a comment");
                match comment.as_str() {
                    "worker=0 rx" => {
                        assert!(
                            packets.iter().any(|p| p.as_slice() == epb.data.as_ref()),
                            "rx copy is an input packet"
                        );
                        rx += 1;
                    }
                    "worker=0 tx" => {
                        assert!(
                            out.iter().any(|p| p.as_slice() == epb.data.as_ref()),
                            "tx copy is an output packet"
                        );
                        tx += 1;
                    }
                    other => panic!("unexpected comment {other}"),
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        (rx, tx),
        (23, 20),
        "every packet in and out was traced once"
    );
    assert_eq!(
        names,
        vec!["p0/q0".to_owned()],
        "one interface per port and queue"
    );
    if Command::new("tshark").arg("-v").output().is_ok() {
        let t = Command::new("tshark")
            .args(["-r"])
            .arg(dir.path().join("trace.pcapng"))
            .output()
            .expect("tshark");
        assert!(
            t.status.success(),
            "tshark reads the trace: {}",
            String::from_utf8_lossy(&t.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&t.stdout).lines().count(), 43);
    }
    assert_eq!(json["steering"], "single");
}

#[test]
fn bad_config_exits_2_naming_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\nrx_queues = 1\n\n[[service]]\nvip = \"10.0.0.1\"\nport = 80\nproto = \"tcp\"\nmode = \"fullnat\"\nscheduler = \"nope\"\n",
    )
    .expect("write");
    for args in [vec!["--check"], vec!["run"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_forwarder"))
            .args(&args)
            .arg(&path)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:11:"), "names file and line: {err}");
        assert!(err.contains("scheduler"), "names the field: {err}");
    }
}
