//! Config parsing: the examples, the defaults, and one case per class of error with its
//! exact `file:line:column: field: message`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rstest::rstest;

use forwarder::control::config::{
    Config, ConfigError, DevArg, Device, LaddrConfig, MacAddr, Mode, PciAddr, PortConfig, Proto,
    QueueRef, RealServerConfig, RssConfig, RssHashType, RssKeySpec, Scheduler, SteeringMode,
    TcpTimeouts, UdpTimeouts, WorkerConfig, WorkerMap, DEFAULT_CONN_CAPACITY, DEFAULT_SOCKET,
};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

#[test]
fn every_example_config_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = Config::load(&path) {
                panic!("{e}");
            }
            n += 1;
        }
    }
    assert!(n >= 4, "only {n} example configs");
}

#[test]
fn fullnat_ring_example_has_the_expected_values() {
    let c = Config::load(&examples_dir().join("fullnat-ring.toml")).unwrap();

    assert_eq!(
        c.ports,
        vec![
            PortConfig {
                name: "client".into(),
                device: Device::Vdev {
                    name: "net_ring0".into(),
                    args: vec![],
                },
                rx_queues: 2,
                tx_queues: 2,
                mac: None,
                gateway_mac: Some(mac("02:00:00:00:00:01")),
                gateway: None,
                rss: RssConfig {
                    key: RssKeySpec::Symmetric,
                    hash_types: vec![
                        RssHashType::Ipv4,
                        RssHashType::Ipv4Tcp,
                        RssHashType::Ipv4Udp
                    ],
                    reta_size: Some(128),
                },
                checksum_offload: false,
            },
            PortConfig {
                name: "server".into(),
                device: Device::Vdev {
                    name: "net_ring1".into(),
                    args: vec![],
                },
                rx_queues: 2,
                tx_queues: 2,
                mac: Some(mac("02:00:00:00:01:02")),
                gateway_mac: Some(mac("02:00:00:00:00:02")),
                gateway: None,
                rss: RssConfig::default(),
                checksum_offload: false,
            },
        ]
    );
    assert_eq!(
        c.workers,
        WorkerMap::Explicit(vec![
            WorkerConfig {
                id: 0,
                lcore: 1,
                queues: vec![QueueRef { port: 0, rx: 0 }, QueueRef { port: 1, rx: 0 }],
            },
            WorkerConfig {
                id: 1,
                lcore: 2,
                queues: vec![QueueRef { port: 0, rx: 1 }, QueueRef { port: 1, rx: 1 }],
            },
        ])
    );
    assert_eq!(
        c.laddrs,
        vec![LaddrConfig {
            port: 1,
            addrs: vec![ip("192.168.100.200"), ip("192.168.100.201")],
        }]
    );
    assert_eq!(c.services.len(), 2);
    let web = &c.services[0];
    assert_eq!(web.vip, sa("10.0.0.1:80"));
    assert_eq!(web.proto, Proto::Tcp);
    assert_eq!(web.mode, Mode::FullNat);
    assert_eq!(web.scheduler, Scheduler::Maglev { table_size: 251 });
    assert!(web.toa);
    assert_eq!(web.persistence, None);
    assert_eq!(
        web.real_servers,
        vec![
            RealServerConfig {
                addr: sa("192.168.100.10:8080"),
                weight: 2,
                mac: None,
            },
            RealServerConfig {
                addr: sa("192.168.100.11:8080"),
                weight: 1,
                mac: None,
            },
        ]
    );
    let dns = &c.services[1];
    assert_eq!((dns.vip, dns.proto), (sa("10.0.0.1:53"), Proto::Udp));
    assert_eq!(dns.scheduler, Scheduler::Rr);
    assert_eq!(dns.persistence, Some(Duration::from_secs(300)));
    assert!(!dns.toa);
    assert_eq!(dns.real_servers[1].weight, 0);

    assert_eq!(c.steering.mode, SteeringMode::Rss);
    assert!(c.steering.redirect);
    assert_eq!(c.timeouts.tcp.established, Duration::from_secs(90));
    assert_eq!(c.timeouts.tcp.listen, Duration::from_secs(120));
    assert_eq!(c.timeouts.udp.normal, Duration::from_secs(300));
    assert_eq!(c.tables.conn_capacity, 65536);
    assert_eq!(c.tables.persist_capacity, 16384);
    assert_eq!(
        c.control.socket,
        PathBuf::from("/run/l4lab/forwarder-ring.sock")
    );
    assert_eq!(c.control.metrics, Some(sa("127.0.0.1:9900")));
    let trace = c.trace.as_ref().unwrap();
    assert_eq!(trace.path, PathBuf::from("results/trace-ring.pcapng"));
    assert_eq!(trace.max_packets, 10000);
    assert_eq!(c.eal_args[0], "-l");
    assert_eq!(c.worker_count(), 2);
    // An explicit map ignores the EAL's lcores.
    assert_eq!(c.workers(&[]).unwrap().len(), 2);
}

#[test]
fn other_examples_have_the_expected_values() {
    let c = Config::load(&examples_dir().join("nat-pcap.toml")).unwrap();
    assert_eq!(
        c.ports[0].device,
        Device::Vdev {
            name: "net_pcap0".into(),
            args: vec![
                DevArg {
                    key: "rx_pcap".into(),
                    value: "pcaps/nat-in.pcap".into(),
                },
                DevArg {
                    key: "tx_pcap".into(),
                    value: "results/nat-out.pcap".into(),
                },
            ],
        }
    );
    assert_eq!(c.services[0].mode, Mode::Nat);
    assert_eq!(c.services[0].real_servers[1].weight, 3);

    let c = Config::load(&examples_dir().join("dr-tunnel-pci.toml")).unwrap();
    assert_eq!(
        c.ports[0].device,
        Device::Pci {
            addr: PciAddr {
                domain: 0,
                bus: 0x3b,
                device: 0,
                function: 0,
            },
            args: vec![],
        }
    );
    assert_eq!(c.ports[0].rss.reta_size, Some(512));
    assert_eq!(c.workers, WorkerMap::Default);
    assert_eq!(c.services[0].mode, Mode::Dr);
    assert_eq!(
        c.services[0].real_servers[0].mac,
        Some(mac("0c:42:a1:00:00:10"))
    );
    assert_eq!(c.services[1].mode, Mode::Tunnel);
    assert_eq!(c.steering.mode, SteeringMode::Flow);
    let workers = c.workers(&[1, 2, 3, 4, 5]).unwrap();
    assert_eq!(workers.len(), 4);
    assert_eq!(workers[3].lcore, 4);
    assert_eq!(workers[3].queues, vec![QueueRef { port: 0, rx: 3 }]);
    let e = c.workers(&[1, 2]).unwrap_err();
    assert_eq!((e.needed, e.available), (4, 2));

    let c = Config::load(&examples_dir().join("nat64-fullnat-memif.toml")).unwrap();
    assert_eq!(c.services[0].vip, sa("[2001:db8::80]:80"));
    assert_eq!(
        c.services[0].scheduler,
        Scheduler::Maglev { table_size: 65537 }
    );
    assert_eq!(c.control.metrics, Some(sa("[::1]:9901")));
}

#[test]
fn defaults_are_applied() {
    let c = Config::parse(
        "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\n\n\
         [[service]]\nvip = \"10.0.0.1\"\nport = 80\nproto = \"tcp\"\nmode = \"nat\"\n\
         rs = [{ addr = \"10.1.0.1:80\" }]\n",
        "min.toml",
    )
    .unwrap();
    let p = &c.ports[0];
    assert_eq!((p.rx_queues, p.tx_queues), (1, 1));
    assert_eq!((p.mac, p.gateway_mac), (None, None));
    assert!(p.checksum_offload);
    assert_eq!(p.rss.key, RssKeySpec::Default);
    assert_eq!(p.rss.key.bytes()[..2], [0x6d, 0x5a]);
    assert_eq!(p.rss.hash_types, RssHashType::ALL.to_vec());
    assert_eq!(p.rss.reta_size, None);
    assert_eq!(c.workers, WorkerMap::Default);
    assert_eq!(
        c.workers(&[7]).unwrap(),
        vec![WorkerConfig {
            id: 0,
            lcore: 7,
            queues: vec![QueueRef { port: 0, rx: 0 }],
        }]
    );
    let s = &c.services[0];
    assert_eq!(s.scheduler, Scheduler::Wlc);
    assert!(!s.toa);
    assert_eq!(s.persistence, None);
    assert_eq!(s.real_servers[0].weight, 1);
    assert!(c.laddrs.is_empty());
    assert_eq!(c.steering.mode, SteeringMode::Auto);
    assert!(c.steering.redirect);
    assert_eq!(c.timeouts.tcp, TcpTimeouts::default());
    assert_eq!(c.timeouts.udp, UdpTimeouts::default());
    assert_eq!(c.timeouts.tcp.established, Duration::from_secs(90));
    assert_eq!(c.timeouts.udp.oneway, Duration::from_secs(60));
    assert_eq!(c.tables.conn_capacity, DEFAULT_CONN_CAPACITY);
    assert_eq!(c.control.socket, PathBuf::from(DEFAULT_SOCKET));
    assert_eq!(c.control.metrics, None);
    assert_eq!(c.trace, None);
    assert!(c.eal_args.is_empty());
}

#[test]
fn a_missing_file_is_a_read_error() {
    let e = Config::load(Path::new("/nonexistent/forwarder.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/forwarder.toml: cannot read the config file: "));
    assert_eq!(e.line(), None);
}

/// Three lines that make a valid port `p0`; cases append to it, so their lines start at 4.
const PORT: &str = "[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\n";
/// `PORT` plus a FULLNAT-ready IPv4 local address (lines 4-5).
const PORT_LADDR: &str =
    "[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\n[laddr]\np0 = [\"192.168.0.1\"]\n";
/// A service header and its required fields (4 lines, `mode` last, no real servers).
fn svc(vip: &str, port: u16, proto: &str, mode: &str) -> String {
    format!("[[service]]\nvip = \"{vip}\"\nport = {port}\nproto = \"{proto}\"\nmode = \"{mode}\"\n")
}

#[rstest]
// --- TOML level: syntax, unknown keys, types, missing fields.
#[case::syntax(
    format!("{PORT}rx_queues = \n"),
    "t.toml:4:13: syntax: invalid string; expected `\"`, `'`"
)]
#[case::unknown_top_level_key(
    format!("{PORT}[bogus]\nx = 1\n"),
    "t.toml:4:2: bogus: unknown field `bogus`, expected one of `port`, `worker`, `service`, `laddr`, `steering`, `timeouts`, `tables`, `control`, `trace`, `policies`, `fault`, `neighbours`, `eal`"
)]
#[case::unknown_port_key(
    format!("{PORT}rx_queue = 2\n"),
    "t.toml:4:1: port[0].rx_queue: unknown field `rx_queue`, expected one of `name`, `device`, `rx_queues`, `tx_queues`, `mac`, `gateway_mac`, `gateway`, `rss`, `checksum_offload`"
)]
#[case::unknown_rs_key(
    format!("{PORT}{}[[service.rs]]\naddr = \"10.1.0.1:80\"\nwieght = 2\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:11:1: service[0].rs[0].wieght: unknown field `wieght`, expected one of `addr`, `weight`, `mac`"
)]
#[case::wrong_type(
    format!("{PORT}rx_queues = \"two\"\n"),
    "t.toml:4:13: port[0].rx_queues: invalid type: string \"two\", expected i64"
)]
#[case::missing_field(
    "[[port]]\nname = \"p0\"\n".to_owned(),
    "t.toml:1:1: port[0]: missing field `device`"
)]
#[case::no_port(
    "[steering]\nmode = \"rss\"\n".to_owned(),
    "t.toml:1:1: port: no [[port]] section; the forwarder needs at least one port"
)]
// --- Ports.
#[case::bad_device(
    "[[port]]\nname = \"p0\"\ndevice = \"eth0\"\n".to_owned(),
    "t.toml:3:10: port[0].device: expected a PCI address (0000:3b:00.0) or a vdev name starting with net_ (net_ring0, net_pcap0,rx_pcap=in.pcap), got \"eth0\""
)]
#[case::bad_devarg(
    "[[port]]\nname = \"p0\"\ndevice = \"net_pcap0,rx_pcap\"\n".to_owned(),
    "t.toml:3:10: port[0].device: device argument \"rx_pcap\" is not of the form key=value"
)]
#[case::duplicate_port_name(
    format!("{PORT}[[port]]\nname = \"p0\"\ndevice = \"net_ring1\"\n"),
    "t.toml:5:8: port[1].name: port name \"p0\" is already used by port[0]"
)]
#[case::duplicate_device(
    format!("{PORT}[[port]]\nname = \"p1\"\ndevice = \"net_ring0,x=1\"\n"),
    "t.toml:6:10: port[1].device: device net_ring0 is already used by port[0]"
)]
#[case::zero_queues(
    format!("{PORT}rx_queues = 0\n"),
    "t.toml:4:13: port[0].rx_queues: must be at least 1, got 0"
)]
#[case::too_few_tx_queues(
    format!("{PORT}rx_queues = 4\ntx_queues = 2\n"),
    "t.toml:5:13: port[0].tx_queues: port p0 has 2 TX queues but each of the 4 workers needs one; set tx_queues = 4"
)]
#[case::multicast_mac(
    format!("{PORT}gateway_mac = \"01:00:5e:00:00:01\"\n"),
    "t.toml:4:15: port[0].gateway_mac: expected a unicast MAC address, got 01:00:5e:00:00:01 (group bit set)"
)]
#[case::multicast_gateway(
    format!("{PORT}gateway = \"224.0.0.1\"\n"),
    "t.toml:4:11: port[0].gateway: 224.0.0.1 cannot be a next hop: use a unicast address"
)]
#[case::bad_gateway(
    format!("{PORT}gateway = \"10.0.0\"\n"),
    "t.toml:4:11: port[0].gateway: expected an IP address, got \"10.0.0\""
)]
#[case::bad_mac(
    format!("{PORT}mac = \"02:00:00:00:00\"\n"),
    "t.toml:4:7: port[0].mac: expected a MAC address such as 02:00:00:00:00:01, got \"02:00:00:00:00\""
)]
#[case::short_rss_key(
    format!("{PORT}rss = {{ key = \"6d5a56da\" }}\n"),
    "t.toml:4:15: port[0].rss.key: an RSS key has 40 or 52 bytes, this one has 4"
)]
#[case::unknown_hash_type(
    format!("{PORT}rss = {{ hash_types = [\"ipv4\", \"ipv4-sctp\"] }}\n"),
    "t.toml:4:31: port[0].rss.hash_types[1]: expected one of ipv4, ipv4-tcp, ipv4-udp, ipv6, ipv6-tcp, ipv6-udp, got \"ipv4-sctp\""
)]
#[case::reta_not_power_of_two(
    format!("{PORT}rss = {{ reta_size = 100 }}\n"),
    "t.toml:4:21: port[0].rss.reta_size: expected a power of two (64, 128, 256, 512, …), got 100"
)]
// --- Workers.
#[case::worker_unknown_port(
    format!("{PORT}[[worker]]\nid = 0\nlcore = 1\nqueues = [{{ port = \"p9\", rx = 0 }}]\n"),
    "t.toml:7:20: worker[0].queues[0].port: no [[port]] is named \"p9\" (ports: p0)"
)]
#[case::worker_unknown_queue(
    format!("{PORT}[[worker]]\nid = 0\nlcore = 1\nqueues = [{{ port = \"p0\", rx = 0 }}, {{ port = \"p0\", rx = 1 }}]\n"),
    "t.toml:7:56: worker[0].queues[1].rx: port p0 has 1 RX queues (0..=0), got 1"
)]
#[case::queue_owned_twice(
    format!("[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\nrx_queues = 2\ntx_queues = 2\n\
             [[worker]]\nid = 0\nlcore = 1\nqueues = [{{ port = \"p0\", rx = 0 }}]\n\
             [[worker]]\nid = 1\nlcore = 2\nqueues = [{{ port = \"p0\", rx = 0 }}]\n"),
    "t.toml:13:31: worker[1].queues[0].rx: RX queue 0 of port p0 is already polled by worker 0"
)]
#[case::queue_unowned(
    format!("[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\nrx_queues = 2\ntx_queues = 2\n\
             [[worker]]\nid = 0\nlcore = 1\nqueues = [{{ port = \"p0\", rx = 0 }}]\n"),
    "t.toml:4:13: port[0].rx_queues: RX queue 1 of port p0 is polled by no [[worker]]"
)]
#[case::worker_id_not_dense(
    format!("{PORT}[[worker]]\nid = 3\nlcore = 1\nqueues = [{{ port = \"p0\", rx = 0 }}]\n"),
    "t.toml:5:6: worker[0].id: worker ids are dense from 0; with 1 workers the largest is 0, got 3"
)]
#[case::lcore_twice(
    format!("[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\nrx_queues = 2\ntx_queues = 2\n\
             [[worker]]\nid = 0\nlcore = 1\nqueues = [{{ port = \"p0\", rx = 0 }}]\n\
             [[worker]]\nid = 1\nlcore = 1\nqueues = [{{ port = \"p0\", rx = 1 }}]\n"),
    "t.toml:12:9: worker[1].lcore: lcore 1 is already used by worker[0]"
)]
// --- Services and real servers.
#[case::negative_weight(
    format!("{PORT}{}[[service.rs]]\naddr = \"10.1.0.1:80\"\n{}[[service.rs]]\naddr = \"10.1.0.2:80\"\nweight = -3\n",
        svc("10.0.0.1", 80, "tcp", "nat"), svc("10.0.0.2", 80, "tcp", "nat")),
    "t.toml:18:10: service[1].rs[0].weight: expected a non-negative integer, got -3"
)]
#[case::weight_too_big(
    format!("{PORT}{}rs = [{{ addr = \"10.1.0.1:80\", weight = 70000 }}]\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:9:40: service[0].rs[0].weight: must be at most 65535, got 70000"
)]
#[case::duplicate_service(
    format!("{PORT}{}{}", svc("10.0.0.1", 80, "tcp", "nat"), svc("10.0.0.1", 80, "tcp", "dr")),
    "t.toml:10:7: service[1].vip: service 10.0.0.1:80/tcp is already defined by service[0]"
)]
#[case::same_vip_other_proto_is_fine_but_bad_mode(
    format!("{PORT}{}{}", svc("10.0.0.1", 80, "tcp", "nat"), svc("10.0.0.1", 80, "udp", "snat")),
    "t.toml:13:8: service[1].mode: expected fullnat, nat, dr or tunnel, got \"snat\""
)]
#[case::bad_vip(
    format!("{PORT}{}", svc("10.0.0.1:80", 80, "tcp", "nat")),
    "t.toml:5:7: service[0].vip: expected an IP address (the port goes in `port`), got \"10.0.0.1:80\""
)]
#[case::bad_proto(
    format!("{PORT}{}", svc("10.0.0.1", 80, "sctp", "nat")),
    "t.toml:7:9: service[0].proto: expected tcp or udp, got \"sctp\""
)]
#[case::unknown_scheduler(
    format!("{PORT}{}scheduler = \"lc\"\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:9:13: service[0].scheduler: expected rr, wrr, wlc, sh or maglev, got \"lc\""
)]
#[case::maglev_size_not_prime(
    format!("{PORT}{}scheduler = \"maglev\"\nmaglev_table_size = 65536\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:10:21: service[0].maglev_table_size: the Maglev table size must be prime (e.g. 251, 65537), got 65536"
)]
#[case::maglev_size_without_maglev(
    format!("{PORT}{}scheduler = \"wrr\"\nmaglev_table_size = 251\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:10:21: service[0].maglev_table_size: maglev_table_size applies to scheduler = \"maglev\" only, this service uses wrr"
)]
#[case::toa_with_udp(
    format!("{PORT_LADDR}{}toa = true\n", svc("10.0.0.1", 53, "udp", "fullnat")),
    "t.toml:11:7: service[0].toa: TOA works with mode = \"fullnat\" and proto = \"tcp\" only, this service is fullnat/udp"
)]
#[case::nat64_needs_fullnat(
    format!("{PORT}{}rs = [{{ addr = \"10.1.0.1:80\" }}]\n", svc("2001:db8::1", 80, "tcp", "nat")),
    "t.toml:9:16: service[0].rs[0].addr: [2001:db8::1]:80 is nat to 10.1.0.1:80: NAT64 (IPv6 VIP, IPv4 real server) needs mode = \"fullnat\""
)]
#[case::nat46_unsupported(
    format!("{PORT_LADDR}{}rs = [{{ addr = \"[2001:db8::10]:80\" }}]\n", svc("10.0.0.1", 80, "tcp", "fullnat")),
    "t.toml:11:16: service[0].rs[0].addr: 10.0.0.1:80 is fullnat to [2001:db8::10]:80: an IPv4 VIP needs IPv4 real servers (NAT46 is not supported)"
)]
#[case::fullnat_without_laddr(
    format!("{PORT}{}rs = [{{ addr = \"10.1.0.1:80\" }}]\n", svc("10.0.0.1", 80, "tcp", "fullnat")),
    "t.toml:9:16: service[0].rs[0].addr: fullnat to 10.1.0.1:80 needs an IPv4 local address in [laddr]"
)]
#[case::dr_changes_port(
    format!("{PORT}{}rs = [{{ addr = \"10.1.0.1:8080\" }}]\n", svc("10.0.0.1", 80, "tcp", "dr")),
    "t.toml:9:16: service[0].rs[0].addr: mode dr cannot change the port: the real server must listen on 80, got 8080"
)]
#[case::duplicate_rs(
    format!("{PORT}{}rs = [{{ addr = \"10.1.0.1:80\" }}, {{ addr = \"10.1.0.1:80\" }}]\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:9:42: service[0].rs[1].addr: real server 10.1.0.1:80 is already rs[0] of this service"
)]
#[case::bad_rs_addr(
    format!("{PORT}{}rs = [{{ addr = \"10.1.0.1\" }}]\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:9:16: service[0].rs[0].addr: expected address:port such as 192.168.1.10:80 or [2001:db8::10]:80, got \"10.1.0.1\""
)]
#[case::bad_persistence(
    format!("{PORT}{}persistence = \"5 parsecs\"\n", svc("10.0.0.1", 80, "tcp", "nat")),
    "t.toml:9:15: service[0].persistence: expected a duration such as \"90s\" or \"5m\", got \"5 parsecs\" (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations))"
)]
// --- Local addresses, steering, timeouts, tables, control, trace.
#[case::laddr_unknown_port(
    format!("{PORT}[laddr]\np1 = [\"192.168.0.1\"]\n"),
    "t.toml:5:1: laddr.p1: no [[port]] is named \"p1\""
)]
#[case::laddr_bad_addr(
    format!("{PORT}[laddr]\np0 = [\"192.168.0.1\", \"192.168.0.300\"]\n"),
    "t.toml:5:22: laddr.p0[1]: expected an IP address, got \"192.168.0.300\""
)]
#[case::laddr_twice(
    format!("{PORT}[laddr]\np0 = [\"192.168.0.1\", \"192.168.0.1\"]\n"),
    "t.toml:5:22: laddr.p0[1]: 192.168.0.1 is already listed as laddr.p0[0]"
)]
#[case::vip_is_laddr(
    format!("{PORT_LADDR}{}", svc("192.168.0.1", 80, "tcp", "nat")),
    "t.toml:7:7: service[0].vip: 192.168.0.1 is also a local address in [laddr]"
)]
#[case::bad_steering(
    format!("{PORT}[steering]\nmode = \"fdir\"\n"),
    "t.toml:5:8: steering.mode: expected auto, flow, rss or partition, got \"fdir\""
)]
#[case::bad_timeout(
    format!("{PORT}[timeouts.tcp]\nestablished = \"0s\"\n"),
    "t.toml:5:15: timeouts.tcp.established: a timeout must be longer than zero"
)]
#[case::unknown_tcp_state(
    format!("{PORT}[timeouts.tcp]\nestablised = \"90s\"\n"),
    "t.toml:5:1: timeouts.tcp.establised: unknown field `establised`, expected one of `none`, `established`, `syn_sent`, `syn_recv`, `fin_wait`, `time_wait`, `close`, `close_wait`, `last_ack`, `listen`, `synack`"
)]
#[case::timeout_as_integer(
    format!("{PORT}[timeouts.udp]\nnormal = 300\n"),
    "t.toml:5:10: timeouts.udp.normal: invalid type: integer `300`, expected a string"
)]
#[case::huge_persist_capacity(
    format!("{PORT}[tables]\npersist_capacity = 99999999999\n"),
    "t.toml:5:20: tables.persist_capacity: must be at most 67108864, got 99999999999"
)]
#[case::zero_conn_capacity(
    format!("{PORT}[tables]\nconn_capacity = 0\n"),
    "t.toml:5:17: tables.conn_capacity: must be at least 1, got 0"
)]
#[case::metrics_not_loopback(
    format!("{PORT}[control]\nmetrics = \"0.0.0.0:9900\"\n"),
    "t.toml:5:11: control.metrics: the metrics endpoint listens on loopback only (127.0.0.1 or [::1]), got 0.0.0.0:9900"
)]
#[case::trace_without_path(
    format!("{PORT}[trace]\nmax_packets = 10\n"),
    "t.toml:4:1: trace: missing field `path`"
)]
fn bad_configs_name_file_line_column_and_field(#[case] text: String, #[case] expected: &str) {
    let err = Config::parse(&text, "t.toml").unwrap_err();
    assert_eq!(err.to_string(), expected, "config:\n{text}");
    // The parts are also available as values.
    let ConfigError::Invalid {
        file, line, field, ..
    } = &err
    else {
        panic!("not a located error: {err:?}");
    };
    assert_eq!(file, "t.toml");
    assert_eq!(err.line(), Some(*line));
    assert_eq!(err.field(), Some(field.as_str()));
}

#[test]
fn an_error_from_a_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("l4lab-control-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("forwarder.toml");
    std::fs::write(&path, format!("{PORT}rx_queues = -1\n")).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4:13: port[0].rx_queues: expected a non-negative integer, got -1",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_explicit_rss_key_is_parsed_from_hex() {
    let key40 = "6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:\
                 ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa";
    let c = Config::parse(
        &format!("{PORT}rss = {{ key = \"{key40}\", hash_types = [] }}\n"),
        "k.toml",
    )
    .unwrap();
    let rss = &c.ports[0].rss;
    assert_eq!(rss.key.bytes(), RssKeySpec::Default.bytes());
    assert!(matches!(rss.key, RssKeySpec::Explicit(_)));
    // No hash types is allowed with a single queue.
    assert!(rss.hash_types.is_empty());

    let key52 = "ab".repeat(52);
    let c = Config::parse(&format!("{PORT}rss = {{ key = \"{key52}\" }}\n"), "k.toml").unwrap();
    assert_eq!(c.ports[0].rss.key.bytes(), vec![0xab; 52]);
}

mod never_panics {
    use proptest::prelude::*;

    use forwarder::control::config::{Config, ConfigError};

    fn example() -> String {
        std::fs::read_to_string(super::examples_dir().join("fullnat-ring.toml")).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any prefix of a valid config, and any one-byte change of it, either parses or
        /// gives a located error whose line exists in the text.
        #[test]
        fn mutated_configs_give_located_errors(cut in 0usize..4000, at in 0usize..4000,
                                               byte in prop::sample::select(b" =\"[]{},.-0a\n#".to_vec())) {
            let text = example();
            let mut bytes = text.into_bytes();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut % (bytes.len() + 1));
            let text = String::from_utf8_lossy(&bytes).into_owned();
            match Config::parse(&text, "m.toml") {
                Ok(_) => {}
                Err(ConfigError::Invalid { line, column, field, .. }) => {
                    prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
                    prop_assert!(column >= 1);
                    prop_assert!(!field.is_empty());
                }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }
}
