//! Raw FFI bindings to the DPDK installed on this system (found with pkg-config, version
//! 22.11 or newer), plus `l4lab_*` wrappers for DPDK's `static inline` fast-path functions.
//!
//! Everything here is `unsafe` to call; the `dpdk` crate is the safe layer.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks, rust_2018_idioms)]
#![allow(missing_debug_implementations, unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
