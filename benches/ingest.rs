//! Ingest, mirror and verify benchmarks, side by side with zstd in one run.
//!
//! Run with `cargo bench --bench ingest` (LUMPY_BENCH_GIB=N changes the
//! capture size, default 1; LUMPY_BENCH_CAPTURE=PATH keeps the capture). It builds a capture of real fixture traffic
//! (fixtures/honeynet.pcap repeated with shifted timestamps), then times:
//! `lumpy ingest` (with its peak resident memory), `zstd -3` and
//! `zstd -3 -T2` on the same file, rebuilding the SQLite mirror from the
//! record segments, and `lumpy verify`. Results go to stdout as a Markdown
//! table for docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn lumpy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lumpy"))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap")
}

/// Repeats every packet of a little-endian microsecond pcap until `target`
/// bytes, shifting each copy's timestamps so flows do not merge. In every
/// other packet the bytes past the first 64 (beyond the headers flows are
/// made from) are replaced with noise that differs per copy: plain repeats
/// would let zstd match whole copies, which no real capture allows.
fn make_capture(dst: &Path, target: u64) -> u64 {
    use std::io::Write;
    let src = std::fs::read(fixture()).expect("fixtures/honeynet.pcap");
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).expect("create capture"));
    out.write_all(&src[..24]).expect("write");
    let mut written = 24u64;
    let mut copy = 0u32;
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    let mut packet = Vec::new();
    while written < target {
        let mut at = 24;
        let mut index = 0u64;
        while at + 16 <= src.len() {
            let caplen =
                u32::from_le_bytes(src[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let sec = u32::from_le_bytes(src[at..at + 4].try_into().expect("4 bytes")) + copy * 200;
            packet.clear();
            packet.extend_from_slice(&src[at + 4..at + 16 + caplen]);
            if index.is_multiple_of(2) {
                for b in packet.iter_mut().skip(12 + 64) {
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    *b = noise as u8;
                }
            }
            out.write_all(&sec.to_le_bytes()).expect("write");
            out.write_all(&packet).expect("write");
            written += 16 + caplen as u64;
            at += 16 + caplen;
            index += 1;
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
    let work = tempfile::tempdir().expect("tempdir");
    // LUMPY_BENCH_CAPTURE=PATH keeps the generated capture there (and reuses
    // it when present), for profiling one step on its own.
    let capture = std::env::var_os("LUMPY_BENCH_CAPTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.path().join("capture.pcap"));
    let raw = match std::fs::metadata(&capture) {
        Ok(m) if std::env::var_os("LUMPY_BENCH_CAPTURE").is_some() => m.len(),
        _ => make_capture(&capture, (gib * 1024.0 * 1024.0 * 1024.0) as u64),
    };
    let mb = raw as f64 / 1e6;
    let data = work.path().join("node");
    let d = data.to_str().expect("utf-8 path");
    let mut init = lumpy();
    init.args([
        "init",
        "--data",
        d,
        "--sensor-id",
        "7",
        "--honeypot-net",
        "192.0.2.0/24",
    ]);
    timed(init);
    // Warm the page cache so every tool reads the same way.
    timed({
        let mut c = Command::new("cat");
        c.arg(&capture);
        c
    });

    let mut ingest = lumpy();
    ingest.args(["ingest", "--data", d, capture.to_str().expect("utf-8")]);
    let t_ingest = timed(ingest);
    let rss_mib = children_max_rss_kib() as f64 / 1024.0;

    let zstd = |threads: Option<&str>| {
        let mut c = Command::new("zstd");
        c.args(["-3", "-q", "-f", "-c"]);
        if let Some(t) = threads {
            c.arg(t);
        }
        c.arg(&capture);
        timed(c)
    };
    let t_zstd1 = zstd(None);
    let t_zstd2 = zstd(Some("-T2"));

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
    let mut rebuild = lumpy();
    rebuild.args(["status", "--data", d]);
    let t_mirror = timed(rebuild);

    let mut verify = lumpy();
    verify.args(["verify", "--data", d]);
    let t_verify = timed(verify);
    let hashed = dir_size(&data.join("segments"));

    println!(
        "capture: {raw} bytes of fixture traffic ({:.2} GiB)",
        raw as f64 / 1073741824.0
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
