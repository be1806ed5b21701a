//! KMS JSON requests over one keep-alive connection: signing, sending, reconnecting.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use crate::http::{Conn, Connector, HttpError, Response};
use crate::sigv4::{Request, Signer, amz_date};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// A request that takes longer than this (by default) fails and its connection is replaced.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP {0}: {1}")]
    Status(u16, String),
    #[error("wrong answer: {0}")]
    Wrong(String),
}

/// One keep-alive connection to a KMS endpoint with its own signer.
pub struct Client {
    connector: Arc<Connector>,
    conn: Option<Conn>,
    signer: Signer,
    authority: String,
    /// `(unix second, x-amz-date)` of the last request.
    date: (u64, String),
    request: Vec<u8>,
    timeout: Duration,
}

/// The members of an Encrypt, Decrypt or GenerateDataKey answer that callers check.
#[derive(Deserialize)]
pub struct Answer {
    /// Base64 ciphertext blob.
    #[serde(rename = "CiphertextBlob")]
    pub ciphertext_blob: Option<String>,
    /// Base64 plaintext.
    #[serde(rename = "Plaintext")]
    pub plaintext: Option<String>,
}

#[derive(Deserialize)]
struct CreateKeyAnswer {
    #[serde(rename = "KeyMetadata")]
    key_metadata: KeyMetadata,
}

#[derive(Deserialize)]
struct KeyMetadata {
    #[serde(rename = "KeyId")]
    key_id: String,
}

/// Parses an [`Answer`]; anything else is [`CallError::Wrong`].
pub fn parse_answer(body: &[u8]) -> Result<Answer, CallError> {
    serde_json::from_slice(body).map_err(|e| CallError::Wrong(format!("response is not the expected JSON: {e}")))
}

/// Decodes base64 member `field`; missing or malformed is [`CallError::Wrong`].
pub fn decode(field: &str, value: Option<&String>) -> Result<Vec<u8>, CallError> {
    let v = value.ok_or_else(|| CallError::Wrong(format!("no {field} in the response")))?;
    B64.decode(v).map_err(|_| CallError::Wrong(format!("{field} is not base64")))
}

impl Client {
    pub fn new(connector: Arc<Connector>, signer: Signer, authority: &str) -> Self {
        Self {
            connector,
            conn: None,
            signer,
            authority: authority.to_owned(),
            date: (0, String::new()),
            request: Vec::with_capacity(2048),
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// Sets how long one request may take (connection included) before it fails.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens the connection now (so set-up cost stays out of the measurement).
    pub async fn connect(&mut self) -> Result<(), CallError> {
        if self.conn.is_none() {
            self.conn = Some(self.connector.connect().await?);
        }
        Ok(())
    }

    fn build(&mut self, target: &str, body: &[u8]) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if self.date.0 != now || self.date.1.is_empty() {
            self.date = (now, amz_date(now));
        }
        let date = self.date.1.as_str();
        let auth = self.signer.authorization(&Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("content-type", CONTENT_TYPE),
                ("host", &self.authority),
                ("x-amz-date", date),
                ("x-amz-target", target),
            ],
            payload: body,
            amz_date: date,
        });
        let r = &mut self.request;
        r.clear();
        r.extend_from_slice(b"POST / HTTP/1.1\r\nHost: ");
        r.extend_from_slice(self.authority.as_bytes());
        r.extend_from_slice(b"\r\nContent-Type: ");
        r.extend_from_slice(CONTENT_TYPE.as_bytes());
        r.extend_from_slice(b"\r\nX-Amz-Target: ");
        r.extend_from_slice(target.as_bytes());
        r.extend_from_slice(b"\r\nX-Amz-Date: ");
        r.extend_from_slice(date.as_bytes());
        r.extend_from_slice(b"\r\nAuthorization: ");
        r.extend_from_slice(auth.as_bytes());
        r.extend_from_slice(b"\r\nContent-Length: ");
        r.extend_from_slice(body.len().to_string().as_bytes());
        r.extend_from_slice(b"\r\n\r\n");
        r.extend_from_slice(body);
    }

    /// Sends one signed request and returns the answer, whatever its status. A failed connection is dropped and the
    /// next call opens a new one.
    pub async fn call_raw(&mut self, target: &str, body: &[u8]) -> Result<Response, CallError> {
        self.build(target, body);
        let (conn, outcome) = match tokio::time::timeout(self.timeout, async {
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => self.connector.connect().await?,
            };
            let response = conn.send(&self.request).await;
            Ok::<_, HttpError>((conn, response))
        })
        .await
        {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(CallError::Timeout(self.timeout)),
        };
        let response = outcome?;
        if conn.reusable() {
            self.conn = Some(conn);
        }
        Ok(response)
    }

    /// Sends one signed request; returns the body of a 200 answer (other statuses are [`CallError::Status`] with the
    /// start of the body).
    pub async fn call(&mut self, target: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
        let response = self.call_raw(target, body).await?;
        if response.status != 200 {
            let text = String::from_utf8_lossy(&response.body);
            let text: String = text.chars().take(300).collect();
            return Err(CallError::Status(response.status, text));
        }
        Ok(response.body)
    }

    /// CreateKey (symmetric, default spec); returns the new key's id.
    pub async fn create_key(&mut self) -> Result<String, CallError> {
        let body = self.call("TrentService.CreateKey", br#"{"Description":"kms-loadgen"}"#).await?;
        let answer: CreateKeyAnswer = serde_json::from_slice(&body)
            .map_err(|e| CallError::Wrong(format!("CreateKey answer without KeyMetadata.KeyId: {e}")))?;
        Ok(answer.key_metadata.key_id)
    }

    /// Encrypt `plaintext` under `key_id`; returns the ciphertext blob.
    pub async fn encrypt(&mut self, key_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, CallError> {
        let body = serde_json::json!({ "KeyId": key_id, "Plaintext": B64.encode(plaintext) }).to_string();
        let answer = parse_answer(&self.call("TrentService.Encrypt", body.as_bytes()).await?)?;
        decode("CiphertextBlob", answer.ciphertext_blob.as_ref())
    }
}
