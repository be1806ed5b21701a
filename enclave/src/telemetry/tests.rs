#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

#[test]
fn requests_are_counted_by_operation_code_and_latency() {
    let t = Telemetry::new();
    t.request("TrentService.Encrypt", None, Duration::from_micros(90));
    t.request("TrentService.Encrypt", None, Duration::from_micros(300));
    t.request("TrentService.Encrypt", Some(ErrorCode::NotFoundException), Duration::from_secs(5));
    t.request("TrentService.NoSuchThing", Some(ErrorCode::UnknownOperationException), Duration::ZERO);
    t.request("key/00000000-1111", None, Duration::ZERO); // a client-chosen target never becomes a label
    let m = t.snapshot();
    assert!(m.valid());
    let count =
        |op: &str, code: &str| m.requests.iter().find(|r| r.operation == op && r.code == code).map_or(0, |r| r.count);
    assert_eq!(count("Encrypt", ""), 2);
    assert_eq!(count("Encrypt", "NotFoundException"), 1);
    assert_eq!(count(UNKNOWN, "UnknownOperationException"), 1);
    assert_eq!(count(UNKNOWN, ""), 1);
    let lat = m.latency.iter().find(|l| l.operation == "Encrypt").unwrap();
    assert_eq!(lat.buckets[0], 1); // <= 100 us
    assert_eq!((lat.buckets[1], lat.buckets[2]), (0, 1)); // 300 us: in the <= 500 us bucket
    assert_eq!(lat.buckets.iter().sum::<u64>(), 3);
    assert_eq!(*lat.buckets.last().unwrap(), 1); // 5 s: past the last bound
    assert_eq!(lat.sum_us, 90 + 300 + 5_000_000);
}

#[test]
fn handshakes_connections_and_caches() {
    let t: &'static Telemetry = Box::leak(Box::new(Telemetry::new()));
    t.handshake(true);
    t.handshake(false);
    t.cache(Cache::Keys, true);
    t.cache(Cache::Keys, false);
    t.cache(Cache::Aliases, true);
    let g = t.connection();
    let m = t.snapshot();
    assert_eq!((m.tls_handshakes, m.tls_failures, m.connections_open), (1, 1, 1));
    drop(g);
    assert_eq!(t.snapshot().connections_open, 0);
    let keys = m.caches.iter().find(|c| c.cache == "keys").unwrap();
    assert_eq!((keys.hits, keys.misses), (1, 1));
    assert_eq!(m.caches.iter().find(|c| c.cache == "aliases").unwrap().hits, 1);
}

/// Every operation the dispatcher matches is in [`OPERATIONS`] and nothing else is: read from the dispatcher's source,
/// so an operation added there without a label fails here.
#[test]
fn operations_match_the_dispatcher() {
    let src = include_str!("../cmd/mod.rs");
    let body = &src[src.find("pub async fn dispatch").unwrap()..];
    let body = &body[..body.find("\nfn unknown").unwrap()];
    let mut found: Vec<String> = Vec::new();
    let mut prefix = "TrentService.";
    for line in body.lines() {
        let line = line.trim();
        if line.contains("strip_prefix(\"EnclaveKms.\")") {
            prefix = "EnclaveKms.";
        } else if line.contains("strip_prefix(\"TrentService.\")") {
            prefix = "TrentService.";
        }
        if let Some(rest) = line.strip_prefix('"')
            && let Some((name, _)) = rest.split_once("\" =>")
        {
            found.push(format!("{prefix}{name}"));
        }
    }
    found.push(crate::cmd::ATTESTATION_TARGET.to_owned());
    found.sort();
    let mut listed: Vec<String> = OPERATIONS.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed);
}
