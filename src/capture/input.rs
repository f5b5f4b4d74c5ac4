//! Capture input: the bytes of a capture file, decompressed when the file is
//! gzip or zstd (logrotate's `.gz`, `zstd`'s `.zst`).
//!
//! Owns opening a capture path and presenting its *decompressed* byte stream
//! with offsets in that stream, so `reader`, ingest's source key and its
//! resume point (committed offset, prefix hash) mean the same bytes whether
//! the capture is stored plain or compressed (docs/STORAGE.md §6.3).
//! The compression is recognised by its magic number, not the file name.
//! Must not touch: the capture format itself (`reader`) and anything that
//! writes. Memory stays bounded: gzip's window is 32 KiB, zstd's is capped at
//! `ZSTD_WINDOW_LOG_MAX` (a frame asking for more is refused).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest zstd window accepted (2^27 = 128 MiB, zstd's own default limit),
/// so a crafted frame cannot make a decoder allocate more.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a capture file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

enum Stream {
    Plain(File),
    Gzip(Box<flate2::read::MultiGzDecoder<BufReader<File>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<File>>>),
}

/// A capture file's (decompressed) bytes, read forward, with seeking.
///
/// Seeking a plain file is a seek; seeking a compressed one decompresses and
/// discards up to the target (from the start again when it lies behind).
pub struct CaptureInput {
    path: PathBuf,
    compression: Compression,
    stream: Stream,
    /// Offset in the decompressed stream of the next byte `read` returns.
    pos: u64,
}

impl std::fmt::Debug for CaptureInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureInput")
            .field("path", &self.path)
            .field("compression", &self.compression)
            .field("pos", &self.pos)
            .finish()
    }
}

impl CaptureInput {
    /// Opens `path`, recognising gzip and zstd by their magic numbers.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let mut magic = [0u8; 4];
        let have = read_up_to(&mut file, &mut magic)?;
        file.seek(SeekFrom::Start(0))?;
        let compression = sniff(&magic[..have]);
        Ok(CaptureInput {
            path: path.to_path_buf(),
            compression,
            stream: stream(file, compression)?,
            pos: 0,
        })
    }

    /// How the file is stored.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Offset of the next byte `read` returns, in the decompressed stream.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Length of the byte stream when it is known without decompressing it
    /// all: the file's size for a plain file, None for a compressed one.
    pub fn known_len(&self) -> std::io::Result<Option<u64>> {
        match &self.stream {
            Stream::Plain(f) => f.metadata().map(|m| Some(m.len())),
            _ => Ok(None),
        }
    }

    /// Moves to `offset`; returns the offset reached, which is smaller only
    /// when a compressed stream ends before it (a plain file may be sought
    /// past its end, as `File` allows).
    pub fn seek_to(&mut self, offset: u64) -> std::io::Result<u64> {
        if let Stream::Plain(f) = &mut self.stream {
            self.pos = f.seek(SeekFrom::Start(offset))?;
            return Ok(self.pos);
        }
        if offset < self.pos {
            let file = File::open(&self.path)?;
            self.stream = stream(file, self.compression)?;
            self.pos = 0;
        }
        let mut scratch = [0u8; 64 * 1024];
        while self.pos < offset {
            let want = usize::try_from(offset - self.pos)
                .unwrap_or(usize::MAX)
                .min(scratch.len());
            match self.read(&mut scratch[..want]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.pos)
    }
}

impl Read for CaptureInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match &mut self.stream {
            Stream::Plain(f) => f.read(buf)?,
            // A compressed stream cut short (a copy in progress, a damaged
            // file) ends where its last whole bytes end: the capture reader
            // then reports the record it cuts as truncated, as for a plain
            // file cut at the same place.
            Stream::Gzip(d) => decoded(d.read(buf))?,
            Stream::Zstd(d) => decoded(d.read(buf))?,
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// A decoder's answer: a cut stream is an early end; damaged compressed data
/// is `InvalidData` (the capture reader reports it as a damaged file at the
/// offset reached, not as an I/O failure that would stop the run).
fn decoded(r: std::io::Result<usize>) -> std::io::Result<usize> {
    match r {
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
        Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
        Err(e) => Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("damaged compressed data: {e}"),
        )),
        ok => ok,
    }
}

fn sniff(magic: &[u8]) -> Compression {
    if magic.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if magic.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn stream(file: File, compression: Compression) -> std::io::Result<Stream> {
    Ok(match compression {
        Compression::None => Stream::Plain(file),
        Compression::Gzip => Stream::Gzip(Box::new(flate2::read::MultiGzDecoder::new(
            BufReader::new(file),
        ))),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(BufReader::new(file))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Stream::Zstd(Box::new(d))
        }
    })
}

/// Reads until `buf` is full or the input ends; returns the byte count.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match r.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn bytes() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn all(mut i: CaptureInput) -> Vec<u8> {
        let mut v = Vec::new();
        i.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn plain_gzip_and_zstd_read_the_same_bytes_and_seek() {
        let dir = tempfile::tempdir().unwrap();
        let data = bytes();
        let plain = dir.path().join("c");
        std::fs::write(&plain, &data).unwrap();
        let gz = dir.path().join("c.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        let zst = dir.path().join("c.zst");
        std::fs::write(&zst, zstd::encode_all(&data[..], 3).unwrap()).unwrap();
        for (p, c) in [
            (&plain, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let i = CaptureInput::open(p).unwrap();
            assert_eq!(i.compression(), c);
            assert_eq!(all(i), data);
            let mut i = CaptureInput::open(p).unwrap();
            assert_eq!(i.seek_to(150_000).unwrap(), 150_000);
            assert_eq!(i.seek_to(1_000).unwrap(), 1_000, "backwards");
            let mut b = [0u8; 10];
            i.read_exact(&mut b).unwrap();
            assert_eq!(&b[..], &data[1_000..1_010]);
        }
        // A compressed stream seeks no further than its end.
        let mut i = CaptureInput::open(&zst).unwrap();
        assert_eq!(i.seek_to(1 << 30).unwrap(), data.len() as u64);
    }

    #[test]
    fn a_cut_compressed_file_ends_early_without_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = bytes();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        let gz = e.finish().unwrap();
        let zst = zstd::encode_all(&data[..], 3).unwrap();
        for (name, whole) in [("cut.gz", gz), ("cut.zst", zst)] {
            let p = dir.path().join(name);
            std::fs::write(&p, &whole[..whole.len() / 2]).unwrap();
            let got = all(CaptureInput::open(&p).unwrap());
            assert!(got.len() < data.len(), "{name}");
            assert_eq!(got[..], data[..got.len()], "{name}");
        }
    }

    #[test]
    fn damaged_compressed_data_is_invalid_data() {
        let dir = tempfile::tempdir().unwrap();
        // gzip checks a CRC at the end of each member, so any flip is found.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&bytes()).unwrap();
        let mut gz = e.finish().unwrap();
        let mid = gz.len() / 2;
        for b in &mut gz[mid..mid + 64] {
            *b ^= 0x5a;
        }
        let p = dir.path().join("bad.gz");
        std::fs::write(&p, &gz).unwrap();
        let mut v = Vec::new();
        let e = CaptureInput::open(&p)
            .unwrap()
            .read_to_end(&mut v)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
    }
}
