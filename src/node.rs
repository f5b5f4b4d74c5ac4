//! Node: one data directory = one lumpy node and its incarnation.
//!
//! Owns creating a node (`init`), its identity (the sensor id of the roo
//! incarnation it was installed as, and the install time), opening the store,
//! config and mirror together, and bringing the mirror up to date with the
//! store (the mirror is derived: any record segment it lacks is applied).
//! Does not ingest, sync or serve; those modules take a `Node`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::mirror::{Mirror, MirrorError};
use crate::records::decode_lines;
use crate::store::{Kind, SegmentView, Store, StoreError};

/// Name of the SQLite mirror inside a data directory.
pub const MIRROR_FILE: &str = "mirror.sqlite";
const IDENTITY_KEY: &str = "node_identity";

/// The incarnation a node was installed as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub sensor_id: u32,
    pub install_sec: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{dir} already holds sensor {existing} (installed {installed}); refusing to re-initialise it as sensor {requested}. A reinstalled roo is a new incarnation: give it a new data directory"
    )]
    DifferentIncarnation {
        dir: PathBuf,
        existing: u32,
        installed: u64,
        requested: u32,
    },
    #[error("{dir}: the node identity in the index is unreadable: {detail}")]
    BadIdentity { dir: PathBuf, detail: String },
    #[error("{dir}: not initialised; run `lumpy init --data {dir} --sensor-id N` first")]
    NotInitialised { dir: PathBuf },
    #[error("record segment {id}: {detail}")]
    BadRecordSegment { id: String, detail: String },
    #[error(
        "record segment {id} of sensor {sensor} holds a record of sensor {record_sensor}; a segment speaks only for its own sensor"
    )]
    ForeignRecord {
        id: String,
        sensor: u32,
        record_sensor: u32,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An open node: store, configuration, identity and mirror.
pub struct Node {
    pub dir: PathBuf,
    pub config: Config,
    pub identity: Identity,
    pub store: std::sync::Arc<Store>,
    pub mirror: Mirror,
}

/// Outcome of `init`.
#[derive(Debug, PartialEq, Eq)]
pub enum InitOutcome {
    Created,
    AlreadyInitialised,
}

/// Creates a node in `dir` as sensor `sensor_id`, or confirms an existing one.
pub fn init(
    dir: &Path,
    sensor_id: u32,
    install_sec: u64,
    config: &Config,
) -> Result<(Node, InitOutcome), NodeError> {
    std::fs::create_dir_all(dir).map_err(|source| NodeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let had_index = dir.join("index.redb").exists();
    if had_index {
        let store = Store::open(dir, false)?;
        if let Some(existing) = read_identity(&store, dir)? {
            if existing.sensor_id != sensor_id {
                return Err(NodeError::DifferentIncarnation {
                    dir: dir.to_path_buf(),
                    existing: existing.sensor_id,
                    installed: existing.install_sec,
                    requested: sensor_id,
                });
            }
            drop(store);
            return Ok((open(dir)?, InitOutcome::AlreadyInitialised));
        }
    }
    config.validate(&Config::path(dir))?;
    config.save(dir)?;
    let store = Store::open(dir, true)?;
    let identity = Identity {
        sensor_id,
        install_sec,
    };
    let encoded = serde_json::to_vec(&identity).map_err(|e| NodeError::BadIdentity {
        dir: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    store.meta_set(IDENTITY_KEY, &encoded)?;
    drop(store);
    Ok((open(dir)?, InitOutcome::Created))
}

fn read_identity(store: &Store, dir: &Path) -> Result<Option<Identity>, NodeError> {
    match store.meta_get(IDENTITY_KEY)? {
        None => Ok(None),
        Some(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| NodeError::BadIdentity {
                    dir: dir.to_path_buf(),
                    detail: e.to_string(),
                })
        }
    }
}

/// Opens an initialised node and brings its mirror up to date.
pub fn open(dir: &Path) -> Result<Node, NodeError> {
    let mut node = open_lagging(dir)?;
    node.catch_up_mirror()?;
    Ok(node)
}

/// Opens an initialised node without applying the record segments its
/// mirror lacks (`status`, which reports that lag and must answer at once
/// after an `ingest --no-wait`); the next [`open`] applies them.
pub fn open_lagging(dir: &Path) -> Result<Node, NodeError> {
    if !dir.join("index.redb").exists() {
        return Err(NodeError::NotInitialised {
            dir: dir.to_path_buf(),
        });
    }
    let config = Config::load(dir)?;
    let store = Store::open(dir, false)?;
    let identity = read_identity(&store, dir)?.ok_or_else(|| NodeError::NotInitialised {
        dir: dir.to_path_buf(),
    })?;
    let mirror = Mirror::open(&dir.join(MIRROR_FILE))?;
    let mut node = Node {
        dir: dir.to_path_buf(),
        config,
        identity,
        store: std::sync::Arc::new(store),
        mirror,
    };
    // Before the catch-up, so sensor rows it (re)creates come out 'offline'.
    node.mirror.sync_retired(&node.config.decommissioned)?;
    Ok(node)
}

impl Node {
    /// Applies every record segment the mirror has not seen, in origin order.
    /// After a crash between an index commit and the mirror update this is
    /// what makes the mirror whole again.
    pub fn catch_up_mirror(&mut self) -> Result<u64, NodeError> {
        let pending = self.pending_record_segments()?;
        // A mirror rebuilt from scratch loads faster without its secondary
        // indexes, built once at the end.
        let bulk = pending.len() > 64 && self.mirror.flow_count()? == 0;
        if bulk {
            self.mirror.begin_bulk()?;
        }
        let applied = self.apply_segments(&pending)?;
        if bulk {
            self.mirror.end_bulk()?;
        }
        Ok(applied)
    }

    /// The mirror's lag: record segments in the store that it has not
    /// applied yet, quarantined ones (listed apart) not counted.
    pub fn mirror_lag(&self) -> Result<u64, NodeError> {
        let quarantined: std::collections::HashSet<crate::store::SegmentId> = self
            .store
            .quarantined()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let pending = self.pending_record_segments()?;
        Ok(pending
            .iter()
            .filter(|id| !quarantined.contains(id))
            .count() as u64)
    }

    /// Record segments the mirror has not applied yet, in origin order.
    fn pending_record_segments(&self) -> Result<Vec<crate::store::SegmentId>, NodeError> {
        let mut pending = Vec::new();
        for ((_, _), id) in self.store.sensor_sequence()? {
            if let Some(meta) = self.store.segment_meta(&id)?
                && meta.kind == Kind::Records
                && !self.mirror.is_applied(&id)?
            {
                pending.push(id);
            }
        }
        Ok(pending)
    }

    /// Applies `ids` in order. A second thread reads, checks and decodes
    /// the segments while this one applies (decoding is about a sixth of a
    /// rebuild); a few segments are in flight at most, so memory stays flat.
    /// A segment that cannot be read or decoded is quarantined (reported by
    /// `status` and `verify`, retried at the next open) and the rest goes
    /// on: one bad segment never stops a node.
    fn apply_segments(&mut self, ids: &[crate::store::SegmentId]) -> Result<u64, NodeError> {
        type Decoded = (
            crate::store::SegmentId,
            Result<Vec<crate::records::Record>, NodeError>,
        );
        let store = self.store.clone();
        let was_quarantined: std::collections::HashSet<crate::store::SegmentId> =
            store.quarantined()?.into_iter().map(|(id, _)| id).collect();
        let mirror = &mut self.mirror;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Decoded>(4);
            let reader = store.clone();
            scope.spawn(move || {
                for id in ids {
                    let decoded = reader
                        .read_segment(id)
                        .map_err(NodeError::from)
                        .and_then(|bytes| decode_record_segment(id, &bytes));
                    // A closed channel: the applier stopped on an error.
                    if tx.send((*id, decoded)).is_err() {
                        return;
                    }
                }
            });
            let mut applied = 0;
            let mut batch = Vec::new();
            for (id, decoded) in rx {
                let records = match decoded {
                    Ok(records) => records,
                    Err(e) => {
                        tracing::error!(segment = %id, path = %store.segment_path(&id).display(), "quarantined: {e}");
                        store.quarantine(&id, &e.to_string())?;
                        continue;
                    }
                };
                if was_quarantined.contains(&id) {
                    store.release(&id)?;
                }
                batch.push((id, records));
                applied += 1;
                // Several segments per SQLite transaction: one commit each
                // would cost more than the rows.
                if batch.len() >= 16 {
                    mirror.apply_many(batch.iter().map(|(i, r)| (i, r.as_slice())))?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                mirror.apply_many(batch.iter().map(|(i, r)| (i, r.as_slice())))?;
            }
            Ok(applied)
        })
    }

    /// Reads a record segment from the store and applies it to the mirror.
    pub fn apply_record_segment(&mut self, id: &crate::store::SegmentId) -> Result<(), NodeError> {
        let bytes = self.store.read_segment(id)?;
        self.apply_record_bytes(id, &bytes)
    }

    /// Applies the records of a verified record segment to the mirror.
    pub fn apply_record_bytes(
        &mut self,
        id: &crate::store::SegmentId,
        bytes: &[u8],
    ) -> Result<(), NodeError> {
        let records = decode_record_segment(id, bytes)?;
        self.mirror.apply(id, &records)?;
        Ok(())
    }

    /// Applies records already decoded and checked by [`check_segment`].
    pub fn apply_records(
        &mut self,
        id: &crate::store::SegmentId,
        records: &[crate::records::Record],
    ) -> Result<(), NodeError> {
        self.mirror.apply(id, records)?;
        Ok(())
    }
}

/// Checks segment bytes from outside this node (a child, a bundle) before
/// anything of them is stored: the structure parses, and a record
/// segment's records all decode and all name the segment's own sensor (a
/// segment is indexed under its header's sensor, so a record of another
/// sensor inside it would let one sensor's source rewrite another's rows).
/// Gives the header and, for a record segment, its records.
pub fn check_segment(
    id: &crate::store::SegmentId,
    bytes: &[u8],
) -> Result<(crate::store::segment::Header, Vec<crate::records::Record>), NodeError> {
    let view = SegmentView::parse(bytes).map_err(|e| NodeError::BadRecordSegment {
        id: id.to_hex(),
        detail: e.to_string(),
    })?;
    let header = view.header;
    if header.kind != Kind::Records {
        return Ok((header, Vec::new()));
    }
    let records = decode_record_segment(id, bytes)?;
    if let Some(r) = records.iter().find(|r| r.sensor_id() != header.sensor_id) {
        return Err(NodeError::ForeignRecord {
            id: id.to_hex(),
            sensor: header.sensor_id,
            record_sensor: r.sensor_id(),
        });
    }
    Ok((header, records))
}

/// [`check_segment`] for a segment received into a file: a record
/// segment's records all decode and all name its own sensor; read one block
/// at a time, so what is held follows the bytes present, never the
/// header's claims. Gives the records (none for a pcap segment).
pub fn check_segment_file(
    id: &crate::store::SegmentId,
    segment: &mut crate::store::SegmentFile,
) -> Result<Vec<crate::records::Record>, NodeError> {
    let header = segment.header;
    if header.kind != Kind::Records {
        return Ok(Vec::new());
    }
    let bad = |detail: String| NodeError::BadRecordSegment {
        id: id.to_hex(),
        detail,
    };
    let mut records = Vec::new();
    for i in 0..segment.blocks.len() as u32 {
        let block = segment.block(i).map_err(|e| bad(e.to_string()))?;
        let decoded = decode_lines(&block).map_err(|e| bad(e.to_string()))?;
        if let Some(r) = decoded.iter().find(|r| r.sensor_id() != header.sensor_id) {
            return Err(NodeError::ForeignRecord {
                id: id.to_hex(),
                sensor: header.sensor_id,
                record_sensor: r.sensor_id(),
            });
        }
        records.extend(decoded);
    }
    Ok(records)
}

/// The records of a record segment's bytes.
pub fn decode_record_segment(
    id: &crate::store::SegmentId,
    bytes: &[u8],
) -> Result<Vec<crate::records::Record>, NodeError> {
    let bad = |detail: String| NodeError::BadRecordSegment {
        id: id.to_hex(),
        detail,
    };
    let view = SegmentView::parse(bytes).map_err(|e| bad(e.to_string()))?;
    // Not `with_capacity(item_count)`: the count is the header's claim, and
    // a crafted header would make the allocation abort the process.
    let mut records = Vec::new();
    for i in 0..view.blocks.len() as u32 {
        let block = view.block(i).map_err(|e| bad(e.to_string()))?;
        records.extend(decode_lines(&block).map_err(|e| bad(e.to_string()))?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SegmentBuilder, SegmentId};

    fn segment(sensor: u32, lines: &[&[u8]]) -> Vec<u8> {
        let mut b = SegmentBuilder::new(Kind::Records, sensor, 0, 3);
        for line in lines {
            b.push_record_line(1, line).unwrap();
        }
        b.seal(1).unwrap().bytes
    }

    fn sensor_line(sensor: u32) -> Vec<u8> {
        let mut line = Vec::new();
        crate::records::encode_line(
            &crate::records::Record::Sensor(crate::records::SensorRecord {
                sensor_id: sensor,
                ..Default::default()
            }),
            &mut line,
        );
        line
    }

    #[test]
    fn a_segment_speaks_only_for_its_own_sensor() {
        let good = segment(7, &[&sensor_line(7)]);
        let id = SegmentId::of(&good);
        let (header, records) = check_segment(&id, &good).unwrap();
        assert_eq!((header.sensor_id, records.len()), (7, 1));
        let foreign = segment(7, &[&sensor_line(7), &sensor_line(8)]);
        assert!(matches!(
            check_segment(&SegmentId::of(&foreign), &foreign),
            Err(NodeError::ForeignRecord {
                sensor: 7,
                record_sensor: 8,
                ..
            })
        ));
    }

    #[test]
    fn undecodable_records_and_absurd_counts_are_errors_not_aborts() {
        let bad = segment(7, &[b"{\"type\":\n"]);
        assert!(check_segment(&SegmentId::of(&bad), &bad).is_err());
        let mut huge = segment(7, &[&sensor_line(7)]);
        huge[48..56].copy_from_slice(&(1u64 << 50).to_le_bytes());
        assert!(check_segment(&SegmentId::of(&huge), &huge).is_err());
        assert!(decode_record_segment(&SegmentId::of(&huge), &huge).is_err());
    }
}
