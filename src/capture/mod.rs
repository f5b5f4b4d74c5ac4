//! Capture: where packets come from.
//!
//! Owns reading capture files (`reader`), decoding link, network and transport
//! headers into a borrowed summary (`decode`), and finding capture files in a
//! Honeywall `/var/log/pcap` tree (`layout`).
//! Does no writing and knows nothing of flows, segments or the mirror: it reads
//! the bytes it is given and never panics on them.

pub mod decode;
pub mod input;
pub mod layout;
pub mod reader;

pub use decode::{DecodeError, Fragment, IcmpInfo, NetInfo, PacketInfo, QuotedFlow, Span, decode};
pub use input::{CaptureInput, Compression};
pub use layout::{CaptureSource, LayoutError, discover};
pub use reader::{CaptureError, CaptureFormat, CaptureReader, MAX_CAPLEN, Packet};
