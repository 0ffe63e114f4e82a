//! A single-level hashed timer wheel with lazy rescheduling.
//!
//! Time is cut into ticks of [`WheelConfig::tick`]; slot `t % slots` holds the entries due
//! at tick `t`, as intrusive doubly-linked lists threaded through per-entry `prev`/`next`
//! arrays, so linking and unlinking are O(1). An entry due beyond one turn of the wheel is
//! parked in the farthest slot and, when that slot fires before its time, moved on again
//! (rounds without a counter). Entries are identified by their slab index.
//!
//! Invariant: every linked entry's `due` tick lies in `[cur, cur + slots)`, so the slot
//! for `cur` holds only entries due at `cur`.

use crate::dataplane::types::{Nanos, SECOND};

const NIL: u32 = u32::MAX;
/// `due` of an entry that is not linked.
const UNLINKED: u64 = u64::MAX;

/// Shape of the expiry wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelConfig {
    /// Length of one slot; a connection expires at most one tick after its deadline.
    pub tick: Nanos,
    /// Number of slots, rounded up to a power of two; `tick * slots` is one turn.
    pub slots: u32,
}

impl Default for WheelConfig {
    /// 1/16 s ticks, 4096 slots: one turn is 256 s.
    fn default() -> Self {
        WheelConfig {
            tick: SECOND / 16,
            slots: 4096,
        }
    }
}

#[derive(Debug)]
pub(super) struct Wheel {
    tick: Nanos,
    /// `u64::MAX / tick`: dividing by the tick is a multiply and one correction.
    recip: u64,
    heads: Vec<u32>,
    mask: u64,
    prev: Vec<u32>,
    next: Vec<u32>,
    due: Vec<u64>,
    /// The next tick to process.
    cur: u64,
    linked: u32,
}

impl Wheel {
    /// A wheel for entries `0..capacity`, whose first tick to process is that of `now`.
    pub(super) fn new(cfg: WheelConfig, capacity: u32, now: Nanos) -> Wheel {
        let tick = cfg.tick.max(1);
        let slots = cfg.slots.clamp(2, 1 << 24).next_power_of_two() as usize;
        let cap = capacity as usize;
        Wheel {
            tick,
            recip: u64::MAX / tick,
            heads: vec![NIL; slots],
            mask: slots as u64 - 1,
            prev: vec![NIL; cap],
            next: vec![NIL; cap],
            due: vec![UNLINKED; cap],
            cur: now / tick,
            linked: 0,
        }
    }

    /// Number of slots (one turn).
    pub(super) fn slots(&self) -> usize {
        self.heads.len()
    }

    /// The tick length.
    pub(super) fn tick(&self) -> Nanos {
        self.tick
    }

    /// `(n / tick, n % tick)` without a division instruction. With `m = ⌊(2⁶⁴−1)/tick⌋`,
    /// `q = ⌊n·m / 2⁶⁴⌋` satisfies `n/tick − 1 < q ≤ n/tick`, so `q` is the quotient or
    /// one less, and one compare of the remainder settles it.
    #[inline]
    fn div_tick(&self, n: u64) -> (u64, u64) {
        let q = ((u128::from(n) * u128::from(self.recip)) >> 64) as u64;
        // q * tick <= n: no overflow, no underflow.
        let r = n - q * self.tick;
        if r >= self.tick {
            (q + 1, r - self.tick)
        } else {
            (q, r)
        }
    }

    /// The first tick at whose start `deadline` has passed: `ceil(deadline / tick)`.
    #[inline]
    pub(super) fn tick_of_deadline(&self, deadline: Nanos) -> u64 {
        let (q, r) = self.div_tick(deadline);
        q + u64::from(r != 0)
    }

    /// The tick containing `now`.
    #[inline]
    pub(super) fn tick_of_now(&self, now: Nanos) -> u64 {
        self.div_tick(now).0
    }

    /// The tick at which `idx` is currently scheduled to be looked at (`u64::MAX` if it
    /// is not linked).
    #[inline]
    pub(super) fn due(&self, idx: u32) -> u64 {
        self.due.get(idx as usize).copied().unwrap_or(u64::MAX)
    }

    /// Links `idx` (unlinking it first if needed) so that it is looked at on tick `due`, clamped into the
    /// wheel's window; `floor` raises the lower clamp (used while a slot is being drained).
    pub(super) fn link(&mut self, idx: u32, due: u64, floor: u64) {
        let i = idx as usize;
        if i >= self.due.len() {
            return;
        }
        if self.due[i] != UNLINKED {
            self.unlink(idx);
        }
        let lo = self.cur.max(floor);
        let hi = self.cur + self.mask; // cur + slots - 1
        let due = due.clamp(lo, hi.max(lo));
        let slot = (due & self.mask) as usize;
        let head = self.heads[slot];
        self.due[i] = due;
        self.prev[i] = NIL;
        self.next[i] = head;
        if let Some(h) = self.prev.get_mut(head as usize) {
            *h = idx;
        }
        self.heads[slot] = idx;
        self.linked += 1;
    }

    /// Unlinks `idx`; does nothing if it is not linked.
    pub(super) fn unlink(&mut self, idx: u32) {
        let i = idx as usize;
        if i >= self.due.len() || self.due[i] == UNLINKED {
            return;
        }
        let (p, n) = (self.prev[i], self.next[i]);
        match self.next.get_mut(p as usize) {
            Some(pn) => *pn = n,
            None => {
                let slot = (self.due[i] & self.mask) as usize;
                self.heads[slot] = n;
            }
        }
        if let Some(np) = self.prev.get_mut(n as usize) {
            *np = p;
        }
        self.prev[i] = NIL;
        self.next[i] = NIL;
        self.due[i] = UNLINKED;
        self.linked = self.linked.saturating_sub(1);
    }

    /// Moves `idx` earlier if `deadline` falls before the tick it is linked at; a later
    /// deadline is left for the slot to find when it fires (lazy rescheduling). The common
    /// case — a later deadline — costs one multiply, no division.
    #[inline]
    pub(super) fn pull_in(&mut self, idx: u32, deadline: Nanos) {
        let due = self.due(idx);
        if due == UNLINKED {
            return;
        }
        // ceil(deadline / tick) < due  <=>  deadline <= (due - 1) * tick
        if due > 0 && deadline <= (due - 1).saturating_mul(self.tick) {
            let d = self.tick_of_deadline(deadline);
            self.link(idx, d, 0);
        }
    }

    /// Unlinks and returns the next entry due at or before tick `now_tick`, stepping over
    /// at most `*steps` empty slots (decremented as they are passed). The returned entry's
    /// slot is the one being drained: re-link it with `floor = drain_floor()`.
    pub(super) fn pop_due(&mut self, now_tick: u64, steps: &mut u32) -> Option<u32> {
        if self.linked == 0 {
            // Nothing to walk over: jump straight to the present.
            self.cur = self.cur.max(now_tick);
            return None;
        }
        while self.cur <= now_tick {
            let head = self.heads[(self.cur & self.mask) as usize];
            if head != NIL {
                self.unlink(head);
                return Some(head);
            }
            if *steps == 0 {
                return None;
            }
            *steps -= 1;
            self.cur += 1;
        }
        None
    }

    /// The lowest tick an entry popped from the slot being drained may be re-linked at.
    pub(super) fn drain_floor(&self) -> u64 {
        self.cur + 1
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn wheel(tick: Nanos) -> Wheel {
        Wheel::new(WheelConfig { tick, slots: 4 }, 1, 0)
    }

    #[test]
    fn tick_division_is_exact_at_the_edges() {
        for tick in [
            1,
            2,
            3,
            7,
            1_000_000,
            SECOND / 16,
            SECOND,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let w = wheel(tick);
            for n in [
                0,
                1,
                tick - 1,
                tick,
                tick.saturating_add(1),
                u64::MAX - 1,
                u64::MAX,
            ] {
                assert_eq!(w.tick_of_now(n), n / tick, "{n} / {tick}");
                assert_eq!(w.tick_of_deadline(n), n.div_ceil(tick), "⌈{n} / {tick}⌉");
            }
        }
    }

    proptest! {
        #[test]
        fn tick_division_agrees_with_the_division(tick in 1..u64::MAX, n: u64, small in 0..1u64 << 40) {
            for n in [n, small] {
                let w = wheel(tick);
                prop_assert_eq!(w.tick_of_now(n), n / tick);
                prop_assert_eq!(w.tick_of_deadline(n), n.div_ceil(tick));
            }
        }
    }
}
