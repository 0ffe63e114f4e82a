//! harness: pcap replay, an independent oracle for FULLNAT/NAT, an RSS model and checks
//! (see issue 6).
//!
//! Nothing here depends on the forwarder or on `l4lab-wire`: packets are read with
//! `etherparse`, captures with `pcap-file`, and checksums are recomputed from scratch.
//!
//! - [`rss`]: Toeplitz (configurable key), hash types and RETA — the reference model.
//! - [`scenario`]: the scenario TOML schema of `pcaps/*.toml`, with located errors.
//! - [`oracle`]: expected verdicts for FULLNAT / NAT and the [`oracle::Checker`] that
//!   compares a balancer's outputs with them.
//! - [`checks`]: checksums from scratch, RSS affinity and RSS steering.
//! - [`gen`]: the standard captures (`harness pcaps gen`).
//! - [`split`], [`replay`]: `harness rss split`, `harness replay --retarget`.
//! - [`capture`], [`packet`]: pcap I/O and the etherparse-based packet summary.
//! - [`topology`], [`run`]: scenarios through the forwarder (in-process dataplane, the
//!   `forwarder` binary on net_pcap) and `harness run`. Only `topology` depends on the
//!   forwarder crate, to drive it; the oracle does not.
//! - [`history`], [`trend`], [`report`]: run results and their history, anomaly detection
//!   (MDL grouping), and `harness report` (JSON, Markdown, HTML, JUnit).
#![forbid(unsafe_code)]

pub mod bench;
pub mod capture;
pub mod checks;
pub mod gen;
pub mod history;
pub mod oracle;
pub mod packet;
pub mod replay;
pub mod report;
pub mod rss;
pub mod run;
pub mod scenario;
pub mod split;
pub mod topology;
pub mod trend;
