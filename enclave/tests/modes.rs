//! The enclave binary's modes: Nitro mode refuses to run without /dev/nsm, and bad settings are refused.

// These tests run on the build machine, not inside the enclave: they may touch files.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

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

#[test]
fn simulator_without_host_fails_cleanly() {
    let dir = std::env::temp_dir().join(format!("kms-enclave-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(BIN)
        .args(["simulator", "--client-socket"])
        .arg(dir.join("c.sock"))
        .arg("--storage-socket")
        .arg(dir.join("no-host-here.sock"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the host's storage"));
}
