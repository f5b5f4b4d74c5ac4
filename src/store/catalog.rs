//! The catalogue side of the store: what a node knows of each sensor's
//! segment sequence (held here or only seen at a child), adding segments
//! fetched from a peer, the node id and the health of pull links.
//!
//! Owns the `known_segments`, `link_state`, `conflicts` and `quarantine`
//! tables and the `node_id` meta entry. Like the rest of `store`, it never decides what to fetch: `sync`
//! does, and hands verified bytes here.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableDatabase, ReadableTable};

use super::index::{FLOW_BLOCKS, KNOWN, LINKS, SEGMENTS, SENSOR_SEQ};
use super::segment::packet_items;
use super::{Kind, SegmentId, SegmentMeta, SegmentView, Store, StoreError};

/// What a child offered that contradicts what this node knows, by (child
/// name, sensor): a text naming the sequence place and both ids. While an
/// entry is there, that sensor's data from that child is not merged
/// (docs/STORAGE.md §6, docs/SECURITY.md). Created on first write.
const CONFLICTS: redb::TableDefinition<(&str, u32), &str> = redb::TableDefinition::new("conflicts");

/// Record segments held here whose records could not be read at the last
/// attempt (damaged, or never decodable): segment id -> why. The mirror
/// skips them; `verify` and `status` name them; `repair` puts a damaged file
/// back or, asked to, drops the segment (docs/STORAGE.md §6).
const QUARANTINE: redb::TableDefinition<&[u8; 32], &str> = redb::TableDefinition::new("quarantine");

/// One recorded conflict: a child offered something for a sensor that
/// contradicts what this node knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub child: String,
    pub sensor_id: u32,
    pub detail: String,
}

/// One place in a sensor's sequence: which segment is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownEntry {
    pub sensor_id: u32,
    pub seq: u64,
    pub id: SegmentId,
    pub kind: Kind,
    pub stored_bytes: u64,
    /// True when the segment file is in this store.
    pub held: bool,
    /// Newest item time of a held segment (ns since the epoch); 0 when not
    /// held (the summary's `newest_ns` is read from here, not per entry).
    pub newest_ns: u64,
}

/// What this node has where a child's catalogue entry points
/// ([`Store::offered_places`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfferedPlace {
    /// The id held or known at the entry's place of the sequence.
    pub at_place: Option<SegmentId>,
    /// The index entry of the offered id, when it is held here.
    pub held: Option<SegmentMeta>,
}

const KNOWN_LEN: usize = 32 + 1 + 8;

fn encode_known(e: &KnownEntry) -> [u8; KNOWN_LEN] {
    let mut b = [0u8; KNOWN_LEN];
    b[..32].copy_from_slice(&e.id.0);
    b[32] = e.kind as u8;
    b[33..41].copy_from_slice(&e.stored_bytes.to_le_bytes());
    b
}

pub(super) fn decode_known(sensor_id: u32, seq: u64, b: &[u8]) -> Result<KnownEntry, StoreError> {
    if b.len() != KNOWN_LEN {
        return Err(StoreError::CorruptEntry(format!(
            "known_segments ({sensor_id}, {seq})"
        )));
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&b[..32]);
    let kind = Kind::from_u8(b[32]).ok_or_else(|| {
        StoreError::CorruptEntry(format!("known_segments ({sensor_id}, {seq}) kind"))
    })?;
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[33..41]);
    Ok(KnownEntry {
        sensor_id,
        seq,
        id: SegmentId(id),
        kind,
        stored_bytes: u64::from_le_bytes(n),
        held: false,
        newest_ns: 0,
    })
}

impl Store {
    /// This node's random 128-bit id (hex), made on first use; peers use it
    /// to refuse links that would close a cycle.
    pub fn node_id(&self) -> Result<String, StoreError> {
        if let Some(b) = self.meta_get("node_id")? {
            return Ok(String::from_utf8_lossy(&b).into_owned());
        }
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| StoreError::Random(e.to_string()))?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        self.meta_set("node_id", id.as_bytes())?;
        Ok(id)
    }

    /// Every sensor this node holds or knows segments of.
    pub fn known_sensors(&self) -> Result<BTreeSet<u32>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let mut out = BTreeSet::new();
        for table in [SENSOR_SEQ] {
            let t = txn.open_table(table).map_err(|e| self.index_err(e))?;
            for row in t.iter().map_err(|e| self.index_err(e))? {
                let (k, _) = row.map_err(|e| self.index_err(e))?;
                out.insert(k.value().0);
            }
        }
        let t = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
        for row in t.iter().map_err(|e| self.index_err(e))? {
            let (k, _) = row.map_err(|e| self.index_err(e))?;
            out.insert(k.value().0);
        }
        Ok(out)
    }

    /// A sensor's sequence after `after`, held entries and known-only
    /// entries merged, at most `limit` entries, in sequence order.
    pub fn sequence_after(
        &self,
        sensor: u32,
        after: u64,
        limit: usize,
    ) -> Result<Vec<KnownEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let seq_t = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
        let seg_t = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
        let known_t = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
        let mut merged: BTreeMap<u64, KnownEntry> = BTreeMap::new();
        let lo = after.saturating_add(1);
        for row in known_t
            .range((sensor, lo)..=(sensor, u64::MAX))
            .map_err(|e| self.index_err(e))?
        {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            let (_, seq) = k.value();
            merged.insert(seq, decode_known(sensor, seq, v.value())?);
            if merged.len() > limit.saturating_mul(2) {
                break;
            }
        }
        for row in seq_t
            .range((sensor, lo)..=(sensor, u64::MAX))
            .map_err(|e| self.index_err(e))?
        {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            let (_, seq) = k.value();
            let id = SegmentId(*v.value());
            let meta = match seg_t.get(&id.0).map_err(|e| self.index_err(e))? {
                Some(m) => SegmentMeta::decode(id, m.value())?,
                None => continue,
            };
            merged.insert(
                seq,
                KnownEntry {
                    sensor_id: sensor,
                    seq,
                    id,
                    kind: meta.kind,
                    stored_bytes: meta.stored_bytes,
                    held: true,
                    newest_ns: meta.time_last_ns,
                },
            );
            if merged.len() > limit.saturating_mul(2) {
                break;
            }
        }
        Ok(merged.into_values().take(limit).collect())
    }

    /// Remembers catalogue entries seen at a child (not held here).
    pub fn record_known(&self, entries: &[KnownEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
            for e in entries {
                t.insert((e.sensor_id, e.seq), encode_known(e).as_slice())
                    .map_err(|e| self.index_err(e))?;
            }
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }

    /// Stores a segment fetched from a peer. The caller has already checked
    /// that `blake3(bytes) == id`; this checks the structure, writes the file
    /// atomically and indexes it (with the flow index of a pcap segment,
    /// rebuilt from the flow ids its packets carry) in one commit.
    pub fn add_verified_segment(
        &self,
        id: &SegmentId,
        bytes: &[u8],
    ) -> Result<SegmentMeta, StoreError> {
        let path = self.segment_path(id);
        let view = SegmentView::parse(bytes).map_err(|source| StoreError::Segment {
            id: *id,
            path: path.clone(),
            source,
        })?;
        let meta = SegmentMeta {
            id: *id,
            sensor_id: view.header.sensor_id,
            kind: view.header.kind,
            origin_seq: view.header.origin_seq,
            time_first_ns: view.header.time_first_ns,
            time_last_ns: view.header.time_last_ns,
            item_count: view.header.item_count,
            raw_bytes: view.raw_total,
            stored_bytes: bytes.len() as u64,
            block_count: view.blocks.len() as u32,
            link_type: view.header.link_type,
        };
        let flow_blocks = if meta.kind == Kind::Pcap {
            flow_blocks_of(&view).map_err(|source| StoreError::Segment {
                id: *id,
                path: path.clone(),
                source,
            })?
        } else {
            BTreeMap::new()
        };
        // Checked before the file is written and again inside the commit
        // (another pull loop may have taken the place in between).
        self.refuse_other_entry(&meta, self.entry_at(meta.sensor_id, meta.origin_seq)?)?;
        self.write_segment_bytes(id, bytes)?;
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut seq = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
            let mut known = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
            let held = seq
                .get((meta.sensor_id, meta.origin_seq))
                .map_err(|e| self.index_err(e))?
                .map(|v| SegmentId(*v.value()));
            let known_id = match known
                .get((meta.sensor_id, meta.origin_seq))
                .map_err(|e| self.index_err(e))?
            {
                Some(v) => Some(decode_known(meta.sensor_id, meta.origin_seq, v.value())?.id),
                None => None,
            };
            self.refuse_other_entry(&meta, held.or(known_id))?;
            let mut segments = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
            segments
                .insert(&id.0, meta.encode().as_slice())
                .map_err(|e| self.index_err(e))?;
            seq.insert((meta.sensor_id, meta.origin_seq), &id.0)
                .map_err(|e| self.index_err(e))?;
            known
                .remove((meta.sensor_id, meta.origin_seq))
                .map_err(|e| self.index_err(e))?;
            let mut fb = txn.open_table(FLOW_BLOCKS).map_err(|e| self.index_err(e))?;
            for (flow, blocks) in flow_blocks {
                let value: Vec<u8> = blocks.iter().flat_map(|b| b.to_le_bytes()).collect();
                fb.insert((meta.sensor_id, flow, meta.origin_seq), value.as_slice())
                    .map_err(|e| self.index_err(e))?;
            }
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(meta)
    }

    /// Sets aside a record segment whose records cannot be read.
    pub fn quarantine(&self, id: &SegmentId, why: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(QUARANTINE).map_err(|e| self.index_err(e))?;
            t.insert(&id.0, why).map_err(|e| self.index_err(e))?;
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }

    /// Takes a segment out of quarantine (its records were read after all).
    pub fn release(&self, id: &SegmentId) -> Result<(), StoreError> {
        if !self.quarantined()?.iter().any(|(q, _)| q == id) {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(QUARANTINE).map_err(|e| self.index_err(e))?;
            t.remove(&id.0).map_err(|e| self.index_err(e))?;
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }

    /// Every quarantined segment with the reason.
    pub fn quarantined(&self) -> Result<Vec<(SegmentId, String)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = match txn.open_table(QUARANTINE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.index_err(e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.index_err(e))? {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            out.push((SegmentId(*k.value()), v.value().to_string()));
        }
        Ok(out)
    }

    /// Drops a quarantined segment (`lumpy repair --drop-quarantined`): its
    /// file goes, its place stays known (so the sequence has no gap and a
    /// parent still sees the chain), and it leaves the quarantine.
    pub fn drop_quarantined(&self, id: &SegmentId) -> Result<(), StoreError> {
        self.forget_segment(id)?;
        self.release(id)
    }

    /// The id this node holds or knows at a place of a sensor's sequence.
    pub fn entry_at(&self, sensor: u32, seq: u64) -> Result<Option<SegmentId>, StoreError> {
        Ok(self.entries_at(&[(sensor, seq)])?.pop().flatten())
    }

    /// For each `(seq, id)` a child's catalogue lists for `sensor`: the id
    /// this node holds or knows at that place, and the index entry of `id`
    /// if it is held here. One read transaction for the whole page (a first
    /// sync walks tens of thousands of entries).
    pub fn offered_places(
        &self,
        sensor: u32,
        offered: &[(u64, SegmentId)],
    ) -> Result<Vec<OfferedPlace>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let seq_t = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
        let known_t = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
        let seg_t = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
        let mut out = Vec::with_capacity(offered.len());
        for (seq, id) in offered {
            let at_place = match seq_t.get((sensor, *seq)).map_err(|e| self.index_err(e))? {
                Some(v) => Some(SegmentId(*v.value())),
                None => match known_t.get((sensor, *seq)).map_err(|e| self.index_err(e))? {
                    Some(v) => Some(decode_known(sensor, *seq, v.value())?.id),
                    None => None,
                },
            };
            let held = match seg_t.get(&id.0).map_err(|e| self.index_err(e))? {
                Some(m) => Some(SegmentMeta::decode(*id, m.value())?),
                None => None,
            };
            out.push(OfferedPlace { at_place, held });
        }
        Ok(out)
    }

    /// [`Store::entry_at`] for many places in one read transaction.
    pub fn entries_at(&self, places: &[(u32, u64)]) -> Result<Vec<Option<SegmentId>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let seq_t = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
        let known_t = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
        let mut out = Vec::with_capacity(places.len());
        for &(sensor, seq) in places {
            out.push(
                match seq_t.get((sensor, seq)).map_err(|e| self.index_err(e))? {
                    Some(v) => Some(SegmentId(*v.value())),
                    None => match known_t.get((sensor, seq)).map_err(|e| self.index_err(e))? {
                        Some(v) => Some(decode_known(sensor, seq, v.value())?.id),
                        None => None,
                    },
                },
            );
        }
        Ok(out)
    }

    /// A place of a sequence, once known, is never given another id.
    fn refuse_other_entry(
        &self,
        meta: &SegmentMeta,
        present: Option<SegmentId>,
    ) -> Result<(), StoreError> {
        match present {
            Some(there) if there != meta.id => Err(StoreError::SequenceConflict {
                sensor: meta.sensor_id,
                seq: meta.origin_seq,
                held: there,
                offered: meta.id,
            }),
            _ => Ok(()),
        }
    }

    /// Records that `child` offered something for `sensor` that contradicts
    /// this node; the first record stays (it names what was seen first).
    pub fn record_conflict(
        &self,
        child: &str,
        sensor: u32,
        detail: &str,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(CONFLICTS).map_err(|e| self.index_err(e))?;
            let present = t
                .get((child, sensor))
                .map_err(|e| self.index_err(e))?
                .is_some();
            if !present {
                t.insert((child, sensor), detail)
                    .map_err(|e| self.index_err(e))?;
            }
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }

    /// Every recorded conflict, by child and sensor.
    pub fn conflicts(&self) -> Result<Vec<Conflict>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = match txn.open_table(CONFLICTS) {
            Ok(t) => t,
            // Never written: no conflict was ever recorded.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.index_err(e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.index_err(e))? {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            let (child, sensor_id) = k.value();
            out.push(Conflict {
                child: child.to_string(),
                sensor_id,
                detail: v.value().to_string(),
            });
        }
        Ok(out)
    }

    /// The conflicts recorded for one child.
    pub fn conflicts_of(&self, child: &str) -> Result<Vec<Conflict>, StoreError> {
        Ok(self
            .conflicts()?
            .into_iter()
            .filter(|c| c.child == child)
            .collect())
    }

    /// Forgets a child's conflicts (`lumpy child remove`, `lumpy child
    /// clear-conflicts`): its sensors are merged again from the next pull,
    /// under the same checks.
    pub fn clear_conflicts(&self, child: &str) -> Result<usize, StoreError> {
        let mine = self.conflicts_of(child)?;
        if mine.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(CONFLICTS).map_err(|e| self.index_err(e))?;
            for c in &mine {
                t.remove((child, c.sensor_id))
                    .map_err(|e| self.index_err(e))?;
            }
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(mine.len())
    }

    pub fn link_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(LINKS).map_err(|e| self.index_err(e))?;
        Ok(t.get(name)
            .map_err(|e| self.index_err(e))?
            .map(|v| v.value().to_vec()))
    }

    pub fn set_link_state(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(LINKS).map_err(|e| self.index_err(e))?;
            t.insert(name, value).map_err(|e| self.index_err(e))?;
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }

    /// The held segment at a place of a sensor's sequence.
    pub fn segment_at(&self, sensor: u32, seq: u64) -> Result<Option<SegmentId>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
        Ok(t.get((sensor, seq))
            .map_err(|e| self.index_err(e))?
            .map(|v| SegmentId(*v.value())))
    }

    /// True when a place of a sensor's sequence is known but not held
    /// (a pcap segment left at a child, or pruned here).
    pub fn is_known_only(&self, sensor: u32, seq: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
        Ok(t.get((sensor, seq))
            .map_err(|e| self.index_err(e))?
            .is_some())
    }

    /// Records what parent `peer` says it has committed of each sensor's
    /// pcap: every pcap segment up to that sequence (its summary's
    /// `pcap_held_to`). Marks only rise: a parent that pruned its own copy
    /// does not make this node keep pcap again.
    pub fn note_mirror_marks(&self, peer: &str, marks: &[(u32, u64)]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn
                .open_table(super::index::META)
                .map_err(|e| self.index_err(e))?;
            for (sensor, seq) in marks {
                let key = format!("mirror_mark:{peer}:{sensor}");
                let before = t
                    .get(key.as_str())
                    .map_err(|e| self.index_err(e))?
                    .map(|v| decode_mark(v.value()))
                    .unwrap_or(0);
                if *seq > before {
                    t.insert(key.as_str(), seq.to_le_bytes().as_slice())
                        .map_err(|e| self.index_err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.index_err(e))
    }

    /// Records that parent `peer` pulls over a mirror link (it said so).
    pub fn note_mirroring_peer(&self, peer: &str) -> Result<(), StoreError> {
        let key = format!("mirror_peer:{peer}");
        if self.meta_get(&key)?.is_none() {
            self.meta_set(&key, b"1")?;
        }
        Ok(())
    }

    /// Parents that mirror this node's pcap (they said so), each with the
    /// sequence of `sensor` up to which it has committed every pcap segment
    /// (0: nothing yet). Only that mark lets `prune` drop a segment.
    pub fn mirroring_peers(&self, sensor: u32) -> Result<BTreeMap<String, u64>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let meta = txn
            .open_table(super::index::META)
            .map_err(|e| self.index_err(e))?;
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for row in meta
            .range("mirror_peer:".."mirror_peer;")
            .map_err(|e| self.index_err(e))?
        {
            let (k, _) = row.map_err(|e| self.index_err(e))?;
            if let Some(peer) = k.value().strip_prefix("mirror_peer:") {
                out.insert(peer.to_string(), 0);
            }
        }
        for (peer, mark) in out.iter_mut() {
            let key = format!("mirror_mark:{peer}:{sensor}");
            if let Some(v) = meta.get(key.as_str()).map_err(|e| self.index_err(e))? {
                *mark = decode_mark(v.value());
            }
        }
        Ok(out)
    }

    /// Every link state, by child name.
    pub fn all_link_states(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.index_err(e))?;
        let t = txn.open_table(LINKS).map_err(|e| self.index_err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.index_err(e))? {
            let (k, v) = row.map_err(|e| self.index_err(e))?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    pub fn remove_link_state(&self, name: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut t = txn.open_table(LINKS).map_err(|e| self.index_err(e))?;
            t.remove(name).map_err(|e| self.index_err(e))?;
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        self.bump_generation();
        Ok(())
    }

    /// True when this node ingests the sensor itself (it is its origin).
    pub fn is_origin_of(&self, sensor: u32) -> Result<bool, StoreError> {
        Ok(self.ingest_state(sensor)?.is_some())
    }

    /// Forgets an index entry whose file is damaged, so the segment can be
    /// fetched again (used when a held segment fails its hash).
    pub fn forget_segment(&self, id: &SegmentId) -> Result<(), StoreError> {
        let Some(meta) = self.segment_meta(id)? else {
            return Ok(());
        };
        let txn = self.db.begin_write().map_err(|e| self.index_err(e))?;
        {
            let mut segments = txn.open_table(SEGMENTS).map_err(|e| self.index_err(e))?;
            segments.remove(&id.0).map_err(|e| self.index_err(e))?;
            let mut seq = txn.open_table(SENSOR_SEQ).map_err(|e| self.index_err(e))?;
            seq.remove((meta.sensor_id, meta.origin_seq))
                .map_err(|e| self.index_err(e))?;
            let mut known = txn.open_table(KNOWN).map_err(|e| self.index_err(e))?;
            let entry = KnownEntry {
                sensor_id: meta.sensor_id,
                seq: meta.origin_seq,
                id: *id,
                kind: meta.kind,
                stored_bytes: meta.stored_bytes,
                held: false,
                newest_ns: 0,
            };
            known
                .insert(
                    (meta.sensor_id, meta.origin_seq),
                    encode_known(&entry).as_slice(),
                )
                .map_err(|e| self.index_err(e))?;
        }
        txn.commit().map_err(|e| self.index_err(e))?;
        let _ = std::fs::remove_file(self.segment_path(id));
        self.bump_generation();
        Ok(())
    }
}

fn decode_mark(b: &[u8]) -> u64 {
    b.try_into().map(u64::from_le_bytes).unwrap_or(0)
}

/// Flow id -> blocks holding its packets, read from the items themselves.
pub(crate) fn flow_blocks_of(
    view: &SegmentView<'_>,
) -> Result<BTreeMap<u32, Vec<u32>>, super::SegmentError> {
    flow_blocks_by(view.blocks.len() as u32, |i| view.block(i))
}

/// [`flow_blocks_of`] for `count` blocks read one at a time by `block`
/// (from memory or from a file: only one block is held at once).
pub(crate) fn flow_blocks_by(
    count: u32,
    mut block: impl FnMut(u32) -> Result<Vec<u8>, super::SegmentError>,
) -> Result<BTreeMap<u32, Vec<u32>>, super::SegmentError> {
    let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for i in 0..count {
        let block = block(i)?;
        for item in packet_items(&block) {
            let item = item?;
            if item.flow_id != 0 {
                let blocks = out.entry(item.flow_id).or_default();
                if blocks.last() != Some(&i) {
                    blocks.push(i);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SegmentBuilder;

    fn segment(sensor: u32, seq: u64) -> crate::store::SealedSegment {
        let mut b = SegmentBuilder::new(Kind::Pcap, sensor, 1, 1);
        b.push_packet(seq, 0, 60, &[seq as u8; 60]).unwrap();
        b.seal(seq).unwrap()
    }

    /// One transaction for a page answers as the per-entry lookups do:
    /// held places, known-only places, free places, and ids held at
    /// another place.
    #[test]
    fn offered_places_agree_with_the_lookups_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let held = segment(9, 1);
        store.add_verified_segment(&held.id, &held.bytes).unwrap();
        let known = segment(9, 2);
        store
            .record_known(&[KnownEntry {
                sensor_id: 9,
                seq: 2,
                id: known.id,
                kind: Kind::Pcap,
                stored_bytes: known.bytes.len() as u64,
                held: false,
                newest_ns: 0,
            }])
            .unwrap();
        let free = segment(9, 3);
        let offered = [
            (1, held.id),
            (2, known.id),
            (3, free.id),
            // The held segment offered at another place.
            (4, held.id),
            // Another id where one is known.
            (2, free.id),
        ];
        let got = store.offered_places(9, &offered).unwrap();
        for ((seq, id), place) in offered.iter().zip(&got) {
            assert_eq!(place.at_place, store.entry_at(9, *seq).unwrap(), "{seq}");
            assert_eq!(place.held, store.segment_meta(id).unwrap(), "{seq}");
        }
        assert_eq!(got[0].at_place, Some(held.id));
        assert_eq!(got[1].at_place, Some(known.id));
        assert_eq!(
            got[2],
            OfferedPlace {
                at_place: None,
                held: None
            }
        );
        assert_eq!(got[3].held.map(|m| m.origin_seq), Some(1));
        let places = [(9, 1), (9, 2), (9, 3), (8, 1)];
        let at = store.entries_at(&places).unwrap();
        assert_eq!(at, vec![Some(held.id), Some(known.id), None, None]);
        // The held entry carries its newest time for the summary.
        let seq = store.sequence_after(9, 0, 10).unwrap();
        assert_eq!(seq[0].newest_ns, held.header.time_last_ns);
        assert_eq!(seq[1].newest_ns, 0);
    }
}
