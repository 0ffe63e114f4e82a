//! A running forwarder driven through its control socket with `forwarder ctl`, its
//! Prometheus endpoint and DPDK telemetry; bad commands change nothing; SIGTERM stops it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_forwarder");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ctl(sock: &Path, words: &[&str]) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .args(words)
        .arg("--socket")
        .arg(sock)
        .output()
        .expect("ctl runs")
}

fn ctl_json(sock: &Path, words: &[&str]) -> serde_json::Value {
    let mut all = words.to_vec();
    all.push("--json");
    let out = ctl(sock, &all);
    assert!(
        out.status.success(),
        "ctl {words:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ctl --json prints JSON")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("ephemeral port")
}

#[test]
fn control_socket_metrics_and_telemetry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("ctl.sock");
    let metrics_port = free_port();
    let prefix = format!("l4lab-ctl-{}", std::process::id());
    let cfg = dir.path().join("f.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[eal]
args = ["--no-huge", "--no-pci", "-m", "256", "--file-prefix", "{prefix}", "--log-level", "warning"]

[[port]]
name = "p0"
device = "net_ring0"
rx_queues = 1
gateway_mac = "02:00:00:00:00:fe"

[laddr]
p0 = ["192.168.100.200"]

[[service]]
vip = "10.0.0.1"
port = 80
proto = "tcp"
mode = "fullnat"
scheduler = "wrr"
rs = [{{ addr = "192.168.100.10:8080", weight = 3 }}]

[control]
socket = "{sock}"
metrics = "127.0.0.1:{metrics_port}"
"#,
            sock = sock.display()
        ),
    )
    .expect("config");

    let child = Command::new(BIN)
        .arg("run")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("forwarder starts");
    let mut running = Running(child);
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "control socket never appeared"
        );
        if let Ok(Some(status)) = running.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = running.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("forwarder exited early with {status}: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "control socket is private");

    // The configured service is there.
    let list = ctl_json(&sock, &["service", "list"]);
    let services = list["services"].as_array().expect("services");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["real_servers"][0]["weight"], 3);

    // Add a service and a real server; both show up.
    ctl_json(
        &sock,
        &[
            "service",
            "add",
            "--vip",
            "10.0.0.2:443",
            "--proto",
            "tcp",
            "--mode",
            "fullnat",
            "--sched",
            "rr",
        ],
    );
    ctl_json(
        &sock,
        &[
            "rs",
            "add",
            "--vip",
            "10.0.0.2:443",
            "--proto",
            "tcp",
            "--rs",
            "192.168.100.20:8443",
            "--weight",
            "5",
        ],
    );
    ctl_json(
        &sock,
        &[
            "rs",
            "edit",
            "--vip",
            "10.0.0.1:80",
            "--proto",
            "tcp",
            "--rs",
            "192.168.100.10:8080",
            "--weight",
            "7",
        ],
    );
    let list = ctl_json(&sock, &["service", "list"]);
    assert_eq!(list["services"].as_array().map(Vec::len), Some(2));
    let text = list.to_string();
    assert!(text.contains("192.168.100.20:8443"), "{text}");
    assert!(text.contains("\"weight\":7"), "{text}");

    // Bad commands: an error, a non-zero exit, and nothing changes.
    let before = ctl_json(&sock, &["service", "list"]);
    let dup = ctl(
        &sock,
        &[
            "service",
            "add",
            "--vip",
            "10.0.0.2:443",
            "--proto",
            "tcp",
            "--mode",
            "fullnat",
        ],
    );
    assert!(!dup.status.success(), "a duplicate service is refused");
    assert!(
        !dup.stderr.is_empty() || !dup.stdout.is_empty(),
        "with a reason"
    );
    let missing = ctl(
        &sock,
        &[
            "rs",
            "add",
            "--vip",
            "10.9.9.9:1",
            "--proto",
            "udp",
            "--rs",
            "1.2.3.4:5",
        ],
    );
    assert!(
        !missing.status.success(),
        "a real server for no service is refused"
    );
    let usage = ctl(&sock, &["service", "frobnicate"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "an unknown verb is a usage error"
    );
    assert_eq!(
        ctl_json(&sock, &["service", "list"]),
        before,
        "refused commands changed nothing"
    );

    // Local addresses.
    ctl_json(
        &sock,
        &["laddr", "add", "--port", "p0", "--addr", "192.168.100.201"],
    );
    let laddrs = ctl_json(&sock, &["laddr", "list"]).to_string();
    assert!(laddrs.contains("192.168.100.201"), "{laddrs}");
    assert!(!ctl(
        &sock,
        &[
            "laddr",
            "add",
            "--port",
            "nope",
            "--addr",
            "192.168.100.202"
        ]
    )
    .status
    .success());

    // Stats, conns.
    let stats = ctl_json(&sock, &["stats"]);
    assert_eq!(stats["stats"]["workers"].as_array().map(Vec::len), Some(1));
    assert_eq!(stats["stats"]["ports"][0]["name"], "p0");
    let conns = ctl_json(&sock, &["conn", "list"]);
    assert_eq!(conns["conns"].as_array().map(Vec::len), Some(0));

    // Prometheus.
    let mut http = TcpStream::connect(("127.0.0.1", metrics_port)).expect("metrics endpoint");
    http.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    http.read_to_string(&mut body).expect("response");
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert!(body.contains("worker=\"0\""), "{body}");

    // DPDK telemetry.
    let mut tel = Command::new("dpdk-telemetry.py")
        .args(["-f", &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dpdk-telemetry.py");
    tel.stdin
        .take()
        .expect("stdin")
        .write_all(b"/l4lab/stats\n")
        .expect("send");
    let out = tel.wait_with_output().expect("telemetry");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"w0_rx_packets\""), "telemetry said: {text}");

    // SIGHUP rereads the file: the 10.0.0.2 service (added by ctl, not in the file) goes,
    // the file's service gets a second real server and a new weight.
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replace(
        r#"rs = [{ addr = "192.168.100.10:8080", weight = 3 }]"#,
        r#"rs = [{ addr = "192.168.100.10:8080", weight = 4 }, { addr = "192.168.100.11:8080" }]"#,
    );
    std::fs::write(&cfg, text).expect("rewrite config");
    let pid = running.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    let start = Instant::now();
    loop {
        let list = ctl_json(&sock, &["service", "list"]);
        let services = list["services"].as_array().cloned().unwrap_or_default();
        if services.len() == 1 && services[0]["real_servers"].as_array().map(Vec::len) == Some(2) {
            assert_eq!(services[0]["real_servers"][0]["weight"], 4);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGHUP reload not applied: {list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken file on SIGHUP changes nothing and the forwarder keeps running.
    std::fs::write(&cfg, "[[port]]\nname = 3\n").expect("break config");
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    std::thread::sleep(Duration::from_millis(300));
    let list = ctl_json(&sock, &["service", "list"]);
    assert_eq!(
        list["services"][0]["real_servers"].as_array().map(Vec::len),
        Some(2)
    );

    // SIGTERM stops it cleanly and the socket goes away.
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "forwarder ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit: {status}");
    assert!(!sock.exists(), "socket removed on exit");
}
