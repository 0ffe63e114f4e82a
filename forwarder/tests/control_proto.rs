//! `forwarder ctl` words → requests, JSON round trips, specific errors, and rendering.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rstest::rstest;

use forwarder::control::config::{Mode, Proto, Scheduler};
use forwarder::control::metrics::{PortStats, ServiceStats, StatsSnapshot, WorkerStats};
use forwarder::control::proto::{
    parse_cli, render_json, render_table, CliError, ConnFilter, ConnInfo, ConnState, LaddrInfo,
    Output, RealServerInfo, RealServerSpec, Request, Response, ServiceInfo, ServiceKey,
    ServiceSpec, Weight,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn key(vip: &str, proto: Proto) -> ServiceKey {
    ServiceKey {
        vip: sa(vip),
        proto,
    }
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[rstest]
#[case::service_add(
    "service add --vip 10.0.0.1:80 --proto tcp --mode fullnat --sched maglev",
    Request::ServiceAdd { service: ServiceSpec {
        key: key("10.0.0.1:80", Proto::Tcp), mode: Mode::FullNat,
        scheduler: Scheduler::Maglev { table_size: 65537 }, toa: false, persistence: None } }
)]
#[case::service_add_all_flags(
    "service add --vip=[2001:db8::1]:443 --proto udp --mode nat --sched maglev --maglev-size 251 --persistence 5m",
    Request::ServiceAdd { service: ServiceSpec {
        key: key("[2001:db8::1]:443", Proto::Udp), mode: Mode::Nat,
        scheduler: Scheduler::Maglev { table_size: 251 }, toa: false,
        persistence: Some(Duration::from_secs(300)) } }
)]
#[case::service_add_defaults_and_toa(
    "service add --vip 10.0.0.1:80 --mode fullnat --toa",
    Request::ServiceAdd { service: ServiceSpec {
        key: key("10.0.0.1:80", Proto::Tcp), mode: Mode::FullNat, scheduler: Scheduler::Wlc,
        toa: true, persistence: None } }
)]
#[case::service_del(
    "service del --vip 10.0.0.1:53 --proto udp",
    Request::ServiceDel { service: key("10.0.0.1:53", Proto::Udp) }
)]
#[case::service_list("service list", Request::ServiceList)]
#[case::rs_add(
    "rs add --vip 10.0.0.1:80 --rs 192.168.1.10:8080 --weight 3 --mac 02:00:00:00:00:0a",
    Request::RsAdd { service: key("10.0.0.1:80", Proto::Tcp), rs: RealServerSpec {
        addr: sa("192.168.1.10:8080"), weight: Weight::new(3).unwrap(),
        mac: Some("02:00:00:00:00:0a".parse().unwrap()) } }
)]
#[case::rs_add_default_weight(
    "rs add --vip 10.0.0.1:80 --rs 192.168.1.10:8080",
    Request::RsAdd { service: key("10.0.0.1:80", Proto::Tcp), rs: RealServerSpec {
        addr: sa("192.168.1.10:8080"), weight: Weight::new(1).unwrap(), mac: None } }
)]
#[case::rs_del(
    "rs del --vip 10.0.0.1:80 --proto tcp --rs 192.168.1.10:8080",
    Request::RsDel { service: key("10.0.0.1:80", Proto::Tcp), addr: sa("192.168.1.10:8080") }
)]
#[case::rs_edit(
    "rs edit --vip 10.0.0.1:80 --rs 192.168.1.10:8080 --weight 0",
    Request::RsEdit { service: key("10.0.0.1:80", Proto::Tcp), addr: sa("192.168.1.10:8080"),
        weight: Weight::new(0).unwrap() }
)]
#[case::laddr_add(
    "laddr add --port p1 --addr 192.168.100.200",
    Request::LaddrAdd { port: "p1".into(), addr: "192.168.100.200".parse().unwrap() }
)]
#[case::laddr_del(
    "laddr del --port p1 --addr fd00::1",
    Request::LaddrDel { port: "p1".into(), addr: "fd00::1".parse().unwrap() }
)]
#[case::laddr_list("laddr list", Request::LaddrList { port: None })]
#[case::laddr_list_port("laddr list --port p1", Request::LaddrList { port: Some("p1".into()) })]
#[case::conn_list("conn list", Request::ConnList { filter: ConnFilter::default() })]
#[case::conn_list_filters(
    "conn list --worker 1 --vip 10.0.0.1:80 --proto tcp --client 172.16.0.9 --rs 192.168.1.10:8080 --state established --limit 10",
    Request::ConnList { filter: ConnFilter {
        worker: Some(1), vip: Some(sa("10.0.0.1:80")), proto: Some(Proto::Tcp),
        client: Some("172.16.0.9".parse().unwrap()), rs: Some(sa("192.168.1.10:8080")),
        state: Some(ConnState::Established), limit: 10 } }
)]
#[case::stats("stats", Request::Stats)]
fn every_verb_parses_and_round_trips(#[case] line: &str, #[case] expected: Request) {
    let cmd = parse_cli(&words(line)).unwrap();
    assert_eq!(cmd.request, expected);
    assert_eq!(cmd.output, Output::Table);
    assert_eq!(cmd.socket, None);

    let json = serde_json::to_string(&cmd.request).unwrap();
    assert!(!json.contains('\n'), "one request per line: {json}");
    let back: Request = serde_json::from_str(&json).unwrap();
    assert_eq!(back, expected, "{json}");

    // --json and --socket go anywhere after the verb.
    let with_flags = format!("{line} --json --socket /tmp/x.sock");
    let cmd = parse_cli(&words(&with_flags)).unwrap();
    assert_eq!(cmd.request, expected);
    assert_eq!(cmd.output, Output::Json);
    assert_eq!(cmd.socket, Some(PathBuf::from("/tmp/x.sock")));
}

#[test]
fn the_wire_format_is_tagged_and_stable() {
    let r = parse_cli(&words(
        "rs edit --vip 10.0.0.1:80 --rs 10.1.0.1:80 --weight 5",
    ))
    .unwrap()
    .request;
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({
            "cmd": "rs_edit",
            "service": {"vip": "10.0.0.1:80", "proto": "tcp"},
            "addr": "10.1.0.1:80",
            "weight": 5
        })
    );
    let r: Request = serde_json::from_str(r#"{"cmd":"stats"}"#).unwrap();
    assert_eq!(r, Request::Stats);
    let r: Request = serde_json::from_str(r#"{"cmd":"conn_list"}"#).unwrap();
    assert_eq!(
        r,
        Request::ConnList {
            filter: ConnFilter::default()
        }
    );
    let r: Request = serde_json::from_str(
        r#"{"cmd":"service_add","service":{"key":{"vip":"10.0.0.1:80","proto":"tcp"},"mode":"dr","scheduler":{"maglev":{"table_size":251}}}}"#,
    )
    .unwrap();
    let Request::ServiceAdd { service } = r else {
        panic!("{r:?}")
    };
    assert_eq!(service.scheduler, Scheduler::Maglev { table_size: 251 });
    assert_eq!(service.mode, Mode::Dr);
}

#[rstest]
#[case::bad_json("{\"cmd\":")]
#[case::unknown_cmd(r#"{"cmd":"reboot"}"#)]
#[case::unknown_field(r#"{"cmd":"laddr_list","port":"p0","force":true}"#)]
#[case::weight_too_big(
    r#"{"cmd":"rs_edit","service":{"vip":"10.0.0.1:80","proto":"tcp"},"addr":"10.1.0.1:80","weight":70000}"#
)]
#[case::bad_addr(
    r#"{"cmd":"rs_del","service":{"vip":"10.0.0.1","proto":"tcp"},"addr":"10.1.0.1:80"}"#
)]
#[case::bad_proto(r#"{"cmd":"service_del","service":{"vip":"10.0.0.1:80","proto":"icmp"}}"#)]
fn bad_json_requests_do_not_decode(#[case] json: &str) {
    assert!(serde_json::from_str::<Request>(json).is_err());
}

#[rstest]
#[case::empty("", CliError::Empty)]
#[case::unknown_command("servce list", CliError::UnknownCommand { word: "servce".into() })]
#[case::missing_verb(
    "rs",
    CliError::MissingVerb { command: "rs".into(), expected: vec!["add", "del", "edit"] }
)]
#[case::flag_instead_of_verb(
    "service --vip 10.0.0.1:80",
    CliError::MissingVerb { command: "service".into(), expected: vec!["add", "del", "list"] }
)]
#[case::unknown_verb(
    "service remove --vip 10.0.0.1:80",
    CliError::UnknownVerb { command: "service".into(), verb: "remove".into(),
        expected: vec!["add", "del", "list"] }
)]
#[case::unknown_flag(
    "service del --vip 10.0.0.1:80 --mode nat",
    CliError::UnknownFlag { command: "service del".into(), flag: "--mode".into(),
        expected: vec!["--vip", "--proto", "--json", "--socket"] }
)]
#[case::positional(
    "service del 10.0.0.1:80",
    CliError::Unexpected("10.0.0.1:80".into())
)]
#[case::duplicate_flag(
    "service del --vip 10.0.0.1:80 --vip 10.0.0.2:80",
    CliError::DuplicateFlag("--vip".into())
)]
#[case::missing_value(
    "service del --vip --proto tcp",
    CliError::MissingValue("--vip".into())
)]
#[case::missing_value_at_end("laddr list --port", CliError::MissingValue("--port".into()))]
#[case::missing_vip(
    "service add --mode nat",
    CliError::MissingFlag { command: "service add".into(), flag: "--vip",
        what: "the service's address:port, e.g. 10.0.0.1:80" }
)]
#[case::missing_mode(
    "service add --vip 10.0.0.1:80",
    CliError::MissingFlag { command: "service add".into(), flag: "--mode",
        what: "fullnat, nat, dr or tunnel" }
)]
#[case::missing_rs(
    "rs del --vip 10.0.0.1:80",
    CliError::MissingFlag { command: "rs del".into(), flag: "--rs",
        what: "the real server's address:port" }
)]
#[case::edit_without_weight(
    "rs edit --vip 10.0.0.1:80 --rs 10.1.0.1:80",
    CliError::MissingFlag { command: "rs edit".into(), flag: "--weight",
        what: "the new weight, 0 to 65535" }
)]
#[case::missing_port(
    "laddr add --addr 10.9.0.1",
    CliError::MissingFlag { command: "laddr add".into(), flag: "--port",
        what: "the name of a [[port]]" }
)]
#[case::vip_without_port(
    "service del --vip 10.0.0.1",
    CliError::BadValue { flag: "--vip".into(), value: "10.0.0.1".into(),
        reason: "the port is missing: expected address:port such as 10.0.0.1:80 or [2001:db8::1]:80".into() }
)]
#[case::bad_vip(
    "service del --vip 10.0.0.300:80",
    CliError::BadValue { flag: "--vip".into(), value: "10.0.0.300:80".into(),
        reason: "expected address:port such as 10.0.0.1:80 or [2001:db8::1]:80".into() }
)]
#[case::port_zero(
    "rs del --vip 10.0.0.1:80 --rs 10.1.0.1:0",
    CliError::BadValue { flag: "--rs".into(), value: "10.1.0.1:0".into(),
        reason: "the port must not be 0".into() }
)]
#[case::bad_proto(
    "service del --vip 10.0.0.1:80 --proto sctp",
    CliError::BadValue { flag: "--proto".into(), value: "sctp".into(),
        reason: "expected tcp or udp, got \"sctp\"".into() }
)]
#[case::bad_mode(
    "service add --vip 10.0.0.1:80 --mode snat",
    CliError::BadValue { flag: "--mode".into(), value: "snat".into(),
        reason: "expected fullnat, nat, dr or tunnel, got \"snat\"".into() }
)]
#[case::bad_sched(
    "service add --vip 10.0.0.1:80 --mode nat --sched lc",
    CliError::BadValue { flag: "--sched".into(), value: "lc".into(),
        reason: "expected rr, wrr, wlc, sh or maglev, got \"lc\"".into() }
)]
#[case::maglev_size_not_prime(
    "service add --vip 10.0.0.1:80 --mode nat --sched maglev --maglev-size 100",
    CliError::BadValue { flag: "--maglev-size".into(), value: "100".into(),
        reason: "expected a prime from 3 to 16777259 (e.g. 65537)".into() }
)]
#[case::maglev_size_without_maglev(
    "service add --vip 10.0.0.1:80 --mode nat --maglev-size 251",
    CliError::BadValue { flag: "--maglev-size".into(), value: "251".into(),
        reason: "applies to --sched maglev only".into() }
)]
#[case::toa_with_nat(
    "service add --vip 10.0.0.1:80 --mode nat --toa",
    CliError::BadValue { flag: "--toa".into(), value: "nat/tcp".into(),
        reason: "TOA needs --mode fullnat and --proto tcp".into() }
)]
#[case::switch_with_value(
    "stats --json=yes",
    CliError::BadValue { flag: "--json".into(), value: "yes".into(),
        reason: "this flag takes no value".into() }
)]
#[case::negative_weight(
    "rs edit --vip 10.0.0.1:80 --rs 10.1.0.1:80 --weight -3",
    CliError::BadValue { flag: "--weight".into(), value: "-3".into(),
        reason: "expected an integer from 0 to 65535".into() }
)]
#[case::weight_too_big(
    "rs edit --vip 10.0.0.1:80 --rs 10.1.0.1:80 --weight 65536",
    CliError::BadValue { flag: "--weight".into(), value: "65536".into(),
        reason: "expected an integer from 0 to 65535".into() }
)]
#[case::bad_mac(
    "rs add --vip 10.0.0.1:80 --rs 10.1.0.1:80 --mac 02:00",
    CliError::BadValue { flag: "--mac".into(), value: "02:00".into(),
        reason: "expected a MAC address such as 02:00:00:00:00:01, got \"02:00\"".into() }
)]
#[case::bad_laddr(
    "laddr add --port p0 --addr 10.0.0.1:80",
    CliError::BadValue { flag: "--addr".into(), value: "10.0.0.1:80".into(),
        reason: "invalid IP address syntax".into() }
)]
#[case::bad_persistence(
    "service add --vip 10.0.0.1:80 --mode nat --persistence 0s",
    CliError::BadValue { flag: "--persistence".into(), value: "0s".into(),
        reason: "must be longer than zero".into() }
)]
#[case::bad_state(
    "conn list --state estab",
    CliError::BadValue { flag: "--state".into(), value: "estab".into(),
        reason: "expected one of none, established, syn_sent, syn_recv, fin_wait, time_wait, close, close_wait, last_ack, listen, syn_ack, udp_normal, udp_oneway".into() }
)]
#[case::bad_worker(
    "conn list --worker x",
    CliError::BadValue { flag: "--worker".into(), value: "x".into(),
        reason: "invalid digit found in string".into() }
)]
#[case::zero_limit(
    "conn list --limit 0",
    CliError::BadValue { flag: "--limit".into(), value: "0".into(),
        reason: "expected a positive number".into() }
)]
#[case::stats_takes_no_verb(
    "stats show",
    CliError::Unexpected("show".into())
)]
fn bad_commands_give_specific_errors(#[case] line: &str, #[case] expected: CliError) {
    assert_eq!(parse_cli(&words(line)), Err(expected));
}

#[test]
fn error_messages_read_well() {
    let msg = |line: &str| parse_cli(&words(line)).unwrap_err().to_string();
    assert_eq!(
        msg("servce list"),
        "unknown command `servce`; expected one of: service, rs, laddr, conn, stats"
    );
    assert_eq!(
        msg("service add --mode nat"),
        "`service add` needs `--vip` (the service's address:port, e.g. 10.0.0.1:80)"
    );
    assert_eq!(
        msg("service del --vip 10.0.0.1"),
        "bad value `10.0.0.1` for `--vip`: the port is missing: expected address:port such as \
         10.0.0.1:80 or [2001:db8::1]:80"
    );
    assert_eq!(
        msg("service remove"),
        "unknown verb `remove` for `service`; expected one of: add, del, list"
    );
}

fn sample_stats() -> StatsSnapshot {
    StatsSnapshot {
        steering: "rss (net_ring has no rte_flow)".into(),
        workers: vec![WorkerStats {
            id: 0,
            lcore: 1,
            rx_packets: 10,
            rx_bytes: 640,
            tx_packets: 9,
            tx_bytes: 576,
            drops: BTreeMap::from([("no_service".to_owned(), 1), ("tx_full".to_owned(), 0)]),
            redirects: 0,
            conns: 2,
            conns_created: 3,
        }],
        services: vec![ServiceStats {
            vip: sa("10.0.0.1:80"),
            proto: Proto::Tcp,
            mode: Mode::FullNat,
            packets: 9,
            bytes: 576,
            conns: 2,
            conns_created: 3,
        }],
        ports: vec![PortStats {
            name: "p0".into(),
            rx_packets: 10,
            steering: "rss".into(),
            ..PortStats::default()
        }],
        fault: None,
        neighbours: Vec::new(),
    }
}

fn sample_responses() -> Vec<Response> {
    vec![
        Response::Ok,
        Response::error("no service 10.0.0.9:80/tcp"),
        Response::Services {
            services: vec![ServiceInfo {
                key: key("10.0.0.1:80", Proto::Tcp),
                mode: Mode::FullNat,
                scheduler: Scheduler::Maglev { table_size: 251 },
                toa: true,
                persistence: Some(Duration::from_secs(60)),
                real_servers: vec![RealServerInfo {
                    addr: sa("192.168.1.10:8080"),
                    weight: 2,
                    active_conns: 5,
                    inactive_conns: 1,
                }],
            }],
        },
        Response::Laddrs {
            laddrs: vec![LaddrInfo {
                port: "p1".into(),
                addr: "192.168.100.200".parse().unwrap(),
                conns: 7,
            }],
        },
        Response::Conns {
            conns: vec![ConnInfo {
                worker: 1,
                proto: Proto::Tcp,
                client: sa("172.16.0.9:40000"),
                vip: sa("10.0.0.1:80"),
                laddr: Some(sa("192.168.100.200:1029")),
                rs: sa("192.168.1.10:8080"),
                state: ConnState::Established,
                expires_ms: 89_500,
            }],
            truncated: true,
        },
        Response::Stats {
            stats: sample_stats(),
        },
    ]
}

#[test]
fn responses_round_trip_through_json() {
    for r in sample_responses() {
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), r);
        // The pretty form printed by --json parses too.
        let pretty = render_json(&r);
        assert_eq!(serde_json::from_str::<Response>(&pretty).unwrap(), r);
    }
}

#[test]
fn tables_show_the_values() {
    let r = sample_responses();
    assert_eq!(render_table(&r[0]), "ok\n");
    assert_eq!(render_table(&r[1]), "error: no service 10.0.0.9:80/tcp\n");
    let services = render_table(&r[2]);
    assert_eq!(
        services,
        concat!(
            "PROTO  ADDRESS                 MODE     SCHED        FLAGS/WEIGHT        ACTIVE  INACTIVE\n",
            "TCP    10.0.0.1:80             fullnat  maglev(251)  toa,persistent 60s\n",
            "         -> 192.168.1.10:8080                        2                   5       1\n",
        )
    );
    let laddrs = render_table(&r[3]);
    assert_eq!(
        laddrs,
        "PORT  ADDRESS          CONNS\np1    192.168.100.200  7\n"
    );
    let conns = render_table(&r[4]);
    assert!(conns.contains("172.16.0.9:40000"), "{conns}");
    assert!(conns.contains("established  89.5s"), "{conns}");
    assert!(conns.ends_with("raise --limit to see them)\n"), "{conns}");
    let stats = render_table(&r[5]);
    assert!(
        stats.starts_with("steering: rss (net_ring has no rte_flow)\n"),
        "{stats}"
    );
    assert!(stats.contains("no_service"), "{stats}");
    assert!(
        !stats.contains("tx_full"),
        "zero drop reasons are hidden: {stats}"
    );
    assert!(stats.contains("10.0.0.1:80/tcp  fullnat"), "{stats}");
}

mod never_panics {
    use proptest::prelude::*;

    use forwarder::control::proto::{parse_cli, Request};

    const VOCAB: &[&str] = &[
        "service",
        "rs",
        "laddr",
        "conn",
        "stats",
        "add",
        "del",
        "list",
        "edit",
        "--vip",
        "--proto",
        "--mode",
        "--sched",
        "--maglev-size",
        "--toa",
        "--persistence",
        "--rs",
        "--weight",
        "--mac",
        "--port",
        "--addr",
        "--worker",
        "--client",
        "--state",
        "--limit",
        "--json",
        "--socket",
        "--vip=",
        "10.0.0.1:80",
        "[::1]:80",
        "10.0.0.1",
        "::1",
        "tcp",
        "udp",
        "fullnat",
        "maglev",
        "251",
        "-3",
        "0",
        "65536",
        "5m",
        "",
        "é",
        "--",
        "=",
    ];

    proptest! {
        #[test]
        fn parse_cli_never_panics(picks in prop::collection::vec(0..VOCAB.len(), 0..10),
                                  junk in ".{0,12}") {
            let mut words: Vec<String> = picks.iter().map(|&i| VOCAB[i].to_owned()).collect();
            words.push(junk);
            let _ = parse_cli(&words);
        }

        #[test]
        fn decoding_arbitrary_lines_never_panics(line in ".{0,200}") {
            let _ = serde_json::from_str::<Request>(&line);
        }
    }
}
