//! Sans-IO dataplane: connection tables, local address/port pools, schedulers and the
//! per-mode rewrites. No DPDK types, no clocks, no threads, no allocation per packet.
//!
//! Entry point: [`worker::Worker`], built from a [`config::DataplaneConfig`];
//! `process(now, &mut Frame, &RxMeta) -> Verdict` per packet.

pub mod config;
pub mod conn;
pub mod counters;
pub mod fault;
pub mod frame;
pub mod laddr;
pub mod parse;
pub mod persist;
pub mod rewrite;
pub mod rss;
pub mod sched;
pub mod toa;
pub mod types;
pub mod verdict;
pub mod worker;

pub use config::{ConfigChange, ConfigError, DataplaneConfig, Mode};
pub use counters::Counters;
pub use fault::{FaultConfig, FaultKind};
pub use frame::{Frame, RxMeta};
pub use verdict::{DropReason, Verdict};
pub use worker::Worker;
