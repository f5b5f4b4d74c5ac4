//! `export mysql` against a real MariaDB (scripts/test.sh starts it, or
//! installs it when missing; these tests fail, never skip, without it).
//!
//! Each test uses its own database. Content is compared per table and sensor
//! with row counts and blake3 checksums in the canonical encoding of
//! src/mirror/hash.rs, computed here independently on both sides (the
//! SQLite side is also checked against the mirror's own `row_hash`).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use lumpy::export::{HFLOW, Table, WALLEYE_0_3};
use mysql_async::prelude::Queryable;
use rusqlite::types::ValueRef;

use crate::util::*;

const SOCKET: &str = "/run/mysqld/mysqld.sock";
const TCP_USER: &str = "lumpy_test";
const TCP_PASSWORD: &str = "Lumpy-test-only-7f3a9c";

/// Runs SQL as root over the socket with the `mariadb` client.
pub(crate) fn root_sql(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args(["--batch", "--skip-column-names", "-e", sql])
        .output()
        .unwrap_or_else(|e| {
            panic!("the mariadb client is required (scripts/test.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "MariaDB must be running for the export tests (scripts/test.sh starts it): {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh database, dropped at the end of the test.
pub(crate) struct Db {
    pub(crate) name: String,
}

impl Db {
    pub(crate) fn new(test: &str) -> Db {
        static USER: OnceLock<()> = OnceLock::new();
        USER.get_or_init(|| {
            root_sql(&format!(
                "CREATE USER IF NOT EXISTS '{TCP_USER}'@'127.0.0.1' IDENTIFIED BY '{TCP_PASSWORD}'; \
                 ALTER USER '{TCP_USER}'@'127.0.0.1' IDENTIFIED BY '{TCP_PASSWORD}'; \
                 GRANT ALL ON `lumpy\\_t\\_%`.* TO '{TCP_USER}'@'127.0.0.1'"
            ));
        });
        let name = format!("lumpy_t_{test}_{}", std::process::id());
        root_sql(&format!("DROP DATABASE IF EXISTS `{name}`"));
        Db { name }
    }

    /// Root over the unix socket.
    pub(crate) fn url(&self) -> String {
        format!("mysql://root@localhost/{}?socket={SOCKET}", self.name)
    }

    /// The test user over TCP (password from a file).
    fn tcp_url(&self) -> String {
        format!("mysql://{TCP_USER}@127.0.0.1:3306/{}", self.name)
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        root_sql(&format!("USE `{}`; {sql}", self.name))
    }

    pub(crate) fn exists(&self) -> bool {
        !root_sql(&format!("SHOW DATABASES LIKE '{}'", self.name))
            .trim()
            .is_empty()
    }

    /// Rows of a query, each value in the canonical text encoding.
    pub(crate) fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let url = self.url();
        let sql = sql.to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let opts =
                mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url).unwrap())
                    .prefer_socket(false);
            let mut conn = mysql_async::Conn::new(opts)
                .await
                .expect("connect as root over the socket");
            let rows: Vec<mysql_async::Row> = conn.query(sql).await.expect("query");
            let out = rows
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| maria_value(row, i))
                        .collect::<Vec<_>>()
                })
                .collect();
            let _ = conn.disconnect().await;
            out
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-e", &format!("DROP DATABASE IF EXISTS `{}`", self.name)])
            .output();
    }
}

/// hash.rs's encoding of one MariaDB value (text protocol: every value is bytes).
fn maria_value(row: &mysql_async::Row, i: usize) -> String {
    use mysql_async::consts::ColumnType as T;
    let col = &row.columns_ref()[i];
    let binary = col.character_set() == 63;
    match row.as_ref(i) {
        None | Some(mysql_async::Value::NULL) => "\\N".into(),
        Some(mysql_async::Value::Bytes(b)) => match col.column_type() {
            T::MYSQL_TYPE_TINY
            | T::MYSQL_TYPE_SHORT
            | T::MYSQL_TYPE_LONG
            | T::MYSQL_TYPE_LONGLONG
            | T::MYSQL_TYPE_INT24
            | T::MYSQL_TYPE_NEWDECIMAL
            | T::MYSQL_TYPE_DECIMAL => String::from_utf8(b.clone()).unwrap(),
            _ if binary => {
                let mut s = String::from("0x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
            _ => escape(&String::from_utf8(b.clone()).unwrap()),
        },
        Some(other) => panic!("unexpected value in the text protocol: {other:?}"),
    }
}

fn escape(t: &str) -> String {
    let mut s = String::new();
    for c in t.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\t' => s.push_str("\\t"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\0' => s.push_str("\\0"),
            c => s.push(c),
        }
    }
    s
}

/// hash.rs's encoding of one SQLite value.
fn sqlite_value(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "\\N".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => escape(std::str::from_utf8(t).unwrap()),
        ValueRef::Blob(b) => {
            let mut s = String::from("0x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
    }
}

pub(crate) fn mirror(data: &str) -> rusqlite::Connection {
    rusqlite::Connection::open(Path::new(data).join("mirror.sqlite")).unwrap()
}

pub(crate) fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        out.push(
            (0..n)
                .map(|i| sqlite_value(row.get_ref(i).unwrap()))
                .collect(),
        );
    }
    out
}

/// (rows, blake3) of rows in the canonical encoding.
fn digest(rows: &[Vec<String>]) -> (usize, String) {
    let mut h = blake3::Hasher::new();
    for r in rows {
        h.update(r.join("\t").as_bytes());
        h.update(b"\n");
    }
    (rows.len(), h.finalize().to_hex().to_string())
}

/// The mirror table a target table is compared with.
fn mirror_table(t: &Table) -> &'static str {
    match t.name {
        "lumpy_flow6" => "x_flow6",
        other => other,
    }
}

/// Per table and sensor: (table, sensor, rows, checksum) on the mirror and
/// on MariaDB, for every table of the flavor that holds mirror rows (argus in
/// walleye_0_3 is compared separately). Panics on the first difference.
pub(crate) fn assert_same_content(data: &str, db: &Db, tables: &[Table]) -> usize {
    let m = mirror(data);
    let mut compared = 0;
    let walleye = !tables.iter().any(|t| t.name == "flow");
    for t in tables {
        // lumpy_community_id is computed at export: checked against
        // `lumpy flows` in export_equals_the_mirror_per_table_and_sensor...
        if t.name == "lumpy_export_state"
            || t.name == "lumpy_community_id"
            || (walleye && t.name == "argus")
        {
            continue;
        }
        let order = t.order_by();
        // The mirror's argus keys by argus_id too; other tables that name a
        // flow call it flow_id there.
        let mirror_order = if mirror_table(t) == "argus" {
            order.clone()
        } else {
            order.replace("argus_id", "flow_id")
        };
        let sensors: Vec<u32> = if t.name == "dbschema" {
            vec![0]
        } else {
            let mut s: Vec<u32> = sqlite_rows(
                &m,
                &format!("SELECT DISTINCT sensor_id FROM {}", mirror_table(t)),
            )
            .into_iter()
            .map(|r| r[0].parse().unwrap())
            .collect();
            for r in db.rows(&format!("SELECT DISTINCT sensor_id FROM `{}`", t.name)) {
                let id: u32 = r[0].parse().unwrap();
                if !s.contains(&id) {
                    s.push(id);
                }
            }
            s
        };
        for sensor in sensors {
            let filter = if t.name == "dbschema" {
                String::new()
            } else {
                format!(" WHERE sensor_id = {sensor}")
            };
            let here = sqlite_rows(
                &m,
                &format!(
                    "SELECT * FROM {}{filter} ORDER BY {mirror_order}",
                    mirror_table(t)
                ),
            );
            let there = db.rows(&format!(
                "SELECT * FROM `{}`{filter} ORDER BY {order}",
                t.name
            ));
            let (a, b) = (digest(&here), digest(&there));
            if a != b {
                let first = here.iter().zip(&there).find(|(x, y)| x != y);
                panic!(
                    "table {} sensor {sensor}: mirror {} rows {}, MariaDB {} rows {}; first difference {first:?}",
                    t.name, a.0, a.1, b.0, b.1
                );
            }
            compared += 1;
        }
    }
    compared
}

/// The test encoder agrees with the mirror's own row_hash (src/mirror/hash.rs).
fn assert_encoder_matches_row_hash(data: &str) {
    let mut m = lumpy::mirror::Mirror::open(&Path::new(data).join("mirror.sqlite")).unwrap();
    let conn = mirror(data);
    for (table, order) in [
        ("flow", "sensor_id, flow_id"),
        ("x_flow6", "sensor_id, flow_id"),
        ("sensor", "sensor_id"),
        ("sys_read", "sensor_id, process_id, sys_read_id"),
        ("sys_open", "sensor_id, sys_open_id"),
    ] {
        let rows = sqlite_rows(
            &conn,
            &format!("SELECT * FROM {table} WHERE sensor_id = 42 ORDER BY {order}"),
        );
        let mine = digest(&rows).1;
        let theirs = m.row_hash(table, Some(42)).unwrap();
        assert_eq!(
            mine,
            blake3::Hash::from(theirs).to_hex().to_string(),
            "{table}"
        );
    }
    let _ = &mut m;
}

/// A node of sensor 42 holding honeynet.pcap, plus host data (sebek, snort,
/// p0f) in the mirror's legacy tables. No record type carries host data yet,
/// so it is written into the mirror directly: it references real flows.
fn node_with_host_data() -> (tempfile::TempDir, String) {
    let (d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    add_host_data(&data);
    (d, data)
}

pub(crate) fn add_host_data(data: &str) {
    let m = mirror(data);
    let flows: Vec<i64> = m
        .prepare("SELECT flow_id FROM flow WHERE sensor_id = 42 ORDER BY flow_id LIMIT 6")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(flows.len() >= 6);
    m.execute_batch(&format!(
        "INSERT INTO os VALUES (1, 42, 'Linux', '2.6, seldom 2.4'), (2, 42, 'Windows', 'XP SP1+, 2000 SP3');
         UPDATE flow SET client_os_id = 1 WHERE sensor_id = 42 AND flow_id = {f0};
         INSERT INTO ids_sig VALUES (1, 2001219, 42, 'ET SCAN Potential SSH Scan', 'url,doc.emergingthreats.net'),
                                    (1, 1390, 42, 'SHELLCODE x86 inc ebx NOOP', NULL);
         INSERT INTO ids VALUES (1, 42, 2001219, {f0}, 1795736411, 5, 2, 3, 1, 4, NULL, 0),
                                (2, 42, 2001219, {f0}, 1795736412, 6, 2, 3, 1, 4, 'CLIENT', 0),
                                (3, 42, 1390, {f1}, 1795736413, 7, 1, 6, 1, 2, 'SERVER', 0);
         INSERT INTO process VALUES (42, 1, 3221225994, 1000, 1100, 1795736400, 1795736500, 4242),
                                    (42, 2, 3221225994, 1010, 1090, 1795736410, 1795736490, 4243),
                                    (42, 3, 3221225994, 1020, 1030, 1795736420, 1795736430, 4244);
         INSERT INTO process_tree VALUES (42, 2, 1, 0), (42, 3, 2, 0);
         INSERT INTO command VALUES (42, 1, 'sshd'), (42, 2, 'bash'), (42, 3, 'wget');
         INSERT INTO process_to_com VALUES (42, 1, 1, 0), (42, 2, 2, 0), (42, 3, 3, 0);
         INSERT INTO sys_socket VALUES (42, 1, 1, 1795736411, 1011, 0, 7, 3, 9001, {f0}, 5, NULL, 0),
                                       (42, 2, 3, 1795736421, 1021, 0, 8, 4, 9002, {f2}, 3, NULL, 0),
                                       (42, 3, 3, 1795736422, 1022, 0, 9, 4, 9002, {f3}, 3, NULL, 0);
         INSERT INTO sys_read VALUES (42, 1, 2, 0, 1795736412, 1012, 11, 0, 77, 5, X'6c730d0a00', 0),
                                     (42, 2, 2, 0, 1795736413, 1013, 12, 0, 77, 4, X'09275c22', 0);
         INSERT INTO sys_open VALUES (42, 1, 3, 0, 1795736423, 1023, 13, 5, 88, 11, 0, '/tmp/it''s	a\\file');
         INSERT INTO sbk_loss VALUES (42, 3221225994, 1795736430, 3);",
        f0 = flows[0],
        f1 = flows[1],
        f2 = flows[2],
        f3 = flows[4],
    ))
    .unwrap();
}

pub(crate) fn export(data: &str, url: &str, extra: &[&str]) -> String {
    let mut args = vec!["export", "mysql", "--data", data, "--url", url];
    args.extend_from_slice(extra);
    ok(&args)
}

/// Counts every INSERT, UPDATE and DELETE on the given tables from now on.
fn install_write_counter(db: &Db, tables: &[&str]) {
    db.sql("CREATE TABLE write_log (tbl VARCHAR(64), op CHAR(1))");
    for t in tables {
        for (op, when) in [("I", "INSERT"), ("U", "UPDATE"), ("D", "DELETE")] {
            db.sql(&format!(
                "CREATE TRIGGER `count_{t}_{op}` AFTER {when} ON `{t}` FOR EACH ROW INSERT INTO write_log VALUES ('{t}', '{op}')"
            ));
        }
    }
}

fn writes(db: &Db) -> Vec<Vec<String>> {
    db.rows("SELECT tbl, op, COUNT(*) FROM write_log GROUP BY tbl, op ORDER BY tbl, op")
}

const DATA_TABLES: &[&str] = &[
    "sensor",
    "flow",
    "lumpy_flow6",
    "lumpy_community_id",
    "os",
    "ids",
    "ids_sig",
    "process",
    "process_tree",
    "command",
    "process_to_com",
    "sys_read",
    "sys_open",
    "sys_socket",
    "sbk_loss",
    "lumpy_export_state",
];

#[test]
fn export_equals_the_mirror_per_table_and_sensor_and_a_repeat_changes_nothing() {
    let (_d, data) = node_with_host_data();
    assert_encoder_matches_row_hash(&data);
    let db = Db::new("equal");
    let out = export(&data, &db.url(), &[]);
    assert!(out.contains("flow sensor 42: "), "{out}");
    let compared = assert_same_content(&data, &db, HFLOW);
    assert!(compared >= 15, "compared {compared} (table, sensor) pairs");
    // hflow's dbschema row, and every table has exactly the legacy columns.
    assert_eq!(
        db.sql("SELECT version, comment FROM dbschema").trim(),
        "3\tinitial hflow2 release 1.99.15"
    );
    let flow_cols = db.sql("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'flow'");
    assert_eq!(flow_cols.trim(), "32");
    // Each flow's Community ID, as `lumpy flows` gives it (NULL where none).
    let flows: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["flows", "--data", &data, "--format", "json"])).unwrap();
    let mut want: Vec<Vec<String>> = flows
        .iter()
        .map(|f| {
            vec![
                f["sensor_id"].to_string(),
                f["flow_id"].to_string(),
                f["community_id"].as_str().unwrap_or("NULL").to_string(),
            ]
        })
        .collect();
    want.sort();
    let mut got = db
        .rows("SELECT sensor_id, flow_id, COALESCE(community_id, 'NULL') FROM lumpy_community_id");
    got.sort();
    assert_eq!(got.len(), flows.len());
    assert_eq!(got, want);

    install_write_counter(&db, DATA_TABLES);
    let again = export(&data, &db.url(), &[]);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(
        writes(&db),
        Vec::<Vec<String>>::new(),
        "a repeated export wrote"
    );
    assert_same_content(&data, &db, HFLOW);
    // --full sends everything again: upserts, so the content is the same
    // and nothing is inserted twice.
    let full = export(&data, &db.url(), &["--full", "--batch-rows", "50"]);
    assert!(full.contains("flow sensor 42: "), "{full}");
    assert_same_content(&data, &db, HFLOW);
    let inserted =
        db.sql("SELECT COUNT(*) FROM write_log WHERE op = 'I' AND tbl IN ('flow', 'lumpy_flow6')");
    assert_eq!(inserted.trim(), "0");
}

#[test]
fn an_export_after_new_data_adds_exactly_that_data() {
    let (_d, data) = node_with_host_data();
    let db = Db::new("incr");
    export(&data, &db.url(), &[]);
    let m = mirror(&data);
    let before: i64 = m
        .query_row("SELECT max(version) FROM x_flow_version", [], |r| r.get(0))
        .unwrap();
    let flows_before: i64 = m
        .query_row("SELECT count(*) FROM x_flow_version", [], |r| r.get(0))
        .unwrap();
    drop(m);
    install_write_counter(&db, DATA_TABLES);

    ingest_fixture(&data, "vlan.pcap");
    let m = mirror(&data);
    let changed: i64 = m
        .query_row(
            "SELECT count(*) FROM x_flow_version WHERE version > ?1",
            [before],
            |r| r.get(0),
        )
        .unwrap();
    let flows_after: i64 = m
        .query_row("SELECT count(*) FROM x_flow_version", [], |r| r.get(0))
        .unwrap();
    let new_flows = flows_after - flows_before;
    assert!(new_flows > 0 && changed >= new_flows);
    // One more host-data row: its table (and only it) is re-sent.
    m.execute("INSERT INTO command VALUES (42, 4, 'perl')", [])
        .unwrap();
    drop(m);

    let out = export(&data, &db.url(), &[]);
    assert_same_content(&data, &db, HFLOW);
    let flow_rows: i64 = out
        .lines()
        .filter(|l| l.contains("flow") && l.contains("sensor 42:"))
        .filter(|l| !l.contains("sensor sensor"))
        .map(|l| {
            l.rsplit(": ")
                .next()
                .unwrap()
                .trim_end_matches(" rows")
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        flow_rows, changed,
        "rows sent = flow versions newer than the last export\n{out}"
    );
    let w = writes(&db);
    let count = |tbl: &str, op: &str| -> i64 {
        w.iter()
            .filter(|r| r[0] == tbl && r[1] == op)
            .map(|r| r[2].parse::<i64>().unwrap())
            .sum()
    };
    assert_eq!(
        count("flow", "I") + count("lumpy_flow6", "I"),
        new_flows,
        "{w:?}"
    );
    assert_eq!(count("flow", "D") + count("lumpy_flow6", "D"), 0, "{w:?}");
    assert_eq!(count("command", "I"), 4, "{w:?}");
    for t in ["sys_read", "sys_socket", "process", "ids", "os"] {
        assert_eq!(
            count(t, "I") + count(t, "U") + count(t, "D"),
            0,
            "{t} untouched: {w:?}"
        );
    }
    let again = export(&data, &db.url(), &[]);
    assert!(again.contains("up to date"), "{again}");
}

#[test]
fn kill_9_mid_export_then_rerun_gives_the_same_rows_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 60, 1000);
    let (_d, data) = new_node(42);
    ok(&["ingest", "--data", &data, big.to_str().unwrap()]);
    let db = Db::new("kill9");
    let mut killed_mid_way = false;
    for _ in 0..3 {
        let mut child = lumpy()
            .args([
                "export",
                "mysql",
                "--data",
                &data,
                "--url",
                &db.url(),
                "--batch-rows",
                "200",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until some batches are committed, then kill -9.
        let start = std::time::Instant::now();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let n = if db.exists() {
                db.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'lumpy_export_state'")
            } else {
                "0".into()
            };
            let committed = n.trim() == "1"
                && db
                    .sql("SELECT COALESCE(SUM(version > 0), 0) FROM lumpy_export_state")
                    .trim()
                    != "0";
            if committed || start.elapsed().as_secs() > 20 || child.try_wait().unwrap().is_some() {
                break;
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_way = true;
        }
    }
    assert!(killed_mid_way, "the export was never interrupted");
    let partial: i64 = db.sql("SELECT COUNT(*) FROM flow").trim().parse().unwrap();
    let out = export(&data, &db.url(), &["--batch-rows", "200"]);
    assert!(!out.contains("up to date"), "{out}");
    assert_same_content(&data, &db, HFLOW);
    let total: i64 = db.sql("SELECT COUNT(*) FROM flow").trim().parse().unwrap();
    assert!(partial < total, "partial {partial} total {total}");
    let distinct = db.sql(
        "SELECT COUNT(DISTINCT sensor_id, src_ip, dst_ip, ip_proto, src_port, dst_port, src_start_sec), COUNT(DISTINCT sensor_id, flow_id) FROM flow",
    );
    assert_eq!(distinct.trim(), format!("{total}\t{total}"));
}

/// Walleye's queries (walleye.pl connection table, aggregate, process tree),
/// with `?` for the sensor; `GREATEST` becomes SQLite's scalar `MAX`.
const WALLEYE_QUERIES: &[&str] = &[
    // Connection table (ct): start, duration, PID via sys_socket, addresses,
    // ports, volumes, client OS, IDS count; Walleye's time filter.
    "SELECT f.flow_id, f.src_start_sec, GREATEST(f.src_end_sec, f.dst_end_sec) - f.src_start_sec AS duration, \
     (SELECT MIN(p.pid) FROM sys_socket s JOIN process p ON p.sensor_id = s.sensor_id AND p.process_id = s.process_id \
      WHERE s.sensor_id = f.sensor_id AND s.flow_id = f.flow_id) AS pid, \
     f.src_ip, f.dst_ip, f.ip_proto, f.src_port, f.dst_port, f.src_bytes, f.src_packets, f.dst_bytes, f.dst_packets, \
     os.genre, (SELECT COUNT(*) FROM ids WHERE ids.sensor_id = f.sensor_id AND ids.flow_id = f.flow_id) AS n_ids \
     FROM flow f LEFT JOIN os ON os.os_id = f.client_os_id AND os.sensor_id = f.sensor_id \
     WHERE f.sensor_id = 42 AND GREATEST(f.src_end_sec, f.dst_end_sec) >= 1795736411 AND f.src_start_sec <= 1795736440 \
     ORDER BY f.src_start_sec, f.src_start_msec, f.flow_id LIMIT 100",
    // Aggregated flows by dst_ip (aggt).
    "SELECT f.dst_ip, COUNT(*), COUNT(DISTINCT f.src_port), COUNT(DISTINCT f.dst_port), \
     SUM(f.src_packets), MAX(f.src_packets), SUM(f.src_bytes), MAX(f.src_bytes), \
     SUM(f.dst_packets), MAX(f.dst_packets), SUM(f.dst_bytes), MAX(f.dst_bytes), \
     (SELECT COUNT(*) FROM ids i JOIN flow g ON g.sensor_id = i.sensor_id AND g.flow_id = i.flow_id WHERE g.dst_ip = f.dst_ip) \
     FROM flow f WHERE f.sensor_id = 42 GROUP BY f.dst_ip ORDER BY COUNT(*) DESC, f.dst_ip",
    // Overview: inbound/outbound, bidirectional and total, in a window.
    "SELECT is_local, SUM(src_bytes > 0 AND dst_bytes > 0), COUNT(*) FROM flow \
     WHERE sensor_id = 42 AND GREATEST(src_end_sec, dst_end_sec) >= 1795736400 GROUP BY is_local ORDER BY is_local",
    // Process tree of a flow: processes through sys_socket, their commands,
    // parents and children.
    "SELECT s.flow_id, p.process_id, p.pid, p.src_ip, c.name, pt.parent_process, ch.child_process \
     FROM sys_socket s JOIN process p ON p.sensor_id = s.sensor_id AND p.process_id = s.process_id \
     JOIN process_to_com pc ON pc.sensor_id = p.sensor_id AND pc.process_id = p.process_id \
     JOIN command c ON c.sensor_id = pc.sensor_id AND c.command_id = pc.command_id \
     LEFT JOIN process_tree pt ON pt.sensor_id = p.sensor_id AND pt.child_process = p.process_id \
     LEFT JOIN process_tree ch ON ch.sensor_id = p.sensor_id AND ch.parent_process = p.process_id \
     WHERE s.sensor_id = 42 ORDER BY s.flow_id, p.process_id, pt.parent_process, ch.child_process",
    // Flows related through a shared process tree (process_tree_con).
    "SELECT DISTINCT f.flow_id, GREATEST(f.src_end_sec, f.dst_end_sec) FROM process_tree pt \
     JOIN sys_socket s ON s.sensor_id = pt.sensor_id AND (s.process_id = pt.child_process OR s.process_id = pt.parent_process) \
     JOIN flow f ON f.sensor_id = s.sensor_id AND f.flow_id = s.flow_id WHERE pt.sensor_id = 42 ORDER BY f.flow_id",
    // IDS detail of a flow with signature names (flowdf).
    "SELECT i.ids_id, i.sec, i.priority, i.classification, i.type, s.sig_name, i.sig_rev, i.sig_gen, s.reference \
     FROM ids i LEFT JOIN ids_sig s ON s.sensor_id = i.sensor_id AND s.ids_sig_id = i.sig_id AND s.ids_sig_gen = i.sig_gen \
     WHERE i.sensor_id = 42 ORDER BY i.ids_id",
];

fn sqlite_dialect(sql: &str) -> String {
    sql.replace("GREATEST(", "MAX(")
}

#[test]
fn walleye_queries_answer_the_same_on_mariadb_and_the_mirror() {
    let (_d, data) = node_with_host_data();
    let db = Db::new("walleye");
    export(&data, &db.url(), &[]);
    let m = mirror(&data);
    for q in WALLEYE_QUERIES {
        let here = sqlite_rows(&m, &sqlite_dialect(q));
        let there = db.rows(q);
        assert!(!here.is_empty(), "no rows: {q}");
        assert_eq!(here, there, "{q}");
    }
}

#[test]
fn walleye_0_3_has_argus_and_argus_id_and_answers_the_same() {
    let (_d, data) = node_with_host_data();
    let db = Db::new("w03");
    let out = export(&data, &db.url(), &["--flavor", "walleye_0_3"]);
    assert!(out.contains("argus sensor 42: "), "{out}");
    assert_same_content(&data, &db, WALLEYE_0_3);
    assert_eq!(db.sql("SHOW TABLES LIKE 'flow'").trim(), "");
    // argus holds the mirror's argus rows (one per IPv4 flow, same mapping).
    let m = mirror(&data);
    let expected = sqlite_rows(&m, "SELECT * FROM argus ORDER BY sensor_id, argus_id");
    let flows = sqlite_rows(&m, "SELECT flow_id FROM flow");
    assert_eq!(expected.len(), flows.len());
    assert_eq!(
        db.rows("SELECT * FROM argus ORDER BY sensor_id, argus_id"),
        expected
    );
    // Old Walleye's connection table with IDS and socket joins on argus_id.
    let here = sqlite_rows(
        &m,
        "SELECT f.flow_id, f.src_start_sec, MAX(f.src_end_sec, f.dst_end_sec), f.src_ip, f.dst_ip, f.src_bytes, f.dst_bytes, \
         (SELECT COUNT(*) FROM ids WHERE ids.sensor_id = f.sensor_id AND ids.flow_id = f.flow_id), \
         (SELECT MIN(s.process_id) FROM sys_socket s WHERE s.sensor_id = f.sensor_id AND s.flow_id = f.flow_id) \
         FROM flow f WHERE f.sensor_id = 42 AND f.src_bytes > 0 AND f.dst_bytes > 0 ORDER BY f.src_start_sec, f.flow_id",
    );
    let there = db.rows(
        "SELECT a.argus_id, a.start_sec, a.end_sec, a.src_ip, a.dst_ip, a.src_bytes, a.dst_bytes, \
         (SELECT COUNT(*) FROM ids WHERE ids.sensor_id = a.sensor_id AND ids.argus_id = a.argus_id), \
         (SELECT MIN(s.process_id) FROM sys_socket s WHERE s.sensor_id = a.sensor_id AND s.argus_id = a.argus_id) \
         FROM argus a WHERE a.sensor_id = 42 AND a.src_bytes > 0 AND a.dst_bytes > 0 ORDER BY a.start_sec, a.argus_id",
    );
    assert!(!here.is_empty());
    assert_eq!(here, there);
    // An hflow export into the same database is refused, naming the difference.
    let out = run(&["export", "mysql", "--data", &data, "--url", &db.url()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("table ids: column flow_id is missing"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_sql_script_loads_into_the_same_tables() {
    let (d, data) = node_with_host_data();
    let file = d.path().join("dump.sql");
    let out = ok(&[
        "export",
        "mysql",
        "--data",
        &data,
        "--sql",
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("flow sensor 42: "), "{out}");
    let db = Db::new("script");
    root_sql(&format!("CREATE DATABASE `{}`", db.name));
    let load = Command::new("sh")
        .args(["-c", &format!("mariadb {} < {}", db.name, file.display())])
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_same_content(&data, &db, HFLOW);
    // The script carries the watermarks: an export into it has nothing to do.
    let again = export(&data, &db.url(), &[]);
    assert!(again.contains("up to date"), "{again}");
    // Loading it twice changes nothing either.
    let load = Command::new("sh")
        .args(["-c", &format!("mariadb {} < {}", db.name, file.display())])
        .output()
        .unwrap();
    assert!(load.status.success());
    assert_same_content(&data, &db, HFLOW);
}

#[test]
fn errors_are_clear_and_write_nothing() {
    let (d, data) = node_with_host_data();
    let db = Db::new("errors");
    let pw = d.path().join("pw");
    std::fs::write(&pw, format!("{TCP_PASSWORD}\n")).unwrap();
    let wrong = d.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let pw = pw.to_str().unwrap();
    let fails = |args: &[&str], expect: &str| {
        let mut all = vec!["export", "mysql", "--data", &data];
        all.extend_from_slice(args);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
        assert!(!err.contains(TCP_PASSWORD) && !stdout(&out).contains(TCP_PASSWORD));
        err
    };
    fails(
        &["--url", "postgres://u@h/db"],
        "the scheme must be mysql://",
    );
    fails(&["--url", "mysql://u@127.0.0.1:3306"], "no database");
    fails(
        &["--url", "mysql://u:hunter2@127.0.0.1/db"],
        "--password-file",
    );
    let e = fails(&["--url", "mysql://u:hunter2@127.0.0.1/db"], "****");
    assert!(!e.contains("hunter2"));
    fails(
        &[
            "--url",
            &db.tcp_url().replace(":3306", ":1"),
            "--password-file",
            pw,
        ],
        "cannot reach the database server at 127.0.0.1:1",
    );
    fails(
        &[
            "--url",
            &db.tcp_url(),
            "--password-file",
            wrong.to_str().unwrap(),
        ],
        "refused user 'lumpy_test'",
    );
    assert!(!db.exists(), "a failed connection created the database");

    // The right password works over TCP.
    export(&data, &db.tcp_url(), &["--password-file", pw]);
    assert_same_content(&data, &db, HFLOW);

    // A changed column type: refused before anything is written.
    ingest_fixture(&data, "vlan.pcap");
    db.sql("ALTER TABLE flow MODIFY src_bytes BIGINT UNSIGNED NOT NULL");
    install_write_counter(&db, DATA_TABLES);
    let before = db.rows("SELECT * FROM lumpy_export_state ORDER BY table_name, sensor_id");
    fails(
        &["--url", &db.tcp_url(), "--password-file", pw],
        "table flow: column src_bytes is bigint unsigned, expected int unsigned",
    );
    // A missing column too.
    db.sql("ALTER TABLE sensor DROP COLUMN passwd");
    let err = fails(
        &["--url", &db.url()],
        "table sensor: column passwd is missing",
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(writes(&db), Vec::<Vec<String>>::new());
    assert_eq!(
        db.rows("SELECT * FROM lumpy_export_state ORDER BY table_name, sensor_id"),
        before
    );

    // Not a node.
    let out = run(&[
        "export",
        "mysql",
        "--data",
        d.path().to_str().unwrap(),
        "--url",
        &db.url(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a lumpy node"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn access_columns_are_filled_only_when_asked_and_never_with_a_secret() {
    let (d, data) = node_with_host_data();
    let db = Db::new("access");
    export(&data, &db.url(), &[]);
    assert_eq!(
        db.sql("SELECT CONCAT_WS('|', access_via, login, passwd) FROM sensor")
            .trim(),
        "0||"
    );

    let secret_file = d.path().join("walleye-pw");
    std::fs::write(&secret_file, "honey\n").unwrap();
    let secret = secret_file.to_str().unwrap();
    export(
        &data,
        &db.url(),
        &[
            "--access-via",
            "10.1.2.3",
            "--access-login",
            "roo",
            "--access-password-file",
            secret,
        ],
    );
    assert_eq!(
        db.sql("SELECT access_via, INET_NTOA(access_via), login, passwd FROM sensor")
            .trim_end(),
        "167838211\t10.1.2.3\troo\thoney"
    );
    // Later exports without the option leave the operator's values alone.
    ingest_fixture(&data, "vlan.pcap");
    export(&data, &db.url(), &[]);
    assert_eq!(db.sql("SELECT login FROM sensor").trim(), "roo");
    // Addresses above 127.255.255.255 in the signed legacy column.
    export(&data, &db.url(), &["--access-via", "203.0.113.9"]);
    assert_eq!(
        db.sql("SELECT CONCAT_WS('|', access_via, INET_NTOA(access_via & 0xffffffff), login, passwd) FROM sensor").trim(),
        "-889163511|203.0.113.9||"
    );

    // A lumpy link secret is refused, whatever file it comes from.
    let link = d.path().join("link");
    std::fs::write(&link, "lumpy-link-v1:parent:AAAA\n").unwrap();
    let out = run(&[
        "export",
        "mysql",
        "--data",
        &data,
        "--url",
        &db.url(),
        "--access-via",
        "10.1.2.3",
        "--access-password-file",
        link.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refusing to write a lumpy secret"),
        "{}",
        stderr(&out)
    );
    assert!(!db.sql("SELECT passwd FROM sensor").contains("lumpy-link"));
    // So is the database password.
    let pw = d.path().join("pw");
    std::fs::write(&pw, format!("{TCP_PASSWORD}\n")).unwrap();
    let out = run(&[
        "export",
        "mysql",
        "--data",
        &data,
        "--url",
        &db.tcp_url(),
        "--password-file",
        pw.to_str().unwrap(),
        "--access-via",
        "10.1.2.3",
        "--access-password-file",
        pw.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains(TCP_PASSWORD));
}

#[test]
fn the_password_is_not_in_logs_or_the_process_title() {
    let (d, data) = node_with_host_data();
    let db = Db::new("pwlog");
    let pw = d.path().join("pw");
    std::fs::write(&pw, format!("{TCP_PASSWORD}\n")).unwrap();
    let child = lumpy()
        .args([
            "-vv",
            "export",
            "mysql",
            "--data",
            &data,
            "--url",
            &db.tcp_url(),
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .env("LUMPY_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains(TCP_PASSWORD));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains(&db.tcp_url()), "{all}");
    assert!(!all.contains(TCP_PASSWORD), "the password leaked: {all}");
}

#[test]
fn several_sensors_are_compared_one_by_one_and_sensor_limits_the_export() {
    let (_d, data) = node_with_host_data();
    ingest_fixture(&data, "honeywall-multi");
    let db = Db::new("sensors");
    let out = export(&data, &db.url(), &["--sensor", "1234567"]);
    assert!(out.contains("flow sensor 1234567: "), "{out}");
    assert_eq!(
        db.sql("SELECT DISTINCT sensor_id FROM flow").trim(),
        "1234567"
    );
    assert_eq!(db.sql("SELECT sensor_id FROM sensor").trim(), "1234567");
    // Small batches on three connections: many transactions in parallel.
    let out = export(
        &data,
        &db.url(),
        &["--batch-rows", "20", "--connections", "3"],
    );
    assert!(!out.contains("sensor 1234567"), "already exported: {out}");
    assert!(
        out.contains("flow sensor 7654321: ") && out.contains("flow sensor 42: "),
        "{out}"
    );
    let compared = assert_same_content(&data, &db, HFLOW);
    let sensors = db.sql("SELECT COUNT(DISTINCT sensor_id) FROM flow");
    assert_eq!(sensors.trim(), "3");
    assert!(compared >= 17, "compared {compared} (table, sensor) pairs");
    let states = db.sql("SELECT COUNT(*) FROM lumpy_export_state WHERE table_name = 'flow'");
    assert_eq!(states.trim(), "3");
}

/// The first `n` packets of a little-endian classic pcap (header included).
fn pcap_prefix(bytes: &[u8], n: usize) -> usize {
    let mut at = 24;
    for _ in 0..n {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    at
}

#[test]
fn a_flow_that_grew_is_updated_in_place_by_its_key() {
    let (d, data) = new_node(42);
    let all = std::fs::read(fixture("honeynet.pcap")).unwrap();
    // A capture file that tcpdump is still writing: half now, the rest later.
    let live = d.path().join("log");
    let half = pcap_prefix(&all, 600);
    std::fs::write(&live, &all[..half]).unwrap();
    ok(&["ingest", "--data", &data, live.to_str().unwrap()]);
    let db = Db::new("grow");
    export(&data, &db.url(), &[]);
    assert_same_content(&data, &db, HFLOW);
    let rows_before: i64 = db.sql("SELECT COUNT(*) FROM flow").trim().parse().unwrap();
    install_write_counter(&db, DATA_TABLES);

    std::fs::write(&live, &all).unwrap();
    ok(&["ingest", "--data", &data, live.to_str().unwrap()]);
    export(&data, &db.url(), &[]);
    assert_same_content(&data, &db, HFLOW);
    let w = writes(&db);
    let count = |tbl: &str, op: &str| -> i64 {
        w.iter()
            .filter(|r| r[0] == tbl && r[1] == op)
            .map(|r| r[2].parse::<i64>().unwrap())
            .sum()
    };
    let rows_after: i64 = db.sql("SELECT COUNT(*) FROM flow").trim().parse().unwrap();
    assert!(count("flow", "U") > 0, "no flow grew: {w:?}");
    assert_eq!(count("flow", "I"), rows_after - rows_before, "{w:?}");
    assert_eq!(count("flow", "D"), 0, "{w:?}");
    let distinct = db.sql(
        "SELECT COUNT(DISTINCT sensor_id, src_ip, dst_ip, ip_proto, src_port, dst_port, src_start_sec) FROM flow",
    );
    assert_eq!(distinct.trim(), rows_after.to_string());
}
