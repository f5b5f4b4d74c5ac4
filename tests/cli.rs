//! The command line as an operator meets it: sensor ids, init, help, config.

use crate::util::*;
use std::path::Path;

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

/// Read commands beside a running `serve` (which holds the store) run in
/// it, over its control socket (tests/daemon.rs checks every command).
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
    let beside = ok(&["verify", "--data", &data]);
    assert!(beside.contains("no problems"), "{beside}");
    served.stop();
    ok(&["verify", "--data", &data]);
}

/// Runs lumpy with its standard output on a pipe whose reader has already
/// gone, so the first write fails with EPIPE whatever the output's size.
fn run_into_closed_pipe(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    lumpy()
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let (_d, data) = new_node(4321);
    ingest_fixture(&data, "honeynet.pcap");
    for args in [
        vec!["flows", "--data", &data],
        vec!["flows", "--data", &data, "--format", "csv"],
        vec!["flows", "--data", &data, "--format", "json"],
        vec!["status", "--data", &data],
        vec!["sensors", "--data", &data],
        vec!["hosts", "--data", &data, "--ip", "10.0.0.2"],
        vec!["verify", "--data", &data],
        vec!["config", "show", "--data", &data],
    ] {
        let out = run_into_closed_pipe(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "lumpy {args:?} on a closed pipe: {}",
            stderr(&out)
        );
        assert!(stderr(&out).is_empty(), "lumpy {args:?}: {}", stderr(&out));
    }
    // As an operator types it: the pipeline's first command ends with 0.
    let bin =
        std::env::var("LUMPY_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lumpy").to_string());
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            r#""$1" flows --data "$2" | head -1; echo "status ${PIPESTATUS[0]}" >&2"#,
            "sh",
            &bin,
            &data,
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.trim_end().ends_with("status 0"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(stdout(&out).lines().count(), 1);
}

/// `lumpy serve` with stderr written to `log`, stopped with SIGTERM.
fn serve_and_stop(data: &str, log: &Path, extra: &[&str]) {
    use std::io::BufRead;
    let ip = "127.0.0.65";
    let port = crate::sync::free_port(ip);
    let listen = format!("{ip}:{port}");
    let mut args = vec!["serve", "--data", data, "--listen", &listen, "--no-ui"];
    args.extend_from_slice(extra);
    let mut child = lumpy()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on"), "serve said: {line}");
    let served = crate::sync::Served { child };
    served.stop();
}

#[test]
fn serve_logs_its_stop_without_colour_in_a_file_and_as_json() {
    let (d, data) = new_node(4322);
    let log = d.path().join("serve.log");
    serve_and_stop(&data, &log, &[]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stopping"), "{text}");
    assert!(text.contains("stopped cleanly"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text:?}"
    );

    let json_log = d.path().join("serve.json");
    serve_and_stop(&data, &json_log, &["--log-format", "json"]);
    let text = std::fs::read_to_string(&json_log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "stopped cleanly" && e["level"] == "INFO"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[test]
fn status_and_sensors_use_the_same_words_for_a_silent_sensor() {
    let (_d, data) = new_node(4323);
    // The fixture's packets are days old: nothing new for more than an hour.
    let ingested = ingest_fixture(&data, "honeynet.pcap");
    // Ingest's segment count agrees with status's.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &data, "--json"])).unwrap();
    assert!(
        ingested.contains(&format!("({} in the store", v["segments"])),
        "{ingested}"
    );
    let words = "silent (no new data for more than 3600 s)";
    let status = ok(&["status", "--data", &data]);
    let sensors = ok(&["sensors", "--data", &data]);
    assert!(status.contains(words), "{status}");
    assert!(sensors.contains(&format!("online, {words}")), "{sensors}");
    // A longer threshold: neither says it.
    config_set(&data, "serve.silent_after_secs", "4000000000");
    assert!(!ok(&["status", "--data", &data]).contains("silent"));
    assert!(!ok(&["sensors", "--data", &data]).contains("silent"));
}

/// The README's query lines (flows, status, verify, processes, keystrokes,
/// hosts, pcap --data, sensors), with /srv/lumpy replaced by a node made as
/// scripts/demo.sh makes it: each runs as written and finds something.
#[test]
fn the_readme_query_examples_run_on_the_demo_data() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("demo-data").display().to_string();
    // As scripts/demo.sh does.
    ok(&[
        "init",
        "--data",
        &data,
        "--sensor-id",
        "2147483649",
        "--name",
        "demo roo",
        "--honeypot-net",
        "192.0.2.0/24",
        "--honeypot-net",
        "2001:db8:1::/64",
    ]);
    let fx = fixtures();
    ok(&[
        "ingest",
        "--data",
        &data,
        fx.join("honeynet.pcap").to_str().unwrap(),
        fx.join("sebek.pcap").to_str().unwrap(),
        fx.join("honeywall-multi").to_str().unwrap(),
    ]);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let queries = [
        "flows",
        "status",
        "verify",
        "processes",
        "keystrokes",
        "hosts",
        "sensors",
        "pcap",
    ];
    let mut ran = 0;
    for line in readme.lines() {
        let Some(cmd) = line.strip_prefix("lumpy ") else {
            continue;
        };
        let cmd = cmd.split(" # ").next().unwrap_or(cmd).trim();
        let words: Vec<String> = cmd
            .split_whitespace()
            .map(|w| {
                w.replace("/srv/lumpy", &data)
                    .replace("flow.pcap", d.path().join("flow.pcap").to_str().unwrap())
            })
            .collect();
        if !queries.contains(&words[0].as_str()) || !words.iter().any(|w| w == &data) {
            continue;
        }
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let out = ok(&args);
        if args[0] == "pcap" {
            let written = std::fs::metadata(d.path().join("flow.pcap")).unwrap().len();
            assert!(written > 24, "lumpy {cmd}: no packets");
            ran += 1;
            continue;
        }
        assert!(!out.trim().is_empty(), "lumpy {cmd}: no output");
        assert!(
            !out.contains("0 processes") && !out.starts_with("0 flows"),
            "lumpy {cmd} found nothing:\n{out}"
        );
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} README query lines found");
}
