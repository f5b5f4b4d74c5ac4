//! Mirror tests: schema fidelity to hflow, idempotent and order-independent
//! apply, IPv6 placement, and Walleye's filter semantics.

use std::net::IpAddr;

use tempfile::TempDir;

use super::*;
use crate::records::{FlowDirection, SensorRecord};

fn open_temp() -> (TempDir, Mirror) {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(&dir.path().join("mirror.sqlite")).unwrap();
    (dir, m)
}

fn seg(n: u8) -> SegmentId {
    SegmentId::of(&[n])
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dir(start: u32, end: u32) -> FlowDirection {
    FlowDirection {
        start_sec: start,
        start_msec: 0,
        end_sec: end,
        end_msec: 0,
        packets: 1,
        bytes: 60,
        ..FlowDirection::default()
    }
}

/// A flow from src:sport to dst:dport, src side active start..end, dst side
/// start..dst_end.
#[allow(clippy::too_many_arguments)]
fn flow(
    sensor_id: u32,
    flow_id: u32,
    version: u64,
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    start: u32,
    end: u32,
    dst_end: u32,
) -> FlowRecord {
    FlowRecord {
        sensor_id,
        flow_id,
        version,
        src_ip: ip(src),
        dst_ip: ip(dst),
        src_port: sport,
        dst_port: dport,
        ip_proto: 6,
        src: dir(start, end),
        dst: dir(start, dst_end),
        is_local: false,
        marker_flags: 0,
        client_os_id: 0,
        server_os_id: 0,
        closed: false,
        evicted: false,
        icmp_first: None,
    }
}

fn sensor(sensor_id: u32, version: u64, name: &str) -> SensorRecord {
    SensorRecord {
        sensor_id,
        version,
        install_sec: 1_200_000_000,
        last_upd_sec: 1_200_000_100,
        state: "online".into(),
        name: name.into(),
        timezone: -5,
        country_code: "US".into(),
        latitude: 39,
        longitude: -86,
        notes: "tab\there".into(),
        network_type: "edu".into(),
        ..SensorRecord::default()
    }
}

fn column_names(m: &Mirror, table: &str) -> Vec<String> {
    let mut stmt = m
        .conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap();
    stmt.query_map([], |row| row.get::<_, String>(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// Hashes of every table whose content must not depend on apply order
/// (everything but x_applied_segment, which records local times).
fn content_hashes(m: &Mirror) -> Vec<(&'static str, [u8; 32])> {
    TABLES
        .iter()
        .filter(|t| t.name != "x_applied_segment")
        .map(|t| (t.name, m.row_hash(t.name, None).unwrap()))
        .collect()
}

// ---- schema -----------------------------------------------------------------

/// The hflow column lists of walleye-hflow.md section 2, in order.
const REFERENCE_COLUMNS: &[(&str, &str)] = &[
    ("dbschema", "version comment"),
    (
        "sensor",
        "sensor_id install_sec last_upd_sec state name timezone country_code latitude longitude \
         notes network_type access_via login passwd",
    ),
    (
        "flow",
        "sensor_id flow_id src_ip dst_ip src_port dst_port ip_proto iface_in marker_flags \
         src_start_sec src_start_msec src_end_sec src_end_msec src_packets src_bytes src_ip_flags \
         src_tcp_flags src_icmp_packets src_icmp_seen \
         dst_start_sec dst_start_msec dst_end_sec dst_end_msec dst_packets dst_bytes dst_ip_flags \
         dst_tcp_flags dst_icmp_packets dst_icmp_seen client_os_id server_os_id is_local",
    ),
    ("flow_perf", "sensor_id flow_id sec bytes packets"),
    (
        "argus",
        "sensor_id argus_id ip_proto local src_ip dst_ip src_port dst_port src_pkts dst_pkts \
         src_bytes dst_bytes start_sec end_sec argus_dir argus_status argus_ind client_os_id",
    ),
    ("os", "os_id sensor_id genre detail"),
    (
        "ids",
        "ids_id sensor_id sig_id flow_id sec usec priority sig_rev sig_gen classification type to_be_deleted",
    ),
    (
        "ids_sig",
        "ids_sig_gen ids_sig_id sensor_id sig_name reference",
    ),
    (
        "process",
        "sensor_id process_id src_ip time_min time_max pcap_time_min pcap_time_max pid",
    ),
    (
        "process_tree",
        "sensor_id child_process parent_process to_be_deleted",
    ),
    ("command", "sensor_id command_id name"),
    (
        "process_to_com",
        "sensor_id process_id command_id to_be_deleted",
    ),
    (
        "sys_read",
        "sensor_id sys_read_id process_id uid pcap_time time counter filed inode length data to_be_deleted",
    ),
    (
        "sys_write",
        "sensor_id sys_write_id process_id uid pcap_time time counter filed inode length data to_be_deleted",
    ),
    (
        "sys_open",
        "sensor_id sys_open_id process_id uid pcap_time time counter filed inode length to_be_deleted filename",
    ),
    (
        "sys_socket",
        "sensor_id sys_socket_id process_id pcap_time time uid counter filed inode flow_id call type to_be_deleted",
    ),
    ("sbk_loss", "sensor_id src_ip time lost"),
];

#[test]
fn every_table_exists_with_the_reference_columns() {
    let (_d, m) = open_temp();
    for (table, cols) in REFERENCE_COLUMNS {
        assert_eq!(column_names(&m, table), words(cols), "columns of {table}");
    }
    // x_flow6 mirrors flow column for column.
    assert_eq!(column_names(&m, "x_flow6"), column_names(&m, "flow"));
    // The catalogue, the schema and the reference agree on the table set.
    let mut in_db: Vec<String> = m
        .conn
        // sqlite_stat1 and friends belong to SQLite (PRAGMA optimize).
        // argus is a view (mirror 4) with the table's columns.
        .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND substr(name, 1, 7) != 'sqlite_' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    in_db.sort();
    listed.sort();
    assert_eq!(in_db, listed);
    let legacy: Vec<&str> = TABLES
        .iter()
        .map(|t| t.name)
        .filter(|n| !n.starts_with("x_"))
        .collect();
    let reference: Vec<&str> = REFERENCE_COLUMNS.iter().map(|(t, _)| *t).collect();
    assert_eq!(legacy, reference);
}

#[test]
fn flow_keys_and_indexes_match_hflow() {
    let (_d, m) = open_temp();
    let pk: Vec<String> = m
        .conn
        .prepare("SELECT name FROM pragma_table_info('flow') WHERE pk > 0 ORDER BY pk")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pk, words("sensor_id flow_id"));
    let index = |name: &str| -> (bool, Vec<String>) {
        let unique: bool = m
            .conn
            .query_row(
                "SELECT \"unique\" FROM pragma_index_list('flow') WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        let cols = m
            .conn
            .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
            .unwrap()
            .query_map([name], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (unique, cols)
    };
    // hflow's index names, each ending in the flow's start time (mirror 4),
    // and hflow's UNIQUE natural key is src_ip_idx: the same column set.
    assert_eq!(
        index("src_ip_idx"),
        (
            true,
            words("sensor_id src_ip src_start_sec dst_ip ip_proto src_port dst_port")
        )
    );
    for (name, col) in [
        ("dst_ip_idx", "dst_ip"),
        ("src_port_idx", "src_port"),
        ("dst_port_idx", "dst_port"),
    ] {
        assert_eq!(
            index(name),
            (
                false,
                words(&format!("sensor_id {col} src_start_sec src_start_msec"))
            )
        );
    }
    assert_eq!(
        index("start_sec_idx"),
        (false, words("sensor_id src_start_sec"))
    );
}

#[test]
fn open_sets_pragmas_and_seeds_version_rows() {
    let (_d, m) = open_temp();
    let mode: String = m
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let dbschema: (i64, String) = m
        .conn
        .query_row("SELECT version, comment FROM dbschema", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(dbschema, (3, "initial hflow2 release 1.99.15".to_owned()));
    assert_eq!(m.schema_version().unwrap(), MIRROR_SCHEMA_VERSION);
}

#[test]
fn reopen_keeps_data_and_seed_rows_single() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sqlite");
    let mut m = Mirror::open(&path).unwrap();
    m.apply(
        &seg(1),
        &[Record::Flow(flow(
            1, 1, 1, "10.0.0.1", "10.0.0.2", 1, 2, 10, 20, 20,
        ))],
    )
    .unwrap();
    let before = m.table_counts().unwrap();
    drop(m);
    let m = Mirror::open(&path).unwrap();
    assert_eq!(m.table_counts().unwrap(), before);
    assert!(
        before.contains(&("dbschema", 1))
            && before.contains(&("x_schema", MIRROR_SCHEMA_VERSION as u64))
            && before.contains(&("flow", 1))
    );
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sqlite");
    let m = Mirror::open(&path).unwrap();
    m.conn
        .execute("INSERT INTO x_schema VALUES (99, 'from the future')", [])
        .unwrap();
    drop(m);
    match Mirror::open(&path) {
        Err(MirrorError::NewerSchema {
            found: 99,
            supported,
            ..
        }) => assert_eq!(supported, MIRROR_SCHEMA_VERSION),
        other => panic!("expected NewerSchema, got {:?}", other.err()),
    }
}

#[test]
fn open_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/m.sqlite");
    let err = Mirror::open(&path).err().unwrap().to_string();
    assert!(
        err.contains("no/such/dir/m.sqlite") && err.contains("open"),
        "{err}"
    );
}

#[test]
fn unknown_table_is_an_error() {
    let (_d, m) = open_temp();
    assert!(matches!(
        m.row_hash("flow; DROP TABLE flow", None),
        Err(MirrorError::UnknownTable { .. })
    ));
}

// ---- apply ------------------------------------------------------------------

#[test]
fn applying_a_segment_twice_changes_nothing() {
    let (_d, mut m) = open_temp();
    let records = vec![
        Record::Sensor(sensor(7, 1, "roo-7")),
        Record::Flow(flow(
            7,
            1,
            1,
            "10.0.0.1",
            "192.168.1.5",
            4000,
            22,
            100,
            110,
            111,
        )),
        Record::Flow(flow(
            7,
            2,
            1,
            "2001:db8::1",
            "2001:db8::2",
            4001,
            80,
            105,
            106,
            107,
        )),
    ];
    let first = m.apply(&seg(1), &records).unwrap();
    assert_eq!(
        first,
        ApplyStats {
            rows_written: 3,
            ..ApplyStats::default()
        }
    );
    assert!(m.is_applied(&seg(1)).unwrap());
    assert!(!m.is_applied(&seg(2)).unwrap());
    let hashes = content_hashes(&m);
    let applied = m.row_hash("x_applied_segment", None).unwrap();

    let again = m.apply(&seg(1), &records).unwrap();
    assert_eq!(
        again,
        ApplyStats {
            already_applied: true,
            ..ApplyStats::default()
        }
    );
    assert_eq!(content_hashes(&m), hashes);
    assert_eq!(m.row_hash("x_applied_segment", None).unwrap(), applied);

    // The same records under another segment id are version-skipped.
    let other = m.apply(&seg(2), &records).unwrap();
    assert_eq!(other.rows_skipped_older, 3);
    assert_eq!(other.rows_written, 0);
    assert_eq!(content_hashes(&m), hashes);
}

#[test]
fn apply_many_is_one_transaction() {
    let (_d, mut m) = open_temp();
    let ok = [Record::Flow(flow(
        1, 1, 1, "10.0.0.1", "10.0.0.2", 1, 2, 5, 5, 5,
    ))];
    let boom = [Record::Flow(flow(
        1, 666, 1, "10.0.0.3", "10.0.0.4", 1, 2, 5, 5, 5,
    ))];
    // A failure in the second segment must undo the first one too.
    m.conn
        .execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON flow WHEN NEW.flow_id = 666 \
             BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        )
        .unwrap();
    let err = m
        .apply_many([(&seg(1), &ok[..]), (&seg(2), &boom[..])])
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("mirror.sqlite") && text.contains("apply records"),
        "{text}"
    );
    assert_eq!(m.flow_count().unwrap(), 0);
    assert!(!m.is_applied(&seg(1)).unwrap());

    m.conn.execute_batch("DROP TRIGGER boom").unwrap();
    let stats = m
        .apply_many([(&seg(1), &ok[..]), (&seg(2), &boom[..]), (&seg(1), &ok[..])])
        .unwrap();
    assert_eq!(
        stats.iter().map(|s| s.rows_written).collect::<Vec<_>>(),
        [1, 1, 0]
    );
    assert!(stats[2].already_applied);
    assert_eq!(m.flow_count().unwrap(), 2);
}

#[test]
fn out_of_order_versions_converge() {
    let mut v1 = flow(3, 9, 1, "10.1.1.1", "10.2.2.2", 5000, 445, 100, 100, 100);
    v1.src.packets = 1;
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.src.end_sec = 160;
    v2.src.packets = 12;
    v2.dst.bytes = 9000;
    v2.closed = true;
    v2.marker_flags = 4;
    let old = [Record::Flow(v1), Record::Sensor(sensor(3, 1, "old name"))];
    let new = [
        Record::Flow(v2.clone()),
        Record::Sensor(sensor(3, 2, "new name")),
    ];

    let (_d1, mut in_order) = open_temp();
    in_order.apply(&seg(1), &old).unwrap();
    in_order.apply(&seg(2), &new).unwrap();

    let (_d2, mut reversed) = open_temp();
    reversed.apply(&seg(2), &new).unwrap();
    let late = reversed.apply(&seg(1), &old).unwrap();
    assert_eq!(late.rows_skipped_older, 2);
    assert_eq!(late.rows_written, 0);

    assert_eq!(content_hashes(&in_order), content_hashes(&reversed));
    for m in [&in_order, &reversed] {
        assert_eq!(m.flows(&FlowQuery::default()).unwrap(), vec![v2.clone()]);
        let name: String = m
            .conn
            .query_row("SELECT name FROM sensor", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "new name");
    }
}

#[test]
fn ipv6_flows_go_to_x_flow6_and_round_trip() {
    let (_d, mut m) = open_temp();
    let mut f6 = flow(
        1,
        1,
        1,
        "2001:db8::1",
        "2001:db8:ffff::2",
        1234,
        443,
        50,
        60,
        61,
    );
    f6.is_local = true;
    let f4 = flow(1, 2, 1, "10.0.0.1", "10.0.0.2", 1, 2, 40, 41, 41);
    m.apply(
        &seg(1),
        &[Record::Flow(f6.clone()), Record::Flow(f4.clone())],
    )
    .unwrap();
    let counts = m.table_counts().unwrap();
    assert!(
        counts.contains(&("flow", 1)) && counts.contains(&("x_flow6", 1)),
        "{counts:?}"
    );
    assert_eq!(m.flow_count().unwrap(), 2);
    let stored: Vec<u8> = m
        .conn
        .query_row("SELECT src_ip FROM x_flow6", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored,
        "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    let v4: i64 = m
        .conn
        .query_row("SELECT src_ip FROM flow", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v4, 0x0a00_0001);
    assert_eq!(m.flows(&FlowQuery::default()).unwrap(), vec![f4, f6]);
}

#[test]
fn every_field_round_trips_and_counters_clamp() {
    let (_d, mut m) = open_temp();
    let f = FlowRecord {
        sensor_id: u32::MAX,
        flow_id: u32::MAX,
        version: 77,
        src_ip: ip("255.255.255.254"),
        dst_ip: ip("1.2.3.4"),
        src_port: 65535,
        dst_port: 1,
        ip_proto: 17,
        src: FlowDirection {
            start_sec: 1,
            start_msec: 999,
            end_sec: 2,
            end_msec: 5,
            packets: 3,
            bytes: u64::from(u32::MAX) + 1,
            ip_flags: 2,
            tcp_flags: 0x12,
            icmp_packets: 4,
            icmp_seen: 0x8001,
        },
        dst: FlowDirection {
            start_sec: 1,
            start_msec: 1,
            end_sec: 9,
            end_msec: 9,
            packets: 8,
            bytes: 7,
            ip_flags: 1,
            tcp_flags: 0x10,
            icmp_packets: 6,
            icmp_seen: 5,
        },
        is_local: true,
        marker_flags: u32::MAX,
        client_os_id: 11,
        server_os_id: 12,
        closed: true,
        evicted: false,
        icmp_first: None,
    };
    let mut huge = flow(1, 1, u64::MAX, "10.0.0.1", "10.0.0.2", 1, 2, 5, 5, 5);
    huge.src.packets = u64::MAX;
    m.apply(&seg(1), &[Record::Flow(f.clone()), Record::Flow(huge)])
        .unwrap();
    let got = m.flows(&FlowQuery::default()).unwrap();
    assert_eq!(got[0], f);
    assert_eq!(got[1].src.packets, i64::MAX as u64);
    assert_eq!(got[1].version, i64::MAX as u64);
    let stored: i64 = m
        .conn
        .query_row(
            "SELECT src_ip FROM flow WHERE flow_id = ?1",
            [u32::MAX],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0xffff_fffe);
}

#[test]
fn sensor_update_keeps_per_node_columns() {
    let (_d, mut m) = open_temp();
    m.apply(&seg(1), &[Record::Sensor(sensor(5, 1, "first"))])
        .unwrap();
    let fresh: (i64, String, String) = m
        .conn
        .query_row(
            "SELECT access_via, login, passwd FROM sensor WHERE sensor_id = 5",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(fresh, (0, String::new(), String::new()));
    // This node proxies sensor 5 through 192.168.0.1 (above 2^31 on purpose).
    m.conn
        .execute(
            "UPDATE sensor SET access_via = ?1, login = 'walleye', passwd = 'honey' WHERE sensor_id = 5",
            [u32::from(std::net::Ipv4Addr::new(192, 168, 0, 1))],
        )
        .unwrap();
    let stats = m
        .apply(&seg(2), &[Record::Sensor(sensor(5, 2, "second"))])
        .unwrap();
    assert_eq!(stats.rows_written, 1);
    let row: (String, i64, String, String) = m
        .conn
        .query_row(
            "SELECT name, access_via, login, passwd FROM sensor WHERE sensor_id = 5",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "second".into(),
            0xc0a8_0001,
            "walleye".into(),
            "honey".into()
        )
    );
}

#[test]
fn sensor_row_created_by_operator_is_adopted() {
    let (_d, mut m) = open_temp();
    // The howto's lumpy INSERT, before any record of the sensor arrives.
    m.conn
        .execute(
            "INSERT INTO sensor (sensor_id, install_sec, last_upd_sec, state, name, access_via, login, passwd) \
             VALUES (8, 0, 0, 'online', 'roo8', 167772161, 'u', 'p')",
            [],
        )
        .unwrap();
    m.apply(&seg(1), &[Record::Sensor(sensor(8, 1, "roo eight"))])
        .unwrap();
    let row: (String, i64, String) = m
        .conn
        .query_row(
            "SELECT name, access_via, login FROM sensor WHERE sensor_id = 8",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("roo eight".into(), 167_772_161, "u".into()));
}

#[test]
fn natural_key_clash_keeps_the_lowest_flow_id_in_any_order() {
    let a = flow(2, 10, 1, "10.0.0.1", "10.0.0.2", 1000, 80, 500, 501, 501);
    let mut b = a.clone();
    b.flow_id = 4;
    b.src.packets = 99;
    let mut a2 = a.clone();
    a2.version = 2;

    let (_d1, mut m1) = open_temp();
    m1.apply(&seg(1), &[Record::Flow(a.clone())]).unwrap();
    let s = m1.apply(&seg(2), &[Record::Flow(b.clone())]).unwrap();
    assert_eq!(s.rows_written, 1);
    let s = m1.apply(&seg(3), &[Record::Flow(a2.clone())]).unwrap();
    assert_eq!(s.rows_skipped_conflict, 1);

    let (_d2, mut m2) = open_temp();
    m2.apply(&seg(2), &[Record::Flow(b.clone())]).unwrap();
    m2.apply(&seg(3), &[Record::Flow(a2)]).unwrap();
    let s = m2.apply(&seg(1), &[Record::Flow(a)]).unwrap();
    assert_eq!(s.rows_skipped_conflict, 1);

    assert_eq!(content_hashes(&m1), content_hashes(&m2));
    assert_eq!(m1.flows(&FlowQuery::default()).unwrap(), vec![b]);
}

#[test]
fn a_flow_changing_family_leaves_one_row() {
    let (_d, mut m) = open_temp();
    let v1 = flow(1, 1, 1, "10.0.0.1", "10.0.0.2", 1, 2, 5, 5, 5);
    let mut v2 = flow(1, 1, 2, "2001:db8::1", "2001:db8::2", 1, 2, 5, 6, 6);
    v2.closed = true;
    m.apply(&seg(1), &[Record::Flow(v1)]).unwrap();
    m.apply(&seg(2), &[Record::Flow(v2.clone())]).unwrap();
    assert_eq!(m.flow_count().unwrap(), 1);
    assert_eq!(m.flows(&FlowQuery::default()).unwrap(), vec![v2]);
}

#[test]
fn a_changed_identity_replaces_the_row_in_any_order() {
    // Misbehaving origin: version 2 moves the flow's start second and port.
    let v1 = flow(1, 1, 1, "10.0.0.1", "10.0.0.2", 1000, 80, 10, 12, 12);
    let mut v2 = flow(1, 1, 2, "10.0.0.1", "10.0.0.2", 1001, 80, 11, 15, 15);
    v2.closed = true;
    let (_d1, mut m1) = open_temp();
    m1.apply(&seg(1), &[Record::Flow(v1.clone())]).unwrap();
    assert_eq!(
        m1.apply(&seg(2), &[Record::Flow(v2.clone())])
            .unwrap()
            .rows_written,
        1
    );
    let (_d2, mut m2) = open_temp();
    m2.apply(&seg(2), &[Record::Flow(v2.clone())]).unwrap();
    m2.apply(&seg(1), &[Record::Flow(v1)]).unwrap();
    assert_eq!(content_hashes(&m1), content_hashes(&m2));
    assert_eq!(m1.flows(&FlowQuery::default()).unwrap(), vec![v2]);
    // The old identity is gone from the indexes too.
    let old_port = FlowQuery {
        port: Some(1000),
        ..FlowQuery::default()
    };
    assert!(m1.flows(&old_port).unwrap().is_empty());
}

#[test]
fn an_update_changes_every_mutable_column() {
    let (_d, mut m) = open_temp();
    let v1 = flow(4, 2, 1, "10.0.0.1", "10.0.0.2", 1, 2, 5, 5, 5);
    let mut v2 = v1.clone();
    v2.version = 9;
    v2.src = FlowDirection {
        start_sec: 5,
        start_msec: 7,
        end_sec: 99,
        end_msec: 98,
        packets: 97,
        bytes: 96,
        ip_flags: 3,
        tcp_flags: 0x1f,
        icmp_packets: 2,
        icmp_seen: 9,
    };
    v2.dst = FlowDirection {
        start_sec: 6,
        ..v2.src
    };
    v2.is_local = true;
    v2.marker_flags = 17;
    v2.client_os_id = 3;
    v2.server_os_id = 4;
    v2.closed = true;
    m.apply(&seg(1), &[Record::Flow(v1)]).unwrap();
    m.apply(&seg(2), &[Record::Flow(v2.clone())]).unwrap();
    assert_eq!(m.flows(&FlowQuery::default()).unwrap(), vec![v2]);
}

// ---- flows() filters ----------------------------------------------------------

/// Flows chosen so every filter has something to include and exclude.
fn filter_fixture() -> (TempDir, Mirror) {
    let (d, mut m) = open_temp();
    let mut udp = flow(2, 5, 1, "172.16.0.9", "8.8.8.8", 5353, 53, 300, 301, 302);
    udp.ip_proto = 17;
    let records = vec![
        // id 1: inbound scan of 10.0.0.5:22, 100..150 (dst side ends at 150)
        flow(1, 1, 1, "203.0.113.7", "10.0.0.5", 40000, 22, 100, 120, 150),
        // id 2: outbound from 10.0.0.6 to 198.51.100.1:80, 200..210
        flow(
            1,
            2,
            1,
            "10.0.0.6",
            "198.51.100.1",
            41000,
            80,
            200,
            210,
            205,
        ),
        // id 3: other /24, 10.0.1.1 -> 198.51.100.1:443, 50..60
        flow(1, 3, 1, "10.0.1.1", "198.51.100.1", 42000, 443, 50, 60, 60),
        // sensor 2, UDP
        udp,
        // IPv6, 400..500
        flow(
            1,
            4,
            1,
            "2001:db8:1::5",
            "2001:db8:2::9",
            43000,
            22,
            400,
            450,
            500,
        ),
    ];
    let records: Vec<Record> = records.into_iter().map(Record::Flow).collect();
    m.apply(&seg(1), &records).unwrap();
    (d, m)
}

fn ids(m: &Mirror, q: FlowQuery) -> Vec<(u32, u32)> {
    m.flows(&q)
        .unwrap()
        .iter()
        .map(|f| (f.sensor_id, f.flow_id))
        .collect()
}

fn host(s: &str, prefix: u8) -> Option<(IpAddr, u8)> {
    Some((ip(s), prefix))
}

#[test]
fn no_filter_orders_by_start_then_ids() {
    let (_d, m) = filter_fixture();
    assert_eq!(
        ids(&m, FlowQuery::default()),
        vec![(1, 3), (1, 1), (1, 2), (2, 5), (1, 4)]
    );
    let limited = FlowQuery {
        limit: Some(2),
        ..FlowQuery::default()
    };
    assert_eq!(ids(&m, limited), vec![(1, 3), (1, 1)]);
}

#[test]
fn host_filter_matches_src_or_dst_within_prefix() {
    let (_d, m) = filter_fixture();
    let q = |h| FlowQuery {
        host: h,
        ..FlowQuery::default()
    };
    // /32 as dst, /32 as src
    assert_eq!(ids(&m, q(host("10.0.0.5", 32))), vec![(1, 1)]);
    assert_eq!(ids(&m, q(host("10.0.0.6", 32))), vec![(1, 2)]);
    // /24 given with host bits set: 10.0.0.0/24 holds flows 1 and 2, not 3
    assert_eq!(ids(&m, q(host("10.0.0.77", 24))), vec![(1, 1), (1, 2)]);
    // /16 adds 10.0.1.1
    assert_eq!(
        ids(&m, q(host("10.0.0.0", 16))),
        vec![(1, 3), (1, 1), (1, 2)]
    );
    // /0 is every IPv4 flow, but no IPv6 one
    assert_eq!(
        ids(&m, q(host("0.0.0.0", 0))),
        vec![(1, 3), (1, 1), (1, 2), (2, 5)]
    );
    // shared dst
    assert_eq!(ids(&m, q(host("198.51.100.1", 32))), vec![(1, 3), (1, 2)]);
    // IPv6 prefixes match only x_flow6
    assert_eq!(ids(&m, q(host("2001:db8:2::", 48))), vec![(1, 4)]);
    assert_eq!(ids(&m, q(host("2001:db8::", 32))), vec![(1, 4)]);
    assert_eq!(ids(&m, q(host("2001:db8:3::", 48))), vec![]);
    assert_eq!(ids(&m, q(host("::", 0))), vec![(1, 4)]);
    // Address prefix longer than the address
    assert!(matches!(
        m.flows(&q(host("10.0.0.1", 33))),
        Err(MirrorError::InvalidQuery { .. })
    ));
}

#[test]
fn port_proto_and_sensor_filters() {
    let (_d, m) = filter_fixture();
    let port = |p| FlowQuery {
        port: Some(p),
        ..FlowQuery::default()
    };
    // 22 is a dst port of flows 1 and 4; 41000 a src port of flow 2
    assert_eq!(ids(&m, port(22)), vec![(1, 1), (1, 4)]);
    assert_eq!(ids(&m, port(41000)), vec![(1, 2)]);
    let udp = FlowQuery {
        proto: Some(17),
        ..FlowQuery::default()
    };
    assert_eq!(ids(&m, udp), vec![(2, 5)]);
    let s2 = FlowQuery {
        sensor: Some(2),
        ..FlowQuery::default()
    };
    assert_eq!(ids(&m, s2), vec![(2, 5)]);
    let combined = FlowQuery {
        sensor: Some(1),
        port: Some(22),
        host: host("10.0.0.0", 8),
        ..FlowQuery::default()
    };
    assert_eq!(ids(&m, combined), vec![(1, 1)]);
}

#[test]
fn time_filters_use_walleye_semantics() {
    let (_d, m) = filter_fixture();
    let since = |s| FlowQuery {
        since: Some(s),
        ..FlowQuery::default()
    };
    // Flow 1's src side ends at 120, but its dst side at 150: the flow end is 150.
    assert_eq!(ids(&m, since(140)), vec![(1, 1), (1, 2), (2, 5), (1, 4)]);
    // since is inclusive; flow 1 ends exactly at 150
    assert_eq!(ids(&m, since(150)), vec![(1, 1), (1, 2), (2, 5), (1, 4)]);
    assert_eq!(ids(&m, since(151)), vec![(1, 2), (2, 5), (1, 4)]);
    // until compares src_start_sec only, inclusive
    let until = |u| FlowQuery {
        until: Some(u),
        ..FlowQuery::default()
    };
    assert_eq!(ids(&m, until(100)), vec![(1, 3), (1, 1)]);
    assert_eq!(ids(&m, until(99)), vec![(1, 3)]);
    // A window catches flows overlapping it, not only those inside it.
    let window = FlowQuery {
        since: Some(140),
        until: Some(200),
        ..FlowQuery::default()
    };
    assert_eq!(ids(&m, window), vec![(1, 1), (1, 2)]);
}

fn fingerprint(
    role: crate::records::OsRole,
    source: crate::records::OsSource,
    flow_id: u32,
    genre: &str,
) -> crate::records::OsFingerprintRecord {
    let client = role == crate::records::OsRole::Client;
    crate::records::OsFingerprintRecord {
        sensor_id: 1,
        time: 100,
        role,
        host_ip: ip(if client { "10.0.0.1" } else { "10.0.0.2" }),
        host_port: if client { 1000 } else { 80 },
        peer_ip: ip(if client { "10.0.0.2" } else { "10.0.0.1" }),
        peer_port: if client { 80 } else { 1000 },
        flow_id,
        source,
        class: "unix".into(),
        genre: genre.into(),
        detail: "3.x".into(),
        generic: false,
        fuzzy: false,
        dist: 0,
        raw_sig: "4:64+0:0:1460:mss*20,7:mss,sok,ts,nop,ws:df,id+:0".into(),
    }
}

#[test]
fn fingerprints_join_their_flows_in_any_order_and_survive_flow_versions() {
    use crate::records::{OsRole, OsSource};
    let segments = [
        (
            seg(1),
            vec![Record::OsFingerprint(fingerprint(
                OsRole::Client,
                OsSource::P0fLog,
                0,
                "Linux",
            ))],
        ),
        (
            seg(2),
            vec![Record::Flow(flow(
                1, 7, 1, "10.0.0.1", "10.0.0.2", 1000, 80, 100, 101, 101,
            ))],
        ),
        (
            seg(3),
            vec![
                Record::OsFingerprint(fingerprint(OsRole::Server, OsSource::Native, 7, "FreeBSD")),
                // Native beats the imported log for the same flow and role.
                Record::OsFingerprint(fingerprint(OsRole::Client, OsSource::Native, 7, "Windows")),
            ],
        ),
        (
            seg(4),
            vec![Record::Flow(flow(
                1, 7, 2, "10.0.0.1", "10.0.0.2", 1000, 80, 100, 150, 150,
            ))],
        ),
    ];
    let mut results = Vec::new();
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
        let (_d, mut m) = open_temp();
        for i in order {
            let (id, records) = &segments[i];
            m.apply(id, records).unwrap();
            // Twice: nothing more.
            m.apply(id, records).unwrap();
        }
        let ids: (u32, u32, i64) = m
            .conn
            .query_row(
                "SELECT client_os_id, server_os_id, src_end_sec FROM flow WHERE flow_id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            ids,
            (os_id_of("Windows", "3.x"), os_id_of("FreeBSD", "3.x"), 150),
            "order {order:?}"
        );
        results.push((
            m.row_hash("os", None).unwrap(),
            m.row_hash("flow", None).unwrap(),
            m.row_hash("x_os_fingerprint", None).unwrap(),
        ));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));
}

/// Turns a current mirror's x_os_fingerprint back into what mirror 2 wrote:
/// keyed by host before time, with its indexes, and no version 3 row.
fn downgrade_fingerprints_to_version_2(m: &Mirror) {
    let columns = column_names(m, "x_os_fingerprint").join(", ");
    m.conn
        .execute_batch(&format!(
            "CREATE TABLE v2_fp ({columns},
               PRIMARY KEY (sensor_id, role, host_ip, host_port, peer_ip, peer_port, time, source)
             ) WITHOUT ROWID;
             INSERT INTO v2_fp SELECT * FROM x_os_fingerprint;
             DROP TABLE x_os_fingerprint;
             ALTER TABLE v2_fp RENAME TO x_os_fingerprint;
             CREATE INDEX x_os_fingerprint_flow_os_idx
               ON x_os_fingerprint (sensor_id, flow_id, role, source, time, os_id);
             CREATE INDEX x_os_fingerprint_pending_idx
               ON x_os_fingerprint (sensor_id, host_port, peer_port) WHERE flow_id = 0;
             DELETE FROM x_schema WHERE version >= 3;"
        ))
        .unwrap();
}

fn fingerprint_key_sql(m: &Mirror) -> String {
    m.conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'x_os_fingerprint'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn table_names(m: &Mirror) -> Vec<String> {
    let mut stmt = m
        .conn
        .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_version_2_mirror_is_rekeyed_by_time_and_keeps_every_fingerprint() {
    use crate::records::{OsRole, OsSource};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    let (hash, names) = {
        let mut m = Mirror::open(&path).unwrap();
        m.apply(
            &seg(1),
            &[
                Record::OsFingerprint(fingerprint(OsRole::Client, OsSource::P0fLog, 0, "Linux")),
                Record::OsFingerprint(fingerprint(OsRole::Server, OsSource::Native, 7, "FreeBSD")),
                Record::Flow(flow(
                    1, 7, 1, "10.0.0.1", "10.0.0.2", 1000, 80, 100, 101, 101,
                )),
            ],
        )
        .unwrap();
        assert!(fingerprint_key_sql(&m).contains("PRIMARY KEY (sensor_id, time, role"));
        let hash = m.row_hash("x_os_fingerprint", None).unwrap();
        let names = table_names(&m);
        downgrade_fingerprints_to_version_2(&m);
        assert!(fingerprint_key_sql(&m).contains("PRIMARY KEY (sensor_id, role, host_ip"));
        assert_eq!(m.schema_version().unwrap(), 2);
        (hash, names)
    };
    let m = Mirror::open(&path).unwrap();
    assert_eq!(m.schema_version().unwrap(), MIRROR_SCHEMA_VERSION);
    assert!(fingerprint_key_sql(&m).contains("PRIMARY KEY (sensor_id, time, role"));
    assert_eq!(m.row_hash("x_os_fingerprint", None).unwrap(), hash);
    assert_eq!(
        table_names(&m),
        names,
        "same tables and indexes, none left over"
    );
}

#[test]
fn a_rekeying_cut_between_its_halves_is_finished_at_the_next_open() {
    use crate::records::{OsRole, OsSource};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    let hash = {
        let mut m = Mirror::open(&path).unwrap();
        m.apply(
            &seg(1),
            &[Record::OsFingerprint(fingerprint(
                OsRole::Client,
                OsSource::P0fLog,
                0,
                "Linux",
            ))],
        )
        .unwrap();
        let hash = m.row_hash("x_os_fingerprint", None).unwrap();
        downgrade_fingerprints_to_version_2(&m);
        // The first half ran (fingerprints set aside) and the process died
        // before the second: the DDL of the next open will have made an
        // empty re-keyed table and seeded version 3.
        let version = schema::check_version(&m.conn, "test").unwrap();
        schema::migrate_before_ddl(&m.conn, "test", version).unwrap();
        m.conn.execute_batch(SCHEMA_SQL).unwrap();
        assert_eq!(m.schema_version().unwrap(), MIRROR_SCHEMA_VERSION);
        let rows: i64 = m
            .conn
            .query_row("SELECT count(*) FROM x_os_fingerprint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        hash
    };
    let m = Mirror::open(&path).unwrap();
    assert_eq!(m.row_hash("x_os_fingerprint", None).unwrap(), hash);
    assert!(!table_names(&m).iter().any(|n| n == "x_os_fingerprint_v2"));
}

/// The argus view's argus_dir and argus_status (SQL, schema.sql) equal the
/// Rust rule the export uses (`argus::status_of`, `argus::direction_of`)
/// for every combination of the flags and counts they read.
#[test]
fn the_argus_view_derives_what_the_rust_rule_derives() {
    let (_d, mut m) = open_temp();
    let flags = [0u8, 0x01, 0x02, 0x04, 0x10, 0x12, 0x11, 0x14, 0x13, 0x16];
    let mut records = Vec::new();
    let mut expected = Vec::new();
    let mut id = 0u32;
    for proto in [6u8, 17, 1] {
        for s in flags {
            for d in flags {
                for (sp, dp) in [(1u64, 0u64), (1, 1), (0, 1)] {
                    id += 1;
                    let mut f = flow(1, id, 1, "10.0.0.1", "10.0.0.2", 1000, 80, 100, 101, 101);
                    f.src_port = u16::try_from(id).unwrap();
                    f.ip_proto = proto;
                    f.src.tcp_flags = s;
                    f.dst.tcp_flags = d;
                    f.src.packets = sp;
                    f.dst.packets = dp;
                    expected.push((
                        i64::from(id),
                        argus::direction_of(sp, dp).to_string(),
                        argus::status_of(proto, dp, s, d).to_string(),
                    ));
                    records.push(Record::Flow(f));
                }
            }
        }
    }
    m.apply(&seg(1), &records).unwrap();
    let got: Vec<(i64, String, String)> = m
        .conn
        .prepare("SELECT argus_id, argus_dir, argus_status FROM argus ORDER BY argus_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, expected);
}

fn argus_rows(m: &Mirror) -> Vec<Vec<rusqlite::types::Value>> {
    let mut stmt = m
        .conn
        .prepare("SELECT * FROM argus ORDER BY sensor_id, argus_id")
        .unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A mirror with derived argus rows, a legacy one (its own argus_dir,
/// status, ind, local), a client OS joined from a fingerprint, and an IPv6
/// flow (no argus row).
fn argus_fixture(m: &mut Mirror) {
    use crate::records::{ArgusRecord, OsRole, OsSource};
    let legacy = ArgusRecord {
        sensor_id: 1,
        argus_id: 50,
        ip_proto: 6,
        local: None,
        src_ip: "10.9.0.1".parse().unwrap(),
        dst_ip: "10.9.0.2".parse().unwrap(),
        src_port: 4000,
        dst_port: 25,
        src_pkts: 3,
        dst_pkts: 2,
        src_bytes: 300,
        dst_bytes: 200,
        start_sec: 90,
        end_sec: 95,
        argus_dir: Some(" ->".into()),
        argus_status: Some("TIM".into()),
        argus_ind: Some("x".into()),
        client_os_id: Some(7),
    };
    m.apply(
        &seg(1),
        &[
            Record::OsFingerprint(fingerprint(OsRole::Client, OsSource::Native, 7, "Linux")),
            Record::Flow(flow(
                1, 7, 1, "10.0.0.1", "10.0.0.2", 1000, 80, 100, 101, 101,
            )),
            Record::Flow(flow(1, 8, 2, "10.0.0.3", "10.0.0.2", 1001, 22, 102, 110, 0)),
            Record::Flow(flow(
                2,
                1,
                1,
                "2001:db8::1",
                "2001:db8::2",
                5,
                6,
                103,
                104,
                104,
            )),
            Record::Argus(legacy),
        ],
    )
    .unwrap();
}

/// Turns a current mirror back into what mirror 3 wrote: an argus table
/// (hflow's DDL and indexes) holding the rows the view shows, flow's
/// version 3 indexes, no x_argus_legacy, no version 4 row.
fn downgrade_argus_to_version_3(m: &Mirror) {
    m.conn
        .execute_batch(
            "CREATE TABLE argus_v3 (
                sensor_id INTEGER NOT NULL, argus_id INTEGER NOT NULL, ip_proto INTEGER NOT NULL,
                local INTEGER DEFAULT 0, src_ip INTEGER NOT NULL, dst_ip INTEGER NOT NULL,
                src_port INTEGER NOT NULL, dst_port INTEGER NOT NULL, src_pkts INTEGER NOT NULL,
                dst_pkts INTEGER NOT NULL, src_bytes INTEGER NOT NULL, dst_bytes INTEGER NOT NULL,
                start_sec INTEGER NOT NULL, end_sec INTEGER NOT NULL, argus_dir TEXT,
                argus_status TEXT, argus_ind TEXT, client_os_id INTEGER,
                PRIMARY KEY (sensor_id, argus_id));
             INSERT INTO argus_v3 SELECT * FROM argus;
             DROP VIEW argus;
             DROP TABLE x_argus_legacy;
             ALTER TABLE argus_v3 RENAME TO argus;
             CREATE INDEX argus_client_os_idx ON argus (sensor_id, client_os_id);
             CREATE INDEX argus_start_sec_idx ON argus (sensor_id, start_sec);
             DROP INDEX src_ip_idx; DROP INDEX dst_ip_idx; DROP INDEX src_port_idx;
             DROP INDEX dst_port_idx; DROP INDEX start_sec_idx;
             CREATE INDEX src_ip_idx ON flow (sensor_id, src_ip);
             CREATE INDEX dst_ip_idx ON flow (sensor_id, dst_ip);
             CREATE INDEX src_port_idx ON flow (sensor_id, src_port);
             CREATE INDEX dst_port_idx ON flow (sensor_id, dst_port);
             CREATE INDEX start_sec_idx ON flow (sensor_id, src_start_sec);
             CREATE UNIQUE INDEX flow_natural_key
                 ON flow (sensor_id, src_ip, dst_ip, ip_proto, src_port, dst_port, src_start_sec);
             DROP TABLE x_flow_count;
             DELETE FROM x_schema WHERE version >= 4;",
        )
        .unwrap();
}

#[test]
fn a_version_3_mirror_gets_the_argus_view_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    let (argus, flow_hash, names) = {
        let mut m = Mirror::open(&path).unwrap();
        argus_fixture(&mut m);
        let argus = argus_rows(&m);
        // Four flows, three IPv4: the legacy row keeps its own columns.
        assert_eq!(argus.len(), 3);
        assert!(format!("{argus:?}").contains("TIM"));
        let flow_hash = m.row_hash("flow", None).unwrap();
        let names = table_names(&m);
        downgrade_argus_to_version_3(&m);
        assert_eq!(m.schema_version().unwrap(), 3);
        assert_eq!(argus_rows(&m), argus);
        (argus, flow_hash, names)
    };
    let mut m = Mirror::open(&path).unwrap();
    assert_eq!(m.schema_version().unwrap(), MIRROR_SCHEMA_VERSION);
    assert_eq!(argus_rows(&m), argus, "argus answers the same rows");
    assert_eq!(m.row_hash("flow", None).unwrap(), flow_hash);
    assert_eq!(
        table_names(&m),
        names,
        "same tables and indexes as a new mirror"
    );
    // x_flow_count was counted once: three IPv4 flows, one IPv6.
    assert_eq!(m.flow_count().unwrap(), 4);
    // Only the row the view cannot derive is kept aside.
    let kept: i64 = m
        .conn
        .query_row("SELECT count(*) FROM x_argus_legacy", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 1);
    // A newer version of the legacy flow makes its argus row derived again.
    let mut newer = flow(1, 50, 2, "10.9.0.1", "10.9.0.2", 4000, 25, 90, 96, 96);
    newer.src.tcp_flags = 0x02;
    m.apply(&seg(9), &[Record::Flow(newer)]).unwrap();
    let row: (String, String) = m
        .conn
        .query_row(
            "SELECT argus_dir, argus_status FROM argus WHERE argus_id = 50",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(row, ("<->".to_string(), "CON".to_string()));
    // A newer version updates its row: no insert counted.
    assert_eq!(m.flow_count().unwrap(), 4);
    // Deletions are counted too (mirror 5: by their writer, no trigger).
    let mut closed = flow(1, 8, 3, "10.0.0.3", "10.0.0.2", 1001, 22, 102, 110, 0);
    closed.closed = true;
    m.apply(&seg(10), &[Record::Flow(closed)]).unwrap();
    assert_eq!(m.purge_flows_before(u32::MAX).unwrap(), 1);
    assert_eq!(m.flow_count().unwrap(), 3);
    assert_eq!(m.flow_count().unwrap(), counted_flows(&m));
}

/// Rows in flow and x_flow6, counted.
fn counted_flows(m: &Mirror) -> u64 {
    m.conn
        .query_row(
            "SELECT (SELECT count(*) FROM flow) + (SELECT count(*) FROM x_flow6)",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}

#[test]
fn an_argus_migration_cut_between_its_halves_is_finished_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    let argus = {
        let mut m = Mirror::open(&path).unwrap();
        argus_fixture(&mut m);
        let argus = argus_rows(&m);
        downgrade_argus_to_version_3(&m);
        // The first half and the DDL ran, then the process died.
        let version = schema::check_version(&m.conn, "test").unwrap();
        schema::migrate_before_ddl(&m.conn, "test", version).unwrap();
        m.conn.execute_batch(SCHEMA_SQL).unwrap();
        // Between the halves the view derives every row.
        assert!(!format!("{:?}", argus_rows(&m)).contains("TIM"));
        argus
    };
    let m = Mirror::open(&path).unwrap();
    assert_eq!(argus_rows(&m), argus);
    assert!(!table_names(&m).contains(&"x_argus_v3".to_string()));
}

/// A bulk load (`begin_bulk` .. `end_bulk`: no natural key index, no
/// version lookups for flow ids not seen since the mirror was empty) leaves
/// exactly the rows, versions and counts that applying the same segments
/// one by one with every index leaves: second versions, a natural-key clash
/// (won by the lower id, which arrives last), IPv6, fingerprints before and
/// after their flows.
#[test]
fn a_bulk_load_leaves_what_row_by_row_apply_leaves() {
    use crate::records::{OsRole, OsSource};
    let a = flow(1, 7, 1, "10.0.0.1", "10.0.0.2", 1000, 80, 100, 101, 101);
    let mut a2 = a.clone();
    a2.version = 3;
    a2.closed = true;
    a2.src.packets = 5;
    let mut clash = flow(1, 9, 2, "10.0.0.5", "10.0.0.2", 1005, 80, 100, 100, 0);
    let mut winner = clash.clone();
    winner.flow_id = 3;
    winner.version = 4;
    clash.src.packets = 2;
    let six = flow(1, 11, 2, "2001:db8::1", "2001:db8::2", 1, 2, 5, 6, 6);
    let segments = vec![
        (
            seg(1),
            vec![
                Record::OsFingerprint(fingerprint(OsRole::Client, OsSource::Native, 7, "Linux")),
                Record::Flow(a),
            ],
        ),
        (seg(2), vec![Record::Flow(clash), Record::Flow(six)]),
        (
            seg(3),
            vec![
                Record::Flow(a2),
                Record::OsFingerprint(fingerprint(OsRole::Server, OsSource::Native, 7, "BSD")),
            ],
        ),
        (seg(4), vec![Record::Flow(winner)]),
    ];
    let (_d1, mut one_by_one) = open_temp();
    for (id, records) in &segments {
        one_by_one.apply(id, records).unwrap();
    }
    let (_d2, mut bulk) = open_temp();
    bulk.begin_bulk().unwrap();
    assert!(
        bulk.fresh.is_some(),
        "an empty mirror skips version lookups"
    );
    for (id, records) in &segments {
        bulk.apply(id, records).unwrap();
    }
    let no_natural_key: bool = bulk
        .conn
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'src_ip_idx')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(no_natural_key, "the natural key is built at the end");
    bulk.end_bulk().unwrap();
    assert_eq!(content_hashes(&bulk), content_hashes(&one_by_one));
    for table in ["flow", "x_flow6", "x_flow_version", "x_os_fingerprint"] {
        assert_eq!(
            bulk.row_hash(table, None).unwrap(),
            one_by_one.row_hash(table, None).unwrap(),
            "{table}"
        );
    }
    assert_eq!(bulk.flow_count().unwrap(), 3);
    assert_eq!(one_by_one.flow_count().unwrap(), 3);
    assert_eq!(counted_flows(&bulk), 3);
    assert_eq!(table_names(&bulk), table_names(&one_by_one));
}
