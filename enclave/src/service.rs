//! The state every request shares.

use crate::access::credentials::Credentials;
use crate::state::aliases::Aliases;
use crate::state::ids::Scope;
use crate::state::keys::Keyring;
use kms_attestation::Nsm;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The service: configuration, keys, aliases, credentials and the clock.
pub struct Service {
    /// Region and account of every ARN.
    pub scope: Scope,
    /// KMS keys.
    pub keys: Keyring,
    /// Aliases.
    pub aliases: Aliases,
    /// Access keys.
    pub credentials: Credentials,
    /// Principals (users and roles) the access keys belong to.
    pub principals: crate::access::principals::Principals,
    /// Parsed key policies.
    pub policies: crate::access::authz::PolicyCache,
    /// Verifies callers' attestation documents (the Recipient parameter) against this world's trust anchor.
    pub recipient_verifier: kms_attestation::Verifier,
    /// Server-issued nonces for Recipient documents (our extension).
    pub nonces: crate::crypto::recipient::nonce::NonceBook,
    /// The sealed store (for what is sealed but not a key, alias or credential: import tokens).
    pub records: Arc<crate::state::store::Records>,
    /// The one clock of key lifecycles (deletion, and later rotation and expiry).
    pub clock: Arc<Clock>,
    /// The Nitro Secure Module (simulated in simulator mode).
    pub nsm: Arc<dyn Nsm>,
    /// What this enclave's attestation documents bind: its TLS identity.
    pub binding: TlsBinding,
    /// Bounds RSA key generation (per vCPU, per principal).
    pub keygen: crate::crypto::keygen::KeygenGate,
}

/// The TLS identity an attestation document of this enclave vouches for.
pub struct TlsBinding {
    /// SubjectPublicKeyInfo (DER) of the current TLS leaf key; the document's `public_key`.
    pub leaf_spki: Vec<u8>,
    /// SHA-384 of the issuing CA certificate (DER); the document's `user_data`, so a client that checked the document
    /// may trust the CA for later connections (its key never leaves the enclave).
    pub ca_sha384: Vec<u8>,
}

/// The one clock of key lifecycles: the system clock plus an offset that only simulator mode can move
/// (`EnclaveKms.AdvanceClock`), so tests reach a deletion date without sleeping. SigV4's window always uses the
/// system clock ([`Clock::wall_unix`]), since clients sign with theirs.
#[derive(Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        let sys = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        i64::try_from(sys).unwrap_or(i64::MAX).saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Seconds since the epoch, with millisecond precision (AWS's timestamp form).
    pub fn now_secs(&self) -> f64 {
        self.now_ms() as f64 / 1000.0
    }

    /// Whole seconds since the epoch.
    pub fn now_unix(&self) -> u64 {
        u64::try_from(self.now_ms() / 1000).unwrap_or(0)
    }

    /// Moves the clock forward (simulator mode only); returns the new offset in milliseconds.
    pub fn advance_ms(&self, ms: i64) -> i64 {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed).saturating_add(ms)
    }

    /// Whole seconds since the epoch by the system clock, without the offset (for SigV4).
    pub fn wall_unix() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}
