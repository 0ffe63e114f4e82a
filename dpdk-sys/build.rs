//! Finds the system DPDK with pkg-config, generates bindings with bindgen and compiles the
//! C shim that exports DPDK's `static inline` fast-path functions.

use std::env;
use std::path::PathBuf;
use std::process::{self, Command};

const MIN_VERSION: &str = "22.11";
const INSTALL_HINT: &str = "apt-get install libdpdk-dev dpdk-dev libclang-dev clang pkg-config \
     (or run ci/setup as root; for your own DPDK build set PKG_CONFIG_PATH to its lib/pkgconfig)";

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=DPDK_STATIC");

    let statik = env::var_os("DPDK_STATIC").is_some_and(|v| v == "1");
    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .statik(statik)
        .cargo_metadata(true)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(err) => fail(&format!(
            "DPDK >= {MIN_VERSION} not found by pkg-config ({}); install it: {INSTALL_HINT}",
            first_line(&err.to_string())
        )),
    };
    // The ring PMD is a plugin in shared builds and is not in libdpdk.pc's shared link line;
    // `rte_eth_from_rings` lives there.
    if !statik {
        println!("cargo:rustc-link-lib=dylib=rte_net_ring");
        println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
    }
    println!("cargo:version={}", lib.version);

    let cflags = pkg_config_cflags();
    let csrc = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets this")).join("csrc");

    let mut build = cc::Build::new();
    build
        .file(csrc.join("shim.c"))
        .file(csrc.join("bench.c"))
        .include(&csrc)
        .opt_level(3);
    for flag in &cflags {
        build.flag(flag);
    }
    build.warnings(false).compile("l4lab_dpdk_shim");

    let bindings = bindgen_or_exit(&cflags, &csrc);
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets this")).join("bindings.rs");
    if let Err(err) = bindings.write_to_file(&out) {
        fail(&format!("cannot write {}: {err}", out.display()));
    }
}

fn bindgen_or_exit(cflags: &[String], csrc: &std::path::Path) -> bindgen::Bindings {
    let scratch =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets this")).join("macro-fallback");
    if let Err(err) = std::fs::create_dir_all(&scratch) {
        fail(&format!("cannot create {}: {err}", scratch.display()));
    }
    let builder = bindgen::Builder::default()
        .header(csrc.join("wrapper.h").to_string_lossy())
        .clang_args(cflags)
        .clang_arg(format!("-I{}", csrc.display()))
        .allowlist_function("rte_.*|l4lab_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|RING_F_.*|SOCKET_ID_ANY|L4LAB_.*")
        .clang_macro_fallback()
        // Its scratch files go to OUT_DIR, not the source folder (builds may run at once).
        .clang_macro_fallback_build_dir(&scratch)
        // Packed structs holding aligned members that Rust cannot represent.
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_flow_item_l2tpv2")
        .derive_default(true)
        .derive_debug(true)
        .prepend_enum_name(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

    // bindgen panics when libclang cannot be loaded; turn that into the one-line hint.
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    let _ = std::panic::take_hook();
    match result {
        Ok(Ok(bindings)) => bindings,
        Ok(Err(err)) => fail(&format!(
            "bindgen could not parse the DPDK headers ({}); install: {INSTALL_HINT}",
            first_line(&err.to_string())
        )),
        Err(_) => fail(&format!(
            "libclang not found (bindgen needs it; LIBCLANG_PATH may point to it); install: {INSTALL_HINT}"
        )),
    }
}

/// The raw compile flags: they carry `-include rte_config.h` and `-march=`, which the
/// pkg-config crate's parsed form drops.
fn pkg_config_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut flags = Vec::new();
            let mut words = text.split_whitespace();
            while let Some(word) = words.next() {
                if word == "-include" {
                    if let Some(file) = words.next() {
                        flags.push(format!("-include{file}"));
                    }
                } else {
                    flags.push(word.to_owned());
                }
            }
            flags
        }
        _ => fail(&format!(
            "`{pkg_config} --cflags libdpdk` failed; install: {INSTALL_HINT}"
        )),
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    process::exit(1);
}
