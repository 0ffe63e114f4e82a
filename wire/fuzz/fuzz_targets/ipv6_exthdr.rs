//! The IPv6 extension-header walker, on whole packets and on raw chains: it must end in
//! bounds or return an error, never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

use l4lab_wire::ipv6::{walk_ext_headers, MAX_EXT_HEADERS};
use l4lab_wire::{IpProtocol, Ipv6Packet};

fuzz_target!(|data: &[u8]| {
    for packet in [
        Ipv6Packet::new_checked(data),
        Ipv6Packet::new_checked_quoted(data),
    ] {
        let Ok(ip) = packet else {
            continue;
        };
        let _ = (ip.src_addr(), ip.dst_addr(), ip.flow_label(), ip.payload());
        if let Ok((upper, l4)) = ip.upper_layer_data() {
            assert!(upper.offset >= 40);
            assert_eq!(upper.offset + upper.len, 40 + ip.payload().len());
            assert_eq!(l4.len(), upper.len);
            let _ = (upper.fragment_seen(), upper.has_header());
        }
    }
    // The first byte picks the first header type; the rest is the chain.
    if let Some((&first, chain)) = data.split_first() {
        if let Ok(upper) = walk_ext_headers(IpProtocol(first), chain) {
            assert_eq!(upper.offset + upper.len, chain.len());
            assert!(usize::from(upper.ext_headers) <= MAX_EXT_HEADERS);
        }
    }
});
