//! TLS inside the enclave: a long-lived issuing CA, sealed like every other secret, and a leaf certificate with a
//! fresh key at every start. Clients trust the CA (`ca.pem`), which stays the same across restarts.

use crate::error::Error;
use crate::state::store::Records;
use kms_shared::storage::RecordKind;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use zeroize::{Zeroize, Zeroizing};

const ISSUER_RECORD_ID: &str = "ca";

#[derive(Serialize, Deserialize)]
struct IssuerBody {
    label: String,
    #[serde(with = "serde_bytes")]
    key_pkcs8: Vec<u8>,
    #[serde(with = "serde_bytes")]
    cert_der: Vec<u8>,
}

impl Drop for IssuerBody {
    fn drop(&mut self) {
        self.key_pkcs8.zeroize();
    }
}

/// The TLS identity of this enclave.
pub struct TlsIdentity {
    /// The server configuration for rustls.
    pub config: Arc<ServerConfig>,
    /// PEM of the issuing CA certificate (what clients trust).
    pub ca_pem: String,
    /// DER of the issuing CA certificate.
    pub ca_der: Vec<u8>,
    /// SubjectPublicKeyInfo (DER) of this start's leaf key: what the enclave's attestation document binds.
    pub leaf_spki: Vec<u8>,
}

fn internal(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what}: {e}"))
}

/// The CA's parameters. Deterministic in `label`, so the issuer can be rebuilt from its stored key: the leaf's
/// issuer name and authority key identifier then match the stored CA certificate.
fn ca_params(label: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "enclave-kms");
    dn.push(DnType::CommonName, format!("enclave-kms {label} CA"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

fn new_issuer(label: &str) -> Result<IssuerBody, Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(internal("CA key"))?;
    let mut params = ca_params(label);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    let cert = params.self_signed(&key).map_err(internal("CA certificate"))?;
    Ok(IssuerBody { label: label.to_owned(), key_pkcs8: key.serialize_der(), cert_der: cert.der().to_vec() })
}

/// Loads the issuing CA from the store, then issues a leaf for `names`. Creates the CA only when `may_create` (while
/// the data directory is being initialised); once initialised, a missing CA record is refused, naming it, rather
/// than silently replaced (which would break every client that trusts the old CA).
pub async fn load_or_create(
    records: &Records,
    names: &[String],
    label: &str,
    may_create: bool,
) -> Result<TlsIdentity, Error> {
    let body = match records.get(RecordKind::TlsIssuer, ISSUER_RECORD_ID).await? {
        Some(opened) => ciborium::from_reader::<IssuerBody, _>(&opened.body[..])
            .map_err(|_| Error::Internal("undecodable TLS issuer record".into()))?,
        None if !may_create => {
            return Err(Error::Internal(format!(
                "required record TlsIssuer/{ISSUER_RECORD_ID} is missing from an initialised data directory; \
                 refusing to mint a new CA (restore the store)"
            )));
        }
        None => {
            let body = new_issuer(label)?;
            let mut bytes = Zeroizing::new(Vec::with_capacity(1024));
            ciborium::into_writer(&body, &mut *bytes).map_err(|e| Error::Internal(e.to_string()))?;
            records.put(RecordKind::TlsIssuer, ISSUER_RECORD_ID, None, &bytes).await?;
            body
        }
    };
    identity(&body, names)
}

fn identity(body: &IssuerBody, names: &[String]) -> Result<TlsIdentity, Error> {
    let ca_key = KeyPair::try_from(body.key_pkcs8.as_slice()).map_err(internal("CA key"))?;
    let ca_der = CertificateDer::from(body.cert_der.clone());
    let issuer = Issuer::new(ca_params(&body.label), ca_key);

    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(internal("leaf key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "enclave-kms");
    params.distinguished_name = dn;
    for n in names {
        let san = match n.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(n.clone().try_into().map_err(internal("TLS name"))?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(90);
    let leaf = params.signed_by(&leaf_key, &issuer).map_err(internal("leaf certificate"))?;

    let leaf_spki = rcgen::PublicKeyData::subject_public_key_info(&leaf_key);
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_der.clone()], key_der)
        .map_err(|e| Error::Internal(format!("TLS config: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        ca_pem: kms_attestation::pem::encode("CERTIFICATE", &body.cert_der),
        ca_der: body.cert_der.clone(),
        leaf_spki,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leaf_chains_to_stable_ca() {
        let body = new_issuer("test").unwrap();
        let a = identity(&body, &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let b = identity(&body, &["localhost".into()]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(identity(&body, &["b\u{e4}d.example".into()]).is_err(), "a DNS name must be IA5");
    }
}
