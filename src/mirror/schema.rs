//! The mirror's DDL, its version, and the catalogue of its tables.

use rusqlite::{Connection, OptionalExtension};

use super::{Ctx, MirrorError};

/// The whole mirror schema: hflow's tables, then lumpy's `x_` tables.
/// Idempotent, so `open` runs it every time. Described in docs/STORAGE.md,
/// section "Mirror"; the comments in the file give the translation rules.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The mirror schema version this binary writes (row of `x_schema`). Bump it,
/// and bring older files forward in `migrate_before_ddl` /
/// `migrate_after_ddl`, whenever `schema.sql` changes in a way an older
/// binary would misread or `CREATE ... IF NOT EXISTS` cannot apply.
pub const MIRROR_SCHEMA_VERSION: i64 = 5;

/// One mirror table, as [`super::Mirror::table_counts`] and
/// [`super::Mirror::row_hash`] see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    pub name: &'static str,
    /// True if the table has a `sensor_id` column to filter on.
    pub per_sensor: bool,
    /// Columns giving a total, reproducible row order: the primary key, or
    /// every column for `sbk_loss`, which has none.
    pub order_by: &'static str,
}

const fn t(name: &'static str, per_sensor: bool, order_by: &'static str) -> TableSpec {
    TableSpec {
        name,
        per_sensor,
        order_by,
    }
}

/// Every table of [`SCHEMA_SQL`]: hflow's, in the reference's order, then `x_`.
/// Table names are interpolated into SQL only from this list.
pub const TABLES: &[TableSpec] = &[
    t("dbschema", false, "version"),
    t("sensor", true, "sensor_id"),
    t("flow", true, "sensor_id, flow_id"),
    t("flow_perf", true, "sensor_id, flow_id, sec"),
    t("argus", true, "sensor_id, argus_id"),
    t("os", true, "os_id, sensor_id"),
    t("ids", true, "sensor_id, ids_id"),
    t("ids_sig", true, "sensor_id, ids_sig_gen, ids_sig_id"),
    t("process", true, "sensor_id, process_id"),
    t(
        "process_tree",
        true,
        "sensor_id, child_process, parent_process",
    ),
    t("command", true, "sensor_id, command_id"),
    t("process_to_com", true, "sensor_id, command_id, process_id"),
    t("sys_read", true, "sensor_id, process_id, sys_read_id"),
    t("sys_write", true, "sensor_id, process_id, sys_write_id"),
    t("sys_open", true, "sensor_id, sys_open_id"),
    t("sys_socket", true, "sensor_id, sys_socket_id"),
    t("sbk_loss", true, "sensor_id, src_ip, time, lost"),
    t("x_schema", false, "version"),
    t("x_applied_segment", false, "segment_id"),
    t("x_flow_version", true, "sensor_id, flow_id"),
    t("x_argus_legacy", true, "sensor_id, argus_id"),
    t("x_flow_count", false, "tbl"),
    t("x_flow6", true, "sensor_id, flow_id"),
    t("x_sensor_version", true, "sensor_id"),
    t("x_sensor_address", true, "sensor_id"),
    t("x_retired_sensor", true, "sensor_id"),
    t("x_process_version", true, "sensor_id, process_id"),
    t("x_pending_socket", true, "sensor_id, sys_socket_id"),
    t(
        "x_os_fingerprint",
        true,
        "sensor_id, time, role, host_ip, host_port, peer_ip, peer_port, source",
    ),
    t("x_socket_addr", true, "sensor_id, sys_socket_id"),
    t("x_process_parent", true, "sensor_id, process_id"),
    t("x_flow_icmp", true, "sensor_id, flow_id"),
    t("x_sebek_truncated", true, "sensor_id, tbl, id"),
    t("x_process_fork", true, "sensor_id, process_id"),
    t("x_sys_read_data", true, "sensor_id, sys_read_id"),
    t("x_sys_read_com", true, "sensor_id, process_id, sys_read_id"),
];

/// The catalogue entry for `name`, if it is a mirror table.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// Refuses a file written by a newer mirror schema, before the DDL runs on it;
/// returns the file's version. A file without `x_schema` is new (or a bare
/// hflow copy): None, and the DDL makes it current.
pub fn check_version(conn: &Connection, path: &str) -> Result<Option<i64>, MirrorError> {
    if !table_exists(conn, "x_schema").ctx(path, "look for x_schema")? {
        return Ok(None);
    }
    let found: Option<i64> = conn
        .query_row("SELECT max(version) FROM x_schema", [], |row| row.get(0))
        .optional()
        .ctx(path, "read x_schema")?
        .flatten();
    match found {
        Some(found) if found > MIRROR_SCHEMA_VERSION => Err(MirrorError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: MIRROR_SCHEMA_VERSION,
        }),
        // Version 2 only adds a table (x_os_fingerprint), which the DDL
        // creates on open: a version 1 file needs nothing else. Version 3
        // re-keys that table, version 4 turns argus into a view:
        // `migrate_before_ddl` and `migrate_after_ddl`. Version 5 drops
        // x_flow_count's triggers (apply counts instead): the DDL's DROP
        // TRIGGER IF EXISTS, which every open runs before anything writes.
        _ => Ok(found),
    }
}

/// Where a version 2 mirror's fingerprints wait while the table is re-keyed.
const OLD_FINGERPRINTS: &str = "x_os_fingerprint_v2";

/// Where a version 3 mirror's argus table waits while its legacy rows are
/// sorted out (mirror 3 -> 4).
const OLD_ARGUS: &str = "x_argus_v3";

/// flow's indexes as mirror 3 defined them that mirror 4 redefines under
/// the same names (and the natural key, which is `src_ip_idx` now);
/// `start_sec_idx` stays as it was.
const V3_FLOW_INDEXES: [&str; 5] = [
    "src_ip_idx",
    "dst_ip_idx",
    "src_port_idx",
    "dst_port_idx",
    "flow_natural_key",
];

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |row| row.get(0),
    )
}

/// Mirror 2 -> 3, first half (before the DDL runs): a version 2 file's
/// `x_os_fingerprint` (keyed by host before time) is renamed aside and its
/// indexes dropped, so the DDL creates the table with the new key and its
/// indexes afresh. One transaction. `version`: what `check_version` found.
pub fn migrate_before_ddl(
    conn: &Connection,
    path: &str,
    version: Option<i64>,
) -> Result<(), MirrorError> {
    fingerprints_before_ddl(conn, path, version)?;
    argus_before_ddl(conn, path)?;
    count_flows_before_ddl(conn, path)
}

/// Mirror 3 -> 4: a file with flow rows but no `x_flow_count` gets the
/// table with its rows counted, in one transaction, before the DDL adds the
/// triggers that keep it (no row can change between the two: this process
/// holds the file, and a cut before the triggers leaves a right count).
fn count_flows_before_ddl(conn: &Connection, path: &str) -> Result<(), MirrorError> {
    let needed = table_exists(conn, "flow").ctx(path, "look for flow")?
        && table_exists(conn, "x_flow6").ctx(path, "look for x_flow6")?
        && !table_exists(conn, "x_flow_count").ctx(path, "look for x_flow_count")?;
    if !needed {
        return Ok(());
    }
    in_transaction(
        conn,
        "CREATE TABLE x_flow_count (tbl TEXT NOT NULL PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO x_flow_count (tbl, n)
             SELECT 'flow', count(*) FROM flow UNION ALL SELECT 'x_flow6', count(*) FROM x_flow6;",
    )
    .ctx(path, "count the flows for x_flow_count")
}

/// Mirror 2 -> 3, first half.
fn fingerprints_before_ddl(
    conn: &Connection,
    path: &str,
    version: Option<i64>,
) -> Result<(), MirrorError> {
    let old_key = version.is_some_and(|v| v < 3)
        && table_exists(conn, "x_os_fingerprint").ctx(path, "look for x_os_fingerprint")?
        && !table_exists(conn, OLD_FINGERPRINTS).ctx(path, "look for x_os_fingerprint_v2")?;
    if !old_key {
        return Ok(());
    }
    tracing::info!(path, "mirror 2 -> 3: re-keying x_os_fingerprint by time");
    in_transaction(
        conn,
        &format!(
            "ALTER TABLE x_os_fingerprint RENAME TO {OLD_FINGERPRINTS};
             DROP INDEX IF EXISTS x_os_fingerprint_flow_os_idx;
             DROP INDEX IF EXISTS x_os_fingerprint_pending_idx;
             DROP INDEX IF EXISTS x_os_fingerprint_host_idx;
             DROP INDEX IF EXISTS x_os_fingerprint_flow_idx;"
        ),
    )
    .ctx(path, "set the version 2 fingerprints aside")
}

/// Mirror 2 -> 3, second half (after the DDL): copies the fingerprints set
/// aside into the re-keyed table and drops the old one, in one transaction.
/// Keyed on the old table's presence, not on the version, so a process that
/// died between the halves finishes the move at its next open.
pub fn migrate_after_ddl(conn: &Connection, path: &str) -> Result<(), MirrorError> {
    fingerprints_after_ddl(conn, path)?;
    argus_after_ddl(conn, path)
}

/// Mirror 2 -> 3, second half.
fn fingerprints_after_ddl(conn: &Connection, path: &str) -> Result<(), MirrorError> {
    if !table_exists(conn, OLD_FINGERPRINTS).ctx(path, "look for x_os_fingerprint_v2")? {
        return Ok(());
    }
    in_transaction(
        conn,
        &format!(
            "INSERT OR IGNORE INTO x_os_fingerprint SELECT * FROM {OLD_FINGERPRINTS};
             DROP TABLE {OLD_FINGERPRINTS};"
        ),
    )
    .ctx(
        path,
        "move the version 2 fingerprints into the re-keyed table",
    )
}

/// Mirror 3 -> 4, first half (before the DDL): a version 3 file's `argus`
/// table (every IPv4 flow a second time) is renamed aside, so the DDL can
/// create the `argus` view, and flow's indexes are dropped, so the DDL
/// creates them with their version 4 columns. One transaction; keyed on
/// `argus` being a table, so it runs once whatever the version row says.
fn argus_before_ddl(conn: &Connection, path: &str) -> Result<(), MirrorError> {
    let is_table: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'argus'",
            [],
            |row| row.get(0),
        )
        .ctx(path, "look for the argus table")?;
    if !is_table {
        return Ok(());
    }
    tracing::info!(
        path,
        "mirror 3 -> 4: argus becomes a view over flow, flow's indexes are rebuilt"
    );
    let drops: String = V3_FLOW_INDEXES
        .iter()
        .map(|i| format!("DROP INDEX IF EXISTS {i};\n"))
        .collect();
    in_transaction(
        conn,
        &format!("ALTER TABLE argus RENAME TO {OLD_ARGUS};\n{drops}"),
    )
    .ctx(path, "set the version 3 argus table aside")
}

/// Mirror 3 -> 4, second half (after the DDL made the view and
/// `x_argus_legacy`): the old argus rows that differ from what the view
/// derives from their flow (rows a walleye_0_3 import brought, or a
/// client_os_id set after the row was written) keep their own columns in
/// `x_argus_legacy`, so the view answers every row as the table did; then
/// the old table goes. One transaction, keyed on the old table's presence:
/// a process that died between the halves finishes at its next open. Rows
/// whose flow row is gone (purged flows: mirror 3 left their argus rows
/// behind) are not carried over.
fn argus_after_ddl(conn: &Connection, path: &str) -> Result<(), MirrorError> {
    if !table_exists(conn, OLD_ARGUS).ctx(path, "look for x_argus_v3")? {
        return Ok(());
    }
    let differs = [
        "local",
        "argus_dir",
        "argus_status",
        "argus_ind",
        "client_os_id",
    ]
    .iter()
    .map(|c| format!("o.{c} IS NOT v.{c}"))
    .collect::<Vec<_>>()
    .join(" OR ");
    in_transaction(
        conn,
        &format!(
            "INSERT OR REPLACE INTO x_argus_legacy              (sensor_id, argus_id, local, argus_dir, argus_status, argus_ind, client_os_id)              SELECT o.sensor_id, o.argus_id, o.local, o.argus_dir, o.argus_status, o.argus_ind,              o.client_os_id FROM {OLD_ARGUS} o JOIN argus v              ON v.sensor_id = o.sensor_id AND v.argus_id = o.argus_id WHERE {differs};
             DROP TABLE {OLD_ARGUS};"
        ),
    )
    .ctx(path, "keep the version 3 argus rows the view cannot derive")
}

/// Runs `sql` in one transaction: all of it, or (on an error) none.
fn in_transaction(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(sql)?;
    tx.commit()
}
