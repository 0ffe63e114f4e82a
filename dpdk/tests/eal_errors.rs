//! Unknown devices, a second EAL and unsupported features give error
//! values carrying DPDK's reason, never a panic.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use dpdk::flow::{FlowMatch, FlowRule, L4Proto};
use dpdk::{ringport, Eal, Error, Mempool, Port, PortConfig, PortId};

#[test]
fn errors_are_values_with_reasons() {
    // Not initialised yet: DPDK objects are refused.
    assert!(matches!(
        Mempool::with_defaults("early", 63),
        Err(Error::InvalidArgument(_))
    ));

    let eal = common::base("errors")
        .init()
        .expect("EAL init after a bad try");
    assert!(matches!(
        Eal::builder().init(),
        Err(Error::EalAlreadyInitialised)
    ));

    // An unknown driver, hot-plugged.
    match eal.add_vdev("net_nosuchdriver0", "") {
        Err(Error::Dpdk { op, reason, .. }) => {
            assert_eq!(op, "rte_vdev_init");
            assert!(!reason.is_empty());
        }
        other => panic!("unknown vdev accepted: {other:?}"),
    }
    // A known driver with devargs it does not accept.
    assert!(eal.add_vdev("net_null9", "nosuchkey=1").is_err());
    // A good one works and shows up among the ports.
    let null = eal.add_vdev("net_null1", "").expect("net_null hot plug");
    assert!(eal.ports().contains(&null));

    // No such port.
    assert!(Port::open(PortId(200)).is_err());
    assert!(Port::by_name("net_nothere").is_err());

    // Queue counts beyond what the device allows.
    let pool = Mempool::with_defaults("errors_pool", 1023).expect("pool");
    let id = ringport::loopback("net_ringerr", 2, 256).expect("ring port");
    let mut port = Port::open(id).expect("open");
    let max = port.info().expect("info").max_rx_queues;
    assert!(matches!(
        port.configure(&PortConfig::new(max + 1), &pool),
        Err(Error::InvalidArgument(_))
    ));
    let (_rx, _tx) = port
        .configure(&PortConfig::new(2), &pool)
        .expect("configure");
    port.start().expect("start");

    // net_ring has no RSS and no flow engine: both are refused with a reason, so a
    // caller can fall back.
    assert!(port.reta().is_err(), "net_ring has no RETA");
    let m = FlowMatch {
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        l4: Some((L4Proto::Tcp, 1, 0x3)),
    };
    match FlowRule::create(id, &m, 1) {
        Err(Error::FlowRefused {
            port: p, reason, ..
        }) => {
            assert_eq!(p, id.0);
            assert!(!reason.is_empty());
        }
        other => panic!("net_ring accepted a flow rule: {other:?}"),
    }
}
