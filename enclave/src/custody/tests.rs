#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use kms_shared::custody::UpstreamConfig;

fn p384_pem() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    key.public_key_pem()
}

fn config(source: DomainKeySource, admin: Option<String>) -> BootConfig {
    BootConfig {
        source,
        init: true,
        admin_public_key: admin,
        upstream: Some(UpstreamConfig {
            endpoint: "https://127.0.0.1:1".into(),
            key_id: "arn:aws:kms:us-east-1:111122223333:key/abc".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "x".into(),
            session_token: None,
            ca_pem: None,
        }),
        operators: vec![],
        threshold: 0,
    }
}

fn detail(e: Error) -> String {
    match e {
        Error::Internal(d) => d,
        other => other.to_string(),
    }
}

#[test]
fn upstream_and_quorum_need_an_admin_public_key() {
    let e = detail(new_settings(&config(DomainKeySource::Upstream, None)).err().unwrap());
    assert!(e.contains("--admin-public-key"), "{e}");
    assert!(new_settings(&config(DomainKeySource::Quorum, None)).is_err());
    let s = new_settings(&config(DomainKeySource::Local, None)).unwrap();
    assert_eq!(s.admin_public_key, None);
    assert_eq!(s.upstream_key_id, None);
}

#[test]
fn settings_carry_the_der_key_and_the_upstream_arn() {
    let pem = p384_pem();
    let s = new_settings(&config(DomainKeySource::Upstream, Some(pem.clone()))).unwrap();
    let der = kms_attestation::pem::decode_single(&pem, "PUBLIC KEY", 4096).unwrap();
    assert_eq!(s.admin_public_key.as_deref(), Some(der.as_slice()));
    assert_eq!(s.upstream_key_id.as_deref(), Some("arn:aws:kms:us-east-1:111122223333:key/abc"));
    // The digest is SHA-384 over the canonical form, and changes with the admin key.
    assert_eq!(settings_digest(&s).to_vec(), Sha384::digest(s.canonical()).to_vec());
    let other = new_settings(&config(DomainKeySource::Upstream, Some(p384_pem()))).unwrap();
    assert_ne!(settings_digest(&s), settings_digest(&other));
}

#[test]
fn bad_admin_keys_are_refused_with_a_clear_error() {
    let e = detail(p384_spki("not pem", "admin public key").err().unwrap());
    assert!(e.contains("admin public key: not a PEM public key"), "{e}");
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().public_key_pem();
    let e = detail(p384_spki(&p256, "admin public key").err().unwrap());
    assert!(e.contains("not a P-384"), "{e}");
}
