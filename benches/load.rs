//! `lumpy serve` under load (issue 21): UI clients driven by Debian's `wrk`
//! and pulling parents (`lumpy pull` in a loop) at once, against one node
//! with many flows, for a fixed time.
//!
//! The node's mirror is built from a generated capture of one-packet UDP
//! flows (`LUMPY_BENCH_FLOWS`, default 1,000,000). `LUMPY_BENCH_CLIENTS`
//! (default 1000) wrk connections ask the connection table (`flows`, 90 %)
//! and an aggregate by source address (10 %); `LUMPY_BENCH_PARENTS`
//! (default 50) parents pull every second (the first parent's first pull
//! is made before the clock starts, and the other parents start from a copy
//! of its store); all for `LUMPY_BENCH_SECS`
//! (default 60). `LUMPY_BENCH_DIR=DIR` keeps the built node in DIR and
//! reuses it; `LUMPY_BENCH_BIN` names the lumpy binary to run (default:
//! this build's). Prints a Markdown table for docs/BENCHMARKS.md: requests/s,
//! p50/p99 latency and answers by status per endpoint, pulls and their
//! p50/p99, the peak resident memory of `serve`.
//!
//! Run with `cargo bench --bench load`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

const PASSWORD: &str = "benchmark password";
const IP: &str = "127.0.0.90";

/// The lumpy under test: `LUMPY_BENCH_BIN` when set (a release binary
/// driven by a quickly built harness), else this build's.
fn lumpy() -> Command {
    match std::env::var_os("LUMPY_BENCH_BIN") {
        Some(bin) => Command::new(bin),
        None => common::lumpy(),
    }
}

/// Runs lumpy, panicking with its stderr on failure; returns stdout.
fn run(args: &[&str]) -> String {
    let out = lumpy().args(args).output().expect("lumpy runs");
    assert!(
        out.status.success(),
        "lumpy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A classic pcap of `flows` one-packet UDP flows from 10.0.0.0/8.
fn write_flows(path: &Path, flows: u32) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
        out.write_all(&v.to_le_bytes()).expect("write");
    }
    for i in 0..flows {
        let mut pkt = vec![0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 8, 0];
        pkt.extend_from_slice(&[0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0]);
        pkt.extend_from_slice(&[10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        pkt.extend_from_slice(&[192, 168, 0, 1 + (i % 200) as u8]);
        pkt.extend_from_slice(&(1024 + (i % 50_000) as u16).to_be_bytes());
        pkt.extend_from_slice(&(53 + (i % 7) as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 12, 0, 0, b'a', b'b', b'c', b'd']);
        let len = pkt.len() as u32;
        for v in [1_700_000_000 + i / 100, i % 100, len, len] {
            out.write_all(&v.to_le_bytes()).expect("write");
        }
        out.write_all(&pkt).expect("write");
    }
    out.flush().expect("flush");
}

/// The node (built once per `LUMPY_BENCH_DIR`) and its parents.
fn build(root: &Path, flows: u32, parents: u32) -> (PathBuf, Vec<PathBuf>) {
    let node = root.join("node");
    let marker = root.join(format!("built-{flows}-{parents}"));
    let parent_dirs: Vec<PathBuf> = (0..parents)
        .map(|i| root.join(format!("parent{i}")))
        .collect();
    if marker.exists() {
        return (node, parent_dirs);
    }
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).expect("mkdir");
    let d = node.to_str().expect("utf-8");
    run(&["init", "--data", d, "--sensor-id", "1"]);
    run(&[
        "config",
        "set",
        "--data",
        d,
        "capture.honeypot_nets",
        "10.0.0.0/8",
    ]);
    let pcap = root.join("flows.pcap");
    write_flows(&pcap, flows);
    let t = Instant::now();
    run(&["ingest", "--data", d, pcap.to_str().expect("utf-8")]);
    eprintln!(
        "ingested {flows} flows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(&pcap);
    let mut c = lumpy()
        .args(["user", "add", "--data", d, "bench", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("user add");
    writeln!(c.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
    assert!(c.wait().expect("user add").success());
    (node, parent_dirs)
}

/// Links each parent to the node at `url` (links are per serve port, so
/// they are made again for each run).
fn link_parents(node: &Path, parents: &[PathBuf], url: &str) {
    let d = node.to_str().expect("utf-8");
    for (i, p) in parents.iter().enumerate() {
        let _ = std::fs::remove_dir_all(p);
        let pd = p.to_str().expect("utf-8");
        run(&["init", "--data", pd, "--sensor-id", &(100 + i).to_string()]);
        let name = format!("parent{i}");
        let _ = lumpy()
            .args(["peer", "remove", "--data", d, &name])
            .output();
        let secret = run(&["peer", "add", "--data", d, &name]);
        let f = p.join("secret-in");
        std::fs::write(&f, secret).expect("write secret");
        run(&[
            "child",
            "add",
            "--data",
            pd,
            "node",
            url,
            "--secret-file",
            f.to_str().expect("utf-8"),
        ]);
    }
}

/// Makes `to` hold what `from` pulled: every file of its store copied
/// (segment files hard-linked: they never change), but `to`'s own
/// lumpy.toml and link secret (`children/`) kept.
fn clone_pulled(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read parent") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if ["lumpy.toml", "children", "tls", "store.lock"]
            .iter()
            .any(|k| name == *k)
        {
            continue;
        }
        let target = to.join(&name);
        let _ = std::fs::remove_dir_all(&target);
        let _ = std::fs::remove_file(&target);
        let flag = if name == "segments" { "-al" } else { "-a" };
        let done = Command::new("cp")
            .arg(flag)
            .arg(entry.path())
            .arg(&target)
            .status()
            .expect("cp");
        assert!(done.success(), "cp {flag} {}", entry.path().display());
    }
}

/// Counts answers by status in wrk and prints them at the end.
const WRK_SCRIPT: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do all[k] = (all[k] or 0) + v end
  end
  for k, v in pairs(all) do io.write(string.format("status %d %d\n", k, v)) end
  io.write(string.format("p50 %d\np99 %d\n", latency:percentile(50), latency:percentile(99)))
  io.write(string.format("errors connect %d read %d write %d timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"#;

struct WrkResult {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    statuses: Vec<(u16, u64)>,
    errors: String,
}

fn parse_wrk(out: &str) -> WrkResult {
    let mut r = WrkResult {
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        statuses: Vec::new(),
        errors: String::new(),
    };
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Requests/sec:", v] => r.requests_per_sec = v.parse().unwrap_or(0.0),
            ["status", s, n] => r
                .statuses
                .push((s.parse().unwrap_or(0), n.parse().unwrap_or(0))),
            ["p50", us] => r.p50_ms = us.parse::<f64>().unwrap_or(0.0) / 1000.0,
            ["p99", us] => r.p99_ms = us.parse::<f64>().unwrap_or(0.0) / 1000.0,
            ["errors", ..] => r.errors = f[1..].join(" "),
            _ => {}
        }
    }
    r.statuses.sort_unstable();
    r
}

fn wrk(url: &str, cookie: &str, connections: u32, secs: u32, script: &Path) -> std::process::Child {
    Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--timeout",
            "30s",
            "-s",
            script.to_str().expect("utf-8"),
            "-H",
            &format!("cookie: {cookie}"),
            url,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk (apt-get install wrk)")
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let flows = env_u32("LUMPY_BENCH_FLOWS", 1_000_000);
    let clients = env_u32("LUMPY_BENCH_CLIENTS", 1000);
    let parents = env_u32("LUMPY_BENCH_PARENTS", 50);
    let secs = env_u32("LUMPY_BENCH_SECS", 60);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var_os("LUMPY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("load"));
    let (node, parent_dirs) = build(&root, flows, parents);
    let (peer_port, ui_port) = (free_port(IP), free_port(IP));
    link_parents(&node, &parent_dirs, &format!("https://{IP}:{peer_port}"));
    let mut child = lumpy()
        .args([
            "serve",
            "--data",
            node.to_str().expect("utf-8"),
            "--listen",
            &format!("{IP}:{peer_port}"),
            "--ui-listen",
            &format!("{IP}:{ui_port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    let served = common::Served(child);
    let pid = served.0.id();
    let base = format!("http://{IP}:{ui_port}");
    let login = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "content-type: application/json",
            "--data",
            &format!("{{\"user\":\"bench\",\"password\":\"{PASSWORD}\"}}"),
            &format!("{base}/api/v1/login"),
        ])
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&login.stdout).into_owned();
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("set-cookie: ")
                .map(String::from)
        })
        .and_then(|v| v.split(';').next().map(String::from))
        .expect("a session cookie");
    let script = root.join("count.lua");
    std::fs::write(&script, WRK_SCRIPT).expect("script");
    // The first pull of a parent copies the node's million flow records and
    // builds a mirror of them (about 20 s on this machine): done once, before
    // the clock starts, and every other parent starts from a copy of that
    // parent's store (segments hard-linked), with its own link secret, so
    // the loop measures steady-state pulls.
    let t = Instant::now();
    if let Some((first, rest)) = parent_dirs.split_first() {
        run(&["pull", "--data", first.to_str().expect("utf-8")]);
        for p in rest {
            clone_pulled(first, p);
        }
    }
    eprintln!(
        "{parents} parents caught up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let table_clients = (clients * 9 / 10).max(1);
    let endpoints = [
        (
            "connection table `flows?limit=100`",
            format!("{base}/api/v1/flows?limit=100"),
            table_clients,
        ),
        (
            "aggregate `by=src_ip`",
            format!("{base}/api/v1/aggregate?by=src_ip&limit=100"),
            (clients - table_clients).max(1),
        ),
    ];
    let start = Instant::now();
    let until = start + Duration::from_secs(u64::from(secs));
    let pullers: Vec<_> = parent_dirs
        .iter()
        .cloned()
        .map(|p| {
            std::thread::spawn(move || {
                let mut times = Vec::new();
                let mut failed = 0u32;
                while Instant::now() < until {
                    let t = Instant::now();
                    let ok = lumpy()
                        .args(["pull", "--data", p.to_str().expect("utf-8")])
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false);
                    if ok {
                        times.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        failed += 1;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                (times, failed)
            })
        })
        .collect();
    let drivers: Vec<_> = endpoints
        .iter()
        .map(|(_, url, n)| wrk(url, &cookie, *n, secs, &script))
        .collect();
    let results: Vec<WrkResult> = drivers
        .into_iter()
        .map(|d| {
            parse_wrk(&String::from_utf8_lossy(
                &d.wait_with_output().expect("wrk").stdout,
            ))
        })
        .collect();
    let mut pull_ms = Vec::new();
    let mut pulls_failed = 0;
    for p in pullers {
        let (t, f) = p.join().expect("puller");
        pull_ms.extend(t);
        pulls_failed += f;
    }
    pull_ms.sort_by(f64::total_cmp);
    let peak = peak_rss_mib(pid);
    drop(served);

    println!(
        "{flows} flows, {clients} UI connections (wrk), {parents} parents pulling every second, {secs} s, one run on this machine (`nproc` = {}).\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "| endpoint | connections | requests/s | p50 ms | p99 ms | answers by status | socket errors |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((name, _, n), r) in endpoints.iter().zip(&results) {
        let statuses: Vec<String> = r
            .statuses
            .iter()
            .map(|(s, c)| format!("{s}: {c}"))
            .collect();
        println!(
            "| {name} | {n} | {:.0} | {:.1} | {:.1} | {} | {} |",
            r.requests_per_sec,
            r.p50_ms,
            r.p99_ms,
            statuses.join(", "),
            r.errors
        );
    }
    println!(
        "| `lumpy pull` (nothing new) | {parents} parents | {:.1} | {:.1} | {:.1} | ok: {}, failed: {pulls_failed} | |",
        pull_ms.len() as f64 / f64::from(secs.max(1)),
        percentile(&pull_ms, 0.5),
        percentile(&pull_ms, 0.99),
        pull_ms.len()
    );
    println!("\nPeak resident memory of `lumpy serve`: {peak:.0} MiB.");
}
