//! The mirror's DDL, its version, and the catalogue of its tables.

use rusqlite::{Connection, OptionalExtension};

use super::{Ctx, MirrorError};

/// The whole mirror schema: hflow's tables, then lumpy's `x_` tables.
/// Idempotent, so `open` runs it every time. Described in docs/STORAGE.md,
/// section "Mirror"; the comments in the file give the translation rules.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The mirror schema version this binary writes (row of `x_schema`). Bump it,
/// and add a migration in `check_version`, whenever `schema.sql` changes in a
/// way an older binary would misread.
pub const MIRROR_SCHEMA_VERSION: i64 = 2;

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
    t("x_flow6", true, "sensor_id, flow_id"),
    t("x_sensor_version", true, "sensor_id"),
    t("x_sensor_address", true, "sensor_id"),
    t("x_retired_sensor", true, "sensor_id"),
    t("x_process_version", true, "sensor_id, process_id"),
    t("x_pending_socket", true, "sensor_id, sys_socket_id"),
    t(
        "x_os_fingerprint",
        true,
        "sensor_id, role, host_ip, host_port, peer_ip, peer_port, time, source",
    ),
];

/// The catalogue entry for `name`, if it is a mirror table.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// Refuses a file written by a newer mirror schema, before the DDL runs on it.
/// A file without `x_schema` is new (or a bare hflow copy) and gets version 1.
pub fn check_version(conn: &Connection, path: &str) -> Result<(), MirrorError> {
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'x_schema'",
            [],
            |row| row.get(0),
        )
        .ctx(path, "look for x_schema")?;
    if !has_table {
        return Ok(());
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
        // creates on open: a version 1 file needs nothing else.
        _ => Ok(()),
    }
}
