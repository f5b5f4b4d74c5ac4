//! p0f commands: `fingerprint` (lumpy's native p0f matching over capture
//! files, printed in p0f's own log format, like `p0f -r FILE -o LOG`) and
//! `import p0f-log` (a running p0f's log as fingerprint records).

use std::collections::HashSet;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{DataDir, Status};
use crate::capture::{CaptureReader, decode};
use crate::ingest::Ingestor;
use crate::node;
use crate::p0f::log::{LogLineError, format_line, parse_line, split_label};
use crate::p0f::{Matcher, Observer};
use crate::records::{OsFingerprintRecord, OsRole, OsSource};

#[derive(clap::Args, Debug)]
pub struct FingerprintArgs {
    /// Capture files (pcap or pcapng), read in order as one stream.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The p0f v3 signature database.
    #[arg(long, value_name = "FILE", default_value = "/etc/p0f/p0f.fp")]
    pub fp: PathBuf,
    /// Write the log here instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn load(fp: &Path) -> anyhow::Result<Matcher> {
    let text = std::fs::read_to_string(fp)
        .with_context(|| format!("{}: cannot read the p0f database", fp.display()))?;
    Matcher::parse(&text).with_context(|| format!("{}", fp.display()))
}

pub fn fingerprint(a: FingerprintArgs) -> anyhow::Result<Status> {
    let m = load(&a.fp)?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let mut observer = Observer::default();
    let mut status = Status::Ok;
    let (mut packets, mut prints) = (0u64, 0u64);
    for path in &a.files {
        let mut reader = CaptureReader::open(path)?;
        loop {
            let p = match reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    errln!("{}: {e}", path.display());
                    status = Status::Problems;
                    break;
                }
            };
            packets += 1;
            let Ok(info) = decode(p.link_type, p.data) else {
                continue;
            };
            let Some(net) = info.net else { continue };
            let sec = u32::try_from(p.ts_sec).unwrap_or(u32::MAX);
            if let Some(o) = observer.observe(&m, sec, p.data, &net) {
                writeln!(out, "{}", format_line(&m, sec, &o))?;
                prints += 1;
            }
        }
    }
    out.flush()?;
    tracing::info!(packets, fingerprints = prints, "fingerprint done");
    Ok(status)
}

#[derive(clap::Args, Debug)]
pub struct ImportP0fArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// The sensor the log belongs to (default: this node's own).
    #[arg(long, value_name = "ID")]
    pub sensor_id: Option<String>,
    /// The log a running p0f wrote (`p0f -o FILE`); times are read as UTC.
    pub file: PathBuf,
}

/// Imports a p0f log. Lines that are not TCP fingerprints (other p0f
/// modules) and unknown fingerprints (`os=???`) are skipped silently;
/// malformed lines are reported as FILE:LINE and skipped, and the command
/// then exits 1 after importing the good lines. Fingerprints the mirror
/// already holds (same sensor, role, ends, time) are not stored again, so
/// importing a log twice adds nothing.
pub fn import_p0f_log(a: ImportP0fArgs) -> anyhow::Result<Status> {
    let dir = a.dir.data.clone();
    super::with_node(&dir, |node| import_p0f_log_into(node, &a))
}

fn import_p0f_log_into(node: &mut node::Node, a: &ImportP0fArgs) -> anyhow::Result<Status> {
    let sensor = match &a.sensor_id {
        Some(s) => s.parse::<crate::sensor_id::SensorId>()?.0,
        None => node.identity.sensor_id,
    };
    if sensor != node.identity.sensor_id && node.store.ingest_state(sensor)?.is_none() {
        bail!("sensor {sensor} has no data on this node: import its captures first");
    }
    let m = crate::ingest::load_p0f(&node.config.capture.p0f_fp);
    if m.is_none() {
        errln!(
            "warning: no p0f database ({}): labels are split into genre and detail at the first space",
            node.config.capture.p0f_fp.display()
        );
    }
    let m = m.unwrap_or_default();
    let file = std::fs::File::open(&a.file)
        .with_context(|| format!("{}: cannot open", a.file.display()))?;
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    let (mut bad, mut unknown, mut other, mut known) = (0u64, 0u64, 0u64, 0u64);
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: unreadable", a.file.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let e = match parse_line(&line) {
            Ok(e) => e,
            Err(LogLineError::OtherModule(_)) => {
                other += 1;
                continue;
            }
            Err(LogLineError::Malformed(why)) => {
                errln!("{}:{}: {why}", a.file.display(), i + 1);
                bad += 1;
                continue;
            }
        };
        let Some(text) = &e.label else {
            unknown += 1;
            continue;
        };
        let (genre, detail, class) = split_label(&m, text, e.app);
        let (host, peer) = if e.client {
            (e.cli, e.srv)
        } else {
            (e.srv, e.cli)
        };
        let r = OsFingerprintRecord {
            sensor_id: sensor,
            time: e.time,
            role: if e.client {
                OsRole::Client
            } else {
                OsRole::Server
            },
            host_ip: host.0,
            host_port: host.1,
            peer_ip: peer.0,
            peer_port: peer.1,
            flow_id: 0,
            source: OsSource::P0fLog,
            class: class.unwrap_or_else(|| if e.app { "!".into() } else { String::new() }),
            genre,
            detail,
            generic: e.params.split(' ').any(|p| p == "generic"),
            fuzzy: e.params.split(' ').any(|p| p == "fuzzy"),
            dist: e.dist,
            raw_sig: e.raw_sig,
        };
        let key = (
            r.role,
            r.host_ip,
            r.host_port,
            r.peer_ip,
            r.peer_port,
            r.time,
        );
        if !seen.insert(key) || node.mirror.has_fingerprint(&r)? {
            known += 1;
            continue;
        }
        records.push(r);
    }
    let new = records.len();
    let own = node.identity.sensor_id;
    let mut ingestor = Ingestor::new(node, None);
    if sensor == own {
        ingestor.ensure_sensor(sensor, 0, "")?;
    }
    ingestor.add_fingerprints(sensor, records)?;
    outln!(
        "{}: {new} fingerprints imported, {known} already present, {unknown} unknown (???), {other} other p0f lines, {bad} malformed",
        a.file.display()
    );
    Ok(if bad > 0 {
        Status::Problems
    } else {
        Status::Ok
    })
}
