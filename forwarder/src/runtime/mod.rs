//! The DPDK side of the forwarder: ports and queues, one worker per lcore running the
//! sans-IO dataplane, the master's control loop, redirect rings and reply steering.
//!
//! [`run`] takes a [`RuntimePlan`] (built from the TOML configuration by
//! `crate::control`), starts everything and returns when asked to stop.

pub mod clock;
pub mod master;
pub mod neigh;
pub mod plan;
pub mod ports;
pub mod stats;
pub mod trace;
pub mod worker;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dpdk::ring::{ring, Consumer, Producer, RingMode};
use dpdk::{Eal, Mbuf, Mempool};

use crate::dataplane::config::{DataplaneConfig, OwnerRss, PortConfig};
use crate::dataplane::laddr::{PortPolicy, DEFAULT_MAX_SCAN};
use crate::dataplane::rss::{Reta, RssModel};
use crate::dataplane::Worker as Dataplane;
use crate::runtime::clock::Clock;
use crate::runtime::ports::{
    decide_steering, open_port, OpenPort, PortPlan, Steering, SteeringMode,
};
use crate::runtime::worker::{TxPort, WorkerCtx, WorkerLink};

/// Why the runtime could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// EAL initialisation failed.
    #[error("cannot start DPDK: {0}")]
    Eal(dpdk::Error),
    /// A port could not be opened or configured.
    #[error("port {port}: {source}")]
    Port {
        /// Configured port name.
        port: String,
        /// DPDK's reason.
        source: dpdk::Error,
    },
    /// Another DPDK resource (pool, ring, lcore) failed.
    #[error("{what}: {source}")]
    Dpdk {
        /// What was being set up.
        what: &'static str,
        /// DPDK's reason.
        source: dpdk::Error,
    },
    /// The plan does not fit what DPDK offers (lcores, queues).
    #[error("{0}")]
    Plan(String),
    /// Steering mode `flow` was required and the device refused the rules.
    #[error("steering = \"flow\" but the device refused the rules: {0}")]
    Steering(String),
    /// The dataplane refused its configuration.
    #[error("worker {worker}: {source}")]
    Dataplane {
        /// Worker index.
        worker: u16,
        /// The dataplane's reason.
        source: crate::dataplane::config::ConfigError,
    },
    /// A worker panicked.
    #[error("{0}")]
    Worker(dpdk::Error),
    /// The control socket or metrics endpoint could not be opened.
    #[error("control: {0}")]
    Control(String),
}

/// One worker of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// EAL lcore to run on; `None` takes the next worker lcore.
    pub lcore: Option<u32>,
    /// (port index in [`RuntimePlan::ports`], receive queue) pairs it polls.
    pub queues: Vec<(usize, u16)>,
}

/// Everything the runtime needs, already validated.
#[derive(Debug, Clone)]
pub struct RuntimePlan {
    /// Extra EAL arguments (the devices and, unless given here, the lcore map are added).
    pub eal_args: Vec<String>,
    /// Ports.
    pub ports: Vec<PortPlan>,
    /// Workers.
    pub workers: Vec<WorkerPlan>,
    /// How FULLNAT replies are steered.
    pub steering: SteeringMode,
    /// Index of the port that FULLNAT replies arrive on (the local addresses' port).
    pub reply_port: usize,
    /// Dataplane settings shared by all workers. Real servers' `port` fields hold *plan*
    /// port indexes; they are turned into DPDK port ids at start.
    pub dataplane: DataplaneConfig,
    /// Control socket path.
    pub control_socket: Option<PathBuf>,
    /// Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
    /// Stop after this long (tests, benchmarks); `None` runs until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// Write the final counters here as JSON when stopping.
    pub stats_json: Option<PathBuf>,
    /// Mbufs in the pool.
    pub mempool_size: u32,
    /// Packet trace: pcapng file and the most packets to record.
    pub trace: Option<(PathBuf, u64)>,
    /// The configuration file, reread on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Resolve real servers' MACs too (not only the ports' gateways).
    pub resolve_real_servers: bool,
}

/// Queue depth of the master ↔ worker command queues.
const COMMAND_DEPTH: usize = 64;
/// Slots of each redirect ring and of the control ring.
const RING_SLOTS: u32 = 1024;

/// The CPUs this process may use.
fn allowed_cpus() -> Vec<u32> {
    let list = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .and_then(|l| l.split(':').nth(1))
                .map(str::trim)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "0".into());
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let mut ends = part.split('-').filter_map(|n| n.trim().parse::<u32>().ok());
        match (ends.next(), ends.next()) {
            (Some(a), Some(b)) => cpus.extend(a..=b),
            (Some(a), None) => cpus.push(a),
            _ => {}
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// EAL arguments for a plan: the user's, the devices, and an lcore map (main lcore on the
/// first allowed CPU, workers spread over the others) unless the user gave one.
pub fn eal_args(plan: &RuntimePlan) -> Vec<String> {
    let mut args = plan.eal_args.clone();
    for port in &plan.ports {
        args.extend(port.device.eal_args());
    }
    let has_lcores = plan
        .eal_args
        .iter()
        .any(|a| a == "-l" || a.starts_with("--lcores") || a.starts_with("-l") || a == "-c");
    if !has_lcores {
        let cpus = allowed_cpus();
        let mut map = vec![format!("0@{}", cpus[0])];
        for w in 0..plan.workers.len() {
            let cpu = cpus[(w + 1) % cpus.len()];
            map.push(format!("{}@{cpu}", w + 1));
        }
        args.push(format!("--lcores={}", map.join(",")));
    }
    if !plan.eal_args.iter().any(|a| a.starts_with("--file-prefix")) {
        args.push(format!("--file-prefix=l4lab-fwd-{}", std::process::id()));
    }
    args
}

/// Starts the forwarder and runs until stopped (signal, `duration`, or `ctl shutdown`).
pub fn run(plan: RuntimePlan) -> Result<(), RuntimeError> {
    let args = eal_args(&plan);
    let eal = Eal::builder()
        .args(args)
        .init()
        .map_err(RuntimeError::Eal)?;
    let result = run_on(&eal, plan);
    drop(eal);
    result
}

/// Runs the forwarder in a process whose EAL is already up (its arguments must include
/// what [`eal_args`] adds: devices and worker lcores), from the main lcore. Ports the
/// caller made itself are named by [`Device::Attached`]. This is how a test drives the
/// real runtime through `net_ring` ports it holds the other ends of.
pub fn run_on(eal: &Eal, plan: RuntimePlan) -> Result<(), RuntimeError> {
    let workers = plan.workers.len();
    if workers == 0 {
        return Err(RuntimeError::Plan("at least one worker is needed".into()));
    }
    let worker_lcores = eal.worker_lcores();
    let lcores: Vec<u32> = plan
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| w.lcore.or_else(|| worker_lcores.get(i).copied()))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            RuntimeError::Plan(format!(
                "{workers} workers need {workers} worker lcores; the EAL has {} ({:?})",
                worker_lcores.len(),
                worker_lcores
            ))
        })?;

    let pool =
        Mempool::with_defaults("l4lab_fwd", plan.mempool_size).map_err(|e| RuntimeError::Dpdk {
            what: "mbuf pool",
            source: e,
        })?;
    let tx_queues = workers as u16;
    let mut open: Vec<OpenPort> = Vec::with_capacity(plan.ports.len());
    for p in &plan.ports {
        open.push(open_port(p, &pool, tx_queues)?);
    }

    // Which worker polls each queue of the reply port.
    let reply = plan.reply_port;
    let reply_queues = plan.ports.get(reply).map_or(0, |p| p.rx_queues);
    let mut queue_owner = vec![u16::MAX; usize::from(reply_queues)];
    for (w, wp) in plan.workers.iter().enumerate() {
        for &(port, q) in &wp.queues {
            if port == reply {
                if let Some(slot) = queue_owner.get_mut(usize::from(q)) {
                    *slot = w as u16;
                }
            }
        }
    }
    let (steering, flow_rules) = match open.get(reply) {
        Some(port) => decide_steering(
            plan.steering,
            port,
            &plan.dataplane.laddrs,
            workers as u16,
            &queue_owner,
        )?,
        None => (Steering::Single, Vec::new()),
    };
    eprintln!("forwarder: steering: {steering}");

    // Dataplane configuration per worker.
    let max_id = open.iter().map(|p| usize::from(p.id.0)).max().unwrap_or(0);
    let mut dp_ports = vec![
        PortConfig {
            mac: [0; 6],
            gateway_mac: [0; 6],
            csum: l4lab_wire::ChecksumCaps::NONE,
        };
        max_id + 1
    ];
    for p in &open {
        dp_ports[usize::from(p.id.0)] = PortConfig {
            mac: p.mac,
            gateway_mac: p.plan.gateway_mac,
            csum: if p.csum_offload {
                l4lab_wire::ChecksumCaps::ALL
            } else {
                l4lab_wire::ChecksumCaps::NONE
            },
        };
    }
    let port_ids: Vec<u16> = open.iter().map(|p| p.id.0).collect();
    let mut template = plan.dataplane.clone();
    template.workers = workers as u16;
    template.ports = dp_ports;
    for svc in &mut template.services {
        for rs in &mut svc.real_servers {
            rs.port = *port_ids.get(usize::from(rs.port)).ok_or_else(|| {
                RuntimeError::Plan(format!(
                    "real server {} names port index {} of {}",
                    rs.addr,
                    rs.port,
                    port_ids.len()
                ))
            })?;
        }
    }
    let reply_model = plan.ports.get(reply).map(|p| {
        Reta::new(p.rss.reta.clone()).map(|reta| RssModel::new(p.rss.key, p.rss.types, reta))
    });
    // How a worker finds the owner of a NAT reply or ICMP error RSS gave it: the queue of
    // the clients' port (index 0) the client → VIP tuple hashes to, and who polls it.
    let owner_rss = match plan.ports.first() {
        Some(p) => match Reta::new(p.rss.reta.clone()) {
            Ok(reta) => {
                let mut queue_worker = vec![u16::MAX; usize::from(p.rx_queues)];
                for (w, wp) in plan.workers.iter().enumerate() {
                    for &(port, q) in &wp.queues {
                        if port == 0 {
                            if let Some(slot) = queue_worker.get_mut(usize::from(q)) {
                                *slot = w as u16;
                            }
                        }
                    }
                }
                Some(OwnerRss {
                    model: RssModel::new(p.rss.key, p.rss.types, reta),
                    queue_worker,
                    reply_queue_worker: queue_owner.clone(),
                })
            }
            Err(e) => {
                eprintln!(
                    "forwarder: RETA of port {}: {e}; replies RSS gives the wrong worker are dropped",
                    p.name
                );
                None
            }
        },
        None => None,
    };

    // Rings: worker → worker redirects, workers → master control packets.
    let mut redirect_out: Vec<Vec<Option<Producer<Mbuf>>>> = (0..workers)
        .map(|_| (0..workers).map(|_| None).collect())
        .collect();
    let mut redirect_in: Vec<Vec<Consumer<Mbuf>>> = (0..workers).map(|_| Vec::new()).collect();
    for (from, outs) in redirect_out.iter_mut().enumerate() {
        for (to, slot) in outs.iter_mut().enumerate() {
            if from == to {
                continue;
            }
            let (p, c) = ring::<Mbuf>(&format!("l4lab_rd{from}_{to}"), RING_SLOTS, RingMode::SPSC)
                .map_err(|e| RuntimeError::Dpdk {
                    what: "redirect ring",
                    source: e,
                })?;
            *slot = Some(p);
            redirect_in[to].push(c);
        }
    }
    let (control_tx, control_rx) =
        ring::<Mbuf>("l4lab_ctl", RING_SLOTS, RingMode::MPSC).map_err(|e| RuntimeError::Dpdk {
            what: "control ring",
            source: e,
        })?;
    // The master transmits through worker 0 (virtual devices often have no spare queue).
    let (master_out, worker0_in) =
        ring::<Mbuf>("l4lab_mtx", RING_SLOTS, RingMode::SPSC).map_err(|e| RuntimeError::Dpdk {
            what: "master tx ring",
            source: e,
        })?;
    let mut worker0_in = Some(worker0_in);

    let clock = Clock::new(dpdk::tsc::hz());
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Trace: one SPSC ring per worker would be needed for lock-free producers; one MPSC
    // ring is enough since each worker enqueues at most one copy per packet it traces.
    let (trace_tx, trace_writer) = match &plan.trace {
        Some((path, max)) if *max > 0 => {
            let (tp, tc) = ring::<Mbuf>("l4lab_trace", 4096, RingMode::MPSC).map_err(|e| {
                RuntimeError::Dpdk {
                    what: "trace ring",
                    source: e,
                }
            })?;
            let pool =
                Mempool::with_defaults("l4lab_trace", 8191).map_err(|e| RuntimeError::Dpdk {
                    what: "trace pool",
                    source: e,
                })?;
            let names = open.iter().map(|p| (p.id.0, p.plan.name.clone())).collect();
            let writer = trace::TraceWriter::create(path, tc, names, epoch)
                .map_err(RuntimeError::Control)?;
            let per_worker = (*max).div_ceil(workers as u64);
            (Some((tp, pool, per_worker)), Some(writer))
        }
        _ => (None, None),
    };
    let mut links = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    // Worker 0's Maglev tables: the other workers adopt these snapshots (one table per
    // service in memory, not one per worker). Dropped once every worker holds its share.
    let mut shared_tables = Vec::new();
    let mut redirect_out = redirect_out.into_iter();
    let mut redirect_in = redirect_in.into_iter();
    for (w, wp) in plan.workers.iter().enumerate() {
        let mut cfg = template.clone();
        cfg.worker = w as u16;
        cfg.owner_rss = owner_rss.clone();
        cfg.port_policy = match (&steering, &reply_model) {
            (Steering::Rss { .. }, Some(Ok(model))) => PortPolicy::RssAware {
                model: model.clone(),
                owned_queues: queue_owner
                    .iter()
                    .enumerate()
                    .filter(|&(_, &o)| o == w as u16)
                    .map(|(q, _)| q as u16)
                    .collect(),
                max_scan: DEFAULT_MAX_SCAN,
            },
            (Steering::Rss { .. }, Some(Err(e))) => {
                return Err(RuntimeError::Plan(format!(
                    "RETA of port {}: {e}",
                    plan.ports[reply].name
                )))
            }
            _ => PortPolicy::Partition {
                workers: workers as u16,
            },
        };
        let services = cfg.max_services;
        let dp = Dataplane::new_sharing(cfg, &shared_tables).map_err(|source| {
            RuntimeError::Dataplane {
                worker: w as u16,
                source,
            }
        })?;
        if w == 0 {
            shared_tables = dp.maglev_tables();
        }
        let mut rx = Vec::new();
        for &(port, q) in &wp.queues {
            let queue = open
                .get_mut(port)
                .and_then(|p| p.rx.get_mut(usize::from(q)))
                .and_then(Option::take)
                .ok_or_else(|| {
                    RuntimeError::Plan(format!(
                        "worker {w}: rx queue {q} of port index {port} is missing or taken twice"
                    ))
                })?;
            rx.push(queue);
        }
        let mut tx: Vec<Option<TxPort>> = (0..=max_id).map(|_| None).collect();
        for p in &mut open {
            if let Some(q) = p.tx.get_mut(w).and_then(Option::take) {
                tx[usize::from(p.id.0)] = Some(TxPort::new(q));
            }
        }
        let link = Arc::new(WorkerLink::new(COMMAND_DEPTH, services));
        let to_master = control_tx
            .try_clone()
            .ok_or_else(|| RuntimeError::Plan("control ring is not multi-producer".into()))?;
        let ctx = WorkerCtx {
            id: w as u16,
            dp,
            rx,
            tx,
            redirect_out: redirect_out.next().unwrap_or_default(),
            redirect_in: redirect_in.next().unwrap_or_default(),
            to_master,
            from_master: if w == 0 { worker0_in.take() } else { None },
            link: link.clone(),
            clock,
            trace: match &trace_tx {
                Some((ring, pool, budget)) => Some(trace::Tracer::new(
                    ring.try_clone().ok_or_else(|| {
                        RuntimeError::Plan("trace ring is not multi-producer".into())
                    })?,
                    pool.clone(),
                    w as u16,
                    *budget,
                )),
                None => None,
            },
        };
        let handle =
            dpdk::lcore::launch(lcores[w], move || ctx.run()).map_err(|e| RuntimeError::Dpdk {
                what: "launching a worker",
                source: e,
            })?;
        links.push(link);
        handles.push(handle);
    }
    drop(control_tx);
    drop(shared_tables);

    let quit = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| RuntimeError::Control(format!("signal handler: {e}")))?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, quit.clone())
            .map_err(|e| RuntimeError::Control(format!("signal handler: {e}")))?;
    }
    let io = master::MasterIo {
        out: master_out,
        control_rx,
        links: links.clone(),
        quit: quit.clone(),
        hup,
        lcores: lcores.clone(),
    };
    drop(trace_tx);
    let mut master = master::Master::new(&plan, &open, io, steering.clone(), trace_writer)?;
    register_telemetry(&links);
    let result = master.run(plan.duration, &pool);

    for link in &links {
        link.quit.store(true, Ordering::Relaxed);
    }
    let mut first_err = result.err();
    for handle in handles {
        if let Err(e) = handle.join() {
            eprintln!("forwarder: {e}");
            first_err.get_or_insert(RuntimeError::Worker(e));
        }
    }
    master.finish(plan.stats_json.as_deref());
    drop(flow_rules);
    drop(master);
    drop(open);
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Registers `/l4lab/stats` with DPDK telemetry: per-worker counters, flattened as
/// `w<N>_<counter>` (drops as `w<N>_drop_<reason>`, non-zero ones only).
fn register_telemetry(links: &[Arc<WorkerLink>]) {
    let links: Vec<Arc<WorkerLink>> = links.to_vec();
    let answer = move || {
        let mut out = Vec::new();
        for (w, link) in links.iter().enumerate() {
            let (c, live) = link.counters.snapshot();
            out.extend([
                (format!("w{w}_rx_packets"), c.rx_packets),
                (format!("w{w}_tx_packets"), c.tx_packets),
                (format!("w{w}_redirects"), c.redirects),
                (format!("w{w}_conns_created"), c.conns_created),
                (format!("w{w}_conns_live"), live),
            ]);
            for &r in crate::dataplane::DropReason::ALL.iter() {
                let n = c.drops[r as usize];
                if n > 0 {
                    out.push((format!("w{w}_drop_{}", r.name()), n));
                }
            }
        }
        out
    };
    if let Err(e) = dpdk::telemetry::register(
        "/l4lab/stats",
        "l4lab forwarder counters per worker",
        Box::new(answer),
    ) {
        eprintln!("forwarder: telemetry not available: {e}");
    }
}

/// The forwarder's own addresses that ARP/NDP must answer for.
pub fn owned_addrs(cfg: &DataplaneConfig) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = cfg
        .services
        .iter()
        .map(|s| s.key.vip)
        .chain(cfg.laddrs.iter().copied())
        .chain(cfg.host_addrs.iter().copied())
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}
