//! Per-packet cost of the safe layer against the same loop written in C, in one process
//! on one net_ring loopback port: bulk alloc 32, write a 64-byte frame, tx burst, rx
//! burst, bulk free. Rounds alternate C and Rust so both see the same machine state.
//!
//! `cargo run --release -p dpdk --example loopback_bench -- [--packets N] [--rounds R] [--json FILE]`

use std::time::Instant;

use dpdk::{ringport, Burst, Eal, Mempool, Port, PortConfig, BURST_SIZE};

const FRAME: usize = 64;

struct Args {
    packets: u64,
    rounds: usize,
    json: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        packets: 20_000_000,
        rounds: 5,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--packets" => {
                args.packets = value()?.parse().map_err(|e| format!("--packets: {e}"))?
            }
            "--rounds" => args.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--json" => args.json = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.rounds == 0 || args.packets < BURST_SIZE as u64 {
        return Err("--rounds must be > 0 and --packets >= 32".into());
    }
    Ok(args)
}

/// The first CPU this process may run on, so that `taskset -c N` picks the benchmark's CPU.
fn first_allowed_cpu() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let list = s.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
            list.split(':')
                .nth(1)?
                .trim()
                .split([',', '-'])
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn hugepages_free() -> bool {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .is_some_and(|n| n >= 256)
}

fn rust_loop(tx: &mut dpdk::TxQueue, rx: &mut dpdk::RxQueue, pool: &Mempool, packets: u64) -> u64 {
    let mut out = Burst::new();
    let mut inb = Burst::new();
    let (mut sent, mut received) = (0u64, 0u64);
    while sent < packets {
        if !out.alloc_bulk(pool, BURST_SIZE) {
            break;
        }
        for (i, m) in out.as_mut_slice().iter_mut().enumerate() {
            match m.append(FRAME) {
                Ok(data) => data[..14].fill(i as u8),
                Err(_) => return received,
            }
        }
        tx.tx_burst(&mut out);
        out.clear();
        sent += BURST_SIZE as u64;
        received += rx.rx_burst(&mut inb) as u64;
        inb.clear();
    }
    received
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loopback_bench: {e}");
            std::process::exit(2);
        }
    };
    let huge = hugepages_free();
    let mut eal = Eal::builder()
        .no_pci()
        .file_prefix(&format!("l4lab-bench-{}", std::process::id()))
        .log_level("warning")
        .lcores(&format!("0@{}", first_allowed_cpu()));
    if !huge {
        eal = eal.no_huge().memory_mb(512);
    }
    let _eal = match eal.init() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("loopback_bench: {e}");
            std::process::exit(1);
        }
    };
    let run = || -> Result<(), dpdk::Error> {
        let pool = Mempool::with_defaults("bench_pool", 8191)?;
        let id = ringport::loopback("net_ringbench", 1, 1024)?;
        let mut port = Port::open(id)?;
        let (mut rxq, mut txq) = port.configure(&PortConfig::new(1), &pool)?;
        port.start()?;
        let (rx, tx) = (&mut rxq[0], &mut txq[0]);

        // Warm up both loops.
        rust_loop(tx, rx, &pool, 1_000_000);
        c_loop(rx, tx, &pool, 1_000_000)?;

        let (mut c_ns, mut rust_ns) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let t = Instant::now();
            let got_c = c_loop(rx, tx, &pool, args.packets)?;
            let c = t.elapsed().as_nanos() as f64 / args.packets as f64;
            let t = Instant::now();
            let got_r = rust_loop(tx, rx, &pool, args.packets);
            let r = t.elapsed().as_nanos() as f64 / args.packets as f64;
            if got_c != args.packets || got_r != args.packets {
                eprintln!(
                    "round {round}: lost packets (C got {got_c}, Rust got {got_r} of {})",
                    args.packets
                );
                std::process::exit(1);
            }
            println!("round {round}: C {c:.2} ns/pkt ({:.2} Mpps), Rust {r:.2} ns/pkt ({:.2} Mpps), Rust/C {:.3}", 1e3 / c, 1e3 / r, r / c);
            c_ns.push(c);
            rust_ns.push(r);
        }
        let (c, r) = (median(&mut c_ns), median(&mut rust_ns));
        println!(
            "median over {} rounds of {} packets ({}): C {c:.2} ns/pkt, Rust {r:.2} ns/pkt, Rust/C {:.3}",
            args.rounds,
            args.packets,
            if huge { "hugepages" } else { "no hugepages" },
            r / c
        );
        if let Some(path) = &args.json {
            let json = format!(
                "{{\"bench\":\"ring_loopback_alloc_tx_rx_free\",\"frame\":{FRAME},\"packets\":{},\"rounds\":{},\"hugepages\":{huge},\"c_ns_per_pkt\":{c:.3},\"rust_ns_per_pkt\":{r:.3},\"rust_over_c\":{:.4},\"rust_mpps\":{:.3},\"c_mpps\":{:.3}}}\n",
                args.packets, args.rounds, r / c, 1e3 / r, 1e3 / c
            );
            if let Err(e) = std::fs::write(path, json) {
                eprintln!("loopback_bench: cannot write {path}: {e}");
                std::process::exit(1);
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("loopback_bench: {e}");
        std::process::exit(1);
    }
}

fn c_loop(
    rx: &mut dpdk::RxQueue,
    tx: &mut dpdk::TxQueue,
    pool: &Mempool,
    packets: u64,
) -> Result<u64, dpdk::Error> {
    dpdk::bench::c_loopback(rx, tx, pool, packets, FRAME as u16)
}
