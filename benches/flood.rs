//! Ingest of the traffic attackers send, side by side with `argus -r` and
//! `zstd -3 -T2` in one run (issue 10).
//!
//! Run with `cargo bench --bench flood`. Each traffic class is generated
//! (benches/common/traffic.rs, deterministic), then `lumpy ingest` (rows
//! queryable in the mirror when it exits), `argus -r` and `zstd -3 -T2` run
//! on the same file, each under `/usr/bin/time` for its peak resident
//! memory. Per class: flows/s, MB/s, peak RSS, index and mirror bytes per
//! flow; then the latency of everyday commands on the node the class left.
//!
//! LUMPY_FLOOD_FLOWS=N sets the flood classes' size (default 2,000,000),
//! LUMPY_FLOOD_CLASSES=a,b picks classes (syn-flood, backscatter, scan,
//! mixed, bulk), LUMPY_BENCH_DIR the working directory (default the system
//! temp dir), LUMPY_FLOOD_ARGUS=0 leaves `argus -r` out (it holds every flow
//! in memory: 10 M flows need more than 24 GiB), LUMPY_FLOOD_KEEP=1 keeps the
//! nodes for further measurement. Results go to stdout as Markdown tables for
//! docs/BENCHMARKS.md.

mod common;
#[path = "common/traffic.rs"]
mod traffic;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{all_packets, biggest_flow, init_node, lumpy, repeat_packets};
use traffic::Class;

/// One command's wall time and peak resident memory.
struct Run {
    secs: f64,
    rss_mib: f64,
}

/// Runs `cmd` under `/usr/bin/time -f '%e %M'`.
fn measured(program: &str, args: &[&str]) -> Run {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", program])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("/usr/bin/time runs (Debian package time)");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let mut f = last.split_whitespace();
    let secs = f.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    let kib: f64 = f.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    Run {
        secs,
        rss_mib: kib / 1024.0,
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Fixture packets repeated (timestamps shifted) up to `target` bytes.
fn repeat_fixture(dst: &Path, target: u64, bulk: bool) -> u64 {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap");
    let (header, packets) = if bulk {
        biggest_flow(&fixture)
    } else {
        all_packets(&fixture)
    };
    repeat_packets(dst, target, &header, &packets)
}

/// Flows the node's mirror holds.
fn flow_count(d: &str) -> u64 {
    let out = lumpy()
        .args(["status", "--data", d, "--json"])
        .output()
        .expect("status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["flows"].as_u64().unwrap_or(0)
}

/// Median wall time (ms) of five runs of a lumpy command.
fn latency_ms(args: &[&str]) -> f64 {
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let ok = lumpy()
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("lumpy runs")
                .success();
            assert!(ok, "lumpy {args:?} failed");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

struct ClassResult {
    name: String,
    raw: u64,
    flows: u64,
    lumpy: Run,
    argus: Run,
    zstd: Run,
    index: u64,
    mirror: u64,
    latency: Vec<(String, f64)>,
}

fn run_class(work: &Path, name: &str, make: impl FnOnce(&Path) -> u64) -> ClassResult {
    let capture = work.join(format!("{name}.pcap"));
    let raw = make(&capture);
    let data = work.join(format!("node-{name}"));
    let _ = std::fs::remove_dir_all(&data);
    let d = data.to_str().expect("utf-8");
    let c = capture.to_str().expect("utf-8");
    init_node(d);
    // Warm the page cache so every tool reads the same way.
    let _ = std::fs::read(&capture);
    let lumpy_run = measured(env!("CARGO_BIN_EXE_lumpy"), &["ingest", "--data", d, c]);
    let argus_out = work.join(format!("{name}.argus"));
    // argus keeps every flow in memory (about 1.7 KB each): at 10 M flows it
    // needs more than this machine's 24 GiB, so large runs may leave it out.
    let argus = if std::env::var("LUMPY_FLOOD_ARGUS").is_ok_and(|v| v == "0") {
        Run {
            secs: f64::NAN,
            rss_mib: f64::NAN,
        }
    } else {
        measured(
            "argus",
            &["-r", c, "-w", argus_out.to_str().expect("utf-8")],
        )
    };
    let _ = std::fs::remove_file(&argus_out);
    let zstd_out = work.join(format!("{name}.pcap.zst"));
    let zstd = measured(
        "zstd",
        &[
            "-3",
            "-T2",
            "-q",
            "-f",
            c,
            "-o",
            zstd_out.to_str().expect("utf-8"),
        ],
    );
    let _ = std::fs::remove_file(&zstd_out);
    let flows = flow_count(d);
    let index = file_len(&data.join("index.redb"));
    let mirror = file_len(&data.join("mirror.sqlite")) + file_len(&data.join("mirror.sqlite-wal"));
    let some_host = "192.0.2.10";
    let latency = [
        ("status", vec!["status", "--data", d]),
        (
            "flows --limit 100",
            vec!["flows", "--data", d, "--limit", "100"],
        ),
        (
            "flows --limit 100 --port 80",
            vec!["flows", "--data", d, "--limit", "100", "--port", "80"],
        ),
        (
            "flows --limit 100 --host 192.0.2.10",
            vec!["flows", "--data", d, "--limit", "100", "--host", some_host],
        ),
        (
            "hosts --ip 192.0.2.10",
            vec!["hosts", "--data", d, "--ip", some_host],
        ),
    ]
    .into_iter()
    .map(|(label, args)| (label.to_string(), latency_ms(&args)))
    .collect();
    let _ = std::fs::remove_file(&capture);
    if std::env::var("LUMPY_FLOOD_KEEP").is_ok_and(|v| v == "1") {
        eprintln!("{name}: node kept at {}", data.display());
    }
    ClassResult {
        name: name.to_string(),
        raw,
        flows,
        lumpy: lumpy_run,
        argus,
        zstd,
        index,
        mirror,
        latency,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let flows: u64 = std::env::var("LUMPY_FLOOD_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let classes: Vec<String> = std::env::var("LUMPY_FLOOD_CLASSES")
        .unwrap_or_else(|_| "syn-flood,backscatter,scan,mixed,bulk".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let work = match std::env::var_os("LUMPY_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let w = work.path().to_path_buf();
    // Kept nodes outlive the run: their directory is not removed.
    let _work_guard = if std::env::var("LUMPY_FLOOD_KEEP").is_ok_and(|v| v == "1") {
        let _ = work.keep();
        None
    } else {
        Some(work)
    };
    let mut results = Vec::new();
    for class in &classes {
        let generated = |c: Class| {
            move |p: &Path| {
                traffic::write_capture(p, c, flows, 33_000, 1_700_000_000, 20261202)
                    .expect("write capture")
            }
        };
        let r = match class.as_str() {
            "syn-flood" => run_class(&w, "syn-flood", generated(Class::SynFlood)),
            "backscatter" => run_class(&w, "backscatter", generated(Class::Backscatter)),
            "scan" => run_class(&w, "scan", generated(Class::HorizontalScan)),
            // Fixture traffic (nmap, HTTP, ssh, DNS, sebek, ...) to ~250 MB.
            "mixed" => run_class(&w, "mixed", |p| repeat_fixture(p, 250_000_000, false)),
            "bulk" => run_class(&w, "bulk", |p| repeat_fixture(p, 1_000_000_000, true)),
            other => panic!("unknown class {other}"),
        };
        eprintln!("{}: done", r.name);
        results.push(r);
    }
    report(&w, flows, &results);
}

fn report(work: &Path, flows: u64, results: &[ClassResult]) {
    println!(
        "flood classes: {flows} packets each (33,000 packets/s of capture time); work dir {}",
        work.display()
    );
    println!();
    println!(
        "| class | raw MB | flows | lumpy ingest | flows/s | MB/s | peak RSS | argus -r | argus RSS | lumpy vs argus | zstd -3 -T2 | index B/flow | mirror B/flow |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let mb = r.raw as f64 / 1e6;
        let per_flow = |b: u64| b as f64 / r.flows.max(1) as f64;
        println!(
            "| {} | {:.0} | {} | {:.2} s | {:.0} | {:.1} | {:.0} MiB | {:.2} s | {:.0} MiB | {:.2} x | {:.2} s ({:.0} MB/s) | {:.1} | {:.0} |",
            r.name,
            mb,
            r.flows,
            r.lumpy.secs,
            r.flows as f64 / r.lumpy.secs,
            mb / r.lumpy.secs,
            r.lumpy.rss_mib,
            r.argus.secs,
            r.argus.rss_mib,
            r.argus.secs / r.lumpy.secs,
            r.zstd.secs,
            mb / r.zstd.secs,
            per_flow(r.index),
            per_flow(r.mirror),
        );
    }
    println!();
    let labels: Vec<&str> = results
        .first()
        .map(|r| r.latency.iter().map(|(l, _)| l.as_str()).collect())
        .unwrap_or_default();
    print!("| class (flows) |");
    for l in &labels {
        print!(" `{l}` |");
    }
    println!();
    print!("|---|");
    for _ in &labels {
        print!("---|");
    }
    println!();
    for r in results {
        print!("| {} ({}) |", r.name, r.flows);
        for (_, ms) in &r.latency {
            print!(" {ms:.0} ms |");
        }
        println!();
    }
}
