//! Offline archive bundles: round trip with no network, idempotent and
//! resumable import, damage and foreign incarnations refused.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

fn stored_bytes(data: &str) -> u64 {
    segment_files(data)
        .iter()
        .map(|n| {
            std::fs::metadata(Path::new(data).join("segments").join(&n[..2]).join(n))
                .unwrap()
                .len()
        })
        .sum()
}

/// `lumpy archive create` of `sensor`'s data at `data` into `bundle`.
fn create_bundle(data: &str, sensor: u32, bundle: &Path) {
    ok(&[
        "archive",
        "create",
        "--data",
        data,
        "--sensor",
        &sensor.to_string(),
        bundle.to_str().unwrap(),
    ]);
}

/// A roo `sensor` holding fixtures/honeynet.pcap, and its bundle in a
/// scratch directory (dropping it removes both).
struct BundledRoo {
    _node: tempfile::TempDir,
    data: String,
    work: tempfile::TempDir,
    bundle: std::path::PathBuf,
}

fn bundled_roo(sensor: u32) -> BundledRoo {
    let (node, data) = new_node(sensor);
    ingest_fixture(&data, "honeynet.pcap");
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("roo.lumpyarc");
    create_bundle(&data, sensor, &bundle);
    BundledRoo {
        _node: node,
        data,
        work,
        bundle,
    }
}

#[test]
fn a_bundle_round_trips_to_a_second_node_with_no_network() {
    let roo = bundled_roo(3001);
    let (a, work, bundle) = (roo.data.as_str(), &roo.work, &roo.bundle);
    let size = std::fs::metadata(bundle).unwrap().len();
    assert!(
        size as f64 <= stored_bytes(a) as f64 * 1.01,
        "{size} bytes for {} stored",
        stored_bytes(a)
    );
    assert!(ok(&["archive", "verify", bundle.to_str().unwrap()]).contains("intact"));
    let (_b, b) = new_node(4001);
    ok(&["archive", "import", "--data", &b, bundle.to_str().unwrap()]);
    assert_eq!(sensor_root(&b, 3001), sensor_root(a, 3001));
    assert_eq!(flows_json(&b, &["--sensor", "3001"]), flows_json(a, &[]));
    // The pcap came along: the archive node serves it with the roo gone.
    let f = flows_json(&b, &["--sensor", "3001", "--proto", "tcp", "--limit", "1"]);
    let flow = &f[0]["flow_id"];
    assert!(
        flow_pcap(a, 3001, flow, &work.path().join("x.pcap"))
            == flow_pcap(&b, 3001, flow, &work.path().join("y.pcap"))
    );
    // Twice changes nothing.
    let segs = segment_files(&b);
    let again = ok(&["archive", "import", "--data", &b, bundle.to_str().unwrap()]);
    assert!(again.contains("0 segments added"), "{again}");
    assert_eq!(segment_files(&b), segs);
    assert_eq!(sensor_root(&b, 3001), sensor_root(a, 3001));
    ok(&["verify", "--data", &b]);
}

#[test]
fn a_damaged_bundle_is_refused_naming_the_segment_and_nothing_changes() {
    let roo = bundled_roo(3002);
    let (work, bundle) = (&roo.work, &roo.bundle);
    let mut bytes = std::fs::read(bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    std::fs::write(bundle, &bytes).unwrap();
    let v = run(&["archive", "verify", bundle.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(2));
    assert!(
        stderr(&v).contains("segment") && stderr(&v).contains("damaged"),
        "{}",
        stderr(&v)
    );
    let (_b, b) = new_node(4002);
    let segs = segment_files(&b);
    let i = run(&["archive", "import", "--data", &b, bundle.to_str().unwrap()]);
    assert_eq!(i.status.code(), Some(2));
    assert_eq!(segment_files(&b), segs);
    let garbage = work.path().join("garbage");
    std::fs::write(&garbage, b"not a bundle at all").unwrap();
    assert!(
        stderr(&run(&["archive", "verify", garbage.to_str().unwrap()]))
            .contains("not a lumpy archive")
    );
}

#[test]
fn a_bundle_of_another_incarnation_is_refused() {
    let roo = bundled_roo(3003);
    let (work, bundle) = (&roo.work, &roo.bundle);
    // Another install that got the same id, with its own data.
    let other = work.path().join("other").display().to_string();
    ok(&[
        "init",
        "--data",
        &other,
        "--sensor-id",
        "3003",
        "--installed",
        "1600000000",
    ]);
    ingest_fixture(&other, "vlan.pcap");
    let r = run(&[
        "archive",
        "import",
        "--data",
        &other,
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("another incarnation"), "{}", stderr(&r));
}

#[test]
fn kill_9_during_import_then_a_rerun_completes_it() {
    let (_a, a) = new_node(3004);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 40, 1000);
    config_set(&a, "store.segment_target_bytes", "262144");
    ok(&["ingest", "--data", &a, big.to_str().unwrap()]);
    let bundle = work.path().join("big.lumpyarc");
    create_bundle(&a, 3004, &bundle);
    let (_b, b) = new_node(4004);
    for delay in [20u64, 60, 150] {
        let mut child = lumpy()
            .args(["archive", "import", "--data", &b, bundle.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        ok(&["verify", "--data", &b]);
    }
    ok(&["archive", "import", "--data", &b, bundle.to_str().unwrap()]);
    assert_eq!(sensor_root(&b, 3004), sensor_root(&a, 3004));
    assert_eq!(flows_json(&b, &["--sensor", "3004"]), flows_json(&a, &[]));
}

#[test]
fn a_decommissioned_roos_pcap_outlives_it_byte_for_byte() {
    use crate::sync::{free_port, link, serve};
    let (a_dir, a) = new_node(3005);
    ingest_fixture(&a, "honeynet.pcap");
    let (_l, l) = new_node(4005);
    let pa = free_port("127.0.0.21");
    link(&l, "l", &a, "roo", &format!("https://127.0.0.21:{pa}"), &[]);
    // Before: the roo's own pcap of every flow.
    let work = tempfile::tempdir().unwrap();
    let flows = flows_json(&a, &[]);
    let mut before = Vec::new();
    for f in &flows {
        let id = f["flow_id"].to_string();
        let p = work.path().join(format!("before-{id}.pcap"));
        if let Some(bytes) = try_flow_pcap(&a, 3005, &id, &p) {
            before.push((id, bytes));
        }
    }
    assert!(before.len() > 100, "{} flows with pcap", before.len());
    let sa = serve(&a, "127.0.0.21", pa);
    ok(&["pull", "--data", &l]);
    let out = ok(&["decommission", "--data", &l, "--sensor", "3005"]);
    assert!(out.contains("decommissioned"), "{out}");
    sa.stop();
    // The roo is gone.
    drop(a_dir);
    assert!(!Path::new(&a).exists());
    for (id, bytes) in &before {
        let p = work.path().join(format!("after-{id}.pcap"));
        assert!(
            &flow_pcap(&l, 3005, id, &p) == bytes,
            "flow {id} differs after decommission"
        );
    }
    let s = sensor_status(&l, 3005).unwrap();
    assert_eq!(s["decommissioned"], true);
    assert_eq!(s["silent"], false);
    ok(&["verify", "--data", &l]);
    // Walleye's sensor.state says so, and still does in a mirror rebuilt
    // from the segments (whose sensor records say 'online').
    assert_eq!(walleye_state(&l, 3005), "offline");
    for f in ["mirror.sqlite", "mirror.sqlite-wal", "mirror.sqlite-shm"] {
        let _ = std::fs::remove_file(Path::new(&l).join(f));
    }
    // The next open rebuilds it (status would only show the lag).
    ok(&["flows", "--data", &l, "--limit", "1"]);
    assert_eq!(walleye_state(&l, 3005), "offline");
    assert_eq!(walleye_state(&l, 4005), "online");
}

/// `sensor.state` of `sensor` in the node's mirror.
fn walleye_state(data: &str, sensor: u32) -> String {
    crate::export::mirror(data)
        .query_row(
            "SELECT state FROM sensor WHERE sensor_id = ?1",
            [sensor],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn decommission_refuses_while_anything_is_missing() {
    use crate::sync::{free_port, link, serve};
    let (_a, a) = new_node(3006);
    ingest_fixture(&a, "honeynet.pcap");
    let (_l, l) = new_node(4006);
    let pa = free_port("127.0.0.22");
    link(&l, "l", &a, "roo", &format!("https://127.0.0.22:{pa}"), &[]);
    let sa = serve(&a, "127.0.0.22", pa);
    ok(&["pull", "--data", &l]);
    sa.stop();
    // The roo is unreachable: its pcap cannot be fetched, so nothing is marked.
    let out = run(&["decommission", "--data", &l, "--sensor", "3006"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    let s = sensor_status(&l, 3006).unwrap();
    assert_eq!(s["decommissioned"], false);
    // Resumable: with the roo back, a re-run completes it.
    let sa = serve(&a, "127.0.0.22", pa);
    ok(&["decommission", "--data", &l, "--sensor", "3006"]);
    sa.stop();
}

#[test]
fn a_legacy_honeywall_pcap_tree_becomes_a_sensor_of_its_own() {
    let (_l, l) = new_node(4007);
    let tree = fixture("honeywall/var/log/pcap");
    let out = ok(&[
        "import",
        "legacy",
        "--data",
        &l,
        "--sensor-id",
        "0.18.214.135",
        "--pcap-dir",
        tree.to_str().unwrap(),
    ]);
    // 0.18.214.135 is the dotted form of 1234567.
    assert!(out.contains("sensor 1234567"), "{out}");
    let flows = flows_json(&l, &["--sensor", "1234567"]);
    assert!(!flows.is_empty());
    assert!(flows_json(&l, &["--sensor", "4007"]).is_empty());
    // Its pcap is served here, and the import is idempotent.
    flow_pcap(&l, 1234567, &flows[0]["flow_id"], Path::new("/dev/null"));
    let segs = segment_files(&l);
    ok(&[
        "import",
        "legacy",
        "--data",
        &l,
        "--sensor-id",
        "1234567",
        "--pcap-dir",
        tree.to_str().unwrap(),
    ]);
    assert_eq!(segment_files(&l), segs);
    let s = sensor_status(&l, 1234567).unwrap();
    assert_eq!(s["hops"], 0);
    let own = run(&[
        "import",
        "legacy",
        "--data",
        &l,
        "--sensor-id",
        "4007",
        "--pcap-dir",
        tree.to_str().unwrap(),
    ]);
    assert_eq!(own.status.code(), Some(2));
}
