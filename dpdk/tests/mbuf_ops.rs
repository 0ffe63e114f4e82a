//! Mbuf and burst operations: headroom and tailroom bounds, bulk allocation from a pool
//! that runs dry, metadata, and that nothing leaks (rings drained on drop included).

mod common;

use dpdk::mbuf::NoRoom;
use dpdk::ring::{ring, RingMode};
use dpdk::{Burst, Mbuf, Mempool, BURST_SIZE};

#[test]
fn mbuf_and_burst_behave() {
    let _eal = common::base("mbuf").init().expect("EAL init");
    let pool = Mempool::new("mbuf_pool", 63, 0, dpdk::mempool::DEFAULT_DATA_ROOM).expect("pool");
    assert_eq!(pool.size(), 63);

    // Room at both ends.
    let mut m = Mbuf::alloc(&pool).expect("mbuf");
    let head = m.headroom();
    assert_eq!(head, 128, "default headroom");
    assert_eq!(m.data_len(), 0);
    m.extend_from_slice(&[1, 2, 3, 4]).expect("append");
    m.prepend(2).expect("prepend");
    m.data_mut()[..2].copy_from_slice(&[9, 9]);
    assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
    assert_eq!(m.headroom(), head - 2);
    assert_eq!(m.prepend(head - 1), Err(NoRoom), "more than the headroom");
    assert_eq!(
        m.data(),
        &[9, 9, 1, 2, 3, 4],
        "a failed prepend changes nothing"
    );
    m.adj(2).expect("adj");
    m.trim(1).expect("trim");
    assert_eq!(m.data(), &[1, 2, 3]);
    assert_eq!(m.adj(4), Err(NoRoom), "cannot remove more than there is");
    assert_eq!(m.trim(4), Err(NoRoom));
    let tail = m.tailroom();
    assert!(m.append(tail + 1).is_err(), "more than the tailroom");
    assert_eq!(m.append(tail).expect("exactly the tailroom").len(), tail);
    assert_eq!(m.tailroom(), 0);
    assert_eq!(m.pkt_len(), 3 + tail);
    m.reset();
    assert_eq!((m.data_len(), m.headroom()), (0, head));

    // The whole buffer, for a packet path that moves the data start and end itself.
    m.extend_from_slice(&[5, 6, 7]).expect("append");
    let (buf, off, len) = m.buffer_mut().expect("single segment");
    assert_eq!((off, len), (head, 3));
    let total = buf.len();
    buf[off - 2..off].copy_from_slice(&[0xaa, 0xbb]);
    m.set_data_range(off - 2, 5).expect("inside the buffer");
    assert_eq!(m.data(), &[0xaa, 0xbb, 5, 6, 7]);
    assert_eq!(m.pkt_len(), 5);
    assert_eq!(
        m.set_data_range(total - 1, 2),
        Err(NoRoom),
        "past the buffer's end"
    );
    assert_eq!(
        m.set_data_range(usize::MAX, 2),
        Err(NoRoom),
        "overflow is refused"
    );
    assert_eq!(
        m.data(),
        &[0xaa, 0xbb, 5, 6, 7],
        "a refused range changes nothing"
    );
    m.reset();

    // RSS metadata.
    assert_eq!(m.rss_hash(), None);
    m.set_rss_hash(0xdead_beef);
    assert_eq!(m.rss_hash(), Some(0xdead_beef));
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // Sized bulk allocation: every mbuf comes reset, with `len` bytes of data; a length
    // past the data room takes nothing, and so does a short pool.
    let mut e = Burst::new();
    let room = usize::from(dpdk::mempool::DEFAULT_DATA_ROOM) - head;
    assert!(
        !e.alloc_bulk_len(&pool, 4, room + 1),
        "longer than the room"
    );
    assert!(e.is_empty());
    assert_eq!(pool.in_use(), 0, "nothing taken");
    assert!(e.alloc_bulk_len(&pool, 4, room), "exactly the room");
    drop(e);
    let mut e = Burst::new();
    assert!(e.alloc_bulk_len(&pool, 60, 60), "capped at a burst");
    assert!(e.is_full());
    for m in e.as_mut_slice() {
        assert_eq!((m.data_len(), m.pkt_len(), m.nb_segs()), (60, 60, 1));
        assert_eq!(m.headroom(), head);
        m.data_mut().fill(0xab);
    }
    let mut f = Burst::new();
    assert!(
        !f.alloc_bulk_len(&pool, BURST_SIZE, 60),
        "only 31 left: all or nothing"
    );
    assert!(f.is_empty());
    drop(e);
    assert_eq!(pool.in_use(), 0);

    // Bulk allocation is all or nothing.
    let mut a = Burst::new();
    assert!(a.alloc_bulk(&pool, BURST_SIZE));
    assert!(a.is_full());
    let mut b = Burst::new();
    assert!(
        !b.alloc_bulk(&pool, BURST_SIZE),
        "only 31 left: all or nothing"
    );
    assert!(b.is_empty());
    drop(b);
    let mut c = Burst::new();
    assert!(c.alloc_bulk(&pool, 31));
    let mut d = Burst::new();
    assert!(!d.alloc_bulk(&pool, 1), "pool is dry");
    assert!(d.is_empty());
    drop(c);

    // Push, pop, retain keep order and free what they drop.
    let extra = Mbuf::alloc(&pool).expect("mbuf");
    let extra = a.push(extra).expect_err("a full burst hands the mbuf back");
    drop(extra);
    for (i, m) in a.as_mut_slice().iter_mut().enumerate() {
        m.extend_from_slice(&[i as u8]).expect("room");
    }
    a.retain(|m| m.data()[0] % 2 == 0);
    assert_eq!(a.len(), BURST_SIZE / 2);
    let firsts: Vec<u8> = a.as_slice().iter().map(|m| m.data()[0]).collect();
    assert_eq!(firsts, (0..BURST_SIZE as u8).step_by(2).collect::<Vec<_>>());
    assert_eq!(a.pop().expect("last").data(), &[30]);
    assert_eq!(pool.in_use(), a.len() as u32);
    drop(a);
    assert_eq!(pool.in_use(), 0, "dropping a burst frees what it holds");

    // A ring dropped with mbufs inside gives them back.
    let (mut tx, rx) = ring::<Mbuf>("mbuf_ring", 16, RingMode::SPSC).expect("ring");
    let mut burst = Burst::new();
    assert!(burst.alloc_bulk(&pool, 20));
    assert_eq!(tx.enqueue_burst(&mut burst), 16, "ring of 16 takes 16");
    assert_eq!(burst.len(), 4, "the rest stay with the caller");
    assert_eq!(rx.len(), 16);
    drop(burst);
    drop((tx, rx));
    assert_eq!(pool.in_use(), 0, "the ring was drained on drop");
}
