//! Decommissioning a honeywall: make this lumpy the pcap repository of a
//! sensor, pull everything of it, verify it, then mark it retired.
//!
//! Owns the procedure and its refusal rules: the sensor is marked
//! decommissioned (walleye `state = 'offline'` here, and our own flag in
//! lumpy.toml) only when every segment of its sequence, pcap included, is
//! held here and re-hashes to its id. Interrupted, a re-run continues where
//! the pull stopped. Writes through the pull, the config and the mirror only.

use crate::config::Config;
use crate::node::Node;
use crate::store::StoreError;
use crate::sync::client::{PullContext, SyncError, pull_child};
use crate::sync::links::{children_view_full, load_state, save_state};
use crate::sync::summary::sensor_summary;

#[derive(Debug, thiserror::Error)]
pub enum DecommissionError {
    #[error(
        "sensor {0}: no child of this node offers it; add the link to its roo (or a lumpy holding its pcap) first"
    )]
    NoSource(u32),
    #[error(
        "sensor {sensor}: not decommissioned: {missing} of its {total} segments are still missing here (first missing sequence numbers: {first:?}); run it again when the holder is reachable"
    )]
    Incomplete {
        sensor: u32,
        missing: u64,
        total: u64,
        first: Vec<u64>,
    },
    #[error("sensor {sensor}: segment {id} is damaged here: {detail}")]
    Damaged {
        sensor: u32,
        id: String,
        detail: String,
    },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Mirror(#[from] crate::mirror::MirrorError),
}

/// What a decommission did.
#[derive(Debug, Default)]
pub struct Report {
    pub segments: u64,
    pub bytes: u64,
    pub pulled_from: Vec<String>,
    pub errors: Vec<String>,
}

pub fn decommission(node: Node, sensor: u32) -> Result<Report, DecommissionError> {
    decommission_in(&PullContext::new(node)?, sensor)
}

/// As [`decommission`], on a node already in a pull context (a running
/// `serve`'s, for the command sent over its control socket).
pub fn decommission_in(ctx: &PullContext, sensor: u32) -> Result<Report, DecommissionError> {
    let dir = ctx.dir.clone();
    let mut config = Config::load(&dir)?;
    let sources: Vec<String> = children_view_full(&ctx.store)?
        .into_iter()
        .filter(|(_, s)| s.sensors.iter().any(|x| x.sensor_id == sensor))
        .map(|(name, _)| name)
        .collect();
    let holds_some = ctx.store.known_sensors()?.contains(&sensor);
    if sources.is_empty() && !holds_some {
        return Err(DecommissionError::NoSource(sensor));
    }
    if !config.pcap_repository.contains(&sensor) {
        config.pcap_repository.push(sensor);
        config.save(&dir)?;
    }
    ctx.node
        .lock()
        .map_err(|_| DecommissionError::Store(StoreError::CorruptEntry("node lock".into())))?
        .config = config.clone();
    let mut report = Report::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DecommissionError::Store(StoreError::CorruptEntry(format!("runtime: {e}"))))?;
    for child in config.children.iter().filter(|c| sources.contains(&c.name)) {
        // What we want from this child changed (its pcap too now): a
        // "nothing new" answer to the old question would skip it.
        let mut state = load_state(&ctx.store, &child.name)?;
        state.etag.clear();
        save_state(&ctx.store, &child.name, &state)?;
        match rt.block_on(pull_child(ctx, child)) {
            Ok(_) => report.pulled_from.push(child.name.clone()),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    check_complete(ctx, sensor, &mut report)?;
    let mut node = ctx
        .node
        .lock()
        .map_err(|_| DecommissionError::Store(StoreError::CorruptEntry("node lock".into())))?;
    // The config is the record of it (a rebuilt mirror takes it from there).
    if !config.decommissioned.contains(&sensor) {
        config.decommissioned.push(sensor);
        config.save(&dir)?;
    }
    node.mirror.sync_retired(&config.decommissioned)?;
    Ok(report)
}

/// Every place of the sensor's sequence held here and intact.
fn check_complete(
    ctx: &PullContext,
    sensor: u32,
    report: &mut Report,
) -> Result<(), DecommissionError> {
    let summary = sensor_summary(&ctx.store, sensor, 0)?;
    let entries = ctx.store.sequence_after(sensor, 0, usize::MAX)?;
    let missing: Vec<u64> = entries.iter().filter(|e| !e.held).map(|e| e.seq).collect();
    if !missing.is_empty() || summary.max_seq == 0 {
        return Err(DecommissionError::Incomplete {
            sensor,
            missing: missing.len() as u64,
            total: entries.len() as u64,
            first: missing.into_iter().take(5).collect(),
        });
    }
    for e in &entries {
        let bytes = ctx
            .store
            .read_segment(&e.id)
            .map_err(|err| DecommissionError::Damaged {
                sensor,
                id: e.id.to_hex(),
                detail: err.to_string(),
            })?;
        report.segments += 1;
        report.bytes += bytes.len() as u64;
    }
    Ok(())
}
