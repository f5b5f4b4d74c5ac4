//! A flow's pcap on a roo holding >= 10 GiB of capture: locally, and through
//! two proxy hops on 127.0.0.x, side by side with `tcpdump -r` of the same
//! raw file and the same filter.
//!
//! Run with `cargo bench --bench pcap` (LUMPY_BENCH_PCAP_GIB=N, default 10;
//! needs about 2.2 x that on /tmp). The capture repeats the fixture's
//! largest TCP flow (an HTTP download), each copy 200 s later, so each copy
//! is a flow of its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{biggest_flow, free_port, repeat_packets, run, serve};

fn make_capture(dst: &Path, target: u64) -> u64 {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/honeynet.pcap");
    let (header, flow) = biggest_flow(&fixture);
    repeat_packets(dst, target, &header, &flow)
}

fn p95(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let median = v[v.len() / 2];
    let p = v[((v.len() as f64 * 0.95).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)];
    (median, p)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let gib: f64 = std::env::var("LUMPY_BENCH_PCAP_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let work = tempfile::tempdir().expect("tempdir");
    let raw = work.path().join("capture.pcap");
    let size = make_capture(&raw, (gib * 1073741824.0) as u64);
    let (roo, l1, l2) = (
        work.path().join("roo"),
        work.path().join("l1"),
        work.path().join("l2"),
    );
    for (d, id) in [(&roo, "11"), (&l1, "12"), (&l2, "13")] {
        run(&[
            "init",
            "--data",
            d.to_str().expect("utf-8"),
            "--sensor-id",
            id,
        ]);
    }
    run(&[
        "config",
        "set",
        "--data",
        roo.to_str().expect("utf-8"),
        "store.segment_target_bytes",
        "16777216",
    ]);
    let t = Instant::now();
    run(&[
        "ingest",
        "--data",
        roo.to_str().expect("utf-8"),
        raw.to_str().expect("utf-8"),
    ]);
    let ingest_s = t.elapsed().as_secs_f64();
    let flows_json = run(&[
        "flows",
        "--data",
        roo.to_str().expect("utf-8"),
        "--format",
        "csv",
    ]);
    let flows: Vec<Vec<String>> = flows_json
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let step = (flows.len() / 100).max(1);
    let sample: Vec<&Vec<String>> = flows.iter().step_by(step).take(100).collect();

    let mut local = Vec::new();
    for f in &sample {
        let t = Instant::now();
        run(&[
            "pcap",
            "--data",
            roo.to_str().expect("utf-8"),
            "--sensor",
            "11",
            "--flow",
            &f[1],
            "-o",
            "/dev/null",
        ]);
        local.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let (proo, pl1, pl2) = (
        free_port("127.0.0.31"),
        free_port("127.0.0.32"),
        free_port("127.0.0.33"),
    );
    common::link(&l1, &roo, "roo", &format!("https://127.0.0.31:{proo}"), &[]);
    common::link(&l2, &l1, "l1", &format!("https://127.0.0.32:{pl1}"), &[]);
    let analyst = run(&[
        "peer",
        "add",
        "--data",
        l2.to_str().expect("utf-8"),
        "analyst",
    ]);
    let secret = work.path().join("analyst.secret");
    std::fs::write(&secret, analyst).expect("write");
    let s_roo = serve(&roo, &format!("127.0.0.31:{proo}"));
    run(&["pull", "--data", l1.to_str().expect("utf-8")]);
    let s_l1 = serve(&l1, &format!("127.0.0.32:{pl1}"));
    run(&["pull", "--data", l2.to_str().expect("utf-8")]);
    let s_l2 = serve(&l2, &format!("127.0.0.33:{pl2}"));
    let url = format!("https://127.0.0.33:{pl2}");
    let mut proxied = Vec::new();
    for f in &sample {
        let t = Instant::now();
        run(&[
            "pcap",
            "--node",
            &url,
            "--secret-file",
            secret.to_str().expect("utf-8"),
            "--sensor",
            "11",
            "--flow",
            &f[1],
            "-o",
            "/dev/null",
        ]);
        proxied.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop((s_l2, s_l1, s_roo));

    let mut tcpdump = Vec::new();
    for f in sample.iter().take(3) {
        let filter = format!(
            "tcp and host {} and host {} and port {} and port {}",
            f[5], f[7], f[6], f[8]
        );
        let t = Instant::now();
        let st = Command::new("tcpdump")
            .args([
                "-r",
                raw.to_str().expect("utf-8"),
                "-w",
                "/dev/null",
                &filter,
            ])
            .stderr(Stdio::null())
            .status()
            .expect("tcpdump");
        assert!(st.success());
        tcpdump.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (lm, lp) = p95(local);
    let (pm, pp) = p95(proxied);
    let (tm, tp) = p95(tcpdump);
    println!(
        "capture: {size} bytes ({:.1} GiB), {} flows, ingested in {ingest_s:.0} s",
        size as f64 / 1073741824.0,
        flows.len()
    );
    println!();
    println!("| one flow's pcap | median | p95 |");
    println!("|---|---|---|");
    println!(
        "| `lumpy pcap --data` on the roo (100 flows, whole command) | {lm:.1} ms | {lp:.1} ms |"
    );
    println!(
        "| `lumpy pcap --node` through two proxy hops (100 flows, whole command) | {pm:.1} ms | {pp:.1} ms |"
    );
    println!(
        "| `tcpdump -r` of the raw capture, same filter (3 flows) | {tm:.0} ms | {tp:.0} ms |"
    );
}
