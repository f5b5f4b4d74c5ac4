//! The commit stage of ingest, on a thread of its own.
//!
//! Owns everything that happens to a batch after the packet thread has
//! decided its contents: compressing and hashing the segments
//! ([`SegmentBuilder::seal_with`]), writing their files (temp file, fsync,
//! rename), the one index commit per batch, and handing the record segment to
//! the mirror applier. The packet thread meanwhile decodes the next packets,
//! so decoding, compression and fsync overlap instead of taking turns.
//!
//! Must not decide anything: which packets, flows and records go into a
//! batch, and every sequence number, are fixed before a job is sent, so the
//! bytes written are exactly what a single-threaded ingest would write (the
//! determinism a re-run after a crash relies on). Batches are committed in the
//! order they were sent; a failure stops the thread and is returned by the
//! next call, with the store left at the last committed batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{IngestError, build_record_segment};
use crate::mirror::background::BackgroundApplier;
use crate::records::Record;
use crate::store::{BlockCompressor, CommitBatch, SegmentBuilder, SegmentMeta, Store};

/// Batches decided but not yet committed, at most. Two keep both threads busy
/// while bounding memory to a few segments.
const QUEUE: usize = 2;

/// The record part of a batch: sealed into a record segment by the committer.
pub(super) struct RecordPart {
    pub seq: u64,
    pub ts_ns: u64,
    /// The record version to write (`store.record_version`).
    pub version: u8,
    pub records: Vec<Record>,
}

/// One batch: segments to seal and write, then one index commit.
pub(super) struct CommitJob {
    pub sensor_id: u32,
    pub level: i32,
    /// The open pcap segment and its origin sequence number.
    pub pcap: Option<(SegmentBuilder, u64)>,
    pub records: Option<RecordPart>,
    /// Everything but `segments`, which the committer fills in.
    pub batch: CommitBatch,
}

enum Job {
    Commit(Box<CommitJob>),
    /// Answered once every job sent before it is committed.
    Barrier(SyncSender<()>),
}

pub(super) struct Committer {
    tx: Option<SyncSender<Job>>,
    handle: Option<JoinHandle<Result<(), IngestError>>>,
}

impl Committer {
    /// `bulk_mirror`: see `BackgroundApplier::start`. `mirror_path` None:
    /// the records are committed to the store only (`ingest --no-wait`);
    /// the next `node::open` or serve applies them to the mirror.
    pub fn start(
        store: Arc<Store>,
        mirror_path: Option<PathBuf>,
        bulk_mirror: bool,
    ) -> Result<Self, IngestError> {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let handle = std::thread::Builder::new()
            .name("commit".into())
            .spawn(move || run(&store, mirror_path.as_deref(), bulk_mirror, rx))
            .map_err(|source| IngestError::Io {
                path: PathBuf::from("<commit thread>"),
                source,
            })?;
        Ok(Committer {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues a batch. When the thread has stopped, returns its error.
    pub fn send(&mut self, job: CommitJob) -> Result<(), IngestError> {
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Job::Commit(Box::new(job))).is_ok());
        if sent { Ok(()) } else { self.join() }
    }

    /// Waits until every batch sent so far is committed (the mirror may still
    /// be applying their records).
    pub fn wait_committed(&mut self) -> Result<(), IngestError> {
        let (ack_tx, ack_rx) = sync_channel(1);
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Job::Barrier(ack_tx)).is_ok());
        if sent && ack_rx.recv().is_ok() {
            return Ok(());
        }
        self.join()
    }

    /// Commits everything sent, waits for the mirror to apply it, and stops
    /// the thread.
    pub fn finish(mut self) -> Result<(), IngestError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), IngestError> {
        drop(self.tx.take());
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(IngestError::CommitThread("panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            tracing::error!(error = %e, "ingest commit failed; a re-run resumes at the last commit");
        }
    }
}

fn run(
    store: &Store,
    mirror_path: Option<&Path>,
    bulk_mirror: bool,
    rx: Receiver<Job>,
) -> Result<(), IngestError> {
    let mut compressor: Option<BlockCompressor> = None;
    let mut mirror: Option<BackgroundApplier> = None;
    while let Ok(job) = rx.recv() {
        match job {
            Job::Barrier(ack) => {
                let _ = ack.send(());
            }
            Job::Commit(job) => {
                let c = match &mut compressor {
                    Some(c) => c,
                    None => compressor.insert(BlockCompressor::new(job.level)?),
                };
                let committed = commit(store, c, *job)?;
                if let (Some((id, records)), Some(mirror_path)) = (committed, mirror_path) {
                    let m = match &mut mirror {
                        Some(m) => m,
                        None => mirror.insert(BackgroundApplier::start(mirror_path, bulk_mirror)?),
                    };
                    if !m.send(id, records) {
                        // The mirror thread stopped: its error says why.
                        if let Some(m) = mirror.take() {
                            m.finish()?;
                        }
                    }
                }
            }
        }
    }
    if let Some(m) = mirror.take() {
        m.finish()?;
    }
    Ok(())
}

/// Seals, writes and commits one batch; returns the record segment's id and
/// records for the mirror.
fn commit(
    store: &Store,
    compressor: &mut BlockCompressor,
    job: CommitJob,
) -> Result<Option<(crate::store::SegmentId, Vec<Record>)>, IngestError> {
    let CommitJob {
        sensor_id,
        level: _,
        pcap,
        records,
        mut batch,
    } = job;
    let mut sealed = Vec::with_capacity(2);
    if let Some((builder, seq)) = pcap {
        sealed.push(builder.seal_with(seq, compressor)?);
    }
    let mut for_mirror = None;
    if let Some(part) = records {
        let seg = build_record_segment(sensor_id, part.seq, &part, compressor)?;
        for_mirror = Some((seg.id, part.records));
        sealed.push(seg);
    }
    for seg in &sealed {
        store.write_segment_file(seg)?;
        batch.segments.push(SegmentMeta::of(seg));
    }
    store.commit(&batch)?;
    Ok(for_mirror)
}
