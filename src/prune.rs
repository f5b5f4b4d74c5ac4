//! Retention: `lumpy prune` drops pcap (and optionally flow rows) older than
//! a number of days on this node only, as purgePcap.pl and purgeDB.pl did.
//!
//! Owns the retention rules: a pcap segment is dropped only when every
//! parent that mirrors this sensor's pcap has said it committed it (its
//! `held=` mark, docs/PROTOCOL.md §6; sent is not taken); a dropped segment
//! stays in the sensor's sequence as "known, not held", so the flow index
//! still names it and a request for it is answered "aged out" (410), not
//! "missing". Record segments are never dropped (they are small, and parents
//! and the mirror are rebuilt from them).
//! Deletes only through `Store::forget_segment` and the mirror's purge.

use std::collections::BTreeMap;

use crate::node::Node;
use crate::store::{Kind, StoreError};

#[derive(Debug, Default)]
pub struct PruneReport {
    pub segments_dropped: u64,
    pub bytes_dropped: u64,
    /// Parent -> pcap segments kept because that parent has not taken them.
    pub kept_for: BTreeMap<String, u64>,
    pub flow_rows_deleted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mirror(#[from] crate::mirror::MirrorError),
}

/// Drops pcap older than `pcap_days` and, if given, closed flow rows older
/// than `records_days`, relative to `now` (epoch seconds).
pub fn prune(
    node: &mut Node,
    now: u64,
    pcap_days: u32,
    records_days: Option<u32>,
) -> Result<PruneReport, PruneError> {
    let mut report = PruneReport::default();
    let cutoff_ns = now
        .saturating_sub(u64::from(pcap_days) * 86_400)
        .saturating_mul(1_000_000_000);
    let mut peers_by_sensor = BTreeMap::new();
    for meta in node.store.all_segments()? {
        if meta.kind != Kind::Pcap || meta.time_last_ns >= cutoff_ns {
            continue;
        }
        let peers = match peers_by_sensor.entry(meta.sensor_id) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(node.store.mirroring_peers(meta.sensor_id)?)
            }
        };
        // Only what the parent said it committed counts as taken.
        let waiting: Vec<&String> = peers
            .iter()
            .filter(|(_, mark)| meta.origin_seq > **mark)
            .map(|(p, _)| p)
            .collect();
        if !waiting.is_empty() {
            for p in waiting {
                *report.kept_for.entry(p.clone()).or_default() += 1;
            }
            continue;
        }
        node.store.forget_segment(&meta.id)?;
        report.segments_dropped += 1;
        report.bytes_dropped += meta.stored_bytes;
    }
    if let Some(days) = records_days {
        let cutoff = now
            .saturating_sub(u64::from(days) * 86_400)
            .min(u64::from(u32::MAX)) as u32;
        report.flow_rows_deleted = node.mirror.purge_flows_before(cutoff)?;
    }
    Ok(report)
}
