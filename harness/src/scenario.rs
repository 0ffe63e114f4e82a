//! Scenario files: one TOML file per scenario in `pcaps/`, describing the services, the
//! local addresses, the input capture, the topology and what to check.
//!
//! ```toml
//! name = "fullnat-tcp"
//! description = "many TCP clients through one FULLNAT service"
//! input = "fullnat_tcp.pcap"        # relative to this file
//! topology = "inproc"               # inproc | pcap | rings | memif | kernel
//! local_addresses = ["192.168.100.1", "192.168.100.2"]
//! ttl = "decrement"                 # decrement | preserve
//!
//! [rss]
//! key = "default"                   # default | symmetric | 40 or 52 bytes of hex
//! queues = 4
//! reta_size = 128
//! types = "all"
//! queue_worker = [0, 1, 2, 3]       # worker of each queue (default: queue i → worker i)
//!
//! [[service]]
//! vip = "10.0.0.100:80"
//! proto = "tcp"
//! mode = "fullnat"                  # fullnat | nat
//! scheduler = "rr"                  # rr | wrr | wlc | sh | maglev
//! toa = true                        # TCP option address (FULLNAT TCP only; default false)
//! [[service.real_server]]
//! addr = "192.168.1.10:8080"
//! weight = 1
//!
//! [check]                           # every check defaults to on
//! rss_affinity = true
//!
//! [expect]                          # what the capture's author intended
//! forward = 120
//! drop = { malformed = 3, ttl_expired = 1 }
//! ```
//!
//! Errors name the file, the line and column, and the field.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rss::{HashTypes, RssKey, RssModel, DEFAULT_RETA_SIZE};

/// A scenario, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// The input capture, relative to the scenario file.
    pub input: PathBuf,
    /// How the forwarder is run.
    #[serde(default)]
    pub topology: Topology,
    /// Local (source) addresses of FULLNAT.
    #[serde(default)]
    pub local_addresses: Vec<IpAddr>,
    /// What happens to the TTL / hop limit of forwarded packets.
    #[serde(default)]
    pub ttl: TtlPolicy,
    /// The NIC's RSS configuration and the queue → worker map.
    #[serde(default)]
    pub rss: RssConfig,
    /// Virtual services.
    #[serde(rename = "service", default)]
    pub services: Vec<Service>,
    /// Which checks run.
    #[serde(default)]
    pub check: Checks,
    /// Verdict counts intended by the capture's author (checked against the oracle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// How the forwarder is run for a scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// The dataplane library in process, no EAL.
    #[default]
    Inproc,
    /// The real binary on `net_pcap`, one rx/tx file per queue.
    Pcap,
    /// `net_ring` ports with software RSS.
    Rings,
    /// Two processes over `net_memif`.
    Memif,
    /// `net_tap` / `net_af_packet` with network namespaces.
    Kernel,
}

/// TTL handling of forwarded packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TtlPolicy {
    /// TTL / hop limit decremented by one; packets arriving with 1 (or 0) are dropped.
    #[default]
    Decrement,
    /// TTL left as it came (DPVS's default).
    Preserve,
}

/// The NIC's RSS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RssConfig {
    /// `default`, `symmetric`, or 40/52 bytes of hex.
    #[serde(default = "default_key")]
    pub key: String,
    /// RX queues.
    #[serde(default = "one")]
    pub queues: u16,
    /// RETA entries.
    #[serde(default = "default_reta_size")]
    pub reta_size: usize,
    /// Hash types, as for `--types` (`all`, `ip`, `ipv4-tcp,ipv6-tcp`, …).
    #[serde(default = "default_types")]
    pub types: String,
    /// The worker of each queue; empty means queue i → worker i.
    #[serde(default)]
    pub queue_worker: Vec<u16>,
}

impl Default for RssConfig {
    fn default() -> Self {
        Self {
            key: default_key(),
            queues: 1,
            reta_size: DEFAULT_RETA_SIZE,
            types: default_types(),
            queue_worker: Vec::new(),
        }
    }
}

fn default_key() -> String {
    "default".to_owned()
}

fn default_types() -> String {
    "all".to_owned()
}

fn default_reta_size() -> usize {
    DEFAULT_RETA_SIZE
}

fn one() -> u16 {
    1
}

fn one32() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Virtual address and port.
    pub vip: SocketAddr,
    /// Protocol.
    pub proto: Proto,
    /// Forwarding mode.
    pub mode: Mode,
    /// Scheduler.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// TOA: the client's address and port in TCP option 254 of client → server segments
    /// (FULLNAT TCP only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub toa: bool,
    /// Real servers.
    #[serde(rename = "real_server", default)]
    pub real_servers: Vec<RealServer>,
}

/// A service's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

/// Forwarding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Source and destination rewritten (client → local address, VIP → RS).
    Fullnat,
    /// Destination rewritten in, source rewritten out.
    Nat,
}

/// Scheduler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Round robin.
    #[default]
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Weighted least connections.
    Wlc,
    /// Source hashing.
    Sh,
    /// Weighted Maglev.
    Maglev,
}

/// A real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// Address and port (port 0 means the VIP's port).
    pub addr: SocketAddr,
    /// Weight (0 = takes no new connections).
    #[serde(default = "one32")]
    pub weight: u32,
}

/// Which checks run; each defaults to on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Rewritten addresses and ports in both directions.
    #[serde(default = "yes")]
    pub rewrites: bool,
    /// IPv4 header and L4 checksums recomputed from scratch.
    #[serde(default = "yes")]
    pub checksums: bool,
    /// TTL / hop limit per [`TtlPolicy`].
    #[serde(default = "yes")]
    pub ttl: bool,
    /// A connection keeps its real server and local address/port.
    #[serde(default = "yes")]
    pub stickiness: bool,
    /// No (LIP, lport, RS, rport) shared by two live connections.
    #[serde(default = "yes")]
    pub unique_local: bool,
    /// Both directions of a connection handled by one worker.
    #[serde(default = "yes")]
    pub rss_affinity: bool,
    /// The NIC's RSS (the `[rss]` model) delivers both directions of every connection to
    /// one worker: on for RSS-aware local port choice without flow rules. Off by default;
    /// meaningless for NAT, which has no local port to choose.
    #[serde(default)]
    pub rss_steering: bool,
    /// TOA present exactly where it belongs, the other TCP options kept, the SYN-ACK's
    /// MSS lowered (services with `toa = true`; absent everywhere else).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub toa: bool,
    /// The schedulers' choices: rr balanced and wrr by weight on each worker, Maglev by
    /// the table, sh by client.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub distribution: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            rewrites: true,
            checksums: true,
            ttl: true,
            stickiness: true,
            unique_local: true,
            rss_affinity: true,
            rss_steering: false,
            toa: true,
            distribution: true,
        }
    }
}

/// Verdict counts the capture's author intended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Input packets to be forwarded.
    pub forward: u64,
    /// Input packets to be dropped, by reason (`malformed`, `ttl_expired`, …).
    #[serde(default)]
    pub drop: BTreeMap<String, u64>,
}

/// A scenario file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read the scenario: {message}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The TOML is invalid or does not fit the schema.
    #[error("{}", located(file, *line, *column, field, message))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The field, as a path like `service[0].real_server[1].weight` where known.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

fn located(file: &Path, line: usize, column: usize, field: &str, message: &str) -> String {
    let place = match (line, column) {
        (0, _) => format!("{}", file.display()),
        (l, 0) => format!("{}:{l}", file.display()),
        (l, c) => format!("{}:{l}:{c}", file.display()),
    };
    if field.is_empty() {
        format!("{place}: {message}")
    } else {
        format!("{place}: field `{field}`: {message}")
    }
}

impl ScenarioError {
    /// The offending field's path (empty when the error is not about one field).
    pub fn field(&self) -> &str {
        match self {
            ScenarioError::Read { .. } => "",
            ScenarioError::Invalid { field, .. } => field,
        }
    }

    /// The 1-based line, 0 when unknown.
    pub fn line(&self) -> usize {
        match self {
            ScenarioError::Read { .. } => 0,
            ScenarioError::Invalid { line, .. } => *line,
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates scenario text; `file` is used in messages only.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((0, 0));
            let message = e.message().trim().to_owned();
            let field = field_of_error(text, line, &message);
            ScenarioError::Invalid {
                file: file.to_owned(),
                line,
                column,
                field,
                message,
            }
        })?;
        scenario.validate().map_err(|(field, message)| {
            let line = locate(text, &field);
            ScenarioError::Invalid {
                file: file.to_owned(),
                line,
                column: 0,
                field,
                message,
            }
        })?;
        Ok(scenario)
    }

    /// Serialises the scenario as TOML.
    pub fn to_toml(&self) -> String {
        // Serialising these plain types cannot fail; an empty string would show it.
        toml::to_string(self).unwrap_or_default()
    }

    /// The input capture's path, resolved against the scenario file's directory.
    pub fn input_path(&self, scenario_file: &Path) -> PathBuf {
        match scenario_file.parent() {
            Some(dir) => dir.join(&self.input),
            None => self.input.clone(),
        }
    }

    /// The RSS model of the scenario (validated at load, so this does not fail then).
    pub fn rss_model(&self) -> Result<RssModel, crate::rss::RssError> {
        let key: RssKey = self.rss.key.parse()?;
        let types: HashTypes = self.rss.types.parse()?;
        RssModel::new(key, types, self.rss.reta_size, self.rss.queues)
    }

    /// The worker of each queue.
    pub fn queue_worker(&self) -> Vec<u16> {
        if self.rss.queue_worker.is_empty() {
            (0..self.rss.queues).collect()
        } else {
            self.rss.queue_worker.clone()
        }
    }

    /// Semantic checks; the error is (field path, message).
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_owned(), m));
        if self.services.is_empty() {
            return err("service", "no [[service]]: define at least one".to_owned());
        }
        if let Err(e) = self.rss_model() {
            let field = match e {
                crate::rss::RssError::KeyNotHex(_) | crate::rss::RssError::KeyLength(_) => {
                    "rss.key"
                }
                crate::rss::RssError::EmptyReta { .. } => "rss.queues",
                crate::rss::RssError::UnknownHashType(_) => "rss.types",
            };
            return err(field, e.to_string());
        }
        if !self.rss.queue_worker.is_empty()
            && self.rss.queue_worker.len() != usize::from(self.rss.queues)
        {
            return err(
                "rss.queue_worker",
                format!(
                    "{} entries for {} queues: give one worker per queue",
                    self.rss.queue_worker.len(),
                    self.rss.queues
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let at = |f: &str| format!("service[{i}]{f}");
            if !seen.insert((s.vip, s.proto)) {
                return err(
                    &at(".vip"),
                    format!("{} {:?} is defined twice", s.vip, s.proto),
                );
            }
            if s.real_servers.is_empty() {
                return err(
                    &at(".real_server"),
                    format!("service {} has no [[service.real_server]]", s.vip),
                );
            }
            if s.toa && (s.mode != Mode::Fullnat || s.proto != Proto::Tcp) {
                return err(
                    &at(".toa"),
                    format!(
                        "TOA works with mode = \"fullnat\" and proto = \"tcp\" only; service {} is {}/{:?}",
                        s.vip, s.mode, s.proto
                    ),
                );
            }
            if s.real_servers.iter().all(|r| r.weight == 0) {
                return err(
                    &at(".real_server"),
                    "every real server has weight 0: give one a weight ≥ 1".to_owned(),
                );
            }
            for (j, rs) in s.real_servers.iter().enumerate() {
                let f = at(&format!(".real_server[{j}].addr"));
                match s.mode {
                    Mode::Nat if rs.addr.is_ipv4() != s.vip.is_ipv4() => {
                        return err(
                            &f,
                            format!(
                                "NAT cannot translate between families ({} → {}): use mode = \"fullnat\"",
                                s.vip, rs.addr
                            ),
                        )
                    }
                    Mode::Fullnat
                        if !self
                            .local_addresses
                            .iter()
                            .any(|l| l.is_ipv4() == rs.addr.is_ipv4()) =>
                    {
                        return err(
                            &f,
                            format!(
                                "FULLNAT to {} needs a local address of its family in local_addresses",
                                rs.addr
                            ),
                        )
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The path of the field a TOML/serde error is about: the key written on the error's
/// line, or the field a `missing field` message names, under the enclosing table.
fn field_of_error(text: &str, line: usize, message: &str) -> String {
    let key = if message.starts_with("missing field") {
        backticked(message)
    } else {
        key_on_line(text, line).or_else(|| backticked(message))
    };
    let table = table_path_at(text, line);
    match (table.is_empty(), key) {
        (_, None) => table,
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
    }
}

/// The path of the table that encloses a (1-based) line, with array indices:
/// `service[1].real_server[0]`.
fn table_path_at(text: &str, line: usize) -> String {
    let mut resolved: BTreeMap<String, String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut current = String::new();
    for l in text.lines().take(line) {
        let t = l.trim();
        let (name, array) = if let Some(n) = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"))
        {
            (n.trim(), true)
        } else if let Some(n) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            (n.trim(), false)
        } else {
            continue;
        };
        let (parent, last) = match name.rsplit_once('.') {
            Some((p, l)) => (resolved.get(p).cloned().unwrap_or_else(|| p.to_owned()), l),
            None => (String::new(), name),
        };
        let prefix = if parent.is_empty() {
            String::new()
        } else {
            format!("{parent}.")
        };
        current = if array {
            let count = counts.entry(format!("{parent}/{name}")).or_insert(0);
            *count += 1;
            format!("{prefix}{last}[{}]", *count - 1)
        } else {
            format!("{prefix}{last}")
        };
        resolved.insert(name.to_owned(), current.clone());
    }
    current
}

/// The first `name` between backticks in a serde message (`missing field `vip``).
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message.get(start..)?.find('`')?;
    Some(message.get(start..start + len)?.to_owned())
}

/// The key assigned on a (1-based) line, as in `key = value`.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (key, _) = l.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

/// The line where a field path like `service[1].real_server[0].addr` is written, found
/// by walking the array-of-tables headers; 0 when not found.
fn locate(text: &str, path: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut table = String::new();
    let mut found = 0;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let full = if table.is_empty() {
            name.to_owned()
        } else {
            format!("{table}.{name}")
        };
        if let Some(index) = index {
            let header = format!("[[{full}]]");
            let hit = lines
                .iter()
                .enumerate()
                .skip(from)
                .filter(|(_, l)| l.trim() == header)
                .nth(index);
            match hit {
                Some((i, _)) => {
                    from = i + 1;
                    found = i + 1;
                }
                None => return found,
            }
            table = full;
        } else {
            let header = format!("[{full}]");
            if let Some(i) = lines.iter().skip(from).position(|l| l.trim() == header) {
                from += i + 1;
                found = from;
                table = full;
                continue;
            }
            let hit = lines.iter().enumerate().skip(from).find(|(_, l)| {
                let t = l.trim_start();
                t.starts_with('[')
                    || t.split_once('=')
                        .is_some_and(|(k, _)| k.trim() == name || k.trim() == segment)
            });
            if let Some((i, l)) = hit {
                if !l.trim_start().starts_with('[') {
                    found = i + 1;
                }
            }
            return found;
        }
    }
    found
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Fullnat => "fullnat",
            Mode::Nat => "nat",
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const GOOD: &str = r#"name = "t"
input = "x.pcap"
local_addresses = ["192.168.100.1"]

[rss]
queues = 2

[[service]]
vip = "10.0.0.100:80"
proto = "tcp"
mode = "fullnat"
scheduler = "wrr"

[[service.real_server]]
addr = "192.168.1.10:8080"
weight = 2

[[service.real_server]]
addr = "192.168.1.11:8080"
"#;

    #[test]
    fn parses_a_good_file() {
        let s = Scenario::parse(GOOD, Path::new("t.toml")).unwrap();
        assert_eq!(s.services[0].real_servers[1].weight, 1);
        assert_eq!(s.services[0].scheduler, Scheduler::Wrr);
        assert_eq!(s.queue_worker(), vec![0, 1]);
        assert!(s.check.rss_affinity);
        let again = Scenario::parse(&s.to_toml(), Path::new("t.toml")).unwrap();
        assert_eq!(again, s);
    }

    #[rstest]
    #[case::bad_vip("vip = \"10.0.0.100:80\"", "vip = \"10.0.0.100\"", 9, "service[0].vip")]
    #[case::bad_mode("mode = \"fullnat\"", "mode = \"dr\"", 11, "service[0].mode")]
    #[case::unknown_field(
        "scheduler = \"wrr\"",
        "schedular = \"wrr\"",
        12,
        "service[0].schedular"
    )]
    #[case::bad_weight("weight = 2", "weight = -2", 16, "service[0].real_server[0].weight")]
    #[case::bad_topology("queues = 2", "queues = 2\ntypes = 3", 7, "rss.types")]
    #[case::bad_key("queues = 2", "queues = 2\nkey = \"abcd\"", 7, "rss.key")]
    #[case::missing_vip("vip = \"10.0.0.100:80\"", "", 0, "service[0].vip")]
    fn errors_name_line_and_field(
        #[case] from: &str,
        #[case] to: &str,
        #[case] line: usize,
        #[case] field: &str,
    ) {
        let text = GOOD.replacen(from, to, 1);
        let e = Scenario::parse(&text, Path::new("pcaps/t.toml")).unwrap_err();
        assert_eq!(e.field(), field, "{e}");
        if line != 0 {
            assert_eq!(e.line(), line, "{e}");
        }
        assert!(e.to_string().starts_with("pcaps/t.toml:"), "{e}");
    }

    #[test]
    fn semantic_error_points_at_the_real_server() {
        // NAT between families: the second real server is IPv6.
        let text = GOOD
            .replacen("mode = \"fullnat\"", "mode = \"nat\"", 1)
            .replace("192.168.1.10:8080", "10.0.0.1:8080")
            .replace("192.168.1.11:8080", "[2001:db8::1]:8080");
        let e = Scenario::parse(&text, Path::new("t.toml")).unwrap_err();
        assert_eq!(e.field(), "service[0].real_server[1].addr");
        assert_eq!(e.line(), 19, "{e}");
    }
}
