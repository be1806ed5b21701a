//! `HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM`: our extension to `Recipient` (AWS KMS has no such option).
//!
//! RFC 9180 base mode with DHKEM(P-384, HKDF-SHA384) (KEM 0x0011), HKDF-SHA384 (KDF 0x0002) and AES-256-GCM
//! (AEAD 0x0002). The recipient key is the document's `public_key`: a DER SubjectPublicKeyInfo of an EC P-384 key with
//! an uncompressed point. `info` = [`INFO_PREFIX`] || SHA-384(attestation document), so a response opens only for the
//! document it answered; `aad` is [`super::Binding::aad`] (the response's KeyId and a hash of its CiphertextBlob), so it
//! opens only as part of the answer it was made for. Output: `enc` (the 97-byte uncompressed ephemeral point) || ciphertext || tag.

use super::RecipientError;
use ::cms::spki::SubjectPublicKeyInfoRef;
use der::Decode;
use der::asn1::ObjectIdentifier;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha384;
use hpke::kem::DhP384HkdfSha384;
use hpke::{Deserializable, Kem, OpModeS, Serializable};
use zeroize::Zeroizing;

/// The `info` prefix; SHA-384 of the attestation document follows it.
pub const INFO_PREFIX: &[u8] = b"enclave-kms recipient v1";
/// Length of `enc`, an uncompressed P-384 point.
pub const ENC_LEN: usize = 97;
/// Length of the AES-256-GCM tag.
pub const TAG_LEN: usize = 16;

/// id-ecPublicKey (RFC 5480).
pub const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp384r1 (RFC 5480).
pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The HPKE `info` for an attestation document's SHA-384.
pub fn info(document_sha384: &[u8; 48]) -> Vec<u8> {
    let mut info = Vec::with_capacity(INFO_PREFIX.len() + document_sha384.len());
    info.extend_from_slice(INFO_PREFIX);
    info.extend_from_slice(document_sha384);
    info
}

fn p384_recipient(spki_der: &[u8]) -> Result<<DhP384HkdfSha384 as Kem>::PublicKey, RecipientError> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|_| RecipientError::MalformedPublicKey)?;
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(RecipientError::NotP384);
    }
    let curve = spki.algorithm.parameters.ok_or(RecipientError::NotP384)?;
    if curve.decode_as::<ObjectIdentifier>().map_err(|_| RecipientError::NotP384)? != SECP384R1 {
        return Err(RecipientError::NotP384);
    }
    let point = spki.subject_public_key.as_bytes().ok_or(RecipientError::NotP384)?;
    if point.len() != ENC_LEN || point.first() != Some(&0x04) {
        return Err(RecipientError::NotP384);
    }
    // Checks that the point is on the curve and not the identity.
    <DhP384HkdfSha384 as Kem>::PublicKey::from_bytes(point).map_err(|_| RecipientError::NotP384)
}

/// Seals `plaintext` for the P-384 key `spki_der`, bound to the document whose SHA-384 is `document_sha384` and to
/// `aad`.
pub fn seal(
    spki_der: &[u8],
    document_sha384: &[u8; 48],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, RecipientError> {
    let recipient = p384_recipient(spki_der)?;
    let (enc, mut context) = hpke::setup_sender::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(
        &OpModeS::Base,
        &recipient,
        &info(document_sha384),
    )
    .map_err(|_| RecipientError::Internal)?;
    // Sealed in place in a buffer that is zeroized if sealing fails.
    let mut body = Zeroizing::new(plaintext.to_vec());
    let tag = context.seal_inout_detached(body.as_mut_slice().into(), aad).map_err(|_| RecipientError::Internal)?;
    let mut out = Vec::with_capacity(ENC_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag.to_bytes());
    Ok(out)
}
