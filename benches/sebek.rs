//! Sebek benchmark: records decoded and tracked per second (the origin side:
//! `sebek::Tracker`), and records applied to the SQLite mirror per second with
//! their socket -> flow joins (half the sockets find their flow at once, half
//! wait in `x_pending_socket` until the flow arrives).
//!
//! Run with `cargo bench --bench sebek` (LUMPY_BENCH_SEBEK=N sets the number of
//! sebek records, default 1,000,000). Prints a Markdown table for
//! docs/BENCHMARKS.md.

use std::net::Ipv4Addr;
use std::time::Instant;

use lumpy::mirror::Mirror;
use lumpy::records::{FlowDirection, FlowRecord, Record};
use lumpy::sebek::generate::{Event, HONEYPOT, read};
use lumpy::sebek::sessions::Origin;
use lumpy::sebek::{RecordKind, SocketRecord, Tracker};
use lumpy::store::SegmentId;

const SENSOR: u32 = 1;
const START: u32 = 1_300_000_000;

/// One sebek payload: a keystroke read, an open, or (every 16th) a connect.
fn payload(i: u32, out: &mut Vec<u8>) {
    let pid = 2000 + i / 64;
    let ppid = 1000 + i / 4096;
    let sock;
    let e = match i % 16 {
        0 => {
            sock = SocketRecord {
                remote_ip: u32::from_be_bytes([203, 0, 113, 9]),
                remote_port: 80,
                local_ip: u32::from_be_bytes(HONEYPOT),
                local_port: 1024 + (i / 16 % 60_000) as u16,
                call: 3,
                proto: 6,
            }
            .encode();
            Event {
                kind: RecordKind::Socket,
                pid,
                ppid,
                com: "wget",
                fd: 4,
                inode: 1,
                uid: 0,
                data: &sock,
            }
        }
        1 => Event {
            kind: RecordKind::Open,
            pid,
            ppid,
            com: "bash",
            fd: 3,
            inode: 2,
            uid: 0,
            data: b"/etc/passwd",
        },
        _ => read(pid, ppid, "bash", 0, b"k"),
    };
    let h = lumpy::sebek::Header {
        magic: 0,
        version: 3,
        kind: e.kind,
        counter: i + 1,
        time_sec: START + i / 100,
        time_usec: 0,
        parent_pid: e.ppid,
        pid: e.pid,
        uid: 0,
        fd: e.fd,
        inode: e.inode,
        com: *b"bash\0\0\0\0\0\0\0\0",
        length: 0,
    };
    out.clear();
    lumpy::sebek::decode::encode(&h, e.data, out);
}

fn flow_for(i: u32, flow_id: u32) -> FlowRecord {
    let sec = START + i / 100;
    let dir = FlowDirection {
        start_sec: sec,
        end_sec: sec,
        packets: 1,
        bytes: 60,
        tcp_flags: 0x12,
        ..FlowDirection::default()
    };
    FlowRecord {
        sensor_id: SENSOR,
        flow_id,
        version: 1,
        src_ip: Ipv4Addr::from(HONEYPOT).into(),
        dst_ip: Ipv4Addr::new(203, 0, 113, 9).into(),
        src_port: 1024 + (i / 16 % 60_000) as u16,
        dst_port: 80,
        ip_proto: 6,
        src: dir,
        dst: dir,
        is_local: true,
        marker_flags: 0,
        client_os_id: 0,
        server_os_id: 0,
        closed: true,
        evicted: false,
        icmp_first: None,
    }
}

fn main() {
    let n: u32 = std::env::var("LUMPY_BENCH_SEBEK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut payloads = Vec::with_capacity(n as usize);
    let mut buf = Vec::new();
    for i in 0..n {
        payload(i, &mut buf);
        payloads.push(buf.clone());
    }
    // Origin side: decode + process tracking + record building.
    let mut tracker = Tracker::default();
    let t = Instant::now();
    let mut records = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let at = Origin {
            sensor_id: SENSOR,
            src_ip: Ipv4Addr::from(HONEYPOT),
            pcap_sec: START + i as u32 / 100,
        };
        tracker.observe(at, p).expect("valid sebek");
        if i % 65_536 == 65_535 {
            records.extend(tracker.take_records(i as u64));
        }
    }
    records.extend(tracker.take_records(u64::from(n)));
    let decode_secs = t.elapsed().as_secs_f64();
    // Mirror side: apply in segments of 10,000 records; the flows of the
    // even sockets are applied before them, of the odd ones after.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = Mirror::open(&dir.path().join("m.sqlite")).expect("mirror");
    let sockets: Vec<u32> = (0..n).filter(|i| i % 16 == 0).collect();
    let (before, after): (Vec<_>, Vec<_>) = sockets
        .iter()
        .enumerate()
        .map(|(k, i)| Record::Flow(flow_for(*i, k as u32 + 1)))
        .enumerate()
        .partition(|(k, _)| k % 2 == 0);
    let before: Vec<Record> = before.into_iter().map(|(_, r)| r).collect();
    let after: Vec<Record> = after.into_iter().map(|(_, r)| r).collect();
    mirror
        .apply(&SegmentId::of(b"flows-before"), &before)
        .expect("apply");
    let t = Instant::now();
    for (k, chunk) in records.chunks(10_000).enumerate() {
        mirror
            .apply(&SegmentId::of(format!("sebek{k}").as_bytes()), chunk)
            .expect("apply");
    }
    mirror
        .apply(&SegmentId::of(b"flows-after"), &after)
        .expect("apply");
    let apply_secs = t.elapsed().as_secs_f64();
    let conn = rusqlite::Connection::open(dir.path().join("m.sqlite")).expect("open");
    let joined: i64 = conn
        .query_row(
            "SELECT count(*) FROM sys_socket WHERE flow_id != 0",
            [],
            |r| r.get(0),
        )
        .expect("count");
    let pending: i64 = conn
        .query_row("SELECT count(*) FROM x_pending_socket", [], |r| r.get(0))
        .expect("count");
    assert_eq!(joined as usize, sockets.len(), "every socket joined");
    assert_eq!(pending, 0);
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| sebek records decoded and tracked (origin) | {n} in {decode_secs:.2} s, **{:.0} records/s** |",
        f64::from(n) / decode_secs
    );
    println!(
        "| sebek rows applied to the mirror with socket joins ({} records, {} sockets, half deferred) | {apply_secs:.2} s, **{:.0} records/s** |",
        records.len(),
        sockets.len(),
        records.len() as f64 / apply_secs
    );
}
