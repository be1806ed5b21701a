//! Server-side verification of AWS Signature Version 4 (`AWS4-HMAC-SHA256`)
//! on incoming HTTP requests, as used by the AWS JSON protocols (KMS).
//!
//! Scope and rules:
//! * Only the `Authorization` header form is supported. Presigned
//!   (query-string, `X-Amz-Algorithm=...`) authentication is not; a request
//!   that carries no `Authorization` header is `MissingAuthentication`.
//! * The request timestamp is taken from `x-amz-date` (ISO 8601 basic,
//!   `YYYYMMDDTHHMMSSZ`) when that header is present; otherwise from `Date`
//!   (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), which is converted to
//!   ISO 8601 basic for the string to sign. The header used must be signed.
//!   If `x-amz-date` is present but unparsable the request is rejected; there
//!   is no fallback to `Date`.
//! * The canonical URI is built from the path exactly as received on the
//!   wire (still percent-encoded by the client), with dot segments and empty
//!   segments removed (non-S3 normalization) and every byte outside the
//!   unreserved set percent-encoded once more. This reproduces what the AWS
//!   SDKs sign for non-S3 services (their "double encoding").
//! * Query parameters are percent-decoded then re-encoded; `+` is a literal
//!   plus sign (it becomes `%2B`), not a space.
//! * The payload hash is always computed from the body; if a signed
//!   `x-amz-content-sha256` header is present it must equal that hash.
//! * Time is injected (`now_unix`); this module never reads the clock.
//!
//! Nothing in this module puts the secret key, the derived signing key or the
//! expected signature into an error message or `Debug` output.

use crate::calendar;
use core::fmt::{self, Write as _};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The only supported signing algorithm.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Maximum accepted length of the `Authorization` header value, in bytes.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;
/// Maximum number of entries in `SignedHeaders`.
pub const MAX_SIGNED_HEADERS: usize = 64;
/// Maximum number of query-string parameters canonicalized.
pub const MAX_QUERY_PARAMS: usize = 256;

const TERMINATOR: &str = "aws4_request";
const MAX_ACCESS_KEY_ID_LEN: usize = 128;
const MAX_SCOPE_PART_LEN: usize = 64;
const MAX_HEADER_NAME_LEN: usize = 128;
/// SHA-256 block size; HMAC keys are padded / hashed to this length.
const SHA256_BLOCK_LEN: usize = 64;

const X_AMZ_DATE: &str = "x-amz-date";
const DATE: &str = "date";
const HOST: &str = "host";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
/// Headers that must be among `SignedHeaders` whenever the request carries them: `x-amz-target` names the operation
/// of the AWS JSON protocols and `content-type` its encoding, so an unsigned one would let anyone who sees a signed
/// request replay it as another operation.
pub const MUST_SIGN_IF_PRESENT: [&str; 2] = ["content-type", "x-amz-target"];

const BAD_SIGNATURE_MESSAGE: &str = "The request signature we calculated does not match the \
signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
service documentation for details.";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a request failed authentication. Messages are safe to return to the
/// client: they never contain key material or the expected signature.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    MissingAuthentication,
    /// The `Authorization` header or the headers it depends on are malformed.
    #[error("{0}")]
    Incomplete(String),
    /// The signature does not match.
    #[error("{}", BAD_SIGNATURE_MESSAGE)]
    BadSignature,
    /// The request timestamp is outside the allowed clock skew.
    /// `request`, `server` and `bound` are ISO 8601 basic timestamps
    /// (`YYYYMMDDTHHMMSSZ`); `bound` is `server` -/+ `skew_secs`.
    #[error("{}", expired_message(.future, .request, .bound, .server, .skew_secs))]
    Expired {
        request: String,
        server: String,
        bound: String,
        skew_secs: u64,
        /// `true` if the request is dated too far in the future.
        future: bool,
    },
    /// The credential scope does not match this service.
    #[error("{0}")]
    WrongScope(String),
}

impl AuthError {
    /// The AWS error code (`__type`) for this error.
    pub fn aws_code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthentication => "MissingAuthenticationTokenException",
            AuthError::Incomplete(_) => "IncompleteSignatureException",
            AuthError::BadSignature | AuthError::Expired { .. } | AuthError::WrongScope(_) => {
                "InvalidSignatureException"
            }
        }
    }

    /// The client-facing message (same as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

fn incomplete(msg: impl Into<String>) -> AuthError {
    AuthError::Incomplete(msg.into())
}

fn expired_message(future: &bool, request: &str, bound: &str, server: &str, skew: &u64) -> String {
    let skew = if skew.is_multiple_of(60) { format!("{} min.", *skew / 60) } else { format!("{} sec.", *skew) };
    if *future {
        format!("Signature not yet current: {request} is still later than {bound} ({server} + {skew})")
    } else {
        format!("Signature expired: {request} is now earlier than {bound} ({server} - {skew})")
    }
}

// ---------------------------------------------------------------------------
// Authorization header
// ---------------------------------------------------------------------------

/// Parsed `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request,
/// SignedHeaders=a;b;c, Signature=<64 lowercase hex>`.
///
/// Shape is validated by [`parse_authorization`]; the scope is checked
/// against the service by [`verify`].
#[derive(Clone)]
pub struct Authorization<'a> {
    /// Access key id (ASCII alphanumeric, 1..=128 chars). Not covered by the
    /// signature: the caller must look up the secret by this id.
    pub access_key_id: &'a str,
    /// Credential scope date, `YYYYMMDD`.
    pub date: &'a str,
    /// Credential scope region.
    pub region: &'a str,
    /// Credential scope service.
    pub service: &'a str,
    terminator: &'a str,
    /// `;`-separated, validated: lowercase, strictly sorted, contains `host`.
    signed_headers: &'a str,
    signature: [u8; 32],
}

impl<'a> Authorization<'a> {
    /// The signed header names, in order (lowercase, strictly ascending).
    pub fn signed_headers(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.signed_headers.split(';')
    }

    fn is_signed(&self, name: &str) -> bool {
        self.signed_headers().any(|h| h == name)
    }
}

impl fmt::Debug for Authorization<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("access_key_id", &self.access_key_id)
            .field("date", &self.date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("terminator", &self.terminator)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .finish()
    }
}

/// Parse the `Authorization` header of `headers`.
///
/// Returns `MissingAuthentication` if there is no `Authorization` header and
/// `Incomplete` if it is present but malformed (including more than one
/// `Authorization` header).
pub fn parse_authorization(headers: &HeaderMap) -> Result<Authorization<'_>, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingAuthentication);
    };
    if values.next().is_some() {
        return Err(incomplete("Multiple Authorization headers are not allowed."));
    }
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(incomplete(format!("Authorization header exceeds {MAX_AUTHORIZATION_LEN} bytes.")));
    }
    let value = value.to_str().map_err(|_| incomplete("Authorization header contains invalid characters."))?;
    parse_authorization_value(value)
}

fn parse_authorization_value(value: &str) -> Result<Authorization<'_>, AuthError> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let Some((algorithm, rest)) = value.split_once(' ') else {
        return Err(incomplete(format!(
            "Authorization header must be of the form '{ALGORITHM} Credential=..., \
             SignedHeaders=..., Signature=...'."
        )));
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!("Unsupported Authorization algorithm; only '{ALGORITHM}' is accepted.")));
    }

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim_start_matches(' ');
        let Some((key, val)) = part.split_once('=') else {
            return Err(incomplete("Authorization header parameters must be 'key=value' pairs separated by ','."));
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(incomplete("Authorization header contains an unknown parameter."));
            }
        };
        if slot.replace(val).is_some() {
            return Err(incomplete(format!("Authorization header contains a duplicate '{key}' parameter.")));
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Authorization header requires 'Credential' parameter."))?;
    let signed_headers =
        signed_headers.ok_or_else(|| incomplete("Authorization header requires 'SignedHeaders' parameter."))?;
    let signature = signature.ok_or_else(|| incomplete("Authorization header requires 'Signature' parameter."))?;

    let (access_key_id, date, region, service, terminator) = parse_credential(credential)?;
    validate_signed_headers(signed_headers)?;
    let signature = parse_signature(signature)?;

    Ok(Authorization { access_key_id, date, region, service, terminator, signed_headers, signature })
}

type CredentialParts<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

fn parse_credential(credential: &str) -> Result<CredentialParts<'_>, AuthError> {
    let malformed = || {
        incomplete(
            "Credential is malformed; expected \
             '<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'.",
        )
    };
    let mut parts = credential.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminator), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let akid_ok =
        !akid.is_empty() && akid.len() <= MAX_ACCESS_KEY_ID_LEN && akid.bytes().all(|b| b.is_ascii_alphanumeric());
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    let scope_part_ok = |s: &str, extra: u8| {
        !s.is_empty()
            && s.len() <= MAX_SCOPE_PART_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == extra)
    };
    if !(akid_ok
        && date_ok
        && scope_part_ok(region, b'-')
        && scope_part_ok(service, b'-')
        && scope_part_ok(terminator, b'_'))
    {
        return Err(malformed());
    }
    Ok((akid, date, region, service, terminator))
}

fn is_lower_tchar(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

fn validate_signed_headers(signed_headers: &str) -> Result<(), AuthError> {
    let mut count = 0usize;
    let mut previous: Option<&str> = None;
    let mut has_host = false;
    for name in signed_headers.split(';') {
        count = count.saturating_add(1);
        if count > MAX_SIGNED_HEADERS {
            return Err(incomplete(format!("SignedHeaders lists more than {MAX_SIGNED_HEADERS} headers.")));
        }
        if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(is_lower_tchar) {
            return Err(incomplete("SignedHeaders must be a ';'-separated list of lowercase header names."));
        }
        if let Some(prev) = previous
            && prev >= name
        {
            return Err(incomplete("SignedHeaders must be sorted and must not contain duplicates."));
        }
        has_host |= name == HOST;
        previous = Some(name);
    }
    if !has_host {
        return Err(incomplete("'Host' must be a signed header."));
    }
    Ok(())
}

fn parse_signature(signature: &str) -> Result<[u8; 32], AuthError> {
    let mut out = [0u8; 32];
    let well_formed =
        signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed || hex::decode_to_slice(signature, &mut out).is_err() {
        return Err(incomplete("Signature must be 64 lowercase hexadecimal characters."));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Key derivation
// ---------------------------------------------------------------------------

/// HMAC-SHA256 over `data` with the key formed by concatenating `key_parts`.
///
/// The key is brought to block size as RFC 2104 prescribes (hash if longer
/// than a block, then zero-pad), which lets us use the infallible
/// `KeyInit::new` and avoids copying the secret into a heap buffer.
fn hmac_sha256(key_parts: &[&[u8]], data: &[u8]) -> [u8; 32] {
    let total = key_parts.iter().fold(0usize, |n, p| n.saturating_add(p.len()));
    let mut block = [0u8; SHA256_BLOCK_LEN];
    if total <= SHA256_BLOCK_LEN {
        for (dst, src) in block.iter_mut().zip(key_parts.iter().flat_map(|p| p.iter())) {
            *dst = *src;
        }
    } else {
        let mut hasher = Sha256::new();
        for part in key_parts {
            hasher.update(part);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        for (dst, src) in block.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
    }
    let mut mac = <HmacSha256 as KeyInit>::new(&block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Derive the SigV4 signing key:
/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
///
/// The result depends only on (secret, date, region, service), so callers
/// may cache it per (access key id, date, region, service) and use
/// [`verify_with_signing_key`]. Treat it as secret.
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(&[b"AWS4", secret], date.as_bytes());
    let k_region = hmac_sha256(&[&k_date], region.as_bytes());
    let k_service = hmac_sha256(&[&k_region], service.as_bytes());
    hmac_sha256(&[&k_service], TERMINATOR.as_bytes())
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// What the service accepts.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The region this service runs in, e.g. `us-east-1`.
    pub region: &'a str,
    /// The signing name of the service, e.g. `kms`.
    pub service: &'a str,
    /// Maximum allowed difference between request time and `now_unix`, in
    /// seconds (AWS uses 300).
    pub max_skew_secs: u64,
}

/// Verify the request signature. `secret` is the secret access key for
/// `auth.access_key_id`; `now_unix` is the current time in seconds since the
/// epoch.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    auth: &Authorization<'_>,
    secret: &[u8],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    expected: &Expected<'_>,
    now_unix: u64,
) -> Result<(), AuthError> {
    let key = signing_key(secret, auth.date, auth.region, auth.service);
    verify_with_signing_key(auth, &key, method, uri, headers, body, expected, now_unix)
}

/// Like [`verify`], but takes the derived key from [`signing_key`]
/// (`signing_key(secret, auth.date, auth.region, auth.service)`).
#[allow(clippy::too_many_arguments)]
pub fn verify_with_signing_key(
    auth: &Authorization<'_>,
    signing_key: &[u8; 32],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    expected: &Expected<'_>,
    now_unix: u64,
) -> Result<(), AuthError> {
    let timestamp = precheck(auth, headers, expected, now_unix)?;

    let body_hash = hex::encode(Sha256::digest(body));
    let canonical = build_canonical_request(auth, method, uri, headers, &body_hash)?;

    if auth.is_signed(X_AMZ_CONTENT_SHA256) {
        let mut values = headers.get_all(X_AMZ_CONTENT_SHA256).iter();
        let matches = matches!(
            (values.next(), values.next()),
            (Some(v), None) if v.as_bytes() == body_hash.as_bytes()
        );
        if !matches {
            return Err(AuthError::BadSignature);
        }
    }

    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/{TERMINATOR}\n{}",
        timestamp.amz,
        auth.date,
        auth.region,
        auth.service,
        hex::encode(Sha256::digest(&canonical))
    );
    let computed = hmac_sha256(&[signing_key], string_to_sign.as_bytes());
    if bool::from(computed.as_slice().ct_eq(auth.signature.as_slice())) { Ok(()) } else { Err(AuthError::BadSignature) }
}

/// Everything that can be checked before the body is read: the credential scope, the request time (and that the
/// scope's date is its date), the clock skew, and that the headers which select or frame the operation
/// ([`MUST_SIGN_IF_PRESENT`]) are signed. A server calls it before it reads a body, so that a request with a foreign
/// scope, a stale date or unsigned routing headers costs no body bytes; [`verify`] runs it again.
pub fn check_before_body(
    auth: &Authorization<'_>,
    headers: &HeaderMap,
    expected: &Expected<'_>,
    now_unix: u64,
) -> Result<(), AuthError> {
    precheck(auth, headers, expected, now_unix).map(|_| ())
}

fn precheck(
    auth: &Authorization<'_>,
    headers: &HeaderMap,
    expected: &Expected<'_>,
    now_unix: u64,
) -> Result<Timestamp, AuthError> {
    check_scope(auth, expected)?;
    for name in MUST_SIGN_IF_PRESENT {
        if headers.contains_key(name) && !auth.is_signed(name) {
            return Err(incomplete(format!("'{name}' must be a signed header.")));
        }
    }
    let timestamp = request_timestamp(auth, headers)?;
    if timestamp.amz.get(..8) != Some(auth.date) {
        return Err(AuthError::WrongScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}', from '{}'.",
            auth.date,
            timestamp.amz.get(..8).unwrap_or_default(),
            timestamp.amz
        )));
    }
    check_skew(&timestamp, expected.max_skew_secs, now_unix)?;
    Ok(timestamp)
}

fn check_scope(auth: &Authorization<'_>, expected: &Expected<'_>) -> Result<(), AuthError> {
    if auth.terminator != TERMINATOR {
        return Err(AuthError::WrongScope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
            auth.terminator
        )));
    }
    if auth.region != expected.region {
        return Err(AuthError::WrongScope(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            auth.region
        )));
    }
    if auth.service != expected.service {
        return Err(AuthError::WrongScope(format!(
            "Credential should be scoped to correct service: '{}'.",
            expected.service
        )));
    }
    Ok(())
}

/// Build the SigV4 canonical request for `auth.signed_headers()` (the exact
/// bytes that are hashed into the string to sign). Exposed for diagnostics
/// and tests; [`verify`] does not need it to be called separately.
pub fn canonical_request(
    auth: &Authorization<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<u8>, AuthError> {
    let body_hash = hex::encode(Sha256::digest(body));
    build_canonical_request(auth, method, uri, headers, &body_hash)
}

fn build_canonical_request(
    auth: &Authorization<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body_hash: &str,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(uri.query().unwrap_or(""))?.as_bytes());
    out.push(b'\n');
    for name in auth.signed_headers() {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        canonical_header_value(headers, name, &mut out)?;
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(auth.signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body_hash.as_bytes());
    Ok(out)
}

/// Canonical query string: parameters percent-decoded, re-encoded, sorted by
/// name then value.
fn canonical_query(query: &str) -> Result<String, AuthError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in query.split('&') {
        if piece.is_empty() {
            continue;
        }
        if pairs.len() >= MAX_QUERY_PARAMS {
            return Err(incomplete(format!("Query string has more than {MAX_QUERY_PARAMS} parameters.")));
        }
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let bad = || incomplete("Query string contains an invalid percent-encoding.");
        let name = uri_encode(&percent_decode(name).ok_or_else(bad)?, true);
        let value = uri_encode(&percent_decode(value).ok_or_else(bad)?, true);
        pairs.push((name, value));
    }
    pairs.sort();
    let mut out = String::with_capacity(query.len().saturating_add(16));
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    Ok(out)
}

/// Canonical URI for non-S3 services: remove dot and empty segments from the
/// wire path, then URI-encode every byte outside the unreserved set (other
/// than `/`).
fn canonical_uri(path: &str) -> String {
    uri_encode(remove_dot_segments(path).as_bytes(), false)
}

/// botocore's `normalize_url_path`: empty -> "/", drop empty and "." segments,
/// ".." removes the previous segment, keep leading and trailing "/".
fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return String::from("/");
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// SigV4 URI encoding: unreserved bytes kept, `/` kept unless `encode_slash`,
/// everything else `%XX` with uppercase hex.
fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(3));
    for &b in bytes {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode; `+` is kept literally. `None` on a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = hex_value(bytes.next()?)?;
            let lo = hex_value(bytes.next()?)?;
            out.push((hi << 4) | lo);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// Append the canonical value of header `name`: each value trimmed, runs of
/// spaces/tabs collapsed to one space, multiple values joined with ','.
fn canonical_header_value(headers: &HeaderMap, name: &str, out: &mut Vec<u8>) -> Result<(), AuthError> {
    let mut found = false;
    for value in headers.get_all(name).iter() {
        if found {
            out.push(b',');
        }
        found = true;
        trim_all(value.as_bytes(), out);
    }
    if found { Ok(()) } else { Err(incomplete(format!("Signed header '{name}' is not present in the request."))) }
}

fn trim_all(value: &[u8], out: &mut Vec<u8>) {
    let mut started = false;
    let mut pending_space = false;
    for &b in value {
        if b == b' ' || b == b'\t' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

struct Timestamp {
    /// ISO 8601 basic, `YYYYMMDDTHHMMSSZ`, as used in the string to sign.
    amz: String,
    unix: i64,
}

/// The single value of header `name`, if present.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(incomplete(format!("Multiple '{name}' headers are not allowed.")));
    }
    value.to_str().map(Some).map_err(|_| incomplete(format!("Header '{name}' contains invalid characters.")))
}

fn request_timestamp(auth: &Authorization<'_>, headers: &HeaderMap) -> Result<Timestamp, AuthError> {
    let (name, timestamp) = if let Some(value) = single_header(headers, X_AMZ_DATE)? {
        let ts = parse_amz_date(value)
            .ok_or_else(|| incomplete("X-Amz-Date must be in ISO 8601 basic format (YYYYMMDDTHHMMSSZ)."))?;
        (X_AMZ_DATE, ts)
    } else if let Some(value) = single_header(headers, DATE)? {
        let ts = parse_http_date(value)
            .ok_or_else(|| incomplete("Date must be in IMF-fixdate format (e.g. 'Sun, 06 Nov 1994 08:49:37 GMT')."))?;
        (DATE, ts)
    } else {
        return Err(incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."));
    };
    if !auth.is_signed(name) {
        return Err(incomplete(format!("The '{name}' header must be a signed header.")));
    }
    Ok(timestamp)
}

fn check_skew(timestamp: &Timestamp, max_skew_secs: u64, now_unix: u64) -> Result<(), AuthError> {
    let now = i64::try_from(now_unix).unwrap_or(i64::MAX);
    let skew = i64::try_from(max_skew_secs).unwrap_or(i64::MAX);
    let earliest = now.saturating_sub(skew);
    let latest = now.saturating_add(skew);
    let (future, bound) = if timestamp.unix < earliest {
        (false, earliest)
    } else if timestamp.unix > latest {
        (true, latest)
    } else {
        return Ok(());
    };
    Err(AuthError::Expired {
        request: timestamp.amz.clone(),
        server: format_amz_date(now),
        bound: format_amz_date(bound),
        skew_secs: max_skew_secs,
        future,
    })
}

fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

fn two_digits(a: u8, b: u8) -> Option<u32> {
    Some(digit(a)? * 10 + digit(b)?)
}

fn four_digits(a: u8, b: u8, c: u8, d: u8) -> Option<u32> {
    Some(two_digits(a, b)? * 100 + two_digits(c, d)?)
}

fn format_amz_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = calendar::civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, (secs / 60) % 60, secs % 60)
}

fn timestamp_from_parts(year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<Timestamp> {
    if !(1..=12).contains(&month)
        || day == 0
        || i64::from(day) > calendar::days_in_month(i64::from(year), i64::from(month))
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let unix = calendar::days_from_civil(i64::from(year), i64::from(month), i64::from(day)) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second);
    Some(Timestamp { amz: format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z"), unix })
}

/// `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(s: &str) -> Option<Timestamp> {
    let &[y0, y1, y2, y3, mo0, mo1, d0, d1, b'T', h0, h1, mi0, mi1, s0, s1, b'Z'] = s.as_bytes() else {
        return None;
    };
    timestamp_from_parts(
        four_digits(y0, y1, y2, y3)?,
        two_digits(mo0, mo1)?,
        two_digits(d0, d1)?,
        two_digits(h0, h1)?,
        two_digits(mi0, mi1)?,
        two_digits(s0, s1)?,
    )
}

/// IMF-fixdate (RFC 9110): `Sun, 06 Nov 1994 08:49:37 GMT`. The weekday name
/// is checked for shape only.
fn parse_http_date(s: &str) -> Option<Timestamp> {
    let &[
        w0,
        w1,
        w2,
        b',',
        b' ',
        d0,
        d1,
        b' ',
        m0,
        m1,
        m2,
        b' ',
        y0,
        y1,
        y2,
        y3,
        b' ',
        h0,
        h1,
        b':',
        mi0,
        mi1,
        b':',
        s0,
        s1,
        b' ',
        b'G',
        b'M',
        b'T',
    ] = s.as_bytes()
    else {
        return None;
    };
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    if !WEEKDAYS.contains(&&[w0, w1, w2]) {
        return None;
    }
    let month_index = MONTHS.iter().position(|m| **m == [m0, m1, m2])?;
    let month = u32::try_from(month_index).ok()? + 1;
    timestamp_from_parts(
        four_digits(y0, y1, y2, y3)?,
        month,
        two_digits(d0, d1)?,
        two_digits(h0, h1)?,
        two_digits(mi0, mi1)?,
        two_digits(s0, s1)?,
    )
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const AKID: &str = "AKIDEXAMPLE";

    // ---- AWS documentation worked example (IAM ListUsers) ----

    fn iam_example_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
        h.insert("host", HeaderValue::from_static("iam.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        h.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            ),
        );
        h
    }

    const IAM_NOW: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z
    const IAM_EXPECTED: Expected<'static> = Expected { region: "us-east-1", service: "iam", max_skew_secs: 300 };

    #[test]
    fn aws_doc_example_canonical_request_and_signature() {
        let headers = iam_example_headers();
        let auth = parse_authorization(&headers).unwrap();
        assert_eq!(auth.access_key_id, AKID);
        assert_eq!(auth.date, "20150830");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.service, "iam");
        assert_eq!(auth.signed_headers().collect::<Vec<_>>(), ["content-type", "host", "x-amz-date"]);

        for uri in [
            "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
            "/?Action=ListUsers&Version=2010-05-08",
            "/?Version=2010-05-08&Action=ListUsers",
        ] {
            let uri: Uri = uri.parse().unwrap();
            let creq = canonical_request(&auth, &Method::GET, &uri, &headers, b"").unwrap();
            assert_eq!(
                String::from_utf8(creq.clone()).unwrap(),
                "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
                 content-type:application/x-www-form-urlencoded; charset=utf-8\n\
                 host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                 content-type;host;x-amz-date\n\
                 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            );
            assert_eq!(
                hex::encode(Sha256::digest(&creq)),
                "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
            );
            verify(&auth, EXAMPLE_SECRET.as_bytes(), &Method::GET, &uri, &headers, b"", &IAM_EXPECTED, IAM_NOW)
                .unwrap();
        }
        // Same request, wrong method: must fail.
        let uri: Uri = "/?Action=ListUsers&Version=2010-05-08".parse().unwrap();
        let err = verify(&auth, EXAMPLE_SECRET.as_bytes(), &Method::POST, &uri, &headers, b"", &IAM_EXPECTED, IAM_NOW)
            .unwrap_err();
        assert_eq!(err, AuthError::BadSignature);
    }

    #[test]
    fn aws_doc_example_signing_key() {
        let key = signing_key(EXAMPLE_SECRET.as_bytes(), "20150830", "us-east-1", "iam");
        assert_eq!(hex::encode(key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
        // verify_with_signing_key with the cached key gives the same answer.
        let headers = iam_example_headers();
        let auth = parse_authorization(&headers).unwrap();
        let uri: Uri = "/?Action=ListUsers&Version=2010-05-08".parse().unwrap();
        verify_with_signing_key(&auth, &key, &Method::GET, &uri, &headers, b"", &IAM_EXPECTED, IAM_NOW).unwrap();
        let mut other = key;
        other[0] ^= 1;
        assert_eq!(
            verify_with_signing_key(&auth, &other, &Method::GET, &uri, &headers, b"", &IAM_EXPECTED, IAM_NOW,),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn hmac_key_preprocessing_matches_hmac_crate() {
        for len in [0usize, 1, 31, 60, 63, 64, 65, 100, 200] {
            let secret: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut full = b"AWS4".to_vec();
            full.extend_from_slice(&secret);
            let mut mac = HmacSha256::new_from_slice(&full).unwrap();
            mac.update(b"data");
            let want: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(hmac_sha256(&[b"AWS4", &secret], b"data"), want, "len {len}");
        }
    }

    // ---- KMS-shaped round trip with a test-only signer ----

    const KMS_SECRET: &[u8] = b"kms-test-secret/with+symbols=EXAMPLE";
    const KMS_DATE: &str = "20240315T101500Z";
    const KMS_NOW: u64 = 1_710_497_700; // 2024-03-15T10:15:00Z
    const KMS_BODY: &[u8] = br#"{"KeyId":"alias/test","Plaintext":"aGVsbG8="}"#;
    const KMS_EXPECTED: Expected<'static> = Expected { region: "us-east-1", service: "kms", max_skew_secs: 300 };
    const KMS_SIGNED: &[&str] = &["content-type", "host", "x-amz-date", "x-amz-target"];

    fn hmac_test(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// Independent signer for POST / requests without a query string.
    #[allow(clippy::too_many_arguments)]
    /// `time` is the ISO 8601 basic time that goes into the string to sign.
    fn test_sign(
        secret: &[u8],
        time: &str,
        scope_date: &str,
        region: &str,
        service: &str,
        headers: &HeaderMap,
        signed: &[&str],
        body: &[u8],
    ) -> String {
        let mut creq = String::from("POST\n/\n\n");
        for name in signed {
            let value = headers.get(*name).unwrap().to_str().unwrap().trim();
            creq.push_str(&format!("{name}:{value}\n"));
        }
        creq.push('\n');
        creq.push_str(&signed.join(";"));
        creq.push('\n');
        creq.push_str(&hex::encode(Sha256::digest(body)));
        let scope = format!("{scope_date}/{region}/{service}/aws4_request");
        let sts = format!("AWS4-HMAC-SHA256\n{time}\n{scope}\n{}", hex::encode(Sha256::digest(creq.as_bytes())));
        let mut k = [b"AWS4".as_slice(), secret].concat();
        for part in [scope_date, region, service, "aws4_request"] {
            k = hmac_test(&k, part.as_bytes());
        }
        format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={}, Signature={}",
            signed.join(";"),
            hex::encode(hmac_test(&k, sts.as_bytes()))
        )
    }

    fn kms_headers(date: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("kms.us-east-1.amazonaws.com"));
        h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
        h.insert("x-amz-target", HeaderValue::from_static("TrentService.Encrypt"));
        h.insert("x-amz-date", HeaderValue::from_str(date).unwrap());
        h
    }

    fn signed_kms(date: &str, region: &str, service: &str) -> HeaderMap {
        let mut h = kms_headers(date);
        let authz = test_sign(KMS_SECRET, date, &date[..8], region, service, &h, KMS_SIGNED, KMS_BODY);
        h.insert("authorization", HeaderValue::from_str(&authz).unwrap());
        h
    }

    fn check(headers: &HeaderMap, secret: &[u8], body: &[u8], now: u64) -> Result<(), AuthError> {
        let auth = parse_authorization(headers)?;
        verify(&auth, secret, &Method::POST, &Uri::from_static("/"), headers, body, &KMS_EXPECTED, now)
    }

    #[test]
    fn kms_round_trip_ok() {
        let h = signed_kms(KMS_DATE, "us-east-1", "kms");
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
    }

    #[test]
    fn kms_wrong_secret() {
        let h = signed_kms(KMS_DATE, "us-east-1", "kms");
        let err = check(&h, b"kms-test-secret/with+symbols=EXAMPLf", KMS_BODY, KMS_NOW);
        assert_eq!(err, Err(AuthError::BadSignature));
        let err = err.unwrap_err();
        assert_eq!(err.aws_code(), "InvalidSignatureException");
        assert_eq!(err.message(), BAD_SIGNATURE_MESSAGE);
    }

    #[test]
    fn kms_body_changed_by_one_byte() {
        let h = signed_kms(KMS_DATE, "us-east-1", "kms");
        for i in [0, KMS_BODY.len() / 2, KMS_BODY.len() - 1] {
            let mut body = KMS_BODY.to_vec();
            body[i] ^= 0x01;
            assert_eq!(check(&h, KMS_SECRET, &body, KMS_NOW), Err(AuthError::BadSignature));
        }
        let mut longer = KMS_BODY.to_vec();
        longer.push(b' ');
        assert_eq!(check(&h, KMS_SECRET, &longer, KMS_NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn kms_signed_header_changed() {
        for (name, value) in [
            ("x-amz-target", "TrentService.Decrypt"),
            ("content-type", "application/x-amz-json-1.0"),
            ("host", "kms.us-west-2.amazonaws.com"),
        ] {
            let mut h = signed_kms(KMS_DATE, "us-east-1", "kms");
            h.insert(name, HeaderValue::from_static(value));
            assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Err(AuthError::BadSignature), "{name}");
        }
        // A second value for a signed header changes its canonical form.
        let mut h = signed_kms(KMS_DATE, "us-east-1", "kms");
        h.append("x-amz-target", HeaderValue::from_static("TrentService.Decrypt"));
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Err(AuthError::BadSignature));
        // An unsigned header may change freely.
        let mut h = signed_kms(KMS_DATE, "us-east-1", "kms");
        h.insert("user-agent", HeaderValue::from_static("anything"));
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
    }

    #[test]
    fn kms_content_sha256_header() {
        let signed = &["content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-target"];
        let sign_with = |hash: &str| {
            let mut h = kms_headers(KMS_DATE);
            h.insert("x-amz-content-sha256", HeaderValue::from_str(hash).unwrap());
            let a = test_sign(KMS_SECRET, KMS_DATE, "20240315", "us-east-1", "kms", &h, signed, KMS_BODY);
            h.insert("authorization", HeaderValue::from_str(&a).unwrap());
            h
        };
        let good = hex::encode(Sha256::digest(KMS_BODY));
        assert_eq!(check(&sign_with(&good), KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
        for bad in ["UNSIGNED-PAYLOAD", &hex::encode(Sha256::digest(b"other")), &good.to_uppercase()] {
            assert_eq!(check(&sign_with(bad), KMS_SECRET, KMS_BODY, KMS_NOW), Err(AuthError::BadSignature), "{bad}");
        }
    }

    #[test]
    fn kms_clock_skew() {
        let h = signed_kms(KMS_DATE, "us-east-1", "kms");
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW + 300), Ok(()));
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW - 300), Ok(()));

        // Request 301 s in the past.
        let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW + 301).unwrap_err();
        assert!(matches!(err, AuthError::Expired { future: false, .. }), "{err:?}");
        assert_eq!(err.aws_code(), "InvalidSignatureException");
        assert_eq!(
            err.message(),
            "Signature expired: 20240315T101500Z is now earlier than 20240315T101501Z \
             (20240315T102001Z - 5 min.)"
        );

        // Request 301 s in the future.
        let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW - 301).unwrap_err();
        assert!(matches!(err, AuthError::Expired { future: true, .. }), "{err:?}");
        assert_eq!(
            err.message(),
            "Signature not yet current: 20240315T101500Z is still later than 20240315T101459Z \
             (20240315T100959Z + 5 min.)"
        );

        // Extreme clocks do not overflow.
        assert!(matches!(check(&h, KMS_SECRET, KMS_BODY, u64::MAX), Err(AuthError::Expired { future: false, .. })));
        assert!(matches!(check(&h, KMS_SECRET, KMS_BODY, 0), Err(AuthError::Expired { future: true, .. })));
    }

    #[test]
    fn aws_expired_message_example() {
        let h = signed_kms("20151120T200815Z", "us-east-1", "kms");
        let err = check(&h, KMS_SECRET, KMS_BODY, 1_448_051_026).unwrap_err(); // 20:23:46Z
        assert_eq!(
            err,
            AuthError::Expired {
                request: "20151120T200815Z".into(),
                server: "20151120T202346Z".into(),
                bound: "20151120T201846Z".into(),
                skew_secs: 300,
                future: false,
            }
        );
        assert_eq!(
            err.message(),
            "Signature expired: 20151120T200815Z is now earlier than 20151120T201846Z \
             (20151120T202346Z - 5 min.)"
        );
        // And it verifies at its own time.
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, 1_448_050_095), Ok(()));
    }

    #[test]
    fn kms_wrong_scope() {
        let h = signed_kms(KMS_DATE, "us-west-2", "kms");
        let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW).unwrap_err();
        assert!(matches!(err, AuthError::WrongScope(_)), "{err:?}");
        assert_eq!(err.aws_code(), "InvalidSignatureException");
        assert!(err.message().contains("valid region"), "{err}");

        let h = signed_kms(KMS_DATE, "us-east-1", "iam");
        let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW).unwrap_err();
        assert_eq!(err, AuthError::WrongScope("Credential should be scoped to correct service: 'kms'.".into()));

        // Wrong terminator.
        let mut h = signed_kms(KMS_DATE, "us-east-1", "kms");
        let a = h["authorization"].to_str().unwrap().replace("aws4_request", "aws5_request");
        h.insert("authorization", HeaderValue::from_str(&a).unwrap());
        let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW).unwrap_err();
        assert!(matches!(err, AuthError::WrongScope(_)), "{err:?}");

        // Scope date differs from x-amz-date (even if signed consistently).
        let mut h = kms_headers(KMS_DATE);
        let a = test_sign(KMS_SECRET, KMS_DATE, "20240314", "us-east-1", "kms", &h, KMS_SIGNED, KMS_BODY);
        h.insert("authorization", HeaderValue::from_str(&a).unwrap());
        let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW).unwrap_err();
        assert!(matches!(err, AuthError::WrongScope(_)), "{err:?}");
        assert!(err.message().contains("'20240314' != '20240315'"), "{err}");
    }

    #[test]
    fn missing_authorization() {
        let h = kms_headers(KMS_DATE);
        let err = parse_authorization(&h).unwrap_err();
        assert_eq!(err, AuthError::MissingAuthentication);
        assert_eq!(err.aws_code(), "MissingAuthenticationTokenException");
        assert_eq!(err.message(), "Missing Authentication Token");
    }

    #[test]
    fn date_header_instead_of_x_amz_date() {
        let signed = &["content-type", "date", "host", "x-amz-target"];
        let mut h = kms_headers(KMS_DATE);
        h.remove("x-amz-date");
        h.insert("date", HeaderValue::from_static("Fri, 15 Mar 2024 10:15:00 GMT"));
        let a = test_sign(KMS_SECRET, KMS_DATE, "20240315", "us-east-1", "kms", &h, signed, KMS_BODY);
        h.insert("authorization", HeaderValue::from_str(&a).unwrap());
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
        assert!(matches!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW + 301), Err(AuthError::Expired { .. })));
        // x-amz-date takes precedence over Date when present.
        h.insert("x-amz-date", HeaderValue::from_static("20240315T101501Z"));
        assert!(matches!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Err(AuthError::Incomplete(_))));
    }

    fn assert_incomplete(h: &HeaderMap, what: &str) {
        match check(h, KMS_SECRET, KMS_BODY, KMS_NOW) {
            Err(e @ AuthError::Incomplete(_)) => {
                assert_eq!(e.aws_code(), "IncompleteSignatureException");
                assert!(!e.message().is_empty());
            }
            other => panic!("{what}: expected Incomplete, got {other:?}"),
        }
    }

    #[test]
    fn garbage_authorization_values_are_incomplete() {
        let good = signed_kms(KMS_DATE, "us-east-1", "kms");
        let good_value = good["authorization"].to_str().unwrap().to_owned();
        let sig = good_value.rsplit_once("Signature=").unwrap().1.to_owned();
        let cred = format!("Credential={AKID}/20240315/us-east-1/kms/aws4_request");
        let sh = "SignedHeaders=content-type;host;x-amz-date;x-amz-target";
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("spaces", "   ".into()),
            ("algorithm only", "AWS4-HMAC-SHA256".into()),
            ("algorithm and space", "AWS4-HMAC-SHA256 ".into()),
            ("wrong algorithm", good_value.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512")),
            ("lowercase algorithm", good_value.replace("AWS4-HMAC-SHA256", "aws4-hmac-sha256")),
            ("sigv2", format!("AWS {AKID}:abcdef")),
            ("bearer", "Bearer abc".into()),
            ("no credential", format!("AWS4-HMAC-SHA256 {sh}, Signature={sig}")),
            ("no signed headers", format!("AWS4-HMAC-SHA256 {cred}, Signature={sig}")),
            ("no signature", format!("AWS4-HMAC-SHA256 {cred}, {sh}")),
            ("duplicate credential", format!("AWS4-HMAC-SHA256 {cred}, {cred}, {sh}, Signature={sig}")),
            ("unknown param", format!("{good_value}, Foo=bar")),
            ("trailing comma", format!("{good_value},")),
            ("empty param", good_value.replacen(", ", ", , ", 1)),
            ("non-hex signature", format!("AWS4-HMAC-SHA256 {cred}, {sh}, Signature={}", "g".repeat(64))),
            ("uppercase signature", format!("AWS4-HMAC-SHA256 {cred}, {sh}, Signature={}", sig.to_uppercase())),
            ("63-char signature", format!("AWS4-HMAC-SHA256 {cred}, {sh}, Signature={}", &sig[..63])),
            ("65-char signature", format!("AWS4-HMAC-SHA256 {cred}, {sh}, Signature={sig}0")),
            ("empty signature", format!("AWS4-HMAC-SHA256 {cred}, {sh}, Signature=")),
            (
                "credential with 4 parts",
                format!("AWS4-HMAC-SHA256 Credential={AKID}/20240315/us-east-1/kms, {sh}, Signature={sig}"),
            ),
            (
                "credential with 6 parts",
                format!(
                    "AWS4-HMAC-SHA256 Credential={AKID}/20240315/us-east-1/kms/aws4_request/x, {sh}, Signature={sig}"
                ),
            ),
            (
                "empty access key",
                format!("AWS4-HMAC-SHA256 Credential=/20240315/us-east-1/kms/aws4_request, {sh}, Signature={sig}"),
            ),
            (
                "bad scope date",
                format!("AWS4-HMAC-SHA256 Credential={AKID}/2024031/us-east-1/kms/aws4_request, {sh}, Signature={sig}"),
            ),
            (
                "signed headers without host",
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=content-type;x-amz-date;x-amz-target, Signature={sig}"),
            ),
            (
                "unsorted signed headers",
                format!(
                    "AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;content-type;x-amz-date;x-amz-target, Signature={sig}"
                ),
            ),
            (
                "duplicate signed header",
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=content-type;host;host;x-amz-date, Signature={sig}"),
            ),
            (
                "uppercase signed header",
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=content-type;Host;x-amz-date, Signature={sig}"),
            ),
            (
                "empty signed header",
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=content-type;;host;x-amz-date, Signature={sig}"),
            ),
            (
                "signed header missing from request",
                format!(
                    "AWS4-HMAC-SHA256 {cred}, SignedHeaders=content-type;host;x-amz-date;x-amz-target;zzz, Signature={sig}"
                ),
            ),
            (
                "x-amz-date not signed",
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=content-type;host;x-amz-target, Signature={sig}"),
            ),
            (
                "too many signed headers",
                format!(
                    "AWS4-HMAC-SHA256 {cred}, SignedHeaders={}, Signature={sig}",
                    (0..65).map(|i| format!("h{i:03}")).chain(["host".to_owned()]).collect::<Vec<_>>().join(";")
                ),
            ),
            ("oversize header", format!("{good_value}{}", " ".repeat(MAX_AUTHORIZATION_LEN))),
            ("oversize credential", good_value.replace(AKID, &"A".repeat(MAX_AUTHORIZATION_LEN))),
        ];
        for (what, value) in &cases {
            let mut h = good.clone();
            h.insert("authorization", HeaderValue::from_str(value).unwrap());
            assert_incomplete(&h, what);
        }

        // Non-ASCII bytes in the header value.
        let mut h = good.clone();
        let mut bytes = good_value.clone().into_bytes();
        bytes.push(0xff);
        h.insert("authorization", HeaderValue::from_bytes(&bytes).unwrap());
        assert_incomplete(&h, "non-ascii");

        // Two Authorization headers.
        let mut h = good.clone();
        h.append("authorization", HeaderValue::from_str(&good_value).unwrap());
        assert_incomplete(&h, "two authorization headers");

        // Date problems.
        let mut h = good.clone();
        h.remove("x-amz-date");
        assert_incomplete(&h, "no x-amz-date and no date");
        for bad in [
            "",
            "20240315T101500",
            "20240315 101500Z",
            "20241315T101500Z",
            "20240230T101500Z",
            "20240315T241500Z",
            "20240315T106000Z",
            "2024031XT101500Z",
            "Fri, 15 Mar 2024 10:15:00 GMT",
        ] {
            let mut h = good.clone();
            h.insert("x-amz-date", HeaderValue::from_str(bad).unwrap());
            assert_incomplete(&h, bad);
        }
        let mut h = good.clone();
        h.append("x-amz-date", HeaderValue::from_static(KMS_DATE));
        assert_incomplete(&h, "two x-amz-date headers");

        // Sanity: the unmodified request is fine, so the failures above are
        // due to the mutations.
        assert_eq!(check(&good, KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
    }

    #[test]
    fn mutated_authorization_never_verifies() {
        let good = signed_kms(KMS_DATE, "us-east-1", "kms");
        let original = good["authorization"].as_bytes().to_vec();
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEFxyzXYZ/;,=-_.~+%:\"'\\\x7f\x80\xc3\xff";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut evaluated = 0usize;
        for round in 0..800 {
            let mut m = original.clone();
            let pos = (next() % m.len() as u64) as usize;
            let byte = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
            match round % 4 {
                // Replace a byte with a different one.
                0 => {
                    if m[pos] == byte {
                        continue;
                    }
                    m[pos] = byte;
                }
                // Delete a non-space byte.
                1 => {
                    if m[pos] == b' ' {
                        continue;
                    }
                    m.remove(pos);
                }
                // Insert a byte.
                2 => m.insert(pos, byte),
                // Truncate.
                _ => m.truncate(pos),
            }
            let Ok(value) = HeaderValue::from_bytes(&m) else {
                continue;
            };
            let mut h = good.clone();
            h.insert("authorization", value);
            let result = parse_authorization(&h).and_then(|auth| {
                // The access key id selects the secret; an unknown id has none.
                if auth.access_key_id != AKID {
                    return Err(AuthError::BadSignature);
                }
                verify(&auth, KMS_SECRET, &Method::POST, &Uri::from_static("/"), &h, KMS_BODY, &KMS_EXPECTED, KMS_NOW)
            });
            assert!(result.is_err(), "mutation {round} verified: {}", String::from_utf8_lossy(&m));
            evaluated += 1;
        }
        assert!(evaluated > 500, "only {evaluated} mutations evaluated");
        assert_eq!(check(&good, KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
    }

    // ---- Canonicalization details ----

    #[test]
    fn canonical_uri_cases() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/foo/bar"), "/foo/bar");
        assert_eq!(canonical_uri("/foo/bar/"), "/foo/bar/");
        assert_eq!(canonical_uri("//foo//bar//"), "/foo/bar/");
        assert_eq!(canonical_uri("/foo/./bar/../baz"), "/foo/baz");
        assert_eq!(canonical_uri("/.."), "/");
        // The wire path is already percent-encoded; it is encoded once more
        // (the SDKs' double encoding for non-S3 services).
        assert_eq!(canonical_uri("/foo%20bar"), "/foo%2520bar");
        assert_eq!(canonical_uri("/a-b_c.d~e"), "/a-b_c.d~e");
        assert_eq!(canonical_uri("/a:b@c!$"), "/a%3Ab%40c%21%24");
    }

    #[test]
    fn canonical_query_cases() {
        assert_eq!(canonical_query("").unwrap(), "");
        assert_eq!(canonical_query("b=2&a=1&a=0").unwrap(), "a=0&a=1&b=2");
        assert_eq!(canonical_query("a=x%20y").unwrap(), "a=x%20y");
        assert_eq!(canonical_query("a=x+y").unwrap(), "a=x%2By");
        assert_eq!(canonical_query("a=x%2by").unwrap(), "a=x%2By");
        assert_eq!(canonical_query("k=%7e%2F").unwrap(), "k=~%2F");
        assert_eq!(canonical_query("k=a/b:c").unwrap(), "k=a%2Fb%3Ac");
        assert_eq!(canonical_query("flag&x=").unwrap(), "flag=&x=");
        assert_eq!(canonical_query("&&a=1&").unwrap(), "a=1");
        assert_eq!(canonical_query("a%20b=1").unwrap(), "a%20b=1");
        // Sorted by encoded name, then value.
        assert_eq!(canonical_query("b=1&B=2&a_=3&a=4").unwrap(), "B=2&a=4&a_=3&b=1");
        // Malformed escapes never canonicalize to something signable.
        assert!(canonical_query("a=%zz").is_err());
        assert!(canonical_query("a=%4").is_err());
        assert!(canonical_query("a=%").is_err());
        let many = vec!["a=1"; MAX_QUERY_PARAMS + 1].join("&");
        assert!(canonical_query(&many).is_err());
    }

    #[test]
    fn canonical_header_value_cases() {
        let mut h = HeaderMap::new();
        h.insert("x-test", HeaderValue::from_static("  a   b \t c  d "));
        h.append("x-multi", HeaderValue::from_static(" one  1 "));
        h.append("x-multi", HeaderValue::from_static("two"));
        let mut out = Vec::new();
        canonical_header_value(&h, "x-test", &mut out).unwrap();
        assert_eq!(out, b"a b c d");
        out.clear();
        canonical_header_value(&h, "x-multi", &mut out).unwrap();
        assert_eq!(out, b"one 1,two");
        assert!(matches!(canonical_header_value(&h, "x-absent", &mut Vec::new()), Err(AuthError::Incomplete(_))));

        // Through the public API: whitespace differences in a signed header
        // do not break the signature.
        let mut h = signed_kms(KMS_DATE, "us-east-1", "kms");
        h.insert("content-type", HeaderValue::from_static("  application/x-amz-json-1.1   "));
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
    }

    #[test]
    fn dates_round_trip() {
        for (s, unix) in [
            ("19700101T000000Z", 0i64),
            ("20150830T123600Z", 1_440_938_160),
            ("20000229T235959Z", 951_868_799),
            ("21000301T000000Z", 4_107_542_400),
        ] {
            let ts = parse_amz_date(s).unwrap();
            assert_eq!(ts.unix, unix, "{s}");
            assert_eq!(ts.amz, s);
            assert_eq!(format_amz_date(unix), s);
        }
        assert!(parse_amz_date("21000229T000000Z").is_none());
        let ts = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(ts.amz, "19941106T084937Z");
        assert_eq!(ts.unix, 784_111_777);
        assert!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC").is_none());
        assert!(parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT").is_none());
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
    }

    #[test]
    fn error_codes_and_no_secrets_in_output() {
        let cases = [
            (AuthError::MissingAuthentication, "MissingAuthenticationTokenException"),
            (AuthError::Incomplete("x".into()), "IncompleteSignatureException"),
            (AuthError::BadSignature, "InvalidSignatureException"),
            (AuthError::WrongScope("x".into()), "InvalidSignatureException"),
        ];
        for (e, code) in &cases {
            assert_eq!(e.aws_code(), *code);
            assert_eq!(e.message(), e.to_string());
        }

        // Bad signature: neither the secret, the derived key nor the expected
        // signature appear in Debug or Display of the error or the parsed header.
        let good = signed_kms(KMS_DATE, "us-east-1", "kms");
        let good_sig = good["authorization"].to_str().unwrap().rsplit_once("Signature=").unwrap().1.to_owned();
        let mut h = good.clone();
        let tampered = good["authorization"].to_str().unwrap().replace(&good_sig, &"0".repeat(64));
        h.insert("authorization", HeaderValue::from_str(&tampered).unwrap());
        let auth = parse_authorization(&h).unwrap();
        let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW).unwrap_err();
        assert_eq!(err, AuthError::BadSignature);
        let key = hex::encode(signing_key(KMS_SECRET, "20240315", "us-east-1", "kms"));
        let secret = String::from_utf8_lossy(KMS_SECRET).into_owned();
        for text in [format!("{err:?}"), err.to_string(), format!("{auth:?}")] {
            assert!(!text.contains(&good_sig), "{text}");
            assert!(!text.contains(&key), "{text}");
            assert!(!text.contains(&secret), "{text}");
        }
        assert!(!format!("{auth:?}").contains(&"0".repeat(64)));
    }

    #[test]
    fn routing_headers_must_be_signed() {
        // Signed without x-amz-target (or without content-type): a valid signature, but the unsigned header could be
        // swapped to replay the request as another operation, so it is refused before the body matters.
        for signed in [&["content-type", "host", "x-amz-date"][..], &["host", "x-amz-date", "x-amz-target"][..]] {
            let mut h = kms_headers(KMS_DATE);
            let authz = test_sign(KMS_SECRET, KMS_DATE, &KMS_DATE[..8], "us-east-1", "kms", &h, signed, KMS_BODY);
            h.insert("authorization", HeaderValue::from_str(&authz).unwrap());
            let err = check(&h, KMS_SECRET, KMS_BODY, KMS_NOW).unwrap_err();
            assert_eq!(err.aws_code(), "IncompleteSignatureException", "{signed:?}");
            assert!(err.message().contains("must be a signed header"), "{err}");
            let auth = parse_authorization(&h).unwrap();
            assert_eq!(check_before_body(&auth, &h, &KMS_EXPECTED, KMS_NOW), Err(err));
        }
        // Absent headers need not be signed.
        let mut h = kms_headers(KMS_DATE);
        h.remove("x-amz-target");
        h.remove("content-type");
        let authz =
            test_sign(KMS_SECRET, KMS_DATE, &KMS_DATE[..8], "us-east-1", "kms", &h, &["host", "x-amz-date"], KMS_BODY);
        h.insert("authorization", HeaderValue::from_str(&authz).unwrap());
        assert_eq!(check(&h, KMS_SECRET, KMS_BODY, KMS_NOW), Ok(()));
    }

    #[test]
    fn checks_before_the_body() {
        let h = signed_kms(KMS_DATE, "us-east-1", "kms");
        let auth = parse_authorization(&h).unwrap();
        assert_eq!(check_before_body(&auth, &h, &KMS_EXPECTED, KMS_NOW), Ok(()));
        let err = check_before_body(&auth, &h, &KMS_EXPECTED, KMS_NOW + 3600).unwrap_err();
        assert!(matches!(err, AuthError::Expired { .. }), "{err:?}");
        let other = Expected { region: "eu-west-1", ..KMS_EXPECTED };
        assert!(matches!(check_before_body(&auth, &h, &other, KMS_NOW), Err(AuthError::WrongScope(_))));
    }
}
