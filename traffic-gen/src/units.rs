//! Parsing of command-line values into typed ones: rates, counts, sizes, address ranges,
//! endpoints and replay modes. Pure: no DPDK, no I/O, so every rule is unit-tested.
//!
//! Conventions, stated once:
//!
//! - A rate without a unit is in packets per second, with an optional decimal multiplier:
//!   `10M` = 10 000 000 pps, `1.5G` = 1.5 Gpps, `250k` = 250 000 pps (`pps` may follow:
//!   `10Mpps`). A rate ending in `bps` is in bits per second on the wire (frame + FCS +
//!   preamble + inter-frame gap, 20 bytes of overhead): `1.5Gbps`. A rate ending in `%`
//!   is that share of the link speed the port reports: `40%`. `max` means unpaced.
//! - A size is the Ethernet frame length *including* the 4-byte FCS (the RFC 2544
//!   convention; the mbuf carries `size - 4` bytes): `64` .. `1518`, or `imix`
//!   (7:4:1 of 64/570/1518 B, 353.8 B on average).
//! - Counts take the same decimal multipliers: `--flows 1M` = 1 000 000 flows.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;
use std::time::Duration;

/// A command-line value that could not be parsed; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A rate that is not `N[k|M|G][pps]`, `N[k|M|G]bps`, `P%` or `max`.
    #[error("bad rate {0:?}: use packets/s like 10M or 250k, bits/s like 1.5Gbps, a link share like 40%, or max")]
    Rate(String),
    /// A count that is not a positive integer with an optional k/M/G multiplier.
    #[error("bad count {0:?}: use a positive whole number such as 1000, 64k or 1M")]
    Count(String),
    /// A frame size outside 64..=1518 or not `imix`.
    #[error("bad size {0:?}: use a frame length (with FCS) from 64 to 1518, or imix")]
    Size(String),
    /// A duration humantime does not accept.
    #[error("bad duration {0:?}: use a number with a unit, such as 30s, 500ms or 2m")]
    Duration(String),
    /// Not `a.b.c.d/len`.
    #[error("bad source prefix {0:?}: use an IPv4 prefix such as 10.0.0.0/16")]
    Cidr(String),
    /// Not `lo-hi` or a single port, or `lo > hi`, or port 0.
    #[error("bad port range {0:?}: use lo-hi with 1 <= lo <= hi <= 65535, or one port")]
    PortRange(String),
    /// Not a comma-separated list of `a.b.c.d:port`.
    #[error("bad destination {0:?}: use VIP:PORT[,VIP:PORT...] with IPv4 addresses")]
    Endpoint(String),
    /// Not `aa:bb:cc:dd:ee:ff`.
    #[error("bad MAC address {0:?}: use six hex bytes such as 02:00:00:00:00:02")]
    Mac(String),
    /// Not `original`, `pps` or `speedup=X` with X > 0.
    #[error("bad replay mode {0:?}: use original, pps (at --pps) or speedup=X with X > 0")]
    ReplayMode(String),
}

/// Splits a decimal multiplier (`k`, `M`, `G`, `T`, case-insensitive) off a number.
fn split_multiplier(s: &str) -> (&str, f64) {
    match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        Some('t' | 'T') => (&s[..s.len() - 1], 1e12),
        _ => (s, 1.0),
    }
}

/// A finite number > 0 with an optional multiplier.
fn positive_number(s: &str) -> Option<f64> {
    let (num, mult) = split_multiplier(s.trim());
    let v: f64 = num.trim().parse().ok()?;
    let v = v * mult;
    (v.is_finite() && v > 0.0).then_some(v)
}

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the core and the port allow.
    Max,
    /// Packets per second.
    Pps(f64),
    /// Bits per second on the wire (frame + FCS + 20 bytes of preamble and gap).
    Bps(f64),
    /// Percent of the link speed the port reports.
    LinkPercent(f64),
}

impl Rate {
    /// Packets per second for frames of `avg_frame_len` bytes (with FCS) on a link of
    /// `link_mbps`; `None` for [`Rate::Max`], or for a link share when the port reports
    /// no speed.
    pub fn to_pps(self, avg_frame_len: f64, link_mbps: u32) -> Option<f64> {
        let wire_bits = (avg_frame_len + 20.0) * 8.0;
        match self {
            Rate::Max => None,
            Rate::Pps(p) => Some(p),
            Rate::Bps(b) => Some(b / wire_bits),
            Rate::LinkPercent(_) if link_mbps == 0 => None,
            Rate::LinkPercent(p) => Some(f64::from(link_mbps) * 1e6 * p / 100.0 / wire_bits),
        }
    }
}

impl FromStr for Rate {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Rate, ParseError> {
        let err = || ParseError::Rate(s.to_owned());
        let t = s.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| err())?;
            return if v > 0.0 && v <= 100.0 {
                Ok(Rate::LinkPercent(v))
            } else {
                Err(err())
            };
        }
        let lower = t.to_ascii_lowercase();
        if let Some(n) = lower.strip_suffix("bps") {
            return positive_number(n).map(Rate::Bps).ok_or_else(err);
        }
        let n = lower.strip_suffix("pps").unwrap_or(&lower);
        positive_number(n).map(Rate::Pps).ok_or_else(err)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::Pps(p) => write!(f, "{p} pps"),
            Rate::Bps(b) => write!(f, "{b} bps"),
            Rate::LinkPercent(p) => write!(f, "{p}% of link"),
        }
    }
}

/// Parses a count such as `1000`, `64k` or `1M` (decimal multipliers, whole result).
pub fn parse_count(s: &str) -> Result<u64, ParseError> {
    let err = || ParseError::Count(s.to_owned());
    let t = s.trim();
    if let Ok(v) = t.parse::<u64>() {
        return if v > 0 { Ok(v) } else { Err(err()) };
    }
    let v = positive_number(t).ok_or_else(err)?;
    if v.fract() != 0.0 || v > u64::MAX as f64 {
        return Err(err());
    }
    Ok(v as u64)
}

/// Frame sizes to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSize {
    /// Every frame this long (with FCS).
    Fixed(u16),
    /// IMIX 7:4:1 of 64/570/1518 B, interleaved in [`IMIX_PATTERN`] order.
    Imix,
}

/// Smallest frame (with FCS) the generator builds.
pub const MIN_FRAME: u16 = 64;
/// Largest frame (with FCS): no jumbo frames, one mbuf per packet.
pub const MAX_FRAME: u16 = 1518;
/// Bytes of FCS that the NIC appends and the mbuf does not carry.
pub const FCS_LEN: u16 = 4;

/// The 12-frame IMIX cycle: seven 64 B, four 570 B and one 1518 B, spread out.
pub const IMIX_PATTERN: [u16; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];

impl FrameSize {
    /// The distinct sizes, in the order templates are built.
    pub fn distinct(self) -> Vec<u16> {
        match self {
            FrameSize::Fixed(n) => vec![n],
            FrameSize::Imix => vec![64, 570, 1518],
        }
    }

    /// The cycle of indices into [`distinct`](Self::distinct) that packets follow.
    pub fn cycle(self) -> Vec<u8> {
        match self {
            FrameSize::Fixed(_) => vec![0],
            FrameSize::Imix => IMIX_PATTERN
                .iter()
                .map(|&s| match s {
                    64 => 0,
                    570 => 1,
                    _ => 2,
                })
                .collect(),
        }
    }

    /// The mean frame length (with FCS) in bytes.
    pub fn average(self) -> f64 {
        match self {
            FrameSize::Fixed(n) => f64::from(n),
            FrameSize::Imix => {
                IMIX_PATTERN.iter().map(|&s| f64::from(s)).sum::<f64>() / IMIX_PATTERN.len() as f64
            }
        }
    }
}

impl FromStr for FrameSize {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<FrameSize, ParseError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("imix") {
            return Ok(FrameSize::Imix);
        }
        match t.parse::<u16>() {
            Ok(n) if (MIN_FRAME..=MAX_FRAME).contains(&n) => Ok(FrameSize::Fixed(n)),
            _ => Err(ParseError::Size(s.to_owned())),
        }
    }
}

/// Parses a duration with a unit (`30s`, `500ms`, `2m`); zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(ParseError::Duration(s.to_owned())),
    }
}

/// An IPv4 prefix: the source addresses flows are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The first address (host bits cleared).
    pub base: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Cidr {
    /// Whether `addr` lies in the prefix.
    #[inline]
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
        (u32::from(addr) ^ u32::from(self.base)) & mask == 0
    }

    /// Addresses in the prefix (2^(32 - len)).
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    /// The `i`-th address, wrapping within the prefix.
    pub fn nth(self, i: u64) -> Ipv4Addr {
        let off = (i % self.size()) as u32;
        Ipv4Addr::from(u32::from(self.base).wrapping_add(off))
    }
}

impl FromStr for Cidr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Cidr, ParseError> {
        let err = || ParseError::Cidr(s.to_owned());
        let t = s.trim();
        let (addr, len) = match t.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| err())?),
            None => (t, 32),
        };
        if len > 32 {
            return Err(err());
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        Ok(Cidr {
            base: Ipv4Addr::from(u32::from(addr) & mask),
            len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.len)
    }
}

/// An inclusive range of source ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// Ports in the range.
    pub fn size(self) -> u64 {
        u64::from(self.hi) - u64::from(self.lo) + 1
    }
}

impl FromStr for PortRange {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<PortRange, ParseError> {
        let err = || ParseError::PortRange(s.to_owned());
        let t = s.trim();
        let (lo, hi) = match t.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (t, t),
        };
        let lo: u16 = lo.parse().map_err(|_| err())?;
        let hi: u16 = hi.parse().map_err(|_| err())?;
        if lo == 0 || lo > hi {
            return Err(err());
        }
        Ok(PortRange { lo, hi })
    }
}

/// Parses `VIP:PORT[,VIP:PORT...]` (IPv4), at least one, port not 0.
pub fn parse_endpoints(s: &str) -> Result<Vec<SocketAddrV4>, ParseError> {
    let err = || ParseError::Endpoint(s.to_owned());
    let list: Vec<SocketAddrV4> = s
        .split(',')
        .map(|e| e.trim().parse::<SocketAddrV4>().map_err(|_| err()))
        .collect::<Result<_, _>>()?;
    if list.is_empty() || list.iter().any(|e| e.port() == 0) {
        return Err(err());
    }
    Ok(list)
}

/// A destination list as one command-line value (clap would take a bare `Vec` for a
/// repeated flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints(pub Vec<SocketAddrV4>);

impl FromStr for Endpoints {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Endpoints, ParseError> {
        parse_endpoints(s).map(Endpoints)
    }
}

/// Parses one `VIP:PORT`.
pub fn parse_endpoint(s: &str) -> Result<SocketAddrV4, ParseError> {
    match parse_endpoints(s)?.as_slice() {
        [one] => Ok(*one),
        _ => Err(ParseError::Endpoint(s.to_owned())),
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], ParseError> {
    let err = || ParseError::Mac(s.to_owned());
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for byte in &mut mac {
        let p = parts.next().ok_or_else(err)?;
        if p.is_empty() || p.len() > 2 {
            return Err(err());
        }
        *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
    }
    if parts.next().is_some() {
        return Err(err());
    }
    Ok(mac)
}

/// How a capture is timed on replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplayMode {
    /// The capture's own inter-packet gaps.
    Original,
    /// A fixed rate, taken from `--pps`.
    Pps,
    /// The capture's gaps divided by this factor.
    Speedup(f64),
}

impl FromStr for ReplayMode {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<ReplayMode, ParseError> {
        let err = || ParseError::ReplayMode(s.to_owned());
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "original" => Ok(ReplayMode::Original),
            "pps" => Ok(ReplayMode::Pps),
            _ => {
                let x = t.strip_prefix("speedup=").ok_or_else(err)?;
                let v: f64 = x.parse().map_err(|_| err())?;
                if v.is_finite() && v > 0.0 {
                    Ok(ReplayMode::Speedup(v))
                } else {
                    Err(err())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let c: Cidr = "192.168.100.0/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(192, 168, 100, 10)));
        assert!(!c.contains(Ipv4Addr::new(192, 168, 101, 10)));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        let one: Cidr = "10.0.0.1/32".parse().unwrap();
        assert!(one.contains(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!one.contains(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn rates() {
        assert_eq!("10M".parse::<Rate>(), Ok(Rate::Pps(10e6)));
        assert_eq!("10Mpps".parse::<Rate>(), Ok(Rate::Pps(10e6)));
        assert_eq!("250k".parse::<Rate>(), Ok(Rate::Pps(250e3)));
        assert_eq!("1000".parse::<Rate>(), Ok(Rate::Pps(1000.0)));
        assert_eq!("1.5G".parse::<Rate>(), Ok(Rate::Pps(1.5e9)));
        assert_eq!("1.5Gbps".parse::<Rate>(), Ok(Rate::Bps(1.5e9)));
        assert_eq!("40%".parse::<Rate>(), Ok(Rate::LinkPercent(40.0)));
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        for bad in [
            "", "0", "-5M", "abc", "10X", "0%", "101%", "nan", "inf", "1e400",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} accepted");
        }
        let msg = "fast".parse::<Rate>().unwrap_err().to_string();
        assert!(msg.contains("\"fast\"") && msg.contains("10M"), "{msg}");
    }

    #[test]
    fn rate_conversion_uses_wire_overhead() {
        // 10G at 64 B is 14.88 Mpps (84 B on the wire).
        let pps = Rate::LinkPercent(100.0).to_pps(64.0, 10_000).unwrap();
        assert!((pps - 14_880_952.4).abs() < 1.0, "{pps}");
        let pps = Rate::Bps(10e9)
            .to_pps(FrameSize::Imix.average(), 0)
            .unwrap();
        assert!((pps / 1e6 - 3.34).abs() < 0.01, "{pps}");
        assert_eq!(Rate::LinkPercent(40.0).to_pps(64.0, 0), None);
        assert_eq!(Rate::Max.to_pps(64.0, 10_000), None);
        assert_eq!(Rate::Pps(5.0).to_pps(1518.0, 0), Some(5.0));
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("64k"), Ok(64_000));
        assert_eq!(parse_count("1.5k"), Ok(1500));
        for bad in ["0", "-1", "1.5", "x", "", "1.0001k"] {
            assert!(parse_count(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sizes_and_imix() {
        assert_eq!("64".parse::<FrameSize>(), Ok(FrameSize::Fixed(64)));
        assert_eq!("IMIX".parse::<FrameSize>(), Ok(FrameSize::Imix));
        for bad in ["63", "1519", "0", "big", "-64"] {
            assert!(bad.parse::<FrameSize>().is_err(), "{bad:?} accepted");
        }
        let imix = FrameSize::Imix;
        assert!((imix.average() - 353.83).abs() < 0.01);
        let cycle = imix.cycle();
        let sizes = imix.distinct();
        let count = |s: u16| {
            cycle
                .iter()
                .filter(|&&i| sizes[usize::from(i)] == s)
                .count()
        };
        assert_eq!((count(64), count(570), count(1518)), (7, 4, 1));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn cidrs_and_ports() {
        let c: Cidr = "10.0.0.0/16".parse().unwrap();
        assert_eq!(c.size(), 65536);
        assert_eq!(c.nth(257), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(c.nth(65536), Ipv4Addr::new(10, 0, 0, 0));
        let c: Cidr = "10.1.2.3/24".parse().unwrap();
        assert_eq!(c.base, Ipv4Addr::new(10, 1, 2, 0));
        assert_eq!("10.0.0.9".parse::<Cidr>().unwrap().size(), 1);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert_eq!("1024-65535".parse::<PortRange>().unwrap().size(), 64512);
        assert_eq!("80".parse::<PortRange>(), Ok(PortRange { lo: 80, hi: 80 }));
        for bad in ["0-10", "10-5", "1-70000", "a-b"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn endpoints_macs_modes() {
        let e = parse_endpoints("10.0.0.1:80, 10.0.0.2:443").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].port(), 443);
        for bad in ["", "10.0.0.1", "10.0.0.1:0", "[::1]:80", "10.0.0.1:80,"] {
            assert!(parse_endpoints(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_endpoint("10.0.0.1:80,10.0.0.2:80").is_err());
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Ok([2, 0, 0, 0, 0, 10]));
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:00:00").is_err());
        assert_eq!("original".parse::<ReplayMode>(), Ok(ReplayMode::Original));
        assert_eq!("pps".parse::<ReplayMode>(), Ok(ReplayMode::Pps));
        assert_eq!(
            "speedup=2.5".parse::<ReplayMode>(),
            Ok(ReplayMode::Speedup(2.5))
        );
        assert!("speedup=0".parse::<ReplayMode>().is_err());
        assert!("fast".parse::<ReplayMode>().is_err());
    }
}
