//! An HTTP/2 connection's idle limit.
//!
//! hyper's HTTP/1 server closes a connection whose next request head is late
//! (`header_read_timeout`); its HTTP/2 server has no such limit, so a client
//! that sends the preface and SETTINGS and then nothing would hold its
//! connection (and a file descriptor) for ever. Here a connection with no
//! request in progress for the limit is shut down gracefully (GOAWAY: a
//! request that began still completes). A request is in progress from its
//! head until its answer's body has been sent whole or dropped (a pull's
//! segments stream for longer than the limit). Owns the counting of
//! requests in progress on one connection; routes nothing itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use tokio::time::Instant;
use warp::http::{Request, Response};
use warp::hyper::body::{Body, Frame, Incoming, SizeHint};
use warp::hyper::service::Service;

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
pub struct InProgress(Arc<Activity>);

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

/// `service` with each request counted in `activity` while it is answered:
/// from its head until the last byte of its answer's body is sent (or the
/// stream is dropped), so a long answer (a pull's segments) is never idle.
pub fn counted<S>(service: S, activity: Arc<Activity>) -> Counted<S> {
    Counted { service, activity }
}

/// A service whose requests are counted in an [`Activity`] (`counted`).
pub struct Counted<S> {
    service: S,
    activity: Arc<Activity>,
}

impl<S, B> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_progress = InProgress::new(self.activity.clone());
        let answer = self.service.call(req);
        Box::pin(async move {
            let answer = answer.await?;
            Ok(answer.map(|body| CountedBody {
                body,
                _in_progress: in_progress,
            }))
        })
    }
}

/// An answer's body that keeps its request counted until it is dropped.
pub struct CountedBody<B> {
    body: B,
    _in_progress: InProgress,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
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
