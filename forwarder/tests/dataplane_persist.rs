//! Persistence per client address (LVS `-p`): stickiness across connections from one
//! client under rr (which would otherwise rotate), expiry after the timeout (reset by each
//! new connection), a removed or quiesced real server, a full table.

mod common;

use std::net::SocketAddr;

use forwarder::dataplane::config::{ConfigChange, DataplaneConfig, Mode, ServiceKey};
use forwarder::dataplane::types::{Nanos, Proto, SECOND};
use forwarder::dataplane::verdict::Verdict;
use forwarder::dataplane::worker::Worker;

use common::*;

const VIP: &str = "10.0.0.110:80";
const VIP6: &str = "[2001:db8::110]:80";
const RSS: [&str; 3] = [
    "192.168.1.50:8080",
    "192.168.1.51:8080",
    "192.168.1.52:8080",
];
const RSS6: [&str; 3] = [
    "[2001:db8:1::50]:8080",
    "[2001:db8:1::51]:8080",
    "[2001:db8:1::52]:8080",
];
const TIMEOUT: Nanos = 60 * SECOND;

fn key(vip: &str) -> ServiceKey {
    let v = sa(vip);
    ServiceKey {
        vip: v.ip(),
        vport: v.port(),
        proto: Proto::Tcp,
    }
}

/// The reference configuration plus two rr services of three servers each (v4 and v6),
/// persistent for `persistence`.
fn cfg(persistence: Option<Nanos>) -> DataplaneConfig {
    let mut c = config(0, 1);
    for (vip, rss) in [(VIP, &RSS), (VIP6, &RSS6)] {
        let mut s = service(vip, Proto::Tcp, Mode::FullNat, rss, false);
        s.persistence = persistence;
        c.services.push(s);
    }
    c
}

/// Opens a connection from `client` to `vip` with a SYN at `now`; returns the real server
/// the balancer chose.
fn open(w: &mut Worker, now: Nanos, client: SocketAddr, vip: &str) -> SocketAddr {
    let syn = tcp_in(client, sa(vip), TCP_SYN, 1000, 0, &[], b"");
    let (v, out) = run(w, now, &syn, 0);
    assert_eq!(v, Verdict::Tx { port: 1 }, "{:?}", w.counters().drops);
    inspect(&out).dst
}

fn client(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, last], port))
}

#[test]
fn one_client_sticks_to_one_server_where_rr_would_rotate() {
    // Without persistence, rr rotates one client's connections over the servers.
    let mut w = Worker::new(cfg(None)).expect("config");
    let picked: Vec<_> = (0..6)
        .map(|i| open(&mut w, SECOND, client(7, 40_000 + i), VIP))
        .collect();
    assert_ne!(picked[0], picked[1]);
    assert_ne!(picked[1], picked[2]);

    // With it, every connection of one client goes to the first one's server, while rr
    // still rotates between clients.
    let mut w = Worker::new(cfg(Some(TIMEOUT))).expect("config");
    for (vip, c7, c8) in [
        (VIP, client(7, 0), client(8, 0)),
        (VIP6, sa("[2001:db8:9::7]:0"), sa("[2001:db8:9::8]:0")),
    ] {
        let at = |port: u16, c: SocketAddr| SocketAddr::new(c.ip(), port);
        let first = open(&mut w, SECOND, at(40_000, c7), vip);
        let other = open(&mut w, SECOND, at(40_000, c8), vip);
        assert_ne!(first, other, "rr moves on for a new client");
        for i in 1..50u16 {
            let now = SECOND + Nanos::from(i) * SECOND / 10;
            assert_eq!(open(&mut w, now, at(40_000 + i, c7), vip), first);
            assert_eq!(open(&mut w, now, at(40_000 + i, c8), vip), other);
        }
    }
    assert_eq!(w.counters().persist_hits, 2 * 2 * 49);
    assert_eq!(w.counters().persist_full, 0);
}

#[test]
fn entry_expires_after_the_timeout_counted_from_the_last_connection() {
    let mut w = Worker::new(cfg(Some(TIMEOUT))).expect("config");
    let c = |p| client(7, p);
    let first = open(&mut w, SECOND, c(40_000), VIP);
    // Each new connection restarts the timeout: 50 s steps stay within it.
    let mut now = SECOND;
    for i in 1..4 {
        now += 50 * SECOND;
        assert_eq!(open(&mut w, now, c(40_000 + i), VIP), first);
    }
    // Just before the deadline: still there; at it: gone, rr picks the next server.
    assert_eq!(open(&mut w, now + TIMEOUT - 1, c(40_010), VIP), first);
    now += TIMEOUT - 1;
    let after = open(&mut w, now + TIMEOUT, c(40_011), VIP);
    assert_ne!(after, first);
    // The new choice is remembered in turn.
    assert_eq!(open(&mut w, now + TIMEOUT + 1, c(40_012), VIP), after);
}

#[test]
fn removed_or_quiesced_server_is_replaced() {
    let mut w = Worker::new(cfg(Some(TIMEOUT))).expect("config");
    let c = |p| client(7, p);
    let first = open(&mut w, SECOND, c(40_000), VIP);
    assert_eq!(open(&mut w, SECOND, c(40_001), VIP), first);

    // Weight 0: the entry is there but its server takes no new connections.
    w.apply(ConfigChange::SetWeight {
        service: key(VIP),
        addr: first,
        weight: 0,
    })
    .expect("set weight");
    let second = open(&mut w, SECOND, c(40_002), VIP);
    assert_ne!(second, first);
    assert_eq!(w.counters().persist_rescheduled, 1);
    // The new server is remembered, and restoring the weight does not move the client back.
    w.apply(ConfigChange::SetWeight {
        service: key(VIP),
        addr: first,
        weight: 1,
    })
    .expect("set weight");
    assert_eq!(open(&mut w, SECOND, c(40_003), VIP), second);

    // Removal forgets the entries that name it, even if its slot goes to a new server.
    w.apply(ConfigChange::RemoveRealServer {
        service: key(VIP),
        addr: second,
    })
    .expect("remove");
    let third = open(&mut w, SECOND, c(40_004), VIP);
    assert_ne!(third, second);
    assert_eq!(open(&mut w, SECOND, c(40_005), VIP), third);
}

#[test]
fn full_table_falls_back_to_the_scheduler_and_counts() {
    // Four entries: one bucket, so the fifth client finds it full.
    let mut c = cfg(Some(TIMEOUT));
    c.persist_capacity = 4;
    let mut w = Worker::new(c).expect("config");
    for i in 0..4 {
        open(&mut w, SECOND, client(10 + i, 40_000), VIP);
    }
    assert_eq!(w.counters().persist_full, 0);
    let extra = client(99, 0);
    let picked: Vec<_> = (0..3)
        .map(|i| open(&mut w, SECOND, SocketAddr::new(extra.ip(), 40_000 + i), VIP))
        .collect();
    assert_eq!(w.counters().persist_full, 3);
    // Not remembered: rr rotates it over every server.
    assert_ne!(picked[0], picked[1]);
    assert_ne!(picked[1], picked[2]);
    // The remembered clients are unaffected.
    let first = open(&mut w, SECOND, client(10, 40_001), VIP);
    assert_eq!(open(&mut w, SECOND, client(10, 40_002), VIP), first);
    // Once the others' entries expire, the extra client is remembered.
    let later = SECOND + TIMEOUT + 1;
    let a = open(&mut w, later, SocketAddr::new(extra.ip(), 41_000), VIP);
    assert_eq!(
        open(&mut w, later, SocketAddr::new(extra.ip(), 41_001), VIP),
        a
    );
}

#[test]
fn services_without_persistence_are_unchanged() {
    let mut w = Worker::new(cfg(None)).expect("config");
    for i in 0..10 {
        open(&mut w, SECOND, client(7, 40_000 + i), VIP);
    }
    let c = w.counters();
    assert_eq!(
        (c.persist_hits, c.persist_full, c.persist_rescheduled),
        (0, 0, 0)
    );
}

#[test]
fn removing_a_service_forgets_its_clients() {
    let mut w = Worker::new(cfg(Some(TIMEOUT))).expect("config");
    let first = open(&mut w, SECOND, client(7, 40_000), VIP);
    let mut s = service(VIP, Proto::Tcp, Mode::FullNat, &RSS, false);
    s.persistence = Some(TIMEOUT);
    w.apply(ConfigChange::RemoveService(key(VIP)))
        .expect("remove");
    w.apply(ConfigChange::AddService(s)).expect("add");
    // A fresh rr starts at the first server; the old entry does not apply.
    let hits = w.counters().persist_hits;
    let again = open(&mut w, SECOND, client(7, 40_001), VIP);
    assert_eq!(w.counters().persist_hits, hits);
    assert_eq!(again, sa(RSS[0]));
    let _ = first;
}
