//! Nitro attestation for enclave-kms.
//!
//! - [`verify`] is the only way to obtain a [`VerifiedAttestation`]: COSE_Sign1 ES384 envelope, payload syntax and
//!   limits, certificate chain to a pinned [`TrustAnchor`] at the document's timestamp, the COSE signature, then
//!   freshness ([`TimeRule`]), nonce and [`PcrPolicy`]. Every failure names its step ([`AttestError`]).
//! - [`Nsm`] is what the enclave asks of the Nitro Secure Module: [`NitroNsm`] over `/dev/nsm`, and (feature
//!   `simulator`) [`SimNsm`], whose documents are byte-compatible with Nitro's and go through the same [`verify`].
//!
//! This crate holds no KMS key material and performs no I/O beyond the NSM device.

mod anchor;
mod document;
mod error;
mod nsm;
pub mod pem;
#[cfg(feature = "simulator")]
mod sim;
mod verify;

pub use anchor::TrustAnchor;
pub use document::{AttestationPayload, MAX_DOCUMENT_LEN, MAX_OPTIONAL_LEN};
pub use error::AttestError;
pub use nsm::{NitroNsm, Nsm, NsmError};
#[cfg(feature = "simulator")]
pub use sim::{DocumentRequest, SimNsm, SimPki, SimPkiError, simulated_pcrs};
pub use verify::{PcrPolicy, TimeRule, VerifiedAttestation, Verifier, verify};
