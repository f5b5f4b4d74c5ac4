//! Community ID v1 (<https://github.com/corelight/community-id-spec>) of a
//! flow, as Zeek, Suricata and Arkime compute it, so an analyst can pivot
//! from a lumpy flow to their records of the same connection.
//!
//! Owns the hash (SHA-1 over seed, addresses, protocol, padding and ports in
//! a canonical order, base64, prefixed `1:`) and the ICMP type/code mapping
//! the specification takes from Zeek. Pure: no I/O.
//!
//! Every flow gets an ID: TCP, UDP and SCTP from their ports; every other
//! protocol without ports; ICMP and ICMPv6 from the type and code of the
//! flow's first packet (`FlowRecord::icmp_first`), as the specification
//! hashes that packet. Records made before lumpy kept that type and code
//! (and legacy imports) fall back to what their `icmp_seen` bits say: an
//! ICMPv4 flow whose initiator's lowest type is a request or reply with
//! code 0 (echo, timestamp, information, router, mask) gets its ID; other
//! such ICMP flows get None.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::records::{FlowRecord, IcmpFirst};

/// The seed Zeek, Suricata and Arkime use unless configured otherwise.
pub const DEFAULT_SEED: u16 = 0;

/// ICMPv4 types with a counterpart (request <-> reply), from Zeek.
const ICMP4_PAIRS: [(u8, u8); 10] = [
    (8, 0),
    (0, 8),
    (13, 14),
    (14, 13),
    (15, 16),
    (16, 15),
    (10, 9),
    (9, 10),
    (17, 18),
    (18, 17),
];

/// ICMPv6 types with a counterpart, from Zeek.
const ICMP6_PAIRS: [(u8, u8); 12] = [
    (128, 129),
    (129, 128),
    (130, 131),
    (131, 130),
    (133, 134),
    (134, 133),
    (135, 136),
    (136, 135),
    (139, 140),
    (140, 139),
    (144, 145),
    (145, 144),
];

/// The ports of a flow tuple: real ports, or an ICMP type and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// A protocol without ports (the hash covers addresses and protocol).
    None,
    Ports(u16, u16),
    /// ICMP or ICMPv6 type and code of the first packet.
    Icmp {
        icmp_type: u8,
        code: u8,
    },
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The Community ID v1 of a tuple; None when the addresses are of
/// different families.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Ports,
) -> Option<String> {
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    let (mut s, mut d) = (octets(src), octets(dst));
    // ICMP maps type/code to port equivalents; a type without counterpart
    // is one-way and keeps its order.
    let (mut sp, mut dp, one_way) = match ports {
        Ports::None => (None, None, false),
        Ports::Ports(a, b) => (Some(a), Some(b), false),
        Ports::Icmp { icmp_type, code } => {
            let pairs: &[(u8, u8)] = if proto == 58 {
                &ICMP6_PAIRS
            } else {
                &ICMP4_PAIRS
            };
            match pairs.iter().find(|(t, _)| *t == icmp_type) {
                Some((_, other)) => (Some(u16::from(icmp_type)), Some(u16::from(*other)), false),
                None => (Some(u16::from(icmp_type)), Some(u16::from(code)), true),
            }
        }
    };
    let ordered = one_way || s < d || (s == d && sp < dp);
    if !ordered {
        std::mem::swap(&mut s, &mut d);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&s);
    h.update(&d);
    h.update([proto, 0]);
    if let (Some(a), Some(b)) = (sp, dp) {
        h.update(a.to_be_bytes());
        h.update(b.to_be_bytes());
    }
    Some(format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    ))
}

/// The ICMPv4 type and code of a flow's first packet, from the types its
/// initiator sent (`icmp_seen`), when they determine them (records without
/// `icmp_first`, module doc).
fn icmp4_first(src_icmp_seen: u16) -> Option<(u8, u8)> {
    if src_icmp_seen == 0 {
        return None;
    }
    let icmp_type = u8::try_from(src_icmp_seen.trailing_zeros()).ok()?;
    ICMP4_PAIRS
        .iter()
        .any(|(t, _)| *t == icmp_type)
        .then_some((icmp_type, 0))
}

/// A flow's ports for the hash, or None when the record cannot give them.
pub fn flow_ports(
    proto: u8,
    (src_port, dst_port): (u16, u16),
    icmp_first: Option<IcmpFirst>,
    src_icmp_seen: u16,
) -> Option<Ports> {
    let icmp = |i: IcmpFirst| Ports::Icmp {
        icmp_type: i.icmp_type,
        code: i.code,
    };
    match proto {
        6 | 17 | 132 => Some(Ports::Ports(src_port, dst_port)),
        1 | 58 if icmp_first.is_some() => icmp_first.map(icmp),
        1 => icmp4_first(src_icmp_seen).map(|(icmp_type, code)| Ports::Icmp { icmp_type, code }),
        58 => None,
        _ => Some(Ports::None),
    }
}

/// The SQL value that reads a flow's `x_flow_icmp` pair as one integer
/// (`icmp_type * 256 + icmp_code`, NULL when absent), for [`unpack_icmp`];
/// the flow's table is `f`.
pub const ICMP_FIRST_SQL: &str = "(SELECT i.icmp_type * 256 + i.icmp_code FROM x_flow_icmp i \
     WHERE i.sensor_id = f.sensor_id AND i.flow_id = f.flow_id)";

/// The type and code [`ICMP_FIRST_SQL`] read.
pub fn unpack_icmp(packed: Option<i64>) -> Option<IcmpFirst> {
    let [.., icmp_type, code] = u16::try_from(packed?).ok()?.to_be_bytes();
    Some(IcmpFirst { icmp_type, code })
}

/// The Community ID v1 of a flow given by its columns (as the mirror keeps
/// them, with `x_flow_icmp`'s type and code), or None (see the module doc).
pub fn of_columns(
    seed: u16,
    (src, src_port): (IpAddr, u16),
    (dst, dst_port): (IpAddr, u16),
    proto: u8,
    (icmp_first, src_icmp_seen): (Option<IcmpFirst>, u16),
) -> Option<String> {
    community_id(
        seed,
        src,
        dst,
        proto,
        flow_ports(proto, (src_port, dst_port), icmp_first, src_icmp_seen)?,
    )
}

/// The flow's Community ID v1 with `seed`, or None (see the module doc).
pub fn of_flow(f: &FlowRecord, seed: u16) -> Option<String> {
    of_columns(
        seed,
        (f.src_ip, f.src_port),
        (f.dst_ip, f.dst_port),
        f.ip_proto,
        (f.icmp_first, f.src.icmp_seen),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed by the specification's reference implementation
    /// (`communityid` on PyPI, `CommunityID(seed).calc(FlowTuple.make_*)`).
    #[test]
    fn matches_the_reference_implementation() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            (
                ip("128.232.110.120"),
                ip("66.35.250.204"),
                6,
                Ports::Ports(34855, 80),
                0,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                ip("66.35.250.204"),
                ip("128.232.110.120"),
                6,
                Ports::Ports(80, 34855),
                0,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                ip("128.232.110.120"),
                ip("66.35.250.204"),
                6,
                Ports::Ports(34855, 80),
                1,
                "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            ),
            (
                ip("192.168.1.52"),
                ip("8.8.8.8"),
                17,
                Ports::Ports(54585, 53),
                0,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                ip("192.168.0.89"),
                ip("192.168.0.1"),
                1,
                Ports::Icmp {
                    icmp_type: 8,
                    code: 0,
                },
                0,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                ip("192.168.0.1"),
                ip("192.168.0.89"),
                1,
                Ports::Icmp {
                    icmp_type: 0,
                    code: 0,
                },
                0,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                ip("fe80::200:86ff:fe05:80da"),
                ip("fe80::260:97ff:fe07:69ea"),
                58,
                Ports::Icmp {
                    icmp_type: 135,
                    code: 0,
                },
                0,
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
            (
                ip("192.0.2.10"),
                ip("198.51.100.20"),
                1,
                Ports::Icmp {
                    icmp_type: 3,
                    code: 3,
                },
                0,
                "1:A5Y9gkbIYXBNP8lW5dB7iYaWoOQ=",
            ),
            (
                ip("10.0.0.2"),
                ip("10.0.0.1"),
                47,
                Ports::None,
                0,
                "1:+KlEHDT0vJgzs/eNmzHq0aSpRYw=",
            ),
            (
                ip("2001:db8:2::20"),
                ip("2001:db8:1::10"),
                6,
                Ports::Ports(40000, 22),
                0,
                "1:6xlWAcESOuTQ8ABXWEUdvkZwmaI=",
            ),
        ];
        for (s, d, p, ports, seed, want) in cases {
            assert_eq!(
                community_id(seed, s, d, p, ports).as_deref(),
                Some(want),
                "{s} {d} {p} {ports:?}"
            );
        }
        assert_eq!(
            community_id(0, ip("10.0.0.1"), ip("::1"), 6, Ports::Ports(1, 2)),
            None
        );
    }

    #[test]
    fn icmp_flows_take_their_first_type_and_older_records_their_bits() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (a, b) = (ip("192.0.2.10"), ip("198.51.100.20"));
        let unreachable = IcmpFirst {
            icmp_type: 3,
            code: 3,
        };
        assert_eq!(
            of_columns(0, (a, 0), (b, 0), 1, (Some(unreachable), 1 << 3)).as_deref(),
            Some("1:A5Y9gkbIYXBNP8lW5dB7iYaWoOQ=")
        );
        // Without icmp_first: an echo from its bits, an error not at all.
        assert_eq!(
            of_columns(0, (b, 0), (a, 0), 1, (None, 1 << 8)),
            of_columns(
                0,
                (a, 0),
                (b, 0),
                1,
                (
                    Some(IcmpFirst {
                        icmp_type: 0,
                        code: 0
                    }),
                    0
                )
            )
        );
        assert_eq!(of_columns(0, (a, 0), (b, 0), 1, (None, 1 << 3)), None);
        assert_eq!(of_columns(0, (a, 0), (b, 0), 58, (None, 0)), None);
        // The packed SQL value.
        assert_eq!(unpack_icmp(Some(3 * 256 + 3)), Some(unreachable));
        assert_eq!(unpack_icmp(None), None);
        assert_eq!(unpack_icmp(Some(-1)), None);
    }
}
