//! The l4lab reference forwarder.
//!
//! `dataplane` is sans-IO: it takes the time, packet bytes and receive metadata and returns a
//! verdict, so the same code runs under DPDK, in the harness and in property tests.
#![forbid(unsafe_code)]

pub mod control;
pub mod dataplane;
pub mod runtime;
