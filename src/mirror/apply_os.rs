//! Applying p0f fingerprints (`os_fingerprint` records) to the mirror: the
//! `os` rows, `flow.client_os_id` / `server_os_id`, and the deferred
//! fingerprint -> flow join.
//!
//! Runs inside the caller's write transaction, like `apply`. A fingerprint
//! is immutable and keyed by (sensor, role, host, peer, time, source) in
//! `x_os_fingerprint`, so applying it twice changes nothing. Its `os` row is
//! keyed by (sensor_id, genre, detail) with an `os_id` derived from the
//! genre and detail (blake3), so every node, whatever order it applies
//! segments in, gives the same OS the same id. Its flow is the record's
//! `flow_id` (native fingerprints, joined at once: a flow row inserted
//! later looks its OS ids up itself) or, for imported p0f logs, the latest
//! flow of the sensor with the 5-tuple in either orientation that started
//! within 20 s before the packet (hflow2's p0f window) and had not ended a
//! second before it. Without one yet, an imported row waits with
//! `flow_id = 0` and [`resolve_pending`] joins it when a matching flow
//! version is applied.
//! When several fingerprints name one flow and role, the flow gets the
//! first by (source, time, os_id): native before p0f log, earliest first,
//! so the result does not depend on arrival order.
//! Does not decide labels: the origin or the imported log did.

use std::net::IpAddr;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Result, ToSql, params};

use crate::records::{FlowRecord, OsFingerprintRecord, OsRole, OsSource};

/// An address as `flow` (IPv4: host-order integer) or `x_flow6` (blob) stores it.
fn ip_value(ip: &IpAddr) -> Value {
    match ip {
        IpAddr::V4(v4) => Value::Integer(i64::from(u32::from(*v4))),
        IpAddr::V6(v6) => Value::Blob(v6.octets().to_vec()),
    }
}

fn role_value(r: OsRole) -> i64 {
    match r {
        OsRole::Client => 0,
        OsRole::Server => 1,
    }
}

fn source_value(s: OsSource) -> i64 {
    match s {
        OsSource::Native => 0,
        OsSource::P0fLog => 1,
    }
}

/// The stable id of an OS label: 31 bits of blake3(genre NUL detail), never 0.
pub fn os_id_of(genre: &str, detail: &str) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(genre.as_bytes());
    h.update(&[0]);
    h.update(detail.as_bytes());
    let b = h.finalize();
    let b = b.as_bytes();
    let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
    id.max(1)
}

/// The `os` row of (sensor, genre, detail), created if missing. A hash
/// collision with another label moves to the next free id.
fn ensure_os(conn: &Connection, sensor: u32, genre: &str, detail: &str) -> Result<u32> {
    let mut id = os_id_of(genre, detail);
    loop {
        let held: Option<(String, String)> = conn
            .prepare_cached(
                "SELECT coalesce(genre, ''), coalesce(detail, '') FROM os \
                 WHERE os_id = ?1 AND sensor_id = ?2",
            )?
            .query_row(params![id, sensor], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match held {
            None => {
                conn.prepare_cached(
                    "INSERT INTO os (os_id, sensor_id, genre, detail) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, sensor, genre, detail])?;
                return Ok(id);
            }
            Some((g, d)) if g == genre && d == detail => return Ok(id),
            Some(_) => id = id.wrapping_add(1).max(1) & 0x7fff_ffff,
        }
    }
}

fn flow_table(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "flow" } else { "x_flow6" }
}

/// The flow of an imported fingerprint, if the mirror has it.
fn find_flow(conn: &Connection, r: &OsFingerprintRecord) -> Result<Option<u32>> {
    let sql = format!(
        "SELECT flow_id FROM {} WHERE sensor_id = ?1 AND ip_proto = 6 \
         AND src_start_sec >= ?2 - 20 AND src_start_sec <= ?2 + 1 \
         AND max(src_end_sec, dst_end_sec) >= ?2 - 1 \
         AND ((src_ip = ?3 AND src_port = ?4 AND dst_ip = ?5 AND dst_port = ?6) \
           OR (src_ip = ?5 AND src_port = ?6 AND dst_ip = ?3 AND dst_port = ?4)) \
         ORDER BY src_start_sec DESC, flow_id LIMIT 1",
        flow_table(&r.host_ip)
    );
    conn.prepare_cached(&sql)?
        .query_row(
            params![
                r.sensor_id,
                r.time,
                ip_value(&r.host_ip),
                r.host_port,
                ip_value(&r.peer_ip),
                r.peer_port
            ],
            |row| row.get(0),
        )
        .optional()
}

/// True when the mirror holds flow `flow_id` of `sensor` (either table).
fn flow_exists(conn: &Connection, sensor: u32, flow_id: u32) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM x_flow_version WHERE sensor_id = ?1 AND flow_id = ?2)",
    )?
    .query_row(params![sensor, flow_id], |r| r.get(0))
}

/// The SQL of a flow's OS id for `role`: the first of its fingerprints by
/// (source, time, os_id), else parameter `?{fallback}` (what the origin sent).
/// Expects the flow's sensor and id in `?1` and `?2`.
pub(super) fn winner_sql(role: u8, fallback: usize) -> String {
    format!(
        "coalesce((SELECT os_id FROM x_os_fingerprint INDEXED BY x_os_fingerprint_flow_os_idx \
         WHERE sensor_id = ?1 AND flow_id = ?2 AND role = {role} \
         ORDER BY source, time, os_id LIMIT 1), ?{fallback})"
    )
}

/// Sets the flow's OS column for `role` from its fingerprints.
/// `v4`: the flow is in `flow` (and so in the `argus` view), else in `x_flow6`.
fn set_flow_os(conn: &Connection, sensor: u32, flow_id: u32, role: i64, v4: bool) -> Result<()> {
    let os: Option<u32> = conn
        .prepare_cached(
            // INDEXED BY: with statistics taken while many fingerprints
            // waited (flow_id 0), SQLite chose the primary key and scanned
            // every fingerprint of the sensor per call (quadratic ingest).
            "SELECT os_id FROM x_os_fingerprint INDEXED BY x_os_fingerprint_flow_os_idx \
             WHERE sensor_id = ?1 AND flow_id = ?2 \
             AND role = ?3 ORDER BY source, time, os_id LIMIT 1",
        )?
        .query_row(params![sensor, flow_id, role], |r| r.get(0))
        .optional()?;
    let Some(os) = os else { return Ok(()) };
    let column = if role == 0 {
        "client_os_id"
    } else {
        "server_os_id"
    };
    let table = if v4 { "flow" } else { "x_flow6" };
    conn.prepare_cached(&format!(
        "UPDATE {table} SET {column} = ?3 WHERE sensor_id = ?1 AND flow_id = ?2 \
         AND {column} != ?3"
    ))?
    .execute(params![sensor, flow_id, os])?;
    if role == 0 && v4 {
        conn.prepare_cached(
            // A legacy argus row's own client_os_id follows the flow's, as
            // the argus table's did before mirror 4.
            "UPDATE x_argus_legacy SET client_os_id = ?3 WHERE sensor_id = ?1 AND argus_id = ?2 \
             AND client_os_id IS NOT ?3",
        )?
        .execute(params![sensor, flow_id, os])?;
    }
    Ok(())
}

/// Joins one stored fingerprint to `flow_id` and updates the flow.
fn join(conn: &Connection, key: &Key, flow_id: u32) -> Result<()> {
    conn.prepare_cached(
        "UPDATE x_os_fingerprint SET flow_id = ?9 WHERE sensor_id = ?1 AND role = ?2 \
         AND host_ip = ?3 AND host_port = ?4 AND peer_ip = ?5 AND peer_port = ?6 \
         AND time = ?7 AND source = ?8",
    )?
    .execute(rusqlite::params_from_iter(
        key.columns().into_iter().chain([&flow_id as &dyn ToSql]),
    ))?;
    set_flow_os(conn, key.sensor_id, flow_id, key.role, key.is_v4())
}

impl Key {
    /// The key's columns in table order, as parameters ?1 to ?8.
    fn columns(&self) -> [&dyn ToSql; 8] {
        [
            &self.sensor_id,
            &self.role,
            &self.host_ip,
            &self.host_port,
            &self.peer_ip,
            &self.peer_port,
            &self.time,
            &self.source,
        ]
    }

    /// IPv4 fingerprints belong to flows of `flow`, others of `x_flow6`.
    fn is_v4(&self) -> bool {
        matches!(self.host_ip, Value::Integer(_))
    }
}

/// The primary key of an `x_os_fingerprint` row.
struct Key {
    sensor_id: u32,
    role: i64,
    host_ip: Value,
    host_port: u16,
    peer_ip: Value,
    peer_port: u16,
    time: u32,
    source: i64,
}

/// The `os` rows one apply call has made sure of: a segment's fingerprints
/// name a handful of labels, so each is looked up once, not per fingerprint.
#[derive(Default)]
pub(super) struct KnownOs(std::collections::HashMap<(u32, String, String), u32>);

impl KnownOs {
    fn ensure(&mut self, conn: &Connection, sensor: u32, genre: &str, detail: &str) -> Result<u32> {
        let key = (sensor, genre.to_string(), detail.to_string());
        if let Some(id) = self.0.get(&key) {
            return Ok(*id);
        }
        let id = ensure_os(conn, sensor, genre, detail)?;
        self.0.insert(key, id);
        Ok(id)
    }
}

/// True when the fingerprint was new. `held`: whether the mirror holds
/// the record's flow (`r.flow_id`), when the caller knows (a mirror loaded
/// from empty); None: look it up.
pub(super) fn os_fingerprint(
    conn: &Connection,
    known: &mut KnownOs,
    r: &OsFingerprintRecord,
    held: Option<bool>,
) -> Result<bool> {
    let os_id = known.ensure(conn, r.sensor_id, &r.genre, &r.detail)?;
    let key = Key {
        sensor_id: r.sensor_id,
        role: role_value(r.role),
        host_ip: ip_value(&r.host_ip),
        host_port: r.host_port,
        peer_ip: ip_value(&r.peer_ip),
        peer_port: r.peer_port,
        time: r.time,
        source: source_value(r.source),
    };
    // A native fingerprint names its flow: it is joined at once, and a flow
    // row that is not in the mirror yet takes its OS id when it is inserted
    // (apply::upsert_flow_sql). An imported one is joined by its 5-tuple and
    // time when the flow is there, else it waits (flow_id 0).
    let (flow, flow_in_mirror) = if r.flow_id != 0 {
        let exists = match held {
            Some(held) => held,
            None => flow_exists(conn, r.sensor_id, r.flow_id)?,
        };
        (Some(r.flow_id), exists)
    } else {
        let found = find_flow(conn, r)?;
        (found, found.is_some())
    };
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO x_os_fingerprint (sensor_id, role, host_ip, host_port, \
             peer_ip, peer_port, time, source, origin_flow_id, flow_id, os_id, class, generic, \
             fuzzy, dist, raw_sig) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?16, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(rusqlite::params_from_iter(
            key.columns().into_iter().chain(
                params![
                    r.flow_id,
                    os_id,
                    r.class,
                    r.generic,
                    r.fuzzy,
                    r.dist,
                    r.raw_sig,
                    flow.unwrap_or(0)
                ]
                .iter()
                .copied(),
            ),
        ))?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(flow_id) = flow
        && flow_in_mirror
    {
        set_flow_os(conn, key.sensor_id, flow_id, key.role, key.is_v4())?;
    }
    Ok(true)
}

/// True when some fingerprint still waits for its flow.
pub(super) fn any_pending(conn: &Connection) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM x_os_fingerprint INDEXED BY x_os_fingerprint_pending_idx \
         WHERE flow_id = 0)",
    )?
    .query_row([], |r| r.get(0))
}

/// Joins the waiting fingerprints that the just-written flow version `f` matches.
pub(super) fn resolve_pending(conn: &Connection, f: &FlowRecord) -> Result<()> {
    if f.ip_proto != 6 {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        // Only the waiting rows (the partial index), never every fingerprint.
        "SELECT role, host_ip, host_port, peer_ip, peer_port, time, source FROM x_os_fingerprint \
         INDEXED BY x_os_fingerprint_pending_idx WHERE sensor_id = ?1 AND flow_id = 0 AND (origin_flow_id = ?2 OR (origin_flow_id = 0 \
         AND ((host_port = ?3 AND peer_port = ?4 AND host_ip = ?5 AND peer_ip = ?6) \
           OR (host_port = ?4 AND peer_port = ?3 AND host_ip = ?6 AND peer_ip = ?5)) \
         AND ?7 >= time - 20 AND ?7 <= time + 1 AND ?8 >= time - 1))",
    )?;
    let keys: Vec<Key> = stmt
        .query_map(
            params![
                f.sensor_id,
                f.flow_id,
                f.src_port,
                f.dst_port,
                ip_value(&f.src_ip),
                ip_value(&f.dst_ip),
                f.src.start_sec,
                f.end_sec()
            ],
            |r| {
                Ok(Key {
                    sensor_id: f.sensor_id,
                    role: r.get(0)?,
                    host_ip: r.get(1)?,
                    host_port: r.get(2)?,
                    peer_ip: r.get(3)?,
                    peer_port: r.get(4)?,
                    time: r.get(5)?,
                    source: r.get(6)?,
                })
            },
        )?
        .collect::<Result<_>>()?;
    for key in keys {
        join(conn, &key, f.flow_id)?;
    }
    Ok(())
}
