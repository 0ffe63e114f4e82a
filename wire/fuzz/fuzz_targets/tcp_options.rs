//! TCP headers and options: parsing never panics, every parsed option re-emits to bytes
//! that parse back to it, and MSS clamping keeps a valid checksum valid.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;

use l4lab_wire::{TcpOption, TcpOptionIter, TcpPacket};

fuzz_target!(|data: &[u8]| {
    // Raw option bytes.
    for option in TcpOptionIter::new(data).flatten() {
        // An option's length is one byte, so 255 bytes always suffice.
        let mut buf = [0u8; 255];
        let n = option
            .emit(&mut buf)
            .expect("an option is at most 255 bytes");
        assert_eq!(TcpOption::parse(&buf[..n]).map(|(o, _)| o), Ok(option));
    }

    // A whole segment.
    let Ok(tcp) = TcpPacket::new_checked(data) else {
        return;
    };
    let _ = (tcp.header_len(), tcp.options(), tcp.payload(), tcp.flags());
    let mss = tcp.mss();
    tcp.options_iter().for_each(drop);

    let (src, dst) = (
        IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::from(Ipv4Addr::new(10, 0, 0, 2)),
    );
    let mut copy = data.to_vec();
    let mut tcp = TcpPacket::new_unchecked(&mut copy[..]);
    tcp.fill_checksum(src, dst);
    match (mss, tcp.clamp_mss(536)) {
        (Ok(Some(old)), Ok(changed)) => {
            assert_eq!(changed, old > 536);
            assert_eq!(tcp.mss(), Ok(Some(old.min(536))));
        }
        (Ok(None), Ok(changed)) => assert!(!changed),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("mss() gave {a:?} but clamp_mss() gave {b:?}"),
    }
    assert!(tcp.verify_checksum(src, dst));
});
