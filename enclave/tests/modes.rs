//! The enclave binary's modes: Nitro mode refuses to run without /dev/nsm, and bad settings are refused.

// These tests run on the build machine, not inside the enclave: they may touch files.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_kms-enclave");

#[test]
fn nitro_mode_refuses_without_nsm() {
    if std::path::Path::new("/dev/nsm").exists() {
        return; // inside a real enclave; nothing to check here
    }
    let out = Command::new(BIN).arg("nitro").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to start in Nitro mode") && err.contains("/dev/nsm"), "stderr: {err}");
}

#[test]
fn bad_account_id_is_refused() {
    let dir = std::env::temp_dir();
    let out = Command::new(BIN)
        .args(["simulator", "--client-socket"])
        .arg(dir.join("nonexistent-c.sock"))
        .arg("--storage-socket")
        .arg(dir.join("nonexistent-s.sock"))
        .args(["--account-id", "12345"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--account-id must be 12 digits"));
}

/// Runs `kms-enclave simulator` against a storage socket nobody listens on, with `stdin` as its configuration.
fn simulator_with(stdin: &[u8], tag: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("kms-enclave-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(BIN)
        .args(["simulator", "--client-socket"])
        .arg(dir.join("c.sock"))
        .arg("--storage-socket")
        .arg(dir.join("no-host-here.sock"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn simulator_without_host_fails_cleanly() {
    let pki = kms_attestation::SimPki::generate().unwrap();
    let config = serde_json::json!({"pki": pki.to_pem_bundle().as_str(), "pcrs": {"0": "00".repeat(48)}});
    let out = simulator_with(config.to_string().as_bytes(), "nohost");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the host's storage"));
}

#[test]
fn simulator_refuses_a_bad_configuration() {
    for (bad, tag) in [
        (b"".as_slice(), "empty"),
        (b"{".as_slice(), "json"),
        (br#"{"pki": "not a bundle", "pcrs": {}}"#.as_slice(), "pki"),
    ] {
        let out = simulator_with(bad, tag);
        assert_eq!(out.status.code(), Some(2), "{tag}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("simulator configuration"), "{tag}");
    }
}
