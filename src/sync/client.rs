//! The pull: a parent asks each child what it holds and fetches only the
//! segments it lacks, verifying each against its id before it becomes
//! visible (docs/PROTOCOL.md §4).
//!
//! Owns the client side of the protocol and the link health it records.
//! Writes segments only through `Store::add_verified_segment` and records
//! only through the node's mirror.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::auth::{self, Secret};
use super::links::{LinkState, load_state, read_secret, save_state};
use super::protocol::*;
use super::summary::sensor_summary;
use crate::config::{ChildConfig, PcapMode};
use crate::node::{Node, NodeError};
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
pub fn child_client(
    child: &ChildConfig,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, String> {
    let plain_url = child.url.starts_with("http://");
    if plain_url != child.plain {
        return Err(format!(
            "child {}: {} with plain = {}: plain HTTP needs both an http:// URL and `--plain`",
            child.name, child.url, child.plain
        ));
    }
    let builder = match (&child.cert_sha256, &child.ca_file) {
        _ if plain_url => builder,
        (Some(pin), _) => {
            let tls = super::tls::pinned_client_config(pin)
                .map_err(|e| format!("child {}: {e}", child.name))?;
            builder.tls_backend_preconfigured(tls)
        }
        (None, Some(ca)) => {
            let pem = std::fs::read(ca).map_err(|e| format!("CA file {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("CA file {}: {e}", ca.display()))?;
            builder.tls_certs_only([cert])
        }
        (None, None) => {
            return Err(format!(
                "child {}: no certificate pinned for {} (add the link with the token `lumpy peer add` printed)",
                child.name, child.url
            ));
        }
    };
    builder.build().map_err(|e| format!("HTTP client: {e}"))
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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

    async fn send(
        &mut self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<reqwest::Response, SyncError> {
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
        let resp = req.send().await.map_err(|e| net_error(self.child, &e))?;
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

    async fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        resp: reqwest::Response,
    ) -> Result<T, SyncError> {
        let body = resp.bytes().await.map_err(|e| net_error(self.child, &e))?;
        self.stats.bytes_in += body.len() as u64;
        serde_json::from_slice(&body).map_err(|e| self.protocol(format!("bad JSON: {e}")))
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
) -> Result<bool, String> {
    let sensor = theirs.sensor_id;
    if origin_here {
        return Err(format!(
            "sensor {sensor}: originates at this node; no child speaks for it"
        ));
    }
    if !child.sensors.is_empty() {
        // The operator chose: the rest is passed over without a word.
        return Ok(child.sensors.contains(&sensor));
    }
    let is_roo = summary.below.iter().all(|n| *n == summary.node_id);
    if is_roo && theirs.hops != 0 {
        return Err(format!(
            "sensor {sensor}: the child has nothing below it and did not originate this sensor; not merged (list it with `lumpy child add --sensors` to take it)"
        ));
    }
    Ok(true)
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
            Err(why) => refusals.push(why),
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
        for e in page.entries {
            let id = SegmentId::from_hex(&e.id)
                .ok_or_else(|| link.protocol("catalogue: bad segment id"))?;
            let kind = Kind::from_u8(e.kind).ok_or_else(|| link.protocol("catalogue: bad kind"))?;
            if let Some(here) = tokio::task::block_in_place(|| store.entry_at(sensor, e.seq))?
                && here != id
            {
                return Err(link.forged(
                    sensor,
                    format!(
                        "its catalogue names segment {id} at sequence {}, where this node has {here}",
                        e.seq
                    ),
                ));
            }
            if let Some(meta) = tokio::task::block_in_place(|| store.segment_meta(&id))? {
                if meta.sensor_id != sensor || meta.origin_seq != e.seq {
                    return Err(link.forged(
                        sensor,
                        format!(
                            "its catalogue names segment {id} at sequence {}, which is sensor {} sequence {} here",
                            e.seq, meta.sensor_id, meta.origin_seq
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
                    seq: e.seq,
                    kind,
                });
            } else if kind == Kind::Pcap {
                known_only.push(crate::store::catalog::KnownEntry {
                    sensor_id: sensor,
                    seq: e.seq,
                    id,
                    kind,
                    stored_bytes: e.stored_bytes,
                    held: false,
                });
            }
        }
        if !page.more {
            break;
        }
    }
    tokio::task::block_in_place(|| store.record_known(&known_only))?;
    for batch in want.chunks(MAX_FETCH_IDS) {
        fetch_batch(link, batch).await?;
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

/// Fetches a batch of segments as one stream of frames, committing each as
/// soon as it is verified (so an interrupted pull loses one segment at most).
async fn fetch_batch(link: &mut Link<'_>, batch: &[Wanted]) -> Result<(), SyncError> {
    let ids: Vec<String> = batch.iter().map(|w| w.id.to_hex()).collect();
    let body = serde_json::to_vec(&FetchRequest { ids }).unwrap_or_default();
    let resp = link
        .send(reqwest::Method::POST, "/v1/segments", body, None)
        .await?;
    let requested: HashSet<SegmentId> = batch.iter().map(|w| w.id).collect();
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut expect: Option<(SegmentId, usize)> = None;
    loop {
        while let Some(done) =
            take_frame(&mut buf, &mut expect, &requested).map_err(|d| link.protocol(d))?
        {
            let Some(wanted) = batch.iter().find(|w| w.id == done.0) else {
                return Err(
                    link.protocol(format!("sent segment {}, which was not asked for", done.0))
                );
            };
            accept_segment(link, *wanted, done.1).await?;
        }
        match stream.next().await {
            Some(Ok(chunk)) => {
                link.stats.bytes_in += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
            }
            Some(Err(e)) => return Err(link.unreachable(e)),
            None => break,
        }
    }
    if !buf.is_empty() || expect.is_some() {
        return Err(link.protocol("segment stream ended inside a frame"));
    }
    Ok(())
}

/// Takes one complete frame of a `POST /v1/segments` answer off the front
/// of `buf`, if there is one; `expect` carries a frame whose header was
/// read. A frame naming a segment that was not asked for, or claiming more
/// than `MAX_SEGMENT_BYTES`, is refused before anything is allocated for it.
pub fn take_frame(
    buf: &mut Vec<u8>,
    expect: &mut Option<(SegmentId, usize)>,
    requested: &HashSet<SegmentId>,
) -> Result<Option<(SegmentId, Vec<u8>)>, String> {
    if expect.is_none() {
        if buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&buf[..32]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&buf[32..40]);
        let len = u64::from_le_bytes(len);
        let id = SegmentId(id);
        if !requested.contains(&id) {
            return Err(format!("sent segment {id}, which was not asked for"));
        }
        if len > MAX_SEGMENT_BYTES {
            return Err(format!("segment {id} claims {len} bytes"));
        }
        buf.drain(..FRAME_HEADER_LEN);
        *expect = Some((id, len as usize));
    }
    match *expect {
        Some((id, len)) if buf.len() >= len => {
            let rest = buf.split_off(len);
            let bytes = std::mem::replace(buf, rest);
            *expect = None;
            Ok(Some((id, bytes)))
        }
        _ => Ok(None),
    }
}

/// Verifies a received segment against its id and the catalogue place it
/// was asked for, checks its records, stores it, and applies its records to
/// the mirror. Nothing unverified ever becomes visible.
async fn accept_segment(
    link: &mut Link<'_>,
    wanted: Wanted,
    bytes: Vec<u8>,
) -> Result<(), SyncError> {
    let id = wanted.id;
    let actual = SegmentId::of(&bytes);
    if actual != id {
        return Err(SyncError::Damaged {
            child: link.child.name.clone(),
            id: id.to_hex(),
            actual: actual.to_hex(),
        });
    }
    let (header, records) = tokio::task::block_in_place(|| crate::node::check_segment(&id, &bytes))
        .map_err(|e| link.forged(wanted.sensor, e.to_string()))?;
    if header.sensor_id != wanted.sensor
        || header.origin_seq != wanted.seq
        || header.kind != wanted.kind
    {
        return Err(link.forged(
            wanted.sensor,
            format!(
                "segment {id}, listed at sequence {} as {}, is sensor {} sequence {} {}",
                wanted.seq,
                wanted.kind.name(),
                header.sensor_id,
                header.origin_seq,
                header.kind.name()
            ),
        ));
    }
    let node = link.ctx.node.clone();
    tokio::task::block_in_place(|| -> Result<(), SyncError> {
        let meta = match link.ctx.store.add_verified_segment(&id, &bytes) {
            Err(e @ StoreError::SequenceConflict { .. }) => {
                return Err(link.forged(wanted.sensor, e.to_string()));
            }
            other => other?,
        };
        if meta.kind == Kind::Records {
            let mut node = node.lock().map_err(|_| SyncError::Protocol {
                child: String::new(),
                detail: "node lock poisoned".into(),
            })?;
            node.apply_records(&id, &records)?;
        }
        Ok(())
    })?;
    link.stats.segments += 1;
    link.ctx.progress.inc(bytes.len() as u64);
    Ok(())
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
    let client = child_client(child, builder).map_err(err)?;
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
    let secret = read_secret(dir, &child.name).map_err(|detail| SyncError::Secret {
        child: child.name.clone(),
        detail,
    })?;
    let http = child_client(child, pull_builder()).map_err(|detail| SyncError::Protocol {
        child: child.name.clone(),
        detail,
    })?;
    Ok((secret, http))
}

/// Fetches one segment from a child outside any pull (used by `repair`):
/// the bytes are returned only when they hash to `id`; `Ok(None)` when the
/// child does not hold a good copy. Nothing is written here.
pub async fn fetch_one(
    dir: &std::path::Path,
    child: &ChildConfig,
    id: &SegmentId,
) -> Result<Option<Vec<u8>>, SyncError> {
    let (secret, http) = link_client(dir, child)?;
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
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut limit = FRAME_HEADER_LEN as u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreachable)?;
        buf.extend_from_slice(&chunk);
        if buf.len() >= FRAME_HEADER_LEN && limit == FRAME_HEADER_LEN as u64 {
            let mut len = [0u8; 8];
            len.copy_from_slice(&buf[32..40]);
            let len = u64::from_le_bytes(len);
            if buf[..32] != id.0 || len > MAX_SEGMENT_BYTES {
                return Err(protocol(format!(
                    "answered a request for segment {id} with another frame"
                )));
            }
            limit += len;
        }
        if buf.len() as u64 > limit && limit > FRAME_HEADER_LEN as u64 {
            return Err(protocol(format!("sent more than segment {id}")));
        }
    }
    if buf.is_empty() {
        return Ok(None);
    }
    if (buf.len() as u64) != limit || buf.len() < FRAME_HEADER_LEN {
        return Err(protocol(format!(
            "segment stream for {id} ended inside a frame"
        )));
    }
    let bytes = buf.split_off(FRAME_HEADER_LEN);
    if SegmentId::of(&bytes) != *id {
        return Err(SyncError::Damaged {
            child: child.name.clone(),
            id: id.to_hex(),
            actual: SegmentId::of(&bytes).to_hex(),
        });
    }
    Ok(Some(bytes))
}
