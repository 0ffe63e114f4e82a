//! Counters registered with DPDK telemetry are what `dpdk-telemetry.py` shows.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dpdk::telemetry;

#[test]
fn registered_counters_reach_dpdk_telemetry_py() {
    let prefix = format!("l4lab-telemetry-{}", std::process::id());
    // Telemetry needs the runtime directory, so no --no-shconf here.
    let _eal = dpdk::Eal::builder()
        .no_huge()
        .no_pci()
        .file_prefix(&prefix)
        .memory_mb(128)
        .log_level("warning")
        .init()
        .expect("EAL init");

    let rx = Arc::new(AtomicU64::new(0));
    let seen = rx.clone();
    telemetry::register(
        "/l4lab/test",
        "l4lab test counters",
        Box::new(move || {
            vec![
                ("rx_packets".into(), seen.load(Ordering::Relaxed)),
                ("drops_no_service".into(), 7),
            ]
        }),
    )
    .expect("register");
    rx.store(424_242, Ordering::Relaxed);
    assert!(telemetry::register("/l4lab/bad\0name", "", Box::new(Vec::new)).is_err());

    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py runs (ci/setup installs it with dpdk-dev)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"/l4lab/test\n")
        .expect("send command");
    let out = child.wait_with_output().expect("telemetry client finished");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"rx_packets\": 424242"),
        "telemetry said: {text}"
    );
    assert!(
        text.contains("\"drops_no_service\": 7"),
        "telemetry said: {text}"
    );
}
