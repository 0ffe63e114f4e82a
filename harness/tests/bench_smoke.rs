//! The real closed loop over memif, without hugepages: traffic-gen (memif server, client
//! streams + the real servers' responder) → forwarder (FULLNAT, memif client) →
//! traffic-gen answering as the servers → forwarder → traffic-gen. A fixed count at a low
//! rate must come back complete, and the forwarder's counters must reconcile. Then a tiny
//! `harness bench` run (forwarder and testpmd ceiling) must write a well-formed report.
//!
//! Needs the `traffic-gen` and `forwarder` binaries of the same profile (a workspace
//! `cargo test` builds them); without them the test says so and passes as skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::bench::{forwarder_config, topo, FwdMode, PointSpec, Traffic};

/// Requests sent; at 20k pps that is a 1 s run.
const COUNT: u64 = 20_000;
const FLOWS: u64 = 64;

fn binary(name: &str) -> Option<PathBuf> {
    let p = harness::bench::find_binary(name);
    p.is_file().then_some(p)
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn eal(prefix: &str, cpus: &str) -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--log-level",
        "warning",
        "--file-prefix",
        prefix,
        cpus,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn closed_loop(tg: &Path, fwd: &Path, dir: &Path) {
    let sock = dir.join("memif.sock");
    let tag = format!("bsmoke{}", std::process::id());
    let spec = PointSpec {
        mode: FwdMode::Fullnat,
        traffic: Traffic::Established,
        flows: FLOWS,
        one_way: false,
    };
    let cfg = dir.join("forwarder.toml");
    std::fs::write(
        &cfg,
        forwarder_config(
            &spec,
            &eal(&format!("{tag}-fwd"), "--lcores=0@1,1@1"),
            &sock,
            &dir.join("ctl.sock"),
        ),
    )
    .expect("config");
    let tg_json = dir.join("tg.json");
    let stats = dir.join("fwd.json");
    let mut args: Vec<String> = [
        "--pps",
        "20k",
        "--count",
        &COUNT.to_string(),
        "--flows",
        &FLOWS.to_string(),
        "--dst",
        &format!("{}:{}", topo::VIP, topo::VPORT),
        "--src",
        topo::CLIENTS,
        "--dst-mac",
        topo::DUT_MAC,
        "--respond-to",
        topo::RS_NET,
        "--latency-every",
        "100",
        "--link-timeout",
        "30s",
        "--start-delay",
        "500ms",
        "--quiet",
        "--json",
        &tg_json.display().to_string(),
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(eal(&format!("{tag}-tg"), "--lcores=0@0"));
    args.extend([
        "--vdev".to_string(),
        format!(
            "net_memif0,role=server,socket={},socket-abstract=no,id=0",
            sock.display()
        ),
    ]);
    let mut gen = Command::new(tg)
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .expect("traffic-gen starts");
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sock.exists(), "traffic-gen made no memif socket");
    std::thread::sleep(Duration::from_millis(200));
    // The forwarder runs past the generator's end (its duration bounds the test).
    let fwd_status = Command::new(fwd)
        .arg("run")
        .arg(&cfg)
        .args(["--duration", "8s", "--stats-json"])
        .arg(&stats)
        .stdout(Stdio::null())
        .status()
        .expect("forwarder runs");
    let gen_status = gen.wait().expect("traffic-gen ends");
    assert!(gen_status.success(), "traffic-gen exited with {gen_status}");
    assert!(fwd_status.success(), "forwarder exited with {fwd_status}");

    let s = json(&tg_json);
    let (tx, rx) = (s["tx_packets"].as_u64(), s["rx_packets"].as_u64());
    assert_eq!(tx, Some(COUNT), "every request sent: {s}");
    assert_eq!(rx, Some(COUNT), "every request got its reply: {s}");
    let cl = &s["closed_loop"];
    assert_eq!(
        cl["requests_rx"].as_u64(),
        Some(COUNT),
        "servers saw all: {s}"
    );
    assert_eq!(
        cl["replies_tx"].as_u64(),
        Some(COUNT),
        "servers answered all"
    );
    assert_eq!(s["responder"]["udp_echo"].as_u64(), Some(COUNT));
    let lat = &s["latency"];
    assert_eq!(lat["sent"].as_u64(), Some(COUNT / 100));
    assert_eq!(lat["lost"].as_u64(), Some(0), "no stamp lost: {lat}");
    assert!(lat["p50_ns"].as_u64().unwrap_or(0) > 0);

    // The forwarder: two packets per request (request and reply), nothing dropped, one
    // connection per flow, and the port's counters match traffic-gen's.
    let f = json(&stats);
    let w = &f["workers"][0];
    let drops: u64 = w["drops"]
        .as_object()
        .expect("drops")
        .values()
        .map(|v| v.as_u64().unwrap_or(0))
        .sum();
    let (frx, ftx) = (w["rx_packets"].as_u64(), w["tx_packets"].as_u64());
    assert_eq!(frx, Some(2 * COUNT), "forwarder rx: {w}");
    assert_eq!(ftx, Some(2 * COUNT), "forwarder tx: {w}");
    assert_eq!(drops, 0, "no drops: {w}");
    assert_eq!(
        frx.unwrap_or(0),
        ftx.unwrap_or(0) + drops + w["control"].as_u64().unwrap_or(0),
        "rx = tx + drops + control"
    );
    assert_eq!(
        w["conns_created"].as_u64(),
        Some(FLOWS),
        "one conn per flow"
    );
    assert_eq!(f["services"][0]["packets"].as_u64(), Some(2 * COUNT));
    // What traffic-gen's port sent (requests + answers) the forwarder received.
    assert_eq!(s["port_stats"]["opackets"].as_u64(), Some(2 * COUNT));
}

#[test]
fn closed_loop_over_memif_without_hugepages() {
    let (Some(tg), Some(fwd)) = (binary("traffic-gen"), binary("forwarder")) else {
        eprintln!(
            "SKIPPED: traffic-gen/forwarder binaries not built next to the test \
             (cargo build -p traffic-gen -p forwarder)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // Without hugepages two busy-polling processes on a small shared machine can be
    // descheduled for seconds, and memif rings then overflow. A lost request in one attempt
    // is retried (fresh processes and sockets); the loop must come back complete in one of
    // three, so a forwarder or generator that loses packets still fails.
    let mut last = None;
    for attempt in 0..3 {
        let run_dir = dir.path().join(format!("attempt{attempt}"));
        std::fs::create_dir_all(&run_dir).expect("attempt dir");
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            closed_loop(&tg, &fwd, &run_dir)
        })) {
            Ok(()) => {
                last = None;
                break;
            }
            Err(panic) => {
                eprintln!("closed loop attempt {attempt} failed; retrying");
                last = Some(panic);
            }
        }
    }
    if let Some(panic) = last {
        std::panic::resume_unwind(panic);
    }

    // The bench command end to end at a tiny scale (testpmd when installed).
    let out = dir.path().join("results");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args([
        "bench",
        "--no-huge",
        "--quiet",
        "--trial",
        "500ms",
        "--budget",
        "500ms",
        "--max-pps",
        "10k",
        "--min-pps",
        "1k",
        "--modes",
        "fullnat",
        "--flows-new",
        "0",
        "--latency-every",
        "50",
        "--run",
        "smoke",
    ])
    .arg("--out")
    .arg(&out)
    .arg("--traffic-gen")
    .arg(&tg)
    .arg("--forwarder")
    .arg(&fwd);
    let testpmd = Command::new("dpdk-testpmd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !testpmd {
        cmd.arg("--no-ceiling");
    }
    let o = cmd.output().expect("harness bench runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "harness bench failed: {stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("| fullnat-udp64-established |"), "{stdout}");
    let r = json(&out.join("smoke").join("bench.json"));
    let p = &r["points"][0];
    assert_eq!(p["name"], "fullnat-udp64-established");
    assert!(p["pdr_mpps"].as_f64().is_some_and(|x| x > 0.0), "{p}");
    assert!(p["commands"][0]
        .as_str()
        .is_some_and(|c| c.contains("--respond-to")));
    assert_eq!(p["latency"].as_array().map(Vec::len), Some(2));
    if testpmd {
        assert_eq!(r["ceilings"].as_array().map(Vec::len), Some(2));
        assert!(p["ratio_pdr"].as_f64().is_some_and(|x| x > 0.0), "{p}");
    }
}
