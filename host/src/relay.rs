//! The relay: client TCP connections to the enclave, byte for byte. The host writes a short preface with the peer
//! address and then copies TLS records it cannot read.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
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

async fn relay_one(mut client: TcpStream, peer: SocketAddr, enclave: &EnclaveAddr) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut upstream = enclave.connect().await?;
    let preface = kms_shared::preface::encode(&peer.to_string()).map_err(io::Error::other)?;
    upstream.write_all(&preface).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Accepts client connections forever and relays each to the enclave.
pub async fn run(listener: TcpListener, enclave: EnclaveAddr) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        tokio::spawn(async move {
            if let Err(e) = relay_one(client, peer, &enclave).await {
                tracing::debug!(%peer, error = %e, "relay ended");
            }
            drop(permit);
        });
    }
}
