//! traffic-gen: a DPDK packet generator and server emulator (see issue 5).
#![forbid(unsafe_code)]
