//! Capture file reader: libpcap (both byte orders, micro- and nanosecond) and pcapng.
//!
//! SKELETON: to be implemented.

use std::path::{Path, PathBuf};

/// One packet record as read from a capture file.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, seconds since the epoch.
    pub ts_sec: u64,
    /// Nanoseconds within the second (microsecond files are scaled up).
    pub ts_nsec: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// Link type (LINKTYPE_* number) of the interface this packet came from.
    pub link_type: u32,
    /// The captured bytes (`caplen` = `data.len()`).
    pub data: &'a [u8],
    /// Byte offset of this packet's record in the file.
    pub offset: u64,
    /// Byte offset just past this packet's record: a safe resume point.
    pub next_offset: u64,
}

/// What kind of capture file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap {
        nanosecond: bool,
        big_endian: bool,
        snaplen: u32,
        link_type: u32,
    },
    PcapNg,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a capture file: {reason}")]
    NotACapture { path: PathBuf, reason: String },
    #[error("{path}: truncated at byte offset {offset}: {reason}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: malformed at byte offset {offset}: {reason}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

pub struct CaptureReader {}

impl CaptureReader {
    pub fn open(_path: &Path) -> Result<Self, CaptureError> {
        todo!()
    }
    pub fn format(&self) -> CaptureFormat {
        todo!()
    }
    pub fn seek_to(&mut self, _offset: u64) -> Result<(), CaptureError> {
        todo!()
    }
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        todo!()
    }
}
