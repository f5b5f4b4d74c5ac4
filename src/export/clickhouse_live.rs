//! `lumpy serve`'s `[[export]]` loop: keeps a ClickHouse target current by
//! running the export (`clickhouse::export_clickhouse`) every
//! `interval_secs`, and its state file `DIR/export-<name>.json` (last
//! attempt, last success, last error, rows), which `status` and the UI's
//! DAG API show as the export's lag.
//!
//! Each run is on a thread of its own with its own read-only snapshot of
//! the mirror, so a dead or slow ClickHouse never holds up ingest, pulls or
//! the UI: the loop only waits for its own run. At shutdown a run in
//! progress is abandoned (the process ends; the export resumes at its last
//! watermark next time, see docs/CLICKHOUSE.md). Owns only the state file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::clickhouse::{ChOptions, ChTarget, export_clickhouse};
use super::{ExportError, now_secs};
use crate::config::ExportConfig;

/// What the loop recorded about its target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    /// Start of the last run (seconds).
    pub last_attempt: u64,
    /// Start of the last run that completed: everything the mirror held
    /// then is in the target.
    pub last_success: u64,
    /// The last run's error, cleared by a success.
    pub last_error: Option<String>,
    /// Rows the last successful run sent, and all runs since serve started.
    pub rows_last: u64,
    pub rows_total: u64,
}

pub fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("export-{name}.json"))
}

/// The state of export `name` (default when never run or unreadable).
pub fn load_state(dir: &Path, name: &str) -> LiveState {
    std::fs::read(state_path(dir, name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_state(dir: &Path, name: &str, st: &LiveState) {
    let path = state_path(dir, name);
    let tmp = path.with_extension("json.tmp");
    let r = serde_json::to_vec_pretty(st)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = r {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the export state");
    }
}

/// The export's status for `status --json` and the DAG API: its target, its
/// lag (seconds since the start of the last complete run: data older than
/// that is in the target) and whether it keeps up (a success within three
/// intervals plus a minute, and no failure since; a run in progress is
/// neither).
pub fn status_json(dir: &Path, cfg: &ExportConfig, now: u64) -> serde_json::Value {
    let st = load_state(dir, &cfg.name);
    // A run in progress (last_attempt above last_success) is not a failure:
    // the error of the last run is.
    let healthy = st.last_success > 0
        && st.last_error.is_none()
        && now.saturating_sub(st.last_success) <= cfg.interval_secs.saturating_mul(3) + 60;
    serde_json::json!({
        "name": cfg.name,
        "kind": "clickhouse",
        "url": cfg.url,
        "database": cfg.database,
        "cluster": cfg.cluster,
        "shards": cfg.shards,
        "interval_secs": cfg.interval_secs,
        "last_attempt": st.last_attempt,
        "last_success": st.last_success,
        "lag_secs": if st.last_success == 0 { serde_json::Value::Null } else { now.saturating_sub(st.last_success).into() },
        "last_error": st.last_error,
        "rows_last": st.rows_last,
        "healthy": healthy,
    })
}

/// One export run, blocking.
fn run_once(dir: &Path, cfg: &ExportConfig) -> Result<u64, ExportError> {
    let password = match &cfg.password_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ExportError::Io {
                path: p.display().to_string(),
                source,
            })?;
            Some(text.lines().next().unwrap_or("").to_string()).filter(|p| !p.is_empty())
        }
        None => None,
    };
    let mut target = ChTarget::parse(&cfg.url, &cfg.database, &cfg.user, password)?;
    if let Some(cluster) = &cfg.cluster {
        target = target.with_cluster(cluster, &cfg.shards)?;
    }
    let opts = ChOptions {
        sensors: cfg.sensors.clone(),
        ..ChOptions::default()
    };
    export_clickhouse(dir, &target, &opts, &|_| {}, &|_| {}).map(|s| s.rows)
}

/// Runs export `cfg` every `interval_secs` until shutdown.
pub async fn keep_current(dir: PathBuf, cfg: ExportConfig, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_secs(cfg.interval_secs.max(1));
    let mut st = load_state(&dir, &cfg.name);
    st.rows_total = 0;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = now_secs();
        st.last_attempt = started;
        save_state(&dir, &cfg.name, &st);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (d, c) = (dir.clone(), cfg.clone());
        // A plain thread: the export runs its own small runtime, and a hung
        // server only ever holds this thread.
        let spawned = std::thread::Builder::new()
            .name(format!("export-{}", cfg.name))
            .spawn(move || {
                let _ = tx.send(run_once(&d, &c));
            });
        if let Err(e) = spawned {
            tracing::warn!(export = %cfg.name, error = %e, "cannot start the export thread");
        }
        let result = tokio::select! {
            r = rx => r.ok(),
            _ = shutdown.changed() => return,
        };
        match result {
            Some(Ok(rows)) => {
                st.last_success = started;
                st.last_error = None;
                st.rows_last = rows;
                st.rows_total = st.rows_total.saturating_add(rows);
                tracing::info!(export = %cfg.name, rows, "export up to date");
            }
            Some(Err(e)) => {
                tracing::warn!(export = %cfg.name, error = %e, "export failed; retrying at the next interval");
                st.last_error = Some(e.to_string());
            }
            None => st.last_error = Some("the export thread ended without an answer".into()),
        }
        save_state(&dir, &cfg.name, &st);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}
