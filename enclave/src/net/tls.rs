//! TLS inside the enclave: an issuing CA, sealed like every other secret, and a leaf certificate with a fresh key at
//! every start. Clients trust the CA (`ca.pem`). The CA certificate is valid for [`CA_VALIDITY_DAYS`] and carries
//! name constraints for exactly the configured TLS names, so its key cannot vouch for any other name; it is re-issued
//! (same key, same subject) at a start that finds it within [`CA_RENEW_DAYS`] of expiry or configured for other
//! names, and clients then re-fetch `ca.pem` (the host rewrites it at every start).

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
/// Validity of the CA certificate.
pub const CA_VALIDITY_DAYS: i64 = 365;
/// A start that finds the CA certificate this close to expiry re-issues it.
pub const CA_RENEW_DAYS: i64 = 30;

#[derive(Serialize, Deserialize)]
struct IssuerBody {
    label: String,
    #[serde(with = "serde_bytes")]
    key_pkcs8: Vec<u8>,
    #[serde(with = "serde_bytes")]
    cert_der: Vec<u8>,
    /// The names the certificate's name constraints permit (absent in records of before the constraints: renewed).
    #[serde(default)]
    names: Vec<String>,
    /// The certificate's notAfter, Unix seconds (0 in records of before: renewed).
    #[serde(default)]
    not_after: i64,
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

/// Name constraints permitting exactly `names` (a DNS name also permits its subdomains, as RFC 5280 defines; an IP
/// address is a /32 or /128).
fn name_constraints(names: &[String]) -> rcgen::NameConstraints {
    let permitted_subtrees = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::from_addr_prefix(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            )),
            Err(_) => rcgen::GeneralSubtree::DnsName(n.clone()),
        })
        .collect();
    rcgen::NameConstraints { permitted_subtrees, excluded_subtrees: Vec::new() }
}

/// A CA certificate for `key`, valid [`CA_VALIDITY_DAYS`] from now and constrained to `names`.
fn issue_ca(label: &str, key_pkcs8: Vec<u8>, names: &[String]) -> Result<IssuerBody, Error> {
    let key = KeyPair::try_from(key_pkcs8.as_slice()).map_err(internal("CA key"))?;
    let mut params = ca_params(label);
    params.name_constraints = Some(name_constraints(names));
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    let cert = params.self_signed(&key).map_err(internal("CA certificate"))?;
    Ok(IssuerBody {
        label: label.to_owned(),
        key_pkcs8,
        cert_der: cert.der().to_vec(),
        names: names.to_vec(),
        not_after: params.not_after.unix_timestamp(),
    })
}

fn new_issuer(label: &str, names: &[String]) -> Result<IssuerBody, Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(internal("CA key"))?;
    issue_ca(label, key.serialize_der(), names)
}

/// Whether a stored CA certificate must be re-issued: near its end, or constrained to other names.
fn needs_renewal(body: &IssuerBody, names: &[String], now_unix: i64) -> bool {
    body.not_after.saturating_sub(now_unix) < CA_RENEW_DAYS * 86_400 || body.names != names
}

fn encode(body: &IssuerBody) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(1024));
    ciborium::into_writer(body, &mut *bytes).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(bytes)
}

/// Loads the issuing CA from the store, re-issuing its certificate when it is near its end or the names changed, then
/// issues a leaf for `names`. Creates the CA only when `may_create` (while the data directory is being initialised);
/// once initialised, a missing CA record is refused, naming it, rather than silently replaced (which would break every
/// client that trusts the old CA).
pub async fn load_or_create(
    records: &Records,
    names: &[String],
    label: &str,
    may_create: bool,
) -> Result<TlsIdentity, Error> {
    let body = match records.get(RecordKind::TlsIssuer, ISSUER_RECORD_ID).await? {
        Some(opened) => {
            let stored = ciborium::from_reader::<IssuerBody, _>(&opened.body[..])
                .map_err(|_| Error::Internal("undecodable TLS issuer record".into()))?;
            if needs_renewal(&stored, names, OffsetDateTime::now_utc().unix_timestamp()) {
                let renewed = issue_ca(&stored.label, stored.key_pkcs8.clone(), names)?;
                records.put(RecordKind::TlsIssuer, ISSUER_RECORD_ID, Some(opened.version), &encode(&renewed)?).await?;
                tracing::warn!(
                    names = ?names,
                    "TLS CA certificate re-issued (same key; near expiry or other names): clients must re-fetch ca.pem"
                );
                renewed
            } else {
                stored
            }
        }
        None if !may_create => {
            return Err(Error::Internal(format!(
                "required record TlsIssuer/{ISSUER_RECORD_ID} is missing from an initialised data directory; \
                 refusing to mint a new CA (restore the store)"
            )));
        }
        None => {
            let body = new_issuer(label, names)?;
            records.put(RecordKind::TlsIssuer, ISSUER_RECORD_ID, None, &encode(&body)?).await?;
            body
        }
    };
    identity(&body, names)
}

/// Adds `names` (DNS names or IP addresses) to `params` as subjectAltNames, once each.
pub(crate) fn add_names(params: &mut CertificateParams, names: &[String]) -> Result<(), Error> {
    for n in names {
        let san = match n.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(n.clone().try_into().map_err(internal("TLS name"))?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    Ok(())
}

/// A fresh leaf key and its certificate for `names`, issued by the CA of `body`.
fn issue_leaf(body: &IssuerBody, names: &[String]) -> Result<(rcgen::Certificate, KeyPair), Error> {
    let ca_key = KeyPair::try_from(body.key_pkcs8.as_slice()).map_err(internal("CA key"))?;
    let issuer = Issuer::new(ca_params(&body.label), ca_key);

    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(internal("leaf key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "enclave-kms");
    params.distinguished_name = dn;
    add_names(&mut params, names)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(90);
    let leaf = params.signed_by(&leaf_key, &issuer).map_err(internal("leaf certificate"))?;
    Ok((leaf, leaf_key))
}

fn identity(body: &IssuerBody, names: &[String]) -> Result<TlsIdentity, Error> {
    let ca_der = CertificateDer::from(body.cert_der.clone());
    let (leaf, leaf_key) = issue_leaf(body, names)?;
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

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn leaf_chains_to_stable_ca() {
        let body = new_issuer("test", &names(&["localhost", "127.0.0.1"])).unwrap();
        let a = identity(&body, &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let b = identity(&body, &["localhost".into()]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(identity(&body, &["b\u{e4}d.example".into()]).is_err(), "a DNS name must be IA5");
    }

    fn openssl(args: &[&str]) -> std::process::Output {
        std::process::Command::new("openssl").args(args).output().expect("openssl is required by these tests")
    }

    /// Issue 12 item 13: the CA is constrained to the configured names and valid a year; a certificate its key
    /// issues for another name is refused by a verifier (OpenSSL's).
    #[test]
    #[allow(clippy::disallowed_methods)] // test files for the openssl CLI, not enclave code
    fn ca_is_name_constrained_and_short_lived() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = names(&["localhost", "127.0.0.1", "::1", "kms.example.internal"]);
        let body = new_issuer("test", &allowed).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, kms_attestation::pem::encode("CERTIFICATE", &body.cert_der)).unwrap();
        let text = openssl(&["x509", "-in", ca.to_str().unwrap(), "-noout", "-text"]);
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
        for n in ["DNS:localhost", "IP:127.0.0.1/255.255.255.255", "DNS:kms.example.internal"] {
            assert!(text.contains(n), "{n} in {text}");
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!((body.not_after - now - CA_VALIDITY_DAYS * 86_400).abs() < 60);

        let verify = |leaf_names: &[&str], host: &str| {
            let (leaf, _) = issue_leaf(&body, &names(leaf_names)).unwrap();
            let pem = kms_attestation::pem::encode("CERTIFICATE", leaf.der());
            let path = dir.path().join(format!("{host}.pem"));
            std::fs::write(&path, pem).unwrap();
            openssl(&["verify", "-CAfile", ca.to_str().unwrap(), "-verify_hostname", host, path.to_str().unwrap()])
        };
        let ok = verify(&["localhost", "127.0.0.1"], "localhost");
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        let evil = verify(&["www.bank.example"], "www.bank.example");
        assert!(!evil.status.success(), "a name outside the constraints verified");
        let out = String::from_utf8_lossy(&evil.stdout).into_owned() + &String::from_utf8_lossy(&evil.stderr);
        assert!(out.contains("permitted subtree violation"), "{out}");
    }

    #[test]
    fn renewal_when_near_expiry_or_names_change() {
        let n = names(&["localhost"]);
        let body = new_issuer("test", &n).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!(!needs_renewal(&body, &n, now));
        assert!(needs_renewal(&body, &n, body.not_after - CA_RENEW_DAYS * 86_400 + 1));
        assert!(needs_renewal(&body, &names(&["localhost", "kms.example"]), now));
        let mut old = issue_ca("test", body.key_pkcs8.clone(), &n).unwrap();
        old.names = Vec::new();
        old.not_after = 0;
        assert!(needs_renewal(&old, &n, now), "records of before the constraints are renewed");
        // Renewal keeps the key: a leaf of the renewed CA verifies under the same public key.
        let renewed = issue_ca("test", body.key_pkcs8.clone(), &names(&["localhost", "kms.example"])).unwrap();
        assert_eq!(renewed.key_pkcs8, body.key_pkcs8);
        assert_ne!(renewed.cert_der, body.cert_der);
    }
}
