#![forbid(unsafe_code)]
//! The `forwarder` binary: run the balancer, check a configuration, or talk to a running
//! one over its control socket.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use forwarder::control::client::run_ctl;
use forwarder::control::config::{Config, DEFAULT_SOCKET};
use forwarder::runtime;

const USAGE: &str = "\
usage:
  forwarder run CONFIG [--duration DURATION] [--stats-json FILE] [-- EAL-ARGS...]
  forwarder --check CONFIG            validate CONFIG and exit (0 ok, 2 invalid)
  forwarder ctl [--socket PATH] [--json] VERB ...
                                      e.g. `forwarder ctl stats`, `forwarder ctl service list`
";

/// Exit code for a bad command line or configuration.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--check" | "check") => match args.get(1) {
            Some(path) if args.len() == 2 => check(Path::new(path)),
            _ => usage("--check takes exactly one CONFIG"),
        },
        Some("ctl") => {
            let code = run_ctl(
                &args[1..],
                Path::new(DEFAULT_SOCKET),
                Duration::from_secs(15),
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Some("run") => run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage(&format!("unknown command {other:?}")),
        None => usage("no command given"),
    }
}

fn usage(why: &str) -> ExitCode {
    eprint!("forwarder: {why}\n{USAGE}");
    ExitCode::from(EXIT_USAGE)
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_USAGE)
    })
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} ports, {} workers, {} services)",
                path.display(),
                config.ports.len(),
                config.worker_count(),
                config.services.len()
            );
            if let Some(f) = &config.fault {
                // Valid, but the forwarder it describes is broken on purpose.
                eprintln!(
                    "{}: warning: [fault] is on ({} every {} eligible packets): this \
                     forwarder corrupts traffic on purpose, for testing the harness",
                    path.display(),
                    f.kind,
                    f.every
                );
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(args: &[String]) -> ExitCode {
    let (ours, eal) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut config_path = None;
    let mut duration = None;
    let mut stats_json = None;
    let mut it = ours.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--duration" => match it.next().map(|v| humantime::parse_duration(v)) {
                Some(Ok(d)) => duration = Some(d),
                Some(Err(e)) => return usage(&format!("--duration: {e}")),
                None => return usage("--duration needs a value such as 5s"),
            },
            "--stats-json" => match it.next() {
                Some(path) => stats_json = Some(PathBuf::from(path)),
                None => return usage("--stats-json needs a file"),
            },
            flag if flag.starts_with('-') => return usage(&format!("unknown flag {flag}")),
            path if config_path.is_none() => config_path = Some(PathBuf::from(path)),
            extra => return usage(&format!("unexpected argument {extra:?}")),
        }
    }
    let Some(config_path) = config_path else {
        return usage("run needs a CONFIG");
    };
    let config = match load(&config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut plan = runtime::plan::plan(&config, duration, stats_json);
    plan.config_path = Some(config_path.clone());
    plan.eal_args.extend(eal.iter().cloned());
    match runtime::run(plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forwarder: {e}");
            ExitCode::FAILURE
        }
    }
}
