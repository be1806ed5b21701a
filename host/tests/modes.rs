//! The host binary's modes: production refuses to run off a Nitro parent; dev mode reports a missing enclave binary.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kms-host");

#[test]
fn production_refuses_without_nitro_enclaves_device() {
    if std::path::Path::new("/dev/nitro_enclaves").exists() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kms-host-run-{}", std::process::id()));
    let out = Command::new(BIN)
        .args(["run", "--enclave-cid", "16", "--domain-key", "quorum", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to start in production mode") && err.contains("/dev/nitro_enclaves"), "{err}");
    assert!(!dir.exists(), "nothing is created before the check");
}

#[test]
fn production_needs_a_domain_key_source() {
    let out = Command::new(BIN).args(["run", "--enclave-cid", "16", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--domain-key upstream or --domain-key quorum"), "{err}");
}

#[test]
fn dev_reports_missing_enclave_binary() {
    let dir = std::env::temp_dir().join(format!("kms-host-dev-{}", std::process::id()));
    let out = Command::new(BIN)
        .args(["dev", "--listen", "127.0.0.1:0", "--enclave-bin", "/nonexistent/kms-enclave", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/kms-enclave") && err.contains("cannot"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready:"));
}

#[test]
fn dev_reports_busy_port() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("kms-host-busy-{}", std::process::id()));
    let out = Command::new(BIN).args(["dev", "--listen", &addr, "--data-dir"]).arg(&dir).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}
