//! Every HTTP/1 request head of a connection, read and checked before hyper
//! sees it.
//!
//! hyper closes a connection whose request head is late without answering
//! it, and answers a head it refuses (a raw `"` in the target, too many
//! header lines) with a bare answer of its own, without the security
//! headers. So each HTTP/1 connection is read through a [`Gate`]: it hands
//! hyper a request head only once the whole head is in and passes the
//! checks hyper would make (httparse, hyper's own parser, with hyper's 100
//! header lines; the target a URI of visible ASCII without `"`; a valid
//! framing), then exactly that
//! request's body (`Content-Length` bytes, or the chunks up to the last),
//! then waits for the next head the same way. A head that fails is not
//! passed on: hyper reads the end of the stream, finishes the answer in
//! progress (half-close) and gives the connection back, and [`refuse`]
//! answers it here, with the security headers: `408` when a head begun is
//! not whole within the limit, `431` when it passes `MAX_HEAD` bytes
//! (trickled or not), `400` when hyper would refuse it. A kept-alive
//! connection whose next head has not begun within the limit (counted from
//! the first byte of the previous answer) is closed without an answer, as
//! hyper's own `header_read_timeout` does; an HTTP/2 preface on a cleartext
//! HTTP/1 connection is closed without one too. Owns no routing and reads
//! nothing but the framing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

/// A request head longer than this is answered 431.
const MAX_HEAD: usize = 64 * 1024;

/// Header lines hyper accepts in a head (its default); more is 431.
const MAX_HEADERS: usize = 100;

/// A chunk-size or trailer line longer than this stops the gate's framing
/// (hyper refuses such a body itself).
const MAX_CHUNK_LINE: usize = 4096;

/// How long a refused client's remaining bytes are read and dropped after
/// the answer, so it is not lost to a reset (a lingering close).
const LINGER: Duration = Duration::from_secs(2);

/// Why a head was not passed on, and what the client is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not whole within the limit: 408.
    Late(Duration),
    /// Over `MAX_HEAD` bytes, or over hyper's header lines: 431.
    TooLarge,
    /// What hyper would refuse: 400.
    Malformed(&'static str),
    /// Closed without an answer (an idle kept-alive connection, an HTTP/2
    /// preface on an HTTP/1 listener).
    Silent,
}

impl Refusal {
    /// The status line and body of the answer, None for a silent close.
    fn answer(&self) -> Option<(&'static str, String)> {
        match self {
            Refusal::Late(limit) => Some((
                "408 Request Timeout",
                format!("request head not received within {} s\n", limit.as_secs()),
            )),
            Refusal::TooLarge => Some((
                "431 Request Header Fields Too Large",
                format!(
                    "request head over {} KiB or {MAX_HEADERS} header lines\n",
                    MAX_HEAD / 1024
                ),
            )),
            Refusal::Malformed(why) => Some(("400 Bad Request", format!("{why}\n"))),
            Refusal::Silent => None,
        }
    }
}

/// Where the gate is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a head: nothing passes until it is whole and acceptable.
    Head,
    /// Passing this many more bytes of a body.
    Body(u64),
    /// Passing a chunked body: a chunk-size line next.
    ChunkSize,
    /// Passing this many more bytes of a chunk, then its line end.
    ChunkData(u64),
    /// Passing the line end after a chunk's data.
    ChunkEnd,
    /// Passing the trailer lines after the last chunk, up to an empty one.
    Trailers,
    /// Passing everything unchecked (framing the gate does not follow;
    /// hyper judges it).
    Through,
    /// Refused or ended: hyper reads the end of the stream.
    Done,
}

/// A stream that hands hyper whole, checked request heads and their bodies
/// (see the module doc); writes go straight through.
pub struct Gate<S> {
    inner: S,
    limit: Duration,
    /// Bytes read from `inner` not yet handed on; the first `ready` of them
    /// may be.
    buf: Vec<u8>,
    ready: usize,
    state: State,
    /// When the head being read must be whole; None while the previous
    /// request has not been answered yet.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Something was written since the last head was passed on (the answer
    /// began, so the client may send its next head).
    answered: bool,
    inner_done: bool,
    refused: Option<Refusal>,
}

impl<S> Gate<S> {
    /// Gates `inner`, whose first head must be whole within `limit`.
    pub fn new(inner: S, limit: Duration) -> Gate<S> {
        Gate {
            inner,
            limit,
            buf: Vec::new(),
            ready: 0,
            state: State::Head,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            answered: true,
            inner_done: false,
            refused: None,
        }
    }

    /// Why the gate stopped passing requests on, if it refused one.
    pub fn refused(&self) -> Option<&Refusal> {
        self.refused.as_ref()
    }

    fn refuse(&mut self, why: Refusal) {
        self.refused = Some(why);
        self.state = State::Done;
        self.deadline = None;
    }

    /// Starts waiting for the next head (its time runs from the answer's
    /// first byte, which may already have been written).
    fn next_head(&mut self) {
        self.state = State::Head;
        self.deadline = None;
    }

    /// Classifies the bytes in `buf` past `ready` as far as it can (heads
    /// checked, body bytes approved). Returns true if it moved.
    fn advance(&mut self) -> bool {
        let pending = self.buf.len() - self.ready;
        if pending == 0 {
            return false;
        }
        let at = self.ready;
        match self.state {
            State::Head => match check_head(&self.buf[at..]) {
                HeadCheck::Partial => {
                    if self.buf.len() - at > MAX_HEAD {
                        self.refuse(Refusal::TooLarge);
                        return true;
                    }
                    false
                }
                HeadCheck::Refused(why) => {
                    self.refuse(why);
                    true
                }
                HeadCheck::Whole { len, body } => {
                    self.ready += len;
                    self.deadline = None;
                    self.answered = false;
                    self.state = match body {
                        Body::Length(0) => {
                            self.next_head();
                            State::Head
                        }
                        Body::Length(n) => State::Body(n),
                        Body::Chunked => State::ChunkSize,
                    };
                    true
                }
            },
            State::Body(n) | State::ChunkData(n) => {
                let take = (pending as u64).min(n);
                self.ready += take as usize;
                let left = n - take;
                self.state = match (self.state, left) {
                    (State::Body(_), 0) => {
                        self.next_head();
                        State::Head
                    }
                    (State::Body(_), _) => State::Body(left),
                    (_, 0) => State::ChunkEnd,
                    _ => State::ChunkData(left),
                };
                true
            }
            State::ChunkSize => match httparse::parse_chunk_size(&self.buf[at..]) {
                Ok(httparse::Status::Complete((len, size))) => {
                    self.ready += len;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                    true
                }
                Ok(httparse::Status::Partial) if pending <= MAX_CHUNK_LINE => false,
                _ => {
                    self.state = State::Through;
                    true
                }
            },
            State::ChunkEnd => match self.buf[at..].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.ready += i + 1;
                    self.state = State::ChunkSize;
                    true
                }
                None if pending <= 2 => false,
                None => {
                    self.state = State::Through;
                    true
                }
            },
            State::Trailers => match self.buf[at..].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let line = &self.buf[at..at + i];
                    let empty = line.is_empty() || line == b"\r";
                    self.ready += i + 1;
                    if empty {
                        self.next_head();
                    }
                    true
                }
                None if pending <= MAX_CHUNK_LINE => false,
                None => {
                    self.state = State::Through;
                    true
                }
            },
            State::Through => {
                self.ready = self.buf.len();
                true
            }
            State::Done => false,
        }
    }
}

/// How a request's body is framed.
enum Body {
    Length(u64),
    Chunked,
}

enum HeadCheck {
    Partial,
    Refused(Refusal),
    Whole { len: usize, body: Body },
}

/// Checks the head at the start of `bytes` as hyper would read it.
fn check_head(bytes: &[u8]) -> HeadCheck {
    if bytes.starts_with(b"PRI * HTTP/2.0") || b"PRI * HTTP/2.0".starts_with(bytes) {
        // A cleartext HTTP/2 preface (or the start of one): no HTTP/1 answer
        // would mean anything to that client.
        return if bytes.len() >= 14 {
            HeadCheck::Refused(Refusal::Silent)
        } else {
            HeadCheck::Partial
        };
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Partial) => return HeadCheck::Partial,
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return HeadCheck::Refused(Refusal::TooLarge),
        Err(_) => return HeadCheck::Refused(Refusal::Malformed("malformed request head")),
    };
    if len > MAX_HEAD {
        return HeadCheck::Refused(Refusal::TooLarge);
    }
    // Stricter than hyper here: visible ASCII without the double quote
    // (hyper lets `"` through to the routes since http 1.4).
    let acceptable_target = req.path.is_some_and(|t| {
        t.bytes().all(|b| b == b'!' || (b'#'..=b'~').contains(&b))
            && t.parse::<warp::http::Uri>().is_ok()
    });
    if !acceptable_target {
        return HeadCheck::Refused(Refusal::Malformed("malformed request line"));
    }
    match body_of(req.headers, req.version == Some(1)) {
        Ok(body) => HeadCheck::Whole { len, body },
        Err(why) => HeadCheck::Refused(Refusal::Malformed(why)),
    }
}

/// The body framing of a request with `headers`, as hyper decides it.
fn body_of(headers: &[httparse::Header<'_>], http11: bool) -> Result<Body, &'static str> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("malformed content-length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length");
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .map(<[u8]>::trim_ascii)
                .unwrap_or_default();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        }
    }
    match chunked {
        Some(true) if http11 => Ok(Body::Chunked),
        Some(_) => Err("unsupported transfer-encoding"),
        None => Ok(Body::Length(length.unwrap_or(0))),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gate<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = out.remaining().min(this.ready);
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            if this.state == State::Done {
                return Poll::Ready(Ok(()));
            }
            if this.inner_done {
                // The client ended its side: what is whole was passed on,
                // a partial head is dropped.
                this.state = State::Done;
                return Poll::Ready(Ok(()));
            }
            // A head must be whole within the limit once the previous answer
            // began (or the client began it); a body not whole by then is
            // not waited for either (the answer was given).
            let head = this.state == State::Head;
            if this.deadline.is_none()
                && this.state != State::Through
                && (this.answered || (head && !this.buf.is_empty()))
            {
                this.deadline = Some(Box::pin(tokio::time::sleep(this.limit)));
            }
            if let Some(d) = this.deadline.as_mut()
                && d.as_mut().poll(cx).is_ready()
            {
                let why = if head && !this.buf.is_empty() {
                    Refusal::Late(this.limit)
                } else {
                    Refusal::Silent
                };
                this.refuse(why);
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.inner_done = true;
            } else {
                this.buf.extend_from_slice(rb.filled());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gate<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 && !self.answered {
            self.answered = true;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 && !self.answered {
            self.answered = true;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Answers what `gate` refused, if anything, with the security headers,
/// then half-closes and drains what the client still sends (so the answer
/// is not lost to a reset). Called once hyper has given the connection back.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(gate: Gate<S>) {
    let Some((status, body)) = gate.refused().and_then(Refusal::answer) else {
        return;
    };
    let mut stream = gate.inner;
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n",
        body.len()
    );
    for (k, v) in crate::web::SECURITY_HEADERS {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let answer = format!("{head}\r\n{body}");
    if stream.write_all(answer.as_bytes()).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything the gate passes on until it ends.
    async fn passed<S: AsyncRead + Unpin>(gate: &mut Gate<S>) -> Vec<u8> {
        let mut all = Vec::new();
        gate.read_to_end(&mut all).await.unwrap();
        all
    }

    #[tokio::test]
    async fn whole_requests_pass_and_a_bad_later_head_stops_the_stream() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let good = b"POST /a HTTP/1.1\r\ncontent-length: 4\r\n\r\nbodyGET /b HTTP/1.1\r\n\r\n";
        let chunked =
            b"POST /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n";
        client.write_all(good).await.unwrap();
        client.write_all(chunked).await.unwrap();
        client
            .write_all(b"GET /a\"b HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut gate = Gate::new(server, Duration::from_secs(5));
        let all = passed(&mut gate).await;
        assert_eq!(all, [&good[..], &chunked[..]].concat());
        assert!(matches!(gate.refused(), Some(Refusal::Malformed(_))));
    }

    #[tokio::test]
    async fn a_body_that_looks_like_a_head_is_passed_as_a_body() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let req = b"POST /a HTTP/1.1\r\ncontent-length: 8\r\n\r\nGET \"/ \n";
        client.write_all(req).await.unwrap();
        drop(client);
        let mut gate = Gate::new(server, Duration::from_secs(5));
        assert_eq!(passed(&mut gate).await, req);
        assert_eq!(gate.refused(), None);
    }

    #[test]
    fn heads_hyper_refuses_are_recognised() {
        let refused = |h: &[u8]| matches!(check_head(h), HeadCheck::Refused(_));
        let whole = |h: &[u8]| matches!(check_head(h), HeadCheck::Whole { .. });
        assert!(whole(b"GET /a?b=1 HTTP/1.1\r\n\r\n"));
        assert!(whole(b"POST /api/v1/login HTTP/1.0\n\n"));
        assert!(refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(refused(b"GET /a\"b HTTP/1.1\r\n\r\n"));
        assert!(refused(b"GET /a b HTTP/1.1\r\n\r\n"));
        assert!(refused(b"GET /\x7f HTTP/1.1\r\n\r\n"));
        assert!(refused(b"G(T / HTTP/1.1\r\n\r\n"));
        assert!(refused(b"POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n"));
        assert!(refused(
            b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"
        ));
        assert!(refused(
            b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n"
        ));
        let many: Vec<u8> = [
            &b"GET / HTTP/1.1\r\n"[..],
            &b"a: b\r\n".repeat(101),
            &b"\r\n"[..],
        ]
        .concat();
        assert!(matches!(
            check_head(&many),
            HeadCheck::Refused(Refusal::TooLarge)
        ));
    }

    #[tokio::test]
    async fn an_oversized_trickling_head_is_refused_431() {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let mut gate = Gate::new(server, Duration::from_secs(30));
        let feeder = tokio::spawn(async move {
            client.write_all(b"GET / HTTP/1.1\r\nx: ").await.unwrap();
            for _ in 0..70 {
                if client.write_all(&[b'a'; 1024]).await.is_err() {
                    break;
                }
            }
            client
        });
        assert!(passed(&mut gate).await.is_empty());
        assert_eq!(gate.refused(), Some(&Refusal::TooLarge));
        drop(feeder.await.unwrap());
    }

    #[tokio::test]
    async fn a_late_head_is_refused_408_and_an_idle_one_closed_silently() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut gate = Gate::new(server, Duration::from_millis(100));
        assert!(passed(&mut gate).await.is_empty());
        assert_eq!(
            gate.refused(),
            Some(&Refusal::Late(Duration::from_millis(100)))
        );
        let (_client, server) = tokio::io::duplex(1024);
        let mut gate = Gate::new(server, Duration::from_millis(100));
        assert!(passed(&mut gate).await.is_empty());
        assert_eq!(gate.refused(), Some(&Refusal::Silent));
    }
}
