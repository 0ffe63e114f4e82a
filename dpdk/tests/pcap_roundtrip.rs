//! net_pcap: a capture read through `rx_pcap` and sent through `tx_pcap` comes out byte
//! for byte identical, in order.

mod common;

use std::fs::File;
use std::time::Duration;

use dpdk::{Burst, Mempool, Port, PortConfig};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

fn frame(i: usize) -> Vec<u8> {
    let len = 60 + (i * 97) % 1454;
    let mut f: Vec<u8> = (0..len).map(|b| (b as u8).wrapping_add(i as u8)).collect();
    // A plausible Ethernet header: broadcast destination, IPv4 ethertype.
    f[..6].copy_from_slice(&[0xff; 6]);
    f[12] = 0x08;
    f[13] = 0x00;
    f
}

#[test]
fn pcap_in_equals_pcap_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    const COUNT: usize = 150;
    {
        let file = File::create(&input).expect("create input");
        let mut w = PcapWriter::with_header(file, PcapHeader::default()).expect("writer");
        for i in 0..COUNT {
            let data = frame(i);
            let ts = Duration::from_micros(1_000_000 + i as u64 * 10);
            w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data))
                .expect("write");
        }
    }

    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    );
    let _eal = common::base("pcap").vdev(&vdev).init().expect("EAL init");
    let pool = Mempool::with_defaults("pcap_pool", 1023).expect("pool");
    let mut port = Port::by_name("net_pcap0").expect("port");
    let (mut rxq, mut txq) = port
        .configure(&PortConfig::new(1), &pool)
        .expect("configure");
    port.start().expect("start");

    let mut burst = Burst::new();
    let mut moved = 0;
    for _ in 0..10_000 {
        rxq[0].rx_burst(&mut burst);
        while !burst.is_empty() {
            moved += txq[0].tx_burst(&mut burst);
        }
        if moved >= COUNT {
            break;
        }
    }
    assert_eq!(moved, COUNT, "every captured packet was received and sent");
    let stats = port.stats().expect("stats");
    assert_eq!(stats.ipackets, COUNT as u64);
    assert_eq!(stats.opackets, COUNT as u64);
    // Closing the port (queues and port dropped) flushes and closes the tx capture.
    drop((rxq, txq, port));

    let mut reader = PcapReader::new(File::open(&output).expect("output exists")).expect("pcap");
    let mut n = 0;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("valid record");
        assert_eq!(pkt.data.as_ref(), frame(n).as_slice(), "packet {n} differs");
        assert_eq!(pkt.orig_len as usize, frame(n).len());
        n += 1;
    }
    assert_eq!(n, COUNT, "output holds exactly the input packets");
}
