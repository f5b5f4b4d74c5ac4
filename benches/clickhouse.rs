//! ClickHouse export benchmark (issue 19, point 6): `lumpy export clickhouse`
//! of N flow rows into a fresh ClickHouse, side by side in one run with
//! `clickhouse-client --query "INSERT ... FORMAT TabSeparated"` loading the
//! same rows from a file; then the aggregate by destination port over all
//! rows in ClickHouse against the same query on the SQLite mirror.
//!
//! Run with `cargo bench --bench clickhouse` (clickhouse-server and
//! clickhouse-client installed, as scripts/test.sh does; as root the server
//! runs as the clickhouse user). LUMPY_BENCH_FLOWS=N sets the rows (default
//! 10,000,000). The node ingests 10 copies of fixtures/honeynet.pcap (real
//! flows); the mirror's `flow` rows are then doubled in SQL (new flow ids,
//! start times shifted past the last one, each with its x_flow_version row)
//! until N: the export reads only the mirror, so this measures it at N rows
//! without ingesting N flows first. Results: a Markdown table on stdout.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{init_node, run};

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A clickhouse-server in `dir`; returns (child, http port, tcp port).
/// The caller kills and waits for the child; a failed start panics (the
/// bench ends, and the server with the temp dir's removal).
#[allow(clippy::zombie_processes)]
fn start_server(dir: &Path) -> (std::process::Child, u16, u16) {
    let (http, tcp) = (free_port(), free_port());
    let d = dir.display();
    std::fs::write(
        dir.join("config.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
  <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><users_config>users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
"#
        ),
    )
    .expect("config");
    std::fs::write(
        dir.join("users.xml"),
        r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#,
    )
    .expect("users");
    let mut cmd = if is_root() {
        let _ = Command::new("chown")
            .args(["-R", "clickhouse:clickhouse"])
            .arg(dir)
            .status();
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=clickhouse",
            "--regid=clickhouse",
            "--init-groups",
            "clickhouse-server",
        ]);
        c
    } else {
        Command::new("clickhouse-server")
    };
    let child = cmd
        .arg(format!("--config-file={}/config.xml", d))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("clickhouse-server (apt-get install clickhouse-server)");
    for _ in 0..300 {
        if client(tcp, "SELECT 1").trim() == "1" {
            return (child, http, tcp);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("clickhouse-server did not start; see {d}/server.err.log");
}

/// The bench's server, killed when dropped (also when the bench panics).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(tcp: u16, query: &str) -> String {
    let out = Command::new("clickhouse-client")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &tcp.to_string(),
            "--query",
            query,
        ])
        .output()
        .expect("clickhouse-client");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn timed(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed().as_secs_f64()
}

/// Doubles the mirror's v4 flows (and their versions) until `target` rows.
/// A copy gets new, higher versions (as flows ingested later would), so the
/// versions keep the ingest's order instead of repeating.
fn grow_mirror(data: &str, target: u64) -> u64 {
    let m = rusqlite::Connection::open(Path::new(data).join("mirror.sqlite")).expect("mirror");
    m.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF")
        .expect("pragma");
    let count = |m: &rusqlite::Connection| -> u64 {
        m.query_row("SELECT count(*) FROM flow", [], |r| r.get::<_, i64>(0))
            .expect("count") as u64
    };
    let cols: Vec<String> = m
        .prepare("SELECT name FROM pragma_table_info('flow') ORDER BY cid")
        .expect("columns")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("columns")
        .map(|c| c.expect("column"))
        .collect();
    while count(&m) < target {
        let (max_id, span, top): (i64, i64, i64) = m
            .query_row(
                "SELECT (SELECT max(flow_id) + 1 FROM x_flow_version), max(src_start_sec) - min(src_start_sec) + 1000, (SELECT max(version) FROM x_flow_version) FROM flow",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("range");
        let room = target - count(&m);
        let shifted: Vec<String> = cols
            .iter()
            .map(|c| match c.as_str() {
                "flow_id" => format!("flow_id + {max_id}"),
                "src_start_sec" | "src_end_sec" | "dst_start_sec" | "dst_end_sec" => {
                    format!("CASE WHEN {c} > 0 THEN {c} + {span} ELSE 0 END")
                }
                other => other.to_string(),
            })
            .collect();
        m.execute_batch(&format!(
            "BEGIN;
             INSERT INTO x_flow_version (sensor_id, flow_id, version, closed, in_flow6)
               SELECT v.sensor_id, v.flow_id + {max_id}, v.version + {top}, v.closed, 0 FROM x_flow_version v
               JOIN flow f ON f.sensor_id = v.sensor_id AND f.flow_id = v.flow_id
               WHERE v.in_flow6 = 0 ORDER BY v.flow_id LIMIT {room};
             INSERT INTO flow ({}) SELECT {} FROM flow ORDER BY flow_id LIMIT {room};
             COMMIT;",
            cols.join(", "),
            shifted.join(", ")
        ))
        .expect("grow");
    }
    count(&m)
}

fn main() {
    let target: u64 = std::env::var("LUMPY_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let server_dir = tmp.path().join("ch");
    std::fs::create_dir(&server_dir).expect("dir");
    let (child, http, tcp) = start_server(&server_dir);
    let server = Server(child);
    let data = tmp.path().join("node");
    let d = data.to_str().expect("utf-8");
    init_node(d);
    let capture = tmp.path().join("capture.pcap");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap");
    let (header, packets) = common::all_packets(&fixture);
    common::repeat_packets(&capture, 10 * packets.len() as u64, &header, &packets);
    run(&["ingest", "--data", d, capture.to_str().expect("utf-8")]);
    let t = Instant::now();
    let rows = grow_mirror(d, target);
    eprintln!(
        "mirror grown to {rows} flow rows in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    // lumpy export clickhouse into a fresh database.
    let url = format!("http://127.0.0.1:{http}");
    let mut export = common::lumpy();
    export.args([
        "export",
        "clickhouse",
        "--data",
        d,
        "--url",
        &url,
        "--database",
        "bench",
        "--batch-rows",
        "100000",
    ]);
    let lumpy_secs = timed(export);
    let exported: u64 = client(tcp, "SELECT count() FROM bench.flows")
        .trim()
        .parse()
        .unwrap_or(0);

    // The same rows from a TabSeparated file with clickhouse-client.
    let file = tmp.path().join("flows.tsv");
    let out = std::fs::File::create(&file).expect("tsv");
    let status = Command::new("clickhouse-client")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &tcp.to_string(),
            "--query",
            "SELECT * FROM bench.flows FORMAT TabSeparated",
        ])
        .stdout(out)
        .status()
        .expect("dump");
    assert!(status.success());
    client(tcp, "CREATE DATABASE copy");
    client(tcp, "CREATE TABLE copy.flows AS bench.flows");
    let mut load = Command::new("sh");
    load.arg("-c").arg(format!(
        "clickhouse-client --host 127.0.0.1 --port {tcp} --query 'INSERT INTO copy.flows FORMAT TabSeparated' < {}",
        file.display()
    ));
    let client_secs = timed(load);
    let copied: u64 = client(tcp, "SELECT count() FROM copy.flows")
        .trim()
        .parse()
        .unwrap_or(0);

    // The aggregate by destination port over every row, both sides.
    let q = "SELECT dst_port, count() AS n FROM bench.flows FINAL GROUP BY dst_port ORDER BY n DESC, dst_port LIMIT 10";
    let start = Instant::now();
    let ch_top = client(tcp, q);
    let ch_secs = start.elapsed().as_secs_f64();
    let m = rusqlite::Connection::open(data.join("mirror.sqlite")).expect("mirror");
    let start = Instant::now();
    let mut stmt = m
        .prepare("SELECT dst_port, count(*) AS n FROM (SELECT dst_port FROM flow UNION ALL SELECT dst_port FROM x_flow6) GROUP BY dst_port ORDER BY n DESC, dst_port LIMIT 10")
        .expect("prepare");
    let sq_top: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!("{}\t{}", r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    let sq_secs = start.elapsed().as_secs_f64();
    let same = ch_top.lines().map(str::to_string).collect::<Vec<_>>() == sq_top;

    println!("| ClickHouse export, {rows} flow rows (2 cores, shared) | time | rows/s |");
    println!("|---|---|---|");
    println!(
        "| `lumpy export clickhouse` (RowBinary, 100k-row batches), {exported} rows | {lumpy_secs:.1} s | {:.0} |",
        exported as f64 / lumpy_secs
    );
    println!(
        "| `clickhouse-client INSERT ... FORMAT TabSeparated` < file, {copied} rows | {client_secs:.1} s | {:.0} |",
        copied as f64 / client_secs
    );
    println!(
        "| lumpy / client time | {:.2} x | |",
        lumpy_secs / client_secs
    );
    println!("| aggregate by dst_port, ClickHouse (FINAL) | {ch_secs:.2} s | |");
    println!("| aggregate by dst_port, SQLite mirror | {sq_secs:.2} s | |");
    println!("| same top 10 | {same} | |");
    drop(server);
}
