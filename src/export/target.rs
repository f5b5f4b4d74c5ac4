//! The MariaDB side: the connection URL, connecting (with the errors an
//! operator can act on), the schema check, and running the statements.
//!
//! The password comes only from `--password-file`: a URL with a password is
//! refused, because command lines are visible to every local user (ps,
//! /proc/PID/cmdline) and end up in shell history. Nothing here logs or
//! formats the password; the target is always shown as
//! `mysql://USER@HOST:PORT/DB`.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::schema::{self, DBSCHEMA_SEED, Source, Table};
use super::source::{Mark, Marks, Msg};
use super::{ExportError, Flavor};

/// Session settings of every export, also at the top of a `--sql` file:
/// utf8mb4, and a non-strict sql_mode without NO_BACKSLASH_ESCAPES (the
/// literals use backslash escapes; values are fitted to their columns before
/// they are sent, see `sql`, so nothing is left for the server to adjust,
/// except `''` into an ENUM, which the mirror uses for "unset" and MariaDB
/// stores as its `''` error value only outside strict mode).
pub const SESSION_SQL: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
];

/// MariaDB error codes the export explains.
const ER_ACCESS_DENIED: u16 = 1045;
const ER_ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_BAD_DB: u16 = 1049;

/// A parsed `--url` with the password from its file.
pub struct Target {
    opts: Opts,
    pub db: String,
    pub user: String,
    /// `mysql://USER@HOST:PORT/DB` (with `?socket=...` if given): no password.
    pub shown: String,
    /// `HOST:PORT` or the socket path.
    pub addr: String,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Opts holds the password: never print it.
        f.write_str(&self.shown)
    }
}

impl Target {
    /// Parses `url` (`mysql://USER@HOST[:PORT]/DATABASE[?socket=PATH]`).
    pub fn parse(url: &str, password: Option<String>) -> Result<Target, ExportError> {
        let parsed = url::Url::parse(url).map_err(|e| ExportError::BadUrl {
            shown: redact(url),
            reason: e.to_string(),
        })?;
        let bad = |reason: &str| ExportError::BadUrl {
            shown: redact(url),
            reason: reason.to_string(),
        };
        if parsed.scheme() != "mysql" {
            return Err(bad("the scheme must be mysql://"));
        }
        if parsed.password().is_some() {
            return Err(bad(
                "the URL holds a password, which every local user can read in the process list: \
                 remove it and pass --password-file FILE",
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_string();
        let user = parsed.username().to_string();
        if user.is_empty() {
            return Err(bad("no user (mysql://USER@HOST/DATABASE)"));
        }
        let db = parsed.path().trim_start_matches('/').to_string();
        if db.is_empty() {
            return Err(bad("no database (mysql://USER@HOST/DATABASE)"));
        }
        if db.len() > 64
            || !db
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return Err(bad(
                "the database name must be 1-64 characters of A-Z, a-z, 0-9, _ and $",
            ));
        }
        let opts = Opts::from_url(url).map_err(|e| bad(&e.to_string()))?;
        let socket = opts.socket().map(str::to_string);
        let port = opts.tcp_port();
        let explicit_prefer_socket = parsed.query_pairs().any(|(k, _)| k == "prefer_socket");
        let mut builder = OptsBuilder::from_opts(opts)
            .pass(password)
            .db_name(Some(db.clone()))
            .client_found_rows(false);
        if !explicit_prefer_socket {
            // What the URL says is what is used: no silent switch from
            // TCP to the local socket (which authenticates differently).
            builder = builder.prefer_socket(false);
        }
        let (shown, addr) = match &socket {
            Some(s) => (format!("mysql://{user}@{host}/{db}?socket={s}"), s.clone()),
            None => (
                format!("mysql://{user}@{host}:{port}/{db}"),
                format!("{host}:{port}"),
            ),
        };
        Ok(Target {
            opts: builder.into(),
            db,
            user,
            shown,
            addr,
            connect_timeout: Duration::from_secs(15),
        })
    }

    fn opts_without_db(&self) -> Opts {
        OptsBuilder::from_opts(self.opts.clone())
            .db_name(None::<String>)
            .into()
    }

    /// Connects, creating the database when it does not exist, and sets the
    /// session up.
    pub async fn connect(&self) -> Result<Conn, ExportError> {
        let mut conn = match self.connect_with(self.opts.clone()).await {
            Ok(c) => c,
            Err(mysql_async::Error::Server(e)) if e.code == ER_BAD_DB => {
                let mut c = self
                    .connect_with(self.opts_without_db())
                    .await
                    .map_err(|e| self.connect_error(e))?;
                c.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{}`", self.db))
                    .await
                    .map_err(|e| self.server(format!("create database {}", self.db), e))?;
                tracing::info!(target = %self.shown, "created database");
                c.query_drop(format!("USE `{}`", self.db))
                    .await
                    .map_err(|e| self.server(format!("use database {}", self.db), e))?;
                c
            }
            Err(e) => return Err(self.connect_error(e)),
        };
        for s in SESSION_SQL {
            conn.query_drop(*s)
                .await
                .map_err(|e| self.server("set up the session".into(), e))?;
        }
        Ok(conn)
    }

    /// Connects to a database that must already exist (a legacy import's
    /// source): nothing is created, and the session is only read from.
    pub async fn connect_existing(&self) -> Result<Conn, ExportError> {
        let mut conn = self
            .connect_with(self.opts.clone())
            .await
            .map_err(|e| self.connect_error(e))?;
        conn.query_drop("SET NAMES utf8mb4")
            .await
            .map_err(|e| self.server("set up the session".into(), e))?;
        Ok(conn)
    }

    async fn connect_with(&self, opts: Opts) -> Result<Conn, mysql_async::Error> {
        match tokio::time::timeout(self.connect_timeout, Conn::new(opts)).await {
            Ok(r) => r,
            Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
            ))),
        }
    }

    fn connect_error(&self, e: mysql_async::Error) -> ExportError {
        match e {
            mysql_async::Error::Server(s)
                if matches!(
                    s.code,
                    ER_ACCESS_DENIED | ER_ACCESS_DENIED_NO_PASSWORD | ER_DBACCESS_DENIED
                ) =>
            {
                ExportError::Auth {
                    target: self.shown.clone(),
                    user: self.user.clone(),
                    detail: s.message,
                }
            }
            mysql_async::Error::Server(s) => ExportError::Server {
                target: self.shown.clone(),
                what: "connect".into(),
                detail: s.to_string(),
            },
            mysql_async::Error::Url(u) => ExportError::BadUrl {
                shown: self.shown.clone(),
                reason: u.to_string(),
            },
            other => ExportError::Unreachable {
                target: self.shown.clone(),
                addr: self.addr.clone(),
                detail: io_detail(&other),
            },
        }
    }

    pub fn server(&self, what: String, e: mysql_async::Error) -> ExportError {
        ExportError::Server {
            target: self.shown.clone(),
            what,
            detail: match e {
                mysql_async::Error::Server(s) => s.to_string(),
                other => io_detail(&other),
            },
        }
    }

    /// Checks every existing table of the flavor against its definition and
    /// creates the missing ones. Refuses, before writing anything, when an
    /// existing table differs.
    pub async fn prepare_schema(&self, conn: &mut Conn, flavor: Flavor) -> Result<(), ExportError> {
        let cols: Vec<(String, String, String)> = conn
            .query(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION",
            )
            .await
            .map_err(|e| self.server("read the existing schema".into(), e))?;
        let pks: Vec<(String, String)> = conn
            .query(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY TABLE_NAME, ORDINAL_POSITION",
            )
            .await
            .map_err(|e| self.server("read the existing schema".into(), e))?;
        let engines: Vec<(String, Option<String>)> = conn
            .query(
                "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
            )
            .await
            .map_err(|e| self.server("read the existing schema".into(), e))?;
        let mut by_table: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (t, c, ty) in cols {
            by_table
                .entry(t.to_ascii_lowercase())
                .or_default()
                .push((c, ty));
        }
        let mut pk_by_table: HashMap<String, Vec<String>> = HashMap::new();
        for (t, c) in pks {
            pk_by_table
                .entry(t.to_ascii_lowercase())
                .or_default()
                .push(c);
        }
        let engine_of: HashMap<String, String> = engines
            .into_iter()
            .map(|(t, e)| (t.to_ascii_lowercase(), e.unwrap_or_else(|| "VIEW".into())))
            .collect();
        let mut problems = Vec::new();
        let mut missing: Vec<&Table> = Vec::new();
        for table in schema::tables(flavor) {
            let key = table.name.to_ascii_lowercase();
            match (by_table.get(&key), engine_of.get(&key)) {
                (Some(found), Some(engine)) => problems.extend(schema::column_problems(
                    table,
                    found,
                    pk_by_table.get(&key).map(Vec::as_slice).unwrap_or(&[]),
                    engine,
                )),
                _ => missing.push(table),
            }
        }
        if !problems.is_empty() {
            return Err(ExportError::SchemaMismatch {
                target: self.shown.clone(),
                flavor: flavor.name(),
                problems: problems.join("\n  "),
            });
        }
        for table in missing {
            conn.query_drop(table.create_sql())
                .await
                .map_err(|e| self.server(format!("create table {}", table.name), e))?;
            tracing::info!(target = %self.shown, table = table.name, "created table");
        }
        // The seed row on every run, not only after CREATE TABLE: the DDL
        // commits on its own, so a kill -9 between it and the seed left
        // dbschema empty for good (found by the crash campaign). INSERT
        // IGNORE makes it a no-op when the row is there.
        if schema::tables(flavor)
            .iter()
            .any(|t| t.source == Source::Seed)
        {
            conn.query_drop(DBSCHEMA_SEED)
                .await
                .map_err(|e| self.server("seed dbschema".into(), e))?;
        }
        Ok(())
    }

    /// The watermarks kept in the target.
    pub async fn read_marks(&self, conn: &mut Conn) -> Result<Marks, ExportError> {
        let rows: Vec<(String, u32, u64, u64, Option<String>)> = conn
            .query("SELECT table_name, sensor_id, version, row_id, digest FROM lumpy_export_state")
            .await
            .map_err(|e| self.server("read lumpy_export_state".into(), e))?;
        Ok(rows
            .into_iter()
            .map(|(t, s, version, row_id, digest)| {
                (
                    (t, s),
                    Mark {
                        version,
                        row_id,
                        digest,
                    },
                )
            })
            .collect())
    }

    /// Runs the producer's transactions on `conns` (one lane each): the
    /// data statements of consecutive transactions run in parallel, each
    /// transaction's watermark and COMMIT only after the previous
    /// transaction committed, so the committed set is always a prefix of the
    /// produced sequence (what makes kill -9 safe). Rows are disjoint between
    /// transactions, so lanes do not wait on each other's locks.
    /// `progress` gets the rows of every committed transaction.
    pub async fn run(
        &self,
        conns: Vec<Conn>,
        rx: &mut tokio::sync::mpsc::Receiver<Msg>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), ExportError> {
        let mut lanes = Vec::new();
        let mut senders = Vec::new();
        for conn in conns {
            let (tx, lrx) = tokio::sync::mpsc::channel::<Job>(1);
            senders.push(tx);
            lanes.push(self.lane(conn, lrx, progress));
        }
        let dispatch = async move {
            let mut prev: Option<tokio::sync::oneshot::Receiver<()>> = None;
            let mut next = 0usize;
            while let Some(msg) = rx.recv().await {
                let (done, done_rx) = tokio::sync::oneshot::channel();
                let job = Job {
                    msg,
                    prev: prev.replace(done_rx),
                    done,
                };
                let lane = &senders[next % senders.len()];
                next += 1;
                if lane.send(job).await.is_err() {
                    // That lane failed: its error is reported below.
                    break;
                }
            }
            // Dropping the senders ends the lanes.
        };
        let ((), results) = futures::future::join(dispatch, futures::future::join_all(lanes)).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    /// One connection running its share of the transactions.
    async fn lane(
        &self,
        mut conn: Conn,
        mut rx: tokio::sync::mpsc::Receiver<Job>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), ExportError> {
        while let Some(mut job) = rx.recv().await {
            if job.msg.serial
                && let Some(prev) = job.prev.take()
                && prev.await.is_err()
            {
                return Ok(());
            }
            conn.query_drop("START TRANSACTION")
                .await
                .map_err(|e| self.server("start a transaction".into(), e))?;
            for (sql, table) in job.msg.data {
                conn.query_drop(sql)
                    .await
                    .map_err(|e| self.write_error(table, e))?;
                self.log_warnings(&mut conn, table).await;
            }
            if let Some(prev) = job.prev
                && prev.await.is_err()
            {
                // An earlier transaction failed: this one must not commit.
                // Dropping the connection rolls it back.
                return Ok(());
            }
            for sql in job.msg.finish {
                conn.query_drop(sql)
                    .await
                    .map_err(|e| self.server("write lumpy_export_state".into(), e))?;
            }
            conn.query_drop("COMMIT")
                .await
                .map_err(|e| self.server("commit".into(), e))?;
            progress(job.msg.rows);
            let _ = job.done.send(());
        }
        let _ = conn.disconnect().await;
        Ok(())
    }

    /// A failed write; a lock wait that timed out or a deadlock names the
    /// way out (the export resumes where it stopped).
    fn write_error(&self, table: &str, e: mysql_async::Error) -> ExportError {
        let lock = matches!(&e, mysql_async::Error::Server(s) if s.code == 1205 || s.code == 1213);
        let err = self.server(format!("write {table}"), e);
        match err {
            ExportError::Server {
                target,
                what,
                mut detail,
            } if lock => {
                detail.push_str(
                    " (another writer holds these rows; run the export again, with --connections 1 \
                     if it recurs: it resumes after the last committed batch)",
                );
                ExportError::LockConflict {
                    target,
                    what,
                    detail,
                }
            }
            other => other,
        }
    }

    async fn log_warnings(&self, conn: &mut Conn, table: &str) {
        if conn.get_warnings() == 0 {
            return;
        }
        let w: Vec<(String, u32, String)> = conn
            .query("SHOW WARNINGS LIMIT 3")
            .await
            .unwrap_or_default();
        if table == "sensor" {
            // '' into state/network_type: the mirror's "unset", stored as
            // ENUM's '' (see SESSION_SQL).
            tracing::debug!(table, warnings = ?w, "MariaDB adjusted values");
        } else {
            tracing::warn!(table, warnings = ?w, "MariaDB adjusted values");
        }
    }
}

/// A transaction handed to a lane, chained to its predecessor's commit.
struct Job {
    msg: Msg,
    prev: Option<tokio::sync::oneshot::Receiver<()>>,
    done: tokio::sync::oneshot::Sender<()>,
}

/// The URL with any password replaced by `****`, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        // Unparseable: cut any userinfo, which may hold a password.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://****{}", &url[..s], &url[at..]),
            _ => url.to_string(),
        },
    }
}

/// The most useful part of a connection error (the io error's text).
fn io_detail(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("mysql://walleye@127.0.0.1:3307/hflow", Some("pw".into())).unwrap();
        assert_eq!(t.shown, "mysql://walleye@127.0.0.1:3307/hflow");
        assert_eq!(t.db, "hflow");
        assert!(!format!("{t:?}").contains("pw"));
        let t = Target::parse(
            "mysql://root@localhost/x?socket=/run/mysqld/mysqld.sock",
            None,
        )
        .unwrap();
        assert_eq!(t.addr, "/run/mysqld/mysqld.sock");
        for bad in [
            "http://u@h/db",
            "mysql://u@h",
            "mysql://h/db",
            "mysql://u@h/a-b",
            "not a url",
            "mysql://u@h/db?bogus=1",
        ] {
            assert!(Target::parse(bad, None).is_err(), "{bad}");
        }
        let e = Target::parse("mysql://u:secret@h/db", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("password-file") && !e.contains("secret"), "{e}");
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://u:****@h/db");
        let r = redact("mysql://u:sec ret@h/d b");
        assert!(r.contains("****") && !r.contains("sec"), "{r}");
        assert_eq!(redact("mysql://u:p@[bad/x"), "mysql://****@[bad/x");
    }
}
