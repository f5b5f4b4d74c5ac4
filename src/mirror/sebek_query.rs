//! Read-only queries over the sebek tables and the OS table, for the
//! `processes`, `keystrokes` and `hosts` commands.
//!
//! Owns the SQL that reads process, process_tree, command, process_to_com,
//! sys_read, sys_open, sys_socket and os; writes nothing.

use std::net::Ipv4Addr;

use rusqlite::{Connection, OptionalExtension, Result, params};
use serde::Serialize;

use super::{Ctx, Mirror, MirrorError};
use crate::sebek::keystrokes::{KS_READ_LENGTH_LIMIT, KsLine, KsRead, LineBuilder};

/// Which processes `processes` shows.
#[derive(Debug, Clone, Default)]
pub struct ProcessQuery {
    pub sensor: Option<u32>,
    /// Processes with a socket on this flow, with their ancestors and
    /// descendants (Walleye's flow -> processes view).
    pub flow: Option<u32>,
    pub pid: Option<u32>,
    /// This process (mirror process_id; needs `sensor`) with its ancestors
    /// and descendants.
    pub process: Option<u32>,
    /// Only processes of this honeypot.
    pub host: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenView {
    /// Honeypot clock.
    pub time: i64,
    /// Capture clock (0 when a legacy row had none).
    pub pcap_time: i64,
    pub filed: u32,
    pub filename: String,
    /// The capture's snaplen cut the record (`x_sebek_truncated`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One socket call of a process, with its ends.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SocketView {
    pub sys_socket_id: u32,
    /// The socketcall number (3 connect, 5 accept, ...; [`call_name`]).
    pub call: u16,
    pub call_name: String,
    /// The joined flow; 0: no flow seen.
    pub flow_id: u32,
    /// Honeypot clock.
    pub time: i64,
    /// Capture clock (0 when a legacy row had none).
    pub pcap_time: i64,
    pub uid: u32,
    /// IP protocol (6 tcp, 17 udp); None when unknown (a legacy row without
    /// a joined flow).
    pub proto: Option<u8>,
    pub local_ip: Option<Ipv4Addr>,
    pub local_port: Option<u16>,
    pub remote_ip: Option<Ipv4Addr>,
    pub remote_port: Option<u16>,
    /// The capture's snaplen cut the record: fields it did not reach are 0.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The name of a Linux socketcall number, as sebek reports it.
pub fn call_name(call: u16) -> String {
    const NAMES: [&str; 20] = [
        "",
        "socket",
        "bind",
        "connect",
        "listen",
        "accept",
        "getsockname",
        "getpeername",
        "socketpair",
        "send",
        "recv",
        "sendto",
        "recvfrom",
        "shutdown",
        "setsockopt",
        "getsockopt",
        "sendmsg",
        "recvmsg",
        "accept4",
        "recvmmsg",
    ];
    match NAMES.get(usize::from(call)) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("call {call}"),
    }
}

/// One process with its tree edges, commands, opens and sockets.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProcessView {
    pub sensor_id: u32,
    pub process_id: u32,
    pub pid: u32,
    pub src_ip: Ipv4Addr,
    pub time_min: i64,
    pub time_max: i64,
    pub pcap_time_min: i64,
    pub pcap_time_max: i64,
    /// The parent pid from the sebek header, known even when the parent
    /// sent no record; None for legacy rows.
    pub ppid: Option<u32>,
    /// Distinct uids of its reads, writes, opens and sockets, ascending.
    pub uids: Vec<u32>,
    pub parents: Vec<u32>,
    pub children: Vec<u32>,
    /// Its command names in the order it took them (fork, then each exec).
    pub commands: Vec<String>,
    pub opens: Vec<OpenView>,
    pub sockets: Vec<SocketView>,
    /// Bytes its reads returned (the lengths in the sebek headers).
    pub bytes_read: u64,
    /// Its records (reads, writes, opens, sockets) cut by the capture's
    /// snaplen: kept with their header fields and the bytes captured.
    pub truncated: u64,
}

/// One read of a process.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadView {
    pub sys_read_id: u32,
    pub time: i64,
    pub pcap_time: i64,
    pub filed: u32,
    pub length: u32,
    pub data: Vec<u8>,
    /// The capture's snaplen cut the record: `data` holds fewer bytes than
    /// `length` says (beyond the mirror's 59).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// An OS fingerprint seen on a host's flows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OsSeen {
    pub sensor_id: u32,
    pub os_id: u32,
    pub genre: String,
    pub detail: String,
    /// p0f matched an application class (`!` in p0f.fp: nmap, ...), not an
    /// operating system.
    pub application: bool,
    /// `client` (the host initiated the flow) or `server`.
    pub role: String,
    pub first_sec: i64,
    pub last_sec: i64,
    pub flows: u64,
}

fn ids(conn: &Connection, sql: &str, a: u32, b: u32) -> Result<Vec<u32>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![a, b], |r| r.get(0))?;
    rows.collect()
}

fn strings(conn: &Connection, sql: &str, a: u32, b: u32) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![a, b], |r| r.get(0))?;
    rows.collect()
}

fn details(conn: &Connection, mut p: ProcessView) -> Result<ProcessView> {
    let (s, id) = (p.sensor_id, p.process_id);
    p.parents = ids(
        conn,
        "SELECT parent_process FROM process_tree WHERE sensor_id = ?1 AND child_process = ?2 ORDER BY 1",
        s,
        id,
    )?;
    p.children = ids(
        conn,
        "SELECT child_process FROM process_tree WHERE sensor_id = ?1 AND parent_process = ?2 ORDER BY 1",
        s,
        id,
    )?;
    p.commands = strings(
        conn,
        "SELECT c.name FROM process_to_com pc JOIN command c USING (sensor_id, command_id) \
         WHERE pc.sensor_id = ?1 AND pc.process_id = ?2 ORDER BY pc.rowid",
        s,
        id,
    )?;
    p.ppid = conn
        .prepare_cached(
            "SELECT ppid FROM x_process_parent WHERE sensor_id = ?1 AND process_id = ?2",
        )?
        .query_row(params![s, id], |r| r.get(0))
        .optional()?;
    p.uids = ids(
        conn,
        "SELECT uid FROM sys_read WHERE sensor_id = ?1 AND process_id = ?2 AND uid IS NOT NULL \
         UNION SELECT uid FROM sys_write WHERE sensor_id = ?1 AND process_id = ?2 AND uid IS NOT NULL \
         UNION SELECT uid FROM sys_open WHERE sensor_id = ?1 AND process_id = ?2 AND uid IS NOT NULL \
         UNION SELECT uid FROM sys_socket WHERE sensor_id = ?1 AND process_id = ?2 ORDER BY 1",
        s,
        id,
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT time, filed, filename, pcap_time, EXISTS (SELECT 1 FROM x_sebek_truncated t \
         WHERE t.sensor_id = o.sensor_id AND t.tbl = 'sys_open' AND t.id = o.sys_open_id) \
         FROM sys_open o WHERE sensor_id = ?1 AND process_id = ?2 ORDER BY sys_open_id",
    )?;
    p.opens = stmt
        .query_map(params![s, id], |r| {
            Ok(OpenView {
                time: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
                filed: r.get(1)?,
                filename: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                pcap_time: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                truncated: r.get(4)?,
            })
        })?
        .collect::<Result<_>>()?;
    p.sockets = sockets(conn, &p)?;
    p.bytes_read = conn
        .prepare_cached(
            "SELECT coalesce(sum(length), 0) FROM sys_read WHERE sensor_id = ?1 AND process_id = ?2",
        )?
        .query_row(params![s, id], |r| r.get::<_, i64>(0))?
        .max(0) as u64;
    p.truncated = conn
        .prepare_cached(TRUNCATED_OF_PROCESS)?
        .query_row(params![s, id], |r| r.get::<_, i64>(0))?
        .max(0) as u64;
    Ok(p)
}

/// How many records of a process the snaplen cut.
const TRUNCATED_OF_PROCESS: &str = "SELECT \
     (SELECT count(*) FROM sys_read r JOIN x_sebek_truncated t ON t.sensor_id = r.sensor_id \
       AND t.tbl = 'sys_read' AND t.id = r.sys_read_id WHERE r.sensor_id = ?1 AND r.process_id = ?2) + \
     (SELECT count(*) FROM sys_write w JOIN x_sebek_truncated t ON t.sensor_id = w.sensor_id \
       AND t.tbl = 'sys_write' AND t.id = w.sys_write_id WHERE w.sensor_id = ?1 AND w.process_id = ?2) + \
     (SELECT count(*) FROM sys_open o JOIN x_sebek_truncated t ON t.sensor_id = o.sensor_id \
       AND t.tbl = 'sys_open' AND t.id = o.sys_open_id WHERE o.sensor_id = ?1 AND o.process_id = ?2) + \
     (SELECT count(*) FROM sys_socket s JOIN x_sebek_truncated t ON t.sensor_id = s.sensor_id \
       AND t.tbl = 'sys_socket' AND t.id = s.sys_socket_id WHERE s.sensor_id = ?1 AND s.process_id = ?2)";

/// A process's sockets with their ends: as sebek saw them (`x_socket_addr`),
/// else (legacy rows) from the joined flow, the honeypot's end being local.
fn sockets(conn: &Connection, p: &ProcessView) -> Result<Vec<SocketView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.sys_socket_id, s.\"call\", s.flow_id, s.time, coalesce(s.pcap_time, 0), s.uid, \
         a.proto, a.local_ip, a.local_port, a.remote_ip, a.remote_port, \
         f.ip_proto, f.src_ip, f.src_port, f.dst_ip, f.dst_port, \
         EXISTS (SELECT 1 FROM x_sebek_truncated t WHERE t.sensor_id = s.sensor_id \
           AND t.tbl = 'sys_socket' AND t.id = s.sys_socket_id) \
         FROM sys_socket s \
         LEFT JOIN x_socket_addr a ON a.sensor_id = s.sensor_id AND a.sys_socket_id = s.sys_socket_id \
         LEFT JOIN flow f ON s.flow_id != 0 AND f.sensor_id = s.sensor_id AND f.flow_id = s.flow_id \
         WHERE s.sensor_id = ?1 AND s.process_id = ?2 ORDER BY s.sys_socket_id",
    )?;
    let honeypot = u32::from(p.src_ip);
    let rows = stmt.query_map(params![p.sensor_id, p.process_id], |r| {
        let call: u16 = r.get(1)?;
        let mut v = SocketView {
            sys_socket_id: r.get(0)?,
            call,
            call_name: call_name(call),
            flow_id: r.get(2)?,
            time: r.get(3)?,
            pcap_time: r.get(4)?,
            uid: r.get(5)?,
            proto: r.get(6)?,
            local_ip: r.get::<_, Option<u32>>(7)?.map(Ipv4Addr::from),
            local_port: r.get(8)?,
            remote_ip: r.get::<_, Option<u32>>(9)?.map(Ipv4Addr::from),
            remote_port: r.get(10)?,
            truncated: r.get(16)?,
        };
        if v.proto.is_none() {
            let proto: Option<u8> = r.get(11)?;
            let src: Option<(u32, u16)> = r.get::<_, Option<u32>>(12)?.zip(r.get(13)?);
            let dst: Option<(u32, u16)> = r.get::<_, Option<u32>>(14)?.zip(r.get(15)?);
            if let (Some(proto), Some(src), Some(dst)) = (proto, src, dst) {
                let (local, remote) = if dst.0 == honeypot {
                    (dst, src)
                } else {
                    (src, dst)
                };
                v.proto = Some(proto);
                v.local_ip = Some(Ipv4Addr::from(local.0));
                v.local_port = Some(local.1);
                v.remote_ip = Some(Ipv4Addr::from(remote.0));
                v.remote_port = Some(remote.1);
            }
        }
        Ok(v)
    })?;
    rows.collect()
}

/// Process rows matching `q`, ordered by (sensor, process id), without
/// their details.
fn process_rows(conn: &Connection, q: &ProcessQuery) -> Result<Vec<ProcessView>> {
    // With --flow: the processes with a socket on it, closed over the tree
    // both ways (ancestors and descendants).
    let sql = "WITH RECURSIVE \
        seed(sensor_id, process_id) AS ( \
          SELECT DISTINCT sensor_id, process_id FROM sys_socket \
          WHERE ?3 IS NOT NULL AND flow_id = ?3 AND (?1 IS NULL OR sensor_id = ?1) \
          UNION SELECT ?1, ?4 WHERE ?1 IS NOT NULL AND ?4 IS NOT NULL), \
        up(sensor_id, process_id) AS ( \
          SELECT * FROM seed UNION SELECT t.sensor_id, t.parent_process FROM process_tree t \
          JOIN up ON t.sensor_id = up.sensor_id AND t.child_process = up.process_id), \
        down(sensor_id, process_id) AS ( \
          SELECT * FROM seed UNION SELECT t.sensor_id, t.child_process FROM process_tree t \
          JOIN down ON t.sensor_id = down.sensor_id AND t.parent_process = down.process_id) \
        SELECT sensor_id, process_id, pid, src_ip, time_min, time_max, pcap_time_min, pcap_time_max \
        FROM process p WHERE (?1 IS NULL OR sensor_id = ?1) AND (?2 IS NULL OR pid = ?2) \
        AND (?5 IS NULL OR src_ip = ?5) \
        AND ((?3 IS NULL AND ?4 IS NULL) OR EXISTS (SELECT 1 FROM up WHERE up.sensor_id = p.sensor_id AND up.process_id = p.process_id) \
             OR EXISTS (SELECT 1 FROM down WHERE down.sensor_id = p.sensor_id AND down.process_id = p.process_id)) \
        ORDER BY sensor_id, process_id";
    let mut stmt = conn.prepare(sql)?;
    let rows: Vec<ProcessView> = stmt
        .query_map(
            params![
                q.sensor,
                q.pid,
                q.flow,
                q.process,
                q.host.map(|h| i64::from(u32::from(h)))
            ],
            |r| {
                Ok(ProcessView {
                    sensor_id: r.get(0)?,
                    process_id: r.get(1)?,
                    pid: r.get(2)?,
                    src_ip: Ipv4Addr::from(r.get::<_, u32>(3)?),
                    time_min: r.get(4)?,
                    time_max: r.get(5)?,
                    pcap_time_min: r.get(6)?,
                    pcap_time_max: r.get(7)?,
                    ppid: None,
                    uids: Vec::new(),
                    parents: Vec::new(),
                    children: Vec::new(),
                    commands: Vec::new(),
                    opens: Vec::new(),
                    sockets: Vec::new(),
                    bytes_read: 0,
                    truncated: 0,
                })
            },
        )?
        .collect::<Result<_>>()?;
    Ok(rows)
}

fn processes(conn: &Connection, q: &ProcessQuery) -> Result<Vec<ProcessView>> {
    process_rows(conn, q)?
        .into_iter()
        .map(|p| details(conn, p))
        .collect()
}

fn reads(conn: &Connection, sensor: Option<u32>, process_id: u32) -> Result<Vec<ReadView>> {
    let mut stmt = conn.prepare(
        "SELECT sys_read_id, time, pcap_time, filed, length, data, EXISTS (SELECT 1 FROM \
         x_sebek_truncated t WHERE t.sensor_id = r.sensor_id AND t.tbl = 'sys_read' \
         AND t.id = r.sys_read_id) FROM sys_read r \
         WHERE (?1 IS NULL OR sensor_id = ?1) AND process_id = ?2 ORDER BY sensor_id, sys_read_id",
    )?;
    stmt.query_map(params![sensor, process_id], |r| {
        Ok(ReadView {
            sys_read_id: r.get(0)?,
            time: r.get(1)?,
            pcap_time: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
            filed: r.get(3)?,
            length: r.get(4)?,
            data: r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default(),
            truncated: r.get(6)?,
        })
    })?
    .collect()
}

/// Which reads `keystrokes` turns into lines.
#[derive(Debug, Clone, Default)]
pub struct KeystrokeQuery {
    pub sensor: Option<u32>,
    /// The honeypot (sebek source address).
    pub host: Option<Ipv4Addr>,
    /// One process row (mirror process_id).
    pub process: Option<u32>,
}

/// The latest command name of each process (the program it exec'ed), by
/// insertion order of its process_to_com rows (the order the origin emitted
/// them). Cached; the cache is dropped when it grows past a bound.
struct Commands {
    cache: std::collections::HashMap<(u32, u32), String>,
    /// Per process: from which sys_read id on its reads carried each
    /// command (`x_sys_read_com`), ascending.
    steps: std::collections::HashMap<(u32, u32), Vec<(u32, String)>>,
}

impl Commands {
    const MAX: usize = 65_536;

    /// The command a read of the process carried: the one its latest read
    /// up to this one named, else (records without `command_id`) the
    /// process's latest.
    fn of_read(
        &mut self,
        conn: &Connection,
        sensor: u32,
        process: u32,
        read: u32,
    ) -> Result<String> {
        if self.steps.len() >= Self::MAX {
            self.steps.clear();
        }
        let steps = match self.steps.entry((sensor, process)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut stmt = conn.prepare_cached(
                    "SELECT x.sys_read_id, coalesce(c.name, '') FROM x_sys_read_com x \
                     LEFT JOIN command c ON c.sensor_id = x.sensor_id AND c.command_id = x.command_id \
                     WHERE x.sensor_id = ?1 AND x.process_id = ?2 ORDER BY x.sys_read_id",
                )?;
                let steps = stmt
                    .query_map(params![sensor, process], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<(u32, String)>>>()?;
                e.insert(steps)
            }
        };
        let taken = steps
            .iter()
            .rev()
            .find(|(since, _)| *since <= read)
            .map(|(_, name)| name.clone());
        match taken {
            Some(name) => Ok(name),
            None => Ok(self.of(conn, sensor, process)?.to_string()),
        }
    }

    fn of(&mut self, conn: &Connection, sensor: u32, process: u32) -> Result<&str> {
        if self.cache.len() >= Self::MAX {
            self.cache.clear();
        }
        use std::collections::hash_map::Entry;
        match self.cache.entry((sensor, process)) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let name: Option<String> = conn
                    .prepare_cached(
                        "SELECT c.name FROM process_to_com pc JOIN command c USING (sensor_id, command_id) \
                         WHERE pc.sensor_id = ?1 AND pc.process_id = ?2 ORDER BY pc.rowid DESC LIMIT 1",
                    )?
                    .query_row(params![sensor, process], |r| r.get(0))
                    .optional()?;
                Ok(e.insert(name.unwrap_or_default()))
            }
        }
    }
}

/// A fork's zero-length read, as `x_process_fork` keeps it.
struct ForkRead {
    uid: u32,
    fd: u32,
    inode: u32,
    com: String,
}

/// The processes whose first read `keystroke_lines` has seen.
#[derive(Default)]
struct Forks {
    seen: std::collections::HashSet<(u32, u32)>,
}

impl Forks {
    /// The fork read of a process, the first time one of its reads comes.
    fn first_read_of(
        &mut self,
        conn: &Connection,
        sensor: u32,
        process: u32,
    ) -> Result<Option<ForkRead>> {
        // Bounded: past it, a process seen again may have its fork read
        // joined twice (it adds no bytes, only its uid and command again).
        if self.seen.len() >= 1 << 20 {
            self.seen.clear();
        }
        if !self.seen.insert((sensor, process)) {
            return Ok(None);
        }
        conn.prepare_cached(
            "SELECT f.uid, f.filed, f.inode, coalesce(c.name, '') FROM x_process_fork f \
             LEFT JOIN command c ON c.sensor_id = f.sensor_id AND c.command_id = f.command_id \
             WHERE f.sensor_id = ?1 AND f.process_id = ?2",
        )?
        .query_row(params![sensor, process], |r| {
            Ok(ForkRead {
                uid: r.get(0)?,
                fd: r.get(1)?,
                inode: r.get(2)?,
                com: r.get(3)?,
            })
        })
        .optional()
    }
}

/// Feeds the reads matching `q`, in capture order, through sbk_ks_log.pl's
/// grouping and hands each line to `line`; stops when it returns false.
fn keystroke_lines(
    conn: &Connection,
    q: &KeystrokeQuery,
    line: &mut dyn FnMut(KsLine) -> bool,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT r.sensor_id, r.process_id, p.src_ip, p.pid, coalesce(r.uid, 0), r.filed, r.inode, \
         coalesce(r.time, 0), coalesce(r.pcap_time, 0), r.length, \
         coalesce((SELECT d.data FROM x_sys_read_data d WHERE d.sensor_id = r.sensor_id \
           AND d.sys_read_id = r.sys_read_id), r.data, x''), \
         EXISTS (SELECT 1 FROM x_sebek_truncated t WHERE t.sensor_id = r.sensor_id \
           AND t.tbl = 'sys_read' AND t.id = r.sys_read_id), r.sys_read_id \
         FROM sys_read r JOIN process p USING (sensor_id, process_id) \
         WHERE r.length <= ?4 AND (?1 IS NULL OR r.sensor_id = ?1) \
         AND (?2 IS NULL OR p.src_ip = ?2) AND (?3 IS NULL OR r.process_id = ?3) \
         ORDER BY r.sensor_id, r.sys_read_id",
    )?;
    let host = q.host.map(|h| i64::from(u32::from(h)));
    let mut rows = stmt.query(params![q.sensor, host, q.process, KS_READ_LENGTH_LIMIT])?;
    let mut commands = Commands {
        cache: Default::default(),
        steps: Default::default(),
    };
    let mut builder = LineBuilder::new();
    let mut forks = Forks::default();
    while let Some(r) = rows.next()? {
        let (sensor_id, process_id): (u32, u32) = (r.get(0)?, r.get(1)?);
        let data: Vec<u8> = r.get(10)?;
        let (host, pid) = (Ipv4Addr::from(r.get::<_, u32>(2)?), r.get(3)?);
        // The fork's zero-length read came before the process's first read:
        // its uid and command join that descriptor's pending line.
        if let Some(mark) = forks.first_read_of(conn, sensor_id, process_id)? {
            let read = KsRead {
                sensor_id,
                process_id,
                host,
                pid,
                uid: mark.uid,
                fd: mark.fd,
                inode: mark.inode,
                time: 0,
                pcap_time: 0,
                length: 0,
                data: b"",
                com: &mark.com,
                truncated: false,
            };
            // A read without a newline ends no line.
            let _ = builder.push(&read);
        }
        let com = commands.of_read(conn, sensor_id, process_id, r.get(12)?)?;
        let read = KsRead {
            sensor_id,
            process_id,
            host,
            pid,
            uid: r.get(4)?,
            fd: r.get(5)?,
            inode: r.get(6)?,
            time: r.get(7)?,
            pcap_time: r.get(8)?,
            length: r.get(9)?,
            data: &data,
            com: &com,
            truncated: r.get(11)?,
        };
        if let Some(l) = builder.push(&read)
            && !line(l)
        {
            break;
        }
    }
    Ok(())
}

/// Which processes the UI's sebek sessions view lists.
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub sensor: Option<u32>,
    pub host: Option<Ipv4Addr>,
    /// Case-insensitive text to find in a command name or a keystroke line.
    pub search: Option<String>,
    /// At most this many processes, the earliest first.
    pub limit: usize,
}

/// One ancestor of a process: the chain runs from its parent up.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainLink {
    pub process_id: u32,
    pub pid: u32,
    pub command: String,
}

/// One process in the sessions view, with its keystroke lines.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    #[serde(flatten)]
    pub process: ProcessView,
    /// Parent, grandparent, ... (at most [`MAX_CHAIN`]).
    pub chain: Vec<ChainLink>,
    /// Its keystroke lines (sbk_ks_log.pl's grouping), at most
    /// [`MAX_SESSION_LINES`].
    pub lines: Vec<KsLine>,
}

/// The sessions view's answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionList {
    /// Processes that match, before the limit.
    pub matched: usize,
    /// True when `sessions` holds fewer than `matched`.
    pub cut: bool,
    pub sessions: Vec<SessionView>,
}

/// Ancestors shown per process.
pub const MAX_CHAIN: usize = 32;
/// Keystroke lines kept per process in the sessions view.
pub const MAX_SESSION_LINES: usize = 500;

/// The keystroke lines of the processes matching (sensor, host), by process.
fn lines_by_process(
    conn: &Connection,
    sensor: Option<u32>,
    host: Option<Ipv4Addr>,
) -> Result<std::collections::HashMap<(u32, u32), Vec<KsLine>>> {
    let mut by: std::collections::HashMap<(u32, u32), Vec<KsLine>> = Default::default();
    let q = KeystrokeQuery {
        sensor,
        host,
        process: None,
    };
    keystroke_lines(conn, &q, &mut |l| {
        let v = by.entry((l.sensor_id, l.process_id)).or_default();
        if v.len() < MAX_SESSION_LINES {
            v.push(l);
        }
        true
    })?;
    Ok(by)
}

fn chain(conn: &Connection, commands: &mut Commands, p: &ProcessView) -> Result<Vec<ChainLink>> {
    let mut out = Vec::new();
    let mut at = p.process_id;
    while out.len() < MAX_CHAIN {
        let parent: Option<(u32, u32)> = conn
            .prepare_cached(
                "SELECT t.parent_process, p.pid FROM process_tree t JOIN process p \
                 ON p.sensor_id = t.sensor_id AND p.process_id = t.parent_process \
                 WHERE t.sensor_id = ?1 AND t.child_process = ?2 ORDER BY 1 LIMIT 1",
            )?
            .query_row(params![p.sensor_id, at], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((id, pid)) = parent else { break };
        if id == p.process_id || out.iter().any(|c: &ChainLink| c.process_id == id) {
            break;
        }
        let command = commands.of(conn, p.sensor_id, id)?.to_string();
        out.push(ChainLink {
            process_id: id,
            pid,
            command,
        });
        at = id;
    }
    Ok(out)
}

fn sessions(conn: &Connection, q: &SessionQuery) -> Result<SessionList> {
    let rows = process_rows(
        conn,
        &ProcessQuery {
            sensor: q.sensor,
            host: q.host,
            ..ProcessQuery::default()
        },
    )?;
    let mut lines = lines_by_process(conn, q.sensor, q.host)?;
    let needle = q.search.as_deref().map(str::to_lowercase);
    let named: std::collections::HashSet<(u32, u32)> = match &needle {
        None => Default::default(),
        Some(n) => {
            let mut stmt = conn.prepare(
                "SELECT pc.sensor_id, pc.process_id FROM process_to_com pc \
                 JOIN command c USING (sensor_id, command_id) WHERE instr(lower(c.name), ?1) > 0",
            )?;
            stmt.query_map(params![n], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_>>()?
        }
    };
    let matches = |p: &ProcessView, lines: &Option<&Vec<KsLine>>| match &needle {
        None => true,
        Some(n) => {
            named.contains(&(p.sensor_id, p.process_id))
                || lines.is_some_and(|ls| {
                    ls.iter().any(|l| {
                        l.cooked.to_lowercase().contains(n.as_str())
                            || l.text.to_lowercase().contains(n.as_str())
                    })
                })
        }
    };
    let mut matched: Vec<ProcessView> = rows
        .into_iter()
        .filter(|p| matches(p, &lines.get(&(p.sensor_id, p.process_id))))
        .collect();
    matched.sort_by_key(|p| (p.pcap_time_min, p.sensor_id, p.process_id));
    let total = matched.len();
    matched.truncate(q.limit);
    let mut commands = Commands {
        cache: Default::default(),
        steps: Default::default(),
    };
    let mut out = Vec::with_capacity(matched.len());
    for p in matched {
        let chain = chain(conn, &mut commands, &p)?;
        let own = lines
            .remove(&(p.sensor_id, p.process_id))
            .unwrap_or_default();
        out.push(SessionView {
            process: details(conn, p)?,
            chain,
            lines: own,
        });
    }
    Ok(SessionList {
        matched: total,
        cut: out.len() < total,
        sessions: out,
    })
}

/// The keystroke lines of a process and of its descendants (a session's
/// whole log: what was typed into passwd or su shows in the shell's log).
fn session_log(conn: &Connection, sensor: u32, process: u32) -> Result<Vec<KsLine>> {
    let mut stmt = conn.prepare(
        "WITH RECURSIVE down(process_id) AS (SELECT ?2 UNION \
         SELECT t.child_process FROM process_tree t JOIN down ON t.sensor_id = ?1 \
         AND t.parent_process = down.process_id) SELECT process_id FROM down",
    )?;
    let ids: std::collections::HashSet<u32> = stmt
        .query_map(params![sensor, process], |r| r.get(0))?
        .collect::<Result<_>>()?;
    let host: Option<u32> = conn
        .prepare_cached("SELECT src_ip FROM process WHERE sensor_id = ?1 AND process_id = ?2")?
        .query_row(params![sensor, process], |r| r.get(0))
        .optional()?;
    let Some(host) = host else {
        return Ok(Vec::new());
    };
    let q = KeystrokeQuery {
        sensor: Some(sensor),
        host: Some(Ipv4Addr::from(host)),
        process: None,
    };
    let mut out = Vec::new();
    keystroke_lines(conn, &q, &mut |l| {
        if ids.contains(&l.process_id) {
            out.push(l);
        }
        out.len() < MAX_SESSION_LINES * 4
    })?;
    Ok(out)
}

fn flow_community_id(conn: &Connection, sensor: u32, flow: u32) -> Result<Option<String>> {
    use rusqlite::types::Value;
    // IPv4 flows in `flow` (integer addresses), the others in `x_flow6` (16-byte blobs).
    let icmp = crate::community_id::ICMP_FIRST_SQL;
    // Addresses, ports, protocol, src_icmp_seen, packed ICMP type and code.
    type FlowTuple = (Value, u16, Value, u16, u8, u16, Option<i64>);
    let row: Option<FlowTuple> = conn
        .prepare_cached(&format!(
            "SELECT src_ip, src_port, dst_ip, dst_port, ip_proto, src_icmp_seen, {icmp} FROM flow f \
             WHERE sensor_id = ?1 AND flow_id = ?2 UNION ALL \
             SELECT src_ip, src_port, dst_ip, dst_port, ip_proto, src_icmp_seen, {icmp} FROM x_flow6 f \
             WHERE sensor_id = ?1 AND flow_id = ?2 LIMIT 1"
        ))?
        .query_row(params![sensor, flow], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .optional()?;
    let Some((src, sport, dst, dport, proto, seen, icmp)) = row else {
        return Ok(None);
    };
    let addr = |v: &Value| -> Option<std::net::IpAddr> {
        match v {
            Value::Integer(i) => u32::try_from(*i).ok().map(|n| Ipv4Addr::from(n).into()),
            Value::Blob(b) => match b.len() {
                4 => <[u8; 4]>::try_from(b.as_slice())
                    .ok()
                    .map(|o| Ipv4Addr::from(o).into()),
                _ => <[u8; 16]>::try_from(b.as_slice())
                    .ok()
                    .map(|o| std::net::Ipv6Addr::from(o).into()),
            },
            _ => None,
        }
    };
    let (Some(src), Some(dst)) = (addr(&src), addr(&dst)) else {
        return Ok(None);
    };
    Ok(crate::community_id::of_columns(
        crate::community_id::DEFAULT_SEED,
        (src, sport),
        (dst, dport),
        proto,
        (crate::community_id::unpack_icmp(icmp), seen),
    ))
}

/// Whether a p0f fingerprint of this `os` row was an application class.
const APPLICATION: &str = "EXISTS (SELECT 1 FROM x_os_fingerprint x \
     WHERE x.sensor_id = o.sensor_id AND x.os_id = o.os_id AND x.class = '!')";

fn os_history(conn: &Connection, ip: std::net::IpAddr) -> Result<Vec<OsSeen>> {
    let sql = match ip {
        // walleye's flow table names each flow's client and server OS.
        // One index lookup per sensor and end (flow's indexes lead with
        // sensor_id: an address alone would read the whole table); the
        // sensors are found by skipping along the primary key.
        std::net::IpAddr::V4(_) => format!(
            "WITH RECURSIVE s(id) AS (SELECT min(sensor_id) FROM flow \
               UNION ALL SELECT (SELECT min(sensor_id) FROM flow WHERE sensor_id > s.id) \
               FROM s WHERE s.id IS NOT NULL), \
             hits(sensor_id, os_id, role, first, last) AS ( \
               SELECT f.sensor_id, f.client_os_id, 'client', f.src_start_sec, max(f.src_end_sec, f.dst_end_sec) \
               FROM s JOIN flow f ON f.sensor_id = s.id AND f.src_ip = ?1 WHERE f.client_os_id != 0 \
               UNION ALL \
               SELECT f.sensor_id, f.server_os_id, 'server', f.src_start_sec, max(f.src_end_sec, f.dst_end_sec) \
               FROM s JOIN flow f ON f.sensor_id = s.id AND f.dst_ip = ?1 WHERE f.server_os_id != 0) \
             SELECT h.sensor_id, o.os_id, coalesce(o.genre, ''), coalesce(o.detail, ''), h.role, \
             min(h.first), max(h.last), count(*), {APPLICATION} \
             FROM hits h JOIN os o ON o.sensor_id = h.sensor_id AND o.os_id = h.os_id \
             GROUP BY h.sensor_id, o.os_id, h.role ORDER BY 6, 1, 2"
        ),
        // IPv6 flows are not in walleye's tables: the fingerprints are.
        std::net::IpAddr::V6(_) => format!(
            "SELECT x.sensor_id, o.os_id, coalesce(o.genre, ''), coalesce(o.detail, ''), \
             CASE x.role WHEN 1 THEN 'server' ELSE 'client' END AS role, \
             min(x.time), max(x.time), count(DISTINCT x.flow_id), {APPLICATION} \
             FROM x_os_fingerprint x \
             JOIN os o ON o.sensor_id = x.sensor_id AND o.os_id = x.os_id \
             WHERE x.host_ip = ?1 AND x.os_id != 0 \
             GROUP BY x.sensor_id, o.os_id, x.role ORDER BY 6, 1, 2"
        ),
    };
    let key = match ip {
        std::net::IpAddr::V4(v4) => rusqlite::types::Value::Integer(i64::from(u32::from(v4))),
        std::net::IpAddr::V6(v6) => rusqlite::types::Value::Blob(v6.octets().to_vec()),
    };
    let mut stmt = conn.prepare(&sql)?;
    stmt.query_map(params![key], |r| {
        Ok(OsSeen {
            sensor_id: r.get(0)?,
            os_id: r.get(1)?,
            genre: r.get(2)?,
            detail: r.get(3)?,
            application: r.get(8)?,
            role: r.get(4)?,
            first_sec: r.get(5)?,
            last_sec: r.get(6)?,
            flows: r.get::<_, i64>(7)?.max(0) as u64,
        })
    })?
    .collect()
}

fn has_fingerprint(conn: &Connection, r: &crate::records::OsFingerprintRecord) -> Result<bool> {
    let ip = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => rusqlite::types::Value::Integer(i64::from(u32::from(*v4))),
        std::net::IpAddr::V6(v6) => rusqlite::types::Value::Blob(v6.octets().to_vec()),
    };
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM x_os_fingerprint WHERE sensor_id = ?1 AND role = ?2 \
         AND host_ip = ?3 AND host_port = ?4 AND peer_ip = ?5 AND peer_port = ?6 \
         AND time = ?7 AND source = ?8)",
    )?
    .query_row(
        params![
            r.sensor_id,
            i64::from(r.role == crate::records::OsRole::Server),
            ip(&r.host_ip),
            r.host_port,
            ip(&r.peer_ip),
            r.peer_port,
            r.time,
            i64::from(r.source == crate::records::OsSource::P0fLog)
        ],
        |row| row.get(0),
    )
}

impl Mirror {
    /// True when the mirror already holds this fingerprint (same sensor,
    /// role, ends, time and source).
    pub fn has_fingerprint(
        &self,
        r: &crate::records::OsFingerprintRecord,
    ) -> Result<bool, MirrorError> {
        has_fingerprint(&self.conn, r).ctx(&self.path, "query x_os_fingerprint")
    }

    /// Processes matching `q` with their tree, commands, opens and sockets.
    pub fn processes(&self, q: &ProcessQuery) -> Result<Vec<ProcessView>, MirrorError> {
        processes(&self.conn, q).ctx(&self.path, "query processes")
    }

    /// The reads (keystrokes) of one process, in order.
    pub fn reads(
        &self,
        sensor: Option<u32>,
        process_id: u32,
    ) -> Result<Vec<ReadView>, MirrorError> {
        reads(&self.conn, sensor, process_id).ctx(&self.path, "query sys_read")
    }

    /// The keystroke lines of the reads matching `q` (sbk_ks_log.pl's
    /// grouping, `sebek::keystrokes`), each handed to `line` in order until
    /// it returns false.
    pub fn keystroke_lines(
        &self,
        q: &KeystrokeQuery,
        line: &mut dyn FnMut(KsLine) -> bool,
    ) -> Result<(), MirrorError> {
        keystroke_lines(&self.conn, q, line).ctx(&self.path, "query sys_read")
    }

    /// The sebek sessions view: processes with their chains, sockets and
    /// keystroke lines, filtered and searched.
    pub fn sessions(&self, q: &SessionQuery) -> Result<SessionList, MirrorError> {
        sessions(&self.conn, q).ctx(&self.path, "query sessions")
    }

    /// The keystroke lines of a process and its descendants, in order.
    pub fn session_log(&self, sensor: u32, process: u32) -> Result<Vec<KsLine>, MirrorError> {
        session_log(&self.conn, sensor, process).ctx(&self.path, "query sys_read")
    }

    /// The Community ID v1 (seed 0) of one flow, None when the flow is not
    /// in the mirror or its record cannot give the tuple (community_id).
    pub fn flow_community_id(&self, sensor: u32, flow: u32) -> Result<Option<String>, MirrorError> {
        flow_community_id(&self.conn, sensor, flow).ctx(&self.path, "query flow")
    }

    /// The OS fingerprints seen for `ip` as client or server, oldest first.
    pub fn os_history(&self, ip: Ipv4Addr) -> Result<Vec<OsSeen>, MirrorError> {
        self.os_history_of(std::net::IpAddr::V4(ip))
    }

    /// As `os_history`, for an IPv4 or IPv6 host (IPv6: from the p0f
    /// fingerprints, its flows not being in walleye's tables).
    pub fn os_history_of(&self, ip: std::net::IpAddr) -> Result<Vec<OsSeen>, MirrorError> {
        os_history(&self.conn, ip).ctx(&self.path, "query os")
    }
}
