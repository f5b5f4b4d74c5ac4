//! Honeywall capture layout: finding capture files and their sensor.
//!
//! Owns walking a path given by the operator and listing the capture files below
//! it in capture order, Honeywall style (`/var/log/pcap/<epoch>/log`, `log1`, ...
//! `log10`), with the sensor id a `sensor_<id>` directory gives them.
//! Must not touch: file contents (it does not open captures: `reader` decides
//! what is a capture) and anything that writes. It never follows directory
//! symlinks, so symlink loops cannot make it walk forever.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One capture file to ingest, with the sensor its directory names (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSource {
    pub path: PathBuf,
    /// Set when the file lies below a `sensor_<id>` directory (the innermost one
    /// wins; the directory given to `discover` counts, its ancestors do not).
    pub sensor_id: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Lists the capture files at `path` in capture order.
///
/// A file (or a symlink to one) is returned as is, with no sensor. A directory is
/// walked: in each directory, the Honeywall files `log`, `log1`, `log2`, ... come
/// first (numerically), then its other files by name, then its subdirectories:
/// numeric (epoch) names numerically, then the rest by name. Hidden entries and
/// empty files are skipped; symlinks to files are included, symlinks to
/// directories are not followed. Files that vanish during the walk (rotation)
/// are skipped; other I/O errors name the path that failed.
pub fn discover(path: &Path) -> Result<Vec<CaptureSource>, LayoutError> {
    let meta = fs::metadata(path).map_err(|source| io_err(path, source))?;
    if !meta.is_dir() {
        return Ok(vec![CaptureSource {
            path: path.to_path_buf(),
            sensor_id: None,
        }]);
    }
    let sensor_id = path.file_name().and_then(sensor_id_of);
    let mut walk = Walk {
        visited: HashSet::new(),
        found: Vec::new(),
    };
    walk.directory(path, sensor_id)?;
    Ok(walk.found)
}

fn io_err(path: &Path, source: std::io::Error) -> LayoutError {
    LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `sensor_<decimal u32>` gives a sensor id; anything else (`sensor_x`,
/// `sensor_-1`, an id above u32::MAX) is a plain directory.
fn sensor_id_of(name: &OsStr) -> Option<u32> {
    let digits = name.as_bytes().strip_prefix(b"sensor_")?;
    parse_decimal(digits).and_then(|n| u32::try_from(n).ok())
}

/// Parses a non-empty run of ASCII digits (no sign, no spaces).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Sort key of a file in its directory: Honeywall `log`/`logN` first, by N,
/// compressed or not (`log3.gz` and `log3.zst` rank as `log3`).
fn file_rank(name: &OsStr) -> (u8, u64) {
    let name = name.as_bytes();
    let name = name
        .strip_suffix(b".gz")
        .or_else(|| name.strip_suffix(b".zst"))
        .unwrap_or(name);
    match name.strip_prefix(b"log") {
        Some([]) => (0, 0),
        Some(digits) => match parse_decimal(digits) {
            Some(n) => (0, n.saturating_add(1)),
            None => (1, 0),
        },
        None => (1, 0),
    }
}

/// Sort key of a subdirectory: numeric (epoch) names first, numerically.
fn dir_rank(name: &OsStr) -> (u8, u64) {
    match parse_decimal(name.as_bytes()) {
        Some(n) => (0, n),
        None => (1, 0),
    }
}

/// Orders by rank, then by name bytes (which also breaks ties like `log1`/`log01`).
fn by_rank(rank: fn(&OsStr) -> (u8, u64)) -> impl Fn(&OsString, &OsString) -> Ordering {
    move |a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    }
}

struct Walk {
    /// (device, inode) of directories entered, so a bind-mount loop ends too.
    visited: HashSet<(u64, u64)>,
    found: Vec<CaptureSource>,
}

impl Walk {
    fn directory(&mut self, dir: &Path, sensor_id: Option<u32>) -> Result<(), LayoutError> {
        let meta = fs::metadata(dir).map_err(|source| io_err(dir, source))?;
        if !self.visited.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        let (mut files, mut dirs) = list(dir)?;
        files.sort_by(by_rank(file_rank));
        dirs.sort_by(by_rank(dir_rank));
        for name in files {
            self.found.push(CaptureSource {
                path: dir.join(name),
                sensor_id,
            });
        }
        for name in dirs {
            let inner = sensor_id_of(&name).or(sensor_id);
            self.directory(&dir.join(name), inner)?;
        }
        Ok(())
    }
}

/// Names of the non-empty files and the subdirectories in `dir`, unsorted.
fn list(dir: &Path) -> Result<(Vec<OsString>, Vec<OsString>), LayoutError> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|source| io_err(dir, source))? {
        let entry = entry.map_err(|source| io_err(dir, source))?;
        let name = entry.file_name();
        if name.as_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        match classify(&entry, &path)? {
            Entry::File => files.push(name),
            Entry::Dir => dirs.push(name),
            Entry::Skip => {}
        }
    }
    Ok((files, dirs))
}

enum Entry {
    File,
    Dir,
    Skip,
}

/// Decides what a directory entry is without following directory symlinks.
/// Entries that disappear meanwhile, dangling symlinks, sockets, FIFOs and
/// devices are skipped.
fn classify(entry: &fs::DirEntry, path: &Path) -> Result<Entry, LayoutError> {
    let file_type = match entry.file_type() {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Entry::Skip),
        Err(source) => return Err(io_err(path, source)),
    };
    if file_type.is_dir() {
        return Ok(Entry::Dir);
    }
    // For a symlink this follows the link: only regular files are kept.
    let meta = if file_type.is_symlink() {
        fs::metadata(path)
    } else {
        entry.metadata()
    };
    match meta {
        Ok(m) if m.is_file() && m.len() > 0 => Ok(Entry::File),
        Ok(_) => Ok(Entry::Skip),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Entry::Skip),
        // A symlink loop (ELOOP) or a link into an unreadable place is not ours to fail on.
        Err(_) if file_type.is_symlink() => Ok(Entry::Skip),
        Err(source) => Err(io_err(path, source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, bytes: &[u8]) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, bytes).unwrap();
    }

    fn relative(root: &Path, found: &[CaptureSource]) -> Vec<(String, Option<u32>)> {
        found
            .iter()
            .map(|s| {
                (
                    s.path
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    s.sensor_id,
                )
            })
            .collect()
    }

    #[test]
    fn honeywall_order_with_sensors() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for name in [
            "log10",
            "log2",
            "log",
            "log1",
            "log9",
            "notes.txt",
            "a.pcap",
            "logx",
        ] {
            touch(&root.join("1200000000").join(name), b"x");
        }
        touch(&root.join("200000000/log"), b"x"); // fewer digits, earlier epoch
        touch(&root.join("1200000000/.hidden"), b"x");
        touch(&root.join("1200000000/empty"), b"");
        touch(&root.join("sensor_7/1300000000/log1"), b"x");
        touch(&root.join("sensor_7/1300000000/log"), b"x");
        touch(&root.join("sensor_7/sensor_9/log"), b"x");
        touch(&root.join("sensor_x/log"), b"x");
        touch(&root.join("sensor_99999999999/log"), b"x");
        touch(&root.join(".snapshot/log"), b"x");
        touch(&root.join("top.pcap"), b"x");

        let found = discover(root).unwrap();
        let got = relative(root, &found);
        let want: Vec<(&str, Option<u32>)> = vec![
            ("top.pcap", None),
            ("200000000/log", None),
            ("1200000000/log", None),
            ("1200000000/log1", None),
            ("1200000000/log2", None),
            ("1200000000/log9", None),
            ("1200000000/log10", None),
            ("1200000000/a.pcap", None),
            ("1200000000/logx", None),
            ("1200000000/notes.txt", None),
            ("sensor_7/1300000000/log", Some(7)),
            ("sensor_7/1300000000/log1", Some(7)),
            ("sensor_7/sensor_9/log", Some(9)),
            ("sensor_99999999999/log", None),
            ("sensor_x/log", None),
        ];
        let want: Vec<(String, Option<u32>)> =
            want.into_iter().map(|(p, s)| (p.to_string(), s)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn sensor_directory_itself_gives_the_id() {
        let tmp = tempfile::tempdir().unwrap();
        let sensor = tmp.path().join("sensor_3");
        touch(&sensor.join("123/log"), b"x");
        let found = discover(&sensor).unwrap();
        assert_eq!(
            found,
            vec![CaptureSource {
                path: sensor.join("123/log"),
                sensor_id: Some(3)
            }]
        );
    }

    #[test]
    fn a_file_is_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("sensor_4/capture.pcap");
        touch(&file, b"");
        assert_eq!(
            discover(&file).unwrap(),
            vec![CaptureSource {
                path: file,
                sensor_id: None
            }]
        );
    }

    #[test]
    fn symlinks_files_followed_directories_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        touch(&root.join("1/log"), b"x");
        touch(&tmp.path().join("outside.pcap"), b"x");
        std::os::unix::fs::symlink(&root, root.join("1/loop")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside.pcap"), root.join("1/linked")).unwrap();
        std::os::unix::fs::symlink(root.join("1/nowhere"), root.join("1/dangling")).unwrap();
        std::os::unix::fs::symlink(root.join("1/self"), root.join("1/self")).unwrap();
        let got = relative(&root, &discover(&root).unwrap());
        assert_eq!(
            got,
            vec![("1/log".to_string(), None), ("1/linked".to_string(), None)]
        );
    }

    #[test]
    fn missing_path_error_names_it() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("no/such/dir");
        let err = discover(&missing).unwrap_err();
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }

    #[test]
    fn ranks() {
        assert!(file_rank(OsStr::new("log")) < file_rank(OsStr::new("log0")));
        assert!(file_rank(OsStr::new("log9")) < file_rank(OsStr::new("log10")));
        assert_eq!(file_rank(OsStr::new("log-1")), (1, 0));
        assert_eq!(file_rank(OsStr::new("log99999999999999999999999")), (1, 0));
        assert_eq!(sensor_id_of(OsStr::new("sensor_12")), Some(12));
        assert_eq!(sensor_id_of(OsStr::new("sensor_")), None);
        assert_eq!(sensor_id_of(OsStr::new("sensor_+1")), None);
        assert_eq!(sensor_id_of(OsStr::new("Sensor_1")), None);
        assert_eq!(dir_rank(OsStr::new("0042")), (0, 42));
    }
}
