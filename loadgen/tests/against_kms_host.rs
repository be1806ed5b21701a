//! Runs kms-loadgen against the real `kms-host dev` (simulator mode) for each operation and checks the JSON report.
//!
//! Needs `kms-host` and `kms-enclave` built (scripts/test builds every binary first): found through KMS_HOST_BIN, else
//! beside the test executable's target directory (target/debug/deps/../kms-host), else CARGO_TARGET_DIR/debug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn host_binary() -> PathBuf {
    if let Ok(p) = std::env::var("KMS_HOST_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let mut candidates = Vec::new();
    if let Some(deps) = exe.parent()
        && let Some(profile) = deps.parent()
    {
        candidates.push(profile.join("kms-host"));
    }
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug").join("kms-host"));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/kms-host"));
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("kms-host not found; build it first: cargo build -p kms-host -p kms-enclave (or set KMS_HOST_BIN)")
    })
}

/// Stops the host with SIGTERM when dropped (also when an assertion fails).
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_op_runs_without_errors_against_kms_host_dev() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(host_binary())
        .args(["dev", "--data-dir"])
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let host = Host(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep reading so the host never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("ready: ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let endpoint = rx.recv_timeout(Duration::from_secs(60)).expect("kms-host printed no ready line");
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let credentials = data.path().join("credentials");
    let ca = data.path().join("ca.pem");
    assert!(credentials.is_file() && ca.is_file());

    let keys_file = data.path().join("bench-keys");
    let keys_arg = format!("--keys-file={}", keys_file.display());
    let runs: [(&str, &[&str]); 7] = [
        ("encrypt", &[]),
        ("decrypt", &[]),
        ("generate-data-key", &[]),
        ("create-key", &[]),
        // A key set: 25 keys created (and listed in the file), then reused by the next runs.
        ("encrypt", &["--keys=25", &keys_arg, "--setup-connections=4"]),
        ("decrypt", &["--keys=25", &keys_arg]),
        ("generate-data-key", &["--keys=25", &keys_arg]),
    ];
    // Runs kms-loadgen against the server with its credentials from the data directory's shared-credentials file.
    let loadgen = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kms-loadgen"))
            .args(["--endpoint", &endpoint, "--ca"])
            .arg(&ca)
            .args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    for (op, extra) in runs {
        let mut args = vec!["--connections", "2", "--duration", "2", "--warmup", "0.2", "--op", op, "--json"];
        args.extend_from_slice(extra);
        let out = loadgen(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{op}: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(report["op"], op);
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["connections"], 2);
        for field in ["requests_per_sec", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "duration_s"] {
            assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
        }
        assert!(report["p50_ms"].as_f64() <= report["p99_ms"].as_f64());
        if !extra.is_empty() {
            let ids = std::fs::read_to_string(&keys_file).unwrap();
            assert_eq!(ids.lines().count(), 25, "the key set is created once and reused");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let expected = if op == "encrypt" { "created 25 keys" } else { "reusing 25 keys" };
            assert!(stderr.contains(expected), "{op}: {stderr}");
        }
    }

    // The operations of issue 7's mix, 1 s each; then a mix with an encryption context.
    // The operations of scripts/soak's mix: policy writes over a key set (one key at 2 connections is contended:
    // its updates can exhaust their compare-and-swap attempts) and key creation.
    let soak_mix = "--mix=encrypt=30,decrypt=30,generate-data-key=20,put-key-policy=10,create-key=10";
    let new_runs: [(&str, &[&str]); 8] = [
        ("put-key-policy", &["--op=put-key-policy", "--keys=25", &keys_arg]),
        ("mix", &[soak_mix, "--keys=25", &keys_arg]),
        ("sign", &["--op=sign"]),
        ("verify", &["--op=verify"]),
        ("generate-mac", &["--op=generate-mac"]),
        ("generate-random", &["--op=generate-random", "--payload-bytes=1024"]),
        ("encrypt", &["--op=encrypt", "--context=purpose=loadgen-test", "--context=tenant=a"]),
        (
            "mix",
            &[
                "--mix=encrypt=30,decrypt=30,generate-data-key=10,generate-random=10,sign=10,verify=5,generate-mac=5",
                "--context=purpose=loadgen-test",
            ],
        ),
    ];
    for (name, extra) in new_runs {
        let mut args = vec!["--connections", "2", "--duration", "1", "--warmup", "0.2", "--json"];
        args.extend_from_slice(extra);
        let out = loadgen(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(report["op"], name);
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
        for field in ["requests_per_sec", "p50_ms", "p99_ms"] {
            assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
        }
        if name == "mix" {
            let ops = report["ops"].as_object().unwrap();
            assert_eq!(ops.len(), extra[0].split(',').count(), "{report}");
            let mut total = 0;
            for (op, o) in ops {
                assert_eq!(o["errors"], 0, "{op}: {report}");
                assert!(o["requests"].as_u64().unwrap() > 0, "{op}: {report}");
                assert!(o["p50_ms"].as_f64().unwrap() > 0.0 && o["p50_ms"].as_f64() <= o["p99_ms"].as_f64());
                total += o["requests"].as_u64().unwrap();
            }
            assert_eq!(total, report["requests"].as_u64().unwrap(), "{report}");
        } else {
            assert!(report.get("ops").is_none(), "{report}");
        }
    }

    // A context is checked by the service: Decrypt of a ciphertext made under one context fails under another, so a
    // decrypt run with a context succeeds only if it encrypted with the same one.
    let out =
        loadgen(&["--connections", "1", "--duration", "1", "--warmup", "0", "--json", "--op=decrypt", "--context=k=v"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    drop(host);
}
