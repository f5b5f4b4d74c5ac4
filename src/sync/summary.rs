//! Building a node's [`Summary`] from its store and its children's summaries.
//!
//! Owns the chain hash (docs/PROTOCOL.md §3) and the summary digest.
//! Reads the store; writes nothing.

use std::collections::BTreeMap;

use crate::store::catalog::KnownEntry;
use crate::store::{Kind, SegmentId, Store, StoreError};

use super::protocol::{PROTOCOL_VERSION, SensorSummary, Summary};

/// Extends a chain hash by one entry.
pub fn chain_step(prev: &[u8; 32], seq: u64, id: &SegmentId) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&seq.to_le_bytes());
    h.update(&id.0);
    *h.finalize().as_bytes()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Per sensor: summary fields computed from the sequence this node knows.
pub fn sensor_summary(store: &Store, sensor: u32, hops: u32) -> Result<SensorSummary, StoreError> {
    let mut chain = [0u8; 32];
    let mut max_seq = 0;
    let mut first_id = String::new();
    let mut pcap_held_to = 0;
    let mut pcap_gap = false;
    let mut newest_ns = 0;
    let mut after = 0;
    'pages: loop {
        let page = store.sequence_after(sensor, after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if e.seq != max_seq + 1 {
                // A gap: the chain stops at the last contiguous entry.
                break 'pages;
            }
            if e.seq == 1 {
                first_id = e.id.to_hex();
            }
            chain = chain_step(&chain, e.seq, &e.id);
            max_seq = e.seq;
            track_pcap(e, &mut pcap_held_to, &mut pcap_gap);
            newest_ns = newest_ns.max(e.newest_ns);
        }
    }
    Ok(SensorSummary {
        sensor_id: sensor,
        first_id,
        max_seq,
        chain: hex(&chain),
        hops,
        pcap_held_to,
        newest_ns,
        incarnation: None,
    })
}

/// Adds each sensor's incarnation (from the mirror) to `s` and recomputes
/// its digest. Sensors the mirror has no row for yet keep none.
pub fn attach_incarnations(s: &mut Summary, all: &[crate::mirror::incarnations::Incarnation]) {
    for sensor in &mut s.sensors {
        sensor.incarnation = all
            .iter()
            .find(|i| i.sensor_id == sensor.sensor_id)
            .map(|i| crate::sync::protocol::IncarnationInfo {
                name: i.name.clone(),
                install_sec: i.install_sec,
                manage_ip: i.manage_ip.clone(),
                earlier: i.earlier.iter().map(|n| n.sensor_id).collect(),
                later: i.later.iter().map(|n| n.sensor_id).collect(),
            });
    }
    s.digest = digest_of(s);
}

fn track_pcap(e: &KnownEntry, held_to: &mut u64, gap: &mut bool) {
    if *gap {
        return;
    }
    if e.kind == Kind::Pcap && !e.held {
        *gap = true;
    } else {
        *held_to = e.seq;
    }
}

/// The whole summary; `child_hops` gives, per sensor, the smallest hop count
/// among this node's children, and `child_below` their `below` sets.
pub fn build_summary(
    store: &Store,
    child_hops: &BTreeMap<u32, u32>,
    child_below: &[String],
) -> Result<Summary, StoreError> {
    let node_id = store.node_id()?;
    let mut sensors = Vec::new();
    for sensor in store.known_sensors()? {
        let hops = if store.is_origin_of(sensor)? {
            0
        } else {
            child_hops
                .get(&sensor)
                .map_or(u32::MAX, |h| h.saturating_add(1))
        };
        sensors.push(sensor_summary(store, sensor, hops)?);
    }
    let mut below: Vec<String> = child_below.to_vec();
    below.push(node_id.clone());
    below.sort();
    below.dedup();
    let mut s = Summary {
        protocol: PROTOCOL_VERSION,
        node_id,
        below,
        sensors,
        digest: String::new(),
    };
    s.digest = digest_of(&s);
    Ok(s)
}

/// blake3 over the summary's JSON with an empty digest field.
pub fn digest_of(s: &Summary) -> String {
    let mut copy = s.clone();
    copy.digest.clear();
    let json = serde_json::to_vec(&copy).unwrap_or_default();
    blake3::hash(&json).to_hex()[..32].to_string()
}
