//! The enclave's only ways out: a listener for relayed client connections and a connection for the storage channel.
//! vsock in production, Unix sockets in simulator mode. No TCP, no files.

use std::io;
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{UnixListener, UnixStream};
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

/// A byte stream from the host.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Where relayed client connections arrive.
pub enum ClientListener {
    /// Simulator mode.
    Unix(UnixListener),
    /// Production: vsock, any CID, one port.
    Vsock(VsockListener),
}

impl ClientListener {
    /// Binds a Unix socket at `path` (simulator mode). A stale socket file from an earlier run is replaced: the one
    /// file operation of the enclave, and only in simulator mode, inside the host's private run directory.
    #[allow(clippy::disallowed_methods)]
    pub fn unix(path: &PathBuf) -> io::Result<Self> {
        let _ = std::fs::remove_file(path);
        UnixListener::bind(path).map(Self::Unix)
    }

    /// Binds vsock `port` on any CID (production).
    pub fn vsock(port: u32) -> io::Result<Self> {
        VsockListener::bind(VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port)).map(Self::Vsock)
    }

    /// The next connection.
    pub async fn accept(&self) -> io::Result<Box<dyn Stream>> {
        match self {
            Self::Unix(l) => Ok(Box::new(l.accept().await?.0)),
            Self::Vsock(l) => Ok(Box::new(l.accept().await?.0)),
        }
    }
}

/// Where the storage channel goes.
pub enum StorageTarget {
    /// Simulator mode: the host's Unix socket.
    Unix(PathBuf),
    /// Production: the parent instance's vsock CID and port.
    Vsock {
        /// The parent's CID (3 for the parent of a Nitro Enclave).
        cid: u32,
        /// The host's storage port.
        port: u32,
    },
}

impl StorageTarget {
    /// Connects.
    pub async fn connect(&self) -> io::Result<Box<dyn Stream>> {
        match self {
            Self::Unix(p) => Ok(Box::new(UnixStream::connect(p).await?)),
            Self::Vsock { cid, port } => Ok(Box::new(VsockStream::connect(VsockAddr::new(*cid, *port)).await?)),
        }
    }
}
