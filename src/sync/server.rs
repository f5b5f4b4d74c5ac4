//! The peer API that parents pull from: read-only, authenticated per link.
//!
//! Owns the HTTP side of docs/PROTOCOL.md: routing, the status codes, the
//! summary cache, and streaming segment frames. Every segment is re-hashed
//! before it is sent, so a damaged file is never propagated.
//! Never writes to the store.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use warp::Filter;
use warp::http::{Response, StatusCode};

use super::auth::{self, AuthError, ReplayGuard};
use super::links::children_view;
use super::protocol::*;
pub(crate) use super::reply::error_reply;
use super::summary::build_summary;
use crate::config::{Config, PeerConfig};
use crate::store::{SegmentId, Store};

/// State shared by every request of the peer API.
pub struct PeerApi {
    pub store: Arc<Store>,
    pub config: Arc<RwLock<Config>>,
    guard: ReplayGuard,
    cache: Mutex<Option<(u64, Arc<Summary>)>>,
    /// Modification time of lumpy.toml when the peers were last read, so
    /// `lumpy peer add/remove` take effect on a running node.
    config_seen: Mutex<Option<std::time::SystemTime>>,
    /// The mirror connection summaries read incarnations through, opened
    /// once as a reader and dropped on error.
    incarnations_reader: Mutex<Option<crate::mirror::Mirror>>,
}

type Reply = warp::reply::Response;

impl PeerApi {
    pub fn new(store: Arc<Store>, config: Arc<RwLock<Config>>) -> Arc<PeerApi> {
        Arc::new(PeerApi {
            store,
            config,
            guard: ReplayGuard::default(),
            cache: Mutex::new(None),
            config_seen: Mutex::new(None),
            incarnations_reader: Mutex::new(None),
        })
    }

    /// Re-reads the peers from lumpy.toml when the file changed.
    fn refresh_peers(&self) {
        let path = Config::path(self.store.dir());
        let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
            return;
        };
        let Ok(mut seen) = self.config_seen.lock() else {
            return;
        };
        if *seen == Some(modified) {
            return;
        }
        match Config::load(self.store.dir()) {
            Ok(fresh) => {
                if let Ok(mut config) = self.config.write() {
                    config.peers = fresh.peers;
                }
                *seen = Some(modified);
            }
            Err(e) => {
                tracing::warn!(error = %e, "lumpy.toml changed but cannot be read; keeping the peers as they were")
            }
        }
    }

    /// Every sensor's incarnations, from the mirror.
    fn incarnations(
        &self,
    ) -> Result<Vec<crate::mirror::incarnations::Incarnation>, crate::mirror::MirrorError> {
        let mut reader = self
            .incarnations_reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mirror = match reader.take() {
            Some(m) => m,
            None => crate::mirror::Mirror::open_reader(
                &self.store.dir().join(crate::node::MIRROR_FILE),
            )?,
        };
        let all = mirror.incarnations()?;
        *reader = Some(mirror);
        Ok(all)
    }

    /// The sensors a parent may see, when its link is limited to some
    /// (`lumpy peer add --sensors`); `None`: every sensor.
    fn sensors_shown_to(&self, peer: &str) -> Option<Vec<u32>> {
        let config = self.config.read().ok()?;
        let p = config.peers.iter().find(|p| p.name == peer)?;
        (!p.sensors.is_empty()).then(|| p.sensors.clone())
    }

    /// The summary, recomputed only when the index changed.
    pub fn summary(&self) -> Result<Arc<Summary>, crate::store::StoreError> {
        let generation = self.store.generation();
        if let Ok(cache) = self.cache.lock()
            && let Some((g, s)) = cache.as_ref()
            && *g == generation
        {
            return Ok(s.clone());
        }
        let (hops, below) = children_view(&self.store)?;
        let mut s = build_summary(&self.store, &hops, &below)?;
        match self.incarnations() {
            Ok(all) => super::summary::attach_incarnations(&mut s, &all),
            Err(e) => tracing::warn!(error = %e, "summary without incarnations"),
        }
        // A sensor row reaches the mirror just after its segment is indexed:
        // a summary missing one is not kept, so the next request has it.
        let complete = s.sensors.iter().all(|x| x.incarnation.is_some());
        let s = Arc::new(s);
        if complete && let Ok(mut cache) = self.cache.lock() {
            *cache = Some((generation, s.clone()));
        }
        Ok(s)
    }
}

fn json_reply<T: serde::Serialize>(value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => Response::builder()
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap_or_else(|_| error_reply(StatusCode::INTERNAL_SERVER_ERROR, "reply")),
        Err(_) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the reply",
        ),
    }
}

use crate::clock::now_secs_i64 as now;

fn allowed(peer: &PeerConfig, remote: Option<IpAddr>) -> bool {
    if peer.allow.is_empty() {
        return true;
    }
    let Some(ip) = remote else { return false };
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    peer.allow
        .iter()
        .filter_map(|n| crate::net::parse(n).ok())
        .any(|n| n.contains(&ip))
}

/// Checks the request's credentials; the error is the reply to send.
fn authenticate(
    api: &PeerApi,
    method: &str,
    path_and_query: &str,
    header: Option<&str>,
    remote: Option<IpAddr>,
    body: &[u8],
) -> Result<String, Box<Reply>> {
    // The reason is logged (escaped: it may hold request bytes); the answer
    // tells a stranger nothing about which links exist (the same 401 for an
    // unknown link and a bad signature, after the same signature check,
    // and the source address is judged only for a verified link).
    let unauthorized = |e: AuthError| {
        tracing::warn!(?remote, path = ?path_and_query, reason = ?e, "peer request refused");
        Box::new(error_reply(StatusCode::UNAUTHORIZED, &e.to_string()))
    };
    let header = header.ok_or_else(|| unauthorized(AuthError::Missing))?;
    api.refresh_peers();
    let presented = auth::parse_header(header).map_err(unauthorized)?;
    let now = now();
    if !auth::within_window(presented.ts, now) {
        return Err(unauthorized(AuthError::Expired));
    }
    let peer = {
        let config = api.config.read().map_err(|_| {
            Box::new(error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "configuration lock",
            ))
        })?;
        config
            .peers
            .iter()
            .find(|p| p.name == presented.link)
            .cloned()
    };
    let Some(peer) = peer else {
        let _ = auth::verify(
            &presented,
            auth::NO_LINK_PUBLIC_KEY,
            method,
            path_and_query,
            body,
            now,
            &api.guard,
        );
        return Err(unauthorized(AuthError::UnknownLink));
    };
    auth::verify(
        &presented,
        &peer.public_key,
        method,
        path_and_query,
        body,
        now,
        &api.guard,
    )
    .map_err(unauthorized)?;
    if !allowed(&peer, remote) {
        tracing::warn!(?remote, link = ?peer.name, "peer request from a source outside the link's allowed networks");
        return Err(Box::new(error_reply(
            StatusCode::FORBIDDEN,
            &AuthError::Forbidden.to_string(),
        )));
    }
    Ok(peer.name)
}

/// A request body that did not arrive within `REQUEST_READ_SECS`.
#[derive(Debug)]
pub(crate) struct SlowBody;
impl warp::reject::Reject for SlowBody {}

/// The body, read whole within `REQUEST_READ_SECS` (its size is already
/// bounded by `content_length_limit`; `max` stops a body longer than it
/// said), else rejected as `SlowBody`. The web UI reads its bodies with it too.
pub(crate) fn body_in_time(
    max: u64,
) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::stream().and_then(move |stream| async move {
        match tokio::time::timeout(
            std::time::Duration::from_secs(REQUEST_READ_SECS),
            read_body(stream, max),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(warp::reject::custom(SlowBody)),
        }
    })
}

async fn read_body<S, B>(stream: S, max: u64) -> Result<Bytes, warp::Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures::StreamExt;
    let mut stream = Box::pin(stream);
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| warp::reject::reject())?;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
        if body.len() as u64 > max {
            return Err(warp::reject::custom(TooLarge));
        }
    }
    Ok(Bytes::from(body))
}

/// A body longer than its content-length said (hyper stops it anyway).
#[derive(Debug)]
pub(crate) struct TooLarge;
impl warp::reject::Reject for TooLarge {}

/// The peer API with the client address taken from `remote` (the accept
/// loop of `serve` passes each connection's peer address in).
pub fn routes_with_remote(
    api: Arc<PeerApi>,
    remote: impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    let with_api = warp::any().map(move || api.clone());
    let common = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>(AUTH_HEADER))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(remote);
    let get = warp::get()
        .and(with_api.clone())
        .and(common.clone())
        .and(warp::any().map(Bytes::new));
    let post = warp::post()
        .and(with_api)
        .and(common)
        .and(warp::body::content_length_limit(MAX_REQUEST_BODY))
        .and(body_in_time(MAX_REQUEST_BODY));
    get.or(post)
        .unify()
        .and_then(handle)
        .recover(|rejection: warp::Rejection| async move {
            let (status, msg) = if rejection.find::<warp::reject::PayloadTooLarge>().is_some()
                || rejection.find::<TooLarge>().is_some()
            {
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else if rejection.find::<SlowBody>().is_some() {
                (
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                )
            } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
                (StatusCode::LENGTH_REQUIRED, "a POST needs a content-length")
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            } else {
                (StatusCode::BAD_REQUEST, "bad request")
            };
            Ok::<_, Infallible>(error_reply(status, msg))
        })
        .unify()
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    api: Arc<PeerApi>,
    method: warp::http::Method,
    path: warp::path::FullPath,
    query: String,
    auth_header: Option<String>,
    if_none_match: Option<String>,
    remote: Option<SocketAddr>,
    body: Bytes,
) -> Result<Reply, Infallible> {
    let path_and_query = if query.is_empty() {
        path.as_str().to_string()
    } else {
        format!("{}?{query}", path.as_str())
    };
    let remote_ip = remote.map(|r| r.ip());
    if let Err(what) = plain_request(path.as_str(), &query) {
        tracing::warn!(?remote_ip, reason = what, "peer request refused");
        return Ok(error_reply(StatusCode::BAD_REQUEST, what));
    }
    let peer = match authenticate(
        &api,
        method.as_str(),
        &path_and_query,
        auth_header.as_deref(),
        remote_ip,
        &body,
    ) {
        Ok(peer) => peer,
        Err(reply) => return Ok(*reply),
    };
    let shown = api.sensors_shown_to(&peer);
    let segments: Vec<&str> = path.as_str().trim_start_matches('/').split('/').collect();
    let reply = match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "summary"]) if !summary_query_ok(&query) => error_reply(
            StatusCode::BAD_REQUEST,
            "query: only pcap=mirror and held=SENSOR:SEQ,... are understood",
        ),
        ("GET", ["v1", "catalog", _]) if !only_keys(&query, &["after", "limit"]) => error_reply(
            StatusCode::BAD_REQUEST,
            "query: only after and limit are understood",
        ),
        ("POST", ["v1", "segments"]) if !query.is_empty() => {
            error_reply(StatusCode::BAD_REQUEST, "query: none is understood here")
        }
        ("GET", ["v1", "summary"]) => {
            if query_param(&query, "pcap").as_deref() == Some("mirror") {
                // This parent copies our pcap: `prune` must wait for it,
                // until it says what it has committed.
                let marks = query_param(&query, "held")
                    .and_then(|h| parse_marks(&h))
                    .unwrap_or_default();
                if let Err(e) = api
                    .store
                    .note_mirroring_peer(&peer)
                    .and_then(|()| api.store.note_mirror_marks(&peer, &marks))
                {
                    tracing::warn!(error = %e, "recording a mirroring parent");
                }
            }
            summary(&api, if_none_match.as_deref(), shown.as_deref())
        }
        ("GET", ["v1", "catalog", sensor]) if !shows(shown.as_deref(), sensor) => {
            error_reply(StatusCode::NOT_FOUND, &format!("unknown sensor {sensor}"))
        }
        ("GET", ["v1", "catalog", sensor]) => catalog(&api, sensor, &query).await,
        ("POST", ["v1", "segments"]) => fetch(&api, &body, peer, shown),
        ("GET", ["pcap"]) => {
            crate::sync::pcap_http::pcap(&api.store, &api.config, &query, shown.as_deref()).await
        }
        _ => error_reply(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    Ok(reply)
}

/// Most sensors one `held=` list may name.
const MAX_MARKS: usize = 10_000;

/// `held=SENSOR:SEQ,...`: what a mirroring parent has committed of each
/// sensor's pcap. `None` when malformed or too long.
fn parse_marks(held: &str) -> Option<Vec<(u32, u64)>> {
    if held.is_empty() {
        return Some(Vec::new());
    }
    let marks: Option<Vec<(u32, u64)>> = held
        .split(',')
        .take(MAX_MARKS + 1)
        .map(|m| {
            let (s, q) = m.split_once(':')?;
            Some((s.parse().ok()?, q.parse().ok()?))
        })
        .collect();
    marks.filter(|m| m.len() <= MAX_MARKS)
}

/// The summary's query: empty, or `pcap=mirror` with an optional `held=`.
fn summary_query_ok(query: &str) -> bool {
    if query.is_empty() {
        return true;
    }
    only_keys(query, &["pcap", "held"])
        && query_param(query, "pcap").as_deref() == Some("mirror")
        && query_param(query, "held").is_none_or(|h| parse_marks(&h).is_some())
}

/// True when a parent limited to `shown` may see `sensor` (a path part).
fn shows(shown: Option<&[u32]>, sensor: &str) -> bool {
    match shown {
        None => true,
        Some(list) => sensor.parse::<u32>().is_ok_and(|s| list.contains(&s)),
    }
}

fn summary(api: &PeerApi, if_none_match: Option<&str>, shown: Option<&[u32]>) -> Reply {
    let s = match api.summary() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "summary");
            return error_reply(StatusCode::INTERNAL_SERVER_ERROR, "summary unavailable");
        }
    };
    // A parent limited to some sensors sees only those, under its own digest.
    let s = match shown {
        None => s,
        Some(list) => {
            let mut mine = (*s).clone();
            mine.sensors.retain(|x| list.contains(&x.sensor_id));
            mine.digest = super::summary::digest_of(&mine);
            Arc::new(mine)
        }
    };
    let etag = format!("\"{}\"", s.digest);
    if if_none_match == Some(etag.as_str()) {
        // The no-op pull: one small answer whatever the number of segments.
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", etag)
            .body(Vec::new().into())
            .unwrap_or_else(|_| error_reply(StatusCode::INTERNAL_SERVER_ERROR, "reply"));
    }
    let mut r = json_reply(&*s);
    if let Ok(v) = etag.parse() {
        r.headers_mut().insert("etag", v);
    }
    r
}

/// Refuses a path or query that tries to leave the API: `.` or `..`
/// segments (plain or percent-encoded), backslashes, NUL and other control
/// bytes, doubled slashes.
fn plain_request(path: &str, query: &str) -> Result<(), &'static str> {
    let decoded = |s: &str| {
        let lower = s.to_ascii_lowercase();
        lower
            .replace("%2e", ".")
            .replace("%2f", "/")
            .replace("%5c", "\\")
    };
    let p = decoded(path);
    if p.contains('\\') || p.contains("%00") || p.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("path: not allowed");
    }
    if p.trim_start_matches('/')
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && p != "/"
    {
        return Err("path: not allowed");
    }
    let q = decoded(query);
    if q.contains("..")
        || q.contains('\\')
        || q.contains("%00")
        || q.bytes().any(|b| b < 0x20 || b == 0x7f)
    {
        return Err("query: not allowed");
    }
    Ok(())
}

/// True when every key of the query is one of `keys`.
fn only_keys(query: &str, keys: &[&str]) -> bool {
    query.is_empty()
        || query
            .split('&')
            .all(|kv| keys.contains(&kv.split_once('=').map(|(k, _)| k).unwrap_or(kv)))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

async fn catalog(api: &Arc<PeerApi>, sensor: &str, query: &str) -> Reply {
    let Ok(sensor) = sensor.parse::<u32>() else {
        return error_reply(StatusCode::BAD_REQUEST, "sensor: not a sensor id");
    };
    let after = match query_param(query, "after").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            return error_reply(StatusCode::BAD_REQUEST, "after: not a sequence number");
        }
    };
    let limit = match query_param(query, "limit").map(|v| v.parse::<usize>()) {
        None => MAX_CATALOG_PAGE,
        Some(Ok(v)) => v.clamp(1, MAX_CATALOG_PAGE),
        Some(Err(_)) => return error_reply(StatusCode::BAD_REQUEST, "limit: not a number"),
    };
    let store = api.store.clone();
    let page =
        tokio::task::spawn_blocking(move || store.sequence_after(sensor, after, limit + 1)).await;
    match page {
        Ok(Ok(mut entries)) => {
            if entries.is_empty()
                && !matches!(api.store.known_sensors(), Ok(s) if s.contains(&sensor))
            {
                return error_reply(StatusCode::NOT_FOUND, &format!("unknown sensor {sensor}"));
            }
            let more = entries.len() > limit;
            entries.truncate(limit);
            json_reply(&CatalogPage {
                sensor_id: sensor,
                entries: entries
                    .into_iter()
                    .map(|e| CatalogEntry {
                        seq: e.seq,
                        id: e.id.to_hex(),
                        kind: e.kind as u8,
                        stored_bytes: e.stored_bytes,
                        held: e.held,
                    })
                    .collect(),
                more,
            })
        }
        _ => error_reply(StatusCode::INTERNAL_SERVER_ERROR, "catalogue unavailable"),
    }
}

/// Bytes of a segment file read and sent at a time.
const SEND_CHUNK: usize = 1 << 20;

/// Bytes of frames gathered before they are handed to the connection: a
/// fetch of many small segments goes out in a few large writes (and TLS
/// records), not two small ones per segment.
const SEND_BATCH: usize = 256 << 10;

/// The frames of one fetch answer on their way to the connection.
struct Outgoing<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Outgoing<'_> {
    /// Queues `bytes`; false when the parent went away.
    fn push(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        self.buf.len() < SEND_BATCH || self.flush()
    }

    /// Hands what is queued to the connection; false when the parent went
    /// away.
    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(SEND_BATCH));
        self.tx.blocking_send(Ok(Bytes::from(full))).is_ok()
    }
}

/// Queues one frame, reading the segment file in chunks. A segment of at
/// most one chunk is read once, hashed and sent from the same buffer; a
/// larger one is read twice (a first pass hashes it, a second sends it), so
/// memory stays at one chunk whatever the segment's size and damage is
/// never sent upward. `Ok(false)`: the parent went away.
fn send_segment(
    store: &Store,
    id: &SegmentId,
    out: &mut Outgoing<'_>,
    chunk: &mut Vec<u8>,
) -> Result<bool, crate::store::StoreError> {
    use std::io::{Read, Seek};
    let path = store.segment_path(id);
    let io = |source| crate::store::StoreError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let size = file.metadata().map_err(io)?.len();
    let small = size <= SEND_CHUNK as u64;
    chunk.clear();
    let mut len = 0u64;
    if small {
        // Read whole (to its end, whatever the size said): hashed and sent
        // from one buffer.
        // (A file grown past the chunk since would fail the hash.)
        (&mut file)
            .take(SEND_CHUNK as u64)
            .read_to_end(chunk)
            .map_err(io)?;
        hasher.update(chunk);
        len = chunk.len() as u64;
    } else {
        chunk.resize(SEND_CHUNK, 0);
        loop {
            let n = file.read(chunk).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk[..n]);
            len += n as u64;
        }
    }
    let actual = SegmentId(*hasher.finalize().as_bytes());
    if actual != *id {
        return Err(crate::store::StoreError::HashMismatch {
            id: *id,
            path,
            actual,
        });
    }
    let mut head = [0u8; FRAME_HEADER_LEN];
    head[..32].copy_from_slice(&id.0);
    head[32..].copy_from_slice(&len.to_le_bytes());
    if !out.push(&head) {
        return Ok(false);
    }
    if small {
        return Ok(out.push(chunk));
    }
    file.rewind().map_err(io)?;
    // Exactly `len` bytes go out: the frame header promised them.
    let mut left = len;
    while left > 0 {
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut chunk[..want]).map_err(io)?;
        if n == 0 {
            // The file shrank under us (it cannot: segments are immutable);
            // the parent sees a frame cut short and refuses it.
            let _ = out.flush();
            return Ok(false);
        }
        left -= n as u64;
        if !out.push(&chunk[..n]) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn fetch(api: &Arc<PeerApi>, body: &[u8], peer: String, shown: Option<Vec<u32>>) -> Reply {
    let Ok(req) = serde_json::from_slice::<FetchRequest>(body) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "body: expected {\"ids\": [hex, ...]}",
        );
    };
    if req.ids.len() > MAX_FETCH_IDS {
        return error_reply(
            StatusCode::BAD_REQUEST,
            &format!("ids: at most {MAX_FETCH_IDS} per request"),
        );
    }
    let mut ids = Vec::with_capacity(req.ids.len());
    for h in &req.ids {
        match SegmentId::from_hex(h) {
            Some(id) => ids.push(id),
            None => return error_reply(StatusCode::BAD_REQUEST, "ids: not a segment id"),
        }
    }
    // Up to 8 writes (2 MiB) read ahead of the connection: the reader does
    // not wait for each write to drain before reading the next files.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let store = api.store.clone();
    tokio::task::spawn_blocking(move || {
        // A quarantined segment is never sent upward: its records cannot be
        // read here, and a parent would (rightly) refuse it.
        let quarantined: std::collections::HashSet<SegmentId> = store
            .quarantined()
            .map(|q| q.into_iter().map(|(id, _)| id).collect())
            .unwrap_or_default();
        let mut out = Outgoing {
            tx: &tx,
            buf: Vec::with_capacity(SEND_BATCH),
        };
        let mut chunk = Vec::new();
        for id in ids {
            if quarantined.contains(&id) {
                tracing::warn!(segment = %id, "not sending a quarantined segment");
                continue;
            }
            if let Some(list) = &shown {
                let sensor = store.segment_meta(&id).ok().flatten().map(|m| m.sensor_id);
                if !sensor.is_some_and(|s| list.contains(&s)) {
                    tracing::warn!(segment = %id, %peer, "not sending a segment of a sensor this parent is not shown");
                    continue;
                }
            }
            // Sent is not taken: `prune` waits for the parent to say what
            // it committed (`held=` on its next summary request).
            match send_segment(&store, &id, &mut out, &mut chunk) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(segment = %id, error = %e, "not sending a segment"),
            }
        }
        let _ = out.flush();
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut r = warp::Reply::into_response(warp::reply::stream(stream));
    if let Ok(v) = "application/octet-stream".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}
