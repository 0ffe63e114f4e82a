//! Ethernet ports made from `rte_ring`s (`rte_eth_from_rings`): multi-queue topologies in
//! one process with no device at all. Queue i of one side feeds queue i of the other.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::eal::ensure_live;
use crate::error::{Error, Result};
use crate::port::PortId;

static RING_SEQ: AtomicU32 = AtomicU32::new(0);

fn make_rings(prefix: &str, queues: u16, size: u32) -> Result<Vec<*mut dpdk_sys::rte_ring>> {
    (0..queues)
        .map(|q| {
            let seq = RING_SEQ.fetch_add(1, Ordering::Relaxed);
            let name = CString::new(format!("{prefix}{seq}q{q}"))
                .map_err(|_| Error::InvalidArgument(format!("ring name {prefix:?} has a NUL")))?;
            // SAFETY: EAL live (checked by callers), valid name. The ring lives as long as
            // the process: the port created over it never releases it.
            let ring = unsafe {
                dpdk_sys::rte_ring_create(
                    name.as_ptr(),
                    size,
                    dpdk_sys::SOCKET_ID_ANY,
                    dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ,
                )
            };
            if ring.is_null() {
                Err(Error::from_rte_errno("rte_ring_create"))
            } else {
                Ok(ring)
            }
        })
        .collect()
}

fn from_rings(
    name: &str,
    rx: &[*mut dpdk_sys::rte_ring],
    tx: &[*mut dpdk_sys::rte_ring],
) -> Result<PortId> {
    let c_name = CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("port name {name:?} has a NUL")))?;
    // SAFETY: the ring arrays hold valid rings for the call; DPDK copies the pointers and
    // the rings are never freed.
    let rc = unsafe {
        dpdk_sys::rte_eth_from_rings(
            c_name.as_ptr(),
            rx.as_ptr(),
            rx.len() as u32,
            tx.as_ptr(),
            tx.len() as u32,
            0,
        )
    };
    if rc < 0 {
        return Err(Error::from_rte_errno("rte_eth_from_rings"));
    }
    Ok(PortId(rc as u16))
}

/// A port whose transmit queue i loops back to its own receive queue i.
/// Each queue is an SPSC ring of `ring_size` slots (a power of two).
pub fn loopback(name: &str, queues: u16, ring_size: u32) -> Result<PortId> {
    ensure_live()?;
    let rings = make_rings(name, queues, ring_size)?;
    from_rings(name, &rings, &rings)
}

/// Two ports wired back to back: what `a` sends on queue i, `b` receives on queue i, and
/// the other way round.
pub fn pair(name_a: &str, name_b: &str, queues: u16, ring_size: u32) -> Result<(PortId, PortId)> {
    ensure_live()?;
    let a_to_b = make_rings(name_a, queues, ring_size)?;
    let b_to_a = make_rings(name_b, queues, ring_size)?;
    let a = from_rings(name_a, &b_to_a, &a_to_b)?;
    let b = from_rings(name_b, &a_to_b, &b_to_a)?;
    Ok((a, b))
}
