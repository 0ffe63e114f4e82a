//! net_ring loopback port with 4 queues: what goes out on queue q comes back on queue q,
//! in order and byte for byte.

mod common;

use dpdk::{ringport, Burst, Mbuf, Mempool, Port, PortConfig};

const QUEUES: u16 = 4;
const PER_QUEUE: usize = 200;

fn payload(queue: u16, seq: usize) -> Vec<u8> {
    let len = 60 + (seq * 37 + usize::from(queue) * 11) % 1400;
    (0..len)
        .map(|i| (i as u8) ^ (seq as u8).wrapping_mul(7) ^ (queue as u8).wrapping_mul(31))
        .collect()
}

#[test]
fn four_queues_loop_back_in_order() {
    let _eal = common::base("ringlb").init().expect("EAL init");
    let pool = Mempool::with_defaults("ringlb_pool", 4095).expect("pool");
    let id = ringport::loopback("net_ringlb", QUEUES, 1024).expect("ring port");
    let mut port = Port::open(id).expect("open");
    assert_eq!(port.info().expect("info").driver, "net_ring");
    let (mut rxq, mut txq) = port
        .configure(&PortConfig::new(QUEUES), &pool)
        .expect("configure");
    port.start().expect("start");

    for (q, tx) in txq.iter_mut().enumerate() {
        let q = q as u16;
        let mut burst = Burst::new();
        for seq in 0..PER_QUEUE {
            let mut m = Mbuf::alloc(&pool).expect("mbuf");
            m.extend_from_slice(&payload(q, seq)).expect("room");
            burst.push(m).expect("burst has room");
            if burst.is_full() || seq + 1 == PER_QUEUE {
                let want = burst.len();
                assert_eq!(tx.tx_burst(&mut burst), want, "ring accepted the burst");
                assert!(burst.is_empty());
            }
        }
    }

    for (q, rx) in rxq.iter_mut().enumerate() {
        let q = q as u16;
        let mut got = Vec::new();
        let mut burst = Burst::new();
        for _ in 0..100 {
            rx.rx_burst(&mut burst);
            got.extend(burst.drain().map(|m| m.data().to_vec()));
            if got.len() >= PER_QUEUE {
                break;
            }
        }
        assert_eq!(
            got.len(),
            PER_QUEUE,
            "queue {q} got back every packet and no more"
        );
        for (seq, data) in got.iter().enumerate() {
            assert_eq!(data, &payload(q, seq), "queue {q} packet {seq}");
        }
        assert_eq!(rx.rx_burst(&mut burst), 0, "queue {q} holds nothing else");
    }

    let stats = port.stats().expect("stats");
    let total = u64::from(QUEUES) * PER_QUEUE as u64;
    assert_eq!(stats.opackets, total);
    assert_eq!(stats.ipackets, total);
    drop((rxq, txq));
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}
