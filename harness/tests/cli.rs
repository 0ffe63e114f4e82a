//! The `harness` binary's output formats.

use std::process::Command;

fn harness(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rss_hash_prints_hash_and_queue() {
    let (ok, out, _) = harness(&[
        "rss",
        "hash",
        "--src",
        "66.9.149.187:2794",
        "--dst",
        "161.142.100.80:1766",
        "--proto",
        "tcp",
        "--queues",
        "7",
    ]);
    assert!(ok);
    // 0x51ccc178 % 128 = 120; 120 % 7 = 1.
    assert_eq!(out, "hash 0x51ccc178 queue 1\n");
    let (ok, out, _) = harness(&[
        "rss",
        "hash",
        "--src",
        "66.9.149.187",
        "--dst",
        "161.142.100.80",
        "--proto",
        "ip",
    ]);
    assert!(ok);
    assert_eq!(out, "hash 0x323e8fc2 queue 0\n");
}

#[test]
fn rss_hash_symmetric_key() {
    let a = harness(&[
        "rss",
        "hash",
        "--key",
        "symmetric",
        "--src",
        "10.0.0.1:1000",
        "--dst",
        "10.0.0.2:80",
    ]);
    let b = harness(&[
        "rss",
        "hash",
        "--key",
        "symmetric",
        "--src",
        "10.0.0.2:80",
        "--dst",
        "10.0.0.1:1000",
    ]);
    assert!(a.0 && b.0);
    assert_eq!(a.1, b.1);
}

#[test]
fn rss_hash_rejects_bad_input() {
    let (ok, _, err) = harness(&[
        "rss",
        "hash",
        "--key",
        "abcd",
        "--src",
        "1.1.1.1:1",
        "--dst",
        "2.2.2.2:2",
    ]);
    assert!(!ok);
    assert!(err.contains("40 or 52 bytes"), "{err}");
    let (ok, _, err) = harness(&[
        "rss", "hash", "--src", "1.1.1.1", "--dst", "2.2.2.2", "--proto", "tcp",
    ]);
    assert!(!ok);
    assert!(err.contains("IP:PORT"), "{err}");
}

#[test]
fn pcaps_gen_is_byte_identical() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [&a, &b] {
        let (ok, _, err) = harness(&["pcaps", "gen", "--out", dir.path().to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let mut names: Vec<_> = std::fs::read_dir(a.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 24);
    for name in names {
        let x = std::fs::read(a.path().join(&name)).unwrap();
        let y = std::fs::read(b.path().join(&name)).unwrap();
        assert!(x == y, "{name:?} differs between two runs");
    }
}

#[test]
fn rss_split_writes_one_capture_per_queue() {
    let dir = tempfile::tempdir().unwrap();
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/fullnat_tcp.pcap");
    let out = dir.path().join("q");
    let (ok, stdout, err) = harness(&[
        "rss",
        "split",
        "--input",
        input,
        "--out-dir",
        out.to_str().unwrap(),
        "--queues",
        "4",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("q0 "), "{stdout}");
    for q in 0..4 {
        assert!(out.join(format!("q{q}.pcap")).exists());
    }
    let (ok, _, err) = harness(&[
        "rss",
        "split",
        "--input",
        "/nonexistent.pcap",
        "--out-dir",
        "x",
        "--queues",
        "2",
    ]);
    assert!(!ok);
    assert!(err.contains("/nonexistent.pcap"), "{err}");
}

#[test]
fn replay_retarget_rewrites_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/fullnat_udp.pcap");
    let output = dir.path().join("out.pcap");
    let (ok, stdout, err) = harness(&[
        "replay",
        "--retarget",
        "10.9.9.9:5353",
        "--input",
        input,
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // The IPv6 flows cannot be pointed at an IPv4 VIP.
    assert!(stdout.starts_with("read "), "{stdout}");
    assert!(!stdout.contains("family_left_out 0"), "{stdout}");
    let frames = harness::capture::read(&output).unwrap();
    assert!(!frames.is_empty());
    for f in frames {
        harness::checks::checksums_valid(&f.data).unwrap();
    }
}
