#![allow(clippy::panic, clippy::indexing_slicing)]
//! The dependency rules of the workspace (ARCHITECTURE.md, "Crates"): the trust boundary is also a build boundary.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Workspace crate → its direct normal and build dependencies (names), from `cargo metadata`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("metadata JSON: {e}"));
    let mut g = BTreeMap::new();
    for pkg in meta["packages"].as_array().unwrap_or_else(|| panic!("no packages")) {
        let name = pkg["name"].as_str().unwrap_or_default().to_owned();
        let deps = pkg["dependencies"]
            .as_array()
            .unwrap_or_else(|| panic!("no dependencies array"))
            .iter()
            .filter(|d| d["kind"].is_null() || d["kind"] == "build")
            .map(|d| d["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        g.insert(name, deps);
    }
    g
}

/// Everything `from` reaches through workspace crates.
fn reach(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    reach_except(g, from, &[])
}

/// Everything `from` reaches through workspace crates, not looking inside the crates in `opaque` (they are listed,
/// their dependencies are not).
fn reach_except(g: &BTreeMap<String, BTreeSet<String>>, from: &str, opaque: &[&str]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(n) = todo.pop() {
        for d in g.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) && g.contains_key(d) && !opaque.contains(&d.as_str()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn enclave_and_host_never_depend_on_each_other() {
    let g = graph();
    assert!(g.contains_key("kms-enclave") && g.contains_key("kms-host"), "workspace crates missing: {:?}", g.keys());
    assert!(!reach(&g, "kms-enclave").contains("kms-host"), "kms-enclave depends on kms-host");
    assert!(!reach(&g, "kms-host").contains("kms-enclave"), "kms-host depends on kms-enclave");
}

#[test]
fn host_has_no_key_hierarchy_crypto() {
    // The host may verify attestation documents and run client-side tools (verify-endpoint's TLS client, the workload
    // simulator), but it never seals, unseals or derives keys, and never terminates the service's TLS.
    let g = graph();
    let host = reach(&g, "kms-host");
    for banned in ["aes-gcm", "hkdf", "hpke", "kms-enclave"] {
        assert!(!host.contains(banned), "kms-host must not depend on {banned}");
    }
    // The admin CLI reaches tokio-rustls through kms-client, whose only TLS is a client connector; the host itself
    // (relay, storage server) must not link it.
    let own = reach_except(&g, "kms-host", &["kms-client"]);
    assert!(!own.contains("tokio-rustls"), "kms-host must not depend on tokio-rustls except through kms-client");
}

#[test]
fn client_is_a_client_only() {
    // kms-client is what any client of the service could be: no service crate, no storage or attestation code.
    let g = graph();
    assert!(g.contains_key("kms-client"), "workspace crate kms-client missing: {:?}", g.keys());
    let client = reach(&g, "kms-client");
    for banned in ["kms-enclave", "kms-host", "kms-shared", "kms-attestation", "aes-gcm", "hkdf", "rusqlite"] {
        assert!(!client.contains(banned), "kms-client must not depend on {banned}");
    }
    // The enclave never links client code (it makes no outbound requests but to its host's store).
    assert!(!reach(&g, "kms-enclave").contains("kms-client"), "kms-enclave depends on kms-client");
    // The load generator is built on it and on no service crate.
    let loadgen = reach(&g, "kms-loadgen");
    assert!(loadgen.contains("kms-client"), "kms-loadgen should use kms-client");
    for banned in ["kms-enclave", "kms-host", "kms-shared"] {
        assert!(!loadgen.contains(banned), "kms-loadgen must not depend on {banned}");
    }
}

#[test]
fn shared_is_pure_protocol() {
    let g = graph();
    let shared = &g["kms-shared"];
    let allowed: BTreeSet<&str> = ["serde", "serde_bytes", "ciborium", "thiserror"].into();
    for d in shared {
        assert!(allowed.contains(d.as_str()), "kms-shared must stay free of I/O, clocks and crypto; it depends on {d}");
    }
}

#[test]
fn attestation_depends_on_no_service_crate() {
    let g = graph();
    let att = reach(&g, "kms-attestation");
    for banned in ["kms-enclave", "kms-host"] {
        assert!(!att.contains(banned), "kms-attestation depends on {banned}");
    }
}
