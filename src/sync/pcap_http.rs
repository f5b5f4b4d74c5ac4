//! `GET /pcap`: the pcap of a flow or filter over the peer API, answered
//! here or proxied hop by hop, streaming, to the child nearest the sensor's
//! origin that holds it.
//!
//! Owns the HTTP side of `pcap_service`: status codes, streaming with bounded
//! memory, and signing the proxied request with this node's own link secret.
//! Never writes to the store.

use std::io::Write;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use warp::http::StatusCode;

use super::auth;
use super::links::{nearest_pcap_holder, read_secret};
use super::protocol::AUTH_HEADER;
use super::reply::error_reply;
use crate::config::Config;
use crate::pcap_service::{PCAP_MIME, PcapError, PcapQuery, Plan, plan, write_local};
use crate::store::Store;

type Reply = warp::reply::Response;

/// Sends written bytes down a channel in chunks, so a flow of any size
/// streams with bounded memory.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

fn status_of(e: &PcapError) -> StatusCode {
    match e {
        PcapError::BadParam { .. } => StatusCode::BAD_REQUEST,
        PcapError::UnknownSensor(_) | PcapError::UnknownFlow { .. } => StatusCode::NOT_FOUND,
        PcapError::AgedOut(_) => StatusCode::GONE,
        PcapError::Store(_) | PcapError::Write(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn pcap_reply(q: &PcapQuery, body: warp::reply::Response) -> Reply {
    let mut r = body;
    let headers = r.headers_mut();
    if let Ok(v) = PCAP_MIME.parse() {
        headers.insert("content-type", v);
    }
    if let Ok(v) = format!("attachment; filename=\"{}\"", q.filename()).parse() {
        headers.insert("content-disposition", v);
    }
    r
}

/// Answers `/pcap` for a parent shown `shown` sensors (`None`: every one,
/// else its link's `peer add --sensors` list: another sensor's pcap is
/// refused as its catalogue is, locally or proxied).
pub async fn pcap(
    store: &Arc<Store>,
    config: &RwLock<Config>,
    query: &str,
    shown: Option<&[u32]>,
) -> Reply {
    let q = match PcapQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return error_reply(status_of(&e), &e.to_string()),
    };
    if shown.is_some_and(|list| !list.contains(&q.sensor)) {
        return error_reply(
            StatusCode::FORBIDDEN,
            &format!(
                "sensor {}: this link is limited to other sensors (peer add --sensors)",
                q.sensor
            ),
        );
    }
    let planned = {
        let (store, q) = (store.clone(), q.clone());
        tokio::task::spawn_blocking(move || {
            plan(&store, &q, &|sensor| nearest_pcap_holder(&store, sensor))
        })
        .await
    };
    match planned {
        Ok(Ok(Plan::Local(segments))) => local(store, q, segments),
        Ok(Ok(Plan::Proxy { child })) => proxy(store, config, &q, &child).await,
        Ok(Err(e)) => {
            if matches!(e, PcapError::Store(_)) {
                tracing::error!(error = %e, "pcap request");
                return error_reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store could not answer",
                );
            }
            error_reply(status_of(&e), &e.to_string())
        }
        Err(_) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, "pcap worker failed"),
    }
}

fn local(
    store: &Arc<Store>,
    q: PcapQuery,
    segments: Vec<(crate::store::SegmentId, Option<Vec<u32>>)>,
) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = store.clone();
    let query = q.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_local(&store, &query, &segments, &mut w).and_then(|_| Ok(w.flush()?));
        if let Err(e) = result {
            tracing::warn!(error = %e, "pcap stream ended early");
            // The client sees a broken stream, never a truncated "success".
            let _ = tx.blocking_send(Err(std::io::Error::other("pcap stream failed")));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    pcap_reply(&q, warp::Reply::into_response(warp::reply::stream(stream)))
}

/// Asks the child, with this node's link secret, and streams its answer
/// through unchanged (status, type and body).
async fn proxy(store: &Arc<Store>, config: &RwLock<Config>, q: &PcapQuery, child: &str) -> Reply {
    let child_cfg = config
        .read()
        .ok()
        .and_then(|c| c.children.iter().find(|c| c.name == child).cloned());
    let Some(child_cfg) = child_cfg else {
        return error_reply(
            StatusCode::BAD_GATEWAY,
            &format!("child {child} is not configured here"),
        );
    };
    let secret = match read_secret(store.dir(), child) {
        Ok(s) => s,
        Err(_) => {
            return error_reply(
                StatusCode::BAD_GATEWAY,
                &format!("no link secret for child {child}"),
            );
        }
    };
    let path = format!("/pcap?{}", q.to_query());
    let now = crate::clock::now_secs_i64();
    let Ok(header) = auth::sign(&secret, "GET", &path, now, b"") else {
        return error_reply(
            StatusCode::BAD_GATEWAY,
            &format!("cannot sign for child {child}"),
        );
    };
    let builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
    let client = match crate::sync::client::child_client(&child_cfg, builder) {
        Ok(c) => c,
        Err(e) => {
            // The detail names a local file: log it, answer without it.
            tracing::warn!(child, error = %e, "no client for a pcap proxy request");
            return error_reply(
                StatusCode::BAD_GATEWAY,
                &format!("child {child}: link misconfigured on this node"),
            );
        }
    };
    let url = format!("{}{path}", child_cfg.url.trim_end_matches('/'));
    let resp = match client.get(&url).header(AUTH_HEADER, header).send().await {
        Ok(r) => r,
        Err(_) => {
            return error_reply(
                StatusCode::BAD_GATEWAY,
                &format!("child {child} cannot be reached"),
            );
        }
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let stream = resp
        .bytes_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let mut reply = warp::Reply::into_response(warp::reply::stream(stream));
    *reply.status_mut() = status;
    if let Some(ct) = content_type.and_then(|c| c.parse().ok()) {
        reply.headers_mut().insert("content-type", ct);
    }
    if status.is_success() {
        return pcap_reply(q, reply);
    }
    reply
}
