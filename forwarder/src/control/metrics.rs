//! Counter snapshots, their Prometheus text exposition, and a tiny non-blocking HTTP/1.0
//! server for `GET /metrics` that the master lcore polls between its other jobs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::control::config::{Mode, Proto};

/// Counters of one worker lcore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Worker id.
    pub id: u16,
    /// The lcore it runs on.
    pub lcore: u32,
    /// Packets received from its RX queues (and from redirect rings).
    pub rx_packets: u64,
    /// Bytes of those packets.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Dropped packets by reason name (`no_service`, `tx_full`, …).
    pub drops: BTreeMap<String, u64>,
    /// Packets passed to another worker because it owns their connection.
    pub redirects: u64,
    /// Connections now in its table.
    pub conns: u64,
    /// Connections created since start.
    pub conns_created: u64,
}

/// Counters of one service, summed over the workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    /// Virtual address and port.
    pub vip: SocketAddr,
    /// Protocol.
    pub proto: Proto,
    /// Forwarding mode.
    pub mode: Mode,
    /// Packets forwarded in either direction.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// Connections now open.
    pub conns: u64,
    /// Connections created since start.
    pub conns_created: u64,
}

/// Counters of one port, as the device reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    /// The port's config name.
    pub name: String,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets the device dropped for lack of RX descriptors (`imissed`).
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// How FULLNAT replies reach their worker on this port (`flow`, `rss`) and why.
    pub steering: String,
}

/// The fault the forwarder injects on purpose (`[fault]`), and how often it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    /// The fault's name (`bad_checksum`, …).
    pub kind: String,
    /// It strikes every `every`-th eligible packet of each worker.
    pub every: u32,
    /// Packets changed, moved or dropped by it, summed over the workers.
    pub injected: u64,
    /// The same per worker: (worker id, packets).
    pub by_worker: Vec<(u16, u64)>,
}

/// Everything `stats` shows and `/metrics` exports, taken by the master at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Steering mode in use for the whole forwarder, with the reason (`rss: net_ring has no
    /// rte_flow`).
    pub steering: String,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// Per service.
    pub services: Vec<ServiceStats>,
    /// Per port.
    pub ports: Vec<PortStats>,
    /// The injected fault; `None` when the forwarder runs correctly (the default).
    #[serde(default)]
    pub fault: Option<FaultStats>,
    /// Next hops being resolved (gateways, real servers).
    #[serde(default)]
    pub neighbours: Vec<NeighbourStats>,
}

/// A next hop the master resolves by ARP / neighbour solicitation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourStats {
    /// Its address.
    pub addr: String,
    /// The port asked on.
    pub port: String,
    /// `gateway`, `real_server` or both (`gateway,real_server`).
    pub role: String,
    /// The MAC learned, if any.
    pub mac: Option<String>,
    /// Requests sent for it.
    pub requests: u64,
}

impl StatsSnapshot {
    /// The Prometheus text exposition (format 0.0.4) of these counters.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let workers = &self.workers;
        let wl =
            |w: &WorkerStats| vec![("worker", w.id.to_string()), ("lcore", w.lcore.to_string())];
        let worker_counters: [Counter<WorkerStats>; 7] = [
            (
                "worker_rx_packets_total",
                "Packets received by the worker.",
                |w| w.rx_packets,
            ),
            (
                "worker_rx_bytes_total",
                "Bytes received by the worker.",
                |w| w.rx_bytes,
            ),
            (
                "worker_tx_packets_total",
                "Packets transmitted by the worker.",
                |w| w.tx_packets,
            ),
            (
                "worker_tx_bytes_total",
                "Bytes transmitted by the worker.",
                |w| w.tx_bytes,
            ),
            (
                "worker_redirects_total",
                "Packets passed to the worker that owns their connection.",
                |w| w.redirects,
            ),
            (
                "worker_conns_created_total",
                "Connections created by the worker.",
                |w| w.conns_created,
            ),
            ("worker_conns", "Connections in the worker's table.", |w| {
                w.conns
            }),
        ];
        for (name, help, get) in worker_counters {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            family(
                &mut out,
                name,
                help,
                kind,
                workers.iter().map(|w| (wl(w), get(w))),
            );
        }
        family(
            &mut out,
            "worker_drops_total",
            "Packets the worker dropped, by reason.",
            "counter",
            workers.iter().flat_map(|w| {
                w.drops.iter().map(move |(reason, &n)| {
                    let mut l = wl(w);
                    l.push(("reason", reason.clone()));
                    (l, n)
                })
            }),
        );

        let sl = |s: &ServiceStats| {
            vec![
                ("vip", s.vip.to_string()),
                ("proto", s.proto.to_string()),
                ("mode", s.mode.to_string()),
            ]
        };
        let service_counters: [Counter<ServiceStats>; 4] = [
            (
                "service_packets_total",
                "Packets forwarded for the service.",
                |s| s.packets,
            ),
            (
                "service_bytes_total",
                "Bytes forwarded for the service.",
                |s| s.bytes,
            ),
            (
                "service_conns_created_total",
                "Connections created for the service.",
                |s| s.conns_created,
            ),
            ("service_conns", "Open connections of the service.", |s| {
                s.conns
            }),
        ];
        for (name, help, get) in service_counters {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            family(
                &mut out,
                name,
                help,
                kind,
                self.services.iter().map(|s| (sl(s), get(s))),
            );
        }

        let pl = |p: &PortStats| vec![("port", p.name.clone())];
        let port_counters: [Counter<PortStats>; 7] = [
            ("port_rx_packets_total", "Packets the port received.", |p| {
                p.rx_packets
            }),
            ("port_rx_bytes_total", "Bytes the port received.", |p| {
                p.rx_bytes
            }),
            (
                "port_tx_packets_total",
                "Packets the port transmitted.",
                |p| p.tx_packets,
            ),
            ("port_tx_bytes_total", "Bytes the port transmitted.", |p| {
                p.tx_bytes
            }),
            (
                "port_rx_missed_total",
                "Packets the port dropped for lack of RX descriptors.",
                |p| p.rx_missed,
            ),
            ("port_rx_errors_total", "Receive errors of the port.", |p| {
                p.rx_errors
            }),
            (
                "port_tx_errors_total",
                "Transmit errors of the port.",
                |p| p.tx_errors,
            ),
        ];
        for (name, help, get) in port_counters {
            family(
                &mut out,
                name,
                help,
                "counter",
                self.ports.iter().map(|p| (pl(p), get(p))),
            );
        }
        family(
            &mut out,
            "port_steering_info",
            "How FULLNAT replies reach their worker on the port (always 1).",
            "gauge",
            self.ports.iter().map(|p| {
                let mut l = pl(p);
                l.push(("steering", p.steering.clone()));
                (l, 1)
            }),
        );
        family(
            &mut out,
            "steering_info",
            "Reply steering mode of the forwarder (always 1).",
            "gauge",
            std::iter::once((vec![("mode", self.steering.clone())], 1)),
        );
        if let Some(f) = &self.fault {
            let kind = || ("kind", f.kind.clone());
            family(
                &mut out,
                "fault_info",
                "A fault injected on purpose to test the harness (always 1; absent when off).",
                "gauge",
                std::iter::once((vec![kind(), ("every", f.every.to_string())], 1)),
            );
            family(
                &mut out,
                "worker_faults_injected_total",
                "Packets the injected fault changed, moved to another worker or dropped.",
                "counter",
                f.by_worker
                    .iter()
                    .map(|&(w, n)| (vec![("worker", w.to_string()), kind()], n)),
            );
        }
        out
    }
}

/// A metric's name (without prefix), its help text, and how to read it from `T`.
type Counter<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Prefix of every metric name.
pub const METRIC_PREFIX: &str = "l4lab_";

/// Appends one metric family: HELP, TYPE, then one sample per label set.
fn family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    samples: impl Iterator<Item = (Vec<(&'a str, String)>, u64)>,
) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {METRIC_PREFIX}{name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {METRIC_PREFIX}{name} {kind}");
    for (labels, value) in samples {
        let _ = write!(out, "{METRIC_PREFIX}{name}");
        if !labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escapes HELP text: backslash and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

// ---------------------------------------------------------------------------------------
// HTTP.

/// Largest request head accepted (bytes).
pub const MAX_REQUEST: usize = 8 * 1024;
/// Most connections served at once; more are closed at accept.
pub const MAX_HTTP_CONNS: usize = 16;
/// A connection that has not finished within this time is closed.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A non-blocking HTTP/1.0 server for `GET /metrics`, polled by the master loop.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    conns: Vec<HttpConn>,
}

#[derive(Debug)]
struct HttpConn {
    stream: TcpStream,
    started: Instant,
    request: Vec<u8>,
    /// The response once the request is complete, and how much of it has been written.
    response: Option<(Vec<u8>, usize)>,
}

impl MetricsServer {
    /// Listens on `addr` (use port 0 for an ephemeral port).
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer {
            listener,
            conns: Vec::new(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts, reads and answers whatever is ready without blocking; `snapshot` is called
    /// at most once, only when a `GET /metrics` needs it. Returns the responses completed.
    pub fn poll<F: FnMut() -> StatsSnapshot>(&mut self, mut snapshot: F) -> usize {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() >= MAX_HTTP_CONNS || stream.set_nonblocking(true).is_err() {
                        continue; // dropped: closed
                    }
                    self.conns.push(HttpConn {
                        stream,
                        started: Instant::now(),
                        request: Vec::new(),
                        response: None,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock, or a transient accept error: try next poll
            }
        }
        let mut body: Option<String> = None;
        let mut done = 0;
        self.conns.retain_mut(|c| {
            if c.started.elapsed() > HTTP_TIMEOUT {
                return false;
            }
            if c.response.is_none() {
                match read_head(c) {
                    Err(()) => return false,
                    Ok(None) => return true,
                    Ok(Some(head)) => {
                        let resp = respond(&head, || {
                            body.get_or_insert_with(|| snapshot().to_prometheus())
                                .clone()
                        });
                        c.response = Some((resp, 0));
                    }
                }
            }
            let Some((resp, written)) = &mut c.response else {
                return true;
            };
            while *written < resp.len() {
                match c.stream.write(&resp[*written..]) {
                    Ok(0) => return false,
                    Ok(n) => *written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            done += 1;
            // Half-close, then discard what the peer already sent (the rest of an oversized
            // request): closing with unread input would reset the connection and could
            // destroy the response before the peer reads it.
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                match c.stream.read(&mut sink) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            false
        });
        done
    }
}

/// What a request head turned out to be.
enum Head {
    /// A complete head (up to the blank line).
    Complete(Vec<u8>),
    /// More than [`MAX_REQUEST`] bytes without a blank line.
    TooLarge,
}

/// Reads what is available; `Ok(Some(_))` once the head is complete or too large,
/// `Err(())` when the peer went away.
fn read_head(c: &mut HttpConn) -> Result<Option<Head>, ()> {
    let mut buf = [0u8; 1024];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return Err(()),
            Ok(n) => {
                c.request.extend_from_slice(&buf[..n]);
                if let Some(end) = find_blank_line(&c.request) {
                    c.request.truncate(end);
                    return Ok(Some(Head::Complete(std::mem::take(&mut c.request))));
                }
                if c.request.len() > MAX_REQUEST {
                    return Ok(Some(Head::TooLarge));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
}

fn find_blank_line(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = b.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The full HTTP/1.0 response to a request head.
fn respond(head: &Head, body: impl FnOnce() -> String) -> Vec<u8> {
    let (status, content_type, body) = match head {
        Head::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request too large\n".to_owned(),
        ),
        Head::Complete(h) => {
            let line = String::from_utf8_lossy(h);
            let mut words = line.lines().next().unwrap_or_default().split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(method), Some(target), Some(version)) if version.starts_with("HTTP/") => {
                    let path = target.split('?').next().unwrap_or_default();
                    if method != "GET" {
                        (
                            "405 Method Not Allowed",
                            "text/plain",
                            "only GET\n".to_owned(),
                        )
                    } else if path == "/metrics" {
                        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body())
                    } else {
                        ("404 Not Found", "text/plain", "try /metrics\n".to_owned())
                    }
                }
                _ => ("400 Bad Request", "text/plain", "bad request\n".to_owned()),
            }
        }
    };
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_is_exported_only_when_on() {
        let mut s = StatsSnapshot::default();
        assert!(!s.to_prometheus().contains("fault"));
        s.fault = Some(FaultStats {
            kind: "bad_checksum".into(),
            every: 10,
            injected: 5,
            by_worker: vec![(0, 2), (1, 3)],
        });
        let text = s.to_prometheus();
        assert!(
            text.contains("l4lab_fault_info{kind=\"bad_checksum\",every=\"10\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "l4lab_worker_faults_injected_total{worker=\"1\",kind=\"bad_checksum\"} 3\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("[2001:db8::1]:80"), "[2001:db8::1]:80");
    }

    #[test]
    fn blank_line_is_found_with_either_line_ending() {
        assert_eq!(find_blank_line(b"GET / HTTP/1.0\r\n\r\n"), Some(14));
        assert_eq!(find_blank_line(b"GET / HTTP/1.0\n\n"), Some(14));
        assert_eq!(find_blank_line(b"GET / HTTP/1.0\r\n"), None);
    }

    #[test]
    fn responses_by_method_and_path() {
        let status = |req: &[u8]| {
            let r = respond(&Head::Complete(req.to_vec()), || "body\n".to_owned());
            String::from_utf8(r)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(status(b"GET /metrics HTTP/1.0"), "HTTP/1.0 200 OK");
        assert_eq!(status(b"GET /metrics?x=1 HTTP/1.1"), "HTTP/1.0 200 OK");
        assert_eq!(status(b"GET / HTTP/1.0"), "HTTP/1.0 404 Not Found");
        assert_eq!(
            status(b"POST /metrics HTTP/1.0"),
            "HTTP/1.0 405 Method Not Allowed"
        );
        assert_eq!(status(b"hello"), "HTTP/1.0 400 Bad Request");
        let r = String::from_utf8(respond(&Head::TooLarge, String::new)).unwrap();
        assert!(r.starts_with("HTTP/1.0 431 "));
    }
}
