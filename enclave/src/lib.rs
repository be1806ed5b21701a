//! The enclave side of enclave-kms.
//!
//! Everything that sees a secret lives here: TLS termination (rustls), SigV4, the AWS KMS JSON API, the key
//! hierarchy (domain key, backing keys, per-request keys), sealing of every record the host stores, and the caches of
//! unwrapped keys.
//!
//! What this crate never does: open a TCP socket, touch a file, or hand the host anything but sealed records, the TLS
//! byte stream, and what the operator is meant to see (the CA certificate, and the bootstrap admin key once). It
//! reaches the outside only through the streams in [`net::transport`]: vsock in production, Unix sockets in simulator mode.

pub mod access;
pub mod boot;
pub mod calendar;
pub mod cmd;
pub mod crypto;
pub mod custody;
pub mod error;
pub mod net;
pub mod service;
pub mod state;
pub mod telemetry;
