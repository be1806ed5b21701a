//! `RSAES_OAEP_SHA_256`: CMS `EnvelopedData` (RFC 5652 §6) as AWS KMS returns `CiphertextForRecipient`.
//!
//! ```text
//! ContentInfo { id-envelopedData, EnvelopedData {
//!   version 2,
//!   recipientInfos { KeyTransRecipientInfo {
//!     version 2, rid [0] subjectKeyIdentifier (SHA-256 of the DER SubjectPublicKeyInfo, 32 bytes),
//!     keyEncryptionAlgorithm id-RSAES-OAEP { hashFunc sha256 (NULL), maskGenFunc mgf1(sha256 (NULL)) },
//!     encryptedKey RSA-OAEP-SHA256(fresh AES-256 key) } },
//!   encryptedContentInfo { id-data, aes256-CBC(IV), [0] IMPLICIT AES-256-CBC-PKCS#7(plaintext) } } }
//! ```
//! The output is DER, which every BER reader (the Nitro Enclaves SDK, Enclaver, OpenSSL) accepts. Field for field it
//! is what AWS KMS returns; two details were taken from a real AWS response rather than from the RFCs' defaults:
//! the subjectKeyIdentifier is SHA-256 of the whole SubjectPublicKeyInfo (not RFC 5280's SHA-1 of the key bits), and
//! the SHA-256 AlgorithmIdentifiers carry an explicit NULL (RFC 4055 allows both). Readers ignore the rid (there is
//! one recipient and the workload holds one key), so either choice opens; matching AWS keeps the bytes familiar.

use super::{MAX_RSA_BITS, MIN_RSA_BITS, RecipientError};
use ::cms::content_info::{CmsVersion, ContentInfo};
use ::cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use ::cms::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use ::cms::x509_cert::ext::pkix::SubjectKeyIdentifier;
use aws_lc_rs::cipher::{AES_256, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence, Tag};
use zeroize::Zeroizing;

/// id-envelopedData (RFC 5652).
pub const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
/// id-data (RFC 5652).
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// rsaEncryption (RFC 8017), the SubjectPublicKeyInfo algorithm of an RSA key.
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-RSAES-OAEP (RFC 8017, RFC 4055).
pub const ID_RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
/// id-mgf1 (RFC 8017).
pub const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// id-sha256 (RFC 5754).
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// aes256-CBC (RFC 3565).
pub const ID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// `RSAES-OAEP-params` (RFC 8017 A.2.1). `pSourceFunc` is left out: its default (empty label) is what we use.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RsaesOaepParams {
    /// `hashFunc [0]`, default SHA-1.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash_func: Option<AlgorithmIdentifierOwned>,
    /// `maskGenFunc [1]`, default MGF1 with SHA-1.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub mask_gen_func: Option<AlgorithmIdentifierOwned>,
    /// `pSourceFunc [2]`, default the empty label.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub p_source_func: Option<AlgorithmIdentifierOwned>,
}

/// SHA-256 with NULL parameters, as AWS KMS writes it.
pub fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: ID_SHA256, parameters: Some(Any::null()) }
}

/// The `keyEncryptionAlgorithm`: id-RSAES-OAEP with SHA-256 and MGF1-SHA-256.
pub fn oaep_sha256_alg() -> Result<AlgorithmIdentifierOwned, der::Error> {
    let params = RsaesOaepParams {
        hash_func: Some(sha256_alg()),
        mask_gen_func: Some(AlgorithmIdentifierOwned {
            oid: ID_MGF1,
            parameters: Some(Any::encode_from(&sha256_alg())?),
        }),
        p_source_func: None,
    };
    Ok(AlgorithmIdentifierOwned { oid: ID_RSAES_OAEP, parameters: Some(Any::encode_from(&params)?) })
}

/// The recipient's RSA key: accepted only if it is an RSA SubjectPublicKeyInfo of 2048 to 4096 bits.
struct RsaRecipient {
    key: OaepPublicEncryptingKey,
    subject_key_id: Vec<u8>,
}

fn rsa_recipient(spki_der: &[u8]) -> Result<RsaRecipient, RecipientError> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|_| RecipientError::MalformedPublicKey)?;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(RecipientError::NotRsa);
    }
    let key = PublicEncryptingKey::from_der(spki_der).map_err(|_| RecipientError::NotRsa)?;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key.key_size_bits()) {
        return Err(RecipientError::NotRsa);
    }
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| RecipientError::NotRsa)?;
    Ok(RsaRecipient { key, subject_key_id: subject_key_id(spki_der) })
}

/// The `rid` AWS KMS writes: SHA-256 of the recipient's DER SubjectPublicKeyInfo.
pub fn subject_key_id(spki_der: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der).as_ref().to_vec()
}

/// Seals `plaintext` for the RSA key `spki_der` as a DER `ContentInfo` holding an `EnvelopedData`.
pub fn seal(spki_der: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, RecipientError> {
    let recipient = rsa_recipient(spki_der)?;
    let internal = |_| RecipientError::Internal;

    let mut cek = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(cek.as_mut_slice()).map_err(internal)?;

    let mut encrypted_key = vec![0u8; recipient.key.ciphertext_size()];
    let n = recipient
        .key
        .encrypt(&OAEP_SHA256_MGF1SHA256, cek.as_slice(), &mut encrypted_key, None)
        .map_err(internal)?
        .len();
    encrypted_key.truncate(n);

    let cipher = UnboundCipherKey::new(&AES_256, cek.as_slice())
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .map_err(internal)?;
    // Sized once for the padding, so encryption in place leaves no stray plaintext copy behind; zeroized on failure.
    let mut content = Zeroizing::new(Vec::with_capacity(plaintext.len().saturating_add(16)));
    content.extend_from_slice(plaintext);
    let context = cipher.encrypt(&mut *content).map_err(internal)?;
    let iv: &[u8] = (&context).try_into().map_err(internal)?;

    let der_err = |_: der::Error| RecipientError::Internal;
    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V2,
        rid: RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
            OctetString::new(recipient.subject_key_id).map_err(der_err)?,
        )),
        key_enc_alg: oaep_sha256_alg().map_err(der_err)?,
        enc_key: OctetString::new(encrypted_key).map_err(der_err)?,
    };
    let enveloped = EnvelopedData {
        version: CmsVersion::V2,
        originator_info: None,
        recip_infos: RecipientInfos::try_from(vec![RecipientInfo::Ktri(ktri)]).map_err(der_err)?,
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: ID_AES256_CBC,
                parameters: Some(Any::new(Tag::OctetString, iv).map_err(der_err)?),
            },
            encrypted_content: Some(OctetString::new(content.as_slice()).map_err(der_err)?),
        },
        unprotected_attrs: None,
    };
    let info = ContentInfo { content_type: ID_ENVELOPED_DATA, content: Any::encode_from(&enveloped).map_err(der_err)? };
    info.to_der().map_err(der_err)
}
