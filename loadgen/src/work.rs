//! The operation each connection repeats: prepared once, sent, and every answer checked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms_client::kms::{decode, parse_answer};
use kms_client::{CallError, Client};

use crate::config::Op;

/// Keys a run spreads its requests over, uniformly.
pub type Keys = std::sync::Arc<Vec<String>>;

/// Ciphertexts each decrypt connection prepares when spreading over a key set (keys drawn uniformly).
pub const DECRYPT_POOL: usize = 256;

/// A small, fast generator (xorshift64*) for choosing keys; statistical quality is ample for that.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is below 2^-40 for n up to 2^24).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x % (n.max(1) as u64)) as usize
    }
}

/// One operation, prepared once per connection, repeated and checked.
pub struct Work {
    target: &'static str,
    body: Vec<u8>,
    check: Check,
    /// When set, each request names a key drawn from here (Encrypt, GenerateDataKey).
    keys: Option<Keys>,
    /// Encrypt: the plaintext in base64, for requests built per key.
    plaintext_b64: String,
    /// Decrypt over a key set: request bodies of ciphertexts under random keys, one drawn per request.
    pool: Vec<Vec<u8>>,
    rng: Rng,
}

enum Check {
    /// A CiphertextBlob longer than the plaintext.
    Ciphertext { plaintext_len: usize },
    /// Exactly this plaintext.
    Plaintext(Vec<u8>),
    /// A 32-byte Plaintext and a CiphertextBlob.
    DataKey,
    /// A KeyMetadata with a KeyId.
    NewKey,
}

impl Work {
    /// Prepares `op` for one connection (a decrypt pre-encrypts `payload` over `client`: once under `key_id`, or
    /// under [`DECRYPT_POOL`] keys drawn from `keys`). With `keys`, each Encrypt or GenerateDataKey draws its key.
    pub async fn prepare(
        client: &mut Client,
        op: Op,
        key_id: &str,
        keys: Option<Keys>,
        payload: &[u8],
        seed: u64,
    ) -> Result<Self, CallError> {
        let mut work = Self {
            target: "",
            body: Vec::new(),
            check: Check::NewKey,
            keys: None,
            plaintext_b64: B64.encode(payload),
            pool: Vec::new(),
            rng: Rng::new(seed),
        };
        match op {
            Op::Encrypt => {
                work.target = "TrentService.Encrypt";
                work.body = serde_json::json!({ "KeyId": key_id, "Plaintext": work.plaintext_b64 }).to_string().into();
                work.check = Check::Ciphertext { plaintext_len: payload.len() };
                work.keys = keys;
            }
            Op::Decrypt => {
                work.target = "TrentService.Decrypt";
                work.check = Check::Plaintext(payload.to_vec());
                match keys.filter(|k| !k.is_empty()) {
                    Some(keys) => {
                        for _ in 0..DECRYPT_POOL {
                            let key = keys.get(work.rng.below(keys.len())).map(String::as_str).unwrap_or(key_id);
                            let blob = client.encrypt(key, payload).await?;
                            work.pool
                                .push(serde_json::json!({ "CiphertextBlob": B64.encode(blob) }).to_string().into());
                        }
                    }
                    None => {
                        let blob = client.encrypt(key_id, payload).await?;
                        work.body = serde_json::json!({ "CiphertextBlob": B64.encode(blob) }).to_string().into();
                    }
                }
            }
            Op::GenerateDataKey => {
                work.target = "TrentService.GenerateDataKey";
                work.body = serde_json::json!({ "KeyId": key_id, "KeySpec": "AES_256" }).to_string().into();
                work.check = Check::DataKey;
                work.keys = keys;
            }
            Op::CreateKey => {
                work.target = "TrentService.CreateKey";
                work.body = br#"{"Description":"kms-loadgen"}"#.to_vec();
                work.check = Check::NewKey;
            }
        }
        Ok(work)
    }

    /// The body of the next request: the prepared one, or one naming a key drawn from the key set.
    fn next_body(&mut self) {
        if !self.pool.is_empty() {
            let i = self.rng.below(self.pool.len());
            if let Some(b) = self.pool.get(i) {
                self.body.clone_from(b);
            }
            return;
        }
        let Some(keys) = &self.keys else { return };
        let Some(key) = keys.get(self.rng.below(keys.len())) else { return };
        self.body.clear();
        self.body.extend_from_slice(b"{\"KeyId\":\"");
        self.body.extend_from_slice(key.as_bytes());
        match self.check {
            Check::DataKey => self.body.extend_from_slice(b"\",\"KeySpec\":\"AES_256\"}"),
            _ => {
                self.body.extend_from_slice(b"\",\"Plaintext\":\"");
                self.body.extend_from_slice(self.plaintext_b64.as_bytes());
                self.body.extend_from_slice(b"\"}");
            }
        }
    }

    /// Sends the request once and checks the answer.
    pub async fn run(&mut self, client: &mut Client) -> Result<(), CallError> {
        self.next_body();
        let body = client.call(self.target, &self.body).await?;
        self.check(&body)
    }

    fn check(&self, body: &[u8]) -> Result<(), CallError> {
        if let Check::NewKey = self.check {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| CallError::Wrong(format!("response is not the expected JSON: {e}")))?;
            let id = v.get("KeyMetadata").and_then(|m| m.get("KeyId")).and_then(serde_json::Value::as_str);
            if id.is_none_or(str::is_empty) {
                return Err(CallError::Wrong("CreateKey answer without KeyMetadata.KeyId".into()));
            }
            return Ok(());
        }
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
            Check::NewKey => {}
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
        Work {
            target: "x",
            body: Vec::new(),
            check,
            keys: None,
            plaintext_b64: "YWJj".into(),
            pool: Vec::new(),
            rng: Rng::new(1),
        }
    }

    #[test]
    fn requests_spread_over_the_key_set() {
        let keys: Keys = std::sync::Arc::new((0..10).map(|i| format!("k{i}")).collect());
        let mut enc = work(Check::Ciphertext { plaintext_len: 3 });
        enc.keys = Some(keys.clone());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            enc.next_body();
            let v: serde_json::Value = serde_json::from_slice(&enc.body).unwrap();
            assert_eq!(v["Plaintext"], "YWJj");
            seen.insert(v["KeyId"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 10, "every key drawn");
        let mut gdk = work(Check::DataKey);
        gdk.keys = Some(keys);
        gdk.next_body();
        let v: serde_json::Value = serde_json::from_slice(&gdk.body).unwrap();
        assert_eq!(
            (v["KeySpec"].as_str(), v["KeyId"].as_str().map(|k| k.starts_with('k'))),
            (Some("AES_256"), Some(true))
        );
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[rng.below(4)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }

    #[test]
    fn create_key_answers_are_checked() {
        let ck = work(Check::NewKey);
        assert!(ck.check(br#"{"KeyMetadata":{"KeyId":"1234","Arn":"a"}}"#).is_ok());
        assert!(ck.check(br#"{"KeyMetadata":{"KeyId":""}}"#).is_err());
        assert!(ck.check(br#"{"KeyMetadata":{}}"#).is_err());
        assert!(ck.check(b"[]").is_err());
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
