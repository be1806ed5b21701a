//! `--metrics-listen ADDR`: the Prometheus text endpoint (`GET /metrics`, plain HTTP). The host's own figures (relay
//! connections, storage round trips and their latency, group-commit batch sizes, the service's state) and the
//! enclave's counters as its last snapshot gave them (requests by operation and error code, latency by operation,
//! TLS handshakes, connections, cache hits and misses). Encoded with `prometheus-client`.

mod enclave;
mod server;

pub use server::{bind as serve_bind, serve};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, LazyLock};

/// What the service is doing, as the `kms_state` gauge shows it (1 for the current state, 0 for the others).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum State {
    /// Waiting for the enclave to start.
    starting,
    /// Waiting for the quorum's shares.
    sealed,
    /// Serving clients.
    serving,
    /// Draining before a stop.
    draining,
}

const STATES: [State; 4] = [State::starting, State::sealed, State::serving, State::draining];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: State,
}

/// A storage operation, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StorageKind {
    /// Read one record.
    get,
    /// Write one record.
    put,
    /// Delete one record.
    delete,
    /// List records.
    list,
    /// Everything else (announcements, boot configuration, metrics).
    control,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabel {
    op: StorageKind,
}

/// The host's metrics.
pub struct Metrics {
    registry: Registry,
    relay_open: Gauge,
    relay_total: Counter,
    storage_requests: Family<StorageLabel, Counter>,
    storage_seconds: Family<StorageLabel, Histogram>,
    batch_size: Histogram,
    state: Family<StateLabel, Gauge>,
    enclave: Arc<enclave::EnclaveCollector>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let relay_open = Gauge::default();
        registry.register("kms_relay_connections_open", "Client connections the relay holds open", relay_open.clone());
        let relay_total = Counter::default();
        registry.register("kms_relay_connections", "Client connections relayed", relay_total.clone());
        let storage_requests = Family::<StorageLabel, Counter>::default();
        registry.register("kms_storage_requests", "Storage requests from the enclave", storage_requests.clone());
        let storage_seconds = Family::<StorageLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
        });
        registry.register(
            "kms_storage_request_duration_seconds",
            "Time the host took to answer a storage request",
            storage_seconds.clone(),
        );
        let batch_size = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]);
        registry.register("kms_store_commit_batch_size", "Writes per group-commit transaction", batch_size.clone());
        let state = Family::<StateLabel, Gauge>::default();
        registry.register("kms_state", "The service's state (1 for the current one)", state.clone());
        let enclave = Arc::new(enclave::EnclaveCollector::default());
        registry.register_collector(Box::new(enclave.clone()));
        let m =
            Self { registry, relay_open, relay_total, storage_requests, storage_seconds, batch_size, state, enclave };
        m.set_state(State::starting);
        m
    }

    /// A relayed connection opened; it counts as open until the guard is dropped.
    pub fn relay_opened(&self) -> RelayGuard {
        self.relay_total.inc();
        self.relay_open.inc();
        RelayGuard(self.relay_open.clone())
    }

    /// One storage request answered in `seconds`.
    pub fn storage(&self, op: StorageKind, seconds: f64) {
        let label = StorageLabel { op };
        self.storage_requests.get_or_create(&label).inc();
        self.storage_seconds.get_or_create(&label).observe(seconds);
    }

    /// One group-commit transaction of `writes` writes.
    pub fn batch(&self, writes: usize) {
        self.batch_size.observe(writes as f64);
    }

    /// The service's state now.
    pub fn set_state(&self, now: State) {
        for s in STATES {
            self.state.get_or_create(&StateLabel { state: s }).set(i64::from(s == now));
        }
    }

    /// The enclave's latest counters.
    pub fn enclave(&self, snapshot: kms_shared::metrics::EnclaveMetrics) {
        self.enclave.update(snapshot);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// A relayed connection, counted open until dropped.
pub struct RelayGuard(Gauge);

impl Drop for RelayGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The process's metrics (kept whether or not `--metrics-listen` serves them: updating them costs a few atomics).
pub fn global() -> &'static Metrics {
    static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &GLOBAL
}

#[cfg(test)]
mod tests;
