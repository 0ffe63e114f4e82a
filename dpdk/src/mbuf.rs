//! Packet buffers and bursts of them.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::mempool::Mempool;

/// Packets per burst everywhere in l4lab.
pub const BURST_SIZE: usize = 32;

/// Not enough headroom, tailroom or data for the requested change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not enough room in the mbuf")
    }
}

impl std::error::Error for NoRoom {}

/// One packet buffer, owned: dropping it returns it to its pool.
///
/// Data accessors cover the first segment, which is the whole packet for everything
/// l4lab receives and builds (no scatter-gather on the fast path).
#[repr(transparent)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving it to another thread moves
// the ownership (this is how DPDK passes mbufs between lcores over rings).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes one mbuf from the pool, or `None` when it is empty.
    #[inline]
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid while `pool` exists.
        let ptr = unsafe { dpdk_sys::l4lab_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(ptr).map(Mbuf)
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid mbuf that nothing else owns or will free.
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf(ptr)
    }

    /// Gives up ownership; the caller must free the mbuf or hand it to DPDK.
    #[inline]
    pub fn into_raw(self) -> NonNull<dpdk_sys::rte_mbuf> {
        ManuallyDrop::new(self).0
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole life.
        unsafe { self.0.as_ref() }
    }

    /// Bytes of data in the first segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Bytes of data in the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Segments in the packet.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: DPDK keeps data_off + data_len within buf_len, so the range lies in the
        // buffer this mbuf owns; the borrow of self keeps it alive and unaliased.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr, m.data_off, m.data_len);
        // SAFETY: as in `data`; the exclusive borrow of self makes the slice unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                addr.cast::<u8>().add(usize::from(off)),
                usize::from(len),
            )
        }
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: valid mbuf owned by self.
        usize::from(unsafe { dpdk_sys::l4lab_pktmbuf_headroom(self.as_ptr()) })
    }

    /// Free bytes after the data of the last segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: valid mbuf owned by self.
        usize::from(unsafe { dpdk_sys::l4lab_pktmbuf_tailroom(self.as_ptr()) })
    }

    /// Grows the data at the front by `len` bytes (from headroom); the data slice now
    /// starts with those bytes, whose contents are unspecified.
    #[inline]
    pub fn prepend(&mut self, len: usize) -> Result<(), NoRoom> {
        let len = u16::try_from(len).map_err(|_| NoRoom)?;
        // SAFETY: valid mbuf owned by self; DPDK checks the headroom and returns NULL.
        let p = unsafe { dpdk_sys::l4lab_pktmbuf_prepend(self.as_ptr(), len) };
        if p.is_null() {
            Err(NoRoom)
        } else {
            Ok(())
        }
    }

    /// Grows the data at the end by `len` bytes (from tailroom) and returns them.
    #[inline]
    pub fn append(&mut self, len: usize) -> Result<&mut [u8], NoRoom> {
        let len16 = u16::try_from(len).map_err(|_| NoRoom)?;
        if self.raw().nb_segs == 1 {
            // Single segment (every packet l4lab builds): done here, without a call.
            // SAFETY: valid mbuf exclusively owned by self; plain integer fields.
            let m = unsafe { self.0.as_mut() };
            let end = usize::from(m.data_off) + usize::from(m.data_len);
            if end + len > usize::from(m.buf_len) {
                return Err(NoRoom);
            }
            m.data_len += len16;
            m.pkt_len += u32::from(len16);
            // SAFETY: [end, end + len) lies inside the buffer (checked above), which this
            // mbuf owns; the exclusive borrow of self keeps the slice unique.
            return Ok(unsafe {
                std::slice::from_raw_parts_mut(m.buf_addr.cast::<u8>().add(end), len)
            });
        }
        // SAFETY: valid mbuf owned by self; DPDK checks the tailroom and returns NULL.
        let p = unsafe { dpdk_sys::l4lab_pktmbuf_append(self.as_ptr(), len16) };
        if p.is_null() {
            return Err(NoRoom);
        }
        // SAFETY: DPDK returned the start of `len` bytes inside this mbuf's buffer; the
        // exclusive borrow of self keeps them unique.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
    }

    /// The whole buffer of a single-segment mbuf, headroom and tailroom included, with
    /// the data's offset and length in it; `None` for a chained mbuf. With
    /// [`Mbuf::set_data_range`] this lets a packet path grow or shrink a packet in place.
    #[inline]
    pub fn buffer_mut(&mut self) -> Option<(&mut [u8], usize, usize)> {
        let m = self.raw();
        if m.nb_segs != 1 {
            return None;
        }
        let (addr, buf_len, off, len) = (m.buf_addr, m.buf_len, m.data_off, m.data_len);
        // SAFETY: buf_addr..buf_addr+buf_len is the buffer this mbuf owns; the exclusive
        // borrow of self keeps the slice unique.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), usize::from(buf_len)) };
        Some((buf, usize::from(off), usize::from(len)))
    }

    /// Sets where the data of a single-segment mbuf starts and how long it is, within the
    /// buffer [`Mbuf::buffer_mut`] exposes.
    #[inline]
    pub fn set_data_range(&mut self, offset: usize, len: usize) -> Result<(), NoRoom> {
        // SAFETY: valid mbuf exclusively owned by self; plain integer fields.
        let m = unsafe { self.0.as_mut() };
        if m.nb_segs != 1
            || offset
                .checked_add(len)
                .is_none_or(|end| end > usize::from(m.buf_len))
        {
            return Err(NoRoom);
        }
        m.data_off = offset as u16;
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        Ok(())
    }

    /// Appends a copy of `bytes`.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), NoRoom> {
        self.append(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Removes `len` bytes from the front of the data.
    #[inline]
    pub fn adj(&mut self, len: usize) -> Result<(), NoRoom> {
        let len = u16::try_from(len).map_err(|_| NoRoom)?;
        // SAFETY: valid mbuf owned by self; DPDK checks the length and returns NULL.
        let p = unsafe { dpdk_sys::l4lab_pktmbuf_adj(self.as_ptr(), len) };
        if p.is_null() {
            Err(NoRoom)
        } else {
            Ok(())
        }
    }

    /// Removes `len` bytes from the end of the data.
    #[inline]
    pub fn trim(&mut self, len: usize) -> Result<(), NoRoom> {
        let len = u16::try_from(len).map_err(|_| NoRoom)?;
        // SAFETY: valid mbuf owned by self; DPDK checks the length and returns -1.
        let rc = unsafe { dpdk_sys::l4lab_pktmbuf_trim(self.as_ptr(), len) };
        if rc != 0 {
            Err(NoRoom)
        } else {
            Ok(())
        }
    }

    /// Empties the mbuf and restores the default headroom.
    #[inline]
    pub fn reset(&mut self) {
        // SAFETY: valid mbuf owned by self.
        unsafe { dpdk_sys::l4lab_pktmbuf_reset(self.as_ptr()) }
    }

    /// The port it was received on (or is marked with).
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Marks the port the packet belongs to (kept when it is passed between lcores).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: valid mbuf exclusively owned by self; plain integer field.
        unsafe { self.0.as_mut() }.port = port;
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// The RSS hash the NIC computed, when it gave one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
            // SAFETY: with RX_RSS_HASH set the PMD wrote the rss member of the union; all
            // members are plain integers, so any bit pattern is valid anyway.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// Sets the RSS hash and its flag (software RSS on virtual devices).
    #[inline]
    pub fn set_rss_hash(&mut self, hash: u32) {
        // SAFETY: valid mbuf exclusively owned by self; plain integer fields.
        let m = unsafe { self.0.as_mut() };
        m.__bindgen_anon_2.hash.rss = hash;
        m.ol_flags |= u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH);
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf and is the last to see it.
        unsafe { dpdk_sys::l4lab_pktmbuf_free(self.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("data_len", &self.data_len())
            .field("pkt_len", &self.pkt_len())
            .field("port", &self.port())
            .finish()
    }
}

/// Up to [`BURST_SIZE`] owned mbufs in a fixed array: what queues and rings fill and
/// drain. No allocation; dropping it frees what it still holds.
pub struct Burst {
    len: usize,
    bufs: [*mut dpdk_sys::rte_mbuf; BURST_SIZE],
}

// SAFETY: the burst owns its mbufs exactly like a collection of `Mbuf`s does.
unsafe impl Send for Burst {}

impl Default for Burst {
    fn default() -> Self {
        Burst::new()
    }
}

impl Burst {
    /// An empty burst.
    #[inline]
    pub const fn new() -> Burst {
        Burst {
            len: 0,
            bufs: [std::ptr::null_mut(); BURST_SIZE],
        }
    }

    /// Mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when it holds [`BURST_SIZE`] mbufs.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }

    /// Fills the free slots (up to `n` mbufs in all) from `pool` in one bulk call.
    /// All or nothing: on an empty pool nothing is added and `false` is returned.
    #[inline]
    pub fn alloc_bulk(&mut self, pool: &Mempool, n: usize) -> bool {
        let want = n.min(BURST_SIZE).saturating_sub(self.len);
        if want == 0 {
            return true;
        }
        // SAFETY: the free tail of `bufs` has room for `want` pointers; DPDK writes them
        // all or none (it returns non-zero and writes nothing on failure).
        let rc = unsafe {
            dpdk_sys::l4lab_pktmbuf_alloc_bulk(
                pool.as_ptr(),
                self.bufs.as_mut_ptr().add(self.len),
                want as u32,
            )
        };
        if rc == 0 {
            self.len += want;
            true
        } else {
            false
        }
    }

    /// Like [`Burst::alloc_bulk`], and every mbuf added holds `len` bytes of data (one
    /// segment, contents unspecified: write them through [`Mbuf::data_mut`]). Resetting
    /// and sizing happen in the same C call as the allocation, one call per burst, so a
    /// transmit loop need not [`Mbuf::append`] packet by packet. All or nothing: `false`
    /// when the pool is short, or when `len` does not fit the pool's data room.
    #[inline]
    pub fn alloc_bulk_len(&mut self, pool: &Mempool, n: usize, len: usize) -> bool {
        let want = n.min(BURST_SIZE).saturating_sub(self.len);
        if want == 0 {
            return true;
        }
        let Ok(len) = u16::try_from(len) else {
            return false;
        };
        // SAFETY: the free tail of `bufs` has room for `want` pointers; the shim writes them
        // all or none (non-zero return, nothing taken), and checks `len` against the
        // pool's data room so that every data slice stays inside its buffer.
        let rc = unsafe {
            dpdk_sys::l4lab_pktmbuf_alloc_bulk_len(
                pool.as_ptr(),
                self.bufs.as_mut_ptr().add(self.len),
                want as u32,
                len,
            )
        };
        if rc == 0 {
            self.len += want;
            true
        } else {
            false
        }
    }

    /// Adds an mbuf at the end, or hands it back when full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(mbuf);
        }
        self.bufs[self.len] = mbuf.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let ptr = std::mem::replace(&mut self.bufs[self.len], std::ptr::null_mut());
        // SAFETY: slots below the old len hold owned, non-null mbufs; this one is now
        // out of the burst, so ownership moves to the returned Mbuf.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(ptr)) })
    }

    /// The mbufs held, as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the layout of
        // *mut rte_mbuf, and the first len slots are non-null owned mbufs.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, as a mutable slice (to rewrite packets in place).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice; the exclusive borrow keeps the slice unique, and Mbufs
        // cannot be moved out of a slice, so every slot stays owned and non-null.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Keeps the mbufs for which `keep` returns true, in order; frees the others.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let mut kept = 0;
        for i in 0..self.len {
            let ptr = self.bufs[i];
            // SAFETY: slot i < len holds an owned non-null mbuf; we take it out here and
            // either put it back at `kept` or drop (free) it.
            let mut mbuf = unsafe { Mbuf::from_raw(NonNull::new_unchecked(ptr)) };
            if keep(&mut mbuf) {
                self.bufs[kept] = mbuf.into_raw().as_ptr();
                kept += 1;
            }
        }
        for slot in &mut self.bufs[kept..self.len] {
            *slot = std::ptr::null_mut();
        }
        self.len = kept;
    }

    /// Frees every mbuf held, in one bulk call.
    #[inline]
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: the first len slots are owned mbufs; after this call none is.
            unsafe { dpdk_sys::l4lab_pktmbuf_free_bulk(self.bufs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Moves every mbuf out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let len = std::mem::take(&mut self.len);
        self.bufs[..len].iter_mut().map(|slot| {
            let ptr = std::mem::replace(slot, std::ptr::null_mut());
            // SAFETY: slots below the old len held owned non-null mbufs; each is taken
            // exactly once and the burst no longer counts it.
            unsafe { Mbuf::from_raw(NonNull::new_unchecked(ptr)) }
        })
    }

    /// Pointer to the free tail and its length, for DPDK calls that fill a burst.
    #[inline]
    pub(crate) fn spare(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        // SAFETY: len <= BURST_SIZE, so the pointer is within or one past the array.
        (
            unsafe { self.bufs.as_mut_ptr().add(self.len) },
            BURST_SIZE - self.len,
        )
    }

    /// Records that DPDK wrote `n` owned mbufs into the free tail.
    ///
    /// # Safety
    ///
    /// The `n` slots after the current length must now hold owned, non-null mbufs.
    #[inline]
    pub(crate) unsafe fn filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST_SIZE);
        self.len += n;
    }

    /// Pointer to the held mbufs, for DPDK calls that take some from the front.
    #[inline]
    pub(crate) fn held(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        (self.bufs.as_mut_ptr(), self.len)
    }

    /// Records that DPDK took ownership of the first `n` mbufs; the rest move forward.
    ///
    /// # Safety
    ///
    /// `n <= len`, and DPDK must own the first `n` mbufs now.
    #[inline]
    pub(crate) unsafe fn consumed(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.bufs.copy_within(n..self.len, 0);
        self.len -= n;
        for slot in &mut self.bufs[self.len..self.len + n] {
            *slot = std::ptr::null_mut();
        }
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

impl fmt::Debug for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).finish()
    }
}
