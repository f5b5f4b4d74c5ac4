//! Community ID v1 of every flow of the fixtures, against two independent
//! implementations:
//! - tshark's own (`--enable-protocol communityid`), run here on the same
//!   capture: a flow's ID is the ID tshark gives its first packet (the
//!   packet from the flow's source, at its start, with its addresses,
//!   protocol and ports);
//! - the specification's reference implementation (`communityid` on PyPI),
//!   whose values for the same flows are vendored in fixtures/community-id/
//!   by scripts/community-id-oracle.py (its doc says how).
//!
//! TCP, UDP, ICMP echo, ICMPv6 (neighbour discovery, echo), other
//! protocols and IPv6 flows are covered: every flow has an ID. (No flow of
//! the fixtures starts with an ICMP error; the unit test in
//! src/community_id.rs holds a one-way type against the reference.)

use std::collections::HashMap;

use crate::util::*;

fn expected(name: &str) -> Vec<(u64, Option<String>)> {
    let text = std::fs::read_to_string(fixtures().join("community-id").join(format!("{name}.txt")))
        .expect("vendored Community IDs");
    text.lines()
        .map(|l| {
            let (id, cid) = l.split_once(' ').expect("FLOW_ID ID");
            (
                id.parse().expect("flow id"),
                (cid != "-").then(|| cid.to_string()),
            )
        })
        .collect()
}

/// A packet's identity as a flow sees its first packet: start (seconds,
/// milliseconds), source, destination, protocol, ports (0 for ICMP and
/// protocols without ports).
type PacketKey = (u64, u64, String, String, u64, u64, u64);

/// tshark's Community ID of each packet of `name`, first packet first per
/// key. IP reassembly is off: lumpy counts a fragmented datagram's first
/// fragment, with its ports, as the flow's packet.
fn tshark_ids(name: &str) -> HashMap<PacketKey, String> {
    let path = fixture(name);
    let text = tool(
        "tshark",
        &[
            "-r",
            path.to_str().unwrap(),
            "--enable-protocol",
            "communityid",
            "-o",
            "ip.defragment:FALSE",
            "-o",
            "ipv6.defragment:FALSE",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "ip.proto",
            "-e",
            "ipv6.nxt",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "communityid",
        ],
    );
    let mut ids = HashMap::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        let [time, s4, d4, s6, d6, p4, p6, ts, td, us, ud, cid] = c[..] else {
            panic!("tshark line {line:?}");
        };
        if cid.is_empty() {
            continue;
        }
        let (secs, frac) = time.split_once('.').expect("epoch with a fraction");
        let ms: u64 = frac[..3].parse().unwrap();
        let (src, dst, proto) = if s4.is_empty() {
            (s6, d6, p6)
        } else {
            (s4, d4, p4)
        };
        let port = |a: &str, b: &str| a.parse().or_else(|_| b.parse()).unwrap_or(0u64);
        let key = (
            secs.parse().unwrap(),
            ms,
            src.to_string(),
            dst.to_string(),
            proto.parse().unwrap(),
            port(ts, us),
            port(td, ud),
        );
        ids.entry(key).or_insert_with(|| cid.to_string());
    }
    ids
}

#[test]
fn every_flow_of_the_fixtures_has_the_reference_community_id() {
    let mut ipv6 = 0;
    let mut icmp = 0;
    let mut icmp6 = 0;
    for name in ["honeynet.pcap", "sebek.pcap", "tun-rawip.pcap"] {
        let (_d, data) = new_node(7);
        ok(&["ingest", "--data", &data, fixture(name).to_str().unwrap()]);
        let flows: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&["flows", "--data", &data, "--format", "json"])).unwrap();
        let ours: Vec<(u64, Option<String>)> = flows
            .iter()
            .map(|f| {
                (
                    f["flow_id"].as_u64().unwrap(),
                    f["community_id"].as_str().map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(ours, expected(name), "{name}: the reference implementation");
        // tshark, flow by flow: the ID of the flow's first packet.
        let packets = tshark_ids(name);
        for f in &flows {
            let n = |k: &str| f[k].as_u64().unwrap();
            let key = (
                f["src"]["start_sec"].as_u64().unwrap(),
                f["src"]["start_msec"].as_u64().unwrap(),
                f["src_ip"].as_str().unwrap().to_string(),
                f["dst_ip"].as_str().unwrap().to_string(),
                n("ip_proto"),
                n("src_port"),
                n("dst_port"),
            );
            let theirs = packets.get(&key);
            assert!(theirs.is_some(), "{name}: no tshark packet for {key:?}");
            assert_eq!(
                f["community_id"].as_str(),
                theirs.map(String::as_str),
                "{name}: flow {} ({key:?}) against tshark",
                n("flow_id")
            );
            if f["src_ip"].as_str().unwrap().contains(':') {
                ipv6 += 1;
            }
            match n("ip_proto") {
                1 => icmp += 1,
                58 => icmp6 += 1,
                _ => {}
            }
        }
        // The CSV carries the same IDs, and --community-id finds each flow.
        let csv = ok(&["flows", "--data", &data, "--format", "csv"]);
        assert!(csv.lines().next().unwrap().ends_with(",community_id"));
        // One flow of each protocol is found by its ID (flows of the same
        // tuple at other times share it).
        let mut protos = std::collections::BTreeSet::new();
        for (f, (id, cid)) in flows.iter().zip(&ours) {
            let Some(cid) = cid else { continue };
            assert!(csv.lines().any(|l| l.ends_with(&format!(",{cid}"))));
            if !protos.insert(f["ip_proto"].as_u64()) {
                continue;
            }
            let found: Vec<serde_json::Value> = serde_json::from_str(&ok(&[
                "flows",
                "--data",
                &data,
                "--format",
                "json",
                "--community-id",
                cid,
            ]))
            .unwrap();
            let ids: Vec<u64> = found
                .iter()
                .map(|f| f["flow_id"].as_u64().unwrap())
                .collect();
            assert!(ids.contains(id), "{name}: --community-id {cid}: {ids:?}");
            assert!(
                found
                    .iter()
                    .all(|f| f["community_id"].as_str() == Some(cid)),
                "{name}: --community-id {cid}"
            );
        }
        // Another seed gives other IDs: the one for seed 0 no longer matches.
        let (_, cid) = ours
            .iter()
            .find_map(|(id, c)| Some((id, c.clone()?)))
            .unwrap();
        let none = ok(&[
            "flows",
            "--data",
            &data,
            "--format",
            "csv",
            "--community-id",
            &cid,
            "--community-id-seed",
            "1",
        ]);
        assert_eq!(none.lines().count(), 1, "{none}");
    }
    assert!(
        ipv6 > 0 && icmp > 0 && icmp6 > 0,
        "IPv6 {ipv6}, ICMP {icmp}, ICMPv6 {icmp6}"
    );
}
