//! Read-only queries behind the web UI (`src/web/`): Walleye's connection
//! table with keyset pagination, aggregates, per-sensor activity windows,
//! time series, top ports, one flow's detail and its IDS alerts.
//!
//! Owns that SQL and nothing else; writes nothing. Every value from a request
//! reaches SQLite as a bound parameter, never as SQL text: the only text
//! spliced into statements is fixed column and table names chosen here.
//!
//! Pagination is on the key (src_start_sec, sensor_id, flow_id), newest
//! first: one query per sensor, each served in order by hflow's own
//! `start_sec_idx` (sensor_id, src_start_sec, + the primary key's flow_id),
//! merged here. No page ever counts or skips the rows before it, and no
//! index beyond the legacy schema's is needed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};
use serde::Serialize;

use super::query::{decode_addr, get_u64, prefix_mask_u32, prefix_mask_u128};
use super::{Ctx, Mirror, MirrorError};

/// Which end of a flow a host or port filter applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Side {
    #[default]
    Either,
    Src,
    Dst,
}

/// The position after which the next page starts (exclusive), newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub start_sec: u32,
    pub sensor_id: u32,
    pub flow_id: u32,
}

impl Cursor {
    /// The text form used in URLs: `start_sec.sensor_id.flow_id`.
    pub fn to_text(self) -> String {
        format!("{}.{}.{}", self.start_sec, self.sensor_id, self.flow_id)
    }

    pub fn parse(s: &str) -> Option<Cursor> {
        let mut it = s.split('.');
        let c = Cursor {
            start_sec: it.next()?.parse().ok()?,
            sensor_id: it.next()?.parse().ok()?,
            flow_id: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(c)
    }
}

/// The connection table's filters (Walleye's), all optional.
#[derive(Debug, Clone, Default)]
pub struct ConnQuery {
    pub sensor: Option<u32>,
    /// Flows that started at or after this time.
    pub since: Option<u32>,
    /// Flows that started at or before this time.
    pub until: Option<u32>,
    /// Address or network and its prefix length.
    pub ip: Option<(IpAddr, u8)>,
    pub ip_side: Side,
    pub port: Option<u16>,
    pub port_side: Side,
    pub proto: Option<u8>,
    /// Only flows with packets both ways.
    pub bidirectional: bool,
    /// Only flows with at least this many bytes (both directions).
    pub min_bytes: Option<u64>,
    /// Only flows with an IDS alert.
    pub alerts_only: bool,
    /// Start after this position (the previous page's `next`).
    pub after: Option<Cursor>,
    /// Rows per page (1..=1000).
    pub limit: u32,
}

/// One row of the connection table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnRow {
    pub sensor_id: u32,
    pub flow_id: u32,
    pub src_ip: String,
    pub dst_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub ip_proto: u8,
    pub start_sec: u32,
    pub start_msec: u32,
    /// Walleye's flow end: the later of both directions' ends, in ms.
    pub end_ms: u64,
    pub src_packets: u64,
    pub src_bytes: u64,
    pub dst_packets: u64,
    pub dst_bytes: u64,
    /// 1: initiated by a honeypot (outbound).
    pub is_local: u8,
    pub client_os_id: u32,
    pub server_os_id: u32,
    /// IDS alerts on the flow.
    pub alerts: u64,
    /// Sebek processes with a socket on the flow.
    pub processes: u64,
    /// The first of them (mirror process_id), for a link to its tree.
    pub process_id: Option<u32>,
}

/// One page of the connection table.
#[derive(Debug, Clone, Serialize)]
pub struct ConnPage {
    pub rows: Vec<ConnRow>,
    /// Cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// Grouping key of the aggregate view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            GroupBy::SrcIp => "src_ip",
            GroupBy::DstIp => "dst_ip",
            GroupBy::SrcPort => "src_port",
            GroupBy::DstPort => "dst_port",
        }
    }
}

/// One group of the aggregate view.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AggRow {
    pub key: String,
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    pub sensors: Vec<u32>,
    pub first_sec: u32,
    pub last_sec: u32,
}

/// A sensor row of hflow's `sensor` table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SensorRow {
    pub sensor_id: u32,
    pub install_sec: i64,
    pub last_upd_sec: i64,
    pub state: String,
    pub name: String,
}

/// Flows and sebek processes of one sensor since a time.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Activity {
    pub inbound_flows: u64,
    pub outbound_flows: u64,
    pub bytes: u64,
    pub sebek_processes: u64,
    /// Start of the newest flow in the mirror (0 when none).
    pub newest_flow_sec: u32,
}

/// One point of the time series: flows and bytes started in a bucket.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SeriesPoint {
    pub sensor_id: u32,
    pub t: u32,
    pub flows: u64,
    pub bytes: u64,
}

/// An IDS alert on a flow.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AlertView {
    pub sec: i64,
    pub priority: i64,
    pub sig_gen: i64,
    pub sig_id: i64,
    pub sig_name: String,
    pub classification: i64,
}

/// Positional parameters of a statement being built.
#[derive(Default)]
struct Params(Vec<Value>);

impl Params {
    fn push(&mut self, v: impl Into<Value>) -> String {
        self.0.push(v.into());
        format!("?{}", self.0.len())
    }
}

/// Inclusive address bounds of `addr/prefix` as the table stores them.
enum Bounds {
    V4(u32, u32),
    V6([u8; 16], [u8; 16]),
}

fn bounds((addr, prefix): (IpAddr, u8)) -> Result<Bounds, String> {
    match addr {
        IpAddr::V4(a) => {
            let mask = prefix_mask_u32(prefix)
                .ok_or_else(|| format!("IPv4 prefix /{prefix} is longer than 32"))?;
            let lo = u32::from(a) & mask;
            Ok(Bounds::V4(lo, lo | !mask))
        }
        IpAddr::V6(a) => {
            let mask = prefix_mask_u128(prefix)
                .ok_or_else(|| format!("IPv6 prefix /{prefix} is longer than 128"))?;
            let lo = u128::from(a) & mask;
            Ok(Bounds::V6(lo.to_be_bytes(), (lo | !mask).to_be_bytes()))
        }
    }
}

fn sides(side: Side) -> &'static [&'static str] {
    match side {
        Side::Either => &["src", "dst"],
        Side::Src => &["src"],
        Side::Dst => &["dst"],
    }
}

/// The WHERE terms of `q` for `table` ("flow" or "x_flow6"); None when no
/// row of that table can match (an IPv6 filter on the IPv4 table).
fn filters(
    q: &ConnQuery,
    table: &str,
    p: &mut Params,
    with_cursor: bool,
    driver: Option<Driver>,
) -> Result<Option<Vec<String>>, String> {
    // `+column` keeps SQLite from using that column's index, so that the
    // chosen plan (`driver`) is the one SQLite runs.
    let plus_for = |d: Driver| match driver {
        Some(x) if x != d => "+",
        _ => "",
    };
    let mut w = Vec::new();
    if let Some(s) = q.sensor {
        w.push(format!("sensor_id = {}", p.push(s)));
    }
    if let Some(t) = q.since {
        w.push(format!("src_start_sec >= {}", p.push(t)));
    }
    if let Some(t) = q.until {
        w.push(format!("src_start_sec <= {}", p.push(t)));
    }
    if let Some(host) = q.ip {
        let b = bounds(host)?;
        let plus = plus_for(Driver::Host);
        let mut alts = Vec::new();
        match (table, &b) {
            ("flow", Bounds::V6(..)) => return Ok(None),
            ("flow", Bounds::V4(lo, hi)) => {
                let (lo, hi) = (p.push(*lo), p.push(*hi));
                for s in sides(q.ip_side) {
                    alts.push(format!("{plus}{s}_ip BETWEEN {lo} AND {hi}"));
                }
            }
            _ => {
                let (lo, hi): (Vec<u8>, Vec<u8>) = match b {
                    Bounds::V4(lo, hi) => (lo.to_be_bytes().to_vec(), hi.to_be_bytes().to_vec()),
                    Bounds::V6(lo, hi) => (lo.to_vec(), hi.to_vec()),
                };
                let len = lo.len();
                let (lo, hi) = (p.push(lo), p.push(hi));
                for s in sides(q.ip_side) {
                    alts.push(format!(
                        "(length({s}_ip) = {len} AND {plus}{s}_ip BETWEEN {lo} AND {hi})"
                    ));
                }
            }
        }
        w.push(format!("({})", alts.join(" OR ")));
    }
    if let Some(port) = q.port {
        let plus = plus_for(Driver::Port);
        let port = p.push(port);
        let alts: Vec<String> = sides(q.port_side)
            .iter()
            .map(|s| format!("{plus}{s}_port = {port}"))
            .collect();
        w.push(format!("({})", alts.join(" OR ")));
    }
    if let Some(proto) = q.proto {
        w.push(format!("ip_proto = {}", p.push(proto)));
    }
    if q.bidirectional {
        w.push("dst_packets > 0".into());
    }
    if let Some(n) = q.min_bytes {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        w.push(format!("src_bytes + dst_bytes >= {}", p.push(n)));
    }
    if q.alerts_only {
        // Driven from the (small) ids table when SQLite finds that cheaper.
        w.push(format!(
            "flow_id IN (SELECT i.flow_id FROM ids i WHERE i.sensor_id = {table}.sensor_id)"
        ));
    }
    // The page position, for one sensor (with_cursor is only set when the
    // query is for one sensor): rows after (t, s, f) in the order
    // (start DESC, sensor DESC, flow DESC), written so that hflow's
    // (sensor_id, src_start_sec [, flow_id]) index seeks straight to it.
    if with_cursor && let (Some(c), Some(x)) = (q.after, q.sensor) {
        let t = p.push(c.start_sec);
        match x.cmp(&c.sensor_id) {
            std::cmp::Ordering::Less => w.push(format!("src_start_sec <= {t}")),
            std::cmp::Ordering::Greater => w.push(format!("src_start_sec < {t}")),
            std::cmp::Ordering::Equal => {
                let f = p.push(c.flow_id);
                w.push(format!("(src_start_sec, flow_id) < ({t}, {f})"));
            }
        }
    }
    Ok(Some(w))
}

fn where_clause(w: &[String]) -> String {
    if w.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", w.join(" AND "))
    }
}

const ROW_COLUMNS: &str = "sensor_id, flow_id, src_ip, dst_ip, src_port, dst_port, ip_proto, \
    src_start_sec, src_start_msec, \
    max(src_end_sec * 1000 + src_end_msec, dst_end_sec * 1000 + dst_end_msec), \
    src_packets, src_bytes, dst_packets, dst_bytes, is_local, client_os_id, server_os_id";

fn addr_text(row: &Row<'_>, i: usize, path: &str) -> Result<String, MirrorError> {
    let v = row.get_ref(i).ctx(path, "read flow address")?;
    decode_addr(v)
        .map(|a| a.to_string())
        .ok_or_else(|| MirrorError::Corrupt {
            path: path.to_owned(),
            table: "flow/x_flow6",
            what: format!("column {i} is {v:?}, not an address"),
        })
}

fn conn_row(row: &Row<'_>, path: &str) -> Result<ConnRow, MirrorError> {
    let (src_ip, dst_ip) = (addr_text(row, 2, path)?, addr_text(row, 3, path)?);
    let fields = || -> rusqlite::Result<ConnRow> {
        Ok(ConnRow {
            sensor_id: row.get(0)?,
            flow_id: row.get(1)?,
            src_ip,
            dst_ip,
            src_port: row.get(4)?,
            dst_port: row.get(5)?,
            ip_proto: row.get(6)?,
            start_sec: row.get(7)?,
            start_msec: row.get(8)?,
            end_ms: get_u64(row, 9)?,
            src_packets: get_u64(row, 10)?,
            src_bytes: get_u64(row, 11)?,
            dst_packets: get_u64(row, 12)?,
            dst_bytes: get_u64(row, 13)?,
            is_local: row.get(14)?,
            client_os_id: row.get(15)?,
            server_os_id: row.get(16)?,
            alerts: 0,
            processes: 0,
            process_id: None,
        })
    };
    fields().ctx(path, "decode flow row")
}

fn bad(path: &str, what: String) -> MirrorError {
    MirrorError::InvalidQuery {
        path: path.to_owned(),
        what,
    }
}

/// Every sensor id with rows in `table`, by hopping along the primary key
/// (one index seek per sensor, whatever the number of rows).
fn sensor_ids(conn: &Connection, table: &str) -> rusqlite::Result<Vec<u32>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT min(sensor_id) FROM {table} WHERE sensor_id > ?1"
    ))?;
    let mut out = Vec::new();
    let mut after: i64 = -1;
    while let Some(s) = stmt.query_row(params![after], |r| r.get::<_, Option<u32>>(0))? {
        out.push(s);
        after = i64::from(s);
    }
    Ok(out)
}

/// Matches counted before choosing a plan; more than this and a
/// time-ordered scan finds a page sooner than sorting the matches.
const PLAN_CAP: i64 = 5000;

/// What finds one sensor's rows for a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// hflow's (sensor_id, src_start_sec) index, in order, filtering as it goes.
    Time,
    /// The (sensor_id, src_ip) / (sensor_id, dst_ip) indexes, then a sort.
    Host,
    /// The (sensor_id, src_port) / (sensor_id, dst_port) indexes, then a sort.
    Port,
    /// The ids table's (sensor_id, flow_id) index, then a sort.
    Alerts,
}

/// Chooses the plan for one sensor's page: a capped count of the matches
/// of each selective filter alone (host, port, IDS alerts) costs at most
/// PLAN_CAP index entries each; the filter with the fewest matches drives
/// the query if they are under the cap, else a time-ordered scan does (a
/// common filter then costs about limit x rows / matches rows).
fn choose_driver(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    table: &str,
) -> Result<Driver, MirrorError> {
    let base = ConnQuery {
        sensor: q.sensor,
        limit: q.limit,
        ..ConnQuery::default()
    };
    let mut candidates = Vec::new();
    if q.ip.is_some() {
        candidates.push((
            Driver::Host,
            ConnQuery {
                ip: q.ip,
                ip_side: q.ip_side,
                ..base.clone()
            },
        ));
    }
    if q.port.is_some() {
        candidates.push((
            Driver::Port,
            ConnQuery {
                port: q.port,
                port_side: q.port_side,
                ..base.clone()
            },
        ));
    }
    if q.alerts_only {
        candidates.push((
            Driver::Alerts,
            ConnQuery {
                alerts_only: true,
                ..base.clone()
            },
        ));
    }
    let mut best = (Driver::Time, PLAN_CAP);
    for (driver, only) in candidates {
        // Either side is counted side by side, so each count uses one index.
        let mut n = 0;
        for one in split_sides(&only, driver) {
            let mut p = Params::default();
            let Some(w) = filters(&one, table, &mut p, false, None).map_err(|e| bad(path, e))?
            else {
                // No row of this table can match: any plan finds nothing at once.
                return Ok(driver);
            };
            let cap = p.push(PLAN_CAP);
            let sql = format!(
                "SELECT count(*) FROM (SELECT 1 FROM {table}{} LIMIT {cap})",
                where_clause(&w)
            );
            n += conn
                .prepare_cached(&sql)
                .ctx(path, "prepare plan count")?
                .query_row(rusqlite::params_from_iter(p.0.iter()), |r| {
                    r.get::<_, i64>(0)
                })
                .ctx(path, "run plan count")?;
        }
        if n < best.1 {
            best = (driver, n);
        }
    }
    Ok(best.0)
}

/// A host or port filter on either side as two queries, one per side, so
/// each uses its own index (SQLite would often scan for the OR instead).
fn split_sides(q: &ConnQuery, driver: Driver) -> Vec<ConnQuery> {
    match driver {
        Driver::Host if q.ip_side == Side::Either => [Side::Src, Side::Dst]
            .map(|s| ConnQuery {
                ip_side: s,
                ..q.clone()
            })
            .to_vec(),
        Driver::Port if q.port_side == Side::Either => [Side::Src, Side::Dst]
            .map(|s| ConnQuery {
                port_side: s,
                ..q.clone()
            })
            .to_vec(),
        _ => vec![q.clone()],
    }
}

/// The rows of one table and one sensor for a page (at most `limit + 1`),
/// newest first: hflow's (sensor_id, src_start_sec) index gives this order,
/// so a page reads about `limit` index entries when the filters are common,
/// and the host and port indexes serve the rare ones.
fn page_of(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    table: &str,
) -> Result<Vec<ConnRow>, MirrorError> {
    let driver = choose_driver(conn, path, q, table)?;
    let mut out = Vec::new();
    for one in split_sides(q, driver) {
        out.extend(page_one(conn, path, &one, table, driver)?);
    }
    // A flow matching on both sides came twice.
    out.sort_by_key(|r| std::cmp::Reverse(key(r)));
    out.dedup_by_key(|r| key(r));
    out.truncate(q.limit as usize + 1);
    Ok(out)
}

/// One query of a page, run with `driver`'s plan.
fn page_one(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    table: &str,
    driver: Driver,
) -> Result<Vec<ConnRow>, MirrorError> {
    let by_time = driver == Driver::Time;
    let mut p = Params::default();
    let Some(w) = filters(q, table, &mut p, true, Some(driver)).map_err(|e| bad(path, e))? else {
        return Ok(Vec::new());
    };
    // The driver's index, by its name in each table (hflow's names for
    // `flow`, `x_flow6_` + the same for `x_flow6`). One side at a time:
    // split_sides made Either into Src and Dst.
    let side = |s: Side| if s == Side::Dst { "dst" } else { "src" };
    let index = match driver {
        Driver::Time => Some("start_sec_idx".to_string()),
        Driver::Host => Some(format!("{}_ip_idx", side(q.ip_side))),
        Driver::Port => Some(format!("{}_port_idx", side(q.port_side))),
        Driver::Alerts => None,
    };
    let indexed = match index {
        Some(i) if table == "flow" => format!(" INDEXED BY {i}"),
        Some(i) => format!(" INDEXED BY {table}_{i}"),
        None => String::new(),
    };
    // And in the other plans, `+` keeps the time index from being chosen
    // for the ORDER BY: the host/port/ids indexes find the rows, a sort
    // orders them.
    let order = if by_time {
        "src_start_sec DESC, flow_id DESC"
    } else {
        "+src_start_sec DESC, +flow_id DESC"
    };
    let limit = p.push(i64::from(q.limit) + 1);
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM {table}{indexed}{} ORDER BY {order} LIMIT {limit}",
        where_clause(&w)
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .ctx(path, "prepare connection query")?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(p.0.iter()))
        .ctx(path, "run connection query")?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().ctx(path, "read connection row")? {
        out.push(conn_row(row, path)?);
    }
    Ok(out)
}

fn key(r: &ConnRow) -> (u32, u32, u32) {
    (r.start_sec, r.sensor_id, r.flow_id)
}

/// Counts of IDS alerts and sebek sockets of a shown row.
fn annotate(conn: &Connection, path: &str, r: &mut ConnRow) -> Result<(), MirrorError> {
    let count = |sql: &str| -> Result<u64, MirrorError> {
        let mut stmt = conn
            .prepare_cached(sql)
            .ctx(path, "prepare flow annotation")?;
        let n: i64 = stmt
            .query_row(params![r.sensor_id, r.flow_id], |row| row.get(0))
            .ctx(path, "run flow annotation")?;
        Ok(n.max(0) as u64)
    };
    r.alerts = count("SELECT count(*) FROM ids WHERE sensor_id = ?1 AND flow_id = ?2")?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT count(DISTINCT process_id), min(process_id) FROM sys_socket \
             WHERE sensor_id = ?1 AND flow_id = ?2",
        )
        .ctx(path, "prepare flow annotation")?;
    let (n, first): (i64, Option<u32>) = stmt
        .query_row(params![r.sensor_id, r.flow_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .ctx(path, "run flow annotation")?;
    r.processes = n.max(0) as u64;
    r.process_id = first;
    Ok(())
}

fn connections(conn: &Connection, path: &str, q: &ConnQuery) -> Result<ConnPage, MirrorError> {
    if !(1..=1000).contains(&q.limit) {
        return Err(bad(path, format!("limit {} is not 1 to 1000", q.limit)));
    }
    // One ordered query per sensor and table, merged here: each uses the
    // per-sensor indexes hflow's schema already has.
    let mut rows = Vec::new();
    for table in ["flow", "x_flow6"] {
        let sensors = match q.sensor {
            Some(s) => vec![s],
            None => sensor_ids(conn, table).ctx(path, "list sensors")?,
        };
        for s in sensors {
            let one = ConnQuery {
                sensor: Some(s),
                ..q.clone()
            };
            rows.extend(page_of(conn, path, &one, table)?);
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
    let limit = q.limit as usize;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| {
            Cursor {
                start_sec: r.start_sec,
                sensor_id: r.sensor_id,
                flow_id: r.flow_id,
            }
            .to_text()
        })
    } else {
        None
    };
    for r in &mut rows {
        annotate(conn, path, r)?;
    }
    Ok(ConnPage { rows, next })
}

fn aggregate(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    by: GroupBy,
    limit: u32,
) -> Result<Vec<AggRow>, MirrorError> {
    let col = by.column();
    let mut groups: BTreeMap<String, AggRow> = BTreeMap::new();
    for table in ["flow", "x_flow6"] {
        let mut p = Params::default();
        let Some(w) = filters(q, table, &mut p, false, None).map_err(|e| bad(path, e))? else {
            continue;
        };
        // Addresses: the two tables hold disjoint keys (IPv4, IPv6), so each
        // table's largest `limit` groups are the answer's candidates, and
        // SQLite ranks them: the groups never all come into memory (1 M
        // source addresses held here took hundreds of MiB per query). Ports
        // are at most 65,536 groups a table, summed across both here.
        let top = match by {
            GroupBy::SrcIp | GroupBy::DstIp => {
                format!(" ORDER BY count(*) DESC, {col} LIMIT {limit}")
            }
            GroupBy::SrcPort | GroupBy::DstPort => String::new(),
        };
        let sql = format!(
            "SELECT {col}, count(*), sum(src_packets + dst_packets), sum(src_bytes + dst_bytes), \
             group_concat(DISTINCT sensor_id), min(src_start_sec), max(src_start_sec) \
             FROM {table}{} GROUP BY {col}{top}",
            where_clause(&w)
        );
        let mut stmt = conn.prepare_cached(&sql).ctx(path, "prepare aggregate")?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(p.0.iter()))
            .ctx(path, "run aggregate")?;
        while let Some(row) = rows.next().ctx(path, "read aggregate row")? {
            let k = match by {
                GroupBy::SrcIp | GroupBy::DstIp => addr_text(row, 0, path)?,
                _ => row.get::<_, i64>(0).ctx(path, "read port")?.to_string(),
            };
            let get = |i: usize| -> Result<u64, MirrorError> {
                Ok(row
                    .get::<_, Option<i64>>(i)
                    .ctx(path, "read aggregate")?
                    .unwrap_or(0)
                    .max(0) as u64)
            };
            let sensors: String = row
                .get::<_, Option<String>>(4)
                .ctx(path, "read aggregate")?
                .unwrap_or_default();
            let (flows, packets, bytes) = (get(1)?, get(2)?, get(3)?);
            let (first, last) = (get(5)? as u32, get(6)? as u32);
            let e = groups.entry(k.clone()).or_insert(AggRow {
                key: k,
                flows: 0,
                packets: 0,
                bytes: 0,
                sensors: Vec::new(),
                first_sec: first,
                last_sec: last,
            });
            e.flows += flows;
            e.packets += packets;
            e.bytes += bytes;
            e.first_sec = e.first_sec.min(first);
            e.last_sec = e.last_sec.max(last);
            for s in sensors.split(',').filter_map(|s| s.parse().ok()) {
                if !e.sensors.contains(&s) {
                    e.sensors.push(s);
                }
            }
        }
    }
    let mut out: Vec<AggRow> = groups.into_values().collect();
    // Largest first; ties by key, numerically for ports.
    out.sort_by(|a, b| {
        b.flows
            .cmp(&a.flows)
            .then_with(|| match (a.key.parse::<u32>(), b.key.parse::<u32>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.key.cmp(&b.key),
            })
    });
    out.truncate(limit as usize);
    Ok(out)
}

fn sensors(conn: &Connection) -> rusqlite::Result<Vec<SensorRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sensor_id, install_sec, last_upd_sec, coalesce(state, ''), coalesce(name, '') \
         FROM sensor ORDER BY sensor_id",
    )?;
    stmt.query_map([], |r| {
        Ok(SensorRow {
            sensor_id: r.get(0)?,
            install_sec: r.get(1)?,
            last_upd_sec: r.get(2)?,
            state: r.get(3)?,
            name: r.get(4)?,
        })
    })?
    .collect()
}

fn activity(conn: &Connection, sensor: u32, since: u32, until: u32) -> rusqlite::Result<Activity> {
    let mut a = Activity::default();
    for table in ["flow", "x_flow6"] {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT is_local, count(*), sum(src_bytes + dst_bytes) FROM {table} \
             WHERE sensor_id = ?1 AND src_start_sec BETWEEN ?2 AND ?3 GROUP BY is_local"
        ))?;
        let mut rows = stmt.query(params![sensor, since, until])?;
        while let Some(r) = rows.next()? {
            let local: i64 = r.get(0)?;
            let n = r.get::<_, i64>(1)?.max(0) as u64;
            if local != 0 {
                a.outbound_flows += n;
            } else {
                a.inbound_flows += n;
            }
            a.bytes += r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0) as u64;
        }
        let newest: Option<u32> = conn
            .prepare_cached(&format!(
                "SELECT max(src_start_sec) FROM {table} WHERE sensor_id = ?1"
            ))?
            .query_row(params![sensor], |r| r.get(0))?;
        a.newest_flow_sec = a.newest_flow_sec.max(newest.unwrap_or(0));
    }
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM process WHERE sensor_id = ?1 AND time_max BETWEEN ?2 AND ?3",
        )?
        .query_row(params![sensor, since, until], |r| r.get(0))?;
    a.sebek_processes = n.max(0) as u64;
    Ok(a)
}

fn series(
    conn: &Connection,
    sensor: Option<u32>,
    from: u32,
    to: u32,
    bucket: u32,
) -> rusqlite::Result<Vec<SeriesPoint>> {
    let mut acc: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for table in ["flow", "x_flow6"] {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT sensor_id, (src_start_sec / ?3) * ?3, count(*), sum(src_bytes + dst_bytes) \
             FROM {table} WHERE src_start_sec BETWEEN ?1 AND ?2 AND (?4 IS NULL OR sensor_id = ?4) \
             GROUP BY 1, 2"
        ))?;
        let mut rows = stmt.query(params![from, to, bucket, sensor])?;
        while let Some(r) = rows.next()? {
            let e = acc.entry((r.get(0)?, r.get(1)?)).or_default();
            e.0 += r.get::<_, i64>(2)?.max(0) as u64;
            e.1 += r.get::<_, Option<i64>>(3)?.unwrap_or(0).max(0) as u64;
        }
    }
    Ok(acc
        .into_iter()
        .map(|((sensor_id, t), (flows, bytes))| SeriesPoint {
            sensor_id,
            t,
            flows,
            bytes,
        })
        .collect())
}

fn top_ports(
    conn: &Connection,
    sensor: Option<u32>,
    from: u32,
    to: u32,
    limit: u32,
) -> rusqlite::Result<Vec<(u16, u8, u64)>> {
    let mut acc: BTreeMap<(u16, u8), u64> = BTreeMap::new();
    for table in ["flow", "x_flow6"] {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT dst_port, ip_proto, count(*) FROM {table} \
             WHERE src_start_sec BETWEEN ?1 AND ?2 AND (?3 IS NULL OR sensor_id = ?3) \
             AND ip_proto IN (6, 17) GROUP BY 1, 2"
        ))?;
        let mut rows = stmt.query(params![from, to, sensor])?;
        while let Some(r) = rows.next()? {
            *acc.entry((r.get(0)?, r.get(1)?)).or_default() += r.get::<_, i64>(2)?.max(0) as u64;
        }
    }
    let mut v: Vec<(u16, u8, u64)> = acc.into_iter().map(|((p, t), n)| (p, t, n)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    v.truncate(limit as usize);
    Ok(v)
}

/// The newest and oldest flow start over every sensor (None when empty).
fn time_span(conn: &Connection) -> rusqlite::Result<Option<(u32, u32)>> {
    let mut lo: Option<u32> = None;
    let mut hi: Option<u32> = None;
    for table in ["flow", "x_flow6"] {
        let (a, b): (Option<u32>, Option<u32>) = conn
            .prepare_cached(&format!(
                "SELECT min(src_start_sec), max(src_start_sec) FROM {table}"
            ))?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        lo = match (lo, a) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        hi = match (hi, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
    }
    Ok(lo.zip(hi))
}

/// The earliest flow start at or after `t`, over every sensor.
fn first_start_from(conn: &Connection, t: u32) -> rusqlite::Result<Option<u32>> {
    let mut best: Option<u32> = None;
    for table in ["flow", "x_flow6"] {
        let v: Option<u32> = conn
            .prepare_cached(&format!(
                "SELECT min(src_start_sec) FROM {table} WHERE src_start_sec >= ?1"
            ))?
            .query_row(params![t], |r| r.get(0))?;
        best = match (best, v) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(best)
}

fn flow_row(
    conn: &Connection,
    path: &str,
    sensor: u32,
    flow_id: u32,
) -> Result<Option<ConnRow>, MirrorError> {
    for table in ["flow", "x_flow6"] {
        let sql =
            format!("SELECT {ROW_COLUMNS} FROM {table} WHERE sensor_id = ?1 AND flow_id = ?2");
        let mut stmt = conn.prepare_cached(&sql).ctx(path, "prepare flow lookup")?;
        let mut rows = stmt
            .query(params![sensor, flow_id])
            .ctx(path, "run flow lookup")?;
        if let Some(row) = rows.next().ctx(path, "read flow row")? {
            let mut r = conn_row(row, path)?;
            drop(rows);
            annotate(conn, path, &mut r)?;
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn alerts(conn: &Connection, sensor: u32, flow_id: u32) -> rusqlite::Result<Vec<AlertView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.sec, i.priority, i.sig_gen, i.sig_id, coalesce(s.sig_name, ''), i.classification \
         FROM ids i LEFT JOIN ids_sig s ON s.sensor_id = i.sensor_id \
              AND s.ids_sig_gen = i.sig_gen AND s.ids_sig_id = i.sig_id \
         WHERE i.sensor_id = ?1 AND i.flow_id = ?2 ORDER BY i.sec, i.ids_id",
    )?;
    stmt.query_map(params![sensor, flow_id], |r| {
        Ok(AlertView {
            sec: r.get(0)?,
            priority: r.get(1)?,
            sig_gen: r.get(2)?,
            sig_id: r.get(3)?,
            sig_name: r.get(4)?,
            classification: r.get(5)?,
        })
    })?
    .collect()
}

impl Mirror {
    /// One page of the connection table, newest first.
    pub fn connections(&self, q: &ConnQuery) -> Result<ConnPage, MirrorError> {
        connections(&self.conn, &self.path, q)
    }

    /// Flows matching `q` grouped by `by`, largest groups first.
    pub fn aggregate(
        &self,
        q: &ConnQuery,
        by: GroupBy,
        limit: u32,
    ) -> Result<Vec<AggRow>, MirrorError> {
        aggregate(&self.conn, &self.path, q, by, limit)
    }

    /// Every row of hflow's sensor table.
    pub fn sensor_rows(&self) -> Result<Vec<SensorRow>, MirrorError> {
        sensors(&self.conn).ctx(&self.path, "query sensors")
    }

    /// Flows and sebek processes of `sensor` that started between `since`
    /// and `until` (the newest flow's start is over all time).
    pub fn activity(&self, sensor: u32, since: u32, until: u32) -> Result<Activity, MirrorError> {
        activity(&self.conn, sensor, since, until).ctx(&self.path, "query sensor activity")
    }

    /// Flows and bytes started per `bucket` seconds between `from` and `to`.
    pub fn series(
        &self,
        sensor: Option<u32>,
        from: u32,
        to: u32,
        bucket: u32,
    ) -> Result<Vec<SeriesPoint>, MirrorError> {
        series(&self.conn, sensor, from, to, bucket.max(1)).ctx(&self.path, "query time series")
    }

    /// The most used TCP/UDP destination ports: (port, proto, flows).
    pub fn top_ports(
        &self,
        sensor: Option<u32>,
        from: u32,
        to: u32,
        limit: u32,
    ) -> Result<Vec<(u16, u8, u64)>, MirrorError> {
        top_ports(&self.conn, sensor, from, to, limit).ctx(&self.path, "query top ports")
    }

    /// Oldest and newest flow start in the mirror.
    pub fn time_span(&self) -> Result<Option<(u32, u32)>, MirrorError> {
        time_span(&self.conn).ctx(&self.path, "query time span")
    }

    /// The earliest flow start at or after `t`.
    pub fn first_start_from(&self, t: u32) -> Result<Option<u32>, MirrorError> {
        first_start_from(&self.conn, t).ctx(&self.path, "query first flow")
    }

    /// One flow as a connection-table row.
    pub fn flow_row(&self, sensor: u32, flow_id: u32) -> Result<Option<ConnRow>, MirrorError> {
        flow_row(&self.conn, &self.path, sensor, flow_id)
    }

    /// The IDS alerts of one flow.
    pub fn alerts(&self, sensor: u32, flow_id: u32) -> Result<Vec<AlertView>, MirrorError> {
        alerts(&self.conn, sensor, flow_id).ctx(&self.path, "query ids")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` flows of `sensor`: every third from 10.0.0.1 (a common host, more
    /// than PLAN_CAP), one in 1000 from 10.0.0.99 (a rare one), the rest from
    /// 10.0.0.2; several flows share each start second.
    fn fill(m: &Mirror, sensor: u32, n: u32) {
        let cols = super::super::apply::FLOW_COLUMNS.join(", ");
        let marks = (1..=32)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO flow ({cols}) VALUES ({marks})");
        let mut stmt = m.conn.prepare(&sql).unwrap();
        for i in 0..n {
            let src: u32 = if i % 1000 == 7 {
                0x0a00_0063
            } else if i % 3 == 0 {
                0x0a00_0001
            } else {
                0x0a00_0002
            };
            let mut v: Vec<i64> = vec![0; 32];
            v[0] = i64::from(sensor);
            v[1] = i64::from(i) + 1;
            v[2] = i64::from(src);
            v[3] = 0xc000_020a;
            v[4] = 1024 + i64::from(i % 50_000);
            v[5] = if i % 4 == 0 { 22 } else { 80 };
            v[6] = 6;
            v[9] = 1_700_000_000 + i64::from(i / 3);
            v[14] = 1;
            v[15] = 60;
            stmt.execute(rusqlite::params_from_iter(v.iter())).unwrap();
        }
    }

    /// Every page of `q`, as (start, sensor, flow) keys.
    fn all_pages(m: &Mirror, mut q: ConnQuery) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        loop {
            let page = m.connections(&q).unwrap();
            out.extend(page.rows.iter().map(key));
            match page.next {
                Some(n) => q.after = Cursor::parse(&n),
                None => return out,
            }
        }
    }

    /// Both plans (time order for a common host, host index for a rare one)
    /// give exactly the matching rows, newest first, over every page.
    #[test]
    fn both_plans_page_through_exactly_the_matches() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, 3 * PLAN_CAP as u32 + 500);
        fill(&m, 9, 4000);
        let expect = |ip: u32, side: Side, port: Option<i64>| -> Vec<(u32, u32, u32)> {
            let mut v = Vec::new();
            let mut stmt = m
                .conn
                .prepare("SELECT src_start_sec, sensor_id, flow_id, src_ip, dst_ip, src_port, dst_port FROM flow")
                .unwrap();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let (s, d): (u32, u32) = (r.get(3).unwrap(), r.get(4).unwrap());
                let (sp, dp): (i64, i64) = (r.get(5).unwrap(), r.get(6).unwrap());
                let ip_ok = match side {
                    Side::Src => s == ip,
                    Side::Dst => d == ip,
                    Side::Either => s == ip || d == ip,
                };
                if ip_ok && port.is_none_or(|p| sp == p || dp == p) {
                    v.push((r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap()));
                }
            }
            v.sort_by(|a, b| b.cmp(a));
            v
        };
        for (ip, port) in [
            (0x0a00_0001u32, None),
            (0x0a00_0063, None),
            (0x0a00_0001, Some(22)),
        ] {
            for side in [Side::Src, Side::Either] {
                let q = ConnQuery {
                    ip: Some((IpAddr::V4(ip.into()), 32)),
                    ip_side: side,
                    port: port.map(|p| p as u16),
                    limit: 997,
                    ..ConnQuery::default()
                };
                let want = expect(ip, side, port);
                assert!(!want.is_empty());
                assert_eq!(all_pages(&m, q), want, "ip {ip:#x} {side:?} port {port:?}");
            }
        }
        // The plan really differs between the two hosts.
        let q = |ip: u32| ConnQuery {
            sensor: Some(5),
            ip: Some((IpAddr::V4(ip.into()), 32)),
            ip_side: Side::Src,
            limit: 100,
            ..ConnQuery::default()
        };
        let plan = |q: &ConnQuery| choose_driver(&m.conn, "m", q, "flow").unwrap();
        assert_eq!(plan(&q(0x0a00_0001)), Driver::Time);
        assert_eq!(plan(&q(0x0a00_0063)), Driver::Host);
        // A rare port beside a common host: the port drives.
        let rare_port = ConnQuery {
            port: Some(1024 + 9),
            port_side: Side::Src,
            ..q(0x0a00_0001)
        };
        assert_eq!(plan(&rare_port), Driver::Port);
        assert_eq!(
            all_pages(
                &m,
                ConnQuery {
                    sensor: None,
                    ..rare_port.clone()
                }
            ),
            {
                let mut v: Vec<_> = expect(0x0a00_0001, Side::Src, None)
                    .into_iter()
                    .filter(|k| k.1 == 5 || k.1 == 9)
                    .collect();
                v.retain(|k| (k.2 - 1) % 50_000 == 9);
                assert_eq!(v.len(), 2, "flow 10 of both sensors");
                v
            }
        );
        // IDS alerts on two flows: the ids table drives and finds both.
        m.conn
            .execute_batch(
                "INSERT INTO ids (ids_id, sensor_id, flow_id) VALUES (1, 5, 10), (2, 5, 20)",
            )
            .unwrap();
        let alerts = ConnQuery {
            sensor: Some(5),
            alerts_only: true,
            limit: 100,
            ..ConnQuery::default()
        };
        assert_eq!(plan(&alerts), Driver::Alerts);
        let got: Vec<u32> = all_pages(&m, alerts).iter().map(|k| k.2).collect();
        assert_eq!(got, vec![20, 10]);
    }

    #[test]
    fn cursor_round_trips_and_refuses_junk() {
        let c = Cursor {
            start_sec: 1_700_000_000,
            sensor_id: 7,
            flow_id: 42,
        };
        assert_eq!(Cursor::parse(&c.to_text()), Some(c));
        for junk in [
            "",
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1.2.-3",
            "1;DROP TABLE flow.2.3",
        ] {
            assert_eq!(Cursor::parse(junk), None, "{junk}");
        }
    }
}
