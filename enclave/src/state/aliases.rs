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

    fn remember(&self, a: Arc<Alias>) {
        if let Ok(mut c) = self.cache.lock() {
            // Evict an arbitrary entry when full: HashMap iteration order is randomized per process.
            if c.len() >= self.capacity
                && !c.contains_key(&a.name)
                && let Some(victim) = c.keys().next().cloned()
            {
                c.remove(&victim);
            }
            c.insert(a.name.clone(), a);
        }
    }

    /// The alias named `name`, if it exists.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Alias>>, Error> {
        if let Some(a) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(Some(a));
        }
        let Some(opened) = self.records.get(RecordKind::Alias, name).await? else { return Ok(None) };
        let a = Arc::new(Self::decode(name, opened.version, &opened.body)?);
        self.remember(a.clone());
        Ok(Some(a))
    }

    /// Creates an alias; `AlreadyExistsException` if the name is taken.
    pub async fn create(&self, name: &str, target_key_id: &str, now: f64) -> Result<(), Error> {
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
            Err(crate::state::store::StoreError::Host(StorageError::Conflict)) => {
                Err(Error::AlreadyExists(format!("An alias with the name {name} already exists")))
            }
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

    /// Aliases after `after` (by name), at most `limit`, and whether more follow.
    pub async fn list(&self, after: Option<&str>, limit: u32) -> Result<(Vec<Alias>, bool), Error> {
        let (records, more) = self.records.list(RecordKind::Alias, after, limit).await?;
        let mut out = Vec::with_capacity(records.len());
        for (name, opened) in records {
            out.push(Self::decode(&name, opened.version, &opened.body)?);
        }
        Ok((out, more))
    }
}

#[cfg(test)]
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
}
