//! TOA ("TCP option address", DPVS/Alibaba): the client's address carried to the real
//! server in TCP option kind 254 in FULLNAT, since the server only sees the local
//! address.
//!
//! Layout, right after the 20-byte TCP header: kind 254, length 8 (IPv4 client) or 20
//! (IPv6 client), the client port (network order), the client address. If the options
//! would pass 40 bytes, NOPs and an old TOA are dropped; if that is not enough, the
//! segment is forwarded without TOA (and the skip counted by the caller).

use std::net::IpAddr;

use crate::dataplane::frame::Frame;
use crate::dataplane::parse::{rd16, wr, wr16, L3};
use crate::dataplane::verdict::DropReason;

/// TCP option kind of TOA.
pub const TOA_KIND: u8 = 254;
/// TOA length for an IPv4 client.
pub const TOA_LEN_V4: usize = 8;
/// TOA length for an IPv6 client.
pub const TOA_LEN_V6: usize = 20;
/// Most option bytes a TCP header holds.
pub const MAX_OPTIONS: usize = 40;

/// TOA length for a client address.
pub fn toa_len(client: IpAddr) -> usize {
    match client {
        IpAddr::V4(_) => TOA_LEN_V4,
        IpAddr::V6(_) => TOA_LEN_V6,
    }
}

/// Outcome of [`insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Inserted; the IP length, TCP data offset were fixed; `grow` bytes were added.
    Yes {
        /// Bytes added to the packet (negative when NOPs were dropped to make room).
        grow: isize,
    },
    /// The options would pass 40 bytes even without NOPs: forwarded without TOA.
    Skipped,
}

/// Copies `opts` without NOPs and old TOA options into `out`; returns the length, or
/// `None` if the list overruns (a length byte below 2 or past the end).
fn compact(opts: &[u8], out: &mut [u8; MAX_OPTIONS]) -> Option<usize> {
    let mut i = 0;
    let mut n = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind != TOA_KIND {
                    out.get_mut(n..n + len)?.copy_from_slice(&opts[i..i + len]);
                    n += len;
                }
                i += len;
            }
        }
    }
    Some(n)
}

/// Inserts TOA for `client:cport` into the TCP segment at `l3.l4` (header length
/// `hdr_len`), fixing the IP length and TCP data offset; the caller recomputes the TCP
/// and IPv4 checksums. Returns an error for an overrunning option list or no headroom.
pub fn insert(
    f: &mut Frame<'_>,
    l3: &L3,
    hdr_len: usize,
    client: IpAddr,
    cport: u16,
) -> Result<Inserted, DropReason> {
    let tl = toa_len(client);
    let opt_len = hdr_len - 20;
    let at = l3.l4 + 20;
    let mut toa = [0u8; TOA_LEN_V6];
    toa[0] = TOA_KIND;
    toa[1] = tl as u8;
    toa[2..4].copy_from_slice(&cport.to_be_bytes());
    match client {
        IpAddr::V4(a) => toa[4..8].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => toa[4..20].copy_from_slice(&a.octets()),
    }
    let new_opt_len;
    if opt_len + tl <= MAX_OPTIONS {
        f.insert_gap(at, tl).map_err(|_| DropReason::TxNoRoom)?;
        wr(f.data_mut(), at, &toa[..tl]);
        new_opt_len = opt_len + tl;
    } else {
        let mut kept = [0u8; MAX_OPTIONS];
        let opts = f
            .data()
            .get(at..at + opt_len)
            .ok_or(DropReason::Truncated)?;
        let n = compact(opts, &mut kept).ok_or(DropReason::BadTcpOptions)?;
        let padded = (n + tl).div_ceil(4) * 4;
        if padded > MAX_OPTIONS {
            return Ok(Inserted::Skipped);
        }
        if padded > opt_len {
            f.insert_gap(at, padded - opt_len)
                .map_err(|_| DropReason::TxNoRoom)?;
        } else if padded < opt_len {
            f.remove_gap(at, opt_len - padded)
                .map_err(|_| DropReason::Truncated)?;
        }
        let d = f.data_mut();
        wr(d, at, &toa[..tl]);
        wr(d, at + tl, &kept[..n]);
        for i in at + tl + n..at + padded {
            if let Some(b) = d.get_mut(i) {
                *b = 1;
            }
        }
        new_opt_len = padded;
    }
    let grow = new_opt_len as isize - opt_len as isize;
    let d = f.data_mut();
    // The gap was opened inside the TCP header, after the IP header, so the IP header
    // and the first 20 TCP bytes are still at their offsets.
    let doff = ((20 + new_opt_len) / 4) as u8;
    if let Some(b) = d.get_mut(l3.l4 + 12) {
        *b = (doff << 4) | (*b & 0x0f);
    }
    if l3.v6 {
        let plen = rd16(d, l3.l3 + 4) as isize + grow;
        wr16(d, l3.l3 + 4, plen as u16);
    } else {
        let tot = rd16(d, l3.l3 + 2) as isize + grow;
        wr16(d, l3.l3 + 2, tot as u16);
    }
    Ok(Inserted::Yes { grow })
}

/// Finds the MSS option in `opts`; `Err` if the list overruns.
pub fn find_mss(opts: &[u8]) -> Result<Option<(usize, u16)>, DropReason> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1).ok_or(DropReason::BadTcpOptions)?);
                if len < 2 || i + len > opts.len() {
                    return Err(DropReason::BadTcpOptions);
                }
                if kind == 2 && len == 4 {
                    return Ok(Some((i, rd16(opts, i + 2))));
                }
                i += len;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_drops_nops_and_old_toa() {
        let opts = [1, 1, 2, 4, 5, 0xb4, 254, 8, 0, 80, 10, 0, 0, 1, 1, 4, 2];
        let mut out = [0u8; MAX_OPTIONS];
        let n = compact(&opts, &mut out).unwrap();
        assert_eq!(&out[..n], &[2, 4, 5, 0xb4, 4, 2]);
        assert_eq!(compact(&[2, 1], &mut out), None);
        assert_eq!(compact(&[2, 9, 0], &mut out), None);
    }

    #[test]
    fn mss_found_or_malformed() {
        assert_eq!(find_mss(&[1, 2, 4, 5, 0xb4]), Ok(Some((1, 1460))));
        assert_eq!(find_mss(&[1, 1, 0, 2, 4]), Ok(None));
        assert_eq!(find_mss(&[3, 0]), Err(DropReason::BadTcpOptions));
    }
}
