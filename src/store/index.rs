//! The redb index of a store (docs/STORAGE.md §6).
//!
//! Owns the table definitions, the fixed little-endian encoding of their
//! values and every read and write of `index.redb`. Tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | bytes (store format version, node identity) |
//! | `segments` | segment id | [`SegmentMeta`], 64 bytes |
//! | `sensor_seq` | (sensor, origin seq) | segment id |
//! | `flow_blocks` | (sensor, flow id, origin seq) | u32 block indices |
//! | `ingest_sources` | blake3 of a capture file's first 64 KiB | [`SourceProgress`] |
//! | `ingest_state` | sensor | opaque bytes owned by `ingest` |
//! | `open_flows` | (sensor, flow key) | opaque bytes owned by `flows` |
//! | `known_segments` | (sensor, origin seq) | a child's catalogue entry not held here |
//! | `link_state` | child name | JSON health of a pull link |
//! | `pulled_by_peer` | (parent name, sensor, origin seq) | () : a pcap segment that parent has taken |
//!
//! Does not read or write segment files.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::{Kind, STORE_FORMAT_VERSION, SegmentId, Store, StoreError};

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const SEGMENTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("segments");
pub(crate) const SENSOR_SEQ: TableDefinition<(u32, u64), &[u8; 32]> =
    TableDefinition::new("sensor_seq");
pub(crate) const FLOW_BLOCKS: TableDefinition<(u32, u32, u64), &[u8]> =
    TableDefinition::new("flow_blocks");
pub(crate) const SOURCES: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("ingest_sources");
pub(crate) const INGEST_STATE: TableDefinition<u32, &[u8]> = TableDefinition::new("ingest_state");
pub(crate) const OPEN_FLOWS: TableDefinition<(u32, &[u8]), &[u8]> =
    TableDefinition::new("open_flows");
pub(crate) const KNOWN: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("known_segments");
pub(crate) const LINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("link_state");
pub(crate) const PULLED: TableDefinition<(&str, u32, u64), ()> =
    TableDefinition::new("pulled_by_peer");

/// Length of an encoded [`SegmentMeta`].
pub const SEGMENT_META_LEN: usize = 64;

/// What the index knows of one segment without opening it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    pub id: SegmentId,
    pub sensor_id: u32,
    pub kind: Kind,
    pub origin_seq: u64,
    pub time_first_ns: u64,
    pub time_last_ns: u64,
    pub item_count: u64,
    /// Bytes of the items before compression.
    pub raw_bytes: u64,
    /// Bytes of the segment file.
    pub stored_bytes: u64,
    pub block_count: u32,
    pub link_type: u32,
}

impl SegmentMeta {
    pub fn of(seg: &super::SealedSegment) -> Self {
        SegmentMeta {
            id: seg.id,
            sensor_id: seg.header.sensor_id,
            kind: seg.header.kind,
            origin_seq: seg.header.origin_seq,
            time_first_ns: seg.header.time_first_ns,
            time_last_ns: seg.header.time_last_ns,
            item_count: seg.header.item_count,
            raw_bytes: seg.raw_bytes,
            stored_bytes: seg.bytes.len() as u64,
            block_count: seg.block_count,
            link_type: seg.header.link_type,
        }
    }

    /// Fixed 64-byte little-endian encoding (docs/STORAGE.md §6.2).
    pub fn encode(&self) -> [u8; SEGMENT_META_LEN] {
        let mut b = [0u8; SEGMENT_META_LEN];
        b[0..4].copy_from_slice(&self.sensor_id.to_le_bytes());
        b[4] = self.kind as u8;
        b[8..16].copy_from_slice(&self.origin_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.time_first_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.time_last_ns.to_le_bytes());
        b[32..40].copy_from_slice(&self.item_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.raw_bytes.to_le_bytes());
        b[48..56].copy_from_slice(&self.stored_bytes.to_le_bytes());
        b[56..60].copy_from_slice(&self.block_count.to_le_bytes());
        b[60..64].copy_from_slice(&self.link_type.to_le_bytes());
        b
    }

    pub fn decode(id: SegmentId, b: &[u8]) -> Result<Self, StoreError> {
        if b.len() != SEGMENT_META_LEN {
            return Err(StoreError::CorruptEntry(format!(
                "segments[{id}] is {} bytes, expected {SEGMENT_META_LEN}",
                b.len()
            )));
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let kind = Kind::from_u8(b[4])
            .ok_or_else(|| StoreError::CorruptEntry(format!("segments[{id}] has kind {}", b[4])))?;
        Ok(SegmentMeta {
            id,
            sensor_id: u32_at(0),
            kind,
            origin_seq: u64_at(8),
            time_first_ns: u64_at(16),
            time_last_ns: u64_at(24),
            item_count: u64_at(32),
            raw_bytes: u64_at(40),
            stored_bytes: u64_at(48),
            block_count: u32_at(56),
            link_type: u32_at(60),
        })
    }
}

/// How far a capture file has been ingested (docs/STORAGE.md §6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceProgress {
    /// Byte offset after the last packet that is in a committed segment.
    pub committed_offset: u64,
    /// blake3 of the file's bytes `[0, committed_offset)`.
    pub prefix_hash: [u8; 32],
    /// Sensor the file's packets were attributed to.
    pub sensor_id: u32,
    /// True once the file was read to its end and is not expected to grow.
    pub complete: bool,
    /// Path the file was last ingested from (informational).
    pub path: String,
}

impl SourceProgress {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(48 + self.path.len());
        b.extend_from_slice(&self.committed_offset.to_le_bytes());
        b.extend_from_slice(&self.prefix_hash);
        b.extend_from_slice(&self.sensor_id.to_le_bytes());
        b.push(u8::from(self.complete));
        b.extend_from_slice(&[0u8; 3]);
        b.extend_from_slice(self.path.as_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        if b.len() < 48 {
            return Err(StoreError::CorruptEntry(
                "ingest_sources entry too short".into(),
            ));
        }
        let mut off = [0u8; 8];
        off.copy_from_slice(&b[0..8]);
        let mut prefix_hash = [0u8; 32];
        prefix_hash.copy_from_slice(&b[8..40]);
        Ok(SourceProgress {
            committed_offset: u64::from_le_bytes(off),
            prefix_hash,
            sensor_id: u32::from_le_bytes([b[40], b[41], b[42], b[43]]),
            complete: b[44] != 0,
            path: String::from_utf8_lossy(&b[48..]).into_owned(),
        })
    }
}

/// (sensor, origin seq) and the segment id at that place.
pub type SequenceEntry = ((u32, u64), SegmentId);
/// (sensor, flow id, origin seq of a pcap segment) and block indices.
pub type FlowBlocksEntry = ((u32, u32, u64), Vec<u32>);
/// Encoded flow key and encoded open-flow state.
pub type OpenFlowEntry = (Vec<u8>, Vec<u8>);

/// Everything one ingest step makes visible at once: one redb commit.
#[derive(Default)]
pub struct CommitBatch {
    pub segments: Vec<SegmentMeta>,
    /// ((sensor, flow id, origin seq of the pcap segment), block indices).
    pub flow_blocks: Vec<FlowBlocksEntry>,
    pub sources: Vec<([u8; 32], SourceProgress)>,
    pub ingest_states: Vec<(u32, Vec<u8>)>,
    /// Sensors whose `open_flows` rows (kept by versions before open-flow
    /// checkpoints) are all removed.
    pub open_flows_clear: Vec<u32>,
}

/// How much longer a pcap item's header is than a classic pcap record's.
const PCAP_ITEM_OVER_RECORD: u64 = 20 - 16;

/// Summary counts for `lumpy status`.
#[derive(Clone, Debug, Default)]
pub struct StoreTotals {
    pub segments: u64,
    pub pcap_segments: u64,
    pub record_segments: u64,
    /// Record versions in record segments.
    pub records: u64,
    /// The stored packets as classic pcap records (16-byte record header
    /// and the captured bytes): what the capture files held, less their
    /// 24-byte file headers.
    pub raw_bytes: u64,
    /// Decompressed bytes of the record segments (JSON lines).
    pub record_bytes: u64,
    pub stored_bytes: u64,
    pub packets: u64,
    pub time_first_ns: Option<u64>,
    pub time_last_ns: Option<u64>,
}

impl Store {
    pub(crate) fn init_tables(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.index_err(e))?;
            let found = meta
                .get("store_format")
                .map_err(|e| self.index_err(e))?
                .map(|v| {
                    let b = v.value();
                    if b.len() == 4 {
                        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                    } else {
                        u32::MAX
                    }
                });
            match found {
                Some(v) if v > STORE_FORMAT_VERSION => {
                    return Err(StoreError::UnsupportedStoreVersion {
                        path: self.index_path(),
                        found: v,
                        supported: STORE_FORMAT_VERSION,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert(
                        "store_format",
                        STORE_FORMAT_VERSION.to_le_bytes().as_slice(),
                    )
                    .map_err(|e| self.index_err(e))?;
                }
            }
            txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
            txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
            txn.open_table(FLOW_BLOCKS).map_err(|e| self.index_err(e))?;
            txn.open_table(SOURCES).map_err(|e| self.index_err(e))?;
            txn.open_table(INGEST_STATE)
                .map_err(|e| self.index_err(e))?;
            txn.open_table(OPEN_FLOWS).map_err(|e| self.index_err(e))?;
            txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
            txn.open_table(LINKS).map_err(|e| self.index_err(e))?;
            txn.open_table(PULLED).map_err(|e| self.index_err(e))?;
        }
        txn.commit().map_err(|e| self.index_err(e))
    }

    /// Makes a batch visible in one redb transaction.
    pub fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut segments = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
            let mut seq = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
            for m in &batch.segments {
                segments
                    .insert(&m.id.0, m.encode().as_slice())
                    .map_err(|e| self.index_err(e))?;
                seq.insert((m.sensor_id, m.origin_seq), &m.id.0)
                    .map_err(|e| self.index_err(e))?;
            }
            let mut fb = txn.open_table(FLOW_BLOCKS).map_err(|e| self.index_err(e))?;
            let mut buf = Vec::new();
            for (key, blocks) in &batch.flow_blocks {
                buf.clear();
                for b in blocks {
                    buf.extend_from_slice(&b.to_le_bytes());
                }
                fb.insert(*key, buf.as_slice())
                    .map_err(|e| self.index_err(e))?;
            }
            let mut sources = txn.open_table(SOURCES).map_err(|e| self.index_err(e))?;
            for (key, p) in &batch.sources {
                sources
                    .insert(key, p.encode().as_slice())
                    .map_err(|e| self.index_err(e))?;
            }
            let mut states = txn
                .open_table(INGEST_STATE)
                .map_err(|e| self.index_err(e))?;
            for (sensor, bytes) in &batch.ingest_states {
                states
                    .insert(*sensor, bytes.as_slice())
                    .map_err(|e| self.index_err(e))?;
            }
            if !batch.open_flows_clear.is_empty() {
                let mut open = txn.open_table(OPEN_FLOWS).map_err(|e| self.index_err(e))?;
                for sensor in &batch.open_flows_clear {
                    // Keys are (sensor, 37-byte flow key): this range is all of one sensor's.
                    open.retain_in((*sensor, &[][..])..=(*sensor, &[0xffu8; 64][..]), |_, _| {
                        false
                    })
                    .map_err(|e| self.index_err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }

    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(META).map_err(|e| self.index_err(e))?;
        Ok(t.get(name)
            .map_err(|e| self.index_err(e))?
            .map(|v| v.value().to_vec()))
    }

    pub fn meta_set(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(META).map_err(|e| self.index_err(e))?;
            t.insert(name, value).map_err(|e| self.index_err(e))?;
        }
        txn.commit().map_err(|e| self.index_err(e))
    }

    pub fn segment_meta(&self, id: &SegmentId) -> Result<Option<SegmentMeta>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
        match t.get(&id.0).map_err(|e| self.index_err(e))? {
            Some(v) => Ok(Some(SegmentMeta::decode(*id, v.value())?)),
            None => Ok(None),
        }
    }

    pub fn has_segment(&self, id: &SegmentId) -> Result<bool, StoreError> {
        Ok(self.segment_meta(id)?.is_some())
    }

    /// Every indexed segment, in id order.
    pub fn all_segments(&self) -> Result<Vec<SegmentMeta>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.index_err(e))? {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            out.push(SegmentMeta::decode(SegmentId(*k.value()), v.value())?);
        }
        Ok(out)
    }

    /// The per-sensor sequence: (sensor, seq) -> segment id, in key order.
    pub fn sensor_sequence(&self) -> Result<Vec<SequenceEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.index_err(e))? {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            out.push((k.value(), SegmentId(*v.value())));
        }
        Ok(out)
    }

    /// The pcap segments and blocks holding the packets of one flow.
    pub fn flow_blocks(
        &self,
        sensor: u32,
        flow_id: u32,
    ) -> Result<Vec<(u64, Vec<u32>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(FLOW_BLOCKS).map_err(|e| self.index_err(e))?;
        let range = t
            .range((sensor, flow_id, 0)..=(sensor, flow_id, u64::MAX))
            .map_err(|e| self.index_err(e))?;
        let mut out = Vec::new();
        for row in range {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            out.push((k.value().2, decode_blocks(v.value())?));
        }
        Ok(out)
    }

    /// Every flow_blocks entry (for verify).
    /// Calls `each` with every flow_blocks entry in key order, one at a
    /// time: the table has an entry per flow and segment, far too many to
    /// hold at once on a large store.
    pub fn for_each_flow_blocks(
        &self,
        mut each: impl FnMut(FlowBlocksEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(FLOW_BLOCKS).map_err(|e| self.index_err(e))?;
        for row in t.iter().map_err(|e| self.index_err(e))? {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            each((k.value(), decode_blocks(v.value())?))?;
        }
        Ok(())
    }

    pub fn source_progress(&self, key: &[u8; 32]) -> Result<Option<SourceProgress>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(SOURCES).map_err(|e| self.index_err(e))?;
        match t.get(key).map_err(|e| self.index_err(e))? {
            Some(v) => Ok(Some(SourceProgress::decode(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn ingest_state(&self, sensor: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn
            .open_table(INGEST_STATE)
            .map_err(|e| self.index_err(e))?;
        Ok(t.get(sensor)
            .map_err(|e| self.index_err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Every open flow of a sensor: (flow key bytes, state bytes).
    pub fn open_flows(&self, sensor: u32) -> Result<Vec<OpenFlowEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(OPEN_FLOWS).map_err(|e| self.index_err(e))?;
        let lo: (u32, &[u8]) = (sensor, &[]);
        let mut out = Vec::new();
        for row in t.range(lo..).map_err(|e| self.index_err(e))? {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            let (s, key) = k.value();
            if s != sensor {
                break;
            }
            out.push((key.to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Totals over the whole index.
    pub fn totals(&self) -> Result<StoreTotals, StoreError> {
        let mut t = StoreTotals::default();
        for m in self.all_segments()? {
            t.segments += 1;
            t.stored_bytes += m.stored_bytes;
            match m.kind {
                Kind::Pcap => {
                    // An item's header is 20 bytes (STORAGE.md §3), a pcap
                    // record's 16.
                    t.raw_bytes += m
                        .raw_bytes
                        .saturating_sub(m.item_count.saturating_mul(PCAP_ITEM_OVER_RECORD));
                    t.pcap_segments += 1;
                    t.packets += m.item_count;
                    if m.item_count > 0 {
                        t.time_first_ns = Some(
                            t.time_first_ns
                                .map_or(m.time_first_ns, |x| x.min(m.time_first_ns)),
                        );
                        t.time_last_ns = Some(
                            t.time_last_ns
                                .map_or(m.time_last_ns, |x| x.max(m.time_last_ns)),
                        );
                    }
                }
                Kind::Records => {
                    t.record_bytes += m.raw_bytes;
                    t.record_segments += 1;
                    t.records += m.item_count;
                }
            }
        }
        Ok(t)
    }
}

fn decode_blocks(b: &[u8]) -> Result<Vec<u32>, StoreError> {
    if !b.len().is_multiple_of(4) {
        return Err(StoreError::CorruptEntry(
            "flow_blocks value is not a list of u32".into(),
        ));
    }
    Ok(b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Copies every entry of `def` from one transaction to another.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, redb::Error> {
    let src = from.open_table(def)?;
    let mut dst = to.open_table(def)?;
    let mut copied = 0;
    for item in src.iter()? {
        let (k, v) = item?;
        dst.insert(k.value(), v.value())?;
        copied += 1;
    }
    Ok(copied)
}

/// Reads every key and value of `def` as redb decodes them.
fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, redb::Error> {
    let table = txn.open_table(def)?;
    let mut read = 0;
    for item in table.iter()? {
        let (k, v) = item?;
        std::hint::black_box((k.value(), v.value()));
        read += 1;
    }
    Ok(read)
}

/// `read_table` with redb's panics on a damaged page caught.
fn read_table_guarded<K: redb::Key + 'static, V: redb::Value + 'static>(
    store: &Store,
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    store.guarded(|| read_table(txn, def).map_err(|e| store.index_err(e)))
}

/// Runs `$f(.., table)` for every table of the index, in a fixed order.
macro_rules! each_table {
    ($f:ident($($arg:expr),*)) => {
        [
            (META.name(), $f($($arg,)* META)),
            (SEGMENTS.name(), $f($($arg,)* SEGMENTS)),
            (SENSOR_SEQ.name(), $f($($arg,)* SENSOR_SEQ)),
            (FLOW_BLOCKS.name(), $f($($arg,)* FLOW_BLOCKS)),
            (SOURCES.name(), $f($($arg,)* SOURCES)),
            (INGEST_STATE.name(), $f($($arg,)* INGEST_STATE)),
            (OPEN_FLOWS.name(), $f($($arg,)* OPEN_FLOWS)),
            (KNOWN.name(), $f($($arg,)* KNOWN)),
            (LINKS.name(), $f($($arg,)* LINKS)),
            (PULLED.name(), $f($($arg,)* PULLED)),
        ]
    };
}

impl Store {
    /// Every table whose entries cannot all be read, with why: damage in
    /// a table no other check walks (ingest progress, open flows, link
    /// state) is found here (docs/STORAGE.md §8).
    pub fn unreadable_tables(&self) -> Vec<(String, String)> {
        let txn = match self.db.begin_read() {
            Ok(t) => t,
            Err(e) => return vec![("*".into(), self.index_err(e).to_string())],
        };
        // One guarded read per table, so one damaged table hides no other.
        each_table!(read_table_guarded(self, &txn))
            .into_iter()
            .filter_map(|(name, read)| read.err().map(|e| (name.to_string(), e.to_string())))
            .collect()
    }

    /// Copies every entry of the index into a fresh redb file in tmp/
    /// (the first half of `lumpy repair`'s index rewrite, docs/STORAGE.md
    /// §6.4). Returns the file and the number of entries copied; nothing
    /// outside tmp/ changes, so a failure leaves the store as it was.
    pub fn copy_index_to_fresh_file(&self) -> Result<(std::path::PathBuf, u64), StoreError> {
        let fresh = self.dir.join("tmp").join("index.redb.rewrite");
        if fresh.exists() {
            std::fs::remove_file(&fresh).map_err(|source| StoreError::Io {
                path: fresh.clone(),
                source,
            })?;
        }
        let copied = self.guarded(|| self.copy_index_into(&fresh))?;
        Ok((fresh, copied))
    }

    /// Puts a file made by `copy_index_to_fresh_file` in place of
    /// `index.redb`: synced, renamed over it; the damage marker is cleared
    /// and the new file sealed before the store lock is let go. Returns the
    /// store reopened on the new file.
    pub fn replace_index_with(self, fresh: &std::path::Path) -> Result<Store, StoreError> {
        let dir = self.dir.clone();
        let index = self.index_path();
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let Store {
            db, _seal_on_close, ..
        } = self;
        drop(db);
        std::fs::File::open(fresh)
            .and_then(|f| f.sync_all())
            .map_err(io(fresh))?;
        std::fs::rename(fresh, &index).map_err(io(&index))?;
        super::sync_dir(&dir)?;
        super::seal::clear_damage(&dir)?;
        // A new file: none of the old chunk hashes holds for it.
        _seal_on_close
            .chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget();
        // Seals the new file, then releases the lock.
        drop(_seal_on_close);
        Store::open(&dir, false)
    }

    fn copy_index_into(&self, fresh: &std::path::Path) -> Result<u64, StoreError> {
        let err = |e: redb::Error| StoreError::Index {
            path: fresh.to_path_buf(),
            source: e,
        };
        let target = super::open_index(fresh).map_err(|e| err(e.into()))?;
        let from = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let to = target.begin_write().map_err(|e| err(e.into()))?;
        let mut copied = 0;
        for (name, result) in each_table!(copy_table(&from, &to)) {
            copied += result.map_err(|e| {
                StoreError::CorruptEntry(format!("table {name} cannot be copied: {e}"))
            })?;
        }
        to.commit().map_err(|e| err(e.into()))?;
        Ok(copied)
    }
}
