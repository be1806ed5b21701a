//! The `upstream` source: the domain key is a data key of an upstream AWS KMS (or enclave-kms), released only to this
//! enclave image.
//!
//! - Initialisation: `GenerateDataKey` (AES_256) with a `Recipient`: a fresh attestation document of this enclave whose
//!   public key is an ephemeral RSA-2048 key (RSAES_OAEP_SHA_256). The upstream's key policy conditions the release
//!   on the document's measurements (`kms:RecipientAttestation:ImageSha384` / `PCR0`), so only this image can open
//!   `CiphertextForRecipient`; the `CiphertextBlob` is kept by the host as the envelope record (kind
//!   `UpstreamEnvelope`, stored as the upstream returned it).
//! - Later starts: `Decrypt` of the envelope, again with a Recipient. The custody record (sealed under the domain key)
//!   must then open: a foreign or swapped envelope fails there.
//! - Transport: TLS from inside the enclave (rustls) over a byte stream the host relays (a Unix socket in simulator
//!   mode, vsock in Nitro mode; the host connects it only to the configured upstream address). The upstream is
//!   authenticated against the roots compiled into the image (webpki-roots); simulator builds trust the CA file the
//!   host names instead. Requests are SigV4-signed here with the credentials the host supplies (not secret from the
//!   host: the key policy's attestation condition is the gate). A minimal HTTP/1.1 exchange, one request per
//!   connection, with bounded response size and a deadline.

use super::{Context, Fresh};
use crate::crypto::recipient::cms_open;
use crate::crypto::secret::Key256;
use crate::error::Error;
use crate::net::sigv4_sign::{SigningCredentials, amz_date, sign};
use crate::state::store::StoreError;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, Uri};
use kms_shared::custody::UpstreamConfig;
use kms_shared::storage::{RecordKind, SealedBlob, StorageError, StorageOp, StorageReply};
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

/// Id of the envelope record.
pub const ENVELOPE_ID: &str = "domain-key";
/// The encryption context of the domain key's data key at the upstream.
pub const CONTEXT_KEY: &str = "enclave-kms:purpose";
/// Its value.
pub const CONTEXT_VALUE: &str = "domain-key";
/// Largest upstream response read.
const MAX_RESPONSE: u64 = 256 * 1024;
/// Deadline of one upstream exchange (connect, TLS, request, response).
const DEADLINE: Duration = Duration::from_secs(30);

fn upstream<'a>(cx: &'a Context<'_>) -> Result<&'a UpstreamConfig, Error> {
    cx.config.upstream.as_ref().ok_or_else(|| Error::Internal("--domain-key upstream without upstream settings".into()))
}

fn fail(what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("upstream: {what}"))
}

/// The stored envelope, if any (as the upstream returned it; authenticated later by the custody record).
async fn envelope(cx: &Context<'_>) -> Result<Option<Vec<u8>>, Error> {
    let op = StorageOp::Get { kind: RecordKind::UpstreamEnvelope, id: ENVELOPE_ID.into() };
    match cx.channel.call(op).await? {
        StorageReply::Record(r) => Ok(r.map(|r| r.sealed.0)),
        _ => Err(StoreError::Protocol.into()),
    }
}

/// The existing domain key: Decrypt of the envelope with a Recipient.
pub async fn load(cx: &Context<'_>) -> Result<Option<Key256>, Error> {
    let Some(blob) = envelope(cx).await? else { return Ok(None) };
    let up = upstream(cx)?;
    let (key, doc) = recipient(cx)?;
    let body = serde_json::json!({
        "CiphertextBlob": STANDARD.encode(&blob),
        "KeyId": up.key_id,
        "EncryptionContext": { CONTEXT_KEY: CONTEXT_VALUE },
        "Recipient": { "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": STANDARD.encode(&doc) },
    });
    let answer = call(cx, up, "TrentService.Decrypt", &body).await?;
    open_answer(&key, &answer).map(Some)
}

/// A new domain key: GenerateDataKey with a Recipient; the envelope is committed after the custody record.
pub async fn create(cx: &Context<'_>) -> Result<Fresh, Error> {
    let up = upstream(cx)?;
    let (key, doc) = recipient(cx)?;
    let body = serde_json::json!({
        "KeyId": up.key_id,
        "KeySpec": "AES_256",
        "EncryptionContext": { CONTEXT_KEY: CONTEXT_VALUE },
        "Recipient": { "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": STANDARD.encode(&doc) },
    });
    let answer = call(cx, up, "TrentService.GenerateDataKey", &body).await?;
    if answer.get("Plaintext").is_some_and(|p| !p.is_null()) {
        return Err(fail("the upstream returned the data key in plaintext despite the Recipient; refusing to use it"));
    }
    let blob = answer
        .get("CiphertextBlob")
        .and_then(|v| v.as_str())
        .and_then(|b| STANDARD.decode(b).ok())
        .filter(|b| !b.is_empty() && b.len() <= 64 * 1024)
        .ok_or_else(|| fail("GenerateDataKey answered without a usable CiphertextBlob"))?;
    let key = open_answer(&key, &answer)?;
    Ok(Fresh { key, commit: Zeroizing::new(blob) })
}

/// Stores the envelope (a new record: a concurrent initialiser that got there first wins and this start fails).
pub async fn commit(cx: &Context<'_>, blob: &[u8]) -> Result<(), Error> {
    let op = StorageOp::Put {
        kind: RecordKind::UpstreamEnvelope,
        id: ENVELOPE_ID.into(),
        version: 1,
        expected: None,
        sealed: SealedBlob(blob.to_vec()),
    };
    match cx.channel.call(op).await {
        Ok(StorageReply::Done) => Ok(()),
        Ok(_) => Err(StoreError::Protocol.into()),
        Err(StoreError::Host(StorageError::Conflict)) => {
            Err(Error::Internal("another start initialised this data directory at the same time".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A fresh ephemeral RSA-2048 key and an attestation document of this enclave carrying its public key.
fn recipient(cx: &Context<'_>) -> Result<(OaepPrivateDecryptingKey, Vec<u8>), Error> {
    let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(|_| fail("RSA key generation failed"))?;
    let spki = key.public_key().as_der().map_err(|_| fail("RSA public key encoding failed"))?;
    let doc = cx
        .nsm
        .attestation(None, None, Some(spki.as_ref()))
        .map_err(|e| fail(format!("attestation document for the Recipient: {e}")))?;
    let key = OaepPrivateDecryptingKey::new(key).map_err(|_| fail("RSA key setup failed"))?;
    Ok((key, doc))
}

/// The domain key from an answer's `CiphertextForRecipient`.
fn open_answer(key: &OaepPrivateDecryptingKey, answer: &serde_json::Value) -> Result<Key256, Error> {
    let sealed = answer
        .get("CiphertextForRecipient")
        .and_then(|v| v.as_str())
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or_else(|| fail("the answer has no CiphertextForRecipient (does the upstream support Recipient?)"))?;
    let plain = cms_open::open(key, &sealed).map_err(|e| fail(format!("CiphertextForRecipient: {e}")))?;
    Key256::from_slice(&plain).ok_or_else(|| fail("the upstream data key is not 256 bits"))
}

/// The TLS client configuration: compiled-in roots, or (simulator builds, simulated NSM) the host-named CA.
fn tls_config(cx: &Context<'_>, up: &UpstreamConfig) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    #[cfg(feature = "simulator")]
    let custom = up.ca_pem.as_deref().filter(|_| cx.nsm.is_simulated());
    #[cfg(not(feature = "simulator"))]
    let custom: Option<&str> = {
        let _ = (cx, up);
        None
    };
    match custom {
        Some(pem) => {
            let blocks = kms_attestation::pem::parse(pem, kms_shared::custody::MAX_PEM_LEN)
                .map_err(|e| fail(format!("the upstream CA is not PEM: {e}")))?;
            for (label, der) in blocks {
                if label == "CERTIFICATE" {
                    roots
                        .add(CertificateDer::from(der.to_vec()))
                        .map_err(|e| fail(format!("the upstream CA certificate: {e}")))?;
                }
            }
            if roots.is_empty() {
                return Err(fail("the upstream CA file holds no certificate"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// `(host, authority)` of `https://HOST[:PORT]`.
fn authority(endpoint: &str) -> Result<(String, String), Error> {
    let rest = endpoint.strip_prefix("https://").map(|r| r.strip_suffix('/').unwrap_or(r));
    let authority = rest
        .filter(|r| !r.is_empty() && !r.contains('/') && !r.contains('@'))
        .ok_or_else(|| fail(format!("endpoint {endpoint:?} is not https://HOST[:PORT]")))?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    Ok((host.to_owned(), authority.to_owned()))
}

/// One signed request to the upstream; the JSON answer, or the upstream's error as the failure.
async fn call(
    cx: &Context<'_>,
    up: &UpstreamConfig,
    target: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let stream_target = cx.upstream.ok_or_else(|| fail("this enclave has no upstream stream configured"))?;
    let (host, authority) = authority(&up.endpoint)?;
    let body = Zeroizing::new(body.to_string().into_bytes());
    let mut headers = HeaderMap::new();
    let value = |v: &str| HeaderValue::from_str(v).map_err(|_| fail("header value"));
    headers.insert("host", value(&authority)?);
    headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    headers.insert("x-amz-target", value(target)?);
    let creds = SigningCredentials {
        access_key_id: &up.access_key_id,
        secret_access_key: &up.secret_access_key,
        session_token: up.session_token.as_deref(),
    };
    let uri = Uri::from_static("/");
    let now = crate::service::Clock::wall_unix();
    sign(&Method::POST, &uri, &mut headers, &body, &creds, &up.region, "kms", &amz_date(now))
        .map_err(|e| fail(format!("signing: {e:?}")))?;
    let mut request = Vec::with_capacity(1024 + body.len());
    request.extend_from_slice(b"POST / HTTP/1.1\r\n");
    for (name, v) in &headers {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(v.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(&body);

    let config = Arc::new(tls_config(cx, up)?);
    let name = ServerName::try_from(host.clone()).map_err(|_| fail(format!("bad upstream host name {host:?}")))?;
    let exchange = async {
        let stream =
            stream_target.connect().await.map_err(|e| fail(format!("cannot reach the upstream relay: {e}")))?;
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| fail(format!("TLS with {authority} failed: {e}")))?;
        tls.write_all(&request).await.map_err(|e| fail(format!("sending to {authority}: {e}")))?;
        let mut response = Vec::new();
        let read = (&mut tls).take(MAX_RESPONSE + 1).read_to_end(&mut response).await;
        if let Err(e) = read
            && response.is_empty()
        {
            return Err(fail(format!("reading from {authority}: {e}")));
        }
        Ok(response)
    };
    let response = tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| fail(format!("{target} at {authority} did not answer within {}s", DEADLINE.as_secs())))??;
    parse_response(target, &response)
}

/// Status and JSON body of an HTTP/1.1 response (Content-Length framed or ended by close).
fn parse_response(target: &str, response: &[u8]) -> Result<serde_json::Value, Error> {
    if response.len() as u64 > MAX_RESPONSE {
        return Err(fail(format!("{target}: response larger than {MAX_RESPONSE} bytes")));
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(response) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(fail(format!("{target}: not an HTTP response"))),
    };
    let status = parsed.code.unwrap_or(0);
    let mut body = response.get(head_len..).unwrap_or_default();
    if let Some(len) = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
    {
        body = body.get(..len).ok_or_else(|| fail(format!("{target}: truncated response")))?;
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| fail(format!("{target}: HTTP {status} without a JSON body")))?;
    if status != 200 {
        let kind = json.get("__type").and_then(|v| v.as_str()).unwrap_or("UnknownError");
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        let message = json.get("message").or_else(|| json.get("Message")).and_then(|v| v.as_str()).unwrap_or("");
        let message: String = message.chars().take(300).collect();
        return Err(fail(format!("{target} refused: {kind}: {message}")));
    }
    Ok(json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn detail(e: Error) -> String {
        match e {
            Error::Internal(d) => d,
            other => other.to_string(),
        }
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("https://127.0.0.1:8443").unwrap(), ("127.0.0.1".into(), "127.0.0.1:8443".into()));
        assert_eq!(authority("https://kms.eu-west-1.amazonaws.com/").unwrap().0, "kms.eu-west-1.amazonaws.com");
        assert_eq!(authority("https://[::1]:9").unwrap().0, "::1");
        assert!(authority("http://h").is_err() && authority("https://h/x").is_err() && authority("https://").is_err());
    }

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"a\":1}\ntrailing";
        assert_eq!(parse_response("T", ok).unwrap()["a"], 1);
        let denied =
            b"HTTP/1.1 400 Bad Request\r\n\r\n{\"__type\":\"com.amazon#AccessDeniedException\",\"message\":\"no\"}";
        let e = detail(parse_response("TrentService.Decrypt", denied).unwrap_err());
        assert_eq!(e, "upstream: TrentService.Decrypt refused: AccessDeniedException: no");
        assert!(detail(parse_response("T", b"garbage").unwrap_err()).contains("not an HTTP response"));
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 80\r\n\r\n{}";
        assert!(detail(parse_response("T", short).unwrap_err()).contains("truncated"));
        assert!(detail(parse_response("T", b"HTTP/1.1 200 OK\r\n\r\nnot json").unwrap_err()).contains("JSON"));
    }
}
