//! Hostile peers and clients against a real `lumpy serve` (issue #9): bad,
//! expired and replayed credentials, a wrong source address, oversized
//! bodies, slow senders, path traversal in every parameter, SQL
//! metacharacters in every filter. Each gets 401, 403, 413, 408 or 400,
//! changes nothing, and answers without a path, a secret or a stack.
//!
//! Requests are written by hand on a TCP socket so that nothing normalises
//! the path or completes a slow request on our behalf.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use lumpy::sync::auth::{Secret, sign};
use lumpy::sync::protocol::REQUEST_READ_SECS;

use crate::sync::{free_port, serve};
use crate::util::*;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends raw bytes, reads the answer to the end; (status, body).
fn exchange(addr: &str, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    parse(&answer)
}

fn parse(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn request(method: &str, target: &str, auth: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: lumpy\r\nConnection: close\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("x-lumpy-auth: {a}\r\n"));
    }
    if method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn signed(secret: &Secret, method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let auth = sign(secret, method, target, now(), body).unwrap();
    request(method, target, Some(&auth), body)
}

/// A served node with one allowed parent `p` and one parent `far` that may
/// only come from 10.9.9.0/24.
struct Hostile {
    _dir: tempfile::TempDir,
    data: String,
    addr: String,
    secret: Secret,
    far: Secret,
    served: Option<crate::sync::Served>,
    /// What must not change: segment files, lumpy.toml, flow rows.
    before: (Vec<String>, Vec<u8>, usize),
}

impl Hostile {
    fn new(ip: &str, sensor: u32) -> Hostile {
        let (dir, data) = new_node(sensor);
        ingest_fixture(&data, "honeynet.pcap");
        // Raw HTTP/1.1 exchanges with the peer API: asked for in plain
        // HTTP (so `peer add` prints bare secrets).
        config_set(&data, "serve.peer_plain", "true");
        let secret = Secret::parse(&ok(&["peer", "add", "--data", &data, "p"])).unwrap();
        let far = Secret::parse(&ok(&[
            "peer",
            "add",
            "--data",
            &data,
            "far",
            "--allow",
            "10.9.9.0/24",
        ]))
        .unwrap();
        let port = free_port(ip);
        let served = serve(&data, ip, port);
        let before = Self::state(&data);
        Hostile {
            _dir: dir,
            addr: format!("{ip}:{port}"),
            data,
            secret,
            far,
            served: Some(served),
            before,
        }
    }

    fn state(data: &str) -> (Vec<String>, Vec<u8>, usize) {
        (
            segment_files(data),
            std::fs::read(Path::new(data).join("lumpy.toml")).unwrap(),
            flows_json(data, &[]).len(),
        )
    }

    /// The answer is JSON `{"error": ...}` with nothing an attacker should
    /// learn: no path of this machine, no secret, no stack or source file.
    fn assert_plain(&self, status: u16, body: &str, what: &str) {
        let v: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|_| panic!("{what}: {status} answer is not JSON: {body:?}"));
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {body}"));
        for leak in [
            self.data.as_str(),
            "/tmp",
            "/root",
            "/work",
            ".rs",
            "panicked",
            "index.redb",
            "segments/",
        ] {
            assert!(!msg.contains(leak), "{what}: answer names {leak:?}: {msg}");
        }
        for s in [&self.secret, &self.far] {
            let text = s.to_text();
            let key = text.rsplit(':').next().unwrap();
            assert!(!body.contains(key), "{what}: answer holds a secret");
        }
    }

    fn expect(&self, raw: &[u8], status: u16, what: &str) {
        let (got, body) = exchange(&self.addr, raw);
        assert_eq!(got, status, "{what}: {body}");
        self.assert_plain(got, &body, what);
    }

    fn finish(mut self) {
        if let Some(s) = self.served.take() {
            s.stop();
        }
        assert_eq!(
            Self::state(&self.data),
            self.before,
            "a refused request changed the node"
        );
    }
}

#[test]
fn bad_expired_replayed_and_misplaced_credentials_are_refused_and_change_nothing() {
    let h = Hostile::new("127.0.0.51", 1951);
    let t = "/v1/summary";
    // The good request works, once.
    let good = signed(&h.secret, "GET", t, b"");
    assert_eq!(exchange(&h.addr, &good).0, 200);
    h.expect(&good, 401, "replayed request");
    h.expect(&request("GET", t, None, b""), 401, "no credentials");
    h.expect(&request("GET", t, Some("p"), b""), 401, "malformed header");
    h.expect(
        &request("GET", t, Some("p 1 2 3 4 5 6"), b""),
        401,
        "too many fields",
    );
    let stranger = Secret::generate("p").unwrap();
    h.expect(&signed(&stranger, "GET", t, b""), 401, "key of no peer");
    let unknown = Secret::generate("nobody").unwrap();
    h.expect(&signed(&unknown, "GET", t, b""), 401, "unknown link");
    for skew in [-3600, 3600] {
        let auth = sign(&h.secret, "GET", t, now() + skew, b"").unwrap();
        h.expect(
            &request("GET", t, Some(&auth), b""),
            401,
            "expired or future",
        );
    }
    // Signed for another path or body: the signature does not match.
    let auth = sign(&h.secret, "GET", "/v1/catalog/1951", now(), b"").unwrap();
    h.expect(&request("GET", t, Some(&auth), b""), 401, "path swapped");
    let body = br#"{"ids": []}"#;
    let auth = sign(&h.secret, "POST", "/v1/segments", now(), b"{}").unwrap();
    h.expect(
        &request("POST", "/v1/segments", Some(&auth), body),
        401,
        "body swapped",
    );
    // A configured parent from outside its allowed network.
    h.expect(&signed(&h.far, "GET", t, b""), 403, "wrong source address");
    h.finish();
}

#[test]
fn oversized_and_slow_requests_are_cut_off_in_bounded_time() {
    let h = Hostile::new("127.0.0.52", 1952);
    // A body over 1 MiB: 413 before a byte of it is read.
    let head = "POST /v1/segments HTTP/1.1\r\nHost: lumpy\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n";
    h.expect(head.as_bytes(), 413, "oversized body");
    // The same sent whole: still 413, and the node keeps answering.
    let big = vec![b' '; 1_100_000];
    h.expect(
        &signed(&h.secret, "POST", "/v1/segments", &big),
        413,
        "oversized body sent",
    );

    // A slow body: one byte a second never finishes in time: 408.
    let mut body = br#"{"ids": []}"#.to_vec();
    body.resize(400, b' ');
    let mut raw = signed(&h.secret, "POST", "/v1/segments", &body);
    raw.truncate(raw.len() - body.len());
    assert_eq!(slow_body_status(&h.addr, &raw, &body), 408, "slow body");
    // A slow head: 408 in bounded time.
    slow_head_is_cut_off(&h.addr, b"GET /v1/summary HTTP/1.1\r\nX-Slow: ");
    // Still serving.
    assert_eq!(
        exchange(&h.addr, &signed(&h.secret, "GET", "/v1/summary", b"")).0,
        200
    );
    h.finish();
}

#[test]
fn path_traversal_in_every_parameter_is_a_400() {
    let h = Hostile::new("127.0.0.53", 1953);
    let targets = [
        "/v1/catalog/..%2F..%2Fetc%2Fpasswd",
        "/v1/catalog/../../etc/passwd",
        "/v1/../../../etc/passwd",
        "/v1/summary/..",
        "/v1/./summary",
        "/v1/catalog/%2e%2e",
        "/v1/catalog/1953%00",
        "/v1/catalog/..%5c..%5cwindows",
        "/v1/summary?pcap=../../../etc/passwd",
        "/v1/summary?x=1",
        "/v1/catalog/1953?after=../../x",
        "/v1/catalog/1953?limit=..%2F..%2Fetc",
        "/v1/catalog/1953?file=/etc/passwd",
        "/v1/catalog/etc%2Fpasswd",
        "/pcap?sensor=../../etc/passwd",
        "/pcap?sensor=1953&con_id=..%2F..%2Fetc%2Fpasswd",
        "/pcap?sensor=1953&con_id=/etc/passwd",
        "/pcap?sensor=1953&net=..%2F..",
        "/pcap?sensor=1953&ip=/etc/passwd",
        "/pcap?sensor=1953&st=..&et=..",
    ];
    for t in targets {
        h.expect(&signed(&h.secret, "GET", t, b""), 400, t);
    }
    for body in [
        r#"{"ids": ["../../../etc/passwd"]}"#,
        r#"{"ids": ["..%2F..%2Fetc%2Fpasswd"]}"#,
        r#"{"ids": ["/etc/passwd"]}"#,
        r#"{"ids": "../../etc"}"#,
        "not json",
    ] {
        h.expect(
            &signed(&h.secret, "POST", "/v1/segments", body.as_bytes()),
            400,
            body,
        );
    }
    h.expect(
        &signed(&h.secret, "POST", "/v1/segments?path=..", br#"{"ids": []}"#),
        400,
        "query on a fetch",
    );
    h.finish();
}

#[test]
fn sql_metacharacters_in_every_filter_are_refused() {
    let h = Hostile::new("127.0.0.54", 1954);
    let evil = [
        "1'%20OR%20'1'='1",
        "1;DROP%20TABLE%20flow",
        "1%22%20OR%201=1--",
        "1)%20UNION%20SELECT%20*%20FROM%20sqlite_master--",
        "%27",
    ];
    let filters = [
        "con_id", "st", "et", "ip", "sip", "dip", "net", "snet", "dnet", "ip_proto", "port",
        "sport", "dport",
    ];
    for f in filters {
        for e in evil {
            let t = format!("/pcap?sensor=1954&st=1&et=2000000000&ip_proto=6&{f}={e}");
            h.expect(&signed(&h.secret, "GET", &t, b""), 400, &t);
        }
    }
    for e in evil {
        for t in [
            format!("/pcap?sensor={e}"),
            format!("/v1/catalog/{e}"),
            format!("/v1/catalog/1954?after={e}"),
            format!("/v1/catalog/1954?limit={e}"),
        ] {
            h.expect(&signed(&h.secret, "GET", &t, b""), 400, &t);
        }
    }
    h.finish();
}

/// How long a slow client may hold a connection before lumpy cuts it off.
fn slow_bound() -> Duration {
    Duration::from_secs(REQUEST_READ_SECS + 10)
}

/// Sends `head` at once, then `body` one byte at a time about a second
/// apart (repeating it if need be); returns the status lumpy answers with,
/// which must come within `slow_bound`.
fn slow_body_status(addr: &str, head: &[u8], body: &[u8]) -> u16 {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    s.write_all(head).unwrap();
    let mut answer = Vec::new();
    for b in body.iter().cycle() {
        assert!(started.elapsed() < slow_bound(), "no answer to a slow body");
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    assert!(started.elapsed() < slow_bound());
    parse(&answer).0
}

/// Sends `head` and then a header line one byte a second: lumpy must answer
/// 408 and close the connection within `slow_bound`.
fn slow_head_is_cut_off(addr: &str, head: &[u8]) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    s.write_all(head).unwrap();
    let mut answer = Vec::new();
    for b in b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .iter()
        .cycle()
    {
        assert!(
            started.elapsed() < slow_bound(),
            "a slow head keeps its connection"
        );
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    assert!(
        !answer.is_empty(),
        "a slow head was cut off without an answer"
    );
    assert_eq!(parse(&answer).0, 408, "slow head answered");
}

/// The web UI's listener is bounded like the peer API's: an oversized body
/// is a 413, a slow body or head a 408, and it keeps serving.
#[test]
fn the_web_ui_bounds_request_size_and_time() {
    let (_d, data) = new_node(7);
    let (api_port, ui_port) = (free_port("127.0.0.53"), free_port("127.0.0.54"));
    let served = crate::web::serve_ui(&data, "127.0.0.53", api_port, "127.0.0.54", ui_port);
    let addr = format!("127.0.0.54:{ui_port}");
    let head = |len: usize| {
        format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    let (status, body) = exchange(&addr, head(1_000_000).as_bytes());
    assert_eq!(status, 413, "oversized login body: {body}");
    let login = br#"{"user": "nobody", "password": "not a password at all"}"#;
    assert_eq!(
        slow_body_status(&addr, head(login.len()).as_bytes(), login),
        408,
        "slow login body"
    );
    slow_head_is_cut_off(&addr, b"GET /api/v1/me HTTP/1.1\r\nX-Slow: ");
    let (status, _) = exchange(
        &addr,
        format!("GET /api/v1/me HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 401, "still serving, and still asking for a session");
    served.stop();
}

/// The answers on one connection, in order: each `(status, whole text)`.
fn answers_on(mut s: TcpStream, wait: Duration) -> Vec<(u16, String)> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).into_owned();
    text.match_indices("HTTP/1.1 ")
        .map(|(at, _)| at)
        .chain([text.len()])
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| {
            let answer = text[w[0]..w[1]].to_string();
            (parse(answer.as_bytes()).0, answer)
        })
        .collect()
}

/// A later request head on a kept-alive connection is checked like the
/// first (issue 21, point 3): after the answer to a good request, a head
/// hyper would refuse is answered 400, one over 64 KiB 431, and one that
/// trickles in 408, each by lumpy with the security headers (hyper's own
/// answers to these carry none, or close without one); on both listeners.
#[test]
fn a_later_bad_head_on_a_kept_alive_connection_carries_the_headers() {
    let ip = "127.0.0.55";
    let (_d, data) = new_node(8);
    config_set(&data, "serve.peer_plain", "true");
    let (api_port, ui_port) = (free_port(ip), free_port(ip));
    let served = crate::web::serve_ui(&data, ip, api_port, ip, ui_port);
    let ui = format!("{ip}:{ui_port}");
    let peer = format!("{ip}:{api_port}");
    let first = |addr: &str, path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let hardened = |what: &str, answers: &[(u16, String)], status: u16| {
        assert_eq!(answers.len(), 2, "{what}: two answers: {answers:?}");
        assert_ne!(answers[0].0, 0, "{what}: the first request answered");
        assert_eq!(answers[1].0, status, "{what}: {answers:?}");
        let later = answers[1].1.to_ascii_lowercase();
        for header in [
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "content-security-policy: ",
        ] {
            assert!(later.contains(header), "{what}: no {header}: {later}");
        }
    };
    for (addr, path) in [(&ui, "/api/v1/me"), (&peer, "/v1/summary")] {
        // A head hyper would refuse, sent right behind a good request.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            format!("{}GET /a\"b HTTP/1.1\r\nHost: x\r\n\r\n", first(addr, path)).as_bytes(),
        )
        .unwrap();
        hardened("malformed", &answers_on(s, slow_bound()), 400);

        // A head past 64 KiB, after the first answer was read.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(first(addr, path).as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(b"GET / HTTP/1.1\r\nx-long: ").unwrap();
        for _ in 0..70 {
            if s.write_all(&[b'a'; 1024]).is_err() {
                break;
            }
        }
        hardened("oversized", &answers_on(s, slow_bound()), 431);
    }

    // A head that trickles in a byte a second: 408 within the limit.
    let started = Instant::now();
    let mut s = TcpStream::connect(&ui).unwrap();
    s.write_all(first(&ui, "/api/v1/me").as_bytes()).unwrap();
    s.write_all(b"GET /api/v1/me HTTP/1.1\r\nX-Slow: ").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    let mut text = Vec::new();
    loop {
        assert!(
            started.elapsed() < slow_bound(),
            "a trickling later head keeps its connection"
        );
        if s.write_all(b"a").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let later = text
        .match_indices("HTTP/1.1 ")
        .nth(1)
        .map(|(at, _)| &text[at..])
        .unwrap_or_else(|| panic!("no second answer: {text}"));
    assert_eq!(parse(later.as_bytes()).0, 408, "{text}");
    assert!(later.contains("x-content-type-options: nosniff"), "{later}");
    served.stop();
}
