//! `kms-host sim open-recipient`: what an attested workload does with `CiphertextForRecipient`.
//!
//! - RSA private key: the input is CMS `EnvelopedData` (BER as AWS KMS sends it, or DER as enclave-kms does; raw
//!   bytes or base64): RSA-OAEP-SHA256 unwraps the content key, AES-256-CBC decrypts the content.
//! - P-384 private key: the input is our HPKE extension (`enc` || ciphertext || tag), opened with
//!   `info` = "enclave-kms recipient v1" || SHA-384(attestation document), so `--document` is required, and
//!   `aad` = "enclave-kms recipient aad v1" || u32 length of the KeyId || KeyId || SHA-256(CiphertextBlob), from
//!   `--key-id` and `--ciphertext-blob` (the answer's; both empty for GenerateRandom, the blob empty for Decrypt and
//!   DeriveSharedSecret), so an answer moved to another key or another ciphertext does not open.
//!
//! Runs on the workload's side, never on the relay path; the host crate does not depend on the enclave crate, so the
//! formats are decoded here independently of the code that produces them. The RFC 9180 receiver is written out over
//! aws-lc-rs (ECDH, HMAC-SHA384, AES-256-GCM) so the host links no AEAD or KDF crate (ARCHITECTURE.md, "Crates"); its
//! tests seal with the `hpke` crate, an independent implementation.

use crate::files::write_atomic;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{ECDH_P384, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientInfo};
use cms::spki::AlgorithmIdentifierOwned;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use zeroize::Zeroizing;

/// Largest input file (a Recipient response carries at most a few KiB; attestation documents at most 256 KiB).
const MAX_INPUT: u64 = 1024 * 1024;

const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const ID_RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// The HPKE `info` prefix of enclave-kms's Recipient extension.
const HPKE_INFO_PREFIX: &[u8] = b"enclave-kms recipient v1";
/// The HPKE AAD prefix of enclave-kms's Recipient extension.
const HPKE_AAD_PREFIX: &[u8] = b"enclave-kms recipient aad v1";
/// Length of HPKE's `enc` for DHKEM(P-384): an uncompressed point.
const HPKE_ENC_LEN: usize = 97;

/// `RSAES-OAEP-params` (RFC 8017 A.2.1).
#[derive(Sequence)]
struct RsaesOaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash_func: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen_func: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    p_source_func: Option<AlgorithmIdentifierOwned>,
}

fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_INPUT + 1).read_to_end(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(format!("{}: larger than {MAX_INPUT} bytes", path.display()));
    }
    Ok(buf)
}

/// The workload's private key: a PKCS#8 key (PEM, as `sim keygen` writes it, or DER), RSA or P-384.
pub(crate) enum WorkloadKey {
    Rsa(OaepPrivateDecryptingKey),
    P384(PrivateKey),
}

pub(crate) fn parse_private_key(bytes: &[u8]) -> Result<WorkloadKey, String> {
    let pkcs8 = match PrivatePkcs8KeyDer::from_pem_slice(bytes) {
        Ok(k) => Zeroizing::new(k.secret_pkcs8_der().to_vec()),
        Err(_) if bytes.first() == Some(&0x30) => Zeroizing::new(bytes.to_vec()),
        Err(e) => return Err(format!("--private-key: not a PKCS#8 private key (PEM \"PRIVATE KEY\" or DER): {e}")),
    };
    if let Ok(rsa) = PrivateDecryptingKey::from_pkcs8(&pkcs8) {
        return OaepPrivateDecryptingKey::new(rsa)
            .map(WorkloadKey::Rsa)
            .map_err(|_| "--private-key: unusable RSA key".into());
    }
    PrivateKey::from_private_key_der(&ECDH_P384, &pkcs8)
        .map(WorkloadKey::P384)
        .map_err(|_| "--private-key: neither an RSA key nor a P-384 key".into())
}

/// The input as bytes: raw DER/BER or HPKE bytes, or the base64 that AWS CLI and JSON responses carry.
fn decode_input(bytes: &[u8], rsa: bool) -> Vec<u8> {
    let looks_binary = if rsa { bytes.first() == Some(&0x30) } else { bytes.first() == Some(&0x04) };
    if !looks_binary {
        let text: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&text) {
            return decoded;
        }
    }
    bytes.to_vec()
}

/// Decodes the value held in `any` under BER rules (indefinite lengths, constructed strings), as AWS KMS encodes it;
/// `Any::decode_as` would apply DER rules. The input was bounded when read, and `der` checks every length.
fn from_ber_any<T: for<'a> Decode<'a, Error = der::Error>>(any: &Any) -> Result<T, der::Error> {
    T::from_ber(&any.to_der()?)
}

/// Opens CMS `EnvelopedData` (RSAES-OAEP-SHA256 key transport, AES-256-CBC content) with `key`.
pub(crate) fn open_cms(key: &OaepPrivateDecryptingKey, input: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let bad = |what: &str| format!("--in: not CMS EnvelopedData for RSAES_OAEP_SHA_256: {what}");
    let info = ContentInfo::from_ber(input).map_err(|e: der::Error| bad(&e.to_string()))?;
    if info.content_type != ID_ENVELOPED_DATA {
        return Err(bad("content type is not id-envelopedData"));
    }
    let enveloped: EnvelopedData = from_ber_any(&info.content).map_err(|e| bad(&e.to_string()))?;
    let mut ktris = enveloped.recip_infos.0.iter().filter_map(|ri| match ri {
        RecipientInfo::Ktri(k) => Some(k),
        _ => None,
    });
    let (Some(ktri), None) = (ktris.next(), ktris.next()) else {
        return Err(bad("expected exactly one KeyTransRecipientInfo"));
    };
    if ktri.key_enc_alg.oid != ID_RSAES_OAEP {
        return Err(bad("key encryption algorithm is not RSAES-OAEP"));
    }
    let params: RsaesOaepParams = ktri
        .key_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| bad("RSAES-OAEP without parameters (SHA-1)"))
        .and_then(|p| from_ber_any(p).map_err(|e| bad(&e.to_string())))?;
    let hash_ok = params.hash_func.as_ref().is_some_and(|h| h.oid == ID_SHA256);
    let mgf_ok = params.mask_gen_func.as_ref().is_some_and(|m| {
        m.oid == ID_MGF1
            && m.parameters
                .as_ref()
                .and_then(|p| from_ber_any::<AlgorithmIdentifierOwned>(p).ok())
                .is_some_and(|h| h.oid == ID_SHA256)
    });
    if !hash_ok || !mgf_ok || params.p_source_func.is_some() {
        return Err(bad("RSAES-OAEP parameters are not SHA-256 with MGF1-SHA-256 and an empty label"));
    }
    let eci = &enveloped.encrypted_content;
    if eci.content_enc_alg.oid != ID_AES256_CBC {
        return Err(bad("content encryption algorithm is not AES-256-CBC"));
    }
    let iv: OctetString = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| bad("AES-256-CBC without an IV"))
        .and_then(|p| from_ber_any(p).map_err(|e| bad(&e.to_string())))?;
    let iv: [u8; 16] = iv.as_bytes().try_into().map_err(|_| bad("the IV is not 16 bytes"))?;
    let content = eci.encrypted_content.as_ref().ok_or_else(|| bad("no encrypted content"))?;

    let mut cek = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let cek_len = key
        .decrypt(&OAEP_SHA256_MGF1SHA256, ktri.enc_key.as_bytes(), &mut cek, None)
        .map_err(|_| "cannot decrypt the content key: wrong private key, or the input was tampered with".to_owned())?
        .len();
    let cek = cek.get(..cek_len).filter(|k| k.len() == 32).ok_or_else(|| bad("the content key is not 256 bits"))?;
    let cipher = UnboundCipherKey::new(&AES_256, cek)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| "AES-256-CBC key setup failed".to_owned())?;
    let mut buf = Zeroizing::new(content.as_bytes().to_vec());
    let n = cipher
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| "cannot decrypt the content (bad padding): the input was tampered with".to_owned())?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// HKDF-SHA384-Extract (RFC 5869): HMAC with the salt as key; an empty salt is the same key as HashLen zeros.
fn extract(salt: &[u8], ikm: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA384, salt));
    for part in ikm {
        ctx.update(part);
    }
    Zeroizing::new(ctx.sign().as_ref().to_vec())
}

/// HKDF-SHA384-Expand for `len` ≤ 48 bytes: the first block, T(1) = HMAC(PRK, info || 0x01).
fn expand(prk: &[u8], info: &[&[u8]], len: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA384, prk));
    for part in info {
        ctx.update(part);
    }
    ctx.update(&[1]);
    let t1 = ctx.sign();
    t1.as_ref().get(..len).map(|b| Zeroizing::new(b.to_vec())).ok_or_else(|| "HKDF output too long".to_owned())
}

/// RFC 9180 §4 `LabeledExtract` and `LabeledExpand` under `suite_id`.
pub(crate) fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
    extract(salt, &[b"HPKE-v1", suite_id, label, ikm])
}

pub(crate) fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: u16,
) -> Result<Zeroizing<Vec<u8>>, String> {
    expand(prk, &[&len.to_be_bytes(), b"HPKE-v1", suite_id, label, info], usize::from(len))
}

/// Opens enclave-kms's HPKE Recipient format with `key`, bound to the document whose SHA-384 is `document_sha384`:
/// RFC 9180 base mode, DHKEM(P-384, HKDF-SHA384) 0x0011, HKDF-SHA384 0x0002, AES-256-GCM 0x0002, one message.
pub(crate) fn open_hpke(
    key: &PrivateKey,
    document_sha384: &[u8],
    aad: &[u8],
    input: &[u8],
) -> Result<Zeroizing<Vec<u8>>, String> {
    open_hpke_info(key, &[HPKE_INFO_PREFIX, document_sha384].concat(), aad, input)
}

/// A P-384 PKCS#8 private key (PEM or DER).
pub fn parse_p384_private_key(bytes: &[u8]) -> Result<PrivateKey, String> {
    match parse_private_key(bytes)? {
        WorkloadKey::P384(k) => Ok(k),
        WorkloadKey::Rsa(_) => Err("--private-key: an RSA key; a P-384 key is needed".into()),
    }
}

/// Opens the HPKE format (as [`open_hpke`]) with the caller's `info` and `aad`.
pub fn open_hpke_info(key: &PrivateKey, info: &[u8], aad: &[u8], input: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    const KEM_SUITE: &[u8] = b"KEM\x00\x11";
    const SUITE: &[u8] = b"HPKE\x00\x11\x00\x02\x00\x02";
    let fail = || {
        "cannot open the HPKE ciphertext: wrong private key, document, --key-id or --ciphertext-blob, or the input \
             was tampered with"
            .to_owned()
    };
    let (enc, ciphertext) =
        input.split_at_checked(HPKE_ENC_LEN).ok_or_else(|| "--in: too short for the HPKE format".to_owned())?;
    if enc.first() != Some(&0x04) {
        return Err("--in: the HPKE encapsulated key is not an uncompressed P-384 point".to_owned());
    }
    // Decap (RFC 9180 §4.1): dh = DH(skR, pkE), kem_context = enc || pkRm.
    let dh = aws_lc_rs::agreement::agree(key, UnparsedPublicKey::new(&ECDH_P384, enc), (), |z| {
        Ok(Zeroizing::new(z.to_vec()))
    })
    .map_err(|()| "--in: the HPKE encapsulated key is not a P-384 point".to_owned())?;
    let pk_r = key.compute_public_key().map_err(|_| "cannot use the P-384 private key".to_owned())?;
    let kem_context = [enc, pk_r.as_ref()].concat();
    let eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", &dh);
    let shared_secret = labeled_expand(KEM_SUITE, &eae_prk, b"shared_secret", &kem_context, 48)?;

    // KeySchedule (RFC 9180 §5.1), mode_base, no PSK.
    let psk_id_hash = labeled_extract(SUITE, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(SUITE, b"", b"info_hash", info);
    let context = [&[0u8][..], &psk_id_hash, &info_hash].concat();
    let secret = labeled_extract(SUITE, &shared_secret, b"secret", b"");
    let aead_key = labeled_expand(SUITE, &secret, b"key", &context, 32)?;
    let base_nonce = labeled_expand(SUITE, &secret, b"base_nonce", &context, 12)?;

    // The first (and only) message: sequence number 0, so the nonce is base_nonce.
    let nonce = Nonce::try_assume_unique_for_key(&base_nonce).map_err(|_| fail())?;
    let aead = UnboundKey::new(&AES_256_GCM, &aead_key).map(LessSafeKey::new).map_err(|_| fail())?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let n = aead.open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| fail())?.len();
    buf.truncate(n);
    Ok(buf)
}

/// The HPKE AAD that binds an answer to its KeyId and CiphertextBlob (the enclave's `Binding::aad`).
fn hpke_aad(key_id: &str, ciphertext_blob: &[u8]) -> Vec<u8> {
    let blob_hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ciphertext_blob);
    let len = u32::try_from(key_id.len()).unwrap_or(u32::MAX).to_be_bytes();
    [HPKE_AAD_PREFIX, &len, key_id.as_bytes(), blob_hash.as_ref()].concat()
}

/// What the answer was: its KeyId and the file holding its CiphertextBlob (raw bytes or base64).
pub struct Answer<'a> {
    /// The response's KeyId (a key ARN); `None` for GenerateRandom.
    pub key_id: Option<&'a str>,
    /// The response's CiphertextBlob / PrivateKeyCiphertextBlob; `None` where it has none.
    pub ciphertext_blob: Option<&'a Path>,
}

/// `kms-host sim open-recipient`: decrypts `input` with `private_key` into `out` (mode 0600).
pub fn open_recipient(
    private_key: &Path,
    input: &Path,
    document: Option<&Path>,
    answer: &Answer<'_>,
    out: &Path,
) -> Result<(), String> {
    let key = parse_private_key(&read_bounded(private_key)?)?;
    let raw = read_bounded(input)?;
    let plaintext = match &key {
        WorkloadKey::Rsa(k) => open_cms(k, &decode_input(&raw, true))?,
        WorkloadKey::P384(k) => {
            let doc = document.ok_or_else(|| "--document is required to open HPKE with a P-384 key".to_owned())?;
            let doc = read_bounded(doc)?;
            let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &doc);
            let blob = match answer.ciphertext_blob {
                Some(p) => decode_input(&read_bounded(p)?, false),
                None => Vec::new(),
            };
            let aad = hpke_aad(answer.key_id.unwrap_or_default(), &blob);
            open_hpke(k, hash.as_ref(), &aad, &decode_input(&raw, false))?
        }
    };
    write_atomic(out, &plaintext, 0o600)
}
