//! Fault injection: a switch that makes the forwarder deliberately wrong in one
//! observable way, so that a test can prove the correctness harness notices.
//!
//! Off unless the configuration has a `[fault]` section. When it is on, every worker runs
//! the packet through the ordinary path first and then hands the verdict and the
//! rewritten frame to [`Fault::inject`], which changes one packet in every `every`
//! eligible ones (counted per worker, so the choice is deterministic for a given input
//! order):
//!
//! | kind | eligible packets | what goes wrong |
//! | --- | --- | --- |
//! | `wrong_local_port` | client → real server packets of an existing FULLNAT connection | the local port is off by one (checksums kept right) |
//! | `bad_checksum` | TCP/UDP packets to transmit | the TCP/UDP checksum is wrong |
//! | `wrong_worker` | TCP/UDP packets of an existing connection, with two workers or more | the packet, already rewritten, is handed to the next worker, which transmits it |
//! | `drop_packet` | packets to transmit | dropped instead (counted as `unsupported`) |
//! | `wrong_rs` | packets of an existing connection to a real server that has another of its protocol and family configured | sent to another configured real server of the same protocol and family |
//! | `reused_local_port` | new FULLNAT connections with an earlier one of this worker to the same real server (the last 16 are remembered) | the newest earlier one's local address and port are used again, for all the new connection's client → server packets |
//!
//! Each changed, moved or dropped packet adds one to `Counters::faults_injected`. The
//! hook costs the normal path one test of an `Option`; everything here is cold, and it
//! allocates nothing per packet (fixed arrays; the real-server list is built once).
//!
//! `wrong_worker` needs no shared state: the first worker returns
//! [`Verdict::Redirect`] with the rewritten frame, and the worker that receives it
//! recognises a frame whose source MAC is one of the forwarder's own ports (its ordinary
//! path drops such a frame, which is not addressed to the forwarder) and transmits it
//! unchanged by that port. The fault is visible as a connection whose packets leave by two
//! workers' queues. A port with checksum offload recomputes checksums in hardware, which
//! hides `bad_checksum`; use it on ports without offload.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use l4lab_wire::{IpProtocol, Ipv4Packet};

use crate::dataplane::config::{PortConfig, ServiceConfig};
use crate::dataplane::counters::Counters;
use crate::dataplane::frame::Frame;
use crate::dataplane::parse::{self, rd16, wr16, ETH_IPV4, ETH_IPV6, L3, L4};
use crate::dataplane::rewrite::{self, Nat};
use crate::dataplane::types::WorkerId;
use crate::dataplane::verdict::{DropReason, Verdict};

/// Which fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A later packet of a FULLNAT connection leaves with another local port.
    WrongLocalPort,
    /// A transmitted packet has a wrong TCP/UDP checksum.
    BadChecksum,
    /// A packet of a connection is transmitted by a worker that does not own it.
    WrongWorker,
    /// A packet that should be forwarded is dropped.
    DropPacket,
    /// A later packet of a connection goes to another real server.
    WrongRs,
    /// Two live FULLNAT connections to one real server share a local address and port.
    ReusedLocalPort,
}

impl FaultKind {
    /// Every kind, in documentation order.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::WrongLocalPort,
        FaultKind::BadChecksum,
        FaultKind::WrongWorker,
        FaultKind::DropPacket,
        FaultKind::WrongRs,
        FaultKind::ReusedLocalPort,
    ];

    /// The kind's name in the configuration, stats and metrics.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::WrongLocalPort => "wrong_local_port",
            FaultKind::BadChecksum => "bad_checksum",
            FaultKind::WrongWorker => "wrong_worker",
            FaultKind::DropPacket => "drop_packet",
            FaultKind::WrongRs => "wrong_rs",
            FaultKind::ReusedLocalPort => "reused_local_port",
        }
    }

    /// `wrong_local_port, bad_checksum, …` for error messages.
    pub fn names() -> String {
        FaultKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultKind, String> {
        FaultKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("expected one of {}, got {s:?}", FaultKind::names()))
    }
}

/// A fault and how often it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultConfig {
    /// The fault.
    pub kind: FaultKind,
    /// It strikes the `every`-th eligible packet of each worker, then every `every`-th
    /// after it (at least 1: every eligible packet).
    pub every: u32,
}

impl FaultConfig {
    /// `kind` on every eligible packet.
    pub fn new(kind: FaultKind) -> FaultConfig {
        FaultConfig { kind, every: 1 }
    }
}

impl fmt::Display for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.every)
    }
}

impl FromStr for FaultConfig {
    type Err = String;

    /// `KIND` or `KIND:EVERY`, e.g. `bad_checksum:10`.
    fn from_str(s: &str) -> Result<FaultConfig, String> {
        let (kind, every) = match s.split_once(':') {
            Some((k, e)) => {
                let every = e
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("expected EVERY >= 1 after ':', got {e:?}"))?;
                (k, every)
            }
            None => (s, 1),
        };
        Ok(FaultConfig {
            kind: kind.parse()?,
            every,
        })
    }
}

/// What of its worker the injector reads.
#[derive(Debug, Clone, Copy)]
pub struct FaultCtx<'a> {
    /// The worker's ports (MACs, checksum offloads).
    pub ports: &'a [PortConfig],
    /// FULLNAT local addresses.
    pub laddrs: &'a [IpAddr],
    /// This worker.
    pub worker: WorkerId,
    /// Number of workers.
    pub workers: u16,
}

/// Slots of the recent-connection and reused-port memories.
const MEMORY: usize = 16;

/// A FULLNAT connection as its client → real server packets show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leg {
    proto: u8,
    local: SocketAddr,
    rs: SocketAddr,
}

/// A connection given another connection's local address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reused {
    leg: Leg,
    local: SocketAddr,
}

/// One worker's fault injector. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Fault {
    cfg: FaultConfig,
    /// Eligible packets since the fault last struck.
    seen: u32,
    /// `Counters::conns_created` after the previous packet: a packet that raises it
    /// opened its connection.
    conns_created: u64,
    /// Real servers of every service at start (protocol number, address), for `wrong_rs`.
    real_servers: Vec<(u8, SocketAddr)>,
    /// Recently opened FULLNAT connections, for `reused_local_port`.
    recent: [Option<Leg>; MEMORY],
    /// Connections given a reused local port, so that all their packets carry it.
    reused: [Option<Reused>; MEMORY],
    next_recent: usize,
    next_reused: usize,
}

impl Fault {
    /// An injector for `cfg`; `services` gives the real servers `wrong_rs` may pick.
    pub fn new(cfg: FaultConfig, services: &[ServiceConfig]) -> Fault {
        Fault {
            cfg: FaultConfig {
                every: cfg.every.max(1),
                ..cfg
            },
            seen: 0,
            conns_created: 0,
            real_servers: services
                .iter()
                .flat_map(|s| {
                    let proto = s.key.proto.number();
                    s.real_servers.iter().map(move |r| (proto, r.addr))
                })
                .collect(),
            recent: [None; MEMORY],
            reused: [None; MEMORY],
            next_recent: 0,
            next_reused: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> FaultConfig {
        self.cfg
    }

    /// Called after the ordinary path with its verdict `v` and the frame as it left it;
    /// returns the verdict to act on (and may have changed the frame).
    #[cold]
    #[inline(never)]
    pub fn inject(
        &mut self,
        v: Verdict,
        f: &mut Frame<'_>,
        ctx: &FaultCtx<'_>,
        counters: &mut Counters,
    ) -> Verdict {
        let opened = counters.conns_created != self.conns_created;
        self.conns_created = counters.conns_created;
        let (out, struck) = self.strike(v, f, ctx, opened);
        if struck {
            counters.faults_injected += 1;
        }
        out
    }

    /// Counts an eligible packet; true when it is the one to strike.
    fn due(&mut self) -> bool {
        self.seen += 1;
        if self.seen >= self.cfg.every {
            self.seen = 0;
            true
        } else {
            false
        }
    }

    fn strike(
        &mut self,
        v: Verdict,
        f: &mut Frame<'_>,
        ctx: &FaultCtx<'_>,
        opened: bool,
    ) -> (Verdict, bool) {
        let Verdict::Tx { port } = v else {
            if self.cfg.kind == FaultKind::WrongWorker && matches!(v, Verdict::Drop(_)) {
                // Handed over by the worker that processed it: send it as it is.
                if let Some(out) = own_port(f.data(), ctx.ports) {
                    return (Verdict::Tx { port: out }, false);
                }
            }
            return (v, false);
        };
        let caps = ctx
            .ports
            .get(usize::from(port))
            .map(|p| p.csum)
            .unwrap_or_default();
        let Some((l3, l4)) = parse_out(f.data()) else {
            if self.cfg.kind == FaultKind::DropPacket && self.due() {
                return (Verdict::Drop(DropReason::FaultInjected), true);
            }
            return (v, false);
        };
        let src = SocketAddr::new(l3.src, l4.sport);
        let dst = SocketAddr::new(l3.dst, l4.dport);
        let from_laddr = ctx.laddrs.contains(&l3.src);
        let d = f.data_mut();
        let kind = self.cfg.kind;
        match kind {
            FaultKind::DropPacket if self.due() => (Verdict::Drop(DropReason::FaultInjected), true),
            FaultKind::BadChecksum if self.due() => {
                let at = l3.l4 + rewrite::l4_csum_off(l3.proto);
                let old = rd16(d, at);
                let mut bad = old ^ 0x00ff;
                if l3.proto == IpProtocol::UDP.0 && bad == 0 {
                    // 0 means "no checksum" in IPv4 UDP, which would be right.
                    bad = 0x5555;
                }
                wr16(d, at, bad);
                (v, true)
            }
            FaultKind::WrongLocalPort if from_laddr && !opened && self.due() => {
                let lport = match l4.sport.wrapping_add(1) {
                    0 => 1,
                    p => p,
                };
                let n = Nat {
                    src: l3.src,
                    sport: lport,
                    dst: l3.dst,
                    dport: l4.dport,
                };
                rewrite::rewrite_same_family(d, &l3, l4.sport, l4.dport, &n, 0, caps, false);
                (v, true)
            }
            FaultKind::WrongWorker if !opened && ctx.workers > 1 && self.due() => {
                (Verdict::Redirect((ctx.worker + 1) % ctx.workers), true)
            }
            FaultKind::WrongRs if !opened => {
                let Some(other) = self.other_rs(l3.proto, dst) else {
                    return (v, false);
                };
                if !self.due() {
                    return (v, false);
                }
                let n = Nat {
                    src: l3.src,
                    sport: l4.sport,
                    dst: other.ip(),
                    dport: other.port(),
                };
                rewrite::rewrite_same_family(d, &l3, l4.sport, l4.dport, &n, 0, caps, false);
                (v, true)
            }
            FaultKind::ReusedLocalPort if from_laddr => {
                let leg = Leg {
                    proto: l3.proto,
                    local: src,
                    rs: dst,
                };
                let local = if opened {
                    self.reuse_for(leg)
                } else {
                    self.reused
                        .iter()
                        .flatten()
                        .find(|r| r.leg == leg)
                        .map(|r| r.local)
                };
                match local {
                    Some(local) => {
                        let n = Nat {
                            src: local.ip(),
                            sport: local.port(),
                            dst: l3.dst,
                            dport: l4.dport,
                        };
                        rewrite::rewrite_same_family(
                            d, &l3, l4.sport, l4.dport, &n, 0, caps, false,
                        );
                        (v, true)
                    }
                    None => (v, false),
                }
            }
            _ => (v, false),
        }
    }

    /// The real server after `rs` in the list with the same protocol and family and
    /// another address, if `rs` is one.
    fn other_rs(&self, proto: u8, rs: SocketAddr) -> Option<SocketAddr> {
        let list = &self.real_servers;
        let at = list.iter().position(|&(p, a)| p == proto && a == rs)?;
        (1..list.len())
            .map(|i| list[(at + i) % list.len()])
            .find(|&(p, a)| p == proto && a != rs && a.is_ipv4() == rs.is_ipv4())
            .map(|(_, a)| a)
    }

    /// For a connection just opened: the local endpoint of the most recent connection to
    /// the same real server when the fault strikes (remembering the reuse), else `None`
    /// (remembering the connection as a candidate).
    fn reuse_for(&mut self, leg: Leg) -> Option<SocketAddr> {
        let candidate = (1..=MEMORY)
            .map(|back| (self.next_recent + MEMORY - back) % MEMORY)
            .filter_map(|i| self.recent[i])
            .find(|r| r.proto == leg.proto && r.rs == leg.rs && r.local != leg.local);
        if let Some(c) = candidate {
            if self.due() {
                self.reused[self.next_reused] = Some(Reused {
                    leg,
                    local: c.local,
                });
                self.next_reused = (self.next_reused + 1) % MEMORY;
                return Some(c.local);
            }
        }
        self.recent[self.next_recent] = Some(leg);
        self.next_recent = (self.next_recent + 1) % MEMORY;
        None
    }
}

/// The port whose MAC is the frame's source MAC: a frame the forwarder itself built.
fn own_port(d: &[u8], ports: &[PortConfig]) -> Option<u16> {
    let src = d.get(6..12)?;
    let dst = d.get(0..6)?;
    ports
        .iter()
        .position(|p| p.mac[..] == *src && p.mac[..] != *dst)
        .and_then(|i| u16::try_from(i).ok())
}

/// The IP and TCP/UDP headers of a frame about to leave. Unlike the receive path it does
/// not check the IPv4 header checksum: with offload the port fills it in.
fn parse_out(d: &[u8]) -> Option<(L3, L4)> {
    let l2 = parse::parse_l2(d).ok()?;
    let l3 = match l2.ethertype {
        ETH_IPV4 => {
            let ip = Ipv4Packet::new_checked(d.get(l2.len..)?).ok()?;
            L3 {
                l3: l2.len,
                v6: false,
                l4: l2.len + ip.header_len(),
                end: l2.len + usize::from(ip.total_len()),
                proto: ip.protocol().0,
                src: IpAddr::V4(ip.src_addr()),
                dst: IpAddr::V4(ip.dst_addr()),
                ttl: ip.ttl(),
                fragment: ip.is_fragment(),
            }
        }
        ETH_IPV6 => parse::parse_ipv6(d, l2.len).ok()?,
        _ => return None,
    };
    if l3.fragment || (l3.proto != IpProtocol::TCP.0 && l3.proto != IpProtocol::UDP.0) {
        return None;
    }
    let l4 = parse::parse_l4(d, &l3).ok()?;
    Some((l3, l4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::config::{Mode, RealServerConfig, ServiceKey};
    use crate::dataplane::sched::SchedKind;
    use crate::dataplane::types::Proto;
    use l4lab_wire::{checksum, ChecksumCaps};

    const LB: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
    const GW: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn ports() -> Vec<PortConfig> {
        vec![PortConfig {
            mac: LB,
            gateway_mac: GW,
            csum: ChecksumCaps::NONE,
        }]
    }

    fn services() -> Vec<ServiceConfig> {
        let rs = |a: &str| RealServerConfig {
            addr: a.parse().unwrap(),
            weight: 1,
            mac: None,
            port: 0,
        };
        vec![ServiceConfig {
            key: ServiceKey {
                vip: "10.0.0.1".parse().unwrap(),
                vport: 80,
                proto: Proto::Udp,
            },
            mode: Mode::FullNat,
            sched: SchedKind::Rr,
            real_servers: vec![rs("10.0.1.1:8080"), rs("10.0.1.2:8080")],
            toa: false,
            persistence: None,
        }]
    }

    /// An Ethernet + IPv4 + UDP frame from `src` to `dst`, as the forwarder sends it
    /// (source MAC = its port), checksums right.
    #[rustfmt::skip]
    fn udp(src: &str, dst: &str) -> Vec<u8> {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let (IpAddr::V4(sa), IpAddr::V4(da)) = (s.ip(), d.ip()) else { panic!("v4 only") };
        let mut f = Vec::new();
        f.extend_from_slice(&GW);                                   // destination MAC
        f.extend_from_slice(&LB);                                   // source MAC
        f.extend_from_slice(&[0x08, 0x00]);                         // IPv4
        f.extend_from_slice(&[0x45, 0, 0, 32, 0, 0, 0, 0, 63, 17, 0, 0]); // 20 + 8 + 4, UDP
        f.extend_from_slice(&sa.octets());                          // source address
        f.extend_from_slice(&da.octets());                          // destination address
        f.extend_from_slice(&s.port().to_be_bytes());               // source port
        f.extend_from_slice(&d.port().to_be_bytes());               // destination port
        f.extend_from_slice(&[0, 12, 0, 0]);                        // length, checksum
        f.extend_from_slice(b"ping");                               // payload
        let ip = !checksum::data(&f[14..34]);
        f[24..26].copy_from_slice(&ip.to_be_bytes());
        let pseudo = checksum::pseudo_header(s.ip(), d.ip(), IpProtocol::UDP, 12);
        let l4 = checksum::finish(&[pseudo, checksum::data(&f[34..])]);
        f[40..42].copy_from_slice(&l4.to_be_bytes());
        f
    }

    fn valid(f: &[u8]) -> bool {
        let Some((l3, _)) = parse_out(f) else {
            return false;
        };
        let seg = &f[l3.l4..l3.end];
        let pseudo =
            checksum::pseudo_header(l3.src, l3.dst, IpProtocol(l3.proto), seg.len() as u32);
        checksum::data(&f[14..34]) == 0xffff
            && checksum::combine(&[pseudo, checksum::data(seg)]) == 0xffff
    }

    /// Runs `bytes` through `fault` as a transmitted packet; `opened` says whether the
    /// packet opened its connection.
    fn run(fault: &mut Fault, bytes: &mut [u8], opened: bool, worker: u16) -> (Verdict, u64) {
        let ports = ports();
        let laddrs: Vec<IpAddr> = vec!["192.168.100.1".parse().unwrap()];
        let ctx = FaultCtx {
            ports: &ports,
            laddrs: &laddrs,
            worker,
            workers: 2,
        };
        let mut c = Counters::new(1);
        c.conns_created = fault.conns_created + u64::from(opened);
        let len = bytes.len();
        let mut f = Frame::new(bytes, 0, len).unwrap();
        let v = fault.inject(Verdict::Tx { port: 0 }, &mut f, &ctx, &mut c);
        (v, c.faults_injected)
    }

    fn fault(kind: FaultKind, every: u32) -> Fault {
        Fault::new(FaultConfig { kind, every }, &services())
    }

    #[test]
    fn specs_parse_and_print() {
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>(), Ok(k));
            let c: FaultConfig = format!("{k}:7").parse().unwrap();
            assert_eq!(c, FaultConfig { kind: k, every: 7 });
            assert_eq!(c.to_string().parse::<FaultConfig>(), Ok(c));
        }
        assert_eq!(
            "drop_packet".parse::<FaultConfig>(),
            Ok(FaultConfig::new(FaultKind::DropPacket))
        );
        assert!("drop"
            .parse::<FaultConfig>()
            .unwrap_err()
            .contains("bad_checksum"));
        assert!("drop_packet:0".parse::<FaultConfig>().is_err());
        assert!("drop_packet:x".parse::<FaultConfig>().is_err());
    }

    #[test]
    fn strikes_every_nth_eligible_packet() {
        let mut f = fault(FaultKind::DropPacket, 3);
        let verdicts: Vec<Verdict> = (0..6)
            .map(|_| run(&mut f, &mut udp("10.9.0.1:1000", "10.0.0.1:80"), false, 0).0)
            .collect();
        let dropped: Vec<usize> = verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v, Verdict::Drop(_)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(dropped, [2, 5]);
    }

    #[test]
    fn bad_checksum_breaks_only_the_checksum() {
        let mut f = fault(FaultKind::BadChecksum, 1);
        let mut p = udp("192.168.100.1:5000", "10.0.1.1:8080");
        let before = p.clone();
        assert!(valid(&p));
        assert_eq!(run(&mut f, &mut p, true, 0), (Verdict::Tx { port: 0 }, 1));
        assert!(!valid(&p));
        assert_eq!(p[..40], before[..40]);
    }

    #[test]
    fn wrong_local_port_spares_the_first_packet() {
        let mut f = fault(FaultKind::WrongLocalPort, 1);
        let mut first = udp("192.168.100.1:5000", "10.0.1.1:8080");
        assert_eq!(run(&mut f, &mut first, true, 0).1, 0);
        let mut later = udp("192.168.100.1:5000", "10.0.1.1:8080");
        assert_eq!(run(&mut f, &mut later, false, 0).1, 1);
        assert_eq!(rd16(&later, 34), 5001);
        assert!(valid(&later));
        // Replies (not from a local address) are left alone.
        let mut reply = udp("10.0.0.1:80", "10.9.0.1:1000");
        assert_eq!(run(&mut f, &mut reply, false, 0).1, 0);
    }

    #[test]
    fn wrong_rs_picks_another_configured_server() {
        let mut f = fault(FaultKind::WrongRs, 1);
        let mut p = udp("192.168.100.1:5000", "10.0.1.1:8080");
        assert_eq!(run(&mut f, &mut p, false, 0).1, 1);
        assert_eq!(p[30..34], [10, 0, 1, 2]);
        assert!(valid(&p));
        let mut not_rs = udp("10.0.0.1:80", "10.9.0.1:1000");
        assert_eq!(run(&mut f, &mut not_rs, false, 0).1, 0);
    }

    #[test]
    fn reused_local_port_sticks_to_the_connection() {
        let mut f = fault(FaultKind::ReusedLocalPort, 1);
        let mut a = udp("192.168.100.1:5000", "10.0.1.1:8080");
        assert_eq!(run(&mut f, &mut a, true, 0).1, 0);
        // Another real server: no candidate.
        let mut b = udp("192.168.100.1:5001", "10.0.1.2:8080");
        assert_eq!(run(&mut f, &mut b, true, 0).1, 0);
        let mut c = udp("192.168.100.1:5002", "10.0.1.1:8080");
        assert_eq!(run(&mut f, &mut c, true, 0).1, 1);
        assert_eq!(rd16(&c, 34), 5000);
        assert!(valid(&c));
        let mut c2 = udp("192.168.100.1:5002", "10.0.1.1:8080");
        assert_eq!(run(&mut f, &mut c2, false, 0).1, 1);
        assert_eq!(rd16(&c2, 34), 5000);
        let mut a2 = udp("192.168.100.1:5000", "10.0.1.1:8080");
        assert_eq!(run(&mut f, &mut a2, false, 0).1, 0);
    }

    #[test]
    fn wrong_worker_hands_the_rewritten_frame_over() {
        let mut f = fault(FaultKind::WrongWorker, 1);
        let mut p = udp("192.168.100.1:5000", "10.0.1.1:8080");
        assert_eq!(
            run(&mut f, &mut p, true, 1).1,
            0,
            "a new connection's packet stays"
        );
        assert_eq!(run(&mut f, &mut p, false, 1), (Verdict::Redirect(0), 1));
        // The receiving worker's ordinary path drops it (not addressed to it); the fault
        // sends it by the port whose MAC it carries.
        let ports = ports();
        let ctx = FaultCtx {
            ports: &ports,
            laddrs: &[],
            worker: 0,
            workers: 2,
        };
        let mut c = Counters::new(1);
        let len = p.len();
        let mut frame = Frame::new(&mut p, 0, len).unwrap();
        let v = f.inject(
            Verdict::Drop(DropReason::NotForUs),
            &mut frame,
            &ctx,
            &mut c,
        );
        assert_eq!(v, Verdict::Tx { port: 0 });
        assert_eq!(c.faults_injected, 0);
        // A frame from elsewhere stays dropped.
        let mut foreign = udp("10.9.0.1:1000", "10.0.0.1:80");
        foreign[6..12].copy_from_slice(&GW);
        let len = foreign.len();
        let mut frame = Frame::new(&mut foreign, 0, len).unwrap();
        let v = f.inject(
            Verdict::Drop(DropReason::NotForUs),
            &mut frame,
            &ctx,
            &mut c,
        );
        assert_eq!(v, Verdict::Drop(DropReason::NotForUs));
    }
}
