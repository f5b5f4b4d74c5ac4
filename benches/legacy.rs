//! Legacy import benchmark: `lumpy import legacy --mysql` of one sensor's
//! rows from an hflow database, side by side in one run with what an
//! operator would otherwise do to copy them: `mysqldump --where
//! sensor_id=N` of the same tables piped into `mariadb` (a fresh database).
//!
//! Run with `cargo bench --bench legacy` as a user that reaches MariaDB as
//! root over /run/mysqld/mysqld.sock. LUMPY_BENCH_FLOWS=N (default 200000)
//! sets the flow rows; sys_read gets half as many. The database starts from
//! fixtures/legacy/hflow.sql and is filled with MariaDB's sequence engine.
//! Results go to stdout as a Markdown table for docs/BENCHMARKS.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const SOCKET: &str = "/run/mysqld/mysqld.sock";

fn lumpy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lumpy"))
}

fn mariadb(db: Option<&str>, sql: &str) -> String {
    let mut cmd = Command::new("mariadb");
    cmd.args(["--batch", "--skip-column-names"]);
    if let Some(db) = db {
        cmd.arg(db);
    }
    let out = cmd.args(["-e", sql]).output().expect("the mariadb client");
    assert!(
        out.status.success(),
        "MariaDB must be running (scripts/test.sh starts it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fresh_db(name: &str) {
    mariadb(
        None,
        &format!("DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"),
    );
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

const TABLES: &str = "sensor os ids_sig flow command process process_tree process_to_com sys_read sys_write sys_open sys_socket ids";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let flows: u64 = std::env::var("LUMPY_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let reads = flows / 2;
    let src = "lumpy_bench_legacy_src";
    fresh_db(src);
    let ddl = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/legacy/hflow.sql");
    let status = Command::new("mariadb")
        .arg(src)
        .stdin(std::fs::File::open(&ddl).expect("fixtures/legacy/hflow.sql"))
        .status()
        .expect("mariadb");
    assert!(status.success());
    mariadb(
        Some(src),
        &format!(
            "INSERT INTO flow SELECT 4242, 100 + seq, 3405803776 + (seq % 65536), 3221225994, 1024 + (seq % 60000), \
             80, 6, 0, 0, 1300000000 + seq, seq % 1000, 1300000001 + seq, 0, 5, 600, 2, 27, 0, 0, \
             1300000000 + seq, 1, 1300000001 + seq, 0, 4, 900, 2, 26, 0, 0, 0, 0, seq % 2 FROM seq_1_to_{flows}; \
             INSERT INTO sys_read SELECT 4242, 10 + seq, 1 + (seq % 3), 0, 1300000000 + seq, 1290000000 + seq, \
             200 + seq, 0, 5, 12, 'cat /etc/shadow', 0 FROM seq_1_to_{reads}"
        ),
    );
    let rows: u64 = TABLES
        .split(' ')
        .map(|t| {
            mariadb(
                Some(src),
                &format!("SELECT COUNT(*) FROM `{t}` WHERE sensor_id = 4242"),
            )
            .parse::<u64>()
            .expect("a count")
        })
        .sum();
    let url = format!("mysql://root@localhost/{src}?socket={SOCKET}");
    let work = tempfile::tempdir().expect("tempdir");
    let (mut best_dump, mut best_import, mut repeat) = (f64::MAX, f64::MAX, 0.0);
    for round in 0..2 {
        let dst = "lumpy_bench_legacy_dst";
        fresh_db(dst);
        let mut dump = Command::new("sh");
        dump.args([
            "-c",
            &format!(
                "mysqldump --single-transaction --where='sensor_id=4242' {src} {TABLES} | mariadb {dst}"
            ),
        ]);
        best_dump = best_dump.min(timed(dump));
        mariadb(None, &format!("DROP DATABASE `{dst}`"));

        let data = work.path().join(format!("node{round}"));
        let data = data.to_str().expect("utf-8");
        let out = lumpy()
            .args([
                "init",
                "--data",
                data,
                "--sensor-id",
                "1",
                "--installed",
                "1700000000",
            ])
            .output()
            .expect("init");
        assert!(out.status.success());
        let mut import = lumpy();
        import.args([
            "import",
            "legacy",
            "--data",
            data,
            "--sensor-id",
            "4242",
            "--mysql",
            &url,
        ]);
        best_import = best_import.min(timed(import));
        let mut again = lumpy();
        again.args([
            "import",
            "legacy",
            "--data",
            data,
            "--sensor-id",
            "4242",
            "--mysql",
            &url,
        ]);
        repeat = timed(again);
        let flows_here = lumpy()
            .args(["status", "--data", data, "--json"])
            .output()
            .expect("status");
        let v: serde_json::Value = serde_json::from_slice(&flows_here.stdout).expect("json");
        assert_eq!(v["flows"].as_u64(), Some(flows + 3), "every flow arrived");
    }
    mariadb(None, &format!("DROP DATABASE `{src}`"));
    println!("| step | time, rows/s |");
    println!("|---|---|");
    println!(
        "| `mysqldump --where sensor_id=4242 \\| mariadb` ({rows} rows, best of 2) | {best_dump:.2} s, {:.0} rows/s |",
        rows as f64 / best_dump
    );
    println!(
        "| `lumpy import legacy --mysql` into a fresh node (best of 2) | {best_import:.2} s, {:.0} rows/s |",
        rows as f64 / best_import
    );
    println!("| import / dump time | {:.2}x |", best_import / best_dump);
    println!("| repeated import (nothing new) | {repeat:.2} s |");
}
