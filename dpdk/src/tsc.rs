//! Time-stamp counter helpers.

/// The current TSC value (`rte_rdtsc`).
#[inline]
pub fn cycles() -> u64 {
    // SAFETY: reads the time-stamp counter; no memory is touched.
    unsafe { dpdk_sys::l4lab_rdtsc() }
}

/// TSC ticks per second as measured by the EAL (valid after `Eal` initialisation).
pub fn hz() -> u64 {
    // SAFETY: returns a value the EAL computed at start; no arguments.
    unsafe { dpdk_sys::l4lab_tsc_hz() }
}

/// Converts a TSC delta to nanoseconds at `hz` ticks per second.
#[inline]
pub fn cycles_to_ns(cycles: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    ((cycles as u128 * 1_000_000_000) / hz as u128) as u64
}
