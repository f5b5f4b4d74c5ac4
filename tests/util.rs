//! Shared helpers: fresh directories, the lumpy command, fixture paths.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(
        p.exists(),
        "fixture {} is missing: run fixtures/make-fixtures.sh",
        p.display()
    );
    p
}

/// The lumpy executable: this build's, or `LUMPY_TEST_BIN` (a copy kept
/// aside, so a long campaign is not disturbed by a rebuild).
pub fn lumpy() -> Command {
    let bin =
        std::env::var_os("LUMPY_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_lumpy").into());
    let mut c = Command::new(bin);
    c.env_remove("LUMPY_LOG");
    c
}

/// Runs lumpy with `args`, returning its output (whatever the status).
pub fn run(args: &[&str]) -> Output {
    lumpy().args(args).output().expect("lumpy runs")
}

/// `lumpy config set --data DATA KEY VALUE`, which must succeed.
pub fn config_set(data: &str, key: &str, value: &str) {
    ok(&["config", "set", "--data", data, key, value]);
}

/// Runs lumpy and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "lumpy {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh node directory initialised as sensor `id`, installed at a fixed
/// time so two nodes made alike hold byte-identical segments.
pub fn new_node(id: u32) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = init_node_in(dir.path(), id);
    (dir, data)
}

/// `new_node`'s initialisation in `dir/node` (for a directory the caller
/// made, e.g. on a small filesystem).
pub fn init_node_in(dir: &Path, id: u32) -> String {
    let data = dir.join("node").display().to_string();
    ok(&[
        "init",
        "--data",
        &data,
        "--sensor-id",
        &id.to_string(),
        "--installed",
        "1700000000",
        "--honeypot-net",
        "192.0.2.0/24",
        "--honeypot-net",
        "2001:db8:1::/64",
    ]);
    data
}

/// A sensor's root hash as `lumpy status --json` gives it ("" when the
/// node holds nothing of the sensor).
pub fn sensor_root(data: &str, sensor: u32) -> String {
    sensor_status(data, sensor)
        .map(|s| s["root"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A sensor's entry in `lumpy status --json`, if the node knows it.
pub fn sensor_status(data: &str, sensor: u32) -> Option<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", data, "--json"])).unwrap();
    v["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sensor_id"] == sensor)
        .cloned()
}

/// `lumpy ingest` of one file of fixtures/ into the node at `data`.
pub fn ingest_fixture(data: &str, name: &str) -> String {
    ok(&["ingest", "--data", data, fixture(name).to_str().unwrap()])
}

/// `lumpy pcap` of one flow of `sensor` at `data` into `out`: its bytes,
/// or None when the command fails (a flow whose pcap is not held there).
pub fn try_flow_pcap(
    data: &str,
    sensor: u32,
    flow: impl std::fmt::Display,
    out: &Path,
) -> Option<Vec<u8>> {
    let flow = flow.to_string();
    let sensor = sensor.to_string();
    let args = [
        "pcap",
        "--data",
        data,
        "--sensor",
        &sensor,
        "--flow",
        &flow,
        "-o",
        out.to_str().unwrap(),
    ];
    run(&args)
        .status
        .success()
        .then(|| std::fs::read(out).unwrap())
}

/// [`try_flow_pcap`] that must succeed.
pub fn flow_pcap(data: &str, sensor: u32, flow: impl std::fmt::Display, out: &Path) -> Vec<u8> {
    let shown = format!("pcap of flow {flow} of sensor {sensor} at {data}");
    try_flow_pcap(data, sensor, flow, out).unwrap_or_else(|| panic!("{shown} failed"))
}

/// Every segment file under a node, as (relative path) sorted.
pub fn segment_files(data: &str) -> Vec<String> {
    let root = Path::new(data).join("segments");
    let mut out = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(&root) {
        for d in dirs.flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                out.push(f.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// `lumpy flows --format json` parsed.
pub fn flows_json(data: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["flows", "--data", data, "--format", "json"];
    args.extend_from_slice(extra);
    let text = ok(&args);
    serde_json::from_str(&text).expect("flows --format json is JSON")
}

/// Runs an external tool, panicking with its output when it fails.
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is required for this test (the README's test command installs it): {e}")
    });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a classic little-endian microsecond pcap holding `copies` copies
/// of every packet of `src` (a classic pcap), each copy shifted `shift_secs`
/// later, so tests can make large real-traffic captures.
pub fn replicate_pcap(src: &Path, dst: &Path, copies: u32, shift_secs: u32) {
    let bytes = std::fs::read(src).expect("read pcap");
    assert_eq!(
        &bytes[0..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "needs a little-endian microsecond pcap"
    );
    let mut out = Vec::with_capacity(bytes.len() * copies as usize);
    out.extend_from_slice(&bytes[..24]);
    for c in 0..copies {
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            let sec = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) + c * shift_secs;
            out.extend_from_slice(&sec.to_le_bytes());
            out.extend_from_slice(&bytes[at + 4..at + 16 + caplen]);
            at += 16 + caplen;
        }
    }
    std::fs::write(dst, out).expect("write pcap");
}

/// A self-signed leaf certificate for `ip` (in its subjectAltName), made by
/// openssl: (dir holding them, cert, key).
pub fn self_signed(ip: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-days",
            "2",
            "-subj",
            &format!("/CN=lumpy-test-{ip}"),
            "-addext",
            &format!("subjectAltName=IP:{ip}"),
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    (dir, cert, key)
}
