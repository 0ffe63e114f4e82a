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

/// A tuple's hash in one [`ConnTable`] (from [`ConnTable::hash`]).
#[derive(Debug, Clone, Copy)]
pub struct FlowHash(Hashed);

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

    /// The hash of `t` in this table, for [`lookup_hashed`](Self::lookup_hashed) and
    /// [`insert_new_flow`](Self::insert_new_flow): a new flow is hashed once.
    #[inline]
    pub fn hash(&self, t: &Tuple) -> FlowHash {
        FlowHash(self.index.hash(t))
    }

    /// [`lookup`](Self::lookup) with `h = self.hash(t)`.
    #[inline]
    pub fn lookup_hashed(&self, h: FlowHash, t: &Tuple) -> Option<(ConnId, Direction)> {
        self.find(h.0, t)
    }

    #[inline]
    fn find(&self, h: Hashed, t: &Tuple) -> Option<(ConnId, Direction)> {
        let slab = &self.slab;
        let r = self.index.find(h, |r| {
            // References in the index always name live slab entries (added in `insert`,
            // dropped in `release`); `None` is unreachable and simply fails the match.
            slab.get((r >> 1) as usize)
                .is_some_and(|s| s.conn.tuple(dir_of_ref(r)) == t)
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
    pub fn insert(&mut self, conn: Conn, now: Nanos) -> Result<ConnId, ConnError> {
        self.insert_checked(&conn.in_tuple, &conn.out_tuple, now, None, |c| *c = conn)
    }

    /// [`insert`](Self::insert) for a connection whose `in_tuple` the caller has just
    /// looked up with [`lookup_hashed`](Self::lookup_hashed) under `in_hash`, without a
    /// hit and without changing the table since (the packet path's new flow): that
    /// second lookup and the hashing are skipped; the `out_tuple` is still checked.
    ///
    /// The connection is built in its slot: [`Conn::new`]`(in_tuple, out_tuple)`, then
    /// `fill` sets the other fields (not the tuples, `last_seen` or `expires`), so the
    /// record is written once, not built aside and copied in.
    #[inline]
    pub fn insert_new_flow(
        &mut self,
        in_tuple: &Tuple,
        out_tuple: &Tuple,
        now: Nanos,
        in_hash: FlowHash,
        fill: impl FnOnce(&mut Conn),
    ) -> Result<ConnId, ConnError> {
        self.insert_checked(in_tuple, out_tuple, now, Some(in_hash.0), |c| {
            *c = Conn::new(*in_tuple, *out_tuple);
            fill(c);
        })
    }

    /// Inserts the connection that `make` writes into its slot, indexed by `in_tuple`
    /// and `out_tuple` (which it must carry); `looked_up` is the hash of `in_tuple` when
    /// the caller has just looked that up without a hit. Inlined so that the packet
    /// path's record is written straight into the slab.
    #[inline(always)]
    fn insert_checked(
        &mut self,
        in_tuple: &Tuple,
        out_tuple: &Tuple,
        now: Nanos,
        looked_up: Option<Hashed>,
        make: impl FnOnce(&mut Conn),
    ) -> Result<ConnId, ConnError> {
        let check_in = looked_up.is_none();
        let in_hash = looked_up.unwrap_or_else(|| self.index.hash(in_tuple));
        let out_hash = self.index.hash(out_tuple);
        if in_tuple == out_tuple || (check_in && self.find(in_hash, in_tuple).is_some()) {
            return Err(ConnError::Exists);
        }

        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slab.len() < self.capacity as usize => {
                // Within the capacity reserved in `new`: this push does not allocate. The
                // record is written below.
                self.slab.push(Slot {
                    conn: Conn::new(*in_tuple, *out_tuple),
                    generation: 0,
                    live: false,
                    in_hash,
                    out_hash,
                    counted: None,
                });
                (self.slab.len() - 1) as u32
            }
            None => {
                // A duplicate is reported as such even when the table is full.
                if self.find(out_hash, out_tuple).is_some() {
                    return Err(ConnError::Exists);
                }
                return Err(ConnError::TableFull);
            }
        };
        let r_in = index << 1;
        let r_out = r_in | 1;
        // The outbound tuple is checked against every live tuple and indexed in one walk.
        let ConnTable {
            slab, index: idx, ..
        } = self;
        let added = idx.insert_unique(out_hash, r_out, |r| {
            // As in `find`: references name live slab entries.
            slab.get((r >> 1) as usize)
                .is_some_and(|s| s.conn.tuple(dir_of_ref(r)) == out_tuple)
        });
        if let Err(exists) = added {
            self.free.push(index);
            return Err(if exists {
                ConnError::Exists
            } else {
                ConnError::TableFull
            });
        }
        if !self.index.insert(in_hash, r_in) {
            self.index.remove(out_hash, r_out);
            self.free.push(index);
            return Err(ConnError::TableFull);
        }
        let ConnTable {
            slab,
            timeouts,
            state_counts,
            live,
            wheel,
            ..
        } = self;
        let Some(slot) = slab.get_mut(index as usize) else {
            return Err(ConnError::TableFull);
        };
        make(&mut slot.conn);
        let conn = &mut slot.conn;
        conn.last_seen = now;
        conn.expires = now.saturating_add(conn.timeout(timeouts));
        let expires = conn.expires;
        let counted = (conn.proto() == Proto::Tcp).then_some(conn.state);
        slot.generation = slot.generation.wrapping_add(1);
        slot.live = true;
        slot.in_hash = in_hash;
        slot.out_hash = out_hash;
        slot.counted = counted;
        let generation = slot.generation;
        if let Some(s) = counted {
            state_counts[s.index()] += 1;
        }
        *live += 1;
        let due = wheel.tick_of_deadline(expires);
        wheel.link(index, due, 0);
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
        self.touch_mut(id, dir, tcp_flags, now).map(|(t, _)| t)
    }

    /// [`touch`](Self::touch), also lending the connection (for the caller's byte counts
    /// and flags; the same rules as [`get_mut`](Self::get_mut)).
    #[inline(always)]
    pub fn touch_mut(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp_flags: u8,
        now: Nanos,
    ) -> Result<(Touched, &mut Conn), ConnError> {
        let ConnTable {
            slab,
            wheel,
            timeouts,
            state_counts,
            ..
        } = self;
        let slot = match slab.get_mut(id.index as usize) {
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
        conn.expires = now.saturating_add(conn.timeout(timeouts));
        let deadline = conn.expires;
        if let Some(c) = slot.counted {
            if c != new {
                state_counts[c.index()] = state_counts[c.index()].saturating_sub(1);
                state_counts[new.index()] += 1;
                slot.counted = Some(new);
            }
        }
        // Lazy rescheduling: a later deadline is found when the old slot fires; an
        // earlier one (e.g. ESTABLISHED → CLOSE) must move the entry now.
        wheel.pull_in(id.index, deadline);
        Ok((Touched { old, new }, &mut slot.conn))
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
            if self.release_with(index, |c| on_remove(id, c)) {
                n += 1;
            }
        }
        n
    }

    /// Live connections in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| {
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
                if self.release_with(index, |c| on_expire(id, c)) {
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
        let mut out = None;
        self.release_with(index, |c| out = Some(*c));
        out
    }

    /// [`release`](Self::release), lending the connection to `f` instead of copying it
    /// out. Returns whether slot `index` was live.
    #[inline]
    fn release_with(&mut self, index: u32, f: impl FnOnce(&Conn)) -> bool {
        let ConnTable {
            slab,
            free,
            index: idx,
            live,
            state_counts,
            ..
        } = self;
        let Some(slot) = slab.get_mut(index as usize) else {
            return false;
        };
        if !slot.live {
            return false;
        }
        slot.live = false;
        idx.remove(slot.in_hash, index << 1);
        idx.remove(slot.out_hash, (index << 1) | 1);
        if let Some(s) = slot.counted.take() {
            state_counts[s.index()] = state_counts[s.index()].saturating_sub(1);
        }
        *live = live.saturating_sub(1);
        // Within the capacity reserved in `new` (one entry per slot): no allocation.
        free.push(index);
        f(&slot.conn);
        true
    }
}

fn dir_of_ref(r: u32) -> Direction {
    if r & 1 == 0 {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;
    use rstest::rstest;

    use super::tcp_flags::{ACK, FIN, RST, SYN};
    use super::*;
    use crate::dataplane::types::SECOND;
    use Direction::{Inbound as In, Outbound as Out};

    const T0: Nanos = 1_000 * SECOND;

    fn v4(a: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    /// Connection number `i` of protocol `proto`, FULLNAT-shaped: client i → VIP:80,
    /// RS → local address (i-dependent) : local port.
    fn conn(i: u32, proto: Proto) -> Conn {
        let in_tuple = Tuple {
            proto,
            src: v4(0x0a00_0000 + i),
            sport: 40_000 + (i % 1000) as u16,
            dst: v4(0xc000_0201),
            dport: 80,
        };
        let out_tuple = Tuple {
            proto,
            src: v4(0x0a01_0001),
            sport: 8080,
            dst: v4(0x0a02_0000 + i / 60_000),
            dport: 1025 + (i % 60_000) as u16,
        };
        Conn::new(in_tuple, out_tuple)
    }

    fn table(cap: u32) -> ConnTable {
        ConnTable::new(ConnTableConfig::new(cap), T0).expect("valid capacity")
    }

    /// Calls `expire` until it stops finding work, returning how many were removed.
    fn expire_all(t: &mut ConnTable, now: Nanos) -> u32 {
        let mut n = 0;
        loop {
            let s = t.expire(now, 1024, |_, _| {});
            n += s.expired;
            if s.examined == 0 {
                return n;
            }
        }
    }

    #[test]
    fn lookup_from_both_directions_finds_same_conn() {
        let mut t = table(16);
        let c = conn(1, Proto::Tcp);
        let id = t.insert(c, T0).unwrap();
        assert_eq!(t.lookup(&c.in_tuple), Some((id, In)));
        assert_eq!(t.lookup(&c.out_tuple), Some((id, Out)));
        assert_eq!(t.lookup(&c.in_tuple.reversed()), None);
        assert_eq!(t.get(id).unwrap().in_tuple, c.in_tuple);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ipv6_lookup() {
        let mut t = table(16);
        let a = |x: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x));
        let c = Conn::new(
            Tuple {
                proto: Proto::Udp,
                src: a(1),
                sport: 5000,
                dst: a(2),
                dport: 53,
            },
            Tuple {
                proto: Proto::Udp,
                src: a(3),
                sport: 53,
                dst: a(4),
                dport: 2000,
            },
        );
        let id = t.insert(c, T0).unwrap();
        assert_eq!(t.lookup(&c.in_tuple), Some((id, In)));
        assert_eq!(t.lookup(&c.out_tuple), Some((id, Out)));
        // Same ports and protocol, v4 addresses: another flow.
        let mut other = c.in_tuple;
        other.src = v4(1);
        assert_eq!(t.lookup(&other), None);
    }

    #[test]
    fn remove_removes_both_indexes_and_refuses_stale_ids() {
        let mut t = table(16);
        let c = conn(1, Proto::Tcp);
        let id = t.insert(c, T0).unwrap();
        assert_eq!(t.remove(id).unwrap().in_tuple, c.in_tuple);
        assert_eq!(t.lookup(&c.in_tuple), None);
        assert_eq!(t.lookup(&c.out_tuple), None);
        assert_eq!(t.remove(id), Err(ConnError::NotFound));
        assert_eq!(t.touch(id, In, ACK, T0), Err(ConnError::NotFound));
        assert!(t.is_empty());
        // The slot is reused under a new generation; the old id stays dead.
        let id2 = t.insert(conn(2, Proto::Tcp), T0).unwrap();
        assert_eq!(id2.index(), id.index());
        assert!(t.get(id).is_none());
        assert!(t.get(id2).is_some());
        // Nothing fires for the removed connection.
        assert_eq!(expire_all(&mut t, T0 + 10 * SECOND), 1);
    }

    #[test]
    fn duplicates_are_refused() {
        let mut t = table(16);
        let c = conn(1, Proto::Tcp);
        t.insert(c, T0).unwrap();
        assert_eq!(t.insert(c, T0), Err(ConnError::Exists));
        let mut same_in = conn(2, Proto::Tcp);
        same_in.in_tuple = c.in_tuple;
        assert_eq!(t.insert(same_in, T0), Err(ConnError::Exists));
        let mut same_out = conn(2, Proto::Tcp);
        same_out.out_tuple = c.out_tuple;
        assert_eq!(t.insert(same_out, T0), Err(ConnError::Exists));
        // A new connection's inbound tuple equal to an existing outbound tuple.
        let mut crossed = conn(2, Proto::Tcp);
        crossed.in_tuple = c.out_tuple;
        assert_eq!(t.insert(crossed, T0), Err(ConnError::Exists));
        let mut selfish = conn(3, Proto::Tcp);
        selfish.out_tuple = selfish.in_tuple;
        assert_eq!(t.insert(selfish, T0), Err(ConnError::Exists));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn bad_capacity() {
        let cfg = |c| ConnTableConfig::new(c);
        assert_eq!(
            ConnTable::new(cfg(0), 0).unwrap_err(),
            ConnError::BadCapacity
        );
        assert_eq!(
            ConnTable::new(cfg(MAX_CAPACITY + 1), 0).unwrap_err(),
            ConnError::BadCapacity
        );
    }

    #[rstest]
    #[case(1)]
    #[case(7)]
    #[case(1000)]
    fn full_table_refuses_and_keeps_existing(#[case] cap: u32) {
        let mut t = table(cap);
        let ids: Vec<_> = (0..cap)
            .map(|i| t.insert(conn(i, Proto::Tcp), T0).unwrap())
            .collect();
        assert_eq!(
            t.insert(conn(cap, Proto::Tcp), T0),
            Err(ConnError::TableFull)
        );
        assert_eq!(t.len(), cap);
        for (i, id) in ids.iter().enumerate() {
            let c = conn(i as u32, Proto::Tcp);
            assert_eq!(t.lookup(&c.in_tuple), Some((*id, In)));
            assert_eq!(t.lookup(&c.out_tuple), Some((*id, Out)));
        }
        // State NONE: 2 s. After expiry there is room again.
        assert_eq!(expire_all(&mut t, T0 + 2 * SECOND), cap);
        assert!(t.is_empty());
        for i in 0..cap {
            t.insert(conn(cap + i, Proto::Tcp), T0 + 3 * SECOND)
                .unwrap();
        }
        assert_eq!(t.len(), cap);
    }

    /// Packets that bring a fresh TCP connection to each state.
    const ESTABLISH: [(Direction, u8); 3] = [(In, SYN), (Out, SYN | ACK), (In, ACK)];

    #[rstest]
    #[case::none(&[], TcpState::None, 2)]
    #[case::syn_recv(&[(In, SYN)], TcpState::SynRecv, 30)]
    #[case::syn_sent(&[(Out, SYN)], TcpState::SynSent, 3)]
    #[case::established(&ESTABLISH, TcpState::Established, 90)]
    #[case::close_wait(&[ESTABLISH[0], ESTABLISH[1], ESTABLISH[2], (In, FIN | ACK)], TcpState::CloseWait, 7)]
    #[case::fin_wait(&[ESTABLISH[0], ESTABLISH[1], ESTABLISH[2], (Out, FIN | ACK)], TcpState::FinWait, 7)]
    #[case::time_wait(&[ESTABLISH[0], ESTABLISH[1], ESTABLISH[2], (In, FIN | ACK), (Out, FIN | ACK)], TcpState::TimeWait, 7)]
    #[case::close(&[ESTABLISH[0], ESTABLISH[1], ESTABLISH[2], (In, RST)], TcpState::Close, 3)]
    fn tcp_state_expires_on_time(
        #[case] packets: &[(Direction, u8)],
        #[case] state: TcpState,
        #[case] secs: u64,
    ) {
        check_expiry(conn(5, Proto::Tcp), packets, state, secs);
    }

    #[rstest]
    #[case::last_ack(TcpState::LastAck, 7)]
    #[case::listen(TcpState::Listen, 120)]
    #[case::synack(TcpState::SynAck, 30)]
    fn tcp_state_without_handshake_expires_on_time(#[case] state: TcpState, #[case] secs: u64) {
        let mut c = conn(5, Proto::Tcp);
        c.state = state;
        check_expiry(c, &[], state, secs);
    }

    #[rstest]
    #[case::udp_oneway(Proto::Udp, &[(In, 0), (In, 0)], 60)]
    #[case::udp_replied(Proto::Udp, &[(In, 0), (Out, 0), (In, 0)], 300)]
    #[case::icmp(Proto::Icmp, &[(In, 0), (Out, 0)], 60)]
    fn other_protocols_expire_on_time(
        #[case] proto: Proto,
        #[case] packets: &[(Direction, u8)],
        #[case] secs: u64,
    ) {
        check_expiry(conn(9, proto), packets, TcpState::None, secs);
    }

    /// Inserts `c`, plays `packets` one second apart, checks the state, then runs the
    /// expiry every tick: nothing may expire before `secs` after the last packet minus
    /// one tick, and it must be gone one tick after.
    fn check_expiry(c: Conn, packets: &[(Direction, u8)], state: TcpState, secs: u64) {
        let mut t = table(8);
        let tick = t.tick();
        let id = t.insert(c, T0).unwrap();
        let mut now = T0;
        for &(dir, flags) in packets {
            now += SECOND;
            t.expire(now, 64, |_, _| {});
            t.touch(id, dir, flags, now).unwrap();
        }
        assert_eq!(t.get(id).unwrap().state, state);
        let deadline = now + secs * SECOND;
        let mut at = now;
        let mut gone_at = None;
        while at <= deadline + tick {
            t.expire(at, 64, |eid, _| {
                assert_eq!(eid, id);
                gone_at = Some(at);
            });
            if gone_at.is_some() {
                break;
            }
            at += tick;
        }
        let gone_at = gone_at.expect("expired within one tick of its deadline");
        assert!(
            gone_at > deadline - tick,
            "expired early at {gone_at} < {deadline}"
        );
        assert!(t.is_empty());
        assert_eq!(t.state_counts().iter().sum::<u32>(), 0);
    }

    #[test]
    fn touched_conn_does_not_expire() {
        let mut t = table(8);
        let c = conn(1, Proto::Tcp);
        let id = t.insert(c, T0).unwrap();
        for (i, &(dir, flags)) in ESTABLISH.iter().enumerate() {
            t.touch(id, dir, flags, T0 + i as u64).unwrap();
        }
        let mut last = T0;
        // Ten minutes of one packet every 60 s, expiry run every second.
        for s in 1..=600 {
            let now = T0 + s * SECOND;
            if s % 60 == 0 {
                t.touch(id, In, ACK, now).unwrap();
                last = now;
            }
            assert_eq!(t.expire(now, 64, |_, _| {}).expired, 0, "at {s} s");
        }
        assert!(t.get(id).is_some());
        assert_eq!(expire_all(&mut t, last + 89 * SECOND), 0);
        assert_eq!(expire_all(&mut t, last + 90 * SECOND), 1);
    }

    #[test]
    fn shorter_timeout_moves_the_deadline_in() {
        let mut t = table(8);
        let id = t.insert(conn(1, Proto::Tcp), T0).unwrap();
        for &(dir, flags) in &ESTABLISH {
            t.touch(id, dir, flags, T0).unwrap();
        }
        let r = t.touch(id, Out, RST, T0 + SECOND).unwrap();
        assert_eq!(
            (r.old, r.new, r.changed(), r.active_delta()),
            (TcpState::Established, TcpState::Close, true, -1)
        );
        assert_eq!(expire_all(&mut t, T0 + 3 * SECOND), 0);
        assert_eq!(expire_all(&mut t, T0 + 4 * SECOND), 1);
    }

    #[test]
    fn touch_reports_state_changes_and_counts() {
        let mut t = table(8);
        let id = t.insert(conn(1, Proto::Tcp), T0).unwrap();
        assert_eq!(t.state_counts()[TcpState::None.index()], 1);
        let r = t.touch(id, In, SYN, T0).unwrap();
        assert_eq!(
            (r.new, r.changed(), r.active_delta()),
            (TcpState::SynRecv, true, 0)
        );
        let r = t.touch(id, Out, SYN | ACK, T0).unwrap();
        assert!(!r.changed());
        let r = t.touch(id, In, ACK, T0).unwrap();
        assert_eq!((r.new, r.active_delta()), (TcpState::Established, 1));
        assert_eq!(t.state_counts()[TcpState::Established.index()], 1);
        assert_eq!(t.state_counts().iter().sum::<u32>(), 1);
        let c = t.get(id).unwrap();
        assert_eq!((c.counters.packets_in, c.counters.packets_out), (2, 1));
        assert!(c.flags.contains(ConnFlags::REPLIED));
        let u = t.insert(conn(2, Proto::Udp), T0).unwrap();
        let r = t.touch(u, Out, 0, T0).unwrap();
        assert!(!r.changed());
        assert_eq!(
            t.state_counts().iter().sum::<u32>(),
            1,
            "UDP is not counted per state"
        );
    }

    #[test]
    fn expiry_work_is_bounded() {
        let n = 10_000;
        let mut t = table(n);
        for i in 0..n {
            t.insert(conn(i, Proto::Tcp), T0).unwrap();
        }
        let now = T0 + 2 * SECOND;
        let mut calls = 0;
        let mut removed = 0;
        while !t.is_empty() {
            let mut seen = 0;
            let s = t.expire(now, 64, |_, _| seen += 1);
            assert!(s.examined <= 64 && s.expired <= 64 && seen == s.expired);
            removed += s.expired;
            calls += 1;
            assert!(calls <= n / 64 + 2, "made no progress");
        }
        assert_eq!(removed, n);
        assert_eq!(calls, n.div_ceil(64));
    }

    #[test]
    fn catches_up_after_a_long_gap() {
        let mut t = table(64);
        for i in 0..64 {
            let id = t
                .insert(
                    conn(i, if i % 2 == 0 { Proto::Tcp } else { Proto::Udp }),
                    T0,
                )
                .unwrap();
            t.touch(id, Out, ACK, T0).unwrap();
        }
        // Nothing called expire for an hour: far more than one turn of the wheel.
        let late = T0 + 3600 * SECOND;
        let mut calls = 0;
        while !t.is_empty() {
            t.expire(late, 8, |_, _| {});
            calls += 1;
            assert!(calls < 100);
        }
        // And new connections still expire on time afterwards.
        t.insert(conn(100, Proto::Tcp), late).unwrap();
        assert_eq!(expire_all(&mut t, late + SECOND), 0);
        assert_eq!(expire_all(&mut t, late + 2 * SECOND), 1);
    }

    #[test]
    fn remove_if_sweeps_a_real_server() {
        let mut t = table(100);
        for i in 0..100 {
            let mut c = conn(i, Proto::Tcp);
            c.rs_index = i % 4;
            t.insert(c, T0).unwrap();
        }
        let mut seen = 0;
        assert_eq!(
            t.remove_if(
                |c| c.rs_index == 2,
                |_, c| {
                    assert_eq!(c.rs_index, 2);
                    seen += 1;
                }
            ),
            25
        );
        assert_eq!((seen, t.len()), (25, 75));
        assert!(t
            .iter()
            .all(|(id, c)| c.rs_index != 2 && t.get(id) == Some(c)));
        assert_eq!(expire_all(&mut t, T0 + 2 * SECOND), 75);
    }

    #[test]
    fn many_colliding_buckets_still_work() {
        // A tiny capacity forces overflow chains across the few buckets there are.
        let cap = 64;
        let mut t = table(cap);
        for round in 0..20 {
            let base = round * cap;
            let ids: Vec<_> = (0..cap)
                .map(|i| t.insert(conn(base + i, Proto::Tcp), T0).unwrap())
                .collect();
            for (i, id) in ids.iter().enumerate().step_by(3) {
                t.remove(*id).unwrap();
                assert_eq!(t.lookup(&conn(base + i as u32, Proto::Tcp).in_tuple), None);
            }
            for (i, id) in ids.iter().enumerate() {
                let c = conn(base + i as u32, Proto::Tcp);
                let found = t.lookup(&c.out_tuple);
                if i % 3 == 0 {
                    assert_eq!(found, None);
                } else {
                    assert_eq!(found, Some((*id, Out)));
                    t.remove(*id).unwrap();
                }
            }
            assert!(t.is_empty());
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Lookup(u32),
        Remove(u32),
        Touch(u32, bool, u8),
        Advance(u64),
        Expire(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..48u32).prop_map(Op::Insert),
            2 => (0..48u32).prop_map(Op::Lookup),
            1 => (0..48u32).prop_map(Op::Remove),
            3 => (0..48u32, any::<bool>(), prop::sample::select(vec![0, SYN, ACK, SYN | ACK, FIN | ACK, RST])).prop_map(|(k, o, f)| Op::Touch(k, o, f)),
            2 => (0..40 * SECOND).prop_map(Op::Advance),
            2 => prop_oneof![Just(u32::MAX), 1..4u32].prop_map(Op::Expire),
        ]
    }

    /// The model: key → (id, conn as the table should hold it).
    type Model = HashMap<u32, (ConnId, Conn)>;

    fn model_conn(k: u32) -> Conn {
        let proto = match k % 3 {
            0 => Proto::Udp,
            _ => Proto::Tcp,
        };
        conn(k, proto)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn agrees_with_a_hashmap_model(ops in prop::collection::vec(op(), 1..200), cap in 1..40u32) {
            let mut t = table(cap);
            let tick = t.tick();
            let timeouts = Timeouts::default();
            let mut model = Model::new();
            let mut now = T0;
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        let r = t.insert(model_conn(k), now);
                        if model.contains_key(&k) {
                            prop_assert_eq!(r, Err(ConnError::Exists));
                        } else if model.len() as u32 == cap {
                            prop_assert_eq!(r, Err(ConnError::TableFull));
                        } else {
                            let id = r.unwrap();
                            let mut c = model_conn(k);
                            c.last_seen = now;
                            c.expires = now + c.timeout(&timeouts);
                            prop_assert_eq!(t.get(id), Some(&c));
                            model.insert(k, (id, c));
                        }
                    }
                    Op::Lookup(k) => {
                        let c = model_conn(k);
                        let want = model.get(&k).map(|e| e.0);
                        prop_assert_eq!(t.lookup(&c.in_tuple), want.map(|id| (id, In)));
                        prop_assert_eq!(t.lookup(&c.out_tuple), want.map(|id| (id, Out)));
                    }
                    Op::Remove(k) => match model.remove(&k) {
                        Some((id, c)) => prop_assert_eq!(t.remove(id), Ok(c)),
                        None => prop_assert_eq!(t.lookup(&model_conn(k).in_tuple), None),
                    },
                    Op::Touch(k, out, flags) => {
                        if let Some((id, c)) = model.get_mut(&k) {
                            let dir = if out { Out } else { In };
                            let old = c.state;
                            if c.proto() == Proto::Tcp {
                                c.state = old.next(dir, flags);
                            }
                            if out {
                                c.flags.insert(ConnFlags::REPLIED);
                                c.counters.packets_out += 1;
                            } else {
                                c.counters.packets_in += 1;
                            }
                            c.last_seen = now;
                            c.expires = now + c.timeout(&timeouts);
                            prop_assert_eq!(t.touch(*id, dir, flags, now), Ok(Touched { old, new: c.state }));
                            prop_assert_eq!(t.get(*id), Some(&*c));
                        }
                    }
                    Op::Advance(d) => now += d,
                    Op::Expire(budget) => {
                        let limit = now / tick * tick;
                        let mut gone = Vec::new();
                        let s = t.expire(now, budget, |id, c| gone.push((id, *c)));
                        prop_assert!(s.examined <= budget && s.expired == gone.len() as u32);
                        for (id, c) in gone {
                            prop_assert!(c.expires <= limit);
                            let k = model.iter().find(|(_, e)| e.0 == id).map(|(k, _)| *k);
                            prop_assert!(k.is_some(), "expired an unknown id");
                            if let Some(k) = k {
                                prop_assert_eq!(model.remove(&k).map(|e| e.1), Some(c));
                            }
                        }
                        if budget == u32::MAX {
                            // Unlimited budget: everything due is gone, nothing else is.
                            for (_, c) in model.values() {
                                prop_assert!(c.expires > limit);
                            }
                        }
                    }
                }
                prop_assert_eq!(t.len() as usize, model.len());
                let tcp = model.values().filter(|e| e.1.proto() == Proto::Tcp).count();
                prop_assert_eq!(t.state_counts().iter().sum::<u32>() as usize, tcp);
            }
        }
    }
}
