//! Incarnations: a roo reinstalled at the same management address gets a new
//! sensor id; a parent holding both keeps them apart in the CLI, the peer
//! API's summary and the export, and links each to the other.

use crate::export::{Db, export};
use crate::sync::{free_port, serve};
use crate::util::*;
use crate::web::{Http, PASSWORD, add_user, serve_ui};

fn sensor_id_at(ip: &str, date: &str) -> u32 {
    ok(&["sensor-id", "--ip", ip, "--date", date])
        .trim()
        .parse()
        .unwrap()
}

/// A roo node of incarnation `id` at `ip`, installed at `installed`, with
/// `capture` ingested, as an archive bundle imported into `parent`.
fn roo_into(parent: &str, id: u32, ip: &str, installed: &str, capture: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("roo").display().to_string();
    ok(&[
        "init",
        "--data",
        &data,
        "--sensor-id",
        &id.to_string(),
        "--manager-ip",
        ip,
        "--installed",
        installed,
        "--name",
        &format!("roo installed {installed}"),
    ]);
    ok(&[
        "ingest",
        "--data",
        &data,
        fixture(capture).to_str().unwrap(),
    ]);
    let bundle = dir.path().join("roo.lumpyarc");
    ok(&[
        "archive",
        "create",
        "--data",
        &data,
        "--sensor",
        &id.to_string(),
        bundle.to_str().unwrap(),
    ]);
    ok(&[
        "archive",
        "import",
        "--data",
        parent,
        bundle.to_str().unwrap(),
    ]);
}

#[test]
fn two_incarnations_at_one_address_stay_apart_and_name_each_other() {
    let ip = "10.20.30.40";
    let first = sensor_id_at(ip, "2023-11-14");
    let second = sensor_id_at(ip, "2025-06-15");
    let elsewhere = sensor_id_at("10.99.0.1", "2024-01-01");
    assert_ne!(first, second);
    assert_eq!(
        (first >> 8) & 0xff,
        (second >> 8) & 0xff,
        "same address hash"
    );
    let (_p, p) = new_node(1);
    roo_into(&p, first, ip, "1700000000", "honeynet.pcap");
    roo_into(&p, second, ip, "1750000000", "sebek.pcap");
    roo_into(&p, elsewhere, "10.99.0.1", "1704067200", "vlan.pcap");

    // CLI: each incarnation with its install time, address and neighbours.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["sensors", "--data", &p, "--json"])).unwrap();
    let find = |id: u32| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["sensor_id"] == id)
            .unwrap_or_else(|| panic!("sensor {id} missing: {v:#}"))
            .clone()
    };
    let (a, b, c) = (find(first), find(second), find(elsewhere));
    assert_eq!(a["install_sec"], 1700000000);
    assert_eq!(b["install_sec"], 1750000000);
    assert_eq!(a["manage_ip"], ip);
    assert_eq!(b["manage_ip"], ip);
    assert_eq!(a["earlier"], serde_json::json!([]));
    assert_eq!(a["later"][0]["sensor_id"], second);
    assert_eq!(a["later"][0]["by"], "address");
    assert_eq!(b["earlier"][0]["sensor_id"], first);
    assert_eq!(b["later"], serde_json::json!([]));
    assert_eq!(c["earlier"], serde_json::json!([]));
    assert_eq!(c["later"], serde_json::json!([]));
    let text = ok(&["sensors", "--data", &p]);
    assert!(
        text.contains(&format!(
            "later incarnation at this address: sensor {second}"
        )),
        "{text}"
    );
    // status says it too.
    let text = ok(&["status", "--data", &p]);
    assert!(text.contains(&format!("reinstalled as {second}")), "{text}");
    assert!(text.contains(&format!("reinstall of {first}")), "{text}");
    let st: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &p, "--json"])).unwrap();
    let in_status = st["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sensor_id"] == second)
        .unwrap()["incarnation"]
        .clone();
    assert_eq!(in_status["earlier"][0]["sensor_id"], first);
    // Their flows stay apart.
    assert!(!flows_json(&p, &["--sensor", &first.to_string()]).is_empty());
    assert!(!flows_json(&p, &["--sensor", &second.to_string()]).is_empty());

    // Peer API: the summary carries each incarnation.
    let secret = ok(&["peer", "add", "--data", &p, "up"]);
    let port = free_port("127.0.0.61");
    let served = serve(&p, "127.0.0.61", port);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let key = lumpy::sync::auth::LinkToken::parse(&secret).unwrap().secret;
    let header = lumpy::sync::auth::sign(&key, "GET", "/v1/summary", now, b"").unwrap();
    let body = tool(
        "curl",
        &[
            "-sfk",
            "-H",
            &format!("x-lumpy-auth: {header}"),
            &format!("https://127.0.0.61:{port}/v1/summary"),
        ],
    );
    served.stop();
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    let inc = |id: u32| {
        summary["sensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sensor_id"] == id)
            .unwrap()["incarnation"]
            .clone()
    };
    assert_eq!(inc(first)["install_sec"], 1700000000);
    assert_eq!(inc(first)["later"], serde_json::json!([second]));
    assert_eq!(inc(second)["earlier"], serde_json::json!([first]));
    assert_eq!(inc(second)["manage_ip"], ip);

    // Web UI: the sensor overview names both incarnations and links them.
    add_user(&p, "analyst", PASSWORD);
    let (api_port, ui_port) = (free_port("127.0.0.62"), free_port("127.0.0.63"));
    let served = serve_ui(&p, "127.0.0.62", api_port, "127.0.0.63", ui_port);
    let http = Http::new();
    let base = format!("http://127.0.0.63:{ui_port}");
    let cookie = http
        .login(&base, "analyst", PASSWORD)
        .unwrap_or_else(|a| panic!("login: {a:?}"));
    let overview = http
        .get(&format!("{base}/api/v1/sensors"), Some(&cookie))
        .json();
    served.stop();
    let ui = |id: u32| {
        overview["sensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sensor_id"] == id)
            .unwrap_or_else(|| panic!("sensor {id} not in the overview: {overview:#}"))
            .clone()
    };
    assert_eq!(ui(first)["install_sec"], 1700000000);
    assert_eq!(ui(first)["manage_ip"], ip);
    assert_eq!(ui(first)["later"][0]["sensor_id"], second);
    assert_eq!(ui(second)["earlier"][0]["sensor_id"], first);
    assert_eq!(ui(second)["later"], serde_json::json!([]));
    assert_eq!(ui(elsewhere)["earlier"], serde_json::json!([]));

    // Export: two distinct sensor rows.
    let db = Db::new("incarn");
    export(&p, &db.url(), &[]);
    let rows = db.rows(&format!(
        "SELECT sensor_id, install_sec, name FROM sensor WHERE sensor_id IN ({first}, {second}) ORDER BY install_sec"
    ));
    assert_eq!(
        rows,
        [
            [
                first.to_string(),
                "1700000000".into(),
                "roo installed 1700000000".into()
            ],
            [
                second.to_string(),
                "1750000000".into(),
                "roo installed 1750000000".into()
            ],
        ]
    );
}
