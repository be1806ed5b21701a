//! KMS keys: metadata, backing keys, sealing to records, and the bounded in-enclave cache.

use crate::crypto::asym::{self, HmacKey, HmacSpec, PairSpec, PrivateKey};
use crate::crypto::secret::Key256;
use crate::error::Error;
use crate::service::Clock;
use crate::state::ids::Scope;
use crate::state::store::{Records, StoreError};
use kms_shared::storage::{RecordKind, StorageError};
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
    #[serde(rename = "SIGN_VERIFY")]
    SignVerify,
    #[serde(rename = "GENERATE_VERIFY_MAC")]
    GenerateVerifyMac,
    #[serde(rename = "KEY_AGREEMENT")]
    KeyAgreement,
}

impl KeyUsage {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::EncryptDecrypt => "ENCRYPT_DECRYPT",
            KeyUsage::SignVerify => "SIGN_VERIFY",
            KeyUsage::GenerateVerifyMac => "GENERATE_VERIFY_MAC",
            KeyUsage::KeyAgreement => "KEY_AGREEMENT",
        }
    }
}

/// Key spec.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    #[serde(rename = "SYMMETRIC_DEFAULT")]
    SymmetricDefault,
    #[serde(rename = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "RSA_3072")]
    Rsa3072,
    #[serde(rename = "RSA_4096")]
    Rsa4096,
    #[serde(rename = "ECC_NIST_P256")]
    EccNistP256,
    #[serde(rename = "ECC_NIST_P384")]
    EccNistP384,
    #[serde(rename = "ECC_NIST_P521")]
    EccNistP521,
    #[serde(rename = "ECC_SECG_P256K1")]
    EccSecgP256k1,
    #[serde(rename = "HMAC_224")]
    Hmac224,
    #[serde(rename = "HMAC_256")]
    Hmac256,
    #[serde(rename = "HMAC_384")]
    Hmac384,
    #[serde(rename = "HMAC_512")]
    Hmac512,
}

impl KeySpec {
    /// The key pair spec of an asymmetric key.
    pub fn pair(self) -> Option<PairSpec> {
        match self {
            KeySpec::Rsa2048 => Some(PairSpec::Rsa2048),
            KeySpec::Rsa3072 => Some(PairSpec::Rsa3072),
            KeySpec::Rsa4096 => Some(PairSpec::Rsa4096),
            KeySpec::EccNistP256 => Some(PairSpec::EccNistP256),
            KeySpec::EccNistP384 => Some(PairSpec::EccNistP384),
            KeySpec::EccNistP521 => Some(PairSpec::EccNistP521),
            KeySpec::EccSecgP256k1 => Some(PairSpec::EccSecgP256k1),
            _ => None,
        }
    }

    /// The HMAC spec of an HMAC key.
    pub fn hmac(self) -> Option<HmacSpec> {
        match self {
            KeySpec::Hmac224 => Some(HmacSpec::Hmac224),
            KeySpec::Hmac256 => Some(HmacSpec::Hmac256),
            KeySpec::Hmac384 => Some(HmacSpec::Hmac384),
            KeySpec::Hmac512 => Some(HmacSpec::Hmac512),
            _ => None,
        }
    }

    /// The spec AWS names `name`.
    pub fn from_name(name: &str) -> Option<KeySpec> {
        const ALL: [KeySpec; 12] = [
            KeySpec::SymmetricDefault,
            KeySpec::Rsa2048,
            KeySpec::Rsa3072,
            KeySpec::Rsa4096,
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1,
            KeySpec::Hmac224,
            KeySpec::Hmac256,
            KeySpec::Hmac384,
            KeySpec::Hmac512,
        ];
        ALL.into_iter().find(|s| s.name() == name)
    }

    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
            KeySpec::Hmac224 => "HMAC_224",
            KeySpec::Hmac256 => "HMAC_256",
            KeySpec::Hmac384 => "HMAC_384",
            KeySpec::Hmac512 => "HMAC_512",
            other => other.pair().map_or("SYMMETRIC_DEFAULT", PairSpec::name),
        }
    }
}

/// Key state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    PendingImport,
}

/// Origin of the key material.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    #[serde(rename = "AWS_KMS")]
    AwsKms,
    #[serde(rename = "EXTERNAL")]
    External,
}

/// Whether imported key material expires.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpirationModel {
    #[serde(rename = "KEY_MATERIAL_EXPIRES")]
    Expires,
    #[serde(rename = "KEY_MATERIAL_DOES_NOT_EXPIRE")]
    DoesNotExpire,
}

/// What is known of a key's imported material, kept even while the material itself is deleted, so that only the
/// same material can be imported again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Imported {
    /// SHA-256 of the material (inside the sealed record only).
    #[serde(with = "serde_bytes")]
    pub material_sha256: Vec<u8>,
    /// The expiration model of the current import.
    pub expiration_model: Option<ExpirationModel>,
    /// When the current material expires (epoch seconds).
    pub valid_to: Option<f64>,
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
    /// The key policy document. Shared: keys with the same text as the last one decoded or created (most keep the
    /// default policy) hold one copy between them, so a cached key does not carry its own.
    #[serde(with = "shared_text")]
    pub policy: Arc<str>,
    /// When a key pending deletion is destroyed (epoch seconds).
    #[serde(default)]
    pub deletion_date: Option<f64>,
    /// The waiting period ScheduleKeyDeletion was given.
    #[serde(default)]
    pub pending_window_days: Option<u32>,
    /// Automatic rotation period, when rotation is enabled.
    #[serde(default)]
    pub rotation_period_days: Option<u32>,
    /// When the next automatic rotation is due (epoch seconds), when rotation is enabled.
    #[serde(default)]
    pub next_rotation_date: Option<f64>,
    /// Every rotation so far, oldest first (the original material is not one).
    #[serde(default)]
    pub rotations: Vec<Rotation>,
    /// Imported material (Origin EXTERNAL), once any was imported.
    #[serde(default)]
    pub imported: Option<Imported>,
    /// The unique ids of the principals the key policy names by ARN, resolved when the policy was saved
    /// (`crate::access::policy::Policy::bind`). `None` for a policy saved before ids existed (ARNs compared alone).
    #[serde(default)]
    pub policy_principals: Option<std::collections::BTreeMap<String, String>>,
}

/// The last policy text made shared by [`shared_policy`].
static LAST_POLICY: Mutex<Option<Arc<str>>> = Mutex::new(None);

/// `text` as a shared string: the same allocation as the previous call's when the text is the same.
pub fn shared_policy(text: &str) -> Arc<str> {
    let Ok(mut last) = LAST_POLICY.lock() else { return Arc::from(text) };
    if let Some(l) = last.as_ref()
        && **l == *text
    {
        return l.clone();
    }
    let shared: Arc<str> = Arc::from(text);
    *last = Some(shared.clone());
    shared
}

/// Serde for [`KeyMeta::policy`]: a plain string on the wire, shared in memory.
mod shared_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(super::shared_policy(&text))
    }
}

/// One rotation: the backing-key version it added.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Rotation {
    /// The version added.
    pub version: u32,
    /// When (epoch seconds).
    pub date: f64,
    /// On demand (RotateKeyOnDemand) rather than automatic.
    pub on_demand: bool,
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
    /// The private key (PKCS#8 DER) of an asymmetric key, or the secret of an HMAC key.
    #[serde(with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    private: Option<&'a [u8]>,
}

#[derive(Deserialize)]
struct KeyBodyIn {
    meta: KeyMeta,
    materials: Vec<MaterialIn>,
    /// Absent in records written before asymmetric keys existed.
    #[serde(default, with = "serde_bytes")]
    private: Option<Vec<u8>>,
}

/// The secret of an asymmetric or HMAC key: the stored bytes and, for key pairs, the parsed key (parsed once per
/// cache fill). Shared between copies of a key (`Arc`), zeroized when the last goes.
pub enum Secret {
    /// A key pair: PKCS#8 DER and the parsed private key.
    Pair { pkcs8: Zeroizing<Vec<u8>>, key: PrivateKey },
    /// An HMAC key.
    Hmac(HmacKey),
}

impl Secret {
    fn stored(&self) -> &[u8] {
        match self {
            Secret::Pair { pkcs8, .. } => pkcs8,
            Secret::Hmac(k) => k.expose_secret(),
        }
    }

    /// Parses stored bytes by the key's spec.
    fn open(spec: KeySpec, bytes: &[u8]) -> Result<Option<Secret>, asym::AsymError> {
        if let Some(pair) = spec.pair() {
            let key = PrivateKey::from_pkcs8(pair, bytes)?;
            return Ok(Some(Secret::Pair { pkcs8: Zeroizing::new(bytes.to_vec()), key }));
        }
        if let Some(h) = spec.hmac() {
            return Ok(Some(Secret::Hmac(HmacKey::from_bytes(h, bytes)?)));
        }
        Ok(None)
    }

    /// Fresh material for a key of `spec` (None for symmetric keys, which use backing keys). Key-pair generation
    /// (seconds for RSA-4096) runs off the async workers.
    pub async fn generate(spec: KeySpec) -> Result<Option<Secret>, Error> {
        let failed = |e: asym::AsymError| Error::Internal(format!("key generation: {e}"));
        if let Some(pair) = spec.pair() {
            let generated = tokio::task::spawn_blocking(move || asym::generate_pair(pair))
                .await
                .map_err(|_| Error::Internal("key generation task failed".into()))?
                .map_err(failed)?;
            let key = PrivateKey::from_pkcs8(pair, &generated.private_pkcs8).map_err(failed)?;
            return Ok(Some(Secret::Pair { pkcs8: generated.private_pkcs8, key }));
        }
        if let Some(h) = spec.hmac() {
            return Ok(Some(Secret::Hmac(HmacKey::generate(h).map_err(failed)?)));
        }
        Ok(None)
    }
}

/// A KMS key in enclave memory.
pub struct Key {
    pub meta: KeyMeta,
    pub uuid: [u8; 16],
    pub arn: String,
    pub record_version: u64,
    materials: Vec<(u32, Key256)>,
    secret: Option<Arc<Secret>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("key_id", &self.meta.key_id).field("versions", &self.materials.len()).finish()
    }
}

impl Key {
    /// The private key of an asymmetric key.
    pub fn pair(&self) -> Option<&PrivateKey> {
        match self.secret.as_deref() {
            Some(Secret::Pair { key, .. }) => Some(key),
            _ => None,
        }
    }

    /// The secret of an HMAC key.
    pub fn hmac(&self) -> Option<&HmacKey> {
        match self.secret.as_deref() {
            Some(Secret::Hmac(k)) => Some(k),
            _ => None,
        }
    }

    /// Whether this is a symmetric encryption key (the only kind with backing keys, rotation and ciphertext blobs).
    pub fn is_symmetric(&self) -> bool {
        self.meta.key_spec == KeySpec::SymmetricDefault
    }

    /// Whether cryptographic operations may use this key; the key-state table's answer otherwise.
    pub fn check_usable(&self) -> Result<(), Error> {
        match self.meta.key_state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(Error::Disabled(format!("{} is disabled.", self.arn))),
            KeyState::PendingDeletion => Err(self.pending_deletion()),
            KeyState::PendingImport => Err(Error::KmsInvalidState(format!("{} is pending import.", self.arn))),
        }
    }

    /// Refuses management operations on a key pending deletion (the key-state table's footnote for them).
    pub fn check_not_pending_deletion(&self) -> Result<(), Error> {
        if self.meta.key_state == KeyState::PendingDeletion { Err(self.pending_deletion()) } else { Ok(()) }
    }

    fn pending_deletion(&self) -> Error {
        Error::KmsInvalidState(format!("{} is pending deletion.", self.arn))
    }

    /// Adds a fresh backing-key version, which every new encryption then uses; records the rotation.
    pub fn rotate(&mut self, now: f64, on_demand: bool) -> Result<u32, Error> {
        let version = self.materials.iter().map(|(v, _)| *v).max().unwrap_or(0).saturating_add(1);
        let material = Key256::generate().map_err(|_| Error::Internal("random source failed".into()))?;
        self.materials.push((version, material));
        self.meta.rotations.push(Rotation { version, date: now, on_demand });
        Ok(version)
    }

    /// Installs imported material as the key's only backing key (version 1, so ciphertexts made under an earlier
    /// import of the same material decrypt again).
    pub fn set_material(&mut self, material: Key256) {
        self.materials = vec![(1, material)];
    }

    /// Deletes the key's material (imported keys only); the key is then pending import.
    pub fn remove_material(&mut self) {
        self.materials.clear();
        self.meta.key_state = KeyState::PendingImport;
        if let Some(i) = self.meta.imported.as_mut() {
            i.expiration_model = None;
            i.valid_to = None;
        }
    }

    /// Whether imported material has expired at `now`.
    fn material_expired(&self, now: f64) -> bool {
        !self.materials.is_empty() && self.meta.imported.as_ref().and_then(|i| i.valid_to).is_some_and(|t| now >= t)
    }

    /// Whether an automatic rotation is due at `now`.
    fn rotation_due(&self, now: f64) -> bool {
        self.meta.key_state == KeyState::Enabled
            && self.meta.rotation_period_days.is_some()
            && self.meta.next_rotation_date.is_some_and(|d| now >= d)
    }

    /// Whether the key's deletion is due at `now` (epoch seconds).
    fn deletion_due(&self, now: f64) -> bool {
        self.meta.key_state == KeyState::PendingDeletion && self.meta.deletion_date.is_some_and(|d| now >= d)
    }

    /// A copy with other metadata (backing keys copied into fresh zeroizing holders).
    fn with_meta(&self, meta: KeyMeta) -> Key {
        Key {
            meta,
            uuid: self.uuid,
            arn: self.arn.clone(),
            record_version: self.record_version,
            materials: self.materials.iter().map(|(v, k)| (*v, Key256::from_array(*k.expose_secret()))).collect(),
            secret: self.secret.clone(),
        }
    }

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
            private: self.secret.as_deref().map(Secret::stored),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(512));
        ciborium::into_writer(&body, &mut *out).map_err(|e| StoreError::Encode(e.to_string()))?;
        Ok(out)
    }

    fn decode(bytes: &[u8], record_version: u64, scope: &Scope) -> Result<Key, StoreError> {
        Key::decode_with(bytes, record_version, scope, true)
    }

    /// Decodes a record; without `open_secret` an asymmetric or HMAC key's private material is not parsed (listing
    /// and sweeping need only the metadata, and parsing an RSA key costs milliseconds).
    fn decode_with(bytes: &[u8], record_version: u64, scope: &Scope, open_secret: bool) -> Result<Key, StoreError> {
        let bad = |why| StoreError::Integrity { kind: RecordKind::Key, id: String::new(), why };
        let body: KeyBodyIn = ciborium::from_reader(bytes).map_err(|_| bad("undecodable key record"))?;
        let mut materials = Vec::with_capacity(body.materials.len());
        for mut m in body.materials {
            let k = Key256::from_slice(&m.secret);
            m.secret.zeroize();
            materials.push((m.version, k.ok_or(bad("backing key of wrong length"))?));
        }
        let uuid = crate::state::ids::parse_uuid(&body.meta.key_id).ok_or(bad("bad key id"))?;
        let secret = match body.private.map(Zeroizing::new) {
            Some(_) if !open_secret => None,
            Some(bytes) => {
                Secret::open(body.meta.key_spec, &bytes).map_err(|_| bad("private key does not fit its spec"))?
            }
            None if open_secret && body.meta.key_spec != KeySpec::SymmetricDefault => {
                return Err(bad("asymmetric key without material"));
            }
            None => None,
        }
        .map(Arc::new);
        Ok(Key { arn: scope.key_arn(&body.meta.key_id), uuid, meta: body.meta, record_version, materials, secret })
    }
}

/// All keys: the sealed store behind a bounded cache of unwrapped keys.
pub struct Keyring {
    records: Arc<Records>,
    scope: Scope,
    clock: Arc<Clock>,
    cache: Mutex<HashMap<String, Arc<Key>>>,
    capacity: usize,
    /// Updates of one key take turns (a key id hashes to one of these): the only other writer of a key record is this
    /// enclave, so its compare-and-swap then fails only when the host lies or another update path raced it.
    update_turns: Vec<tokio::sync::Mutex<()>>,
}

/// Locks that order updates of the same key (striped by key id).
const UPDATE_TURNS: usize = 64;

/// What a key id names in the store.
pub enum Lookup {
    /// A live key.
    Live(Arc<Key>),
    /// A key that existed and was destroyed (a tombstone remains).
    Destroyed,
    /// Nothing.
    Unknown,
}

/// Attempts at a compare-and-swap update before giving up.
const UPDATE_ATTEMPTS: usize = 5;

impl Keyring {
    /// A key ring caching at most `capacity` unwrapped keys.
    pub fn new(records: Arc<Records>, scope: Scope, clock: Arc<Clock>, capacity: usize) -> Self {
        Self {
            records,
            scope,
            clock,
            cache: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            update_turns: (0..UPDATE_TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    fn cached(&self, key_id: &str) -> Option<Arc<Key>> {
        self.cache.lock().ok()?.get(key_id).cloned()
    }

    /// Caches `key` unless the cache holds a newer version or the store's marks know a newer version or a deletion
    /// of its record (checked under the cache lock, so a reader that loaded a key before a concurrent update cannot
    /// install the old version after the writer installed or purged the new one). Returns whether it was cached.
    fn remember(&self, key: Arc<Key>) -> bool {
        let Ok(mut c) = self.cache.lock() else { return false };
        let id = &key.meta.key_id;
        if c.get(id).is_some_and(|k| k.record_version > key.record_version)
            || !self.records.admits(RecordKind::Key, id, key.record_version)
        {
            return false;
        }
        // Evict an arbitrary entry when full: HashMap iteration order is randomized per process.
        if c.len() >= self.capacity
            && !c.contains_key(id)
            && let Some(victim) = c.keys().next().cloned()
        {
            c.remove(&victim);
        }
        c.insert(id.clone(), key);
        true
    }

    /// Drops a key from the cache (on every state change).
    pub fn purge(&self, key_id: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(key_id);
        }
    }

    /// The key with this id, from the cache or the store. A key whose deletion date has passed is destroyed here,
    /// on first sight, and reported absent.
    pub async fn get(&self, key_id: &str) -> Result<Option<Arc<Key>>, Error> {
        match self.lookup(key_id).await? {
            Lookup::Live(k) => Ok(Some(k)),
            Lookup::Destroyed | Lookup::Unknown => Ok(None),
        }
    }

    /// Like [`Keyring::get`], telling a destroyed key from one that never existed. An automatic rotation that is
    /// due happens here, before the key is used.
    pub async fn lookup(&self, key_id: &str) -> Result<Lookup, Error> {
        match self.fetch(key_id).await? {
            Lookup::Live(k) if k.rotation_due(self.clock.now_secs()) => {
                self.rotate_if_due(key_id).await.map(Lookup::Live)
            }
            other => Ok(other),
        }
    }

    /// The key as stored (or cached), destroying it if its deletion is due; no rotation.
    async fn fetch(&self, key_id: &str) -> Result<Lookup, Error> {
        let cached = self.cached(key_id);
        crate::telemetry::global().cache(crate::telemetry::Cache::Keys, cached.is_some());
        let key = match cached {
            Some(k) => k,
            None => match self.load(key_id).await? {
                Some(k) => {
                    // Refused when a concurrent update or deletion got in first: this caller, which read before it
                    // finished, still gets the version it read; the cache does not keep it.
                    let k = Arc::new(k);
                    let _ = self.remember(k.clone());
                    k
                }
                None if self.records.get(RecordKind::KeyTombstone, key_id).await?.is_some() => {
                    return Ok(Lookup::Destroyed);
                }
                None => return Ok(Lookup::Unknown),
            },
        };
        if key.deletion_due(self.clock.now_secs()) {
            self.destroy(&key).await?;
            return Ok(Lookup::Destroyed);
        }
        Ok(Lookup::Live(key))
    }

    /// Deletes imported material whose ValidTo has passed (re-checked under compare-and-swap).
    async fn expire_if_due(&self, key_id: &str) -> Result<Arc<Key>, Error> {
        let now = self.clock.now_secs();
        self.update(key_id, |key| {
            if key.material_expired(now) {
                key.remove_material();
                tracing::info!(key_id = %key.meta.key_id, "imported key material expired");
            }
            Ok(())
        })
        .await
    }

    /// Performs a due automatic rotation (re-checked under compare-and-swap, so two callers rotate once).
    async fn rotate_if_due(&self, key_id: &str) -> Result<Arc<Key>, Error> {
        let now = self.clock.now_secs();
        let key = self
            .update(key_id, |key| {
                if key.rotation_due(now) {
                    let version = key.rotate(now, false)?;
                    let period = f64::from(key.meta.rotation_period_days.unwrap_or(365));
                    key.meta.next_rotation_date = Some(now + period * 86_400.0);
                    tracing::info!(key_id = %key.meta.key_id, version, "automatic rotation");
                }
                Ok(())
            })
            .await?;
        Ok(key)
    }

    async fn load(&self, key_id: &str) -> Result<Option<Key>, Error> {
        let Some(opened) = self.records.get(RecordKind::Key, key_id).await? else { return Ok(None) };
        let key = Key::decode(&opened.body, opened.version, &self.scope)?;
        if key.meta.key_id != key_id {
            return Err(Error::Internal(format!("key record {key_id} names another key")));
        }
        Ok(Some(key))
    }

    /// Changes a key with compare-and-swap against the stored record (re-read, so a stale cache never wins), purging
    /// the cache. `change` gets a copy of the current key to modify (metadata, or a new backing-key version) and may
    /// refuse. Returns the updated key.
    pub async fn update(
        &self,
        key_id: &str,
        change: impl Fn(&mut Key) -> Result<(), Error>,
    ) -> Result<Arc<Key>, Error> {
        // Concurrent updates of one key wait for each other instead of exhausting their attempts on conflicts (which
        // answered KMSInternalException to several connections changing one key's policy; found by the soak mix).
        let turn = {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(key_id);
            self.update_turns.get(usize::try_from(h % UPDATE_TURNS as u64).unwrap_or(0))
        };
        let _turn = match turn {
            Some(t) => Some(t.lock().await),
            None => None,
        };
        for _ in 0..UPDATE_ATTEMPTS {
            self.purge(key_id);
            let current = match self.fetch(key_id).await? {
                Lookup::Live(k) => k,
                Lookup::Destroyed | Lookup::Unknown => {
                    return Err(Error::NotFound(format!("Key '{}' does not exist", self.scope.key_arn(key_id))));
                }
            };
            let mut next = current.with_meta(current.meta.clone());
            change(&mut next)?;
            let body = next.encode()?;
            match self.records.put(RecordKind::Key, key_id, Some(current.record_version), &body).await {
                Ok(v) => {
                    next.record_version = v;
                    let next = Arc::new(next);
                    self.purge(key_id);
                    let _ = self.remember(next.clone());
                    return Ok(next);
                }
                Err(StoreError::Host(StorageError::Conflict)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!("key {key_id}: too many concurrent updates")))
    }

    /// Destroys a key for good: a tombstone is written first (so its ciphertexts answer NotFound, and the id is
    /// never reused), then the sealed record with its backing keys is deleted and the cache purged.
    async fn destroy(&self, key: &Key) -> Result<(), Error> {
        let id = &key.meta.key_id;
        self.purge(id);
        match self.records.put(RecordKind::KeyTombstone, id, None, id.as_bytes()).await {
            Ok(_) | Err(StoreError::Host(StorageError::Conflict)) => {}
            Err(e) => return Err(e.into()),
        }
        match self.records.delete(RecordKind::Key, id, key.record_version).await {
            Ok(()) | Err(StoreError::Host(StorageError::Conflict)) => {}
            Err(e) => return Err(e.into()),
        }
        self.purge(id);
        tracing::info!(key_id = %id, "key destroyed: deletion window passed");
        Ok(())
    }

    /// Destroys every key whose deletion date has passed, and performs every automatic rotation that is due.
    /// Returns how many keys were destroyed.
    pub async fn sweep(&self) -> Result<usize, Error> {
        self.sweep_paced(std::time::Duration::ZERO).await
    }

    /// [`Keyring::sweep`], pausing `pace` after each page of 500 keys, so that a background sweep over a large key
    /// store (it opens every key record) takes a bounded share of the CPU instead of delaying requests.
    pub async fn sweep_paced(&self, pace: std::time::Duration) -> Result<usize, Error> {
        let mut after: Option<String> = None;
        let mut destroyed = 0;
        loop {
            if after.is_some() && !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            let page = self.records.list(RecordKind::Key, after.as_deref(), 500).await?;
            for (id, opened) in &page.records {
                // One key that cannot be decoded, destroyed, rotated or expired does not stop the others.
                match self.sweep_one(id, opened).await {
                    Ok(true) => destroyed += 1,
                    Ok(false) => {}
                    Err(e) => {
                        self.records.skip(RecordKind::Key, id, &e);
                    }
                }
            }
            after = page.last;
            if !page.more || after.is_none() {
                return Ok(destroyed);
            }
        }
    }

    /// The sweep's work on one key record; whether the key was destroyed.
    async fn sweep_one(&self, id: &str, opened: &crate::state::store::Opened) -> Result<bool, Error> {
        let key = Key::decode_with(&opened.body, opened.version, &self.scope, false)?;
        if key.meta.key_id != id {
            return Err(Error::Internal(format!("key record {id} names another key")));
        }
        let now = self.clock.now_secs();
        if key.deletion_due(now) {
            self.destroy(&key).await?;
            return Ok(true);
        }
        if key.material_expired(now) {
            self.expire_if_due(id).await?;
        } else if key.rotation_due(now) {
            self.rotate_if_due(id).await?;
        }
        Ok(false)
    }

    /// Creates a key with fresh backing material (version 1) and stores it durably before returning.
    pub async fn create(&self, meta: KeyMeta) -> Result<Arc<Key>, Error> {
        let uuid =
            crate::state::ids::parse_uuid(&meta.key_id).ok_or_else(|| Error::Internal("bad new key id".into()))?;
        let secret = Secret::generate(meta.key_spec).await?.map(Arc::new);
        let materials = if secret.is_some() {
            Vec::new()
        } else {
            vec![(1, Key256::generate().map_err(|_| Error::Internal("random source failed".into()))?)]
        };
        let mut key = Key { arn: self.scope.key_arn(&meta.key_id), uuid, meta, record_version: 0, materials, secret };
        let body = key.encode()?;
        key.record_version = self.records.put(RecordKind::Key, &key.meta.key_id, None, &body).await?;
        let key = Arc::new(key);
        let _ = self.remember(key.clone());
        Ok(key)
    }

    /// Key ids after `after`, at most `limit`, the last id the store listed (where the next page starts, even if that
    /// record was skipped) and whether more follow. Each record is authenticated; one that fails its checks or does
    /// not decode is skipped (logged and counted), and answers KMSInternalException on its own when named.
    pub async fn list(&self, after: Option<&str>, limit: u32) -> Result<(Vec<String>, Option<String>, bool), Error> {
        let page = self.records.list(RecordKind::Key, after, limit).await?;
        let mut ids = Vec::with_capacity(page.records.len());
        for (id, opened) in page.records {
            let key = match Key::decode_with(&opened.body, opened.version, &self.scope, false) {
                Ok(k) if k.meta.key_id == id => k,
                Ok(_) => {
                    self.records.skip(RecordKind::Key, &id, &"the record names another key");
                    continue;
                }
                Err(e) => {
                    self.records.skip(RecordKind::Key, &id, &e);
                    continue;
                }
            };
            if key.deletion_due(self.clock.now_secs()) {
                if let Err(e) = self.destroy(&key).await {
                    tracing::error!(key_id = %id, error = %e, "listing: destroying a key past its deletion date failed");
                }
                continue;
            }
            ids.push(id);
        }
        Ok((ids, page.last, page.more))
    }
}

#[cfg(test)]
mod tests;
