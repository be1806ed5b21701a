//! KMS JSON requests over one connection: signing, sending, reconnecting, and checking every answer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use crate::config::Op;
use crate::http::{Conn, Connector, HttpError};
use crate::sigv4::{Request, Signer, amz_date};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// A request that takes longer than this counts as an error and its connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "CiphertextBlob")]
    ciphertext_blob: Option<String>,
    #[serde(rename = "Plaintext")]
    plaintext: Option<String>,
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

fn parse_answer(body: &[u8]) -> Result<Answer, CallError> {
    serde_json::from_slice(body).map_err(|e| CallError::Wrong(format!("response is not the expected JSON: {e}")))
}

fn decode(field: &str, value: Option<&String>) -> Result<Vec<u8>, CallError> {
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
        }
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

    /// Sends one signed request; returns the body of a 200 answer. A failed connection is dropped and the next call
    /// opens a new one.
    pub async fn call(&mut self, target: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
        self.build(target, body);
        let (conn, outcome) = match tokio::time::timeout(REQUEST_TIMEOUT, async {
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
            Err(_) => return Err(CallError::Timeout(REQUEST_TIMEOUT)),
        };
        let response = outcome?;
        if conn.reusable() {
            self.conn = Some(conn);
        }
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

/// One operation, prepared once per connection, repeated and checked.
pub struct Work {
    target: &'static str,
    body: Vec<u8>,
    check: Check,
}

enum Check {
    /// A CiphertextBlob longer than the plaintext.
    Ciphertext { plaintext_len: usize },
    /// Exactly this plaintext.
    Plaintext(Vec<u8>),
    /// A 32-byte Plaintext and a CiphertextBlob.
    DataKey,
}

impl Work {
    /// Prepares `op` for one connection (a decrypt pre-encrypts `payload` once over `client`).
    pub async fn prepare(client: &mut Client, op: Op, key_id: &str, payload: &[u8]) -> Result<Self, CallError> {
        Ok(match op {
            Op::Encrypt => Self {
                target: "TrentService.Encrypt",
                body: serde_json::json!({ "KeyId": key_id, "Plaintext": B64.encode(payload) }).to_string().into(),
                check: Check::Ciphertext { plaintext_len: payload.len() },
            },
            Op::Decrypt => {
                let blob = client.encrypt(key_id, payload).await?;
                Self {
                    target: "TrentService.Decrypt",
                    body: serde_json::json!({ "CiphertextBlob": B64.encode(blob) }).to_string().into(),
                    check: Check::Plaintext(payload.to_vec()),
                }
            }
            Op::GenerateDataKey => Self {
                target: "TrentService.GenerateDataKey",
                body: serde_json::json!({ "KeyId": key_id, "KeySpec": "AES_256" }).to_string().into(),
                check: Check::DataKey,
            },
        })
    }

    /// Sends the request once and checks the answer.
    pub async fn run(&self, client: &mut Client) -> Result<(), CallError> {
        let body = client.call(self.target, &self.body).await?;
        self.check(&body)
    }

    fn check(&self, body: &[u8]) -> Result<(), CallError> {
        let answer = parse_answer(body)?;
        match &self.check {
            Check::Ciphertext { plaintext_len } => {
                let blob = decode("CiphertextBlob", answer.ciphertext_blob.as_ref())?;
                if blob.len() <= *plaintext_len {
                    return Err(CallError::Wrong(format!("CiphertextBlob of {} bytes is too short", blob.len())));
                }
            }
            Check::Plaintext(expected) => {
                if decode("Plaintext", answer.plaintext.as_ref())? != *expected {
                    return Err(CallError::Wrong("Decrypt returned another plaintext".into()));
                }
            }
            Check::DataKey => {
                let key = decode("Plaintext", answer.plaintext.as_ref())?;
                if key.len() != 32 {
                    return Err(CallError::Wrong(format!("data key of {} bytes, not 32", key.len())));
                }
                if decode("CiphertextBlob", answer.ciphertext_blob.as_ref())?.is_empty() {
                    return Err(CallError::Wrong("empty CiphertextBlob".into()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(check: Check) -> Work {
        Work { target: "x", body: Vec::new(), check }
    }

    #[test]
    fn answers_are_checked() {
        let enc = work(Check::Ciphertext { plaintext_len: 3 });
        assert!(enc.check(br#"{"CiphertextBlob":"AAAAAA==","KeyId":"k"}"#).is_ok());
        assert!(enc.check(br#"{"CiphertextBlob":"AAA="}"#).is_err(), "too short");
        assert!(enc.check(br#"{"KeyId":"k"}"#).is_err());
        assert!(enc.check(br#"{"CiphertextBlob":"!!"}"#).is_err());
        assert!(enc.check(b"not json").is_err());

        let dec = work(Check::Plaintext(b"abc".to_vec()));
        assert!(dec.check(br#"{"Plaintext":"YWJj"}"#).is_ok());
        assert!(dec.check(br#"{"Plaintext":"YWJk"}"#).is_err());
        assert!(dec.check(br#"{}"#).is_err());

        let gdk = work(Check::DataKey);
        let key = B64.encode([7u8; 32]);
        assert!(gdk.check(format!(r#"{{"Plaintext":"{key}","CiphertextBlob":"AQ=="}}"#).as_bytes()).is_ok());
        assert!(gdk.check(format!(r#"{{"Plaintext":"{key}"}}"#).as_bytes()).is_err());
        assert!(gdk.check(br#"{"Plaintext":"AAAA","CiphertextBlob":"AQ=="}"#).is_err());
    }
}
