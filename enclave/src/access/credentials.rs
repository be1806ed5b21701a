//! Access keys: id → principal and secret, sealed in the store, cached in the enclave with the SigV4 signing key of
//! the current day so that a request costs one HMAC chain per key per day, not one per request.

use crate::crypto::secret::{Key256, SecretString};
use crate::error::Error;
use crate::state::store::Records;
use kms_shared::storage::RecordKind;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use zeroize::Zeroize;

const AKID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#[derive(Serialize)]
struct BodyOut<'a> {
    principal_arn: &'a str,
    secret: &'a str,
    creation_date: f64,
}

#[derive(Deserialize)]
struct BodyIn {
    principal_arn: String,
    secret: String,
    creation_date: f64,
}

/// An access key in enclave memory.
pub struct Credential {
    /// The access key id.
    pub access_key_id: String,
    /// Who signs with it.
    pub principal_arn: String,
    /// Epoch seconds.
    pub creation_date: f64,
    secret: SecretString,
    signing: Mutex<Option<(String, Key256)>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

impl Credential {
    /// A credential with a fixed, well-known secret (tests only).
    #[cfg(test)]
    pub fn for_tests(access_key_id: &str, principal_arn: &str) -> Self {
        Credential {
            access_key_id: access_key_id.to_owned(),
            principal_arn: principal_arn.to_owned(),
            creation_date: 0.0,
            secret: SecretString::new("test-secret".to_owned()),
            signing: Mutex::new(None),
        }
    }

    /// The SigV4 signing key for (`date`, `region`, `service`), derived once and cached.
    pub fn signing_key(&self, date: &str, region: &str, service: &str) -> Key256 {
        let scope = format!("{date}/{region}/{service}");
        if let Ok(guard) = self.signing.lock()
            && let Some((s, k)) = guard.as_ref()
            && *s == scope
        {
            return Key256::from_array(*k.expose_secret());
        }
        let key = Key256::from_array(crate::net::sigv4::signing_key(
            self.secret.expose_secret().as_bytes(),
            date,
            region,
            service,
        ));
        if let Ok(mut guard) = self.signing.lock() {
            *guard = Some((scope, Key256::from_array(*key.expose_secret())));
        }
        key
    }
}

fn random_string(alphabet: &[u8], len: usize) -> Result<String, Error> {
    let mut raw = vec![0u8; len];
    getrandom::fill(&mut raw).map_err(|_| Error::Internal("random source failed".into()))?;
    // Both alphabets have a power-of-two size, so masking is unbiased.
    let mask = alphabet.len() - 1;
    let s = raw.iter().map(|b| char::from(*alphabet.get(usize::from(*b) & mask).unwrap_or(&b'A'))).collect();
    raw.zeroize();
    Ok(s)
}

/// A plausible access key id shape, checked before any storage lookup.
pub fn plausible_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Most unknown access key ids remembered (about 200 KiB at most).
pub const NEGATIVE_CAP: usize = 4096;

/// Access key ids the store does not hold, so that requests naming one again cost no storage read.
struct Unknown {
    ids: HashSet<String>,
    /// Bumped by every create: a lookup that read "absent" before a create finished must not record it afterwards.
    generation: u64,
}

/// All access keys.
pub struct Credentials {
    records: Arc<Records>,
    cache: Mutex<HashMap<String, (u64, Arc<Credential>)>>,
    unknown: Mutex<Unknown>,
    negative_cap: usize,
}

/// A fresh access key id and secret, not yet stored.
pub fn generate() -> Result<(String, SecretString), Error> {
    Ok((format!("AKIA{}", random_string(AKID_ALPHABET, 16)?), SecretString::new(random_string(SECRET_ALPHABET, 40)?)))
}

impl Credentials {
    /// Access keys over `records`.
    pub fn new(records: Arc<Records>) -> Self {
        Self::with_negative_cap(records, NEGATIVE_CAP)
    }

    /// Access keys remembering at most `negative_cap` unknown ids.
    pub fn with_negative_cap(records: Arc<Records>, negative_cap: usize) -> Self {
        Self {
            records,
            cache: Mutex::new(HashMap::new()),
            unknown: Mutex::new(Unknown { ids: HashSet::new(), generation: 0 }),
            negative_cap: negative_cap.max(1),
        }
    }

    /// The access key `akid`, if it exists. Unknown ids are remembered (bounded, forgotten when any access key is
    /// created), so unauthenticated requests repeating one cost no storage read.
    pub async fn get(&self, akid: &str) -> Result<Option<Arc<Credential>>, Error> {
        if !plausible_access_key_id(akid) {
            return Ok(None);
        }
        let cached = self.cache.lock().ok().and_then(|c| c.get(akid).cloned());
        crate::telemetry::global().cache(crate::telemetry::Cache::Credentials, cached.is_some());
        if let Some((_, c)) = cached {
            return Ok(Some(c));
        }
        let generation = {
            let Ok(u) = self.unknown.lock() else { return Err(Error::Internal("lock poisoned".into())) };
            if u.ids.contains(akid) {
                return Ok(None);
            }
            u.generation
        };
        match self.load(akid).await? {
            Some((version, cred)) => {
                self.install(version, cred.clone());
                Ok(Some(cred))
            }
            None => {
                self.remember_unknown(akid, generation);
                Ok(None)
            }
        }
    }

    /// Reads and decodes an access key record: its version and the credential.
    async fn load(&self, akid: &str) -> Result<Option<(u64, Arc<Credential>)>, Error> {
        let Some(opened) = self.records.get(RecordKind::Credential, akid).await? else { return Ok(None) };
        let mut body: BodyIn = ciborium::from_reader(&opened.body[..])
            .map_err(|_| Error::Internal(format!("undecodable credential {akid}")))?;
        let cred = Arc::new(Credential {
            access_key_id: akid.to_owned(),
            principal_arn: std::mem::take(&mut body.principal_arn),
            creation_date: body.creation_date,
            secret: SecretString::new(std::mem::take(&mut body.secret)),
            signing: Mutex::new(None),
        });
        Ok(Some((opened.version, cred)))
    }

    /// Caches a loaded credential unless a newer version is cached or the store's marks know a newer version or its
    /// deletion (checked under the cache lock, so a lookup that raced a DeleteAccessKey cannot revive the key in the
    /// cache). Returns whether it was cached.
    fn install(&self, version: u64, cred: Arc<Credential>) -> bool {
        let Ok(mut c) = self.cache.lock() else { return false };
        let akid = cred.access_key_id.as_str();
        if c.get(akid).is_some_and(|(v, _)| *v > version) || !self.records.admits(RecordKind::Credential, akid, version)
        {
            return false;
        }
        c.insert(akid.to_owned(), (version, cred));
        true
    }

    fn remember_unknown(&self, akid: &str, generation: u64) {
        let Ok(mut u) = self.unknown.lock() else { return };
        if u.generation != generation {
            return;
        }
        if u.ids.len() >= self.negative_cap
            && let Some(victim) = u.ids.iter().next().cloned()
        {
            // HashSet iteration order is randomized per process: an arbitrary id is forgotten.
            u.ids.remove(&victim);
        }
        u.ids.insert(akid.to_owned());
    }

    /// Creates an access key for `principal_arn`. Returns the id and the secret, which the caller shows once.
    pub async fn create(&self, principal_arn: &str, now: f64) -> Result<(String, SecretString), Error> {
        let (akid, secret) = generate()?;
        self.insert(&akid, &secret, principal_arn, now).await?;
        Ok((akid, secret))
    }

    /// Stores a prepared access key (see [`generate`]); a `Conflict` from the host if the id exists.
    pub async fn insert(&self, akid: &str, secret: &SecretString, principal_arn: &str, now: f64) -> Result<(), Error> {
        let mut body = zeroize::Zeroizing::new(Vec::with_capacity(128));
        let out = BodyOut { principal_arn, secret: secret.expose_secret(), creation_date: now };
        ciborium::into_writer(&out, &mut *body).map_err(|e| Error::Internal(e.to_string()))?;
        // The new id may be one remembered as unknown: forget them all before and after the write (a lookup that
        // read "absent" before the write finished then cannot record it, whenever it started).
        self.forget_unknown();
        let put = self.records.put(RecordKind::Credential, akid, None, &body).await;
        self.forget_unknown();
        put?;
        Ok(())
    }

    fn forget_unknown(&self) {
        if let Ok(mut u) = self.unknown.lock() {
            u.ids.clear();
            u.generation = u.generation.wrapping_add(1);
        }
    }

    /// Deletes an access key; `false` if there is none. Requests signed with it fail from now on.
    pub async fn delete(&self, akid: &str) -> Result<bool, Error> {
        if !plausible_access_key_id(akid) {
            return Ok(false);
        }
        let Some(opened) = self.records.get(RecordKind::Credential, akid).await? else { return Ok(false) };
        self.records.delete(RecordKind::Credential, akid, opened.version).await?;
        if let Ok(mut c) = self.cache.lock() {
            c.remove(akid);
        }
        Ok(true)
    }

    /// Every access key as (id, principal ARN, creation date), in id order. Secrets stay inside.
    pub async fn list(&self) -> Result<Vec<(String, String, f64)>, Error> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.records.list(RecordKind::Credential, after.as_deref(), 1000).await?;
            for (id, opened) in &page.records {
                let Ok(mut body) = ciborium::from_reader::<BodyIn, _>(&opened.body[..]) else {
                    self.records.skip(RecordKind::Credential, id, &"undecodable credential");
                    continue;
                };
                body.secret.zeroize();
                out.push((id.clone(), std::mem::take(&mut body.principal_arn), body.creation_date));
            }
            after = page.last;
            if !page.more || after.is_none() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_have_the_right_shape() {
        let a = random_string(AKID_ALPHABET, 16).unwrap();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| AKID_ALPHABET.contains(&b)));
        assert_ne!(a, random_string(AKID_ALPHABET, 16).unwrap());
        assert!(plausible_access_key_id(&format!("AKIA{a}")));
        assert!(!plausible_access_key_id("short"));
        assert!(!plausible_access_key_id("AKIA/../../etc/passwd00"));
    }

    const ARN: &str = "arn:aws:iam::111122223333:user/alice";

    /// Issue 12 item 5: a lookup that read an access key before DeleteAccessKey finished used to put it in the cache
    /// afterwards, where it stayed valid until restart.
    #[tokio::test]
    async fn a_lookup_that_raced_a_delete_cannot_revive_the_key() {
        let host = crate::state::fake_host::FakeHost::default();
        let creds = Credentials::new(host.records());
        let (akid, _) = creds.create(ARN, 0.0).await.unwrap();
        let (version, stale) = creds.load(&akid).await.unwrap().unwrap();
        assert!(creds.delete(&akid).await.unwrap());
        assert!(!creds.install(version, stale), "over the deletion mark");
        assert!(creds.get(&akid).await.unwrap().is_none());
    }

    /// Issue 12 item 21: every request naming an unknown access key id used to cost a storage read.
    #[tokio::test]
    async fn unknown_ids_cost_one_read_until_a_key_is_created() {
        let host = crate::state::fake_host::FakeHost::default();
        let creds = Credentials::with_negative_cap(host.records(), 3);
        for _ in 0..500 {
            assert!(creds.get("AKIAUNKNOWNUNKNOWN01").await.unwrap().is_none());
        }
        assert_eq!(host.gets(RecordKind::Credential), 1);
        // Bounded: more unknown ids than the cap evict one another, and each costs a read.
        for i in 0..10 {
            assert!(creds.get(&format!("AKIAUNKNOWNUNKNOWN{i:02}")).await.unwrap().is_none());
        }
        assert!(creds.unknown.lock().unwrap().ids.len() <= 3);
        // A create forgets them all: the new id is found, and unknown ids are read again once.
        let before = host.gets(RecordKind::Credential);
        let (akid, _) = creds.create(ARN, 0.0).await.unwrap();
        assert!(creds.unknown.lock().unwrap().ids.is_empty());
        assert!(creds.get(&akid).await.unwrap().is_some());
        assert!(creds.get("AKIAUNKNOWNUNKNOWN01").await.unwrap().is_none());
        assert!(creds.get("AKIAUNKNOWNUNKNOWN01").await.unwrap().is_none());
        assert_eq!(host.gets(RecordKind::Credential), before + 2);
        // A lookup that read "absent" before a create finished does not record it afterwards.
        let generation = creds.unknown.lock().unwrap().generation;
        creds.create(ARN, 0.0).await.unwrap();
        creds.remember_unknown("AKIASTALEABSENTREAD0", generation);
        assert!(!creds.unknown.lock().unwrap().ids.contains("AKIASTALEABSENTREAD0"));
    }
}
