//! `lumpy serve`: the node daemon.
//!
//! Owns the runtime of a running node: the peer API (read-only for parents),
//! one pull loop per child at its interval (what cron and dbget2.pl did),
//! continuous ingest of the configured capture directories, and a clean stop
//! on SIGTERM or SIGINT (the server stops accepting, pulls stop between
//! segments, ingest commits the file in progress), and the optional live
//! sebek listener (`capture.sebek_listen`): UDP datagrams batched into one
//! record segment per `capture.sebek_flush_secs` and at shutdown;
//! and the web UI (`web`) on its own listener; and the control socket
//! (`control`, DIR/lumpy.sock) on which every other command runs against
//! this process's open node while it holds the data directory.
//! Owns no data of its own: it wires `sync`, `ingest` and the store together.

mod fd_limit;
mod h2_idle;
mod head_gate;

use std::net::SocketAddr;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use warp::Filter;

use tokio::sync::watch;

use crate::config::ChildConfig;
use crate::ingest::{FollowState, Ingestor, SebekDatagram, follow_once};
use crate::metrics::Metrics;
use crate::node::{self, NodeError};
use crate::sync::client::{PullContext, SyncError, pull_child};
use crate::sync::server::PeerApi;
use warp::Reply;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A rustls acceptor from PEM files (HTTP/1.1 and h2 by ALPN).
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use tokio_rustls::rustls;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ServeError::Tls(format!("{}: {e}", p.display())))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{}: no certificate in it",
            cert.display()
        )));
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| ServeError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ServeError::Tls(format!("{}: no private key in it", key.display())))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The peer API's TLS: the configured certificate, or the node's own (made
/// at first start); `None` only when `serve.peer_plain` asks for plain HTTP.
fn peer_tls(
    dir: &std::path::Path,
    serve: &crate::config::ServeConfig,
) -> Result<Option<tokio_rustls::TlsAcceptor>, ServeError> {
    if serve.peer_plain {
        tracing::warn!("peer API in plain HTTP (serve.peer_plain): for loopback tests only");
        return Ok(None);
    }
    let id = crate::sync::tls::ensure_identity(dir, serve)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    tracing::info!(fingerprint = %id.fingerprint, "peer API certificate (sha256)");
    Ok(Some(tls_acceptor(&id.cert, &id.key)?))
}

/// The routes one connection is served with, given its peer address.
type ConnectionRoutes = warp::filters::BoxedFilter<(warp::reply::Response,)>;

/// The peer API's routes for a connection from `peer`.
fn peer_routes(
    api: Arc<PeerApi>,
    metrics: Arc<Metrics>,
) -> impl Fn(SocketAddr) -> ConnectionRoutes {
    move |peer| {
        let metrics = metrics.clone();
        crate::sync::server::routes_with_remote(api.clone(), warp::any().map(move || Some(peer)))
            .map(crate::web::harden)
            .map(move |r: warp::reply::Response| {
                metrics.answered("peer", r.status().as_u16());
                r
            })
            .boxed()
    }
}

/// The web UI's routes for a connection from `peer`.
fn ui_routes(
    web: Arc<crate::web::Web>,
    metrics: Arc<Metrics>,
) -> impl Fn(SocketAddr) -> ConnectionRoutes {
    move |peer| {
        let metrics = metrics.clone();
        crate::web::routes_with_remote(web.clone(), warp::any().map(move || Some(peer)))
            .map(move |r: warp::reply::Response| {
                metrics.answered("ui", r.status().as_u16());
                r
            })
            .boxed()
    }
}

/// The metrics listener's one route, `GET /metrics` (everything else 404).
fn metrics_routes(
    metrics: Arc<Metrics>,
    store: Arc<crate::store::Store>,
    dir: std::path::PathBuf,
    config: crate::config::Config,
) -> impl Fn(SocketAddr) -> ConnectionRoutes {
    move |_| {
        let (metrics, store, dir, config) =
            (metrics.clone(), store.clone(), dir.clone(), config.clone());
        warp::path!("metrics")
            .and(warp::get())
            .then(move || {
                let (metrics, store, dir, config) =
                    (metrics.clone(), store.clone(), dir.clone(), config.clone());
                async move { scrape(metrics, store, dir, config).await }
            })
            .or(warp::any().map(|| {
                warp::reply::with_status("not found\n", warp::http::StatusCode::NOT_FOUND)
                    .into_response()
            }))
            .unify()
            .map(crate::web::harden)
            .boxed()
    }
}

/// One scrape, on a blocking thread (it reads the index and the mirror).
async fn scrape(
    metrics: Arc<Metrics>,
    store: Arc<crate::store::Store>,
    dir: std::path::PathBuf,
    config: crate::config::Config,
) -> warp::reply::Response {
    use warp::http::StatusCode;
    let counted = metrics.clone();
    let done = tokio::task::spawn_blocking(move || {
        // The children as lumpy.toml lists them now (`child add` beside serve).
        let config = crate::config::Config::load(&dir).unwrap_or(config);
        metrics.render(&store, &dir, &config)
    })
    .await;
    let reply = match done {
        Ok(Ok(text)) => warp::http::Response::builder()
            .header("content-type", crate::metrics::CONTENT_TYPE)
            .body(warp::hyper::body::Bytes::from(text).into())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics");
            warp::reply::with_status(format!("{e}\n"), StatusCode::INTERNAL_SERVER_ERROR)
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics task");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    counted.answered("metrics", reply.status().as_u16());
    reply
}

/// Connections the metrics listener serves at once.
const METRICS_CONNECTIONS: usize = 16;

/// How long a refused connection's 503 may take to write.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Accepts connections (TLS when `acceptor` is set) until shutdown; each
/// connection is served by `routes` with its own peer address (the peer API
/// and the web UI both run here). At most `max_connections` are served at
/// once: past it a new connection is answered 503 (cleartext) or closed
/// (TLS) at once. A client gets `REQUEST_READ_SECS` to send each request
/// head (then 408 with the security headers, `head_gate`; an idle
/// kept-alive connection is closed) and as long again for a body (then
/// 408), so slow senders cannot hold connections open. Cleartext speaks
/// HTTP/1 only (no client of ours uses cleartext HTTP/2); TLS offers h2 by
/// ALPN for the pulling parents, and an h2 connection without a request in
/// progress for `REQUEST_READ_SECS` is shut down (`h2_idle`).
async fn serve_connections(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    routes: impl Fn(SocketAddr) -> ConnectionRoutes,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let limit = Duration::from_secs(crate::sync::protocol::REQUEST_READ_SECS);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept");
                // Out of file descriptors, say: let some close first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "connection refused: the listener is at its connection limit");
            if acceptor.is_none() {
                tokio::spawn(refuse(tcp));
            }
            continue;
        };
        let acceptor = acceptor.clone();
        let routes = routes(peer);
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(H2_STREAMS)
                .keep_alive_interval(limit)
                .keep_alive_timeout(limit);
            match acceptor {
                Some(acceptor) => {
                    let Ok(Ok(tls)) = tokio::time::timeout(limit, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    // HTTP/2 frames its own requests: only HTTP/1 is gated.
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let activity = Arc::new(h2_idle::Activity::new());
                        let service = h2_idle::counted(
                            TowerToHyperService::new(warp::service(routes)),
                            activity.clone(),
                        );
                        let conn = builder.serve_connection(TokioIo::new(tls), service);
                        h2_idle::serve_until_idle(
                            conn,
                            |c| c.graceful_shutdown(),
                            &activity,
                            limit,
                        )
                        .await;
                    } else {
                        serve_http1(tls, routes, limit).await;
                    }
                }
                None => serve_http1(tcp, routes, limit).await,
            }
        });
    }
}

/// Serves one HTTP/1 connection with every request head read through
/// `head_gate` (whole and checked within `limit`, or refused), then answers
/// what the gate refused once hyper has finished the answers in progress.
async fn serve_http1<S>(stream: S, routes: ConnectionRoutes, limit: Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let gate = head_gate::Gate::new(stream, limit);
    let service = TowerToHyperService::new(warp::service(routes));
    let served = warp::hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // The gate's limit comes first; hyper's own (which closes without
        // an answer) only backs it up.
        .header_read_timeout(limit * 3)
        // The gate ends the stream after a refused head: the answers already
        // asked for are still written.
        .half_close(true)
        .serve_connection(TokioIo::new(gate), service)
        .without_shutdown()
        .await;
    if let Ok(parts) = served {
        head_gate::refuse(parts.io.into_inner()).await;
    }
}

/// Streams one HTTP/2 connection may have open at once.
const H2_STREAMS: u32 = 16;

/// Answers a connection over the limit 503 and closes it.
async fn refuse(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = "this listener serves as many connections as it may; try again shortly\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// What the command line says about the web UI.
#[derive(Debug, Clone, Default)]
pub struct UiChoice {
    /// `--ui-listen`: this address, and failing to bind it is fatal.
    pub listen: Option<String>,
    /// `--no-ui`.
    pub off: bool,
}

/// Builds the runtime and runs the node until SIGTERM or SIGINT.
/// `runner` runs the command lines clients send to the control socket
/// (`cli::run_forwarded`).
pub fn run(
    dir: &std::path::Path,
    listen: Option<String>,
    ui: UiChoice,
    runner: crate::control::Runner,
) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(serve(dir, listen, ui, runner))
}

async fn shutdown_signal(term: Option<tokio::signal::unix::Signal>, tx: watch::Sender<bool>) {
    let Some(mut term) = term else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("stopping");
    let _ = tx.send(true);
}

/// Binds the UI listener: an address given on the command line must bind;
/// the configured default only warns when taken (another node on this host).
async fn bind_ui(
    config: &crate::config::Config,
    ui: &UiChoice,
) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    if ui.off || (ui.listen.is_none() && !config.ui.enabled) {
        return Ok(None);
    }
    let addr = ui
        .listen
        .clone()
        .unwrap_or_else(|| config.ui.listen.clone());
    match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => Ok(Some(l)),
        Err(source) if ui.listen.is_some() => Err(ServeError::Listen { addr, source }),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "web UI not started: its address is taken (set ui.listen or --ui-listen)");
            Ok(None)
        }
    }
}

async fn serve(
    dir: &std::path::Path,
    listen: Option<String>,
    ui: UiChoice,
    runner: crate::control::Runner,
) -> Result<(), ServeError> {
    let node = node::open(dir)?;
    let config = node.config.clone();
    fd_limit::check(config.serve.max_connections, config.ui.max_connections);
    let addr = listen.unwrap_or_else(|| config.serve.listen.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: addr.clone(),
        source,
    })?;
    let sensor_id = node.identity.sensor_id;
    let sebek_socket =
        match config.capture.sebek_listen.trim() {
            "" => None,
            at => Some(tokio::net::UdpSocket::bind(at).await.map_err(|source| {
                ServeError::Listen {
                    addr: at.to_string(),
                    source,
                }
            })?),
        };
    // We hold the store lock now, so a socket file left there is stale.
    // Without the socket the node still serves; commands beside it then
    // say the directory is in use, as before the socket existed.
    let control = match crate::control::Server::bind(dir, runner) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: commands beside this serve will find the data directory in use");
            None
        }
    };
    let ctx = Arc::new(PullContext::new(node)?);
    let shared_config = Arc::new(RwLock::new(config.clone()));
    let api = PeerApi::new(ctx.store.clone(), shared_config);
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = watch::channel(false);
    let control = control.map(|(server, listener)| {
        let server = Arc::new(server);
        let task = tokio::spawn({
            let server = server.clone();
            let ctx = ctx.clone();
            let rx = rx.clone();
            async move { server.run(listener, ctx, rx).await }
        });
        (server, task)
    });
    // The SIGTERM handler is in place before "listening on" is printed, so
    // a stop sent as soon as that line is read is a clean stop, not a kill.
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::spawn(shutdown_signal(term, tx));
    let ui_task = match bind_ui(&config, &ui).await? {
        Some(ui_listener) => {
            let web = crate::web::Web::new(
                dir.to_path_buf(),
                ctx.store.clone(),
                api.clone(),
                config.clone(),
            );
            // The overview's all-time totals read before anyone asks.
            crate::web::api::refresh_totals(&web);
            if let Ok(a) = ui_listener.local_addr() {
                // On stderr: stdout's first line is the peer API's, for scripts.
                eprintln!("lumpy: web UI on http://{a}/");
                tracing::info!(addr = %a, "web UI");
            }
            Some(tokio::spawn(serve_connections(
                ui_listener,
                None,
                ui_routes(web, metrics.clone()),
                config.ui.max_connections,
                rx.clone(),
            )))
        }
        None => None,
    };

    let metrics_task = match config.metrics.listen.trim() {
        "" => None,
        at => {
            let listener =
                tokio::net::TcpListener::bind(at)
                    .await
                    .map_err(|source| ServeError::Listen {
                        addr: at.to_string(),
                        source,
                    })?;
            if let Ok(a) = listener.local_addr() {
                eprintln!("lumpy: metrics on http://{a}/metrics");
                tracing::info!(addr = %a, "metrics");
            }
            Some(tokio::spawn(serve_connections(
                listener,
                None,
                metrics_routes(
                    metrics.clone(),
                    ctx.store.clone(),
                    dir.to_path_buf(),
                    config.clone(),
                ),
                METRICS_CONNECTIONS,
                rx.clone(),
            )))
        }
    };

    let tls = peer_tls(dir, &config.serve)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = serve_connections(
        listener,
        tls,
        peer_routes(api.clone(), metrics.clone()),
        config.serve.max_connections,
        rx.clone(),
    );
    // Tests and scripts read the bound address from this line.
    println!("lumpy: listening on {local} ({scheme})");
    tracing::info!(%local, children = config.children.len(), "serving");

    let mut tasks = Vec::new();
    for child in config.children.clone() {
        tasks.push(tokio::spawn(pull_loop(ctx.clone(), child, rx.clone())));
    }
    // [[export]] targets (docs/CLICKHOUSE.md): each on its own thread.
    for e in config.exports.clone() {
        tasks.push(tokio::spawn(crate::export::clickhouse_live::keep_current(
            dir.to_path_buf(),
            e,
            rx.clone(),
        )));
    }
    if let Some(socket) = sebek_socket {
        if let Ok(at) = socket.local_addr() {
            tracing::info!(%at, "sebek listener");
        }
        let flush = Duration::from_secs(config.capture.sebek_flush_secs.max(1));
        tasks.push(tokio::spawn(sebek_listener(
            ctx.clone(),
            socket,
            sensor_id,
            flush,
            rx.clone(),
        )));
    }
    let ingest = (!config.capture.follow.is_empty()).then(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = tokio::task::spawn_blocking({
            let ctx = ctx.clone();
            let stop = stop.clone();
            let dirs = config.capture.follow.clone();
            let settle = Duration::from_secs(config.capture.settle_secs);
            move || ingest_loop(&ctx, &dirs, settle, &stop)
        });
        (stop, handle)
    });
    server.await;
    if let Some(t) = ui_task {
        let _ = t.await;
    }
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    if let Some((stop, handle)) = ingest {
        stop.store(true, Ordering::Relaxed);
        let _ = handle.await;
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some((server, task)) = control {
        let _ = task.await;
        // Commands run for clients stop at their next output or commit.
        let _ = tokio::task::spawn_blocking(move || server.finish(CONTROL_PATIENCE)).await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How long a stop waits for the commands clients run on the control socket.
const CONTROL_PATIENCE: Duration = Duration::from_secs(10);

/// Datagrams held before a commit even if the flush timer has not fired.
const SEBEK_BATCH_MAX: usize = 20_000;

/// Receives sebek datagrams until shutdown; commits them as records of this
/// node's sensor every `flush` and once more at shutdown, so a datagram
/// received before SIGTERM is durable when serve exits. Datagrams that are
/// not sebek v3 (or not from IPv4) are counted and logged, never stored.
async fn sebek_listener(
    ctx: Arc<PullContext>,
    socket: tokio::net::UdpSocket,
    sensor_id: u32,
    flush: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut batch: Vec<SebekDatagram> = Vec::new();
    let mut not_ipv4 = 0u64;
    let mut tick = tokio::time::interval(flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    enum Event {
        Got(std::io::Result<(usize, SocketAddr)>),
        Tick,
        Stop,
    }
    loop {
        let event = tokio::select! {
            r = socket.recv_from(&mut buf) => Event::Got(r),
            _ = tick.tick() => Event::Tick,
            _ = shutdown.wait_for(|s| *s) => Event::Stop,
        };
        match event {
            Event::Got(Ok((n, from))) => {
                let src = match from.ip() {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped(),
                };
                match (src, buf.get(..n)) {
                    (Some(src), Some(payload)) => batch.push(SebekDatagram {
                        src,
                        received_sec: now_sec(),
                        payload: payload.to_vec(),
                    }),
                    _ => {
                        not_ipv4 += 1;
                        tracing::warn!(%from, count = not_ipv4, "sebek datagram not from IPv4: skipped");
                    }
                }
                if batch.len() >= SEBEK_BATCH_MAX {
                    commit_sebek(&ctx, sensor_id, std::mem::take(&mut batch)).await;
                }
            }
            Event::Got(Err(e)) => tracing::warn!(error = %e, "sebek listener receive"),
            Event::Tick => commit_sebek(&ctx, sensor_id, std::mem::take(&mut batch)).await,
            Event::Stop => {
                commit_sebek(&ctx, sensor_id, std::mem::take(&mut batch)).await;
                return;
            }
        }
    }
}

use crate::clock::now_secs_u32 as now_sec;

/// Stores one batch (on a blocking thread: it takes the node lock and
/// writes segments).
async fn commit_sebek(ctx: &Arc<PullContext>, sensor_id: u32, batch: Vec<SebekDatagram>) {
    if batch.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    let n = batch.len();
    let done = tokio::task::spawn_blocking(move || {
        let Ok(mut node) = ctx.node.lock() else {
            return Err("node lock poisoned".to_string());
        };
        let mut ingestor = Ingestor::new(&mut node, None);
        ingestor
            .add_sebek_datagrams(sensor_id, &batch)
            .map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok((records, rejected))) => {
            if rejected > 0 {
                tracing::warn!(
                    datagrams = n,
                    records,
                    rejected,
                    "sebek: datagrams that are not sebek v3 skipped"
                );
            } else {
                tracing::info!(datagrams = n, records, "sebek: stored");
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, datagrams = n, "sebek: storing failed"),
        Err(e) => tracing::error!(error = %e, datagrams = n, "sebek: storing task failed"),
    }
}

/// Pulls from one child every `interval_secs` until shutdown.
async fn pull_loop(ctx: Arc<PullContext>, child: ChildConfig, mut shutdown: watch::Receiver<bool>) {
    loop {
        let span = tracing::info_span!("pull", child = %child.name);
        let _guard = span.enter();
        tokio::select! {
            r = pull_child(&ctx, &child) => match r {
                Ok(stats) => tracing::info!(segments = stats.segments, bytes_in = stats.bytes_in, unchanged = stats.unchanged, "pulled"),
                Err(e) => tracing::warn!(error = %e, "pull failed"),
            },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        drop(_guard);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(child.interval_secs)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Ingests the follow directories until `stop`; the node is locked only for
/// one pass at a time so pulls can apply their records in between.
fn ingest_loop(
    ctx: &PullContext,
    dirs: &[std::path::PathBuf],
    settle: Duration,
    stop: &Arc<AtomicBool>,
) {
    let mut state = FollowState::default();
    'passes: while !stop.load(Ordering::Relaxed) {
        if let Ok(mut node) = ctx.node.lock() {
            let mut ingestor = Ingestor::new(&mut node, None);
            ingestor.stop = Some(stop.clone());
            if let Err(e) = follow_once(&mut ingestor, dirs, settle, &mut state) {
                tracing::error!(error = %e, "ingest");
            }
        }
        for _ in 0..10 {
            if stop.load(Ordering::Relaxed) {
                break 'passes;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Checkpoint the open-flow tables, so the next start replays nothing.
    if let Ok(mut node) = ctx.node.lock() {
        let mut ingestor = Ingestor::new(&mut node, None);
        if let Err(e) = crate::ingest::follow_finish(&mut ingestor, &mut state) {
            tracing::error!(error = %e, "ingest: open-flow checkpoint at stop");
        }
    }
}
