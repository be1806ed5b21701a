//! RFC 9180 base mode, DHKEM(P-384, HKDF-SHA384) 0x0011, HKDF-SHA384 0x0002, AES-256-GCM 0x0002, one message, over
//! aws-lc-rs (the host crate links no AEAD or KDF crate: ARCHITECTURE.md, "Crates"): the operator opens its share
//! file and re-seals the share to the sealed enclave's attested unseal key. Format: `enc` (97) || ciphertext || tag.
//! The tests check both directions against the `hpke` crate, an independent implementation.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{ECDH_P384, PrivateKey, UnparsedPublicKey};
// RFC 9180 LabeledExtract / LabeledExpand over HKDF-SHA384: the receiver's, shared with `sim open-recipient`.
use crate::open_recipient::{labeled_expand, labeled_extract};
use zeroize::Zeroizing;

/// Length of `enc`: an uncompressed P-384 point.
pub const ENC_LEN: usize = 97;
const KEM_SUITE: &[u8] = b"KEM\x00\x11";
const SUITE: &[u8] = b"HPKE\x00\x11\x00\x02\x00\x02";

/// The AEAD key and nonce of the first message, from the DH output and the KEM context (`enc` || pkR).
fn key_schedule(dh: &[u8], kem_context: &[u8], info: &[u8]) -> Result<(LessSafeKey, Zeroizing<Vec<u8>>), String> {
    let eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh);
    let shared_secret = labeled_expand(KEM_SUITE, &eae_prk, b"shared_secret", kem_context, 48)?;
    let psk_id_hash = labeled_extract(SUITE, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(SUITE, b"", b"info_hash", info);
    let context = [&[0u8][..], &psk_id_hash, &info_hash].concat();
    let secret = labeled_extract(SUITE, &shared_secret, b"secret", b"");
    let key = labeled_expand(SUITE, &secret, b"key", &context, 32)?;
    let nonce = labeled_expand(SUITE, &secret, b"base_nonce", &context, 12)?;
    let aead = UnboundKey::new(&AES_256_GCM, &key).map(LessSafeKey::new).map_err(|_| "AES-256-GCM key".to_owned())?;
    Ok((aead, nonce))
}

/// Seals `plaintext` to the P-384 point `recipient` (uncompressed, 97 bytes) with `info`.
pub fn seal(recipient: &[u8], info: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let eph = PrivateKey::generate(&ECDH_P384).map_err(|_| "random source failed".to_owned())?;
    let enc = eph.compute_public_key().map_err(|_| "random source failed".to_owned())?;
    let dh = aws_lc_rs::agreement::agree(&eph, UnparsedPublicKey::new(&ECDH_P384, recipient), (), |z| {
        Ok(Zeroizing::new(z.to_vec()))
    })
    .map_err(|()| "the recipient key is not a P-384 point".to_owned())?;
    let kem_context = [enc.as_ref(), recipient].concat();
    let (aead, nonce) = key_schedule(&dh, &kem_context, info)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| "nonce".to_owned())?;
    let mut body = Zeroizing::new(plaintext.to_vec());
    let tag = aead.seal_in_place_separate_tag(nonce, Aad::empty(), &mut body).map_err(|_| "AES-256-GCM".to_owned())?;
    Ok([enc.as_ref(), &body, tag.as_ref()].concat())
}

/// Opens what [`seal`] (or the enclave) sealed to `key` with `info`; `None` if it does not open.
pub fn open(key: &PrivateKey, info: &[u8], input: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (enc, ciphertext) = input.split_at_checked(ENC_LEN)?;
    if enc.first() != Some(&0x04) {
        return None;
    }
    let dh = aws_lc_rs::agreement::agree(key, UnparsedPublicKey::new(&ECDH_P384, enc), (), |z| {
        Ok(Zeroizing::new(z.to_vec()))
    })
    .ok()?;
    let pk_r = key.compute_public_key().ok()?;
    let kem_context = [enc, pk_r.as_ref()].concat();
    let (aead, nonce) = key_schedule(&dh, &kem_context, info).ok()?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).ok()?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let n = aead.open_in_place(nonce, Aad::empty(), &mut buf).ok()?.len();
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use hpke::aead::AesGcm256;
    use hpke::kdf::HkdfSha384;
    use hpke::kem::DhP384HkdfSha384;
    use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};

    #[test]
    fn our_sender_opens_with_the_hpke_crate() {
        let (sk, pk) = DhP384HkdfSha384::gen_keypair();
        let sealed = seal(&pk.to_bytes(), b"info", b"thirty-two bytes of share value!").unwrap();
        let enc = <DhP384HkdfSha384 as Kem>::EncappedKey::from_bytes(&sealed[..ENC_LEN]).unwrap();
        let mut ctx =
            hpke::setup_receiver::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(&OpModeR::Base, &sk, &enc, b"info")
                .unwrap();
        assert_eq!(ctx.open(&sealed[ENC_LEN..], b"").unwrap(), b"thirty-two bytes of share value!");
        // Another info does not open.
        let mut ctx =
            hpke::setup_receiver::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(&OpModeR::Base, &sk, &enc, b"other")
                .unwrap();
        assert!(ctx.open(&sealed[ENC_LEN..], b"").is_err());
        assert!(seal(&[4u8; 97], b"info", b"x").is_err());
    }

    #[test]
    fn the_hpke_crate_sender_opens_with_ours() {
        let key = PrivateKey::generate(&ECDH_P384).unwrap();
        let pk_bytes = key.compute_public_key().unwrap();
        let pk = <DhP384HkdfSha384 as Kem>::PublicKey::from_bytes(pk_bytes.as_ref()).unwrap();
        let (enc, mut ctx) =
            hpke::setup_sender::<AesGcm256, HkdfSha384, DhP384HkdfSha384>(&OpModeS::Base, &pk, b"info").unwrap();
        let ct = ctx.seal(b"share", b"").unwrap();
        let input = [enc.to_bytes().as_slice(), &ct].concat();
        assert_eq!(&*open(&key, b"info", &input).unwrap(), b"share");
        assert!(open(&key, b"infx", &input).is_none());
        let mut flipped = input.clone();
        flipped[ENC_LEN] ^= 1;
        assert!(open(&key, b"info", &flipped).is_none());
        assert!(open(&key, b"info", &input[..10]).is_none());
    }
}
