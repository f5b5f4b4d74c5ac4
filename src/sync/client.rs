//! The pull: a parent asks each child what it holds and fetches only the
//! segments it lacks, verifying each against its id before it becomes
//! visible (docs/PROTOCOL.md §4).
//!
//! Owns the client side of the protocol and the link health it records.
//! Writes segments only through the store's incoming path
//! (`Store::begin_incoming`, `Store::commit_received`) and records only
//! through the node's mirror.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use super::auth::{self, Secret};
use super::links::{LinkState, load_state, read_secret, save_state};
use super::protocol::*;
use super::summary::sensor_summary;
use crate::config::{ChildConfig, PcapMode};
use crate::node::{Node, NodeError};
use crate::store::incoming::{HEAD_LEN, Received};
use crate::store::{Kind, SegmentId, Store, StoreError};

/// Largest segment a child may send.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("child {child}: cannot reach {url}: {detail}")]
    Unreachable {
        child: String,
        url: String,
        detail: String,
    },
    #[error("child {child}: {status}: {message}")]
    Refused {
        child: String,
        status: u16,
        message: String,
    },
    #[error(
        "child {child}: the server at {url} is not the child this link pinned (refused): {detail}"
    )]
    Certificate {
        child: String,
        url: String,
        detail: String,
    },
    #[error("child {child}: protocol error: {detail}")]
    Protocol { child: String, detail: String },
    #[error("child {child}: linking it would close a cycle (this node is already below it)")]
    Cycle { child: String },
    #[error("child {child}: segment {id} failed verification: received bytes hash to {actual}")]
    Damaged {
        child: String,
        id: String,
        actual: String,
    },
    #[error("child {child}: link secret: {detail}")]
    Secret { child: String, detail: String },
    #[error(
        "child {child}: refused for sensor {sensor}: {detail}; its data from this child is not merged"
    )]
    Forged {
        child: String,
        sensor: u32,
        detail: String,
    },
    #[error("child {child}: refused: {}", .details.join("; "))]
    Refusals { child: String, details: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// What one pull moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PullStats {
    pub round_trips: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub segments: u64,
    pub unchanged: bool,
}

/// Everything a pull needs from the node.
pub struct PullContext {
    pub dir: PathBuf,
    pub store: Arc<Store>,
    pub node: Arc<Mutex<Node>>,
    /// Bytes of segments received (hidden unless a terminal shows it).
    pub progress: indicatif::ProgressBar,
}

impl PullContext {
    pub fn new(node: Node) -> Result<PullContext, SyncError> {
        Ok(PullContext {
            dir: node.dir.clone(),
            store: node.store.clone(),
            node: Arc::new(Mutex::new(node)),
            progress: indicatif::ProgressBar::hidden(),
        })
    }
}

/// A client for one child with `builder`'s timeouts (every request to a
/// child is made with one): over TLS it accepts only the certificate the
/// link token pinned (or, for a link without a pin, the link's CA file);
/// plain HTTP only for a link that asked for it (`plain`).
/// Why no HTTP client could be made for a child link.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "child {child}: {url} with plain = {plain}: plain HTTP needs both an http:// URL and `--plain`"
    )]
    Plain {
        child: String,
        url: String,
        plain: bool,
    },
    #[error("child {child}: {source}")]
    Pin {
        child: String,
        #[source]
        source: super::tls::TlsError,
    },
    #[error("CA file {}: {source}", path.display())]
    CaRead {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {}: {source}", path.display())]
    CaParse {
        path: std::path::PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "child {child}: no certificate pinned for {url} (add the link with the token `lumpy peer add` printed)"
    )]
    NoPin { child: String, url: String },
    #[error("HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

pub fn child_client(
    child: &ChildConfig,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, ClientError> {
    let plain_url = child.url.starts_with("http://");
    if plain_url != child.plain {
        return Err(ClientError::Plain {
            child: child.name.clone(),
            url: child.url.clone(),
            plain: child.plain,
        });
    }
    let builder = match (&child.cert_sha256, &child.ca_file) {
        _ if plain_url => builder,
        (Some(pin), _) => {
            let tls = super::tls::pinned_client_config(pin).map_err(|source| ClientError::Pin {
                child: child.name.clone(),
                source,
            })?;
            builder.tls_backend_preconfigured(tls)
        }
        (None, Some(ca)) => {
            let pem = std::fs::read(ca).map_err(|source| ClientError::CaRead {
                path: ca.clone(),
                source,
            })?;
            let cert =
                reqwest::Certificate::from_pem(&pem).map_err(|source| ClientError::CaParse {
                    path: ca.clone(),
                    source,
                })?;
            builder.tls_certs_only([cert])
        }
        (None, None) => {
            return Err(ClientError::NoPin {
                child: child.name.clone(),
                url: child.url.clone(),
            });
        }
    };
    builder.build().map_err(ClientError::Build)
}

/// An error of the HTTP client as a pull error naming the child: a
/// certificate other than the pinned one is `Certificate`, anything else
/// `Unreachable`; the detail carries the causes (TLS alerts, resets), which
/// reqwest's own message leaves out.
pub fn net_error(child: &ChildConfig, e: &reqwest::Error) -> SyncError {
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        cause = c.source();
    }
    if detail.contains(super::tls::PIN_MISMATCH) {
        return SyncError::Certificate {
            child: child.name.clone(),
            url: child.url.clone(),
            detail,
        };
    }
    SyncError::Unreachable {
        child: child.name.clone(),
        url: child.url.clone(),
        detail,
    }
}

fn pull_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
}

use crate::clock::now_secs;

/// One signed request to a child.
struct Link<'a> {
    ctx: &'a PullContext,
    child: &'a ChildConfig,
    secret: Secret,
    /// Built once per pull (with the link's CA file, if any).
    http: reqwest::Client,
    stats: PullStats,
    /// Sensors this node keeps pcap of whatever the link (`pcap_repository`).
    repository: Vec<u32>,
}

impl Link<'_> {
    fn unreachable(&self, e: impl std::fmt::Display) -> SyncError {
        SyncError::Unreachable {
            child: self.child.name.clone(),
            url: self.child.url.clone(),
            detail: e.to_string(),
        }
    }

    /// The child offered something for `sensor` it is not entitled to say.
    fn forged(&self, sensor: u32, detail: impl Into<String>) -> SyncError {
        SyncError::Forged {
            child: self.child.name.clone(),
            sensor,
            detail: detail.into(),
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> SyncError {
        SyncError::Protocol {
            child: self.child.name.clone(),
            detail: detail.into(),
        }
    }

    /// A signed request, ready to send (counted in the pull's stats).
    fn request(
        &mut self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, SyncError> {
        let ts = now_secs() as i64;
        let header =
            auth::sign(&self.secret, method.as_str(), path_and_query, ts, &body).map_err(|e| {
                SyncError::Secret {
                    child: self.child.name.clone(),
                    detail: e.to_string(),
                }
            })?;
        let url = format!("{}{}", self.child.url.trim_end_matches('/'), path_and_query);
        // Request line, host, auth and body: what we put on the wire.
        self.stats.bytes_out += (path_and_query.len() + header.len() + body.len() + 64) as u64;
        self.stats.round_trips += 1;
        let mut req = self.http.request(method, &url).header(AUTH_HEADER, header);
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        Ok(req)
    }

    /// The answer to a request, or the child's refusal.
    async fn answer(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, SyncError> {
        let resp = sent.map_err(|e| net_error(self.child, &e))?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let message = resp
            .json::<ErrorBody>()
            .await
            .map(|b| b.error)
            .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_string());
        Err(SyncError::Refused {
            child: self.child.name.clone(),
            status: status.as_u16(),
            message,
        })
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<reqwest::Response, SyncError> {
        let req = self.request(method, path_and_query, body, etag)?;
        let sent = req.send().await;
        self.answer(sent).await
    }

    /// Sends the fetch of `batch` at once, on a task of its own: its answer
    /// is produced by the child (and buffered) while the batch before it is
    /// still being received and committed here.
    fn start_fetch(&mut self, batch: &[Wanted]) -> Result<InFlight, SyncError> {
        let ids: Vec<String> = batch.iter().map(|w| w.id.to_hex()).collect();
        let body = serde_json::to_vec(&FetchRequest { ids }).unwrap_or_default();
        let req = self.request(reqwest::Method::POST, "/v1/segments", body, None)?;
        Ok(InFlight(tokio::spawn(req.send())))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        resp: reqwest::Response,
    ) -> Result<T, SyncError> {
        let body = resp.bytes().await.map_err(|e| net_error(self.child, &e))?;
        self.stats.bytes_in += body.len() as u64;
        serde_json::from_slice(&body).map_err(|e| self.protocol(format!("bad JSON: {e}")))
    }
}

/// A fetch request sent ahead; aborted if dropped unawaited (the pull
/// failed before its turn came).
struct InFlight(tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>);

impl InFlight {
    async fn answer(mut self, link: &Link<'_>) -> Result<reqwest::Response, SyncError> {
        let sent = match (&mut self.0).await {
            Ok(sent) => sent,
            Err(e) => return Err(link.unreachable(format!("fetch request: {e}"))),
        };
        link.answer(sent).await
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pulls once from one child and records the link's health.
pub async fn pull_child(ctx: &PullContext, child: &ChildConfig) -> Result<PullStats, SyncError> {
    let mut state = load_state(&ctx.store, &child.name)?;
    state.last_attempt = now_secs();
    let result = pull_inner(ctx, child, &mut state).await;
    match &result {
        Ok(stats) => {
            state.last_success = now_secs();
            state.last_error.clear();
            state.bytes_in += stats.bytes_in;
            state.bytes_out += stats.bytes_out;
            state.segments_fetched += stats.segments;
        }
        Err(e) => {
            state.last_error = e.to_string();
            // A failed pull must not be skipped as "nothing new" next time.
            state.etag.clear();
        }
    }
    // What the store recorded (forged entries, sequence conflicts) is shown
    // with this pull's own conflicts until an operator clears it.
    for c in ctx.store.conflicts_of(&child.name)? {
        let line = format!("sensor {}: {}", c.sensor_id, c.detail);
        if !state.conflicts.contains(&line) {
            state.conflicts.push(line);
        }
    }
    save_state(&ctx.store, &child.name, &state)?;
    result
}

/// The summary request: on a mirror link `pcap=mirror`, with what this node
/// has committed of each sensor's pcap (`held=SENSOR:SEQ,...`).
fn summary_path(mirrors: bool, marks: &std::collections::BTreeMap<u32, u64>) -> String {
    if !mirrors {
        return "/v1/summary".into();
    }
    let held: Vec<String> = marks.iter().map(|(s, q)| format!("{s}:{q}")).collect();
    if held.is_empty() {
        "/v1/summary?pcap=mirror".into()
    } else {
        format!("/v1/summary?pcap=mirror&held={}", held.join(","))
    }
}

/// After a pull that committed segments on a mirror link: tells the child
/// at once what this node now holds of each sensor's pcap, so its `prune`
/// may drop it (one more small round trip, usually a 304). A failure here
/// only delays that: the next pull's summary request says it again.
async fn tell_committed(
    link: &mut Link<'_>,
    accepted: &Summary,
    state: &mut LinkState,
    etag: &str,
) {
    let store = link.ctx.store.clone();
    let mut marks = state.pcap_marks.clone();
    for s in &accepted.sensors {
        let mirrored =
            link.child.pcap == PcapMode::Mirror || link.repository.contains(&s.sensor_id);
        if !mirrored {
            continue;
        }
        match tokio::task::block_in_place(|| sensor_summary(&store, s.sensor_id, 0)) {
            Ok(mine) => {
                marks.insert(s.sensor_id, mine.pcap_held_to);
            }
            Err(e) => tracing::warn!(sensor = s.sensor_id, error = %e, "pcap mark"),
        }
    }
    if marks == state.pcap_marks {
        return;
    }
    let path = summary_path(true, &marks);
    // Kept whatever the answer: every summary request of this link says it.
    state.pcap_marks = marks;
    let etag = (!etag.is_empty()).then_some(etag);
    match link
        .send(reqwest::Method::GET, &path, Vec::new(), etag)
        .await
    {
        Ok(resp)
            if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_MODIFIED => {
        }
        Ok(resp) => {
            tracing::warn!(child = %link.child.name, status = %resp.status(), "telling the child what was committed")
        }
        Err(e) => {
            tracing::warn!(child = %link.child.name, error = %e, "telling the child what was committed")
        }
    }
}

/// Whether a child may speak for a sensor (docs/SECURITY.md): never for a
/// sensor this node originates; with a `--sensors` list, only for those
/// (`Ok(false)`: not taken, not a fault); without one, a child with nothing
/// below it only for the sensors it originated (hops 0). `Err` says why a
/// claim is refused.
fn speaks_for(
    child: &ChildConfig,
    summary: &Summary,
    theirs: &SensorSummary,
    origin_here: bool,
) -> Result<bool, Refusal> {
    let sensor = theirs.sensor_id;
    if origin_here {
        return Err(Refusal::OriginHere(sensor));
    }
    if !child.sensors.is_empty() {
        // The operator chose: the rest is passed over without a word.
        return Ok(child.sensors.contains(&sensor));
    }
    let is_roo = summary.below.iter().all(|n| *n == summary.node_id);
    if is_roo && theirs.hops != 0 {
        return Err(Refusal::NotOriginated(sensor));
    }
    Ok(true)
}

/// Why a child's claim to speak for a sensor is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("sensor {0}: originates at this node; no child speaks for it")]
    OriginHere(u32),
    #[error(
        "sensor {0}: the child has nothing below it and did not originate this sensor; not merged (list it with `lumpy child add --sensors` to take it)"
    )]
    NotOriginated(u32),
}

async fn pull_inner(
    ctx: &PullContext,
    child: &ChildConfig,
    state: &mut LinkState,
) -> Result<PullStats, SyncError> {
    let (secret, http) = link_client(&ctx.dir, child)?;
    let mut link = Link {
        ctx,
        child,
        secret,
        http,
        stats: PullStats::default(),
        repository: ctx
            .node
            .lock()
            .map(|n| n.config.pcap_repository.clone())
            .unwrap_or_default(),
    };
    let etag = (!state.etag.is_empty()).then(|| state.etag.clone());
    // A mirror link says so, and what it has committed, so the child's
    // `prune` keeps what we still lack.
    let mirrors = child.pcap == PcapMode::Mirror || !link.repository.is_empty();
    let summary_path = summary_path(mirrors, &state.pcap_marks);
    let resp = link
        .send(
            reqwest::Method::GET,
            &summary_path,
            Vec::new(),
            etag.as_deref(),
        )
        .await?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        link.stats.unchanged = true;
        return Ok(link.stats);
    }
    let new_etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let summary: Summary = link.json(resp).await?;
    if summary.protocol != PROTOCOL_VERSION {
        return Err(link.protocol(format!(
            "child speaks protocol {}, this node {PROTOCOL_VERSION}",
            summary.protocol
        )));
    }
    let own_id = ctx.store.node_id()?;
    if summary.below.contains(&own_id) || summary.node_id == own_id {
        return Err(SyncError::Cycle {
            child: child.name.clone(),
        });
    }
    // Only the sensors the child may speak for, and has not been caught
    // forging, count: the rest never reach this node's own summary either.
    let mut refusals = Vec::new();
    let mut accepted = summary.clone();
    accepted.sensors.clear();
    let recorded = tokio::task::block_in_place(|| ctx.store.conflicts_of(&child.name))?;
    // A sensor caught forging stays refused (and the pull an error, so
    // status and the UI keep saying so) until an operator clears it.
    let mut forged = Vec::new();
    for s in &summary.sensors {
        let origin_here = tokio::task::block_in_place(|| ctx.store.is_origin_of(s.sensor_id))?;
        match speaks_for(child, &summary, s, origin_here) {
            Err(why) => refusals.push(why.to_string()),
            Ok(false) => {}
            Ok(true) => match recorded.iter().find(|c| c.sensor_id == s.sensor_id) {
                Some(c) => forged.push(format!(
                    "sensor {}: {} (recorded; `lumpy child clear-conflicts` to try again)",
                    c.sensor_id, c.detail
                )),
                None => accepted.sensors.push(s.clone()),
            },
        }
    }
    // Keep the child's view (hops, nodes below) as soon as it is known, so
    // this node's own summary is right even while segments still arrive.
    state.summary = Some(accepted.clone());
    save_state(&ctx.store, &child.name, state)?;
    state.conflicts = refusals.clone();
    let mut forged_sensors = HashSet::new();
    for s in &accepted.sensors {
        match pull_sensor(&mut link, s).await {
            Ok(Some(conflict)) => {
                tracing::warn!(child = %child.name, sensor = s.sensor_id, "{conflict}");
                state.conflicts.push(conflict);
            }
            Ok(None) => {}
            Err(SyncError::Forged { sensor, detail, .. }) => {
                tracing::warn!(child = %child.name, sensor, "refused: {detail}");
                tokio::task::block_in_place(|| {
                    ctx.store.record_conflict(&child.name, sensor, &detail)
                })?;
                forged.push(format!("sensor {sensor}: {detail}"));
                forged_sensors.insert(sensor);
            }
            Err(e) => return Err(e),
        }
    }
    accepted
        .sensors
        .retain(|s| !forged_sensors.contains(&s.sensor_id));
    if mirrors && link.stats.segments > 0 {
        tell_committed(&mut link, &accepted, state, &new_etag).await;
    }
    state.summary = Some(accepted);
    if !forged.is_empty() {
        return Err(SyncError::Refusals {
            child: child.name.clone(),
            details: forged,
        });
    }
    state.etag = new_etag;
    Ok(link.stats)
}

/// Brings one sensor up to date from the child; returns a conflict message
/// when the child's copy is another incarnation.
async fn pull_sensor(
    link: &mut Link<'_>,
    theirs: &SensorSummary,
) -> Result<Option<String>, SyncError> {
    let sensor = theirs.sensor_id;
    let store = link.ctx.store.clone();
    let mine = tokio::task::block_in_place(|| sensor_summary(&store, sensor, 0))?;
    if !mine.first_id.is_empty() && !theirs.first_id.is_empty() && mine.first_id != theirs.first_id
    {
        return Ok(Some(format!(
            "sensor {sensor}: child '{}' holds another incarnation (first segment {} here, {} there); not merged",
            link.child.name, mine.first_id, theirs.first_id
        )));
    }
    if mine.max_seq == theirs.max_seq && mine.chain != theirs.chain {
        return Ok(Some(format!(
            "sensor {sensor}: child '{}' has a different history at the same sequence; not merged",
            link.child.name
        )));
    }
    let mirror = link.child.pcap == PcapMode::Mirror || link.repository.contains(&sensor);
    let mut want: Vec<Wanted> = Vec::new();
    if mirror {
        // Pcap known here but not held (the link was in proxy mode before).
        let mut after = 0;
        loop {
            let page = tokio::task::block_in_place(|| store.sequence_after(sensor, after, 10_000))?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            want.extend(
                page.iter()
                    .filter(|e| !e.held && e.seq <= theirs.pcap_held_to)
                    .map(|e| Wanted {
                        id: e.id,
                        sensor,
                        seq: e.seq,
                        kind: e.kind,
                    }),
            );
        }
    }
    let mut known_only = Vec::new();
    let mut after = mine.max_seq;
    while after < theirs.max_seq {
        let resp = link
            .send(
                reqwest::Method::GET,
                &format!("/v1/catalog/{sensor}?after={after}"),
                Vec::new(),
                None,
            )
            .await?;
        let page: CatalogPage = link.json(resp).await?;
        let Some(last) = page.entries.last() else {
            break;
        };
        if last.seq <= after {
            return Err(link.protocol("catalogue page does not advance"));
        }
        after = last.seq;
        let mut offered = Vec::with_capacity(page.entries.len());
        for e in &page.entries {
            let id = SegmentId::from_hex(&e.id)
                .ok_or_else(|| link.protocol("catalogue: bad segment id"))?;
            let kind = Kind::from_u8(e.kind).ok_or_else(|| link.protocol("catalogue: bad kind"))?;
            offered.push((e.seq, id, kind));
        }
        // What this node has at those places and of those ids: one read
        // transaction per page, not three per entry.
        let pairs: Vec<(u64, SegmentId)> = offered.iter().map(|(q, id, _)| (*q, *id)).collect();
        let here = tokio::task::block_in_place(|| store.offered_places(sensor, &pairs))?;
        for ((e, (seq, id, kind)), place) in page.entries.iter().zip(offered).zip(here) {
            if let Some(there) = place.at_place
                && there != id
            {
                return Err(link.forged(
                    sensor,
                    format!(
                        "its catalogue names segment {id} at sequence {seq}, where this node has {there}"
                    ),
                ));
            }
            if let Some(meta) = place.held {
                if meta.sensor_id != sensor || meta.origin_seq != seq {
                    return Err(link.forged(
                        sensor,
                        format!(
                            "its catalogue names segment {id} at sequence {seq}, which is sensor {} sequence {} here",
                            meta.sensor_id, meta.origin_seq
                        ),
                    ));
                }
                continue;
            }
            let wanted = e.held && (kind == Kind::Records || mirror);
            if wanted {
                want.push(Wanted {
                    id,
                    sensor,
                    seq,
                    kind,
                });
            } else if kind == Kind::Pcap {
                known_only.push(crate::store::catalog::KnownEntry {
                    sensor_id: sensor,
                    seq,
                    id,
                    kind,
                    stored_bytes: e.stored_bytes,
                    held: false,
                    newest_ns: 0,
                });
            }
        }
        if !page.more {
            break;
        }
    }
    tokio::task::block_in_place(|| store.record_known(&known_only))?;
    // Two fetches in flight: the child reads and sends the next batch
    // while this node checks and commits the current one.
    let batches: Vec<&[Wanted]> = want.chunks(MAX_FETCH_IDS).collect();
    let mut next = match batches.first() {
        Some(b) => Some(link.start_fetch(b)?),
        None => None,
    };
    for (i, batch) in batches.iter().enumerate() {
        let Some(current) = next.take() else { break };
        let resp = current.answer(link).await?;
        if let Some(b) = batches.get(i + 1) {
            next = Some(link.start_fetch(b)?);
        }
        fetch_batch(link, batch, resp).await?;
    }
    Ok(None)
}

/// A segment asked for, with the catalogue place it was listed at: what it
/// must say of itself to be accepted.
#[derive(Clone, Copy, Debug)]
struct Wanted {
    id: SegmentId,
    sensor: u32,
    seq: u64,
    kind: Kind,
}

/// Segments a stream may leave received and checked before they are
/// committed together (one fsync per file, one per directory, one index
/// commit and one mirror transaction per batch).
const COMMIT_SEGMENTS: usize = MAX_FETCH_IDS;
/// Decoded record bytes a batch may hold before it is committed.
const COMMIT_RECORD_BYTES: u64 = 32 << 20;

/// Fetches a batch of segments as one stream of frames. Each segment is
/// written to a temporary file as it arrives (hashed on the way, never held
/// whole in memory), checked against its id and its catalogue place, and
/// committed with the others of its batch: an interrupted pull loses the
/// uncommitted batch at most, never a committed segment.
async fn fetch_batch(
    link: &mut Link<'_>,
    batch: &[Wanted],
    resp: reqwest::Response,
) -> Result<(), SyncError> {
    let mut rx = FrameSink {
        wanted: batch.iter().map(|w| (w.id, *w)).collect(),
        requested: batch.iter().map(|w| w.id).collect(),
        frames: FrameReader::default(),
        current: None,
        seen: HashSet::new(),
        checked: Vec::new(),
        record_bytes: 0,
    };
    let mut stream = resp.bytes_stream();
    let streamed = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| link.unreachable(e))?;
            link.stats.bytes_in += chunk.len() as u64;
            tokio::task::block_in_place(|| rx.take(link, &chunk))?;
            if rx.checked.len() >= COMMIT_SEGMENTS || rx.record_bytes >= COMMIT_RECORD_BYTES {
                tokio::task::block_in_place(|| rx.commit(link))?;
            }
        }
        match &rx.current {
            Some((_, inc)) => Err(link.protocol(format!(
                "segment stream ended inside segment {} ({} bytes received)",
                inc.id(),
                inc.written()
            ))),
            None if !rx.frames.between_frames() => {
                Err(link.protocol("segment stream ended inside a frame header"))
            }
            None => Ok(()),
        }
    }
    .await;
    // Whatever went wrong, a half-received segment's file goes, and the
    // segments already checked are kept.
    rx.current = None;
    let committed = tokio::task::block_in_place(|| rx.commit(link));
    streamed.and(committed)
}

/// What a stream of frames has delivered so far.
struct FrameSink {
    /// What each requested segment must say of itself.
    wanted: std::collections::HashMap<SegmentId, Wanted>,
    requested: HashSet<SegmentId>,
    frames: FrameReader,
    /// The segment being received.
    current: Option<(Wanted, crate::store::incoming::Incoming)>,
    seen: HashSet<SegmentId>,
    /// Received and checked, not yet committed, with their records.
    checked: Vec<(Wanted, Received, Vec<crate::records::Record>)>,
    record_bytes: u64,
}

impl FrameSink {
    /// Takes one chunk of the stream.
    fn take(&mut self, link: &Link<'_>, mut chunk: &[u8]) -> Result<(), SyncError> {
        loop {
            let (used, event) = self
                .frames
                .step(chunk, &self.requested)
                .map_err(|e| link.protocol(e.to_string()))?;
            chunk = &chunk[used..];
            match event {
                Some(FrameEvent::Start { id, len }) => self.start(link, id, len)?,
                Some(FrameEvent::Body(bytes)) => self.body(link, bytes)?,
                Some(FrameEvent::End) => self.end(link)?,
                None if chunk.is_empty() => return Ok(()),
                None => {}
            }
        }
    }

    fn start(&mut self, link: &Link<'_>, id: SegmentId, len: u64) -> Result<(), SyncError> {
        let Some(wanted) = self.wanted.get(&id) else {
            return Err(link.protocol(format!("sent segment {id}, which was not asked for")));
        };
        if !self.seen.insert(id) {
            return Err(link.protocol(format!("sent segment {id} twice")));
        }
        let incoming = link.ctx.store.begin_incoming(&id, len)?;
        self.current = Some((*wanted, incoming));
        Ok(())
    }

    fn body(&mut self, link: &Link<'_>, bytes: &[u8]) -> Result<(), SyncError> {
        let Some((wanted, incoming)) = self.current.as_mut() else {
            return Err(link.protocol("segment bytes outside a frame"));
        };
        let before = incoming.head().len();
        incoming.write(bytes)?;
        link.ctx.progress.inc(bytes.len() as u64);
        // The header says at once what the segment claims to be: a child
        // announcing a huge segment and sending garbage, or another
        // sensor's segment, is refused before the rest is written.
        if before < HEAD_LEN && incoming.head().len() == HEAD_LEN {
            let header = crate::store::segment::parse_header(incoming.head()).map_err(|e| {
                link.protocol(format!(
                    "segment {} does not start with a segment header: {e}",
                    wanted.id
                ))
            })?;
            check_place(link, wanted, &header)?;
        }
        Ok(())
    }

    /// A frame is complete: its bytes must hash to its id, parse, sit at the
    /// place they were asked for, and (records) decode and name its sensor.
    fn end(&mut self, link: &Link<'_>) -> Result<(), SyncError> {
        let Some((wanted, incoming)) = self.current.take() else {
            return Err(link.protocol("a frame ended that never started"));
        };
        let id = wanted.id;
        let mut received = match incoming.finish() {
            Ok(r) => r,
            Err(StoreError::HashMismatch { actual, .. }) => {
                return Err(SyncError::Damaged {
                    child: link.child.name.clone(),
                    id: id.to_hex(),
                    actual: actual.to_hex(),
                });
            }
            Err(e @ StoreError::Segment { .. }) => {
                return Err(link.forged(wanted.sensor, e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        check_place(link, &wanted, &received.header())?;
        let records = crate::node::check_segment_file(&id, received.segment())
            .map_err(|e| link.forged(wanted.sensor, e.to_string()))?;
        if received.meta().kind == Kind::Records {
            self.record_bytes = self.record_bytes.saturating_add(received.meta().raw_bytes);
        }
        self.checked.push((wanted, received, records));
        Ok(())
    }

    /// Commits what was checked: files, then the index, then the mirror.
    fn commit(&mut self, link: &mut Link<'_>) -> Result<(), SyncError> {
        if self.checked.is_empty() {
            return Ok(());
        }
        self.record_bytes = 0;
        let (taken, received): (Vec<_>, Vec<_>) = std::mem::take(&mut self.checked)
            .into_iter()
            .map(|(w, r, records)| ((w, records), r))
            .unzip();
        let outcomes = link.ctx.store.commit_received(received)?;
        let mut refused = None;
        let mut apply = Vec::new();
        for ((wanted, records), outcome) in taken.into_iter().zip(outcomes) {
            match outcome {
                Ok(meta) => {
                    link.stats.segments += 1;
                    if meta.kind == Kind::Records {
                        apply.push((meta.id, records));
                    }
                }
                Err(e @ StoreError::SequenceConflict { .. }) => {
                    refused.get_or_insert(link.forged(wanted.sensor, e.to_string()));
                }
                Err(e) => {
                    refused.get_or_insert(e.into());
                }
            }
        }
        if !apply.is_empty() {
            let mut node = link.ctx.node.lock().map_err(|_| SyncError::Protocol {
                child: link.child.name.clone(),
                detail: "node lock poisoned".into(),
            })?;
            node.mirror
                .apply_many(apply.iter().map(|(id, r)| (id, r.as_slice())))
                .map_err(crate::node::NodeError::from)?;
        }
        refused.map_or(Ok(()), Err)
    }
}

/// A segment must say of itself what the catalogue entry it was asked for
/// said: sensor, origin sequence and kind.
fn check_place(
    link: &Link<'_>,
    wanted: &Wanted,
    header: &crate::store::segment::Header,
) -> Result<(), SyncError> {
    if header.sensor_id != wanted.sensor
        || header.origin_seq != wanted.seq
        || header.kind != wanted.kind
    {
        return Err(link.forged(
            wanted.sensor,
            format!(
                "segment {}, listed at sequence {} as {}, is sensor {} sequence {} {}",
                wanted.id,
                wanted.seq,
                wanted.kind.name(),
                header.sensor_id,
                header.origin_seq,
                header.kind.name()
            ),
        ));
    }
    Ok(())
}

/// One step of reading a `POST /v1/segments` answer (docs/PROTOCOL.md §4).
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A frame's header: the segment and its length.
    Start { id: SegmentId, len: u64 },
    /// The next bytes of the current frame's segment.
    Body(&'a [u8]),
    /// The current frame is complete.
    End,
}

/// Reads the frames of a `POST /v1/segments` answer as the bytes arrive,
/// holding nothing but a frame header: a frame naming a segment that was
/// not asked for, or claiming more than `MAX_SEGMENT_BYTES`, is refused
/// before anything is written for it.
#[derive(Debug, Default)]
pub struct FrameReader {
    head: FrameHead,
    head_len: usize,
    /// Bytes of the current frame's segment still to come.
    body_left: Option<u64>,
}

/// A frame header the pull refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("sent segment {0}, which was not asked for")]
    NotAsked(SegmentId),
    #[error("segment {id} claims {len} bytes")]
    TooLong { id: SegmentId, len: u64 },
}

/// The bytes of a frame header read so far.
#[derive(Debug)]
struct FrameHead([u8; FRAME_HEADER_LEN]);

impl Default for FrameHead {
    fn default() -> Self {
        FrameHead([0; FRAME_HEADER_LEN])
    }
}

impl FrameReader {
    /// Reads what it can from the front of `input`: the bytes it used and
    /// the event they made, if any. `(0, None)`: it needs more input.
    pub fn step<'a>(
        &mut self,
        input: &'a [u8],
        requested: &HashSet<SegmentId>,
    ) -> Result<(usize, Option<FrameEvent<'a>>), FrameError> {
        if let Some(left) = self.body_left {
            if left == 0 {
                self.body_left = None;
                return Ok((0, Some(FrameEvent::End)));
            }
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
            if n == 0 {
                return Ok((0, None));
            }
            self.body_left = Some(left - n as u64);
            return Ok((n, Some(FrameEvent::Body(&input[..n]))));
        }
        let n = (FRAME_HEADER_LEN - self.head_len).min(input.len());
        self.head.0[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
        self.head_len += n;
        if self.head_len < FRAME_HEADER_LEN {
            return Ok((n, None));
        }
        self.head_len = 0;
        let mut id = [0u8; 32];
        id.copy_from_slice(&self.head.0[..32]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&self.head.0[32..40]);
        let (id, len) = (SegmentId(id), u64::from_le_bytes(len));
        if !requested.contains(&id) {
            return Err(FrameError::NotAsked(id));
        }
        if len > MAX_SEGMENT_BYTES {
            return Err(FrameError::TooLong { id, len });
        }
        self.body_left = Some(len);
        Ok((n, Some(FrameEvent::Start { id, len })))
    }

    /// True between frames: the only place a stream may end.
    pub fn between_frames(&self) -> bool {
        self.body_left.is_none() && self.head_len == 0
    }
}

/// Asks a child for its summary with a link secret, outside any pull (used
/// by `lumpy child add` to refuse a link that would close a cycle).
pub async fn fetch_summary(child: &ChildConfig, secret: &Secret) -> Result<Summary, SyncError> {
    let err = |detail: String| SyncError::Unreachable {
        child: child.name.clone(),
        url: child.url.clone(),
        detail,
    };
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20));
    let client = child_client(child, builder).map_err(|e| err(e.to_string()))?;
    let path = "/v1/summary";
    let header =
        auth::sign(secret, "GET", path, now_secs() as i64, b"").map_err(|e| SyncError::Secret {
            child: child.name.clone(),
            detail: e.to_string(),
        })?;
    let resp = client
        .get(format!("{}{path}", child.url.trim_end_matches('/')))
        .header(AUTH_HEADER, header)
        .send()
        .await
        .map_err(|e| net_error(child, &e))?;
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        let message = resp
            .json::<ErrorBody>()
            .await
            .map(|b| b.error)
            .unwrap_or_default();
        return Err(SyncError::Refused {
            child: child.name.clone(),
            status,
            message,
        });
    }
    resp.json::<Summary>()
        .await
        .map_err(|e| err(format!("bad summary: {e}")))
}

/// The link's secret and an HTTP client for `child` (its CA applied).
fn link_client(
    dir: &std::path::Path,
    child: &ChildConfig,
) -> Result<(crate::sync::auth::Secret, reqwest::Client), SyncError> {
    let secret = read_secret(dir, &child.name).map_err(|e| SyncError::Secret {
        child: child.name.clone(),
        detail: e.to_string(),
    })?;
    let http = child_client(child, pull_builder()).map_err(|e| SyncError::Protocol {
        child: child.name.clone(),
        detail: e.to_string(),
    })?;
    Ok((secret, http))
}

/// Fetches one segment from a child outside any pull (used by `repair`).
/// Its bytes go to a temporary file in `tmp/` as they arrive, hashed on the
/// way through a buffer of at most 1 MiB (never held whole in memory); its
/// header must name the sensor, sequence and kind `expected` holds as soon
/// as it has arrived. Gives the received file only when the bytes hash to
/// the id and parse; `Ok(None)` when the child does not hold a good copy.
/// Nothing is put in place here (`Store::restore_received` does).
pub async fn fetch_one(
    store: &Store,
    child: &ChildConfig,
    expected: &crate::store::SegmentMeta,
) -> Result<Option<Received>, SyncError> {
    let id = expected.id;
    let (secret, http) = link_client(store.dir(), child)?;
    let unreachable = |e: reqwest::Error| net_error(child, &e);
    let protocol = |detail: String| SyncError::Protocol {
        child: child.name.clone(),
        detail,
    };
    let body = serde_json::to_vec(&FetchRequest {
        ids: vec![id.to_hex()],
    })
    .unwrap_or_default();
    let path = "/v1/segments";
    let header = auth::sign(&secret, "POST", path, now_secs() as i64, &body).map_err(|e| {
        SyncError::Secret {
            child: child.name.clone(),
            detail: e.to_string(),
        }
    })?;
    let url = format!("{}{path}", child.url.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .header(AUTH_HEADER, header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(SyncError::Refused {
            child: child.name.clone(),
            status: status.as_u16(),
            message: status.canonical_reason().unwrap_or("error").to_string(),
        });
    }
    let requested: HashSet<SegmentId> = [id].into_iter().collect();
    let mut frames = FrameReader::default();
    let mut current: Option<crate::store::incoming::Incoming> = None;
    let mut received: Option<Received> = None;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreachable)?;
        let mut rest = &chunk[..];
        loop {
            let (used, event) = frames
                .step(rest, &requested)
                .map_err(|e| protocol(e.to_string()))?;
            rest = &rest[used..];
            match event {
                Some(FrameEvent::Start { len, .. }) => {
                    if received.is_some() || current.is_some() {
                        return Err(protocol(format!("sent more than segment {id}")));
                    }
                    current = Some(store.begin_incoming(&id, len)?);
                }
                Some(FrameEvent::Body(bytes)) => {
                    let Some(incoming) = current.as_mut() else {
                        return Err(protocol("segment bytes outside a frame".into()));
                    };
                    let before = incoming.head().len();
                    incoming.write(bytes)?;
                    if before < HEAD_LEN && incoming.head().len() == HEAD_LEN {
                        let header =
                            crate::store::segment::parse_header(incoming.head()).map_err(|e| {
                                protocol(format!(
                                    "segment {id} does not start with a segment header: {e}"
                                ))
                            })?;
                        if header.sensor_id != expected.sensor_id
                            || header.origin_seq != expected.origin_seq
                            || header.kind != expected.kind
                        {
                            return Err(protocol(format!(
                                "segment {id}, indexed here as sensor {} sequence {}, is sensor {} sequence {} there",
                                expected.sensor_id,
                                expected.origin_seq,
                                header.sensor_id,
                                header.origin_seq
                            )));
                        }
                    }
                }
                Some(FrameEvent::End) => {
                    let Some(incoming) = current.take() else {
                        return Err(protocol("a frame ended that never started".into()));
                    };
                    match incoming.finish() {
                        Ok(r) => received = Some(r),
                        Err(StoreError::HashMismatch { actual, .. }) => {
                            return Err(SyncError::Damaged {
                                child: child.name.clone(),
                                id: id.to_hex(),
                                actual: actual.to_hex(),
                            });
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                None if rest.is_empty() => break,
                None => {}
            }
        }
    }
    if let Some(incoming) = current {
        return Err(protocol(format!(
            "segment stream for {id} ended inside the segment ({} bytes received)",
            incoming.written()
        )));
    }
    if !frames.between_frames() {
        return Err(protocol(format!(
            "segment stream for {id} ended inside a frame header"
        )));
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `stream` in `piece`-byte chunks: the frames it gives.
    fn read_all(
        stream: &[u8],
        piece: usize,
        requested: &HashSet<SegmentId>,
    ) -> Result<Vec<(SegmentId, Vec<u8>)>, FrameError> {
        let mut frames = FrameReader::default();
        let mut out: Vec<(SegmentId, Vec<u8>)> = Vec::new();
        for mut chunk in stream.chunks(piece) {
            loop {
                let (used, event) = frames.step(chunk, requested)?;
                chunk = &chunk[used..];
                match event {
                    Some(FrameEvent::Start { id, .. }) => out.push((id, Vec::new())),
                    Some(FrameEvent::Body(b)) => out.last_mut().unwrap().1.extend_from_slice(b),
                    Some(FrameEvent::End) => {}
                    None if chunk.is_empty() => break,
                    None => {}
                }
            }
        }
        assert!(frames.between_frames());
        Ok(out)
    }

    fn frame(id: SegmentId, len: u64, body: &[u8]) -> Vec<u8> {
        let mut f = id.0.to_vec();
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_are_read_whatever_the_chunking_and_bad_headers_refused() {
        let (a, b) = (SegmentId::of(b"a"), SegmentId::of(b"b"));
        let requested: HashSet<_> = [a, b].into_iter().collect();
        let mut stream = frame(a, 3, b"abc");
        stream.extend(frame(b, 0, b""));
        stream.extend(frame(b, 5, b"hello"));
        for piece in [1, 7, 40, 41, 1000] {
            let got = read_all(&stream, piece, &requested).unwrap();
            assert_eq!(
                got,
                vec![
                    (a, b"abc".to_vec()),
                    (b, Vec::new()),
                    (b, b"hello".to_vec())
                ]
            );
        }
        let other = SegmentId::of(b"c");
        assert!(read_all(&frame(other, 1, b"x"), 100, &requested).is_err());
        let huge = frame(a, MAX_SEGMENT_BYTES + 1, b"");
        assert!(
            read_all(&huge, 100, &requested)
                .unwrap_err()
                .to_string()
                .contains("claims")
        );
    }
}
