//! Packets without a connection on the worker RSS gives them, whose connection lives on
//! another worker: a NAT real server's reply (no local port tells the owner) and ICMP
//! errors about a live connection. With `owner_rss` the worker computes the owner from the
//! client → VIP tuple (RSS model and queue → worker map of the clients' port) or from the
//! local port, and redirects; without it they are dropped as before.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use forwarder::dataplane::config::{DataplaneConfig, Mode, OwnerRss};
use forwarder::dataplane::rss::{HashTypes, Reta, RssKey, RssModel};
use forwarder::dataplane::types::{Proto, Tuple, SECOND};
use forwarder::dataplane::verdict::{DropReason, Verdict};
use forwarder::dataplane::worker::Worker;

use common::*;

/// Two queues, round-robin RETA of 128, queue q polled by worker q.
fn owner_rss(types: HashTypes) -> OwnerRss {
    OwnerRss {
        model: RssModel::new(
            RssKey::microsoft(),
            types,
            Reta::round_robin(128, 2).expect("reta"),
        ),
        queue_worker: vec![0, 1],
        reply_queue_worker: vec![0, 1],
    }
}

fn cfg(worker: u16, types: Option<HashTypes>) -> DataplaneConfig {
    let mut c = config(worker, 2);
    c.owner_rss = types.map(owner_rss);
    c
}

/// Workers 0 and 1 sharing one RETA (or no `owner_rss` at all with `None`).
fn pair(types: Option<HashTypes>) -> (Worker, Worker) {
    (
        Worker::new(cfg(0, types)).expect("worker 0"),
        Worker::new(cfg(1, types)).expect("worker 1"),
    )
}

fn queue_of(types: HashTypes, client: SocketAddr, vip: SocketAddr, proto: Proto) -> u16 {
    owner_rss(types).model.queue(&Tuple {
        proto,
        src: client.ip(),
        sport: client.port(),
        dst: vip.ip(),
        dport: vip.port(),
    })
}

/// A client whose client → `vip` tuple RSS gives queue `q`.
fn client_on(types: HashTypes, base: &str, vip: &str, proto: Proto, q: u16) -> SocketAddr {
    let base = sa(base);
    (0..1000u16)
        .map(|i| SocketAddr::new(base.ip(), base.port() + i))
        .find(|&c| queue_of(types, c, sa(vip), proto) == q)
        .expect("a client port for the queue")
}

fn strip(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

/// Creates a NAT TCP connection on worker 0 (SYN from `c`) and returns the real server's
/// SYN-ACK.
fn nat_conn_on_0(w0: &mut Worker, c: SocketAddr) -> Vec<u8> {
    let syn = tcp_in(c, sa(NAT4_TCP), TCP_SYN, 7, 0, &[], b"");
    let (v, out) = run(w0, SECOND, &syn, 0);
    assert_eq!(v, Verdict::Tx { port: 1 });
    assert_eq!(inspect(&out).dst, sa(RS_NAT4));
    tcp_out(sa(RS_NAT4), c, TCP_SYN | TCP_ACK, 5000, 8, &[], b"")
}

#[test]
fn nat_reply_on_the_wrong_worker_is_redirected_to_the_owner_and_forwarded_there() {
    let t = HashTypes::all();
    let (mut w0, mut w1) = pair(Some(t));
    let c = client_on(t, "172.16.0.9:62000", NAT4_TCP, Proto::Tcp, 0);
    let reply = nat_conn_on_0(&mut w0, c);

    let (v, out) = run(&mut w1, 2 * SECOND, &reply, 1);
    assert_eq!(v, Verdict::Redirect(0));
    assert_eq!(out, reply, "a redirected packet is untouched");
    assert_eq!(w1.counters().redirects, 1);
    assert_eq!(w1.counters().drop_count(DropReason::NotForUs), 0);
    assert_eq!(w1.conn_count(), 0);

    let (v, out) = run(&mut w0, 3 * SECOND, &reply, 1);
    assert_eq!(v, Verdict::Tx { port: 0 });
    let seen = inspect(&out);
    assert_eq!(seen.src, sa(NAT4_TCP), "source rewritten to the VIP");
    assert_eq!(seen.dst, c);
    assert_eq!((seen.src_mac, seen.dst_mac), (MAC0, GW0));
    assert_eq!(seen.ttl, 63);
    let tcp = seen.tcp.expect("tcp");
    assert!(tcp.syn && tcp.ack);
    assert_eq!((tcp.sequence_number, tcp.acknowledgment_number), (5000, 8));
    assert_eq!(w0.counters().redirects, 0);
}

#[test]
fn nat_reply_whose_computed_owner_is_this_worker_is_dropped_not_looped() {
    // RSS would give this client's packets to worker 1, but its SYN was handled by worker
    // 0 (say, during a RETA change): worker 1 is its own computed owner, so it drops.
    let t = HashTypes::all();
    let (mut w0, mut w1) = pair(Some(t));
    let c = client_on(t, "172.16.0.9:62000", NAT4_TCP, Proto::Tcp, 1);
    let reply = nat_conn_on_0(&mut w0, c);
    let (v, _) = run(&mut w1, 2 * SECOND, &reply, 1);
    assert_eq!(v, Verdict::Drop(DropReason::NotForUs));
    assert_eq!(w1.counters().redirects, 0);
}

#[test]
fn without_owner_rss_a_nat_reply_on_the_wrong_worker_is_dropped() {
    let t = HashTypes::all();
    let (mut w0, mut w1) = pair(None);
    let c = client_on(t, "172.16.0.9:62000", NAT4_TCP, Proto::Tcp, 0);
    let reply = nat_conn_on_0(&mut w0, c);
    let (v, _) = run(&mut w1, 2 * SECOND, &reply, 1);
    assert_eq!(v, Verdict::Drop(DropReason::NotForUs));
    assert_eq!(w1.counters().redirects, 0);
}

#[test]
fn redirects_follow_the_policy_switch() {
    let t = HashTypes::all();
    let mut c1 = cfg(1, Some(t));
    c1.policies.redirect_no_conn = false;
    let mut w1 = Worker::new(c1).expect("worker 1");
    let mut w0 = Worker::new(cfg(0, Some(t))).expect("worker 0");
    let c = client_on(t, "172.16.0.9:62000", NAT4_TCP, Proto::Tcp, 0);
    let reply = nat_conn_on_0(&mut w0, c);
    let (v, _) = run(&mut w1, 2 * SECOND, &reply, 1);
    assert_eq!(v, Verdict::Drop(DropReason::NotForUs));
}

/// The packet the balancer sent to the client (VIP → client), as an ICMP error quotes it.
fn sent_to_client(vip: SocketAddr, c: SocketAddr) -> Vec<u8> {
    strip(&tcp_full(
        MAC0,
        GW0,
        vip,
        c,
        TCP_SYN | TCP_ACK,
        5000,
        8,
        &[],
        b"",
        63,
    ))
}

#[test]
fn icmp_error_from_the_client_side_on_the_wrong_worker_is_redirected() {
    let t = HashTypes::all();
    let (mut w0, mut w1) = pair(Some(t));
    let c = client_on(t, "198.51.100.7:40000", NAT4_TCP, Proto::Tcp, 0);
    let reply = nat_conn_on_0(&mut w0, c);
    assert_eq!(
        run(&mut w0, 2 * SECOND, &reply, 1).0,
        Verdict::Tx { port: 0 }
    );
    let vip = sa(NAT4_TCP);
    let err = icmp_error(
        ip("198.51.100.1"),
        vip.ip(),
        3,
        4,
        1400,
        &sent_to_client(vip, c),
        MAC0,
    );

    let (v, out) = run(&mut w1, 3 * SECOND, &err, 0);
    assert_eq!(v, Verdict::Redirect(0));
    assert_eq!(out, err);
    assert_eq!(w1.counters().drop_count(DropReason::NoConnection), 0);

    let (v, out) = run(&mut w0, 4 * SECOND, &err, 0);
    assert_eq!(v, Verdict::Tx { port: 1 });
    assert_eq!(w0.counters().icmp_translated, 1);
    let seen = inspect(&out);
    assert_eq!(seen.dst.ip(), sa(RS_NAT4).ip(), "to the real server");
    assert_eq!(seen.icmp.map(|(ty, _)| ty), Some(3));

    // Without owner_rss: dropped as before.
    let (mut w0, mut w1) = pair(None);
    let reply = nat_conn_on_0(&mut w0, c);
    assert_eq!(
        run(&mut w0, 2 * SECOND, &reply, 1).0,
        Verdict::Tx { port: 0 }
    );
    let (v, _) = run(&mut w1, 3 * SECOND, &err, 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoConnection));
}

#[test]
fn icmp_error_from_the_real_server_side_of_a_nat_conn_is_redirected() {
    let t = HashTypes::all();
    let (mut w0, mut w1) = pair(Some(t));
    let c = client_on(t, "198.51.100.7:40000", NAT4_TCP, Proto::Tcp, 0);
    let _ = nat_conn_on_0(&mut w0, c);
    // Port unreachable from the real server, quoting client → RS as the balancer sent it.
    let sent = strip(&tcp_full(
        MAC1,
        GW1,
        c,
        sa(RS_NAT4),
        TCP_SYN,
        7,
        0,
        &[],
        b"",
        63,
    ));
    let err = icmp_error(sa(RS_NAT4).ip(), c.ip(), 3, 3, 0, &sent, MAC1);
    assert_eq!(run(&mut w1, 2 * SECOND, &err, 1).0, Verdict::Redirect(0));
    assert_eq!(run(&mut w0, 3 * SECOND, &err, 1).0, Verdict::Tx { port: 0 });
}

#[test]
fn icmpv6_packet_too_big_about_a_fullnat_conn_is_redirected_addresses_only() {
    // The pcaps/ipv6 capture #76 case: addresses-only hashing, PTB from a router on the
    // client side about VIP → client.
    let t = HashTypes::ip_only();
    let (mut w0, mut w1) = pair(Some(t));
    let vip = sa(FNAT6_TCP);
    let base = u128::from("2001:db8:c0::c9".parse::<Ipv6Addr>().expect("addr"));
    let c = (0..64u128)
        .map(|i| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(base + i)), 41000))
        .find(|&c| queue_of(t, c, vip, Proto::Tcp) == 0)
        .expect("a client RSS gives worker 0");
    let syn = tcp_in(c, vip, TCP_SYN, 7, 0, &[], b"");
    let (v, out) = run(&mut w0, SECOND, &syn, 0);
    assert_eq!(v, Verdict::Tx { port: 1 });
    let o = inspect(&out);
    let synack = tcp_out(o.dst, o.src, TCP_SYN | TCP_ACK, 5000, 8, &[], b"");
    assert_eq!(run(&mut w0, SECOND, &synack, 1).0, Verdict::Tx { port: 0 });
    let err = icmp_error(
        ip("2001:db8:c0::fffe"),
        vip.ip(),
        2,
        0,
        1280,
        &sent_to_client(vip, c),
        MAC0,
    );
    assert_eq!(run(&mut w1, 2 * SECOND, &err, 0).0, Verdict::Redirect(0));
    assert_eq!(run(&mut w0, 3 * SECOND, &err, 0).0, Verdict::Tx { port: 1 });
    assert_eq!(w0.counters().icmp_translated, 1);
}

#[test]
fn icmp_error_about_a_fullnat_local_port_goes_to_the_port_owner() {
    // Partition policy: the local port tells the owner (`lport & mask`), no owner_rss
    // needed for it.
    let (mut w0, mut w1) = pair(None);
    let c = sa("198.51.100.7:40000");
    let syn = tcp_in(c, sa(FNAT4_TCP), TCP_SYN, 7, 0, &[], b"");
    let (v, out) = run(&mut w0, SECOND, &syn, 0);
    assert_eq!(v, Verdict::Tx { port: 1 });
    let o = inspect(&out);
    assert_eq!(o.src.port() & 1, 0, "worker 0's local port");
    let sent = strip(&tcp_full(
        MAC1,
        GW1,
        o.src,
        o.dst,
        TCP_SYN,
        7,
        0,
        &[],
        b"",
        63,
    ));
    let err = icmp_error(ip("192.168.1.254"), o.src.ip(), 3, 4, 1400, &sent, MAC1);
    assert_eq!(run(&mut w1, 2 * SECOND, &err, 1).0, Verdict::Redirect(0));
    assert_eq!(run(&mut w0, 3 * SECOND, &err, 1).0, Verdict::Tx { port: 0 });
}

/// Runs `pkt` (received on `port`) from worker `at` through the redirects; the final
/// verdict and worker.
fn walk(ws: &mut [Worker], pkt: &[u8], port: u16, mut at: usize) -> (Verdict, usize) {
    for _ in 0..4 {
        match run(&mut ws[at], SECOND, pkt, port).0 {
            Verdict::Redirect(to) => at = usize::from(to),
            v => return (v, at),
        }
    }
    panic!("redirect loop");
}

#[test]
fn a_real_server_of_several_nat_services_reaches_the_owner_and_never_loops() {
    // The same real server behind two more NAT VIPs whose client tuples hash to
    // different workers: the owners are tried in ascending order.
    let t = HashTypes::all();
    // Toeplitz is linear: whether two VIPs' queues differ does not depend on the client,
    // so look for a second VIP that differs, then a client.
    let first = sa("10.0.0.111:80");
    let (second, c) = (112..200u8)
        .map(|b| SocketAddr::new(IpAddr::from([10, 0, 0, b]), 80))
        .find_map(|v| {
            (50000..50100u16)
                .map(|p| SocketAddr::new(ip("172.16.0.9"), p))
                .find(|&c| {
                    queue_of(t, c, first, Proto::Tcp) == 1 && queue_of(t, c, v, Proto::Tcp) == 0
                })
                .map(|c| (v, c))
        })
        .expect("a client hashing differently per VIP");
    let mk = |w: u16| {
        let mut cfg = cfg(w, Some(t));
        for v in [first, second] {
            cfg.services.push(service(
                &v.to_string(),
                Proto::Tcp,
                Mode::Nat,
                &[RS_NAT4],
                false,
            ));
        }
        Worker::new(cfg).expect("worker")
    };
    let mut ws = [mk(0), mk(1)];
    // The connection through `first` lives on worker 1 (its client tuple's queue).
    let syn = tcp_in(c, first, TCP_SYN, 7, 0, &[], b"");
    assert_eq!(walk(&mut ws, &syn, 0, 1), (Verdict::Tx { port: 1 }, 1));
    let reply = tcp_out(sa(RS_NAT4), c, TCP_SYN | TCP_ACK, 5000, 8, &[], b"");
    assert_eq!(walk(&mut ws, &reply, 1, 0), (Verdict::Tx { port: 0 }, 1));
    assert_eq!(ws[0].counters().redirects, 1);
    // A reply of no connection at all stops after the highest owner.
    let stray = tcp_out(sa(RS_NAT4), sa("172.16.0.10:9"), TCP_ACK, 1, 1, &[], b"");
    for start in [0, 1] {
        assert_eq!(
            walk(&mut ws, &stray, 1, start),
            (Verdict::Drop(DropReason::NotForUs), 1)
        );
    }
}
