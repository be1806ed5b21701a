//! One or more refusals per verification step, built by altering real documents. Altered payloads cannot be
//! re-signed, so a change that the payload checks miss would surface as a Signature error: the tests of the earlier
//! steps check the exact error, which proves those checks run before the chain and the signature.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use ciborium::Value;
use kms_attestation::{
    AttestError, AttestationPayload, MAX_DOCUMENT_LEN, MAX_OPTIONAL_LEN, PcrPolicy, TimeRule, TrustAnchor, Verifier,
    verify,
};
use proptest::prelude::*;
use serde_bytes::ByteBuf;
use std::path::Path;
use std::sync::OnceLock;

const BLOCKY: &str = "blocky-nitrite-2024-09-07.cbor";
const BLOCKY_DEBUG: &str = "blocky-nitrite-debug-2024-09-07.cbor";
const ETERNIS: &str = "eternis-2024-09-09.cbor";
const UID2: &str = "uid2-core-2021-04-26.cbor";
const ORACLEKIT: &str = "oraclekit-2025-06-26-indefinite-map.cbor";

const BLOCKY_TS_MS: u64 = 1_725_719_859_545;
/// BLOCKY's leaf validity, seconds: 2024-09-07T14:37:36Z .. 2024-09-07T17:37:39Z.
const BLOCKY_LEAF: (u64, u64) = (1_725_719_856, 1_725_730_659);

fn read(file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(file)).unwrap()
}

fn aws() -> &'static TrustAnchor {
    static AWS: OnceLock<TrustAnchor> = OnceLock::new();
    AWS.get_or_init(|| TrustAnchor::aws_nitro().unwrap())
}

fn lenient() -> PcrPolicy {
    PcrPolicy::new().allow_debug()
}

/// Verifies at the document's time, under the AWS root, any PCRs, no nonce.
fn check(doc: &[u8]) -> Result<kms_attestation::VerifiedAttestation, AttestError> {
    verify(doc, aws(), &lenient(), None, TimeRule::DocumentTime)
}

fn check_err(doc: &[u8]) -> AttestError {
    check(doc).unwrap_err()
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

fn decode(bytes: &[u8]) -> Value {
    ciborium::de::from_reader(bytes).unwrap()
}

/// The four COSE_Sign1 elements of an (untagged) document.
fn elements(doc: &[u8]) -> Vec<Value> {
    match decode(doc) {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

fn with_elements(items: Vec<Value>) -> Vec<u8> {
    encode(&Value::Array(items))
}

fn bytes_of(value: &Value) -> Vec<u8> {
    value.as_bytes().unwrap().clone()
}

/// The document with its protected header bytes replaced.
fn with_protected(doc: &[u8], protected: &Value) -> Vec<u8> {
    let mut items = elements(doc);
    items[0] = Value::Bytes(encode(protected));
    with_elements(items)
}

fn payload_bytes(doc: &[u8]) -> Vec<u8> {
    bytes_of(&elements(doc)[2])
}

/// The document with `payload` (raw bytes) in place of its own; header and signature unchanged.
fn with_payload_bytes(doc: &[u8], payload: Vec<u8>) -> Vec<u8> {
    let mut items = elements(doc);
    items[2] = Value::Bytes(payload);
    with_elements(items)
}

fn payload(doc: &[u8]) -> AttestationPayload {
    ciborium::de::from_reader(payload_bytes(doc).as_slice()).unwrap()
}

fn with_payload(doc: &[u8], payload: &AttestationPayload) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(payload, &mut bytes).unwrap();
    with_payload_bytes(doc, bytes)
}

/// The payload as a list of (key, value) entries, to build what the struct cannot express.
fn payload_entries(doc: &[u8]) -> Vec<(Value, Value)> {
    match decode(&payload_bytes(doc)) {
        Value::Map(entries) => entries,
        other => panic!("not a map: {other:?}"),
    }
}

fn with_payload_entries(doc: &[u8], entries: Vec<(Value, Value)>) -> Vec<u8> {
    with_payload_bytes(doc, encode(&Value::Map(entries)))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// An alteration of a payload.
type Change = Box<dyn Fn(&mut AttestationPayload)>;

fn es384_header() -> Value {
    Value::Map(vec![(Value::from(1), Value::from(-35))])
}

// ---- size ----

#[test]
fn oversize_document_is_refused_before_decoding() {
    let mut doc = read(BLOCKY);
    doc.resize(MAX_DOCUMENT_LEN + 1, 0);
    let err = check_err(&doc);
    assert_eq!(err, AttestError::TooLarge(MAX_DOCUMENT_LEN + 1));
    assert_eq!(err.step(), "size");
    // At the limit the size step passes (and the trailing zeros are an envelope error).
    doc.truncate(MAX_DOCUMENT_LEN);
    assert_eq!(check_err(&doc).step(), "envelope");
}

// ---- envelope ----

#[test]
fn not_cbor_is_refused() {
    for junk in [&b""[..], b"\xff", b"hello", b"\x84", b"\x9f\x40"] {
        let err = check_err(junk);
        assert!(matches!(err, AttestError::Envelope(_)), "{junk:?}: {err:?}");
        assert_eq!(err.step(), "envelope");
    }
    // A huge announced length is an error, not an allocation.
    assert!(matches!(check_err(b"\x84\x5b\x7f\xff\xff\xff\xff\xff\xff\xff"), AttestError::Envelope(_)));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut doc = read(BLOCKY);
    doc.push(0x00);
    assert!(matches!(check_err(&doc), AttestError::Envelope(_)));
}

#[test]
fn only_tag_18_is_accepted() {
    let doc = read(BLOCKY);
    for (prefix, tag) in
        [(&[0xd3][..], 19), (&[0xd8, 0x62][..], 98), (&[0xc0][..], 0), (&[0xd9, 0xd9, 0xf7][..], 55799)]
    {
        let tagged = [prefix, &doc].concat();
        let err = check_err(&tagged);
        assert_eq!(err, AttestError::UnexpectedTag(tag));
        assert_eq!(err.step(), "envelope");
    }
    // Tag 18 twice is not a COSE_Sign1 either.
    assert!(matches!(check_err(&[&[0xd2, 0xd2][..], &doc].concat()), AttestError::Envelope(_)));
    // Tag 18 itself is fine.
    assert!(check(&[&[0xd2][..], &doc].concat()).is_ok());
}

#[test]
fn envelope_must_be_an_array_of_four() {
    let doc = read(BLOCKY);
    let items = elements(&doc);
    let three = with_elements(items[..3].to_vec());
    assert!(matches!(check_err(&three), AttestError::Envelope(m) if m.contains("3 elements")));
    let mut five = items.clone();
    five.push(Value::Null);
    assert!(matches!(check_err(&with_elements(five)), AttestError::Envelope(m) if m.contains("5 elements")));
    // A map, or the payload as a plain byte string, is not an envelope.
    assert!(matches!(check_err(&encode(&Value::Map(vec![]))), AttestError::Envelope(_)));
    assert!(matches!(check_err(&encode(&items[2])), AttestError::Envelope(_)));
    // Detached payload (nil).
    let mut detached = items.clone();
    detached[2] = Value::Null;
    assert!(matches!(check_err(&with_elements(detached)), AttestError::Envelope(m) if m.contains("detached")));
    // Wrong element types.
    let mut bad = items;
    bad[3] = Value::Text("sig".into());
    assert!(matches!(check_err(&with_elements(bad)), AttestError::Envelope(_)));
}

#[test]
fn signature_must_be_96_bytes() {
    let doc = read(BLOCKY);
    for len in [0, 95, 97, 104] {
        let mut items = elements(&doc);
        let mut sig = bytes_of(&items[3]);
        sig.resize(len, 0x01);
        items[3] = Value::Bytes(sig);
        let err = check_err(&with_elements(items));
        assert_eq!(err, AttestError::SignatureLength(len));
        assert_eq!(err.step(), "envelope");
    }
    // A DER-encoded ECDSA signature is not accepted either (different length, and not r||s).
}

// ---- algorithm (protected header) ----

#[test]
fn protected_header_must_be_es384() {
    let doc = read(BLOCKY);
    // The real header, re-encoded, is still accepted as a header (the signature is then over the same bytes).
    assert!(check(&with_protected(&doc, &es384_header())).is_ok());
    for header in [
        Value::Map(vec![(Value::from(1), Value::from(-7))]),  // ES256
        Value::Map(vec![(Value::from(1), Value::from(-36))]), // ES512
        Value::Map(vec![(Value::from(1), text("ES384"))]),
        Value::Map(vec![]), // alg missing
    ] {
        let err = check_err(&with_protected(&doc, &header));
        assert_eq!(err, AttestError::WrongAlgorithm, "{header:?}");
        assert_eq!(err.step(), "algorithm");
    }
    // An empty protected header (zero-length bstr): alg missing.
    let mut items = elements(&doc);
    items[0] = Value::Bytes(vec![]);
    assert_eq!(check_err(&with_elements(items)), AttestError::WrongAlgorithm);
}

#[test]
fn algorithm_is_never_taken_from_the_unprotected_header() {
    let doc = read(BLOCKY);
    let mut items = elements(&doc);
    items[0] = Value::Bytes(encode(&Value::Map(vec![])));
    items[1] = es384_header();
    assert_eq!(check_err(&with_elements(items)), AttestError::WrongAlgorithm);
    // A correct protected header with anything unprotected is refused too.
    let mut items = elements(&doc);
    items[1] = Value::Map(vec![(Value::from(4), Value::Bytes(b"kid".to_vec()))]);
    assert!(matches!(check_err(&with_elements(items)), AttestError::Envelope(m) if m.contains("unprotected")));
}

#[test]
fn crit_and_other_protected_parameters_are_refused() {
    let doc = read(BLOCKY);
    let crit = Value::Map(vec![
        (Value::from(1), Value::from(-35)),
        (Value::from(2), Value::Array(vec![Value::from(4)])),
        (Value::from(4), Value::Bytes(b"kid".to_vec())),
    ]);
    let err = check_err(&with_protected(&doc, &crit));
    assert!(matches!(&err, AttestError::ProtectedHeader(m) if m == "crit"), "{err:?}");
    assert_eq!(err.step(), "algorithm");
    for extra in [(Value::from(4), Value::Bytes(b"kid".to_vec())), (Value::from(99), Value::from(1))] {
        let header = Value::Map(vec![(Value::from(1), Value::from(-35)), extra]);
        assert!(matches!(check_err(&with_protected(&doc, &header)), AttestError::ProtectedHeader(_)));
    }
    // A duplicated alg label is malformed COSE.
    let dup = Value::Map(vec![(Value::from(1), Value::from(-35)), (Value::from(1), Value::from(-35))]);
    assert!(matches!(check_err(&with_protected(&doc, &dup)), AttestError::Envelope(_)));
}

// ---- payload ----

#[test]
fn flipped_payload_bytes_are_refused() {
    let doc = read(BLOCKY);
    let payload = payload_bytes(&doc);
    for position in [0, 1, 10, 100, 1000, 3000, payload.len() / 2, payload.len() - 1] {
        let mut altered = payload.clone();
        altered[position] ^= 0x01;
        // Depending on where the byte lands: the payload syntax, a certificate, the chain or the signature.
        let err = check_err(&with_payload_bytes(&doc, altered));
        assert!(["payload", "certificate", "chain", "signature"].contains(&err.step()), "{position}: {err:?}");
    }
}

#[test]
fn tampered_pcr_fails_the_signature() {
    let doc = read(BLOCKY);
    let mut p = payload(&doc);
    p.pcrs.get_mut(&0).unwrap()[0] ^= 0x01;
    assert_eq!(check_err(&with_payload(&doc, &p)), AttestError::Signature);
    // Re-encoding the unaltered payload reproduces the signed bytes exactly (so the error above is the PCR's).
    assert!(check(&with_payload(&doc, &payload(&doc))).is_ok());
}

#[test]
fn digest_must_be_sha384() {
    let doc = read(BLOCKY);
    for digest in ["SHA256", "SHA512", "sha384", "SHA384 ", ""] {
        let mut p = payload(&doc);
        p.digest = digest.into();
        let err = check_err(&with_payload(&doc, &p));
        assert_eq!(err, AttestError::Digest(digest.into()));
        assert_eq!(err.step(), "payload");
    }
}

#[test]
fn field_sizes_are_checked_before_the_chain_and_signature() {
    let doc = read(BLOCKY);
    let cases: Vec<(&str, usize, Change)> = vec![
        ("certificate", 1025, Box::new(|p| p.certificate = ByteBuf::from(vec![0x30; 1025]))),
        ("certificate", 0, Box::new(|p| p.certificate = ByteBuf::new())),
        ("user_data", 1025, Box::new(|p| p.user_data = Some(ByteBuf::from(vec![1; 1025])))),
        ("nonce", 1025, Box::new(|p| p.nonce = Some(ByteBuf::from(vec![1; 1025])))),
        ("public_key", 1025, Box::new(|p| p.public_key = Some(ByteBuf::from(vec![1; 1025])))),
        ("public_key", 0, Box::new(|p| p.public_key = Some(ByteBuf::new()))),
        ("cabundle", 0, Box::new(|p| p.cabundle.clear())),
        ("cabundle", 9, Box::new(|p| p.cabundle = vec![p.cabundle[1].clone(); 9])),
        ("cabundle entry", 0, Box::new(|p| p.cabundle[2] = ByteBuf::new())),
        ("cabundle entry", 1025, Box::new(|p| p.cabundle[1] = ByteBuf::from(vec![0x30; 1025]))),
        ("module_id", 0, Box::new(|p| p.module_id.clear())),
    ];
    for (field, len, change) in cases {
        let mut p = payload(&doc);
        change(&mut p);
        let err = check_err(&with_payload(&doc, &p));
        assert_eq!(err, AttestError::FieldSize { field, len }, "{field} {len}");
        assert_eq!(err.step(), "payload");
    }
    // The limits themselves are accepted (user_data and nonce may be empty; blocky's are 1024 bytes already).
    let mut p = payload(&doc);
    p.user_data = Some(ByteBuf::new());
    p.nonce = Some(ByteBuf::new());
    assert_eq!(p.public_key.as_ref().unwrap().len(), MAX_OPTIONAL_LEN);
    assert_eq!(check_err(&with_payload(&doc, &p)), AttestError::Signature);
}

#[test]
fn timestamp_and_pcrs_syntax() {
    let doc = read(BLOCKY);
    let mut p = payload(&doc);
    p.timestamp = 0;
    assert!(matches!(check_err(&with_payload(&doc, &p)), AttestError::Payload(m) if m.contains("timestamp")));

    let pcr_cases: Vec<Change> = vec![
        Box::new(|p| p.pcrs.clear()),
        Box::new(|p| {
            p.pcrs.insert(32, ByteBuf::from(vec![0; 48]));
        }),
        Box::new(|p| p.pcrs.get_mut(&3).unwrap().truncate(47)),
        Box::new(|p| p.pcrs.get_mut(&3).unwrap().extend_from_slice(&[0; 52])),
        Box::new(|p| {
            for i in 16..33 {
                p.pcrs.insert(i, ByteBuf::from(vec![0; 48]));
            }
        }),
    ];
    for change in pcr_cases {
        let mut p = payload(&doc);
        change(&mut p);
        let err = check_err(&with_payload(&doc, &p));
        assert!(matches!(err, AttestError::Pcr(_)), "{err:?}");
        assert_eq!(err.step(), "payload");
    }
    // 32 and 64-byte PCRs, and all 32 indexes, are syntactically fine.
    let mut p = payload(&doc);
    p.pcrs.insert(5, ByteBuf::from(vec![0; 32]));
    p.pcrs.insert(6, ByteBuf::from(vec![0; 64]));
    for i in 16..32 {
        p.pcrs.insert(i, ByteBuf::from(vec![0; 48]));
    }
    assert_eq!(check_err(&with_payload(&doc, &p)), AttestError::Signature);
}

#[test]
fn duplicate_payload_keys_are_refused() {
    let doc = read(BLOCKY);
    let entries = payload_entries(&doc);
    // A second "nonce" (the replay-relevant field) after the first.
    let mut dup = entries.clone();
    dup.push((text("nonce"), Value::Bytes(vec![2; 16])));
    let err = check_err(&with_payload_entries(&doc, dup));
    assert!(matches!(&err, AttestError::Payload(m) if m.contains("duplicate")), "{err:?}");
    // Every field, duplicated with its own value.
    for i in 0..entries.len() {
        let mut dup = entries.clone();
        dup.insert(i, entries[i].clone());
        assert!(matches!(check_err(&with_payload_entries(&doc, dup)), AttestError::Payload(_)));
    }
    // A duplicated unknown key.
    let mut dup = entries.clone();
    dup.push((text("future"), Value::from(1)));
    dup.push((text("future"), Value::from(2)));
    assert!(matches!(check_err(&with_payload_entries(&doc, dup)), AttestError::Payload(_)));
    // A duplicated PCR index.
    let mut dup = entries;
    let (_, pcrs) = dup.iter_mut().find(|(k, _)| *k == text("pcrs")).unwrap();
    let Value::Map(pcr_entries) = pcrs else { panic!() };
    pcr_entries.push((Value::from(0), Value::Bytes(vec![0; 48])));
    let err = check_err(&with_payload_entries(&doc, dup));
    assert!(matches!(&err, AttestError::Pcr(m) if m.contains("duplicate")), "{err:?}");
}

#[test]
fn unknown_keys_are_ignored_and_indefinite_maps_accepted() {
    let doc = read(BLOCKY);
    // An extra key passes the payload checks (and then fails only the signature, as any change would).
    let mut extra = payload_entries(&doc);
    extra.push((text("zz_future_field"), Value::Array(vec![Value::from(1)])));
    assert_eq!(check_err(&with_payload_entries(&doc, extra)), AttestError::Signature);
    // The same payload in indefinite-length form (0xbf … 0xff) passes the payload checks too.
    let definite = payload_bytes(&doc);
    assert_eq!(definite[0], 0xa9);
    let mut indefinite = vec![0xbf];
    indefinite.extend_from_slice(&definite[1..]);
    indefinite.push(0xff);
    assert_eq!(check_err(&with_payload_bytes(&doc, indefinite)), AttestError::Signature);
    // And a real indefinite-length document verifies.
    assert_eq!(payload_bytes(&read(ORACLEKIT))[0], 0xbf);
    assert!(check(&read(ORACLEKIT)).is_ok());
}

#[test]
fn payload_types_are_strict() {
    let doc = read(BLOCKY);
    let entries = payload_entries(&doc);
    let replace = |key: &str, value: Value| {
        let mut e = entries.clone();
        e.iter_mut().find(|(k, _)| *k == text(key)).unwrap().1 = value;
        check_err(&with_payload_entries(&doc, e))
    };
    // module_id as a byte string, timestamp as text, certificate as text, a cabundle entry as text.
    assert!(matches!(replace("module_id", Value::Bytes(b"i-0a22e5c5f24d22174".to_vec())), AttestError::Payload(_)));
    assert!(matches!(replace("timestamp", text("1725719859545")), AttestError::Payload(_)));
    assert!(matches!(replace("timestamp", Value::from(-1)), AttestError::Payload(_)));
    assert!(matches!(replace("certificate", text("x")), AttestError::Payload(_)));
    assert!(matches!(replace("cabundle", Value::Array(vec![text("x")])), AttestError::Payload(_)));
    assert!(matches!(replace("pcrs", Value::Array(vec![])), AttestError::Payload(_)));
    assert!(matches!(
        replace("pcrs", Value::Map(vec![(text("0"), Value::Bytes(vec![0; 48]))])),
        AttestError::Payload(_)
    ));
    assert!(matches!(replace("nonce", text("x")), AttestError::Payload(_)));
    // Mandatory fields: null or absent.
    assert_eq!(replace("certificate", Value::Null), AttestError::MissingField("certificate"));
    for field in ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"] {
        let mut e = entries.clone();
        e.retain(|(k, _)| *k != text(field));
        let err = check_err(&with_payload_entries(&doc, e));
        assert_eq!(err, AttestError::MissingField(field));
        assert_eq!(err.step(), "payload");
    }
    // Integer keys are refused: serde's derive would read key 8 as the ninth field (nonce), a parser differential.
    let mut e = entries.clone();
    e.retain(|(k, _)| *k != text("nonce"));
    e.push((Value::from(8), Value::Bytes(vec![2; 16])));
    assert!(matches!(check_err(&with_payload_entries(&doc, e)), AttestError::Payload(m) if m.contains("text")));
    let mut e = entries.clone();
    e.push((Value::from(9), Value::from(0)));
    assert!(matches!(check_err(&with_payload_entries(&doc, e)), AttestError::Payload(m) if m.contains("text")));
    // Not a map, trailing bytes.
    assert!(matches!(check_err(&with_payload_bytes(&doc, encode(&Value::Array(vec![])))), AttestError::Payload(_)));
    let mut trailing = payload_bytes(&doc);
    trailing.push(0);
    assert!(matches!(check_err(&with_payload_bytes(&doc, trailing)), AttestError::Payload(_)));
}

// ---- chain ----

#[test]
fn replaced_root_in_cabundle_is_untrusted() {
    let doc = read(BLOCKY);
    let original = payload(&doc);
    for replacement in
        [original.cabundle[1].clone(), original.certificate.clone(), payload(&read(UID2)).cabundle[1].clone()]
    {
        let mut p = original.clone();
        p.cabundle[0] = replacement;
        let err = check_err(&with_payload(&doc, &p));
        assert_eq!(err, AttestError::UntrustedRoot);
        assert_eq!(err.step(), "chain");
    }
    // The root removed altogether: the regional certificate is now first.
    let mut p = original;
    p.cabundle.remove(0);
    assert_eq!(check_err(&with_payload(&doc, &p)), AttestError::UntrustedRoot);
}

#[test]
fn removed_replaced_or_extra_intermediates_break_the_chain() {
    let doc = read(BLOCKY);
    let original = payload(&doc);
    let others: Vec<AttestationPayload> = [ETERNIS, UID2, ORACLEKIT].iter().map(|f| payload(&read(f))).collect();
    let other = &others[1];
    let mut cases = Vec::new();
    for i in 1..4 {
        let mut removed = original.clone();
        removed.cabundle.remove(i);
        cases.push(removed);
        // Replaced by the same-level certificate of other documents (eternis shares blocky's regional CA).
        for other in &others {
            let mut replaced = original.clone();
            replaced.cabundle[i] = other.cabundle[i].clone();
            if replaced != original {
                cases.push(replaced);
            }
        }
    }
    // Out of order.
    let mut swapped = original.clone();
    swapped.cabundle.swap(1, 3);
    cases.push(swapped);
    // An unused extra certificate: the bundle must be exactly the path.
    let mut extra = original.clone();
    extra.cabundle.push(other.cabundle[3].clone());
    cases.push(extra);
    // The same intermediate twice.
    let mut twice = original.clone();
    twice.cabundle.push(original.cabundle[3].clone());
    cases.push(twice);
    assert!(cases.len() >= 12);
    for p in cases {
        assert_ne!(p, original);
        let err = check_err(&with_payload(&doc, &p));
        assert!(matches!(err, AttestError::Chain(_)), "{err:?}");
        assert_eq!(err.step(), "chain");
    }
}

#[test]
fn an_intermediate_as_the_leaf_is_refused() {
    let doc = read(BLOCKY);
    let original = payload(&doc);
    // The instance CA in the certificate field (its issuer chain is still complete).
    let mut p = original.clone();
    p.certificate = p.cabundle[3].clone();
    p.cabundle.truncate(3);
    assert!(matches!(check_err(&with_payload(&doc, &p)), AttestError::Chain(_)));
    // With the bundle untouched, too.
    let mut p = original.clone();
    p.certificate = p.cabundle[3].clone();
    assert!(matches!(check_err(&with_payload(&doc, &p)), AttestError::Chain(_)));
    // Another document's leaf (valid chain, other key): the signature fails.
    let mut p = original.clone();
    let other = payload(&read(BLOCKY_DEBUG));
    p.certificate = other.certificate;
    p.cabundle = other.cabundle;
    p.timestamp = other.timestamp; // inside that leaf's validity
    assert_eq!(check_err(&with_payload(&doc, &p)), AttestError::Signature);
    // Not DER at all.
    let mut p = original;
    p.certificate = ByteBuf::from(b"not a certificate".to_vec());
    let err = check_err(&with_payload(&doc, &p));
    assert!(matches!(err, AttestError::Certificate(_)), "{err:?}");
    assert_eq!(err.step(), "certificate");
}

#[cfg(feature = "simulator")]
mod other_roots {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384};

    fn now_ms() -> u64 {
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
    }

    fn fresh_root() -> TrustAnchor {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = params.self_signed(&key).unwrap();
        TrustAnchor::simulator(root.der()).unwrap()
    }

    #[test]
    fn a_nitro_document_is_refused_under_another_root() {
        let anchor = fresh_root();
        let doc = read(BLOCKY);
        let err = verify(&doc, &anchor, &lenient(), None, TimeRule::DocumentTime).unwrap_err();
        assert!(matches!(err, AttestError::AnchorMismatch(_)), "{err:?}");
        assert_eq!(err.step(), "anchor");
        // Past the module_id cross-check, the chain does not lead to that root.
        let mut p = payload(&doc);
        p.module_id = format!("sim-{}", p.module_id);
        let err = verify(&with_payload(&doc, &p), &anchor, &lenient(), None, TimeRule::DocumentTime).unwrap_err();
        assert_eq!(err, AttestError::UntrustedRoot);
        // Even when the document claims that root as its cabundle[0].
        p.cabundle[0] = ByteBuf::from(anchor.root_der().to_vec());
        let err = verify(&with_payload(&doc, &p), &anchor, &lenient(), None, TimeRule::DocumentTime).unwrap_err();
        assert!(matches!(err, AttestError::Chain(_)), "{err:?}");
    }

    #[test]
    fn simulator_documents_only_under_their_own_root() {
        use kms_attestation::{DocumentRequest, SimPki};
        let pki = SimPki::generate().unwrap();
        let sim_anchor = TrustAnchor::simulator(&pki.root_der()).unwrap();
        let mut req = DocumentRequest::default();
        req.pcrs.insert(0, vec![7; 48]);
        req.nonce = Some(vec![9; 32]);
        let doc = pki.issue(&req, now_ms()).unwrap();
        let v =
            verify(&doc, &sim_anchor, &PcrPolicy::new().expect(0, vec![7; 48]), Some(&[9; 32]), TimeRule::DocumentTime)
                .unwrap();
        assert!(v.module_id().starts_with("sim-"));
        // Under the AWS root: refused on the module id, before anything else.
        let err = verify(&doc, aws(), &lenient(), None, TimeRule::DocumentTime).unwrap_err();
        assert!(matches!(err, AttestError::AnchorMismatch(_)), "{err:?}");
        // Under another simulator root: refused at the chain.
        let err = verify(&doc, &fresh_root(), &lenient(), None, TimeRule::DocumentTime).unwrap_err();
        assert_eq!(err, AttestError::UntrustedRoot);
        // A simulator document that claims a Nitro module id: refused under the simulator root.
        req.module_id = Some("i-0a22e5c5f24d22174-enc0191cceb4289903f".into());
        let doc = pki.issue(&req, now_ms()).unwrap();
        let err = verify(&doc, &sim_anchor, &lenient(), None, TimeRule::DocumentTime).unwrap_err();
        assert!(matches!(err, AttestError::AnchorMismatch(_)), "{err:?}");
    }
}

/// Debug mode is PCR0 all zero, whatever the other PCRs (simulated documents, whose PCRs the test chooses).
#[cfg(feature = "simulator")]
#[test]
fn debug_mode_is_pcr0_all_zero() {
    use kms_attestation::{DocumentRequest, SimPki};
    let pki = SimPki::generate().unwrap();
    let anchor = TrustAnchor::simulator(&pki.root_der()).unwrap();
    let now =
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let issue = |pcrs: &[(u32, u8)]| {
        let req = DocumentRequest {
            pcrs: pcrs.iter().map(|(i, b)| (*i, vec![*b; 48])).collect(),
            ..DocumentRequest::default()
        };
        pki.issue(&req, now).unwrap()
    };
    let check = |doc: &[u8], policy: &PcrPolicy| verify(doc, &anchor, policy, None, TimeRule::DocumentTime);
    let debug = issue(&[(0, 0), (1, 7), (2, 7)]);
    assert_eq!(check(&debug, &PcrPolicy::new()), Err(AttestError::DebugMode));
    assert!(check(&debug, &lenient()).unwrap().is_debug());
    let production = issue(&[(0, 7), (1, 0), (2, 0)]);
    assert!(!check(&production, &PcrPolicy::new()).unwrap().is_debug());
}

// ---- validity ----

#[test]
fn expired_and_not_yet_valid_chains() {
    let doc = read(BLOCKY);
    let at = |secs: u64| TimeRule::Now { now_ms: secs * 1000, max_age_ms: u64::MAX, max_skew_ms: u64::MAX };
    for verifier_time in [BLOCKY_LEAF.0 - 3600, BLOCKY_LEAF.0 - 61, 1_500_000_000 /* before the root */] {
        let err = verify(&doc, aws(), &PcrPolicy::new(), None, at(verifier_time)).unwrap_err();
        assert_eq!(err, AttestError::CertificateNotYetValid);
        assert_eq!(err.step(), "validity");
    }
    for verifier_time in [BLOCKY_LEAF.1 + 1, BLOCKY_LEAF.1 + 86_400 * 30, 2_600_000_000 /* after the root */] {
        let err = verify(&doc, aws(), &PcrPolicy::new(), None, at(verifier_time)).unwrap_err();
        assert_eq!(err, AttestError::CertificateExpired);
    }
    // The same through a Verifier whose cache holds the chain.
    let verifier = Verifier::new(aws().clone());
    verifier.verify(&doc, &PcrPolicy::new(), None, TimeRule::DocumentTime).unwrap();
    assert_eq!(
        verifier.verify(&doc, &PcrPolicy::new(), None, at(BLOCKY_LEAF.1 + 1)),
        Err(AttestError::CertificateExpired)
    );
    assert_eq!(
        verifier.verify(&doc, &PcrPolicy::new(), None, at(BLOCKY_LEAF.0 - 3600)),
        Err(AttestError::CertificateNotYetValid)
    );
}

// ---- signature ----

#[test]
fn signature_alterations_are_refused() {
    let doc = read(BLOCKY);
    for position in [0, 47, 48, 95] {
        let mut items = elements(&doc);
        let mut sig = bytes_of(&items[3]);
        sig[position] ^= 0x80;
        items[3] = Value::Bytes(sig);
        let err = check_err(&with_elements(items));
        assert_eq!(err, AttestError::Signature);
        assert_eq!(err.step(), "signature");
    }
    // Another document's signature.
    let mut items = elements(&doc);
    items[3] = elements(&read(BLOCKY_DEBUG))[3].clone();
    assert_eq!(check_err(&with_elements(items)), AttestError::Signature);
    // r and s swapped, all zero, all 0xff.
    for sig in [
        [&bytes_of(&elements(&doc)[3])[48..], &bytes_of(&elements(&doc)[3])[..48]].concat(),
        vec![0; 96],
        vec![0xff; 96],
    ] {
        let mut items = elements(&doc);
        items[3] = Value::Bytes(sig);
        assert_eq!(check_err(&with_elements(items)), AttestError::Signature);
    }
}

// ---- freshness ----

#[test]
fn stale_and_future_documents() {
    let doc = read(BLOCKY);
    let rule = |now_ms, max_age_ms, max_skew_ms| TimeRule::Now { now_ms, max_age_ms, max_skew_ms };
    // Ten minutes old, five allowed (the chain is still valid then).
    let err = verify(&doc, aws(), &PcrPolicy::new(), None, rule(BLOCKY_TS_MS + 600_000, 300_000, 60_000)).unwrap_err();
    assert_eq!(err, AttestError::Stale { age_ms: 600_000 });
    assert_eq!(err.step(), "freshness");
    assert!(verify(&doc, aws(), &PcrPolicy::new(), None, rule(BLOCKY_TS_MS + 300_000, 300_000, 60_000)).is_ok());
    // Three seconds ahead of a verifier allowing one second of skew (the leaf is already valid at that time).
    let err = verify(&doc, aws(), &PcrPolicy::new(), None, rule(BLOCKY_TS_MS - 3_000, 300_000, 1_000)).unwrap_err();
    assert_eq!(err, AttestError::FromTheFuture { ahead_ms: 3_000 });
    assert_eq!(err.step(), "freshness");
    assert!(verify(&doc, aws(), &PcrPolicy::new(), None, rule(BLOCKY_TS_MS - 3_000, 300_000, 3_000)).is_ok());
}

// ---- nonce ----

#[test]
fn nonce_missing_and_mismatch() {
    // uid2's nonce is null.
    let err = verify(&read(UID2), aws(), &lenient(), Some(b"challenge"), TimeRule::DocumentTime).unwrap_err();
    assert_eq!(err, AttestError::NonceMissing);
    assert_eq!(err.step(), "nonce");
    // Without an expected nonce the same document is fine.
    assert!(verify(&read(UID2), aws(), &lenient(), None, TimeRule::DocumentTime).is_ok());

    // blocky's nonce is 1024 bytes of 0x01: a replay against another challenge fails.
    let doc = read(BLOCKY);
    let mut near = vec![1u8; 1024];
    near[1023] = 2;
    for expected in [vec![2u8; 1024], vec![1u8; 1023], vec![1u8; 1025], near, vec![]] {
        let err = verify(&doc, aws(), &PcrPolicy::new(), Some(&expected), TimeRule::DocumentTime).unwrap_err();
        assert_eq!(err, AttestError::NonceMismatch, "{} bytes", expected.len());
    }
    // The nonce is checked after the signature: a forged document never reports a nonce verdict.
    let mut p = payload(&doc);
    p.nonce = Some(ByteBuf::from(b"challenge".to_vec()));
    let forged = with_payload(&doc, &p);
    assert_eq!(
        verify(&forged, aws(), &PcrPolicy::new(), Some(b"challenge"), TimeRule::DocumentTime),
        Err(AttestError::Signature)
    );
}

// ---- debug ----

#[test]
fn debug_mode_is_refused_by_default() {
    for file in [BLOCKY_DEBUG, ETERNIS, UID2, ORACLEKIT] {
        let err = verify(&read(file), aws(), &PcrPolicy::new(), None, TimeRule::DocumentTime).unwrap_err();
        assert_eq!(err, AttestError::DebugMode, "{file}");
        assert_eq!(err.step(), "debug");
    }
}

// ---- random mutations ----

fn valid_docs() -> &'static [Vec<u8>] {
    static DOCS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    DOCS.get_or_init(|| [BLOCKY, UID2, ORACLEKIT].iter().map(|f| read(f)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_documents_never_verify(
        which in 0usize..3,
        mutations in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..=8),
    ) {
        let original = &valid_docs()[which];
        let mut doc = original.clone();
        for (index, xor) in &mutations {
            let i = index.index(doc.len());
            doc[i] ^= xor;
        }
        prop_assume!(doc != *original);
        prop_assert!(check(&doc).is_err());
    }

    #[test]
    fn truncated_documents_never_verify(which in 0usize..3, cut in any::<prop::sample::Index>()) {
        let original = &valid_docs()[which];
        let len = cut.index(original.len()); // 0 ..= len - 1
        prop_assert!(check(&original[..len]).is_err());
    }
}
