//! Read-only queries behind the web UI (`src/web/`): Walleye's connection
//! table with keyset pagination, aggregates, the connections graph,
//! per-sensor activity windows, time series, top ports, one flow's detail
//! and its IDS alerts, and a host's (bounded) p0f OS history.
//!
//! Owns that SQL and nothing else; writes nothing. Every value from a request
//! reaches SQLite as a bound parameter, never as SQL text: the only text
//! spliced into statements is fixed column and table names chosen here.
//!
//! Pagination is on the key (src_start_sec, sensor_id, flow_id), newest
//! first: one query per sensor, each served in order by hflow's own
//! `start_sec_idx` (sensor_id, src_start_sec, + the primary key's flow_id),
//! merged here. No page ever skips the rows before it (its total is a
//! capped count through the same plan), and no index beyond the legacy
//! schema's is needed. Every read is bounded: sorted, collapsed and graph
//! views read the newest `WINDOW` matches, and under filters no index
//! serves a count or such a window reads at most `SCAN_CAP` rows a sensor.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};
use serde::Serialize;

use super::query::{decode_addr, get_u64};
use super::{Ctx, Mirror, MirrorError};
use crate::net::Range as Bounds;

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
    /// Only flows whose client (p0f) OS has this id.
    pub client_os: Option<u32>,
    /// Only flows whose server (p0f) OS has this id.
    pub server_os: Option<u32>,
    /// Start after this position (the previous page's `next`).
    pub after: Option<Cursor>,
    /// Rows per page (1..=1000).
    pub limit: u32,
    /// Row order; anything but `Time` (or collapsing) is a window page.
    pub sort: SortKey,
    /// Identical repeats (same addresses, destination port, protocol and
    /// sizes; any source port) as one row.
    pub collapse: bool,
    /// Rows (or groups) to skip in a window page (0..WINDOW).
    pub offset: u32,
    /// Count the matches for the page's total (the table does; the host
    /// view, which shows only the newest flows, does not).
    pub count: bool,
}

/// Order of the connection table. Only `Time` pages through every match
/// (keyset pages on hflow's time index); the others sort the newest
/// `WINDOW` matches, a bounded plan, and say so when there were more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Time,
    Bytes,
    Packets,
    Duration,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<SortKey> {
        match s {
            "time" => Some(SortKey::Time),
            "bytes" => Some(SortKey::Bytes),
            "packets" => Some(SortKey::Packets),
            "duration" => Some(SortKey::Duration),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Time => "time",
            SortKey::Bytes => "bytes",
            SortKey::Packets => "packets",
            SortKey::Duration => "duration",
        }
    }

    /// The sort value of a row (larger first).
    fn value(self, r: &ConnRow) -> u64 {
        match self {
            SortKey::Time => u64::from(r.start_sec),
            SortKey::Bytes => r.src_bytes.saturating_add(r.dst_bytes),
            SortKey::Packets => r.src_packets.saturating_add(r.dst_packets),
            SortKey::Duration => r.duration_ms(),
        }
    }
}

/// Matches a window page sorts or collapses (the newest first); more
/// are not read, and the page says the window was cut.
pub const WINDOW: u32 = 10_000;

/// Matches counted for the table's total; past it the total is "at least".
pub const TOTAL_CAP: i64 = 10_000;

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
    /// p0f's name of the client OS ("genre detail"), empty when unknown.
    pub client_os: String,
    /// p0f's name of the server OS, empty when unknown.
    pub server_os: String,
    /// Flows this row stands for (collapsed identical repeats; 1 otherwise);
    /// the row is the newest of them, its source port that flow's.
    pub repeats: u64,
    /// Start of the oldest of them (this row is the newest).
    pub repeat_first_sec: u32,
}

impl ConnRow {
    /// Milliseconds from the first packet to the last, either direction.
    pub fn duration_ms(&self) -> u64 {
        let start = u64::from(self.start_sec) * 1000 + u64::from(self.start_msec);
        self.end_ms.saturating_sub(start)
    }

    /// What makes two flows "identical repeats": both addresses, the
    /// destination (service) port, protocol and both directions' sizes.
    /// Not the source port: a client picks a new ephemeral port for each
    /// connection, so with it no two DNS lookups or SSH guesses would ever
    /// be repeats. Not the time, not the flow id.
    fn repeat_key(&self) -> (&str, &str, u16, u8, u64, u64, u64, u64) {
        (
            &self.src_ip,
            &self.dst_ip,
            self.dst_port,
            self.ip_proto,
            self.src_packets,
            self.src_bytes,
            self.dst_packets,
            self.dst_bytes,
        )
    }
}

/// One page of the connection table.
#[derive(Debug, Clone, Serialize)]
pub struct ConnPage {
    pub rows: Vec<ConnRow>,
    /// Cursor of the next page, if there is one (time order).
    pub next: Option<String>,
    /// Flows matching the filters: exact when `total_exact`, else at least
    /// this many (counting stops at TOTAL_CAP).
    pub total: u64,
    pub total_exact: bool,
    /// The order of the rows (time, bytes, packets, duration).
    pub sort: &'static str,
    pub collapsed: bool,
    /// Window pages (sorted or collapsed): the matches sorted (the newest
    /// `WINDOW` at most), whether there were more, the groups they made,
    /// this page's offset and the next page's.
    pub window: Option<WindowInfo>,
}

/// How a window page was made.
#[derive(Debug, Clone, Serialize)]
pub struct WindowInfo {
    pub matches: u64,
    pub cut: bool,
    pub rows: u64,
    pub offset: u32,
    pub next_offset: Option<u32>,
}

/// Grouping key of the aggregate view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    Proto,
    Sensor,
    ClientOs,
    ServerOs,
}

impl GroupBy {
    /// Every key, by its name in `by=`.
    pub const ALL: [(&'static str, GroupBy); 8] = [
        ("src_ip", GroupBy::SrcIp),
        ("dst_ip", GroupBy::DstIp),
        ("src_port", GroupBy::SrcPort),
        ("dst_port", GroupBy::DstPort),
        ("proto", GroupBy::Proto),
        ("sensor", GroupBy::Sensor),
        ("client_os", GroupBy::ClientOs),
        ("server_os", GroupBy::ServerOs),
    ];

    pub fn parse(s: &str) -> Option<GroupBy> {
        GroupBy::ALL.iter().find(|(n, _)| *n == s).map(|(_, g)| *g)
    }

    fn column(self) -> &'static str {
        match self {
            GroupBy::SrcIp => "src_ip",
            GroupBy::DstIp => "dst_ip",
            GroupBy::SrcPort => "src_port",
            GroupBy::DstPort => "dst_port",
            GroupBy::Proto => "ip_proto",
            GroupBy::Sensor => "sensor_id",
            GroupBy::ClientOs => "client_os_id",
            GroupBy::ServerOs => "server_os_id",
        }
    }

    fn is_addr(self) -> bool {
        matches!(self, GroupBy::SrcIp | GroupBy::DstIp)
    }
}

/// One group of the aggregate view.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AggRow {
    /// The group's value as the table's filter takes it (address, port,
    /// protocol number, sensor id, OS id).
    pub key: String,
    /// A name for it when the key is an id (an OS's p0f name).
    pub label: String,
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
) -> Result<Option<Vec<String>>, crate::net::NetError> {
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
        let b = crate::net::range(host.0, host.1)?;
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
    if let Some(os) = q.client_os {
        w.push(format!("client_os_id = {}", p.push(os)));
    }
    if let Some(os) = q.server_os {
        w.push(format!("server_os_id = {}", p.push(os)));
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
            client_os: String::new(),
            server_os: String::new(),
            repeats: 1,
            repeat_first_sec: row.get(7)?,
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

/// Rows of one sensor a time-ordered plan reads at most, under filters no
/// index serves (protocol, sizes, OS, or a host or port too common for its
/// index), for a count or a window page (sorted, collapsed, the graph):
/// past it the count says "at least" and the window says it was cut.
pub const SCAN_CAP: i64 = 20_000;

/// Whether `q` filters rows beyond the sensor and time range.
fn row_filtered(q: &ConnQuery) -> bool {
    q.proto.is_some()
        || q.bidirectional
        || q.min_bytes.is_some()
        || q.client_os.is_some()
        || q.server_os.is_some()
        || q.ip.is_some()
        || q.port.is_some()
        || q.alerts_only
}

/// The `FROM` of a time-ordered read of `q`'s sensor capped at SCAN_CAP
/// rows (newest first, within its time range), named `table` so the
/// filters apply to it unchanged; and whether the sensor has more rows
/// in that range than the cap (a covering-index count).
fn capped_scan(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    table: &str,
    p: &mut Params,
) -> Result<(String, bool), MirrorError> {
    let bounds = ConnQuery {
        sensor: q.sensor,
        since: q.since,
        until: q.until,
        ..ConnQuery::default()
    };
    let mut cp = Params::default();
    let w = filters(&bounds, table, &mut cp, false, Some(Driver::Time))
        .map_err(|e| bad(path, e.to_string()))?
        .unwrap_or_default();
    let over = cp.push(SCAN_CAP + 1);
    let index = indexed_by(Driver::Time, q, table);
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {table}{index}{} LIMIT {over})",
        where_clause(&w)
    );
    let n: i64 = conn
        .prepare_cached(&sql)
        .ctx(path, "prepare scan count")?
        .query_row(rusqlite::params_from_iter(cp.0.iter()), |r| r.get(0))
        .ctx(path, "run scan count")?;
    let w = filters(&bounds, table, p, false, Some(Driver::Time))
        .map_err(|e| bad(path, e.to_string()))?
        .unwrap_or_default();
    let cap = p.push(SCAN_CAP);
    Ok((
        format!(
            "(SELECT * FROM {table}{index}{} ORDER BY src_start_sec DESC, flow_id DESC LIMIT {cap}) AS {table}",
            where_clause(&w)
        ),
        n > SCAN_CAP,
    ))
}

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
            let Some(w) =
                filters(&one, table, &mut p, false, None).map_err(|e| bad(path, e.to_string()))?
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
    capped: bool,
    scan_cut: &mut bool,
) -> Result<Vec<ConnRow>, MirrorError> {
    let driver = choose_driver(conn, path, q, table)?;
    let mut out = Vec::new();
    for one in split_sides(q, driver) {
        out.extend(page_one(conn, path, &one, table, driver, capped, scan_cut)?);
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
    capped: bool,
    scan_cut: &mut bool,
) -> Result<Vec<ConnRow>, MirrorError> {
    let by_time = driver == Driver::Time;
    let mut p = Params::default();
    // A window page under filters no index serves reads at most SCAN_CAP
    // rows of the sensor (newest first) and filters those.
    let (from, indexed) = if capped && by_time && row_filtered(q) {
        let (from, cut) = capped_scan(conn, path, q, table, &mut p)?;
        *scan_cut |= cut;
        (from, String::new())
    } else {
        (table.to_string(), indexed_by(driver, q, table))
    };
    let Some(w) =
        filters(q, table, &mut p, true, Some(driver)).map_err(|e| bad(path, e.to_string()))?
    else {
        return Ok(Vec::new());
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
        "SELECT {ROW_COLUMNS} FROM {from}{indexed}{} ORDER BY {order} LIMIT {limit}",
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

/// The driver's index, by its name in each table (hflow's names for
/// `flow`, `x_flow6_` + the same for `x_flow6`), as an `INDEXED BY`
/// clause. One side at a time: split_sides made Either into Src and Dst.
fn indexed_by(driver: Driver, q: &ConnQuery, table: &str) -> String {
    let side = |s: Side| if s == Side::Dst { "dst" } else { "src" };
    let index = match driver {
        Driver::Time => Some("start_sec_idx".to_string()),
        Driver::Host => Some(format!("{}_ip_idx", side(q.ip_side))),
        Driver::Port => Some(format!("{}_port_idx", side(q.port_side))),
        Driver::Alerts => None,
    };
    match index {
        Some(i) if table == "flow" => format!(" INDEXED BY {i}"),
        Some(i) => format!(" INDEXED BY {table}_{i}"),
        None => String::new(),
    }
}

/// The flows matching `q` (its cursor ignored), counted through the same
/// plan as its page, at most TOTAL_CAP (about that many index entries per
/// side): (count, exact).
fn count_matches(conn: &Connection, path: &str, q: &ConnQuery) -> Result<(u64, bool), MirrorError> {
    let mut total: i64 = 0;
    let mut exact = true;
    for table in ["flow", "x_flow6"] {
        let sensors = match q.sensor {
            Some(s) => vec![s],
            None => sensor_ids(conn, table).ctx(path, "list sensors")?,
        };
        for s in sensors {
            if total >= TOTAL_CAP {
                return Ok((total.max(0) as u64, false));
            }
            let one = ConnQuery {
                sensor: Some(s),
                after: None,
                ..q.clone()
            };
            let driver = choose_driver(conn, path, &one, table)?;
            let mut p = Params::default();
            let mut arms = Vec::new();
            for side in split_sides(&one, driver) {
                // Filters no index serves: count among the newest SCAN_CAP
                // rows of the sensor, "at least" when it has more.
                let (from, indexed) = if driver == Driver::Time && row_filtered(&side) {
                    let (from, cut) = capped_scan(conn, path, &side, table, &mut p)?;
                    exact &= !cut;
                    (from, String::new())
                } else {
                    (table.to_string(), indexed_by(driver, &side, table))
                };
                let Some(w) = filters(&side, table, &mut p, false, Some(driver))
                    .map_err(|e| bad(path, e.to_string()))?
                else {
                    continue;
                };
                let cap = p.push(TOTAL_CAP - total);
                arms.push(format!(
                    "SELECT * FROM (SELECT flow_id FROM {from}{indexed}{} LIMIT {cap})",
                    where_clause(&w)
                ));
            }
            if arms.is_empty() {
                continue;
            }
            // UNION: a flow matching on both sides counts once.
            let sql = format!("SELECT count(*) FROM ({})", arms.join(" UNION "));
            let n: i64 = conn
                .prepare_cached(&sql)
                .ctx(path, "prepare count")?
                .query_row(rusqlite::params_from_iter(p.0.iter()), |r| r.get(0))
                .ctx(path, "run count")?;
            if n >= TOTAL_CAP - total {
                exact = false;
            }
            total += n;
        }
    }
    Ok((total.max(0) as u64, exact && total < TOTAL_CAP))
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
    r.client_os = os_name(conn, path, r.client_os_id)?;
    r.server_os = os_name(conn, path, r.server_os_id)?;
    Ok(())
}

/// p0f's name of an OS id ("genre detail"; empty for 0 or an unknown id).
/// The ids are p0f signature hashes, the same on every sensor.
fn os_name(conn: &Connection, path: &str, os_id: u32) -> Result<String, MirrorError> {
    if os_id == 0 {
        return Ok(String::new());
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT trim(coalesce(genre, '') || ' ' || coalesce(detail, '')) FROM os \
             WHERE os_id = ?1 ORDER BY sensor_id LIMIT 1",
        )
        .ctx(path, "prepare os name")?;
    let mut rows = stmt.query(params![os_id]).ctx(path, "run os name")?;
    Ok(match rows.next().ctx(path, "read os name")? {
        Some(r) => r.get::<_, String>(0).ctx(path, "read os name")?,
        None => String::new(),
    })
}

/// Up to `limit + 1` matches of `q`, newest first, not annotated. One
/// ordered query per sensor and table, merged here (each uses the
/// per-sensor indexes hflow's schema already has); at most `limit + 1`
/// rows are held between sensors.
fn newest_matches(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    limit: u32,
) -> Result<(Vec<ConnRow>, bool), MirrorError> {
    // Window reads (sorted, collapsed, the graph) cap their scans.
    let capped = limit >= WINDOW;
    let mut scan_cut = false;
    let mut rows: Vec<ConnRow> = Vec::new();
    for table in ["flow", "x_flow6"] {
        let sensors = match q.sensor {
            Some(s) => vec![s],
            None => sensor_ids(conn, table).ctx(path, "list sensors")?,
        };
        for s in sensors {
            // Once `limit + 1` rows are held, a row that started before
            // the oldest of them cannot make the page: the next sensors
            // are read from that second on (the same second is kept, its
            // order is by sensor and flow id).
            let floor = (rows.len() > limit as usize)
                .then(|| rows.last().map(|r| r.start_sec))
                .flatten();
            let one = ConnQuery {
                sensor: Some(s),
                limit,
                since: match (q.since, floor) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                },
                ..q.clone()
            };
            rows.extend(page_of(conn, path, &one, table, capped, &mut scan_cut)?);
            rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
            rows.truncate(limit as usize + 1);
        }
    }
    Ok((rows, scan_cut))
}

/// Identical repeats of `rows` (newest first) as one row each, the newest
/// standing for the rest, in the order of their newest.
fn collapse(rows: Vec<ConnRow>) -> Vec<ConnRow> {
    type Key = (String, String, u16, u8, u64, u64, u64, u64);
    let owned = |r: &ConnRow| -> Key {
        let (src, dst, port, proto, sp, sb, dp, db) = r.repeat_key();
        (src.to_owned(), dst.to_owned(), port, proto, sp, sb, dp, db)
    };
    let mut at: std::collections::HashMap<Key, usize> = std::collections::HashMap::new();
    let mut out: Vec<ConnRow> = Vec::new();
    for r in rows {
        match at.get(&owned(&r)) {
            Some(&i) => {
                if let Some(g) = out.get_mut(i) {
                    g.repeats += 1;
                    g.repeat_first_sec = g.repeat_first_sec.min(r.start_sec);
                }
            }
            None => {
                at.insert(owned(&r), out.len());
                out.push(r);
            }
        }
    }
    out
}

fn connections(conn: &Connection, path: &str, q: &ConnQuery) -> Result<ConnPage, MirrorError> {
    if !(1..=1000).contains(&q.limit) {
        return Err(bad(path, format!("limit: {} is not 1 to 1000", q.limit)));
    }
    let (total, total_exact) = if q.count {
        count_matches(conn, path, q)?
    } else {
        (0, false)
    };
    let limit = q.limit as usize;
    if q.sort == SortKey::Time && !q.collapse {
        if q.offset != 0 {
            return Err(bad(
                path,
                "offset: only with sort or collapse (time pages use after)".into(),
            ));
        }
        let (mut rows, _) = newest_matches(conn, path, q, q.limit)?;
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
        return Ok(ConnPage {
            rows,
            next,
            total,
            total_exact,
            sort: SortKey::Time.name(),
            collapsed: false,
            window: None,
        });
    }
    if q.after.is_some() {
        return Err(bad(
            path,
            "after: not with sort or collapse (their pages use offset)".into(),
        ));
    }
    if q.offset >= WINDOW {
        return Err(bad(path, format!("offset: use 0 to {}", WINDOW - 1)));
    }
    // A bounded plan: the newest WINDOW matches, through the same indexes
    // as a time page, sorted and collapsed here.
    let (mut rows, scan_cut) = newest_matches(conn, path, q, WINDOW)?;
    let cut = rows.len() > WINDOW as usize || scan_cut;
    rows.truncate(WINDOW as usize);
    let matches = rows.len() as u64;
    if q.collapse {
        rows = collapse(rows);
    }
    if q.sort != SortKey::Time {
        // Stable: equal values stay newest first.
        rows.sort_by_key(|r| std::cmp::Reverse(q.sort.value(r)));
    }
    let n = rows.len();
    let start = (q.offset as usize).min(n);
    let end = start.saturating_add(limit).min(n);
    let next_offset = (end < n).then_some(end as u32);
    let mut page: Vec<ConnRow> = rows.drain(start..end).collect();
    for r in &mut page {
        annotate(conn, path, r)?;
    }
    Ok(ConnPage {
        rows: page,
        next: None,
        total,
        total_exact,
        sort: q.sort.name(),
        collapsed: q.collapse,
        window: Some(WindowInfo {
            matches,
            cut,
            rows: n as u64,
            offset: q.offset,
            next_offset,
        }),
    })
}

/// The aggregate view: the largest groups, and whether there were more.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AggPage {
    pub rows: Vec<AggRow>,
    /// More groups than `limit` matched: the smaller ones are not shown.
    pub cut: bool,
    pub limit: u32,
}

fn aggregate(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    by: GroupBy,
    limit: u32,
) -> Result<AggPage, MirrorError> {
    let col = by.column();
    let mut groups: BTreeMap<String, AggRow> = BTreeMap::new();
    for table in ["flow", "x_flow6"] {
        let mut p = Params::default();
        let Some(w) =
            filters(q, table, &mut p, false, None).map_err(|e| bad(path, e.to_string()))?
        else {
            continue;
        };
        // Addresses: the two tables hold disjoint keys (IPv4, IPv6), so each
        // table's largest `limit + 1` groups are the answer's candidates
        // (one more than shown tells whether the list was cut), and SQLite
        // ranks them: the groups never all come into memory (1 M source
        // addresses held here took hundreds of MiB per query). The other
        // keys are few (65,536 ports, 256 protocols, the sensors, the p0f
        // signatures), summed across both tables here.
        let top = if by.is_addr() {
            format!(
                " ORDER BY count(*) DESC, {col} LIMIT {}",
                p.push(i64::from(limit) + 1)
            )
        } else {
            String::new()
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
            let k = if by.is_addr() {
                addr_text(row, 0, path)?
            } else {
                row.get::<_, i64>(0)
                    .ctx(path, "read group key")?
                    .to_string()
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
            let first = u32::try_from(get(5)?).unwrap_or(u32::MAX);
            let last = u32::try_from(get(6)?).unwrap_or(u32::MAX);
            let e = groups.entry(k.clone()).or_insert(AggRow {
                key: k,
                label: String::new(),
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
    // Largest first; ties by key, numerically for numbers.
    out.sort_by(|a, b| {
        b.flows
            .cmp(&a.flows)
            .then_with(|| match (a.key.parse::<u64>(), b.key.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.key.cmp(&b.key),
            })
    });
    let cut = out.len() > limit as usize;
    out.truncate(limit as usize);
    for r in &mut out {
        r.label = match by {
            GroupBy::ClientOs | GroupBy::ServerOs => match r.key.parse::<u32>() {
                Ok(0) => "unknown (no p0f match)".to_string(),
                Ok(id) => os_name(conn, path, id)?,
                Err(_) => String::new(),
            },
            _ => String::new(),
        };
    }
    Ok(AggPage {
        rows: out,
        cut,
        limit,
    })
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

/// `q` over the time range `from..=to` as statements that each read only
/// their rows: one per table and sensor (and per side of a port filter on
/// either side), each through the index that holds its rows in the range,
/// named (`INDEXED BY`): the port's `(sensor_id, port, src_start_sec)`
/// under a port filter, else `(sensor_id, src_start_sec)`. A flow matching
/// the port on both sides is counted by the source arm only. Returns each
/// arm as `FROM` text (table, index, WHERE) and its parameters, `extra`
/// WHERE terms added to each.
fn range_arms(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    from: u32,
    to: u32,
    extra: &str,
) -> Result<Vec<(String, Params)>, MirrorError> {
    let driver = if q.port.is_some() {
        Driver::Port
    } else {
        Driver::Time
    };
    let mut arms = Vec::new();
    for table in ["flow", "x_flow6"] {
        let sensors = match q.sensor {
            Some(s) => vec![s],
            None => sensor_ids(conn, table).ctx(path, "list sensors")?,
        };
        for sensor in sensors {
            let ranged = ConnQuery {
                sensor: Some(sensor),
                since: Some(q.since.map_or(from, |s| s.max(from))),
                until: Some(q.until.map_or(to, |u| u.min(to))),
                after: None,
                ..q.clone()
            };
            for one in split_sides(&ranged, driver) {
                let mut p = Params::default();
                let Some(mut w) = filters(&one, table, &mut p, false, Some(driver))
                    .map_err(|e| bad(path, e.to_string()))?
                else {
                    continue;
                };
                if let (Some(port), Side::Either, Side::Dst) = (q.port, q.port_side, one.port_side)
                {
                    w.push(format!("+src_port != {}", p.push(port)));
                }
                if !extra.is_empty() {
                    w.push(extra.to_string());
                }
                arms.push((
                    format!(
                        "{table}{}{}",
                        indexed_by(driver, &one, table),
                        where_clause(&w)
                    ),
                    p,
                ));
            }
        }
    }
    Ok(arms)
}

fn series(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    from: u32,
    to: u32,
    bucket: u32,
) -> Result<Vec<SeriesPoint>, MirrorError> {
    let mut acc: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for (arm, mut p) in range_arms(conn, path, q, from, to, "")? {
        let b = p.push(bucket);
        let sql = format!(
            "SELECT sensor_id, (src_start_sec / {b}) * {b}, count(*), sum(src_bytes + dst_bytes) \
             FROM {arm} GROUP BY 1, 2"
        );
        let mut stmt = conn.prepare_cached(&sql).ctx(path, "prepare time series")?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(p.0.iter()))
            .ctx(path, "run time series")?;
        while let Some(r) = rows.next().ctx(path, "read time series")? {
            let read = || -> rusqlite::Result<_> {
                Ok((
                    (r.get::<_, u32>(0)?, r.get::<_, u32>(1)?),
                    r.get::<_, i64>(2)?.max(0) as u64,
                    r.get::<_, Option<i64>>(3)?.unwrap_or(0).max(0) as u64,
                ))
            };
            let (k, n, bytes) = read().ctx(path, "read time series")?;
            let e = acc.entry(k).or_default();
            e.0 += n;
            e.1 += bytes;
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
    path: &str,
    q: &ConnQuery,
    from: u32,
    to: u32,
    limit: u32,
) -> Result<Vec<(u16, u8, u64)>, MirrorError> {
    let mut acc: BTreeMap<(u16, u8), u64> = BTreeMap::new();
    for (arm, p) in range_arms(conn, path, q, from, to, "ip_proto IN (6, 17)")? {
        let sql = format!("SELECT dst_port, ip_proto, count(*) FROM {arm} GROUP BY 1, 2");
        let mut stmt = conn.prepare_cached(&sql).ctx(path, "prepare top ports")?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(p.0.iter()))
            .ctx(path, "run top ports")?;
        while let Some(r) = rows.next().ctx(path, "read top ports")? {
            let read = || -> rusqlite::Result<_> {
                Ok((
                    (r.get::<_, u16>(0)?, r.get::<_, u8>(1)?),
                    r.get::<_, i64>(2)?.max(0) as u64,
                ))
            };
            let (k, n) = read().ctx(path, "read top ports")?;
            *acc.entry(k).or_default() += n;
        }
    }
    let mut v: Vec<(u16, u8, u64)> = acc.into_iter().map(|((p, t), n)| (p, t, n)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    v.truncate(limit as usize);
    Ok(v)
}

/// All-time figures of one sensor (both flow tables).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Start of the oldest and of the newest flow (0 when none).
    pub first_sec: u32,
    pub last_sec: u32,
}

/// The all-time totals of `sensor`: one pass over its rows (the caller
/// caches them; docs/UI.md says how long).
fn totals(conn: &Connection, sensor: u32) -> rusqlite::Result<Totals> {
    let mut t = Totals::default();
    for table in ["flow", "x_flow6"] {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT count(*), sum(src_packets + dst_packets), sum(src_bytes + dst_bytes), \
             min(src_start_sec), max(src_start_sec) FROM {table} WHERE sensor_id = ?1"
        ))?;
        let (n, pk, by, lo, hi): (i64, Option<i64>, Option<i64>, Option<u32>, Option<u32>) =
            stmt.query_row(params![sensor], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        if n <= 0 {
            continue;
        }
        t.flows += n as u64;
        t.packets += pk.unwrap_or(0).max(0) as u64;
        t.bytes += by.unwrap_or(0).max(0) as u64;
        if let Some(lo) = lo {
            t.first_sec = if t.first_sec == 0 {
                lo
            } else {
                t.first_sec.min(lo)
            };
        }
        t.last_sec = t.last_sec.max(hi.unwrap_or(0));
    }
    Ok(t)
}

/// What the flows matching a filter hold, read from at most `cap` of them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ResultSize {
    /// Flows read (`cap` when there are more).
    pub flows: u64,
    pub more: bool,
    pub packets: u64,
    pub bytes: u64,
    /// Start of the first flow, end of the last (unix seconds).
    pub first_sec: u32,
    pub last_sec: u32,
}

fn result_size(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    cap: u64,
) -> Result<ResultSize, MirrorError> {
    let mut out = ResultSize::default();
    let q = ConnQuery {
        after: None,
        ..q.clone()
    };
    for table in ["flow", "x_flow6"] {
        let mut p = Params::default();
        let Some(w) =
            filters(&q, table, &mut p, false, None).map_err(|e| bad(path, e.to_string()))?
        else {
            continue;
        };
        let left = cap.saturating_sub(out.flows);
        let lim = p.push(i64::try_from(left.saturating_add(1)).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT count(*), sum(src_packets + dst_packets), sum(src_bytes + dst_bytes), \
             min(src_start_sec), max(max(src_end_sec, dst_end_sec)) FROM \
             (SELECT * FROM {table}{} LIMIT {lim})",
            where_clause(&w)
        );
        let got = conn
            .prepare_cached(&sql)
            .ctx(path, "prepare result size")?
            .query_row(rusqlite::params_from_iter(p.0.iter()), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<u32>>(3)?,
                    r.get::<_, Option<u32>>(4)?,
                ))
            })
            .ctx(path, "run result size")?;
        let (n, pk, by, lo, hi) = got;
        let n = n.max(0) as u64;
        if n == 0 {
            continue;
        }
        if n > left {
            out.more = true;
        }
        out.flows += n.min(left);
        out.packets = out.packets.saturating_add(pk.unwrap_or(0).max(0) as u64);
        out.bytes = out.bytes.saturating_add(by.unwrap_or(0).max(0) as u64);
        if let Some(lo) = lo {
            out.first_sec = if out.first_sec == 0 {
                lo
            } else {
                out.first_sec.min(lo)
            };
        }
        out.last_sec = out.last_sec.max(hi.unwrap_or(0));
    }
    Ok(out)
}

/// Is `sensor` known to the mirror (a sensor row, or any flow)?
fn sensor_known(conn: &Connection, sensor: u32) -> rusqlite::Result<bool> {
    for sql in [
        "SELECT 1 FROM sensor WHERE sensor_id = ?1 LIMIT 1",
        "SELECT 1 FROM flow WHERE sensor_id = ?1 LIMIT 1",
        "SELECT 1 FROM x_flow6 WHERE sensor_id = ?1 LIMIT 1",
    ] {
        let mut stmt = conn.prepare_cached(sql)?;
        if stmt.exists(params![sensor])? {
            return Ok(true);
        }
    }
    Ok(false)
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

/// A host of the connections graph.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GraphNode {
    pub ip: String,
    /// Flows and bytes (both directions) it took part in, among those read.
    pub flows: u64,
    pub bytes: u64,
    /// A honeypot: the source of an outbound flow or the destination of an
    /// inbound one.
    pub honeypot: bool,
}

/// The flows between two hosts (source to destination) in the graph.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GraphEdge {
    pub src: String,
    pub dst: String,
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Protocol numbers seen, ascending.
    pub protos: Vec<u8>,
    /// The most used destination ports (TCP/UDP), at most 5, most used first.
    pub dst_ports: Vec<u16>,
}

/// The connections graph of a filter.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    /// Flows read: the newest `WINDOW` matches at most.
    pub flows: u64,
    /// More flows matched than were read.
    pub window_cut: bool,
    /// Hosts and host pairs among the flows read.
    pub nodes_total: u64,
    pub edges_total: u64,
    /// Some hosts or pairs are not drawn (the caps below).
    pub cut: bool,
    pub max_nodes: u32,
    pub max_edges: u32,
}

/// The connections graph of `q`: hosts as nodes, the flows between two
/// hosts as one edge, from the newest `WINDOW` matches (the bounded plan
/// of sorted pages), the heaviest pairs (bytes) first until `max_edges`
/// edges or `max_nodes` hosts are drawn.
fn graph(
    conn: &Connection,
    path: &str,
    q: &ConnQuery,
    max_nodes: u32,
    max_edges: u32,
) -> Result<Graph, MirrorError> {
    let q = ConnQuery {
        after: None,
        offset: 0,
        count: false,
        ..q.clone()
    };
    let (mut rows, scan_cut) = newest_matches(conn, path, &q, WINDOW)?;
    let window_cut = rows.len() > WINDOW as usize || scan_cut;
    rows.truncate(WINDOW as usize);
    type Pair = (String, String);
    let mut pairs: std::collections::HashMap<Pair, (GraphEdge, BTreeMap<u16, u64>)> =
        std::collections::HashMap::new();
    let mut hosts: std::collections::HashMap<String, GraphNode> = std::collections::HashMap::new();
    for r in &rows {
        let bytes = r.src_bytes.saturating_add(r.dst_bytes);
        let (e, ports) = pairs
            .entry((r.src_ip.clone(), r.dst_ip.clone()))
            .or_insert_with(|| {
                (
                    GraphEdge {
                        src: r.src_ip.clone(),
                        dst: r.dst_ip.clone(),
                        flows: 0,
                        packets: 0,
                        bytes: 0,
                        protos: Vec::new(),
                        dst_ports: Vec::new(),
                    },
                    BTreeMap::new(),
                )
            });
        e.flows += 1;
        e.packets = e
            .packets
            .saturating_add(r.src_packets.saturating_add(r.dst_packets));
        e.bytes = e.bytes.saturating_add(bytes);
        if !e.protos.contains(&r.ip_proto) {
            e.protos.push(r.ip_proto);
        }
        if matches!(r.ip_proto, 6 | 17) {
            *ports.entry(r.dst_port).or_default() += 1;
        }
        for (ip, honeypot) in [(&r.src_ip, r.is_local != 0), (&r.dst_ip, r.is_local == 0)] {
            let n = hosts.entry(ip.clone()).or_insert_with(|| GraphNode {
                ip: ip.clone(),
                flows: 0,
                bytes: 0,
                honeypot: false,
            });
            n.flows += 1;
            n.bytes = n.bytes.saturating_add(bytes);
            n.honeypot |= honeypot;
        }
    }
    let mut all: Vec<GraphEdge> = pairs
        .into_values()
        .map(|(mut e, ports)| {
            let mut p: Vec<(u16, u64)> = ports.into_iter().collect();
            p.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            e.dst_ports = p.into_iter().take(5).map(|(port, _)| port).collect();
            e.protos.sort_unstable();
            e
        })
        .collect();
    all.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.flows.cmp(&a.flows))
            .then_with(|| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)))
    });
    let (nodes_total, edges_total) = (hosts.len() as u64, all.len() as u64);
    let mut drawn: Vec<String> = Vec::new();
    let mut edges = Vec::new();
    for e in all {
        if edges.len() >= max_edges as usize {
            break;
        }
        let new = [&e.src, &e.dst]
            .iter()
            .filter(|ip| !drawn.contains(ip))
            .count()
            - usize::from(e.src == e.dst && !drawn.contains(&e.src));
        if drawn.len() + new > max_nodes as usize {
            continue;
        }
        for ip in [&e.src, &e.dst] {
            if !drawn.contains(ip) {
                drawn.push(ip.clone());
            }
        }
        edges.push(e);
    }
    let nodes: Vec<GraphNode> = drawn.iter().filter_map(|ip| hosts.remove(ip)).collect();
    Ok(Graph {
        cut: (edges.len() as u64) < edges_total,
        nodes,
        edges,
        flows: rows.len() as u64,
        window_cut,
        nodes_total,
        edges_total,
        max_nodes,
        max_edges,
    })
}

/// Flows of a host read per sensor and role for its OS history (the
/// newest first); past it the history covers these only.
pub const OS_HISTORY_WINDOW: u32 = 2000;

/// A host's p0f OS history as its flows name it, from its newest
/// `window` flows per sensor and role (client: the host is the source;
/// server: the destination), each read through hflow's host indexes in
/// time order: a bounded plan whatever the host's share of the table (the
/// scanner of a honeynet is the source of nearly every flow, and an exact
/// history read all of them: 1.8 s over 1 M flows). Returns the rows and
/// whether some sensor and role had more flows than the window.
fn host_os_history(
    conn: &Connection,
    path: &str,
    ip: std::net::Ipv4Addr,
    window: u32,
) -> Result<(Vec<super::OsSeen>, bool), MirrorError> {
    /// (sensor, os, role) -> (first, last, flows, newest flow with that OS)
    type Groups = BTreeMap<(u32, u32, &'static str), (i64, i64, u64, u32)>;
    let mut groups = Groups::new();
    let mut cut = false;
    let addr = i64::from(u32::from(ip));
    for sensor in sensor_ids(conn, "flow").ctx(path, "list sensors")? {
        for (role, index, end, os) in [
            ("client", "src_ip_idx", "src_ip", "client_os_id"),
            ("server", "dst_ip_idx", "dst_ip", "server_os_id"),
        ] {
            let sql = format!(
                "SELECT {os}, src_start_sec, max(src_end_sec, dst_end_sec), flow_id \
                 FROM flow INDEXED BY {index} WHERE sensor_id = ?1 AND {end} = ?2 \
                 ORDER BY src_start_sec DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql).ctx(path, "prepare os history")?;
            let mut rows = stmt
                .query(params![sensor, addr, window])
                .ctx(path, "run os history")?;
            let mut read = 0u32;
            while let Some(r) = rows.next().ctx(path, "read os history")? {
                read += 1;
                let got = || -> rusqlite::Result<(u32, i64, i64, u32)> {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                };
                let (os_id, first, last, flow) = got().ctx(path, "read os history")?;
                if os_id == 0 {
                    continue;
                }
                let g = groups
                    .entry((sensor, os_id, role))
                    .or_insert((first, last, 0, flow));
                g.0 = g.0.min(first);
                g.1 = g.1.max(last);
                g.2 += 1;
            }
            cut |= read >= window;
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((sensor, os_id, role), (first, last, flows, flow)) in groups {
        let mut name = conn
            .prepare_cached(
                "SELECT coalesce(genre, ''), coalesce(detail, '') FROM os \
                 WHERE os_id = ?1 AND sensor_id = ?2",
            )
            .ctx(path, "prepare os name")?;
        let Some((genre, detail)) = name
            .query_row(params![os_id, sensor], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .ctx(path, "read os name")?
        else {
            continue;
        };
        // p0f's class of the match, from the fingerprint that named the
        // group's newest flow (one index seek; `!` is an application).
        let application: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM x_os_fingerprint \
                 INDEXED BY x_os_fingerprint_flow_os_idx \
                 WHERE sensor_id = ?1 AND flow_id = ?2 AND os_id = ?3 AND class = '!')",
            )
            .ctx(path, "prepare os class")?
            .query_row(params![sensor, flow, os_id], |r| r.get(0))
            .ctx(path, "read os class")?;
        out.push(super::OsSeen {
            sensor_id: sensor,
            os_id,
            genre,
            detail,
            application,
            role: role.to_string(),
            first_sec: first,
            last_sec: last,
            flows,
        });
    }
    out.sort_by_key(|o| (o.first_sec, o.sensor_id, o.os_id));
    Ok((out, cut))
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
    ) -> Result<AggPage, MirrorError> {
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

    /// Flows and bytes matching `q` started per `bucket` seconds between
    /// `from` and `to`.
    pub fn series(
        &self,
        q: &ConnQuery,
        from: u32,
        to: u32,
        bucket: u32,
    ) -> Result<Vec<SeriesPoint>, MirrorError> {
        series(&self.conn, &self.path, q, from, to, bucket.max(1))
    }

    /// The most used TCP/UDP destination ports of the flows matching `q`:
    /// (port, proto, flows).
    pub fn top_ports(
        &self,
        q: &ConnQuery,
        from: u32,
        to: u32,
        limit: u32,
    ) -> Result<Vec<(u16, u8, u64)>, MirrorError> {
        top_ports(&self.conn, &self.path, q, from, to, limit)
    }

    /// All-time flows, packets, bytes and first/last flow of `sensor`.
    pub fn totals(&self, sensor: u32) -> Result<Totals, MirrorError> {
        totals(&self.conn, sensor).ctx(&self.path, "query sensor totals")
    }

    /// Flows, packets and bytes of the flows matching `q` (at most `cap`
    /// flows read), and their time span.
    pub fn result_size(&self, q: &ConnQuery, cap: u64) -> Result<ResultSize, MirrorError> {
        result_size(&self.conn, &self.path, q, cap)
    }

    /// Whether the mirror knows `sensor` at all.
    pub fn sensor_known(&self, sensor: u32) -> Result<bool, MirrorError> {
        sensor_known(&self.conn, sensor).ctx(&self.path, "look up a sensor")
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

    /// The connections graph of `q` (at most `max_nodes` hosts and
    /// `max_edges` host pairs, from the newest WINDOW matches).
    pub fn graph(
        &self,
        q: &ConnQuery,
        max_nodes: u32,
        max_edges: u32,
    ) -> Result<Graph, MirrorError> {
        graph(&self.conn, &self.path, q, max_nodes, max_edges)
    }

    /// A host's p0f OS history from its newest `window` flows per sensor
    /// and role, and whether older flows were left out.
    pub fn host_os_history(
        &self,
        ip: std::net::Ipv4Addr,
        window: u32,
    ) -> Result<(Vec<super::OsSeen>, bool), MirrorError> {
        host_os_history(&self.conn, &self.path, ip, window)
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

    /// The total is exact under TOTAL_CAP and "at least" past it; a flow
    /// matching a host on both sides counts once.
    #[test]
    fn totals_are_exact_or_marked_approximate() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, 3000);
        fill(&m, 9, 2 * TOTAL_CAP as u32);
        let count = |q: ConnQuery| {
            let p = m.connections(&ConnQuery { count: true, ..q }).unwrap();
            (p.total, p.total_exact)
        };
        let base = ConnQuery {
            limit: 10,
            ..ConnQuery::default()
        };
        assert_eq!(
            count(ConnQuery {
                sensor: Some(5),
                ..base.clone()
            }),
            (3000, true)
        );
        let (n, exact) = count(base.clone());
        assert!(!exact && n >= TOTAL_CAP as u64, "{n}");
        // 10.0.0.99 as source, on either side: each of its flows once.
        let rare = ConnQuery {
            sensor: Some(5),
            ip: Some((IpAddr::V4(0x0a00_0063.into()), 32)),
            ..base.clone()
        };
        assert_eq!(count(rare), (3, true));
        // The destination is every flow's: either side still counts each once.
        let dst = ConnQuery {
            sensor: Some(5),
            ip: Some((IpAddr::V4(0xc000_020a.into()), 32)),
            ..base
        };
        assert_eq!(count(dst), (3000, true));
    }

    /// Sorting and collapsing read the newest WINDOW matches (and say
    /// when there were more); pages by offset cover each row once.
    #[test]
    fn sorted_and_collapsed_pages_are_window_pages() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, 300);
        // Sizes: flow i has i bytes, so "bytes" order is flow id order.
        m.conn
            .execute_batch("UPDATE flow SET src_bytes = flow_id, src_packets = 1")
            .unwrap();
        let q = ConnQuery {
            sort: SortKey::Bytes,
            limit: 100,
            ..ConnQuery::default()
        };
        let mut seen = Vec::new();
        let mut q1 = q.clone();
        loop {
            let p = m.connections(&q1).unwrap();
            let w = p.window.clone().unwrap();
            assert!(!w.cut);
            seen.extend(p.rows.iter().map(|r| r.src_bytes));
            match w.next_offset {
                Some(o) => q1.offset = o,
                None => break,
            }
        }
        let want: Vec<u64> = (1..=300).rev().collect();
        assert_eq!(seen, want);
        // A time page refuses offset; a window page refuses a cursor.
        assert!(
            m.connections(&ConnQuery {
                offset: 5,
                limit: 10,
                ..ConnQuery::default()
            })
            .is_err()
        );
        // Collapse: every flow has its own size now, so make every third
        // one a copy of the others (but for its source port).
        m.conn
            .execute_batch(
                "UPDATE flow SET dst_port = 53, src_bytes = 60, src_ip = 167772161 \
                 WHERE flow_id % 3 = 0",
            )
            .unwrap();
        let c = m
            .connections(&ConnQuery {
                collapse: true,
                limit: 1000,
                ..ConnQuery::default()
            })
            .unwrap();
        let w = c.window.unwrap();
        assert_eq!(w.matches, 300);
        assert_eq!(w.rows, 201, "100 repeats as one row, 200 others");
        let group = c.rows.iter().find(|r| r.repeats > 1).unwrap();
        assert_eq!(group.repeats, 100);
        assert_eq!(group.flow_id, 300, "the newest stands for them");
        assert!(group.repeat_first_sec < group.start_sec);
    }

    /// Every group-by key answers, and a list longer than the limit says
    /// it was cut.
    #[test]
    fn aggregates_group_by_eight_keys_and_say_when_cut() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, 500);
        m.conn
            .execute_batch(
                "UPDATE flow SET client_os_id = 77 WHERE flow_id % 2 = 0; \
                 INSERT INTO os (os_id, sensor_id, genre, detail) VALUES (77, 5, 'Linux', '2.2.x-3.x')",
            )
            .unwrap();
        for (name, by) in GroupBy::ALL {
            let page = m.aggregate(&ConnQuery::default(), by, 100).unwrap();
            assert!(!page.rows.is_empty(), "{name}");
            let sum: u64 = page.rows.iter().map(|r| r.flows).sum();
            if !page.cut {
                assert_eq!(sum, 500, "{name}");
            }
        }
        let os = m
            .aggregate(&ConnQuery::default(), GroupBy::ClientOs, 100)
            .unwrap();
        let linux = os.rows.iter().find(|r| r.key == "77").unwrap();
        assert_eq!(linux.label, "Linux 2.2.x-3.x");
        assert_eq!(linux.flows, 250);
        // 500 source ports, 100 shown: cut. Two sensors' worth: not.
        let ports = m
            .aggregate(&ConnQuery::default(), GroupBy::SrcPort, 100)
            .unwrap();
        assert!(ports.cut && ports.rows.len() == 100);
        let sensors = m
            .aggregate(&ConnQuery::default(), GroupBy::Sensor, 100)
            .unwrap();
        assert!(!sensors.cut);
        let addrs = m
            .aggregate(&ConnQuery::default(), GroupBy::SrcIp, 2)
            .unwrap();
        assert!(addrs.cut && addrs.rows.len() == 2, "3 sources, 2 shown");
        // The table's row names the OS too.
        let row = m.flow_row(5, 2).unwrap().unwrap();
        assert_eq!(row.client_os, "Linux 2.2.x-3.x");
    }

    /// The host's OS history is exact within the window, and says when
    /// the host had more flows than it reads.
    #[test]
    fn host_os_history_is_bounded_and_says_when_cut() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, 3000);
        fill(&m, 9, 300);
        m.conn
            .execute_batch(
                "UPDATE flow SET client_os_id = 77 WHERE flow_id % 2 = 0; \
                 UPDATE flow SET server_os_id = 78; \
                 INSERT INTO os (os_id, sensor_id, genre, detail) VALUES \
                   (77, 5, 'Linux', '2.2.x-3.x'), (77, 9, 'Linux', '2.2.x-3.x'), \
                   (78, 5, 'Windows', 'XP'), (78, 9, 'Windows', 'XP')",
            )
            .unwrap();
        // 10.0.0.1 is the source of every third flow: 1000 of sensor 5.
        let host = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let exact: i64 = m
            .conn
            .query_row(
                "SELECT count(*) FROM flow WHERE sensor_id = 5 AND src_ip = 167772161 \
                 AND client_os_id = 77",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let (rows, cut) = m.host_os_history(host, 5000).unwrap();
        assert!(!cut);
        let five = rows
            .iter()
            .find(|o| o.sensor_id == 5 && o.role == "client")
            .unwrap();
        assert_eq!((five.flows, five.genre.as_str()), (exact as u64, "Linux"));
        assert!(
            rows.iter().all(|o| o.role == "client"),
            "never a destination"
        );
        let (rows, cut) = m.host_os_history(host, 100).unwrap();
        assert!(cut);
        assert!(rows.iter().all(|o| o.flows <= 100), "{rows:?}");
        // The destination of every flow: its server OS.
        let (rows, _) = m
            .host_os_history(std::net::Ipv4Addr::new(192, 0, 2, 10), 5000)
            .unwrap();
        let server: u64 = rows
            .iter()
            .filter(|o| o.role == "server" && o.os_id == 78)
            .map(|o| o.flows)
            .sum();
        assert_eq!(server, 3300);
    }

    /// The graph: one edge per host pair, every flow read counted once,
    /// the caps on hosts and pairs cutting with a notice.
    #[test]
    fn the_connections_graph_is_capped_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, 3000);
        let g = m.graph(&ConnQuery::default(), 100, 300).unwrap();
        assert_eq!((g.nodes.len(), g.edges.len()), (4, 3));
        assert!(!g.cut && !g.window_cut);
        assert_eq!(g.edges.iter().map(|e| e.flows).sum::<u64>(), 3000);
        assert_eq!(g.flows, 3000);
        let dst = g.nodes.iter().find(|n| n.ip == "192.0.2.10").unwrap();
        assert_eq!(dst.flows, 3000);
        assert!(dst.honeypot, "the destination of inbound flows");
        assert!(
            g.edges.iter().all(|e| e.dst_ports.first() == Some(&80)),
            "80 most used"
        );
        // Two hosts: the heaviest pair only.
        let g = m.graph(&ConnQuery::default(), 2, 300).unwrap();
        assert_eq!((g.nodes.len(), g.edges.len(), g.cut), (2, 1, true));
        assert_eq!(g.edges_total, 3);
        let g = m.graph(&ConnQuery::default(), 100, 2).unwrap();
        assert_eq!((g.edges.len(), g.cut), (2, true));
        // A filter: the rare host's pair alone.
        let rare = ConnQuery {
            ip: Some((IpAddr::V4(0x0a00_0063.into()), 32)),
            ip_side: Side::Src,
            ..ConnQuery::default()
        };
        let g = m.graph(&rare, 100, 300).unwrap();
        assert_eq!(g.edges.len(), 1);
        assert_eq!(g.edges[0].src, "10.0.0.99");
    }

    /// Plots read per sensor through the range's index; a port on either
    /// side counts a flow once, as SQL over the whole table does.
    #[test]
    fn series_and_top_ports_count_each_matching_flow_once() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, 3000);
        fill(&m, 9, 300);
        m.conn
            .execute_batch("UPDATE flow SET src_port = 22 WHERE flow_id % 7 = 0")
            .unwrap();
        let (from, to) = m.time_span().unwrap().unwrap();
        let count = |sql: &str| -> u64 {
            let n: i64 = m.conn.query_row(sql, [], |r| r.get(0)).unwrap();
            n as u64
        };
        for (q, want) in [
            (ConnQuery::default(), count("SELECT count(*) FROM flow")),
            (
                ConnQuery {
                    port: Some(22),
                    ..ConnQuery::default()
                },
                count("SELECT count(*) FROM flow WHERE src_port = 22 OR dst_port = 22"),
            ),
            (
                ConnQuery {
                    port: Some(22),
                    port_side: Side::Dst,
                    sensor: Some(9),
                    ..ConnQuery::default()
                },
                count("SELECT count(*) FROM flow WHERE dst_port = 22 AND sensor_id = 9"),
            ),
        ] {
            let got: u64 = m
                .series(&q, from, to, 3600)
                .unwrap()
                .iter()
                .map(|p| p.flows)
                .sum();
            assert_eq!(got, want, "{q:?}");
            let ports: u64 = m
                .top_ports(&q, from, to, 100)
                .unwrap()
                .iter()
                .map(|p| p.2)
                .sum();
            assert_eq!(ports, want, "{q:?}");
        }
        // A narrower range: only its flows.
        let mid = from + (to - from) / 2;
        let got: u64 = m
            .series(&ConnQuery::default(), mid, to, 60)
            .unwrap()
            .iter()
            .map(|p| p.flows)
            .sum();
        assert_eq!(
            got,
            count(&format!(
                "SELECT count(*) FROM flow WHERE src_start_sec >= {mid}"
            ))
        );
    }

    /// Under a filter no index serves, a count and a window page read the
    /// newest SCAN_CAP rows of a sensor and say so.
    #[test]
    fn unindexed_filters_read_at_most_the_scan_cap() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::open(&dir.path().join("m.sqlite")).unwrap();
        fill(&m, 5, SCAN_CAP as u32 + 5000);
        m.conn
            .execute_batch("UPDATE flow SET src_bytes = 1000 WHERE flow_id % 100 = 0")
            .unwrap();
        let big = ConnQuery {
            sensor: Some(5),
            min_bytes: Some(1000),
            limit: 100,
            count: true,
            ..ConnQuery::default()
        };
        let page = m.connections(&big).unwrap();
        // The newest 20,000 rows hold 200 of the 250.
        assert_eq!((page.total, page.total_exact), (200, false));
        let sorted = m
            .connections(&ConnQuery {
                sort: SortKey::Bytes,
                ..big.clone()
            })
            .unwrap();
        let w = sorted.window.unwrap();
        assert_eq!((w.matches, w.cut), (200, true));
        // A time range under the cap: exact, and the window whole.
        let (from, to) = m.time_span().unwrap().unwrap();
        let recent = ConnQuery {
            since: Some(to - (to - from) / 4),
            ..big
        };
        let page = m.connections(&recent).unwrap();
        assert!(page.total_exact);
        let n: i64 = m
            .conn
            .query_row(
                "SELECT count(*) FROM flow WHERE src_bytes >= 1000 AND src_start_sec >= ?1",
                [recent.since.unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(page.total, n as u64);
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
