//! Applying the record kinds that only legacy imports produce (docs/STORAGE.md
//! §4, record version 2): p0f `os` rows, snort `ids` alerts and the `ids_sig`
//! catalogue, and walleye_0_3 `argus` rows.
//!
//! Runs inside the caller's write transaction, like `apply`. Every row here
//! is immutable and keyed by its legacy id, so it is inserted once and
//! applying it again changes nothing. Does not decide ids: the legacy
//! database did, and the import kept them.

use rusqlite::{Connection, Result, params};

use crate::records::{ArgusRecord, IdsRecord, IdsSigRecord, OsRecord};

pub(super) fn os(conn: &Connection, r: &OsRecord) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO os (os_id, sensor_id, genre, detail) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![r.os_id, r.sensor_id, r.genre, r.detail])?;
    Ok(n == 1)
}

pub(super) fn ids(conn: &Connection, r: &IdsRecord) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO ids (ids_id, sensor_id, sig_id, flow_id, sec, usec, priority, \
             sig_rev, sig_gen, classification, type) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            r.ids_id,
            r.sensor_id,
            r.sig_id,
            r.flow_id,
            r.sec,
            r.usec,
            r.priority,
            r.sig_rev,
            r.sig_gen,
            r.classification,
            r.kind
        ])?;
    Ok(n == 1)
}

pub(super) fn ids_sig(conn: &Connection, r: &IdsSigRecord) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO ids_sig (ids_sig_gen, ids_sig_id, sensor_id, sig_name, reference) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            r.ids_sig_gen,
            r.ids_sig_id,
            r.sensor_id,
            r.sig_name,
            r.reference
        ])?;
    Ok(n == 1)
}

/// The argus columns a flow cannot give, exactly as the legacy database had
/// them. Called after the row's flow ([`ArgusRecord::as_flow`], which holds
/// every other argus column) was written: the `argus` view shows these
/// instead of its derived ones.
pub(super) fn argus(conn: &Connection, a: &ArgusRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO x_argus_legacy (sensor_id, argus_id, local, argus_dir, \
         argus_status, argus_ind, client_os_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        a.sensor_id,
        a.argus_id,
        a.local,
        a.argus_dir,
        a.argus_status,
        a.argus_ind,
        a.client_os_id
    ])?;
    Ok(())
}

/// Drops the legacy argus columns of a flow whose row was replaced by a
/// newer version or deleted: its argus row is derived again (mirror 3
/// rewrote the argus row then).
pub(super) fn forget_argus(conn: &Connection, sensor_id: u32, flow_id: u32) -> Result<()> {
    conn.prepare_cached("DELETE FROM x_argus_legacy WHERE sensor_id = ?1 AND argus_id = ?2")?
        .execute(params![sensor_id, flow_id])?;
    Ok(())
}

/// True if any flow has legacy argus columns (only legacy imports make
/// them): apply skips [`forget_argus`] for every flow when none does.
pub(super) fn any_argus(conn: &Connection) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM x_argus_legacy)")?
        .query_row([], |row| row.get(0))
}
