//! Bounds on what unauthenticated clients can make the enclave hold: connections, time per request, and body bytes
//! in memory. ARCHITECTURE.md §6 states the resulting memory bound.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Prefix of the environment variables that shorten the limits in simulator mode (tests). Never read in Nitro mode.
pub const TEST_ENV_PREFIX: &str = "KMS_ENCLAVE_TEST_";

/// The network limits of one enclave.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most client connections served at once.
    pub max_connections: usize,
    /// Connections past `max_connections` that are still answered (TLS handshake, then one `ThrottlingException`)
    /// before being closed; past this many more they are dropped unanswered.
    pub overflow_connections: usize,
    /// Deadline of a request head (from its first byte) and, separately, of its body (from the end of the head).
    pub request_deadline: Duration,
    /// Most request-body bytes held in memory at once, across all connections (declared `Content-Length`s).
    pub body_budget: usize,
    /// Most RSA key generations one principal may have running at once.
    pub rsa_per_principal: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            overflow_connections: 64,
            request_deadline: Duration::from_secs(20),
            body_budget: 64 * 1024 * 1024,
            rsa_per_principal: 2,
        }
    }
}

impl Limits {
    /// Applies `KMS_ENCLAVE_TEST_MAX_CONNECTIONS`, `..._REQUEST_DEADLINE_MS`, `..._BODY_BUDGET` and
    /// `..._RSA_PER_PRINCIPAL` from `get` (the environment, simulator mode only). Unparsable or zero values are
    /// ignored.
    pub fn with_test_overrides(mut self, get: impl Fn(&str) -> Option<String>) -> Self {
        let num = |name: &str| {
            get(&format!("{TEST_ENV_PREFIX}{name}")).and_then(|v| v.trim().parse::<u64>().ok()).filter(|n| *n > 0)
        };
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = num("MAX_CONNECTIONS") {
            self.max_connections = size(n);
        }
        if let Some(n) = num("REQUEST_DEADLINE_MS") {
            self.request_deadline = Duration::from_millis(n);
        }
        if let Some(n) = num("BODY_BUDGET") {
            self.body_budget = size(n);
        }
        if let Some(n) = num("RSA_PER_PRINCIPAL") {
            self.rsa_per_principal = size(n);
        }
        self
    }
}

/// The shared state the limits need at run time.
pub struct Gate {
    /// The configured limits.
    pub limits: Limits,
    budget: Arc<Semaphore>,
    /// Set once the host asks the enclave to drain (it never goes back).
    drain: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    /// A gate for `limits`.
    pub fn new(limits: Limits) -> Self {
        let permits = limits.body_budget.min(Semaphore::MAX_PERMITS);
        Self { limits, budget: Arc::new(Semaphore::new(permits)), drain: tokio::sync::watch::Sender::new(false) }
    }

    /// Starts draining: `/healthz` answers 503, idle connections close, requests in flight finish.
    pub fn start_drain(&self) {
        self.drain.send_replace(true);
    }

    /// Whether the enclave is draining.
    pub fn draining(&self) -> bool {
        *self.drain.borrow()
    }

    /// A future that resolves once the enclave is draining.
    pub fn drained(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.drain.subscribe();
        async move {
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    /// Reserves `bytes` of the global body budget, waiting at most until `deadline`. `None` when the budget stays
    /// exhausted until then (or `bytes` exceeds the whole budget).
    pub async fn reserve(&self, bytes: usize, deadline: tokio::time::Instant) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok()?;
        if bytes > self.limits.body_budget {
            return None;
        }
        tokio::time::timeout_at(deadline, self.budget.clone().acquire_many_owned(n)).await.ok()?.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_only_to_known_positive_values() {
        let env = |k: &str| match k {
            "KMS_ENCLAVE_TEST_MAX_CONNECTIONS" => Some("3".to_owned()),
            "KMS_ENCLAVE_TEST_REQUEST_DEADLINE_MS" => Some("250".to_owned()),
            "KMS_ENCLAVE_TEST_BODY_BUDGET" => Some("0".to_owned()),
            "KMS_ENCLAVE_TEST_RSA_PER_PRINCIPAL" => Some("x".to_owned()),
            _ => None,
        };
        let l = Limits::default().with_test_overrides(env);
        assert_eq!(l.max_connections, 3);
        assert_eq!(l.request_deadline, Duration::from_millis(250));
        assert_eq!(l.body_budget, Limits::default().body_budget);
        assert_eq!(l.rsa_per_principal, Limits::default().rsa_per_principal);
    }

    #[tokio::test]
    async fn the_budget_is_shared_and_released() {
        let gate = Gate::new(Limits { body_budget: 100, ..Limits::default() });
        let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
        let a = gate.reserve(60, soon()).await.expect("fits");
        assert!(gate.reserve(60, soon()).await.is_none(), "over the budget while the first is held");
        assert!(gate.reserve(101, soon()).await.is_none(), "larger than the whole budget");
        drop(a);
        assert!(gate.reserve(60, soon()).await.is_some(), "released");
    }
}
