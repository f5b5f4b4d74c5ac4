//! Sebek v3: host data (keystrokes, opens, sockets, process trees) that
//! honeypots send as UDP packets to the sebek port.
//!
//! Owns the sebek wire format (`decode`: pure parsing, no I/O), the
//! per-honeypot process state machine that turns decoded records into
//! walleye's process tables (`sessions`), and a generator of sebek packets for
//! fixtures and tests (`generate`), and the keystroke lines of
//! sbk_ks_log.pl (`keystrokes`).
//! Does not touch files, the segment store or the mirror: ingest feeds it
//! packets and stores the records it returns.

pub mod decode;
pub mod generate;
pub mod keystrokes;
pub mod sessions;

pub use decode::{Header, RecordKind, SebekError, SebekRecord, SocketRecord, parse};
pub use sessions::{SebekCounters, Tracker};

/// The sebek port, both source and destination of every sebek packet.
pub const DEFAULT_PORT: u16 = 1101;
