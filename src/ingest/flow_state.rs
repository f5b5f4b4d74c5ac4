//! Where a sensor's open-flow table survives between runs.
//!
//! The table is derived state: it is what the sensor's pcap segments, read
//! in sequence order, leave open. So it is never written per commit (a
//! flood would rewrite a million flows into the index at every segment);
//! instead a **checkpoint** file holds the whole table as of one pcap
//! segment, written now and then (every [`CHECKPOINT_REPLAY_BYTES`] of
//! capture, and when a run ends), and a new run rebuilds the table by
//! loading the checkpoint and **replaying** the pcap segments committed
//! after it through the same flow code. The pcap segments are the log; the
//! checkpoint only bounds how much of it is read again.
//!
//! Format (docs/STORAGE.md §5.4): `DIR/flowstate/<sensor>-<pcap seq>.ft`,
//! one zstd frame of fixed-layout little-endian fields; the sensor's ingest
//! state names the file and its blake3, so a damaged or foreign file is
//! refused rather than trusted.
//!
//! Owns the checkpoint files; reads pcap segments only through the store;
//! writes nothing to the index (the reference travels in the sensor's
//! ingest state, committed by `ingest`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capture::decode;
use crate::flows::{DirState, Endpoint, FlowKey, FlowState, FlowTable, TableCounters};
use crate::net::IpNet;
use crate::records::IcmpFirst;
use crate::store::segment::{Kind, SegmentView, packet_items};
use crate::store::{Store, StoreError};

/// Raw pcap bytes after which a new checkpoint is written, bounding what a
/// restart after a crash replays.
pub const CHECKPOINT_REPLAY_BYTES: u64 = 256 * 1024 * 1024;

/// Folder of checkpoint files in the data directory.
pub const FLOWSTATE_DIR: &str = "flowstate";

/// Format 2: each flow ends with its first ICMP type and code.
const MAGIC: &[u8; 8] = b"LUMPYFT2";
/// Format 1 (read, no longer written): flows without ICMP type and code.
const MAGIC_V1: &[u8; 8] = b"LUMPYFT1";

/// What the sensor's ingest state says about its open-flow table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    /// The newest checkpoint, if any.
    pub checkpoint: Option<Checkpoint>,
    /// Origin sequence of the last pcap segment whose packets the table has
    /// seen (0: none).
    pub pcap_seq: u64,
    /// Raw pcap bytes committed after the checkpoint (what a restart
    /// replays).
    pub replay_bytes: u64,
}

/// A checkpoint file and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The table as of this pcap segment (0: before any).
    pub pcap_seq: u64,
    /// File name in `DIR/flowstate/`.
    pub file: String,
    /// blake3 of the file, hex.
    pub blake3: String,
    pub open_flows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowStateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not the checkpoint the ingest state names: {detail}")]
    Foreign { path: PathBuf, detail: String },
    #[error("{path}: damaged open-flow checkpoint: {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error("sensor {sensor}: an open flow kept in the index does not decode: {detail}")]
    IndexRow { sensor: u32, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Path of a checkpoint file.
pub fn checkpoint_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(FLOWSTATE_DIR).join(file)
}

/// Writes the table of `sensor_id` as of pcap segment `pcap_seq` to a new
/// checkpoint file (temp file, fsync, rename, fsync of the folder), and
/// removes this sensor's older checkpoints except `keep`.
pub fn write_checkpoint(
    dir: &Path,
    sensor_id: u32,
    pcap_seq: u64,
    table: &FlowTable,
    keep: Option<&Checkpoint>,
) -> Result<Checkpoint, FlowStateError> {
    let folder = dir.join(FLOWSTATE_DIR);
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FlowStateError::Io { path, source }
    };
    std::fs::create_dir_all(&folder).map_err(io_at(&folder))?;
    let file = format!("{sensor_id}-{pcap_seq}.ft");
    let path = folder.join(&file);
    let tmp = dir
        .join("tmp")
        .join(format!("flowstate-{sensor_id}-{}.part", std::process::id()));
    let (hash, open_flows) = {
        let out = std::fs::File::create(&tmp).map_err(io_at(&tmp))?;
        let mut hashing = HashingWriter {
            inner: io::BufWriter::with_capacity(1 << 20, out),
            hasher: blake3::Hasher::new(),
        };
        let count = encode(&mut hashing, sensor_id, pcap_seq, table).map_err(io_at(&tmp))?;
        let out = hashing.inner.into_inner().map_err(|e| FlowStateError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        out.sync_all().map_err(io_at(&tmp))?;
        (hashing.hasher.finalize(), count)
    };
    std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
    // A new folder must itself be durable in the data directory.
    sync_dir(&folder)?;
    sync_dir(dir)?;
    remove_stale(
        &folder,
        sensor_id,
        &[Some(file.as_str()), keep.map(|k| k.file.as_str())],
    );
    Ok(Checkpoint {
        pcap_seq,
        file,
        blake3: hash.to_hex().to_string(),
        open_flows,
    })
}

fn sync_dir(dir: &Path) -> Result<(), FlowStateError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| FlowStateError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Removes the sensor's checkpoint files other than `keep`: they belong to
/// states no commit names any more.
fn remove_stale(folder: &Path, sensor_id: u32, keep: &[Option<&str>]) {
    let prefix = format!("{sensor_id}-");
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix)
            && name.ends_with(".ft")
            && !keep.contains(&Some(name))
            && let Err(err) = std::fs::remove_file(e.path())
        {
            tracing::warn!(path = %e.path().display(), error = %err, "cannot remove an old open-flow checkpoint");
        }
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Header, flows by id, fragments; returns the number of flows.
fn encode(
    out: &mut impl Write,
    sensor_id: u32,
    pcap_seq: u64,
    table: &FlowTable,
) -> io::Result<u64> {
    let mut z = zstd::Encoder::new(out, 1)?;
    let counters = table.counters();
    z.write_all(MAGIC)?;
    z.write_all(&sensor_id.to_le_bytes())?;
    z.write_all(&pcap_seq.to_le_bytes())?;
    z.write_all(&counters.next_flow_id.to_le_bytes())?;
    z.write_all(&counters.latest_ns.to_le_bytes())?;
    z.write_all(&counters.evicted.to_le_bytes())?;
    z.write_all(&(table.open_count() as u64).to_le_bytes())?;
    z.write_all(&(counters.fragments.len() as u64).to_le_bytes())?;
    let mut result = Ok(());
    let mut count = 0u64;
    let mut buf = Vec::with_capacity(FLOW_LEN);
    table.for_each_open(|f| {
        if result.is_ok() {
            buf.clear();
            put_flow(&mut buf, f);
            result = z.write_all(&buf);
            count += 1;
        }
    });
    result?;
    for ((src, dst, proto, id), key, ts) in &counters.fragments {
        buf.clear();
        put_ip(&mut buf, *src);
        put_ip(&mut buf, *dst);
        buf.push(*proto);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.push(key.proto);
        put_endpoint(&mut buf, key.lo);
        put_endpoint(&mut buf, key.hi);
        buf.extend_from_slice(&ts.to_le_bytes());
        z.write_all(&buf)?;
    }
    z.finish()?.flush()?;
    Ok(count)
}

/// Bytes of one encoded flow.
const FLOW_LEN: usize = 4 + 1 + 1 + 2 * 19 + 2 * DIR_LEN + 3;
const DIR_LEN: usize = 8 + 8 + 8 + 8 + 1 + 1 + 4 + 2;

fn put_ip(b: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            b.push(4);
            b.extend_from_slice(&v4.to_ipv6_mapped().octets());
        }
        IpAddr::V6(v6) => {
            b.push(6);
            b.extend_from_slice(&v6.octets());
        }
    }
}

fn put_endpoint(b: &mut Vec<u8>, e: Endpoint) {
    put_ip(b, e.ip);
    b.extend_from_slice(&e.port.to_le_bytes());
}

fn put_dir(b: &mut Vec<u8>, d: &DirState) {
    b.extend_from_slice(&d.first_ns.to_le_bytes());
    b.extend_from_slice(&d.last_ns.to_le_bytes());
    b.extend_from_slice(&d.packets.to_le_bytes());
    b.extend_from_slice(&d.bytes.to_le_bytes());
    b.push(d.ip_flags);
    b.push(d.tcp_flags);
    b.extend_from_slice(&d.icmp_packets.to_le_bytes());
    b.extend_from_slice(&d.icmp_seen.to_le_bytes());
}

fn put_flow(b: &mut Vec<u8>, f: &FlowState) {
    b.extend_from_slice(&f.flow_id.to_le_bytes());
    b.push(f.proto);
    b.push(u8::from(f.is_local));
    put_endpoint(b, f.src);
    put_endpoint(b, f.dst);
    put_dir(b, &f.from_src);
    put_dir(b, &f.from_dst);
    match f.icmp_first {
        Some(i) => b.extend_from_slice(&[1, i.icmp_type, i.code]),
        None => b.extend_from_slice(&[0, 0, 0]),
    }
}

/// Reads fixed fields from a decompressed checkpoint.
struct Fields<R: Read> {
    inner: R,
}

impl<R: Read> Fields<R> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(self.bytes()?))
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn ip(&mut self) -> io::Result<IpAddr> {
        let family = self.u8()?;
        let octets: [u8; 16] = self.bytes()?;
        let v6 = Ipv6Addr::from(octets);
        match family {
            4 => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .ok_or_else(|| bad("an IPv4 address that is not IPv4-mapped")),
            6 => Ok(IpAddr::V6(v6)),
            _ => Err(bad("an unknown address family")),
        }
    }
    fn endpoint(&mut self) -> io::Result<Endpoint> {
        Ok(Endpoint {
            ip: self.ip()?,
            port: self.u16()?,
        })
    }
    fn dir(&mut self) -> io::Result<DirState> {
        Ok(DirState {
            first_ns: self.u64()?,
            last_ns: self.u64()?,
            packets: self.u64()?,
            bytes: self.u64()?,
            ip_flags: self.u8()?,
            tcp_flags: self.u8()?,
            icmp_packets: self.u32()?,
            icmp_seen: self.u16()?,
        })
    }
    /// One flow; `format` 1 has no ICMP type and code.
    fn flow(&mut self, format: u8) -> io::Result<FlowState> {
        let mut f = FlowState {
            flow_id: self.u32()?,
            proto: self.u8()?,
            is_local: self.u8()? != 0,
            src: self.endpoint()?,
            dst: self.endpoint()?,
            from_src: self.dir()?,
            from_dst: self.dir()?,
            icmp_first: None,
        };
        if format >= 2 {
            let [set, icmp_type, code] = self.bytes::<3>()?;
            f.icmp_first = (set != 0).then_some(IcmpFirst { icmp_type, code });
        }
        Ok(f)
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Loads the table a checkpoint holds, after checking that the file is the
/// one `cp` names (its blake3) and belongs to `sensor_id`.
pub fn load_checkpoint(
    dir: &Path,
    sensor_id: u32,
    cp: &Checkpoint,
    local_nets: Vec<IpNet>,
    budget_bytes: usize,
) -> Result<FlowTable, FlowStateError> {
    let path = checkpoint_path(dir, &cp.file);
    let io_at = |source| FlowStateError::Io {
        path: path.clone(),
        source,
    };
    let hash = {
        let mut f = std::fs::File::open(&path).map_err(io_at)?;
        let mut hasher = blake3::Hasher::new();
        io::copy(&mut f, &mut hasher).map_err(io_at)?;
        hasher.finalize()
    };
    if hash.to_hex().as_str() != cp.blake3 {
        return Err(FlowStateError::Foreign {
            path,
            detail: format!("blake3 {} instead of {}", hash.to_hex(), cp.blake3),
        });
    }
    let file = std::fs::File::open(&path).map_err(io_at)?;
    let damaged = |e: io::Error| FlowStateError::Damaged {
        path: path.clone(),
        detail: e.to_string(),
    };
    let z = zstd::Decoder::new(file).map_err(damaged)?;
    let mut r = Fields {
        inner: io::BufReader::new(z),
    };
    let (format, counters, flows) = read_header(&mut r, sensor_id, cp).map_err(damaged)?;
    let mut table = FlowTable::restore(sensor_id, local_nets, budget_bytes, counters, []);
    let mut fragments = Vec::new();
    let mut read_body = || -> io::Result<()> {
        for _ in 0..flows.0 {
            table.insert_restored(&r.flow(format)?);
        }
        for _ in 0..flows.1 {
            let fk = (r.ip()?, r.ip()?, r.u8()?, r.u32()?);
            let proto = r.u8()?;
            let key = FlowKey {
                proto,
                lo: r.endpoint()?,
                hi: r.endpoint()?,
            };
            fragments.push((fk, key, r.u64()?));
        }
        Ok(())
    };
    read_body().map_err(damaged)?;
    table.restore_fragments(fragments);
    Ok(table)
}

/// The header: format, counters, and how many flows and fragments follow.
fn read_header<R: Read>(
    r: &mut Fields<R>,
    sensor_id: u32,
    cp: &Checkpoint,
) -> io::Result<(u8, TableCounters, (u64, u64))> {
    let format = match &r.bytes::<8>()? {
        m if m == MAGIC => 2,
        m if m == MAGIC_V1 => 1,
        _ => return Err(bad("not an open-flow checkpoint (magic)")),
    };
    if r.u32()? != sensor_id || r.u64()? != cp.pcap_seq {
        return Err(bad("sensor or sequence differ from the ingest state's"));
    }
    let counters = TableCounters {
        next_flow_id: r.u32()?,
        latest_ns: r.u64()?,
        evicted: r.u64()?,
        fragments: Vec::new(),
    };
    Ok((format, counters, (r.u64()?, r.u64()?)))
}

/// What [`replay`] did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub segments: u64,
    pub packets: u64,
    /// Packets the replay gave another flow id than the stored one.
    pub diverged: u64,
    /// Pcap segments of the range this node does not hold (pruned).
    pub missing: u64,
}

/// Feeds the sensor's pcap segments after `from_seq` up to `to_seq` through
/// `table`, as ingest fed them, closing timed-out flows at each segment's
/// end as ingest's seal did. Rows are not published again.
pub fn replay(
    store: &Store,
    sensor_id: u32,
    from_seq: u64,
    to_seq: u64,
    table: &mut FlowTable,
) -> Result<Replayed, FlowStateError> {
    let mut done = Replayed::default();
    for seq in from_seq.saturating_add(1)..=to_seq {
        let Some(id) = store.segment_at(sensor_id, seq)? else {
            // A record segment's place, or one that left this store.
            if store.is_known_only(sensor_id, seq)? {
                done.missing += 1;
            }
            continue;
        };
        let bytes = match store.read_segment(&id) {
            Ok(b) => b,
            Err(e @ (StoreError::Missing { .. } | StoreError::HashMismatch { .. })) => {
                tracing::warn!(sensor = sensor_id, seq, error = %e, "open-flow replay: segment unreadable, skipped");
                done.missing += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let view = SegmentView::parse(&bytes).map_err(|source| StoreError::Segment {
            id,
            path: store.segment_path(&id),
            source,
        })?;
        if view.header.kind != Kind::Pcap {
            continue;
        }
        replay_segment(&view, table, &mut done).map_err(|source| StoreError::Segment {
            id,
            path: store.segment_path(&id),
            source,
        })?;
        done.segments += 1;
    }
    Ok(done)
}

fn replay_segment(
    view: &SegmentView<'_>,
    table: &mut FlowTable,
    done: &mut Replayed,
) -> Result<(), crate::store::segment::SegmentError> {
    let link_type = view.header.link_type;
    for b in 0..view.blocks.len() as u32 {
        let block = view.block(b)?;
        for item in packet_items(&block) {
            let item = item?;
            let flow_id = match decode(link_type, item.data) {
                Ok(info) => match info.net {
                    Some(net) => table.observe(item.ts_ns, item.orig_len, &net).flow_id,
                    None => 0,
                },
                Err(_) => 0,
            };
            done.packets += 1;
            if flow_id != item.flow_id {
                done.diverged += 1;
            }
        }
    }
    loop {
        table.expire();
        table.discard_changes();
        if !table.more_to_expire() {
            return Ok(());
        }
    }
}

/// A table restored from the open flows an older version of lumpy kept in
/// the index (`open_flows` rows, JSON), for the first run after an upgrade.
pub fn from_index_rows(
    sensor_id: u32,
    local_nets: Vec<IpNet>,
    budget_bytes: usize,
    counters: TableCounters,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<FlowTable, FlowStateError> {
    let mut flows = Vec::with_capacity(rows.len().min(1 << 20));
    for (_, v) in rows {
        let flow =
            serde_json::from_slice::<FlowState>(&v).map_err(|e| FlowStateError::IndexRow {
                sensor: sensor_id,
                detail: e.to_string(),
            })?;
        flows.push(flow);
    }
    Ok(FlowTable::restore(
        sensor_id,
        local_nets,
        budget_bytes,
        counters,
        flows,
    ))
}
