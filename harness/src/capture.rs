//! Reading and writing classic pcap files (Ethernet link type) with `pcap-file`.
//!
//! Files are written little-endian with microsecond timestamps and a 65535-byte snap
//! length, whatever the host, so that generated captures are byte-identical everywhere.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture timestamp since the Unix epoch.
    pub timestamp: Duration,
    /// The frame's bytes (Ethernet).
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame.
    pub fn new(timestamp: Duration, data: Vec<u8>) -> Self {
        Self { timestamp, data }
    }
}

/// A capture that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Opening or creating the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a classic pcap (pcapng is not read yet), or is damaged.
    #[error("{path}: not a readable pcap file ({message}); convert pcapng with `editcap -F pcap`")]
    Format {
        /// The file.
        path: PathBuf,
        /// What pcap-file reported.
        message: String,
    },
    /// The capture's link type is not Ethernet.
    #[error("{path}: link type {link} is not Ethernet; only Ethernet captures are supported")]
    LinkType {
        /// The file.
        path: PathBuf,
        /// The link type found.
        link: String,
    },
}

/// The header written on every capture.
pub fn header() -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    }
}

/// Reads every frame of a pcap file.
pub fn read(path: &Path) -> Result<Vec<Frame>, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_from(BufReader::new(file), path)
}

/// Reads every frame of a pcap stream; `path` names it in errors.
pub fn read_from<R: Read>(reader: R, path: &Path) -> Result<Vec<Frame>, CaptureError> {
    let format = |e: pcap_file::PcapError| CaptureError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut reader = PcapReader::new(reader).map_err(format)?;
    let link = reader.header().datalink;
    if link != DataLink::ETHERNET {
        return Err(CaptureError::LinkType {
            path: path.to_owned(),
            link: format!("{link:?}"),
        });
    }
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(format)?;
        frames.push(Frame::new(packet.timestamp, packet.data.into_owned()));
    }
    Ok(frames)
}

/// Writes frames to a pcap file, replacing it.
pub fn write(path: &Path, frames: &[Frame]) -> Result<(), CaptureError> {
    let io = |source| CaptureError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::new(file);
    write_to(&mut out, frames, path)?;
    out.flush().map_err(io)
}

/// Writes frames as a pcap stream; `path` names it in errors.
pub fn write_to<W: Write>(writer: W, frames: &[Frame], path: &Path) -> Result<(), CaptureError> {
    let format = |e: pcap_file::PcapError| CaptureError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut writer = PcapWriter::with_header(writer, header()).map_err(format)?;
    for frame in frames {
        let len = u32::try_from(frame.data.len()).map_err(|_| CaptureError::Format {
            path: path.to_owned(),
            message: format!("a frame of {} bytes is too long for pcap", frame.data.len()),
        })?;
        writer
            .write_packet(&PcapPacket::new(frame.timestamp, len, &frame.data))
            .map_err(format)?;
    }
    Ok(())
}

/// The bytes of a pcap file holding `frames`.
pub fn to_bytes(frames: &[Frame]) -> Result<Vec<u8>, CaptureError> {
    let mut out = Vec::new();
    write_to(&mut out, frames, Path::new("<memory>"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let frames = vec![
            Frame::new(Duration::new(1_700_000_000, 1_000), vec![1, 2, 3]),
            Frame::new(Duration::new(1_700_000_001, 999_000), vec![4; 60]),
        ];
        let bytes = to_bytes(&frames).unwrap();
        let back = read_from(&bytes[..], Path::new("m")).unwrap();
        assert_eq!(back, frames);
    }

    #[test]
    fn garbage_is_a_format_error() {
        let e = read_from(&b"not a pcap at all"[..], Path::new("g.pcap")).unwrap_err();
        assert!(matches!(e, CaptureError::Format { .. }), "{e}");
        assert!(e.to_string().starts_with("g.pcap"));
    }
}
