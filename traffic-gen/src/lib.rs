//! traffic-gen: a DPDK packet generator and server emulator (issue 5).
//!
//! Pure modules (no EAL): [`units`] (CLI values), [`flows`] (flow enumeration),
//! [`template`] (prebuilt frames patched per packet), [`pace`] (TSC schedule),
//! [`latency`] (stamps, loss/dup/reorder, HDR histogram), [`respond`] (the server
//! emulator), [`replay`] (pcap replay), [`rss`] (software Toeplitz). [`cli`] turns the
//! command line into a [`cli::Config`]; [`run`] drives DPDK with it.
#![forbid(unsafe_code)]

pub mod cli;
pub mod flows;
pub mod latency;
pub mod pace;
pub mod replay;
pub mod respond;
pub mod rss;
pub mod run;
pub mod template;
pub mod units;
