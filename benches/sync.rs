//! Sync benchmarks, side by side with rsync in one run.
//!
//! Run with `cargo bench --bench sync` (LUMPY_BENCH_SEGMENTS=N changes the
//! segment count, default 50000; LUMPY_BENCH_ROOS=N the roo count, default
//! 50, 0 to skip that part). Data lives on /dev/shm so both tools measure
//! the protocol, not the disk. It measures:
//! - bytes on the wire and time for a first sync, a no-op sync and a sync
//!   after 1 % new segments, for `lumpy pull` over plain HTTP and over TLS
//!   (each through a byte-counting relay, each into its own parent) and
//!   `rsync -a --stats` between two directories; the first sync is run
//!   LUMPY_BENCH_RUNS times (default 3) into fresh parents, HTTP and TLS
//!   taking turns at going first, and the best run of each is reported;
//! - resident memory of one lumpy serving and pulling from N roos, and its
//!   idle traffic per link per minute at the default 60 s interval.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{Relay, free_port, relay, run, serve};
use lumpy::store::{CommitBatch, Kind, SegmentBuilder, SegmentMeta, Store};

/// Packets of the fixture capture, as (ts_ns, orig_len, data).
fn fixture_packets() -> Vec<(u64, u32, Vec<u8>)> {
    let b = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap"))
        .expect("fixture");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let u = |o: usize| u32::from_le_bytes(b[at + o..at + o + 4].try_into().expect("4 bytes"));
        let (sec, usec, cap, orig) = (u(0), u(4), u(8) as usize, u(12));
        out.push((
            u64::from(sec) * 1_000_000_000 + u64::from(usec) * 1000,
            orig,
            b[at + 16..at + 16 + cap].to_vec(),
        ));
        at += 16 + cap;
    }
    out
}

/// Adds segments `from..to` of sensor 9 (a few real packets each) to a stopped node.
fn add_segments(data: &Path, from: u64, to: u64, packets: &[(u64, u32, Vec<u8>)]) {
    let store = Store::open(data, false).expect("store");
    let mut batch = CommitBatch::default();
    for seq in from..to {
        let mut b = SegmentBuilder::new(Kind::Pcap, 9, 1, 1);
        for i in 0..8 {
            let (ts, orig, d) = &packets[((seq * 8 + i) as usize) % packets.len()];
            b.push_packet(ts + seq * 1_000_000_000, 0, *orig, d)
                .expect("push");
        }
        let seg = b.seal(seq).expect("seal");
        store.write_segment_file(&seg).expect("write");
        batch.segments.push(SegmentMeta::of(&seg));
        if batch.segments.len() == 2000 {
            store.commit(&batch).expect("commit");
            batch = CommitBatch::default();
        }
    }
    store.commit(&batch).expect("commit");
}

/// One measured transfer: wall seconds, CPU seconds of every process it
/// ran (user + system: for lumpy the pull and the serving child, for rsync
/// its three processes), bytes up and down.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    secs: f64,
    cpu: f64,
    up: u64,
    down: u64,
}

/// CPU seconds (user + system) of this process's waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    assert_eq!(rc, 0, "getrusage");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

fn rsync(src: &Path, dst: &Path) -> Run {
    let cpu0 = children_cpu();
    let start = Instant::now();
    let out = Command::new("rsync")
        .args(["-a", "--stats"])
        .arg(format!("{}/", src.display()))
        .arg(dst)
        .output()
        .expect("rsync is required (apt-get install rsync)");
    let t = start.elapsed().as_secs_f64();
    let cpu = children_cpu() - cpu0;
    let text = String::from_utf8_lossy(&out.stdout);
    let num = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| {
                l[key.len()..]
                    .split_whitespace()
                    .next()
                    .map(|n| n.replace(',', ""))
            })
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Run {
        secs: t,
        cpu,
        up: num("Total bytes sent:"),
        down: num("Total bytes received:"),
    }
}

fn pull(parent: &Path) -> f64 {
    let start = Instant::now();
    run(&["pull", "--data", parent.to_str().expect("utf-8")]);
    start.elapsed().as_secs_f64()
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A self-signed leaf certificate for 127.0.0.1, made by openssl.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=lumpy-bench",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is required");
    assert!(status.success(), "openssl req");
    (cert, key)
}

/// One link measured: a child served at `port` behind relay `relay`,
/// pulled by `parent`.
struct Side {
    child: PathBuf,
    parent: PathBuf,
    /// The parent as linked, before any pull: copied over `parent` to
    /// measure a first sync again.
    pristine: PathBuf,
    port: u16,
    relay: Relay,
}

impl Side {
    /// One pull (the child's CPU from its start to its stop counted).
    fn pull(&self) -> Run {
        let cpu0 = children_cpu();
        let s = serve(&self.child, &format!("127.0.0.1:{}", self.port));
        let (u0, d0) = self.relay.total();
        let t = pull(&self.parent);
        let (u1, d1) = self.relay.total();
        drop(s);
        Run {
            secs: t,
            cpu: children_cpu() - cpu0,
            up: u1 - u0,
            down: d1 - d0,
        }
    }

    /// Puts the parent back as it was before its first pull.
    fn reset(&self) {
        let _ = std::fs::remove_dir_all(&self.parent);
        copy_dir(&self.pristine, &self.parent);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let copied = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        copied.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// The best (shortest) of several measured runs.
fn best(runs: &[Run]) -> Run {
    runs.iter()
        .copied()
        .min_by(|a, b| a.secs.total_cmp(&b.secs))
        .unwrap_or_default()
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = std::env::var("LUMPY_BENCH_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let roos: usize = std::env::var("LUMPY_BENCH_ROOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let work = tempfile::Builder::new()
        .prefix("lumpy-bench-")
        .tempdir_in("/dev/shm")
        .expect("tmpfs");
    let path = |name: &str| work.path().join(name);
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let packets = fixture_packets();
    let (child, child_tls) = (path("child"), path("child-tls"));
    run(&["init", "--data", &s(&child), "--sensor-id", "7"]);
    add_segments(&child, 1, n + 1, &packets);
    // The same segments behind a TLS-only peer API.
    copy_dir(&child, &child_tls);
    let (cert, key) = self_signed(work.path());
    run(&[
        "config",
        "set",
        "--data",
        &s(&child_tls),
        "serve.tls_cert",
        &s(&cert),
    ]);
    run(&[
        "config",
        "set",
        "--data",
        &s(&child_tls),
        "serve.tls_key",
        &s(&key),
    ]);
    let side = |child: &Path, parent: PathBuf, sensor: &str, scheme: &str, extra: &[&str]| {
        run(&["init", "--data", &s(&parent), "--sensor-id", sensor]);
        let port = free_port("127.0.0.1");
        let relay = relay(format!("127.0.0.1:{port}"));
        // The bench's segments are sensor 9, which the child did not
        // ingest itself: the link names it (docs/SECURITY.md).
        let mut args = vec!["--pcap", "mirror", "--interval", "60s", "--sensors", "9"];
        args.extend_from_slice(extra);
        common::link(
            &parent,
            child,
            "child",
            &format!("{scheme}://127.0.0.1:{}", relay.port),
            &args,
        );
        let pristine = parent.with_extension("pristine");
        copy_dir(&parent, &pristine);
        Side {
            child: child.to_path_buf(),
            parent,
            pristine,
            port,
            relay,
        }
    };
    let plain = side(&child, path("parent"), "8", "http", &[]);
    let tls = side(
        &child_tls,
        path("parent-tls"),
        "10",
        "https",
        &["--ca-file", &s(&cert)],
    );

    let rsync_dst = path("rsync-copy");
    // First syncs are measured `runs` times (LUMPY_BENCH_RUNS, default 3),
    // each into fresh parents and a fresh rsync copy, the HTTP and TLS pulls
    // taking turns at going first; the best of each is reported (on a
    // shared machine the best run is the one least slowed by others).
    let runs: usize = std::env::var("LUMPY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut rows = Vec::new();
    let mut measure = |what: &str, fresh: bool| {
        let (mut ps, mut ts, mut rs) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..if fresh { runs } else { 1 } {
            if fresh && r > 0 {
                plain.reset();
                tls.reset();
                let _ = std::fs::remove_dir_all(&rsync_dst);
            }
            if r % 2 == 0 {
                ps.push(plain.pull());
                ts.push(tls.pull());
            } else {
                ts.push(tls.pull());
                ps.push(plain.pull());
            }
            rs.push(rsync(&child.join("segments"), &rsync_dst));
            eprintln!(
                "{what}, run {}: HTTP {:.2} s ({:.2} s CPU), TLS {:.2} s ({:.2} s CPU), rsync {:.2} s ({:.2} s CPU); HTTP / rsync {:.2} x time, {:.2} x CPU; TLS / HTTP {:.2} x CPU",
                r + 1,
                ps[r].secs,
                ps[r].cpu,
                ts[r].secs,
                ts[r].cpu,
                rs[r].secs,
                rs[r].cpu,
                ps[r].secs / rs[r].secs,
                ps[r].cpu / rs[r].cpu,
                ts[r].cpu / ps[r].cpu
            );
        }
        let (p, t, r) = (best(&ps), best(&ts), best(&rs));
        let count = ps.len();
        // On a shared machine wall times swing with the others' load; the
        // CPU each side spent does not, and per-run ratios compare tools
        // measured a few seconds apart.
        let time_ratio = median(ps.iter().zip(&rs).map(|(p, r)| p.secs / r.secs).collect());
        let cpu_ratio = median(ps.iter().zip(&rs).map(|(p, r)| p.cpu / r.cpu).collect());
        let tls_cpu = median(
            ts.iter()
                .zip(&ps)
                .map(|(t, p)| t.cpu / p.cpu - 1.0)
                .collect(),
        );
        rows.push(format!(
            "| {what}{} | {:.2} s ({:.2} s CPU), {} B up, {} B down | {:.2} s ({:.2} s CPU, {:+.0} % CPU), {} B up, {} B down | {:.2} s ({:.2} s CPU), {} B sent, {} B received | {time_ratio:.2} x time, {cpu_ratio:.2} x CPU |",
            if count > 1 { format!(" (best of {count})") } else { String::new() },
            p.secs,
            p.cpu,
            p.up,
            p.down,
            t.secs,
            t.cpu,
            tls_cpu * 100.0,
            t.up,
            t.down,
            r.secs,
            r.cpu,
            r.up,
            r.down,
        ));
    };
    measure(&format!("first sync, {n} segments"), true);
    measure("no-op sync", false);
    add_segments(&child, n + 1, n + 1 + n / 100, &packets);
    add_segments(&child_tls, n + 1, n + 1 + n / 100, &packets);
    measure(&format!("after 1 % new ({} segments)", n / 100), false);
    let stored: u64 = walk_size(&child.join("segments"));
    println!("child: {n} segments + 1 %, {stored} bytes stored\n");
    println!(
        "| sync | lumpy pull (HTTP) | lumpy pull (TLS, CPU vs HTTP) | rsync -a --stats | HTTP / rsync (median of runs) |"
    );
    println!("|---|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    if roos > 0 {
        many_roos(work.path(), roos);
    }
}

fn walk_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        total += if path.is_dir() {
            walk_size(&path)
        } else {
            e.metadata().map(|m| m.len()).unwrap_or(0)
        };
    }
    total
}

/// One lumpy pulling from `roos` roos: its memory and idle traffic per link.
fn many_roos(work: &Path, roos: usize) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap");
    let top: PathBuf = work.join("top");
    run(&[
        "init",
        "--data",
        top.to_str().expect("utf-8"),
        "--sensor-id",
        "5",
    ]);
    let mut served = Vec::new();
    let mut relays = Vec::new();
    for i in 0..roos {
        let d = work.join(format!("roo{i}"));
        let ds = d.to_str().expect("utf-8");
        run(&["init", "--data", ds, "--sensor-id", &(100 + i).to_string()]);
        run(&["ingest", "--data", ds, fixture.to_str().expect("utf-8")]);
        let port = free_port("127.0.0.1");
        let r = relay(format!("127.0.0.1:{port}"));
        common::link(
            &top,
            &d,
            &format!("roo{i}"),
            &format!("https://127.0.0.1:{}", r.port),
            &["--pcap", "mirror", "--interval", "60s"],
        );
        served.push(serve(&d, &format!("127.0.0.1:{port}")));
        relays.push(r);
    }
    let top_proc = serve(&top, &format!("127.0.0.1:{}", free_port("127.0.0.1")));
    let pid = top_proc.0.id();
    // Wait for the first round of pulls (every roo's summary fetched).
    let deadline = Instant::now() + Duration::from_secs(120);
    while relays.iter().any(|r| r.total().1 == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));
    let (rss_after_first, _) = rss_kib(pid);
    let before: Vec<(u64, u64)> = relays.iter().map(Relay::total).collect();
    std::thread::sleep(Duration::from_secs(61));
    let (rss, hwm) = rss_kib(pid);
    let idle: Vec<u64> = relays
        .iter()
        .zip(&before)
        .map(|(r, b)| {
            let (u, d) = r.total();
            (u - b.0) + (d - b.1)
        })
        .collect();
    let max_idle = idle.iter().max().copied().unwrap_or(0);
    let avg_idle = idle.iter().sum::<u64>() as f64 / idle.len().max(1) as f64;
    println!();
    println!("| one lumpy pulling from {roos} roos | result |");
    println!("|---|---|");
    println!(
        "| resident memory after the first pull round | {:.1} MiB |",
        rss_after_first as f64 / 1024.0
    );
    println!(
        "| resident memory after one idle minute (peak) | {:.1} MiB ({:.1} MiB) |",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "| idle traffic per link over 61 s | average {avg_idle:.0} B, at most {max_idle} B (both directions) |"
    );
    drop(top_proc);
    drop(served);
}
