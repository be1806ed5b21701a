//! The real Nitro attestation documents of tests/vectors, against the facts in vectors.json.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use aws_lc_rs::digest::{SHA256, SHA384, digest};
use kms_attestation::{AttestError, PcrPolicy, TimeRule, TrustAnchor, VerifiedAttestation, Verifier, verify};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const BLOCKY: &str = "blocky-nitrite-2024-09-07.cbor";
const BLOCKY_DEBUG: &str = "blocky-nitrite-debug-2024-09-07.cbor";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn facts() -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir().join("vectors.json")).unwrap()).unwrap()
}

fn vectors() -> Vec<Json> {
    facts()["vectors"].as_array().unwrap().clone()
}

fn facts_of(file: &str) -> Json {
    vectors().into_iter().find(|v| v["file"] == file).unwrap()
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).unwrap()
}

fn aws() -> TrustAnchor {
    TrustAnchor::aws_nitro().unwrap()
}

/// Accepts debug-mode enclaves: four of the five valid vectors are debug mode.
fn lenient() -> PcrPolicy {
    PcrPolicy::new().allow_debug()
}

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// "2024-09-07T14:37:36+00:00" → seconds since the epoch (UTC offsets only).
fn epoch_secs(rfc3339: &str) -> u64 {
    let s = rfc3339.strip_suffix("+00:00").unwrap();
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).unwrap()
}

/// (notBefore, notAfter) of the leaf, in seconds.
fn leaf_validity(facts: &Json) -> (u64, u64) {
    let leaf = facts["chain_validity_root_to_leaf"].as_array().unwrap().last().unwrap();
    (epoch_secs(leaf[0].as_str().unwrap()), epoch_secs(leaf[1].as_str().unwrap()))
}

fn pcr_hex(facts: &Json, index: u32) -> Vec<u8> {
    hex::decode(facts["nonzero_pcrs"][index.to_string()].as_str().unwrap()).unwrap()
}

/// Every fact vectors.json states about a verified document.
fn assert_matches_facts(v: &VerifiedAttestation, facts: &Json, doc: &[u8]) {
    let file = facts["file"].as_str().unwrap();
    assert_eq!(v.module_id(), facts["module_id"].as_str().unwrap(), "{file}");
    assert_eq!(v.timestamp_ms(), facts["timestamp_ms"].as_u64().unwrap(), "{file}");
    assert_eq!(v.pcrs().len(), usize::try_from(facts["pcr_count"].as_u64().unwrap()).unwrap(), "{file}");
    let nonzero = facts["nonzero_pcrs"].as_object().unwrap();
    for (index, value) in v.pcrs() {
        match nonzero.get(&index.to_string()) {
            Some(hex_value) => assert_eq!(hex::encode(value), hex_value.as_str().unwrap(), "{file} PCR{index}"),
            None => assert!(value.iter().all(|b| *b == 0), "{file} PCR{index} should be zero"),
        }
        assert_eq!(v.pcr(*index), Some(value.as_slice()));
    }
    for index in nonzero.keys() {
        assert!(v.pcr(index.parse().unwrap()).is_some(), "{file} lacks PCR{index}");
    }
    assert_eq!(v.is_debug(), facts["debug_mode_pcr0_2_all_zero"].as_bool().unwrap(), "{file}");
    for (name, field) in [("public_key", v.public_key()), ("user_data", v.user_data()), ("nonce", v.nonce())] {
        let expected = &facts[name];
        match field {
            // vectors.json writes an explicit CBOR null as the string "null".
            None => assert!(expected.is_null() || expected == "null", "{file}: {name} absent, expected {expected}"),
            Some(bytes) => {
                assert_eq!(bytes.len(), usize::try_from(expected["len"].as_u64().unwrap()).unwrap(), "{file} {name}");
                assert_eq!(hex::encode(digest(&SHA256, bytes)), expected["sha256"].as_str().unwrap(), "{file} {name}");
                assert!(hex::encode(bytes).starts_with(expected["prefix_hex"].as_str().unwrap()), "{file} {name}");
            }
        }
    }
    assert_eq!(v.document_sha384().as_slice(), digest(&SHA384, doc).as_ref(), "{file}");
}

#[test]
fn every_vector_gets_its_verdict_at_document_time() {
    let facts = vectors();
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".cbor"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    let anchor = aws();
    let (mut accepted, mut refused) = (0, 0);
    for file in &files {
        let f =
            facts.iter().find(|v| v["file"] == file.as_str()).unwrap_or_else(|| panic!("{file} not in vectors.json"));
        let doc = read(file);
        assert_eq!(hex::encode(digest(&SHA256, &doc)), f["sha256"].as_str().unwrap(), "{file} changed");
        let result = verify(&doc, &anchor, &lenient(), None, TimeRule::DocumentTime);
        if f["verifies_at_doc_timestamp"].as_bool().unwrap() {
            let v = result.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_matches_facts(&v, f, &doc);
            accepted += 1;
        } else {
            let err = result.unwrap_err();
            assert_eq!(err, AttestError::Signature, "{file}");
            assert_eq!(err.step(), "signature");
            refused += 1;
        }
    }
    assert_eq!((accepted, refused), (5, 1));
}

#[test]
fn every_valid_vector_has_expired_today() {
    let anchor = aws();
    let now = TimeRule::Now { now_ms: now_ms(), max_age_ms: u64::MAX, max_skew_ms: 60_000 };
    for f in vectors().iter().filter(|f| f["verifies_at_doc_timestamp"].as_bool().unwrap()) {
        let file = f["file"].as_str().unwrap();
        assert_eq!(verify(&read(file), &anchor, &lenient(), None, now), Err(AttestError::CertificateExpired), "{file}");
    }
}

#[test]
fn now_rule_accepts_a_fresh_document_inside_its_chain_validity() {
    let f = facts_of(BLOCKY);
    let ts = f["timestamp_ms"].as_u64().unwrap();
    let doc = read(BLOCKY);
    let rule = TimeRule::Now { now_ms: ts + 2_000, max_age_ms: 300_000, max_skew_ms: 60_000 };
    let v = verify(&doc, &aws(), &PcrPolicy::new(), None, rule).unwrap();
    assert_matches_facts(&v, &f, &doc);
}

#[test]
fn blocky_production_document_against_a_pcr_policy() {
    let f = facts_of(BLOCKY);
    let doc = read(BLOCKY);
    let policy = PcrPolicy::new().expect(0, pcr_hex(&f, 0)).expect(1, pcr_hex(&f, 1)).expect(2, pcr_hex(&f, 2));
    let v = verify(&doc, &aws(), &policy, None, TimeRule::DocumentTime).unwrap();
    assert!(!v.is_debug());
    // PCR3 is present and zero in this document: a policy may require that too.
    assert!(verify(&doc, &aws(), &policy.clone().expect(3, vec![0; 48]), None, TimeRule::DocumentTime).is_ok());

    for index in [0, 1, 2] {
        for position in [0, 24, 47] {
            let mut value = pcr_hex(&f, index);
            value[position] ^= 0x01;
            let changed = policy.clone().expect(index, value);
            let err = verify(&doc, &aws(), &changed, None, TimeRule::DocumentTime).unwrap_err();
            assert_eq!(err, AttestError::PcrMismatch(index));
            assert_eq!(err.step(), "pcr-policy");
        }
        // A prefix or an extension of the right value does not match either.
        let mut short = pcr_hex(&f, index);
        short.pop();
        let err = verify(&doc, &aws(), &policy.clone().expect(index, short), None, TimeRule::DocumentTime);
        assert_eq!(err, Err(AttestError::PcrMismatch(index)));
        let mut long = pcr_hex(&f, index);
        long.push(0);
        let err = verify(&doc, &aws(), &policy.clone().expect(index, long), None, TimeRule::DocumentTime);
        assert_eq!(err, Err(AttestError::PcrMismatch(index)));
    }
    for absent in [16, 20, 31, 32, u32::MAX] {
        let err = verify(&doc, &aws(), &policy.clone().expect(absent, vec![0; 48]), None, TimeRule::DocumentTime);
        assert_eq!(err, Err(AttestError::PcrMissing(absent)));
    }
}

#[test]
fn debug_mode_needs_allow_debug() {
    let doc = read(BLOCKY_DEBUG);
    let err = verify(&doc, &aws(), &PcrPolicy::new(), None, TimeRule::DocumentTime).unwrap_err();
    assert_eq!(err, AttestError::DebugMode);
    assert_eq!(err.step(), "debug");
    // Also when the policy pins a PCR the debug document does carry.
    let pcr4 = pcr_hex(&facts_of(BLOCKY_DEBUG), 4);
    let pinned = PcrPolicy::new().expect(4, pcr4.clone());
    assert_eq!(verify(&doc, &aws(), &pinned, None, TimeRule::DocumentTime), Err(AttestError::DebugMode));

    let v = verify(&doc, &aws(), &pinned.allow_debug(), None, TimeRule::DocumentTime).unwrap();
    assert!(v.is_debug());
    assert_eq!(v.pcr(0), Some(&[0u8; 48][..]));
    assert_eq!(v.pcr(4), Some(pcr4.as_slice()));
    // A production document is not debug under any policy.
    assert!(!verify(&read(BLOCKY), &aws(), &lenient(), None, TimeRule::DocumentTime).unwrap().is_debug());
}

#[test]
fn expected_nonces_are_accepted() {
    let blocky = read(BLOCKY);
    let v = verify(&blocky, &aws(), &PcrPolicy::new(), Some(&[1u8; 1024]), TimeRule::DocumentTime).unwrap();
    assert_eq!(v.nonce(), Some(&[1u8; 1024][..]));
    let eternis = read("eternis-2024-09-09.cbor");
    let mut nonce = [0u8; 20];
    nonce[19] = 1;
    assert!(verify(&eternis, &aws(), &lenient(), Some(&nonce), TimeRule::DocumentTime).is_ok());
}

#[test]
fn tagged_form_verifies_too() {
    let anchor = aws();
    for f in vectors() {
        let file = f["file"].as_str().unwrap();
        let untagged = read(file);
        assert_eq!(untagged[0], 0x84, "{file} is untagged");
        let mut tagged = vec![0xd2];
        tagged.extend_from_slice(&untagged);
        let result = verify(&tagged, &anchor, &lenient(), None, TimeRule::DocumentTime);
        if f["verifies_at_doc_timestamp"].as_bool().unwrap() {
            let v = result.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(v.module_id(), f["module_id"].as_str().unwrap());
            // The hash is of the bytes received, tag included.
            assert_eq!(v.document_sha384().as_slice(), digest(&SHA384, &tagged).as_ref());
        } else {
            assert_eq!(result, Err(AttestError::Signature), "{file}");
        }
    }
}

#[test]
fn cached_verifier_gives_the_same_results_twice() {
    let verifier = Verifier::new(aws());
    assert!(!verifier.anchor().is_simulator());
    for policy in [PcrPolicy::new(), lenient()] {
        for f in vectors() {
            let doc = read(f["file"].as_str().unwrap());
            let one_shot = verify(&doc, &aws(), &policy, None, TimeRule::DocumentTime);
            let first = verifier.verify(&doc, &policy, None, TimeRule::DocumentTime);
            let second = verifier.verify(&doc, &policy, None, TimeRule::DocumentTime);
            assert_eq!(first, one_shot, "{}", f["file"]);
            assert_eq!(second, one_shot, "{}", f["file"]);
        }
    }
}

#[test]
fn cached_chain_is_refused_outside_its_validity_interval() {
    let verifier = Verifier::new(aws());
    for f in vectors().iter().filter(|f| f["verifies_at_doc_timestamp"].as_bool().unwrap()) {
        let file = f["file"].as_str().unwrap();
        let doc = read(file);
        verifier.verify(&doc, &lenient(), None, TimeRule::DocumentTime).unwrap();
        let (not_before, not_after) = leaf_validity(f);
        let at = |secs: u64| TimeRule::Now { now_ms: secs * 1000, max_age_ms: u64::MAX, max_skew_ms: u64::MAX };
        // The leaf is the shortest-lived certificate of every chain: its bounds are the interval's.
        assert!(verifier.verify(&doc, &lenient(), None, at(not_after)).is_ok(), "{file}");
        assert_eq!(verifier.verify(&doc, &lenient(), None, at(not_after + 1)), Err(AttestError::CertificateExpired));
        // notBefore gets at most 60 s of leeway, whatever the skew allowed.
        assert!(verifier.verify(&doc, &lenient(), None, at(not_before - 60)).is_ok(), "{file}");
        assert_eq!(
            verifier.verify(&doc, &lenient(), None, at(not_before - 61)),
            Err(AttestError::CertificateNotYetValid),
            "{file}"
        );
        // A fresh verifier (no cache) agrees.
        assert_eq!(
            verify(&doc, &aws(), &lenient(), None, at(not_after + 1)),
            Err(AttestError::CertificateExpired),
            "{file}"
        );
    }
}

#[test]
fn one_verifier_serves_many_threads() {
    let verifier = std::sync::Arc::new(Verifier::new(aws()));
    let docs: Vec<(Vec<u8>, bool)> = vectors()
        .iter()
        .map(|f| (read(f["file"].as_str().unwrap()), f["verifies_at_doc_timestamp"].as_bool().unwrap()))
        .collect();
    let docs = std::sync::Arc::new(docs);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (verifier, docs) = (verifier.clone(), docs.clone());
            std::thread::spawn(move || {
                for round in 0..10 {
                    let (doc, valid) = &docs[(t + round) % docs.len()];
                    let result = verifier.verify(doc, &lenient(), None, TimeRule::DocumentTime);
                    assert_eq!(result.is_ok(), *valid);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}
