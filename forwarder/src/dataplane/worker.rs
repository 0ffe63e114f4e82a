//! The per-lcore packet path: [`Worker::process`] takes the time, a frame and its
//! receive metadata, rewrites the frame in place and returns a [`Verdict`].
//!
//! A worker owns everything it touches (services and their schedulers, the connection
//! table, the local port pool, counters): no locks, no shared state, no allocation and
//! no panic per packet. Configuration changes arrive through [`Worker::apply`] between
//! bursts; idle connections go in bounded batches through [`Worker::expire`].
//!
//! Order of checks for a TCP/UDP packet: Ethernet (destination MAC ours or multicast,
//! one VLAN tag), IP header and checksum, fragments, layer-4 header, connection lookup by
//! the received tuple (both directions), then for a new flow the service, the scheduler,
//! the local port and the connection table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use l4lab_wire::{checksum, ChecksumCaps, IpProtocol};

use crate::dataplane::config::{
    ConfigChange, ConfigError, DataplaneConfig, FragmentPolicy, Mode, OwnerRss, Policies,
    PortConfig, RealServerConfig, ServiceConfig, ServiceKey, TtlPolicy, TunnelConfig,
};
use crate::dataplane::conn::{
    tcp_flags, Conn, ConnError, ConnFlags, ConnId, ConnTable, ConnTableConfig, Direction, FlowHash,
    TcpState,
};
use crate::dataplane::counters::Counters;
use crate::dataplane::fault::{Fault, FaultConfig, FaultCtx};
use crate::dataplane::frame::{Frame, RxMeta};
use crate::dataplane::laddr::{partition_mask, LaddrError, LaddrPool, PortPolicy};
use crate::dataplane::parse::{
    self, rd16, rd32, rd_addr, wr, wr16, wr_addr, ETH_ARP, ETH_IPV4, ETH_IPV6, L3, L4,
};
use crate::dataplane::persist::PersistTable;
use crate::dataplane::rewrite::{self, Delta, Nat, V4Ends};
use crate::dataplane::rss::RssModel;
use crate::dataplane::sched::hash::{hash_tuple, SEED_FLOW};
use crate::dataplane::sched::maglev::Maglev;
use crate::dataplane::sched::{Backend, Scheduler};
use crate::dataplane::toa::{self, Inserted};
use crate::dataplane::types::{Nanos, Proto, Tuple, WorkerId};
use crate::dataplane::verdict::{DropReason, Verdict};

/// One live connection as `conn list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// Client → VIP.
    pub in_tuple: Tuple,
    /// Real server → local address (FULLNAT) or client.
    pub out_tuple: Tuple,
    /// FULLNAT local address and port.
    pub local: Option<SocketAddr>,
    /// The real server.
    pub rs: SocketAddr,
    /// TCP state (`None` for UDP).
    pub state: TcpState,
    /// Owning worker.
    pub worker: WorkerId,
    /// When it expires if idle.
    pub expires: Nanos,
}

#[derive(Debug)]
struct Service {
    cfg: ServiceConfig,
    sched: Scheduler,
    /// Real servers by scheduler slot (a removed server stays until its slot is reused).
    rs: Vec<RealServerConfig>,
}

/// Which check a per-connection record needs on its return path.
#[derive(Debug, Clone, Copy, Default)]
struct ConnExtra {
    /// Port the client's packets arrive on (replies leave by it).
    client_port: u16,
}

/// The dataplane of one worker lcore. See the [module documentation](self).
#[derive(Debug)]
pub struct Worker {
    id: WorkerId,
    workers: u16,
    partition_mask: Option<u16>,
    ports: Vec<PortConfig>,
    services: Vec<Option<Service>>,
    /// Dense (key, slot) list for the new-flow lookup.
    keys: Vec<(ServiceKey, u32)>,
    laddrs: Vec<IpAddr>,
    host_addrs: Vec<IpAddr>,
    conns: ConnTable,
    extra: Vec<ConnExtra>,
    pool: LaddrPool,
    /// Client → real server memory of persistent services.
    persist: PersistTable,
    policies: Policies,
    tunnel: TunnelConfig,
    counters: Counters,
    /// The configured fault, if any (testing the harness; see [`crate::dataplane::fault`]).
    fault: Option<Box<Fault>>,
    /// Finds the owner of a NAT reply or ICMP error without connection here.
    owner_rss: Option<OwnerRss>,
    /// The RSS-aware policy's reply-port model, when `owner_rss` maps that port's queues.
    reply_model: Option<RssModel>,
    /// Maglev snapshots offered for the change being applied (configuration time only).
    offered: Vec<Maglev>,
    /// Maglev snapshots of removed services, for the master to free.
    retired: Vec<Maglev>,
}

/// What the caller of a forwarding step learns.
type Step = Result<u16, DropReason>;

impl Worker {
    /// Builds a worker from its configuration; every field is checked here so that
    /// `process` never meets an inconsistent table.
    pub fn new(cfg: DataplaneConfig) -> Result<Worker, ConfigError> {
        Self::new_sharing(cfg, &[])
    }

    /// [`Worker::new`], adopting `offered` Maglev snapshots (another worker's
    /// [`Worker::maglev_tables`]) wherever this worker's would be built from the same
    /// inputs, so that all workers share one immutable table per service.
    pub fn new_sharing(cfg: DataplaneConfig, offered: &[Maglev]) -> Result<Worker, ConfigError> {
        if cfg.workers == 0 || cfg.worker >= cfg.workers {
            return Err(ConfigError::BadWorker {
                worker: cfg.worker,
                workers: cfg.workers,
            });
        }
        if cfg.tunnel.host_bits > 16 {
            return Err(ConfigError::BadHostBits(cfg.tunnel.host_bits));
        }
        let partition = match &cfg.port_policy {
            PortPolicy::Partition { workers } => Some(partition_mask(*workers)),
            PortPolicy::RssAware { .. } => None,
        };
        let reply_model = match (&cfg.port_policy, &cfg.owner_rss) {
            (PortPolicy::RssAware { model, .. }, Some(o)) if !o.reply_queue_worker.is_empty() => {
                Some(model.clone())
            }
            _ => None,
        };
        let pool = LaddrPool::new(cfg.worker, &cfg.laddrs, cfg.port_policy.clone())?;
        let mut tcfg = ConnTableConfig::new(cfg.conn_capacity);
        tcfg.timeouts = cfg.timeouts;
        let conns = ConnTable::new(tcfg, 0)?;
        let mut w = Worker {
            id: cfg.worker,
            workers: cfg.workers,
            partition_mask: partition,
            ports: cfg.ports,
            services: (0..cfg.max_services).map(|_| None).collect(),
            keys: Vec::with_capacity(cfg.max_services),
            laddrs: cfg.laddrs,
            host_addrs: cfg.host_addrs,
            conns,
            extra: vec![ConnExtra::default(); cfg.conn_capacity as usize],
            pool,
            persist: PersistTable::new(cfg.persist_capacity, 0x5851_f42d_4c95_7f2d),
            policies: cfg.policies,
            tunnel: cfg.tunnel,
            counters: Counters::new(cfg.max_services),
            fault: cfg.fault.map(|f| Box::new(Fault::new(f, &cfg.services))),
            owner_rss: cfg.owner_rss,
            reply_model,
            offered: offered.to_vec(),
            retired: Vec::new(),
        };
        for s in cfg.services {
            w.add_service(s)?;
        }
        w.offered.clear();
        Ok(w)
    }

    /// The Maglev snapshots in use, one per Maglev service (clones share them).
    pub fn maglev_tables(&self) -> Vec<Maglev> {
        self.services
            .iter()
            .flatten()
            .filter_map(|s| s.sched.maglev().cloned())
            .collect()
    }

    /// The Maglev snapshots this worker stopped using (replaced or of removed services):
    /// the runtime hands them to the master, which frees them once every worker has
    /// moved past them.
    pub fn take_retired(&mut self) -> Vec<Maglev> {
        let mut out = std::mem::take(&mut self.retired);
        for s in self.services.iter_mut().flatten() {
            s.sched.take_retired(&mut out);
        }
        out
    }

    /// [`Worker::apply`], adopting `offered` Maglev snapshots (those worker 0 built for
    /// the same change) instead of building copies.
    pub fn apply_shared(
        &mut self,
        change: ConfigChange,
        offered: &[Maglev],
    ) -> Result<(), ConfigError> {
        self.offered.clear();
        self.offered.extend_from_slice(offered);
        for s in self.services.iter_mut().flatten() {
            s.sched.set_offers(offered);
        }
        let result = self.apply(change);
        self.offered.clear();
        for s in self.services.iter_mut().flatten() {
            s.sched.set_offers(&[]);
        }
        result
    }

    /// This worker's index.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Each configured service's key with its slot in `Counters::services`. Slots are
    /// assigned in the order changes are applied, so every worker given the same changes
    /// agrees on them.
    pub fn service_slots(&self) -> impl Iterator<Item = (ServiceKey, usize)> + '_ {
        self.keys.iter().map(|&(key, slot)| (key, slot as usize))
    }

    /// Number of live connections.
    pub fn conn_count(&self) -> u32 {
        self.conns.len()
    }

    /// The fault this worker injects, if any.
    pub fn fault(&self) -> Option<FaultConfig> {
        self.fault.as_ref().map(|f| f.config())
    }

    /// The local port pool (for statistics).
    pub fn laddr_pool(&self) -> &LaddrPool {
        &self.pool
    }

    /// Live connections.
    pub fn conns(&self) -> impl Iterator<Item = ConnInfo> + '_ {
        self.conns.iter().map(|(_, c)| ConnInfo {
            in_tuple: c.in_tuple,
            out_tuple: c.out_tuple,
            local: c.local,
            rs: c.rs(),
            state: c.state,
            worker: c.worker,
            expires: c.expires,
        })
    }

    /// Processes one packet received at `now`. Never panics, never allocates.
    pub fn process(&mut self, now: Nanos, frame: &mut Frame<'_>, meta: &RxMeta) -> Verdict {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += frame.len() as u64;
        let mut v = match self.dispatch(now, frame, meta) {
            Ok(v) => v,
            Err(r) => Verdict::Drop(r),
        };
        if let Some(fault) = self.fault.as_deref_mut() {
            let ctx = FaultCtx {
                ports: &self.ports,
                laddrs: &self.laddrs,
                worker: self.id,
                workers: self.workers,
            };
            v = fault.inject(v, frame, &ctx, &mut self.counters);
        }
        match v {
            Verdict::Tx { .. } => {
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += frame.len() as u64;
            }
            Verdict::Drop(r) => self.counters.drops[r as usize] += 1,
            Verdict::Redirect(_) => self.counters.redirects += 1,
            Verdict::Control => self.counters.control += 1,
        }
        v
    }

    /// Removes connections idle past their deadline, at most `budget` examined; releases
    /// their local ports and real-server counts. Returns how many were removed.
    pub fn expire(&mut self, now: Nanos, budget: u32) -> u32 {
        let Worker {
            conns,
            pool,
            services,
            counters,
            ..
        } = self;
        let stats = conns.expire(now, budget, |_, c| {
            release_conn(pool, services, c);
            counters.conns_expired += 1;
            if let Some(s) = counters.services.get_mut(c.svc_index as usize) {
                s.live = s.live.saturating_sub(1);
            }
        });
        stats.expired
    }

    /// Applies a configuration change (between bursts).
    pub fn apply(&mut self, change: ConfigChange) -> Result<(), ConfigError> {
        match change {
            ConfigChange::AddService(s) => self.add_service(s),
            ConfigChange::RemoveService(key) => {
                let slot = self.slot_of(&key)?;
                self.remove_conns(|c| c.svc_index == slot);
                self.persist.forget_service(slot);
                if let Some(mut gone) = self.services[slot as usize].take() {
                    gone.sched.take_retired(&mut self.retired);
                    self.retired.extend(gone.sched.maglev().cloned());
                }
                self.keys.retain(|(_, s)| *s != slot);
                Ok(())
            }
            ConfigChange::AddRealServer { service, rs } => {
                let slot = self.slot_of(&service)?;
                self.check_rs(&self.service_ref(slot)?.cfg.clone(), &rs)?;
                let svc = self.service_mut(slot)?;
                let i = svc
                    .sched
                    .add(Backend {
                        addr: rs.addr,
                        weight: rs.weight,
                    })
                    .map_err(|e| sched_err(&service, e))?;
                if i < svc.rs.len() {
                    svc.rs[i] = rs;
                } else {
                    svc.rs.push(rs);
                }
                Ok(())
            }
            ConfigChange::RemoveRealServer { service, addr } => {
                let slot = self.slot_of(&service)?;
                let svc = self.service_mut(slot)?;
                let i = svc
                    .sched
                    .find(addr)
                    .ok_or(ConfigError::NoSuchRealServer(addr))?;
                svc.sched.remove(i).map_err(|e| sched_err(&service, e))?;
                // Its scheduler slot may go to another server: clients forget it now.
                self.persist.forget_rs(slot, i as u32);
                if self.policies.expire_quiescent {
                    let rs_index = i as u32;
                    self.remove_conns(|c| c.svc_index == slot && c.rs_index == rs_index);
                }
                Ok(())
            }
            ConfigChange::SetWeight {
                service,
                addr,
                weight,
            } => {
                let slot = self.slot_of(&service)?;
                let svc = self.service_mut(slot)?;
                let i = svc
                    .sched
                    .find(addr)
                    .ok_or(ConfigError::NoSuchRealServer(addr))?;
                svc.sched
                    .set_weight(i, weight)
                    .map_err(|e| sched_err(&service, e))?;
                if let Some(r) = svc.rs.get_mut(i) {
                    r.weight = weight;
                }
                Ok(())
            }
            ConfigChange::AddLaddr(a) => {
                self.pool.add_laddr(a)?;
                self.laddrs.push(a);
                Ok(())
            }
            ConfigChange::RemoveLaddr(a) => {
                self.pool.remove_laddr(a)?;
                self.laddrs.retain(|l| *l != a);
                Ok(())
            }
            ConfigChange::SetGatewayMac { port, mac } => {
                let p = self
                    .ports
                    .get_mut(usize::from(port))
                    .ok_or(ConfigError::NoSuchPort(port))?;
                p.gateway_mac = mac;
                Ok(())
            }
            ConfigChange::SetRealServerMac { addr, mac } => {
                for s in self.services.iter_mut().flatten() {
                    for rs in s.rs.iter_mut().filter(|r| r.addr.ip() == addr) {
                        rs.mac = Some(mac);
                    }
                }
                Ok(())
            }
        }
    }

    fn add_service(&mut self, s: ServiceConfig) -> Result<(), ConfigError> {
        let key = s.key;
        if key.proto == Proto::Icmp {
            return Err(ConfigError::BadProto(key.vip, key.vport));
        }
        if self.keys.iter().any(|(k, _)| *k == key) {
            return Err(ConfigError::DuplicateService(key.vip, key.vport));
        }
        for rs in &s.real_servers {
            self.check_rs(&s, rs)?;
        }
        let slot = self
            .services
            .iter()
            .position(Option::is_none)
            .ok_or(ConfigError::TooManyServices(self.services.len()))?;
        let backends: Vec<Backend> = s
            .real_servers
            .iter()
            .map(|r| Backend {
                addr: r.addr,
                weight: r.weight,
            })
            .collect();
        let sched = Scheduler::new_sharing(s.sched, &backends, &self.offered)
            .map_err(|e| sched_err(&key, e))?;
        let rs = s.real_servers.clone();
        if s.persistence.is_some() {
            self.persist.reserve();
        }
        // A reused slot must not inherit the previous service's clients.
        self.persist.forget_service(slot as u32);
        self.services[slot] = Some(Service { cfg: s, sched, rs });
        self.keys.push((key, slot as u32));
        // A reused slot starts its counters afresh.
        if let Some(c) = self.counters.services.get_mut(slot) {
            *c = Default::default();
        }
        Ok(())
    }

    fn check_rs(&self, s: &ServiceConfig, rs: &RealServerConfig) -> Result<(), ConfigError> {
        if usize::from(rs.port) >= self.ports.len() {
            return Err(ConfigError::UnknownPort(rs.addr, rs.port));
        }
        let same = s.key.vip.is_ipv4() == rs.addr.is_ipv4();
        match s.mode {
            Mode::FullNat if !(same || s.key.vip.is_ipv6() && rs.addr.is_ipv4()) => {
                Err(ConfigError::BadMode(rs.addr))
            }
            Mode::Nat | Mode::Dr if !same => Err(ConfigError::BadMode(rs.addr)),
            Mode::Dr if rs.mac.is_none() => Err(ConfigError::MissingMac(rs.addr)),
            Mode::Tunnel => {
                let ok = match rs.addr.ip() {
                    IpAddr::V4(_) => self.tunnel.src_v4.is_some(),
                    IpAddr::V6(_) => self.tunnel.src_v6.is_some(),
                };
                if ok {
                    Ok(())
                } else {
                    Err(ConfigError::MissingTunnelSource(rs.addr))
                }
            }
            _ => Ok(()),
        }
    }

    fn slot_of(&self, key: &ServiceKey) -> Result<u32, ConfigError> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| *s)
            .ok_or(ConfigError::NoSuchService(key.vip, key.vport))
    }

    fn service_ref(&self, slot: u32) -> Result<&Service, ConfigError> {
        self.services
            .get(slot as usize)
            .and_then(Option::as_ref)
            .ok_or(ConfigError::TooManyServices(self.services.len()))
    }

    fn service_mut(&mut self, slot: u32) -> Result<&mut Service, ConfigError> {
        let n = self.services.len();
        self.services
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .ok_or(ConfigError::TooManyServices(n))
    }

    fn remove_conns(&mut self, pred: impl FnMut(&Conn) -> bool) {
        let Worker {
            conns,
            pool,
            services,
            counters,
            ..
        } = self;
        conns.remove_if(pred, |_, c| {
            release_conn(pool, services, c);
            counters.conns_expired += 1;
            if let Some(s) = counters.services.get_mut(c.svc_index as usize) {
                s.live = s.live.saturating_sub(1);
            }
        });
    }

    // ---- packet path ----

    fn dispatch(
        &mut self,
        now: Nanos,
        f: &mut Frame<'_>,
        meta: &RxMeta,
    ) -> Result<Verdict, DropReason> {
        let port = *self
            .ports
            .get(usize::from(meta.port))
            .ok_or(DropReason::Unsupported)?;
        let d = f.data();
        // The common frame (unicast to this port, untagged IPv4, TCP or UDP) in one pass.
        if let Some((l3, l4)) = parse::parse_v4_fast(d) {
            if d[0] & 1 == 0 && d[0..6] == port.mac {
                return self.l4_parsed(now, f, meta, parse::ETH_LEN, &l3, &l4, &port);
            }
        }
        let l2 = parse::parse_l2(d)?;
        if !l2.multicast && d[0..6] != port.mac {
            return Err(DropReason::NotForUs);
        }
        let l3 = match l2.ethertype {
            ETH_ARP => return Ok(Verdict::Control),
            ETH_IPV4 => parse::parse_ipv4(d, l2.len)?,
            ETH_IPV6 => parse::parse_ipv6(d, l2.len)?,
            _ => return Err(DropReason::UnknownEthertype),
        };
        if l3.fragment {
            return match self.policies.fragments {
                FragmentPolicy::Drop => Err(DropReason::Fragment),
                FragmentPolicy::Control => Ok(Verdict::Control),
            };
        }
        let icmp = if l3.v6 {
            IpProtocol::ICMPV6.0
        } else {
            IpProtocol::ICMP.0
        };
        if l2.multicast {
            // Neighbour discovery, multicast listeners: the control plane's business.
            return if l3.v6 && l3.proto == icmp {
                Ok(Verdict::Control)
            } else {
                Err(DropReason::NotForUs)
            };
        }
        if l3.proto == IpProtocol::TCP.0 || l3.proto == IpProtocol::UDP.0 {
            self.l4_path(now, f, meta, l2.len, &l3, &port)
        } else if l3.proto == icmp {
            self.icmp_path(f, meta, l2.len, &l3, &port)
        } else if self.is_ours(l3.dst) {
            if self.is_vip(l3.dst) {
                Err(DropReason::Unsupported)
            } else {
                Ok(Verdict::Control)
            }
        } else {
            Err(DropReason::NotForUs)
        }
    }

    fn is_vip(&self, a: IpAddr) -> bool {
        self.keys.iter().any(|(k, _)| k.vip == a)
    }

    fn is_ours(&self, a: IpAddr) -> bool {
        self.is_vip(a) || self.laddrs.contains(&a) || self.host_addrs.contains(&a)
    }

    fn ttl_expired(&self) -> Result<Verdict, DropReason> {
        match self.policies.ttl {
            TtlPolicy::Drop => Err(DropReason::TtlExceeded),
            TtlPolicy::Control => Ok(Verdict::Control),
        }
    }

    fn l4_path(
        &mut self,
        now: Nanos,
        f: &mut Frame<'_>,
        meta: &RxMeta,
        l2: usize,
        l3: &L3,
        rx_port: &PortConfig,
    ) -> Result<Verdict, DropReason> {
        let l4 = parse::parse_l4(f.data(), l3)?;
        self.l4_parsed(now, f, meta, l2, l3, &l4, rx_port)
    }

    /// [`l4_path`](Self::l4_path) once the layer-4 header is parsed.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn l4_parsed(
        &mut self,
        now: Nanos,
        f: &mut Frame<'_>,
        meta: &RxMeta,
        l2: usize,
        l3: &L3,
        l4: &L4,
        rx_port: &PortConfig,
    ) -> Result<Verdict, DropReason> {
        let d = f.data();
        let tcp = l3.proto == IpProtocol::TCP.0;
        if self.policies.verify_checksums {
            let seg = d.get(l3.l4..l3.end).ok_or(DropReason::Truncated)?;
            let skip = !tcp && !l3.v6 && rd16(seg, 6) == 0;
            let pseudo =
                checksum::pseudo_header(l3.src, l3.dst, IpProtocol(l3.proto), seg.len() as u32);
            if !skip && checksum::combine(&[pseudo, checksum::data(seg)]) != 0xffff {
                return Err(DropReason::BadL4Checksum);
            }
        }
        let tuple = Tuple {
            proto: if tcp { Proto::Tcp } else { Proto::Udp },
            src: l3.src,
            sport: l4.sport,
            dst: l3.dst,
            dport: l4.dport,
        };
        let hash = self.conns.hash(&tuple);
        let (id, dir) = match self.conns.lookup_hashed(hash, &tuple) {
            Some(hit) => hit,
            None => match self.new_conn(now, meta, l3, l4, &tuple, hash, rx_port)? {
                Ok(id) => (id, Direction::Inbound),
                Err(v) => return Ok(v),
            },
        };
        self.forward(now, f, l2, l3, l4, id, dir)
    }

    /// Creates the connection of a new flow, or says what to do with the packet instead.
    /// Kept out of line: the established path that shares its caller stays small.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn new_conn(
        &mut self,
        now: Nanos,
        meta: &RxMeta,
        l3: &L3,
        l4: &L4,
        tuple: &Tuple,
        hash: FlowHash,
        _rx_port: &PortConfig,
    ) -> Result<Result<ConnId, Verdict>, DropReason> {
        let key = ServiceKey {
            vip: tuple.dst,
            vport: tuple.dport,
            proto: tuple.proto,
        };
        let Some(&(_, slot)) = self.keys.iter().find(|(k, _)| *k == key) else {
            return self.no_service(tuple).map(Err);
        };
        if tuple.proto == Proto::Tcp
            && l4.flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) != tcp_flags::SYN
        {
            return Err(DropReason::NoConnection);
        }
        let Some(svc) = self
            .services
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
        else {
            return Err(DropReason::NoService);
        };
        let mode = svc.cfg.mode;
        if matches!(mode, Mode::FullNat | Mode::Nat) && l3.ttl <= 1 {
            return self.ttl_expired().map(Err);
        }
        let persistence = svc.cfg.persistence;
        let remembered = match persistence {
            Some(_) => self.persist.lookup(slot, tuple.src, now),
            None => None,
        };
        let i = match remembered {
            Some(r) if svc.sched.backend(r as usize).is_some_and(|b| b.weight > 0) => {
                self.counters.persist_hits += 1;
                r as usize
            }
            other => {
                if other.is_some() {
                    self.counters.persist_rescheduled += 1;
                }
                svc.sched.pick(tuple).ok_or(DropReason::NoRealServer)?
            }
        };
        let rs_addr = svc.rs.get(i).ok_or(DropReason::NoRealServer)?.addr;
        let (out, local) = match mode {
            Mode::FullNat => {
                let (la, lp) = self.pool.alloc(tuple.proto, rs_addr).map_err(|e| match e {
                    LaddrError::NotSteerable => DropReason::NotSteerable,
                    _ => DropReason::LaddrExhausted,
                })?;
                let out = Tuple {
                    proto: tuple.proto,
                    src: rs_addr.ip(),
                    sport: rs_addr.port(),
                    dst: la,
                    dport: lp,
                };
                (out, Some(SocketAddr::new(la, lp)))
            }
            Mode::Nat | Mode::Dr | Mode::Tunnel => (
                Tuple {
                    proto: tuple.proto,
                    src: rs_addr.ip(),
                    sport: rs_addr.port(),
                    dst: tuple.src,
                    dport: tuple.sport,
                },
                None,
            ),
        };
        let (id, state) = (self.id, TcpState::None.next(Direction::Inbound, l4.flags));
        // `l4_path` looked `tuple` up without a hit just before, and nothing since has
        // touched the table. The record is built in its slot.
        let inserted = self.conns.insert_new_flow(tuple, &out, now, hash, |conn| {
            conn.local = local;
            conn.rs_index = i as u32;
            conn.svc_index = slot;
            conn.worker = id;
            if tuple.proto == Proto::Tcp {
                // The state this SYN moves it to when `forward` touches it next: inserted
                // in that state, it is linked on the expiry wheel once, at its real
                // deadline, rather than at the fresh entry's and then pulled in.
                conn.state = state;
            }
        });
        match inserted {
            Ok(id) => {
                svc.sched.conn_opened(i, false);
                if let Some(e) = self.extra.get_mut(id.index() as usize) {
                    e.client_port = meta.port;
                }
                self.counters.conns_created += 1;
                if let Some(timeout) = persistence {
                    if !self.persist.record(slot, tuple.src, i as u32, now, timeout) {
                        self.counters.persist_full += 1;
                    }
                }
                if let Some(c) = self.counters.services.get_mut(slot as usize) {
                    c.conns += 1;
                    c.live += 1;
                }
                Ok(Ok(id))
            }
            Err(e) => {
                if let Some(l) = local {
                    let _ = self.pool.release(tuple.proto, l.ip(), l.port(), rs_addr);
                }
                Err(match e {
                    ConnError::TableFull => DropReason::ConnTableFull,
                    _ => DropReason::Unsupported,
                })
            }
        }
    }

    /// A TCP/UDP packet with no connection and no service.
    fn no_service(&self, t: &Tuple) -> Result<Verdict, DropReason> {
        if self.laddrs.contains(&t.dst) {
            if let Some(mask) = self.partition_mask {
                let owner = t.dport & mask;
                if self.policies.redirect_no_conn && owner != self.id && owner < self.workers {
                    return Ok(Verdict::Redirect(owner));
                }
            }
            return Err(DropReason::NoConnection);
        }
        if self.is_vip(t.dst) {
            return Err(DropReason::NoService);
        }
        if self.host_addrs.contains(&t.dst) {
            return Ok(Verdict::Control);
        }
        if let Some(owner) = self.other_owner(self.nat_reply_owner(t)) {
            return Ok(Verdict::Redirect(owner));
        }
        Err(DropReason::NotForUs)
    }

    /// `owner` if it is another (existing) worker and redirects are on.
    #[inline]
    fn other_owner(&self, owner: Option<WorkerId>) -> Option<WorkerId> {
        owner.filter(|&o| self.policies.redirect_no_conn && o != self.id && o < self.workers)
    }

    /// The owner of a connection, by the tuple a packet of it would be looked up with
    /// (`t`: client → VIP, real server → local address, or NAT real server → client),
    /// when that packet found no connection here. `None` when it cannot be told.
    fn owner_of(&self, t: &Tuple) -> Option<WorkerId> {
        let key = ServiceKey {
            vip: t.dst,
            vport: t.dport,
            proto: t.proto,
        };
        if self.keys.iter().any(|(k, _)| *k == key) {
            return self.owner_rss.as_ref().and_then(|o| o.owner(t));
        }
        if self.laddrs.contains(&t.dst) {
            if let Some(mask) = self.partition_mask {
                return Some(t.dport & mask);
            }
            let (model, o) = (self.reply_model.as_ref()?, self.owner_rss.as_ref()?);
            return o
                .reply_queue_worker
                .get(usize::from(model.queue(t)))
                .copied();
        }
        self.nat_reply_owner(t)
    }

    /// The owner of a NAT connection whose reply `t` (real server → client) found no
    /// connection here: the worker whose queue the client → VIP tuple hashes to, for the
    /// NAT services that have this real server. With several such services (and owners),
    /// the owners are tried in ascending order: the lowest one from a worker that is not
    /// among them, else the next higher one (none after the highest). A redirected packet
    /// only moves to higher workers, so it never loops.
    fn nat_reply_owner(&self, t: &Tuple) -> Option<WorkerId> {
        let o = self.owner_rss.as_ref()?;
        let (mut lowest, mut next, mut member) = (None::<WorkerId>, None::<WorkerId>, false);
        for &(key, slot) in &self.keys {
            if key.proto != t.proto || key.vip.is_ipv4() != t.src.is_ipv4() {
                continue;
            }
            let Some(svc) = self.services.get(slot as usize).and_then(Option::as_ref) else {
                continue;
            };
            if svc.cfg.mode != Mode::Nat
                || !svc
                    .rs
                    .iter()
                    .any(|r| r.addr.ip() == t.src && r.addr.port() == t.sport)
            {
                continue;
            }
            let client = Tuple {
                proto: t.proto,
                src: t.dst,
                sport: t.dport,
                dst: key.vip,
                dport: key.vport,
            };
            let Some(owner) = o.owner(&client) else {
                continue;
            };
            member |= owner == self.id;
            lowest = Some(lowest.map_or(owner, |l| l.min(owner)));
            if owner > self.id {
                next = Some(next.map_or(owner, |n| n.min(owner)));
            }
        }
        if member {
            next
        } else {
            lowest
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn forward(
        &mut self,
        now: Nanos,
        f: &mut Frame<'_>,
        l2: usize,
        l3: &L3,
        l4: &L4,
        id: ConnId,
        dir: Direction,
    ) -> Result<Verdict, DropReason> {
        match self.forward_v4(now, f, l3, l4, id, dir) {
            Some(v) => v,
            None => self.forward_general(now, f, l2, l3, l4, id, dir),
        }
    }

    /// [`forward`](Self::forward) for every mode, direction and family.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn forward_general(
        &mut self,
        now: Nanos,
        f: &mut Frame<'_>,
        l2: usize,
        l3: &L3,
        l4: &L4,
        id: ConnId,
        dir: Direction,
    ) -> Result<Verdict, DropReason> {
        // The fields the rewrite needs, not the whole record (a smaller copy).
        let Some(conn) = self.conns.get(id).map(Hot::of) else {
            return Err(DropReason::NoConnection);
        };
        let slot = conn.svc_index as usize;
        let Some(svc) = self.services.get(slot).and_then(Option::as_ref) else {
            return Err(DropReason::NoService);
        };
        let mode = svc.cfg.mode;
        // TOA is FULLNAT TCP with a real server of the client's family (not NAT64).
        let toa_on = svc.cfg.toa
            && mode == Mode::FullNat
            && conn.in_tuple.proto == Proto::Tcp
            && conn.in_tuple.src.is_ipv4() == conn.out_tuple.src.is_ipv4();
        let Some(rs) = svc.rs.get(conn.rs_index as usize).copied() else {
            return Err(DropReason::NoRealServer);
        };
        if matches!(mode, Mode::FullNat | Mode::Nat) && l3.ttl <= 1 {
            return self.ttl_expired();
        }
        let rx_bytes = f.len() as u64;
        let touched = self
            .conns
            .touch(id, dir, l4.flags, now)
            .map_err(|_| DropReason::NoConnection)?;
        match touched.active_delta() {
            1 => self
                .sched_of(slot)
                .map(|s| s.conn_activated(conn.rs_index as usize)),
            -1 => self
                .sched_of(slot)
                .map(|s| s.conn_deactivated(conn.rs_index as usize)),
            _ => None,
        };
        f.truncate(l3.end);
        let client_port = self
            .extra
            .get(id.index() as usize)
            .map_or(0, |e| e.client_port);
        let tx = match (mode, dir) {
            (Mode::FullNat, Direction::Inbound) => {
                let n = Nat {
                    src: conn.out_tuple.dst,
                    sport: conn.out_tuple.dport,
                    dst: conn.out_tuple.src,
                    dport: conn.out_tuple.sport,
                };
                let want_toa = toa_on && toa_wanted(f.data(), l3, l4, &conn);
                self.fullnat(f, l2, l3, l4, &n, rs.port, want_toa, conn.in_tuple)?;
                self.l2_to_rs(f, &rs)
            }
            (Mode::FullNat, Direction::Outbound) => {
                if toa_on {
                    self.toa_outbound(f, l3, l4, id, &conn)?;
                }
                let n = Nat {
                    src: conn.in_tuple.dst,
                    sport: conn.in_tuple.dport,
                    dst: conn.in_tuple.src,
                    dport: conn.in_tuple.sport,
                };
                self.fullnat(f, l2, l3, l4, &n, client_port, false, conn.in_tuple)?;
                self.l2_to_gateway(f, client_port)
            }
            (Mode::Nat, Direction::Inbound) => {
                let n = Nat {
                    src: l3.src,
                    sport: l4.sport,
                    dst: conn.out_tuple.src,
                    dport: conn.out_tuple.sport,
                };
                let caps = self.caps(rs.port);
                rewrite::rewrite_same_family(
                    f.data_mut(),
                    l3,
                    l4.sport,
                    l4.dport,
                    &n,
                    1,
                    caps,
                    false,
                );
                self.l2_to_rs(f, &rs)
            }
            (Mode::Nat, Direction::Outbound) => {
                let n = Nat {
                    src: conn.in_tuple.dst,
                    sport: conn.in_tuple.dport,
                    dst: l3.dst,
                    dport: l4.dport,
                };
                let caps = self.caps(client_port);
                rewrite::rewrite_same_family(
                    f.data_mut(),
                    l3,
                    l4.sport,
                    l4.dport,
                    &n,
                    1,
                    caps,
                    false,
                );
                self.l2_to_gateway(f, client_port)
            }
            (Mode::Dr, Direction::Inbound) => self.l2_to_rs(f, &rs),
            (Mode::Tunnel, Direction::Inbound) => {
                let hash = hash_tuple(SEED_FLOW, &conn.in_tuple) as u32;
                let (src, dst) = self.tunnel_addrs(rs.addr.ip(), hash)?;
                rewrite::encapsulate(f, l2, l3, src, dst, hash, self.caps(rs.port))?;
                self.l2_to_rs(f, &rs)
            }
            (Mode::Dr | Mode::Tunnel, Direction::Outbound) => Err(DropReason::Unsupported),
        }?;
        if let Some(c) = self.conns.get_mut(id) {
            match dir {
                Direction::Inbound => c.counters.bytes_in += rx_bytes,
                Direction::Outbound => c.counters.bytes_out += rx_bytes,
            }
        }
        if let Some(c) = self.counters.services.get_mut(slot) {
            c.packets += 1;
            c.bytes += rx_bytes;
        }
        Ok(Verdict::Tx { port: tx })
    }

    /// [`forward`](Self::forward) for the common packet: IPv4 FULLNAT (without TOA) or
    /// NAT, both tuples IPv4, checksums in software on the output port, TTL above 1.
    /// Reads the connection once, rewrites over one fixed window, then accounts it as
    /// `forward` does. `None`, with nothing changed, for any other packet.
    #[inline]
    fn forward_v4(
        &mut self,
        now: Nanos,
        f: &mut Frame<'_>,
        l3: &L3,
        l4: &L4,
        id: ConnId,
        dir: Direction,
    ) -> Option<Result<Verdict, DropReason>> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (l3.src, l3.dst) else {
            return None;
        };
        if l3.ttl <= 1 {
            return None;
        }
        let conn = self.conns.get(id)?;
        let slot = conn.svc_index as usize;
        let rs_index = conn.rs_index as usize;
        let svc = self.services.get(slot)?.as_ref()?;
        let rs = svc.rs.get(rs_index)?;
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => Some(u32::from(a)),
            IpAddr::V6(_) => None,
        };
        let (i, o) = (&conn.in_tuple, &conn.out_tuple);
        let old = V4Ends {
            src: u32::from(src),
            sport: l4.sport,
            dst: u32::from(dst),
            dport: l4.dport,
        };
        let to_rs = dir == Direction::Inbound;
        let new = match (svc.cfg.mode, dir) {
            // TOA is FULLNAT TCP of one family: the general path's.
            (Mode::FullNat, _) if svc.cfg.toa && i.proto == Proto::Tcp => return None,
            (Mode::FullNat, Direction::Inbound) => V4Ends {
                src: v4(o.dst)?,
                sport: o.dport,
                dst: v4(o.src)?,
                dport: o.sport,
            },
            (Mode::FullNat, Direction::Outbound) => V4Ends {
                src: v4(i.dst)?,
                sport: i.dport,
                dst: v4(i.src)?,
                dport: i.sport,
            },
            (Mode::Nat, Direction::Inbound) => V4Ends {
                dst: v4(o.src)?,
                dport: o.sport,
                ..old
            },
            (Mode::Nat, Direction::Outbound) => V4Ends {
                src: v4(i.dst)?,
                sport: i.dport,
                ..old
            },
            _ => return None,
        };
        let tx = if to_rs {
            rs.port
        } else {
            self.extra
                .get(id.index() as usize)
                .map_or(0, |e| e.client_port)
        };
        let port = self.ports.get(usize::from(tx))?;
        let offload = if l3.proto == IpProtocol::TCP.0 {
            port.csum.tcp
        } else {
            port.csum.udp
        };
        if port.csum.ipv4 || offload {
            return None;
        }
        let (mac_src, mac_dst) = if to_rs {
            (port.mac, rs.mac.unwrap_or(port.gateway_mac))
        } else {
            (port.mac, port.gateway_mac)
        };
        let rx_bytes = f.len() as u64;
        f.truncate(l3.end);
        let d = f.data_mut();
        if !rewrite::rewrite_v4_sw(d, l3, &old, &new, 1) {
            return None;
        }
        rewrite::set_macs(d, mac_src, mac_dst);
        // `get` found the connection above: `touch_mut` cannot fail.
        let touched = match self.conns.touch_mut(id, dir, l4.flags, now) {
            Ok((t, c)) => {
                match dir {
                    Direction::Inbound => c.counters.bytes_in += rx_bytes,
                    Direction::Outbound => c.counters.bytes_out += rx_bytes,
                }
                t
            }
            Err(_) => return Some(Err(DropReason::NoConnection)),
        };
        match touched.active_delta() {
            1 => self.sched_of(slot).map(|s| s.conn_activated(rs_index)),
            -1 => self.sched_of(slot).map(|s| s.conn_deactivated(rs_index)),
            _ => None,
        };
        if let Some(c) = self.counters.services.get_mut(slot) {
            c.packets += 1;
            c.bytes += rx_bytes;
        }
        Some(Ok(Verdict::Tx { port: tx }))
    }

    fn sched_of(&mut self, slot: usize) -> Option<&mut Scheduler> {
        self.services
            .get_mut(slot)
            .and_then(Option::as_mut)
            .map(|s| &mut s.sched)
    }

    fn caps(&self, port: u16) -> ChecksumCaps {
        self.ports
            .get(usize::from(port))
            .map_or(ChecksumCaps::NONE, |p| p.csum)
    }

    fn l2_to_rs(&self, f: &mut Frame<'_>, rs: &RealServerConfig) -> Step {
        let p = self
            .ports
            .get(usize::from(rs.port))
            .ok_or(DropReason::Unsupported)?;
        rewrite::set_macs(f.data_mut(), p.mac, rs.mac.unwrap_or(p.gateway_mac));
        Ok(rs.port)
    }

    fn l2_to_gateway(&self, f: &mut Frame<'_>, port: u16) -> Step {
        let p = self
            .ports
            .get(usize::from(port))
            .ok_or(DropReason::Unsupported)?;
        rewrite::set_macs(f.data_mut(), p.mac, p.gateway_mac);
        Ok(port)
    }

    fn tunnel_addrs(&self, rs: IpAddr, hash: u32) -> Result<(IpAddr, IpAddr), DropReason> {
        let mask: u32 = if self.tunnel.host_bits == 0 {
            0
        } else {
            (1u32 << self.tunnel.host_bits.min(16)) - 1
        };
        let low = hash & mask;
        match rs {
            IpAddr::V4(_) => {
                let base = u32::from(self.tunnel.src_v4.ok_or(DropReason::Unsupported)?);
                Ok((IpAddr::V4(Ipv4Addr::from((base & !mask) | low)), rs))
            }
            IpAddr::V6(_) => {
                let base = u128::from(self.tunnel.src_v6.ok_or(DropReason::Unsupported)?);
                let m = u128::from(mask);
                let a = (base & !m) | u128::from(low);
                Ok((IpAddr::V6(Ipv6Addr::from(a)), rs))
            }
        }
    }

    /// FULLNAT rewrite in either direction (NAT64 when the families differ).
    #[allow(clippy::too_many_arguments)]
    fn fullnat(
        &mut self,
        f: &mut Frame<'_>,
        l2: usize,
        l3: &L3,
        l4: &L4,
        n: &Nat,
        tx_port: u16,
        want_toa: bool,
        client: Tuple,
    ) -> Result<(), DropReason> {
        let caps = self.caps(tx_port);
        if n.src.is_ipv4() != l3.v6 {
            // Same family.
            let mut full = false;
            let mut l3x = *l3;
            if want_toa {
                match toa::insert(f, l3, l4.hdr_len, client.src, client.sport)? {
                    Inserted::Yes { grow } => {
                        l3x.end = (l3.end as isize + grow) as usize;
                        full = true;
                        self.counters.toa_inserted += 1;
                    }
                    Inserted::Skipped => self.counters.toa_skipped += 1,
                }
            }
            let d = f.data_mut();
            if full && !l3x.v6 && !caps.ipv4 {
                rewrite::rewrite_same_family(d, &l3x, l4.sport, l4.dport, n, 1, caps, true);
                rewrite::fill_ipv4_checksum(d, &l3x);
            } else {
                rewrite::rewrite_same_family(d, &l3x, l4.sport, l4.dport, n, 1, caps, full);
            }
            Ok(())
        } else if l3.v6 {
            rewrite::nat64_6to4(f, l2, l3, l4.sport, l4.dport, n, caps)
        } else {
            rewrite::nat64_4to6(f, l2, l3, l4.sport, l4.dport, n, caps)
        }
    }

    /// RS → client with TOA on: remember the RS's ISN and lower the MSS on the SYN-ACK,
    /// note when the RS first sends data.
    fn toa_outbound(
        &mut self,
        f: &mut Frame<'_>,
        l3: &L3,
        l4: &L4,
        id: ConnId,
        conn: &Hot,
    ) -> Result<(), DropReason> {
        let syn_ack = tcp_flags::SYN | tcp_flags::ACK;
        let d = f.data_mut();
        let t = l3.l4;
        if l4.flags & (syn_ack | tcp_flags::RST) == syn_ack {
            let isn = rd32(d, t + 4);
            let opts = d.get(t + 20..t + l4.hdr_len).ok_or(DropReason::Truncated)?;
            if let Some((at, mss)) = toa::find_mss(opts)? {
                let new = mss.saturating_sub(toa::toa_len(conn.in_tuple.src) as u16);
                let off = t + 20 + at + 2;
                let mut delta = Delta::default();
                if (off - t) & 1 == 0 {
                    delta.word(mss, new);
                } else {
                    delta.word(mss.swap_bytes(), new.swap_bytes());
                }
                wr16(d, off, new);
                let c = t + 16;
                let v = delta.apply(rd16(d, c));
                wr16(d, c, v);
            }
            if let Some(c) = self.conns.get_mut(id) {
                c.rs_isn = isn;
                c.flags.insert(ConnFlags::TOA_PENDING);
            }
        } else if l3.end > t + l4.hdr_len && conn.flags.contains(ConnFlags::TOA_PENDING) {
            if let Some(c) = self.conns.get_mut(id) {
                c.flags.insert(ConnFlags::RS_SENT_DATA);
            }
        }
        Ok(())
    }

    // ---- ICMP ----

    fn icmp_path(
        &mut self,
        f: &mut Frame<'_>,
        meta: &RxMeta,
        l2: usize,
        l3: &L3,
        rx_port: &PortConfig,
    ) -> Result<Verdict, DropReason> {
        let d = f.data();
        let msg = d.get(l3.l4..l3.end).ok_or(DropReason::Truncated)?;
        if msg.len() < 8 {
            return Err(DropReason::Truncated);
        }
        let ty = msg[0];
        let (echo, error) = if l3.v6 {
            (ty == 128, matches!(ty, 1..=3))
        } else {
            (ty == 8, matches!(ty, 3 | 11))
        };
        if echo {
            if self.is_vip(l3.dst) {
                if !self.policies.answer_echo {
                    return Err(DropReason::IcmpUnsupported);
                }
                return self.echo_reply(f, meta, l3, rx_port);
            }
            return if self.is_ours(l3.dst) {
                Ok(Verdict::Control)
            } else {
                Err(DropReason::NotForUs)
            };
        }
        if error {
            return self.icmp_error(f, l2, l3);
        }
        if self.is_ours(l3.dst) {
            Ok(Verdict::Control)
        } else {
            Err(DropReason::NotForUs)
        }
    }

    fn echo_reply(
        &mut self,
        f: &mut Frame<'_>,
        meta: &RxMeta,
        l3: &L3,
        rx_port: &PortConfig,
    ) -> Result<Verdict, DropReason> {
        f.truncate(l3.end);
        let d = f.data_mut();
        let h = l3.l3;
        let (src, dst) = (l3.dst, l3.src);
        let sender_mac: [u8; 6] = d
            .get(6..12)
            .and_then(|m| m.try_into().ok())
            .unwrap_or(rx_port.gateway_mac);
        if l3.v6 {
            wr_addr(d, h + 8, src);
            wr_addr(d, h + 24, dst);
            if let Some(b) = d.get_mut(h + 7) {
                *b = 64;
            }
            wr(d, l3.l4, &[129, 0, 0, 0]);
            fill_icmp_checksum(d, l3.l4, l3.end, Some((src, dst)));
        } else {
            wr_addr(d, h + 12, src);
            wr_addr(d, h + 16, dst);
            if let Some(b) = d.get_mut(h + 8) {
                *b = 64;
            }
            rewrite::fill_ipv4_checksum(d, l3);
            wr(d, l3.l4, &[0, 0, 0, 0]);
            fill_icmp_checksum(d, l3.l4, l3.end, None);
        }
        rewrite::set_macs(d, rx_port.mac, sender_mac);
        self.counters.icmp_echo_replied += 1;
        Ok(Verdict::Tx { port: meta.port })
    }

    /// Translates an ICMP error about a live connection (outer header, quoted header and
    /// its checksums, ICMP checksum).
    fn icmp_error(&mut self, f: &mut Frame<'_>, l2: usize, l3: &L3) -> Result<Verdict, DropReason> {
        let _ = l2;
        let d = f.data();
        let inner_at = l3.l4 + 8;
        let (il3, sport, dport) = parse_quoted(d, inner_at, l3.end, l3.v6)?;
        let proto = if il3.proto == IpProtocol::TCP.0 {
            Proto::Tcp
        } else {
            Proto::Udp
        };
        let inner = Tuple {
            proto,
            src: il3.src,
            sport,
            dst: il3.dst,
            dport,
        };
        let Some((id, dir)) = self.conns.lookup(&inner.reversed()) else {
            // About a connection of another worker (RSS hashed the error elsewhere)?
            return match self.other_owner(self.owner_of(&inner.reversed())) {
                Some(owner) => Ok(Verdict::Redirect(owner)),
                None => Err(DropReason::NoConnection),
            };
        };
        let conn = *self.conns.get(id).ok_or(DropReason::NoConnection)?;
        let slot = conn.svc_index as usize;
        let svc = self
            .services
            .get(slot)
            .and_then(Option::as_ref)
            .ok_or(DropReason::NoService)?;
        let mode = svc.cfg.mode;
        let rs = *svc
            .rs
            .get(conn.rs_index as usize)
            .ok_or(DropReason::NoRealServer)?;
        if !matches!(mode, Mode::FullNat | Mode::Nat)
            || conn.in_tuple.src.is_ipv4() != conn.out_tuple.src.is_ipv4()
        {
            return Err(DropReason::IcmpUnsupported);
        }
        if l3.ttl <= 1 {
            return self.ttl_expired();
        }
        // The quoted packet as it looked on the other side, and the outer addresses.
        let (new_inner, osrc, odst, to_client) = match dir {
            Direction::Outbound => (conn.in_tuple, conn.in_tuple.dst, conn.in_tuple.src, true),
            Direction::Inbound => {
                let osrc = if mode == Mode::FullNat {
                    conn.out_tuple.dst
                } else {
                    l3.src
                };
                (conn.out_tuple, osrc, conn.out_tuple.src, false)
            }
        };
        f.truncate(l3.end);
        let d = f.data_mut();
        // Inner header: addresses, its checksum, ports and the quoted L4 checksum.
        let (isrc_at, idst_at) = if l3.v6 { (8, 24) } else { (12, 16) };
        let mut l4d = Delta::default();
        l4d.addr(inner.src, new_inner.src);
        l4d.addr(inner.dst, new_inner.dst);
        l4d.word(inner.sport, new_inner.sport);
        l4d.word(inner.dport, new_inner.dport);
        wr_addr(d, il3.l3 + isrc_at, new_inner.src);
        wr_addr(d, il3.l3 + idst_at, new_inner.dst);
        if !l3.v6 {
            rewrite::fill_ipv4_checksum(d, &il3);
        }
        wr16(d, il3.l4, new_inner.sport);
        wr16(d, il3.l4 + 2, new_inner.dport);
        let c = il3.l4 + rewrite::l4_csum_off(il3.proto);
        if c + 2 <= l3.end {
            let old = rd16(d, c);
            if !(proto == Proto::Udp && old == 0) {
                wr16(d, c, l4d.apply(old));
            }
        }
        // Outer header.
        let (src_at, dst_at) = if l3.v6 { (8, 24) } else { (12, 16) };
        wr_addr(d, l3.l3 + src_at, osrc);
        wr_addr(d, l3.l3 + dst_at, odst);
        if l3.v6 {
            if let Some(b) = d.get_mut(l3.l3 + 7) {
                *b = b.saturating_sub(1);
            }
            fill_icmp_checksum(d, l3.l4, l3.end, Some((osrc, odst)));
        } else {
            if let Some(b) = d.get_mut(l3.l3 + 8) {
                *b = b.saturating_sub(1);
            }
            rewrite::fill_ipv4_checksum(d, l3);
            fill_icmp_checksum(d, l3.l4, l3.end, None);
        }
        let port = if to_client {
            let p = self
                .extra
                .get(id.index() as usize)
                .map_or(0, |e| e.client_port);
            self.l2_to_gateway(f, p)?
        } else {
            self.l2_to_rs(f, &rs)?
        };
        self.counters.icmp_translated += 1;
        Ok(Verdict::Tx { port })
    }
}

/// What the packet path reads of a connection.
#[derive(Debug, Clone, Copy)]
struct Hot {
    in_tuple: Tuple,
    out_tuple: Tuple,
    svc_index: u32,
    rs_index: u32,
    flags: ConnFlags,
    rs_isn: u32,
}

impl Hot {
    #[inline]
    fn of(c: &Conn) -> Hot {
        Hot {
            in_tuple: c.in_tuple,
            out_tuple: c.out_tuple,
            svc_index: c.svc_index,
            rs_index: c.rs_index,
            flags: c.flags,
            rs_isn: c.rs_isn,
        }
    }
}

/// Whether a client → RS segment gets TOA: the handshake-completing ACK and what follows
/// until the RS sends data (ACK = RS ISN + 1), never SYN or RST.
fn toa_wanted(d: &[u8], l3: &L3, l4: &L4, conn: &Hot) -> bool {
    if l4.flags & (tcp_flags::SYN | tcp_flags::RST) != 0 || l4.flags & tcp_flags::ACK == 0 {
        return false;
    }
    if !conn.flags.contains(ConnFlags::TOA_PENDING) || conn.flags.contains(ConnFlags::RS_SENT_DATA)
    {
        return false;
    }
    rd32(d, l3.l4 + 8) == conn.rs_isn.wrapping_add(1)
}

/// Parses the quoted packet of an ICMP error: an IP header of the outer family and at
/// least the 8 bytes of TCP/UDP that hold the ports.
fn parse_quoted(d: &[u8], at: usize, end: usize, v6: bool) -> Result<(L3, u16, u16), DropReason> {
    let q = d.get(at..end).ok_or(DropReason::Truncated)?;
    let (hl, proto) = if v6 {
        if q.len() < 40 || q[0] >> 4 != 6 {
            return Err(DropReason::IcmpUnsupported);
        }
        (40, q[6])
    } else {
        if q.len() < 20 || q[0] >> 4 != 4 {
            return Err(DropReason::IcmpUnsupported);
        }
        (usize::from(q[0] & 0x0f) * 4, q[9])
    };
    if hl < 20 || q.len() < hl + 8 {
        return Err(DropReason::IcmpUnsupported);
    }
    if proto != IpProtocol::TCP.0 && proto != IpProtocol::UDP.0 {
        return Err(DropReason::IcmpUnsupported);
    }
    let (sa, da) = if v6 { (8, 24) } else { (12, 16) };
    let l3 = L3 {
        l3: at,
        v6,
        l4: at + hl,
        end,
        proto,
        src: rd_addr(q, sa, v6),
        dst: rd_addr(q, da, v6),
        ttl: 0,
        fragment: false,
    };
    Ok((l3, rd16(q, hl), rd16(q, hl + 2)))
}

/// Recomputes an ICMP (v4: `v6 = None`) or ICMPv6 checksum over `d[at..end]`.
fn fill_icmp_checksum(d: &mut [u8], at: usize, end: usize, v6: Option<(IpAddr, IpAddr)>) {
    wr16(d, at + 2, 0);
    let Some(msg) = d.get(at..end) else {
        return;
    };
    let sum = checksum::data(msg);
    let v = match v6 {
        Some((s, t)) => {
            let pseudo = checksum::pseudo_header(s, t, IpProtocol::ICMPV6, msg.len() as u32);
            checksum::finish(&[pseudo, sum])
        }
        None => !sum,
    };
    wr16(d, at + 2, v);
}

/// Gives back what a connection holds: its local port and its real server's count.
fn release_conn(pool: &mut LaddrPool, services: &mut [Option<Service>], c: &Conn) {
    if let (Some(l), Some(svc)) = (
        c.local,
        services
            .get_mut(c.svc_index as usize)
            .and_then(Option::as_mut),
    ) {
        let _ = pool.release(c.proto(), l.ip(), l.port(), c.rs());
        svc.sched
            .conn_closed(c.rs_index as usize, c.state.is_active());
    } else if let Some(svc) = services
        .get_mut(c.svc_index as usize)
        .and_then(Option::as_mut)
    {
        svc.sched
            .conn_closed(c.rs_index as usize, c.state.is_active());
    } else if let Some(l) = c.local {
        let _ = pool.release(c.proto(), l.ip(), l.port(), c.rs());
    }
}

fn sched_err(key: &ServiceKey, e: crate::dataplane::sched::SchedError) -> ConfigError {
    ConfigError::Sched {
        vip: key.vip,
        vport: key.vport,
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::sched::SchedKind;

    fn port() -> PortConfig {
        PortConfig {
            mac: [2, 0, 0, 0, 0, 1],
            gateway_mac: [2, 0, 0, 0, 0, 2],
            csum: ChecksumCaps::NONE,
        }
    }

    fn svc(vip: &str, mode: Mode, rs: &str) -> ServiceConfig {
        let v: SocketAddr = vip.parse().unwrap();
        ServiceConfig {
            key: ServiceKey {
                vip: v.ip(),
                vport: v.port(),
                proto: Proto::Tcp,
            },
            mode,
            sched: SchedKind::Rr,
            real_servers: vec![RealServerConfig {
                addr: rs.parse().unwrap(),
                weight: 1,
                mac: None,
                port: 0,
            }],
            toa: false,
            persistence: None,
        }
    }

    fn cfg(services: Vec<ServiceConfig>) -> DataplaneConfig {
        let mut c = DataplaneConfig::new(0, 1);
        c.ports = vec![port()];
        c.services = services;
        c.conn_capacity = 16;
        c
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad_worker = DataplaneConfig::new(2, 2);
        let e = Worker::new(bad_worker).unwrap_err();
        assert!(matches!(
            e,
            ConfigError::BadWorker {
                worker: 2,
                workers: 2
            }
        ));
        let dr = cfg(vec![svc("10.0.0.1:80", Mode::Dr, "10.0.1.1:80")]);
        let e = Worker::new(dr).unwrap_err();
        assert!(
            e.to_string().contains("real_servers[10.0.1.1:80].mac"),
            "{e}"
        );
        let nat46 = cfg(vec![svc("10.0.0.1:80", Mode::Nat, "[2001:db8::1]:80")]);
        assert!(matches!(Worker::new(nat46), Err(ConfigError::BadMode(_))));
        let tun = cfg(vec![svc("10.0.0.1:80", Mode::Tunnel, "10.0.1.1:80")]);
        assert!(matches!(
            Worker::new(tun),
            Err(ConfigError::MissingTunnelSource(_))
        ));
        let mut unknown_port = cfg(vec![svc("10.0.0.1:80", Mode::Nat, "10.0.1.1:80")]);
        unknown_port.services[0].real_servers[0].port = 3;
        assert!(matches!(
            Worker::new(unknown_port),
            Err(ConfigError::UnknownPort(_, 3))
        ));
        let dup = cfg(vec![
            svc("10.0.0.1:80", Mode::Nat, "10.0.1.1:80"),
            svc("10.0.0.1:80", Mode::Nat, "10.0.1.2:80"),
        ]);
        assert!(matches!(
            Worker::new(dup),
            Err(ConfigError::DuplicateService(..))
        ));
        let mut zero = cfg(vec![]);
        zero.conn_capacity = 0;
        assert!(matches!(Worker::new(zero), Err(ConfigError::ConnTable(_))));
    }

    #[test]
    fn apply_changes_and_errors() {
        let mut w = Worker::new(cfg(vec![svc("10.0.0.1:80", Mode::Nat, "10.0.1.1:80")])).unwrap();
        let key = ServiceKey {
            vip: "10.0.0.1".parse().unwrap(),
            vport: 80,
            proto: Proto::Tcp,
        };
        let rs: SocketAddr = "10.0.1.1:80".parse().unwrap();
        w.apply(ConfigChange::SetWeight {
            service: key,
            addr: rs,
            weight: 0,
        })
        .unwrap();
        assert!(matches!(
            w.apply(ConfigChange::RemoveRealServer {
                service: key,
                addr: "10.0.1.9:80".parse().unwrap()
            }),
            Err(ConfigError::NoSuchRealServer(_))
        ));
        let laddr: IpAddr = "10.0.2.1".parse().unwrap();
        w.apply(ConfigChange::AddLaddr(laddr)).unwrap();
        assert!(w.apply(ConfigChange::AddLaddr(laddr)).is_err());
        w.apply(ConfigChange::RemoveLaddr(laddr)).unwrap();
        w.apply(ConfigChange::RemoveService(key)).unwrap();
        assert!(matches!(
            w.apply(ConfigChange::RemoveService(key)),
            Err(ConfigError::NoSuchService(..))
        ));
        let mut full = cfg(vec![]);
        full.max_services = 1;
        let mut w = Worker::new(full).unwrap();
        w.apply(ConfigChange::AddService(svc(
            "10.0.0.1:80",
            Mode::Nat,
            "10.0.1.1:80",
        )))
        .unwrap();
        assert!(matches!(
            w.apply(ConfigChange::AddService(svc(
                "10.0.0.2:80",
                Mode::Nat,
                "10.0.1.1:80"
            ))),
            Err(ConfigError::TooManyServices(1))
        ));
    }
}
