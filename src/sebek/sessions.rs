//! Per-sensor sebek state: which process row each honeypot pid is, the
//! command names, the id counters and each honeypot's record counter.
//!
//! Owns the process state machine of hflow2 (reference §4 "Sebek → process"):
//! a pid gets a new `process` row the first time it is seen, and again when
//! its parent pid changes (pid reuse) unless the old or the new parent is
//! init (re-parenting after the parent died). Each row's time range is kept
//! on both clocks, the honeypot's (`time_min/max`, sebek header) and the
//! capture's (`pcap_time_min/max`). Every id (process, command, sys_read,
//! sys_write, sys_open, sys_socket) is assigned here, in packet order, so the
//! same packets from the same state always give the same ids.
//! Does no I/O: ingest persists [`Tracker`] (serde) with the sensor's ingest
//! state in the same commit as the records it produced, so a resumed ingest
//! continues identically.
//!
//! Zero-length reads are how sebek encodes fork/clone: they create the child's
//! process row and tree edge but no `sys_read` row.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::decode::{RecordKind, SebekError, SebekRecord, SocketRecord, parse_captured};
use crate::records::{
    CommandRecord, ForkMark, ProcessRecord, ProcessToComRecord, ProcessTreeRecord, Record,
    SbkLossRecord, SysIoKind, SysIoRecord, SysSocketRecord,
};

/// A pid not seen for this long (capture clock) is forgotten: its next record
/// starts a new process row.
pub const FORGET_AFTER_SECS: u32 = 86_400;

/// Totals of sebek packets seen by one sensor (persisted, so they survive
/// restarts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SebekCounters {
    /// Records decoded and turned into rows.
    pub records: u64,
    /// Packets on the sebek port that are not valid sebek v3 records.
    pub rejected: u64,
    /// Records lost, from gaps in the honeypots' counters.
    pub lost: u64,
    /// Records cut by the capture's snaplen, kept (header fields, the bytes
    /// captured) and marked truncated; counted in `records` too.
    #[serde(default)]
    pub truncated: u64,
}

/// One process row as the tracker keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Proc {
    process_id: u32,
    ppid: u32,
    command_id: u32,
    time_min: u32,
    time_max: u32,
    pcap_time_min: u32,
    pcap_time_max: u32,
    /// The zero-length read that marked its fork (absent in states saved
    /// before lumpy kept it).
    #[serde(default)]
    fork: Option<ForkMark>,
    /// The command its previous read carried (0: none yet).
    #[serde(default)]
    read_command: u32,
}

/// One honeypot (sebek source address).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Host {
    last_counter: Option<u32>,
    pids: BTreeMap<u32, Proc>,
}

/// The sebek state of one sensor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    next_process_id: u32,
    next_command_id: u32,
    next_read_id: u32,
    next_write_id: u32,
    next_open_id: u32,
    next_socket_id: u32,
    commands: BTreeMap<String, u32>,
    hosts: BTreeMap<Ipv4Addr, Host>,
    pub counters: SebekCounters,
    /// Records produced since the last [`Tracker::take_records`]. Empty in
    /// every persisted state: ingest takes them in the commit that saves it.
    #[serde(skip)]
    pending: Vec<Record>,
    /// Process rows changed since the last take, by process id.
    #[serde(skip)]
    dirty: BTreeMap<u32, ProcessRecord>,
}

/// The highest id of each sebek id space (0: none assigned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SebekIds {
    pub process: u32,
    pub command: u32,
    pub read: u32,
    pub write: u32,
    pub open: u32,
    pub socket: u32,
}

/// Where and when a sebek packet was captured.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub sensor_id: u32,
    pub src_ip: Ipv4Addr,
    pub pcap_sec: u32,
}

fn next(id: &mut u32) -> u32 {
    *id = id.wrapping_add(1).max(1);
    *id
}

impl Tracker {
    /// The highest id assigned in each id space.
    pub fn last_ids(&self) -> SebekIds {
        SebekIds {
            process: self.next_process_id,
            command: self.next_command_id,
            read: self.next_read_id,
            write: self.next_write_id,
            open: self.next_open_id,
            socket: self.next_socket_id,
        }
    }

    /// Makes rows created from now on take ids above `ids` in each space
    /// (ids that a legacy import keeps for its own rows).
    pub fn reserve_ids(&mut self, ids: &SebekIds) {
        self.next_process_id = self.next_process_id.max(ids.process);
        self.next_command_id = self.next_command_id.max(ids.command);
        self.next_read_id = self.next_read_id.max(ids.read);
        self.next_write_id = self.next_write_id.max(ids.write);
        self.next_open_id = self.next_open_id.max(ids.open);
        self.next_socket_id = self.next_socket_id.max(ids.socket);
    }

    /// Takes a command name that a legacy import brought with its id, so
    /// later sebek records of that name reuse the row instead of adding a
    /// second one. A name already known keeps its id.
    pub fn adopt_command(&mut self, name: &str, command_id: u32) {
        self.commands.entry(name.to_string()).or_insert(command_id);
    }

    /// Decodes one sebek UDP payload and updates the state; a rejected
    /// payload changes nothing but the `rejected` counter.
    pub fn observe(&mut self, at: Origin, payload: &[u8]) -> Result<(), SebekError> {
        self.observe_captured(at, payload, None)
    }

    /// As `observe`, for a payload the capture may have cut (`wire_len`: its
    /// length on the wire, from the UDP length): a cut record keeps its
    /// header fields and the bytes captured, marked truncated
    /// (decode::parse_captured).
    pub fn observe_captured(
        &mut self,
        at: Origin,
        payload: &[u8],
        wire_len: Option<usize>,
    ) -> Result<(), SebekError> {
        let rec = match parse_captured(payload, wire_len) {
            Ok(r) => r,
            Err(e) => {
                self.counters.rejected += 1;
                return Err(e);
            }
        };
        let socket = match rec.header.kind {
            RecordKind::Socket if rec.truncated => Some(SocketRecord::parse_cut(rec.data)),
            RecordKind::Socket => match SocketRecord::parse(rec.data) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.counters.rejected += 1;
                    return Err(e);
                }
            },
            _ => None,
        };
        self.counters.records += 1;
        if rec.truncated {
            self.counters.truncated += 1;
        }
        self.note_counter(at, rec.header.counter);
        let process_id = self.process_for(at, &rec);
        self.add_row(at, &rec, process_id, socket);
        Ok(())
    }

    /// A gap in the honeypot's counter is an `sbk_loss` row. A counter that
    /// goes back (the honeypot restarted) starts over without loss.
    fn note_counter(&mut self, at: Origin, counter: u32) {
        let host = self.hosts.entry(at.src_ip).or_default();
        let last = host.last_counter.replace(counter);
        let Some(last) = last else { return };
        let gap = counter.wrapping_sub(last);
        if gap > 1 && gap < 1 << 31 {
            let lost = gap - 1;
            self.counters.lost += u64::from(lost);
            self.pending.push(Record::SbkLoss(SbkLossRecord {
                sensor_id: at.sensor_id,
                src_ip: at.src_ip,
                time: at.pcap_sec,
                lost,
            }));
        }
    }

    /// The process row of the record's pid: the cached one, or a new one.
    fn process_for(&mut self, at: Origin, rec: &SebekRecord<'_>) -> u32 {
        let h = &rec.header;
        let command_id = self.command_id(at.sensor_id, rec);
        let host = self.hosts.entry(at.src_ip).or_default();
        let reuse = |p: &Proc| {
            at.pcap_sec.saturating_sub(p.pcap_time_max) > FORGET_AFTER_SECS
                || (p.ppid != h.parent_pid && p.ppid != 1 && h.parent_pid != 1)
        };
        let cached = host.pids.get(&h.pid).filter(|p| !reuse(p)).cloned();
        let (mut proc, new) = match cached {
            Some(p) => (p, false),
            None => {
                let process_id = next(&mut self.next_process_id);
                let p = Proc {
                    process_id,
                    ppid: h.parent_pid,
                    command_id: 0,
                    time_min: h.time_sec,
                    time_max: h.time_sec,
                    pcap_time_min: at.pcap_sec,
                    pcap_time_max: at.pcap_sec,
                    fork: None,
                    read_command: 0,
                };
                if let Some(parent) = host.pids.get(&h.parent_pid) {
                    self.pending.push(Record::ProcessTree(ProcessTreeRecord {
                        sensor_id: at.sensor_id,
                        child_process: process_id,
                        parent_process: parent.process_id,
                    }));
                }
                (p, true)
            }
        };
        let before = proc.clone();
        proc.ppid = h.parent_pid;
        proc.time_min = proc.time_min.min(h.time_sec);
        proc.time_max = proc.time_max.max(h.time_sec);
        proc.pcap_time_min = proc.pcap_time_min.min(at.pcap_sec);
        proc.pcap_time_max = proc.pcap_time_max.max(at.pcap_sec);
        // The null read that made this row marks its fork.
        if new && h.kind == RecordKind::Read && h.length == 0 {
            proc.fork = Some(ForkMark {
                uid: h.uid,
                fd: h.fd,
                inode: h.inode,
                command_id,
            });
        }
        if proc.command_id != command_id {
            proc.command_id = command_id;
            self.pending.push(Record::ProcessToCom(ProcessToComRecord {
                sensor_id: at.sensor_id,
                process_id: proc.process_id,
                command_id,
            }));
        }
        if new || proc != before {
            self.dirty.insert(
                proc.process_id,
                ProcessRecord {
                    sensor_id: at.sensor_id,
                    process_id: proc.process_id,
                    version: 0,
                    src_ip: at.src_ip,
                    pid: h.pid,
                    time_min: proc.time_min,
                    time_max: proc.time_max,
                    pcap_time_min: proc.pcap_time_min,
                    pcap_time_max: proc.pcap_time_max,
                    ppid: Some(proc.ppid),
                    fork: proc.fork,
                },
            );
        }
        let id = proc.process_id;
        host.pids.insert(h.pid, proc);
        id
    }

    /// The id of the record's command name, registering a new name.
    fn command_id(&mut self, sensor_id: u32, rec: &SebekRecord<'_>) -> u32 {
        let name = String::from_utf8_lossy(rec.header.command()).into_owned();
        if let Some(id) = self.commands.get(&name) {
            return *id;
        }
        let id = next(&mut self.next_command_id);
        self.commands.insert(name.clone(), id);
        self.pending.push(Record::Command(CommandRecord {
            sensor_id,
            command_id: id,
            name,
        }));
        id
    }

    fn add_row(
        &mut self,
        at: Origin,
        rec: &SebekRecord<'_>,
        process_id: u32,
        socket: Option<SocketRecord>,
    ) {
        let h = &rec.header;
        // A read names its command when it differs from the process's
        // previous read's.
        let read_command = if h.kind == RecordKind::Read && h.length > 0 {
            self.hosts
                .get_mut(&at.src_ip)
                .and_then(|host| host.pids.get_mut(&h.pid))
                .filter(|p| p.read_command != p.command_id)
                .map(|p| {
                    p.read_command = p.command_id;
                    p.command_id
                })
        } else {
            None
        };
        let io = |kind, id| {
            Record::SysIo(SysIoRecord {
                sensor_id: at.sensor_id,
                kind,
                id,
                process_id,
                uid: h.uid,
                pcap_time: at.pcap_sec,
                time: h.time_sec,
                counter: h.counter,
                filed: h.fd,
                inode: h.inode,
                length: h.length,
                data: rec.data.to_vec(),
                truncated: rec.truncated,
                legacy_null: Vec::new(),
                command_id: read_command,
            })
        };
        let row = match (h.kind, socket) {
            // A null read is a fork: the process row is all it makes (a read
            // whose bytes the capture cut away entirely is not one).
            (RecordKind::Read, _) if h.length == 0 => return,
            (RecordKind::Read, _) => io(SysIoKind::Read, next(&mut self.next_read_id)),
            (RecordKind::Write, _) => io(SysIoKind::Write, next(&mut self.next_write_id)),
            (RecordKind::Open, _) => io(SysIoKind::Open, next(&mut self.next_open_id)),
            (RecordKind::Socket, Some(s)) => Record::SysSocket(SysSocketRecord {
                sensor_id: at.sensor_id,
                sys_socket_id: next(&mut self.next_socket_id),
                process_id,
                pcap_time: at.pcap_sec,
                time: h.time_sec,
                uid: h.uid,
                counter: h.counter,
                filed: h.fd,
                inode: h.inode,
                call: s.call,
                proto: s.proto,
                local_ip: Ipv4Addr::from(s.local_ip),
                local_port: s.local_port,
                remote_ip: Ipv4Addr::from(s.remote_ip),
                remote_port: s.remote_port,
                truncated: rec.truncated,
                legacy_flow_id: None,
                legacy_type: None,
                legacy_null: Vec::new(),
            }),
            (RecordKind::Socket, None) => return,
        };
        self.pending.push(row);
    }

    pub fn has_changes(&self) -> bool {
        !self.pending.is_empty() || !self.dirty.is_empty()
    }

    /// Every record produced since the last take: changed process rows (with
    /// origin version `version`) first, then the rest in packet order. Also
    /// forgets pids idle for [`FORGET_AFTER_SECS`], to bound the state.
    pub fn take_records(&mut self, version: u64) -> Vec<Record> {
        let mut out: Vec<Record> = std::mem::take(&mut self.dirty)
            .into_values()
            .map(|mut p| {
                p.version = version;
                Record::Process(p)
            })
            .collect();
        out.append(&mut self.pending);
        self.forget_idle();
        out
    }

    fn forget_idle(&mut self) {
        for host in self.hosts.values_mut() {
            let newest = host.pids.values().map(|p| p.pcap_time_max).max();
            let Some(newest) = newest else { continue };
            host.pids
                .retain(|_, p| newest.saturating_sub(p.pcap_time_max) <= FORGET_AFTER_SECS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode;
    use crate::sebek::generate::{HONEYPOT, read, shell_session};

    /// The sebek payloads of the generated session, with capture seconds.
    fn payloads() -> Vec<(u32, Vec<u8>)> {
        shell_session(1101)
            .into_iter()
            .filter_map(|f| {
                let net = decode(1, &f.data).ok()?.net?;
                let seg = f.data.get(net.transport?.range())?;
                if net.proto != 17 {
                    return None;
                }
                Some((f.sec, seg.get(8..)?.to_vec()))
            })
            .collect()
    }

    fn at(pcap_sec: u32) -> Origin {
        Origin {
            sensor_id: 9,
            src_ip: Ipv4Addr::from(HONEYPOT),
            pcap_sec,
        }
    }

    fn run(t: &mut Tracker, items: &[(u32, Vec<u8>)]) -> usize {
        items
            .iter()
            .filter(|(sec, p)| t.observe(at(*sec), p).is_err())
            .count()
    }

    #[test]
    fn a_resumed_tracker_continues_identically() {
        let items = payloads();
        let mut whole = Tracker::default();
        run(&mut whole, &items);
        let all = whole.take_records(5);
        for cut in 1..items.len() {
            let mut t = Tracker::default();
            run(&mut t, &items[..cut]);
            let mut first = t.take_records(5);
            let saved = serde_json::to_vec(&t).unwrap();
            let mut resumed: Tracker = serde_json::from_slice(&saved).unwrap();
            run(&mut resumed, &items[cut..]);
            let second = resumed.take_records(5);
            // Same immutable rows with the same ids, same final process rows.
            let immutable = |v: &[Record]| -> Vec<Record> {
                v.iter()
                    .filter(|r| !matches!(r, Record::Process(_)))
                    .cloned()
                    .collect()
            };
            let mut joined = immutable(&first);
            joined.extend(immutable(&second));
            assert_eq!(joined, immutable(&all), "cut at {cut}");
            first.extend(second);
            let last = |v: &[Record], id: u32| {
                v.iter()
                    .rev()
                    .find(|r| matches!(r, Record::Process(p) if p.process_id == id))
                    .cloned()
            };
            for id in 1..=5 {
                assert_eq!(last(&first, id), last(&all, id), "cut {cut} process {id}");
            }
            assert_eq!(resumed, whole, "cut at {cut}");
        }
    }

    #[test]
    fn pid_reuse_and_reparenting_to_init() {
        let mut t = Tracker::default();
        let mut buf = Vec::new();
        let mut feed = |t: &mut Tracker, pid, ppid, sec| {
            buf.clear();
            let e = read(pid, ppid, "sh", 0, b"x");
            crate::sebek::decode::encode(
                &crate::sebek::Header {
                    magic: 0,
                    version: 3,
                    kind: e.kind,
                    counter: sec,
                    time_sec: sec,
                    time_usec: 0,
                    parent_pid: ppid,
                    pid,
                    uid: 0,
                    fd: 0,
                    inode: 0,
                    com: *b"sh\0\0\0\0\0\0\0\0\0\0",
                    length: 0,
                },
                e.data,
                &mut buf,
            );
            t.observe(at(sec), &buf).unwrap();
        };
        feed(&mut t, 50, 10, 1);
        feed(&mut t, 50, 1, 2); // re-parented to init: same process
        feed(&mut t, 50, 10, 3); // cached ppid is 1: tolerated
        feed(&mut t, 50, 11, 4); // another parent: pid reused
        feed(&mut t, 50, 11, 4 + FORGET_AFTER_SECS + 1); // idle too long
        let procs: Vec<_> = t
            .take_records(1)
            .into_iter()
            .filter_map(|r| match r {
                Record::Process(p) => Some((p.process_id, p.time_min, p.time_max)),
                _ => None,
            })
            .collect();
        assert_eq!(
            procs,
            [
                (1, 1, 3),
                (2, 4, 4),
                (3, 4 + FORGET_AFTER_SECS + 1, 4 + FORGET_AFTER_SECS + 1)
            ]
        );
    }

    #[test]
    fn counter_gaps_are_losses_and_restarts_are_not() {
        let mut t = Tracker::default();
        let items = payloads();
        run(&mut t, &items);
        assert_eq!(t.counters.lost, 2);
        assert_eq!(t.counters.rejected, 4);
        assert_eq!(t.counters.records, 17);
        let losses: Vec<_> = t
            .take_records(1)
            .into_iter()
            .filter(|r| matches!(r, Record::SbkLoss(_)))
            .collect();
        assert_eq!(losses.len(), 1);
    }
}
