//! p0f v3 passive OS fingerprinting, with p0f 3.09b's semantics.
//!
//! Owns the signature database parser (`db`, the `p0f.fp` format), the
//! per-packet signature (`sig`: what p0f reads from a TCP SYN or SYN+ACK,
//! allocation-free), the matching rules (`matcher`: exact, generic, fuzzy,
//! TTL distance, window multipliers, raw signatures), which handshake
//! packets are fingerprinted (`observer`), and p0f's log format (`log`:
//! parsing a running p0f's `-o` file, writing ours the same way).
//! Pure: no I/O, no storage. `ingest` turns observations into
//! `OsFingerprint` records; the mirror turns those into `os` rows and the
//! flows' OS ids; `lumpy import p0f-log` turns log lines into the same records.

pub mod db;
pub mod log;
pub mod matcher;
pub mod observer;
pub mod sig;

pub use db::{Database, DbError, Label, Quirk, TcpSignature, Ttl, WindowSize};
pub use matcher::{Match, Matcher, Verdict};
pub use observer::{Observation, Observer};
pub use sig::PacketSig;

use crate::records::{OsFingerprintRecord, OsRole, OsSource};

/// The record of a native observation that matched a label (`None` when
/// nothing matched: unknown fingerprints are not stored).
pub fn record(
    m: &Matcher,
    sensor_id: u32,
    time: u32,
    flow_id: u32,
    o: &Observation,
) -> Option<OsFingerprintRecord> {
    if o.sendsyn {
        return None;
    }
    let x = o.verdict.matched?;
    let label = m.label(&x)?;
    Some(OsFingerprintRecord {
        sensor_id,
        time,
        role: if o.client {
            OsRole::Client
        } else {
            OsRole::Server
        },
        host_ip: o.host.0,
        host_port: o.host.1,
        peer_ip: o.peer.0,
        peer_port: o.peer.1,
        flow_id,
        source: OsSource::Native,
        class: label.class.clone(),
        genre: label.name.clone(),
        detail: label.flavor.clone(),
        generic: x.generic,
        fuzzy: x.fuzzy,
        dist: o.verdict.dist,
        raw_sig: matcher::raw_sig(&o.sig, o.syn_mss),
    })
}
