//! `flows()`: Walleye's connection-table filters over `flow` and `x_flow6`.
//!
//! Host filters are address ranges: a prefix `net/m` is every address between
//! `net` with the host bits cleared and `net` with them set. For IPv4 that is
//! exactly Walleye's `ip >> (32-m) = net >> (32-m)` (including m = 0, all
//! addresses, and m = 32, one address), but written as `BETWEEN` it can use
//! the `(sensor_id, src_ip)` indexes. For `x_flow6` the bounds are octet
//! blobs: SQLite compares blobs with memcmp, which orders equal-length
//! big-endian octets like the numbers they encode; the `length()` test keeps
//! 4-byte and 16-byte blobs apart.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::apply::FLOW_COLUMNS;
use super::{Ctx, FlowQuery, HostSide, MirrorError};
use crate::records::{FlowDirection, FlowRecord, IcmpFirst};

/// Positional parameters of a query being built.
#[derive(Default)]
struct Params(Vec<Value>);

impl Params {
    /// Adds a value, returning its placeholder.
    fn push(&mut self, v: impl Into<Value>) -> String {
        self.0.push(v.into());
        format!("?{}", self.0.len())
    }
}

/// A host filter translated into inclusive bounds for each table.
enum HostRange {
    V4 { lo: u32, hi: u32 },
    V6 { lo: [u8; 16], hi: [u8; 16] },
}

impl HostRange {
    fn new((addr, prefix): (IpAddr, u8)) -> Result<Self, crate::net::NetError> {
        Ok(match crate::net::range(addr, prefix)? {
            crate::net::Range::V4(lo, hi) => HostRange::V4 { lo, hi },
            crate::net::Range::V6(lo, hi) => HostRange::V6 { lo, hi },
        })
    }

    /// The condition on `flow` (integer addresses); None if no IPv4 flow can match.
    fn flow_clause(&self, side: HostSide, p: &mut Params) -> Option<String> {
        let HostRange::V4 { lo, hi } = self else {
            return None;
        };
        if lo == hi {
            // One address: an equality, so the index (which ends in the
            // start time) walks its flows in time order.
            let a = p.push(*lo);
            return Some(match side {
                HostSide::Either => format!("(src_ip = {a} OR dst_ip = {a})"),
                HostSide::Client => format!("src_ip = {a}"),
                HostSide::Server => format!("dst_ip = {a}"),
            });
        }
        let (lo, hi) = (p.push(*lo), p.push(*hi));
        Some(match side {
            HostSide::Either => {
                format!("(src_ip BETWEEN {lo} AND {hi} OR dst_ip BETWEEN {lo} AND {hi})")
            }
            HostSide::Client => format!("src_ip BETWEEN {lo} AND {hi}"),
            HostSide::Server => format!("dst_ip BETWEEN {lo} AND {hi}"),
        })
    }

    /// The condition on `x_flow6` (octet blobs of 4 or 16 bytes).
    fn flow6_clause(&self, side: HostSide, p: &mut Params) -> String {
        let (lo, hi): (Vec<u8>, Vec<u8>) = match self {
            HostRange::V4 { lo, hi } => (lo.to_be_bytes().to_vec(), hi.to_be_bytes().to_vec()),
            HostRange::V6 { lo, hi } => (lo.to_vec(), hi.to_vec()),
        };
        let len = lo.len();
        let (lo, hi) = (p.push(lo), p.push(hi));
        let src = format!("(length(src_ip) = {len} AND src_ip BETWEEN {lo} AND {hi})");
        let dst = format!("(length(dst_ip) = {len} AND dst_ip BETWEEN {lo} AND {hi})");
        match side {
            HostSide::Either => format!("({src} OR {dst})"),
            HostSide::Client => src,
            HostSide::Server => dst,
        }
    }
}

/// Network mask of an IPv4 prefix; the explicit 0 case avoids a 32-bit shift.
/// Filters every table shares (column names are the same in both), except
/// the sensor, which each arm names (see [`flows`]), and the port when an
/// arm splits it by side.
fn common_filters(q: &FlowQuery, p: &mut Params, port_in_arm: bool) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(port) = q.port.filter(|_| !port_in_arm) {
        let port = p.push(port);
        w.push(format!("(src_port = {port} OR dst_port = {port})"));
    }
    if let Some(proto) = q.proto {
        w.push(format!("ip_proto = {}", p.push(proto)));
    }
    if let Some(since) = q.since {
        // Walleye's flow end: GREATEST(src_end_sec, dst_end_sec).
        w.push(format!(
            "max(src_end_sec, dst_end_sec) >= {}",
            p.push(since)
        ));
    }
    if let Some(until) = q.until {
        w.push(format!("src_start_sec <= {}", p.push(until)));
    }
    w
}

/// Which filter finds an arm's rows, and so which index walks them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arm {
    /// No host or port filter: the sensor's flows by start time.
    Time,
    /// One side of the host filter.
    Host(HostSide),
    /// One side of the port filter (no host filter).
    Port(HostSide),
}

/// The arms of `q`: a filter on either end is two arms, one per end, so
/// each is an equality (or range) on one indexed column.
fn arms(q: &FlowQuery) -> Vec<Arm> {
    let sides = |side: HostSide| match side {
        HostSide::Either => vec![HostSide::Client, HostSide::Server],
        one => vec![one],
    };
    if q.host.is_some() {
        sides(q.host_side).into_iter().map(Arm::Host).collect()
    } else if q.port.is_some() {
        sides(HostSide::Either).into_iter().map(Arm::Port).collect()
    } else {
        vec![Arm::Time]
    }
}

/// The statement of one arm over one table and one sensor, ordered as
/// [`flows`] returns rows; None if no row of `table` can match (an IPv6
/// host and hflow's IPv4 table).
fn arm_sql(
    q: &FlowQuery,
    host: Option<&HostRange>,
    table: &str,
    sensor: u32,
    arm: Arm,
) -> Option<(String, Params)> {
    let mut p = Params::default();
    let mut w = vec![format!("sensor_id = {}", p.push(sensor))];
    let mut indexed = "";
    match (arm, host) {
        (Arm::Host(side), Some(h)) => {
            let clause = if table == "flow" {
                h.flow_clause(side, &mut p)?
            } else {
                h.flow6_clause(side, &mut p)
            };
            // Without statistics SQLite may walk start_sec_idx for the
            // ORDER BY instead and read every flow for a rare host. The
            // natural key (src_ip_idx) is UNIQUE, so a bulk load never
            // drops it.
            if table == "flow" && side == HostSide::Client {
                indexed = " INDEXED BY src_ip_idx";
            }
            w.push(clause);
        }
        (Arm::Port(side), _) => {
            let col = if side == HostSide::Client {
                "src_port"
            } else {
                "dst_port"
            };
            if let Some(port) = q.port {
                w.push(format!("{col} = {}", p.push(port)));
            }
        }
        _ => {}
    }
    w.extend(common_filters(q, &mut p, matches!(arm, Arm::Port(_))));
    let cols = FLOW_COLUMNS.join(", ");
    // LIMIT -1 is SQLite's "no limit".
    let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {cols}, coalesce(version, 0) AS version, coalesce(closed, 0) AS closed \
         FROM {table}{indexed} LEFT JOIN x_flow_version USING (sensor_id, flow_id) \
         WHERE {} ORDER BY src_start_sec, src_start_msec, flow_id LIMIT {}",
        w.join(" AND "),
        p.push(limit)
    );
    Some((sql, p))
}

/// The sensors with rows in `table`, each found by one index probe (a
/// skip over the primary key), not by reading the table.
fn sensors_of(conn: &Connection, table: &str) -> rusqlite::Result<Vec<u32>> {
    let sql = format!(
        "WITH RECURSIVE s(id) AS (SELECT min(sensor_id) FROM {table} \
         UNION ALL SELECT (SELECT min(sensor_id) FROM {table} WHERE sensor_id > s.id) \
         FROM s WHERE s.id IS NOT NULL) SELECT id FROM s WHERE id IS NOT NULL"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Flows matching `q`, ordered by (src_start_sec, src_start_msec,
/// sensor_id, flow_id), at most `q.limit`.
///
/// One query per table, sensor and arm, each walking an index in that
/// order (start_sec_idx, or the host or port index, which end in the start
/// time) and stopping at the limit; the arms are merged here. So a page of
/// a large mirror reads about `limit` rows per arm, never the whole table,
/// except for a host prefix (a range of addresses, sorted after the
/// lookup).
pub(super) fn flows(
    conn: &Connection,
    path: &str,
    q: &FlowQuery,
) -> Result<Vec<FlowRecord>, MirrorError> {
    let host = q
        .host
        .map(HostRange::new)
        .transpose()
        .map_err(|e| MirrorError::InvalidQuery {
            path: path.to_owned(),
            what: e.to_string(),
        })?;
    let mut out = Vec::new();
    for table in ["flow", "x_flow6"] {
        let sensors = match q.sensor {
            Some(s) => vec![s],
            None => sensors_of(conn, table).ctx(path, "list the sensors of the flows")?,
        };
        for sensor in sensors {
            for arm in arms(q) {
                let Some((sql, params)) = arm_sql(q, host.as_ref(), table, sensor, arm) else {
                    continue;
                };
                let mut stmt = conn.prepare_cached(&sql).ctx(path, "prepare flow query")?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(params.0.iter()))
                    .ctx(path, "run flow query")?;
                while let Some(row) = rows.next().ctx(path, "read flow row")? {
                    out.push(decode(row, path)?);
                }
            }
        }
    }
    out.sort_by_key(|f| (f.src.start_sec, f.src.start_msec, f.sensor_id, f.flow_id));
    // A flow matching both arms (the host at both ends) came twice.
    out.dedup_by_key(|f| (f.sensor_id, f.flow_id));
    if let Some(limit) = q.limit {
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    fill_icmp_first(conn, path, &mut out)?;
    Ok(out)
}

/// Each ICMP flow's first type and code, from `x_flow_icmp` (one key
/// lookup per ICMP flow; other flows have none).
fn fill_icmp_first(
    conn: &Connection,
    path: &str,
    flows: &mut [FlowRecord],
) -> Result<(), MirrorError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT icmp_type, icmp_code FROM x_flow_icmp WHERE sensor_id = ?1 AND flow_id = ?2",
        )
        .ctx(path, "prepare the ICMP type query")?;
    for f in flows.iter_mut().filter(|f| matches!(f.ip_proto, 1 | 58)) {
        f.icmp_first = stmt
            .query_row(params![f.sensor_id, f.flow_id], |r| {
                Ok(IcmpFirst {
                    icmp_type: r.get(0)?,
                    code: r.get(1)?,
                })
            })
            .optional()
            .ctx(path, "read x_flow_icmp")?;
    }
    Ok(())
}

/// A stored address: integer in `flow`, 4- or 16-byte blob in `x_flow6`.
pub(super) fn decode_addr(v: ValueRef<'_>) -> Option<IpAddr> {
    match v {
        ValueRef::Integer(i) => u32::try_from(i).ok().map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        ValueRef::Blob(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b)
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            16 => <[u8; 16]>::try_from(b)
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        },
        _ => None,
    }
}

/// One result row (FLOW_COLUMNS, version, closed) back into a record.
fn decode(row: &Row<'_>, path: &str) -> Result<FlowRecord, MirrorError> {
    let addr = |i: usize| -> Result<IpAddr, MirrorError> {
        let v = row.get_ref(i).ctx(path, "read flow address")?;
        decode_addr(v).ok_or_else(|| MirrorError::Corrupt {
            path: path.to_owned(),
            table: "flow/x_flow6",
            what: format!("{} is {v:?}, not an address", FLOW_COLUMNS[i]),
        })
    };
    let (src_ip, dst_ip) = (addr(2)?, addr(3)?);
    let fields = || -> rusqlite::Result<FlowRecord> {
        Ok(FlowRecord {
            sensor_id: row.get(0)?,
            flow_id: row.get(1)?,
            version: get_u64(row, 32)?,
            src_ip,
            dst_ip,
            src_port: row.get(4)?,
            dst_port: row.get(5)?,
            ip_proto: row.get(6)?,
            marker_flags: row.get(8)?,
            src: direction(row, 9)?,
            dst: direction(row, 19)?,
            client_os_id: row.get(29)?,
            server_os_id: row.get(30)?,
            is_local: row.get(31)?,
            closed: row.get::<_, i64>(33)? != 0,
            evicted: row.get::<_, i64>(33)? == super::CLOSED_EVICTED,
            icmp_first: None,
        })
    };
    fields().ctx(path, "decode flow row")
}

/// A stored counter or version (a non-negative i64; rusqlite's u64 support
/// is behind a feature this crate does not enable).
pub(super) fn get_u64(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

/// The ten per-direction columns starting at `at` (start_sec .. icmp_seen).
fn direction(row: &Row<'_>, at: usize) -> rusqlite::Result<FlowDirection> {
    Ok(FlowDirection {
        start_sec: row.get(at)?,
        start_msec: row.get(at + 1)?,
        end_sec: row.get(at + 2)?,
        end_msec: row.get(at + 3)?,
        packets: get_u64(row, at + 4)?,
        bytes: get_u64(row, at + 5)?,
        ip_flags: row.get(at + 6)?,
        tcp_flags: row.get(at + 7)?,
        icmp_packets: row.get(at + 8)?,
        icmp_seen: row.get(at + 9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range form agrees with Walleye's shift form for every prefix length.
    #[test]
    fn range_equals_walleye_shift() {
        let net = u32::from(Ipv4Addr::new(10, 1, 2, 3));
        let probes = [
            0u32,
            1,
            net,
            net ^ 1,
            net ^ 0x100,
            net ^ 0x8000_0000,
            u32::MAX,
            0x0a01_0000,
        ];
        for m in 0..=32u8 {
            let Ok(HostRange::V4 { lo, hi }) = HostRange::new((IpAddr::V4(Ipv4Addr::from(net)), m))
            else {
                panic!("v4 range");
            };
            for ip in probes {
                // 64-bit arithmetic as in MySQL, so a shift by 32 is defined.
                let shift = 32 - u64::from(m);
                let walleye = (u64::from(ip) >> shift) == (u64::from(net) >> shift);
                assert_eq!((lo..=hi).contains(&ip), walleye, "ip {ip:#x} /{m}");
            }
        }
    }
}
