//! `export clickhouse` against a real clickhouse-server (Debian 12's 18.16.1,
//! installed by scripts/test.sh; these tests fail, never skip, without it).
//!
//! One server per test binary, started here on a free port of a 127.0.0.x
//! address in a temp dir with its own config (a user with a password for
//! the refusal test), as the `clickhouse` user when run as root; a watchdog
//! shell stops it and removes its directory when the test process is gone.
//! Each test uses its own database. Content is compared per table and sensor
//! on canonical rows (integers in decimal, strings and addresses in hex,
//! NULL as \N) read with FINAL from ClickHouse and from the mirror.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use lumpy::export::{CH_TABLES, ChTable};

use crate::export::{add_host_data, mirror, sqlite_rows};
use crate::util::*;

pub(crate) const CH_USER: &str = "lumpy";
pub(crate) const CH_PASSWORD: &str = "Lumpy-ch-test-only-5e1b";

pub(crate) struct ChServer {
    /// `http://127.0.0.x:PORT`
    pub(crate) url: String,
}

fn free_port(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Writes config.xml and users.xml for a server on `host`, ports `http` and
/// `tcp`, data in `dir`; `remote_servers` is put in as is (clusters).
pub(crate) fn write_config(dir: &Path, host: &str, http: u16, tcp: u16, remote_servers: &str) {
    let d = dir.display();
    std::fs::write(
        dir.join("config.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>{host}</listen_host>
  <max_connections>256</max_connections>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <remote_servers>{remote_servers}</remote_servers>
</yandex>
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("users.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage><max_threads>2</max_threads></default></profiles>
  <users>
    <default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default>
    <{CH_USER}><password>{CH_PASSWORD}</password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></{CH_USER}>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#
        ),
    )
    .unwrap();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Starts clickhouse-server with the config in `dir` (as the clickhouse
/// user when root), waits until it answers, and leaves a watchdog that
/// kills it when this test process ends. Neither child is waited for: both
/// outlive the test process on purpose (the watchdog reaps the server).
/// Returns the server's pid.
#[allow(clippy::zombie_processes)]
pub(crate) fn start_server(dir: &Path, url: &str) -> u32 {
    let config = dir.join("config.xml");
    let mut cmd = if is_root() {
        let status = Command::new("chown")
            .args(["-R", "clickhouse:clickhouse"])
            .arg(dir)
            .status()
            .expect("chown");
        assert!(status.success());
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
        .arg(format!("--config-file={}", config.display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("clickhouse-server is required (scripts/test.sh installs it): {e}")
        });
    let server = child.id();
    // The watchdog outlives nothing: it stops the server once this test
    // process is gone (statics are never dropped), then removes its files.
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill {server}; sleep 3; kill -9 {server} 2>/dev/null; rm -rf '{dir}'",
            me = std::process::id(),
            dir = dir.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog");
    std::mem::forget(child);
    let start = std::time::Instant::now();
    loop {
        let out = Command::new("curl")
            .args(["-s", "-m", "2", &format!("{url}/?query=SELECT%201")])
            .output()
            .expect("curl");
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            return server;
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "clickhouse-server did not answer at {url}; see {}/server.err.log",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A host address of its own per test process (127.0.0.100-199).
pub(crate) fn test_host(offset: u32) -> String {
    format!("127.0.0.{}", 100 + (std::process::id() + offset) % 100)
}

/// The server of this test binary.
pub(crate) fn server() -> &'static ChServer {
    static SERVER: OnceLock<ChServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("lumpy-ch-")
            .tempdir()
            .unwrap()
            .keep();
        let host = test_host(0);
        let (http, tcp) = (free_port(&host), free_port(&host));
        write_config(&dir, &host, http, tcp, "");
        let url = format!("http://{host}:{http}");
        start_server(&dir, &url);
        ChServer { url }
    })
}

/// Runs `sql` on the server at `url` as default; returns the body.
pub(crate) fn ch_at(url: &str, sql: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "--fail-with-body", "--data-binary", "@-", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .expect("curl");
    assert!(
        out.status.success(),
        "{sql}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn ch(sql: &str) -> String {
    ch_at(&server().url, sql)
}

/// True once an export into `db` has recorded a flows watermark: some of
/// its batches are in and it is streaming.
fn flows_watermark_in(url: &str, db: &str) -> bool {
    let state = format!(
        "SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'lumpy_export_state'"
    );
    let flows =
        format!("SELECT count() FROM {db}.lumpy_export_state WHERE table_name LIKE 'flows%'");
    ch_at(url, &state).trim() == "1" && ch_at(url, &flows).trim() != "0"
}

pub(crate) fn ch_rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    ch_at(url, &format!("{sql} FORMAT TabSeparated"))
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// A database name of this test, dropped at the end.
pub(crate) struct ChDb {
    pub(crate) name: String,
    url: String,
}

impl ChDb {
    pub(crate) fn new(test: &str) -> ChDb {
        let name = format!("lumpy_t_{test}_{}", std::process::id());
        let url = server().url.clone();
        ch_at(&url, &format!("DROP DATABASE IF EXISTS {name}"));
        ChDb { name, url }
    }

    pub(crate) fn exists(&self) -> bool {
        ch_at(
            &self.url,
            &format!(
                "SELECT count() FROM system.databases WHERE name = '{}'",
                self.name
            ),
        )
        .trim()
            == "1"
    }
}

impl Drop for ChDb {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args([
                "-s",
                "--data-binary",
                &format!("DROP DATABASE IF EXISTS {}", self.name),
                &self.url,
            ])
            .output();
    }
}

/// The arguments of `lumpy export clickhouse` into `db` at `url`, then `extra`.
fn export_args<'a>(data: &'a str, url: &'a str, db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "export",
        "clickhouse",
        "--data",
        data,
        "--url",
        url,
        "--database",
        db,
    ];
    args.extend_from_slice(extra);
    args
}

pub(crate) fn export_ch(data: &str, url: &str, db: &str, extra: &[&str]) -> String {
    ok(&export_args(data, url, db, extra))
}

/// The canonical text of one column on each side: (ClickHouse, SQLite).
fn canonical(name: &str, ty: &str) -> (String, String) {
    match ty {
        "String" => (
            format!("hex({name})"),
            format!("CASE WHEN {name} IS NULL THEN NULL ELSE hex({name}) END"),
        ),
        "FixedString(16)" => (
            format!("hex({name})"),
            // IPv4 as an integer (flow) or 4 bytes, IPv6 as 16 bytes.
            format!(
                "CASE WHEN typeof({name}) = 'integer' THEN '00000000000000000000FFFF' || printf('%08X', {name}) \
                 WHEN length({name}) = 4 THEN '00000000000000000000FFFF' || hex({name}) ELSE hex({name}) END"
            ),
        ),
        _ => (name.to_string(), name.to_string()),
    }
}

/// Per table and sensor: the mirror's rows equal the rows ClickHouse reads
/// with FINAL at `url` in `db`, in key order. Returns the (table, sensor)
/// pairs compared; panics on the first difference.
pub(crate) fn assert_same_content(data: &str, url: &str, db: &str) -> usize {
    let m = mirror(data);
    let mut compared = 0;
    for t in CH_TABLES {
        let cols = t.data_columns();
        let (chx, sqx): (Vec<String>, Vec<String>) =
            cols.iter().map(|(n, ty, _)| canonical(n, ty)).unzip();
        let mut sensors: Vec<u32> = Vec::new();
        let from = mirror_from(t);
        for r in sqlite_rows(&m, &format!("SELECT DISTINCT sensor_id FROM {from}")) {
            sensors.push(r[0].parse().unwrap());
        }
        for r in ch_rows(
            url,
            &format!("SELECT DISTINCT sensor_id FROM {db}.{}", t.name),
        ) {
            let id: u32 = r[0].parse().unwrap();
            if !sensors.contains(&id) {
                sensors.push(id);
            }
        }
        for sensor in sensors {
            let here = sqlite_rows(
                &m,
                &format!(
                    "SELECT {} FROM {from} WHERE sensor_id = {sensor} ORDER BY {}",
                    sqx.join(", "),
                    t.order_by
                ),
            );
            let there = ch_rows(
                url,
                &format!(
                    "SELECT {} FROM {db}.{} FINAL WHERE sensor_id = {sensor} ORDER BY {}",
                    chx.join(", "),
                    t.name,
                    t.order_by
                ),
            );
            if here != there {
                let first = here.iter().zip(&there).find(|(x, y)| x != y);
                panic!(
                    "table {} sensor {sensor}: mirror {} rows, ClickHouse {} rows; first difference {first:?}",
                    t.name,
                    here.len(),
                    there.len()
                );
            }
            compared += 1;
        }
    }
    compared
}

/// The mirror rows a ClickHouse table holds.
fn mirror_from(t: &ChTable) -> String {
    if t.name == "flows" {
        let cols: Vec<&str> = t.data_columns().iter().map(|c| c.0).collect();
        let cols = cols.join(", ");
        format!("(SELECT {cols} FROM flow UNION ALL SELECT {cols} FROM x_flow6)")
    } else {
        t.name.to_string()
    }
}

/// A node of sensor 42 holding honeynet.pcap (IPv4 and IPv6 flows) plus
/// host data in the mirror's legacy tables (tests/export.rs).
fn node() -> (tempfile::TempDir, String) {
    let (d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    add_host_data(&data);
    (d, data)
}

/// Rows the output reports for tables whose name starts with `prefix`.
fn reported(out: &str, prefix: &str) -> i64 {
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(": ").next())
        .map(|n| n.trim_end_matches(" rows").parse::<i64>().unwrap())
        .sum()
}

#[test]
fn export_equals_the_mirror_and_a_repeat_sends_nothing() {
    let (_d, data) = node();
    let url = &server().url;
    let db = ChDb::new("equal");
    let out = export_ch(&data, url, &db.name, &[]);
    assert!(out.contains("flows/ipv4 sensor 42: "), "{out}");
    assert!(out.contains("flows/ipv6 sensor 42: "), "{out}");
    let compared = assert_same_content(&data, url, &db.name);
    assert!(compared >= 13, "compared {compared} (table, sensor) pairs");
    // The schema is what docs/CLICKHOUSE.md says: month partitions,
    // replacing by the origin version.
    let engine = ch(&format!(
        "SELECT engine_full FROM system.tables WHERE database = '{}' AND name = 'flows'",
        db.name
    ));
    assert!(
        engine.contains(
            "ReplacingMergeTree(_version) PARTITION BY toYYYYMM(toDateTime(src_start_sec))"
        ),
        "{engine}"
    );
    let parts = |db: &str| {
        ch(&format!(
            "SELECT count() FROM system.parts WHERE database = '{db}' AND active"
        ))
    };
    let before = parts(&db.name);
    let again = export_ch(&data, url, &db.name, &[]);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(parts(&db.name), before, "a repeated export wrote");
    // --full sends everything again; FINAL still reads each row once.
    let full = export_ch(&data, url, &db.name, &["--full", "--batch-rows", "50"]);
    assert!(full.contains("flows/ipv4 sensor 42: "), "{full}");
    assert_same_content(&data, url, &db.name);
    // OPTIMIZE ... FINAL merges the re-sent rows away.
    ch(&format!("OPTIMIZE TABLE {}.flows FINAL", db.name));
    let m = mirror(&data);
    let flows: i64 = m
        .query_row("SELECT count(*) FROM x_flow_version", [], |r| r.get(0))
        .unwrap();
    let stored = ch(&format!("SELECT count() FROM {}.flows", db.name));
    assert_eq!(stored.trim(), flows.to_string());
}

#[test]
fn an_export_after_new_data_sends_exactly_that_data() {
    let (_d, data) = node();
    let url = &server().url;
    let db = ChDb::new("incr");
    export_ch(&data, url, &db.name, &[]);
    let m = mirror(&data);
    let before: i64 = m
        .query_row("SELECT max(version) FROM x_flow_version", [], |r| r.get(0))
        .unwrap();
    drop(m);
    ingest_fixture(&data, "vlan.pcap");
    let m = mirror(&data);
    let changed: i64 = m
        .query_row(
            "SELECT count(*) FROM x_flow_version WHERE version > ?1",
            [before],
            |r| r.get(0),
        )
        .unwrap();
    assert!(changed > 0);
    m.execute("INSERT INTO command VALUES (42, 4, 'perl')", [])
        .unwrap();
    // A removed row disappears from ClickHouse too (the older generation
    // is deleted).
    m.execute("DELETE FROM sbk_loss WHERE sensor_id = 42", [])
        .unwrap();
    drop(m);
    let out = export_ch(&data, url, &db.name, &[]);
    assert_eq!(reported(&out, "flows/"), changed, "{out}");
    assert_eq!(reported(&out, "command "), 4, "{out}");
    assert_eq!(reported(&out, "sys_read "), 0, "{out}");
    assert!(out.contains("sbk_loss sensor 42: 0 rows"), "{out}");
    // The mutation that drops the old generation runs in the background.
    for _ in 0..100 {
        let pending = ch(&format!(
            "SELECT count() FROM system.mutations WHERE database = '{}' AND NOT is_done",
            db.name
        ));
        if pending.trim() == "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_same_content(&data, url, &db.name);
    let again = export_ch(&data, url, &db.name, &[]);
    assert!(again.contains("up to date"), "{again}");
}

#[test]
fn kill_9_mid_export_then_rerun_leaves_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 60, 1000);
    let (_d, data) = new_node(42);
    ok(&["ingest", "--data", &data, big.to_str().unwrap()]);
    let url = server().url.clone();
    let db = ChDb::new("kill9");
    let mut killed_mid_way = false;
    for _ in 0..3 {
        let mut child = lumpy()
            .args(export_args(&data, &url, &db.name, &["--batch-rows", "200"]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until some batches are in, then kill -9.
        let start = std::time::Instant::now();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let marked = db.exists() && flows_watermark_in(&url, &db.name);
            if marked || start.elapsed().as_secs() > 20 || child.try_wait().unwrap().is_some() {
                break;
            }
        }
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            killed_mid_way = true;
        }
    }
    assert!(killed_mid_way, "the export was never interrupted");
    let partial: i64 = ch(&format!("SELECT count() FROM {}.flows FINAL", db.name))
        .trim()
        .parse()
        .unwrap();
    let out = export_ch(&data, &url, &db.name, &["--batch-rows", "200"]);
    assert!(!out.contains("up to date"), "{out}");
    assert_same_content(&data, &url, &db.name);
    let m = mirror(&data);
    let flows: i64 = m
        .query_row("SELECT count(*) FROM x_flow_version", [], |r| r.get(0))
        .unwrap();
    assert!(partial < flows, "partial {partial} of {flows}");
    let counts = ch(&format!(
        "SELECT count(), uniqExact(sensor_id, flow_id) FROM {}.flows FINAL",
        db.name
    ));
    assert_eq!(counts.trim(), format!("{flows}\t{flows}"));
    ch(&format!("OPTIMIZE TABLE {}.flows FINAL", db.name));
    let merged = ch(&format!("SELECT count() FROM {}.flows", db.name));
    assert_eq!(merged.trim(), flows.to_string());
}

#[test]
fn a_server_killed_mid_export_is_named_and_a_rerun_after_its_restart_completes() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 60, 1000);
    let (_d, data) = new_node(42);
    ok(&["ingest", "--data", &data, big.to_str().unwrap()]);
    // A server of this test's own, killed with -9 while the rows stream.
    let sdir = tempfile::Builder::new()
        .prefix("lumpy-ch-killed-")
        .tempdir()
        .unwrap()
        .keep();
    let host = test_host(3);
    let (http, tcp) = (free_port(&host), free_port(&host));
    write_config(&sdir, &host, http, tcp, "");
    let url = format!("http://{host}:{http}");
    let pid = start_server(&sdir, &url);
    let db = "lumpy_killed";
    let mut child = lumpy()
        .args(export_args(&data, &url, db, &["--batch-rows", "100"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Some batches and their watermark are in: the export is streaming.
    let start = std::time::Instant::now();
    loop {
        let marked = flows_watermark_in(&url, db);
        if marked {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended first"
        );
        assert!(start.elapsed().as_secs() < 60, "no batch arrived");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert!(!out.status.success(), "the export outlived its server: {e}");
    // The error names the target and says what is kept.
    assert!(
        e.contains(&format!("{host}:{http}")) && e.contains(db) && e.contains("part-way"),
        "{e}"
    );
    assert!(!e.contains("nothing was written"), "{e}");
    // While the server is down, a run is refused and names it.
    let down = run(&[
        "export",
        "clickhouse",
        "--data",
        &data,
        "--url",
        &url,
        "--database",
        db,
    ]);
    assert!(!down.status.success());
    assert!(stderr(&down).contains("cannot reach"), "{}", stderr(&down));
    // Restarted on the same files: the re-run sends the rest, once.
    start_server(&sdir, &url);
    let partial: i64 = ch_at(&url, &format!("SELECT count() FROM {db}.flows FINAL"))
        .trim()
        .parse()
        .unwrap();
    let flows = mirror_flows(&data);
    assert!(
        partial > 0 && partial < flows,
        "partial {partial} of {flows}"
    );
    let again = export_ch(&data, &url, db, &[]);
    assert!(!again.contains("up to date"), "{again}");
    assert_same_content(&data, &url, db);
    let counts = ch_at(
        &url,
        &format!("SELECT count(), uniqExact(sensor_id, flow_id) FROM {db}.flows FINAL"),
    );
    assert_eq!(counts.trim(), format!("{flows}\t{flows}"));
    ch_at(&url, &format!("OPTIMIZE TABLE {db}.flows FINAL"));
    let merged = ch_at(&url, &format!("SELECT count() FROM {db}.flows"));
    assert_eq!(merged.trim(), flows.to_string());
    let done = export_ch(&data, &url, db, &[]);
    assert!(done.contains("up to date"), "{done}");
}

#[test]
fn errors_are_clear_write_nothing_and_the_export_resumes() {
    let (_d, data) = node();
    let url = server().url.clone();
    let db = ChDb::new("errors");
    let fail = |args: &[&str]| -> String {
        let mut all = vec![
            "export",
            "clickhouse",
            "--data",
            &data,
            "--database",
            &db.name,
        ];
        all.extend_from_slice(args);
        let out = run(&all);
        assert!(!out.status.success(), "{args:?} succeeded");
        stderr(&out)
    };
    let e = fail(&["--url", "mysql://127.0.0.1:8123"]);
    assert!(e.contains("http:// or https://"), "{e}");
    let e = fail(&["--url", "http://lumpy:secret@127.0.0.1:8123"]);
    assert!(
        e.contains("--password-file") && !e.contains("secret"),
        "{e}"
    );
    // Nothing listens on this port: the address is named.
    let host = test_host(0);
    let dead = format!("http://{host}:{}", free_port(&host));
    let e = fail(&["--url", &dead]);
    assert!(e.contains("cannot reach") && e.contains(&host), "{e}");
    // A wrong password: refused by name, nothing created.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let e = fail(&[
        "--url",
        &url,
        "--user",
        CH_USER,
        "--password-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(e.contains("refused user 'lumpy'"), "{e}");
    assert!(!e.contains("not-the-password"), "{e}");
    assert!(!db.exists(), "a refused export created the database");
    // The right password: everything arrives.
    let right = dir.path().join("right");
    std::fs::write(&right, format!("{CH_PASSWORD}\n")).unwrap();
    export_ch(
        &data,
        &url,
        &db.name,
        &[
            "--user",
            CH_USER,
            "--password-file",
            right.to_str().unwrap(),
        ],
    );
    assert_same_content(&data, &url, &db.name);
}

/// Walleye's views in ClickHouse SQL (docs/CLICKHOUSE.md gives them with
/// `lumpy.` for `{db}.`), each with the SQLite query on the mirror that must
/// answer the same, and which of its columns are addresses (formatted as
/// ClickHouse's IPv6NumToString, IPv4 without `::ffff:`). `{host}` is an
/// address of the data, `{t0}`/`{t1}` a time window.
const VIEWS: &[(&str, &str, &str, &[usize])] = &[
    (
        "connection table",
        "SELECT f.flow_id, f.src_start_sec, greatest(f.src_end_sec, f.dst_end_sec) - f.src_start_sec AS duration, \
         replaceRegexpOne(IPv6NumToString(f.src_ip), '^::ffff:', '') AS src, \
         replaceRegexpOne(IPv6NumToString(f.dst_ip), '^::ffff:', '') AS dst, \
         f.ip_proto, f.src_port, f.dst_port, f.src_bytes, f.src_packets, f.dst_bytes, f.dst_packets, os.genre \
         FROM {db}.flows AS f FINAL \
         LEFT JOIN (SELECT sensor_id, os_id, genre FROM {db}.os FINAL) AS os \
         ON os.sensor_id = f.sensor_id AND os.os_id = f.client_os_id \
         WHERE f.sensor_id = 42 AND greatest(f.src_end_sec, f.dst_end_sec) >= {t0} AND f.src_start_sec <= {t1} \
         AND f.ip_proto IN (6, 17) \
         ORDER BY f.src_start_sec, f.src_start_msec, f.flow_id LIMIT 100",
        "SELECT f.flow_id, f.src_start_sec, MAX(f.src_end_sec, f.dst_end_sec) - f.src_start_sec, f.src_ip, f.dst_ip, \
         f.ip_proto, f.src_port, f.dst_port, f.src_bytes, f.src_packets, f.dst_bytes, f.dst_packets, os.genre \
         FROM (SELECT * FROM flow UNION ALL SELECT * FROM x_flow6) f \
         LEFT JOIN os ON os.sensor_id = f.sensor_id AND os.os_id = f.client_os_id \
         WHERE f.sensor_id = 42 AND MAX(f.src_end_sec, f.dst_end_sec) >= {t0} AND f.src_start_sec <= {t1} \
         AND f.ip_proto IN (6, 17) \
         ORDER BY f.src_start_sec, f.src_start_msec, f.flow_id LIMIT 100",
        &[3, 4],
    ),
    (
        "per-sensor activity by day",
        "SELECT sensor_id, intDiv(src_start_sec, 86400) AS day, count(), uniqExact(src_ip), \
         sum(src_packets + dst_packets), sum(src_bytes + dst_bytes) \
         FROM {db}.flows FINAL GROUP BY sensor_id, day ORDER BY sensor_id, day",
        "SELECT sensor_id, src_start_sec / 86400 AS day, COUNT(*), COUNT(DISTINCT src_ip), \
         SUM(src_packets + dst_packets), SUM(src_bytes + dst_bytes) \
         FROM (SELECT * FROM flow UNION ALL SELECT * FROM x_flow6) GROUP BY sensor_id, day ORDER BY sensor_id, day",
        &[],
    ),
    (
        "top talkers",
        "SELECT replaceRegexpOne(IPv6NumToString(src_ip), '^::ffff:', '') AS host, count() AS flows, \
         uniqExact(dst_ip) AS peers, sum(src_bytes) AS sent, sum(dst_bytes) AS received \
         FROM {db}.flows FINAL WHERE sensor_id = 42 \
         GROUP BY src_ip ORDER BY sent DESC, flows DESC, host LIMIT 10",
        "SELECT src_ip, COUNT(*) AS flows, COUNT(DISTINCT dst_ip), SUM(src_bytes) AS sent, SUM(dst_bytes) \
         FROM (SELECT * FROM flow UNION ALL SELECT * FROM x_flow6) WHERE sensor_id = 42 \
         GROUP BY src_ip ORDER BY sent DESC, flows DESC",
        &[0],
    ),
    (
        "a host's OS history",
        "SELECT f.src_start_sec, f.flow_id, os.genre, os.detail \
         FROM {db}.flows AS f FINAL \
         INNER JOIN (SELECT sensor_id, os_id, genre, detail FROM {db}.os FINAL) AS os \
         ON os.sensor_id = f.sensor_id AND os.os_id = f.client_os_id \
         WHERE f.src_ip = IPv6StringToNum('{host6}') ORDER BY f.src_start_sec, f.flow_id",
        "SELECT f.src_start_sec, f.flow_id, os.genre, os.detail FROM flow f \
         JOIN os ON os.sensor_id = f.sensor_id AND os.os_id = f.client_os_id \
         WHERE f.src_ip = {host} ORDER BY f.src_start_sec, f.flow_id",
        &[],
    ),
    (
        "a session's keystrokes",
        "SELECT process_id, time, counter, hex(data) FROM {db}.sys_read FINAL \
         WHERE sensor_id = 42 AND (process_id = 1 OR process_id IN \
         (SELECT child_process FROM {db}.process_tree FINAL WHERE sensor_id = 42 AND parent_process = 1)) \
         ORDER BY time, counter, process_id",
        "SELECT process_id, time, counter, data FROM sys_read \
         WHERE sensor_id = 42 AND (process_id = 1 OR process_id IN \
         (SELECT child_process FROM process_tree WHERE sensor_id = 42 AND parent_process = 1)) \
         ORDER BY time, counter, process_id",
        &[],
    ),
];

/// A mirror value as the ClickHouse view shows it (`addr`: an address).
fn view_value(v: rusqlite::types::ValueRef<'_>, addr: bool) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "\\N".into(),
        ValueRef::Integer(i) if addr => std::net::Ipv4Addr::from(i as u32).to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) if addr && b.len() == 4 => {
            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
        }
        ValueRef::Blob(b) if addr && b.len() == 16 => {
            let a = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap());
            match a.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => a.to_string(),
            }
        }
        ValueRef::Blob(b) => b.iter().map(|x| format!("{x:02X}")).collect(),
    }
}

#[test]
fn walleye_views_answer_the_same_in_clickhouse_and_the_mirror() {
    let (_d, data) = node();
    ingest_fixture(&data, "vlan.pcap");
    let url = &server().url;
    let db = ChDb::new("views");
    export_ch(&data, url, &db.name, &[]);
    let m = mirror(&data);
    let (host, t0, t1): (i64, i64, i64) = m
        .query_row(
            "SELECT (SELECT src_ip FROM flow WHERE sensor_id = 42 AND client_os_id = 1 LIMIT 1), \
             MIN(src_start_sec), MIN(src_start_sec) + 30 FROM flow WHERE sensor_id = 42",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let host6 = format!("::ffff:{}", std::net::Ipv4Addr::from(host as u32));
    let fill = |q: &str| {
        q.replace("{db}", &db.name)
            .replace("{host6}", &host6)
            .replace("{host}", &host.to_string())
            .replace("{t0}", &t0.to_string())
            .replace("{t1}", &t1.to_string())
    };
    for (name, chq, sq, addrs) in VIEWS {
        let there = ch_rows(url, &fill(chq));
        let mut stmt = m.prepare(&fill(sq)).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let mut here: Vec<Vec<String>> = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            here.push(
                (0..n)
                    .map(|i| view_value(r.get_ref(i).unwrap(), addrs.contains(&i)))
                    .collect(),
            );
        }
        if *name == "top talkers" {
            // The mirror orders addresses by type; compare ClickHouse's top
            // ten with the mirror's rows of the same volumes.
            here.sort_by(|a, b| {
                let n = |r: &Vec<String>, i: usize| r[i].parse::<i64>().unwrap();
                n(b, 3)
                    .cmp(&n(a, 3))
                    .then(n(b, 1).cmp(&n(a, 1)))
                    .then(a[0].cmp(&b[0]))
            });
            here.truncate(10);
        }
        assert!(!there.is_empty(), "{name}: no rows");
        assert_eq!(there, here, "{name}");
    }
}

/// Flows in ClickHouse (FINAL) for `db`, 0 while the table does not exist.
fn ch_flows(url: &str, db: &str) -> i64 {
    let exists = ch_at(
        url,
        &format!("SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'flows'"),
    );
    if exists.trim() != "1" {
        return 0;
    }
    ch_at(url, &format!("SELECT count() FROM {db}.flows FINAL"))
        .trim()
        .parse()
        .unwrap()
}

fn mirror_flows(data: &str) -> i64 {
    mirror(data)
        .query_row("SELECT count(*) FROM x_flow_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn serve_keeps_clickhouse_current_beside_a_dead_target_and_status_shows_the_lag() {
    let (d, data) = node();
    let url = server().url.clone();
    let db = ChDb::new("serve");
    let spool = d.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    config_set(&data, "capture.follow", spool.to_str().unwrap());
    config_set(&data, "capture.settle_secs", "0");
    let host = test_host(0);
    let dead = format!("http://{host}:{}", free_port(&host));
    let toml = Path::new(&data).join("lumpy.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(&format!(
        "\n[[export]]\nname = \"ch\"\nkind = \"clickhouse\"\nurl = \"{url}\"\ndatabase = \"{}\"\ninterval_secs = 1\n\
         \n[[export]]\nname = \"dead\"\nkind = \"clickhouse\"\nurl = \"{dead}\"\ninterval_secs = 1\n",
        db.name
    ));
    std::fs::write(&toml, text).unwrap();
    let wait_for = |want: i64| {
        let start = std::time::Instant::now();
        loop {
            let have = ch_flows(&url, &db.name);
            if have == want {
                return;
            }
            assert!(
                start.elapsed().as_secs() < 90,
                "ClickHouse has {have} flows, the mirror {want}"
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    crate::web::add_user(&data, "analyst", crate::web::PASSWORD);
    let ui = free_port(&host);
    let served = crate::web::serve_ui(&data, &host, free_port(&host), &host, ui);
    wait_for(mirror_flows(&data));
    // Ingest goes on beside the dead target, and the live one follows it.
    std::fs::copy(fixture("vlan.pcap"), spool.join("vlan.pcap")).unwrap();
    let before = mirror_flows(&data);
    let start = std::time::Instant::now();
    while mirror_flows(&data) == before {
        assert!(start.elapsed().as_secs() < 60, "vlan.pcap was not ingested");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    wait_for(mirror_flows(&data));
    // The UI's health view (the DAG) draws both targets above this node:
    // the live one green with its lag, the dead one red, never exported,
    // its error in the Exports table.
    let br = crate::web::Browser::start();
    let base = format!("http://{host}:{ui}");
    br.goto(&format!("{base}/dag"));
    br.view("login");
    br.type_into("#user", "analyst");
    br.type_into("#password", crate::web::PASSWORD);
    br.click("#login-submit");
    br.view("dag");
    br.find(".export-node[data-name='ch'][data-healthy='1']");
    let lag = br.text(".export-node[data-name='ch'] .export-lag");
    assert!(lag.starts_with("lag ") && lag.ends_with('s'), "{lag}");
    br.find(".export-node[data-name='dead'][data-healthy='0']");
    assert_eq!(
        br.text(".export-node[data-name='dead'] .export-lag"),
        "never exported"
    );
    let live = br.text("#exports tr[data-name='ch']");
    assert!(
        live.contains(" ok") && live.contains(&db.name) && !live.contains("never"),
        "{live}"
    );
    let dead = br.text("#exports tr[data-name='dead']");
    assert!(
        dead.contains("failing")
            && dead.contains("never exported")
            && dead.contains("cannot reach"),
        "{dead}"
    );
    br.screenshot("dag-exports");
    drop(br);
    served.stop();
    assert_same_content(&data, &url, &db.name);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
    let exports = v["exports"].as_array().unwrap();
    let by = |n: &str| exports.iter().find(|e| e["name"] == n).unwrap().clone();
    let (live, gone) = (by("ch"), by("dead"));
    assert!(live["last_success"].as_u64().unwrap() > 0, "{live}");
    assert!(
        live["lag_secs"].is_u64() && live["last_error"].is_null(),
        "{live}"
    );
    assert_eq!(gone["last_success"], 0, "{gone}");
    assert!(gone["lag_secs"].is_null(), "{gone}");
    assert!(
        gone["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{gone}"
    );
    let text = ok(&["status", "--data", &data]);
    assert!(text.contains("export ch "), "{text}");
    assert!(
        text.contains("export dead") && text.contains("never exported"),
        "{text}"
    );
}

#[test]
fn a_cluster_of_two_shards_holds_each_sensor_on_one_shard() {
    // Two more servers: the two shards of cluster lumpy_test (no ZooKeeper:
    // non-replicated shards).
    let hosts = [test_host(1), test_host(2)];
    let ports: Vec<(u16, u16)> = hosts.iter().map(|h| (free_port(h), free_port(h))).collect();
    let mut shards = String::from("<lumpy_test>");
    for (h, (_, tcp)) in hosts.iter().zip(&ports) {
        shards.push_str(&format!(
            "<shard><replica><host>{h}</host><port>{tcp}</port></replica></shard>"
        ));
    }
    shards.push_str("</lumpy_test>");
    let mut urls = Vec::new();
    for (h, (http, tcp)) in hosts.iter().zip(&ports) {
        let dir = tempfile::Builder::new()
            .prefix("lumpy-ch-shard-")
            .tempdir()
            .unwrap()
            .keep();
        write_config(&dir, h, *http, *tcp, &shards);
        let url = format!("http://{h}:{http}");
        start_server(&dir, &url);
        urls.push(url);
    }
    let (_d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    let vlan = fixture("vlan.pcap");
    ok(&[
        "ingest",
        "--data",
        &data,
        "--sensor",
        "43",
        vlan.to_str().unwrap(),
    ]);
    add_host_data(&data);
    let db = "lumpy_cluster";
    let args = [
        "--cluster",
        "lumpy_test",
        "--shard",
        &urls[0],
        "--shard",
        &urls[1],
    ];
    let out = export_ch(&data, &urls[0], db, &args);
    assert!(out.contains("flows/ipv4 sensor 43: "), "{out}");
    // Read through the Distributed tables, with FINAL, on either server.
    assert!(assert_same_content(&data, &urls[0], db) >= 14);
    assert_same_content(&data, &urls[1], db);
    // sensor_id % 2 picks the shard: 42 on the first, 43 on the second.
    for (url, sensor) in urls.iter().zip(["42", "43"]) {
        let held = ch_at(
            url,
            &format!("SELECT DISTINCT sensor_id FROM {db}.flows_local ORDER BY sensor_id"),
        );
        assert_eq!(held.trim(), sensor, "{url}");
    }
    let again = export_ch(&data, &urls[0], db, &args);
    assert!(again.contains("up to date"), "{again}");

    // The same cluster as an [[export]] of serve: it creates the tables on
    // both shards and keeps the Distributed setup current as data arrives.
    let served_db = "lumpy_cluster_served";
    let d = Path::new(&data);
    let spool = d.join("spool");
    std::fs::create_dir(&spool).unwrap();
    config_set(&data, "capture.follow", spool.to_str().unwrap());
    config_set(&data, "capture.settle_secs", "0");
    let toml = d.join("lumpy.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(&format!(
        "\n[[export]]\nname = \"cluster\"\nkind = \"clickhouse\"\nurl = \"{}\"\ndatabase = \"{served_db}\"\n\
         interval_secs = 1\ncluster = \"lumpy_test\"\nshards = [\"{}\", \"{}\"]\n",
        urls[1], urls[0], urls[1]
    ));
    std::fs::write(&toml, text).unwrap();
    let host = &hosts[0];
    let served = crate::sync::serve(&data, host, free_port(host));
    let caught_up = |what: &str| {
        let start = std::time::Instant::now();
        loop {
            let want = mirror_flows(&data);
            // The state table comes last, after every shard's tables.
            let ready = ch_at(
                &urls[1],
                &format!(
                    "SELECT count() FROM system.tables WHERE database = '{served_db}' AND name = 'lumpy_export_state'"
                ),
            );
            let have = if ready.trim() == "1" {
                [ch_flows(&urls[0], served_db), ch_flows(&urls[1], served_db)]
            } else {
                [0, 0]
            };
            if have == [want, want] {
                return;
            }
            assert!(
                start.elapsed().as_secs() < 90,
                "{what}: the shards' Distributed tables hold {have:?} flows, the mirror {want}"
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    caught_up("first run");
    std::fs::copy(fixture("qinq.pcap"), spool.join("qinq.pcap")).unwrap();
    let before = mirror_flows(&data);
    let start = std::time::Instant::now();
    while mirror_flows(&data) == before {
        assert!(start.elapsed().as_secs() < 60, "qinq.pcap was not ingested");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    caught_up("after new data");
    served.stop();
    assert!(assert_same_content(&data, &urls[0], served_db) >= 14);
    assert_same_content(&data, &urls[1], served_db);
    for (url, sensor) in urls.iter().zip(["42", "43"]) {
        let held = ch_at(
            url,
            &format!("SELECT DISTINCT sensor_id FROM {served_db}.flows_local ORDER BY sensor_id"),
        );
        assert_eq!(held.trim(), sensor, "{url}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
    let e = &v["exports"][0];
    assert_eq!(e["cluster"], "lumpy_test", "{e}");
    assert!(e["last_error"].is_null() && e["lag_secs"].is_u64(), "{e}");
}
