//! The packet buffer the dataplane rewrites in place: a whole buffer with headroom and
//! tailroom, and the window `[head, head + len)` that holds the packet.
//!
//! The runtime builds a [`Frame`] from an mbuf's data room (`buf_addr`, `data_off`,
//! `data_len`) and writes [`Frame::head`] and [`Frame::len`] back after `process`.

/// Not enough headroom or tailroom for the requested change; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

/// A packet inside a larger buffer. Invariant: `head + len <= buf.len()`.
#[derive(Debug)]
pub struct Frame<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> Frame<'a> {
    /// A frame whose packet starts at `head` and is `len` bytes long; `None` if that
    /// window does not fit in `buf`.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Option<Frame<'a>> {
        let end = head.checked_add(len)?;
        (end <= buf.len()).then_some(Frame { buf, head, len })
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    /// The packet bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Offset of the first packet byte in the buffer (the headroom).
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    /// Length of the packet.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the packet is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free before the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Bytes free after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.head - self.len
    }

    /// Grows the packet by `n` bytes at the front (contents of the new bytes unspecified).
    pub fn prepend(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.head {
            return Err(NoRoom);
        }
        self.head -= n;
        self.len += n;
        Ok(())
    }

    /// Removes `n` bytes from the front (at most the whole packet).
    pub fn adj(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head += n;
        self.len -= n;
    }

    /// Grows the packet by `n` bytes at the end (contents unspecified).
    pub fn append(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.tailroom() {
            return Err(NoRoom);
        }
        self.len += n;
        Ok(())
    }

    /// Removes `n` bytes from the end (at most the whole packet).
    pub fn trim(&mut self, n: usize) {
        self.len -= n.min(self.len);
    }

    /// Sets the packet length to `len` if that is shorter (drops trailing padding).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Opens `n` bytes at offset `at` of the packet by moving the `at` leading bytes into
    /// the headroom; the payload after `at` is not copied. The new bytes keep whatever the
    /// buffer held (the caller writes them).
    pub fn insert_gap(&mut self, at: usize, n: usize) -> Result<(), NoRoom> {
        if at > self.len || n > self.head {
            return Err(NoRoom);
        }
        let old = self.head;
        self.buf.copy_within(old..old + at, old - n);
        self.head -= n;
        self.len += n;
        Ok(())
    }

    /// Removes `n` bytes at offset `at` by moving the `at` leading bytes forward.
    pub fn remove_gap(&mut self, at: usize, n: usize) -> Result<(), NoRoom> {
        if at.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(NoRoom);
        }
        let old = self.head;
        self.buf.copy_within(old..old + at, old + n);
        self.head += n;
        self.len -= n;
        Ok(())
    }
}

/// Receive metadata of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxMeta {
    /// Port the packet arrived on.
    pub port: u16,
    /// RX queue it arrived on.
    pub queue: u16,
    /// The NIC's RSS hash, if it delivered one.
    pub rss_hash: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_move_only_leading_bytes() {
        let mut buf = [0u8; 16];
        buf[4..10].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        let mut f = Frame::new(&mut buf, 4, 6).unwrap();
        f.insert_gap(2, 3).unwrap();
        assert_eq!(f.head(), 1);
        assert_eq!(f.len(), 9);
        assert_eq!(&f.data()[..2], &[1, 2]);
        assert_eq!(&f.data()[5..], &[3, 4, 5, 6]);
        f.remove_gap(2, 3).unwrap();
        assert_eq!(f.data(), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(f.insert_gap(2, 5), Err(NoRoom));
        assert_eq!(f.remove_gap(5, 2), Err(NoRoom));
        assert!(f.append(6).is_ok());
        assert_eq!(f.append(1), Err(NoRoom));
        f.trim(6);
        f.adj(1);
        assert_eq!(f.data(), &[2, 3, 4, 5, 6]);
        f.prepend(1).unwrap();
        assert_eq!(f.data(), &[1, 2, 3, 4, 5, 6]);
        assert!(Frame::new(&mut buf, 10, 7).is_none());
        assert!(Frame::new(&mut buf, usize::MAX, 7).is_none());
    }
}
