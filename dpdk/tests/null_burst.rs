//! net_null: a receive/transmit burst loop runs, and the port's counters agree with what
//! the loop counted.

mod common;

use dpdk::{Burst, Mempool, Port, PortConfig};

#[test]
fn burst_loop_counters_reconcile() {
    let _eal = common::base("null")
        .vdev("net_null0,size=64")
        .init()
        .expect("EAL init");
    let pool = Mempool::with_defaults("null_pool", 2047).expect("pool");
    let mut port = Port::by_name("net_null0").expect("port");
    let (mut rxq, mut txq) = port
        .configure(&PortConfig::new(1), &pool)
        .expect("configure");
    port.start().expect("start");
    port.wait_link_up(std::time::Duration::from_secs(2))
        .expect("link up");
    port.reset_stats().expect("reset");

    let (mut received, mut sent) = (0u64, 0u64);
    let mut burst = Burst::new();
    for _ in 0..2000 {
        received += rxq[0].rx_burst(&mut burst) as u64;
        for m in burst.as_slice() {
            assert_eq!(m.data_len(), 64, "net_null makes 64-byte packets");
        }
        sent += txq[0].tx_burst(&mut burst) as u64;
        burst.clear();
    }
    assert!(received > 0, "the null device produced packets");
    let stats = port.stats().expect("stats");
    assert_eq!(
        stats.ipackets, received,
        "port rx counter == packets the loop got"
    );
    assert_eq!(
        stats.opackets, sent,
        "port tx counter == packets the loop sent"
    );
    // net_null in DPDK 22.11 counts packets but not bytes, so bytes are not compared.
    assert_eq!(sent, received, "net_null accepts everything");
    drop((rxq, txq));
    assert_eq!(pool.in_use(), 0, "no mbuf leaked");
}
