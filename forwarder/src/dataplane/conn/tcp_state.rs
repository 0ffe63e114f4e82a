//! The LVS TCP connection state machine and the per-state timeouts.
//!
//! A balancer in the middle sees both halves of a TCP conversation but keeps no sequence
//! window, so like LVS (`net/netfilter/ipvs/ip_vs_proto_tcp.c`) it tracks a coarse state
//! driven only by the direction of a segment and which of SYN, FIN, ACK and RST it carries.
//! The state chooses how long an idle connection is kept and whether it counts as an
//! *active* connection of its real server (only `Established` does).

use crate::dataplane::types::{Nanos, SECOND};

/// The bits of the TCP flags byte (offset 13 of the TCP header) that the state machine
/// reads. Pass the byte straight from the header; other bits are ignored.
pub mod tcp_flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
}

/// Which way a packet travels through the balancer, relative to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → VIP, matched by the connection's inbound tuple (LVS "input").
    Inbound,
    /// Real server → balancer, matched by the connection's outbound tuple (LVS "output").
    Outbound,
}

/// LVS TCP connection states, in the order of the LVS table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    /// Nothing seen yet (a fresh entry).
    None = 0,
    /// Handshake completed; the only state counted as an active connection.
    Established,
    /// The real server side sent a SYN (seen as output).
    SynSent,
    /// The client's SYN was seen and forwarded.
    SynRecv,
    /// The server side started closing.
    FinWait,
    /// Both sides closed.
    TimeWait,
    /// Reset or closed before establishment.
    Close,
    /// The client side started closing.
    CloseWait,
    /// Waiting for the last acknowledgment.
    LastAck,
    /// Listen (kept for compatibility with the LVS table; unused by a balancer).
    Listen,
    /// SYN-ACK seen (kept for compatibility with the LVS table).
    SynAck,
}

impl TcpState {
    /// Number of states; the length of per-state arrays.
    pub const COUNT: usize = 11;

    /// Every state, in table order (its discriminant is its index).
    pub const ALL: [TcpState; TcpState::COUNT] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// Index of this state in per-state arrays such as [`Timeouts::tcp`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether LVS counts a connection in this state as active (for `wlc`, `lc`, …):
    /// only `Established`; every other state counts as inactive.
    pub fn is_active(self) -> bool {
        self == TcpState::Established
    }

    /// The state after a segment with `flags` travelling in `dir`.
    ///
    /// RST takes priority over SYN, SYN over FIN, FIN over ACK (as in LVS). A segment
    /// carrying none of them leaves the state unchanged.
    pub fn next(self, dir: Direction, flags: u8) -> TcpState {
        let event = if flags & tcp_flags::RST != 0 {
            EV_RST
        } else if flags & tcp_flags::SYN != 0 {
            EV_SYN
        } else if flags & tcp_flags::FIN != 0 {
            EV_FIN
        } else if flags & tcp_flags::ACK != 0 {
            EV_ACK
        } else {
            return self;
        };
        let table = match dir {
            Direction::Inbound => &INPUT,
            Direction::Outbound => &OUTPUT,
        };
        table[event][self.index()]
    }
}

const EV_SYN: usize = 0;
const EV_FIN: usize = 1;
const EV_ACK: usize = 2;
const EV_RST: usize = 3;

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// Transitions for segments from the client (LVS "input"), rows SYN, FIN, ACK, RST,
/// columns in [`TcpState`] order.
#[rustfmt::skip]
const INPUT: [[TcpState; TcpState::COUNT]; 4] = [
    //        NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];

/// Transitions for segments from the real server (LVS "output").
#[rustfmt::skip]
const OUTPUT: [[TcpState; TcpState::COUNT]; 4] = [
    //        NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
    /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];

/// How long an idle connection is kept, per protocol and state.
///
/// Defaults are DPVS's: TCP per state as in [`Timeouts::DEFAULT_TCP_SECS`], UDP 300 s once
/// the real server has replied and 60 s ("oneway") until then, ICMP 60 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP idle timeout per state, indexed by [`TcpState::index`].
    pub tcp: [Nanos; TcpState::COUNT],
    /// UDP idle timeout after a reply from the real server has been seen.
    pub udp: Nanos,
    /// UDP idle timeout while only client → server packets have been seen.
    pub udp_oneway: Nanos,
    /// ICMP echo idle timeout.
    pub icmp: Nanos,
}

impl Timeouts {
    /// DPVS default TCP timeouts in seconds, in [`TcpState`] order: NONE 2, ESTABLISHED 90,
    /// SYN_SENT 3, SYN_RECV 30, FIN_WAIT 7, TIME_WAIT 7, CLOSE 3, CLOSE_WAIT 7, LAST_ACK 7,
    /// LISTEN 120, SYNACK 30.
    pub const DEFAULT_TCP_SECS: [u64; TcpState::COUNT] = [2, 90, 3, 30, 7, 7, 3, 7, 7, 120, 30];

    /// The timeout of a TCP connection in `state`.
    pub fn tcp_timeout(&self, state: TcpState) -> Nanos {
        self.tcp[state.index()]
    }

    /// Sets the timeout of one TCP state (builder style).
    pub fn with_tcp(mut self, state: TcpState, timeout: Nanos) -> Self {
        self.tcp[state.index()] = timeout;
        self
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        let mut tcp = [0; TcpState::COUNT];
        for (t, s) in tcp.iter_mut().zip(Self::DEFAULT_TCP_SECS) {
            *t = s * SECOND;
        }
        Timeouts {
            tcp,
            udp: 300 * SECOND,
            udp_oneway: 60 * SECOND,
            icmp: 60 * SECOND,
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::tcp_flags::{ACK, FIN, RST, SYN};
    use super::*;
    use Direction::{Inbound as In, Outbound as Out};
    use TcpState::{None as NO, SynAck as SA};

    #[rstest]
    // A normal handshake, data and a client-initiated close.
    #[case::client_syn(NO, In, SYN, SR)]
    #[case::server_synack(SR, Out, SYN | ACK, SR)]
    #[case::client_ack_establishes(SR, In, ACK, ES)]
    #[case::data_both_ways_in(ES, In, ACK, ES)]
    #[case::data_both_ways_out(ES, Out, ACK, ES)]
    #[case::client_fin(ES, In, FIN | ACK, CW)]
    #[case::server_ack_of_fin(CW, Out, ACK, CW)]
    #[case::server_fin(CW, Out, FIN | ACK, TW)]
    #[case::last_ack_in_time_wait(TW, In, ACK, TW)]
    // Server-initiated close.
    #[case::server_fin_first(ES, Out, FIN | ACK, FW)]
    #[case::client_ack_in_fin_wait(FW, In, ACK, FW)]
    #[case::client_fin_after_server(FW, In, FIN | ACK, TW)]
    // Resets.
    #[case::rst_in_established(ES, In, RST, CL)]
    #[case::rst_out_established(ES, Out, RST | ACK, CL)]
    #[case::rst_out_syn_recv(SR, Out, RST, CL)]
    #[case::rst_in_syn_recv_ignored(SR, In, RST, SR)]
    #[case::rst_wins_over_syn(ES, In, RST | SYN, CL)]
    #[case::rst_out_time_wait(TW, Out, RST, TW)]
    // Odd first packets.
    #[case::first_ack_in(NO, In, ACK, ES)]
    #[case::first_fin_in(NO, In, FIN, CL)]
    #[case::first_syn_out(NO, Out, SYN, SS)]
    #[case::first_fin_out(NO, Out, FIN, TW)]
    #[case::syn_in_after_close(CL, In, SYN, SR)]
    #[case::syn_in_in_time_wait(TW, In, SYN, SR)]
    #[case::syn_in_syn_sent(SS, In, SYN, ES)]
    #[case::last_ack_ack_in(LA, In, ACK, CL)]
    #[case::last_ack_ack_out(LA, Out, ACK, LA)]
    #[case::listen_ack_out(LI, Out, ACK, ES)]
    #[case::synack_ack_in(SA, In, ACK, ES)]
    // No SYN/FIN/ACK/RST: unchanged.
    #[case::bare_in(ES, In, 0, ES)]
    #[case::bare_out(SR, Out, 0x08, SR)]
    fn transitions(
        #[case] from: TcpState,
        #[case] dir: Direction,
        #[case] flags: u8,
        #[case] to: TcpState,
    ) {
        assert_eq!(from.next(dir, flags), to);
    }

    #[test]
    fn all_indices_match_discriminants() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }

    #[test]
    fn only_established_is_active() {
        for s in TcpState::ALL {
            assert_eq!(s.is_active(), s == ES);
        }
    }

    #[test]
    fn default_timeouts_are_dpvs() {
        let t = Timeouts::default();
        assert_eq!(t.tcp_timeout(ES), 90 * SECOND);
        assert_eq!(t.tcp_timeout(NO), 2 * SECOND);
        assert_eq!(t.tcp_timeout(LI), 120 * SECOND);
        assert_eq!(t.udp, 300 * SECOND);
        assert_eq!(t.udp_oneway, 60 * SECOND);
        let t = t.with_tcp(ES, 5 * SECOND);
        assert_eq!(t.tcp_timeout(ES), 5 * SECOND);
    }
}
