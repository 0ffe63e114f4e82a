//! Turning the validated TOML configuration into the runtime's plan.

use std::time::Duration;

use crate::control::config::{self as cfg, Config, WorkerMap};
use crate::dataplane::config::{
    DataplaneConfig, FragmentPolicy, Mode, Policies, RealServerConfig, ServiceConfig, ServiceKey,
    TtlPolicy,
};
use crate::dataplane::conn::Timeouts;
use crate::dataplane::types::{Nanos, Proto};
use crate::runtime::ports::{Device, PortPlan, RssPlan, SteeringMode};
use crate::runtime::{RuntimePlan, WorkerPlan};

/// RETA size used when the configuration names none (and the device has none).
pub const DEFAULT_RETA_SIZE: usize = 128;

fn nanos(d: Duration) -> Nanos {
    d.as_nanos().min(u128::from(u64::MAX)) as Nanos
}

/// The dataplane's protocol for a configured one.
pub fn proto(p: cfg::Proto) -> Proto {
    match p {
        cfg::Proto::Tcp => Proto::Tcp,
        cfg::Proto::Udp => Proto::Udp,
    }
}

/// The dataplane's mode for a configured one.
pub fn mode(m: cfg::Mode) -> Mode {
    match m {
        cfg::Mode::FullNat => Mode::FullNat,
        cfg::Mode::Nat => Mode::Nat,
        cfg::Mode::Dr => Mode::Dr,
        cfg::Mode::Tunnel => Mode::Tunnel,
    }
}

/// A configured service as the dataplane takes it; real servers are reached through plan
/// port `rs_port`.
pub fn service(s: &cfg::ServiceConfig, rs_port: u16) -> ServiceConfig {
    ServiceConfig {
        key: ServiceKey {
            vip: s.vip.ip(),
            vport: s.vip.port(),
            proto: proto(s.proto),
        },
        mode: mode(s.mode),
        sched: s.scheduler.into(),
        real_servers: s
            .real_servers
            .iter()
            .map(|r| RealServerConfig {
                addr: r.addr,
                weight: r.weight,
                mac: r.mac.map(|m| m.0),
                port: rs_port,
            })
            .collect(),
        toa: s.toa,
        persistence: s.persistence.map(nanos),
    }
}

/// The port real servers sit behind: the local addresses' port, else the last port.
pub fn reply_port(config: &Config) -> usize {
    config
        .laddrs
        .first()
        .map(|l| l.port)
        .unwrap_or_else(|| config.ports.len().saturating_sub(1))
}

/// Builds the plan. `duration` and `stats_json` come from the command line.
pub fn plan(
    config: &Config,
    duration: Option<Duration>,
    stats_json: Option<std::path::PathBuf>,
) -> RuntimePlan {
    let reply = reply_port(config);
    let ports = config
        .ports
        .iter()
        .map(|p| {
            let reta_size = p.rss.reta_size.map_or(DEFAULT_RETA_SIZE, usize::from);
            let queues = p.rx_queues.max(1);
            PortPlan {
                name: p.name.clone(),
                device: match &p.device {
                    d @ cfg::Device::Vdev { .. } => Device::Vdev(d.to_string()),
                    d @ cfg::Device::Pci { .. } => Device::Pci(d.to_string()),
                },
                rx_queues: p.rx_queues,
                rss: RssPlan {
                    key: p.rss.key.key(),
                    types: p.rss.hash_types_model(),
                    reta: (0..reta_size)
                        .map(|i| (i % usize::from(queues)) as u16)
                        .collect(),
                },
                gateway_mac: p.gateway_mac.map_or([0xff; 6], |m| m.0),
                gateway: p.gateway.filter(|_| p.gateway_mac.is_none()),
                mac: p.mac.map(|m| m.0),
                checksum_offload: p.checksum_offload,
            }
        })
        .collect();
    let workers = match &config.workers {
        WorkerMap::Explicit(ws) => ws
            .iter()
            .map(|w| WorkerPlan {
                lcore: Some(w.lcore),
                queues: w.queues.iter().map(|q| (q.port, q.rx)).collect(),
            })
            .collect(),
        WorkerMap::Default => (0..config.worker_count())
            .map(|i| WorkerPlan {
                lcore: None,
                queues: config
                    .ports
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| (i as u16) < p.rx_queues)
                    .map(|(port, _)| (port, i as u16))
                    .collect(),
            })
            .collect(),
    };
    let t = &config.timeouts;
    let mut dp = DataplaneConfig::new(0, 1);
    dp.services = config
        .services
        .iter()
        .map(|s| service(s, reply as u16))
        .collect();
    dp.laddrs = config
        .laddrs
        .iter()
        .flat_map(|l| l.addrs.iter().copied())
        .collect();
    dp.conn_capacity = config.tables.conn_capacity;
    dp.persist_capacity = config.tables.persist_capacity;
    dp.timeouts = Timeouts {
        tcp: t.tcp.in_state_order().map(nanos),
        udp: nanos(t.udp.normal),
        udp_oneway: nanos(t.udp.oneway),
        ..Timeouts::default()
    };
    let pol = &config.policies;
    dp.policies = Policies {
        redirect_no_conn: config.steering.redirect,
        verify_checksums: pol.verify_checksums,
        answer_echo: pol.answer_echo,
        ttl: if pol.ttl_to_control {
            TtlPolicy::Control
        } else {
            TtlPolicy::Drop
        },
        fragments: if pol.fragments_to_control {
            FragmentPolicy::Control
        } else {
            FragmentPolicy::Drop
        },
        expire_quiescent: pol.expire_quiescent,
    };
    dp.max_services = dp.max_services.max(config.services.len() * 2);
    dp.fault = config.fault;
    RuntimePlan {
        eal_args: config.eal_args.clone(),
        ports,
        workers,
        steering: match config.steering.mode {
            cfg::SteeringMode::Auto => SteeringMode::Auto,
            cfg::SteeringMode::Flow => SteeringMode::Flow,
            cfg::SteeringMode::Rss => SteeringMode::Rss,
            cfg::SteeringMode::Partition => SteeringMode::Partition,
        },
        reply_port: reply,
        dataplane: dp,
        control_socket: Some(config.control.socket.clone()),
        metrics: config.control.metrics,
        duration,
        stats_json,
        mempool_size: 16383,
        trace: config
            .trace
            .as_ref()
            .map(|t| (t.path.clone(), t.max_packets)),
        config_path: None,
        resolve_real_servers: config.neighbours.real_servers,
    }
}
