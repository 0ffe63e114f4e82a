//! Bounded packet trace: workers copy what they receive and send into a trace ring (no
//! syscall, no heap allocation: the copies come from a pool of their own), and the master
//! writes them to a pcapng file with one interface per port and queue and the worker and
//! direction in each packet's comment, so tshark and Wireshark read it as it is.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use dpdk::ring::{Consumer, Producer};
use dpdk::{Burst, Mbuf, Mempool};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

use crate::dataplane::types::Nanos;

/// Bytes of metadata in front of each traced copy.
const META_LEN: usize = 24;
/// Marks a traced copy.
const MAGIC: [u8; 2] = *b"L4";

/// Which way a traced packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the worker.
    Rx,
    /// Sent by the worker.
    Tx,
}

/// A worker's side of the trace.
#[derive(Debug)]
pub struct Tracer {
    ring: Producer<Mbuf>,
    pool: Mempool,
    worker: u16,
    budget: u64,
    /// Copies lost because the trace ring or pool was full.
    pub lost: u64,
}

impl Tracer {
    /// A tracer that copies at most `budget` packets.
    pub fn new(ring: Producer<Mbuf>, pool: Mempool, worker: u16, budget: u64) -> Tracer {
        Tracer {
            ring,
            pool,
            worker,
            budget,
            lost: 0,
        }
    }

    /// Copies `data` (seen at `now` on `port`/`queue`) into the trace, if budget is left.
    #[inline]
    pub fn record(&mut self, now: Nanos, dir: Direction, port: u16, queue: u16, data: &[u8]) {
        if self.budget == 0 {
            return;
        }
        let Some(mut copy) = Mbuf::alloc(&self.pool) else {
            self.lost += 1;
            return;
        };
        let room = copy.tailroom();
        let take = data.len().min(room.saturating_sub(META_LEN));
        let Ok(buf) = copy.append(META_LEN + take) else {
            self.lost += 1;
            return;
        };
        buf[0..2].copy_from_slice(&MAGIC);
        buf[2..4].copy_from_slice(&self.worker.to_le_bytes());
        buf[4] = match dir {
            Direction::Rx => 0,
            Direction::Tx => 1,
        };
        buf[5] = 0;
        buf[6..8].copy_from_slice(&port.to_le_bytes());
        buf[8..10].copy_from_slice(&queue.to_le_bytes());
        buf[10..12].copy_from_slice(&(data.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
        buf[12..16].fill(0);
        buf[16..24].copy_from_slice(&now.to_le_bytes());
        buf[META_LEN..].copy_from_slice(&data[..take]);
        if self.ring.enqueue(copy).is_err() {
            self.lost += 1;
            return;
        }
        self.budget -= 1;
    }
}

/// The master's side: drains the trace ring into a pcapng file.
pub struct TraceWriter {
    ring: Consumer<Mbuf>,
    writer: PcapNgWriter<BufWriter<File>>,
    /// (port id, queue) of each interface written so far, in interface-id order.
    interfaces: Vec<(u16, u16)>,
    port_names: Vec<(u16, String)>,
    /// Wall-clock time of the dataplane clock's zero.
    epoch: Duration,
    /// Packets written.
    pub written: u64,
}

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("interfaces", &self.interfaces)
            .field("written", &self.written)
            .finish()
    }
}

impl TraceWriter {
    /// Creates the file. `epoch` is the wall-clock time at the dataplane clock's zero.
    pub fn create(
        path: &Path,
        ring: Consumer<Mbuf>,
        port_names: Vec<(u16, String)>,
        epoch: Duration,
    ) -> Result<TraceWriter, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let writer = PcapNgWriter::new(BufWriter::new(file))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TraceWriter {
            ring,
            writer,
            interfaces: Vec::new(),
            port_names,
            epoch,
            written: 0,
        })
    }

    /// Writes whatever the workers traced since the last call.
    pub fn drain(&mut self) -> Result<(), String> {
        let mut burst = Burst::new();
        while self.ring.dequeue_burst(&mut burst) > 0 {
            for m in burst.drain() {
                self.write(&m)?;
            }
        }
        Ok(())
    }

    fn interface(&mut self, port: u16, queue: u16) -> Result<u32, String> {
        if let Some(i) = self.interfaces.iter().position(|&k| k == (port, queue)) {
            return Ok(i as u32);
        }
        let name = self
            .port_names
            .iter()
            .find(|(id, _)| *id == port)
            .map_or_else(|| format!("port{port}"), |(_, n)| n.clone());
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(format!("{name}/q{queue}"))),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        self.writer
            .write_pcapng_block(idb)
            .map_err(|e| format!("trace: {e}"))?;
        self.interfaces.push((port, queue));
        Ok(self.interfaces.len() as u32 - 1)
    }

    fn write(&mut self, m: &Mbuf) -> Result<(), String> {
        let data = m.data();
        if data.len() < META_LEN || data[0..2] != MAGIC {
            return Ok(());
        }
        let worker = u16::from_le_bytes([data[2], data[3]]);
        let dir = if data[4] == 0 { "rx" } else { "tx" };
        let port = u16::from_le_bytes([data[6], data[7]]);
        let queue = u16::from_le_bytes([data[8], data[9]]);
        let orig_len = u16::from_le_bytes([data[10], data[11]]);
        let mut ns = [0u8; 8];
        ns.copy_from_slice(&data[16..24]);
        let now = u64::from_le_bytes(ns);
        let iface = self.interface(port, queue)?;
        let epb = EnhancedPacketBlock {
            interface_id: iface,
            timestamp: self.epoch + Duration::from_nanos(now),
            original_len: u32::from(orig_len),
            data: Cow::Borrowed(&data[META_LEN..]),
            options: vec![EnhancedPacketOption::Comment(Cow::Owned(format!(
                "worker={worker} {dir}"
            )))],
        };
        self.writer
            .write_pcapng_block(epb)
            .map_err(|e| format!("trace: {e}"))?;
        self.written += 1;
        Ok(())
    }

    /// Writes what is left and flushes the file.
    pub fn finish(&mut self) -> Result<(), String> {
        self.drain()?;
        use std::io::Write;
        self.writer
            .get_mut()
            .flush()
            .map_err(|e| format!("trace: {e}"))
    }
}
