//! The net_pcap topology: the real `forwarder` binary, one rx and one tx capture per
//! queue.
//!
//! The scenario's capture is split by the harness's RSS model into `q<N>.pcap`, one per
//! RX queue, as a NIC would; the forwarder gets one net_pcap port with those files as its
//! RX queues, explicit `[[worker]]`s (queue q → worker `queue_worker[q]`), RSS-aware
//! steering with the scenario's key, types and RETA, and the scenario's services and
//! local addresses. TX queue w is used by worker w only, so `o<w>.pcap` tells which
//! worker sent each packet.
//!
//! **Client → server only.** net_pcap reads each RX file on its own, once, as fast as the
//! worker polls it; a reply cannot be fed back within the same run (the files are fixed
//! before the process starts, and the local port a reply needs is only known from the
//! output). Replies are covered by the in-process topology and by the memif topology.
//!
//! Checks: the oracle on every output (rewrites, checksums, TTL, stickiness, unique local
//! ports); worker affinity: each output left by the worker that owns the RX queue its
//! input arrived on (every output of worker w matches the content of a forwarded input
//! from one of w's queues); the forwarder's stats JSON reconciles per worker
//! (rx = tx + drops + redirects + control) and with the captures (packets in = capture,
//! packets out = IP outputs, drops + control = the oracle's expected drops).
//!
//! With [`ForwarderOptions::fault`] the configuration gets a `[fault]` section; the
//! forwarder's stats JSON says how often it struck ([`Counts::faults_injected`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::{
    check_expectations, read_expect_file, verdict_counts, Counts, Finding, ForwarderOptions, Kind,
    TopologyResult, WorkerCounts, CLIENT_MAC, LB_MAC,
};
use crate::capture::{self, Frame};
use crate::oracle::{Checker, PacketRef};
use crate::packet::{L4Info, PacketInfo};
use crate::scenario::{Mode, Proto, Scenario, Scheduler};
use crate::split::split;

/// How long the forwarder runs: long enough for EAL start and to drain every file.
pub const DURATION: &str = "1500ms";

static RUNS: AtomicU32 = AtomicU32::new(0);

/// The forwarder binary: `explicit`, `$L4LAB_FORWARDER`, or `forwarder` next to the
/// running executable (or one directory up, for test executables in `deps/`).
pub fn find_forwarder(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("--forwarder {}: no such file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("L4LAB_FORWARDER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("L4LAB_FORWARDER={}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("forwarder");
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
        dir = d.parent();
    }
    Err(format!(
        "forwarder binary not built (looked for {}); build it with `cargo build -p forwarder` \
         (same profile as harness) or set L4LAB_FORWARDER",
        tried.join(", ")
    ))
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn scheduler(s: Scheduler) -> &'static str {
    match s {
        Scheduler::Rr => "rr",
        Scheduler::Wrr => "wrr",
        Scheduler::Wlc => "wlc",
        Scheduler::Sh => "sh",
        Scheduler::Maglev => "maglev",
    }
}

/// The forwarder's TOML configuration for a scenario.
pub fn forwarder_config(
    scenario: &Scenario,
    device: &str,
    file_prefix: &str,
    socket: &Path,
) -> Result<String, String> {
    let model = scenario.rss_model().map_err(|e| e.to_string())?;
    let qw = scenario.queue_worker();
    let queues = scenario.rss.queues;
    let workers = qw.iter().copied().max().map_or(1, |w| w + 1);
    let key: String = model
        .key
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let t = model.types;
    let types: Vec<&str> = [
        (t.ipv4, "ipv4"),
        (t.ipv4_tcp, "ipv4-tcp"),
        (t.ipv4_udp, "ipv4-udp"),
        (t.ipv6, "ipv6"),
        (t.ipv6_tcp, "ipv6-tcp"),
        (t.ipv6_udp, "ipv6-udp"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "[eal]\nargs = [\"--no-huge\", \"--no-pci\", \"--no-shconf\", \"-m\", \"256\", \
         \"--log-level\", \"warning\", \"--file-prefix\", \"{file_prefix}\"]\n\n\
         [[port]]\nname = \"p0\"\ndevice = \"{device}\"\nrx_queues = {queues}\ntx_queues = {queues}\n\
         mac = \"{}\"\ngateway_mac = \"{}\"\nchecksum_offload = false\n\
         rss = {{ key = \"{key}\", hash_types = {types:?}, reta_size = {} }}\n\n",
        mac(LB_MAC),
        mac(CLIENT_MAC),
        model.reta.len(),
    );
    for w in 0..workers {
        let qs: Vec<String> = (0..queues)
            .filter(|&q| qw.get(usize::from(q)) == Some(&w))
            .map(|q| format!("{{ port = \"p0\", rx = {q} }}"))
            .collect();
        let _ = write!(
            s,
            "[[worker]]\nid = {w}\nlcore = {}\nqueues = [{}]\n\n",
            w + 1,
            qs.join(", ")
        );
    }
    let laddrs: Vec<String> = scenario
        .local_addresses
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    let _ = write!(s, "[laddr]\np0 = [{}]\n\n", laddrs.join(", "));
    for svc in &scenario.services {
        let rs: Vec<String> = svc
            .real_servers
            .iter()
            .map(|r| format!("{{ addr = \"{}\", weight = {} }}", r.addr, r.weight))
            .collect();
        let _ = write!(
            s,
            "[[service]]\nvip = \"{}\"\nport = {}\nproto = \"{}\"\nmode = \"{}\"\nscheduler = \"{}\"\n\
             toa = {}\nrs = [{}]\n\n",
            svc.vip.ip(),
            svc.vip.port(),
            match svc.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            },
            match svc.mode {
                Mode::Fullnat => "fullnat",
                Mode::Nat => "nat",
            },
            scheduler(svc.scheduler),
            svc.toa,
            rs.join(", ")
        );
    }
    let _ = write!(
        s,
        "[steering]\nmode = \"rss\"\nredirect = true\n\n[policies]\nverify_checksums = true\nanswer_echo = false\n\n[control]\nsocket = \"{}\"\n",
        socket.display()
    );
    Ok(s)
}

/// Content that survives the balancer's rewrites, to match outputs with inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Content {
    Tcp(u8, Vec<u8>),
    Udp(Vec<u8>),
    Icmp,
    Other,
}

fn content(frame: &[u8]) -> Content {
    match PacketInfo::parse(frame).ok().and_then(|i| i.net) {
        Some(net) => match net.l4 {
            L4Info::Tcp(t) => Content::Tcp(t.flags, t.payload.to_vec()),
            L4Info::Udp { payload, .. } => Content::Udp(payload.to_vec()),
            L4Info::Icmp(_) => Content::Icmp,
            L4Info::Other => Content::Other,
        },
        None => Content::Other,
    }
}

/// ARP and IPv6 neighbour discovery: the master's own traffic (announcements, answers),
/// outside the oracle's scope.
fn is_neighbour(frame: &[u8]) -> bool {
    let Some(et) = crate::packet::inner_ethertype(frame) else {
        return false;
    };
    if et == 0x0806 {
        return true;
    }
    matches!(
        PacketInfo::parse(frame).ok().and_then(|i| i.net).map(|n| n.l4),
        Some(L4Info::Icmp(i)) if i.v6 && (133..=137).contains(&i.icmp_type)
    )
}

fn stats_workers(json: &serde_json::Value) -> Result<Vec<WorkerCounts>, String> {
    let list = json["workers"]
        .as_array()
        .ok_or("stats JSON has no \"workers\" array")?;
    let num = |v: &serde_json::Value, k: &str| -> Result<u64, String> {
        v[k].as_u64()
            .ok_or_else(|| format!("stats JSON: worker field {k:?} missing or not a number"))
    };
    list.iter()
        .map(|w| {
            let drops = w["drops"]
                .as_object()
                .ok_or("stats JSON: worker without \"drops\"")?
                .iter()
                .filter_map(|(k, v)| v.as_u64().filter(|&n| n > 0).map(|n| (k.clone(), n)))
                .collect();
            Ok(WorkerCounts {
                worker: u16::try_from(num(w, "worker")?).unwrap_or(u16::MAX),
                rx: num(w, "rx_packets")?,
                tx: num(w, "tx_packets")?,
                drops,
                redirects: num(w, "redirects")?,
                control: num(w, "control")?,
            })
        })
        .collect()
}

/// Runs a scenario through the forwarder binary `bin`, in the scratch directory `work`.
pub fn run(
    scenario_file: &Path,
    scenario: &Scenario,
    bin: &Path,
    work: &Path,
) -> Result<TopologyResult, String> {
    run_with(
        scenario_file,
        scenario,
        bin,
        work,
        &ForwarderOptions::default(),
    )
}

/// [`run`] with the forwarder set up by `opts` (a `[fault]` section, for instance).
pub fn run_with(
    scenario_file: &Path,
    scenario: &Scenario,
    bin: &Path,
    work: &Path,
    opts: &ForwarderOptions,
) -> Result<TopologyResult, String> {
    let started = Instant::now();
    let frames = capture::read(&scenario.input_path(scenario_file)).map_err(|e| e.to_string())?;
    let model = scenario.rss_model().map_err(|e| e.to_string())?;
    let queues = scenario.rss.queues;
    if work.exists() {
        std::fs::remove_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;

    let per_queue = split(&model, &frames);
    let mut device = String::from("net_pcap0");
    for q in 0..usize::from(queues) {
        let path = work.join(format!("q{q}.pcap"));
        let list = per_queue.get(q).map_or(&[][..], |l| &l[..]);
        capture::write(&path, list).map_err(|e| e.to_string())?;
        let _ = write!(device, ",rx_pcap={}", path.display());
    }
    for q in 0..queues {
        let _ = write!(
            device,
            ",tx_pcap={}",
            work.join(format!("o{q}.pcap")).display()
        );
    }
    let prefix = format!(
        "harness-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let mut config = forwarder_config(scenario, &device, &prefix, &work.join("ctl.sock"))?;
    if let Some(f) = opts.fault {
        let _ = write!(
            config,
            "\n[fault]\nkind = \"{}\"\nevery = {}\n",
            f.kind, f.every
        );
    }
    let config_path = work.join("forwarder.toml");
    std::fs::write(&config_path, &config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let stats_path = work.join("stats.json");
    let out = Command::new(bin)
        .arg("run")
        .arg(&config_path)
        .args(["--duration", DURATION, "--stats-json"])
        .arg(&stats_path)
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    std::fs::write(
        work.join("forwarder.log"),
        [&out.stdout[..], &out.stderr[..]].concat(),
    )
    .map_err(|e| format!("{}: {e}", work.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        return Err(format!(
            "forwarder exited with {} (config {}): {}",
            out.status,
            config_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }

    let mut result = check(scenario_file, scenario, work)?;
    result.millis = started.elapsed().as_millis() as u64;
    Ok(result)
}

/// Checks what a forwarder run left in `work` (`q<N>.pcap`, `o<W>.pcap`, `stats.json`)
/// against a scenario; [`run`] calls it after the forwarder exits, and it can re-check a
/// run's files on their own.
pub fn check(
    scenario_file: &Path,
    scenario: &Scenario,
    work: &Path,
) -> Result<TopologyResult, String> {
    let started = Instant::now();
    let frames = capture::read(&scenario.input_path(scenario_file)).map_err(|e| e.to_string())?;
    let model = scenario.rss_model().map_err(|e| e.to_string())?;
    let qw = scenario.queue_worker();
    let workers = qw.iter().copied().max().map_or(1, |w| w + 1);
    let stats_path = work.join("stats.json");

    // The oracle: inputs in capture order with their queue, then each worker's outputs.
    let mut checker = Checker::new(scenario);
    let mut verdicts = Vec::new();
    // Inputs' contents per worker (for worker affinity).
    let mut pending: Vec<HashMap<Content, usize>> = vec![HashMap::new(); usize::from(workers)];
    let mut input_worker: HashMap<Content, u16> = HashMap::new();
    for frame in &frames {
        let queue = crate::split::queue_of(&model, &frame.data);
        let (_, v) = checker.observe_input(&frame.data, queue);
        // Every input counts here, forwarded or not: whether it should have been
        // forwarded is the oracle's check, which worker sent it is this one.
        let w = qw.get(usize::from(queue)).copied().unwrap_or(0);
        let c = content(&frame.data);
        input_worker.entry(c.clone()).or_insert(w);
        if let Some(p) = pending.get_mut(usize::from(w)) {
            *p.entry(c).or_insert(0) += 1;
        }
        verdicts.push(v);
    }
    let tx_queue = |w: u16| -> u16 { qw.iter().position(|&x| x == w).map_or(w, |q| q as u16) };
    let mut failures = Vec::new();
    let mut ip_outputs = 0u64;
    let mut neighbour = 0u64;
    let mut output_worker = Vec::new();
    for w in 0..workers {
        let path = work.join(format!("o{w}.pcap"));
        let outs: Vec<Frame> = capture::read(&path).map_err(|e| e.to_string())?;
        for f in outs {
            if is_neighbour(&f.data) {
                neighbour += 1;
                continue;
            }
            ip_outputs += 1;
            let index = checker.observe_output(&f.data, tx_queue(w));
            output_worker.push(w);
            let c = content(&f.data);
            let mine = pending
                .get_mut(usize::from(w))
                .and_then(|p| p.get_mut(&c))
                .filter(|n| **n > 0);
            match mine {
                Some(n) => *n -= 1,
                // ICMP errors may legitimately be redirected to the owner.
                None if c == Content::Icmp => {}
                None => failures.push(Finding::new(
                    "worker_affinity",
                    format!("output #{index}"),
                    "tx_queue",
                    match input_worker.get(&c) {
                        Some(v) => format!(
                            "worker {v} (its input arrived on a queue of worker {v}) or none"
                        ),
                        None => "no such output (no input has this content)".to_owned(),
                    },
                    format!("worker {w}"),
                )),
            }
        }
    }
    let report = checker.finish();
    for f in &report.failures {
        failures.push(Finding::from_failure(f, |p| match p {
            PacketRef::Input(i) => format!("input #{i} (capture #{i})"),
            PacketRef::Output(o) => format!(
                "output #{o} (worker {})",
                output_worker.get(*o).copied().unwrap_or(u16::MAX)
            ),
        }));
    }

    // The forwarder's counters.
    let json: serde_json::Value = std::fs::read_to_string(&stats_path)
        .map_err(|e| format!("{}: {e}", stats_path.display()))
        .and_then(|t| {
            serde_json::from_str(&t).map_err(|e| format!("{}: {e}", stats_path.display()))
        })?;
    let worker_counts = stats_workers(&json)?;
    // Absent (null) when the forwarder ran without a fault.
    let fault = json["fault"].as_object().map(|f| {
        format!(
            "{}:{}",
            f.get("kind").and_then(|k| k.as_str()).unwrap_or("?"),
            f.get("every").and_then(|e| e.as_u64()).unwrap_or(0)
        )
    });
    let faults_injected = json["fault"]["injected"].as_u64().unwrap_or(0);
    for wc in &worker_counts {
        failures.extend(wc.reconcile());
    }
    let sum = |f: &dyn Fn(&WorkerCounts) -> u64| worker_counts.iter().map(f).sum::<u64>();
    let rx = sum(&|w| w.rx);
    let tx = sum(&|w| w.tx);
    let redirects = sum(&|w| w.redirects);
    let dropped = sum(&|w| w.dropped() + w.control);
    let (expected_forward, expected_drops) = verdict_counts(&verdicts);
    let expected_dropped: usize = expected_drops.values().sum();
    let mut counter = |field: &str, expected: String, got: u64, ok: bool| {
        if !ok {
            failures.push(Finding::new(
                "counters",
                "all workers",
                field,
                expected,
                got.to_string(),
            ));
        }
    };
    counter(
        "rx_packets",
        format!("{} capture packets + {redirects} redirects", frames.len()),
        rx,
        rx == frames.len() as u64 + redirects,
    );
    counter(
        "tx_packets",
        format!("{ip_outputs} IP packets in the output captures"),
        tx,
        tx == ip_outputs,
    );
    counter(
        "drops+control",
        format!("{expected_dropped} (the oracle's drops)"),
        dropped,
        dropped == expected_dropped as u64,
    );

    let expect_path = scenario_file.with_extension("expect");
    let lines = if expect_path.exists() {
        Some(read_expect_file(&expect_path)?)
    } else {
        None
    };
    failures.extend(check_expectations(
        &verdicts,
        lines.as_deref(),
        scenario.expect.as_ref(),
    ));
    let _ = neighbour;
    let mut result = TopologyResult {
        scenario: scenario.name.clone(),
        topology: Kind::Pcap,
        passed: false,
        skipped: None,
        counts: Counts {
            capture: frames.len(),
            inputs: report.inputs,
            outputs: report.outputs,
            replies: 0,
            expected_forward,
            expected_drops,
            connections: report.connections,
            workers: worker_counts,
            fault,
            faults_injected,
        },
        failures,
        known_differences: Vec::new(),
        millis: started.elapsed().as_millis() as u64,
        mismatches: None,
        mismatch_frames: report.mismatches.iter().map(|(_, d)| d.clone()).collect(),
    };
    result.settle();
    Ok(result)
}
