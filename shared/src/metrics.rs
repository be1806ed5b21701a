//! The enclave's operational counters, as it hands them to the host for `kms-host --metrics-listen`: request counts
//! by operation and error code, latency histograms by operation, TLS handshakes, open connections, cache hits and
//! misses. Counts and names only: never a key id, principal, alias or context (whoever scrapes the host would see
//! them). Operation names come from the enclave's fixed list, so a client cannot invent label values.

use serde::{Deserialize, Serialize};

/// Upper bounds (microseconds) of the latency histogram's buckets; one more bucket counts everything slower.
pub const LATENCY_BUCKETS_US: [u64; 12] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

/// Most (operation, code) pairs in one snapshot.
pub const MAX_REQUEST_SERIES: usize = 4096;
/// Most operations with latency figures in one snapshot.
pub const MAX_OPERATIONS: usize = 256;
/// Most caches in one snapshot.
pub const MAX_CACHES: usize = 16;
/// Longest name (operation, error code, cache).
pub const MAX_NAME: usize = 64;

/// One snapshot; every figure is cumulative since the enclave started.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct EnclaveMetrics {
    /// Requests answered, by operation and error code (`""` for success).
    pub requests: Vec<RequestCount>,
    /// Request latency by operation.
    pub latency: Vec<Latency>,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: u64,
    /// Client connections open now.
    pub connections_open: u64,
    /// Cache lookups by cache.
    pub caches: Vec<CacheCount>,
}

/// Requests of one operation that ended with one code.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RequestCount {
    /// The operation (`Encrypt`, `EnclaveKms.CreatePrincipal`, or `Unknown`).
    pub operation: String,
    /// The error code, or `""` for success.
    pub code: String,
    /// How many.
    pub count: u64,
}

/// The latency histogram of one operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Latency {
    /// The operation.
    pub operation: String,
    /// Requests per bucket of [`LATENCY_BUCKETS_US`] (not cumulative), then the overflow bucket.
    pub buckets: Vec<u64>,
    /// Sum of the latencies, in microseconds.
    pub sum_us: u64,
}

/// Lookups of one cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CacheCount {
    /// The cache (`keys`, `credentials`, `principals`, `aliases`).
    pub cache: String,
    /// Answered from memory.
    pub hits: u64,
    /// Read from the host's store.
    pub misses: u64,
}

fn name_ok(s: &str) -> bool {
    s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

impl EnclaveMetrics {
    /// Whether the snapshot keeps to the limits (the host refuses it otherwise).
    pub fn valid(&self) -> bool {
        self.requests.len() <= MAX_REQUEST_SERIES
            && self.latency.len() <= MAX_OPERATIONS
            && self.caches.len() <= MAX_CACHES
            && self.requests.iter().all(|r| name_ok(&r.operation) && !r.operation.is_empty() && name_ok(&r.code))
            && self.latency.iter().all(|l| {
                name_ok(&l.operation) && !l.operation.is_empty() && l.buckets.len() == LATENCY_BUCKETS_US.len() + 1
            })
            && self.caches.iter().all(|c| name_ok(&c.cache) && !c.cache.is_empty())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> EnclaveMetrics {
        EnclaveMetrics {
            requests: vec![RequestCount { operation: "Encrypt".into(), code: String::new(), count: 3 }],
            latency: vec![Latency {
                operation: "Encrypt".into(),
                buckets: vec![0; LATENCY_BUCKETS_US.len() + 1],
                sum_us: 9,
            }],
            tls_handshakes: 1,
            tls_failures: 0,
            connections_open: 1,
            caches: vec![CacheCount { cache: "keys".into(), hits: 2, misses: 1 }],
        }
    }

    #[test]
    fn limits() {
        assert!(sample().valid());
        let mut m = sample();
        m.requests[0].operation = "key/1234-5678".into(); // not a name: a '/' or '-' never appears in one
        assert!(!m.valid());
        let mut m = sample();
        m.latency[0].buckets.pop();
        assert!(!m.valid());
        let mut m = sample();
        m.caches[0].cache = "x".repeat(MAX_NAME + 1);
        assert!(!m.valid());
        let mut m = sample();
        m.requests[0].operation.clear();
        assert!(!m.valid());
    }
}
