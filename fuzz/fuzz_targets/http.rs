//! The HTTP request path up to dispatch (enclave net/server.rs `serve_http`: hyper HTTP/1.1, body limits, SigV4,
//! credential lookup, the unauthenticated attestation operation, the error shapes), driven over an in-memory stream
//! with the bytes a client sends after the TLS handshake (TLS itself is rustls, not fuzzed here). The input is the
//! client's whole byte stream, closed at its end.
//! Invariants: the connection ends (no hang); every response is a well-formed HTTP/1.1 response; every error is
//! AWS's JSON shape (`__type` and `message`, the same `__type` in `x-amzn-errortype`) and never a 5xx; no request
//! the fuzzer made is served as authenticated (only GetAttestationDocument answers 200 without a signature, and the
//! fuzzer holds no secret).
#![no_main]
use kms_enclave::net::limits::{Gate, Limits};
use kms_enclave::net::server::serve_http;
use kms_fuzz::{World, runtime};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn check_responses(mut out: &[u8], sent: &[u8]) {
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let head = match resp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("malformed response ({other:?}): {:?}", String::from_utf8_lossy(out)),
        };
        let status = resp.code.unwrap();
        let header = |name: &str| {
            resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| String::from_utf8_lossy(h.value))
        };
        let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let body = &out[head..head + len];
        assert!(status < 500, "status {status}: {}", String::from_utf8_lossy(body));
        if status == 200 {
            assert!(
                sent.windows(33).any(|w| w.eq_ignore_ascii_case(b"EnclaveKms.GetAttestationDocument")),
                "200 for a request the fuzzer could not sign"
            );
        } else if let Some(kind) = header("x-amzn-errortype") {
            let v: serde_json::Value = serde_json::from_slice(body).expect("errors are JSON");
            assert_eq!(v["__type"].as_str(), Some(&*kind));
            assert!(v["message"].is_string());
        } else {
            // hyper's own answers to unparsable requests (400, 408, 413, 431) carry no body of ours.
            assert!(matches!(status, 400 | 408 | 413 | 414 | 431 | 505), "status {status} without an AWS error");
        }
        out = &out[head + len..];
    }
}

fuzz_target!(init: { World::get(); }, |data: &[u8]| {
    let w = World::get();
    runtime().block_on(async {
        let (svc, _) = w.fresh().await;
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let gate = std::sync::Arc::new(Gate::new(Limits::default()));
        let served = tokio::spawn(serve_http(server, svc, gate, "fuzz".into()));
        let (mut rd, mut wr) = tokio::io::split(&mut client);
        let write = async {
            let _ = wr.write_all(data).await;
            let _ = wr.shutdown().await;
        };
        let mut out = Vec::new();
        let read = rd.read_to_end(&mut out);
        let (_, r) = tokio::join!(write, read);
        r.unwrap();
        served.await.unwrap();
        check_responses(&out, data);
    });
});
