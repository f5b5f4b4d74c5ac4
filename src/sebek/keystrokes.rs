//! Keystroke lines as the Honeynet Project's `sbk_ks_log.pl` (sebek server
//! tools) prints them, from sebek read records in capture order.
//!
//! Owns the grouping of reads into lines and their three renderings: the
//! script's own (`[BS]` for a backspace, control bytes scrubbed), cooked
//! (backspaces applied) and raw (every byte, escaped). Pure: no I/O, no SQL;
//! the mirror feeds it reads, the CLI and the web UI print what it returns.
//!
//! What the script does, and this module matches:
//! - it keeps only read records (type 0) of at most 100 bytes (its
//!   `$ks_read_length_limit`, "the maximum size of a read we will consider to
//!   be keystroke based"), whatever their file descriptor;
//! - it appends each read's bytes to a buffer keyed by (honeypot address,
//!   pid, inode, fd), with the sets of uids and command names seen on it;
//! - when a read contains `\n` or `\r` it prints the whole buffer as one line
//!   and forgets it; a buffer never ended by a newline is never printed;
//! - the time printed is the honeypot clock (sebek header `time_sec`, UTC) of
//!   the read that ended the line;
//! - the text maps arrow, delete and page keys to `[U-ARROW]` .. `[PAGE-D]`,
//!   0x7f to `[BS]`, a lone ESC to `[ESC]`, then drops every byte outside
//!   0x20-0x7e (so the `\r`/`\n` themselves, and a 0x08 backspace, vanish).
//!
//! - the zero-length read that marks a fork (sebek sends it as the child,
//!   with the parent's command) is a read of at most 100 bytes too: its uid
//!   and command join the pending line of its (host, pid, inode, fd), so the
//!   first line after a fork lists the parent's command (`COM:sshd/bash`);
//!   the mirror keeps that read in `x_process_fork` and feeds it here before
//!   the process's first read;
//! - reads of 60 to 100 bytes are whole (`x_sys_read_data`; hflow2's
//!   `sys_read.data` column keeps 59);
//! - each read names the command it carried (`x_sys_read_com`: the command
//!   of the process's latest read that named one), so lines before and
//!   after an exec in one process name their own programs.
//!
//! Where lumpy differs: the script joins the uid and command sets in Perl
//! hash order (random between runs); lumpy joins them in the order first
//! seen. Reads recorded before lumpy kept their command (and legacy
//! imports) name the process's latest command.
//!
//! A line holding a read that the capture's snaplen cut is marked
//! (`KsLine::truncated`): its text misses bytes the script would have seen.

use std::net::Ipv4Addr;

use serde::Serialize;

/// `$ks_read_length_limit` of sbk_ks_log.pl: longer reads are not keystrokes.
pub const KS_READ_LENGTH_LIMIT: u32 = 100;

/// At most this many bytes wait for a newline under one key; more are
/// dropped (a hostile honeypot could send reads without newline forever).
pub const MAX_PENDING_BYTES: usize = 16 * 1024;

/// At most this many keys (pid, inode, fd) wait for a newline at once; the
/// oldest is forgotten past it, so memory stays bounded on hostile data.
pub const MAX_PENDING_KEYS: usize = 4096;

/// One read record, as the mirror gives it (capture order).
#[derive(Debug, Clone)]
pub struct KsRead<'a> {
    pub sensor_id: u32,
    pub process_id: u32,
    pub host: Ipv4Addr,
    pub pid: u32,
    pub uid: u32,
    pub fd: u32,
    pub inode: u32,
    /// Honeypot clock (sebek header), seconds.
    pub time: u32,
    /// Capture clock, seconds.
    pub pcap_time: u32,
    /// The length in the sebek header.
    pub length: u32,
    pub data: &'a [u8],
    /// The process's command name.
    pub com: &'a str,
    /// The capture's snaplen cut the record: `data` misses bytes it read.
    pub truncated: bool,
}

/// One printed line: one command, as sbk_ks_log.pl groups them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KsLine {
    pub sensor_id: u32,
    /// The process row (lumpy's process_id) of the read that ended the line.
    pub process_id: u32,
    pub host: Ipv4Addr,
    pub pid: u32,
    pub fd: u32,
    pub inode: u32,
    /// Distinct uids, first seen first.
    pub uids: Vec<u32>,
    /// Distinct command names, first seen first.
    pub coms: Vec<String>,
    /// Honeypot clock of the read that ended the line (what the script prints).
    pub time: u32,
    /// Capture clock of that read.
    pub pcap_time: u32,
    /// The bytes of the line, newline included.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// As sbk_ks_log.pl shows it (`[BS]`, control bytes dropped).
    pub text: String,
    /// Backspaces applied.
    pub cooked: String,
    /// Every byte, non-printable ones escaped (`\r`, `\x7f`).
    pub raw: String,
    /// A read of the line was cut by the capture's snaplen: the text misses
    /// what it typed. Not written when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl KsLine {
    /// The line exactly as sbk_ks_log.pl prints it, without the newline:
    /// `[YYYY-MM-DD HH:MM:SS Host:IP UID:N PID:N FD:N INO:N COM:cmd ]#text`
    /// (a line with a read cut by the snaplen is marked by the caller).
    pub fn sbk_format(&self, text: &str) -> String {
        format!(
            "[{} Host:{} UID:{} PID:{} FD:{} INO:{} COM:{} ]#{}",
            utc(self.time),
            self.host,
            join(&self.uids),
            self.pid,
            self.fd,
            self.inode,
            self.coms.join("/"),
            text
        )
    }
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join("/")
}

/// `YYYY-MM-DD HH:MM:SS` of epoch seconds, UTC (the script's `gmtime`).
pub fn utc(secs: u32) -> String {
    crate::time_arg::utc_text(secs)
}

/// The escape sequences the script names, in the order it replaces them.
const KEYS: [(&[u8], &str); 7] = [
    (b"\x1b[A", "[U-ARROW]"),
    (b"\x1b[B", "[D-ARROW]"),
    (b"\x1b[C", "[R-ARROW]"),
    (b"\x1b[D", "[L-ARROW]"),
    (b"\x1b[3~", "[DEL]"),
    (b"\x1b[5~", "[PAGE-U]"),
    (b"\x1b[6~", "[PAGE-D]"),
];

/// One key of the line: a printable byte, a named key, or a backspace.
enum Key {
    Char(char),
    Named(&'static str),
    Backspace,
    /// Any other byte: dropped by the script's final scrub.
    Other(u8),
}

/// Splits bytes into keys the way the script's substitutions see them.
/// (Its substitutions run one after another over the whole buffer; as none
/// of their outputs contains ESC or 0x7f, one left-to-right pass that tries
/// the named sequences first gives the same text.)
fn keys(bytes: &[u8]) -> Vec<Key> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let rest = bytes.get(i..).unwrap_or_default();
        if let Some((seq, name)) = KEYS.iter().find(|(seq, _)| rest.starts_with(seq)) {
            out.push(Key::Named(name));
            i += seq.len();
            continue;
        }
        out.push(match b {
            0x7f => Key::Backspace,
            0x1b => Key::Named("[ESC]"),
            0x20..=0x7e => Key::Char(char::from(b)),
            other => Key::Other(other),
        });
        i += 1;
    }
    out
}

/// sbk_ks_log.pl's rendering: `[BS]` for 0x7f, everything else non-printable dropped.
pub fn sbk_text(bytes: &[u8]) -> String {
    let mut s = String::new();
    for k in keys(bytes) {
        match k {
            Key::Char(c) => s.push(c),
            Key::Named(n) => s.push_str(n),
            Key::Backspace => s.push_str("[BS]"),
            Key::Other(_) => {}
        }
    }
    s
}

/// What the terminal showed: each backspace (0x7f or 0x08) removes the key
/// before it, Ctrl-U clears the line, Ctrl-W removes the last word; other
/// named keys stay as the script names them.
pub fn cooked_text(bytes: &[u8]) -> String {
    let mut shown: Vec<String> = Vec::new();
    for k in keys(bytes) {
        match k {
            Key::Backspace | Key::Other(0x08) => {
                shown.pop();
            }
            Key::Other(0x15) => shown.clear(),
            Key::Other(0x17) => {
                while shown.last().is_some_and(|s| s == " ") {
                    shown.pop();
                }
                while shown.last().is_some_and(|s| s != " ") {
                    shown.pop();
                }
            }
            Key::Char(c) => shown.push(c.to_string()),
            Key::Named(n) => shown.push(n.to_string()),
            Key::Other(_) => {}
        }
    }
    shown.concat()
}

/// Every byte: printable ASCII as is, the rest escaped (`\r`, `\n`, `\t`, `\xNN`).
pub fn raw_text(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        match b {
            0x20..=0x7e if *b != b'\\' => s.push(char::from(*b)),
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            other => s.push_str(&format!("\\x{other:02x}")),
        }
    }
    s
}

/// The pending buffer of one key.
struct Pending {
    /// Insertion order, to forget the oldest key first.
    seq: u64,
    bytes: Vec<u8>,
    uids: Vec<u32>,
    coms: Vec<String>,
    truncated: bool,
}

/// Groups reads into lines as sbk_ks_log.pl does. Feed reads in capture
/// order (per sensor: sys_read_id order); each call returns the line the
/// read ended, if any.
#[derive(Default)]
pub struct LineBuilder {
    pending: std::collections::HashMap<(u32, Ipv4Addr, u32, u32, u32), Pending>,
    seq: u64,
}

impl LineBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one read; returns the line it completes.
    pub fn push(&mut self, r: &KsRead<'_>) -> Option<KsLine> {
        if r.length > KS_READ_LENGTH_LIMIT {
            return None;
        }
        let key = (r.sensor_id, r.host, r.pid, r.inode, r.fd);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING_KEYS {
            self.forget_oldest();
        }
        self.seq += 1;
        let seq = self.seq;
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            seq,
            bytes: Vec::new(),
            uids: Vec::new(),
            coms: Vec::new(),
            truncated: false,
        });
        let room = MAX_PENDING_BYTES.saturating_sub(p.bytes.len());
        p.bytes
            .extend_from_slice(r.data.get(..room.min(r.data.len()))?);
        p.truncated |= r.truncated;
        if !p.uids.contains(&r.uid) {
            p.uids.push(r.uid);
        }
        if !p.coms.iter().any(|c| c == r.com) {
            p.coms.push(r.com.to_string());
        }
        if !r.data.iter().any(|b| *b == b'\n' || *b == b'\r') {
            return None;
        }
        let p = self.pending.remove(&key)?;
        Some(KsLine {
            sensor_id: r.sensor_id,
            process_id: r.process_id,
            host: r.host,
            pid: r.pid,
            fd: r.fd,
            inode: r.inode,
            uids: p.uids,
            coms: p.coms,
            time: r.time,
            pcap_time: r.pcap_time,
            text: sbk_text(&p.bytes),
            cooked: cooked_text(&p.bytes),
            raw: raw_text(&p.bytes),
            bytes: p.bytes,
            truncated: p.truncated,
        })
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.seq)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.pending.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'a>(pid: u32, fd: u32, time: u32, data: &'a [u8], com: &'a str) -> KsRead<'a> {
        KsRead {
            sensor_id: 1,
            process_id: pid,
            host: Ipv4Addr::new(10, 0, 0, 5),
            pid,
            uid: 0,
            fd,
            inode: 100 + fd,
            time,
            pcap_time: time + 1,
            length: u32::try_from(data.len()).unwrap_or(u32::MAX),
            data,
            com,
            truncated: false,
        }
    }

    #[test]
    fn renders_as_the_script_does() {
        let b = b"ls\x7f\x7fpwd\x1b[A\x1b[3~\x1bx\x08\t\r";
        assert_eq!(sbk_text(b), "ls[BS][BS]pwd[U-ARROW][DEL][ESC]x");
        assert_eq!(cooked_text(b), "pwd[U-ARROW][DEL][ESC]");
        assert_eq!(
            raw_text(b),
            "ls\\x7f\\x7fpwd\\x1b[A\\x1b[3~\\x1bx\\x08\\t\\r"
        );
        assert_eq!(cooked_text(b"rm -rf /tmp\x17\x17ls\r"), "rm ls");
        assert_eq!(cooked_text(b"secret\x15id\n"), "id");
    }

    #[test]
    fn groups_reads_per_key_until_a_newline() {
        let mut b = LineBuilder::new();
        assert!(b.push(&read(7, 0, 10, b"i", "bash")).is_none());
        // Another process typing in between does not mix in.
        assert!(b.push(&read(8, 0, 11, b"x", "sh")).is_none());
        assert!(b.push(&read(7, 0, 12, b"d", "bash")).is_none());
        // A long read is not a keystroke: skipped whole.
        let long = [b'a'; 101];
        assert!(b.push(&read(7, 0, 13, &long, "bash")).is_none());
        let line = b.push(&read(7, 0, 14, b"\r", "bash")).unwrap();
        assert_eq!(
            line.sbk_format(&line.text),
            "[1970-01-01 00:00:14 Host:10.0.0.5 UID:0 PID:7 FD:0 INO:100 COM:bash ]#id"
        );
        // A read holding several newlines ends one line with all of it.
        let line = b.push(&read(8, 0, 15, b"a\rb\r", "sh")).unwrap();
        assert_eq!(line.text, "xab");
    }

    #[test]
    fn pending_memory_is_bounded() {
        let mut b = LineBuilder::new();
        let chunk = [b'z'; 100];
        for _ in 0..(MAX_PENDING_BYTES / 100 + 10) {
            assert!(b.push(&read(7, 0, 1, &chunk, "sh")).is_none());
        }
        let line = b.push(&read(7, 0, 2, b"\n", "sh")).unwrap();
        assert_eq!(line.bytes.len(), MAX_PENDING_BYTES);
        for pid in 0..(MAX_PENDING_KEYS as u32 + 5) {
            b.push(&read(pid, 0, 3, b"q", "sh"));
        }
        assert_eq!(b.pending.len(), MAX_PENDING_KEYS);
    }
}
