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
