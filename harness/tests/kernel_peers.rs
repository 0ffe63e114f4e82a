//! Real Linux peers through the real `forwarder` (issue 8): curl, wrk and UDP clients in a
//! client namespace, `l4lab-echo` servers in two server namespaces, the forwarder on
//! net_af_packet between them (see `harness::topology::kernel`).
//!
//! Needs root, network namespaces, `ip`, `ethtool`, `curl`, `wrk` and `tcpdump` (ci/setup
//! installs them) and the `forwarder` binary (built by `cargo test --workspace`); where
//! any is missing each test prints why and passes. Each test is bounded (wrk runs 3 s).

use harness::topology::kernel::{run_scenario, KernelError, Tools};

fn scenario(name: &str) {
    let tools = match Tools::locate() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIPPED kernel/{name}: {e}");
            return;
        }
    };
    let tools = Tools {
        echo: env!("CARGO_BIN_EXE_l4lab-echo").into(),
        ..tools
    };
    match run_scenario(name, &tools) {
        Ok(facts) => {
            for f in facts {
                eprintln!("kernel/{name}: {f}");
            }
        }
        Err(KernelError::Skip(why)) => eprintln!("SKIPPED kernel/{name}: {why}"),
        Err(e) => panic!("kernel/{name}: {e}"),
    }
}

#[test]
fn fullnat_http_with_toa() {
    scenario("fullnat-http");
}

#[test]
fn nat_http() {
    scenario("nat-http");
}

#[test]
fn udp_echo_through_fullnat() {
    scenario("udp-fullnat");
}

#[test]
fn rs_removed_during_wrk() {
    scenario("rs-removal");
}

#[test]
fn short_connections_reuse_local_ports() {
    scenario("short-connections");
}

#[test]
fn bench_through_forwarder_and_direct() {
    scenario("bench");
}
