//! The oracle's Maglev table (written from the paper and the forwarder's documented
//! choices: stable hash, names, turn order, weighted quotas) picks the same real server
//! as the forwarder's scheduler for every flow. The oracle does not use the forwarder;
//! this test is where the two implementations meet.

use std::net::{IpAddr, SocketAddr};

use forwarder::dataplane::sched::{Backend, SchedKind, Scheduler};
use forwarder::dataplane::types::{Proto, Tuple};
use harness::checks::{maglev_flow_hash, MaglevTable, MAGLEV_TABLE_SIZE};
use proptest::prelude::*;

fn servers(weights: &[u32], v6: bool) -> Vec<(SocketAddr, u32)> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let ip: IpAddr = if v6 {
                format!("2001:db8:2::{:x}", i + 16).parse().unwrap()
            } else {
                format!("192.168.{}.{}", i / 200, 10 + i % 200)
                    .parse()
                    .unwrap()
            };
            (SocketAddr::new(ip, 8000 + i as u16), w)
        })
        .collect()
}

fn forwarder_scheduler(backends: &[(SocketAddr, u32)]) -> Scheduler {
    let list: Vec<Backend> = backends
        .iter()
        .map(|&(addr, weight)| Backend { addr, weight })
        .collect();
    Scheduler::new(
        SchedKind::Maglev {
            table_size: MAGLEV_TABLE_SIZE,
        },
        &list,
    )
    .unwrap()
}

fn agree(weights: &[u32], v6: bool, flows: impl Iterator<Item = (IpAddr, u16, u16, bool)>) {
    let backends = servers(weights, v6);
    let ours = MaglevTable::new(MAGLEV_TABLE_SIZE, &backends).unwrap();
    let mut theirs = forwarder_scheduler(&backends);
    let vip: IpAddr = if v6 {
        "2001:db8::130".parse().unwrap()
    } else {
        "10.0.0.130".parse().unwrap()
    };
    for (client, sport, dport, tcp) in flows {
        let proto = if tcp { Proto::Tcp } else { Proto::Udp };
        let tuple = Tuple {
            proto,
            src: client,
            sport,
            dst: vip,
            dport,
        };
        let hash = maglev_flow_hash(proto.number(), client, sport, vip, dport);
        assert_eq!(
            Some(ours.pick(hash)),
            theirs.pick(&tuple),
            "{tuple:?} with weights {weights:?}"
        );
    }
}

#[test]
fn the_standard_captures_weights_agree() {
    let v4 = |i: u32| IpAddr::from([172, 16, (i >> 8) as u8, i as u8]);
    agree(
        &[1, 2, 3, 4],
        false,
        (0..5000u32).map(|i| (v4(i), 1024 + i as u16, 53, false)),
    );
    let v6 = |i: u32| -> IpAddr { format!("2001:db8:c3::{i:x}").parse().unwrap() };
    agree(
        &[1, 1, 1],
        true,
        (0..2000u32).map(|i| (v6(i), 40000 + i as u16, 443, true)),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_weights_and_flows_agree(
        weights in prop::collection::vec(0u32..6, 1..9),
        flows in prop::collection::vec((any::<[u8; 4]>(), any::<u16>(), any::<u16>(), any::<bool>()), 64),
    ) {
        prop_assume!(weights.iter().any(|&w| w > 0));
        agree(
            &weights,
            false,
            flows.into_iter().map(|(a, s, d, t)| (IpAddr::from(a), s, d, t)),
        );
    }
}
