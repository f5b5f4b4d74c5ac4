//! Export: the node's walleye tables into a real MariaDB/MySQL database (or a
//! SQL script for `mariadb DB < FILE`), in hflow's schema (hflow2, dbschema 3)
//! or roo 1.x's `walleye_0_3`, incrementally and idempotently.
//!
//! Owns the target schemas (`schema`), the SQL text (`sql`), reading the
//! mirror for an export (`source`) and the MariaDB connection (`target`).
//! It READS the node's SQLite mirror only (`DIR/mirror.sqlite`, read-only,
//! so it runs beside `lumpy serve`), never the segment store or the redb
//! index; it WRITES only to the target database or the SQL file.
//!
//! Incremental and idempotent: the target keeps a watermark per (table,
//! sensor) in `lumpy_export_state`, written in the same transaction as the
//! rows of each batch. Flow and sensor rows are sent when their mirror row
//! version (`x_flow_version`, `x_sensor_version`: the origin's record
//! segment sequence) is above the watermark, ordered by (version, id), and
//! upserted by key (INSERT ... ON DUPLICATE KEY UPDATE), so a grown flow is
//! updated in place, a kill -9 resumes after the last committed batch, and
//! nothing is ever duplicated. The other hflow tables (sebek, ids, os,
//! which no record type fills yet) have no row versions: their rows of one
//! sensor are replaced in one transaction when their digest changed.
//! This relies on the mirror applying each sensor's segments in origin order
//! (`node::catch_up_mirror`, sync pulls in sequence order); `--full`
//! re-sends everything.

mod clickhouse;
pub mod clickhouse_live;
mod schema;
mod source;
mod sql;
mod target;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

pub use clickhouse::{CH_TABLES, ChOptions, ChTable, ChTarget, export_clickhouse};
pub use schema::{HFLOW, Table, WALLEYE_0_3, tables};
pub use source::Sent;

use crate::mysql::{MysqlError, Target};
use source::{Marks, MirrorSource, Msg};

/// Which legacy schema to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// hflow2's `hflow` database, schema version 3 (with `flow.is_local`).
    Hflow,
    /// roo 1.x's `walleye_0_3`: flows in `argus`, `argus_id` in `ids` and `sys_socket`.
    Walleye03,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Hflow => "hflow",
            Flavor::Walleye03 => "walleye_0_3",
        }
    }
}

/// The legacy per-node columns of `sensor` (pcap_api.pl's distributed
/// proxy): set only when the operator asks, for every exported sensor.
#[derive(Clone)]
pub struct Access {
    /// The node pcap requests are proxied to; 0.0.0.0 means "local".
    pub via: Ipv4Addr,
    /// Its Walleye user and password (CHAR(30) each).
    pub login: String,
    pub passwd: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("via", &self.via)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// `access_via` is a signed INT in hflow: an address at or above
    /// 128.0.0.0 is stored as its two's complement, which pcap_api.pl's
    /// `pack('N', ...)` turns back into the address.
    pub fn via_column(&self) -> i64 {
        i64::from(u32::from(self.via) as i32)
    }

    /// Refuses values that are, or look like, lumpy secrets: a link secret
    /// (`lumpy-link-v1:`) or link token (`lumpy-link-v2:`), the content of a `DIR/children/*.secret` file, or
    /// the target database password. Also enforces CHAR(30).
    pub fn check(&self, dir: &Path, db_password: Option<&str>) -> Result<(), ExportError> {
        let mut secrets: Vec<String> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("children")) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "secret")
                    && let Ok(s) = std::fs::read_to_string(e.path())
                {
                    secrets.push(s.trim().to_string());
                }
            }
        }
        if let Some(p) = db_password {
            secrets.push(p.to_string());
        }
        for (what, v) in [("login", &self.login), ("password", &self.passwd)] {
            if v.chars().count() > 30 {
                return Err(ExportError::InvalidOption(format!(
                    "--access-{what}: at most 30 characters (sensor.{what} is CHAR(30))"
                )));
            }
            if v.contains(crate::sync::auth::SECRET_PREFIX)
                || v.contains(crate::sync::auth::TOKEN_PREFIX)
                || (!v.is_empty()
                    && secrets
                        .iter()
                        .any(|s| s == v || (v.len() >= 8 && s.contains(v.as_str()))))
            {
                return Err(ExportError::InvalidOption(format!(
                    "--access-{what}: refusing to write a lumpy secret (a link secret or the database password) \
                     into the sensor table; give the legacy Walleye account of the node at --access-via"
                )));
            }
        }
        Ok(())
    }
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub flavor: Flavor,
    /// Only these sensors (all when empty).
    pub sensors: Vec<u32>,
    pub access: Option<Access>,
    /// Rows per INSERT statement and per transaction.
    pub batch_rows: usize,
    /// Ignore the watermarks and send everything again (upserts: still
    /// nothing duplicated).
    pub full: bool,
    /// Connections to the target: transactions run in parallel, commit in order.
    pub connections: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            flavor: Flavor::Hflow,
            sensors: Vec::new(),
            access: None,
            batch_rows: 5000,
            full: false,
            connections: 2,
        }
    }
}

/// What an export did.
#[derive(Debug, Clone, Default)]
pub struct ExportStats {
    /// Per (table, sensor) with something sent, in order.
    pub sent: Vec<Sent>,
    /// Rows sent (sum of `sent`).
    pub rows: u64,
    /// Values fitted to a narrower column (see `sql`).
    pub adjusted: u64,
}

/// Errors of an export. None of them carries the password.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "{dir}: not a lumpy node ({missing} is missing); run `lumpy init` and `lumpy ingest` first"
    )]
    NotANode { dir: String, missing: &'static str },
    #[error("mirror {path}: {what}: {source}")]
    Mirror {
        path: String,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "mirror {path}: mirror schema version {found} is newer than this lumpy supports ({supported}); upgrade lumpy"
    )]
    MirrorVersion {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("mirror {path}: table {table} has {found} columns, expected {expected}")]
    MirrorShape {
        path: String,
        table: String,
        found: usize,
        expected: usize,
    },
    #[error("--url {shown}: {reason}")]
    BadUrl { shown: String, reason: String },
    #[error("cannot reach the database server at {addr} ({target}): {detail}; nothing was written")]
    Unreachable {
        target: String,
        addr: String,
        detail: String,
    },
    #[error(
        "{target}: the server refused user '{user}' (wrong password, unknown user, or no access from this host): {detail}; nothing was written"
    )]
    Auth {
        target: String,
        user: String,
        detail: String,
    },
    #[error("{target}: {what}: {detail}")]
    Server {
        target: String,
        what: String,
        detail: String,
    },
    /// A deadlock or lock wait timeout between this export's own parallel
    /// transactions (or another writer).
    #[error("{target}: {what}: {detail}")]
    LockConflict {
        target: String,
        what: String,
        detail: String,
    },
    #[error(
        "{target}: the existing tables differ from the {flavor} schema; nothing was written:\n  {problems}\n\
         Export into another database, or fix or drop these tables."
    )]
    SchemaMismatch {
        target: String,
        flavor: &'static str,
        problems: String,
    },
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    InvalidOption(String),
    #[error("export: internal error: {0}")]
    Internal(String),
}

/// Whether a table's content digest for one sensor equals the one the
/// target holds (no mark: equal only when the table is empty there too), so
/// a digest-watermarked table is re-sent only when it changed. One rule for
/// both targets (MySQL and ClickHouse).
fn digest_unchanged(stored: Option<&str>, digest: &str) -> bool {
    match stored {
        Some(d) => d == digest,
        None => digest == blake3::hash(b"").to_hex().as_str(),
    }
}

use crate::clock::now_secs;

/// Exports the mirror of node `dir` into `target`. `on_total` is called once
/// with the number of rows to send, `progress` with the rows of each
/// committed transaction.
pub fn export_mysql(
    dir: &Path,
    target: &Target,
    opts: &ExportOptions,
    on_total: &dyn Fn(u64),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportStats, ExportError> {
    match export_once(dir, target, opts, opts.connections, on_total, progress) {
        // Parallel transactions touch disjoint rows, but InnoDB's next-key
        // locks on the unique keys can still make two of them conflict,
        // notably when a re-run after kill -9 updates rows already there
        // (found by the crash campaign). Nothing of the failed transaction
        // committed and the export resumes after its last committed batch,
        // so the rest is run again on one connection, where lanes cannot
        // wait on each other.
        Err(ExportError::LockConflict { detail, .. }) if opts.connections > 1 => {
            tracing::warn!(target = %target.shown, %detail, "lock conflict between parallel transactions; finishing the export on one connection");
            export_once(dir, target, opts, 1, on_total, progress)
        }
        other => other,
    }
}

fn export_once(
    dir: &Path,
    target: &Target,
    opts: &ExportOptions,
    connections: usize,
    on_total: &dyn Fn(u64),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportStats, ExportError> {
    let source = MirrorSource::open(dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ExportError::Internal(format!("tokio runtime: {e}")))?;
    let mut conn = rt.block_on(target.connect())?;
    rt.block_on(target.prepare_schema(&mut conn, opts.flavor))?;
    let marks = rt.block_on(target.read_marks(&mut conn))?;
    let work = source.plan(tables(opts.flavor), &marks, opts)?;
    let total: u64 = work.iter().map(|w| w.rows).sum();
    on_total(total);
    let mut conns = vec![conn];
    // More connections only when there is enough to share.
    let lanes = if total >= 2 * opts.batch_rows as u64 {
        connections.max(1)
    } else {
        1
    };
    for _ in 1..lanes {
        conns.push(rt.block_on(target.connect())?);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(2 * lanes);
    let now = now_secs();
    let (written, produced) = std::thread::scope(|scope| {
        // The producer reads the mirror and builds SQL while the server
        // executes earlier statements.
        let producer = scope.spawn(move || {
            let mut send = |m: Msg| tx.blocking_send(m).is_ok();
            source.produce(&work, opts.flavor, opts, now, &mut send)
        });
        let written = rt.block_on(target.run(conns, &mut rx, progress));
        // A failed sink drops the receiver, which stops the producer.
        drop(rx);
        let produced = producer
            .join()
            .map_err(|_| ExportError::Internal("the export producer panicked".into()));
        (written, produced)
    });
    written?;
    let (sent, adjusted) = produced??;
    Ok(stats(sent, adjusted))
}

fn stats(sent: Vec<Sent>, adjusted: u64) -> ExportStats {
    let rows = sent.iter().map(|s| s.rows).sum();
    ExportStats {
        sent,
        rows,
        adjusted,
    }
}

/// Writes the whole export as a SQL script (`mariadb DB < FILE` loads it):
/// the same statements and transactions an export into an empty database
/// sends, plus the CREATE TABLE IF NOT EXISTS of the schema. Written to
/// `FILE.part`, renamed when complete.
pub fn export_sql(
    dir: &Path,
    file: &Path,
    opts: &ExportOptions,
    on_total: &dyn Fn(u64),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportStats, ExportError> {
    let source = MirrorSource::open(dir)?;
    let tables = tables(opts.flavor);
    let work = source.plan(tables, &Marks::new(), opts)?;
    on_total(work.iter().map(|w| w.rows).sum());
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError::Io { path, source }
    };
    let f = crate::durable::AtomicFile::create(file, None, None).map_err(io(file))?;
    let part = f.tmp_path().to_path_buf();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut header = format!(
        "-- lumpy export, flavor {}, of {}: load with `mariadb DATABASE < FILE`.\n",
        opts.flavor.name(),
        dir.display()
    );
    for s in crate::mysql::SESSION_SQL {
        header.push_str(s);
        header.push_str(";\n");
    }
    for t in tables {
        header.push_str(&t.create_sql());
        header.push_str(";\n");
        if t.source == schema::Source::Seed {
            header.push_str(schema::DBSCHEMA_SEED);
            header.push_str(";\n");
        }
    }
    out.write_all(header.as_bytes()).map_err(io(&part))?;
    let mut failure = None;
    let mut send = |m: Msg| {
        let mut r = out.write_all(b"START TRANSACTION;\n");
        for sql in m.data.iter().map(|(s, _)| s).chain(&m.finish) {
            r = r
                .and_then(|_| out.write_all(sql.as_bytes()))
                .and_then(|_| out.write_all(b";\n"));
        }
        r = r.and_then(|_| out.write_all(b"COMMIT;\n"));
        progress(m.rows);
        match r {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    };
    let (sent, adjusted) = source.produce(&work, opts.flavor, opts, now_secs(), &mut send)?;
    if let Some(e) = failure {
        return Err(io(&part)(e));
    }
    let f = out.into_inner().map_err(|e| io(&part)(e.into_error()))?;
    f.commit().map_err(io(file))?;
    Ok(stats(sent, adjusted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(via: [u8; 4], login: &str, passwd: &str) -> Access {
        Access {
            via: Ipv4Addr::from(via),
            login: login.into(),
            passwd: passwd.into(),
        }
    }

    #[test]
    fn access_via_is_hflows_signed_int() {
        assert_eq!(access([0, 0, 0, 0], "", "").via_column(), 0);
        assert_eq!(access([10, 1, 2, 3], "", "").via_column(), 167_838_211);
        assert_eq!(access([203, 0, 113, 9], "", "").via_column(), -889_163_511);
    }

    #[test]
    fn access_refuses_lumpy_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("children")).unwrap();
        std::fs::write(
            dir.path().join("children/c1.secret"),
            "lumpy-link-v1:p:QUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n",
        )
        .unwrap();
        let ok = |a: Access| a.check(dir.path(), Some("dbpass123")).is_ok();
        assert!(ok(access([10, 0, 0, 1], "roo", "honey")));
        assert!(!ok(access([10, 0, 0, 1], "roo", "lumpy-link-v1:x")));
        assert!(!ok(access([10, 0, 0, 1], "roo", "lumpy-link-v2:x")));
        assert!(!ok(access([10, 0, 0, 1], "roo", "dbpass123")));
        assert!(!ok(access([10, 0, 0, 1], "roo", "QUJDREVGR0hJSktM")));
        assert!(!ok(access([10, 0, 0, 1], &"x".repeat(31), "")));
    }
}
