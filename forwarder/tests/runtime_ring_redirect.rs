//! The real runtime with two workers on a net_ring port whose steering is deliberately
//! wrong: the forwarder partitions local ports as if flow rules steered replies, but the
//! "NIC" (this test) spreads replies by RSS, so about half of them reach the worker that
//! does not own their connection. They must be passed to the owner over the redirect
//! rings (counted) and still be forwarded correctly, by the owner.

mod ring;

use ring::{drops, worker_sum};

#[test]
fn wrong_steering_redirects_and_still_delivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = ring::start(dir.path(), "redir", "partition");
    ring::run(setup, |mut d| {
        d.wait_ready();
        let conns = d.open(48);
        for round in 0..3 {
            d.round(&conns, round);
        }
        let stats = d.settled_stats();
        assert_eq!(stats["ports"][0]["steering"], "partition");
        let redirects = worker_sum(&stats, "redirects");
        assert!(
            redirects > 0,
            "replies reached the wrong worker and were redirected: {stats}"
        );
        // A redirected packet is received twice (by the wrong worker, then its owner).
        assert_eq!(
            worker_sum(&stats, "rx_packets"),
            stats["ports"][0]["rx_packets"].as_u64().expect("port rx") + redirects,
            "every redirected packet reached its owner"
        );
        assert_eq!(drops(&stats), 0, "nothing dropped");
        assert_eq!(worker_sum(&stats, "tx_packets"), d.checked);
    });
}
