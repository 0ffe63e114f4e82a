//! `harness rss split`: a capture cut into per-queue captures, as a NIC's RSS would.
//!
//! Each frame goes to `reta[toeplitz(key, tuple) % reta size]`; non-IP frames and
//! frames whose type is not hashed go to queue 0; fragments are hashed on addresses
//! only. Order and timestamps are kept within each queue.

use std::path::{Path, PathBuf};

use crate::capture::{self, CaptureError, Frame};
use crate::packet;
use crate::rss::RssModel;

/// The queue a NIC would deliver a frame to.
pub fn queue_of(model: &RssModel, frame: &[u8]) -> u16 {
    match packet::rss_flow(frame) {
        Some(flow) => model.queue(&flow).1,
        None => 0,
    }
}

/// Splits frames into one list per queue (`model.reta` decides how many queues exist:
/// the highest entry + 1).
pub fn split(model: &RssModel, frames: &[Frame]) -> Vec<Vec<Frame>> {
    let queues = model
        .reta
        .entries()
        .iter()
        .copied()
        .max()
        .map_or(1, |q| usize::from(q) + 1);
    let mut out = vec![Vec::new(); queues];
    for frame in frames {
        let q = usize::from(queue_of(model, &frame.data));
        if let Some(list) = out.get_mut(q) {
            list.push(frame.clone());
        }
    }
    out
}

/// Reads `input`, writes `out_dir/q0.pcap`, `q1.pcap`, … (every queue, even empty ones);
/// returns each file with its packet count.
pub fn split_file(
    model: &RssModel,
    input: &Path,
    out_dir: &Path,
) -> Result<Vec<(PathBuf, usize)>, CaptureError> {
    let frames = capture::read(input)?;
    std::fs::create_dir_all(out_dir).map_err(|source| CaptureError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for (q, frames) in split(model, &frames).into_iter().enumerate() {
        let path = out_dir.join(format!("q{q}.pcap"));
        capture::write(&path, &frames)?;
        written.push((path, frames.len()));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::gen;
    use crate::packet::{L4Info, PacketInfo};
    use crate::rss::{HashTypes, RssKey};

    fn model(queues: u16) -> RssModel {
        RssModel::new(RssKey::microsoft(), HashTypes::ALL, 128, queues).unwrap()
    }

    #[test]
    fn flows_stay_on_one_queue_in_order() {
        let captures = gen::standard().unwrap();
        let tcp = &captures[0];
        let parts = split(&model(4), &tcp.frames);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), tcp.frames.len());
        assert!(
            parts.iter().all(|p| !p.is_empty()),
            "32 flows should reach every queue"
        );
        let mut flow_queue = HashMap::new();
        for (q, part) in parts.iter().enumerate() {
            assert!(part.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
            for f in part {
                let Ok(info) = PacketInfo::parse(&f.data) else {
                    continue;
                };
                let Some(net) = info.net else { continue };
                if let L4Info::Tcp(t) = net.l4 {
                    let key = (net.src, t.sport);
                    assert_eq!(*flow_queue.entry(key).or_insert(q), q, "{key:?}");
                }
            }
        }
    }

    #[test]
    fn non_ip_goes_to_queue_zero_and_fragments_hash_on_addresses() {
        let m = model(8);
        let captures = gen::standard().unwrap();
        let malformed = captures.iter().find(|c| c.name == "malformed").unwrap();
        let arp = malformed
            .frames
            .iter()
            .find(|f| f.data[12..14] == [0x08, 0x06])
            .unwrap();
        assert_eq!(queue_of(&m, &arp.data), 0);
        let fragments = captures.iter().find(|c| c.name == "fragments").unwrap();
        // The three fragments of one UDP datagram land on one queue.
        let udp_frags: Vec<u16> = fragments
            .frames
            .iter()
            .filter(|f| {
                // IPv4 (ethertype at 12), UDP (protocol at 14 + 9), MF or an offset.
                let d = &f.data;
                d[12..14] == [0x08, 0x00] && d[23] == 17 && (d[20] & 0x3f != 0 || d[21] != 0)
            })
            .map(|f| queue_of(&m, &f.data))
            .collect();
        assert!(udp_frags.len() >= 2, "{udp_frags:?}");
        assert!(udp_frags.windows(2).all(|w| w[0] == w[1]), "{udp_frags:?}");
    }

    #[test]
    fn split_file_writes_every_queue() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcap");
        let captures = gen::standard().unwrap();
        capture::write(&input, &captures[1].frames).unwrap();
        let out = dir.path().join("out");
        let written = split_file(&model(3), &input, &out).unwrap();
        assert_eq!(written.len(), 3);
        let total: usize = written.iter().map(|(_, n)| n).sum();
        assert_eq!(total, captures[1].frames.len());
        for (path, n) in written {
            assert_eq!(capture::read(&path).unwrap().len(), n);
        }
    }
}
