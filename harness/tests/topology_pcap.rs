//! The real `forwarder` binary on net_pcap, two queues and two workers, through the
//! harness's pcap topology; and a corrupted output capture must fail the check.
//!
//! Each run spawns its own forwarder process (EAL once per process) with `--no-huge
//! --no-pci --no-shconf` and a unique `--file-prefix`. The binary is looked for next to
//! this test's executable (`target/<profile>/forwarder`, built by `cargo test
//! --workspace`); when it is missing the tests say so and pass, unless
//! `L4LAB_REQUIRE_FORWARDER=1`.

use std::path::{Path, PathBuf};

use harness::capture::{self, Frame};
use harness::run::render;
use harness::scenario::Scenario;
use harness::topology::{pcap, TopologyResult};

fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
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

/// Loads a committed scenario with 2 queues → 2 workers.
fn two_queue(name: &str) -> (PathBuf, Scenario) {
    let file = pcaps_dir().join(format!("{name}.toml"));
    let mut s = Scenario::load(&file).expect("committed scenario loads");
    s.rss.queues = 2;
    s.rss.queue_worker = vec![0, 1];
    (file, s)
}

fn run(name: &str, work: &Path) -> Option<TopologyResult> {
    let bin = forwarder()?;
    let (file, s) = two_queue(name);
    Some(pcap::run(&file, &s, &bin, work).expect("the pcap topology runs"))
}

fn assert_two_workers_busy(r: &TopologyResult) {
    assert_eq!(r.counts.workers.len(), 2, "{}", render(r));
    assert!(
        r.counts.workers.iter().all(|w| w.tx > 0),
        "both workers forwarded: {:?}",
        r.counts.workers
    );
}

#[test]
fn fullnat_tcp_through_the_binary_on_two_queues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(r) = run("fullnat_tcp", dir.path()) else {
        return;
    };
    assert!(r.passed, "{}", render(&r));
    assert!(r.known_differences.is_empty(), "{}", render(&r));
    assert_eq!(r.counts.outputs, 196);
    assert_two_workers_busy(&r);
}

#[test]
fn nat_tcp_through_the_binary_on_two_queues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(r) = run("nat_tcp", dir.path()) else {
        return;
    };
    assert!(r.passed, "{}", render(&r));
    assert!(r.known_differences.is_empty(), "{}", render(&r));
    assert_eq!(r.counts.outputs, 74);
    assert_two_workers_busy(&r);
}

/// Rewrites one output capture of a finished run with `edit` applied to its first IP
/// frame, then re-checks the run's files.
fn recheck_with(work: &Path, name: &str, edit: impl Fn(&mut Vec<u8>)) -> TopologyResult {
    let (file, s) = two_queue(name);
    let out = work.join("o0.pcap");
    let mut frames: Vec<Frame> = capture::read(&out).expect("o0.pcap");
    let first_ip = frames
        .iter()
        .position(|f| f.data.get(12..14) == Some(&[0x08, 0x00][..]))
        .expect("worker 0 sent an IPv4 packet");
    edit(&mut frames[first_ip].data);
    capture::write(&out, &frames).expect("rewrite o0.pcap");
    pcap::check(&file, &s, work).expect("re-check")
}

#[test]
fn a_flipped_byte_in_an_output_capture_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(r) = run("fullnat_tcp", dir.path()) else {
        return;
    };
    assert!(r.passed, "{}", render(&r));
    // The last byte of the TCP destination port (the real server's port): the rewrite and
    // the checksum are both wrong now.
    let bad = recheck_with(dir.path(), "fullnat_tcp", |d| d[14 + 20 + 3] ^= 0x01);
    assert!(!bad.passed);
    let checks: Vec<&str> = bad.failures.iter().map(|f| f.check.as_str()).collect();
    assert!(checks.contains(&"checksum"), "{}", render(&bad));
    assert!(
        checks.contains(&"rewrite") || checks.contains(&"stickiness"),
        "{}",
        render(&bad)
    );
    let first = &bad.failures[0];
    assert_eq!(
        (first.packet.as_str(), first.field.as_str()),
        ("output #0 (worker 0)", "tcp.checksum"),
        "{}",
        render(&bad)
    );
    assert!(!bad.mismatch_frames.is_empty());
}

#[test]
fn an_output_moved_to_the_other_worker_fails_affinity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(r) = run("nat_tcp", dir.path()) else {
        return;
    };
    assert!(r.passed, "{}", render(&r));
    // Move worker 0's first output to worker 1's capture.
    let o0 = dir.path().join("o0.pcap");
    let o1 = dir.path().join("o1.pcap");
    let mut f0 = capture::read(&o0).expect("o0");
    let mut f1 = capture::read(&o1).expect("o1");
    let i = f0
        .iter()
        .position(|f| f.data.get(12..14) == Some(&[0x08, 0x00][..]))
        .expect("an IPv4 output");
    f1.push(f0.remove(i));
    capture::write(&o0, &f0).expect("write");
    capture::write(&o1, &f1).expect("write");
    let (file, s) = two_queue("nat_tcp");
    let bad = pcap::check(&file, &s, dir.path()).expect("re-check");
    assert!(!bad.passed);
    assert!(
        bad.failures
            .iter()
            .any(|f| f.check == "worker_affinity" || f.check == "rss_affinity"),
        "{}",
        render(&bad)
    );
}
