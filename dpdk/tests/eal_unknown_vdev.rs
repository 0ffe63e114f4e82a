//! An unknown virtual device on the EAL command line fails initialisation with DPDK's
//! reason instead of crashing.

mod common;

use dpdk::Error;

#[test]
fn unknown_vdev_at_init_is_an_error() {
    let err = common::base("unknownvdev")
        .vdev("net_nosuchdriver0,foo=bar")
        .init()
        .expect_err("unknown vdev refused");
    match err {
        Error::Dpdk { op, code, reason } => {
            assert_eq!(op, "rte_eal_init");
            assert!(code > 0);
            assert!(!reason.is_empty(), "DPDK's reason is carried");
        }
        other => panic!("unexpected error {other}"),
    }
}
