//! Ingest: capture files in, segments and records out.
//!
//! Owns the pipeline capture -> flows -> store -> mirror for capture files:
//! attributing each file to a sensor, resuming a file where its last committed
//! segment ended (so the same file twice adds nothing and a killed ingest
//! completes on re-run), sealing pcap and record segments, and the one index
//! commit per sealed pair. Also `--follow`: watching capture directories for
//! new and growing files.
//! Does not parse bytes itself (`capture` does), keep flow semantics (`flows`
//! does) or lay out files (`store` does).
//!
//! Determinism is what makes re-runs safe: from a committed state, the same
//! packets always produce the same segments, byte for byte, so a segment
//! written before a crash but not committed is simply found again.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::capture::layout::{CaptureSource, LayoutError, discover};
use crate::capture::{
    CaptureError, CaptureInput, CaptureReader, Compression, DecodeError, Packet, decode,
};
use crate::flows::{FlowTable, MAX_ROWS_PER_SEGMENT, TableCounters};
use crate::mirror::MirrorError;
use crate::node::{Node, NodeError};
use crate::p0f::{Matcher, Observer};
use crate::records::{OsFingerprintRecord, Record, SensorRecord, encode_item};
use crate::sebek::Tracker;
use crate::sebek::sessions::Origin;
use crate::sebek::sessions::SebekIds;
use crate::store::{
    BlockCompressor, CommitBatch, Kind, SealedSegment, SegmentBuilder, SegmentError,
    SourceProgress, StoreError,
};

mod committer;
pub mod flow_state;
use committer::{CommitJob, Committer, RecordPart};
use flow_state::{CHECKPOINT_REPLAY_BYTES, FlowStateError, TableRef};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building a segment: {0}")]
    Segment(#[from] SegmentError),
    #[error("ingest state of sensor {sensor} is unreadable: {detail}")]
    BadState { sensor: u32, detail: String },
    /// The commit thread is gone (it panicked) or was never started: a
    /// fault of ingest's own, not of a sensor's state.
    #[error("ingest state of sensor {sensor} cannot be encoded: {source}")]
    EncodeState {
        sensor: u32,
        #[source]
        source: serde_json::Error,
    },
    #[error("ingest: the commit thread {0}")]
    CommitThread(&'static str),
    #[error("open-flow table of sensor {sensor}: {source}")]
    FlowState {
        sensor: u32,
        #[source]
        source: FlowStateError,
    },
}

/// What happened to one capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Read to its end; `packets` new packets stored.
    Ingested,
    /// Every packet of it was already in the store.
    AlreadyIngested,
    /// Whole packets kept; the file ends inside a record at `offset`.
    Truncated { offset: u64 },
    /// Whole packets before `offset` kept; the record there is damaged.
    Malformed { offset: u64, reason: String },
    /// Not a capture file at all.
    Refused { reason: String },
    /// Ingest was asked to stop; what was read is committed.
    Stopped,
    /// Nothing in it yet (an empty or header-only file).
    Empty,
}

#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    pub sensor_id: u32,
    pub packets: u64,
    pub bytes: u64,
    pub outcome: FileOutcome,
}

impl FileReport {
    /// True when the operator must look at this file.
    pub fn is_problem(&self) -> bool {
        matches!(
            self.outcome,
            FileOutcome::Truncated { .. }
                | FileOutcome::Malformed { .. }
                | FileOutcome::Refused { .. }
        )
    }
}

/// Totals of one ingest run.
#[derive(Debug, Default)]
pub struct IngestReport {
    pub files: Vec<FileReport>,
    pub packets: u64,
    pub non_ip_packets: u64,
    pub undecodable_packets: u64,
    /// Link type -> packets stored but not decoded.
    pub unsupported_link_types: BTreeMap<u32, u64>,
    pub segments_written: u64,
    pub records_written: u64,
    /// Sebek records decoded (UDP on the sebek port, both ends).
    pub sebek_records: u64,
    /// Packets on the sebek port that are not valid sebek v3 records.
    pub sebek_rejected: u64,
    /// Sebek records cut by the capture's snaplen: kept with their header
    /// fields and the bytes captured, marked truncated (in `sebek_records`).
    pub sebek_truncated: u64,
}

impl IngestReport {
    pub fn has_problems(&self) -> bool {
        self.files.iter().any(FileReport::is_problem)
    }
}

/// Whether a file may still grow (follow mode) or is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMode {
    Final,
    Growing,
}

/// Per-sensor ingest state persisted in the index (`ingest_state` table).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SensorState {
    next_seq: u64,
    counters: TableCounters,
    sensor: SensorRecord,
    /// Sebek process state (absent in states written before sebek support).
    #[serde(default)]
    sebek: Tracker,
    /// What legacy database imports have brought (absent when none did).
    #[serde(default, skip_serializing_if = "LegacyMarks::is_empty")]
    legacy: LegacyMarks,
    /// Where the open-flow table is kept (absent in states written before
    /// checkpoints: their open flows are rows of the index's `open_flows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flows: Option<TableRef>,
}

/// Per-sensor progress and id reservations of legacy imports (`legacy`),
/// persisted in the sensor's ingest state (committed with each imported
/// segment). Part of the state format, so defined here with `SensorState`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyMarks {
    /// Legacy table -> key (after sensor_id) of the last row committed.
    #[serde(default)]
    pub done: BTreeMap<String, Vec<u64>>,
    /// Highest flow id (hflow flow_id or walleye_0_3 argus_id) reserved.
    #[serde(default)]
    pub reserved_flow: u32,
    /// Highest sebek ids reserved.
    #[serde(default)]
    pub reserved: SebekIds,
    /// The sensor row was taken from a legacy database.
    #[serde(default)]
    pub sensor_imported: bool,
    /// The schema of the database imported ("hflow", "walleye_0_3").
    #[serde(default)]
    pub schema: String,
}

impl LegacyMarks {
    pub fn is_empty(&self) -> bool {
        *self == LegacyMarks::default()
    }
}

/// What a legacy import needs to know about a sensor before it writes.
#[derive(Clone, Debug)]
pub struct LegacyView {
    /// This node is the sensor's origin (it has its ingest state).
    pub known: bool,
    /// The node holds segments of the sensor from elsewhere (sync, archive)
    /// without being its origin.
    pub held_from_elsewhere: bool,
    pub marks: LegacyMarks,
    /// Highest flow id assigned so far (natively or reserved by an import).
    pub last_flow_id: u32,
    /// Highest sebek ids assigned so far.
    pub sebek: SebekIds,
    /// The sensor row as this node has it (a default one for a new sensor).
    pub sensor: SensorRecord,
}

struct SensorIngest {
    state: SensorState,
    /// Loaded when the sensor's packets are first read (sebek datagrams and
    /// legacy imports never need it).
    table: Option<FlowTable>,
    /// Write a checkpoint of the table at the next seal: the run ends, or
    /// the table came from index rows that the same commit removes.
    checkpoint_due: bool,
    /// The table was restored from `open_flows` rows of an older version.
    clear_index_rows: bool,
    pcap: Option<SegmentBuilder>,
    /// (flow id, block) of each packet of the open pcap segment, repeats
    /// next to each other dropped: grouped per flow when it is sealed
    /// ([`group_flow_blocks`]). A push per packet, where a map of sets cost
    /// an allocation per new flow.
    flow_blocks: Vec<(u32, u32)>,
    sensor_dirty: bool,
    /// p0f handshake state, and fingerprints not yet in a record segment.
    p0f: Observer,
    fingerprints: Vec<OsFingerprintRecord>,
}

/// Drives ingest for one node.
pub struct Ingestor<'n> {
    node: &'n mut Node,
    sensors: HashMap<u32, SensorIngest>,
    sensor_override: Option<u32>,
    pub progress: ProgressBar,
    pub report: IngestReport,
    /// Checked between packets: when set, the file in progress is committed
    /// where it is and ingest returns (a later run resumes there).
    pub stop: Option<Arc<AtomicBool>>,
    /// Seals, writes and commits batches (and feeds the mirror) beside the
    /// packet thread.
    committer: Option<Committer>,
    /// The p0f signature database (`capture.p0f_fp`); `None`: no fingerprints.
    p0f: Option<Arc<Matcher>>,
    /// Load the mirror without its secondary indexes and build them once at
    /// the end: for a one-shot ingest into a mirror with no flows yet (the
    /// first load of a node, a decommissioned honeywall's whole pcap tree),
    /// where nobody queries the mirror meanwhile. Off for follow and serve.
    pub bulk_mirror: bool,
    /// Commit records to the store only, leaving the mirror behind it
    /// (`lumpy ingest --no-wait`): the next `node::open` (or serve) applies
    /// them. Off by default: ingest's rows are queryable when it returns.
    pub mirror_later: bool,
    /// Handshake state handed in for sensors not loaded yet.
    observers: HashMap<u32, Observer>,
    /// Open-flow tables handed in from an earlier `Ingestor` (serve's
    /// follow passes), with the pcap sequence they are current at.
    carried_tables: HashMap<u32, (FlowTable, u64)>,
}

/// One sebek datagram received by the live listener.
#[derive(Debug, Clone)]
pub struct SebekDatagram {
    /// The honeypot (the datagram's source address).
    pub src: std::net::Ipv4Addr,
    /// Receive time, seconds: the capture clock of sebek rows.
    pub received_sec: u32,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// What the origin's open-flow table has done for a sensor, for `status`.
#[derive(Clone, Debug)]
pub struct FlowTableReport {
    /// Flows closed early because the table was full.
    pub evicted: u64,
}

/// The open-flow table's counters of a sensor this node originates (`None`
/// for a sensor it only holds copies of).
pub fn flow_table_report(
    store: &crate::store::Store,
    sensor_id: u32,
) -> Result<Option<FlowTableReport>, IngestError> {
    let Some(bytes) = store.ingest_state(sensor_id)? else {
        return Ok(None);
    };
    let state: SensorState = serde_json::from_slice(&bytes).map_err(|e| IngestError::BadState {
        sensor: sensor_id,
        detail: e.to_string(),
    })?;
    Ok(Some(FlowTableReport {
        evicted: state.counters.evicted,
    }))
}

/// Capture bytes read between two updates of the progress bar.
const PROGRESS_STEP: u64 = 1 << 20;

/// Databases already loaded, by path: parsed (and warned about) once per
/// process, since `serve` makes an `Ingestor` per pass.
static P0F_CACHE: std::sync::Mutex<Vec<(PathBuf, Option<Arc<Matcher>>)>> =
    std::sync::Mutex::new(Vec::new());

fn cached_p0f(path: &Path) -> Option<Arc<Matcher>> {
    let Ok(mut cache) = P0F_CACHE.lock() else {
        return load_p0f(path);
    };
    if let Some((_, m)) = cache.iter().find(|(p, _)| p == path) {
        return m.clone();
    }
    let m = load_p0f(path);
    cache.push((path.to_path_buf(), m.clone()));
    m
}

/// Loads the p0f database named by `capture.p0f_fp`. Fingerprinting is off
/// (with a warning) when the file is missing or does not parse, and off
/// silently when the setting is empty: ingest never fails for it.
pub fn load_p0f(path: &Path) -> Option<Arc<Matcher>> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e,
                "p0f database unreadable: no OS fingerprints (capture.p0f_fp)");
            return None;
        }
    };
    match Matcher::parse(&text) {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e,
                "p0f database invalid: no OS fingerprints (capture.p0f_fp)");
            None
        }
    }
}

/// Bytes hashed to identify a file: its header and first packet record, in
/// its decompressed bytes, so a capture and its `.gz`/`.zst` share the key.
fn source_key(path: &Path, first_record_end: u64) -> Result<[u8; 32], IngestError> {
    let mut f = CaptureInput::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = blake3::Hasher::new();
    let mut limited = (&mut f).take(first_record_end);
    std::io::copy(&mut limited, &mut hasher).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(*hasher.finalize().as_bytes())
}

/// Hashes a file's prefix incrementally as ingest commits further into it
/// (offsets and bytes of the decompressed stream for a compressed file).
struct PrefixHasher {
    path: PathBuf,
    file: CaptureInput,
    hasher: blake3::Hasher,
    pos: u64,
    buf: Vec<u8>,
}

impl PrefixHasher {
    fn new(path: &Path) -> Result<Self, IngestError> {
        let file = CaptureInput::open(path).map_err(|source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(PrefixHasher {
            path: path.to_path_buf(),
            file,
            hasher: blake3::Hasher::new(),
            pos: 0,
            buf: vec![0u8; 1 << 20],
        })
    }

    /// Hashes up to `offset`; false when the file is shorter.
    fn advance_to(&mut self, offset: u64) -> Result<bool, IngestError> {
        let io = |source| IngestError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.seek_to(self.pos).map_err(io)?;
        while self.pos < offset {
            let want = ((offset - self.pos) as usize).min(self.buf.len());
            let n = self
                .file
                .read(&mut self.buf[..want])
                .map_err(|source| IngestError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(false);
            }
            self.hasher.update(&self.buf[..n]);
            self.pos += n as u64;
        }
        Ok(true)
    }

    fn hash(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

impl<'n> Ingestor<'n> {
    pub fn new(node: &'n mut Node, sensor_override: Option<u32>) -> Self {
        Ingestor {
            node,
            sensors: HashMap::new(),
            sensor_override,
            progress: ProgressBar::hidden(),
            report: IngestReport::default(),
            stop: None,
            committer: None,
            p0f: None,
            bulk_mirror: false,
            mirror_later: false,
            observers: HashMap::new(),
            carried_tables: HashMap::new(),
        }
        .with_p0f()
    }

    fn with_p0f(mut self) -> Self {
        self.p0f = cached_p0f(&self.node.config.capture.p0f_fp);
        self
    }

    /// Registers a sensor (writing its first sensor record) if this node has
    /// never seen it; `install_sec` and `name` apply only then.
    pub fn ensure_sensor(
        &mut self,
        sensor_id: u32,
        install_sec: u32,
        name: &str,
    ) -> Result<(), IngestError> {
        self.ensure_sensor_at(sensor_id, install_sec, name, None)
    }

    /// [`Ingestor::ensure_sensor`], recording the roo's management address
    /// in the first sensor record when it is known.
    pub fn ensure_sensor_at(
        &mut self,
        sensor_id: u32,
        install_sec: u32,
        name: &str,
        manage_ip: Option<std::net::IpAddr>,
    ) -> Result<(), IngestError> {
        if self.sensors.contains_key(&sensor_id)
            || self.node.store.ingest_state(sensor_id)?.is_some()
        {
            return Ok(());
        }
        self.load_sensor(sensor_id, install_sec, name)?;
        if let (Some(ip), Some(s)) = (manage_ip, self.sensors.get_mut(&sensor_id)) {
            s.state.sensor.manage_ip = ip.to_string();
        }
        self.seal_and_commit(sensor_id, None)
    }

    fn load_sensor(
        &mut self,
        sensor_id: u32,
        install_sec: u32,
        name: &str,
    ) -> Result<(), IngestError> {
        if self.sensors.contains_key(&sensor_id) {
            return Ok(());
        }
        let (state, dirty) = match self.node.store.ingest_state(sensor_id)? {
            Some(bytes) => {
                let state: SensorState =
                    serde_json::from_slice(&bytes).map_err(|e| IngestError::BadState {
                        sensor: sensor_id,
                        detail: e.to_string(),
                    })?;
                (state, false)
            }
            None => {
                let state = SensorState {
                    next_seq: 1,
                    counters: TableCounters::default(),
                    sensor: SensorRecord {
                        sensor_id,
                        version: 0,
                        install_sec,
                        last_upd_sec: install_sec,
                        state: "online".into(),
                        name: name.to_string(),
                        ..SensorRecord::default()
                    },
                    sebek: Tracker::default(),
                    legacy: LegacyMarks::default(),
                    flows: Some(TableRef::default()),
                };
                (state, true)
            }
        };
        self.sensors.insert(
            sensor_id,
            SensorIngest {
                state,
                table: None,
                checkpoint_due: false,
                clear_index_rows: false,
                pcap: None,
                flow_blocks: Vec::new(),
                sensor_dirty: dirty,
                p0f: self.observers.remove(&sensor_id).unwrap_or_default(),
                fingerprints: Vec::new(),
            },
        );
        Ok(())
    }

    /// Loads the sensor's open-flow table (the sensor must be loaded): the
    /// table an earlier pass handed in if it is current, else the newest
    /// checkpoint and the pcap segments committed after it.
    fn ensure_table(&mut self, sensor_id: u32) -> Result<(), IngestError> {
        let nets = self.node.config.honeypot_nets();
        let budget = self.node.config.capture.flow_table_bytes();
        let dir = self.node.dir.clone();
        let carried = self.carried_tables.remove(&sensor_id);
        let Some(s) = self.sensors.get_mut(&sensor_id) else {
            return Ok(());
        };
        if s.table.is_some() {
            return Ok(());
        }
        let flow_err = |source| IngestError::FlowState {
            sensor: sensor_id,
            source,
        };
        let counters = s.state.counters.clone();
        let table = match s.state.flows.clone() {
            Some(tref) => match carried {
                Some((table, at)) if at == tref.pcap_seq => table,
                _ => restore_table(
                    &self.node.store,
                    &dir,
                    sensor_id,
                    &tref,
                    &counters,
                    nets,
                    budget,
                )
                .map_err(flow_err)?,
            },
            None => {
                // Written by a version that kept open flows in the index:
                // read them once; the next commit moves them to a checkpoint.
                let rows = self.node.store.open_flows(sensor_id)?;
                s.state.flows = Some(TableRef::default());
                s.checkpoint_due = true;
                s.clear_index_rows = true;
                flow_state::from_index_rows(sensor_id, nets, budget, counters, rows)
                    .map_err(flow_err)?
            }
        };
        s.table = Some(table);
        Ok(())
    }

    /// Hands the loaded open-flow tables to a later `Ingestor` (see
    /// [`Ingestor::restore_tables`]), each with the pcap sequence it is
    /// current at: a later `Ingestor` uses it only if no other writer has
    /// committed pcap of that sensor since, and otherwise restores it from
    /// the store as a new process would.
    pub fn take_tables(&mut self) -> HashMap<u32, (FlowTable, u64)> {
        let mut out = std::mem::take(&mut self.carried_tables);
        for (sensor, s) in &mut self.sensors {
            if let (Some(table), Some(tref)) = (s.table.take(), s.state.flows.as_ref()) {
                out.insert(*sensor, (table, tref.pcap_seq));
            }
        }
        out
    }

    /// Hands in open-flow tables from an earlier `Ingestor`.
    pub fn restore_tables(&mut self, tables: HashMap<u32, (FlowTable, u64)>) {
        self.carried_tables.extend(tables);
    }

    /// Writes a checkpoint of every open-flow table that has seen packets
    /// since its last one, so that the next run replays nothing: at the
    /// end of `lumpy ingest`, and when `serve` stops.
    pub fn checkpoint_tables(&mut self) -> Result<(), IngestError> {
        let carried: Vec<u32> = self.carried_tables.keys().copied().collect();
        for sensor in carried {
            self.load_sensor(sensor, 0, &format!("Honeywall: {sensor}"))?;
            self.ensure_table(sensor)?;
        }
        let due: Vec<u32> = self
            .sensors
            .iter()
            .filter(|(_, s)| {
                s.table.is_some()
                    && (s.clear_index_rows
                        || s.state.flows.as_ref().is_some_and(|t| t.replay_bytes > 0))
            })
            .map(|(id, _)| *id)
            .collect();
        for sensor in due {
            if let Some(s) = self.sensors.get_mut(&sensor) {
                s.checkpoint_due = true;
            }
            self.seal_and_commit(sensor, None)?;
        }
        Ok(())
    }

    /// Hands in p0f handshake state from an earlier `Ingestor` (see
    /// [`Ingestor::take_observers`]).
    pub fn restore_observers(&mut self, observers: HashMap<u32, Observer>) {
        for (sensor, o) in observers {
            match self.sensors.get_mut(&sensor) {
                Some(s) => s.p0f = o,
                None => {
                    self.observers.insert(sensor, o);
                }
            }
        }
    }

    /// Takes the p0f handshake state of every sensor, for a later `Ingestor`.
    pub fn take_observers(&mut self) -> HashMap<u32, Observer> {
        let mut out = std::mem::take(&mut self.observers);
        for (id, s) in &mut self.sensors {
            out.insert(*id, std::mem::take(&mut s.p0f));
        }
        out
    }

    /// Stores fingerprints that did not come from this run's packets (an
    /// imported p0f log) in one record segment of `sensor_id`, committed
    /// like any other. The sensor must be registered (`ensure_sensor`).
    pub fn add_fingerprints(
        &mut self,
        sensor_id: u32,
        records: Vec<OsFingerprintRecord>,
    ) -> Result<(), IngestError> {
        if records.is_empty() {
            return Ok(());
        }
        self.load_sensor(sensor_id, 0, "")?;
        if let Some(s) = self.sensors.get_mut(&sensor_id) {
            s.fingerprints.extend(records);
        }
        self.seal_and_commit(sensor_id, None)?;
        self.flush_mirror()
    }

    /// Stores sebek datagrams received live (`capture.sebek_listen`) as the
    /// records of sensor `sensor_id`, through the same per-sensor sebek state
    /// as sebek packets read from captures, in one record segment. Returns
    /// (records decoded, datagrams rejected); a rejected datagram is counted
    /// and logged, never stored.
    pub fn add_sebek_datagrams(
        &mut self,
        sensor_id: u32,
        datagrams: &[SebekDatagram],
    ) -> Result<(u64, u64), IngestError> {
        if datagrams.is_empty() {
            return Ok((0, 0));
        }
        self.load_sensor(sensor_id, 0, "")?;
        let (mut ok, mut rejected) = (0u64, 0u64);
        if let Some(s) = self.sensors.get_mut(&sensor_id) {
            for d in datagrams {
                let at = Origin {
                    sensor_id,
                    src_ip: d.src,
                    pcap_sec: d.received_sec,
                };
                match s.state.sebek.observe(at, &d.payload) {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        rejected += 1;
                        tracing::debug!(src = %d.src, error = %e, "sebek datagram rejected");
                    }
                }
            }
        }
        self.report.sebek_records += ok;
        self.report.sebek_rejected += rejected;
        self.seal_and_commit(sensor_id, None)?;
        self.flush_mirror()?;
        Ok((ok, rejected))
    }

    /// Ingests every capture file found under `paths`.
    pub fn ingest_paths(&mut self, paths: &[PathBuf]) -> Result<(), IngestError> {
        let mut sources = Vec::new();
        for p in paths {
            if !p.exists() {
                self.report.files.push(FileReport {
                    path: p.clone(),
                    sensor_id: 0,
                    packets: 0,
                    bytes: 0,
                    outcome: FileOutcome::Refused {
                        reason: "no such file or directory".into(),
                    },
                });
                continue;
            }
            sources.extend(discover(p)?);
        }
        let total: u64 = sources
            .iter()
            .filter_map(|s| std::fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum();
        self.progress.set_length(total);
        for s in &sources {
            self.ingest_file(s, FileMode::Final)?;
        }
        self.checkpoint_tables()?;
        self.progress.finish_and_clear();
        self.flush_mirror()
    }

    /// Waits until every batch is committed and its records are in the mirror.
    pub fn flush_mirror(&mut self) -> Result<(), IngestError> {
        if let Some(c) = self.committer.take() {
            c.finish()?;
        }
        Ok(())
    }

    fn sensor_for(&self, source: &CaptureSource) -> u32 {
        self.sensor_override
            .or(source.sensor_id)
            .unwrap_or(self.node.identity.sensor_id)
    }

    /// Ingests one file from where its committed progress ends.
    pub fn ingest_file(
        &mut self,
        source: &CaptureSource,
        mode: FileMode,
    ) -> Result<FileReport, IngestError> {
        let sensor_id = self.sensor_for(source);
        let span = tracing::info_span!("ingest_file", path = %source.path.display(), sensor_id);
        let _guard = span.enter();
        let mut report = FileReport {
            path: source.path.clone(),
            sensor_id,
            packets: 0,
            bytes: 0,
            outcome: FileOutcome::Ingested,
        };
        match self.ingest_file_inner(source, sensor_id, mode, &mut report) {
            Ok(outcome) => report.outcome = outcome,
            Err(e) => return Err(e),
        }
        match &report.outcome {
            FileOutcome::Truncated { offset } if mode == FileMode::Final => {
                tracing::warn!(
                    offset,
                    "capture file is truncated: every whole packet before the cut was kept"
                )
            }
            FileOutcome::Malformed { offset, reason } => {
                tracing::warn!(offset, reason = %reason, "capture file is damaged: whole packets before the damage were kept")
            }
            FileOutcome::Refused { reason } => tracing::warn!(reason = %reason, "not ingested"),
            _ => tracing::info!(packets = report.packets, outcome = ?report.outcome, "file done"),
        }
        self.report.files.push(report.clone());
        Ok(report)
    }

    fn ingest_file_inner(
        &mut self,
        source: &CaptureSource,
        sensor_id: u32,
        mode: FileMode,
        report: &mut FileReport,
    ) -> Result<FileOutcome, IngestError> {
        let path = &source.path;
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(CaptureError::Io { source, .. }) => {
                return Err(IngestError::Io {
                    path: path.clone(),
                    source,
                });
            }
            Err(e) => return Ok(refusal(e, mode)),
        };
        let first_end = match reader.next_packet() {
            Ok(Some(p)) => p.next_offset,
            Ok(None) => return Ok(FileOutcome::Empty),
            Err(CaptureError::Truncated { offset, .. }) if mode == FileMode::Growing => {
                let _ = offset;
                return Ok(FileOutcome::Empty);
            }
            Err(e) => return Ok(read_failure(e)),
        };
        let key = source_key(path, first_end)?;
        let install = self.first_packet_sec(path)?;
        self.load_sensor(sensor_id, install, &format!("Honeywall: {sensor_id}"))?;
        let mut hasher = PrefixHasher::new(path)?;
        // A compressed file's length in decompressed bytes is not known
        // without reading it all: its progress says whether it was read to
        // the end, else resuming finds out (no new packet: already ingested).
        let file_len = hasher
            .file
            .known_len()
            .map_err(|source| IngestError::Io {
                path: path.clone(),
                source,
            })?
            .unwrap_or(u64::MAX);
        let mut reader = CaptureReader::open(path).map_err(|e| capture_io(path, e))?;
        // The same content may have been read earlier in this run (under
        // another name): its progress must be committed before we look.
        self.wait_committed()?;
        if let Some(progress) = self.node.store.source_progress(&key)? {
            let reaches = hasher.advance_to(progress.committed_offset)?;
            if !reaches {
                // It ends before what was read of a capture with the same
                // header and first packet: a cut copy of it, whose packets
                // are stored. Read again from the start they would be stored
                // twice; a different capture with the very same first packet
                // record is not something tcpdump writes.
                return Ok(FileOutcome::Refused {
                    reason: format!(
                        "it ends at byte {} of its capture data, before the {} bytes already ingested \
                         from a capture with the same header and first packet (a shorter copy of it): nothing added",
                        hasher.pos, progress.committed_offset
                    ),
                });
            }
            if hasher.hash() == progress.prefix_hash {
                if progress.committed_offset >= file_len
                    || (file_len == u64::MAX && progress.complete)
                {
                    self.progress.inc(progress.committed_offset);
                    return Ok(FileOutcome::AlreadyIngested);
                }
                reader
                    .seek_to(progress.committed_offset)
                    .map_err(|e| capture_io(path, e))?;
                self.progress.inc(progress.committed_offset);
            } else {
                // Same first packet, different content: a different file.
                hasher = PrefixHasher::new(path)?;
            }
        }
        self.read_packets(&mut reader, key, &mut hasher, sensor_id, mode, report, path)
    }

    #[allow(clippy::too_many_arguments)]
    fn read_packets(
        &mut self,
        reader: &mut CaptureReader,
        key: [u8; 32],
        hasher: &mut PrefixHasher,
        sensor_id: u32,
        mode: FileMode,
        report: &mut FileReport,
        path: &Path,
    ) -> Result<FileOutcome, IngestError> {
        let target = self.node.config.store.segment_target_bytes;
        let snaplen = match reader.format() {
            crate::capture::CaptureFormat::Pcap { snaplen, .. } => snaplen,
            crate::capture::CaptureFormat::PcapNg => 0,
        };
        self.ensure_table(sensor_id)?;
        let mut last_offset = hasher.pos;
        // The bar moves in steps: an update per packet cost 3 % of a bulk ingest.
        let mut shown_offset = last_offset;
        let outcome = loop {
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                break FileOutcome::Stopped;
            }
            let packet = match reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break FileOutcome::Ingested,
                Err(CaptureError::Truncated { offset, .. }) => {
                    break FileOutcome::Truncated { offset };
                }
                Err(CaptureError::Malformed { offset, reason, .. }) => {
                    break FileOutcome::Malformed { offset, reason };
                }
                Err(e) => return Err(capture_io(path, e)),
            };
            last_offset = packet.next_offset;
            if last_offset - shown_offset >= PROGRESS_STEP {
                self.progress.inc(last_offset - shown_offset);
                shown_offset = last_offset;
            }
            report.packets += 1;
            report.bytes += packet.data.len() as u64;
            let full = self.add_packet(sensor_id, &packet, snaplen)?;
            if full >= target || self.rows_pending(sensor_id) >= MAX_ROWS_PER_SEGMENT {
                let progress =
                    self.progress_at(hasher, key, sensor_id, last_offset, false, path)?;
                self.seal_and_commit(sensor_id, Some(progress))?;
            }
        };
        self.progress.inc(last_offset - shown_offset);
        let complete = mode == FileMode::Final && outcome == FileOutcome::Ingested;
        let progress = self.progress_at(hasher, key, sensor_id, last_offset, complete, path)?;
        self.seal_and_commit(sensor_id, Some(progress))?;
        self.report.packets += report.packets;
        if report.packets == 0 && outcome == FileOutcome::Ingested {
            return Ok(FileOutcome::AlreadyIngested);
        }
        Ok(outcome)
    }

    fn progress_at(
        &self,
        hasher: &mut PrefixHasher,
        key: [u8; 32],
        sensor_id: u32,
        offset: u64,
        complete: bool,
        path: &Path,
    ) -> Result<([u8; 32], SourceProgress), IngestError> {
        hasher.advance_to(offset)?;
        Ok((
            key,
            SourceProgress {
                committed_offset: offset,
                prefix_hash: hasher.hash(),
                sensor_id,
                complete,
                path: path.display().to_string(),
            },
        ))
    }

    fn first_packet_sec(&self, path: &Path) -> Result<u32, IngestError> {
        let mut r = CaptureReader::open(path).map_err(|e| capture_io(path, e))?;
        Ok(match r.next_packet() {
            Ok(Some(p)) => p.ts_sec as u32,
            _ => 0,
        })
    }

    /// Flow rows the sensor's next record segment would hold.
    /// p0f fingerprints count as rows: on a scan every flow brings one, so a
    /// segment of 16,384 flows also held 16,384 fingerprints, twice the
    /// records in flight of a flood's (the scan class peaked at 286 MiB, the
    /// floods at 237).
    fn rows_pending(&self, sensor_id: u32) -> usize {
        self.sensors.get(&sensor_id).map_or(0, |s| {
            s.table.as_ref().map_or(0, FlowTable::pending_rows) + s.fingerprints.len()
        })
    }

    /// Decodes, accounts and stores one packet; returns the raw size of the
    /// sensor's open pcap segment.
    fn add_packet(
        &mut self,
        sensor_id: u32,
        p: &Packet<'_>,
        snaplen: u32,
    ) -> Result<u64, IngestError> {
        let ts_ns = p
            .ts_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(p.ts_nsec));
        let needs_new = self
            .sensors
            .get(&sensor_id)
            .and_then(|s| s.pcap.as_ref())
            .is_some_and(|b| b.link_type() != p.link_type || b.snaplen() != snaplen);
        if needs_new {
            // One link type and snaplen per pcap segment: seal before switching.
            self.seal_and_commit(sensor_id, None)?;
        }
        let level = self.node.config.store.zstd_level;
        let sebek_port = self.node.config.capture.sebek_port;
        let Some(s) = self.sensors.get_mut(&sensor_id) else {
            return Ok(0);
        };
        let flow_id = match decode(p.link_type, p.data) {
            Ok(info) => match info.net {
                Some(net) => {
                    if is_sebek(&net, sebek_port) {
                        let at = Origin {
                            sensor_id,
                            src_ip: match net.src {
                                std::net::IpAddr::V4(v4) => v4,
                                std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
                            },
                            pcap_sec: u32::try_from(p.ts_sec).unwrap_or(u32::MAX),
                        };
                        observe_sebek(&mut s.state.sebek, at, p.data, &net, &mut self.report);
                    }
                    let flow_id = match s.table.as_mut() {
                        Some(table) => table.observe(ts_ns, p.orig_len, &net).flow_id,
                        None => 0,
                    };
                    if let Some(m) = &self.p0f {
                        let sec = u32::try_from(p.ts_sec).unwrap_or(u32::MAX);
                        if let Some(o) = s.p0f.observe(m, sec, p.data, &net)
                            && let Some(r) = crate::p0f::record(m, sensor_id, sec, flow_id, &o)
                        {
                            s.fingerprints.push(r);
                        }
                    }
                    flow_id
                }
                None => {
                    self.report.non_ip_packets += 1;
                    0
                }
            },
            Err(DecodeError::UnsupportedLinkType(n)) => {
                *self.report.unsupported_link_types.entry(n).or_default() += 1;
                0
            }
            Err(DecodeError::Malformed { .. }) => {
                self.report.undecodable_packets += 1;
                0
            }
        };
        let builder = s.pcap.get_or_insert_with(|| {
            SegmentBuilder::new(Kind::Pcap, sensor_id, p.link_type, level).with_snaplen(snaplen)
        });
        let block = builder.push_packet(ts_ns, flow_id, p.orig_len, p.data)?;
        if flow_id != 0 && s.flow_blocks.last() != Some(&(flow_id, block)) {
            s.flow_blocks.push((flow_id, block));
        }
        Ok(builder.raw_len())
    }

    /// Closes the sensor's open pcap segment and a record segment with every
    /// flow version that changed, and hands both with the file progress to
    /// the committer, which seals, writes and commits them in one index
    /// transaction and then updates the mirror. When more flows timed out
    /// than one record segment takes, record segments of their own follow.
    fn seal_and_commit(
        &mut self,
        sensor_id: u32,
        source: Option<([u8; 32], SourceProgress)>,
    ) -> Result<(), IngestError> {
        let mut source = source;
        loop {
            let more_to_close = self.seal_once(sensor_id, source.take())?;
            if !more_to_close {
                return Ok(());
            }
        }
    }

    /// One commit of [`Ingestor::seal_and_commit`]; true when flows that
    /// timed out are still waiting for a record segment.
    fn seal_once(
        &mut self,
        sensor_id: u32,
        source: Option<([u8; 32], SourceProgress)>,
    ) -> Result<bool, IngestError> {
        let level = self.node.config.store.zstd_level;
        let record_version = self.node.config.store.record_version;
        let dir = self.node.dir.clone();
        let Some(s) = self.sensors.get_mut(&sensor_id) else {
            return Ok(false);
        };
        let mut batch = CommitBatch::default();
        let mut pcap = None;
        if let Some(builder) = s.pcap.take().filter(|b| !b.is_empty()) {
            let seq = s.state.next_seq;
            s.state.next_seq += 1;
            for (flow, blocks) in group_flow_blocks(&mut s.flow_blocks) {
                batch.flow_blocks.push(((sensor_id, flow, seq), blocks));
            }
            if let Some(tref) = s.state.flows.as_mut() {
                tref.pcap_seq = seq;
                tref.replay_bytes = tref.replay_bytes.saturating_add(builder.raw_len());
            }
            pcap = Some((builder, seq));
        }
        let mut more_to_close = false;
        let mut flow_records = Vec::new();
        let mut latest_ns = 0;
        let seq_if_records = s.state.next_seq;
        if let Some(table) = s.table.as_mut() {
            table.expire();
            more_to_close = table.more_to_expire();
            let newest = table.newest_end_sec();
            if newest > s.state.sensor.last_upd_sec {
                s.state.sensor.last_upd_sec = newest;
                s.sensor_dirty = true;
            }
            if table.has_changes() {
                flow_records = table.take_changes(seq_if_records).records;
            }
            latest_ns = table.latest_ns();
            s.state.counters = table.counters();
            // Fragment ids travel in checkpoints, not in every commit.
            s.state.counters.fragments.clear();
        }
        let mut records = None;
        if !flow_records.is_empty()
            || s.sensor_dirty
            || s.state.sebek.has_changes()
            || !s.fingerprints.is_empty()
        {
            let seq = s.state.next_seq;
            s.state.next_seq += 1;
            let mut part = Vec::new();
            if s.sensor_dirty {
                s.state.sensor.version = seq;
                part.push(Record::Sensor(s.state.sensor.clone()));
                s.sensor_dirty = false;
            }
            // Sebek rows before flows: a socket whose flow is new in this
            // segment exercises the mirror's deferred join (STORAGE.md §4).
            part.extend(s.state.sebek.take_records(seq));
            part.extend(flow_records.into_iter().map(Record::Flow));
            // Fingerprints after flows: their flows are in the mirror first.
            part.extend(s.fingerprints.drain(..).map(Record::OsFingerprint));
            records = Some(RecordPart {
                seq,
                ts_ns: latest_ns,
                version: record_version,
                records: part,
            });
        }
        let checkpoint_now = !more_to_close
            && (s.checkpoint_due
                || s.state
                    .flows
                    .as_ref()
                    .is_some_and(|t| t.replay_bytes >= CHECKPOINT_REPLAY_BYTES));
        if checkpoint_now
            && let (Some(table), Some(tref)) = (s.table.as_ref(), s.state.flows.as_mut())
        {
            // Written and synced before the commit that names it.
            let cp = flow_state::write_checkpoint(
                &dir,
                sensor_id,
                tref.pcap_seq,
                table,
                tref.checkpoint.as_ref(),
            )
            .map_err(|source| IngestError::FlowState {
                sensor: sensor_id,
                source,
            })?;
            tref.checkpoint = Some(cp);
            tref.replay_bytes = 0;
            s.checkpoint_due = false;
            if std::mem::take(&mut s.clear_index_rows) {
                batch.open_flows_clear.push(sensor_id);
            }
        }
        let state_bytes =
            serde_json::to_vec(&s.state).map_err(|source| IngestError::EncodeState {
                sensor: sensor_id,
                source,
            })?;
        batch.ingest_states.push((sensor_id, state_bytes));
        batch.sources.extend(source);
        self.report.segments_written += u64::from(pcap.is_some()) + u64::from(records.is_some());
        self.report.records_written += records.as_ref().map_or(0, |r| r.records.len() as u64);
        let job = CommitJob {
            sensor_id,
            level,
            pcap,
            records,
            batch,
        };
        self.committer()?.send(job)?;
        Ok(more_to_close)
    }
}

impl Ingestor<'_> {
    /// The sensor as a legacy import sees it, without writing anything.
    pub fn legacy_view(&mut self, sensor_id: u32) -> Result<LegacyView, IngestError> {
        let known = self.sensors.contains_key(&sensor_id)
            || self.node.store.ingest_state(sensor_id)?.is_some();
        let held_from_elsewhere = !known
            && self
                .node
                .store
                .sensor_sequence()?
                .iter()
                .any(|((s, _), _)| *s == sensor_id);
        self.load_sensor(sensor_id, 0, &format!("Honeywall: {sensor_id}"))?;
        let Some(s) = self.sensors.get(&sensor_id) else {
            return Err(IngestError::BadState {
                sensor: sensor_id,
                detail: "not loaded".into(),
            });
        };
        Ok(LegacyView {
            known,
            held_from_elsewhere,
            marks: s.state.legacy.clone(),
            last_flow_id: s.table.as_ref().map_or(
                s.state.counters.next_flow_id.saturating_sub(1),
                FlowTable::last_flow_id,
            ),
            sebek: s.state.sebek.last_ids(),
            sensor: s.state.sensor.clone(),
        })
    }

    /// Commits one record segment of rows imported from a legacy database,
    /// with `marks` (the import's progress and id reservations) in the same
    /// index transaction, then applies it to the mirror. Mutable rows (flows,
    /// processes, the sensor) get the segment's sequence as their version;
    /// natively derived ids continue above `marks`' reservations, and
    /// imported command names are reused by later sebek records.
    pub fn commit_legacy(
        &mut self,
        sensor_id: u32,
        sensor: Option<SensorRecord>,
        mut records: Vec<Record>,
        marks: &LegacyMarks,
    ) -> Result<(), IngestError> {
        let install = sensor.as_ref().map_or(0, |s| s.install_sec);
        self.load_sensor(sensor_id, install, &format!("Honeywall: {sensor_id}"))?;
        let level = self.node.config.store.zstd_level;
        let Some(s) = self.sensors.get_mut(&sensor_id) else {
            return Ok(());
        };
        match s.table.as_mut() {
            Some(table) => table.reserve_ids(marks.reserved_flow),
            None if s.state.counters.next_flow_id <= marks.reserved_flow => {
                s.state.counters.next_flow_id = marks.reserved_flow.saturating_add(1);
            }
            None => {}
        }
        s.state.sebek.reserve_ids(&marks.reserved);
        let seq = s.state.next_seq;
        s.state.next_seq += 1;
        for r in &mut records {
            match r {
                Record::Flow(f) => f.version = seq,
                Record::Process(p) => p.version = seq,
                Record::Command(c) => s.state.sebek.adopt_command(&c.name, c.command_id),
                _ => {}
            }
        }
        if let Some(mut row) = sensor {
            row.version = seq;
            s.state.sensor = row.clone();
            s.sensor_dirty = false;
            records.insert(0, Record::Sensor(row));
        }
        s.state.legacy = marks.clone();
        if let Some(table) = s.table.as_ref() {
            s.state.counters = table.counters();
            s.state.counters.fragments.clear();
        }
        let ts_ns = u64::from(s.state.sensor.last_upd_sec) * 1_000_000_000;
        let state_bytes =
            serde_json::to_vec(&s.state).map_err(|source| IngestError::EncodeState {
                sensor: sensor_id,
                source,
            })?;
        let mut batch = CommitBatch::default();
        batch.ingest_states.push((sensor_id, state_bytes));
        self.report.segments_written += 1;
        self.report.records_written += records.len() as u64;
        let job = CommitJob {
            sensor_id,
            level,
            pcap: None,
            records: Some(RecordPart {
                seq,
                ts_ns,
                version: self.node.config.store.record_version,
                records,
            }),
            batch,
        };
        self.committer()?.send(job)
    }

    fn committer(&mut self) -> Result<&mut Committer, IngestError> {
        if self.committer.is_none() {
            let path = self.node.dir.join(crate::node::MIRROR_FILE);
            self.committer = Some(Committer::start(
                Arc::clone(&self.node.store),
                (!self.mirror_later).then_some(path),
                self.bulk_mirror,
            )?);
        }
        self.committer
            .as_mut()
            .ok_or(IngestError::CommitThread("is missing"))
    }

    /// Waits until every batch handed to the committer is in the store.
    fn wait_committed(&mut self) -> Result<(), IngestError> {
        match &mut self.committer {
            Some(c) => c.wait_committed(),
            None => Ok(()),
        }
    }
}

/// The open-flow table of a sensor as its committed state leaves it: the
/// newest checkpoint (or an empty table) and the pcap segments after it
/// replayed.
fn restore_table(
    store: &crate::store::Store,
    dir: &Path,
    sensor_id: u32,
    tref: &TableRef,
    counters: &TableCounters,
    nets: Vec<crate::net::IpNet>,
    budget: usize,
) -> Result<FlowTable, FlowStateError> {
    let (mut table, from_seq) = match &tref.checkpoint {
        Some(cp) => {
            match flow_state::load_checkpoint(dir, sensor_id, cp, nets.clone(), budget) {
                Ok(t) => (t, cp.pcap_seq),
                Err(e) => {
                    // The flows open at the checkpoint are lost to the table
                    // (their packets are not: they are in pcap segments and
                    // published rows); flows seen again start anew.
                    tracing::warn!(sensor = sensor_id, error = %e, "open-flow checkpoint unusable: continuing with the flows opened after it");
                    let fresh = TableCounters {
                        fragments: Vec::new(),
                        ..counters.clone()
                    };
                    (
                        FlowTable::restore(sensor_id, nets, budget, fresh, []),
                        cp.pcap_seq,
                    )
                }
            }
        }
        None => (FlowTable::new(sensor_id, nets, budget), 0),
    };
    if tref.pcap_seq > from_seq {
        let done = flow_state::replay(store, sensor_id, from_seq, tref.pcap_seq, &mut table)?;
        tracing::info!(
            sensor = sensor_id,
            segments = done.segments,
            packets = done.packets,
            "open-flow table rebuilt from the pcap segments after its checkpoint"
        );
        if done.diverged > 0 || done.missing > 0 {
            tracing::warn!(
                sensor = sensor_id,
                diverged = done.diverged,
                missing_segments = done.missing,
                "open-flow replay differs from the original ingest (budget changed, or segments missing)"
            );
        }
    }
    // Ids reserved by legacy imports, and any the replay could not see.
    table.reserve_ids(counters.next_flow_id.saturating_sub(1));
    Ok(table)
}

/// Each flow's blocks, in flow order, blocks ascending and distinct;
/// leaves `pairs` empty (its allocation kept for the next segment).
fn group_flow_blocks(pairs: &mut Vec<(u32, u32)>) -> Vec<(u32, Vec<u32>)> {
    pairs.sort_unstable();
    pairs.dedup();
    let mut out: Vec<(u32, Vec<u32>)> = Vec::new();
    for (flow, block) in pairs.drain(..) {
        match out.last_mut() {
            Some((f, blocks)) if *f == flow => blocks.push(block),
            _ => out.push((flow, vec![block])),
        }
    }
    out
}

/// Builds the record segment of one commit.
fn build_record_segment(
    sensor_id: u32,
    seq: u64,
    part: &RecordPart,
    compressor: &mut BlockCompressor,
) -> Result<SealedSegment, IngestError> {
    let mut b = SegmentBuilder::new(Kind::Records, sensor_id, 0, compressor.level());
    let mut line = Vec::with_capacity(512);
    let ts_ns = part.ts_ns;
    for r in &part.records {
        line.clear();
        encode_item(r, part.version, &mut line);
        let t = match r {
            Record::Flow(f) => u64::from(f.end_sec()) * 1_000_000_000,
            Record::Process(p) => u64::from(p.pcap_time_max) * 1_000_000_000,
            Record::SysIo(x) => u64::from(x.pcap_time) * 1_000_000_000,
            Record::SysSocket(x) => u64::from(x.pcap_time) * 1_000_000_000,
            Record::SbkLoss(x) => u64::from(x.time) * 1_000_000_000,
            Record::Ids(x) => u64::from(x.sec.max(0).unsigned_abs()) * 1_000_000_000,
            Record::Argus(x) => u64::from(x.end_sec) * 1_000_000_000,
            Record::OsFingerprint(x) => u64::from(x.time) * 1_000_000_000,
            Record::Sensor(_)
            | Record::Os(_)
            | Record::IdsSig(_)
            | Record::ProcessTree(_)
            | Record::Command(_)
            | Record::ProcessToCom(_) => ts_ns,
        };
        b.push_record_line(t, &line)?;
    }
    Ok(b.seal_with(seq, compressor)?)
}

/// A UDP packet from and to the sebek port, as hflow2 selects them.
fn is_sebek(net: &crate::capture::NetInfo, port: u16) -> bool {
    net.proto == 17 && net.src_port == port && net.dst_port == port && net.fragment.is_none()
}

/// Feeds one sebek packet to the sensor's tracker; a packet that is not valid
/// sebek v3 (or not IPv4, which sebek never sends) is counted and skipped.
fn observe_sebek(
    tracker: &mut Tracker,
    at: Origin,
    frame: &[u8],
    net: &crate::capture::NetInfo,
    report: &mut IngestReport,
) {
    let udp = net.transport.and_then(|span| frame.get(span.range()));
    let payload = udp.and_then(|udp| udp.get(8..));
    // The UDP length says how long the payload was on the wire: longer than
    // the bytes captured means the snaplen cut it (the record is kept, marked
    // truncated); not longer, a short record is malformed.
    let wire_len = udp
        .and_then(|u| u.get(4..6))
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])).saturating_sub(8));
    let truncated_before = tracker.counters.truncated;
    let result = match payload {
        Some(payload) if net.src.is_ipv4() => tracker
            .observe_captured(at, payload, wire_len)
            .map_err(|e| e.to_string()),
        _ => {
            tracker.counters.rejected += 1;
            Err("not an IPv4 UDP datagram".into())
        }
    };
    report.sebek_truncated += tracker.counters.truncated - truncated_before;
    match result {
        Ok(()) => report.sebek_records += 1,
        Err(reason) => {
            report.sebek_rejected += 1;
            tracing::debug!(reason = %reason, "packet on the sebek port skipped");
        }
    }
}

fn capture_io(path: &Path, e: CaptureError) -> IngestError {
    match e {
        CaptureError::Io { source, .. } => IngestError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => IngestError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn refusal(e: CaptureError, mode: FileMode) -> FileOutcome {
    match e {
        // A file tcpdump has just created may not have its header yet.
        CaptureError::NotACapture { .. } | CaptureError::Truncated { .. }
            if mode == FileMode::Growing =>
        {
            FileOutcome::Empty
        }
        CaptureError::NotACapture { reason, .. } => FileOutcome::Refused { reason },
        other => read_failure(other),
    }
}

fn read_failure(e: CaptureError) -> FileOutcome {
    match e {
        CaptureError::Truncated { offset, .. } => FileOutcome::Truncated { offset },
        CaptureError::Malformed { offset, reason, .. } => FileOutcome::Malformed { offset, reason },
        CaptureError::NotACapture { reason, .. } => FileOutcome::Refused { reason },
        CaptureError::Io { source, .. } => FileOutcome::Refused {
            reason: source.to_string(),
        },
    }
}

/// What follow mode remembers between polls: each file's size when it was
/// last ingested, so unchanged files cost one `stat`.
#[derive(Default)]
pub struct FollowState {
    seen: HashMap<PathBuf, u64>,
    /// p0f handshake state per sensor, kept between passes that use a new
    /// `Ingestor` each (serve), so a SYN+ACK in the next pass finds its SYN.
    p0f: HashMap<u32, Observer>,
    /// Open-flow tables per sensor, kept between passes for the same
    /// reason (and so that a pass does not re-read a checkpoint).
    tables: HashMap<u32, (FlowTable, u64)>,
}

/// One pass over `dirs`: ingests every new or grown capture file that is
/// complete (a newer file follows it in its directory, or it has not changed
/// for `settle`) or has gained a full segment's worth of bytes.
pub fn follow_once(
    ingestor: &mut Ingestor<'_>,
    dirs: &[PathBuf],
    settle: Duration,
    state: &mut FollowState,
) -> Result<(), IngestError> {
    ingestor.restore_observers(std::mem::take(&mut state.p0f));
    ingestor.restore_tables(std::mem::take(&mut state.tables));
    let result = follow_pass(ingestor, dirs, settle, state);
    state.p0f = ingestor.take_observers();
    state.tables = ingestor.take_tables();
    result
}

/// Ends following: checkpoints the open-flow tables `state` carries, so
/// that the next start replays nothing.
pub fn follow_finish(
    ingestor: &mut Ingestor<'_>,
    state: &mut FollowState,
) -> Result<(), IngestError> {
    ingestor.restore_tables(std::mem::take(&mut state.tables));
    ingestor.checkpoint_tables()?;
    ingestor.flush_mirror()
}

fn follow_pass(
    ingestor: &mut Ingestor<'_>,
    dirs: &[PathBuf],
    settle: Duration,
    state: &mut FollowState,
) -> Result<(), IngestError> {
    let target = ingestor.node.config.store.segment_target_bytes;
    for dir in dirs {
        let sources = match discover(dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot scan capture directory");
                continue;
            }
        };
        for (i, source) in sources.iter().enumerate() {
            let Ok(meta) = std::fs::metadata(&source.path) else {
                continue;
            };
            let len = meta.len();
            let done = state.seen.get(&source.path).copied().unwrap_or(0);
            if len == done {
                continue;
            }
            let newer_follows = sources[i + 1..]
                .iter()
                .any(|o| o.path.parent() == source.path.parent());
            let settled = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= settle);
            let mode = if newer_follows || settled {
                FileMode::Final
            } else {
                FileMode::Growing
            };
            if mode == FileMode::Growing
                && (len.saturating_sub(done) < target || is_compressed(&source.path))
            {
                // A compressed file is read once it is whole (logrotate
                // writes it in one go): its stream cannot be resumed mid-way.
                continue;
            }
            let report = ingestor.ingest_file(source, mode)?;
            if report.outcome == FileOutcome::Stopped {
                return Ok(());
            }
            state.seen.insert(source.path.clone(), len);
        }
    }
    ingestor.flush_mirror()
}

fn is_compressed(path: &Path) -> bool {
    CaptureInput::open(path).is_ok_and(|i| i.compression() != Compression::None)
}

/// Watches `dirs` until `stop` returns true, polling every `poll`.
pub fn follow(
    ingestor: &mut Ingestor<'_>,
    dirs: &[PathBuf],
    settle: Duration,
    poll: Duration,
    mut stop: impl FnMut() -> bool,
) -> Result<(), IngestError> {
    let mut state = FollowState::default();
    while !stop() {
        follow_once(ingestor, dirs, settle, &mut state)?;
        std::thread::sleep(poll);
    }
    follow_finish(ingestor, &mut state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sensor's ingest state as `ingest_state` held it when `LegacyMarks`
    /// was defined in `legacy` (before it moved here with the rest of the
    /// state format): it must decode, and encode back to the same bytes.
    const STATE_WITH_LEGACY: &str = r#"{"next_seq":5,"counters":{"next_flow_id":0,"latest_ns":0,"fragments":[],"evicted":0},"sensor":{"sensor_id":7,"version":0,"install_sec":0,"last_upd_sec":0,"state":"","name":"roo","timezone":0,"country_code":"","latitude":0,"longitude":0,"notes":"","network_type":""},"sebek":{"next_process_id":0,"next_command_id":0,"next_read_id":0,"next_write_id":0,"next_open_id":0,"next_socket_id":0,"commands":{},"hosts":{},"counters":{"records":0,"rejected":0,"lost":0,"truncated":0}},"legacy":{"done":{"flow":[7,42]},"reserved_flow":42,"reserved":{"process":3,"command":0,"read":0,"write":0,"open":0,"socket":0},"sensor_imported":true,"schema":"hflow"}}"#;

    #[test]
    fn existing_state_with_legacy_marks_decodes_byte_for_byte() {
        let state: SensorState = serde_json::from_str(STATE_WITH_LEGACY).unwrap();
        assert_eq!(state.next_seq, 5);
        assert_eq!(state.sensor.sensor_id, 7);
        let m = &state.legacy;
        assert_eq!(m.done.get("flow"), Some(&vec![7, 42]));
        assert_eq!(m.reserved_flow, 42);
        assert_eq!(m.reserved.process, 3);
        assert!(m.sensor_imported);
        assert_eq!(m.schema, "hflow");
        assert_eq!(serde_json::to_string(&state).unwrap(), STATE_WITH_LEGACY);
    }

    #[test]
    fn state_without_legacy_marks_keeps_none() {
        let (head, _) = STATE_WITH_LEGACY.split_once(r#","legacy":"#).unwrap();
        let without = format!("{head}}}");
        let state: SensorState = serde_json::from_str(&without).unwrap();
        assert!(state.legacy.is_empty());
        assert_eq!(serde_json::to_string(&state).unwrap(), without);
    }
}
