//! Flows: hflow2-style bidirectional flows built from decoded packets.
//!
//! Owns the flow table of one sensor: flow identity (the bidirectional
//! 5-tuple, the first packet's sender is `src`), per-direction counters, the
//! idle timeouts (7220 s for an established TCP flow with no FIN or RST, 90 s
//! otherwise), the attribution of ICMP errors to the flow they quote and of
//! IP fragments to the flow of their first fragment, flow id assignment, and
//! the row versions published while a flow grows.
//! Does no I/O: `ingest` persists the state this module hands it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::records::{FlowDirection, FlowRecord, IcmpFirst};

mod table;

pub use table::{
    Changes, FlowTable, MAX_CLOSED_PER_SEGMENT, MAX_FRAGMENTS, MAX_ROWS_PER_SEGMENT, Observed,
};

/// Idle timeout of an established TCP flow that saw no FIN or RST.
pub const ESTABLISHED_TIMEOUT_NS: u64 = 7220 * 1_000_000_000;
/// Idle timeout of every other flow.
pub const DEFAULT_TIMEOUT_NS: u64 = 90 * 1_000_000_000;
/// How long a fragment id is remembered after its first fragment.
pub const FRAGMENT_TIMEOUT_NS: u64 = 60 * 1_000_000_000;

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
    /// ICMP type and code of the flow's first packet (ICMP and ICMPv6
    /// flows), for its Community ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_first: Option<IcmpFirst>,
}

impl FlowState {
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
            evicted: false,
            icmp_first: self.icmp_first,
        }
    }
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
    /// Flows closed early because the table's budget was full.
    #[serde(default)]
    pub evicted: u64,
}

pub(crate) fn icmp_bit(icmp_type: u8) -> u16 {
    if icmp_type < 16 { 1 << icmp_type } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Fragment, IcmpInfo, NetInfo, QuotedFlow};

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
        let mut t = FlowTable::new(7, vec![crate::net::parse("192.0.2.0/24").unwrap()], 1 << 20);
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
        let mut t = FlowTable::new(1, vec![], 1 << 20);
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
        let mut t = FlowTable::new(1, vec![], 1 << 20);
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
    fn an_icmp_flow_keeps_its_first_type_and_code() {
        let mut t = FlowTable::new(1, vec![], 1 << 20);
        let icmp = |src: &str, dst: &str, icmp_type: u8, code: u8| NetInfo {
            proto: 58,
            icmp: Some(IcmpInfo {
                icmp_type,
                code,
                is_error: false,
                quoted: None,
            }),
            ..tcp(src, 0, dst, 0, 0)
        };
        let f = t
            .observe(S, 86, &icmp("2001:db8::1", "2001:db8::2", 135, 0))
            .flow_id;
        t.observe(S + 1, 86, &icmp("2001:db8::2", "2001:db8::1", 136, 0));
        t.observe(S + 2, 86, &icmp("2001:db8::1", "2001:db8::2", 128, 0));
        let first = Some(IcmpFirst {
            icmp_type: 135,
            code: 0,
        });
        let row = t.take_changes(1).records.remove(0);
        assert_eq!((row.flow_id, row.icmp_first), (f, first));
        // A table restored from its open flows keeps it.
        let mut open = Vec::new();
        t.for_each_open(|s| open.push(s.clone()));
        assert_eq!(open[0].icmp_first, first);
        let mut r = FlowTable::restore(1, vec![], 1 << 20, t.counters(), open);
        r.observe(S + 3, 86, &icmp("2001:db8::2", "2001:db8::1", 129, 0));
        assert_eq!(r.take_changes(2).records[0].icmp_first, first);
        // Other protocols have none.
        t.observe(S, 60, &tcp("192.0.2.1", 1, "192.0.2.2", 2, 2));
        assert_eq!(t.take_changes(3).records[0].icmp_first, None);
    }

    #[test]
    fn fragments_follow_the_first() {
        let mut t = FlowTable::new(1, vec![], 1 << 20);
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
        let mut t = FlowTable::new(1, vec![], 1 << 20);
        t.observe(S, 60, &tcp("10.0.0.1", 1, "10.0.0.2", 2, 2));
        let counters = t.counters();
        t.take_changes(1);
        let mut open = Vec::new();
        t.for_each_open(|f| open.push(f.clone()));
        let mut r = FlowTable::restore(1, vec![], 1 << 20, counters, open);
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
}
