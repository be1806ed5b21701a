//! Principals: the IAM-style users and roles that sign requests, sealed in the store and cached in the enclave.
//!
//! A principal is named by its ARN (`arn:aws:iam::ACCOUNT:user/NAME` or `…:role/NAME`, with an optional path) and
//! may be an *admin*, who manages principals and access keys. Key policies name principals by ARN or account; this
//! service has no IAM identity policies, so what a key policy grants to an account (`…:root`) it grants to every
//! principal of that account.

use crate::error::Error;
use crate::state::store::Records;
use kms_shared::storage::{MAX_ID_LEN, RecordKind};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Longest name or path segment of a principal, as IAM bounds user and role names.
const MAX_NAME: usize = 64;

/// A principal as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Principal {
    /// The principal's ARN.
    pub arn: String,
    /// Whether it manages principals and access keys.
    pub admin: bool,
    /// Epoch seconds.
    pub creation_date: f64,
}

impl Principal {
    /// The 12-digit account of the principal's ARN.
    pub fn account(&self) -> &str {
        parse_arn(&self.arn).map_or("", |p| p.account)
    }
}

/// Who made an authenticated request: the principal and the access key it signed with (both shared with the caches,
/// so identifying a caller allocates nothing).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal.
    pub principal: Arc<Principal>,
    /// The access key the request was signed with.
    pub credential: Arc<crate::access::credentials::Credential>,
}

impl Caller {
    /// The principal's ARN.
    pub fn arn(&self) -> &str {
        &self.principal.arn
    }

    /// The principal's account.
    pub fn account(&self) -> &str {
        self.principal.account()
    }

    /// Whether the principal manages principals and access keys.
    pub fn admin(&self) -> bool {
        self.principal.admin
    }

    /// The access key id the request was signed with.
    pub fn access_key_id(&self) -> &str {
        &self.credential.access_key_id
    }
}

/// The parts of a principal ARN.
#[derive(Debug, PartialEq, Eq)]
pub struct PrincipalArn<'a> {
    /// The account.
    pub account: &'a str,
    /// `user` or `role`.
    pub kind: &'a str,
    /// The last path segment.
    pub name: &'a str,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Parses `arn:aws:iam::ACCOUNT:user/[PATH/]NAME` (or `role/`). Names and path segments use IAM's characters.
pub fn parse_arn(arn: &str) -> Option<PrincipalArn<'_>> {
    if arn.len() > MAX_ID_LEN {
        return None;
    }
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (kind, path) = resource.split_once('/')?;
    if kind != "user" && kind != "role" {
        return None;
    }
    let mut segments = path.split('/').peekable();
    let mut name = "";
    while let Some(seg) = segments.next() {
        if !name_ok(seg) {
            return None;
        }
        if segments.peek().is_none() {
            name = seg;
        }
    }
    Some(PrincipalArn { account, kind, name })
}

/// All principals.
pub struct Principals {
    records: Arc<Records>,
    cache: Mutex<HashMap<String, (u64, Arc<Principal>)>>,
}

impl Principals {
    /// Principals over `records`.
    pub fn new(records: Arc<Records>) -> Self {
        Self { records, cache: Mutex::new(HashMap::new()) }
    }

    /// The principal `arn` and its record version, if it exists.
    pub async fn get(&self, arn: &str) -> Result<Option<Arc<Principal>>, Error> {
        Ok(self.get_versioned(arn).await?.map(|(_, p)| p))
    }

    async fn get_versioned(&self, arn: &str) -> Result<Option<(u64, Arc<Principal>)>, Error> {
        if parse_arn(arn).is_none() {
            return Ok(None);
        }
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(arn).cloned()) {
            return Ok(Some(hit));
        }
        let Some(entry) = self.load(arn).await? else { return Ok(None) };
        let _ = self.install(entry.clone());
        Ok(Some(entry))
    }

    /// Reads and decodes a principal record: its version and the principal.
    async fn load(&self, arn: &str) -> Result<Option<(u64, Arc<Principal>)>, Error> {
        let Some(opened) = self.records.get(RecordKind::Principal, arn).await? else { return Ok(None) };
        let p: Principal = ciborium::from_reader(&opened.body[..])
            .map_err(|_| Error::Internal(format!("undecodable principal record {arn}")))?;
        if p.arn != arn {
            return Err(Error::Internal(format!("principal record {arn} names another principal")));
        }
        Ok(Some((opened.version, Arc::new(p))))
    }

    /// Caches a loaded principal unless a newer version is cached or the store's marks know a newer version or its
    /// deletion (checked under the cache lock: a lookup that raced a delete cannot revive it in the cache).
    fn install(&self, entry: (u64, Arc<Principal>)) -> bool {
        let Ok(mut c) = self.cache.lock() else { return false };
        let arn = entry.1.arn.as_str();
        if c.get(arn).is_some_and(|(v, _)| *v > entry.0) || !self.records.admits(RecordKind::Principal, arn, entry.0) {
            return false;
        }
        c.insert(arn.to_owned(), entry);
        true
    }

    /// Creates a principal; `AlreadyExistsException` if it exists.
    pub async fn create(&self, arn: &str, admin: bool, now: f64) -> Result<Principal, Error> {
        if parse_arn(arn).is_none() {
            return Err(invalid_arn(arn));
        }
        let p = Principal { arn: arn.to_owned(), admin, creation_date: now };
        let mut body = Vec::with_capacity(128);
        ciborium::into_writer(&p, &mut body).map_err(|e| Error::Internal(e.to_string()))?;
        // A record that exists (or existed and comes back) makes the CAS fail: the principal exists.
        if self.get(arn).await?.is_some() {
            return Err(Error::AlreadyExists(format!("Principal {arn} already exists")));
        }
        match self.records.put(RecordKind::Principal, arn, None, &body).await {
            Ok(_) => Ok(p),
            Err(crate::state::store::StoreError::Host(kms_shared::storage::StorageError::Conflict)) => {
                Err(Error::AlreadyExists(format!("Principal {arn} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a principal's record; `NotFoundException` if there is none.
    pub async fn delete(&self, arn: &str) -> Result<(), Error> {
        let Some((version, _)) = self.get_versioned(arn).await? else { return Err(principal_not_found(arn)) };
        self.records.delete(RecordKind::Principal, arn, version).await?;
        if let Ok(mut c) = self.cache.lock() {
            c.remove(arn);
        }
        Ok(())
    }

    /// Every principal, in ARN order.
    pub async fn list(&self) -> Result<Vec<Principal>, Error> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.records.list(RecordKind::Principal, after.as_deref(), 1000).await?;
            for (id, opened) in &page.records {
                match ciborium::from_reader::<Principal, _>(&opened.body[..]) {
                    Ok(p) if p.arn == *id => out.push(p),
                    _ => self.records.skip(RecordKind::Principal, id, &"undecodable or names another principal"),
                }
            }
            after = page.last;
            if !page.more || after.is_none() {
                return Ok(out);
            }
        }
    }
}

/// ValidationException for a principal ARN of the wrong shape.
pub fn invalid_arn(arn: &str) -> Error {
    let shown: String = arn.chars().take(128).collect();
    Error::Validation(format!(
        "Invalid principal ARN '{shown}': expected arn:aws:iam::<12-digit account>:user/<name> or :role/<name>"
    ))
}

/// NotFoundException for an unknown principal.
pub fn principal_not_found(arn: &str) -> Error {
    let shown: String = arn.chars().take(128).collect();
    Error::NotFound(format!("Principal {shown} does not exist"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Issue 12 item 5: a lookup that read a principal before DeletePrincipal finished used to cache it afterwards.
    #[tokio::test]
    async fn a_lookup_that_raced_a_delete_cannot_revive_the_principal() {
        let host = crate::state::fake_host::FakeHost::default();
        let principals = Principals::new(host.records());
        let arn = "arn:aws:iam::111122223333:user/alice";
        principals.create(arn, false, 0.0).await.unwrap();
        let stale = principals.load(arn).await.unwrap().unwrap();
        principals.delete(arn).await.unwrap();
        assert!(!principals.install(stale));
        assert!(principals.get(arn).await.unwrap().is_none());
    }

    #[test]
    fn arns() {
        let p = parse_arn("arn:aws:iam::111122223333:user/alice");
        assert_eq!(p, Some(PrincipalArn { account: "111122223333", kind: "user", name: "alice" }));
        let p = parse_arn("arn:aws:iam::111122223333:role/ops/team/Deployer");
        assert_eq!(p, Some(PrincipalArn { account: "111122223333", kind: "role", name: "Deployer" }));
        for bad in [
            "",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:iam::11112222333:user/a",
            "arn:aws:iam::111122223333:group/a",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/a//b",
            "arn:aws:iam::111122223333:user/a b",
            "arn:aws:iam::111122223333:user/a*",
            "arn:aws:kms::111122223333:user/a",
            "arn:aws:iam:us-east-1:111122223333:user/a",
        ] {
            assert!(parse_arn(bad).is_none(), "{bad}");
        }
        let long = format!("arn:aws:iam::111122223333:user/{}", "a".repeat(65));
        assert!(parse_arn(&long).is_none());
    }
}
