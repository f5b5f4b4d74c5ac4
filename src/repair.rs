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
    pub result: Result<String, Unrepaired>,
}

/// Why no source gave a good copy of a segment: each source tried, with
/// what it answered.
#[derive(Debug)]
pub struct Unrepaired {
    pub tried: Vec<(String, SourceError)>,
}

impl std::fmt::Display for Unrepaired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tried.is_empty() {
            return f.write_str("no source to repair from");
        }
        for (i, (source, e)) in self.tried.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{source}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unrepaired {}

/// What one source answered instead of a good copy.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Child(#[from] crate::sync::client::SyncError),
    /// A bundle that cannot be read (shared by every segment asked of it).
    #[error(transparent)]
    Bundle(std::sync::Arc<crate::archive::ArchiveError>),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("holds no good copy")]
    NoCopy,
    /// The damaged segment has no index entry to check a copy against.
    #[error("not indexed here")]
    NotIndexed,
    /// The copy was refused by the store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
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
    type Bundle = Result<HashMap<SegmentId, Vec<u8>>, std::sync::Arc<crate::archive::ArchiveError>>;
    let mut bundles: HashMap<PathBuf, Bundle> = HashMap::new();
    let mut out = Vec::new();
    for id in ids {
        let mut why = Vec::new();
        let mut done = None;
        for source in sources {
            let got: Result<Option<Copy>, SourceError> = match source {
                Source::Child(child) => match store.segment_meta(id) {
                    Ok(Some(expected)) => rt
                        .block_on(crate::sync::client::fetch_one(store, child, &expected))
                        .map(|r| r.map(|r| Copy::Received(Box::new(r))))
                        .map_err(SourceError::from),
                    Ok(None) => Err(SourceError::NotIndexed),
                    Err(e) => Err(SourceError::Store(e)),
                },
                Source::Directory(dir) => {
                    from_directory(store, dir, id).map(|r| r.map(|r| Copy::Received(Box::new(r))))
                }
                Source::Bundle(path) => {
                    let found = bundles.entry(path.clone()).or_insert_with(|| {
                        crate::archive::find_segments(path, &wanted).map_err(std::sync::Arc::new)
                    });
                    match found {
                        Ok(map) => Ok(map.remove(id).map(Copy::Bytes)),
                        Err(e) => Err(SourceError::Bundle(e.clone())),
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
                    Err(e) => why.push((source.to_string(), e.into())),
                },
                Ok(None) => why.push((source.to_string(), SourceError::NoCopy)),
                Err(e) => why.push((source.to_string(), e)),
            }
        }
        let result = match done {
            Some(s) => Ok(s),
            None => Err(Unrepaired { tried: why }),
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
fn from_directory(
    store: &Store,
    dir: &Path,
    id: &SegmentId,
) -> Result<Option<Received>, SourceError> {
    let hex = id.to_hex();
    let path = dir.join("segments").join(&hex[..2]).join(&hex);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SourceError::Read { path, source }),
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(source) => return Err(SourceError::Read { path, source }),
    };
    match store.receive_from(id, len, file) {
        Ok(r) => Ok(r),
        // Bytes that hash to the id but do not parse: not a copy to use.
        Err(StoreError::Segment { .. }) => Ok(None),
        Err(e) => Err(SourceError::Store(e)),
    }
}

/// Checks that `dir` looks like a lumpy data directory.
pub fn is_data_directory(dir: &Path) -> bool {
    dir.join("segments").is_dir()
}
