//! A guard between TLS and hyper that checks every request head before hyper sees it: size, deadline, a single
//! well-formed `Content-Length`, no `Transfer-Encoding`, no bytes HTTP forbids (NUL, ...). hyper answers such
//! requests itself with a bare 400/431 and no body; here the guard stops the stream at the bad head (hyper sees a clean
//! end after the requests before it), and the server answers in AWS's JSON error shape on the same connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 32 * 1024;
/// Most header fields in a head (hyper's own limit).
pub const MAX_HEADERS: usize = 100;
/// Bytes read from the stream at a time.
const CHUNK: usize = 16 * 1024;

/// Why a head was refused; the message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// When the current request's head began, shared with the request handler (monotonic milliseconds since `base`).
#[derive(Clone)]
pub struct HeadClock {
    base: Instant,
    started_ms: Arc<AtomicU64>,
}

impl HeadClock {
    fn new() -> Self {
        Self { base: Instant::now(), started_ms: Arc::new(AtomicU64::new(0)) }
    }

    fn mark(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.started_ms.store(ms, Ordering::Relaxed);
    }

    /// When the head of the request now being handled began to arrive.
    pub fn started(&self) -> Instant {
        self.base + Duration::from_millis(self.started_ms.load(Ordering::Relaxed))
    }
}

/// The guarded stream. Reads: heads are checked whole before any byte of them is passed on; bodies pass through,
/// counted by their `Content-Length`. Writes go straight through.
pub struct Guarded<S> {
    inner: S,
    /// Bytes read and not yet passed on; the first `pass` of them are checked and may be passed.
    buf: Vec<u8>,
    pass: usize,
    /// Body bytes of the current request not yet classified.
    body_left: u64,
    head_timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `deadline` runs for a head now (the timer is kept and reset, not reallocated, per request).
    timing: bool,
    clock: HeadClock,
    refused: Option<Refused>,
    eof: bool,
    /// After a chunked request everything passes unchecked: the server closes the connection after answering it, so
    /// hyper parses no head after it.
    passthrough: bool,
    /// Resolves when the enclave drains: the stream then ends at the next request boundary (hyper answers what it
    /// has and closes; an idle keep-alive connection closes at once).
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Whether a head has been passed on (a connection opened while draining still gets its first request answered,
    /// so a load balancer's probe reads the 503).
    seen_head: bool,
}

impl<S> Guarded<S> {
    /// Guards `inner`; a head must arrive whole within `head_timeout` of its first byte.
    pub fn new(inner: S, head_timeout: Duration) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pass: 0,
            body_left: 0,
            head_timeout,
            deadline: None,
            timing: false,
            clock: HeadClock::new(),
            refused: None,
            eof: false,
            passthrough: false,
            drain: None,
            seen_head: false,
        }
    }

    /// Ends the stream at the next request boundary once `drained` resolves.
    pub fn with_drain(mut self, drained: impl Future<Output = ()> + Send + 'static) -> Self {
        self.drain = Some(Box::pin(drained));
        self
    }

    /// The clock the request handler reads its deadline from.
    pub fn clock(&self) -> HeadClock {
        self.clock.clone()
    }

    /// The refusal that stopped the stream, if any, and the stream itself.
    pub fn into_parts(self) -> (S, Option<Refused>) {
        (self.inner, self.refused)
    }

    fn at_head(&self) -> bool {
        self.pass == 0 && self.body_left == 0 && !self.passthrough
    }

    /// Classifies buffered bytes; returns false when more must be read.
    fn classify(&mut self) -> bool {
        if self.pass > 0 || self.buf.is_empty() {
            return self.pass > 0;
        }
        if self.passthrough {
            self.pass = self.buf.len();
            return true;
        }
        if self.body_left > 0 {
            let n = usize::try_from(self.body_left).unwrap_or(usize::MAX).min(self.buf.len());
            self.pass = n;
            self.body_left -= n as u64;
            return true;
        }
        match check_head(&self.buf) {
            Ok(Some((len, body))) => {
                self.pass = len;
                self.seen_head = true;
                match body {
                    Body::Length(n) => self.body_left = n,
                    Body::Chunked => self.passthrough = true,
                }
                self.timing = false;
                true
            }
            Ok(None) if self.buf.len() > MAX_HEAD => {
                self.refused = Some(Refused(format!("The request head exceeds {MAX_HEAD} bytes")));
                true
            }
            Ok(None) => false,
            Err(r) => {
                self.refused = Some(r);
                true
            }
        }
    }
}

/// How a checked request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// `Content-Length` (0 without one).
    Length(u64),
    /// `Transfer-Encoding: chunked` (hyper decodes it and enforces the chunk syntax).
    Chunked,
}

/// Checks a head at the front of `buf`. `Ok(None)`: incomplete; `Ok(Some((head length, body framing)))`.
fn check_head(buf: &[u8]) -> Result<Option<(usize, Body)>, Refused> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Err(Refused(format!("The request head exceeds {MAX_HEAD} bytes"))),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refused(format!("The request has more than {MAX_HEADERS} header fields")));
        }
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            return Err(Refused("A request header contains a character HTTP does not allow".into()));
        }
        Err(e) => return Err(Refused(format!("The request is not valid HTTP/1.1 ({e})"))),
    };
    let mut length = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Refused(
                    "Transfer-Encoding other than a single 'chunked' is not supported; send the body with a \
                     Content-Length"
                        .into(),
                ));
            }
            chunked = true;
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(Refused("The request has more than one Content-Length header".into()));
            }
            let v = h.value;
            let parsed = (!v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok()))
                .flatten();
            length = Some(parsed.ok_or_else(|| Refused("The Content-Length header is not a decimal number".into()))?);
        }
    }
    match (chunked, length) {
        (true, Some(_)) => Err(Refused("A request must not have both Content-Length and Transfer-Encoding".into())),
        (true, None) => Ok(Some((len, Body::Chunked))),
        (false, n) => Ok(Some((len, Body::Length(n.unwrap_or(0))))),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.refused.is_some() {
                return Poll::Ready(Ok(())); // a clean end for hyper; the server answers the refusal
            }
            if this.classify() && this.refused.is_none() {
                let n = this.pass.min(out.remaining());
                if n == 0 {
                    return Poll::Ready(Ok(()));
                }
                out.put_slice(this.buf.get(..n).unwrap_or_default());
                this.buf.drain(..n);
                this.pass -= n;
                return Poll::Ready(Ok(()));
            }
            if this.refused.is_some() {
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.at_head()
                && this.buf.is_empty()
                && this.seen_head
                && let Some(d) = this.drain.as_mut()
                && d.as_mut().poll(cx).is_ready()
            {
                this.eof = true;
                continue;
            }
            if this.at_head()
                && this.timing
                && let Some(d) = this.deadline.as_mut()
                && d.as_mut().poll(cx).is_ready()
            {
                this.refused = Some(Refused("The request head was not received in time".into()));
                continue;
            }
            let mut chunk = [0u8; CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let got = rb.filled();
                    if got.is_empty() {
                        this.eof = true;
                        // A partial head is dropped; hyper sees the end of the stream.
                        if this.at_head() {
                            this.buf.clear();
                        }
                        continue;
                    }
                    if this.at_head() && this.buf.is_empty() {
                        this.clock.mark();
                        let until = Instant::now() + this.head_timeout;
                        this.timing = true;
                        match this.deadline.as_mut() {
                            Some(d) => d.as_mut().reset(until),
                            None => this.deadline = Some(Box::pin(tokio::time::sleep_until(until))),
                        }
                    }
                    this.buf.extend_from_slice(got);
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
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

    fn refused(head: &[u8]) -> String {
        check_head(head).expect_err("must be refused").0
    }

    #[test]
    fn good_heads_pass_with_their_body_length() {
        let h = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"a\":1}";
        assert_eq!(check_head(h), Ok(Some((h.len() - 7, Body::Length(12)))));
        assert_eq!(check_head(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(Some((28, Body::Length(0)))));
        let c = b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(check_head(c), Ok(Some((c.len(), Body::Chunked))));
        assert_eq!(check_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le"), Ok(None));
    }

    #[test]
    fn framing_errors_are_refused_with_a_reason() {
        assert!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").contains("more than one")
        );
        assert!(refused(b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n").contains("not a decimal"));
        assert!(refused(b"POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n").contains("not a decimal"));
        assert!(refused(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n").contains("not a decimal"));
        assert!(refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").contains("Transfer-Encoding"));
        assert!(refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").contains("Transfer-Enc"));
        let twice = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(refused(twice).contains("Transfer-Encoding"));
        let both = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert!(refused(both).contains("both"));
        assert!(refused(b"POST / HTTP/1.1\r\nX-A: a\0b\r\n\r\n").contains("does not allow"));
        assert!(refused(b"POST / HTTP/1.1\r\nX A: b\r\n\r\n").contains("does not allow"));
        let many: Vec<u8> =
            [b"POST / HTTP/1.1\r\n".to_vec(), b"X: y\r\n".repeat(MAX_HEADERS + 1), b"\r\n".to_vec()].concat();
        assert!(refused(&many).contains("header fields"));
    }

    #[tokio::test]
    async fn the_stream_stops_at_a_bad_head_after_passing_good_requests() {
        use tokio::io::AsyncReadExt;
        let good = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec();
        let bad = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx".to_vec();
        let input = [good.clone(), bad].concat();
        let mut g = Guarded::new(std::io::Cursor::new(input), Duration::from_secs(5));
        let mut seen = Vec::new();
        g.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, good);
        let (_, refused) = g.into_parts();
        assert!(refused.unwrap().0.contains("more than one Content-Length"));
    }

    #[tokio::test]
    async fn a_drain_ends_the_stream_at_the_next_head_but_not_before_the_first() {
        use tokio::io::AsyncReadExt;
        let one = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec();
        let input = [one.clone(), one.clone()].concat();
        // Two requests arriving in two reads (a pipelined request already buffered would still be answered).
        let two = || std::io::Cursor::new(one.clone()).chain(std::io::Cursor::new(one.clone()));
        // Draining from the start: the first request still passes (a new connection gets one answer), the second
        // does not.
        let mut g = Guarded::new(two(), Duration::from_secs(5)).with_drain(std::future::ready(()));
        let mut seen = Vec::new();
        g.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, one);
        // Not draining: both pass.
        let mut g = Guarded::new(two(), Duration::from_secs(5)).with_drain(std::future::pending());
        let mut seen = Vec::new();
        g.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, input);
    }

    #[tokio::test]
    async fn a_body_is_passed_even_when_it_looks_like_a_bad_head() {
        use tokio::io::AsyncReadExt;
        let body = b"X\0Y: z\r\n\r\n";
        let input =
            [format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(), body.to_vec()].concat();
        let mut g = Guarded::new(std::io::Cursor::new(input.clone()), Duration::from_secs(5));
        let mut seen = Vec::new();
        g.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, input);
        assert!(g.into_parts().1.is_none());
    }

    #[tokio::test]
    async fn a_slow_head_is_cut_at_its_deadline() {
        use tokio::io::AsyncReadExt;
        let (mut client, server) = tokio::io::duplex(1024);
        let mut g = Guarded::new(server, Duration::from_millis(100));
        tokio::io::AsyncWriteExt::write_all(&mut client, b"POST / HTTP/1.1\r\nHost").await.unwrap();
        let mut seen = Vec::new();
        // The client never finishes the head: the guard ends the stream when the deadline passes.
        g.read_to_end(&mut seen).await.unwrap();
        assert!(seen.is_empty());
        assert!(g.into_parts().1.unwrap().0.contains("not received in time"));
    }
}
