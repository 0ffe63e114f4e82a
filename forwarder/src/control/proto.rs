//! The control-socket protocol and the `forwarder ctl` command line.
//!
//! One request per line, one response per line, both JSON ([`Request`], [`Response`]).
//! [`parse_cli`] turns ipvsadm-like words into a [`Request`]:
//!
//! ```text
//! forwarder ctl service add --vip 10.0.0.1:80 --proto tcp --mode fullnat --sched maglev
//! forwarder ctl rs add --vip 10.0.0.1:80 --rs 192.168.1.10:8080 --weight 2
//! forwarder ctl conn list --worker 1 --state established --json
//! forwarder ctl stats
//! ```
//!
//! and [`render_table`] / [`render_json`] print the answer.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::control::config::{
    is_prime, MacAddr, Mode, Proto, Scheduler, MAX_MAGLEV_TABLE_SIZE, MAX_WEIGHT,
};
use crate::control::metrics::StatsSnapshot;

/// Default bound on the connections `conn list` returns.
pub const DEFAULT_CONN_LIMIT: u32 = 1000;

/// A real-server weight, 0..=[`MAX_WEIGHT`]; out-of-range values do not deserialise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Weight(u32);

impl Weight {
    /// A weight, if `w` is at most [`MAX_WEIGHT`].
    pub fn new(w: u32) -> Option<Weight> {
        (w <= MAX_WEIGHT).then_some(Weight(w))
    }

    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Weight {
    fn default() -> Weight {
        Weight(1)
    }
}

impl TryFrom<u32> for Weight {
    type Error = String;

    fn try_from(w: u32) -> Result<Weight, String> {
        Weight::new(w).ok_or_else(|| format!("weight {w} is above the maximum {MAX_WEIGHT}"))
    }
}

impl From<Weight> for u32 {
    fn from(w: Weight) -> u32 {
        w.0
    }
}

/// Identifies a service: virtual address, port and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceKey {
    /// Virtual address and port.
    pub vip: SocketAddr,
    /// Protocol.
    pub proto: Proto,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.vip, self.proto)
    }
}

/// A service to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Which service.
    pub key: ServiceKey,
    /// Forwarding mode.
    pub mode: Mode,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Insert the TCP option address (FULLNAT TCP only).
    #[serde(default)]
    pub toa: bool,
    /// Client persistence timeout.
    #[serde(default, with = "opt_secs")]
    pub persistence: Option<Duration>,
}

/// A real server to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerSpec {
    /// Address and port.
    pub addr: SocketAddr,
    /// Weight.
    #[serde(default)]
    pub weight: Weight,
    /// Static MAC address (DR).
    #[serde(default)]
    pub mac: Option<MacAddr>,
}

/// Connection state, as `conn list` shows and filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnState {
    /// TCP NONE.
    None,
    /// TCP ESTABLISHED.
    Established,
    /// TCP SYN_SENT.
    SynSent,
    /// TCP SYN_RECV.
    SynRecv,
    /// TCP FIN_WAIT.
    FinWait,
    /// TCP TIME_WAIT.
    TimeWait,
    /// TCP CLOSE.
    Close,
    /// TCP CLOSE_WAIT.
    CloseWait,
    /// TCP LAST_ACK.
    LastAck,
    /// TCP LISTEN.
    Listen,
    /// TCP SYNACK.
    SynAck,
    /// UDP, replies seen.
    UdpNormal,
    /// UDP, client packets only.
    UdpOneway,
}

impl ConnState {
    /// Every state.
    pub const ALL: [ConnState; 13] = [
        ConnState::None,
        ConnState::Established,
        ConnState::SynSent,
        ConnState::SynRecv,
        ConnState::FinWait,
        ConnState::TimeWait,
        ConnState::Close,
        ConnState::CloseWait,
        ConnState::LastAck,
        ConnState::Listen,
        ConnState::SynAck,
        ConnState::UdpNormal,
        ConnState::UdpOneway,
    ];

    /// The snake_case name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "none",
            ConnState::Established => "established",
            ConnState::SynSent => "syn_sent",
            ConnState::SynRecv => "syn_recv",
            ConnState::FinWait => "fin_wait",
            ConnState::TimeWait => "time_wait",
            ConnState::Close => "close",
            ConnState::CloseWait => "close_wait",
            ConnState::LastAck => "last_ack",
            ConnState::Listen => "listen",
            ConnState::SynAck => "syn_ack",
            ConnState::UdpNormal => "udp_normal",
            ConnState::UdpOneway => "udp_oneway",
        }
    }
}

impl FromStr for ConnState {
    type Err = String;

    fn from_str(s: &str) -> Result<ConnState, String> {
        ConnState::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ConnState::ALL.iter().map(|c| c.name()).collect();
                format!("expected one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which connections `conn list` returns (all given conditions must hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnFilter {
    /// Owned by this worker.
    #[serde(default)]
    pub worker: Option<u16>,
    /// Of this service (address and port).
    #[serde(default)]
    pub vip: Option<SocketAddr>,
    /// Of this protocol.
    #[serde(default)]
    pub proto: Option<Proto>,
    /// From this client address.
    #[serde(default)]
    pub client: Option<IpAddr>,
    /// To this real server.
    #[serde(default)]
    pub rs: Option<SocketAddr>,
    /// In this state.
    #[serde(default)]
    pub state: Option<ConnState>,
    /// At most this many (default [`DEFAULT_CONN_LIMIT`]).
    #[serde(default = "default_limit")]
    pub limit: u32,
}

impl Default for ConnFilter {
    fn default() -> ConnFilter {
        ConnFilter {
            worker: None,
            vip: None,
            proto: None,
            client: None,
            rs: None,
            state: None,
            limit: DEFAULT_CONN_LIMIT,
        }
    }
}

fn default_limit() -> u32 {
    DEFAULT_CONN_LIMIT
}

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `service add`.
    ServiceAdd {
        /// The service.
        service: ServiceSpec,
    },
    /// `service del`: removes the service and its connections.
    ServiceDel {
        /// Which service.
        service: ServiceKey,
    },
    /// `service list`: services with their real servers.
    ServiceList,
    /// `rs add`.
    RsAdd {
        /// To which service.
        service: ServiceKey,
        /// The real server.
        rs: RealServerSpec,
    },
    /// `rs del`.
    RsDel {
        /// From which service.
        service: ServiceKey,
        /// Which real server.
        addr: SocketAddr,
    },
    /// `rs edit`: changes the weight.
    RsEdit {
        /// Of which service.
        service: ServiceKey,
        /// Which real server.
        addr: SocketAddr,
        /// The new weight.
        weight: Weight,
    },
    /// `laddr add`.
    LaddrAdd {
        /// Port name.
        port: String,
        /// Address.
        addr: IpAddr,
    },
    /// `laddr del`.
    LaddrDel {
        /// Port name.
        port: String,
        /// Address.
        addr: IpAddr,
    },
    /// `laddr list`.
    LaddrList {
        /// Only this port.
        #[serde(default)]
        port: Option<String>,
    },
    /// `conn list`.
    ConnList {
        /// Which connections.
        #[serde(default)]
        filter: ConnFilter,
    },
    /// `stats`.
    Stats,
}

/// A real server as `service list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerInfo {
    /// Address and port.
    pub addr: SocketAddr,
    /// Weight.
    pub weight: u32,
    /// Established connections.
    pub active_conns: u64,
    /// Other connections.
    pub inactive_conns: u64,
}

/// A service as `service list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Which service.
    pub key: ServiceKey,
    /// Mode.
    pub mode: Mode,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// TOA on.
    pub toa: bool,
    /// Persistence timeout.
    #[serde(default, with = "opt_secs")]
    pub persistence: Option<Duration>,
    /// Its real servers.
    pub real_servers: Vec<RealServerInfo>,
}

/// A local address as `laddr list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaddrInfo {
    /// Port name.
    pub port: String,
    /// Address.
    pub addr: IpAddr,
    /// Connections using it.
    pub conns: u64,
}

/// A connection as `conn list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// Owning worker.
    pub worker: u16,
    /// Protocol.
    pub proto: Proto,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub vip: SocketAddr,
    /// Local address and port (FULLNAT).
    pub laddr: Option<SocketAddr>,
    /// Real server.
    pub rs: SocketAddr,
    /// State.
    pub state: ConnState,
    /// Milliseconds until it expires if idle.
    pub expires_ms: u64,
}

/// A control response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The change was applied by every worker.
    Ok,
    /// The request was refused; nothing changed.
    Error {
        /// What went wrong and what to do.
        message: String,
    },
    /// Answer to `service list`.
    Services {
        /// The services.
        services: Vec<ServiceInfo>,
    },
    /// Answer to `laddr list`.
    Laddrs {
        /// The local addresses.
        laddrs: Vec<LaddrInfo>,
    },
    /// Answer to `conn list`.
    Conns {
        /// The connections.
        conns: Vec<ConnInfo>,
        /// More connections matched than the limit.
        truncated: bool,
    },
    /// Answer to `stats`.
    Stats {
        /// The counters.
        stats: StatsSnapshot,
    },
}

impl Response {
    /// An error response.
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
        }
    }

    /// Whether this is [`Response::Error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Response::Error { .. })
    }
}

/// Durations as whole seconds in JSON.
mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

// ---------------------------------------------------------------------------------------
// Command line.

/// How `ctl` prints the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A readable table.
    Table,
    /// One JSON document (`--json`).
    Json,
}

/// A parsed `forwarder ctl …` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliCommand {
    /// What to ask.
    pub request: Request,
    /// How to print the answer.
    pub output: Output,
    /// `--socket PATH`, if given (else the config's or the default).
    pub socket: Option<PathBuf>,
}

/// A `ctl` command line that cannot be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CliError {
    /// Nothing after `ctl`.
    #[error("no command; expected one of: {}", COMMANDS.join(", "))]
    Empty,
    /// The first word is not a command.
    #[error("unknown command `{word}`; expected one of: {}", COMMANDS.join(", "))]
    UnknownCommand {
        /// The word given.
        word: String,
    },
    /// The command needs a verb.
    #[error("`{command}` needs a verb: {}", expected.join(", "))]
    MissingVerb {
        /// The command.
        command: String,
        /// Its verbs.
        expected: Vec<&'static str>,
    },
    /// The verb is not one of the command's.
    #[error("unknown verb `{verb}` for `{command}`; expected one of: {}", expected.join(", "))]
    UnknownVerb {
        /// The command.
        command: String,
        /// The word given.
        verb: String,
        /// Its verbs.
        expected: Vec<&'static str>,
    },
    /// A flag the verb does not take.
    #[error("`{command}` has no flag `{flag}`; its flags: {}", expected.join(" "))]
    UnknownFlag {
        /// Command and verb.
        command: String,
        /// The flag given.
        flag: String,
        /// The flags it takes.
        expected: Vec<&'static str>,
    },
    /// A word that is not a flag where a flag was expected.
    #[error("unexpected argument `{0}`; flags start with --")]
    Unexpected(String),
    /// A flag given twice.
    #[error("flag `{0}` is given twice")]
    DuplicateFlag(String),
    /// A flag that needs a value got none.
    #[error("flag `{0}` needs a value")]
    MissingValue(String),
    /// A required flag is missing.
    #[error("`{command}` needs `{flag}` ({what})")]
    MissingFlag {
        /// Command and verb.
        command: String,
        /// The flag.
        flag: &'static str,
        /// What it means.
        what: &'static str,
    },
    /// A flag's value is malformed.
    #[error("bad value `{value}` for `{flag}`: {reason}")]
    BadValue {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// What would be right.
        reason: String,
    },
}

/// The commands `ctl` knows.
pub const COMMANDS: [&str; 5] = ["service", "rs", "laddr", "conn", "stats"];

/// Flags every verb takes.
const COMMON_FLAGS: [&str; 2] = ["--json", "--socket"];
/// Flags that take no value.
const SWITCHES: [&str; 2] = ["--json", "--toa"];

/// Parses the words after `forwarder ctl`.
pub fn parse_cli<S: AsRef<str>>(words: &[S]) -> Result<CliCommand, CliError> {
    let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    let (&command, rest) = words.split_first().ok_or(CliError::Empty)?;
    let verbs: &[&'static str] = match command {
        "service" => &["add", "del", "list"],
        "rs" => &["add", "del", "edit"],
        "laddr" => &["add", "del", "list"],
        "conn" => &["list"],
        "stats" => &[],
        other => {
            return Err(CliError::UnknownCommand {
                word: other.to_owned(),
            })
        }
    };
    let (verb, flags) = if verbs.is_empty() {
        ("", rest)
    } else {
        match rest.split_first() {
            None => {
                return Err(CliError::MissingVerb {
                    command: command.to_owned(),
                    expected: verbs.to_vec(),
                })
            }
            Some((&v, _)) if v.starts_with("--") => {
                return Err(CliError::MissingVerb {
                    command: command.to_owned(),
                    expected: verbs.to_vec(),
                })
            }
            Some((&v, flags)) => {
                if !verbs.contains(&v) {
                    return Err(CliError::UnknownVerb {
                        command: command.to_owned(),
                        verb: v.to_owned(),
                        expected: verbs.to_vec(),
                    });
                }
                (v, flags)
            }
        }
    };
    let name = if verb.is_empty() {
        command.to_owned()
    } else {
        format!("{command} {verb}")
    };
    let allowed: &[&'static str] = match (command, verb) {
        ("service", "add") => &[
            "--vip",
            "--proto",
            "--mode",
            "--sched",
            "--maglev-size",
            "--toa",
            "--persistence",
        ],
        ("service", "del") => &["--vip", "--proto"],
        ("rs", "add") => &["--vip", "--proto", "--rs", "--weight", "--mac"],
        ("rs", "del") => &["--vip", "--proto", "--rs"],
        ("rs", "edit") => &["--vip", "--proto", "--rs", "--weight"],
        ("laddr", "add" | "del") => &["--port", "--addr"],
        ("laddr", "list") => &["--port"],
        ("conn", "list") => &[
            "--worker", "--vip", "--proto", "--client", "--rs", "--state", "--limit",
        ],
        _ => &[],
    };
    let mut f = Flags::parse(&name, flags, allowed)?;
    let request = match (command, verb) {
        ("service", "add") => {
            let key = f.service_key()?;
            let mode: Mode = f.required("--mode", "fullnat, nat, dr or tunnel")?;
            let mut scheduler: Scheduler = f.optional("--sched")?.unwrap_or(Scheduler::Wlc);
            if let Some(size) = f.optional::<u32>("--maglev-size")? {
                let Scheduler::Maglev { table_size } = &mut scheduler else {
                    return Err(bad_value(
                        "--maglev-size",
                        size,
                        "applies to --sched maglev only",
                    ));
                };
                if !(3..=MAX_MAGLEV_TABLE_SIZE).contains(&size) || !is_prime(size) {
                    return Err(bad_value(
                        "--maglev-size",
                        size,
                        &format!("expected a prime from 3 to {MAX_MAGLEV_TABLE_SIZE} (e.g. 65537)"),
                    ));
                }
                *table_size = size;
            }
            let toa = f.switch("--toa");
            if toa && (mode != Mode::FullNat || key.proto != Proto::Tcp) {
                return Err(CliError::BadValue {
                    flag: "--toa".into(),
                    value: format!("{mode}/{}", key.proto),
                    reason: "TOA needs --mode fullnat and --proto tcp".into(),
                });
            }
            let persistence = match f.take("--persistence") {
                None => None,
                Some(v) => Some(parse_duration("--persistence", &v)?),
            };
            Request::ServiceAdd {
                service: ServiceSpec {
                    key,
                    mode,
                    scheduler,
                    toa,
                    persistence,
                },
            }
        }
        ("service", "del") => Request::ServiceDel {
            service: f.service_key()?,
        },
        ("service", "list") => Request::ServiceList,
        ("rs", "add") => {
            let service = f.service_key()?;
            let addr = f.required_addr("--rs", "the real server's address:port")?;
            let weight = f.weight()?.unwrap_or_default();
            let mac = f.optional("--mac")?;
            Request::RsAdd {
                service,
                rs: RealServerSpec { addr, weight, mac },
            }
        }
        ("rs", "del") => Request::RsDel {
            service: f.service_key()?,
            addr: f.required_addr("--rs", "the real server's address:port")?,
        },
        ("rs", "edit") => {
            let service = f.service_key()?;
            let addr = f.required_addr("--rs", "the real server's address:port")?;
            let weight = f.weight()?.ok_or(CliError::MissingFlag {
                command: name.clone(),
                flag: "--weight",
                what: "the new weight, 0 to 65535",
            })?;
            Request::RsEdit {
                service,
                addr,
                weight,
            }
        }
        ("laddr", "add" | "del") => {
            let port = f.take("--port").ok_or(CliError::MissingFlag {
                command: name.clone(),
                flag: "--port",
                what: "the name of a [[port]]",
            })?;
            let addr: IpAddr = f.required("--addr", "an IP address")?;
            if verb == "add" {
                Request::LaddrAdd { port, addr }
            } else {
                Request::LaddrDel { port, addr }
            }
        }
        ("laddr", "list") => Request::LaddrList {
            port: f.take("--port"),
        },
        ("conn", "list") => {
            let vip = match f.take("--vip") {
                None => None,
                Some(v) => Some(parse_socket_addr("--vip", &v)?),
            };
            let rs = match f.take("--rs") {
                None => None,
                Some(v) => Some(parse_socket_addr("--rs", &v)?),
            };
            let limit = f.optional::<u32>("--limit")?.unwrap_or(DEFAULT_CONN_LIMIT);
            if limit == 0 {
                return Err(bad_value("--limit", limit, "expected a positive number"));
            }
            Request::ConnList {
                filter: ConnFilter {
                    worker: f.optional("--worker")?,
                    vip,
                    proto: f.optional("--proto")?,
                    client: f.optional("--client")?,
                    rs,
                    state: f.optional("--state")?,
                    limit,
                },
            }
        }
        _ => Request::Stats,
    };
    Ok(CliCommand {
        request,
        output: if f.switch("--json") {
            Output::Json
        } else {
            Output::Table
        },
        socket: f.take("--socket").map(PathBuf::from),
    })
}

/// The flags of one command line, by name.
struct Flags {
    command: String,
    values: Vec<(&'static str, String)>,
}

impl Flags {
    fn parse(command: &str, words: &[&str], allowed: &[&'static str]) -> Result<Flags, CliError> {
        let mut values: Vec<(&'static str, String)> = Vec::new();
        let mut i = 0;
        while let Some(&word) = words.get(i) {
            i += 1;
            if !word.starts_with("--") {
                return Err(CliError::Unexpected(word.to_owned()));
            }
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (word, None),
            };
            let Some(&known) = allowed
                .iter()
                .chain(COMMON_FLAGS.iter())
                .find(|&&a| a == flag)
            else {
                let mut expected = allowed.to_vec();
                expected.extend(COMMON_FLAGS);
                return Err(CliError::UnknownFlag {
                    command: command.to_owned(),
                    flag: flag.to_owned(),
                    expected,
                });
            };
            if values.iter().any(|(f, _)| *f == known) {
                return Err(CliError::DuplicateFlag(known.to_owned()));
            }
            let value = if SWITCHES.contains(&known) {
                if inline.is_some() {
                    return Err(CliError::BadValue {
                        flag: known.to_owned(),
                        value: inline.unwrap_or_default(),
                        reason: "this flag takes no value".into(),
                    });
                }
                String::new()
            } else if let Some(v) = inline {
                v
            } else {
                match words.get(i) {
                    Some(v) if !v.starts_with("--") => {
                        i += 1;
                        (*v).to_owned()
                    }
                    _ => return Err(CliError::MissingValue(known.to_owned())),
                }
            };
            if value.is_empty() && !SWITCHES.contains(&known) {
                return Err(CliError::MissingValue(known.to_owned()));
            }
            values.push((known, value));
        }
        Ok(Flags {
            command: command.to_owned(),
            values,
        })
    }

    fn take(&mut self, flag: &str) -> Option<String> {
        let i = self.values.iter().position(|(f, _)| *f == flag)?;
        Some(self.values.swap_remove(i).1)
    }

    fn switch(&mut self, flag: &str) -> bool {
        self.take(flag).is_some()
    }

    fn optional<T: FromStr>(&mut self, flag: &'static str) -> Result<Option<T>, CliError>
    where
        T::Err: fmt::Display,
    {
        match self.take(flag) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|e: T::Err| CliError::BadValue {
                flag: flag.to_owned(),
                value: v.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn required<T: FromStr>(
        &mut self,
        flag: &'static str,
        what: &'static str,
    ) -> Result<T, CliError>
    where
        T::Err: fmt::Display,
    {
        self.optional(flag)?.ok_or(CliError::MissingFlag {
            command: self.command.clone(),
            flag,
            what,
        })
    }

    fn required_addr(
        &mut self,
        flag: &'static str,
        what: &'static str,
    ) -> Result<SocketAddr, CliError> {
        let v = self.take(flag).ok_or(CliError::MissingFlag {
            command: self.command.clone(),
            flag,
            what,
        })?;
        parse_socket_addr(flag, &v)
    }

    fn service_key(&mut self) -> Result<ServiceKey, CliError> {
        let vip = self.required_addr("--vip", "the service's address:port, e.g. 10.0.0.1:80")?;
        let proto = self.optional("--proto")?.unwrap_or(Proto::Tcp);
        Ok(ServiceKey { vip, proto })
    }

    fn weight(&mut self) -> Result<Option<Weight>, CliError> {
        let Some(v) = self.take("--weight") else {
            return Ok(None);
        };
        v.parse::<u32>()
            .ok()
            .and_then(Weight::new)
            .map(Some)
            .ok_or(CliError::BadValue {
                flag: "--weight".into(),
                value: v,
                reason: format!("expected an integer from 0 to {MAX_WEIGHT}"),
            })
    }
}

fn bad_value(flag: &str, value: impl fmt::Display, reason: &str) -> CliError {
    CliError::BadValue {
        flag: flag.to_owned(),
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

fn parse_socket_addr(flag: &str, v: &str) -> Result<SocketAddr, CliError> {
    let bad = |reason: &str| CliError::BadValue {
        flag: flag.to_owned(),
        value: v.to_owned(),
        reason: reason.to_owned(),
    };
    let addr: SocketAddr = v.parse().map_err(|_| {
        if v.parse::<IpAddr>().is_ok() {
            bad("the port is missing: expected address:port such as 10.0.0.1:80 or [2001:db8::1]:80")
        } else {
            bad("expected address:port such as 10.0.0.1:80 or [2001:db8::1]:80")
        }
    })?;
    if addr.port() == 0 {
        return Err(bad("the port must not be 0"));
    }
    Ok(addr)
}

fn parse_duration(flag: &str, v: &str) -> Result<Duration, CliError> {
    match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(CliError::BadValue {
            flag: flag.to_owned(),
            value: v.to_owned(),
            reason: "must be longer than zero".into(),
        }),
        Err(e) => Err(CliError::BadValue {
            flag: flag.to_owned(),
            value: v.to_owned(),
            reason: format!("expected a duration such as 300s or 5m ({e})"),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Rendering.

/// The response as pretty JSON (one document, ending in a newline).
pub fn render_json(response: &Response) -> String {
    // Serialising these plain data types into a String cannot fail (no maps with
    // non-string keys, no failing Serialize impls); fall back to an error object anyway.
    let mut s = serde_json::to_string_pretty(response).unwrap_or_else(|e| {
        format!("{{\"result\": \"error\", \"message\": \"cannot encode the response: {e}\"}}")
    });
    s.push('\n');
    s
}

/// The response as a readable table.
pub fn render_table(response: &Response) -> String {
    match response {
        Response::Ok => "ok\n".to_owned(),
        Response::Error { message } => format!("error: {message}\n"),
        Response::Services { services } => render_services(services),
        Response::Laddrs { laddrs } => table(
            &["PORT", "ADDRESS", "CONNS"],
            laddrs
                .iter()
                .map(|l| vec![l.port.clone(), l.addr.to_string(), l.conns.to_string()])
                .collect(),
        ),
        Response::Conns { conns, truncated } => {
            let mut s = table(
                &[
                    "WORKER",
                    "PROTO",
                    "CLIENT",
                    "VIP",
                    "LOCAL",
                    "REAL SERVER",
                    "STATE",
                    "EXPIRES",
                ],
                conns
                    .iter()
                    .map(|c| {
                        vec![
                            c.worker.to_string(),
                            c.proto.to_string(),
                            c.client.to_string(),
                            c.vip.to_string(),
                            c.laddr.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                            c.rs.to_string(),
                            c.state.to_string(),
                            format!("{:.1}s", c.expires_ms as f64 / 1000.0),
                        ]
                    })
                    .collect(),
            );
            if *truncated {
                s.push_str("(more connections matched; raise --limit to see them)\n");
            }
            s
        }
        Response::Stats { stats } => render_stats(stats),
    }
}

fn render_services(services: &[ServiceInfo]) -> String {
    let mut rows = Vec::new();
    for s in services {
        let mut flags = Vec::new();
        if s.toa {
            flags.push("toa".to_owned());
        }
        if let Some(p) = s.persistence {
            flags.push(format!("persistent {}s", p.as_secs()));
        }
        rows.push(vec![
            s.key.proto.to_string().to_uppercase(),
            s.key.vip.to_string(),
            s.mode.to_string(),
            s.scheduler.to_string(),
            flags.join(","),
            String::new(),
            String::new(),
        ]);
        for r in &s.real_servers {
            rows.push(vec![
                String::new(),
                format!("  -> {}", r.addr),
                String::new(),
                String::new(),
                r.weight.to_string(),
                r.active_conns.to_string(),
                r.inactive_conns.to_string(),
            ]);
        }
    }
    table(
        &[
            "PROTO",
            "ADDRESS",
            "MODE",
            "SCHED",
            "FLAGS/WEIGHT",
            "ACTIVE",
            "INACTIVE",
        ],
        rows,
    )
}

fn render_stats(stats: &StatsSnapshot) -> String {
    let mut out = format!("steering: {}\n", stats.steering);
    if let Some(f) = &stats.fault {
        let by_worker: Vec<String> = f
            .by_worker
            .iter()
            .map(|(w, n)| format!("worker {w}: {n}"))
            .collect();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "FAULT INJECTION ON: {} every {} eligible packets; injected {} ({})",
            f.kind,
            f.every,
            f.injected,
            by_worker.join(", ")
        );
    }
    out.push('\n');
    out.push_str(&table(
        &[
            "WORKER",
            "LCORE",
            "RX PKTS",
            "RX BYTES",
            "TX PKTS",
            "TX BYTES",
            "DROPS",
            "REDIRECTS",
            "CONNS",
        ],
        stats
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.id.to_string(),
                    w.lcore.to_string(),
                    w.rx_packets.to_string(),
                    w.rx_bytes.to_string(),
                    w.tx_packets.to_string(),
                    w.tx_bytes.to_string(),
                    w.drops.values().sum::<u64>().to_string(),
                    w.redirects.to_string(),
                    w.conns.to_string(),
                ]
            })
            .collect(),
    ));
    let drops: Vec<Vec<String>> = stats
        .workers
        .iter()
        .flat_map(|w| {
            w.drops
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(reason, n)| vec![w.id.to_string(), reason.clone(), n.to_string()])
        })
        .collect();
    if !drops.is_empty() {
        out.push('\n');
        out.push_str(&table(&["WORKER", "DROP REASON", "PACKETS"], drops));
    }
    out.push('\n');
    out.push_str(&table(
        &["SERVICE", "MODE", "PACKETS", "BYTES", "CONNS", "CREATED"],
        stats
            .services
            .iter()
            .map(|s| {
                vec![
                    format!("{}/{}", s.vip, s.proto),
                    s.mode.to_string(),
                    s.packets.to_string(),
                    s.bytes.to_string(),
                    s.conns.to_string(),
                    s.conns_created.to_string(),
                ]
            })
            .collect(),
    ));
    out.push('\n');
    out.push_str(&table(
        &[
            "PORT", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES", "MISSED", "RX ERR", "TX ERR",
            "STEERING",
        ],
        stats
            .ports
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.rx_packets.to_string(),
                    p.rx_bytes.to_string(),
                    p.tx_packets.to_string(),
                    p.tx_bytes.to_string(),
                    p.rx_missed.to_string(),
                    p.rx_errors.to_string(),
                    p.tx_errors.to_string(),
                    p.steering.clone(),
                ]
            })
            .collect(),
    ));
    if !stats.neighbours.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &["NEXT HOP", "PORT", "ROLE", "MAC", "REQUESTS"],
            stats
                .neighbours
                .iter()
                .map(|n| {
                    vec![
                        n.addr.clone(),
                        n.port.clone(),
                        n.role.clone(),
                        n.mac.clone().unwrap_or_else(|| "(unresolved)".into()),
                        n.requests.to_string(),
                    ]
                })
                .collect(),
        ));
    }
    out
}

/// Left-aligned columns separated by two spaces; trailing spaces trimmed.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            // Writing to a String cannot fail.
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::metrics::FaultStats;

    #[test]
    fn stats_say_loudly_when_a_fault_is_injected() {
        let mut s = StatsSnapshot::default();
        assert!(!render_stats(&s).contains("FAULT"));
        s.fault = Some(FaultStats {
            kind: "wrong_rs".into(),
            every: 3,
            injected: 4,
            by_worker: vec![(0, 1), (1, 3)],
        });
        let text = render_stats(&s);
        assert!(
            text.contains(
                "FAULT INJECTION ON: wrong_rs every 3 eligible packets; injected 4 \
                 (worker 0: 1, worker 1: 3)"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["fault"]["kind"], "wrong_rs");
        assert_eq!(json["fault"]["injected"], 4);
        // A snapshot from a forwarder without the field still reads.
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("fault");
        let back: StatsSnapshot = serde_json::from_value(old).unwrap();
        assert_eq!(back.fault, None);
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "LONG HEADER"],
            vec![vec!["wide cell".into(), "x".into()]],
        );
        assert_eq!(t, "A          LONG HEADER\nwide cell  x\n");
    }

    #[test]
    fn weights_are_bounded() {
        assert_eq!(Weight::new(65535).map(Weight::get), Some(65535));
        assert_eq!(Weight::new(65536), None);
        assert!(serde_json::from_str::<Weight>("70000").is_err());
        assert_eq!(serde_json::from_str::<Weight>("7").ok(), Weight::new(7));
    }

    #[test]
    fn conn_states_parse_by_name() {
        for s in ConnState::ALL {
            assert_eq!(s.name().parse::<ConnState>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
        }
        assert!("establish".parse::<ConnState>().is_err());
    }
}
