//! EAL set-up shared by the integration tests. Each test file is its own process, so each
//! gets its own EAL (DPDK initialises once per process).
#![allow(dead_code)]

use dpdk::{Eal, EalBuilder};

/// The first CPU this process may run on (from `/proc/self/status`), so that lcore maps
/// work under any affinity mask.
pub fn first_cpu() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|list| {
                    list.trim()
                        .split([',', '-'])
                        .next()
                        .and_then(|n| n.parse().ok())
                })
        })
        .unwrap_or(0)
}

/// Arguments every test uses: no hugepages, no PCI scan, nothing shared on disk.
pub fn base(name: &str) -> EalBuilder {
    Eal::builder()
        .no_huge()
        .no_pci()
        .arg("--no-shconf")
        .file_prefix(&format!("l4lab-{name}-{}", std::process::id()))
        .memory_mb(256)
        .log_level("warning")
}

/// An EAL with `lcores` lcores, all on the first allowed CPU.
pub fn with_lcores(name: &str, lcores: u32) -> EalBuilder {
    let cpu = first_cpu();
    let map = (0..lcores)
        .map(|l| format!("{l}@{cpu}"))
        .collect::<Vec<_>>()
        .join(",");
    base(name).lcores(&map)
}
