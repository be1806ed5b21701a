//! Operational counters (requests by operation and error code, latency, TLS handshakes, connections, cache hits),
//! kept lock-free on the request path and sent to the host every few seconds for its metrics endpoint.
//!
//! Only counts leave: labels are operation names from [`OPERATIONS`] (a client-chosen target outside it counts as
//! `Unknown`), error code names and cache names. Never a key id, principal, alias or context.

use crate::error::ErrorCode;
use kms_shared::metrics::{CacheCount, EnclaveMetrics, LATENCY_BUCKETS_US, Latency, RequestCount};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Every operation the dispatcher serves, by its `X-Amz-Target`. Labels use the part after `TrentService.`, and the
/// whole target for `EnclaveKms.*`. A unit test checks this list against the dispatcher.
pub const OPERATIONS: &[&str] = &[
    "TrentService.CreateKey",
    "TrentService.DescribeKey",
    "TrentService.ListKeys",
    "TrentService.Encrypt",
    "TrentService.Decrypt",
    "TrentService.GenerateDataKey",
    "TrentService.GenerateDataKeyWithoutPlaintext",
    "TrentService.GenerateRandom",
    "TrentService.CreateAlias",
    "TrentService.DeleteAlias",
    "TrentService.ListAliases",
    "TrentService.EnableKey",
    "TrentService.DisableKey",
    "TrentService.ScheduleKeyDeletion",
    "TrentService.CancelKeyDeletion",
    "TrentService.UpdateKeyDescription",
    "TrentService.UpdateAlias",
    "TrentService.TagResource",
    "TrentService.UntagResource",
    "TrentService.ListResourceTags",
    "TrentService.GetKeyPolicy",
    "TrentService.PutKeyPolicy",
    "TrentService.ListKeyPolicies",
    "TrentService.EnableKeyRotation",
    "TrentService.DisableKeyRotation",
    "TrentService.GetKeyRotationStatus",
    "TrentService.RotateKeyOnDemand",
    "TrentService.ListKeyRotations",
    "TrentService.ReEncrypt",
    "TrentService.GetParametersForImport",
    "TrentService.ImportKeyMaterial",
    "TrentService.DeleteImportedKeyMaterial",
    "TrentService.Sign",
    "TrentService.Verify",
    "TrentService.GetPublicKey",
    "TrentService.GenerateMac",
    "TrentService.VerifyMac",
    "TrentService.GenerateDataKeyPair",
    "TrentService.GenerateDataKeyPairWithoutPlaintext",
    "TrentService.DeriveSharedSecret",
    "EnclaveKms.GetAttestationDocument",
    "EnclaveKms.CreatePrincipal",
    "EnclaveKms.DeletePrincipal",
    "EnclaveKms.ListPrincipals",
    "EnclaveKms.CreateAccessKey",
    "EnclaveKms.DeleteAccessKey",
    "EnclaveKms.PutPrincipalPolicy",
    "EnclaveKms.GetPrincipalPolicy",
    "EnclaveKms.DeletePrincipalPolicy",
    "EnclaveKms.GetCallerIdentity",
    "EnclaveKms.GetRecipientNonce",
];

/// The label of a target outside [`OPERATIONS`].
pub const UNKNOWN: &str = "Unknown";

/// The caches whose hits and misses are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Unwrapped KMS keys (with their policies).
    Keys = 0,
    /// Access keys.
    Credentials = 1,
    /// Principals (with their identity policies).
    Principals = 2,
    /// Aliases.
    Aliases = 3,
}

const CACHE_NAMES: [&str; 4] = ["keys", "credentials", "principals", "aliases"];

#[derive(Default)]
struct OpStats {
    ok: AtomicU64,
    /// Failures by error code name; failures are the rarer path, so a small lock is enough.
    errors: Mutex<Vec<(&'static str, u64)>>,
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

#[derive(Default)]
struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The counters of one enclave.
pub struct Telemetry {
    index: HashMap<&'static str, usize>,
    /// One per operation of [`OPERATIONS`], then one for `Unknown`.
    ops: Box<[OpStats]>,
    tls_handshakes: AtomicU64,
    tls_failures: AtomicU64,
    connections_open: AtomicU64,
    caches: [CacheStats; CACHE_NAMES.len()],
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// All counters at zero.
    pub fn new() -> Self {
        let index = OPERATIONS.iter().enumerate().map(|(i, name)| (*name, i)).collect();
        let ops = (0..=OPERATIONS.len()).map(|_| OpStats::default()).collect();
        Self {
            index,
            ops,
            tls_handshakes: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            caches: Default::default(),
        }
    }

    /// Counts one answered request.
    pub fn request(&self, target: &str, code: Option<ErrorCode>, elapsed: Duration) {
        let i = self.index.get(target).copied().unwrap_or(OPERATIONS.len());
        let Some(op) = self.ops.get(i) else { return };
        match code {
            None => {
                op.ok.fetch_add(1, Ordering::Relaxed);
            }
            Some(code) => {
                if let Ok(mut errors) = op.errors.lock() {
                    match errors.iter_mut().find(|(name, _)| *name == code.name()) {
                        Some((_, n)) => *n += 1,
                        None => errors.push((code.name(), 1)),
                    }
                }
            }
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(LATENCY_BUCKETS_US.len());
        if let Some(b) = op.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        op.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts a TLS handshake's outcome.
    pub fn handshake(&self, ok: bool) {
        let c = if ok { &self.tls_handshakes } else { &self.tls_failures };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a client connection open until the returned guard is dropped.
    pub fn connection(&'static self) -> ConnectionGuard {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(&self.connections_open)
    }

    /// Counts a cache lookup.
    pub fn cache(&self, cache: Cache, hit: bool) {
        if let Some(c) = self.caches.get(cache as usize) {
            let n = if hit { &c.hits } else { &c.misses };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The figures now, for the host.
    pub fn snapshot(&self) -> EnclaveMetrics {
        let mut m = EnclaveMetrics::default();
        let names = OPERATIONS.iter().map(|t| label(t)).chain(std::iter::once(UNKNOWN));
        for (name, op) in names.zip(self.ops.iter()) {
            let ok = op.ok.load(Ordering::Relaxed);
            if ok > 0 {
                m.requests.push(RequestCount { operation: name.to_owned(), code: String::new(), count: ok });
            }
            if let Ok(errors) = op.errors.lock() {
                for (code, count) in errors.iter() {
                    m.requests.push(RequestCount {
                        operation: name.to_owned(),
                        code: (*code).to_owned(),
                        count: *count,
                    });
                }
            }
            let buckets: Vec<u64> = op.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            if buckets.iter().any(|n| *n > 0) {
                m.latency.push(Latency {
                    operation: name.to_owned(),
                    buckets,
                    sum_us: op.sum_us.load(Ordering::Relaxed),
                });
            }
        }
        m.tls_handshakes = self.tls_handshakes.load(Ordering::Relaxed);
        m.tls_failures = self.tls_failures.load(Ordering::Relaxed);
        m.connections_open = self.connections_open.load(Ordering::Relaxed);
        for (name, c) in CACHE_NAMES.iter().zip(self.caches.iter()) {
            m.caches.push(CacheCount {
                cache: (*name).to_owned(),
                hits: c.hits.load(Ordering::Relaxed),
                misses: c.misses.load(Ordering::Relaxed),
            });
        }
        m
    }
}

/// An open connection, counted until dropped.
pub struct ConnectionGuard(&'static AtomicU64);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The label of a target: the operation name for `TrentService.*`, the whole target for `EnclaveKms.*`.
fn label(target: &'static str) -> &'static str {
    target.strip_prefix("TrentService.").unwrap_or(target)
}

/// The process's counters.
pub fn global() -> &'static Telemetry {
    static GLOBAL: LazyLock<Telemetry> = LazyLock::new(Telemetry::new);
    &GLOBAL
}

/// How often the enclave sends its counters to the host.
pub const PUSH_INTERVAL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests;
