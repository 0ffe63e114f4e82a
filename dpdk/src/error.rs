//! Errors of the safe layer. Each carries DPDK's own reason (`rte_strerror`) where DPDK
//! gave one.

use std::ffi::CStr;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a DPDK call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A second `Eal` was asked for in a process that already has one.
    #[error("the DPDK EAL is already initialised in this process (one Eal per process)")]
    EalAlreadyInitialised,
    /// A DPDK function returned an error.
    #[error("{op} failed: {reason} (error {code})")]
    Dpdk {
        /// The DPDK function or operation.
        op: &'static str,
        /// The positive errno-style code.
        code: i32,
        /// DPDK's text for the code.
        reason: String,
    },
    /// An argument was rejected before reaching DPDK.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The link did not come up in time.
    #[error("link of port {port} still down after {waited_ms} ms")]
    LinkDown {
        /// The port.
        port: u16,
        /// How long we waited.
        waited_ms: u64,
    },
    /// The PMD refused an `rte_flow` rule; callers fall back to another steering method.
    #[error("port {port} refused the flow rule: {reason} (error {code})")]
    FlowRefused {
        /// The port.
        port: u16,
        /// The positive errno-style code.
        code: i32,
        /// The PMD's message, or DPDK's text for the code.
        reason: String,
    },
    /// A closure launched on a worker lcore panicked.
    #[error("the closure on lcore {lcore} panicked: {message}")]
    WorkerPanicked {
        /// The lcore it ran on.
        lcore: u32,
        /// The panic payload, when it was a string.
        message: String,
    },
}

impl Error {
    /// Builds [`Error::Dpdk`] from a (positive or negative) error code.
    pub fn dpdk(op: &'static str, code: i32) -> Error {
        let code = code.abs();
        Error::Dpdk {
            op,
            code,
            reason: strerror(code),
        }
    }

    /// Builds [`Error::Dpdk`] from the calling thread's `rte_errno`.
    pub fn from_rte_errno(op: &'static str) -> Error {
        Error::dpdk(op, crate::eal::rte_errno())
    }
}

/// DPDK's text for an error code (it knows DPDK-specific codes as well as errno values).
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a static or
    // thread-local NUL-terminated string that stays valid until the next call on this
    // thread; we copy it out at once.
    let ptr = unsafe { dpdk_sys::rte_strerror(code) };
    if ptr.is_null() {
        return format!("unknown error {code}");
    }
    // SAFETY: non-null and NUL-terminated, see above.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}
