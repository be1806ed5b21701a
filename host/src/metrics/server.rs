//! The metrics listener: plain HTTP/1.1, `GET /metrics` only, one request per connection, bounded in size and time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time allowed to send the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once.
const MAX_SCRAPES: usize = 16;

/// Serves `GET /metrics` on `listener` forever.
pub async fn serve(listener: TcpListener) {
    let limit = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else { continue };
        tokio::spawn(async move {
            if let Err(e) = one(stream).await {
                tracing::debug!(%peer, error = %e, "metrics: request failed");
            }
            drop(permit);
        });
    }
}

async fn one(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        Ok(true)
    })
    .await;
    if !matches!(read, Ok(Ok(true))) {
        return respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n").await;
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split(|b| *b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => match super::global().encode() {
            Ok(text) => respond(&mut stream, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &text).await,
            Err(_) => respond(&mut stream, "500 Internal Server Error", "text/plain", "encoding failed\n").await,
        },
        (_, b"/metrics") => respond(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n").await,
        _ => respond(&mut stream, "404 Not Found", "text/plain", "only /metrics\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds the listener (port 0 picks a free one) and returns it with its address.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), String> {
    let l = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    let local = l.local_addr().map_err(|e| format!("metrics listener: {e}"))?;
    Ok((l, local))
}
