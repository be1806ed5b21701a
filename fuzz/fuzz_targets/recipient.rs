//! Recipient outputs and inputs: the enclave's sealing to a caller's attested public key (enclave crypto/recipient:
//! CMS EnvelopedData with RSAES-OAEP-SHA256, and the HPKE P-384 extension) and the workload-side opener that parses
//! them (host/src/open_recipient.rs: BER CMS, HPKE). First byte: which format and what to do; rest: the bytes.
//! Invariants: the opener never panics and never opens bytes the enclave did not seal (the fuzzer can do neither
//! RSA-OAEP nor ECDH); what the enclave seals opens to exactly the plaintext; an HPKE output with a flipped byte, or
//! opened for another document or another AAD (KeyId and CiphertextBlob), fails; sealing to a public key taken from
//! the input never panics.
#![no_main]
use aws_lc_rs::agreement::{ECDH_P384, PrivateKey};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use kms_enclave::crypto::recipient::{KeyEncryptionAlgorithm, seal};
use kms_fuzz::{OpenerKey, open_cms, open_hpke, opener_key};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Keys {
    rsa: OpenerKey,
    rsa_spki: Vec<u8>,
    p384: OpenerKey,
    p384_spki: Vec<u8>,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let rsa = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let rsa_spki = rsa.public_key().as_der().unwrap().as_ref().to_vec();
        let rsa_pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&rsa).unwrap().as_ref().to_vec();
        let ec = PrivateKey::generate(&ECDH_P384).unwrap();
        let p384_spki = AsDer::<PublicKeyX509Der>::as_der(&ec.compute_public_key().unwrap()).unwrap().as_ref().to_vec();
        let ec_pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&ec).unwrap().as_ref().to_vec();
        Keys { rsa: opener_key(&rsa_pkcs8).unwrap(), rsa_spki, p384: opener_key(&ec_pkcs8).unwrap(), p384_spki }
    })
}

fuzz_target!(init: { keys(); }, |data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let k = keys();
    let (rsa, p384) = (&k.rsa, &k.p384);
    let doc_hash = [mode; 48];
    match mode % 4 {
        0 => assert!(open_cms(rsa, input).is_err(), "CMS the enclave never sealed opened"),
        1 => assert!(open_hpke(p384, &doc_hash, b"aad", input).is_err(), "HPKE the enclave never sealed opened"),
        2 => {
            let plaintext = input;
            let aad = &plaintext[..plaintext.len() / 2];
            let cms = seal(KeyEncryptionAlgorithm::RsaesOaepSha256, &k.rsa_spki, &doc_hash, aad, plaintext).unwrap();
            assert_eq!(&open_cms(rsa, &cms).unwrap()[..], plaintext);
            let hpke = seal(KeyEncryptionAlgorithm::Hpke, &k.p384_spki, &doc_hash, aad, plaintext).unwrap();
            assert_eq!(&open_hpke(p384, &doc_hash, aad, &hpke).unwrap()[..], plaintext);
            assert!(open_hpke(p384, &[mode ^ 1; 48], aad, &hpke).is_err(), "opened for another document");
            let other_aad = [aad, b"x"].concat();
            assert!(open_hpke(p384, &doc_hash, &other_aad, &hpke).is_err(), "opened with another AAD");
            let mut flipped = hpke.clone();
            let at = plaintext.len() * 31 % flipped.len();
            flipped[at] ^= 0x01;
            assert!(open_hpke(p384, &doc_hash, aad, &flipped).is_err(), "a flipped byte {at} opened");
            let mut cut = cms.clone();
            cut.truncate(cms.len() - 1 - plaintext.len() % 16);
            let _ = open_cms(rsa, &cut);
        }
        _ => {
            // A Recipient document's public key is the caller's choice: sealing to any bytes fails cleanly or works.
            let _ = seal(KeyEncryptionAlgorithm::RsaesOaepSha256, input, &doc_hash, b"aad", b"data key");
            let _ = seal(KeyEncryptionAlgorithm::Hpke, input, &doc_hash, b"aad", b"data key");
        }
    }
});
