//! Encryption to an attested recipient: AWS KMS's `Recipient` parameter (`CiphertextForRecipient`).
//!
//! The caller has already verified the attestation document; this module only encrypts to the public key it carries.
//! - `RSAES_OAEP_SHA_256` ([`cms_oaep`]): CMS `EnvelopedData` exactly as AWS KMS emits it (one `KeyTransRecipientInfo`
//!   with RSAES-OAEP-SHA256, AES-256-CBC content), so the AWS Nitro Enclaves SDK, kmstool and Enclaver open it.
//! - `HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM` ([`hpke_p384`]): our extension, RFC 9180 base mode bound to the exact
//!   attestation document through the `info` string.
//!
//! [`nonce`] issues and redeems the server nonces that clients put into fresh attestation documents.

pub mod cms_oaep;
pub mod cms_open;
pub mod hpke_p384;
pub mod nonce;

/// Smallest RSA modulus accepted from an attestation document, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted from an attestation document, in bits.
pub const MAX_RSA_BITS: usize = 4096;

/// The `KeyEncryptionAlgorithm` of a request's `Recipient`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEncryptionAlgorithm {
    /// `RSAES_OAEP_SHA_256`: CMS EnvelopedData, as AWS KMS.
    RsaesOaepSha256,
    /// `HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM`: our extension (RFC 9180 base mode).
    Hpke,
}

impl KeyEncryptionAlgorithm {
    /// Parses the request string; `None` for anything else (case-sensitive, as AWS).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RSAES_OAEP_SHA_256" => Some(Self::RsaesOaepSha256),
            "HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM" => Some(Self::Hpke),
            _ => None,
        }
    }

    /// The request string.
    pub fn name(self) -> &'static str {
        match self {
            Self::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
            Self::Hpke => "HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM",
        }
    }
}

/// Why a response could not be encrypted for the recipient. Every variant but [`RecipientError::Internal`] is the
/// caller's fault and its message is written for a `ValidationException`; `Internal` is a server fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecipientError {
    /// The document's `public_key` does not parse as a DER SubjectPublicKeyInfo.
    #[error("the attestation document's public key is not a DER SubjectPublicKeyInfo")]
    MalformedPublicKey,
    /// RSAES_OAEP_SHA_256 with a key that is not RSA, or of the wrong size.
    #[error("the attestation document's public key is not an RSA key of 2048 to 4096 bits")]
    NotRsa,
    /// HPKE with a key that is not an uncompressed P-384 point.
    #[error("the attestation document's public key is not a P-384 key (uncompressed point)")]
    NotP384,
    /// Randomness or a cipher failed: not the caller's fault.
    #[error("internal error while encrypting for the recipient")]
    Internal,
}

/// Encrypts `plaintext` to the public key of a *verified* attestation document.
///
/// `spki_der` is the document's `public_key` (DER SubjectPublicKeyInfo) and `document_sha384` the SHA-384 of the
/// whole document as the caller sent it; HPKE binds its output to it, CMS has no place for it.
pub fn seal(
    alg: KeyEncryptionAlgorithm,
    spki_der: &[u8],
    document_sha384: &[u8; 48],
    plaintext: &[u8],
) -> Result<Vec<u8>, RecipientError> {
    match alg {
        KeyEncryptionAlgorithm::RsaesOaepSha256 => cms_oaep::seal(spki_der, plaintext),
        KeyEncryptionAlgorithm::Hpke => hpke_p384::seal(spki_der, document_sha384, plaintext),
    }
}

#[cfg(test)]
mod tests;
