//! The enclave's counters, exposed from its latest snapshot (sent every few seconds over the storage channel).

use kms_shared::metrics::{EnclaveMetrics, LATENCY_BUCKETS_US};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Mutex;

/// Holds the latest snapshot and encodes it on each scrape.
#[derive(Debug, Default)]
pub struct EnclaveCollector {
    latest: Mutex<Option<EnclaveMetrics>>,
}

impl EnclaveCollector {
    /// Replaces the snapshot.
    pub fn update(&self, m: EnclaveMetrics) {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(m);
        }
    }
}

impl Collector for EnclaveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(latest) = self.latest.lock() else { return Ok(()) };
        let Some(m) = latest.as_ref() else { return Ok(()) };

        let mut e = encoder.encode_descriptor(
            "kms_requests",
            "Requests the enclave answered, by operation and error code (empty: success)",
            None,
            MetricType::Counter,
        )?;
        for r in &m.requests {
            let labels = [("operation", r.operation.as_str()), ("code", r.code.as_str())];
            ConstCounter::new(r.count).encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "kms_request_duration_seconds",
            "Time the enclave took to answer, by operation",
            None,
            MetricType::Histogram,
        )?;
        for l in &m.latency {
            let labels = [("operation", l.operation.as_str())];
            let bounds = LATENCY_BUCKETS_US.iter().map(|us| *us as f64 / 1e6).chain(std::iter::once(f64::INFINITY));
            let buckets: Vec<(f64, u64)> = bounds.zip(l.buckets.iter().copied()).collect();
            let count = l.buckets.iter().sum();
            e.encode_family(&labels)?.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                l.sum_us as f64 / 1e6,
                count,
                &buckets,
                None,
            )?;
        }

        let e = encoder.encode_descriptor(
            "kms_tls_handshakes",
            "TLS handshakes the enclave completed",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(m.tls_handshakes).encode(e)?;
        let e = encoder.encode_descriptor(
            "kms_tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(m.tls_failures).encode(e)?;
        let e = encoder.encode_descriptor(
            "kms_enclave_connections_open",
            "Client connections the enclave serves now",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(m.connections_open).unwrap_or(i64::MAX)).encode(e)?;

        let mut e = encoder.encode_descriptor(
            "kms_cache_lookups",
            "Cache lookups in the enclave, by cache and result (hit: from memory; miss: read from the store)",
            None,
            MetricType::Counter,
        )?;
        for c in &m.caches {
            ConstCounter::new(c.hits).encode(e.encode_family(&[("cache", c.cache.as_str()), ("result", "hit")])?)?;
            ConstCounter::new(c.misses).encode(e.encode_family(&[("cache", c.cache.as_str()), ("result", "miss")])?)?;
        }
        Ok(())
    }
}
