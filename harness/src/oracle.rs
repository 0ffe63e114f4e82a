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
//! Outputs are paired with inputs by content (protocol, TCP flags, L4 payload, ICMP type,
//! compared as a 64-bit hash): among pending inputs with the same content, one whose
//! connection already matches the output's addresses wins, then one received on the
//! output's queue, then the oldest. A topology that knows the pairing (the in-process
//! one) calls [`Checker::observe_output_of`] instead.
//!
//! Beyond rewrites, checksums and TTL:
//!
//! - **TOA** ([`Check::Toa`]), for FULLNAT TCP services with `toa = true` whose real
//!   server has the client's address family: TCP option 254 (length 8 for an IPv4
//!   client, 20 for IPv6: client port, client address) is the first option of every
//!   client → server segment from the handshake-completing ACK until the server has sent
//!   data — an ACK without SYN or RST acknowledging the server's ISN + 1, seen in the
//!   server's SYN-ACK, before any server segment with data — unless the options other
//!   than NOPs leave no room (then it is skipped). Every other segment, in either
//!   direction and for every service, carries no TOA. The options other than NOPs and
//!   TOA are those of the input; the SYN-ACK towards the client has its MSS lowered by
//!   the TOA length.
//! - **Distribution** ([`Check::Distribution`]), per service, counting each connection
//!   on the worker of its first output towards the server (each worker schedules on its
//!   own): `rr` — on each worker the real servers' counts differ by at most 1; `wrr` — on
//!   each worker that scheduled at least one period (`Σw / gcd` connections), each
//!   server's count is within `w / gcd` of `n · w / Σw`; `maglev` — each connection's
//!   server is the one the oracle's own Maglev table (65537 slots) gives its client →
//!   VIP 5-tuple; `sh` — connections from one client address share a server; `wlc` —
//!   not checked (its picks depend on connection lifetimes).
//!
//! Memory is per connection and per input awaiting its output (whose bytes are kept in
//! recycled buffers for the mismatch capture); nothing grows per packet otherwise.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::capture::{self, CaptureError, Frame};
use crate::checks::{
    self, ChecksumError, ChecksumKind, MaglevTable, OptionBytes, MAGLEV_TABLE_SIZE,
    MAX_TCP_OPTIONS, TOA_KIND,
};
use crate::packet::{Endpoint, L4Info, PacketInfo, Quoted, TcpInfo, PROTO_TCP, PROTO_UDP};
use crate::rss::{RssFlow, RssModel, L4};
use crate::scenario::{Checks, Expect, Mode, Scenario, Scheduler, TtlPolicy};

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
    /// TOA (TCP option 254) where it belongs and nowhere else, the other options kept,
    /// the SYN-ACK's MSS lowered to make room.
    Toa,
    /// The scheduler's choices: rr balanced and wrr by weight per worker, Maglev by the
    /// table, sh by client.
    Distribution,
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
            Check::Toa => "toa",
            Check::Distribution => "distribution",
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

/// The checker's map hasher: each word XORed into the state and folded with a
/// 64×64→128 multiply. Keys are flow tuples, indices and content hashes from test
/// traffic, so speed matters more than resistance to chosen keys.
#[derive(Debug, Clone, Copy, Default)]
struct FoldHasher(u64);

const FOLD_K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        let m = u128::from(self.0 ^ i) * u128::from(FOLD_K);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// (protocol, endpoint, endpoint) packed for hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    a: u128,
    b: u128,
    rest: u64,
}

impl FlowKey {
    fn new(proto: u8, a: Endpoint, b: Endpoint) -> Self {
        let bits = |e: Endpoint| match e.addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 0u64),
            IpAddr::V6(v6) => (u128::from(v6), 1u64),
        };
        let (a_bits, a6) = bits(a);
        let (b_bits, b6) = bits(b);
        Self {
            a: a_bits,
            b: b_bits,
            rest: u64::from(a.port)
                | u64::from(b.port) << 16
                | u64::from(proto) << 32
                | a6 << 40
                | b6 << 41,
        }
    }
}

impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.a as u64);
        state.write_u64((self.a >> 64) as u64);
        state.write_u64(self.b as u64);
        state.write_u64((self.b >> 64) as u64);
        state.write_u64(self.rest);
    }
}

/// Connections by (protocol, endpoint, endpoint): IPv4 pairs in a compact map (16-byte
/// keys, so more of it stays in cache), other pairs in a general one.
#[derive(Debug, Default)]
struct FlowMap {
    v4: FastMap<(u64, u64), usize>,
    other: FastMap<FlowKey, usize>,
}

impl FlowMap {
    fn v4_key(proto: u8, a: Endpoint, b: Endpoint) -> Option<(u64, u64)> {
        match (a.addr, b.addr) {
            (IpAddr::V4(x), IpAddr::V4(y)) => Some((
                u64::from(u32::from(x)) << 32 | u64::from(u32::from(y)),
                u64::from(a.port) << 32 | u64::from(b.port) << 16 | u64::from(proto),
            )),
            _ => None,
        }
    }

    fn get(&self, proto: u8, a: Endpoint, b: Endpoint) -> Option<usize> {
        match Self::v4_key(proto, a, b) {
            Some(k) => self.v4.get(&k).copied(),
            None => self.other.get(&FlowKey::new(proto, a, b)).copied(),
        }
    }

    fn insert(&mut self, proto: u8, a: Endpoint, b: Endpoint, conn: usize) {
        match Self::v4_key(proto, a, b) {
            Some(k) => self.v4.insert(k, conn),
            None => self.other.insert(FlowKey::new(proto, a, b), conn),
        };
    }

    fn remove(&mut self, proto: u8, a: Endpoint, b: Endpoint) -> Option<usize> {
        match Self::v4_key(proto, a, b) {
            Some(k) => self.v4.remove(&k),
            None => self.other.remove(&FlowKey::new(proto, a, b)),
        }
    }
}

/// A [`FlowMap`] split in two: live connections, looked up first, and closed ones. The
/// live map stays about as large as the number of open connections, so most lookups stay
/// in cache however many connections a run has seen.
#[derive(Debug, Default)]
struct FlowIndex {
    live: FlowMap,
    closed: FlowMap,
}

impl FlowIndex {
    fn get(&self, proto: u8, a: Endpoint, b: Endpoint) -> Option<usize> {
        self.live
            .get(proto, a, b)
            .or_else(|| self.closed.get(proto, a, b))
    }

    fn insert(&mut self, live: bool, proto: u8, a: Endpoint, b: Endpoint, conn: usize) {
        if live {
            self.live.insert(proto, a, b, conn);
        } else {
            self.closed.insert(proto, a, b, conn);
        }
    }

    /// Moves the live entries whose connection is `idle` to the closed map (lookups see
    /// both maps, so this changes only where an entry is found, not what).
    fn sweep(&mut self, idle: impl Fn(usize) -> bool) {
        let closed = &mut self.closed;
        self.live.v4.retain(|k, c| {
            if idle(*c) {
                closed.v4.insert(*k, *c);
            }
            !idle(*c)
        });
        self.live.other.retain(|k, c| {
            if idle(*c) {
                closed.other.insert(*k, *c);
            }
            !idle(*c)
        });
    }

    /// Moves `conn`'s entry to the closed map (if the live one names it).
    fn retire(&mut self, proto: u8, a: Endpoint, b: Endpoint, conn: usize) {
        match self.live.remove(proto, a, b) {
            Some(c) if c == conn => self.closed.insert(proto, a, b, c),
            Some(other) => self.live.insert(proto, a, b, other),
            None => {}
        }
    }
}

/// Forwarded inputs awaiting their output, by input index: a window over the latest
/// inputs (a dropped or answered input leaves a hole, holes at the front are let go) and,
/// for inputs that fell out of the window unanswered, a map.
#[derive(Debug, Default)]
struct Awaiting {
    /// Index of `window[0]`; `base + window.len()` inputs have been pushed.
    base: usize,
    window: VecDeque<Option<InputRecord>>,
    stragglers: FastMap<usize, InputRecord>,
}

/// Inputs the window spans before its oldest moves to the map.
const WINDOW: usize = 1 << 16;

impl Awaiting {
    /// Registers the next input: its record if forwarded, `None` if dropped.
    fn push(&mut self, record: Option<InputRecord>) {
        self.window.push_back(record);
        while self.window.len() > WINDOW {
            if let Some(Some(r)) = self.window.pop_front() {
                self.stragglers.insert(self.base, r);
            }
            self.base += 1;
        }
        self.trim();
    }

    fn contains(&self, i: usize) -> bool {
        match i.checked_sub(self.base) {
            Some(at) if at < self.window.len() => self.window[at].is_some(),
            _ => self.stragglers.contains_key(&i),
        }
    }

    fn take(&mut self, i: usize) -> Option<InputRecord> {
        match i.checked_sub(self.base) {
            Some(at) if at < self.window.len() => {
                let r = self.window[at].take();
                self.trim();
                r
            }
            _ => self.stragglers.remove(&i),
        }
    }

    fn trim(&mut self) {
        while let Some(None) = self.window.front() {
            self.window.pop_front();
            self.base += 1;
        }
    }

    /// Every input still awaiting its output, oldest first.
    fn drain(&mut self) -> Vec<(usize, InputRecord)> {
        let mut out: Vec<(usize, InputRecord)> = self.stragglers.drain().collect();
        let base = self.base;
        out.extend(
            self.window
                .drain(..)
                .enumerate()
                .filter_map(|(at, r)| Some((base + at, r?))),
        );
        out.sort_unstable_by_key(|(i, _)| *i);
        out
    }
}

/// A service as the oracle sees it.
#[derive(Debug, Clone)]
struct ServiceModel {
    vip: Endpoint,
    proto: u8,
    mode: Mode,
    scheduler: Scheduler,
    /// TOA on (FULLNAT TCP only).
    toa: bool,
    /// Real servers that can take new connections (weight > 0), port resolved.
    real_servers: Vec<Endpoint>,
    /// Every real server, port resolved (replies may come from quiesced ones).
    all_real_servers: Vec<Endpoint>,
    /// The weight of each of `all_real_servers`.
    weights: Vec<u32>,
    /// The oracle's Maglev table over `all_real_servers`, for `maglev` services.
    maglev: Option<MaglevTable>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The first output of the connection and the worker that sent it.
    first: Option<(usize, u16)>,
    /// The first output sent by another worker than `first`'s.
    stray: Option<(usize, u16)>,
    /// The worker that scheduled the connection (sent its first output to the server).
    sched_worker: Option<u16>,
    /// The server's ISN, from its SYN-ACK (TOA services).
    rs_isn: Option<u32>,
    /// The server has sent a segment with data since its SYN-ACK (TOA services).
    rs_sent_data: bool,
    /// The index of the last input of the connection.
    last_seen: usize,
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

/// A connection's endpoints, copied out of its [`Conn`] to check an output against.
#[derive(Debug, Clone, Copy)]
struct ConnEnds {
    proto: u8,
    service: usize,
    client: Endpoint,
    vip: Endpoint,
    rs: Option<Endpoint>,
    local: Option<Endpoint>,
}

/// Whether a client → server segment gets TOA, decided when the balancer receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToaPlan {
    /// Not a segment of a TOA service towards its server: TOA must be absent.
    Off,
    /// TOA belongs on this segment.
    Wanted,
    /// A segment of a TOA service that must not carry TOA, and why.
    Not(&'static str),
}

#[derive(Debug)]
struct InputRecord {
    verdict: Verdict,
    ttl: u8,
    /// Content hash, while the input is pending.
    fingerprint: Option<u64>,
    /// TOA expectation (client → server TCP segments).
    toa: ToaPlan,
    /// The input's TCP option bytes (TCP inputs, with the TOA check on).
    options: OptionBytes,
    /// The frame, for the mismatch capture (a recycled buffer).
    data: Vec<u8>,
}

/// What an input's classification decided.
#[derive(Debug, Clone, Copy)]
struct Classified {
    verdict: Verdict,
    toa: ToaPlan,
}

impl From<Verdict> for Classified {
    fn from(verdict: Verdict) -> Self {
        Self {
            verdict,
            toa: ToaPlan::Off,
        }
    }
}

/// A forwarded input awaiting its output, in the list of its content.
#[derive(Debug, Clone, Copy)]
struct Pending {
    input: usize,
    conn: usize,
    direction: Direction,
    queue: u16,
    /// Hash of the output's (source, destination) when the connection already fixes
    /// them (replies; requests once the server is learned), else 0.
    key: u64,
}

/// Hash of a packet's (source, destination) endpoints; never 0.
fn endpoints_key(src: Endpoint, dst: Endpoint) -> u64 {
    let mut h = FoldHasher(FOLD_K);
    FlowKey::new(0, src, dst).hash(&mut h);
    h.finish() | 1
}

/// Inputs between two sweeps of idle connections out of the live flow maps.
const SWEEP_EVERY: usize = 1 << 16;

/// Spare input buffers kept for reuse.
const SPARE_BUFFERS: usize = 4096;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Compares a balancer's outputs with the oracle's expectations.
#[derive(Debug)]
pub struct Checker {
    services: Vec<ServiceModel>,
    local_addresses: Vec<IpAddr>,
    /// The same as numbers, sorted, for lookups: IPv4, IPv6.
    local_sorted: (Vec<u32>, Vec<u128>),
    ttl: TtlPolicy,
    checks: Checks,
    queue_worker: Vec<u16>,
    rss: Option<RssModel>,
    conns: Vec<Conn>,
    /// (proto, client, vip) → newest connection.
    by_client: FlowIndex,
    /// (proto, rs, local) → connection, once learned.
    by_reply: FlowIndex,
    /// Inputs observed.
    inputs: usize,
    /// Forwarded inputs not yet paired with an output.
    awaiting: Awaiting,
    /// Dropped inputs, for [`Checker::observe_output_of`]'s messages.
    dropped_inputs: FastMap<usize, DropReason>,
    /// Forwarded inputs not yet paired with an output, by content, oldest first.
    pending: FastMap<u64, Vec<Pending>>,
    /// The first dropped input of each content, to explain an unexpected output.
    dropped: FastMap<u64, (usize, DropReason)>,
    /// `sh` services: (service, client address) → the first connection's server.
    sh_first: FastMap<(usize, IpAddr), (Endpoint, usize)>,
    expected_forward: usize,
    expected_drops: [usize; DropReason::ALL.len()],
    outputs: usize,
    failures: Vec<Failure>,
    mismatches: Vec<(PacketRef, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    spare_lists: Vec<Vec<Pending>>,
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
                let all_real_servers: Vec<Endpoint> = s.real_servers.iter().map(resolve).collect();
                let weights: Vec<u32> = s.real_servers.iter().map(|r| r.weight).collect();
                let maglev = (s.scheduler == Scheduler::Maglev)
                    .then(|| {
                        let backends: Vec<(std::net::SocketAddr, u32)> = all_real_servers
                            .iter()
                            .zip(&weights)
                            .map(|(e, &w)| (std::net::SocketAddr::new(e.addr, e.port), w))
                            .collect();
                        MaglevTable::new(MAGLEV_TABLE_SIZE, &backends)
                    })
                    .flatten();
                ServiceModel {
                    vip: Endpoint::new(s.vip.ip(), s.vip.port()),
                    proto: s.proto.number(),
                    mode: s.mode,
                    scheduler: s.scheduler,
                    toa: s.toa && s.mode == Mode::Fullnat && s.proto.number() == PROTO_TCP,
                    real_servers: s
                        .real_servers
                        .iter()
                        .filter(|r| r.weight > 0)
                        .map(resolve)
                        .collect(),
                    all_real_servers,
                    weights,
                    maglev,
                }
            })
            .collect();
        Self {
            services,
            local_addresses: scenario.local_addresses.clone(),
            local_sorted: {
                let (mut v4, mut v6) = (Vec::new(), Vec::new());
                for a in &scenario.local_addresses {
                    match a {
                        IpAddr::V4(a) => v4.push(u32::from(*a)),
                        IpAddr::V6(a) => v6.push(u128::from(*a)),
                    }
                }
                v4.sort_unstable();
                v6.sort_unstable();
                (v4, v6)
            },
            ttl: scenario.ttl,
            checks: scenario.check,
            queue_worker: scenario.queue_worker(),
            rss: scenario.rss_model().ok(),
            conns: Vec::new(),
            by_client: FlowIndex::default(),
            by_reply: FlowIndex::default(),
            inputs: 0,
            awaiting: Awaiting::default(),
            dropped_inputs: FastMap::default(),
            pending: FastMap::default(),
            dropped: FastMap::default(),
            sh_first: FastMap::default(),
            expected_forward: 0,
            expected_drops: [0; DropReason::ALL.len()],
            outputs: 0,
            failures: Vec::new(),
            mismatches: Vec::new(),
            spare: Vec::new(),
            spare_lists: Vec::new(),
        }
    }

    /// Records an input packet received on `queue`; returns its index and verdict.
    pub fn observe_input(&mut self, frame: &[u8], queue: u16) -> (usize, Verdict) {
        let index = self.inputs;
        self.inputs += 1;
        if index % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Connections without a packet for a sweep's span (UDP flows, which never
            // close; TCP ones that stopped) leave the live maps, which stay small.
            let horizon = index.saturating_sub(SWEEP_EVERY);
            let conns = &self.conns;
            let idle = |c: usize| conns.get(c).is_none_or(|c| c.last_seen < horizon);
            self.by_client.sweep(idle);
            self.by_reply.sweep(idle);
        }
        let (class, ttl, fingerprint, options) = match PacketInfo::parse(frame) {
            Err(_) => (
                Classified::from(Verdict::Drop(DropReason::Malformed)),
                0,
                None,
                OptionBytes::default(),
            ),
            Ok(info) => {
                let scan = info.net.as_ref().map(|net| checks::scan(frame, net));
                let class = self.classify(&info, scan.as_ref());
                let ttl = info.net.as_ref().map_or(0, |n| n.ttl);
                let mut options = OptionBytes::default();
                if let Some(L4Info::Tcp(t)) = info.net.as_ref().map(|n| &n.l4) {
                    if self.checks.toa && !t.options.is_empty() {
                        options.push(t.options);
                    }
                }
                let fingerprint = fingerprint(&info, scan.as_ref());
                (class, ttl, fingerprint, options)
            }
        };
        let verdict = class.verdict;
        match verdict {
            Verdict::Forward {
                conn,
                direction,
                carried,
            } => {
                self.expected_forward += 1;
                if let Some(fp) = fingerprint {
                    let c = &self.conns[conn];
                    let key = match (carried, direction, c.rs, c.local) {
                        (Carried::Segment, Direction::Out, _, _) => endpoints_key(c.vip, c.client),
                        (Carried::Segment, Direction::In, Some(rs), Some(local)) => {
                            endpoints_key(local, rs)
                        }
                        _ => 0,
                    };
                    let spare = &mut self.spare_lists;
                    self.pending
                        .entry(fp)
                        .or_insert_with(|| spare.pop().unwrap_or_default())
                        .push(Pending {
                            input: index,
                            conn,
                            direction,
                            queue,
                            key,
                        });
                }
                let mut data = self.spare.pop().unwrap_or_default();
                data.clear();
                data.extend_from_slice(frame);
                self.awaiting.push(Some(InputRecord {
                    verdict,
                    ttl,
                    fingerprint,
                    toa: class.toa,
                    options,
                    data,
                }));
            }
            Verdict::Drop(reason) => {
                self.awaiting.push(None);
                self.expected_drops[reason as usize] += 1;
                self.dropped_inputs.insert(index, reason);
                if let Some(fp) = fingerprint {
                    self.dropped.entry(fp).or_insert((index, reason));
                }
            }
        }
        (index, verdict)
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
        let scan = info.net.as_ref().map(|net| checks::scan(frame, net));
        match self.pair(&info, fingerprint(&info, scan.as_ref()), queue) {
            Ok(input) => self.check_output(input, index, frame, &info, scan.as_ref(), queue),
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
        if self.awaiting.contains(input) {
            let scan = info.net.as_ref().map(|net| checks::scan(frame, net));
            self.check_output(input, index, frame, &info, scan.as_ref(), queue);
        } else if let Some(&r) = self.dropped_inputs.get(&input) {
            self.fail(
                Check::Verdict,
                PacketRef::Output(index),
                "verdict",
                &format!("input #{input} dropped ({r})"),
                &format!("forwarded as {}", summary(&info)),
                frame,
            );
        } else if input < self.inputs {
            self.fail(
                Check::Verdict,
                PacketRef::Output(index),
                "verdict",
                &format!("one output for input #{input}"),
                "a second output",
                frame,
            );
        } else {
            self.fail(
                Check::Verdict,
                PacketRef::Output(index),
                "verdict",
                &format!("an input #{input}"),
                "an output for an input never observed",
                frame,
            );
        }
        index
    }

    /// Ends the run: inputs expected forwarded but never seen leaving are failures, RSS
    /// affinity is checked per connection and the schedulers' distributions per worker.
    pub fn finish(mut self) -> Report {
        for (i, record) in self.awaiting.drain() {
            let data = record.data;
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
            for c in &self.conns {
                if let (Some((_, owner)), Some((output, worker))) = (c.first, c.stray) {
                    self.failures.push(Failure {
                        check: Check::RssAffinity,
                        packet: PacketRef::Output(output),
                        field: "worker".to_owned(),
                        expected: format!("worker {owner} (owner of {})", c.name()),
                        got: format!("worker {worker}"),
                    });
                }
            }
        }
        if self.checks.rss_steering {
            self.check_steering();
        }
        if self.checks.distribution {
            self.check_distribution();
        }
        let expected_drops = DropReason::ALL
            .iter()
            .zip(self.expected_drops)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
            .collect();
        Report {
            failures: self.failures,
            inputs: self.inputs,
            outputs: self.outputs,
            expected_forward: self.expected_forward,
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
        let tuples: Vec<checks::ConnTuples> = self
            .conns
            .iter()
            .filter_map(|c| {
                Some(checks::ConnTuples {
                    name: c.name(),
                    output: c.first?.0,
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

    /// rr and wrr: the connections each worker scheduled, per service, against the
    /// tolerances in the module documentation. (Maglev and sh are checked per
    /// connection when its server is learned.)
    fn check_distribution(&mut self) {
        // (service, worker) → (count per real server, first output of the group).
        let mut groups: BTreeMap<(usize, u16), (Vec<usize>, usize)> = BTreeMap::new();
        for c in &self.conns {
            let svc = &self.services[c.service];
            if !matches!(svc.scheduler, Scheduler::Rr | Scheduler::Wrr) {
                continue;
            }
            let (Some(rs), Some(worker), Some((first, _))) = (c.rs, c.sched_worker, c.first) else {
                continue;
            };
            let Some(i) = svc.all_real_servers.iter().position(|&e| e == rs) else {
                continue;
            };
            let n = svc.all_real_servers.len();
            let (counts, _) = groups
                .entry((c.service, worker))
                .or_insert_with(|| (vec![0; n], first));
            counts[i] += 1;
        }
        for ((service, worker), (counts, first)) in groups {
            let svc = &self.services[service];
            let at = PacketRef::Output(first);
            let n: usize = counts.iter().sum();
            let named = |i: usize| {
                svc.all_real_servers
                    .get(i)
                    .map_or_else(|| format!("#{i}"), ToString::to_string)
            };
            match svc.scheduler {
                Scheduler::Rr => {
                    let weighted: Vec<usize> = counts
                        .iter()
                        .zip(&svc.weights)
                        .filter(|(_, &w)| w > 0)
                        .map(|(&c, _)| c)
                        .collect();
                    if !checks::rr_balanced(&weighted) {
                        let got: Vec<String> = counts
                            .iter()
                            .enumerate()
                            .map(|(i, c)| format!("{} {c}", named(i)))
                            .collect();
                        self.failures.push(Failure {
                            check: Check::Distribution,
                            packet: at,
                            field: format!("rr.counts[{} worker {worker}]", svc.vip),
                            expected: format!(
                                "round robin: counts of the {} real servers differing by at most 1 \
                                 on one worker ({n} connections)",
                                weighted.len()
                            ),
                            got: got.join(", "),
                        });
                    }
                }
                Scheduler::Wrr => {
                    let period = checks::wrr_period(&svc.weights);
                    if (n as u64) < period {
                        // Fewer picks than one period: the tolerance would exceed the
                        // expectation, so the check says nothing.
                        continue;
                    }
                    let total: u32 = svc.weights.iter().sum();
                    for o in checks::wrr_outliers(&svc.weights, &counts) {
                        let w = svc.weights.get(o.index).copied().unwrap_or(0);
                        self.failures.push(Failure {
                            check: Check::Distribution,
                            packet: at,
                            field: format!(
                                "wrr.count[{} worker {worker}] {}",
                                svc.vip,
                                named(o.index)
                            ),
                            expected: format!(
                                "{:.1} ± {} of {n} connections (weight {w}/{total}; tolerance \
                                 w/gcd: a wrr period's picks of this server)",
                                o.expected, o.tolerance
                            ),
                            got: o.count.to_string(),
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// The verdict of a parsed input and its TOA expectation; creates and updates
    /// connections.
    fn classify(&mut self, info: &PacketInfo<'_>, scan: Option<&checks::Scan>) -> Classified {
        let (Some(net), Some(scan)) = (&info.net, scan) else {
            return Verdict::Drop(DropReason::NotIp).into();
        };
        match &scan.checksums {
            Ok(()) => {}
            Err(ChecksumError::Malformed(_)) => return Verdict::Drop(DropReason::Malformed).into(),
            Err(ChecksumError::Mismatch(m)) if m.kind == ChecksumKind::Ipv4Header => {
                return Verdict::Drop(DropReason::BadChecksum).into()
            }
            Err(ChecksumError::Mismatch(_)) if net.fragment => {}
            Err(ChecksumError::Mismatch(_)) => {
                return Verdict::Drop(DropReason::BadChecksum).into()
            }
        }
        if net.fragment {
            return Verdict::Drop(DropReason::Fragment).into();
        }
        let ttl_ok = self.ttl == TtlPolicy::Preserve || net.ttl > 1;
        let (sport, dport, tcp) = match &net.l4 {
            L4Info::Tcp(t) => (t.sport, t.dport, Some(t)),
            L4Info::Udp { sport, dport, .. } => (*sport, *dport, None),
            L4Info::Icmp(icmp) => {
                let verdict = match icmp.quoted.filter(|_| icmp.is_error()) {
                    Some(q) => self.classify_icmp(&q),
                    None => Verdict::Drop(DropReason::IcmpUnrelated),
                };
                return match verdict {
                    Verdict::Forward { .. } if !ttl_ok => Verdict::Drop(DropReason::TtlExpired),
                    v => v,
                }
                .into();
            }
            L4Info::Other => return Verdict::Drop(DropReason::NoService).into(),
        };
        let flags = tcp.map(|t| t.flags);
        let src = Endpoint::new(net.src, sport);
        let dst = Endpoint::new(net.dst, dport);
        let proto = net.proto;
        let syn_only = flags.is_some_and(|f| f & (TCP_SYN | TCP_ACK) == TCP_SYN);
        let rst = flags.is_some_and(|f| f & TCP_RST != 0);
        let fin = flags.is_some_and(|f| f & TCP_FIN != 0);

        if let Some(service) = self
            .services
            .iter()
            .position(|s| s.vip == dst && s.proto == proto)
        {
            if !ttl_ok {
                return Verdict::Drop(DropReason::TtlExpired).into();
            }
            let existing = self
                .by_client
                .get(proto, src, dst)
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
                        first: None,
                        stray: None,
                        sched_worker: None,
                        rs_isn: None,
                        rs_sent_data: false,
                        last_seen: self.inputs,
                    });
                    self.by_client.insert(true, proto, src, dst, c);
                    c
                }
                None => return Verdict::Drop(DropReason::NoConnection).into(),
            };
            self.track(conn, true, fin, rst);
            let toa = match tcp {
                Some(t) if self.checks.toa && self.services[service].toa => {
                    toa_plan(&self.conns[conn], t)
                }
                _ => ToaPlan::Off,
            };
            return Classified {
                verdict: Verdict::Forward {
                    conn,
                    direction: Direction::In,
                    carried: Carried::Segment,
                },
                toa,
            };
        }
        if let Some(conn) = self.by_reply.get(proto, src, dst) {
            if !ttl_ok {
                return Verdict::Drop(DropReason::TtlExpired).into();
            }
            self.track(conn, false, fin, rst);
            if let Some(t) = tcp {
                let toa_service = self.services[self.conns[conn].service].toa;
                let c = &mut self.conns[conn];
                if toa_service && t.flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN | TCP_ACK {
                    c.rs_isn = Some(t.seq);
                } else if toa_service && c.rs_isn.is_some() && !t.payload.is_empty() {
                    c.rs_sent_data = true;
                }
            }
            return Verdict::Forward {
                conn,
                direction: Direction::Out,
                carried: Carried::Segment,
            }
            .into();
        }
        let from_rs = self
            .services
            .iter()
            .any(|s| s.proto == proto && s.all_real_servers.contains(&src));
        if from_rs {
            Verdict::Drop(DropReason::NoConnection).into()
        } else {
            Verdict::Drop(DropReason::NoService).into()
        }
    }

    /// An ICMP error: client-side errors quote VIP → client; server-side errors quote
    /// local → RS (FULLNAT) or client → RS (NAT).
    fn classify_icmp(&self, q: &Quoted) -> Verdict {
        let quoted_src = Endpoint::new(q.src, q.sport);
        let quoted_dst = Endpoint::new(q.dst, q.dport);
        if let Some(conn) = self.by_client.get(q.proto, quoted_dst, quoted_src) {
            return Verdict::Forward {
                conn,
                direction: Direction::In,
                carried: Carried::IcmpError,
            };
        }
        if let Some(conn) = self.by_reply.get(q.proto, quoted_dst, quoted_src) {
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
        c.last_seen = self.inputs;
        if from_client {
            c.client_fin |= fin;
        } else {
            c.server_fin |= fin;
        }
        if (rst || (c.client_fin && c.server_fin)) && !c.closed {
            c.closed = true;
            let (proto, client, vip, rs, local) = (c.proto, c.client, c.vip, c.rs, c.local);
            self.by_client.retire(proto, client, vip, conn);
            if let (Some(rs), Some(local)) = (rs, local) {
                self.by_reply.retire(proto, rs, local, conn);
            }
        }
    }

    /// Picks the pending input an output belongs to, or says what was expected.
    fn pair(&self, info: &PacketInfo<'_>, fp: Option<u64>, queue: u16) -> Result<usize, String> {
        let Some(fp) = fp else {
            return Err("no output for a packet that is not TCP, UDP or ICMP".to_owned());
        };
        let mut first_forward = None;
        let mut same_queue = None;
        let key = match (&info.net.as_ref().map(|n| &n.l4), endpoints(info)) {
            (Some(L4Info::Tcp(_) | L4Info::Udp { .. }), Some((src, dst))) => {
                endpoints_key(src, dst)
            }
            _ => 0,
        };
        for p in self.pending.get(&fp).into_iter().flatten() {
            // A known key decides without looking at the connection, except to rule out
            // a hash collision.
            let candidate = p.key == 0 || p.key == key;
            if candidate && self.conn_matches(p.conn, p.direction, info) {
                return Ok(p.input);
            }
            if same_queue.is_none() && p.queue == queue {
                same_queue = Some(p.input);
            }
            first_forward.get_or_insert(p.input);
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

    /// The worker that owns `queue` (a queue outside the map is its own worker).
    fn worker_of(&self, queue: u16) -> u16 {
        self.queue_worker
            .get(usize::from(queue))
            .copied()
            .unwrap_or(queue)
    }

    /// Takes input `input` off the pending lists.
    fn unpend(&mut self, fp: u64, input: usize) {
        if let Some(list) = self.pending.get_mut(&fp) {
            if let Some(at) = list.iter().position(|p| p.input == input) {
                list.remove(at);
            }
            if list.is_empty() {
                if let Some(list) = self.pending.remove(&fp) {
                    if self.spare_lists.len() < SPARE_BUFFERS {
                        self.spare_lists.push(list);
                    }
                }
            }
        }
    }

    /// Checks one output against its input's verdict and the connection.
    fn check_output(
        &mut self,
        input: usize,
        output: usize,
        frame: &[u8],
        info: &PacketInfo<'_>,
        scan: Option<&checks::Scan>,
        queue: u16,
    ) {
        let Some(record) = self.awaiting.take(input) else {
            return;
        };
        if let Some(fp) = record.fingerprint {
            self.unpend(fp, input);
        }
        if let Verdict::Forward {
            conn,
            direction,
            carried,
        } = record.verdict
        {
            let at = PacketRef::Output(output);
            let before = self.failures.len();
            let worker = self.worker_of(queue);
            let c = &mut self.conns[conn];
            match c.first {
                None => c.first = Some((output, worker)),
                Some((_, owner)) if owner != worker && c.stray.is_none() => {
                    c.stray = Some((output, worker))
                }
                Some(_) => {}
            }
            if let (Some(net), Some(scan)) = (&info.net, scan) {
                if self.checks.checksums {
                    if let Err(e) = &scan.checksums {
                        let (field, expected, got) = match e {
                            ChecksumError::Mismatch(m) => (
                                m.kind.to_string(),
                                format!("0x{:04x}", m.expected),
                                format!("0x{:04x}", m.got),
                            ),
                            ChecksumError::Malformed(m) => (
                                "packet".to_owned(),
                                "a well-formed packet".to_owned(),
                                m.clone(),
                            ),
                        };
                        self.push(Check::Checksum, at, &field, expected, got);
                    }
                }
                if self.checks.ttl {
                    let expected = match self.ttl {
                        TtlPolicy::Decrement => record.ttl.saturating_sub(1),
                        TtlPolicy::Preserve => record.ttl,
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
                Carried::Segment => self.check_segment(conn, direction, at, info, queue, &record),
                Carried::IcmpError => self.check_icmp(conn, direction, at, info),
            }
            if self.failures.len() > before {
                self.mismatches.push((at, frame.to_vec()));
            }
        }
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(record.data);
        }
    }

    fn check_segment(
        &mut self,
        conn: usize,
        direction: Direction,
        at: PacketRef,
        info: &PacketInfo<'_>,
        queue: u16,
        record: &InputRecord,
    ) {
        let Some(net) = &info.net else { return };
        let Some((src, dst)) = endpoints(info) else {
            return;
        };
        // The fields used, not the whole record.
        let c = &self.conns[conn];
        let c = ConnEnds {
            proto: c.proto,
            service: c.service,
            client: c.client,
            vip: c.vip,
            rs: c.rs,
            local: c.local,
        };
        if net.proto != c.proto {
            self.push(
                Check::Rewrite,
                at,
                "proto",
                c.proto.to_string(),
                net.proto.to_string(),
            );
            return;
        }
        let mode = self.services[c.service].mode;
        match direction {
            Direction::Out => {
                self.expect_endpoint(Check::Rewrite, at, "src", c.vip, src);
                self.expect_endpoint(Check::Rewrite, at, "dst", c.client, dst);
            }
            Direction::In => {
                match c.rs {
                    Some(rs) => self.expect_endpoint(Check::Stickiness, at, "dst", rs, dst),
                    None => self.expect_real_server(at, "dst", c.service, dst),
                }
                match (mode, c.local) {
                    (_, Some(local)) => {
                        self.expect_endpoint(Check::Stickiness, at, "src", local, src)
                    }
                    (Mode::Nat, None) => {
                        self.expect_endpoint(Check::Rewrite, at, "src", c.client, src)
                    }
                    (Mode::Fullnat, None) => {
                        let family = |l: &&IpAddr| l.is_ipv4() == dst.addr.is_ipv4();
                        // One of the local addresses of the real server's family.
                        let local_ok = match (src.addr, dst.addr) {
                            (IpAddr::V4(a), IpAddr::V4(_)) => {
                                self.local_sorted.0.binary_search(&u32::from(a)).is_ok()
                            }
                            (IpAddr::V6(a), IpAddr::V6(_)) => {
                                self.local_sorted.1.binary_search(&u128::from(a)).is_ok()
                            }
                            _ => false,
                        };
                        if !local_ok && self.checks.rewrites {
                            let family: Vec<IpAddr> = self
                                .local_addresses
                                .iter()
                                .filter(family)
                                .copied()
                                .collect();
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
                    let local = if mode == Mode::Nat { c.client } else { src };
                    self.learn(conn, at, dst, local, queue);
                }
            }
        }
        if let L4Info::Tcp(t) = &net.l4 {
            if self.checks.toa {
                self.check_toa(conn, direction, at, t, record);
            }
        }
    }

    /// Records a new connection's real server and local endpoint, checking that no
    /// other live FULLNAT connection uses the same (local, RS) pair and that the
    /// scheduler's pick is the expected one (Maglev, sh).
    fn learn(&mut self, conn: usize, at: PacketRef, rs: Endpoint, local: Endpoint, queue: u16) {
        let proto = self.conns[conn].proto;
        let fullnat = self.services[self.conns[conn].service].mode == Mode::Fullnat;
        if let Some(other) = self.by_reply.get(proto, rs, local) {
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
        let worker = self.worker_of(queue);
        let c = &mut self.conns[conn];
        c.rs = Some(rs);
        c.local = Some(local);
        c.sched_worker = Some(worker);
        let live = !self.conns[conn].closed;
        self.by_reply.insert(live, proto, rs, local, conn);
        if self.checks.distribution {
            self.check_pick(conn, at, rs);
        }
    }

    /// Maglev: the server is the table's pick for the client → VIP tuple. sh: the same
    /// server as the client's first connection to the service.
    fn check_pick(&mut self, conn: usize, at: PacketRef, rs: Endpoint) {
        let c = self.conns[conn];
        let svc = &self.services[c.service];
        match svc.scheduler {
            Scheduler::Maglev => {
                let Some(table) = &svc.maglev else { return };
                let hash = checks::maglev_flow_hash(
                    c.proto,
                    c.client.addr,
                    c.client.port,
                    c.vip.addr,
                    c.vip.port,
                );
                let Some(&want) = svc.all_real_servers.get(table.pick(hash)) else {
                    return;
                };
                if want != rs {
                    let expected = format!(
                        "{want} (slot {} of the {}-slot Maglev table for flow hash {hash:#018x})",
                        table.slot(hash),
                        table.size()
                    );
                    self.push(
                        Check::Distribution,
                        at,
                        "maglev.rs",
                        expected,
                        rs.to_string(),
                    );
                }
            }
            Scheduler::Sh => match self.sh_first.get(&(c.service, c.client.addr)) {
                Some(&(first, other)) if first != rs => {
                    let expected = format!(
                        "{first} (the server of {}, same client address)",
                        self.conns[other].name()
                    );
                    self.push(Check::Distribution, at, "sh.rs", expected, rs.to_string());
                }
                Some(_) => {}
                None => {
                    self.sh_first.insert((c.service, c.client.addr), (rs, conn));
                }
            },
            _ => {}
        }
    }

    /// TOA and the other TCP options of a forwarded segment (see the module
    /// documentation).
    fn check_toa(
        &mut self,
        conn: usize,
        direction: Direction,
        at: PacketRef,
        t: &TcpInfo<'_>,
        record: &InputRecord,
    ) {
        let c = &self.conns[conn];
        let (service, rs, client) = (c.service, c.rs, c.client);
        let svc = &self.services[service];
        let same_family = rs.is_some_and(|rs| rs.addr.is_ipv4() == client.addr.is_ipv4());
        let toa_on = svc.toa && same_family;
        let toa_len = if client.addr.is_ipv4() {
            checks::TOA_LEN_V4
        } else {
            checks::TOA_LEN_V6
        };
        // What a correct balancer does, recognised without walking the options.
        let raw_in = record.options.as_slice();
        let syn_ack = t.flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN | TCP_ACK;
        match direction {
            Direction::In if record.toa != ToaPlan::Wanted && t.options == raw_in => return,
            Direction::In if record.toa == ToaPlan::Wanted && toa_on => {
                let want = checks::toa_option(client.addr, client.port);
                let want = want.as_slice();
                if t.options.len() == want.len() + raw_in.len()
                    && t.options.starts_with(want)
                    && t.options.ends_with(raw_in)
                {
                    return;
                }
            }
            Direction::Out if !(svc.toa && same_family && syn_ack) && t.options == raw_in => return,
            _ => {}
        }
        let Some(out) = OptionBytes::significant(t.options) else {
            self.push(
                Check::Toa,
                at,
                "tcp.options",
                "a well-formed option list".to_owned(),
                hex(t.options),
            );
            return;
        };
        let input = OptionBytes::significant(record.options.as_slice());
        let has_toa = |o: &[u8]| {
            checks::tcp_options(o)
                .filter_map(Result::ok)
                .any(|o| o.kind == TOA_KIND)
        };
        let toa_in_input = has_toa(record.options.as_slice());
        let first_toa = checks::tcp_options(t.options)
            .filter_map(Result::ok)
            .find(|o| o.kind == TOA_KIND);
        match direction {
            Direction::In => {
                let plan = match (record.toa, input) {
                    (ToaPlan::Wanted, _) if !toa_on => ToaPlan::Not(
                        "NAT64: the real server's address family differs from the client's",
                    ),
                    (ToaPlan::Wanted, Some(i))
                        if (i.as_slice().len() + toa_len).div_ceil(4) * 4 > MAX_TCP_OPTIONS =>
                    {
                        ToaPlan::Not(
                            "no room: the options other than NOPs leave less than its length",
                        )
                    }
                    (p, _) => p,
                };
                match plan {
                    ToaPlan::Wanted => {
                        let want = checks::toa_option(client.addr, client.port);
                        match first_toa {
                            None => self.push(
                                Check::Toa,
                                at,
                                "tcp.options.toa",
                                format!("TOA {want} (client {})", client),
                                format!("no TOA (options {})", hex(t.options)),
                            ),
                            Some(o) if o.offset != 0 => self.push(
                                Check::Toa,
                                at,
                                "tcp.options.toa.position",
                                "the first option, right after the 20-byte header".to_owned(),
                                format!("option byte {}", o.offset),
                            ),
                            Some(o) => self.expect_toa_content(at, want.as_slice(), o.bytes),
                        }
                    }
                    ToaPlan::Not(why) => {
                        if let Some(o) = first_toa.filter(|_| !toa_in_input) {
                            self.push(
                                Check::Toa,
                                at,
                                "tcp.options.toa",
                                format!("no TOA ({why})"),
                                format!("TOA {}", hex(o.bytes)),
                            );
                        }
                    }
                    ToaPlan::Off => {
                        if let Some(o) = first_toa.filter(|_| !toa_in_input) {
                            self.push(
                                Check::Toa,
                                at,
                                "tcp.options.toa",
                                "no TOA (not a TOA service's client → server segment)".to_owned(),
                                format!("TOA {}", hex(o.bytes)),
                            );
                        }
                    }
                }
                if let Some(i) = input.filter(|i| *i != out) {
                    self.push(
                        Check::Toa,
                        at,
                        "tcp.options",
                        format!("{i} (the input's options other than NOPs and TOA)"),
                        out.to_string(),
                    );
                }
            }
            Direction::Out => {
                if let Some(o) = first_toa.filter(|_| !toa_in_input) {
                    self.push(
                        Check::Toa,
                        at,
                        "tcp.options.toa",
                        "no TOA towards the client".to_owned(),
                        format!("TOA {}", hex(o.bytes)),
                    );
                }
                let Some(mut expected) = input else { return };
                let mut lowered = None;
                if toa_on && syn_ack {
                    if let Some(mss) = expected.mss() {
                        let new = mss.saturating_sub(toa_len as u16);
                        expected = expected.with_mss(new);
                        lowered = Some((mss, new));
                    }
                }
                if expected == out {
                    return;
                }
                match (out.mss(), expected.mss()) {
                    (Some(got), Some(want)) if got != want && out.with_mss(want) == expected => {
                        let why = match lowered {
                            Some((mss, _)) => {
                                format!("{want} (the server's {mss} − {toa_len} for TOA)")
                            }
                            None => format!("{want} (the server's, unchanged)"),
                        };
                        self.push(Check::Toa, at, "tcp.options.mss", why, got.to_string());
                    }
                    _ => self.push(
                        Check::Toa,
                        at,
                        "tcp.options",
                        format!("{expected} (the input's options other than NOPs and TOA)"),
                        out.to_string(),
                    ),
                }
            }
        }
    }

    /// Compares a TOA option with the expected one, field by field.
    fn expect_toa_content(&mut self, at: PacketRef, want: &[u8], got: &[u8]) {
        if got.get(1) != want.get(1) {
            self.push(
                Check::Toa,
                at,
                "tcp.options.toa.len",
                want.get(1).map_or(0, |&l| l).to_string(),
                got.get(1).map_or(0, |&l| l).to_string(),
            );
            return;
        }
        let port = |o: &[u8]| o.get(2..4).map_or(0, |p| u16::from_be_bytes([p[0], p[1]]));
        if port(got) != port(want) {
            self.push(
                Check::Toa,
                at,
                "tcp.options.toa.port",
                port(want).to_string(),
                port(got).to_string(),
            );
        }
        let addr = |o: &[u8]| -> String {
            match o.get(4..) {
                Some(a) if a.len() == 4 => {
                    IpAddr::from(<[u8; 4]>::try_from(a).unwrap_or_default()).to_string()
                }
                Some(a) if a.len() == 16 => {
                    IpAddr::from(<[u8; 16]>::try_from(a).unwrap_or_default()).to_string()
                }
                _ => hex(o),
            }
        };
        if got.get(4..) != want.get(4..) {
            self.push(
                Check::Toa,
                at,
                "tcp.options.toa.addr",
                addr(want),
                addr(got),
            );
        }
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
        let c = self.conns[conn];
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

    /// The first output of a connection goes to one of its service's real servers that
    /// take new connections.
    fn expect_real_server(&mut self, at: PacketRef, side: &str, service: usize, got: Endpoint) {
        let candidates = &self.services[service].real_servers;
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

/// Whether a client → server segment of a TOA service gets TOA, from what the balancer
/// has seen of the connection so far.
fn toa_plan(c: &Conn, t: &TcpInfo<'_>) -> ToaPlan {
    if t.flags & TCP_SYN != 0 {
        return ToaPlan::Not("a SYN");
    }
    if t.flags & TCP_RST != 0 {
        return ToaPlan::Not("an RST");
    }
    if t.flags & TCP_ACK == 0 {
        return ToaPlan::Not("no ACK flag");
    }
    let Some(isn) = c.rs_isn else {
        return ToaPlan::Not("the server's SYN-ACK has not been seen");
    };
    if c.rs_sent_data {
        return ToaPlan::Not("the server has sent data");
    }
    if t.ack_no != isn.wrapping_add(1) {
        return ToaPlan::Not("the ACK number is not the server's ISN + 1");
    }
    ToaPlan::Wanted
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let names: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", names.join(", "))
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "none".to_owned();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// What survives any rewrite — protocol, TCP flags or ICMP type/code, L4 payload (its
/// [`checks::payload_hash`], found by the packet's scan) — as a 64-bit hash.
fn fingerprint(info: &PacketInfo<'_>, scan: Option<&checks::Scan>) -> Option<u64> {
    let net = info.net.as_ref()?;
    let payload_hash = scan?.payload_hash;
    let marks = match &net.l4 {
        L4Info::Tcp(t) => u16::from(t.flags),
        L4Info::Udp { .. } => 0,
        L4Info::Icmp(i) => u16::from_be_bytes([i.icmp_type, i.code]),
        L4Info::Other => return None,
    };
    let payload = info.l4_payload();
    let mut h = FoldHasher(0x243f_6a88_85a3_08d3);
    h.write_u64(u64::from(net.proto) | u64::from(marks) << 8 | (payload.len() as u64) << 24);
    h.write_u64(payload_hash);
    let x = h.finish();
    Some(x ^ (x >> 31))
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
        // Both connections to one server: not round robin, but not what this tests.
        let mut s = scenario();
        s.check.distribution = false;
        let mut c = Checker::new(&s);
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
        let mut s = scenario();
        s.check.distribution = false;
        let mut c = Checker::new(&s);
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

    const TOA_SCENARIO: &str = r#"name = "toa"
input = "none.pcap"
local_addresses = ["192.168.100.1"]

[[service]]
vip = "10.0.0.100:80"
proto = "tcp"
mode = "fullnat"
toa = true

[[service.real_server]]
addr = "192.168.1.10:8080"
"#;

    /// The server's ISN in the TOA tests.
    const ISN: u32 = 0x1000_0000;
    /// MSS 1460.
    const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];
    /// MSS 1452: 1460 less an IPv4 client's TOA.
    const MSS_1452: [u8; 4] = [2, 4, 0x05, 0xac];
    /// TOA for 172.16.0.1:40000.
    const TOA_CLIENT: [u8; 8] = [254, 8, 0x9c, 0x40, 172, 16, 0, 1];

    /// A TCP frame with sequence and acknowledgment numbers and raw options.
    #[allow(clippy::too_many_arguments)]
    fn seg(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        ttl: u8,
        flags: &str,
        (seq, ack): (u32, u32),
        options: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(src, dst, ttl)
            .tcp(sport, dport, seq, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        if flags.contains('P') {
            b = b.psh();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        if !options.is_empty() {
            b = b.options_raw(options).unwrap();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// The balancer's output for the client's handshake-completing ACK, written by hand:
    /// TOA carrying 172.16.0.1:40000 as the only option.
    #[rustfmt::skip]
    fn toa_ack_fixture() -> Vec<u8> {
        let mut f = vec![
            // Ethernet: destination, source, IPv4
            4, 4, 4, 4, 4, 4,  2, 2, 2, 2, 2, 2,  0x08, 0x00,
            // IPv4: IHL 5, total length 48, id 0, DF, TTL 63, TCP, checksum (fixed below)
            0x45, 0, 0, 48,  0, 0, 0x40, 0,  63, 6, 0, 0,
            // 192.168.100.1 → 192.168.1.10
            192, 168, 100, 1,  192, 168, 1, 10,
            // TCP: 2000 → 8080, seq 1001, ack = server ISN + 1
            0x07, 0xd0, 0x1f, 0x90,  0, 0, 0x03, 0xe9,  0x10, 0, 0, 1,
            // data offset 7 (28 bytes), ACK, window 65535, checksum (fixed below), urgent
            0x70, 0x10, 0xff, 0xff,  0, 0, 0, 0,
            // TOA: kind 254, length 8, port 40000, 172.16.0.1
            254, 8, 0x9c, 0x40,  172, 16, 0, 1,
        ];
        checks::fix_checksums(&mut f);
        f
    }

    fn toa_checker() -> Checker {
        Checker::new(&Scenario::parse(TOA_SCENARIO, Path::new("toa.toml")).unwrap())
    }

    /// SYN, SYN-ACK (MSS lowered) and the handshake-completing ACK (with TOA).
    fn toa_handshake(c: &mut Checker) {
        c.observe_input(
            &seg(CLIENT, 40000, VIP, 80, 64, "S", (1000, 0), &MSS_1460, b""),
            0,
        );
        c.observe_output(
            &seg(LIP, 2000, RS, 8080, 63, "S", (1000, 0), &MSS_1460, b""),
            0,
        );
        c.observe_input(
            &seg(RS, 8080, LIP, 2000, 64, "SA", (ISN, 1001), &MSS_1460, b""),
            0,
        );
        c.observe_output(
            &seg(
                VIP,
                80,
                CLIENT,
                40000,
                63,
                "SA",
                (ISN, 1001),
                &MSS_1452,
                b"",
            ),
            0,
        );
        c.observe_input(
            &seg(CLIENT, 40000, VIP, 80, 64, "A", (1001, ISN + 1), &[], b""),
            0,
        );
    }

    #[test]
    fn toa_where_it_belongs_passes() {
        let mut c = toa_checker();
        toa_handshake(&mut c);
        c.observe_output(&toa_ack_fixture(), 0);
        // Data before the server sent any: TOA ahead of the client's timestamps.
        let ts = [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1];
        c.observe_input(
            &seg(
                CLIENT,
                40000,
                VIP,
                80,
                64,
                "PA",
                (1001, ISN + 1),
                &ts,
                b"GET /",
            ),
            0,
        );
        let with_toa = [&TOA_CLIENT[..], &ts[..]].concat();
        c.observe_output(
            &seg(
                LIP,
                2000,
                RS,
                8080,
                63,
                "PA",
                (1001, ISN + 1),
                &with_toa,
                b"GET /",
            ),
            0,
        );
        // The server answers with data; the client's next ACK has no TOA.
        c.observe_input(
            &seg(
                RS,
                8080,
                LIP,
                2000,
                64,
                "PA",
                (ISN + 1, 1006),
                &[],
                b"200 OK",
            ),
            0,
        );
        c.observe_output(
            &seg(
                VIP,
                80,
                CLIENT,
                40000,
                63,
                "PA",
                (ISN + 1, 1006),
                &[],
                b"200 OK",
            ),
            0,
        );
        c.observe_input(
            &seg(CLIENT, 40000, VIP, 80, 64, "A", (1006, ISN + 7), &[], b""),
            0,
        );
        c.observe_output(
            &seg(LIP, 2000, RS, 8080, 63, "A", (1006, ISN + 7), &[], b""),
            0,
        );
        let report = c.finish();
        assert!(report.passed(), "{:#?}", report.failures);
    }

    #[test]
    fn toa_is_skipped_when_the_options_leave_no_room() {
        // Timestamps and three SACK blocks: 36 bytes without the NOPs, no room for 8.
        #[rustfmt::skip]
        let full = [
            1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1,
            1, 1, 5, 26, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6,
        ];
        let mut c = toa_checker();
        toa_handshake(&mut c);
        c.observe_output(&toa_ack_fixture(), 0);
        c.observe_input(
            &seg(
                CLIENT,
                40000,
                VIP,
                80,
                64,
                "PA",
                (1001, ISN + 1),
                &full,
                b"x",
            ),
            0,
        );
        c.observe_output(
            &seg(LIP, 2000, RS, 8080, 63, "PA", (1001, ISN + 1), &full, b"x"),
            0,
        );
        let report = c.finish();
        assert!(report.passed(), "{:#?}", report.failures);
    }

    /// Each wrong output of the handshake-completing ACK or around it, and the field
    /// that must name it.
    #[rstest]
    #[case::missing(seg(LIP, 2000, RS, 8080, 63, "A", (1001, ISN + 1), &[], b""), "tcp.options.toa")]
    #[case::wrong_address(
        seg(LIP, 2000, RS, 8080, 63, "A", (1001, ISN + 1), &[254, 8, 0x9c, 0x40, 172, 16, 0, 9], b""),
        "tcp.options.toa.addr"
    )]
    #[case::wrong_port(
        seg(LIP, 2000, RS, 8080, 63, "A", (1001, ISN + 1), &[254, 8, 0x9c, 0x41, 172, 16, 0, 1], b""),
        "tcp.options.toa.port"
    )]
    #[case::not_first(
        seg(LIP, 2000, RS, 8080, 63, "A", (1001, ISN + 1), &[1, 1, 1, 1, 254, 8, 0x9c, 0x40, 172, 16, 0, 1], b""),
        "tcp.options.toa.position"
    )]
    fn a_wrong_toa_on_the_ack_fails(#[case] output: Vec<u8>, #[case] field: &str) {
        let mut c = toa_checker();
        toa_handshake(&mut c);
        c.observe_output(&output, 0);
        let report = c.finish();
        assert_eq!(failures(&report), vec![(Check::Toa, field.to_owned())]);
        assert_eq!(report.mismatches.len(), 1);
    }

    #[test]
    fn toa_on_the_syn_fails() {
        let mut c = toa_checker();
        c.observe_input(
            &seg(CLIENT, 40000, VIP, 80, 64, "S", (1000, 0), &MSS_1460, b""),
            0,
        );
        let with_toa = [&TOA_CLIENT[..], &MSS_1460[..]].concat();
        c.observe_output(
            &seg(LIP, 2000, RS, 8080, 63, "S", (1000, 0), &with_toa, b""),
            0,
        );
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Toa, "tcp.options.toa".to_owned())]
        );
        assert!(
            report.failures[0].expected.contains("a SYN"),
            "{}",
            report.failures[0]
        );
    }

    #[test]
    fn toa_after_the_server_sent_data_fails() {
        let mut c = toa_checker();
        toa_handshake(&mut c);
        c.observe_output(&toa_ack_fixture(), 0);
        c.observe_input(
            &seg(
                RS,
                8080,
                LIP,
                2000,
                64,
                "PA",
                (ISN + 1, 1001),
                &[],
                b"hello",
            ),
            0,
        );
        c.observe_output(
            &seg(
                VIP,
                80,
                CLIENT,
                40000,
                63,
                "PA",
                (ISN + 1, 1001),
                &[],
                b"hello",
            ),
            0,
        );
        // Still acknowledging ISN + 1 (the data not yet), but the server has spoken.
        c.observe_input(
            &seg(
                CLIENT,
                40000,
                VIP,
                80,
                64,
                "PA",
                (1001, ISN + 1),
                &[],
                b"more",
            ),
            0,
        );
        c.observe_output(
            &seg(
                LIP,
                2000,
                RS,
                8080,
                63,
                "PA",
                (1001, ISN + 1),
                &TOA_CLIENT,
                b"more",
            ),
            0,
        );
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Toa, "tcp.options.toa".to_owned())]
        );
        assert!(
            report.failures[0].expected.contains("sent data"),
            "{}",
            report.failures[0]
        );
    }

    #[test]
    fn an_unlowered_mss_and_a_dropped_option_fail() {
        let mut c = toa_checker();
        c.observe_input(
            &seg(CLIENT, 40000, VIP, 80, 64, "S", (1000, 0), &MSS_1460, b""),
            0,
        );
        // The SYN loses its MSS on the way to the server.
        c.observe_output(&seg(LIP, 2000, RS, 8080, 63, "S", (1000, 0), &[], b""), 0);
        c.observe_input(
            &seg(RS, 8080, LIP, 2000, 64, "SA", (ISN, 1001), &MSS_1460, b""),
            0,
        );
        // The SYN-ACK keeps the server's MSS: no room left for TOA in full segments.
        c.observe_output(
            &seg(
                VIP,
                80,
                CLIENT,
                40000,
                63,
                "SA",
                (ISN, 1001),
                &MSS_1460,
                b"",
            ),
            0,
        );
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![
                (Check::Toa, "tcp.options".to_owned()),
                (Check::Toa, "tcp.options.mss".to_owned())
            ]
        );
        assert_eq!(report.failures[1].got, "1460");
    }

    #[test]
    fn toa_on_a_service_without_it_fails() {
        let mut c = Checker::new(&scenario());
        good_session(&mut c);
        c.observe_input(&tcp(CLIENT, 40000, VIP, 80, 64, "A", b""), 0);
        let mut out = seg(LIP, 2000, RS, 8080, 63, "A", (1000, 1), &TOA_CLIENT, b"");
        checks::fix_checksums(&mut out);
        c.observe_output(&out, 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Toa, "tcp.options.toa".to_owned())]
        );
    }

    /// Connections of client ports 41000.. on worker 0 to the given real servers (local
    /// ports 3000..).
    fn connections_to(c: &mut Checker, servers: &[[u8; 4]]) {
        for (i, rs) in servers.iter().enumerate() {
            let port = 41000 + i as u16;
            let local = 3000 + i as u16;
            c.observe_input(&tcp(CLIENT, port, VIP, 80, 64, "S", b""), 0);
            c.observe_output(&tcp(LIP, local, *rs, 8080, 63, "S", b""), 0);
        }
    }

    #[test]
    fn round_robin_passes_and_a_skewed_one_fails() {
        let mut c = Checker::new(&scenario());
        connections_to(&mut c, &[RS, RS2, RS, RS2, RS]);
        let report = c.finish();
        assert!(report.passed(), "{:#?}", report.failures);

        let mut c = Checker::new(&scenario());
        connections_to(&mut c, &[RS, RS2, RS, RS, RS]);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(
                Check::Distribution,
                "rr.counts[10.0.0.100:80 worker 0]".to_owned()
            )]
        );
        let f = &report.failures[0];
        assert!(
            f.got.contains("192.168.1.10:8080 4") && f.got.contains("192.168.1.11:8080 1"),
            "{f}"
        );
        assert!(f.expected.contains("at most 1"), "{f}");
    }

    #[test]
    fn round_robin_counts_each_worker_on_its_own() {
        // Worker 0 sends two connections to RS, worker 1 two to RS2: each worker is
        // unbalanced, the total is not.
        let mut c = Checker::new(&scenario());
        for (i, (rs, queue)) in [(RS, 0), (RS, 0), (RS2, 1), (RS2, 1)]
            .into_iter()
            .enumerate()
        {
            let port = 41000 + i as u16;
            c.observe_input(&tcp(CLIENT, port, VIP, 80, 64, "S", b""), queue);
            c.observe_output(&tcp(LIP, 3000 + i as u16, rs, 8080, 63, "S", b""), queue);
        }
        let report = c.finish();
        assert_eq!(report.failures_of(Check::Distribution).len(), 2, "{report}");
    }

    #[test]
    fn maglev_picks_are_the_tables() {
        let text = SCENARIO.replacen(
            "mode = \"fullnat\"",
            "mode = \"fullnat\"\nscheduler = \"maglev\"",
            1,
        );
        let scenario = Scenario::parse(&text, Path::new("m.toml")).unwrap();
        let backends = [
            ("192.168.1.10:8080".parse().unwrap(), 1),
            ("192.168.1.11:8080".parse().unwrap(), 1),
        ];
        let table = MaglevTable::new(MAGLEV_TABLE_SIZE, &backends).unwrap();
        let servers = [RS, RS2];
        let mut c = Checker::new(&scenario);
        let mut wrong = 0;
        for i in 0..20u16 {
            let port = 41000 + i;
            let hash = checks::maglev_flow_hash(
                PROTO_TCP,
                IpAddr::from(CLIENT),
                port,
                IpAddr::from(VIP),
                80,
            );
            let mut rs = servers[table.pick(hash)];
            if i % 7 == 3 {
                rs = servers[1 - table.pick(hash)];
                wrong += 1;
            }
            c.observe_input(&tcp(CLIENT, port, VIP, 80, 64, "S", b""), 0);
            c.observe_output(&tcp(LIP, 3000 + i, rs, 8080, 63, "S", b""), 0);
        }
        let report = c.finish();
        let fields = failures(&report);
        assert_eq!(fields.len(), wrong, "{report}");
        assert!(fields
            .iter()
            .all(|f| *f == (Check::Distribution, "maglev.rs".to_owned())));
        assert_eq!(report.mismatches.len(), wrong);
    }

    #[test]
    fn source_hashing_keeps_a_client_on_one_server() {
        let text = SCENARIO.replacen(
            "mode = \"fullnat\"",
            "mode = \"fullnat\"\nscheduler = \"sh\"",
            1,
        );
        let scenario = Scenario::parse(&text, Path::new("sh.toml")).unwrap();
        let mut c = Checker::new(&scenario);
        connections_to(&mut c, &[RS2, RS2, RS]);
        c.observe_input(&tcp(CLIENT2, 41000, VIP, 80, 64, "S", b""), 0);
        c.observe_output(&tcp(LIP, 3100, RS, 8080, 63, "S", b""), 0);
        let report = c.finish();
        assert_eq!(
            failures(&report),
            vec![(Check::Distribution, "sh.rs".to_owned())]
        );
        assert_eq!(report.failures[0].packet, PacketRef::Output(2));
    }

    #[test]
    fn drop_reason_names_round_trip() {
        for r in DropReason::ALL {
            assert_eq!(r.name().parse::<DropReason>(), Ok(r));
        }
    }
}
