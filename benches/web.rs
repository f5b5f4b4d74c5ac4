//! Web UI benchmark: the connection table's query over a mirror of about
//! one million flows, through the UI's HTTP API (login, session cookie,
//! JSON) and, for comparison, the same query as a library call.
//!
//! The mirror is built through the normal path: a Honeywall capture tree of
//! four sensors (`var/log/pcap/sensor_<id>/<epoch>/log`), each file holding
//! copies of fixtures/honeynet.pcap shifted 1000 s apart (about 287 flows a
//! copy), ingested by `lumpy ingest`. `LUMPY_BENCH_COPIES` sets the copies
//! per sensor (default 900: about 1.0 M flows). `LUMPY_BENCH_ROUNDS` sets
//! how often the whole query mix runs (default 20). `LUMPY_BENCH_DIR=DIR`
//! keeps the built node in DIR and reuses it on the next run.
//!
//! Run with `cargo bench --bench web`; the result is a Markdown table for
//! docs/BENCHMARKS.md on stdout.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{free_port, lumpy, run};

const SENSORS: [u32; 4] = [1_000_001, 1_000_002, 1_000_003, 1_000_004];
const PASSWORD: &str = "benchmark password";

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `copies` copies of the fixture, shifted `1000 s` each, plus `offset`.
fn make_capture(dst: &Path, copies: u32, offset: u32) {
    use std::io::Write;
    let src = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap"))
        .expect("fixtures/honeynet.pcap");
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).expect("create capture"));
    out.write_all(&src[..24]).expect("write");
    for copy in 0..copies {
        let mut at = 24;
        while at + 16 <= src.len() {
            let caplen =
                u32::from_le_bytes(src[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let sec = u32::from_le_bytes(src[at..at + 4].try_into().expect("4 bytes"))
                + copy * 1000
                + offset;
            out.write_all(&sec.to_le_bytes()).expect("write");
            out.write_all(&src[at + 4..at + 16 + caplen])
                .expect("write");
            at += 16 + caplen;
        }
    }
    out.flush().expect("flush");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Stats {
    name: String,
    ms: Vec<f64>,
    rows: u64,
}

fn main() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let copies = env_u32("LUMPY_BENCH_COPIES", 900);
    let rounds = env_u32("LUMPY_BENCH_ROUNDS", 20);
    // LUMPY_BENCH_DIR keeps the built node there and reuses it next time.
    let temp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var_os("LUMPY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let data = root.join("node");
    let data_s = data.to_str().expect("utf-8").to_string();
    let reuse = data.join("index.redb").exists();
    let mut ingest_secs = 0.0;
    if !reuse {
        ingest_secs = build(&root, &data_s, copies);
    }
    let flows = {
        let m = lumpy::mirror::Mirror::open(&data.join("mirror.sqlite")).expect("mirror");
        m.flow_count().expect("count")
    };
    eprintln!("{flows} flows");
    let _ = std::fs::remove_file(data.join("ui-users.json"));
    run_bench(&data, &data_s, copies, rounds, flows, ingest_secs);
}

/// Builds the node: init, the capture tree, `lumpy ingest`; returns seconds.
fn build(root: &Path, data_s: &str, copies: u32) -> f64 {
    run(&[
        "init",
        "--data",
        data_s,
        "--sensor-id",
        "1000000",
        "--installed",
        "1700000000",
        "--honeypot-net",
        "192.0.2.0/24",
    ]);
    let tree: PathBuf = root.join("hw");
    for (i, s) in SENSORS.iter().enumerate() {
        let dir = tree.join(format!("var/log/pcap/sensor_{s}/1795736400"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        // Sensors overlap in time but not exactly (37 s apart).
        make_capture(&dir.join("log"), copies, i as u32 * 37);
    }
    eprintln!(
        "ingesting {} copies x {} sensors ...",
        copies,
        SENSORS.len()
    );
    let t = Instant::now();
    run(&["ingest", "--data", data_s, tree.to_str().expect("utf-8")]);
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&tree);
    secs
}

fn run_bench(data: &Path, data_s: &str, copies: u32, rounds: u32, flows: u64, ingest_secs: f64) {
    // The UI, with a user.
    let mut add = lumpy()
        .args(["user", "add", "--data", data_s, "bench", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    {
        use std::io::Write;
        let mut stdin = add.stdin.take().expect("stdin");
        writeln!(stdin, "{PASSWORD}").expect("password");
    }
    assert!(add.wait().expect("user add").success());
    let (port, ui) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let mut child = lumpy()
        .args([
            "serve",
            "--data",
            data_s,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ui-listen",
            &format!("127.0.0.1:{ui}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    }
    let served = common::Served(child);
    let base = format!("http://127.0.0.1:{ui}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let cookie = rt.block_on(async {
        let r = client
            .post(format!("{base}/api/v1/login"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"user":"bench","password":"{PASSWORD}"}}"#))
            .send()
            .await
            .expect("login");
        assert!(r.status().is_success(), "login: {}", r.status());
        r.headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("cookie")
            .to_string()
    });
    let get = |q: &str| -> (f64, serde_json::Value) {
        rt.block_on(async {
            let t = Instant::now();
            let r = client
                .get(format!("{base}/api/v1/flows?{q}"))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("request");
            let status = r.status();
            let body = r.bytes().await.expect("body");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert!(status.is_success(), "{q}: {status}");
            (ms, serde_json::from_slice(&body).expect("json"))
        })
    };
    // A time window in the middle of the data.
    let mid = 1_795_736_400 + copies / 2 * 1000;
    let mix: Vec<(&str, String)> = vec![
        ("first page, every sensor", String::new()),
        ("one sensor", format!("sensor={}", SENSORS[2])),
        ("port 22 (either side)", "port=22".into()),
        ("dst port 80, tcp", "port=80&port_side=dst&proto=tcp".into()),
        ("udp", "proto=udp".into()),
        ("source host", "ip=198.51.100.20&ip_side=src".into()),
        ("honeypot /24", "ip=192.0.2.0/24".into()),
        ("IPv6 host", "ip=2001:db8:2::20".into()),
        (
            "bidirectional, >= 1000 bytes",
            "bidir=1&min_bytes=1000".into(),
        ),
        ("IDS alerts only (none)", "alerts=1".into()),
        ("1 h window", format!("since={}&until={}", mid, mid + 3600)),
        (
            "1 h window, one sensor, icmp",
            format!(
                "since={}&until={}&sensor={}&proto=icmp",
                mid,
                mid + 3600,
                SENSORS[0]
            ),
        ),
        (
            "rare port (31337) and host",
            "port=31337&ip=192.0.2.10".into(),
        ),
        // Sorted and collapsed pages: the newest 10,000 matches, sorted or
        // collapsed (a bounded plan; hflow's schema has no size index).
        ("sorted by bytes", "sort=bytes".into()),
        (
            "sorted by packets, one sensor",
            format!("sort=packets&sensor={}", SENSORS[1]),
        ),
        ("sorted by duration, tcp", "sort=duration&proto=tcp".into()),
        ("repeats collapsed", "collapse=1".into()),
        (
            "repeats collapsed, by bytes, udp",
            "collapse=1&sort=bytes&proto=udp".into(),
        ),
    ];
    let mut stats: Vec<Stats> = mix
        .iter()
        .map(|(n, _)| Stats {
            name: n.to_string(),
            ms: Vec::new(),
            rows: 0,
        })
        .chain(std::iter::once(Stats {
            name: "pages 2-11 of every sensor (keyset `after`)".into(),
            ms: Vec::new(),
            rows: 0,
        }))
        .collect();
    // One warm-up round: the first touch of each index page comes from disk.
    for (_, q) in &mix {
        let _ = get(q);
    }
    for _ in 0..rounds {
        for (i, (_, q)) in mix.iter().enumerate() {
            let (ms, v) = get(q);
            stats[i].ms.push(ms);
            stats[i].rows = v["rows"].as_array().map_or(0, |a| a.len() as u64);
        }
        let (_, mut v) = get("");
        let last = stats.len() - 1;
        for _ in 0..10 {
            let Some(next) = v["next"].as_str().map(String::from) else {
                break;
            };
            let (ms, page) = get(&format!("after={next}"));
            stats[last].ms.push(ms);
            stats[last].rows = page["rows"].as_array().map_or(0, |a| a.len() as u64);
            v = page;
        }
    }
    // The other views' endpoints, for the record (no goal set for them).
    let others = [
        ("sensor overview", "/api/v1/sensors".to_string()),
        (
            "aggregate by dst_port, everything",
            "/api/v1/aggregate?by=dst_port".into(),
        ),
        (
            "aggregate by src_ip, 1 h window",
            format!(
                "/api/v1/aggregate?by=src_ip&since={}&until={}",
                mid,
                mid + 3600
            ),
        ),
        ("plots, newest day", "/api/v1/plots".into()),
        (
            "plots, newest day, tcp port 22",
            "/api/v1/plots?proto=tcp&port=22".into(),
        ),
        (
            "aggregate by client OS, 1 h window",
            format!(
                "/api/v1/aggregate?by=client_os&since={}&until={}",
                mid,
                mid + 3600
            ),
        ),
        (
            "aggregate by protocol, 1 h window",
            format!(
                "/api/v1/aggregate?by=proto&since={}&until={}",
                mid,
                mid + 3600
            ),
        ),
        ("flow detail", "/api/v1/flows/1000001/1000".into()),
        ("host detail", "/api/v1/hosts/198.51.100.20".into()),
        ("connections graph, everything", "/api/v1/graph".into()),
        ("connections graph, udp", "/api/v1/graph?proto=udp".into()),
        (
            "packets and payload of a flow",
            "/api/v1/flows/1000001/1000/packets".into(),
        ),
    ];
    let mut other_ms: Vec<(String, Vec<f64>)> = Vec::new();
    for (name, path) in &others {
        let mut v = Vec::new();
        for _ in 0..rounds.clamp(1, 5) {
            v.push(rt.block_on(async {
                let t = Instant::now();
                let r = client
                    .get(format!("{base}{path}"))
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .expect("request");
                assert!(r.status().is_success(), "{path}: {}", r.status());
                let _ = r.bytes().await.expect("body");
                t.elapsed().as_secs_f64() * 1000.0
            }));
        }
        v.sort_by(|a, b| a.total_cmp(b));
        other_ms.push((name.to_string(), v));
    }
    // The same mix as a library call on the mirror (no HTTP, no JSON).
    let mirror = lumpy::mirror::Mirror::open(&data.join("mirror.sqlite")).expect("mirror");
    let mut lib_ms = Vec::new();
    for _ in 0..rounds {
        for (_, q) in &mix {
            let query = parse_for_library(q);
            let t = Instant::now();
            let _ = mirror.connections(&query).expect("query");
            lib_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    drop(served);

    let mut all: Vec<f64> = stats.iter().flat_map(|s| s.ms.iter().copied()).collect();
    all.sort_by(|a, b| a.total_cmp(b));
    lib_ms.sort_by(|a, b| a.total_cmp(b));
    let built = if ingest_secs > 0.0 {
        format!(", built by `lumpy ingest` in {ingest_secs:.1} s")
    } else {
        String::new()
    };
    println!(
        "Mirror: {flows} flows of {} sensors{built}; {} rounds of the mix, 100 rows a page.\n",
        SENSORS.len(),
        rounds
    );
    println!("| query (GET /api/v1/flows) | rows | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|");
    for s in &mut stats {
        s.ms.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            s.name,
            s.rows,
            percentile(&s.ms, 0.5),
            percentile(&s.ms, 0.95),
            s.ms.last().copied().unwrap_or(0.0)
        );
    }
    println!(
        "| **all {} requests over HTTP** | | **{:.1}** | **{:.1}** (p99 {:.1}) | {:.1} |",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.95),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0.0)
    );
    println!(
        "| the same queries as library calls (`Mirror::connections`) | | {:.1} | {:.1} (p99 {:.1}) | {:.1} |",
        percentile(&lib_ms, 0.5),
        percentile(&lib_ms, 0.95),
        percentile(&lib_ms, 0.99),
        lib_ms.last().copied().unwrap_or(0.0)
    );
    println!("\n| other views (GET) | p50 ms | max ms |");
    println!("|---|---|---|");
    for (name, v) in &other_ms {
        println!(
            "| {name} | {:.1} | {:.1} |",
            percentile(v, 0.5),
            v.last().copied().unwrap_or(0.0)
        );
    }
}

/// The mix's query strings as `ConnQuery` values (the API's own parser is
/// not public; this covers the parameters the mix uses).
fn parse_for_library(q: &str) -> lumpy::mirror::ui_query::ConnQuery {
    use lumpy::mirror::ui_query::{ConnQuery, Side};
    let mut c = ConnQuery {
        limit: 100,
        ..ConnQuery::default()
    };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').expect("k=v");
        match k {
            "sensor" => c.sensor = v.parse().ok(),
            "port" => c.port = v.parse().ok(),
            "port_side" => c.port_side = if v == "dst" { Side::Dst } else { Side::Src },
            "ip_side" => c.ip_side = if v == "dst" { Side::Dst } else { Side::Src },
            "proto" => {
                c.proto = Some(match v {
                    "tcp" => 6,
                    "udp" => 17,
                    "icmp" => 1,
                    n => n.parse().expect("proto"),
                })
            }
            "ip" => {
                let (a, m) = v.split_once('/').unwrap_or((v, ""));
                let ip: std::net::IpAddr = a.parse().expect("ip");
                let max = if ip.is_ipv4() { 32 } else { 128 };
                c.ip = Some((ip, m.parse().unwrap_or(max)));
            }
            "bidir" => c.bidirectional = v == "1",
            "min_bytes" => c.min_bytes = v.parse().ok(),
            "alerts" => c.alerts_only = v == "1",
            "since" => c.since = v.parse().ok(),
            "until" => c.until = v.parse().ok(),
            "sort" => c.sort = lumpy::mirror::ui_query::SortKey::parse(v).expect("sort"),
            "collapse" => c.collapse = v == "1",
            other => panic!("bench mix: {other}"),
        }
    }
    c
}
