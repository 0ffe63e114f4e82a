//! Control plane pieces that need no DPDK: the TOML config, the control-socket protocol and
//! its `ctl` client and server, and the Prometheus metrics export.
//!
//! Everything here is plain std + serde, so it is tested without the EAL; the runtime's
//! master lcore polls [`server::ControlServer`] and [`metrics::MetricsServer`] between its
//! other jobs, and `forwarder ctl` uses [`proto::parse_cli`] and [`client::send`].

pub mod client;
pub mod config;
pub mod metrics;
pub mod proto;
pub mod server;
