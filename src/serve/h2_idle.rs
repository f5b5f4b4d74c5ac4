//! An HTTP/2 connection's idle limit.
//!
//! hyper's HTTP/1 server closes a connection whose next request head is late
//! (`header_read_timeout`); its HTTP/2 server has no such limit, so a client
//! that sends the preface and SETTINGS and then nothing would hold its
//! connection (and a file descriptor) for ever. Here a connection with no
//! request in progress for the limit is shut down gracefully (GOAWAY: a
//! request that began still completes). Owns the counting of requests in
//! progress on one connection; routes nothing itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use warp::Filter;

use super::ConnectionRoutes;

/// Requests in progress on one connection, and when the last one ended.
pub struct Activity {
    in_progress: AtomicUsize,
    quiet_since: Mutex<Instant>,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            in_progress: AtomicUsize::new(0),
            quiet_since: Mutex::new(Instant::now()),
        }
    }

    /// When the connection went quiet (no request in progress), if it is.
    fn quiet_since(&self) -> Option<Instant> {
        if self.in_progress.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.quiet_since.lock().ok().map(|t| *t)
    }
}

/// One request in progress; its end (or its cancellation) is counted on drop.
struct InProgress(Arc<Activity>);

impl InProgress {
    fn new(activity: Arc<Activity>) -> InProgress {
        activity.in_progress.fetch_add(1, Ordering::SeqCst);
        InProgress(activity)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.quiet_since.lock() {
            *t = Instant::now();
        }
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `routes` with each request counted in `activity` while it is answered.
pub fn counted(routes: ConnectionRoutes, activity: Arc<Activity>) -> ConnectionRoutes {
    warp::any()
        .map(move || InProgress::new(activity.clone()))
        .and(routes)
        .map(|in_progress: InProgress, reply: warp::reply::Response| {
            drop(in_progress);
            reply
        })
        .boxed()
}

/// Serves `conn` until it ends, shutting it down gracefully once no request
/// has been in progress for `limit`, and dropping it if the shutdown itself
/// takes longer than `limit`.
/// (`shutdown` asks the connection to finish its requests and end.)
pub async fn serve_until_idle<C: std::future::Future>(
    conn: C,
    shutdown: impl FnOnce(std::pin::Pin<&mut C>),
    activity: &Activity,
    limit: Duration,
) {
    tokio::pin!(conn);
    let check = (limit / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(check) => {}
        }
        if activity.quiet_since().is_some_and(|t| t.elapsed() >= limit) {
            tracing::debug!("HTTP/2 connection idle: shutting it down");
            shutdown(conn.as_mut());
            let _ = tokio::time::timeout(limit, conn.as_mut()).await;
            return;
        }
    }
}
