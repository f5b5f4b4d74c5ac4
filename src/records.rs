//! Records: the typed rows that lumpy derives from captures and moves between nodes.
//!
//! Owns the in-memory and on-disk (JSON lines inside record segments, and
//! from record version 4 fixed-layout binary flow items beside them, see
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
    /// True when the flow was closed early because the origin's open-flow
    /// table was full (`capture.flow_table_mib`), not by its timeout: a
    /// later packet of the same endpoints starts a new flow. Written only
    /// when true (record version 3).
    #[serde(default, skip_serializing_if = "is_false")]
    pub evicted: bool,
    /// ICMP or ICMPv6 type and code of the flow's first packet (for its
    /// Community ID, `community_id`), set for flows of protocol 1 and 58
    /// whose first packet carried an ICMP header. Absent (and not written)
    /// otherwise and in records made before lumpy kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_first: Option<IcmpFirst>,
}

/// The ICMP (or ICMPv6) type and code of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpFirst {
    pub icmp_type: u8,
    pub code: u8,
}

fn is_false(b: &bool) -> bool {
    !*b
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The roo's management address, when its origin knows it (`lumpy init
    /// --manager-ip`, HwMANAGE_IP): tells a reinstall at the same address
    /// (a new incarnation, a new sensor id) apart. Empty (not written) when
    /// unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manage_ip: String,
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
    /// The parent pid in the sebek header of the newest record (known even
    /// when the parent never sent a record). Absent for rows decoded before
    /// lumpy kept it and for legacy imports; not written when absent, so
    /// older records keep their JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// The zero-length read that marked this process's fork (sebek sends
    /// it as the child, with the parent's command), when one made the row:
    /// sbk_ks_log.pl joins its uid and command into the first keystroke
    /// line of the same descriptor. Absent (and not written) otherwise and
    /// in records made before lumpy kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkMark>,
}

/// The header fields of a fork's zero-length read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkMark {
    pub uid: u32,
    pub fd: u32,
    pub inode: u32,
    /// The command name it carried (a `command` record's id).
    pub command_id: u32,
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
    /// The capture's snaplen cut the record: `data` holds the bytes captured,
    /// fewer than `length`. Absent (and not written) for whole records, so
    /// their JSON, and the segments made of it, are as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// Columns that were NULL in the legacy database this row was imported
    /// from (`uid`, `pcap_time`, `time`: nullable there); the mirror writes
    /// NULL for them. Empty (and not written) for rows lumpy decoded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_null: Vec<String>,
    /// For a read: the command name it carried (a `command` record's id),
    /// written when it differs from the process's previous read's (so on a
    /// process's first read, and after each exec); sbk_ks_log.pl prints
    /// each read's command. Absent (and not written) otherwise, in records
    /// made before lumpy kept it and in legacy imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<u32>,
}

impl SysIoRecord {
    /// True when `column` was NULL in the legacy database.
    pub fn is_null(&self, column: &str) -> bool {
        self.legacy_null.iter().any(|c| c == column)
    }
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
    /// The capture cut the 15-byte socket record: fields it did not reach are
    /// 0. Absent (and not written) for whole records.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// The flow this socket joined at a legacy origin (hflow's `flow_id`,
    /// walleye_0_3's `argus_id`), when imported from a legacy database
    /// whose rows carry no 5-tuple: the mirror takes it as is instead of
    /// joining. Absent (and not written) for sockets lumpy decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_flow_id: Option<u32>,
    /// The legacy `sys_socket.type` text (never set by hflow2), when imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_type: Option<String>,
    /// As [`SysIoRecord::legacy_null`] (`pcap_time` is nullable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_null: Vec<String>,
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

/// A p0f operating-system guess (hflow's `os`), per sensor; flows point at
/// it with `client_os_id`. Immutable, keyed by `(sensor_id, os_id)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRecord {
    pub sensor_id: u32,
    pub os_id: u32,
    pub genre: Option<String>,
    pub detail: Option<String>,
}

/// A snort alert (hflow's `ids`; walleye_0_3 called `flow_id` `argus_id`).
/// Immutable, keyed by `(sensor_id, ids_id)`. The signed columns keep
/// MySQL's signed `INT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsRecord {
    pub sensor_id: u32,
    pub ids_id: u32,
    pub sig_id: i32,
    pub flow_id: i32,
    pub sec: i32,
    pub usec: i32,
    pub priority: i32,
    pub sig_rev: i32,
    pub sig_gen: i32,
    pub classification: i32,
    /// `CLIENT`, `SERVER` or absent (hflow2 never set it).
    #[serde(rename = "ids_type")]
    pub kind: Option<String>,
}

/// A snort signature of a sensor's catalogue (hflow's `ids_sig`). Immutable,
/// keyed by `(sensor_id, ids_sig_gen, ids_sig_id)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsSigRecord {
    pub sensor_id: u32,
    pub ids_sig_gen: u8,
    pub ids_sig_id: u32,
    pub sig_name: Option<String>,
    pub reference: Option<String>,
}

/// A walleye_0_3 (roo 1.x) flow row from its `argus` table, as stored there.
/// Immutable, keyed by `(sensor_id, argus_id)`; `argus_id` shares the flow
/// id space (`sys_socket` and `ids` point at it), so the mirror also shows
/// it as the flow [`ArgusRecord::as_flow`] makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgusRecord {
    pub sensor_id: u32,
    pub argus_id: u32,
    pub ip_proto: u8,
    pub local: Option<bool>,
    pub src_ip: std::net::Ipv4Addr,
    pub dst_ip: std::net::Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub src_pkts: u32,
    pub dst_pkts: u32,
    pub src_bytes: u32,
    pub dst_bytes: u32,
    pub start_sec: u32,
    pub end_sec: u32,
    pub argus_dir: Option<String>,
    pub argus_status: Option<String>,
    pub argus_ind: Option<String>,
    pub client_os_id: Option<u32>,
}

impl ArgusRecord {
    /// The flow row this argus row stands for: the initiator's direction
    /// spans `start_sec..end_sec`, the responder's too when it sent packets;
    /// no flags or milliseconds (argus rows have none). Version 1: the row
    /// never changes.
    pub fn as_flow(&self) -> FlowRecord {
        let responder_sent = self.dst_pkts > 0;
        FlowRecord {
            sensor_id: self.sensor_id,
            flow_id: self.argus_id,
            version: 1,
            src_ip: self.src_ip.into(),
            dst_ip: self.dst_ip.into(),
            src_port: self.src_port,
            dst_port: self.dst_port,
            ip_proto: self.ip_proto,
            src: FlowDirection {
                start_sec: self.start_sec,
                end_sec: self.end_sec,
                packets: u64::from(self.src_pkts),
                bytes: u64::from(self.src_bytes),
                ..FlowDirection::default()
            },
            dst: FlowDirection {
                start_sec: if responder_sent { self.start_sec } else { 0 },
                end_sec: if responder_sent { self.end_sec } else { 0 },
                packets: u64::from(self.dst_pkts),
                bytes: u64::from(self.dst_bytes),
                ..FlowDirection::default()
            },
            is_local: self.local.unwrap_or(false),
            marker_flags: 0,
            client_os_id: self.client_os_id.unwrap_or(0),
            server_os_id: 0,
            closed: true,
            icmp_first: None,
            evicted: false,
        }
    }
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
    Os(OsRecord),
    Ids(IdsRecord),
    IdsSig(IdsSigRecord),
    Argus(ArgusRecord),
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
            Record::Os(r) => r.sensor_id,
            Record::Ids(r) => r.sensor_id,
            Record::IdsSig(r) => r.sensor_id,
            Record::Argus(r) => r.sensor_id,
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
    #[error("record item {item} (byte {offset} of its block): {source}")]
    Binary {
        item: usize,
        offset: usize,
        #[source]
        source: BinaryError,
    },
}

/// Why a binary record item does not decode: it is cut short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("a binary item is cut in its header")]
    CutHeader,
    #[error("a binary item of {0} bytes is cut short")]
    CutItem(usize),
    #[error("the payload ends at byte {0} of a flow")]
    CutFlow(usize),
}

/// The record version a writer produces (docs/STORAGE.md §4): 3 writes every
/// record as a JSON line (what nodes before version 4 read); 4 writes flows
/// as fixed-layout binary items and the other kinds as JSON lines.
pub const RECORD_VERSION_JSON: u8 = 3;
/// See [`RECORD_VERSION_JSON`].
pub const RECORD_VERSION_BINARY: u8 = 4;

/// Appends `record` as one JSON line to `out`.
pub fn encode_line(record: &Record, out: &mut Vec<u8>) {
    // Serialising these plain structs into a Vec cannot fail: no maps with
    // non-string keys, no custom serialisers.
    if serde_json::to_writer(&mut *out, record).is_ok() {
        out.push(b'\n');
    }
}

/// Appends `record` as one item of record version `version` to `out`: a
/// binary item for a flow from version 4 on, else a JSON line.
pub fn encode_item(record: &Record, version: u8, out: &mut Vec<u8>) {
    match record {
        Record::Flow(f) if version >= RECORD_VERSION_BINARY => binary::encode_flow(f, out),
        _ => encode_line(record, out),
    }
}

/// Parses a decompressed record block back into records: JSON lines and
/// binary items, in any mix (§4 tells them apart by their first byte).
pub fn decode_lines(block: &[u8]) -> Result<Vec<Record>, RecordError> {
    let mut records = Vec::new();
    let mut at = 0;
    let mut item = 0;
    while at < block.len() {
        item += 1;
        match block[at] {
            b'\n' => {
                // An empty line: nothing (JSON lines tolerate them).
                at += 1;
                item -= 1;
            }
            b'{' => {
                let end = block[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(block.len(), |n| at + n);
                let record = decode_line(&block[at..end])
                    .map_err(|source| RecordError::Malformed { line: item, source })?;
                records.push(record);
                at = end + 1;
            }
            _ => {
                let (record, len) =
                    binary::decode(&block[at..]).map_err(|source| RecordError::Binary {
                        item,
                        offset: at,
                        source,
                    })?;
                records.extend(record);
                at += len;
            }
        }
    }
    Ok(records)
}

/// The tag `encode_line` writes first for flows, the most common record.
const FLOW_PREFIX: &[u8] = br#"{"type":"flow","#;

fn decode_line(line: &[u8]) -> Result<Record, serde_json::Error> {
    // An internally tagged enum is parsed through a buffer of the whole
    // object; a flow line parses straight into its struct, whose parser
    // skips the `type` field.
    if line.starts_with(FLOW_PREFIX) {
        return serde_json::from_slice::<FlowRecord>(line).map(Record::Flow);
    }
    serde_json::from_slice(line)
}

/// Binary record items (record version 4, docs/STORAGE.md §4.1): a tag
/// byte (never `{` or a newline), the payload's length as u16 LE, the
/// payload. All integers little-endian.
mod binary {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::{BinaryError, FlowDirection, FlowRecord, IcmpFirst, Record};

    /// The tag of a flow item.
    pub const TAG_FLOW: u8 = 0x01;
    /// Bytes of one direction's counters.
    const DIRECTION_LEN: usize = 36;
    /// Payload bytes before the addresses.
    const FIXED_LEN: usize = 34;

    const SRC_V6: u8 = 1;
    const DST_V6: u8 = 1 << 1;
    const IS_LOCAL: u8 = 1 << 2;
    const CLOSED: u8 = 1 << 3;
    const EVICTED: u8 = 1 << 4;
    /// Two bytes (ICMP type, code) follow the directions.
    const ICMP_FIRST: u8 = 1 << 5;

    fn put_ip(ip: &IpAddr, out: &mut Vec<u8>) {
        match ip {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }

    fn put_direction(d: &FlowDirection, out: &mut Vec<u8>) {
        out.extend_from_slice(&d.start_sec.to_le_bytes());
        out.extend_from_slice(&d.start_msec.to_le_bytes());
        out.extend_from_slice(&d.end_sec.to_le_bytes());
        out.extend_from_slice(&d.end_msec.to_le_bytes());
        out.extend_from_slice(&d.packets.to_le_bytes());
        out.extend_from_slice(&d.bytes.to_le_bytes());
        out.push(d.ip_flags);
        out.push(d.tcp_flags);
        out.extend_from_slice(&d.icmp_packets.to_le_bytes());
        out.extend_from_slice(&d.icmp_seen.to_le_bytes());
    }

    pub fn encode_flow(f: &FlowRecord, out: &mut Vec<u8>) {
        let ip_len = |ip: &IpAddr| if ip.is_ipv4() { 4 } else { 16 };
        let icmp_len = if f.icmp_first.is_some() { 2 } else { 0 };
        let len = FIXED_LEN + ip_len(&f.src_ip) + ip_len(&f.dst_ip) + 2 * DIRECTION_LEN + icmp_len;
        out.push(TAG_FLOW);
        // At most 34 + 32 + 72 + 2 bytes: fits a u16.
        out.extend_from_slice(&(len as u16).to_le_bytes());
        let start = out.len();
        let mut flags = 0;
        for (set, bit) in [
            (f.src_ip.is_ipv6(), SRC_V6),
            (f.dst_ip.is_ipv6(), DST_V6),
            (f.is_local, IS_LOCAL),
            (f.closed, CLOSED),
            (f.evicted, EVICTED),
            (f.icmp_first.is_some(), ICMP_FIRST),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.extend_from_slice(&f.sensor_id.to_le_bytes());
        out.extend_from_slice(&f.flow_id.to_le_bytes());
        out.extend_from_slice(&f.version.to_le_bytes());
        out.push(flags);
        out.push(f.ip_proto);
        out.extend_from_slice(&f.src_port.to_le_bytes());
        out.extend_from_slice(&f.dst_port.to_le_bytes());
        out.extend_from_slice(&f.marker_flags.to_le_bytes());
        out.extend_from_slice(&f.client_os_id.to_le_bytes());
        out.extend_from_slice(&f.server_os_id.to_le_bytes());
        put_ip(&f.src_ip, out);
        put_ip(&f.dst_ip, out);
        put_direction(&f.src, out);
        put_direction(&f.dst, out);
        if let Some(i) = f.icmp_first {
            out.extend_from_slice(&[i.icmp_type, i.code]);
        }
        debug_assert_eq!(out.len() - start, len);
    }

    /// A bounds-checked reader over one payload.
    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Result<[u8; N], BinaryError> {
            let end = self.at + N;
            let got = self
                .bytes
                .get(self.at..end)
                .ok_or(BinaryError::CutFlow(self.bytes.len()))?;
            self.at = end;
            let mut a = [0u8; N];
            a.copy_from_slice(got);
            Ok(a)
        }
        fn u8(&mut self) -> Result<u8, BinaryError> {
            Ok(self.take::<1>()?[0])
        }
        fn u16(&mut self) -> Result<u16, BinaryError> {
            self.take().map(u16::from_le_bytes)
        }
        fn u32(&mut self) -> Result<u32, BinaryError> {
            self.take().map(u32::from_le_bytes)
        }
        fn u64(&mut self) -> Result<u64, BinaryError> {
            self.take().map(u64::from_le_bytes)
        }
        fn ip(&mut self, v6: bool) -> Result<IpAddr, BinaryError> {
            Ok(if v6 {
                IpAddr::V6(Ipv6Addr::from(self.take::<16>()?))
            } else {
                IpAddr::V4(Ipv4Addr::from(self.take::<4>()?))
            })
        }
        fn direction(&mut self) -> Result<FlowDirection, BinaryError> {
            Ok(FlowDirection {
                start_sec: self.u32()?,
                start_msec: self.u16()?,
                end_sec: self.u32()?,
                end_msec: self.u16()?,
                packets: self.u64()?,
                bytes: self.u64()?,
                ip_flags: self.u8()?,
                tcp_flags: self.u8()?,
                icmp_packets: self.u32()?,
                icmp_seen: self.u16()?,
            })
        }
    }

    fn decode_flow(payload: &[u8]) -> Result<FlowRecord, BinaryError> {
        let mut r = Reader {
            bytes: payload,
            at: 0,
        };
        let sensor_id = r.u32()?;
        let flow_id = r.u32()?;
        let version = r.u64()?;
        let flags = r.u8()?;
        let ip_proto = r.u8()?;
        let src_port = r.u16()?;
        let dst_port = r.u16()?;
        let marker_flags = r.u32()?;
        let client_os_id = r.u32()?;
        let server_os_id = r.u32()?;
        let src_ip = r.ip(flags & SRC_V6 != 0)?;
        let dst_ip = r.ip(flags & DST_V6 != 0)?;
        let src = r.direction()?;
        let dst = r.direction()?;
        let icmp_first = if flags & ICMP_FIRST != 0 {
            Some(IcmpFirst {
                icmp_type: r.u8()?,
                code: r.u8()?,
            })
        } else {
            None
        };
        // Bytes after the known layout are fields of a later version: ignored.
        Ok(FlowRecord {
            sensor_id,
            flow_id,
            version,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            ip_proto,
            src,
            dst,
            is_local: flags & IS_LOCAL != 0,
            marker_flags,
            client_os_id,
            server_os_id,
            closed: flags & CLOSED != 0,
            evicted: flags & EVICTED != 0,
            icmp_first,
        })
    }

    /// One binary item at the start of `bytes`: its record (None for a tag
    /// this version does not know, skipped) and its length.
    pub fn decode(bytes: &[u8]) -> Result<(Option<Record>, usize), BinaryError> {
        let [tag, l0, l1] = match bytes.get(..3) {
            Some(&[t, a, b]) => [t, a, b],
            _ => return Err(BinaryError::CutHeader),
        };
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        let payload = bytes.get(3..3 + len).ok_or(BinaryError::CutItem(len))?;
        let record = match tag {
            TAG_FLOW => Some(Record::Flow(decode_flow(payload)?)),
            _ => None,
        };
        Ok((record, 3 + len))
    }
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
            evicted: false,
            icmp_first: Some(IcmpFirst {
                icmp_type: 8,
                code: 0,
            }),
        });
        let sensor = Record::Sensor(SensorRecord {
            sensor_id: 1,
            version: 1,
            install_sec: 2,
            last_upd_sec: 3,
            state: "online".into(),
            name: "n".into(),
            ..SensorRecord::default()
        });
        let mut block = Vec::new();
        encode_line(&flow, &mut block);
        encode_line(&sensor, &mut block);
        assert!(block.starts_with(FLOW_PREFIX));
        assert_eq!(
            decode_lines(&block).unwrap(),
            vec![flow.clone(), sensor.clone()]
        );
        // Version 4: the flow as a binary item, the sensor still a line, in
        // one block with the version 3 items.
        let mut v4 = Vec::new();
        encode_item(&flow, RECORD_VERSION_BINARY, &mut v4);
        assert_eq!(v4[0], binary::TAG_FLOW);
        // The ICMP type and code are 2 bytes behind the directions.
        assert_eq!(v4.len(), 3 + 34 + 4 + 16 + 72 + 2);
        encode_item(&sensor, RECORD_VERSION_BINARY, &mut v4);
        v4.extend_from_slice(&block);
        assert_eq!(
            decode_lines(&v4).unwrap(),
            vec![flow.clone(), sensor.clone(), flow.clone(), sensor]
        );
        // A cut item, at any length, is an error and never a panic.
        for cut in 0..3 + 34 + 20 + 72 + 2 {
            assert!(decode_lines(&v4[..cut]).is_err() || cut == 0, "{cut}");
        }
        // An unknown tag is skipped by its length; bytes a later version
        // appends to a flow are ignored.
        let mut later = vec![0x7f, 2, 0, 9, 9];
        let Record::Flow(mut f) = flow else {
            unreachable!()
        };
        f.closed = true;
        f.evicted = true;
        f.src_ip = "192.0.2.9".parse().unwrap();
        let mut item = Vec::new();
        encode_item(&Record::Flow(f.clone()), RECORD_VERSION_BINARY, &mut item);
        let len = u16::from_le_bytes([item[1], item[2]]) + 2;
        item[1..3].copy_from_slice(&len.to_le_bytes());
        item.extend_from_slice(&[0xaa, 0xbb]);
        later.extend_from_slice(&item);
        assert_eq!(decode_lines(&later).unwrap(), vec![Record::Flow(f)]);
        assert!(decode_lines(b"{\"type\":\"flow\",\"sensor_id\":\"x\"}\n").is_err());
        assert!(decode_lines(b"not json\n").is_err());
    }

    #[test]
    fn legacy_kinds_round_trip_and_native_lines_are_unchanged() {
        let records = vec![
            Record::Os(OsRecord {
                sensor_id: 1,
                os_id: 2,
                genre: Some("Linux".into()),
                detail: None,
            }),
            Record::Ids(IdsRecord {
                sensor_id: 1,
                ids_id: 3,
                sig_id: 2003,
                flow_id: -1,
                sec: 4,
                usec: 5,
                priority: 2,
                sig_rev: 8,
                sig_gen: 1,
                classification: 3,
                kind: Some("CLIENT".into()),
            }),
            Record::IdsSig(IdsSigRecord {
                sensor_id: 1,
                ids_sig_gen: 1,
                ids_sig_id: 2003,
                sig_name: Some("worm".into()),
                reference: None,
            }),
            Record::Argus(ArgusRecord {
                sensor_id: 1,
                argus_id: 9,
                ip_proto: 6,
                local: None,
                src_ip: "192.0.2.1".parse().unwrap(),
                dst_ip: "192.0.2.2".parse().unwrap(),
                src_port: 1,
                dst_port: 2,
                src_pkts: 3,
                dst_pkts: 0,
                src_bytes: 5,
                dst_bytes: 0,
                start_sec: 7,
                end_sec: 8,
                argus_dir: Some("->".into()),
                argus_status: Some("REQ".into()),
                argus_ind: None,
                client_os_id: Some(2),
            }),
        ];
        let mut block = Vec::new();
        for r in &records {
            encode_line(r, &mut block);
        }
        assert_eq!(decode_lines(&block).unwrap(), records);
        let text = String::from_utf8(block).unwrap();
        assert!(text.contains(r#""ids_type":"CLIENT""#), "{text}");
        // An argus row as a flow: the responder's side stays empty when it sent nothing.
        let Record::Argus(a) = &records[3] else {
            unreachable!()
        };
        let f = a.as_flow();
        assert_eq!(
            (f.flow_id, f.src.packets, f.dst.end_sec, f.client_os_id),
            (9, 3, 0, 2)
        );
        // A socket lumpy decoded carries no legacy field, so its line (and
        // every segment id made before these fields existed) is unchanged.
        let socket = Record::SysSocket(SysSocketRecord {
            sensor_id: 1,
            sys_socket_id: 1,
            process_id: 1,
            pcap_time: 1,
            time: 1,
            uid: 0,
            counter: 1,
            filed: 3,
            inode: 4,
            call: 3,
            proto: 6,
            local_ip: "192.0.2.1".parse().unwrap(),
            local_port: 1,
            remote_ip: "192.0.2.2".parse().unwrap(),
            remote_port: 2,
            truncated: false,
            legacy_flow_id: None,
            legacy_type: None,
            legacy_null: Vec::new(),
        });
        let mut line = Vec::new();
        encode_line(&socket, &mut line);
        let text = String::from_utf8_lossy(&line).into_owned();
        assert!(!text.contains("legacy"));
        // Nor a truncation mark unless the capture cut the record.
        assert!(!text.contains("truncated"));
        let Record::SysSocket(mut cut) = socket else {
            unreachable!()
        };
        cut.truncated = true;
        let cut = Record::SysSocket(cut);
        line.clear();
        encode_line(&cut, &mut line);
        assert!(String::from_utf8_lossy(&line).contains("\"truncated\":true"));
        assert_eq!(decode_lines(&line).unwrap(), vec![cut]);
    }
}
