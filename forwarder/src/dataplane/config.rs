//! Typed configuration of one worker's dataplane, built by the runtime from the TOML
//! configuration, and the changes the master sends while it runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use l4lab_wire::ChecksumCaps;
use thiserror::Error;

use crate::dataplane::conn::{ConnError, Timeouts};
use crate::dataplane::fault::FaultConfig;
use crate::dataplane::laddr::{LaddrError, PortPolicy};
use crate::dataplane::rss::RssModel;
use crate::dataplane::sched::{SchedError, SchedKind};
use crate::dataplane::types::{Nanos, Proto, Tuple, WorkerId};

/// Forwarding mode of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Client → VIP becomes local address → real server (both addresses rewritten).
    FullNat,
    /// Destination rewritten to the real server; the balancer is the servers' gateway.
    Nat,
    /// Direct routing: only the destination MAC changes.
    Dr,
    /// IP-in-IP (IPIP / IPv6-in-IPv6) encapsulation towards the real server.
    Tunnel,
}

/// One NIC port as the dataplane sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// The port's MAC address (source MAC of everything sent on it).
    pub mac: [u8; 6],
    /// Static next hop for traffic towards clients (and real servers without a MAC).
    pub gateway_mac: [u8; 6],
    /// Checksums the port computes on transmit.
    pub csum: ChecksumCaps,
}

/// A real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServerConfig {
    /// Address and port.
    pub addr: SocketAddr,
    /// Weight; 0 quiesces it.
    pub weight: u32,
    /// Its MAC (required for DR; otherwise the port's gateway MAC is used).
    pub mac: Option<[u8; 6]>,
    /// Port to send towards it on.
    pub port: u16,
}

/// Identifies a service: VIP, port and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// Virtual address.
    pub vip: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// TCP or UDP.
    pub proto: Proto,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// VIP, port and protocol.
    pub key: ServiceKey,
    /// Forwarding mode.
    pub mode: Mode,
    /// Scheduling algorithm.
    pub sched: SchedKind,
    /// Real servers.
    pub real_servers: Vec<RealServerConfig>,
    /// Insert the TOA option (FULLNAT TCP only).
    pub toa: bool,
    /// Persistence per client address (LVS `-p`): a client's new connection goes to the
    /// real server of its previous one if that started less than this long ago (and the
    /// server is still there with a weight). Per worker: see [`crate::dataplane::persist`].
    pub persistence: Option<Nanos>,
}

/// What happens to a packet whose TTL / hop limit is 1 (or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlPolicy {
    /// Drop and count `TtlExceeded`.
    #[default]
    Drop,
    /// Pass to the control plane, which answers with ICMP time exceeded.
    Control,
}

/// What happens to IP fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FragmentPolicy {
    /// Drop and count `Fragment` (DPVS's balancer path).
    #[default]
    Drop,
    /// Pass to the control plane.
    Control,
}

/// Packet-path policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    /// TTL 1 handling.
    pub ttl: TtlPolicy,
    /// Fragment handling.
    pub fragments: FragmentPolicy,
    /// Answer ICMP echo requests to a VIP (else drop them as `IcmpUnsupported`).
    pub answer_echo: bool,
    /// Under the partition policy, hand a reply without connection to the worker that
    /// owns its local port (`lport & mask`) instead of dropping it; with
    /// [`DataplaneConfig::owner_rss`], likewise NAT replies and ICMP errors about
    /// another worker's connection.
    pub redirect_no_conn: bool,
    /// Verify TCP/UDP checksums on receive.
    pub verify_checksums: bool,
    /// When a real server is removed, remove its connections at once (LVS
    /// `expire_quiescent_template`); otherwise they run until they expire.
    pub expire_quiescent: bool,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            ttl: TtlPolicy::Drop,
            fragments: FragmentPolicy::Drop,
            answer_echo: true,
            redirect_no_conn: true,
            verify_checksums: false,
            expire_quiescent: false,
        }
    }
}

/// Outer source addresses of TUNNEL mode: the low `host_bits` bits come from a hash of
/// the inner flow so that the real server's RSS spreads flows over its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunnelConfig {
    /// IPv4 outer source prefix (for IPv4 real servers).
    pub src_v4: Option<Ipv4Addr>,
    /// IPv6 outer source prefix (for IPv6 real servers).
    pub src_v6: Option<Ipv6Addr>,
    /// How many low bits of the source address vary per flow (at most 16).
    pub host_bits: u8,
}

/// How a worker finds the owner of a packet that has no connection on it (a NAT reply,
/// an ICMP error) when RSS delivered it elsewhere: the owner is the worker that polls
/// the queue the NIC gives the connection's client → VIP packets.
#[derive(Debug, Clone)]
pub struct OwnerRss {
    /// RSS model (key, hash types, RETA) of the port clients arrive on.
    pub model: RssModel,
    /// Worker polling each RX queue of that port (index = queue; a queue nobody polls,
    /// or beyond the end, names no owner).
    pub queue_worker: Vec<WorkerId>,
    /// Under the RSS-aware port policy: worker polling each RX queue of the port replies
    /// to local addresses arrive on (hashed by the policy's model). Empty = unknown (no
    /// redirect by local address under that policy).
    pub reply_queue_worker: Vec<WorkerId>,
}

impl OwnerRss {
    /// The worker owning the queue `model` gives `t` (client → VIP), if any.
    #[inline]
    pub fn owner(&self, t: &Tuple) -> Option<WorkerId> {
        self.queue_worker
            .get(usize::from(self.model.queue(t)))
            .copied()
    }
}

/// Everything one worker needs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// This worker's index.
    pub worker: WorkerId,
    /// Number of workers.
    pub workers: u16,
    /// Ports, indexed by port id.
    pub ports: Vec<PortConfig>,
    /// Services.
    pub services: Vec<ServiceConfig>,
    /// FULLNAT local addresses.
    pub laddrs: Vec<IpAddr>,
    /// The box's own addresses (traffic to them goes to the control plane).
    pub host_addrs: Vec<IpAddr>,
    /// How local ports are chosen.
    pub port_policy: PortPolicy,
    /// Connection table capacity.
    pub conn_capacity: u32,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// Packet-path policies.
    pub policies: Policies,
    /// TUNNEL outer sources.
    pub tunnel: TunnelConfig,
    /// Service slots (counters and tables are sized by it).
    pub max_services: usize,
    /// Entries of the persistence table (rounded up to a power of two; allocated only
    /// once a service has `persistence`).
    pub persist_capacity: u32,
    /// How to find the owner of a NAT reply or ICMP error that RSS delivered to another
    /// worker ([`OwnerRss`]); `None`: such packets are dropped.
    pub owner_rss: Option<OwnerRss>,
    /// A deliberate fault for testing the harness ([`crate::dataplane::fault`]); `None`
    /// (the default) forwards correctly.
    pub fault: Option<FaultConfig>,
}

impl DataplaneConfig {
    /// Worker `worker` of `workers`, partition policy, no ports, services or addresses,
    /// 65536 connections, default timeouts and policies, 64 service slots, 65536
    /// persistence entries, no fault.
    pub fn new(worker: WorkerId, workers: u16) -> DataplaneConfig {
        DataplaneConfig {
            worker,
            workers,
            ports: Vec::new(),
            services: Vec::new(),
            laddrs: Vec::new(),
            host_addrs: Vec::new(),
            port_policy: PortPolicy::Partition { workers },
            conn_capacity: 1 << 16,
            timeouts: Timeouts::default(),
            policies: Policies::default(),
            tunnel: TunnelConfig::default(),
            max_services: 64,
            persist_capacity: crate::dataplane::persist::DEFAULT_CAPACITY,
            owner_rss: None,
            fault: None,
        }
    }
}

/// A change the master sends to every worker; applied between bursts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Add a service.
    AddService(ServiceConfig),
    /// Remove a service and its connections.
    RemoveService(ServiceKey),
    /// Add a real server to a service.
    AddRealServer {
        /// The service.
        service: ServiceKey,
        /// The new server.
        rs: RealServerConfig,
    },
    /// Remove a real server: new flows go elsewhere; its connections run until they
    /// expire (or go at once with `expire_quiescent`).
    RemoveRealServer {
        /// The service.
        service: ServiceKey,
        /// The server's address.
        addr: SocketAddr,
    },
    /// Change a real server's weight (0 quiesces).
    SetWeight {
        /// The service.
        service: ServiceKey,
        /// The server's address.
        addr: SocketAddr,
        /// New weight.
        weight: u32,
    },
    /// Add a FULLNAT local address.
    AddLaddr(IpAddr),
    /// Remove a FULLNAT local address (refused while connections use it).
    RemoveLaddr(IpAddr),
    /// A port's next-hop MAC, learned by neighbour resolution.
    SetGatewayMac {
        /// The port (DPDK port id).
        port: u16,
        /// The MAC.
        mac: [u8; 6],
    },
    /// The MAC of every real server at an address, learned by neighbour resolution: frames
    /// to it go to this MAC instead of the gateway's.
    SetRealServerMac {
        /// The address.
        addr: IpAddr,
        /// The MAC.
        mac: [u8; 6],
    },
}

/// A configuration error; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `workers` is 0 or `worker` is not below it.
    #[error("worker {worker} is out of range for workers = {workers}")]
    BadWorker {
        /// The worker index.
        worker: WorkerId,
        /// The worker count.
        workers: u16,
    },
    /// `conn_capacity` rejected by the connection table.
    #[error("conn_capacity: {0}")]
    ConnTable(ConnError),
    /// Local addresses or port policy rejected.
    #[error("laddrs / port_policy: {0}")]
    Laddr(#[from] LaddrError),
    /// A service's scheduler or real servers rejected.
    #[error("services[{vip}:{vport}].scheduler / real_servers: {source}")]
    Sched {
        /// VIP of the service.
        vip: IpAddr,
        /// Port of the service.
        vport: u16,
        /// Why.
        source: SchedError,
    },
    /// Two services with the same VIP, port and protocol.
    #[error("services: {0}:{1} is configured twice; remove the duplicate")]
    DuplicateService(IpAddr, u16),
    /// No such service.
    #[error("service {0}:{1} is not configured")]
    NoSuchService(IpAddr, u16),
    /// No such real server.
    #[error("real server {0} is not configured in that service")]
    NoSuchRealServer(SocketAddr),
    /// More services than `max_services`.
    #[error("services: more than max_services = {0}; raise max_services")]
    TooManyServices(usize),
    /// A real server names a port that is not in `ports`.
    #[error("real_servers[{0}].port: port {1} is not configured")]
    UnknownPort(SocketAddr, u16),
    /// A change names a port that is not in `ports`.
    #[error("ports: port {0} is not configured")]
    NoSuchPort(u16),
    /// DR needs the real server's MAC.
    #[error("real_servers[{0}].mac: DR mode needs the real server's MAC")]
    MissingMac(SocketAddr),
    /// TUNNEL needs an outer source of the real server's family.
    #[error("tunnel.src_v4 / tunnel.src_v6: no tunnel source for real server {0}")]
    MissingTunnelSource(SocketAddr),
    /// `tunnel.host_bits` above 16.
    #[error("tunnel.host_bits: {0} is above 16")]
    BadHostBits(u8),
    /// ICMP is not a service protocol.
    #[error("services[{0}:{1}].proto: only tcp and udp services exist")]
    BadProto(IpAddr, u16),
    /// NAT, DR and TUNNEL need real servers of the VIP's family (NAT64 is FULLNAT only),
    /// and TOA is FULLNAT TCP only.
    #[error("real_servers[{0}]: address family or option not supported by this mode")]
    BadMode(SocketAddr),
}

impl From<ConnError> for ConfigError {
    fn from(e: ConnError) -> Self {
        ConfigError::ConnTable(e)
    }
}
