//! `l4lab-echo`: the real server and the UDP client of the kernel topology (issue 8).
//!
//! - `l4lab-echo serve --name s1 --http 0.0.0.0:8080 --udp 0.0.0.0:9000` answers every
//!   HTTP/1.1 request with `200 OK` and the body `server=s1 peer=IP:PORT\n` (the peer as
//!   this server's kernel saw it), keeping the connection open unless the request says
//!   `Connection: close`; every UDP datagram is answered with
//!   `server=s1 peer=IP:PORT data=<the datagram>`.
//! - `l4lab-echo udp --to VIP:PORT --count N` sends N datagrams `msg-<i>` from one
//!   socket, waits for each answer (1 s) and prints one answer per line; exit status 1
//!   when an answer is missing.
//!
//! It runs inside a network namespace through `ip netns exec`.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// HTTP and UDP echo server and UDP client for the kernel topology.
#[derive(Debug, Parser)]
#[command(name = "l4lab-echo", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP and UDP; every answer names this server and the peer it saw.
    Serve {
        /// The server's name, echoed in every answer.
        #[arg(long)]
        name: String,
        /// HTTP listen address.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// UDP listen address.
        #[arg(long)]
        udp: Option<SocketAddr>,
    },
    /// Send datagrams and print the answers.
    Udp {
        /// Where to send.
        #[arg(long)]
        to: SocketAddr,
        /// How many datagrams.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { name, http, udp } => serve(name, http, udp),
        Command::Udp { to, count } => udp_client(to, count),
    }
}

fn serve(name: String, http: Option<SocketAddr>, udp: Option<SocketAddr>) -> ExitCode {
    let mut threads = Vec::new();
    if let Some(addr) = udp {
        let sock = match UdpSocket::bind(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("l4lab-echo: udp bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let name = name.clone();
        threads.push(std::thread::spawn(move || udp_loop(&name, &sock)));
    }
    if let Some(addr) = http {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("l4lab-echo: http bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || {
                    let _ = http_conn(&name, stream);
                });
            }
        }));
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    for t in threads {
        let _ = t.join();
    }
    ExitCode::SUCCESS
}

fn udp_loop(name: &str, sock: &UdpSocket) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let data = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
        let answer = format!("server={name} peer={peer} data={data}");
        let _ = sock.send_to(answer.as_bytes(), peer);
    }
}

/// One HTTP/1.1 connection: requests until the peer closes or asks to.
fn http_conn(name: &str, stream: TcpStream) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let body = format!("server={name} peer={peer}\n");
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut close = line.trim_end().ends_with("HTTP/1.0");
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((k, v)) = h.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "connection" {
                close = v.eq_ignore_ascii_case("close");
            } else if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
        }
        if length > 0 {
            std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        out.write_all(format!("{head}{body}").as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

fn udp_client(to: SocketAddr, count: u32) -> ExitCode {
    let bind: SocketAddr = if to.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("l4lab-echo: udp bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = sock.set_read_timeout(Some(Duration::from_secs(1))) {
        eprintln!("l4lab-echo: {e}");
        return ExitCode::FAILURE;
    }
    let mut missing = 0;
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let msg = format!("msg-{i}");
        if let Err(e) = sock.send_to(msg.as_bytes(), to) {
            eprintln!("l4lab-echo: send to {to}: {e}");
            return ExitCode::FAILURE;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                println!("from={from} {text}");
            }
            Err(e) => {
                eprintln!("l4lab-echo: no answer to {msg}: {e}");
                missing += 1;
            }
        }
    }
    if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
