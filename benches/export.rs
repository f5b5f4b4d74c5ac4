//! MySQL export benchmark: `lumpy export mysql` into a fresh MariaDB database
//! side by side with `mariadb DB < dump.sql` of the same rows (the dump made
//! by `lumpy export mysql --sql`), in one run.
//!
//! Run with `cargo bench --bench export` as a user that reaches MariaDB as
//! root over /run/mysqld/mysqld.sock (LUMPY_BENCH_COPIES=N changes the
//! capture: N copies of fixtures/honeynet.pcap, about 287 flows each;
//! default 720, i.e. about 206k flow rows). Results go to stdout as a
//! Markdown table for docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{init_node, lumpy};

const SOCKET: &str = "/run/mysqld/mysqld.sock";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap")
}

/// `copies` copies of every packet of the fixture, each shifted 1000 s later
/// so flows do not merge.
fn make_capture(dst: &Path, copies: u32) {
    use std::io::Write;
    let src = std::fs::read(fixture()).expect("fixtures/honeynet.pcap");
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).expect("create capture"));
    out.write_all(&src[..24]).expect("write");
    for copy in 0..copies {
        let mut at = 24;
        while at + 16 <= src.len() {
            let caplen =
                u32::from_le_bytes(src[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let sec =
                u32::from_le_bytes(src[at..at + 4].try_into().expect("4 bytes")) + copy * 1000;
            out.write_all(&sec.to_le_bytes()).expect("write");
            out.write_all(&src[at + 4..at + 16 + caplen])
                .expect("write");
            at += 16 + caplen;
        }
    }
    out.flush().expect("flush");
}

fn timed(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed().as_secs_f64()
}

fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args(["--batch", "--skip-column-names", "-e", sql])
        .output()
        .expect("the mariadb client");
    assert!(
        out.status.success(),
        "MariaDB must be running (scripts/test.sh starts it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fresh_db(name: &str) {
    mariadb(&format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
    ));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let copies: u32 = std::env::var("LUMPY_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(720);
    let work = tempfile::tempdir().expect("tempdir");
    let capture = work.path().join("capture.pcap");
    make_capture(&capture, copies);
    let data = work.path().join("node");
    let d = data.to_str().expect("utf-8 path");
    init_node(d);
    let mut ingest = lumpy();
    ingest.args(["ingest", "--data", d, capture.to_str().expect("utf-8")]);
    timed(ingest);

    let rows: u64 = {
        let m = rusqlite::Connection::open(data.join("mirror.sqlite")).expect("mirror");
        m.query_row(
            "SELECT (SELECT count(*) FROM flow) + (SELECT count(*) FROM x_flow6) + (SELECT count(*) FROM sensor) \
             + (SELECT count(*) FROM argus)",
            [],
            |r| r.get::<_, i64>(0),
        )
        .expect("count") as u64
    };

    // The dump of the same rows.
    let dump = work.path().join("dump.sql");
    let mut sql = lumpy();
    sql.args([
        "export",
        "mysql",
        "--data",
        d,
        "--sql",
        dump.to_str().expect("utf-8"),
    ]);
    let t_dump = timed(sql);
    let dump_mb = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;

    let (db_load, db_export) = ("lumpy_bench_load", "lumpy_bench_export");
    let mut t_load = Vec::new();
    let mut t_export = Vec::new();
    // Three rounds, alternating, so neither side always runs on a warmer
    // server; the best of each is reported (the machine is shared).
    for _ in 0..3 {
        fresh_db(db_load);
        let mut load = Command::new("sh");
        load.args(["-c", &format!("mariadb {db_load} < '{}'", dump.display())]);
        t_load.push(timed(load));

        fresh_db(db_export);
        let mut export = lumpy();
        export.args([
            "export",
            "mysql",
            "--data",
            d,
            "--url",
            &format!("mysql://root@localhost/{db_export}?socket={SOCKET}"),
        ]);
        t_export.push(timed(export));
    }
    let same = mariadb(&format!(
        "CHECKSUM TABLE {db_load}.flow, {db_export}.flow, {db_load}.lumpy_flow6, {db_export}.lumpy_flow6"
    ));
    let sums: Vec<&str> = same.lines().filter_map(|l| l.split('\t').nth(1)).collect();
    assert!(
        sums.len() == 4 && sums[0] == sums[1] && sums[2] == sums[3],
        "the two databases differ: {same}"
    );
    let mut again = lumpy();
    again.args([
        "export",
        "mysql",
        "--data",
        d,
        "--url",
        &format!("mysql://root@localhost/{db_export}?socket={SOCKET}"),
    ]);
    let t_again = timed(again);
    mariadb(&format!(
        "DROP DATABASE IF EXISTS {db_load}; DROP DATABASE IF EXISTS {db_export}"
    ));

    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let (load, export) = (best(&t_load), best(&t_export));
    println!(
        "rows: {rows} (flow + lumpy_flow6 + sensor + argus), {copies} copies of fixtures/honeynet.pcap; MariaDB {}",
        mariadb("SELECT VERSION()")
    );
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| `lumpy export mysql --sql` (dump, {dump_mb:.0} MB) | {t_dump:.2} s, {:.0} rows/s |",
        rows as f64 / t_dump
    );
    println!(
        "| `mariadb DB < dump.sql` (best of {}) | {load:.2} s, {:.0} rows/s |",
        t_load.len(),
        rows as f64 / load
    );
    println!(
        "| `lumpy export mysql --url` into a fresh DB (best of {}) | {export:.2} s, {:.0} rows/s |",
        t_export.len(),
        rows as f64 / export
    );
    println!("| export / load time | {:.2}x |", export / load);
    println!("| repeated export (nothing to send) | {t_again:.2} s |");
}
