//! KMS keys: metadata, backing keys, sealing to records, and the bounded in-enclave cache.

use crate::error::Error;
use crate::ids::Scope;
use crate::secret::Key256;
use crate::store::{Records, StoreError};
use kms_shared::storage::RecordKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zeroize::{Zeroize, Zeroizing};

/// Key usage. Serialized with AWS's names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUsage {
    #[serde(rename = "ENCRYPT_DECRYPT")]
    EncryptDecrypt,
}

/// Key spec.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    #[serde(rename = "SYMMETRIC_DEFAULT")]
    SymmetricDefault,
}

/// Key state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    Enabled,
}

/// Origin of the key material.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    #[serde(rename = "AWS_KMS")]
    AwsKms,
}

/// Everything about a key except its secret material. Stored inside the sealed key record.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct KeyMeta {
    pub key_id: String,
    pub creation_date: f64,
    pub description: String,
    pub key_usage: KeyUsage,
    pub key_spec: KeySpec,
    pub key_state: KeyState,
    pub origin: Origin,
    pub tags: Vec<(String, String)>,
    pub policy: String,
}

/// A backing key version as stored: only ever serialized inside a sealed record.
#[derive(Serialize)]
struct MaterialOut<'a> {
    version: u32,
    #[serde(with = "serde_bytes")]
    secret: &'a [u8],
}

#[derive(Deserialize)]
struct MaterialIn {
    version: u32,
    #[serde(with = "serde_bytes")]
    secret: Vec<u8>,
}

#[derive(Serialize)]
struct KeyBodyOut<'a> {
    meta: &'a KeyMeta,
    materials: Vec<MaterialOut<'a>>,
}

#[derive(Deserialize)]
struct KeyBodyIn {
    meta: KeyMeta,
    materials: Vec<MaterialIn>,
}

/// A KMS key in enclave memory.
pub struct Key {
    pub meta: KeyMeta,
    pub uuid: [u8; 16],
    pub arn: String,
    pub record_version: u64,
    materials: Vec<(u32, Key256)>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("key_id", &self.meta.key_id).field("versions", &self.materials.len()).finish()
    }
}

impl Key {
    /// The newest backing key and its version, used for every new encryption.
    pub fn current(&self) -> Option<(u32, &Key256)> {
        self.materials.iter().max_by_key(|(v, _)| *v).map(|(v, k)| (*v, k))
    }

    /// The backing key of `version`, used to decrypt.
    pub fn material(&self, version: u32) -> Option<&Key256> {
        self.materials.iter().find(|(v, _)| *v == version).map(|(_, k)| k)
    }

    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let body = KeyBodyOut {
            meta: &self.meta,
            materials: self
                .materials
                .iter()
                .map(|(v, k)| MaterialOut { version: *v, secret: k.expose_secret() })
                .collect(),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(512));
        ciborium::into_writer(&body, &mut *out).map_err(|e| StoreError::Encode(e.to_string()))?;
        Ok(out)
    }

    fn decode(bytes: &[u8], record_version: u64, scope: &Scope) -> Result<Key, StoreError> {
        let bad = |why| StoreError::Integrity { kind: RecordKind::Key, id: String::new(), why };
        let body: KeyBodyIn = ciborium::from_reader(bytes).map_err(|_| bad("undecodable key record"))?;
        let mut materials = Vec::with_capacity(body.materials.len());
        for mut m in body.materials {
            let k = Key256::from_slice(&m.secret);
            m.secret.zeroize();
            materials.push((m.version, k.ok_or(bad("backing key of wrong length"))?));
        }
        let uuid = crate::ids::parse_uuid(&body.meta.key_id).ok_or(bad("bad key id"))?;
        Ok(Key { arn: scope.key_arn(&body.meta.key_id), uuid, meta: body.meta, record_version, materials })
    }
}

/// All keys: the sealed store behind a bounded cache of unwrapped keys.
pub struct Keyring {
    records: Arc<Records>,
    scope: Scope,
    cache: Mutex<HashMap<String, Arc<Key>>>,
    capacity: usize,
}

impl Keyring {
    /// A key ring caching at most `capacity` unwrapped keys.
    pub fn new(records: Arc<Records>, scope: Scope, capacity: usize) -> Self {
        Self { records, scope, cache: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    fn cached(&self, key_id: &str) -> Option<Arc<Key>> {
        self.cache.lock().ok()?.get(key_id).cloned()
    }

    fn remember(&self, key: Arc<Key>) {
        if let Ok(mut c) = self.cache.lock() {
            // Evict an arbitrary entry when full: HashMap iteration order is randomized per process.
            if c.len() >= self.capacity
                && !c.contains_key(&key.meta.key_id)
                && let Some(victim) = c.keys().next().cloned()
            {
                c.remove(&victim);
            }
            c.insert(key.meta.key_id.clone(), key);
        }
    }

    /// Drops a key from the cache (on every state change).
    pub fn purge(&self, key_id: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(key_id);
        }
    }

    /// The key with this id, from the cache or the store.
    pub async fn get(&self, key_id: &str) -> Result<Option<Arc<Key>>, Error> {
        if let Some(k) = self.cached(key_id) {
            return Ok(Some(k));
        }
        let Some(opened) = self.records.get(RecordKind::Key, key_id).await? else { return Ok(None) };
        let key = Key::decode(&opened.body, opened.version, &self.scope)?;
        if key.meta.key_id != key_id {
            return Err(Error::Internal(format!("key record {key_id} names another key")));
        }
        let key = Arc::new(key);
        self.remember(key.clone());
        Ok(Some(key))
    }

    /// Creates a key with fresh backing material (version 1) and stores it durably before returning.
    pub async fn create(&self, meta: KeyMeta) -> Result<Arc<Key>, Error> {
        let uuid = crate::ids::parse_uuid(&meta.key_id).ok_or_else(|| Error::Internal("bad new key id".into()))?;
        let material = Key256::generate().map_err(|_| Error::Internal("random source failed".into()))?;
        let mut key = Key {
            arn: self.scope.key_arn(&meta.key_id),
            uuid,
            meta,
            record_version: 0,
            materials: vec![(1, material)],
        };
        let body = key.encode()?;
        key.record_version = self.records.put(RecordKind::Key, &key.meta.key_id, None, &body).await?;
        let key = Arc::new(key);
        self.remember(key.clone());
        Ok(key)
    }

    /// Key ids after `after`, at most `limit`, and whether more follow. Each record is authenticated.
    pub async fn list(&self, after: Option<&str>, limit: u32) -> Result<(Vec<String>, bool), Error> {
        let (records, more) = self.records.list(RecordKind::Key, after, limit).await?;
        let mut ids = Vec::with_capacity(records.len());
        for (id, opened) in records {
            let key = Key::decode(&opened.body, opened.version, &self.scope)?;
            if key.meta.key_id != id {
                return Err(Error::Internal(format!("key record {id} names another key")));
            }
            ids.push(id);
        }
        Ok((ids, more))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope { region: "us-east-1".into(), account_id: "000000000000".into() }
    }

    #[test]
    fn record_round_trip_keeps_material() {
        let meta = KeyMeta {
            key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            creation_date: 1.5,
            description: "d".into(),
            key_usage: KeyUsage::EncryptDecrypt,
            key_spec: KeySpec::SymmetricDefault,
            key_state: KeyState::Enabled,
            origin: Origin::AwsKms,
            tags: vec![("a".into(), "b".into())],
            policy: "{}".into(),
        };
        let key = Key {
            arn: String::new(),
            uuid: [0; 16],
            meta,
            record_version: 1,
            materials: vec![(1, Key256::from_slice(&[5; 32]).unwrap()), (2, Key256::from_slice(&[6; 32]).unwrap())],
        };
        let bytes = key.encode().unwrap();
        let back = Key::decode(&bytes, 4, &scope()).unwrap();
        assert_eq!(back.record_version, 4);
        assert_eq!(back.current().unwrap().0, 2);
        assert_eq!(back.material(1).unwrap().expose_secret(), &[5; 32]);
        assert!(back.material(3).is_none());
        assert!(back.arn.ends_with("key/1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(!format!("{back:?}").contains("5, 5"));
    }

    #[test]
    fn garbage_records_are_refused() {
        assert!(Key::decode(&[0xff, 0x00], 1, &scope()).is_err());
        assert!(Key::decode(&[], 1, &scope()).is_err());
    }
}
