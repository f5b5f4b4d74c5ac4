//! The one durable write path for every file lumpy writes (segments, the
//! index seal, lumpy.toml, UI users, link secrets, archive bundles, SQL
//! exports): a temporary file whose name is unique to the writer, written,
//! fsynced, renamed over the target, then the target's directory fsynced,
//! and any directory created on the way fsynced into its parent. After a
//! crash at any point the target holds either what it held before or all of
//! the new bytes; two writers of one target never share a temporary file.
//!
//! A writer of many files at once (a pull's batch of segments) fsyncs them
//! in groups ([`sync_all`]: several fsyncs in flight, so a journalling file
//! system covers them with shared journal commits), renames them, then
//! fsyncs each touched directory once, all before anything names them.
//!
//! Owns only that sequence of system calls; knows nothing of what the bytes
//! are.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes each temporary name of this process unique (the pid makes it
/// unique between processes).
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// A temporary name for `target` inside `tmp_dir` (default: beside the
/// target) that no other writer, in this process or another, uses.
pub fn unique_tmp(target: &Path, tmp_dir: Option<&Path>) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
    let file = format!(".{name}.{}.{n}.tmp", std::process::id());
    match tmp_dir {
        Some(d) => d.join(file),
        None => target.parent().unwrap_or(Path::new(".")).join(file),
    }
}

/// fsyncs a directory, so a rename or creation inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs at most this many files at once.
const SYNC_THREADS: usize = 8;

/// fsyncs every file of `files`, several at once (up to 8 in flight): on
/// ext4 or xfs concurrent fsyncs join one journal commit where one after
/// another each waits for its own. Returns when all are durable, or the
/// first error (the caller then names none of them).
pub fn sync_all(files: &[&File]) -> io::Result<()> {
    if files.len() <= 1 {
        return files.iter().try_for_each(|f| f.sync_all());
    }
    let next = AtomicU64::new(0);
    let threads = files.len().min(SYNC_THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> io::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(f) = files.get(i) else {
                            return Ok(());
                        };
                        f.sync_all()?;
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(io::Error::other("an fsync thread panicked")))
        })
    })
}

/// fsyncs each directory of `dirs` (their renames and new entries are then
/// durable), several at once as [`sync_all`].
pub fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    let opened = dirs
        .into_iter()
        .map(|d| {
            File::open(d).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", d.display())))
        })
        .collect::<io::Result<Vec<File>>>()?;
    sync_all(&opened.iter().collect::<Vec<_>>())
}

/// Creates `dir` and any missing parents, fsyncing each new directory into
/// its parent (a new `segments/ab/` is otherwise lost with its files after
/// a power cut, though each file was fsynced).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another writer made it first: it syncs it too.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// A file being written under a temporary name; [`AtomicFile::commit`]
/// puts it in place, dropping it uncommitted removes it.
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts writing `target` (created with `mode` when given), its
    /// temporary file in `tmp_dir` or beside it.
    pub fn create(target: &Path, tmp_dir: Option<&Path>, mode: Option<u32>) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_all(parent)?;
        }
        let tmp = unique_tmp(target, tmp_dir);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if let Some(mode) = mode {
            options.mode(mode);
        }
        let file = options.open(&tmp)?;
        Ok(AtomicFile {
            tmp,
            target: target.to_path_buf(),
            file: Some(file),
        })
    }

    /// The temporary file's path (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsyncs the file, renames it over the target and fsyncs the target's
    /// directory.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        fs::rename(&self.tmp, &self.target)?;
        sync_dir(
            self.target
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    }
}

impl AtomicFile {
    /// The open temporary file (for [`sync_all`] over a batch); `None` once
    /// committed.
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// Renames the file over the target, for a caller who has already
    /// fsynced it (with [`sync_all`], in a batch) and who fsyncs the
    /// target's directory (with [`sync_dirs`]) before anything names it.
    /// Gives that directory.
    pub fn rename_synced(mut self) -> io::Result<PathBuf> {
        fs::rename(&self.tmp, &self.target)?;
        self.file = None;
        Ok(self
            .target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `target` durably and atomically (see the module doc).
pub fn write(
    target: &Path,
    bytes: &[u8],
    tmp_dir: Option<&Path>,
    mode: Option<u32>,
) -> io::Result<()> {
    let mut f = AtomicFile::create(target, tmp_dir, mode)?;
    f.write_all(bytes)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/file");
        write(&target, b"one", None, None).unwrap();
        write(&target, b"two", None, Some(0o600)).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let left: Vec<_> = fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(left.len(), 1);
        // A replacement has the mode it was written with.
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// A batch fsynced in groups, renamed, its directories fsynced: every
    /// target holds its bytes and no temporary file is left.
    #[test]
    fn a_batch_synced_in_groups_lands_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..20 {
            let target = dir.path().join(format!("d{}/f{i}", i % 3));
            let mut f = AtomicFile::create(&target, Some(dir.path()), None).unwrap();
            f.write_all(format!("bytes {i}").as_bytes()).unwrap();
            files.push(f);
        }
        sync_all(
            &files
                .iter()
                .filter_map(AtomicFile::file)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let dirs: std::collections::BTreeSet<PathBuf> = files
            .into_iter()
            .map(|f| f.rename_synced().unwrap())
            .collect();
        assert_eq!(dirs.len(), 3);
        sync_dirs(dirs.iter().map(PathBuf::as_path)).unwrap();
        for i in 0..20 {
            let target = dir.path().join(format!("d{}/f{i}", i % 3));
            assert_eq!(fs::read(&target).unwrap(), format!("bytes {i}").as_bytes());
        }
        // Only the three directories are left beside nothing else.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
        assert!(sync_dirs([dir.path().join("missing").as_path()]).is_err());
    }

    #[test]
    fn temporary_names_are_unique_per_writer() {
        let t = Path::new("/x/segments/ab/abcd");
        assert_ne!(unique_tmp(t, None), unique_tmp(t, None));
    }

    #[test]
    fn an_uncommitted_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        {
            let mut f = AtomicFile::create(&target, None, None).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert!(!target.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
