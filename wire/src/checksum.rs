//! The Internet checksum: RFC 1071 full sums, RFC 1624 incremental updates, the IPv4 and
//! IPv6 pseudo-headers, and what a port can compute in hardware.
//!
//! Functions that return a *sum* return the folded one's-complement sum, not yet
//! complemented; the checksum field holds `!sum`. Functions named `update_*` take and
//! return the value of a checksum field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ip::IpProtocol;

/// Which checksums a port computes on transmit (DPDK `RTE_ETH_TX_OFFLOAD_*_CKSUM`).
///
/// Where a flag is set, the caller writes only the pseudo-header sum into the TCP or UDP
/// checksum field (and zero into the IPv4 one) and lets the NIC finish the job; see
/// `fill_checksum_offload` on the header views. ICMP checksums are never offloaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ChecksumCaps {
    /// The port computes the IPv4 header checksum.
    pub ipv4: bool,
    /// The port computes TCP checksums from the pseudo-header sum in the field.
    pub tcp: bool,
    /// The port computes UDP checksums from the pseudo-header sum in the field.
    pub udp: bool,
}

impl ChecksumCaps {
    /// Software computes every checksum.
    pub const NONE: ChecksumCaps = ChecksumCaps {
        ipv4: false,
        tcp: false,
        udp: false,
    };
    /// Hardware computes IPv4, TCP and UDP checksums.
    pub const ALL: ChecksumCaps = ChecksumCaps {
        ipv4: true,
        tcp: true,
        udp: true,
    };
}

/// Folds a wide accumulator into 16 bits with end-around carry.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The unfolded sum of `bytes` as big-endian 16-bit words, the last odd byte padded
/// with a zero on the right (RFC 1071). Congruent, modulo 0xffff, to the folded sum.
fn raw_sum(bytes: &[u8]) -> u64 {
    // Big-endian 32-bit words: 2^16 = 1 (mod 0xffff), so their sum is congruent to the
    // sum of the 16-bit halves, and four bytes a step halves the loop count.
    let mut acc: u64 = 0;
    let mut words = bytes.chunks_exact(4);
    for w in words.by_ref() {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in pairs.by_ref() {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// The folded one's-complement sum of `bytes` (RFC 1071), odd lengths included.
pub fn data(bytes: &[u8]) -> u16 {
    fold(raw_sum(bytes))
}

/// Adds folded sums together (one's-complement addition).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The sum of the IPv4 pseudo-header: addresses, protocol and upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    fold(
        raw_sum(&src.octets())
            + raw_sum(&dst.octets())
            + u64::from(protocol.0)
            + u64::from(length >> 16)
            + u64::from(length & 0xffff),
    )
}

/// The sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: IpProtocol, length: u32) -> u16 {
    fold(
        raw_sum(&src.octets())
            + raw_sum(&dst.octets())
            + u64::from(protocol.0)
            + u64::from(length >> 16)
            + u64::from(length & 0xffff),
    )
}

/// The pseudo-header sum for either family. Both addresses should be of one family; if
/// they are not, the IPv4 one is taken as its IPv4-mapped IPv6 address (the result is
/// then meaningless on the wire, but nothing panics).
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: IpProtocol, length: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, protocol, length),
        (s, d) => pseudo_header_v6(to_v6(s), to_v6(d), protocol, length),
    }
}

fn to_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The checksum field value for `sums` (pseudo-header and data sums): `!combine(sums)`.
pub fn finish(sums: &[u16]) -> u16 {
    !combine(sums)
}

/// RFC 1624 eqn. 3: the new checksum field after one 16-bit word changed from `old` to
/// `new`. The word must sit at an even offset from the start of the summed data; for
/// one at an odd offset pass both values byte-swapped.
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// The new checksum field after a 32-bit field (at an even offset) changed.
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    update_bytes(checksum, &old.to_be_bytes(), &new.to_be_bytes())
}

/// The new checksum field after an IPv4 address changed (in the IPv4 header or in a
/// TCP/UDP pseudo-header).
pub fn update_ipv4_addr(checksum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_bytes(checksum, &old.octets(), &new.octets())
}

/// The new checksum field after an IPv6 address in the pseudo-header changed.
pub fn update_ipv6_addr(checksum: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    update_bytes(checksum, &old.octets(), &new.octets())
}

/// The new checksum field after an address of either family changed. Mixed families are
/// handled as in [`pseudo_header`].
pub fn update_ip_addr(checksum: u16, old: IpAddr, new: IpAddr) -> u16 {
    match (old, new) {
        (IpAddr::V4(o), IpAddr::V4(n)) => update_ipv4_addr(checksum, o, n),
        (o, n) => update_ipv6_addr(checksum, to_v6(o), to_v6(n)),
    }
}

/// The new checksum field after the bytes `old` at an even offset were replaced by
/// `new`. Both should have the same length; the shorter is taken as zero-padded.
pub fn update_bytes(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    // ~HC' = ~HC + ~m + m', with the sums of several words standing for m and m'.
    !fold(u64::from(!checksum) + u64::from(!data(old)) + u64::from(data(new)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[rustfmt::skip]
    static RFC1071_EXAMPLE: [u8; 8] = [
        // RFC 1071 section 3: the worked example
        0x00, 0x01, 0xf2, 0x03,
        0xf4, 0xf5, 0xf6, 0xf7,
    ];

    /// The textbook loop over 16-bit words, as in RFC 1071 section 4.1.
    fn reference_sum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < bytes.len() {
            sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
            i += 2;
        }
        if i < bytes.len() {
            sum += u32::from(bytes[i]) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        assert_eq!(data(&RFC1071_EXAMPLE), 0xddf2);
        assert_eq!(finish(&[data(&RFC1071_EXAMPLE)]), 0x220d);
        // Byte-order independence (RFC 1071 section 2(B)): the swapped data sums to the
        // swapped result.
        let swapped: Vec<u8> = RFC1071_EXAMPLE
            .chunks(2)
            .flat_map(|c| [c[1], c[0]])
            .collect();
        assert_eq!(data(&swapped), 0xf2dd);
    }

    #[test]
    fn odd_lengths_pad_on_the_right() {
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x00, 0x01, 0xf2]), 0xf201);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn fold_and_combine() {
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff_ffff), 0xffff);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
    }

    #[test]
    fn ipv4_header_checksum_from_rfc_example() {
        // A real IPv4 header whose checksum field (0xb861) is correct.
        #[rustfmt::skip]
        let header: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, // version, IHL, DSCP, total length
            0x00, 0x00, 0x40, 0x00, // identification, flags (DF), fragment offset
            0x40, 0x11, 0xb8, 0x61, // TTL 64, UDP, checksum
            0xc0, 0xa8, 0x00, 0x01, // source 192.168.0.1
            0xc0, 0xa8, 0x00, 0xc7, // destination 192.168.0.199
        ];
        assert_eq!(data(&header), 0xffff);
        let mut zeroed = header;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(finish(&[data(&zeroed)]), 0xb861);
    }

    #[test]
    fn pseudo_header_sums() {
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let d = Ipv4Addr::new(10, 0, 0, 2);
        // 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20
        assert_eq!(pseudo_header_v4(s, d, IpProtocol::TCP, 20), 0x1403 + 6 + 20);
        assert_eq!(
            pseudo_header(s.into(), d.into(), IpProtocol::TCP, 20),
            pseudo_header_v4(s, d, IpProtocol::TCP, 20)
        );
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        // 2 * (0x2001 + 0x0db8) + 1 + 2 + 17 + 8
        assert_eq!(
            pseudo_header_v6(s6, d6, IpProtocol::UDP, 8),
            (2 * (0x2001 + 0x0db8) + 1 + 2 + 17 + 8) as u16
        );
        // Lengths above 16 bits are split into two words.
        assert_eq!(
            pseudo_header_v6(s6, d6, IpProtocol::UDP, 0x1_0000),
            (2 * (0x2001 + 0x0db8) + 1 + 2 + 17 + 1) as u16
        );
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn caps_constants() {
        assert_eq!(ChecksumCaps::default(), ChecksumCaps::NONE);
        let all = ChecksumCaps::ALL;
        assert_eq!((all.ipv4, all.tcp, all.udp), (true, true, true));
    }

    proptest! {
        #[test]
        fn matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(data(&bytes), reference_sum(&bytes));
        }

        #[test]
        fn incremental_equals_full(
            mut bytes in proptest::collection::vec(any::<u8>(), 2..64).prop_filter("non-zero", |b| b.iter().any(|&x| x != 0)),
            word in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // The data's first two bytes hold the checksum, as in real headers.
            bytes[0] = 0;
            bytes[1] = 0;
            let words = bytes.len() / 2;
            let at = 2 * word.index(words);
            let cks = finish(&[data(&bytes)]);
            bytes[0..2].copy_from_slice(&cks.to_be_bytes());
            if at == 0 {
                return Ok(());
            }
            let old = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            bytes[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let updated = update_u16(cks, old, new);
            bytes[0] = 0;
            bytes[1] = 0;
            let full = finish(&[data(&bytes)]);
            // Both are checksums of the same data; they may differ only as +0/-0 when
            // all other data is zero, which the filter does not exclude after the rewrite.
            if bytes.iter().any(|&b| b != 0) {
                prop_assert_eq!(updated, full);
            }
        }
    }
}
