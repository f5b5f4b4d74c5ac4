//! `verify`: proves that every segment file matches its id and every index
//! entry points at something real (docs/STORAGE.md §8).
//!
//! Owns the checks and the report. Reads only: it never repairs, moves or
//! deletes anything, so running it on a damaged store is always safe.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::PathBuf;

use super::{SegmentId, SegmentMeta, SegmentView, Store, StoreError};

/// One problem found by verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub segment: Option<SegmentId>,
    pub path: Option<PathBuf>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.segment, &self.path) {
            (Some(id), Some(p)) => write!(f, "segment {id} ({}): {}", p.display(), self.what),
            (Some(id), None) => write!(f, "segment {id}: {}", self.what),
            (None, Some(p)) => write!(f, "{}: {}", p.display(), self.what),
            (None, None) => f.write_str(&self.what),
        }
    }
}

/// What verify found.
#[derive(Debug, Default)]
pub struct Report {
    pub segments_checked: u64,
    pub bytes_hashed: u64,
    pub index_entries_checked: u64,
    pub problems: Vec<Problem>,
    /// Segment files with no index entry: left by a write interrupted between
    /// rename and commit. Harmless; the next ingest of the same data adopts them.
    pub unindexed: Vec<PathBuf>,
    /// Whether the index file's bytes could be checked against the seal its
    /// last clean close wrote (§6.4); entries are checked in every case.
    pub index_seal: Option<super::seal::SealCheck>,
    /// Deep mode: pcap segments whose packets were decoded to re-derive the
    /// flow index, and flow index entries compared with what they derived.
    pub deep_pcap_segments: u64,
    pub deep_flow_entries: u64,
    /// Deep mode: the flow index re-derived from the pcap segments,
    /// (sensor, flow, sequence) -> blocks.
    derived: Option<HashMap<(u32, u32, u64), Vec<u32>>>,
}

/// How much verify does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also decode every pcap segment and compare the flow index with what
    /// the packets say (slower: decompresses everything).
    pub deep: bool,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs every check; `progress` is called with the bytes hashed so far.
pub fn verify(store: &Store, progress: impl FnMut(u64)) -> Result<Report, StoreError> {
    verify_with(store, Options::default(), progress)
}

/// `verify` with options.
pub fn verify_with(
    store: &Store,
    options: Options,
    mut progress: impl FnMut(u64),
) -> Result<Report, StoreError> {
    let mut report = Report {
        derived: options.deep.then(HashMap::new),
        index_seal: Some(store.seal_check().clone()),
        ..Report::default()
    };
    // The chunks not written since the open are compared with the seal
    // here (those written were compared before their first write); a
    // change lands in the marker, reported just below.
    if let Err(e) = store.check_index_seal() {
        report.problems.push(Problem {
            segment: None,
            path: Some(store.index_path()),
            what: format!("the index file cannot be compared with its seal: {e}"),
        });
    }
    // The marker outlives the open that found the change, so every verify
    // reports it until `repair` rewrites the index.
    if let Some(why) = super::seal::damage(store.dir()) {
        report.problems.push(Problem {
            segment: None,
            path: Some(store.index_path()),
            what: why,
        });
    }
    let index_problem = |e: StoreError| Problem {
        segment: None,
        path: Some(store.index_path()),
        what: format!("the index cannot be read: {e}"),
    };
    let indexed: HashMap<SegmentId, SegmentMeta> = match store.guarded(|| store.all_segments()) {
        Ok(all) => all.into_iter().map(|m| (m.id, m)).collect(),
        Err(e) => {
            // The segments are still checked on their own: each file's name
            // is its hash, so damage to them is found without the index.
            report.problems.push(index_problem(e));
            let on_disk = list_segment_files(store, &mut report)?;
            check_files(&on_disk, &HashMap::new(), &mut report, &mut progress);
            return Ok(report);
        }
    };
    let on_disk = list_segment_files(store, &mut report)?;
    check_files(&on_disk, &indexed, &mut report, &mut progress);
    let present: HashSet<SegmentId> = on_disk.iter().map(|(id, _)| *id).collect();
    for id in indexed.keys() {
        if !present.contains(id) {
            report.problems.push(Problem {
                segment: Some(*id),
                path: Some(store.segment_path(id)),
                what: "indexed but the file is missing".into(),
            });
        }
    }
    for e in [
        store.guarded(|| check_sequence(store, &indexed, &mut report)),
        store.guarded(|| check_flow_blocks(store, &indexed, &mut report)),
    ]
    .into_iter()
    .filter_map(Result::err)
    {
        report.problems.push(index_problem(e));
    }
    match store.guarded(|| store.quarantined()) {
        Ok(list) => {
            for (id, why) in list {
                report.problems.push(Problem {
                    segment: Some(id),
                    path: Some(store.segment_path(&id)),
                    what: format!(
                        "quarantined: its records cannot be read ({why}); `lumpy repair` puts a damaged file back, `lumpy repair --drop-quarantined` drops it"
                    ),
                });
            }
        }
        Err(e) => report.problems.push(index_problem(e)),
    }
    for (table, why) in store.unreadable_tables() {
        report.problems.push(Problem {
            segment: None,
            path: Some(store.index_path()),
            what: format!("table {table} cannot be read whole: {why}"),
        });
    }
    Ok(report)
}

fn list_segment_files(
    store: &Store,
    report: &mut Report,
) -> Result<Vec<(SegmentId, PathBuf)>, StoreError> {
    let root = store.dir().join("segments");
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| StoreError::Io { path, source }
    };
    let mut out = Vec::new();
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .map_err(io(&root))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        if !dir.is_dir() {
            report.problems.push(Problem {
                segment: None,
                path: Some(dir),
                what: "unexpected file in segments/".into(),
            });
            continue;
        }
        let mut files: Vec<_> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match SegmentId::from_hex(name) {
                Some(id) if store.segment_path(&id) == path => out.push((id, path)),
                _ => report.problems.push(Problem {
                    segment: None,
                    path: Some(path),
                    what: "file name is not a segment id in its right directory".into(),
                }),
            }
        }
    }
    Ok(out)
}

/// Hashes the files on two threads (blake3 is fast enough that one thread
/// waits on reads), merging the findings in file order.
fn check_files(
    files: &[(SegmentId, PathBuf)],
    indexed: &HashMap<SegmentId, SegmentMeta>,
    report: &mut Report,
    progress: &mut impl FnMut(u64),
) {
    const CHUNK: usize = 64;
    for group in files.chunks(CHUNK * 2) {
        let (left, right) = group.split_at(group.len().min(CHUNK));
        let deep = report.derived.is_some();
        let run = |part: &[(SegmentId, PathBuf)]| {
            let mut r = Report {
                derived: deep.then(HashMap::new),
                ..Report::default()
            };
            let mut buf = Vec::new();
            for (id, path) in part {
                check_file(*id, path, indexed.get(id), &mut buf, &mut r);
            }
            r
        };
        let (a, b) = std::thread::scope(|s| {
            let handle = s.spawn(|| run(right));
            let a = run(left);
            let b = handle.join().unwrap_or_else(|_| Report {
                problems: vec![Problem {
                    segment: None,
                    path: None,
                    what: "a verify worker failed; these files were not checked".into(),
                }],
                ..Report::default()
            });
            (a, b)
        });
        for r in [a, b] {
            report.segments_checked += r.segments_checked;
            report.bytes_hashed += r.bytes_hashed;
            report.problems.extend(r.problems);
            report.unindexed.extend(r.unindexed);
            report.deep_pcap_segments += r.deep_pcap_segments;
            if let (Some(all), Some(part)) = (report.derived.as_mut(), r.derived) {
                all.extend(part);
            }
        }
        progress(report.bytes_hashed);
    }
}

fn check_file(
    id: SegmentId,
    path: &PathBuf,
    meta: Option<&SegmentMeta>,
    buf: &mut Vec<u8>,
    report: &mut Report,
) {
    report.segments_checked += 1;
    let problem = |what: String| Problem {
        segment: Some(id),
        path: Some(path.clone()),
        what,
    };
    buf.clear();
    if let Err(e) = fs::File::open(path).and_then(|mut f| f.read_to_end(buf)) {
        report.problems.push(problem(format!("cannot read: {e}")));
        return;
    }
    report.bytes_hashed += buf.len() as u64;
    let actual = SegmentId::of(buf);
    if actual != id {
        report.problems.push(problem(format!(
            "content hash is {actual}: the file is damaged"
        )));
        return;
    }
    let view = match SegmentView::parse(buf) {
        Ok(v) => v,
        Err(e) => {
            report.problems.push(problem(format!("structure: {e}")));
            return;
        }
    };
    let Some(meta) = meta else {
        report.unindexed.push(path.clone());
        return;
    };
    if let Some(derived) = report.derived.as_mut()
        && view.header.kind == super::Kind::Pcap
    {
        match super::catalog::flow_blocks_of(&view) {
            Ok(map) => {
                report.deep_pcap_segments += 1;
                for (flow, blocks) in map {
                    derived.insert(
                        (view.header.sensor_id, flow, view.header.origin_seq),
                        blocks,
                    );
                }
            }
            Err(e) => report
                .problems
                .push(problem(format!("packets cannot be decoded: {e}"))),
        }
    }
    if let Some(diff) = meta_differs(meta, &view, buf.len() as u64) {
        report.problems.push(problem(format!(
            "index entry disagrees with the file: {diff}"
        )));
    }
}

fn meta_differs(m: &SegmentMeta, v: &SegmentView<'_>, len: u64) -> Option<String> {
    let h = &v.header;
    let checks = [
        (m.sensor_id as u64 == h.sensor_id as u64, "sensor"),
        (m.kind == h.kind, "kind"),
        (m.origin_seq == h.origin_seq, "origin sequence"),
        (m.time_first_ns == h.time_first_ns, "first time"),
        (m.time_last_ns == h.time_last_ns, "last time"),
        (m.item_count == h.item_count, "item count"),
        (m.raw_bytes == v.raw_total, "raw size"),
        (m.stored_bytes == len, "stored size"),
        (m.block_count as usize == v.blocks.len(), "block count"),
        (m.link_type == h.link_type, "link type"),
    ];
    checks
        .iter()
        .find(|(ok, _)| !ok)
        .map(|(_, name)| (*name).to_string())
}

fn check_sequence(
    store: &Store,
    indexed: &HashMap<SegmentId, SegmentMeta>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let seq = store.sensor_sequence()?;
    let mut seen = HashSet::new();
    for ((sensor, s), id) in seq {
        report.index_entries_checked += 1;
        seen.insert(id);
        match indexed.get(&id) {
            Some(m) if m.sensor_id == sensor && m.origin_seq == s => {}
            Some(_) => report.problems.push(Problem {
                segment: Some(id),
                path: Some(store.segment_path(&id)),
                what: format!(
                    "sensor_seq ({sensor}, {s}) points at a segment of another sensor or sequence"
                ),
            }),
            None => report.problems.push(Problem {
                segment: Some(id),
                path: None,
                what: format!("sensor_seq ({sensor}, {s}) points at a segment that is not indexed"),
            }),
        }
    }
    for id in indexed.keys() {
        report.index_entries_checked += 1;
        if !seen.contains(id) {
            report.problems.push(Problem {
                segment: Some(*id),
                path: Some(store.segment_path(id)),
                what: "segment has no sensor_seq entry".into(),
            });
        }
    }
    Ok(())
}

fn check_flow_blocks(
    store: &Store,
    indexed: &HashMap<SegmentId, SegmentMeta>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let by_seq: HashMap<(u32, u64), &SegmentMeta> = indexed
        .values()
        .map(|m| ((m.sensor_id, m.origin_seq), m))
        .collect();
    store.for_each_flow_blocks(|((sensor, flow, seq), blocks)| {
        report.index_entries_checked += 1;
        let Some(m) = by_seq.get(&(sensor, seq)) else {
            if store.is_known_only(sensor, seq)? {
                // Pruned (or never held): the index keeps naming it so a
                // request is answered "aged out".
                return Ok(());
            }
            report.problems.push(Problem {
                segment: None,
                path: None,
                what: format!(
                    "flow_blocks ({sensor}, {flow}, {seq}) names a segment that is not indexed"
                ),
            });
            return Ok(());
        };
        if report.derived.is_some() {
            report.deep_flow_entries += 1;
        }
        if let Some(derived) = report.derived.as_mut()
            && derived.remove(&(sensor, flow, seq)).as_ref() != Some(&blocks)
        {
            report.problems.push(Problem {
                segment: Some(m.id),
                path: Some(store.segment_path(&m.id)),
                what: format!(
                    "flow_blocks ({sensor}, {flow}, {seq}) disagrees with the segment's packets"
                ),
            });
            return Ok(());
        }
        if blocks.is_empty() || blocks.iter().any(|b| *b >= m.block_count) {
            report.problems.push(Problem {
                segment: Some(m.id),
                path: Some(store.segment_path(&m.id)),
                what: format!(
                    "flow_blocks ({sensor}, {flow}, {seq}) names blocks outside the segment"
                ),
            });
        }
        Ok(())
    })?;
    if let Some(derived) = report.derived.take() {
        let mut left: Vec<_> = derived.into_keys().collect();
        left.sort_unstable();
        for (sensor, flow, seq) in left {
            let m = by_seq.get(&(sensor, seq));
            report.problems.push(Problem {
                segment: m.map(|m| m.id),
                path: m.map(|m| store.segment_path(&m.id)),
                what: format!(
                    "packets of flow {flow} (sensor {sensor}, sequence {seq}) have no flow_blocks entry"
                ),
            });
        }
    }
    Ok(())
}
