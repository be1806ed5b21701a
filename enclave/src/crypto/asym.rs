//! Asymmetric and HMAC key material and the operations on it, over aws-lc-rs (constant-time RSA: the `rsa` crate is
//! under RUSTSEC-2023-0071 and is never used here).
//!
//! - Key pairs (RSA 2048/3072/4096, NIST P-256/384/521, secp256k1): generated from the enclave's entropy, private
//!   halves kept as PKCS#8 DER in [`Zeroizing`] buffers (and, parsed, inside aws-lc, which cleanses on free), public
//!   halves as DER SubjectPublicKeyInfo.
//! - Sign/Verify with AWS's algorithm names and pairings; MessageType RAW (hashed here) or DIGEST (the caller's hash,
//!   whose length must be the algorithm's digest length). ECDSA signatures are DER, as AWS returns them; RSA-PSS uses
//!   a salt as long as the digest, as AWS does.
//! - RSAES-OAEP with SHA-1 or SHA-256 (MGF1 with the same hash, empty label).
//! - HMAC-SHA-224/256/384/512 with constant-time verification.
//! - ECDH on the NIST curves with a caller's DER SubjectPublicKeyInfo (the point is validated by aws-lc).

use aws_lc_rs::agreement;
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, RsaKeyPair, UnparsedPublicKey};
use std::fmt;
use zeroize::Zeroizing;

/// What can go wrong. Deliberately coarse: no variant carries key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AsymError {
    /// The algorithm is not one this key spec supports.
    #[error("the algorithm is not valid for this key spec")]
    AlgorithmMismatch,
    /// A DIGEST message whose length is not the algorithm's digest length.
    #[error("the digest length does not match the signing algorithm")]
    DigestLength,
    /// A plaintext too long for the key and algorithm.
    #[error("the plaintext is too long for this key and algorithm")]
    PlaintextTooLong,
    /// A public key that is not a valid DER SubjectPublicKeyInfo for the curve.
    #[error("the public key is not valid for this key spec")]
    InvalidPublicKey,
    /// Key material that does not parse as the spec says.
    #[error("the key material does not match its key spec")]
    BadKey,
    /// A failed decryption (wrong key, tampered or malformed ciphertext): opaque on purpose.
    #[error("cryptographic failure")]
    Crypto,
}

/// The asymmetric key specs (KeySpec of a KMS key, KeyPairSpec of GenerateDataKeyPair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PairSpec {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccNistP256,
    EccNistP384,
    EccNistP521,
    EccSecgP256k1,
}

/// Every pair spec, in AWS's order.
pub const PAIR_SPECS: [PairSpec; 7] = [
    PairSpec::Rsa2048,
    PairSpec::Rsa3072,
    PairSpec::Rsa4096,
    PairSpec::EccNistP256,
    PairSpec::EccNistP384,
    PairSpec::EccNistP521,
    PairSpec::EccSecgP256k1,
];

impl PairSpec {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            PairSpec::Rsa2048 => "RSA_2048",
            PairSpec::Rsa3072 => "RSA_3072",
            PairSpec::Rsa4096 => "RSA_4096",
            PairSpec::EccNistP256 => "ECC_NIST_P256",
            PairSpec::EccNistP384 => "ECC_NIST_P384",
            PairSpec::EccNistP521 => "ECC_NIST_P521",
            PairSpec::EccSecgP256k1 => "ECC_SECG_P256K1",
        }
    }

    /// The spec AWS names `name`.
    pub fn from_name(name: &str) -> Option<PairSpec> {
        PAIR_SPECS.into_iter().find(|s| s.name() == name)
    }

    /// Whether this is an RSA spec.
    pub fn is_rsa(self) -> bool {
        matches!(self, PairSpec::Rsa2048 | PairSpec::Rsa3072 | PairSpec::Rsa4096)
    }

    /// The signing algorithms AWS offers for this spec.
    pub fn signing_algorithms(self) -> &'static [SigningAlgorithm] {
        use SigningAlgorithm::*;
        match self {
            PairSpec::Rsa2048 | PairSpec::Rsa3072 | PairSpec::Rsa4096 => &[
                RsassaPssSha256,
                RsassaPssSha384,
                RsassaPssSha512,
                RsassaPkcs1V15Sha256,
                RsassaPkcs1V15Sha384,
                RsassaPkcs1V15Sha512,
            ],
            PairSpec::EccNistP256 | PairSpec::EccSecgP256k1 => &[EcdsaSha256],
            PairSpec::EccNistP384 => &[EcdsaSha384],
            PairSpec::EccNistP521 => &[EcdsaSha512],
        }
    }

    /// The encryption algorithms AWS offers for this spec (RSA only).
    pub fn encryption_algorithms(self) -> &'static [EncryptionAlgorithm] {
        if self.is_rsa() { &[EncryptionAlgorithm::RsaesOaepSha1, EncryptionAlgorithm::RsaesOaepSha256] } else { &[] }
    }

    /// Whether AWS offers key agreement (ECDH) for this spec: the NIST curves.
    pub fn supports_key_agreement(self) -> bool {
        matches!(self, PairSpec::EccNistP256 | PairSpec::EccNistP384 | PairSpec::EccNistP521)
    }

    fn rsa_size(self) -> Option<KeySize> {
        match self {
            PairSpec::Rsa2048 => Some(KeySize::Rsa2048),
            PairSpec::Rsa3072 => Some(KeySize::Rsa3072),
            PairSpec::Rsa4096 => Some(KeySize::Rsa4096),
            _ => None,
        }
    }

    /// Modulus bytes of an RSA spec.
    pub fn rsa_bytes(self) -> Option<usize> {
        match self {
            PairSpec::Rsa2048 => Some(256),
            PairSpec::Rsa3072 => Some(384),
            PairSpec::Rsa4096 => Some(512),
            _ => None,
        }
    }

    fn ecdsa(self) -> Option<&'static EcdsaSigningAlgorithm> {
        match self {
            PairSpec::EccNistP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            PairSpec::EccNistP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
            PairSpec::EccNistP521 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
            PairSpec::EccSecgP256k1 => Some(&signature::ECDSA_P256K1_SHA256_ASN1_SIGNING),
            _ => None,
        }
    }

    fn ecdh(self) -> Option<&'static agreement::Algorithm> {
        match self {
            PairSpec::EccNistP256 => Some(&agreement::ECDH_P256),
            PairSpec::EccNistP384 => Some(&agreement::ECDH_P384),
            PairSpec::EccNistP521 => Some(&agreement::ECDH_P521),
            _ => None,
        }
    }
}

/// Signing algorithms, with AWS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    RsassaPssSha256,
    RsassaPssSha384,
    RsassaPssSha512,
    RsassaPkcs1V15Sha256,
    RsassaPkcs1V15Sha384,
    RsassaPkcs1V15Sha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

/// Every signing algorithm this service knows.
pub const SIGNING_ALGORITHMS: [SigningAlgorithm; 9] = [
    SigningAlgorithm::RsassaPssSha256,
    SigningAlgorithm::RsassaPssSha384,
    SigningAlgorithm::RsassaPssSha512,
    SigningAlgorithm::RsassaPkcs1V15Sha256,
    SigningAlgorithm::RsassaPkcs1V15Sha384,
    SigningAlgorithm::RsassaPkcs1V15Sha512,
    SigningAlgorithm::EcdsaSha256,
    SigningAlgorithm::EcdsaSha384,
    SigningAlgorithm::EcdsaSha512,
];

impl SigningAlgorithm {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::RsassaPssSha256 => "RSASSA_PSS_SHA_256",
            SigningAlgorithm::RsassaPssSha384 => "RSASSA_PSS_SHA_384",
            SigningAlgorithm::RsassaPssSha512 => "RSASSA_PSS_SHA_512",
            SigningAlgorithm::RsassaPkcs1V15Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
            SigningAlgorithm::RsassaPkcs1V15Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
            SigningAlgorithm::RsassaPkcs1V15Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
            SigningAlgorithm::EcdsaSha256 => "ECDSA_SHA_256",
            SigningAlgorithm::EcdsaSha384 => "ECDSA_SHA_384",
            SigningAlgorithm::EcdsaSha512 => "ECDSA_SHA_512",
        }
    }

    /// The algorithm AWS names `name`.
    pub fn from_name(name: &str) -> Option<SigningAlgorithm> {
        SIGNING_ALGORITHMS.into_iter().find(|a| a.name() == name)
    }

    /// The hash.
    pub fn digest(self) -> &'static digest::Algorithm {
        match self {
            SigningAlgorithm::RsassaPssSha256
            | SigningAlgorithm::RsassaPkcs1V15Sha256
            | SigningAlgorithm::EcdsaSha256 => &digest::SHA256,
            SigningAlgorithm::RsassaPssSha384
            | SigningAlgorithm::RsassaPkcs1V15Sha384
            | SigningAlgorithm::EcdsaSha384 => &digest::SHA384,
            SigningAlgorithm::RsassaPssSha512
            | SigningAlgorithm::RsassaPkcs1V15Sha512
            | SigningAlgorithm::EcdsaSha512 => &digest::SHA512,
        }
    }

    /// The digest length a DIGEST message must have.
    pub fn digest_len(self) -> usize {
        self.digest().output_len()
    }

    fn rsa_encoding(self) -> Option<&'static dyn signature::RsaEncoding> {
        match self {
            SigningAlgorithm::RsassaPssSha256 => Some(&signature::RSA_PSS_SHA256),
            SigningAlgorithm::RsassaPssSha384 => Some(&signature::RSA_PSS_SHA384),
            SigningAlgorithm::RsassaPssSha512 => Some(&signature::RSA_PSS_SHA512),
            SigningAlgorithm::RsassaPkcs1V15Sha256 => Some(&signature::RSA_PKCS1_SHA256),
            SigningAlgorithm::RsassaPkcs1V15Sha384 => Some(&signature::RSA_PKCS1_SHA384),
            SigningAlgorithm::RsassaPkcs1V15Sha512 => Some(&signature::RSA_PKCS1_SHA512),
            _ => None,
        }
    }

    fn rsa_parameters(self) -> Option<&'static signature::RsaParameters> {
        match self {
            SigningAlgorithm::RsassaPssSha256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            SigningAlgorithm::RsassaPssSha384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            SigningAlgorithm::RsassaPssSha512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            SigningAlgorithm::RsassaPkcs1V15Sha256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            SigningAlgorithm::RsassaPkcs1V15Sha384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            SigningAlgorithm::RsassaPkcs1V15Sha512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            _ => None,
        }
    }
}

/// Sign/Verify MessageType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// The message itself; hashed here.
    Raw,
    /// The caller's hash of the message.
    Digest,
}

impl MessageType {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Raw => "RAW",
            MessageType::Digest => "DIGEST",
        }
    }

    /// The type AWS names `name`.
    pub fn from_name(name: &str) -> Option<MessageType> {
        match name {
            "RAW" => Some(MessageType::Raw),
            "DIGEST" => Some(MessageType::Digest),
            _ => None,
        }
    }
}

/// Asymmetric encryption algorithms, with AWS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionAlgorithm {
    RsaesOaepSha1,
    RsaesOaepSha256,
}

impl EncryptionAlgorithm {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            EncryptionAlgorithm::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
            EncryptionAlgorithm::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
        }
    }

    /// The algorithm AWS names `name`.
    pub fn from_name(name: &str) -> Option<EncryptionAlgorithm> {
        match name {
            "RSAES_OAEP_SHA_1" => Some(EncryptionAlgorithm::RsaesOaepSha1),
            "RSAES_OAEP_SHA_256" => Some(EncryptionAlgorithm::RsaesOaepSha256),
            _ => None,
        }
    }

    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            EncryptionAlgorithm::RsaesOaepSha1 => &OAEP_SHA1_MGF1SHA1,
            EncryptionAlgorithm::RsaesOaepSha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }

    /// The longest plaintext for an RSA key of `spec` (k − 2·hLen − 2, as AWS documents: 214/342/470 bytes with
    /// SHA-1, 190/318/446 with SHA-256).
    pub fn max_plaintext(self, spec: PairSpec) -> usize {
        let h = match self {
            EncryptionAlgorithm::RsaesOaepSha1 => 20,
            EncryptionAlgorithm::RsaesOaepSha256 => 32,
        };
        spec.rsa_bytes().map_or(0, |k| k.saturating_sub(2 * h + 2))
    }
}

/// A freshly generated key pair in its stored forms.
pub struct GeneratedPair {
    /// PKCS#8 DER of the private key.
    pub private_pkcs8: Zeroizing<Vec<u8>>,
    /// DER SubjectPublicKeyInfo.
    pub public_spki: Vec<u8>,
}

impl fmt::Debug for GeneratedPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GeneratedPair(..)")
    }
}

/// Generates a key pair of `spec` from the system's entropy (seeded by the NSM in an enclave).
pub fn generate_pair(spec: PairSpec) -> Result<GeneratedPair, AsymError> {
    if let Some(size) = spec.rsa_size() {
        let pair = RsaKeyPair::generate(size).map_err(|_| AsymError::Crypto)?;
        let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| AsymError::Crypto)?;
        let spki: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(|_| AsymError::Crypto)?;
        return Ok(GeneratedPair {
            private_pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
            public_spki: spki.as_ref().to_vec(),
        });
    }
    let alg = spec.ecdsa().ok_or(AsymError::BadKey)?;
    let pair = EcdsaKeyPair::generate(alg).map_err(|_| AsymError::Crypto)?;
    let pkcs8 = pair.to_pkcs8v1().map_err(|_| AsymError::Crypto)?;
    let spki: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(|_| AsymError::Crypto)?;
    Ok(GeneratedPair { private_pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()), public_spki: spki.as_ref().to_vec() })
}

enum Inner {
    Rsa { sign: RsaKeyPair, decrypt: OaepPrivateDecryptingKey },
    Ec { sign: EcdsaKeyPair, agree: Option<agreement::PrivateKey> },
}

/// A private key, parsed once (kept in the key cache) and usable for every operation its spec allows.
pub struct PrivateKey {
    spec: PairSpec,
    public_spki: Vec<u8>,
    inner: Inner,
    /// The public key parsed once per signing algorithm of the spec, so Verify does not parse it every time.
    verifiers: Vec<(SigningAlgorithm, signature::ParsedPublicKey)>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, ..)", self.spec.name())
    }
}

/// Hashes `message` (RAW) or takes it as the hash (DIGEST, checked for length).
fn to_digest(alg: SigningAlgorithm, message_type: MessageType, message: &[u8]) -> Result<Digest, AsymError> {
    match message_type {
        MessageType::Raw => Ok(digest::digest(alg.digest(), message)),
        MessageType::Digest => {
            if message.len() != alg.digest_len() {
                return Err(AsymError::DigestLength);
            }
            Digest::import_less_safe(message, alg.digest()).map_err(|_| AsymError::DigestLength)
        }
    }
}

fn check_pairing(spec: PairSpec, alg: SigningAlgorithm) -> Result<(), AsymError> {
    if spec.signing_algorithms().contains(&alg) { Ok(()) } else { Err(AsymError::AlgorithmMismatch) }
}

impl PrivateKey {
    /// Parses a stored PKCS#8 private key of `spec` (the curve or modulus size must match the spec).
    pub fn from_pkcs8(spec: PairSpec, pkcs8: &[u8]) -> Result<PrivateKey, AsymError> {
        let (inner, spki): (Inner, PublicKeyX509Der<'static>) = if let Some(k) = spec.rsa_bytes() {
            let sign = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| AsymError::BadKey)?;
            if sign.public_modulus_len() != k {
                return Err(AsymError::BadKey);
            }
            let spki = sign.public_key().as_der().map_err(|_| AsymError::BadKey)?;
            let decrypt = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| AsymError::BadKey)?;
            let decrypt = OaepPrivateDecryptingKey::new(decrypt).map_err(|_| AsymError::BadKey)?;
            (Inner::Rsa { sign, decrypt }, spki)
        } else {
            let alg = spec.ecdsa().ok_or(AsymError::BadKey)?;
            let sign = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| AsymError::BadKey)?;
            let spki = sign.public_key().as_der().map_err(|_| AsymError::BadKey)?;
            let agree = match spec.ecdh() {
                Some(a) => Some(agreement::PrivateKey::from_private_key_der(a, pkcs8).map_err(|_| AsymError::BadKey)?),
                None => None,
            };
            (Inner::Ec { sign, agree }, spki)
        };
        let mut verifiers = Vec::with_capacity(spec.signing_algorithms().len());
        for &alg in spec.signing_algorithms() {
            let parsed = signature::ParsedPublicKey::new(verification_algorithm(spec, alg)?, spki.as_ref())
                .map_err(|_| AsymError::BadKey)?;
            verifiers.push((alg, parsed));
        }
        Ok(PrivateKey { spec, public_spki: spki.as_ref().to_vec(), inner, verifiers })
    }

    /// The key spec.
    pub fn spec(&self) -> PairSpec {
        self.spec
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_spki
    }

    /// Signs. ECDSA signatures are DER; RSA signatures are as long as the modulus.
    pub fn sign(&self, alg: SigningAlgorithm, message_type: MessageType, message: &[u8]) -> Result<Vec<u8>, AsymError> {
        check_pairing(self.spec, alg)?;
        let digest = to_digest(alg, message_type, message)?;
        match &self.inner {
            Inner::Rsa { sign, .. } => {
                let encoding = alg.rsa_encoding().ok_or(AsymError::AlgorithmMismatch)?;
                let mut sig = vec![0u8; sign.public_modulus_len()];
                sign.sign_digest(encoding, &digest, &mut sig).map_err(|_| AsymError::Crypto)?;
                Ok(sig)
            }
            Inner::Ec { sign, .. } => {
                let sig = sign.sign_digest(&digest).map_err(|_| AsymError::Crypto)?;
                Ok(sig.as_ref().to_vec())
            }
        }
    }

    /// Verifies a signature made with this key pair. `Ok(false)` for a signature that does not verify.
    pub fn verify(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, AsymError> {
        check_pairing(self.spec, alg)?;
        let digest = to_digest(alg, message_type, message)?;
        let (_, parsed) = self.verifiers.iter().find(|(a, _)| *a == alg).ok_or(AsymError::AlgorithmMismatch)?;
        Ok(parsed.verify_digest_sig(&digest, signature).is_ok())
    }

    /// RSAES-OAEP decryption. Any failure is the opaque [`AsymError::Crypto`] (no padding oracle).
    pub fn decrypt(&self, alg: EncryptionAlgorithm, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, AsymError> {
        self.decrypt_with_label(alg, ciphertext, None)
    }

    fn decrypt_with_label(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
        label: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, AsymError> {
        let Inner::Rsa { decrypt, .. } = &self.inner else { return Err(AsymError::AlgorithmMismatch) };
        if ciphertext.len() != decrypt.key_size_bytes() {
            return Err(AsymError::Crypto);
        }
        let mut out = Zeroizing::new(vec![0u8; decrypt.min_output_size()]);
        let n = decrypt.decrypt(alg.oaep(), ciphertext, &mut out, label).map_err(|_| AsymError::Crypto)?.len();
        out.truncate(n);
        Ok(out)
    }

    /// ECDH with a peer's DER SubjectPublicKeyInfo on the same curve: the raw shared secret (the x-coordinate), as
    /// AWS's DeriveSharedSecret returns it.
    pub fn derive_shared_secret(&self, peer_spki: &[u8]) -> Result<Zeroizing<Vec<u8>>, AsymError> {
        let Inner::Ec { agree: Some(private), .. } = &self.inner else { return Err(AsymError::AlgorithmMismatch) };
        ecdh(self.spec, private, peer_spki)
    }
}

/// The DER of a SubjectPublicKeyInfo for an uncompressed point on each NIST curve, up to the point.
const SPKI_P256: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const SPKI_P384: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x22, 0x03, 0x62, 0x00,
];
const SPKI_P521: &[u8] = &[
    0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
];

/// ECDH of `private` with a peer's DER SubjectPublicKeyInfo. A raw point, another curve, a point off the curve or at
/// infinity is [`AsymError::InvalidPublicKey`].
fn ecdh(spec: PairSpec, private: &agreement::PrivateKey, peer_spki: &[u8]) -> Result<Zeroizing<Vec<u8>>, AsymError> {
    // aws-lc-rs also accepts a bare SEC1 point and explicit curve parameters; AWS takes a SubjectPublicKeyInfo, and
    // we take it only in its canonical form: id-ecPublicKey with the named curve, uncompressed point.
    let prefix: &[u8] = match spec {
        PairSpec::EccNistP256 => SPKI_P256,
        PairSpec::EccNistP384 => SPKI_P384,
        PairSpec::EccNistP521 => SPKI_P521,
        _ => return Err(AsymError::AlgorithmMismatch),
    };
    let point = peer_spki.strip_prefix(prefix).ok_or(AsymError::InvalidPublicKey)?;
    if point.first() != Some(&0x04) {
        return Err(AsymError::InvalidPublicKey);
    }
    let peer = agreement::ParsedPublicKey::try_from(&agreement::UnparsedPublicKey::new(private.algorithm(), peer_spki))
        .map_err(|_| AsymError::InvalidPublicKey)?;
    if peer.format() != agreement::ParsedPublicKeyFormat::X509 {
        return Err(AsymError::InvalidPublicKey);
    }
    agreement::agree(private, peer, AsymError::InvalidPublicKey, |secret| Ok(Zeroizing::new(secret.to_vec())))
}

/// Verifies a signature with a DER SubjectPublicKeyInfo of `spec`. `Ok(false)` for a signature that does not verify.
pub fn verify(
    spec: PairSpec,
    public_spki: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, AsymError> {
    check_pairing(spec, alg)?;
    let digest = to_digest(alg, message_type, message)?;
    Ok(UnparsedPublicKey::new(verification_algorithm(spec, alg)?, public_spki)
        .verify_digest(&digest, signature)
        .is_ok())
}

/// aws-lc-rs's verification algorithm for a (checked) pairing of spec and signing algorithm.
fn verification_algorithm(
    spec: PairSpec,
    alg: SigningAlgorithm,
) -> Result<&'static dyn signature::VerificationAlgorithm, AsymError> {
    if let Some(params) = alg.rsa_parameters() {
        return Ok(params);
    }
    match spec {
        PairSpec::EccNistP256 => Ok(&signature::ECDSA_P256_SHA256_ASN1),
        PairSpec::EccNistP384 => Ok(&signature::ECDSA_P384_SHA384_ASN1),
        PairSpec::EccNistP521 => Ok(&signature::ECDSA_P521_SHA512_ASN1),
        PairSpec::EccSecgP256k1 => Ok(&signature::ECDSA_P256K1_SHA256_ASN1),
        _ => Err(AsymError::AlgorithmMismatch),
    }
}

/// RSAES-OAEP encryption to a DER SubjectPublicKeyInfo (tests, and clients of GetPublicKey do the same).
pub fn encrypt(public_spki: &[u8], alg: EncryptionAlgorithm, plaintext: &[u8]) -> Result<Vec<u8>, AsymError> {
    let key = PublicEncryptingKey::from_der(public_spki).map_err(|_| AsymError::InvalidPublicKey)?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| AsymError::InvalidPublicKey)?;
    if plaintext.len() > key.max_plaintext_size(alg.oaep()) {
        return Err(AsymError::PlaintextTooLong);
    }
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key.encrypt(alg.oaep(), plaintext, &mut out, None).map_err(|_| AsymError::Crypto)?.len();
    out.truncate(n);
    Ok(out)
}

/// HMAC key specs, with AWS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HmacSpec {
    Hmac224,
    Hmac256,
    Hmac384,
    Hmac512,
}

/// Every HMAC spec.
pub const HMAC_SPECS: [HmacSpec; 4] = [HmacSpec::Hmac224, HmacSpec::Hmac256, HmacSpec::Hmac384, HmacSpec::Hmac512];

impl HmacSpec {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            HmacSpec::Hmac224 => "HMAC_224",
            HmacSpec::Hmac256 => "HMAC_256",
            HmacSpec::Hmac384 => "HMAC_384",
            HmacSpec::Hmac512 => "HMAC_512",
        }
    }

    /// The spec AWS names `name`.
    pub fn from_name(name: &str) -> Option<HmacSpec> {
        HMAC_SPECS.into_iter().find(|s| s.name() == name)
    }

    /// Key length in bytes (AWS: 224, 256, 384 and 512 bits).
    pub fn key_len(self) -> usize {
        match self {
            HmacSpec::Hmac224 => 28,
            HmacSpec::Hmac256 => 32,
            HmacSpec::Hmac384 => 48,
            HmacSpec::Hmac512 => 64,
        }
    }

    /// The longest key AWS imports for this spec (the digest's block size).
    pub fn max_key_len(self) -> usize {
        match self {
            HmacSpec::Hmac224 | HmacSpec::Hmac256 => 64,
            HmacSpec::Hmac384 | HmacSpec::Hmac512 => 128,
        }
    }

    /// The one MAC algorithm of this spec.
    pub fn algorithm(self) -> MacAlgorithm {
        match self {
            HmacSpec::Hmac224 => MacAlgorithm::HmacSha224,
            HmacSpec::Hmac256 => MacAlgorithm::HmacSha256,
            HmacSpec::Hmac384 => MacAlgorithm::HmacSha384,
            HmacSpec::Hmac512 => MacAlgorithm::HmacSha512,
        }
    }
}

/// MAC algorithms, with AWS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl MacAlgorithm {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            MacAlgorithm::HmacSha224 => "HMAC_SHA_224",
            MacAlgorithm::HmacSha256 => "HMAC_SHA_256",
            MacAlgorithm::HmacSha384 => "HMAC_SHA_384",
            MacAlgorithm::HmacSha512 => "HMAC_SHA_512",
        }
    }

    /// The algorithm AWS names `name`.
    pub fn from_name(name: &str) -> Option<MacAlgorithm> {
        HMAC_SPECS.into_iter().map(HmacSpec::algorithm).find(|a| a.name() == name)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            MacAlgorithm::HmacSha224 => hmac::HMAC_SHA224,
            MacAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
            MacAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
            MacAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// An HMAC key: the secret bytes (zeroized on drop) and its spec.
pub struct HmacKey {
    spec: HmacSpec,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacKey({}, ..)", self.spec.name())
    }
}

impl HmacKey {
    /// A fresh random key of the spec's length.
    pub fn generate(spec: HmacSpec) -> Result<HmacKey, AsymError> {
        let mut key = Zeroizing::new(vec![0u8; spec.key_len()]);
        getrandom::fill(&mut key).map_err(|_| AsymError::Crypto)?;
        Ok(HmacKey { spec, key })
    }

    /// A stored key (its length must be the spec's).
    pub fn from_bytes(spec: HmacSpec, bytes: &[u8]) -> Result<HmacKey, AsymError> {
        if !(spec.key_len()..=spec.max_key_len()).contains(&bytes.len()) {
            return Err(AsymError::BadKey);
        }
        Ok(HmacKey { spec, key: Zeroizing::new(bytes.to_vec()) })
    }

    /// The spec.
    pub fn spec(&self) -> HmacSpec {
        self.spec
    }

    /// The secret bytes, for sealing into the key record only.
    pub fn expose_secret(&self) -> &[u8] {
        &self.key
    }

    /// The MAC of `message`.
    pub fn mac(&self, alg: MacAlgorithm, message: &[u8]) -> Result<Vec<u8>, AsymError> {
        if alg != self.spec.algorithm() {
            return Err(AsymError::AlgorithmMismatch);
        }
        Ok(mac_with(alg, &self.key, message))
    }

    /// Whether `tag` is the MAC of `message` (constant-time comparison of the full tag).
    pub fn verify(&self, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool, AsymError> {
        if alg != self.spec.algorithm() {
            return Err(AsymError::AlgorithmMismatch);
        }
        Ok(verify_mac_with(alg, &self.key, message, tag))
    }
}

fn mac_with(alg: MacAlgorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(alg.hmac(), key), message).as_ref().to_vec()
}

fn verify_mac_with(alg: MacAlgorithm, key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    hmac::verify(&hmac::Key::new(alg.hmac(), key), message, tag).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;
