//! Sync between real nodes: separate `lumpy serve` processes on 127.0.0.x
//! ports, linked with real link tokens, pulling over TLS (plain HTTP
//! only where a test asks for it, with an http:// URL).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::util::*;

/// A running `lumpy serve`, killed when dropped.
pub struct Served {
    pub child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Stops the node with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status:?} on SIGTERM");
    }
}

/// A free port on `ip` (bound and released).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn serve(data: &str, ip: &str, port: u16) -> Served {
    let mut child = lumpy()
        .args(["serve", "--data", data, "--listen", &format!("{ip}:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "serve said: {line}");
    Served { child }
}

/// Makes `parent` pull from `child` under the names given; returns the
/// link token text. An https:// URL is the default an operator gets: the
/// token pins the child's certificate. An http:// URL asks for plain HTTP
/// explicitly on both sides (the child's `serve.peer_plain`, the parent's
/// `--plain`), as only loopback tests may.
pub fn link(
    parent: &str,
    parent_name: &str,
    child: &str,
    child_name: &str,
    url: &str,
    extra: &[&str],
) -> String {
    link_every(parent, parent_name, child, child_name, url, "1s", extra)
}

/// As `link`, pulling every `interval`.
pub fn link_every(
    parent: &str,
    parent_name: &str,
    child: &str,
    child_name: &str,
    url: &str,
    interval: &str,
    extra: &[&str],
) -> String {
    let plain = url.starts_with("http://");
    if plain {
        config_set(child, "serve.peer_plain", "true");
    }
    let secret = ok(&["peer", "add", "--data", child, parent_name]);
    let file = Path::new(parent).join(format!("{child_name}.secret-in"));
    std::fs::write(&file, &secret).unwrap();
    let mut args = vec![
        "child",
        "add",
        "--data",
        parent,
        child_name,
        url,
        "--secret-file",
        file.to_str().unwrap(),
        "--interval",
        interval,
    ];
    if plain {
        args.push("--plain");
    }
    args.extend_from_slice(extra);
    ok(&args);
    std::fs::remove_file(file).unwrap();
    secret.trim().to_string()
}

fn flows_of(data: &str, sensor: u32) -> Vec<serde_json::Value> {
    flows_json(data, &["--sensor", &sensor.to_string()])
}

/// Flow rows per sensor read straight from a running node's SQLite mirror.
fn mirror_flow_count(data: &str, sensor: u32) -> usize {
    let path = Path::new(data).join("mirror.sqlite");
    let Ok(m) = lumpy::mirror::Mirror::open(&path) else {
        return 0;
    };
    m.flows(&lumpy::mirror::FlowQuery {
        sensor: Some(sensor),
        ..Default::default()
    })
    .map(|f| f.len())
    .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ingest(data: &str, fixture_name: &str) {
    ok(&[
        "ingest",
        "--data",
        data,
        fixture(fixture_name).to_str().unwrap(),
    ]);
}

#[test]
fn a_diamond_dag_converges_and_every_level_holds_the_same_rows() {
    let (_a, a) = new_node(1001);
    let (_b, b) = new_node(1002);
    let (_l1, l1) = new_node(2001);
    let (_l2, l2) = new_node(2002);
    let (_t, t) = new_node(3001);
    ingest(&a, "honeynet.pcap");
    ingest(&b, "vlan.pcap");
    let (pa, pb, pl1, pl2) = (
        free_port("127.0.0.2"),
        free_port("127.0.0.3"),
        free_port("127.0.0.4"),
        free_port("127.0.0.5"),
    );
    let url = |ip: &str, p: u16| format!("https://{ip}:{p}");
    let every = "2s";
    link_every(&l1, "l1", &a, "roo-a", &url("127.0.0.2", pa), every, &[]);
    link_every(&l1, "l1", &b, "roo-b", &url("127.0.0.3", pb), every, &[]);
    link_every(&l2, "l2", &b, "roo-b", &url("127.0.0.3", pb), every, &[]);
    link_every(&t, "top", &l1, "l1", &url("127.0.0.4", pl1), every, &[]);
    link_every(&t, "top", &l2, "l2", &url("127.0.0.5", pl2), every, &[]);
    // Roo A also captures live: a spool directory it follows.
    let spool = Path::new(&a).parent().unwrap().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    config_set(&a, "capture.follow", spool.to_str().unwrap());
    ok(&["config", "set", "--data", &a, "capture.settle_secs", "1"]);
    let want_a = flows_of_stopped_copy(&a, 1001);
    let want_b = flows_of_stopped_copy(&b, 1002);
    let sa = serve(&a, "127.0.0.2", pa);
    let sb = serve(&b, "127.0.0.3", pb);
    let sl1 = serve(&l1, "127.0.0.4", pl1);
    let sl2 = serve(&l2, "127.0.0.5", pl2);
    let st = serve(&t, "127.0.0.6", free_port("127.0.0.6"));
    wait_for(
        "both roos' flows at the top",
        Duration::from_secs(30),
        || mirror_flow_count(&t, 1001) == want_a && mirror_flow_count(&t, 1002) == want_b,
    );
    // New traffic at the roo reaches the top within three pull intervals of
    // the roo having it (two hops: A -> L1 -> T).
    std::fs::copy(fixture("cooked.pcap"), spool.join("log")).unwrap();
    wait_for(
        "the roo to ingest its new capture",
        Duration::from_secs(30),
        || mirror_flow_count(&a, 1001) > want_a,
    );
    let at_roo = Instant::now();
    let now_a = mirror_flow_count(&a, 1001);
    wait_for("the new flows at the top", Duration::from_secs(30), || {
        mirror_flow_count(&t, 1001) == now_a
    });
    let took = at_roo.elapsed();
    assert!(
        took <= Duration::from_secs(3 * 2),
        "new records took {took:?} to reach the top (3 intervals = 6 s)"
    );
    // One more round so every summary reflects the final state.
    std::thread::sleep(Duration::from_millis(2500));
    // A serving node still answers read-only queries from its mirror.
    assert_eq!(flows_of(&t, 1001).len(), mirror_flow_count(&t, 1001));
    for s in [st, sl1, sl2, sa, sb] {
        s.stop();
    }
    for data in [&l1, &t] {
        assert_eq!(
            flows_of(data, 1001),
            flows_of(&a, 1001),
            "sensor 1001 at {data}"
        );
    }
    for data in [&l1, &l2, &t] {
        assert_eq!(
            flows_of(data, 1002),
            flows_of(&b, 1002),
            "sensor 1002 at {data}"
        );
    }
    for data in [&a, &b, &l1, &l2, &t] {
        ok(&["verify", "--data", data]);
    }
    // A hash of each table's rows per sensor is the same at every level.
    for table in ["flow", "x_flow6", "sensor"] {
        for (sensor, holders) in [(1001u32, vec![&a, &l1, &t]), (1002, vec![&b, &l1, &l2, &t])] {
            let hashes: Vec<[u8; 32]> =
                holders.iter().map(|d| row_hash(d, table, sensor)).collect();
            assert!(
                hashes.windows(2).all(|w| w[0] == w[1]),
                "{table} rows of sensor {sensor} differ between levels"
            );
        }
    }
    // Records moved, pcap stayed below (proxy links): T holds no pcap segment.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &t, "--json"])).unwrap();
    assert_eq!(v["pcap_segments"], 0);
    assert!(v["record_segments"].as_u64().unwrap() > 0);
    // Roos are two hops below the top (1002 through either lumpy), the
    // lumpies' own sensors one, the top's own zero.
    for s in v["sensors"].as_array().unwrap() {
        let want = match s["sensor_id"].as_u64().unwrap() {
            1001 | 1002 => 2,
            2001 | 2002 => 1,
            _ => 0,
        };
        assert_eq!(s["hops"], want, "{s}");
    }
}

fn row_hash(data: &str, table: &str, sensor: u32) -> [u8; 32] {
    let m = lumpy::mirror::Mirror::open(&Path::new(data).join("mirror.sqlite")).unwrap();
    m.row_hash(table, Some(sensor)).unwrap()
}

/// Flow count of a node that is not running.
fn flows_of_stopped_copy(data: &str, sensor: u32) -> usize {
    flows_of(data, sensor).len()
}

/// A byte-counting TCP relay in front of `target`.
struct Relay {
    port: u16,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

fn relay(target: String) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let (u, d) = (up.clone(), down.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            pipe(
                conn.try_clone().unwrap(),
                server.try_clone().unwrap(),
                u.clone(),
            );
            pipe(server, conn, d.clone());
        }
    });
    Relay { port, up, down }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    if to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

#[test]
fn a_pull_with_nothing_new_is_one_small_round_trip() {
    let (_a, a) = new_node(1101);
    // Small segments, so the child holds many of them.
    config_set(&a, "store.segment_target_bytes", "65536");
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 20, 1000);
    ok(&["ingest", "--data", &a, big.to_str().unwrap()]);
    let (_p, p) = new_node(2101);
    let port = free_port("127.0.0.7");
    let r = relay(format!("127.0.0.7:{port}"));
    link(
        &p,
        "p",
        &a,
        "a",
        &format!("http://127.0.0.1:{}", r.port),
        &["--pcap", "mirror"],
    );
    let sa = serve(&a, "127.0.0.7", port);
    let first = ok(&["pull", "--data", &p]);
    assert!(first.contains("segments"), "{first}");
    let segments = segment_files(&a).len();
    assert!(segments > 100, "the child holds {segments} segments");
    let held = segment_files(&p);
    let missing = segment_files(&a)
        .into_iter()
        .filter(|s| !held.contains(s))
        .count();
    assert_eq!(missing, 0, "a mirror link copies every segment");
    // Bytes on the wire for the first sync: at most 1.05 x the stored bytes plus metadata.
    let stored: u64 = segment_files(&a)
        .iter()
        .map(|n| {
            std::fs::metadata(Path::new(&a).join("segments").join(&n[..2]).join(n))
                .unwrap()
                .len()
        })
        .sum();
    let down = r.down.load(Ordering::Relaxed);
    assert!(
        down as f64 <= stored as f64 * 1.05 + 200.0 * segments as f64,
        "{down} bytes for {stored} stored"
    );
    let (u0, d0) = (r.up.load(Ordering::Relaxed), r.down.load(Ordering::Relaxed));
    let again = ok(&["pull", "--data", &p]);
    assert!(again.contains("nothing new (1 round trip)"), "{again}");
    let (u1, d1) = (
        r.up.load(Ordering::Relaxed) - u0,
        r.down.load(Ordering::Relaxed) - d0,
    );
    assert!(
        u1 <= 512 && d1 <= 512,
        "no-op pull moved {u1} bytes up and {d1} down"
    );
    sa.stop();
    assert_eq!(flows_json(&p, &["--sensor", "1101"]), flows_json(&a, &[]));
}

#[test]
fn credentials_are_checked_and_nothing_changes_on_refusal() {
    let (_a, a) = new_node(1201);
    ingest(&a, "honeynet.pcap");
    let secret = ok(&["peer", "add", "--data", &a, "good"]);
    let far_secret = ok(&["peer", "add", "--data", &a, "far", "--allow", "10.9.9.0/24"]);
    let port = free_port("127.0.0.8");
    let sa = serve(&a, "127.0.0.8", port);
    // curl does not pin (-k): this test is about the signatures.
    let url = format!("https://127.0.0.8:{port}/v1/summary");
    let curl = |header: Option<&str>| -> String {
        let mut args = vec![
            "-s".to_string(),
            "-k".into(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
        ];
        if let Some(h) = header {
            args.push("-H".into());
            args.push(format!("x-lumpy-auth: {h}"));
        }
        args.push(url.clone());
        tool("curl", &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let good = lumpy::sync::auth::LinkToken::parse(&secret).unwrap().secret;
    let header = lumpy::sync::auth::sign(&good, "GET", "/v1/summary", now, b"").unwrap();
    assert_eq!(curl(Some(&header)), "200");
    assert_eq!(curl(Some(&header)), "401", "a replayed request is refused");
    assert_eq!(curl(None), "401");
    let wrong = lumpy::sync::auth::Secret::generate("good").unwrap();
    assert_eq!(
        curl(Some(
            &lumpy::sync::auth::sign(&wrong, "GET", "/v1/summary", now, b"").unwrap()
        )),
        "401"
    );
    let expired = lumpy::sync::auth::sign(&good, "GET", "/v1/summary", now - 3600, b"").unwrap();
    assert_eq!(curl(Some(&expired)), "401");
    assert_eq!(curl(Some("garbage")), "401");
    // A parent whose address is outside its link's allowed network: 403,
    // but only once its signature holds (else a stranger would learn which
    // links exist).
    let wrong_far = lumpy::sync::auth::Secret::generate("far").unwrap();
    assert_eq!(
        curl(Some(
            &lumpy::sync::auth::sign(&wrong_far, "GET", "/v1/summary", now, b"").unwrap()
        )),
        "401"
    );
    let far = lumpy::sync::auth::LinkToken::parse(&far_secret)
        .unwrap()
        .secret;
    assert_eq!(
        curl(Some(
            &lumpy::sync::auth::sign(&far, "GET", "/v1/summary", now, b"").unwrap()
        )),
        "403"
    );
    let segs = segment_files(&a);
    sa.stop();
    assert_eq!(segment_files(&a), segs);
    // The secret is in no file on the child: only the public key is kept.
    // (lumpy-link-v2:NAME:SECRET:FINGERPRINT)
    let key_part = secret.trim().split(':').nth(2).unwrap().to_string();
    for f in walk_all(Path::new(&a)) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(key_part.len())
                .any(|w| w == key_part.as_bytes()),
            "secret found in {}",
            f.display()
        );
    }
}

fn walk_all(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_all(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn a_link_that_would_close_a_cycle_is_refused() {
    let (_a, a) = new_node(1301);
    let (_b, b) = new_node(1302);
    let (pa, pb) = (free_port("127.0.0.9"), free_port("127.0.0.10"));
    link(&a, "a", &b, "b", &format!("https://127.0.0.10:{pb}"), &[]);
    link(&b, "b", &a, "a", &format!("https://127.0.0.9:{pa}"), &[]);
    let sb = serve(&b, "127.0.0.10", pb);
    ok(&["pull", "--data", &a]);
    sb.stop();
    let sa = serve(&a, "127.0.0.9", pa);
    let out = run(&["pull", "--data", &b]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cycle"), "{}", stderr(&out));
    // Adding the closing link while the other end is reachable is refused at once.
    let secret = ok(&["peer", "add", "--data", &a, "b-again"]);
    let file = Path::new(&b).join("again.secret-in");
    std::fs::write(&file, secret).unwrap();
    let url = format!("https://127.0.0.9:{pa}");
    let add = run(&[
        "child",
        "add",
        "--data",
        &b,
        "a-again",
        &url,
        "--secret-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(add.status.code(), Some(2));
    assert!(stderr(&add).contains("cycle"), "{}", stderr(&add));
    assert!(!ok(&["config", "show", "--data", &b]).contains("a-again"));
    sa.stop();
}

#[test]
fn a_dead_child_leaves_the_parent_serving_and_reporting() {
    let (_a, a) = new_node(1401);
    let (_l, l) = new_node(2401);
    ingest(&a, "honeynet.pcap");
    let pa = free_port("127.0.0.11");
    link(&l, "l", &a, "a", &format!("https://127.0.0.11:{pa}"), &[]);
    let sa = serve(&a, "127.0.0.11", pa);
    ok(&["pull", "--data", &l]);
    drop(sa); // kill -9: the child is gone
    let out = run(&["pull", "--data", &l]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("child a"), "{}", stderr(&out));
    let status = ok(&["status", "--data", &l]);
    assert!(status.contains("last error"), "{status}");
    assert_eq!(flows_of(&l, 1401), flows_of(&a, 1401));
}

#[test]
fn a_corrupted_segment_at_a_child_is_never_propagated() {
    let (_a, a) = new_node(1501);
    let (_l, l) = new_node(2501);
    ingest(&a, "honeynet.pcap");
    // Damage one record segment at the child before the parent pulls.
    let victim = segment_files(&a)
        .into_iter()
        .find(|n| {
            let b = std::fs::read(Path::new(&a).join("segments").join(&n[..2]).join(n)).unwrap();
            b[10] == 2
        })
        .unwrap();
    let path = Path::new(&a)
        .join("segments")
        .join(&victim[..2])
        .join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let pa = free_port("127.0.0.12");
    link(&l, "l", &a, "a", &format!("https://127.0.0.12:{pa}"), &[]);
    let sa = serve(&a, "127.0.0.12", pa);
    let _ = run(&["pull", "--data", &l]);
    sa.stop();
    assert!(
        !segment_files(&l).contains(&victim),
        "the damaged segment reached the parent"
    );
    ok(&["verify", "--data", &l]);
    let v = run(&["verify", "--data", &a]);
    assert_eq!(v.status.code(), Some(1));
    assert!(stdout(&v).contains(&victim));
}

#[test]
fn kill_9_of_the_parent_mid_transfer_then_restart_loses_and_duplicates_nothing() {
    let (_a, a) = new_node(1601);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 60, 1000);
    ok(&["ingest", "--data", &a, big.to_str().unwrap()]);
    let (_l, l) = new_node(2601);
    let pa = free_port("127.0.0.13");
    link(
        &l,
        "l",
        &a,
        "a",
        &format!("https://127.0.0.13:{pa}"),
        &["--pcap", "mirror"],
    );
    let sa = serve(&a, "127.0.0.13", pa);
    for delay in [30u64, 120, 250] {
        let mut child = lumpy()
            .args(["pull", "--data", &l])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        ok(&["verify", "--data", &l]);
    }
    ok(&["pull", "--data", &l]);
    sa.stop();
    ok(&["verify", "--data", &l]);
    let held = segment_files(&l);
    let missing = segment_files(&a)
        .into_iter()
        .filter(|s| !held.contains(s))
        .count();
    assert_eq!(missing, 0, "every segment of the child arrived");
    assert_eq!(flows_of(&l, 1601), flows_of(&a, 1601));
}

#[test]
fn links_can_cross_untrusted_networks_over_tls() {
    let (_a, a) = new_node(1701);
    ingest(&a, "honeynet.pcap");
    let (_certs, cert, key) = self_signed("127.0.0.14");
    config_set(&a, "serve.tls_cert", cert.to_str().unwrap());
    config_set(&a, "serve.tls_key", key.to_str().unwrap());
    let (_l, l) = new_node(2701);
    let pa = free_port("127.0.0.14");
    link(&l, "l", &a, "a", &format!("https://127.0.0.14:{pa}"), &[]);
    let sa = serve(&a, "127.0.0.14", pa);
    // Plain HTTP to the TLS port gets nothing.
    let plain = std::process::Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            &format!("http://127.0.0.14:{pa}/v1/summary"),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("sensors"));
    ok(&["pull", "--data", &l]);
    // The token pinned the operator's certificate: openssl's SHA-256 of it.
    let fp = tool(
        "openssl",
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            cert.to_str().unwrap(),
        ],
    );
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "");
    let shown = ok(&["config", "show", "--data", &l]);
    assert!(shown.contains(&fp.to_lowercase()), "{fp} not in\n{shown}");
    // Plain HTTP is never the quiet fallback: an http:// URL without
    // --plain is refused, and so is a token-less https:// link.
    let token = ok(&["peer", "add", "--data", &a, "l2"]);
    let file = Path::new(&l).join("l2.token");
    std::fs::write(&file, &token).unwrap();
    let add = |url: &str, file: &Path| {
        run(&[
            "child",
            "add",
            "--data",
            &l,
            "a2",
            url,
            "--secret-file",
            file.to_str().unwrap(),
        ])
    };
    let out = add(&format!("http://127.0.0.14:{pa}"), &file);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--plain"), "{}", stderr(&out));
    let bare = lumpy::sync::auth::LinkToken::parse(&token).unwrap().secret;
    std::fs::write(&file, bare.to_text()).unwrap();
    let out = add(&format!("https://127.0.0.14:{pa}"), &file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no certificate fingerprint"),
        "{}",
        stderr(&out)
    );
    sa.stop();
    assert_eq!(flows_of(&l, 1701), flows_of(&a, 1701));
}

#[test]
fn two_incarnations_claiming_one_sensor_id_are_flagged_and_never_merged() {
    // Two installs that (wrongly) got the same sensor id.
    let (_a, a) = new_node(1801);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b").display().to_string();
    ok(&[
        "init",
        "--data",
        &b,
        "--sensor-id",
        "1801",
        "--installed",
        "1750000000",
    ]);
    ingest(&a, "honeynet.pcap");
    ingest(&b, "vlan.pcap");
    let (_l, l) = new_node(2801);
    let (pa, pb) = (free_port("127.0.0.15"), free_port("127.0.0.16"));
    link(&l, "l", &a, "a", &format!("https://127.0.0.15:{pa}"), &[]);
    link(&l, "l", &b, "b", &format!("https://127.0.0.16:{pb}"), &[]);
    let sa = serve(&a, "127.0.0.15", pa);
    let sb = serve(&b, "127.0.0.16", pb);
    let out = run(&["pull", "--data", &l]);
    sa.stop();
    sb.stop();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another incarnation"),
        "{}",
        stderr(&out)
    );
    // Only the first incarnation's data is there, unmixed.
    assert_eq!(flows_of(&l, 1801), flows_of(&a, 1801));
}
