//! Aliases: `alias/NAME` → key id, sealed like every record, cached in the enclave.

use crate::error::Error;
use crate::state::store::Records;
use kms_shared::storage::{RecordKind, StorageError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Longest alias name.
pub const MAX_ALIAS_LEN: usize = 256;

/// An alias as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Alias {
    /// `alias/NAME`.
    pub name: String,
    /// The key id it points to.
    pub target_key_id: String,
    /// Epoch seconds.
    pub creation_date: f64,
    /// Epoch seconds.
    pub last_updated_date: f64,
    /// Record version (not stored in the body).
    #[serde(skip)]
    pub version: u64,
}

/// Checks an alias name for CreateAlias/DeleteAlias the way AWS does.
pub fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_ALIAS_LEN {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value at 'aliasName' failed to satisfy constraint: Member must have length between 1 and {MAX_ALIAS_LEN}"
        )));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-')) {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9/_-]+$"
        )));
    }
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(Error::Validation(format!("Alias must start with the prefix \"alias/\": {name}")));
    };
    if rest.is_empty() {
        return Err(Error::Validation("Alias name must have a name after the \"alias/\" prefix".into()));
    }
    if name.starts_with("alias/aws/") {
        return Err(Error::NotAuthorized(format!("{name} is reserved for AWS managed keys")));
    }
    Ok(())
}

/// All aliases.
pub struct Aliases {
    records: Arc<Records>,
    cache: Mutex<HashMap<String, Arc<Alias>>>,
    capacity: usize,
}

impl Aliases {
    /// Aliases, caching at most `capacity`.
    pub fn new(records: Arc<Records>, capacity: usize) -> Self {
        Self { records, cache: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    fn decode(name: &str, version: u64, body: &[u8]) -> Result<Alias, Error> {
        let mut a: Alias =
            ciborium::from_reader(body).map_err(|_| Error::Internal(format!("undecodable alias {name}")))?;
        if a.name != name {
            return Err(Error::Internal(format!("alias record {name} names another alias")));
        }
        a.version = version;
        Ok(a)
    }

    /// Caches `a` unless the cache holds a newer version or the store's marks know a newer version or a deletion of
    /// the alias (checked under the cache lock: a reader that loaded the alias before a concurrent update or delete
    /// cannot install the old target afterwards).
    fn remember(&self, a: Arc<Alias>) {
        let Ok(mut c) = self.cache.lock() else { return };
        if c.get(&a.name).is_some_and(|cur| cur.version > a.version)
            || !self.records.admits(RecordKind::Alias, &a.name, a.version)
        {
            return;
        }
        // Evict an arbitrary entry when full: HashMap iteration order is randomized per process.
        if c.len() >= self.capacity
            && !c.contains_key(&a.name)
            && let Some(victim) = c.keys().next().cloned()
        {
            c.remove(&victim);
        }
        c.insert(a.name.clone(), a);
    }

    /// The alias named `name`, if it exists.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Alias>>, Error> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(name).cloned());
        crate::telemetry::global().cache(crate::telemetry::Cache::Aliases, cached.is_some());
        if let Some(a) = cached {
            return Ok(Some(a));
        }
        let Some(opened) = self.records.get(RecordKind::Alias, name).await? else { return Ok(None) };
        let a = Arc::new(Self::decode(name, opened.version, &opened.body)?);
        self.remember(a.clone());
        Ok(Some(a))
    }

    /// Creates an alias; `AlreadyExistsException` if the name is taken. The name is read first (cache, then store)
    /// and the high-water marks consulted, so that whether the name is free is not left to the host's
    /// compare-and-swap alone: an alias this enclave has seen cannot be created over, whatever the host acknowledges.
    pub async fn create(&self, name: &str, target_key_id: &str, now: f64) -> Result<(), Error> {
        let exists = || Error::AlreadyExists(format!("An alias with the name {name} already exists"));
        if self.get(name).await?.is_some() || self.records.known_present(RecordKind::Alias, name) {
            return Err(exists());
        }
        let mut a = Alias {
            name: name.to_owned(),
            target_key_id: target_key_id.to_owned(),
            creation_date: now,
            last_updated_date: now,
            version: 0,
        };
        let mut body = Vec::with_capacity(128);
        ciborium::into_writer(&a, &mut body).map_err(|e| Error::Internal(e.to_string()))?;
        match self.records.put(RecordKind::Alias, name, None, &body).await {
            Ok(v) => {
                a.version = v;
                self.remember(Arc::new(a));
                Ok(())
            }
            Err(crate::state::store::StoreError::Host(StorageError::Conflict)) => Err(exists()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an alias; `NotFoundException` if there is none.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let Some(a) = self.get(name).await? else {
            return Err(Error::NotFound(format!("Alias {name} is not found.")));
        };
        self.purge(name);
        match self.records.delete(RecordKind::Alias, name, a.version).await {
            Ok(()) => Ok(()),
            Err(crate::state::store::StoreError::Host(StorageError::Conflict)) => {
                Err(Error::NotFound(format!("Alias {name} is not found.")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Points an existing alias at another key; `NotFoundException` if there is no such alias. CreationDate stays.
    pub async fn update(&self, name: &str, target_key_id: &str, now: f64) -> Result<(), Error> {
        for _ in 0..5 {
            self.purge(name);
            let Some(current) = self.get(name).await? else {
                return Err(Error::NotFound(format!("Alias {name} is not found.")));
            };
            let mut next = (*current).clone();
            next.target_key_id = target_key_id.to_owned();
            next.last_updated_date = now;
            let mut body = Vec::with_capacity(128);
            ciborium::into_writer(&next, &mut body).map_err(|e| Error::Internal(e.to_string()))?;
            match self.records.put(RecordKind::Alias, name, Some(current.version), &body).await {
                Ok(v) => {
                    next.version = v;
                    self.purge(name);
                    self.remember(Arc::new(next));
                    return Ok(());
                }
                Err(crate::state::store::StoreError::Host(StorageError::Conflict)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!("alias {name}: too many concurrent updates")))
    }

    /// Deletes `name` if it still points to `key_id` (the cleanup of a destroyed key's aliases).
    pub async fn delete_if_targets(&self, name: &str, key_id: &str) -> Result<(), Error> {
        self.purge(name);
        let Some(a) = self.get(name).await? else { return Ok(()) };
        if a.target_key_id != key_id {
            return Ok(());
        }
        self.purge(name);
        match self.records.delete(RecordKind::Alias, name, a.version).await {
            Ok(()) | Err(crate::state::store::StoreError::Host(StorageError::Conflict)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn purge(&self, name: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(name);
        }
    }

    /// Aliases after `after` (by name), at most `limit`, the last name the store listed (where the next page starts,
    /// even if that record was skipped) and whether more follow. A record that fails its checks or does not decode is
    /// skipped (logged and counted).
    pub async fn list(&self, after: Option<&str>, limit: u32) -> Result<(Vec<Alias>, Option<String>, bool), Error> {
        let page = self.records.list(RecordKind::Alias, after, limit).await?;
        let mut out = Vec::with_capacity(page.records.len());
        for (name, opened) in page.records {
            match Self::decode(&name, opened.version, &opened.body) {
                Ok(a) => out.push(a),
                Err(e) => self.records.skip(RecordKind::Alias, &name, &format!("{e:?}")),
            }
        }
        Ok((out, page.last, page.more))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("alias/my-key_1/x").is_ok());
        assert!(matches!(validate_name("my-key"), Err(Error::Validation(_))));
        assert!(matches!(validate_name("alias/"), Err(Error::Validation(_))));
        assert!(matches!(validate_name("alias/a b"), Err(Error::Validation(_))));
        assert!(matches!(validate_name("alias/a:b"), Err(Error::Validation(_))));
        assert!(matches!(validate_name(""), Err(Error::Validation(_))));
        assert!(matches!(validate_name(&format!("alias/{}", "a".repeat(251))), Err(Error::Validation(_))));
        assert!(matches!(validate_name("alias/aws/s3"), Err(Error::NotAuthorized(_))));
    }

    /// Issue 12 item 1: whether a name was free was left to the host's compare-and-swap, so a host that hides an
    /// alias and acknowledges a create over it let a caller point the victim's alias at its own key.
    #[tokio::test]
    async fn a_host_cannot_make_a_known_alias_look_free() {
        let host = crate::state::fake_host::FakeHost::default();
        let aliases = Aliases::new(host.records(), 16);
        aliases.create("alias/payroll", "victim", 1.0).await.unwrap();
        host.hide(RecordKind::Alias, "alias/payroll", 100);
        host.ack_creates_without_writing(RecordKind::Alias, "alias/payroll");
        // Known from the cache.
        assert!(matches!(aliases.create("alias/payroll", "attacker", 2.0).await, Err(Error::AlreadyExists(_))));
        // Known from the marks alone (cache purged): the hidden record is an integrity failure, never "free".
        aliases.purge("alias/payroll");
        assert!(aliases.create("alias/payroll", "attacker", 2.0).await.is_err());
        aliases.purge("alias/payroll");
        assert!(matches!(aliases.get("alias/payroll").await, Err(Error::Internal(_))));
        // A stale read of an alias cannot be cached over an update.
        aliases.create("alias/other", "k1", 1.0).await.unwrap();
        let stale = aliases.get("alias/other").await.unwrap().unwrap();
        aliases.update("alias/other", "k2", 2.0).await.unwrap();
        aliases.purge("alias/other");
        aliases.remember(stale);
        assert_eq!(aliases.get("alias/other").await.unwrap().unwrap().target_key_id, "k2");
    }
}
