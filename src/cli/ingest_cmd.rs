//! `ingest`: capture files and directories into the store, once or following.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use super::{DataDir, Status, progress_bar};
use crate::ingest::{FileOutcome, Ingestor, follow};
use crate::node;

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
    if a.follow.is_some() && crate::control::attached_node().is_some() {
        bail!(
            "a running `lumpy serve` holds {}: it follows capture.follow itself (set it with `lumpy config set capture.follow DIR,...` and restart serve), or stop serve to follow here",
            a.dir.data.display()
        );
    }
    let dir = a.dir.data.clone();
    super::with_node(&dir, |node| run_on(node, &a))
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
