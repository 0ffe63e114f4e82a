//! Maglev tables are immutable snapshots shared by every worker: the runtime builds them
//! on worker 0 and the others adopt the same snapshot (at start and for every change);
//! a worker that stops using one hands it back (`take_retired`) instead of freeing it,
//! so the last reference — and the memory — goes with the master, after every worker
//! has moved on. Sharing changes no scheduling decision.

mod common;

use common::{config, rs, sa, FNAT4_TCP};
use forwarder::dataplane::config::{ConfigChange, ServiceKey};
use forwarder::dataplane::sched::maglev::Maglev;
use forwarder::dataplane::sched::SchedKind;
use forwarder::dataplane::types::Proto;
use forwarder::dataplane::Worker;

const WORKERS: u16 = 4;

fn maglev_config(worker: u16) -> forwarder::dataplane::config::DataplaneConfig {
    let mut cfg = config(worker, WORKERS);
    // Services with the same real servers would have equal tables, and equal tables are
    // one snapshot too (adoption goes by content): keep one service per server set so
    // that the counts below are per service.
    let mut seen = Vec::new();
    cfg.services.retain(|s| {
        let set: Vec<_> = s.real_servers.iter().map(|r| r.addr).collect();
        let new = !seen.contains(&set);
        seen.push(set);
        new
    });
    for s in &mut cfg.services {
        s.sched = SchedKind::Maglev { table_size: 65537 };
        let first = s.real_servers[0];
        // A second server in the same family, so the tables are not trivial.
        let mut second = first;
        second.addr.set_port(first.addr.port().wrapping_add(1));
        s.real_servers.push(second);
    }
    cfg
}

fn key() -> ServiceKey {
    let v = sa(FNAT4_TCP);
    ServiceKey {
        vip: v.ip(),
        vport: v.port(),
        proto: Proto::Tcp,
    }
}

#[test]
fn workers_share_one_snapshot_per_service_and_retire_through_the_master() {
    // Start: worker 0 builds, the others adopt.
    let mut workers = vec![Worker::new(maglev_config(0)).expect("worker 0")];
    let tables = workers[0].maglev_tables();
    assert_eq!(
        tables.len(),
        maglev_config(0).services.len(),
        "one per service"
    );
    for w in 1..WORKERS {
        workers.push(Worker::new_sharing(maglev_config(w), &tables).expect("worker"));
    }
    for w in &workers[1..] {
        let theirs = w.maglev_tables();
        assert_eq!(theirs.len(), tables.len());
        for (a, b) in theirs.iter().zip(&tables) {
            assert!(a.shares_with(b), "worker {} holds a copy", w.id());
        }
    }
    let old: Vec<Maglev> = tables.clone();
    drop(tables);
    // Each old snapshot: one holder per worker, plus the clone kept here.
    assert!(old.iter().all(|m| m.holders() == usize::from(WORKERS) + 1));

    // A change, applied as the master does: worker 0 first, the others offered its tables.
    let change = ConfigChange::AddRealServer {
        service: key(),
        rs: rs("192.168.1.99:8080"),
    };
    workers[0].apply(change.clone()).expect("worker 0 applies");
    let offered = workers[0].maglev_tables();
    let mut retired = workers[0].take_retired();
    for w in &mut workers[1..] {
        w.apply_shared(change.clone(), &offered).expect("applies");
        retired.extend(w.take_retired());
    }
    let changed = old
        .iter()
        .position(|m| !offered.iter().any(|n| n.shares_with(m)))
        .expect("the changed service got a new snapshot");
    // Every worker handed its reference to the changed service's old snapshot back.
    assert_eq!(
        retired
            .iter()
            .filter(|m| m.shares_with(&old[changed]))
            .count(),
        usize::from(WORKERS)
    );
    // The new snapshot is shared, and equal to what building it afresh gives.
    for w in &workers {
        for t in w.maglev_tables() {
            assert!(
                offered.iter().any(|o| o.shares_with(&t)),
                "worker {} built a copy",
                w.id()
            );
        }
    }
    // Until the retired references go, the old table lives; then only this test's clone.
    assert_eq!(old[changed].holders(), usize::from(WORKERS) + 1);
    drop(retired);
    assert_eq!(
        old[changed].holders(),
        1,
        "freed with the master's last reference"
    );

    // Removing the service retires its snapshot the same way.
    let remove = ConfigChange::RemoveService(key());
    let mut retired = Vec::new();
    for w in &mut workers {
        w.apply_shared(remove.clone(), &[]).expect("removes");
        retired.extend(w.take_retired());
    }
    assert_eq!(retired.len(), usize::from(WORKERS));
    assert!(retired
        .iter()
        .all(|m| m.holders() == usize::from(WORKERS) + 1));
}

#[test]
fn an_offer_that_does_not_match_is_not_adopted() {
    let w0 = Worker::new(maglev_config(0)).expect("worker 0");
    // Worker 1 has different weights for one service: it must build its own table.
    let mut cfg = maglev_config(1);
    cfg.services[0].real_servers[0].weight = 5;
    let w1 = Worker::new_sharing(cfg, &w0.maglev_tables()).expect("worker 1");
    let (t0, t1) = (w0.maglev_tables(), w1.maglev_tables());
    assert!(!t1[0].shares_with(&t0[0]), "different inputs, own table");
    assert!(t1[0] != t0[0]);
    assert!(t1[1].shares_with(&t0[1]), "identical inputs, shared");
}
