//! The in-process topology: the forwarder's dataplane library, stepped by hand.
//!
//! One [`Worker`] per worker of the scenario's queue → worker map. Every frame (capture
//! packet or responder reply) goes to the worker that owns the queue the scenario's RSS
//! model (the harness's own Toeplitz, not the forwarder's) picks; a `Redirect` verdict
//! hands the untouched frame to the named worker. Every frame a worker sends to a real
//! server is answered at once by the [`Responder`], and the reply enters the same way,
//! so replies test steering: with `check.rss_steering` the workers choose local ports
//! RSS-aware and must need no redirect; otherwise they partition ports (DPVS sa_pool) and
//! redirect replies to the owner. The clock advances 1 µs per packet.
//!
//! A `Redirect` hands the frame over as the worker left it, as the runtime's rings do: an
//! untouched frame, or, under the `wrong_worker` fault, a rewritten one that the receiving
//! worker transmits (see `forwarder::dataplane::fault`).
//!
//! Checks beyond the oracle's: the forwarder's drop reason agrees with the oracle's
//! ([`super::compatible`]), each worker's counters reconcile, no redirect under RSS-aware
//! steering, and the capture's verdicts agree with the scenario's `.expect`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use forwarder::dataplane::config::{
    DataplaneConfig, Mode as FMode, OwnerRss, PortConfig, RealServerConfig, ServiceConfig,
    ServiceKey,
};
use forwarder::dataplane::laddr::{PortPolicy, DEFAULT_MAX_SCAN};
use forwarder::dataplane::rss as frss;
use forwarder::dataplane::sched::SchedKind;
use forwarder::dataplane::types::Proto as FProto;
use forwarder::dataplane::{Frame, RxMeta, Verdict as FVerdict, Worker};

use super::responder::Responder;
use super::{
    check_expectations, compatible, read_expect_file, verdict_counts, Counts, Finding,
    ForwarderOptions, Kind, TopologyResult, WorkerCounts, CLIENT_MAC, LB_MAC,
};
use crate::capture;
use crate::oracle::{Checker, PacketRef, Verdict};
use crate::packet::PacketInfo;
use crate::rss::RssModel;
use crate::scenario::{Mode, Proto, Scenario, Scheduler};
use crate::split::queue_of;

const HEADROOM: usize = 128;
const TAILROOM: usize = 128;
/// Nanoseconds the clock advances per packet processed.
const TICK_NS: u64 = 1_000;
/// Redirects one packet may take before the harness calls it a loop.
const MAX_HOPS: usize = 4;

/// Maps the scenario's RSS model onto the forwarder's types (same key, types and RETA).
fn forwarder_rss(model: &RssModel) -> Result<frss::RssModel, String> {
    let key = frss::RssKey::new(model.key.as_bytes()).map_err(|e| e.to_string())?;
    let t = model.types;
    let types = frss::HashTypes {
        ipv4: t.ipv4,
        ipv4_tcp: t.ipv4_tcp,
        ipv4_udp: t.ipv4_udp,
        ipv6: t.ipv6,
        ipv6_tcp: t.ipv6_tcp,
        ipv6_udp: t.ipv6_udp,
    };
    let reta = frss::Reta::new(model.reta.entries().to_vec()).map_err(|e| e.to_string())?;
    Ok(frss::RssModel::new(key, types, reta))
}

/// The forwarder's scheduler for a scenario's.
pub fn sched_kind(s: Scheduler) -> SchedKind {
    match s {
        Scheduler::Rr => SchedKind::Rr,
        Scheduler::Wrr => SchedKind::Wrr,
        Scheduler::Wlc => SchedKind::Wlc,
        Scheduler::Sh => SchedKind::Sh,
        Scheduler::Maglev => SchedKind::Maglev { table_size: 65537 },
    }
}

/// The dataplane configuration of worker `worker` for a scenario.
pub fn dataplane_config(
    scenario: &Scenario,
    worker: u16,
    workers: u16,
    rss_aware: bool,
) -> Result<DataplaneConfig, String> {
    let mut cfg = DataplaneConfig::new(worker, workers);
    cfg.ports = vec![PortConfig {
        mac: LB_MAC,
        gateway_mac: CLIENT_MAC,
        csum: Default::default(),
    }];
    cfg.services = scenario
        .services
        .iter()
        .map(|s| ServiceConfig {
            key: ServiceKey {
                vip: s.vip.ip(),
                vport: s.vip.port(),
                proto: match s.proto {
                    Proto::Tcp => FProto::Tcp,
                    Proto::Udp => FProto::Udp,
                },
            },
            mode: match s.mode {
                Mode::Fullnat => FMode::FullNat,
                Mode::Nat => FMode::Nat,
            },
            sched: sched_kind(s.scheduler),
            real_servers: s
                .real_servers
                .iter()
                .map(|r| RealServerConfig {
                    addr: r.addr,
                    weight: r.weight,
                    mac: None,
                    port: 0,
                })
                .collect(),
            toa: s.toa,
            persistence: None,
        })
        .collect();
    cfg.laddrs = scenario.local_addresses.clone();
    cfg.conn_capacity = 16384;
    cfg.policies.answer_echo = false;
    cfg.policies.verify_checksums = true;
    cfg.policies.redirect_no_conn = true;
    let qw = scenario.queue_worker();
    let model = forwarder_rss(&scenario.rss_model().map_err(|e| e.to_string())?)?;
    // One port: clients and real servers arrive on the same queues.
    cfg.owner_rss = Some(OwnerRss {
        model: model.clone(),
        queue_worker: qw.clone(),
        reply_queue_worker: qw.clone(),
    });
    cfg.port_policy = if rss_aware {
        PortPolicy::RssAware {
            model,
            owned_queues: (0..qw.len() as u16)
                .filter(|&q| qw[usize::from(q)] == worker)
                .collect(),
            max_scan: DEFAULT_MAX_SCAN,
        }
    } else {
        PortPolicy::Partition { workers }
    };
    Ok(cfg)
}

/// What became of one input in the forwarder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    Sent(u16),
    Dropped(String),
    Control,
    Looped,
}

/// Where each checker input came from, for messages.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Capture(usize),
    Reply(usize),
}

/// Runs a scenario through the dataplane library.
pub fn run(scenario_file: &Path, scenario: &Scenario) -> Result<TopologyResult, String> {
    run_with(scenario_file, scenario, &ForwarderOptions::default())
}

/// [`run`] with the balancer set up by `opts` (a fault, for instance).
pub fn run_with(
    scenario_file: &Path,
    scenario: &Scenario,
    opts: &ForwarderOptions,
) -> Result<TopologyResult, String> {
    let started = Instant::now();
    let frames = capture::read(&scenario.input_path(scenario_file)).map_err(|e| e.to_string())?;
    let model = scenario.rss_model().map_err(|e| e.to_string())?;
    let qw = scenario.queue_worker();
    let workers = qw.iter().copied().max().map_or(1, |w| w + 1);
    let rss_aware = scenario.check.rss_steering;
    let mut dp = Vec::new();
    for w in 0..workers {
        let mut cfg = dataplane_config(scenario, w, workers, rss_aware)?;
        cfg.fault = opts.fault;
        dp.push(Worker::new(cfg).map_err(|e| format!("worker {w}: {e}"))?);
    }
    // A queue each worker transmits by, for the checker's queue → worker map.
    let tx_queue = |w: u16| -> u16 { qw.iter().position(|&x| x == w).map_or(w, |q| q as u16) };
    let rs_addrs: Vec<IpAddr> = scenario
        .services
        .iter()
        .flat_map(|s| s.real_servers.iter().map(|r| r.addr.ip()))
        .collect();

    let mut checker = Checker::new(scenario);
    let mut responder = Responder::new();
    let mut origins: Vec<Origin> = Vec::new();
    let mut fates: Vec<Fate> = Vec::new();
    let mut capture_verdicts: Vec<Verdict> = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut now = 0u64;
    let mut outputs = 0usize;

    for (ci, frame) in frames.iter().enumerate() {
        // Depth-first: a server answers before the client's next packet.
        let mut todo: Vec<(Vec<u8>, Origin)> = vec![(frame.data.clone(), Origin::Capture(ci))];
        while let Some((bytes, origin)) = todo.pop() {
            let queue = queue_of(&model, &bytes);
            let (index, verdict) = checker.observe_input(&bytes, queue);
            if let Origin::Capture(_) = origin {
                capture_verdicts.push(verdict);
            }
            origins.push(origin);
            verdicts.push(verdict);
            let mut worker = qw.get(usize::from(queue)).copied().unwrap_or(0);
            let mut fate = Fate::Looped;
            // What the next worker gets: the frame as the previous one left it.
            let mut cur = bytes.clone();
            for _ in 0..MAX_HOPS {
                now += TICK_NS;
                let mut buf = vec![0u8; HEADROOM + cur.len() + TAILROOM];
                buf[HEADROOM..HEADROOM + cur.len()].copy_from_slice(&cur);
                let Some(mut f) = Frame::new(&mut buf, HEADROOM, cur.len()) else {
                    return Err(format!("input #{index}: frame does not fit its buffer"));
                };
                let meta = RxMeta {
                    port: 0,
                    queue,
                    rss_hash: None,
                };
                let Some(w) = dp.get_mut(usize::from(worker)) else {
                    fate = Fate::Dropped(format!("redirect to unknown worker {worker}"));
                    break;
                };
                match w.process(now, &mut f, &meta) {
                    FVerdict::Tx { .. } => {
                        let out = f.data().to_vec();
                        checker.observe_output_of(index, &out, tx_queue(worker));
                        outputs += 1;
                        let to_server = PacketInfo::parse(&out)
                            .ok()
                            .and_then(|i| i.net.map(|n| n.dst))
                            .is_some_and(|d| rs_addrs.contains(&d));
                        if to_server {
                            if let Some(reply) = responder.answer(&out) {
                                todo.push((reply, Origin::Reply(outputs - 1)));
                            }
                        }
                        fate = Fate::Sent(worker);
                        break;
                    }
                    FVerdict::Drop(r) => {
                        fate = Fate::Dropped(r.name().to_owned());
                        break;
                    }
                    FVerdict::Control => {
                        fate = Fate::Control;
                        break;
                    }
                    FVerdict::Redirect(to) => {
                        cur = f.data().to_vec();
                        worker = to;
                    }
                }
            }
            fates.push(fate);
        }
    }

    let report = checker.finish();
    let describe = |p: &PacketRef| match p {
        PacketRef::Input(i) => match origins.get(*i) {
            Some(Origin::Capture(c)) => format!("input #{i} (capture #{c})"),
            Some(Origin::Reply(o)) => format!("input #{i} (server reply to output #{o})"),
            None => format!("input #{i}"),
        },
        PacketRef::Output(o) => format!("output #{o}"),
    };
    let mut failures: Vec<Finding> = Vec::new();
    for f in &report.failures {
        let mut finding = Finding::from_failure(f, describe);
        if let PacketRef::Input(i) = f.packet {
            match fates.get(i) {
                Some(Fate::Dropped(r)) => {
                    finding.got = format!("{} (forwarder: drop {r})", finding.got)
                }
                Some(Fate::Control) => {
                    finding.got = format!("{} (forwarder: to control plane)", finding.got)
                }
                Some(Fate::Looped) => {
                    finding.got =
                        format!("{} (forwarder: redirected {MAX_HOPS} times)", finding.got)
                }
                _ => {}
            }
        }
        failures.push(finding);
    }

    // The forwarder's drop reason against the oracle's, per packet.
    for (i, (fate, verdict)) in fates.iter().zip(&verdicts).enumerate() {
        let Verdict::Drop(want) = verdict else {
            continue;
        };
        let got = match fate {
            Fate::Dropped(r) => r.as_str(),
            Fate::Control => "control",
            // A forwarded packet the oracle drops is the checker's failure already.
            Fate::Sent(_) | Fate::Looped => continue,
        };
        if !compatible(*want, got) {
            failures.push(Finding::new(
                "drop_reason",
                describe(&PacketRef::Input(i)),
                "reason",
                want.name(),
                got,
            ));
        }
    }

    // Counters per worker.
    let mut worker_counts = Vec::new();
    let mut faults_injected = 0;
    for w in &dp {
        let c = w.counters();
        let wc = WorkerCounts {
            worker: w.id(),
            rx: c.rx_packets,
            tx: c.tx_packets,
            drops: forwarder::dataplane::DropReason::ALL
                .iter()
                .filter(|r| c.drop_count(**r) > 0)
                .map(|r| (r.name().to_owned(), c.drop_count(*r)))
                .collect(),
            redirects: c.redirects,
            control: c.control,
        };
        faults_injected += c.faults_injected;
        failures.extend(wc.reconcile());
        if rss_aware && wc.redirects > 0 {
            failures.push(Finding::new(
                "redirects",
                format!("worker {}", wc.worker),
                "redirects",
                "0 (RSS-aware local ports bring every reply to its owner)",
                wc.redirects.to_string(),
            ));
        }
        worker_counts.push(wc);
    }
    let total_rx: u64 = worker_counts.iter().map(|w| w.rx).sum();
    let total_tx: u64 = worker_counts.iter().map(|w| w.tx).sum();
    let total_redirects: u64 = worker_counts.iter().map(|w| w.redirects).sum();
    if total_rx != verdicts.len() as u64 + total_redirects {
        failures.push(Finding::new(
            "counters",
            "all workers",
            "rx_packets",
            format!("{} inputs + {total_redirects} redirects", verdicts.len()),
            total_rx.to_string(),
        ));
    }
    if total_tx != outputs as u64 {
        failures.push(Finding::new(
            "counters",
            "all workers",
            "tx_packets",
            format!("{outputs} frames transmitted"),
            total_tx.to_string(),
        ));
    }

    let expect_path = scenario_file.with_extension("expect");
    let lines = if expect_path.exists() {
        Some(read_expect_file(&expect_path)?)
    } else {
        None
    };
    failures.extend(check_expectations(
        &capture_verdicts,
        lines.as_deref(),
        scenario.expect.as_ref(),
    ));

    let (expected_forward, expected_drops) = verdict_counts(&capture_verdicts);
    let mut result = TopologyResult {
        scenario: scenario.name.clone(),
        topology: Kind::Inproc,
        passed: false,
        skipped: None,
        counts: Counts {
            capture: frames.len(),
            inputs: report.inputs,
            outputs: report.outputs,
            replies: responder.replies(),
            expected_forward,
            expected_drops,
            connections: report.connections,
            workers: worker_counts,
            fault: opts.fault.map(|f| f.to_string()),
            faults_injected,
        },
        failures,
        known_differences: Vec::new(),
        millis: started.elapsed().as_millis() as u64,
        mismatches: None,
        mismatch_frames: report.mismatches.iter().map(|(_, d)| d.clone()).collect(),
    };
    result.settle();
    Ok(result)
}
