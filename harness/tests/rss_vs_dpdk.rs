//! The harness's Toeplitz model agrees with DPDK's own software implementation
//! (`rte_softrss`, through the `dpdk` bindings) on random keys and inputs of every length
//! the hash types use (IPv4 / IPv6, with or without ports).

use harness::rss::{toeplitz, RssKey};
use proptest::prelude::*;

fn key_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn model_matches_rte_softrss(
        key in prop::collection::vec(any::<u8>(), 52),
        long_key in any::<bool>(),
        len_index in 0usize..4,
        input in prop::collection::vec(any::<u8>(), 36),
    ) {
        let key = if long_key { key } else { key[..40].to_vec() };
        let len = [8, 12, 32, 36][len_index];
        let input = &input[..len];
        let model = RssKey::from_hex(&key_hex(&key)).expect("40 or 52 bytes");
        let ours = toeplitz(&model, input);
        let dpdk = dpdk::thash::softrss(input, &key).expect("key covers the input");
        prop_assert_eq!(ours, dpdk, "key {} input {:02x?}", key_hex(&key), input);
    }
}
