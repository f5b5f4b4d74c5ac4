//! Segments arriving from a peer: each is written to `tmp/` as its bytes
//! arrive and hashed on the way (never held whole in memory), checked
//! against its id and its structure, then made visible in batches: the
//! files fsynced in groups, renamed into `segments/xx/`, each touched
//! directory fsynced once, and one index commit for the whole batch
//! (docs/STORAGE.md §5, docs/PROTOCOL.md §4).
//!
//! Owns the temporary files of incoming segments, the batch commit that
//! indexes them, and putting a received copy of an indexed segment back in
//! place for `lumpy repair` (`Store::restore_received`, never touching the
//! index). Does not decide what to fetch, and never decodes records:
//! the caller checks a record segment's records between [`Incoming::finish`]
//! and [`Store::commit_received`]. A dropped `Incoming` or `Received`
//! removes its temporary file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use redb::ReadableTable;

use super::catalog::{decode_known, flow_blocks_by};
use super::index::{FLOW_BLOCKS, KNOWN, SEGMENTS, SENSOR_SEQ};
use super::segment::{Header, SegmentError, SegmentFile};
use super::{Kind, SegmentId, SegmentMeta, Store, StoreError};
use crate::durable::AtomicFile;

/// Largest write buffer of one incoming segment: what a pull loop holds of
/// a segment in memory, whatever size the segment claims.
pub const INCOMING_BUFFER: usize = 1 << 20;

/// Bytes of a segment's header: enough to check what it says of itself
/// before the rest arrives.
pub const HEAD_LEN: usize = 64;

/// A segment being received: bytes are hashed and written to a temporary
/// file as they come.
pub struct Incoming {
    id: SegmentId,
    expected: u64,
    written: u64,
    hasher: blake3::Hasher,
    /// Removed when dropped uncommitted.
    file: BufWriter<AtomicFile>,
    head: Vec<u8>,
}

/// A received segment whose bytes hash to its id and whose structure
/// parses; not visible until [`Store::commit_received`].
pub struct Received {
    /// Removed when dropped uncommitted.
    file: AtomicFile,
    segment: SegmentFile,
    meta: SegmentMeta,
    flow_blocks: BTreeMap<u32, Vec<u32>>,
}

/// A received segment renamed into place, waiting for its index entry.
struct Placed {
    meta: SegmentMeta,
    flow_blocks: BTreeMap<u32, Vec<u32>>,
}

impl Store {
    /// Starts receiving segment `id` of `len` bytes into a temporary file
    /// whose name is unique to this writer.
    pub fn begin_incoming(&self, id: &SegmentId, len: u64) -> Result<Incoming, StoreError> {
        let target = self.segment_path(id);
        let tmp_dir = self.dir.join("tmp");
        let file =
            AtomicFile::create(&target, Some(&tmp_dir), None).map_err(|source| StoreError::Io {
                path: tmp_dir.clone(),
                source,
            })?;
        let capacity = usize::try_from(len)
            .unwrap_or(INCOMING_BUFFER)
            .clamp(1, INCOMING_BUFFER);
        Ok(Incoming {
            id: *id,
            expected: len,
            written: 0,
            hasher: blake3::Hasher::new(),
            file: BufWriter::with_capacity(capacity, file),
            head: Vec::new(),
        })
    }

    /// Makes a batch of received segments visible: fsyncs their files in
    /// groups (`durable::sync_all`), renames each into place, fsyncs each
    /// touched directory once, then indexes the batch in one commit. A
    /// segment whose sequence place holds another id (here, or earlier in
    /// the same batch) is refused alone: its outcome is `SequenceConflict`
    /// and its file is not kept. After a crash at any point the store holds
    /// what it held before, plus whole segment files (unindexed until a
    /// later pull indexes them, which `verify` reports as harmless).
    pub fn commit_received(
        &self,
        batch: Vec<Received>,
    ) -> Result<Vec<Result<SegmentMeta, StoreError>>, StoreError> {
        // Checked before the files are renamed (one read transaction for the
        // batch) and again inside the commit (another pull loop may take a
        // place in between).
        let places: Vec<(u32, u64)> = batch
            .iter()
            .map(|r| (r.meta.sensor_id, r.meta.origin_seq))
            .collect();
        let present = self.entries_at(&places)?;
        let mut outcomes: Vec<Option<Result<SegmentMeta, StoreError>>> = Vec::new();
        let mut kept = Vec::with_capacity(batch.len());
        for (r, there) in batch.into_iter().zip(present) {
            match there.filter(|t| *t != r.meta.id) {
                Some(there) => outcomes.push(Some(Err(conflict(&r.meta, there)))),
                None => {
                    outcomes.push(None);
                    kept.push(r);
                }
            }
        }
        // Every file's bytes durable, several fsyncs in flight at once...
        let files: Vec<&File> = kept.iter().filter_map(|r| r.file.file()).collect();
        crate::durable::sync_all(&files).map_err(|source| StoreError::Io {
            path: self.dir.join("tmp"),
            source,
        })?;
        // ...then in place, then every touched directory durable, before
        // the index names any of them.
        let mut dirs = BTreeSet::new();
        let mut placed = Vec::with_capacity(outcomes.len());
        let mut kept = kept.into_iter();
        for slot in &outcomes {
            if slot.is_some() {
                placed.push(None);
                continue;
            }
            let Some(r) = kept.next() else {
                return Err(StoreError::CorruptEntry("unplaced segment".into()));
            };
            let (dir, p) = self.place(r)?;
            dirs.insert(dir);
            placed.push(Some(p));
        }
        crate::durable::sync_dirs(dirs.iter().map(PathBuf::as_path)).map_err(|source| {
            StoreError::Io {
                path: self.dir.join("segments"),
                source,
            }
        })?;
        self.index_placed(&mut outcomes, &placed)?;
        // A file refused inside the commit (another loop took its place in
        // the meantime) goes, unless the same bytes are indexed.
        for (slot, p) in outcomes.iter().zip(&placed) {
            if let (Some(Err(_)), Some(p)) = (slot, p)
                && self.segment_meta(&p.meta.id)?.is_none()
            {
                let _ = fs::remove_file(self.segment_path(&p.meta.id));
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::Internal(
                        "a segment of the batch was not placed",
                    ))
                })
            })
            .collect())
    }

    /// Puts a received copy of a segment this node indexes back in place
    /// (`lumpy repair`): its bytes hashed to its id as they arrived; the file
    /// is fsynced, renamed over the damaged or missing one and the directory
    /// fsynced. The index is not touched: the content is the id, so a good
    /// copy is the original.
    pub fn restore_received(&self, r: Received) -> Result<PathBuf, StoreError> {
        let path = self.segment_path(&r.meta.id);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        if let Some(f) = r.file.file() {
            f.sync_all().map_err(io)?;
        }
        let (dir, _) = self.place(r)?;
        crate::durable::sync_dir(&dir).map_err(io)?;
        Ok(path)
    }

    /// Receives a segment from a reader (another node's data directory, for
    /// `lumpy repair`) the way a pull receives it: to `tmp/` in chunks,
    /// hashed on the way. `Ok(None)` when the bytes do not hash to `id`.
    pub fn receive_from(
        &self,
        id: &SegmentId,
        len: u64,
        mut from: impl std::io::Read,
    ) -> Result<Option<Received>, StoreError> {
        let mut incoming = self.begin_incoming(id, len)?;
        let mut chunk = vec![
            0u8;
            usize::try_from(len)
                .unwrap_or(INCOMING_BUFFER)
                .clamp(1, INCOMING_BUFFER)
        ];
        loop {
            let n = from.read(&mut chunk).map_err(|source| StoreError::Io {
                path: self.segment_path(id),
                source,
            })?;
            if n == 0 {
                break;
            }
            if incoming.written() + n as u64 > len {
                // Grew since its length was read: not a copy to trust.
                return Ok(None);
            }
            incoming.write(&chunk[..n])?;
        }
        if incoming.written() != len {
            return Ok(None);
        }
        match incoming.finish() {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::HashMismatch { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Renames a received file, already fsynced, into `segments/xx/`; gives
    /// the directory, still to be fsynced.
    fn place(&self, r: Received) -> Result<(PathBuf, Placed), StoreError> {
        let Received {
            file,
            segment,
            meta,
            flow_blocks,
        } = r;
        drop(segment);
        // Content addressing: a file already there with this name holds
        // these bytes (or is damage `verify` finds); replacing it with bytes
        // just checked is never worse.
        let dir = file.rename_synced().map_err(|source| StoreError::Io {
            path: self.segment_path(&meta.id),
            source,
        })?;
        Ok((dir, Placed { meta, flow_blocks }))
    }

    /// One redb commit naming every placed segment whose place is free (or
    /// holds the same id); the others get their `SequenceConflict`.
    fn index_placed(
        &self,
        outcomes: &mut [Option<Result<SegmentMeta, StoreError>>],
        placed: &[Option<Placed>],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut seq = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
            let mut known = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
            let mut segments = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
            let mut fb = txn.open_table(FLOW_BLOCKS).map_err(|e| self.index_err(e))?;
            for (slot, p) in outcomes.iter_mut().zip(placed) {
                let Some(p) = p else { continue };
                let meta = &p.meta;
                let place = (meta.sensor_id, meta.origin_seq);
                let held = seq
                    .get(place)
                    .map_err(|e| self.index_err(e))?
                    .map(|v| SegmentId(*v.value()));
                let known_id = match known.get(place).map_err(|e| self.index_err(e))? {
                    Some(v) => Some(decode_known(meta.sensor_id, meta.origin_seq, v.value())?.id),
                    None => None,
                };
                if let Some(there) = held.or(known_id).filter(|t| *t != meta.id) {
                    *slot = Some(Err(conflict(meta, there)));
                    continue;
                }
                segments
                    .insert(&meta.id.0, meta.encode().as_slice())
                    .map_err(|e| self.index_err(e))?;
                seq.insert(place, &meta.id.0)
                    .map_err(|e| self.index_err(e))?;
                known.remove(place).map_err(|e| self.index_err(e))?;
                for (flow, blocks) in &p.flow_blocks {
                    let value: Vec<u8> = blocks.iter().flat_map(|b| b.to_le_bytes()).collect();
                    fb.insert((meta.sensor_id, *flow, meta.origin_seq), value.as_slice())
                        .map_err(|e| self.index_err(e))?;
                }
                *slot = Some(Ok(*meta));
            }
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }
}

fn conflict(meta: &SegmentMeta, there: SegmentId) -> StoreError {
    StoreError::SequenceConflict {
        sensor: meta.sensor_id,
        seq: meta.origin_seq,
        held: there,
        offered: meta.id,
    }
}

impl Incoming {
    pub fn id(&self) -> &SegmentId {
        &self.id
    }

    /// The first bytes received (up to [`HEAD_LEN`]): the segment's header
    /// once that many have arrived.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn tmp(&self) -> PathBuf {
        self.file.get_ref().tmp_path().to_path_buf()
    }

    /// Appends the next bytes of the segment; more than announced is refused.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let total = self
            .written
            .checked_add(bytes.len() as u64)
            .filter(|t| *t <= self.expected)
            .ok_or_else(|| {
                self.damaged(format!("more than the {} bytes announced", self.expected))
            })?;
        if self.head.len() < HEAD_LEN {
            let take = (HEAD_LEN - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|source| StoreError::Io {
                path: self.tmp(),
                source,
            })?;
        self.written = total;
        Ok(())
    }

    fn damaged(&self, detail: String) -> StoreError {
        StoreError::Segment {
            id: self.id,
            path: self.tmp(),
            source: SegmentError::Corrupt {
                what: "received bytes",
                detail,
            },
        }
    }

    /// Checks that every announced byte arrived and that they hash to the
    /// id (`HashMismatch` otherwise), then parses the structure and derives
    /// what the index keeps of it, reading one block at a time.
    pub fn finish(self) -> Result<Received, StoreError> {
        if self.written != self.expected {
            return Err(self.damaged(format!(
                "{} of {} bytes received",
                self.written, self.expected
            )));
        }
        let actual = SegmentId(*self.hasher.finalize().as_bytes());
        if actual != self.id {
            return Err(StoreError::HashMismatch {
                id: self.id,
                path: self.tmp(),
                actual,
            });
        }
        let tmp = self.tmp();
        let file = self.file.into_inner().map_err(|e| StoreError::Io {
            path: tmp,
            source: e.into_error(),
        })?;
        Received::open(self.id, file)
    }
}

impl Received {
    /// Parses a received file (dropped, and so removed, on any error).
    fn open(id: SegmentId, file: AtomicFile) -> Result<Received, StoreError> {
        let tmp = file.tmp_path().to_path_buf();
        let seg_err = |source| StoreError::Segment {
            id,
            path: tmp.clone(),
            source,
        };
        let io = |source| StoreError::Io {
            path: tmp.clone(),
            source,
        };
        let mut segment = SegmentFile::open(File::open(&tmp).map_err(io)?).map_err(seg_err)?;
        let header = segment.header;
        let stored_bytes = fs::metadata(&tmp).map(|m| m.len()).map_err(io)?;
        let meta = SegmentMeta {
            id,
            sensor_id: header.sensor_id,
            kind: header.kind,
            origin_seq: header.origin_seq,
            time_first_ns: header.time_first_ns,
            time_last_ns: header.time_last_ns,
            item_count: header.item_count,
            raw_bytes: segment.raw_total,
            stored_bytes,
            block_count: segment.blocks.len() as u32,
            link_type: header.link_type,
        };
        let flow_blocks = if header.kind == Kind::Pcap {
            let count = segment.blocks.len() as u32;
            flow_blocks_by(count, |i| segment.block(i)).map_err(seg_err)?
        } else {
            BTreeMap::new()
        };
        Ok(Received {
            file,
            segment,
            meta,
            flow_blocks,
        })
    }

    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    pub fn header(&self) -> Header {
        self.segment.header
    }

    /// Block access for the caller's checks (one block read at a time).
    pub fn segment(&mut self) -> &mut SegmentFile {
        &mut self.segment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SegmentBuilder;
    use std::path::Path;

    fn pcap_segment(seq: u64, packets: usize) -> crate::store::SealedSegment {
        let mut b = SegmentBuilder::new(Kind::Pcap, 9, 1, 1);
        for i in 0..packets {
            let data = [i as u8; 60];
            b.push_packet(i as u64, (i % 3) as u32, 60, &data).unwrap();
        }
        b.seal(seq).unwrap()
    }

    fn receive(store: &Store, id: &SegmentId, bytes: &[u8]) -> Result<Received, StoreError> {
        let mut inc = store.begin_incoming(id, bytes.len() as u64)?;
        for chunk in bytes.chunks(1000) {
            inc.write(chunk)?;
        }
        inc.finish()
    }

    fn tmp_files(dir: &Path) -> usize {
        fs::read_dir(dir.join("tmp")).unwrap().count()
    }

    /// Received in pieces, committed in one batch: indexed as the same
    /// bytes added whole would be, flow index included; nothing left in tmp/.
    #[test]
    fn a_batch_received_in_pieces_is_indexed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let segs: Vec<_> = (1..=3).map(|q| pcap_segment(q, 5000)).collect();
        let batch = segs
            .iter()
            .map(|s| receive(&store, &s.id, &s.bytes).unwrap())
            .collect();
        let outcomes = store.commit_received(batch).unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
        let other = tempfile::tempdir().unwrap();
        let whole = Store::open(other.path(), true).unwrap();
        for s in &segs {
            assert_eq!(store.read_segment(&s.id).unwrap(), s.bytes);
            whole.add_verified_segment(&s.id, &s.bytes).unwrap();
            assert_eq!(
                store.segment_meta(&s.id).unwrap(),
                whole.segment_meta(&s.id).unwrap()
            );
            assert_eq!(
                store.segment_at(9, s.header.origin_seq).unwrap(),
                Some(s.id)
            );
        }
        assert_eq!(tmp_files(dir.path()), 0);
    }

    /// Bytes that do not hash to the id, too few, too many or not a segment
    /// are refused, and their temporary file goes with them.
    #[test]
    fn bad_bytes_are_refused_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let seg = pcap_segment(1, 100);
        let mut bad = seg.bytes.clone();
        bad[100] ^= 1;
        assert!(matches!(
            receive(&store, &seg.id, &bad),
            Err(StoreError::HashMismatch { .. })
        ));
        let mut short = store.begin_incoming(&seg.id, 1 << 30).unwrap();
        short.write(&seg.bytes).unwrap();
        assert!(short.finish().is_err());
        let mut over = store.begin_incoming(&seg.id, 10).unwrap();
        assert!(over.write(&seg.bytes).is_err());
        drop(over);
        let garbage = vec![7u8; 5000];
        assert!(matches!(
            receive(&store, &SegmentId::of(&garbage), &garbage),
            Err(StoreError::Segment { .. })
        ));
        assert_eq!(tmp_files(dir.path()), 0);
        assert!(!store.segment_path(&seg.id).exists());
    }

    /// Two segments for one sequence place in a batch: the first is kept,
    /// the second refused alone and its file not kept.
    #[test]
    fn a_second_segment_for_one_place_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let (a, b) = (pcap_segment(1, 10), pcap_segment(1, 11));
        let c = pcap_segment(2, 10);
        let batch = [&a, &b, &c]
            .iter()
            .map(|s| receive(&store, &s.id, &s.bytes).unwrap())
            .collect();
        let outcomes = store.commit_received(batch).unwrap();
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
        assert!(matches!(
            outcomes[1],
            Err(StoreError::SequenceConflict { .. })
        ));
        assert!(!store.segment_path(&b.id).exists());
        assert_eq!(store.segment_at(9, 1).unwrap(), Some(a.id));
        // And later, against what is committed.
        let again = receive(&store, &b.id, &b.bytes).unwrap();
        assert!(store.commit_received(vec![again]).unwrap()[0].is_err());
        assert_eq!(tmp_files(dir.path()), 0);
    }

    /// A copy read from elsewhere in chunks replaces a damaged file only
    /// when it hashes to the id; a bad copy leaves nothing behind.
    #[test]
    fn a_copy_received_from_a_reader_restores_only_good_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let seg = pcap_segment(1, 5000);
        store.add_verified_segment(&seg.id, &seg.bytes).unwrap();
        let path = store.segment_path(&seg.id);
        let mut damaged = seg.bytes.clone();
        damaged[seg.bytes.len() / 2] ^= 1;
        fs::write(&path, &damaged).unwrap();
        let len = seg.bytes.len() as u64;
        assert!(
            store
                .receive_from(&seg.id, len, damaged.as_slice())
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .receive_from(&seg.id, len + 1, seg.bytes.as_slice())
                .unwrap()
                .is_none()
        );
        assert_eq!(tmp_files(dir.path()), 0);
        assert_eq!(fs::read(&path).unwrap(), damaged);
        let good = store
            .receive_from(&seg.id, len, seg.bytes.as_slice())
            .unwrap()
            .unwrap();
        assert_eq!(store.restore_received(good).unwrap(), path);
        assert_eq!(store.read_segment(&seg.id).unwrap(), seg.bytes);
        assert_eq!(tmp_files(dir.path()), 0);
    }
}
