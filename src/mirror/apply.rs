//! Version-guarded upserts of records into the mirror.
//!
//! Every function here runs inside the caller's write transaction (taken with
//! BEGIN IMMEDIATE, so no other writer can interleave): reading the stored
//! version and writing the row are therefore one consistent step.
//!
//! The rule that makes apply order-independent: a row is written only when the
//! record's version is strictly higher than the stored one. Equal versions are
//! the same row by the origin's contract (a version is never reused), so
//! keeping the first is keeping the only one.

use std::net::IpAddr;
use std::sync::LazyLock;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{CachedStatement, Connection, OptionalExtension, Result, params};

use super::ApplyStats;
use super::apply_legacy as legacy;
use super::apply_os as os;
use super::apply_sebek as sebek;
use crate::records::{FlowRecord, Record, SensorRecord};
use crate::store::SegmentId;

/// hflow's flow columns, in table order; `x_flow6` has the same.
pub(super) const FLOW_COLUMNS: [&str; 32] = [
    "sensor_id",
    "flow_id",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "ip_proto",
    "iface_in",
    "marker_flags",
    "src_start_sec",
    "src_start_msec",
    "src_end_sec",
    "src_end_msec",
    "src_packets",
    "src_bytes",
    "src_ip_flags",
    "src_tcp_flags",
    "src_icmp_packets",
    "src_icmp_seen",
    "dst_start_sec",
    "dst_start_msec",
    "dst_end_sec",
    "dst_end_msec",
    "dst_packets",
    "dst_bytes",
    "dst_ip_flags",
    "dst_tcp_flags",
    "dst_icmp_packets",
    "dst_icmp_seen",
    "client_os_id",
    "server_os_id",
    "is_local",
];

/// Which flow table a record belongs in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FlowTable {
    /// hflow's `flow`: both addresses IPv4, stored as host-order integers.
    Flow,
    /// `x_flow6`: anything else, addresses stored as octet blobs.
    Flow6,
}

impl FlowTable {
    fn of(f: &FlowRecord) -> Self {
        if f.is_ipv4() {
            FlowTable::Flow
        } else {
            FlowTable::Flow6
        }
    }

    fn name(self) -> &'static str {
        match self {
            FlowTable::Flow => "flow",
            FlowTable::Flow6 => "x_flow6",
        }
    }

    /// The `x_flow_version.in_flow6` value.
    fn in_flow6(self) -> bool {
        self == FlowTable::Flow6
    }

    /// An address as this table stores it. Only called with IPv4 addresses for
    /// `Flow` (that is what `FlowTable::of` checked).
    fn addr(self, ip: &IpAddr) -> ToSqlOutput<'static> {
        match (self, ip) {
            (FlowTable::Flow, IpAddr::V4(v4)) => {
                ToSqlOutput::Owned(Value::Integer(i64::from(u32::from(*v4))))
            }
            (_, IpAddr::V4(v4)) => ToSqlOutput::Owned(Value::Blob(v4.octets().to_vec())),
            (_, IpAddr::V6(v6)) => ToSqlOutput::Owned(Value::Blob(v6.octets().to_vec())),
        }
    }
}

/// The columns that identify a flow: its primary key and natural key. Every
/// index of `flow` is made of these, and at an honest origin they never
/// change between versions.
const IDENTITY_COLUMNS: [&str; 8] = [
    "sensor_id",
    "flow_id",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "ip_proto",
    "src_start_sec",
];

/// `INSERT ... ON CONFLICT (sensor_id, flow_id) DO NOTHING` for one flow
/// table: 1 row changed when the flow was new, 0 when its id is there
/// already (then `update_flow_sql`). The conflict target is the primary
/// key only, so a clash on the natural key still fails, and
/// `Writer::put_flow` resolves that.
fn insert_flow_sql(table: &str) -> String {
    let cols = FLOW_COLUMNS.join(", ");
    format!(
        "INSERT INTO {table} ({cols}) VALUES ({}) ON CONFLICT (sensor_id, flow_id) DO NOTHING",
        flow_values().join(", ")
    )
}

/// The value of each column in FLOW_COLUMNS order, from parameters ?1 to
/// ?32 in that order. A flow's OS ids are its fingerprints' winners
/// (apply_os), looked up here so a fingerprint applied before its flow
/// needs no later UPDATE.
fn flow_values() -> Vec<String> {
    FLOW_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| match *c {
            "client_os_id" => os::winner_sql(0, i + 1),
            "server_os_id" => os::winner_sql(1, i + 1),
            _ => format!("?{}", i + 1),
        })
        .collect()
}

/// `UPDATE` of an existing flow row from a newer version, same parameters
/// as `insert_flow_sql`.
///
/// It sets only the non-identity columns, so SQLite leaves every index
/// alone (an update naming an indexed column rewrites that index entry:
/// measured 7x slower updates). Its WHERE refuses the update when an
/// identity column differs: the statement then changes 0 rows and
/// `Writer::put_flow` replaces the row instead.
fn update_flow_sql(table: &str) -> String {
    let values = flow_values();
    // The OS ids come from fingerprint records, not from the flow's origin
    // (which sends 0): a newer flow version keeps what the mirror joined.
    let sets = FLOW_COLUMNS
        .iter()
        .zip(&values)
        .filter(|(c, _)| !IDENTITY_COLUMNS.contains(c))
        .map(|(c, v)| match *c {
            "client_os_id" | "server_os_id" => format!("{c} = coalesce(nullif({v}, 0), {c})"),
            _ => format!("{c} = {v}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let same = FLOW_COLUMNS
        .iter()
        .zip(&values)
        .filter(|(c, _)| IDENTITY_COLUMNS.contains(c))
        .map(|(c, v)| format!("{c} = {v}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!("UPDATE {table} SET {sets} WHERE {same}")
}

static INSERT_FLOW: LazyLock<String> = LazyLock::new(|| insert_flow_sql("flow"));
static INSERT_FLOW6: LazyLock<String> = LazyLock::new(|| insert_flow_sql("x_flow6"));
static UPDATE_FLOW: LazyLock<String> = LazyLock::new(|| update_flow_sql("flow"));
static UPDATE_FLOW6: LazyLock<String> = LazyLock::new(|| update_flow_sql("x_flow6"));

const GET_FLOW_VERSION: &str =
    "SELECT version, in_flow6 FROM x_flow_version WHERE sensor_id = ?1 AND flow_id = ?2";
const PUT_FLOW_VERSION: &str = "INSERT INTO x_flow_version (sensor_id, flow_id, version, closed, in_flow6) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sensor_id, flow_id) DO UPDATE SET \
     version = excluded.version, closed = excluded.closed, in_flow6 = excluded.in_flow6";
const DEL_FLOW_VERSION: &str = "DELETE FROM x_flow_version WHERE sensor_id = ?1 AND flow_id = ?2";

const GET_SENSOR_VERSION: &str = "SELECT version FROM x_sensor_version WHERE sensor_id = ?1";
/// An ICMP flow's first type and code (`x_flow_icmp`), kept from its first row.
const PUT_FLOW_ICMP: &str = "INSERT OR IGNORE INTO x_flow_icmp (sensor_id, flow_id, icmp_type, icmp_code) \
     VALUES (?1, ?2, ?3, ?4)";

const PUT_SENSOR_VERSION: &str = "INSERT INTO x_sensor_version (sensor_id, version) VALUES (?1, ?2) \
     ON CONFLICT (sensor_id) DO UPDATE SET version = excluded.version";
/// New sensors get the per-node columns' neutral values (local access, no
/// credentials); an existing row keeps whatever this node set there. A
/// sensor this node decommissioned stays 'offline' (x_retired_sensor).
const UPSERT_SENSOR: &str = "INSERT INTO sensor (sensor_id, install_sec, last_upd_sec, state, name, timezone, \
     country_code, latitude, longitude, notes, network_type, access_via, login, passwd) \
     VALUES (?1, ?2, ?3, \
     CASE WHEN EXISTS (SELECT 1 FROM x_retired_sensor WHERE sensor_id = ?1) THEN 'offline' ELSE ?4 END, \
     ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, '', '') \
     ON CONFLICT (sensor_id) DO UPDATE SET install_sec = excluded.install_sec, \
     last_upd_sec = excluded.last_upd_sec, state = excluded.state, name = excluded.name, \
     timezone = excluded.timezone, country_code = excluded.country_code, latitude = excluded.latitude, \
     longitude = excluded.longitude, notes = excluded.notes, network_type = excluded.network_type";

/// True if `segment` is recorded in `x_applied_segment`.
pub(super) fn is_applied(conn: &Connection, segment: &SegmentId) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM x_applied_segment WHERE segment_id = ?1)")?
        .query_row([&segment.0[..]], |row| row.get(0))
}

/// Records `segment` as applied, with the local time.
pub(super) fn mark_applied(conn: &Connection, segment: &SegmentId, records: usize) -> Result<()> {
    conn.prepare_cached("INSERT INTO x_applied_segment (segment_id, applied_at, records) VALUES (?1, unixepoch(), ?2)")?
        .execute(params![&segment.0[..], clamp(records as u64)])?;
    Ok(())
}

/// Upserts every record, in order, and counts what happened. `fresh`: the
/// flows this mirror has had since it was empty, when it is being loaded
/// from empty (see [`FreshFlows`]).
pub(super) fn apply_records(
    conn: &Connection,
    records: &[Record],
    fresh: Option<&mut FreshFlows>,
) -> Result<ApplyStats> {
    let mut w = Writer::new(conn, fresh)?;
    let mut stats = ApplyStats::default();
    // Looking for sockets waiting on each flow costs a query per flow; skip
    // it when none can be waiting (the common case: no sebek data at all).
    let pending = records.iter().any(|r| matches!(r, Record::SysSocket(_)))
        || conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM x_pending_socket)")?
            .query_row([], |row| row.get::<_, bool>(0))?;
    let mut os_pending = os::any_pending(conn)?;
    // Legacy argus columns to drop when their flow gets a newer version.
    let legacy_argus =
        records.iter().any(|r| matches!(r, Record::Argus(_))) || legacy::any_argus(conn)?;
    w.legacy_argus = legacy_argus;
    let mut known_os = os::KnownOs::default();
    // Fingerprints first (apply order does not change the result): a flow
    // inserted after its fingerprints takes its OS ids in the same INSERT,
    // where a fingerprint after its flow costs two more UPDATEs.
    let (fingerprints, others): (Vec<&Record>, Vec<&Record>) = records
        .iter()
        .partition(|r| matches!(r, Record::OsFingerprint(_)));
    for record in fingerprints.into_iter().chain(others) {
        let outcome = match record {
            Record::Flow(f) => {
                let outcome = w.flow(f)?;
                if pending && matches!(outcome, Outcome::Written) {
                    sebek::resolve_pending(conn, f)?;
                }
                if os_pending && matches!(outcome, Outcome::Written) {
                    os::resolve_pending(conn, f)?;
                }
                outcome
            }
            Record::OsFingerprint(r) => {
                // A mirror loaded from empty knows which flows it holds.
                let held = w.fresh.as_ref().map(|s| s.contains(r.sensor_id, r.flow_id));
                let written = os::os_fingerprint(conn, &mut known_os, r, held)?;
                // A fingerprint whose flow comes later in this segment.
                os_pending = os_pending || written;
                if written {
                    Outcome::Written
                } else {
                    Outcome::NotNewer
                }
            }
            Record::Sensor(s) => w.sensor(s)?,
            Record::Process(p) => written(sebek::process(conn, p)?),
            Record::ProcessTree(t) => written(sebek::process_tree(conn, t)?),
            Record::Command(c) => written(sebek::command(conn, c)?),
            Record::ProcessToCom(c) => written(sebek::process_to_com(conn, c)?),
            Record::SysIo(r) => written(sebek::sys_io(conn, r)?),
            Record::SysSocket(s) => written(sebek::sys_socket(conn, s)?),
            Record::SbkLoss(l) => written(sebek::sbk_loss(conn, l)?),
            Record::Os(r) => written(legacy::os(conn, r)?),
            Record::Ids(r) => written(legacy::ids(conn, r)?),
            Record::IdsSig(r) => written(legacy::ids_sig(conn, r)?),
            Record::Argus(a) => {
                let outcome = w.flow(&a.as_flow())?;
                if matches!(outcome, Outcome::Written) {
                    if pending {
                        sebek::resolve_pending(conn, &a.as_flow())?;
                    }
                    legacy::argus(conn, a)?;
                }
                outcome
            }
        };
        match outcome {
            Outcome::Written => stats.rows_written += 1,
            Outcome::NotNewer => stats.rows_skipped_older += 1,
            Outcome::LostNaturalKey => stats.rows_skipped_conflict += 1,
        }
    }
    w.add_counts()?;
    Ok(stats)
}

/// Adds `delta` rows to `table`'s count in `x_flow_count`.
pub(super) fn add_flow_count(conn: &Connection, table: &str, delta: i64) -> Result<()> {
    if delta != 0 {
        conn.prepare_cached("UPDATE x_flow_count SET n = n + ?2 WHERE tbl = ?1")?
            .execute(params![table, delta])?;
    }
    Ok(())
}

/// The flow ids a mirror has held since it was empty, while it is loaded
/// from empty in one go (`Mirror::begin_bulk` on a mirror without flows or
/// flow versions): a flow id not in the set has no row and no version in
/// the mirror, so its first record needs no version lookup. A bit per flow
/// id, in 64 Ki-id pages per sensor (8 KiB each; 2 M flows: 256 KiB).
#[derive(Default)]
pub(super) struct FreshFlows(std::collections::HashMap<(u32, u32), Box<[u64; 1024]>>);

impl FreshFlows {
    fn bit(flow_id: u32) -> (u32, usize, u64) {
        (
            flow_id >> 16,
            ((flow_id >> 6) & 1023) as usize,
            1 << (flow_id & 63),
        )
    }

    fn contains(&self, sensor: u32, flow_id: u32) -> bool {
        let (page, word, mask) = Self::bit(flow_id);
        self.0
            .get(&(sensor, page))
            .is_some_and(|p| p[word] & mask != 0)
    }

    fn insert(&mut self, sensor: u32, flow_id: u32) {
        let (page, word, mask) = Self::bit(flow_id);
        self.0
            .entry((sensor, page))
            .or_insert_with(|| Box::new([0; 1024]))[word] |= mask;
    }
}

/// Written, or already there (an immutable row) / not newer (a process row).
fn written(w: bool) -> Outcome {
    if w {
        Outcome::Written
    } else {
        Outcome::NotNewer
    }
}

/// What became of one record.
enum Outcome {
    Written,
    NotNewer,
    LostNaturalKey,
}

/// SQLite integers are i64: larger u64 values (counters, versions beyond
/// 2^63, which no origin reaches) are stored as i64::MAX.
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The hot-path statements, prepared once per segment.
struct Writer<'c, 'f> {
    conn: &'c Connection,
    get_flow_version: CachedStatement<'c>,
    put_flow_version: CachedStatement<'c>,
    insert_flow: CachedStatement<'c>,
    insert_flow6: CachedStatement<'c>,
    /// True when `x_argus_legacy` may hold rows: each flow written then
    /// drops its legacy argus columns (see `apply_legacy::forget_argus`).
    legacy_argus: bool,
    /// Rows inserted minus rows deleted, in `flow` and in `x_flow6`, for
    /// `x_flow_count` (`add_counts`).
    counts: [i64; 2],
    fresh: Option<&'f mut FreshFlows>,
}

impl<'c, 'f> Writer<'c, 'f> {
    fn new(conn: &'c Connection, fresh: Option<&'f mut FreshFlows>) -> Result<Self> {
        Ok(Writer {
            conn,
            get_flow_version: conn.prepare_cached(GET_FLOW_VERSION)?,
            put_flow_version: conn.prepare_cached(PUT_FLOW_VERSION)?,
            insert_flow: conn.prepare_cached(&INSERT_FLOW)?,
            insert_flow6: conn.prepare_cached(&INSERT_FLOW6)?,
            legacy_argus: false,
            counts: [0; 2],
            fresh,
        })
    }

    /// Writes the rows counted since the last call into `x_flow_count`.
    fn add_counts(&mut self) -> Result<()> {
        for (table, n) in [FlowTable::Flow, FlowTable::Flow6]
            .into_iter()
            .zip(std::mem::take(&mut self.counts))
        {
            add_flow_count(self.conn, table.name(), n)?;
        }
        Ok(())
    }

    fn count(&mut self, table: FlowTable, delta: i64) {
        self.counts[usize::from(table.in_flow6())] += delta;
    }

    fn flow(&mut self, f: &FlowRecord) -> Result<Outcome> {
        let version = clamp(f.version);
        // A flow id a mirror loaded from empty has not seen has no version:
        // no lookup (the first record of every flow of a one-shot ingest).
        let unseen = self
            .fresh
            .as_ref()
            .is_some_and(|s| !s.contains(f.sensor_id, f.flow_id));
        let stored: Option<(i64, bool)> = if unseen {
            None
        } else {
            self.get_flow_version
                .query_row(params![f.sensor_id, f.flow_id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?
        };
        if let Some((stored_version, _)) = stored
            && stored_version >= version
        {
            return Ok(Outcome::NotNewer);
        }
        let table = FlowTable::of(f);
        // A flow's addresses never change at an honest origin, but if a newer
        // version moved it between families, the old row must not linger.
        if let Some((_, was6)) = stored
            && was6 != table.in_flow6()
        {
            let old = if was6 {
                FlowTable::Flow6
            } else {
                FlowTable::Flow
            };
            self.delete_flow_row(old, f.sensor_id, f.flow_id)?;
        }
        // A stored version of this family: the row is (almost always) there.
        let there = stored.is_some_and(|(_, was6)| was6 == table.in_flow6());
        if !self.put_flow(table, f, there)? {
            // Any older row of this flow id is gone by now (moved family or
            // changed identity, then lost its new natural key): so is its version.
            if stored.is_some() {
                self.conn
                    .prepare_cached(DEL_FLOW_VERSION)?
                    .execute(params![f.sensor_id, f.flow_id])?;
            }
            return Ok(Outcome::LostNaturalKey);
        }
        self.put_flow_version.execute(params![
            f.sensor_id,
            f.flow_id,
            version,
            super::closed_code(f),
            table.in_flow6()
        ])?;
        if let Some(i) = f.icmp_first {
            self.conn.prepare_cached(PUT_FLOW_ICMP)?.execute(params![
                f.sensor_id,
                f.flow_id,
                i.icmp_type,
                i.code
            ])?;
        }
        // The argus view derives this flow's argus row; an argus record
        // applied right after (apply_records) puts its legacy columns back.
        if self.legacy_argus {
            legacy::forget_argus(self.conn, f.sensor_id, f.flow_id)?;
        }
        if let Some(fresh) = self.fresh.as_mut() {
            fresh.insert(f.sensor_id, f.flow_id);
        }
        Ok(Outcome::Written)
    }

    /// Inserts or updates the row; false if another flow id keeps the
    /// natural key. `there`: the row is expected, so the update is tried
    /// first (one statement instead of two for a flow's later versions).
    fn put_flow(&mut self, table: FlowTable, f: &FlowRecord, there: bool) -> Result<bool> {
        if there && self.update_flow(table, f)? == 1 {
            return Ok(true);
        }
        let inserted = match table {
            FlowTable::Flow => exec_flow(&mut self.insert_flow, table, f),
            FlowTable::Flow6 => exec_flow(&mut self.insert_flow6, table, f),
        };
        match inserted {
            Ok(1) => {
                self.count(table, 1);
                Ok(true)
            }
            Ok(_) => {
                // The flow id is there: a newer version of the row.
                if !there && self.update_flow(table, f)? == 1 {
                    return Ok(true);
                }
                // The stored row has other identity columns (see
                // update_flow_sql): replace it. Once deleted, the insert
                // inserts, so this recursion ends.
                self.delete_flow_row(table, f.sensor_id, f.flow_id)?;
                self.put_flow(table, f, false)
            }
            Err(e) if is_unique_violation(&e) => match self.natural_key_holder(table, f)? {
                // Deterministic whatever the arrival order: the lowest flow id
                // keeps the natural key, as the first insert would at the origin.
                Some(holder) if holder < f.flow_id => Ok(false),
                Some(holder) => {
                    self.delete_flow_row(table, f.sensor_id, holder)?;
                    self.conn
                        .prepare_cached(DEL_FLOW_VERSION)?
                        .execute(params![f.sensor_id, holder])?;
                    // Each retry follows a deletion, so this ends.
                    self.put_flow(table, f, false)
                }
                // Not the natural key after all: report the original failure.
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Runs `update_flow_sql`: 1 when the row was there with `f`'s identity.
    fn update_flow(&mut self, table: FlowTable, f: &FlowRecord) -> Result<usize> {
        let sql: &str = match table {
            FlowTable::Flow => &UPDATE_FLOW,
            FlowTable::Flow6 => &UPDATE_FLOW6,
        };
        exec_flow(&mut self.conn.prepare_cached(sql)?, table, f)
    }

    /// The flow id holding `f`'s natural key in `table`, if any.
    fn natural_key_holder(&self, table: FlowTable, f: &FlowRecord) -> Result<Option<u32>> {
        let sql = format!(
            "SELECT flow_id FROM {} WHERE sensor_id = ?1 AND src_ip = ?2 AND dst_ip = ?3 \
             AND ip_proto = ?4 AND src_port = ?5 AND dst_port = ?6 AND src_start_sec = ?7",
            table.name()
        );
        self.conn
            .prepare_cached(&sql)?
            .query_row(
                params![
                    f.sensor_id,
                    table.addr(&f.src_ip),
                    table.addr(&f.dst_ip),
                    f.ip_proto,
                    f.src_port,
                    f.dst_port,
                    f.src.start_sec
                ],
                |row| row.get(0),
            )
            .optional()
    }

    fn delete_flow_row(&mut self, table: FlowTable, sensor_id: u32, flow_id: u32) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE sensor_id = ?1 AND flow_id = ?2",
            table.name()
        );
        let gone = self
            .conn
            .prepare_cached(&sql)?
            .execute(params![sensor_id, flow_id])?;
        self.count(table, -(gone as i64));
        if table == FlowTable::Flow {
            legacy::forget_argus(self.conn, sensor_id, flow_id)?;
        }
        Ok(())
    }

    /// Sensor rows are rare (one per sensor and change): no statements kept.
    fn sensor(&mut self, s: &SensorRecord) -> Result<Outcome> {
        let version = clamp(s.version);
        let stored: Option<i64> = self
            .conn
            .prepare_cached(GET_SENSOR_VERSION)?
            .query_row([s.sensor_id], |row| row.get(0))
            .optional()?;
        if stored.is_some_and(|v| v >= version) {
            return Ok(Outcome::NotNewer);
        }
        self.conn.prepare_cached(UPSERT_SENSOR)?.execute(params![
            s.sensor_id,
            s.install_sec,
            s.last_upd_sec,
            s.state,
            s.name,
            s.timezone,
            s.country_code,
            s.latitude,
            s.longitude,
            s.notes,
            s.network_type,
        ])?;
        self.conn
            .prepare_cached(PUT_SENSOR_VERSION)?
            .execute(params![s.sensor_id, version])?;
        if !s.manage_ip.is_empty() {
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO x_sensor_address (sensor_id, manage_ip) VALUES (?1, ?2)",
                )?
                .execute(params![s.sensor_id, s.manage_ip])?;
        }
        Ok(Outcome::Written)
    }
}

/// Runs a flow statement of `insert_flow_sql` / `update_flow_sql` with the
/// record's columns; the number of rows changed.
fn exec_flow(stmt: &mut CachedStatement<'_>, table: FlowTable, f: &FlowRecord) -> Result<usize> {
    let (s, d) = (&f.src, &f.dst);
    // Same order as FLOW_COLUMNS. iface_in: hflow2 never set it either.
    stmt.execute(params![
        f.sensor_id,
        f.flow_id,
        table.addr(&f.src_ip),
        table.addr(&f.dst_ip),
        f.src_port,
        f.dst_port,
        f.ip_proto,
        0u8,
        f.marker_flags,
        s.start_sec,
        s.start_msec,
        s.end_sec,
        s.end_msec,
        clamp(s.packets),
        clamp(s.bytes),
        s.ip_flags,
        s.tcp_flags,
        s.icmp_packets,
        s.icmp_seen,
        d.start_sec,
        d.start_msec,
        d.end_sec,
        d.end_msec,
        clamp(d.packets),
        clamp(d.bytes),
        d.ip_flags,
        d.tcp_flags,
        d.icmp_packets,
        d.icmp_seen,
        f.client_os_id,
        f.server_os_id,
        f.is_local,
    ])
}

/// A UNIQUE index violation (on the natural key: the primary key is the
/// upsert's conflict target and cannot fail).
pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_extended_error_code() == Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}
