//! Synthetic attack traffic as classic pcap files, for the flood benchmark
//! and the flow-budget tests: what a honeywall sees most of (spoofed-source
//! SYN floods, backscatter, horizontal scans), each packet often a flow of
//! its own. Deterministic: the same class, count and seed make the same
//! bytes, so runs compare.
//!
//! Shared by `benches/` and `tests/` (included with `#[path]`).

#![allow(dead_code)]

use std::io::{self, Write};
use std::path::Path;

/// The kinds of flow-dense traffic generated here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// SYNs from random (spoofed) sources and ports to one honeypot.
    SynFlood,
    /// SYN+ACKs and RSTs from random addresses to the honeypot net: the
    /// victims of a flood spoofed with our addresses answering us.
    Backscatter,
    /// One source sweeping a /16 on ports 23 and 445, nmap-style SYNs.
    HorizontalScan,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::SynFlood => "syn-flood",
            Class::Backscatter => "backscatter",
            Class::HorizontalScan => "scan-/16",
        }
    }
}

/// xorshift64*: fast, deterministic, good enough for addresses.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The honeypot every class targets (or answers for): 192.0.2.0/24 in the
/// documentation range, as the fixtures' honeypots are.
pub const HONEYPOT: [u8; 4] = [192, 0, 2, 10];

/// Writes `packets` packets of `class` to `dst` as a little-endian,
/// microsecond pcap with Ethernet frames, `per_second` packets per second of
/// capture time from `start_sec`. Returns the file's size.
pub fn write_capture(
    dst: &Path,
    class: Class,
    packets: u64,
    per_second: u64,
    start_sec: u32,
    seed: u64,
) -> io::Result<u64> {
    let mut out = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dst)?);
    out.write_all(&pcap_header())?;
    let mut written = 24u64;
    let mut rng = Rng::new(seed);
    let mut frame = Vec::with_capacity(128);
    let step_us = (1_000_000 / per_second.max(1)).max(1);
    for i in 0..packets {
        let us = i * step_us;
        let sec = start_sec as u64 + us / 1_000_000;
        let usec = us % 1_000_000;
        frame.clear();
        class_frame(class, i, &mut rng, &mut frame);
        write_record(&mut out, sec as u32, usec as u32, &frame)?;
        written += 16 + frame.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

fn class_frame(class: Class, i: u64, rng: &mut Rng, frame: &mut Vec<u8>) {
    let r = rng.next();
    match class {
        Class::SynFlood => {
            let src = random_public(r);
            let sport = (r >> 32) as u16 | 1024;
            let seq = (r >> 16) as u32;
            tcp_frame(
                frame, src, HONEYPOT, sport, 80, 0x02, seq, 0, 512, 64, false,
            );
        }
        Class::Backscatter => {
            let src = random_public(r);
            let dst = [192, 0, 2, (r >> 40) as u8];
            let sport = [80u16, 443, 25, 53][(r >> 50) as usize % 4];
            let dport = (r >> 32) as u16 | 1024;
            let flags = if r & 1 == 0 { 0x12 } else { 0x04 };
            tcp_frame(
                frame,
                src,
                dst,
                sport,
                dport,
                flags,
                (r >> 8) as u32,
                (r >> 20) as u32,
                29200,
                52,
                false,
            );
        }
        Class::HorizontalScan => {
            let host = (i / 2) as u32;
            let dst = [10, 77, (host >> 8) as u8, host as u8];
            let dport = if i.is_multiple_of(2) { 23 } else { 445 };
            let sport = 40000 + ((i / 131072) as u16 % 20000);
            tcp_frame(
                frame,
                [198, 51, 100, 77],
                dst,
                sport,
                dport,
                0x02,
                (r >> 16) as u32,
                0,
                1024,
                41,
                true,
            );
        }
    }
}

/// A random unicast address outside the honeypot's net.
fn random_public(r: u64) -> [u8; 4] {
    let mut a = (r as u32).to_be_bytes();
    a[0] = 1 + (a[0] % 223);
    if a[0] == 127 || a[0] == 10 {
        a[0] = 11;
    }
    a
}

pub fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&65535u32.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

pub fn write_record(out: &mut impl Write, sec: u32, usec: u32, frame: &[u8]) -> io::Result<()> {
    let mut rec = [0u8; 16];
    rec[0..4].copy_from_slice(&sec.to_le_bytes());
    rec[4..8].copy_from_slice(&usec.to_le_bytes());
    rec[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
    rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
    out.write_all(&rec)?;
    out.write_all(frame)
}

/// An Ethernet + IPv4 + TCP frame with correct checksums. `mss` adds the
/// MSS option nmap's SYN scan sends.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    frame: &mut Vec<u8>,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    ttl: u8,
    mss: bool,
) {
    frame.extend_from_slice(&[0x00, 0x16, 0x3e, 0x00, 0x00, 0x02]);
    frame.extend_from_slice(&[0x00, 0x16, 0x3e, 0x00, 0x00, 0x01]);
    frame.extend_from_slice(&[0x08, 0x00]);
    let tcp_len: u16 = if mss { 24 } else { 20 };
    let total = 20 + tcp_len;
    let ip_start = frame.len();
    frame.extend_from_slice(&[0x45, 0x00]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&(seq as u16).to_be_bytes());
    frame.extend_from_slice(&[0x00, 0x00, ttl, 6, 0, 0]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    let sum = checksum(&frame[ip_start..ip_start + 20], 0);
    frame[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
    let tcp_start = frame.len();
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&ack.to_be_bytes());
    frame.push(((tcp_len / 4) as u8) << 4);
    frame.push(flags);
    frame.extend_from_slice(&window.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    if mss {
        frame.extend_from_slice(&[2, 4, 0x05, 0xb4]);
    }
    let mut pseudo = 0u32;
    for pair in [&src[0..2], &src[2..4], &dst[0..2], &dst[2..4]] {
        pseudo += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    pseudo += 6 + u32::from(tcp_len);
    let sum = checksum(&frame[tcp_start..], pseudo);
    frame[tcp_start + 16..tcp_start + 18].copy_from_slice(&sum.to_be_bytes());
}

fn checksum(bytes: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for chunk in bytes.chunks(2) {
        let hi = u32::from(chunk[0]) << 8;
        let lo = chunk.get(1).map_or(0, |b| u32::from(*b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
