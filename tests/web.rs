//! The web UI: its JSON API over real nodes (login, sessions, filters, the
//! OpenAPI file) and a real headless Chromium driven through chromedriver's
//! W3C WebDriver protocol: two roos pulled by a lumpy, seen in the browser.
//!
//! `LUMPY_SCREENSHOTS=docs/screenshots cargo test --test integration web::`
//! also writes a PNG of every view (docs/UI.md shows them).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::pcap::{bpf, find_flow, records, tcpdump_flow};
use crate::sync::{Served, free_port, link, serve};
use crate::util::*;

pub const PASSWORD: &str = "correct horse battery";

/// `lumpy serve` with the UI on `ui_ip:ui_port`.
pub fn serve_ui(data: &str, ip: &str, port: u16, ui_ip: &str, ui_port: u16) -> Served {
    let mut child = lumpy()
        .args([
            "serve",
            "--data",
            data,
            "--listen",
            &format!("{ip}:{port}"),
            "--ui-listen",
            &format!("{ui_ip}:{ui_port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "serve said: {line}");
    // The UI listener is bound before the first line is printed.
    Served { child }
}

pub fn add_user(data: &str, name: &str, password: &str) {
    let mut c = lumpy()
        .args(["user", "add", "--data", data, name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "user add: {}", stderr(&out));
}

/// A minimal blocking HTTP client over reqwest for the tests.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

#[derive(Debug)]
pub struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

impl Http {
    pub fn new() -> Http {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            // No pooled connections: the runtime only runs inside each
            // request, so a kept-alive connection the server closed while
            // idle (after its 10 s head timeout, reached on a loaded
            // machine) would be reused and fail.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        self.rt.block_on(async {
            let mut r = self
                .client
                .request(method.parse().unwrap(), url)
                .header("accept", "application/json");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if let Some(b) = body {
                r = r
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = r
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap().to_vec();
            Answer {
                status,
                headers,
                body,
            }
        })
    }

    pub fn get(&self, url: &str, cookie: Option<&str>) -> Answer {
        match cookie {
            Some(c) => self.send("GET", url, &[("cookie", c)], None),
            None => self.send("GET", url, &[], None),
        }
    }

    /// Logs in; returns the `lumpy_session=...` cookie pair.
    pub fn login(&self, base: &str, user: &str, password: &str) -> Result<String, Box<Answer>> {
        let a = self.send(
            "POST",
            &format!("{base}/api/v1/login"),
            &[],
            Some(&json!({"user": user, "password": password}).to_string()),
        );
        if a.status != 200 {
            return Err(Box::new(a));
        }
        let set = a.header("set-cookie");
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict"), "{set}");
        Ok(set.split(';').next().unwrap().to_string())
    }
}

/// docs/openapi.yaml is a well-formed OpenAPI 3 document: YAML that parses,
/// every operation with responses, every `$ref` resolving (checked by
/// scripts/check-openapi.py with Debian's python3-yaml).
#[test]
fn the_openapi_file_is_well_formed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Debian's interpreter, where python3-yaml lives (a python3 earlier on
    // PATH, such as pyenv's, may lack it).
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(root.join("scripts/check-openapi.py"))
        .arg(root.join("docs/openapi.yaml"))
        .output()
        .expect("python3 runs (scripts/test.sh installs python3-yaml)");
    assert!(
        out.status.success(),
        "docs/openapi.yaml: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path of docs/openapi.yaml (the keys under `paths:`).
fn openapi_paths() -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml"))
            .expect("docs/openapi.yaml");
    let mut in_paths = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if in_paths && !line.starts_with(' ') && !line.is_empty() {
            break;
        }
        if in_paths && line.starts_with("  /") && line.ends_with(':') {
            out.push(line.trim().trim_end_matches(':').to_string());
        }
    }
    out
}

#[test]
fn the_api_needs_a_session_refuses_bad_filters_and_matches_its_openapi_file() {
    let (_d, data) = new_node(7);
    for f in ["honeynet.pcap", "sebek.pcap"] {
        ok(&["ingest", "--data", &data, fixture(f).to_str().unwrap()]);
    }
    add_user(&data, "alice", PASSWORD);
    let listed = ok(&["user", "list", "--data", &data]);
    assert!(listed.starts_with("alice\t"), "{listed}");
    // A short password and a duplicate are refused, and nothing changes.
    let mut c = lumpy()
        .args(["user", "add", "--data", &data, "bob", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(c.stdin.take().unwrap(), "short").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("at least 8"), "{}", stderr(&out));
    // This test's one HTTP client speaks to the UI and to the peer port
    // alike: the peer API is asked for in plain HTTP (loopback only).
    config_set(&data, "serve.peer_plain", "true");
    let secret = ok(&["peer", "add", "--data", &data, "analyst"]);
    let (ip, port, ui) = (
        "127.0.0.30",
        free_port("127.0.0.30"),
        free_port("127.0.0.30"),
    );
    let _s = serve_ui(&data, ip, port, ip, ui);
    let base = format!("http://{ip}:{ui}");
    let http = Http::new();

    // Wrong password and unknown user: the same 401, the same words.
    let wrong = http.login(&base, "alice", "not the password").unwrap_err();
    let unknown = http.login(&base, "mallory", PASSWORD).unwrap_err();
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.header("set-cookie").is_empty());
    // A peer link's secret is no password, and a link name no user.
    assert_eq!(
        http.login(&base, "analyst", secret.trim())
            .unwrap_err()
            .status,
        401
    );
    let cookie = http.login(&base, "alice", PASSWORD).unwrap();

    // Every path of the OpenAPI file: 401 without a session, 200 with one.
    let flow = http.get(
        &format!("{base}/api/v1/flows?proto=tcp&limit=1"),
        Some(&cookie),
    );
    assert_eq!(flow.status, 200);
    let f = &flow.json()["rows"][0];
    let (sensor, flow_id, src) = (
        f["sensor_id"].as_u64().unwrap(),
        f["flow_id"].as_u64().unwrap(),
        f["src_ip"].as_str().unwrap().to_string(),
    );
    let paths = openapi_paths();
    assert!(paths.len() >= 12, "openapi paths: {paths:?}");
    for p in &paths {
        let concrete = p
            .replace("{sensor}", &sensor.to_string())
            .replace("{flow}", &flow_id.to_string())
            .replace("{ip}", &src)
            .replace("{process}", "1");
        let mut url = format!("{base}{concrete}");
        if p == "/api/v1/pcap" {
            // The pcap of results needs a sensor and a filter.
            url += &format!("?sensor={sensor}&ip={src}");
        }
        if p.ends_with("/login") || p.ends_with("/logout") {
            continue;
        }
        let anon = http.get(&url, None);
        assert_eq!(anon.status, 401, "{p} without a session");
        let authed = http.get(&url, Some(&cookie));
        assert_eq!(
            authed.status,
            200,
            "{p}: {}",
            String::from_utf8_lossy(&authed.body)
        );
        if p.ends_with("/pcap") {
            assert_eq!(
                authed.header("content-type"),
                "application/vnd.tcpdump.pcap"
            );
            assert!(!records(&authed.body).is_empty());
        } else {
            authed.json();
        }
        assert!(
            authed
                .header("content-security-policy")
                .contains("default-src 'none'"),
            "{p}: CSP"
        );
    }

    // Keyset pages: disjoint, newest first, and together every flow once.
    let all = flows_json(&data, &[]);
    let mut seen = Vec::new();
    let mut url = format!("{base}/api/v1/flows?limit=37");
    loop {
        let page = http.get(&url, Some(&cookie)).json();
        for r in page["rows"].as_array().unwrap() {
            seen.push((
                r["start_sec"].as_u64().unwrap(),
                r["sensor_id"].as_u64().unwrap(),
                r["flow_id"].as_u64().unwrap(),
            ));
        }
        match page["next"].as_str() {
            Some(n) => url = format!("{base}/api/v1/flows?limit=37&after={n}"),
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        all.len(),
        "every flow exactly once over the pages"
    );
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );

    // Filters agree with `lumpy flows` (the CLI's Walleye filters).
    let api_ids = |q: &str| -> Vec<u64> {
        let a = http.get(
            &format!("{base}/api/v1/flows?limit=1000&{q}"),
            Some(&cookie),
        );
        assert_eq!(a.status, 200, "{q}: {}", String::from_utf8_lossy(&a.body));
        let mut v: Vec<u64> = a.json()["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["flow_id"].as_u64().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    let cli_ids = |args: &[&str]| -> Vec<u64> {
        let mut v: Vec<u64> = flows_json(&data, args)
            .iter()
            .map(|f| f["flow_id"].as_u64().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    for (q, args) in [
        ("port=22", vec!["--port", "22"]),
        ("proto=udp", vec!["--proto", "udp"]),
        ("ip=192.0.2.0%2F24", vec!["--host", "192.0.2.0/24"]),
        ("ip=2001:db8:1::%2F64", vec!["--host", "2001:db8:1::/64"]),
        (
            "sensor=7&proto=tcp",
            vec!["--sensor", "7", "--proto", "tcp"],
        ),
    ] {
        let got = api_ids(q);
        assert!(!got.is_empty(), "{q} matches something");
        assert_eq!(got, cli_ids(&args), "{q}");
    }
    // Side, bidirectional and byte filters do what they say.
    let rows = |q: &str| -> Vec<Value> {
        http.get(
            &format!("{base}/api/v1/flows?limit=1000&{q}"),
            Some(&cookie),
        )
        .json()["rows"]
            .as_array()
            .unwrap()
            .clone()
    };
    let src_side = rows("ip=192.0.2.10&ip_side=src");
    assert!(!src_side.is_empty());
    assert!(src_side.iter().all(|r| r["src_ip"] == "192.0.2.10"));
    let bidir = rows("bidir=1&min_bytes=1000");
    assert!(!bidir.is_empty());
    assert!(bidir.iter().all(|r| r["dst_packets"].as_u64().unwrap() > 0
        && r["src_bytes"].as_u64().unwrap() + r["dst_bytes"].as_u64().unwrap() >= 1000));
    assert!(
        rows("alerts=1").is_empty(),
        "this capture has no IDS alerts"
    );
    let dport = rows("port=22&port_side=dst");
    assert!(!dport.is_empty() && dport.iter().all(|r| r["dst_port"] == 22));

    // SQL metacharacters: refused as bad values, or matched literally.
    for q in [
        "ip=1.2.3.4'%20OR%20'1'='1",
        "sensor=7%20OR%201=1",
        "port=22;DROP%20TABLE%20flow",
        "proto=tcp'--",
        "since=1%20UNION%20SELECT%201",
        "after=1.2.3%20OR%201",
        "min_bytes=-1",
        "limit=100000",
        "ip_side=src%27",
        "by=dst_ip;--",
        "flow_id=1",
    ] {
        let a = http.get(&format!("{base}/api/v1/flows?{q}"), Some(&cookie));
        assert_eq!(a.status, 400, "{q}: {}", String::from_utf8_lossy(&a.body));
        let msg = a.json()["error"].as_str().unwrap().to_string();
        let name = q.split('=').next().unwrap();
        assert!(msg.starts_with(name), "{q}: the error names {name}: {msg}");
    }
    // A refusal names its parameter in `param` too (the page puts the
    // message beside that field), and gives the valid range.
    for (q, name, says) in [
        ("port=-1", "port", "use 0 to 65535"),
        ("port=70000", "port", "use 0 to 65535"),
        ("limit=0", "limit", "use 1 to 1000"),
        ("sensor=42", "sensor", "no sensor 42"),
        ("sort=size", "sort", "time, bytes, packets or duration"),
        ("proto=foo", "proto", "0 to 255"),
    ] {
        let a = http.get(&format!("{base}/api/v1/flows?{q}"), Some(&cookie));
        assert_eq!(a.status, 400, "{q}");
        let v = a.json();
        assert_eq!(v["param"], name, "{q}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{q}: {v}");
    }
    let agg = http.get(&format!("{base}/api/v1/aggregate?sensor=42"), Some(&cookie));
    assert_eq!(agg.status, 400, "an unknown sensor is no empty aggregate");

    // The total: exact here (fewer than 10,000 flows), and the sum of the pages.
    let page = http
        .get(&format!("{base}/api/v1/flows?limit=5"), Some(&cookie))
        .json();
    assert_eq!(page["total"].as_u64().unwrap() as usize, all.len());
    assert_eq!(page["total_exact"], true);
    let tcp22 = http
        .get(
            &format!("{base}/api/v1/flows?port=22&proto=tcp&limit=1"),
            Some(&cookie),
        )
        .json();
    assert_eq!(
        tcp22["total"].as_u64().unwrap() as usize,
        cli_ids(&["--port", "22", "--proto", "tcp"]).len()
    );
    // Sorting: each key's values never grow down the page, over every flow.
    let size = |r: &Value, k: &str| -> u64 {
        match k {
            "bytes" => r["src_bytes"].as_u64().unwrap() + r["dst_bytes"].as_u64().unwrap(),
            "packets" => r["src_packets"].as_u64().unwrap() + r["dst_packets"].as_u64().unwrap(),
            _ => {
                r["end_ms"].as_u64().unwrap()
                    - (r["start_sec"].as_u64().unwrap() * 1000 + r["start_msec"].as_u64().unwrap())
            }
        }
    };
    for k in ["bytes", "packets", "duration"] {
        let mut got = Vec::new();
        let mut offset = 0;
        loop {
            let p = http
                .get(
                    &format!("{base}/api/v1/flows?sort={k}&limit=1000&offset={offset}"),
                    Some(&cookie),
                )
                .json();
            got.extend(p["rows"].as_array().unwrap().iter().map(|r| size(r, k)));
            match p["window"]["next_offset"].as_u64() {
                Some(o) => offset = o,
                None => break,
            }
        }
        assert_eq!(got.len(), all.len(), "{k}: every flow once");
        assert!(got.windows(2).all(|w| w[0] >= w[1]), "{k}: largest first");
    }
    // Collapsing: the groups' counts add up to every flow, and a group is
    // flows alike in endpoints, ports, protocol and sizes.
    let c = http
        .get(
            &format!("{base}/api/v1/flows?collapse=1&limit=1000"),
            Some(&cookie),
        )
        .json();
    let groups = c["rows"].as_array().unwrap();
    let sum: u64 = groups.iter().map(|r| r["repeats"].as_u64().unwrap()).sum();
    assert_eq!(sum as usize, all.len());
    assert!(groups.len() < all.len(), "this capture repeats some flows");
    // Eight group-by keys; a list longer than the limit says it was cut.
    for by in [
        "src_ip",
        "dst_ip",
        "src_port",
        "dst_port",
        "proto",
        "sensor",
        "client_os",
        "server_os",
    ] {
        let a = http.get(&format!("{base}/api/v1/aggregate?by={by}"), Some(&cookie));
        assert_eq!(
            a.status,
            200,
            "by={by}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(!a.json()["rows"].as_array().unwrap().is_empty(), "by={by}");
    }
    let cut = http
        .get(
            &format!("{base}/api/v1/aggregate?by=src_port&limit=2"),
            Some(&cookie),
        )
        .json();
    assert_eq!(cut["cut"], true);
    assert_eq!(cut["rows"].as_array().unwrap().len(), 2);
    let whole = http
        .get(&format!("{base}/api/v1/aggregate?by=proto"), Some(&cookie))
        .json();
    assert_eq!(whole["cut"], false);

    // The pcap of a filtered result: every TCP port 22 packet of both
    // captures (tcpdump's count), and refusals that say why.
    let results = http.get(
        &format!("{base}/api/v1/pcap?sensor=7&port=22&proto=tcp"),
        Some(&cookie),
    );
    assert_eq!(
        results.status,
        200,
        "{}",
        String::from_utf8_lossy(&results.body)
    );
    assert_eq!(
        results.header("content-type"),
        "application/vnd.tcpdump.pcap"
    );
    let theirs: usize = ["honeynet.pcap", "sebek.pcap"]
        .iter()
        .map(|f| {
            let out = Command::new("tcpdump")
                .args(["-r", fixture(f).to_str().unwrap(), "-w", "-", "tcp port 22"])
                .output()
                .expect("tcpdump");
            records(&out.stdout).len()
        })
        .sum();
    assert!(theirs > 0);
    assert_eq!(records(&results.body).len(), theirs);
    for (q, name) in [
        ("port=22", "sensor"),
        ("sensor=7&bidir=1", "bidir"),
        ("sensor=42&port=22", "sensor"),
    ] {
        let a = http.get(&format!("{base}/api/v1/pcap?{q}"), Some(&cookie));
        assert_eq!(a.status, 400, "{q}");
        assert_eq!(a.json()["param"], name, "{q}");
    }

    assert_eq!(
        http.get(&format!("{base}/api/v1/hosts/1.2.3.4'--"), Some(&cookie))
            .status,
        400
    );
    assert_eq!(
        http.get(
            &format!("{base}/api/v1/flows/7/1%20OR%201=1"),
            Some(&cookie)
        )
        .status,
        400
    );
    assert_eq!(
        http.get(&format!("{base}/api/v1/aggregate?by=evil"), Some(&cookie))
            .status,
        400
    );
    // The mirror is untouched by all of that.
    assert_eq!(flows_json(&data, &[]).len(), all.len());

    // A peer's signed request never opens the UI ...
    let secret = lumpy::sync::auth::LinkToken::parse(secret.trim())
        .unwrap()
        .secret;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sig = lumpy::sync::auth::sign(&secret, "GET", "/api/v1/sensors", now, b"").unwrap();
    let a = http.send(
        "GET",
        &format!("{base}/api/v1/sensors"),
        &[("x-lumpy-auth", &sig)],
        None,
    );
    assert_eq!(a.status, 401, "a link signature is not a UI login");
    // ... and a UI session never opens the peer API.
    let a = http.get(&format!("http://{ip}:{port}/v1/summary"), Some(&cookie));
    assert_eq!(a.status, 401, "a UI session is not a peer credential");
    let a = http.get(&format!("http://{ip}:{port}/api/v1/sensors"), Some(&cookie));
    assert_eq!(a.status, 401, "the peer port serves no UI");
    // The same signature does open the peer API (so the refusal above is the UI's).
    let sig = lumpy::sync::auth::sign(&secret, "GET", "/v1/summary", now, b"").unwrap();
    let a = http.send(
        "GET",
        &format!("http://{ip}:{port}/v1/summary"),
        &[("x-lumpy-auth", &sig)],
        None,
    );
    assert_eq!(a.status, 200);

    // A cross-site login is refused; logout ends the session.
    let a = http.send(
        "POST",
        &format!("{base}/api/v1/login"),
        &[("origin", "http://evil.example")],
        Some(&json!({"user": "alice", "password": PASSWORD}).to_string()),
    );
    assert_eq!(a.status, 403);
    let a = http.send(
        "POST",
        &format!("{base}/api/v1/logout"),
        &[("cookie", &cookie)],
        Some("{}"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        http.get(&format!("{base}/api/v1/me"), Some(&cookie)).status,
        401
    );
    // Removing a user ends its sessions.
    let cookie = http.login(&base, "alice", PASSWORD).unwrap();
    assert_eq!(
        http.get(&format!("{base}/api/v1/me"), Some(&cookie)).status,
        200
    );
    ok(&["user", "remove", "--data", &data, "alice"]);
    assert_eq!(
        http.get(&format!("{base}/api/v1/me"), Some(&cookie)).status,
        401
    );
    // Ten failures from one address: throttled with 429.
    let mut last = 0;
    for _ in 0..11 {
        last = http
            .login(&base, "alice", "wrong password!")
            .unwrap_err()
            .status;
    }
    assert_eq!(last, 429);
}

// ---------------------------------------------------------------- WebDriver

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Headless Chromium through chromedriver (W3C WebDriver, JSON over HTTP);
/// tests/clickhouse.rs drives the DAG view with it too.
pub(crate) struct Browser {
    driver: Child,
    url: String,
    session: String,
    http: Http,
    shots: Option<std::path::PathBuf>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.send(
            "DELETE",
            &format!("{}/session/{}", self.url, self.session),
            &[],
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    pub(crate) fn start() -> Browser {
        let port = free_port("127.0.0.1");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is required (scripts/test.sh installs chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let http = Http::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = http.rt.block_on(async {
                http.client
                    .get(format!("{url}/status"))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            });
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("Debian's chromium is required (scripts/test.sh installs it)");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1440,1000",
                         "--force-device-scale-factor=1", "--lang=en-US"]
            }
        }}});
        let a = http.send(
            "POST",
            &format!("{url}/session"),
            &[],
            Some(&caps.to_string()),
        );
        assert_eq!(
            a.status,
            200,
            "new session: {}",
            String::from_utf8_lossy(&a.body)
        );
        let session = a.json()["value"]["sessionId"].as_str().unwrap().to_string();
        let shots = std::env::var_os("LUMPY_SCREENSHOTS").map(|d| {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(d);
            std::fs::create_dir_all(&p).unwrap();
            p
        });
        Browser {
            driver,
            url,
            session,
            http,
            shots,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let body = body.to_string();
        let a = self.http.send(
            method,
            &url,
            &[],
            if method == "GET" { None } else { Some(&body) },
        );
        let v = a.json();
        if a.status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    fn must(&self, method: &str, path: &str, body: Value) -> Value {
        self.cmd(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    pub(crate) fn goto(&self, url: &str) {
        self.must("POST", "/url", json!({ "url": url }));
    }

    /// Waits up to 20 s for the page's URL to contain `part` (what the
    /// page's own script puts there after a click), else fails with `what`.
    fn wait_url(&self, part: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.current_url().contains(part) {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn current_url(&self) -> String {
        self.must("GET", "/url", json!({}))
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits up to 20 s for an element matching `css`.
    pub(crate) fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.cmd(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            ) {
                Ok(v) => {
                    return v[ELEMENT]
                        .as_str()
                        .unwrap_or_else(|| panic!("find {css}: {v}"))
                        .to_string();
                }
                Err(e) => {
                    if Instant::now() > deadline {
                        let body = self
                            .js("return document.body.innerText", json!([]))
                            .to_string();
                        panic!("no element {css}: {e}\npage: {body}");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    pub(crate) fn count(&self, css: &str) -> usize {
        self.must(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .as_array()
        .map_or(0, |a| a.len())
    }

    pub(crate) fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.must("GET", &format!("/element/{id}/text"), json!({}))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn attr(&self, css: &str, name: &str) -> String {
        let id = self.find(css);
        self.must("GET", &format!("/element/{id}/property/{name}"), json!({}))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.must("POST", &format!("/element/{id}/clear"), json!({}));
        self.must(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.find(css);
        self.must("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Waits until the view `name` has rendered.
    pub(crate) fn view(&self, name: &str) {
        self.find(&format!("#main[data-view='{name}'][data-ready='1']"));
    }

    fn cookie(&self, name: &str) -> String {
        let v = self.must("GET", &format!("/cookie/{name}"), json!({}));
        format!("{name}={}", v["value"].as_str().unwrap())
    }

    pub(crate) fn screenshot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        use base64::Engine;
        // The whole page: grow the window to the document's height first.
        let h = self
            .js(
                "return Math.ceil(Math.max(document.querySelector('main').getBoundingClientRect().bottom + window.scrollY + 24, 700))",
                json!([]),
            )
            .as_u64()
            .unwrap_or(1000)
            .min(1500);
        self.must(
            "POST",
            "/window/rect",
            json!({"width": 1440, "height": h + 90}),
        );
        std::thread::sleep(Duration::from_millis(300));
        let png = self.must("GET", "/screenshot", json!({}));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
        self.must(
            "POST",
            "/window/rect",
            json!({"width": 1440, "height": 1000}),
        );
    }
}

#[test]
fn a_browser_sees_two_roos_through_a_lumpy_filters_and_downloads_a_flows_pcap() {
    // Roo A: a Honeywall tree with two sensors; roo B: one sensor with
    // ordinary traffic and a sebek session.
    let (_a, a) = new_node(1111);
    ingest_fixture(&a, "honeywall-multi");
    let (_b, b) = new_node(2222);
    for f in ["honeynet.pcap", "sebek.pcap"] {
        ok(&["ingest", "--data", &b, fixture(f).to_str().unwrap()]);
    }
    let (_l, l) = new_node(3333);
    let (pa, pb, pl, ui) = (
        free_port("127.0.0.31"),
        free_port("127.0.0.32"),
        free_port("127.0.0.33"),
        free_port("127.0.0.33"),
    );
    link(
        &l,
        "l",
        &a,
        "roo-a",
        &format!("https://127.0.0.31:{pa}"),
        &[],
    );
    link(
        &l,
        "l",
        &b,
        "roo-b",
        &format!("https://127.0.0.32:{pb}"),
        &[],
    );
    let _sa = serve(&a, "127.0.0.31", pa);
    let _sb = serve(&b, "127.0.0.32", pb);
    ok(&["pull", "--data", &l]);
    add_user(&l, "analyst", PASSWORD);
    let _sl = serve_ui(&l, "127.0.0.33", pl, "127.0.0.33", ui);
    let base = format!("http://127.0.0.33:{ui}");
    let sensors_a: Vec<u64> = {
        let mut v: Vec<u64> = flows_json(&a, &[])
            .iter()
            .map(|f| f["sensor_id"].as_u64().unwrap())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    assert_eq!(sensors_a.len(), 2, "roo A holds two sensors");

    let br = Browser::start();
    // Not logged in: any view leads to the login page.
    br.goto(&format!("{base}/flows?port=22"));
    br.view("login");
    assert!(
        br.current_url().contains("/login?next="),
        "{}",
        br.current_url()
    );
    br.screenshot("login");
    // A wrong password is refused, in words, and no session cookie appears.
    br.type_into("#user", "analyst");
    br.type_into("#password", "not-the-password");
    br.click("#login-submit");
    let deadline = Instant::now() + Duration::from_secs(20);
    while br.text("#login-error").is_empty() {
        assert!(Instant::now() < deadline, "no refusal shown");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(br.text("#login-error"), "wrong user name or password");
    assert!(br.cmd("GET", "/cookie/lumpy_session", json!({})).is_err());
    // The right one lands on the page asked for.
    br.type_into("#user", "analyst");
    br.type_into("#password", PASSWORD);
    br.click("#login-submit");
    br.view("flows");
    assert!(
        br.current_url().ends_with("/flows?port=22"),
        "{}",
        br.current_url()
    );

    // The overview: the three sensors of the two roos (beside the nodes' own
    // incarnations, which hold no traffic), each with its path.
    br.goto(&format!("{base}/"));
    br.view("overview");
    let listed: Vec<u64> = br
        .js(
            "return [...document.querySelectorAll('#sensors tr.sensor')].map(r => +r.dataset.sensor)",
            json!([]),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    for s in sensors_a.iter().chain([&2222]) {
        assert!(
            listed.contains(s),
            "sensor {s} is listed: {listed:?} {}",
            br.js("return document.body.innerText", json!([]))
        );
    }
    for s in &sensors_a {
        let row = br.text(&format!("#sensors tr[data-sensor='{s}']"));
        assert!(
            row.contains("roo-a"),
            "sensor {s} comes through roo-a: {row}"
        );
    }
    let row = br.text("#sensors tr[data-sensor='2222']");
    assert!(row.contains("roo-b"), "{row}");
    // The fixtures are old: their sensors stand out as silent.
    for s in sensors_a.iter().chain([&2222]) {
        assert_eq!(
            br.count(&format!("#sensors tr.sensor.silent[data-sensor='{s}']")),
            1,
            "sensor {s} flagged silent"
        );
    }
    br.screenshot("overview");

    // The connection table, filtered through the form: tcp, port 22, roo B.
    br.goto(&format!("{base}/flows"));
    br.view("flows");
    let unfiltered = br.count("#flows tbody tr[data-flow]");
    assert_eq!(unfiltered, 100, "a full first page");
    assert!(br.count("#next") == 1, "more pages");
    br.screenshot("connections");
    // Older, older, newer: back on page 2, with the same rows, by its URL.
    let first_rows = |br: &Browser| {
        br.js(
            "return [...document.querySelectorAll('#flows tbody tr[data-flow]')].map(r => r.dataset.flow).join(' ')",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string()
    };
    let page1 = first_rows(&br);
    br.click("#next");
    br.find(".pager");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !br.text(".pager").contains("page 2") {
        assert!(Instant::now() < deadline, "page 2 not shown");
        std::thread::sleep(Duration::from_millis(100));
    }
    br.view("flows");
    let page2 = first_rows(&br);
    let page2_url = br.current_url();
    assert_ne!(page1, page2);
    br.click("#next");
    while !br.text(".pager").contains("page 3") {
        assert!(Instant::now() < deadline, "page 3 not shown");
        std::thread::sleep(Duration::from_millis(100));
    }
    br.view("flows");
    br.click("#prev");
    while !br.text(".pager").contains("page 2") {
        assert!(Instant::now() < deadline, "back to page 2");
        std::thread::sleep(Duration::from_millis(100));
    }
    br.view("flows");
    assert_eq!(first_rows(&br), page2);
    assert_eq!(br.current_url(), page2_url);
    br.goto(&format!("{base}/flows"));
    br.view("flows");
    br.js(
        "document.querySelector('#sensor').value = '2222'",
        json!([]),
    );
    br.type_into("#port", "22");
    br.type_into("#proto", "tcp");
    br.click("#bidir");
    br.click("#apply");
    br.wait_url("port=22", "the filter did not reach the URL");
    br.view("flows");
    let url = br.current_url();
    for p in ["sensor=2222", "port=22", "proto=tcp", "bidir=1"] {
        assert!(url.contains(p), "deep link {url} has {p}");
    }
    let shown: Vec<String> = br
        .js(
            "return [...document.querySelectorAll('#flows tbody tr[data-flow]')].map(r => r.dataset.flow)",
            json!([]),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = flows_json(&b, &["--port", "22", "--proto", "tcp"])
        .iter()
        .filter(|f| f["dst"]["packets"].as_u64().unwrap() > 0)
        .map(|f| format!("2222/{}", f["flow_id"]))
        .collect();
    assert!(!expected.is_empty());
    let (mut s1, mut s2) = (shown.clone(), expected.clone());
    s1.sort();
    s2.sort();
    assert_eq!(
        s1, s2,
        "the filtered table shows exactly the matching flows"
    );
    // The exact total above the table, and pagers above and below it.
    assert_eq!(
        br.text("#total"),
        format!(
            "{} flow{}",
            expected.len(),
            if expected.len() == 1 { "" } else { "s" }
        )
    );
    assert_eq!(br.count("#pager-top"), 1);
    assert_eq!(br.count("#pager-bottom"), 1);
    br.screenshot("connections-filtered");
    // "plot these" carries the filters to the plots.
    let plot_link = br.attr("#plot-these", "href");
    for p in ["sensor=2222", "port=22", "proto=tcp", "bidir=1"] {
        assert!(plot_link.contains(p), "{plot_link} has {p}");
    }
    // A bad value: the message beside its field with the valid range; the
    // form keeps what was typed and the previous results stay on screen.
    br.type_into("#port", "-1");
    br.click("#apply");
    let msg = br.text("#field-error");
    assert!(msg.contains("0 to 65535"), "{msg}");
    assert_eq!(
        br.js(
            "return document.querySelector('#field-error').closest('label').contains(document.querySelector('#port'))",
            json!([])
        ),
        json!(true),
        "the error sits beside the port field"
    );
    assert_eq!(br.attr("#port", "value"), "-1");
    assert_eq!(br.count("#filters"), 1, "the form stays");
    assert_eq!(
        br.count("#previous-results #flows tbody tr[data-flow]"),
        expected.len(),
        "the previous results stay"
    );
    br.screenshot("connections-bad-filter");
    // An unknown sensor says so, beside the sensor field.
    br.goto(&format!("{base}/flows?sensor=42"));
    let msg = br.text("#field-error");
    assert!(msg.contains("no sensor 42"), "{msg}");
    assert!(br.text("#sensor").contains("42 (not listed)"));

    // The pcap of these results: proxied to roo B, every TCP port 22
    // packet of its captures (tcpdump's count).
    br.goto(&format!("{base}/flows?sensor=2222&port=22&proto=tcp"));
    br.view("flows");
    let results_href = br.attr("#results-pcap", "href");
    let cookie = br.cookie("lumpy_session");
    let got = Http::new().get(&results_href, Some(&cookie));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let theirs: usize = ["honeynet.pcap", "sebek.pcap"]
        .iter()
        .map(|f| {
            let out = Command::new("tcpdump")
                .args(["-r", fixture(f).to_str().unwrap(), "-w", "-", "tcp port 22"])
                .output()
                .expect("tcpdump");
            records(&out.stdout).len()
        })
        .sum();
    assert_eq!(records(&got.body).len(), theirs);

    // The time histogram above the table: a bar selects its time window,
    // keeping the filters.
    br.goto(&format!("{base}/flows?sensor=2222&proto=tcp"));
    br.view("flows");
    br.find("#time-histogram a.bucket");
    click_time_bar(&br, "#time-histogram a.bucket");
    br.wait_url("until=", "the bar did not select its window");
    assert_table_over_a_window(&br);

    // Sorting by a column heading, and collapsing repeats.
    br.goto(&format!("{base}/flows?sensor=2222"));
    br.view("flows");
    br.click("#sort-bytes");
    br.wait_url("sort=bytes", "sorting did not reach the URL");
    br.view("flows");
    assert_eq!(br.attr("th[aria-sort] a", "id"), "sort-bytes");
    assert!(br.text("#total").contains("largest bytes first"));
    br.goto(&format!("{base}/flows?collapse=1"));
    br.view("flows");
    assert!(
        br.count("#flows .tag.repeats") > 0,
        "repeats shown as one row"
    );
    assert!(br.text("#total").contains("collapsed"));
    br.screenshot("connections-collapsed");

    // Back to the filtered table, to open a flow from it.
    br.goto(&format!(
        "{base}/flows?sensor=2222&port=22&proto=tcp&bidir=1"
    ));
    br.view("flows");
    // Open the largest flow of the page; download its pcap (proxied to roo B).
    let flows_b = flows_json(&b, &[]);
    let flow = find_flow(&flows_b, |f| {
        shown.contains(&format!("2222/{}", f["flow_id"]))
    });
    let id = flow["flow_id"].as_u64().unwrap();
    br.click(&format!("tr[data-flow='2222/{id}'] a.flow-link"));
    br.view("flow");
    assert!(br.current_url().ends_with(&format!("/flow/2222/{id}")));
    assert!(br.text("h1").contains(&format!("Flow {id}")));
    br.screenshot("flow");
    let href = br.attr("#pcap", "href");
    assert!(
        href.ends_with(&format!("/api/v1/flows/2222/{id}/pcap")),
        "{href}"
    );
    let cookie = br.cookie("lumpy_session");
    let http = Http::new();
    let pcap = http.get(&href, Some(&cookie));
    assert_eq!(pcap.status, 200, "{}", String::from_utf8_lossy(&pcap.body));
    let theirs = tcpdump_flow(&fixture("honeynet.pcap"), &bpf(flow, ""), flow);
    assert!(records(&theirs).len() > 1);
    assert_eq!(records(&pcap.body).len(), records(&theirs).len());
    assert!(
        pcap.body == theirs,
        "the UI's pcap is tcpdump's, byte for byte"
    );
    // Without the session the same link is refused.
    assert_eq!(http.get(&href, None).status, 401);
    // The packet view read the same pcap through the pcap service (proxied
    // to roo B): tcpdump's packets, the first 200 at most.
    assert_eq!(
        br.count("#packets-table tbody tr"),
        records(&theirs).len().min(200)
    );
    assert!(
        br.text("#packets-table tbody tr[data-n='1']")
            .contains("SYN")
    );

    // Host detail from the flow's source.
    br.click("#src-host");
    br.view("host");
    assert!(br.count("#as-source tbody tr[data-flow]") > 0);
    br.screenshot("host");

    // The process tree of the sebek session, and its keystrokes.
    let procs = http
        .get(
            &format!("{base}/api/v1/flows?sensor=2222&limit=1000"),
            Some(&cookie),
        )
        .json();
    let with_proc = procs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["processes"].as_u64().unwrap() > 0)
        .cloned()
        .expect("a flow with a sebek process");
    let fid = with_proc["flow_id"].as_u64().unwrap();
    // The flow's detail lists its processes; its row links to the tree.
    br.goto(&format!("{base}/flow/2222/{fid}"));
    br.view("flow");
    assert!(br.count("#flow-processes tbody tr") >= 1);
    br.goto(&format!(
        "{base}/flows?sensor=2222&ip={}&ip_side=src&port={}&port_side=src",
        with_proc["src_ip"].as_str().unwrap(),
        with_proc["src_port"]
    ));
    br.view("flows");
    let link = format!("tr[data-flow='2222/{fid}'] a.proc-link");
    assert!(
        br.attr(&link, "href")
            .ends_with(&format!("/process/2222/{}", with_proc["process_id"])),
        "the row links to its process tree"
    );
    br.click(&link);
    br.view("process");
    assert!(
        br.count("#tree .node") >= 2,
        "ancestors and descendants drawn"
    );
    let keys = br.text("#keystrokes");
    assert!(!keys.is_empty());
    br.screenshot("process");

    // Aggregates, the DAG and the plots.
    br.goto(&format!("{base}/aggregate?by=dst_port&proto=tcp"));
    br.view("aggregate");
    let first = br.text("#aggregate tbody tr td");
    assert!(!first.is_empty());
    br.screenshot("aggregate");
    br.goto(&format!("{base}/dag"));
    br.view("dag");
    assert_eq!(br.count("#children tbody tr"), 2);
    let dag = br.text("#children");
    assert!(dag.contains("roo-a") && dag.contains("roo-b"), "{dag}");
    br.screenshot("dag");
    // The connections graph of roo B's flows: every host pair once, every
    // flow counted; capped with a notice; a host opens its page.
    let g = http
        .get(&format!("{base}/api/v1/graph?sensor=2222"), Some(&cookie))
        .json();
    assert_eq!(g["window_cut"], false);
    let flows_in_edges: u64 = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["flows"].as_u64().unwrap())
        .sum();
    assert_eq!(flows_in_edges as usize, flows_b.len());
    br.goto(&format!("{base}/graph?sensor=2222"));
    br.view("graph");
    assert_eq!(
        br.count("#graph circle.node"),
        g["nodes"].as_array().unwrap().len()
    );
    assert_eq!(
        br.count("#graph line.edge"),
        g["edges"].as_array().unwrap().len()
    );
    assert_eq!(br.count("#graph-cut"), 0);
    br.screenshot("graph");
    br.goto(&format!("{base}/graph?sensor=2222&edges=3"));
    br.view("graph");
    assert_eq!(br.count("#graph line.edge"), 3);
    assert!(br.text("#graph-cut").contains("heaviest 3 of"));
    let first_ip = br
        .js(
            "return document.querySelector('#graph a.node-link').dataset.ip",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    br.js(
        "document.querySelector('#graph a.node-link').dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))",
        json!([]),
    );
    br.wait_url(
        &format!("/host/{first_ip}"),
        "the node did not open its host",
    );
    br.view("host");
    br.goto(&format!("{base}/plots"));
    br.view("plots");
    assert_eq!(
        br.count("#plot-flows path.series"),
        3,
        "one line per sensor"
    );
    assert!(br.count("#plot-ports rect") > 0);
    br.screenshot("plots");

    // OS names, not ids, on a flow p0f recognised.
    let all_b = http
        .get(
            &format!("{base}/api/v1/flows?sensor=2222&limit=1000"),
            Some(&cookie),
        )
        .json();
    let named = all_b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| !r["client_os"].as_str().unwrap().is_empty())
        .cloned()
        .expect("a flow with a p0f client OS");
    br.goto(&format!("{base}/flow/2222/{}", named["flow_id"]));
    br.view("flow");
    let page = br.text("#main");
    assert!(
        page.contains(named["client_os"].as_str().unwrap()),
        "{page}"
    );
    assert!(!page.contains("Client OS id"), "{page}");

    // Aggregates: eight keys; a group opens the table on it, with the same count.
    br.goto(&format!("{base}/aggregate?by=client_os&sensor=2222"));
    br.view("aggregate");
    assert_eq!(br.count("#by option"), 8);
    let first_count = br.text("#aggregate tbody tr td.num");
    br.click("#aggregate tbody tr a.group-link");
    br.wait_url("client_os=", "the group did not open the table");
    br.view("flows");
    assert!(br.current_url().contains("sensor=2222"));
    assert!(
        br.text("#total")
            .starts_with(&format!("{first_count} flow")),
        "{} vs {first_count}",
        br.text("#total")
    );
    br.goto(&format!("{base}/aggregate?by=src_port&limit=5"));
    br.view("aggregate");
    assert!(br.text("#agg-cut").contains("5 largest groups"));

    // The overview: the status word agrees with the colour; all-time totals.
    br.goto(&format!("{base}/"));
    br.view("overview");
    let agree = br.js(
        "return [...document.querySelectorAll('#sensors tr.sensor')].every(r => \
           (r.querySelector('.status-word').textContent === 'silent') === r.classList.contains('silent'))",
        json!([]),
    );
    assert_eq!(agree, json!(true));
    assert_eq!(
        br.text("#sensors tr[data-sensor='2222'] .status-word"),
        "silent"
    );
    let total_b = br.text("#sensors tr[data-sensor='2222'] td.totals a");
    assert_eq!(total_b.replace(',', ""), flows_b.len().to_string());

    // Plots: filters carried in, buckets that open the table over their
    // time with the same filters, charts as wide as the window.
    br.goto(&format!("{base}/plots?sensor=2222&proto=tcp"));
    br.view("plots");
    assert!(br.count("#plot-flows a.bucket") > 0);
    let width = br
        .js(
            "return document.querySelector('#plot-flows').getBoundingClientRect().width",
            json!([]),
        )
        .as_f64()
        .unwrap();
    assert!(width > 1200.0, "full width: {width}");
    click_time_bar(&br, "#plot-flows a.bucket");
    br.wait_url("/flows?", "the bucket did not open the table");
    assert_table_over_a_window(&br);
    // A range over years shows years on its axis.
    br.goto(&format!("{base}/plots?since=2001-01-01&until=2026-12-01"));
    br.view("plots");
    let labels = br.js(
        "return [...document.querySelectorAll('#plot-flows .axis-label')].map(t => t.textContent)",
        json!([]),
    );
    let labels: Vec<&str> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(labels.iter().any(|l| l.starts_with("2001-")), "{labels:?}");
    assert!(
        labels
            .iter()
            .all(|l| l.len() >= 10 && l[..4].parse::<u32>().is_ok()),
        "{labels:?}"
    );

    // Keyboard: "n" turns the page.
    br.goto(&format!("{base}/flows"));
    br.view("flows");
    br.must(
        "POST",
        "/actions",
        json!({"actions": [{"type": "key", "id": "kb", "actions": [
            {"type": "keyDown", "value": "n"}, {"type": "keyUp", "value": "n"}]}]}),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !br.text(".pager").contains("page 2") {
        assert!(Instant::now() < deadline, "n did not turn the page");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1024 px wide: no view scrolls sideways, nor any table in it.
    br.must(
        "POST",
        "/window/rect",
        json!({"width": 1024, "height": 900}),
    );
    for (path, view) in [
        ("/".to_string(), "overview"),
        ("/flows".to_string(), "flows"),
        ("/flows?sensor=2222&sort=bytes".to_string(), "flows"),
        ("/aggregate?by=dst_ip".to_string(), "aggregate"),
        ("/plots".to_string(), "plots"),
        (format!("/flow/2222/{id}"), "flow"),
        ("/dag".to_string(), "dag"),
        ("/graph".to_string(), "graph"),
    ] {
        br.goto(&format!("{base}{path}"));
        br.view(view);
        let wide = br.js(
            "const d = document.documentElement; \
             const over = [...document.querySelectorAll('.scroll')].filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.firstElementChild && e.firstElementChild.id); \
             return {page: d.scrollWidth - d.clientWidth, over}",
            json!([]),
        );
        assert!(
            wide["page"].as_i64().unwrap() <= 0 && wide["over"].as_array().unwrap().is_empty(),
            "{path} at 1024 px: {wide}"
        );
    }
    br.must(
        "POST",
        "/window/rect",
        json!({"width": 1440, "height": 1000}),
    );

    // Logout: the session cookie no longer opens anything.
    br.click("#logout");
    br.view("login");
    assert_eq!(
        http.get(&format!("{base}/api/v1/me"), Some(&cookie)).status,
        401
    );
}

/// Issue 18 point 1: a honeypot's sebek sessions in the browser, reached
/// from its host page; searched for a password; a session's keystroke log
/// with passwd's and su's reads in the shell's log, backspaces applied (and
/// the raw view); sockets with their remote ends and joined flows.
#[test]
fn a_browser_reads_a_honeypots_sebek_sessions_and_keystroke_log() {
    let (d, data) = new_node(4444);
    let typing = d.path().join("typing.pcap");
    ok(&["gen-sebek", "--script", "typing", typing.to_str().unwrap()]);
    let sebek = fixture("sebek.pcap");
    ok(&[
        "ingest",
        "--data",
        &data,
        sebek.to_str().unwrap(),
        typing.to_str().unwrap(),
    ]);
    add_user(&data, "analyst", PASSWORD);
    let (pp, ui) = (free_port("127.0.0.36"), free_port("127.0.0.36"));
    let _s = serve_ui(&data, "127.0.0.36", pp, "127.0.0.36", ui);
    let base = format!("http://127.0.0.36:{ui}");
    let br = Browser::start();
    br.goto(&format!("{base}/host/10.0.0.5"));
    br.view("login");
    br.type_into("#user", "analyst");
    br.type_into("#password", PASSWORD);
    br.click("#login-submit");
    br.view("host");
    // The host page links to the honeypot's sessions.
    br.click("#host-sessions");
    br.view("sessions");
    assert!(br.current_url().ends_with("/sessions?host=10.0.0.5"));
    assert_eq!(br.count("#sessions tbody tr[data-process]"), 10);
    let table = br.text("#sessions");
    for want in [
        "passwd",
        "uname -a",
        "sshd(2001)",
        "203.0.113.66:6667 no flow seen",
    ] {
        assert!(table.contains(want), "{want} in {table}");
    }
    br.screenshot("sessions");
    // Search over keystrokes: the password finds passwd's process only.
    br.type_into("#s-q", "hunter2");
    br.click("#s-apply");
    br.wait_url("q=hunter2", "the search did not reach the URL");
    br.view("sessions");
    let rows: Vec<Value> = br
        .js(
            "return [...document.querySelectorAll('#sessions tbody tr[data-process]')].map(r => r.dataset.process)",
            json!([]),
        )
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rows, [json!("4444/8")]);
    // The login shell's log holds what passwd and su read, one line per command.
    br.goto(&format!("{base}/process/4444/7"));
    br.view("process");
    let log: Vec<String> = br
        .js(
            "return [...document.querySelectorAll('#keylog tbody tr')].map(r => r.innerText)",
            json!([]),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().replace('\t', " "))
        .collect();
    let typed: Vec<&str> = log.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(log.len(), 7, "{log:?}");
    assert!(
        // The fork's read (sshd, uid 0) joins bash's first line, as in
        // sbk_ks_log.pl.
        log[0].starts_with("2011-03-13 06:23:15 2002 sshd/bash 0/1000 0 uname -a"),
        "{log:?}"
    );
    assert_eq!(typed[2], "Hunter2!", "{log:?}");
    assert!(log[5].contains("su 0 0 r00tpw"), "{log:?}");
    br.screenshot("keystrokes");
    br.click("#keys-raw");
    br.wait_url("keys=raw", "raw view not shown");
    br.view("process");
    assert!(br.text("#keylog").contains("unmae\\x7f\\x7f\\x7fame -a\\r"));
    // Sockets: remote end, protocol, the joined flow or none.
    br.goto(&format!("{base}/process/4444/10"));
    br.view("process");
    let socks = br.text("#sockets");
    assert!(
        socks.contains("connect")
            && socks.contains("tcp")
            && socks.contains("203.0.113.66:6667")
            && socks.contains("no flow seen"),
        "{socks}"
    );
    br.goto(&format!("{base}/process/4444/1"));
    br.view("process");
    assert!(br.text("#sockets").contains("198.51.100.7:40001"));
    assert_eq!(br.count("#sockets a.socket-flow"), 1);
    // The joined flow's detail shows its Community ID, as `flows` gives it.
    br.click("#sockets a.socket-flow");
    br.view("flow");
    let flow_id: u64 = br
        .current_url()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let flows: Vec<Value> =
        serde_json::from_str(&ok(&["flows", "--data", &data, "--format", "json"])).unwrap();
    let want = flows
        .iter()
        .find(|f| f["flow_id"] == flow_id)
        .and_then(|f| f["community_id"].as_str())
        .unwrap()
        .to_string();
    assert!(want.starts_with("1:"), "{want}");
    assert_eq!(br.text("#community-id"), want);
}

/// One Ethernet + IPv4 + TCP frame (checksums computed, as a real stack's).
fn tcp_frame(
    (src, sp): ([u8; 4], u16),
    (dst, dp): ([u8; 4], u16),
    ttl: u8,
    (seq, ack, flags): (u32, u32, u8),
    data: &[u8],
) -> Vec<u8> {
    fn sum(words: &[u8]) -> u32 {
        words
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    }
    fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
    let total = (20 + 20 + data.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, ttl, 6, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = fold(sum(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sp.to_be_bytes());
    tcp.extend_from_slice(&dp.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    tcp.extend_from_slice(data);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&((20 + data.len()) as u16).to_be_bytes());
    pseudo.extend_from_slice(&tcp);
    let c = fold(sum(&pseudo));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

/// Issue 18 point 4: a flow's packets and payload, read through the pcap
/// service, shown as decoded headers and hex + ASCII; the payload is an
/// attacker's (HTML and script) and stays text; the view is bounded.
#[test]
fn a_browser_shows_a_flows_packets_and_an_attackers_payload_as_text() {
    let (d, data) = new_node(5555);
    let client_says: &[u8] =
        b"<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">GET / HTTP/1.0\r\n\r\n";
    let server_says: &[u8] = b"HTTP/1.0 200 OK\r\n\r\n<b>bold</b><script>window.pwned=3</script>";
    let (c, s) = (([10, 9, 0, 66], 40000), ([192, 0, 2, 80], 80));
    let (cs, ss) = (1_000_000u32, 7_000_000u32);
    let frames = [
        tcp_frame(c, s, 51, (cs, 0, 0x02), b""),
        tcp_frame(s, c, 64, (ss, cs + 1, 0x12), b""),
        tcp_frame(c, s, 51, (cs + 1, ss + 1, 0x10), b""),
        tcp_frame(c, s, 51, (cs + 1, ss + 1, 0x18), client_says),
        tcp_frame(
            s,
            c,
            64,
            (ss + 1, cs + 1 + client_says.len() as u32, 0x18),
            server_says,
        ),
        tcp_frame(
            c,
            s,
            51,
            (
                cs + 1 + client_says.len() as u32,
                ss + 1 + server_says.len() as u32,
                0x11,
            ),
            b"",
        ),
    ];
    let mut pcap = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        pcap.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [
            1_790_000_000u32,
            1000 * i as u32,
            f.len() as u32,
            f.len() as u32,
        ] {
            pcap.extend_from_slice(&v.to_le_bytes());
        }
        pcap.extend_from_slice(f);
    }
    let file = d.path().join("attacker.pcap");
    std::fs::write(&file, &pcap).unwrap();
    ok(&["ingest", "--data", &data, file.to_str().unwrap()]);
    let flows = flows_json(&data, &[]);
    assert_eq!(flows.len(), 1, "{flows:?}");
    let id = flows[0]["flow_id"].as_u64().unwrap();
    add_user(&data, "analyst", PASSWORD);
    let (pp, ui) = (free_port("127.0.0.37"), free_port("127.0.0.37"));
    let _s = serve_ui(&data, "127.0.0.37", pp, "127.0.0.37", ui);
    let base = format!("http://127.0.0.37:{ui}");

    // The API agrees with tshark, packet by packet.
    let http = Http::new();
    let cookie = http.login(&base, "analyst", PASSWORD).unwrap();
    let url = format!("{base}/api/v1/flows/5555/{id}/packets");
    let v = http.get(&url, Some(&cookie)).json();
    let theirs = tool(
        "tshark",
        &[
            "-r",
            file.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "ip.ttl",
            "-e",
            "tcp.len",
            "-e",
            "tcp.seq_raw",
            "-e",
            "ip.len",
        ],
    );
    let packets = v["packets"].as_array().unwrap();
    assert_eq!(packets.len(), theirs.lines().count());
    for (p, line) in packets.iter().zip(theirs.lines()) {
        let f: Vec<u64> = line.split('\t').map(|x| x.parse().unwrap()).collect();
        assert_eq!(
            [&p["ttl"], &p["payload_len"], &p["seq"], &p["ip_len"]].map(|x| x.as_u64().unwrap()),
            [f[0], f[1], f[2], f[3]],
            "{p}"
        );
    }
    assert_eq!(packets[0]["flags"], "SYN");
    assert_eq!(packets[1]["flags"], "SYN ACK");
    assert_eq!(packets[1]["from"], "server");
    let unhex = |h: &Value| -> Vec<u8> {
        let h = h.as_str().unwrap();
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    assert_eq!(unhex(&v["streams"][0]["hex"]), client_says);
    assert_eq!(unhex(&v["streams"][1]["hex"]), server_says);
    // Bounded: 2 packets and "more"; the KiB range refused past it.
    let small = http
        .get(&format!("{url}?packets=2&kib=1"), Some(&cookie))
        .json();
    assert_eq!(small["packets"].as_array().unwrap().len(), 2);
    assert_eq!(small["more_packets"], true);
    let refused = http.get(&format!("{url}?kib=65"), Some(&cookie));
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("1 to 64")
    );
    assert_eq!(http.get(&url, None).status, 401);

    // The page: headers in a table, payload as hex and ASCII text; nothing
    // of the payload became an element, nothing of it ran.
    let br = Browser::start();
    br.goto(&format!("{base}/flow/5555/{id}"));
    br.view("login");
    br.type_into("#user", "analyst");
    br.type_into("#password", PASSWORD);
    br.click("#login-submit");
    br.view("flow");
    assert_eq!(br.count("#packets-table tbody tr"), 6);
    assert!(
        br.text("#packets-table tbody tr[data-n='2']")
            .contains("SYN ACK")
    );
    let shown = br.text("#payload-client");
    assert!(shown.starts_with("000000  3c 73 63 72"), "{shown}");
    assert!(shown.contains("<script>window.p"), "{shown}");
    assert!(br.text("#payload-server").contains("...<b>bold</b><s"));
    let injected = br.js(
        "return {elements: document.querySelectorAll('#packets-view script, #packets-view img, #packets-view b').length, \
                 pwned: window.pwned === undefined ? null : window.pwned}",
        json!([]),
    );
    assert_eq!(injected, json!({"elements": 0, "pwned": null}));
    br.screenshot("packets");
    // Per packet: one dump per packet with payload.
    br.click("#payload-packets");
    br.wait_url("payload=packets", "the per-packet view was not opened");
    br.view("flow");
    assert_eq!(br.count("#payload-per-packet pre.hexdump"), 2);
    assert_eq!(
        br.js("return window.pwned === undefined", json!([])),
        json!(true)
    );
}

/// Clicks the time bar `selector` names (a plot or histogram bucket: SVG
/// links, which WebDriver's element click does not reach).
fn click_time_bar(br: &Browser, selector: &str) {
    br.js(
        "document.querySelector(arguments[0]).dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))",
        json!([selector]),
    );
}

/// The connection table, opened from a time bar, keeps the filters of
/// roo B's tcp flows, adds the bar's window and lists flows.
fn assert_table_over_a_window(br: &Browser) {
    br.view("flows");
    let url = br.current_url();
    for p in ["sensor=2222", "proto=tcp", "since=", "until="] {
        assert!(url.contains(p), "{url} has {p}");
    }
    assert!(br.count("#flows tbody tr[data-flow]") > 0);
}
