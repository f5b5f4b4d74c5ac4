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
use rusqlite::{Connection, Row};

use super::apply::FLOW_COLUMNS;
use super::{Ctx, FlowQuery, HostSide, MirrorError};
use crate::records::{FlowDirection, FlowRecord};

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
    fn new((addr, prefix): (IpAddr, u8)) -> Result<Self, String> {
        match addr {
            IpAddr::V4(a) => {
                let mask = prefix_mask_u32(prefix)
                    .ok_or_else(|| format!("IPv4 prefix /{prefix} is longer than 32"))?;
                let lo = u32::from(a) & mask;
                Ok(HostRange::V4 { lo, hi: lo | !mask })
            }
            IpAddr::V6(a) => {
                let mask = prefix_mask_u128(prefix)
                    .ok_or_else(|| format!("IPv6 prefix /{prefix} is longer than 128"))?;
                let lo = u128::from(a) & mask;
                Ok(HostRange::V6 {
                    lo: lo.to_be_bytes(),
                    hi: (lo | !mask).to_be_bytes(),
                })
            }
        }
    }

    /// The condition on `flow` (integer addresses); None if no IPv4 flow can match.
    fn flow_clause(&self, side: HostSide, p: &mut Params) -> Option<String> {
        let HostRange::V4 { lo, hi } = self else {
            return None;
        };
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
pub(super) fn prefix_mask_u32(prefix: u8) -> Option<u32> {
    match prefix {
        0 => Some(0),
        1..=32 => Some(u32::MAX << (32 - prefix)),
        _ => None,
    }
}

pub(super) fn prefix_mask_u128(prefix: u8) -> Option<u128> {
    match prefix {
        0 => Some(0),
        1..=128 => Some(u128::MAX << (128 - prefix)),
        _ => None,
    }
}

/// Filters every table shares (column names are the same in both).
fn common_filters(q: &FlowQuery, p: &mut Params) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(sensor) = q.sensor {
        w.push(format!("sensor_id = {}", p.push(sensor)));
    }
    if let Some(port) = q.port {
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

/// One half of the UNION: a flow table joined to its versions, filtered.
fn select_from(table: &str, filters: &[String]) -> String {
    let cols = FLOW_COLUMNS.join(", ");
    let mut sql = format!(
        "SELECT {cols}, coalesce(version, 0) AS version, coalesce(closed, 0) AS closed \
         FROM {table} LEFT JOIN x_flow_version USING (sensor_id, flow_id)"
    );
    if !filters.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&filters.join(" AND "));
    }
    sql
}

/// Builds the whole statement for `q`.
fn build(q: &FlowQuery) -> Result<(String, Params), String> {
    let host = q.host.map(HostRange::new).transpose()?;
    let mut p = Params::default();
    let common = common_filters(q, &mut p);
    let mut parts = Vec::new();
    // An IPv6 host cannot match hflow's IPv4 table: leave it out.
    let flow_host = host.as_ref().map(|h| h.flow_clause(q.host_side, &mut p));
    if !matches!(flow_host, Some(None)) {
        let mut f = common.clone();
        f.extend(flow_host.flatten());
        parts.push(select_from("flow", &f));
    }
    let mut f6 = common;
    f6.extend(host.as_ref().map(|h| h.flow6_clause(q.host_side, &mut p)));
    parts.push(select_from("x_flow6", &f6));
    // LIMIT -1 is SQLite's "no limit".
    let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT * FROM ({}) ORDER BY src_start_sec, src_start_msec, sensor_id, flow_id LIMIT {}",
        parts.join(" UNION ALL "),
        p.push(limit)
    );
    Ok((sql, p))
}

pub(super) fn flows(
    conn: &Connection,
    path: &str,
    q: &FlowQuery,
) -> Result<Vec<FlowRecord>, MirrorError> {
    let (sql, params) = build(q).map_err(|what| MirrorError::InvalidQuery {
        path: path.to_owned(),
        what,
    })?;
    let mut stmt = conn.prepare_cached(&sql).ctx(path, "prepare flow query")?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.0.iter()))
        .ctx(path, "run flow query")?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().ctx(path, "read flow row")? {
        out.push(decode(row, path)?);
    }
    Ok(out)
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

    #[test]
    fn prefix_masks_at_the_edges() {
        assert_eq!(prefix_mask_u32(0), Some(0));
        assert_eq!(prefix_mask_u32(32), Some(u32::MAX));
        assert_eq!(prefix_mask_u32(24), Some(0xffff_ff00));
        assert_eq!(prefix_mask_u32(33), None);
        assert_eq!(prefix_mask_u128(0), Some(0));
        assert_eq!(prefix_mask_u128(128), Some(u128::MAX));
        assert_eq!(prefix_mask_u128(129), None);
    }

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
