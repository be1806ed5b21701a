//! `kms-client`: the client side of the AWS KMS JSON protocol, shared by `kms-loadgen` and `kms-host admin`.
//!
//! - [`sigv4`]: an `AWS4-HMAC-SHA256` signer with the signing key cached per day;
//! - [`http`]: a minimal keep-alive HTTP/1.1 connection over TCP or TLS (rustls, a client only);
//! - [`kms`]: signed KMS JSON calls over one connection, reconnecting when the server closes it;
//! - [`config`]: endpoint URLs, region and credential discovery (environment, shared-credentials file).
//!
//! It depends on no service crate: it is what any client of the service could be.

pub mod config;
pub mod http;
pub mod kms;
pub mod sigv4;

pub use config::{ConfigError, Endpoint};
pub use http::{Connector, HttpError};
pub use kms::{CallError, Client};
pub use sigv4::{Credentials, Signer};
