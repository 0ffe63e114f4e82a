//! The checker against a toy balancer written here (FULLNAT/NAT with etherparse's
//! builder) and a toy responder playing the real servers, over every standard capture:
//! the correct toy passes every check, and each injected fault fails the check that names
//! it. A checker that passes a broken balancer, or fails a correct one, is useless.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{
    NetSlice, PacketBuilder, PacketBuilderStep, SlicedPacket, TcpHeader, TransportSlice,
};

use harness::gen;
use harness::oracle::{Check, Checker, Report};
use harness::packet::rss_flow;
use harness::rss::RssModel;
use harness::scenario::{Mode, Scenario};

/// A fault to inject into the toy balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The 3rd connection's later packets leave from another local port.
    WrongLocalPort,
    /// One forwarded packet has a corrupted TCP/UDP checksum.
    CorruptChecksum,
    /// Replies of the 2nd connection leave by another worker's queue.
    ReplyOnWrongWorker,
    /// One packet to forward is dropped.
    DropPacket,
    /// The 4th connection's later packets go to another real server.
    WrongRs,
    /// Every new connection gets the same local port.
    ReuseLocalPort,
    /// TTL not decremented.
    KeepTtl,
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    index: usize,
    vip: SocketAddr,
    client: SocketAddr,
    rs: SocketAddr,
    local: SocketAddr,
    queue: u16,
}

/// A minimal FULLNAT/NAT balancer with a fault switch.
struct Toy {
    scenario: Scenario,
    fault: Fault,
    rss: RssModel,
    conns: Vec<Conn>,
    by_client: HashMap<(u8, SocketAddr, SocketAddr), usize>,
    by_reply: HashMap<(u8, SocketAddr, SocketAddr), usize>,
    rr: HashMap<usize, usize>,
    next_port: u16,
    forwarded: usize,
    /// Choose local ports whose replies RSS-hash to the connection's own worker.
    rss_aware: bool,
}

struct Seg {
    proto: u8,
    src: SocketAddr,
    dst: SocketAddr,
    ttl: u8,
    tcp: Option<TcpHeader>,
    payload: Vec<u8>,
}

fn read_seg(frame: &[u8]) -> Option<Seg> {
    let s = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, ttl) = match s.net.as_ref()? {
        NetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.header().ttl(),
        ),
        NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.header().hop_limit(),
        ),
    };
    match s.transport.as_ref()? {
        TransportSlice::Tcp(t) => Some(Seg {
            proto: 6,
            src: SocketAddr::new(src, t.source_port()),
            dst: SocketAddr::new(dst, t.destination_port()),
            ttl,
            tcp: Some(t.to_header()),
            payload: t.payload().to_vec(),
        }),
        TransportSlice::Udp(u) => Some(Seg {
            proto: 17,
            src: SocketAddr::new(src, u.source_port()),
            dst: SocketAddr::new(dst, u.destination_port()),
            ttl,
            tcp: None,
            payload: u.payload().to_vec(),
        }),
        _ => None,
    }
}

fn ip_step(src: IpAddr, dst: IpAddr, ttl: u8) -> PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 2]);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), ttl),
        _ => panic!("mixed families {src} {dst}"),
    }
}

fn build(
    src: SocketAddr,
    dst: SocketAddr,
    ttl: u8,
    tcp: Option<&TcpHeader>,
    payload: &[u8],
) -> Vec<u8> {
    let step = ip_step(src.ip(), dst.ip(), ttl);
    let mut out = Vec::new();
    match tcp {
        Some(h) => {
            let mut h = h.clone();
            h.source_port = src.port();
            h.destination_port = dst.port();
            step.tcp_header(h).write(&mut out, payload).unwrap();
        }
        None => step
            .udp(src.port(), dst.port())
            .write(&mut out, payload)
            .unwrap(),
    }
    out
}

impl Toy {
    fn new(scenario: &Scenario, fault: Fault) -> Self {
        Self {
            scenario: scenario.clone(),
            fault,
            rss: scenario.rss_model().unwrap(),
            conns: Vec::new(),
            by_client: HashMap::new(),
            by_reply: HashMap::new(),
            rr: HashMap::new(),
            next_port: 1025,
            forwarded: 0,
            rss_aware: false,
        }
    }

    fn out_ttl(&self, ttl: u8) -> Option<u8> {
        match self.fault {
            Fault::KeepTtl => Some(ttl),
            _ if ttl <= 1 => None,
            _ => Some(ttl - 1),
        }
    }

    /// Processes one frame: the output frame and the queue it leaves by, if forwarded.
    fn process(&mut self, frame: &[u8], queue: u16) -> Option<(Vec<u8>, u16)> {
        if harness::checks::checksums_valid(frame).is_err() {
            return None;
        }
        let out = match read_seg(frame) {
            Some(seg) => self.segment(seg, queue),
            None => self.icmp(frame),
        }?;
        self.forwarded += 1;
        match self.fault {
            Fault::DropPacket if self.forwarded == 7 => None,
            Fault::CorruptChecksum if self.forwarded == 9 => {
                let (mut f, q) = out;
                let n = f.len();
                f[n - 1] ^= 0xff; // payload or checksum-covered byte
                if n <= 54 {
                    f[n - 3] ^= 0x01;
                }
                Some((f, q))
            }
            _ => Some(out),
        }
    }

    fn segment(&mut self, seg: Seg, queue: u16) -> Option<(Vec<u8>, u16)> {
        let ttl = self.out_ttl(seg.ttl)?;
        let service = self
            .scenario
            .services
            .iter()
            .position(|s| s.vip == seg.dst && s.proto.number() == seg.proto);
        if let Some(service) = service {
            let syn_only = seg.tcp.as_ref().is_some_and(|t| t.syn && !t.ack);
            let key = (seg.proto, seg.src, seg.dst);
            let conn = match self.by_client.get(&key) {
                Some(&c) => c,
                None if seg.tcp.is_none() || syn_only => {
                    self.new_conn(service, seg.src, seg.dst, queue)
                }
                None => return None,
            };
            let c = self.conns[conn];
            let mut rs = c.rs;
            let mut local = c.local;
            if self.fault == Fault::WrongLocalPort && c.index == 2 && !syn_only {
                local.set_port(local.port() + 1);
            }
            if self.fault == Fault::WrongRs && c.index == 3 && !syn_only {
                let svc = &self.scenario.services[service];
                rs = svc
                    .real_servers
                    .iter()
                    .map(|r| r.addr)
                    .find(|&a| a != c.rs)
                    .unwrap_or(rs);
            }
            let out = build(local, rs, ttl, seg.tcp.as_ref(), &seg.payload);
            return Some((out, c.queue));
        }
        let conn = *self.by_reply.get(&(seg.proto, seg.src, seg.dst))?;
        let c = self.conns[conn];
        let out = build(c.vip, c.client, ttl, seg.tcp.as_ref(), &seg.payload);
        let q = if self.fault == Fault::ReplyOnWrongWorker && c.index == 1 {
            (c.queue + 1) % self.scenario.rss.queues
        } else {
            c.queue
        };
        Some((out, q))
    }

    fn new_conn(
        &mut self,
        service: usize,
        client: SocketAddr,
        vip: SocketAddr,
        queue: u16,
    ) -> usize {
        let svc = &self.scenario.services[service];
        let turn = self.rr.entry(service).or_insert(0);
        let rs = svc.real_servers[*turn % svc.real_servers.len()].addr;
        *turn += 1;
        let local = match svc.mode {
            Mode::Nat => client,
            Mode::Fullnat => {
                let lip = self
                    .scenario
                    .local_addresses
                    .iter()
                    .copied()
                    .find(|l| l.is_ipv4() == rs.is_ipv4())
                    .unwrap();
                let port = if self.fault == Fault::ReuseLocalPort {
                    1025
                } else {
                    self.next_port
                };
                self.next_port += 1;
                let mut local = SocketAddr::new(lip, port);
                if self.rss_aware {
                    let worker = |q: u16| self.scenario.queue_worker()[usize::from(q)];
                    while let Some(flow) = reply_flow(svc.proto.number(), rs, local) {
                        if worker(self.rss.queue(&flow).1) == worker(queue) {
                            break;
                        }
                        local.set_port(self.next_port);
                        self.next_port += 1;
                    }
                }
                local
            }
        };
        let index = self.conns.len();
        self.conns.push(Conn {
            index,
            vip,
            client,
            rs,
            local,
            queue,
        });
        let proto = svc.proto.number();
        self.by_client.insert((proto, client, vip), index);
        self.by_reply.insert((proto, rs, local), index);
        index
    }

    /// Client-side ICMP errors about a connection: outer to the RS, quoted rewritten.
    fn icmp(&mut self, frame: &[u8]) -> Option<(Vec<u8>, u16)> {
        let s = SlicedPacket::from_ethernet(frame).ok()?;
        let (ttl, v4) = match s.net.as_ref()? {
            NetSlice::Ipv4(ip) => (ip.header().ttl(), true),
            NetSlice::Ipv6(ip) => (ip.header().hop_limit(), false),
        };
        let ttl = self.out_ttl(ttl)?;
        let (quoted, icmp_type) = match s.transport.as_ref()? {
            TransportSlice::Icmpv4(i) => (i.payload(), Ok(i.icmp_type())),
            TransportSlice::Icmpv6(i) => (i.payload(), Err(i.icmp_type())),
            _ => return None,
        };
        let q = harness::packet::quoted(quoted)?;
        let key = (
            q.proto,
            SocketAddr::new(q.dst, q.dport),
            SocketAddr::new(q.src, q.sport),
        );
        let c = self.conns[*self.by_client.get(&key)?];
        // Quoted: RS:rport → local:lport.
        let mut inner = quoted.to_vec();
        let (src_at, dst_at, len, l4_at) = if v4 { (12, 16, 4, 20) } else { (8, 24, 16, 40) };
        let octets = |a: IpAddr| match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        inner[src_at..src_at + len].copy_from_slice(&octets(c.rs.ip()));
        inner[dst_at..dst_at + len].copy_from_slice(&octets(c.local.ip()));
        inner[l4_at..l4_at + 2].copy_from_slice(&c.rs.port().to_be_bytes());
        inner[l4_at + 2..l4_at + 4].copy_from_slice(&c.local.port().to_be_bytes());
        let step = ip_step(c.local.ip(), c.rs.ip(), ttl);
        let mut out = Vec::new();
        match icmp_type {
            Ok(t) => step.icmpv4(t).write(&mut out, &inner).unwrap(),
            Err(t) => step.icmpv6(t).write(&mut out, &inner).unwrap(),
        }
        Some((out, c.queue))
    }
}

fn reply_flow(proto: u8, rs: SocketAddr, local: SocketAddr) -> Option<harness::rss::RssFlow> {
    Some(harness::rss::RssFlow {
        src: rs.ip(),
        dst: local.ip(),
        l4: if proto == 6 {
            harness::rss::L4::Tcp
        } else {
            harness::rss::L4::Udp
        },
        sport: rs.port(),
        dport: local.port(),
    })
}

/// The real servers' side: a reply for each segment that reached a server.
fn respond(frame: &[u8]) -> Option<Vec<u8>> {
    let seg = read_seg(frame)?;
    let tcp = match &seg.tcp {
        None => return Some(build(seg.dst, seg.src, 64, None, b"reply")),
        Some(t) => t,
    };
    if tcp.rst {
        return None;
    }
    let mut h = TcpHeader::new(seg.dst.port(), seg.src.port(), 0x1000_0000, 65535);
    h.ack = true;
    h.acknowledgment_number = tcp.sequence_number.wrapping_add(1);
    if tcp.syn {
        h.syn = true;
    } else if tcp.fin {
        h.fin = true;
    } else if seg.payload.is_empty() {
        return None; // a pure ACK needs no answer
    }
    Some(build(seg.dst, seg.src, 64, Some(&h), b""))
}

/// Runs every standard capture through the toy and the checker; one report each.
fn run(fault: Fault) -> Vec<(String, Report)> {
    run_with(fault, false)
}

/// With `steering`, the scenario checks RSS steering and the toy picks RSS-aware ports
/// when `rss_aware`.
fn run_with(fault: Fault, steering: bool) -> Vec<(String, Report)> {
    run_full(fault, steering, steering)
}

fn run_full(fault: Fault, steering: bool, rss_aware: bool) -> Vec<(String, Report)> {
    let mut reports = Vec::new();
    for mut capture in gen::standard().unwrap() {
        let fullnat = capture
            .scenario
            .services
            .iter()
            .all(|s| s.mode == Mode::Fullnat);
        if steering && !fullnat {
            // NAT has no local port to choose: its replies cannot be steered by RSS.
            continue;
        }
        capture.scenario.check.rss_steering = steering;
        // The toy schedules plain round robin over one shared counter and inserts no
        // TOA: the checks of those are the forwarder's (topology tests) and the unit
        // tests'.
        capture.scenario.check.distribution = false;
        capture.scenario.check.toa = false;
        let mut toy = Toy::new(&capture.scenario, fault);
        toy.rss_aware = rss_aware;
        let mut checker = Checker::new(&capture.scenario);
        for frame in &capture.frames {
            let mut pending = vec![frame.data.clone()];
            while let Some(input) = pending.pop() {
                let queue = rss_flow(&input).map_or(0, |f| toy.rss.queue(&f).1);
                checker.observe_input(&input, queue);
                if let Some((out, q)) = toy.process(&input, queue) {
                    checker.observe_output(&out, q);
                    let to_server = read_seg(&out).is_some_and(|s| {
                        capture
                            .scenario
                            .services
                            .iter()
                            .any(|svc| svc.real_servers.iter().any(|r| r.addr == s.dst))
                    });
                    if to_server {
                        pending.extend(respond(&out));
                    }
                }
            }
        }
        reports.push((capture.name.to_owned(), checker.finish()));
    }
    reports
}

fn checks_failed(reports: &[(String, Report)]) -> Vec<Check> {
    let mut checks: Vec<Check> = reports
        .iter()
        .flat_map(|(_, r)| r.failures.iter().map(|f| f.check))
        .collect();
    checks.sort();
    checks.dedup();
    checks
}

#[test]
fn a_correct_balancer_passes_every_capture() {
    let reports = run(Fault::None);
    for (name, report) in &reports {
        let msgs: Vec<String> = report
            .failures
            .iter()
            .take(5)
            .map(ToString::to_string)
            .collect();
        assert!(
            report.passed(),
            "{name}: {} failures: {msgs:#?}",
            report.failures.len()
        );
        // One output per forwarded input, replies included.
        assert_eq!(report.outputs, report.expected_forward, "{name}");
        assert!(report.inputs >= report.outputs, "{name}");
        eprintln!(
            "{name}: {} inputs, {} outputs, {} connections, drops {:?}",
            report.inputs, report.outputs, report.connections, report.expected_drops
        );
    }
}

#[rustfmt::skip]
#[test]
fn every_fault_is_caught_by_its_check() {
    let table = [
        (Fault::WrongLocalPort, Check::Stickiness),
        (Fault::CorruptChecksum, Check::Checksum),
        (Fault::ReplyOnWrongWorker, Check::RssAffinity),
        (Fault::DropPacket, Check::Verdict),
        (Fault::WrongRs, Check::Stickiness),
        (Fault::ReuseLocalPort, Check::UniqueLocal),
        (Fault::KeepTtl, Check::Ttl),
    ];
    for (fault, check) in table {
        let failed = checks_failed(&run(fault));
        assert!(failed.contains(&check), "{fault:?}: expected {check} among {failed:?}");
    }
}

#[test]
fn rss_steering_needs_rss_aware_port_choice() {
    let aware = run_with(Fault::None, true);
    for (name, report) in &aware {
        let msgs: Vec<String> = report
            .failures
            .iter()
            .take(5)
            .map(ToString::to_string)
            .collect();
        assert!(report.passed(), "{name}: {msgs:#?}");
    }
    let naive = run_full(Fault::None, true, false);
    let steering: Vec<_> = naive
        .iter()
        .flat_map(|(_, r)| r.failures.iter())
        .filter(|f| f.field == "rss.reply_queue")
        .collect();
    assert!(
        !steering.is_empty(),
        "sequential local ports cannot all hash home"
    );
    assert!(steering.iter().all(|f| f.check == Check::RssAffinity));
}
