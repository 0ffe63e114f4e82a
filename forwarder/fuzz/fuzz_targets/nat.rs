//! Arbitrary frames into a primed worker; the first byte picks the port (0 or 1).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&port, frame)) = data.split_first() {
        forwarder_fuzz::fuzz_one(frame, u16::from(port & 1));
    }
});
