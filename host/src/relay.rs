//! The relay: client TCP connections to the enclave, byte for byte. The host writes a short preface with the peer
//! address and then copies TLS records it cannot read.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::Semaphore;
use tokio_vsock::{VsockAddr, VsockStream};

/// Most relayed connections at once.
const MAX_CONNECTIONS: usize = 4096;

/// A byte stream to the enclave.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// How to reach the enclave's client listener.
#[derive(Clone, Debug)]
pub enum EnclaveAddr {
    /// Simulator mode.
    Unix(PathBuf),
    /// Production: the enclave's CID and port.
    Vsock {
        /// The enclave's CID (never 2, the hypervisor).
        cid: u32,
        /// The enclave's client port.
        port: u32,
    },
}

impl EnclaveAddr {
    async fn connect(&self) -> io::Result<Box<dyn Stream>> {
        match self {
            Self::Unix(p) => Ok(Box::new(UnixStream::connect(p).await?)),
            Self::Vsock { cid, port } => Ok(Box::new(VsockStream::connect(VsockAddr::new(*cid, *port)).await?)),
        }
    }
}

/// How long the relay keeps reading (and discarding) what a client still sends after the enclave has closed.
const LINGER: Duration = Duration::from_secs(2);

async fn relay_one(client: TcpStream, peer: SocketAddr, enclave: &EnclaveAddr, live: Live) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut upstream = enclave.connect().await?;
    let preface = kms_shared::preface::encode(&peer.to_string()).map_err(io::Error::other)?;
    upstream.write_all(&preface).await?;
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut up_rd, mut up_wr) = tokio::io::split(upstream);
    let upward = pump_up(&mut client_rd, &mut up_wr);
    let downward = async {
        let copied = tokio::io::copy(&mut up_rd, &mut client_wr).await;
        let _ = client_wr.shutdown().await;
        drop(live); // the enclave's side is closed: no longer counted by a drain
        copied
    };
    tokio::pin!(upward, downward);
    tokio::select! {
        // The client finished sending: forward the rest of the enclave's answers.
        _ = &mut upward => { downward.await?; }
        // The enclave closed (it may have answered and closed without reading a body it refused): keep reading from
        // the client for a while before closing. Closing a TCP socket with unread input sends a reset, which can
        // destroy the answer before the client reads it (a "lingering close", as web servers do).
        done = &mut downward => {
            let _ = tokio::time::timeout(LINGER, upward).await;
            done?;
        }
    }
    Ok(())
}

/// Copies client bytes to the enclave until the client's end of stream (then half-closes toward the enclave). Once
/// the enclave stops taking bytes, the rest is read and discarded.
async fn pump_up<R, W>(client: &mut R, upstream: &mut W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut upstream_open = true;
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if upstream_open && upstream.write_all(buf.get(..n).unwrap_or_default()).await.is_err() {
            upstream_open = false;
        }
    }
    if upstream_open {
        let _ = upstream.shutdown().await;
    }
}

/// The relayed connections: at most [`MAX_CONNECTIONS`] at once, and how many the enclave still holds open (what a
/// drain waits on; a connection the enclave has closed may still linger, see [`LINGER`], without counting).
#[derive(Clone)]
pub struct Connections {
    limit: Arc<Semaphore>,
    live: Arc<AtomicUsize>,
}

impl Connections {
    /// No connection open yet.
    pub fn new() -> Self {
        Self { limit: Arc::new(Semaphore::new(MAX_CONNECTIONS)), live: Arc::new(AtomicUsize::new(0)) }
    }

    /// How many relayed connections the enclave still holds open.
    pub fn open(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Counts one connection as live until dropped.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Self(live.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Asks the enclave to drain (see `kms_shared::preface`): one connection carrying only the drain preface.
pub async fn send_drain(enclave: &EnclaveAddr) -> io::Result<()> {
    let mut s = enclave.connect().await?;
    s.write_all(&kms_shared::preface::encode_drain()).await?;
    s.shutdown().await
}

/// Accepts client connections forever and relays each to the enclave.
pub async fn run(listener: TcpListener, enclave: EnclaveAddr, connections: Connections) {
    let Connections { limit, live } = connections;
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            continue;
        };
        let enclave = enclave.clone();
        let live = Live::new(&live);
        let counted = crate::metrics::global().relay_opened();
        tokio::spawn(async move {
            if let Err(e) = relay_one(client, peer, &enclave, live).await {
                tracing::debug!(%peer, error = %e, "relay ended");
            }
            drop(counted);
            drop(permit);
        });
    }
}
