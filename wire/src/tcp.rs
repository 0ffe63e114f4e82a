//! TCP headers and options (RFC 9293, RFC 7323, RFC 2018).

use std::net::IpAddr;

use crate::checksum::{self, ChecksumCaps};
use crate::ethernet::{read_u16, write_u16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (high nibble), reserved bits and the flags.
    pub const FLAGS: Range<usize> = 12..14;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// The length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// The longest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

const FLAGS_MASK: u16 = 0x01ff;

/// The TCP flags, NS included. Combine with `|`, test with [`contains`](Self::contains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: Flags = Flags(0x002);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x004);
    /// Push.
    pub const PSH: Flags = Flags(0x008);
    /// The acknowledgment number is valid.
    pub const ACK: Flags = Flags(0x010);
    /// The urgent pointer is valid.
    pub const URG: Flags = Flags(0x020);
    /// ECN echo.
    pub const ECE: Flags = Flags(0x040);
    /// Congestion window reduced.
    pub const CWR: Flags = Flags(0x080);
    /// ECN nonce (historic).
    pub const NS: Flags = Flags(0x100);

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// A view of a TCP segment. The buffer must be exactly the segment (the IP payload):
/// the checksum covers all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the fixed header fits, that the data offset is at least 5, and that
    /// the header with its options fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// The acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    fn flags_word(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS.start)
    }

    /// The data offset field, in 32-bit words.
    pub fn data_offset(&self) -> u8 {
        (self.flags_word() >> 12) as u8
    }

    /// The header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// All flags.
    pub fn flags(&self) -> Flags {
        Flags(self.flags_word() & FLAGS_MASK)
    }

    /// FIN.
    pub fn fin(&self) -> bool {
        self.flags().contains(Flags::FIN)
    }

    /// SYN.
    pub fn syn(&self) -> bool {
        self.flags().contains(Flags::SYN)
    }

    /// RST.
    pub fn rst(&self) -> bool {
        self.flags().contains(Flags::RST)
    }

    /// PSH.
    pub fn psh(&self) -> bool {
        self.flags().contains(Flags::PSH)
    }

    /// ACK.
    pub fn ack(&self) -> bool {
        self.flags().contains(Flags::ACK)
    }

    /// URG.
    pub fn urg(&self) -> bool {
        self.flags().contains(Flags::URG)
    }

    /// The window field (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The raw option bytes, padding included.
    pub fn options(&self) -> &[u8] {
        let end = self.header_len().max(HEADER_LEN);
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// The options, parsed one by one. Stops after End of Option List or the first
    /// error.
    pub fn options_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.options())
    }

    /// The MSS option's value, if present; an error if the options before it are
    /// malformed.
    pub fn mss(&self) -> Result<Option<u16>> {
        Ok(find_mss(self.options())?.map(|(_, mss)| mss))
    }

    /// The payload after the header and its options.
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len().max(HEADER_LEN);
        &self.buffer.as_ref()[start..]
    }

    /// The length of the segment as it enters the pseudo-header: the whole buffer.
    pub fn segment_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// True when the checksum is correct for these pseudo-header addresses (both of one
    /// family).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::TCP, data.len() as u32);
        checksum::combine(&[pseudo, checksum::data(data)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port, leaving the checksum alone.
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    /// Sets the destination port, leaving the checksum alone.
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, ack: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&ack.to_be_bytes());
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60), keeping the flags.
    pub fn set_header_len(&mut self, len: usize) {
        let word = (self.flags_word() & 0x0fff) | (((len / 4) as u16 & 0x0f) << 12);
        write_u16(self.buffer.as_mut(), field::FLAGS.start, word);
    }

    /// Sets all flags at once, keeping the data offset; the reserved bits are cleared.
    pub fn set_flags(&mut self, flags: Flags) {
        let word = (self.flags_word() & 0xf000) | (flags.0 & FLAGS_MASK);
        write_u16(self.buffer.as_mut(), field::FLAGS.start, word);
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, window: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE.start, window);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, urgent: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, urgent);
    }

    /// Computes the checksum over the pseudo-header and the whole buffer and writes it.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::TCP, data.len() as u32);
        let sum = checksum::combine(&[pseudo, checksum::data(data)]);
        self.set_checksum(!sum);
    }

    /// Where the port computes TCP checksums, writes only the pseudo-header sum for
    /// the NIC to finish; else computes the checksum in full.
    pub fn fill_checksum_offload(&mut self, caps: ChecksumCaps, src: IpAddr, dst: IpAddr) {
        if caps.tcp {
            let len = self.segment_len() as u32;
            self.set_checksum(checksum::pseudo_header(src, dst, IpProtocol::TCP, len));
        } else {
            self.fill_checksum(src, dst);
        }
    }

    /// Replaces the source port and updates the checksum incrementally (RFC 1624).
    pub fn rewrite_src_port(&mut self, port: u16) {
        let cks = checksum::update_u16(self.checksum(), self.src_port(), port);
        self.set_src_port(port);
        self.set_checksum(cks);
    }

    /// Replaces the destination port and updates the checksum incrementally.
    pub fn rewrite_dst_port(&mut self, port: u16) {
        let cks = checksum::update_u16(self.checksum(), self.dst_port(), port);
        self.set_dst_port(port);
        self.set_checksum(cks);
    }

    /// Updates the checksum for an address of the pseudo-header that the IP layer
    /// rewrote from `old` to `new`.
    pub fn update_pseudo_header_addr(&mut self, old: IpAddr, new: IpAddr) {
        let cks = checksum::update_ip_addr(self.checksum(), old, new);
        self.set_checksum(cks);
    }

    /// Writes `mss` into the MSS option in place, leaving the checksum alone. Returns
    /// the old value, or `None` (writing nothing) when there is no MSS option.
    pub fn set_mss(&mut self, mss: u16) -> Result<Option<u16>> {
        let Some((at, old)) = find_mss(self.options())? else {
            return Ok(None);
        };
        write_u16(self.buffer.as_mut(), HEADER_LEN + at, mss);
        Ok(Some(old))
    }

    /// Lowers the MSS option to `max` if it is above, updating the checksum
    /// incrementally (MSS clamping). Returns true when it changed the segment.
    pub fn clamp_mss(&mut self, max: u16) -> Result<bool> {
        let Some((at, old)) = find_mss(self.options())? else {
            return Ok(false);
        };
        if old <= max {
            return Ok(false);
        }
        let offset = HEADER_LEN + at;
        // A word at an odd offset adds its bytes swapped to the sum (RFC 1071 2(B)).
        let cks = if offset % 2 == 0 {
            checksum::update_u16(self.checksum(), old, max)
        } else {
            checksum::update_u16(self.checksum(), old.swap_bytes(), max.swap_bytes())
        };
        write_u16(self.buffer.as_mut(), offset, max);
        self.set_checksum(cks);
        Ok(true)
    }

    /// The raw option bytes, mutable (write them with [`TcpOption::emit`]).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len().max(HEADER_LEN);
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len().max(HEADER_LEN);
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The offset of the MSS value within `options` and the value.
fn find_mss(options: &[u8]) -> Result<Option<(usize, u16)>> {
    let mut iter = OptionIter::new(options);
    while let Some(option) = iter.next() {
        if let TcpOption::MaxSegmentSize(mss) = option? {
            // The value follows the kind and length bytes of the option just parsed.
            return Ok(Some((iter.last_start + 2, mss)));
        }
    }
    Ok(None)
}

mod option_kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// Up to four SACK blocks (left edge, right edge), stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SackBlocks {
    blocks: [(u32, u32); 4],
    count: u8,
}

impl SackBlocks {
    /// The blocks, or `None` for none or more than four.
    pub fn new(blocks: &[(u32, u32)]) -> Option<SackBlocks> {
        if blocks.is_empty() || blocks.len() > 4 {
            return None;
        }
        let mut out = SackBlocks::default();
        out.blocks[..blocks.len()].copy_from_slice(blocks);
        out.count = blocks.len() as u8;
        Some(out)
    }

    /// The blocks present.
    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.blocks[..usize::from(self.count)]
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpOption {
    /// Kind 0: End of Option List; what follows is padding.
    EndOfList,
    /// Kind 1: No-Operation (padding between options).
    NoOperation,
    /// Kind 2: Maximum Segment Size.
    MaxSegmentSize(u16),
    /// Kind 3: Window Scale shift count.
    WindowScale(u8),
    /// Kind 4: SACK Permitted.
    SackPermitted,
    /// Kind 5: SACK blocks.
    SackBlocks(SackBlocks),
    /// Kind 8: Timestamps.
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// Any other kind, with its total length (kind and length bytes included).
    Unknown {
        /// The option kind.
        kind: u8,
        /// The option length byte.
        len: u8,
    },
}

impl TcpOption {
    /// Parses one option at the start of `data`; returns it and the bytes it takes.
    pub fn parse(data: &[u8]) -> Result<(TcpOption, usize)> {
        let Some(&kind) = data.first() else {
            return Err(Error::Truncated);
        };
        match kind {
            option_kind::END => return Ok((TcpOption::EndOfList, 1)),
            option_kind::NOP => return Ok((TcpOption::NoOperation, 1)),
            _ => {}
        }
        let Some(&len) = data.get(1) else {
            return Err(Error::Truncated);
        };
        let len_usize = usize::from(len);
        if len_usize < 2 {
            return Err(Error::Malformed);
        }
        let Some(body) = data.get(2..len_usize) else {
            return Err(Error::Truncated);
        };
        let option = match (kind, body.len()) {
            (option_kind::MSS, 2) => TcpOption::MaxSegmentSize(read_u16(body, 0)),
            (option_kind::WINDOW_SCALE, 1) => TcpOption::WindowScale(body[0]),
            (option_kind::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
            (option_kind::SACK, n) if n % 8 == 0 && (8..=32).contains(&n) => {
                let mut sack = SackBlocks::default();
                for (slot, chunk) in sack.blocks.iter_mut().zip(body.chunks_exact(8)) {
                    *slot = (read_u32(chunk, 0), read_u32(chunk, 4));
                }
                sack.count = (n / 8) as u8;
                TcpOption::SackBlocks(sack)
            }
            (option_kind::TIMESTAMPS, 8) => TcpOption::Timestamps {
                tsval: read_u32(body, 0),
                tsecr: read_u32(body, 4),
            },
            (
                option_kind::MSS
                | option_kind::WINDOW_SCALE
                | option_kind::SACK_PERMITTED
                | option_kind::SACK
                | option_kind::TIMESTAMPS,
                _,
            ) => return Err(Error::Malformed),
            _ => TcpOption::Unknown { kind, len },
        };
        Ok((option, len_usize))
    }

    /// The bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackBlocks(s) => 2 + 8 * s.as_slice().len(),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::Unknown { len, .. } => usize::from(*len).max(2),
        }
    }

    /// Writes the option at the start of `buf` and returns its length. An
    /// [`Unknown`](TcpOption::Unknown) option gets zero bytes as its data.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(Error::Truncated);
        };
        let kind = match self {
            TcpOption::EndOfList => {
                out[0] = option_kind::END;
                return Ok(1);
            }
            TcpOption::NoOperation => {
                out[0] = option_kind::NOP;
                return Ok(1);
            }
            TcpOption::MaxSegmentSize(mss) => {
                out[2..4].copy_from_slice(&mss.to_be_bytes());
                option_kind::MSS
            }
            TcpOption::WindowScale(shift) => {
                out[2] = *shift;
                option_kind::WINDOW_SCALE
            }
            TcpOption::SackPermitted => option_kind::SACK_PERMITTED,
            TcpOption::SackBlocks(sack) => {
                for (chunk, (left, right)) in out[2..].chunks_exact_mut(8).zip(sack.as_slice()) {
                    chunk[..4].copy_from_slice(&left.to_be_bytes());
                    chunk[4..].copy_from_slice(&right.to_be_bytes());
                }
                option_kind::SACK
            }
            TcpOption::Timestamps { tsval, tsecr } => {
                out[2..6].copy_from_slice(&tsval.to_be_bytes());
                out[6..10].copy_from_slice(&tsecr.to_be_bytes());
                option_kind::TIMESTAMPS
            }
            TcpOption::Unknown { kind, .. } => {
                out[2..].fill(0);
                *kind
            }
        };
        out[0] = kind;
        out[1] = len as u8;
        Ok(len)
    }
}

/// An iterator over TCP options. Yields `Err` once and stops on malformed or
/// truncated options; stops after [`TcpOption::EndOfList`].
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    data: &'a [u8],
    pos: usize,
    last_start: usize,
    done: bool,
}

impl<'a> OptionIter<'a> {
    /// Iterates over raw option bytes (the TCP header from byte 20 to the data offset).
    pub fn new(data: &'a [u8]) -> OptionIter<'a> {
        OptionIter {
            data,
            pos: 0,
            last_start: 0,
            done: false,
        }
    }

    /// The offset, within the option bytes, of the option yielded last.
    pub fn last_offset(&self) -> usize {
        self.last_start
    }
}

impl Iterator for OptionIter<'_> {
    type Item = Result<TcpOption>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        match TcpOption::parse(rest) {
            Ok((option, len)) => {
                self.last_start = self.pos;
                self.pos += len;
                if option == TcpOption::EndOfList {
                    self.done = true;
                }
                Some(Ok(option))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for OptionIter<'_> {}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    /// The TCP part of a Linux SYN from 192.168.1.10:50082 to 10.0.0.80:80.
    #[rustfmt::skip]
    pub(crate) static SYN_SEGMENT: [u8; 40] = [
        // source port 50082, destination port 80
        0xc3, 0xa2, 0x00, 0x50,
        // sequence number 1000000000
        0x3b, 0x9a, 0xca, 0x00,
        // acknowledgment number 0
        0x00, 0x00, 0x00, 0x00,
        // data offset 10, flags SYN, window 64240
        0xa0, 0x02, 0xfa, 0xf0,
        // checksum, urgent pointer
        0xc5, 0xb9, 0x00, 0x00,
        // MSS 1460
        0x02, 0x04, 0x05, 0xb4,
        // SACK permitted, timestamps: kind, length
        0x04, 0x02, 0x08, 0x0a,
        // TSval 2355618
        0x00, 0x23, 0xf1, 0xa2,
        // TSecr 0
        0x00, 0x00, 0x00, 0x00,
        // NOP, window scale 7
        0x01, 0x03, 0x03, 0x07,
    ];

    const SYN_SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const SYN_DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 80);

    /// An ACK carrying SACK blocks, an unknown option and two payload bytes; the MSS
    /// value sits at an odd offset after a single NOP (checksum not filled in).
    #[rustfmt::skip]
    pub(crate) static ODD_OPTIONS: [u8; 50] = [
        // source port 80, destination port 50082
        0x00, 0x50, 0xc3, 0xa2,
        // sequence number 1
        0x00, 0x00, 0x00, 0x01,
        // acknowledgment number
        0x3b, 0x9a, 0xca, 0x01,
        // data offset 12, flags NS|ACK|PSH, window 502
        0xc1, 0x18, 0x01, 0xf6,
        // checksum, urgent pointer 7
        0x00, 0x00, 0x00, 0x07,
        // NOP, MSS kind, length, value high byte (odd offset 23)
        0x01, 0x02, 0x04, 0x05,
        // MSS value low byte (1400), SACK kind, length 18, left edge 1 byte 0
        0x78, 0x05, 0x12, 0x00,
        // left edge 1 = 0x10, right edge 1 byte 0
        0x00, 0x00, 0x10, 0x00,
        // right edge 1 = 0x20, left edge 2 byte 0
        0x00, 0x00, 0x20, 0x00,
        // left edge 2 = 0x30, right edge 2 byte 0
        0x00, 0x00, 0x30, 0x00,
        // right edge 2 = 0x40, unknown kind 30 (MPTCP)
        0x00, 0x00, 0x40, 0x1e,
        // length 2, EOL, padding
        0x02, 0x00, 0x00, 0x00,
        // payload
        0xab, 0xcd,
    ];

    #[test]
    fn parse_syn() {
        let p = Packet::new_checked(&SYN_SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 50082);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1_000_000_000);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.data_offset(), 10);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), Flags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh() && !p.urg());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0xc5b9);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options().len(), 20);
        assert_eq!(p.payload(), &[] as &[u8]);
        assert!(p.verify_checksum(SYN_SRC.into(), SYN_DST.into()));
        assert!(!p.verify_checksum(SYN_DST.into(), Ipv4Addr::new(10, 0, 0, 81).into()));
        let options: Vec<_> = p.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(
            options,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps {
                    tsval: 2355618,
                    tsecr: 0
                },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
        assert_eq!(p.mss(), Ok(Some(1460)));
    }

    #[test]
    fn parse_odd_options() {
        let p = Packet::new_checked(&ODD_OPTIONS[..]).unwrap();
        assert_eq!(p.header_len(), 48);
        assert_eq!(p.flags(), Flags::ACK | Flags::PSH | Flags::NS);
        assert!(p.flags().contains(Flags::NS));
        assert_eq!(p.urgent_at(), 7);
        assert_eq!(p.payload(), &[0xab, 0xcd]);
        let options: Vec<_> = p.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(
            options,
            [
                TcpOption::NoOperation,
                TcpOption::MaxSegmentSize(1400),
                TcpOption::SackBlocks(SackBlocks::new(&[(0x10, 0x20), (0x30, 0x40)]).unwrap()),
                TcpOption::Unknown { kind: 30, len: 2 },
                TcpOption::EndOfList,
            ]
        );
    }

    #[test]
    fn emit_syn() {
        let mut buf = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(50082);
        p.set_dst_port(80);
        p.set_seq_number(1_000_000_000);
        p.set_ack_number(0);
        p.set_header_len(40);
        p.set_flags(Flags::SYN);
        p.set_window_len(64240);
        p.set_urgent_at(0);
        let mut at = 0;
        for option in [
            TcpOption::MaxSegmentSize(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps {
                tsval: 2355618,
                tsecr: 0,
            },
            TcpOption::NoOperation,
            TcpOption::WindowScale(7),
        ] {
            at += option.emit(&mut p.options_mut()[at..]).unwrap();
        }
        assert_eq!(at, 20);
        p.fill_checksum(SYN_SRC.into(), SYN_DST.into());
        assert_eq!(buf, SYN_SEGMENT);
    }

    #[test]
    fn emit_roundtrip_every_kind() {
        let options = [
            TcpOption::EndOfList,
            TcpOption::NoOperation,
            TcpOption::MaxSegmentSize(9000),
            TcpOption::WindowScale(14),
            TcpOption::SackPermitted,
            TcpOption::SackBlocks(SackBlocks::new(&[(1, 2), (3, 4), (5, 6), (7, 8)]).unwrap()),
            TcpOption::Timestamps {
                tsval: 0xdead_beef,
                tsecr: 1,
            },
            TcpOption::Unknown { kind: 254, len: 6 },
        ];
        for option in options {
            let mut buf = [0xffu8; 40];
            let n = option.emit(&mut buf).unwrap();
            assert_eq!(n, option.buffer_len());
            assert_eq!(TcpOption::parse(&buf[..n]), Ok((option, n)));
            assert_eq!(option.emit(&mut buf[..n - 1]), Err(Error::Truncated));
        }
        assert_eq!(SackBlocks::new(&[]), None);
        assert_eq!(SackBlocks::new(&[(0, 0); 5]), None);
    }

    #[test]
    fn bad_options_error_without_panicking() {
        for (bytes, err) in [
            (&[2u8][..], Error::Truncated),
            (&[2, 4, 5][..], Error::Truncated),
            (&[2, 1][..], Error::Malformed),
            (&[2, 0][..], Error::Malformed),
            (&[2, 3, 5][..], Error::Malformed),
            (&[3, 4, 1, 1][..], Error::Malformed),
            (&[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], Error::Malformed),
            (&[5, 2][..], Error::Malformed),
            (&[8, 9, 0, 0, 0, 0, 0, 0, 0][..], Error::Malformed),
            (&[99, 40, 0][..], Error::Truncated),
        ] {
            let mut iter = OptionIter::new(bytes);
            assert_eq!(iter.next(), Some(Err(err)), "{bytes:?}");
            assert_eq!(iter.next(), None);
        }
    }

    #[test]
    fn set_and_clamp_mss() {
        let mut buf = SYN_SEGMENT;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        assert_eq!(p.clamp_mss(1500), Ok(false));
        assert_eq!(p.clamp_mss(1360), Ok(true));
        assert_eq!(p.mss(), Ok(Some(1360)));
        assert!(p.verify_checksum(SYN_SRC.into(), SYN_DST.into()));
        assert_eq!(p.set_mss(1200), Ok(Some(1360)));
        assert_eq!(&buf[20..24], &[0x02, 0x04, 0x04, 0xb0]);

        // Odd offset: fill a valid checksum first, then clamp and verify.
        let mut buf = ODD_OPTIONS;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum(SYN_DST.into(), SYN_SRC.into());
        assert_eq!(p.clamp_mss(1300), Ok(true));
        assert_eq!(p.mss(), Ok(Some(1300)));
        assert!(p.verify_checksum(SYN_DST.into(), SYN_SRC.into()));

        // No MSS option.
        let mut buf = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_header_len(20);
        assert_eq!(p.set_mss(1), Ok(None));
        assert_eq!(p.clamp_mss(1), Ok(false));
    }

    #[test]
    fn offload_writes_pseudo_header_sum() {
        let mut buf = SYN_SEGMENT;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum_offload(ChecksumCaps::ALL, SYN_SRC.into(), SYN_DST.into());
        assert_eq!(
            p.checksum(),
            checksum::pseudo_header_v4(SYN_SRC, SYN_DST, IpProtocol::TCP, 40)
        );
        p.fill_checksum_offload(ChecksumCaps::NONE, SYN_SRC.into(), SYN_DST.into());
        assert_eq!(p.checksum(), 0xc5b9);
    }

    #[test]
    fn rejects_bad_data_offset() {
        let mut buf = SYN_SEGMENT;
        buf[12] = 0x40;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
        buf[12] = 0xf0;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn every_prefix() {
        for fixture in [&SYN_SEGMENT[..], &ODD_OPTIONS[..]] {
            let header_len = usize::from(fixture[12] >> 4) * 4;
            for n in 0..fixture.len() {
                match Packet::new_checked(&fixture[..n]) {
                    Ok(p) => {
                        assert!(n >= header_len);
                        exercise(&p);
                    }
                    Err(e) => {
                        assert!(n < header_len);
                        assert_eq!(e, Error::Truncated);
                    }
                }
                // Option bytes cut anywhere still iterate without panicking.
                let options = &fixture[HEADER_LEN.min(n)..header_len.min(n)];
                OptionIter::new(options).for_each(drop);
            }
        }
    }

    pub(crate) fn exercise(p: &Packet<&[u8]>) {
        let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
        let _ = (
            p.data_offset(),
            p.header_len(),
            p.flags(),
            p.fin(),
            p.syn(),
            p.rst(),
        );
        let _ = (
            p.psh(),
            p.ack(),
            p.urg(),
            p.window_len(),
            p.checksum(),
            p.urgent_at(),
        );
        let _ = (p.options(), p.mss(), p.payload(), p.segment_len());
        let _ = p.verify_checksum(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::BROADCAST.into());
        let _ = p.verify_checksum(Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into());
        for option in p.options_iter().flatten() {
            let mut buf = [0u8; 64];
            let _ = option.emit(&mut buf);
        }
    }

    pub(crate) fn exercise_mut(bytes: &mut [u8]) {
        let mut p = Packet::new_unchecked(bytes);
        let _ = p.clamp_mss(536);
        let _ = p.set_mss(1000);
        p.rewrite_src_port(1);
        p.rewrite_dst_port(2);
        p.update_pseudo_header_addr(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::UNSPECIFIED.into());
        let _ = p.options_mut().len();
        let _ = p.payload_mut().len();
        p.fill_checksum(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::BROADCAST.into());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                exercise(&p);
                exercise_mut(&mut bytes);
            }
        }

        #[test]
        fn arbitrary_options_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut seen = 0;
            for option in OptionIter::new(&bytes) {
                seen += 1;
                if let Ok(option) = option {
                    let mut buf = [0u8; 40];
                    let n = option.emit(&mut buf).unwrap();
                    // Every parsed option re-parses to itself.
                    prop_assert_eq!(TcpOption::parse(&buf[..n]).unwrap().0, option);
                }
            }
            prop_assert!(seen <= bytes.len());
        }

        #[test]
        fn clamp_keeps_checksum_valid(
            nops in 0usize..4,
            mss in any::<u16>(),
            max in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..9),
        ) {
            let mut buf = [0u8; 60];
            let mut len = 20 + nops + 4;
            len = len.div_ceil(4) * 4;
            let total = len + payload.len();
            let mut p = Packet::new_unchecked(&mut buf[..total]);
            p.set_header_len(len);
            p.set_flags(Flags::SYN);
            let opts = p.options_mut();
            opts[..nops].fill(1);
            TcpOption::MaxSegmentSize(mss).emit(&mut opts[nops..]).unwrap();
            p.payload_mut().copy_from_slice(&payload);
            let (s, d) = (IpAddr::from(SYN_SRC), IpAddr::from(SYN_DST));
            p.fill_checksum(s, d);
            let changed = p.clamp_mss(max).unwrap();
            prop_assert_eq!(changed, mss > max);
            prop_assert_eq!(p.mss().unwrap(), Some(mss.min(max)));
            prop_assert!(p.verify_checksum(s, d));
        }
    }
}
