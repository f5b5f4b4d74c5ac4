//! The UI's HTTP surface: the page shell and assets, login/logout, and the
//! JSON API under `/api/v1` (docs/openapi.yaml) behind a session cookie.
//!
//! Owns request parsing and validation (a bad filter is a 400 naming the
//! parameter), authentication of UI requests, and the shape of every JSON
//! answer. Reads through `Web` (mirror pool, store summary, link states,
//! pcap service); writes nothing but session state.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use warp::http::{Method, Response, StatusCode};

use super::sessions::{COOKIE, token_from_cookie};
use super::{FAILED_LOGIN_DELAY, Reply, Request, Web, assets, error};
use crate::mirror::ui_query::{
    ConnQuery, Cursor, GroupBy, OS_HISTORY_WINDOW, Side, SortKey, WINDOW,
};
use crate::mirror::{MirrorError, ProcessQuery};
use crate::sync::links::load_state;

/// Rows per page when the request does not say.
pub const DEFAULT_PAGE: u32 = 100;

pub(super) fn json<T: Serialize>(value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => Response::builder()
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "reply")),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the reply",
        ),
    }
}

use crate::clock::now_secs as now;

/// A request parameter that cannot be used: answered 400 with a message
/// that starts with the parameter's name.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {why}")]
pub struct BadParam {
    name: String,
    why: String,
}

impl BadParam {
    pub(super) fn new(name: &str, why: &str) -> BadParam {
        BadParam {
            name: name.chars().take(40).collect(),
            why: why.to_string(),
        }
    }

    pub(super) fn reply(&self) -> Reply {
        bad_request(&self.to_string())
    }
}

/// A 400 whose body names the parameter at fault (`param`), taken from the
/// message's `name: ` prefix, so the page can show the error next to it.
fn bad_request(message: &str) -> Reply {
    let param = message
        .split_once(": ")
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    let body = serde_json::json!({ "error": message, "param": param }).to_string();
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap_or_else(|_| Response::new(Vec::new().into()))
}

/// A 400 naming the parameter and what is wrong with it.
fn bad_param(name: &str, why: &str) -> Reply {
    BadParam::new(name, why).reply()
}

/// Query failures: a query the mirror refuses is the client's (400), one
/// past the workers or its time is 503 with a Retry-After, a heavy view
/// over its rows 503 without one (asking for a narrower filter), the rest
/// is logged and answered without detail (500).
pub(super) fn mirror_error(e: super::QueryError) -> Reply {
    use super::QueryError;
    match e {
        QueryError::Mirror(crate::mirror::MirrorError::InvalidQuery { what, .. }) => {
            bad_request(&what)
        }
        QueryError::Busy | QueryError::TimedOut => {
            with_retry_after(error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()), 2)
        }
        // The same query would be stopped again: no Retry-After.
        QueryError::OverBudget(_) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        QueryError::Mirror(e) => {
            tracing::error!(error = %e, "UI query");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the mirror could not answer",
            )
        }
    }
}

/// The query string as ordered pairs; empty values count as absent.
pub(super) fn params(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.trim().to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

pub(super) fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, BadParam> {
    v.parse()
        .map_err(|_| BadParam::new(name, &format!("'{}' is not a valid number", clip(v))))
}

/// A number in `range`, else a message that gives the range.
pub(super) fn num_in<T>(
    name: &str,
    v: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<T, BadParam>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let why = || {
        format!(
            "'{}' is not {what} (use {} to {})",
            clip(v),
            range.start(),
            range.end()
        )
    };
    match v.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(BadParam::new(name, &why())),
    }
}

pub(super) fn clip(v: &str) -> String {
    v.chars().take(40).collect()
}

fn flag(name: &str, v: &str) -> Result<bool, BadParam> {
    match v {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(BadParam::new(name, "use 1 or 0")),
    }
}

fn side(name: &str, v: &str) -> Result<Side, BadParam> {
    match v {
        "either" | "any" => Ok(Side::Either),
        "src" => Ok(Side::Src),
        "dst" => Ok(Side::Dst),
        _ => Err(BadParam::new(name, "use either, src or dst")),
    }
}

fn time(name: &str, v: &str) -> Result<u32, BadParam> {
    crate::time_arg::parse_time(v).map_err(|e| BadParam::new(name, &e.to_string()))
}

pub fn parse_proto(v: &str) -> Option<u8> {
    match v.to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmp6" | "icmpv6" => Some(58),
        "sctp" => Some(132),
        n => n.parse().ok(),
    }
}

fn host(name: &str, v: &str) -> Result<(IpAddr, u8), BadParam> {
    match crate::net::parse(v) {
        Ok(n) => Ok((n.addr(), n.prefix_len())),
        Err(crate::net::NetError::Address(a)) => Err(BadParam::new(
            name,
            &format!("'{}' is not an IP address", clip(&a)),
        )),
        Err(e) => Err(BadParam::new(name, &e.to_string())),
    }
}

/// The connection-table filters of a query string; `extra` names the
/// other parameters the endpoint accepts (returned, not validated here).
fn conn_query(
    query: &str,
    extra: &[&str],
) -> Result<(ConnQuery, BTreeMap<String, String>), BadParam> {
    let mut q = ConnQuery {
        limit: DEFAULT_PAGE,
        count: true,
        ..ConnQuery::default()
    };
    let mut rest = BTreeMap::new();
    for (k, v) in params(query) {
        let v = v.as_str();
        match k.as_str() {
            "sensor" => q.sensor = Some(num_in("sensor", v, 0..=u32::MAX, "a sensor id")?),
            "since" => q.since = Some(time("since", v)?),
            "until" => q.until = Some(time("until", v)?),
            "ip" => q.ip = Some(host("ip", v)?),
            "ip_side" => q.ip_side = side("ip_side", v)?,
            "port" => q.port = Some(num_in("port", v, 0..=65535, "a port")?),
            "port_side" => q.port_side = side("port_side", v)?,
            "proto" => {
                q.proto = Some(parse_proto(v).ok_or_else(|| {
                    BadParam::new(
                        "proto",
                        &format!(
                            "'{}' is not a protocol (use a number 0 to 255 or tcp, udp, icmp, icmp6, sctp)",
                            clip(v)
                        ),
                    )
                })?)
            }
            "bidir" => q.bidirectional = flag("bidir", v)?,
            "min_bytes" => {
                q.min_bytes = Some(num_in("min_bytes", v, 0..=i64::MAX as u64, "a byte count")?)
            }
            "alerts" => q.alerts_only = flag("alerts", v)?,
            "client_os" => q.client_os = Some(num_in("client_os", v, 0..=u32::MAX, "an OS id")?),
            "server_os" => q.server_os = Some(num_in("server_os", v, 0..=u32::MAX, "an OS id")?),
            "sort" => {
                q.sort = SortKey::parse(v).ok_or_else(|| {
                    BadParam::new("sort", "use time, bytes, packets or duration")
                })?
            }
            "collapse" => q.collapse = flag("collapse", v)?,
            "offset" => q.offset = num_in("offset", v, 0..=WINDOW - 1, "a row offset")?,
            "after" => {
                q.after = Some(Cursor::parse(v).ok_or_else(|| {
                    BadParam::new(
                        "after",
                        "not a cursor (use the `next` of the previous page)",
                    )
                })?)
            }
            "limit" => q.limit = num_in("limit", v, 1..=1000, "a page size")?,
            other if extra.contains(&other) => {
                rest.insert(other.to_string(), v.to_string());
            }
            other => return Err(BadParam::new(other, "unknown parameter")),
        }
    }
    if let (Some(a), Some(b)) = (q.since, q.until)
        && a > b
    {
        return Err(BadParam::new("until", "is before since"));
    }
    Ok((q, rest))
}

/// A 400 naming `sensor` when the mirror knows no such sensor (an unknown
/// sensor is a typo far more often than a quiet one).
fn check_sensor(m: &crate::mirror::Mirror, sensor: Option<u32>) -> Result<(), MirrorError> {
    match sensor {
        Some(s) if !m.sensor_known(s)? => Err(MirrorError::InvalidQuery {
            path: crate::node::MIRROR_FILE.into(),
            what: format!("sensor: no sensor {s} is known here (the overview lists them)"),
        }),
        _ => Ok(()),
    }
}

fn set_cookie(value: &str, max_age: u64) -> String {
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// Percent-decoding of one path segment; None if it is not UTF-8 after.
/// A `%` not followed by two hex digits stays as it is.
fn decode_segment(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The host part of a Host header value (without the port; an IPv6
/// literal without its brackets).
fn host_name(header: &str) -> &str {
    let h = header.trim();
    if let Some(v6) = h.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => h,
    }
}

/// True when the UI may answer a request naming `host`: an address literal
/// (no DNS to rebind), `localhost`, or a name in `ui.allowed_hosts`. A
/// request without a Host header comes from no browser, and is answered.
pub fn host_allowed(allowed: &[String], host: Option<&str>) -> bool {
    let Some(header) = host else { return true };
    let name = host_name(header);
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed
            .iter()
            .any(|a| host_name(a).eq_ignore_ascii_case(name))
}

/// Entry point of every UI request.
pub async fn handle(web: Arc<Web>, req: Request) -> Reply {
    if !host_allowed(&web.config.ui.allowed_hosts, req.host.as_deref()) {
        tracing::warn!(remote = ?req.remote, host = ?req.host, "UI request for a host name not allowed (ui.allowed_hosts)");
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "this host name is not served here (ui.allowed_hosts)",
        );
    }
    let Some(decoded) = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect::<Option<Vec<String>>>()
    else {
        return error(StatusCode::BAD_REQUEST, "path: not UTF-8");
    };
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let is_get = req.method == Method::GET || req.method == Method::HEAD;
    match segs.as_slice() {
        ["assets", name] if is_get => return assets::asset(name),
        ["api", "v1", "login"] if req.method == Method::POST => return login(&web, &req).await,
        ["api", "v1", "logout"] if req.method == Method::POST => return logout(&web, &req),
        ["api", ..] => {}
        _ if is_get => return assets::page(),
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
    // Everything else under /api needs a live session.
    let user = req
        .cookie
        .as_deref()
        .and_then(token_from_cookie)
        .and_then(|t| web.session_user(t));
    let Some(user) = user else {
        return error(StatusCode::UNAUTHORIZED, "log in first");
    };
    if !is_get {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let q = req.query.as_str();
    match segs.as_slice() {
        ["api", "v1", "me"] => json(&serde_json::json!({ "user": user })),
        ["api", "v1", "sensors"] => sensors(&web).await,
        ["api", "v1", "flows"] => flows(&web, q).await,
        ["api", "v1", "aggregate"] => aggregate(&web, q).await,
        ["api", "v1", "pcap"] => results_pcap(&web, q).await,
        ["api", "v1", "flows", s, f] => flow_detail(&web, s, f).await,
        ["api", "v1", "flows", s, f, "pcap"] => pcap(&web, s, f).await,
        ["api", "v1", "flows", s, f, "packets"] => super::packets::packets(&web, s, f, q).await,
        ["api", "v1", "hosts", ip] => host_detail(&web, ip).await,
        ["api", "v1", "processes", s, p] => process_tree(&web, s, p).await,
        ["api", "v1", "processes", s, p, "reads"] => reads(&web, s, p, q).await,
        ["api", "v1", "processes", s, p, "keystrokes"] => {
            super::sebek::keystrokes(&web, s, p).await
        }
        ["api", "v1", "sessions"] => super::sebek::sessions(&web, q).await,
        ["api", "v1", "dag"] => dag(&web).await,
        ["api", "v1", "plots"] => plots(&web, q).await,
        ["api", "v1", "graph"] => graph(&web, q).await,
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// `r` with a Retry-After of `secs`.
pub fn with_retry_after(mut r: Reply, secs: u64) -> Reply {
    if let Ok(v) = secs.to_string().parse() {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

/// Cross-site requests are refused: a browser always sends Origin on a
/// POST, and it must be this host.
fn same_origin(req: &Request) -> bool {
    match (&req.origin, &req.host) {
        (None, _) => true,
        (Some(o), Some(h)) => o == &format!("http://{h}") || o == &format!("https://{h}"),
        (Some(_), None) => false,
    }
}

#[derive(serde::Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

async fn login(web: &Arc<Web>, req: &Request) -> Reply {
    if !same_origin(req) {
        return error(StatusCode::FORBIDDEN, "cross-origin login refused");
    }
    if !req
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send {\"user\": ..., \"password\": ...} as application/json",
        );
    }
    let Ok(body) = serde_json::from_slice::<LoginBody>(&req.body) else {
        return bad_param("body", "expected {\"user\": ..., \"password\": ...}");
    };
    let remote = req.remote.map(|r| r.ip());
    let ip = remote.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let attempt = match web.sessions.begin_login(ip, &body.user) {
        Ok(a) => a,
        Err(t) => {
            tracing::warn!(?remote, user = ?clip(&body.user), limit = t.what, "UI login throttled");
            let message = format!("too many failed logins for {}; wait a few minutes", t.what);
            return with_retry_after(
                error(StatusCode::TOO_MANY_REQUESTS, &message),
                t.retry_after.as_secs().max(1),
            );
        }
    };
    let checked = web
        .check_login_bounded(body.user.clone(), body.password)
        .await;
    let Ok(ok) = checked else {
        // Not checked: not a failure either.
        attempt.succeeded();
        tracing::warn!(?remote, "UI login: password checks busy");
        return with_retry_after(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many logins at once; try again shortly",
            ),
            1,
        );
    };
    if !ok {
        drop(attempt);
        tracing::warn!(?remote, user = ?clip(&body.user), "UI login refused");
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    }
    attempt.succeeded();
    let Some(token) = web.sessions.open(&body.user) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session",
        );
    };
    tracing::info!(?remote, user = ?body.user, "UI login");
    let mut r = json(&serde_json::json!({ "user": body.user }));
    if let Ok(v) = set_cookie(&token, web.config.ui.session_max_secs).parse() {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}

fn logout(web: &Arc<Web>, req: &Request) -> Reply {
    if !same_origin(req) {
        return error(StatusCode::FORBIDDEN, "cross-origin logout refused");
    }
    if let Some(t) = req.cookie.as_deref().and_then(token_from_cookie) {
        web.sessions.close(t);
    }
    let mut r = json(&serde_json::json!({ "logged_out": true }));
    if let Ok(v) = set_cookie("", 0).parse() {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}

/// One sensor of the overview.
#[derive(Serialize)]
struct SensorView {
    sensor_id: u32,
    name: String,
    state: String,
    /// Id (hex, shortened) of the incarnation's first segment.
    incarnation: String,
    /// The honeywall's management address, when its origin recorded it.
    manage_ip: Option<String>,
    /// Incarnations at the same address installed before this one (this one
    /// is a reinstall of them), oldest first.
    earlier: Vec<crate::mirror::incarnations::Neighbour>,
    /// Incarnations at the same address installed after this one (they
    /// replaced it), oldest first.
    later: Vec<crate::mirror::incarnations::Neighbour>,
    install_sec: i64,
    newest_record_sec: u64,
    /// Seconds since the newest record (none when nothing was ever recorded).
    lag_secs: Option<u64>,
    silent: bool,
    decommissioned: bool,
    /// 0 here, else how many links away the origin is.
    hops: Option<u32>,
    /// This node, then the child the sensor comes through, then further hops.
    path: Vec<String>,
    /// Last successful pull of the link it comes through (unix seconds).
    last_pull: Option<u64>,
    last_pull_error: String,
    last_hour: crate::mirror::ui_query::Activity,
    last_day: crate::mirror::ui_query::Activity,
    /// online, silent or decommissioned: the word the row's colour shows.
    status: &'static str,
    /// All-time flows, packets, bytes, first and last flow.
    totals: crate::mirror::ui_query::Totals,
    /// The honeypot networks that decide this sensor's flow directions
    /// (this node's `capture.honeypot_nets` for its own sensors); None when
    /// they are set at the sensor's origin, below.
    honeypot_nets: Option<Vec<String>>,
}

/// The overview's all-time totals of `sensors`. A total is one pass over a
/// sensor's rows (seconds at 10 M flows), so figures are cached: read again
/// here when the mirror's flow count moved and it is small
/// (`TOTALS_INLINE_FLOWS`) or a sensor is not in the cache yet; otherwise the
/// cached figures are answered and [`refresh_totals`] re-reads them in the
/// background once they are past `TOTALS_TTL` or the count moved.
fn cached_totals(
    web: &Arc<Web>,
    m: &crate::mirror::Mirror,
    sensors: &[u32],
) -> Result<BTreeMap<u32, crate::mirror::ui_query::Totals>, MirrorError> {
    let flows = m.flow_count()?;
    let cached = web
        .totals_cache
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    let fresh =
        cached.flows == flows && cached.at.is_some_and(|at| at.elapsed() < super::TOTALS_TTL);
    let covered = sensors.iter().all(|s| cached.by_sensor.contains_key(s));
    if covered && (fresh || flows > super::TOTALS_INLINE_FLOWS) {
        if !fresh {
            refresh_totals(web);
        }
        return Ok(cached.by_sensor);
    }
    let mut by_sensor = if flows > super::TOTALS_INLINE_FLOWS {
        cached.by_sensor
    } else {
        BTreeMap::new()
    };
    for s in sensors {
        if !by_sensor.contains_key(s) {
            by_sensor.insert(*s, m.totals(*s)?);
        }
    }
    if flows > super::TOTALS_INLINE_FLOWS {
        refresh_totals(web);
    } else if let Ok(mut cache) = web.totals_cache.lock() {
        *cache = super::Totals {
            at: Some(std::time::Instant::now()),
            flows,
            by_sensor: by_sensor.clone(),
        };
    }
    Ok(by_sensor)
}

/// Re-reads every sensor's totals on a query worker, unless a refresh
/// already runs (also called at the UI's start, to warm the cache before
/// anyone asks).
pub fn refresh_totals(web: &Arc<Web>) {
    if web
        .totals_refreshing
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    let web = web.clone();
    tokio::spawn(async move {
        let web2 = web.clone();
        let read = web
            .with_mirror(move |m| {
                let flows = m.flow_count()?;
                let mut ids: Vec<u32> = m.sensor_rows()?.iter().map(|r| r.sensor_id).collect();
                if let Ok(cache) = web2.totals_cache.lock() {
                    ids.extend(cache.by_sensor.keys());
                }
                ids.sort_unstable();
                ids.dedup();
                let mut by_sensor = BTreeMap::new();
                for s in ids {
                    by_sensor.insert(s, m.totals(s)?);
                }
                Ok(super::Totals {
                    at: Some(std::time::Instant::now()),
                    flows,
                    by_sensor,
                })
            })
            .await;
        match read {
            Ok(t) => {
                if let Ok(mut cache) = web.totals_cache.lock() {
                    *cache = t;
                }
            }
            Err(e) => tracing::warn!(error = %e, "overview totals not refreshed"),
        }
        web.totals_refreshing
            .store(false, std::sync::atomic::Ordering::Release);
    });
}

async fn sensors(web: &Arc<Web>) -> Reply {
    let peer = web.peer.clone();
    let summary = match tokio::task::spawn_blocking(move || peer.summary()).await {
        Ok(Ok(s)) => s,
        _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "summary unavailable"),
    };
    // Which child each sensor comes through: the fewest hops.
    let mut via: BTreeMap<u32, (u32, String, u64, String)> = BTreeMap::new();
    for child in &web.config.children {
        let Ok(state) = load_state(&web.store, &child.name) else {
            continue;
        };
        for s in state.summary.iter().flat_map(|s| s.sensors.iter()) {
            let better = via.get(&s.sensor_id).is_none_or(|(h, ..)| s.hops < *h);
            if better {
                via.insert(
                    s.sensor_id,
                    (
                        s.hops,
                        child.name.clone(),
                        state.last_success,
                        state.last_error.clone(),
                    ),
                );
            }
        }
    }
    let now = now();
    let hour = u32::try_from(now.saturating_sub(3600)).unwrap_or(u32::MAX);
    let day = u32::try_from(now.saturating_sub(86400)).unwrap_or(u32::MAX);
    let now32 = u32::try_from(now).unwrap_or(u32::MAX);
    let ids: Vec<u32> = summary.sensors.iter().map(|s| s.sensor_id).collect();
    let web2 = web.clone();
    let rows = web
        .with_mirror(move |m| {
            let mut rows = m.sensor_rows()?;
            let mut acts = BTreeMap::new();
            let mut all: Vec<u32> = ids;
            all.extend(rows.iter().map(|r| r.sensor_id));
            all.sort_unstable();
            all.dedup();
            for s in &all {
                acts.insert(
                    *s,
                    (m.activity(*s, hour, now32)?, m.activity(*s, day, now32)?),
                );
            }
            rows.sort_by_key(|r| r.sensor_id);
            let totals = cached_totals(&web2, m, &all)?;
            Ok((rows, acts, m.incarnations()?, totals))
        })
        .await;
    let (rows, acts, incarnations, totals) = match rows {
        Ok(r) => r,
        Err(e) => return mirror_error(e),
    };
    let node_name = format!("this node ({})", &summary.node_id.get(..8).unwrap_or(""));
    let mut out = Vec::new();
    for (sensor_id, (hour, day)) in acts {
        let s = summary.sensors.iter().find(|s| s.sensor_id == sensor_id);
        let row = rows.iter().find(|r| r.sensor_id == sensor_id);
        let inc = incarnations.iter().find(|i| i.sensor_id == sensor_id);
        let newest = s
            .map(|s| s.newest_ns / 1_000_000_000)
            .unwrap_or(0)
            .max(u64::from(day.newest_flow_sec));
        let decommissioned = web.config.decommissioned.contains(&sensor_id);
        let lag = now.saturating_sub(newest);
        let hops = s.map(|s| s.hops);
        let mut path = vec![node_name.clone()];
        let (mut last_pull, mut last_err) = (None, String::new());
        if let Some(h) = hops.filter(|h| *h > 0) {
            if let Some((_, child, success, err)) = via.get(&sensor_id) {
                path.push(child.clone());
                last_pull = (*success > 0).then_some(*success);
                last_err = err.clone();
            }
            if h > 1 {
                path.push(format!(
                    "{} more hop{}",
                    h - 1,
                    if h > 2 { "s" } else { "" }
                ));
            }
        }
        let silent = !decommissioned && (newest == 0 || lag > web.config.serve.silent_after_secs);
        out.push(SensorView {
            status: if decommissioned {
                "decommissioned"
            } else if silent {
                "silent"
            } else {
                "online"
            },
            totals: totals.get(&sensor_id).cloned().unwrap_or_default(),
            honeypot_nets: (hops == Some(0)).then(|| web.config.capture.honeypot_nets.clone()),
            sensor_id,
            name: row.map(|r| r.name.clone()).unwrap_or_default(),
            state: row.map(|r| r.state.clone()).unwrap_or_default(),
            incarnation: s
                .map(|s| s.first_id.chars().take(16).collect())
                .unwrap_or_default(),
            manage_ip: inc.and_then(|i| i.manage_ip.clone()),
            earlier: inc.map(|i| i.earlier.clone()).unwrap_or_default(),
            later: inc.map(|i| i.later.clone()).unwrap_or_default(),
            install_sec: row.map(|r| r.install_sec).unwrap_or(0),
            newest_record_sec: newest,
            lag_secs: (newest > 0).then_some(lag),
            silent,
            decommissioned,
            hops,
            path,
            last_pull,
            last_pull_error: last_err,
            last_hour: hour,
            last_day: day,
        });
    }
    json(&serde_json::json!({
        "node_id": summary.node_id,
        "now": now,
        "silent_after_secs": web.config.serve.silent_after_secs,
        "totals_max_age_secs": super::TOTALS_TTL.as_secs(),
        "honeypot_nets": web.config.capture.honeypot_nets,
        "sensors": out,
    }))
}

async fn flows(web: &Arc<Web>, query: &str) -> Reply {
    let (q, _) = match conn_query(query, &[]) {
        Ok(q) => q,
        Err(r) => return r.reply(),
    };
    let got = web
        .with_mirror(move |m| {
            check_sensor(m, q.sensor)?;
            m.connections(&q)
        })
        .await;
    match got {
        Ok(page) => json(&page),
        Err(e) => mirror_error(e),
    }
}

/// Hosts and host pairs the graph draws when the request does not say.
pub const GRAPH_NODES: u32 = 100;
pub const GRAPH_EDGES: u32 = 300;

/// `GET /api/v1/graph`: the connections graph of the table's filters.
async fn graph(web: &Arc<Web>, query: &str) -> Reply {
    let (q, rest) = match conn_query(query, &["nodes", "edges"]) {
        Ok(q) => q,
        Err(r) => return r.reply(),
    };
    let cap = |name: &str, default: u32, max: u32| match rest.get(name) {
        None => Ok(default),
        Some(v) => num_in(name, v, 1..=max, "a count"),
    };
    let (nodes, edges) = match (
        cap("nodes", GRAPH_NODES, 500),
        cap("edges", GRAPH_EDGES, 2000),
    ) {
        (Ok(n), Ok(e)) => (n, e),
        (Err(r), _) | (_, Err(r)) => return r.reply(),
    };
    let got = web
        .with_heavy_mirror(move |m| {
            check_sensor(m, q.sensor)?;
            m.graph(&q, nodes, edges)
        })
        .await;
    match got {
        Ok(g) => json(&g),
        Err(e) => mirror_error(e),
    }
}

async fn aggregate(web: &Arc<Web>, query: &str) -> Reply {
    let (mut q, rest) = match conn_query(query, &["by"]) {
        Ok(q) => q,
        Err(r) => return r.reply(),
    };
    let by = match rest.get("by").map(String::as_str) {
        None => GroupBy::DstIp,
        Some(v) => match GroupBy::parse(v) {
            Some(g) => g,
            None => {
                let keys: Vec<&str> = GroupBy::ALL.iter().map(|(n, _)| *n).collect();
                return bad_param("by", &format!("use one of {}", keys.join(", ")));
            }
        },
    };
    let limit = q.limit;
    q.after = None;
    let got = web
        .with_heavy_mirror(move |m| {
            check_sensor(m, q.sensor)?;
            m.aggregate(&q, by, limit)
        })
        .await;
    match got {
        Ok(page) => json(&page),
        Err(e) => mirror_error(e),
    }
}

fn ids(s: &str, f: &str) -> Result<(u32, u32), BadParam> {
    Ok((num("sensor", s)?, num("flow", f)?))
}

async fn flow_detail(web: &Arc<Web>, s: &str, f: &str) -> Reply {
    let (sensor, flow) = match ids(s, f) {
        Ok(v) => v,
        Err(r) => return r.reply(),
    };
    let got = web
        .with_mirror(move |m| {
            let Some(row) = m.flow_row(sensor, flow)? else {
                return Ok(None);
            };
            let alerts = m.alerts(sensor, flow)?;
            let procs = m.processes(&ProcessQuery {
                sensor: Some(sensor),
                flow: Some(flow),
                ..ProcessQuery::default()
            })?;
            let community_id = m.flow_community_id(sensor, flow)?;
            Ok(Some((row, alerts, procs, community_id)))
        })
        .await;
    match got {
        Ok(Some((row, alerts, procs, community_id))) => json(&serde_json::json!({
            "flow": row,
            "community_id": community_id,
            "alerts": alerts,
            "processes": procs,
            "pcap": format!("/api/v1/flows/{sensor}/{flow}/pcap"),
        })),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!("no flow {flow} of sensor {sensor}"),
        ),
        Err(e) => mirror_error(e),
    }
}

async fn pcap(web: &Arc<Web>, s: &str, f: &str) -> Reply {
    let (sensor, flow) = match ids(s, f) {
        Ok(v) => v,
        Err(r) => return r.reply(),
    };
    // The pcap service decides: here, or proxied down to the child nearest
    // the sensor's origin (signed with this node's link secret).
    crate::sync::pcap_http::pcap(
        &web.peer.store,
        &web.peer.config,
        &format!("sensor={sensor}&con_id={flow}"),
        None,
    )
    .await
}

/// Flows a "pcap of these results" may cover; past it the answer is 413.
pub const PCAP_MAX_FLOWS: u64 = 100_000;

/// The pcap_api query (docs/PROTOCOL.md) for the connection table's
/// filters: the sensor, the matching flows' time span, the address as
/// net/snet/dnet, the port as port/sport/dport (with TCP and UDP when no
/// protocol is given: pcap_api applies ports to those only).
fn pcap_api_query(q: &ConnQuery, sensor: u32, first: u32, last: u32) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    out.append_pair("sensor", &sensor.to_string());
    out.append_pair("st", &first.to_string());
    out.append_pair("et", &last.to_string());
    let side = |s: Side, either: &str, src: &str, dst: &str| match s {
        Side::Either => either.to_string(),
        Side::Src => src.to_string(),
        Side::Dst => dst.to_string(),
    };
    if let Some((addr, prefix)) = q.ip {
        out.append_pair(
            &side(q.ip_side, "net", "snet", "dnet"),
            &format!("{addr}/{prefix}"),
        );
    }
    if let Some(port) = q.port {
        out.append_pair(
            &side(q.port_side, "port", "sport", "dport"),
            &port.to_string(),
        );
        if q.proto.is_none() {
            out.append_pair("ip_proto", "6");
            out.append_pair("ip_proto", "17");
        }
    }
    if let Some(p) = q.proto {
        out.append_pair("ip_proto", &p.to_string());
    }
    out.finish()
}

/// `GET /api/v1/pcap`: the packets of the connection table's results, for
/// one sensor, through the pcap service (here or proxied down the DAG),
/// streamed; refused past `ui.pcap_max_mib` (from the flows' sizes) and cut
/// off there (a broken download, never a silently short one).
async fn results_pcap(web: &Arc<Web>, query: &str) -> Reply {
    let (q, _) = match conn_query(query, &["back"]) {
        Ok(q) => q,
        Err(r) => return r.reply(),
    };
    let Some(sensor) = q.sensor else {
        return bad_param(
            "sensor",
            "choose one sensor: a pcap holds one sensor's packets",
        );
    };
    for (set, name) in [
        (q.bidirectional, "bidir"),
        (q.min_bytes.is_some(), "min_bytes"),
        (q.alerts_only, "alerts"),
        (q.client_os.is_some(), "client_os"),
        (q.server_os.is_some(), "server_os"),
    ] {
        if set {
            return bad_param(
                name,
                "a pcap is cut by time, address, port and protocol (pcap_api's filters); remove this filter to download",
            );
        }
    }
    let max_bytes = web.config.ui.pcap_max_mib.saturating_mul(1024 * 1024);
    let q2 = q.clone();
    let size = web
        .with_mirror(move |m| {
            check_sensor(m, Some(sensor))?;
            m.result_size(&q2, PCAP_MAX_FLOWS)
        })
        .await;
    let size = match size {
        Ok(s) => s,
        Err(e) => return mirror_error(e),
    };
    if size.flows == 0 {
        return error(
            StatusCode::NOT_FOUND,
            "no flow matches these filters: nothing to download",
        );
    }
    if size.more {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "more than {PCAP_MAX_FLOWS} flows match; narrow the filters (a time range, a host) to download their pcap"
            ),
        );
    }
    // Each packet's record header (16 bytes) beside its bytes.
    let estimate = size.bytes.saturating_add(size.packets.saturating_mul(16));
    if estimate > max_bytes {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "these {} flows hold about {} MiB of packets; the download limit is {} MiB (ui.pcap_max_mib): narrow the filters",
                size.flows,
                estimate.div_ceil(1024 * 1024),
                web.config.ui.pcap_max_mib
            ),
        );
    }
    let pq = pcap_api_query(&q, sensor, size.first_sec, size.last_sec);
    let reply = crate::sync::pcap_http::pcap(&web.peer.store, &web.peer.config, &pq, None).await;
    if !reply.status().is_success() {
        return reply;
    }
    limit_body(reply, max_bytes)
}

/// `reply` whose body fails once more than `max` bytes went out.
fn limit_body(reply: Reply, max: u64) -> Reply {
    use std::task::Poll;
    use warp::hyper::body::Body as _;
    let (parts, body) = reply.into_parts();
    let mut body = Box::pin(body);
    let mut sent: u64 = 0;
    let limited = futures::stream::poll_fn(move |cx| {
        loop {
            return match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry no packets.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    sent = sent.saturating_add(data.len() as u64);
                    if sent > max {
                        tracing::warn!(max, "pcap of results cut at ui.pcap_max_mib");
                        Poll::Ready(Some(Err(std::io::Error::other("past ui.pcap_max_mib"))))
                    } else {
                        Poll::Ready(Some(Ok(data)))
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    });
    let streamed = warp::Reply::into_response(warp::reply::stream(limited));
    Response::from_parts(parts, streamed.into_body())
}

async fn host_detail(web: &Arc<Web>, ip: &str) -> Reply {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return bad_param("ip", &format!("'{}' is not an IP address", clip(ip)));
    };
    let prefix = if addr.is_ipv4() { 32 } else { 128 };
    let got = web
        .with_mirror(move |m| {
            // Bounded: the newest flows per sensor and role (an exact
            // history of a scanner reads most of the table).
            let os = match addr {
                IpAddr::V4(v4) => m.host_os_history(v4, OS_HISTORY_WINDOW)?,
                IpAddr::V6(_) => (Vec::new(), false),
            };
            let side = |s| ConnQuery {
                ip: Some((addr, prefix)),
                ip_side: s,
                limit: DEFAULT_PAGE,
                ..ConnQuery::default()
            };
            let as_src = m.connections(&side(Side::Src))?;
            let as_dst = m.connections(&side(Side::Dst))?;
            Ok((os, as_src, as_dst))
        })
        .await;
    match got {
        Ok(((os, os_cut), as_src, as_dst)) => json(&serde_json::json!({
            "ip": addr.to_string(),
            "os_history": os,
            "os_history_cut": os_cut,
            "os_history_window": OS_HISTORY_WINDOW,
            "as_source": as_src,
            "as_destination": as_dst,
        })),
        Err(e) => mirror_error(e),
    }
}

async fn process_tree(web: &Arc<Web>, s: &str, p: &str) -> Reply {
    let (sensor, process) = match (num::<u32>("sensor", s), num::<u32>("process", p)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r.reply(),
    };
    let got = web
        .with_mirror(move |m| {
            m.processes(&ProcessQuery {
                sensor: Some(sensor),
                process: Some(process),
                ..ProcessQuery::default()
            })
        })
        .await;
    match got {
        Ok(procs) if procs.iter().any(|p| p.process_id == process) => json(
            &serde_json::json!({ "sensor_id": sensor, "process_id": process, "processes": procs }),
        ),
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            &format!("no process {process} of sensor {sensor}"),
        ),
        Err(e) => mirror_error(e),
    }
}

/// Bytes as text: printable ASCII, newline and tab kept, the rest `\xNN`.
fn printable(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len());
    for &b in data {
        match b {
            b'\n' | b'\t' | 0x20..=0x7e => s.push(b as char),
            b'\r' => s.push_str("\\r"),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

async fn reads(web: &Arc<Web>, s: &str, p: &str, query: &str) -> Reply {
    let (sensor, process) = match (num::<u32>("sensor", s), num::<u32>("process", p)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r.reply(),
    };
    let mut fd: Option<u32> = None;
    for (k, v) in params(query) {
        match k.as_str() {
            "fd" => match num("fd", &v) {
                Ok(n) => fd = Some(n),
                Err(r) => return r.reply(),
            },
            other => return bad_param(other, "unknown parameter"),
        }
    }
    match web
        .with_mirror(move |m| m.reads(Some(sensor), process))
        .await
    {
        Ok(rows) => {
            let mut fds: Vec<u32> = rows.iter().map(|r| r.filed).collect();
            fds.sort_unstable();
            fds.dedup();
            let shown: Vec<_> = rows
                .iter()
                .filter(|r| fd.is_none_or(|f| f == r.filed))
                .map(|r| {
                    serde_json::json!({
                        "sys_read_id": r.sys_read_id,
                        "time": r.time,
                        "pcap_time": r.pcap_time,
                        "fd": r.filed,
                        "length": r.length,
                        "text": printable(&r.data),
                    })
                })
                .collect();
            let keystrokes: String = rows
                .iter()
                .filter(|r| fd.is_none_or(|f| f == r.filed))
                .map(|r| printable(&r.data))
                .collect();
            json(&serde_json::json!({
                "sensor_id": sensor,
                "process_id": process,
                "fds": fds,
                "fd": fd,
                "reads": shown,
                "keystrokes": keystrokes,
            }))
        }
        Err(e) => mirror_error(e),
    }
}

async fn dag(web: &Arc<Web>) -> Reply {
    let peer = web.peer.clone();
    let summary = match tokio::task::spawn_blocking(move || peer.summary()).await {
        Ok(Ok(s)) => s,
        _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "summary unavailable"),
    };
    let now = now();
    let mut children = Vec::new();
    for c in &web.config.children {
        let state = load_state(&web.store, &c.name).unwrap_or_default();
        let healthy = state.last_success > 0
            && state.last_success >= state.last_attempt
            && now.saturating_sub(state.last_success) <= c.interval_secs.saturating_mul(3) + 60;
        let sensors: Vec<_> = state
            .summary
            .iter()
            .flat_map(|s| s.sensors.iter())
            .map(|s| {
                serde_json::json!({
                    "sensor_id": s.sensor_id,
                    "hops": s.hops,
                    "max_seq": s.max_seq,
                    "pcap_held_to": s.pcap_held_to,
                    "newest_sec": s.newest_ns / 1_000_000_000,
                })
            })
            .collect();
        children.push(serde_json::json!({
            "name": c.name,
            "url": c.url,
            "pcap": match c.pcap { crate::config::PcapMode::Proxy => "proxy", crate::config::PcapMode::Mirror => "mirror" },
            "mirrors": match c.pcap {
                crate::config::PcapMode::Proxy => "records (pcap stays at the child, fetched on request)",
                crate::config::PcapMode::Mirror => "records and pcap",
            },
            "interval_secs": c.interval_secs,
            "healthy": healthy,
            "last_attempt": state.last_attempt,
            "last_success": state.last_success,
            "last_error": state.last_error,
            "bytes_in": state.bytes_in,
            "segments_fetched": state.segments_fetched,
            "conflicts": state.conflicts,
            "node_id": state.summary.as_ref().map(|s| s.node_id.clone()),
            "below": state.summary.as_ref().map(|s| s.below.len()).unwrap_or(0),
            "sensors": sensors,
        }));
    }
    // [[export]] targets and their lag (docs/CLICKHOUSE.md).
    let exports: Vec<_> = web
        .config
        .exports
        .iter()
        .map(|e| crate::export::clickhouse_live::status_json(&web.dir, e, now))
        .collect();
    let parents: Vec<_> = web
        .config
        .peers
        .iter()
        .map(|p| serde_json::json!({ "name": p.name, "allow": p.allow, "sensors": p.sensors }))
        .collect();
    let local: Vec<u32> = summary
        .sensors
        .iter()
        .filter(|s| s.hops == 0)
        .map(|s| s.sensor_id)
        .collect();
    // Record segments this node holds but cannot read (as `lumpy status`
    // names them): skipped by the mirror until `lumpy repair`.
    let quarantined: Vec<_> = web
        .store
        .quarantined()
        .unwrap_or_default()
        .into_iter()
        .map(|(id, reason)| {
            serde_json::json!({
                "id": id.to_hex(),
                "path": web.store.segment_path(&id),
                "reason": reason,
            })
        })
        .collect();
    json(&serde_json::json!({
        "node_id": summary.node_id,
        "below": summary.below.len(),
        "local_sensors": local,
        "children": children,
        "exports": exports,
        "parents": parents,
        "quarantined": quarantined,
        "now": now,
    }))
}

async fn plots(web: &Arc<Web>, query: &str) -> Reply {
    // The connection table's filters, so a plot and the table show the
    // same flows (links carry them both ways).
    let (q, rest) = match conn_query(query, &["bucket"]) {
        Ok(q) => q,
        Err(r) => return r.reply(),
    };
    let bucket = match rest.get("bucket") {
        None => None,
        Some(v) => match num_in::<u32>("bucket", v, 1..=86400 * 7, "a bucket width in seconds") {
            Ok(b) => Some(b),
            Err(r) => return r.reply(),
        },
    };
    let (from, to) = (q.since, q.until);
    let got = web
        .with_heavy_mirror(move |m| {
            check_sensor(m, q.sensor)?;
            let span = m.time_span()?;
            // By default the newest day of data (or less, if there is less).
            let to = to.or(span.map(|s| s.1)).unwrap_or(0);
            let from = match from {
                Some(f) => f,
                None => m
                    .first_start_from(to.saturating_sub(86400))?
                    .unwrap_or(to)
                    .min(to),
            };
            if from > to {
                return Err(MirrorError::InvalidQuery {
                    path: String::new(),
                    what: "until: is before since".into(),
                });
            }
            // About 96 buckets over the range; whole minutes above a minute.
            let b = bucket.unwrap_or_else(|| match (to - from) / 96 {
                0 => 1,
                b if b < 60 => b,
                b => b / 60 * 60,
            });
            let series = m.series(&q, from, to, b)?;
            let ports = m.top_ports(&q, from, to, 15)?;
            Ok((from, to, b, series, ports))
        })
        .await;
    match got {
        Ok((from, to, b, series, ports)) => json(&serde_json::json!({
            "since": from,
            "until": to,
            "bucket": b,
            "series": series,
            "top_ports": ports.iter().map(|(p, t, n)| serde_json::json!({"port": p, "proto": t, "flows": n})).collect::<Vec<_>>(),
        })),
        Err(e) => mirror_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_bad_ones_name_the_parameter() {
        let (q, _) = conn_query(
            "sensor=7&ip=10.0.0.0%2F8&ip_side=src&port=22&proto=tcp&bidir=1&min_bytes=100&alerts=0&limit=5",
            &[],
        )
        .ok()
        .unwrap();
        assert_eq!(q.sensor, Some(7));
        assert_eq!(q.ip.map(|h| h.1), Some(8));
        assert_eq!(q.ip_side, Side::Src);
        assert_eq!(q.proto, Some(6));
        assert!(q.bidirectional && !q.alerts_only);
        assert_eq!(q.limit, 5);
        for (query, name) in [
            ("port=99999", "port"),
            ("ip=1.2.3.4/33", "ip"),
            ("ip=1.2.3.4'--", "ip"),
            ("sensor=1 OR 1=1", "sensor"),
            ("limit=0", "limit"),
            ("proto=nope", "proto"),
            ("drop=1", "drop"),
            ("since=2026-13-01", "since"),
            ("after=1.2", "after"),
        ] {
            let Err(r) = conn_query(query, &[]) else {
                panic!("{query} was accepted");
            };
            assert!(r.to_string().starts_with(name), "{query}: {r}");
            assert_eq!(r.reply().status(), StatusCode::BAD_REQUEST, "{query}");
        }
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(
            decode_segment("2001%3Adb8%3A%3A1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(decode_segment("a%zzb").as_deref(), Some("a%zzb"));
        assert_eq!(decode_segment("%ff"), None);
    }

    #[test]
    fn only_address_literals_localhost_and_allowed_names_are_served() {
        let allowed = vec!["roo.example.org".to_string()];
        for ok in [
            None,
            Some("127.0.0.1:7780"),
            Some("127.0.21.5"),
            Some("[::1]:7780"),
            Some("localhost:7780"),
            Some("LOCALHOST"),
            Some("roo.example.org:8080"),
            Some("192.0.2.7:80"),
        ] {
            assert!(host_allowed(&allowed, ok), "{ok:?}");
        }
        for refused in [
            Some("evil.example.com"),
            Some("evil.example.com:7780"),
            Some("localhost.evil.example.com"),
            Some("roo.example.org.evil.example.com"),
            Some(""),
        ] {
            assert!(!host_allowed(&allowed, refused), "{refused:?}");
        }
        assert!(!host_allowed(&[], Some("roo.example.org")));
    }

    #[test]
    fn printable_escapes_control_bytes() {
        assert_eq!(printable(b"ls -l\r\n\x1b[A"), "ls -l\\r\n\\x1b[A");
    }
}
