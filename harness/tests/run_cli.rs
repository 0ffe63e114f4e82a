//! `harness run`: summary lines, JSON results, mismatch captures, exit status, and a
//! skipped topology when its prerequisite is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

fn harness(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .expect("harness runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("result written")).expect("json")
}

#[test]
fn all_committed_scenarios_pass_in_process_with_one_json_each() {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = pcaps_dir();
    let (code, text) = harness(&[
        "run",
        "--all",
        dir.to_str().expect("utf-8 path"),
        "--topology",
        "inproc",
        "--out",
        out.path().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches(" inproc ").count(), 11, "{text}");
    assert!(text.contains("harness run: 11 runs, 0 failed"), "{text}");
    let summary = json(&out.path().join("summary.json"));
    assert_eq!(summary["passed"], true);
    let r = json(&out.path().join("scenarios/fullnat_tcp-inproc.json"));
    assert_eq!(r["scenario"], "fullnat-tcp");
    assert_eq!(r["topology"], "inproc");
    assert_eq!(r["passed"], true);
    assert_eq!(r["counts"]["capture"], 201);
    // No known differences are accepted any more (NAT replies and ICMP errors that RSS
    // gives another worker are redirected to the owner): none may be listed.
    let nat = json(&out.path().join("scenarios/nat_tcp-inproc.json"));
    assert_eq!(nat["passed"], true);
    assert!(nat["known_differences"]
        .as_array()
        .is_some_and(|a| a.is_empty()));
    assert!(!text.contains("KNOWN DIFFERENCE"), "{text}");
}

#[test]
fn a_failing_scenario_exits_1_and_writes_its_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    for ext in ["pcap", "expect"] {
        std::fs::copy(
            pcaps_dir().join(format!("vlan.{ext}")),
            dir.path().join(format!("vlan.{ext}")),
        )
        .expect("copy");
    }
    let toml = std::fs::read_to_string(pcaps_dir().join("vlan.toml")).expect("read");
    let broken = toml.replacen("forward = 49", "forward = 50", 1);
    assert_ne!(toml, broken, "the scenario's expected count moved");
    std::fs::write(dir.path().join("vlan.toml"), broken).expect("write");
    let out = dir.path().join("out");
    let (code, text) = harness(&[
        "run",
        "--scenario",
        dir.path().join("vlan.toml").to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL vlan"), "{text}");
    assert!(
        text.contains("[expect] capture: expect.forward: expected 50 packets (scenario), got 49 packets (oracle)"),
        "{text}"
    );
    let r = json(&out.join("scenarios/vlan-inproc.json"));
    assert_eq!(r["passed"], false);
    assert_eq!(r["failures"][0]["field"], "expect.forward");
    assert_eq!(json(&out.join("summary.json"))["passed"], false);
}

#[test]
fn a_missing_forwarder_skips_the_pcap_topology_with_a_message() {
    let out = tempfile::tempdir().expect("tempdir");
    let (code, text) = harness(&[
        "run",
        "--scenario",
        pcaps_dir().join("vlan.toml").to_str().expect("utf-8"),
        "--topology",
        "pcap",
        "--forwarder",
        "/nonexistent/forwarder",
        "--out",
        out.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("SKIP vlan") && text.contains("/nonexistent/forwarder: no such file"),
        "{text}"
    );
    let r = json(&out.path().join("scenarios/vlan-pcap.json"));
    assert!(r["skipped"].is_string());
}
