//! The per-worker connection table.
//!
//! Each worker owns one [`ConnTable`]: a preallocated slab of [`Conn`] records, a hash index
//! that finds every connection by two tuples — the inbound one (client → VIP, as received)
//! and the outbound one (real server → local address, as the reply will be received) —
//! and a timer wheel that expires idle connections a bounded number at a time.
//!
//! Everything is sized at construction; no method allocates. Time comes in as [`Nanos`].
//!
//! Wiring it into the packet path:
//!
//! 1. `lookup(&tuple)` → `Some((id, dir))`: `touch(id, dir, tcp_flags, now)`, then rewrite
//!    with `get(id)` / `get_mut(id)` (add byte counts there). If the returned
//!    [`Touched`] changed between active and inactive, move the real server's counts.
//! 2. `None` on a new flow: schedule, take a local port, build a [`Conn`] with
//!    [`Conn::new`], `insert(conn, now)`, then `touch` it with the first packet. On
//!    `Err(TableFull)` count a drop and give the port back.
//! 3. Every loop (or every N loops): `expire(now, budget, |id, conn| …)` and release each
//!    expired connection's local port and real-server count in the callback.

mod index;
pub mod tcp_state;
pub mod timer;

use std::net::SocketAddr;

use crate::dataplane::types::{Nanos, Proto, Tuple, WorkerId};

use index::{Hashed, Index};
pub use tcp_state::{tcp_flags, Direction, TcpState, Timeouts};
use timer::Wheel;
pub use timer::WheelConfig;

/// Largest capacity a table accepts (index references pack the slab index with one bit).
pub const MAX_CAPACITY: u32 = 1 << 30;

/// Errors of the connection table. Small and `Copy`, for the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// Every slot is in use; count a drop (existing connections are unaffected).
    #[error("connection table is full; raise its capacity or shorten the timeouts")]
    TableFull,
    /// A live connection already has this inbound or outbound tuple.
    #[error("a connection with this tuple already exists; look it up instead of inserting")]
    Exists,
    /// The id refers to no live connection (it was removed or expired).
    #[error("no such connection; it was removed or has expired")]
    NotFound,
    /// The configured capacity is zero or above [`MAX_CAPACITY`].
    #[error("connection table capacity must be between 1 and 2^30")]
    BadCapacity,
}

/// Names a live connection: its slab index and a generation that changes each time the
/// slot is reused, so a stale id is refused rather than aliasing a newer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// The slab index, dense in `0..capacity`: usable to index side arrays.
    pub fn index(self) -> u32 {
        self.index
    }
}

/// Per-connection flags (a small bit set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ConnFlags(pub u8);

impl ConnFlags {
    /// FULLNAT: the TOA option is still to be inserted on client → server segments.
    pub const TOA_PENDING: ConnFlags = ConnFlags(1 << 0);
    /// The real server has sent payload (its ISN+1 is no longer what the client ACKs).
    pub const RS_SENT_DATA: ConnFlags = ConnFlags(1 << 1);
    /// A packet from the real server has been seen (UDP leaves its "oneway" timeout).
    pub const REPLIED: ConnFlags = ConnFlags(1 << 2);
    /// The sequence delta has been learned from the client's SYN.
    pub const SEQ_DELTA_SET: ConnFlags = ConnFlags(1 << 3);

    /// Whether every bit of `f` is set.
    pub fn contains(self, f: ConnFlags) -> bool {
        self.0 & f.0 == f.0
    }

    /// Sets the bits of `f`.
    pub fn insert(&mut self, f: ConnFlags) {
        self.0 |= f.0;
    }

    /// Clears the bits of `f`.
    pub fn remove(&mut self, f: ConnFlags) {
        self.0 &= !f.0;
    }
}

/// Packet and byte counts of one connection, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounters {
    /// Packets seen inbound (counted by [`ConnTable::touch`]).
    pub packets_in: u64,
    /// Bytes seen inbound (added by the caller).
    pub bytes_in: u64,
    /// Packets seen outbound (counted by [`ConnTable::touch`]).
    pub packets_out: u64,
    /// Bytes seen outbound (added by the caller).
    pub bytes_out: u64,
}

/// One connection: everything the rewrites need, mode-independent.
///
/// Build it with [`Conn::new`] and set the fields the mode needs; the table indexes it by
/// `in_tuple` and `out_tuple`, which must not change while it is in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// Client → VIP, as received from the client.
    pub in_tuple: Tuple,
    /// Real server → local address (FULLNAT) or → client (NAT), as the reply is received.
    pub out_tuple: Tuple,
    /// FULLNAT local address and port (the source towards the real server); `None` otherwise.
    pub local: Option<SocketAddr>,
    /// Index of the real server in the service's table.
    pub rs_index: u32,
    /// Index of the virtual service.
    pub svc_index: u32,
    /// TCP state (stays `None` for UDP and ICMP).
    pub state: TcpState,
    /// Flags, see [`ConnFlags`].
    pub flags: ConnFlags,
    /// FULLNAT sequence delta added to client → server sequence numbers (wrapping).
    pub seq_delta: u32,
    /// The real server's initial sequence number (from its SYN-ACK), for TOA.
    pub rs_isn: u32,
    /// Time of the last packet (set by insert and touch).
    pub last_seen: Nanos,
    /// Time at which the connection expires if idle (set by insert and touch).
    pub expires: Nanos,
    /// Worker that owns the connection.
    pub worker: WorkerId,
    /// Packet and byte counts.
    pub counters: ConnCounters,
}

impl Conn {
    /// A connection in state `None` with zeroed fields other than the two tuples.
    pub fn new(in_tuple: Tuple, out_tuple: Tuple) -> Conn {
        Conn {
            in_tuple,
            out_tuple,
            local: None,
            rs_index: 0,
            svc_index: 0,
            state: TcpState::None,
            flags: ConnFlags::default(),
            seq_delta: 0,
            rs_isn: 0,
            last_seen: 0,
            expires: 0,
            worker: 0,
            counters: ConnCounters::default(),
        }
    }

    /// The layer-4 protocol (of the inbound tuple).
    pub fn proto(&self) -> Proto {
        self.in_tuple.proto
    }

    /// The client's address and port.
    pub fn client(&self) -> SocketAddr {
        SocketAddr::new(self.in_tuple.src, self.in_tuple.sport)
    }

    /// The virtual service's address and port.
    pub fn vip(&self) -> SocketAddr {
        SocketAddr::new(self.in_tuple.dst, self.in_tuple.dport)
    }

    /// The real server's address and port.
    pub fn rs(&self) -> SocketAddr {
        SocketAddr::new(self.out_tuple.src, self.out_tuple.sport)
    }

    /// The tuple a packet travelling in `dir` arrives with.
    pub fn tuple(&self, dir: Direction) -> &Tuple {
        match dir {
            Direction::Inbound => &self.in_tuple,
            Direction::Outbound => &self.out_tuple,
        }
    }

    /// How long this connection may stay idle in its current state.
    pub fn timeout(&self, t: &Timeouts) -> Nanos {
        match self.proto() {
            Proto::Tcp => t.tcp_timeout(self.state),
            Proto::Udp if self.flags.contains(ConnFlags::REPLIED) => t.udp,
            Proto::Udp => t.udp_oneway,
            Proto::Icmp => t.icmp,
        }
    }
}

/// Result of [`ConnTable::touch`]: the TCP state before and after the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touched {
    /// State before the packet.
    pub old: TcpState,
    /// State after the packet.
    pub new: TcpState,
}

impl Touched {
    /// Whether the packet changed the state.
    pub fn changed(&self) -> bool {
        self.old != self.new
    }

    /// +1 if the connection became active, −1 if it stopped being active, else 0: add it
    /// to the real server's active count and subtract it from its inactive count.
    pub fn active_delta(&self) -> i32 {
        self.new.is_active() as i32 - self.old.is_active() as i32
    }
}

/// What one [`ConnTable::expire`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireStats {
    /// Connections taken off the wheel and looked at (at most the budget).
    pub examined: u32,
    /// Of those, how many were removed.
    pub expired: u32,
}

/// Construction parameters of a [`ConnTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTableConfig {
    /// Maximum number of live connections (DPVS: 2M per worker).
    pub capacity: u32,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// Shape of the expiry wheel.
    pub wheel: WheelConfig,
    /// Seed of the table hash: pick one at random per table so that flows cannot be
    /// chosen to collide.
    pub hash_seed: u64,
}

impl ConnTableConfig {
    /// Default timeouts and wheel, a fixed seed.
    pub fn new(capacity: u32) -> ConnTableConfig {
        ConnTableConfig {
            capacity,
            timeouts: Timeouts::default(),
            wheel: WheelConfig::default(),
            hash_seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

#[derive(Debug)]
struct Slot {
    conn: Conn,
    generation: u32,
    live: bool,
    /// Hashes the connection was indexed under (so removal never re-reads the tuples).
    in_hash: Hashed,
    out_hash: Hashed,
    /// The state counted in `state_counts` for this slot (TCP only).
    counted: Option<TcpState>,
}

/// The per-worker connection table. See the [module documentation](self).
#[derive(Debug)]
pub struct ConnTable {
    slab: Vec<Slot>,
    free: Vec<u32>,
    capacity: u32,
    index: Index,
    wheel: Wheel,
    timeouts: Timeouts,
    live: u32,
    state_counts: [u32; TcpState::COUNT],
}

impl ConnTable {
    /// Allocates a table for `cfg.capacity` connections; `now` starts the expiry wheel.
    ///
    /// Memory: about 64 bytes of index and 16 of wheel per connection up front, and the
    /// slab (reserved up front, touched as it fills).
    pub fn new(cfg: ConnTableConfig, now: Nanos) -> Result<ConnTable, ConnError> {
        if cfg.capacity == 0 || cfg.capacity > MAX_CAPACITY {
            return Err(ConnError::BadCapacity);
        }
        Ok(ConnTable {
            slab: Vec::with_capacity(cfg.capacity as usize),
            free: Vec::with_capacity(cfg.capacity as usize),
            capacity: cfg.capacity,
            index: Index::new(cfg.capacity, cfg.hash_seed),
            wheel: Wheel::new(cfg.wheel, cfg.capacity, now),
            timeouts: cfg.timeouts,
            live: 0,
            state_counts: [0; TcpState::COUNT],
        })
    }

    /// Maximum number of live connections.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Number of live connections.
    pub fn len(&self) -> u32 {
        self.live
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Live TCP connections per state, indexed by [`TcpState::index`].
    pub fn state_counts(&self) -> &[u32; TcpState::COUNT] {
        &self.state_counts
    }

    /// The timeouts in use.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Replaces the timeouts; live connections take them at their next packet.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
    }

    /// Number of hash buckets (64 bytes each, a power of two).
    pub fn bucket_count(&self) -> usize {
        self.index.bucket_count()
    }

    /// The wheel's tick: connections expire at most this long after their deadline
    /// (given `expire` is called often enough with enough budget).
    pub fn tick(&self) -> Nanos {
        self.wheel.tick()
    }

    /// Finds the connection a packet with tuple `t` belongs to, and which way it travels.
    #[inline]
    pub fn lookup(&self, t: &Tuple) -> Option<(ConnId, Direction)> {
        self.find(self.index.hash(t), t)
    }

    #[inline]
    fn find(&self, h: Hashed, t: &Tuple) -> Option<(ConnId, Direction)> {
        let slab = &self.slab;
        let r = self.index.find(h, t, |r| {
            // References in the index always name live slab entries (added in `insert`,
            // dropped in `release`); `None` is unreachable and simply fails the match.
            slab.get((r >> 1) as usize)
                .map(|s| *s.conn.tuple(dir_of_ref(r)))
        })?;
        let index = r >> 1;
        let slot = self.slab.get(index as usize)?;
        Some((
            ConnId {
                index,
                generation: slot.generation,
            },
            dir_of_ref(r),
        ))
    }

    /// The live connection `id`.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        match self.slab.get(id.index as usize) {
            Some(s) if s.live && s.generation == id.generation => Some(&s.conn),
            _ => None,
        }
    }

    /// The live connection `id`, mutable. Change the rewrite fields (flags, deltas,
    /// counters, …) only: the tuples, `state` and `expires` belong to the table.
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        match self.slab.get_mut(id.index as usize) {
            Some(s) if s.live && s.generation == id.generation => Some(&mut s.conn),
            _ => None,
        }
    }

    /// Adds `conn`, indexed by its `in_tuple` and `out_tuple`. Sets `last_seen` to `now`
    /// and `expires` from its protocol and state.
    ///
    /// Errors: [`ConnError::Exists`] if either tuple is already in use (or both are the
    /// same), [`ConnError::TableFull`] if all slots are in use. On error nothing changes.
    pub fn insert(&mut self, mut conn: Conn, now: Nanos) -> Result<ConnId, ConnError> {
        let in_hash = self.index.hash(&conn.in_tuple);
        let out_hash = self.index.hash(&conn.out_tuple);
        if conn.in_tuple == conn.out_tuple
            || self.find(in_hash, &conn.in_tuple).is_some()
            || self.find(out_hash, &conn.out_tuple).is_some()
        {
            return Err(ConnError::Exists);
        }
        conn.last_seen = now;
        conn.expires = now.saturating_add(conn.timeout(&self.timeouts));
        let counted = (conn.proto() == Proto::Tcp).then_some(conn.state);

        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slab.len() < self.capacity as usize => {
                // Within the capacity reserved in `new`: this push does not allocate.
                self.slab.push(Slot {
                    conn,
                    generation: 0,
                    live: false,
                    in_hash,
                    out_hash,
                    counted: None,
                });
                (self.slab.len() - 1) as u32
            }
            None => return Err(ConnError::TableFull),
        };
        let r_in = index << 1;
        let r_out = r_in | 1;
        if !self.index.insert(in_hash, r_in) {
            self.free.push(index);
            return Err(ConnError::TableFull);
        }
        if !self.index.insert(out_hash, r_out) {
            self.index.remove(in_hash, r_in);
            self.free.push(index);
            return Err(ConnError::TableFull);
        }
        let Some(slot) = self.slab.get_mut(index as usize) else {
            return Err(ConnError::TableFull);
        };
        slot.generation = slot.generation.wrapping_add(1);
        slot.live = true;
        slot.conn = conn;
        slot.in_hash = in_hash;
        slot.out_hash = out_hash;
        slot.counted = counted;
        let generation = slot.generation;
        if let Some(s) = counted {
            self.state_counts[s.index()] += 1;
        }
        self.live += 1;
        let due = self.wheel.tick_of_deadline(conn.expires);
        self.wheel.link(index, due, 0);
        Ok(ConnId { index, generation })
    }

    /// Accounts a packet of connection `id` travelling in `dir` with TCP flags byte
    /// `tcp_flags` (0 for UDP/ICMP) at `now`: steps the TCP state, marks a reply seen,
    /// counts the packet and pushes the expiry to `now` + the new state's timeout.
    #[inline]
    pub fn touch(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp_flags: u8,
        now: Nanos,
    ) -> Result<Touched, ConnError> {
        let slot = match self.slab.get_mut(id.index as usize) {
            Some(s) if s.live && s.generation == id.generation => s,
            _ => return Err(ConnError::NotFound),
        };
        let conn = &mut slot.conn;
        let old = conn.state;
        match dir {
            Direction::Inbound => conn.counters.packets_in += 1,
            Direction::Outbound => {
                conn.counters.packets_out += 1;
                conn.flags.insert(ConnFlags::REPLIED);
            }
        }
        if conn.proto() == Proto::Tcp {
            conn.state = old.next(dir, tcp_flags);
        }
        let new = conn.state;
        conn.last_seen = now;
        conn.expires = now.saturating_add(conn.timeout(&self.timeouts));
        let due = self.wheel.tick_of_deadline(conn.expires);
        if let Some(c) = slot.counted {
            if c != new {
                self.state_counts[c.index()] = self.state_counts[c.index()].saturating_sub(1);
                self.state_counts[new.index()] += 1;
                slot.counted = Some(new);
            }
        }
        // Lazy rescheduling: a later deadline is found when the old slot fires; an
        // earlier one (e.g. ESTABLISHED → CLOSE) must move the entry now.
        self.wheel.pull_in(id.index, due);
        Ok(Touched { old, new })
    }

    /// Removes connection `id` (RST, real server removed, …) and returns it.
    pub fn remove(&mut self, id: ConnId) -> Result<Conn, ConnError> {
        if self.get(id).is_none() {
            return Err(ConnError::NotFound);
        }
        self.wheel.unlink(id.index);
        self.release(id.index).ok_or(ConnError::NotFound)
    }

    /// Removes every live connection for which `pred` holds, calling `on_remove` for
    /// each. A control-path sweep over the whole slab (O(capacity)), e.g. when a real
    /// server is deleted. Returns how many were removed.
    pub fn remove_if(
        &mut self,
        mut pred: impl FnMut(&Conn) -> bool,
        mut on_remove: impl FnMut(ConnId, &Conn),
    ) -> u32 {
        let mut n = 0;
        for index in 0..self.slab.len() as u32 {
            let Some(s) = self.slab.get(index as usize) else {
                break;
            };
            if !s.live || !pred(&s.conn) {
                continue;
            }
            let id = ConnId {
                index,
                generation: s.generation,
            };
            self.wheel.unlink(index);
            if let Some(conn) = self.release(index) {
                on_remove(id, &conn);
                n += 1;
            }
        }
        n
    }

    /// Live connections in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        self.slab.iter().enumerate().filter(|(_, s)| s.live).map(|(i, s)| {
            (
                ConnId {
                    index: i as u32,
                    generation: s.generation,
                },
                &s.conn,
            )
        })
    }

    /// Removes connections idle past their deadline, examining at most `budget` of them
    /// (and stepping over at most one turn of empty wheel slots), and calls `on_expire`
    /// for each one removed so the caller can release its local port and real-server
    /// count. A connection is removed at the first tick boundary at or after its
    /// `expires`, provided the calls keep up. Call it often with a small budget (e.g. 64).
    pub fn expire(
        &mut self,
        now: Nanos,
        budget: u32,
        mut on_expire: impl FnMut(ConnId, &Conn),
    ) -> ExpireStats {
        let now_tick = self.wheel.tick_of_now(now);
        let limit = now_tick.saturating_mul(self.wheel.tick());
        let mut steps = u32::try_from(self.wheel_slots()).unwrap_or(u32::MAX);
        let mut stats = ExpireStats::default();
        while stats.examined < budget {
            let Some(index) = self.wheel.pop_due(now_tick, &mut steps) else {
                break;
            };
            stats.examined += 1;
            let Some(slot) = self.slab.get(index as usize) else {
                continue;
            };
            if slot.conn.expires <= limit {
                let id = ConnId {
                    index,
                    generation: slot.generation,
                };
                if let Some(conn) = self.release(index) {
                    on_expire(id, &conn);
                    stats.expired += 1;
                }
            } else {
                let due = self.wheel.tick_of_deadline(slot.conn.expires);
                let floor = self.wheel.drain_floor();
                self.wheel.link(index, due, floor);
            }
        }
        stats
    }

    fn wheel_slots(&self) -> usize {
        self.wheel.slots()
    }

    /// Drops slot `index` from the index and the counts and frees it; the caller has
    /// already unlinked it from the wheel. Returns a copy of the connection.
    fn release(&mut self, index: u32) -> Option<Conn> {
        let slot = self.slab.get_mut(index as usize)?;
        if !slot.live {
            return None;
        }
        slot.live = false;
        let (in_hash, out_hash, conn, counted) =
            (slot.in_hash, slot.out_hash, slot.conn, slot.counted.take());
        self.index.remove(in_hash, index << 1);
        self.index.remove(out_hash, (index << 1) | 1);
        if let Some(s) = counted {
            self.state_counts[s.index()] = self.state_counts[s.index()].saturating_sub(1);
        }
        self.live = self.live.saturating_sub(1);
        self.free.push(index);
        Some(conn)
    }
}

fn dir_of_ref(r: u32) -> Direction {
    if r & 1 == 0 {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}
