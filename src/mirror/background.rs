//! Applying record segments to the mirror on a thread of its own, so ingest
//! (CPU and fsync bound) and SQLite (index bound) run side by side.
//!
//! Owns one extra connection to the mirror file and the thread that uses it.
//! Segments are applied in the order they were sent, several per SQLite
//! transaction. The store is untouched: if this thread fails, the records
//! are still in their committed segments and the next `node::open` applies
//! whatever the mirror lacks.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{Mirror, MirrorError};
use crate::records::Record;
use crate::store::SegmentId;

/// Most segments applied in one transaction.
const BATCH: usize = 16;
/// A transaction takes no further segment once it holds this many records:
/// a flood's record segments hold 100,000 flows each, and every segment
/// queued or batched here is held decoded in memory.
const BATCH_RECORDS: usize = 16_384;
/// Segments waiting for the thread. Small, for the same reason.
const QUEUE: usize = 2;

type Job = (SegmentId, Vec<Record>);

pub struct BackgroundApplier {
    tx: Option<SyncSender<Job>>,
    handle: Option<JoinHandle<Result<u64, MirrorError>>>,
}

impl BackgroundApplier {
    /// Starts the thread. `bulk`: the mirror is being loaded from scratch
    /// (no flows yet), so its secondary indexes are dropped now and built
    /// once when the applier finishes (`Mirror::begin_bulk`); if the
    /// process dies first, the next open builds them.
    pub fn start(path: &Path, bulk: bool) -> Result<Self, MirrorError> {
        let mut mirror = Mirror::open(path)?;
        if bulk {
            mirror.begin_bulk()?;
        }
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let handle = std::thread::Builder::new()
            .name("mirror".into())
            .spawn(move || run(mirror, rx, bulk))
            .map_err(|e| MirrorError::Corrupt {
                path: path.display().to_string(),
                table: "-",
                what: format!("cannot start the mirror thread: {e}"),
            })?;
        Ok(BackgroundApplier {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues a segment's records; false when the thread has stopped (its
    /// error comes out of `finish`).
    pub fn send(&self, segment: SegmentId, records: Vec<Record>) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.send((segment, records)).is_ok())
    }

    /// Waits until everything sent is applied; returns the rows written.
    pub fn finish(mut self) -> Result<u64, MirrorError> {
        self.join()
    }

    fn join(&mut self) -> Result<u64, MirrorError> {
        drop(self.tx.take());
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(MirrorError::Corrupt {
                path: String::new(),
                table: "-",
                what: "the mirror thread panicked".into(),
            }),
            None => Ok(0),
        }
    }
}

impl Drop for BackgroundApplier {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            tracing::error!(error = %e, "mirror update failed; the next open applies what is missing");
        }
    }
}

fn run(mut mirror: Mirror, rx: Receiver<Job>, bulk: bool) -> Result<u64, MirrorError> {
    let mut rows = 0;
    while let Ok(first) = rx.recv() {
        let mut held = first.1.len();
        let mut batch = vec![first];
        while batch.len() < BATCH && held < BATCH_RECORDS {
            match rx.try_recv() {
                Ok(job) => {
                    held += job.1.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let stats = mirror.apply_many(batch.iter().map(|(id, r)| (id, r.as_slice())))?;
        rows += stats.iter().map(|s| s.rows_written).sum::<u64>();
    }
    if bulk {
        mirror.end_bulk()?;
    }
    Ok(rows)
}
