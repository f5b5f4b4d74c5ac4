//! Trust boundaries between nodes (docs/SECURITY.md): children whose stores
//! a test rewrites as a compromised roo would, beside an honest child, all
//! pulled by one parent; every node a real `lumpy serve` on 127.0.0.x.

use std::path::Path;
use std::time::{Duration, Instant};

use lumpy::records::{Record, encode_line};
use lumpy::store::{Kind, SegmentBuilder, SegmentId, SegmentMeta, SegmentView, Store};
use redb::TableDefinition;

use crate::sync::{free_port, link, serve};
use crate::util::*;

// The two index tables a node's catalogue is read from (docs/STORAGE.md §6).
const SEGMENTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("segments");
const SENSOR_SEQ: TableDefinition<(u32, u64), &[u8; 32]> = TableDefinition::new("sensor_seq");

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A stopped node's record segments of `sensor`, and the sensor's highest
/// sequence number there.
fn record_segments(data: &str, sensor: u32) -> (Vec<Vec<u8>>, u64) {
    let store = Store::open(Path::new(data), false).unwrap();
    let entries: Vec<_> = store
        .sensor_sequence()
        .unwrap()
        .into_iter()
        .filter(|((s, _), _)| *s == sensor)
        .collect();
    let max = entries.iter().map(|((_, q), _)| *q).max().unwrap();
    let segments = entries
        .iter()
        .filter(|(_, id)| store.segment_meta(id).unwrap().unwrap().kind == Kind::Records)
        .map(|(_, id)| store.read_segment(id).unwrap())
        .collect();
    (segments, max)
}

/// Puts `bytes` at (sensor, seq) of a stopped node's catalogue, as a
/// compromised node rewriting its own store would: file, segment entry and
/// sequence entry, whatever the bytes' header says.
fn plant(data: &str, sensor: u32, seq: u64, bytes: &[u8]) -> SegmentId {
    // The header as it claims to be, even when the rest does not agree.
    let header = lumpy::store::segment::parse_header(bytes).unwrap();
    let (raw_bytes, block_count) = SegmentView::parse(bytes)
        .map(|v| (v.raw_total, v.blocks.len() as u32))
        .unwrap_or((0, 1));
    let id = SegmentId::of(bytes);
    let meta = SegmentMeta {
        id,
        sensor_id: header.sensor_id,
        kind: header.kind,
        origin_seq: header.origin_seq,
        time_first_ns: header.time_first_ns,
        time_last_ns: header.time_last_ns,
        item_count: header.item_count,
        raw_bytes,
        stored_bytes: bytes.len() as u64,
        block_count,
        link_type: header.link_type,
    };
    let hex = id.to_hex();
    let dir = Path::new(data).join("segments").join(&hex[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&hex), bytes).unwrap();
    // The hostile node rewrites its own index; it keeps no seal.
    let _ = std::fs::remove_file(Path::new(data).join("index.redb.seal"));
    let db = redb::Database::open(Path::new(data).join("index.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(SEGMENTS).unwrap();
        t.insert(&id.0, meta.encode().as_slice()).unwrap();
        let mut s = txn.open_table(SENSOR_SEQ).unwrap();
        s.insert((sensor, seq), &id.0).unwrap();
    }
    txn.commit().unwrap();
    id
}

/// A record segment of `sensor` at `seq` holding `lines` as they are.
fn raw_record_segment(sensor: u32, seq: u64, lines: &[&[u8]]) -> Vec<u8> {
    let mut b = SegmentBuilder::new(Kind::Records, sensor, 0, 3);
    for line in lines {
        b.push_record_line(1_000_000_000, line).unwrap();
    }
    b.seal(seq).unwrap().bytes
}

/// A record segment of `sensor` at `seq` holding `records` as they are.
fn record_segment(sensor: u32, seq: u64, records: &[Record]) -> Vec<u8> {
    let mut b = SegmentBuilder::new(Kind::Records, sensor, 0, 3);
    for r in records {
        let mut line = Vec::new();
        encode_line(r, &mut line);
        b.push_record_line(1_000_000_000, &line).unwrap();
    }
    b.seal(seq).unwrap().bytes
}

fn status_json(data: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["status", "--data", data, "--json"])).unwrap()
}

fn child_health(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap()
}

fn segments_known(status: &serde_json::Value, sensor: u32) -> u64 {
    status["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sensor_id"] == sensor)
        .map_or(0, |s| s["segments_known"].as_u64().unwrap())
}

#[test]
fn a_child_speaks_only_for_its_own_sensor_and_a_forgery_changes_nothing_at_the_parent() {
    let (_c1, c1) = new_node(1001);
    let (_c2, c2) = new_node(1002);
    let (_e, e) = new_node(1003);
    let (_p, p) = new_node(3001);
    ingest_fixture(&c1, "honeynet.pcap");
    ingest_fixture(&c2, "cooked.pcap");
    ingest_fixture(&e, "vlan.pcap");
    let honest_1001 = flows_json(&c1, &["--sensor", "1001"]);
    let honest_1002 = flows_json(&c2, &["--sensor", "1002"]);
    let honest_1003 = flows_json(&e, &["--sensor", "1003"]);
    assert!(!honest_1001.is_empty() && !honest_1002.is_empty() && !honest_1003.is_empty());

    // (a) c1 lists e's record segment (sensor 1003) as its own next entry.
    let (e_records, _) = record_segments(&e, 1003);
    let (_, max1) = record_segments(&c1, 1001);
    let planted_a = plant(&c1, 1001, max1 + 1, &e_records[0]);
    // (b) c2's next record segment carries a row of sensor 1003 (e's first
    // flow) with a version that would win over every honest one.
    let (_, max2) = record_segments(&c2, 1002);
    let mut flow = e_records
        .iter()
        .flat_map(|b| lumpy::node::decode_record_segment(&SegmentId::of(b), b).unwrap())
        .find_map(|r| match r {
            Record::Flow(f) => Some(f),
            _ => None,
        })
        .unwrap();
    flow.version = 1 << 60;
    flow.src_port = flow.src_port.wrapping_add(1);
    let forged_b = record_segment(1002, max2 + 1, &[Record::Flow(flow)]);
    let planted_b = plant(&c2, 1002, max2 + 1, &forged_b);

    let ports = [
        free_port("127.0.0.2"),
        free_port("127.0.0.3"),
        free_port("127.0.0.4"),
    ];
    let url = |ip: &str, port: u16| format!("https://{ip}:{port}");
    link(&p, "p", &c1, "c1", &url("127.0.0.2", ports[0]), &[]);
    link(&p, "p", &c2, "c2", &url("127.0.0.3", ports[1]), &[]);
    link(&p, "p", &e, "e", &url("127.0.0.4", ports[2]), &[]);
    let s1 = serve(&c1, "127.0.0.2", ports[0]);
    let s2 = serve(&c2, "127.0.0.3", ports[1]);
    let se = serve(&e, "127.0.0.4", ports[2]);
    let sp = serve(&p, "127.0.0.5", free_port("127.0.0.5"));
    wait_until(
        "the parent to hold every honest row",
        Duration::from_secs(60),
        || {
            flows_json(&p, &["--sensor", "1001"]).len() == honest_1001.len()
                && flows_json(&p, &["--sensor", "1002"]).len() == honest_1002.len()
                && flows_json(&p, &["--sensor", "1003"]).len() == honest_1003.len()
        },
    );
    // A few more pull rounds (every second): the refusals hold, nothing
    // creeps in, and the parent keeps serving and pulling.
    std::thread::sleep(Duration::from_secs(4));
    for s in [sp, s1, s2, se] {
        s.stop();
    }
    let v = status_json(&p);
    assert_eq!(segments_known(&v, 1001), max1);
    assert_eq!(segments_known(&v, 1002), max2);
    for (child, sensor, planted) in [("c1", 1001, planted_a), ("c2", 1002, planted_b)] {
        let h = child_health(&v, child);
        let error = h["last_error"].as_str().unwrap();
        assert!(
            error.contains(&format!("child {child}: refused"))
                && error.contains(&format!("sensor {sensor}")),
            "{child}'s pull error: {error}"
        );
        let conflicts = h["conflicts"].to_string();
        assert!(
            conflicts.contains(&format!("sensor {sensor}")),
            "{child}: {conflicts}"
        );
        let store_has = Path::new(&p)
            .join("segments")
            .join(&planted.to_hex()[..2])
            .join(planted.to_hex())
            .exists();
        // e's own segment (a) reaches the parent from e, under e's place.
        assert_eq!(store_has, child == "c1", "{child}'s planted segment");
    }
    assert!(
        child_health(&v, "e")["conflicts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(child_health(&v, "e")["last_error"], "");
    // Nothing of the forgeries at the parent: every sensor's rows are the
    // ones its honest origin holds.
    assert_eq!(flows_json(&p, &["--sensor", "1001"]), honest_1001);
    assert_eq!(flows_json(&p, &["--sensor", "1002"]), honest_1002);
    assert_eq!(flows_json(&p, &["--sensor", "1003"]), honest_1003);
    // The parent opens, verifies clean and names the conflicts.
    ok(&["verify", "--data", &p]);
    let text = ok(&["status", "--data", &p]);
    assert!(
        text.contains("conflict: sensor 1001") && text.contains("conflict: sensor 1002"),
        "{text}"
    );
}

#[test]
fn links_limited_to_sensors_carry_only_those() {
    // A lumpy holding two roos' sensors; its parent takes one of them, and
    // the lumpy shows a second parent only the other.
    let (_a, a) = new_node(1101);
    let (_b, b) = new_node(1102);
    let (_l, l) = new_node(2101);
    let (_p, p) = new_node(3101);
    let (_q, q) = new_node(3102);
    ingest_fixture(&a, "honeynet.pcap");
    ingest_fixture(&b, "vlan.pcap");
    let ports = [free_port("127.0.0.2"), free_port("127.0.0.3")];
    let url = |ip: &str, port: u16| format!("https://{ip}:{port}");
    link(&l, "l", &a, "a", &url("127.0.0.2", ports[0]), &[]);
    link(&l, "l", &b, "b", &url("127.0.0.3", ports[1]), &[]);
    let sa = serve(&a, "127.0.0.2", ports[0]);
    let sb = serve(&b, "127.0.0.3", ports[1]);
    ok(&["pull", "--data", &l]);
    sa.stop();
    sb.stop();
    // The child side limits what q sees; the parent side what p takes.
    let secret = ok(&["peer", "add", "--data", &l, "q", "--sensors", "1102"]);
    let file = Path::new(&q).join("l.secret-in");
    std::fs::write(&file, secret).unwrap();
    let pl = free_port("127.0.0.4");
    ok(&[
        "child",
        "add",
        "--data",
        &q,
        "l",
        &url("127.0.0.4", pl),
        "--secret-file",
        file.to_str().unwrap(),
    ]);
    link(
        &p,
        "p",
        &l,
        "l",
        &url("127.0.0.4", pl),
        &["--sensors", "1101"],
    );
    let sl = serve(&l, "127.0.0.4", pl);
    ok(&["pull", "--data", &q]);
    // p is offered 1102 too (l shows it every sensor) and passes over it.
    ok(&["pull", "--data", &p]);
    sl.stop();
    let (vp, vq) = (status_json(&p), status_json(&q));
    assert!(segments_known(&vp, 1101) > 0);
    assert_eq!(segments_known(&vp, 1102), 0);
    assert_eq!(segments_known(&vq, 1101), 0);
    assert!(segments_known(&vq, 1102) > 0);
    assert_eq!(
        flows_json(&p, &["--sensor", "1101"]),
        flows_json(&a, &["--sensor", "1101"])
    );
    assert_eq!(
        flows_json(&q, &["--sensor", "1102"]),
        flows_json(&b, &["--sensor", "1102"])
    );
}

#[test]
fn a_record_segment_that_cannot_be_read_is_quarantined_and_the_node_goes_on() {
    let (_n, n) = new_node(1201);
    let (_p, p) = new_node(3201);
    ingest_fixture(&n, "honeynet.pcap");
    let honest = flows_json(&n, &["--sensor", "1201"]);
    let (records, max) = record_segments(&n, 1201);
    // (c) well hashed, well formed, but its one record is not JSON.
    let undecodable = plant(
        &n,
        1201,
        max + 1,
        &raw_record_segment(1201, max + 1, &[b"{\"type\": \"flow\", \"sensor_id\": \n"]),
    );
    // (d) a real record segment whose header claims 2^50 items.
    let mut huge = records[0].clone();
    huge[48..56].copy_from_slice(&(1u64 << 50).to_le_bytes());
    huge[24..32].copy_from_slice(&(max + 2).to_le_bytes());
    let huge = plant(&n, 1201, max + 2, &huge);

    // Before any command opens the node, status shows them as the
    // mirror's lag (status does not apply segments).
    assert_eq!(status_json(&n)["mirror_lag_segments"], 2);
    // The node opens: its status names both, with their paths.
    ok(&["flows", "--data", &n, "--limit", "1"]);
    let text = ok(&["status", "--data", &n]);
    for id in [undecodable, huge] {
        assert!(
            text.contains(&format!("QUARANTINED segment {id}")),
            "{id} in: {text}"
        );
    }
    let v = status_json(&n);
    assert_eq!(v["quarantined"].as_array().unwrap().len(), 2, "{v}");
    let path = v["quarantined"][0]["path"].as_str().unwrap();
    assert!(Path::new(path).exists(), "{path}");
    assert_eq!(flows_json(&n, &["--sensor", "1201"]), honest);
    // verify names them (and fails), the mirror skipped them.
    let out = run(&["verify", "--data", &n]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    for id in [undecodable, huge] {
        assert!(
            stdout(&out).contains(&format!("segment {id}")) && stdout(&out).contains("quarantined"),
            "{}",
            stdout(&out)
        );
    }
    // It serves and a parent pulls everything else; the quarantined
    // segments never leave the node.
    let port = free_port("127.0.0.2");
    link(&p, "p", &n, "n", &format!("https://127.0.0.2:{port}"), &[]);
    crate::web::add_user(&n, "alice", crate::web::PASSWORD);
    let ui = free_port("127.0.0.2");
    let sn = crate::web::serve_ui(&n, "127.0.0.2", port, "127.0.0.2", ui);
    // The web API names them too (the DAG view: id, path, reason).
    let http = crate::web::Http::new();
    let base = format!("http://127.0.0.2:{ui}");
    let cookie = http.login(&base, "alice", crate::web::PASSWORD).unwrap();
    let dag = http
        .get(&format!("{base}/api/v1/dag"), Some(&cookie))
        .json();
    let shown = dag["quarantined"].as_array().unwrap();
    assert_eq!(shown.len(), 2, "{dag}");
    for id in [undecodable, huge] {
        let q = shown.iter().find(|q| q["id"] == id.to_hex()).unwrap();
        assert!(q["path"].as_str().unwrap().ends_with(&id.to_hex()), "{q}");
        assert!(!q["reason"].as_str().unwrap().is_empty(), "{q}");
    }
    let out = run(&["pull", "--data", &p]);
    sn.stop();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(flows_json(&p, &["--sensor", "1201"]), honest);
    assert_eq!(segments_known(&status_json(&p), 1201), max);
    ok(&["verify", "--data", &p]);
    // Without the flag repair leaves them; with it they go, and the node is clean.
    let out = run(&["repair", "--data", &n, "--from", &p]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = ok(&["repair", "--data", &n, "--from", &p, "--drop-quarantined"]);
    assert!(
        out.contains(&format!("dropped quarantined segment {undecodable}")),
        "{out}"
    );
    ok(&["verify", "--data", &n]);
    let v = status_json(&n);
    assert!(v["quarantined"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(segments_known(&v, 1201), max + 2);
    assert_eq!(flows_json(&n, &["--sensor", "1201"]), honest);
}

/// A TCP relay in front of `target` that, once, cuts every connection when
/// `limit` bytes have gone back to the client (a link dropped in the middle
/// of a segment stream); after that it passes everything.
fn cutting_relay(target: String, limit: u64) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let down = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut c_in, mut s_out) = (conn.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(Shutdown::Write);
            });
            let (down, cut) = (down.clone(), cut.clone());
            let (mut s_in, mut c_out) = (server, conn);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                loop {
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let before = down.fetch_add(n as u64, Ordering::SeqCst);
                    if !cut.load(Ordering::SeqCst) && before + n as u64 > limit {
                        let keep = limit.saturating_sub(before) as usize;
                        let _ = c_out.write_all(&buf[..keep]);
                        cut.store(true, Ordering::SeqCst);
                        let _ = c_out.shutdown(Shutdown::Both);
                        let _ = s_in.shutdown(Shutdown::Both);
                        return;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

#[test]
fn prune_after_a_mirror_pull_cut_mid_stream_keeps_every_flows_pcap() {
    let (_a, a) = new_node(1301);
    config_set(&a, "store.segment_target_bytes", "65536");
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 2, 1000);
    ok(&["ingest", "--data", &a, big.to_str().unwrap()]);
    let held = status_json(&a)["pcap_segments"].as_u64().unwrap();
    assert!(held > 4, "{held} pcap segments");
    let flows: Vec<u64> = flows_json(&a, &["--sensor", "1301"])
        .iter()
        .map(|f| f["flow_id"].as_u64().unwrap())
        .collect();
    let pcap_of =
        |data: &str, flow: u64| try_flow_pcap(data, 1301, flow, &work.path().join("f.pcap"));
    let before: Vec<Vec<u8>> = flows.iter().map(|f| pcap_of(&a, *f).unwrap()).collect();

    let (_p, p) = new_node(3301);
    let pa = free_port("127.0.0.2");
    let relay = cutting_relay(format!("127.0.0.2:{pa}"), 150_000);
    link(
        &p,
        "p",
        &a,
        "a",
        &format!("https://127.0.0.1:{relay}"),
        &["--pcap", "mirror"],
    );
    let sa = serve(&a, "127.0.0.2", pa);
    let out = run(&["pull", "--data", &p]);
    sa.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("child a"), "{}", stderr(&out));
    let got = status_json(&p)["pcap_segments"].as_u64().unwrap();
    assert!(
        got < held,
        "the cut pull took {got} of {held} pcap segments"
    );

    // The child sent some segments the parent never committed: it keeps
    // them all, and every flow's pcap is still served, byte for byte.
    let out = ok(&["prune", "--data", &a, "--pcap-days", "0"]);
    assert!(out.contains("kept") && out.contains("parent 'p'"), "{out}");
    for (flow, want) in flows.iter().zip(&before) {
        let served = pcap_of(&a, *flow).or_else(|| pcap_of(&p, *flow));
        assert_eq!(served.as_ref(), Some(want), "flow {flow}");
    }

    // The pull completes; the parent says what it committed; now prune
    // drops everything and the parent serves every flow's pcap.
    let sa = serve(&a, "127.0.0.2", pa);
    ok(&["pull", "--data", &p]);
    sa.stop();
    let out = ok(&["prune", "--data", &a, "--pcap-days", "0"]);
    assert!(!out.contains("kept"), "{out}");
    assert_eq!(status_json(&a)["pcap_segments"], 0);
    for (flow, want) in flows.iter().zip(&before) {
        assert_eq!(
            pcap_of(&p, *flow).as_ref(),
            Some(want),
            "flow {flow} at the parent"
        );
    }
    ok(&["verify", "--data", &a]);
    ok(&["verify", "--data", &p]);
}

#[test]
fn a_roo_speaks_only_for_the_sensors_it_originated_unless_the_link_lists_more() {
    // Roo a also holds sensor 1402, imported from b's bundle: it has nothing
    // below it and did not originate 1402.
    let (_a, a) = new_node(1401);
    let (_b, b) = new_node(1402);
    ingest_fixture(&a, "honeynet.pcap");
    ingest_fixture(&b, "vlan.pcap");
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("b.lumpy");
    let bundle = bundle.to_str().unwrap();
    ok(&[
        "archive", "create", "--data", &b, "--sensor", "1402", bundle,
    ]);
    ok(&["archive", "import", "--data", &a, bundle]);
    let (_p, p) = new_node(3401);
    let (_q, q) = new_node(3402);
    let pa = free_port("127.0.0.2");
    let url = format!("https://127.0.0.2:{pa}");
    link(&p, "p", &a, "a", &url, &[]);
    link(&q, "q", &a, "a", &url, &["--sensors", "1401,1402"]);
    let sa = serve(&a, "127.0.0.2", pa);
    let out = run(&["pull", "--data", &p]);
    ok(&["pull", "--data", &q]);
    sa.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sensor 1402: the child has nothing below it and did not originate"),
        "{}",
        stderr(&out)
    );
    let (vp, vq) = (status_json(&p), status_json(&q));
    assert!(segments_known(&vp, 1401) > 0);
    assert_eq!(segments_known(&vp, 1402), 0);
    assert!(
        child_health(&vp, "a")["conflicts"]
            .to_string()
            .contains("sensor 1402")
    );
    assert!(segments_known(&vq, 1402) > 0);
    assert_eq!(
        flows_json(&q, &["--sensor", "1402"]),
        flows_json(&b, &["--sensor", "1402"])
    );
}

/// What the tampering relay does to the next connections.
#[derive(Clone)]
enum Tamper {
    /// Passes bytes both ways untouched.
    Pass,
    /// Flips one bit of the child's answer at this offset of the stream.
    Flip(usize),
    /// Passes this many bytes of the child's answer, then cuts both ways.
    Cut(usize),
    /// Answers with the child's bytes recorded from an earlier connection,
    /// without contacting the child.
    Replay,
    /// Connects to this other server instead (another certificate).
    To(String),
}

/// A TCP relay in front of `target` whose behaviour the test switches
/// between pulls; it records the child's untouched answer of the first
/// connection it relays (for `Replay`).
struct TamperRelay {
    port: u16,
    mode: std::sync::Arc<std::sync::Mutex<Tamper>>,
}

impl TamperRelay {
    fn set(&self, mode: Tamper) {
        *self.mode.lock().unwrap() = mode;
    }
}

fn tamper_relay(target: String) -> TamperRelay {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mode = Arc::new(Mutex::new(Tamper::Pass));
    let recorded: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let (m, rec) = (mode.clone(), recorded.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mode = m.lock().unwrap().clone();
            if let Tamper::Replay = mode {
                let old = rec.lock().unwrap().clone().unwrap_or_default();
                std::thread::spawn(move || {
                    let mut c = conn;
                    let _ = c.write_all(&old);
                    let _ = c.shutdown(Shutdown::Both);
                });
                continue;
            }
            let to = match &mode {
                Tamper::To(other) => other.clone(),
                _ => target.clone(),
            };
            let Ok(server) = TcpStream::connect(&to) else {
                continue;
            };
            let (mut c_in, mut s_out) = (conn.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(Shutdown::Write);
            });
            // The first relayed connection's answer is kept for a replay.
            let record = matches!(mode, Tamper::Pass | Tamper::Flip(_) | Tamper::Cut(_))
                && rec.lock().unwrap().is_none();
            if record {
                *rec.lock().unwrap() = Some(Vec::new());
            }
            let rec = rec.clone();
            let (mut s_in, mut c_out) = (server, conn);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                let mut at = 0usize;
                loop {
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if record && let Some(r) = rec.lock().unwrap().as_mut() {
                        r.extend_from_slice(&buf[..n]);
                    }
                    let chunk = &mut buf[..n];
                    match mode {
                        Tamper::Flip(off) if (at..at + n).contains(&off) => {
                            chunk[off - at] ^= 0x01;
                        }
                        Tamper::Cut(off) if at + n > off => {
                            let _ = c_out.write_all(&chunk[..off - at]);
                            let _ = c_out.shutdown(Shutdown::Both);
                            let _ = s_in.shutdown(Shutdown::Both);
                            return;
                        }
                        _ => {}
                    }
                    at += n;
                    if c_out.write_all(chunk).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(Shutdown::Write);
            });
        }
    });
    TamperRelay { port, mode }
}

#[test]
fn a_tampering_relay_or_another_certificate_gets_nothing_accepted() {
    // Parent p pulls from an honest child h directly and from child v
    // through a relay that flips a byte, truncates, replays an earlier
    // answer, or leads to another node (x) with its own certificate.
    let (_h, h) = new_node(1501);
    let (_v, v) = new_node(1502);
    let (_x, x) = new_node(1503);
    let (_p, p) = new_node(3501);
    ingest_fixture(&h, "honeynet.pcap");
    ingest_fixture(&v, "vlan.pcap");
    ingest_fixture(&x, "vlan.pcap");
    let (ph, pv, px) = (
        free_port("127.0.0.6"),
        free_port("127.0.0.7"),
        free_port("127.0.0.8"),
    );
    let relay = tamper_relay(format!("127.0.0.7:{pv}"));
    link(&p, "p", &h, "h", &format!("https://127.0.0.6:{ph}"), &[]);
    link(
        &p,
        "p",
        &v,
        "v",
        &format!("https://127.0.0.1:{}", relay.port),
        &[],
    );
    let sh = serve(&h, "127.0.0.6", ph);
    let sv = serve(&v, "127.0.0.7", pv);
    let sx = serve(&x, "127.0.0.8", px);
    let cases = [
        ("a flipped byte", Tamper::Flip(2000)),
        ("a truncated answer", Tamper::Cut(2000)),
        ("a replayed answer", Tamper::Replay),
        ("another certificate", Tamper::To(format!("127.0.0.8:{px}"))),
    ];
    for (what, mode) in cases {
        relay.set(mode);
        let out = run(&["pull", "--data", &p]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("child v:"), "{what}: {err}");
        assert!(!err.contains("child h"), "{what}: {err}");
        // The other child is still pulled, in the same run.
        assert!(stdout(&out).contains("h: "), "{what}: {}", stdout(&out));
        let status = status_json(&p);
        let health = child_health(&status, "v");
        let last = health["last_error"].as_str().unwrap();
        assert!(last.starts_with("child v:"), "{what}: {last}");
        if what == "another certificate" {
            assert!(
                last.contains("is not the child this link pinned"),
                "{what}: {last}"
            );
        }
        // Nothing of v (nor of x) was accepted.
        assert_eq!(segments_known(&status, 1502), 0, "{what}");
        assert_eq!(segments_known(&status, 1503), 0, "{what}");
        assert!(flows_json(&p, &["--sensor", "1502"]).is_empty(), "{what}");
        assert_eq!(
            flows_json(&p, &["--sensor", "1501"]),
            flows_json(&h, &["--sensor", "1501"]),
            "{what}"
        );
    }
    // The same relay passing bytes untouched: v's data arrives (so each
    // refusal above was the tampering's).
    relay.set(Tamper::Pass);
    ok(&["pull", "--data", &p]);
    for s in [sh, sv, sx] {
        s.stop();
    }
    assert_eq!(
        flows_json(&p, &["--sensor", "1502"]),
        flows_json(&v, &["--sensor", "1502"])
    );
    ok(&["verify", "--data", &p]);
}

#[test]
fn a_link_token_is_rotated_by_peer_rotate_and_child_rotate() {
    let (_a, a) = new_node(1601);
    let (_p, p) = new_node(3601);
    ingest_fixture(&a, "honeynet.pcap");
    let pa = free_port("127.0.0.9");
    let old = link(&p, "p", &a, "a", &format!("https://127.0.0.9:{pa}"), &[]);
    let sa = serve(&a, "127.0.0.9", pa);
    ok(&["pull", "--data", &p]);
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("new.token");
    let rotate = |token_file: &Path| {
        let token = ok(&["peer", "rotate", "--data", &a, "p"]);
        std::fs::write(token_file, &token).unwrap();
        token
    };
    // The parent takes the new token, and its next pull succeeds.
    let take_and_pull = |token_file: &Path| {
        let file = token_file.to_str().unwrap();
        ok(&["child", "rotate", "--data", &p, "a", "--secret-file", file]);
        ok(&["pull", "--data", &p]);
    };
    // The child makes a new secret: the running node refuses the old one
    // from the next request, naming the child at the parent.
    let new = rotate(&token_file);
    assert_ne!(new.trim(), old);
    let out = run(&["pull", "--data", &p]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("child a: 401"), "{}", stderr(&out));
    take_and_pull(&token_file);
    // A new certificate (the old key lost, say): refused as another
    // server's until the parent takes the token that pins it.
    sa.stop();
    std::fs::remove_dir_all(Path::new(&a).join("tls")).unwrap();
    let sa = serve(&a, "127.0.0.9", pa);
    let out = run(&["pull", "--data", &p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not the child this link pinned"),
        "{}",
        stderr(&out)
    );
    rotate(&token_file);
    take_and_pull(&token_file);
    sa.stop();
    assert_eq!(
        flows_json(&p, &["--sensor", "1601"]),
        flows_json(&a, &["--sensor", "1601"])
    );
    // Rotating an unknown link fails.
    let out = run(&["peer", "rotate", "--data", &a, "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no parent named 'nobody'"));
}

/// A hostile child: a small HTTP server inside the test speaking the peer
/// protocol for one sensor whose whole catalogue is segment `segment` at
/// sequence 1, and answering a fetch with `frame` (the segment's frame, or
/// whatever a hostile child sends instead), then closing the connection.
/// It checks no credentials: what is tested is what the parent accepts.
fn fake_child(ip: &str, sensor: u32, segment: &[u8], frame: Vec<u8>) -> u16 {
    use lumpy::sync::protocol::{
        CatalogEntry, CatalogPage, PROTOCOL_VERSION, SensorSummary, Summary,
    };
    use std::io::{BufRead, BufReader, Read, Write};
    let id = SegmentId::of(segment).to_hex();
    let node_id = format!("{:032x}", 0xfa4e_0000_u64 + u64::from(sensor));
    let summary = serde_json::to_vec(&Summary {
        protocol: PROTOCOL_VERSION,
        node_id: node_id.clone(),
        below: vec![node_id],
        sensors: vec![SensorSummary {
            sensor_id: sensor,
            first_id: id.clone(),
            max_seq: 1,
            chain: String::new(),
            hops: 0,
            pcap_held_to: 1,
            newest_ns: 1_000_000_000,
            incarnation: None,
        }],
        digest: format!("fake-{sensor}"),
    })
    .unwrap();
    let catalog = serde_json::to_vec(&CatalogPage {
        sensor_id: sensor,
        entries: vec![CatalogEntry {
            seq: 1,
            id,
            kind: Kind::Records as u8,
            stored_bytes: segment.len() as u64,
            held: true,
        }],
        more: false,
    })
    .unwrap();
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (summary, catalog, frame) = (summary.clone(), catalog.clone(), frame.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut body_len = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    let h = h.to_ascii_lowercase();
                    if let Some(v) = h.strip_prefix("content-length:") {
                        body_len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; body_len];
                let _ = reader.read_exact(&mut body);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (kind, answer) = if path.starts_with("/v1/summary") {
                    ("application/json", summary)
                } else if path.starts_with("/v1/catalog/") {
                    ("application/json", catalog)
                } else {
                    ("application/octet-stream", frame)
                };
                // The frame's length is not announced: the connection's end
                // is the body's end, as a child that stops sending would do.
                let head = if kind == "application/json" {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        answer.len()
                    )
                } else {
                    format!("HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\nconnection: close\r\n\r\n")
                };
                let mut conn = conn;
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&answer);
                let _ = conn.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

/// A frame of a segment answer: id, announced length, then `body`.
fn frame_of(segment: &[u8], announced: u64, body: &[u8]) -> Vec<u8> {
    let mut f = SegmentId::of(segment).0.to_vec();
    f.extend_from_slice(&announced.to_le_bytes());
    f.extend_from_slice(body);
    f
}

#[test]
fn hostile_children_sending_undecodable_huge_or_cut_segments_are_refused_and_named() {
    let (_h, h) = new_node(1501);
    let (_p, p) = new_node(3501);
    ingest_fixture(&h, "honeynet.pcap");
    // (c) well hashed, well formed, but its one record is not JSON.
    let undecodable = raw_record_segment(1502, 1, &[b"{\"type\": \"flow\", \"sensor_id\": \n"]);
    // (d) a real record segment whose header claims 2^50 items.
    let mut huge = raw_record_segment(1503, 1, &[b"{}\n", b"{}\n"]);
    huge[48..56].copy_from_slice(&(1u64 << 50).to_le_bytes());
    // A child announcing 512 MiB that sends the start of a good segment,
    // then stops; and one announcing as much that sends garbage.
    let cut = raw_record_segment(1504, 1, &[b"{}\n".as_slice(); 64]);
    let garbage = vec![0x5a; 4096];
    let children = [
        (
            "fake-c",
            1502,
            &undecodable,
            frame_of(&undecodable, undecodable.len() as u64, &undecodable),
        ),
        (
            "fake-d",
            1503,
            &huge,
            frame_of(&huge, huge.len() as u64, &huge),
        ),
        (
            "fake-cut",
            1504,
            &cut,
            frame_of(&cut, 1 << 29, &cut[..cut.len() / 2]),
        ),
        (
            "fake-junk",
            1505,
            &garbage,
            frame_of(&garbage, 1 << 29, &garbage),
        ),
    ];
    for (i, (name, sensor, segment, frame)) in children.iter().enumerate() {
        let ip = format!("127.0.0.{}", 10 + i);
        let port = fake_child(&ip, *sensor, segment, frame.clone());
        link(
            &p,
            &format!("p-{name}"),
            &h,
            name,
            &format!("http://{ip}:{port}"),
            &[],
        );
    }
    let ph = free_port("127.0.0.2");
    link(&p, "p", &h, "h", &format!("http://127.0.0.2:{ph}"), &[]);
    let sh = serve(&h, "127.0.0.2", ph);
    let out = run(&["pull", "--data", &p]);
    sh.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let v = status_json(&p);
    let expect = [
        ("fake-c", "refused: sensor 1502"),
        ("fake-d", "refused: sensor 1503"),
        ("fake-cut", "ended inside segment"),
        ("fake-junk", "does not start with a segment header"),
    ];
    for ((name, why), (_, sensor, segment, _)) in expect.iter().zip(&children) {
        assert!(
            err.contains(&format!("child {name}")),
            "{name} not named: {err}"
        );
        let error = child_health(&v, name)["last_error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with(&format!("child {name}: ")) && error.contains(why),
            "{name}'s pull error: {error}"
        );
        // Nothing of it at the parent: no entry, no file, no rows, no
        // temporary file left of its frame.
        assert_eq!(segments_known(&v, *sensor), 0, "{name}");
        let hex = SegmentId::of(segment).to_hex();
        assert!(
            !Path::new(&p)
                .join("segments")
                .join(&hex[..2])
                .join(&hex)
                .exists()
        );
        assert!(flows_json(&p, &["--sensor", &sensor.to_string()]).is_empty());
    }
    for (name, sensor) in [("fake-c", 1502), ("fake-d", 1503)] {
        let conflicts = child_health(&v, name)["conflicts"].to_string();
        assert!(
            conflicts.contains(&format!("sensor {sensor}")),
            "{name}: {conflicts}"
        );
    }
    assert_eq!(
        std::fs::read_dir(Path::new(&p).join("tmp"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(child_health(&v, "h")["last_error"], "");
    assert_eq!(
        flows_json(&p, &["--sensor", "1501"]),
        flows_json(&h, &["--sensor", "1501"])
    );
    ok(&["verify", "--data", &p]);

    // The parent still starts, serves, and pulls its honest child's new
    // data while the hostile ones keep failing.
    ingest_fixture(&h, "vlan.pcap");
    let want = flows_json(&h, &["--sensor", "1501"]);
    let sh = serve(&h, "127.0.0.2", ph);
    let sp = serve(&p, "127.0.0.3", free_port("127.0.0.3"));
    wait_until(
        "the parent to pull the new rows",
        Duration::from_secs(60),
        || flows_json(&p, &["--sensor", "1501"]).len() == want.len(),
    );
    sp.stop();
    sh.stop();
    let v = status_json(&p);
    for (name, _) in expect {
        assert!(
            child_health(&v, name)["last_error"]
                .as_str()
                .unwrap()
                .contains(&format!("child {name}")),
            "{name}"
        );
    }
    ok(&["verify", "--data", &p]);
}

/// `repair` from a child streams the copy to `tmp/`, hashed on the way: a
/// damaged pcap segment of several MiB (many 1 MiB buffers) is put back
/// byte for byte from a serving child, after two hostile children were
/// asked first and refused: one announcing 512 MiB of garbage (refused at
/// its header), one sending the segment with a byte changed (refused at its
/// hash). The damaged file stays as it was until the good copy, and no
/// temporary file is left.
#[test]
fn repair_streams_a_damaged_segment_from_a_serving_child_past_hostile_ones() {
    let (_c, c) = new_node(1601);
    let (_p, p) = new_node(3601);
    config_set(&c, "store.segment_target_bytes", &(16u64 << 20).to_string());
    let work = tempfile::tempdir().unwrap();
    let capture = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &capture, 40, 3600);
    ok(&["ingest", "--data", &c, capture.to_str().unwrap()]);
    let port = free_port("127.0.0.2");
    link(
        &p,
        "p",
        &c,
        "c",
        &format!("https://127.0.0.2:{port}"),
        &["--pcap", "mirror"],
    );
    let sc = serve(&c, "127.0.0.2", port);
    ok(&["pull", "--data", &p]);
    ok(&["verify", "--data", &p]);
    // The largest segment at the parent: a pcap segment of several MiB.
    let largest = segment_files(&p)
        .into_iter()
        .max_by_key(|name| {
            std::fs::metadata(segment_path(&p, name))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .unwrap();
    let path = segment_path(&p, &largest);
    let original = std::fs::read(&path).unwrap();
    assert!(original.len() > 3 << 20, "{} bytes", original.len());
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x10;
    std::fs::write(&path, &damaged).unwrap();

    // Two hostile children, asked first.
    let garbage = vec![0x5a_u8; 8192];
    let junk = fake_child(
        "127.0.0.20",
        1601,
        &original,
        frame_of(&original, 1 << 29, &garbage),
    );
    let mut flipped = original.clone();
    flipped[original.len() / 3] ^= 1;
    let liar = fake_child(
        "127.0.0.21",
        1601,
        &original,
        frame_of(&original, original.len() as u64, &flipped),
    );
    // Their link secrets come from a node of their own (a plain link
    // changes the serving side's config).
    let (_d, d) = new_node(1602);
    for (name, ip, port) in [("junk", "127.0.0.20", junk), ("liar", "127.0.0.21", liar)] {
        link(
            &p,
            &format!("p-{name}"),
            &d,
            name,
            &format!("http://{ip}:{port}"),
            &[],
        );
    }
    let out = run(&[
        "repair", "--data", &p, "--from", "junk", "--from", "liar", "--from", "c",
    ]);
    sc.stop();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("repaired {largest}")) && text.contains("from child c"),
        "{text}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), original);
    ok(&["verify", "--data", &p]);
    assert_eq!(
        std::fs::read_dir(Path::new(&p).join("tmp"))
            .unwrap()
            .count(),
        0
    );

    // Only hostile children: each refusal is named, the damaged file is
    // left as it was, and nothing is left in tmp/.
    std::fs::write(&path, &damaged).unwrap();
    let out = run(&["repair", "--data", &p, "--from", "junk", "--from", "liar"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains(&format!("NOT repaired {largest}")), "{text}");
    assert!(
        text.contains("child junk") && text.contains("does not start with a segment header"),
        "{text}"
    );
    assert!(
        text.contains("child liar") && text.contains("failed verification"),
        "{text}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
    assert_eq!(
        std::fs::read_dir(Path::new(&p).join("tmp"))
            .unwrap()
            .count(),
        0
    );
}

/// A segment file's path in a data directory.
fn segment_path(data: &str, name: &str) -> std::path::PathBuf {
    Path::new(data).join("segments").join(&name[..2]).join(name)
}
