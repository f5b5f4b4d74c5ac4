//! The legacy `argus` rows (walleye_0_3's flow table): the rule that turns
//! a flow into its argus row's `argus_dir` and `argus_status`.
//!
//! Since mirror 4, `argus` is a view over `flow` (schema.sql), which spells
//! the same rule in SQL; this module is its Rust form, used by the MySQL
//! export (which derives its argus rows from flow rows) and by the test
//! that holds the two forms equal. `argus_id` is the `flow_id` (so
//! `sys_socket.flow_id` and `ids.flow_id` join to it as `argus_id` did);
//! only IPv4 flows (argus has integer addresses). Writes nothing.

use crate::records::FlowRecord;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// argus's direction indicator: `<->` when both ends sent, `->` otherwise.
pub fn direction(f: &FlowRecord) -> &'static str {
    direction_of(f.src.packets, f.dst.packets)
}

/// [`direction`] from the packet counts each way.
pub fn direction_of(src_packets: u64, dst_packets: u64) -> &'static str {
    if src_packets > 0 && dst_packets > 0 {
        "<->"
    } else {
        "->"
    }
}

/// argus's state, from the TCP flags each way (TCP) or the packets each way:
/// RST (reset), FIN (closed), CON (established), ACC (accepted: SYN+ACK
/// answered, no ACK yet), REQ (SYN unanswered); other protocols CON when
/// both ends sent, else INT.
pub fn status(f: &FlowRecord) -> &'static str {
    status_of(f.ip_proto, f.dst.packets, f.src.tcp_flags, f.dst.tcp_flags)
}

/// [`status`] from the protocol, the responder's packets and the TCP flags
/// each way (the export derives argus rows with it too).
pub fn status_of(ip_proto: u8, dst_packets: u64, s: u8, d: u8) -> &'static str {
    if ip_proto != 6 {
        return if dst_packets > 0 { "CON" } else { "INT" };
    }
    if (s | d) & RST != 0 {
        "RST"
    } else if (s | d) & FIN != 0 {
        "FIN"
    } else if d & (SYN | ACK) == SYN | ACK && s & ACK != 0 {
        "CON"
    } else if d & (SYN | ACK) == SYN | ACK {
        "ACC"
    } else if s & SYN != 0 && dst_packets == 0 {
        "REQ"
    } else if dst_packets > 0 {
        "CON"
    } else {
        "INT"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::FlowDirection;

    fn flow(proto: u8, s: (u64, u8), d: (u64, u8)) -> FlowRecord {
        FlowRecord {
            sensor_id: 1,
            flow_id: 1,
            version: 1,
            src_ip: "198.51.100.1".parse().unwrap(),
            dst_ip: "192.0.2.1".parse().unwrap(),
            src_port: 1,
            dst_port: 2,
            ip_proto: proto,
            src: FlowDirection {
                packets: s.0,
                tcp_flags: s.1,
                ..Default::default()
            },
            dst: FlowDirection {
                packets: d.0,
                tcp_flags: d.1,
                ..Default::default()
            },
            is_local: false,
            marker_flags: 0,
            client_os_id: 0,
            server_os_id: 0,
            closed: false,
            evicted: false,
            icmp_first: None,
        }
    }

    #[test]
    fn tcp_states() {
        assert_eq!(status(&flow(6, (1, SYN), (0, 0))), "REQ");
        assert_eq!(direction(&flow(6, (1, SYN), (0, 0))), "->");
        assert_eq!(status(&flow(6, (1, SYN), (1, SYN | ACK))), "ACC");
        assert_eq!(status(&flow(6, (3, SYN | ACK), (2, SYN | ACK))), "CON");
        assert_eq!(direction(&flow(6, (3, SYN | ACK), (2, SYN | ACK))), "<->");
        assert_eq!(
            status(&flow(6, (4, SYN | ACK | FIN), (3, SYN | ACK))),
            "FIN"
        );
        assert_eq!(status(&flow(6, (1, SYN), (1, RST | ACK))), "RST");
    }

    #[test]
    fn other_protocols() {
        assert_eq!(status(&flow(17, (1, 0), (0, 0))), "INT");
        assert_eq!(status(&flow(17, (1, 0), (1, 0))), "CON");
        assert_eq!(status(&flow(1, (2, 0), (2, 0))), "CON");
    }
}
