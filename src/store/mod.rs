//! Segment store: the only code that writes segment files and the redb index.
//!
//! Owns the node's data directory layout (`segments/`, `tmp/`, `index.redb`),
//! the atomic write of a segment (temp file, fsync, rename, fsync directory),
//! and the one redb transaction that makes a batch of segments visible
//! together with the ingest progress that produced them (docs/STORAGE.md §5, §6).
//! Does not decode packets or records and never touches the SQLite mirror.

pub mod catalog;
pub mod incoming;
pub mod index;
pub mod seal;
pub mod segment;
pub mod verify;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

pub use index::{CommitBatch, SegmentMeta, SourceProgress};
pub use segment::{
    BlockCompressor, Kind, SealedSegment, SegmentBuilder, SegmentError, SegmentFile, SegmentView,
};

/// A segment id: the blake3 hash of the segment file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub [u8; 32]);

impl SegmentId {
    pub fn of(bytes: &[u8]) -> Self {
        SegmentId(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| SegmentId(*h.as_bytes()))
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentId({})", self.to_hex())
    }
}

/// Store format version kept in the index `meta` table (docs/STORAGE.md §6).
pub const STORE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index {path}: {source}")]
    Index {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error(
        "{path} is not a lumpy data directory (no index.redb); run `lumpy init --data {path}` first"
    )]
    NotInitialised { path: PathBuf },
    #[error(
        "{path} is in use by another lumpy process (a running `lumpy serve` or ingest); stop it first, or read the running node's mirror"
    )]
    InUse { path: PathBuf },
    #[error("store format version {found} in {path} is newer than this lumpy reads ({supported})")]
    UnsupportedStoreVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("segment {id} ({path}): {source}")]
    Segment {
        id: SegmentId,
        path: PathBuf,
        #[source]
        source: SegmentError,
    },
    #[error("segment {id} ({path}): content hash is {actual}, the file is damaged")]
    HashMismatch {
        id: SegmentId,
        path: PathBuf,
        actual: SegmentId,
    },
    #[error("segment {id} is not in this store")]
    Missing { id: SegmentId },
    #[error(
        "sensor {sensor} sequence {seq} is segment {held} here; refusing another segment ({offered}) for that place"
    )]
    SequenceConflict {
        sensor: u32,
        seq: u64,
        held: SegmentId,
        offered: SegmentId,
    },
    #[error("corrupt index entry: {0}")]
    CorruptEntry(String),
    /// The operating system gave no random bytes (getrandom).
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A broken promise inside the store's own code, not in its files.
    #[error("store: internal error: {0}")]
    Internal(&'static str),
    #[error("index {path} is damaged: {detail}")]
    IndexDamaged { path: PathBuf, detail: String },
}

/// The segment store of one node's data directory.
pub struct Store {
    dir: PathBuf,
    db: redb::Database,
    /// Bumped on every index commit, so readers can cache what they derive.
    generation: std::sync::atomic::AtomicU64,
    /// What opening found about the index file's seal.
    seal_check: seal::SealCheck,
    /// Declared after `db`: fields drop in order, so the index is sealed
    /// after redb has closed it, and the store lock is released last.
    _seal_on_close: seal::SealOnClose,
}

impl Store {
    /// Opens the store in `dir`, creating the layout when `create` is set.
    pub fn open(dir: &Path, create: bool) -> Result<Store, StoreError> {
        let index_path = dir.join("index.redb");
        if !create && !index_path.exists() {
            return Err(StoreError::NotInitialised {
                path: dir.to_path_buf(),
            });
        }
        for sub in ["segments", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|source| StoreError::Io { path: p, source })?;
        }
        let lock = seal::StoreLock::acquire(dir)?;
        let (seal_check, chunks) = if index_path.exists() {
            seal::check_and_unseal(dir)?
        } else {
            (seal::SealCheck::Unsealed, seal::unsealed(dir))
        };
        // redb panics on some damaged files ("Malformed allocator state");
        // that is a damaged index, reported as such.
        let opened =
            catch_redb_panic(|| open_sealed_index(&index_path, &chunks)).map_err(|panic| {
                StoreError::IndexDamaged {
                    path: index_path.clone(),
                    detail: panic_text(panic.as_ref()),
                }
            })?;
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                path: dir.to_path_buf(),
            },
            e => StoreError::Index {
                path: index_path.clone(),
                source: e.into(),
            },
        })?;
        // Only now, holding redb's exclusive lock: another process with the
        // same store (a `lumpy` command beside a running serve) must not
        // remove the temporary file of a segment that serve is writing.
        clean_tmp(&dir.join("tmp"))?;
        let store = Store {
            dir: dir.to_path_buf(),
            db,
            generation: std::sync::atomic::AtomicU64::new(1),
            seal_check,
            _seal_on_close: seal::SealOnClose {
                dir: dir.to_path_buf(),
                chunks,
                _lock: lock,
            },
        };
        store.guarded(|| store.init_tables())?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A number that changes whenever the index changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn bump_generation(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// What opening found about the index file's seal (§6.4).
    pub fn seal_check(&self) -> &seal::SealCheck {
        &self.seal_check
    }

    /// Compares the chunks of the index file not written since the open with
    /// the seal (`verify`); true when one changed (recorded in the damage
    /// marker).
    pub fn check_index_seal(&self) -> Result<bool, StoreError> {
        seal::check_unwritten(&self._seal_on_close.chunks)
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir.join("index.redb")
    }

    /// Runs a read of the index, turning a panic inside redb (it indexes
    /// slices by lengths read from a damaged page) into `IndexDamaged`.
    pub fn guarded<T>(
        &self,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        catch_redb_panic(read).unwrap_or_else(|panic| {
            Err(StoreError::IndexDamaged {
                path: self.index_path(),
                detail: panic_text(panic.as_ref()),
            })
        })
    }

    pub(crate) fn index_err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Index {
            path: self.index_path(),
            source: e.into(),
        }
    }

    /// Path of a segment file: `segments/<first two hex digits>/<hex id>`.
    pub fn segment_path(&self, id: &SegmentId) -> PathBuf {
        let hex = id.to_hex();
        self.dir.join("segments").join(&hex[..2]).join(hex)
    }

    /// Writes a segment file atomically; a file already present with the
    /// same id is left as it is (content addressing makes it identical or
    /// damaged, and damage is `verify`'s business).
    pub fn write_segment_file(&self, seg: &SealedSegment) -> Result<PathBuf, StoreError> {
        self.write_segment_bytes(&seg.id, &seg.bytes)
    }

    /// Writes verified segment bytes under their id, atomically.
    pub(crate) fn write_segment_bytes(
        &self,
        id: &SegmentId,
        bytes: &[u8],
    ) -> Result<PathBuf, StoreError> {
        let path = self.segment_path(id);
        if path.exists() {
            return Ok(path);
        }
        self.replace_file_atomically(&path, bytes)
    }

    /// Writes `bytes` to tmp/<id>.<suffix>, fsyncs it, renames it to `path`
    /// and fsyncs the directory: `path` then holds either what it held
    /// before or all of `bytes`, whatever happens on the way.
    fn replace_file_atomically(&self, path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        // The temporary name is unique per writer: two pull loops fetching
        // the same segment at once never write into one file.
        let tmp_dir = self.dir.join("tmp");
        crate::durable::write(path, bytes, Some(&tmp_dir), None).map_err(|source| {
            StoreError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(path.to_path_buf())
    }

    /// Puts back the file of an indexed segment that is damaged or missing
    /// (`lumpy repair`): accepted only when `bytes` hash to `id`, written to
    /// tmp/, synced, then renamed over the damaged file, so the path holds
    /// either the old bytes or the good ones. The index is not touched.
    pub fn restore_segment(&self, id: &SegmentId, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let path = self.segment_path(id);
        let actual = SegmentId::of(bytes);
        if actual != *id {
            return Err(StoreError::HashMismatch {
                id: *id,
                path,
                actual,
            });
        }
        self.replace_file_atomically(&path, bytes)
    }

    /// Reads a whole segment and checks its hash against its id.
    pub fn read_segment(&self, id: &SegmentId) -> Result<Vec<u8>, StoreError> {
        let path = self.segment_path(id);
        let bytes = fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::Missing { id: *id },
            _ => StoreError::Io {
                path: path.clone(),
                source,
            },
        })?;
        let actual = SegmentId::of(&bytes);
        if actual != *id {
            return Err(StoreError::HashMismatch {
                id: *id,
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Opens a segment for random block access (structure checked, hash not).
    pub fn open_segment(&self, id: &SegmentId) -> Result<SegmentFile, StoreError> {
        let path = self.segment_path(id);
        let file = fs::File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::Missing { id: *id },
            _ => StoreError::Io {
                path: path.clone(),
                source,
            },
        })?;
        SegmentFile::open(file).map_err(|source| StoreError::Segment {
            id: *id,
            path,
            source,
        })
    }
}

thread_local! {
    /// Set while this thread runs a redb call whose panic is caught.
    static CATCHING_REDB_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic inside it into an error value. The panic hook
/// stays quiet for it (the caller reports the damage in its own words;
/// "thread panicked at redb/..." on stderr would read as a crash); panics
/// anywhere else still reach the hook that was installed before.
fn catch_redb_panic<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING_REDB_PANIC.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = CATCHING_REDB_PANIC.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING_REDB_PANIC.with(|c| c.set(outer));
    result
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unreadable page")
        .to_string()
}

fn clean_tmp(tmp: &Path) -> Result<(), StoreError> {
    // Anything in tmp/ is a write that never reached its rename: not data yet.
    let entries = fs::read_dir(tmp).map_err(|source| StoreError::Io {
        path: tmp.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let _ = fs::remove_file(entry.path());
    }
    Ok(())
}

/// Writes `bytes` to `path` through [`crate::durable`]: `path` then holds
/// either what it held before or all of `bytes`, whatever happens on the way.
fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::durable::write(path, bytes, None, None).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Page cache of the index file. redb's default (1 GiB) keeps every page a
/// process touches: an ingest's or verify's resident memory then grew with
/// the index (about 100 MiB per GiB of flow-dense capture). Every lookup
/// re-reads the interior pages, a few MiB even for a large index; the
/// leaves ingest and verify touch are mostly visited once.
pub(crate) const INDEX_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Opens (or creates) an index file with lumpy's cache size.
/// The store's own index, every write reported to its seal first.
fn open_sealed_index(
    path: &Path,
    chunks: &seal::SharedChunks,
) -> Result<redb::Database, redb::DatabaseError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    redb::Builder::new()
        .set_cache_size(INDEX_CACHE_BYTES)
        .create_with_backend(seal::SealedBackend::new(
            file,
            std::sync::Arc::clone(chunks),
        )?)
}

pub(crate) fn open_index(path: &Path) -> Result<redb::Database, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(INDEX_CACHE_BYTES)
        .create(path)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records_segment(seq: u64, filler: usize) -> SealedSegment {
        let mut b = SegmentBuilder::new(Kind::Records, 9, 0, 1);
        for i in 0..filler {
            b.push_record_line(i as u64, format!("{{\"n\":{i}}}\n").as_bytes())
                .unwrap();
        }
        b.seal(seq).unwrap()
    }

    /// Two pull loops fetching one segment at once (two children offer it):
    /// each writes its own temporary file, so neither truncates the other's
    /// or the file already renamed into place.
    #[test]
    fn writers_of_one_segment_at_once_never_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        for seq in 1..=20 {
            let seg = records_segment(seq, 20_000);
            let barrier = std::sync::Barrier::new(4);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        barrier.wait();
                        store.add_verified_segment(&seg.id, &seg.bytes).unwrap();
                    });
                }
            });
            assert_eq!(store.read_segment(&seg.id).unwrap(), seg.bytes);
        }
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
