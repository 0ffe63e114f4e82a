//! The master lcore: control plane only. It answers ARP for the forwarder's addresses,
//! serves the control socket and metrics, passes configuration changes to the workers
//! (waiting until each has applied them) and aggregates their counters. It never touches
//! the fast path.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::ring::{Consumer, Producer};
use dpdk::{Burst, Mbuf, Mempool};

use crate::control::config::{Mode as CfgMode, Proto as CfgProto, Scheduler};
use crate::control::metrics::{
    FaultStats, MetricsServer, NeighbourStats, PortStats as MetricsPort, ServiceStats,
    StatsSnapshot, WorkerStats as MetricsWorker,
};
use crate::control::proto::{
    ConnFilter, ConnInfo as ProtoConn, ConnState, LaddrInfo, RealServerInfo, Request, Response,
    ServiceInfo, ServiceKey as ProtoKey,
};
use crate::control::server::ControlServer;
use crate::dataplane::config::{ConfigChange, Mode, RealServerConfig, ServiceConfig, ServiceKey};
use crate::dataplane::conn::TcpState;
use crate::dataplane::counters::Counters;
use crate::dataplane::fault::FaultConfig;
use crate::dataplane::sched::maglev::Maglev;
use crate::dataplane::sched::SchedKind;
use crate::dataplane::types::Proto;
use crate::dataplane::verdict::DropReason;
use crate::dataplane::worker::ConnInfo;
use crate::runtime::neigh;
use crate::runtime::plan;
use crate::runtime::ports::{OpenPort, Steering};
use crate::runtime::trace::TraceWriter;
use crate::runtime::worker::{Command, Reply, WorkerLink};
use crate::runtime::{owned_addrs, RuntimeError, RuntimePlan};

/// How long the master waits for one worker to answer a command. Workers answer between
/// bursts (microseconds); the margin is for machines where busy-polling lcores share CPUs.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of one worker as the master last read them.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// Worker index.
    pub worker: u16,
    /// The dataplane's counters.
    pub dp: Counters,
    /// Live connections.
    pub live_conns: u64,
    /// Runtime counters: tx queue full, redirect ring full, redirects received, control
    /// ring full, chained mbufs, loop iterations.
    pub tx_full: u64,
    /// See `tx_full`.
    pub redirect_full: u64,
    /// See `tx_full`.
    pub redirect_in: u64,
    /// See `tx_full`.
    pub control_full: u64,
    /// See `tx_full`.
    pub chained: u64,
    /// See `tx_full`.
    pub loops: u64,
}

/// The master's state.
#[derive(Debug)]
pub struct Master {
    ports: Vec<MasterPort>,
    control_rx: Consumer<Mbuf>,
    /// Packets to send, through worker 0.
    out: Producer<Mbuf>,
    links: Vec<Arc<WorkerLink>>,
    steering: Steering,
    quit: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    config_path: Option<std::path::PathBuf>,
    owned: Vec<IpAddr>,
    seq: u64,
    arp_replies: u64,
    control_dropped: u64,
    announced: u64,
    /// The configuration as the workers hold it (services, local addresses).
    shadow: Shadow,
    lcores: Vec<u32>,
    trace: Option<TraceWriter>,
    /// Which `Counters::services` slot each service uses (asked from worker 0).
    slots: Vec<(ServiceKey, usize)>,
    server: Option<ControlServer>,
    metrics: Option<MetricsServer>,
    /// The fault the workers inject, if any (shown in `stats` and metrics).
    fault: Option<FaultConfig>,
    /// Next-hop resolution: the ports' gateways, and real servers where asked.
    resolver: neigh::Resolver,
    /// Per master port: the gateway to resolve, if any.
    gateways: Vec<Option<IpAddr>>,
    resolve_real_servers: bool,
    /// The master's clock for resolution (requests are due relative to it).
    started: Instant,
    /// When the resolution targets were last recomputed from the configuration.
    targets_at: Option<Instant>,
    /// ARP requests and neighbour solicitations sent.
    neigh_requests: u64,
}

/// The master's copy of what it told the workers, for listing.
#[derive(Debug, Clone)]
struct Shadow {
    services: Vec<ServiceConfig>,
    laddrs: Vec<(String, IpAddr)>,
    /// DPDK port id real servers are reached through.
    rs_port: u16,
    /// Name of the port local addresses belong to.
    laddr_port: String,
}

#[derive(Debug)]
struct MasterPort {
    id: u16,
    name: String,
    mac: [u8; 6],
}

/// How often the resolution targets are recomputed from the configuration.
const TARGETS_EVERY: Duration = Duration::from_millis(200);

/// The master's connections to the workers.
#[derive(Debug)]
pub struct MasterIo {
    /// Packets the master sends, through worker 0.
    pub out: Producer<Mbuf>,
    /// Control-plane packets from the workers.
    pub control_rx: Consumer<Mbuf>,
    /// One link per worker.
    pub links: Vec<Arc<WorkerLink>>,
    /// Set to stop (signals, `duration`).
    pub quit: Arc<AtomicBool>,
    /// Set by SIGHUP: reread the configuration file.
    pub hup: Arc<AtomicBool>,
    /// The workers' lcores.
    pub lcores: Vec<u32>,
}

impl Master {
    /// Builds the master over the opened ports and the workers' links.
    pub fn new(
        plan: &RuntimePlan,
        open: &[OpenPort],
        io: MasterIo,
        steering: Steering,
        trace: Option<TraceWriter>,
    ) -> Result<Master, RuntimeError> {
        let MasterIo {
            out,
            control_rx,
            links,
            quit,
            hup,
            lcores,
        } = io;
        let rs_port = open.get(plan.reply_port).map_or(0, |p| p.id.0);
        let laddr_port = plan
            .ports
            .get(plan.reply_port)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let shadow = Shadow {
            services: plan.dataplane.services.clone(),
            laddrs: plan
                .dataplane
                .laddrs
                .iter()
                .map(|a| (laddr_port.clone(), *a))
                .collect(),
            rs_port,
            laddr_port,
        };
        let server = match &plan.control_socket {
            Some(path) => {
                Some(ControlServer::bind(path).map_err(|e| RuntimeError::Control(e.to_string()))?)
            }
            None => None,
        };
        let metrics = match plan.metrics {
            Some(addr) => Some(
                MetricsServer::bind(addr)
                    .map_err(|e| RuntimeError::Control(format!("metrics on {addr}: {e}")))?,
            ),
            None => None,
        };
        if let Some(f) = plan.dataplane.fault {
            for line in [
                "*****************************************************************".to_owned(),
                format!(
                    "WARNING: FAULT INJECTION IS ON: {} on every {} eligible packets of each worker.",
                    f.kind, f.every
                ),
                "This forwarder is broken on purpose (to test the harness); remove the"
                    .to_owned(),
                "[fault] section of its configuration to forward correctly.".to_owned(),
                "*****************************************************************".to_owned(),
            ] {
                eprintln!("forwarder: {line}");
            }
        }
        let ports = open
            .iter()
            .map(|p| MasterPort {
                id: p.id.0,
                name: p.plan.name.clone(),
                mac: p.mac,
            })
            .collect();
        Ok(Master {
            ports,
            control_rx,
            out,
            links,
            steering,
            quit,
            hup,
            config_path: plan.config_path.clone(),
            owned: owned_addrs(&plan.dataplane),
            seq: 0,
            arp_replies: 0,
            control_dropped: 0,
            announced: 0,
            shadow,
            lcores,
            trace,
            slots: Vec::new(),
            server,
            metrics,
            fault: plan.dataplane.fault,
            resolver: neigh::Resolver::default(),
            gateways: plan.ports.iter().map(|p| p.gateway).collect(),
            resolve_real_servers: plan.resolve_real_servers,
            started: Instant::now(),
            targets_at: None,
            neigh_requests: 0,
        })
    }

    /// Runs the control loop until `quit` is set or `duration` has passed.
    pub fn run(&mut self, duration: Option<Duration>, pool: &Mempool) -> Result<(), RuntimeError> {
        let start = Instant::now();
        self.refresh_slots();
        self.announce(pool);
        while !self.quit.load(Ordering::Relaxed) {
            if duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            if self.hup.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            self.poll_control_packets();
            self.poll_neighbours(pool);
            self.poll_trace();
            self.poll_control_socket();
            self.poll_metrics();
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// How replies are steered.
    pub fn steering(&self) -> &Steering {
        &self.steering
    }

    /// Asks the loop to stop.
    pub fn request_quit(&self) {
        self.quit.store(true, Ordering::Relaxed);
    }

    fn poll_control_packets(&mut self) {
        let mut burst = Burst::new();
        while self.control_rx.dequeue_burst(&mut burst) > 0 {
            for m in burst.drain() {
                self.control_packet(m);
            }
        }
    }

    /// Learns next hops from neighbour frames, answers ARP and neighbour solicitations
    /// for owned addresses; everything else is counted and freed.
    fn control_packet(&mut self, mut m: Mbuf) {
        let port = m.port();
        let Some(idx) = self.ports.iter().position(|p| p.id == port) else {
            self.control_dropped += 1;
            return;
        };
        let learned = neigh::learn(m.data());
        if let Some((addr, mac)) = learned {
            self.learn_neighbour(addr, mac);
        }
        let Some(reply) = neigh::answer(m.data(), self.ports[idx].mac, &self.owned) else {
            if learned.is_none() {
                self.control_dropped += 1;
            }
            return;
        };
        m.reset();
        if m.extend_from_slice(&reply).is_err() {
            self.control_dropped += 1;
            return;
        }
        self.send_out(port, m);
    }

    /// Sends through worker 0's transmit queue of `port`.
    fn send_out(&mut self, port: u16, mut m: Mbuf) {
        m.set_port(port);
        if self.out.enqueue(m).is_ok() {
            self.arp_replies += 1;
        } else {
            self.control_dropped += 1;
        }
    }

    /// What to resolve: each port's gateway, and with `[neighbours] real_servers` every
    /// real server without a static MAC (on the real servers' port).
    fn neighbour_targets(&self) -> Vec<(IpAddr, usize, neigh::Role)> {
        let mut t: Vec<(IpAddr, usize, neigh::Role)> = self
            .gateways
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.map(|a| (a, i, neigh::Role::Gateway(i))))
            .collect();
        if self.resolve_real_servers {
            if let Some(rs_port) = self.ports.iter().position(|p| p.id == self.shadow.rs_port) {
                for s in &self.shadow.services {
                    for rs in s.real_servers.iter().filter(|r| r.mac.is_none()) {
                        t.push((rs.addr.ip(), rs_port, neigh::Role::RealServer));
                    }
                }
            }
        }
        t
    }

    /// An owned address of `target`'s family to ask from on port `port` (a local address
    /// of that port first), if any.
    fn neighbour_source(&self, port: usize, target: IpAddr) -> Option<IpAddr> {
        let name = &self.ports.get(port)?.name;
        let same = |a: &IpAddr| a.is_ipv4() == target.is_ipv4();
        self.shadow
            .laddrs
            .iter()
            .filter(|(p, a)| p == name && same(a))
            .map(|(_, a)| *a)
            .next()
            .or_else(|| self.owned.iter().copied().find(same))
    }

    /// Sends the ARP requests / neighbour solicitations that are due.
    fn poll_neighbours(&mut self, pool: &Mempool) {
        if self.targets_at.is_none_or(|t| t.elapsed() >= TARGETS_EVERY) {
            let targets = self.neighbour_targets();
            self.resolver.set_targets(&targets);
            self.targets_at = Some(Instant::now());
        }
        for (port, target) in self.resolver.due(self.started.elapsed()) {
            let Some(src) = self.neighbour_source(port, target) else {
                continue;
            };
            let (id, mac) = (self.ports[port].id, self.ports[port].mac);
            let frame = match (src, target) {
                (IpAddr::V4(s), IpAddr::V4(t)) => neigh::arp_request(mac, s, t),
                (IpAddr::V6(s), IpAddr::V6(t)) => neigh::neighbor_solicit(mac, s, t),
                _ => continue,
            };
            match self.send_frame(pool, id, &frame) {
                None => return,
                Some(true) => self.neigh_requests += 1,
                Some(false) => self.control_dropped += 1,
            }
        }
    }

    /// A neighbour's MAC, learned from a frame: the workers get it if it is a next hop
    /// whose MAC is new or changed.
    fn learn_neighbour(&mut self, addr: IpAddr, mac: [u8; 6]) {
        for update in self.resolver.learn(addr, mac) {
            let change = match update {
                neigh::Update::Gateway { port, mac } => match self.ports.get(port) {
                    Some(p) => ConfigChange::SetGatewayMac { port: p.id, mac },
                    None => continue,
                },
                neigh::Update::RealServer { addr, mac } => {
                    ConfigChange::SetRealServerMac { addr, mac }
                }
            };
            match self.change(change) {
                Ok(()) => eprintln!(
                    "forwarder: next hop {addr} is at {}",
                    crate::control::config::MacAddr(mac)
                ),
                Err(e) => eprintln!("forwarder: next hop {addr}: the workers refused it: {e}"),
            }
        }
    }

    /// A change with the MACs learned so far filled in for real servers that have none.
    fn with_learned_macs(&self, mut change: ConfigChange) -> ConfigChange {
        let fill = |rs: &mut RealServerConfig| {
            if rs.mac.is_none() {
                rs.mac = self.resolver.mac_of(rs.addr.ip());
            }
        };
        if !self.resolve_real_servers {
            return change;
        }
        match &mut change {
            ConfigChange::AddService(s) => s.real_servers.iter_mut().for_each(fill),
            ConfigChange::AddRealServer { rs, .. } => fill(rs),
            _ => {}
        }
        change
    }

    /// Gratuitous ARP / unsolicited advertisements for every owned address on every port.
    fn announce(&mut self, pool: &Mempool) {
        let mut sent = 0;
        for i in 0..self.ports.len() {
            let (id, mac) = (self.ports[i].id, self.ports[i].mac);
            for frame in neigh::announcements(mac, &self.owned) {
                match self.send_frame(pool, id, &frame) {
                    None => {
                        self.announced = sent;
                        return;
                    }
                    Some(true) => sent += 1,
                    Some(false) => {}
                }
            }
        }
        self.announced = sent;
    }

    /// Sends a frame the master built out of port `id`, through worker 0: `None` when the
    /// pool has no mbuf, `Some(false)` when the frame does not fit or the ring is full.
    fn send_frame(&mut self, pool: &Mempool, id: u16, frame: &[u8]) -> Option<bool> {
        let mut m = Mbuf::alloc(pool)?;
        if m.extend_from_slice(frame).is_err() {
            return Some(false);
        }
        m.set_port(id);
        Some(self.out.enqueue(m).is_ok())
    }

    /// Applies a change on every worker: first on worker 0; only if it accepts, on the
    /// others. A refused change therefore changes nothing anywhere (every worker holds
    /// the same configuration and applies changes all-or-nothing).
    pub fn change(&mut self, change: ConfigChange) -> Result<(), String> {
        let change = self.with_learned_macs(change);
        // Maglev snapshots the workers gave up: freed here, after the last worker has
        // applied the change (so none still reads them).
        let mut retired: Vec<Maglev> = Vec::new();
        let first = self.send(0, |seq| Command::Change {
            seq,
            change: change.clone(),
            offered: Vec::new(),
        })?;
        // Worker 0's tables after the change: the others adopt these snapshots.
        let offered = match first {
            Reply::Applied { result: Err(e), .. } => return Err(e),
            Reply::Applied {
                result: Ok(()),
                tables,
                retired: r,
                ..
            } => {
                retired.extend(r);
                tables
            }
            Reply::Conns { .. } | Reply::Slots { .. } => {
                return Err("worker 0 answered out of turn".into())
            }
        };
        for w in 1..self.links.len() {
            match self.send(w, |seq| Command::Change {
                seq,
                change: change.clone(),
                offered: offered.clone(),
            })? {
                Reply::Applied {
                    result: Ok(()),
                    retired: r,
                    ..
                } => retired.extend(r),
                Reply::Applied { result: Err(e), .. } => {
                    return Err(format!(
                        "worker {w} refused a change worker 0 accepted: {e}"
                    ))
                }
                Reply::Conns { .. } | Reply::Slots { .. } => {
                    return Err(format!("worker {w} answered out of turn"))
                }
            }
        }
        drop(offered);
        drop(retired);
        self.refresh_slots();
        Ok(())
    }

    /// Asks worker 0 which counter slot each service uses.
    fn refresh_slots(&mut self) {
        if let Ok(Reply::Slots { slots, .. }) = self.send(0, |seq| Command::ServiceSlots { seq }) {
            self.slots = slots;
        }
    }

    /// Up to `max` live connections from every worker.
    pub fn list_conns(&mut self, max: usize) -> Result<Vec<ConnInfo>, String> {
        let mut all = Vec::new();
        for w in 0..self.links.len() {
            let left = max.saturating_sub(all.len());
            if left == 0 {
                break;
            }
            match self.send(w, |seq| Command::ListConns { seq, max: left })? {
                Reply::Conns { conns, .. } => all.extend(conns),
                Reply::Applied { .. } | Reply::Slots { .. } => {
                    return Err(format!("worker {w} answered out of turn"))
                }
            }
        }
        Ok(all)
    }

    fn send(&mut self, worker: usize, cmd: impl FnOnce(u64) -> Command) -> Result<Reply, String> {
        let link = self
            .links
            .get(worker)
            .ok_or_else(|| format!("no worker {worker}"))?
            .clone();
        // Stale replies (from a command that timed out earlier) are discarded.
        while link.outbox.pop().is_some() {}
        self.seq += 1;
        let seq = self.seq;
        link.inbox
            .push(cmd(seq))
            .map_err(|_| format!("worker {worker}'s command queue is full"))?;
        let start = Instant::now();
        loop {
            if let Some(reply) = link.outbox.pop() {
                let got = match &reply {
                    Reply::Applied { seq, .. }
                    | Reply::Conns { seq, .. }
                    | Reply::Slots { seq, .. } => *seq,
                };
                if got == seq {
                    return Ok(reply);
                }
                continue;
            }
            if start.elapsed() > APPLY_TIMEOUT {
                return Err(format!(
                    "worker {worker} did not answer within {} ms",
                    APPLY_TIMEOUT.as_millis()
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Every worker's last published counters.
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        self.links
            .iter()
            .enumerate()
            .map(|(w, link)| {
                let (dp, live_conns) = link.counters.snapshot();
                let rt = &link.counters.runtime;
                let r = Ordering::Relaxed;
                WorkerStats {
                    worker: w as u16,
                    dp,
                    live_conns,
                    tx_full: rt.tx_full.load(r),
                    redirect_full: rt.redirect_full.load(r),
                    redirect_in: rt.redirect_in.load(r),
                    control_full: rt.control_full.load(r),
                    chained: rt.chained.load(r),
                    loops: rt.loops.load(r),
                }
            })
            .collect()
    }

    /// The final counters as JSON (per worker, with drops by reason).
    pub fn stats_json(&self) -> serde_json::Value {
        let workers: Vec<serde_json::Value> = self
            .worker_stats()
            .iter()
            .map(|w| {
                let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
                    .iter()
                    .map(|r| (r.name().to_owned(), w.dp.drops[*r as usize].into()))
                    .collect();
                serde_json::json!({
                    "worker": w.worker,
                    "rx_packets": w.dp.rx_packets,
                    "rx_bytes": w.dp.rx_bytes,
                    "tx_packets": w.dp.tx_packets,
                    "tx_bytes": w.dp.tx_bytes,
                    "redirects": w.dp.redirects,
                    "control": w.dp.control,
                    "conns_created": w.dp.conns_created,
                    "conns_expired": w.dp.conns_expired,
                    "live_conns": w.live_conns,
                    "toa_inserted": w.dp.toa_inserted,
                    "toa_skipped": w.dp.toa_skipped,
                    "faults_injected": w.dp.faults_injected,
                    "drops": drops,
                    "tx_full": w.tx_full,
                    "redirect_full": w.redirect_full,
                    "redirect_in": w.redirect_in,
                    "control_full": w.control_full,
                    "chained": w.chained,
                })
            })
            .collect();
        serde_json::json!({
            "steering": self.steering.name(),
            "steering_detail": self.steering.to_string(),
            "ports": self
                .ports
                .iter()
                .zip(self.snapshot().ports)
                .map(|(p, st)| serde_json::json!({
                    "name": p.name,
                    "id": p.id,
                    "rx_packets": st.rx_packets,
                    "tx_packets": st.tx_packets,
                    "rx_bytes": st.rx_bytes,
                    "tx_bytes": st.tx_bytes,
                    "rx_missed": st.rx_missed,
                    "rx_errors": st.rx_errors,
                    "tx_errors": st.tx_errors,
                }))
                .collect::<Vec<_>>(),
            "services": serde_json::to_value(&self.snapshot().services).unwrap_or_default(),
            "arp_replies": self.arp_replies,
            "announcements": self.announced,
            "control_dropped": self.control_dropped,
            "fault": serde_json::to_value(self.fault_stats(&self.worker_stats())).unwrap_or_default(),
            "workers": workers,
        })
    }

    /// Prints a summary and writes the JSON counters where asked (and closes the trace).
    pub fn finish(&mut self, stats_json: Option<&Path>) {
        if let Some(t) = self.trace.as_mut() {
            match t.finish() {
                Ok(()) => eprintln!("forwarder: trace: {} packets written", t.written),
                Err(e) => eprintln!("forwarder: {e}"),
            }
        }
        for w in self.worker_stats() {
            eprintln!(
                "forwarder: worker {}: rx {} tx {} drops {} redirects {} control {} conns {} (live {})",
                w.worker,
                w.dp.rx_packets,
                w.dp.tx_packets,
                w.dp.total_drops(),
                w.dp.redirects,
                w.dp.control,
                w.dp.conns_created,
                w.live_conns
            );
        }
        if let Some(path) = stats_json {
            let text = self.stats_json().to_string();
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("forwarder: cannot write {}: {e}", path.display());
            }
        }
    }
}

impl Master {
    fn poll_control_socket(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        for (client, request) in server.poll_requests() {
            let response = self.handle(request);
            server.respond(client, &response);
        }
        self.server = Some(server);
    }

    /// SIGHUP: rereads the configuration file and applies what changed in services, real
    /// servers and local addresses through the same path as control commands. Ports,
    /// workers, EAL arguments, tables and the control section need a restart.
    pub fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            eprintln!("forwarder: SIGHUP: no configuration file to reload");
            return;
        };
        let config = match crate::control::config::Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("forwarder: SIGHUP: configuration not reloaded: {e}");
                return;
            }
        };
        let new = plan::plan(&config, None, None);
        let mut wanted = new.dataplane.services.clone();
        for s in &mut wanted {
            for rs in &mut s.real_servers {
                rs.port = self.shadow.rs_port;
            }
        }
        let mut changes = Vec::new();
        for old in &self.shadow.services {
            match wanted.iter().find(|w| w.key == old.key) {
                None => changes.push(ConfigChange::RemoveService(old.key)),
                Some(w)
                    if w.mode != old.mode
                        || w.sched != old.sched
                        || w.toa != old.toa
                        || w.persistence != old.persistence =>
                {
                    changes.push(ConfigChange::RemoveService(old.key));
                    changes.push(ConfigChange::AddService(w.clone()));
                }
                Some(w) => {
                    for rs in &old.real_servers {
                        match w.real_servers.iter().find(|r| r.addr == rs.addr) {
                            None => changes.push(ConfigChange::RemoveRealServer {
                                service: old.key,
                                addr: rs.addr,
                            }),
                            Some(n) if n.weight != rs.weight => {
                                changes.push(ConfigChange::SetWeight {
                                    service: old.key,
                                    addr: rs.addr,
                                    weight: n.weight,
                                })
                            }
                            Some(_) => {}
                        }
                    }
                    for rs in &w.real_servers {
                        if !old.real_servers.iter().any(|r| r.addr == rs.addr) {
                            changes.push(ConfigChange::AddRealServer {
                                service: old.key,
                                rs: *rs,
                            });
                        }
                    }
                }
            }
        }
        for w in &wanted {
            if !self.shadow.services.iter().any(|s| s.key == w.key) {
                changes.push(ConfigChange::AddService(w.clone()));
            }
        }
        let old_laddrs: Vec<IpAddr> = self.shadow.laddrs.iter().map(|(_, a)| *a).collect();
        for a in &new.dataplane.laddrs {
            if !old_laddrs.contains(a) {
                changes.push(ConfigChange::AddLaddr(*a));
            }
        }
        for a in &old_laddrs {
            if !new.dataplane.laddrs.contains(a) {
                changes.push(ConfigChange::RemoveLaddr(*a));
            }
        }
        let (mut applied, mut refused) = (0, 0);
        for change in changes {
            match self.change(change.clone()) {
                Ok(()) => {
                    applied += 1;
                    self.shadow_apply(&change);
                }
                Err(e) => {
                    refused += 1;
                    eprintln!("forwarder: SIGHUP: {change:?} refused: {e}");
                }
            }
        }
        eprintln!(
            "forwarder: SIGHUP: {} reloaded: {applied} changes applied, {refused} refused",
            path.display()
        );
    }

    /// Mirrors an applied change in the master's copy of the configuration.
    fn shadow_apply(&mut self, change: &ConfigChange) {
        let sh = &mut self.shadow;
        match change {
            ConfigChange::AddService(s) => sh.services.push(s.clone()),
            ConfigChange::RemoveService(k) => sh.services.retain(|s| s.key != *k),
            ConfigChange::AddRealServer { service, rs } => {
                if let Some(s) = sh.services.iter_mut().find(|s| s.key == *service) {
                    s.real_servers.push(*rs);
                }
            }
            ConfigChange::RemoveRealServer { service, addr } => {
                if let Some(s) = sh.services.iter_mut().find(|s| s.key == *service) {
                    s.real_servers.retain(|r| r.addr != *addr);
                }
            }
            ConfigChange::SetWeight {
                service,
                addr,
                weight,
            } => {
                if let Some(r) = sh
                    .services
                    .iter_mut()
                    .find(|s| s.key == *service)
                    .and_then(|s| s.real_servers.iter_mut().find(|r| r.addr == *addr))
                {
                    r.weight = *weight;
                }
            }
            ConfigChange::AddLaddr(a) => {
                let port = sh.laddr_port.clone();
                sh.laddrs.push((port, *a));
                if !self.owned.contains(a) {
                    self.owned.push(*a);
                }
            }
            ConfigChange::RemoveLaddr(a) => sh.laddrs.retain(|(_, x)| x != a),
            // Learned, not configured: the resolver holds them.
            ConfigChange::SetGatewayMac { .. } | ConfigChange::SetRealServerMac { .. } => {}
        }
    }

    fn poll_trace(&mut self) {
        if let Some(t) = self.trace.as_mut() {
            if let Err(e) = t.drain() {
                eprintln!("forwarder: {e}; tracing stops");
                self.trace = None;
            }
        }
    }

    fn poll_metrics(&mut self) {
        let Some(mut metrics) = self.metrics.take() else {
            return;
        };
        metrics.poll(|| self.snapshot());
        self.metrics = Some(metrics);
    }

    /// Carries out one control request. A refused change leaves every worker as it was.
    pub fn handle(&mut self, request: Request) -> Response {
        match self.try_handle(request) {
            Ok(r) => r,
            Err(message) => Response::Error { message },
        }
    }

    fn try_handle(&mut self, request: Request) -> Result<Response, String> {
        match request {
            Request::ServiceAdd { service } => {
                let cfg = ServiceConfig {
                    key: dp_key(&service.key),
                    mode: plan::mode(service.mode),
                    sched: service.scheduler.into(),
                    real_servers: Vec::new(),
                    toa: service.toa,
                    persistence: service.persistence.map(|d| d.as_nanos() as u64),
                };
                self.change(ConfigChange::AddService(cfg.clone()))?;
                self.shadow.services.push(cfg);
                Ok(Response::Ok)
            }
            Request::ServiceDel { service } => {
                let key = dp_key(&service);
                self.change(ConfigChange::RemoveService(key))?;
                self.shadow.services.retain(|s| s.key != key);
                Ok(Response::Ok)
            }
            Request::ServiceList => Ok(Response::Services {
                services: self.service_infos()?,
            }),
            Request::RsAdd { service, rs } => {
                let key = dp_key(&service);
                let rs = RealServerConfig {
                    addr: rs.addr,
                    weight: rs.weight.get(),
                    mac: rs.mac.map(|m| m.0),
                    port: self.shadow.rs_port,
                };
                self.change(ConfigChange::AddRealServer { service: key, rs })?;
                if let Some(s) = self.shadow.services.iter_mut().find(|s| s.key == key) {
                    s.real_servers.push(rs);
                }
                Ok(Response::Ok)
            }
            Request::RsDel { service, addr } => {
                let key = dp_key(&service);
                self.change(ConfigChange::RemoveRealServer { service: key, addr })?;
                if let Some(s) = self.shadow.services.iter_mut().find(|s| s.key == key) {
                    s.real_servers.retain(|r| r.addr != addr);
                }
                Ok(Response::Ok)
            }
            Request::RsEdit {
                service,
                addr,
                weight,
            } => {
                let key = dp_key(&service);
                let weight = weight.get();
                self.change(ConfigChange::SetWeight {
                    service: key,
                    addr,
                    weight,
                })?;
                if let Some(rs) = self
                    .shadow
                    .services
                    .iter_mut()
                    .find(|s| s.key == key)
                    .and_then(|s| s.real_servers.iter_mut().find(|r| r.addr == addr))
                {
                    rs.weight = weight;
                }
                Ok(Response::Ok)
            }
            Request::LaddrAdd { port, addr } => {
                if port != self.shadow.laddr_port {
                    return Err(format!(
                        "local addresses live on port {:?}, not {port:?}",
                        self.shadow.laddr_port
                    ));
                }
                self.change(ConfigChange::AddLaddr(addr))?;
                self.shadow.laddrs.push((port, addr));
                if !self.owned.contains(&addr) {
                    self.owned.push(addr);
                }
                Ok(Response::Ok)
            }
            Request::LaddrDel { port, addr } => {
                if port != self.shadow.laddr_port {
                    return Err(format!("no local address {addr} on port {port:?}"));
                }
                self.change(ConfigChange::RemoveLaddr(addr))?;
                self.shadow.laddrs.retain(|(_, a)| *a != addr);
                Ok(Response::Ok)
            }
            Request::LaddrList { port } => {
                let conns = self.list_conns(usize::MAX)?;
                let laddrs = self
                    .shadow
                    .laddrs
                    .iter()
                    .filter(|(p, _)| port.as_ref().is_none_or(|want| want == p))
                    .map(|(p, a)| LaddrInfo {
                        port: p.clone(),
                        addr: *a,
                        conns: conns
                            .iter()
                            .filter(|c| c.local.is_some_and(|l| l.ip() == *a))
                            .count() as u64,
                    })
                    .collect();
                Ok(Response::Laddrs { laddrs })
            }
            Request::ConnList { filter } => {
                let limit = filter.limit as usize;
                let all = self.list_conns(usize::MAX)?;
                let mut conns: Vec<ProtoConn> = all
                    .iter()
                    .map(proto_conn)
                    .filter(|c| conn_matches(c, &filter))
                    .collect();
                let truncated = conns.len() > limit;
                conns.truncate(limit);
                Ok(Response::Conns { conns, truncated })
            }
            Request::Stats => Ok(Response::Stats {
                stats: self.snapshot(),
            }),
        }
    }

    fn service_infos(&mut self) -> Result<Vec<ServiceInfo>, String> {
        let conns = self.list_conns(usize::MAX)?;
        Ok(self
            .shadow
            .services
            .iter()
            .map(|s| ServiceInfo {
                key: proto_key(&s.key),
                mode: cfg_mode(s.mode),
                scheduler: cfg_sched(s.sched),
                toa: s.toa,
                persistence: s.persistence.map(Duration::from_nanos),
                real_servers: s
                    .real_servers
                    .iter()
                    .map(|r| {
                        let mine = conns.iter().filter(|c| {
                            c.rs == r.addr
                                && c.in_tuple.dst == s.key.vip
                                && c.in_tuple.dport == s.key.vport
                        });
                        let (mut active, mut inactive) = (0, 0);
                        for c in mine {
                            if c.state.is_active() {
                                active += 1;
                            } else {
                                inactive += 1;
                            }
                        }
                        RealServerInfo {
                            addr: r.addr,
                            weight: r.weight,
                            active_conns: active,
                            inactive_conns: inactive,
                        }
                    })
                    .collect(),
            })
            .collect())
    }

    /// The injected fault and its counts, `None` when off.
    fn fault_stats(&self, workers: &[WorkerStats]) -> Option<FaultStats> {
        let f = self.fault?;
        let by_worker: Vec<(u16, u64)> = workers
            .iter()
            .map(|w| (w.worker, w.dp.faults_injected))
            .collect();
        Some(FaultStats {
            kind: f.kind.name().to_owned(),
            every: f.every,
            injected: by_worker.iter().map(|&(_, n)| n).sum(),
            by_worker,
        })
    }

    /// Counters for `stats`, the metrics endpoint and telemetry.
    pub fn snapshot(&self) -> StatsSnapshot {
        let workers: Vec<WorkerStats> = self.worker_stats();
        let services = self
            .shadow
            .services
            .iter()
            .map(|s| {
                let slot = self
                    .slots
                    .iter()
                    .find(|(k, _)| *k == s.key)
                    .map(|&(_, i)| i);
                let (mut packets, mut bytes, mut created, mut live) = (0, 0, 0, 0);
                if let Some(slot) = slot {
                    for w in &workers {
                        if let Some(c) = w.dp.services.get(slot) {
                            packets += c.packets;
                            bytes += c.bytes;
                            created += c.conns;
                            live += c.live;
                        }
                    }
                }
                ServiceStats {
                    vip: std::net::SocketAddr::new(s.key.vip, s.key.vport),
                    proto: match s.key.proto {
                        Proto::Udp => CfgProto::Udp,
                        _ => CfgProto::Tcp,
                    },
                    mode: cfg_mode(s.mode),
                    packets,
                    bytes,
                    conns: live,
                    conns_created: created,
                }
            })
            .collect();
        let ports = self
            .ports
            .iter()
            .map(|p| {
                let st = dpdk::Port::open(dpdk::PortId(p.id))
                    .and_then(|port| port.stats())
                    .unwrap_or_default();
                MetricsPort {
                    name: p.name.clone(),
                    rx_packets: st.ipackets,
                    rx_bytes: st.ibytes,
                    tx_packets: st.opackets,
                    tx_bytes: st.obytes,
                    rx_missed: st.imissed,
                    rx_errors: st.ierrors,
                    tx_errors: st.oerrors,
                    steering: self.steering.name().to_owned(),
                }
            })
            .collect();
        StatsSnapshot {
            fault: self.fault_stats(&workers),
            steering: self.steering.to_string(),
            workers: workers
                .iter()
                .map(|w| MetricsWorker {
                    id: w.worker,
                    lcore: self.lcores.get(usize::from(w.worker)).copied().unwrap_or(0),
                    rx_packets: w.dp.rx_packets,
                    rx_bytes: w.dp.rx_bytes,
                    tx_packets: w.dp.tx_packets,
                    tx_bytes: w.dp.tx_bytes,
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.name().to_owned(), w.dp.drops[*r as usize]))
                        .chain([
                            ("tx_queue_full".to_owned(), w.tx_full),
                            ("redirect_ring_full".to_owned(), w.redirect_full),
                            ("control_ring_full".to_owned(), w.control_full),
                            ("chained_mbuf".to_owned(), w.chained),
                        ])
                        .collect(),
                    redirects: w.dp.redirects,
                    conns: w.live_conns,
                    conns_created: w.dp.conns_created,
                })
                .collect(),
            services,
            ports,
            neighbours: self
                .resolver
                .entries()
                .iter()
                .map(|e| NeighbourStats {
                    addr: e.addr.to_string(),
                    port: self
                        .ports
                        .get(e.port)
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                    role: e
                        .roles
                        .iter()
                        .map(|r| match r {
                            neigh::Role::Gateway(_) => "gateway",
                            neigh::Role::RealServer => "real_server",
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    mac: e
                        .mac
                        .map(|m| crate::control::config::MacAddr(m).to_string()),
                    requests: e.requests,
                })
                .collect(),
        }
    }
}

fn dp_key(k: &ProtoKey) -> ServiceKey {
    ServiceKey {
        vip: k.vip.ip(),
        vport: k.vip.port(),
        proto: plan::proto(k.proto),
    }
}

fn proto_key(k: &ServiceKey) -> ProtoKey {
    ProtoKey {
        vip: std::net::SocketAddr::new(k.vip, k.vport),
        proto: match k.proto {
            Proto::Udp => CfgProto::Udp,
            _ => CfgProto::Tcp,
        },
    }
}

fn cfg_mode(m: Mode) -> CfgMode {
    match m {
        Mode::FullNat => CfgMode::FullNat,
        Mode::Nat => CfgMode::Nat,
        Mode::Dr => CfgMode::Dr,
        Mode::Tunnel => CfgMode::Tunnel,
    }
}

fn cfg_sched(s: SchedKind) -> Scheduler {
    match s {
        SchedKind::Rr => Scheduler::Rr,
        SchedKind::Wrr => Scheduler::Wrr,
        SchedKind::Wlc => Scheduler::Wlc,
        SchedKind::Sh => Scheduler::Sh,
        SchedKind::Maglev { table_size } => Scheduler::Maglev { table_size },
    }
}

fn conn_state(c: &ConnInfo) -> ConnState {
    if c.in_tuple.proto != Proto::Tcp {
        return ConnState::UdpNormal;
    }
    match c.state {
        TcpState::None => ConnState::None,
        TcpState::Established => ConnState::Established,
        TcpState::SynSent => ConnState::SynSent,
        TcpState::SynRecv => ConnState::SynRecv,
        TcpState::FinWait => ConnState::FinWait,
        TcpState::TimeWait => ConnState::TimeWait,
        TcpState::Close => ConnState::Close,
        TcpState::CloseWait => ConnState::CloseWait,
        TcpState::LastAck => ConnState::LastAck,
        TcpState::Listen => ConnState::Listen,
        TcpState::SynAck => ConnState::SynAck,
    }
}

fn proto_conn(c: &ConnInfo) -> ProtoConn {
    ProtoConn {
        worker: c.worker,
        proto: match c.in_tuple.proto {
            Proto::Udp => CfgProto::Udp,
            _ => CfgProto::Tcp,
        },
        client: std::net::SocketAddr::new(c.in_tuple.src, c.in_tuple.sport),
        vip: std::net::SocketAddr::new(c.in_tuple.dst, c.in_tuple.dport),
        laddr: c.local,
        rs: c.rs,
        state: conn_state(c),
        expires_ms: c.expires / 1_000_000,
    }
}

fn conn_matches(c: &ProtoConn, f: &ConnFilter) -> bool {
    f.worker.is_none_or(|w| w == c.worker)
        && f.vip.is_none_or(|v| v == c.vip)
        && f.proto.is_none_or(|p| p == c.proto)
        && f.client.is_none_or(|a| a == c.client.ip())
        && f.rs.is_none_or(|r| r == c.rs)
        && f.state.is_none_or(|s| s == c.state)
}
