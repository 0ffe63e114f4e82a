//! The harness must fail a broken forwarder. Each fault the forwarder can inject on purpose
//! (its `[fault]` switch) runs through a standard scenario, and the result must fail with
//! the check that should catch it named; the same scenarios without a fault pass.
//!
//! In process (the dataplane library, replies from the responder) for all six faults; and
//! through the real `forwarder` binary on net_pcap (client → server only, two queues and
//! two workers, its own process per run, EAL with `--no-huge`) for all six too. The binary
//! is looked for next to this test's executable; when it is missing the pcap tests say so
//! and pass, unless `L4LAB_REQUIRE_FORWARDER=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use harness::run::render;
use harness::scenario::Scenario;
use harness::topology::{inproc, pcap, FaultConfig, FaultKind, ForwarderOptions, TopologyResult};
use rstest::rstest;

fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

fn load(name: &str) -> (PathBuf, Scenario) {
    let file = pcaps_dir().join(format!("{name}.toml"));
    let scenario = Scenario::load(&file).expect("committed scenario loads");
    (file, scenario)
}

fn inproc_run(name: &str, fault: Option<FaultConfig>) -> TopologyResult {
    let (file, scenario) = load(name);
    inproc::run_with(&file, &scenario, &ForwarderOptions { fault })
        .expect("the in-process topology runs")
}

fn forwarder() -> Option<PathBuf> {
    match pcap::find_forwarder(None) {
        Ok(p) => Some(p),
        Err(why) => {
            assert!(
                std::env::var_os("L4LAB_REQUIRE_FORWARDER").is_none(),
                "L4LAB_REQUIRE_FORWARDER is set: {why}"
            );
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// One forwarder process at a time: on a small machine parallel runs starve each other's
/// workers within the run's fixed duration.
static FORWARDER: Mutex<()> = Mutex::new(());

/// The scenario on two queues and two workers, through the binary.
fn pcap_run(name: &str, fault: Option<FaultConfig>) -> Option<TopologyResult> {
    let bin = forwarder()?;
    let (file, mut scenario) = load(name);
    scenario.rss.queues = 2;
    scenario.rss.queue_worker = vec![0, 1];
    let work = tempfile::tempdir().expect("tempdir");
    let _turn = FORWARDER.lock().unwrap_or_else(|e| e.into_inner());
    Some(
        pcap::run_with(
            &file,
            &scenario,
            &bin,
            work.path(),
            &ForwarderOptions { fault },
        )
        .expect("the pcap topology runs"),
    )
}

/// The run failed, the fault struck, and every check in `checks` is among the failures.
fn assert_caught(r: &TopologyResult, fault: FaultConfig, checks: &[&str]) {
    let report = render(r);
    assert_eq!(r.counts.fault, Some(fault.to_string()), "{report}");
    assert!(
        r.counts.faults_injected > 0,
        "the fault never struck: {report}"
    );
    assert!(
        !r.passed,
        "HARNESS DEFECT: {fault} struck {} packets and every check passed:\n{report}",
        r.counts.faults_injected
    );
    for check in checks {
        assert!(
            r.failures.iter().any(|f| f.check == *check),
            "{fault}: no `{check}` failure:\n{report}"
        );
    }
}

fn fault(kind: FaultKind, every: u32) -> FaultConfig {
    FaultConfig { kind, every }
}

#[rstest]
#[case::fullnat_tcp("fullnat_tcp")]
#[case::fullnat_udp("fullnat_udp")]
fn inproc_without_a_fault_passes(#[case] name: &str) {
    let r = inproc_run(name, None);
    assert!(r.passed, "{}", render(&r));
    assert_eq!(r.counts.fault, None);
    assert_eq!(r.counts.faults_injected, 0);
}

/// (fault, scenario, the checks that must fail)
#[rstest]
#[case::wrong_local_port(fault(FaultKind::WrongLocalPort, 3), "fullnat_tcp", &["stickiness"])]
#[case::wrong_local_port_udp(fault(FaultKind::WrongLocalPort, 2), "fullnat_udp", &["stickiness"])]
#[case::bad_checksum(fault(FaultKind::BadChecksum, 5), "fullnat_tcp", &["checksum"])]
#[case::bad_checksum_udp(fault(FaultKind::BadChecksum, 3), "fullnat_udp", &["checksum"])]
#[case::wrong_worker(fault(FaultKind::WrongWorker, 3), "fullnat_tcp", &["rss_affinity"])]
#[case::drop_packet(fault(FaultKind::DropPacket, 7), "fullnat_tcp", &["verdict"])]
#[case::wrong_rs(fault(FaultKind::WrongRs, 3), "fullnat_tcp", &["stickiness"])]
#[case::wrong_rs_udp(fault(FaultKind::WrongRs, 2), "fullnat_udp", &["stickiness"])]
#[case::reused_local_port(fault(FaultKind::ReusedLocalPort, 1), "fullnat_tcp", &["unique_local"])]
fn inproc_catches_the_fault(
    #[case] fault: FaultConfig,
    #[case] scenario: &str,
    #[case] checks: &[&str],
) {
    let r = inproc_run(scenario, Some(fault));
    assert_caught(&r, fault, checks);
}

#[test]
fn pcap_without_a_fault_passes() {
    let Some(r) = pcap_run("fullnat_tcp", None) else {
        return;
    };
    assert!(r.passed, "{}", render(&r));
    assert_eq!(r.counts.fault, None);
    assert_eq!(r.counts.faults_injected, 0);
}

/// Through the binary: the fault comes from the `[fault]` section of its configuration,
/// and its count from its stats JSON.
#[rstest]
#[case::bad_checksum(fault(FaultKind::BadChecksum, 5), &["checksum"])]
#[case::wrong_worker(fault(FaultKind::WrongWorker, 3), &["worker_affinity", "rss_affinity"])]
#[case::drop_packet(fault(FaultKind::DropPacket, 7), &["verdict", "counters"])]
#[case::wrong_local_port(fault(FaultKind::WrongLocalPort, 3), &["stickiness"])]
#[case::wrong_rs(fault(FaultKind::WrongRs, 3), &["stickiness"])]
#[case::reused_local_port(fault(FaultKind::ReusedLocalPort, 1), &["unique_local"])]
fn pcap_catches_the_fault(#[case] fault: FaultConfig, #[case] checks: &[&str]) {
    let Some(r) = pcap_run("fullnat_tcp", Some(fault)) else {
        return;
    };
    assert_caught(&r, fault, checks);
}

/// A bad `[fault]` section is refused like any bad configuration: file, line and field,
/// exit code 2.
#[test]
fn a_bad_fault_section_is_refused_with_its_line_and_field() {
    let Some(bin) = forwarder() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\nrx_queues = 1\n\n\
         [fault]\nkind = \"flip_bits\"\nevery = 2\n",
    )
    .expect("write config");
    let out = Command::new(&bin)
        .arg("--check")
        .arg(&path)
        .output()
        .expect("forwarder runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:7:8: fault.kind:", path.display())),
        "{err}"
    );
    assert!(err.contains("wrong_local_port"), "{err}");
}
