//! Per-connection-setup costs: scheduler picks, Toeplitz hashing, local port choice.
//!
//! `cargo bench -p forwarder --bench sched -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};

use criterion::{criterion_group, criterion_main, Criterion};

use forwarder::dataplane::laddr::{LaddrPool, PortPolicy, DEFAULT_MAX_SCAN};
use forwarder::dataplane::rss::{HashTypes, Reta, RssKey, RssModel};
use forwarder::dataplane::sched::{Backend, SchedKind, Scheduler};
use forwarder::dataplane::types::{Proto, Tuple};

/// Distinct client tuples, cycled through so that lookups touch the whole table.
fn clients(n: u32) -> Vec<Tuple> {
    (0..n)
        .map(|i| Tuple {
            proto: Proto::Tcp,
            src: IpAddr::from((0x0a00_0000u32 + i.wrapping_mul(2_654_435_761)).to_be_bytes()),
            sport: 1024 + (i % 60_000) as u16,
            dst: "192.0.2.1".parse().expect("literal address"),
            dport: 80,
        })
        .collect()
}

fn backends(weights: impl Iterator<Item = u32>) -> Vec<Backend> {
    weights
        .enumerate()
        .map(|(i, w)| Backend {
            addr: SocketAddr::new(
                IpAddr::from([10, 9, (i / 256) as u8, (i % 256) as u8]),
                8080,
            ),
            weight: w,
        })
        .collect()
}

fn sched(c: &mut Criterion) {
    let flows = clients(4096);

    let mut mh = Scheduler::new(
        SchedKind::Maglev { table_size: 65537 },
        &backends((0..100).map(|_| 1)),
    )
    .expect("valid maglev config");
    let mut i = 0usize;
    c.bench_function("maglev_pick_100rs_m65537", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(mh.pick(black_box(&flows[i])))
        })
    });

    let mut wrr = Scheduler::new(
        SchedKind::Wrr,
        &backends([5u32, 3, 2, 8, 1, 4, 6, 7, 2, 3].into_iter()),
    )
    .expect("valid wrr config");
    c.bench_function("wrr_pick_10rs", |b| {
        b.iter(|| black_box(wrr.pick(black_box(&flows[0]))))
    });

    let mut wlc = Scheduler::new(SchedKind::Wlc, &backends((0..10).map(|i| i + 1)))
        .expect("valid wlc config");
    c.bench_function("wlc_pick_10rs", |b| {
        b.iter(|| black_box(wlc.pick(black_box(&flows[0]))))
    });
}

fn rss_and_laddr(c: &mut Criterion) {
    let model = RssModel::new(
        RssKey::microsoft(),
        HashTypes::all(),
        Reta::round_robin(128, 8).expect("non-empty reta"),
    );
    let flows = clients(4096);
    let mut i = 0usize;
    c.bench_function("toeplitz_v4_tcp_tuple", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(model.queue(black_box(&flows[i])))
        })
    });

    let laddrs: Vec<IpAddr> = (1..=4u8).map(|x| IpAddr::from([10, 0, 0, x])).collect();
    let rs: Vec<SocketAddr> = (0..1024u32)
        .map(|x| {
            SocketAddr::new(
                IpAddr::from((0xac10_0000u32 + x).to_be_bytes()),
                80 + (x % 4) as u16,
            )
        })
        .collect();

    // Worker 0 of 4, owning queues 0 and 4 of 8 (a quarter of the RETA).
    let mut rss_pool = LaddrPool::new(
        0,
        &laddrs,
        PortPolicy::RssAware {
            model: model.clone(),
            owned_queues: vec![0, 4],
            max_scan: DEFAULT_MAX_SCAN,
        },
    )
    .expect("valid pool config");
    // Keep a background of live connections so the scan meets used ports.
    for r in rs.iter().cycle().take(20_000) {
        let _ = rss_pool.alloc(Proto::Tcp, *r);
    }
    let mut j = 0usize;
    c.bench_function("laddr_rss_aware_alloc_release", |b| {
        b.iter(|| {
            j = (j + 1) & 1023;
            let r = rs[j];
            if let Ok((la, lp)) = rss_pool.alloc(Proto::Tcp, black_box(r)) {
                let _ = rss_pool.release(Proto::Tcp, la, lp, r);
            }
        })
    });

    let mut part = LaddrPool::new(0, &laddrs, PortPolicy::Partition { workers: 4 })
        .expect("valid pool config");
    c.bench_function("laddr_partition_alloc_release", |b| {
        b.iter(|| {
            j = (j + 1) & 1023;
            let r = rs[j];
            if let Ok((la, lp)) = part.alloc(Proto::Tcp, black_box(r)) {
                let _ = part.release(Proto::Tcp, la, lp, r);
            }
        })
    });
}

criterion_group!(benches, sched, rss_and_laddr);
criterion_main!(benches);
