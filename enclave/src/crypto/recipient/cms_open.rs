//! Opening CMS `EnvelopedData` with RSAES-OAEP-SHA256 key transport and AES-256-CBC content: what an upstream AWS KMS
//! returns as `CiphertextForRecipient` when this enclave is the Recipient (`custody`'s upstream source). Parsed under
//! BER rules (AWS KMS sends BER with indefinite lengths); every length is checked by `der`, the input is bounded by
//! the caller, and only the exact algorithm set below is accepted.

use super::cms_oaep::{ID_AES256_CBC, ID_ENVELOPED_DATA, ID_MGF1, ID_RSAES_OAEP, ID_SHA256, RsaesOaepParams};
use ::cms::content_info::ContentInfo;
use ::cms::enveloped_data::{EnvelopedData, RecipientInfo};
use ::cms::spki::AlgorithmIdentifierOwned;
use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey};
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use zeroize::Zeroizing;

/// Why an envelope did not open (no detail that could help an oracle beyond the step).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Not the expected CMS structure or algorithms.
    #[error("not CMS EnvelopedData for RSAES_OAEP_SHA_256: {0}")]
    Format(&'static str),
    /// The content key or the content did not decrypt.
    #[error("the envelope does not open with this key")]
    Decrypt,
}

fn from_ber_any<T: for<'a> Decode<'a, Error = der::Error>>(any: &Any) -> Result<T, der::Error> {
    T::from_ber(&any.to_der()?)
}

/// Opens `input` with `key`.
pub fn open(key: &OaepPrivateDecryptingKey, input: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let info = ContentInfo::from_ber(input).map_err(|_| OpenError::Format("not a ContentInfo"))?;
    if info.content_type != ID_ENVELOPED_DATA {
        return Err(OpenError::Format("content type is not id-envelopedData"));
    }
    let enveloped: EnvelopedData = from_ber_any(&info.content).map_err(|_| OpenError::Format("not EnvelopedData"))?;
    let mut ktris = enveloped.recip_infos.0.iter().filter_map(|ri| match ri {
        RecipientInfo::Ktri(k) => Some(k),
        _ => None,
    });
    let (Some(ktri), None) = (ktris.next(), ktris.next()) else {
        return Err(OpenError::Format("expected exactly one KeyTransRecipientInfo"));
    };
    if ktri.key_enc_alg.oid != ID_RSAES_OAEP {
        return Err(OpenError::Format("key encryption algorithm is not RSAES-OAEP"));
    }
    let params: RsaesOaepParams = ktri
        .key_enc_alg
        .parameters
        .as_ref()
        .ok_or(OpenError::Format("RSAES-OAEP without parameters"))
        .and_then(|p| from_ber_any(p).map_err(|_| OpenError::Format("bad RSAES-OAEP parameters")))?;
    let hash_ok = params.hash_func.as_ref().is_some_and(|h| h.oid == ID_SHA256);
    let mgf_ok = params.mask_gen_func.as_ref().is_some_and(|m| {
        m.oid == ID_MGF1
            && m.parameters
                .as_ref()
                .and_then(|p| from_ber_any::<AlgorithmIdentifierOwned>(p).ok())
                .is_some_and(|h| h.oid == ID_SHA256)
    });
    if !hash_ok || !mgf_ok || params.p_source_func.is_some() {
        return Err(OpenError::Format("RSAES-OAEP parameters are not SHA-256 / MGF1-SHA-256 / empty label"));
    }
    let eci = &enveloped.encrypted_content;
    if eci.content_enc_alg.oid != ID_AES256_CBC {
        return Err(OpenError::Format("content encryption algorithm is not AES-256-CBC"));
    }
    let iv: OctetString = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or(OpenError::Format("AES-256-CBC without an IV"))
        .and_then(|p| from_ber_any(p).map_err(|_| OpenError::Format("bad IV")))?;
    let iv: [u8; 16] = iv.as_bytes().try_into().map_err(|_| OpenError::Format("the IV is not 16 bytes"))?;
    let content = eci.encrypted_content.as_ref().ok_or(OpenError::Format("no encrypted content"))?;

    let mut cek = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let cek_len = key
        .decrypt(&OAEP_SHA256_MGF1SHA256, ktri.enc_key.as_bytes(), &mut cek, None)
        .map_err(|_| OpenError::Decrypt)?
        .len();
    let cek = cek.get(..cek_len).filter(|k| k.len() == 32).ok_or(OpenError::Decrypt)?;
    let cipher = UnboundCipherKey::new(&AES_256, cek)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| OpenError::Decrypt)?;
    let mut buf = Zeroizing::new(content.as_bytes().to_vec());
    let n = cipher
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| OpenError::Decrypt)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};

    fn key() -> (OaepPrivateDecryptingKey, Vec<u8>) {
        let k = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let spki = k.public_key().as_der().unwrap().as_ref().to_vec();
        (OaepPrivateDecryptingKey::new(k).unwrap(), spki)
    }

    #[test]
    fn opens_what_the_sealer_emits() {
        let (k, spki) = key();
        let sealed = super::super::cms_oaep::seal(&spki, b"32 bytes of domain key material!").unwrap();
        assert_eq!(&open(&k, &sealed).unwrap()[..], b"32 bytes of domain key material!");
    }

    #[test]
    fn another_key_or_tampering_is_refused() {
        let (k, spki) = key();
        let (other, _) = key();
        // 32 bytes: the content is three AES blocks, the last one all padding (0x10 x 16).
        let sealed = super::super::cms_oaep::seal(&spki, &[7u8; 32]).unwrap();
        assert_eq!(open(&other, &sealed).unwrap_err(), OpenError::Decrypt);
        let mut bad = sealed.clone();
        let at = bad.len() - 17; // last byte of the second block: flips the last padding byte (CBC), 0x10 -> 0x11
        bad[at] ^= 1;
        assert_eq!(open(&k, &bad).unwrap_err(), OpenError::Decrypt);
        assert!(matches!(open(&k, b"\x30\x03\x02\x01\x00"), Err(OpenError::Format(_))));
        assert!(matches!(open(&k, &[]), Err(OpenError::Format(_))));
        assert!(matches!(open(&k, &sealed[..sealed.len() / 2]), Err(OpenError::Format(_))));
    }
}
