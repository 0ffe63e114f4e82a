//! The hard part, through the real binary: two workers on a two-queue net_pcap port with
//! no flow rules. The forwarder must fall back to RSS-aware local ports, so that the reply
//! of every FULLNAT connection (real server → local address:port) hashes, under the
//! port's key and RETA, to the queue of the worker that made the connection.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use forwarder::dataplane::rss::{hash_input, toeplitz_reference, HashType, MICROSOFT_KEY};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

const RETA_SIZE: u32 = 128;
const QUEUES: u32 = 2;

fn queue_of(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    let mut buf = [0u8; 36];
    let input = hash_input(
        HashType::Ipv4Tcp,
        IpAddr::V4(src),
        IpAddr::V4(dst),
        sport,
        dport,
        &mut buf,
    );
    let hash = toeplitz_reference(&MICROSOFT_KEY, input);
    // RETA filled round-robin over the queues, as the forwarder programs it.
    (hash % RETA_SIZE) % QUEUES
}

fn write(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::with_header(File::create(path).expect("create"), PcapHeader::default())
        .expect("writer");
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(i as u64),
            f.len() as u32,
            f,
        ))
        .expect("write");
    }
}

fn read(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).expect("output")).expect("pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("record").data.into_owned());
    }
    out
}

#[test]
fn fullnat_replies_hash_to_the_owning_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vip = Ipv4Addr::new(10, 0, 0, 1);
    let mut per_queue: Vec<Vec<Vec<u8>>> = vec![Vec::new(); QUEUES as usize];
    for i in 0..64u16 {
        let client = Ipv4Addr::new(172, 16, (i / 200) as u8, 1 + (i % 200) as u8);
        let sport = 30000 + i * 7;
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xaa])
            .ipv4(client.octets(), vip.octets(), 64)
            .tcp(sport, 80, 1, 65535)
            .syn();
        let mut f = Vec::new();
        b.write(&mut f, &[]).expect("build");
        per_queue[queue_of(client, vip, sport, 80) as usize].push(f);
    }
    assert!(
        per_queue.iter().all(|q| !q.is_empty()),
        "both queues get clients"
    );
    let mut dev = String::from("net_pcap0");
    for q in 0..QUEUES {
        let input = dir.path().join(format!("in{q}.pcap"));
        write(&input, &per_queue[q as usize]);
        dev.push_str(&format!(",rx_pcap={}", input.display()));
    }
    for q in 0..QUEUES {
        dev.push_str(&format!(
            ",tx_pcap={}",
            dir.path().join(format!("out{q}.pcap")).display()
        ));
    }
    let stats = dir.path().join("stats.json");
    let cfg = dir.path().join("f.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[eal]
args = ["--no-huge", "--no-pci", "--no-shconf", "-m", "256", "--log-level", "warning"]

[[port]]
name = "p0"
device = "{dev}"
rx_queues = 2
tx_queues = 2
mac = "02:00:00:00:00:aa"
gateway_mac = "02:00:00:00:00:fe"
rss = {{ key = "default", reta_size = {RETA_SIZE} }}

[laddr]
p0 = ["192.168.100.200", "192.168.100.201"]

[[service]]
vip = "10.0.0.1"
port = 80
proto = "tcp"
mode = "fullnat"
scheduler = "maglev"
maglev_table_size = 251
rs = [{{ addr = "192.168.100.10:8080" }}, {{ addr = "192.168.100.11:8080" }}, {{ addr = "192.168.100.12:9090" }}]

[steering]
mode = "auto"

[control]
socket = "{sock}"
"#,
            sock = dir.path().join("ctl.sock").display()
        ),
    )
    .expect("config");
    let status = Command::new(env!("CARGO_BIN_EXE_forwarder"))
        .arg("run")
        .arg(&cfg)
        .args(["--duration", "1500ms", "--stats-json"])
        .arg(&stats)
        .status()
        .expect("forwarder runs");
    assert!(status.success());

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("json");
    assert_eq!(
        json["steering"], "rss",
        "net_pcap refuses flow rules: RSS-aware ports"
    );

    let mut total = 0;
    for worker in 0..QUEUES {
        // Gratuitous ARPs at start leave by worker 0's queue; only TCP matters here.
        let out: Vec<Vec<u8>> = read(&dir.path().join(format!("out{worker}.pcap")))
            .into_iter()
            .filter(|f| f.get(12..14) != Some(&[0x08, 0x06][..]))
            .collect();
        assert_eq!(
            out.len(),
            per_queue[worker as usize].len(),
            "worker {worker} forwarded exactly what its queue received"
        );
        for frame in &out {
            let p = SlicedPacket::from_ethernet(frame).expect("frame");
            let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (&p.net, &p.transport)
            else {
                panic!("not TCP/IPv4");
            };
            let (laddr, rs) = (ip.header().source_addr(), ip.header().destination_addr());
            let (lport, rport) = (tcp.source_port(), tcp.destination_port());
            // The reply comes from the real server to the local address and port.
            assert_eq!(
                queue_of(rs, laddr, rport, lport),
                worker,
                "reply {rs}:{rport} -> {laddr}:{lport} would reach another worker"
            );
            total += 1;
        }
        assert_eq!(
            json["workers"][worker as usize]["conns_created"],
            per_queue[worker as usize].len()
        );
    }
    assert_eq!(total, 64);
}
