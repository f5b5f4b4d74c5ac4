//! Sebek v3: the generator's scripted session (fixtures/sebek.pcap) ingested
//! into exactly the processes, tree edges, commands, reads, writes, opens,
//! sockets (joined to their flows) and losses it emitted; hostile packets on
//! the sebek port counted and skipped.

use std::path::Path;

use rusqlite::Connection;

use crate::util::*;

fn mirror(data: &str) -> Connection {
    Connection::open(Path::new(data).join("mirror.sqlite")).unwrap()
}

fn rows(c: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = c.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        let mut cols = Vec::new();
        for i in 0..n {
            let v: rusqlite::types::Value = r.get(i)?;
            cols.push(match v {
                rusqlite::types::Value::Null => "NULL".into(),
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Real(f) => f.to_string(),
                rusqlite::types::Value::Text(t) => t,
                rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
            });
        }
        Ok(cols.join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

const HONEYPOT: i64 = 0x0a00_0005;
const T0: i64 = 1_300_000_000;
const LAG: i64 = 3_607;

#[test]
fn the_fixture_is_the_generator_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sebek.pcap");
    ok(&["gen-sebek", out.to_str().unwrap()]);
    let made = std::fs::read(&out).unwrap();
    assert_eq!(made, std::fs::read(fixture("sebek.pcap")).unwrap());
    assert!(made.len() < 200 * 1024);
}

#[test]
fn a_generated_shell_session_round_trips_into_the_walleye_tables() {
    let (_d, data) = new_node(77);
    let f = fixture("sebek.pcap");
    let out = run(&["ingest", "--data", &data, f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("sebek: 17 records decoded, 4 packets rejected"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("4 packets on the sebek port are not sebek v3 records"));
    let c = mirror(&data);
    let ip = HONEYPOT.to_string();
    assert_eq!(
        rows(
            &c,
            "SELECT process_id, pid, src_ip FROM process ORDER BY process_id"
        ),
        [
            format!("1|1000|{ip}"),
            format!("2|1001|{ip}"),
            format!("3|1002|{ip}"),
            format!("4|1003|{ip}"),
            format!("5|1003|{ip}"),
        ]
    );
    // Both clocks: the honeypot's lags the capture's by LAG seconds.
    for r in rows(
        &c,
        "SELECT time_min, time_max, pcap_time_min, pcap_time_max FROM process",
    ) {
        let v: Vec<i64> = r.split('|').map(|x| x.parse().unwrap()).collect();
        assert_eq!((v[2] - v[0], v[3] - v[1]), (LAG, LAG), "{r}");
        assert!(v[2] >= T0 && v[3] >= v[2], "{r}");
    }
    assert_eq!(
        rows(
            &c,
            "SELECT child_process, parent_process FROM process_tree ORDER BY 1"
        ),
        ["2|1", "3|2", "4|3", "5|1"]
    );
    assert_eq!(
        rows(&c, "SELECT command_id, name FROM command ORDER BY 1"),
        ["1|sshd", "2|bash", "3|wget"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT process_id, command_id FROM process_to_com ORDER BY 1, 2"
        ),
        ["1|1", "2|1", "3|1", "3|2", "4|2", "4|3", "5|1"]
    );
    let keys = rows(
        &c,
        "SELECT data FROM sys_read WHERE process_id = 3 ORDER BY sys_read_id",
    )
    .concat();
    assert_eq!(keys, "wget x\n");
    assert_eq!(
        rows(
            &c,
            "SELECT sys_read_id, process_id, filed, length, data FROM sys_read WHERE process_id = 4"
        ),
        ["8|4|4|22|HTTP/1.0 200 OK\r\n\r\nELF"]
    );
    assert_eq!(
        rows(&c, "SELECT sys_write_id, process_id, data FROM sys_write"),
        ["1|4|GET /x HTTP/1.0\r\n\r\n"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT sys_open_id, process_id, filed, inode, filename FROM sys_open ORDER BY 1"
        ),
        [
            "1|3|3|555|/root/.bash_history",
            "2|4|3|556|/etc/resolv.conf"
        ]
    );
    // Sockets joined to the right flows: the accept came before its flow.
    let joined = rows(
        &c,
        "SELECT s.sys_socket_id, s.process_id, s.\"call\", f.src_ip, f.src_port, f.dst_ip, f.dst_port \
         FROM sys_socket s JOIN flow f USING (sensor_id, flow_id) ORDER BY 1",
    );
    assert_eq!(
        joined,
        [
            format!("1|1|5|{}|40001|{ip}|22", 0xc633_6407u32),
            format!("2|4|3|{ip}|50123|{}|80", 0xcb00_7109u32),
        ]
    );
    assert!(rows(&c, "SELECT * FROM x_pending_socket").is_empty());
    assert_eq!(
        rows(&c, "SELECT src_ip, lost FROM sbk_loss"),
        [format!("{ip}|2")]
    );
    // The legacy argus table mirrors the flows, argus_id = flow_id.
    assert_eq!(
        rows(
            &c,
            "SELECT a.src_port, a.dst_port, a.argus_dir, a.argus_status FROM argus a \
             JOIN flow f ON f.sensor_id = a.sensor_id AND f.flow_id = a.argus_id ORDER BY a.argus_id"
        ),
        ["1101|1101|->|INT", "40001|22|<->|CON", "50123|80|<->|CON"]
    );
    // Sebek packets are still UDP flows, counted as before.
    let udp: Vec<_> = flows_json(&data, &["--port", "1101"]);
    assert_eq!(udp.len(), 1);
    assert_eq!(udp[0]["src"]["packets"].as_u64(), Some(21));
}

#[test]
fn sebek_ingest_is_deterministic_and_idempotent() {
    let (_a, one) = new_node(77);
    let (_b, two) = new_node(77);
    let f = fixture("sebek.pcap");
    ok(&["ingest", "--data", &one, f.to_str().unwrap()]);
    ok(&["ingest", "--data", &two, f.to_str().unwrap()]);
    assert_eq!(segment_files(&one), segment_files(&two));
    ok(&["ingest", "--data", &one, f.to_str().unwrap()]);
    assert_eq!(segment_files(&one), segment_files(&two));
    let c = mirror(&one);
    assert_eq!(rows(&c, "SELECT count(*) FROM sys_read"), ["8"]);
}

#[test]
fn a_custom_sebek_port_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("s.pcap");
    ok(&["gen-sebek", "--port", "31337", pcap.to_str().unwrap()]);
    let (_d, data) = new_node(5);
    let out = ok(&["ingest", "--data", &data, pcap.to_str().unwrap()]);
    assert!(!out.contains("sebek:"), "{out}");
    ok(&[
        "config",
        "set",
        "--data",
        &data,
        "capture.sebek_port",
        "31337",
    ]);
    let (_e, data2) = new_node(5);
    ok(&[
        "config",
        "set",
        "--data",
        &data2,
        "capture.sebek_port",
        "31337",
    ]);
    let out = ok(&["ingest", "--data", &data2, pcap.to_str().unwrap()]);
    assert!(out.contains("sebek: 17 records decoded"), "{out}");
}

#[test]
fn every_ipv4_flow_has_its_argus_row() {
    let (_d, data) = new_node(42);
    let f = fixture("honeynet.pcap");
    ok(&["ingest", "--data", &data, f.to_str().unwrap()]);
    let c = mirror(&data);
    let flows = rows(&c, "SELECT count(*) FROM flow");
    assert_ne!(flows, ["0"]);
    assert_eq!(rows(&c, "SELECT count(*) FROM argus"), flows);
    assert_eq!(
        rows(
            &c,
            "SELECT count(*) FROM flow f JOIN argus a ON a.sensor_id = f.sensor_id \
             AND a.argus_id = f.flow_id AND a.src_ip = f.src_ip AND a.dst_port = f.dst_port \
             AND a.src_pkts = f.src_packets AND a.dst_pkts = f.dst_packets"
        ),
        flows
    );
    let statuses = rows(&c, "SELECT DISTINCT argus_status FROM argus ORDER BY 1");
    for s in ["CON", "FIN", "RST", "INT"] {
        assert!(statuses.iter().any(|x| x == s), "{s} in {statuses:?}");
    }
}

#[test]
fn processes_keystrokes_and_hosts_commands() {
    let (_d, data) = new_node(77);
    let f = fixture("sebek.pcap");
    ok(&["ingest", "--data", &data, f.to_str().unwrap()]);
    let json: Vec<serde_json::Value> = serde_json::from_str(&ok(&[
        "processes",
        "--data",
        &data,
        "--pid",
        "1003",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json.len(), 2, "pid 1003 was reused");
    assert_eq!(json[0]["commands"], serde_json::json!(["bash", "wget"]));
    assert_eq!(json[0]["parents"], serde_json::json!([3]));
    assert_eq!(json[0]["opens"][0]["filename"], "/etc/resolv.conf");
    assert_eq!(json[0]["sockets"][0]["call"], 3);
    assert_eq!(json[1]["parents"], serde_json::json!([1]));
    // The flow of wget's connect: wget and its ancestors.
    let flow = json[0]["sockets"][0]["flow_id"]
        .as_u64()
        .unwrap()
        .to_string();
    let on_flow: Vec<serde_json::Value> = serde_json::from_str(&ok(&[
        "processes",
        "--data",
        &data,
        "--flow",
        &flow,
        "--json",
    ]))
    .unwrap();
    let ids: Vec<u64> = on_flow
        .iter()
        .map(|p| p["process_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    let none = ok(&["processes", "--data", &data, "--sensor", "1"]);
    assert!(none.contains("0 processes"), "{none}");
    assert_eq!(
        ok(&["keystrokes", "--data", &data, "--process", "3"]),
        "wget x\n"
    );
    let host = ok(&["hosts", "--data", &data, "--ip", "10.0.0.5"]);
    assert!(host.contains("3 flows"), "{host}");
    assert!(host.contains("no OS fingerprint"), "{host}");
}

/// Every sebek table, in a fixed order, as text.
fn sebek_tables(data: &str) -> Vec<String> {
    let c = mirror(data);
    [
        "SELECT * FROM process ORDER BY 1, 2",
        "SELECT * FROM process_tree ORDER BY 1, 2, 3",
        "SELECT * FROM command ORDER BY 1, 2",
        "SELECT * FROM process_to_com ORDER BY 1, 2, 3",
        "SELECT * FROM sys_read ORDER BY 1, 2",
        "SELECT * FROM sys_write ORDER BY 1, 2",
        "SELECT * FROM sys_open ORDER BY 1, 2",
        "SELECT * FROM sys_socket ORDER BY 1, 2",
        "SELECT * FROM sbk_loss ORDER BY 1, 2, 3, 4",
        "SELECT * FROM x_pending_socket",
    ]
    .iter()
    .flat_map(|q| rows(&c, q))
    .collect()
}

#[test]
fn a_capture_ingested_in_two_steps_gives_the_same_rows() {
    let whole = std::fs::read(fixture("sebek.pcap")).unwrap();
    let (_a, once) = new_node(77);
    ok(&[
        "ingest",
        "--data",
        &once,
        fixture("sebek.pcap").to_str().unwrap(),
    ]);
    // Every cut point inside the packet records: the first run keeps the
    // whole packets before the cut (and the sebek state), the second resumes.
    let dir = tempfile::tempdir().unwrap();
    let grown = dir.path().join("growing.pcap");
    for cut in [400, 1200, 2000] {
        let (_b, twice) = new_node(77);
        std::fs::write(&grown, &whole[..cut]).unwrap();
        run(&["ingest", "--data", &twice, grown.to_str().unwrap()]);
        std::fs::write(&grown, &whole).unwrap();
        ok(&["ingest", "--data", &twice, grown.to_str().unwrap()]);
        assert_eq!(sebek_tables(&twice), sebek_tables(&once), "cut at {cut}");
    }
}
