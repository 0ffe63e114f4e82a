//! Bad command-line values: a clear message naming the value, exit code 2, and the EAL
//! never starts (no DPDK output, no device needed).

mod common;

#[test]
fn bad_values_exit_2_before_the_eal() {
    let cases: [(&[&str], &str); 10] = [
        (&["--pps", "fast", "--count", "1"], "bad rate \"fast\""),
        (&["--size", "63", "--count", "1"], "bad size \"63\""),
        (&["--flows", "zero", "--count", "1"], "bad count \"zero\""),
        (&["--dst", "10.0.0.1", "--count", "1"], "bad destination"),
        (
            &["--src", "10.0.0.0/33", "--count", "1"],
            "bad source prefix",
        ),
        (&["--sport", "2000-1000", "--count", "1"], "bad port range"),
        (&["--duration", "5", "--count", "1"], "bad duration \"5\""),
        (&["--proto", "sctp", "--count", "1"], "bad protocol"),
        (
            &[
                "--flows",
                "1M",
                "--src",
                "10.0.0.0/30",
                "--sport",
                "1-100",
                "--count",
                "1",
            ],
            "--flows 1000000",
        ),
        (&["--pps", "1M"], "give --count or --duration"),
    ];
    // Real EAL arguments follow, so a run that got past parsing would start DPDK.
    let eal = common::eal("cli", 1, "net_null0,no-rx=1");
    for (args, want) in cases {
        let out = common::traffic_gen(args, &eal);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: stderr {stderr:?} lacks {want:?}"
        );
        assert!(
            !stderr.contains("EAL") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn failed_start_is_exit_3() {
    // An unknown virtual device: the EAL refuses to start.
    let eal = common::eal("badvdev", 1, "net_nosuchdevice0");
    let out = common::traffic_gen(&["--count", "1"], &eal);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed to start"));
}
