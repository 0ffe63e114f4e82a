//! The real runtime (master + worker lcores) in this process, on one `net_ring` port whose
//! other end the test holds: the test plays the NIC (it picks the receive queue of every
//! frame with Toeplitz + RETA, as a NIC would, or deliberately wrong), the clients and the
//! real servers. Which receive queue of the test's end a forwarded frame arrives on tells
//! which worker sent it (worker w transmits on queue w).
//!
//! Every forwarded frame is checked: addresses and ports rewritten as FULLNAT wants, the
//! same real server and local port for the whole life of a connection, TTL decremented,
//! IPv4 and TCP checksums recomputed from scratch, payload intact, both directions sent by
//! the worker that made the connection, and nothing lost.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dpdk::{ringport, Burst, Eal, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, SlicedPacket, TcpHeader, TransportSlice};
use forwarder::control::client::run_ctl;
use forwarder::control::config::Config;
use forwarder::dataplane::rss::{hash_input, toeplitz_reference, HashType, MICROSOFT_KEY};
use forwarder::runtime;
use forwarder::runtime::ports::Device;

pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const VPORT: u16 = 80;
pub const LIP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 200);
pub const RPORT: u16 = 8080;
const QUEUES: u16 = 2;
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const FWD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
/// The static next hop of [`start`].
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// How long one batch of frames may take to come back through two busy-polling workers
/// that may share a CPU with each other and with this thread.
const BATCH_TIMEOUT: Duration = Duration::from_secs(20);

pub fn rs(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 100, last)
}

/// One FULLNAT connection as seen from outside.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: SocketAddrV4,
    pub rs: Ipv4Addr,
    pub lport: u16,
    /// The worker that sent its first forwarded frame.
    pub worker: u16,
    client_seq: u32,
    rs_seq: u32,
}

/// The test's end of the ring pair and its bookkeeping.
pub struct Driver {
    rx: Vec<RxQueue>,
    tx: Vec<TxQueue>,
    pool: Mempool,
    fwd_mac: [u8; 6],
    reta: Vec<u16>,
    socket: PathBuf,
    pub conns: Vec<Conn>,
    /// lport → index in `conns`.
    by_lport: HashMap<u16, usize>,
    next_client: u32,
    /// Frames forwarded and checked, for the final reconciliation.
    pub checked: u64,
    /// Neighbours this "link" has: ARP requests for them are answered with these MACs.
    pub neighbours: HashMap<Ipv4Addr, [u8; 6]>,
    /// ARP requests seen, by target.
    pub arp_requests: HashMap<Ipv4Addr, u64>,
    /// The destination MAC a forwarded frame to this address must carry (real servers
    /// the forwarder resolved); everything else goes to `gateway_mac`.
    pub rs_macs: HashMap<Ipv4Addr, [u8; 6]>,
    /// The next hop's MAC for everything not in `rs_macs`.
    pub gateway_mac: [u8; 6],
}

/// What `start` hands the caller: the driver runs on its own thread while the runtime
/// holds the main lcore.
pub struct Setup {
    pub eal: Eal,
    pub plan: runtime::RuntimePlan,
    pub driver: Driver,
}

/// The forwarder's configuration: one port (clients and real servers behind it: one-arm),
/// two workers, a FULLNAT TCP service with round robin over `.10` and `.11`.
fn config_text(dir: &Path, steering: &str, port_extra: &str, extra: &str) -> String {
    format!(
        r#"
[[port]]
name = "p0"
device = "net_ring0"
rx_queues = {QUEUES}
{port_extra}

[laddr]
p0 = ["{LIP}"]

[steering]
mode = "{steering}"

[[service]]
vip = "{VIP}"
port = {VPORT}
proto = "tcp"
mode = "fullnat"
scheduler = "rr"
rs = [{{ addr = "{rs1}:{RPORT}" }}, {{ addr = "{rs2}:{RPORT}" }}]

[control]
socket = "{sock}"

{extra}
"#,
        rs1 = rs(10),
        rs2 = rs(11),
        sock = dir.join("ctl.sock").display()
    )
}

/// EAL up, the ring pair made, the plan built from a real configuration file's text with
/// the port replaced by the forwarder's end of the pair.
pub fn start(dir: &Path, tag: &str, steering: &str) -> Setup {
    start_with(
        dir,
        tag,
        steering,
        "gateway_mac = \"02:00:00:00:00:fe\"",
        "",
    )
}

/// [`start`] with lines added to the port's section (`port_extra`, which must say how
/// the next hop is found) and at the end of the file (`extra`).
pub fn start_with(dir: &Path, tag: &str, steering: &str, port_extra: &str, extra: &str) -> Setup {
    let text = config_text(dir, steering, port_extra, extra);
    let config = Config::parse(&text, "ring.toml").expect("configuration parses");
    let mut plan = runtime::plan::plan(&config, None, None);
    // rte_eth_from_rings names the device `net_ring_` + the name it is given.
    let fwd_name = format!("{tag}_fwd");
    plan.ports[0].device = Device::Attached(format!("net_ring_{fwd_name}"));
    plan.ports[0].mac = Some(FWD_MAC);
    plan.eal_args = vec![
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "512".into(),
        "--log-level".into(),
        "warning".into(),
        format!("--file-prefix=l4lab-ring-{tag}-{}", std::process::id()),
    ];
    let eal = Eal::builder()
        .args(runtime::eal_args(&plan))
        .init()
        .expect("EAL init");
    assert!(
        eal.worker_lcores().len() >= 2,
        "two worker lcores (they may share a CPU)"
    );
    let drv_name = format!("{tag}_drv");
    let (drv_id, fwd_id) = ringport::pair(&drv_name, &fwd_name, QUEUES, 1024).expect("ring pair");
    // Opening the forwarder's end here would close it on drop: give the runtime its MAC.
    let _ = fwd_id;
    let fwd_mac = FWD_MAC;
    let pool = Mempool::with_defaults("ring_drv_pool", 4095).expect("driver pool");
    let mut port = Port::open(drv_id).expect("driver port");
    let (rx, tx) = port
        .configure(&PortConfig::new(QUEUES), &pool)
        .expect("configure driver port");
    port.start().expect("start driver port");
    let driver = Driver {
        rx,
        tx,
        pool,
        fwd_mac,
        reta: plan.ports[0].rss.reta.clone(),
        socket: plan.control_socket.clone().expect("control socket"),
        conns: Vec::new(),
        by_lport: HashMap::new(),
        next_client: 0,
        checked: 0,
        neighbours: HashMap::new(),
        arp_requests: HashMap::new(),
        rs_macs: HashMap::new(),
        gateway_mac: GATEWAY_MAC,
    };
    Setup { eal, plan, driver }
}

/// Runs the forwarder on this (main) thread and `drive` on another; stops the forwarder
/// (SIGTERM to this process, which the runtime turns into a drain) when `drive` returns,
/// and hands back what it returned.
pub fn run<T: Send + 'static>(setup: Setup, drive: impl FnOnce(Driver) -> T + Send + 'static) -> T {
    let Setup { eal, plan, driver } = setup;
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(driver)));
        let _ = done_tx.send(());
        // Stop the runtime whatever happened, so that a failed check fails the test
        // instead of hanging it.
        let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
        out
    });
    if let Err(e) = runtime::run_on(&eal, plan) {
        // The driver may still be waiting for the forwarder; the test ends here.
        panic!("the runtime failed: {e}");
    }
    let _ = done_rx.recv_timeout(Duration::from_secs(5));
    let out = thread.join().expect("driver thread");
    match out {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn rss_queue(reta: &[u16], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u16 {
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
    reta[hash as usize % reta.len()]
}

/// A TCP frame from the wire's side (source MAC a client's or server's, destination the
/// forwarder's).
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, dst_mac)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 64240);
    let b = if syn { b.syn() } else { b };
    let b = match ack {
        Some(a) => b.ack(a),
        None => b,
    };
    let b = if payload.is_empty() { b } else { b.psh() };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("frame");
    out
}

/// A forwarded TCP/IPv4 frame, parsed and with its checksums verified from scratch.
#[derive(Debug)]
pub struct Seen {
    pub queue: u16,
    pub dst_mac: [u8; 6],
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub ttl: u8,
    pub syn: bool,
    pub ack: bool,
    pub seq: u32,
    pub payload: Vec<u8>,
}

fn parse_forwarded(queue: u16, frame: &[u8]) -> Option<Seen> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        return None; // ARP announcements and the like
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        return None;
    };
    let h = ip.header().to_header();
    let mut fixed = h.clone();
    fixed.header_checksum = fixed.calc_header_checksum();
    assert_eq!(
        h.header_checksum, fixed.header_checksum,
        "IPv4 header checksum of a forwarded frame: {h:?}"
    );
    assert_eq!(h.protocol, IpNumber::TCP);
    let th: TcpHeader = tcp.to_header();
    let want = th
        .calc_checksum_ipv4(&h, tcp.payload())
        .expect("checksum computes");
    assert_eq!(
        th.checksum, want,
        "TCP checksum of a forwarded frame {:?} → {:?}",
        h.source, h.destination
    );
    let _: &Ipv4Header = &h;
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[..6]);
    Some(Seen {
        queue,
        dst_mac,
        src: SocketAddrV4::new(h.source.into(), th.source_port),
        dst: SocketAddrV4::new(h.destination.into(), th.destination_port),
        ttl: h.time_to_live,
        syn: th.syn,
        ack: th.ack,
        seq: th.sequence_number,
        payload: tcp.payload().to_vec(),
    })
}

impl Driver {
    /// Sends frames, each on its queue, in bursts.
    fn send(&mut self, frames: &[(u16, Vec<u8>)]) {
        for q in 0..QUEUES {
            let mut burst = Burst::new();
            for (_, f) in frames.iter().filter(|(fq, _)| *fq == q) {
                let mut m = Mbuf::alloc(&self.pool).expect("driver mbuf");
                m.extend_from_slice(f).expect("room");
                if burst.push(m).is_err() {
                    unreachable!("flushed when full");
                }
                if burst.is_full() {
                    self.flush(q, &mut burst);
                }
            }
            self.flush(q, &mut burst);
        }
    }

    fn flush(&mut self, q: u16, burst: &mut Burst) {
        let deadline = Instant::now() + BATCH_TIMEOUT;
        while !burst.is_empty() {
            self.tx[usize::from(q)].tx_burst(burst);
            assert!(
                Instant::now() < deadline,
                "the forwarder stopped taking frames"
            );
        }
    }

    /// Collects exactly `n` forwarded TCP frames (others, such as ARP, are ignored); fails
    /// on a timeout (a lost packet) and on any extra frame seen within a short grace time.
    fn collect(&mut self, n: usize) -> Vec<Seen> {
        let mut out = Vec::with_capacity(n);
        let deadline = Instant::now() + BATCH_TIMEOUT;
        let mut burst = Burst::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "lost packets: {} of {n} forwarded frames came back",
                out.len()
            );
            let mut idle = true;
            for q in 0..QUEUES {
                if self.rx[usize::from(q)].rx_burst(&mut burst) > 0 {
                    idle = false;
                }
                let frames: Vec<Vec<u8>> = burst.drain().map(|m| m.data().to_vec()).collect();
                for f in frames {
                    if let Some(s) = self.take(q, &f) {
                        out.push(s);
                    }
                }
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        // Nothing beyond what was asked for: a duplicate would show here.
        std::thread::sleep(Duration::from_millis(20));
        for q in 0..QUEUES {
            self.rx[usize::from(q)].rx_burst(&mut burst);
            let frames: Vec<Vec<u8>> = burst.drain().map(|m| m.data().to_vec()).collect();
            for f in frames {
                assert!(
                    self.take(q, &f).is_none(),
                    "an extra forwarded frame on queue {q}"
                );
            }
        }
        self.checked += out.len() as u64;
        out
    }

    /// One frame the forwarder sent: ARP requests are counted and, for a neighbour this
    /// link has, answered; a forwarded TCP frame is parsed, checked (checksums, and its
    /// destination MAC: the real server's own where it was resolved, else the gateway's)
    /// and returned.
    fn take(&mut self, q: u16, frame: &[u8]) -> Option<Seen> {
        if frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 1] {
            let asker_mac: [u8; 6] = frame[22..28].try_into().expect("6 bytes");
            let asker_ip: [u8; 4] = frame[28..32].try_into().expect("4 bytes");
            let target = Ipv4Addr::from(<[u8; 4]>::try_from(&frame[38..42]).expect("4 bytes"));
            *self.arp_requests.entry(target).or_default() += 1;
            // A gratuitous announcement asks for its own sender: no answer.
            if let Some(&mac) = self.neighbours.get(&target) {
                let mut reply = Vec::with_capacity(60);
                reply.extend_from_slice(&asker_mac);
                reply.extend_from_slice(&mac);
                reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
                reply.extend_from_slice(&mac);
                reply.extend_from_slice(&target.octets());
                reply.extend_from_slice(&asker_mac);
                reply.extend_from_slice(&asker_ip);
                reply.resize(60, 0);
                self.send(&[(0, reply)]);
            }
            return None;
        }
        let seen = parse_forwarded(q, frame)?;
        let want = self
            .rs_macs
            .get(seen.dst.ip())
            .copied()
            .unwrap_or(self.gateway_mac);
        assert_eq!(
            seen.dst_mac, want,
            "destination MAC of a frame to {}",
            seen.dst
        );
        Some(seen)
    }

    /// Answers ARP (and passes nothing else) for `wait`, e.g. while the forwarder resolves
    /// its next hops before traffic starts.
    pub fn serve_arp(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut burst = Burst::new();
        while Instant::now() < until {
            for q in 0..QUEUES {
                self.rx[usize::from(q)].rx_burst(&mut burst);
                let frames: Vec<Vec<u8>> = burst.drain().map(|m| m.data().to_vec()).collect();
                for f in frames {
                    assert!(self.take(q, &f).is_none(), "traffic before any was sent");
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Where the NIC delivers a frame from `src` to `dst`.
    fn queue(&self, src: SocketAddrV4, dst: SocketAddrV4) -> u16 {
        rss_queue(&self.reta, *src.ip(), *dst.ip(), src.port(), dst.port())
    }

    /// Opens `n` connections with a full three-way handshake through the forwarder;
    /// returns the indexes of the new connections in `conns`. Each client's initial
    /// sequence number is unique and FULLNAT passes it through, which is how a SYN seen
    /// on the real servers' side is tied to its client.
    pub fn open(&mut self, n: usize) -> Vec<usize> {
        let vip = SocketAddrV4::new(VIP, VPORT);
        let mut by_isn = HashMap::with_capacity(n);
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            let i = self.next_client;
            self.next_client += 1;
            let client = SocketAddrV4::new(
                Ipv4Addr::new(10, 1, (i / 200) as u8, (i % 200) as u8 + 1),
                10_000 + (i % 50_000) as u16,
            );
            let isn = 0x1000_0000u32.wrapping_add(i.wrapping_mul(0x1_0000));
            by_isn.insert(isn, client);
            frames.push((
                self.queue(client, vip),
                tcp_frame(self.fwd_mac, client, vip, isn, None, true, &[]),
            ));
        }
        self.send(&frames);
        // SYNs towards the real servers.
        let syns = self.collect(n);
        let mut new = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(n);
        for s in syns {
            assert!(s.syn && !s.ack, "a SYN stays a SYN: {s:?}");
            assert_eq!(*s.src.ip(), LIP, "FULLNAT source is the local address");
            assert_eq!(s.dst.port(), RPORT, "real server port");
            assert_eq!(s.ttl, 63, "TTL decremented");
            let client = by_isn
                .remove(&s.seq)
                .unwrap_or_else(|| panic!("SYN with a sequence number no client sent: {s:?}"));
            assert!(
                !self.by_lport.contains_key(&s.src.port()),
                "local port {} given to two live connections",
                s.src.port()
            );
            let index = self.conns.len();
            self.conns.push(Conn {
                client,
                rs: *s.dst.ip(),
                lport: s.src.port(),
                worker: s.queue,
                client_seq: s.seq.wrapping_add(1),
                rs_seq: 50_001,
            });
            self.by_lport.insert(s.src.port(), index);
            new.push(index);
            replies.push((
                self.queue(s.dst, s.src),
                tcp_frame(
                    self.fwd_mac,
                    s.dst,
                    s.src,
                    50_000,
                    Some(s.seq.wrapping_add(1)),
                    true,
                    &[],
                ),
            ));
        }
        self.send(&replies);
        // SYN-ACKs towards the clients, each from the worker that made the connection.
        let by_client: HashMap<SocketAddrV4, usize> =
            new.iter().map(|&i| (self.conns[i].client, i)).collect();
        for s in self.collect(n) {
            assert!(s.syn && s.ack, "SYN-ACK: {s:?}");
            assert_eq!(s.src, vip, "reply source is the VIP");
            let i = *by_client
                .get(&s.dst)
                .unwrap_or_else(|| panic!("SYN-ACK to an unknown client: {s:?}"));
            assert_eq!(
                s.queue, self.conns[i].worker,
                "SYN-ACK to {} sent by the worker that made the connection",
                s.dst
            );
        }
        // Handshake-completing ACKs.
        let acks: Vec<(u16, Vec<u8>)> = new
            .iter()
            .map(|&i| {
                let c = &self.conns[i];
                (
                    self.queue(c.client, vip),
                    tcp_frame(
                        self.fwd_mac,
                        c.client,
                        vip,
                        c.client_seq,
                        Some(c.rs_seq),
                        false,
                        &[],
                    ),
                )
            })
            .collect();
        self.send(&acks);
        for s in self.collect(n) {
            let i = *self
                .by_lport
                .get(&s.src.port())
                .expect("ACK from a known local port");
            let c = &self.conns[i];
            assert_eq!(*s.dst.ip(), c.rs, "ACK to the connection's real server");
            assert_eq!(s.seq, c.client_seq, "ACK of the connection's client");
            assert_eq!(s.queue, c.worker, "ACK handled by the connection's worker");
        }
        new
    }

    /// One request/response round over every connection in `which`: each client sends a
    /// segment naming itself, each real server answers with one naming itself; every
    /// forwarded frame is checked against the connection.
    pub fn round(&mut self, which: &[usize], round: u32) {
        let vip = SocketAddrV4::new(VIP, VPORT);
        let requests: Vec<(u16, Vec<u8>)> = which
            .iter()
            .map(|&i| {
                let c = &self.conns[i];
                let payload = format!("req {} {round}", c.client);
                (
                    self.queue(c.client, vip),
                    tcp_frame(
                        self.fwd_mac,
                        c.client,
                        vip,
                        c.client_seq,
                        Some(c.rs_seq),
                        false,
                        payload.as_bytes(),
                    ),
                )
            })
            .collect();
        self.send(&requests);
        let got = self.collect(which.len());
        let mut answers = Vec::with_capacity(which.len());
        for s in got {
            let i = *self.by_lport.get(&s.src.port()).unwrap_or_else(|| {
                panic!("request from local port {} no connection has", s.src.port())
            });
            let c = &mut self.conns[i];
            assert_eq!(*s.src.ip(), LIP);
            assert_eq!(
                *s.dst.ip(),
                c.rs,
                "connection of {} kept its real server",
                c.client
            );
            assert_eq!(s.dst.port(), RPORT);
            assert_eq!(s.ttl, 63);
            assert_eq!(
                s.payload,
                format!("req {} {round}", c.client).into_bytes(),
                "payload of {} arrives intact on its own connection",
                c.client
            );
            assert_eq!(
                s.queue, c.worker,
                "request of {} handled by its connection's worker",
                c.client
            );
            c.client_seq = c.client_seq.wrapping_add(s.payload.len() as u32);
            let from = SocketAddrV4::new(c.rs, RPORT);
            let to = SocketAddrV4::new(LIP, c.lport);
            let payload = format!("resp {} {round}", c.client);
            answers.push((
                rss_queue(&self.reta, *from.ip(), *to.ip(), from.port(), to.port()),
                tcp_frame(
                    self.fwd_mac,
                    from,
                    to,
                    c.rs_seq,
                    Some(c.client_seq),
                    false,
                    payload.as_bytes(),
                ),
            ));
            c.rs_seq = c.rs_seq.wrapping_add(payload.len() as u32);
        }
        self.send(&answers);
        let got = self.collect(which.len());
        let by_client: HashMap<SocketAddrV4, usize> =
            which.iter().map(|&i| (self.conns[i].client, i)).collect();
        for s in got {
            let i = *by_client
                .get(&s.dst)
                .unwrap_or_else(|| panic!("response to {} which sent nothing", s.dst));
            let c = &self.conns[i];
            assert_eq!(s.src, vip, "response source is the VIP");
            assert_eq!(s.ttl, 63);
            assert_eq!(
                s.payload,
                format!("resp {} {round}", c.client).into_bytes(),
                "response for {} arrives intact",
                c.client
            );
            assert_eq!(
                s.queue, c.worker,
                "response to {} handled by its connection's worker",
                c.client
            );
        }
    }

    /// `forwarder ctl WORDS…`; panics unless it succeeds.
    pub fn ctl(&self, words: &[&str]) -> String {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let rc = run_ctl(
            words,
            &self.socket,
            Duration::from_secs(10),
            &mut out,
            &mut err,
        );
        assert_eq!(
            rc,
            0,
            "ctl {words:?}: {}{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
        String::from_utf8(out).expect("utf-8")
    }

    /// The `stats` object of `ctl stats --json`.
    pub fn stats(&self) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&self.ctl(&["stats", "--json"])).expect("stats JSON");
        v["stats"].clone()
    }

    /// `stats` once the workers' published counters have caught up with what came back
    /// here (they publish every few milliseconds): their transmit count reaches the frames
    /// checked, or two seconds pass and the caller's assertions say what is off.
    pub fn settled_stats(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let stats = self.stats();
            if worker_sum(&stats, "tx_packets") >= self.checked || Instant::now() >= deadline {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the control socket answers (the workers are running by then).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.socket.exists() {
            assert!(Instant::now() < deadline, "control socket never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sum of one per-worker counter in `stats --json`.
pub fn worker_sum(stats: &serde_json::Value, field: &str) -> u64 {
    stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w[field].as_u64().unwrap_or(0))
        .sum()
}

/// Sum of every drop counter of every worker.
pub fn drops(stats: &serde_json::Value) -> u64 {
    stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .flat_map(|w| {
            w["drops"]
                .as_object()
                .expect("drops")
                .values()
                .map(|v| v.as_u64().unwrap_or(0))
                .collect::<Vec<_>>()
        })
        .sum()
}
