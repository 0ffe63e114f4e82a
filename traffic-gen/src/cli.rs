//! The command line: clap parses strings into [`crate::units`] values, then
//! [`Args::into_config`] checks how they fit together and yields a typed [`Config`]. Any
//! error here exits with code 2 before the EAL starts.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::flows::{FlowOrder, FlowSpace, TooManyFlows};
use crate::replay::Retarget;
use crate::template::Proto;
use crate::units::{self, Cidr, Endpoints, FrameSize, PortRange, Rate, ReplayMode};

/// A configuration that parses but does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// More flows than the address/port space holds.
    #[error(transparent)]
    TooManyFlows(#[from] TooManyFlows),
    /// `--cores 0` or more than 64.
    #[error("--cores {0}: use 1 to 64")]
    Cores(u16),
    /// `--replay-mode pps` without `--pps`.
    #[error("--replay-mode pps needs a rate in packets/s: add --pps, e.g. --pps 1M")]
    ReplayNeedsPps,
    /// pcap replay runs on one core.
    #[error("pcap replay runs on one core: drop --cores or use --cores 1")]
    ReplayOneCore,
    /// `--loop 0`.
    #[error("--loop 0: use 1 or more")]
    ZeroLoops,
    /// TCP traffic cannot carry latency stamps.
    #[error("--latency-every works with --proto udp only (stamps live in the UDP payload)")]
    LatencyNeedsUdp,
    /// A run would never end.
    #[error("the run would never end: give --count or --duration")]
    Endless,
    /// `--response-bytes` without a responder.
    #[error("--response-bytes needs --respond or --respond-to")]
    ResponseBytesAlone,
    /// A value that needs the port (link share) could not be resolved.
    #[error("{0}")]
    Runtime(String),
}

/// `traffic-gen`: a DPDK packet generator, pcap replayer and server emulator.
///
/// Rates: `10M` = 10 Mpps, `1.5Gbps` = bits/s on the wire (frame + FCS + 20 B of
/// preamble and gap), `40%` = share of the reported link speed, `max` = unpaced. Sizes
/// are frame lengths with FCS (64..1518) or `imix` (7:4:1 of 64/570/1518). Counts take
/// k/M/G multipliers (`--flows 1M`). EAL arguments follow `--`.
#[derive(Debug, Clone, Parser)]
#[command(name = "traffic-gen", version)]
pub struct Args {
    /// Transmit rate: pps (`10M`), bits/s (`1.5Gbps`), link share (`40%`) or `max`.
    #[arg(long, default_value = "max", value_parser = clap::value_parser!(Rate))]
    pub pps: Rate,
    /// Stop after this long (`30s`, `500ms`).
    #[arg(long, value_parser = units::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many packets (transmitted; received with --respond).
    #[arg(long, value_parser = units::parse_count)]
    pub count: Option<u64>,
    /// Frame size with FCS (64..1518) or `imix`.
    #[arg(long, default_value = "64", value_parser = clap::value_parser!(FrameSize))]
    pub size: FrameSize,
    /// Distinct flows (5-tuples) to send.
    #[arg(long, default_value = "1", value_parser = units::parse_count)]
    pub flows: u64,
    /// `udp`, `tcp-syn` or `tcp-session` (open-loop SYN, data, FIN per flow).
    #[arg(long, default_value = "udp", value_parser = parse_proto)]
    pub proto: Proto,
    /// Destinations, `VIP:PORT[,VIP:PORT...]`; flows cycle over them.
    #[arg(long, default_value = "198.18.0.1:80", value_parser = clap::value_parser!(Endpoints))]
    pub dst: Endpoints,
    /// Source prefix flows draw addresses from.
    #[arg(long, default_value = "10.0.0.0/16", value_parser = clap::value_parser!(Cidr))]
    pub src: Cidr,
    /// Source port range.
    #[arg(long, default_value = "1024-65535", value_parser = clap::value_parser!(PortRange))]
    pub sport: PortRange,
    /// Visit flows in a seeded random order (a permutation: each flow once per cycle).
    #[arg(long)]
    pub random_flows: bool,
    /// Seed for --random-flows.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker cores: one tx and one rx queue each.
    #[arg(long, default_value_t = 1)]
    pub cores: u16,
    /// Software RSS: put each flow on the queue the Toeplitz hash of its tuple picks.
    #[arg(long)]
    pub rss: bool,
    /// Stamp every Nth UDP packet for latency (0: off).
    #[arg(long, default_value_t = 0)]
    pub latency_every: u64,
    /// Destination MAC of generated frames.
    #[arg(long, default_value = "02:00:00:00:00:02", value_parser = units::parse_mac)]
    pub dst_mac: [u8; 6],
    /// Source MAC of generated frames (default: the port's).
    #[arg(long, value_parser = units::parse_mac)]
    pub src_mac: Option<[u8; 6]>,
    /// Write a JSON summary here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The DPDK port by device name (default: the first port).
    #[arg(long)]
    pub port: Option<String>,
    /// How long to wait for the link before failing.
    #[arg(long, default_value = "5s", value_parser = units::parse_duration)]
    pub link_timeout: Duration,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Play the real servers: answer what arrives (UDP echo, SYN-ACK, ACK, FIN-ACK).
    #[arg(long, conflicts_with_all = ["pcap"])]
    pub respond: bool,
    /// Bytes of data the responder sends with each ACK of data (--respond, --respond-to).
    #[arg(long, default_value_t = 0)]
    pub response_bytes: u16,
    /// Closed loop on one port: while generating, answer received packets whose IPv4
    /// destination is in this prefix as the real servers would (same core, same port);
    /// everything else counts as rx (and latency) of the generated streams.
    #[arg(long, value_parser = clap::value_parser!(Cidr), conflicts_with_all = ["respond", "pcap"])]
    pub respond_to: Option<Cidr>,
    /// Wait this long after the link comes up before sending (lets the peer start polling).
    #[arg(long, value_parser = units::parse_duration)]
    pub start_delay: Option<Duration>,
    /// Replay this capture instead of generating.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Replay timing: `original`, `pps` (at --pps) or `speedup=X`.
    #[arg(long, default_value = "original", value_parser = clap::value_parser!(ReplayMode), requires = "pcap")]
    pub replay_mode: ReplayMode,
    /// Replay the capture this many times.
    #[arg(long = "loop", default_value_t = 1, requires = "pcap")]
    pub loops: u64,
    /// Rewrite replayed packets to this `VIP:PORT`, spreading sources over --src.
    #[arg(long, value_parser = units::parse_endpoint, requires = "pcap")]
    pub retarget: Option<SocketAddrV4>,
    /// EAL arguments (after `--`).
    #[arg(last = true)]
    pub eal: Vec<String>,
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "udp" => Ok(Proto::Udp),
        "tcp-syn" | "syn" => Ok(Proto::TcpSyn),
        "tcp-session" | "session" => Ok(Proto::TcpSession),
        _ => Err(format!(
            "bad protocol {s:?}: use udp, tcp-syn or tcp-session"
        )),
    }
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Generate from templates.
    Generate(GenConfig),
    /// Replay a capture.
    Replay(ReplayConfig),
    /// Answer as the real servers.
    Respond {
        /// Data bytes with each ACK of data.
        response_bytes: u16,
    },
}

/// Template generation settings.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Rate.
    pub rate: Rate,
    /// Sizes.
    pub size: FrameSize,
    /// Protocol.
    pub proto: Proto,
    /// The flows.
    pub flows: FlowSpace,
    /// Visit order.
    pub order: FlowOrder,
    /// Software RSS placement.
    pub rss: bool,
    /// Stamp every Nth packet (0: off).
    pub latency_every: u64,
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC (None: the port's).
    pub src_mac: Option<[u8; 6]>,
    /// Closed loop: answer packets to this prefix as the real servers.
    pub respond_to: Option<Cidr>,
    /// Data bytes with each ACK of data (closed loop).
    pub response_bytes: u16,
}

/// Replay settings.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The capture.
    pub path: PathBuf,
    /// Timing.
    pub mode: ReplayMode,
    /// `--pps` for [`ReplayMode::Pps`].
    pub pps: Option<f64>,
    /// Loops.
    pub loops: u64,
    /// Rewrite.
    pub retarget: Option<Retarget>,
}

/// Everything the run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to do.
    pub mode: Mode,
    /// Cores.
    pub cores: u16,
    /// Stop after.
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// JSON summary path.
    pub json: Option<PathBuf>,
    /// Port name.
    pub port: Option<String>,
    /// Link wait.
    pub link_timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
    /// Pause between link up and the first packet.
    pub start_delay: Duration,
    /// EAL arguments.
    pub eal: Vec<String>,
}

impl Args {
    /// Checks the combination and builds the typed configuration.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if self.cores == 0 || self.cores > 64 {
            return Err(ConfigError::Cores(self.cores));
        }
        if self.response_bytes > 0 && !self.respond && self.respond_to.is_none() {
            return Err(ConfigError::ResponseBytesAlone);
        }
        let mode = if self.respond {
            Mode::Respond {
                response_bytes: self.response_bytes,
            }
        } else if let Some(path) = self.pcap {
            if self.cores != 1 {
                return Err(ConfigError::ReplayOneCore);
            }
            if self.loops == 0 {
                return Err(ConfigError::ZeroLoops);
            }
            let pps = match self.pps {
                Rate::Pps(p) => Some(p),
                _ => None,
            };
            if self.replay_mode == ReplayMode::Pps && pps.is_none() {
                return Err(ConfigError::ReplayNeedsPps);
            }
            Mode::Replay(ReplayConfig {
                path,
                mode: self.replay_mode,
                pps,
                loops: self.loops,
                retarget: self.retarget.map(|dst| Retarget { dst, src: self.src }),
            })
        } else {
            if self.count.is_none() && self.duration.is_none() {
                return Err(ConfigError::Endless);
            }
            if self.latency_every > 0 && self.proto != Proto::Udp {
                return Err(ConfigError::LatencyNeedsUdp);
            }
            let flows = FlowSpace::new(self.src, self.sport, self.dst.0, self.flows)?;
            Mode::Generate(GenConfig {
                rate: self.pps,
                size: self.size,
                proto: self.proto,
                flows,
                order: if self.random_flows {
                    FlowOrder::Random { seed: self.seed }
                } else {
                    FlowOrder::Sequential
                },
                rss: self.rss,
                latency_every: self.latency_every,
                dst_mac: self.dst_mac,
                src_mac: self.src_mac,
                respond_to: self.respond_to,
                response_bytes: self.response_bytes,
            })
        };
        Ok(Config {
            mode,
            cores: self.cores,
            duration: self.duration,
            count: self.count,
            json: self.json,
            port: self.port,
            link_timeout: self.link_timeout,
            quiet: self.quiet,
            start_delay: self.start_delay.unwrap_or_default(),
            eal: self.eal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let a = Args::try_parse_from(std::iter::once("traffic-gen").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        a.into_config().map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_parses() {
        let c = parse(&[
            "--pps",
            "10M",
            "--duration",
            "30s",
            "--size",
            "imix",
            "--flows",
            "1M",
            "--proto",
            "tcp-syn",
            "--dst",
            "10.1.0.1:80,10.1.0.2:80",
            "--src",
            "10.0.0.0/16",
            "--sport",
            "1024-65535",
            "--cores",
            "2",
            "--json",
            "out.json",
            "--",
            "-l",
            "0-2",
            "--vdev",
            "net_null0",
        ])
        .unwrap();
        assert_eq!(c.cores, 2);
        assert_eq!(c.duration, Some(Duration::from_secs(30)));
        assert_eq!(c.eal, ["-l", "0-2", "--vdev", "net_null0"]);
        let Mode::Generate(g) = c.mode else { panic!() };
        assert_eq!(g.rate, Rate::Pps(10e6));
        assert_eq!(g.flows.len(), 1_000_000);
        assert_eq!(g.flows.dsts().len(), 2);
        assert_eq!(g.proto, Proto::TcpSyn);
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let cases: [(&[&str], &str); 12] = [
            (&["--pps", "fast", "--count", "1"], "bad rate"),
            (&["--size", "12", "--count", "1"], "bad size"),
            (&["--flows", "0", "--count", "1"], "bad count"),
            (&["--dst", "1.2.3.4", "--count", "1"], "bad destination"),
            (
                &["--src", "10.0.0.0/40", "--count", "1"],
                "bad source prefix",
            ),
            (&["--sport", "9-1", "--count", "1"], "bad port range"),
            (&["--duration", "10", "--count", "1"], "bad duration"),
            (&["--proto", "icmp", "--count", "1"], "bad protocol"),
            (
                &[
                    "--count",
                    "1",
                    "--flows",
                    "100",
                    "--src",
                    "10.0.0.1/32",
                    "--sport",
                    "1-10",
                ],
                "--flows 100",
            ),
            (&["--pps", "1M"], "never end"),
            (
                &["--pcap", "x.pcap", "--replay-mode", "pps"],
                "needs a rate",
            ),
            (&["--count", "1", "--cores", "0"], "--cores 0"),
        ];
        for (args, want) in cases {
            let err = parse(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
        assert!(parse(&["--respond", "--pcap", "x"]).is_err());
        assert!(parse(&[
            "--count",
            "1",
            "--proto",
            "tcp-syn",
            "--latency-every",
            "10"
        ])
        .is_err());
    }

    #[test]
    fn closed_loop_options() {
        let c = parse(&[
            "--count",
            "10",
            "--respond-to",
            "192.168.100.0/24",
            "--response-bytes",
            "10",
            "--start-delay",
            "200ms",
        ])
        .unwrap();
        assert_eq!(c.start_delay, Duration::from_millis(200));
        let Mode::Generate(g) = c.mode else { panic!() };
        assert_eq!(g.respond_to.unwrap().len, 24);
        assert_eq!(g.response_bytes, 10);
        let err = parse(&["--count", "1", "--response-bytes", "5"]).unwrap_err();
        assert!(err.contains("--respond-to"), "{err}");
        assert!(parse(&["--respond", "--respond-to", "10.0.0.0/8"]).is_err());
    }

    #[test]
    fn replay_and_respond_modes() {
        let c = parse(&[
            "--pcap",
            "a.pcap",
            "--replay-mode",
            "speedup=4",
            "--loop",
            "3",
            "--retarget",
            "1.2.3.4:80",
        ])
        .unwrap();
        let Mode::Replay(r) = c.mode else { panic!() };
        assert_eq!((r.mode, r.loops), (ReplayMode::Speedup(4.0), 3));
        assert_eq!(r.retarget.unwrap().dst.port(), 80);
        let c = parse(&["--respond", "--response-bytes", "100"]).unwrap();
        assert!(matches!(
            c.mode,
            Mode::Respond {
                response_bytes: 100
            }
        ));
    }
}
