//! `archive create | verify | import`: offline bundles of one sensor.

use std::path::PathBuf;

use super::{DataDir, Status, progress_bar};
use crate::archive;

#[derive(clap::Subcommand, Debug)]
pub enum ArchiveCmd {
    /// Write every segment this node holds of a sensor into one bundle file.
    Create {
        #[command(flatten)]
        dir: DataDir,
        /// The sensor (roo incarnation) to bundle.
        #[arg(long)]
        sensor: u32,
        /// The bundle to write.
        file: PathBuf,
    },
    /// Check a bundle (every segment against its id, the manifest against its hash) without a store.
    Verify {
        /// The bundle to check.
        file: PathBuf,
    },
    /// Add a bundle's segments to a node (no network; repeating it adds nothing).
    Import {
        #[command(flatten)]
        dir: DataDir,
        /// The bundle to import (verified whole before anything is stored).
        file: PathBuf,
    },
}

pub fn run(c: ArchiveCmd) -> anyhow::Result<Status> {
    match c {
        ArchiveCmd::Create { dir, sensor, file } => {
            let m = super::with_store(&dir.data, |store| {
                Ok(archive::create(
                    store,
                    sensor,
                    &file,
                    &progress_bar(0, "archive"),
                )?)
            })?;
            let bytes: u64 = m.segments.iter().map(|e| e.size).sum();
            outln!(
                "{}: sensor {sensor}, {} segments, {bytes} bytes",
                file.display(),
                m.segments.len()
            );
            if m.absent > 0 {
                errln!(
                    "note: {} pcap segments of sensor {sensor} are not held here (they stayed at a child); pull over a mirror link first to include them",
                    m.absent
                );
            }
        }
        ArchiveCmd::Verify { file } => {
            let m = archive::verify(&file, &progress_bar(0, "verify"))?;
            outln!(
                "{}: sensor {}, {} segments, sequence 1..={}, chain {}: intact",
                file.display(),
                m.sensor_id,
                m.segments.len(),
                m.max_seq,
                m.chain
            );
        }
        ArchiveCmd::Import { dir, file } => {
            let (m, r) = super::with_node(&dir.data, |node| {
                Ok(archive::import(node, &file, &progress_bar(0, "import"))?)
            })?;
            outln!(
                "sensor {}: {} segments added, {} already here",
                m.sensor_id,
                r.added,
                r.already
            );
        }
    }
    Ok(Status::Ok)
}
