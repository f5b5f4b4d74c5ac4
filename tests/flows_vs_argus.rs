//! Flows against argus: on the same real capture, every IP packet is counted
//! exactly once, and per 5-tuple (per host pair for ICMP and other protocols)
//! packets and bytes equal racluster's aggregation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::util::*;

/// Direction-free aggregation key: protocol name and the two ends in order.
type Key = (String, String, String);

fn proto_name(p: u64) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

fn key(proto: &str, a: String, b: String) -> Key {
    if a <= b {
        (proto.to_string(), a, b)
    } else {
        (proto.to_string(), b, a)
    }
}

fn end(ip: &str, port: Option<&str>) -> String {
    // Normalise argus's address text through IpAddr so both sides agree.
    let ip = ip
        .parse::<IpAddr>()
        .map(|i| i.to_string())
        .unwrap_or_else(|_| ip.to_string());
    match port {
        Some(p) => format!("{ip}/{p}"),
        None => ip,
    }
}

fn argus_totals(pcap: &std::path::Path) -> BTreeMap<Key, (u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.argus");
    tool(
        "argus",
        &["-r", pcap.to_str().unwrap(), "-w", out.to_str().unwrap()],
    );
    let csv = tool(
        "racluster",
        &[
            "-r",
            out.to_str().unwrap(),
            "-m",
            "saddr",
            "daddr",
            "proto",
            "sport",
            "dport",
            "-n",
            "-c",
            ",",
            "-s",
            "saddr",
            "sport",
            "daddr",
            "dport",
            "proto",
            "pkts",
            "bytes",
        ],
    );
    let mut totals = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() < 7 || f[0].parse::<IpAddr>().is_err() || f[4] == "arp" {
            continue; // ARP and other non-IP records
        }
        let (proto, pkts, bytes) = (
            f[4],
            f[5].parse::<u64>().unwrap(),
            f[6].parse::<u64>().unwrap(),
        );
        let k = if proto == "tcp" || proto == "udp" {
            key(proto, end(f[0], Some(f[1])), end(f[2], Some(f[3])))
        } else {
            key(proto, end(f[0], None), end(f[2], None))
        };
        let e = totals.entry(k).or_insert((0, 0));
        e.0 += pkts;
        e.1 += bytes;
    }
    totals
}

fn lumpy_totals(flows: &[serde_json::Value]) -> BTreeMap<Key, (u64, u64)> {
    let mut totals = BTreeMap::new();
    for f in flows {
        let proto = proto_name(f["ip_proto"].as_u64().unwrap());
        let (s, d) = (f["src_ip"].as_str().unwrap(), f["dst_ip"].as_str().unwrap());
        let k = if proto == "tcp" || proto == "udp" {
            key(
                &proto,
                end(s, Some(&f["src_port"].to_string())),
                end(d, Some(&f["dst_port"].to_string())),
            )
        } else {
            key(&proto, end(s, None), end(d, None))
        };
        let pkts = f["src"]["packets"].as_u64().unwrap() + f["dst"]["packets"].as_u64().unwrap();
        let bytes = f["src"]["bytes"].as_u64().unwrap() + f["dst"]["bytes"].as_u64().unwrap();
        let e = totals.entry(k).or_insert((0, 0));
        e.0 += pkts;
        e.1 += bytes;
    }
    totals
}

/// IP packets as tcpdump counts them with `filter`.
fn ip_packets(pcap: &std::path::Path, filter: &str) -> u64 {
    let out = tool(
        "tcpdump",
        &["-nn", "-q", "-r", pcap.to_str().unwrap(), filter],
    );
    out.lines().count() as u64
}

fn compare(name: &str, ip_filter: &str) {
    let pcap = fixture(name);
    let (_d, data) = new_node(42);
    ok(&["ingest", "--data", &data, pcap.to_str().unwrap()]);
    let flows = flows_json(&data, &[]);
    let ours = lumpy_totals(&flows);
    let counted: u64 = ours.values().map(|v| v.0).sum();
    let expected = ip_packets(&pcap, ip_filter);
    assert!(expected > 0, "{name} has IP packets");
    assert_eq!(counted, expected, "{name}: every IP packet exactly once");
    let theirs = argus_totals(&pcap);
    let mut diffs = Vec::new();
    for k in ours.keys().chain(theirs.keys()) {
        let (a, b) = (ours.get(k), theirs.get(k));
        if a != b {
            diffs.push(format!("{k:?}: lumpy {a:?} argus {b:?}"));
        }
    }
    diffs.dedup();
    assert!(
        diffs.is_empty(),
        "{name}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn flows_match_racluster_on_the_honeynet_capture() {
    compare("honeynet.pcap", "ip or ip6");
}

#[test]
fn flows_match_racluster_through_vlan_tags() {
    compare("vlan.pcap", "vlan and (ip or ip6)");
}
