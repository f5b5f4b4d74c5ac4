//! `verify`: a clean store passes; damage is named by segment id and path.

use std::path::Path;

use crate::util::*;

fn ingested_node() -> (tempfile::TempDir, String) {
    let (d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    (d, data)
}

fn segment_path(data: &str, name: &str) -> std::path::PathBuf {
    Path::new(data).join("segments").join(&name[..2]).join(name)
}

#[test]
fn a_clean_store_verifies() {
    let (_d, data) = ingested_node();
    let out = ok(&["verify", "--data", &data]);
    assert!(out.contains("no problems"), "{out}");
}

#[test]
fn segment_files_are_named_by_their_blake3() {
    let (_d, data) = ingested_node();
    for name in segment_files(&data) {
        let bytes = std::fs::read(segment_path(&data, &name)).unwrap();
        assert_eq!(blake3::hash(&bytes).to_hex().to_string(), name);
    }
}

#[test]
fn a_flipped_bit_is_reported_with_id_and_path() {
    let (_d, data) = ingested_node();
    let names = segment_files(&data);
    for (i, name) in names.iter().enumerate().take(5) {
        let p = segment_path(&data, name);
        let mut bytes = std::fs::read(&p).unwrap();
        let at = (i * 7919 + 13) % bytes.len();
        bytes[at] ^= 1 << (i % 8);
        std::fs::write(&p, &bytes).unwrap();
        let out = run(&["verify", "--data", &data]);
        assert_eq!(out.status.code(), Some(1));
        let text = stdout(&out);
        assert!(text.contains(name.as_str()), "{text}");
        assert!(text.contains(p.to_str().unwrap()), "{text}");
        bytes[at] ^= 1 << (i % 8);
        std::fs::write(&p, &bytes).unwrap();
    }
    ok(&["verify", "--data", &data]);
}

#[test]
fn a_missing_segment_is_reported() {
    let (_d, data) = ingested_node();
    let name = segment_files(&data).pop().unwrap();
    std::fs::remove_file(segment_path(&data, &name)).unwrap();
    let out = run(&["verify", "--data", &data]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&name) && stdout(&out).contains("missing"));
}

#[test]
fn a_truncated_segment_is_reported() {
    let (_d, data) = ingested_node();
    let name = segment_files(&data).remove(0);
    let p = segment_path(&data, &name);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&["verify", "--data", &data]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&name));
}

#[test]
fn verify_deep_says_what_it_checked_beyond_verify() {
    let (_d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    let plain = ok(&["verify", "--data", &data]);
    assert!(!plain.contains("deep:"), "{plain}");
    let deep = ok(&["verify", "--data", &data, "--deep"]);
    let line = deep
        .lines()
        .find(|l| l.starts_with("deep: decoded the packets of "))
        .unwrap_or_else(|| panic!("{deep}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
    assert_eq!(
        numbers[0],
        status["pcap_segments"].as_u64().unwrap(),
        "{line}"
    );
    assert!(numbers[1] > 0, "{line}");
}
