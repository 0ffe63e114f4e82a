//! DPDK's own software Toeplitz hash (`rte_softrss`), for cross-checking RSS models. It
//! needs no EAL.

/// The Toeplitz hash of `input` (bytes in network order, a multiple of 4 long) under `key`
/// (at least `input.len() + 4` bytes), computed by DPDK. `None` when the lengths don't fit.
pub fn softrss(input: &[u8], key: &[u8]) -> Option<u32> {
    if input.len() & 3 != 0 || key.len() < input.len() + 4 {
        return None;
    }
    // rte_softrss takes the tuple as host-order 32-bit words.
    let mut words: Vec<u32> = input
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // SAFETY: `words` holds input_len valid words and `key` covers every bit the hash reads
    // (input_len * 4 + 4 bytes, checked above); rte_softrss only reads them.
    Some(unsafe { dpdk_sys::l4lab_softrss(words.as_mut_ptr(), words.len() as u32, key.as_ptr()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_vector() {
        let key = crate::port::DEFAULT_RSS_KEY;
        // 66.9.149.187:2794 -> 161.142.100.80:1766
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(softrss(&input, &key), Some(0x51cc_c178));
        assert_eq!(softrss(&input[..8], &key), Some(0x323e_8fc2));
        assert_eq!(softrss(&input[..7], &key), None);
    }
}
