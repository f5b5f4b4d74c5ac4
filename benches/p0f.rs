//! p0f benchmark: SYN and SYN+ACK fingerprints per second, lumpy's native
//! p0f v3 matching against real `p0f -r` on the same capture, in one run.
//!
//! The capture is `fixtures/honeynet.pcap` (nmap SYN scans and OS detection,
//! Linux clients over IPv4 and IPv6, 317 fingerprinted handshake packets in
//! 1,261) repeated N times, each copy 100 s later than the previous (longer
//! than p0f's 30 s connection age, so every copy is fingerprinted afresh).
//!
//! Measured:
//! - in process: the matcher alone on the extracted SYN signatures, and the
//!   whole packet path (decode, handshake tracking, signature, match) over
//!   the packets in memory;
//! - end to end: `lumpy fingerprint FILE -o LOG` and `p0f -r FILE -o LOG`,
//!   wall clock, both writing p0f's log format; the two logs are compared.
//!
//! Run with `cargo bench --bench p0f` (LUMPY_BENCH_P0F_COPIES=N, default 400).
//! Needs p0f (Debian's package: /usr/sbin/p0f, /etc/p0f/p0f.fp). Prints a
//! Markdown table for docs/BENCHMARKS.md.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use lumpy::capture::{CaptureReader, decode};
use lumpy::p0f::{Matcher, Observer, PacketSig};

/// Writes `copies` copies of a little-endian microsecond pcap, each shifted.
fn replicate(src: &Path, dst: &Path, copies: u32, shift: u32) {
    let bytes = std::fs::read(src).expect("fixture");
    assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let mut out = Vec::with_capacity(bytes.len() * copies as usize);
    out.extend_from_slice(&bytes[..24]);
    for c in 0..copies {
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let caplen =
                u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let sec =
                u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) + c * shift;
            out.extend_from_slice(&sec.to_le_bytes());
            out.extend_from_slice(&bytes[at + 4..at + 16 + caplen]);
            at += 16 + caplen;
        }
    }
    std::fs::write(dst, out).expect("write capture");
}

fn lines(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(p)
        .expect("log")
        .lines()
        .filter(|l| l.contains("] mod=syn"))
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn main() {
    let copies: u32 = std::env::var("LUMPY_BENCH_P0F_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let work = tempfile::tempdir().expect("tempdir");
    let capture = work.path().join("syns.pcap");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap");
    replicate(&fixture, &capture, copies, 100);
    let size = std::fs::metadata(&capture).expect("capture").len();
    let m = Matcher::parse(&std::fs::read_to_string("/etc/p0f/p0f.fp").expect("/etc/p0f/p0f.fp"))
        .expect("p0f.fp parses");

    // Packets in memory.
    let mut frames: Vec<(u32, u32, Vec<u8>)> = Vec::new();
    let mut reader = CaptureReader::open(&capture).expect("capture opens");
    while let Some(p) = reader.next_packet().expect("capture reads") {
        frames.push((p.link_type, p.ts_sec as u32, p.data.to_vec()));
    }

    // In process: the whole path over every packet.
    let t = Instant::now();
    let mut observer = Observer::default();
    let (mut fps, mut syns) = (0u64, Vec::new());
    for (link, sec, data) in &frames {
        let Ok(info) = decode(*link, data) else {
            continue;
        };
        let Some(net) = info.net else { continue };
        if let Some(o) = observer.observe(&m, *sec, data, &net) {
            fps += 1;
            if o.client {
                syns.push(o.sig);
            }
        }
    }
    let path_secs = t.elapsed().as_secs_f64();

    // In process: the matcher alone, on the SYN signatures.
    let t = Instant::now();
    let mut matched = 0u64;
    let rounds = 10;
    for _ in 0..rounds {
        for s in &syns {
            let s: &PacketSig = s;
            if m.find(true, s, 0).matched.is_some() {
                matched += 1;
            }
        }
    }
    let match_secs = t.elapsed().as_secs_f64();
    let match_n = syns.len() as u64 * rounds;

    // End to end, side by side.
    let ours = work.path().join("lumpy.log");
    let t = Instant::now();
    common::run(&[
        "fingerprint",
        capture.to_str().expect("utf-8 path"),
        "-o",
        ours.to_str().expect("utf-8 path"),
    ]);
    let lumpy_secs = t.elapsed().as_secs_f64();
    let theirs = work.path().join("p0f.log");
    let t = Instant::now();
    let status = Command::new("p0f")
        .args([
            "-r",
            capture.to_str().expect("utf-8 path"),
            "-o",
            theirs.to_str().expect("utf-8 path"),
        ])
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("p0f runs (apt-get install p0f)");
    let p0f_secs = t.elapsed().as_secs_f64();
    assert!(status.success());
    let (a, b) = (lines(&ours), lines(&theirs));
    let same = a == b;

    let per = |n: u64, s: f64| n as f64 / s;
    println!(
        "capture: {} packets, {:.1} MB, {fps} fingerprinted SYN/SYN+ACK packets ({} SYNs; {matched} matches in {match_n} lookups)",
        frames.len(),
        size as f64 / 1e6,
        syns.len()
    );
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| matcher alone (`Matcher::find`, SYN signatures in memory) | {:.2} M matches/s |",
        per(match_n, match_secs) / 1e6
    );
    println!(
        "| packet path in process (decode, handshakes, signature, match; {} packets) | {:.2} s, {:.0} k packets/s, **{:.0} k fingerprints/s** |",
        frames.len(),
        path_secs,
        per(frames.len() as u64, path_secs) / 1e3,
        per(fps, path_secs) / 1e3
    );
    println!(
        "| `lumpy fingerprint FILE -o LOG` | {lumpy_secs:.2} s, **{:.0} k fingerprints/s** |",
        per(a.len() as u64, lumpy_secs) / 1e3
    );
    println!(
        "| `p0f -r FILE -o LOG` (p0f 3.09b) | {p0f_secs:.2} s, {:.0} k fingerprints/s |",
        per(b.len() as u64, p0f_secs) / 1e3
    );
    println!(
        "| logs identical (sorted lines) | {} ({} vs {} lines) |",
        if same { "yes" } else { "**no**" },
        a.len(),
        b.len()
    );
}
