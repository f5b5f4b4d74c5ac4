//! `repair`: puts back segment files that `verify` finds damaged or missing,
//! from good copies held elsewhere: a child over the peer protocol, another
//! node's data directory, or an archive bundle.
//!
//! Owns choosing what can be repaired and asking each source in turn.
//! A copy from a child or a data directory is streamed to `tmp/` and hashed
//! on the way (`store::incoming`), so memory stays bounded whatever the
//! segment's size; a bundle's copy is read from the bundle.
//! Writes only through `Store::restore_received` and
//! `Store::restore_segment`, which accept bytes only when they hash to the
//! segment's id; never touches the index or the mirror (a segment's content
//! is its id, so a good copy is the original).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::config::ChildConfig;
use crate::store::incoming::Received;
use crate::store::verify::Report;
use crate::store::{SegmentId, Store, StoreError};

/// Where a good copy may be.
#[derive(Debug, Clone)]
pub enum Source {
    /// A child of this node, asked with this node's link secret.
    Child(ChildConfig),
    /// Another node's data directory (read only: its segment files).
    Directory(PathBuf),
    /// An archive bundle (`lumpy archive create`); it must verify whole.
    Bundle(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Child(c) => write!(f, "child {} ({})", c.name, c.url),
            Source::Directory(d) => write!(f, "data directory {}", d.display()),
            Source::Bundle(b) => write!(f, "bundle {}", b.display()),
        }
    }
}

/// The fate of one damaged or missing segment.
#[derive(Debug)]
pub struct Outcome {
    pub id: SegmentId,
    pub path: PathBuf,
    /// The source that gave a good copy, or why none did.
    pub result: Result<String, String>,
}

/// The indexed segments whose file is damaged or missing, from a verify
/// report (each one re-read, so only real damage is repaired).
pub fn damaged_segments(store: &Store, report: &Report) -> Vec<SegmentId> {
    let mut seen = HashSet::new();
    report
        .problems
        .iter()
        .filter_map(|p| p.segment)
        .filter(|id| seen.insert(*id))
        .filter(|id| matches!(store.guarded(|| store.has_segment(id)), Ok(true)))
        .filter(|id| store.read_segment(id).is_err())
        .collect()
}

/// Repairs `ids` from `sources`, tried in order for each segment.
pub fn repair(
    store: &Store,
    ids: &[SegmentId],
    sources: &[Source],
    rt: &tokio::runtime::Handle,
) -> Vec<Outcome> {
    let wanted: HashSet<SegmentId> = ids.iter().copied().collect();
    // A bundle is read once for every segment it may give.
    let mut bundles: HashMap<PathBuf, Result<HashMap<SegmentId, Vec<u8>>, String>> = HashMap::new();
    let mut out = Vec::new();
    for id in ids {
        let mut why = Vec::new();
        let mut done = None;
        for source in sources {
            let got: Result<Option<Copy>, String> = match source {
                Source::Child(child) => match store.segment_meta(id) {
                    Ok(Some(expected)) => rt
                        .block_on(crate::sync::client::fetch_one(store, child, &expected))
                        .map(|r| r.map(|r| Copy::Received(Box::new(r))))
                        .map_err(|e| e.to_string()),
                    Ok(None) => Err("not indexed here".into()),
                    Err(e) => Err(e.to_string()),
                },
                Source::Directory(dir) => {
                    from_directory(store, dir, id).map(|r| r.map(|r| Copy::Received(Box::new(r))))
                }
                Source::Bundle(path) => {
                    let found = bundles.entry(path.clone()).or_insert_with(|| {
                        crate::archive::find_segments(path, &wanted).map_err(|e| e.to_string())
                    });
                    match found {
                        Ok(map) => Ok(map.remove(id).map(Copy::Bytes)),
                        Err(e) => Err(e.clone()),
                    }
                }
            };
            match got {
                Ok(Some(copy)) => match copy.restore(store, id) {
                    Ok(_) => {
                        tracing::info!(segment = %id, from = %source, "segment repaired");
                        done = Some(source.to_string());
                        break;
                    }
                    Err(e) => why.push(format!("{source}: {e}")),
                },
                Ok(None) => why.push(format!("{source}: holds no good copy")),
                Err(e) => why.push(format!("{source}: {e}")),
            }
        }
        let result = match done {
            Some(s) => Ok(s),
            None if sources.is_empty() => Err("no source to repair from".into()),
            None => Err(why.join("; ")),
        };
        out.push(Outcome {
            id: *id,
            path: store.segment_path(id),
            result,
        });
    }
    out
}

/// A good copy of a segment, on its way back in place.
enum Copy {
    /// Received into `tmp/` and hashed on the way.
    Received(Box<Received>),
    /// Read from a bundle (already checked against the id).
    Bytes(Vec<u8>),
}

impl Copy {
    fn restore(self, store: &Store, id: &SegmentId) -> Result<PathBuf, StoreError> {
        match self {
            Copy::Received(r) => store.restore_received(*r),
            Copy::Bytes(b) => store.restore_segment(id, &b),
        }
    }
}

/// A segment file of another node's data directory, if it is intact,
/// streamed to `tmp/` and hashed on the way.
fn from_directory(store: &Store, dir: &Path, id: &SegmentId) -> Result<Option<Received>, String> {
    let hex = id.to_hex();
    let path = dir.join("segments").join(&hex[..2]).join(&hex);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    match store.receive_from(id, len, file) {
        Ok(r) => Ok(r),
        // Bytes that hash to the id but do not parse: not a copy to use.
        Err(StoreError::Segment { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks that `dir` looks like a lumpy data directory.
pub fn is_data_directory(dir: &Path) -> bool {
    dir.join("segments").is_dir()
}
