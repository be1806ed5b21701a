//! The enclave side of enclave-kms.
//!
//! Everything that sees a secret lives here: TLS termination (rustls), SigV4, the AWS KMS JSON API, the key
//! hierarchy (domain key, backing keys, per-request keys), sealing of every record the host stores, and the caches of
//! unwrapped keys.
//!
//! What this crate never does: open a TCP socket, touch a file, or hand the host anything but sealed records, the TLS
//! byte stream, and what the operator is meant to see (the CA certificate, and the bootstrap admin key once). It
//! reaches the outside only through the streams in [`transport`]: vsock in production, Unix sockets in simulator mode.

pub mod aliases;
pub mod authz;
pub mod boot;
pub mod calendar;
pub mod cmd;
pub mod credentials;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod keys;
pub mod policy;
pub mod principals;
pub mod recipient;
pub mod secret;
pub mod server;
pub mod service;
pub mod sigv4;
pub mod store;
pub mod tls;
pub mod transport;
