//! Typed, zero-copy views over the packet headers that a layer-4 load balancer reads and
//! rewrites, plus the one checksum module everything else uses.
#![forbid(unsafe_code)]
