//! The first request head of a connection, read within a time limit.
//!
//! hyper closes a connection whose request head is late without answering
//! it; an operator's client (or a load balancer) should see why, so the first
//! head of every HTTP/1 connection is read here: a late one is answered
//! `408 Request Timeout` and the connection closed, a timely one is handed to
//! hyper with the bytes already read put back in front ([`Replay`]). Later
//! heads on a kept-alive connection are bounded by hyper's own
//! `header_read_timeout`. A head still incomplete at `MAX_GATED_HEAD` bytes
//! is answered 431, and one whose request line hyper would refuse (a raw `"`
//! in the target, say) 400, here, so those answers carry the security
//! headers too (hyper writes its own without them). Owns no routing and
//! reads nothing but the head.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A first head longer than this is answered 431.
const MAX_GATED_HEAD: usize = 64 * 1024;

/// How long a refused client's remaining bytes are read and dropped after the
/// 408, so the answer is not lost to a reset (a lingering close).
const LINGER: Duration = Duration::from_secs(2);

/// Whether `bytes` hold a whole request head (hyper accepts bare LF lines).
fn head_complete(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n") || bytes.windows(2).any(|w| w == b"\n\n")
}

/// Reads until the first request head is complete or `limit` passes. Returns
/// the stream with what was read, or None when the client went away or was
/// answered here (408 late, 431 too long, 400 a request line hyper would
/// refuse).
pub async fn first_head_within<S>(mut stream: S, limit: Duration) -> Option<Replay<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head_complete(&head) {
        if head.len() > MAX_GATED_HEAD {
            let why = format!("request head over {} KiB\n", MAX_GATED_HEAD / 1024);
            answer(&mut stream, "431 Request Header Fields Too Large", &why).await;
            return None;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => head.extend_from_slice(&buf[..n]),
            Err(_late) => {
                let why = format!("request head not received within {} s\n", limit.as_secs());
                answer(&mut stream, "408 Request Timeout", &why).await;
                return None;
            }
        }
    }
    if !request_line_acceptable(&head) {
        answer(&mut stream, "400 Bad Request", "malformed request line\n").await;
        return None;
    }
    Some(Replay {
        prefix: head,
        at: 0,
        inner: stream,
    })
}

/// Whether the first line of `head` is `METHOD TARGET HTTP/1.x` with a
/// method token and a target that parses as a URI (what hyper accepts);
/// anything else hyper would answer 400 itself. An HTTP/2 preface passes
/// (hyper closes it without an answer).
fn request_line_acceptable(head: &[u8]) -> bool {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    token(method)
        && version.starts_with("HTTP/")
        // httparse's URI bytes: visible ASCII but the double quote.
        && target.bytes().all(|b| b == b'!' || (b'#'..=b'~').contains(&b))
        && target.parse::<warp::http::Uri>().is_ok()
}

/// Writes an answer with the security headers, half-closes, and drains what
/// the client still sends (so the answer is not lost to a reset).
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, status: &str, body: &str) {
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

/// A stream that first yields `prefix`, then reads from `inner`; writes go
/// straight to `inner`.
pub struct Replay<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_recognised_with_either_line_ending() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_complete(b""));
    }

    #[tokio::test]
    async fn a_timely_head_is_replayed_whole_before_the_rest() {
        let (mut client, server) = tokio::io::duplex(1024);
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\nbody")
            .await
            .unwrap();
        let mut replay = first_head_within(server, Duration::from_secs(5))
            .await
            .unwrap();
        drop(client);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\nbody");
    }

    #[test]
    fn request_lines_hyper_refuses_are_recognised() {
        assert!(request_line_acceptable(b"GET /a?b=1 HTTP/1.1\r\n\r\n"));
        assert!(request_line_acceptable(b"POST /api/v1/login HTTP/1.0\n\n"));
        assert!(request_line_acceptable(b"PRI * HTTP/2.0\r\n\r\n"));
        assert!(!request_line_acceptable(b"GET /a\"b HTTP/1.1\r\n\r\n"));
        assert!(!request_line_acceptable(b"GET /a b HTTP/1.1\r\n\r\n"));
        assert!(!request_line_acceptable(b"GET /\x7f HTTP/1.1\r\n\r\n"));
        assert!(!request_line_acceptable(b"G(T / HTTP/1.1\r\n\r\n"));
        assert!(!request_line_acceptable(b"\r\n\r\n"));
    }

    #[tokio::test]
    async fn an_oversized_trickling_head_is_answered_431_with_the_headers() {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let gate = tokio::spawn(first_head_within(server, Duration::from_secs(30)));
        client.write_all(b"GET / HTTP/1.1\r\nx: ").await.unwrap();
        for _ in 0..70 {
            client.write_all(&[b'a'; 1024]).await.unwrap();
        }
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("x-content-type-options: nosniff"), "{text}");
        assert!(gate.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_late_head_is_answered_408() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let gate = tokio::spawn(first_head_within(server, Duration::from_millis(100)));
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408 "), "{answer:?}");
        assert!(gate.await.unwrap().is_none());
    }
}
