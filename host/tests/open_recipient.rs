#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! `kms-host sim open-recipient` on CMS EnvelopedData made by `openssl cms -encrypt` (DER and streamed BER) and on
//! HPKE blobs sealed here with the hpke crate. Needs openssl: these tests fail, never skip, without it.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha384;
use hpke::kem::DhP384HkdfSha384;
use hpke::{Deserializable, Kem, OpModeS, Serializable};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kms-host");

fn kms_host(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("openssl is required by these tests (CI installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn keygen(dir: &Path, alg: &str) -> PathBuf {
    ok(kms_host(&["sim", "keygen", "--alg", alg, "--out-dir", s(dir)]));
    dir.to_path_buf()
}

fn open(key: &Path, input: &Path, document: Option<&Path>, out: &Path) -> Output {
    let mut args = vec!["sim", "open-recipient", "--private-key", s(key), "--in", s(input), "--out", s(out)];
    if let Some(d) = document {
        args.extend(["--document", s(d)]);
    }
    kms_host(&args)
}

fn failure(out: Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("kms-host: ") && err.contains(needle), "{err}");
}

#[test]
fn opens_openssl_cms_for_a_sim_rsa_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = keygen(&tmp.path().join("w"), "rsa2048");
    let key = d.join("private.pem");
    let cert = tmp.path().join("cert.pem");
    openssl(&["req", "-x509", "-new", "-key", s(&key), "-subj", "/CN=workload", "-days", "1", "-out", s(&cert)]);
    let msg: Vec<u8> = (0..=255u8).cycle().take(10_000).collect(); // several BER chunks when streamed
    let plain = tmp.path().join("plain");
    std::fs::write(&plain, &msg).unwrap();

    // rid by issuer and serial (OpenSSL's default) and by subjectKeyIdentifier (AWS KMS's), DER and streamed BER.
    for (name, extra) in
        [("der", &[][..]), ("ski", &["-keyid"][..]), ("ber", &["-stream"][..]), ("ski-ber", &["-keyid", "-stream"][..])]
    {
        let sealed = tmp.path().join(format!("{name}.cms"));
        let mut args = vec!["cms", "-encrypt", "-in", s(&plain), "-recip", s(&cert), "-aes256"];
        args.extend([
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-binary",
            "-outform",
            "DER",
        ]);
        args.extend(extra);
        args.extend(["-out", s(&sealed)]);
        openssl(&args);
        let out = tmp.path().join(format!("{name}.out"));
        ok(open(&key, &sealed, None, &out));
        assert_eq!(std::fs::read(&out).unwrap(), msg, "{name}");
    }

    // Base64, as `aws kms ... --query CiphertextForRecipient --output text` writes it.
    let der = std::fs::read(tmp.path().join("ski.cms")).unwrap();
    let b64 = tmp.path().join("b64");
    std::fs::write(&b64, format!("{}\n", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)))
        .unwrap();
    ok(open(&key, &b64, None, &tmp.path().join("b64.out")));
    assert_eq!(std::fs::read(tmp.path().join("b64.out")).unwrap(), msg);

    // Tampered content, another key, garbage. CBC has no integrity, so the tamper must be one that padding always
    // catches (flipping a byte of the last block would leave valid padding about once in 256 runs): the message is a
    // whole number of blocks, so the last block is all padding, 16 bytes of 0x10; the DER ends with the ciphertext,
    // and flipping the low bit of the previous block's last byte turns the last padding byte into 0x11, never valid.
    assert_eq!(msg.len() % 16, 0);
    let mut bad = der.clone();
    let at = bad.len() - 17;
    bad[at] ^= 1;
    let bad_file = tmp.path().join("bad.cms");
    std::fs::write(&bad_file, &bad).unwrap();
    failure(open(&key, &bad_file, None, &tmp.path().join("x")), "tampered");
    let other = keygen(&tmp.path().join("other"), "rsa2048");
    failure(
        open(&other.join("private.pem"), &tmp.path().join("ski.cms"), None, &tmp.path().join("x")),
        "wrong private key",
    );
    std::fs::write(&bad_file, b"\x30\x03\x02\x01\x00").unwrap();
    failure(open(&key, &bad_file, None, &tmp.path().join("x")), "not CMS EnvelopedData");
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn opens_hpke_for_a_sim_p384_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = keygen(&tmp.path().join("w"), "p384");
    let spki = std::fs::read(d.join("public.der")).unwrap();
    let point = &spki[spki.len() - 97..];
    let pk = <DhP384HkdfSha384 as Kem>::PublicKey::from_bytes(point).unwrap();

    let document = tmp.path().join("doc.cbor");
    std::fs::write(&document, b"an attestation document's bytes").unwrap();
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, b"an attestation document's bytes");
    let info = [&b"enclave-kms recipient v1"[..], hash.as_ref()].concat();
    let msg = b"a data key, say".to_vec();
    // Bound to the answer (issue 12 item 12): "enclave-kms recipient aad v1" || u32 len || KeyId || SHA-256(blob).
    let arn = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-4333-8444-555555555555";
    let blob = b"the data key's CiphertextBlob";
    let blob_hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, blob);
    let aad =
        [&b"enclave-kms recipient aad v1"[..], &(arn.len() as u32).to_be_bytes(), arn.as_bytes(), blob_hash.as_ref()]
            .concat();
    let (enc, ct) =
        hpke::single_shot_seal::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(&OpModeS::Base, &pk, &info, &msg, &aad)
            .unwrap();
    let blob_file = tmp.path().join("blob");
    std::fs::write(&blob_file, blob).unwrap();
    let other_blob = tmp.path().join("other-blob");
    std::fs::write(&other_blob, b"another CiphertextBlob").unwrap();
    let sealed = tmp.path().join("sealed");
    std::fs::write(&sealed, [enc.to_bytes().as_slice(), &ct].concat()).unwrap();

    let key = d.join("private.pem");
    let out = tmp.path().join("out");
    let bound = |doc: Option<&Path>, key_id: &str, blob: &Path, out: &Path| {
        kms_host(
            &[
                "sim",
                "open-recipient",
                "--private-key",
                s(&key),
                "--in",
                s(&sealed),
                "--key-id",
                key_id,
                "--ciphertext-blob",
                s(blob),
                "--out",
                s(out),
            ]
            .into_iter()
            .chain(doc.map(|d| ["--document", s(d)]).into_iter().flatten())
            .collect::<Vec<_>>(),
        )
    };
    ok(bound(Some(&document), arn, &blob_file, &out));
    assert_eq!(std::fs::read(&out).unwrap(), msg);
    // Re-bound to another ciphertext, another key, or to nothing: it does not open.
    failure(bound(Some(&document), arn, &other_blob, &tmp.path().join("x")), "--ciphertext-blob");
    failure(
        bound(Some(&document), "arn:aws:kms:us-east-1:000000000000:key/x", &blob_file, &tmp.path().join("x")),
        "--key-id",
    );
    failure(open(&key, &sealed, Some(&document), &tmp.path().join("x")), "--key-id");

    failure(open(&key, &sealed, None, &tmp.path().join("x")), "--document is required");
    let other_doc = tmp.path().join("other.cbor");
    std::fs::write(&other_doc, b"another document").unwrap();
    failure(open(&key, &sealed, Some(&other_doc), &tmp.path().join("x")), "wrong private key");
    let short = tmp.path().join("short");
    std::fs::write(&short, [4u8; 50]).unwrap();
    failure(open(&key, &short, Some(&document), &tmp.path().join("x")), "too short");
    assert!(!tmp.path().join("x").exists());
}
