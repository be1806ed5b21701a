//! A minimal HTTP/1.1 client connection over TCP or TLS: one request at a time, keep-alive, responses framed by
//! Content-Length, chunked encoding or end of stream. Enough for a load generator, with nothing in the way.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::Endpoint;

/// Largest response head and body accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 8 * 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// System CA bundles tried for https when neither --ca nor AWS_CA_BUNDLE/SSL_CERT_FILE is given.
const SYSTEM_BUNDLES: &[&str] = &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("response too large")]
    TooLarge,
    #[error("CA file {0}: {1}")]
    Ca(String, String),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// Byte streams a connection can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens connections to one endpoint.
pub struct Connector {
    addr: (String, u16),
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

fn load_roots(ca: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<rustls::RootCertStore, HttpError> {
    let mut roots = rustls::RootCertStore::empty();
    let explicit = ca
        .map(Path::to_path_buf)
        .or_else(|| env("AWS_CA_BUNDLE").or_else(|| env("SSL_CERT_FILE")).filter(|s| !s.is_empty()).map(Into::into));
    if let Some(path) = explicit {
        let shown = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(&path)
            .map_err(|e| HttpError::Ca(shown.clone(), e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HttpError::Ca(shown.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(HttpError::Ca(shown, "no certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| HttpError::Ca(shown.clone(), e.to_string()))?;
        }
        return Ok(roots);
    }
    for bundle in SYSTEM_BUNDLES {
        if let Ok(iter) = CertificateDer::pem_file_iter(bundle) {
            roots.add_parsable_certificates(iter.filter_map(Result::ok));
            if !roots.is_empty() {
                return Ok(roots);
            }
        }
    }
    Err(HttpError::Ca("(none)".into(), "https needs --ca FILE (or AWS_CA_BUNDLE) to trust the server".into()))
}

impl Connector {
    pub fn new(endpoint: &Endpoint, ca: Option<&Path>) -> Result<Self, HttpError> {
        let tls = if endpoint.tls {
            let roots = load_roots(ca, &|k| std::env::var(k).ok())?;
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| HttpError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|e| HttpError::Tls(format!("server name {}: {e}", endpoint.host)))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self { addr: (endpoint.host.clone(), endpoint.port), tls })
    }

    pub async fn connect(&self) -> Result<Conn, HttpError> {
        let shown = format!("{}:{}", self.addr.0, self.addr.1);
        let tcp = TcpStream::connect((self.addr.0.as_str(), self.addr.1))
            .await
            .map_err(|e| HttpError::Connect(shown.clone(), e))?;
        tcp.set_nodelay(true).map_err(|e| HttpError::Connect(shown, e))?;
        let io: Box<dyn Io> = match &self.tls {
            Some((connector, name)) => {
                Box::new(connector.connect(name.clone(), tcp).await.map_err(HttpError::Handshake)?)
            }
            None => Box::new(tcp),
        };
        Ok(Conn { io, buf: Vec::with_capacity(16 * 1024), reusable: true })
    }
}

/// A status and a body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// One open connection.
pub struct Conn {
    io: Box<dyn Io>,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
    reusable: bool,
}

impl Conn {
    /// Whether the server allows another request on this connection.
    pub fn reusable(&self) -> bool {
        self.reusable
    }

    /// Reads more bytes into the buffer; `Closed` at end of stream.
    async fn fill(&mut self) -> Result<(), HttpError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => Err(HttpError::Closed),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(HttpError::Closed),
            Err(e) => Err(HttpError::Io(e)),
        }
    }

    /// Writes `request` (a complete HTTP/1.1 request) and reads the response.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response, HttpError> {
        self.io.write_all(request).await?;
        self.io.flush().await?;
        let (status, head_len, framing, keep_alive) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let (status, framing, keep_alive) = head_facts(&resp)?;
                    break (status, n, framing, keep_alive);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(HttpError::TooLarge);
                    }
                    self.fill().await?;
                }
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            }
        };
        // 1xx answers (e.g. 100 Continue) are not expected: we never send Expect.
        let body_empty = status == 204 || status == 304;
        let body = match framing {
            _ if body_empty => {
                self.buf.drain(..head_len);
                Vec::new()
            }
            Framing::Length(n) => {
                if n > MAX_BODY {
                    return Err(HttpError::TooLarge);
                }
                let end = head_len.checked_add(n).ok_or(HttpError::TooLarge)?;
                while self.buf.len() < end {
                    self.fill().await?;
                }
                let body = self.buf.get(head_len..end).map(<[u8]>::to_vec).unwrap_or_default();
                self.buf.drain(..end);
                body
            }
            Framing::Chunked => self.read_chunked(head_len).await?,
            Framing::UntilClose => {
                loop {
                    if self.buf.len() > head_len + MAX_BODY {
                        return Err(HttpError::TooLarge);
                    }
                    match self.fill().await {
                        Ok(()) => {}
                        Err(HttpError::Closed) => break,
                        Err(e) => return Err(e),
                    }
                }
                self.reusable = false;
                let body = self.buf.get(head_len..).map(<[u8]>::to_vec).unwrap_or_default();
                self.buf.clear();
                body
            }
        };
        if !keep_alive {
            self.reusable = false;
        }
        Ok(Response { status, body })
    }

    async fn read_chunked(&mut self, head_len: usize) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        let mut pos = head_len;
        loop {
            let rest = self.buf.get(pos..).unwrap_or_default();
            match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((consumed, size))) => {
                    let size = usize::try_from(size).map_err(|_| HttpError::TooLarge)?;
                    if size == 0 {
                        // No trailers expected: the last chunk is followed by an empty line (or trailers, then one).
                        let start = pos + consumed;
                        loop {
                            let tail = self.buf.get(start..).unwrap_or_default();
                            if tail.starts_with(b"\r\n") {
                                self.buf.drain(..start + 2);
                                return Ok(body);
                            }
                            if let Some(i) = tail.windows(4).position(|w| w == b"\r\n\r\n") {
                                self.buf.drain(..start + i + 4);
                                return Ok(body);
                            }
                            if tail.len() > MAX_HEAD {
                                return Err(HttpError::TooLarge);
                            }
                            self.fill().await?;
                        }
                    }
                    if body.len() + size > MAX_BODY {
                        return Err(HttpError::TooLarge);
                    }
                    let data = pos + consumed;
                    let end = data + size + 2;
                    while self.buf.len() < end {
                        self.fill().await?;
                    }
                    body.extend_from_slice(self.buf.get(data..data + size).unwrap_or_default());
                    if self.buf.get(data + size..end) != Some(b"\r\n".as_slice()) {
                        return Err(HttpError::Malformed("chunk not followed by CRLF".into()));
                    }
                    pos = end;
                }
                Ok(httparse::Status::Partial) => {
                    if rest.len() > 1024 {
                        return Err(HttpError::Malformed("chunk size line too long".into()));
                    }
                    self.fill().await?;
                }
                Err(_) => return Err(HttpError::Malformed("bad chunk size".into())),
            }
        }
    }
}

/// Status, body framing and keep-alive of a parsed response head.
fn head_facts(resp: &httparse::Response<'_, '_>) -> Result<(u16, Framing, bool), HttpError> {
    let status = resp.code.ok_or_else(|| HttpError::Malformed("no status".into()))?;
    let http11 = resp.version == Some(1);
    let mut keep_alive = http11;
    let mut framing = Framing::UntilClose;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| HttpError::Malformed("bad Content-Length".into()))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').map(str::trim).any(|t| t == "chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            for token in v.split(',').map(str::trim) {
                if token == "close" {
                    keep_alive = false;
                } else if token == "keep-alive" {
                    keep_alive = true;
                }
            }
        }
    }
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok((status, framing, keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Conn` over an in-memory pipe whose other end writes `server` and then closes.
    async fn exchange(server: &'static [u8]) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
        let (client, mut peer) = tokio::io::duplex(64);
        let task = tokio::spawn(async move {
            let mut got = vec![0u8; 5];
            peer.read_exact(&mut got).await.unwrap();
            for piece in server.chunks(7) {
                peer.write_all(piece).await.unwrap();
            }
            got
        });
        (Conn { io: Box::new(client), buf: Vec::new(), reusable: true }, task)
    }

    #[tokio::test]
    async fn content_length_keep_alive_and_pipelined_leftovers() {
        let (mut c, task) = exchange(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: x\r\n\r\nhelloHTTP/1.1 400 Bad\r\ncontent-length: 2\r\n\r\n{}",
        )
        .await;
        let r = c.send(b"ping!").await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
        assert!(c.reusable());
        assert_eq!(task.await.unwrap(), b"ping!");
        // The second response was already sent; our write goes nowhere useful but must not fail the read.
        let r = c.send(b"").await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, b"{}".as_slice()));
    }

    #[tokio::test]
    async fn chunked_and_connection_close() {
        let (mut c, _t) =
            exchange(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
                .await;
        let r = c.send(b"12345").await.unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(!c.reusable());
    }

    #[tokio::test]
    async fn http10_until_close() {
        let (mut c, _t) = exchange(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it").await;
        let r = c.send(b"12345").await.unwrap();
        assert_eq!(r.body, b"all of it");
        assert!(!c.reusable());
    }

    #[tokio::test]
    async fn http10_keep_alive_with_length() {
        let (mut c, _t) = exchange(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx").await;
        assert_eq!(c.send(b"12345").await.unwrap().body, b"x");
        assert!(c.reusable());
    }

    #[tokio::test]
    async fn truncated_and_malformed() {
        let (mut c, _t) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").await;
        assert!(matches!(c.send(b"12345").await, Err(HttpError::Closed)));
        let (mut c, _t) = exchange(b"NOT HTTP\r\n\r\n").await;
        assert!(matches!(c.send(b"12345").await, Err(HttpError::Malformed(_))));
        let (mut c, _t) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").await;
        assert!(matches!(c.send(b"12345").await, Err(HttpError::Malformed(_))));
    }

    #[test]
    fn roots_from_a_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(load_roots(Some(&empty), &none).is_err());
        assert!(load_roots(Some(&dir.path().join("missing.pem")), &none).is_err());
    }
}
