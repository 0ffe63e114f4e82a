//! Every committed scenario through the in-process topology (the forwarder's dataplane
//! library, the harness's responder as real servers), and the harness failing when
//! something observable is wrong.

use std::path::{Path, PathBuf};

use harness::run::render;
use harness::scenario::{Scenario, TtlPolicy};
use harness::topology::{inproc, TopologyResult};
use rstest::rstest;

fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

fn run(name: &str, edit: impl FnOnce(&mut Scenario)) -> TopologyResult {
    let file = pcaps_dir().join(format!("{name}.toml"));
    let mut scenario = Scenario::load(&file).expect("committed scenario loads");
    edit(&mut scenario);
    inproc::run(&file, &scenario).expect("the in-process topology runs")
}

const SCENARIOS: [&str; 11] = [
    "fragments",
    "fullnat_tcp",
    "fullnat_toa",
    "fullnat_udp",
    "icmp_errors",
    "ipv6",
    "malformed",
    "nat_tcp",
    "sched_maglev",
    "sched_wrr",
    "vlan",
];

#[rstest]
#[case::fragments("fragments")]
#[case::fullnat_tcp("fullnat_tcp")]
#[case::fullnat_toa("fullnat_toa")]
#[case::fullnat_udp("fullnat_udp")]
#[case::icmp_errors("icmp_errors")]
#[case::ipv6("ipv6")]
#[case::malformed("malformed")]
#[case::nat_tcp("nat_tcp")]
#[case::sched_maglev("sched_maglev")]
#[case::sched_wrr("sched_wrr")]
#[case::vlan("vlan")]
fn committed_scenario_passes_in_process(#[case] name: &str) {
    let r = run(name, |_| {});
    assert!(r.passed, "{}", render(&r));
    assert!(r.skipped.is_none());
    assert_eq!(
        r.counts.capture,
        r.counts.expected_forward + r.counts.expected_drops.values().sum::<usize>()
    );
    // Every connection's server answered through the balancer (replies were checked).
    assert!(r.counts.replies > 0, "{}", render(&r));
    assert!(!r.counts.workers.is_empty());
}

#[test]
fn every_committed_scenario_has_a_case() {
    let mut names: Vec<String> = std::fs::read_dir(pcaps_dir())
        .expect("pcaps/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(names, SCENARIOS, "add the new scenario to the rstest cases");
}

#[test]
fn fullnat_replies_are_steered_without_redirects_under_rss_aware_ports() {
    let r = run("fullnat_tcp", |s| s.check.rss_steering = true);
    assert!(r.passed, "{}", render(&r));
    assert!(r.counts.workers.iter().all(|w| w.redirects == 0));
    assert_eq!(r.counts.workers.len(), 4);
}

#[test]
fn a_wrong_expected_count_fails() {
    let r = run("fullnat_tcp", |s| {
        if let Some(e) = s.expect.as_mut() {
            e.forward += 1;
        }
    });
    assert!(!r.passed);
    assert!(
        r.failures
            .iter()
            .any(|f| f.check == "expect" && f.field == "expect.forward"),
        "{}",
        render(&r)
    );
}

#[test]
fn a_wrong_ttl_policy_fails_on_every_forwarded_packet() {
    // The forwarder decrements TTL; a scenario that says it must not is contradicted.
    let r = run("fullnat_udp", |s| s.ttl = TtlPolicy::Preserve);
    assert!(!r.passed);
    let ttl = r.failures.iter().filter(|f| f.check == "ttl").count();
    assert_eq!(ttl, r.counts.outputs, "{}", render(&r));
    assert!(!r.mismatch_frames.is_empty());
}

#[test]
fn a_wrong_expected_drop_reason_fails() {
    // The scenario claims the bad-checksum packets are malformed ones: the oracle, which
    // never reads [expect], disagrees and the run says which count.
    let r = run("malformed", |s| {
        if let Some(e) = s.expect.as_mut() {
            let n = e.drop.remove("bad_checksum").unwrap_or(0);
            e.drop.insert(
                "malformed".to_owned(),
                e.drop.get("malformed").copied().unwrap_or(0) + n,
            );
        }
    });
    assert!(!r.passed);
    assert!(r
        .failures
        .iter()
        .any(|f| f.field == "expect.drop.bad_checksum"));
}

#[test]
fn a_wrong_expect_line_fails_naming_the_packet() {
    let dir = tempfile::tempdir().expect("tempdir");
    for ext in ["toml", "pcap", "expect"] {
        std::fs::copy(
            pcaps_dir().join(format!("nat_tcp.{ext}")),
            dir.path().join(format!("nat_tcp.{ext}")),
        )
        .expect("copy");
    }
    let expect = dir.path().join("nat_tcp.expect");
    let text = std::fs::read_to_string(&expect).expect("read");
    std::fs::write(
        &expect,
        text.replacen("3 forward", "3 drop no_connection", 1),
    )
    .expect("write");
    let file = dir.path().join("nat_tcp.toml");
    let scenario = Scenario::load(&file).expect("loads");
    let r = inproc::run(&file, &scenario).expect("runs");
    assert!(!r.passed);
    let f = r
        .failures
        .iter()
        .find(|f| f.check == "expect")
        .expect("an expect failure");
    assert_eq!(f.packet, "capture #3");
    assert_eq!(f.expected, "drop no_connection (.expect)");
    assert_eq!(f.got, "forward (oracle)");
}
