//! Packet-buffer pools (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::{ensure_live, object_token, ObjectToken};
use crate::error::{Error, Result};

/// Data room of a default mbuf: 2048 bytes of data plus the standard headroom.
pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// A pool of packet buffers. Cloning is cheap and shares the pool.
///
/// The pool is freed when the last clone goes, and only if every mbuf has come back;
/// otherwise it is left for process exit, since an mbuf still out there points into it.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    ptr: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
    _token: ObjectToken,
}

// SAFETY: rte_mempool get/put are thread-safe (per-lcore caches plus a lock-free ring);
// the pointer is only used through those functions.
unsafe impl Send for PoolInner {}
// SAFETY: as above; no Rust-side mutable state.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `size` mbufs with `data_room` bytes each (headroom included) and
    /// a per-lcore cache of `cache` entries, on any NUMA socket.
    pub fn new(name: &str, size: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        ensure_live()?;
        let c_name = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("pool name {name:?} has a NUL")))?;
        // SAFETY: the EAL is live and c_name is a valid C string for the call.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                size,
                cache,
                0,
                data_room,
                dpdk_sys::SOCKET_ID_ANY,
            )
        };
        let ptr =
            NonNull::new(ptr).ok_or_else(|| Error::from_rte_errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                size,
                _token: object_token(),
            }),
        })
    }

    /// A pool of default-sized mbufs with a 256-entry cache.
    pub fn with_defaults(name: &str, size: u32) -> Result<Mempool> {
        Mempool::new(name, size, 256.min(size / 2), DEFAULT_DATA_ROOM)
    }

    /// Number of mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Mbufs currently available (in the pool or in lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid while self exists.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs currently handed out.
    pub fn in_use(&self) -> u32 {
        self.size().saturating_sub(self.available())
    }

    /// The raw pool, for calls this crate does not wrap.
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pointer is valid until freed here.
        let available = unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) };
        if available == self.size {
            // SAFETY: every mbuf is back in the pool and no clone of the handle remains,
            // so nothing refers to this memory any more.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        }
    }
}
