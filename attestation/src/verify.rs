//! Verification of Nitro attestation documents.
//!
//! Order of the checks (each failure names its step, see [`AttestError::step`]):
//!
//! 1. size: at most [`MAX_DOCUMENT_LEN`] bytes, before any decoding;
//! 2. envelope: one CBOR item and nothing after it; untagged or tag 18 (any other tag refused); an array of exactly 4;
//!    protected header exactly `{1: -35}` (ES384; `crit` and any other parameter refused); unprotected header empty
//!    (the algorithm is never taken from it); embedded payload; signature exactly 96 bytes;
//! 3. payload: a CBOR map with text keys, no duplicate keys (top level and `pcrs`), the expected CBOR type for every
//!    known field, unknown keys ignored, optional fields absent or `null`; decoded with ciborium into
//!    [`AttestationPayload`]; then the syntactic limits (module_id, digest, timestamp, pcrs, certificate, cabundle,
//!    optional fields);
//! 4. anchor kind: `sim-` module ids only under a simulator anchor, and only they;
//! 5. chain (skipped when a [`Verifier`] has already verified this exact chain and the check time lies inside the
//!    cached validity interval): `cabundle[0]` byte-identical to the anchor; every certificate DER X.509; issuers are
//!    CAs with keyCertSign and their pathLenConstraint holds; the leaf is not a CA, has digitalSignature and an
//!    id-ecPublicKey secp384r1 key; rustls-webpki path validation with ECDSA_P384_SHA384 only, client-auth EKU if
//!    present, no CRLs; the path webpki built is exactly `cabundle[1..]` then `certificate`; the check time lies
//!    inside every certificate's validity period (root included);
//! 6. signature: ES384 over the COSE Sig_structure built from the received protected bytes and payload, empty external
//!    AAD, raw r||s (high-S accepted);
//! 7. freshness ([`TimeRule::Now`] only): age and clock skew;
//! 8. nonce: present and equal (constant time) when one is expected;
//! 9. debug mode (PCR0 all zero) unless allowed, then every PCR of the [`PcrPolicy`] present and equal.
//!
//! Check time: [`TimeRule::DocumentTime`] checks the chain at `timestamp / 1000` (seconds, rounded down), with no
//! leeway. [`TimeRule::Now`] checks it at `now_ms / 1000` and tolerates a not-yet-valid certificate by at most
//! `min(max_skew_ms, 60 s)` (a verifier whose clock is slightly behind the NSM's would otherwise refuse a brand-new
//! leaf); notAfter gets no leeway. webpki takes a single time for the whole path and has no leeway, so it is given
//! the check time clamped into the path's validity interval (latest notBefore, earliest notAfter): that is the check
//! time itself for every document that can pass, except inside the leeway. The verifier then checks the check time
//! against that interval itself, root included (webpki does not check the anchor's validity); doing it after webpki
//! means a foreign certificate is reported as a chain error rather than as expired.

use crate::anchor::TrustAnchor;
use crate::document::{AttestationPayload, MAX_CABUNDLE, MAX_CERT_LEN, MAX_DOCUMENT_LEN, MAX_OPTIONAL_LEN, PCR_COUNT};
use crate::error::{AttestError, excerpt};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED, ParsedPublicKey};
use ciborium::Value;
use coset::{AsCborValue, CoseSign1, iana};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::oid::db::rfc5912::{ID_EC_PUBLIC_KEY, SECP_384_R_1};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

/// COSE_Sign1's CBOR tag.
const COSE_SIGN1_TAG: u64 = 18;
/// Raw P-384 r||s.
const SIGNATURE_LEN: usize = 96;
/// Uncompressed SEC1 P-384 point: 0x04 ‖ x ‖ y.
const P384_POINT_LEN: usize = 97;
/// The most leeway on notBefore under [`TimeRule::Now`].
const MAX_NOT_BEFORE_LEEWAY_MS: u64 = 60_000;
/// Most chains a [`Verifier`] remembers.
const CHAIN_CACHE_CAPACITY: usize = 1024;

/// The digest every Nitro document names.
const DIGEST_SHA384: &str = "SHA384";
/// The payload fields that must be present and not null.
const MANDATORY_FIELDS: [&str; 6] = ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"];

/// When the certificate chain is checked, and whether the document must be fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeRule {
    /// Chain validity checked at the document's own timestamp; no age check (audit, replayed records, the vectors).
    DocumentTime,
    /// Chain validity checked at `now_ms`; and freshness: now - timestamp <= max_age_ms,
    /// timestamp <= now + max_skew_ms. A certificate not yet valid by at most `min(max_skew_ms, 60 s)` is tolerated.
    Now {
        /// The verifier's clock, milliseconds since the epoch.
        now_ms: u64,
        /// Oldest acceptable document.
        max_age_ms: u64,
        /// How far the document's timestamp may be ahead of `now_ms`.
        max_skew_ms: u64,
    },
}

/// Which PCR values a document must carry, and whether debug-mode enclaves are acceptable.
///
/// Every listed PCR must be present and equal; PCRs not listed are not checked. A document whose PCR0 is all zero
/// (debug mode, whose PCRs carry no measurement) is refused unless `allow_debug`.
#[derive(Clone, Debug, Default)]
pub struct PcrPolicy {
    /// PCR index → required value.
    pub expected: BTreeMap<u32, Vec<u8>>,
    /// Accept debug-mode enclaves (PCR0 all zero). Never in production.
    pub allow_debug: bool,
}

impl PcrPolicy {
    /// A policy that requires no PCR value and refuses debug mode.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires PCR `index` to be present and equal to `value`.
    #[must_use]
    pub fn expect(mut self, index: u32, value: Vec<u8>) -> Self {
        self.expected.insert(index, value);
        self
    }

    /// Accepts debug-mode enclaves (PCR0 all zero).
    #[must_use]
    pub fn allow_debug(mut self) -> Self {
        self.allow_debug = true;
        self
    }
}

/// An attestation document that passed every check of [`verify`]. Only [`verify`] and [`Verifier::verify`] make one.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedAttestation {
    module_id: String,
    timestamp_ms: u64,
    pcrs: BTreeMap<u32, Vec<u8>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    document_sha384: [u8; 48],
    debug: bool,
}

impl VerifiedAttestation {
    /// The issuing NSM's id.
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// The document's timestamp, milliseconds since the epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// Every PCR of the document.
    pub fn pcrs(&self) -> &BTreeMap<u32, Vec<u8>> {
        &self.pcrs
    }

    /// PCR `i`, if present.
    pub fn pcr(&self, i: u32) -> Option<&[u8]> {
        self.pcrs.get(&i).map(Vec::as_slice)
    }

    /// The enclave-supplied public key, if any.
    pub fn public_key(&self) -> Option<&[u8]> {
        self.public_key.as_deref()
    }

    /// The enclave-supplied user data, if any.
    pub fn user_data(&self) -> Option<&[u8]> {
        self.user_data.as_deref()
    }

    /// The nonce, if any.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    /// SHA-384 of the whole document as received (for audit logs and transcript binding).
    pub fn document_sha384(&self) -> &[u8; 48] {
        &self.document_sha384
    }

    /// Whether the enclave runs in debug mode (PCR0 all zero); only possible when the policy allowed it.
    pub fn is_debug(&self) -> bool {
        self.debug
    }
}

impl fmt::Debug for VerifiedAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedAttestation")
            .field("module_id", &self.module_id)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("pcr0", &self.pcr(0).map(hex::encode))
            .field("debug", &self.debug)
            .field("document_sha384", &hex::encode(self.document_sha384))
            .finish_non_exhaustive()
    }
}

/// One-shot verification of an attestation document against `anchor` (see the module documentation for the checks
/// and their order). `expected_nonce`: `Some(n)` requires the document's nonce to equal `n` (constant-time compare);
/// an empty `n` matches nothing.
pub fn verify(
    doc: &[u8],
    anchor: &TrustAnchor,
    policy: &PcrPolicy,
    expected_nonce: Option<&[u8]>,
    time: TimeRule,
) -> Result<VerifiedAttestation, AttestError> {
    verify_document(doc, anchor, policy, expected_nonce, time, None)
}

/// A reusable verifier with a bounded cache of certificate chains it has already verified.
///
/// A chain is cached under SHA-256 of `certificate` and every `cabundle` entry (each length-prefixed), with the
/// intersection of the validity periods of its path (root included) and the leaf's public key. A cached chain is
/// reused only when the check time lies inside that interval; everything else (envelope, payload, COSE signature,
/// freshness, nonce, PCRs) is checked on every call. The result is the same as [`verify`]'s.
pub struct Verifier {
    anchor: TrustAnchor,
    cache: ChainCache,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("anchor", &self.anchor).finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for documents chaining to `anchor`.
    pub fn new(anchor: TrustAnchor) -> Self {
        Verifier { anchor, cache: ChainCache::new(CHAIN_CACHE_CAPACITY) }
    }

    /// The trust anchor.
    pub fn anchor(&self) -> &TrustAnchor {
        &self.anchor
    }

    /// Verifies `doc`; same checks and results as [`verify`].
    pub fn verify(
        &self,
        doc: &[u8],
        policy: &PcrPolicy,
        expected_nonce: Option<&[u8]>,
        time: TimeRule,
    ) -> Result<VerifiedAttestation, AttestError> {
        verify_document(doc, &self.anchor, policy, expected_nonce, time, Some(&self.cache))
    }
}

fn verify_document(
    doc: &[u8],
    anchor: &TrustAnchor,
    policy: &PcrPolicy,
    expected_nonce: Option<&[u8]>,
    time: TimeRule,
    cache: Option<&ChainCache>,
) -> Result<VerifiedAttestation, AttestError> {
    // 1. Size, before decoding anything.
    if doc.len() > MAX_DOCUMENT_LEN {
        return Err(AttestError::TooLarge(doc.len()));
    }

    // 2. Envelope and protected header.
    let sign1 = decode_envelope(doc)?;
    check_headers(&sign1)?;
    if sign1.signature.len() != SIGNATURE_LEN {
        return Err(AttestError::SignatureLength(sign1.signature.len()));
    }
    let payload_bytes = sign1.payload.as_deref().ok_or_else(|| AttestError::Envelope("detached payload".into()))?;

    // 3. Payload: decode, then syntax.
    let payload = decode_payload(payload_bytes)?;
    check_syntax(&payload)?;

    // 4. Simulator documents only under a simulator anchor, and only they.
    check_anchor_kind(anchor, &payload.module_id)?;

    // 5. Chain, at the rule's time.
    let (check_secs, leeway_secs) = match time {
        TimeRule::DocumentTime => (payload.timestamp / 1000, 0),
        TimeRule::Now { now_ms, max_skew_ms, .. } => (now_ms / 1000, max_skew_ms.min(MAX_NOT_BEFORE_LEEWAY_MS) / 1000),
    };
    let leaf_key = match cache {
        Some(cache) => {
            let key = chain_key(&payload);
            match cache.get(&key) {
                Some(chain) => {
                    check_interval(check_secs, leeway_secs, chain.not_before, chain.not_after)?;
                    chain.leaf_key
                }
                None => {
                    let chain = verify_chain(anchor, &payload, check_secs, leeway_secs)?;
                    let leaf_key = Arc::clone(&chain.leaf_key);
                    cache.insert(key, chain);
                    leaf_key
                }
            }
        }
        None => verify_chain(anchor, &payload, check_secs, leeway_secs)?.leaf_key,
    };

    // 6. COSE signature over Sig_structure("Signature1", received protected bytes, h'', payload).
    sign1
        .verify_signature(b"", |signature, tbs| leaf_key.verify_sig(tbs, signature))
        .map_err(|_| AttestError::Signature)?;

    // 7. Freshness.
    if let TimeRule::Now { now_ms, max_age_ms, max_skew_ms } = time {
        check_freshness(payload.timestamp, now_ms, max_age_ms, max_skew_ms)?;
    }

    // 8. Nonce.
    if let Some(expected) = expected_nonce {
        let nonce = payload.nonce.as_deref().ok_or(AttestError::NonceMissing)?;
        if expected.is_empty() || verify_slices_are_equal(nonce, expected).is_err() {
            return Err(AttestError::NonceMismatch);
        }
    }

    // 9. Debug mode, then the PCR policy.
    let debug = payload.pcrs.get(&0).is_some_and(|pcr0| pcr0.iter().all(|b| *b == 0));
    if debug && !policy.allow_debug {
        return Err(AttestError::DebugMode);
    }
    for (index, want) in &policy.expected {
        let have = payload.pcrs.get(index).ok_or(AttestError::PcrMissing(*index))?;
        verify_slices_are_equal(have, want).map_err(|_| AttestError::PcrMismatch(*index))?;
    }

    let document_sha384 = digest_array(digest::digest(&digest::SHA384, doc));
    let AttestationPayload { module_id, timestamp, pcrs, public_key, user_data, nonce, .. } = payload;
    Ok(VerifiedAttestation {
        module_id,
        timestamp_ms: timestamp,
        pcrs: pcrs.into_iter().map(|(i, v)| (i, v.into_vec())).collect(),
        public_key: public_key.map(|v| v.into_vec()),
        user_data: user_data.map(|v| v.into_vec()),
        nonce: nonce.map(|v| v.into_vec()),
        document_sha384,
        debug,
    })
}

/// Decodes exactly one CBOR item from `bytes`; trailing bytes are an error.
fn decode_cbor(bytes: &[u8]) -> Result<Value, String> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader(&mut rest).map_err(|e| excerpt(&e.to_string(), 120))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(value)
}

fn decode_envelope(doc: &[u8]) -> Result<CoseSign1, AttestError> {
    let value = decode_cbor(doc).map_err(AttestError::Envelope)?;
    let value = match value {
        Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
        Value::Tag(tag, _) => return Err(AttestError::UnexpectedTag(tag)),
        other => other,
    };
    match &value {
        Value::Array(items) if items.len() == 4 => {}
        Value::Array(items) => {
            return Err(AttestError::Envelope(format!("COSE_Sign1 has {} elements, expected 4", items.len())));
        }
        _ => return Err(AttestError::Envelope("not a CBOR array".into())),
    }
    CoseSign1::from_cbor_value(value).map_err(|e| AttestError::Envelope(excerpt(&e.to_string(), 120)))
}

/// Protected header exactly `{1: -35}`; unprotected header empty.
fn check_headers(sign1: &CoseSign1) -> Result<(), AttestError> {
    let protected = &sign1.protected.header;
    if !protected.crit.is_empty() {
        return Err(AttestError::ProtectedHeader("crit".into()));
    }
    if protected.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::ES384)) {
        return Err(AttestError::WrongAlgorithm);
    }
    let only_alg = coset::Header { alg: protected.alg.clone(), ..Default::default() };
    if *protected != only_alg {
        return Err(AttestError::ProtectedHeader("parameters besides alg".into()));
    }
    if !sign1.unprotected.is_empty() {
        return Err(AttestError::Envelope("unprotected header is not empty".into()));
    }
    Ok(())
}

/// The payload's CBOR shape, checked before serde sees it: a map with text keys, none repeated; the known fields with
/// their CBOR types (so serde's lenient conversions, such as a byte string into a `String` or an integer key into a
/// field index, never apply); `pcrs` with integer keys, none repeated.
fn check_payload_shape(value: &Value) -> Result<(), AttestError> {
    let bad = |why: String| AttestError::Payload(why);
    let Value::Map(entries) = value else {
        return Err(bad("not a CBOR map".into()));
    };
    let mut seen = BTreeSet::new();
    for (key, field) in entries {
        let Value::Text(key) = key else {
            return Err(bad("a key is not a text string".into()));
        };
        if !seen.insert(key.as_str()) {
            return Err(bad(format!("duplicate key {:?}", excerpt(key, 32))));
        }
        if let (Value::Null, Some(mandatory)) = (field, MANDATORY_FIELDS.iter().find(|m| **m == key.as_str())) {
            return Err(AttestError::MissingField(mandatory));
        }
        let type_ok = match key.as_str() {
            "module_id" | "digest" => matches!(field, Value::Text(_)),
            "timestamp" => matches!(field, Value::Integer(_)),
            "certificate" => matches!(field, Value::Bytes(_)),
            "public_key" | "user_data" | "nonce" => matches!(field, Value::Bytes(_) | Value::Null),
            "cabundle" => matches!(field, Value::Array(certs) if certs.iter().all(|c| matches!(c, Value::Bytes(_)))),
            "pcrs" => check_pcrs_shape(field)?,
            _ => true, // unknown keys are covered by the signature and ignored
        };
        if !type_ok {
            return Err(bad(format!("field {key} has the wrong CBOR type")));
        }
    }
    for field in MANDATORY_FIELDS {
        if !seen.contains(field) {
            return Err(AttestError::MissingField(field));
        }
    }
    Ok(())
}

fn check_pcrs_shape(field: &Value) -> Result<bool, AttestError> {
    let Value::Map(pcrs) = field else {
        return Ok(false);
    };
    let mut seen = BTreeSet::new();
    for (index, value) in pcrs {
        let (Value::Integer(index), Value::Bytes(_)) = (index, value) else {
            return Ok(false);
        };
        let index = i128::from(*index);
        if !seen.insert(index) {
            return Err(AttestError::Pcr(format!("duplicate PCR index {index}")));
        }
    }
    Ok(true)
}

fn decode_payload(bytes: &[u8]) -> Result<AttestationPayload, AttestError> {
    let value = decode_cbor(bytes).map_err(AttestError::Payload)?;
    check_payload_shape(&value)?;
    value.deserialized::<AttestationPayload>().map_err(|e| AttestError::Payload(excerpt(&e.to_string(), 120)))
}

/// AWS's syntactic checks, with the limits real documents need (`null` optional fields, 1024-byte optional fields).
fn check_syntax(p: &AttestationPayload) -> Result<(), AttestError> {
    if p.module_id.is_empty() {
        return Err(AttestError::FieldSize { field: "module_id", len: 0 });
    }
    if p.digest != DIGEST_SHA384 {
        return Err(AttestError::Digest(excerpt(&p.digest, 16)));
    }
    if p.timestamp == 0 {
        return Err(AttestError::Payload("timestamp is zero".into()));
    }
    let pcr_count = usize::try_from(PCR_COUNT).unwrap_or(usize::MAX);
    if p.pcrs.is_empty() || p.pcrs.len() > pcr_count {
        return Err(AttestError::Pcr(format!("{} PCRs, expected 1 to {PCR_COUNT}", p.pcrs.len())));
    }
    for (index, value) in &p.pcrs {
        if *index >= PCR_COUNT {
            return Err(AttestError::Pcr(format!("index {index} out of range")));
        }
        if ![32, 48, 64].contains(&value.len()) {
            return Err(AttestError::Pcr(format!("PCR{index} has {} bytes", value.len())));
        }
    }
    let in_range = |len: usize, min: usize, max: usize| (min..=max).contains(&len);
    if !in_range(p.certificate.len(), 1, MAX_CERT_LEN) {
        return Err(AttestError::FieldSize { field: "certificate", len: p.certificate.len() });
    }
    if !in_range(p.cabundle.len(), 1, MAX_CABUNDLE) {
        return Err(AttestError::FieldSize { field: "cabundle", len: p.cabundle.len() });
    }
    if let Some(cert) = p.cabundle.iter().find(|c| !in_range(c.len(), 1, MAX_CERT_LEN)) {
        return Err(AttestError::FieldSize { field: "cabundle entry", len: cert.len() });
    }
    if let Some(key) = &p.public_key
        && !in_range(key.len(), 1, MAX_OPTIONAL_LEN)
    {
        return Err(AttestError::FieldSize { field: "public_key", len: key.len() });
    }
    for (field, value) in [("user_data", &p.user_data), ("nonce", &p.nonce)] {
        if let Some(value) = value
            && value.len() > MAX_OPTIONAL_LEN
        {
            return Err(AttestError::FieldSize { field, len: value.len() });
        }
    }
    Ok(())
}

/// Simulator module ids ("sim-…") are accepted only under a simulator anchor, and a simulator anchor accepts nothing
/// else: a simulator document can never pass as a Nitro one, even if a simulator root were mistakenly trusted.
fn check_anchor_kind(anchor: &TrustAnchor, module_id: &str) -> Result<(), AttestError> {
    let from_simulator = module_id.starts_with("sim-");
    match (anchor.is_simulator(), from_simulator) {
        (true, false) => Err(AttestError::AnchorMismatch("a simulator anchor accepts only sim- module ids".into())),
        (false, true) => Err(AttestError::AnchorMismatch("a sim- module id under the AWS Nitro anchor".into())),
        _ => Ok(()),
    }
}

/// A certificate chain that verified: the intersection of the validity periods of its path and the leaf's key.
#[derive(Clone)]
struct VerifiedChain {
    not_before: u64,
    not_after: u64,
    leaf_key: Arc<ParsedPublicKey>,
}

/// What the verifier needs to know of one certificate, read with x509-cert.
#[derive(Clone, Debug)]
pub(crate) struct CertProfile {
    /// basicConstraints present with cA = true.
    pub(crate) is_ca: bool,
    /// basicConstraints' pathLenConstraint.
    pub(crate) path_len: Option<u8>,
    /// keyUsage present with keyCertSign.
    pub(crate) key_cert_sign: bool,
    /// keyUsage present with digitalSignature.
    pub(crate) digital_signature: bool,
    /// notBefore, seconds since the epoch.
    pub(crate) not_before: u64,
    /// notAfter, seconds since the epoch.
    pub(crate) not_after: u64,
    /// The uncompressed point, when the key is id-ecPublicKey on secp384r1.
    pub(crate) p384_point: Option<Vec<u8>>,
}

/// Reads a certificate's constraints, validity and key. Errors (duplicate or undecodable extensions, notBefore after
/// notAfter) are [`AttestError::Certificate`].
pub(crate) fn cert_profile(cert: &Certificate) -> Result<CertProfile, AttestError> {
    let tbs = cert.tbs_certificate();
    let basic = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| AttestError::Certificate(format!("basicConstraints: {e}")))?
        .map(|(_, bc)| bc);
    let usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| AttestError::Certificate(format!("keyUsage: {e}")))?
        .map(|(_, ku)| ku);
    let not_before = tbs.validity().not_before.to_unix_duration().as_secs();
    let not_after = tbs.validity().not_after.to_unix_duration().as_secs();
    if not_before > not_after {
        return Err(AttestError::Certificate("notBefore is after notAfter".into()));
    }
    let spki = tbs.subject_public_key_info();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let p384_point = match (spki.algorithm.oid == ID_EC_PUBLIC_KEY, curve, spki.subject_public_key.as_bytes()) {
        (true, Some(SECP_384_R_1), Some(point)) if point.len() == P384_POINT_LEN && point.first() == Some(&0x04) => {
            Some(point.to_vec())
        }
        _ => None,
    };
    Ok(CertProfile {
        is_ca: basic.as_ref().is_some_and(|bc| bc.ca),
        path_len: basic.and_then(|bc| bc.path_len_constraint),
        key_cert_sign: usage.as_ref().is_some_and(KeyUsage::key_cert_sign),
        digital_signature: usage.as_ref().is_some_and(KeyUsage::digital_signature),
        not_before,
        not_after,
        p384_point,
    })
}

/// The chain check at `check_secs` with `leeway_secs` on notBefore; see the module documentation.
fn verify_chain(
    anchor: &TrustAnchor,
    payload: &AttestationPayload,
    check_secs: u64,
    leeway_secs: u64,
) -> Result<VerifiedChain, AttestError> {
    // The anchor is ours; the document's copy must be byte-identical and is otherwise ignored.
    let (root, intermediates) =
        payload.cabundle.split_first().ok_or(AttestError::FieldSize { field: "cabundle", len: 0 })?;
    if root.as_slice() != anchor.root_der() {
        return Err(AttestError::UntrustedRoot);
    }

    // Path root → intermediates → leaf, read with x509-cert.
    let parse = |what: &str, der: &[u8]| {
        Certificate::from_der(der)
            .map_err(|e| AttestError::Certificate(format!("{what} is not DER X.509: {}", excerpt(&e.to_string(), 80))))
            .and_then(|cert| cert_profile(&cert))
    };
    let mut issuers = Vec::with_capacity(payload.cabundle.len());
    issuers.push(anchor.profile().clone());
    for (i, der) in intermediates.iter().enumerate() {
        issuers.push(parse(&format!("cabundle[{}]", i + 1), der)?);
    }
    let leaf = parse("certificate", &payload.certificate)?;

    // Constraints webpki does not check (keyUsage) or that we want regardless of it. `below` is the number of
    // intermediate CAs under an issuer, which its pathLenConstraint bounds.
    let intermediate_count = intermediates.len();
    for (position, issuer) in issuers.iter().enumerate() {
        let which = if position == 0 { "root".to_string() } else { format!("cabundle[{position}]") };
        if !issuer.is_ca {
            return Err(AttestError::Chain(format!("{which} is not a CA")));
        }
        if !issuer.key_cert_sign {
            return Err(AttestError::Chain(format!("{which} lacks keyUsage keyCertSign")));
        }
        let below = intermediate_count.saturating_sub(position);
        if let Some(path_len) = issuer.path_len
            && below > usize::from(path_len)
        {
            return Err(AttestError::Chain(format!("{which} pathLenConstraint {path_len} exceeded")));
        }
    }
    if leaf.is_ca {
        return Err(AttestError::Chain("the leaf certificate is a CA".into()));
    }
    if !leaf.digital_signature {
        return Err(AttestError::Chain("the leaf lacks keyUsage digitalSignature".into()));
    }
    let leaf_point =
        leaf.p384_point.as_ref().ok_or_else(|| AttestError::Certificate("the leaf key is not ECDSA P-384".into()))?;

    // The intersection of the validity periods of the path, the root included. webpki is given the check time
    // clamped into it: the check time itself whenever the document can pass, the nearest bound otherwise, so that
    // structural errors are reported before validity errors; check_interval below decides validity.
    let not_before = issuers.iter().map(|c| c.not_before).fold(leaf.not_before, u64::max);
    let not_after = issuers.iter().map(|c| c.not_after).fold(leaf.not_after, u64::min);
    let webpki_secs = if not_before <= not_after { check_secs.clamp(not_before, not_after) } else { check_secs };

    // Path validation by webpki, anchored only on our root, ECDSA P-384 / SHA-384 only, no CRLs.
    let leaf_der = CertificateDer::from(payload.certificate.as_slice());
    let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| AttestError::Certificate(format!("webpki refuses the leaf: {e}")))?;
    let intermediate_ders: Vec<CertificateDer<'_>> =
        intermediates.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    let path = end_entity
        .verify_for_usage(
            &[webpki::aws_lc_rs::ECDSA_P384_SHA384],
            std::slice::from_ref(anchor.webpki()),
            &intermediate_ders,
            UnixTime::since_unix_epoch(Duration::from_secs(webpki_secs)),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => AttestError::CertificateExpired,
            webpki::Error::CertNotValidYet { .. } => AttestError::CertificateNotYetValid,
            other => AttestError::Chain(other.to_string()),
        })?;
    // The path webpki found must be the document's chain, in order: no skipped or unused bundle entries, so the
    // constraints and validity checked above are those of the validated path.
    let path_ders: Vec<CertificateDer<'_>> = path.intermediate_certificates().rev().map(|c| c.der()).collect();
    if path_ders != intermediate_ders {
        return Err(AttestError::Chain("cabundle is not exactly the validated path".into()));
    }
    drop(path);

    // Validity of every certificate of the path at the check time (with the notBefore leeway).
    check_interval(check_secs, leeway_secs, not_before, not_after)?;

    let leaf_key = ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, leaf_point)
        .map_err(|_| AttestError::Certificate("the leaf's P-384 point is invalid".into()))?;
    Ok(VerifiedChain { not_before, not_after, leaf_key: Arc::new(leaf_key) })
}

/// Is `check_secs` inside `[not_before - leeway_secs, not_after]` (and the interval not empty)?
fn check_interval(check_secs: u64, leeway_secs: u64, not_before: u64, not_after: u64) -> Result<(), AttestError> {
    if check_secs.saturating_add(leeway_secs) < not_before {
        return Err(AttestError::CertificateNotYetValid);
    }
    if check_secs.max(not_before) > not_after {
        return Err(AttestError::CertificateExpired);
    }
    Ok(())
}

fn check_freshness(timestamp_ms: u64, now_ms: u64, max_age_ms: u64, max_skew_ms: u64) -> Result<(), AttestError> {
    if timestamp_ms > now_ms {
        let ahead_ms = timestamp_ms - now_ms;
        if ahead_ms > max_skew_ms {
            return Err(AttestError::FromTheFuture { ahead_ms });
        }
    } else {
        let age_ms = now_ms - timestamp_ms;
        if age_ms > max_age_ms {
            return Err(AttestError::Stale { age_ms });
        }
    }
    Ok(())
}

/// SHA-256 over `certificate` and every `cabundle` entry, each preceded by its length (u64, big-endian).
fn chain_key(payload: &AttestationPayload) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for der in std::iter::once(&payload.certificate).chain(payload.cabundle.iter()) {
        ctx.update(&u64::try_from(der.len()).unwrap_or(u64::MAX).to_be_bytes());
        ctx.update(der);
    }
    digest_array(ctx.finish())
}

/// A digest as a fixed-size array (`N` is the algorithm's output length; copying by zip cannot panic).
pub(crate) fn digest_array<const N: usize>(digest: digest::Digest) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    out
}

/// Verified chains by [`chain_key`], at most `capacity` of them.
struct ChainCache {
    capacity: usize,
    entries: RwLock<HashMap<[u8; 32], VerifiedChain>>,
}

impl ChainCache {
    fn new(capacity: usize) -> Self {
        ChainCache { capacity, entries: RwLock::new(HashMap::new()) }
    }

    fn get(&self, key: &[u8; 32]) -> Option<VerifiedChain> {
        // A poisoned lock still holds a consistent map: every mutation is a single insert or remove.
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(key).cloned()
    }

    /// Inserts `chain`; when full, first evicts the entry that expires first.
    fn insert(&self, key: [u8; 32], chain: VerifiedChain) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let oldest = entries.iter().min_by_key(|(_, c)| c.not_after).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        if entries.len() < self.capacity {
            entries.insert(key, chain);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCKY: &[u8] = include_bytes!("../tests/vectors/blocky-nitrite-2024-09-07.cbor");
    const BLOCKY_TS_MS: u64 = 1_725_719_859_545;
    /// Leaf validity of BLOCKY: 2024-09-07T14:37:36Z .. 2024-09-07T17:37:39Z.
    const BLOCKY_LEAF: (u64, u64) = (1_725_719_856, 1_725_730_659);

    fn policy() -> PcrPolicy {
        PcrPolicy::new()
    }

    #[test]
    fn verifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<TrustAnchor>();
        assert_send_sync::<VerifiedAttestation>();
    }

    #[test]
    fn chain_is_cached_with_its_interval_and_reused_only_inside_it() {
        let verifier = Verifier::new(TrustAnchor::aws_nitro().unwrap());
        let first = verifier.verify(BLOCKY, &policy(), None, TimeRule::DocumentTime).unwrap();
        assert_eq!(verifier.cache.len(), 1);
        let payload = decode_payload(decode_envelope(BLOCKY).unwrap().payload.as_deref().unwrap()).unwrap();
        let cached = verifier.cache.get(&chain_key(&payload)).unwrap();
        // The interval is the leaf's here (it is the shortest-lived certificate).
        assert_eq!((cached.not_before, cached.not_after), BLOCKY_LEAF);

        // Inside the interval: served from the cache, same result.
        let second = verifier.verify(BLOCKY, &policy(), None, TimeRule::DocumentTime).unwrap();
        assert_eq!(first, second);
        assert_eq!(verifier.cache.len(), 1);

        // Outside it: refused, although the chain is cached.
        let at = |now_secs: u64| TimeRule::Now { now_ms: now_secs * 1000, max_age_ms: u64::MAX, max_skew_ms: 0 };
        assert_eq!(
            verifier.verify(BLOCKY, &policy(), None, at(BLOCKY_LEAF.1 + 1)),
            Err(AttestError::CertificateExpired)
        );
        assert_eq!(
            verifier.verify(BLOCKY, &policy(), None, at(BLOCKY_LEAF.0 - 1)),
            Err(AttestError::CertificateNotYetValid)
        );
        assert_eq!(verifier.cache.len(), 1);
        // And at the interval's bounds, accepted (the freshness rule aside).
        assert!(verifier.verify(BLOCKY, &policy(), None, at(BLOCKY_LEAF.1)).is_ok());
        assert!(
            verifier
                .verify(BLOCKY, &policy(), None, TimeRule::Now { now_ms: BLOCKY_TS_MS, max_age_ms: 0, max_skew_ms: 0 })
                .is_ok()
        );
    }

    #[test]
    fn cache_hit_still_checks_the_signature() {
        let verifier = Verifier::new(TrustAnchor::aws_nitro().unwrap());
        verifier.verify(BLOCKY, &policy(), None, TimeRule::DocumentTime).unwrap();
        let mut forged = BLOCKY.to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1; // last byte of the signature
        assert_eq!(verifier.verify(&forged, &policy(), None, TimeRule::DocumentTime), Err(AttestError::Signature));
    }

    #[test]
    fn not_before_leeway_under_now_only() {
        let nb = BLOCKY_LEAF.0;
        // 30 s before the leaf's notBefore: refused without skew, accepted with a 60 s skew (the document's timestamp
        // is then 33.5 s ahead, inside the skew).
        let now = |skew_ms| TimeRule::Now { now_ms: (nb - 30) * 1000, max_age_ms: 300_000, max_skew_ms: skew_ms };
        assert_eq!(
            verify(BLOCKY, &TrustAnchor::aws_nitro().unwrap(), &policy(), None, now(0)),
            Err(AttestError::CertificateNotYetValid)
        );
        assert!(verify(BLOCKY, &TrustAnchor::aws_nitro().unwrap(), &policy(), None, now(60_000)).is_ok());
        // The leeway is capped at 60 s whatever the skew.
        let far = TimeRule::Now { now_ms: (nb - 61) * 1000, max_age_ms: 300_000, max_skew_ms: 3_600_000 };
        assert_eq!(
            verify(BLOCKY, &TrustAnchor::aws_nitro().unwrap(), &policy(), None, far),
            Err(AttestError::CertificateNotYetValid)
        );
    }

    #[test]
    fn interval_bounds() {
        assert_eq!(check_interval(10, 0, 10, 20), Ok(()));
        assert_eq!(check_interval(20, 0, 10, 20), Ok(()));
        assert_eq!(check_interval(9, 0, 10, 20), Err(AttestError::CertificateNotYetValid));
        assert_eq!(check_interval(21, 0, 10, 20), Err(AttestError::CertificateExpired));
        assert_eq!(check_interval(5, 5, 10, 20), Ok(()));
        assert_eq!(check_interval(4, 5, 10, 20), Err(AttestError::CertificateNotYetValid));
        // Disjoint validity periods never pass.
        assert_eq!(check_interval(15, 10, 20, 10), Err(AttestError::CertificateExpired));
    }

    #[test]
    fn freshness_bounds() {
        assert_eq!(check_freshness(1000, 1000, 0, 0), Ok(()));
        assert_eq!(check_freshness(1000, 2000, 1000, 0), Ok(()));
        assert_eq!(check_freshness(1000, 2001, 1000, 0), Err(AttestError::Stale { age_ms: 1001 }));
        assert_eq!(check_freshness(2000, 1000, 0, 1000), Ok(()));
        assert_eq!(check_freshness(2001, 1000, 0, 1000), Err(AttestError::FromTheFuture { ahead_ms: 1001 }));
    }

    #[test]
    fn cache_is_bounded_and_evicts_the_first_to_expire() {
        let key_of = |i: u64| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_be_bytes());
            k
        };
        let point = decode_payload(decode_envelope(BLOCKY).unwrap().payload.as_deref().unwrap()).unwrap();
        let leaf = cert_profile(&Certificate::from_der(&point.certificate).unwrap()).unwrap();
        let leaf_key = Arc::new(ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, leaf.p384_point.unwrap()).unwrap());
        let cache = ChainCache::new(4);
        for i in 0..4 {
            cache.insert(
                key_of(i),
                VerifiedChain { not_before: 0, not_after: 100 + i, leaf_key: Arc::clone(&leaf_key) },
            );
        }
        assert_eq!(cache.len(), 4);
        cache.insert(key_of(9), VerifiedChain { not_before: 0, not_after: 500, leaf_key: Arc::clone(&leaf_key) });
        assert_eq!(cache.len(), 4);
        assert!(cache.get(&key_of(0)).is_none(), "the entry expiring first is evicted");
        assert!(cache.get(&key_of(9)).is_some());
    }

    #[test]
    fn chain_key_separates_fields() {
        let mut p = decode_payload(decode_envelope(BLOCKY).unwrap().payload.as_deref().unwrap()).unwrap();
        let k1 = chain_key(&p);
        // Moving a byte from one certificate to the next must change the key (length prefixes).
        let mut cert = p.certificate.to_vec();
        let moved = cert.pop().unwrap();
        let mut first = p.cabundle[0].to_vec();
        first.insert(0, moved);
        p.certificate = serde_bytes::ByteBuf::from(cert);
        p.cabundle[0] = serde_bytes::ByteBuf::from(first);
        assert_ne!(chain_key(&p), k1);
    }

    #[test]
    fn verified_attestation_debug_is_small() {
        let v = verify(BLOCKY, &TrustAnchor::aws_nitro().unwrap(), &policy(), None, TimeRule::DocumentTime).unwrap();
        let dbg = format!("{v:?}");
        assert!(dbg.len() < 400, "{dbg}");
        assert!(dbg.contains("i-0a22e5c5f24d22174-enc0191cceb4289903f"));
    }

    /// Chains built with rcgen, to reach the checks that webpki does not make (keyUsage, the bundle being exactly the
    /// path, the leaf's curve) and that real documents cannot exercise.
    #[cfg(feature = "simulator")]
    mod constructed_chains {
        use super::*;
        use rcgen::{
            BasicConstraints as Bc, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
            KeyUsagePurpose as Ku, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, SignatureAlgorithm,
        };
        use serde_bytes::ByteBuf;

        struct Node {
            params: CertificateParams,
            key: KeyPair,
            der: Vec<u8>,
        }

        /// `ca`: None = not a CA; Some(None) = CA without pathLen; Some(Some(n)) = pathLen n.
        fn params(cn: &str, ca: Option<Option<u8>>, key_usages: Vec<Ku>) -> CertificateParams {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            params.distinguished_name = dn;
            params.is_ca = match ca {
                None => IsCa::ExplicitNoCa,
                Some(None) => IsCa::Ca(Bc::Unconstrained),
                Some(Some(n)) => IsCa::Ca(Bc::Constrained(n)),
            };
            params.key_usages = key_usages;
            params
        }

        fn root() -> Node {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
            let params = params("test root", Some(None), vec![Ku::KeyCertSign]);
            let der = params.self_signed(&key).unwrap().der().to_vec();
            Node { params, key, der }
        }

        fn issue(issuer: &Node, params: CertificateParams, alg: &'static SignatureAlgorithm) -> Node {
            let key = KeyPair::generate_for(alg).unwrap();
            // rcgen itself refuses to sign under an issuer without keyCertSign; the issuer's keyUsage is what is
            // under test, so rcgen is shown an issuer with none.
            let mut signer = issuer.params.clone();
            signer.key_usages.clear();
            let der = params.signed_by(&key, &Issuer::new(signer, &issuer.key)).unwrap().der().to_vec();
            Node { params, key, der }
        }

        fn ca(issuer: &Node, cn: &str, path_len: Option<u8>, key_usages: Vec<Ku>) -> Node {
            issue(issuer, params(cn, Some(path_len), key_usages), &PKCS_ECDSA_P384_SHA384)
        }

        fn leaf(issuer: &Node, key_usages: Vec<Ku>) -> Node {
            issue(issuer, params("test leaf", None, key_usages), &PKCS_ECDSA_P384_SHA384)
        }

        fn chain(root: &Node, bundle: &[&Node], leaf: &Node) -> Result<VerifiedChain, AttestError> {
            let anchor = TrustAnchor::simulator(&root.der).unwrap();
            let mut cabundle = vec![ByteBuf::from(root.der.clone())];
            cabundle.extend(bundle.iter().map(|n| ByteBuf::from(n.der.clone())));
            let payload = AttestationPayload {
                module_id: "sim-test".into(),
                digest: "SHA384".into(),
                timestamp: 1_750_000_000_000,
                pcrs: BTreeMap::from([(0, ByteBuf::from(vec![1; 48]))]),
                certificate: ByteBuf::from(leaf.der.clone()),
                cabundle,
                public_key: None,
                user_data: None,
                nonce: None,
            };
            verify_chain(&anchor, &payload, payload.timestamp / 1000, 0)
        }

        fn assert_chain_error(result: Result<VerifiedChain, AttestError>, needle: &str) {
            match result {
                Err(AttestError::Chain(message)) => assert!(message.contains(needle), "{message}"),
                Err(other) => panic!("expected a chain error with {needle:?}, got {other:?}"),
                Ok(_) => panic!("expected a chain error with {needle:?}, got Ok"),
            }
        }

        #[test]
        fn a_well_formed_chain_passes() {
            let root = root();
            let i1 = ca(&root, "i1", Some(1), vec![Ku::KeyCertSign]);
            let i2 = ca(&i1, "i2", Some(0), vec![Ku::KeyCertSign, Ku::CrlSign]);
            let leaf = leaf(&i2, vec![Ku::DigitalSignature]);
            assert!(chain(&root, &[&i1, &i2], &leaf).is_ok());
            assert!(chain(&root, &[], &self::leaf(&root, vec![Ku::DigitalSignature])).is_ok());
        }

        #[test]
        fn issuers_need_key_cert_sign() {
            let root = root();
            // webpki ignores keyUsage: only our own check refuses these.
            let i1 = ca(&root, "i1", None, vec![Ku::DigitalSignature]);
            assert_chain_error(chain(&root, &[&i1], &leaf(&i1, vec![Ku::DigitalSignature])), "keyCertSign");
            let i1 = ca(&root, "i1", None, vec![]);
            assert_chain_error(chain(&root, &[&i1], &leaf(&i1, vec![Ku::DigitalSignature])), "keyCertSign");
        }

        #[test]
        fn the_leaf_needs_digital_signature_and_no_ca() {
            let root = root();
            let i1 = ca(&root, "i1", None, vec![Ku::KeyCertSign]);
            for usages in [vec![], vec![Ku::KeyEncipherment], vec![Ku::KeyCertSign]] {
                assert_chain_error(chain(&root, &[&i1], &leaf(&i1, usages)), "digitalSignature");
            }
            let ca_leaf = ca(&i1, "leaf", None, vec![Ku::DigitalSignature, Ku::KeyCertSign]);
            assert_chain_error(chain(&root, &[&i1], &ca_leaf), "is a CA");
        }

        #[test]
        fn path_length_constraints_hold() {
            let root = root();
            let i1 = ca(&root, "i1", Some(0), vec![Ku::KeyCertSign]);
            let i2 = ca(&i1, "i2", None, vec![Ku::KeyCertSign]);
            assert_chain_error(chain(&root, &[&i1, &i2], &leaf(&i2, vec![Ku::DigitalSignature])), "pathLen");
        }

        #[test]
        fn the_bundle_must_be_exactly_the_path() {
            let root = root();
            let i1 = ca(&root, "i1", None, vec![Ku::KeyCertSign]);
            let unused = ca(&root, "unused", None, vec![Ku::KeyCertSign]);
            let leaf = leaf(&i1, vec![Ku::DigitalSignature]);
            // webpki builds leaf → i1 → root and ignores the extra certificate; the verifier does not.
            assert_chain_error(chain(&root, &[&i1, &unused], &leaf), "exactly the validated path");
            assert_chain_error(chain(&root, &[&unused, &i1], &leaf), "exactly the validated path");
        }

        #[test]
        fn the_leaf_key_must_be_p384() {
            let root = root();
            let i1 = ca(&root, "i1", None, vec![Ku::KeyCertSign]);
            let p256_leaf = issue(&i1, params("leaf", None, vec![Ku::DigitalSignature]), &PKCS_ECDSA_P256_SHA256);
            let result = chain(&root, &[&i1], &p256_leaf);
            assert!(matches!(&result, Err(AttestError::Certificate(m)) if m.contains("P-384")), "{:?}", result.err());
        }
    }
}
