//! Ingest, mirror and verify benchmarks, side by side with zstd in one run.
//!
//! Run with `cargo bench --bench ingest` (LUMPY_BENCH_GIB=N changes the
//! capture size, default 1; LUMPY_BENCH_CAPTURE=PATH keeps the capture;
//! LUMPY_BENCH_TRAFFIC=bulk repeats only the fixture's HTTP download, few
//! flows per byte, instead of all of its traffic). It builds a capture of
//! real fixture traffic (fixtures/honeynet.pcap repeated with shifted
//! timestamps), then times:
//! `lumpy ingest` (with its peak resident memory), `zstd -3` and
//! `zstd -3 -T2` on the same file (best of LUMPY_BENCH_RUNS, default 2, in
//! turns; zstd writes its output to a file beside the node, in
//! LUMPY_BENCH_DIR, default the system temp dir), rebuilding the SQLite mirror from the
//! record segments, and `lumpy verify`. Results go to stdout as a Markdown
//! table for docs/BENCHMARKS.md.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{all_packets, biggest_flow, init_node, lumpy};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap")
}

/// Repeats `packets` (of a little-endian microsecond pcap) until `target`
/// bytes, shifting each copy's timestamps so flows do not merge. In every
/// other packet the bytes past the first 64 (beyond the headers flows are
/// made from) are replaced with noise that differs per copy: plain repeats
/// would let zstd match whole copies, which no real capture allows.
fn make_capture(dst: &Path, target: u64, header: &[u8], packets: &[(u32, Vec<u8>)]) -> u64 {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).expect("create capture"));
    out.write_all(header).expect("write");
    let mut written = header.len() as u64;
    let mut copy = 0u32;
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    let mut packet = Vec::new();
    while written < target {
        for (index, (sec, rest)) in packets.iter().enumerate() {
            packet.clear();
            packet.extend_from_slice(rest);
            if index.is_multiple_of(2) {
                for b in packet.iter_mut().skip(12 + 64) {
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    *b = noise as u8;
                }
            }
            out.write_all(&(sec + copy * 200).to_le_bytes())
                .expect("write");
            out.write_all(&packet).expect("write");
            written += 4 + packet.len() as u64;
        }
        copy += 1;
    }
    out.flush().expect("flush");
    written
}

fn timed(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).status().expect("command runs");
    assert!(status.success(), "{cmd:?} failed");
    start.elapsed().as_secs_f64()
}

/// Peak resident memory (KiB) of the largest child waited for so far.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                total += dir_size(&path);
            } else if let Ok(m) = e.metadata() {
                total += m.len();
            }
        }
    }
    total
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let gib: f64 = std::env::var("LUMPY_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    // LUMPY_BENCH_DIR=/dev/shm takes this VM's disk out of the comparison.
    let work = match std::env::var_os("LUMPY_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    // LUMPY_BENCH_CAPTURE=PATH keeps the generated capture there (and reuses
    // it when present), for profiling one step on its own.
    let capture = std::env::var_os("LUMPY_BENCH_CAPTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.path().join("capture.pcap"));
    let bulk = std::env::var("LUMPY_BENCH_TRAFFIC").is_ok_and(|t| t == "bulk");
    let raw = match std::fs::metadata(&capture) {
        Ok(m) if std::env::var_os("LUMPY_BENCH_CAPTURE").is_some() => m.len(),
        _ => {
            let (header, packets) = if bulk {
                biggest_flow(&fixture())
            } else {
                all_packets(&fixture())
            };
            let target = (gib * 1024.0 * 1024.0 * 1024.0) as u64;
            make_capture(&capture, target, &header, &packets)
        }
    };
    let traffic = if bulk {
        "the fixture's HTTP download"
    } else {
        "fixture traffic"
    };
    let mb = raw as f64 / 1e6;
    let data = work.path().join("node");
    let d = data.to_str().expect("utf-8 path");
    // Warm the page cache so every tool reads the same way.
    timed({
        let mut c = Command::new("cat");
        c.arg(&capture);
        c
    });

    // Each tool writes its output next to the other's (zstd to a file, as an
    // operator would keep it), in turns, best of LUMPY_BENCH_RUNS: the
    // first writes on a fresh VM also pay for the host backing its memory.
    let runs: usize = std::env::var("LUMPY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let zstd_out = work.path().join("capture.pcap.zst");
    let zstd = |threads: Option<&str>| {
        let mut c = Command::new("zstd");
        c.args(["-3", "-q", "-f"]);
        if let Some(t) = threads {
            c.arg(t);
        }
        c.arg(&capture).arg("-o").arg(&zstd_out);
        let t = timed(c);
        let _ = std::fs::remove_file(&zstd_out);
        t
    };
    let (mut t_ingest, mut t_zstd1, mut t_zstd2) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..runs.max(1) {
        let _ = std::fs::remove_dir_all(&data);
        init_node(d);
        let mut ingest = lumpy();
        ingest.args(["ingest", "--data", d, capture.to_str().expect("utf-8")]);
        t_ingest = t_ingest.min(timed(ingest));
        t_zstd1 = t_zstd1.min(zstd(None));
        t_zstd2 = t_zstd2.min(zstd(Some("-T2")));
    }
    let rss_mib = children_max_rss_kib() as f64 / 1024.0;

    let stored = dir_size(&data.join("segments"))
        + std::fs::metadata(data.join("index.redb"))
            .map(|m| m.len())
            .unwrap_or(0);

    // Mirror: drop it and let the next open rebuild it from the record segments.
    let mirror_rows = {
        let out = lumpy()
            .args(["status", "--data", d, "--json"])
            .output()
            .expect("status");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["record_versions"].as_u64().unwrap_or(0)
    };
    for f in ["mirror.sqlite", "mirror.sqlite-wal", "mirror.sqlite-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    // Any command that opens the node rebuilds it (not status, which
    // shows the lag since mirror 4).
    let mut rebuild = lumpy();
    rebuild.args(["flows", "--data", d, "--limit", "1"]);
    let t_mirror = timed(rebuild);

    let mut verify = lumpy();
    verify.args(["verify", "--data", d]);
    let t_verify = timed(verify);
    let hashed = dir_size(&data.join("segments"));

    println!(
        "capture: {raw} bytes of {traffic} ({:.2} GiB); node and zstd output in {}; best of {runs}",
        raw as f64 / 1073741824.0,
        work.path().display()
    );
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| lumpy ingest | {t_ingest:.2} s, {:.0} MB/s |",
        mb / t_ingest
    );
    println!("| zstd -3 | {t_zstd1:.2} s, {:.0} MB/s |", mb / t_zstd1);
    println!("| zstd -3 -T2 | {t_zstd2:.2} s, {:.0} MB/s |", mb / t_zstd2);
    println!(
        "| lumpy ingest / zstd -3 -T2 | {:.0} % |",
        100.0 * t_zstd2 / t_ingest
    );
    println!("| lumpy ingest peak RSS | {rss_mib:.0} MiB |");
    println!(
        "| stored (segments + index) / raw | {:.3} |",
        stored as f64 / raw as f64
    );
    println!(
        "| mirror rebuild | {mirror_rows} rows in {t_mirror:.2} s, {:.0} rows/s |",
        mirror_rows as f64 / t_mirror
    );
    println!(
        "| lumpy verify | {hashed} bytes in {t_verify:.2} s, {:.2} GiB/s |",
        hashed as f64 / 1073741824.0 / t_verify
    );
}
