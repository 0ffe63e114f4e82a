//! The DPDK side: EAL, port, one tx/rx queue pair per core, the per-core loops (generate,
//! replay, respond), progress lines and the final summary.
//!
//! Each worker gets its own context (queues, templates, flow set, pacer, counters) moved
//! into it; the loop allocates nothing (bulk mbuf allocation, fixed bursts of 32) and
//! shares only relaxed atomics that the main lcore reads for progress lines.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::{
    lcore, tsc, Burst, Eal, Mempool, Port, PortConfig, PortId, RxQueue, TxQueue, BURST_SIZE,
};
use l4lab_wire::{EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};
use serde::Serialize;

use crate::cli::{Config, ConfigError, GenConfig, Mode, ReplayConfig};
use crate::flows::{FlowSet, FlowTuple, FlowWalker};
use crate::latency::{LatencyReport, LatencyRx, Stamp};
use crate::pace::{GapReport, GapStats, Pacer, RateReport};
use crate::replay::{Capture, ReplayError, Schedule};
use crate::respond::{respond, RespondCounters};
use crate::template::{copy_frame, Proto, Template, TemplateError, TemplateSpec};
use crate::units::Cidr;

/// Why a run failed; [`RunError::exit_code`] maps it to the process exit status.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration does not fit this port or these lcores (exit 2).
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The templates could not be built (exit 2).
    #[error("configuration error: {0}")]
    Template(#[from] TemplateError),
    /// The capture could not be loaded (exit 2).
    #[error("configuration error: {0}")]
    Replay(#[from] ReplayError),
    /// EAL, mempool or port set-up failed (exit 3).
    #[error("failed to start: {0}")]
    Start(String),
    /// The link is down (exit 4).
    #[error("link down: {0}")]
    LinkDown(String),
    /// A worker failed, or the summary could not be written (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl RunError {
    /// The exit status: 2 configuration, 3 failed start, 4 link down, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) | RunError::Template(_) | RunError::Replay(_) => 2,
            RunError::Start(_) => 3,
            RunError::LinkDown(_) => 4,
            RunError::Failed(_) => 1,
        }
    }
}

fn start_err(what: &str) -> impl Fn(dpdk::Error) -> RunError + '_ {
    move |e| RunError::Start(format!("{what}: {e}"))
}

/// Counters a worker publishes while it runs (relaxed stores, read by the main lcore).
#[derive(Debug, Default)]
struct Live {
    tx: AtomicU64,
    rx: AtomicU64,
    lat_p50: AtomicU64,
    lat_p99: AtomicU64,
}

/// What every worker shares.
#[derive(Debug, Clone)]
struct Shared {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    live: Arc<Vec<Live>>,
    hz: u64,
}

/// What a worker hands back.
#[derive(Debug)]
struct WorkerReport {
    tx: u64,
    tx_bytes: u64,
    rx: u64,
    nombuf: u64,
    tx_secs: f64,
    gaps: GapStats,
    latency: LatencyRx,
    stamps_sent: u64,
    respond: RespondCounters,
    /// Closed loop: packets to the servers' prefix received (answered or not).
    server_rx: u64,
    /// Closed loop: answers the port accepted.
    server_tx: u64,
    /// Closed loop: received frames that are not IPv4 (ARP, ...), not counted as rx.
    other_rx: u64,
}

impl WorkerReport {
    /// Ends a transmit loop: packets built but never accepted by the port are not counted
    /// as sent (and are freed), and the sending time runs from `start` to the last accepted
    /// burst.
    fn finish_tx(&mut self, unsent: &mut Burst, start: u64, last_tx: u64, hz: u64) {
        for m in unsent.as_slice() {
            self.tx_bytes -= m.data_len() as u64;
        }
        unsent.clear();
        self.tx_secs = last_tx.saturating_sub(start) as f64 / hz as f64;
    }

    fn new(hz: u64) -> WorkerReport {
        WorkerReport {
            tx: 0,
            tx_bytes: 0,
            rx: 0,
            nombuf: 0,
            tx_secs: 0.0,
            gaps: GapStats::new(),
            latency: LatencyRx::new(hz),
            stamps_sent: 0,
            respond: RespondCounters::default(),
            server_rx: 0,
            server_tx: 0,
            other_rx: 0,
        }
    }
}

/// The port counters at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct PortCounters {
    /// Packets the port sent.
    pub opackets: u64,
    /// Packets the port received.
    pub ipackets: u64,
    /// Bytes sent (some virtual devices do not count bytes).
    pub obytes: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive drops for lack of descriptors.
    pub imissed: u64,
    /// Receive drops for lack of mbufs.
    pub rx_nombuf: u64,
}

/// What the in-process responder of a closed loop (`--respond-to`) saw. `rx_packets` of
/// the summary then counts only what came back to the generated streams.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedLoop {
    /// The servers' prefix.
    pub respond_to: String,
    /// Packets to that prefix received (requests the device forwarded to the servers).
    pub requests_rx: u64,
    /// Answers the port accepted.
    pub replies_tx: u64,
    /// Received frames that were not IPv4 (ARP, ...): in neither count.
    pub other_rx: u64,
}

/// The final JSON summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `generate`, `replay` or `respond`.
    pub mode: &'static str,
    /// Port device name or id.
    pub port: String,
    /// Its driver.
    pub driver: String,
    /// Reported link speed, Mb/s.
    pub link_speed_mbps: u32,
    /// Worker cores.
    pub cores: u16,
    /// Flows declared (generate mode).
    pub flows: u64,
    /// Packets the workers handed to the port.
    pub tx_packets: u64,
    /// Frame bytes handed to the port (without FCS).
    pub tx_bytes: u64,
    /// Packets the workers received.
    pub rx_packets: u64,
    /// Bulk allocations that failed (empty pool).
    pub tx_nombuf: u64,
    /// Seconds from the first to the last transmit (slowest core).
    pub tx_seconds: f64,
    /// Rate asked vs achieved.
    pub rate: RateReport,
    /// Inter-burst gaps (generate and replay).
    pub gaps: GapReport,
    /// Latency, when stamps were sent.
    pub latency: Option<LatencyReport>,
    /// Responder counters (respond mode, and generate mode with --respond-to).
    pub responder: Option<RespondCounters>,
    /// Closed loop (--respond-to): the servers' side of the port.
    pub closed_loop: Option<ClosedLoop>,
    /// The port's own counters.
    pub port_stats: PortCounters,
    /// Things the user should know (rate not sustained, ...).
    pub warnings: Vec<String>,
}

/// Runs the configuration to the end and returns the summary (also written to
/// `--json` when given).
pub fn run(cfg: &Config) -> Result<Summary, RunError> {
    // Load inputs that can fail for config reasons before touching DPDK.
    let capture = match &cfg.mode {
        Mode::Replay(r) => Some(Capture::load(
            &r.path,
            usize::from(dpdk::mempool::DEFAULT_DATA_ROOM) - 128,
        )?),
        _ => None,
    };
    let eal = Eal::builder()
        .args(cfg.eal.iter().cloned())
        .init()
        .map_err(start_err("EAL init"))?;
    let port_id = match &cfg.port {
        Some(name) => PortId::by_name(name)
            .map_err(|e| RunError::Config(ConfigError::Runtime(format!("--port {name}: {e}"))))?,
        None => *eal.ports().first().ok_or_else(|| {
            RunError::Start(
                "no DPDK port: pass a device (e.g. -- --vdev net_null0) or --port".into(),
            )
        })?,
    };
    let cores = cfg.cores;
    let workers = eal.worker_lcores();
    let inline = workers.is_empty();
    if !inline && workers.len() < usize::from(cores) {
        return Err(ConfigError::Runtime(format!(
            "--cores {cores} needs {cores} worker lcores, the EAL has {} (give more with -l/--lcores)",
            workers.len()
        ))
        .into());
    }
    if inline && cores > 1 {
        return Err(ConfigError::Runtime(format!(
            "--cores {cores} needs {cores} worker lcores besides the main one (give them with -l/--lcores)"
        ))
        .into());
    }
    let mut port = Port::open(port_id).map_err(start_err("open port"))?;
    let info = port.info().map_err(start_err("port info"))?;
    if info.max_tx_queues < cores || info.max_rx_queues < cores {
        return Err(ConfigError::Runtime(format!(
            "--cores {cores}: port {} ({}) has {} tx / {} rx queues",
            port_id.0, info.driver, info.max_tx_queues, info.max_rx_queues
        ))
        .into());
    }
    let pool = Mempool::with_defaults("tgen_pool", 8191 * u32::from(cores))
        .map_err(start_err("mempool"))?;
    let (rxqs, txqs) = port
        .configure(&PortConfig::new(cores), &pool)
        .map_err(start_err("configure port"))?;
    port.start().map_err(start_err("start port"))?;
    let link = port
        .wait_link_up(cfg.link_timeout)
        .map_err(|e| RunError::LinkDown(e.to_string()))?;
    let mac = port.mac_addr().map_err(start_err("MAC address"))?;
    port.reset_stats().map_err(start_err("reset stats"))?;
    if !cfg.start_delay.is_zero() {
        std::thread::sleep(cfg.start_delay);
    }

    let hz = tsc::hz();
    let shared = Shared {
        stop: Arc::new(AtomicBool::new(false)),
        done: Arc::new(AtomicUsize::new(0)),
        live: Arc::new((0..cores).map(|_| Live::default()).collect()),
        hz,
    };
    let mut warnings = Vec::new();
    let mut asked = None;
    let mut flows = 0;
    let jobs: Vec<Job> = match &cfg.mode {
        Mode::Generate(g) => {
            let (jobs, pps) = gen_jobs(
                cfg,
                g,
                mac,
                link.speed_mbps,
                info.reta_size,
                rxqs,
                txqs,
                &pool,
                &shared,
            )?;
            asked = pps;
            flows = g.flows.len();
            jobs
        }
        Mode::Replay(r) => {
            let cap = capture.unwrap_or_else(|| unreachable!("loaded above for replay mode"));
            asked = match r.mode {
                crate::units::ReplayMode::Pps => r.pps,
                _ => None,
            };
            replay_jobs(cfg, r, cap, rxqs, txqs, &pool, &shared)?
        }
        Mode::Respond { response_bytes } => rxqs
            .into_iter()
            .zip(txqs)
            .enumerate()
            .map(|(i, (rxq, txq))| {
                Job::Respond(RespondJob {
                    core: i,
                    rxq,
                    txq,
                    response_bytes: usize::from(*response_bytes),
                    count: split_count(cfg.count, i as u16, cores),
                    end: cfg.duration,
                    shared: shared.clone(),
                })
            })
            .collect(),
    };

    let started = Instant::now();
    let reports = if inline {
        let mut reports = Vec::new();
        for job in jobs {
            let mut tick = progress_printer(&shared, cfg.quiet, started);
            reports.push(job.run(&mut tick));
        }
        reports
    } else {
        let mut handles = Vec::new();
        for (job, &l) in jobs.into_iter().zip(&workers) {
            handles.push(
                lcore::launch(l, move || job.run(&mut || ()))
                    .map_err(|e| RunError::Start(format!("launch on lcore {l}: {e}")))?,
            );
        }
        let mut tick = progress_printer(&shared, cfg.quiet, started);
        let mut link_down = false;
        while shared.done.load(Ordering::Acquire) < handles.len() {
            std::thread::sleep(Duration::from_millis(20));
            tick();
            if !link_down && !port.link().map(|l| l.up).unwrap_or(false) {
                link_down = true;
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
        let mut reports = Vec::new();
        for h in handles {
            reports.push(
                h.join()
                    .map_err(|e| RunError::Failed(format!("worker failed: {e}")))?,
            );
        }
        if link_down {
            return Err(RunError::LinkDown(format!(
                "port {} went down during the run",
                port_id.0
            )));
        }
        reports
    };

    let stats = port.stats().map_err(start_err("port stats"))?;
    let mut total = WorkerReport::new(hz);
    let mut stamps = Vec::new();
    for r in &reports {
        total.tx += r.tx;
        total.tx_bytes += r.tx_bytes;
        total.rx += r.rx;
        total.nombuf += r.nombuf;
        total.tx_secs = total.tx_secs.max(r.tx_secs);
        total.gaps.merge(&r.gaps);
        total.latency.merge(&r.latency);
        total.respond.merge(&r.respond);
        total.server_rx += r.server_rx;
        total.server_tx += r.server_tx;
        total.other_rx += r.other_rx;
        stamps.push(r.stamps_sent);
    }
    // A paced run is judged over its schedule (the duration when one was given), so a
    // core that falls behind shows up as a shortfall.
    let secs = match (asked, cfg.duration, cfg.count) {
        (Some(_), Some(d), None) => d.as_secs_f64(),
        _ => total.tx_secs,
    };
    let rate = RateReport::judge(asked, total.tx, secs, total.gaps.max_backlog);
    if !rate.sustained {
        warnings.push(format!(
            "asked {:.0} pps but sustained only {:.0} pps ({:+.2}%, largest backlog {} packets): the core cannot keep up",
            rate.asked_pps, rate.achieved_pps, rate.error_pct, total.gaps.max_backlog
        ));
    } else if rate.stalled {
        warnings.push(format!(
            "the schedule fell up to {} packets behind (more than 10 ms) and made them up: the core was descheduled or briefly too slow",
            total.gaps.max_backlog
        ));
    }
    let latency_on = stamps.iter().any(|&s| s > 0);
    let respond_to = match &cfg.mode {
        Mode::Generate(g) => g.respond_to,
        _ => None,
    };
    let summary = Summary {
        mode: match cfg.mode {
            Mode::Generate(_) => "generate",
            Mode::Replay(_) => "replay",
            Mode::Respond { .. } => "respond",
        },
        port: cfg
            .port
            .clone()
            .unwrap_or_else(|| format!("port {}", port_id.0)),
        driver: info.driver.clone(),
        link_speed_mbps: link.speed_mbps,
        cores,
        flows,
        tx_packets: total.tx,
        tx_bytes: total.tx_bytes,
        rx_packets: total.rx,
        tx_nombuf: total.nombuf,
        tx_seconds: total.tx_secs,
        rate,
        gaps: total.gaps.report(hz),
        latency: latency_on.then(|| total.latency.report(&stamps)),
        responder: (matches!(cfg.mode, Mode::Respond { .. }) || respond_to.is_some())
            .then(|| total.respond.clone()),
        closed_loop: respond_to.map(|c| ClosedLoop {
            respond_to: format!("{}/{}", c.base, c.len),
            requests_rx: total.server_rx,
            replies_tx: total.server_tx,
            other_rx: total.other_rx,
        }),
        port_stats: PortCounters {
            opackets: stats.opackets,
            ipackets: stats.ipackets,
            obytes: stats.obytes,
            ibytes: stats.ibytes,
            oerrors: stats.oerrors,
            imissed: stats.imissed,
            rx_nombuf: stats.rx_nombuf,
        },
        warnings,
    };
    if let Some(path) = &cfg.json {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| RunError::Failed(format!("JSON: {e}")))?;
        std::fs::write(path, text)
            .map_err(|e| RunError::Failed(format!("cannot write {}: {e}", path.display())))?;
    }
    // Close the port (flushes net_pcap captures) before the EAL goes.
    drop(port);
    drop(pool);
    Ok(summary)
}

/// Returns a closure that prints one progress line per second.
fn progress_printer<'a>(shared: &'a Shared, quiet: bool, started: Instant) -> impl FnMut() + 'a {
    let mut last = Instant::now();
    let (mut last_tx, mut last_rx) = (0u64, 0u64);
    move || {
        if quiet || last.elapsed() < Duration::from_secs(1) {
            return;
        }
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        let tx: u64 = shared
            .live
            .iter()
            .map(|l| l.tx.load(Ordering::Relaxed))
            .sum();
        let rx: u64 = shared
            .live
            .iter()
            .map(|l| l.rx.load(Ordering::Relaxed))
            .sum();
        let p50 = shared
            .live
            .iter()
            .map(|l| l.lat_p50.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let p99 = shared
            .live
            .iter()
            .map(|l| l.lat_p99.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let lat = if p99 > 0 {
            format!(
                "lat p50 {:.1}us p99 {:.1}us",
                p50 as f64 / 1e3,
                p99 as f64 / 1e3
            )
        } else {
            "lat -".into()
        };
        eprintln!(
            "[{:>4.0}s] tx {:.3} Mpps  rx {:.3} Mpps  tx-rx {}  {lat}",
            started.elapsed().as_secs_f64(),
            (tx - last_tx) as f64 / dt / 1e6,
            (rx - last_rx) as f64 / dt / 1e6,
            tx as i64 - rx as i64,
        );
        (last_tx, last_rx) = (tx, rx);
    }
}

/// Splits a total count over cores (core `i` gets its share, the first ones the rest).
fn split_count(count: Option<u64>, core: u16, cores: u16) -> Option<u64> {
    count.map(|c| {
        let n = u64::from(cores.max(1));
        c / n + u64::from(u64::from(core) < c % n)
    })
}

/// One core's work.
enum Job {
    Generate(Box<GenJob>),
    Replay(ReplayJob),
    Respond(RespondJob),
}

impl Job {
    fn run(self, tick: &mut dyn FnMut()) -> WorkerReport {
        let shared = match &self {
            Job::Generate(j) => j.shared.clone(),
            Job::Replay(j) => j.shared.clone(),
            Job::Respond(j) => j.shared.clone(),
        };
        let report = match self {
            Job::Generate(j) => j.run(tick),
            Job::Replay(j) => j.run(tick),
            Job::Respond(j) => j.run(tick),
        };
        shared.done.fetch_add(1, Ordering::Release);
        report
    }
}

/// Generation on one core.
struct GenJob {
    core: usize,
    rxq: RxQueue,
    txq: TxQueue,
    pool: Mempool,
    /// Templates indexed `[(size * dsts + dst) * phases + phase]`.
    templates: Vec<Template>,
    size_cycle: Vec<u8>,
    ndst: usize,
    phases: u64,
    /// The destinations (TCP sessions derive their ACK numbers from them).
    dsts: Vec<SocketAddrV4>,
    /// This core's flows, in their order.
    walker: FlowWalker,
    /// The frame length when every packet has the same one, takes one template per
    /// destination and carries no stamp (UDP or TCP SYN, one size): the lean loop of
    /// `fill_simple`, with mbufs sized by the allocation.
    fixed_len: Option<usize>,
    /// With `fixed_len`, for UDP from a single flow: the finished frame, the same for
    /// every packet (patched once here rather than per packet).
    frame: Option<Vec<u8>>,
    pps: Option<f64>,
    limit: Option<u64>,
    duration: Option<Duration>,
    latency_every: u64,
    cores: u64,
    responder: Option<Box<InlineResponder>>,
    shared: Shared,
}

#[allow(clippy::too_many_arguments)]
fn gen_jobs(
    cfg: &Config,
    g: &GenConfig,
    mac: [u8; 6],
    link_mbps: u32,
    reta_size: u16,
    rxqs: Vec<RxQueue>,
    txqs: Vec<TxQueue>,
    pool: &Mempool,
    shared: &Shared,
) -> Result<(Vec<Job>, Option<f64>), RunError> {
    let cores = cfg.cores;
    let pps = match g.rate {
        crate::units::Rate::Max => None,
        r => Some(r.to_pps(g.size.average(), link_mbps).ok_or_else(|| {
            ConfigError::Runtime(format!(
                "--pps {r}: the port reports no link speed; give packets/s or bits/s"
            ))
        })?),
    };
    let spec = TemplateSpec {
        src_mac: g.src_mac.unwrap_or(mac),
        dst_mac: g.dst_mac,
        base_src: g.flows.src().base,
        base_sport: g.flows.sports().lo,
        ttl: 64,
        proto: g.proto,
    };
    let sizes = g.size.distinct();
    let dsts: Vec<SocketAddrV4> = g.flows.dsts().to_vec();
    let phases = g.proto.phases();
    let mut templates = Vec::new();
    for &size in &sizes {
        for &dst in &dsts {
            for phase in 0..phases {
                templates.push(Template::build(&spec, dst, size, phase as u8)?);
            }
        }
    }
    let sets: Vec<FlowSet> = if g.rss && cores > 1 {
        g.flows.split_by_rss(cores, u32::from(reta_size.max(128)))
    } else {
        (0..cores).map(|c| g.flows.split(c, cores)).collect()
    };
    // A core with no flows (few flows, many cores) sends nothing.
    let mut jobs = Vec::new();
    for (i, ((rxq, txq), set)) in rxqs.into_iter().zip(txqs).zip(sets).enumerate() {
        let share = set.len() as f64 / g.flows.len() as f64;
        let limit = match (cfg.count, cfg.duration, pps) {
            (Some(c), _, _) if !(g.rss && cores > 1) => split_count(Some(c), i as u16, cores),
            (Some(c), _, _) => Some((c as f64 * share).round() as u64),
            (None, Some(d), Some(p)) => {
                Some((p / f64::from(cores) * d.as_secs_f64()).round() as u64)
            }
            _ => None,
        };
        let limit = if set.is_empty() { Some(0) } else { limit };
        let walker = FlowWalker::new(&g.flows, set, g.order);
        let fixed_len = (phases == 1 && sizes.len() == 1 && g.latency_every == 0)
            .then(|| templates.first().map(Template::len))
            .flatten();
        let frame = match (fixed_len, g.proto, walker.len()) {
            (Some(len), Proto::Udp, 1) => {
                let t = walker.clone().next_tuple();
                templates.get(t.dst).map(|tpl| {
                    let mut f = vec![0; len];
                    tpl.write_into(&mut f, &t, 0, 0, None);
                    f
                })
            }
            _ => None,
        };
        jobs.push(Job::Generate(Box::new(GenJob {
            core: i,
            rxq,
            txq,
            pool: pool.clone(),
            templates: templates.clone(),
            size_cycle: g.size.cycle(),
            ndst: dsts.len(),
            phases,
            dsts: dsts.clone(),
            walker,
            fixed_len,
            frame,
            pps: pps.map(|p| p / f64::from(cores)),
            limit,
            duration: cfg.duration,
            latency_every: g.latency_every,
            cores: u64::from(cores),
            responder: g.respond_to.map(|net| {
                Box::new(InlineResponder {
                    net,
                    response_bytes: usize::from(g.response_bytes),
                    scratch: vec![0u8; 2048],
                    backlog: Burst::new(),
                })
            }),
            shared: shared.clone(),
        })));
    }
    Ok((jobs, pps))
}

/// Reads stamps from received frames (IPv4/UDP, no trust in the bytes).
#[inline]
fn read_stamp(frame: &[u8]) -> Option<Stamp> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != IpProtocol::UDP {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    Stamp::decode(udp.payload())
}

/// The servers' side of a closed loop, on a generating core.
struct InlineResponder {
    net: Cidr,
    response_bytes: usize,
    scratch: Vec<u8>,
    /// Answers the port did not take yet: sent before anything else (requests wait,
    /// answers are never dropped for a full ring).
    backlog: Burst,
}

/// The IPv4 destination of an untagged Ethernet/IPv4 frame.
#[inline]
fn ipv4_dst(frame: &[u8]) -> Option<std::net::Ipv4Addr> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let d = frame.get(30..34)?;
    Some(std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3]))
}

impl InlineResponder {
    /// Handles a received burst: packets to the servers' prefix are answered in place and
    /// sent back out of `txq`; the rest count as the streams' rx (and latency).
    #[inline]
    fn serve(
        &mut self,
        burst: &mut Burst,
        txq: &mut TxQueue,
        rep: &mut WorkerReport,
        stamps: bool,
    ) {
        let (net, resp_len) = (self.net, self.response_bytes);
        let scratch = &mut self.scratch;
        let now = if stamps { tsc::cycles() } else { 0 };
        let (mut streams, mut server) = (0u64, 0u64);
        let (latency, counters) = (&mut rep.latency, &mut rep.respond);
        let mut other = 0u64;
        burst.retain(|m| {
            let Some(dst) = ipv4_dst(m.data()) else {
                // ARP, IPv6, ...: neither a reply to the streams nor a request.
                other += 1;
                return false;
            };
            if !net.contains(dst) {
                streams += 1;
                if stamps {
                    if let Some(s) = read_stamp(m.data()) {
                        latency.record(&s, now);
                    }
                }
                return false;
            }
            server += 1;
            let outcome = respond(m.data(), scratch, resp_len);
            counters.count(outcome);
            let Ok(reply) = outcome else { return false };
            let (have, want) = (m.data_len(), reply.len());
            let resized = if want < have {
                m.trim(have - want).is_ok()
            } else {
                m.append(want - have).is_ok()
            };
            if !resized {
                return false;
            }
            m.data_mut().copy_from_slice(&scratch[..want]);
            true
        });
        rep.rx += streams;
        rep.server_rx += server;
        rep.other_rx += other;
        // What the port does not take now waits in the backlog (empty here: receive()
        // polls only when it is) and goes out before the next request.
        rep.server_tx += txq.tx_burst(burst) as u64;
        std::mem::swap(burst, &mut self.backlog);
    }

    /// Sends what waits; true when nothing is left waiting.
    #[inline]
    fn flush(&mut self, txq: &mut TxQueue, rep: &mut WorkerReport) -> bool {
        if !self.backlog.is_empty() {
            rep.server_tx += txq.tx_burst(&mut self.backlog) as u64;
        }
        self.backlog.is_empty()
    }
}

/// Receives one burst: counts, and records latency stamps; in a closed loop, answers
/// what is addressed to the servers.
#[inline]
fn receive(
    rxq: &mut RxQueue,
    txq: &mut TxQueue,
    burst: &mut Burst,
    rep: &mut WorkerReport,
    stamps: bool,
    responder: Option<&mut InlineResponder>,
) -> usize {
    if let Some(r) = responder.as_deref() {
        if !r.backlog.is_empty() {
            // Answers still wait for room: no new packets until they are out.
            return 0;
        }
    }
    let n = rxq.rx_burst(burst);
    if n == 0 {
        return 0;
    }
    if let Some(r) = responder {
        r.serve(burst, txq, rep, stamps);
        return n;
    }
    if stamps {
        let now = tsc::cycles();
        for m in burst.as_slice() {
            if let Some(s) = read_stamp(m.data()) {
                rep.latency.record(&s, now);
            }
        }
    }
    rep.rx += n as u64;
    burst.clear();
    n
}

/// Polls rx until it has been quiet for 50 ms (at most 1 s), for in-flight packets.
fn drain_rx(
    rxq: &mut RxQueue,
    txq: &mut TxQueue,
    burst: &mut Burst,
    rep: &mut WorkerReport,
    stamps: bool,
    hz: u64,
    mut responder: Option<&mut InlineResponder>,
) {
    let start = tsc::cycles();
    let mut last = start;
    loop {
        let now = tsc::cycles();
        if let Some(r) = responder.as_deref_mut() {
            if !r.flush(txq, rep) {
                last = now;
            }
        }
        if receive(rxq, txq, burst, rep, stamps, responder.as_deref_mut()) > 0 {
            last = now;
        }
        if now - last > hz / 20 || now - start > hz {
            break;
        }
    }
}

/// Where a generating core is in its packet sequence: counters instead of divisions of a
/// packet number.
#[derive(Debug, Default)]
struct Visits {
    /// Flow visits begun (each is `phases` packets).
    visit: u64,
    /// Packet of the current visit (0 starts a visit).
    phase: usize,
    /// Position in the frame-size cycle.
    size_pos: usize,
    /// The current visit's flow (set when the visit begins, before any use).
    tuple: FlowTuple,
    /// Its sequence number base (the session ISN; SYN-only traffic: per packet).
    seq_base: u32,
    /// Where its templates start.
    tpl_base: usize,
    /// Packets until the next latency stamp (the first packet carries one).
    until_stamp: u64,
}

impl GenJob {
    /// Writes the packets of a burst whose mbufs already hold `len` bytes each: UDP or
    /// TCP SYN, one frame size, no stamps. Per packet only the next flow, its template
    /// (by destination) and the patch; from a single UDP flow, a copy of the finished
    /// frame.
    #[inline]
    fn fill_simple(
        &mut self,
        burst: &mut Burst,
        v: &mut Visits,
        rep: &mut WorkerReport,
        len: usize,
    ) {
        let n = burst.len();
        if let Some(frame) = &self.frame {
            for m in burst.as_mut_slice() {
                copy_frame(m.data_mut(), frame);
            }
        } else {
            let (cores, core) = (self.cores, self.core as u64);
            for (i, m) in burst.as_mut_slice().iter_mut().enumerate() {
                let t = self.walker.next_tuple();
                // SYN-only traffic: the sequence number varies per packet.
                let seq = ((v.visit + i as u64) * cores + core) as u32;
                // One size and one phase: the template index is the destination's.
                if let Some(tpl) = self.templates.get(t.dst) {
                    tpl.write_into(m.data_mut(), &t, seq, 0, None);
                }
            }
        }
        v.visit += n as u64;
        rep.tx_bytes += (n * len) as u64;
    }

    /// Writes the packets of a burst of empty mbufs, in the general case: frame-size
    /// cycles (IMIX), TCP sessions (three packets per flow visit), latency stamps.
    fn fill(&mut self, burst: &mut Burst, v: &mut Visits, rep: &mut WorkerReport, stamps_on: bool) {
        let phases = self.phases as usize;
        for m in burst.as_mut_slice() {
            if v.phase == 0 {
                v.tuple = self.walker.next_tuple();
                v.seq_base = (v.visit * self.cores + self.core as u64) as u32;
                let size = usize::from(self.size_cycle[v.size_pos]);
                v.tpl_base = (size * self.ndst + v.tuple.dst) * phases;
            }
            let idx = v.tpl_base + v.phase;
            let tpl = &self.templates[idx];
            let tuple = v.tuple;
            let (seq, ack) = match v.phase {
                0 => (v.seq_base, 0),
                phase => {
                    let dst = self.dsts[tuple.dst];
                    let ack =
                        crate::respond::cookie_isn(tuple.src, *dst.ip(), tuple.sport, dst.port())
                            .wrapping_add(1);
                    let seq = v.seq_base.wrapping_add(1);
                    if phase == 1 {
                        (seq, ack)
                    } else {
                        // The FIN follows the data segment's payload.
                        let data = (self.templates[idx - 1].len() - 54) as u32;
                        (seq.wrapping_add(data), ack)
                    }
                }
            };
            let stamp = if stamps_on && v.until_stamp == 0 {
                v.until_stamp = self.latency_every;
                let s = Stamp {
                    stream: self.core as u16,
                    seq: rep.stamps_sent as u32,
                    tsc: tsc::cycles(),
                };
                rep.stamps_sent += 1;
                Some(s.encode())
            } else {
                None
            };
            v.until_stamp = v.until_stamp.saturating_sub(1);
            if let Ok(buf) = m.append(tpl.len()) {
                tpl.write_into(buf, &tuple, seq, ack, stamp.as_ref());
            }
            rep.tx_bytes += tpl.len() as u64;
            v.phase += 1;
            if v.phase == phases {
                v.phase = 0;
                v.visit += 1;
                v.size_pos += 1;
                if v.size_pos == self.size_cycle.len() {
                    v.size_pos = 0;
                }
            }
        }
    }

    fn run(mut self, tick: &mut dyn FnMut()) -> WorkerReport {
        let hz = self.shared.hz;
        let mut rep = WorkerReport::new(hz);
        // The fill methods borrow the job mutably; the counters live in the Arc.
        let shared = self.shared.clone();
        let live = &shared.live[self.core];
        let mut tx_burst = Burst::new();
        let mut rx_burst = Burst::new();
        let start = tsc::cycles();
        let end = self
            .duration
            .map(|d| start + (d.as_secs_f64() * hz as f64) as u64);
        let limit = self.limit.unwrap_or(u64::MAX);
        let pacer = self.pps.map(|p| Pacer::new(p, hz, start, limit));
        let stamps_on = self.latency_every > 0;
        let mut last_tx = start;
        let mut next_tick = start + hz;
        let mut next_publish = start + hz / 10;
        let mut visits = Visits::default();
        while rep.tx < limit {
            let now = tsc::cycles();
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(e) = end {
                if now >= e {
                    // Past the end: only the last partial burst of the schedule (at most
                    // two bursts, for at most 10 ms) is still made up, then stop.
                    let backlog = pacer
                        .as_ref()
                        .map_or(0, |p| p.due(e).saturating_sub(rep.tx));
                    if backlog == 0 || backlog > 2 * BURST_SIZE as u64 || now >= e + hz / 100 {
                        break;
                    }
                }
            }
            if now >= next_publish {
                live.tx.store(rep.tx, Ordering::Relaxed);
                live.rx.store(rep.rx, Ordering::Relaxed);
                if stamps_on {
                    live.lat_p50
                        .store(rep.latency.quantile_ns(0.5), Ordering::Relaxed);
                    live.lat_p99
                        .store(rep.latency.quantile_ns(0.99), Ordering::Relaxed);
                }
                next_publish = now + hz / 10;
                if now >= next_tick {
                    tick();
                    next_tick = now + hz;
                }
            }
            receive(
                &mut self.rxq,
                &mut self.txq,
                &mut rx_burst,
                &mut rep,
                stamps_on,
                self.responder.as_deref_mut(),
            );
            if let Some(r) = self.responder.as_deref_mut() {
                if !r.flush(&mut self.txq, &mut rep) {
                    // The servers' answers go first; requests wait for room.
                    continue;
                }
            }
            if tx_burst.is_empty() {
                let want = match &pacer {
                    Some(p) => p.want(now, rep.tx),
                    None => BURST_SIZE,
                }
                .min((limit - rep.tx).min(BURST_SIZE as u64) as usize);
                if want == 0 {
                    continue;
                }
                if let Some(p) = &pacer {
                    rep.gaps.burst(now, p.due(now).saturating_sub(rep.tx));
                } else {
                    rep.gaps.burst(now, 0);
                }
                let filled = match self.fixed_len {
                    Some(len) => tx_burst.alloc_bulk_len(&self.pool, want, len),
                    None => tx_burst.alloc_bulk(&self.pool, want),
                };
                if !filled {
                    rep.nombuf += 1;
                    continue;
                }
                match self.fixed_len {
                    Some(len) => self.fill_simple(&mut tx_burst, &mut visits, &mut rep, len),
                    None => self.fill(&mut tx_burst, &mut visits, &mut rep, stamps_on),
                }
            }
            let sent = self.txq.tx_burst(&mut tx_burst);
            if sent > 0 {
                rep.tx += sent as u64;
                // When this loop turn began: one burst's building time before the
                // transmit, and one TSC read per burst fewer.
                last_tx = now;
            }
        }
        rep.finish_tx(&mut tx_burst, start, last_tx, hz);
        drain_rx(
            &mut self.rxq,
            &mut self.txq,
            &mut rx_burst,
            &mut rep,
            stamps_on,
            hz,
            self.responder.as_deref_mut(),
        );
        live.tx.store(rep.tx, Ordering::Relaxed);
        live.rx.store(rep.rx, Ordering::Relaxed);
        rep
    }
}

/// pcap replay on one core.
struct ReplayJob {
    rxq: RxQueue,
    txq: TxQueue,
    pool: Mempool,
    cap: Capture,
    schedule: Schedule,
    loops: u64,
    retarget: Option<crate::replay::Retarget>,
    count: Option<u64>,
    duration: Option<Duration>,
    shared: Shared,
}

fn replay_jobs(
    cfg: &Config,
    r: &ReplayConfig,
    cap: Capture,
    rxqs: Vec<RxQueue>,
    txqs: Vec<TxQueue>,
    pool: &Mempool,
    shared: &Shared,
) -> Result<Vec<Job>, RunError> {
    let schedule = Schedule::new(r.mode, r.pps).ok_or(ConfigError::ReplayNeedsPps)?;
    let mut jobs = Vec::new();
    if let (Some(rxq), Some(txq)) = (rxqs.into_iter().next(), txqs.into_iter().next()) {
        jobs.push(Job::Replay(ReplayJob {
            rxq,
            txq,
            pool: pool.clone(),
            cap,
            schedule,
            loops: r.loops,
            retarget: r.retarget,
            count: cfg.count,
            duration: cfg.duration,
            shared: shared.clone(),
        }));
    }
    Ok(jobs)
}

impl ReplayJob {
    fn run(mut self, tick: &mut dyn FnMut()) -> WorkerReport {
        let hz = self.shared.hz;
        let mut rep = WorkerReport::new(hz);
        let live = &self.shared.live[0];
        let mut burst = Burst::new();
        let mut rx_burst = Burst::new();
        let start = tsc::cycles();
        let end = self
            .duration
            .map(|d| start + (d.as_secs_f64() * hz as f64) as u64);
        let total = (self.cap.packets.len() as u64)
            .saturating_mul(self.loops)
            .min(self.count.unwrap_or(u64::MAX));
        let ns_to_cycles = hz as f64 / 1e9;
        let (mut n, mut round, mut index) = (0u64, 0u64, 0usize);
        let mut next_tick = start + hz;
        let mut last_tx = start;
        while rep.tx < total {
            let now = tsc::cycles();
            if self.shared.stop.load(Ordering::Relaxed) || end.is_some_and(|e| now >= e) {
                break;
            }
            if now >= next_tick {
                live.tx.store(rep.tx, Ordering::Relaxed);
                live.rx.store(rep.rx, Ordering::Relaxed);
                tick();
                next_tick = now + hz;
            }
            receive(
                &mut self.rxq,
                &mut self.txq,
                &mut rx_burst,
                &mut rep,
                false,
                None,
            );
            let mut first_in_burst = true;
            while burst.len() < BURST_SIZE && n < total {
                let due = start
                    + (self.schedule.due_ns(&self.cap, round, index, n) as f64 * ns_to_cycles)
                        as u64;
                if due > now {
                    break;
                }
                let Some(mut m) = dpdk::Mbuf::alloc(&self.pool) else {
                    rep.nombuf += 1;
                    break;
                };
                let data = &self.cap.packets[index].data;
                if let Ok(buf) = m.append(data.len()) {
                    buf.copy_from_slice(data);
                    if let Some(r) = &self.retarget {
                        r.apply(buf, round);
                    }
                }
                rep.tx_bytes += data.len() as u64;
                if burst.push(m).is_err() {
                    break;
                }
                if first_in_burst {
                    rep.gaps.burst(now, 0);
                    first_in_burst = false;
                }
                n += 1;
                index += 1;
                if index == self.cap.packets.len() {
                    index = 0;
                    round += 1;
                }
            }
            if !burst.is_empty() {
                let sent = self.txq.tx_burst(&mut burst);
                if sent > 0 {
                    rep.tx += sent as u64;
                    last_tx = tsc::cycles();
                }
            }
        }
        rep.finish_tx(&mut burst, start, last_tx, hz);
        drain_rx(
            &mut self.rxq,
            &mut self.txq,
            &mut rx_burst,
            &mut rep,
            false,
            hz,
            None,
        );
        live.tx.store(rep.tx, Ordering::Relaxed);
        rep
    }
}

/// The responder on one core.
struct RespondJob {
    core: usize,
    rxq: RxQueue,
    txq: TxQueue,
    response_bytes: usize,
    count: Option<u64>,
    end: Option<Duration>,
    shared: Shared,
}

impl RespondJob {
    fn run(mut self, tick: &mut dyn FnMut()) -> WorkerReport {
        let hz = self.shared.hz;
        let mut rep = WorkerReport::new(hz);
        let live = &self.shared.live[self.core];
        let mut burst = Burst::new();
        let mut scratch = [0u8; 2048];
        let start = tsc::cycles();
        let end = self
            .end
            .map(|d| start + (d.as_secs_f64() * hz as f64) as u64);
        let limit = self.count.unwrap_or(u64::MAX);
        let mut next_tick = start + hz;
        let mut last_tx = start;
        let resp_len = self.response_bytes;
        while rep.rx < limit {
            let now = tsc::cycles();
            if self.shared.stop.load(Ordering::Relaxed) || end.is_some_and(|e| now >= e) {
                break;
            }
            if now >= next_tick {
                live.tx.store(rep.tx, Ordering::Relaxed);
                live.rx.store(rep.rx, Ordering::Relaxed);
                tick();
                next_tick = now + hz;
            }
            // Take no more than the count allows.
            let n = self.rxq.rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            let keep_max = (limit - rep.rx).min(n as u64) as usize;
            rep.rx += n as u64;
            let counters = &mut rep.respond;
            let mut seen = 0;
            burst.retain(|m| {
                seen += 1;
                if seen > keep_max {
                    return false;
                }
                let outcome = respond(m.data(), &mut scratch, resp_len);
                counters.count(outcome);
                let Ok(reply) = outcome else { return false };
                let (have, want) = (m.data_len(), reply.len());
                let resized = if want < have {
                    m.trim(have - want).is_ok()
                } else {
                    m.append(want - have).is_ok()
                };
                if !resized {
                    return false;
                }
                m.data_mut().copy_from_slice(&scratch[..want]);
                true
            });
            // Retry a full ring a few times, then drop the rest (counted as not sent).
            for _ in 0..64 {
                if burst.is_empty() {
                    break;
                }
                rep.tx += self.txq.tx_burst(&mut burst) as u64;
            }
            burst.clear();
            last_tx = tsc::cycles();
        }
        rep.tx_secs = last_tx.saturating_sub(start) as f64 / hz as f64;
        live.tx.store(rep.tx, Ordering::Relaxed);
        live.rx.store(rep.rx, Ordering::Relaxed);
        rep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_split_exactly() {
        let parts: Vec<u64> = (0..3)
            .map(|c| split_count(Some(10), c, 3).unwrap())
            .collect();
        assert_eq!(parts, [4, 3, 3]);
        assert_eq!(split_count(None, 0, 2), None);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(RunError::Config(ConfigError::Endless).exit_code(), 2);
        assert_eq!(RunError::Start("x".into()).exit_code(), 3);
        assert_eq!(RunError::LinkDown("x".into()).exit_code(), 4);
        assert_eq!(RunError::Failed("x".into()).exit_code(), 1);
    }
}
