//! The quorum's use of RFC 9180 (base mode, DHKEM(P-384, HKDF-SHA384), HKDF-SHA384, AES-256-GCM) and of operator
//! keys: sealing a share to an operator, the enclave's ephemeral unseal key and opening submissions with it, and
//! checking an operator's ECDSA P-384 signature. Ciphertexts are `enc` (97 bytes) || ciphertext || tag, as the
//! Recipient extension's.

use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1, UnparsedPublicKey};
use der::Decode;
use der::asn1::ObjectIdentifier;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha384;
use hpke::kem::DhP384HkdfSha384;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use zeroize::{Zeroize, Zeroizing};

type PrivateKey = <DhP384HkdfSha384 as Kem>::PrivateKey;
type PublicKey = <DhP384HkdfSha384 as Kem>::PublicKey;
type EncappedKey = <DhP384HkdfSha384 as Kem>::EncappedKey;

/// Length of an uncompressed P-384 point (and of `enc`).
pub const POINT_LEN: usize = 97;
const TAG_LEN: usize = 16;
/// DER of a P-384 SubjectPublicKeyInfo up to its uncompressed point (RFC 5480).
const SPKI_P384_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x22, 0x03, 0x62, 0x00,
];
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Why an operator key or a sealed share was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuorumCryptoError {
    /// Not a DER SubjectPublicKeyInfo of a P-384 key with an uncompressed point on the curve.
    #[error("not a P-384 public key")]
    NotP384,
    /// The ciphertext does not open with this key and binding.
    #[error("does not open")]
    Open,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// Randomness or a cipher failed.
    #[error("internal crypto failure")]
    Internal,
}

/// The uncompressed point of a P-384 SubjectPublicKeyInfo, checked to lie on the curve.
pub fn p384_point(spki_der: &[u8]) -> Result<Vec<u8>, QuorumCryptoError> {
    let spki = ::cms::spki::SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|_| QuorumCryptoError::NotP384)?;
    let curve = spki.algorithm.parameters.ok_or(QuorumCryptoError::NotP384)?;
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY
        || curve.decode_as::<ObjectIdentifier>().map_err(|_| QuorumCryptoError::NotP384)? != SECP384R1
    {
        return Err(QuorumCryptoError::NotP384);
    }
    let point = spki.subject_public_key.as_bytes().ok_or(QuorumCryptoError::NotP384)?;
    if point.len() != POINT_LEN || point.first() != Some(&0x04) {
        return Err(QuorumCryptoError::NotP384);
    }
    PublicKey::from_bytes(point).map_err(|_| QuorumCryptoError::NotP384)?;
    Ok(point.to_vec())
}

/// Seals `plaintext` to the operator key `spki_der` with `info`.
pub fn seal(spki_der: &[u8], info: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, QuorumCryptoError> {
    let recipient = PublicKey::from_bytes(&p384_point(spki_der)?).map_err(|_| QuorumCryptoError::NotP384)?;
    let (enc, mut ctx) =
        hpke::setup_sender::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(&OpModeS::Base, &recipient, info)
            .map_err(|_| QuorumCryptoError::Internal)?;
    let mut body = Zeroizing::new(plaintext.to_vec());
    let tag = ctx.seal_inout_detached(body.as_mut_slice().into(), b"").map_err(|_| QuorumCryptoError::Internal)?;
    let mut out = Vec::with_capacity(POINT_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag.to_bytes());
    Ok(out)
}

/// The sealed enclave's ephemeral unseal key: made fresh at every sealed start, never stored, so a submission made
/// for an earlier start's document cannot be opened by this one.
pub struct UnsealKey {
    sk: PrivateKey,
    spki: Vec<u8>,
}

impl UnsealKey {
    /// A fresh key from the OS random source.
    pub fn generate() -> Result<Self, QuorumCryptoError> {
        let mut ikm = Zeroizing::new([0u8; 48]);
        getrandom::fill(ikm.as_mut_slice()).map_err(|_| QuorumCryptoError::Internal)?;
        let (sk, pk) = DhP384HkdfSha384::derive_keypair(ikm.as_slice());
        let mut spki = Vec::with_capacity(SPKI_P384_PREFIX.len() + POINT_LEN);
        spki.extend_from_slice(&SPKI_P384_PREFIX);
        spki.extend_from_slice(&pk.to_bytes());
        Ok(Self { sk, spki })
    }

    /// The public key as a DER SubjectPublicKeyInfo (the attestation document's `public_key`).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Opens a submission sealed to this key with `info`.
    pub fn open(&self, info: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, QuorumCryptoError> {
        let (enc, rest) = sealed.split_at_checked(POINT_LEN).ok_or(QuorumCryptoError::Open)?;
        let (ct, tag) = rest.split_at_checked(rest.len().saturating_sub(TAG_LEN)).ok_or(QuorumCryptoError::Open)?;
        if tag.len() != TAG_LEN {
            return Err(QuorumCryptoError::Open);
        }
        let enc = EncappedKey::from_bytes(enc).map_err(|_| QuorumCryptoError::Open)?;
        let tag = hpke::aead::AeadTag::<AesGcm256>::from_bytes(tag).map_err(|_| QuorumCryptoError::Open)?;
        let mut ctx =
            hpke::setup_receiver::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(&OpModeR::Base, &self.sk, &enc, info)
                .map_err(|_| QuorumCryptoError::Open)?;
        let mut body = Zeroizing::new(ct.to_vec());
        if ctx.open_inout_detached(body.as_mut_slice().into(), b"", &tag).is_err() {
            body.zeroize();
            return Err(QuorumCryptoError::Open);
        }
        Ok(body)
    }
}

/// Checks an ECDSA P-384 / SHA-384 signature (ASN.1 DER) by the operator key `spki_der` over `message`.
pub fn verify_operator(spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<(), QuorumCryptoError> {
    let point = p384_point(spki_der)?;
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &point)
        .verify(message, signature)
        .map_err(|_| QuorumCryptoError::Signature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    /// An operator: the signing key and its SPKI, made by aws-lc-rs (as `kms-host quorum keygen` does).
    pub(crate) fn operator() -> (EcdsaKeyPair, Vec<u8>) {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &SystemRandom::new()).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let mut spki = SPKI_P384_PREFIX.to_vec();
        spki.extend_from_slice(kp.public_key().as_ref());
        (kp, spki)
    }

    #[test]
    fn unseal_key_round_trip_and_binding() {
        let key = UnsealKey::generate().unwrap();
        let sealed = seal(key.spki(), b"info-a", b"share bytes").unwrap();
        assert_eq!(&*key.open(b"info-a", &sealed).unwrap(), b"share bytes");
        assert_eq!(key.open(b"info-b", &sealed).unwrap_err(), QuorumCryptoError::Open);
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(b"info-a", &flipped).unwrap_err(), QuorumCryptoError::Open);
        assert_eq!(key.open(b"info-a", &sealed[..50]).unwrap_err(), QuorumCryptoError::Open);
        // Another start's key does not open it.
        let other = UnsealKey::generate().unwrap();
        assert_eq!(other.open(b"info-a", &sealed).unwrap_err(), QuorumCryptoError::Open);
    }

    #[test]
    fn operator_signatures() {
        let (kp, spki) = operator();
        let sig = kp.sign(&SystemRandom::new(), b"msg").unwrap();
        verify_operator(&spki, b"msg", sig.as_ref()).unwrap();
        assert_eq!(verify_operator(&spki, b"msh", sig.as_ref()).unwrap_err(), QuorumCryptoError::Signature);
        let (_, other) = operator();
        assert_eq!(verify_operator(&other, b"msg", sig.as_ref()).unwrap_err(), QuorumCryptoError::Signature);
        assert_eq!(verify_operator(b"junk", b"msg", sig.as_ref()).unwrap_err(), QuorumCryptoError::NotP384);
        let mut off_curve = spki.clone();
        *off_curve.last_mut().unwrap() ^= 1;
        assert_eq!(p384_point(&off_curve).unwrap_err(), QuorumCryptoError::NotP384);
    }
}
