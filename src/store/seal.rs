//! The index seal: a blake3 of every MiB of `index.redb` as the last clean
//! close left it, so that any change made to the index file outside lumpy is
//! found, even in a page no reader looks at (docs/STORAGE.md §6.4), without
//! reading the whole file at open or close.
//!
//! Owns three files beside the index: `store.lock` (the lock held for as long
//! as a store is open, from before the seal is read until after it is
//! written), `index.redb.seal` (written when a store closes) and
//! `index.redb.damaged` (written when a chunk of the index file is found
//! changed since its seal; it stays until `repair` rewrites the index), and
//! [`SealedBackend`], the redb storage backend through which every write to
//! the index passes: it checks a chunk against its sealed hash before the
//! chunk's first write of a session and marks it for rehashing at close.
//! Never interprets the index's pages and never touches segments or the
//! mirror.
//!
//! Cost: an open reads the seal (32 bytes per MiB of index) and nothing of
//! the index; a clean close hashes the chunks written since the open; a
//! chunk is read once before its first write. `verify` reads the rest.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;
use redb::backends::FileBackend;

use super::{StoreError, sync_dir, write_file_atomically};

/// The seal's name inside a data directory.
pub const SEAL_FILE: &str = "index.redb.seal";
/// The marker left when the index file did not match its seal.
pub const DAMAGE_FILE: &str = "index.redb.damaged";
/// The lock file held while a store is open.
pub const LOCK_FILE: &str = "store.lock";
/// Seal format 1: the length and blake3 of the whole file (read once, at the
/// first open by a binary that writes format 2).
const SEAL_MAGIC_1: &str = "lumpy-index-seal 1";
const SEAL_MAGIC: &str = "lumpy-index-seal 2";
/// Bytes of index covered by one chunk hash.
pub const CHUNK: u64 = 1 << 20;

/// What opening found about the index file's seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealCheck {
    /// A seal of the file's length: each chunk is compared with it before
    /// lumpy first writes it, and every chunk by `verify`.
    Matched,
    /// No seal: a new store, or the last process holding it did not close
    /// cleanly (then only the index's entries can be checked).
    Unsealed,
    /// The file changed since it was sealed; the damage marker says how.
    Changed(String),
}

/// The exclusive lock of a data directory (an advisory `flock`), held by an
/// open store: opening, checking the seal, using the index and sealing it at
/// close happen under it, so two processes never interleave those steps.
#[derive(Debug)]
pub struct StoreLock {
    _file: fs::File,
}

impl StoreLock {
    /// Takes the lock, or says the directory is in use.
    pub fn acquire(dir: &Path) -> Result<StoreLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::InUse {
                path: dir.to_path_buf(),
            }),
            Err(fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
        }
    }
}

/// What the seal knows of each chunk of the index file during one open.
#[derive(Debug, Default)]
pub struct Chunks {
    dir: PathBuf,
    /// Length of the file when it was sealed.
    sealed_len: u64,
    /// Each chunk's hash as sealed; empty when nothing is known (no seal, a
    /// damaged one, or a file replaced by `repair`).
    sealed: Vec<blake3::Hash>,
    /// Chunks written (or cut or grown) since the open: rehashed at close.
    dirty: Vec<bool>,
    /// A change was found and the marker written during this open.
    damage_noted: bool,
}

/// [`Chunks`] shared between the redb backend and the store's close.
pub type SharedChunks = Arc<Mutex<Chunks>>;

fn lock(chunks: &SharedChunks) -> MutexGuard<'_, Chunks> {
    // A panic while holding the lock leaves plain data: still usable.
    chunks.lock().unwrap_or_else(|p| p.into_inner())
}

impl Chunks {
    fn new(dir: &Path) -> Self {
        Chunks {
            dir: dir.to_path_buf(),
            ..Chunks::default()
        }
    }

    /// The bytes chunk `c` covered when sealed.
    fn sealed_span(&self, c: usize) -> (u64, u64) {
        let start = c as u64 * CHUNK;
        (start, (start + CHUNK).min(self.sealed_len))
    }

    fn is_dirty(&self, c: usize) -> bool {
        self.dirty.get(c).copied().unwrap_or(false)
    }

    fn mark_dirty(&mut self, c: usize) {
        if self.dirty.len() <= c {
            self.dirty.resize(c + 1, false);
        }
        self.dirty[c] = true;
    }

    /// Before bytes `[start, end)` change: each chunk they touch that is
    /// still as sealed is compared with its hash (read through `read`), so
    /// a change made outside lumpy is not folded into the next seal, then
    /// marked for rehashing.
    fn before_change(
        &mut self,
        start: u64,
        end: u64,
        read: impl Fn(u64, &mut [u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if end <= start {
            return Ok(());
        }
        let first = usize::try_from(start / CHUNK).unwrap_or(usize::MAX);
        let last = usize::try_from((end - 1) / CHUNK).unwrap_or(usize::MAX);
        let mut buf = Vec::new();
        for c in first..=last {
            if self.is_dirty(c) {
                continue;
            }
            if let Some(expected) = self.sealed.get(c).copied() {
                let (from, to) = self.sealed_span(c);
                buf.resize((to - from) as usize, 0);
                read(from, &mut buf)?;
                let found = blake3::hash(&buf);
                if found != expected {
                    self.note_damage(c, found, expected);
                }
            }
            self.mark_dirty(c);
        }
        Ok(())
    }

    /// Writes the damage marker (once per open).
    fn note_damage(&mut self, c: usize, found: blake3::Hash, expected: blake3::Hash) {
        if self.damage_noted {
            return;
        }
        self.damage_noted = true;
        let (from, to) = self.sealed_span(c);
        let why = format!(
            "the index file changed outside lumpy since it was last closed: bytes {from}..{to} hash to blake3 {}, sealed {}",
            found.to_hex(),
            expected.to_hex()
        );
        note_changed(&self.dir, &why);
    }

    /// Forgets every sealed hash: the file was replaced, the close hashes it
    /// all.
    pub fn forget(&mut self) {
        self.sealed.clear();
        self.dirty.clear();
        self.sealed_len = 0;
    }
}

/// Records `why` in the damage marker (best effort: the warning is logged
/// in any case).
fn note_changed(dir: &Path, why: &str) {
    tracing::warn!(index = %dir.join("index.redb").display(), "{why}; `lumpy verify` reports it and `lumpy repair` rewrites the index");
    if let Err(e) = write_atomically(dir, DAMAGE_FILE, &format!("{why}\n")) {
        tracing::warn!(error = %e, "the index damage marker could not be written");
    }
}

/// redb's file backend, with every change of the file reported to the seal
/// first ([`Chunks::before_change`]).
#[derive(Debug)]
pub struct SealedBackend {
    inner: FileBackend,
    chunks: SharedChunks,
}

impl SealedBackend {
    pub fn new(file: fs::File, chunks: SharedChunks) -> Result<Self, redb::DatabaseError> {
        Ok(SealedBackend {
            inner: FileBackend::new(file)?,
            chunks,
        })
    }
}

impl StorageBackend for SealedBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut c = lock(&self.chunks);
        let old = self.inner.len()?;
        c.before_change(old.min(len), old.max(len), |at, buf| {
            self.inner.read(at, buf)
        })?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut c = lock(&self.chunks);
        let end = offset.saturating_add(data.len() as u64);
        c.before_change(offset, end, |at, buf| self.inner.read(at, buf))?;
        // Under the lock: `verify`'s walk never sees a chunk half written
        // and not yet marked.
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(s, e)
    }

    fn try_lock_shared_range(
        &self,
        s: Bound<u64>,
        e: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }

    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(s, e)
    }

    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(s, e)
    }

    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(s, e)
    }

    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(s, e)
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the file).
fn read_full(file: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = file.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// The length, whole-file blake3 and chunk hashes of a file, in one pass.
fn hash_file(path: &Path) -> Result<(u64, blake3::Hash, Vec<blake3::Hash>), StoreError> {
    let io = io_err(path);
    let mut file = fs::File::open(path).map_err(&io)?;
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut len = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf).map_err(&io)?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        chunks.push(blake3::hash(&buf[..n]));
        len += n as u64;
    }
    Ok((len, whole.finalize(), chunks))
}

/// blake3 over the chunk hashes, so a damaged seal is told from a changed
/// index.
fn top_hash(chunks: &[blake3::Hash]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c.as_bytes());
    }
    h.finalize()
}

fn chunk_count(len: u64) -> usize {
    usize::try_from(len.div_ceil(CHUNK)).unwrap_or(usize::MAX)
}

fn seal_text(len: u64, chunks: &[blake3::Hash]) -> String {
    let mut text = format!(
        "{SEAL_MAGIC}\nlength {len}\nchunk {CHUNK}\nblake3 {}\n",
        top_hash(chunks).to_hex()
    );
    for c in chunks {
        text.push_str(&c.to_hex());
        text.push('\n');
    }
    text
}

/// A seal as read back.
#[derive(Debug, PartialEq, Eq)]
enum Seal {
    /// Format 1: the whole file's length and hash.
    Whole(u64, blake3::Hash),
    /// Format 2: the length and each chunk's hash.
    Chunked(u64, Vec<blake3::Hash>),
}

/// Parses a seal; None when it is not one (a damaged seal).
fn parse_seal(text: &str) -> Option<Seal> {
    let mut lines = text.lines();
    let magic = lines.next()?;
    let len: u64 = lines.next()?.strip_prefix("length ")?.parse().ok()?;
    if magic == SEAL_MAGIC_1 {
        let hash = blake3::Hash::from_hex(lines.next()?.strip_prefix("blake3 ")?).ok()?;
        return lines.next().is_none().then_some(Seal::Whole(len, hash));
    }
    if magic != SEAL_MAGIC || lines.next()? != format!("chunk {CHUNK}") {
        return None;
    }
    let top = blake3::Hash::from_hex(lines.next()?.strip_prefix("blake3 ")?).ok()?;
    let chunks: Vec<blake3::Hash> = lines
        .map(|l| blake3::Hash::from_hex(l).ok())
        .collect::<Option<_>>()?;
    (chunks.len() == chunk_count(len) && top_hash(&chunks) == top)
        .then_some(Seal::Chunked(len, chunks))
}

/// Writes `text` to `dir/name` atomically (temp file beside it, fsync,
/// rename, fsync).
fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<(), StoreError> {
    write_file_atomically(&dir.join(name), text.as_bytes())
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What a store with no index file yet (or no seal) starts from: nothing
/// sealed, every chunk hashed at close.
pub fn unsealed(dir: &Path) -> SharedChunks {
    Arc::new(Mutex::new(Chunks::new(dir)))
}

/// Reads the index file's seal and removes it (the index is about to be
/// opened, and redb writes to it from then on; a process killed from now on
/// leaves it unsealed). Reads nothing of the index but its length, except
/// for a format-1 seal, which is checked whole once. A mismatch is recorded
/// in the damage marker, which outlives this open.
/// Called with the store lock held and before redb opens the file.
pub fn check_and_unseal(dir: &Path) -> Result<(SealCheck, SharedChunks), StoreError> {
    let mut chunks = Chunks::new(dir);
    let seal_path = dir.join(SEAL_FILE);
    let text = match fs::read(&seal_path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((SealCheck::Unsealed, unsealed(dir)));
        }
        Err(source) => {
            return Err(StoreError::Io {
                path: seal_path,
                source,
            });
        }
    };
    let index = dir.join("index.redb");
    let changed = |sealed_len: u64, what: String, found_len: u64| {
        SealCheck::Changed(format!(
            "the index file changed outside lumpy since it was last closed: sealed {sealed_len} bytes{what}, found {found_len} bytes"
        ))
    };
    let check = match parse_seal(&text) {
        Some(Seal::Chunked(len, hashes)) => {
            let found = fs::metadata(&index).map_err(io_err(&index))?.len();
            if found == len {
                chunks.sealed_len = len;
                chunks.sealed = hashes;
                SealCheck::Matched
            } else {
                changed(len, String::new(), found)
            }
        }
        Some(Seal::Whole(len, hash)) => {
            let (found_len, found_hash, hashes) = hash_file(&index)?;
            // What is there now is what the next seal starts from.
            chunks.sealed_len = found_len;
            chunks.sealed = hashes;
            if (found_len, found_hash) == (len, hash) {
                SealCheck::Matched
            } else {
                changed(len, format!(" with blake3 {}", hash.to_hex()), found_len)
            }
        }
        None => SealCheck::Changed(format!(
            "the seal {} is damaged, so the index file cannot be shown unchanged",
            seal_path.display()
        )),
    };
    if let SealCheck::Changed(why) = &check {
        chunks.damage_noted = true;
        note_changed(dir, why);
    }
    remove_if_present(&seal_path)?;
    sync_dir(dir)?;
    Ok((check, Arc::new(Mutex::new(chunks))))
}

/// Compares every chunk not written since the open with its sealed hash
/// (`verify`: the chunks written were compared before their first write).
/// True when a change was found; it is recorded in the damage marker.
pub fn check_unwritten(chunks: &SharedChunks) -> Result<bool, StoreError> {
    let mut c = lock(chunks);
    let index = c.dir.join("index.redb");
    let io = io_err(&index);
    let mut file = fs::File::open(&index).map_err(&io)?;
    let mut buf = vec![0u8; CHUNK as usize];
    for i in 0..c.sealed.len() {
        if c.is_dirty(i) {
            continue;
        }
        let (from, to) = c.sealed_span(i);
        file.seek(SeekFrom::Start(from)).map_err(&io)?;
        let want = (to - from) as usize;
        let n = read_full(&mut file, &mut buf[..want]).map_err(&io)?;
        let found = blake3::hash(&buf[..n]);
        let expected = c.sealed[i];
        if n != want || found != expected {
            c.note_damage(i, found, expected);
            return Ok(true);
        }
    }
    Ok(false)
}

/// Seals the index file as it is now: the chunks written since the open are
/// hashed, the others keep their sealed hash. Called after redb has closed
/// the file.
pub fn seal(dir: &Path, chunks: &SharedChunks) -> Result<(), StoreError> {
    let c = lock(chunks);
    let index = dir.join("index.redb");
    let io = io_err(&index);
    let mut file = fs::File::open(&index).map_err(&io)?;
    let len = file.metadata().map_err(&io)?.len();
    let count = chunk_count(len);
    let mut hashes = Vec::with_capacity(count);
    let mut buf = vec![0u8; CHUNK as usize];
    for i in 0..count {
        let start = i as u64 * CHUNK;
        let end = (start + CHUNK).min(len);
        let kept = c
            .sealed
            .get(i)
            .filter(|_| !c.is_dirty(i) && c.sealed_span(i) == (start, end));
        match kept {
            Some(h) => hashes.push(*h),
            None => {
                file.seek(SeekFrom::Start(start)).map_err(&io)?;
                let n = read_full(&mut file, &mut buf[..(end - start) as usize]).map_err(&io)?;
                hashes.push(blake3::hash(&buf[..n]));
            }
        }
    }
    write_atomically(dir, SEAL_FILE, &seal_text(len, &hashes))
}

/// The damage marker's text, when an open found the index file changed.
pub fn damage(dir: &Path) -> Option<String> {
    fs::read(dir.join(DAMAGE_FILE))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
}

/// Removes the damage marker (after `repair` rewrote the index).
pub fn clear_damage(dir: &Path) -> Result<(), StoreError> {
    remove_if_present(&dir.join(DAMAGE_FILE))?;
    sync_dir(dir)
}

/// Seals the index when the store closes: a field of `Store` declared after
/// the redb database, so it drops (and hashes the chunks written) after redb
/// closed it; the lock is released last.
#[derive(Debug)]
pub struct SealOnClose {
    pub dir: PathBuf,
    pub chunks: SharedChunks,
    pub _lock: StoreLock,
}

impl Drop for SealOnClose {
    fn drop(&mut self) {
        if let Err(e) = seal(&self.dir, &self.chunks) {
            tracing::warn!(error = %e, "the index was not sealed; verify will check its entries only");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_file(dir: &Path) -> PathBuf {
        dir.join("index.redb")
    }

    #[test]
    fn seal_text_round_trips_and_rejects_damage() {
        let hashes = vec![blake3::hash(b"a"), blake3::hash(b"b")];
        let text = seal_text(CHUNK + 5, &hashes);
        assert_eq!(
            parse_seal(&text),
            Some(Seal::Chunked(CHUNK + 5, hashes.clone()))
        );
        assert_eq!(parse_seal(&text.replace("length", "lenth")), None);
        // One chunk too few for the length, or a changed chunk line.
        assert_eq!(parse_seal(&seal_text(3 * CHUNK, &hashes)), None);
        let other = blake3::hash(b"c").to_hex().to_string();
        let first = hashes[0].to_hex().to_string();
        assert_eq!(parse_seal(&text.replacen(&first, &other, 1)), None);
        assert_eq!(parse_seal(&format!("{text}extra\n")), None);
        assert_eq!(parse_seal(""), None);
        let old = format!("{SEAL_MAGIC_1}\nlength 5\nblake3 {}\n", hashes[0].to_hex());
        assert_eq!(parse_seal(&old), Some(Seal::Whole(5, hashes[0])));
    }

    /// Opens, lets `change` act through the backend's hook, closes.
    fn session(dir: &Path, change: impl FnOnce(&SharedChunks)) -> SealCheck {
        let (check, chunks) = check_and_unseal(dir).unwrap();
        assert!(!dir.join(SEAL_FILE).exists());
        change(&chunks);
        seal(dir, &chunks).unwrap();
        check
    }

    /// Writes `bytes` at `at` as the backend does: the hook first.
    fn write_at(chunks: &SharedChunks, path: &Path, at: u64, bytes: &[u8]) {
        let mut data = fs::read(path).unwrap();
        lock(chunks)
            .before_change(at, at + bytes.len() as u64, |from, buf| {
                buf.copy_from_slice(&data[from as usize..from as usize + buf.len()]);
                Ok(())
            })
            .unwrap();
        let end = at as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[at as usize..end].copy_from_slice(bytes);
        fs::write(path, data).unwrap();
    }

    #[test]
    fn changes_outside_lumpy_are_found_by_the_first_write_or_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let index = index_file(d);
        fs::write(&index, vec![7u8; 3 * CHUNK as usize + 10]).unwrap();
        assert_eq!(session(d, |_| {}), SealCheck::Unsealed);
        // Lumpy's own writes (chunk 1, and growth) are sealed at close.
        let check = session(d, |c| {
            write_at(c, &index, CHUNK + 3, b"lumpy");
            write_at(c, &index, 3 * CHUNK + 8, b"grown");
        });
        assert_eq!(check, SealCheck::Matched);
        let (_, c) = check_and_unseal(d).unwrap();
        assert!(!check_unwritten(&c).unwrap());
        seal(d, &c).unwrap();
        assert!(damage(d).is_none());
        // A flip in a chunk lumpy does not write: found by the walk.
        let mut bytes = fs::read(&index).unwrap();
        bytes[2 * CHUNK as usize + 1] ^= 4;
        fs::write(&index, &bytes).unwrap();
        let (check, c) = check_and_unseal(d).unwrap();
        assert_eq!(
            check,
            SealCheck::Matched,
            "an open reads nothing of the file"
        );
        assert!(check_unwritten(&c).unwrap());
        assert!(damage(d).unwrap().contains("changed outside lumpy"));
        // Its old hash is kept, so the next walk finds it again.
        seal(d, &c).unwrap();
        clear_damage(d).unwrap();
        let (_, c) = check_and_unseal(d).unwrap();
        assert!(check_unwritten(&c).unwrap());
        // Sealed afresh (as repair does): clean again.
        lock(&c).forget();
        seal(d, &c).unwrap();
        clear_damage(d).unwrap();
        // A flip in a chunk lumpy then writes: found before the write.
        bytes = fs::read(&index).unwrap();
        bytes[5] ^= 1;
        fs::write(&index, &bytes).unwrap();
        session(d, |c| write_at(c, &index, 0, b"x"));
        assert!(damage(d).unwrap().contains("bytes 0..1048576"));
        // A cut file: found at open by its length.
        clear_damage(d).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&index).unwrap();
        f.set_len(CHUNK).unwrap();
        assert!(matches!(session(d, |_| {}), SealCheck::Changed(_)));
        assert!(damage(d).is_some(), "the marker outlives the open");
    }

    #[test]
    fn a_format_1_seal_is_checked_whole_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(index_file(d), b"pages").unwrap();
        let old = format!(
            "{SEAL_MAGIC_1}\nlength 5\nblake3 {}\n",
            blake3::hash(b"pages").to_hex()
        );
        fs::write(d.join(SEAL_FILE), &old).unwrap();
        assert_eq!(session(d, |_| {}), SealCheck::Matched);
        let text = fs::read_to_string(d.join(SEAL_FILE)).unwrap();
        assert!(text.starts_with(SEAL_MAGIC), "{text}");
        fs::write(d.join(SEAL_FILE), old.replace("length 5", "length 6")).unwrap();
        assert!(matches!(session(d, |_| {}), SealCheck::Changed(_)));
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = StoreLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            StoreLock::acquire(dir.path()),
            Err(StoreError::InUse { .. })
        ));
        drop(held);
        StoreLock::acquire(dir.path()).unwrap();
    }
}
