//! Arbitrary frames into a primed worker on port 0.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    forwarder_fuzz::fuzz_one(data, 0);
});
