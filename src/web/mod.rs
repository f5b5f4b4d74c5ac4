//! The web UI of `lumpy serve`: one page application over a JSON API, on its
//! own listener (`[ui] listen`, localhost by default), apart from the peer API.
//!
//! Submodules: `users` (accounts file, argon2id), `sessions` (cookies,
//! expiry, login throttle), `api` (the `/api/v1` handlers), `packets` (a
//! flow's packets and payload, read through the pcap service), `assets` (the
//! HTML, CSS and JS, embedded in the binary). docs/UI.md describes the views,
//! docs/openapi.yaml the API.
//!
//! Reads only: the SQLite mirror (its own pool of read connections, never a
//! second redb handle), the store through the serve process's shared handle
//! (link states, the summary) and the pcap service. Must not write to the
//! store or the mirror, and must not accept peer credentials: a request
//! signature (`x-lumpy-auth`) never authenticates a UI request, and a UI
//! session is unknown to the peer API.

pub mod api;
pub mod assets;
pub mod packets;
pub mod sebek;
pub mod sessions;
pub mod users;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use warp::Filter;
use warp::http::{Response, StatusCode};

use crate::config::Config;
use crate::mirror::{Mirror, MirrorError};
use crate::store::Store;
use crate::sync::server::PeerApi;

type Reply = warp::reply::Response;

/// Largest request body the UI accepts (a login).
const MAX_BODY: u64 = 16 * 1024;
/// Mirror queries that may wait for a worker, per worker; past it 503.
const QUERY_QUEUE_PER_WORKER: usize = 4;
/// Longest wait for a query worker before answering 503.
const QUERY_WAIT: Duration = Duration::from_secs(5);
/// SQLite virtual-machine steps a heavy view may take per row of
/// `ui.heavy_rows` (an aggregate by address takes about 53 per row it
/// reads, a time series about 26; measured with sqlite3's `.stats`).
pub const HEAVY_STEPS_PER_ROW: u64 = 50;
/// Time a failed login waits before answering.
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(400);
/// Password checks run at once (argon2id takes 19 MiB and a core's worth
/// of tens of milliseconds each).
const HASHING_AT_ONCE: usize = 2;
/// Logins waiting for a password check; past it a login is answered 503.
const HASHING_QUEUE: usize = 8;
/// Longest wait for a password check before answering 503.
const HASHING_WAIT: Duration = Duration::from_secs(10);
/// How long the overview's all-time totals are reused (they read every row
/// of every sensor).
pub const TOTALS_TTL: Duration = Duration::from_secs(60);

/// The Content-Security-Policy of every answer: nothing but this origin,
/// no inline script or style, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// State shared by every UI request.
pub struct Web {
    pub dir: PathBuf,
    pub store: Arc<Store>,
    pub peer: Arc<PeerApi>,
    pub config: Config,
    pub sessions: sessions::Sessions,
    users: Mutex<(Option<SystemTime>, Vec<users::User>)>,
    /// Idle read connections (at most `ui.query_workers`).
    mirrors: Mutex<Vec<Mirror>>,
    /// Permits to run a mirror query: at most `ui.query_workers` at once,
    /// each on its own connection (a cap on connections, not only a cache).
    query_workers: Arc<tokio::sync::Semaphore>,
    /// Queries waiting for a permit.
    queries_waiting: std::sync::atomic::AtomicUsize,
    /// Permits to run a heavy view (`ui.heavy_workers`), taken before a
    /// query permit, so heavy views hold at most that many of the workers.
    heavy_workers: Arc<tokio::sync::Semaphore>,
    /// Heavy views waiting for a heavy permit.
    heavy_waiting: std::sync::atomic::AtomicUsize,
    /// Made on the first login of an unknown user (argon2 is not free).
    dummy_hash: std::sync::OnceLock<String>,
    /// Permits to run a password check (`HASHING_AT_ONCE`).
    hashing: Arc<tokio::sync::Semaphore>,
    /// Logins waiting for a permit (at most `HASHING_QUEUE`).
    hashing_waiting: std::sync::atomic::AtomicUsize,
    /// The overview's all-time totals per sensor, and when they were read.
    pub totals_cache: TotalsCache,
    /// A background refresh of `totals_cache` runs (at most one).
    pub totals_refreshing: std::sync::atomic::AtomicBool,
}

/// All-time totals per sensor, read at `at` when the mirror held `flows`
/// flow rows (both tables).
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub at: Option<std::time::Instant>,
    pub flows: u64,
    pub by_sensor: std::collections::BTreeMap<u32, crate::mirror::ui_query::Totals>,
}

/// The overview's totals cache (`api::cached_totals`, `api::refresh_totals`).
pub type TotalsCache = Mutex<Totals>;

/// Below this many flow rows the overview reads its totals whenever the
/// mirror changed (a pass costs milliseconds); above, changed figures are
/// read in the background and the previous ones answered meanwhile.
pub const TOTALS_INLINE_FLOWS: u64 = 200_000;

/// Why a password was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginBusy {
    /// Too many logins wait already, or the wait was too long.
    Busy,
}

impl Web {
    pub fn new(dir: PathBuf, store: Arc<Store>, peer: Arc<PeerApi>, config: Config) -> Arc<Web> {
        let sessions = sessions::Sessions::new(
            Duration::from_secs(config.ui.session_idle_secs),
            Duration::from_secs(config.ui.session_max_secs),
        );
        let workers = config.ui.query_workers.max(1);
        let heavy = config.ui.heavy_workers.clamp(1, workers);
        Arc::new(Web {
            dir,
            store,
            peer,
            config,
            sessions,
            users: Mutex::new((None, Vec::new())),
            mirrors: Mutex::new(Vec::new()),
            query_workers: Arc::new(tokio::sync::Semaphore::new(workers)),
            queries_waiting: std::sync::atomic::AtomicUsize::new(0),
            heavy_workers: Arc::new(tokio::sync::Semaphore::new(heavy)),
            heavy_waiting: std::sync::atomic::AtomicUsize::new(0),
            dummy_hash: std::sync::OnceLock::new(),
            hashing: Arc::new(tokio::sync::Semaphore::new(HASHING_AT_ONCE)),
            hashing_waiting: std::sync::atomic::AtomicUsize::new(0),
            totals_cache: Mutex::new(Totals::default()),
            totals_refreshing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The accounts, re-read when the file changed (`lumpy user add` while
    /// serving). Sessions of removed users are closed.
    fn users(&self) -> Vec<users::User> {
        let path = users::users_path(&self.dir);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let Ok(mut cache) = self.users.lock() else {
            return Vec::new();
        };
        if cache.0 != modified || modified.is_none() {
            match users::load(&self.dir) {
                Ok(fresh) => {
                    for old in &cache.1 {
                        if !fresh
                            .iter()
                            .any(|u| u.name == old.name && u.hash == old.hash)
                        {
                            self.sessions.close_user(&old.name);
                        }
                    }
                    *cache = (modified, fresh);
                }
                Err(e) => tracing::warn!(error = %e, "UI accounts file cannot be read"),
            }
        }
        cache.1.clone()
    }

    /// Checks a login; the same answer (false) for an unknown user and a
    /// wrong password, after the same argon2 work.
    pub fn check_login(&self, name: &str, password: &str) -> bool {
        let users = self.users();
        match users.iter().find(|u| u.name == name) {
            Some(u) => users::verify_password(&u.hash, password),
            None => {
                let dummy = self.dummy_hash.get_or_init(users::dummy_hash);
                let _ = users::verify_password(dummy, password);
                false
            }
        }
    }

    /// Checks a login off the runtime, at most `HASHING_AT_ONCE` at a time
    /// with at most `HASHING_QUEUE` waiting (memory and CPU stay bounded
    /// whatever the number of clients); Busy past that.
    pub async fn check_login_bounded(
        self: &Arc<Self>,
        name: String,
        password: String,
    ) -> Result<bool, LoginBusy> {
        use std::sync::atomic::Ordering;
        let waiting = self.hashing_waiting.fetch_add(1, Ordering::SeqCst);
        let permit = if waiting >= HASHING_QUEUE {
            None
        } else {
            tokio::time::timeout(HASHING_WAIT, self.hashing.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        self.hashing_waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.ok_or(LoginBusy::Busy)?;
        let web = self.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let ok = web.check_login(&name, &password);
            drop(permit);
            ok
        })
        .await
        .unwrap_or(false);
        Ok(ok)
    }

    /// The user of a live session whose account still exists.
    pub fn session_user(&self, token: &str) -> Option<String> {
        let user = self.sessions.check(token)?;
        if self.users().iter().any(|u| u.name == user) {
            Some(user)
        } else {
            self.sessions.close(token);
            None
        }
    }

    /// Runs `f` on a pooled read connection to the mirror, off the runtime,
    /// within the query budget: at most `ui.query_workers` at once (Busy
    /// when too many wait or the wait is long), interrupted after
    /// `ui.query_timeout_secs` (TimedOut) or as soon as the caller goes away
    /// (the client closed its connection: this future is dropped).
    pub async fn with_mirror<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Mirror) -> Result<T, MirrorError> + Send + 'static,
    ) -> Result<T, QueryError> {
        self.run_query(None, f).await
    }

    /// [`Web::with_mirror`] for a heavy view (an aggregate, a plot, the
    /// connections graph: queries that read rows in proportion to the
    /// data, not to a page): at most `ui.heavy_workers` run at once, each
    /// holding one of the query workers too (so the others stay free for
    /// the connection table), with as many waiting per heavy worker as per
    /// worker; and their statements together may read about
    /// `ui.heavy_rows` rows (`HEAVY_STEPS_PER_ROW` SQLite steps each),
    /// past which the view is stopped (OverBudget).
    pub async fn with_heavy_mirror<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Mirror) -> Result<T, MirrorError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let heavy = self.heavy_permit().await?;
        let steps = self
            .config
            .ui
            .heavy_rows
            .saturating_mul(HEAVY_STEPS_PER_ROW);
        self.run_query(Some((heavy, steps)), f).await
    }

    /// Runs `f` as `with_mirror` says; a heavy view brings its permit (held
    /// until its statement stopped, like the query permit) and its budget.
    async fn run_query<T: Send + 'static>(
        self: &Arc<Self>,
        heavy: Option<(tokio::sync::OwnedSemaphorePermit, u64)>,
        f: impl FnOnce(&Mirror) -> Result<T, MirrorError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let permit = self.query_permit().await?;
        let mirror = {
            let taken = self.mirrors.lock().ok().and_then(|mut p| p.pop());
            match taken {
                Some(m) => m,
                None => self.open_query_connection().await?,
            }
        };
        let state = Arc::new(Mutex::new(QueryState::Running));
        let interrupt = InterruptOnDrop {
            handle: Some(mirror.interrupt_handle()),
            state: state.clone(),
        };
        let web = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut mirror = mirror;
            let (heavy_permit, budget) = match heavy {
                Some((p, steps)) => (Some(p), Some(steps)),
                None => (None, None),
            };
            let spent = mirror.set_step_budget(budget);
            let out = f(&mirror);
            if budget.is_some() {
                mirror.set_step_budget(None);
            }
            let out = match out {
                Err(_) if spent.load(std::sync::atomic::Ordering::SeqCst) => {
                    Err(QueryError::OverBudget(web.config.ui.heavy_rows))
                }
                other => other.map_err(QueryError::Mirror),
            };
            // An abandoned query's connection may have been interrupted
            // after its statement ended: it is closed, not pooled, so the
            // interrupt can never reach another query.
            let pool = state.lock().is_ok_and(|mut s| {
                let abandoned = *s == QueryState::Abandoned;
                *s = QueryState::Finished;
                !abandoned
            });
            if pool
                && let Ok(mut p) = web.mirrors.lock()
                && p.len() < web.config.ui.query_workers
            {
                p.push(mirror);
            }
            // The worker is free only when its query has stopped.
            drop(permit);
            drop(heavy_permit);
            out
        });
        let limit = Duration::from_secs(self.config.ui.query_timeout_secs);
        let out = match tokio::time::timeout(limit, work).await {
            Err(_late) => {
                tracing::warn!(
                    secs = limit.as_secs(),
                    "UI query interrupted: over its time"
                );
                return Err(QueryError::TimedOut);
            }
            Ok(Err(e)) => Err(QueryError::Mirror(MirrorError::InvalidQuery {
                path: crate::node::MIRROR_FILE.into(),
                what: format!("query worker failed: {e}"),
            })),
            Ok(Ok(out)) => out,
        };
        interrupt.disarm();
        out
    }

    /// A permit to run one query, or Busy.
    async fn query_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, QueryError> {
        use std::sync::atomic::Ordering;
        let queue = self.config.ui.query_workers.max(1) * QUERY_QUEUE_PER_WORKER;
        let waiting = self.queries_waiting.fetch_add(1, Ordering::SeqCst);
        let permit = if waiting >= queue {
            None
        } else {
            tokio::time::timeout(QUERY_WAIT, self.query_workers.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        self.queries_waiting.fetch_sub(1, Ordering::SeqCst);
        permit.ok_or(QueryError::Busy)
    }

    /// A permit to run one heavy view, or Busy.
    async fn heavy_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, QueryError> {
        use std::sync::atomic::Ordering;
        let queue = self.config.ui.heavy_workers.max(1) * QUERY_QUEUE_PER_WORKER;
        let waiting = self.heavy_waiting.fetch_add(1, Ordering::SeqCst);
        let permit = if waiting >= queue {
            None
        } else {
            tokio::time::timeout(QUERY_WAIT, self.heavy_workers.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        self.heavy_waiting.fetch_sub(1, Ordering::SeqCst);
        permit.ok_or(QueryError::Busy)
    }

    /// A new read connection with the configured page cache.
    async fn open_query_connection(&self) -> Result<Mirror, QueryError> {
        let path = self.dir.join(crate::node::MIRROR_FILE);
        let cache_kib = self.config.ui.query_cache_mib.saturating_mul(1024);
        let opened = tokio::task::spawn_blocking(move || {
            let m = Mirror::open_reader(&path)?;
            m.set_cache_kib(cache_kib)?;
            Ok(m)
        })
        .await;
        match opened {
            Ok(r) => r.map_err(QueryError::Mirror),
            Err(e) => Err(QueryError::Mirror(MirrorError::InvalidQuery {
                path: crate::node::MIRROR_FILE.into(),
                what: format!("query worker failed: {e}"),
            })),
        }
    }
}

/// Why a UI query was not answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// Every query worker is busy and enough queries wait already.
    #[error("the node is answering as many queries as it may; try again shortly")]
    Busy,
    /// The query ran past `ui.query_timeout_secs` and was stopped.
    #[error("the query took too long and was stopped; narrow it (a time range, a sensor)")]
    TimedOut,
    /// A heavy view read more rows than `ui.heavy_rows` and was stopped.
    #[error(
        "this view would read more than {0} rows (ui.heavy_rows) and was stopped; narrow it (a time range, a sensor, an address)"
    )]
    OverBudget(u64),
}

/// Where one query is, as its worker and its request see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryState {
    Running,
    /// The request gave up (timeout or client gone) while it ran.
    Abandoned,
    Finished,
}

/// Interrupts the connection's running statement when dropped armed: the
/// request future was dropped (client gone) or the query ran out of time.
/// The interrupt is sent under the state lock, so it reaches the query it
/// was meant for or none.
struct InterruptOnDrop {
    handle: Option<rusqlite::InterruptHandle>,
    state: Arc<Mutex<QueryState>>,
}

impl InterruptOnDrop {
    fn disarm(mut self) {
        self.handle = None;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        let Some(h) = self.handle.take() else { return };
        if let Ok(mut s) = self.state.lock()
            && *s == QueryState::Running
        {
            *s = QueryState::Abandoned;
            h.interrupt();
        }
    }
}

/// Security headers every answer of both listeners carries (the answers
/// `serve::head_gate` writes itself too).
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Adds the security headers (and `cache-control: no-store` unless the
/// answer set its own).
pub fn harden(mut r: Reply) -> Reply {
    let h = r.headers_mut();
    for (k, v) in SECURITY_HEADERS {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    if !h.contains_key("cache-control")
        && let Ok(v) = "no-store".parse()
    {
        h.insert("cache-control", v);
    }
    r
}

/// A JSON error body `{"error": ...}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap_or_else(|_| Response::new(Vec::new().into()))
}

/// One parsed request, as the handlers see it.
pub struct Request {
    pub method: warp::http::Method,
    pub path: String,
    pub query: String,
    pub cookie: Option<String>,
    pub content_type: Option<String>,
    pub origin: Option<String>,
    pub host: Option<String>,
    pub remote: Option<SocketAddr>,
    pub body: Bytes,
}

/// The warp filter of the whole UI.
/// The UI's routes, taking the client address from the connection.
pub fn routes(web: Arc<Web>) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    routes_with_remote(web, warp::addr::remote())
}

/// The UI's routes with the client address taken from `remote` (the accept
/// loop of `serve` passes each connection's peer address in). A body must be
/// at most `MAX_BODY` and arrive within the peer API's `REQUEST_READ_SECS`
/// (else 413 or 408).
pub fn routes_with_remote(
    web: Arc<Web>,
    remote: impl Filter<Extract = (Option<std::net::SocketAddr>,), Error = Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    let with_web = warp::any().map(move || web.clone());
    let head = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("cookie"))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(remote);
    // A request without a Content-Length has an empty body; one with it is
    // read within the limits. (An `or` that matched anything would turn an
    // oversized body's 413 into an empty body.)
    let no_body = warp::header::optional::<String>("content-length").and_then(
        |length: Option<String>| async move {
            match length {
                None => Ok(Bytes::new()),
                Some(_) => Err(warp::reject::reject()),
            }
        },
    );
    let body = warp::body::content_length_limit(MAX_BODY)
        .and(crate::sync::server::body_in_time(MAX_BODY))
        .or(no_body)
        .unify();
    with_web
        .and(head)
        .and(body)
        .and_then(
            |web: Arc<Web>,
             method,
             path: warp::path::FullPath,
             query,
             cookie,
             content_type,
             origin,
             host,
             remote,
             body| async move {
                let req = Request {
                    method,
                    path: path.as_str().to_string(),
                    query,
                    cookie,
                    content_type,
                    origin,
                    host,
                    remote,
                    body,
                };
                Ok::<_, Infallible>(harden(api::handle(web, req).await))
            },
        )
        .recover(|rejection: warp::Rejection| async move {
            let (status, msg) = if rejection.find::<warp::reject::PayloadTooLarge>().is_some()
                || rejection.find::<crate::sync::server::TooLarge>().is_some()
            {
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else if rejection.find::<crate::sync::server::SlowBody>().is_some() {
                (StatusCode::REQUEST_TIMEOUT, "request body too slow")
            } else {
                (StatusCode::BAD_REQUEST, "bad request")
            };
            Ok::<_, Infallible>(harden(error(status, msg)))
        })
        .unify()
}
