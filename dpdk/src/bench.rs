//! Reference loops written in C (in `dpdk-sys/csrc/bench.c`), to time the safe layer
//! against in the same process.

use crate::error::{Error, Result};
use crate::mempool::Mempool;
use crate::port::{RxQueue, TxQueue};

/// Runs the C loop (bulk alloc, write `frame_len` bytes, tx, rx, bulk free) for `packets`
/// packets over a loopback port's queue pair; returns the packets received. The queues
/// must be the same queue of the same port (what is sent comes back on it).
pub fn c_loopback(
    rx: &mut RxQueue,
    tx: &mut TxQueue,
    pool: &Mempool,
    packets: u64,
    frame_len: u16,
) -> Result<u64> {
    if rx.port() != tx.port() || rx.queue() != tx.queue() {
        return Err(Error::InvalidArgument(
            "c_loopback needs the rx and tx side of one queue".into(),
        ));
    }
    // SAFETY: the queue handles prove the port is configured and open, and the exclusive
    // borrows make this call their only user; the pool is valid while borrowed.
    Ok(unsafe {
        dpdk_sys::l4lab_bench_loopback(rx.port().0, rx.queue(), pool.as_ptr(), packets, frame_len)
    })
}
