//! Why an attestation document was refused, one variant (or a few) per verification step.
//!
//! Messages never carry more than a short, bounded excerpt of document content: an error may be logged or returned to
//! a remote caller, and the document is attacker-controlled until its signature has been checked.

/// Why [`verify`](crate::verify) refused a document, or why a [`TrustAnchor`](crate::TrustAnchor) could not be built.
///
/// [`AttestError::step`] names the verification step that failed, as a short stable string for logs and metrics.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AttestError {
    /// The document is larger than [`MAX_DOCUMENT_LEN`](crate::MAX_DOCUMENT_LEN) bytes (checked before decoding).
    #[error("attestation document too large: {0} bytes")]
    TooLarge(usize),
    /// The COSE_Sign1 envelope is malformed: not CBOR, trailing bytes, not a 4-element array, a bad header map, a
    /// non-empty unprotected header, or a detached payload.
    #[error("malformed COSE_Sign1 envelope: {0}")]
    Envelope(String),
    /// The envelope carries a CBOR tag other than 18 (COSE_Sign1).
    #[error("unexpected CBOR tag {0} on the COSE_Sign1 envelope")]
    UnexpectedTag(u64),
    /// The protected header's algorithm is missing or is not ES384 (-35).
    #[error("the protected header's algorithm is not ES384")]
    WrongAlgorithm,
    /// The protected header holds something besides the algorithm (e.g. `crit`).
    #[error("unexpected protected header parameter: {0}")]
    ProtectedHeader(String),
    /// The COSE signature is not 96 bytes (raw P-384 r||s).
    #[error("COSE signature has {0} bytes, expected 96")]
    SignatureLength(usize),
    /// The payload is not a well-formed attestation document map (bad CBOR, wrong types, duplicate keys).
    #[error("malformed attestation payload: {0}")]
    Payload(String),
    /// A mandatory payload field is absent (or null).
    #[error("attestation payload lacks the mandatory field {0}")]
    MissingField(&'static str),
    /// A payload field's length is outside its allowed range.
    #[error("attestation payload field {field} has an invalid length {len}")]
    FieldSize {
        /// The field.
        field: &'static str,
        /// Its length (bytes, or entries for `cabundle`).
        len: usize,
    },
    /// The payload's `digest` is not "SHA384".
    #[error("attestation payload digest {0:?} is not SHA384")]
    Digest(String),
    /// The payload's `pcrs` map is malformed (count, index or length).
    #[error("malformed PCRs: {0}")]
    Pcr(String),
    /// A certificate of the chain is not valid DER X.509, or the leaf's key is not a P-384 ECDSA key.
    #[error("bad certificate: {0}")]
    Certificate(String),
    /// `cabundle[0]` is not byte-identical to the trust anchor.
    #[error("the document's root certificate is not the trust anchor")]
    UntrustedRoot,
    /// The certificate path does not validate (signature, name chaining, basic constraints, key usage, path length).
    #[error("certificate chain invalid: {0}")]
    Chain(String),
    /// A certificate of the path had expired at the check time.
    #[error("certificate expired at the check time")]
    CertificateExpired,
    /// A certificate of the path was not yet valid at the check time.
    #[error("certificate not yet valid at the check time")]
    CertificateNotYetValid,
    /// The COSE signature does not verify under the leaf certificate's key.
    #[error("COSE signature does not verify")]
    Signature,
    /// The document is older than the allowed maximum age.
    #[error("attestation document is stale ({age_ms} ms old)")]
    Stale {
        /// How old it is, in milliseconds.
        age_ms: u64,
    },
    /// The document's timestamp is further in the future than the allowed clock skew.
    #[error("attestation document is from the future ({ahead_ms} ms ahead)")]
    FromTheFuture {
        /// How far ahead of the verifier's clock, in milliseconds.
        ahead_ms: u64,
    },
    /// A nonce was expected but the document has none.
    #[error("attestation document has no nonce")]
    NonceMissing,
    /// The document's nonce is not the expected one (or the expected nonce is empty).
    #[error("attestation document nonce does not match")]
    NonceMismatch,
    /// A PCR required by the policy is absent from the document.
    #[error("PCR{0} required by the policy is absent")]
    PcrMissing(u32),
    /// A PCR differs from the policy's value.
    #[error("PCR{0} does not match the policy")]
    PcrMismatch(u32),
    /// The document comes from a debug-mode enclave (PCR0 all zero) and the policy does not allow it.
    #[error("attestation document is from a debug-mode enclave")]
    DebugMode,
    /// The document's origin (simulator or Nitro, from its module_id) does not match the trust anchor's kind.
    #[error("document does not match the trust anchor: {0}")]
    AnchorMismatch(String),
    /// A trust anchor could not be built (bad PEM/DER, wrong fingerprint, not a P-384 CA certificate).
    #[error("bad trust anchor: {0}")]
    BadAnchor(String),
}

impl AttestError {
    /// The verification step that failed, as a short stable name: "size", "envelope", "algorithm", "payload",
    /// "certificate", "chain", "validity", "signature", "freshness", "nonce", "pcr-policy", "debug" or "anchor".
    pub fn step(&self) -> &'static str {
        match self {
            AttestError::TooLarge(_) => "size",
            AttestError::Envelope(_) | AttestError::UnexpectedTag(_) | AttestError::SignatureLength(_) => "envelope",
            AttestError::WrongAlgorithm | AttestError::ProtectedHeader(_) => "algorithm",
            AttestError::Payload(_)
            | AttestError::MissingField(_)
            | AttestError::FieldSize { .. }
            | AttestError::Digest(_)
            | AttestError::Pcr(_) => "payload",
            AttestError::Certificate(_) => "certificate",
            AttestError::UntrustedRoot | AttestError::Chain(_) => "chain",
            AttestError::CertificateExpired | AttestError::CertificateNotYetValid => "validity",
            AttestError::Signature => "signature",
            AttestError::Stale { .. } | AttestError::FromTheFuture { .. } => "freshness",
            AttestError::NonceMissing | AttestError::NonceMismatch => "nonce",
            AttestError::PcrMissing(_) | AttestError::PcrMismatch(_) => "pcr-policy",
            AttestError::DebugMode => "debug",
            AttestError::AnchorMismatch(_) | AttestError::BadAnchor(_) => "anchor",
        }
    }
}

/// At most `max` characters of `s`, for error messages that quote document content.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_stable() {
        assert_eq!(AttestError::TooLarge(1).step(), "size");
        assert_eq!(AttestError::UnexpectedTag(19).step(), "envelope");
        assert_eq!(AttestError::WrongAlgorithm.step(), "algorithm");
        assert_eq!(AttestError::FieldSize { field: "nonce", len: 2000 }.step(), "payload");
        assert_eq!(AttestError::Certificate(String::new()).step(), "certificate");
        assert_eq!(AttestError::UntrustedRoot.step(), "chain");
        assert_eq!(AttestError::CertificateExpired.step(), "validity");
        assert_eq!(AttestError::Signature.step(), "signature");
        assert_eq!(AttestError::Stale { age_ms: 1 }.step(), "freshness");
        assert_eq!(AttestError::NonceMismatch.step(), "nonce");
        assert_eq!(AttestError::PcrMissing(20).step(), "pcr-policy");
        assert_eq!(AttestError::DebugMode.step(), "debug");
        assert_eq!(AttestError::AnchorMismatch(String::new()).step(), "anchor");
    }

    #[test]
    fn excerpt_is_bounded() {
        assert_eq!(excerpt("SHA384", 16), "SHA384");
        assert_eq!(excerpt(&"x".repeat(100), 4), "xxxx…");
    }
}
