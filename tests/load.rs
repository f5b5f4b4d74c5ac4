//! `lumpy serve` under hostile load (issue 21): many clients at once against
//! a real node on 127.0.21.x. Outcomes and resident memory are asserted,
//! never timings; every client is bounded in count and time.

use std::time::Duration;

use serde_json::json;

use crate::sync::{Served, free_port};
use crate::util::*;
use crate::web::{PASSWORD, add_user, serve_ui};

/// What `lumpy serve` may hold resident, whatever the clients do.
const MEMORY_BUDGET_KIB: u64 = 512 * 1024;

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A node with a UI on `ip`, with users alice and bob; (node dir, UI base
/// URL, the server).
fn node_with_ui(ip: &str) -> (tempfile::TempDir, String, Served) {
    let (dir, data) = new_node(1);
    add_user(&data, "alice", PASSWORD);
    add_user(&data, "bob", PASSWORD);
    let ui_port = free_port(ip);
    let served = serve_ui(&data, ip, free_port(ip), ip, ui_port);
    (dir, format!("http://{ip}:{ui_port}"), served)
}

fn runtime() -> tokio::runtime::Runtime {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Statuses of `n` logins sent at once (each on its own connection).
fn parallel_logins(base: &str, n: usize, user: &str, password: &str) -> Vec<u16> {
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let body = json!({"user": user, "password": password}).to_string();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let request = client
                    .post(format!("{base}/api/v1/login"))
                    .header("content-type", "application/json")
                    .body(body.clone());
                tokio::spawn(async move {
                    match request.send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(e) => panic!("a login got no answer: {e}"),
                    }
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        statuses
    })
}

/// 500 wrong-password logins at once from one address: at most 10 are
/// checked (401), the others are refused 429 before any hashing, memory
/// stays in budget, and another user at the same address still logs in.
#[test]
fn parallel_wrong_password_logins_are_counted_before_hashing() {
    let (_dir, base, served) = node_with_ui("127.0.21.1");
    let statuses = parallel_logins(&base, 500, "alice", "not the password");
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert!(
        checked <= 10,
        "{checked} wrong passwords were checked (at most 10)"
    );
    assert_eq!(
        checked + throttled + busy,
        500,
        "answers other than 401/429/503: {statuses:?}"
    );
    assert!(
        throttled >= 490 - busy,
        "{throttled} throttled, {busy} busy"
    );
    // The limit holds for alice from this address, not for bob.
    assert_eq!(parallel_logins(&base, 1, "alice", PASSWORD), vec![429]);
    assert_eq!(parallel_logins(&base, 1, "bob", PASSWORD), vec![200]);
    let peak = peak_rss_kib(served.child.id());
    assert!(
        peak < MEMORY_BUDGET_KIB,
        "serve peaked at {peak} KiB (budget {MEMORY_BUDGET_KIB})"
    );
}
