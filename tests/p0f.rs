//! Passive OS fingerprints against real p0f 3.09b: `lumpy fingerprint` and
//! ingest label the fixtures' SYNs and SYN+ACKs as `p0f -r` does; a running
//! p0f's log imports into the same `os` rows and flow OS ids, once; a parent
//! pulled from a child sees the child's OS rows.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rusqlite::Connection;

use crate::sync::{free_port, link, serve};
use crate::util::*;

/// Fixtures holding TCP handshakes (each link type the decoder reads).
const CAPTURES: [&str; 9] = [
    "honeynet.pcap",
    "honeynet-nsec.pcap",
    "bigendian.pcap",
    "null.pcap",
    "rawip.pcap",
    "cooked.pcap",
    "cooked2.pcap",
    "tun-rawip.pcap",
    "sebek.pcap",
];

/// Runs real p0f over a capture; returns its log's fingerprint lines.
fn p0f_log(capture: &Path, dir: &Path) -> Vec<String> {
    let log = dir.join(format!(
        "{}.p0f.log",
        capture.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&log);
    let out = Command::new("p0f")
        .args(["-r", capture.to_str().unwrap(), "-o", log.to_str().unwrap()])
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("p0f is required (scripts/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "p0f -r {}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("] mod=syn") || l.contains("] mod=sendsyn"))
        .map(String::from)
        .collect()
}

/// A fingerprint line's fields by name.
fn fields(line: &str) -> BTreeMap<String, String> {
    let (time, rest) = line.split_once("] ").unwrap();
    let mut m: BTreeMap<String, String> = rest
        .split('|')
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("time".into(), time.trim_start_matches('[').to_string());
    if let Some(app) = m.remove("app") {
        m.insert("os".into(), app);
    }
    m
}

/// (mod, cli, srv, time): one fingerprinted packet.
fn key(f: &BTreeMap<String, String>) -> (String, String, String, String) {
    (
        f["mod"].clone(),
        f["cli"].clone(),
        f["srv"].clone(),
        f["time"].clone(),
    )
}

fn by_key(
    lines: &[String],
) -> BTreeMap<(String, String, String, String), BTreeMap<String, String>> {
    lines
        .iter()
        .map(|l| {
            let f = fields(l);
            (key(&f), f)
        })
        .collect()
}

#[test]
fn native_fingerprints_give_p0fs_labels() {
    let work = tempfile::tempdir().unwrap();
    let (mut labelled, mut agree, mut same_sig, mut total) = ([0usize; 2], [0usize; 2], 0, 0);
    let mut disagreements = Vec::new();
    for name in CAPTURES {
        let capture = fixture(name);
        let theirs = by_key(&p0f_log(&capture, work.path()));
        let ours_text = ok(&["fingerprint", capture.to_str().unwrap()]);
        let ours_lines: Vec<String> = ours_text.lines().map(String::from).collect();
        let ours = by_key(&ours_lines);
        assert!(!theirs.is_empty(), "{name}: p0f fingerprinted nothing");
        for (k, f) in &theirs {
            total += 1;
            let mine = ours.get(k);
            if mine.is_some_and(|m| m["raw_sig"] == f["raw_sig"]) {
                same_sig += 1;
            }
            if f["os"] == "???" {
                continue;
            }
            let i = usize::from(k.0 == "syn+ack");
            labelled[i] += 1;
            match mine {
                Some(m) if m["os"] == f["os"] => agree[i] += 1,
                other => disagreements.push(format!(
                    "{name} {k:?}: p0f {} / lumpy {}",
                    f["os"],
                    other.map_or("(nothing)", |m| m["os"].as_str())
                )),
            }
        }
        for k in ours.keys().filter(|k| !theirs.contains_key(*k)) {
            disagreements.push(format!("{name} {k:?}: fingerprinted by lumpy only"));
        }
    }
    for d in &disagreements {
        eprintln!("disagreement: {d}");
    }
    eprintln!(
        "SYN: {}/{} labels agree; SYN+ACK: {}/{}; raw signatures identical: {same_sig}/{total}",
        agree[0], labelled[0], agree[1], labelled[1]
    );
    assert!(
        labelled[0] >= 200,
        "too few labelled SYNs to judge: {labelled:?}"
    );
    for i in 0..2 {
        assert!(
            agree[i] * 100 >= labelled[i] * 95,
            "agreement below 95%: {agree:?} of {labelled:?}"
        );
    }
    // The SYN+ACKs in the fixtures are all unknown to p0f.fp: what is
    // compared for them is the signature p0f computes.
    assert!(
        same_sig * 100 >= total * 95,
        "raw signatures: {same_sig} of {total} identical"
    );
}

fn mirror(data: &str) -> Connection {
    Connection::open(Path::new(data).join("mirror.sqlite")).unwrap()
}

/// (genre, detail) of every labelled p0f SYN, by (client, server) endpoint text.
fn p0f_client_labels(lines: &[String]) -> BTreeMap<(String, String), String> {
    lines
        .iter()
        .map(|l| fields(l))
        .filter(|f| f["mod"] == "syn" && f["os"] != "???")
        .map(|f| ((f["cli"].clone(), f["srv"].clone()), f["os"].clone()))
        .collect()
}

/// `genre detail` of each flow's client OS, by (client, server) as p0f
/// writes endpoints (IPv4 flows only: the `flow` table).
fn flow_client_os(data: &str, column: &str) -> BTreeMap<(String, String), String> {
    let c = mirror(data);
    let sql = format!(
        "SELECT f.src_ip, f.src_port, f.dst_ip, f.dst_port, o.genre, o.detail FROM flow f \
         JOIN os o ON o.os_id = f.{column} AND o.sensor_id = f.sensor_id"
    );
    let mut stmt = c.prepare(&sql).unwrap();
    stmt.query_map([], |r| {
        let ip = |v: i64| std::net::Ipv4Addr::from(v as u32).to_string();
        let detail: String = r.get(5)?;
        let genre: String = r.get(4)?;
        Ok((
            (
                format!("{}/{}", ip(r.get(0)?), r.get::<_, i64>(1)?),
                format!("{}/{}", ip(r.get(2)?), r.get::<_, i64>(3)?),
            ),
            if detail.is_empty() {
                genre
            } else {
                format!("{genre} {detail}")
            },
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn ingest_fills_os_rows_and_client_os_ids() {
    let work = tempfile::tempdir().unwrap();
    let (_d, data) = new_node(41);
    let capture = fixture("honeynet.pcap");
    ok(&["ingest", "--data", &data, capture.to_str().unwrap()]);
    let expected: BTreeMap<_, _> = p0f_client_labels(&p0f_log(&capture, work.path()))
        .into_iter()
        .filter(|((c, _), _)| !c.contains(':'))
        .collect();
    assert!(expected.len() > 100);
    let got = flow_client_os(&data, "client_os_id");
    let matching = expected
        .iter()
        .filter(|(k, v)| got.get(*k) == Some(v))
        .count();
    assert!(
        matching * 100 >= expected.len() * 95,
        "{matching} of {} flows carry p0f's client OS",
        expected.len()
    );
    // hosts shows the history.
    let out = ok(&["hosts", "--data", &data, "--ip", "198.51.100.20"]);
    assert!(out.contains("OS: Linux 2.2.x-3.x"), "{out}");
    // p0f's `!` class is a tool, labelled apart from operating systems.
    assert!(
        out.contains("application (p0f class !): NMap SYN scan"),
        "{out}"
    );
    assert!(!out.contains("OS: NMap"), "{out}");
    // At most --limit flows each way (20 by default), the earliest first.
    assert!(
        out.contains("as client (the first 20; --limit for more):"),
        "{out}"
    );
    let limited: serde_json::Value = serde_json::from_str(&ok(&[
        "hosts",
        "--data",
        &data,
        "--ip",
        "198.51.100.20",
        "--limit",
        "3",
        "--json",
    ]))
    .unwrap();
    assert_eq!(limited["flows_as_client"].as_array().unwrap().len(), 3);
    assert_eq!(limited["flows_as_server"].as_array().unwrap().len(), 3);
    assert!(
        limited["flows_as_client"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["src_ip"] == "198.51.100.20")
    );
    assert!(
        limited["flows_as_server"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["dst_ip"] == "198.51.100.20")
    );
    assert_eq!(
        limited["flows_as_client"][0]["flow_id"], 1,
        "earliest first"
    );
    // An IPv6 host: its flows and its fingerprints.
    let v6: serde_json::Value = serde_json::from_str(&ok(&[
        "hosts",
        "--data",
        &data,
        "--ip",
        "2001:db8:2::20",
        "--json",
    ]))
    .unwrap();
    assert!(
        !v6["flows_as_client"].as_array().unwrap().is_empty(),
        "{v6}"
    );
    assert!(
        !v6["flows_as_server"].as_array().unwrap().is_empty(),
        "{v6}"
    );
    assert_eq!(v6["os"][0]["genre"], "Linux", "{v6}");
    assert_eq!(v6["os"][0]["application"], false, "{v6}");
    // Re-ingesting changes nothing.
    let before = dump(&data);
    ok(&["ingest", "--data", &data, capture.to_str().unwrap()]);
    assert_eq!(before, dump(&data));
}

/// A mirror rebuilt from many record segments (the bulk load, which drops
/// and rebuilds indexes) holds the same OS rows and flow OS ids as the one
/// kept up to date during ingest.
#[test]
fn a_bulk_rebuilt_mirror_keeps_the_fingerprints() {
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 30, 1000);
    let (_d, data) = new_node(42);
    config_set(&data, "store.segment_target_bytes", "65536");
    ok(&["ingest", "--data", &data, big.to_str().unwrap()]);
    let records = ok(&["status", "--data", &data]);
    let before = dump(&data);
    assert!(
        before.iter().any(|l| l.contains("Linux")),
        "no OS rows: {before:?}"
    );
    for f in ["mirror.sqlite", "mirror.sqlite-wal", "mirror.sqlite-shm"] {
        let _ = std::fs::remove_file(Path::new(&data).join(f));
    }
    // More than 64 record segments: the next open rebuilds it with the
    // bulk load (status only shows the lag: it does not catch up).
    ok(&["flows", "--data", &data, "--limit", "1"]);
    assert_eq!(ok(&["status", "--data", &data]), records);
    assert_eq!(dump(&data), before);
}

/// The OS-related mirror content, in a stable order.
fn dump(data: &str) -> Vec<String> {
    let c = mirror(data);
    let mut out = Vec::new();
    for sql in [
        "SELECT os_id || '|' || sensor_id || '|' || genre || '|' || detail FROM os ORDER BY 1",
        "SELECT flow_id || '|' || client_os_id || '|' || server_os_id FROM flow ORDER BY flow_id",
        "SELECT flow_id || '|' || client_os_id || '|' || server_os_id FROM x_flow6 ORDER BY flow_id",
        "SELECT count(*) || '|' || sum(flow_id != 0) FROM x_os_fingerprint",
    ] {
        let mut stmt = c.prepare(sql).unwrap();
        out.extend(
            stmt.query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .map(Result::unwrap),
        );
    }
    out
}

#[test]
fn a_p0f_log_imports_once_and_bad_lines_are_named() {
    let work = tempfile::tempdir().unwrap();
    let (_d, data) = new_node(42);
    // The honeywall's own p0f did the fingerprinting: none natively.
    ok(&["config", "set", "--data", &data, "capture.p0f_fp", ""]);
    let capture = fixture("honeynet.pcap");
    ok(&["ingest", "--data", &data, capture.to_str().unwrap()]);
    assert!(flow_client_os(&data, "client_os_id").is_empty());
    let lines = p0f_log(&capture, work.path());
    let mut log = lines.join("\n");
    // A labelled SYN+ACK from the server of a handshake in the capture (the
    // fixture's SYN+ACKs are unknown to p0f.fp), and lines of other modules.
    let synack = lines
        .iter()
        .map(|l| fields(l))
        .find(|f| f["mod"] == "syn+ack" && !f["cli"].contains(':'))
        .unwrap();
    log.push_str(&format!(
        "\n[{}] mod=syn+ack|cli={}|srv={}|subj=srv|os=Linux 3.x|dist=0|params=none|raw_sig={}\n",
        synack["time"], synack["cli"], synack["srv"], synack["raw_sig"]
    ));
    log.push_str(&format!(
        "[{}] mod=mtu|cli={}|srv={}|subj=cli|link=Ethernet or modem|raw_mtu=1500\n",
        synack["time"], synack["cli"], synack["srv"]
    ));
    let file = work.path().join("p0f.log");
    std::fs::write(&file, &log).unwrap();
    let first = ok(&["import", "p0f-log", "--data", &data, file.to_str().unwrap()]);
    let labelled = lines.iter().filter(|l| !l.contains("os=???")).count();
    assert!(
        first.contains(&format!("{} fingerprints imported", labelled + 1)),
        "{first}"
    );
    let expected: BTreeMap<_, _> = p0f_client_labels(&lines)
        .into_iter()
        .filter(|((c, _), _)| !c.contains(':'))
        .collect();
    let got = flow_client_os(&data, "client_os_id");
    let matching = expected
        .iter()
        .filter(|(k, v)| got.get(*k) == Some(v))
        .count();
    assert!(
        matching * 100 >= expected.len() * 95,
        "{matching} of {} flows carry the imported client OS",
        expected.len()
    );
    let servers = flow_client_os(&data, "server_os_id");
    assert_eq!(
        servers.get(&(synack["cli"].clone(), synack["srv"].clone())),
        Some(&"Linux 3.x".to_string()),
        "{servers:?}"
    );
    // Twice: nothing new, nothing changed.
    let before = dump(&data);
    let again = ok(&["import", "p0f-log", "--data", &data, file.to_str().unwrap()]);
    assert!(again.contains("0 fingerprints imported"), "{again}");
    assert_eq!(before, dump(&data));
    // A malformed line is named by file and line; the others still count.
    let bad_file = work.path().join("bad.log");
    std::fs::write(
        &bad_file,
        format!(
            "{}\n[2026/11/26 23:40:11] mod=syn|cli=198.51.100.300/1|srv=192.0.2.10/22|subj=cli|os=Linux 3.x|dist=0|params=none|raw_sig=x\n",
            lines[0]
        ),
    )
    .unwrap();
    let out = run(&[
        "import",
        "p0f-log",
        "--data",
        &data,
        bad_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:2:", bad_file.display())),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("1 already present"),
        "{}",
        stdout(&out)
    );
    assert_eq!(before, dump(&data));
}

#[test]
fn a_parent_sees_the_os_rows_of_its_child() {
    let (_c, child) = new_node(43);
    ingest_fixture(&child, "honeynet.pcap");
    let (_p, parent) = new_node(44);
    let port = free_port("127.0.0.41");
    link(
        &parent,
        "p",
        &child,
        "c",
        &format!("https://127.0.0.41:{port}"),
        &[],
    );
    let served = serve(&child, "127.0.0.41", port);
    ok(&["pull", "--data", &parent]);
    served.stop();
    let os_rows = |data: &str| -> Vec<String> {
        let c = mirror(data);
        let mut stmt = c
            .prepare("SELECT os_id || '|' || genre || '|' || detail FROM os WHERE sensor_id = 43 ORDER BY 1")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let at_child = os_rows(&child);
    assert!(at_child.len() >= 3, "{at_child:?}");
    assert_eq!(os_rows(&parent), at_child);
    let flows_with_os = |data: &str| {
        flow_client_os(data, "client_os_id")
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert!(!flows_with_os(&parent).is_empty());
    assert_eq!(flows_with_os(&parent), flows_with_os(&child));
    let out = ok(&["hosts", "--data", &parent, "--ip", "198.51.100.20"]);
    assert!(out.contains("sensor 43 OS: Linux 2.2.x-3.x"), "{out}");
}

/// One TCP packet of the synthetic capture.
struct Tcp<'a> {
    v6: bool,
    src: u8,
    dst: u8,
    sport: u16,
    dport: u16,
    ttl: u8,
    df: bool,
    id: u16,
    ecn: bool,
    mbz: bool,
    flow_label: u32,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    urg: u16,
    options: &'a [u8],
    payload: &'a [u8],
}

fn raw_packet(t: &Tcp<'_>) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&t.sport.to_be_bytes());
    tcp.extend_from_slice(&t.dport.to_be_bytes());
    tcp.extend_from_slice(&t.seq.to_be_bytes());
    tcp.extend_from_slice(&t.ack.to_be_bytes());
    tcp.push((((20 + t.options.len()) / 4) as u8) << 4);
    tcp.push(t.flags);
    tcp.extend_from_slice(&t.win.to_be_bytes());
    tcp.extend_from_slice(&[0, 0]);
    tcp.extend_from_slice(&t.urg.to_be_bytes());
    tcp.extend_from_slice(t.options);
    tcp.extend_from_slice(t.payload);
    let mut p = Vec::new();
    if t.v6 {
        let word = (6u32 << 28) | (u32::from(t.ecn) << 20) | (t.flow_label & 0xf_ffff);
        p.extend_from_slice(&word.to_be_bytes());
        p.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        p.extend_from_slice(&[6, t.ttl]);
        for host in [t.src, t.dst] {
            p.extend_from_slice(&[
                0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, host,
            ]);
        }
    } else {
        p.extend_from_slice(&[0x45, u8::from(t.ecn) * 2]);
        p.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        p.extend_from_slice(&t.id.to_be_bytes());
        let flags: u16 = if t.df { 0x4000 } else { 0 } | if t.mbz { 0x8000 } else { 0 };
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&[t.ttl, 6, 0, 0, 10, 9, 0, t.src, 10, 9, 0, t.dst]);
    }
    p.extend_from_slice(&tcp);
    p
}

/// TCP options for a signature's layout, or `None` when the layout cannot
/// be built aligned (or needs `opt+`).
fn options_for(
    sig: &lumpy::p0f::TcpSignature,
    mss: u16,
    scale: u8,
    ts1: u32,
    ts2: u32,
) -> Option<Vec<u8>> {
    let mut o = Vec::new();
    for name in &sig.options {
        match name.as_str() {
            "nop" => o.push(1),
            "mss" => o.extend_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]),
            "ws" => o.extend_from_slice(&[3, 3, scale]),
            "sok" => o.extend_from_slice(&[4, 2]),
            "sack" => o.extend_from_slice(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
            "ts" => {
                o.extend_from_slice(&[8, 10]);
                o.extend_from_slice(&ts1.to_be_bytes());
                o.extend_from_slice(&ts2.to_be_bytes());
            }
            other => {
                if let Some(n) = other.strip_prefix("eol+") {
                    o.push(0);
                    o.extend(std::iter::repeat_n(0, n.parse().ok()?));
                } else if let Some(n) = other.strip_prefix('?') {
                    o.extend_from_slice(&[n.parse().ok()?, 2]);
                } else {
                    return None;
                }
            }
        }
    }
    (o.len() % 4 == 0 && o.len() <= 40).then_some(o)
}

/// A capture with one handshake per signature of Debian's p0f.fp (as far as
/// a signature can be built: IPv4 options, `opt+` and `bad` are skipped):
/// for [tcp:request] signatures a SYN shaped by it, for [tcp:response]
/// signatures a plain SYN answered by a SYN+ACK shaped by it.
fn synthetic_capture(path: &Path) -> usize {
    synthetic_part(path, |_, _| true)
}

/// As `synthetic_capture`, keeping only the packets `keep(index, is_syn_ack)` takes.
fn synthetic_part(path: &Path, keep: impl Fn(usize, bool) -> bool) -> usize {
    use lumpy::p0f::{Quirk, Ttl, WindowSize};
    let db =
        lumpy::p0f::Database::parse(&std::fs::read_to_string("/etc/p0f/p0f.fp").unwrap()).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    let mut sec = 1_700_000_000u32;
    let index = std::cell::Cell::new(0usize);
    let push = |out: &mut Vec<u8>, sec: u32, p: &[u8]| {
        // The TCP flags byte of an IPv4 or IPv6 packet without options.
        let flags = p[if p[0] >> 4 == 6 { 53 } else { 33 }];
        let i = index.get();
        index.set(i + 1);
        if !keep(i, flags == 0x12) {
            return;
        }
        out.extend_from_slice(&sec.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    };
    let mut made = 0;
    let plain_syn_opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    for (n, (sig, response)) in db
        .syn
        .iter()
        .map(|s| (s, false))
        .chain(db.syn_ack.iter().map(|s| (s, true)))
        .enumerate()
    {
        let q = |x: Quirk| sig.quirks.contains(&x);
        if sig.olen != 0 || q(Quirk::OptPlus) || q(Quirk::Bad) {
            continue;
        }
        let v6 = sig.version == Some(6);
        let ttl = match sig.ttl {
            Ttl::Guess(t) => t.saturating_sub(3),
            Ttl::Distance(t, _) => t,
            Ttl::Bad(t) => t.saturating_sub(7),
            Ttl::Unknown(_) => continue,
        };
        let mss = sig.mss.unwrap_or(1460);
        let win = match sig.window {
            WindowSize::Exact(w) => Some(u32::from(w)),
            WindowSize::Mss(k) => Some(u32::from(k) * u32::from(mss)),
            WindowSize::Mtu(k) => Some(u32::from(k) * (u32::from(mss) + 40)),
            WindowSize::Modulo(m) => Some(u32::from(m) * (65535 / u32::from(m)).max(1)),
            WindowSize::Any => Some(8192),
        };
        let Some(win) = win.and_then(|w| u16::try_from(w).ok()) else {
            continue;
        };
        let scale = sig.scale.unwrap_or(7);
        let ts1 = if q(Quirk::Ts1Minus) {
            0
        } else {
            100_000 + n as u32
        };
        let ts2 = if q(Quirk::Ts2Plus) || response {
            777
        } else {
            0
        };
        let Some(options) = options_for(sig, mss, scale, ts1, ts2) else {
            continue;
        };
        let payload: &[u8] = if sig.payload == Some(true) {
            b"0123456789"
        } else {
            b""
        };
        let (client, server) = ((n % 200) as u8 + 1, 250u8);
        let cport = 20_000 + n as u16;
        let df = q(Quirk::Df) || q(Quirk::IdPlus);
        let shaped = |flags: u8, ack: u32| Tcp {
            v6,
            src: if response { server } else { client },
            dst: if response { client } else { server },
            sport: if response { 80 } else { cport },
            dport: if response { cport } else { 80 },
            ttl,
            df: df && !v6,
            id: if q(Quirk::IdMinus) || (df && !q(Quirk::IdPlus)) {
                0
            } else {
                4242
            },
            ecn: q(Quirk::Ecn),
            mbz: q(Quirk::ZeroPlus) && !v6,
            flow_label: if q(Quirk::Flow) { 12345 } else { 0 },
            seq: if q(Quirk::SeqMinus) {
                0
            } else {
                5000 + n as u32
            },
            ack,
            flags: flags
                | if q(Quirk::UrgfPlus) { 0x20 } else { 0 }
                | if q(Quirk::PushfPlus) { 0x08 } else { 0 },
            win,
            urg: if q(Quirk::UptrPlus) || q(Quirk::UrgfPlus) {
                7
            } else {
                0
            },
            options: &options,
            payload,
        };
        if response {
            let syn = Tcp {
                v6,
                src: client,
                dst: server,
                sport: cport,
                dport: 80,
                ttl: 61,
                df: !v6,
                id: 1,
                ecn: false,
                mbz: false,
                flow_label: 0,
                seq: 900 + n as u32,
                ack: 0,
                flags: 0x02,
                win: 64240,
                urg: 0,
                options: &plain_syn_opts,
                payload: b"",
            };
            push(&mut out, sec, &raw_packet(&syn));
            let ack = if q(Quirk::AckMinus) {
                0
            } else {
                901 + n as u32
            };
            push(&mut out, sec, &raw_packet(&shaped(0x12, ack)));
        } else {
            let ack = if q(Quirk::AckPlus) { 0x0100_0001 } else { 0 };
            push(&mut out, sec, &raw_packet(&shaped(0x02, ack)));
        }
        made += 1;
        sec += 1;
    }
    std::fs::write(path, out).unwrap();
    made
}

#[test]
fn every_buildable_p0f_signature_is_labelled_as_p0f_labels_it() {
    let work = tempfile::tempdir().unwrap();
    let capture = work.path().join("signatures.pcap");
    let made = synthetic_capture(&capture);
    assert!(made > 150, "only {made} handshakes built");
    let theirs = by_key(&p0f_log(&capture, work.path()));
    let ours_text = ok(&["fingerprint", capture.to_str().unwrap()]);
    let ours_lines: Vec<String> = ours_text.lines().map(String::from).collect();
    let ours = by_key(&ours_lines);
    let (mut labelled, mut agree) = ([0usize; 2], [0usize; 2]);
    for (k, f) in &theirs {
        if f["os"] == "???" {
            continue;
        }
        let i = usize::from(k.0 == "syn+ack");
        labelled[i] += 1;
        match ours.get(k) {
            Some(m) if m["os"] == f["os"] && m["raw_sig"] == f["raw_sig"] => agree[i] += 1,
            other => eprintln!(
                "disagreement {k:?}: p0f {} {} / lumpy {:?}",
                f["os"],
                f["raw_sig"],
                other.map(|m| (&m["os"], &m["raw_sig"]))
            ),
        }
    }
    let extra = ours
        .iter()
        .filter(|(k, _)| !theirs.contains_key(*k))
        .inspect(|(k, m)| eprintln!("lumpy only {k:?}: {} {}", m["os"], m["raw_sig"]))
        .count();
    eprintln!(
        "synthetic: SYN {}/{} agree, SYN+ACK {}/{} agree, {extra} fingerprinted by lumpy only",
        agree[0], labelled[0], agree[1], labelled[1]
    );
    assert!(labelled[0] > 100 && labelled[1] > 20, "{labelled:?}");
    for i in 0..2 {
        assert!(
            agree[i] * 100 >= labelled[i] * 95,
            "{agree:?} of {labelled:?}"
        );
    }
    assert_eq!(extra, 0);
}

#[test]
fn a_syn_ack_in_the_next_capture_file_finds_its_syn_while_serving() {
    use crate::sync::{free_port, serve};
    let work = tempfile::tempdir().unwrap();
    let all = work.path().join("all.pcap");
    synthetic_capture(&all);
    let labelled_synacks = p0f_log(&all, work.path())
        .iter()
        .filter(|l| l.contains("mod=syn+ack") && !l.contains("os=???"))
        .count();
    assert!(labelled_synacks > 20);
    let (_d, data) = new_node(46);
    let capture_dir = work.path().join("pcap");
    std::fs::create_dir(&capture_dir).unwrap();
    config_set(&data, "capture.follow", capture_dir.to_str().unwrap());
    ok(&["config", "set", "--data", &data, "capture.settle_secs", "1"]);
    let node = serve(&data, "127.0.0.42", free_port("127.0.0.42"));
    let count = |sql: &str| -> i64 {
        Connection::open(Path::new(&data).join("mirror.sqlite"))
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    // tcpdump -C style: a rotation between the SYN and the SYN+ACK of the
    // first answered handshake, the two files ingested in separate passes.
    let first_synack = std::cell::Cell::new(usize::MAX);
    synthetic_part(&work.path().join("probe.pcap"), |i, synack| {
        if synack && first_synack.get() == usize::MAX {
            first_synack.set(i);
        }
        true
    });
    let cut = first_synack.get();
    synthetic_part(&capture_dir.join("log"), |i, _| i < cut);
    assert!(cut > 50, "{cut}");
    wait("the first file", &|| {
        count("SELECT count(*) FROM flow") + count("SELECT count(*) FROM x_flow6") > 50
    });
    assert_eq!(
        count("SELECT count(*) FROM x_os_fingerprint WHERE role = 1"),
        0
    );
    synthetic_part(&capture_dir.join("log1"), |i, _| i >= cut);
    wait("the SYN+ACK file", &|| {
        count("SELECT count(*) FROM x_os_fingerprint WHERE role = 1") as usize >= labelled_synacks
    });
    node.stop();
    assert_eq!(
        count("SELECT count(*) FROM x_os_fingerprint WHERE role = 1") as usize,
        labelled_synacks
    );
    assert_eq!(
        count("SELECT count(*) FROM flow WHERE server_os_id != 0")
            + count("SELECT count(*) FROM x_flow6 WHERE server_os_id != 0"),
        labelled_synacks as i64
    );
}
