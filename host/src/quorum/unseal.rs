//! `kms-host quorum unseal`: one operator's part in unsealing.
//!
//! 1. Open the share file with the operator's key (HPKE `info` binds deployment, index, threshold, count and the
//!    settings digest recorded at initialisation).
//! 2. Over one TLS connection to the endpoint, fetch a fresh attestation document with our own random nonce and
//!    verify it: anchor (AWS root or `--sim-root`), chain, age, nonce, the expected PCRs; `user_data` is SHA-384 of
//!    the TLS certificate this connection was served (the handshake proved the server holds its key) followed by the
//!    settings digest, which must be the share file's; `public_key` is the enclave's fresh P-384 unseal key.
//! 3. Only then seal the share to the unseal key (`info` binds the document's SHA-384), sign the submission with
//!    the operator key and send it on the same connection.

use super::{OperatorKey, p384_point, read_private_key, read_small};
use crate::attest_cmd::{MAX_SKEW_MS, anchor, now_ms, policy};
use crate::verify_endpoint::{Capture, parse_endpoint};
use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kms_attestation::{PcrPolicy, TimeRule, TrustAnchor, verify};
use kms_shared::quorum::{self as wire, ShareFile};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_RESPONSE: usize = 256 * 1024;
const MAX_AGE_MS: u64 = 60_000;

/// Options of `kms-host quorum unseal`.
pub struct Args<'a> {
    pub endpoint: &'a str,
    pub share: &'a Path,
    pub private_key: &'a Path,
    pub expected_pcrs: Vec<(u32, Vec<u8>)>,
    pub sim_root: Option<&'a Path>,
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// One JSON call on a keep-alive connection: `(status, body)`.
fn call(tls: &mut Tls, host: &str, target: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value), String> {
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).map_err(|e| format!("TLS: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 16 * 1024 {
            return Err("the endpoint's response header is too large".into());
        }
        let n = tls.read(&mut chunk).map_err(|e| format!("TLS: {e}"))?;
        if n == 0 {
            return Err("the endpoint closed the connection".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).to_string();
    let status: u16 =
        head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("the endpoint's response is not HTTP")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or("the endpoint's response has no Content-Length")?;
    if length > MAX_RESPONSE {
        return Err("the endpoint's response is too large".into());
    }
    let mut body = buf.get(head_end + 4..).unwrap_or_default().to_vec();
    while body.len() < length {
        let n = tls.read(&mut chunk).map_err(|e| format!("TLS: {e}"))?;
        if n == 0 {
            return Err("the endpoint closed the connection mid-response".into());
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    body.truncate(length);
    let json = serde_json::from_slice(&body).map_err(|_| format!("the endpoint answered {status} with no JSON"))?;
    Ok((status, json))
}

fn api_error(status: u16, json: &serde_json::Value) -> String {
    format!(
        "the endpoint answered {status}: {}: {}",
        json.get("__type").and_then(|v| v.as_str()).unwrap_or("?"),
        json.get("message").and_then(|v| v.as_str()).unwrap_or("")
    )
}

fn sha384(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, b).as_ref().to_vec()
}

/// The opened share file: the file and the share value.
fn open_share(file: &ShareFile, key: &OperatorKey) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let value = super::hpke::open(&key.agreement, &file.info(), &file.ciphertext).ok_or_else(|| {
        format!(
            "--share: cannot open share {} with this private key (another operator's share, another key, or a \
             corrupted file)",
            file.index
        )
    })?;
    if value.len() != wire::SHARE_LEN {
        return Err("--share: the share has the wrong length".into());
    }
    Ok(value)
}

/// Everything checked before a share leaves this machine, given the document and the chain this connection was
/// served: returns the enclave's unseal key (an uncompressed P-384 point) and the document's SHA-384.
pub fn check(
    doc: &[u8],
    anchor: &TrustAnchor,
    policy: &PcrPolicy,
    nonce: &[u8],
    chain: &[CertificateDer<'static>],
    settings_digest: &[u8],
    now_ms: u64,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let time = TimeRule::Now { now_ms, max_age_ms: MAX_AGE_MS, max_skew_ms: MAX_SKEW_MS };
    let verified = verify(doc, anchor, policy, Some(nonce), time)
        .map_err(|e| format!("the enclave's attestation document failed verification at step {}: {e}", e.step()))?;
    let leaf = match chain {
        [leaf] => leaf,
        [] => return Err("the endpoint presented no certificate".into()),
        _ => {
            return Err(
                "the endpoint is not sealed (it presents its CA-issued certificate chain): nothing to unseal".into()
            );
        }
    };
    let user_data = verified.user_data().unwrap_or_default();
    let (tls_hash, digest) = match user_data.split_at_checked(48) {
        Some((t, d)) if d.len() == 48 => (t, d),
        _ => return Err("the attestation document does not bind a TLS certificate and settings digest".into()),
    };
    if tls_hash != sha384(leaf).as_slice() {
        return Err("the TLS certificate of this connection is not the one the attestation document binds".into());
    }
    if digest != settings_digest {
        return Err(format!(
            "the enclave's settings digest {} is not the one this share was made under ({}): the enclave was \
             initialised with other operators, threshold or admin key; share not sent",
            hex::encode(digest),
            hex::encode(settings_digest)
        ));
    }
    let unseal_key =
        verified.public_key().and_then(p384_point).ok_or("the attestation document carries no P-384 unseal key")?;
    Ok((unseal_key, verified.document_sha384().to_vec()))
}

/// Runs the command; the line to print on success.
pub fn run(args: Args<'_>) -> Result<String, String> {
    if args.expected_pcrs.is_empty() {
        return Err("give at least one --expected-pcr N=HEX: a share is released only to known code".into());
    }
    let (host, port) = parse_endpoint(args.endpoint)?;
    let share_bytes = read_small("--share", args.share)?;
    let file = ShareFile::decode(&share_bytes).map_err(|e| format!("--share {}: {e}", args.share.display()))?;
    let key = read_private_key(args.private_key)?;
    let value = open_share(&file, &key)?;
    let anchor = anchor(args.sim_root).map_err(|e| e.to_string())?;
    let policy = policy(args.expected_pcrs, false);

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let capture = Arc::new(Capture::new(provider.clone()));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("bad endpoint name {host}: {e}"))?;
    let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect((host.as_str(), port)).map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    let host_header = format!("{host}:{port}");

    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "random source failed".to_owned())?;
    let (status, json) = call(
        &mut tls,
        &host_header,
        "EnclaveKms.GetAttestationDocument",
        &serde_json::json!({ "Nonce": B64.encode(nonce) }),
    )?;
    if status != 200 {
        return Err(api_error(status, &json));
    }
    let doc = json
        .get("AttestationDocument")
        .and_then(|v| v.as_str())
        .and_then(|s| B64.decode(s).ok())
        .ok_or("the endpoint's answer has no AttestationDocument")?;
    let chain = capture.chain();
    let (unseal_key, doc_hash) = check(&doc, &anchor, &policy, &nonce, &chain, &file.settings_digest, now_ms())?;
    let ciphertext =
        super::hpke::seal(&unseal_key, &wire::submission_info(&doc_hash, &file.deployment_id, file.index), &value)?;
    let message = wire::submission_message(&doc_hash, &file.deployment_id, file.index, &ciphertext);
    let signature = key.signing.sign(&SystemRandom::new(), &message).map_err(|_| "signing failed".to_owned())?;
    let (status, json) = call(
        &mut tls,
        &host_header,
        "EnclaveKms.SubmitShare",
        &serde_json::json!({
            "DeploymentId": B64.encode(&file.deployment_id),
            "ShareIndex": file.index,
            "DocumentSha384": B64.encode(&doc_hash),
            "Ciphertext": B64.encode(&ciphertext),
            "Signature": B64.encode(signature.as_ref()),
        }),
    )?;
    if status != 200 {
        return Err(api_error(status, &json));
    }
    let needed = json.get("SharesNeeded").and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok(match needed {
        0 => "accepted: unsealed".to_owned(),
        1 => "accepted: 1 more share needed".to_owned(),
        n => format!("accepted: {n} more shares needed"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use kms_attestation::{DocumentRequest, SimPki, simulated_pcrs};

    const DIGEST: [u8; 48] = [7; 48];

    struct Case {
        pki: SimPki,
        cert: CertificateDer<'static>,
        unseal_spki: Vec<u8>,
        pcrs: std::collections::BTreeMap<u32, Vec<u8>>,
    }

    fn case() -> Case {
        let tls = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&tls).unwrap();
        let unseal = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        Case {
            pki: SimPki::generate().unwrap(),
            cert: cert.der().clone(),
            unseal_spki: rcgen::PublicKeyData::subject_public_key_info(&unseal),
            pcrs: simulated_pcrs(b"enclave", false),
        }
    }

    impl Case {
        fn doc(&self, user_data: Vec<u8>, public_key: &[u8]) -> Vec<u8> {
            let req = DocumentRequest {
                pcrs: self.pcrs.clone(),
                public_key: Some(public_key.to_vec()),
                user_data: Some(user_data),
                nonce: Some(b"n".to_vec()),
                module_id: None,
            };
            self.pki.issue(&req, now_ms()).unwrap()
        }
        fn good_user_data(&self) -> Vec<u8> {
            [sha384(&self.cert), DIGEST.to_vec()].concat()
        }
        fn check(
            &self,
            doc: &[u8],
            chain: &[CertificateDer<'static>],
            pcr0: &[u8],
        ) -> Result<(Vec<u8>, Vec<u8>), String> {
            let anchor = TrustAnchor::simulator(&self.pki.root_der()).unwrap();
            let policy = PcrPolicy::new().expect(0, pcr0.to_vec());
            check(doc, &anchor, &policy, b"n", chain, &DIGEST, now_ms())
        }
    }

    #[test]
    fn a_sealed_enclaves_document_passes_and_yields_its_unseal_key() {
        let c = case();
        let doc = c.doc(c.good_user_data(), &c.unseal_spki);
        let (point, hash) = c.check(&doc, std::slice::from_ref(&c.cert), &c.pcrs[&0]).unwrap();
        assert_eq!(point, p384_point(&c.unseal_spki).unwrap());
        assert_eq!(hash, sha384(&doc));
    }

    #[test]
    fn every_binding_is_checked() {
        let c = case();
        let good = c.doc(c.good_user_data(), &c.unseal_spki);
        let chain = [c.cert.clone()];
        let e = c.check(&good, &chain, &[9u8; 48]).unwrap_err();
        assert!(e.contains("pcr"), "{e}");
        // Another TLS certificate than this connection's.
        let other = case();
        let e = c.check(&good, std::slice::from_ref(&other.cert), &c.pcrs[&0]).unwrap_err();
        assert!(e.contains("TLS certificate of this connection"), "{e}");
        // An unsealed enclave's chain (leaf + CA).
        let e = c.check(&good, &[c.cert.clone(), other.cert.clone()], &c.pcrs[&0]).unwrap_err();
        assert!(e.contains("not sealed"), "{e}");
        // Other settings.
        let doc = c.doc([sha384(&c.cert), vec![8; 48]].concat(), &c.unseal_spki);
        let e = c.check(&doc, &chain, &c.pcrs[&0]).unwrap_err();
        assert!(e.contains("settings digest") && e.contains("not sent"), "{e}");
        // No settings digest at all.
        let doc = c.doc(sha384(&c.cert), &c.unseal_spki);
        assert!(c.check(&doc, &chain, &c.pcrs[&0]).is_err());
        // A public key that is not P-384.
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let doc = c.doc(c.good_user_data(), &rcgen::PublicKeyData::subject_public_key_info(&p256));
        let e = c.check(&doc, &chain, &c.pcrs[&0]).unwrap_err();
        assert!(e.contains("P-384 unseal key"), "{e}");
    }
}
