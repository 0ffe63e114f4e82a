//! The expected behaviour of a FULLNAT / NAT balancer, independent of the forwarder.
//!
//! [`Checker`] is fed every input packet (what the balancer received, and on which
//! queue) and every output packet (what it sent, and by which queue). For each input it
//! decides a verdict from the scenario alone — forward, or drop with a reason — and it
//! tracks connections itself. The balancer's free choices (real server, local address
//! and port) are learned from the first output packet of each connection; every later
//! packet must agree with them (stickiness, both directions), and no two live
//! connections may share (local address, local port, RS, RS port).
//!
//! Outputs are paired with inputs by content (protocol, TCP flags, L4 payload, ICMP type):
//! among pending inputs with the same content, one whose connection already matches the
//! output's addresses wins, then one received on the output's queue, then the oldest.
//! A topology that knows the pairing (the in-process one) calls
//! [`Checker::observe_output_of`] instead.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::capture::{self, CaptureError, Frame};
use crate::checks::{self, ChecksumError, ChecksumKind, ConnPacket, ConnRecord, ConnTuples};
use crate::packet::{Endpoint, L4Info, PacketInfo, Quoted, PROTO_TCP, PROTO_UDP};
use crate::rss::{RssFlow, RssModel, L4};
use crate::scenario::{Checks, Expect, Mode, Scenario, TtlPolicy};

/// Why the balancer must not forward a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The packet does not parse (truncated, bad IHL, data offset past the end, …).
    Malformed,
    /// The IPv4 header or the L4 checksum is wrong.
    BadChecksum,
    /// Not IPv4 or IPv6 (ARP, unknown ethertype): not for the balancer's fast path.
    NotIp,
    /// An IP fragment: the balancer path drops fragments.
    Fragment,
    /// No service at the destination and no connection it replies to.
    NoService,
    /// TTL / hop limit would reach zero.
    TtlExpired,
    /// A TCP segment other than a SYN (or a reply) without a connection.
    NoConnection,
    /// An ICMP message that is not an error about a live connection.
    IcmpUnrelated,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 8] = [
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::NotIp,
        DropReason::Fragment,
        DropReason::NoService,
        DropReason::TtlExpired,
        DropReason::NoConnection,
        DropReason::IcmpUnrelated,
    ];

    /// The reason's name in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::NotIp => "not_ip",
            DropReason::Fragment => "fragment",
            DropReason::NoService => "no_service",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoConnection => "no_connection",
            DropReason::IcmpUnrelated => "icmp_unrelated",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DropReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DropReason::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
                format!("unknown drop reason {s:?}; one of {}", names.join(", "))
            })
    }
}

/// Which way a forwarded packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → service (towards a real server).
    In,
    /// Real server → client (the reply).
    Out,
}

/// What kind of packet is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// A TCP or UDP segment of the connection.
    Segment,
    /// An ICMP error quoting a packet of the connection.
    IcmpError,
}

/// The oracle's verdict for one input packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded; the output is checked against the connection when it is seen.
    Forward {
        /// The connection (index into the checker's connections).
        conn: usize,
        /// Which way.
        direction: Direction,
        /// Segment or ICMP error.
        carried: Carried,
    },
    /// Dropped.
    Drop(DropReason),
}

impl Verdict {
    /// `forward` or `drop <reason>`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Forward { .. } => "forward".to_owned(),
            Verdict::Drop(r) => format!("drop {r}"),
        }
    }
}

/// Which check a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// Forwarded vs dropped, missing or unexpected outputs.
    Verdict,
    /// Rewritten addresses, ports, protocol and payload.
    Rewrite,
    /// Checksums recomputed from scratch.
    Checksum,
    /// TTL / hop limit.
    Ttl,
    /// A connection keeps its real server and local address/port.
    Stickiness,
    /// No two live connections share (LIP, lport, RS, rport).
    UniqueLocal,
    /// Both directions of a connection on one worker.
    RssAffinity,
}

impl Check {
    /// The check's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::Verdict => "verdict",
            Check::Rewrite => "rewrite",
            Check::Checksum => "checksum",
            Check::Ttl => "ttl",
            Check::Stickiness => "stickiness",
            Check::UniqueLocal => "unique_local",
            Check::RssAffinity => "rss_affinity",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A packet of the input or the output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PacketRef {
    /// The n-th input packet (0-based).
    Input(usize),
    /// The n-th output packet (0-based).
    Output(usize),
}

impl fmt::Display for PacketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketRef::Input(i) => write!(f, "input #{i}"),
            PacketRef::Output(i) => write!(f, "output #{i}"),
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which check.
    pub check: Check,
    /// The packet.
    pub packet: PacketRef,
    /// The field, like `dst.port`, `ttl`, `tcp.checksum`, `verdict`.
    pub field: String,
    /// What the oracle expected.
    pub expected: String,
    /// What the packet had.
    pub got: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}: expected {}, got {}",
            self.check, self.packet, self.field, self.expected, self.got
        )
    }
}

/// The result of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every failed check, in the order found.
    pub failures: Vec<Failure>,
    /// Input packets observed.
    pub inputs: usize,
    /// Output packets observed.
    pub outputs: usize,
    /// Inputs the oracle expected forwarded.
    pub expected_forward: usize,
    /// Inputs the oracle expected dropped, by reason.
    pub expected_drops: BTreeMap<DropReason, usize>,
    /// Connections seen.
    pub connections: usize,
    /// The packets failures refer to, for [`Report::write_mismatches`].
    pub mismatches: Vec<(PacketRef, Vec<u8>)>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The failures of one check.
    pub fn failures_of(&self, check: Check) -> Vec<&Failure> {
        self.failures.iter().filter(|f| f.check == check).collect()
    }

    /// Compares the oracle's verdict counts with a scenario's `[expect]` (the capture
    /// author's intent): one [`Check::Verdict`] failure per count that differs, with
    /// field `expect.forward` or `expect.drop.REASON`.
    pub fn against_expect(&self, expect: &Expect) -> Vec<Failure> {
        let mut out = Vec::new();
        let mut differ = |field: String, want: u64, got: u64| {
            if want != got {
                out.push(Failure {
                    check: Check::Verdict,
                    packet: PacketRef::Input(0),
                    field,
                    expected: format!("{want} packets (scenario)"),
                    got: format!("{got} packets (oracle)"),
                });
            }
        };
        differ(
            "expect.forward".to_owned(),
            expect.forward,
            self.expected_forward as u64,
        );
        for reason in DropReason::ALL {
            let want = expect.drop.get(reason.name()).copied().unwrap_or(0);
            let got = self.expected_drops.get(&reason).copied().unwrap_or(0) as u64;
            differ(format!("expect.drop.{reason}"), want, got);
        }
        for name in expect.drop.keys() {
            if name.parse::<DropReason>().is_err() {
                differ(format!("expect.drop.{name}"), 0, 1);
            }
        }
        out
    }

    /// Writes the packets that failed a check to a capture (one frame each, in the order
    /// of the failures, timestamps counting seconds from zero); returns how many.
    pub fn write_mismatches(&self, path: &Path) -> Result<usize, CaptureError> {
        let frames: Vec<Frame> = self
            .mismatches
            .iter()
            .enumerate()
            .map(|(i, (_, data))| Frame::new(Duration::from_secs(i as u64), data.clone()))
            .collect();
        capture::write(path, &frames)?;
        Ok(frames.len())
    }
}

impl fmt::Display for Report {
    /// A summary line, then one line per failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let drops: Vec<String> = self
            .expected_drops
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        writeln!(
            f,
            "{} inputs, {} outputs, {} connections; expected {} forwarded, dropped: {}; {} failures",
            self.inputs,
            self.outputs,
            self.connections,
            self.expected_forward,
            if drops.is_empty() { "none".to_owned() } else { drops.join(", ") },
            self.failures.len()
        )?;
        for failure in &self.failures {
            writeln!(f, "{failure}")?;
        }
        Ok(())
    }
}

/// A service as the oracle sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceModel {
    vip: Endpoint,
    proto: u8,
    mode: Mode,
    /// Real servers that can take new connections (weight > 0), port resolved.
    real_servers: Vec<Endpoint>,
    /// Every real server, port resolved (replies may come from quiesced ones).
    all_real_servers: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Conn {
    service: usize,
    proto: u8,
    client: Endpoint,
    vip: Endpoint,
    /// Learned from the first output towards the server.
    rs: Option<Endpoint>,
    /// FULLNAT: the local address and port; NAT: the client.
    local: Option<Endpoint>,
    client_fin: bool,
    server_fin: bool,
    closed: bool,
    packets: Vec<ConnPacket>,
}

impl Conn {
    fn name(&self) -> String {
        let proto = if self.proto == PROTO_TCP {
            "tcp"
        } else {
            "udp"
        };
        format!("{proto} {} → {}", self.client, self.vip)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Fingerprint {
    proto: u8,
    /// TCP flags, or ICMP type and code.
    marks: u16,
    payload: Vec<u8>,
}

#[derive(Debug, Clone)]
struct InputRecord {
    verdict: Verdict,
    queue: u16,
    ttl: u8,
    /// Content, while the input is pending.
    fingerprint: Option<Fingerprint>,
    matched: bool,
    /// Kept until matched, for the mismatch capture.
    data: Option<Vec<u8>>,
}

/// Compares a balancer's outputs with the oracle's expectations.
#[derive(Debug)]
pub struct Checker {
    services: Vec<ServiceModel>,
    local_addresses: Vec<IpAddr>,
    ttl: TtlPolicy,
    checks: Checks,
    queue_worker: Vec<u16>,
    rss: Option<RssModel>,
    conns: Vec<Conn>,
    /// (proto, client, vip) → newest connection.
    by_client: HashMap<(u8, Endpoint, Endpoint), usize>,
    /// (proto, rs, local) → connection, once learned.
    by_reply: HashMap<(u8, Endpoint, Endpoint), usize>,
    inputs: Vec<InputRecord>,
    /// Forwarded inputs not yet paired with an output, by content, oldest first.
    pending: HashMap<Fingerprint, Vec<usize>>,
    /// The first dropped input of each content, to explain an unexpected output.
    dropped: HashMap<Fingerprint, (usize, DropReason)>,
    outputs: usize,
    failures: Vec<Failure>,
    mismatches: Vec<(PacketRef, Vec<u8>)>,
}

impl Checker {
    /// A checker for a scenario's services, local addresses, TTL policy, checks and
    /// queue → worker map.
    pub fn new(scenario: &Scenario) -> Self {
        let services = scenario
            .services
            .iter()
            .map(|s| {
                let resolve = |rs: &crate::scenario::RealServer| {
                    let port = if rs.addr.port() == 0 {
                        s.vip.port()
                    } else {
                        rs.addr.port()
                    };
                    Endpoint::new(rs.addr.ip(), port)
                };
                ServiceModel {
                    vip: Endpoint::new(s.vip.ip(), s.vip.port()),
                    proto: s.proto.number(),
                    mode: s.mode,
                    real_servers: s
                        .real_servers
                        .iter()
                        .filter(|r| r.weight > 0)
                        .map(resolve)
                        .collect(),
                    all_real_servers: s.real_servers.iter().map(resolve).collect(),
                }
            })
            .collect();
        Self {
            services,
            local_addresses: scenario.local_addresses.clone(),
            ttl: scenario.ttl,
            checks: scenario.check,
            queue_worker: scenario.queue_worker(),
            rss: scenario.rss_model().ok(),
            conns: Vec::new(),
            by_client: HashMap::new(),
            by_reply: HashMap::new(),
            inputs: Vec::new(),
            pending: HashMap::new(),
            dropped: HashMap::new(),
            outputs: 0,
            failures: Vec::new(),
            mismatches: Vec::new(),
        }
    }

    /// Records an input packet received on `queue`; returns its index and verdict.
    pub fn observe_input(&mut self, frame: &[u8], queue: u16) -> (usize, Verdict) {
        let index = self.inputs.len();
        let (verdict, ttl, fingerprint) = match PacketInfo::parse(frame) {
            Err(_) => (Verdict::Drop(DropReason::Malformed), 0, None),
            Ok(info) => {
                let verdict = self.classify(frame, &info);
                let ttl = info.net.as_ref().map_or(0, |n| n.ttl);
                (verdict, ttl, fingerprint(&info))
            }
        };
        let forward = matches!(verdict, Verdict::Forward { .. });
        if let Some(fp) = &fingerprint {
            match verdict {
                Verdict::Forward { .. } => self.pending.entry(fp.clone()).or_default().push(index),
                Verdict::Drop(reason) => {
                    self.dropped.entry(fp.clone()).or_insert((index, reason));
                }
            }
        }
        self.inputs.push(InputRecord {
            verdict,
            queue,
            ttl,
            fingerprint: fingerprint.filter(|_| forward),
            matched: false,
            data: forward.then(|| frame.to_vec()),
        });
        (index, verdict)
    }

    /// The verdict given to input `index`.
    pub fn verdict(&self, index: usize) -> Option<Verdict> {
        self.inputs.get(index).map(|r| r.verdict)
    }

    /// Records an output packet sent by `queue`, pairing it with a pending input by
    /// content (see the module documentation); returns its index.
    pub fn observe_output(&mut self, frame: &[u8], queue: u16) -> usize {
        let index = self.outputs;
        self.outputs += 1;
        let info = match PacketInfo::parse(frame) {
            Ok(info) => info,
            Err(e) => {
                self.fail(
                    Check::Verdict,
                    PacketRef::Output(index),
                    "packet",
                    "a well-formed packet",
                    &e.to_string(),
                    frame,
                );
                return index;
            }
        };
        match self.pair(&info, queue) {
            Ok(input) => self.check_output(input, index, frame, &info, queue),
            Err(expected) => {
                self.fail(
                    Check::Verdict,
                    PacketRef::Output(index),
                    "verdict",
                    &expected,
                    &format!("forwarded as {}", summary(&info)),
                    frame,
                );
            }
        }
        index
    }

    /// Records the output produced by input `input` (when the topology knows it).
    pub fn observe_output_of(&mut self, input: usize, frame: &[u8], queue: u16) -> usize {
        let index = self.outputs;
        self.outputs += 1;
        let info = match PacketInfo::parse(frame) {
            Ok(info) => info,
            Err(e) => {
                self.fail(
                    Check::Verdict,
                    PacketRef::Output(index),
                    "packet",
                    "a well-formed packet",
                    &e.to_string(),
                    frame,
                );
                return index;
            }
        };
        match self.inputs.get(input).map(|r| (r.verdict, r.matched)) {
            Some((Verdict::Forward { .. }, false)) => {
                self.check_output(input, index, frame, &info, queue)
            }
            Some((Verdict::Forward { .. }, true)) => self.fail(
                Check::Verdict,
                PacketRef::Output(index),
                "verdict",
                &format!("one output for input #{input}"),
                "a second output",
                frame,
            ),
            Some((Verdict::Drop(r), _)) => self.fail(
                Check::Verdict,
                PacketRef::Output(index),
                "verdict",
                &format!("input #{input} dropped ({r})"),
                &format!("forwarded as {}", summary(&info)),
                frame,
            ),
            None => self.fail(
                Check::Verdict,
                PacketRef::Output(index),
                "verdict",
                &format!("an input #{input}"),
                "an output for an input never observed",
                frame,
            ),
        }
        index
    }

    /// Ends the run: inputs expected forwarded but never seen leaving are failures, and
    /// RSS affinity is checked per connection.
    pub fn finish(mut self) -> Report {
        let mut expected_drops = BTreeMap::new();
        let mut expected_forward = 0;
        let mut missing = Vec::new();
        for (i, r) in self.inputs.iter().enumerate() {
            match r.verdict {
                Verdict::Forward { .. } => {
                    expected_forward += 1;
                    if !r.matched {
                        missing.push((i, r.data.clone().unwrap_or_default()));
                    }
                }
                Verdict::Drop(reason) => *expected_drops.entry(reason).or_insert(0) += 1,
            }
        }
        for (i, data) in missing {
            self.fail(
                Check::Verdict,
                PacketRef::Input(i),
                "verdict",
                "forwarded",
                "no output (dropped)",
                &data,
            );
        }
        if self.checks.rss_affinity {
            let records: Vec<ConnRecord> = self
                .conns
                .iter()
                .map(|c| ConnRecord {
                    name: c.name(),
                    packets: c.packets.clone(),
                })
                .collect();
            for v in checks::rss_affinity(&records, &self.queue_worker) {
                self.failures.push(Failure {
                    check: Check::RssAffinity,
                    packet: PacketRef::Output(v.output),
                    field: "worker".to_owned(),
                    expected: format!("worker {} (owner of {})", v.expected_worker, v.conn),
                    got: format!("worker {}", v.got_worker),
                });
            }
        }
        if self.checks.rss_steering {
            self.check_steering();
        }
        Report {
            failures: self.failures,
            inputs: self.inputs.len(),
            outputs: self.outputs,
            expected_forward,
            expected_drops,
            connections: self.conns.len(),
            mismatches: self.mismatches,
        }
    }

    /// Every learned connection's replies reach its requests' worker by RSS alone.
    fn check_steering(&mut self) {
        let Some(model) = self.rss.clone() else {
            return;
        };
        let flow = |proto: u8, src: Endpoint, dst: Endpoint| RssFlow {
            src: src.addr,
            dst: dst.addr,
            l4: if proto == PROTO_TCP { L4::Tcp } else { L4::Udp },
            sport: src.port,
            dport: dst.port,
        };
        let tuples: Vec<ConnTuples> = self
            .conns
            .iter()
            .filter_map(|c| {
                Some(ConnTuples {
                    name: c.name(),
                    output: c.packets.first()?.output,
                    request: flow(c.proto, c.client, c.vip),
                    reply: flow(c.proto, c.rs?, c.local?),
                })
            })
            .collect();
        for v in checks::rss_steering(&model, &tuples, &self.queue_worker) {
            self.failures.push(Failure {
                check: Check::RssAffinity,
                packet: PacketRef::Output(v.output),
                field: "rss.reply_queue".to_owned(),
                expected: format!(
                    "a queue of worker {} (requests of {} arrive on queue {})",
                    v.request.1, v.conn, v.request.0
                ),
                got: format!("queue {} (worker {})", v.reply.0, v.reply.1),
            });
        }
    }

    /// The verdict of a parsed input; creates and updates connections.
    fn classify(&mut self, frame: &[u8], info: &PacketInfo<'_>) -> Verdict {
        let Some(net) = &info.net else {
            return Verdict::Drop(DropReason::NotIp);
        };
        match checks::checksums_valid(frame) {
            Ok(()) => {}
            Err(ChecksumError::Malformed(_)) => return Verdict::Drop(DropReason::Malformed),
            Err(ChecksumError::Mismatch(m)) if m.kind == ChecksumKind::Ipv4Header => {
                return Verdict::Drop(DropReason::BadChecksum)
            }
            Err(ChecksumError::Mismatch(_)) if net.fragment => {}
            Err(ChecksumError::Mismatch(_)) => return Verdict::Drop(DropReason::BadChecksum),
        }
        if net.fragment {
            return Verdict::Drop(DropReason::Fragment);
        }
        let ttl_ok = self.ttl == TtlPolicy::Preserve || net.ttl > 1;
        let (sport, dport, tcp_flags) = match &net.l4 {
            L4Info::Tcp(t) => (t.sport, t.dport, Some(t.flags)),
            L4Info::Udp { sport, dport, .. } => (*sport, *dport, None),
            L4Info::Icmp(icmp) => {
                let verdict = match icmp.quoted.filter(|_| icmp.is_error()) {
                    Some(q) => self.classify_icmp(&q),
                    None => Verdict::Drop(DropReason::IcmpUnrelated),
                };
                return match verdict {
                    Verdict::Forward { .. } if !ttl_ok => Verdict::Drop(DropReason::TtlExpired),
                    v => v,
                };
            }
            L4Info::Other => return Verdict::Drop(DropReason::NoService),
        };
        let src = Endpoint::new(net.src, sport);
        let dst = Endpoint::new(net.dst, dport);
        let proto = net.proto;
        let syn_only = tcp_flags.is_some_and(|f| f & 0x12 == 0x02);
        let rst = tcp_flags.is_some_and(|f| f & 0x04 != 0);
        let fin = tcp_flags.is_some_and(|f| f & 0x01 != 0);

        if let Some(service) = self
            .services
            .iter()
            .position(|s| s.vip == dst && s.proto == proto)
        {
            if !ttl_ok {
                return Verdict::Drop(DropReason::TtlExpired);
            }
            let existing = self
                .by_client
                .get(&(proto, src, dst))
                .copied()
                .filter(|&c| !(self.conns[c].closed && syn_only));
            let conn = match existing {
                Some(c) => c,
                None if proto == PROTO_UDP || syn_only => {
                    let c = self.conns.len();
                    self.conns.push(Conn {
                        service,
                        proto,
                        client: src,
                        vip: dst,
                        rs: None,
                        local: None,
                        client_fin: false,
                        server_fin: false,
                        closed: false,
                        packets: Vec::new(),
                    });
                    self.by_client.insert((proto, src, dst), c);
                    c
                }
                None => return Verdict::Drop(DropReason::NoConnection),
            };
            self.track(conn, true, fin, rst);
            return Verdict::Forward {
                conn,
                direction: Direction::In,
                carried: Carried::Segment,
            };
        }
        if let Some(&conn) = self.by_reply.get(&(proto, src, dst)) {
            if !ttl_ok {
                return Verdict::Drop(DropReason::TtlExpired);
            }
            self.track(conn, false, fin, rst);
            return Verdict::Forward {
                conn,
                direction: Direction::Out,
                carried: Carried::Segment,
            };
        }
        let from_rs = self
            .services
            .iter()
            .any(|s| s.proto == proto && s.all_real_servers.contains(&src));
        if from_rs {
            Verdict::Drop(DropReason::NoConnection)
        } else {
            Verdict::Drop(DropReason::NoService)
        }
    }

    /// An ICMP error: client-side errors quote VIP → client; server-side errors quote
    /// local → RS (FULLNAT) or client → RS (NAT).
    fn classify_icmp(&self, q: &Quoted) -> Verdict {
        let quoted_src = Endpoint::new(q.src, q.sport);
        let quoted_dst = Endpoint::new(q.dst, q.dport);
        if let Some(&conn) = self.by_client.get(&(q.proto, quoted_dst, quoted_src)) {
            return Verdict::Forward {
                conn,
                direction: Direction::In,
                carried: Carried::IcmpError,
            };
        }
        if let Some(&conn) = self.by_reply.get(&(q.proto, quoted_dst, quoted_src)) {
            return Verdict::Forward {
                conn,
                direction: Direction::Out,
                carried: Carried::IcmpError,
            };
        }
        Verdict::Drop(DropReason::IcmpUnrelated)
    }

    /// Follows FIN/RST: a connection is closed (its local address/port free again) after
    /// an RST or a FIN from each side.
    fn track(&mut self, conn: usize, from_client: bool, fin: bool, rst: bool) {
        let c = &mut self.conns[conn];
        if from_client {
            c.client_fin |= fin;
        } else {
            c.server_fin |= fin;
        }
        if rst || (c.client_fin && c.server_fin) {
            c.closed = true;
        }
    }

    /// Picks the pending input an output belongs to, or says what was expected.
    fn pair(&self, info: &PacketInfo<'_>, queue: u16) -> Result<usize, String> {
        let Some(fp) = fingerprint(info) else {
            return Err("no output for a packet that is not TCP, UDP or ICMP".to_owned());
        };
        let mut first_forward = None;
        let mut same_queue = None;
        for &i in self.pending.get(&fp).into_iter().flatten() {
            let r = &self.inputs[i];
            if let Verdict::Forward {
                conn, direction, ..
            } = r.verdict
            {
                if self.conn_matches(conn, direction, info) {
                    return Ok(i);
                }
                if same_queue.is_none() && r.queue == queue {
                    same_queue = Some(i);
                }
                first_forward.get_or_insert(i);
            }
        }
        if let Some(i) = same_queue.or(first_forward) {
            return Ok(i);
        }
        Err(match self.dropped.get(&fp) {
            Some(&(i, reason)) => format!("input #{i} dropped ({reason})"),
            None => "no output (no input with this content is pending)".to_owned(),
        })
    }

    /// Whether an output's addresses are exactly those of a learned connection.
    fn conn_matches(&self, conn: usize, direction: Direction, info: &PacketInfo<'_>) -> bool {
        let c = &self.conns[conn];
        let Some((src, dst)) = endpoints(info) else {
            return false;
        };
        match (direction, c.rs, c.local) {
            (Direction::In, Some(rs), Some(local)) => dst == rs && src == local,
            (Direction::Out, _, _) => src == c.vip && dst == c.client,
            _ => false,
        }
    }

    /// Checks one output against its input's verdict and the connection.
    fn check_output(
        &mut self,
        input: usize,
        output: usize,
        frame: &[u8],
        info: &PacketInfo<'_>,
        queue: u16,
    ) {
        let record = &mut self.inputs[input];
        record.matched = true;
        record.data = None;
        if let Some(fp) = record.fingerprint.take() {
            if let Some(list) = self.pending.get_mut(&fp) {
                list.retain(|&i| i != input);
                if list.is_empty() {
                    self.pending.remove(&fp);
                }
            }
        }
        let record = &self.inputs[input];
        let in_ttl = record.ttl;
        let Verdict::Forward {
            conn,
            direction,
            carried,
        } = record.verdict
        else {
            return;
        };
        let at = PacketRef::Output(output);
        let before = self.failures.len();
        self.conns[conn].packets.push(ConnPacket {
            output,
            from_client: direction == Direction::In,
            queue,
        });

        if self.checks.checksums {
            if let Err(e) = checks::checksums_valid(frame) {
                let (field, expected, got) = match e {
                    ChecksumError::Mismatch(m) => (
                        m.kind.to_string(),
                        format!("0x{:04x}", m.expected),
                        format!("0x{:04x}", m.got),
                    ),
                    ChecksumError::Malformed(m) => {
                        ("packet".to_owned(), "a well-formed packet".to_owned(), m)
                    }
                };
                self.push(Check::Checksum, at, &field, expected, got);
            }
        }
        if let Some(net) = &info.net {
            if self.checks.ttl {
                let expected = match self.ttl {
                    TtlPolicy::Decrement => in_ttl.saturating_sub(1),
                    TtlPolicy::Preserve => in_ttl,
                };
                if net.ttl != expected {
                    self.push(
                        Check::Ttl,
                        at,
                        "ttl",
                        expected.to_string(),
                        net.ttl.to_string(),
                    );
                }
            }
        }
        match carried {
            Carried::Segment => self.check_segment(conn, direction, at, info),
            Carried::IcmpError => self.check_icmp(conn, direction, at, info),
        }
        if self.failures.len() > before {
            self.mismatches.push((at, frame.to_vec()));
        }
    }

    fn check_segment(
        &mut self,
        conn: usize,
        direction: Direction,
        at: PacketRef,
        info: &PacketInfo<'_>,
    ) {
        let Some((src, dst)) = endpoints(info) else {
            return;
        };
        let c = self.conns[conn].clone();
        let proto = info.net.as_ref().map_or(0, |n| n.proto);
        if proto != c.proto {
            self.push(
                Check::Rewrite,
                at,
                "proto",
                c.proto.to_string(),
                proto.to_string(),
            );
            return;
        }
        let service = &self.services[c.service];
        let mode = service.mode;
        match direction {
            Direction::Out => {
                self.expect_endpoint(Check::Rewrite, at, "src", c.vip, src);
                self.expect_endpoint(Check::Rewrite, at, "dst", c.client, dst);
            }
            Direction::In => {
                match c.rs {
                    Some(rs) => self.expect_endpoint(Check::Stickiness, at, "dst", rs, dst),
                    None => {
                        let candidates = service.real_servers.clone();
                        self.expect_one_of(at, "dst", &candidates, dst);
                    }
                }
                match (mode, c.local) {
                    (_, Some(local)) => {
                        self.expect_endpoint(Check::Stickiness, at, "src", local, src)
                    }
                    (Mode::Nat, None) => {
                        self.expect_endpoint(Check::Rewrite, at, "src", c.client, src)
                    }
                    (Mode::Fullnat, None) => {
                        let family: Vec<IpAddr> = self
                            .local_addresses
                            .iter()
                            .copied()
                            .filter(|l| l.is_ipv4() == dst.addr.is_ipv4())
                            .collect();
                        if !family.contains(&src.addr) && self.checks.rewrites {
                            self.push(
                                Check::Rewrite,
                                at,
                                "src.addr",
                                format!("one of the local addresses {}", list(&family)),
                                src.addr.to_string(),
                            );
                        }
                    }
                }
                if c.rs.is_none() {
                    self.learn(
                        conn,
                        at,
                        dst,
                        if mode == Mode::Nat { c.client } else { src },
                    );
                }
            }
        }
    }

    /// Records a new connection's real server and local endpoint, checking that no
    /// other live FULLNAT connection uses the same (local, RS) pair.
    fn learn(&mut self, conn: usize, at: PacketRef, rs: Endpoint, local: Endpoint) {
        let proto = self.conns[conn].proto;
        let fullnat = self.services[self.conns[conn].service].mode == Mode::Fullnat;
        if let Some(&other) = self.by_reply.get(&(proto, rs, local)) {
            if other != conn && !self.conns[other].closed && fullnat && self.checks.unique_local {
                let other_name = self.conns[other].name();
                self.push(
                    Check::UniqueLocal,
                    at,
                    "src",
                    format!("a local address/port not used by live {other_name}"),
                    format!("{local} (to {rs}), already used by {other_name}"),
                );
            }
        }
        let c = &mut self.conns[conn];
        c.rs = Some(rs);
        c.local = Some(local);
        self.by_reply.insert((proto, rs, local), conn);
    }

    fn check_icmp(
        &mut self,
        conn: usize,
        direction: Direction,
        at: PacketRef,
        info: &PacketInfo<'_>,
    ) {
        let Some(net) = &info.net else { return };
        let quoted = match &net.l4 {
            L4Info::Icmp(i) => i.quoted,
            _ => None,
        };
        let Some(q) = quoted else {
            self.push(
                Check::Rewrite,
                at,
                "icmp.quoted",
                "an ICMP error quoting the connection".to_owned(),
                "no quoted packet".to_owned(),
            );
            return;
        };
        let c = self.conns[conn].clone();
        let qsrc = Endpoint::new(q.src, q.sport);
        let qdst = Endpoint::new(q.dst, q.dport);
        match direction {
            Direction::In => {
                // Towards the server: it quotes what the server sent (RS → local).
                let (Some(rs), Some(local)) = (c.rs, c.local) else {
                    return;
                };
                if net.dst != rs.addr && self.checks.rewrites {
                    self.push(
                        Check::Rewrite,
                        at,
                        "dst.addr",
                        rs.addr.to_string(),
                        net.dst.to_string(),
                    );
                }
                self.expect_endpoint(Check::Rewrite, at, "icmp.quoted.src", rs, qsrc);
                self.expect_endpoint(Check::Rewrite, at, "icmp.quoted.dst", local, qdst);
            }
            Direction::Out => {
                if net.dst != c.client.addr && self.checks.rewrites {
                    self.push(
                        Check::Rewrite,
                        at,
                        "dst.addr",
                        c.client.addr.to_string(),
                        net.dst.to_string(),
                    );
                }
                self.expect_endpoint(Check::Rewrite, at, "icmp.quoted.src", c.client, qsrc);
                self.expect_endpoint(Check::Rewrite, at, "icmp.quoted.dst", c.vip, qdst);
            }
        }
    }

    fn expect_endpoint(
        &mut self,
        check: Check,
        at: PacketRef,
        side: &str,
        expected: Endpoint,
        got: Endpoint,
    ) {
        let enabled = match check {
            Check::Stickiness => self.checks.stickiness,
            _ => self.checks.rewrites,
        };
        if !enabled {
            return;
        }
        if expected.addr != got.addr {
            self.push(
                check,
                at,
                &format!("{side}.addr"),
                expected.addr.to_string(),
                got.addr.to_string(),
            );
        }
        if expected.port != got.port {
            self.push(
                check,
                at,
                &format!("{side}.port"),
                expected.port.to_string(),
                got.port.to_string(),
            );
        }
    }

    fn expect_one_of(&mut self, at: PacketRef, side: &str, candidates: &[Endpoint], got: Endpoint) {
        if !self.checks.rewrites || candidates.contains(&got) {
            return;
        }
        let same_addr: Vec<String> = candidates
            .iter()
            .filter(|c| c.addr == got.addr)
            .map(|c| c.port.to_string())
            .collect();
        if same_addr.is_empty() {
            let addrs: Vec<IpAddr> = candidates.iter().map(|c| c.addr).collect();
            self.push(
                Check::Rewrite,
                at,
                &format!("{side}.addr"),
                format!("one of the real servers {}", list(&addrs)),
                got.addr.to_string(),
            );
        } else {
            self.push(
                Check::Rewrite,
                at,
                &format!("{side}.port"),
                same_addr.join(" or "),
                got.port.to_string(),
            );
        }
    }

    fn push(
        &mut self,
        check: Check,
        packet: PacketRef,
        field: &str,
        expected: String,
        got: String,
    ) {
        self.failures.push(Failure {
            check,
            packet,
            field: field.to_owned(),
            expected,
            got,
        });
    }

    fn fail(
        &mut self,
        check: Check,
        packet: PacketRef,
        field: &str,
        expected: &str,
        got: &str,
        frame: &[u8],
    ) {
        self.push(check, packet, field, expected.to_owned(), got.to_owned());
        self.mismatches.push((packet, frame.to_vec()));
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let names: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", names.join(", "))
}

/// Source and destination endpoints of a TCP/UDP/ICMP packet (port 0 for ICMP).
fn endpoints(info: &PacketInfo<'_>) -> Option<(Endpoint, Endpoint)> {
    let net = info.net.as_ref()?;
    let (sport, dport) = match &net.l4 {
        L4Info::Tcp(t) => (t.sport, t.dport),
        L4Info::Udp { sport, dport, .. } => (*sport, *dport),
        _ => (0, 0),
    };
    Some((Endpoint::new(net.src, sport), Endpoint::new(net.dst, dport)))
}

/// What survives any rewrite: protocol, TCP flags or ICMP type/code, L4 payload.
fn fingerprint(info: &PacketInfo<'_>) -> Option<Fingerprint> {
    let net = info.net.as_ref()?;
    let marks = match &net.l4 {
        L4Info::Tcp(t) => u16::from(t.flags),
        L4Info::Udp { .. } => 0,
        L4Info::Icmp(i) => u16::from_be_bytes([i.icmp_type, i.code]),
        L4Info::Other => return None,
    };
    Some(Fingerprint {
        proto: net.proto,
        marks,
        payload: info.l4_payload().to_vec(),
    })
}

/// `proto src → dst` of a parsed packet, for messages.
fn summary(info: &PacketInfo<'_>) -> String {
    match endpoints(info) {
        Some((s, d)) => {
            let proto = info.net.as_ref().map_or(0, |n| n.proto);
            format!("proto {proto} {s} → {d}")
        }
        None => format!("ethertype 0x{:04x}", info.ethertype),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use etherparse::PacketBuilder;
    use rstest::rstest;

    use super::*;

    const SCENARIO: &str = r#"name = "unit"
input = "none.pcap"
local_addresses = ["192.168.100.1", "192.168.100.2"]

[rss]
queues = 2

[[service]]
vip = "10.0.0.100:80"
proto = "tcp"
mode = "fullnat"

[[service.real_server]]
addr = "192.168.1.10:8080"

[[service.real_server]]
addr = "192.168.1.11:8080"

[[service]]
vip = "10.0.0.101:80"
proto = "tcp"
mode = "nat"

[[service.real_server]]
addr = "10.1.0.10:80"
"#;

    fn scenario() -> Scenario {
        Scenario::parse(SCENARIO, Path::new("unit.toml")).unwrap()
    }

    const CLIENT: [u8; 4] = [172, 16, 0, 1];
    const CLIENT2: [u8; 4] = [172, 16, 0, 2];
    const VIP: [u8; 4] = [10, 0, 0, 100];
    const LIP: [u8; 4] = [192, 168, 100, 1];
    const RS: [u8; 4] = [192, 168, 1, 10];
    const RS2: [u8; 4] = [192, 168, 1, 11];

    /// A TCP frame; `flags` is "S", "A", "PA", "FA" or "R".
    fn tcp(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        ttl: u8,
        flags: &str,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(src, dst, ttl)
            .tcp(sport, dport, 1000, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(1);
        }
        if flags.contains('P') {
            b = b.psh();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn failures(report: &Report) -> Vec<(Check, String)> {
        report
            .failures
            .iter()
            .map(|f| (f.check, f.field.clone()))
            .collect()
    }

    /// Client SYN + data through FULLNAT, the correct rewrites, and the RS's reply.
    fn good_session(c: &mut Checker) {
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        c.observe_input(&tcp(RS, 8080, LIP, 2000, 64, "SA", b""), 0);
        c.observe_output(&tcp(VIP, 80, CLIENT, 40000, 63, "SA", b""), 0);
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "PA", b"GET /"), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "PA", b"GET /"), 0);
    }

    #[test]
    fn correct_fullnat_passes() {
        let mut c = Checker::new(&scenario());
        good_session(&mut c);
        let report = c.finish();
        assert!(report.passed(), "{:#?}", report.failures);
        assert_eq!(
            (report.inputs, report.outputs, report.connections),
            (3, 3, 1)
        );
    }

    #[test]
    fn correct_nat_passes() {
        let nat_vip = [10, 0, 0, 101];
        let rs = [10, 1, 0, 10];
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, nat_vip, 80, 64, "S", b""), 1);
        c.observe_output(&tcp(CLIENT, 40000, rs, 80, 63, "S", b""), 1);
        c.observe_input(&tcp(rs, 80, CLIENT, 40000, 64, "SA", b""), 1);
        c.observe_output(&tcp(nat_vip, 80, CLIENT, 40000, 63, "SA", b""), 1);
        let report = c.finish();
        assert!(report.passed(), "{:#?}", report.failures);
    }

    #[rstest]
    #[case::wrong_dst_port(tcp(LIP, 2000, RS, 8081, 63, "S", b""), Check::Rewrite, "dst.port")]
    #[case::wrong_rs(tcp(LIP, 2000, [192, 168, 1, 99], 8080, 63, "S", b""), Check::Rewrite, "dst.addr")]
    #[case::not_a_local_address(
        tcp(CLIENT, 2000, RS, 8080, 63, "S", b""),
        Check::Rewrite,
        "src.addr"
    )]
    #[case::wrong_ttl(tcp(LIP, 2000, RS, 8080, 64, "S", b""), Check::Ttl, "ttl")]
    fn a_wrong_first_rewrite_fails(
        #[case] output: Vec<u8>,
        #[case] check: Check,
        #[case] field: &str,
    ) {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&output, 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(check, field.to_owned())],
            "{:#?}",
            report.failures
        );
        assert_eq!(report.mismatches.len(), 1);
    }

    #[test]
    fn a_wrong_checksum_fails() {
        let mut out = tcp(LIP, 2000, RS, 8080, 63, "S", b"");
        let at = out.len() - 20 + 16; // TCP checksum of a 20-byte header, no payload
        out[at] ^= 0xff;
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&out, 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Checksum, "tcp.checksum".to_owned())]
        );
    }

    #[test]
    fn a_wrong_ip_checksum_fails() {
        let mut out = tcp(LIP, 2000, RS, 8080, 63, "S", b"");
        out[14 + 10] ^= 0x01;
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&out, 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Checksum, "ipv4.checksum".to_owned())]
        );
    }

    #[test]
    fn broken_stickiness_fails() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        // The client's next segment goes to the other real server.
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "A", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS2, 8080, 63, "A", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Stickiness, "dst.addr".to_owned())]
        );
    }

    #[test]
    fn a_changed_local_port_fails() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "A", b""), 0);
        c.observe_output(&tcp(LIP, 2001, RS, 8080, 63, "A", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Stickiness, "src.port".to_owned())]
        );
    }

    #[test]
    fn a_duplicated_local_port_among_live_conns_fails() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        c.observe_input(&tcp(CLIENT2, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::UniqueLocal, "src".to_owned())]
        );
    }

    #[test]
    fn a_local_port_may_be_reused_after_rst() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "R", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "R", b""), 0);
        c.observe_input(&tcp(CLIENT2, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        let report = c.finish();
        assert!(report.passed(), "{:#?}", report.failures);
    }

    #[test]
    fn a_reply_on_another_worker_fails() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        c.observe_input(&tcp(RS, 8080, LIP, 2000, 64, "SA", b""), 1);
        c.observe_output(&tcp(VIP, 80, CLIENT, 40000, 63, "SA", b""), 1);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::RssAffinity, "worker".to_owned())]
        );
        assert_eq!(report.failures[0].packet, PacketRef::Output(1));
    }

    #[test]
    fn a_wrong_reply_rewrite_fails() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        c.observe_input(&tcp(RS, 8080, LIP, 2000, 64, "SA", b""), 0);
        c.observe_output(&tcp(VIP, 80, CLIENT, 40001, 63, "SA", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Rewrite, "dst.port".to_owned())]
        );
    }

    #[test]
    fn a_missing_output_fails() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Verdict, "verdict".to_owned())]
        );
        assert_eq!(report.failures[0].packet, PacketRef::Input(0));
    }

    #[test]
    fn forwarding_a_packet_to_drop_fails() {
        let mut c = Checker::new(&scenario());
        // TTL 1: must be dropped.
        let (_, v) = c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 1, "S", b""), 0);
        assert_eq!(v, Verdict::Drop(DropReason::TtlExpired));
        c.observe_output(&tcp(LIP, 2000, RS, 8080, 0, "S", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Verdict, "verdict".to_owned())]
        );
        assert!(report.failures[0].expected.contains("ttl_expired"));
    }

    #[rstest]
    #[case::no_service(tcp(CLIENT, 40000, VIP, 81, 64, "S", b""), DropReason::NoService)]
    #[case::ack_without_conn(tcp(CLIENT, 40000, VIP, 80, 64, "A", b""), DropReason::NoConnection)]
    #[case::reply_without_conn(tcp(RS, 8080, LIP, 2000, 64, "SA", b""), DropReason::NoConnection)]
    #[case::ttl_1(tcp(CLIENT, 40000, VIP, 80, 1, "S", b""), DropReason::TtlExpired)]
    #[case::truncated(tcp(CLIENT, 40000, VIP, 80, 64, "PA", b"data")[..56].to_vec(), DropReason::Malformed)]
    fn drop_verdicts(#[case] frame: Vec<u8>, #[case] reason: DropReason) {
        let mut c = Checker::new(&scenario());
        assert_eq!(c.observe_input(&frame, 0).1, Verdict::Drop(reason));
    }

    #[test]
    fn icmp_error_about_a_live_connection_is_forwarded_and_checked() {
        let mut c = Checker::new(&scenario());
        good_session(&mut c);
        // The client's router: fragmentation needed, quoting VIP:80 → client:40000.
        let quoted = &tcp(VIP, 80, CLIENT, 40000, 63, "A", b"")[14..14 + 28];
        let mut icmp_in = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([172, 16, 255, 1], VIP, 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400,
                },
            ))
            .write(&mut icmp_in, quoted)
            .unwrap();
        let (_, v) = c.observe_input(&icmp_in, 0);
        assert!(
            matches!(
                v,
                Verdict::Forward {
                    carried: Carried::IcmpError,
                    ..
                }
            ),
            "{v:?}"
        );
        // The right translation quotes RS:8080 → LIP:2000 and goes to the RS; this one
        // forgot to translate the quoted packet.
        let mut icmp_out = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(LIP, RS, 63)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400,
                },
            ))
            .write(&mut icmp_out, quoted)
            .unwrap();
        c.observe_output(&icmp_out, 0);
        let report = c.finish();
        let fields: Vec<String> = report.failures.iter().map(|f| f.field.clone()).collect();
        assert!(
            fields.contains(&"icmp.quoted.src.addr".to_owned()),
            "{fields:?}"
        );
        assert!(report.failures.iter().all(|f| f.check == Check::Rewrite));
    }

    #[test]
    fn exact_pairing_detects_a_dropped_input_being_forwarded() {
        let mut c = Checker::new(&scenario());
        let (i, _) = c.observe_input(&tcp(CLIENT, 40000, VIP, 81, 64, "S", b""), 0);
        c.observe_output_of(i, &tcp(LIP, 2000, RS, 8080, 63, "S", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Verdict, "verdict".to_owned())]
        );
    }

    #[test]
    fn mismatches_are_written_to_a_capture() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 2000, RS, 9999, 63, "S", b""), 0);
        let report = c.finish();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mismatch.pcap");
        assert_eq!(report.write_mismatches(&path).unwrap(), 1);
        let frames = capture::read(&path).unwrap();
        assert_eq!(frames[0].data, tcp(LIP, 2000, RS, 9999, 63, "S", b""));
    }

    #[test]
    fn report_against_expect() {
        let mut c = Checker::new(&scenario());
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "S", b""), 0);
        c.observe_input(&tcp(CLIENT, 40000, VIP, 81, 64, "S", b""), 0);
        let report = c.finish();
        let mut expect = Expect {
            forward: 1,
            ..Expect::default()
        };
        expect.drop.insert("no_service".to_owned(), 1);
        assert!(report.against_expect(&expect).is_empty());
        expect.drop.insert("ttl_expired".to_owned(), 2);
        expect.forward = 2;
        let fields: Vec<String> = report
            .against_expect(&expect)
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, ["expect.forward", "expect.drop.ttl_expired"]);
        let text = report.to_string();
        assert!(text.starts_with("2 inputs, 0 outputs"), "{text}");
        assert!(text.contains("[verdict] input #0: verdict"), "{text}");
    }

    #[test]
    fn drop_reason_names_round_trip() {
        for r in DropReason::ALL {
            assert_eq!(r.name().parse::<DropReason>(), Ok(r));
        }
    }
}
