//! The simulated NSM: PKI bundle, document format (byte-compatible with Nitro's), chain shape, PCRs, limits.
//! Documents are taken apart here with ciborium, x509-cert and aws-lc-rs directly, independently of the crate's
//! own code.

#![cfg(feature = "simulator")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use aws_lc_rs::digest::{SHA384, digest};
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use ciborium::Value;
use kms_attestation::{
    AttestationPayload, DocumentRequest, Nsm, NsmError, SimNsm, SimPki, SimPkiError, simulated_pcrs,
};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};

/// 2030-03-17T17:46:40Z, inside the validity of a PKI generated now.
const T0: u64 = 1_900_000_000_000;

/// One PKI shared by the tests that do not need their own (P-384 generation is not free).
fn shared() -> &'static SimPki {
    static PKI: OnceLock<SimPki> = OnceLock::new();
    PKI.get_or_init(|| SimPki::generate().unwrap())
}

fn request() -> DocumentRequest {
    DocumentRequest { pcrs: simulated_pcrs(b"enclave image", false), ..DocumentRequest::default() }
}

/// The four elements of an untagged COSE_Sign1.
struct Envelope {
    protected: Vec<u8>,
    unprotected: Vec<(Value, Value)>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn envelope(doc: &[u8]) -> Envelope {
    let Value::Array(items) = ciborium::from_reader::<Value, _>(doc).unwrap() else { panic!("not an array") };
    let [Value::Bytes(protected), Value::Map(unprotected), Value::Bytes(payload), Value::Bytes(signature)] =
        <[Value; 4]>::try_from(items).unwrap()
    else {
        panic!("not [bstr, map, bstr, bstr]")
    };
    Envelope { protected, unprotected, payload, signature }
}

fn payload(doc: &[u8]) -> AttestationPayload {
    ciborium::from_reader(envelope(doc).payload.as_slice()).unwrap()
}

fn cert(der: &[u8]) -> Certificate {
    Certificate::from_der(der).unwrap()
}

/// The uncompressed P-384 point of a certificate's key.
fn public_key(cert: &Certificate) -> Vec<u8> {
    let spki = cert.tbs_certificate().subject_public_key_info();
    assert_eq!(spki.algorithm.oid.to_string(), "1.2.840.10045.2.1", "id-ecPublicKey");
    assert_eq!(
        spki.algorithm
            .parameters
            .as_ref()
            .unwrap()
            .decode_as::<x509_cert::der::asn1::ObjectIdentifier>()
            .unwrap()
            .to_string(),
        "1.3.132.0.34",
        "secp384r1"
    );
    spki.subject_public_key.as_bytes().unwrap().to_vec()
}

/// Whether `child` carries a valid ecdsa-with-SHA384 signature by `parent`'s key.
fn signed_by(child: &Certificate, parent: &Certificate) -> bool {
    assert_eq!(child.signature_algorithm().oid.to_string(), "1.2.840.10045.4.3.3");
    let tbs = child.tbs_certificate().to_der().unwrap();
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, public_key(parent))
        .verify(&tbs, child.signature().as_bytes().unwrap())
        .is_ok()
}

/// Whether the document's COSE signature verifies under its leaf, with the Sig_structure built here by hand.
fn cose_signature_verifies(doc: &[u8]) -> bool {
    let env = envelope(doc);
    let leaf = cert(&payload(doc).certificate);
    let sig_structure = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(env.protected),
        Value::Bytes(vec![]),
        Value::Bytes(env.payload),
    ]);
    let mut tbs = Vec::new();
    ciborium::into_writer(&sig_structure, &mut tbs).unwrap();
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, public_key(&leaf)).verify(&tbs, &env.signature).is_ok()
}

/// Checks the whole chain of a document: leaf ← i3 ← i2 ← i1 ← root (self-signed), names and key identifiers.
fn assert_chain(p: &AttestationPayload, root_der: &[u8]) {
    assert_eq!(p.cabundle.len(), 4);
    assert_eq!(p.cabundle[0].as_slice(), root_der);
    let mut chain: Vec<Certificate> = p.cabundle.iter().map(|c| cert(c)).collect();
    chain.push(cert(&p.certificate));
    assert!(signed_by(&chain[0], &chain[0]), "root self-signed");
    assert_eq!(chain[0].tbs_certificate().issuer(), chain[0].tbs_certificate().subject());
    for pair in chain.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        assert!(signed_by(child, parent));
        assert_eq!(
            child.tbs_certificate().issuer().to_der().unwrap(),
            parent.tbs_certificate().subject().to_der().unwrap()
        );
        let (_, aki) = child.tbs_certificate().get_extension::<AuthorityKeyIdentifier>().unwrap().unwrap();
        let (_, ski) = parent.tbs_certificate().get_extension::<SubjectKeyIdentifier>().unwrap().unwrap();
        assert_eq!(aki.key_identifier.unwrap(), ski.0);
    }
}

fn seconds(t: &x509_cert::time::Time) -> u64 {
    t.to_unix_duration().as_secs()
}

// --- bundle ---

#[test]
fn bundle_round_trip_issues_documents_chaining_to_the_same_root() {
    let pki = SimPki::generate().unwrap();
    let bundle = pki.to_pem_bundle();
    let reloaded = SimPki::from_pem_bundle(&bundle).unwrap();
    assert_eq!(reloaded.root_der(), pki.root_der());
    assert_eq!(reloaded.root_pem(), pki.root_pem());
    assert_eq!(reloaded.module_id(), pki.module_id());
    assert_eq!(reloaded.to_pem_bundle().as_str(), bundle.as_str(), "the stored certificates are kept, not regenerated");
    let before = payload(&pki.issue(&request(), T0).unwrap());
    let doc = reloaded.issue(&request(), T0).unwrap();
    let after = payload(&doc);
    assert_eq!(after.cabundle, before.cabundle);
    assert_eq!(after.module_id, before.module_id);
    assert_ne!(after.certificate, before.certificate, "a fresh leaf after reload");
    assert_chain(&after, &pki.root_der());
    assert!(cose_signature_verifies(&doc));
}

#[test]
fn bundle_format() {
    let pki = shared();
    let bundle = pki.to_pem_bundle();
    let labels: Vec<&str> = bundle.lines().filter_map(|l| l.strip_prefix("-----BEGIN ")).collect();
    assert_eq!(
        labels,
        [
            "SIM ROOT CERTIFICATE-----",
            "SIM ROOT PRIVATE KEY-----",
            "SIM INTERMEDIATE 1 CERTIFICATE-----",
            "SIM INTERMEDIATE 1 PRIVATE KEY-----",
            "SIM INTERMEDIATE 2 CERTIFICATE-----",
            "SIM INTERMEDIATE 2 PRIVATE KEY-----",
            "SIM INTERMEDIATE 3 CERTIFICATE-----",
            "SIM INTERMEDIATE 3 PRIVATE KEY-----",
        ]
    );
    assert!(bundle.lines().all(|l| l.len() <= 64 || l.starts_with('#') || l.starts_with("-----")));
    let root_pem = pki.root_pem();
    assert!(root_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(root_pem.ends_with("-----END CERTIFICATE-----\n"));
    // The root block of the bundle carries the same base64 as root_pem().
    let body =
        |pem: &str| pem.lines().filter(|l| !l.starts_with('-') && !l.starts_with('#')).take(3).collect::<String>();
    assert_eq!(body(&bundle), body(&root_pem));
}

/// Replaces the body of block `label` in `bundle` with that of the same block in `donor`.
fn transplant(bundle: &str, donor: &str, label: &str) -> String {
    let block = |text: &str| {
        let begin = format!("-----BEGIN {label}-----\n");
        let end = format!("-----END {label}-----\n");
        let start = text.find(&begin).unwrap();
        let stop = text[start..].find(&end).unwrap() + start + end.len();
        (start, stop)
    };
    let (s, e) = block(bundle);
    let (ds, de) = block(donor);
    format!("{}{}{}", &bundle[..s], &donor[ds..de], &bundle[e..])
}

fn without_block(bundle: &str, label: &str) -> String {
    let begin = format!("-----BEGIN {label}-----\n");
    let end = format!("-----END {label}-----\n");
    let start = bundle.find(&begin).unwrap();
    let stop = bundle[start..].find(&end).unwrap() + start + end.len();
    format!("{}{}", &bundle[..start], &bundle[stop..])
}

fn refused(bundle: &str) -> SimPkiError {
    match SimPki::from_pem_bundle(bundle) {
        Ok(_) => panic!("bundle accepted:\n{bundle}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_bundles_are_refused() {
    let a = shared().to_pem_bundle();
    assert!(SimPki::from_pem_bundle(&a).is_ok(), "the unmodified bundle loads");
    // Truncated: at every line boundary, and in the middle of a line.
    let lines: Vec<&str> = a.lines().collect();
    for n in 0..lines.len() {
        let truncated = lines[..n].join("\n");
        assert!(SimPki::from_pem_bundle(&truncated).is_err(), "truncated to {n} lines accepted");
    }
    assert!(matches!(refused(&a[..a.len() / 2]), SimPkiError::Bundle(_)));
    // Pieces missing.
    for label in ["SIM INTERMEDIATE 2 CERTIFICATE", "SIM INTERMEDIATE 2 PRIVATE KEY", "SIM ROOT CERTIFICATE"] {
        assert!(matches!(refused(&without_block(&a, label)), SimPkiError::Bundle(_)), "{label} missing");
    }
    let no_i2 = without_block(&without_block(&a, "SIM INTERMEDIATE 2 CERTIFICATE"), "SIM INTERMEDIATE 2 PRIVATE KEY");
    assert!(matches!(refused(&no_i2), SimPkiError::Bundle(_)));
    // Garbage.
    for garbage in [
        "",
        "garbage",
        "\u{0}\u{1}\u{2}",
        "-----BEGIN SIM ROOT CERTIFICATE-----\n!!!!\n-----END SIM ROOT CERTIFICATE-----\n",
    ] {
        assert!(matches!(refused(garbage), SimPkiError::Bundle(_)), "{garbage:?}");
    }
    // Extra, duplicate or unknown blocks; stray text.
    assert!(matches!(refused(&format!("{}{}", a.as_str(), a.as_str())), SimPkiError::Bundle(_)));
    assert!(matches!(
        refused(&format!("{}-----BEGIN X-----\nZm9v\n-----END X-----\n", a.as_str())),
        SimPkiError::Bundle(_)
    ));
    assert!(matches!(refused(&format!("{}stray text\n", a.as_str())), SimPkiError::Bundle(_)));
    // A certificate's bytes corrupted: one base64 character changed inside i1's certificate.
    let i1 = a.find("-----BEGIN SIM INTERMEDIATE 1 CERTIFICATE-----\n").unwrap() + 200;
    let mut corrupted = a.to_string();
    let c = if &corrupted[i1..i1 + 1] == "A" { "B" } else { "A" };
    corrupted.replace_range(i1..i1 + 1, c);
    assert!(SimPki::from_pem_bundle(&corrupted).is_err());
    // Oversized.
    assert!(matches!(refused(&format!("{}{}", a.as_str(), "#".repeat(70_000))), SimPkiError::Bundle(_)));
}

#[test]
fn bundles_with_pieces_from_another_pki_are_refused() {
    let a = shared().to_pem_bundle();
    let b = SimPki::generate().unwrap().to_pem_bundle();
    // A key swapped in from another bundle: it does not match its certificate.
    for label in ["SIM ROOT PRIVATE KEY", "SIM INTERMEDIATE 2 PRIVATE KEY", "SIM INTERMEDIATE 3 PRIVATE KEY"] {
        assert!(matches!(refused(&transplant(&a, &b, label)), SimPkiError::Inconsistent(_)), "{label} swapped");
    }
    // A whole CA (certificate and key) swapped in: the chain no longer links up.
    for ca in ["ROOT", "INTERMEDIATE 1", "INTERMEDIATE 2", "INTERMEDIATE 3"] {
        let mixed =
            transplant(&transplant(&a, &b, &format!("SIM {ca} CERTIFICATE")), &b, &format!("SIM {ca} PRIVATE KEY"));
        assert!(matches!(refused(&mixed), SimPkiError::Inconsistent(_)), "{ca} swapped");
    }
    // Intermediates 1 and 2 exchanged (each key still matches its certificate): the chain no longer links up.
    let exchanged =
        a.replace("INTERMEDIATE 1", "TMP").replace("INTERMEDIATE 2", "INTERMEDIATE 1").replace("TMP", "INTERMEDIATE 2");
    assert!(matches!(refused(&exchanged), SimPkiError::Inconsistent(_)));
}

#[test]
fn a_key_on_another_curve_is_refused() {
    let a = shared().to_pem_bundle();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let p256 =
        aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap();
    let label = "SIM INTERMEDIATE 3 PRIVATE KEY";
    let donor = format!("-----BEGIN {label}-----\n{}-----END {label}-----\n", pem_body(p256.as_ref()));
    assert!(matches!(refused(&transplant(&a, &donor, label)), SimPkiError::Bundle(_)));
    // The same encoder on the genuine key gives a bundle that loads (the test's encoder is sound).
    let genuine = transplant(&a, &a, label);
    assert!(SimPki::from_pem_bundle(&genuine).is_ok());
}

/// Base64 with 64-character lines (a tiny independent encoder for the test).
fn pem_body(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            s.push(if i <= chunk.len() { A[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
    }
    let mut out = String::new();
    for line in s.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out
}

// --- documents ---

#[test]
fn document_envelope_is_nitros() {
    let doc = shared().issue(&request(), T0).unwrap();
    assert_eq!(doc[0], 0x84, "untagged array of 4");
    let env = envelope(&doc);
    assert_eq!(env.protected, [0xa1, 0x01, 0x38, 0x22], "protected header {{1: -35}}");
    assert!(env.unprotected.is_empty());
    assert_eq!(env.signature.len(), 96, "raw r||s");
    // The bytes right after the array header: bstr(4) a1013822, then an empty map.
    assert_eq!(&doc[1..7], &[0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0]);
    assert!(cose_signature_verifies(&doc));
    assert!(doc.len() <= kms_attestation::MAX_DOCUMENT_LEN);
}

#[test]
fn document_payload_carries_the_request() {
    let pki = shared();
    let req = DocumentRequest {
        pcrs: BTreeMap::from([(0, vec![7u8; 48]), (4, vec![9u8; 48]), (31, vec![1u8; 32]), (8, vec![2u8; 64])]),
        public_key: Some(b"a public key".to_vec()),
        user_data: Some(vec![]),
        nonce: Some(b"nonce".to_vec()),
        module_id: None,
    };
    let doc = pki.issue(&req, T0 + 123).unwrap();
    let p = payload(&doc);
    assert!(p.module_id.starts_with("sim-"));
    assert_eq!(p.module_id, pki.module_id());
    assert_eq!(p.module_id.len(), "sim-".len() + 16 + "-enc".len() + 16);
    assert!(
        p.module_id["sim-".len()..].split("-enc").all(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    assert_eq!(p.digest, "SHA384");
    assert_eq!(p.timestamp, T0 + 123);
    let pcrs: BTreeMap<u32, Vec<u8>> = p.pcrs.iter().map(|(i, v)| (*i, v.to_vec())).collect();
    assert_eq!(pcrs, req.pcrs);
    assert_eq!(p.public_key.as_deref().map(|v| v.as_slice()), Some(&b"a public key"[..]));
    assert_eq!(p.user_data.as_deref().map(|v| v.as_slice()), Some(&[][..]), "empty user_data stays present");
    assert_eq!(p.nonce.as_deref().map(|v| v.as_slice()), Some(&b"nonce"[..]));
    assert_chain(&p, &pki.root_der());

    let overridden = pki.issue(&DocumentRequest { module_id: Some("sim-test".into()), ..request() }, T0).unwrap();
    assert_eq!(payload(&overridden).module_id, "sim-test");
}

#[test]
fn absent_optional_fields_are_cbor_null_in_nitros_key_order() {
    let doc = shared().issue(&request(), T0).unwrap();
    let raw = envelope(&doc).payload;
    assert_eq!(raw[0], 0xa9, "definite-length map of 9");
    let Value::Map(entries) = ciborium::from_reader::<Value, _>(raw.as_slice()).unwrap() else { panic!() };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_text().unwrap()).collect();
    assert_eq!(
        keys,
        ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"]
    );
    for (k, v) in &entries[6..] {
        assert!(v.is_null(), "{k:?} is {v:?}");
    }
    // And literally: text key followed by 0xf6.
    for key in ["public_key", "user_data", "nonce"] {
        let mut needle = vec![0x60 + key.len() as u8];
        needle.extend_from_slice(key.as_bytes());
        needle.push(0xf6);
        assert!(raw.windows(needle.len()).any(|w| w == needle), "{key}: null");
    }
    // PCR keys are unsigned integers, values byte strings.
    let (_, pcrs) = &entries[3];
    let Value::Map(pcrs) = pcrs else { panic!() };
    assert_eq!(pcrs.len(), 16);
    assert!(pcrs.iter().all(|(k, v)| k.is_integer() && v.as_bytes().is_some_and(|b| b.len() == 48)));
}

#[test]
fn a_tampered_document_no_longer_verifies() {
    let doc = shared().issue(&request(), T0).unwrap();
    assert!(cose_signature_verifies(&doc));
    // Change one byte of the module id inside the payload (same length, still valid CBOR).
    let at = doc.windows(4).position(|w| w == b"sim-").unwrap();
    let mut tampered = doc.clone();
    tampered[at + 4] ^= 0x01;
    assert!(!cose_signature_verifies(&tampered));
}

#[test]
fn chain_is_shaped_like_aws() {
    let pki = shared();
    let p = payload(&pki.issue(&request(), T0).unwrap());
    assert_chain(&p, &pki.root_der());
    let root = cert(&p.cabundle[0]);
    let subject = root.tbs_certificate().subject();
    assert_eq!(subject.common_name().unwrap().map(String::from).as_deref(), Some("simulator.nitro-enclaves"));
    assert_eq!(subject.organization().unwrap().map(String::from).as_deref(), Some("enclave-kms simulator"));
    assert!(!subject.to_string().contains("aws.nitro-enclaves"));
    for (der, path_len) in p.cabundle.iter().zip([None, Some(2), Some(1), Some(0)]) {
        let c = cert(der);
        let tbs = c.tbs_certificate();
        let (critical, bc) = tbs.get_extension::<BasicConstraints>().unwrap().unwrap();
        assert!(critical && bc.ca);
        assert_eq!(bc.path_len_constraint, path_len);
        let (_, ku) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
        assert!(ku.0.contains(KeyUsages::KeyCertSign) && ku.0.contains(KeyUsages::CRLSign));
        let validity = tbs.validity();
        let (nb, na) = (seconds(&validity.not_before), seconds(&validity.not_after));
        assert!(na - nb >= 3650 * 86400, "long-lived CA");
        assert!(nb * 1000 < T0 && T0 < na * 1000);
        assert_eq!(public_key(&c).len(), 97, "P-384 uncompressed point");
    }
}

#[test]
fn leaf_is_a_three_hour_signing_certificate() {
    let pki = SimPki::generate().unwrap();
    let p = payload(&pki.issue(&request(), T0 + 999).unwrap());
    let leaf = cert(&p.certificate);
    let tbs = leaf.tbs_certificate();
    let validity = tbs.validity();
    let (nb, na) = (seconds(&validity.not_before), seconds(&validity.not_after));
    assert_eq!(na - nb, 3 * 3600);
    assert_eq!(nb, T0 / 1000 - 3, "notBefore = document time - 3 s");
    let (critical, bc) = tbs.get_extension::<BasicConstraints>().unwrap().unwrap();
    assert!(critical && !bc.ca && bc.path_len_constraint.is_none());
    let (_, ku) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
    assert!(ku.0.contains(KeyUsages::DigitalSignature));
    assert!(!ku.0.contains(KeyUsages::KeyCertSign));
    assert!(tbs.get_extension::<ExtendedKeyUsage>().unwrap().is_none(), "no EKU");
    assert_eq!(public_key(&leaf).len(), 97);
    let i3 = cert(&p.cabundle[3]);
    assert_eq!(tbs.issuer(), i3.tbs_certificate().subject());
    assert!(signed_by(&leaf, &i3));
    assert!(!signed_by(&leaf, &cert(&p.cabundle[2])));
}

#[test]
fn documents_issued_concurrently_all_verify() {
    let pki = shared();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|i| {
                s.spawn(move || (0..5u64).map(|j| pki.issue(&request(), T0 + i * 10 + j).unwrap()).collect::<Vec<_>>())
            })
            .collect();
        for h in handles {
            for doc in h.join().unwrap() {
                assert!(cose_signature_verifies(&doc));
            }
        }
    });
}

#[test]
fn sim_pki_and_sim_nsm_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SimPki>();
    check::<SimNsm>();
}

// --- limits ---

#[test]
fn requests_outside_the_limits_are_refused() {
    let pki = shared();
    let with = |f: &dyn Fn(&mut DocumentRequest)| {
        let mut r = request();
        f(&mut r);
        pki.issue(&r, T0)
    };
    assert!(matches!(with(&|r| r.pcrs.clear()), Err(SimPkiError::Pcr(_))));
    assert!(matches!(with(&|r| r.pcrs = (0..33).map(|i| (i, vec![0; 48])).collect()), Err(SimPkiError::Pcr(_))));
    assert!(with(&|r| r.pcrs = (0..32).map(|i| (i, vec![0; 48])).collect()).is_ok());
    assert!(matches!(
        with(&|r| {
            r.pcrs.insert(32, vec![0; 48]);
        }),
        Err(SimPkiError::Pcr(_))
    ));
    for len in [0, 1, 31, 47, 49, 63, 65, 96] {
        assert!(
            matches!(
                with(&|r| {
                    r.pcrs.insert(5, vec![0; len]);
                }),
                Err(SimPkiError::Pcr(_))
            ),
            "{len}"
        );
    }
    for len in [32, 48, 64] {
        assert!(
            with(&|r| {
                r.pcrs.insert(5, vec![0; len]);
            })
            .is_ok()
        );
    }
    assert_eq!(
        with(&|r| r.public_key = Some(vec![])).unwrap_err(),
        SimPkiError::FieldSize { field: "public_key", len: 0 }
    );
    assert_eq!(
        with(&|r| r.public_key = Some(vec![0; 1025])).unwrap_err(),
        SimPkiError::FieldSize { field: "public_key", len: 1025 }
    );
    assert_eq!(
        with(&|r| r.user_data = Some(vec![0; 1025])).unwrap_err(),
        SimPkiError::FieldSize { field: "user_data", len: 1025 }
    );
    assert_eq!(
        with(&|r| r.nonce = Some(vec![0; 1025])).unwrap_err(),
        SimPkiError::FieldSize { field: "nonce", len: 1025 }
    );
    // The largest request accepted still makes a document within the size limit.
    let doc = with(&|r| {
        r.pcrs = (0..32).map(|i| (i, vec![0; 64])).collect();
        r.public_key = Some(vec![1; 1024]);
        r.user_data = Some(vec![2; 1024]);
        r.nonce = Some(vec![3; 1024]);
    })
    .unwrap();
    assert!(doc.len() <= kms_attestation::MAX_DOCUMENT_LEN);
    assert!(cose_signature_verifies(&doc));
}

#[test]
fn sim_nsm_applies_the_hardware_limits() {
    let nsm = SimNsm::new(SimPki::generate().unwrap(), simulated_pcrs(b"x", false));
    assert!(matches!(
        nsm.attestation(Some(&[0; 513]), None, None),
        Err(NsmError::RequestLimit { field: "user_data", .. })
    ));
    assert!(matches!(nsm.attestation(None, Some(&[0; 513]), None), Err(NsmError::RequestLimit { field: "nonce", .. })));
    assert!(matches!(
        nsm.attestation(None, None, Some(&[0; 1025])),
        Err(NsmError::RequestLimit { field: "public_key", .. })
    ));
    assert!(nsm.attestation(Some(&[0; 512]), Some(&[0; 512]), Some(&[0; 1024])).is_ok());
}

#[test]
fn sim_nsm_attests_now_with_its_pcrs() {
    let pcrs = simulated_pcrs(b"the enclave", false);
    let pki = SimPki::generate().unwrap();
    let root = pki.root_der();
    let nsm = SimNsm::new(pki, pcrs.clone());
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let doc = nsm.attestation(Some(b"user"), Some(b"nonce"), None).unwrap();
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let p = payload(&doc);
    assert!(before <= p.timestamp && p.timestamp <= after);
    assert_eq!(p.pcrs.iter().map(|(i, v)| (*i, v.to_vec())).collect::<BTreeMap<_, _>>(), pcrs);
    assert_eq!(p.user_data.as_ref().unwrap().as_slice(), b"user");
    assert_eq!(p.nonce.as_ref().unwrap().as_slice(), b"nonce");
    assert!(p.public_key.is_none());
    assert_chain(&p, &root);
    assert!(cose_signature_verifies(&doc));
    assert_eq!(nsm.describe_pcr(0).unwrap(), pcrs[&0]);
    assert_eq!(nsm.pki().root_der(), root);
}

// --- PCRs ---

#[test]
fn simulated_pcrs_measure_the_binary() {
    let binary = b"enclave binary contents".to_vec();
    let pcrs = simulated_pcrs(&binary, false);
    assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
    assert!(pcrs.values().all(|v| v.len() == 48));
    assert_eq!(pcrs[&0], digest(&SHA384, &binary).as_ref());
    assert_eq!(pcrs[&1], digest(&SHA384, b"enclave-kms simulator PCR1 (kernel and boot ramfs)").as_ref());
    assert_eq!(pcrs[&2], digest(&SHA384, b"enclave-kms simulator PCR2 (application)").as_ref());
    assert!((3..16).all(|i| pcrs[&i] == [0u8; 48]));
    assert_eq!(simulated_pcrs(&binary, false), pcrs, "deterministic");
    let mut changed = binary.clone();
    changed[7] ^= 0x80;
    let other = simulated_pcrs(&changed, false);
    assert_ne!(other[&0], pcrs[&0]);
    assert!((1..16).all(|i| other[&i] == pcrs[&i]));
}

#[test]
fn debug_pcrs_zero_only_0_to_2() {
    let normal = simulated_pcrs(b"binary", false);
    let debug = simulated_pcrs(b"binary", true);
    assert_eq!(debug.len(), 16);
    for i in 0..3 {
        assert_eq!(debug[&i], [0u8; 48], "PCR{i}");
        assert_ne!(normal[&i], [0u8; 48], "PCR{i}");
    }
    assert!((3..16).all(|i| debug[&i] == normal[&i]));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any single-byte change, insertion or truncation of a valid bundle either loads a PKI with the same root
        /// (a change in a comment line, say) or is refused with an error; it never panics.
        #[test]
        fn mutated_bundles_never_panic(at in 0usize..100_000, byte in any::<u8>(), op in 0u8..3) {
            let bundle = shared().to_pem_bundle();
            let mut bytes = bundle.as_bytes().to_vec();
            let at = at % bytes.len();
            match op {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Ok(pki) = SimPki::from_pem_bundle(text)
            {
                prop_assert_eq!(pki.root_der(), shared().root_der());
                prop_assert_eq!(pki.module_id(), shared().module_id());
            }
        }
    }
}

// --- through the verifier ---

mod verifier {
    use super::*;
    use kms_attestation::{AttestError, PcrPolicy, TimeRule, TrustAnchor, Verifier, verify};

    fn now_ms() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    }

    fn now_rule() -> TimeRule {
        TimeRule::Now { now_ms: now_ms(), max_age_ms: 5 * 60_000, max_skew_ms: 60_000 }
    }

    fn image_policy(pcrs: &BTreeMap<u32, Vec<u8>>) -> PcrPolicy {
        PcrPolicy::new().expect(0, pcrs[&0].clone()).expect(1, pcrs[&1].clone()).expect(2, pcrs[&2].clone())
    }

    #[test]
    fn sim_nsm_documents_pass_under_the_simulator_root() {
        let pcrs = simulated_pcrs(b"the enclave image", false);
        let nsm = SimNsm::new(SimPki::generate().unwrap(), pcrs.clone());
        let anchor = TrustAnchor::simulator(&nsm.pki().root_der()).unwrap();
        let doc = nsm.attestation(Some(b"transcript hash"), Some(b"client nonce"), Some(b"spki")).unwrap();
        let verified = verify(&doc, &anchor, &image_policy(&pcrs), Some(b"client nonce"), now_rule()).unwrap();
        assert_eq!(verified.module_id(), nsm.pki().module_id());
        assert!(verified.module_id().starts_with("sim-"));
        assert_eq!(verified.pcrs(), &pcrs);
        assert_eq!(verified.pcr(0), Some(&pcrs[&0][..]));
        assert_eq!(verified.user_data(), Some(&b"transcript hash"[..]));
        assert_eq!(verified.nonce(), Some(&b"client nonce"[..]));
        assert_eq!(verified.public_key(), Some(&b"spki"[..]));
        assert!(!verified.is_debug());
        assert_eq!(verified.document_sha384(), digest(&SHA384, &doc).as_ref());
        // Optional fields absent (CBOR null) are absent after verification.
        let bare = nsm.attestation(None, None, None).unwrap();
        let verified = verify(&bare, &anchor, &image_policy(&pcrs), None, now_rule()).unwrap();
        assert!(verified.user_data().is_none() && verified.nonce().is_none() && verified.public_key().is_none());
        // The same through the PEM anchor and the reusable verifier (twice: the second from its chain cache).
        let anchor = TrustAnchor::simulator_pem(&nsm.pki().root_pem()).unwrap();
        let verifier = Verifier::new(anchor);
        for _ in 0..2 {
            verifier.verify(&doc, &image_policy(&pcrs), Some(b"client nonce"), now_rule()).unwrap();
        }
    }

    #[test]
    fn documents_at_a_given_time_and_after_a_reload_pass() {
        let pki = SimPki::generate().unwrap();
        let reloaded = SimPki::from_pem_bundle(&pki.to_pem_bundle()).unwrap();
        let anchor = TrustAnchor::simulator(&pki.root_der()).unwrap();
        let req = request();
        for issuer in [&pki, &reloaded] {
            let doc = issuer.issue(&req, T0).unwrap();
            let verified = verify(&doc, &anchor, &image_policy(&req.pcrs), None, TimeRule::DocumentTime).unwrap();
            assert_eq!(verified.timestamp_ms(), T0);
            // At T0 the document is fresh; 3 hours later its leaf has expired.
            let fresh = TimeRule::Now { now_ms: T0 + 1_000, max_age_ms: 60_000, max_skew_ms: 1_000 };
            verify(&doc, &anchor, &image_policy(&req.pcrs), None, fresh).unwrap();
            let late = TimeRule::Now { now_ms: T0 + 3 * 3_600_000, max_age_ms: u64::MAX, max_skew_ms: 0 };
            assert_eq!(
                verify(&doc, &anchor, &image_policy(&req.pcrs), None, late).unwrap_err(),
                AttestError::CertificateExpired
            );
        }
    }

    #[test]
    fn sim_documents_fail_under_the_aws_root() {
        let pki = shared();
        let doc = pki.issue(&request(), now_ms()).unwrap();
        let aws = TrustAnchor::aws_nitro().unwrap();
        let err = verify(&doc, &aws, &PcrPolicy::new(), None, now_rule()).unwrap_err();
        assert!(
            matches!(err, AttestError::AnchorMismatch(_) | AttestError::UntrustedRoot | AttestError::Chain(_)),
            "{err:?}"
        );
        // Even with a module id that does not say "sim-", the chain does not lead to AWS.
        let disguised = pki
            .issue(
                &DocumentRequest { module_id: Some("i-0123456789abcdef0-enc0123456789abcdef".into()), ..request() },
                now_ms(),
            )
            .unwrap();
        let err = verify(&disguised, &aws, &PcrPolicy::new(), None, now_rule()).unwrap_err();
        assert!(matches!(err, AttestError::UntrustedRoot | AttestError::Chain(_)), "{err:?}");
        // And under the simulator root, a module id without "sim-" is refused.
        let sim = TrustAnchor::simulator(&pki.root_der()).unwrap();
        let err = verify(&disguised, &sim, &PcrPolicy::new(), None, now_rule()).unwrap_err();
        assert!(matches!(err, AttestError::AnchorMismatch(_)), "{err:?}");
    }

    #[test]
    fn sim_documents_fail_under_another_simulator_root() {
        let doc = shared().issue(&request(), now_ms()).unwrap();
        let other = TrustAnchor::simulator(&SimPki::generate().unwrap().root_der()).unwrap();
        let err = verify(&doc, &other, &PcrPolicy::new(), None, now_rule()).unwrap_err();
        assert!(matches!(err, AttestError::UntrustedRoot | AttestError::Chain(_)), "{err:?}");
        let own = TrustAnchor::simulator(&shared().root_der()).unwrap();
        assert!(verify(&doc, &own, &PcrPolicy::new(), None, now_rule()).is_ok());
    }

    #[test]
    fn debug_documents_need_allow_debug() {
        let pcrs = simulated_pcrs(b"the enclave image", true);
        let nsm = SimNsm::new(SimPki::generate().unwrap(), pcrs.clone());
        let anchor = TrustAnchor::simulator(&nsm.pki().root_der()).unwrap();
        let doc = nsm.attestation(None, None, None).unwrap();
        let err = verify(&doc, &anchor, &PcrPolicy::new(), None, now_rule()).unwrap_err();
        assert_eq!(err, AttestError::DebugMode);
        let verified = verify(&doc, &anchor, &PcrPolicy::new().allow_debug(), None, now_rule()).unwrap();
        assert!(verified.is_debug());
        assert_eq!(verified.pcr(0), Some(&[0u8; 48][..]));
        // A policy expecting the production image refuses the debug document either way.
        let production = simulated_pcrs(b"the enclave image", false);
        assert!(verify(&doc, &anchor, &image_policy(&production).allow_debug(), None, now_rule()).is_err());
    }

    #[test]
    fn the_verifier_checks_what_the_simulator_binds() {
        let pcrs = simulated_pcrs(b"the enclave image", false);
        let nsm = SimNsm::new(SimPki::generate().unwrap(), pcrs.clone());
        let anchor = TrustAnchor::simulator(&nsm.pki().root_der()).unwrap();
        let doc = nsm.attestation(None, Some(b"nonce A"), None).unwrap();
        assert_eq!(
            verify(&doc, &anchor, &image_policy(&pcrs), Some(b"nonce B"), now_rule()).unwrap_err(),
            AttestError::NonceMismatch
        );
        let other_image = simulated_pcrs(b"the enclave imagE", false);
        assert_eq!(
            verify(&doc, &anchor, &image_policy(&other_image), Some(b"nonce A"), now_rule()).unwrap_err(),
            AttestError::PcrMismatch(0)
        );
        assert_eq!(
            verify(&doc, &anchor, &PcrPolicy::new().expect(16, vec![0; 48]), None, now_rule()).unwrap_err(),
            AttestError::PcrMissing(16)
        );
        let mut tampered = doc.clone();
        let at = tampered.windows(7).position(|w| w == b"nonce A").unwrap();
        tampered[at + 6] = b'B';
        assert_eq!(
            verify(&tampered, &anchor, &image_policy(&pcrs), Some(b"nonce B"), now_rule()).unwrap_err(),
            AttestError::Signature
        );
    }
}
