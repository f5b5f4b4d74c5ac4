//! Flood-proof ingest (issue 10): more concurrent flows than the open-flow
//! table's budget, kill -9 in the middle of a flood, and the table carried
//! from one run to the next through its checkpoint and the pcap segments
//! after it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

#[path = "../benches/common/traffic.rs"]
mod traffic;

use traffic::Class;

/// A spoofed-source SYN flood of `packets` packets, 33,000 a second of
/// capture time from `start_sec` (all within one flow timeout when
/// `packets` < 2,900,000).
fn flood(dst: &Path, packets: u64, start_sec: u32) -> String {
    traffic::write_capture(dst, Class::SynFlood, packets, 33_000, start_sec, 7).expect("write");
    dst.to_str().expect("utf-8").to_string()
}

/// Packets counted in the node's flows, each direction.
fn packets_in_flows(flows: &[serde_json::Value]) -> u64 {
    flows
        .iter()
        .map(|f| {
            f["src"]["packets"].as_u64().unwrap_or(0) + f["dst"]["packets"].as_u64().unwrap_or(0)
        })
        .sum()
}

fn evicted_in_status(data: &str) -> u64 {
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", data, "--json"])).expect("status JSON");
    status["sensors"][0]["flows_evicted"]
        .as_u64()
        .expect("status names the origin's evicted flows")
}

/// A node whose open-flow table holds at most 16,384 flows (1 MiB).
fn small_table_node(id: u32) -> (tempfile::TempDir, String) {
    let (d, data) = new_node(id);
    config_set(&data, "capture.flow_table_mib", "1");
    (d, data)
}

#[test]
fn more_flows_than_the_budget_are_evicted_counted_and_every_packet_counted_once() {
    let work = tempfile::tempdir().unwrap();
    let capture = flood(&work.path().join("flood.pcap"), 40_000, 1_700_000_000);
    let (_d, data) = small_table_node(4301);
    ok(&["ingest", "--data", &data, &capture]);
    ok(&["verify", "--data", &data]);
    let flows = flows_json(&data, &["--limit", "1000000"]);
    assert_eq!(
        packets_in_flows(&flows),
        40_000,
        "every packet in exactly one flow"
    );
    let evicted = evicted_in_status(&data);
    // 40,000 one-packet flows, none timed out, 16,384 at most open at once.
    assert!(evicted >= 40_000 - 16_384, "only {evicted} evicted");
    let marked = flows.iter().filter(|f| f["evicted"] == true).count() as u64;
    assert_eq!(marked, evicted, "each evicted flow's last row says so");
    assert!(
        flows
            .iter()
            .filter(|f| f["evicted"] == true)
            .all(|f| f["closed"] == true),
        "an evicted flow is closed"
    );
    // The human status line says it too.
    let text = ok(&["status", "--data", &data]);
    assert!(text.contains(&format!("{evicted} flows evicted")), "{text}");

    // With the default budget the same capture evicts nothing and makes
    // the same flows (same endpoints, same packets).
    let (_d2, roomy) = new_node(4301);
    ok(&["ingest", "--data", &roomy, &capture]);
    assert_eq!(evicted_in_status(&roomy), 0);
    let roomy_flows = flows_json(&roomy, &["--limit", "1000000"]);
    assert_eq!(packets_in_flows(&roomy_flows), 40_000);
    assert!(
        roomy_flows
            .iter()
            .all(|f| f.get("evicted").is_none_or(|e| e == false))
    );
}

#[test]
fn kill_9_during_a_flood_then_rerun_gives_the_uninterrupted_result() {
    let work = tempfile::tempdir().unwrap();
    let capture = flood(&work.path().join("flood.pcap"), 120_000, 1_700_000_000);
    let (_r, reference) = small_table_node(4302);
    ok(&["ingest", "--data", &reference, &capture]);
    let (_k, killed) = small_table_node(4302);
    for delay in [150u64, 400, 700, 250, 1000] {
        let mut child = lumpy()
            .args(["ingest", "--data", &killed, &capture])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let v = run(&["verify", "--data", &killed]);
        assert!(v.status.success(), "verify after kill -9: {}", stdout(&v));
    }
    ok(&["ingest", "--data", &killed, &capture]);
    ok(&["verify", "--data", &killed]);
    let all = ["--limit", "1000000"];
    let got = flows_json(&killed, &all);
    assert_eq!(
        packets_in_flows(&got),
        120_000,
        "no packet lost or counted twice"
    );
    // The open-flow table rebuilt after each kill (checkpoint + replay of
    // the committed pcap segments) evicts exactly what the uninterrupted
    // run evicted: the same flows, ids and rows.
    assert_eq!(got, flows_json(&reference, &all));
    assert_eq!(evicted_in_status(&killed), evicted_in_status(&reference));
}

#[test]
fn open_flows_carry_over_from_one_run_to_the_next() {
    let work = tempfile::tempdir().unwrap();
    // The same sources again 10 s later: their flows are still open when
    // the second file starts, and it brings more than the table holds.
    let first = flood(&work.path().join("a.pcap"), 10_000, 1_700_000_000);
    let second = flood(&work.path().join("b.pcap"), 30_000, 1_700_000_010);
    let (_o, one_run) = small_table_node(4303);
    ok(&["ingest", "--data", &one_run, &first, &second]);
    let (_t, two_runs) = small_table_node(4303);
    ok(&["ingest", "--data", &two_runs, &first]);
    let checkpoints: Vec<_> = std::fs::read_dir(Path::new(&two_runs).join("flowstate"))
        .expect("a checkpoint folder after the first run")
        .flatten()
        .collect();
    assert!(!checkpoints.is_empty(), "the first run leaves a checkpoint");
    ok(&["ingest", "--data", &two_runs, &second]);
    let all = ["--limit", "1000000"];
    let flows = flows_json(&two_runs, &all);
    assert_eq!(packets_in_flows(&flows), 40_000);
    assert!(
        flows.iter().any(|f| f["src"]["packets"] == 2),
        "flows continued across the two runs"
    );
    assert_eq!(flows, flows_json(&one_run, &all));

    // A checkpoint that is damaged is refused, not trusted: the next run
    // says so and goes on; nothing stored is lost.
    for c in std::fs::read_dir(Path::new(&two_runs).join("flowstate"))
        .unwrap()
        .flatten()
    {
        std::fs::write(c.path(), b"not a checkpoint").unwrap();
    }
    let third = flood(&work.path().join("c.pcap"), 1_000, 1_700_000_020);
    let out = run(&["ingest", "--data", &two_runs, &third]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checkpoint unusable"),
        "{}",
        stderr(&out)
    );
    ok(&["verify", "--data", &two_runs]);
    assert_eq!(packets_in_flows(&flows_json(&two_runs, &all)), 41_000);
}
