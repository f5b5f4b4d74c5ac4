//! Flows: hflow2-style bidirectional flows built from decoded packets.
//!
//! Owns the flow table of one sensor: flow identity (the bidirectional
//! 5-tuple, the first packet's sender is `src`), per-direction counters, the
//! idle timeouts (7220 s for an established TCP flow with no FIN or RST, 90 s
//! otherwise), the attribution of ICMP errors to the flow they quote and of
//! IP fragments to the flow of their first fragment, flow id assignment, and
//! the row versions published while a flow grows.
//! Does no I/O: `ingest` persists the state this module hands it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::capture::NetInfo;
use crate::records::{FlowDirection, FlowRecord};

/// Idle timeout of an established TCP flow that saw no FIN or RST.
pub const ESTABLISHED_TIMEOUT_NS: u64 = 7220 * 1_000_000_000;
/// Idle timeout of every other flow.
pub const DEFAULT_TIMEOUT_NS: u64 = 90 * 1_000_000_000;
/// How long a fragment id is remembered after its first fragment.
pub const FRAGMENT_TIMEOUT_NS: u64 = 60 * 1_000_000_000;

const TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// Direction-independent flow identity: protocol and the two endpoints in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowKey {
    pub proto: u8,
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    pub fn new(proto: u8, a: Endpoint, b: Endpoint) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey { proto, lo, hi }
    }

    /// Fixed 37-byte encoding used as the index key of an open flow.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(37);
        b.push(self.proto);
        for e in [self.lo, self.hi] {
            let v6 = match e.ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            b.extend_from_slice(&v6.octets());
            b.extend_from_slice(&e.port.to_be_bytes());
        }
        b
    }
}

/// Counters of one direction while the flow is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirState {
    pub first_ns: u64,
    pub last_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    pub ip_flags: u8,
    pub tcp_flags: u8,
    pub icmp_packets: u32,
    pub icmp_seen: u16,
}

impl DirState {
    fn add(&mut self, ts_ns: u64, bytes: u64) {
        if self.packets == 0 || ts_ns < self.first_ns {
            self.first_ns = ts_ns;
        }
        self.last_ns = self.last_ns.max(ts_ns);
        self.packets += 1;
        self.bytes += bytes;
    }

    fn to_record(self) -> FlowDirection {
        if self.packets == 0 {
            // No packets this way; ICMP errors quoting the flow may still be.
            return FlowDirection {
                icmp_packets: self.icmp_packets,
                icmp_seen: self.icmp_seen,
                ..FlowDirection::default()
            };
        }
        FlowDirection {
            start_sec: (self.first_ns / 1_000_000_000) as u32,
            start_msec: ((self.first_ns % 1_000_000_000) / 1_000_000) as u16,
            end_sec: (self.last_ns / 1_000_000_000) as u32,
            end_msec: ((self.last_ns % 1_000_000_000) / 1_000_000) as u16,
            packets: self.packets,
            bytes: self.bytes,
            ip_flags: self.ip_flags,
            tcp_flags: self.tcp_flags,
            icmp_packets: self.icmp_packets,
            icmp_seen: self.icmp_seen,
        }
    }
}

/// One open flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    pub flow_id: u32,
    pub proto: u8,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub from_src: DirState,
    pub from_dst: DirState,
    pub is_local: bool,
}

impl FlowState {
    fn last_ns(&self) -> u64 {
        self.from_src.last_ns.max(self.from_dst.last_ns)
    }

    /// hflow's class 1: TCP, no FIN or RST seen, and an ACK seen from dst.
    fn is_established(&self) -> bool {
        let flags = self.from_src.tcp_flags | self.from_dst.tcp_flags;
        self.proto == TCP
            && flags & (TCP_FIN | TCP_RST) == 0
            && self.from_dst.tcp_flags & TCP_ACK != 0
    }

    fn timeout_ns(&self) -> u64 {
        if self.is_established() {
            ESTABLISHED_TIMEOUT_NS
        } else {
            DEFAULT_TIMEOUT_NS
        }
    }

    fn expired_at(&self, now_ns: u64) -> bool {
        now_ns > self.last_ns() && now_ns - self.last_ns() > self.timeout_ns()
    }

    /// The flow as a record row of version `version`.
    pub fn to_record(&self, sensor_id: u32, version: u64, closed: bool) -> FlowRecord {
        FlowRecord {
            sensor_id,
            flow_id: self.flow_id,
            version,
            src_ip: self.src.ip,
            dst_ip: self.dst.ip,
            src_port: self.src.port,
            dst_port: self.dst.port,
            ip_proto: self.proto,
            src: self.from_src.to_record(),
            dst: self.from_dst.to_record(),
            is_local: self.is_local,
            marker_flags: 0,
            client_os_id: 0,
            server_os_id: 0,
            closed,
        }
    }
}

/// An IPv4 or IPv6 network, for `is_local`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = (prefix / 8) as usize;
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// Key of a fragmented datagram: (src, dst, protocol, id).
type FragKey = (IpAddr, IpAddr, u8, u32);

/// Flow table state that must survive a restart besides the open flows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounters {
    pub next_flow_id: u32,
    pub latest_ns: u64,
    /// Fragment id -> (flow key, time of the first fragment).
    pub fragments: Vec<(FragKey, FlowKey, u64)>,
}

/// What `observe` did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub flow_id: u32,
}

/// The flows of one sensor.
pub struct FlowTable {
    sensor_id: u32,
    local_nets: Vec<Net>,
    next_flow_id: u32,
    latest_ns: u64,
    // Hash maps: lookups are per packet; order is restored where it matters
    // (published rows are sorted by flow id).
    open: HashMap<FlowKey, FlowState>,
    fragments: BTreeMap<FragKey, (FlowKey, u64)>,
    dirty: HashSet<FlowKey>,
    closed: Vec<(FlowKey, FlowState)>,
}

impl FlowTable {
    /// The highest flow id this table has assigned (0: none yet).
    pub fn last_flow_id(&self) -> u32 {
        self.next_flow_id.saturating_sub(1)
    }

    /// Makes flows created from now on take ids above `max` (ids that a
    /// legacy import keeps for its own rows).
    pub fn reserve_ids(&mut self, max: u32) {
        if self.next_flow_id <= max {
            self.next_flow_id = max.saturating_add(1);
        }
    }

    pub fn new(sensor_id: u32, local_nets: Vec<Net>) -> Self {
        FlowTable {
            sensor_id,
            local_nets,
            next_flow_id: 1,
            latest_ns: 0,
            open: HashMap::new(),
            fragments: BTreeMap::new(),
            dirty: HashSet::new(),
            closed: Vec::new(),
        }
    }

    /// Restores a table from its persisted counters and open flows.
    pub fn restore(
        sensor_id: u32,
        local_nets: Vec<Net>,
        counters: TableCounters,
        flows: impl IntoIterator<Item = FlowState>,
    ) -> Self {
        let mut t = FlowTable::new(sensor_id, local_nets);
        t.next_flow_id = counters.next_flow_id.max(1);
        t.latest_ns = counters.latest_ns;
        t.fragments = counters
            .fragments
            .into_iter()
            .map(|(k, f, ts)| (k, (f, ts)))
            .collect();
        for f in flows {
            t.open.insert(FlowKey::new(f.proto, f.src, f.dst), f);
        }
        t
    }

    pub fn counters(&self) -> TableCounters {
        TableCounters {
            next_flow_id: self.next_flow_id,
            latest_ns: self.latest_ns,
            fragments: self
                .fragments
                .iter()
                .map(|(k, (f, ts))| (*k, *f, *ts))
                .collect(),
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn latest_ns(&self) -> u64 {
        self.latest_ns
    }

    /// Accounts one IP packet and returns the flow it belongs to.
    pub fn observe(&mut self, ts_ns: u64, wire_len: u32, net: &NetInfo) -> Observed {
        self.latest_ns = self.latest_ns.max(ts_ns);
        self.note_icmp_error(ts_ns, net);
        let key = self.key_for(ts_ns, net);
        let sender = Endpoint {
            ip: net.src,
            port: net.src_port,
        };
        let receiver = Endpoint {
            ip: net.dst,
            port: net.dst_port,
        };
        let later_fragment = net.fragment.is_some_and(|f| f.offset > 0);
        let flow = self.flow_for(key, sender, receiver, ts_ns);
        // Later fragments carry no ports: their address says the direction.
        let from_src = if later_fragment && flow.src.ip != flow.dst.ip {
            flow.src.ip == sender.ip
        } else {
            flow.src == sender
        };
        let dir = if from_src {
            &mut flow.from_src
        } else {
            &mut flow.from_dst
        };
        dir.add(ts_ns, u64::from(wire_len));
        dir.ip_flags |= net.ip_flags;
        dir.tcp_flags |= net.tcp_flags;
        if let Some(icmp) = net.icmp {
            dir.icmp_packets += 1;
            dir.icmp_seen |= icmp_bit(icmp.icmp_type);
        }
        let id = flow.flow_id;
        self.dirty.insert(key);
        Observed { flow_id: id }
    }

    /// Marks an ICMP error sent by one end of the flow it quotes in that
    /// flow's ICMP counters (hflow's `*_icmp_packets`, `*_icmp_seen`). The
    /// packet itself is counted in its own ICMP flow, as argus counts it, so
    /// every packet is counted in exactly one flow's packets and bytes.
    fn note_icmp_error(&mut self, ts_ns: u64, net: &NetInfo) {
        let Some(icmp) = net.icmp else { return };
        let Some(q) = icmp.quoted.filter(|_| icmp.is_error) else {
            return;
        };
        let quoted_src = Endpoint {
            ip: q.src,
            port: q.src_port,
        };
        let quoted_dst = Endpoint {
            ip: q.dst,
            port: q.dst_port,
        };
        let key = FlowKey::new(q.proto, quoted_src, quoted_dst);
        let Some(flow) = self.open.get_mut(&key) else {
            return;
        };
        // Errors from routers in between are not the flow's (hflow README).
        if (net.src != flow.src.ip && net.src != flow.dst.ip) || flow.expired_at(ts_ns) {
            return;
        }
        // When both ends share an address, the end the quoted packet was
        // sent to is the one that answered.
        let from_dst = if flow.src.ip == flow.dst.ip {
            quoted_dst == flow.dst
        } else {
            net.src == flow.dst.ip
        };
        let dir = if from_dst {
            &mut flow.from_dst
        } else {
            &mut flow.from_src
        };
        dir.icmp_packets += 1;
        dir.icmp_seen |= icmp_bit(icmp.icmp_type);
        self.dirty.insert(key);
    }

    /// The flow key of a packet, following fragments to their first fragment.
    fn key_for(&mut self, ts_ns: u64, net: &NetInfo) -> FlowKey {
        let own = FlowKey::new(
            net.proto,
            Endpoint {
                ip: net.src,
                port: net.src_port,
            },
            Endpoint {
                ip: net.dst,
                port: net.dst_port,
            },
        );
        let Some(frag) = net.fragment else {
            return own;
        };
        let fk: FragKey = (net.src, net.dst, net.proto, frag.id);
        if frag.offset == 0 {
            self.fragments.insert(fk, (own, ts_ns));
            return own;
        }
        match self.fragments.get(&fk) {
            Some((key, first)) if ts_ns.saturating_sub(*first) <= FRAGMENT_TIMEOUT_NS => *key,
            _ => own,
        }
    }

    /// The open flow for `key`, starting a new one when none is open or the
    /// open one has been idle past its timeout.
    fn flow_for(
        &mut self,
        key: FlowKey,
        sender: Endpoint,
        receiver: Endpoint,
        ts_ns: u64,
    ) -> &mut FlowState {
        if let Some(old) = self.open.get(&key)
            && old.expired_at(ts_ns)
            && let Some(old) = self.open.remove(&key)
        {
            self.dirty.remove(&key);
            self.closed.push((key, old));
        }
        let next_id = &mut self.next_flow_id;
        let local_nets = &self.local_nets;
        self.open.entry(key).or_insert_with(|| {
            let flow_id = *next_id;
            *next_id = next_id.wrapping_add(1).max(1);
            FlowState {
                flow_id,
                proto: key.proto,
                src: sender,
                dst: receiver,
                from_src: DirState::default(),
                from_dst: DirState::default(),
                is_local: local_nets.iter().any(|n| n.contains(sender.ip)),
            }
        })
    }

    /// Closes every flow idle past its timeout at the newest packet time, and
    /// forgets fragment ids that can no longer matter.
    pub fn expire(&mut self) {
        let now = self.latest_ns;
        let mut expired: Vec<FlowKey> = self
            .open
            .iter()
            .filter(|(_, f)| f.expired_at(now))
            .map(|(k, _)| *k)
            .collect();
        expired.sort_unstable();
        for key in expired {
            if let Some(f) = self.open.remove(&key) {
                self.dirty.remove(&key);
                self.closed.push((key, f));
            }
        }
        self.fragments
            .retain(|_, (_, first)| now.saturating_sub(*first) <= FRAGMENT_TIMEOUT_NS);
    }

    /// Takes what changed since the last call: the row versions to publish,
    /// the open flows to persist and the keys of flows that closed.
    pub fn take_changes(&mut self, version: u64) -> Changes {
        let mut changes = Changes::default();
        for (key, f) in self.closed.drain(..) {
            changes
                .records
                .push(f.to_record(self.sensor_id, version, true));
            changes.closed_keys.push(key);
        }
        let mut dirty: Vec<FlowKey> = self.dirty.drain().collect();
        dirty.sort_unstable();
        for key in dirty {
            if let Some(f) = self.open.get(&key) {
                changes
                    .records
                    .push(f.to_record(self.sensor_id, version, false));
                changes.open.push(f.clone());
            }
        }
        changes.records.sort_by_key(|r| (r.flow_id, r.closed));
        changes
    }

    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty() || !self.closed.is_empty()
    }

    /// Newest flow end time (seconds) among open flows, for `last_upd_sec`.
    pub fn newest_end_sec(&self) -> u32 {
        (self.latest_ns / 1_000_000_000) as u32
    }
}

/// The output of [`FlowTable::take_changes`].
#[derive(Default, Debug)]
pub struct Changes {
    pub records: Vec<FlowRecord>,
    pub open: Vec<FlowState>,
    pub closed_keys: Vec<FlowKey>,
}

fn icmp_bit(icmp_type: u8) -> u16 {
    if icmp_type < 16 { 1 << icmp_type } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Fragment, IcmpInfo, QuotedFlow};

    fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> NetInfo {
        NetInfo {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            src_port: sport,
            dst_port: dport,
            tcp_flags: flags,
            ip_flags: 2,
            fragment: None,
            icmp: None,
            transport: None,
            ip_header: None,
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn first_sender_is_src_and_directions_count() {
        let mut t = FlowTable::new(7, vec![Net::parse("192.0.2.0/24").unwrap()]);
        let a = t.observe(
            10 * S,
            74,
            &tcp("198.51.100.5", 4000, "192.0.2.10", 22, 0x02),
        );
        let b = t.observe(
            10 * S + 5_000_000,
            74,
            &tcp("192.0.2.10", 22, "198.51.100.5", 4000, 0x12),
        );
        assert_eq!(a, b);
        let c = t.take_changes(3);
        assert_eq!(c.records.len(), 1);
        let r = &c.records[0];
        assert_eq!(r.src_ip.to_string(), "198.51.100.5");
        assert_eq!(r.src.packets, 1);
        assert_eq!(r.dst.packets, 1);
        assert_eq!(r.dst.start_msec, 5);
        assert_eq!(r.src.tcp_flags, 0x02);
        assert_eq!(r.dst.tcp_flags, 0x12);
        assert!(!r.is_local);
        assert_eq!(r.version, 3);
        assert!(!r.closed);
    }

    #[test]
    fn timeouts_follow_hflow() {
        let mut t = FlowTable::new(1, vec![]);
        let syn = tcp("10.0.0.1", 1, "10.0.0.2", 80, 0x02);
        let synack = tcp("10.0.0.2", 80, "10.0.0.1", 1, 0x12);
        let f1 = t.observe(0, 60, &syn).flow_id;
        t.observe(S, 60, &synack);
        // Established: survives 1000 s of silence.
        assert_eq!(t.observe(1001 * S, 60, &syn).flow_id, f1);
        // Past 7220 s it is a new flow.
        let f2 = t.observe(9000 * S, 60, &syn).flow_id;
        assert_ne!(f1, f2);
        // A flow with a FIN waits only 90 s.
        let fin = tcp("10.0.0.1", 1, "10.0.0.2", 80, 0x11);
        t.observe(9001 * S, 60, &synack);
        t.observe(9002 * S, 60, &fin);
        let f3 = t.observe(9100 * S, 60, &syn).flow_id;
        assert_ne!(f2, f3);
        let c = t.take_changes(1);
        assert_eq!(c.records.iter().filter(|r| r.closed).count(), 2);
    }

    #[test]
    fn icmp_error_is_noted_in_the_quoted_flow_and_counted_in_its_own() {
        let mut t = FlowTable::new(1, vec![]);
        let udp = NetInfo {
            proto: 17,
            tcp_flags: 0,
            ..tcp("198.51.100.5", 5353, "192.0.2.10", 9999, 0)
        };
        let f = t.observe(S, 60, &udp).flow_id;
        let err = NetInfo {
            src: "192.0.2.10".parse().unwrap(),
            dst: "198.51.100.5".parse().unwrap(),
            proto: 1,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            ip_flags: 0,
            fragment: None,
            icmp: Some(IcmpInfo {
                icmp_type: 3,
                code: 3,
                is_error: true,
                quoted: Some(QuotedFlow {
                    src: udp.src,
                    dst: udp.dst,
                    proto: 17,
                    src_port: 5353,
                    dst_port: 9999,
                }),
            }),
            transport: None,
            ip_header: None,
        };
        let icmp_flow = t.observe(S + 1, 88, &err).flow_id;
        assert_ne!(icmp_flow, f);
        let c = t.take_changes(1);
        assert_eq!(c.records.len(), 2);
        let udp_row = c.records.iter().find(|r| r.flow_id == f).unwrap();
        assert_eq!(udp_row.dst.icmp_packets, 1);
        assert_eq!(udp_row.dst.icmp_seen, 1 << 3);
        assert_eq!(udp_row.dst.packets, 0);
        let icmp_row = c.records.iter().find(|r| r.flow_id == icmp_flow).unwrap();
        assert_eq!(icmp_row.src.packets, 1);
        assert_eq!(icmp_row.src.bytes, 88);
    }

    #[test]
    fn fragments_follow_the_first() {
        let mut t = FlowTable::new(1, vec![]);
        let mut first = NetInfo {
            proto: 17,
            ..tcp("198.51.100.5", 5000, "192.0.2.10", 53, 0)
        };
        first.fragment = Some(Fragment {
            id: 77,
            offset: 0,
            more_fragments: true,
        });
        let mut second = first;
        second.src_port = 0;
        second.dst_port = 0;
        second.fragment = Some(Fragment {
            id: 77,
            offset: 1480,
            more_fragments: false,
        });
        let f = t.observe(S, 1514, &first).flow_id;
        assert_eq!(t.observe(S + 1, 600, &second).flow_id, f);
        let c = t.take_changes(1);
        assert_eq!(c.records[0].src.packets, 2);
        assert_eq!(c.records[0].src.bytes, 2114);
    }

    #[test]
    fn restore_continues_ids() {
        let mut t = FlowTable::new(1, vec![]);
        t.observe(S, 60, &tcp("10.0.0.1", 1, "10.0.0.2", 2, 2));
        let counters = t.counters();
        let open = t.take_changes(1).open;
        let mut r = FlowTable::restore(1, vec![], counters, open);
        assert_eq!(
            r.observe(2 * S, 60, &tcp("10.0.0.2", 2, "10.0.0.1", 1, 0x12))
                .flow_id,
            1
        );
        assert_eq!(
            r.observe(2 * S, 60, &tcp("10.0.0.3", 2, "10.0.0.1", 1, 2))
                .flow_id,
            2
        );
    }

    #[test]
    fn nets() {
        let n = Net::parse("192.0.2.0/24").unwrap();
        assert!(n.contains("192.0.2.200".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        let n6 = Net::parse("2001:db8:1::/64").unwrap();
        assert!(n6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!n6.contains("2001:db8:2::5".parse().unwrap()));
        assert!(Net::parse("10.0.0.0/33").is_none());
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
