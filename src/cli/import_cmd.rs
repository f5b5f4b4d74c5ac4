//! `import legacy`: a decommissioned Honeywall's pcap tree as a sensor of
//! this node, with every record derived from it; `import p0f-log`: a running
//! p0f's log as OS fingerprints (`p0f_cmd`).

use std::path::PathBuf;

use anyhow::bail;

use super::{DataDir, Status, progress_bar};
use crate::capture::layout::discover;
use crate::ingest::Ingestor;
use crate::node;

#[derive(clap::Subcommand, Debug)]
pub enum ImportCmd {
    /// A Honeywall's /var/log/pcap tree (hour directories of log, log1, ...),
    /// as sensor N of this node: its pcap is kept here and its flows derived.
    Legacy {
        #[command(flatten)]
        dir: DataDir,
        /// The honeywall's sensor id (its HwSENSOR_ID).
        #[arg(long)]
        sensor_id: String,
        /// The copied /var/log/pcap tree.
        #[arg(long, value_name = "PATH")]
        pcap_dir: PathBuf,
    },
    /// The log of a p0f already running on a honeywall (`p0f -o FILE`), as
    /// OS fingerprints of a sensor: `os` rows and the flows' OS ids.
    /// Importing the same log again adds nothing; malformed lines are
    /// reported as FILE:LINE and skipped (exit status 1).
    P0fLog(super::p0f_cmd::ImportP0fArgs),
}

pub fn run(c: ImportCmd) -> anyhow::Result<Status> {
    match c {
        ImportCmd::Legacy {
            dir,
            sensor_id,
            pcap_dir,
        } => legacy(&dir.data, &sensor_id, &pcap_dir),
        ImportCmd::P0fLog(a) => super::p0f_cmd::import_p0f_log(a),
    }
}

/// Install time of a legacy sensor: the oldest hour directory's epoch name.
fn oldest_epoch(pcap_dir: &std::path::Path) -> Option<u32> {
    let sources = discover(pcap_dir).ok()?;
    sources
        .iter()
        .filter_map(|s| s.path.parent()?.file_name()?.to_str()?.parse::<u32>().ok())
        .min()
}

fn legacy(
    data: &std::path::Path,
    sensor_id: &str,
    pcap_dir: &std::path::Path,
) -> anyhow::Result<Status> {
    let id: crate::sensor_id::SensorId = sensor_id.parse()?;
    if !pcap_dir.is_dir() {
        bail!("{}: not a directory", pcap_dir.display());
    }
    let mut node = node::open(data)?;
    if id.0 == node.identity.sensor_id {
        bail!("sensor {id} is this node's own incarnation; a legacy honeywall needs its own id");
    }
    let install = oldest_epoch(pcap_dir).unwrap_or(0);
    let mut ingestor = Ingestor::new(&mut node, Some(id.0));
    ingestor.ensure_sensor(id.0, install, &format!("Honeywall: {id}"))?;
    ingestor.progress = progress_bar(0, "import");
    ingestor.ingest_paths(&[pcap_dir.to_path_buf()])?;
    let r = &ingestor.report;
    println!(
        "sensor {id}: {} packets from {} files, {} segments",
        r.packets,
        r.files.len(),
        r.segments_written
    );
    for f in r.files.iter().filter(|f| f.is_problem()) {
        eprintln!("{}: {:?}", f.path.display(), f.outcome);
    }
    Ok(if r.has_problems() {
        Status::Problems
    } else {
        Status::Ok
    })
}
