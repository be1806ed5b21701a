//! Network and TLS: bytes in from the host's relay, an authenticated `Caller` out (preface, rustls, HTTP, SigV4),
//! and the streams that are the enclave's only ways out.

pub mod framing;
pub mod limits;
pub mod server;
pub mod sigv4;
pub mod tls;
pub mod transport;
