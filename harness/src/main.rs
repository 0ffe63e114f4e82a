//! The `harness` command line: RSS model, capture generation, splitting and retargeting.
//!
//! Output formats (stable, for scripts):
//! - `harness rss hash …` prints one line: `hash 0x%08x queue N`.
//! - `harness rss split …` prints one line per queue: `q<N> <packets> packets → <path>`.
//! - `harness pcaps gen …` prints one line per file written.
//! - `harness replay …` prints one line: `read N wrote N flows N replies_left_out N
//!   other_left_out N family_left_out N ports_remapped N`.
//!
//! Errors go to stderr as `harness: <message>` with exit status 1; usage errors exit 2.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use harness::rss::{HashTypes, RssFlow, RssKey, RssModel, DEFAULT_RETA_SIZE, L4};

/// pcap replay, an independent FULLNAT/NAT oracle and an RSS model for l4lab.
#[derive(Debug, Parser)]
#[command(name = "harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The Toeplitz/RETA model of a NIC's receive-side scaling.
    #[command(subcommand)]
    Rss(RssCommand),
    /// Rewrite a capture's flows towards a service.
    ///
    /// Destination becomes VIP:PORT; only the initiators' packets are kept; checksums are
    /// recomputed. Prints one line: `read N wrote N flows N replies_left_out N …`.
    Replay {
        /// The service, `VIP:PORT` (`[IPv6]:PORT`).
        #[arg(long)]
        retarget: SocketAddr,
        /// The capture to rewrite (classic pcap, Ethernet).
        #[arg(long)]
        input: PathBuf,
        /// Where to write the rewritten capture.
        #[arg(long)]
        output: PathBuf,
        /// Keep only this protocol (default: TCP and UDP).
        #[arg(long, value_enum)]
        proto: Option<L4Proto>,
    },
    /// The standard captures and their scenario files.
    #[command(subcommand)]
    Pcaps(PcapsCommand),
    /// Assemble a run, append it to the history, write report.{json,md,html,xml}.
    ///
    /// Exits non-zero on a failed check, and on a regression with --fail-on-regression.
    Report(harness::report::ReportArgs),
    /// NDR/PDR of the forwarder over memif beside the testpmd macswap ceiling.
    Bench(harness::bench::BenchArgs),
    /// Run scenarios through the forwarder and check them with the oracle.
    ///
    /// Prints `PASS|FAIL|SKIP scenario topology …` per scenario and topology, then every
    /// failure (packet, field, expected vs got); writes `OUT/scenarios/*.json`,
    /// `OUT/mismatches/*.pcap` and `OUT/summary.json`. Exit status 1 on any failure.
    Run(harness::run::RunArgs),
    /// Time the oracle: packets validated per second on one core.
    ///
    /// Builds a synthetic FULLNAT capture (TCP with TOA and UDP, both directions, the
    /// outputs of a correct balancer) in chunks and times only the checker over it.
    /// Prints one line: `oracle-bench: N packets … P Mpps …`; exit status 1 if the
    /// checker found a failure.
    OracleBench {
        /// Packets to validate, inputs and outputs together (`10M`, `500k`, `100000`).
        #[arg(long, default_value = "10M", value_parser = parse_count)]
        packets: u64,
    },
    /// Real Linux peers through the forwarder in network namespaces (root; issue 8).
    ///
    /// Prints `PASS|SKIP|FAIL kernel/NAME` per scenario and the facts it checked; exit
    /// status 1 on a failure.
    Kernel(harness::topology::kernel::KernelArgs),
}

#[derive(Debug, Subcommand)]
enum PcapsCommand {
    /// Rebuild the standard captures, scenarios and `.expect` files.
    ///
    /// Byte-identical on every run; prints each path written.
    Gen {
        /// Directory to write into.
        #[arg(long, default_value = "pcaps")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RssCommand {
    /// Print the hash of one flow and its queue.
    ///
    /// Output: `hash 0x%08x queue N` (e.g. `hash 0x51ccc178 queue 0`).
    Hash {
        /// `default` (Microsoft key), `symmetric` (6d5a repeated) or 40/52 bytes of hex.
        #[arg(long, default_value = "default")]
        key: RssKey,
        /// Source, `IP` or `IP:PORT` (`[IPv6]:PORT`).
        #[arg(long)]
        src: HostPort,
        /// Destination, `IP` or `IP:PORT` (`[IPv6]:PORT`).
        #[arg(long)]
        dst: HostPort,
        /// Which hash: with TCP ports, with UDP ports (the same bytes), or addresses only.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: Proto,
        /// RX queues the RETA spreads over.
        #[arg(long, default_value_t = 1)]
        queues: u16,
        /// RETA entries (round-robin over the queues).
        #[arg(long, default_value_t = DEFAULT_RETA_SIZE)]
        reta_size: usize,
    },
    /// Split a capture into per-queue captures as a NIC would.
    ///
    /// Writes `q0.pcap`, `q1.pcap`, …; non-IP → queue 0; fragments hashed on addresses
    /// only; order and timestamps kept. Prints `q<N> <packets> packets → <path>` per queue.
    Split {
        /// The capture to split (classic pcap, Ethernet).
        #[arg(long)]
        input: PathBuf,
        /// Where to write `q<N>.pcap`.
        #[arg(long)]
        out_dir: PathBuf,
        /// RX queues.
        #[arg(long)]
        queues: u16,
        /// `default`, `symmetric` or 40/52 bytes of hex.
        #[arg(long, default_value = "default")]
        key: RssKey,
        /// RETA entries (round-robin over the queues).
        #[arg(long, default_value_t = DEFAULT_RETA_SIZE)]
        reta_size: usize,
        /// Hash types: comma-separated ipv4, ipv4-tcp, ipv4-udp, ipv6, ipv6-tcp,
        /// ipv6-udp, or the groups ip, tcp, udp, all.
        #[arg(long, default_value = "all")]
        types: HashTypes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum L4Proto {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
    Ip,
}

/// `IP` or `IP:PORT`.
#[derive(Debug, Clone, Copy)]
struct HostPort {
    addr: IpAddr,
    port: Option<u16>,
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Self {
                addr: sa.ip(),
                port: Some(sa.port()),
            });
        }
        s.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .map(|addr| Self { addr, port: None })
            .map_err(|_| {
                format!("{s:?} is not IP or IP:PORT (write IPv6 with a port as [addr]:port)")
            })
    }
}

/// A count with an optional `k` or `M` suffix.
fn parse_count(s: &str) -> Result<u64, String> {
    let (digits, scale) = match s.strip_suffix(['M', 'm']) {
        Some(d) => (d, 1_000_000),
        None => match s.strip_suffix(['k', 'K']) {
            Some(d) => (d, 1_000),
            None => (s, 1),
        },
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a positive count such as 10M, 500k or 100000"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("harness: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Report(args) => {
            for line in harness::report::run_cli(&args)? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Bench(args) => harness::bench::run_cli(&args),
        Command::Run(args) => harness::run::run_cli(&args),
        Command::Kernel(args) => harness::topology::kernel::run_cli(&args),
        Command::OracleBench { packets } => {
            let config = harness::gen::bench::BenchConfig {
                packets,
                ..Default::default()
            };
            let r = harness::gen::bench::run(&config)?;
            let cpu = match (r.checker_cpu, r.packets_per_cpu_second()) {
                (Some(t), Some(pps)) => {
                    format!("{:.3} s on CPU: {:.2} Mpps", t.as_secs_f64(), pps / 1e6)
                }
                _ => "on-CPU time unknown".to_owned(),
            };
            println!(
                "oracle-bench: {} packets ({} inputs, {} outputs, {} connections, {:.1} MB) \
                 validated on one thread in {:.3} s wall: {:.2} Mpps; {cpu}; {} failures; \
                 capture built in {:.1} s (not timed)",
                r.packets,
                r.inputs,
                r.outputs,
                r.connections,
                r.bytes as f64 / 1e6,
                r.checker.as_secs_f64(),
                r.packets_per_second() / 1e6,
                r.failures,
                r.generation.as_secs_f64()
            );
            if r.failures > 0 {
                return Err(format!(
                    "the checker failed a correct synthetic run: {}",
                    r.first_failures.join("; ")
                ));
            }
            Ok(())
        }
        Command::Replay {
            retarget,
            input,
            output,
            proto,
        } => {
            let proto = proto.map(|p| match p {
                L4Proto::Tcp => 6,
                L4Proto::Udp => 17,
            });
            let target = harness::replay::Target {
                vip: retarget,
                proto,
            };
            let s = harness::replay::retarget_file(&input, &output, target)
                .map_err(|e| e.to_string())?;
            println!(
                "read {} wrote {} flows {} replies_left_out {} other_left_out {} family_left_out {} ports_remapped {}",
                s.read, s.written, s.flows, s.replies_left_out, s.other_left_out, s.family_left_out, s.ports_remapped
            );
            Ok(())
        }
        Command::Pcaps(PcapsCommand::Gen { out }) => {
            let written = harness::gen::write_all(&out).map_err(|e| e.to_string())?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Rss(RssCommand::Split {
            input,
            out_dir,
            queues,
            key,
            reta_size,
            types,
        }) => {
            let model = RssModel::new(key, types, reta_size, queues).map_err(|e| e.to_string())?;
            let written =
                harness::split::split_file(&model, &input, &out_dir).map_err(|e| e.to_string())?;
            for (q, (path, n)) in written.iter().enumerate() {
                println!("q{q} {n} packets → {}", path.display());
            }
            Ok(())
        }
        Command::Rss(RssCommand::Hash {
            key,
            src,
            dst,
            proto,
            queues,
            reta_size,
        }) => {
            let l4 = match proto {
                Proto::Tcp => L4::Tcp,
                Proto::Udp => L4::Udp,
                Proto::Ip => L4::Other,
            };
            let (sport, dport) = match (l4, src.port, dst.port) {
                (L4::Other, _, _) => (0, 0),
                (_, Some(s), Some(d)) => (s, d),
                _ => {
                    return Err(
                        "--proto tcp|udp hashes ports: give --src and --dst as IP:PORT, or use --proto ip"
                            .to_owned(),
                    )
                }
            };
            if src.addr.is_ipv4() != dst.addr.is_ipv4() {
                return Err("--src and --dst must be the same address family".to_owned());
            }
            let model =
                RssModel::new(key, HashTypes::ALL, reta_size, queues).map_err(|e| e.to_string())?;
            let flow = RssFlow {
                src: src.addr,
                dst: dst.addr,
                l4,
                sport,
                dport,
            };
            let (hash, queue) = model.queue(&flow);
            // Every type is enabled, so the flow is always hashed.
            println!("hash 0x{:08x} queue {queue}", hash.unwrap_or(0));
            Ok(())
        }
    }
}
