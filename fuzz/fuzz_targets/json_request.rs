//! Every operation's JSON request, through `cmd::dispatch` on a service over the in-memory fake host (a fresh copy
//! of a stored state with keys of every kind behind `alias/sym`, `alias/hmac`, `alias/sign`, `alias/agree`,
//! `alias/rsa`, `alias/external`, `alias/disabled`), as the bootstrap admin. First byte: the operation; rest: the body.
//! Invariants: every answer is JSON (an object) or an AWS-shaped client error, never an internal error or a panic;
//! nothing the input supplies decrypts, re-encrypts, verifies or imports (the fuzzer holds no key); what Encrypt and
//! GenerateDataKey return decrypts to exactly the plaintext; what GenerateMac and Sign return verifies.
#![no_main]
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kms_enclave::access::principals::Caller;
use kms_enclave::cmd::dispatch;
use kms_enclave::service::Service;
use kms_fuzz::{World, assert_client_error, runtime};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// Beyond every served operation (`telemetry::OPERATIONS`, checked against the dispatcher by a unit test): the
/// simulator's clock and a target nobody serves.
const EXTRA: &[&str] = &["EnclaveKms.AdvanceClock", "TrentService.NoSuchOperation"];

fn target(sel: u8) -> &'static str {
    let ops = kms_enclave::telemetry::OPERATIONS;
    let i = usize::from(sel) % (ops.len() + EXTRA.len());
    ops.get(i).or_else(|| EXTRA.get(i - ops.len())).copied().unwrap_or("TrentService.NoSuchOperation")
}

/// RSA key generation takes tens to hundreds of milliseconds; the operations that would do it are left to the
/// `import` target (and the unit and end-to-end tests) so this target keeps thousands of inputs a second.
fn slow(target: &str, body: &[u8]) -> bool {
    let keygen = matches!(
        target,
        "TrentService.CreateKey"
            | "TrentService.GenerateDataKeyPair"
            | "TrentService.GenerateDataKeyPairWithoutPlaintext"
    );
    target == "TrentService.GetParametersForImport"
        || (keygen && (body.windows(3).any(|w| w.eq_ignore_ascii_case(b"rsa")) || body.windows(2).any(|w| w == b"\\u")))
}

fn b64(v: &Value) -> Option<Vec<u8>> {
    STANDARD.decode(v.as_str()?).ok()
}

async fn call(svc: &Service, caller: &Caller, target: &str, body: Value) -> Result<Value, String> {
    match dispatch(svc, Some(caller), target, body.to_string().as_bytes()).await {
        Ok(out) => Ok(serde_json::from_slice(&out).unwrap()),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Decrypt of a returned blob gives exactly `plaintext`.
async fn decrypts_to(svc: &Service, caller: &Caller, req: &Value, blob: &Value, plaintext: &[u8]) {
    let mut d = json!({"CiphertextBlob": blob});
    for member in ["EncryptionContext", "KeyId", "EncryptionAlgorithm"] {
        if let Some(v) = req.get(member) {
            d[member] = v.clone();
        }
    }
    let out = call(svc, caller, "TrentService.Decrypt", d).await.expect("a blob the service returned decrypts");
    assert_eq!(b64(&out["Plaintext"]).unwrap(), plaintext, "Decrypt returned other bytes than were encrypted");
}

async fn check(svc: &Service, caller: &Caller, target: &str, body: &[u8], out: &Value) {
    let op = target.rsplit('.').next().unwrap_or_default();
    assert!(
        !matches!(op, "Decrypt" | "ReEncrypt" | "Verify" | "VerifyMac" | "ImportKeyMaterial"),
        "{op} succeeded on input the fuzzer made: {out}"
    );
    let Ok(req) = serde_json::from_slice::<Value>(body) else { return };
    match op {
        "Encrypt" => {
            let plaintext = b64(&req["Plaintext"]).unwrap();
            decrypts_to(svc, caller, &req, &out["CiphertextBlob"], &plaintext).await;
        }
        "GenerateDataKey" => {
            let plaintext = b64(&out["Plaintext"]).unwrap();
            let n = req["NumberOfBytes"].as_u64().unwrap_or(if req["KeySpec"] == "AES_128" { 16 } else { 32 });
            assert_eq!(plaintext.len() as u64, n);
            let mut r = req.clone();
            r.as_object_mut().unwrap().remove("EncryptionAlgorithm");
            decrypts_to(svc, caller, &r, &out["CiphertextBlob"], &plaintext).await;
        }
        "GenerateMac" => {
            let v = json!({"KeyId": req["KeyId"], "Message": req["Message"], "MacAlgorithm": req["MacAlgorithm"], "Mac": out["Mac"]});
            let got = call(svc, caller, "TrentService.VerifyMac", v).await.expect("a MAC the service made verifies");
            assert_eq!(got["MacValid"], true);
        }
        "Sign" => {
            let mut v = req.clone();
            v["Signature"] = out["Signature"].clone();
            let got = call(svc, caller, "TrentService.Verify", v).await.expect("a signature the service made verifies");
            assert_eq!(got["SignatureValid"], true);
        }
        _ => {}
    }
}

fuzz_target!(init: { World::get(); }, |data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let target = target(sel);
    if slow(target, body) {
        return;
    }
    let world = World::get();
    runtime().block_on(async {
        let (svc, caller) = world.fresh().await;
        match dispatch(&svc, Some(&caller), target, body).await {
            Err(e) => assert_client_error(target, &e),
            Ok(out) => {
                let v: Value = serde_json::from_slice(&out).expect("every answer is JSON");
                assert!(v.is_object(), "{target}: answer is not a JSON object");
                check(&svc, &caller, target, body, &v).await;
            }
        }
    });
});
