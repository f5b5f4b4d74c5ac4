//! Reading a legacy hflow or walleye_0_3 MySQL/MariaDB database: which schema
//! it has, one sensor's rows of each table in primary-key order and in pages
//! (keyset pagination, so millions of rows never sit in memory and a page is
//! resumable from its last key), and each row turned into a record.
//!
//! Only reads (SELECT); never writes to the legacy database, never touches
//! the store or the mirror.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::LegacyError;
use crate::records::{
    ArgusRecord, CommandRecord, FlowDirection, FlowRecord, IdsRecord, IdsSigRecord, OsRecord,
    ProcessRecord, ProcessToComRecord, ProcessTreeRecord, Record, SensorRecord, SysIoKind,
    SysIoRecord, SysSocketRecord,
};

/// The two legacy database generations (walleye-hflow.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// hflow2's `hflow` database: flows in `flow`, `flow_id` references.
    Hflow,
    /// roo 1.x: flows in `argus`, `argus_id` references.
    Walleye03,
}

impl Schema {
    pub fn name(self) -> &'static str {
        match self {
            Schema::Hflow => "hflow",
            Schema::Walleye03 => "walleye_0_3",
        }
    }
}

/// The id space a table's ids live in, for collision checks and reservations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdSpace {
    Flow,
    Process,
    Command,
    Read,
    Write,
    Open,
    Socket,
    /// No native counterpart (os, ids, ids_sig, edges).
    None,
}

/// Columns with their defaults.
type Cols = &'static [(&'static str, &'static str)];

/// One legacy table: its key (after `sensor_id`, in primary-key order), its
/// other columns, and what a row becomes.
pub struct TableSpec {
    pub name: &'static str,
    pub key: &'static [&'static str],
    /// Non-key columns with the value to read when a database lacks one.
    pub cols: &'static [(&'static str, &'static str)],
    pub id_space: IdSpace,
    /// The column holding the id of `id_space` (for MIN/MAX queries).
    pub id_col: &'static str,
}

const FLOW_COLS: &[(&str, &str)] = &[
    ("src_ip", "0"),
    ("dst_ip", "0"),
    ("src_port", "0"),
    ("dst_port", "0"),
    ("ip_proto", "0"),
    ("marker_flags", "0"),
    ("src_start_sec", "0"),
    ("src_start_msec", "0"),
    ("src_end_sec", "0"),
    ("src_end_msec", "0"),
    ("src_packets", "0"),
    ("src_bytes", "0"),
    ("src_ip_flags", "0"),
    ("src_tcp_flags", "0"),
    ("src_icmp_packets", "0"),
    ("src_icmp_seen", "0"),
    ("dst_start_sec", "0"),
    ("dst_start_msec", "0"),
    ("dst_end_sec", "0"),
    ("dst_end_msec", "0"),
    ("dst_packets", "0"),
    ("dst_bytes", "0"),
    ("dst_ip_flags", "0"),
    ("dst_tcp_flags", "0"),
    ("dst_icmp_packets", "0"),
    ("dst_icmp_seen", "0"),
    ("client_os_id", "0"),
    ("server_os_id", "0"),
    ("is_local", "0"),
];

const ARGUS_COLS: &[(&str, &str)] = &[
    ("ip_proto", "0"),
    ("local", "NULL"),
    ("src_ip", "0"),
    ("dst_ip", "0"),
    ("src_port", "0"),
    ("dst_port", "0"),
    ("src_pkts", "0"),
    ("dst_pkts", "0"),
    ("src_bytes", "0"),
    ("dst_bytes", "0"),
    ("start_sec", "0"),
    ("end_sec", "0"),
    ("argus_dir", "NULL"),
    ("argus_status", "NULL"),
    ("argus_ind", "NULL"),
    ("client_os_id", "NULL"),
];

const SYS_IO_COLS: &[(&str, &str)] = &[
    ("uid", "0"),
    ("pcap_time", "NULL"),
    ("time", "0"),
    ("counter", "0"),
    ("filed", "0"),
    ("inode", "0"),
    ("length", "0"),
    ("data", "NULL"),
];

/// The tables imported, in import order (`ids` last: its flow ids then name
/// rows that are already there).
pub fn tables(schema: Schema) -> Vec<TableSpec> {
    let (flow_table, flow_key, flow_cols, ref_col) = match schema {
        Schema::Hflow => ("flow", "flow_id", FLOW_COLS, "flow_id"),
        Schema::Walleye03 => ("argus", "argus_id", ARGUS_COLS, "argus_id"),
    };
    let t = |name, key, cols, id_space, id_col| TableSpec {
        name,
        key,
        cols,
        id_space,
        id_col,
    };
    let (ids_cols, sock_cols): (Cols, Cols) = if ref_col == "flow_id" {
        (
            &[
                ("sig_id", "0"),
                ("flow_id", "0"),
                ("sec", "0"),
                ("usec", "0"),
                ("priority", "10"),
                ("sig_rev", "10"),
                ("sig_gen", "0"),
                ("classification", "0"),
                ("type", "NULL"),
            ],
            &[
                ("process_id", "0"),
                ("pcap_time", "NULL"),
                ("time", "0"),
                ("uid", "0"),
                ("counter", "0"),
                ("filed", "0"),
                ("inode", "0"),
                ("flow_id", "0"),
                ("call", "0"),
                ("type", "NULL"),
            ],
        )
    } else {
        (
            &[
                ("sig_id", "0"),
                ("argus_id", "0"),
                ("sec", "0"),
                ("usec", "0"),
                ("priority", "10"),
                ("sig_rev", "10"),
                ("sig_gen", "1"),
                ("classification", "0"),
                ("type", "NULL"),
            ],
            &[
                ("process_id", "0"),
                ("pcap_time", "NULL"),
                ("time", "0"),
                ("uid", "0"),
                ("counter", "0"),
                ("filed", "0"),
                ("inode", "0"),
                ("argus_id", "0"),
                ("call", "0"),
                ("type", "NULL"),
            ],
        )
    };
    let flow_key: &'static [&'static str] = if flow_key == "flow_id" {
        &["flow_id"]
    } else {
        &["argus_id"]
    };
    let mut out = vec![
        t(
            "os",
            &["os_id"],
            &[("genre", "NULL"), ("detail", "NULL")],
            IdSpace::None,
            "os_id",
        ),
        t(
            "ids_sig",
            &["ids_sig_gen", "ids_sig_id"],
            &[("sig_name", "NULL"), ("reference", "NULL")],
            IdSpace::None,
            "ids_sig_id",
        ),
        t(flow_table, flow_key, flow_cols, IdSpace::Flow, flow_key[0]),
        t(
            "command",
            &["command_id"],
            &[("name", "''")],
            IdSpace::Command,
            "command_id",
        ),
        t(
            "process",
            &["process_id"],
            &[
                ("src_ip", "0"),
                ("time_min", "0"),
                ("time_max", "0"),
                ("pcap_time_min", "0"),
                ("pcap_time_max", "0"),
                ("pid", "0"),
            ],
            IdSpace::Process,
            "process_id",
        ),
        t(
            "process_tree",
            &["child_process", "parent_process"],
            &[],
            IdSpace::None,
            "child_process",
        ),
        t(
            "process_to_com",
            &["command_id", "process_id"],
            &[],
            IdSpace::None,
            "command_id",
        ),
        t(
            "sys_read",
            &["process_id", "sys_read_id"],
            SYS_IO_COLS,
            IdSpace::Read,
            "sys_read_id",
        ),
        t(
            "sys_write",
            &["process_id", "sys_write_id"],
            SYS_IO_COLS,
            IdSpace::Write,
            "sys_write_id",
        ),
        t(
            "sys_open",
            &["sys_open_id"],
            &[
                ("process_id", "0"),
                ("uid", "NULL"),
                ("pcap_time", "NULL"),
                ("time", "NULL"),
                ("counter", "0"),
                ("filed", "0"),
                ("inode", "0"),
                ("length", "0"),
                ("filename", "NULL"),
            ],
            IdSpace::Open,
            "sys_open_id",
        ),
        t(
            "sys_socket",
            &["sys_socket_id"],
            sock_cols,
            IdSpace::Socket,
            "sys_socket_id",
        ),
        t("ids", &["ids_id"], ids_cols, IdSpace::None, "ids_id"),
    ];
    if schema == Schema::Hflow {
        // lumpy's own export puts IPv6 and mixed-family flows there; they
        // share the flow id space.
        let at = out
            .iter()
            .position(|x| x.name == "flow")
            .map_or(0, |i| i + 1);
        out.insert(
            at,
            t(
                "lumpy_flow6",
                &["flow_id"],
                FLOW_COLS,
                IdSpace::Flow,
                "flow_id",
            ),
        );
    }
    out
}

/// `spec` fitted to the database: an `ids_sig` without `ids_sig_gen` (roo
/// 1.x kept snort's rule signatures only) is keyed by `ids_sig_id`, with
/// generator 1, the generator of sid-msg.map's rules.
pub fn fit(spec: TableSpec, catalog: &Catalog) -> TableSpec {
    if spec.name == "ids_sig" && !catalog.has("ids_sig", "ids_sig_gen") {
        return TableSpec {
            key: &["ids_sig_id"],
            cols: &[
                ("ids_sig_gen", "1"),
                ("sig_name", "NULL"),
                ("reference", "NULL"),
            ],
            ..spec
        };
    }
    spec
}

/// The columns of every table of the connected database.
pub struct Catalog {
    pub columns: BTreeMap<String, BTreeSet<String>>,
}

impl Catalog {
    pub async fn read(conn: &mut Conn, db: &str) -> Result<Catalog, LegacyError> {
        let rows: Vec<(String, String)> = conn
            .query(
                "SELECT LOWER(TABLE_NAME), LOWER(COLUMN_NAME) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE()",
            )
            .await
            .map_err(|e| LegacyError::query(db, "information_schema.COLUMNS", e))?;
        let mut columns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (t, c) in rows {
            columns.entry(t).or_default().insert(c);
        }
        Ok(Catalog { columns })
    }

    pub fn has(&self, table: &str, column: &str) -> bool {
        self.columns.get(table).is_some_and(|c| c.contains(column))
    }

    /// Which generation the database is, or why it is neither.
    pub fn schema(&self, db: &str) -> Result<Schema, LegacyError> {
        let sensor = self.has("sensor", "sensor_id");
        if sensor && self.has("flow", "flow_id") && self.has("flow", "src_start_sec") {
            return Ok(Schema::Hflow);
        }
        if sensor && self.has("argus", "argus_id") && self.has("argus", "start_sec") {
            return Ok(Schema::Walleye03);
        }
        let found: Vec<&str> = self.columns.keys().map(String::as_str).collect();
        Err(LegacyError::NotLegacy {
            db: db.to_string(),
            found: match found.len() {
                0 => "no tables".into(),
                n if n > 12 => format!("{}, ... ({n} tables)", found[..12].join(", ")),
                _ => found.join(", "),
            },
        })
    }
}

/// One page of a table: records and the key of its last row.
pub struct Page {
    pub records: Vec<Record>,
    pub rows: u64,
    pub last_key: Option<Vec<u64>>,
}

/// `WHERE sensor_id = ? [AND key > after]`, the key compared as a tuple and
/// written out so the primary key index serves it.
fn where_after(spec: &TableSpec, after: Option<&[u64]>) -> String {
    let mut sql = String::from(" WHERE sensor_id = ?");
    if let Some(after) = after {
        let mut alts = Vec::new();
        for i in 0..spec.key.len().min(after.len()) {
            let mut conj: Vec<String> = (0..i)
                .map(|j| format!("`{}` = {}", spec.key[j], after[j]))
                .collect();
            conj.push(format!("`{}` > {}", spec.key[i], after[i]));
            alts.push(format!("({})", conj.join(" AND ")));
        }
        if !alts.is_empty() {
            sql.push_str(&format!(" AND ({})", alts.join(" OR ")));
        }
    }
    sql
}

/// SELECT of one page after `after` (exclusive), in key order.
fn page_sql(spec: &TableSpec, catalog: &Catalog, after: Option<&[u64]>, limit: usize) -> String {
    let mut select: Vec<String> = spec.key.iter().map(|k| format!("`{k}`")).collect();
    for (c, default) in spec.cols {
        if catalog.has(spec.name, c) {
            select.push(format!("`{c}`"));
        } else {
            select.push(format!("{default} AS `{c}`"));
        }
    }
    let order: Vec<String> = spec.key.iter().map(|k| format!("`{k}`")).collect();
    format!(
        "SELECT {} FROM `{}`{} ORDER BY {} LIMIT {limit}",
        select.join(", "),
        spec.name,
        where_after(spec, after),
        order.join(", ")
    )
}

/// Reads one page of `spec` for `sensor_id`.
pub async fn read_page(
    conn: &mut Conn,
    db: &str,
    spec: &TableSpec,
    catalog: &Catalog,
    sensor_id: u32,
    after: Option<&[u64]>,
    limit: usize,
) -> Result<Page, LegacyError> {
    let sql = page_sql(spec, catalog, after, limit);
    let rows: Vec<Row> = conn
        .exec(sql, (sensor_id,))
        .await
        .map_err(|e| LegacyError::query(db, spec.name, e))?;
    let mut page = Page {
        records: Vec::with_capacity(rows.len()),
        rows: rows.len() as u64,
        last_key: None,
    };
    for row in rows {
        let mut r = RowReader {
            db,
            table: spec.name,
            row: &row,
            at: 0,
            key: Vec::new(),
            nulls: Vec::new(),
        };
        let mut key = Vec::with_capacity(spec.key.len());
        for k in spec.key {
            let v = r.u64(k)?;
            key.push(v);
        }
        r.key = key.clone();
        page.records
            .push(to_record(spec.name, sensor_id, &key, &mut r)?);
        page.last_key = Some(key);
    }
    Ok(page)
}

/// Counts `sensor_id`'s rows of `spec` after `after`.
pub async fn count_after(
    conn: &mut Conn,
    db: &str,
    spec: &TableSpec,
    sensor_id: u32,
    after: Option<&[u64]>,
) -> Result<u64, LegacyError> {
    let sql = format!(
        "SELECT COUNT(*) FROM `{}`{}",
        spec.name,
        where_after(spec, after)
    );
    let n: Option<u64> = conn
        .exec_first(sql, (sensor_id,))
        .await
        .map_err(|e| LegacyError::query(db, spec.name, e))?;
    Ok(n.unwrap_or(0))
}

/// MAX of the table's id column for `sensor_id` (0 when no rows).
pub async fn max_id(
    conn: &mut Conn,
    db: &str,
    spec: &TableSpec,
    sensor_id: u32,
) -> Result<u32, LegacyError> {
    let sql = format!(
        "SELECT MAX(`{}`) FROM `{}` WHERE sensor_id = ?",
        spec.id_col, spec.name
    );
    let v: Option<Option<u64>> = conn
        .exec_first(sql, (sensor_id,))
        .await
        .map_err(|e| LegacyError::query(db, spec.name, e))?;
    Ok(v.flatten()
        .map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX)))
}

/// The lowest id above `above` of the table's id column for `sensor_id`.
pub async fn min_id_above(
    conn: &mut Conn,
    db: &str,
    spec: &TableSpec,
    sensor_id: u32,
    above: u32,
) -> Result<Option<u32>, LegacyError> {
    let sql = format!(
        "SELECT MIN(`{c}`) FROM `{t}` WHERE sensor_id = ? AND `{c}` > ?",
        c = spec.id_col,
        t = spec.name
    );
    let v: Option<Option<u64>> = conn
        .exec_first(sql, (sensor_id, above))
        .await
        .map_err(|e| LegacyError::query(db, spec.name, e))?;
    Ok(v.flatten().map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
}

/// The sensor's row, or None when the database has no such sensor.
pub async fn sensor_row(
    conn: &mut Conn,
    db: &str,
    catalog: &Catalog,
    sensor_id: u32,
) -> Result<Option<SensorRecord>, LegacyError> {
    let cols = [
        ("install_sec", "0"),
        ("last_upd_sec", "0"),
        ("state", "NULL"),
        ("name", "NULL"),
        ("timezone", "NULL"),
        ("country_code", "NULL"),
        ("latitude", "NULL"),
        ("longitude", "NULL"),
        ("notes", "NULL"),
        ("network_type", "NULL"),
    ];
    let select: Vec<String> = cols
        .iter()
        .map(|(c, d)| {
            if catalog.has("sensor", c) {
                format!("`{c}`")
            } else {
                format!("{d} AS `{c}`")
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM sensor WHERE sensor_id = ?",
        select.join(", ")
    );
    let row: Option<Row> = conn
        .exec_first(sql, (sensor_id,))
        .await
        .map_err(|e| LegacyError::query(db, "sensor", e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut r = RowReader {
        db,
        table: "sensor",
        row: &row,
        at: 0,
        key: vec![u64::from(sensor_id)],
        nulls: Vec::new(),
    };
    Ok(Some(SensorRecord {
        sensor_id,
        version: 0,
        install_sec: r.u32("install_sec")?,
        last_upd_sec: r.u32("last_upd_sec")?,
        state: r.text("state")?.unwrap_or_default(),
        name: r.text("name")?.unwrap_or_default(),
        timezone: r.opt_i32("timezone")?.unwrap_or(0),
        country_code: r.text("country_code")?.unwrap_or_default(),
        latitude: r.opt_i32("latitude")?.unwrap_or(0),
        longitude: r.opt_i32("longitude")?.unwrap_or(0),
        notes: r.text("notes")?.unwrap_or_default(),
        network_type: r.text("network_type")?.unwrap_or_default(),
        ..SensorRecord::default()
    }))
}

/// Up to 20 sensor ids the database does have (for the error message).
pub async fn sensor_ids(conn: &mut Conn, db: &str) -> Result<Vec<u32>, LegacyError> {
    conn.query("SELECT sensor_id FROM sensor ORDER BY sensor_id LIMIT 20")
        .await
        .map_err(|e| LegacyError::query(db, "sensor", e))
}

/// Reads a row's columns in order, with errors naming table, key and column.
struct RowReader<'a> {
    db: &'a str,
    table: &'static str,
    row: &'a Row,
    at: usize,
    key: Vec<u64>,
    /// Columns read as NULL by `u32` (records have no NULL; see `legacy_null`).
    nulls: Vec<String>,
}

impl RowReader<'_> {
    fn next(&mut self) -> Value {
        let v = self.row.as_ref(self.at).cloned().unwrap_or(Value::NULL);
        self.at += 1;
        v
    }

    fn bad(&self, column: &str, value: &Value, expected: &str) -> LegacyError {
        LegacyError::BadValue(Box::new(super::BadValue {
            db: self.db.to_string(),
            table: self.table,
            key: format!("{:?}", self.key),
            column: column.to_string(),
            value: format!("{value:?}"),
            expected: expected.to_string(),
        }))
    }

    fn opt_int(&mut self, column: &str) -> Result<Option<i128>, LegacyError> {
        let v = self.next();
        let n = match &v {
            Value::NULL => return Ok(None),
            Value::Int(i) => i128::from(*i),
            Value::UInt(u) => i128::from(*u),
            Value::Bytes(b) => match std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()) {
                Some(n) => n,
                None => return Err(self.bad(column, &v, "an integer")),
            },
            _ => return Err(self.bad(column, &v, "an integer")),
        };
        Ok(Some(n))
    }

    fn ranged<T: TryFrom<i128>>(
        &mut self,
        column: &str,
        expected: &str,
    ) -> Result<Option<T>, LegacyError> {
        let at = self.at;
        match self.opt_int(column)? {
            None => Ok(None),
            Some(n) => T::try_from(n).map(Some).map_err(|_| {
                let v = self.row.as_ref(at).cloned().unwrap_or(Value::NULL);
                self.bad(column, &v, expected)
            }),
        }
    }

    fn opt_u32(&mut self, column: &str) -> Result<Option<u32>, LegacyError> {
        self.ranged(column, "0..=4294967295")
    }

    /// NULL reads as 0 (the record has no NULL).
    fn u32(&mut self, column: &str) -> Result<u32, LegacyError> {
        let v = self.opt_u32(column)?;
        if v.is_none() {
            self.nulls.push(column.to_string());
        }
        Ok(v.unwrap_or(0))
    }

    /// The nullable columns (of `nullable`) that were NULL.
    fn nulls_of(&self, nullable: &[&str]) -> Vec<String> {
        self.nulls
            .iter()
            .filter(|c| nullable.contains(&c.as_str()))
            .cloned()
            .collect()
    }

    fn u64(&mut self, column: &str) -> Result<u64, LegacyError> {
        Ok(self.ranged(column, "a non-negative integer")?.unwrap_or(0))
    }

    fn u16(&mut self, column: &str) -> Result<u16, LegacyError> {
        Ok(self.ranged(column, "0..=65535")?.unwrap_or(0))
    }

    fn u8(&mut self, column: &str) -> Result<u8, LegacyError> {
        Ok(self.ranged(column, "0..=255")?.unwrap_or(0))
    }

    fn opt_i32(&mut self, column: &str) -> Result<Option<i32>, LegacyError> {
        self.ranged(column, "a signed 32-bit integer")
    }

    fn i32(&mut self, column: &str) -> Result<i32, LegacyError> {
        Ok(self.opt_i32(column)?.unwrap_or(0))
    }

    fn ip(&mut self, column: &str) -> Result<Ipv4Addr, LegacyError> {
        Ok(Ipv4Addr::from(self.u32(column)?))
    }

    /// An address stored as its octets in network order (lumpy_flow6).
    fn ip_octets(&mut self, column: &str) -> Result<IpAddr, LegacyError> {
        let v = self.next();
        let ip = match &v {
            Value::Bytes(b) => match b.len() {
                4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                _ => None,
            },
            _ => None,
        };
        ip.ok_or_else(|| self.bad(column, &v, "4 or 16 address octets"))
    }

    fn bytes(&mut self, column: &str) -> Result<Option<Vec<u8>>, LegacyError> {
        let v = self.next();
        match v {
            Value::NULL => Ok(None),
            Value::Bytes(b) => Ok(Some(b)),
            Value::Int(i) => Ok(Some(i.to_string().into_bytes())),
            Value::UInt(u) => Ok(Some(u.to_string().into_bytes())),
            other => Err(self.bad(column, &other, "text or bytes")),
        }
    }

    fn text(&mut self, column: &str) -> Result<Option<String>, LegacyError> {
        Ok(self
            .bytes(column)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}

/// The ten `src_*` or `dst_*` counters of a flow row.
fn dir(r: &mut RowReader<'_>, side: &str) -> Result<FlowDirection, LegacyError> {
    let c = |name: &str| format!("{side}_{name}");
    Ok(FlowDirection {
        start_sec: r.u32(&c("start_sec"))?,
        start_msec: r.u16(&c("start_msec"))?,
        end_sec: r.u32(&c("end_sec"))?,
        end_msec: r.u16(&c("end_msec"))?,
        packets: r.u64(&c("packets"))?,
        bytes: r.u64(&c("bytes"))?,
        ip_flags: r.u8(&c("ip_flags"))?,
        tcp_flags: r.u8(&c("tcp_flags"))?,
        icmp_packets: r.u32(&c("icmp_packets"))?,
        icmp_seen: r.u16(&c("icmp_seen"))?,
    })
}

fn key_u32(r: &RowReader<'_>, key: &[u64], i: usize) -> Result<u32, LegacyError> {
    let v = key.get(i).copied().unwrap_or(0);
    u32::try_from(v).map_err(|_| r.bad("key", &Value::UInt(v), "0..=4294967295"))
}

/// One row (its key already read) as a record.
fn to_record(
    table: &str,
    sensor_id: u32,
    key: &[u64],
    r: &mut RowReader<'_>,
) -> Result<Record, LegacyError> {
    let k0 = key_u32(r, key, 0)?;
    Ok(match table {
        "os" => Record::Os(OsRecord {
            sensor_id,
            os_id: k0,
            genre: r.text("genre")?,
            detail: r.text("detail")?,
        }),
        // Keyed by (gen, id); by id alone where the table has no generator
        // column (walleye_0_3), whose gen then reads as 1 (see `tables`).
        "ids_sig" if key.len() == 1 => Record::IdsSig(IdsSigRecord {
            sensor_id,
            ids_sig_id: k0,
            ids_sig_gen: r.u8("ids_sig_gen")?,
            sig_name: r.text("sig_name")?,
            reference: r.text("reference")?,
        }),
        "ids_sig" => Record::IdsSig(IdsSigRecord {
            sensor_id,
            ids_sig_gen: u8::try_from(k0)
                .map_err(|_| r.bad("ids_sig_gen", &Value::UInt(key[0]), "0..=255"))?,
            ids_sig_id: key_u32(r, key, 1)?,
            sig_name: r.text("sig_name")?,
            reference: r.text("reference")?,
        }),
        "flow" | "lumpy_flow6" => {
            let (src_ip, dst_ip): (IpAddr, IpAddr) = if table == "flow" {
                (r.ip("src_ip")?.into(), r.ip("dst_ip")?.into())
            } else {
                (r.ip_octets("src_ip")?, r.ip_octets("dst_ip")?)
            };
            let src_port = r.u16("src_port")?;
            let dst_port = r.u16("dst_port")?;
            let ip_proto = r.u8("ip_proto")?;
            let marker_flags = r.u32("marker_flags")?;
            let src = dir(r, "src")?;
            let dst = dir(r, "dst")?;
            Record::Flow(FlowRecord {
                sensor_id,
                flow_id: k0,
                version: 0,
                src_ip,
                dst_ip,
                src_port,
                dst_port,
                ip_proto,
                src,
                dst,
                client_os_id: r.u32("client_os_id")?,
                server_os_id: r.u32("server_os_id")?,
                is_local: r.u8("is_local")? != 0,
                marker_flags,
                closed: true,
                evicted: false,
                icmp_first: None,
            })
        }
        "argus" => Record::Argus(ArgusRecord {
            sensor_id,
            argus_id: k0,
            ip_proto: r.u8("ip_proto")?,
            local: r.ranged::<u8>("local", "0 or 1")?.map(|v| v != 0),
            src_ip: r.ip("src_ip")?,
            dst_ip: r.ip("dst_ip")?,
            src_port: r.u16("src_port")?,
            dst_port: r.u16("dst_port")?,
            src_pkts: r.u32("src_pkts")?,
            dst_pkts: r.u32("dst_pkts")?,
            src_bytes: r.u32("src_bytes")?,
            dst_bytes: r.u32("dst_bytes")?,
            start_sec: r.u32("start_sec")?,
            end_sec: r.u32("end_sec")?,
            argus_dir: r.text("argus_dir")?,
            argus_status: r.text("argus_status")?,
            argus_ind: r.text("argus_ind")?,
            client_os_id: r.opt_u32("client_os_id")?,
        }),
        "command" => Record::Command(CommandRecord {
            sensor_id,
            command_id: k0,
            name: r.text("name")?.unwrap_or_default(),
        }),
        "process" => Record::Process(ProcessRecord {
            sensor_id,
            process_id: k0,
            version: 0,
            src_ip: r.ip("src_ip")?,
            time_min: r.u32("time_min")?,
            time_max: r.u32("time_max")?,
            pcap_time_min: r.u32("pcap_time_min")?,
            pcap_time_max: r.u32("pcap_time_max")?,
            pid: r.u32("pid")?,
            ppid: None,
            fork: None,
        }),
        "process_tree" => Record::ProcessTree(ProcessTreeRecord {
            sensor_id,
            child_process: k0,
            parent_process: key_u32(r, key, 1)?,
        }),
        "process_to_com" => Record::ProcessToCom(ProcessToComRecord {
            sensor_id,
            command_id: k0,
            process_id: key_u32(r, key, 1)?,
        }),
        "sys_read" | "sys_write" => Record::SysIo(SysIoRecord {
            sensor_id,
            kind: if table == "sys_read" {
                SysIoKind::Read
            } else {
                SysIoKind::Write
            },
            process_id: k0,
            id: key_u32(r, key, 1)?,
            uid: r.u32("uid")?,
            pcap_time: r.u32("pcap_time")?,
            time: r.u32("time")?,
            counter: r.u32("counter")?,
            filed: r.u32("filed")?,
            inode: r.u32("inode")?,
            length: r.u32("length")?,
            data: r.bytes("data")?.unwrap_or_default(),
            truncated: false,
            legacy_null: r.nulls_of(&["pcap_time"]),
            command_id: None,
        }),
        "sys_open" => {
            let process_id = r.u32("process_id")?;
            let uid = r.u32("uid")?;
            let pcap_time = r.u32("pcap_time")?;
            let time = r.u32("time")?;
            let counter = r.u32("counter")?;
            let filed = r.u32("filed")?;
            let inode = r.u32("inode")?;
            let length = r.u32("length")?;
            Record::SysIo(SysIoRecord {
                sensor_id,
                kind: SysIoKind::Open,
                id: k0,
                process_id,
                uid,
                pcap_time,
                time,
                counter,
                filed,
                inode,
                length,
                data: r.bytes("filename")?.unwrap_or_default(),
                truncated: false,
                legacy_null: r.nulls_of(&["uid", "pcap_time", "time"]),
                command_id: None,
            })
        }
        "sys_socket" => Record::SysSocket(SysSocketRecord {
            sensor_id,
            sys_socket_id: k0,
            process_id: r.u32("process_id")?,
            pcap_time: r.u32("pcap_time")?,
            time: r.u32("time")?,
            uid: r.u32("uid")?,
            counter: r.u32("counter")?,
            filed: r.u32("filed")?,
            inode: r.u32("inode")?,
            truncated: false,
            legacy_flow_id: Some(r.u32("flow_id")?),
            call: r.u16("call")?,
            legacy_type: r.text("type")?,
            proto: 0,
            local_ip: Ipv4Addr::UNSPECIFIED,
            local_port: 0,
            remote_ip: Ipv4Addr::UNSPECIFIED,
            remote_port: 0,
            legacy_null: r.nulls_of(&["pcap_time"]),
        }),
        "ids" => Record::Ids(IdsRecord {
            sensor_id,
            ids_id: k0,
            sig_id: r.i32("sig_id")?,
            flow_id: r.i32("flow_id")?,
            sec: r.i32("sec")?,
            usec: r.i32("usec")?,
            priority: r.i32("priority")?,
            sig_rev: r.i32("sig_rev")?,
            sig_gen: r.i32("sig_gen")?,
            classification: r.i32("classification")?,
            kind: r.text("type")?,
        }),
        other => {
            return Err(LegacyError::Internal(format!(
                "no reader for table {other}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_continue_after_a_composite_key() {
        let catalog = Catalog {
            columns: BTreeMap::new(),
        };
        let specs = tables(Schema::Hflow);
        let read = specs.iter().find(|t| t.name == "sys_read").unwrap();
        let sql = page_sql(read, &catalog, Some(&[3, 7]), 10);
        assert!(
            sql.contains("((`process_id` > 3) OR (`process_id` = 3 AND `sys_read_id` > 7))"),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY `process_id`, `sys_read_id` LIMIT 10"));
        // A column the database lacks reads as its default.
        assert!(sql.contains("NULL AS `data`"));
    }
}
