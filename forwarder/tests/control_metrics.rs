//! Prometheus text: a small format check over a snapshot with awkward labels, and the
//! HTTP endpoint on an ephemeral loopback port.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use forwarder::control::config::{Mode, Proto};
use forwarder::control::metrics::{
    MetricsServer, PortStats, ServiceStats, StatsSnapshot, WorkerStats, MAX_REQUEST,
};

fn snapshot() -> StatsSnapshot {
    StatsSnapshot {
        steering: "rss: \"net_ring\" has no rte_flow\\n".into(),
        workers: vec![
            WorkerStats {
                id: 0,
                lcore: 1,
                rx_packets: 100,
                rx_bytes: 6400,
                tx_packets: 97,
                tx_bytes: 6208,
                drops: BTreeMap::from([("no_service".to_owned(), 2), ("truncated".to_owned(), 1)]),
                redirects: 0,
                conns: 4,
                conns_created: 10,
            },
            WorkerStats {
                id: 1,
                lcore: 2,
                redirects: 3,
                ..WorkerStats::default()
            },
        ],
        services: vec![ServiceStats {
            vip: "[2001:db8::1]:80".parse().unwrap(),
            proto: Proto::Tcp,
            mode: Mode::FullNat,
            packets: 97,
            bytes: 6208,
            conns: 4,
            conns_created: 10,
        }],
        ports: vec![PortStats {
            name: "p0".into(),
            rx_packets: 100,
            rx_missed: 5,
            steering: "rss\nfallback".into(),
            ..PortStats::default()
        }],
        fault: None,
        neighbours: Vec::new(),
    }
}

/// One parsed sample: metric name, labels (unescaped), value.
type Sample = (String, Vec<(String, String)>, f64);

/// Checks the exposition format and returns the samples. Panics with the line on error.
fn check_format(text: &str) -> Vec<Sample> {
    let mut help: HashMap<String, ()> = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(valid_name(name), "{line}");
            assert!(!text.is_empty(), "{line}");
            assert!(
                help.insert(name.to_owned(), ()).is_none(),
                "HELP twice: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(help.contains_key(name), "TYPE before HELP: {line}");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {line}");
            }
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line}"
            );
        } else {
            assert!(!line.starts_with('#'), "{line}");
            let sample = parse_sample(line);
            assert!(
                types.contains_key(&sample.0),
                "sample before its TYPE: {line}"
            );
            samples.push(sample);
        }
    }
    samples
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("{line}"));
    let name = &line[..name_end];
    assert!(valid_name(name), "{line}");
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices();
        loop {
            // label name up to '='
            let mut key = String::new();
            let mut c = chars.next().unwrap_or_else(|| panic!("{line}"));
            while c.1 != '=' {
                key.push(c.1);
                c = chars.next().unwrap_or_else(|| panic!("{line}"));
            }
            assert!(valid_name(&key), "label name {key:?}: {line}");
            assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                let (_, ch) = chars.next().unwrap_or_else(|| panic!("{line}"));
                match ch {
                    '\\' => match chars.next().map(|c| c.1) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?}: {line}"),
                    },
                    '"' => break,
                    '\n' => panic!("raw newline: {line}"),
                    ch => value.push(ch),
                }
            }
            labels.push((key, value));
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    rest = &r[i + 1..];
                    break;
                }
                other => panic!("{other:?}: {line}"),
            }
        }
    }
    let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{line}"));
    let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
    (name.to_owned(), labels, value)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|(n, l, _)| {
        n == name
            && labels
                .iter()
                .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
    })
}

#[test]
fn prometheus_text_is_well_formed_and_carries_the_values() {
    let text = snapshot().to_prometheus();
    let samples = check_format(&text);

    let v = |name: &str, labels: &[(&str, &str)]| {
        find(&samples, name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in\n{text}"))
            .2
    };
    assert_eq!(
        v(
            "l4lab_worker_rx_packets_total",
            &[("worker", "0"), ("lcore", "1")]
        ),
        100.0
    );
    assert_eq!(v("l4lab_worker_redirects_total", &[("worker", "1")]), 3.0);
    assert_eq!(v("l4lab_worker_conns", &[("worker", "0")]), 4.0);
    assert_eq!(
        v(
            "l4lab_worker_drops_total",
            &[("worker", "0"), ("reason", "no_service")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "l4lab_service_packets_total",
            &[
                ("vip", "[2001:db8::1]:80"),
                ("proto", "tcp"),
                ("mode", "fullnat")
            ]
        ),
        97.0
    );
    assert_eq!(v("l4lab_port_rx_missed_total", &[("port", "p0")]), 5.0);
    // Quotes, backslashes and newlines survive the escaping.
    assert_eq!(
        v(
            "l4lab_steering_info",
            &[("mode", "rss: \"net_ring\" has no rte_flow\\n")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "l4lab_port_steering_info",
            &[("port", "p0"), ("steering", "rss\nfallback")]
        ),
        1.0
    );
    assert!(
        text.contains(r#"mode="rss: \"net_ring\" has no rte_flow\\n""#),
        "{text}"
    );
    assert!(text.contains("# TYPE l4lab_worker_conns gauge\n"));
    assert!(text.contains("# TYPE l4lab_worker_drops_total counter\n"));
}

#[test]
fn an_empty_snapshot_is_still_well_formed() {
    let samples = check_format(&StatsSnapshot::default().to_prometheus());
    assert_eq!(samples.len(), 1, "only steering_info: {samples:?}");
}

/// Sends `request` from a thread and polls the server until the thread has the answer.
fn exchange(server: &mut MetricsServer, request: Vec<u8>) -> String {
    let addr = server.local_addr().unwrap();
    let t = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may answer and close before reading everything of a huge request.
        let _ = s.write_all(&request);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8(out).unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.is_finished() && Instant::now() < deadline {
        server.poll(snapshot);
        thread::sleep(Duration::from_millis(1));
    }
    t.join().unwrap()
}

#[test]
fn http_server_answers_get_metrics_on_an_ephemeral_port() {
    let mut server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_ne!(server.local_addr().unwrap().port(), 0);

    let resp = exchange(
        &mut server,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    );
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(body, snapshot().to_prometheus());
    check_format(body);

    let resp = exchange(&mut server, b"GET / HTTP/1.0\r\n\r\n".to_vec());
    assert!(resp.starts_with("HTTP/1.0 404 Not Found\r\n"), "{resp}");
    let resp = exchange(&mut server, b"DELETE /metrics HTTP/1.0\r\n\r\n".to_vec());
    assert!(resp.starts_with("HTTP/1.0 405 "), "{resp}");
    let resp = exchange(&mut server, b"nonsense\r\n\r\n".to_vec());
    assert!(resp.starts_with("HTTP/1.0 400 "), "{resp}");
    let mut huge = b"GET /metrics HTTP/1.0\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', MAX_REQUEST * 2));
    let resp = exchange(&mut server, huge);
    assert!(resp.starts_with("HTTP/1.0 431 "), "{resp}");
}

#[test]
fn polling_without_requests_does_not_take_a_snapshot() {
    let mut server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut taken = 0;
    for _ in 0..3 {
        assert_eq!(
            server.poll(|| {
                taken += 1;
                StatsSnapshot::default()
            }),
            0
        );
    }
    assert_eq!(taken, 0);
}
