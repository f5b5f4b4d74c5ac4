//! Records: the typed rows that lumpy derives from captures and moves between nodes.
//!
//! Owns the in-memory and on-disk (JSON lines inside record segments, see
//! docs/STORAGE.md §4) shape of every record kind.
//! Does not touch files, the segment store or the SQLite mirror: it only defines
//! and (de)serialises values.
//!
//! Every record carries the `sensor_id` of the roo incarnation it describes, and
//! every mutable row (a flow that is still growing, sensor metadata) carries an
//! origin `version`: a number assigned by the origin node that only grows.
//! Consumers keep the row with the highest version, so records can be applied
//! twice or out of order without regressing anything.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One direction (initiator to responder, or back) of a bidirectional flow,
/// with the counters of hflow2's `flow` table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDirection {
    pub start_sec: u32,
    pub start_msec: u16,
    pub end_sec: u32,
    pub end_msec: u16,
    pub packets: u64,
    /// Bytes on the wire: the sum of the packets' original lengths.
    pub bytes: u64,
    /// OR of the IPv4 flags field (bit 1 DF, bit 2 MF) seen in this direction.
    pub ip_flags: u8,
    /// OR of the TCP flags seen in this direction.
    pub tcp_flags: u8,
    /// ICMP packets sent in this direction that belong to the flow (echo and
    /// errors quoting it).
    pub icmp_packets: u32,
    /// Bit set of the ICMP types seen (bit n = type n, for n < 16), as hflow's
    /// `icmp_seen` column.
    pub icmp_seen: u16,
}

/// A bidirectional flow, hflow2 style: the sender of the first packet is `src`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub sensor_id: u32,
    /// Assigned by the origin node, per sensor, monotonically; never changes.
    pub flow_id: u32,
    /// Origin version of this row; a higher version supersedes a lower one.
    pub version: u64,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ip_proto: u8,
    pub src: FlowDirection,
    pub dst: FlowDirection,
    /// 1 when the initiator is inside the configured honeypot network.
    pub is_local: bool,
    pub marker_flags: u32,
    pub client_os_id: u32,
    pub server_os_id: u32,
    /// True once the flow timed out: no later version will follow.
    pub closed: bool,
}

impl FlowRecord {
    /// Walleye's flow end: `GREATEST(src_end_sec, dst_end_sec)`.
    pub fn end_sec(&self) -> u32 {
        self.src.end_sec.max(self.dst.end_sec)
    }

    /// True when both addresses are IPv4, so the row fits hflow's `flow` table.
    pub fn is_ipv4(&self) -> bool {
        self.src_ip.is_ipv4() && self.dst_ip.is_ipv4()
    }
}

/// Sensor metadata, as in hflow's `sensor` table (without the per-link columns
/// `access_via`, `login`, `passwd`, which belong to each lumpy alone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorRecord {
    pub sensor_id: u32,
    pub version: u64,
    pub install_sec: u32,
    pub last_upd_sec: u32,
    /// `online`, `offline` or `maint`.
    pub state: String,
    pub name: String,
    pub timezone: i32,
    pub country_code: String,
    pub latitude: i32,
    pub longitude: i32,
    pub notes: String,
    /// `com`, `edu`, `gov`, `mil`, `home` or empty.
    pub network_type: String,
}

/// A process instance seen by sebek (hflow's `process`). Mutable: its time
/// ranges grow, so it carries an origin `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub sensor_id: u32,
    /// Assigned by the origin, per sensor, from 1; never changes.
    pub process_id: u32,
    pub version: u64,
    /// The honeypot: source address of its sebek packets.
    pub src_ip: std::net::Ipv4Addr,
    pub pid: u32,
    /// Honeypot clock range.
    pub time_min: u32,
    pub time_max: u32,
    /// Capture (honeywall) clock range.
    pub pcap_time_min: u32,
    pub pcap_time_max: u32,
}

/// A parent/child edge between two process rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTreeRecord {
    pub sensor_id: u32,
    pub child_process: u32,
    pub parent_process: u32,
}

/// A distinct command name (`com[12]`), per sensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub sensor_id: u32,
    pub command_id: u32,
    pub name: String,
}

/// A process ran (exec'ed as) a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessToComRecord {
    pub sensor_id: u32,
    pub process_id: u32,
    pub command_id: u32,
}

/// Which syscall a [`SysIoRecord`] logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SysIoKind {
    Read,
    Write,
    Open,
}

/// A sebek read, write or open record (`sys_read`, `sys_write`, `sys_open`).
/// Immutable: keyed by (sensor_id, kind, id). `data` keeps every byte sebek
/// sent (for an open: the path); the mirror keeps what walleye expects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysIoRecord {
    pub sensor_id: u32,
    pub kind: SysIoKind,
    /// Per sensor and kind, from 1.
    pub id: u32,
    pub process_id: u32,
    pub uid: u32,
    pub pcap_time: u32,
    pub time: u32,
    pub counter: u32,
    pub filed: u32,
    pub inode: u32,
    /// The length from the sebek header.
    pub length: u32,
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

/// A sebek socket record (`sys_socket`): the 5-tuple as sebek saw it; the
/// flow is found by the mirror (docs/STORAGE.md §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysSocketRecord {
    pub sensor_id: u32,
    pub sys_socket_id: u32,
    pub process_id: u32,
    pub pcap_time: u32,
    pub time: u32,
    pub uid: u32,
    pub counter: u32,
    pub filed: u32,
    pub inode: u32,
    /// Linux socketcall number.
    pub call: u16,
    pub proto: u8,
    pub local_ip: std::net::Ipv4Addr,
    pub local_port: u16,
    pub remote_ip: std::net::Ipv4Addr,
    pub remote_port: u16,
}

/// `lost` sebek records of one honeypot, from a gap in its counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbkLossRecord {
    pub sensor_id: u32,
    pub src_ip: std::net::Ipv4Addr,
    /// Capture time of the record after the gap.
    pub time: u32,
    pub lost: u32,
}

/// Which end of a TCP handshake a fingerprint describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsRole {
    /// The SYN's sender: `flow.client_os_id`.
    Client,
    /// The SYN+ACK's sender: `flow.server_os_id`.
    Server,
}

/// Where a fingerprint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsSource {
    /// lumpy's own p0f v3 matching at ingest.
    Native,
    /// A line of a running p0f's log (`lumpy import p0f-log`).
    P0fLog,
}

/// A p0f v3 fingerprint of one host on one TCP handshake. Immutable: keyed
/// by (sensor_id, role, host, peer, time, source); the mirror turns it into
/// an `os` row and the flow's `client_os_id` / `server_os_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsFingerprintRecord {
    pub sensor_id: u32,
    /// Capture time (seconds) of the SYN or SYN+ACK.
    pub time: u32,
    pub role: OsRole,
    /// The fingerprinted host (the packet's sender) and its port.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub peer_ip: IpAddr,
    pub peer_port: u16,
    /// The origin's flow id when known (native fingerprints), else 0: the
    /// mirror then finds the flow by 5-tuple and time.
    pub flow_id: u32,
    pub source: OsSource,
    /// p0f's label class: `unix`, `win`, ... or `!` for applications.
    pub class: String,
    /// walleye's `os.genre`: the label's name, e.g. `Linux`.
    pub genre: String,
    /// walleye's `os.detail`: the label's flavor, e.g. `3.11 and newer`.
    pub detail: String,
    pub generic: bool,
    pub fuzzy: bool,
    /// TTL distance as p0f reports it.
    pub dist: u8,
    /// p0f's `raw_sig` of the packet.
    pub raw_sig: String,
}

/// Every record kind that a record segment can carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Sensor(SensorRecord),
    Flow(FlowRecord),
    Process(ProcessRecord),
    ProcessTree(ProcessTreeRecord),
    Command(CommandRecord),
    ProcessToCom(ProcessToComRecord),
    SysIo(SysIoRecord),
    SysSocket(SysSocketRecord),
    SbkLoss(SbkLossRecord),
    OsFingerprint(OsFingerprintRecord),
}

impl Record {
    pub fn sensor_id(&self) -> u32 {
        match self {
            Record::Sensor(s) => s.sensor_id,
            Record::Flow(f) => f.sensor_id,
            Record::Process(r) => r.sensor_id,
            Record::ProcessTree(r) => r.sensor_id,
            Record::Command(r) => r.sensor_id,
            Record::ProcessToCom(r) => r.sensor_id,
            Record::SysIo(r) => r.sensor_id,
            Record::SysSocket(r) => r.sensor_id,
            Record::SbkLoss(r) => r.sensor_id,
            Record::OsFingerprint(r) => r.sensor_id,
        }
    }
}

/// Byte strings as standard base64 in JSON.
mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Errors of record (de)serialisation.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record line {line}: {source}")]
    Malformed {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Appends `record` as one JSON line to `out`.
pub fn encode_line(record: &Record, out: &mut Vec<u8>) {
    // Serialising these plain structs into a Vec cannot fail: no maps with
    // non-string keys, no custom serialisers.
    if serde_json::to_writer(&mut *out, record).is_ok() {
        out.push(b'\n');
    }
}

/// Parses a block of JSON lines back into records.
pub fn decode_lines(block: &[u8]) -> Result<Vec<Record>, RecordError> {
    block
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            decode_line(line).map_err(|source| RecordError::Malformed {
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// The tag `encode_line` writes first for flows, the most common record.
const FLOW_PREFIX: &[u8] = br#"{"type":"flow","#;

fn decode_line(line: &[u8]) -> Result<Record, serde_json::Error> {
    // An internally tagged enum is parsed through a buffer of the whole
    // object; a flow line (nearly every line) parses straight into its
    // struct, whose parser skips the `type` field.
    if line.starts_with(FLOW_PREFIX) {
        return serde_json::from_slice::<FlowRecord>(line).map(Record::Flow);
    }
    serde_json::from_slice(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_both_parsers() {
        let flow = Record::Flow(FlowRecord {
            sensor_id: 1,
            flow_id: 2,
            version: 3,
            src_ip: "192.0.2.1".parse().unwrap(),
            dst_ip: "2001:db8::1".parse().unwrap(),
            src_port: 4,
            dst_port: 5,
            ip_proto: 6,
            src: FlowDirection::default(),
            dst: FlowDirection {
                packets: 7,
                ..FlowDirection::default()
            },
            is_local: true,
            marker_flags: 0,
            client_os_id: 0,
            server_os_id: 0,
            closed: false,
        });
        let sensor = Record::Sensor(SensorRecord {
            sensor_id: 1,
            version: 1,
            install_sec: 2,
            last_upd_sec: 3,
            state: "online".into(),
            name: "n".into(),
            timezone: 0,
            country_code: String::new(),
            latitude: 0,
            longitude: 0,
            notes: String::new(),
            network_type: String::new(),
        });
        let mut block = Vec::new();
        encode_line(&flow, &mut block);
        encode_line(&sensor, &mut block);
        assert!(block.starts_with(FLOW_PREFIX));
        assert_eq!(decode_lines(&block).unwrap(), vec![flow, sensor]);
        assert!(decode_lines(b"{\"type\":\"flow\",\"sensor_id\":\"x\"}\n").is_err());
        assert!(decode_lines(b"not json\n").is_err());
    }
}
