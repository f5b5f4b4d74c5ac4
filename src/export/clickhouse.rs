//! `export clickhouse`: every record table of the node's mirror into
//! ClickHouse tables made for it, through ClickHouse's HTTP interface
//! (reqwest), incrementally and idempotently.
//!
//! Owns: the ClickHouse schema (`CH_TABLES`, DDL), the RowBinary encoding of
//! mirror rows, the watermarks in the target's `lumpy_export_state`, and the
//! HTTP requests. It READS the mirror only (through `source::MirrorSource`,
//! one read-only snapshot) and WRITES only to the ClickHouse server; it must
//! not touch the segment store, `index.redb` or the MySQL export's tables.
//!
//! ClickHouse has no transactions, so idempotence comes from the engine:
//! every table is a `ReplacingMergeTree(_version)` keyed by the mirror's
//! primary key, and a batch is inserted BEFORE its watermark. A kill -9
//! between the two re-sends that batch on the next run, and the re-sent rows
//! (same key, same or newer `_version`) replace the older ones: reads with
//! `FINAL` (or after `OPTIMIZE TABLE ... FINAL`) never see a duplicate.
//! - Flows (v4 and v6 in one `flows` table, addresses as IPv4-mapped
//!   FixedString(16)) and sensors carry the origin's row version, sent in
//!   (version, id) order after the watermark, as the MySQL export does.
//! - The other tables (os, ids, sebek tables, ...) have no row versions in
//!   the mirror: a sensor's rows are re-sent with a new export generation as
//!   `_version` when their digest changed, then the older generation of that
//!   sensor is deleted (`ALTER TABLE ... DELETE`, a mutation), then the
//!   watermark (the digest) is written.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;

use super::schema::{HFLOW, Table, Ty};
use super::source::{Mark, Marks, MirrorSource};
use super::{ExportError, ExportStats, Sent};

/// How a ClickHouse table is filled from the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChKind {
    /// `sensor`, by `x_sensor_version`.
    Sensor,
    /// `flow` and `x_flow6`, by `x_flow_version`.
    Flows,
    /// The mirror table of the same name, replaced per sensor on change.
    Copy,
}

/// One ClickHouse table.
#[derive(Debug, Clone, Copy)]
pub struct ChTable {
    pub name: &'static str,
    pub kind: ChKind,
    /// The ORDER BY key: the mirror's primary key (the replacing key),
    /// sensor first where the filters start.
    pub order_by: &'static str,
    /// `PARTITION BY` expression (by month) for the big tables.
    pub partition_by: Option<&'static str>,
}

const fn t(
    name: &'static str,
    kind: ChKind,
    order_by: &'static str,
    partition_by: Option<&'static str>,
) -> ChTable {
    ChTable {
        name,
        kind,
        order_by,
        partition_by,
    }
}

/// The tables, in creation and export order. `flows` holds the flow columns
/// of hflow's `flow`, addresses as FixedString(16) and counters as UInt64.
/// Its key starts with src_start_sec, which never changes for a flow (it is
/// part of the flow's natural key), so every version of a flow stays in one
/// partition and one key.
pub const CH_TABLES: &[ChTable] = &[
    t("sensor", ChKind::Sensor, "sensor_id", None),
    t(
        "flows",
        ChKind::Flows,
        "sensor_id, src_start_sec, flow_id",
        Some("toYYYYMM(toDateTime(src_start_sec))"),
    ),
    t("flow_perf", ChKind::Copy, "sensor_id, flow_id, sec", None),
    t("os", ChKind::Copy, "sensor_id, os_id", None),
    t("ids", ChKind::Copy, "sensor_id, ids_id", None),
    t(
        "ids_sig",
        ChKind::Copy,
        "sensor_id, ids_sig_gen, ids_sig_id",
        None,
    ),
    t("process", ChKind::Copy, "sensor_id, process_id", None),
    t(
        "process_tree",
        ChKind::Copy,
        "sensor_id, child_process, parent_process",
        None,
    ),
    t("command", ChKind::Copy, "sensor_id, command_id", None),
    t(
        "process_to_com",
        ChKind::Copy,
        "sensor_id, command_id, process_id",
        None,
    ),
    t(
        "sys_read",
        ChKind::Copy,
        "sensor_id, process_id, sys_read_id",
        Some("toYYYYMM(toDateTime(time))"),
    ),
    t(
        "sys_write",
        ChKind::Copy,
        "sensor_id, process_id, sys_write_id",
        Some("toYYYYMM(toDateTime(time))"),
    ),
    t("sys_open", ChKind::Copy, "sensor_id, sys_open_id", None),
    t("sys_socket", ChKind::Copy, "sensor_id, sys_socket_id", None),
    t(
        "sbk_loss",
        ChKind::Copy,
        "sensor_id, src_ip, time, lost",
        None,
    ),
];

/// The watermark table.
pub const STATE_TABLE: &str = "lumpy_export_state";

/// Sensor columns sent: hflow's, without the per-node legacy columns
/// (access_via, login, passwd: pcap_api.pl's proxy, meaningless here).
const SENSOR_COLS: usize = 11;

/// The counters that are UInt64 in `flows` (INT UNSIGNED in hflow).
const WIDE: &[&str] = &["src_packets", "src_bytes", "dst_packets", "dst_bytes"];

/// One column as ClickHouse sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChTy {
    U8,
    I8,
    U16,
    U32,
    I32,
    U64,
    Str,
    /// An address: 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
    Ip,
}

impl ChTy {
    fn name(self) -> &'static str {
        match self {
            ChTy::U8 => "UInt8",
            ChTy::I8 => "Int8",
            ChTy::U16 => "UInt16",
            ChTy::U32 => "UInt32",
            ChTy::I32 => "Int32",
            ChTy::U64 => "UInt64",
            ChTy::Str => "String",
            ChTy::Ip => "FixedString(16)",
        }
    }

    fn range(self) -> (i64, i64) {
        match self {
            ChTy::U8 => (0, 255),
            ChTy::I8 => (-128, 127),
            ChTy::U16 => (0, 65_535),
            ChTy::U32 => (0, 4_294_967_295),
            ChTy::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
            _ => (0, i64::MAX),
        }
    }
}

#[derive(Debug, Clone)]
struct ChCol {
    name: &'static str,
    ty: ChTy,
    nullable: bool,
}

/// The source table in hflow's schema (column names and types).
fn hflow_table(name: &str) -> Option<&'static Table> {
    HFLOW.iter().find(|t| t.name == name)
}

/// The data columns of `t` (without `_version`).
fn columns(t: &ChTable) -> Vec<ChCol> {
    let src = match t.kind {
        ChKind::Flows => "flow",
        _ => t.name,
    };
    let Some(table) = hflow_table(src) else {
        return Vec::new();
    };
    let cols = match t.kind {
        ChKind::Sensor => &table.cols[..SENSOR_COLS.min(table.cols.len())],
        _ => table.cols,
    };
    cols.iter()
        .map(|c| {
            let ty = match (t.kind, c.name) {
                (ChKind::Flows, "src_ip" | "dst_ip") => ChTy::Ip,
                (ChKind::Flows, n) if WIDE.contains(&n) => ChTy::U64,
                _ => match c.ty {
                    Ty::U8 => ChTy::U8,
                    Ty::U16 => ChTy::U16,
                    Ty::U32 => ChTy::U32,
                    Ty::I32 => ChTy::I32,
                    Ty::U64 => ChTy::U64,
                    Ty::Bool => ChTy::I8,
                    _ => ChTy::Str,
                },
            };
            ChCol {
                name: c.name,
                ty,
                nullable: !c.attrs.contains("NOT NULL"),
            }
        })
        .collect()
}

impl ChTable {
    /// `CREATE TABLE IF NOT EXISTS` in `db`.
    pub fn create_sql(&self, db: &str) -> String {
        self.create_sql_as(db, self.name)
    }

    /// The same table under another name (a shard's local table).
    fn create_sql_as(&self, db: &str, name: &str) -> String {
        let mut s = format!("CREATE TABLE IF NOT EXISTS {}.{name} (", ident(db));
        for c in columns(self) {
            let ty = if c.nullable {
                format!("Nullable({})", c.ty.name())
            } else {
                c.ty.name().to_string()
            };
            s.push_str(&format!("{} {ty}, ", c.name));
        }
        s.push_str("_version UInt64) ENGINE = ReplacingMergeTree(_version)");
        if let Some(p) = self.partition_by {
            s.push_str(&format!(" PARTITION BY {p}"));
        }
        s.push_str(&format!(" ORDER BY ({})", self.order_by));
        s
    }

    /// The data columns (without `_version`): name and ClickHouse type
    /// (without Nullable), for queries and tests that compare with the mirror.
    pub fn data_columns(&self) -> Vec<(&'static str, &'static str, bool)> {
        columns(self)
            .iter()
            .map(|c| (c.name, c.ty.name(), c.nullable))
            .collect()
    }

    /// The column list of an INSERT (data columns, then `_version`).
    pub fn column_list(&self) -> String {
        let mut names: Vec<&str> = columns(self).iter().map(|c| c.name).collect();
        names.push("_version");
        names.join(", ")
    }
}

fn state_create_sql(db: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{STATE_TABLE} (table_name String, sensor_id UInt32, \
         version UInt64, row_id UInt64, digest String, updated_ns UInt64) \
         ENGINE = ReplacingMergeTree(updated_ns) ORDER BY (table_name, sensor_id)",
        ident(db)
    )
}

/// A database name as an identifier (backquoted, backquotes escaped).
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// The ClickHouse server and database to export into. Debug never shows the
/// password.
pub struct ChTarget {
    base: url::Url,
    pub database: String,
    pub user: String,
    password: Option<String>,
    /// `http://USER@HOST:PORT/ DATABASE`: no password.
    pub shown: String,
    http: reqwest::Client,
    /// `--cluster`: tables are `Distributed` over `<table>_local` on every
    /// shard, sharded by sensor.
    cluster: Option<String>,
    /// The shards' HTTP interfaces (where local tables are created and
    /// older generations deleted).
    shards: Vec<ChTarget>,
}

/// The suffix of a shard's local tables under a cluster.
pub const LOCAL_SUFFIX: &str = "_local";

impl std::fmt::Debug for ChTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// ClickHouse error codes that mean "who you are was refused".
const AUTH_CODES: &[&str] = &["Code: 192,", "Code: 193,", "Code: 194,", "Code: 516,"];

impl ChTarget {
    /// `url` is `http(s)://HOST[:PORT]`; user and password come separately
    /// (the password only from a file: a URL with one is refused).
    pub fn parse(
        url: &str,
        database: &str,
        user: &str,
        password: Option<String>,
    ) -> Result<ChTarget, ExportError> {
        let bad = |reason: &str| ExportError::BadUrl {
            shown: crate::mysql::redact(url),
            reason: reason.to_string(),
        };
        let base = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad(
                "the scheme must be http:// or https:// (ClickHouse's HTTP interface, port 8123)",
            ));
        }
        if base.password().is_some() {
            return Err(bad(
                "the URL holds a password, which every local user can read in the process list: \
                 remove it and pass --password-file FILE",
            ));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if base.query().is_some() {
            return Err(bad("no query string: give --database and --user"));
        }
        if database.is_empty() || database.len() > 64 {
            return Err(ExportError::InvalidOption(
                "--database: 1 to 64 characters".into(),
            ));
        }
        let user = if base.username().is_empty() {
            user.to_string()
        } else {
            base.username().to_string()
        };
        let mut base = base;
        let _ = base.set_username("");
        let shown = format!(
            "{}://{user}@{}:{}/ database {database}",
            base.scheme(),
            base.host_str().unwrap_or(""),
            base.port_or_known_default().unwrap_or(8123)
        );
        // reqwest is built without a crypto provider: ring, as main installs
        // it (a no-op when already installed; tests call this directly).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(300))
            // A new connection per request: ClickHouse closes a kept-alive
            // connection after keep_alive_timeout idle, and the export
            // leaves them idle for long (planning, sorting the mirror) with
            // no runtime running to notice; a streamed INSERT sent on a
            // closed one fails and cannot be retried. A request carries a
            // batch (up to 1 M rows), so the connect is a small cost.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| ExportError::Internal(format!("HTTP client: {e}")))?;
        Ok(ChTarget {
            base,
            database: database.to_string(),
            user,
            password,
            shown,
            http,
            cluster: None,
            shards: Vec::new(),
        })
    }

    /// Exports into cluster `name` (as in the servers' `<remote_servers>`):
    /// local tables on every shard of `shard_urls` (their HTTP interfaces),
    /// a `Distributed` table over them sharded by `sensor_id`, inserts
    /// through this server, synchronously (`insert_distributed_sync`), so a
    /// batch is on its shard before its watermark is written.
    pub fn with_cluster(
        mut self,
        name: &str,
        shard_urls: &[String],
    ) -> Result<ChTarget, ExportError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ExportError::InvalidOption(format!(
                "--cluster '{name}': letters, digits, - and _ only"
            )));
        }
        if shard_urls.is_empty() {
            return Err(ExportError::InvalidOption(
                "--cluster needs the HTTP URL of every shard (--shard URL, repeated)".into(),
            ));
        }
        let mut shards = Vec::new();
        for u in shard_urls {
            shards.push(ChTarget::parse(
                u,
                &self.database,
                &self.user,
                self.password.clone(),
            )?);
        }
        self.shown = format!("{} cluster {name}", self.shown);
        self.cluster = Some(name.to_string());
        self.shards = shards;
        Ok(self)
    }

    fn addr(&self) -> String {
        format!(
            "{}:{}",
            self.base.host_str().unwrap_or(""),
            self.base.port_or_known_default().unwrap_or(8123)
        )
    }

    /// One request: `query` in the URL, `body` (SQL or data) posted.
    async fn post(
        &self,
        query: Option<&str>,
        body: reqwest::Body,
        what: &str,
    ) -> Result<String, ExportError> {
        let mut url = self.base.clone();
        if let Some(q) = query {
            url.query_pairs_mut().append_pair("query", q);
            if self.cluster.is_some() {
                // Queries with a query string are inserts: on the shard
                // before the request returns, not queued on this server.
                url.query_pairs_mut()
                    .append_pair("insert_distributed_sync", "1");
            }
        }
        let mut req = self.http.post(url).body(body);
        if !self.user.is_empty() {
            req = req.basic_auth(&self.user, self.password.as_deref());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() || e.is_timeout() {
                ExportError::Unreachable {
                    target: self.shown.clone(),
                    addr: self.addr(),
                    detail: error_chain(&e),
                }
            } else {
                ExportError::Server {
                    target: self.shown.clone(),
                    what: what.to_string(),
                    detail: error_chain(&e),
                }
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ExportError::Server {
            target: self.shown.clone(),
            what: what.to_string(),
            detail: error_chain(&e),
        })?;
        if status.is_success() {
            return Ok(text);
        }
        let detail = first_line(&text);
        if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN
            || AUTH_CODES.iter().any(|c| text.starts_with(c))
        {
            return Err(ExportError::Auth {
                target: self.shown.clone(),
                user: self.user.clone(),
                detail,
            });
        }
        Err(ExportError::Server {
            target: self.shown.clone(),
            what: what.to_string(),
            detail: format!("HTTP {}: {detail}", status.as_u16()),
        })
    }

    /// A statement (DDL, ALTER, SELECT ... FORMAT TabSeparated).
    pub async fn sql(&self, sql: &str, what: &str) -> Result<String, ExportError> {
        self.post(None, sql.as_bytes().to_vec().into(), what).await
    }

    /// Rows in RowBinary into `table`'s `columns`: a whole body, or a
    /// stream of chunks (sent chunked as they come).
    async fn insert(
        &self,
        table: &str,
        columns: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<(), ExportError> {
        let q = format!(
            "INSERT INTO {}.{table} ({columns}) FORMAT RowBinary",
            ident(&self.database)
        );
        self.post(Some(&q), body.into(), &format!("insert into {table}"))
            .await
            .map(|_| ())
    }

    /// Creates the database and every table that is missing.
    pub async fn prepare_schema(&self) -> Result<(), ExportError> {
        self.sql(
            &format!("CREATE DATABASE IF NOT EXISTS {}", ident(&self.database)),
            "create database",
        )
        .await?;
        match &self.cluster {
            None => {
                for t in CH_TABLES {
                    self.sql(
                        &t.create_sql(&self.database),
                        &format!("create table {}", t.name),
                    )
                    .await?;
                }
            }
            Some(cluster) => {
                // Every shard, and this server, gets the local tables and
                // the Distributed ones, so any of them answers queries.
                for node in std::iter::once(self).chain(&self.shards) {
                    node.create_clustered(cluster).await?;
                }
            }
        }
        self.sql(
            &state_create_sql(&self.database),
            "create table lumpy_export_state",
        )
        .await?;
        Ok(())
    }

    async fn create_clustered(&self, cluster: &str) -> Result<(), ExportError> {
        let db = ident(&self.database);
        self.sql(
            &format!("CREATE DATABASE IF NOT EXISTS {db}"),
            "create database",
        )
        .await?;
        for t in CH_TABLES {
            let local = format!("{}{LOCAL_SUFFIX}", t.name);
            self.sql(
                &t.create_sql_as(&self.database, &local),
                &format!("create table {local}"),
            )
            .await?;
            self.sql(
                &format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{} AS {db}.{local} \
                     ENGINE = Distributed({cluster}, {db}, {local}, sensor_id)",
                    t.name
                ),
                &format!("create distributed table {}", t.name),
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes the generations of `sensor`'s rows of `table` below `below`:
    /// on the table itself, or on every shard's local table.
    async fn delete_older(&self, table: &str, sensor: u32, below: u64) -> Result<(), ExportError> {
        let what = format!("delete the older rows of {table}");
        let (nodes, name): (Vec<&ChTarget>, String) = match &self.cluster {
            None => (vec![self], table.to_string()),
            Some(_) => (
                self.shards.iter().collect(),
                format!("{table}{LOCAL_SUFFIX}"),
            ),
        };
        for node in nodes {
            node.sql(
                &format!(
                    "ALTER TABLE {}.{name} DELETE WHERE sensor_id = {sensor} AND _version < {below}",
                    ident(&node.database)
                ),
                &what,
            )
            .await?;
        }
        Ok(())
    }

    /// The watermarks, and the highest `updated_ns` stored (the next
    /// generation must be above it even if the clock went back).
    pub async fn read_marks(&self) -> Result<(Marks, u64), ExportError> {
        let text = self
            .sql(
                &format!(
                    "SELECT table_name, sensor_id, version, row_id, digest, updated_ns \
                     FROM {}.{STATE_TABLE} FINAL FORMAT TabSeparated",
                    ident(&self.database)
                ),
                "read lumpy_export_state",
            )
            .await?;
        let mut marks = Marks::new();
        let mut top = 0u64;
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let [table, sensor, version, row_id, digest, ns] = f[..] else {
                return Err(ExportError::Server {
                    target: self.shown.clone(),
                    what: "read lumpy_export_state".into(),
                    detail: format!("unexpected row {line:?}"),
                });
            };
            let num = |s: &str| s.parse::<u64>().unwrap_or(0);
            top = top.max(num(ns));
            marks.insert(
                (table.to_string(), num(sensor) as u32),
                Mark {
                    version: num(version),
                    row_id: num(row_id),
                    digest: (!digest.is_empty()).then(|| digest.to_string()),
                },
            );
        }
        Ok((marks, top))
    }

    /// Rows `SELECT ... FORMAT TabSeparated` returns, as lines of fields.
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>, ExportError> {
        let text = self.sql(sql, "query").await?;
        Ok(text
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(500).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// How to export into ClickHouse.
#[derive(Debug, Clone)]
pub struct ChOptions {
    /// Only these sensors (all when empty).
    pub sensors: Vec<u32>,
    /// Rows per INSERT (ClickHouse advises 10k-100k, about one a second).
    pub batch_rows: usize,
    /// Ignore the watermarks and send every row again (replaced by key).
    pub full: bool,
}

impl Default for ChOptions {
    fn default() -> Self {
        ChOptions {
            sensors: Vec::new(),
            batch_rows: 50_000,
            full: false,
        }
    }
}

/// The watermark names: v4 and v6 flows have their own version sequences
/// in the mirror (`flow`, `x_flow6`), both go into `flows`.
const MARK_FLOWS4: &str = "flows/ipv4";
const MARK_FLOWS6: &str = "flows/ipv6";

/// One unit of work: a table (and flow family) and sensor.
#[derive(Debug)]
struct Work {
    table: &'static ChTable,
    mark: &'static str,
    v6: bool,
    sensor: u32,
    rows: u64,
    after: (i64, i64),
    digest: Option<String>,
}

/// The chunks of one INSERT's body, whole rows each (an error aborts the
/// request).
type Chunks = tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>;

/// Where the producer puts an INSERT's chunks.
type ChunkSender = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// Bytes of RowBinary per chunk of an INSERT's body: the memory a batch
/// holds is a few chunks, whatever `batch_rows` is.
const CHUNK_BYTES: usize = 1 << 20;

/// Chunks in flight between the producer and the request.
const CHUNKS_IN_FLIGHT: usize = 4;

/// What the producer hands the HTTP side: rows, then what follows them.
enum Msg {
    /// One INSERT: its body streams in `body` while the producer reads the
    /// mirror; `rows` says how many rows it held once the body is complete.
    Rows {
        table: &'static ChTable,
        body: Chunks,
        rows: tokio::sync::oneshot::Receiver<u64>,
    },
    /// Deletes the older generations of a replaced sensor's rows.
    Delete {
        table: &'static str,
        sensor: u32,
        below: u64,
    },
    /// The watermark, written after everything before it.
    Mark {
        mark: &'static str,
        sensor: u32,
        version: u64,
        row_id: u64,
        digest: String,
    },
}

/// Exports `dir`'s mirror into `target`. `on_total` gets the rows to send
/// once, `progress` the rows of each insert.
pub fn export_clickhouse(
    dir: &Path,
    target: &ChTarget,
    opts: &ChOptions,
    on_total: &dyn Fn(u64),
    progress: &dyn Fn(u64),
) -> Result<ExportStats, ExportError> {
    let source = MirrorSource::open(dir)?;
    // The export reads much of the mirror once: a larger page cache and
    // memory-mapped reads (no pread and copy per page). Best effort: a
    // SQLite without mmap keeps reading as before.
    let _ = source
        .conn()
        .execute_batch("PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ExportError::Internal(format!("tokio runtime: {e}")))?;
    rt.block_on(target.prepare_schema())?;
    let (marks, top_ns) = rt.block_on(target.read_marks())?;
    let work = plan(&source, &marks, opts)?;
    on_total(work.iter().map(|w| w.rows).sum());
    let generation = generation(top_ns);
    // Two batches in flight at most: one being built, one being sent.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(1);
    let (written, produced) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut send = |m: Msg| tx.blocking_send(m).is_ok();
            produce(&source, &work, opts, generation, &mut send)
        });
        let written = rt.block_on(sink(target, &mut rx, generation, progress));
        drop(rx);
        let produced = producer
            .join()
            .map_err(|_| ExportError::Internal("the export producer panicked".into()));
        (written, produced)
    });
    // The producer's own error (the mirror) first: it also cut the sink's
    // request short.
    let sent = produced??;
    written?;
    let rows = sent.iter().map(|s| s.rows).sum();
    Ok(ExportStats {
        sent,
        rows,
        adjusted: 0,
    })
}

/// The export's generation: nanoseconds now, above every stored one.
fn generation(top_ns: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0);
    now.max(top_ns.saturating_add(1))
}

/// Runs the messages in order; each watermark gets its own increasing
/// `updated_ns` so the newest one wins in `FINAL`.
async fn sink(
    target: &ChTarget,
    rx: &mut tokio::sync::mpsc::Receiver<Msg>,
    generation: u64,
    progress: &dyn Fn(u64),
) -> Result<(), ExportError> {
    let mut sent = 0u64;
    let r = sink_messages(target, rx, generation, progress, &mut sent).await;
    r.map_err(|e| if sent > 0 { part_way(e, sent) } else { e })
}

/// An error after rows went out: the message says what is kept (the rows
/// sent, up to the last watermark) instead of "nothing was written".
fn part_way(e: ExportError, rows: u64) -> ExportError {
    let kept = format!(
        "the export stopped part-way ({rows} rows of this run are in the target; a re-run resumes at the last watermark and replaces any row sent twice)"
    );
    match e {
        ExportError::Unreachable {
            target,
            addr,
            detail,
        } => ExportError::Server {
            target,
            what: kept,
            detail: format!("cannot reach the server at {addr}: {detail}"),
        },
        ExportError::Server {
            target,
            what,
            detail,
        } => ExportError::Server {
            target,
            what: format!("{what}: {kept}"),
            detail,
        },
        other => other,
    }
}

async fn sink_messages(
    target: &ChTarget,
    rx: &mut tokio::sync::mpsc::Receiver<Msg>,
    generation: u64,
    progress: &dyn Fn(u64),
    sent: &mut u64,
) -> Result<(), ExportError> {
    let mut ns = generation;
    while let Some(m) = rx.recv().await {
        match m {
            Msg::Rows { table, body, rows } => {
                let chunks = futures::stream::unfold(body, |mut rx| async move {
                    rx.recv().await.map(|chunk| (chunk, rx))
                });
                target
                    .insert(
                        table.name,
                        &table.column_list(),
                        reqwest::Body::wrap_stream(chunks),
                    )
                    .await?;
                let rows = rows.await.map_err(|_| {
                    ExportError::Internal("the export producer stopped inside a batch".into())
                })?;
                *sent += rows;
                progress(rows);
            }
            Msg::Delete {
                table,
                sensor,
                below,
            } => {
                target.delete_older(table, sensor, below).await?;
            }
            Msg::Mark {
                mark,
                sensor,
                version,
                row_id,
                digest,
            } => {
                ns += 1;
                let mut body = Vec::with_capacity(128);
                put_str(&mut body, mark.as_bytes());
                body.extend_from_slice(&sensor.to_le_bytes());
                body.extend_from_slice(&version.to_le_bytes());
                body.extend_from_slice(&row_id.to_le_bytes());
                put_str(&mut body, digest.as_bytes());
                body.extend_from_slice(&ns.to_le_bytes());
                target
                    .insert(
                        STATE_TABLE,
                        "table_name, sensor_id, version, row_id, digest, updated_ns",
                        body,
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

fn mirror_err(path: &str, what: &'static str) -> impl FnOnce(rusqlite::Error) -> ExportError {
    let path = path.to_string();
    move |source| ExportError::Mirror { path, what, source }
}

fn sensor_list(source: &MirrorSource, sql: &str) -> Result<Vec<u32>, ExportError> {
    let conn = source.conn();
    let mut stmt = conn
        .prepare(sql)
        .map_err(mirror_err(&source.path, "list sensors"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, u32>(0))
        .map_err(mirror_err(&source.path, "list sensors"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(mirror_err(&source.path, "list sensors"))
}

/// The SELECT of a versioned table: (version, id, data columns...) after
/// (?2, ?3) for sensor ?1; or its count.
///
/// The same selection as `source::MirrorSource::versioned_sql` (the MySQL
/// export's): a change to how the mirror versions rows (`x_flow_version`,
/// `x_sensor_version`) must change both.
fn versioned_sql(t: &ChTable, v6: bool, count: bool) -> String {
    let cols: Vec<String> = columns(t).iter().map(|c| format!("f.{}", c.name)).collect();
    match t.kind {
        ChKind::Sensor => {
            let what = if count {
                "count(*)".to_string()
            } else {
                format!("COALESCE(v.version, 0), f.sensor_id, {}", cols.join(", "))
            };
            format!(
                "SELECT {what} FROM sensor f LEFT JOIN x_sensor_version v ON v.sensor_id = f.sensor_id \
                 WHERE f.sensor_id = ?1 AND (COALESCE(v.version, 0) > ?2 OR (COALESCE(v.version, 0) = ?2 AND f.sensor_id > ?3))"
            )
        }
        _ => {
            let table = if v6 { "x_flow6" } else { "flow" };
            let select = format!(
                "SELECT v.version, v.flow_id FROM x_flow_version v \
                 WHERE v.sensor_id = ?1 AND v.in_flow6 = {} \
                 AND (v.version > ?2 OR (v.version = ?2 AND v.flow_id > ?3))",
                u8::from(v6)
            );
            if count {
                format!(
                    "SELECT count(*) FROM ({select}) v JOIN {table} f \
                     ON f.sensor_id = ?1 AND f.flow_id = v.flow_id"
                )
            } else {
                sorted_then_joined(&select, table, &cols)
            }
        }
    }
}

/// The rows of `table` in the (version, flow_id) order of `keys` (a SELECT
/// of version, flow_id): only the narrow keys are sorted (a sub-query kept
/// apart by `LIMIT -1`), then each row is looked up by primary key in that
/// order (`CROSS JOIN` keeps the keys as the outer loop), so SQLite never
/// sorts the wide rows (the sort of 2 M joined flow rows came before the
/// first row). The order is SQLite's plan, not a promise: `produce_one`
/// checks each row is after the one before it and stops otherwise.
fn sorted_then_joined(keys: &str, table: &str, cols: &[String]) -> String {
    format!(
        "SELECT v.version, v.flow_id, {} FROM ({keys} ORDER BY v.version, v.flow_id LIMIT -1) v \
         CROSS JOIN {table} f ON f.sensor_id = ?1 AND f.flow_id = v.flow_id",
        cols.join(", ")
    )
}

fn copy_sql(t: &ChTable) -> String {
    let cols: Vec<&str> = columns(t).iter().map(|c| c.name).collect();
    format!(
        "SELECT {} FROM {} WHERE sensor_id = ?1 ORDER BY {}",
        cols.join(", "),
        t.name,
        t.order_by
    )
}

/// Decides what to send per table and sensor.
fn plan(source: &MirrorSource, marks: &Marks, opts: &ChOptions) -> Result<Vec<Work>, ExportError> {
    let wanted = |s: &u32| opts.sensors.is_empty() || opts.sensors.contains(s);
    let after = |name: &str, s: u32| -> (i64, i64) {
        match marks.get(&(name.to_string(), s)) {
            Some(m) if !opts.full => (
                i64::try_from(m.version).unwrap_or(i64::MAX),
                i64::try_from(m.row_id).unwrap_or(i64::MAX),
            ),
            _ => (-1, -1),
        }
    };
    let conn = source.conn();
    let count = |sql: &str, sensor: u32, (v, id): (i64, i64)| -> Result<u64, ExportError> {
        conn.query_row(sql, rusqlite::params![sensor, v, id], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0) as u64)
        .map_err(mirror_err(&source.path, "count rows to export"))
    };
    let mut work = Vec::new();
    for table in CH_TABLES {
        match table.kind {
            ChKind::Sensor => {
                let sql = versioned_sql(table, false, true);
                for sensor in
                    sensor_list(source, "SELECT sensor_id FROM sensor ORDER BY sensor_id")?
                        .into_iter()
                        .filter(wanted)
                {
                    let a = after(table.name, sensor);
                    let rows = count(&sql, sensor, a)?;
                    if rows > 0 {
                        work.push(Work {
                            table,
                            mark: table.name,
                            v6: false,
                            sensor,
                            rows,
                            after: a,
                            digest: None,
                        });
                    }
                }
            }
            ChKind::Flows => {
                for (v6, mark) in [(false, MARK_FLOWS4), (true, MARK_FLOWS6)] {
                    let sql = versioned_sql(table, v6, true);
                    let list = format!(
                        "SELECT DISTINCT sensor_id FROM x_flow_version WHERE in_flow6 = {} ORDER BY sensor_id",
                        u8::from(v6)
                    );
                    for sensor in sensor_list(source, &list)?.into_iter().filter(wanted) {
                        let a = after(mark, sensor);
                        let rows = count(&sql, sensor, a)?;
                        if rows > 0 {
                            work.push(Work {
                                table,
                                mark,
                                v6,
                                sensor,
                                rows,
                                after: a,
                                digest: None,
                            });
                        }
                    }
                }
            }
            ChKind::Copy => {
                let mut sensors = sensor_list(
                    source,
                    &format!(
                        "SELECT DISTINCT sensor_id FROM {} ORDER BY sensor_id",
                        table.name
                    ),
                )?;
                // A sensor whose rows all went away: its rows are deleted.
                for (t, s) in marks.keys() {
                    if t == table.name && !sensors.contains(s) {
                        sensors.push(*s);
                    }
                }
                for sensor in sensors.into_iter().filter(wanted) {
                    let (rows, digest) = copy_digest(source, table, sensor)?;
                    let stored = marks
                        .get(&(table.name.to_string(), sensor))
                        .and_then(|m| m.digest.clone());
                    let unchanged = super::digest_unchanged(stored.as_deref(), &digest);
                    if !unchanged || (opts.full && rows > 0) {
                        work.push(Work {
                            table,
                            mark: table.name,
                            v6: false,
                            sensor,
                            rows,
                            after: (-1, -1),
                            digest: Some(digest),
                        });
                    }
                }
            }
        }
    }
    Ok(work)
}

/// Rows and blake3 of a copied table's rows of one sensor, as encoded.
fn copy_digest(
    source: &MirrorSource,
    t: &ChTable,
    sensor: u32,
) -> Result<(u64, String), ExportError> {
    let cols = columns(t);
    let mut stmt = source
        .conn()
        .prepare(&copy_sql(t))
        .map_err(mirror_err(&source.path, "read table"))?;
    let mut rows = stmt
        .query([sensor])
        .map_err(mirror_err(&source.path, "read table"))?;
    let mut hasher = blake3::Hasher::new();
    let mut n = 0u64;
    let mut buf = Vec::new();
    while let Some(row) = rows
        .next()
        .map_err(mirror_err(&source.path, "read table"))?
    {
        buf.clear();
        for (i, c) in cols.iter().enumerate() {
            let v = row
                .get_ref(i)
                .map_err(mirror_err(&source.path, "read table"))?;
            encode(v, c, &mut buf);
        }
        hasher.update(&buf);
        n += 1;
    }
    Ok((n, hasher.finalize().to_hex().to_string()))
}

/// Produces the messages of every work item. Returns what was sent (None
/// from `send`: the sink is gone, stop).
fn produce(
    source: &MirrorSource,
    work: &[Work],
    opts: &ChOptions,
    generation: u64,
    send: &mut dyn FnMut(Msg) -> bool,
) -> Result<Vec<Sent>, ExportError> {
    let mut sent = Vec::new();
    for w in work {
        tracing::info!(
            table = w.table.name,
            sensor = w.sensor,
            rows = w.rows,
            "export"
        );
        let rows = produce_one(source, w, opts, generation, send)?;
        match rows {
            Some(rows) => sent.push(Sent {
                table: w.mark,
                sensor: w.sensor,
                rows,
            }),
            None => break,
        }
    }
    Ok(sent)
}

fn produce_one(
    source: &MirrorSource,
    w: &Work,
    opts: &ChOptions,
    generation: u64,
    send: &mut dyn FnMut(Msg) -> bool,
) -> Result<Option<u64>, ExportError> {
    let cols = columns(w.table);
    let copy = w.table.kind == ChKind::Copy;
    let sql = if copy {
        copy_sql(w.table)
    } else {
        versioned_sql(w.table, w.v6, false)
    };
    let err = |what| mirror_err(&source.path, what);
    let mut stmt = source
        .conn()
        .prepare(&sql)
        .map_err(err("read rows to export"))?;
    let mut rows = if copy {
        stmt.query(rusqlite::params![w.sensor])
    } else {
        stmt.query(rusqlite::params![w.sensor, w.after.0, w.after.1])
    }
    .map_err(err("read rows to export"))?;
    // Versioned rows start with (version, id); copied ones carry the generation.
    let skip = if copy { 0 } else { 2 };
    let mut body = Vec::with_capacity(CHUNK_BYTES + 4096);
    // The open INSERT: where its chunks go, and where its row count goes.
    let mut open: Option<(ChunkSender, tokio::sync::oneshot::Sender<u64>)> = None;
    let mut in_batch = 0usize;
    let mut total = 0u64;
    let mut last = (0u64, 0u64);
    loop {
        let row = rows.next().map_err(err("read rows to export"))?;
        if let Some(row) = row {
            let version = if copy {
                generation
            } else {
                let v: i64 = row.get(0).map_err(err("read rows to export"))?;
                let id: i64 = row.get(1).map_err(err("read rows to export"))?;
                let here = (v.max(0) as u64, id.max(0) as u64);
                // A watermark must never pass a row not yet sent.
                if total + in_batch as u64 > 0 && here <= last {
                    return Err(ExportError::Internal(format!(
                        "the mirror returned {} sensor {} rows out of (version, id) order ({here:?} after {last:?})",
                        w.table.name, w.sensor
                    )));
                }
                last = here;
                last.0
            };
            if open.is_none() {
                let (chunks, body_rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
                let (count, rows_rx) = tokio::sync::oneshot::channel();
                if !send(Msg::Rows {
                    table: w.table,
                    body: body_rx,
                    rows: rows_rx,
                }) {
                    return Ok(None);
                }
                open = Some((chunks, count));
            }
            for (i, c) in cols.iter().enumerate() {
                let v = row.get_ref(i + skip).map_err(err("read rows to export"))?;
                encode(v, c, &mut body);
            }
            body.extend_from_slice(&version.to_le_bytes());
            in_batch += 1;
            if body.len() >= CHUNK_BYTES {
                let chunk = std::mem::replace(&mut body, Vec::with_capacity(CHUNK_BYTES + 4096));
                let sent = open
                    .as_ref()
                    .is_some_and(|(chunks, _)| chunks.blocking_send(Ok(chunk)).is_ok());
                if !sent {
                    return Ok(None);
                }
            }
        }
        if in_batch > 0 && (row.is_none() || in_batch >= opts.batch_rows) {
            let Some((chunks, count)) = open.take() else {
                return Ok(None);
            };
            if !body.is_empty() {
                let chunk = std::mem::replace(&mut body, Vec::with_capacity(CHUNK_BYTES + 4096));
                if chunks.blocking_send(Ok(chunk)).is_err() {
                    return Ok(None);
                }
            }
            // The body ends here; the sink learns the count and then
            // waits for the server's answer.
            drop(chunks);
            if count.send(in_batch as u64).is_err() {
                return Ok(None);
            }
            total += in_batch as u64;
            in_batch = 0;
            // A versioned batch is followed by its watermark; a copied
            // table's only after all its rows and the delete of the old ones.
            if !copy
                && !send(Msg::Mark {
                    mark: w.mark,
                    sensor: w.sensor,
                    version: last.0,
                    row_id: last.1,
                    digest: String::new(),
                })
            {
                return Ok(None);
            }
        }
        if row.is_none() {
            break;
        }
    }
    if copy {
        let ok = send(Msg::Delete {
            table: w.table.name,
            sensor: w.sensor,
            below: generation,
        }) && send(Msg::Mark {
            mark: w.mark,
            sensor: w.sensor,
            version: 0,
            row_id: 0,
            digest: w.digest.clone().unwrap_or_default(),
        });
        if !ok {
            return Ok(None);
        }
    }
    Ok(Some(total))
}

/// ClickHouse's variable-length unsigned integer (String lengths).
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// An address as 16 bytes: IPv4 (an integer in host order, or 4 bytes) as
/// IPv4-mapped IPv6, IPv6 as is.
fn ip16(v: ValueRef<'_>) -> [u8; 16] {
    let mut out = [0u8; 16];
    match v {
        ValueRef::Integer(i) => {
            out[10] = 0xff;
            out[11] = 0xff;
            let a = u32::try_from(i).unwrap_or(0);
            out[12..].copy_from_slice(&a.to_be_bytes());
        }
        ValueRef::Blob(b) if b.len() == 4 => {
            out[10] = 0xff;
            out[11] = 0xff;
            out[12..].copy_from_slice(b);
        }
        ValueRef::Blob(b) if b.len() == 16 => out.copy_from_slice(b),
        _ => {}
    }
    out
}

/// One value in RowBinary for column `c`. Integers are clamped to the
/// column's range (the ranges are hflow's, which the mirror's values fit).
/// Read straight from SQLite's row (`ValueRef`): no copy of text or blobs.
fn encode(v: ValueRef<'_>, c: &ChCol, out: &mut Vec<u8>) {
    if c.nullable {
        if matches!(v, ValueRef::Null) {
            out.push(1);
            return;
        }
        out.push(0);
    }
    let int = || -> i64 {
        let (lo, hi) = c.ty.range();
        match v {
            ValueRef::Integer(i) => i.clamp(lo, hi),
            ValueRef::Real(r) => (r as i64).clamp(lo, hi),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0)
                .clamp(lo, hi),
            _ => 0,
        }
    };
    match c.ty {
        ChTy::U8 => out.push(int() as u8),
        ChTy::I8 => out.push(int() as i8 as u8),
        ChTy::U16 => out.extend_from_slice(&(int() as u16).to_le_bytes()),
        ChTy::U32 => out.extend_from_slice(&(int() as u32).to_le_bytes()),
        ChTy::I32 => out.extend_from_slice(&(int() as i32).to_le_bytes()),
        ChTy::U64 => out.extend_from_slice(&(int() as u64).to_le_bytes()),
        ChTy::Ip => out.extend_from_slice(&ip16(v)),
        ChTy::Str => match v {
            ValueRef::Text(t) | ValueRef::Blob(t) => put_str(out, t),
            ValueRef::Integer(i) => put_str(out, i.to_string().as_bytes()),
            ValueRef::Real(r) => put_str(out, r.to_string().as_bytes()),
            ValueRef::Null => put_str(out, b""),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_addresses() {
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        let v4 = ip16(ValueRef::Integer(0x0a00_0001));
        assert_eq!(&v4[10..], &[0xff, 0xff, 10, 0, 0, 1]);
        assert_eq!(ip16(ValueRef::Blob(&[10, 0, 0, 1])), v4);
    }

    #[test]
    fn every_table_has_columns_and_a_key_of_its_columns() {
        for t in CH_TABLES {
            let cols = columns(t);
            assert!(!cols.is_empty(), "{}", t.name);
            for k in t.order_by.split(", ") {
                let c = cols.iter().find(|c| c.name == k);
                assert!(c.is_some_and(|c| !c.nullable), "{} key {k}", t.name);
            }
            assert!(t.create_sql("d").contains("ReplacingMergeTree(_version)"));
        }
    }

    #[test]
    fn urls_never_hold_a_password() {
        assert!(ChTarget::parse("http://u:pw@h:8123", "d", "u", None).is_err());
        assert!(ChTarget::parse("mysql://h", "d", "u", None).is_err());
        let t = ChTarget::parse(
            "http://127.0.0.1:8123",
            "lumpy",
            "default",
            Some("s3".into()),
        )
        .unwrap();
        assert_eq!(t.shown, "http://default@127.0.0.1:8123/ database lumpy");
        assert!(!format!("{t:?}").contains("s3"));
    }
}
