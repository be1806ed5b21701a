//! The sealed enclave's endpoint: until M operators have submitted their shares it serves, over TLS with an
//! ephemeral self-signed certificate (the TLS CA's key is sealed under the domain key it does not have yet), only
//! - `EnclaveKms.GetAttestationDocument`: `public_key` = the fresh unseal key; `user_data` = SHA-384 of the
//!   ephemeral certificate ‖ the settings digest (the same layout as an unsealed enclave's, CA hash ‖ digest); the
//!   caller's nonce. Each document's SHA-384 is remembered, so a submission must answer one issued in this start;
//! - `EnclaveKms.GetUnsealStatus`: threshold, count, accepted share indices;
//! - `EnclaveKms.SubmitShare`: one operator's share (see [`super::unseal`]).
//!
//! Everything else is answered `KMSInvalidStateException` ("the enclave is sealed"). No SigV4: nothing here needs
//! a credential (there are none yet), and a submission is authenticated by the operator's signature instead.

use super::unseal::{Progress, Refusal, Submission, Unsealer};
use crate::cmd::{Blob, b64, check_len, parse, required, respond};
use crate::crypto::secret::Key256;
use crate::error::Error;
use crate::net::server::{
    HANDSHAKE_TIMEOUT, HEADER_TIMEOUT, HEALTH_PATH, PREFACE_TIMEOUT, health_reply, read_preface, reply,
};
use crate::net::transport::{ClientListener, Stream};
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use kms_attestation::Nsm;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// Largest request body while sealed (a submission is well under 2 KiB).
const MAX_BODY: usize = 16 * 1024;
/// Longest nonce (the NSM's limit).
const MAX_NONCE: usize = 512;
/// Most connections served at once while sealed.
const MAX_CONNECTIONS: usize = 64;

struct Sealed {
    nsm: Arc<dyn Nsm>,
    unsealer: Mutex<Unsealer>,
    /// SHA-384 of the ephemeral certificate ‖ the settings digest.
    user_data: Vec<u8>,
    /// Set once the domain key is back.
    key: watch::Sender<Option<Arc<Key256>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DocRequest {
    nonce: Option<Blob>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DocResponse<'a> {
    #[serde(serialize_with = "b64")]
    attestation_document: &'a [u8],
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubmitRequest {
    deployment_id: Option<Blob>,
    share_index: Option<u8>,
    document_sha384: Option<Blob>,
    ciphertext: Option<Blob>,
    signature: Option<Blob>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Status {
    sealed: bool,
    threshold: u8,
    shares: u8,
    shares_accepted: Vec<u8>,
    shares_needed: u8,
    deployment_id: String,
    settings_digest: String,
}

/// An ephemeral self-signed TLS identity for `names`: the server config and the certificate's DER.
fn ephemeral_tls(names: &[String]) -> Result<(Arc<ServerConfig>, Vec<u8>), Error> {
    let internal = |what: &str| {
        let what = what.to_owned();
        move |e: rcgen::Error| Error::Internal(format!("{what}: {e}"))
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(internal("sealed TLS key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "enclave-kms (sealed)");
    params.distinguished_name = dn;
    crate::net::tls::add_names(&mut params, names)?;
    let cert = params.self_signed(&key).map_err(internal("sealed TLS certificate"))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(|e| Error::Internal(format!("sealed TLS config: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), cert.der().to_vec()))
}

/// Serves the sealed endpoint on `listener` until `unsealer` recovers the domain key, and returns it.
pub async fn serve(
    listener: &ClientListener,
    nsm: Arc<dyn Nsm>,
    unsealer: Unsealer,
    settings_digest: &[u8; 48],
    tls_names: &[String],
) -> Result<Key256, Error> {
    let (config, cert_der) = ephemeral_tls(tls_names)?;
    let user_data = [Sha384::digest(&cert_der).as_slice(), settings_digest].concat();
    let (tx, mut rx) = watch::channel(None);
    let sealed = Arc::new(Sealed { nsm, unsealer: Mutex::new(unsealer), user_data, key: tx });
    let acceptor = TlsAcceptor::from(config);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Err(Error::Internal("the unseal state went away".into()));
                }
                let key = rx.borrow_and_update().clone();
                if let Some(key) = key {
                    // The key is copied out of the shared slot; the slot is cleared so only the caller holds it.
                    let out = Key256::from_array(*key.expose_secret());
                    sealed.key.send_replace(None);
                    return Ok(out);
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok(s) => s,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); continue }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!("sealed: connection limit reached; dropping a connection");
                    continue;
                };
                let (acceptor, sealed) = (acceptor.clone(), sealed.clone());
                tokio::spawn(async move {
                    connection(stream, acceptor, sealed).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn connection(mut stream: Box<dyn Stream>, acceptor: TlsAcceptor, sealed: Arc<Sealed>) {
    let peer = match tokio::time::timeout(PREFACE_TIMEOUT, read_preface(&mut stream)).await {
        Ok(Ok(p)) => p,
        _ => return tracing::warn!("sealed: bad or missing connection preface"),
    };
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return tracing::info!(%peer, "sealed: TLS handshake failed");
    };
    let service = service_fn(move |req| {
        let sealed = sealed.clone();
        async move { Ok::<_, Infallible>(handle(&sealed, req).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(32 * 1024)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn handle(sealed: &Sealed, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == HEALTH_PATH {
        return health_reply(StatusCode::SERVICE_UNAVAILABLE, "sealed", false);
    }
    let target: String = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect())
        .unwrap_or_default();
    let mut request_id = [0u8; 16];
    let _ = getrandom::fill(&mut request_id);
    let request_id = crate::state::ids::format_uuid(&request_id);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = Error::Validation(format!("The request body exceeds the maximum size of {MAX_BODY} bytes"));
            return error_reply(&e, &request_id, true);
        }
    };
    let outcome = dispatch(sealed, &target, &body).await;
    // Once unsealed, kept-alive sealed connections are closed: clients reconnect to the unsealed service.
    let close = lock(sealed).map(|u| u.is_unsealed()).unwrap_or(true);
    match outcome {
        Ok(out) => reply(StatusCode::OK, out, None, &request_id, close),
        Err(e) => {
            if let Error::Internal(detail) = &e {
                tracing::error!(%target, detail = %detail, "sealed: internal error");
            } else {
                tracing::info!(%target, code = e.code().name(), message = %e, "sealed: request refused");
            }
            error_reply(&e, &request_id, close)
        }
    }
}

fn error_reply(e: &Error, request_id: &str, close: bool) -> Response<Full<Bytes>> {
    let code = e.code();
    let body = serde_json::json!({"__type": code.name(), "message": e.public_message()});
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(status, body.to_string().into_bytes(), Some(code.name()), request_id, close)
}

async fn dispatch(sealed: &Sealed, target: &str, body: &[u8]) -> Result<Vec<u8>, Error> {
    match target {
        crate::cmd::ATTESTATION_TARGET => attestation(sealed, parse(body)?).await,
        "EnclaveKms.GetUnsealStatus" => status(sealed),
        "EnclaveKms.SubmitShare" => submit(sealed, parse(body)?),
        _ => Err(Error::KmsInvalidState(
            "The enclave is sealed: it needs its operators' shares (EnclaveKms.SubmitShare, e.g. `kms-host quorum \
             unseal`) before it serves this operation."
                .into(),
        )),
    }
}

fn lock(sealed: &Sealed) -> Result<std::sync::MutexGuard<'_, Unsealer>, Error> {
    sealed.unsealer.lock().map_err(|_| Error::Internal("unseal state poisoned".into()))
}

async fn attestation(sealed: &Sealed, req: DocRequest) -> Result<Vec<u8>, Error> {
    let nonce = required(req.nonce, "nonce")?.0;
    check_len(nonce.len(), "nonce", MAX_NONCE)?;
    let spki = lock(sealed)?.unseal_spki().to_vec();
    let (nsm, user_data) = (sealed.nsm.clone(), sealed.user_data.clone());
    let doc = tokio::task::spawn_blocking(move || nsm.attestation(Some(&user_data), Some(&nonce), Some(&spki)))
        .await
        .map_err(|_| Error::Internal("attestation task failed".into()))?
        .map_err(|e| Error::Internal(format!("NSM attestation: {e}")))?;
    lock(sealed)?.issued(Sha384::digest(&doc).into());
    respond(DocResponse { attestation_document: &doc })
}

fn status(sealed: &Sealed) -> Result<Vec<u8>, Error> {
    let u = lock(sealed)?;
    let d = u.descriptor();
    respond(Status {
        sealed: !u.is_unsealed(),
        threshold: d.threshold,
        shares: d.count(),
        shares_accepted: u.accepted(),
        shares_needed: if u.is_unsealed() { 0 } else { u.needed() },
        deployment_id: base64::engine::general_purpose::STANDARD.encode(&d.deployment_id),
        settings_digest: hex::encode(sealed.user_data.get(48..).unwrap_or_default()),
    })
}

fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::AlreadyUnsealed => Error::KmsInvalidState(r.to_string()),
        Refusal::BadSignature(_) => Error::AccessDenied(r.to_string()),
        Refusal::CheckFailed => Error::KmsInvalidState(r.to_string()),
        other => Error::Validation(other.to_string()),
    }
}

fn submit(sealed: &Sealed, req: SubmitRequest) -> Result<Vec<u8>, Error> {
    let deployment_id = required(req.deployment_id, "deploymentId")?.0;
    let index = required(req.share_index, "shareIndex")?;
    let document_sha384 = required(req.document_sha384, "documentSha384")?.0;
    let ciphertext = required(req.ciphertext, "ciphertext")?.0;
    let signature = required(req.signature, "signature")?.0;
    check_len(deployment_id.len(), "deploymentId", 64)?;
    check_len(document_sha384.len(), "documentSha384", 64)?;
    check_len(ciphertext.len(), "ciphertext", 1024)?;
    check_len(signature.len(), "signature", 256)?;
    let mut u = lock(sealed)?;
    let progress = u
        .submit(&Submission {
            document_sha384: &document_sha384,
            deployment_id: &deployment_id,
            index,
            ciphertext: &ciphertext,
            signature: &signature,
        })
        .map_err(refusal)?;
    let needed = match progress {
        Progress::NeedMore(n) => {
            tracing::info!(index, needed = n, "sealed: share accepted");
            n
        }
        Progress::Unsealed(key) => {
            tracing::info!(index, "sealed: share accepted; the domain key is recovered");
            sealed.key.send_replace(Some(Arc::new(key)));
            0
        }
    };
    respond(
        serde_json::json!({ "Accepted": true, "ShareIndex": index, "SharesNeeded": needed, "Unsealed": needed == 0 }),
    )
}
