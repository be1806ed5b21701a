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
    /// The end of a body built per key, after `{"KeyId":"KEY"`: the other members and the closing brace.
    tail: Vec<u8>,
}

/// What every connection's operations share: the encryption context and the public key of the signing key.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// `--context` pairs, for Encrypt, Decrypt and GenerateDataKey (none: no EncryptionContext member).
    pub context: Vec<(String, String)>,
    /// DER SubjectPublicKeyInfo of the signing key (from GetPublicKey at set-up), for checking Sign answers.
    pub public_key: std::sync::Arc<Vec<u8>>,
}

impl Shared {
    fn context_value(&self) -> Option<serde_json::Value> {
        if self.context.is_empty() {
            return None;
        }
        let map: serde_json::Map<String, serde_json::Value> =
            self.context.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        Some(serde_json::Value::Object(map))
    }

    /// Adds `EncryptionContext` to `body` (a JSON object) when there is a context.
    fn with_context(&self, mut body: serde_json::Value) -> serde_json::Value {
        if let (Some(ctx), Some(obj)) = (self.context_value(), body.as_object_mut()) {
            obj.insert("EncryptionContext".into(), ctx);
        }
        body
    }
}

/// Encrypt `payload` under `key_id` with the shared context; returns the ciphertext blob.
async fn encrypt(client: &mut Client, key_id: &str, payload: &[u8], shared: &Shared) -> Result<Vec<u8>, CallError> {
    let body = shared.with_context(serde_json::json!({ "KeyId": key_id, "Plaintext": B64.encode(payload) }));
    let answer = parse_answer(&client.call("TrentService.Encrypt", body.to_string().as_bytes()).await?)?;
    decode("CiphertextBlob", answer.ciphertext_blob.as_ref())
}

/// Parses a JSON answer; anything else is [`CallError::Wrong`].
fn json(body: &[u8]) -> Result<serde_json::Value, CallError> {
    serde_json::from_slice(body).map_err(|e| CallError::Wrong(format!("response is not the expected JSON: {e}")))
}

/// Decodes the base64 string member `field` of `v`.
fn member(v: &serde_json::Value, field: &str) -> Result<Vec<u8>, CallError> {
    let s = v.get(field).and_then(serde_json::Value::as_str).map(str::to_owned);
    decode(field, s.as_ref())
}

/// Signs `message` (RAW, ECDSA_SHA_256) under `key_id`; returns the DER signature.
pub async fn sign(client: &mut Client, key_id: &str, message: &[u8]) -> Result<Vec<u8>, CallError> {
    let body = serde_json::json!({
        "KeyId": key_id, "Message": B64.encode(message), "MessageType": "RAW", "SigningAlgorithm": "ECDSA_SHA_256"
    });
    member(&json(&client.call("TrentService.Sign", body.to_string().as_bytes()).await?)?, "Signature")
}

/// GetPublicKey: the DER SubjectPublicKeyInfo of `key_id`.
pub async fn public_key(client: &mut Client, key_id: &str) -> Result<Vec<u8>, CallError> {
    let body = serde_json::json!({ "KeyId": key_id }).to_string();
    member(&json(&client.call("TrentService.GetPublicKey", body.as_bytes()).await?)?, "PublicKey")
}

/// CreateKey of `spec` and `usage`; returns the key id.
pub async fn create_key(client: &mut Client, spec: &str, usage: &str) -> Result<String, CallError> {
    let body = serde_json::json!({ "Description": "kms-loadgen", "KeySpec": spec, "KeyUsage": usage }).to_string();
    let v = json(&client.call("TrentService.CreateKey", body.as_bytes()).await?)?;
    match v.get("KeyMetadata").and_then(|m| m.get("KeyId")).and_then(serde_json::Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(CallError::Wrong("CreateKey answer without KeyMetadata.KeyId".into())),
    }
}

/// GetKeyPolicy "default" of `key_id`: the policy document.
pub async fn key_policy(client: &mut Client, key_id: &str) -> Result<String, CallError> {
    let body = serde_json::json!({ "KeyId": key_id, "PolicyName": "default" }).to_string();
    let v = json(&client.call("TrentService.GetKeyPolicy", body.as_bytes()).await?)?;
    match v.get("Policy").and_then(serde_json::Value::as_str) {
        Some(p) if !p.is_empty() => Ok(p.to_owned()),
        _ => Err(CallError::Wrong("GetKeyPolicy answer without Policy".into())),
    }
}

/// A connection's operations with their weights; each request draws one (xorshift64* seeded per connection).
pub struct Plan {
    works: Vec<Work>,
    /// Cumulative weights, ascending; the last is the total.
    cumulative: Vec<u64>,
    rng: Rng,
}

impl Plan {
    /// `works` and `weights` pair up by position (weights > 0).
    pub fn new(works: Vec<Work>, weights: &[u32], seed: u64) -> Self {
        let mut total = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                total += u64::from(w);
                total
            })
            .collect();
        Self { works, cumulative, rng: Rng::new(seed) }
    }

    /// The index of the next operation.
    pub fn pick(&mut self) -> usize {
        if self.works.len() <= 1 {
            return 0;
        }
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = self.rng.below(usize::try_from(total).unwrap_or(usize::MAX)) as u64;
        self.cumulative.iter().position(|&c| x < c).unwrap_or(0)
    }

    /// Sends operation `index` once and checks the answer.
    pub async fn run(&mut self, index: usize, client: &mut Client) -> Result<(), CallError> {
        match self.works.get_mut(index) {
            Some(w) => w.run(client).await,
            None => Err(CallError::Wrong(format!("no operation {index}"))),
        }
    }
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
    /// A Plaintext of exactly this many random bytes.
    Random(usize),
    /// A Signature that verifies over this message with the shared public key.
    Signature { message: Vec<u8>, public_key: std::sync::Arc<Vec<u8>> },
    /// SignatureValid true.
    Valid,
    /// A 32-byte Mac, the same for every request (the message does not change): the first one seen.
    Mac(Option<Vec<u8>>),
    /// An empty answer or an empty JSON object (PutKeyPolicy).
    Empty,
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
        shared: &Shared,
    ) -> Result<Self, CallError> {
        let mut work = Self {
            target: "",
            body: Vec::new(),
            check: Check::NewKey,
            keys: None,
            plaintext_b64: B64.encode(payload),
            pool: Vec::new(),
            rng: Rng::new(seed),
            tail: Vec::new(),
        };
        let ctx = shared.context_value().map(|c| format!(",\"EncryptionContext\":{c}")).unwrap_or_default();
        match op {
            Op::Encrypt => {
                work.target = "TrentService.Encrypt";
                work.body = shared
                    .with_context(serde_json::json!({ "KeyId": key_id, "Plaintext": work.plaintext_b64 }))
                    .to_string()
                    .into();
                work.check = Check::Ciphertext { plaintext_len: payload.len() };
                work.keys = keys;
                work.tail = format!(",\"Plaintext\":\"{}\"{ctx}}}", work.plaintext_b64).into();
            }
            Op::Decrypt => {
                work.target = "TrentService.Decrypt";
                work.check = Check::Plaintext(payload.to_vec());
                match keys.filter(|k| !k.is_empty()) {
                    Some(keys) => {
                        for _ in 0..DECRYPT_POOL {
                            let key = keys.get(work.rng.below(keys.len())).map(String::as_str).unwrap_or(key_id);
                            let blob = encrypt(client, key, payload, shared).await?;
                            let body = shared.with_context(serde_json::json!({ "CiphertextBlob": B64.encode(blob) }));
                            work.pool.push(body.to_string().into());
                        }
                    }
                    None => {
                        let blob = encrypt(client, key_id, payload, shared).await?;
                        work.body = shared
                            .with_context(serde_json::json!({ "CiphertextBlob": B64.encode(blob) }))
                            .to_string()
                            .into();
                    }
                }
            }
            Op::GenerateDataKey => {
                work.target = "TrentService.GenerateDataKey";
                work.body = shared
                    .with_context(serde_json::json!({ "KeyId": key_id, "KeySpec": "AES_256" }))
                    .to_string()
                    .into();
                work.check = Check::DataKey;
                work.keys = keys;
                work.tail = format!(",\"KeySpec\":\"AES_256\"{ctx}}}").into();
            }
            Op::CreateKey => {
                work.target = "TrentService.CreateKey";
                work.body = br#"{"Description":"kms-loadgen"}"#.to_vec();
                work.check = Check::NewKey;
            }
            Op::GenerateRandom => {
                work.target = "TrentService.GenerateRandom";
                work.body = serde_json::json!({ "NumberOfBytes": payload.len() }).to_string().into();
                work.check = Check::Random(payload.len());
            }
            Op::Sign => {
                work.target = "TrentService.Sign";
                work.body = serde_json::json!({
                    "KeyId": key_id, "Message": work.plaintext_b64, "MessageType": "RAW",
                    "SigningAlgorithm": "ECDSA_SHA_256"
                })
                .to_string()
                .into();
                work.check = Check::Signature { message: payload.to_vec(), public_key: shared.public_key.clone() };
            }
            Op::Verify => {
                work.target = "TrentService.Verify";
                let signature = sign(client, key_id, payload).await?;
                work.body = serde_json::json!({
                    "KeyId": key_id, "Message": work.plaintext_b64, "MessageType": "RAW",
                    "Signature": B64.encode(signature), "SigningAlgorithm": "ECDSA_SHA_256"
                })
                .to_string()
                .into();
                work.check = Check::Valid;
            }
            Op::PutKeyPolicy => {
                work.target = "TrentService.PutKeyPolicy";
                let policy = key_policy(client, key_id).await?;
                work.body = serde_json::json!({ "KeyId": key_id, "PolicyName": "default", "Policy": policy })
                    .to_string()
                    .into();
                work.check = Check::Empty;
                work.keys = keys;
                work.tail =
                    format!(",\"PolicyName\":\"default\",\"Policy\":{}}}", serde_json::Value::from(policy)).into();
            }
            Op::GenerateMac => {
                work.target = "TrentService.GenerateMac";
                work.body = serde_json::json!({
                    "KeyId": key_id, "Message": work.plaintext_b64, "MacAlgorithm": "HMAC_SHA_256"
                })
                .to_string()
                .into();
                work.check = Check::Mac(None);
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
        self.body.push(b'"');
        self.body.extend_from_slice(&self.tail);
    }

    /// Sends the request once and checks the answer.
    pub async fn run(&mut self, client: &mut Client) -> Result<(), CallError> {
        self.next_body();
        let body = client.call(self.target, &self.body).await?;
        self.check(&body)
    }

    fn check(&mut self, body: &[u8]) -> Result<(), CallError> {
        match &mut self.check {
            Check::Random(len) => {
                let got = member(&json(body)?, "Plaintext")?;
                if got.len() != *len {
                    return Err(CallError::Wrong(format!("{} random bytes, not {len}", got.len())));
                }
                return Ok(());
            }
            Check::Signature { message, public_key } => {
                let signature = member(&json(body)?, "Signature")?;
                let key = aws_lc_rs::signature::UnparsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                    public_key.as_slice(),
                );
                if key.verify(message, &signature).is_err() {
                    return Err(CallError::Wrong("the signature does not verify with the public key".into()));
                }
                return Ok(());
            }
            Check::Valid => {
                if json(body)?.get("SignatureValid") != Some(&serde_json::Value::Bool(true)) {
                    return Err(CallError::Wrong("Verify did not answer SignatureValid true".into()));
                }
                return Ok(());
            }
            Check::Mac(first) => {
                let mac = member(&json(body)?, "Mac")?;
                if mac.len() != 32 {
                    return Err(CallError::Wrong(format!("Mac of {} bytes, not 32", mac.len())));
                }
                match first {
                    Some(m) if *m != mac => {
                        return Err(CallError::Wrong("another Mac for the same message".into()));
                    }
                    Some(_) => {}
                    None => *first = Some(mac),
                }
                return Ok(());
            }
            Check::Empty => {
                let empty = body.iter().all(u8::is_ascii_whitespace)
                    || serde_json::from_slice::<serde_json::Value>(body)
                        .ok()
                        .and_then(|v| v.as_object().map(serde_json::Map::is_empty))
                        .unwrap_or(false);
                if !empty {
                    return Err(CallError::Wrong("PutKeyPolicy answered something other than an empty body".into()));
                }
                return Ok(());
            }
            _ => {}
        }
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
            Check::NewKey
            | Check::Random(_)
            | Check::Signature { .. }
            | Check::Valid
            | Check::Mac(_)
            | Check::Empty => {}
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
            tail: Vec::new(),
        }
    }

    #[test]
    fn requests_spread_over_the_key_set() {
        let keys: Keys = std::sync::Arc::new((0..10).map(|i| format!("k{i}")).collect());
        let mut enc = work(Check::Ciphertext { plaintext_len: 3 });
        enc.keys = Some(keys.clone());
        enc.tail = br#","Plaintext":"YWJj","EncryptionContext":{"a":"b"}}"#.to_vec();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            enc.next_body();
            let v: serde_json::Value = serde_json::from_slice(&enc.body).unwrap();
            assert_eq!(v["Plaintext"], "YWJj");
            assert_eq!(v["EncryptionContext"]["a"], "b");
            seen.insert(v["KeyId"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 10, "every key drawn");
        let mut gdk = work(Check::DataKey);
        gdk.keys = Some(keys);
        gdk.tail = br#","KeySpec":"AES_256"}"#.to_vec();
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
        let mut ck = work(Check::NewKey);
        assert!(ck.check(br#"{"KeyMetadata":{"KeyId":"1234","Arn":"a"}}"#).is_ok());
        assert!(ck.check(br#"{"KeyMetadata":{"KeyId":""}}"#).is_err());
        assert!(ck.check(br#"{"KeyMetadata":{}}"#).is_err());
        assert!(ck.check(b"[]").is_err());
    }

    #[test]
    fn answers_are_checked() {
        let mut enc = work(Check::Ciphertext { plaintext_len: 3 });
        assert!(enc.check(br#"{"CiphertextBlob":"AAAAAA==","KeyId":"k"}"#).is_ok());
        assert!(enc.check(br#"{"CiphertextBlob":"AAA="}"#).is_err(), "too short");
        assert!(enc.check(br#"{"KeyId":"k"}"#).is_err());
        assert!(enc.check(br#"{"CiphertextBlob":"!!"}"#).is_err());
        assert!(enc.check(b"not json").is_err());

        let mut dec = work(Check::Plaintext(b"abc".to_vec()));
        assert!(dec.check(br#"{"Plaintext":"YWJj"}"#).is_ok());
        assert!(dec.check(br#"{"Plaintext":"YWJk"}"#).is_err());
        assert!(dec.check(br#"{}"#).is_err());

        let mut gdk = work(Check::DataKey);
        let key = B64.encode([7u8; 32]);
        assert!(gdk.check(format!(r#"{{"Plaintext":"{key}","CiphertextBlob":"AQ=="}}"#).as_bytes()).is_ok());
        assert!(gdk.check(format!(r#"{{"Plaintext":"{key}"}}"#).as_bytes()).is_err());
        assert!(gdk.check(br#"{"Plaintext":"AAAA","CiphertextBlob":"AQ=="}"#).is_err());
    }

    #[test]
    fn put_key_policy_answers_are_checked() {
        let mut put = work(Check::Empty);
        assert!(put.check(b"").is_ok());
        assert!(put.check(b"{}").is_ok());
        assert!(put.check(br#"{"KeyId":"k"}"#).is_err());
        assert!(put.check(b"not json").is_err());
    }

    #[test]
    fn new_answers_are_checked() {
        let mut rnd = work(Check::Random(4));
        assert!(rnd.check(br#"{"Plaintext":"AAECAw=="}"#).is_ok());
        assert!(rnd.check(br#"{"Plaintext":"AAEC"}"#).is_err(), "3 bytes");
        assert!(rnd.check(b"{}").is_err());

        let mut valid = work(Check::Valid);
        assert!(valid.check(br#"{"SignatureValid":true,"KeyId":"k"}"#).is_ok());
        assert!(valid.check(br#"{"SignatureValid":false}"#).is_err());
        assert!(valid.check(br#"{}"#).is_err());

        let mut mac = work(Check::Mac(None));
        let a = B64.encode([1u8; 32]);
        let b = B64.encode([2u8; 32]);
        assert!(mac.check(format!(r#"{{"Mac":"{a}"}}"#).as_bytes()).is_ok());
        assert!(mac.check(format!(r#"{{"Mac":"{a}"}}"#).as_bytes()).is_ok());
        assert!(mac.check(format!(r#"{{"Mac":"{b}"}}"#).as_bytes()).is_err(), "another Mac for the same message");
        assert!(mac.check(format!(r#"{{"Mac":"{}"}}"#, B64.encode([1u8; 31])).as_bytes()).is_err());
    }

    #[test]
    fn signatures_are_verified_with_the_public_key() {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        // GetPublicKey answers a SubjectPublicKeyInfo; aws-lc-rs takes it as well as the bare point.
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        let sig = pair.sign(&rng, b"message").unwrap();
        let answer = |s: &[u8]| format!(r#"{{"Signature":"{}","KeyId":"k"}}"#, B64.encode(s));
        let mut w =
            work(Check::Signature { message: b"message".to_vec(), public_key: std::sync::Arc::new(spki.clone()) });
        assert!(w.check(answer(sig.as_ref()).as_bytes()).is_ok());
        let mut other = work(Check::Signature { message: b"other".to_vec(), public_key: std::sync::Arc::new(spki) });
        assert!(other.check(answer(sig.as_ref()).as_bytes()).is_err());
        assert!(w.check(answer(b"\x30\x00").as_bytes()).is_err());
    }

    #[test]
    fn the_mix_draws_by_weight_deterministically() {
        let works = vec![work(Check::Valid), work(Check::Valid), work(Check::Valid)];
        let mut plan = Plan::new(works, &[50, 30, 20], 9);
        let mut counts = [0u32; 3];
        let picks: Vec<usize> = (0..10_000).map(|_| plan.pick()).collect();
        for &p in &picks {
            counts[p] += 1;
        }
        assert!((4_700..5_300).contains(&counts[0]), "{counts:?}");
        assert!((2_700..3_300).contains(&counts[1]), "{counts:?}");
        assert!((1_700..2_300).contains(&counts[2]), "{counts:?}");
        let mut again = Plan::new(vec![work(Check::Valid), work(Check::Valid), work(Check::Valid)], &[50, 30, 20], 9);
        assert!(picks.iter().all(|&p| p == again.pick()), "same seed, same sequence");
        let mut single = Plan::new(vec![work(Check::Valid)], &[1], 1);
        assert!((0..100).all(|_| single.pick() == 0));
    }
}
