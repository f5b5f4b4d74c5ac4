//! Community ID v1 of every flow of the fixtures, against the values the
//! specification's reference implementation (`communityid` on PyPI) gives
//! for the same flows: vendored in fixtures/community-id/ by
//! scripts/community-id-oracle.py (its doc says how). TCP, UDP, ICMP echo,
//! other protocols and IPv6 flows are covered; flows whose record cannot
//! give the tuple (ICMPv4 errors, ICMPv6) have none, on both sides.

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

#[test]
fn every_flow_of_the_fixtures_has_the_reference_community_id() {
    let mut ipv6 = 0;
    let mut icmp = 0;
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
        assert_eq!(ours, expected(name), "{name}");
        for f in &flows {
            if f["community_id"].is_string() {
                ipv6 += usize::from(f["src_ip"].as_str().unwrap().contains(':'));
                icmp += usize::from(f["ip_proto"] == 1);
            }
        }
        // The CSV carries the same IDs, and --community-id finds each flow.
        let csv = ok(&["flows", "--data", &data, "--format", "csv"]);
        assert!(csv.lines().next().unwrap().ends_with(",community_id"));
        let (id, cid) = ours
            .iter()
            .find_map(|(id, c)| Some((id, c.clone()?)))
            .unwrap();
        assert!(csv.lines().any(|l| l.ends_with(&format!(",{cid}"))));
        let found: Vec<serde_json::Value> = serde_json::from_str(&ok(&[
            "flows",
            "--data",
            &data,
            "--format",
            "json",
            "--community-id",
            &cid,
        ]))
        .unwrap();
        let ids: Vec<u64> = found
            .iter()
            .map(|f| f["flow_id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [*id], "{name}: --community-id {cid}");
        // Another seed gives other IDs: the one for seed 0 no longer matches.
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
    assert!(ipv6 > 0 && icmp > 0, "IPv6 {ipv6}, ICMP {icmp}");
}
