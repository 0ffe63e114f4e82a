//! A flag the EAL does not know fails initialisation with DPDK's reason. (Its own
//! process: DPDK keeps parsed state after a failed init, so nothing else runs here.)

mod common;

use dpdk::Error;

#[test]
fn unknown_eal_flag_is_an_error() {
    let err = common::base("badargs")
        .arg("--definitely-not-an-eal-flag")
        .init()
        .expect_err("bad argument refused");
    match &err {
        Error::Dpdk { op, code, reason } => {
            assert_eq!(*op, "rte_eal_init");
            assert_eq!(*code, libc::EINVAL);
            assert!(!reason.is_empty());
            assert!(err.to_string().contains("rte_eal_init failed"));
        }
        other => panic!("unexpected error {other}"),
    }
    // A NUL inside an argument never reaches DPDK.
    assert!(matches!(
        common::base("badargs").arg("bad\0arg").init(),
        Err(Error::InvalidArgument(_))
    ));
}
