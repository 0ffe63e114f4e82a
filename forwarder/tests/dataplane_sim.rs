//! In-memory simulation of clients ↔ workers ↔ real servers, stepped by a seeded RNG with
//! an injected clock (quinn's `Pair`, smoltcp's netsim). 2–4 workers share one NIC port
//! whose RSS (Toeplitz by `rss::toeplitz_reference`, one RETA) picks the worker of every
//! packet, client side and server side, under the RSS-aware local-port policy.
//!
//! Properties checked on every packet: all checksums verify (etherparse, full
//! recomputation); the reply's rewrite is the exact reverse of the request's; a flow keeps
//! its real server and local address; both directions of every connection reach the same
//! worker; TOA appears exactly where it belongs (client → RS, after the SYN, until the RS
//! sends data) with the right content; the SYN-ACK's MSS is lowered for TOA; no
//! (local address, local port, RS, RS port) is shared by two live connections; counters
//! reconcile; every connection expires and gives its port back.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use forwarder::dataplane::config::{DataplaneConfig, Mode, PortConfig, ServiceConfig, ServiceKey};
use forwarder::dataplane::laddr::{PortPolicy, DEFAULT_MAX_SCAN};
use forwarder::dataplane::rss::{
    hash_input, toeplitz_reference, Family, HashTypes, Reta, RssKey, RssModel, MAX_INPUT_LEN,
};
use forwarder::dataplane::sched::SchedKind;
use forwarder::dataplane::types::{Proto, SECOND};
use forwarder::dataplane::verdict::Verdict;
use forwarder::dataplane::worker::Worker;
use l4lab_wire::ChecksumCaps;
use proptest::prelude::*;

use common::*;

const SVC_TCP4: &str = "10.0.0.100:80";
const SVC_UDP4: &str = "10.0.0.100:53";
const SVC_TCP6: &str = "[2001:db8::100]:443";
const SVC_UDP6: &str = "[2001:db8::100]:53";

fn rss_servers(v6: bool, port: u16) -> Vec<String> {
    (0..3)
        .map(|i| {
            if v6 {
                format!("[2001:db8:1::{}]:{port}", 10 + i)
            } else {
                format!("192.168.1.{}:{port}", 10 + i)
            }
        })
        .collect()
}

fn sim_service(
    vip: &str,
    proto: Proto,
    sched: SchedKind,
    v6: bool,
    rport: u16,
    toa: bool,
) -> ServiceConfig {
    let v = sa(vip);
    ServiceConfig {
        key: ServiceKey {
            vip: v.ip(),
            vport: v.port(),
            proto,
        },
        mode: Mode::FullNat,
        sched,
        real_servers: rss_servers(v6, rport).iter().map(|r| rs(r)).collect(),
        toa,
        persistence: None,
    }
}

fn model(workers: u16) -> RssModel {
    RssModel::new(
        RssKey::microsoft(),
        HashTypes::all(),
        Reta::round_robin(128, workers).expect("reta"),
    )
}

fn sim_config(worker: u16, workers: u16) -> DataplaneConfig {
    let mut cfg = DataplaneConfig::new(worker, workers);
    let port = PortConfig {
        mac: MAC0,
        gateway_mac: GW0,
        csum: ChecksumCaps::NONE,
    };
    cfg.ports = vec![
        port,
        PortConfig {
            mac: MAC1,
            gateway_mac: GW1,
            csum: ChecksumCaps::NONE,
        },
    ];
    cfg.laddrs = vec![ip("192.168.1.1"), ip("192.168.1.2"), ip("2001:db8:1::1")];
    cfg.port_policy = PortPolicy::RssAware {
        model: model(workers),
        owned_queues: vec![worker],
        max_scan: DEFAULT_MAX_SCAN,
    };
    cfg.conn_capacity = 1024;
    cfg.services = vec![
        sim_service(
            SVC_TCP4,
            Proto::Tcp,
            SchedKind::Maglev { table_size: 251 },
            false,
            8080,
            true,
        ),
        sim_service(SVC_UDP4, Proto::Udp, SchedKind::Wrr, false, 5353, false),
        sim_service(SVC_TCP6, Proto::Tcp, SchedKind::Wlc, true, 8443, true),
        sim_service(SVC_UDP6, Proto::Udp, SchedKind::Rr, true, 5353, false),
    ];
    cfg
}

/// The queue (= worker) the NIC delivers a packet of this tuple to, by the bit-by-bit
/// reference Toeplitz hash.
fn rss_worker(m: &RssModel, proto: Proto, src: SocketAddr, dst: SocketAddr) -> usize {
    let fam = if src.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let Some(ty) = m.types.select(proto, fam) else {
        return 0;
    };
    let mut buf = [0u8; MAX_INPUT_LEN];
    let input = hash_input(ty, src.ip(), dst.ip(), src.port(), dst.port(), &mut buf);
    let h = toeplitz_reference(RssKey::microsoft().as_bytes(), input);
    usize::from(m.reta.queue(h))
}

#[derive(Debug, Clone)]
struct FlowSpec {
    v6: bool,
    tcp: bool,
    client: u16,
    sizes: Vec<usize>,
}

fn flow_spec() -> impl Strategy<Value = FlowSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        0u16..400,
        prop::collection::vec(prop_oneof![Just(0usize), 1usize..64, 500usize..1400], 1..4),
    )
        .prop_map(|(v6, tcp, client, sizes)| FlowSpec {
            v6,
            tcp,
            client,
            sizes,
        })
}

#[derive(Debug)]
struct Flow {
    spec: FlowSpec,
    client: SocketAddr,
    vip: SocketAddr,
    step: usize,
    worker: Option<usize>,
    rs: Option<SocketAddr>,
    local: Option<SocketAddr>,
    cseq: u32,
    sisn: u32,
    sseq: u32,
    server_sent: bool,
}

/// What the next step of a flow sends: (from client?, flags, payload size).
fn script(spec: &FlowSpec, step: usize) -> Option<(bool, u8, usize)> {
    if spec.tcp {
        let n = spec.sizes.len();
        match step {
            0 => Some((true, TCP_SYN, 0)),
            1 => Some((false, TCP_SYN | TCP_ACK, 0)),
            2 => Some((true, TCP_ACK, 0)),
            s if s < 3 + 2 * n => {
                let i = (s - 3) / 2;
                Some(((s - 3) & 1 == 0, TCP_ACK | TCP_PSH, spec.sizes[i]))
            }
            s if s == 3 + 2 * n => Some((true, TCP_FIN | TCP_ACK, 0)),
            s if s == 4 + 2 * n => Some((false, TCP_FIN | TCP_ACK, 0)),
            s if s == 5 + 2 * n => Some((true, TCP_ACK, 0)),
            _ => None,
        }
    } else {
        let s = step;
        (s < 2 * spec.sizes.len()).then(|| (s & 1 == 0, 0, spec.sizes[s / 2].max(1)))
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn simulate(workers: u16, specs: Vec<FlowSpec>, seed: u64) {
    let m = model(workers);
    let mut ws: Vec<Worker> = (0..workers)
        .map(|k| Worker::new(sim_config(k, workers)).expect("config"))
        .collect();
    let mut rng = Rng(seed | 1);
    let mut seen_clients = HashSet::new();
    let mut flows: Vec<Flow> = Vec::new();
    for spec in specs {
        let vip = sa(match (spec.v6, spec.tcp) {
            (false, true) => SVC_TCP4,
            (false, false) => SVC_UDP4,
            (true, true) => SVC_TCP6,
            (true, false) => SVC_UDP6,
        });
        let client = if spec.v6 {
            SocketAddr::new(
                format!("2001:db8:ff::{:x}", spec.client % 50 + 1)
                    .parse::<IpAddr>()
                    .expect("v6"),
                10000 + spec.client,
            )
        } else {
            SocketAddr::new(
                format!("198.51.100.{}", spec.client % 50 + 1)
                    .parse::<IpAddr>()
                    .expect("v4"),
                10000 + spec.client,
            )
        };
        if !seen_clients.insert((client, spec.tcp, spec.v6)) {
            continue;
        }
        let sisn = rng.next() as u32;
        flows.push(Flow {
            spec,
            client,
            vip,
            step: 0,
            worker: None,
            rs: None,
            local: None,
            cseq: rng.next() as u32,
            sisn,
            sseq: sisn,
            server_sent: false,
        });
    }
    let mut now = SECOND;
    let mut live: Vec<usize> = (0..flows.len()).collect();
    while !live.is_empty() {
        let pick = (rng.next() % live.len() as u64) as usize;
        let fi = live[pick];
        now += rng.next() % (10 * 1_000_000);
        let f = &mut flows[fi];
        let Some((from_client, flags, size)) = script(&f.spec, f.step) else {
            live.swap_remove(pick);
            continue;
        };
        f.step += 1;
        let payload: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31)).collect();
        let proto = if f.spec.tcp { Proto::Tcp } else { Proto::Udp };
        if from_client {
            let ack = if flags & TCP_SYN != 0 { 0 } else { f.sseq };
            let pkt = if f.spec.tcp {
                let opts: &[u8] = if flags & TCP_SYN != 0 {
                    &[2, 4, 5, 0xb4]
                } else {
                    &[]
                };
                tcp_in(f.client, f.vip, flags, f.cseq, ack, opts, &payload)
            } else {
                udp_in(f.client, f.vip, &payload)
            };
            let w = rss_worker(&m, proto, f.client, f.vip);
            let (v, out) = run(&mut ws[w], now, &pkt, 0);
            assert_eq!(v, Verdict::Tx { port: 1 }, "client packet of {f:?}");
            let s = inspect(&out);
            assert_eq!(*f.worker.get_or_insert(w), w);
            assert_eq!(*f.rs.get_or_insert(s.dst), s.dst, "flow keeps its RS");
            assert_eq!(
                *f.local.get_or_insert(s.src),
                s.src,
                "flow keeps its local address"
            );
            assert!(
                rss_servers(f.spec.v6, s.dst.port()).contains(&s.dst.to_string()),
                "dst is an RS: {}",
                s.dst
            );
            assert_eq!(s.payload, payload);
            assert_eq!(s.ttl, 63);
            if let Some(t) = &s.tcp {
                assert_eq!(t.sequence_number, f.cseq);
                assert_eq!(t.acknowledgment_number, ack);
                // From the handshake-completing ACK until the RS sends data: ACK = RS ISN + 1.
                let want_toa =
                    flags & TCP_SYN == 0 && ack == f.sisn.wrapping_add(1) && !f.server_sent;
                match find_toa(t) {
                    Some((at, port, addr)) => {
                        assert!(
                            want_toa,
                            "TOA where it does not belong: {f:?} flags {flags:#x}"
                        );
                        assert_eq!((at, port, addr), (0, f.client.port(), f.client.ip()));
                    }
                    None => assert!(!want_toa, "TOA missing: {f:?} flags {flags:#x}"),
                }
                f.cseq = f
                    .cseq
                    .wrapping_add(size as u32 + u32::from(flags & (TCP_SYN | TCP_FIN) != 0));
            }
            if flags & TCP_SYN != 0 || (!f.spec.tcp && f.step == 1) {
                assert_unique_locals(&ws);
            }
        } else {
            let (Some(rs), Some(local)) = (f.rs, f.local) else {
                panic!("server step before client")
            };
            let pkt = if f.spec.tcp {
                let opts: &[u8] = if flags & TCP_SYN != 0 {
                    &[2, 4, 5, 0xb4]
                } else {
                    &[]
                };
                tcp_out(rs, local, flags, f.sseq, f.cseq, opts, &payload)
            } else {
                udp_out(rs, local, &payload)
            };
            let w = rss_worker(&m, proto, rs, local);
            assert_eq!(Some(w), f.worker, "reply steered to the owner by RSS");
            let (v, out) = run(&mut ws[w], now, &pkt, 1);
            assert_eq!(v, Verdict::Tx { port: 0 }, "server packet of {f:?}");
            let s = inspect(&out);
            assert_eq!((s.src, s.dst), (f.vip, f.client), "reply reversed exactly");
            assert_eq!(s.payload, payload);
            if let Some(t) = &s.tcp {
                assert_eq!(
                    (t.sequence_number, t.acknowledgment_number),
                    (f.sseq, f.cseq)
                );
                if flags & TCP_SYN != 0 {
                    let lowered = if f.spec.v6 { 1440 } else { 1452 };
                    assert_eq!(find_mss(t), Some(lowered));
                }
                if size > 0 {
                    f.server_sent = true;
                }
                f.sseq = f
                    .sseq
                    .wrapping_add(size as u32 + u32::from(flags & (TCP_SYN | TCP_FIN) != 0));
            }
        }
    }
    for w in &ws {
        let c = w.counters();
        assert_eq!(
            c.rx_packets,
            c.tx_packets + c.total_drops() + c.redirects + c.control
        );
        assert_eq!(c.total_drops(), 0, "drops: {:?}", c.drops);
    }
    for w in &mut ws {
        w.expire(now + 1000 * SECOND, u32::MAX);
        assert_eq!(w.conn_count(), 0);
        for l in ["192.168.1.1", "192.168.1.2", "2001:db8:1::1"] {
            for p in [Proto::Tcp, Proto::Udp] {
                assert_eq!(w.laddr_pool().in_use(p, ip(l)), 0);
            }
        }
    }
}

fn assert_unique_locals(ws: &[Worker]) {
    let mut seen = HashMap::new();
    for (k, w) in ws.iter().enumerate() {
        for c in w.conns() {
            let key = (c.in_tuple.proto, c.local, c.rs);
            if let Some(other) = seen.insert(key, k) {
                panic!("local address/port shared by two live connections: {key:?} on workers {other} and {k}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn flows_through_workers(workers in 2u16..=4, specs in prop::collection::vec(flow_spec(), 1..40), seed in any::<u64>()) {
        simulate(workers, specs, seed);
    }
}

#[test]
fn many_flows_one_seed() {
    let specs = (0..200u16)
        .map(|i| FlowSpec {
            v6: i % 3 == 0,
            tcp: i % 2 == 0,
            client: i,
            sizes: vec![usize::from(i % 7) * 100, 1],
        })
        .collect();
    simulate(3, specs, 42);
}
