//! Encryption to an attested recipient: AWS KMS's `Recipient` parameter (`CiphertextForRecipient`).
//!
//! The caller has already verified the attestation document; this module only encrypts to the public key it carries.
//! - `RSAES_OAEP_SHA_256` ([`cms_oaep`]): CMS `EnvelopedData` exactly as AWS KMS emits it (one `KeyTransRecipientInfo`
//!   with RSAES-OAEP-SHA256, AES-256-CBC content), so the AWS Nitro Enclaves SDK, kmstool and Enclaver open it.
//! - `HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM` ([`hpke_p384`]): our extension, RFC 9180 base mode bound to the exact
//!   attestation document through the `info` string, and to the answer it travels in (KeyId, CiphertextBlob) through
//!   the AAD ([`Binding`]).
//!
//! [`nonce`] issues and redeems the server nonces that clients put into fresh attestation documents.

pub mod cms_oaep;
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

/// What an HPKE answer is bound to besides the document: the response's `KeyId` (empty for GenerateRandom) and its
/// `CiphertextBlob` (GenerateDataKey) or `PrivateKeyCiphertextBlob` (GenerateDataKeyPair), empty where the response
/// has none. CMS has no authenticated place for it (and CBC is malleable): prefer HPKE.
#[derive(Clone, Copy, Debug, Default)]
pub struct Binding<'a> {
    /// The response's KeyId (a key ARN), or "".
    pub key_id: &'a str,
    /// The response's ciphertext blob, or empty.
    pub ciphertext_blob: &'a [u8],
}

/// Prefix of the HPKE AAD.
pub const AAD_PREFIX: &[u8] = b"enclave-kms recipient aad v1";

impl Binding<'_> {
    /// The HPKE AAD: [`AAD_PREFIX`] || u32 big-endian length of the KeyId || KeyId || SHA-256(ciphertext blob).
    pub fn aad(&self) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let id = self.key_id.as_bytes();
        let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 4 + id.len() + 32);
        aad.extend_from_slice(AAD_PREFIX);
        aad.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(id);
        aad.extend_from_slice(&Sha256::digest(self.ciphertext_blob));
        aad
    }
}

/// Encrypts `plaintext` to the public key of a *verified* attestation document.
///
/// `spki_der` is the document's `public_key` (DER SubjectPublicKeyInfo) and `document_sha384` the SHA-384 of the
/// whole document as the caller sent it; HPKE binds its output to it and to `aad` ([`Binding::aad`]), CMS has no
/// place for either.
pub fn seal(
    alg: KeyEncryptionAlgorithm,
    spki_der: &[u8],
    document_sha384: &[u8; 48],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, RecipientError> {
    match alg {
        KeyEncryptionAlgorithm::RsaesOaepSha256 => cms_oaep::seal(spki_der, plaintext),
        KeyEncryptionAlgorithm::Hpke => hpke_p384::seal(spki_der, document_sha384, aad, plaintext),
    }
}

#[cfg(test)]
mod tests;
