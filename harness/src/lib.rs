//! harness: pcap replay, an independent oracle for FULLNAT/NAT, an RSS model and checks
//! (see issue 6).
//!
//! Nothing here depends on the forwarder or on `l4lab-wire`: packets are read with
//! `etherparse`, captures with `pcap-file`, and checksums are recomputed from scratch.
#![forbid(unsafe_code)]

pub mod capture;
pub mod checks;
pub mod gen;
pub mod oracle;
pub mod packet;
pub mod replay;
pub mod rss;
pub mod scenario;
pub mod split;
