//! Opening and configuring the ports a plan names, and deciding how FULLNAT replies are
//! steered back to the worker that owns their connection.

use std::fmt;
use std::net::IpAddr;

use dpdk::flow::{FlowMatch, FlowRule, L4Proto};
use dpdk::port::bits;
use dpdk::{
    Mempool, Port, PortConfig as DpdkPortConfig, PortId, PortInfo, RssConfig, RxQueue, TxQueue,
};

use crate::dataplane::laddr::partition_mask;
use crate::dataplane::rss::{HashTypes, RssKey};
use crate::runtime::RuntimeError;

/// How a port is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A virtual device: the full `--vdev` string, e.g. `net_pcap0,rx_pcap=in.pcap`.
    Vdev(String),
    /// A PCI device, e.g. `0000:3b:00.0` (allow-listed with `-a`).
    Pci(String),
    /// A port that already exists in this process under this name (made by the embedding
    /// program after EAL init, e.g. a `dpdk::ringport` pair): no EAL argument.
    Attached(String),
}

impl Device {
    /// The name DPDK knows the port by (the vdev name before its arguments, or the PCI
    /// address).
    pub fn dpdk_name(&self) -> &str {
        match self {
            Device::Vdev(spec) => spec.split(',').next().unwrap_or(spec),
            Device::Pci(addr) | Device::Attached(addr) => addr,
        }
    }

    /// The EAL arguments that make the device appear.
    pub fn eal_args(&self) -> Vec<String> {
        match self {
            Device::Vdev(spec) => vec!["--vdev".into(), spec.clone()],
            Device::Pci(addr) => vec!["-a".into(), addr.clone()],
            Device::Attached(_) => Vec::new(),
        }
    }
}

/// RSS settings of a port as planned (the same model drives RSS-aware port choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssPlan {
    /// Toeplitz key.
    pub key: RssKey,
    /// Hash types enabled.
    pub types: HashTypes,
    /// RETA entries (queue ids); programmed into the device when it has a RETA of this size.
    pub reta: Vec<u16>,
}

/// One port of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// Configured name (for messages and stats).
    pub name: String,
    /// How to reach it.
    pub device: Device,
    /// Receive queues (one per worker that polls it).
    pub rx_queues: u16,
    /// RSS.
    pub rss: RssPlan,
    /// Static next hop MAC.
    pub gateway_mac: [u8; 6],
    /// Next hop to resolve (ARP / neighbour solicitation) into `gateway_mac`.
    pub gateway: Option<std::net::IpAddr>,
    /// MAC to use instead of the device's.
    pub mac: Option<[u8; 6]>,
    /// Use the device's transmit checksum offload when it has one.
    pub checksum_offload: bool,
}

/// An opened, started port.
#[derive(Debug)]
pub struct OpenPort {
    /// Plan it came from.
    pub plan: PortPlan,
    /// The port handle.
    pub port: Port,
    /// DPDK port id.
    pub id: PortId,
    /// Capabilities.
    pub info: PortInfo,
    /// MAC in use.
    pub mac: [u8; 6],
    /// Receive queues, taken by workers.
    pub rx: Vec<Option<RxQueue>>,
    /// Transmit queues: one per worker, then one for the master.
    pub tx: Vec<Option<TxQueue>>,
    /// Whether the device itself hashes with the planned key and RETA.
    pub hw_rss: bool,
    /// Whether checksum offload is used.
    pub csum_offload: bool,
}

/// Opens and starts a port with `tx_queues` transmit queues.
pub fn open_port(
    plan: &PortPlan,
    pool: &Mempool,
    tx_queues: u16,
) -> Result<OpenPort, RuntimeError> {
    let name = plan.device.dpdk_name().to_owned();
    let ctx = |e: dpdk::Error| RuntimeError::Port {
        port: plan.name.clone(),
        source: e,
    };
    let mut port = Port::by_name(&name).map_err(ctx)?;
    let id = port.id();
    let info = port.info().map_err(ctx)?;
    let mut cfg = DpdkPortConfig::new(plan.rx_queues);
    cfg.tx_queues = tx_queues;
    let rss_hf = rss_hf(&plan.rss.types);
    let hw_rss = info.flow_type_rss_offloads & rss_hf != 0 && plan.rx_queues > 1;
    if hw_rss {
        cfg.rss = Some(RssConfig {
            key: Some(plan.rss.key.as_bytes().to_vec()),
            hash_types: rss_hf,
        });
    }
    // Offload needs per-mbuf offload flags and header lengths, which the worker does not
    // set yet: until it does, checksums are always computed in software.
    let csum_offload = false;
    let _ = (plan.checksum_offload, info.tx_checksum_offload());
    let (rx, tx) = port.configure(&cfg, pool).map_err(ctx)?;
    port.start().map_err(ctx)?;
    port.set_promiscuous(true).map_err(ctx)?;
    let mut hw_rss_ok = false;
    if hw_rss && usize::from(info.reta_size) == plan.rss.reta.len() {
        hw_rss_ok = port.set_reta(&plan.rss.reta).is_ok();
    }
    let mac = match plan.mac {
        Some(mac) => mac,
        None => port.mac_addr().map_err(ctx)?,
    };
    Ok(OpenPort {
        plan: plan.clone(),
        port,
        id,
        info,
        mac,
        rx: rx.into_iter().map(Some).collect(),
        tx: tx.into_iter().map(Some).collect(),
        hw_rss: hw_rss_ok,
        csum_offload,
    })
}

/// `RTE_ETH_RSS_*` bits for the planned hash types.
fn rss_hf(types: &HashTypes) -> u64 {
    let mut hf = 0;
    if types.ipv4 {
        hf |= bits::RSS_IPV4 | bits::RSS_FRAG_IPV4 | bits::RSS_IPV4_OTHER;
    }
    if types.ipv4_tcp {
        hf |= bits::RSS_IPV4_TCP;
    }
    if types.ipv4_udp {
        hf |= bits::RSS_IPV4_UDP;
    }
    if types.ipv6 {
        hf |= bits::RSS_IPV6 | bits::RSS_FRAG_IPV6 | bits::RSS_IPV6_OTHER;
    }
    if types.ipv6_tcp {
        hf |= bits::RSS_IPV6_TCP;
    }
    if types.ipv6_udp {
        hf |= bits::RSS_IPV6_UDP;
    }
    hf
}

/// How FULLNAT replies reach their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteeringMode {
    /// Try flow rules, fall back to RSS-aware port choice.
    Auto,
    /// Flow rules only; fail to start if the device refuses them.
    Flow,
    /// RSS-aware port choice only.
    Rss,
    /// Port partition without flow rules; wrong-worker replies are redirected.
    Partition,
}

/// What was decided, and why (shown by `stats` and logged at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steering {
    /// One worker: nothing to steer.
    Single,
    /// `rte_flow` rules on local address and `dst port & mask` send replies to the owner.
    Flow {
        /// Rules installed.
        rules: usize,
    },
    /// Local ports are chosen so that replies hash to the owner's queue.
    Rss {
        /// Why flow rules are not used.
        reason: String,
    },
    /// Port partition with no flow rules: replies reaching another worker are redirected.
    Partition,
}

impl fmt::Display for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Steering::Single => f.write_str("single worker (no steering needed)"),
            Steering::Flow { rules } => write!(
                f,
                "rte_flow ({rules} rules: local address + port mask -> owner queue)"
            ),
            Steering::Rss { reason } => write!(f, "rss-aware local ports ({reason})"),
            Steering::Partition => f.write_str(
                "port partition without flow rules (replies on the wrong worker are redirected)",
            ),
        }
    }
}

impl Steering {
    /// Short name for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Steering::Single => "single",
            Steering::Flow { .. } => "flow",
            Steering::Rss { .. } => "rss",
            Steering::Partition => "partition",
        }
    }
}

/// Decides steering for replies arriving on `port`, whose queue `q` is polled by worker
/// `queue_owner[q]`. Installs flow rules when chosen; they live as long as the returned
/// vector.
pub fn decide_steering(
    mode: SteeringMode,
    port: &OpenPort,
    laddrs: &[IpAddr],
    workers: u16,
    queue_owner: &[u16],
) -> Result<(Steering, Vec<FlowRule>), RuntimeError> {
    if workers <= 1 && mode != SteeringMode::Flow {
        return Ok((Steering::Single, Vec::new()));
    }
    if mode == SteeringMode::Partition {
        return Ok((Steering::Partition, Vec::new()));
    }
    if mode == SteeringMode::Rss {
        return Ok((
            Steering::Rss {
                reason: "configured".into(),
            },
            Vec::new(),
        ));
    }
    let mask = partition_mask(workers);
    let mut rules = Vec::new();
    let mut refused = None;
    'outer: for &laddr in laddrs {
        for worker in 0..workers {
            let Some(queue) = queue_owner.iter().position(|&w| w == worker) else {
                refused = Some(format!(
                    "worker {worker} polls no queue of port {}",
                    port.plan.name
                ));
                break 'outer;
            };
            for proto in [L4Proto::Tcp, L4Proto::Udp] {
                let m = FlowMatch {
                    dst: laddr,
                    l4: Some((proto, worker, mask)),
                };
                match FlowRule::create(port.id, &m, queue as u16) {
                    Ok(rule) => rules.push(rule),
                    Err(e) => {
                        refused = Some(e.to_string());
                        break 'outer;
                    }
                }
            }
        }
    }
    match (refused, mode) {
        (None, _) => {
            let n = rules.len();
            Ok((Steering::Flow { rules: n }, rules))
        }
        (Some(reason), SteeringMode::Flow) => Err(RuntimeError::Steering(reason)),
        (Some(reason), _) => {
            drop(rules);
            Ok((Steering::Rss { reason }, Vec::new()))
        }
    }
}
