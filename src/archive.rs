//! Offline archive bundles: one sensor's segments in a single
//! self-describing, self-verifying file (docs/STORAGE.md §10).
//!
//! Owns the bundle format: writing it from a store, checking it without a
//! store, and importing it (each segment verified against its id, then
//! added through `Store::add_verified_segment`, so an interrupted import
//! resumes and a repeated one adds nothing).
//! Reads segments and writes bundles; writes to a store only through the
//! store's own API.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::node::{Node, NodeError};
use crate::store::{Kind, SegmentId, SegmentView, Store, StoreError};
use crate::sync::summary::sensor_summary;

/// First 8 bytes of a bundle.
pub const MAGIC: &[u8; 8] = b"LUMPYARC";
/// Last 8 bytes of a bundle.
pub const END_MAGIC: &[u8; 8] = b"LUMPYAND";
pub const FORMAT_VERSION: u16 = 1;
/// Largest manifest a reader accepts.
pub const MAX_MANIFEST: u64 = 256 * 1024 * 1024;
/// Largest segment a reader accepts.
pub const MAX_SEGMENT: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a lumpy archive: {reason}")]
    NotAnArchive { path: String, reason: String },
    #[error("{path}: segment {id} (sequence {seq}) is damaged: {reason}")]
    BadSegment {
        path: String,
        id: String,
        seq: u64,
        reason: String,
    },
    #[error("{path}: the manifest does not match its hash: the bundle is damaged")]
    BadManifest { path: String },
    #[error(
        "sensor {sensor}: this node holds another incarnation (first segment {here}, the bundle's {bundle}); not imported"
    )]
    OtherIncarnation {
        sensor: u32,
        here: String,
        bundle: String,
    },
    #[error("sensor {0}: this node holds no segment of it")]
    UnknownSensor(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// One segment in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub id: String,
    pub kind: u8,
    pub size: u64,
}

/// What a bundle holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u16,
    pub sensor_id: u32,
    /// Id of the sensor's segment with sequence 1 (names the incarnation).
    pub first_id: String,
    /// Chain hash over the sensor's whole sequence (docs/PROTOCOL.md §3).
    pub chain: String,
    pub max_seq: u64,
    pub created: u64,
    pub segments: Vec<Entry>,
    /// Places of the sequence whose pcap this node did not hold.
    pub absent: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a bundle of everything this store holds of `sensor`.
pub fn create(
    store: &Store,
    sensor: u32,
    out: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<Manifest, ArchiveError> {
    let summary = sensor_summary(store, sensor, 0)?;
    if summary.max_seq == 0 {
        return Err(ArchiveError::UnknownSensor(sensor));
    }
    let entries = store.sequence_after(sensor, 0, usize::MAX)?;
    let segments: Vec<Entry> = entries
        .iter()
        .filter(|e| e.held)
        .map(|e| Entry {
            seq: e.seq,
            id: e.id.to_hex(),
            kind: e.kind as u8,
            size: e.stored_bytes,
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT_VERSION,
        sensor_id: sensor,
        first_id: summary.first_id.clone(),
        chain: summary.chain.clone(),
        max_seq: summary.max_seq,
        created: crate::clock::now_secs(),
        absent: (entries.len() - segments.len()) as u64,
        segments,
    };
    progress.set_length(manifest.segments.iter().map(|e| e.size).sum());
    let file = crate::durable::AtomicFile::create(out, None, None).map_err(io(out))?;
    let tmp = file.tmp_path().to_path_buf();
    let mut w = HashingWriter {
        inner: BufWriter::new(file),
        hasher: blake3::Hasher::new(),
    };
    let json = serde_json::to_vec(&manifest).unwrap_or_default();
    w.write_all(MAGIC).map_err(io(&tmp))?;
    w.write_all(&FORMAT_VERSION.to_le_bytes())
        .map_err(io(&tmp))?;
    w.write_all(&[0u8; 6]).map_err(io(&tmp))?;
    w.write_all(&(json.len() as u64).to_le_bytes())
        .map_err(io(&tmp))?;
    w.write_all(&json).map_err(io(&tmp))?;
    for e in &manifest.segments {
        let id =
            SegmentId::from_hex(&e.id).ok_or_else(|| StoreError::CorruptEntry(e.id.clone()))?;
        // read_segment checks the hash: a damaged segment is never archived.
        let bytes = store.read_segment(&id)?;
        w.write_all(&bytes).map_err(io(&tmp))?;
        progress.inc(bytes.len() as u64);
    }
    let digest = *w.hasher.finalize().as_bytes();
    let mut inner = w.inner;
    inner.write_all(&digest).map_err(io(&tmp))?;
    inner.write_all(END_MAGIC).map_err(io(&tmp))?;
    let file = inner.into_inner().map_err(|e| ArchiveError::Io {
        path: tmp.display().to_string(),
        source: e.into_error(),
    })?;
    file.commit().map_err(io(out))?;
    progress.finish_and_clear();
    Ok(manifest)
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a bundle front to back, calling `each` with every verified segment.
fn read_bundle(
    path: &Path,
    progress: &indicatif::ProgressBar,
    mut each: impl FnMut(&Entry, SegmentId, Vec<u8>) -> Result<(), ArchiveError>,
) -> Result<Manifest, ArchiveError> {
    let p = path.display().to_string();
    let not = |reason: &str| ArchiveError::NotAnArchive {
        path: p.clone(),
        reason: reason.to_string(),
    };
    let file = File::open(path).map_err(io(path))?;
    let total = file.metadata().map_err(io(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut hasher = blake3::Hasher::new();
    let mut head = [0u8; 24];
    r.read_exact(&mut head)
        .map_err(|_| not("shorter than its header"))?;
    hasher.update(&head);
    if &head[..8] != MAGIC {
        return Err(not("bad magic"));
    }
    let version = u16::from_le_bytes([head[8], head[9]]);
    if version != FORMAT_VERSION {
        return Err(not(&format!(
            "format version {version}, this lumpy reads {FORMAT_VERSION}"
        )));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[16..24]);
    let manifest_len = u64::from_le_bytes(len);
    if manifest_len > MAX_MANIFEST || manifest_len > total {
        return Err(not("manifest length is out of range"));
    }
    let mut json = vec![0u8; manifest_len as usize];
    r.read_exact(&mut json)
        .map_err(|_| not("manifest cut short"))?;
    hasher.update(&json);
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| not(&format!("manifest: {e}")))?;
    progress.set_length(manifest.segments.iter().map(|e| e.size).sum());
    for e in &manifest.segments {
        let bad = |reason: String| ArchiveError::BadSegment {
            path: p.clone(),
            id: e.id.clone(),
            seq: e.seq,
            reason,
        };
        if e.size > MAX_SEGMENT || e.size > total {
            return Err(bad(format!("claims {} bytes", e.size)));
        }
        let id = SegmentId::from_hex(&e.id).ok_or_else(|| bad("not a segment id".into()))?;
        let mut bytes = vec![0u8; e.size as usize];
        r.read_exact(&mut bytes)
            .map_err(|_| bad("the bundle ends inside it".into()))?;
        hasher.update(&bytes);
        let actual = SegmentId::of(&bytes);
        if actual != id {
            return Err(bad(format!("its bytes hash to {actual}")));
        }
        let view = SegmentView::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        if view.header.sensor_id != manifest.sensor_id
            || view.header.origin_seq != e.seq
            || view.header.kind as u8 != e.kind
        {
            return Err(bad("its header disagrees with the manifest".into()));
        }
        progress.inc(e.size);
        each(e, id, bytes)?;
    }
    let mut tail = [0u8; 40];
    r.read_exact(&mut tail)
        .map_err(|_| not("trailer missing"))?;
    if &tail[32..] != END_MAGIC {
        return Err(not("trailer magic missing"));
    }
    if tail[..32] != *hasher.finalize().as_bytes() {
        return Err(ArchiveError::BadManifest { path: p });
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(io(path))? != 0 {
        return Err(not("bytes after the trailer"));
    }
    progress.finish_and_clear();
    Ok(manifest)
}

/// Checks a bundle without a store.
pub fn verify(path: &Path, progress: &indicatif::ProgressBar) -> Result<Manifest, ArchiveError> {
    read_bundle(path, progress, |_, _, _| Ok(()))
}

/// The bytes of the segments of `wanted` that a bundle holds (`lumpy
/// repair`); the whole bundle must verify, as for an import.
pub fn find_segments(
    path: &Path,
    wanted: &std::collections::HashSet<SegmentId>,
) -> Result<std::collections::HashMap<SegmentId, Vec<u8>>, ArchiveError> {
    let mut found = std::collections::HashMap::new();
    read_bundle(path, &indicatif::ProgressBar::hidden(), |_, id, bytes| {
        if wanted.contains(&id) {
            found.insert(id, bytes);
        }
        Ok(())
    })?;
    Ok(found)
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub added: u64,
    pub already: u64,
}

/// Imports a bundle: the whole bundle is verified first (a damaged bundle
/// changes nothing), then each segment is added unless already held.
pub fn import(
    node: &mut Node,
    path: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<(Manifest, ImportReport), ArchiveError> {
    let manifest = verify(path, &indicatif::ProgressBar::hidden())?;
    let here = sensor_summary(&node.store, manifest.sensor_id, 0)?;
    if !here.first_id.is_empty() && here.first_id != manifest.first_id {
        return Err(ArchiveError::OtherIncarnation {
            sensor: manifest.sensor_id,
            here: here.first_id,
            bundle: manifest.first_id,
        });
    }
    let mut report = ImportReport::default();
    read_bundle(path, progress, |_, id, bytes| {
        if node.store.has_segment(&id)? {
            report.already += 1;
            return Ok(());
        }
        let (_, records) = crate::node::check_segment(&id, &bytes)?;
        let meta = node.store.add_verified_segment(&id, &bytes)?;
        if meta.kind == Kind::Records {
            node.apply_records(&id, &records)?;
        }
        report.added += 1;
        Ok(())
    })?;
    Ok((manifest, report))
}
