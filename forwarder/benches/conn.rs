//! Connection table costs on a large table: lookup (hit and miss), insert + remove, touch.
//!
//! Keys are visited in a scattered order so that the figures include the cache misses a
//! worker sees with many flows, not a hot handful.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion};

use forwarder::dataplane::conn::{tcp_flags, Conn, ConnTable, ConnTableConfig, Direction};
use forwarder::dataplane::types::{Proto, Tuple, SECOND};

const N: u32 = 1 << 20;
const T0: u64 = 1_000 * SECOND;

fn conn(i: u32) -> Conn {
    let in_tuple = Tuple {
        proto: Proto::Tcp,
        src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        sport: 10_000 + (i % 50_000) as u16,
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        dport: 80,
    };
    let out_tuple = Tuple {
        proto: Proto::Tcp,
        src: IpAddr::V4(Ipv4Addr::new(10, 200, 0, (i % 8) as u8)),
        sport: 8080,
        dst: IpAddr::V4(Ipv4Addr::from(0x6400_0000 + i / 64_000)),
        dport: 1025 + (i % 64_000) as u16,
    };
    Conn::new(in_tuple, out_tuple)
}

/// A full table of `N` connections.
fn full_table() -> ConnTable {
    let mut t = ConnTable::new(ConnTableConfig::new(N), T0).expect("capacity is valid");
    for i in 0..N {
        t.insert(conn(i), T0).expect("table sized for N");
    }
    t
}

/// Visits 0..N in a scattered order (an odd multiplier is a permutation mod 2^20).
fn scatter(k: u32) -> u32 {
    k.wrapping_mul(0x9e37_79b1) & (N - 1)
}

fn benches(c: &mut Criterion) {
    let mut t = full_table();
    let keys: Vec<Tuple> = (0..N).map(|i| conn(scatter(i)).in_tuple).collect();
    let ids: Vec<_> = keys
        .iter()
        .map(|k| t.lookup(k).expect("inserted").0)
        .collect();

    let mut k = 0usize;
    c.bench_function("conn/lookup_hit_1M", |b| {
        b.iter(|| {
            k = (k + 1) & (N as usize - 1);
            black_box(t.lookup(black_box(&keys[k])))
        })
    });

    let mut k = 0u32;
    c.bench_function("conn/lookup_miss_1M", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            black_box(t.lookup(black_box(&conn(N + (k & (N - 1))).in_tuple)))
        })
    });

    let mut k = 0usize;
    let mut now = T0;
    c.bench_function("conn/touch_1M", |b| {
        b.iter(|| {
            k = (k + 1) & (N as usize - 1);
            now += 1_000;
            black_box(t.touch(ids[k], Direction::Inbound, tcp_flags::ACK, now))
        })
    });

    // Room for the inserted connection: drop one.
    let victim = ids[0];
    t.remove(victim).expect("live");
    let mut k = 0u32;
    c.bench_function("conn/insert_remove_1M", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            let c = conn(N + (k & (N - 1)));
            if let Ok(id) = t.insert(black_box(c), now) {
                black_box(t.remove(id).is_ok());
            }
        })
    });
}

criterion_group!(conn_benches, benches);
criterion_main!(conn_benches);
