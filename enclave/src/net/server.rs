//! The client-facing side: the preface from the host, TLS (rustls, terminated here), HTTP/1.1, SigV4, and the KMS
//! JSON protocol. Everything the client sends is bounded: preface, handshake time, head size and time (checked by
//! [`framing`](crate::net::framing) before hyper parses it), body size and time, and body bytes in memory across all
//! connections ([`Gate`]). The `Authorization` header, the request date, the scope and the access key are checked
//! before any body byte is read.

use crate::access::principals::Caller;
use crate::cmd;
use crate::error::Error;
use crate::net::framing::{Guarded, Refused};
use crate::net::limits::Gate;
use crate::net::sigv4::{self, Expected};
use crate::net::transport::Stream;
use crate::service::Service;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use kms_shared::preface;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// Allowed clock difference for SigV4.
pub const MAX_SKEW_SECS: u64 = 300;
pub(crate) const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's own head timeout, a backstop behind the guard's (which is `Limits::request_deadline`).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to write a refusal that hyper does not write (framing errors, connections over the limit).
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// An oversize body up to this size is read and discarded before the error is sent, so that a client that writes its
/// whole body before reading gets the error rather than a reset connection. Larger ones are cut off at once.
const MAX_DRAIN: u64 = 8 * 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What a relayed stream starts with: a client connection from a peer, or the host's drain request.
pub(crate) enum Opening {
    /// A client connection; TLS follows.
    Client(String),
    /// The host asks the enclave to drain; nothing follows.
    Drain,
}

/// Reads the preface of a client connection (a drain request is refused here: where this is called, only clients
/// are expected).
pub(crate) async fn read_preface(stream: &mut Box<dyn Stream>) -> Result<String, String> {
    match read_opening(stream).await? {
        Opening::Client(peer) => Ok(peer),
        Opening::Drain => Err("a drain preface where a client connection was expected".into()),
    }
}

/// Reads the preface: a client connection's peer address, or a drain request.
pub(crate) async fn read_opening(stream: &mut Box<dyn Stream>) -> Result<Opening, String> {
    let mut h = [0u8; preface::HEADER_LEN];
    stream.read_exact(&mut h).await.map_err(|e| e.to_string())?;
    let n = match preface::header(h).map_err(|e| e.to_string())? {
        preface::Header::Peer(n) => n,
        preface::Header::Drain => return Ok(Opening::Drain),
    };
    let mut peer = vec![0u8; n];
    stream.read_exact(&mut peer).await.map_err(|e| e.to_string())?;
    preface::peer(&peer).map(|p| Opening::Client(p.to_owned())).map_err(|e| e.to_string())
}

/// Serves one relayed client connection to its end.
pub async fn connection(mut stream: Box<dyn Stream>, acceptor: TlsAcceptor, svc: Arc<Service>, gate: Arc<Gate>) {
    let peer = match tokio::time::timeout(PREFACE_TIMEOUT, read_opening(&mut stream)).await {
        Ok(Ok(Opening::Client(p))) => p,
        Ok(Ok(Opening::Drain)) => {
            tracing::info!("the host asked to drain: /healthz now answers 503; connections close once answered");
            return gate.start_drain();
        }
        Ok(Err(e)) => return tracing::warn!(error = %e, "bad connection preface"),
        Err(_) => return tracing::warn!("connection preface timed out"),
    };
    let telemetry = crate::telemetry::global();
    let _open = telemetry.connection();
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            telemetry.handshake(false);
            return tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            telemetry.handshake(false);
            return tracing::info!(peer = %peer, "TLS handshake timed out");
        }
    };
    telemetry.handshake(true);
    serve_http(tls, svc, gate, peer).await;
}

/// Serves HTTP/1.1 on an established (decrypted) stream to its end: what [`connection`] runs after the TLS handshake,
/// and what the `http` fuzz target drives over an in-memory stream.
pub async fn serve_http<S>(tls: S, svc: Arc<Service>, gate: Arc<Gate>, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let guarded = Guarded::new(tls, gate.limits.request_deadline).with_drain(gate.drained());
    let clock = guarded.clock();
    let peer = Arc::new(peer);
    let log_peer = peer.clone();
    let service = service_fn(move |req| {
        let (svc, peer, gate) = (svc.clone(), peer.clone(), gate.clone());
        let started = clock.started();
        async move { Ok::<_, Infallible>(handle(&svc, &gate, req, &peer, started).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        // The guard ends the stream at a refused head; the answers to the requests before it must still be written.
        .half_close(true)
        .serve_connection(TokioIo::new(guarded), service)
        .without_shutdown()
        .await;
    match served {
        Ok(parts) => {
            let (mut tls, refused) = parts.io.into_inner().into_parts();
            if let Some(Refused(message)) = refused {
                tracing::info!(peer = %log_peer, reason = %message, "request refused before parsing");
                let bytes = raw_error(&Error::Validation(message));
                let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, tls.write_all(&bytes)).await;
            }
            let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, tls.shutdown()).await;
        }
        Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
    }
}

/// Answers a connection over the limit: TLS handshake, one error response, close. Holds no permit of the limit.
pub async fn refuse_connection(mut stream: Box<dyn Stream>, acceptor: TlsAcceptor, error: Error) {
    if !matches!(tokio::time::timeout(PREFACE_TIMEOUT, read_preface(&mut stream)).await, Ok(Ok(_))) {
        return;
    }
    let Ok(Ok(mut tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else { return };
    let bytes = raw_error(&error);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        tls.write_all(&bytes).await?;
        tls.shutdown().await
    })
    .await;
}

/// A complete HTTP/1.1 error response in AWS's JSON shape, with `Connection: close`, for paths hyper does not serve.
fn raw_error(error: &Error) -> Vec<u8> {
    let code = error.code();
    let body = serde_json::json!({"__type": code.name(), "message": error.public_message()}).to_string();
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut id = [0u8; 16];
    let _ = getrandom::fill(&mut id);
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {CONTENT_TYPE}\r\nx-amzn-requestid: {}\r\nx-amzn-errortype: {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        crate::state::ids::format_uuid(&id),
        code.name(),
        body.len()
    )
    .into_bytes()
}

tokio::task_local! {
    /// The key the request being handled resolved, for its log event (set by [`note_key`]).
    static REQUEST_KEY: std::cell::Cell<Option<[u8; 16]>>;
}

/// Records the key the current request resolved, for its `request` log event. Outside a request (tests, fuzzing),
/// nothing.
pub fn note_key(uuid: [u8; 16]) {
    let _ = REQUEST_KEY.try_with(|k| k.set(Some(uuid)));
}

async fn handle(
    svc: &Service,
    gate: &Gate,
    req: Request<Incoming>,
    peer: &str,
    head_started: tokio::time::Instant,
) -> Response<Full<Bytes>> {
    if req.uri().path() == HEALTH_PATH {
        return health(gate, &req);
    }
    let started = Instant::now();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect::<String>())
        .unwrap_or_default();
    let mut request_id = [0u8; 16];
    let _ = getrandom::fill(&mut request_id);
    let request_id = crate::state::ids::format_uuid(&request_id);
    // After a chunked body the framing guard no longer checks heads, so no request may follow on this connection.
    let chunked = req.headers().contains_key(http::header::TRANSFER_ENCODING);
    let deadline = head_started + gate.limits.request_deadline;
    let mut who = None;
    let (outcome, key) = REQUEST_KEY
        .scope(std::cell::Cell::new(None), async {
            let outcome = process(svc, gate, req, &target, deadline, &mut who).await;
            (outcome, REQUEST_KEY.with(std::cell::Cell::get))
        })
        .await;
    let elapsed = started.elapsed();
    let ms = elapsed.as_secs_f64() * 1000.0;
    let (status, code) = match &outcome {
        Ok(_) => (StatusCode::OK, None),
        Err((e, _)) => {
            let code = e.code();
            (StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Some(code))
        }
    };
    crate::telemetry::global().request(&target, code, elapsed);
    // One event per request (target `request`; on by default in JSON logs). Names and ids only: never a body field.
    tracing::info!(
        target: "request",
        request_id = %request_id,
        operation = target.rsplit('.').next().unwrap_or_default(),
        principal = who.as_ref().map_or("-", |p: &Arc<crate::access::principals::Principal>| p.arn.as_str()),
        key_id = %key.map(|k| crate::state::ids::format_uuid(&k)).unwrap_or_default(),
        status = status.as_u16(),
        error = code.map_or("", |c| c.name()),
        duration_ms = ms,
        peer = %peer,
    );
    match outcome {
        Ok(body) => reply(StatusCode::OK, body, None, &request_id, chunked),
        Err((e, close)) => {
            let code = e.code();
            if let Error::Internal(detail) = &e {
                tracing::error!(%peer, %target, %request_id, detail = %detail, "internal error");
            } else {
                tracing::debug!(%peer, %target, %request_id, code = code.name(), ms, "request failed");
            }
            let body = serde_json::json!({"__type": code.name(), "message": e.public_message()});
            reply(status, body.to_string().into_bytes(), Some(code.name()), &request_id, close || chunked)
        }
    }
}

/// The unauthenticated health check a load balancer probes (`GET /healthz`).
pub(crate) const HEALTH_PATH: &str = "/healthz";

/// `GET /healthz`: 200 `{"status":"serving"}`, or 503 `{"status":"draining"}` once the host has asked to drain (the
/// sealed endpoint answers 503 `{"status":"sealed"}`). Any other method is 405. It reveals nothing the host does not
/// already know.
fn health(gate: &Gate, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let draining = gate.draining();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return health_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", draining);
    }
    if draining {
        health_reply(StatusCode::SERVICE_UNAVAILABLE, "draining", true)
    } else {
        health_reply(StatusCode::OK, "serving", false)
    }
}

/// A `/healthz` answer: `{"status": STATUS}`.
pub(crate) fn health_reply(status: StatusCode, what: &str, close: bool) -> Response<Full<Bytes>> {
    let body = format!("{{\"status\":\"{what}\"}}");
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if close {
        resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Authenticates and runs one request. The `bool` of an error says whether to close the connection (always when the
/// body was left unread). Before the body: the `Authorization` header, the access key, the scope and the request date;
/// then the body, within `deadline` and a reservation of the global body budget held until the answer is ready; then
/// the signature over the whole request.
async fn process(
    svc: &Service,
    gate: &Gate,
    req: Request<Incoming>,
    target: &str,
    deadline: tokio::time::Instant,
    who: &mut Option<Arc<crate::access::principals::Principal>>,
) -> Result<Vec<u8>, (Error, bool)> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let (parts, mut body) = req.into_parts();
    let close = |e: Error| (e, true);

    let mut credential = None;
    if target != cmd::ATTESTATION_TARGET {
        let auth = sigv4::parse_authorization(&parts.headers).map_err(|e| close(Error::Auth(e)))?;
        let cred =
            svc.credentials.get(auth.access_key_id).await.map_err(close)?.ok_or((Error::UnrecognizedClient, true))?;
        let expected = Expected { region: &svc.scope.region, service: "kms", max_skew_secs: MAX_SKEW_SECS };
        sigv4::check_before_body(&auth, &parts.headers, &expected, crate::service::Clock::wall_unix())
            .map_err(|e| close(Error::Auth(e)))?;
        credential = Some(cred);
    }

    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        if declared.is_some_and(|n| n <= MAX_DRAIN) {
            drain(&mut body, deadline).await;
        }
        return Err(close(too_large()));
    }
    // A chunked body may be up to MAX_BODY; a declared one is reserved at its declared size.
    let reserve = declared.map_or(MAX_BODY, |n| usize::try_from(n).unwrap_or(MAX_BODY));
    let Some(_permit) = gate.reserve(reserve, deadline).await else {
        return Err(close(Error::Throttling("Rate exceeded: too many request bytes in flight; retry later".into())));
    };
    let body = match tokio::time::timeout_at(deadline, read_body(&mut body, declared, deadline)).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => return Err(close(too_large())),
        Ok(Err(BodyError::Read)) => {
            return Err(close(Error::Serialization("The request body could not be read".into())));
        }
        Err(_) => {
            return Err(close(Error::Validation(format!(
                "The request was not received within {} ms",
                gate.limits.request_deadline.as_millis()
            ))));
        }
    };
    let keep = |e: Error| (e, false);

    let mut caller = None;
    if let Some(cred) = credential {
        let auth = sigv4::parse_authorization(&parts.headers).map_err(|e| keep(Error::Auth(e)))?;
        let expected = Expected { region: &svc.scope.region, service: "kms", max_skew_secs: MAX_SKEW_SECS };
        let signing_key = cred.signing_key(auth.date, &svc.scope.region, "kms");
        sigv4::verify_with_signing_key(
            &auth,
            signing_key.expose_secret(),
            &parts.method,
            &parts.uri,
            &parts.headers,
            &body,
            &expected,
            crate::service::Clock::wall_unix(),
        )
        .map_err(|e| keep(Error::Auth(e)))?;
        // An access key whose principal is gone authenticates nobody.
        let principal =
            svc.principals.get(&cred.principal_arn).await.map_err(keep)?.ok_or((Error::UnrecognizedClient, false))?;
        *who = Some(principal.clone());
        caller = Some(Caller { principal, credential: cred });
    }

    if parts.method != Method::POST || parts.uri.path() != "/" {
        return Err(keep(Error::UnknownOperation(format!(
            "{} {} is not an operation",
            parts.method,
            parts.uri.path()
        ))));
    }
    cmd::dispatch(svc, caller.as_ref(), target, &body).await.map_err(keep)
}

enum BodyError {
    TooLarge,
    Read,
}

/// Reads a body of at most [`MAX_BODY`] bytes. Past that, keeps reading and discarding up to [`MAX_DRAIN`] (see
/// there) and fails with `TooLarge`.
async fn read_body(
    body: &mut Incoming,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
) -> Result<Vec<u8>, BodyError> {
    // Trust the declared length only for a small preallocation: a client may declare much and send little.
    let hint = declared.map_or(0, |n| usize::try_from(n).unwrap_or(0)).min(64 * 1024);
    let mut out = Vec::with_capacity(hint);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Read)?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > MAX_BODY {
                drain(body, deadline).await;
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

/// Reads and discards what is left of a body, up to [`MAX_DRAIN`] bytes, [`DRAIN_TIMEOUT`] and the request deadline.
async fn drain(body: &mut Incoming, deadline: tokio::time::Instant) {
    let mut seen: u64 = 0;
    let until = deadline.min(tokio::time::Instant::now() + DRAIN_TIMEOUT);
    let _ = tokio::time::timeout_at(until, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > MAX_DRAIN {
                break;
            }
        }
    })
    .await;
}

fn too_large() -> Error {
    Error::Validation(format!("The request body exceeds the maximum size of {MAX_BODY} bytes"))
}

pub(crate) fn reply(
    status: StatusCode,
    body: Vec<u8>,
    error: Option<&str>,
    request_id: &str,
    close: bool,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if let Some(Ok(v)) = error.map(HeaderValue::from_str) {
        h.insert("x-amzn-errortype", v);
    }
    if close {
        h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
