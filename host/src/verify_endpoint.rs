//! `kms-host verify-endpoint`: decide whether to trust an enclave-kms endpoint, from its attestation.
//!
//! 1. Connect with TLS, record the certificate chain the server presents (the handshake signature is still verified,
//!    so the server holds the leaf's private key), and over that same connection ask for a fresh attestation
//!    document carrying our own random nonce (`EnclaveKms.GetAttestationDocument`).
//! 2. Verify the document: pinned anchor (the AWS Nitro root, or a simulator root when given), chain at the current
//!    time, age, our nonce, the expected PCRs, no debug mode unless allowed.
//! 3. Check the binding: the document's `public_key` is the SubjectPublicKeyInfo of the leaf this connection used, and
//!    its `user_data` is the SHA-384 of the CA certificate presented followed by the SHA-384 of the enclave's
//!    initialisation settings (custody); the leaf chains to that CA for the endpoint name. With
//!    `--expected-settings-digest`, the settings digest must be the one the operator computed
//!    (`kms-host custody digest`); it is printed as `settings_digest` either way.
//! 4. Only then write the CA certificate: the bundle a client should trust from now on.

use crate::attest_cmd::{Failure, MAX_SKEW_MS, anchor, now_ms};
use crate::files::write_atomic;
use base64::Engine;
use kms_attestation::{PcrPolicy, TimeRule, TrustAnchor, VerifiedAttestation, verify};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_RESPONSE: u64 = 256 * 1024;
/// Largest age of the endpoint's document: it was made for our request a moment ago.
const MAX_AGE_MS: u64 = 60_000;

/// Records the chain; accepts it for the handshake (the binding is checked after, from the attestation document),
/// but verifies the handshake signatures, so the server must hold the leaf's private key.
#[derive(Debug)]
pub(crate) struct Capture {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl Capture {
    /// A capturing verifier over `provider`.
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        Self { provider, chain: Mutex::new(Vec::new()) }
    }

    /// The chain the server presented.
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().map_err(|_| rustls::Error::General("poisoned".into()))? = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `https://HOST[:PORT][/]` → (host, port).
pub fn parse_endpoint(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("https://").ok_or_else(|| format!("the endpoint must be an https:// URL: {url}"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.is_empty() {
        return Err(format!("the endpoint must be https://HOST[:PORT]: {url}"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| format!("bad IPv6 endpoint: {url}"))?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (rest.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port in {url}"))?,
        None => 443,
    };
    Ok((host, port))
}

fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(|e| format!("server certificate: {e}"))?;
    cert.tbs_certificate().subject_public_key_info().to_der().map_err(|e| format!("server certificate: {e}"))
}

fn sha384(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, bytes).as_ref().to_vec()
}

/// Everything verify-endpoint checks once it holds the document and the presented chain.
pub fn check(
    doc: &[u8],
    anchor: &TrustAnchor,
    policy: &PcrPolicy,
    nonce: &[u8],
    chain: &[CertificateDer<'static>],
    server_name: &ServerName<'static>,
    now_ms: u64,
) -> Result<VerifiedAttestation, Failure> {
    let time = TimeRule::Now { now_ms, max_age_ms: MAX_AGE_MS, max_skew_ms: MAX_SKEW_MS };
    let verified = verify(doc, anchor, policy, Some(nonce), time).map_err(Failure::Document)?;
    let (leaf, ca) = match chain {
        [leaf, ca, ..] => (leaf, ca),
        _ => return Err(Failure::Usage("the endpoint presented no CA certificate after its leaf".into())),
    };
    if verified.public_key() != Some(spki_of(leaf).map_err(Failure::Usage)?.as_slice()) {
        return Err(Failure::Usage(
            "the TLS key of this connection is not the key the attestation document binds: not this enclave".into(),
        ));
    }
    if verified.user_data().and_then(|u| u.get(..48)) != Some(sha384(ca).as_slice())
        || verified.user_data().map(<[u8]>::len) != Some(96)
    {
        return Err(Failure::Usage(
            "the CA the endpoint presented is not the CA the attestation document binds".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| Failure::Usage(format!("CA certificate: {e}")))?;
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Failure::Usage(format!("CA certificate: {e}")))?;
    let now = UnixTime::since_unix_epoch(Duration::from_millis(now_ms));
    webpki
        .verify_server_cert(leaf, &[], server_name, &[], now)
        .map_err(|e| Failure::Usage(format!("the server certificate does not chain to the attested CA: {e}")))?;
    Ok(verified)
}

/// Fetches `(document, presented chain)` from the endpoint with `nonce`.
fn fetch(host: &str, port: u16, nonce: &[u8]) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let capture = Arc::new(Capture { provider: provider.clone(), chain: Mutex::new(Vec::new()) });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("bad endpoint name {host}: {e}"))?;
    let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect((host, port)).map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    let body = serde_json::json!({ "Nonce": base64::engine::general_purpose::STANDARD.encode(nonce) }).to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: EnclaveKms.GetAttestationDocument\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).map_err(|e| format!("TLS: {e}"))?;
    let mut response = Vec::new();
    let read = (&mut tls).take(MAX_RESPONSE + 1).read_to_end(&mut response);
    if let Err(e) = read {
        // A peer that closes without close_notify still gave us the whole response when Content-Length is met.
        if response.is_empty() {
            return Err(format!("TLS: {e}"));
        }
    }
    if response.len() as u64 > MAX_RESPONSE {
        return Err("the endpoint's response is too large".into());
    }
    let chain = capture.chain.lock().map_err(|_| "poisoned".to_owned())?.clone();
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("the endpoint's response is not HTTP")?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|_| format!("the endpoint answered {status} with no JSON"))?;
    if status != "200" {
        return Err(format!(
            "the endpoint answered {status}: {} {}",
            json.get("__type").and_then(|v| v.as_str()).unwrap_or("?"),
            json.get("message").and_then(|v| v.as_str()).unwrap_or("")
        ));
    }
    let doc = json
        .get("AttestationDocument")
        .and_then(|v| v.as_str())
        .ok_or("the endpoint's answer has no AttestationDocument")?;
    let doc = base64::engine::general_purpose::STANDARD.decode(doc).map_err(|_| "AttestationDocument is not base64")?;
    Ok((doc, chain))
}

/// Options of `kms-host verify-endpoint`.
pub struct Args<'a> {
    pub endpoint: &'a str,
    pub expected_pcrs: Vec<(u32, Vec<u8>)>,
    pub sim_root: Option<&'a Path>,
    pub allow_debug: bool,
    pub expected_settings_digest: Option<Vec<u8>>,
    pub out: &'a Path,
}

/// The settings digest an endpoint's checked document binds (`user_data` after the CA's hash).
pub fn settings_digest(verified: &VerifiedAttestation) -> Option<&[u8]> {
    verified.user_data().and_then(|u| u.get(48..))
}

/// Runs the command; returns the verified document's fields as JSON.
pub fn run(args: Args<'_>) -> Result<serde_json::Value, Failure> {
    if args.expected_pcrs.is_empty() {
        return Err(Failure::Usage(
            "give at least one --expected-pcr N=HEX: an endpoint is trusted for its code".into(),
        ));
    }
    let (host, port) = parse_endpoint(args.endpoint).map_err(Failure::Usage)?;
    let anchor = anchor(args.sim_root)?;
    let policy = crate::attest_cmd::policy(args.expected_pcrs, args.allow_debug);
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Failure::Usage("random source failed".into()))?;
    let (doc, chain) = fetch(&host, port, &nonce).map_err(Failure::Usage)?;
    let name = ServerName::try_from(host.clone()).map_err(|e| Failure::Usage(format!("bad endpoint name: {e}")))?;
    let verified = check(&doc, &anchor, &policy, &nonce, &chain, &name, now_ms())?;
    let digest = settings_digest(&verified).unwrap_or_default();
    if let Some(expected) = &args.expected_settings_digest
        && expected.as_slice() != digest
    {
        return Err(Failure::Usage(format!(
            "the endpoint's initialisation settings digest is {}, not the expected {}: it was initialised with other \
             keys or settings",
            hex::encode(digest),
            hex::encode(expected)
        )));
    }
    let ca = chain.get(1).ok_or_else(|| Failure::Usage("no CA certificate".into()))?;
    write_atomic(args.out, kms_attestation::pem::encode("CERTIFICATE", ca).as_bytes(), 0o644)
        .map_err(Failure::Usage)?;
    let mut out = crate::attest_cmd::to_json(&verified);
    if let Some(o) = out.as_object_mut() {
        o.insert("settings_digest".into(), hex::encode(digest).into());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use kms_attestation::{DocumentRequest, SimPki, simulated_pcrs};

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("https://127.0.0.1:8443").unwrap(), ("127.0.0.1".into(), 8443));
        assert_eq!(parse_endpoint("https://kms.example/").unwrap(), ("kms.example".into(), 443));
        assert_eq!(parse_endpoint("https://[::1]:9").unwrap(), ("::1".into(), 9));
        assert!(parse_endpoint("http://127.0.0.1:1").is_err());
        assert!(parse_endpoint("https://h:1/path").is_err());
        assert!(parse_endpoint("https://h:port").is_err());
    }

    /// A TLS identity like the enclave's: CA and leaf for 127.0.0.1.
    fn tls_identity() -> (Vec<CertificateDer<'static>>, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&leaf_key);
        (vec![leaf.der().clone(), ca_cert.der().clone()], spki)
    }

    struct Case {
        pki: SimPki,
        chain: Vec<CertificateDer<'static>>,
        spki: Vec<u8>,
        pcrs: std::collections::BTreeMap<u32, Vec<u8>>,
    }

    fn case() -> Case {
        let (chain, spki) = tls_identity();
        Case { pki: SimPki::generate().unwrap(), chain, spki, pcrs: simulated_pcrs(b"enclave", false) }
    }

    impl Case {
        fn doc(&self, nonce: &[u8], spki: &[u8], ca: &[u8]) -> Vec<u8> {
            let req = DocumentRequest {
                pcrs: self.pcrs.clone(),
                public_key: Some(spki.to_vec()),
                user_data: Some([sha384(ca), vec![7u8; 48]].concat()),
                nonce: Some(nonce.to_vec()),
                module_id: None,
            };
            self.pki.issue(&req, now_ms()).unwrap()
        }
        fn check(&self, doc: &[u8], nonce: &[u8], pcr0: &[u8]) -> Result<VerifiedAttestation, Failure> {
            let anchor = TrustAnchor::simulator(&self.pki.root_der()).unwrap();
            let policy = PcrPolicy::new().expect(0, pcr0.to_vec());
            let name = ServerName::try_from("127.0.0.1").unwrap();
            check(doc, &anchor, &policy, nonce, &self.chain, &name, now_ms())
        }
    }

    #[test]
    fn a_bound_fresh_document_passes() {
        let c = case();
        let doc = c.doc(b"n1", &c.spki, &c.chain[1]);
        assert!(c.check(&doc, b"n1", &c.pcrs[&0]).is_ok());
    }

    #[test]
    fn replayed_document_fails_on_the_nonce() {
        let c = case();
        let doc = c.doc(b"old nonce", &c.spki, &c.chain[1]);
        let err = c.check(&doc, b"new nonce", &c.pcrs[&0]).err().unwrap();
        assert!(err.to_string().contains("nonce"), "{err}");
    }

    #[test]
    fn another_tls_key_fails() {
        let c = case();
        let (_, other_spki) = tls_identity();
        let doc = c.doc(b"n", &other_spki, &c.chain[1]);
        let err = c.check(&doc, b"n", &c.pcrs[&0]).err().unwrap();
        assert!(err.to_string().contains("TLS key"), "{err}");
    }

    #[test]
    fn another_ca_fails() {
        let c = case();
        let (other_chain, _) = tls_identity();
        let doc = c.doc(b"n", &c.spki, &other_chain[1]);
        let err = c.check(&doc, b"n", &c.pcrs[&0]).err().unwrap();
        assert!(err.to_string().contains("CA"), "{err}");
    }

    #[test]
    fn a_document_without_the_settings_digest_fails() {
        let c = case();
        let req = DocumentRequest {
            pcrs: c.pcrs.clone(),
            public_key: Some(c.spki.clone()),
            user_data: Some(sha384(&c.chain[1])),
            nonce: Some(b"n".to_vec()),
            module_id: None,
        };
        let doc = c.pki.issue(&req, now_ms()).unwrap();
        assert!(c.check(&doc, b"n", &c.pcrs[&0]).is_err());
        let good = c.doc(b"n", &c.spki, &c.chain[1]);
        assert_eq!(settings_digest(&c.check(&good, b"n", &c.pcrs[&0]).unwrap()), Some(&[7u8; 48][..]));
    }

    #[test]
    fn wrong_pcr_fails() {
        let c = case();
        let doc = c.doc(b"n", &c.spki, &c.chain[1]);
        let err = c.check(&doc, b"n", &[7u8; 48]).err().unwrap();
        assert!(err.to_string().contains("pcr"), "{err}");
    }
}
