//! `import legacy --mysql`: a real MariaDB loaded with a legacy hflow or
//! walleye_0_3 database (fixtures/legacy/*.sql, hand-written rows including
//! what our exporter never writes), imported into a node; every row is
//! compared with the mirror by id, the CLI shows them, a repeat changes no
//! segment, errors change nothing, and an export of ours imports back.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::export::{Db, export, mirror, root_sql, sqlite_rows};
use crate::util::*;

/// A fresh database loaded from `fixtures/legacy/<file>`.
fn legacy_db(test: &str, file: &str) -> Db {
    let db = Db::new(test);
    root_sql(&format!("CREATE DATABASE `{}`", db.name));
    let sql = std::fs::File::open(fixture(&format!("legacy/{file}"))).unwrap();
    let out = Command::new("mariadb")
        .arg(&db.name)
        .stdin(Stdio::from(sql))
        .output()
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "loading {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

fn import(data: &str, sensor: &str, url: &str) -> String {
    ok(&[
        "import",
        "legacy",
        "--data",
        data,
        "--sensor-id",
        sensor,
        "--mysql",
        url,
    ])
}

/// The sensor columns a legacy database and the mirror share (not the
/// per-node ones: access, credentials).
const SENSOR_COLUMNS: &str = "sensor_id, install_sec, last_upd_sec, state, name, timezone, country_code, latitude, longitude, notes, network_type";

/// (table, columns, order) compared between the legacy database and the
/// mirror: every legacy column the mirror has (not the per-node sensor
/// columns, not to_be_deleted, which the mirror always keeps at 0).
const HFLOW_TABLES: &[(&str, &str, &str)] = &[
    ("sensor", SENSOR_COLUMNS, "sensor_id"),
    ("flow", "*", "flow_id"),
    ("os", "*", "os_id"),
    (
        "ids",
        "ids_id, sensor_id, sig_id, flow_id, sec, usec, priority, sig_rev, sig_gen, classification, type",
        "ids_id",
    ),
    ("ids_sig", "*", "ids_sig_gen, ids_sig_id"),
    ("process", "*", "process_id"),
    (
        "process_tree",
        "sensor_id, child_process, parent_process",
        "child_process, parent_process",
    ),
    ("command", "*", "command_id"),
    (
        "process_to_com",
        "sensor_id, process_id, command_id",
        "command_id, process_id",
    ),
    (
        "sys_read",
        "sensor_id, sys_read_id, process_id, uid, pcap_time, time, counter, filed, inode, length, data",
        "process_id, sys_read_id",
    ),
    (
        "sys_write",
        "sensor_id, sys_write_id, process_id, uid, pcap_time, time, counter, filed, inode, length, data",
        "process_id, sys_write_id",
    ),
    (
        "sys_open",
        "sensor_id, sys_open_id, process_id, uid, pcap_time, time, counter, filed, inode, length, filename",
        "sys_open_id",
    ),
    (
        "sys_socket",
        "sensor_id, sys_socket_id, process_id, pcap_time, time, uid, counter, filed, inode, flow_id, `call`, type",
        "sys_socket_id",
    ),
];

/// Asserts every row of `sensor` in `tables` is in the mirror with the same
/// values (ids included), and nothing more; returns the rows compared.
fn assert_rows_arrived(data: &str, db: &Db, sensor: u32, tables: &[(&str, &str, &str)]) -> usize {
    let m = mirror(data);
    let mut n = 0;
    for (table, cols, order) in tables {
        let (mirror_table, mirror_cols) = match *table {
            // walleye_0_3 names the flow reference argus_id.
            "ids_w03" => ("ids", cols.replace("argus_id", "flow_id")),
            _ => (*table, cols.replace('`', "\"")),
        };
        let legacy_table = table.trim_end_matches("_w03");
        let there = db.rows(&format!(
            "SELECT {cols} FROM `{legacy_table}` WHERE sensor_id = {sensor} ORDER BY {order}"
        ));
        let here = sqlite_rows(
            &m,
            &format!(
                "SELECT {mirror_cols} FROM {mirror_table} WHERE sensor_id = {sensor} ORDER BY {order}"
            ),
        );
        assert!(!there.is_empty(), "fixture has no {table} rows of {sensor}");
        assert_eq!(here, there, "table {table}, sensor {sensor}");
        n += there.len();
    }
    n
}

fn count(data: &str, sql: &str) -> i64 {
    sqlite_rows(&mirror(data), sql)[0][0].parse().unwrap()
}

#[test]
fn hflow_rows_arrive_with_their_ids_survive_a_rebuild_and_a_repeat_changes_nothing() {
    let db = legacy_db("lg_hflow", "hflow.sql");
    let (_d, data) = new_node(1);
    let out = import(&data, "4242", &db.url());
    assert!(out.contains("sensor 4242: 29 rows"), "{out}");
    assert!(out.contains("(hflow)"), "{out}");
    let rows = assert_rows_arrived(&data, &db, 4242, HFLOW_TABLES);
    assert_eq!(rows, 30);
    // The other sensor of that database stayed out.
    for t in [
        "sensor",
        "flow",
        "os",
        "ids",
        "process",
        "sys_read",
        "sys_socket",
    ] {
        assert_eq!(
            count(
                &data,
                &format!("SELECT COUNT(*) FROM {t} WHERE sensor_id = 5151")
            ),
            0,
            "{t}"
        );
    }

    // The CLI: flows with their ids, processes with their tree and socket
    // joins, a host's p0f history from the os rows.
    let flows = flows_json(&data, &["--sensor", "4242"]);
    let ids: Vec<u64> = flows
        .iter()
        .map(|f| f["flow_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 5]);
    assert_eq!(flows[0]["client_os_id"], 1);
    assert_eq!(flows[1]["is_local"], true);
    assert_eq!(flows[1]["marker_flags"], 4);
    let procs: serde_json::Value = serde_json::from_str(&ok(&[
        "processes",
        "--data",
        &data,
        "--sensor",
        "4242",
        "--json",
    ]))
    .unwrap();
    let procs = procs.as_array().unwrap();
    let pids: Vec<u64> = procs
        .iter()
        .map(|p| p["process_id"].as_u64().unwrap())
        .collect();
    assert_eq!(pids, [1, 2, 9]);
    assert_eq!(procs[1]["parents"], serde_json::json!([1]));
    assert_eq!(procs[1]["commands"], serde_json::json!(["wget"]));
    assert_eq!(procs[1]["sockets"][0]["flow_id"], 2);
    let by_flow: serde_json::Value = serde_json::from_str(&ok(&[
        "processes",
        "--data",
        &data,
        "--sensor",
        "4242",
        "--flow",
        "2",
        "--json",
    ]))
    .unwrap();
    assert!(
        by_flow
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["process_id"] == 2)
    );
    let host: serde_json::Value = serde_json::from_str(&ok(&[
        "hosts",
        "--data",
        &data,
        "--ip",
        "203.0.113.5",
        "--json",
    ]))
    .unwrap();
    assert_eq!(host["os"][0]["genre"], "Linux");
    assert_eq!(host["os"][0]["os_id"], 1);

    // Again: no new segment, same root, no duplicate row.
    let segs = segment_files(&data);
    let before = sensor_root(&data, 4242);
    assert!(!before.is_empty());
    let again = import(&data, "4242", &db.url());
    assert!(again.contains("0 rows"), "{again}");
    assert_eq!(segment_files(&data), segs);
    assert_eq!(sensor_root(&data, 4242), before);
    assert_eq!(assert_rows_arrived(&data, &db, 4242, HFLOW_TABLES), 30);

    // The rows live in record segments: a mirror rebuilt from them has them all.
    std::fs::remove_file(Path::new(&data).join("mirror.sqlite")).unwrap();
    // Any command that opens the node catches the mirror up (status does
    // not: it shows the lag).
    ok(&["flows", "--data", &data, "--limit", "1"]);
    assert_eq!(assert_rows_arrived(&data, &db, 4242, HFLOW_TABLES), 30);
    ok(&["verify", "--data", &data]);

    // The management address, which legacy databases lack, can be given:
    // recorded once (one new sensor version), then nothing changes.
    let with_ip = |data: &str| {
        ok(&[
            "import",
            "legacy",
            "--data",
            data,
            "--sensor-id",
            "4242",
            "--mysql",
            &db.url(),
            "--manager-ip",
            "10.5.5.5",
        ])
    };
    let segs = segment_files(&data).len();
    assert!(with_ip(&data).contains("sensor row written"));
    assert_eq!(segment_files(&data).len(), segs + 1);
    let sensors: serde_json::Value =
        serde_json::from_str(&ok(&["sensors", "--data", &data, "--json"])).unwrap();
    let me = sensors
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sensor_id"] == 4242)
        .unwrap();
    assert_eq!(me["manage_ip"], "10.5.5.5");
    assert_eq!(me["name"], "Old roo");
    assert_eq!(me["install_sec"], 1199145600);
    let segs = segment_files(&data);
    with_ip(&data);
    import(&data, "4242", &db.url());
    assert_eq!(segment_files(&data), segs);
}

#[test]
fn walleye_0_3_argus_rows_arrive_as_they_were_and_as_flows() {
    let db = legacy_db("lg_w03", "walleye_0_3.sql");
    let (_d, data) = new_node(1);
    let out = import(&data, "777", &db.url());
    assert!(out.contains("(walleye_0_3)"), "{out}");
    let tables: &[(&str, &str, &str)] = &[
        ("sensor", SENSOR_COLUMNS, "sensor_id"),
        ("argus", "*", "argus_id"),
        ("os", "*", "os_id"),
        (
            "ids_w03",
            "ids_id, sensor_id, argus_id, sig_id, sec, priority, type",
            "ids_id",
        ),
        ("ids_sig", "ids_sig_id, sensor_id, sig_name", "ids_sig_id"),
        (
            "process",
            "sensor_id, process_id, src_ip, time_min, time_max, pcap_time_min, pcap_time_max, pid",
            "process_id",
        ),
        ("command", "*", "command_id"),
        (
            "sys_read",
            "sensor_id, sys_read_id, process_id, uid, pcap_time, time, counter, filed, inode, length, data",
            "sys_read_id",
        ),
        (
            "sys_open",
            "sensor_id, sys_open_id, process_id, uid, pcap_time, time, counter, filed, inode, length, filename",
            "sys_open_id",
        ),
    ];
    assert_rows_arrived(&data, &db, 777, tables);
    // walleye_0_3's sys_socket.argus_id is the mirror's flow_id.
    let there = db.rows(
        "SELECT sys_socket_id, process_id, argus_id, `call` FROM sys_socket WHERE sensor_id = 777",
    );
    let here = sqlite_rows(
        &mirror(&data),
        "SELECT sys_socket_id, process_id, flow_id, \"call\" FROM sys_socket WHERE sensor_id = 777",
    );
    assert_eq!(here, there);
    // Columns walleye_0_3 lacks take hflow's defaults; snort generator 1
    // on both sides, so hflow's join of ids to ids_sig finds the signature.
    assert_eq!(
        sqlite_rows(
            &mirror(&data),
            "SELECT i.usec, i.sig_rev, i.sig_gen, s.sig_name, s.reference FROM ids i JOIN ids_sig s \
             ON s.sensor_id = i.sensor_id AND s.ids_sig_gen = i.sig_gen AND s.ids_sig_id = i.sig_id \
             WHERE i.sensor_id = 777"
        ),
        [["0", "10", "1", "NETBIOS SMB-DS IPC$ share access", "\\N"]]
    );
    // Each argus row is also a flow, with its id.
    let flows = flows_json(&data, &["--sensor", "777"]);
    let ids: Vec<u64> = flows
        .iter()
        .map(|f| f["flow_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [10, 11, 14]);
    assert_eq!(flows[0]["src"]["packets"], 8);
    assert_eq!(flows[0]["dst"]["bytes"], 900);
    assert_eq!(flows[1]["is_local"], true);
    assert_eq!(flows[0]["client_os_id"], 3);
    let segs = segment_files(&data);
    import(&data, "777", &db.url());
    assert_eq!(segment_files(&data), segs);
    assert_eq!(
        count(&data, "SELECT COUNT(*) FROM argus WHERE sensor_id = 778"),
        0
    );
    // Exported again as walleye_0_3, the argus rows are the ones imported
    // (direction, status, indicator, NULLs), not re-derived.
    let out = Db::new("lg_w03_out");
    export(&data, &out.url(), &["--flavor", "walleye_0_3"]);
    let q = "SELECT * FROM argus WHERE sensor_id = 777 ORDER BY argus_id";
    assert_eq!(out.rows(q), db.rows(q));
}

#[test]
fn bad_url_dead_server_other_databases_and_unknown_sensors_change_nothing() {
    let db = legacy_db("lg_err", "hflow.sql");
    let empty = Db::new("lg_empty");
    root_sql(&format!("CREATE DATABASE `{}`", empty.name));
    empty.sql("CREATE TABLE notes (id INT)");
    let (_d, data) = new_node(1);
    import(&data, "4242", &db.url());
    let segs = segment_files(&data);
    let before = sensor_root(&data, 4242);
    let fails = |sensor: &str, url: &str, expect: &str| {
        let out = run(&[
            "import",
            "legacy",
            "--data",
            &data,
            "--sensor-id",
            sensor,
            "--mysql",
            url,
        ]);
        assert_eq!(out.status.code(), Some(2), "{url}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains(expect), "{url}: expected {expect:?} in {e}");
        assert_eq!(segment_files(&data), segs, "{url} changed the store");
    };
    fails(
        "4242",
        "http://localhost/x",
        "--mysql http://localhost/x: the scheme must be mysql://",
    );
    fails(
        "4242",
        "mysql://root@127.0.0.1:1/hflow",
        "cannot reach the database server at 127.0.0.1:1",
    );
    let missing = format!(
        "mysql://root@localhost/{}_none?socket=/run/mysqld/mysqld.sock",
        db.name
    );
    fails("4242", &missing, "Unknown database");
    fails("4242", &empty.url(), "neither an hflow database");
    fails(
        "4243",
        &db.url(),
        "sensor 4243 is not in its sensor table (it has sensor ids 4242, 5151)",
    );
    fails("777", &db.url(), "sensor 777 is not in its sensor table");
    assert_eq!(sensor_root(&data, 4242), before);
    assert_eq!(sensor_root(&data, 4243), "");
    // A row whose value does not fit its record (a negative honeypot clock):
    // the error names table, row, column and value; nothing after it is written.
    db.sql("INSERT INTO process VALUES (4242, 50, INET_ATON('192.0.2.10'), -5, 1, 1, 1, 99)");
    fails(
        "4242",
        &db.url(),
        "table process, row [50]: column time_min holds Int(-5), expected 0..=4294967295",
    );
    assert_eq!(sensor_root(&data, 4242), before);
}

#[test]
fn database_first_then_pcap_continues_above_its_ids_and_pcap_first_is_refused() {
    let db = legacy_db("lg_ids", "hflow.sql");
    let tree = fixture("honeywall/var/log/pcap");
    // Database and pcap tree in one command: legacy flows keep 1, 2, 5;
    // flows derived from the pcap start at 6.
    let (_a, a) = new_node(1);
    ok(&[
        "import",
        "legacy",
        "--data",
        &a,
        "--sensor-id",
        "4242",
        "--mysql",
        &db.url(),
        "--pcap-dir",
        tree.to_str().unwrap(),
    ]);
    let flows = flows_json(&a, &["--sensor", "4242"]);
    let ids: Vec<u64> = flows
        .iter()
        .map(|f| f["flow_id"].as_u64().unwrap())
        .collect();
    assert!(ids.starts_with(&[1, 2, 5]), "{ids:?}");
    assert!(ids.len() > 10);
    assert_eq!(ids[3], 6, "native ids continue above the legacy ones");
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
    let q = "SELECT * FROM flow WHERE sensor_id = 4242 AND flow_id <= 5 ORDER BY flow_id";
    assert_eq!(sqlite_rows(&mirror(&a), q), db.rows(q));
    // Repeating both adds nothing.
    let segs = segment_files(&a);
    let before = sensor_root(&a, 4242);
    ok(&[
        "import",
        "legacy",
        "--data",
        &a,
        "--sensor-id",
        "4242",
        "--mysql",
        &db.url(),
        "--pcap-dir",
        tree.to_str().unwrap(),
    ]);
    assert_eq!(segment_files(&a), segs);
    assert_eq!(sensor_root(&a, 4242), before);

    // Pcap first: its flows took ids 1.. already, so the database's ids
    // would collide: refused, nothing written.
    let (_b, b) = new_node(1);
    ok(&[
        "import",
        "legacy",
        "--data",
        &b,
        "--sensor-id",
        "4242",
        "--pcap-dir",
        tree.to_str().unwrap(),
    ]);
    let segs = segment_files(&b);
    let out = run(&[
        "import",
        "legacy",
        "--data",
        &b,
        "--sensor-id",
        "4242",
        "--mysql",
        &db.url(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("flow id 1 of") && e.contains("would collide"),
        "{e}"
    );
    assert!(
        e.contains("import the database before the pcap tree"),
        "{e}"
    );
    assert_eq!(segment_files(&b), segs);
}

#[test]
fn an_export_of_ours_imports_back_as_the_same_flows() {
    let (_a, a) = new_node(42);
    ingest_fixture(&a, "honeynet.pcap");
    ingest_fixture(&a, "sebek.pcap");
    let db = Db::new("lg_round");
    export(&a, &db.url(), &[]);
    let (_b, b) = new_node(1);
    import(&b, "42", &db.url());
    // Versions are each node's own; everything else is the same, for every
    // flow (IPv6 ones travel in lumpy_flow6).
    let strip = |flows: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        flows
            .into_iter()
            .map(|mut f| {
                let o = f.as_object_mut().unwrap();
                o.remove("version");
                o.remove("closed");
                // hflow's tables keep no ICMP type and code: an ICMP flow
                // imported back has no `icmp_first`, and its Community ID
                // falls back to its icmp_seen bits (docs/EXPORT.md).
                if matches!(o["ip_proto"].as_u64(), Some(1 | 58)) {
                    o.remove("icmp_first");
                    o.remove("community_id");
                }
                f
            })
            .collect()
    };
    let theirs = strip(flows_json(&a, &["--sensor", "42"]));
    let ours = strip(flows_json(&b, &["--sensor", "42"]));
    assert!(theirs.len() > 10);
    assert!(
        theirs
            .iter()
            .any(|f| f["src_ip"].as_str().unwrap().contains(':')),
        "the fixture has IPv6 flows"
    );
    assert_eq!(ours, theirs);
    // The sebek tables came along with their ids.
    for t in [
        "process",
        "process_tree",
        "command",
        "process_to_com",
        "sys_read",
        "sys_open",
        "sys_socket",
    ] {
        let q = format!("SELECT * FROM {t} WHERE sensor_id = 42 ORDER BY 2, 3");
        assert_eq!(
            sqlite_rows(&mirror(&b), &q),
            sqlite_rows(&mirror(&a), &q),
            "{t}"
        );
    }
}

#[test]
fn a_large_table_comes_in_pages_and_rows_added_later_come_on_the_next_import() {
    let db = legacy_db("lg_pages", "hflow.sql");
    // 12,000 more flows and 7,000 more reads for sensor 4242 (MariaDB's
    // sequence engine), past several pages of 5,000 rows.
    db.sql(
        "INSERT INTO flow SELECT 4242, 100 + seq, 3405803776 + seq, 3221225994, 1024 + (seq % 60000), 80, 6, 0, 0, \
         1300000000 + seq, 0, 1300000001 + seq, 0, 1, 60, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 \
         FROM seq_1_to_12000",
    );
    db.sql(
        "INSERT INTO sys_read SELECT 4242, 10 + seq, 1 + (seq % 3), 0, 1300000000 + seq, 1290000000 + seq, \
         200 + seq, 0, 5, 1, 'k', 0 FROM seq_1_to_7000",
    );
    let (_d, data) = new_node(1);
    let out = import(&data, "4242", &db.url());
    assert!(out.contains("flow 12003"), "{out}");
    assert!(out.contains("sys_read 7003"), "{out}");
    let q = "SELECT count(*), min(flow_id), max(flow_id), sum(flow_id) FROM flow WHERE sensor_id = 4242";
    assert_eq!(sqlite_rows(&mirror(&data), q), db.rows(q));
    let q =
        "SELECT count(*), sum(sys_read_id), sum(process_id) FROM sys_read WHERE sensor_id = 4242";
    assert_eq!(sqlite_rows(&mirror(&data), q), db.rows(q));
    // The legacy server gets a few more rows: the next import brings exactly
    // those, and nothing twice.
    db.sql(
        "INSERT INTO flow SELECT 4242, 20000 + seq, 3405803776 + seq, 3221225995, 2000, 25, 6, 0, 0, \
         1400000000 + seq, 0, 1400000001, 0, 1, 60, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 \
         FROM seq_1_to_10;
         INSERT INTO ids VALUES (8, 4242, 469, 20001, 1400000001, 0, 3, 4, 1, 0, NULL, 0)",
    );
    let out = import(&data, "4242", &db.url());
    assert!(out.contains("11 rows"), "{out}");
    assert!(out.contains("flow 10") && out.contains("ids 1"), "{out}");
    assert_eq!(
        count(&data, "SELECT COUNT(*) FROM flow WHERE sensor_id = 4242"),
        12013
    );
    assert_eq!(
        assert_rows_arrived(&data, &db, 4242, &HFLOW_TABLES[1..4]),
        12013 + 2 + 4
    );
    let segs = segment_files(&data);
    import(&data, "4242", &db.url());
    assert_eq!(segment_files(&data), segs);
}

#[test]
fn kill_9_mid_import_then_a_rerun_gives_the_uninterrupted_store() {
    let db = legacy_db("lg_kill", "hflow.sql");
    db.sql(
        "INSERT INTO flow SELECT 4242, 100 + seq, 3405803776 + seq, 3221225994, 1024 + (seq % 60000), 80, 6, 0, 0, \
         1300000000 + seq, 0, 1300000001 + seq, 0, 1, 60, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 \
         FROM seq_1_to_60000",
    );
    let (_a, a) = new_node(1);
    import(&a, "4242", &db.url());
    let (_b, b) = new_node(1);
    let before = segment_files(&b).len();
    let mut child = lumpy()
        .args([
            "import",
            "legacy",
            "--data",
            &b,
            "--sensor-id",
            "4242",
            "--mysql",
            &db.url(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once its second segment is committed (it writes 13).
    let start = std::time::Instant::now();
    while segment_files(&b).len() < before + 2
        && child.try_wait().unwrap().is_none()
        && start.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let partial = segment_files(&b).len() - before;
    eprintln!("killed after {partial} of 13 segments");
    import(&b, "4242", &db.url());
    assert_eq!(
        sensor_root(&b, 4242),
        sensor_root(&a, 4242),
        "killed after {partial} segments"
    );
    assert_eq!(segment_files(&b), segment_files(&a));
    let q = "SELECT count(*), sum(flow_id) FROM flow WHERE sensor_id = 4242";
    assert_eq!(sqlite_rows(&mirror(&b), q), db.rows(q));
}

#[test]
fn imported_rows_reach_a_parent_by_sync_and_another_node_by_archive() {
    let db = legacy_db("lg_sync", "hflow.sql");
    let (_a, a) = new_node(1);
    import(&a, "4242", &db.url());
    // A parent pulls them like any record segments.
    let (_p, p) = new_node(2);
    let port = crate::sync::free_port("127.0.0.62");
    let url = format!("https://127.0.0.62:{port}");
    crate::sync::link(&p, "up", &a, "roo", &url, &[]);
    let served = crate::sync::serve(&a, "127.0.0.62", port);
    ok(&["pull", "--data", &p]);
    served.stop();
    assert_eq!(sensor_root(&p, 4242), sensor_root(&a, 4242));
    assert_eq!(assert_rows_arrived(&p, &db, 4242, HFLOW_TABLES), 30);
    // An archive bundle carries them to a node with no network.
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("legacy.lumpyarc");
    ok(&[
        "archive",
        "create",
        "--data",
        &a,
        "--sensor",
        "4242",
        bundle.to_str().unwrap(),
    ]);
    let (_q, q) = new_node(3);
    ok(&["archive", "import", "--data", &q, bundle.to_str().unwrap()]);
    assert_eq!(assert_rows_arrived(&q, &db, 4242, HFLOW_TABLES), 30);
}
