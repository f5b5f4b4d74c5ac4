//! `ingest`: capture files and directories into the store, once or following.
//!
//! Beside a running `lumpy serve` the command runs inside the daemon
//! (`control`), and `--follow` there follows as serve's own
//! `capture.follow` does: one pass at a time with the node locked, so
//! serve's pulls, its own follow and other commands run in between, until
//! the client goes away (Ctrl-C) or serve stops.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;

use super::{DataDir, Status, progress_bar};
use crate::ingest::{FileOutcome, FollowState, IngestReport, Ingestor, follow, follow_once};
use crate::node;
use crate::sync::client::PullContext;

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Attribute the packets to this sensor instead of the node's own (or the
    /// one a sensor_<id> directory names).
    #[arg(long)]
    pub sensor: Option<u32>,
    /// Keep watching these capture directories for new and growing files
    /// (repeatable; default: capture.follow from lumpy.toml).
    #[arg(long, value_name = "DIR", num_args = 0..)]
    pub follow: Option<Vec<PathBuf>>,
    /// Return once the segments and the index are durable, without waiting
    /// for the mirror: `status` shows its lag, and the next command that
    /// opens the node (or a running serve) applies the rest.
    #[arg(long, conflicts_with = "follow")]
    pub no_wait: bool,
    /// Capture files or directories to ingest.
    pub paths: Vec<PathBuf>,
}

pub fn run(a: IngestArgs) -> anyhow::Result<Status> {
    if a.paths.is_empty() && a.follow.is_none() {
        bail!("name capture files or directories to ingest, or --follow DIR");
    }
    if a.follow.is_some()
        && let Some(ctx) = crate::control::attached_node()
    {
        return follow_in_daemon(&ctx, &a);
    }
    let dir = a.dir.data.clone();
    super::with_node(&dir, |node| run_on(node, &a))
}

/// `ingest [PATHS] --follow` inside `lumpy serve` (module doc). Two
/// followers of one sensor stay consistent: each pass commits under the
/// node's lock, and a pass whose open-flow table another writer has
/// overtaken restores it from the store (`Ingestor::restore_tables`).
fn follow_in_daemon(ctx: &PullContext, a: &IngestArgs) -> anyhow::Result<Status> {
    let lock = || {
        ctx.node
            .lock()
            .map_err(|_| anyhow::anyhow!("the running node's lock is poisoned"))
    };
    let (dirs, settle) = {
        let node = lock()?;
        let dirs = match &a.follow {
            Some(d) if !d.is_empty() => d.clone(),
            _ => node.config.capture.follow.clone(),
        };
        (dirs, Duration::from_secs(node.config.capture.settle_secs))
    };
    if dirs.is_empty() {
        bail!("--follow needs a directory, or capture.follow set in lumpy.toml");
    }
    let cancel = crate::control::cancel_flag();
    let stopped = || cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
    let mut report = IngestReport::default();
    let mut state = FollowState::default();
    // One pass of `f` with a fresh Ingestor on the locked node.
    let pass = |f: &mut dyn FnMut(&mut Ingestor<'_>) -> Result<(), crate::ingest::IngestError>,
                report: &mut IngestReport|
     -> anyhow::Result<()> {
        let mut node = lock()?;
        let mut ingestor = Ingestor::new(&mut node, a.sensor);
        ingestor.stop = cancel.clone();
        let result = f(&mut ingestor);
        absorb(report, std::mem::take(&mut ingestor.report));
        Ok(result?)
    };
    pass(&mut |i| i.ingest_paths(&a.paths), &mut report)?;
    errln!(
        "following {} inside the running serve; stop with Ctrl-C",
        join_paths(&dirs)
    );
    while !stopped() {
        pass(
            &mut |i| follow_once(i, &dirs, settle, &mut state),
            &mut report,
        )?;
        for _ in 0..10 {
            if stopped() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    pass(
        &mut |i| crate::ingest::follow_finish(i, &mut state),
        &mut report,
    )?;
    let in_store = ctx.store.totals()?.segments;
    print_report(&report, in_store)
}

/// Adds one pass's report to the whole run's.
fn absorb(into: &mut IngestReport, r: IngestReport) {
    into.files.extend(r.files);
    into.packets += r.packets;
    into.non_ip_packets += r.non_ip_packets;
    into.undecodable_packets += r.undecodable_packets;
    for (lt, n) in r.unsupported_link_types {
        *into.unsupported_link_types.entry(lt).or_default() += n;
    }
    into.segments_written += r.segments_written;
    into.records_written += r.records_written;
    into.sebek_records += r.sebek_records;
    into.sebek_rejected += r.sebek_rejected;
    into.sebek_truncated += r.sebek_truncated;
}

fn run_on(node: &mut node::Node, a: &IngestArgs) -> anyhow::Result<Status> {
    let follow_dirs = match &a.follow {
        Some(d) if !d.is_empty() => d.clone(),
        Some(_) => node.config.capture.follow.clone(),
        None => Vec::new(),
    };
    if a.follow.is_some() && follow_dirs.is_empty() {
        bail!("--follow needs a directory, or capture.follow set in lumpy.toml");
    }
    let settle = Duration::from_secs(node.config.capture.settle_secs);
    // A one-shot load into a mirror with no flows builds the mirror's
    // indexes once at the end (docs/BENCHMARKS.md: about 20 % faster).
    // Not inside serve: its web UI reads the mirror meanwhile.
    let bulk_mirror = follow_dirs.is_empty()
        && crate::control::attached_node().is_none()
        && node.mirror.flow_count()? == 0;
    let mut ingestor = Ingestor::new(node, a.sensor);
    ingestor.bulk_mirror = bulk_mirror;
    ingestor.mirror_later = a.no_wait;
    // Inside serve: a client that goes away stops the ingest at its next
    // commit (a re-run resumes there), as Ctrl-C does here.
    ingestor.stop = crate::control::cancel_flag();
    ingestor.progress = progress_bar(0, "ingest");
    ingestor.ingest_paths(&a.paths)?;
    if !follow_dirs.is_empty() {
        // Stopping by a signal is safe at any moment: every commit is atomic
        // and a re-run resumes each file where its last commit ended.
        errln!("following {}; stop with Ctrl-C", join_paths(&follow_dirs));
        follow(
            &mut ingestor,
            &follow_dirs,
            settle,
            Duration::from_secs(1),
            || false,
        )?;
    }
    let report = std::mem::take(&mut ingestor.report);
    drop(ingestor);
    // The store's own count, as `status` shows it (it includes segments
    // written before this run, e.g. init's sensor record).
    let in_store = node.store.totals()?.segments;
    print_report(&report, in_store)
}

fn print_report(r: &crate::ingest::IngestReport, in_store: u64) -> anyhow::Result<Status> {
    for f in &r.files {
        match &f.outcome {
            FileOutcome::Ingested => {
                outln!(
                    "{}: {} packets (sensor {})",
                    f.path.display(),
                    f.packets,
                    f.sensor_id
                )
            }
            FileOutcome::AlreadyIngested => {
                outln!("{}: already ingested, nothing new", f.path.display())
            }
            FileOutcome::Empty => outln!("{}: no packets", f.path.display()),
            FileOutcome::Stopped => {
                outln!("{}: stopped; the next run resumes here", f.path.display())
            }
            FileOutcome::Truncated { offset } => errln!(
                "{}: truncated at byte offset {offset}: kept the {} whole packets before the cut",
                f.path.display(),
                f.packets
            ),
            FileOutcome::Malformed { offset, reason } => errln!(
                "{}: damaged at byte offset {offset} ({reason}): kept the {} whole packets before it",
                f.path.display(),
                f.packets
            ),
            FileOutcome::Refused { reason } => {
                errln!("{}: refused: {reason}", f.path.display())
            }
        }
    }
    for (lt, n) in &r.unsupported_link_types {
        errln!("{n} packets have unsupported link type {lt}: stored, but no flows derived");
    }
    if r.undecodable_packets > 0 {
        errln!(
            "{} packets had malformed headers: stored, but no flows derived",
            r.undecodable_packets
        );
    }
    if r.sebek_rejected > 0 {
        errln!(
            "{} packets on the sebek port are not sebek v3 records: stored, but skipped",
            r.sebek_rejected
        );
    }
    outln!(
        "ingested {} packets, {} new segments ({in_store} in the store, as status counts them), {} record versions",
        r.packets,
        r.segments_written,
        r.records_written
    );
    if r.sebek_truncated > 0 {
        outln!(
            "sebek: {} records cut by the capture's snaplen: kept with their header fields, marked truncated",
            r.sebek_truncated
        );
    }
    if r.sebek_records > 0 || r.sebek_rejected > 0 {
        outln!(
            "sebek: {} records decoded, {} packets rejected",
            r.sebek_records,
            r.sebek_rejected
        );
    }
    Ok(if r.has_problems() {
        Status::Problems
    } else {
        Status::Ok
    })
}

fn join_paths(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
