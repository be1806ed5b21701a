//! Recipient tests. RSA outputs are opened by `openssl cms -decrypt`: these tests fail (never skip) without openssl.

use super::cms_oaep::{
    self, ID_AES256_CBC, ID_DATA, ID_ENVELOPED_DATA, ID_MGF1, ID_RSAES_OAEP, ID_SHA256, RsaesOaepParams,
};
use super::hpke_p384::{self, ENC_LEN, TAG_LEN};
use super::*;
use ::cms::content_info::{CmsVersion, ContentInfo};
use ::cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use ::cms::spki::AlgorithmIdentifierOwned;
use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use der::{Decode, Encode};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha384;
use hpke::kem::DhP384HkdfSha384;
use hpke::{Deserializable, Kem, OpModeR, Serializable};
use std::io::Write;
use std::process::{Command, Stdio};

const DOC_HASH: [u8; 48] = [0x5a; 48];

/// Runs openssl with `stdin`, returns stdout; panics (test failure) if openssl is missing or fails.
fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is required by these tests (CI installs it)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// An RSA key made by openssl: (PEM file holding the PKCS#8 key, PKCS#8 DER, SPKI DER).
fn openssl_rsa(bits: u32) -> (tempfile::NamedTempFile, Vec<u8>, Vec<u8>) {
    let pem = openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", &format!("rsa_keygen_bits:{bits}")], b"");
    openssl_key_files(&pem)
}

fn openssl_key_files(pem: &[u8]) -> (tempfile::NamedTempFile, Vec<u8>, Vec<u8>) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pem).unwrap();
    file.flush().unwrap();
    let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"], pem);
    let spki = openssl(&["pkey", "-pubout", "-outform", "DER"], pem);
    (file, pkcs8, spki)
}

fn openssl_p384() -> (tempfile::NamedTempFile, Vec<u8>, Vec<u8>) {
    let pem = openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], b"");
    openssl_key_files(&pem)
}

fn plaintext() -> Vec<u8> {
    (0..=255u8).cycle().take(4097).collect()
}

#[test]
fn algorithm_names_round_trip() {
    for alg in [KeyEncryptionAlgorithm::RsaesOaepSha256, KeyEncryptionAlgorithm::Hpke] {
        assert_eq!(KeyEncryptionAlgorithm::parse(alg.name()), Some(alg));
    }
    assert_eq!(KeyEncryptionAlgorithm::parse("RSAES_OAEP_SHA_256"), Some(KeyEncryptionAlgorithm::RsaesOaepSha256));
    assert_eq!(KeyEncryptionAlgorithm::parse("rsaes_oaep_sha_256"), None);
    assert_eq!(KeyEncryptionAlgorithm::parse("RSAES_OAEP_SHA_1"), None);
    assert_eq!(KeyEncryptionAlgorithm::parse(""), None);
}

/// Seals for an openssl RSA key, opens with `openssl cms -decrypt`, and checks every field of the structure.
fn rsa_round_trip(bits: u32) {
    let (key_file, pkcs8, spki) = openssl_rsa(bits);
    for msg in [plaintext(), Vec::new(), vec![0x42; 16], vec![0x42; 32]] {
        let sealed = seal(KeyEncryptionAlgorithm::RsaesOaepSha256, &spki, &DOC_HASH, b"", &msg).unwrap();
        let opened = openssl(
            &["cms", "-decrypt", "-inform", "DER", "-inkey", key_file.path().to_str().unwrap(), "-binary"],
            &sealed,
        );
        assert_eq!(opened, msg, "openssl opens RSA-{bits}");
        assert_eq!(open_with_cms_crate(&sealed, &pkcs8, &spki, bits), msg);
    }
}

/// Parses `sealed` with the `cms` crate, checks each field AWS KMS's format fixes, and decrypts with aws-lc-rs.
fn open_with_cms_crate(sealed: &[u8], pkcs8: &[u8], spki: &[u8], bits: u32) -> Vec<u8> {
    let info = ContentInfo::from_der(sealed).unwrap();
    assert_eq!(info.content_type, ID_ENVELOPED_DATA);
    let ed: EnvelopedData = info.content.decode_as().unwrap();
    assert_eq!(ed.version, CmsVersion::V2);
    assert!(ed.originator_info.is_none() && ed.unprotected_attrs.is_none());
    assert_eq!(ed.recip_infos.0.len(), 1);
    let Some(RecipientInfo::Ktri(ktri)) = ed.recip_infos.0.iter().next() else { panic!("not a KeyTransRecipientInfo") };
    assert_eq!(ktri.version, CmsVersion::V2);
    // AWS KMS's rid: SHA-256 of the DER SubjectPublicKeyInfo.
    let ski = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    match &ktri.rid {
        RecipientIdentifier::SubjectKeyIdentifier(id) => assert_eq!(id.0.as_bytes(), ski.as_ref()),
        RecipientIdentifier::IssuerAndSerialNumber(_) => panic!("rid must be subjectKeyIdentifier"),
    }
    assert_eq!(ktri.key_enc_alg.oid, ID_RSAES_OAEP);
    let params: RsaesOaepParams = ktri.key_enc_alg.parameters.as_ref().unwrap().decode_as().unwrap();
    let sha256 = AlgorithmIdentifierOwned { oid: ID_SHA256, parameters: Some(der::Any::null()) };
    assert_eq!(params.hash_func.as_ref(), Some(&sha256));
    let mgf = params.mask_gen_func.as_ref().unwrap();
    assert_eq!(mgf.oid, ID_MGF1);
    assert_eq!(mgf.parameters.as_ref().unwrap().decode_as::<AlgorithmIdentifierOwned>().unwrap(), sha256);
    assert!(params.p_source_func.is_none());
    assert_eq!(ktri.enc_key.as_bytes().len(), bits as usize / 8);

    let eci = &ed.encrypted_content;
    assert_eq!(eci.content_type, ID_DATA);
    assert_eq!(eci.content_enc_alg.oid, ID_AES256_CBC);
    let iv: der::asn1::OctetString = eci.content_enc_alg.parameters.as_ref().unwrap().decode_as().unwrap();
    assert_eq!(iv.as_bytes().len(), 16);
    let content = eci.encrypted_content.as_ref().unwrap().as_bytes();
    assert_eq!(content.len() % 16, 0);

    let key = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8).unwrap()).unwrap();
    let mut cek = vec![0u8; key.min_output_size()];
    let cek = key.decrypt(&OAEP_SHA256_MGF1SHA256, ktri.enc_key.as_bytes(), &mut cek, None).unwrap().to_vec();
    assert_eq!(cek.len(), 32);
    let cipher = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &cek).unwrap()).unwrap();
    let iv: [u8; 16] = iv.as_bytes().try_into().unwrap();
    let mut buf = content.to_vec();
    cipher.decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv))).unwrap().to_vec()
}

#[test]
fn rsa2048_cms_opens_with_openssl() {
    rsa_round_trip(2048);
}

#[test]
fn rsa3072_cms_opens_with_openssl() {
    rsa_round_trip(3072);
}

#[test]
fn rsa4096_cms_opens_with_openssl() {
    rsa_round_trip(4096);
}

#[test]
fn cms_is_der_and_fresh_each_time() {
    let (_f, _pkcs8, spki) = openssl_rsa(2048);
    let a = seal(KeyEncryptionAlgorithm::RsaesOaepSha256, &spki, &DOC_HASH, b"", b"same").unwrap();
    let b = seal(KeyEncryptionAlgorithm::RsaesOaepSha256, &spki, &DOC_HASH, b"", b"same").unwrap();
    assert_ne!(a, b, "fresh content key and IV");
    // DER: re-encoding what we parsed gives the same bytes.
    assert_eq!(ContentInfo::from_der(&a).unwrap().to_der().unwrap(), a);
    // The keyEncryptionAlgorithm, byte for byte as in a CiphertextForRecipient returned by AWS KMS.
    assert_eq!(
        hex::encode(cms_oaep::oaep_sha256_alg().unwrap().to_der().unwrap()),
        concat!(
            "303c06092a864886f70d010107302fa00f300d06096086480165030402010500",
            "a11c301a06092a864886f70d010108300d06096086480165030402010500"
        )
    );
}

#[test]
fn rsa_refuses_bad_keys() {
    let rsa = KeyEncryptionAlgorithm::RsaesOaepSha256;
    let (_f, _pkcs8, rsa1024) = openssl_rsa(1024);
    assert!(matches!(seal(rsa, &rsa1024, &DOC_HASH, b"", b"x"), Err(RecipientError::NotRsa)));
    let (_f, _pkcs8, rsa4104) = openssl_rsa(4104);
    assert!(matches!(seal(rsa, &rsa4104, &DOC_HASH, b"", b"x"), Err(RecipientError::NotRsa)), "above 4096 bits");
    let (_f, _pkcs8, p384) = openssl_p384();
    assert!(matches!(seal(rsa, &p384, &DOC_HASH, b"", b"x"), Err(RecipientError::NotRsa)));

    let (_f, _pkcs8, spki) = openssl_rsa(2048);
    assert!(matches!(
        seal(rsa, &spki[..spki.len() - 1], &DOC_HASH, b"", b"x"),
        Err(RecipientError::MalformedPublicKey)
    ));
    assert!(matches!(
        seal(rsa, &[spki.as_slice(), &[0]].concat(), &DOC_HASH, b"", b"x"),
        Err(RecipientError::MalformedPublicKey)
    ));
    assert!(matches!(seal(rsa, b"", &DOC_HASH, b"", b"x"), Err(RecipientError::MalformedPublicKey)));
    assert!(matches!(seal(rsa, b"not a key", &DOC_HASH, b"", b"x"), Err(RecipientError::MalformedPublicKey)));
    // The rsaEncryption OID changed (last arc 1 -> 5): not an RSA key any more.
    let oid_at = spki.windows(9).position(|w| w == hex::decode("2a864886f70d010101").unwrap()).unwrap();
    let mut other_oid = spki.clone();
    other_oid[oid_at + 8] = 5;
    assert!(matches!(seal(rsa, &other_oid, &DOC_HASH, b"", b"x"), Err(RecipientError::NotRsa)));
    // A modulus that is no longer a well-formed INTEGER inside the BIT STRING.
    let mut bad_inner = spki.clone();
    let n = bad_inner.len();
    bad_inner[n - 5] = 0x02; // tamper near the exponent: inner RSAPublicKey fails to parse or validate
    bad_inner[n - 4] = 0x7f;
    assert!(seal(rsa, &bad_inner, &DOC_HASH, b"", b"x").is_err());
    // Errors read as validation messages.
    assert_eq!(
        RecipientError::NotRsa.to_string(),
        "the attestation document's public key is not an RSA key of 2048 to 4096 bits"
    );
}

/// A P-384 key pair from the hpke crate and its DER SubjectPublicKeyInfo.
fn hpke_keypair() -> (<DhP384HkdfSha384 as Kem>::PrivateKey, Vec<u8>) {
    let (sk, pk) = DhP384HkdfSha384::gen_keypair();
    let spki =
        [hex::decode("3076301006072a8648ce3d020106052b81040022036200").unwrap(), pk.to_bytes().to_vec()].concat();
    (sk, spki)
}

fn hpke_open(
    sk: &<DhP384HkdfSha384 as Kem>::PrivateKey,
    doc_hash: &[u8; 48],
    sealed: &[u8],
) -> Result<Vec<u8>, hpke::HpkeError> {
    hpke_open_aad(sk, doc_hash, b"", sealed)
}

fn hpke_open_aad(
    sk: &<DhP384HkdfSha384 as Kem>::PrivateKey,
    doc_hash: &[u8; 48],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, hpke::HpkeError> {
    let (enc, ct) = sealed.split_at(ENC_LEN);
    let enc = <DhP384HkdfSha384 as Kem>::EncappedKey::from_bytes(enc)?;
    hpke::single_shot_open::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(
        &OpModeR::Base,
        sk,
        &enc,
        &hpke_p384::info(doc_hash),
        ct,
        aad,
    )
}

#[test]
fn hpke_is_bound_to_the_answer() {
    // Issue 12 item 12: an answer moved to another KeyId or another CiphertextBlob does not open.
    let (sk, spki) = hpke_keypair();
    let blob = b"ciphertext blob of the data key".as_slice();
    let arn = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-4333-8444-555555555555";
    let bound = super::Binding { key_id: arn, ciphertext_blob: blob };
    let sealed = seal(KeyEncryptionAlgorithm::Hpke, &spki, &DOC_HASH, &bound.aad(), b"data key").unwrap();
    assert_eq!(hpke_open_aad(&sk, &DOC_HASH, &bound.aad(), &sealed).unwrap(), b"data key");
    let other_blob = super::Binding { key_id: arn, ciphertext_blob: b"another blob" };
    assert!(hpke_open_aad(&sk, &DOC_HASH, &other_blob.aad(), &sealed).is_err());
    let other_key = super::Binding { key_id: "arn:aws:kms:us-east-1:000000000000:key/x", ciphertext_blob: blob };
    assert!(hpke_open_aad(&sk, &DOC_HASH, &other_key.aad(), &sealed).is_err());
    assert!(hpke_open(&sk, &DOC_HASH, &sealed).is_err(), "the empty AAD of before does not open it");
    // The length prefix keeps KeyId and blob hash apart.
    let a = super::Binding { key_id: "ab", ciphertext_blob: b"" }.aad();
    let b = super::Binding { key_id: "a", ciphertext_blob: b"" }.aad();
    assert_ne!(a, b);
}

#[test]
fn hpke_round_trips_and_binds_the_document() {
    let (sk, spki) = hpke_keypair();
    for msg in [plaintext(), Vec::new(), b"data key".to_vec()] {
        let sealed = seal(KeyEncryptionAlgorithm::Hpke, &spki, &DOC_HASH, b"", &msg).unwrap();
        assert_eq!(sealed.len(), ENC_LEN + msg.len() + TAG_LEN);
        assert_eq!(sealed[0], 0x04, "enc is an uncompressed point");
        assert_eq!(hpke_open(&sk, &DOC_HASH, &sealed).unwrap(), msg);
        let mut other = DOC_HASH;
        other[47] ^= 1;
        assert!(hpke_open(&sk, &other, &sealed).is_err(), "another document's hash does not open it");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(hpke_open(&sk, &DOC_HASH, &tampered).is_err());
    }
}

#[test]
fn hpke_opens_with_an_openssl_p384_key() {
    // The path a workload takes: a PKCS#8 key from a standard tool, the scalar through aws-lc-rs, opened with hpke.
    let (_f, pkcs8, spki) = openssl_p384();
    let sealed = seal(KeyEncryptionAlgorithm::Hpke, &spki, &DOC_HASH, b"", b"secret").unwrap();
    let key = aws_lc_rs::agreement::PrivateKey::from_private_key_der(&aws_lc_rs::agreement::ECDH_P384, &pkcs8).unwrap();
    let scalar: aws_lc_rs::encoding::EcPrivateKeyBin<'_> = key.as_be_bytes().unwrap();
    let sk = <DhP384HkdfSha384 as Kem>::PrivateKey::from_bytes(scalar.as_ref()).unwrap();
    assert_eq!(hpke_open(&sk, &DOC_HASH, &sealed).unwrap(), b"secret");
}

#[test]
fn hpke_refuses_other_keys() {
    let hpke = KeyEncryptionAlgorithm::Hpke;
    let (_f, _pkcs8, rsa2048) = openssl_rsa(2048);
    assert!(matches!(seal(hpke, &rsa2048, &DOC_HASH, b"", b"x"), Err(RecipientError::NotP384)));
    let p256 = openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], b"");
    let p256 = openssl(&["pkey", "-pubout", "-outform", "DER"], &p256);
    assert!(matches!(seal(hpke, &p256, &DOC_HASH, b"", b"x"), Err(RecipientError::NotP384)));
    let (_f, _pkcs8, p384) = openssl_p384();
    let compressed = openssl(
        &["pkey", "-pubin", "-inform", "DER", "-pubout", "-outform", "DER", "-ec_conv_form", "compressed"],
        &p384,
    );
    assert!(matches!(seal(hpke, &compressed, &DOC_HASH, b"", b"x"), Err(RecipientError::NotP384)));
    // A point off the curve.
    let (_sk, mut spki) = hpke_keypair();
    let n = spki.len();
    spki[n - 1] ^= 1;
    assert!(matches!(seal(hpke, &spki, &DOC_HASH, b"", b"x"), Err(RecipientError::NotP384)));
    assert!(matches!(seal(hpke, b"\x30\x00", &DOC_HASH, b"", b"x"), Err(RecipientError::MalformedPublicKey)));
}

proptest::proptest! {
    #[test]
    fn arbitrary_public_keys_are_refused_without_panic(spki in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        for alg in [KeyEncryptionAlgorithm::RsaesOaepSha256, KeyEncryptionAlgorithm::Hpke] {
            proptest::prop_assert!(seal(alg, &spki, &DOC_HASH, b"", b"x").is_err());
        }
    }
}
