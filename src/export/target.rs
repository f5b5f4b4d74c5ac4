//! The MariaDB side of the export: the schema check and running the
//! statements, on a connection made by [`crate::mysql::Target`] (the URL,
//! the password rules and the connection errors live there, shared with the
//! legacy import).

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::schema::{self, DBSCHEMA_SEED, Source, Table};
use super::source::{Mark, Marks, Msg};
use super::{ExportError, Flavor};
use crate::mysql::{MysqlError, Target};

impl Target {
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
            MysqlError::Server {
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
            other => other.into(),
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
            // ENUM's '' (see `crate::mysql::SESSION_SQL`).
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
