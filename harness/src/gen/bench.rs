//! `harness oracle-bench`: how fast the [`Checker`] validates a FULLNAT capture.
//!
//! A synthetic balancer run, both directions: many TCP connections (SYN with options,
//! SYN-ACK, the handshake-completing ACK, a request, a response, FIN from each side) and
//! UDP flows (three request/response exchanges), through one TCP service with TOA and one
//! UDP service, each round robin over four real servers, 64 local addresses. The outputs
//! are what a correct balancer sends — addresses and ports rewritten, TTL decremented,
//! TOA inserted where it belongs, the SYN-ACK's MSS lowered, checksums recomputed — so a
//! run ends with no failure.
//!
//! Traffic comes in bursts, as from a poll-mode worker: 32 inputs of 32 different
//! connections (4096 open at a time, replaced as they finish), then their 32 outputs,
//! which the checker pairs by content ([`Checker::observe_output`]). The capture is built
//! in chunks outside the timed part; only the checker's calls and its `finish` are
//! timed, on the calling thread.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;

use super::Rng;
use crate::oracle::Checker;
use crate::scenario::{
    Checks, Mode, Proto, RealServer, RssConfig, Scenario, Scheduler, Service, Topology, TtlPolicy,
};

/// Connections open at a time.
const OPEN: usize = 4096;
/// Packets per burst (each direction of a burst: inputs, then their outputs).
const BURST: usize = 32;
/// Local addresses: 64 × 64 000 ports, so no local port is reused before 4M connections.
const LOCAL_ADDRESSES: u32 = 64;
/// Local ports per local address.
const LOCAL_PORTS: u32 = 64_000;
/// The servers' ISN.
const ISN: u32 = 0x2000_0000;
/// TCP VIP.
const VIP_TCP: [u8; 4] = [10, 0, 0, 100];
/// UDP VIP.
const VIP_UDP: [u8; 4] = [10, 0, 0, 101];
const VPORT_TCP: u16 = 80;
const VPORT_UDP: u16 = 53;
const RS_PORT: u16 = 8080;
/// MSS 1460, SACK permitted, timestamps, NOP, window scale: the clients' SYN options.
const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];
/// MSS 1460, NOP, window scale: the servers' SYN-ACK options.
const SYNACK_OPTIONS: [u8; 8] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];
/// The same with the MSS lowered by an IPv4 client's TOA (8 bytes).
const SYNACK_OPTIONS_OUT: [u8; 8] = [2, 4, 0x05, 0xac, 1, 3, 3, 7];

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Packets to validate (inputs and outputs together), rounded up to whole bursts.
    pub packets: u64,
    /// Packets generated per chunk (memory: about 150 bytes each).
    pub chunk: usize,
    /// Seed of the synthetic traffic.
    pub seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            packets: 10_000_000,
            chunk: 1 << 18,
            seed: 1,
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Packets validated.
    pub packets: u64,
    /// Of which inputs.
    pub inputs: usize,
    /// Of which outputs.
    pub outputs: usize,
    /// Connections the checker tracked.
    pub connections: usize,
    /// Checker failures (0 for a correct run).
    pub failures: usize,
    /// The first failures, for a message.
    pub first_failures: Vec<String>,
    /// Bytes of the frames validated.
    pub bytes: u64,
    /// Time in the checker (observe calls and finish), wall clock.
    pub checker: Duration,
    /// The same, on-CPU time of this thread (Linux `/proc/thread-self/schedstat`): what
    /// the checker costs on a core it does not share; `None` where it cannot be read.
    pub checker_cpu: Option<Duration>,
    /// Time spent building the capture (not part of the rate).
    pub generation: Duration,
}

impl BenchResult {
    /// Packets validated per second of checker time (wall clock).
    pub fn packets_per_second(&self) -> f64 {
        self.packets as f64 / self.checker.as_secs_f64().max(1e-9)
    }

    /// Packets validated per second of the checker's on-CPU time.
    pub fn packets_per_cpu_second(&self) -> Option<f64> {
        self.checker_cpu
            .map(|t| self.packets as f64 / t.as_secs_f64().max(1e-9))
    }
}

/// This thread's time on a CPU so far, from `/proc/thread-self/schedstat` (first field,
/// nanoseconds).
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The scenario the synthetic traffic follows.
pub fn scenario() -> Scenario {
    let rs = |base: u8| -> Vec<RealServer> {
        (0..4)
            .map(|i| RealServer {
                addr: SocketAddr::new(IpAddr::from([192, 168, base, 10 + i]), RS_PORT),
                weight: 1,
            })
            .collect()
    };
    Scenario {
        name: "oracle-bench".to_owned(),
        description: "synthetic FULLNAT TCP (TOA) and UDP, both directions".to_owned(),
        input: PathBuf::from("oracle-bench.pcap"),
        topology: Topology::Inproc,
        local_addresses: (0..LOCAL_ADDRESSES).map(local_address).collect(),
        ttl: TtlPolicy::Decrement,
        rss: RssConfig::default(),
        services: vec![
            Service {
                vip: SocketAddr::new(IpAddr::from(VIP_TCP), VPORT_TCP),
                proto: Proto::Tcp,
                mode: Mode::Fullnat,
                scheduler: Scheduler::Rr,
                toa: true,
                real_servers: rs(1),
            },
            Service {
                vip: SocketAddr::new(IpAddr::from(VIP_UDP), VPORT_UDP),
                proto: Proto::Udp,
                mode: Mode::Fullnat,
                scheduler: Scheduler::Rr,
                toa: false,
                real_servers: rs(2),
            },
        ],
        check: Checks::default(),
        expect: None,
    }
}

fn local_address(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        192,
        168,
        100 + (i / 256) as u8,
        (i % 256) as u8,
    ))
}

/// One synthetic connection.
#[derive(Debug, Clone, Copy)]
struct Flow {
    tcp: bool,
    step: u8,
    client: [u8; 4],
    cport: u16,
    local: [u8; 4],
    lport: u16,
    rs: [u8; 4],
    /// Client's next sequence number.
    cseq: u32,
    /// Server's next sequence number.
    sseq: u32,
}

/// A packet of a chunk: where its bytes are, and whether it is an output.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    len: usize,
    output: bool,
}

/// Packets built in one go: their bytes back to back.
#[derive(Debug, Default)]
struct Chunk {
    data: Vec<u8>,
    slots: Vec<Slot>,
}

/// The synthetic traffic: a deterministic stream of bursts.
#[derive(Debug)]
struct Synth {
    rng: Rng,
    flows: Vec<Flow>,
    next_flow: u32,
    next_slot: usize,
    rr: [u32; 2],
}

/// TCP flags.
const F: u8 = 0x01;
const S: u8 = 0x02;
const P: u8 = 0x08;
const A: u8 = 0x10;

/// The balancer's side and the far side of a packet.
#[derive(Debug, Clone, Copy)]
struct Ends {
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
}

impl Synth {
    fn new(seed: u64) -> Self {
        let mut s = Self {
            rng: Rng(seed),
            flows: Vec::with_capacity(OPEN),
            next_flow: 0,
            next_slot: 0,
            rr: [0; 2],
        };
        for _ in 0..OPEN {
            let f = s.new_flow();
            s.flows.push(f);
        }
        s
    }

    fn new_flow(&mut self) -> Flow {
        let k = self.next_flow;
        self.next_flow = self.next_flow.wrapping_add(1);
        let tcp = self.rng.next() % 10 < 7;
        let j = k % (LOCAL_ADDRESSES * LOCAL_PORTS);
        let local = match local_address(j % LOCAL_ADDRESSES) {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(_) => [0; 4],
        };
        Flow {
            tcp,
            step: 0,
            // 100.64.0.0/10: one address per connection.
            client: [100, 64 + ((k >> 16) & 63) as u8, (k >> 8) as u8, k as u8],
            cport: 1024 + (self.rng.next() % 60_000) as u16,
            local,
            lport: 1024 + (j / LOCAL_ADDRESSES) as u16,
            rs: [0; 4],
            cseq: self.rng.u32(),
            sseq: ISN,
        }
    }

    /// Appends bursts to `chunk` until it holds at least `n` packets.
    fn fill(&mut self, chunk: &mut Chunk, n: usize) -> Result<(), String> {
        chunk.data.clear();
        chunk.slots.clear();
        let mut outputs: Vec<u8> = Vec::new();
        let mut out_slots: Vec<(usize, usize)> = Vec::new();
        while chunk.slots.len() < n {
            outputs.clear();
            out_slots.clear();
            for _ in 0..BURST {
                let i = self.next_slot;
                self.next_slot = (self.next_slot + 1) % OPEN;
                let start = chunk.data.len();
                let out_start = outputs.len();
                let done = self.step(i, &mut chunk.data, &mut outputs)?;
                chunk.slots.push(Slot {
                    start,
                    len: chunk.data.len() - start,
                    output: false,
                });
                out_slots.push((out_start, outputs.len() - out_start));
                if done {
                    self.flows[i] = self.new_flow();
                }
            }
            for &(start, len) in &out_slots {
                chunk.slots.push(Slot {
                    start: chunk.data.len() + start,
                    len,
                    output: true,
                });
            }
            chunk.data.extend_from_slice(&outputs);
        }
        Ok(())
    }

    /// Writes flow `i`'s next input and the balancer's output for it; `true` when the
    /// flow has finished.
    fn step(
        &mut self,
        i: usize,
        input: &mut Vec<u8>,
        output: &mut Vec<u8>,
    ) -> Result<bool, String> {
        if self.flows[i].step == 0 {
            // Round robin in the order of the connections' first packets, as the
            // checker counts them.
            let service = usize::from(!self.flows[i].tcp);
            let rs_index = self.rr[service] % 4;
            self.rr[service] += 1;
            self.flows[i].rs = [192, 168, 1 + service as u8, 10 + rs_index as u8];
        }
        let f = self.flows[i];
        let vip = if f.tcp {
            (VIP_TCP, VPORT_TCP)
        } else {
            (VIP_UDP, VPORT_UDP)
        };
        let client = (f.client, f.cport);
        let local = (f.local, f.lport);
        let rs = (f.rs, RS_PORT);
        // Requests: client → VIP becomes local → RS; replies: RS → local becomes VIP →
        // client.
        let request = (
            (
                Ends {
                    src: client,
                    dst: vip,
                },
                64,
            ),
            (
                Ends {
                    src: local,
                    dst: rs,
                },
                63,
            ),
        );
        let reply = (
            (
                Ends {
                    src: rs,
                    dst: local,
                },
                64,
            ),
            (
                Ends {
                    src: vip,
                    dst: client,
                },
                63,
            ),
        );
        let toa: [u8; 8] = {
            let p = f.cport.to_be_bytes();
            [
                254,
                8,
                p[0],
                p[1],
                f.client[0],
                f.client[1],
                f.client[2],
                f.client[3],
            ]
        };
        let f = &mut self.flows[i];
        let len = |rng: &mut Rng, lo: u64, hi: u64| rng.range(lo, hi) as usize;
        if !f.tcp {
            // Three exchanges: even steps are requests, odd ones the replies.
            let (ends, size) = if f.step % 2 == 0 {
                (request, len(&mut self.rng, 24, 200))
            } else {
                (reply, len(&mut self.rng, 40, 500))
            };
            let payload = self.rng.bytes(size);
            udp(input, ends.0, &payload)?;
            udp(output, ends.1, &payload)?;
            f.step += 1;
            return Ok(f.step == 6);
        }
        let (cseq, sseq) = (f.cseq, f.sseq);
        match f.step {
            0 => {
                tcp(input, request.0, (cseq, 0), S, &SYN_OPTIONS, &[])?;
                tcp(output, request.1, (cseq, 0), S, &SYN_OPTIONS, &[])?;
                f.cseq = cseq.wrapping_add(1);
            }
            1 => {
                let ack = cseq;
                tcp(input, reply.0, (sseq, ack), S | A, &SYNACK_OPTIONS, &[])?;
                tcp(
                    output,
                    reply.1,
                    (sseq, ack),
                    S | A,
                    &SYNACK_OPTIONS_OUT,
                    &[],
                )?;
                f.sseq = sseq.wrapping_add(1);
            }
            2 => {
                tcp(input, request.0, (cseq, sseq), A, &[], &[])?;
                tcp(output, request.1, (cseq, sseq), A, &toa, &[])?;
            }
            3 => {
                let n = len(&mut self.rng, 64, 256);
                let payload = self.rng.bytes(n);
                tcp(input, request.0, (cseq, sseq), P | A, &[], &payload)?;
                tcp(output, request.1, (cseq, sseq), P | A, &toa, &payload)?;
                f.cseq = cseq.wrapping_add(payload.len() as u32);
            }
            4 => {
                let n = len(&mut self.rng, 100, 600);
                let payload = self.rng.bytes(n);
                tcp(input, reply.0, (sseq, cseq), P | A, &[], &payload)?;
                tcp(output, reply.1, (sseq, cseq), P | A, &[], &payload)?;
                f.sseq = sseq.wrapping_add(payload.len() as u32);
            }
            5 => {
                // The server has sent data: no TOA any more.
                tcp(input, request.0, (cseq, sseq), A, &[], &[])?;
                tcp(output, request.1, (cseq, sseq), A, &[], &[])?;
            }
            6 => {
                tcp(input, request.0, (cseq, sseq), F | A, &[], &[])?;
                tcp(output, request.1, (cseq, sseq), F | A, &[], &[])?;
                f.cseq = cseq.wrapping_add(1);
            }
            7 => {
                tcp(input, reply.0, (sseq, cseq), F | A, &[], &[])?;
                tcp(output, reply.1, (sseq, cseq), F | A, &[], &[])?;
                f.sseq = sseq.wrapping_add(1);
            }
            _ => {
                tcp(input, request.0, (cseq, sseq), A, &[], &[])?;
                tcp(output, request.1, (cseq, sseq), A, &[], &[])?;
            }
        }
        f.step += 1;
        Ok(f.step == 9)
    }
}

fn udp(out: &mut Vec<u8>, (e, ttl): (Ends, u8), payload: &[u8]) -> Result<(), String> {
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xfe])
        .ipv4(e.src.0, e.dst.0, ttl)
        .udp(e.src.1, e.dst.1)
        .write(out, payload)
        .map_err(|e| e.to_string())
}

fn tcp(
    out: &mut Vec<u8>,
    (e, ttl): (Ends, u8),
    (seq, ack): (u32, u32),
    flags: u8,
    options: &[u8],
    payload: &[u8],
) -> Result<(), String> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xfe])
        .ipv4(e.src.0, e.dst.0, ttl)
        .tcp(e.src.1, e.dst.1, seq, 64240);
    if flags & S != 0 {
        b = b.syn();
    }
    if flags & A != 0 {
        b = b.ack(ack);
    }
    if flags & P != 0 {
        b = b.psh();
    }
    if flags & F != 0 {
        b = b.fin();
    }
    if !options.is_empty() {
        b = b.options_raw(options).map_err(|e| e.to_string())?;
    }
    b.write(out, payload).map_err(|e| e.to_string())
}

/// Generates `config.packets` packets in chunks and times the checker over them.
pub fn run(config: &BenchConfig) -> Result<BenchResult, String> {
    let mut synth = Synth::new(config.seed);
    let mut checker = Checker::new(&scenario());
    let mut chunk = Chunk::default();
    let mut done = 0u64;
    let mut bytes = 0u64;
    let mut timed = Duration::ZERO;
    let mut cpu = Some(Duration::ZERO);
    let mut generation = Duration::ZERO;
    let mut add_cpu = |from: Option<Duration>| {
        cpu = match (cpu, from, thread_cpu_time()) {
            (Some(sum), Some(a), Some(b)) => Some(sum + b.saturating_sub(a)),
            _ => None,
        };
    };
    while done < config.packets {
        // Whole bursts only: every input's output is in the same chunk.
        let want = usize::try_from(config.packets - done)
            .unwrap_or(usize::MAX)
            .min(config.chunk.max(2 * BURST));
        let t = Instant::now();
        synth.fill(&mut chunk, want)?;
        generation += t.elapsed();
        let slots = &chunk.slots[..];
        let c = thread_cpu_time();
        let t = Instant::now();
        for s in slots {
            let frame = &chunk.data[s.start..s.start + s.len];
            if s.output {
                checker.observe_output(frame, 0);
            } else {
                checker.observe_input(frame, 0);
            }
        }
        timed += t.elapsed();
        add_cpu(c);
        bytes += slots.iter().map(|s| s.len as u64).sum::<u64>();
        done += slots.len() as u64;
    }
    let c = thread_cpu_time();
    let t = Instant::now();
    let report = checker.finish();
    timed += t.elapsed();
    add_cpu(c);
    Ok(BenchResult {
        packets: done,
        inputs: report.inputs,
        outputs: report.outputs,
        connections: report.connections,
        failures: report.failures.len(),
        first_failures: report
            .failures
            .iter()
            .take(5)
            .map(ToString::to_string)
            .collect(),
        bytes,
        checker: timed,
        checker_cpu: cpu,
        generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short run: the synthetic balancer is correct, so the checker finds nothing, and
    /// every input has its output. (No timing is asserted.)
    #[test]
    fn a_short_run_passes_every_check() {
        let r = run(&BenchConfig {
            packets: 100_000,
            chunk: 30_000,
            seed: 7,
        })
        .unwrap();
        assert_eq!(r.failures, 0, "{:#?}", r.first_failures);
        assert!((100_000..100_000 + 2 * BURST as u64).contains(&r.packets));
        assert_eq!(r.inputs, r.outputs);
        assert!(r.connections > 4096);
    }
}
