//! Lock-free rings (`rte_ring`) carrying owned values between lcores.
//!
//! [`ring`] returns the two ends. A single-producer (single-consumer) ring's end cannot be
//! cloned, so the type system keeps DPDK's contract that only one thread uses it.

use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::{ensure_live, object_token, ObjectToken};
use crate::error::{Error, Result};
use crate::mbuf::{Burst, Mbuf};

/// A value that travels through a ring as one pointer.
pub trait RingItem: Send + Sized {
    /// Gives up ownership as a pointer.
    fn into_ptr(self) -> *mut c_void;
    /// Takes ownership back.
    ///
    /// # Safety
    ///
    /// `ptr` must come from `into_ptr` of the same type and be taken back only once.
    unsafe fn from_ptr(ptr: *mut c_void) -> Self;
}

impl RingItem for Mbuf {
    fn into_ptr(self) -> *mut c_void {
        self.into_raw().as_ptr().cast()
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        // SAFETY: the caller guarantees ptr came from into_ptr, so it is a non-null owned mbuf.
        unsafe { Mbuf::from_raw(NonNull::new_unchecked(ptr.cast())) }
    }
}

impl<T: Send> RingItem for Box<T> {
    fn into_ptr(self) -> *mut c_void {
        Box::into_raw(self).cast()
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        // SAFETY: the caller guarantees ptr came from Box::into_raw of a Box<T>.
        unsafe { Box::from_raw(ptr.cast()) }
    }
}

/// Producer/consumer sync modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingMode {
    /// Several threads may enqueue (the producer end can be cloned).
    pub multi_producer: bool,
    /// Several threads may dequeue (the consumer end can be cloned).
    pub multi_consumer: bool,
}

impl RingMode {
    /// One producer, one consumer: the fastest mode.
    pub const SPSC: RingMode = RingMode {
        multi_producer: false,
        multi_consumer: false,
    };
    /// Several producers, one consumer.
    pub const MPSC: RingMode = RingMode {
        multi_producer: true,
        multi_consumer: false,
    };
}

struct RingInner<T: RingItem> {
    ptr: NonNull<dpdk_sys::rte_ring>,
    mode: RingMode,
    _token: ObjectToken,
    _items: PhantomData<T>,
}

// SAFETY: rte_ring is designed for concurrent use by producer and consumer threads; the
// ends enforce the single/multi contract; items are Send.
unsafe impl<T: RingItem> Send for RingInner<T> {}
// SAFETY: as above.
unsafe impl<T: RingItem> Sync for RingInner<T> {}

impl<T: RingItem> Drop for RingInner<T> {
    fn drop(&mut self) {
        // Both ends are gone, so this thread is the only user: drain, then free.
        let mut ptr: *mut c_void = std::ptr::null_mut();
        loop {
            // SAFETY: valid ring, room for one pointer.
            let n = unsafe {
                dpdk_sys::l4lab_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    &mut ptr,
                    1,
                    std::ptr::null_mut(),
                )
            };
            if n == 0 {
                break;
            }
            // SAFETY: every pointer in the ring came from T::into_ptr.
            drop(unsafe { T::from_ptr(ptr) });
        }
        // SAFETY: no end refers to the ring any more.
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

/// Creates a ring holding up to `capacity` items and returns its two ends.
pub fn ring<T: RingItem>(
    name: &str,
    capacity: u32,
    mode: RingMode,
) -> Result<(Producer<T>, Consumer<T>)> {
    ensure_live()?;
    let c_name = CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("ring name {name:?} has a NUL")))?;
    let mut flags = dpdk_sys::RING_F_EXACT_SZ;
    if !mode.multi_producer {
        flags |= dpdk_sys::RING_F_SP_ENQ;
    }
    if !mode.multi_consumer {
        flags |= dpdk_sys::RING_F_SC_DEQ;
    }
    // SAFETY: EAL live, valid name for the call.
    let ptr = unsafe {
        dpdk_sys::rte_ring_create(c_name.as_ptr(), capacity, dpdk_sys::SOCKET_ID_ANY, flags)
    };
    let ptr = NonNull::new(ptr).ok_or_else(|| Error::from_rte_errno("rte_ring_create"))?;
    let inner = Arc::new(RingInner {
        ptr,
        mode,
        _token: object_token(),
        _items: PhantomData,
    });
    Ok((
        Producer {
            inner: inner.clone(),
            _not_sync: PhantomData,
        },
        Consumer {
            inner,
            _not_sync: PhantomData,
        },
    ))
}

/// The enqueue end of a ring.
pub struct Producer<T: RingItem> {
    inner: Arc<RingInner<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: RingItem> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("mode", &self.inner.mode)
            .finish()
    }
}

impl<T: RingItem> Producer<T> {
    /// Another producer end, when the ring is multi-producer.
    pub fn try_clone(&self) -> Option<Producer<T>> {
        self.inner.mode.multi_producer.then(|| Producer {
            inner: self.inner.clone(),
            _not_sync: PhantomData,
        })
    }

    /// Enqueues one item, or hands it back when the ring is full.
    #[inline]
    pub fn enqueue(&mut self, item: T) -> Result<(), T> {
        let ptr = item.into_ptr();
        // SAFETY: valid ring; one pointer to read; this end is the only (or a permitted
        // concurrent) producer.
        let n = unsafe {
            dpdk_sys::l4lab_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                &ptr,
                1,
                std::ptr::null_mut(),
            )
        };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: the ring did not take it, so we still own the pointer.
            Err(unsafe { T::from_ptr(ptr) })
        }
    }
}

impl Producer<Mbuf> {
    /// Enqueues from the front of `burst`; what did not fit stays there. Returns how
    /// many went in.
    #[inline]
    pub fn enqueue_burst(&mut self, burst: &mut Burst) -> usize {
        let (ptr, len) = burst.held();
        if len == 0 {
            return 0;
        }
        // SAFETY: valid ring; ptr holds len owned mbuf pointers.
        let n = unsafe {
            dpdk_sys::l4lab_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                ptr.cast(),
                len as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring owns the first n mbufs now.
        unsafe { burst.consumed(n) };
        n
    }
}

/// The dequeue end of a ring.
pub struct Consumer<T: RingItem> {
    inner: Arc<RingInner<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: RingItem> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("mode", &self.inner.mode)
            .finish()
    }
}

impl<T: RingItem> Consumer<T> {
    /// Another consumer end, when the ring is multi-consumer.
    pub fn try_clone(&self) -> Option<Consumer<T>> {
        self.inner.mode.multi_consumer.then(|| Consumer {
            inner: self.inner.clone(),
            _not_sync: PhantomData,
        })
    }

    /// Dequeues one item.
    #[inline]
    pub fn dequeue(&mut self) -> Option<T> {
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid ring; room for one pointer; this end is a permitted consumer.
        let n = unsafe {
            dpdk_sys::l4lab_ring_dequeue_burst(
                self.inner.ptr.as_ptr(),
                &mut ptr,
                1,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: every pointer in the ring came from T::into_ptr, and we took this one.
        (n == 1).then(|| unsafe { T::from_ptr(ptr) })
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        // SAFETY: valid ring.
        unsafe { dpdk_sys::l4lab_ring_count(self.inner.ptr.as_ptr()) as usize }
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Consumer<Mbuf> {
    /// Dequeues into the free slots of `burst`; returns how many arrived.
    #[inline]
    pub fn dequeue_burst(&mut self, burst: &mut Burst) -> usize {
        let (ptr, room) = burst.spare();
        if room == 0 {
            return 0;
        }
        // SAFETY: valid ring; ptr has room for `room` pointers.
        let n = unsafe {
            dpdk_sys::l4lab_ring_dequeue_burst(
                self.inner.ptr.as_ptr(),
                ptr.cast(),
                room as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring handed us n owned mbufs in the free slots.
        unsafe { burst.filled(n) };
        n
    }
}
