//! Running Rust closures on worker lcores.
//!
//! A panic inside the closure is caught on the worker and returned by [`Worker::join`] as
//! [`Error::WorkerPanicked`]. (Builds with `panic = "abort"`, such as l4lab's release
//! profile, abort the process instead: there is nothing to unwind.)

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};

use crate::error::{Error, Result};

/// The lcore the calling thread runs on (`u32::MAX` on a non-EAL thread).
#[inline]
pub fn current() -> u32 {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { dpdk_sys::l4lab_lcore_id() }
}

struct Slot<T> {
    job: Option<Box<dyn FnOnce() -> T + Send>>,
    result: Option<std::thread::Result<T>>,
}

/// A closure running on a worker lcore. Join it from the main lcore to get its result;
/// dropping it without joining waits for the lcore and discards the result.
pub struct Worker<T> {
    lcore: u32,
    slot: *mut Slot<T>,
    // Launch and wait must happen on the main lcore's thread.
    _not_send: PhantomData<*mut ()>,
}

impl<T> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("lcore", &self.lcore)
            .finish()
    }
}

extern "C" fn trampoline<T>(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Slot<T> that `launch` leaked for this run; the main lcore does
    // not touch it until rte_eal_wait_lcore has returned, so this access is exclusive.
    let slot = unsafe { &mut *arg.cast::<Slot<T>>() };
    let Some(job) = slot.job.take() else {
        return -1;
    };
    slot.result = Some(panic::catch_unwind(AssertUnwindSafe(job)));
    0
}

/// Runs `job` on worker lcore `lcore`. Call from the main lcore; the lcore must be idle.
pub fn launch<F, T>(lcore: u32, job: F) -> Result<Worker<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    crate::eal::ensure_live()?;
    let slot = Box::into_raw(Box::new(Slot::<T> {
        job: Some(Box::new(job)),
        result: None,
    }));
    // SAFETY: the trampoline matches lcore_function_t; slot stays valid until the Worker
    // frees it after waiting for the lcore.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline::<T>), slot.cast(), lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so no lcore holds the pointer; reclaim it.
        drop(unsafe { Box::from_raw(slot) });
        return Err(Error::dpdk("rte_eal_remote_launch", rc));
    }
    Ok(Worker {
        lcore,
        slot,
        _not_send: PhantomData,
    })
}

impl<T> Worker<T> {
    /// The lcore it runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits for the closure and returns its value, or the panic it raised.
    pub fn join(mut self) -> Result<T> {
        let lcore = self.lcore;
        let result = self.wait_and_take();
        match result {
            Some(Ok(value)) => Ok(value),
            Some(Err(payload)) => Err(Error::WorkerPanicked {
                lcore,
                message: panic_message(&*payload),
            }),
            None => Err(Error::WorkerPanicked {
                lcore,
                message: "the worker returned no result".into(),
            }),
        }
    }

    fn wait_and_take(&mut self) -> Option<std::thread::Result<T>> {
        if self.slot.is_null() {
            return None;
        }
        // SAFETY: we launched on this lcore; waiting is allowed from the main lcore.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        // SAFETY: the lcore has finished, so the slot is ours again; it came from
        // Box::into_raw in launch and is freed exactly once (slot is nulled).
        let slot = unsafe { Box::from_raw(self.slot) };
        self.slot = std::ptr::null_mut();
        slot.result
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        let _ = self.wait_and_take();
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
