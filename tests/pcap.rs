//! The pcap of a flow: from the flow index, byte-identical to what tcpdump
//! writes from the original capture with the flow's filter over its time
//! span; and through a lumpy that proxies to the roo.

use std::path::Path;

use crate::sync::{free_port, link, serve};
use crate::util::*;

/// Classic pcap records: (ts_sec, ts_usec, record bytes including header).
pub(crate) fn records(pcap: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let u = |o: usize| u32::from_le_bytes(pcap[at + o..at + o + 4].try_into().unwrap());
        let cap = u(8) as usize;
        out.push((u(0), u(4), pcap[at..at + 16 + cap].to_vec()));
        at += 16 + cap;
    }
    out
}

/// tcpdump's output for `filter`, restricted to the flow's time span.
pub(crate) fn tcpdump_flow(original: &Path, filter: &str, flow: &serde_json::Value) -> Vec<u8> {
    let out = std::process::Command::new("tcpdump")
        .args(["-r", original.to_str().unwrap(), "-w", "-", filter])
        .output()
        .expect("tcpdump");
    assert!(
        out.status.success(),
        "tcpdump {filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ms = |d: &serde_json::Value, which: &str| {
        d[format!("{which}_sec")].as_u64().unwrap() * 1000
            + d[format!("{which}_msec")].as_u64().unwrap()
    };
    let (src, dst) = (&flow["src"], &flow["dst"]);
    let start = ms(src, "start");
    let end = ms(src, "end").max(if dst["packets"].as_u64().unwrap() > 0 {
        ms(dst, "end")
    } else {
        0
    });
    let mut kept = out.stdout[..24].to_vec();
    for (sec, usec, rec) in records(&out.stdout) {
        let t = u64::from(sec) * 1000 + u64::from(usec) / 1000;
        if t >= start && t <= end {
            kept.extend_from_slice(&rec);
        }
    }
    kept
}

pub(crate) fn find_flow(
    flows: &[serde_json::Value],
    pred: impl Fn(&serde_json::Value) -> bool,
) -> &serde_json::Value {
    flows
        .iter()
        .filter(|f| pred(f))
        .max_by_key(|f| {
            f["src"]["packets"].as_u64().unwrap() + f["dst"]["packets"].as_u64().unwrap()
        })
        .expect("a matching flow in the fixture")
}

pub(crate) fn bpf(f: &serde_json::Value, prefix: &str) -> String {
    let (a, b) = (f["src_ip"].as_str().unwrap(), f["dst_ip"].as_str().unwrap());
    let proto = match f["ip_proto"].as_u64().unwrap() {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmp6",
        _ => unreachable!(),
    };
    let mut s = format!("{prefix}{proto} and host {a} and host {b}");
    if matches!(proto, "tcp" | "udp") {
        s += &format!(" and port {} and port {}", f["src_port"], f["dst_port"]);
    }
    s
}

#[test]
fn a_flows_pcap_is_byte_identical_to_tcpdump_with_the_flows_filter() {
    let work = tempfile::tempdir().unwrap();
    for (fixture_name, prefix) in [("honeynet.pcap", ""), ("vlan.pcap", "vlan and ")] {
        let original = fixture(fixture_name);
        let (_d, data) = new_node(42);
        ok(&["ingest", "--data", &data, original.to_str().unwrap()]);
        let flows = flows_json(&data, &[]);
        let v4 = |f: &serde_json::Value| f["src_ip"].as_str().unwrap().contains('.');
        let mut cases = vec![("tcp", find_flow(&flows, |f| f["ip_proto"] == 6 && v4(f)))];
        if fixture_name == "honeynet.pcap" {
            cases.push((
                "ipv6 tcp",
                find_flow(&flows, |f| f["ip_proto"] == 6 && !v4(f)),
            ));
            // Large pings: the flow includes every fragment.
            cases.push((
                "fragmented icmp",
                find_flow(&flows, |f| {
                    f["ip_proto"] == 1 && f["src"]["ip_flags"].as_u64().unwrap() & 1 == 1
                }),
            ));
            cases.push(("udp", find_flow(&flows, |f| f["ip_proto"] == 17 && v4(f))));
        }
        for (what, flow) in cases {
            let id = flow["flow_id"].as_u64().unwrap();
            let ours = flow_pcap(&data, 42, id, &work.path().join(format!("{id}.pcap")));
            let theirs = tcpdump_flow(&original, &bpf(flow, prefix), flow);
            assert!(
                records(&theirs).len() > 1,
                "{fixture_name} {what}: tcpdump found packets"
            );
            assert_eq!(
                records(&ours).len(),
                records(&theirs).len(),
                "{fixture_name} {what} flow {id}: packet count"
            );
            assert!(
                ours == theirs,
                "{fixture_name} {what} flow {id}: bytes differ from tcpdump's"
            );
        }
    }
}

#[test]
fn errors_name_what_is_wrong() {
    let (_d, data) = new_node(42);
    ingest_fixture(&data, "honeynet.pcap");
    let out = run(&[
        "pcap",
        "--data",
        &data,
        "--sensor",
        "42",
        "--flow",
        "999999",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no flow 999999 for sensor 42"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "pcap",
        "--data",
        &data,
        "--sensor",
        "7",
        "--flow",
        "1",
        "-o",
        "/dev/null",
    ]);
    assert!(
        stderr(&out).contains("unknown sensor 7"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "pcap",
        "--data",
        &data,
        "--sensor",
        "42",
        "--ip",
        "not-an-ip",
        "-o",
        "/dev/null",
    ]);
    assert!(stderr(&out).contains("parameter ip"), "{}", stderr(&out));
}

#[test]
fn a_lumpy_proxies_a_flows_pcap_to_the_roo_and_answers_http_errors() {
    let (_a, a) = new_node(1901);
    ingest_fixture(&a, "honeynet.pcap");
    let flows = flows_json(&a, &[]);
    let flow = find_flow(&flows, |f| f["ip_proto"] == 6);
    let id = flow["flow_id"].as_u64().unwrap();
    let work = tempfile::tempdir().unwrap();
    let direct = flow_pcap(&a, 1901, id, &work.path().join("direct.pcap"));
    let (_l, l) = new_node(2901);
    let (pa, pl) = (free_port("127.0.0.17"), free_port("127.0.0.18"));
    link(&l, "l", &a, "a", &format!("https://127.0.0.17:{pa}"), &[]);
    let client_secret = ok(&["peer", "add", "--data", &l, "analyst"]);
    let secret_file = work.path().join("analyst.secret");
    std::fs::write(&secret_file, client_secret).unwrap();
    let sa = serve(&a, "127.0.0.17", pa);
    ok(&["pull", "--data", &l]);
    let sl = serve(&l, "127.0.0.18", pl);
    let url = format!("https://127.0.0.18:{pl}");
    let out = work.path().join("proxied.pcap");
    let pcap_via = |flow: &str, out: &Path| {
        run(&[
            "pcap",
            "--node",
            &url,
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--sensor",
            "1901",
            "--flow",
            flow,
            "-o",
            out.to_str().unwrap(),
        ])
    };
    let r = pcap_via(&id.to_string(), &out);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        std::fs::read(&out).unwrap() == direct,
        "the proxied pcap equals the roo's own"
    );
    // Over HTTPS (curl -k: this part is about the answer's headers): the
    // pcap media type and an attachment name.
    let path = format!("/pcap?sensor=1901&con_id={id}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let secret =
        lumpy::sync::auth::LinkToken::parse(&std::fs::read_to_string(&secret_file).unwrap())
            .unwrap()
            .secret;
    let header = lumpy::sync::auth::sign(&secret, "GET", &path, now, b"").unwrap();
    let headers = tool(
        "curl",
        &[
            "-sk",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &format!("x-lumpy-auth: {header}"),
            &format!("{url}{path}"),
        ],
    );
    assert!(
        headers.contains("application/vnd.tcpdump.pcap"),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("filename=\"sensor1901-flow{id}.pcap\"")),
        "{headers}"
    );
    let bad_path = "/pcap?sensor=1901&con_id=x";
    let bad_header = lumpy::sync::auth::sign(&secret, "GET", bad_path, now, b"").unwrap();
    let bad = tool(
        "curl",
        &[
            "-sk",
            "-w",
            " %{http_code}",
            "-H",
            &format!("x-lumpy-auth: {bad_header}"),
            &format!("{url}{bad_path}"),
        ],
    );
    assert!(bad.ends_with(" 400") && bad.contains("con_id"), "{bad}");
    let r = pcap_via("999999", &work.path().join("x.pcap"));
    assert!(
        stderr(&r).contains("404") && stderr(&r).contains("999999"),
        "{}",
        stderr(&r)
    );
    // A link limited to other sensors (`peer add --sensors`) gets a clear
    // refusal for this sensor's pcap, and no bytes.
    let limited = ok(&["peer", "add", "--data", &l, "limited", "--sensors", "1"]);
    let limited_file = work.path().join("limited.token");
    std::fs::write(&limited_file, limited).unwrap();
    let limited_out = work.path().join("limited.pcap");
    let r = run(&[
        "pcap",
        "--node",
        &url,
        "--secret-file",
        limited_file.to_str().unwrap(),
        "--sensor",
        "1901",
        "--flow",
        &id.to_string(),
        "-o",
        limited_out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("403") && stderr(&r).contains("sensor 1901"),
        "{}",
        stderr(&r)
    );
    assert!(std::fs::read(&limited_out).map_or(true, |b| b.is_empty()));
    // The roo goes away: the lumpy answers 502 naming the child, leaking no path or secret.
    drop(sa);
    let r = pcap_via(&id.to_string(), &work.path().join("y.pcap"));
    let err = stderr(&r);
    assert!(err.contains("502") && err.contains("child a"), "{err}");
    assert!(!err.contains(&l) && !err.contains("lumpy-link"), "{err}");
    sl.stop();
}

#[test]
fn prune_keeps_what_a_mirroring_parent_lacks_and_reports_aged_out_pcap() {
    let (_a, a) = new_node(1951);
    ingest_fixture(&a, "honeynet.pcap");
    let flows = flows_json(&a, &[]);
    let flow = find_flow(&flows, |f| f["ip_proto"] == 6)["flow_id"]
        .as_u64()
        .unwrap()
        .to_string();
    let (_l, l) = new_node(2951);
    let pa = free_port("127.0.0.19");
    link(
        &l,
        "l",
        &a,
        "a",
        &format!("https://127.0.0.19:{pa}"),
        &["--pcap", "mirror"],
    );
    let sa = serve(&a, "127.0.0.19", pa);
    ok(&["pull", "--data", &l]);
    sa.stop();
    // New capture at the roo that the mirroring parent has not pulled yet.
    ingest_fixture(&a, "vlan.pcap");
    let out = ok(&["prune", "--data", &a, "--pcap-days", "0"]);
    assert!(out.contains("kept") && out.contains("parent 'l'"), "{out}");
    ok(&["verify", "--data", &a]);
    // The pruned flow's pcap is aged out at the roo, and still served by the parent.
    let r = run(&[
        "pcap",
        "--data",
        &a,
        "--sensor",
        "1951",
        "--flow",
        &flow,
        "-o",
        "/dev/null",
    ]);
    assert!(stderr(&r).contains("aged out"), "{}", stderr(&r));
    let work = tempfile::tempdir().unwrap();
    assert!(flow_pcap(&l, 1951, flow, &work.path().join("f.pcap")).len() > 24);
    // Once the parent has pulled the rest, prune drops it too.
    let sa = serve(&a, "127.0.0.19", pa);
    ok(&["pull", "--data", &l]);
    sa.stop();
    let out = ok(&[
        "prune",
        "--data",
        &a,
        "--pcap-days",
        "0",
        "--records-days",
        "0",
    ]);
    assert!(!out.contains("kept"), "{out}");
    assert!(out.contains("deleted"), "{out}");
    ok(&["verify", "--data", &a]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data", &a, "--json"])).unwrap();
    assert_eq!(v["pcap_segments"], 0);
}
