//! The `traffic-gen` binary: parse the command line (exit 2 on a bad value, before the
//! EAL starts), run, print the summary; exit 3 on a failed start, 4 on link down.
#![forbid(unsafe_code)]

use clap::Parser;
use traffic_gen::cli::Args;
use traffic_gen::run;

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("traffic-gen: {e}");
            std::process::exit(2);
        }
    };
    match run::run(&cfg) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("traffic-gen: warning: {w}");
            }
            println!(
                "traffic-gen: {} done: tx {} pkts ({:.3} Mpps over {:.3} s), rx {} pkts; port opackets {} ipackets {}",
                s.mode,
                s.tx_packets,
                s.rate.achieved_pps / 1e6,
                s.tx_seconds,
                s.rx_packets,
                s.port_stats.opackets,
                s.port_stats.ipackets
            );
            if let Some(l) = &s.latency {
                println!(
                    "traffic-gen: latency p50 {} ns p99 {} ns max {} ns; stamps sent {} lost {} dup {} reordered {}",
                    l.p50_ns, l.p99_ns, l.max_ns, l.sent, l.lost, l.duplicates, l.reordered
                );
            }
        }
        Err(e) => {
            eprintln!("traffic-gen: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
