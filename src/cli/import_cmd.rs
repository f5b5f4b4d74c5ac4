//! `import legacy`: a decommissioned Honeywall's hflow/walleye_0_3 database
//! rows and its pcap tree as a sensor of this node; `import p0f-log`: a
//! running p0f's log as OS fingerprints (`p0f_cmd`).

use std::path::PathBuf;

use anyhow::bail;

use super::{DataDir, Status, progress_bar};
use crate::capture::layout::discover;
use crate::ingest::Ingestor;
use crate::legacy::LegacyError;
use crate::node;

#[derive(clap::Subcommand, Debug)]
pub enum ImportCmd {
    /// A Honeywall as sensor N of this node: the sensor's rows of its hflow
    /// or walleye_0_3 MySQL database (--mysql; ids kept), then its
    /// /var/log/pcap tree (--pcap-dir; pcap kept, flows derived with ids
    /// above the imported ones). Repeating it adds only what is new.
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["pcap_dir", "mysql"])))]
    Legacy {
        #[command(flatten)]
        dir: DataDir,
        /// The honeywall's sensor id (its HwSENSOR_ID).
        #[arg(long)]
        sensor_id: String,
        /// The copied /var/log/pcap tree.
        #[arg(long, value_name = "PATH")]
        pcap_dir: Option<PathBuf>,
        /// The legacy database: mysql://USER@HOST[:PORT]/DATABASE (or
        /// ?socket=PATH). Read only.
        #[arg(long, value_name = "URL")]
        mysql: Option<String>,
        /// File holding the legacy database's password (one line).
        #[arg(long, value_name = "FILE", requires = "mysql")]
        password_file: Option<PathBuf>,
        /// The honeywall's management address (HwMANAGE_IP), recorded with
        /// the sensor so reinstalls at that address are recognised.
        #[arg(long, value_name = "IP")]
        manager_ip: Option<std::net::IpAddr>,
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
            mysql,
            password_file,
            manager_ip,
        } => legacy(
            &dir.data,
            &sensor_id,
            pcap_dir.as_deref(),
            mysql.as_deref(),
            password_file.as_deref(),
            manager_ip,
        ),
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
    pcap_dir: Option<&std::path::Path>,
    mysql: Option<&str>,
    password_file: Option<&std::path::Path>,
    manager_ip: Option<std::net::IpAddr>,
) -> anyhow::Result<Status> {
    let id: crate::sensor_id::SensorId = sensor_id.parse()?;
    if let Some(p) = pcap_dir
        && !p.is_dir()
    {
        bail!("{}: not a directory", p.display());
    }
    let target = match mysql {
        Some(url) => {
            let password = password_file
                .map(|p| super::export_cmd::read_secret_file(p, "--password-file"))
                .transpose()?;
            Some(crate::mysql::Target::parse(url, password).map_err(LegacyError::from_target)?)
        }
        None => None,
    };
    super::with_node(data, |node| {
        legacy_into(node, id, pcap_dir, target.as_ref(), manager_ip)
    })
}

fn legacy_into(
    node: &mut node::Node,
    id: crate::sensor_id::SensorId,
    pcap_dir: Option<&std::path::Path>,
    target: Option<&crate::mysql::Target>,
    manager_ip: Option<std::net::IpAddr>,
) -> anyhow::Result<Status> {
    if id.0 == node.identity.sensor_id {
        bail!("sensor {id} is this node's own incarnation; a legacy honeywall needs its own id");
    }
    if let Some(target) = target {
        // The database first: its ids are kept, and flows derived from the
        // pcap afterwards take ids above them.
        let mut ingestor = Ingestor::new(node, Some(id.0));
        let bar = progress_bar(0, "legacy rows");
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} rows {per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let r = crate::legacy::import_mysql(&mut ingestor, id.0, target, manager_ip, &bar)?;
        let rows: Vec<String> = r.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
        outln!(
            "sensor {id}: {} rows from {} ({}){}, {} segments{}",
            r.total_rows(),
            r.db,
            r.schema,
            if rows.is_empty() {
                String::new()
            } else {
                format!(": {}", rows.join(", "))
            },
            r.segments,
            if r.sensor_written {
                ", sensor row written"
            } else {
                ""
            }
        );
    }
    let Some(pcap_dir) = pcap_dir else {
        return Ok(Status::Ok);
    };
    let install = oldest_epoch(pcap_dir).unwrap_or(0);
    let mut ingestor = Ingestor::new(node, Some(id.0));
    ingestor.stop = crate::control::cancel_flag();
    ingestor.ensure_sensor_at(id.0, install, &format!("Honeywall: {id}"), manager_ip)?;
    ingestor.progress = progress_bar(0, "import");
    ingestor.ingest_paths(&[pcap_dir.to_path_buf()])?;
    let r = &ingestor.report;
    outln!(
        "sensor {id}: {} packets from {} files, {} segments",
        r.packets,
        r.files.len(),
        r.segments_written
    );
    for f in r.files.iter().filter(|f| f.is_problem()) {
        errln!("{}: {:?}", f.path.display(), f.outcome);
    }
    Ok(if r.has_problems() {
        Status::Problems
    } else {
        Status::Ok
    })
}
