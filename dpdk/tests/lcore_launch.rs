//! Closures on worker lcores: results come back through a ring and from `join`; a panic
//! is reported as an error and the lcore stays usable.

mod common;

use dpdk::lcore;
use dpdk::ring::{ring, RingMode};
use dpdk::{Error, Mbuf, Mempool};

#[test]
fn closures_on_worker_lcores() {
    let eal = common::with_lcores("lcore", 2).init().expect("EAL init");
    let workers = eal.worker_lcores();
    assert_eq!(workers.len(), 1, "one worker lcore besides the main one");
    let worker = workers[0];
    assert_eq!(lcore::current(), eal.main_lcore());

    // Values through an SPSC ring, and the lcore id through join.
    let (mut tx, mut rx) = ring::<Box<u64>>("lcore_vals", 1024, RingMode::SPSC).expect("ring");
    assert!(
        tx.try_clone().is_none(),
        "a single-producer end cannot be cloned"
    );
    let handle = lcore::launch(worker, move || {
        for i in 1..=100u64 {
            tx.enqueue(Box::new(i * i)).expect("ring has room");
        }
        lcore::current()
    })
    .expect("launch");
    assert_eq!(
        handle.join().expect("no panic"),
        worker,
        "ran on the worker lcore"
    );
    let got: Vec<u64> = std::iter::from_fn(|| rx.dequeue().map(|b| *b)).collect();
    assert_eq!(got, (1..=100u64).map(|i| i * i).collect::<Vec<_>>());

    // An mbuf built on the worker arrives intact on the main lcore.
    let pool = Mempool::with_defaults("lcore_pool", 511).expect("pool");
    let (mut mtx, mut mrx) = ring::<Mbuf>("lcore_mbufs", 64, RingMode::SPSC).expect("ring");
    let worker_pool = pool.clone();
    lcore::launch(worker, move || {
        let mut m = Mbuf::alloc(&worker_pool).expect("mbuf");
        m.extend_from_slice(b"built on a worker").expect("room");
        mtx.enqueue(m).expect("room");
    })
    .expect("launch")
    .join()
    .expect("no panic");
    assert_eq!(
        mrx.dequeue().expect("mbuf arrived").data(),
        b"built on a worker"
    );

    // A panic is an error value, not an abort.
    let err = lcore::launch(worker, || -> u32 { panic!("boom on purpose") })
        .expect("launch")
        .join()
        .expect_err("the panic is reported");
    match err {
        Error::WorkerPanicked { lcore, message } => {
            assert_eq!(lcore, worker);
            assert!(message.contains("boom on purpose"), "message: {message}");
        }
        other => panic!("unexpected error {other}"),
    }

    // The lcore is idle again and takes new work.
    let again = lcore::launch(worker, || 7).expect("launch after panic");
    assert_eq!(again.join().expect("no panic"), 7);

    // Launching on the main lcore (not a worker) is refused by DPDK with a reason.
    let main = eal.main_lcore();
    assert!(
        lcore::launch(main, || ()).is_err(),
        "main lcore is not a launch target"
    );
}
