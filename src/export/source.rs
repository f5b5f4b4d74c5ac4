//! The read side: the node's SQLite mirror, opened read-only, turned into
//! the SQL statements of an export.
//!
//! One read transaction covers planning and producing, so an export sees one
//! consistent snapshot even while `lumpy serve` or `lumpy ingest` keeps
//! applying segments to the mirror.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::schema::{Source, Table};
use super::sql;
use super::{Access, ExportError, ExportOptions, Flavor};
use crate::mirror::MIRROR_SCHEMA_VERSION;
use crate::node::MIRROR_FILE;

/// What the target already holds for one (table, sensor): the watermark of
/// the last committed batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    /// Highest (row version, row id) exported, for versioned tables.
    pub version: u64,
    pub row_id: u64,
    /// blake3 of the rendered rows, for copied tables.
    pub digest: Option<String>,
}

/// Watermarks by (table, sensor).
pub type Marks = HashMap<(String, u32), Mark>;

/// One unit of work: a table and sensor with something to send.
#[derive(Debug)]
pub struct Work {
    pub table: &'static Table,
    pub sensor: u32,
    /// Rows to send.
    pub rows: u64,
    /// Versioned: rows after this (version, id); None: all.
    pub after: Option<(i64, i64)>,
    /// Copied tables: the digest the state will hold after this work.
    pub digest: Option<String>,
}

/// What the producer sends to a sink: one transaction. Sinks commit
/// transactions in the order they were produced; `data` statements of
/// consecutive transactions may run in parallel (on different connections),
/// `finish` (the watermark) runs only once every earlier transaction is
/// committed, so the committed set is always a prefix of what was produced.
#[derive(Debug)]
pub struct Msg {
    /// The rows: (statement, table it writes).
    pub data: Vec<(String, &'static str)>,
    /// The watermark update.
    pub finish: Vec<String>,
    /// Data rows in the transaction.
    pub rows: u64,
    /// Run only after every earlier transaction committed: a DELETE of a
    /// sensor's range takes gap locks that a parallel insert could wait on.
    pub serial: bool,
}

/// What one (table, sensor) sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub table: &'static str,
    pub sensor: u32,
    pub rows: u64,
}

/// The mirror, read-only, inside one read transaction.
pub struct MirrorSource {
    conn: Connection,
    pub path: String,
}

impl MirrorSource {
    /// Opens `dir`'s mirror read-only, after checking that `dir` is a node.
    pub fn open(dir: &Path) -> Result<Self, ExportError> {
        for name in ["index.redb", "lumpy.toml", MIRROR_FILE] {
            if !dir.join(name).is_file() {
                return Err(ExportError::NotANode {
                    dir: dir.display().to_string(),
                    missing: name,
                });
            }
        }
        let file = dir.join(MIRROR_FILE);
        let path = file.display().to_string();
        let err = |what: &'static str| {
            let path = path.clone();
            move |source| ExportError::Mirror { path, what, source }
        };
        let conn = Connection::open_with_flags(
            &file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err("open read-only"))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err("set busy_timeout"))?;
        conn.execute_batch("BEGIN")
            .map_err(err("begin read transaction"))?;
        let version: Option<i64> = conn
            .query_row("SELECT max(version) FROM x_schema", [], |r| r.get(0))
            .map_err(err("read x_schema"))?;
        let version = version.unwrap_or(0);
        if version > MIRROR_SCHEMA_VERSION {
            return Err(ExportError::MirrorVersion {
                path,
                found: version,
                supported: MIRROR_SCHEMA_VERSION,
            });
        }
        Ok(MirrorSource { conn, path })
    }

    /// The read transaction's connection (the ClickHouse export reads
    /// through it with its own queries).
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> ExportError + '_ {
        move |source| ExportError::Mirror {
            path: self.path.clone(),
            what,
            source,
        }
    }

    fn sensors(&self, sql: &str, arg: Option<i64>) -> Result<Vec<u32>, ExportError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.err("list sensors"))?;
        let params: Vec<i64> = arg.into_iter().collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, u32>(0))
            .map_err(self.err("list sensors"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("list sensors"))
    }

    /// Decides what to send for every table of the flavor and sensor.
    pub fn plan(
        &self,
        tables: &'static [Table],
        marks: &Marks,
        opts: &ExportOptions,
    ) -> Result<Vec<Work>, ExportError> {
        let wanted = |s: &u32| opts.sensors.is_empty() || opts.sensors.contains(s);
        let mark = |t: &Table, s: u32| {
            if opts.full {
                None
            } else {
                marks.get(&(t.name.to_string(), s))
            }
        };
        let mut work = Vec::new();
        for table in tables {
            match table.source {
                Source::Seed | Source::State => {}
                Source::Sensor | Source::Flows { .. } | Source::CommunityIds => {
                    let sensors = match table.source {
                        Source::Sensor => self.sensors(
                            "SELECT sensor_id FROM sensor ORDER BY sensor_id",
                            None,
                        )?,
                        Source::Flows { v6, .. } => self.sensors(
                            "SELECT DISTINCT sensor_id FROM x_flow_version WHERE in_flow6 = ?1 ORDER BY sensor_id",
                            Some(i64::from(v6)),
                        )?,
                        Source::CommunityIds => self.sensors(
                            "SELECT DISTINCT sensor_id FROM x_flow_version ORDER BY sensor_id",
                            None,
                        )?,
                        _ => Vec::new(),
                    };
                    for sensor in sensors.into_iter().filter(wanted) {
                        let after = mark(table, sensor).map(|m| {
                            (
                                i64::try_from(m.version).unwrap_or(i64::MAX),
                                i64::try_from(m.row_id).unwrap_or(i64::MAX),
                            )
                        });
                        let rows = self.count_versioned(table, sensor, after)?;
                        if rows > 0 {
                            work.push(Work {
                                table,
                                sensor,
                                rows,
                                after,
                                digest: None,
                            });
                        }
                    }
                }
                Source::Copy { mirror_table } => {
                    let mut sensors = self.sensors(
                        &format!(
                            "SELECT DISTINCT sensor_id FROM {} ORDER BY sensor_id",
                            sql::ident(mirror_table)
                        ),
                        None,
                    )?;
                    for (t, s) in marks.keys() {
                        if t == table.name && !sensors.contains(s) {
                            sensors.push(*s);
                        }
                    }
                    for sensor in sensors.into_iter().filter(wanted) {
                        let (rows, digest) = self.digest(table, mirror_table, sensor)?;
                        let stored = mark(table, sensor).and_then(|m| m.digest.clone());
                        let unchanged = super::digest_unchanged(stored.as_deref(), &digest);
                        if !unchanged || (opts.full && rows > 0) {
                            work.push(Work {
                                table,
                                sensor,
                                rows,
                                after: None,
                                digest: Some(digest),
                            });
                        }
                    }
                }
            }
        }
        Ok(work)
    }

    fn versioned_sql(table: &Table, count: bool) -> String {
        let (mirror_table, v6) = match table.source {
            Source::Sensor => {
                let what = if count {
                    "count(*)"
                } else {
                    "COALESCE(v.version, 0), s.*"
                };
                return format!(
                    "SELECT {what} FROM sensor s LEFT JOIN x_sensor_version v ON v.sensor_id = s.sensor_id \
                     WHERE s.sensor_id = ?1 AND (COALESCE(v.version, 0) > ?2 OR (COALESCE(v.version, 0) = ?2 AND s.sensor_id > ?3))"
                );
            }
            Source::Flows { v6: true, .. } => ("x_flow6", 1),
            Source::CommunityIds => {
                // Both flow tables, each joined on its own key; the columns
                // the hash needs (community_row).
                let cols = format!(
                    "f.sensor_id, f.flow_id, f.src_ip, f.src_port, f.dst_ip, f.dst_port, \
                     f.ip_proto, f.src_icmp_seen, {}",
                    crate::community_id::ICMP_FIRST_SQL
                );
                let (what, order) = if count {
                    ("count(*)", "")
                } else {
                    ("*", " ORDER BY 1, 3")
                };
                let part = |t: &str, v6: u8| {
                    format!(
                        "SELECT v.version, {cols} FROM x_flow_version v JOIN {t} f \
                         ON f.sensor_id = v.sensor_id AND f.flow_id = v.flow_id \
                         WHERE v.sensor_id = ?1 AND v.in_flow6 = {v6} \
                         AND (v.version > ?2 OR (v.version = ?2 AND v.flow_id > ?3))"
                    )
                };
                return format!(
                    "SELECT {what} FROM ({} UNION ALL {}){order}",
                    part("flow", 0),
                    part("x_flow6", 1)
                );
            }
            _ => ("flow", 0),
        };
        let argus = matches!(table.source, Source::Flows { argus: true, .. });
        // walleye_0_3's argus: the flow row, plus the argus columns a legacy
        // import kept verbatim (`x_argus_legacy`, see `argus_row`); the
        // mirror's argus view is the same join.
        let (what, join) = match (count, argus) {
            (true, _) => ("count(*)", ""),
            (false, true) => (
                "v.version, f.*, a.local, a.argus_dir, a.argus_status, a.argus_ind, a.client_os_id, a.argus_id",
                " LEFT JOIN x_argus_legacy a ON a.sensor_id = f.sensor_id AND a.argus_id = f.flow_id",
            ),
            (false, false) => ("v.version, f.*", ""),
        };
        let order = if count {
            ""
        } else {
            " ORDER BY v.version, v.flow_id"
        };
        format!(
            "SELECT {what} FROM x_flow_version v JOIN {mirror_table} f \
             ON f.sensor_id = v.sensor_id AND f.flow_id = v.flow_id{join} \
             WHERE v.sensor_id = ?1 AND v.in_flow6 = {v6} \
             AND (v.version > ?2 OR (v.version = ?2 AND v.flow_id > ?3)){order}"
        )
    }

    fn count_versioned(
        &self,
        table: &Table,
        sensor: u32,
        after: Option<(i64, i64)>,
    ) -> Result<u64, ExportError> {
        let (v, id) = after.unwrap_or((-1, -1));
        self.conn
            .query_row(
                &Self::versioned_sql(table, true),
                rusqlite::params![sensor, v, id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(self.err("count rows to export"))
    }

    fn copy_sql(table: &Table, mirror_table: &str) -> String {
        format!(
            "SELECT * FROM {} WHERE sensor_id = ?1 ORDER BY {}",
            sql::ident(mirror_table),
            table.order_by().replace("argus_id", "flow_id")
        )
    }

    /// Rows and digest of a copied table's rows for one sensor, as rendered.
    fn digest(
        &self,
        table: &Table,
        mirror_table: &str,
        sensor: u32,
    ) -> Result<(u64, String), ExportError> {
        let mut stmt = self
            .conn
            .prepare(&Self::copy_sql(table, mirror_table))
            .map_err(self.err("read table"))?;
        if stmt.column_count() != table.cols.len() {
            return Err(ExportError::MirrorShape {
                path: self.path.clone(),
                table: mirror_table.to_string(),
                found: stmt.column_count(),
                expected: table.cols.len(),
            });
        }
        let mut rows = stmt.query([sensor]).map_err(self.err("read table"))?;
        let mut hasher = blake3::Hasher::new();
        let mut n = 0u64;
        let mut line = String::new();
        let mut values = Vec::with_capacity(table.cols.len());
        while let Some(row) = rows.next().map_err(self.err("read table"))? {
            values.clear();
            for i in 0..table.cols.len() {
                values.push(row.get::<_, Value>(i).map_err(self.err("read table"))?);
            }
            line.clear();
            sql::row(&values, table.cols, &mut line);
            line.push('\n');
            hasher.update(line.as_bytes());
            n += 1;
        }
        Ok((n, hasher.finalize().to_hex().to_string()))
    }

    /// Sends the statements of every work item through `send` (false: the
    /// sink is gone, stop). Returns what was produced, and the number of
    /// values adjusted to fit their column.
    pub fn produce(
        &self,
        work: &[Work],
        flavor: Flavor,
        opts: &ExportOptions,
        now: u64,
        send: &mut dyn FnMut(Msg) -> bool,
    ) -> Result<(Vec<Sent>, u64), ExportError> {
        let mut sent = Vec::new();
        let mut adjusted = 0;
        let mut sensors_done = Vec::new();
        for w in work {
            tracing::info!(
                table = w.table.name,
                sensor = w.sensor,
                rows = w.rows,
                "export"
            );
            let rows = match w.table.source {
                Source::Sensor | Source::Flows { .. } | Source::CommunityIds => {
                    if w.table.source == Source::Sensor {
                        sensors_done.push(w.sensor);
                    }
                    self.produce_versioned(w, flavor, opts, now, send, &mut adjusted)?
                }
                Source::Copy { mirror_table } => {
                    self.produce_copy(w, mirror_table, flavor, opts, now, send, &mut adjusted)?
                }
                Source::Seed | Source::State => None,
            };
            match rows {
                Some(rows) => sent.push(Sent {
                    table: w.table.name,
                    sensor: w.sensor,
                    rows,
                }),
                None => return Ok((sent, adjusted)),
            }
        }
        if let Some(access) = &opts.access {
            // Every exported sensor, changed this time or not.
            let all = self.sensors("SELECT sensor_id FROM sensor ORDER BY sensor_id", None)?;
            let ids: Vec<String> = all
                .iter()
                .filter(|s| opts.sensors.is_empty() || opts.sensors.contains(s))
                .map(u32::to_string)
                .collect();
            if !ids.is_empty() {
                let ok = send(Msg {
                    data: vec![(access_update(access, &ids), "sensor")],
                    finish: Vec::new(),
                    rows: 0,
                    serial: true,
                });
                if !ok {
                    return Ok((sent, adjusted));
                }
            }
        }
        Ok((sent, adjusted))
    }

    /// `lumpy_community_id`'s row from (sensor_id, flow_id, src_ip, src_port,
    /// dst_ip, dst_port, ip_proto, src_icmp_seen, packed ICMP type and code)
    /// of `flow` (integer addresses) or `x_flow6` (blobs).
    fn community_row(src: &[Value], out: &mut Vec<Value>) {
        let addr = |v: Option<&Value>| -> Option<std::net::IpAddr> {
            match v? {
                Value::Integer(i) => u32::try_from(*i)
                    .ok()
                    .map(|n| std::net::Ipv4Addr::from(n).into()),
                Value::Blob(b) if b.len() == 4 => <[u8; 4]>::try_from(b.as_slice())
                    .ok()
                    .map(|o| std::net::Ipv4Addr::from(o).into()),
                Value::Blob(b) => <[u8; 16]>::try_from(b.as_slice())
                    .ok()
                    .map(|o| std::net::Ipv6Addr::from(o).into()),
                _ => None,
            }
        };
        let int = |i: usize| src.get(i).and_then(as_int).unwrap_or(0);
        let id = match (addr(src.get(2)), addr(src.get(4))) {
            (Some(s), Some(d)) => crate::community_id::of_columns(
                crate::community_id::DEFAULT_SEED,
                (s, u16::try_from(int(3)).unwrap_or(0)),
                (d, u16::try_from(int(5)).unwrap_or(0)),
                u8::try_from(int(6)).unwrap_or(0),
                (
                    crate::community_id::unpack_icmp(src.get(8).and_then(as_int)),
                    u16::try_from(int(7)).unwrap_or(0),
                ),
            ),
            _ => None,
        };
        out.extend(src.iter().take(2).cloned());
        out.push(id.map_or(Value::Null, Value::Text));
    }

    /// Batches of versioned rows, each with its watermark in one transaction.
    /// None if the sink went away.
    fn produce_versioned(
        &self,
        w: &Work,
        flavor: Flavor,
        opts: &ExportOptions,
        now: u64,
        send: &mut dyn FnMut(Msg) -> bool,
        adjusted: &mut u64,
    ) -> Result<Option<u64>, ExportError> {
        let table = w.table;
        let mut stmt = self
            .conn
            .prepare(&Self::versioned_sql(table, false))
            .map_err(self.err("read rows to export"))?;
        let (v, id) = w.after.unwrap_or((-1, -1));
        let mut rows = stmt
            .query(rusqlite::params![w.sensor, v, id])
            .map_err(self.err("read rows to export"))?;
        let head = sql::insert_head(table);
        let tail = match table.source {
            // The per-node columns are the operator's (see Access), never the mirror's.
            Source::Sensor => sql::upsert_tail(table, &["access_via", "login", "passwd"]),
            _ => sql::upsert_tail(table, &[]),
        };
        let argus = matches!(table.source, Source::Flows { argus: true, .. });
        let width = rows.as_ref().map(|s| s.column_count()).unwrap_or(0);
        let mut batch = String::with_capacity(opts.batch_rows * 200);
        let mut in_batch = 0usize;
        let mut total = 0u64;
        let mut last = (0i64, 0i64);
        let mut src = Vec::with_capacity(width);
        let mut out = Vec::with_capacity(table.cols.len());
        loop {
            let row = rows.next().map_err(self.err("read rows to export"))?;
            if let Some(row) = row {
                src.clear();
                for i in 0..width {
                    src.push(
                        row.get::<_, Value>(i)
                            .map_err(self.err("read rows to export"))?,
                    );
                }
                // Column 0 is the version, then the mirror row.
                let version = as_int(&src[0]).unwrap_or(0);
                // The row id: sensor_id for sensor rows, flow_id for flows.
                let id_col = if table.source == Source::Sensor { 1 } else { 2 };
                let row_id = as_int(&src[id_col]).unwrap_or(0);
                last = (version, row_id);
                out.clear();
                match table.source {
                    Source::Sensor => {
                        out.extend_from_slice(&src[1..12]);
                        let via = opts.access.as_ref().map(Access::via_column).unwrap_or(0);
                        out.push(Value::Integer(via));
                        for s in [
                            opts.access.as_ref().map(|a| a.login.as_str()).unwrap_or(""),
                            opts.access
                                .as_ref()
                                .map(|a| a.passwd.as_str())
                                .unwrap_or(""),
                        ] {
                            out.push(Value::Text(s.to_string()));
                        }
                    }
                    _ if argus => argus_row(&src[1..], &mut out),
                    Source::CommunityIds => Self::community_row(&src[1..], &mut out),
                    _ => out.extend_from_slice(&src[1..]),
                }
                if in_batch == 0 {
                    batch.clear();
                    batch.push_str(&head);
                } else {
                    batch.push(',');
                }
                *adjusted += sql::row(&out, table.cols, &mut batch);
                in_batch += 1;
            }
            let flush = in_batch > 0 && (row.is_none() || in_batch >= opts.batch_rows);
            if flush {
                batch.push_str(&tail);
                let state = state_upsert(table.name, w.sensor, flavor, (last.0, last.1), None, now);
                let sql =
                    std::mem::replace(&mut batch, String::with_capacity(opts.batch_rows * 200));
                if !send(Msg {
                    data: vec![(sql, table.name)],
                    finish: vec![state],
                    rows: in_batch as u64,
                    serial: false,
                }) {
                    return Ok(None);
                }
                total += in_batch as u64;
                in_batch = 0;
            }
            if row.is_none() {
                break;
            }
        }
        Ok(Some(total))
    }

    /// A copied table's rows of one sensor replaced in one transaction.
    #[allow(clippy::too_many_arguments)]
    fn produce_copy(
        &self,
        w: &Work,
        mirror_table: &str,
        flavor: Flavor,
        opts: &ExportOptions,
        now: u64,
        send: &mut dyn FnMut(Msg) -> bool,
        adjusted: &mut u64,
    ) -> Result<Option<u64>, ExportError> {
        let table = w.table;
        let delete = format!(
            "DELETE FROM {} WHERE sensor_id = {}",
            sql::ident(table.name),
            w.sensor
        );
        // One transaction: the sensor's rows of this table are replaced as a whole.
        let mut data = vec![(delete, table.name)];
        let mut stmt = self
            .conn
            .prepare(&Self::copy_sql(table, mirror_table))
            .map_err(self.err("read table"))?;
        let mut rows = stmt.query([w.sensor]).map_err(self.err("read table"))?;
        let head = sql::insert_head(table);
        let mut batch = String::new();
        let mut in_batch = 0usize;
        let mut total = 0u64;
        let mut values = Vec::with_capacity(table.cols.len());
        loop {
            let row = rows.next().map_err(self.err("read table"))?;
            if let Some(row) = row {
                values.clear();
                for i in 0..table.cols.len() {
                    values.push(row.get::<_, Value>(i).map_err(self.err("read table"))?);
                }
                if in_batch == 0 {
                    batch.clear();
                    batch.push_str(&head);
                } else {
                    batch.push(',');
                }
                *adjusted += sql::row(&values, table.cols, &mut batch);
                in_batch += 1;
            }
            if in_batch > 0 && (row.is_none() || in_batch >= opts.batch_rows) {
                data.push((std::mem::take(&mut batch), table.name));
                total += in_batch as u64;
                in_batch = 0;
            }
            if row.is_none() {
                break;
            }
        }
        let state = state_upsert(
            table.name,
            w.sensor,
            flavor,
            (0, 0),
            w.digest.as_deref(),
            now,
        );
        if !send(Msg {
            data,
            finish: vec![state],
            rows: total,
            serial: true,
        }) {
            return Ok(None);
        }
        Ok(Some(total))
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

/// walleye_0_3's argus columns from one mirror flow row (hflow column order).
///
/// argus_dir and argus_status: the mirror's rule (`mirror::argus`).
/// argus_ind: NULL (hflow 1.x's use of it is unknown).
fn argus_row(f: &[Value], out: &mut Vec<Value>) {
    let int = |i: usize| f.get(i).and_then(as_int).unwrap_or(0);
    let count = |i: usize| u64::try_from(int(i)).unwrap_or(0);
    let byte = |i: usize| u8::try_from(int(i)).unwrap_or(0);
    // The mirror's own rule, so the exported argus equals the mirror's argus.
    let status = crate::mirror::argus::status_of(byte(6), count(23), byte(16), byte(26));
    let dir = crate::mirror::argus::direction_of(count(13), count(23));
    let get = |i: usize| f.get(i).cloned().unwrap_or(Value::Null);
    // Columns 32..=37 are the legacy argus columns (local, argus_dir,
    // argus_status, argus_ind, client_os_id, then argus_id, NULL for a
    // derived row): a row a legacy import brought is sent as it was, as the
    // mirror's argus view shows it.
    if matches!(f.get(37), Some(Value::Integer(_))) {
        out.extend([
            get(0),
            get(1),
            get(6),
            get(32),
            get(2),
            get(3),
            get(4),
            get(5),
            get(13),
            get(23),
            get(14),
            get(24),
            get(9),
            Value::Integer(int(11).max(int(21))),
            get(33),
            get(34),
            get(35),
            get(36),
        ]);
        return;
    }
    out.extend([
        get(0),                               // sensor_id
        get(1),                               // argus_id = flow_id
        get(6),                               // ip_proto
        get(31),                              // local = is_local
        get(2),                               // src_ip
        get(3),                               // dst_ip
        get(4),                               // src_port
        get(5),                               // dst_port
        get(13),                              // src_pkts
        get(23),                              // dst_pkts
        get(14),                              // src_bytes
        get(24),                              // dst_bytes
        get(9),                               // start_sec = src_start_sec
        Value::Integer(int(11).max(int(21))), // end_sec = GREATEST(src_end_sec, dst_end_sec)
        Value::Text(dir.to_string()),         // argus_dir
        Value::Text(status.to_string()),      // argus_status
        Value::Null,                          // argus_ind
        get(29),                              // client_os_id
    ]);
}

/// The watermark row of one (table, sensor), set (not maximised): a dump
/// loaded over a newer export sets it back, and the next export re-sends.
fn state_upsert(
    table: &str,
    sensor: u32,
    flavor: Flavor,
    (version, row_id): (i64, i64),
    digest: Option<&str>,
    now: u64,
) -> String {
    let mut s = String::from(
        "INSERT INTO `lumpy_export_state` (`table_name`, `sensor_id`, `flavor`, `version`, `row_id`, `digest`, `updated_sec`) VALUES (",
    );
    sql::quote(table, &mut s);
    s.push_str(&format!(", {sensor}, "));
    sql::quote(flavor.name(), &mut s);
    s.push_str(&format!(", {}, {}, ", version.max(0), row_id.max(0)));
    match digest {
        Some(d) => sql::quote(d, &mut s),
        None => s.push_str("NULL"),
    }
    s.push_str(&format!(
        ", {now}) ON DUPLICATE KEY UPDATE `flavor` = VALUES(`flavor`), `version` = VALUES(`version`), \
         `row_id` = VALUES(`row_id`), `digest` = VALUES(`digest`), `updated_sec` = VALUES(`updated_sec`)"
    ));
    s
}

/// Sets the per-node columns the operator asked for; changes no row that
/// already holds them.
fn access_update(access: &Access, sensors: &[String]) -> String {
    let mut s = format!(
        "UPDATE `sensor` SET `access_via` = {}, `login` = ",
        access.via_column()
    );
    let mut login = String::new();
    sql::quote(&access.login, &mut login);
    let mut passwd = String::new();
    sql::quote(&access.passwd, &mut passwd);
    s.push_str(&login);
    s.push_str(", `passwd` = ");
    s.push_str(&passwd);
    s.push_str(&format!(
        " WHERE `sensor_id` IN ({}) AND NOT (`access_via` = {} AND `login` <=> {login} AND `passwd` <=> {passwd})",
        sensors.join(", "),
        access.via_column()
    ));
    s
}
