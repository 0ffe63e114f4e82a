//! The dataplane's clock: TSC cycles turned into nanoseconds since the runtime started.

use crate::dataplane::types::Nanos;

/// Converts TSC readings to [`Nanos`] with one multiplication (no division per call).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: u64,
    ns_per_cycle: f64,
}

impl Clock {
    /// A clock whose zero is now, for a TSC running at `hz`.
    pub fn new(hz: u64) -> Clock {
        Clock {
            start: dpdk::tsc::cycles(),
            ns_per_cycle: if hz == 0 { 0.0 } else { 1e9 / hz as f64 },
        }
    }

    /// Nanoseconds since the clock was made.
    #[inline]
    pub fn now(&self) -> Nanos {
        let cycles = dpdk::tsc::cycles().wrapping_sub(self.start);
        (cycles as f64 * self.ns_per_cycle) as Nanos
    }
}
