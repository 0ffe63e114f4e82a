//! The forwarder's TOML configuration, parsed into typed values.
//!
//! Parsing happens in two steps. First the text is deserialised into private `Raw*` structs
//! whose leaves are [`toml::Spanned`] strings, integers and booleans, so that every value
//! keeps its byte range; unknown keys and wrong TOML types are rejected there. Then each raw
//! value is converted into its typed form ([`IpAddr`], [`Mode`], [`Duration`], …) and the
//! whole is cross-checked (duplicate services, queue ownership, address families, …).
//! Every error of either step is a [`ConfigError`] naming the file, line, column and field:
//!
//! ```text
//! forwarder.toml:12:10: service[1].rs[0].weight: expected a non-negative integer, got -3
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::Spanned;

use crate::dataplane::fault::{FaultConfig, FaultKind};
use crate::dataplane::rss::{HashTypes, RssKey};
use crate::dataplane::sched::SchedKind;

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/l4lab/forwarder.sock";
/// Default Maglev table size (prime).
pub const DEFAULT_MAGLEV_TABLE_SIZE: u32 = 65537;
/// Largest Maglev table size accepted.
pub const MAX_MAGLEV_TABLE_SIZE: u32 = 16_777_259;
/// Default connection-table capacity of each worker.
pub const DEFAULT_CONN_CAPACITY: u32 = 1 << 20;
/// Largest connection-table capacity of one worker.
pub const MAX_CONN_CAPACITY: u32 = 1 << 27;
/// Default bound on the packets a trace records.
pub const DEFAULT_TRACE_MAX_PACKETS: u64 = 100_000;
/// Most RX or TX queues a port may have.
pub const MAX_QUEUES: u16 = 1024;
/// Largest real-server weight (as in LVS).
pub const MAX_WEIGHT: u32 = 65535;

/// A configuration that could not be read, parsed or accepted.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config file: {source}", path.display())]
    Read {
        /// The path given.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but a value in it is wrong; the location points at that value.
    #[error("{file}:{line}:{column}: {field}: {message}")]
    Invalid {
        /// The file name as given.
        file: String,
        /// 1-based line of the offending value.
        line: usize,
        /// 1-based column (in characters) of the offending value.
        column: usize,
        /// Path of the offending field, such as `service[1].rs[0].weight`.
        field: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

impl ConfigError {
    /// The 1-based line of the offending value, if the error has a location.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { line, .. } => Some(*line),
        }
    }

    /// The path of the offending field, if the error has one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { field, .. } => Some(field),
        }
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Whether the group bit is clear (neither multicast nor broadcast).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0
    }
}

impl FromStr for MacAddr {
    type Err = String;

    /// `aa:bb:cc:dd:ee:ff` (or with `-` separators).
    fn from_str(s: &str) -> Result<MacAddr, String> {
        let bad = || format!("expected a MAC address such as 02:00:00:00:00:01, got {s:?}");
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = String;

    fn try_from(s: String) -> Result<MacAddr, String> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A PCI address `domain:bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciAddr {
    /// PCI domain (0 when the address omits it).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..=31).
    pub device: u8,
    /// Function number (0..=7).
    pub function: u8,
}

impl FromStr for PciAddr {
    type Err = ();

    /// `0000:3b:00.0` or `3b:00.0`.
    fn from_str(s: &str) -> Result<PciAddr, ()> {
        let hex = |p: &str, len: usize| -> Result<u32, ()> {
            if p.len() != len || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            u32::from_str_radix(p, 16).map_err(|_| ())
        };
        let (head, function) = s.rsplit_once('.').ok_or(())?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, v] => (hex(d, 4)?, hex(b, 2)?, hex(v, 2)?),
            [b, v] => (0, hex(b, 2)?, hex(v, 2)?),
            _ => return Err(()),
        };
        let function = hex(function, 1)?;
        if device > 0x1f || function > 7 {
            return Err(());
        }
        // The widths were checked above, so the narrowing conversions cannot fail.
        Ok(PciAddr {
            domain: u16::try_from(domain).map_err(|_| ())?,
            bus: u8::try_from(bus).map_err(|_| ())?,
            device: u8::try_from(device).map_err(|_| ())?,
            function: u8::try_from(function).map_err(|_| ())?,
        })
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// A device argument `key=value` (DPDK devargs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DevArg {
    /// The key, such as `rx_pcap`.
    pub key: String,
    /// The value, such as `in.pcap`.
    pub value: String,
}

/// Where a port's packets come from: a PCI NIC or a DPDK virtual device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Device {
    /// A PCI device bound to a DPDK driver, with optional devargs.
    Pci {
        /// Its address.
        addr: PciAddr,
        /// Driver arguments.
        args: Vec<DevArg>,
    },
    /// A virtual device such as `net_ring0` or `net_pcap0,rx_pcap=a.pcap`.
    Vdev {
        /// The device name, starting with `net_` (`net_pcap0`).
        name: String,
        /// Driver arguments.
        args: Vec<DevArg>,
    },
}

impl Device {
    /// The driver arguments.
    pub fn args(&self) -> &[DevArg] {
        match self {
            Device::Pci { args, .. } | Device::Vdev { args, .. } => args,
        }
    }

    /// The EAL option and its value that make this device available: `("-a", "0000:3b:00.0")`
    /// or `("--vdev", "net_pcap0,rx_pcap=a.pcap")`.
    pub fn eal_option(&self) -> (&'static str, String) {
        match self {
            Device::Pci { .. } => ("-a", self.to_string()),
            Device::Vdev { .. } => ("--vdev", self.to_string()),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Device, String> {
        let mut parts = s.split(',');
        let head = parts.next().unwrap_or_default().trim();
        let mut args = Vec::new();
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("device argument {part:?} is not of the form key=value"))?;
            if key.is_empty() {
                return Err(format!("device argument {part:?} has an empty key"));
            }
            args.push(DevArg {
                key: key.to_owned(),
                value: value.to_owned(),
            });
        }
        if let Ok(addr) = head.parse::<PciAddr>() {
            return Ok(Device::Pci { addr, args });
        }
        let name_ok = head.len() > 4
            && head.starts_with("net_")
            && head
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(format!(
                "expected a PCI address (0000:3b:00.0) or a vdev name starting with net_ \
                 (net_ring0, net_pcap0,rx_pcap=in.pcap), got {s:?}"
            ));
        }
        Ok(Device::Vdev {
            name: head.to_owned(),
            args,
        })
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Pci { addr, .. } => write!(f, "{addr}")?,
            Device::Vdev { name, .. } => f.write_str(name)?,
        }
        for a in self.args() {
            write!(f, ",{}={}", a.key, a.value)?;
        }
        Ok(())
    }
}

/// The RSS key a port is programmed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssKeySpec {
    /// The standard 40-byte (Microsoft) key.
    Default,
    /// `6d 5a` repeated: hash(a→b) = hash(b→a).
    Symmetric,
    /// An explicit key (40 or 52 bytes).
    Explicit(RssKey),
}

impl RssKeySpec {
    /// The key.
    pub fn key(&self) -> RssKey {
        match self {
            RssKeySpec::Default => RssKey::microsoft(),
            RssKeySpec::Symmetric => RssKey::symmetric(),
            RssKeySpec::Explicit(k) => *k,
        }
    }

    /// The key bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.key().as_bytes().to_vec()
    }
}

/// One packet type a NIC feeds into the RSS hash (DPDK's `rss_hf` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RssHashType {
    /// `ipv4`: IPv4 addresses.
    Ipv4,
    /// `ipv4-tcp`: IPv4 addresses and TCP ports.
    Ipv4Tcp,
    /// `ipv4-udp`: IPv4 addresses and UDP ports.
    Ipv4Udp,
    /// `ipv6`: IPv6 addresses.
    Ipv6,
    /// `ipv6-tcp`: IPv6 addresses and TCP ports.
    Ipv6Tcp,
    /// `ipv6-udp`: IPv6 addresses and UDP ports.
    Ipv6Udp,
}

impl RssHashType {
    /// Every hash type, in the order of their names in [`RssHashType::NAMES`].
    pub const ALL: [RssHashType; 6] = [
        RssHashType::Ipv4,
        RssHashType::Ipv4Tcp,
        RssHashType::Ipv4Udp,
        RssHashType::Ipv6,
        RssHashType::Ipv6Tcp,
        RssHashType::Ipv6Udp,
    ];
    /// The config names of the hash types.
    pub const NAMES: [&'static str; 6] = [
        "ipv4", "ipv4-tcp", "ipv4-udp", "ipv6", "ipv6-tcp", "ipv6-udp",
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            RssHashType::Ipv4 => "ipv4",
            RssHashType::Ipv4Tcp => "ipv4-tcp",
            RssHashType::Ipv4Udp => "ipv4-udp",
            RssHashType::Ipv6 => "ipv6",
            RssHashType::Ipv6Tcp => "ipv6-tcp",
            RssHashType::Ipv6Udp => "ipv6-udp",
        }
    }
}

impl FromStr for RssHashType {
    type Err = ();

    fn from_str(s: &str) -> Result<RssHashType, ()> {
        RssHashType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or(())
    }
}

/// RSS settings of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConfig {
    /// The key.
    pub key: RssKeySpec,
    /// The enabled hash types (default: all six), sorted, without duplicates.
    pub hash_types: Vec<RssHashType>,
    /// RETA size to program; `None` uses the device's own.
    pub reta_size: Option<u16>,
}

impl RssConfig {
    /// The enabled hash types as the dataplane's RSS model takes them.
    pub fn hash_types_model(&self) -> HashTypes {
        let on = |t| self.hash_types.contains(&t);
        HashTypes {
            ipv4: on(RssHashType::Ipv4),
            ipv4_tcp: on(RssHashType::Ipv4Tcp),
            ipv4_udp: on(RssHashType::Ipv4Udp),
            ipv6: on(RssHashType::Ipv6),
            ipv6_tcp: on(RssHashType::Ipv6Tcp),
            ipv6_udp: on(RssHashType::Ipv6Udp),
        }
    }
}

impl Default for RssConfig {
    fn default() -> RssConfig {
        RssConfig {
            key: RssKeySpec::Default,
            hash_types: RssHashType::ALL.to_vec(),
            reta_size: None,
        }
    }
}

/// One `[[port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The name other sections refer to (`p0`).
    pub name: String,
    /// The device.
    pub device: Device,
    /// Number of RX queues (default 1).
    pub rx_queues: u16,
    /// Number of TX queues (default: as many as RX queues).
    pub tx_queues: u16,
    /// MAC address to set instead of the device's own.
    pub mac: Option<MacAddr>,
    /// Static next-hop MAC address (wins over `gateway`).
    pub gateway_mac: Option<MacAddr>,
    /// Next-hop address, resolved by ARP / neighbour solicitation when there is no
    /// `gateway_mac`. Without either, frames to the next hop are broadcast.
    pub gateway: Option<IpAddr>,
    /// RSS settings.
    pub rss: RssConfig,
    /// Whether to use the device's checksum offloads when it has them (default true).
    pub checksum_offload: bool,
}

/// A port's RX queue, by port index into [`Config::ports`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueRef {
    /// Index of the port in [`Config::ports`].
    pub port: usize,
    /// RX queue id on that port.
    pub rx: u16,
}

/// One worker lcore and the RX queues it polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Worker id, dense from 0.
    pub id: u16,
    /// The EAL lcore it runs on.
    pub lcore: u32,
    /// The RX queues it owns.
    pub queues: Vec<QueueRef>,
}

/// How RX queues are mapped to workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerMap {
    /// No `[[worker]]`: worker i polls queue i of every port and runs on the i-th EAL
    /// worker lcore (see [`Config::workers`]).
    Default,
    /// The `[[worker]]` sections, sorted by id.
    Explicit(Vec<WorkerConfig>),
}

/// The default worker map needs more lcores than the EAL has.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the default worker map needs {needed} worker lcores (one per RX queue) but the EAL has \
     {available}; give more lcores with -l in [eal] args or write [[worker]] sections"
)]
pub struct WorkerMapError {
    /// Lcores needed.
    pub needed: usize,
    /// Lcores available.
    pub available: usize,
}

/// Layer-4 protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Proto, String> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(format!("expected tcp or udp, got {s:?}")),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Forwarding mode of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Source and destination NAT through a local address (may translate IPv6 → IPv4).
    FullNat,
    /// Destination NAT; replies must route back through the balancer.
    Nat,
    /// Direct routing: MAC rewrite only; the real server answers the client itself.
    Dr,
    /// IP-in-IP tunnel to the real server.
    Tunnel,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "fullnat" => Ok(Mode::FullNat),
            "nat" => Ok(Mode::Nat),
            "dr" => Ok(Mode::Dr),
            "tunnel" => Ok(Mode::Tunnel),
            _ => Err(format!("expected fullnat, nat, dr or tunnel, got {s:?}")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::FullNat => "fullnat",
            Mode::Nat => "nat",
            Mode::Dr => "dr",
            Mode::Tunnel => "tunnel",
        })
    }
}

/// Scheduling algorithm of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Weighted least connections (the default, as in ipvsadm).
    Wlc,
    /// Source hashing.
    Sh,
    /// Maglev hashing.
    Maglev {
        /// Table size (prime).
        table_size: u32,
    },
}

impl Scheduler {
    /// The algorithm's name (`maglev` without its size).
    pub fn name(&self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Wlc => "wlc",
            Scheduler::Sh => "sh",
            Scheduler::Maglev { .. } => "maglev",
        }
    }
}

impl From<Scheduler> for SchedKind {
    fn from(s: Scheduler) -> SchedKind {
        match s {
            Scheduler::Rr => SchedKind::Rr,
            Scheduler::Wrr => SchedKind::Wrr,
            Scheduler::Wlc => SchedKind::Wlc,
            Scheduler::Sh => SchedKind::Sh,
            Scheduler::Maglev { table_size } => SchedKind::Maglev { table_size },
        }
    }
}

impl FromStr for Scheduler {
    type Err = String;

    /// `rr`, `wrr`, `wlc`, `sh`, `maglev` (or `mh`) with the default table size.
    fn from_str(s: &str) -> Result<Scheduler, String> {
        match s {
            "rr" => Ok(Scheduler::Rr),
            "wrr" => Ok(Scheduler::Wrr),
            "wlc" => Ok(Scheduler::Wlc),
            "sh" => Ok(Scheduler::Sh),
            "maglev" | "mh" => Ok(Scheduler::Maglev {
                table_size: DEFAULT_MAGLEV_TABLE_SIZE,
            }),
            _ => Err(format!("expected rr, wrr, wlc, sh or maglev, got {s:?}")),
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheduler::Maglev { table_size } if *table_size != DEFAULT_MAGLEV_TABLE_SIZE => {
                write!(f, "maglev({table_size})")
            }
            s => f.write_str(s.name()),
        }
    }
}

/// One real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerConfig {
    /// Address and port.
    pub addr: SocketAddr,
    /// Weight, 0..=[`MAX_WEIGHT`] (0 takes no new connections). Default 1.
    pub weight: u32,
    /// Static MAC address (DR); otherwise resolved by ARP/NDP.
    pub mac: Option<MacAddr>,
}

/// One `[[service]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Virtual address and port.
    pub vip: SocketAddr,
    /// Protocol.
    pub proto: Proto,
    /// Forwarding mode.
    pub mode: Mode,
    /// Scheduler (default wlc).
    pub scheduler: Scheduler,
    /// Insert the TCP option address (TOA); FULLNAT TCP only.
    pub toa: bool,
    /// Client persistence timeout, if any.
    pub persistence: Option<Duration>,
    /// Real servers.
    pub real_servers: Vec<RealServerConfig>,
}

/// Local (source) addresses of one port, for FULLNAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaddrConfig {
    /// Index of the port in [`Config::ports`].
    pub port: usize,
    /// The addresses.
    pub addrs: Vec<IpAddr>,
}

/// `[neighbours]`: next-hop resolution beyond the ports' `gateway`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeighboursConfig {
    /// Resolve every real server's address (without a static `mac`) on the real servers'
    /// port, and send it frames at its own MAC once known (default false: everything
    /// goes to the gateway; on for real servers on the forwarder's own link).
    pub real_servers: bool,
}

/// `[policies]`: what the packet path does with packets that are not plain forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoliciesConfig {
    /// Verify TCP/UDP checksums on receive and drop bad ones (default false: like most
    /// balancers, leave that to the end hosts).
    pub verify_checksums: bool,
    /// Answer ICMP echo requests to a VIP (default true, as DPVS does).
    pub answer_echo: bool,
    /// TTL 1: `false` drops and counts it (default), `true` passes it to the control plane.
    pub ttl_to_control: bool,
    /// Fragments: `false` drops and counts them (default), `true` passes them to the control
    /// plane.
    pub fragments_to_control: bool,
    /// Remove a real server's connections as soon as it is removed (default false: they run
    /// until they expire).
    pub expire_quiescent: bool,
}

impl Default for PoliciesConfig {
    fn default() -> PoliciesConfig {
        PoliciesConfig {
            verify_checksums: false,
            answer_echo: true,
            ttl_to_control: false,
            fragments_to_control: false,
            expire_quiescent: false,
        }
    }
}

/// How FULLNAT replies are brought back to the worker owning the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SteeringMode {
    /// rte_flow rules where the PMD accepts them, else RSS-aware port choice.
    Auto,
    /// rte_flow rules only; a port that refuses them is an error at start.
    Flow,
    /// RSS-aware local port choice only.
    Rss,
    /// DPVS's port partition (`lport & mask == worker`) with no flow rules: replies that
    /// land on another worker are passed to the owner over the redirect rings. For devices
    /// whose steering is done elsewhere, and to exercise the redirect path.
    Partition,
}

impl fmt::Display for SteeringMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SteeringMode::Auto => "auto",
            SteeringMode::Flow => "flow",
            SteeringMode::Rss => "rss",
            SteeringMode::Partition => "partition",
        })
    }
}

/// `[steering]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteeringConfig {
    /// Mode (default auto).
    pub mode: SteeringMode,
    /// Pass packets that reach the wrong worker to their owner over a ring (default true).
    pub redirect: bool,
}

impl Default for SteeringConfig {
    fn default() -> SteeringConfig {
        SteeringConfig {
            mode: SteeringMode::Auto,
            redirect: true,
        }
    }
}

/// Idle timeouts of TCP connections per LVS state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTimeouts {
    /// NONE (default 2 s).
    pub none: Duration,
    /// ESTABLISHED (default 90 s).
    pub established: Duration,
    /// SYN_SENT (default 3 s).
    pub syn_sent: Duration,
    /// SYN_RECV (default 30 s).
    pub syn_recv: Duration,
    /// FIN_WAIT (default 7 s).
    pub fin_wait: Duration,
    /// TIME_WAIT (default 7 s).
    pub time_wait: Duration,
    /// CLOSE (default 3 s).
    pub close: Duration,
    /// CLOSE_WAIT (default 7 s).
    pub close_wait: Duration,
    /// LAST_ACK (default 7 s).
    pub last_ack: Duration,
    /// LISTEN (default 120 s).
    pub listen: Duration,
    /// SYNACK (default 30 s).
    pub synack: Duration,
}

impl TcpTimeouts {
    /// The timeouts in the dataplane's state order (`TcpState::ALL`: NONE, ESTABLISHED,
    /// SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, SYNACK).
    pub fn in_state_order(&self) -> [Duration; 11] {
        [
            self.none,
            self.established,
            self.syn_sent,
            self.syn_recv,
            self.fin_wait,
            self.time_wait,
            self.close,
            self.close_wait,
            self.last_ack,
            self.listen,
            self.synack,
        ]
    }
}

impl Default for TcpTimeouts {
    fn default() -> TcpTimeouts {
        let s = Duration::from_secs;
        TcpTimeouts {
            none: s(2),
            established: s(90),
            syn_sent: s(3),
            syn_recv: s(30),
            fin_wait: s(7),
            time_wait: s(7),
            close: s(3),
            close_wait: s(7),
            last_ack: s(7),
            listen: s(120),
            synack: s(30),
        }
    }
}

/// Idle timeouts of UDP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpTimeouts {
    /// Replies seen (default 300 s).
    pub normal: Duration,
    /// Only client packets seen (default 60 s).
    pub oneway: Duration,
}

impl Default for UdpTimeouts {
    fn default() -> UdpTimeouts {
        UdpTimeouts {
            normal: Duration::from_secs(300),
            oneway: Duration::from_secs(60),
        }
    }
}

/// `[timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// `[timeouts.tcp]`.
    pub tcp: TcpTimeouts,
    /// `[timeouts.udp]`.
    pub udp: UdpTimeouts,
}

/// `[tables]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablesConfig {
    /// Connection-table capacity of each worker.
    pub conn_capacity: u32,
    /// Client → real server entries of persistent services, per worker (rounded up to a
    /// power of two; allocated only when a service has `persistence`).
    pub persist_capacity: u32,
}

impl Default for TablesConfig {
    fn default() -> TablesConfig {
        TablesConfig {
            conn_capacity: DEFAULT_CONN_CAPACITY,
            persist_capacity: crate::dataplane::persist::DEFAULT_CAPACITY,
        }
    }
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Path of the Unix control socket.
    pub socket: PathBuf,
    /// Loopback address of the Prometheus endpoint, if any.
    pub metrics: Option<SocketAddr>,
}

impl Default for ControlConfig {
    fn default() -> ControlConfig {
        ControlConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            metrics: None,
        }
    }
}

/// `[trace]`: a bounded pcapng capture of what the workers received and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    /// Output file.
    pub path: PathBuf,
    /// Packets after which the capture stops.
    pub max_packets: u64,
}

/// The whole forwarder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Ports, in file order (their index is their id everywhere else).
    pub ports: Vec<PortConfig>,
    /// Queue → worker map.
    pub workers: WorkerMap,
    /// Services, in file order.
    pub services: Vec<ServiceConfig>,
    /// Local addresses per port (ports without addresses are absent).
    pub laddrs: Vec<LaddrConfig>,
    /// Reply steering.
    pub steering: SteeringConfig,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Table sizes.
    pub tables: TablesConfig,
    /// Control socket and metrics.
    pub control: ControlConfig,
    /// Packet trace, if enabled.
    pub trace: Option<TraceConfig>,
    /// Packet-path policies.
    pub policies: PoliciesConfig,
    /// `[fault]`: a deliberate fault for testing the correctness harness (`None`, the
    /// default, forwards correctly). See [`crate::dataplane::fault`].
    pub fault: Option<FaultConfig>,
    /// `[neighbours]`.
    pub neighbours: NeighboursConfig,
    /// Extra EAL arguments (the ports' `-a`/`--vdev` options are added by the runtime).
    pub eal_args: Vec<String>,
}

impl Config {
    /// Reads and parses a config file; errors name `path` as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses config text; `file` is the name errors use.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let ctx = Ctx { file, text };
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| ctx.toml_error(e))?;
        ctx.convert(raw)
    }

    /// The index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// Number of workers the map yields.
    pub fn worker_count(&self) -> usize {
        match &self.workers {
            WorkerMap::Default => max_rx_queues(&self.ports),
            WorkerMap::Explicit(w) => w.len(),
        }
    }

    /// The workers, resolving the default map with the EAL's worker lcores (in order).
    pub fn workers(&self, eal_worker_lcores: &[u32]) -> Result<Vec<WorkerConfig>, WorkerMapError> {
        match &self.workers {
            WorkerMap::Explicit(w) => Ok(w.clone()),
            WorkerMap::Default => {
                let needed = max_rx_queues(&self.ports);
                if eal_worker_lcores.len() < needed {
                    return Err(WorkerMapError {
                        needed,
                        available: eal_worker_lcores.len(),
                    });
                }
                Ok(eal_worker_lcores
                    .iter()
                    .take(needed)
                    .zip(0u16..)
                    .map(|(&lcore, id)| WorkerConfig {
                        id,
                        lcore,
                        queues: self
                            .ports
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| id < p.rx_queues)
                            .map(|(port, _)| QueueRef { port, rx: id })
                            .collect(),
                    })
                    .collect())
            }
        }
    }
}

fn max_rx_queues(ports: &[PortConfig]) -> usize {
    ports
        .iter()
        .map(|p| usize::from(p.rx_queues))
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Raw (spanned) form.

type S<T> = Spanned<T>;

/// `[laddr]`: port name → addresses.
type RawLaddr = BTreeMap<S<String>, S<Vec<S<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    port: Vec<S<RawPort>>,
    worker: Option<Vec<S<RawWorker>>>,
    #[serde(default)]
    service: Vec<S<RawService>>,
    laddr: Option<RawLaddr>,
    steering: Option<RawSteering>,
    timeouts: Option<RawTimeouts>,
    tables: Option<RawTables>,
    control: Option<RawControl>,
    trace: Option<S<RawTrace>>,
    policies: Option<RawPolicies>,
    fault: Option<RawFault>,
    neighbours: Option<RawNeighbours>,
    eal: Option<RawEal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbours {
    real_servers: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: S<String>,
    every: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    verify_checksums: Option<bool>,
    answer_echo: Option<bool>,
    ttl: Option<S<String>>,
    fragments: Option<S<String>>,
    expire_quiescent: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: S<String>,
    device: S<String>,
    rx_queues: Option<S<i64>>,
    tx_queues: Option<S<i64>>,
    mac: Option<S<String>>,
    gateway_mac: Option<S<String>>,
    gateway: Option<S<String>>,
    rss: Option<RawRss>,
    checksum_offload: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRss {
    key: Option<S<String>>,
    hash_types: Option<S<Vec<S<String>>>>,
    reta_size: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    id: S<i64>,
    lcore: S<i64>,
    queues: S<Vec<S<RawQueue>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    port: S<String>,
    rx: S<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    vip: S<String>,
    port: S<i64>,
    proto: S<String>,
    mode: S<String>,
    scheduler: Option<S<String>>,
    maglev_table_size: Option<S<i64>>,
    toa: Option<S<bool>>,
    persistence: Option<S<String>>,
    #[serde(default)]
    rs: Vec<S<RawRs>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRs {
    addr: S<String>,
    weight: Option<S<i64>>,
    mac: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSteering {
    mode: Option<S<String>>,
    redirect: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    tcp: Option<RawTcpTimeouts>,
    udp: Option<RawUdpTimeouts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcpTimeouts {
    none: Option<S<String>>,
    established: Option<S<String>>,
    syn_sent: Option<S<String>>,
    syn_recv: Option<S<String>>,
    fin_wait: Option<S<String>>,
    time_wait: Option<S<String>>,
    close: Option<S<String>>,
    close_wait: Option<S<String>>,
    last_ack: Option<S<String>>,
    listen: Option<S<String>>,
    synack: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUdpTimeouts {
    normal: Option<S<String>>,
    oneway: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    conn_capacity: Option<S<i64>>,
    persist_capacity: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<S<String>>,
    metrics: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    path: S<String>,
    max_packets: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEal {
    #[serde(default)]
    args: Vec<S<String>>,
}

// ---------------------------------------------------------------------------------------
// Conversion and cross-checks.

/// The text being parsed, for turning spans into locations.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn error(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_column(self.text, span.start);
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn toml_error(&self, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
        let path = e.path().to_string();
        let field = path
            .split('.')
            .filter(|seg| !seg.is_empty() && !seg.starts_with("$__serde_spanned"))
            .collect::<Vec<_>>()
            .join(".");
        let inner = e.into_inner();
        let field = if field.is_empty() {
            "syntax".to_owned()
        } else {
            field
        };
        let message = inner
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        self.error(inner.span().unwrap_or(0..0), &field, message)
    }

    fn parse<T: FromStr<Err = String>>(
        &self,
        v: &S<String>,
        field: &str,
    ) -> Result<T, ConfigError> {
        v.get_ref()
            .parse()
            .map_err(|m| self.error(v.span(), field, m))
    }

    fn uint(&self, v: &S<i64>, field: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
        let x = *v.get_ref();
        if x < 0 && min >= 0 {
            return Err(self.error(
                v.span(),
                field,
                format!("expected a non-negative integer, got {x}"),
            ));
        }
        if x < min {
            return Err(self.error(v.span(), field, format!("must be at least {min}, got {x}")));
        }
        if x > max {
            return Err(self.error(v.span(), field, format!("must be at most {max}, got {x}")));
        }
        Ok(x)
    }

    fn u16(&self, v: &S<i64>, field: &str, min: u16, max: u16) -> Result<u16, ConfigError> {
        let x = self.uint(v, field, min.into(), max.into())?;
        u16::try_from(x).map_err(|_| self.error(v.span(), field, "out of range"))
    }

    fn u32(&self, v: &S<i64>, field: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
        let x = self.uint(v, field, min.into(), max.into())?;
        u32::try_from(x).map_err(|_| self.error(v.span(), field, "out of range"))
    }

    fn duration(&self, v: &S<String>, field: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(v.get_ref()).map_err(|e| {
            self.error(
                v.span(),
                field,
                format!(
                    "expected a duration such as \"90s\" or \"5m\", got {:?} ({e})",
                    v.get_ref()
                ),
            )
        })?;
        if d.is_zero() {
            return Err(self.error(v.span(), field, "a timeout must be longer than zero"));
        }
        Ok(d)
    }

    fn mac(&self, v: &S<String>, field: &str) -> Result<MacAddr, ConfigError> {
        let mac: MacAddr = self.parse(v, field)?;
        if !mac.is_unicast() {
            return Err(self.error(
                v.span(),
                field,
                format!("expected a unicast MAC address, got {mac} (group bit set)"),
            ));
        }
        Ok(mac)
    }

    fn convert(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let ports = self.ports(&raw.port)?;
        let workers = match &raw.worker {
            None => WorkerMap::Default,
            Some(w) => WorkerMap::Explicit(self.workers(w, &raw.port, &ports)?),
        };
        let worker_count = match &workers {
            WorkerMap::Default => max_rx_queues(&ports),
            WorkerMap::Explicit(w) => w.len(),
        };
        for (i, (raw_port, port)) in raw.port.iter().zip(&ports).enumerate() {
            if usize::from(port.tx_queues) < worker_count {
                let span = raw_port
                    .get_ref()
                    .tx_queues
                    .as_ref()
                    .map_or_else(|| raw_port.span(), Spanned::span);
                return Err(self.error(
                    span,
                    &format!("port[{i}].tx_queues"),
                    format!(
                        "port {} has {} TX queues but each of the {worker_count} workers needs \
                         one; set tx_queues = {worker_count}",
                        port.name, port.tx_queues
                    ),
                ));
            }
        }
        let laddrs = self.laddrs(raw.laddr.as_ref(), &ports)?;
        let services = self.services(&raw.service, &laddrs)?;
        let steering = match &raw.steering {
            None => SteeringConfig::default(),
            Some(s) => SteeringConfig {
                mode: match &s.mode {
                    None => SteeringMode::Auto,
                    Some(m) => match m.get_ref().as_str() {
                        "auto" => SteeringMode::Auto,
                        "flow" => SteeringMode::Flow,
                        "rss" => SteeringMode::Rss,
                        "partition" => SteeringMode::Partition,
                        other => {
                            return Err(self.error(
                                m.span(),
                                "steering.mode",
                                format!("expected auto, flow, rss or partition, got {other:?}"),
                            ))
                        }
                    },
                },
                redirect: s.redirect.as_ref().is_none_or(|r| *r.get_ref()),
            },
        };
        let timeouts = self.timeouts(raw.timeouts.as_ref())?;
        let mut tables = TablesConfig::default();
        if let Some(t) = raw.tables.as_ref() {
            if let Some(c) = &t.conn_capacity {
                tables.conn_capacity = self.u32(c, "tables.conn_capacity", 1, MAX_CONN_CAPACITY)?;
            }
            if let Some(c) = &t.persist_capacity {
                tables.persist_capacity = self.u32(
                    c,
                    "tables.persist_capacity",
                    1,
                    crate::dataplane::persist::MAX_CAPACITY,
                )?;
            }
        }
        let control = self.control(raw.control.as_ref())?;
        let trace = match &raw.trace {
            None => None,
            Some(t) => {
                let t = t.get_ref();
                if t.path.get_ref().is_empty() {
                    return Err(self.error(t.path.span(), "trace.path", "the path is empty"));
                }
                Some(TraceConfig {
                    path: PathBuf::from(t.path.get_ref()),
                    max_packets: match &t.max_packets {
                        None => DEFAULT_TRACE_MAX_PACKETS,
                        Some(m) => {
                            let n = self.uint(m, "trace.max_packets", 1, i64::MAX)?;
                            u64::try_from(n).map_err(|_| {
                                self.error(m.span(), "trace.max_packets", "out of range")
                            })?
                        }
                    },
                })
            }
        };
        let mut policies = PoliciesConfig::default();
        if let Some(p) = &raw.policies {
            let to_control = |v: &Option<S<String>>, field: &str| -> Result<bool, ConfigError> {
                match v {
                    None => Ok(false),
                    Some(m) => match m.get_ref().as_str() {
                        "drop" => Ok(false),
                        "control" => Ok(true),
                        other => Err(self.error(
                            m.span(),
                            field,
                            format!("expected drop or control, got {other:?}"),
                        )),
                    },
                }
            };
            policies = PoliciesConfig {
                verify_checksums: p.verify_checksums.unwrap_or(policies.verify_checksums),
                answer_echo: p.answer_echo.unwrap_or(policies.answer_echo),
                ttl_to_control: to_control(&p.ttl, "policies.ttl")?,
                fragments_to_control: to_control(&p.fragments, "policies.fragments")?,
                expire_quiescent: p.expire_quiescent.unwrap_or(policies.expire_quiescent),
            };
        }
        let fault = match &raw.fault {
            None => None,
            Some(f) => Some(FaultConfig {
                kind: self.parse::<FaultKind>(&f.kind, "fault.kind")?,
                every: match &f.every {
                    None => 1,
                    Some(e) => self.u32(e, "fault.every", 1, u32::MAX)?,
                },
            }),
        };
        let eal_args = raw
            .eal
            .map(|e| e.args.into_iter().map(Spanned::into_inner).collect())
            .unwrap_or_default();
        Ok(Config {
            ports,
            workers,
            services,
            laddrs,
            steering,
            timeouts,
            tables,
            control,
            trace,
            policies,
            fault,
            neighbours: NeighboursConfig {
                real_servers: raw
                    .neighbours
                    .as_ref()
                    .and_then(|n| n.real_servers)
                    .unwrap_or(false),
            },
            eal_args,
        })
    }

    fn ports(&self, raw: &[S<RawPort>]) -> Result<Vec<PortConfig>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error(
                0..0,
                "port",
                "no [[port]] section; the forwarder needs at least one port",
            ));
        }
        let mut ports: Vec<PortConfig> = Vec::with_capacity(raw.len());
        for (i, rp) in raw.iter().enumerate() {
            let rp = rp.get_ref();
            let f = |name: &str| format!("port[{i}].{name}");
            let name = rp.name.get_ref();
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok {
                return Err(self.error(
                    rp.name.span(),
                    &f("name"),
                    format!("expected a name of letters, digits, '_' and '-', got {name:?}"),
                ));
            }
            if let Some(j) = ports.iter().position(|p| &p.name == name) {
                return Err(self.error(
                    rp.name.span(),
                    &f("name"),
                    format!("port name {name:?} is already used by port[{j}]"),
                ));
            }
            let device: Device = self.parse(&rp.device, &f("device"))?;
            if let Some(j) = ports
                .iter()
                .position(|p| device_id(&p.device) == device_id(&device))
            {
                return Err(self.error(
                    rp.device.span(),
                    &f("device"),
                    format!("device {} is already used by port[{j}]", device_id(&device)),
                ));
            }
            let rx_queues = match &rp.rx_queues {
                None => 1,
                Some(q) => self.u16(q, &f("rx_queues"), 1, MAX_QUEUES)?,
            };
            let tx_queues = match &rp.tx_queues {
                None => rx_queues,
                Some(q) => self.u16(q, &f("tx_queues"), 1, MAX_QUEUES)?,
            };
            let mac = rp
                .mac
                .as_ref()
                .map(|m| self.mac(m, &f("mac")))
                .transpose()?;
            let gateway_mac = rp
                .gateway_mac
                .as_ref()
                .map(|m| self.mac(m, &f("gateway_mac")))
                .transpose()?;
            let gateway = rp
                .gateway
                .as_ref()
                .map(|g| {
                    let field = f("gateway");
                    match g.get_ref().parse::<IpAddr>() {
                        Ok(a) if !a.is_unspecified() && !a.is_multicast() => Ok(a),
                        Ok(a) => Err(self.error(
                            g.span(),
                            &field,
                            format!("{a} cannot be a next hop: use a unicast address"),
                        )),
                        Err(_) => Err(self.error(
                            g.span(),
                            &field,
                            format!("expected an IP address, got {:?}", g.get_ref()),
                        )),
                    }
                })
                .transpose()?;
            let rss = match &rp.rss {
                None => RssConfig::default(),
                Some(r) => self.rss(r, i, rx_queues)?,
            };
            ports.push(PortConfig {
                name: name.clone(),
                device,
                rx_queues,
                tx_queues,
                mac,
                gateway_mac,
                gateway,
                rss,
                checksum_offload: rp.checksum_offload.as_ref().is_none_or(|c| *c.get_ref()),
            });
        }
        Ok(ports)
    }

    fn rss(&self, r: &RawRss, i: usize, rx_queues: u16) -> Result<RssConfig, ConfigError> {
        let key = match &r.key {
            None => RssKeySpec::Default,
            Some(k) => match k.get_ref().as_str() {
                "default" => RssKeySpec::Default,
                "symmetric" => RssKeySpec::Symmetric,
                hex => {
                    let bytes = parse_hex(hex).ok_or_else(|| {
                        self.error(
                            k.span(),
                            &format!("port[{i}].rss.key"),
                            "expected \"default\", \"symmetric\" or the key in hex \
                             (40 or 52 bytes, optionally separated by ':')",
                        )
                    })?;
                    if bytes.len() != 40 && bytes.len() != 52 {
                        return Err(self.error(
                            k.span(),
                            &format!("port[{i}].rss.key"),
                            format!(
                                "an RSS key has 40 or 52 bytes, this one has {}",
                                bytes.len()
                            ),
                        ));
                    }
                    RssKeySpec::Explicit(RssKey::new(&bytes).map_err(|e| {
                        self.error(k.span(), &format!("port[{i}].rss.key"), e.to_string())
                    })?)
                }
            },
        };
        let hash_types = match &r.hash_types {
            None => RssHashType::ALL.to_vec(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for (j, t) in list.get_ref().iter().enumerate() {
                    let field = format!("port[{i}].rss.hash_types[{j}]");
                    let ty: RssHashType = t.get_ref().parse().map_err(|()| {
                        self.error(
                            t.span(),
                            &field,
                            format!(
                                "expected one of {}, got {:?}",
                                RssHashType::NAMES.join(", "),
                                t.get_ref()
                            ),
                        )
                    })?;
                    if !set.insert(ty) {
                        return Err(self.error(
                            t.span(),
                            &field,
                            format!("{} is listed twice", ty.name()),
                        ));
                    }
                }
                if set.is_empty() && rx_queues > 1 {
                    return Err(self.error(
                        list.span(),
                        &format!("port[{i}].rss.hash_types"),
                        "no hash types with several RX queues would send every packet to queue 0",
                    ));
                }
                set.into_iter().collect()
            }
        };
        let reta_size = match &r.reta_size {
            None => None,
            Some(s) => {
                let field = format!("port[{i}].rss.reta_size");
                let n = self.u16(s, &field, 64, 32768)?;
                if !n.is_power_of_two() {
                    return Err(self.error(
                        s.span(),
                        &field,
                        format!("expected a power of two (64, 128, 256, 512, …), got {n}"),
                    ));
                }
                if n < rx_queues {
                    return Err(self.error(
                        s.span(),
                        &field,
                        format!("a RETA of {n} entries cannot spread over {rx_queues} queues"),
                    ));
                }
                Some(n)
            }
        };
        Ok(RssConfig {
            key,
            hash_types,
            reta_size,
        })
    }

    fn workers(
        &self,
        raw: &[S<RawWorker>],
        raw_ports: &[S<RawPort>],
        ports: &[PortConfig],
    ) -> Result<Vec<WorkerConfig>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error(0..0, "worker", "worker = [] leaves every queue unpolled"));
        }
        let n = raw.len();
        let mut workers: Vec<WorkerConfig> = Vec::with_capacity(n);
        let mut owner: HashMap<QueueRef, u16> = HashMap::new();
        for (i, rw) in raw.iter().enumerate() {
            let rw = rw.get_ref();
            let f = |name: &str| format!("worker[{i}].{name}");
            let max_id = u16::try_from(n - 1).unwrap_or(u16::MAX);
            let id = self.u16(&rw.id, &f("id"), 0, u16::MAX)?;
            if id > max_id {
                return Err(self.error(
                    rw.id.span(),
                    &f("id"),
                    format!("worker ids are dense from 0; with {n} workers the largest is {max_id}, got {id}"),
                ));
            }
            if let Some(j) = workers.iter().position(|w| w.id == id) {
                return Err(self.error(
                    rw.id.span(),
                    &f("id"),
                    format!("worker id {id} is already used by worker[{j}]"),
                ));
            }
            let lcore = self.u32(&rw.lcore, &f("lcore"), 0, 1023)?;
            if let Some(j) = workers.iter().position(|w| w.lcore == lcore) {
                return Err(self.error(
                    rw.lcore.span(),
                    &f("lcore"),
                    format!("lcore {lcore} is already used by worker[{j}]"),
                ));
            }
            if rw.queues.get_ref().is_empty() {
                return Err(self.error(
                    rw.queues.span(),
                    &f("queues"),
                    "a worker needs at least one RX queue, e.g. queues = [{ port = \"p0\", rx = 0 }]",
                ));
            }
            let mut queues = Vec::new();
            for (j, q) in rw.queues.get_ref().iter().enumerate() {
                let q = q.get_ref();
                let fq = |name: &str| format!("worker[{i}].queues[{j}].{name}");
                let port = ports
                    .iter()
                    .position(|p| &p.name == q.port.get_ref())
                    .ok_or_else(|| {
                        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                        self.error(
                            q.port.span(),
                            &fq("port"),
                            format!(
                                "no [[port]] is named {:?} (ports: {})",
                                q.port.get_ref(),
                                names.join(", ")
                            ),
                        )
                    })?;
                let p = &ports[port];
                let rx = self.u16(&q.rx, &fq("rx"), 0, u16::MAX)?;
                if rx >= p.rx_queues {
                    return Err(self.error(
                        q.rx.span(),
                        &fq("rx"),
                        format!(
                            "port {} has {} RX queues (0..={}), got {rx}",
                            p.name,
                            p.rx_queues,
                            p.rx_queues - 1
                        ),
                    ));
                }
                let r = QueueRef { port, rx };
                if let Some(other) = owner.insert(r, id) {
                    return Err(self.error(
                        q.rx.span(),
                        &fq("rx"),
                        format!(
                            "RX queue {rx} of port {} is already polled by worker {other}",
                            p.name
                        ),
                    ));
                }
                queues.push(r);
            }
            workers.push(WorkerConfig { id, lcore, queues });
        }
        for (pi, p) in ports.iter().enumerate() {
            for rx in 0..p.rx_queues {
                if !owner.contains_key(&QueueRef { port: pi, rx }) {
                    let rp = raw_ports[pi].get_ref();
                    let span = rp
                        .rx_queues
                        .as_ref()
                        .map_or_else(|| raw_ports[pi].span(), Spanned::span);
                    return Err(self.error(
                        span,
                        &format!("port[{pi}].rx_queues"),
                        format!(
                            "RX queue {rx} of port {} is polled by no [[worker]]",
                            p.name
                        ),
                    ));
                }
            }
        }
        workers.sort_by_key(|w| w.id);
        Ok(workers)
    }

    fn laddrs(
        &self,
        raw: Option<&RawLaddr>,
        ports: &[PortConfig],
    ) -> Result<Vec<LaddrConfig>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let mut seen: HashMap<IpAddr, String> = HashMap::new();
        let mut out = Vec::new();
        // Keys in file order, so that "already used" points at the later one.
        let mut entries: Vec<_> = raw.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (name, list) in entries {
            let port = ports
                .iter()
                .position(|p| &p.name == name.get_ref())
                .ok_or_else(|| {
                    self.error(
                        name.span(),
                        &format!("laddr.{}", name.get_ref()),
                        format!("no [[port]] is named {:?}", name.get_ref()),
                    )
                })?;
            let mut addrs = Vec::new();
            for (j, a) in list.get_ref().iter().enumerate() {
                let field = format!("laddr.{}[{j}]", name.get_ref());
                let addr: IpAddr = a.get_ref().parse().map_err(|_| {
                    self.error(
                        a.span(),
                        &field,
                        format!("expected an IP address, got {:?}", a.get_ref()),
                    )
                })?;
                if addr.is_unspecified() || addr.is_multicast() {
                    return Err(self.error(
                        a.span(),
                        &field,
                        format!("{addr} cannot be a local address"),
                    ));
                }
                if let Some(prev) = seen.insert(addr, field.clone()) {
                    return Err(self.error(
                        a.span(),
                        &field,
                        format!("{addr} is already listed as {prev}"),
                    ));
                }
                addrs.push(addr);
            }
            out.push(LaddrConfig { port, addrs });
        }
        Ok(out)
    }

    fn services(
        &self,
        raw: &[S<RawService>],
        laddrs: &[LaddrConfig],
    ) -> Result<Vec<ServiceConfig>, ConfigError> {
        let laddr_set: BTreeSet<IpAddr> = laddrs.iter().flat_map(|l| l.addrs.clone()).collect();
        let mut services: Vec<ServiceConfig> = Vec::with_capacity(raw.len());
        for (i, rs) in raw.iter().enumerate() {
            let rs = rs.get_ref();
            let f = |name: &str| format!("service[{i}].{name}");
            let ip: IpAddr = rs.vip.get_ref().parse().map_err(|_| {
                self.error(
                    rs.vip.span(),
                    &f("vip"),
                    format!(
                        "expected an IP address (the port goes in `port`), got {:?}",
                        rs.vip.get_ref()
                    ),
                )
            })?;
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(self.error(rs.vip.span(), &f("vip"), format!("{ip} cannot be a VIP")));
            }
            if laddr_set.contains(&ip) {
                return Err(self.error(
                    rs.vip.span(),
                    &f("vip"),
                    format!("{ip} is also a local address in [laddr]"),
                ));
            }
            let port = self.u16(&rs.port, &f("port"), 1, u16::MAX)?;
            let vip = SocketAddr::new(ip, port);
            let proto: Proto = self.parse(&rs.proto, &f("proto"))?;
            let mode: Mode = self.parse(&rs.mode, &f("mode"))?;
            if let Some(j) = services
                .iter()
                .position(|s| s.vip == vip && s.proto == proto)
            {
                return Err(self.error(
                    rs.vip.span(),
                    &f("vip"),
                    format!("service {vip}/{proto} is already defined by service[{j}]"),
                ));
            }
            let mut scheduler: Scheduler = match &rs.scheduler {
                None => Scheduler::Wlc,
                Some(s) => self.parse(s, &f("scheduler"))?,
            };
            if let Some(m) = &rs.maglev_table_size {
                let field = f("maglev_table_size");
                let Scheduler::Maglev { table_size } = &mut scheduler else {
                    return Err(self.error(
                        m.span(),
                        &field,
                        format!(
                            "maglev_table_size applies to scheduler = \"maglev\" only, this \
                             service uses {}",
                            scheduler.name()
                        ),
                    ));
                };
                let n = self.u32(m, &field, 3, MAX_MAGLEV_TABLE_SIZE)?;
                if !is_prime(n) {
                    return Err(self.error(
                        m.span(),
                        &field,
                        format!("the Maglev table size must be prime (e.g. 251, 65537), got {n}"),
                    ));
                }
                *table_size = n;
            }
            let toa = match &rs.toa {
                None => false,
                Some(t) => {
                    let on = *t.get_ref();
                    if on && (mode != Mode::FullNat || proto != Proto::Tcp) {
                        return Err(self.error(
                            t.span(),
                            &f("toa"),
                            format!(
                                "TOA works with mode = \"fullnat\" and proto = \"tcp\" only, \
                                 this service is {mode}/{proto}"
                            ),
                        ));
                    }
                    on
                }
            };
            let persistence = rs
                .persistence
                .as_ref()
                .map(|p| self.duration(p, &f("persistence")))
                .transpose()?;
            let mut real_servers: Vec<RealServerConfig> = Vec::with_capacity(rs.rs.len());
            for (j, r) in rs.rs.iter().enumerate() {
                let r = r.get_ref();
                let fr = |name: &str| format!("service[{i}].rs[{j}].{name}");
                let addr: SocketAddr = r.addr.get_ref().parse().map_err(|_| {
                    self.error(
                        r.addr.span(),
                        &fr("addr"),
                        format!(
                            "expected address:port such as 192.168.1.10:80 or [2001:db8::10]:80, got {:?}",
                            r.addr.get_ref()
                        ),
                    )
                })?;
                if addr.port() == 0 {
                    return Err(self.error(r.addr.span(), &fr("addr"), "the port must not be 0"));
                }
                let family_ok = match (vip.ip(), addr.ip()) {
                    (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
                    (IpAddr::V6(_), IpAddr::V4(_)) => mode == Mode::FullNat,
                    (IpAddr::V4(_), IpAddr::V6(_)) => false,
                };
                if !family_ok {
                    let why = if vip.is_ipv6() {
                        "NAT64 (IPv6 VIP, IPv4 real server) needs mode = \"fullnat\""
                    } else {
                        "an IPv4 VIP needs IPv4 real servers (NAT46 is not supported)"
                    };
                    return Err(self.error(
                        r.addr.span(),
                        &fr("addr"),
                        format!("{} is {mode} to {addr}: {why}", vip),
                    ));
                }
                if matches!(mode, Mode::Dr | Mode::Tunnel) && addr.port() != vip.port() {
                    return Err(self.error(
                        r.addr.span(),
                        &fr("addr"),
                        format!(
                            "mode {mode} cannot change the port: the real server must listen on \
                             {}, got {}",
                            vip.port(),
                            addr.port()
                        ),
                    ));
                }
                if mode == Mode::FullNat {
                    let want_v4 = addr.is_ipv4();
                    if !laddr_set.iter().any(|l| l.is_ipv4() == want_v4) {
                        return Err(self.error(
                            r.addr.span(),
                            &fr("addr"),
                            format!(
                                "fullnat to {addr} needs an {} local address in [laddr]",
                                if want_v4 { "IPv4" } else { "IPv6" }
                            ),
                        ));
                    }
                }
                if let Some(k) = real_servers.iter().position(|x| x.addr == addr) {
                    return Err(self.error(
                        r.addr.span(),
                        &fr("addr"),
                        format!("real server {addr} is already rs[{k}] of this service"),
                    ));
                }
                let weight = match &r.weight {
                    None => 1,
                    Some(w) => self.u32(w, &fr("weight"), 0, MAX_WEIGHT)?,
                };
                let mac = r
                    .mac
                    .as_ref()
                    .map(|m| self.mac(m, &fr("mac")))
                    .transpose()?;
                real_servers.push(RealServerConfig { addr, weight, mac });
            }
            services.push(ServiceConfig {
                vip,
                proto,
                mode,
                scheduler,
                toa,
                persistence,
                real_servers,
            });
        }
        Ok(services)
    }

    fn timeouts(&self, raw: Option<&RawTimeouts>) -> Result<Timeouts, ConfigError> {
        let mut t = Timeouts::default();
        let Some(raw) = raw else {
            return Ok(t);
        };
        if let Some(tcp) = &raw.tcp {
            let slots: [(&Option<S<String>>, &mut Duration, &str); 11] = [
                (&tcp.none, &mut t.tcp.none, "none"),
                (&tcp.established, &mut t.tcp.established, "established"),
                (&tcp.syn_sent, &mut t.tcp.syn_sent, "syn_sent"),
                (&tcp.syn_recv, &mut t.tcp.syn_recv, "syn_recv"),
                (&tcp.fin_wait, &mut t.tcp.fin_wait, "fin_wait"),
                (&tcp.time_wait, &mut t.tcp.time_wait, "time_wait"),
                (&tcp.close, &mut t.tcp.close, "close"),
                (&tcp.close_wait, &mut t.tcp.close_wait, "close_wait"),
                (&tcp.last_ack, &mut t.tcp.last_ack, "last_ack"),
                (&tcp.listen, &mut t.tcp.listen, "listen"),
                (&tcp.synack, &mut t.tcp.synack, "synack"),
            ];
            for (raw, slot, name) in slots {
                if let Some(v) = raw {
                    *slot = self.duration(v, &format!("timeouts.tcp.{name}"))?;
                }
            }
        }
        if let Some(udp) = &raw.udp {
            if let Some(v) = &udp.normal {
                t.udp.normal = self.duration(v, "timeouts.udp.normal")?;
            }
            if let Some(v) = &udp.oneway {
                t.udp.oneway = self.duration(v, "timeouts.udp.oneway")?;
            }
        }
        Ok(t)
    }

    fn control(&self, raw: Option<&RawControl>) -> Result<ControlConfig, ConfigError> {
        let mut c = ControlConfig::default();
        let Some(raw) = raw else {
            return Ok(c);
        };
        if let Some(s) = &raw.socket {
            if s.get_ref().is_empty() {
                return Err(self.error(s.span(), "control.socket", "the path is empty"));
            }
            c.socket = PathBuf::from(s.get_ref());
        }
        if let Some(m) = &raw.metrics {
            let addr: SocketAddr = m.get_ref().parse().map_err(|_| {
                self.error(
                    m.span(),
                    "control.metrics",
                    format!(
                        "expected address:port such as 127.0.0.1:9900, got {:?}",
                        m.get_ref()
                    ),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err(self.error(
                    m.span(),
                    "control.metrics",
                    format!("the metrics endpoint listens on loopback only (127.0.0.1 or [::1]), got {addr}"),
                ));
            }
            c.metrics = Some(addr);
        }
        Ok(c)
    }
}

/// The identity of a device for duplicate checks: its PCI address or vdev name.
fn device_id(d: &Device) -> String {
    match d {
        Device::Pci { addr, .. } => addr.to_string(),
        Device::Vdev { name, .. } => name.clone(),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Hex bytes, optionally separated by `:`.
fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
    let pairs = digits.chunks_exact(2);
    if digits.is_empty() || !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Trial division; table sizes are at most [`MAX_MAGLEV_TABLE_SIZE`].
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = u64::from(n);
    let mut d = 2u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // 'é' is two bytes: the '=' at byte 10 is the fourth character of line 2.
        assert_eq!(line_column(text, 10), (2, 4));
        // An offset inside 'é' moves back to its start.
        assert_eq!(line_column(text, 8), (2, 2));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn devices_parse_and_print() {
        let d: Device = "0000:3b:00.0".parse().unwrap();
        assert_eq!(d.eal_option(), ("-a", "0000:3b:00.0".to_owned()));
        let d: Device = "3b:00.1".parse().unwrap();
        assert_eq!(d.to_string(), "0000:3b:00.1");
        let d: Device = "net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap".parse().unwrap();
        assert_eq!(
            d.eal_option(),
            (
                "--vdev",
                "net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap".to_owned()
            )
        );
        assert_eq!(d.args().len(), 2);
        assert!("eth0".parse::<Device>().is_err());
        assert!("net_pcap0,rx_pcap".parse::<Device>().is_err());
        assert!("0000:3b:20.0".parse::<Device>().is_err());
    }

    #[test]
    fn macs_parse_and_print() {
        let m: MacAddr = "02:00:00:AA:bb:0c".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:aa:bb:0c");
        assert!(m.is_unicast());
        assert!(!"ff:ff:ff:ff:ff:ff".parse::<MacAddr>().unwrap().is_unicast());
        assert!("02:00:00:aa:bb".parse::<MacAddr>().is_err());
        assert!("02:00:00:aa:bb:0c:01".parse::<MacAddr>().is_err());
        assert!("02:00:00:aa:bb:0g".parse::<MacAddr>().is_err());
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537));
        assert!(is_prime(251));
        assert!(!is_prime(65536));
        assert!(!is_prime(1));
        assert!(is_prime(MAX_MAGLEV_TABLE_SIZE));
    }

    #[test]
    fn hex_keys() {
        assert_eq!(parse_hex("6d:5a"), Some(vec![0x6d, 0x5a]));
        assert_eq!(parse_hex("6d5a"), Some(vec![0x6d, 0x5a]));
        assert_eq!(parse_hex("6d5"), None);
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn conversions_to_dataplane_types() {
        assert_eq!(
            SchedKind::from(Scheduler::Maglev { table_size: 251 }),
            SchedKind::Maglev { table_size: 251 }
        );
        assert_eq!(SchedKind::from(Scheduler::Wlc), SchedKind::Wlc);
        assert_eq!(RssConfig::default().hash_types_model(), HashTypes::all());
        let only_ip = RssConfig {
            hash_types: vec![RssHashType::Ipv4, RssHashType::Ipv6],
            ..RssConfig::default()
        };
        assert_eq!(only_ip.hash_types_model(), HashTypes::ip_only());
        assert_eq!(RssKeySpec::Symmetric.bytes()[..4], [0x6d, 0x5a, 0x6d, 0x5a]);
    }

    #[test]
    fn state_order_matches_dataplane() {
        use crate::dataplane::conn::tcp_state::TcpState;
        let t = TcpTimeouts::default().in_state_order();
        assert_eq!(t[TcpState::Established.index()], Duration::from_secs(90));
        assert_eq!(t[TcpState::Listen.index()], Duration::from_secs(120));
        assert_eq!(t[TcpState::SynSent.index()], Duration::from_secs(3));
    }

    const ONE_PORT: &str = "[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\nrx_queues = 1\n";

    #[test]
    fn fault_is_off_unless_configured() {
        let c = Config::parse(ONE_PORT, "t.toml").expect("valid");
        assert_eq!(c.fault, None);
        let text = format!("{ONE_PORT}\n[fault]\nkind = \"wrong_rs\"\nevery = 5\n");
        let c = Config::parse(&text, "t.toml").expect("valid");
        assert_eq!(
            c.fault,
            Some(FaultConfig {
                kind: FaultKind::WrongRs,
                every: 5
            })
        );
        let text = format!("{ONE_PORT}\n[fault]\nkind = \"drop_packet\"\n");
        let c = Config::parse(&text, "t.toml").expect("valid");
        assert_eq!(c.fault, Some(FaultConfig::new(FaultKind::DropPacket)));
    }

    #[test]
    fn fault_errors_name_line_and_field() {
        // (the [fault] section's body, line of the error, field, a word of the message)
        let cases = [
            ("kind = \"flip_bits\"\n", 7, "fault.kind", "bad_checksum"),
            (
                "kind = \"bad_checksum\"\nevery = 0\n",
                8,
                "fault.every",
                "at least 1",
            ),
            (
                "kind = \"bad_checksum\"\nevery = -2\n",
                8,
                "fault.every",
                "non-negative",
            ),
            (
                "kind = \"bad_checksum\"\nevery = 4294967296\n",
                8,
                "fault.every",
                "at most",
            ),
            (
                "kind = \"bad_checksum\"\nrate = 2\n",
                8,
                "fault.rate",
                "unknown field",
            ),
            ("kind = 3\n", 7, "fault.kind", "string"),
        ];
        for (body, line, field, word) in cases {
            let text = format!("{ONE_PORT}\n[fault]\n{body}");
            let e = Config::parse(&text, "t.toml").expect_err(body);
            let msg = e.to_string();
            assert_eq!(e.line(), Some(line), "{msg}");
            assert_eq!(e.field(), Some(field), "{msg}");
            assert!(msg.starts_with(&format!("t.toml:{line}:")), "{msg}");
            assert!(msg.contains(word), "{msg}");
        }
        // No kind: the section itself is named.
        let e = Config::parse(&format!("{ONE_PORT}\n[fault]\nevery = 2\n"), "t.toml")
            .expect_err("kind is required");
        assert_eq!(e.field(), Some("fault"), "{e}");
        assert!(e.to_string().contains("kind"), "{e}");
    }
}
