//! A small software Toeplitz hash (the NIC RSS function), so that the generator can put
//! each flow on the tx queue a multi-queue NIC would have received it on. Our own copy:
//! traffic-gen does not depend on the forwarder.

/// The standard 40-byte RSS key (Microsoft's; DPDK's and most NICs' default).
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key`. The key must be at least `input.len() + 4`
/// bytes long; bits past its end count as zero.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |i: usize| -> u64 {
        key.get(i / 8)
            .map_or(0, |b| u64::from((b >> (7 - (i % 8))) & 1))
    };
    // A 32-bit window of the key starting at bit `i`, kept in the low 32 bits.
    let mut window: u64 = (0..32).fold(0, |w, i| (w << 1) | key_bit(i));
    let mut hash = 0u32;
    for (byte_index, byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window as u32;
            }
            let next = byte_index * 8 + bit + 32;
            window = ((window << 1) | key_bit(next)) & 0xffff_ffff;
        }
    }
    hash
}

/// The hash of an IPv4 TCP/UDP 4-tuple, in the RSS input order: source address,
/// destination address, source port, destination port.
pub fn hash_v4_tuple(key: &[u8], src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> u32 {
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&src);
    input[4..8].copy_from_slice(&dst);
    input[8..10].copy_from_slice(&sport.to_be_bytes());
    input[10..].copy_from_slice(&dport.to_be_bytes());
    toeplitz(key, &input)
}

/// The queue a NIC with a RETA of `reta_size` entries filled round-robin over `queues`
/// queues (DPDK's default) picks for `hash`.
pub fn queue_for(hash: u32, reta_size: u32, queues: u16) -> u16 {
    let entry = hash % reta_size.max(1);
    (entry % u32::from(queues.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Source, source port, destination, destination port, hash of the addresses only,
    /// hash with ports.
    type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);

    /// Microsoft's published RSS verification suite (IPv4, with and without ports).
    #[test]
    fn microsoft_vectors() {
        let cases: [Vector; 3] = [
            (
                [66, 9, 149, 187],
                2794,
                [161, 142, 100, 80],
                1766,
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                [199, 92, 111, 2],
                14230,
                [65, 69, 140, 83],
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                [24, 19, 198, 95],
                12898,
                [12, 22, 207, 184],
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
        ];
        for (src, sport, dst, dport, ip_only, with_ports) in cases {
            let mut ips = [0u8; 8];
            ips[..4].copy_from_slice(&src);
            ips[4..].copy_from_slice(&dst);
            assert_eq!(toeplitz(&DEFAULT_KEY, &ips), ip_only);
            assert_eq!(
                hash_v4_tuple(&DEFAULT_KEY, src, dst, sport, dport),
                with_ports
            );
        }
    }

    #[test]
    fn queue_choice() {
        assert_eq!(queue_for(130, 128, 4), 2);
        assert_eq!(queue_for(7, 128, 1), 0);
        assert_eq!(queue_for(7, 0, 0), 0);
    }
}
