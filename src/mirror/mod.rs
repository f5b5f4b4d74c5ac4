//! Walleye mirror: the SQLite copy of hflow's tables, derived from record segments.
//!
//! Owns one SQLite file (the mirror) and its schema ([`SCHEMA_SQL`], in
//! `schema.sql` beside this file; documented in docs/STORAGE.md, section
//! "Mirror"). Part 1 of the schema is hflow's `hflow` database (dbschema 3)
//! with its exact columns, so Walleye-style SQL keeps working; part 2 is
//! lumpy's bookkeeping, in tables prefixed `x_`.
//!
//! Must not touch segment files or the redb index: records arrive as
//! `&[Record]` with the id of the segment they came from. The mirror is derived
//! data: deleting the file loses nothing, replaying every segment rebuilds it.
//!
//! Applying is idempotent and order-independent: a segment already applied is
//! skipped as a whole, and a row is only overwritten by a record with a
//! strictly higher origin version (kept in `x_flow_version` and
//! `x_sensor_version`, never in the legacy tables).
//!
//! Submodules: `schema` (DDL, table catalogue, version check), `apply`
//! (version-guarded upserts), `query` (flow search), `hash` (row hashes),
//! `ui_query` (the web UI's read-only queries).

mod apply;
mod apply_legacy;
mod apply_os;
mod apply_sebek;
pub mod argus;
pub mod background;
mod hash;
pub mod incarnations;
mod query;
mod schema;
mod sebek_query;
pub use apply_os::os_id_of;
pub mod ui_query;
pub use sebek_query::{
    KeystrokeQuery, OsSeen, ProcessQuery, ProcessView, ReadView, SessionList, SessionQuery,
    SessionView,
};
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, TransactionBehavior};

use crate::records::{FlowRecord, Record};
use crate::store::SegmentId;

pub use schema::{MIRROR_SCHEMA_VERSION, SCHEMA_SQL, TABLES};

/// `x_flow_version.closed` of a flow the origin closed early because its
/// open-flow table was full (1: closed by its timeout, 0: open).
pub const CLOSED_EVICTED: i64 = 2;

/// The `x_flow_version.closed` value of a flow row.
pub(crate) fn closed_code(f: &FlowRecord) -> i64 {
    match (f.closed, f.evicted) {
        (_, true) => CLOSED_EVICTED,
        (true, false) => 1,
        (false, false) => 0,
    }
}

/// Errors of the mirror. Every variant names the mirror file.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// SQLite failed; `what` says which step.
    #[error("mirror database {path}: {what}: {source}")]
    Sqlite {
        path: String,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer lumpy whose mirror schema this binary
    /// does not know. Deleting the mirror (it is derived data) and replaying
    /// the segments is always safe.
    #[error(
        "mirror database {path}: mirror schema version {found} is newer than this lumpy supports ({supported}); \
         delete the mirror to rebuild it, or upgrade lumpy"
    )]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    /// A table name given to [`Mirror::row_hash`] is not a mirror table.
    #[error("mirror database {path}: no table named {table:?}")]
    UnknownTable { path: String, table: String },
    /// A [`FlowQuery`] that cannot be evaluated (e.g. prefix longer than the address).
    #[error("mirror database {path}: invalid flow query: {what}")]
    InvalidQuery { path: String, what: String },
    /// A stored value that the mirror itself could not have written.
    #[error("mirror database {path}: corrupt row in {table}: {what}")]
    Corrupt {
        path: String,
        table: &'static str,
        what: String,
    },
}

/// Filters of `lumpy flows`, with Walleye's semantics.
#[derive(Debug, Clone, Default)]
pub struct FlowQuery {
    pub sensor: Option<u32>,
    /// Address and prefix length: matches src or dst. An IPv4 host only matches
    /// IPv4 addresses, an IPv6 host only IPv6 addresses (no v4-mapped magic).
    pub host: Option<(IpAddr, u8)>,
    /// Which end of the flow `host` must be (default: either).
    pub host_side: HostSide,
    /// Matches src or dst port.
    pub port: Option<u16>,
    pub proto: Option<u8>,
    /// Flow end (GREATEST(src_end_sec, dst_end_sec)) >= since.
    pub since: Option<u32>,
    /// src_start_sec <= until.
    pub until: Option<u32>,
    pub limit: Option<u64>,
}

/// Which end of a flow a [`FlowQuery::host`] must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostSide {
    #[default]
    Either,
    /// The flow's source (hflow's client: it sent the first packet).
    Client,
    /// The flow's destination.
    Server,
}

/// What one [`Mirror::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Records that inserted or replaced a row.
    pub rows_written: u64,
    /// Records whose version was not newer than the stored one (older, or the
    /// same version delivered again): nothing written.
    pub rows_skipped_older: u64,
    /// Flow records dropped because another flow id of the same sensor already
    /// holds their natural key (5-tuple + src_start_sec) and the lower flow id
    /// wins. Only a misbehaving origin produces these.
    pub rows_skipped_conflict: u64,
    /// True when the segment had been applied before: nothing was done.
    pub already_applied: bool,
}

/// The mirror connection's page cache, in KiB (SQLite's negative
/// `cache_size`). 32 MiB: beside the open-flow table's budget and the
/// index's cache it keeps a flood's ingest under 256 MiB (64 MiB did not).
const CACHE_KIB: i64 = -32768;

/// SQLite sorter helper threads while `end_bulk` builds the indexes.
const INDEX_BUILD_THREADS: i64 = 1;

/// Each flow table and the unique index of its natural key (5-tuple +
/// src_start_sec), which a bulk load builds at the end too: an insert into
/// it lands anywhere in a B-tree larger than the page cache.
const NATURAL_KEYS: [(&str, &str); 2] =
    [("flow", "src_ip_idx"), ("x_flow6", "x_flow6_natural_key")];

/// The page cache (and so the sorter's memory) while `end_bulk` builds the
/// indexes, in KiB.
const INDEX_BUILD_CACHE_KIB: i64 = -16384;

/// How many SQLite virtual-machine steps pass between two checks of a
/// step budget ([`Mirror::set_step_budget`]).
pub const STEP_CHECK: i32 = 10_000;

/// An open mirror database. One writer at a time (apply takes SQLite's write
/// lock for the whole segment); readers in other processes see committed
/// segments only (WAL).
pub struct Mirror {
    conn: Connection,
    /// The file path as shown in error messages.
    path: String,
    /// Between `begin_bulk` and `end_bulk` on a mirror without flows: the
    /// flow ids written since (apply skips the version lookup of others).
    fresh: Option<apply::FreshFlows>,
}

impl Mirror {
    /// Opens the mirror at `path`, creating the file and every table if absent.
    ///
    /// Fails with [`MirrorError::NewerSchema`] if the file was written by a
    /// newer mirror schema.
    pub fn open(path: &Path) -> Result<Self, MirrorError> {
        let shown = path.display().to_string();
        let conn = Connection::open(path).ctx(&shown, "open")?;
        let mut mirror = Mirror {
            conn,
            path: shown,
            fresh: None,
        };
        mirror.configure()?;
        let version = schema::check_version(&mirror.conn, &mirror.path)?;
        schema::migrate_before_ddl(&mirror.conn, &mirror.path, version)?;
        mirror.create_schema().ctx(&mirror.path, "create schema")?;
        schema::migrate_after_ddl(&mirror.conn, &mirror.path)?;
        mirror.refresh_stats();
        Ok(mirror)
    }

    /// Opens an existing mirror to read beside the process that writes it
    /// (a running `serve`, an ingest): no schema statements, which would
    /// wait for that writer, or build the indexes a bulk load has dropped.
    pub fn open_reader(path: &Path) -> Result<Self, MirrorError> {
        let shown = path.display().to_string();
        // READ_WRITE without CREATE: a missing file is an error, and a WAL
        // reader needs to write the shared-memory index.
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ctx(&shown, "open")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .ctx(&shown, "set busy_timeout")?;
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .ctx(&shown, "enable the query planner stability guarantee")?;
        schema::check_version(&conn, &shown)?;
        Ok(Mirror {
            conn,
            path: shown,
            fresh: None,
        })
    }

    /// A handle that stops the statement this connection is running, from
    /// any thread (a query past its time, or whose client went away).
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// Gives this connection's statements a budget of about `steps` SQLite
    /// virtual-machine steps from now, together (a row read by a scan, an
    /// aggregate or a sort takes a few dozen): past it the running
    /// statement is interrupted, as by [`Mirror::interrupt_handle`], and the
    /// returned flag is set, so the caller can tell a query over its budget
    /// from one interrupted for another reason. `None` removes the budget.
    /// Counted every [`STEP_CHECK`] steps (SQLite's progress handler).
    pub fn set_step_budget(&mut self, steps: Option<u64>) -> Arc<AtomicBool> {
        let spent = Arc::new(AtomicBool::new(false));
        match steps {
            None => {
                let _ = self.conn.progress_handler(0, None::<fn() -> bool>);
            }
            Some(steps) => {
                let flag = spent.clone();
                let mut left = steps / STEP_CHECK as u64;
                let check = move || {
                    if left == 0 {
                        flag.store(true, Ordering::SeqCst);
                        return true;
                    }
                    left -= 1;
                    false
                };
                let _ = self.conn.progress_handler(STEP_CHECK, Some(check));
            }
        }
        spent
    }

    /// Bounds this connection's memory for queries: a page cache of `kib`,
    /// and temporary B-trees (GROUP BY, DISTINCT, sorts) in files rather
    /// than in memory (the bundled SQLite keeps them in memory by default:
    /// an aggregate over 1 M flows grew by hundreds of MiB), held within
    /// that cache before they spill.
    pub fn set_cache_kib(&self, kib: u32) -> Result<(), MirrorError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .ctx(&self.path, "set cache_size")?;
        self.conn
            .pragma_update(None, "temp_store", "FILE")
            .ctx(&self.path, "set temp_store")
    }

    /// Connection settings; none of them is stored in the file except WAL.
    fn configure(&self) -> Result<(), MirrorError> {
        let c = &self.conn;
        // journal_mode answers with the resulting mode; a read-only or in-memory
        // file may refuse WAL, which is harmless for a derived database.
        let _mode: String = c
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .ctx(&self.path, "set journal_mode=WAL")?;
        // NORMAL in WAL mode can lose the last commits on power loss, never
        // consistency; lost segments are simply applied again.
        c.pragma_update(None, "synchronous", "NORMAL")
            .ctx(&self.path, "set synchronous")?;
        // 64 MiB page cache: flow carries six secondary B-trees, and keeping
        // their interior pages cached is what makes bulk apply fast.
        c.pragma_update(None, "cache_size", CACHE_KIB)
            .ctx(&self.path, "set cache_size")?;
        // Checkpoint every 128 MiB of WAL instead of 4 MiB: one segment of
        // random-key index inserts dirties more than 4 MiB, so the default
        // checkpointed (and fsynced) after every segment; measured +20-40%
        // ingest rate at 1M flows.
        // The size limit gives the disk back after a checkpoint.
        c.pragma_update(None, "wal_autocheckpoint", 32768)
            .ctx(&self.path, "set wal_autocheckpoint")?;
        c.pragma_update(None, "journal_size_limit", 128 * 1024 * 1024)
            .ctx(&self.path, "set journal_size_limit")?;
        // The query planner stability guarantee: without it SQLite marks a
        // statement for re-preparing when a bound value could change its
        // plan (an `= ?` term bound to 0 or 1, a partial index's `= 0`),
        // and rusqlite's statement cache clears the bindings of every
        // statement it hands back, so such a statement was compiled again
        // on each use: 18 % of a mirror rebuild, measured.
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .ctx(&self.path, "enable the query planner stability guarantee")?;
        // A `lumpy flows` reader may briefly hold the WAL; wait instead of failing.
        c.busy_timeout(std::time::Duration::from_secs(5))
            .ctx(&self.path, "set busy_timeout")?;
        c.set_prepared_statement_cache_capacity(256);
        // Bounds the work of each ANALYZE that refresh_stats triggers.
        c.pragma_update(None, "analysis_limit", 400)
            .ctx(&self.path, "set analysis_limit")?;
        Ok(())
    }

    /// Lets SQLite re-ANALYZE tables whose size changed a lot (25x) since the
    /// last time; otherwise a cheap no-op. Without statistics, a host filter
    /// without a sensor scans all of flow; with them SQLite skip-scans the
    /// (sensor_id, src_ip) indexes (measured 214 ms -> 9 ms on 300k flows).
    /// Only an optimisation, so a failure is logged, not returned.
    fn refresh_stats(&self) {
        if let Err(e) = self.conn.execute_batch("PRAGMA optimize = 0x10002") {
            tracing::warn!(path = %self.path, error = %e, "mirror: PRAGMA optimize failed");
        }
    }

    /// True if the records of `segment` are already in the mirror.
    pub fn is_applied(&self, segment: &SegmentId) -> Result<bool, MirrorError> {
        apply::is_applied(&self.conn, segment).ctx(&self.path, "look up applied segment")
    }

    /// Writes the records of one segment, in one transaction.
    ///
    /// A segment already applied is skipped (`already_applied`, nothing
    /// written). Otherwise every record is upserted, unless the stored row has
    /// the same or a higher origin version, and the segment is recorded as
    /// applied. On error nothing of the segment is kept.
    pub fn apply(
        &mut self,
        segment: &SegmentId,
        records: &[Record],
    ) -> Result<ApplyStats, MirrorError> {
        let mut stats = self.apply_many([(segment, records)])?;
        Ok(stats.pop().unwrap_or_default())
    }

    /// [`apply`](Self::apply) for several segments in ONE transaction: all of
    /// them or none. Returns one [`ApplyStats`] per segment, in order.
    ///
    /// Use it to replay many small segments (a rebuild): the cost of a commit
    /// grows with the index pages it dirties, and random-key inserts into
    /// flow's six indexes dirty a few pages per row, so 50k rows per commit
    /// ingest about twice as fast as 5k.
    pub fn apply_many<'a>(
        &mut self,
        segments: impl IntoIterator<Item = (&'a SegmentId, &'a [Record])>,
    ) -> Result<Vec<ApplyStats>, MirrorError> {
        let path = &self.path;
        // IMMEDIATE takes the write lock now, so the version each upsert reads
        // cannot be changed by another writer before it writes.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin apply transaction")?;
        // The fresh set changes with the transaction: a failed one leaves
        // flows marked that are not in the file, so the set is dropped (the
        // version lookups come back; nothing else depends on it).
        let mut fresh = self.fresh.take();
        let mut all = Vec::new();
        for (segment, records) in segments {
            all.push(apply_one(&tx, path, segment, records, fresh.as_mut())?);
        }
        tx.commit().ctx(path, "commit apply transaction")?;
        self.fresh = fresh;
        Ok(all)
    }

    /// Flows matching `q` from both `flow` and `x_flow6`, ordered by
    /// (src_start_sec, src_start_msec, sensor_id, flow_id). See [`FlowQuery`].
    pub fn flows(&self, q: &FlowQuery) -> Result<Vec<FlowRecord>, MirrorError> {
        query::flows(&self.conn, &self.path, q)
    }

    /// Drops the secondary indexes before a large load into an empty
    /// mirror, the flow tables' unique natural keys included; `end_bulk`
    /// builds them again in one pass each, which costs far less than
    /// maintaining them row by row. If the process dies in between, `open`
    /// recreates them (the schema is idempotent), resolving natural-key
    /// clashes as apply would have. The indexes of the waiting sockets and
    /// fingerprints stay: apply itself looks rows up through them (and
    /// names them in its queries).
    /// When the mirror holds no flow versions either (a first load), apply
    /// also skips the version lookup of each flow id it has not written
    /// since (`apply::FreshFlows`).
    pub fn begin_bulk(&mut self) -> Result<(), MirrorError> {
        let no_versions: bool = self
            .conn
            .query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM x_flow_version) AND NOT EXISTS \
                 (SELECT 1 FROM flow) AND NOT EXISTS (SELECT 1 FROM x_flow6)",
                [],
                |r| r.get(0),
            )
            .ctx(&self.path, "look for flow versions")?;
        self.fresh = no_versions.then(apply::FreshFlows::default);
        let names: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
                     AND (sql NOT LIKE 'CREATE UNIQUE%' OR name IN (?1, ?2)) \
                     AND tbl_name NOT IN ('x_os_fingerprint', 'x_pending_socket')",
                )
                .ctx(&self.path, "list indexes")?;
            let rows = stmt
                .query_map(NATURAL_KEYS.map(|(_, index)| index), |r| {
                    r.get::<_, String>(0)
                })
                .ctx(&self.path, "list indexes")?;
            rows.collect::<Result<_, _>>()
                .ctx(&self.path, "list indexes")?
        };
        for name in names {
            self.conn
                .execute_batch(&format!("DROP INDEX IF EXISTS \"{name}\""))
                .ctx(&self.path, "drop index for a bulk load")?;
        }
        Ok(())
    }

    /// Rebuilds the indexes `begin_bulk` dropped.
    ///
    /// Each CREATE INDEX sorts in memory up to the page cache's size before
    /// it spills to temporary files, on top of the cache itself: with the
    /// full 64 MiB both, an ingest's peak memory went past 256 MiB. The
    /// builds run with a small cache (each index is written once, in order,
    /// so a large cache buys them little) and the cache is restored after.
    pub fn end_bulk(&mut self) -> Result<(), MirrorError> {
        self.fresh = None;
        self.conn
            .pragma_update(None, "cache_size", INDEX_BUILD_CACHE_KIB)
            .ctx(&self.path, "set cache_size for the index builds")?;
        // The ingest's other threads are done by now: SQLite's sorter may
        // merge on a helper thread while this one reads the table.
        self.conn
            .pragma_update(None, "threads", INDEX_BUILD_THREADS)
            .ctx(&self.path, "set threads for the index builds")?;
        let built = self.create_schema();
        let path = &self.path;
        let built = built.ctx(path, "rebuild indexes after a bulk load");
        self.conn
            .pragma_update(None, "threads", 0)
            .ctx(path, "set threads")?;
        self.conn
            .pragma_update(None, "cache_size", CACHE_KIB)
            .ctx(path, "set cache_size")?;
        built
    }

    /// Runs the DDL. A natural key's unique index that a bulk load left
    /// out cannot be built while flows of one natural key sit under
    /// several ids (only a misbehaving origin sends them): the lowest id
    /// keeps it, as apply decides row by row when the index is there.
    fn create_schema(&mut self) -> rusqlite::Result<()> {
        match self.conn.execute_batch(SCHEMA_SQL) {
            Err(e) if apply::is_unique_violation(&e) => {
                self.drop_natural_key_losers()?;
                self.conn.execute_batch(SCHEMA_SQL)
            }
            done => done,
        }
    }

    /// Deletes every flow row whose natural key (5-tuple + src_start_sec) a
    /// lower flow id of its sensor holds, with its version and legacy argus
    /// columns, in one transaction: what apply's natural-key rule leaves
    /// (`apply::Writer::put_flow`), for a bulk load that ran without the
    /// key's unique index.
    fn drop_natural_key_losers(&mut self) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for (table, _) in NATURAL_KEYS {
            tx.execute_batch(&format!(
                "CREATE TEMP TABLE x_lost AS SELECT sensor_id, flow_id FROM (SELECT sensor_id, flow_id, \
                 row_number() OVER (PARTITION BY sensor_id, src_ip, dst_ip, ip_proto, src_port, \
                 dst_port, src_start_sec ORDER BY flow_id) AS rn FROM {table}) WHERE rn > 1;
                 DELETE FROM {table} WHERE (sensor_id, flow_id) IN (SELECT * FROM temp.x_lost);
                 DELETE FROM x_flow_version WHERE (sensor_id, flow_id) IN (SELECT * FROM temp.x_lost);
                 DELETE FROM x_argus_legacy WHERE (sensor_id, argus_id) IN (SELECT * FROM temp.x_lost);
                 UPDATE x_flow_count SET n = n - (SELECT count(*) FROM temp.x_lost) WHERE tbl = '{table}';
                 DROP TABLE temp.x_lost;"
            ))?;
        }
        tx.commit()
    }

    /// Makes `retired` (lumpy.toml `decommissioned`) the mirror's set of
    /// sensors this node decommissioned: their `sensor.state` is 'offline'
    /// now and stays so when their sensor records are applied again (a
    /// rebuilt mirror, a later pull). Writes only when the set changed.
    /// A sensor taken off the list keeps 'offline' until its origin sends a
    /// newer sensor record.
    pub fn sync_retired(&mut self, retired: &[u32]) -> Result<(), MirrorError> {
        let path = &self.path;
        let held: std::collections::BTreeSet<u32> = {
            let mut stmt = self
                .conn
                .prepare("SELECT sensor_id FROM x_retired_sensor")
                .ctx(path, "read retired sensors")?;
            let rows = stmt
                .query_map([], |r| r.get::<_, u32>(0))
                .ctx(path, "read retired sensors")?;
            rows.collect::<Result<_, _>>()
                .ctx(path, "read retired sensors")?
        };
        let wanted: std::collections::BTreeSet<u32> = retired.iter().copied().collect();
        if held == wanted && !self.any_retired_online()? {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin retired sensors")?;
        for gone in held.difference(&wanted) {
            tx.execute("DELETE FROM x_retired_sensor WHERE sensor_id = ?1", [gone])
                .ctx(path, "forget retired sensor")?;
        }
        for new in wanted.difference(&held) {
            tx.execute(
                "INSERT INTO x_retired_sensor (sensor_id) VALUES (?1)",
                [new],
            )
            .ctx(path, "record retired sensor")?;
        }
        tx.execute(
            "UPDATE sensor SET state = 'offline' WHERE state IS NOT 'offline' \
             AND sensor_id IN (SELECT sensor_id FROM x_retired_sensor)",
            [],
        )
        .ctx(path, "mark retired sensors offline")?;
        tx.commit().ctx(path, "commit retired sensors")
    }

    /// True when a retired sensor's row says anything but 'offline' (a
    /// mirror written before x_retired_sensor existed).
    fn any_retired_online(&self) -> Result<bool, MirrorError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sensor JOIN x_retired_sensor USING (sensor_id) \
                 WHERE state IS NOT 'offline')",
                [],
                |r| r.get(0),
            )
            .ctx(&self.path, "check retired sensors")
    }

    /// Deletes closed flows that ended before `cutoff` (epoch seconds), as
    /// purgeDB.pl did; returns the rows deleted. Their version rows stay, so
    /// re-applying an old segment does not bring them back.
    pub fn purge_flows_before(&mut self, cutoff: u32) -> Result<u64, MirrorError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin purge")?;
        let mut deleted = 0;
        for table in ["flow", "x_flow6"] {
            let sql = format!(
                "DELETE FROM {table} WHERE max(src_end_sec, dst_end_sec) < ?1 AND EXISTS \
                 (SELECT 1 FROM x_flow_version v WHERE v.sensor_id = {table}.sensor_id \
                  AND v.flow_id = {table}.flow_id AND v.closed <> 0)"
            );
            let n = tx.execute(&sql, [cutoff]).ctx(path, "purge old flows")?;
            // x_flow_count has no triggers (mirror 5): its writers count.
            apply::add_flow_count(&tx, table, -(n as i64)).ctx(path, "count purged flows")?;
            deleted += n as u64;
        }
        tx.commit().ctx(path, "commit purge")?;
        Ok(deleted)
    }

    /// Number of flows, IPv4 (`flow`) and other (`x_flow6`).
    pub fn flow_count(&self) -> Result<u64, MirrorError> {
        self.conn
            .query_row(
                // Kept by triggers (schema.sql): no count over the tables.
                "SELECT coalesce(sum(n), 0) FROM x_flow_count",
                [],
                |row| query::get_u64(row, 0),
            )
            .or_else(|_| {
                // A mirror 3 file read beside the older lumpy that writes
                // it (open_reader brings nothing forward): count the rows.
                self.conn.query_row(
                    "SELECT (SELECT count(*) FROM flow) + (SELECT count(*) FROM x_flow6)",
                    [],
                    |row| query::get_u64(row, 0),
                )
            })
            .ctx(&self.path, "count flows")
    }

    /// Flows per sensor, IPv4 and other together (metrics).
    pub fn flow_counts_by_sensor(&self) -> Result<Vec<(u32, u64)>, MirrorError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sensor_id, sum(n) FROM (SELECT sensor_id, count(*) AS n FROM flow GROUP BY sensor_id \
                 UNION ALL SELECT sensor_id, count(*) FROM x_flow6 GROUP BY sensor_id) GROUP BY sensor_id ORDER BY sensor_id",
            )
            .ctx(&self.path, "count flows per sensor")?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    u32::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    query::get_u64(row, 1)?,
                ))
            })
            .ctx(&self.path, "count flows per sensor")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx(&self.path, "count flows per sensor")
    }

    /// Row count of every table in [`TABLES`], in that order (hflow tables, then `x_`).
    pub fn table_counts(&self) -> Result<Vec<(&'static str, u64)>, MirrorError> {
        TABLES
            .iter()
            .map(|t| {
                let sql = format!("SELECT count(*) FROM {}", t.name);
                let n = self
                    .conn
                    .query_row(&sql, [], |row| query::get_u64(row, 0))
                    .ctx(&self.path, "count rows")?;
                Ok((t.name, n))
            })
            .collect()
    }

    /// blake3 over the rows of `table` in primary-key order, in the canonical
    /// text encoding of [`hash`](self::hash) (reproducible from MariaDB); only
    /// rows of `sensor_id` when given and the table has a `sensor_id` column.
    pub fn row_hash(&self, table: &str, sensor_id: Option<u32>) -> Result<[u8; 32], MirrorError> {
        let spec = schema::table(table).ok_or_else(|| MirrorError::UnknownTable {
            path: self.path.clone(),
            table: table.to_owned(),
        })?;
        hash::row_hash(&self.conn, spec, sensor_id).ctx(&self.path, "hash rows")
    }

    /// The mirror schema version stored in the file.
    pub fn schema_version(&self) -> Result<i64, MirrorError> {
        self.conn
            .query_row("SELECT max(version) FROM x_schema", [], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .map(|v| v.unwrap_or(0))
            .ctx(&self.path, "read x_schema")
    }
}

/// One segment inside the caller's transaction.
fn apply_one(
    conn: &Connection,
    path: &str,
    segment: &SegmentId,
    records: &[Record],
    fresh: Option<&mut apply::FreshFlows>,
) -> Result<ApplyStats, MirrorError> {
    // Also catches a segment listed twice in one apply_many.
    if apply::is_applied(conn, segment).ctx(path, "look up applied segment")? {
        return Ok(ApplyStats {
            already_applied: true,
            ..ApplyStats::default()
        });
    }
    let stats = apply::apply_records(conn, records, fresh).ctx(path, "apply records")?;
    apply::mark_applied(conn, segment, records.len()).ctx(path, "record applied segment")?;
    Ok(stats)
}

/// Adds the mirror path and the failed step to a SQLite error.
impl Mirror {
    /// Every sensor of the mirror as an incarnation, with the earlier and
    /// later incarnations at the same management address
    /// (`mirror::incarnations`), oldest install first.
    pub fn incarnations(&self) -> Result<Vec<incarnations::Incarnation>, MirrorError> {
        incarnations::incarnations(&self.conn).ctx(&self.path, "query incarnations")
    }
}

trait Ctx<T> {
    fn ctx(self, path: &str, what: &'static str) -> Result<T, MirrorError>;
}

impl<T> Ctx<T> for Result<T, rusqlite::Error> {
    fn ctx(self, path: &str, what: &'static str) -> Result<T, MirrorError> {
        self.map_err(|source| MirrorError::Sqlite {
            path: path.to_owned(),
            what,
            source,
        })
    }
}
