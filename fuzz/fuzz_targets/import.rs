//! Import tokens and wrapped key material (enclave cmd/import.rs: the sealed token, RSA-OAEP and RSA+AES-KWP
//! unwrapping, ExpirationModel and ValidTo), through ImportKeyMaterial on `alias/external` (a key created with Origin
//! EXTERNAL whose import parameters were fetched once). First byte: the mode; rest: the bytes.
//! Invariants: a token the input supplies never opens and material the input wraps never imports (the fuzzer holds
//! neither the domain key nor the wrapping key); a real token with really wrapped material imports whatever other
//! members the input adds (or fails with a client error), and the key then encrypts and decrypts; the same material
//! with one flipped byte never imports; nothing answers with an internal error. Mode 3 wraps the input itself under
//! the wrapping key of `alias/external-ecc` (ECC_NIST_P256, Origin EXTERNAL), so the bytes reach the PKCS#8 check
//! against the key spec: they import only as a valid P-256 key, which then signs and verifies.
#![no_main]
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kms_enclave::cmd::dispatch;
use kms_fuzz::{World, assert_client_error, runtime};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(init: { World::get(); }, |data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let w = World::get();
    let (token, material) = (STANDARD.encode(&w.import_token), STANDARD.encode(&w.wrapped_material));
    let fuzz = STANDARD.encode(input);
    runtime().block_on(async {
        let (svc, caller) = w.fresh().await;
        let run = |body: Value| {
            let (svc, caller) = (svc.clone(), caller.clone());
            async move { dispatch(&svc, Some(&caller), "TrentService.ImportKeyMaterial", body.to_string().as_bytes()).await }
        };
        let base = json!({"KeyId": w.external_key_id, "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"});
        match mode % 4 {
            0 => {
                let mut b = base.clone();
                b["ImportToken"] = json!(token);
                b["EncryptedKeyMaterial"] = json!(fuzz);
                let r = run(b).await;
                assert!(r.is_err(), "material the fuzzer wrapped was imported");
                assert_client_error("ImportKeyMaterial", &r.unwrap_err());
            }
            1 => {
                let mut b = base.clone();
                b["ImportToken"] = json!(fuzz);
                b["EncryptedKeyMaterial"] = json!(material);
                let r = run(b).await;
                assert!(r.is_err(), "a token the fuzzer made was accepted");
                assert_client_error("ImportKeyMaterial", &r.unwrap_err());
            }
            3 => {
                if input.len() > 190 {
                    return; // RSAES_OAEP_SHA_256 under RSA_2048 carries at most 190 bytes
                }
                let wrapped = kms_fuzz::wrap_oaep_sha256(&w.ecc_import_public, input);
                let b = json!({"KeyId": w.ecc_key_id, "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
                    "ImportToken": STANDARD.encode(&w.ecc_import_token), "EncryptedKeyMaterial": STANDARD.encode(&wrapped)});
                match run(b).await {
                    Err(e) => assert_client_error("ImportKeyMaterial", &e),
                    Ok(_) => {
                        let sign = json!({"KeyId": w.ecc_key_id, "Message": STANDARD.encode(b"m"), "SigningAlgorithm": "ECDSA_SHA_256"});
                        let out = dispatch(&svc, Some(&caller), "TrentService.Sign", sign.to_string().as_bytes())
                            .await
                            .expect("imported P-256 material signs");
                        let out: Value = serde_json::from_slice(&out).unwrap();
                        let verify = json!({"KeyId": w.ecc_key_id, "Message": STANDARD.encode(b"m"),
                            "Signature": out["Signature"], "SigningAlgorithm": "ECDSA_SHA_256"});
                        let v = dispatch(&svc, Some(&caller), "TrentService.Verify", verify.to_string().as_bytes())
                            .await
                            .expect("and verifies");
                        assert!(String::from_utf8_lossy(&v).contains("\"SignatureValid\":true"));
                    }
                }
            }
            _ => {
                let Ok(Value::Object(mut b)) = serde_json::from_slice::<Value>(input) else { return };
                b.insert("KeyId".into(), json!(w.external_key_id));
                b.insert("ImportToken".into(), json!(token));
                let mut flipped = w.wrapped_material.clone();
                let at = input.len() % flipped.len();
                flipped[at] ^= 1 << (mode % 8);
                b.insert("EncryptedKeyMaterial".into(), json!(STANDARD.encode(&flipped)));
                let r = run(Value::Object(b.clone())).await;
                assert!(r.is_err(), "material with a flipped byte {at} was imported");
                b.insert("EncryptedKeyMaterial".into(), json!(material));
                match run(Value::Object(b)).await {
                    Err(e) => assert_client_error("ImportKeyMaterial", &e),
                    Ok(_) => {
                        let enc = json!({"KeyId": "alias/external", "Plaintext": STANDARD.encode(b"after import")});
                        let out = dispatch(&svc, Some(&caller), "TrentService.Encrypt", enc.to_string().as_bytes())
                            .await
                            .expect("an imported key encrypts");
                        let out: Value = serde_json::from_slice(&out).unwrap();
                        let dec = json!({"CiphertextBlob": out["CiphertextBlob"]});
                        let got = dispatch(&svc, Some(&caller), "TrentService.Decrypt", dec.to_string().as_bytes())
                            .await
                            .expect("and decrypts");
                        let got: Value = serde_json::from_slice(&got).unwrap();
                        assert_eq!(got["Plaintext"], json!(STANDARD.encode(b"after import")));
                    }
                }
            }
        }
    });
    let _ = w.material;
});
