//! Applying sebek records (process tables) to the mirror, and the deferred
//! socket -> flow join.
//!
//! Runs inside the caller's write transaction, like `apply`. Process rows are
//! version-guarded (`x_process_version`); every other sebek row is immutable
//! and keyed by its origin id, so it is inserted once and applying it again
//! changes nothing. A `sys_socket` row gets its flow here: the earliest flow
//! of the sensor with the 5-tuple in either orientation and hflow2's window
//! (`src_start_sec <= pcap_time + 5`, end `>= pcap_time - 1`). Without one it
//! waits in `x_pending_socket` with flow_id 0, and [`resolve_pending`] joins
//! it when a matching flow version is applied.
//! Does not decide ids or parse anything: the origin did.

use std::net::Ipv4Addr;

use rusqlite::{Connection, OptionalExtension, Result, params};

use crate::records::{
    CommandRecord, FlowRecord, ProcessRecord, ProcessToComRecord, ProcessTreeRecord, SbkLossRecord,
    SysIoKind, SysIoRecord, SysSocketRecord,
};

/// hflow2 keeps the first 59 bytes of read data in `sys_read.data`.
pub const READ_DATA_BYTES: usize = 59;
/// hflow2 truncates `sys_open.filename` to 127 bytes.
pub const FILENAME_BYTES: usize = 127;

fn ip(a: Ipv4Addr) -> i64 {
    i64::from(u32::from(a))
}

/// Marks row `id` of walleye table `tbl` as cut by the snaplen.
fn mark_truncated(conn: &Connection, sensor_id: u32, tbl: &str, id: u32) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO x_sebek_truncated (sensor_id, tbl, id) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![sensor_id, tbl, id])?;
    Ok(())
}

/// True when the row was written; false when a newer or equal version is stored.
pub(super) fn process(conn: &Connection, p: &ProcessRecord) -> Result<bool> {
    let version = i64::try_from(p.version).unwrap_or(i64::MAX);
    let stored: Option<i64> = conn
        .prepare_cached(
            "SELECT version FROM x_process_version WHERE sensor_id = ?1 AND process_id = ?2",
        )?
        .query_row(params![p.sensor_id, p.process_id], |r| r.get(0))
        .optional()?;
    if stored.is_some_and(|v| v >= version) {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO process (sensor_id, process_id, src_ip, time_min, time_max, \
         pcap_time_min, pcap_time_max, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        p.sensor_id,
        p.process_id,
        ip(p.src_ip),
        p.time_min,
        p.time_max,
        p.pcap_time_min,
        p.pcap_time_max,
        p.pid
    ])?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO x_process_version (sensor_id, process_id, version) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![p.sensor_id, p.process_id, version])?;
    if let Some(ppid) = p.ppid {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO x_process_parent (sensor_id, process_id, ppid) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![p.sensor_id, p.process_id, ppid])?;
    }
    if let Some(f) = p.fork {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO x_process_fork (sensor_id, process_id, uid, filed, inode, \
             command_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            p.sensor_id,
            p.process_id,
            f.uid,
            f.fd,
            f.inode,
            f.command_id
        ])?;
    }
    Ok(true)
}

pub(super) fn process_tree(conn: &Connection, t: &ProcessTreeRecord) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO process_tree (sensor_id, child_process, parent_process) \
             VALUES (?1, ?2, ?3)",
        )?
        .execute(params![t.sensor_id, t.child_process, t.parent_process])?;
    Ok(n == 1)
}

pub(super) fn command(conn: &Connection, c: &CommandRecord) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO command (sensor_id, command_id, name) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![c.sensor_id, c.command_id, c.name])?;
    Ok(n == 1)
}

pub(super) fn process_to_com(conn: &Connection, c: &ProcessToComRecord) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO process_to_com (sensor_id, process_id, command_id) \
             VALUES (?1, ?2, ?3)",
        )?
        .execute(params![c.sensor_id, c.process_id, c.command_id])?;
    Ok(n == 1)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A column's value, or NULL where the legacy row had NULL.
fn nullable(r: &SysIoRecord, column: &str, v: u32) -> Option<u32> {
    (!r.is_null(column)).then_some(v)
}

pub(super) fn sys_io(conn: &Connection, r: &SysIoRecord) -> Result<bool> {
    let tbl = match r.kind {
        SysIoKind::Read => "sys_read",
        SysIoKind::Write => "sys_write",
        SysIoKind::Open => "sys_open",
    };
    let n = match r.kind {
        SysIoKind::Read | SysIoKind::Write => {
            let (table, id) = match r.kind {
                SysIoKind::Read => ("sys_read", "sys_read_id"),
                _ => ("sys_write", "sys_write_id"),
            };
            let data = r.data.get(..READ_DATA_BYTES).unwrap_or(&r.data);
            if let Some(command_id) = r.command_id.filter(|_| r.kind == SysIoKind::Read) {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO x_sys_read_com (sensor_id, process_id, sys_read_id, \
                     command_id) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![r.sensor_id, r.process_id, r.id, command_id])?;
            }
            // A keystroke-sized read longer than the column keeps every byte
            // beside it (`keystrokes`).
            if r.kind == SysIoKind::Read
                && r.data.len() > READ_DATA_BYTES
                && r.length <= crate::sebek::keystrokes::KS_READ_LENGTH_LIMIT
            {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO x_sys_read_data (sensor_id, sys_read_id, data) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![r.sensor_id, r.id, r.data])?;
            }
            conn.prepare_cached(&format!(
                "INSERT OR IGNORE INTO {table} (sensor_id, {id}, process_id, uid, pcap_time, time, \
                 counter, filed, inode, length, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                r.sensor_id,
                r.id,
                r.process_id,
                nullable(r, "uid", r.uid),
                nullable(r, "pcap_time", r.pcap_time),
                nullable(r, "time", r.time),
                r.counter,
                r.filed,
                r.inode,
                r.length,
                data
            ])?
        }
        SysIoKind::Open => {
            let name = String::from_utf8_lossy(&r.data);
            conn.prepare_cached(
                "INSERT OR IGNORE INTO sys_open (sensor_id, sys_open_id, process_id, uid, pcap_time, \
                 time, counter, filed, inode, length, filename) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                r.sensor_id,
                r.id,
                r.process_id,
                nullable(r, "uid", r.uid),
                nullable(r, "pcap_time", r.pcap_time),
                nullable(r, "time", r.time),
                r.counter,
                r.filed,
                r.inode,
                r.length,
                truncate(&name, FILENAME_BYTES)
            ])?
        }
    };
    if n == 1 && r.truncated {
        mark_truncated(conn, r.sensor_id, tbl, r.id)?;
    }
    Ok(n == 1)
}

pub(super) fn sbk_loss(conn: &Connection, l: &SbkLossRecord) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO sbk_loss (sensor_id, src_ip, time, lost) SELECT ?1, ?2, ?3, ?4 \
             WHERE NOT EXISTS (SELECT 1 FROM sbk_loss WHERE sensor_id = ?1 AND src_ip = ?2 \
             AND time = ?3 AND lost = ?4)",
        )?
        .execute(params![l.sensor_id, ip(l.src_ip), l.time, l.lost])?;
    Ok(n == 1)
}

/// hflow2 gives unbound and loopback sockets flow 0 without looking.
fn never_joins(s: &SysSocketRecord) -> bool {
    s.local_ip.is_unspecified()
        || s.remote_ip.is_unspecified()
        || (s.local_ip.is_loopback() && s.remote_ip.is_loopback())
}

/// The flow a socket belongs to, if the mirror has it yet.
fn find_flow(conn: &Connection, s: &SysSocketRecord) -> Result<Option<u32>> {
    conn.prepare_cached(
        "SELECT flow_id FROM flow WHERE sensor_id = ?1 AND ip_proto = ?2 \
         AND src_start_sec <= ?3 + 5 AND max(src_end_sec, dst_end_sec) >= ?3 - 1 \
         AND ((src_ip = ?4 AND src_port = ?5 AND dst_ip = ?6 AND dst_port = ?7) \
           OR (src_ip = ?6 AND src_port = ?7 AND dst_ip = ?4 AND dst_port = ?5)) \
         ORDER BY src_start_sec, flow_id LIMIT 1",
    )?
    .query_row(
        params![
            s.sensor_id,
            s.proto,
            s.pcap_time,
            ip(s.local_ip),
            s.local_port,
            ip(s.remote_ip),
            s.remote_port
        ],
        |r| r.get(0),
    )
    .optional()
}

pub(super) fn sys_socket(conn: &Connection, s: &SysSocketRecord) -> Result<bool> {
    let flow = if let Some(legacy) = s.legacy_flow_id {
        Some(legacy)
    } else if never_joins(s) {
        Some(0)
    } else {
        find_flow(conn, s)?
    };
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO sys_socket (sensor_id, sys_socket_id, process_id, pcap_time, \
             time, uid, counter, filed, inode, flow_id, \"call\", type) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            s.sensor_id,
            s.sys_socket_id,
            s.process_id,
            (!s.legacy_null.iter().any(|c| c == "pcap_time")).then_some(s.pcap_time),
            s.time,
            s.uid,
            s.counter,
            s.filed,
            s.inode,
            flow.unwrap_or(0),
            s.call,
            s.legacy_type
        ])?;
    if n == 1 && s.truncated {
        mark_truncated(conn, s.sensor_id, "sys_socket", s.sys_socket_id)?;
    }
    // Legacy rows carry no addresses (walleye's sys_socket has none).
    if n == 1 && s.legacy_flow_id.is_none() {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO x_socket_addr (sensor_id, sys_socket_id, proto, local_ip, \
             local_port, remote_ip, remote_port) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            s.sensor_id,
            s.sys_socket_id,
            s.proto,
            ip(s.local_ip),
            s.local_port,
            ip(s.remote_ip),
            s.remote_port
        ])?;
    }
    if n == 1 && flow.is_none() {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO x_pending_socket (sensor_id, sys_socket_id, proto, local_ip, \
             local_port, remote_ip, remote_port, pcap_time) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            s.sensor_id,
            s.sys_socket_id,
            s.proto,
            ip(s.local_ip),
            s.local_port,
            ip(s.remote_ip),
            s.remote_port,
            s.pcap_time
        ])?;
    }
    Ok(n == 1)
}

/// Joins the pending sockets that the just-written flow version `f` matches.
pub(super) fn resolve_pending(conn: &Connection, f: &FlowRecord) -> Result<()> {
    let (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) = (f.src_ip, f.dst_ip) else {
        return Ok(());
    };
    let mut find = conn.prepare_cached(
        "SELECT sys_socket_id FROM x_pending_socket WHERE sensor_id = ?1 AND proto = ?2 \
         AND ((local_port = ?3 AND remote_port = ?4 AND local_ip = ?5 AND remote_ip = ?6) \
           OR (local_port = ?4 AND remote_port = ?3 AND local_ip = ?6 AND remote_ip = ?5)) \
         AND ?7 <= pcap_time + 5 AND ?8 >= pcap_time - 1 ORDER BY sys_socket_id",
    )?;
    let ids: Vec<u32> = find
        .query_map(
            params![
                f.sensor_id,
                f.ip_proto,
                f.src_port,
                f.dst_port,
                ip(src),
                ip(dst),
                f.src.start_sec,
                f.end_sec()
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_>>()?;
    for id in ids {
        conn.prepare_cached(
            "UPDATE sys_socket SET flow_id = ?3 WHERE sensor_id = ?1 AND sys_socket_id = ?2",
        )?
        .execute(params![f.sensor_id, id, f.flow_id])?;
        conn.prepare_cached(
            "DELETE FROM x_pending_socket WHERE sensor_id = ?1 AND sys_socket_id = ?2",
        )?
        .execute(params![f.sensor_id, id])?;
    }
    Ok(())
}
