//! Every command beside a running `lumpy serve`: the same output as without
//! it (the command runs in the daemon, over DIR/lumpy.sock), a closed
//! reader ends it quietly, and a socket left by a killed daemon is harmless.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::sync::{Served, free_port};
use crate::util::*;

/// `lumpy ARGS` run in `cwd` (relative paths are the client's), with
/// `stdin` as its standard input.
fn run_in(cwd: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = lumpy()
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `lumpy serve` on `data` with its log in `log`; returns once it listens.
fn serve_logged(data: &str, ip: &str, log: &Path) -> (Served, String) {
    let port = free_port(ip);
    let listen = format!("{ip}:{port}");
    let mut child = lumpy()
        .args(["serve", "--data", data, "--listen", &listen, "--no-ui"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on"), "serve said: {line}");
    // The peer API is TLS by default (a certificate made at first start).
    (Served { child }, format!("https://{listen}"))
}

/// Two nodes made alike, `a/node` and `b/node` (the same sensor, install
/// time and capture), so one command run in `a` and in `b` with
/// `--data node` prints the same whether or not a daemon serves it.
struct Twins {
    _tmp: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

impl Twins {
    fn new(sensor: u32) -> Twins {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
            let data = init_node_in(d, sensor);
            // The p0f database's absence is warned once per process: in a
            // daemon, at its first ingest only.
            config_set(&data, "capture.p0f_fp", "");
            ingest_fixture(&data, "honeynet.pcap");
            std::fs::copy(fixture("sebek.pcap"), d.join("sebek.pcap")).unwrap();
        }
        // Each node makes its own TLS identity at first need: the twins
        // share one, so what prints its fingerprint prints the same.
        let (na, nb) = (a.join("node"), b.join("node"));
        ok(&["peer", "list", "--data", na.to_str().unwrap()]);
        tool(
            "cp",
            &["-a", na.join("tls").to_str().unwrap(), nb.to_str().unwrap()],
        );
        Twins { _tmp: tmp, a, b }
    }

    fn data(&self, served: bool) -> String {
        let d = if served { &self.a } else { &self.b };
        d.join("node").display().to_string()
    }

    /// Runs `args` in both; asserts the same status, stdout and stderr.
    fn same(&self, args: &[&str], stdin: &[u8]) -> Output {
        let served = run_in(&self.a, args, stdin);
        let alone = run_in(&self.b, args, stdin);
        assert_eq!(
            (served.status.code(), untimed(&stderr(&served))),
            (alone.status.code(), untimed(&stderr(&alone))),
            "lumpy {args:?}: status and stderr differ beside serve (left) and without (right)"
        );
        assert!(
            served.stdout == alone.stdout,
            "lumpy {args:?}: stdout differs beside serve:\n{}\nwithout:\n{}",
            stdout(&served),
            stdout(&alone)
        );
        served
    }
}

/// Log lines without their timestamps (the rest must be the same).
fn untimed(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once(' ') {
            Some((t, rest)) if t.len() > 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T' => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of the serve log that say a client's command ran in the daemon.
fn forwarded(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("command from a client"))
        .count()
}

#[test]
fn every_command_prints_the_same_beside_a_running_serve() {
    let t = Twins::new(4501);
    // A child both twins pull from (it serves too: its `peer add` goes
    // through its own daemon).
    let (_c, child) = new_node(4502);
    ingest_fixture(&child, "vlan.pcap");
    let log = t.a.join("serve.log");
    let (served, _) = serve_logged(&t.data(true), "127.0.0.101", &log);
    let child_log = Path::new(&child).with_extension("log");
    let (child_served, child_url) = serve_logged(&child, "127.0.0.102", &child_log);

    let sock = Path::new(&t.data(true)).join("lumpy.sock");
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    /// The command with `--data node` after its command word(s).
    fn n<'a>(a: &[&'a str]) -> Vec<&'a str> {
        let groups = ["archive", "config", "user", "peer", "child", "import"];
        let at = if groups.contains(&a[0]) { 2 } else { 1 };
        let mut v = a.to_vec();
        v.insert(at, "node");
        v.insert(at, "--data");
        v
    }
    let mut commands = 0;
    let mut same = |args: Vec<&str>, stdin: &[u8]| {
        commands += 1;
        let out = t.same(&args, stdin);
        assert!(
            !stderr(&out).contains("Usage:"),
            "lumpy {args:?}: {}",
            stderr(&out)
        );
        out
    };
    same(n(&["status"]), b"");
    same(n(&["status", "--json"]), b"");
    same(n(&["sensors"]), b"");
    same(n(&["verify"]), b"");
    same(n(&["verify", "--deep"]), b"");
    same(n(&["flows"]), b"");
    same(n(&["flows", "--format", "json"]), b"");
    same(n(&["hosts", "--ip", "192.0.2.10"]), b"");
    // Relative paths are the client's: the daemon reads ./sebek.pcap of
    // the directory the command was typed in.
    same(n(&["ingest", "sebek.pcap"]), b"");
    same(n(&["ingest", "sebek.pcap"]), b"");
    same(n(&["processes"]), b"");
    same(n(&["keystrokes", "--process", "2"]), b"");
    let pcap = same(
        n(&["pcap", "--sensor", "4501", "--flow", "1", "-o", "-"]),
        b"",
    );
    assert!(pcap.stdout.len() > 24, "a pcap on stdout");
    same(
        n(&["pcap", "--sensor", "4501", "--flow", "1", "-o", "f.pcap"]),
        b"",
    );
    assert_eq!(
        std::fs::read(t.a.join("f.pcap")).unwrap(),
        std::fs::read(t.b.join("f.pcap")).unwrap()
    );
    same(n(&["prune", "--pcap-days", "100000"]), b"");
    same(n(&["archive", "create", "--sensor", "4501", "bundle"]), b"");
    same(
        n(&["config", "set", "serve.silent_after_secs", "86400"]),
        b"",
    );
    assert_eq!(
        std::fs::read_to_string(t.a.join("node/lumpy.toml")).unwrap(),
        std::fs::read_to_string(t.b.join("node/lumpy.toml")).unwrap()
    );
    same(
        n(&["user", "add", "--password-stdin", "ana"]),
        b"secret words\n",
    );
    same(n(&["peer", "list"]), b"");
    let honeywall = fixture("honeywall/var/log/pcap");
    same(
        n(&[
            "import",
            "legacy",
            "--sensor-id",
            "1234567",
            "--pcap-dir",
            honeywall.to_str().unwrap(),
        ]),
        b"",
    );
    for d in [&t.a, &t.b] {
        std::fs::write(
            d.join("p0f.log"),
            "[2011/03/13 06:06:33] mod=syn|cli=192.0.2.10/1234|srv=198.51.100.1/80|subj=cli|os=Linux 2.6.x|dist=0|params=none|raw_sig=4:64+0:0:1460:mss*4,7:mss,sok,ts,nop,ws:df,id+:0\nnot a p0f line\n",
        )
        .unwrap();
    }
    same(n(&["import", "p0f-log", "p0f.log"]), b"");

    // The child (serving) makes one link secret per twin; the twins add it.
    for (d, name) in [(&t.a, "a"), (&t.b, "b")] {
        let secret = ok(&["peer", "add", "--data", &child, name]);
        std::fs::write(d.join("child.secret"), secret).unwrap();
    }
    same(
        n(&[
            "child",
            "add",
            "c",
            &child_url,
            "--secret-file",
            "child.secret",
        ]),
        b"",
    );
    same(n(&["pull"]), b"");
    same(n(&["pull", "--child", "c"]), b"");
    same(n(&["decommission", "--sensor", "4502"]), b"");
    same(n(&["repair"]), b"");
    // (Not `status`: its child line says seconds since the last pull.)
    same(n(&["verify"]), b"");
    // A failing command fails alike: status, message and nothing changed.
    same(n(&["pull", "--child", "nobody"]), b"");
    same(n(&["archive", "create", "--sensor", "99", "none"]), b"");

    // Every command ran in the daemon but `user add` (it reads a password
    // from this terminal and does not open the store).
    assert_eq!(
        forwarded(&log),
        commands - 1,
        "{} of {commands} commands reached the daemon:\n{}",
        forwarded(&log),
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(
        forwarded(&child_log) >= 2,
        "the child's peer add ran in its daemon"
    );
    child_served.stop();
    served.stop();
    assert!(!sock.exists(), "a clean stop removes the control socket");
    ok(&["verify", "--data", &t.data(true)]);
}

#[test]
fn a_closed_reader_ends_a_forwarded_command_and_a_stale_socket_is_harmless() {
    let (d, data) = new_node(4503);
    ingest_fixture(&data, "honeynet.pcap");
    let log = d.path().join("serve.log");
    let (served, _) = serve_logged(&data, "127.0.0.103", &log);
    // `lumpy flows | head -1` beside serve: quiet, status 0, serve unharmed.
    for _ in 0..3 {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = lumpy()
            .args(["flows", "--data", &data])
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let status = ok(&["status", "--data", &data, "--json"]);
    assert!(status.contains("\"sensor_id\": 4503"), "{status}");

    // A daemon killed without its stop leaves its socket behind: commands
    // run here (nobody answers on it) and the next serve takes its place.
    let mut s = served;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let sock = Path::new(&data).join("lumpy.sock");
    assert!(sock.exists());
    ok(&["verify", "--data", &data]);
    ok(&["status", "--data", &data]);
    let (again, _) = serve_logged(&data, "127.0.0.103", &log);
    let before = forwarded(&log);
    ok(&["status", "--data", &data]);
    assert_eq!(forwarded(&log), before + 1, "status ran in the new serve");
    again.stop();
}

/// `GET /metrics` parsed by Debian's python3-prometheus-client (the
/// OpenMetrics parser of the Prometheus project): one line per sample,
/// `name{label="v",...} value`, labels sorted.
fn scrape(url: &str) -> std::collections::BTreeMap<String, f64> {
    const PARSE: &str = r#"
import sys, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families
with urllib.request.urlopen(sys.argv[1]) as r:
    assert r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    text = r.read().decode()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        print("%s{%s} %r" % (s.name, labels, s.value))
"#;
    // Debian's interpreter, where python3-prometheus-client lives.
    tool("/usr/bin/python3", &["-c", PARSE, url])
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The sum of the samples of `name` (every label set).
fn sum(m: &std::collections::BTreeMap<String, f64>, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_agree_with_status() {
    use crate::sync::link_every;
    let (_c, child) = new_node(4505);
    ingest_fixture(&child, "vlan.pcap");
    let (_child_served, child_url) = serve_logged(
        &child,
        "127.0.0.105",
        &Path::new(&child).with_extension("log"),
    );
    let (d, data) = new_node(4504);
    ingest_fixture(&data, "honeynet.pcap");
    // One child that answers, one that never does (its error is a metric).
    link_every(&data, "p", &child, "good", &child_url, "1h", &[]);
    let dead = format!("http://127.0.0.105:{}", free_port("127.0.0.105"));
    link_every(&data, "p2", &child, "dead", &dead, "1h", &[]);
    let metrics_at = format!("127.0.0.104:{}", free_port("127.0.0.104"));
    config_set(&data, "metrics.listen", &metrics_at);
    let (served, peer_url) = serve_logged(&data, "127.0.0.104", &d.path().join("serve.log"));
    // The pull loops' first pulls (one succeeds, one fails), then nothing
    // moves for an hour.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
        let children = v["children"].as_array().unwrap();
        let pulled = children
            .iter()
            .all(|c| c["last_success"] != 0 || c["last_error"] != "");
        if pulled {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no pulls: {v:#}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // An unsigned peer request: one authentication failure.
    let refused = tool(
        "curl",
        &[
            "-s",
            "-k",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{peer_url}/v1/summary"),
        ],
    );
    assert_eq!(refused, "401");

    let m = scrape(&format!("http://{metrics_at}/metrics"));
    let n = |v: &serde_json::Value| v.as_u64().unwrap() as f64;
    assert_eq!(
        sum(&m, "lumpy_ingested_packets_total"),
        n(&status["packets"])
    );
    assert_eq!(
        sum(&m, "lumpy_ingested_bytes_total"),
        n(&status["bytes_raw"])
    );
    assert_eq!(sum(&m, "lumpy_flows"), n(&status["flows"]));
    assert_eq!(m["lumpy_stored_bytes{}"], n(&status["bytes_stored"]));
    assert_eq!(
        m["lumpy_segments{kind=\"pcap\"}"],
        n(&status["pcap_segments"])
    );
    assert_eq!(
        m["lumpy_segments{kind=\"records\"}"],
        n(&status["record_segments"])
    );
    assert_eq!(
        m["lumpy_quarantined_segments{}"],
        status["quarantined"].as_array().unwrap().len() as f64
    );
    assert_eq!(m["lumpy_mirror_lag_segments{}"], 0.0);
    // The child's flows arrived (its pcap stays there: a proxy link).
    assert!(m["lumpy_flows{sensor=\"4505\"}"] > 0.0, "{m:#?}");
    assert!(
        m["lumpy_ingested_packets_total{sensor=\"4504\"}"] > 0.0,
        "{m:#?}"
    );
    for s in status["sensors"].as_array().unwrap() {
        if let Some(e) = s["flows_evicted"].as_u64() {
            let key = format!("lumpy_flows_evicted_total{{sensor=\"{}\"}}", s["sensor_id"]);
            assert_eq!(m[&key], e as f64, "{key}");
        }
    }
    for c in status["children"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let l = format!("{{child=\"{name}\"}}");
        assert_eq!(
            m[&format!("lumpy_child_last_success_timestamp_seconds{l}")],
            n(&c["last_success"])
        );
        assert_eq!(
            m[&format!("lumpy_child_bytes_in_total{l}")],
            n(&c["bytes_in"])
        );
        assert_eq!(
            m[&format!("lumpy_child_bytes_out_total{l}")],
            n(&c["bytes_out"])
        );
        let failing = c["last_error"] != "";
        assert_eq!(
            m[&format!("lumpy_child_failing{l}")],
            f64::from(u8::from(failing))
        );
        let error_series = m
            .keys()
            .filter(|k| {
                k.starts_with("lumpy_child_last_error{") && k.contains(&format!("child=\"{name}\""))
            })
            .count();
        assert_eq!(error_series, usize::from(failing), "{name}: {m:#?}");
        if !failing {
            assert!(m[&format!("lumpy_child_lag_seconds{l}")] >= 0.0);
            assert!(n(&c["bytes_in"]) > 0.0);
        }
    }
    assert_eq!(m["lumpy_peer_auth_failures_total{}"], 1.0);
    assert_eq!(
        m["lumpy_http_responses_total{code=\"401\",listener=\"peer\"}"],
        1.0
    );
    // Another path on the metrics listener is not found.
    let other = tool(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{metrics_at}/"),
        ],
    );
    assert_eq!(other, "404");
    served.stop();
}

/// Tables and their columns of a SQLite file (Debian's python3 sqlite3).
fn mirror_schema(path: &Path) -> String {
    const SCHEMA: &str = r#"
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
    cols = [r[1] for r in db.execute("PRAGMA table_info('%s')" % t)]
    print(t, ",".join(cols))
"#;
    tool("/usr/bin/python3", &["-c", SCHEMA, path.to_str().unwrap()])
}

/// The `process N (sensor S) pid P` heads of `lumpy processes`.
fn process_heads(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("process "))
        // "process N (sensor S) pid P": what both releases print (today's
        // adds the parent pid and uid, which the old records do not carry).
        .map(|l| l.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
        .collect()
}

/// A data directory written by the lumpy before this change
/// (fixtures/upgrade/, made by scripts/make-upgrade-fixture.sh) opens with
/// this one: its mirror migrated to today's schema, its segments, links and
/// accounts intact, verify clean, and the same answers to the same queries.
#[test]
fn a_data_directory_of_the_previous_release_opens_and_answers_the_same() {
    let fixtures = fixtures().join("upgrade");
    let mut olds: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("node").is_dir())
        .collect();
    olds.sort();
    assert!(!olds.is_empty(), "no fixtures/upgrade/*/node");
    for old in olds {
        let expected = |name: &str| std::fs::read(old.join("expected").join(name)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        tool(
            "cp",
            &[
                "-a",
                old.join("node").to_str().unwrap(),
                tmp.path().to_str().unwrap(),
            ],
        );
        let data = tmp.path().join("node").display().to_string();
        let before = segment_files(&data);

        let verify = ok(&["verify", "--data", &data]);
        let old_verify = String::from_utf8(expected("verify.txt")).unwrap();
        let segments = |t: &str| {
            t.split(" segments,")
                .next()
                .unwrap()
                .rsplit('\n')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(segments(&verify), segments(&old_verify), "{verify}");
        assert!(verify.contains(": no problems"), "{verify}");

        // The mirror now has today's tables and columns (verify reads the
        // store only; the first command that opens the node migrates it).
        ok(&["flows", "--data", &data, "--limit", "1"]);
        let fresh = tempfile::tempdir().unwrap();
        let fresh_data = init_node_in(fresh.path(), 4601);
        assert_eq!(
            mirror_schema(&Path::new(&data).join("mirror.sqlite")),
            mirror_schema(&Path::new(&fresh_data).join("mirror.sqlite")),
            "{}: the mirror was not migrated to today's schema",
            old.display()
        );

        // The same answers: every field the old lumpy gave, with its value.
        let old_flows: Vec<serde_json::Value> =
            serde_json::from_slice(&expected("flows.json")).unwrap();
        let flows = flows_json(&data, &[]);
        assert_eq!(flows.len(), old_flows.len());
        for (new, old_flow) in flows.iter().zip(&old_flows) {
            for (k, v) in old_flow.as_object().unwrap() {
                assert_eq!(&new[k], v, "flow field {k}: {old_flow}");
            }
        }
        let old_status: serde_json::Value =
            serde_json::from_slice(&expected("status.json")).unwrap();
        let status: serde_json::Value =
            serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
        for k in [
            "sensor_id",
            "install_sec",
            "segments",
            "pcap_segments",
            "record_segments",
            "packets",
            "bytes_raw",
            "bytes_stored",
            "flows",
            "time_first",
            "time_last",
        ] {
            assert_eq!(status[k], old_status[k], "status {k}");
        }
        for (new, was) in status["sensors"]
            .as_array()
            .unwrap()
            .iter()
            .zip(old_status["sensors"].as_array().unwrap())
        {
            for k in ["sensor_id", "segments_known", "root"] {
                assert_eq!(new[k], was[k], "sensor {k}");
            }
        }
        let names = |v: &serde_json::Value| -> Vec<(String, String)> {
            v["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["name"].to_string(), c["url"].to_string()))
                .collect()
        };
        assert_eq!(names(&status), names(&old_status), "the links to children");
        assert_eq!(
            ok(&["peer", "list", "--data", &data]).as_bytes(),
            expected("peer-list.txt")
        );
        let users: Vec<String> = ok(&["user", "list", "--data", &data])
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        let old_users: Vec<String> = String::from_utf8(expected("user-list.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(users, old_users);
        assert_eq!(
            process_heads(&ok(&["processes", "--data", &data])),
            process_heads(&String::from_utf8(expected("processes.txt")).unwrap())
        );
        let pcap = lumpy()
            .args([
                "pcap", "--data", &data, "--sensor", "4600", "--flow", "1", "-o", "-",
            ])
            .output()
            .unwrap();
        assert!(pcap.status.success());
        assert!(
            pcap.stdout == expected("flow1.pcap"),
            "flow 1's pcap differs"
        );

        // Nothing was rewritten or lost, and the old captures add nothing.
        for f in ["vlan.pcap", "sebek.pcap", "cooked.pcap"] {
            let again = ingest_fixture(&data, f);
            assert!(again.contains("already ingested"), "{again}");
        }
        assert_eq!(segment_files(&data), before);
        ok(&["verify", "--data", &data]);
    }
}

/// A client that goes away mid-output (killed while its reader is stuck)
/// ends its command in the daemon, which serves on.
#[test]
fn a_killed_client_cancels_its_command_in_the_daemon() {
    let (d, data) = new_node(4506);
    // Thousands of flows: more output than the socket and pipe buffers hold.
    let big = d.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 20, 3600);
    ok(&["ingest", "--data", &data, big.to_str().unwrap()]);
    let log = d.path().join("serve.log");
    let (served, _) = serve_logged(&data, "127.0.0.106", &log);
    // Its stdout is a pipe nobody reads: it blocks, and so does the daemon,
    // until the client is gone (its socket closes: the watcher cancels the
    // command, or its next write fails).
    let (reader, writer) = std::io::pipe().unwrap();
    let mut client = lumpy()
        .args(["flows", "--data", &data])
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while forwarded(&log) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never reached serve"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    client.kill().unwrap();
    client.wait().unwrap();
    drop(reader);
    let ended = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .any(|l| l.contains("command ended"))
    };
    while !ended(&log) {
        assert!(
            std::time::Instant::now() < deadline,
            "the command did not end: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The daemon serves on.
    let status = ok(&["status", "--data", &data]);
    assert!(status.contains("sensor id       4506"), "{status}");
    served.stop();
}

/// `ingest --follow` beside a running serve follows inside the daemon (its
/// passes between serve's own work): a capture dropped into the directory
/// gives the flows a plain ingest gives, even with serve following the same
/// directory itself (`capture.follow`), the client's going away ends the
/// follow, and the daemon serves on with nothing to ingest twice.
#[test]
fn ingest_follow_runs_inside_a_running_serve() {
    for (serve_follows, ip) in [(false, "127.0.0.107"), (true, "127.0.0.108")] {
        let (d, data) = new_node(4507);
        config_set(&data, "capture.settle_secs", "1");
        let spool = d.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        if serve_follows {
            config_set(&data, "capture.follow", spool.to_str().unwrap());
        }
        let log = d.path().join("serve.log");
        let (served, _) = serve_logged(&data, ip, &log);
        let client_err = d.path().join("client.err");
        let mut client = lumpy()
            .args(["ingest", "--data", &data, "--follow"])
            .arg(&spool)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&client_err).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let wait = |what: &str, done: &dyn Fn() -> bool| {
            while !done() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: serve log:\n{}\nclient:\n{}",
                    std::fs::read_to_string(&log).unwrap(),
                    std::fs::read_to_string(&client_err).unwrap()
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        };
        wait("the follow never started in serve", &|| {
            std::fs::read_to_string(&client_err)
                .unwrap()
                .contains("inside the running serve")
        });
        assert!(client.try_wait().unwrap().is_none(), "the client ended");
        std::fs::copy(fixture("honeynet.pcap"), spool.join("a.pcap")).unwrap();
        // The same flows as a plain ingest of the file on a node alike.
        let (_t, twin) = new_node(4507);
        ingest_fixture(&twin, "honeynet.pcap");
        let want = ok(&["flows", "--data", &twin, "--format", "csv"]);
        wait("the followed capture's flows never appeared", &|| {
            ok(&["flows", "--data", &data, "--format", "csv"]) == want
        });
        // Ctrl-C (the client killed) ends the follow in the daemon.
        client.kill().unwrap();
        client.wait().unwrap();
        wait("the follow did not end", &|| {
            std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .any(|l| l.contains("command ended") && l.contains("cancelled=true"))
        });
        let again = ok(&[
            "ingest",
            "--data",
            &data,
            spool.join("a.pcap").to_str().unwrap(),
        ]);
        assert!(again.contains("already ingested, nothing new"), "{again}");
        assert_eq!(ok(&["flows", "--data", &data, "--format", "csv"]), want);
        served.stop();
        ok(&["verify", "--data", &data]);
    }
}
