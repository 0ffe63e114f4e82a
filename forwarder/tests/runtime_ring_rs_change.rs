//! The real runtime with two workers on a net_ring port, RSS-aware local ports: real
//! servers added and removed through the control socket while connections carry traffic.
//! No established connection loses a packet, changes real server or local port, or moves
//! to another worker; new connections follow the new server set; and with steering right
//! no packet needs a redirect.

mod ring;

use ring::{drops, rs, worker_sum, RPORT, VIP, VPORT};

#[test]
fn real_servers_change_under_traffic_and_no_connection_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = ring::start(dir.path(), "rschg", "rss");
    let vip = format!("{VIP}:{VPORT}");
    let rs3 = format!("{}:{RPORT}", rs(12));
    let rs1 = format!("{}:{RPORT}", rs(10));
    ring::run(setup, move |mut d| {
        d.wait_ready();
        let first = d.open(40);
        let mut round = 0;
        for _ in 0..2 {
            d.round(&first, round);
            round += 1;
        }
        let all: Vec<usize> = (0..d.conns.len()).collect();
        assert!(
            first.iter().any(|&i| d.conns[i].rs == rs(10))
                && first.iter().any(|&i| d.conns[i].rs == rs(11)),
            "round robin used both servers"
        );

        // Add a server between two rounds of traffic; every old connection keeps going.
        d.ctl(&[
            "rs", "add", "--vip", &vip, "--proto", "tcp", "--rs", &rs3, "--weight", "1",
        ]);
        d.round(&all, round);
        round += 1;
        let second = d.open(30);
        assert!(
            second.iter().any(|&i| d.conns[i].rs == rs(12)),
            "new connections reach the added server"
        );
        let all: Vec<usize> = (0..d.conns.len()).collect();
        d.round(&all, round);
        round += 1;

        // Remove a server: its established connections run on (LVS keeps them until they
        // end unless expire_quiescent is set); new ones never go to it.
        let on_rs1 = all.iter().filter(|&&i| d.conns[i].rs == rs(10)).count();
        assert!(on_rs1 > 0, "some connections are on the server about to go");
        d.ctl(&["rs", "del", "--vip", &vip, "--proto", "tcp", "--rs", &rs1]);
        d.round(&all, round);
        round += 1;
        let third = d.open(30);
        assert!(
            third.iter().all(|&i| d.conns[i].rs != rs(10)),
            "no new connection goes to the removed server"
        );
        // A weight change, then everything once more.
        d.ctl(&[
            "rs", "edit", "--vip", &vip, "--proto", "tcp", "--rs", &rs3, "--weight", "3",
        ]);
        let all: Vec<usize> = (0..d.conns.len()).collect();
        d.round(&all, round);

        let stats = d.settled_stats();
        assert_eq!(
            stats["ports"][0]["steering"], "rss",
            "RSS-aware local ports in use"
        );
        assert_eq!(
            worker_sum(&stats, "redirects"),
            0,
            "steering right: no packet needed a redirect"
        );
        assert_eq!(drops(&stats), 0, "nothing dropped");
        assert_eq!(worker_sum(&stats, "conns_created"), d.conns.len() as u64);
        assert_eq!(
            worker_sum(&stats, "tx_packets"),
            d.checked,
            "every frame the workers sent was checked here"
        );
        let per_worker: Vec<usize> = (0..2u16)
            .map(|w| d.conns.iter().filter(|c| c.worker == w).count())
            .collect();
        assert!(
            per_worker.iter().all(|&n| n > 0),
            "both workers made connections: {per_worker:?}"
        );
    });
}
