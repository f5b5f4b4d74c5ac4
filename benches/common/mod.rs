//! Helpers the benches share: the lumpy command, running nodes, linking
//! them, and a byte-counting TCP relay.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn lumpy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lumpy"))
}

/// Runs lumpy, panicking with its stderr on failure; returns stdout.
pub fn run(args: &[&str]) -> String {
    let out = lumpy().args(args).output().expect("lumpy runs");
    assert!(
        out.status.success(),
        "lumpy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `lumpy serve`, stopped with SIGTERM when dropped.
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

pub fn serve(data: &Path, addr: &str) -> Served {
    let mut child = lumpy()
        .args([
            "serve",
            "--data",
            data.to_str().expect("utf-8"),
            "--listen",
            addr,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    Served(child)
}

pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Makes `parent` pull from `child` (named `name` there) with `extra` flags.
pub fn link(parent: &Path, child: &Path, name: &str, url: &str, extra: &[&str]) {
    // An http:// URL asks for plain HTTP on both sides (as tests/sync.rs).
    let plain = url.starts_with("http://");
    if plain {
        run(&[
            "config",
            "set",
            "--data",
            child.to_str().expect("utf-8"),
            "serve.peer_plain",
            "true",
        ]);
    }
    let secret = run(&[
        "peer",
        "add",
        "--data",
        child.to_str().expect("utf-8"),
        "parent",
    ]);
    let f = parent.join(format!("{name}.secret-in"));
    std::fs::write(&f, secret).expect("write secret");
    let mut args = vec![
        "child",
        "add",
        "--data",
        parent.to_str().expect("utf-8"),
        name,
        url,
        "--secret-file",
        f.to_str().expect("utf-8"),
    ];
    if plain {
        args.push("--plain");
    }
    args.extend_from_slice(extra);
    run(&args);
}

/// A TCP relay in front of `target` that counts bytes each way.
pub struct Relay {
    pub port: u16,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl Relay {
    /// (bytes client -> server, bytes server -> client) so far.
    pub fn total(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }
}

pub fn relay(target: String) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (u, d) = (up.clone(), down.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (c2, s2) = (
                conn.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            pipe(c2, s2, u.clone());
            pipe(server, conn, d.clone());
        }
    });
    Relay { port, up, down }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
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

/// `lumpy init` of the benches' node: sensor 7, honeypots in 192.0.2.0/24.
pub fn init_node(data: &str) {
    run(&[
        "init",
        "--data",
        data,
        "--sensor-id",
        "7",
        "--honeypot-net",
        "192.0.2.0/24",
    ]);
}

/// The file header and every packet of a little-endian microsecond pcap as
/// (seconds, the rest of the record: microseconds, lengths, data).
pub fn all_packets(capture: &Path) -> (Vec<u8>, Vec<(u32, Vec<u8>)>) {
    let src = std::fs::read(capture).expect("fixture");
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= src.len() {
        let cap = u32::from_le_bytes(src[at + 8..at + 12].try_into().expect("4")) as usize;
        let sec = u32::from_le_bytes(src[at..at + 4].try_into().expect("4"));
        packets.push((sec, src[at + 4..at + 16 + cap].to_vec()));
        at += 16 + cap;
    }
    (src[..24].to_vec(), packets)
}

/// Writes `header` and then `packets` (as [`all_packets`] gives them) again
/// and again, each copy's timestamps 200 s after the last, until `target`
/// bytes; returns the bytes written.
pub fn repeat_packets(dst: &Path, target: u64, header: &[u8], packets: &[(u32, Vec<u8>)]) -> u64 {
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dst).expect("create"));
    out.write_all(header).expect("write");
    let (mut written, mut copy) = (header.len() as u64, 0u32);
    while written < target {
        for (sec, rest) in packets {
            out.write_all(&(sec + copy * 200).to_le_bytes())
                .expect("write");
            out.write_all(rest).expect("write");
            written += 4 + rest.len() as u64;
        }
        copy += 1;
    }
    out.flush().expect("flush");
    written
}

/// Packets of the fixture's biggest TCP flow (by packet count).
pub fn biggest_flow(fixture: &Path) -> (Vec<u8>, Vec<(u32, Vec<u8>)>) {
    let (header, packets) = all_packets(fixture);
    // Ethernet + IPv4 + TCP: key on the ports at offsets 34..38 (after 12 bytes of record header).
    let key = |p: &Vec<u8>| -> Option<(u16, u16)> {
        let d = &p[12..];
        (d.len() > 38 && d[12] == 0x08 && d[13] == 0 && d[23] == 6).then(|| {
            let (a, b) = (
                u16::from_be_bytes([d[34], d[35]]),
                u16::from_be_bytes([d[36], d[37]]),
            );
            (a.min(b), a.max(b))
        })
    };
    let mut counts = std::collections::HashMap::new();
    for (_, p) in &packets {
        if let Some(k) = key(p) {
            *counts.entry(k).or_insert(0usize) += p.len();
        }
    }
    let best = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(k, _)| k)
        .expect("a TCP flow");
    let flow: Vec<(u32, Vec<u8>)> = packets
        .into_iter()
        .filter(|(_, p)| key(p) == Some(best))
        .collect();
    (header, flow)
}
