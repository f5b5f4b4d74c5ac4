//! The command line as an operator meets it: sensor ids, init, help, config.

use crate::util::*;

#[test]
fn sensor_id_follows_the_makesensor_id_rule() {
    // 2026-11-26 is day 20783; hash(10.0.0.1) = 167772161 * 241 mod 251 = 40.
    let base = 20783u32 * 65536 + 40 * 256;
    for _ in 0..4 {
        let out = ok(&["sensor-id", "--ip", "10.0.0.1", "--date", "2026-11-26"]);
        let id: u32 = out.trim().parse().expect("decimal id");
        assert!(
            (base..base + 256).contains(&id),
            "{id} is not in {base}..{}",
            base + 256
        );
        assert_eq!(id & 0x8000_0000, 0);
    }
    let bad = run(&["sensor-id", "--ip", "10.0.0.300"]);
    assert!(!bad.status.success());
}

#[test]
fn reads_hw_sensor_id_in_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("HwSENSOR_ID");
    std::fs::write(&f, "81.47.40.7\n").unwrap();
    assert_eq!(
        ok(&["sensor-id", "--hw-file", f.to_str().unwrap()]).trim(),
        "1362044935"
    );
    std::fs::write(&f, "1362044935").unwrap();
    assert_eq!(
        ok(&["sensor-id", "--hw-file", f.to_str().unwrap()]).trim(),
        "1362044935"
    );
}

#[test]
fn init_refuses_a_different_incarnation_and_changes_nothing() {
    let (_d, data) = new_node(1234);
    let before = segment_files(&data);
    let again = ok(&["init", "--data", &data, "--sensor-id", "1234"]);
    assert!(again.contains("already"), "{again}");
    let out = run(&["init", "--data", &data, "--sensor-id", "999"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("1234") && err.contains("999"), "{err}");
    assert_eq!(segment_files(&data), before);
    let status = ok(&["status", "--data", &data, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["sensor_id"], 1234);
}

#[test]
fn init_from_a_honeywall_conf_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("HwSENSOR_ID"), "0.1.2.3\n").unwrap();
    std::fs::write(conf.join("HwLAN_IP_RANGE"), "192.0.2.0/24\n").unwrap();
    let data = dir.path().join("n").display().to_string();
    ok(&["init", "--data", &data, "--hw-conf", conf.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
    assert_eq!(v["sensor_id"], 0x0001_0203);
    assert!(ok(&["config", "show", "--data", &data]).contains("192.0.2.0/24"));
    // Only HwMANAGE_IP: an id is generated with that address's hash.
    let conf2 = dir.path().join("conf2");
    std::fs::create_dir(&conf2).unwrap();
    std::fs::write(conf2.join("HwMANAGE_IP"), "10.0.0.1\n").unwrap();
    let data2 = dir.path().join("n2").display().to_string();
    ok(&[
        "init",
        "--data",
        &data2,
        "--hw-conf",
        conf2.to_str().unwrap(),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &data2, "--json"])).unwrap();
    assert_eq!((v["sensor_id"].as_u64().unwrap() >> 8) & 0xff, 40);
}

#[test]
fn manual_ids_with_bit_31_are_accepted() {
    let (_d, data) = new_node(0x8000_0005);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
    assert_eq!(v["sensor_id"], 0x8000_0005u32);
}

#[test]
fn commands_on_a_missing_node_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nothing").display().to_string();
    let out = run(&["status", "--data", &data]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lumpy init"), "{}", stderr(&out));
}

#[test]
fn config_set_validates() {
    let (_d, data) = new_node(77);
    ok(&["config", "set", "--data", &data, "store.zstd_level", "3"]);
    assert!(ok(&["config", "show", "--data", &data]).contains("zstd_level = 3"));
    let out = run(&[
        "config",
        "set",
        "--data",
        &data,
        "capture.honeypot_nets",
        "nonsense",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("capture.honeypot_nets"));
    assert!(ok(&["config", "show", "--data", &data]).contains("zstd_level = 3"));
}

/// Read commands beside a running `serve` (which holds the store) read the
/// mirror on their own, without touching its schema.
#[test]
fn read_commands_work_beside_a_running_serve() {
    use crate::sync::{free_port, serve};
    let (_d, data) = new_node(4071);
    ingest_fixture(&data, "honeynet.pcap");
    let flows = flows_json(&data, &[]);
    assert!(!flows.is_empty());
    let port = free_port("127.0.0.71");
    let served = serve(&data, "127.0.0.71", port);
    assert_eq!(flows_json(&data, &[]), flows);
    let busy = run(&["verify", "--data", &data]);
    assert_eq!(busy.status.code(), Some(2));
    assert!(stderr(&busy).contains("in use"), "{}", stderr(&busy));
    served.stop();
    ok(&["verify", "--data", &data]);
}
