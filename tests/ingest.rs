//! Ingest of real captures: every format and link type, idempotence, the
//! Honeywall layout, bad input, follow mode and kill -9.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

/// Packets tcpdump reads from a file (one output line each).
fn tcpdump_count(path: &Path) -> u64 {
    let out = std::process::Command::new("tcpdump")
        .args(["-nn", "-q", "-r"])
        .arg(path)
        .output()
        .expect("tcpdump is required (the README's test command installs it)");
    String::from_utf8_lossy(&out.stdout).lines().count() as u64
}

fn packets(data: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", data, "--json"])).unwrap();
    v["packets"].as_u64().unwrap()
}

#[test]
fn every_capture_format_and_link_type_is_read_whole() {
    for name in [
        "honeynet.pcap",
        "honeynet-nsec.pcap",
        "honeynet.pcapng",
        "bigendian.pcap",
        "vlan.pcap",
        "qinq.pcap",
        "cooked.pcap",
        "cooked2.pcap",
        "rawip.pcap",
        "null.pcap",
    ] {
        let (_d, data) = new_node(42);
        let f = fixture(name);
        let out = ok(&["ingest", "--data", &data, f.to_str().unwrap()]);
        let expected = tcpdump_count(&f);
        assert!(expected > 0, "{name} has packets");
        assert_eq!(packets(&data), expected, "{name}: {out}");
        let flows = flows_json(&data, &[]);
        assert!(!flows.is_empty(), "{name} gives flows");
        let counted: u64 = flows
            .iter()
            .map(|f| f["src"]["packets"].as_u64().unwrap() + f["dst"]["packets"].as_u64().unwrap())
            .sum();
        assert!(
            counted > 0 && counted <= expected,
            "{name}: {counted} of {expected}"
        );
    }
}

#[test]
fn the_same_file_twice_adds_nothing() {
    let (d, data) = new_node(42);
    let f = fixture("honeynet.pcap");
    ok(&["ingest", "--data", &data, f.to_str().unwrap()]);
    let segs = segment_files(&data);
    let flows = flows_json(&data, &[]);
    let again = ok(&["ingest", "--data", &data, f.to_str().unwrap()]);
    assert!(again.contains("already ingested"), "{again}");
    // A copy under another name is the same capture.
    let copy = d.path().join("copy.pcap");
    std::fs::copy(&f, &copy).unwrap();
    let again = ok(&["ingest", "--data", &data, copy.to_str().unwrap()]);
    assert!(again.contains("already ingested"), "{again}");
    assert_eq!(segment_files(&data), segs);
    assert_eq!(flows_json(&data, &[]), flows);
    assert_eq!(packets(&data), tcpdump_count(&f));
}

#[test]
fn honeywall_layout_is_read_in_rotation_order() {
    let (_d, data) = new_node(42);
    let root = fixture("honeywall");
    ok(&["ingest", "--data", &data, root.to_str().unwrap()]);
    let mut expected = 0;
    for entry in walk(&root) {
        expected += tcpdump_count(&entry);
    }
    assert!(expected > 0);
    assert_eq!(packets(&data), expected);
}

#[test]
fn sensor_directories_attribute_packets() {
    let (_d, data) = new_node(42);
    let root = fixture("honeywall-multi");
    ok(&["ingest", "--data", &data, root.to_str().unwrap()]);
    let flows = flows_json(&data, &[]);
    assert!(!flows.is_empty());
    let ids: Vec<u64> = std::fs::read_dir(root.join("var/log/pcap"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("sensor_")?
                .parse()
                .ok()
        })
        .collect();
    assert!(ids.len() >= 2, "the fixture has two sensor directories");
    for id in &ids {
        let theirs = flows_json(&data, &["--sensor", &id.to_string()]);
        assert!(!theirs.is_empty(), "sensor {id} has flows");
    }
    assert!(
        flows
            .iter()
            .all(|f| ids.contains(&f["sensor_id"].as_u64().unwrap()))
    );
    assert!(flows_json(&data, &["--sensor", "42"]).is_empty());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if std::fs::metadata(&p).unwrap().len() > 0 {
            out.push(p);
        }
    }
    out
}

/// A copy cut short (at a packet boundary or inside a record) of a capture
/// already ingested adds nothing: read from its start it would store every
/// packet of it a second time.
#[test]
fn a_shorter_copy_of_an_ingested_capture_adds_nothing_and_says_why() {
    let (d, data) = new_node(42);
    let f = fixture("honeynet.pcap");
    ok(&["ingest", "--data", &data, f.to_str().unwrap()]);
    let segs = segment_files(&data);
    let flows = flows_json(&data, &[]);
    let bytes = std::fs::read(&f).unwrap();
    for cut in [bytes.len() / 3, bytes.len() - 1] {
        let copy = d.path().join(format!("copy-{cut}.pcap"));
        std::fs::write(&copy, &bytes[..cut]).unwrap();
        let out = run(&["ingest", "--data", &data, copy.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("copy-{cut}.pcap"))
                && err.contains("shorter copy")
                && err.contains(&format!("before the {} bytes", bytes.len())),
            "{err}"
        );
        assert_eq!(segment_files(&data), segs);
        assert_eq!(flows_json(&data, &[]), flows);
        assert_eq!(packets(&data), tcpdump_count(&f));
    }
}

#[test]
fn a_truncated_capture_keeps_whole_packets_and_names_the_cut() {
    let (_d, data) = new_node(42);
    let f = fixture("bad/truncated.pcap");
    let out = run(&["ingest", "--data", &data, f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("truncated.pcap") && err.contains("byte offset"),
        "{err}"
    );
    // The offset named is where the last whole packet ends.
    let bytes = std::fs::read(&f).unwrap();
    let mut at = 24usize;
    let mut whole = 0u64;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        if at + 16 + caplen > bytes.len() {
            break;
        }
        at += 16 + caplen;
        whole += 1;
    }
    assert!(
        err.contains(&format!("byte offset {at}")),
        "expected offset {at}: {err}"
    );
    assert_eq!(packets(&data), whole);
    assert!(run(&["verify", "--data", &data]).status.success());
}

#[test]
fn a_file_that_is_not_a_capture_is_refused_and_nothing_changes() {
    let (_d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    let segs = segment_files(&data);
    let flows = flows_json(&data, &[]);
    let f = fixture("bad/garbage.pcap");
    let out = run(&["ingest", "--data", &data, f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("garbage.pcap") && err.contains("refused"),
        "{err}"
    );
    assert_eq!(segment_files(&data), segs);
    assert_eq!(flows_json(&data, &[]), flows);
    let missing = run(&["ingest", "--data", &data, "/nonexistent/file.pcap"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/nonexistent/file.pcap"));
}

#[test]
fn an_unsupported_link_type_is_reported_by_number() {
    let (_d, data) = new_node(42);
    let f = fixture("bad/unsupported-linktype.pcap");
    let out = run(&["ingest", "--data", &data, f.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("link type 147"), "{err}");
    // The packets themselves are kept: nothing is lost.
    assert!(packets(&data) > 0);
}

#[test]
fn empty_and_header_only_files_are_fine() {
    let (_d, data) = new_node(42);
    for name in ["bad/empty.pcap", "bad/header-only.pcap"] {
        let f = fixture(name);
        let out = run(&["ingest", "--data", &data, f.to_str().unwrap()]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(text.contains(name.trim_start_matches("bad/")), "{text}");
    }
    assert_eq!(packets(&data), 0);
}

#[test]
fn kill_9_during_ingest_then_rerun_gives_the_uninterrupted_result() {
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 40, 100_000);
    let big = big.to_str().unwrap().to_string();
    // Reference: one uninterrupted run.
    let (_r, reference) = new_node(4242);
    ok(&["ingest", "--data", &reference, &big]);
    let (_k, killed) = new_node(4242);
    let mut delays = [40u64, 150, 300, 600, 90, 900].into_iter().cycle();
    for _ in 0..6 {
        let mut child = lumpy()
            .args(["ingest", "--data", &killed, &big])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delays.next().unwrap()));
        let _ = child.kill();
        let _ = child.wait();
        let v = run(&["verify", "--data", &killed]);
        assert!(v.status.success(), "verify after kill -9: {}", stdout(&v));
    }
    ok(&["ingest", "--data", &killed, &big]);
    ok(&["verify", "--data", &killed]);
    assert_eq!(flows_json(&killed, &[]), flows_json(&reference, &[]));
    assert_eq!(packets(&killed), packets(&reference));
    let reference_segs = segment_files(&reference);
    let killed_segs = segment_files(&killed);
    for s in &reference_segs {
        assert!(
            killed_segs.contains(s),
            "segment {s} of the uninterrupted run is missing"
        );
    }
}

#[test]
fn follow_ingests_rotating_files_as_they_complete() {
    let (d, data) = new_node(42);
    let spool = d.path().join("pcap");
    let hour = spool.join("1700000000");
    std::fs::create_dir_all(&hour).unwrap();
    // Rotation files of the fixture honeywall tree, fed in one by one.
    let mut logs: Vec<_> = walk(&fixture("honeywall"));
    logs.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        (p.parent().unwrap().to_path_buf(), name.len(), name)
    });
    let mut child = spawn_follow(&data, &spool);
    let mut expected = 0;
    for (i, log) in logs.iter().enumerate() {
        let name = if i == 0 {
            "log".to_string()
        } else {
            format!("log{i}")
        };
        std::fs::copy(log, hour.join(name)).unwrap();
        expected += tcpdump_count(log);
    }
    // The last file completes once it has settled; wait for all packets.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store_packets_readonly(&data) != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(store_packets_readonly(&data), expected);
    ok(&["verify", "--data", &data]);
}

/// Packets in the store, read while another lumpy may hold the index: the
/// segment headers are enough (item counts of pcap segments).
fn store_packets_readonly(data: &str) -> u64 {
    let mut total = 0;
    for name in segment_files(data) {
        let p = Path::new(data)
            .join("segments")
            .join(&name[..2])
            .join(&name);
        let Ok(b) = std::fs::read(&p) else { continue };
        if b.len() >= 64 && b[10] == 1 {
            total += u64::from_le_bytes(b[48..56].try_into().unwrap());
        }
    }
    total
}

/// The mirror's indexes, by name and definition.
fn mirror_indexes(data: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(Path::new(data).join("mirror.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'index' ORDER BY name",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_first_ingest_loads_the_mirror_in_bulk_and_leaves_every_index() {
    let (_e, empty) = new_node(43);
    ok(&["status", "--data", &empty]);
    let all = mirror_indexes(&empty);
    assert!(all.iter().any(|(n, _)| n == "src_ip_idx"), "{all:?}");
    // A first, one-shot ingest drops the secondary indexes while it loads
    // and builds them at the end; a second one keeps them throughout.
    let (_d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    assert_eq!(mirror_indexes(&data), all);
    ingest_fixture(&data, "vlan.pcap");
    assert_eq!(mirror_indexes(&data), all);
    // What a kill in the middle of a bulk load leaves (indexes dropped) is
    // mended by the next open.
    let conn = rusqlite::Connection::open(Path::new(&data).join("mirror.sqlite")).unwrap();
    conn.execute_batch("DROP INDEX dst_ip_idx; DROP INDEX dst_port_idx")
        .unwrap();
    drop(conn);
    ok(&["status", "--data", &data]);
    assert_eq!(mirror_indexes(&data), all);
}

/// `tool` (gzip or zstd) compresses `src` into `dst` as an operator's
/// logrotate would.
fn compress(tool: &str, src: &Path, dst: &Path) {
    let out = std::process::Command::new(tool)
        .args(["-c", "-q"])
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is required: {e}"));
    assert!(out.status.success(), "{tool} failed");
    std::fs::write(dst, out.stdout).unwrap();
}

#[test]
fn compressed_captures_ingest_as_the_plain_file_and_share_its_idempotence() {
    let d = tempfile::tempdir().unwrap();
    let plain = fixture("honeynet.pcap");
    let gz = d.path().join("honeynet.pcap.gz");
    let zst = d.path().join("honeynet.pcap.zst");
    compress("gzip", &plain, &gz);
    compress("zstd", &plain, &zst);
    let ng_gz = d.path().join("rotated.gz");
    compress("gzip", &fixture("honeynet.pcapng"), &ng_gz);

    let (_p, reference) = new_node(42);
    ok(&["ingest", "--data", &reference, plain.to_str().unwrap()]);
    let want = flows_json(&reference, &[]);
    let want_segs = segment_files(&reference);

    for first in [&gz, &zst] {
        let (_n, data) = new_node(42);
        let out = ok(&["ingest", "--data", &data, first.to_str().unwrap()]);
        assert!(!out.contains("already"), "{out}");
        assert_eq!(flows_json(&data, &[]), want, "{}", first.display());
        assert_eq!(segment_files(&data), want_segs, "same segments");
        // The same capture in any other form adds nothing.
        for again in [&plain, &gz, &zst] {
            let out = ok(&["ingest", "--data", &data, again.to_str().unwrap()]);
            assert!(out.contains("already ingested"), "{out}");
        }
        assert_eq!(segment_files(&data), want_segs);
    }
    // Plain first, compressed after: nothing new either.
    for again in [&gz, &zst] {
        let out = ok(&["ingest", "--data", &reference, again.to_str().unwrap()]);
        assert!(out.contains("already ingested"), "{out}");
    }
    assert_eq!(segment_files(&reference), want_segs);

    // pcapng inside gzip, recognised by content whatever the name.
    let (_g, data) = new_node(42);
    ok(&["ingest", "--data", &data, ng_gz.to_str().unwrap()]);
    assert_eq!(packets(&data), tcpdump_count(&fixture("honeynet.pcapng")));
}

#[test]
fn a_cut_compressed_capture_resumes_from_its_plain_prefix() {
    let d = tempfile::tempdir().unwrap();
    let plain = fixture("honeynet.pcap");
    let bytes = std::fs::read(&plain).unwrap();
    // The first half of the capture, cut inside a record.
    let half = d.path().join("half.pcap");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let gz = d.path().join("whole.pcap.gz");
    compress("gzip", &plain, &gz);
    let cut_gz = d.path().join("cut.pcap.gz");
    let gz_bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&cut_gz, &gz_bytes[..gz_bytes.len() / 2]).unwrap();

    let (_r, reference) = new_node(42);
    ok(&["ingest", "--data", &reference, plain.to_str().unwrap()]);

    // A cut .gz, or the plain half, is a truncated capture: its whole
    // packets are kept (exit 1); the whole .gz then goes on where it stopped
    // (offsets are offsets in the decompressed bytes).
    for cut in [&cut_gz, &half] {
        let (_n, data) = new_node(42);
        let out = run(&["ingest", "--data", &data, cut.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
        let after_cut = packets(&data);
        assert!(after_cut > 0 && after_cut < tcpdump_count(&plain));
        let out = ok(&["ingest", "--data", &data, gz.to_str().unwrap()]);
        assert!(!out.contains("already"), "{out}");
        assert_eq!(packets(&data), tcpdump_count(&plain), "{}", cut.display());
        // The same flows; a flow committed open at the cut has later row
        // versions (as with a plain file that grew), nothing else differs.
        let unversioned = |data: &str| {
            let mut v = flows_json(data, &[]);
            for f in &mut v {
                f.as_object_mut().unwrap().remove("version");
            }
            v
        };
        assert_eq!(unversioned(&data), unversioned(&reference));
        ok(&["verify", "--data", &data]);
    }
}

#[test]
fn follow_reads_compressed_rotations() {
    let (d, data) = new_node(42);
    let spool = d.path().join("pcap");
    let hour = spool.join("1700000000");
    std::fs::create_dir_all(&hour).unwrap();
    let mut child = spawn_follow(&data, &spool);
    // log.gz and log1.zst as logrotate leaves them, log2 still plain.
    let mut expected = 0;
    for (name, tool, src) in [
        ("log.gz", Some("gzip"), "honeynet.pcap"),
        ("log1.zst", Some("zstd"), "vlan.pcap"),
        ("log2", None, "cooked.pcap"),
    ] {
        let src = fixture(src);
        let tmp = hour.join(format!(".{name}.tmp"));
        match tool {
            Some(t) => compress(t, &src, &tmp),
            None => {
                std::fs::copy(&src, &tmp).unwrap();
            }
        }
        std::fs::rename(&tmp, hour.join(name)).unwrap();
        expected += tcpdump_count(&src);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while store_packets_readonly(&data) != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(store_packets_readonly(&data), expected);
    ok(&["verify", "--data", &data]);
}

#[test]
fn a_damaged_compressed_capture_is_reported_and_the_run_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let gz = d.path().join("bad.pcap.gz");
    compress("gzip", &fixture("honeynet.pcap"), &gz);
    let mut bytes = std::fs::read(&gz).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 256] {
        *b ^= 0xa5;
    }
    std::fs::write(&gz, &bytes).unwrap();
    let good = fixture("vlan.pcap");
    let (_n, data) = new_node(42);
    let out = run(&[
        "ingest",
        "--data",
        &data,
        gz.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bad.pcap.gz") && err.contains("damaged"),
        "{err}"
    );
    let kept = packets(&data);
    assert!(kept >= tcpdump_count(&good), "{kept}");
    assert!(kept < tcpdump_count(&good) + tcpdump_count(&fixture("honeynet.pcap")));
    ok(&["verify", "--data", &data]);
}

/// `lumpy ingest --follow SPOOL` on `data`, running until the test kills it.
fn spawn_follow(data: &str, spool: &Path) -> std::process::Child {
    lumpy()
        .args([
            "ingest",
            "--data",
            data,
            "--follow",
            spool.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn status_json(data: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["status", "--data", data, "--json"])).unwrap()
}

#[test]
fn no_wait_returns_before_the_mirror_and_the_next_open_catches_up() {
    let f = fixture("honeynet.pcap");
    // The reference: a default ingest, whose rows are queryable at exit.
    let (_r, reference) = new_node(42);
    ok(&["ingest", "--data", &reference, f.to_str().unwrap()]);
    let before = status_json(&reference);
    assert_eq!(before["mirror_lag_segments"], 0);
    let expected = flows_json(&reference, &[]);
    assert!(!expected.is_empty());

    let (_d, data) = new_node(42);
    ok(&["ingest", "--no-wait", "--data", &data, f.to_str().unwrap()]);
    // The store has everything; the mirror has none of this ingest's rows,
    // and status says so without applying them.
    let s = status_json(&data);
    assert_eq!(s["packets"], before["packets"]);
    assert_eq!(s["flows"], 0);
    assert!(s["mirror_lag_segments"].as_u64().unwrap() > 0, "{s}");
    let text = ok(&["status", "--data", &data]);
    assert!(
        text.contains("record segments not yet in the mirror"),
        "{text}"
    );
    // The next command that opens the node applies them: the same rows.
    assert_eq!(flows_json(&data, &[]), expected);
    let s = status_json(&data);
    assert_eq!(s["mirror_lag_segments"], 0);
    assert_eq!(s["flows"], before["flows"]);
    // --no-wait makes no sense with --follow.
    let out = run(&["ingest", "--no-wait", "--follow", "--data", &data]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// The first `count` packets of a little-endian classic pcap file.
fn pcap_prefix(src: &Path, dst: &Path, count: usize) {
    let bytes = std::fs::read(src).unwrap();
    let mut at = 24;
    for _ in 0..count {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    std::fs::write(dst, &bytes[..at]).unwrap();
}

/// Flows as (id, packets each way, bytes each way, start, closed), the
/// columns that do not depend on how the capture was cut into commits.
fn flow_rows(data: &str) -> Vec<String> {
    let mut rows: Vec<String> = flows_json(data, &["--limit", "1000000"])
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {} {} {} {}",
                f["flow_id"],
                f["src_ip"],
                f["dst_ip"],
                f["src"]["packets"],
                f["dst"]["packets"],
                f["src"]["bytes"],
                f["dst"]["bytes"],
                f["src"]["start_sec"]
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn record_versions_3_and_4_mix_in_one_store_and_a_re_ingest_adds_nothing() {
    let work = tempfile::tempdir().unwrap();
    let whole = fixture("honeynet.pcap");
    let half = work.path().join("half.pcap");
    pcap_prefix(&whole, &half, 400);
    let whole = whole.display().to_string();
    // A: the first packets written as record version 3 (JSON lines, what
    // an older lumpy wrote), the rest of the same file as version 4.
    let (_a, a) = new_node(4401);
    config_set(&a, "store.record_version", "3");
    ok(&["ingest", "--data", &a, half.to_str().unwrap()]);
    config_set(&a, "store.record_version", "4");
    ok(&["ingest", "--data", &a, &whole]);
    // B: the whole file as version 4 in one run.
    let (_b, b) = new_node(4401);
    ok(&["ingest", "--data", &b, &whole]);
    let rows = flow_rows(&b);
    assert!(rows.len() > 10, "{rows:?}");
    assert_eq!(flow_rows(&a), rows, "the same flows whatever the version");
    // Again, by the version 4 binary: the file is known, nothing is added.
    let segments = segment_files(&a);
    let out = ok(&["ingest", "--data", &a, &whole]);
    assert_eq!(segment_files(&a), segments, "{out}");
    assert_eq!(flow_rows(&a), rows);
    ok(&["verify", "--data", &a]);
    // The mirror rebuilt from the mixed segments holds the same rows.
    for f in ["mirror.sqlite", "mirror.sqlite-wal", "mirror.sqlite-shm"] {
        let _ = std::fs::remove_file(Path::new(&a).join(f));
    }
    assert_eq!(flow_rows(&a), rows);
    // Only the versions this binary writes are accepted.
    assert!(
        run(&["config", "set", "--data", &a, "store.record_version", "5"])
            .status
            .code()
            != Some(0)
    );
}
