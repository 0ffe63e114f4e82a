//! Next-hop resolution through the real runtime on a net_ring port: the port names its
//! gateway by address only and `[neighbours] real_servers` is on, so the master must ARP
//! for the gateway and both real servers, learn their MACs from the replies, and the
//! workers must then send frames to each real server at its own MAC and everything else
//! (replies to clients) at the gateway's. `ctl stats` lists the next hops it resolved.

mod ring;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ring::rs;

const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
const RS10_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x10];
const RS11_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x11];

#[test]
fn gateway_and_real_servers_are_resolved_by_arp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = ring::start_with(
        dir.path(),
        "neigh",
        "rss",
        &format!("gateway = \"{GW}\""),
        "[neighbours]\nreal_servers = true\n",
    );
    ring::run(setup, |mut d| {
        d.neighbours.insert(GW, GW_MAC);
        d.neighbours.insert(rs(10), RS10_MAC);
        d.neighbours.insert(rs(11), RS11_MAC);
        d.wait_ready();
        // Until every next hop is resolved, answer ARP.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            d.serve_arp(Duration::from_millis(50));
            let stats = d.stats();
            let hops = stats["neighbours"].as_array().expect("neighbours").clone();
            if hops.len() == 3 && hops.iter().all(|h| h["mac"].is_string()) {
                let mac_of = |a: Ipv4Addr| {
                    hops.iter()
                        .find(|h| h["addr"] == a.to_string())
                        .map(|h| h["mac"].as_str().unwrap_or("").to_owned())
                };
                assert_eq!(mac_of(GW).as_deref(), Some("02:00:00:00:0a:01"));
                assert_eq!(mac_of(rs(10)).as_deref(), Some("02:00:00:00:0a:10"));
                assert_eq!(mac_of(rs(11)).as_deref(), Some("02:00:00:00:0a:11"));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "next hops not resolved: {hops:?}; ARP requests seen: {:?}",
                d.arp_requests
            );
        }
        for target in [GW, rs(10), rs(11)] {
            assert!(d.arp_requests.get(&target).copied().unwrap_or(0) >= 1);
        }
        // Traffic: to the servers at their own MACs, to the clients at the gateway's.
        d.gateway_mac = GW_MAC;
        d.rs_macs.insert(rs(10), RS10_MAC);
        d.rs_macs.insert(rs(11), RS11_MAC);
        let conns = d.open(16);
        d.round(&conns, 0);
        assert!(
            conns.iter().any(|&i| d.conns[i].rs == rs(10))
                && conns.iter().any(|&i| d.conns[i].rs == rs(11)),
            "both servers reached"
        );
    });
}
