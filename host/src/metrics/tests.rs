#![allow(clippy::unwrap_used)]

use super::*;
use kms_shared::metrics::{CacheCount, EnclaveMetrics, LATENCY_BUCKETS_US, Latency, RequestCount};

#[test]
fn host_and_enclave_figures_are_exposed() {
    let m = Metrics::new();
    let before = m.encode().unwrap();
    assert!(before.contains("kms_state{state=\"starting\"} 1"), "{before}");
    assert!(!before.contains("kms_requests_total"), "no enclave figures before a snapshot");

    m.set_state(State::serving);
    let _open = m.relay_opened();
    m.storage(StorageKind::get, 0.0002);
    m.batch(3);
    let mut buckets = vec![0; LATENCY_BUCKETS_US.len() + 1];
    buckets[0] = 2; // <= 100 us
    buckets[3] = 1; // <= 1 ms
    m.enclave(EnclaveMetrics {
        requests: vec![
            RequestCount { operation: "Encrypt".into(), code: String::new(), count: 3 },
            RequestCount { operation: "Encrypt".into(), code: "NotFoundException".into(), count: 1 },
        ],
        latency: vec![Latency { operation: "Encrypt".into(), buckets, sum_us: 1_200 }],
        tls_handshakes: 5,
        tls_failures: 1,
        connections_open: 2,
        caches: vec![CacheCount { cache: "keys".into(), hits: 7, misses: 1 }],
    });
    let text = m.encode().unwrap();
    for line in [
        "kms_state{state=\"serving\"} 1",
        "kms_state{state=\"starting\"} 0",
        "kms_relay_connections_open 1",
        "kms_relay_connections_total 1",
        "kms_storage_requests_total{op=\"get\"} 1",
        "kms_store_commit_batch_size_count 1",
        "kms_requests_total{operation=\"Encrypt\",code=\"\"} 3",
        "kms_requests_total{operation=\"Encrypt\",code=\"NotFoundException\"} 1",
        "kms_request_duration_seconds_bucket{le=\"0.0001\",operation=\"Encrypt\"} 2",
        "kms_request_duration_seconds_bucket{le=\"0.001\",operation=\"Encrypt\"} 3",
        "kms_request_duration_seconds_bucket{le=\"+Inf\",operation=\"Encrypt\"} 3",
        "kms_request_duration_seconds_count{operation=\"Encrypt\"} 3",
        "kms_tls_handshakes_total 5",
        "kms_tls_handshake_failures_total 1",
        "kms_enclave_connections_open 2",
        "kms_cache_lookups_total{cache=\"keys\",result=\"hit\"} 7",
        "kms_cache_lookups_total{cache=\"keys\",result=\"miss\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}
