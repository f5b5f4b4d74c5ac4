//! Legacy database import: one sensor's rows of an existing hflow or
//! walleye_0_3 MySQL/MariaDB database become record segments of that sensor
//! on this node (then the mirror, sync, archive and export see them like any
//! other records).
//!
//! Owns the import plan: which schema the database has, the checks made
//! before anything is written (schema, sensor present, id collisions with
//! natively derived rows), the per-table progress (`ingest::LegacyMarks`, a part of the
//! sensor's ingest state, whose format `ingest` owns, committed with each
//! segment), and the id
//! reservations that make natively derived ids continue above the imported
//! ones. `source` reads the database; `ingest::Ingestor::commit_legacy`
//! writes the segments. Never writes to the legacy database; never writes
//! segments or the index itself.
//!
//! Ids are kept (flow_id, process_id, os_id, ...), so references between the
//! legacy rows stay valid. Rule for coexisting with native records of the
//! same sensor (docs/STORAGE.md §11): legacy rows keep their ids; the first
//! import reserves every id the database uses, so flows and sebek rows that
//! lumpy derives later (from `--pcap-dir`) take ids above them; an import
//! whose new rows would take an id that lumpy already derived is refused
//! before anything is written. Repeating an import reads only the rows after
//! each table's last committed key and writes nothing when there are none.

pub mod source;

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use tracing::Instrument;

use crate::ingest::{IngestError, Ingestor, LegacyMarks, LegacyView};
use crate::mysql::{MysqlError, Target};
use crate::records::SensorRecord;
use source::{Catalog, IdSpace};

/// Rows per record segment (and per SELECT page).
pub const PAGE_ROWS: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("legacy database: {0}")]
    Target(MysqlError),
    #[error("--mysql {shown}: {reason}")]
    BadUrl { shown: String, reason: String },
    #[error(
        "legacy database {db}: neither an hflow database (no `flow` table with flow_id) nor a walleye_0_3 one (no `argus` table with argus_id), or no `sensor` table; tables found: {found}; nothing was imported"
    )]
    NotLegacy { db: String, found: String },
    #[error(
        "legacy database {db}: sensor {sensor} is not in its sensor table (it has {present}); nothing was imported"
    )]
    NoSuchSensor {
        db: String,
        sensor: u32,
        present: String,
    },
    #[error("legacy database {db}: reading {table}: {detail}")]
    Query {
        db: String,
        table: String,
        detail: String,
    },
    #[error("{0}")]
    BadValue(Box<BadValue>),
    #[error(
        "sensor {sensor}: {table} id {legacy_id} of {db} would collide with ids 1..={native_max} that this node already derived for the sensor from its pcap; import the database before the pcap tree (into a fresh node); nothing was imported"
    )]
    Collision {
        sensor: u32,
        db: String,
        table: &'static str,
        legacy_id: u32,
        native_max: u32,
    },
    #[error(
        "sensor {0}: this node holds its segments from another node (sync or an archive); import legacy rows at the sensor's origin node; nothing was imported"
    )]
    NotOrigin(u32),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("legacy import: {0}")]
    Internal(String),
}

impl LegacyError {
    /// A connection error of the shared MySQL target code, worded for `--mysql`.
    pub fn from_target(e: MysqlError) -> Self {
        match e {
            MysqlError::BadUrl { shown, reason } => LegacyError::BadUrl { shown, reason },
            other => LegacyError::Target(other),
        }
    }

    fn query(db: &str, table: &str, e: mysql_async::Error) -> Self {
        LegacyError::Query {
            db: db.to_string(),
            table: table.to_string(),
            detail: match e {
                mysql_async::Error::Server(s) => s.to_string(),
                other => other.to_string(),
            },
        }
    }
}

/// A legacy value that does not fit its record field.
#[derive(Debug)]
pub struct BadValue {
    pub db: String,
    pub table: &'static str,
    pub key: String,
    pub column: String,
    pub value: String,
    pub expected: String,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "legacy database {}: table {}, row {}: column {} holds {}, expected {}; rows before it are imported, nothing after",
            self.db, self.table, self.key, self.column, self.value, self.expected
        )
    }
}

/// The highest id `space` has reserved by earlier imports.
fn reserved_of(marks: &LegacyMarks, space: IdSpace) -> u32 {
    match space {
        IdSpace::Flow => marks.reserved_flow,
        IdSpace::Process => marks.reserved.process,
        IdSpace::Command => marks.reserved.command,
        IdSpace::Read => marks.reserved.read,
        IdSpace::Write => marks.reserved.write,
        IdSpace::Open => marks.reserved.open,
        IdSpace::Socket => marks.reserved.socket,
        IdSpace::None => 0,
    }
}

/// Raises the reservation of `space` to `max`.
fn reserve(marks: &mut LegacyMarks, space: IdSpace, max: u32) {
    let slot = match space {
        IdSpace::Flow => &mut marks.reserved_flow,
        IdSpace::Process => &mut marks.reserved.process,
        IdSpace::Command => &mut marks.reserved.command,
        IdSpace::Read => &mut marks.reserved.read,
        IdSpace::Write => &mut marks.reserved.write,
        IdSpace::Open => &mut marks.reserved.open,
        IdSpace::Socket => &mut marks.reserved.socket,
        IdSpace::None => return,
    };
    *slot = (*slot).max(max);
}

fn native_last(view: &LegacyView, space: IdSpace) -> u32 {
    match space {
        IdSpace::Flow => view.last_flow_id,
        IdSpace::Process => view.sebek.process,
        IdSpace::Command => view.sebek.command,
        IdSpace::Read => view.sebek.read,
        IdSpace::Write => view.sebek.write,
        IdSpace::Open => view.sebek.open,
        IdSpace::Socket => view.sebek.socket,
        IdSpace::None => 0,
    }
}

/// What one import did.
#[derive(Debug, Default)]
pub struct LegacyReport {
    pub schema: &'static str,
    pub db: String,
    /// Legacy table -> rows imported by this run.
    pub rows: BTreeMap<&'static str, u64>,
    pub segments: u64,
    /// The sensor row was written (first import, or install/update times widened).
    pub sensor_written: bool,
}

impl LegacyReport {
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// The sensor row to write: the legacy row on the first import (its times
/// widened by what the node already knew), later only the times widened.
/// None when nothing changes.
fn merged_sensor(
    legacy: &SensorRecord,
    current: &SensorRecord,
    known: bool,
    first: bool,
) -> Option<SensorRecord> {
    let min_nonzero = |a: u32, b: u32| match (a, b) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => a.min(b),
    };
    let mut out = if first {
        legacy.clone()
    } else {
        current.clone()
    };
    let (install, last) = if known {
        (
            min_nonzero(legacy.install_sec, current.install_sec),
            legacy.last_upd_sec.max(current.last_upd_sec),
        )
    } else {
        (legacy.install_sec, legacy.last_upd_sec)
    };
    out.install_sec = install;
    out.last_upd_sec = last;
    // The management address: the operator's (--manager-ip), else what the
    // node already recorded.
    out.manage_ip = if legacy.manage_ip.is_empty() {
        current.manage_ip.clone()
    } else {
        legacy.manage_ip.clone()
    };
    out.version = current.version;
    let unchanged = known && !first && out == *current;
    (!unchanged).then_some(out)
}

/// Imports sensor `sensor_id`'s rows from the legacy database at `target`;
/// `manage_ip`, when given, is recorded as the roo's management address
/// (legacy databases do not hold it). `progress` gets the number of rows to
/// read, then each committed page.
pub fn import_mysql(
    ingestor: &mut Ingestor<'_>,
    sensor_id: u32,
    target: &Target,
    manage_ip: Option<std::net::IpAddr>,
    progress: &ProgressBar,
) -> Result<LegacyReport, LegacyError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LegacyError::Runtime)?;
    let span = tracing::info_span!("legacy_import", db = %target.shown, sensor_id);
    rt.block_on(import_async(ingestor, sensor_id, target, manage_ip, progress).instrument(span))
}

async fn import_async(
    ingestor: &mut Ingestor<'_>,
    sensor_id: u32,
    target: &Target,
    manage_ip: Option<std::net::IpAddr>,
    progress: &ProgressBar,
) -> Result<LegacyReport, LegacyError> {
    let db = target.shown.clone();
    let mut conn = target
        .connect_existing()
        .await
        .map_err(LegacyError::from_target)?;
    let catalog = Catalog::read(&mut conn, &db).await?;
    let schema = catalog.schema(&db)?;
    tracing::info!(db = %db, sensor_id, schema = schema.name(), "legacy database");
    let Some(mut legacy_sensor) = source::sensor_row(&mut conn, &db, &catalog, sensor_id).await?
    else {
        let ids = source::sensor_ids(&mut conn, &db).await?;
        return Err(LegacyError::NoSuchSensor {
            db,
            sensor: sensor_id,
            present: if ids.is_empty() {
                "no sensors".into()
            } else {
                format!(
                    "sensor ids {}",
                    ids.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        });
    };
    if let Some(ip) = manage_ip {
        legacy_sensor.manage_ip = ip.to_string();
    }
    let view = ingestor.legacy_view(sensor_id)?;
    if view.held_from_elsewhere {
        return Err(LegacyError::NotOrigin(sensor_id));
    }
    let specs: Vec<source::TableSpec> = source::tables(schema)
        .into_iter()
        .map(|t| source::fit(t, &catalog))
        .filter(|t| {
            let present = catalog.columns.contains_key(t.name);
            if !present {
                tracing::info!(table = t.name, "not in the legacy database; skipped");
            }
            present
        })
        .collect();
    // Every check before the first write: collisions with native ids, and
    // the reservations the first commit carries.
    let mut marks = view.marks.clone();
    marks.schema = schema.name().to_string();
    let mut total = 0u64;
    for spec in &specs {
        if spec.id_space != IdSpace::None {
            let reserved = reserved_of(&view.marks, spec.id_space);
            let native = native_last(&view, spec.id_space);
            if native > reserved
                && let Some(id) =
                    source::min_id_above(&mut conn, &db, spec, sensor_id, reserved).await?
                && id <= native
            {
                return Err(LegacyError::Collision {
                    sensor: sensor_id,
                    db,
                    table: spec.name,
                    legacy_id: id,
                    native_max: native,
                });
            }
            let max = source::max_id(&mut conn, &db, spec, sensor_id).await?;
            reserve(&mut marks, spec.id_space, max);
        }
        let after = view.marks.done.get(spec.name).map(Vec::as_slice);
        total += source::count_after(&mut conn, &db, spec, sensor_id, after).await?;
    }
    progress.set_length(total);
    tracing::info!(rows = total, "legacy rows to import");
    let mut report = LegacyReport {
        schema: schema.name(),
        db: db.clone(),
        ..LegacyReport::default()
    };
    let mut sensor = merged_sensor(
        &legacy_sensor,
        &view.sensor,
        view.known,
        !view.marks.sensor_imported,
    );
    marks.sensor_imported = true;
    report.sensor_written = sensor.is_some();
    // Small tables share a segment: rows are committed PAGE_ROWS at a time,
    // each commit with the keys read so far. The first commit carries the
    // sensor row and every id reservation, so an interrupted import has
    // reserved all of them.
    let mut buffer = Vec::new();
    let mut rows_in_buffer: Vec<(&'static str, u64)> = Vec::new();
    for spec in &specs {
        loop {
            let after = marks.done.get(spec.name).cloned();
            let want = PAGE_ROWS.saturating_sub(buffer.len()).max(1);
            let page = source::read_page(
                &mut conn,
                &db,
                spec,
                &catalog,
                sensor_id,
                after.as_deref(),
                want,
            )
            .await?;
            let Some(last) = page.last_key else {
                break;
            };
            marks.done.insert(spec.name.to_string(), last);
            buffer.extend(page.records);
            rows_in_buffer.push((spec.name, page.rows));
            if buffer.len() >= PAGE_ROWS {
                commit(
                    ingestor,
                    sensor_id,
                    &mut sensor,
                    &mut buffer,
                    &marks,
                    &mut report,
                )?;
                for (t, n) in rows_in_buffer.drain(..) {
                    *report.rows.entry(t).or_default() += n;
                    progress.inc(n);
                }
            }
            if page.rows < want as u64 {
                break;
            }
        }
    }
    if !buffer.is_empty() || sensor.is_some() || marks != view.marks {
        commit(
            ingestor,
            sensor_id,
            &mut sensor,
            &mut buffer,
            &marks,
            &mut report,
        )?;
        for (t, n) in rows_in_buffer.drain(..) {
            *report.rows.entry(t).or_default() += n;
            progress.inc(n);
        }
    }
    ingestor.flush_mirror()?;
    progress.finish_and_clear();
    tracing::info!(
        rows = report.total_rows(),
        segments = report.segments,
        "legacy import done"
    );
    Ok(report)
}

/// Commits the buffered records (and the sensor row, once) as one segment.
fn commit(
    ingestor: &mut Ingestor<'_>,
    sensor_id: u32,
    sensor: &mut Option<SensorRecord>,
    buffer: &mut Vec<crate::records::Record>,
    marks: &LegacyMarks,
    report: &mut LegacyReport,
) -> Result<(), LegacyError> {
    ingestor.commit_legacy(sensor_id, sensor.take(), std::mem::take(buffer), marks)?;
    report.segments += 1;
    tracing::debug!(segments = report.segments, "legacy segment committed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(install: u32, last: u32, name: &str) -> SensorRecord {
        SensorRecord {
            sensor_id: 7,
            version: 3,
            install_sec: install,
            last_upd_sec: last,
            state: "online".into(),
            name: name.into(),
            ..SensorRecord::default()
        }
    }

    #[test]
    fn the_sensor_row_is_taken_once_then_only_widened() {
        let legacy = sensor(100, 200, "old roo");
        let native = sensor(150, 300, "Honeywall: 7");
        // First import into a sensor the node knows: legacy metadata, widest times.
        let first = merged_sensor(&legacy, &native, true, true).unwrap();
        assert_eq!(
            (first.install_sec, first.last_upd_sec, first.name.as_str()),
            (100, 300, "old roo")
        );
        // Again with the same data: nothing to write.
        let mut stored = first.clone();
        stored.version = 9;
        assert_eq!(merged_sensor(&legacy, &stored, true, false), None);
        // Renamed on the node since: the name stays.
        stored.name = "renamed".into();
        assert_eq!(merged_sensor(&legacy, &stored, true, false), None);
        // A new sensor takes the legacy row as it is.
        let new = merged_sensor(&legacy, &native, false, true).unwrap();
        assert_eq!((new.install_sec, new.last_upd_sec), (100, 200));
        // A management address given later is recorded; given again, nothing.
        let mut with_ip = legacy.clone();
        with_ip.manage_ip = "10.0.0.1".into();
        let row = merged_sensor(&with_ip, &stored, true, false).unwrap();
        assert_eq!(row.manage_ip, "10.0.0.1");
        assert_eq!(merged_sensor(&with_ip, &row, true, false), None);
        assert_eq!(merged_sensor(&legacy, &row, true, false), None);
    }
}
