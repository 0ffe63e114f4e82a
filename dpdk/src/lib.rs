//! The safe layer over the system DPDK.
//!
//! This crate and `dpdk-sys` are the only places in l4lab with `unsafe`; every block says
//! why it is sound. The types follow DPDK's ownership rules:
//!
//! - [`Eal`] is initialised at most once per process and cleaned up on drop.
//! - [`Mbuf`] owns one packet buffer and frees it on drop; a [`Burst`] owns up to
//!   [`BURST_SIZE`] of them and is what queues fill and drain.
//! - [`RxQueue`] and [`TxQueue`] belong to one lcore at a time: `Send`, not `Sync`.
//! - [`ring::Producer`] / [`ring::Consumer`] are the two ends of an `rte_ring`.
//! - [`lcore::launch`] runs a Rust closure on a worker lcore; a panic there comes back as
//!   an [`Error::WorkerPanicked`] from `join`.

pub mod bench;
pub mod eal;
pub mod error;
pub mod flow;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;
pub mod ringport;
pub mod telemetry;
pub mod thash;
pub mod tsc;

pub use eal::{Eal, EalBuilder};
pub use error::{Error, Result};
pub use mbuf::{Burst, Mbuf, BURST_SIZE};
pub use mempool::Mempool;
pub use port::{
    LinkStatus, Port, PortConfig, PortId, PortInfo, PortStats, RssConfig, RxQueue, TxQueue,
};
