//! Sans-IO dataplane: connection tables, local address/port pools, schedulers and the
//! per-mode rewrites. No DPDK types, no clocks, no threads, no allocation per packet.

pub mod conn;
pub mod laddr;
pub mod rss;
pub mod sched;
pub mod types;
