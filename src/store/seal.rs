//! The index seal: the blake3 of `index.redb` as the last clean close left
//! it, so that `verify` finds any change made to the index file outside
//! lumpy, even one in a page no reader looks at (docs/STORAGE.md §6.4).
//!
//! Owns three files beside the index: `store.lock` (the lock held for as long
//! as a store is open, from before the seal is checked until after it is
//! written), `index.redb.seal` (written when a store closes) and
//! `index.redb.damaged` (written when an open finds the index file changed
//! since its seal; it stays until `repair` rewrites the index). Never opens
//! the index with redb and never touches segments or the mirror.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{StoreError, sync_dir, write_file_atomically};

/// The seal's name inside a data directory.
pub const SEAL_FILE: &str = "index.redb.seal";
/// The marker left when the index file did not match its seal.
pub const DAMAGE_FILE: &str = "index.redb.damaged";
/// The lock file held while a store is open.
pub const LOCK_FILE: &str = "store.lock";
const SEAL_MAGIC: &str = "lumpy-index-seal 1";

/// What opening found about the index file's seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealCheck {
    /// The file is byte for byte what the last clean close left.
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

/// The length and blake3 of a file, read in 1 MiB pieces.
fn hash_file(path: &Path) -> Result<(u64, blake3::Hash), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

fn seal_text(len: u64, hash: &blake3::Hash) -> String {
    format!("{SEAL_MAGIC}\nlength {len}\nblake3 {}\n", hash.to_hex())
}

/// Parses a seal; None when it is not one (a damaged seal).
fn parse_seal(text: &str) -> Option<(u64, blake3::Hash)> {
    let mut lines = text.lines();
    if lines.next()? != SEAL_MAGIC {
        return None;
    }
    let len = lines.next()?.strip_prefix("length ")?.parse().ok()?;
    let hash = blake3::Hash::from_hex(lines.next()?.strip_prefix("blake3 ")?).ok()?;
    lines.next().is_none().then_some((len, hash))
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

/// Checks the index file against its seal and removes the seal (the index is
/// about to be opened, and redb writes to it from then on). A mismatch is
/// recorded in the damage marker, which outlives this open.
/// Called with the store lock held and before redb opens the file.
pub fn check_and_unseal(dir: &Path) -> Result<SealCheck, StoreError> {
    let seal_path = dir.join(SEAL_FILE);
    let text = match fs::read(&seal_path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SealCheck::Unsealed),
        Err(source) => {
            return Err(StoreError::Io {
                path: seal_path,
                source,
            });
        }
    };
    let index = dir.join("index.redb");
    let found = hash_file(&index)?;
    let check = match parse_seal(&text) {
        Some(sealed) if sealed.0 == found.0 && sealed.1 == found.1 => SealCheck::Matched,
        Some((len, hash)) => SealCheck::Changed(format!(
            "the index file changed outside lumpy since it was last closed: sealed {len} bytes with blake3 {}, found {} bytes with blake3 {}",
            hash.to_hex(),
            found.0,
            found.1.to_hex()
        )),
        None => SealCheck::Changed(format!(
            "the seal {} is damaged, so the index file cannot be shown unchanged",
            seal_path.display()
        )),
    };
    if let SealCheck::Changed(why) = &check {
        tracing::warn!(index = %index.display(), "{why}; `lumpy verify` reports it and `lumpy repair` rewrites the index");
        write_atomically(dir, DAMAGE_FILE, &format!("{why}\n"))?;
    }
    remove_if_present(&seal_path)?;
    sync_dir(dir)?;
    Ok(check)
}

/// Seals the index file as it is now. Called after redb has closed it.
pub fn seal(dir: &Path) -> Result<(), StoreError> {
    let (len, hash) = hash_file(&dir.join("index.redb"))?;
    write_atomically(dir, SEAL_FILE, &seal_text(len, &hash))
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
/// the redb database, so it drops (and hashes the file) after redb closed it;
/// the lock is released last.
#[derive(Debug)]
pub struct SealOnClose {
    pub dir: PathBuf,
    pub _lock: StoreLock,
}

impl Drop for SealOnClose {
    fn drop(&mut self) {
        if let Err(e) = seal(&self.dir) {
            tracing::warn!(error = %e, "the index was not sealed; verify will check its entries only");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_text_round_trips_and_rejects_damage() {
        let hash = blake3::hash(b"index");
        let text = seal_text(5, &hash);
        assert_eq!(parse_seal(&text), Some((5, hash)));
        assert_eq!(parse_seal(&text.replace("length 5", "length x")), None);
        assert_eq!(parse_seal(&format!("{text}extra\n")), None);
        assert_eq!(parse_seal(""), None);
    }

    #[test]
    fn a_changed_file_is_found_once_and_the_marker_stays() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index.redb");
        fs::write(&index, b"pages").unwrap();
        assert_eq!(check_and_unseal(dir.path()).unwrap(), SealCheck::Unsealed);
        seal(dir.path()).unwrap();
        assert_eq!(check_and_unseal(dir.path()).unwrap(), SealCheck::Matched);
        assert!(!dir.path().join(SEAL_FILE).exists());
        seal(dir.path()).unwrap();
        fs::write(&index, b"pagez").unwrap();
        assert!(matches!(
            check_and_unseal(dir.path()).unwrap(),
            SealCheck::Changed(_)
        ));
        assert!(
            damage(dir.path())
                .unwrap()
                .contains("changed outside lumpy")
        );
        seal(dir.path()).unwrap();
        assert_eq!(check_and_unseal(dir.path()).unwrap(), SealCheck::Matched);
        assert!(damage(dir.path()).is_some(), "the marker outlives the open");
        clear_damage(dir.path()).unwrap();
        assert!(damage(dir.path()).is_none());
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
